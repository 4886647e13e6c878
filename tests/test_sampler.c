/* sampler: greedy, determinism, the empirical distribution, each cut
 * (top-k, top-p, min-p), penalties, masking, softmax. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/sampler.h"
#include "testutil.h"

/* Params with every cut switched off: plain softmax sampling at temp t. */
static struct dk_sampler_params plain(float t, uint64_t seed)
{
	struct dk_sampler_params p = dk_sampler_default_params();
	p.temperature = t;
	p.top_k = 0;
	p.top_p = 1.0f;
	p.min_p = 0.0f;
	p.seed = seed;
	return p;
}

/* Samples n times from a copy of logits; counts[] gets the hits. */
static void histogram(struct dk_sampler *s, const float *logits, int32_t nv, int n, int *counts)
{
	float *tmp = malloc((size_t)nv * sizeof *tmp);
	assert_non_null(tmp);
	memset(counts, 0, (size_t)nv * sizeof *counts);
	for (int i = 0; i < n; i++) {
		memcpy(tmp, logits, (size_t)nv * sizeof *tmp);
		dk_token t = dk_sampler_sample(s, tmp);
		assert_true(t >= 0 && t < nv);
		counts[t]++;
	}
	free(tmp);
}

static void test_defaults(void **state)
{
	(void)state;
	struct dk_sampler_params p = dk_sampler_default_params();
	assert_true(fabsf(p.temperature - 0.8f) < 1e-6f);
	assert_int_equal(p.top_k, 40);
	assert_true(fabsf(p.top_p - 0.95f) < 1e-6f);
	assert_true(fabsf(p.min_p - 0.05f) < 1e-6f);
	assert_true(p.repeat_penalty == 1.0f);
	assert_int_equal(p.penalty_last_n, 64);
	assert_null(dk_sampler_new(&p, 0));
	dk_sampler_free(NULL);
}

static void test_greedy(void **state)
{
	(void)state;
	struct dk_sampler_params p = plain(0.0f, 1);
	struct dk_sampler *s = dk_sampler_new(&p, 6);
	assert_non_null(s);
	float a[6] = {0.1f, 2.0f, -3.0f, 5.0f, 4.9f, 1.0f};
	assert_int_equal(dk_sampler_sample(s, a), 3);
	/* ties go to the lowest id */
	float b[6] = {1.0f, 7.0f, 7.0f, 0.0f, 7.0f, -1.0f};
	assert_int_equal(dk_sampler_sample(s, b), 1);
	/* masked tokens are never chosen, however the rest look */
	float c[6] = {-INFINITY, -INFINITY, -100.0f, -INFINITY, -200.0f, -INFINITY};
	assert_int_equal(dk_sampler_sample(s, c), 2);
	float d[6] = {-1e30f, -1e30f, -1e30f, -1e30f, -1e30f, -1e30f};
	assert_int_equal(dk_sampler_sample(s, d), 0);
	float e[6];
	for (int i = 0; i < 6; i++)
		e[i] = -INFINITY;
	assert_int_equal(dk_sampler_sample(s, e), DK_TOKEN_NULL);
	dk_sampler_free(s);
}

/* dk_argmax over a vocabulary-sized row, the winner at the start, in a
 * SIMD tail, past ties and NaN, against a plain scan */
