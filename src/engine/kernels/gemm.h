/*
 * The float comparison path for matrix products (dequantise + OpenBLAS)
 * and the per-thread scratch the kernels share.  Private to the engine.
 * The integer kernels the engine runs are in pack.h.
 */
#ifndef DK_ENGINE_GEMM_H
#define DK_ENGINE_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/gguf.h"

/* Float comparison path, NOT bit-identical to vec_dot (use it only when
 * determinism is off): dequantises W in tiles of rows into scratch with
 * to_float and multiplies with OpenBLAS sgemm.  W is nrows rows of ncols
 * elements of type t, row r at (const char *)w + r*wrow; x is T float
 * rows, ldx floats apart; y[j*ldy + r] = dot(W row r, x row j).  scratch holds
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

#endif
