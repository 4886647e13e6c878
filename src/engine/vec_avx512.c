/* AVX-512 elementwise kernels; specification in vec.c (_ref). */
#include <immintrin.h>

#include "vec.h"
#include "vexp_avx512.h"

void dk_vec_swiglu_avx512(float *restrict g, const float *restrict u, int64_t n)
{
	const __m512 one = _mm512_set1_ps(1.0f);
	for (int64_t i = 0; i < n; i += 16) {
		__mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
		__m512 x = _mm512_maskz_loadu_ps(k, g + i);
		__m512 e = dk_vexp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
		__m512 y = _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)),
					 _mm512_maskz_loadu_ps(k, u + i));
		_mm512_mask_storeu_ps(g + i, k, y);
	}
}