static void test_argmax(void **state)
{
	(void)state;
	enum { NV = 49152 + 7 };
	float *l = malloc(NV * sizeof *l);
	assert_non_null(l);
	uint32_t r = 12345;
	for (int i = 0; i < NV; i++) {
		r = r * 1664525u + 1013904223u;
		l[i] = (float)(r >> 8) / 16777216.0f * 20.0f - 10.0f;
	}
	static const int at[] = { 0, 1, 15, 16, 17, 4097, NV - 8, NV - 1 };
	for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
		float keep = l[at[k]];
		l[at[k]] = 11.0f;
		assert_int_equal(dk_argmax(l, NV), at[k]);
		/* a tie later, NaN and +inf-free noise elsewhere leave it */
		int later = at[k] + 5 < NV ? at[k] + 5 : -1;
		float kl = later >= 0 ? l[later] : 0;
		if (later >= 0)
			l[later] = 11.0f;
		l[at[k] > 0 ? at[k] - 1 : NV - 2] = NAN;
		assert_int_equal(dk_argmax(l, NV), at[k]);
		/* an earlier tie wins */
		if (at[k] >= 3) {
			float e = l[at[k] - 3];
			l[at[k] - 3] = 11.0f;
			assert_int_equal(dk_argmax(l, NV), at[k] - 3);
			l[at[k] - 3] = e;
		}
		l[at[k] > 0 ? at[k] - 1 : NV - 2] = 0.5f;
		if (later >= 0)
			l[later] = kl;
		l[at[k]] = keep;
	}
	/* every length through the SIMD tails */
	for (int n = 1; n <= 40; n++) {
		int want = 0;
		for (int i = 1; i < n; i++)
			if (l[i] > l[want])
				want = i;
		assert_int_equal(dk_argmax(l, n), want);
	}
	/* nothing above -inf: no token */
	for (int i = 0; i < 37; i++)
		l[i] = i % 2 ? -INFINITY : NAN;
	assert_int_equal(dk_argmax(l, 37), DK_TOKEN_NULL);
	l[36] = -1e38f;
	assert_int_equal(dk_argmax(l, 37), 36);
	assert_int_equal(dk_argmax(l, 0), DK_TOKEN_NULL);
	free(l);
}

static void test_all_masked(void **state)
{
	(void)state;
	struct dk_sampler_params p = dk_sampler_default_params();
	struct dk_sampler *s = dk_sampler_new(&p, 100);
	float l[100];
	for (int i = 0; i < 100; i++)
		l[i] = -INFINITY;
	assert_int_equal(dk_sampler_sample(s, l), DK_TOKEN_NULL);
	/* one unmasked token: it must be the one, whatever the cuts */
	for (int i = 0; i < 100; i++)
		l[i] = -INFINITY;
	l[77] = -50.0f;
	assert_int_equal(dk_sampler_sample(s, l), 77);
	dk_sampler_free(s);
}

static void test_masked_never_sampled(void **state)
{
	(void)state;
	enum { NV = 50 };
	struct dk_sampler_params p = plain(2.0f, 5);
	struct dk_sampler *s = dk_sampler_new(&p, NV);
	float l[NV];
	for (int i = 0; i < NV; i++)
		l[i] = (i % 2) ? 3.0f : -INFINITY; /* only odd ids allowed */
	int counts[NV];
	histogram(s, l, NV, 5000, counts);
	for (int i = 0; i < NV; i += 2)
		assert_int_equal(counts[i], 0);
	for (int i = 1; i < NV; i += 2)
		assert_true(counts[i] > 0);
	dk_sampler_free(s);
}

static void test_determinism(void **state)
{
	(void)state;
	enum { NV = 1000, N = 200 };
	float base[NV];
	for (int i = 0; i < NV; i++)
		base[i] = sinf((float)i * 0.37f) * 3.0f;
	struct dk_sampler_params p = dk_sampler_default_params();
	p.top_k = 0; /* exercise top-p over the whole vocabulary too */
	p.temperature = 1.5f;
	p.seed = 1234;
	dk_token run1[N], run2[N], run3[N];
	float l[NV];
	struct dk_sampler *s = dk_sampler_new(&p, NV);
	for (int i = 0; i < N; i++) {
		memcpy(l, base, sizeof l);
		run1[i] = dk_sampler_sample(s, l);
	}
	dk_sampler_reset(s); /* re-seeds: the same stream again */
	for (int i = 0; i < N; i++) {
		memcpy(l, base, sizeof l);
		run2[i] = dk_sampler_sample(s, l);
	}
	dk_sampler_free(s);
	assert_memory_equal(run1, run2, sizeof run1);

	p.seed = 1235;
	s = dk_sampler_new(&p, NV);
	for (int i = 0; i < N; i++) {
		memcpy(l, base, sizeof l);
		run3[i] = dk_sampler_sample(s, l);
	}
	dk_sampler_free(s);
	assert_memory_not_equal(run1, run3, sizeof run1);
}

/* A fixed seed gives a fixed stream on every platform: pin the first draws
 * so that a change to the PRNG or the draw is noticed. */
