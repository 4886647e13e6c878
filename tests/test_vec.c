/* Elementwise kernels (vec.h) against their scalar references: random
 * gates over the range a model produces and past it (where e^-g
 * overflows or vanishes), every tail length, and splits at every point
 * (threads split rows anywhere: the bits must not move); rotary
 * embeddings in both pair layouts, bit for bit, over head sizes and
 * rotated widths that leave every kind of tail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/quant.h"
#include "engine/kernels/vec.h"
#include "testrng.h"
#include "testutil.h"

#define N 1000

struct level {
	const char *name;
	int level;
	dk_vec_swiglu_fn fn;
};

static const struct level levels[] = {
	{ "avx2", DK_KERNELS_AVX2, dk_vec_swiglu_avx2 },
	{ "avx512", DK_KERNELS_AVX512, dk_vec_swiglu_avx512 },
};

static void make(float *g, float *u, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		float s = i % 7 == 0 ? 120.0f : i % 3 == 0 ? 12.0f : 4.0f;
		g[i] = rng_unif() * s;
		u[i] = rng_unif() * 3.0f;
	}
	/* the edges of expf's range, zero, and values where silu is ~0 or ~g */
	const float edge[] = { 0.0f, -0.0f, 87.5f, -87.5f, 88.5f, -88.5f, 89.0f, -89.0f,
			       104.0f, -104.0f, 200.0f, -200.0f, 1e-30f, -1e-30f, 30.0f, -30.0f };
	for (size_t i = 0; i < sizeof edge / sizeof edge[0] && (int64_t)i < n; i++)
		g[i * 13 % n] = edge[i];
}

static void test_swiglu_matches_ref(void **state)
{
	(void)state;
	rng_seed(7);
	static float g[N], u[N], want[N], got[N];
	int tested = 0;
	for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
		if (dk_quant_level() < levels[l].level)
			continue;
		for (int64_t n = 1; n <= N; n = n < 40 ? n + 1 : n * 5 / 2) {
			make(g, u, n);
			memcpy(want, g, sizeof(float) * (size_t)n);
			memcpy(got, g, sizeof(float) * (size_t)n);
			dk_vec_swiglu_ref(want, u, n);
			levels[l].fn(got, u, n);
			/* the reference's bits (vec.h: one exponential, dk_vec_exp_ref) */
			assert_memory_equal(got, want, sizeof(float) * (size_t)n);
			tested++;
		}
	}
	if (!tested)
		dk_test_skip("no simd swiglu level on this cpu");
}

static void test_swiglu_split_invariant(void **state)
{
	(void)state;
	rng_seed(11);
	static float g[100], u[100], whole[100], parts[100];
	dk_vec_swiglu_fn fn = dk_vec_swiglu_kernel();
	make(g, u, 100);
	memcpy(whole, g, sizeof whole);
	fn(whole, u, 100);
	for (int k = 0; k <= 100; k++) {
		memcpy(parts, g, sizeof parts);
		fn(parts, u, k);
		fn(parts + k, u + k, 100 - k);
		assert_memory_equal(parts, whole, sizeof whole);
	}
}

static void test_swiglu_ref_values(void **state)
{
	(void)state;
	/* silu(0) = 0, silu(x) -> x for large x, -> -0 for very negative x */
	float g[4] = { 0.0f, 50.0f, -200.0f, 1.0f }, u[4] = { 3.0f, 2.0f, 1.0f, 1.0f };
	dk_vec_swiglu_ref(g, u, 4);
	assert_true(g[0] == 0.0f);
	assert_true(g[1] == 100.0f);
	/* e^x is held below e^88: a value below 1e-34 where expf underflows */
	assert_true(fabsf(g[2]) < 1e-34f);
	assert_true(fabsf(g[3] - 0.7310586f) < 1e-6f);
	float h[4] = { 0.0f, 50.0f, -200.0f, 1.0f };
	dk_vec_swiglu_kernel()(h, u, 4);
	assert_memory_equal(h, g, sizeof h);
}

