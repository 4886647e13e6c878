/* Per-thread scratch and the OpenBLAS comparison path of gemm.h. */
#include "engine/kernels/gemm.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>

#include "engine/kernels/quant.h"

struct scratch {
	void *p;
	size_t cap;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *v)
{
	struct scratch *s = v;
	free(s->p);
	free(s);
}

static void scratch_init(void)
{
	(void)pthread_key_create(&scratch_key, scratch_free);
}

void *dk_gemm_scratch(size_t bytes)
{
	pthread_once(&scratch_once, scratch_init);
	struct scratch *s = pthread_getspecific(scratch_key);
	if (!s) {
		s = calloc(1, sizeof *s);
		if (!s || pthread_setspecific(scratch_key, s) != 0) {
			free(s);
			return NULL;
		}
	}
	if (s->cap < bytes) {
		/* grow geometrically: layer widths differ, do not realloc per call */
		size_t cap = s->cap * 2 > bytes ? s->cap * 2 : bytes;
		cap = (cap + 63) & ~(size_t)63;
		void *p = aligned_alloc(64, cap);
		if (!p)
			return NULL;
		free(s->p);
		s->p = p;
		s->cap = cap;
	}
	return s->p;
}

size_t dk_gemm_blas_scratch(int64_t ncols)
{
	return (size_t)ncols * 64;
}

enum dk_status dk_gemm_blas(enum dk_ttype t, int64_t ncols, const void *w, size_t wrow,
			    int64_t nrows, const float *x, int64_t ldx, int32_t T, float *y,
			    int64_t ldy, float *scratch, size_t scratch_floats)
{
	const struct dk_qtraits *tr = dk_quant_traits(t);
	if (!tr || !tr->to_float || ncols <= 0 || scratch_floats < (size_t)ncols)
		return DK_FATAL;
	int64_t tile = (int64_t)(scratch_floats / (size_t)ncols);
	for (int64_t r0 = 0; r0 < nrows; r0 += tile) {
		int64_t nr = nrows - r0 < tile ? nrows - r0 : tile;
		for (int64_t r = 0; r < nr; r++)
			tr->to_float((const char *)w + (size_t)(r0 + r) * wrow, scratch + r * ncols, ncols);
		/* y[j][r0..r0+nr) = x[j] . Wtile[r]: C(T x nr) = X(T x ncols) Wtile^T */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)nr, (int)ncols, 1.0f, x,
			    (int)ldx, scratch, (int)ncols, 0.0f, y + r0, (int)ldy);
	}
	return DK_OK;
}
