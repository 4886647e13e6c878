/* AVX-512 row kernels; specification in vec.c (_ref). */
#include <immintrin.h>
#include <math.h>

#include "engine/kernels/vec.h"
#include "engine/kernels/vexp_avx512.h"

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

/* 8 pairs per vector.  Adjacent pairs: the cosines and sines are the even
 * and odd lanes of cs duplicated, the partner of each element is its
 * neighbour (a swap within pairs), and the even lanes take the difference,
 * the odd ones the sum (a*sin + b*cos: the same two products, and
 * addition commutes bit for bit).  Neox pairs: cos and sin gathered from
 * two vectors of cs, the halves loaded apart. */
void dk_vec_rope_avx512(float *x, int32_t nheads, int32_t hd, int32_t n_rot, const float *cs,
			bool neox)
{
	const int32_t half = n_rot / 2;
	for (int32_t h = 0; h < nheads; h++) {
		float *v = x + (size_t)h * (size_t)hd;
		if (!neox) {
			for (int32_t i = 0; i < n_rot; i += 16) {
				const __mmask16 k = n_rot - i >= 16 ? (__mmask16)0xFFFF
								    : (__mmask16)((1u << (n_rot - i)) - 1);
				const __m512 c = _mm512_maskz_loadu_ps(k, cs + i);
				const __m512 a = _mm512_maskz_loadu_ps(k, v + i);
				const __m512 t1 = _mm512_mul_ps(a, _mm512_moveldup_ps(c));
				const __m512 t2 = _mm512_mul_ps(_mm512_permute_ps(a, 0xB1), _mm512_movehdup_ps(c));
				_mm512_mask_storeu_ps(v + i, k,
						      _mm512_mask_sub_ps(_mm512_add_ps(t1, t2), 0x5555, t1, t2));
			}
			continue;
		}
		const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
		const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
		for (int32_t i = 0; i < half; i += 16) {
			const int32_t r = half - i < 16 ? half - i : 16; /* pairs here */
			const __mmask16 k = (__mmask16)((1u << r) - 1);
			const __mmask16 k0 = r >= 8 ? (__mmask16)0xFFFF : (__mmask16)((1u << (2 * r)) - 1);
			const __mmask16 k1 = r > 8 ? (__mmask16)((1u << (2 * r - 16)) - 1) : 0;
			const __m512 c0 = _mm512_maskz_loadu_ps(k0, cs + 2 * i);
			const __m512 c1 = _mm512_maskz_loadu_ps(k1, cs + 2 * i + 16);
			const __m512 co = _mm512_permutex2var_ps(c0, ev, c1);
			const __m512 si = _mm512_permutex2var_ps(c0, od, c1);
			const __m512 a = _mm512_maskz_loadu_ps(k, v + i);
			const __m512 b = _mm512_maskz_loadu_ps(k, v + i + half);
			_mm512_mask_storeu_ps(v + i, k,
					      _mm512_sub_ps(_mm512_mul_ps(a, co), _mm512_mul_ps(b, si)));
			_mm512_mask_storeu_ps(v + i + half, k,
					      _mm512_add_ps(_mm512_mul_ps(a, si), _mm512_mul_ps(b, co)));
		}
	}
}

/* Each lane keeps its own first maximum (strict >, so NaN never enters
 * and a later equal value never replaces it); then the largest of the
 * lanes' values, and of the lanes holding it the lowest index: the first
 * occurrence overall, as the scalar scan finds it. */
int32_t dk_vec_argmax_avx512(const float *x, int32_t n)
{
	__m512 bv = _mm512_set1_ps(-INFINITY);
	__m512i bi = _mm512_set1_epi32(-1);
	__m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	const __m512i step = _mm512_set1_epi32(16);
	for (int32_t i = 0; i < n; i += 16) {
		const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
		const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + i);
		const __mmask16 gt = _mm512_cmp_ps_mask(v, bv, _CMP_GT_OQ);
		bv = _mm512_mask_mov_ps(bv, gt, v);
		bi = _mm512_mask_mov_epi32(bi, gt, idx);
		idx = _mm512_add_epi32(idx, step);
	}
	const float m = _mm512_reduce_max_ps(bv);
	if (!(m > -INFINITY))
		return -1;
	const __mmask16 at = _mm512_cmp_ps_mask(bv, _mm512_set1_ps(m), _CMP_EQ_OQ);
	return _mm512_mask_reduce_min_epi32(at, bi);
}

/* The 8 partial sums are the 8 double lanes of one vector, each 8 floats
 * widened and added in turn: lane k sees x[k], x[k+8], ... in the
 * reference's order (the adds are one chain per lane, as they are there;
 * the scalar form spent its time on conversions and single-lane ops). */
void dk_vec_rmsnorm_avx512(float *y, const float *x, const float *w, int64_t n, float eps)
{
	__m512d ps = _mm512_setzero_pd();
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		const __m256 v = _mm256_loadu_ps(x + i);
		ps = _mm512_add_pd(ps, _mm512_cvtps_pd(_mm256_mul_ps(v, v)));
	}
	double p[8];
	_mm512_storeu_pd(p, ps);
	for (; i < n; i++)
		p[0] += (double)(x[i] * x[i]);
	double sum = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
	const float mean = (float)(sum / (double)n);
	const __m512 sc = _mm512_set1_ps(1.0f / sqrtf(mean + eps));
	for (i = 0; i < n; i += 16) {
		const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
		const __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), sc);
		_mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(t, _mm512_maskz_loadu_ps(k, w + i)));
	}
}