/* The specification's exponential against libm over its range: within
 * 2 ulp-ish (4e-7 relative), and 0 < e^x below it, finite above */
static void test_exp_ref_accuracy(void **state)
{
	(void)state;
	for (float x = -87.0f; x <= 88.0f; x += 0.0123f) {
		double want = exp((double)x), got = dk_vec_exp_ref(x);
		if (!(fabs(got - want) <= 4e-7 * want)) {
			fprintf(stderr, "x %a: got %a want %a\n", x, got, want);
			fail();
		}
	}
	assert_true(dk_vec_exp_ref(-1000.0f) > 0.0f && dk_vec_exp_ref(-1000.0f) < 1e-37f);
	assert_true(isfinite(dk_vec_exp_ref(1000.0f)));
	assert_true(dk_vec_exp_ref(0.0f) == 1.0f);
}

/* The rope table's own sin/cos/pow against libm in double: never more than
 * one float ulp from the exact value, and (being accurate to 1e-15 before
 * rounding) the correctly rounded float nearly always. */
static void test_sincos_pow_ref(void **state)
{
	(void)state;
	long n = 0, exact = 0;
	for (int pos = 0; pos < 9000; pos += 7)
		for (float th = (float)pos, f = 1.0f; f > 1e-4f; f *= 0.7f, th = (float)pos * f) {
			float s, c;
			dk_vec_sincos_ref(th, &s, &c);
			const double ws = sin((double)th), wc = cos((double)th);
			assert_true(fabs(s - ws) <= nextafterf(fabsf((float)ws), INFINITY) - fabsf((float)ws));
			assert_true(fabs(c - wc) <= nextafterf(fabsf((float)wc), INFINITY) - fabsf((float)wc));
			exact += (s == (float)ws) + (c == (float)wc);
			n += 2;
			float ns, nc;
			dk_vec_sincos_ref(-th, &ns, &nc);
			assert_true(ns == -s && nc == c);
		}
	assert_true(exact >= n - n / 10000);
	const float bases[] = { 10000.0f, 100000.0f, 500000.0f, 1000000.0f, 2.5f };
	for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++)
		for (int r = 2; r <= 256; r += 2) {
			const float e = -2.0f / (float)r;
			assert_true(dk_vec_pow_ref(bases[i], e) == (float)pow((double)bases[i], (double)e));
		}
}

/* cos/sin of pair angles as a model's rope table holds them, plus a few
 * large rows so that products round differently from a fused form */
static void rope_make(float *x, int n, float *cs, int n_rot)
{
	for (int i = 0; i < n; i++)
		x[i] = rng_unif() * (i % 11 == 0 ? 300.0f : 3.0f);
	for (int i = 0; i < n_rot / 2; i++) {
		float th = rng_unif() * 40.0f;
		cs[2 * i] = cosf(th);
		cs[2 * i + 1] = sinf(th);
	}
}

static void test_rope_matches_ref(void **state)
{
	(void)state;
	if (dk_quant_level() < DK_KERNELS_AVX512)
		dk_test_skip("kernel level %s: %s checks the avx512 kernel", dk_quant_level_name(dk_quant_level()), __func__);
	rng_seed(23);
	static const int hds[] = { 64, 128, 80, 40, 6 };
	enum { HEADS = 3 };
	static float x[HEADS * 128], want[HEADS * 128], got[HEADS * 128], cs[128];
	int tested = 0;
	for (size_t k = 0; k < sizeof hds / sizeof hds[0]; k++) {
		const int hd = hds[k];
		const int rots[] = { hd, hd / 2 & ~1, 2, hd - 2, 34 < hd ? 34 : hd };
		for (size_t r = 0; r < sizeof rots / sizeof rots[0]; r++) {
			for (int neox = 0; neox < 2; neox++) {
				const int n_rot = rots[r];
				rope_make(x, HEADS * hd, cs, n_rot);
				memcpy(want, x, sizeof(float) * HEADS * (size_t)hd);
				memcpy(got, x, sizeof(float) * HEADS * (size_t)hd);
				dk_vec_rope_ref(want, HEADS, hd, n_rot, cs, neox);
				dk_vec_rope_avx512(got, HEADS, hd, n_rot, cs, neox);
				if (memcmp(want, got, sizeof(float) * HEADS * (size_t)hd)) {
					for (int i = 0; i < HEADS * hd; i++)
						if (memcmp(&want[i], &got[i], sizeof(float)))
							fprintf(stderr, "hd %d n_rot %d neox %d elem %d: %a vs %a\n",
								hd, n_rot, neox, i, got[i], want[i]);
					fail();
				}
				tested++;
			}
		}
	}
	assert_int_equal(tested, 50);
}