static void test_stream_pinned(void **state)
{
	(void)state;
	enum { NV = 16 };
	struct dk_sampler_params p = plain(1.0f, 42);
	struct dk_sampler *s = dk_sampler_new(&p, NV);
	float l[NV];
	dk_token got[8];
	for (int i = 0; i < 8; i++) {
		for (int j = 0; j < NV; j++)
			l[j] = 0.0f; /* uniform: the draw is floor(u * 16) */
		got[i] = dk_sampler_sample(s, l);
	}
	dk_sampler_free(s);
	/* first outputs of xoshiro256** seeded by splitmix64(42), top 53 bits → [0,1) */
	uint64_t x = 42, st[4];
	for (int i = 0; i < 4; i++) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		st[i] = z ^ (z >> 31);
	}
	for (int i = 0; i < 8; i++) {
		uint64_t r = st[1] * 5;
		r = ((r << 7) | (r >> 57)) * 9;
		uint64_t t = st[1] << 17;
		st[2] ^= st[0];
		st[3] ^= st[1];
		st[1] ^= st[2];
		st[0] ^= st[3];
		st[2] ^= t;
		st[3] = (st[3] << 45) | (st[3] >> 19);
		double u = (double)(r >> 11) * 0x1.0p-53;
		assert_int_equal(got[i], (int)(u * NV));
	}
}

static void test_distribution(void **state)
{
	(void)state;
	enum { NV = 6, N = 20000 };
	const float l[NV] = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.5f};
	float pr[NV];
	dk_softmax(l, pr, NV);
	struct dk_sampler_params p = plain(1.0f, 7);
	struct dk_sampler *s = dk_sampler_new(&p, NV);
	int counts[NV];
	histogram(s, l, NV, N, counts);
	for (int i = 0; i < NV; i++) {
		double f = (double)counts[i] / N;
		double sigma = sqrt(pr[i] * (1.0 - pr[i]) / N);
		/* 5 sigma: a correct sampler fails this about once in 10^6 seeds */
		if (fabs(f - pr[i]) > 5 * sigma + 1e-4)
			fail_msg("token %d: frequency %.4f, softmax %.4f", i, f, (double)pr[i]);
	}
	dk_sampler_free(s);

	/* temperature 2 flattens: compare with softmax(l / 2) */
	float l2[NV];
	for (int i = 0; i < NV; i++)
		l2[i] = l[i] / 2.0f;
	dk_softmax(l2, pr, NV);
	p = plain(2.0f, 8);
	s = dk_sampler_new(&p, NV);
	histogram(s, l, NV, N, counts);
	for (int i = 0; i < NV; i++) {
		double f = (double)counts[i] / N;
		double sigma = sqrt(pr[i] * (1.0 - pr[i]) / N);
		if (fabs(f - pr[i]) > 5 * sigma + 1e-4)
			fail_msg("t=2 token %d: frequency %.4f, softmax %.4f", i, f, (double)pr[i]);
	}
	dk_sampler_free(s);
}

static void test_top_k(void **state)
{
	(void)state;
	enum { NV = 1000 };
	float l[NV];
	/* distinct logits in a scrambled order; the 5 largest are known */
	for (int i = 0; i < NV; i++)
		l[i] = (float)((i * 7919) % NV) / 100.0f;
	bool top[NV] = {0};
	for (int i = 0; i < NV; i++)
		if ((i * 7919) % NV >= NV - 5)
			top[i] = true;
	struct dk_sampler_params p = plain(50.0f, 3); /* hot: all 5 get picked */
	p.top_k = 5;
	struct dk_sampler *s = dk_sampler_new(&p, NV);
	int counts[NV];
	histogram(s, l, NV, 4000, counts);
	for (int i = 0; i < NV; i++) {
		if (top[i])
			assert_true(counts[i] > 400);
		else
			assert_int_equal(counts[i], 0);
	}
	dk_sampler_free(s);

	/* top_k = 1 is greedy */
	p.top_k = 1;
	s = dk_sampler_new(&p, NV);
	histogram(s, l, NV, 200, counts);
	int best = 0;
	for (int i = 1; i < NV; i++)
		if (l[i] > l[best])
			best = i;
	assert_int_equal(counts[best], 200);
	dk_sampler_free(s);

	/* many equal logits around the cut still yield a valid k-set */
	for (int i = 0; i < NV; i++)
		l[i] = (i % 3 == 0) ? 1.0f : 0.0f;
	l[500] = 2.0f;
	p.top_k = 10;
	s = dk_sampler_new(&p, NV);
	histogram(s, l, NV, 2000, counts);
	int distinct = 0;
	for (int i = 0; i < NV; i++) {
		if (counts[i]) {
			distinct++;
			assert_true(i == 500 || i % 3 == 0);
		}
	}
	assert_true(distinct <= 10 && distinct >= 5);
	dk_sampler_free(s);
}

