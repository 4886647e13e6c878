/*
 * AVX-512 attention kernels; specification in attn.c (_ref).
 *
 * Heads are taken one at a time with the query (and then the output
 * accumulator) held in registers, 16 floats per vector: hd/16 fused
 * multiply-adds per key and head for the scores and as many for the
 * values.  The exponentials are computed 16 keys at a time by vexp below,
 * an elementwise function, so each (head, position) still gets the same
 * instructions whatever the batch holds.
 */
#include <immintrin.h>
#include <math.h>

#include "attn.h"
#include "kv.h"

#define KINLINE static inline __attribute__((always_inline))

static inline const uint8_t *row(const struct dk_attn_args *a, size_t off, int32_t j)
{
	return a->blocks[j / DK_KV_BLOCK] + off + (size_t)(j % DK_KV_BLOCK) * a->row_bytes;
}

/* 16 elements of a cache row from element i, widened to float */
KINLINE __m512 load16(const uint8_t *r, int32_t i, size_t esize)
{
	if (esize == 2)
		return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(r + (size_t)i * 2)));
	return _mm512_loadu_ps((const float *)r + i);
}

/* e^x for x <= 0 (softmax arguments): x = n ln2 + r, |r| <= ln2/2, e^r by
 * its degree-6 Taylor polynomial (relative error < 2e-7 there), times 2^n.
 * Arguments below -104 give 0, as expf's do to float precision. */
KINLINE __m512 vexp(__m512 x)
{
	x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
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

/* one head: hc = hd/16 vectors, a compile-time constant where it matters */
KINLINE void head(const struct dk_attn_args *a, size_t esize, int hc, const float *q, float *out,
		  float *sc)
{
	const int32_t n = a->n;
	__m512 qv[16], acc[16];
	for (int c = 0; c < hc; c++)
		qv[c] = _mm512_loadu_ps(q + c * 16);
	/* scores 4 keys at a time, reduced together: every key goes through
	 * the same tree whichever slot it takes (a tail slot gets key 0 again
	 * and its result is dropped) */
	__m128 mx4 = _mm_set1_ps(-INFINITY);
	const __m128 scale = _mm_set1_ps(a->scale);
	for (int32_t j = 0; j < n; j += 4) {
		__m256 y[4];
		for (int u = 0; u < 4; u++) {
			const uint8_t *k = row(a, a->k_off, j + u < n ? j + u : 0);
			__m512 t = _mm512_mul_ps(qv[0], load16(k, 0, esize));
			for (int c = 1; c < hc; c++)
				t = _mm512_fmadd_ps(qv[c], load16(k, c * 16, esize), t);
			y[u] = _mm256_add_ps(_mm512_castps512_ps256(t),
					     _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
		}
		__m256 h = _mm256_hadd_ps(_mm256_hadd_ps(y[0], y[1]), _mm256_hadd_ps(y[2], y[3]));
		__m128 d = _mm_mul_ps(_mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)), scale);
		if (n - j >= 4) {
			_mm_storeu_ps(sc + j, d);
			mx4 = _mm_max_ps(mx4, d);
		} else {
			__mmask8 k = (__mmask8)((1u << (n - j)) - 1);
			_mm_mask_storeu_ps(sc + j, k, d);
			mx4 = _mm_mask_max_ps(mx4, k, mx4, d);
		}
	}
	mx4 = _mm_max_ps(mx4, _mm_movehl_ps(mx4, mx4));
	mx4 = _mm_max_ps(mx4, _mm_movehdup_ps(mx4));
	const float mx = _mm_cvtss_f32(mx4);
	/* softmax: 16 keys at a time, the sum in double */
	const __m512 m = _mm512_set1_ps(mx);
	__m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
	for (int32_t j = 0; j < n; j += 16) {
		__mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
		__m512 e = _mm512_maskz_mov_ps(k, vexp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, sc + j), m)));
		_mm512_mask_storeu_ps(sc + j, k, e);
		s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
		s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
	}
	const float inv = (float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)));
	/* values: even and odd keys in two accumulators (two dependency
	 * chains), added at the end */
	__m512 acc2[16];
	for (int c = 0; c < hc; c++)
		acc[c] = acc2[c] = _mm512_setzero_ps();
	int32_t j = 0;
	for (; j + 1 < n; j += 2) {
		const uint8_t *v0 = row(a, a->v_off, j), *v1 = row(a, a->v_off, j + 1);
		__m512 p0 = _mm512_set1_ps(sc[j] * inv), p1 = _mm512_set1_ps(sc[j + 1] * inv);
		for (int c = 0; c < hc; c++) {
			acc[c] = _mm512_fmadd_ps(p0, load16(v0, c * 16, esize), acc[c]);
			acc2[c] = _mm512_fmadd_ps(p1, load16(v1, c * 16, esize), acc2[c]);
		}
	}
	if (j < n) {
		const uint8_t *v0 = row(a, a->v_off, j);
		__m512 p0 = _mm512_set1_ps(sc[j] * inv);
		for (int c = 0; c < hc; c++)
			acc[c] = _mm512_fmadd_ps(p0, load16(v0, c * 16, esize), acc[c]);
	}
	for (int c = 0; c < hc; c++)
		acc[c] = _mm512_add_ps(acc[c], acc2[c]);
	for (int c = 0; c < hc; c++)
		_mm512_storeu_ps(out + c * 16, acc[c]);
}

KINLINE void attn(const struct dk_attn_args *a, size_t esize)
{
	const int32_t hd = a->hd;
	for (int32_t g = 0; g < a->nq; g++) {
		const float *q = a->q + (size_t)g * hd;
		float *out = a->out + (size_t)g * hd;
		if (hd == 64)
			head(a, esize, 4, q, out, a->scratch);
		else if (hd == 128)
			head(a, esize, 8, q, out, a->scratch);
		else if (hd <= 256)
			head(a, esize, hd / 16, q, out, a->scratch);
		else
			break; /* dk_attn_kernel never picks this kernel there */
	}
}

void dk_attn_f32_avx512(const struct dk_attn_args *a) { attn(a, 4); }
void dk_attn_f16_avx512(const struct dk_attn_args *a) { attn(a, 2); }
