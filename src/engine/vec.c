/* Elementwise kernels: references and the choice of level (vec.h). */
#include "vec.h"

#include <math.h>

#include "quant.h"

void dk_vec_swiglu_ref(float *restrict g, const float *restrict u, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

dk_vec_swiglu_fn dk_vec_swiglu_kernel(void)
{
	switch (dk_quant_level()) {
	case DK_KERNELS_AVX512:
		return dk_vec_swiglu_avx512;
	case DK_KERNELS_AVX2:
		return dk_vec_swiglu_avx2;
	default:
		return dk_vec_swiglu_ref;
	}
}