static void test_top_p(void **state)
{
	(void)state;
	enum { NV = 5 };
	/* probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 */
	float pr[NV] = {0.0625f, 0.5f, 0.125f, 0.0625f, 0.25f};
	float l[NV];
	for (int i = 0; i < NV; i++)
		l[i] = logf(pr[i]);
	int counts[NV];
	struct dk_sampler_params p = plain(1.0f, 11);
	/* 0.7: 0.5 + 0.25 reaches it → ids 1 and 4 */
	p.top_p = 0.7f;
	struct dk_sampler *s = dk_sampler_new(&p, NV);
	histogram(s, l, NV, 6000, counts);
	assert_int_equal(counts[0] + counts[2] + counts[3], 0);
	/* renormalised: 2/3 and 1/3 */
	assert_true(fabs(counts[1] / 6000.0 - 2.0 / 3.0) < 0.03);
	dk_sampler_free(s);
	/* 0.8: needs the 0.125 too */
	p.top_p = 0.8f;
	s = dk_sampler_new(&p, NV);
	histogram(s, l, NV, 6000, counts);
	assert_int_equal(counts[0] + counts[3], 0);
	assert_true(counts[1] && counts[4] && counts[2]);
	dk_sampler_free(s);
	/* tiny p keeps only the most probable */
	p.top_p = 0.01f;
	s = dk_sampler_new(&p, NV);
	histogram(s, l, NV, 300, counts);
	assert_int_equal(counts[1], 300);
	dk_sampler_free(s);
	/* top-p applies after temperature: at t=100 the mass is nearly flat, so
	 * 0.7 needs four of the five */
	p = plain(100.0f, 12);
	p.top_p = 0.7f;
	s = dk_sampler_new(&p, NV);
	histogram(s, l, NV, 6000, counts);
	int used = 0;
	for (int i = 0; i < NV; i++)
		used += counts[i] > 0;
	assert_int_equal(used, 4);
	dk_sampler_free(s);
}

static void test_min_p(void **state)
{
	(void)state;
	enum { NV = 5 };
	float pr[NV] = {0.4f, 0.3f, 0.15f, 0.1f, 0.05f};
	float l[NV];
	for (int i = 0; i < NV; i++)
		l[i] = logf(pr[i]);
	int counts[NV];
	struct dk_sampler_params p = plain(1.0f, 13);
	/* 0.3 * 0.4 = 0.12: keeps 0.4, 0.3, 0.15 */
	p.min_p = 0.3f;
	struct dk_sampler *s = dk_sampler_new(&p, NV);
	histogram(s, l, NV, 5000, counts);
	assert_int_equal(counts[3] + counts[4], 0);
	assert_true(counts[0] && counts[1] && counts[2]);
	assert_true(fabs(counts[0] / 5000.0 - 0.4 / 0.85) < 0.03);
	dk_sampler_free(s);
	p.min_p = 0.8f; /* 0.32: only 0.4 */
	s = dk_sampler_new(&p, NV);
	histogram(s, l, NV, 300, counts);
	assert_int_equal(counts[0], 300);
	dk_sampler_free(s);
}

