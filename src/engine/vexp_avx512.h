/*
 * e^x on 16 floats, for the AVX-512 kernels (include from *_avx512.c only;
 * private to the engine).
 *
 * x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for the reduction),
 * e^r by its degree-6 Taylor polynomial (relative error < 2e-7 before the
 * final rounding), times 2^n by vscalef.  x is held to [-104, 89]: below,
 * 0 as expf gives to float precision; above, vscalef overflows to inf as
 * expf does past 88.72.  An elementwise function: a lane's result does not
 * depend on the other lanes.
 */
#ifndef DK_ENGINE_VEXP_AVX512_H
#define DK_ENGINE_VEXP_AVX512_H

#include <immintrin.h>

static inline __attribute__((always_inline)) __m512 dk_vexp512(__m512 x)
{
	x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
					_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
	__m512 p = _mm512_set1_ps(1.0f / 720);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

#endif
