/*
 * Single-thread matrix-vector throughput of every vec_dot per kernel level.
 *
 *   bench_kernels [-q] [type...]      (-q: shorter timing; types as "q4_1")
 *
 * A shape "K x M" is M weight rows of K elements times one activation row of
 * K (the activation is quantised once, outside the timing, as the engine
 * does per token).  GB/s counts weight bytes read; GFLOP/s counts 2*K*M.
 * "x ref" is the speed-up over the scalar reference.  The batched table
 * times vec_dot_n over 8 activation columns against 8 vec_dot passes.
 * Times are the best of repeated runs, in thread CPU time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kernels/quant.h"

/* thread CPU time: on a busy machine, preemption does not count against a
 * kernel (shared caches still do) */
static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)(rng >> 40) * 0x1p-24f * 2.0f - 1.0f;
}

static const struct { enum dk_ttype t; const char *name; } types[] = {
	{ DK_TYPE_F32, "f32" },   { DK_TYPE_F16, "f16" },   { DK_TYPE_BF16, "bf16" },
	{ DK_TYPE_Q4_0, "q4_0" }, { DK_TYPE_Q4_1, "q4_1" }, { DK_TYPE_Q5_0, "q5_0" },
	{ DK_TYPE_Q5_1, "q5_1" }, { DK_TYPE_Q8_0, "q8_0" }, { DK_TYPE_Q2_K, "q2_k" },
	{ DK_TYPE_Q3_K, "q3_k" }, { DK_TYPE_Q4_K, "q4_k" }, { DK_TYPE_Q5_K, "q5_k" },
	{ DK_TYPE_Q6_K, "q6_k" },
};
#define NT (sizeof types / sizeof types[0])

static const struct { int64_t k, m; } shapes[] = { { 576, 1536 }, { 1536, 576 }, { 2048, 8192 } };

static double min_time = 0.25;
static volatile float sink;

/* seconds per matrix-vector product (best of several) */
static double time_matvec(const struct dk_qtraits *t, int64_t k, int64_t m, const void *w,
			  size_t rb, const void *act, float *out)
{
	double best = 1e30, start = now();
	int reps = 0;
	while (reps < 2 || now() - start < min_time) {
		double t0 = now();
		for (int64_t r = 0; r < m; r++)
			t->vec_dot(k, out + r, (const char *)w + r * rb, act);
		double dt = now() - t0;
		best = dt < best ? dt : best;
		reps++;
		if (reps > 10000)
			break;
	}
	sink += out[m / 2];
	return best;
}

/* seconds for ny activation columns: vec_dot_n (batched=1) or ny passes */
static double time_batch(const struct dk_qtraits *t, int64_t k, int64_t m, const void *w,
			 size_t rb, const void *act, size_t ab, int ny, float *out, int batched)
{
	double best = 1e30, start = now();
	int reps = 0;
	while (reps < 2 || now() - start < min_time) {
		double t0 = now();
		if (batched) {
			for (int64_t r = 0; r < m; r++)
				t->vec_dot_n(k, out + r, (size_t)m, (const char *)w + r * rb, act, ab, ny);
		} else {
			for (int j = 0; j < ny; j++)
				for (int64_t r = 0; r < m; r++)
					t->vec_dot(k, out + j * m + r, (const char *)w + r * rb,
						   (const char *)act + j * ab);
		}
		double dt = now() - t0;
		best = dt < best ? dt : best;
		reps++;
	}
	sink += out[m / 2];
	return best;
}

