#include "docket/bounds.h"

#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kernels/pack.h"
#include "engine/kernels/quant.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double dk_bounds_sgemm_gflops(int n, int threads, int reps)
{
	if (n < 16 || n > 8192 || threads < 1 || reps < 1)
		return -1;
	size_t nn = (size_t)n * (size_t)n;
	float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
	if (!a || !b || !c) {
		free(a);
		free(b);
		free(c);
		return -1;
	}
	/* Values in [-1, 1) keep the sums finite; denormals would slow it. */
	uint32_t s = 12345;
	for (size_t i = 0; i < nn; i++) {
		s = s * 1664525u + 1013904223u;
		a[i] = (float)(s >> 8) / (float)(1u << 23) - 1.0f;
		s = s * 1664525u + 1013904223u;
		b[i] = (float)(s >> 8) / (float)(1u << 23) - 1.0f;
	}
	int old = openblas_get_num_threads();
	openblas_set_num_threads(threads);
	double best = 0;
	for (int r = -1; r < reps; r++) {
		double t0 = now_s();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n,
			    0.0f, c, n);
		double dt = now_s() - t0;
		if (r >= 0 && dt > 0) {
			double g = 2.0 * (double)n * (double)n * (double)n / dt * 1e-9;
			if (g > best)
				best = g;
		}
	}
	openblas_set_num_threads(old > 0 ? old : 1);
	free(a);
	free(b);
	free(c);
	return best;
}

/* Eight floats per step in four independent accumulators: enough loads in
 * flight to saturate memory without asking the compiler for -ffast-math. */
typedef float dk_v8f __attribute__((vector_size(32), aligned(32)));

struct read_job {
	const float *p;
	size_t n;       /* floats, a multiple of 32 */
	float *fill;    /* non-NULL: write this slice instead of reading it */
	float sum;
};

/* Compiled for the widest vectors the CPU has (chosen at load time): with
 * the baseline's 16-byte loads this loop read 19 GB/s on a machine where
 * 64-byte loads, as the engine's kernels issue them, read 29 GB/s, and the
 * decode roofline ratio came out above 1. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static float read_sum(const float *p, size_t n)
{
	const dk_v8f *v = (const dk_v8f *)(const void *)p;
	dk_v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
	for (size_t i = 0; i < n / 8; i += 4) {
		a0 += v[i];
		a1 += v[i + 1];
		a2 += v[i + 2];
		a3 += v[i + 3];
	}
	dk_v8f t = a0 + a1 + a2 + a3;
	float s = 0;
	for (int k = 0; k < 8; k++)
		s += t[k];
	return s;
}

static void *read_worker(void *arg)
{
	struct read_job *j = arg;
	if (j->fill) {
		for (size_t i = 0; i < j->n; i++)
			j->fill[i] = (float)(i & 1023) * (1.0f / 1024.0f);
		return NULL;
	}
	j->sum = read_sum(j->p, j->n);
	return NULL;
}

/* Runs fn on each of n jobs (job i at (char *)jobs + i*size), one thread
 * each, and waits for them; returns the seconds it took, or -1 when a
 * thread could not be started (those that did are still joined). */
