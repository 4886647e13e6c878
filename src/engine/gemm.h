/*
 * Matrix x matrix products of quantised weights with converted activations,
 * register-tiled over weight rows and activation columns.  Private to the
 * engine.
 *
 * Shapes: W is nrows rows of ncols elements of type t, row r at
 * (const char *)w + r*wrow (wrow bytes apart, as in a mapped GGUF tensor);
 * the activations are T rows already converted to dk_quant_traits(t)->
 * dot_type, row j at (const char *)xq + j*xrow.  The output is written as
 * y[j*ldy + r] = dot(W row r, x row j) for r < nrows, j < T (ldy in floats).
 *
 * Every output float is bit-identical to what dk_quant_traits(t)->vec_dot
 * gives for that (row, column) pair, whatever T, nrows or the tiling are
 * (tests/test_gemm.c), so batching never changes a sequence's logits.
 * Weights are read in place: nothing is repacked.
 *
 * The kernels keep a per-thread scratch of about 48 bytes per block of a
 * row (activation sums and scales of 4 columns), freed when the thread
 * exits.  Thread-safe: threads may call a kernel concurrently on disjoint
 * outputs.
 */
#ifndef DK_ENGINE_GEMM_H
#define DK_ENGINE_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/gguf.h"

typedef void (*dk_gemm_fn)(int64_t ncols, const void *w, size_t wrow, int64_t nrows,
			   const void *xq, size_t xrow, int32_t T, float *y, int64_t ldy);

/* The fastest bit-exact kernel for weight type t on this CPU, or NULL (no
 * kernel for t, a CPU without AVX-512 VNNI, or DOCKET_KERNELS capping the
 * level below avx512, e.g. DOCKET_KERNELS=ref): then use vec_dot_n.
 * Covered now: Q4_0, Q4_1, Q8_0. */
dk_gemm_fn dk_gemm_kernel(enum dk_ttype t);

/* Float comparison path, NOT bit-identical to vec_dot (use it only when
 * determinism is off): dequantises W in tiles of rows into scratch with
 * to_float and multiplies with OpenBLAS sgemm.  x is T float rows, ldx
 * floats apart (the raw activations, not xq); y as above.  scratch holds
 * scratch_floats floats, at least ncols (one row); more rows per tile
 * (dk_gemm_blas_scratch) is faster.  The calling thread runs sgemm, so set
 * openblas_set_num_threads(1) when the caller splits rows across threads.
 * Returns DK_OK, or DK_FATAL for a type without to_float or a scratch
 * smaller than one row. */
enum dk_status dk_gemm_blas(enum dk_ttype t, int64_t ncols, const void *w, size_t wrow,
			    int64_t nrows, const float *x, int64_t ldx, int32_t T, float *y,
			    int64_t ldy, float *scratch, size_t scratch_floats);
/* Suggested scratch size in floats for dk_gemm_blas (64 rows of ncols). */
size_t dk_gemm_blas_scratch(int64_t ncols);

/* Internal: per-thread scratch of at least bytes, 64-byte aligned, valid
 * until the next call on this thread; NULL when out of memory. */
void *dk_gemm_scratch(size_t bytes);
/* Internal: the AVX-512 VNNI kernels of gemm_avx512.c (no CPU check). */
dk_gemm_fn dk_gemm_avx512_kernel(enum dk_ttype t);

#endif
