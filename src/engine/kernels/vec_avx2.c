/* AVX2 elementwise kernels; specification in vec.c (_ref). */
#include <immintrin.h>
#include <string.h>

#include "engine/kernels/vec.h"
#include "engine/kernels/vexp_avx2.h"

static inline __m256 swiglu8(__m256 x, __m256 up)
{
	__m256 e = dk_vexp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
	return _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), up);
}

void dk_vec_swiglu_avx2(float *restrict g, const float *restrict u, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(g + i, swiglu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
	if (i < n) { /* the tail through the same vector code */
		float a[8] = { 0 }, b[8] = { 0 };
		memcpy(a, g + i, (size_t)(n - i) * sizeof *a);
		memcpy(b, u + i, (size_t)(n - i) * sizeof *b);
		_mm256_storeu_ps(a, swiglu8(_mm256_loadu_ps(a), _mm256_loadu_ps(b)));
		memcpy(g + i, a, (size_t)(n - i) * sizeof *a);
	}
}