int main(int argc, char **argv)
{
	int want[NT];
	int any = 0;
	for (size_t i = 0; i < NT; i++)
		want[i] = 0;
	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "-q")) {
			min_time = 0.05;
			continue;
		}
		size_t i;
		for (i = 0; i < NT; i++)
			if (!strcmp(argv[a], types[i].name))
				break;
		if (i == NT) {
			fprintf(stderr, "usage: bench_kernels [-q] [type...]\n");
			return 2;
		}
		want[i] = any = 1;
	}
	int top = 0;
	while (top < 2 && dk_quant_traits_level(DK_TYPE_F32, top + 1))
		top++;
	printf("kernel levels on this CPU: ref..%s (selected: %s); single thread\n\n",
	       dk_quant_level_name(top), dk_quant_level_name(dk_quant_level()));

	const int64_t kmax = 2048, mmax = 8192;
	float *wf = malloc(sizeof(float) * kmax * mmax);
	float *af = malloc(sizeof(float) * kmax * 8);
	float *out = malloc(sizeof(float) * mmax * 8);
	void *w = malloc(4 * kmax * mmax);
	void *act = malloc(4 * kmax * 8 + 4096);
	if (!wf || !af || !out || !w || !act)
		return 1;
	for (int64_t i = 0; i < kmax * mmax; i++)
		wf[i] = frand() * 0.05f;
	for (int64_t i = 0; i < kmax * 8; i++)
		af[i] = frand();

	printf("%-11s %-5s %-7s %10s %8s %9s %7s\n", "shape", "type", "level", "us/matvec", "GB/s",
	       "GFLOP/s", "x ref");
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		int64_t k = shapes[s].k, m = shapes[s].m;
		for (size_t ti = 0; ti < NT; ti++) {
			if (any && !want[ti])
				continue;
			const struct dk_qtraits *t0 = dk_quant_traits_level(types[ti].t, 0);
			if (k % t0->blck)
				continue; /* K formats need rows of 256 */
			const struct dk_qtraits *at = dk_quant_traits_level(t0->dot_type, 0);
			size_t rb = t0->bytes * (size_t)(k / t0->blck);
			size_t ab = at->bytes * (size_t)(k / at->blck);
			for (int64_t r = 0; r < m; r++)
				t0->from_float(wf + r * k, (char *)w + r * rb, k);
			for (int j = 0; j < 8; j++)
				at->from_float(af + j * k, (char *)act + j * ab, k);
			double tref = 0;
			char sh[32];
			snprintf(sh, sizeof sh, "%lldx%lld", (long long)k, (long long)m);
			for (int lv = 0; lv <= top; lv++) {
				const struct dk_qtraits *t = dk_quant_traits_level(types[ti].t, lv);
				double dt = time_matvec(t, k, m, w, rb, act, out);
				if (lv == 0)
					tref = dt;
				printf("%-11s %-5s %-7s %10.1f %8.2f %9.2f %7.1f\n", sh, types[ti].name,
				       t->kernel, dt * 1e6, (double)(rb * m) / dt * 1e-9,
				       2.0 * k * m / dt * 1e-9, tref / dt);
			}
		}
	}

	printf("\nbatched: 8 activation columns, level %s: vec_dot_n vs 8 x vec_dot\n",
	       dk_quant_level_name(top));
	printf("%-11s %-5s %12s %12s %9s %7s\n", "shape", "type", "8xdot us", "dot_n us", "GFLOP/s",
	       "gain");
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		int64_t k = shapes[s].k, m = shapes[s].m;
		for (size_t ti = 0; ti < NT; ti++) {
			if (any && !want[ti])
				continue;
			const struct dk_qtraits *t = dk_quant_traits_level(types[ti].t, top);
			if (k % t->blck)
				continue;
			const struct dk_qtraits *at = dk_quant_traits_level(t->dot_type, 0);
			size_t rb = t->bytes * (size_t)(k / t->blck);
			size_t ab = at->bytes * (size_t)(k / at->blck);
			for (int64_t r = 0; r < m; r++)
				t->from_float(wf + r * k, (char *)w + r * rb, k);
			for (int j = 0; j < 8; j++)
				at->from_float(af + j * k, (char *)act + j * ab, k);
			double ts = time_batch(t, k, m, w, rb, act, ab, 8, out, 0);
			double tb = time_batch(t, k, m, w, rb, act, ab, 8, out, 1);
			char sh[32];
			snprintf(sh, sizeof sh, "%lldx%lld", (long long)k, (long long)m);
			printf("%-11s %-5s %12.1f %12.1f %9.2f %7.2f\n", sh, types[ti].name, ts * 1e6,
			       tb * 1e6, 16.0 * k * m / tb * 1e-9, ts / tb);
		}
	}
	printf("\nactivation conversion (from_float), us per row\n");
	printf("%-6s %-5s", "n", "type");
	for (int lv = 0; lv <= top; lv++)
		printf(" %9s", dk_quant_level_name(lv));
	printf("\n");
	static const enum dk_ttype acts[] = { DK_TYPE_F16, DK_TYPE_Q8_0, DK_TYPE_Q8_1, DK_TYPE_Q8_K };
	static const char *const act_names[] = { "f16", "q8_0", "q8_1", "q8_k" };
	static const int64_t lens[] = { 768, 2048 };
	for (size_t li = 0; li < 2; li++)
		for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++) {
			printf("%-6lld %-5s", (long long)lens[li], act_names[ai]);
			for (int lv = 0; lv <= top; lv++) {
				const struct dk_qtraits *t = dk_quant_traits_level(acts[ai], lv);
				double best = 1e30, start = now();
				int reps = 0;
				while (reps < 20 || now() - start < min_time / 4) {
					double t0 = now();
					for (int r = 0; r < 8; r++)
						t->from_float(af + r * lens[li], act, lens[li]);
					double dt = (now() - t0) / 8;
					best = dt < best ? dt : best;
					reps++;
				}
				printf(" %9.2f", best * 1e6);
			}
			printf("\n");
		}

	free(wf);
	free(af);
	free(out);
	free(w);
	free(act);
	return 0;
}
