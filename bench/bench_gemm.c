/*
 * Single-thread matrix x matrix throughput for the prefill / batched decode
 * shapes: the engine's vec_dot_n loop (tiles of 32 tokens, one weight row
 * at a time, the engine's path for types without a packed layout) against
 * the row-interleaved kernel (engine/kernels/pack.h, packing outside the timing)
 * and against dequantise + OpenBLAS sgemm (1 thread).
 *
 *   bench_gemm [-q] [-t T,T...] [type...]
 *     -q: fewer shapes and T; -t: these column counts instead of 16,64,512
 *     (e.g. -t 1,2,4,8 for batched decode); types as "q4_0"
 *
 * A shape "K x M" is M weight rows of K elements; T activation columns.
 * GFLOP/s counts 2*K*M*T.  Activation conversion (from_float) is outside
 * the timing for vec_dot_n and packed (the engine converts once per layer
 * input); the BLAS column includes the dequantisation of the weights.
 * Times are the best of repeated runs, in thread CPU time.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kernels/gemm.h"
#include "engine/kernels/pack.h"
#include "engine/kernels/quant.h"

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
	{ DK_TYPE_Q4_0, "q4_0" }, { DK_TYPE_Q4_1, "q4_1" }, { DK_TYPE_Q5_0, "q5_0" },
	{ DK_TYPE_Q5_1, "q5_1" }, { DK_TYPE_Q8_0, "q8_0" }, { DK_TYPE_Q2_K, "q2_k" },
	{ DK_TYPE_Q3_K, "q3_k" }, { DK_TYPE_Q4_K, "q4_k" }, { DK_TYPE_Q5_K, "q5_k" },
	{ DK_TYPE_Q6_K, "q6_k" }, { DK_TYPE_F16, "f16" },
};
#define NTYPES (sizeof types / sizeof types[0])

static const struct { int64_t k, m; const char *what; } shapes[] = {
	{ 576, 576, "smol q/o" },     { 576, 192, "smol k/v" },  { 576, 1536, "smol gate/up" },
	{ 1536, 576, "smol down" },   { 576, 49152, "smol out" }, { 2048, 2048, "1B q/o" },
	{ 2048, 8192, "1B gate/up" },
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])
static int32_t Ts[16] = { 16, 64, 512 };
static size_t nTs = 3;

static double min_time = 0.2;

struct job {
	const struct dk_qtraits *tr;
	int64_t k, m;
	int32_t T;
	size_t wrow, xrow;
	const uint8_t *w, *xq;
	const float *x;
	float *y, *scratch;
	size_t scratch_n;
	const struct dk_pack *pk;
};

static void run_dotn(const struct job *j)
{
	for (int32_t t0 = 0; t0 < j->T; t0 += 32) {
		int nt = j->T - t0 < 32 ? j->T - t0 : 32;
		for (int64_t r = 0; r < j->m; r++)
			j->tr->vec_dot_n(j->k, j->y + (size_t)t0 * j->m + r, (size_t)j->m,
					 j->w + (size_t)r * j->wrow, j->xq + (size_t)t0 * j->xrow, j->xrow, nt);
	}
}

static void run_pack(const struct job *j)
{
	dk_pack_gemm(j->pk, 0, dk_pack_groups(j->pk), j->xq, j->xrow, j->T, j->y, j->m);
}

static void run_blas(const struct job *j)
{
	dk_gemm_blas(j->tr->type, j->k, j->w, j->wrow, j->m, j->x, j->k, j->T, j->y, j->m, j->scratch,
		     j->scratch_n);
}

static double gflops(void (*fn)(const struct job *), const struct job *j)
{
	double best = 1e30, start = now();
	int reps = 0;
	while (reps < 2 || now() - start < min_time) {
		double t0 = now();
		fn(j);
		double dt = now() - t0;
		if (dt < best)
			best = dt;
		reps++;
	}
	return 2.0 * (double)j->k * (double)j->m * j->T / best * 1e-9;
}

int main(int argc, char **argv)
{
	int quick = 0, want[NTYPES] = { 0 }, any = 0;
	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "-t") && a + 1 < argc) {
			nTs = 0;
			for (char *p = argv[++a]; *p && nTs < 16;) {
				long v = strtol(p, &p, 10);
				if (v < 1 || v > 512) {
					fprintf(stderr, "bench_gemm: T must be in 1..512\n");
					return 2;
				}
				Ts[nTs++] = (int32_t)v;
				if (*p == ',')
					p++;
				else if (*p)
					return 2;
			}
			continue;
		}
		if (!strcmp(argv[a], "-q")) {
			quick = 1;
			min_time = 0.05;
			continue;
		}
		for (size_t i = 0; i < NTYPES; i++)
			if (!strcmp(argv[a], types[i].name))
				want[i] = any = 1;
	}
	openblas_set_num_threads(1);
	printf("1 thread, level %s; GFLOP/s (2*K*M*T)\n", dk_quant_level_name(dk_quant_level()));
	printf("%-5s %-13s %5s %5s %4s %9s %9s %9s  %s\n", "type", "shape", "K", "M", "T",
	       "vec_dot_n", "packed", "blas", "winner");
	for (size_t ti = 0; ti < NTYPES; ti++) {
		if (any && !want[ti])
			continue;
		const struct dk_qtraits *tr = dk_quant_traits(types[ti].t);
		const struct dk_qtraits *dt = dk_quant_traits(tr->dot_type);
		for (size_t si = 0; si < NSHAPES; si++) {
			if (quick && si != 0 && si != 3 && si != 5)
				continue;
			int64_t k = shapes[si].k, m = shapes[si].m;
			if (k % tr->blck) /* K formats: rows of whole super-blocks only */
				continue;
			size_t wrow = dk_ttype_row_bytes(types[ti].t, k);
			size_t xrow = dk_ttype_row_bytes(tr->dot_type, k);
			int32_t Tmax = 512;
			uint8_t *w = malloc(wrow * (size_t)m), *xq = malloc(xrow * (size_t)Tmax);
			float *x = malloc(sizeof(float) * (size_t)(k * Tmax));
			float *y = malloc(sizeof(float) * (size_t)(m * Tmax));
			float *row = malloc(sizeof(float) * (size_t)k);
			size_t sn = dk_gemm_blas_scratch(k);
			float *scratch = malloc(sizeof(float) * sn);
			if (!w || !xq || !x || !y || !row || !scratch) {
				fprintf(stderr, "bench_gemm: out of memory\n");
				return 1;
			}
			for (int64_t r = 0; r < m; r++) {
				for (int64_t i = 0; i < k; i++)
					row[i] = frand() * 0.05f;
				tr->from_float(row, w + (size_t)r * wrow, k);
			}
			for (int64_t i = 0; i < k * Tmax; i++)
				x[i] = frand();
			for (int32_t t = 0; t < Tmax; t++)
				dt->from_float(x + (size_t)t * k, xq + (size_t)t * xrow, k);
			struct dk_pack *pk = dk_pack_supported(types[ti].t)
						     ? dk_pack_new(types[ti].t, w, wrow, k, m)
						     : NULL;
			for (size_t a = 0; a < nTs; a++) {
				if (quick && Ts[a] == 512)
					continue;
				struct job j = { tr, k, m, Ts[a], wrow, xrow, w, xq, x, y, scratch, sn, pk };
				double fd = gflops(run_dotn, &j);
				double fp = pk ? gflops(run_pack, &j) : 0;
				double fb = gflops(run_blas, &j);
				const char *win = fb > fd && fb > fp ? "blas" : fp > fd ? "packed" : "vec_dot_n";
				char ps[16];
				snprintf(ps, sizeof ps, "%9.1f", fp);
				if (!pk)
					snprintf(ps, sizeof ps, "%9s", "-");
				printf("%-5s %-13s %5lld %5lld %4d %9.1f %s %9.1f  %s\n", types[ti].name,
				       shapes[si].what, (long long)k, (long long)m, Ts[a], fd, ps, fb, win);
				fflush(stdout);
			}
			free(w);
			free(xq);
			free(x);
			free(y);
			free(row);
			free(scratch);
			dk_pack_free(pk);
		}
	}
	return 0;
}