static void test_penalties(void **state)
{
	(void)state;
	enum { NV = 8 };
	struct dk_sampler_params p = plain(0.0f, 0);
	p.repeat_penalty = 2.0f;
	p.penalty_last_n = 3;
	struct dk_sampler *s = dk_sampler_new(&p, NV);
	/* history 1, 2, 2, 3 with window 3 → window holds 2, 2, 3 */
	dk_sampler_accept(s, 1);
	dk_sampler_accept(s, 2);
	dk_sampler_accept(s, 2);
	dk_sampler_accept(s, 3);
	float l[NV] = {0.5f, 4.0f, 4.0f, -1.0f, 1.0f, 3.9f, 0.0f, 0.0f};
	dk_token t = dk_sampler_sample(s, l);
	/* 1 fell out of the window: untouched; 2 halved once though it repeats;
	 * negative 3 doubled */
	assert_true(l[1] == 4.0f);
	assert_true(l[2] == 2.0f);
	assert_true(l[3] == -2.0f);
	assert_true(l[0] == 0.5f && l[4] == 1.0f);
	assert_int_equal(t, 1);
	dk_sampler_free(s);

	/* frequency and presence: subtract freq*count + presence */
	p = plain(0.0f, 0);
	p.freq_penalty = 0.5f;
	p.presence_penalty = 0.25f;
	p.penalty_last_n = 64;
	s = dk_sampler_new(&p, NV);
	dk_sampler_accept(s, 5);
	dk_sampler_accept(s, 5);
	dk_sampler_accept(s, 5);
	dk_sampler_accept(s, 6);
	float m[NV] = {0, 0, 0, 0, 0, 3.0f, 1.0f, -INFINITY};
	t = dk_sampler_sample(s, m);
	assert_true(fabsf(m[5] - (3.0f - 1.5f - 0.25f)) < 1e-6f);
	assert_true(fabsf(m[6] - (1.0f - 0.5f - 0.25f)) < 1e-6f);
	assert_true(m[0] == 0.0f);
	assert_int_equal(t, 5);
	/* penalties do not touch the history itself: the same again */
	float m2[NV] = {0, 0, 0, 0, 0, 3.0f, 1.0f, 0};
	dk_sampler_sample(s, m2);
	assert_true(fabsf(m2[5] - 1.25f) < 1e-6f);
	/* reset forgets the history */
	dk_sampler_reset(s);
	float m3[NV] = {0, 0, 0, 0, 0, 3.0f, 1.0f, 0};
	dk_sampler_sample(s, m3);
	assert_true(m3[5] == 3.0f);
	/* out-of-range ids are ignored */
	dk_sampler_accept(s, -1);
	dk_sampler_accept(s, NV);
	dk_sampler_free(s);

	/* with penalties a repeated favourite loses to the runner-up */
	p = plain(0.0f, 0);
	p.repeat_penalty = 1.5f;
	s = dk_sampler_new(&p, NV);
	dk_sampler_accept(s, 0);
	float n[NV] = {3.0f, 2.5f, 0, 0, 0, 0, 0, 0};
	assert_int_equal(dk_sampler_sample(s, n), 1);
	dk_sampler_free(s);
}

static void test_softmax(void **state)
{
	(void)state;
	float l[4] = {1000.0f, 1000.0f, -INFINITY, 999.0f};
	float p[4];
	dk_softmax(l, p, 4);
	float e = expf(-1.0f);
	float z = 2.0f + e;
	assert_true(fabsf(p[0] - 1.0f / z) < 1e-6f);
	assert_true(fabsf(p[1] - 1.0f / z) < 1e-6f);
	assert_true(p[2] == 0.0f);
	assert_true(fabsf(p[3] - e / z) < 1e-6f);
	float m[3] = {-INFINITY, -INFINITY, -INFINITY};
	dk_softmax(m, p, 3);
	assert_true(p[0] == 0.0f && p[1] == 0.0f && p[2] == 0.0f);
}

static int cmp_desc(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x < y) - (x > y);
}

/* The sets the cuts keep must equal what a full descending sort keeps:
 * every sampled token lies in the reference set and every member of the
 * set gets sampled.  Covers the bucketed top-p and the quickselect top-k
 * (k > n/16). */
