/* AVX2 elementwise kernels; specification in vec.c (_ref). */
#include <immintrin.h>
#include <string.h>

#include "vec.h"

/* e^x as dk_vexp512 (vexp_avx512.h), with 2^n built in the exponent
 * bits: x is held to [-87, 88] so that n stays a normal exponent.  Past
 * that the SwiGLU result is already g * u (below), or (above, where the
 * reference gives 0 or a denormal) smaller than 1e-35 |u| for any gate a
 * model makes. */
static inline __m256 vexp(__m256 x)
{
	x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
	__m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
				   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.0f / 720);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 swiglu8(__m256 x, __m256 up)
{
	__m256 e = vexp(_mm256_sub_ps(_mm256_setzero_ps(), x));
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