static void test_rope_ref_values(void **state)
{
	(void)state;
	/* a quarter turn for pair 0, none for pair 1; elements past n_rot
	 * stay as they were */
	const float cs[4] = { 0.0f, 1.0f, 1.0f, 0.0f };
	float x[6] = { 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f };
	dk_vec_rope_kernel()(x, 1, 6, 4, cs, false);
	const float adj[6] = { -2.0f, 1.0f, 3.0f, 4.0f, 5.0f, 6.0f };
	assert_memory_equal(x, adj, sizeof x);
	float y[6] = { 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f };
	/* neox: pairs (0, 2) and (1, 3) */
	dk_vec_rope_kernel()(y, 1, 6, 4, cs, true);
	const float nx[6] = { -3.0f, 2.0f, 1.0f, 4.0f, 5.0f, 6.0f };
	assert_memory_equal(y, nx, sizeof y);
}

/* rmsnorm: every level gives the reference's bits, at every length up to
 * 70 (the tails past whole groups of 8 and 16) and model widths, in place
 * too, over rows whose squares span many binades */
static void test_rmsnorm_matches_ref(void **state)
{
	(void)state;
	if (dk_quant_level() < DK_KERNELS_AVX512)
		dk_test_skip("kernel level %s: %s checks the avx512 kernel", dk_quant_level_name(dk_quant_level()), __func__);
	rng_seed(41);
	enum { M = 2051 };
	static float x[M], w[M], want[M], got[M];
	for (int i = 0; i < M; i++)
		w[i] = 1.0f + rng_unif() * 0.5f;
	int tested = 0;
	for (int n = 1; n <= M; n = n < 70 ? n + 1 : n < 576 ? 576 : n < 1536 ? 1536 : n < 2048 ? 2048 : n < M ? M : M + 1) {
		for (int i = 0; i < n; i++)
			x[i] = rng_unif() * (i % 13 == 0 ? 1e3f : i % 5 == 0 ? 1e-3f : 2.0f);
		dk_vec_rmsnorm_ref(want, x, w, n, 1e-5f);
		dk_vec_rmsnorm_avx512(got, x, w, n, 1e-5f);
		if (memcmp(want, got, sizeof(float) * (size_t)n)) {
			fprintf(stderr, "rmsnorm n %d differs\n", n);
			fail();
		}
		/* in place */
		dk_vec_rmsnorm_avx512(x, x, w, n, 1e-5f);
		assert_memory_equal(x, want, sizeof(float) * (size_t)n);
		tested++;
	}
	assert_int_equal(tested, 74);
	/* the reference on a known row: rms of (3, 4) is sqrt(12.5) */
	float r[2] = { 3.0f, 4.0f }, one[2] = { 1.0f, 2.0f };
	dk_vec_rmsnorm_ref(r, r, one, 2, 0.0f);
	assert_true(fabsf(r[0] - 3.0f / sqrtf(12.5f)) < 1e-6f);
	assert_true(fabsf(r[1] - 8.0f / sqrtf(12.5f)) < 1e-6f);
}

/* argmax: every level gives the scalar scan's index, over random rows
 * with ties, NaN and -inf sprinkled in, at every length up to 70 and a
 * vocabulary-sized one */