static double run_threads(int n, void *(*fn)(void *), void *jobs, size_t size)
{
	pthread_t tid[256];
	double t0 = now_s();
	int started = 0;
	for (int i = 0; i < n && i < 256; i++) {
		if (pthread_create(&tid[i], NULL, fn, (char *)jobs + (size_t)i * size) != 0)
			break;
		started++;
	}
	for (int i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	double dt = now_s() - t0;
	return started < n ? -1 : dt;
}

/* Runs one pass over the array with `threads` threads; returns seconds or -1. */
static double read_pass(float *arr, size_t n, int threads, int fill, float *sum)
{
	struct read_job jobs[256];
	size_t per = n / (size_t)threads / 32 * 32;
	for (int i = 0; i < threads; i++) {
		jobs[i].p = arr + per * (size_t)i;
		jobs[i].n = i == threads - 1 ? n - per * (size_t)i : per;
		jobs[i].fill = fill ? arr + per * (size_t)i : NULL;
		jobs[i].sum = 0;
	}
	double dt = run_threads(threads, read_worker, jobs, sizeof jobs[0]);
	if (dt < 0)
		return -1;
	float s = 0;
	for (int i = 0; i < threads; i++)
		s += jobs[i].sum;
	*sum = s;
	return dt;
}

double dk_bounds_read_gbps(size_t bytes, int threads, int reps)
{
	if (threads < 1 || threads > 256 || reps < 1)
		return -1;
	bytes &= ~(size_t)4095;
	if (bytes < 65536)
		bytes = 65536;
	float *arr = aligned_alloc(4096, bytes);
	if (!arr)
		return -1;
	size_t n = bytes / sizeof(float);
	float sum = 0;
	/* Written by the same threads that read it, so pages are local to them. */
	if (read_pass(arr, n, threads, 1, &sum) < 0) {
		free(arr);
		return -1;
	}
	double best = 0;
	volatile float sink = 0;
	for (int r = 0; r < reps; r++) {
		double dt = read_pass(arr, n, threads, 0, &sum);
		if (dt < 0) {
			free(arr);
			return -1;
		}
		sink += sum; /* keeps the reads observable */
		if (dt > 0 && (double)bytes / dt * 1e-9 > best)
			best = (double)bytes / dt * 1e-9;
	}
	(void)sink;
	free(arr);
	return best;
}

/* int8 bound: a matrix small enough for L2, many passes per timing */
enum { I8_ROWS = 1024, I8_COLS = 1024, I8_T = 16, I8_PASSES = 256 };

struct i8_job {
	const struct dk_pack *p;
	int64_t g0, g1;
	const void *xq;
	size_t xrow;
	float *y;
};

static void *i8_worker(void *arg)
{
	struct i8_job *j = arg;
	for (int r = 0; r < I8_PASSES; r++)
		dk_pack_gemm(j->p, j->g0, j->g1, j->xq, j->xrow, I8_T, j->y, I8_ROWS);
	return NULL;
}

double dk_bounds_int8_gops(int threads, int reps)
{
	if (threads < 1 || threads > 256 || reps < 1)
		return -1;
	if (!dk_pack_supported(DK_TYPE_Q4_0))
		return 0;
	const struct dk_qtraits *wt = dk_quant_traits(DK_TYPE_Q4_0);
	const struct dk_qtraits *at = dk_quant_traits(DK_TYPE_Q8_0);
	size_t wrow = dk_ttype_row_bytes(DK_TYPE_Q4_0, I8_COLS);
	size_t xrow = dk_ttype_row_bytes(DK_TYPE_Q8_0, I8_COLS);
	float *f = malloc((size_t)I8_COLS * sizeof *f);
	uint8_t *w = malloc(wrow * I8_ROWS), *xq = malloc(xrow * I8_T);
	float *y = malloc((size_t)I8_ROWS * I8_T * sizeof *y);
	struct i8_job *jobs = calloc((size_t)threads, sizeof *jobs);
	struct dk_pack *p = NULL;
	double best = -1;
	if (!f || !w || !xq || !y || !jobs)
		goto out;
	uint32_t s = 777;
	for (int r = 0; r < I8_ROWS + I8_T; r++) {
		for (int i = 0; i < I8_COLS; i++) {
			s = s * 1664525u + 1013904223u;
			f[i] = (float)(s >> 8) / (float)(1u << 23) - 1.0f;
		}
		if (r < I8_ROWS)
			wt->from_float(f, w + (size_t)r * wrow, I8_COLS);
		else
			at->from_float(f, xq + (size_t)(r - I8_ROWS) * xrow, I8_COLS);
	}
	if (!(p = dk_pack_new(DK_TYPE_Q4_0, w, wrow, I8_COLS, I8_ROWS)))
		goto out;
	int64_t G = dk_pack_groups(p);
	for (int i = 0; i < threads; i++)
		jobs[i] = (struct i8_job){ .p = p, .g0 = G * i / threads, .g1 = G * (i + 1) / threads,
					   .xq = xq, .xrow = xrow, .y = y };
	best = 0;
	for (int r = -1; r < reps; r++) {
		double dt = run_threads(threads, i8_worker, jobs, sizeof jobs[0]);
		if (dt < 0) {
			best = -1;
			break;
		}
		double g = 2.0 * I8_ROWS * I8_COLS * I8_T * I8_PASSES / dt * 1e-9;
		if (r >= 0 && g > best)
			best = g;
	}
out:
	dk_pack_free(p);
	free(f);
	free(w);
	free(xq);
	free(y);
	free(jobs);
	return best;
}