static void test_cut_sets_match_sort(void **state)
{
	(void)state;
	enum { NV = 300, N = 20000 };
	float l[NV], sorted[NV], w[NV];
	uint64_t x = 4242;
	for (int i = 0; i < NV; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		l[i] = (float)(x >> 40) / (float)(1 << 24) * 6.0f - 3.0f;
	}
	int counts[NV];
	for (int pass = 0; pass < 3; pass++) {
		const float top_p = pass == 0 ? 0.5f : pass == 1 ? 0.9f : 1.0f;
		const int top_k = pass == 2 ? 100 : 0;
		/* reference threshold: the logit of the last kept token */
		memcpy(sorted, l, sizeof sorted);
		qsort(sorted, NV, sizeof *sorted, cmp_desc);
		float thr;
		if (top_k) {
			thr = sorted[top_k - 1];
		} else {
			double tot = 0, cum = 0;
			for (int i = 0; i < NV; i++)
				tot += (w[i] = expf(sorted[i] - sorted[0]));
			int i = 0;
			while ((cum += w[i]) < top_p * tot)
				i++;
			thr = sorted[i];
		}
		struct dk_sampler_params p = plain(1.0f, 100 + (uint64_t)pass);
		p.top_p = top_p;
		p.top_k = top_k;
		struct dk_sampler *s = dk_sampler_new(&p, NV);
		histogram(s, l, NV, N, counts);
		for (int i = 0; i < NV; i++) {
			if (l[i] >= thr && counts[i] == 0)
				fail_msg("pass %d: token %d (logit %.3f >= %.3f) never sampled", pass, i,
					 (double)l[i], (double)thr);
			if (l[i] < thr && counts[i] != 0)
				fail_msg("pass %d: token %d (logit %.3f < %.3f) sampled", pass, i,
					 (double)l[i], (double)thr);
		}
		dk_sampler_free(s);
	}
}

/* A large vocabulary with the default chain (top-k 40): still picks only
 * among the top 40. */
static void test_large_vocab(void **state)
{
	(void)state;
	enum { NV = 49152 };
	float *base = malloc(NV * sizeof *base), *l = malloc(NV * sizeof *l);
	uint64_t x = 99;
	for (int i = 0; i < NV; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		base[i] = (float)(x >> 40) / (float)(1 << 24) * 20.0f - 10.0f;
	}
	/* the 40th largest value */
	float *sorted = malloc(NV * sizeof *sorted);
	memcpy(sorted, base, NV * sizeof *sorted);
	for (int i = 0; i < 40; i++) { /* partial selection sort: 40 passes */
		int b = i;
		for (int j = i + 1; j < NV; j++)
			if (sorted[j] > sorted[b])
				b = j;
		float t = sorted[i];
		sorted[i] = sorted[b];
		sorted[b] = t;
	}
	float kth = sorted[39];
	struct dk_sampler_params p = dk_sampler_default_params();
	p.temperature = 5.0f;
	p.min_p = 0.0f;
	p.top_p = 1.0f;
	struct dk_sampler *s = dk_sampler_new(&p, NV);
	for (int i = 0; i < 300; i++) {
		memcpy(l, base, NV * sizeof *l);
		dk_token t = dk_sampler_sample(s, l);
		assert_true(t >= 0 && t < NV);
		assert_true(base[t] >= kth);
	}
	/* top-p alone over the whole vocabulary */
	dk_sampler_free(s);
	p.top_k = 0;
	p.top_p = 0.5f;
	p.temperature = 0.3f;
	s = dk_sampler_new(&p, NV);
	for (int i = 0; i < 100; i++) {
		memcpy(l, base, NV * sizeof *l);
		dk_token t = dk_sampler_sample(s, l);
		assert_true(base[t] >= sorted[39] - 1.0f); /* t=0.3 puts the mass at the very top */
	}
	dk_sampler_free(s);
	free(sorted);
	free(base);
	free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_greedy),
		cmocka_unit_test(test_argmax),
		cmocka_unit_test(test_all_masked),
		cmocka_unit_test(test_masked_never_sampled),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_stream_pinned),
		cmocka_unit_test(test_distribution),
		cmocka_unit_test(test_top_k),
		cmocka_unit_test(test_top_p),
		cmocka_unit_test(test_min_p),
		cmocka_unit_test(test_cut_sets_match_sort),
		cmocka_unit_test(test_penalties),
		cmocka_unit_test(test_softmax),
		cmocka_unit_test(test_large_vocab),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