static void test_argmax_matches_ref(void **state)
{
	(void)state;
	if (dk_quant_level() < DK_KERNELS_AVX512)
		dk_test_skip("kernel level %s: %s checks the avx512 kernel", dk_quant_level_name(dk_quant_level()), __func__);
	rng_seed(31);
	enum { NV = 49152 };
	float *x = malloc(NV * sizeof *x);
	assert_non_null(x);
	for (int trial = 0; trial < 200; trial++) {
		int n = trial < 70 ? trial + 1 : trial < 199 ? 1 + (int)(rng_u32() % 5000) : NV;
		for (int i = 0; i < n; i++) {
			uint32_t u = rng_u32() % 100;
			/* few distinct values: ties are common */
			x[i] = u < 3 ? NAN : u < 6 ? -INFINITY : (float)(rng_u32() % 9);
		}
		if (trial % 7 == 0)
			for (int i = 0; i < n; i++)
				x[i] = i % 3 ? -INFINITY : NAN;
		int32_t want = dk_vec_argmax_ref(x, n), got = dk_vec_argmax_avx512(x, n);
		if (want != got) {
			fprintf(stderr, "n %d: avx512 %d, ref %d\n", n, got, want);
			fail();
		}
	}
	free(x);
}


/* tanh against libm's in double: within one float ulp everywhere */
static void test_tanh_ref(void **state)
{
	(void)state;
	for (int i = -40000; i <= 40000; i++) {
		float x = (float)i * 0.00073f;
		if (i % 97 == 0)
			x = ldexpf(1.0f + (float)(i % 13) / 13.0f, i / 1000); /* tiny and huge */
		double want = tanh((double)x);
		float got = dk_vec_tanh_ref(x);
		if (fabs((double)got - want) > ldexp(1.0, -23) * fabs(want) + 1e-45)
			fail_msg("tanh(%a) = %a, libm %a", x, got, want);
	}
	assert_true(dk_vec_tanh_ref(30.0f) == 1.0f && dk_vec_tanh_ref(-30.0f) == -1.0f);
	assert_true(dk_vec_tanh_ref(0.0f) == 0.0f);
}

/* GeGLU: the cut-offs at -10 and 10, and inside them the fp16 lookup
 * (values from the formula in double, rounded to fp16, then times u) */
static void test_geglu_ref_values(void **state)
{
	(void)state;
	float g[] = {-12.0f, -10.0f, 10.0f, 11.0f, 1.0f, -1.0f, 0.5f, 2.0f, 3.1f, -0.0f};
	float u[] = {2.0f, 2.0f, 0.5f, -1.0f, 1.0f, 3.0f, -2.0f, 1.0f, 0.25f, 7.0f};
	enum { NG = sizeof g / sizeof g[0] };
	float y[NG];
	memcpy(y, g, sizeof g);
	dk_vec_geglu_ref(y, u, NG);
	assert_true(y[0] == 0.0f && y[1] == 0.0f);
	assert_true(y[2] == 5.0f && y[3] == -11.0f);
	for (int i = 4; i < NG; i++) {
		double x = dk_fp16_to_fp32(dk_fp32_to_fp16(g[i]));
		double ge = 0.5 * x * (1 + tanh(0.7978845608028654 * x * (1 + 0.044715 * x * x)));
		float want = dk_fp16_to_fp32(dk_fp32_to_fp16((float)ge)) * u[i];
		if (y[i] != want)
			fail_msg("geglu(%g, %g) = %a, want %a", g[i], u[i], y[i], want);
	}
	/* gelu(1) = 0.8411920, whose nearest fp16 is 0.8413086 */
	assert_true(fabsf(y[4] - 0.8413086f) < 1e-7f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_swiglu_matches_ref),
		cmocka_unit_test(test_swiglu_split_invariant),
		cmocka_unit_test(test_swiglu_ref_values),
		cmocka_unit_test(test_tanh_ref),
		cmocka_unit_test(test_geglu_ref_values),
		cmocka_unit_test(test_exp_ref_accuracy),
		cmocka_unit_test(test_sincos_pow_ref),
		cmocka_unit_test(test_rope_matches_ref),
		cmocka_unit_test(test_rope_ref_values),
		cmocka_unit_test(test_argmax_matches_ref),
		cmocka_unit_test(test_rmsnorm_matches_ref),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
