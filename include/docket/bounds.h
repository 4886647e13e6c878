/*
 * Machine bounds: what this machine can do at best, measured, so that engine
 * speed can be stated as a fraction of it (a roofline).  Prefill is bound by
 * matrix-multiply throughput, single-sequence decode by memory bandwidth
 * (every weight is read once per token).
 *
 * Batched decode is bound by the engine's own integer matrix kernel once
 * there are enough sequences to reuse each weight many times, so that bound
 * is measured too (on weights that stay in cache).
 *
 * All functions run for a noticeable time (tens to hundreds of ms at the
 * default sizes) and use `threads` threads; they are for benchmarks only.
 */
#ifndef DOCKET_BOUNDS_H
#define DOCKET_BOUNDS_H

#include <stddef.h>

/* Single-precision GEMM throughput of OpenBLAS (cblas_sgemm, C = A·B with
 * n×n row-major matrices) in GFLOP/s (2·n³ flops per call), best of reps
 * timed calls after one warm-up.  OpenBLAS runs with `threads` threads for
 * the duration and its previous thread count is restored afterwards.
 * n in [16, 8192], threads >= 1, reps >= 1.  Returns -1 when out of memory
 * or on bad arguments. */
double dk_bounds_sgemm_gflops(int n, int threads, int reps);

/* Streaming read bandwidth in GB/s (1e9 bytes/s): a float array of `bytes`
 * (rounded down to 4 KiB, at least 64 KiB) is first written, then summed by
 * `threads` pthreads, each over a contiguous slice; best of reps passes.
 * To measure memory rather than cache, bytes should be far above the last
 * level cache (the bench uses 1 GiB).  Returns -1 when out of memory, when a
 * thread cannot be started or on bad arguments. */
double dk_bounds_read_gbps(size_t bytes, int threads, int reps);

/* Throughput of the engine's packed int8 (VNNI) matrix kernel in GOP/s
 * (2 operations per multiply-add), on a 1024x1024 Q4_0 matrix times 16
 * Q8_0 activation rows, split by rows over `threads` pthreads: the weights
 * stay in L2, so this is the compute bound of batched decode and prefill
 * on such files.  Best of reps passes after a warm-up.  Returns 0 when
 * this CPU has no packed kernel (then nothing is measured), -1 when out of
 * memory, when a thread cannot be started or on bad arguments. */
double dk_bounds_int8_gops(int threads, int reps);

#endif
