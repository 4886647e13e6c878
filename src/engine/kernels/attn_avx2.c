/* AVX2 + FMA + F16C attention kernels; specification in attn.c (_ref). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "engine/kernels/attn.h"
#include "engine/core/kv.h"
#include "engine/kernels/vexp_avx2.h"

#define KINLINE static inline __attribute__((always_inline))

static inline const uint8_t *row(const struct dk_attn_args *a, size_t off, int32_t j)
{
	const uint32_t u = (uint32_t)j; /* j >= 0: a shift and a mask, not signed division */
	return a->blocks[u / DK_KV_BLOCK] + off + (size_t)(u % DK_KV_BLOCK) * a->row_bytes;
}

/* 8 elements of a cache row from element i, widened to float */
KINLINE __m256 load8(const uint8_t *r, int32_t i, size_t esize)
{
	if (esize == 2)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(r + (size_t)i * 2)));
	return _mm256_loadu_ps((const float *)r + i);
}

/* The reference's order (attn.c one_head): per key two multiply-add
 * chains over the even and odd elements, 16 keys (two vectors of 8) per
 * tile; the exponentials 8 at a time summed in 16 double partials by key
 * modulo 16; values in an even-key and an odd-key chain. */
KINLINE void attn(const struct dk_attn_args *a, size_t esize)
{
	int32_t hd = a->hd, n = a->n, G = a->nq, lo = a->lo, j16 = lo & ~15;
	float *sc = a->scratch;                 /* [G][n] */
	float *acc = a->scratch + (size_t)G * n; /* [G][2 hd]: even keys, odd keys */
	float mx[DK_ATTN_MAX_GROUP];
	for (int32_t g = 0; g < G; g++)
		mx[g] = -INFINITY;
	for (int32_t j0 = j16; j0 < n; j0 += DK_KV_BLOCK) {
		const uint8_t *kt = a->blocks[j0 / DK_KV_BLOCK] + a->k_off;
		int32_t nv = n - j0 < DK_KV_BLOCK ? n - j0 : DK_KV_BLOCK;
		for (int32_t g = 0; g < G; g++) {
			const float *q = a->q + (size_t)g * hd;
			__m256 e0 = _mm256_setzero_ps(), e1 = _mm256_setzero_ps();
			__m256 o0 = _mm256_setzero_ps(), o1 = _mm256_setzero_ps();
			for (int32_t i = 0; i < hd; i += 2) {
				__m256 qe = _mm256_broadcast_ss(q + i), qo = _mm256_broadcast_ss(q + i + 1);
				e0 = _mm256_fmadd_ps(qe, load8(kt, i * DK_KV_BLOCK, esize), e0);
				e1 = _mm256_fmadd_ps(qe, load8(kt, i * DK_KV_BLOCK + 8, esize), e1);
				o0 = _mm256_fmadd_ps(qo, load8(kt, (i + 1) * DK_KV_BLOCK, esize), o0);
				o1 = _mm256_fmadd_ps(qo, load8(kt, (i + 1) * DK_KV_BLOCK + 8, esize), o1);
			}
			float v[DK_KV_BLOCK];
			_mm256_storeu_ps(v, _mm256_mul_ps(_mm256_add_ps(e0, o0), _mm256_set1_ps(a->scale)));
			_mm256_storeu_ps(v + 8, _mm256_mul_ps(_mm256_add_ps(e1, o1), _mm256_set1_ps(a->scale)));
			for (int32_t u = 0; u < nv; u++) {
				sc[(size_t)g * n + j0 + u] = v[u];
				if (j0 + u >= lo && v[u] > mx[g])
					mx[g] = v[u];
			}
		}
	}
	float inv[DK_ATTN_MAX_GROUP];
	for (int32_t g = 0; g < G; g++) {
		float *s = sc + (size_t)g * n;
		const __m256 m = _mm256_set1_ps(mx[g]);
		__m256d p[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(),
				_mm256_setzero_pd()};
		for (int32_t j = j16; j < n; j += 16) {
			float t[16] = {0};
			int32_t r = n - j < 16 ? n - j : 16;
			memcpy(t, s + j, (size_t)r * sizeof *t);
			for (int h = 0; h < 2; h++) {
				__m256 e = dk_vexp256(_mm256_sub_ps(_mm256_loadu_ps(t + 8 * h), m));
				/* keys past n and below lo add nothing */
				const __m256i u = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
				__m256 ok = _mm256_castsi256_ps(_mm256_andnot_si256(
					_mm256_cmpgt_epi32(_mm256_set1_epi32(lo - j - 8 * h), u),
					_mm256_cmpgt_epi32(_mm256_set1_epi32(r - 8 * h), u)));
				e = _mm256_and_ps(e, ok);
				_mm256_storeu_ps(t + 8 * h, e);
				p[2 * h] = _mm256_add_pd(p[2 * h], _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
				p[2 * h + 1] = _mm256_add_pd(p[2 * h + 1], _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
			}
			memcpy(s + j, t, (size_t)r * sizeof *t);
		}
		/* the tree: k + k+8, k + k+4, k + k+2, k + k+1 */
		__m256d b = _mm256_add_pd(_mm256_add_pd(p[0], p[2]), _mm256_add_pd(p[1], p[3]));
		__m128d c = _mm_add_pd(_mm256_castpd256_pd128(b), _mm256_extractf128_pd(b, 1));
		inv[g] = (float)(1.0 / (_mm_cvtsd_f64(c) + _mm_cvtsd_f64(_mm_unpackhi_pd(c, c))));
		for (int32_t i = 0; i < 2 * hd; i++)
			acc[(size_t)g * 2 * hd + i] = 0;
	}
	for (int32_t j = lo; j < n; j++) {
		const uint8_t *v = row(a, a->v_off, j);
		for (int32_t g = 0; g < G; g++) {
			float *ac = acc + (size_t)g * 2 * hd + (j % 2 ? hd : 0);
			__m256 p = _mm256_set1_ps(sc[(size_t)g * n + j] * inv[g]);
			for (int32_t i = 0; i < hd; i += 8)
				_mm256_storeu_ps(ac + i, _mm256_fmadd_ps(p, load8(v, i, esize),
									 _mm256_loadu_ps(ac + i)));
		}
	}
	for (int32_t g = 0; g < G; g++)
		for (int32_t i = 0; i < hd; i += 8) {
			const float *ac = acc + (size_t)g * 2 * hd;
			_mm256_storeu_ps(a->out + (size_t)g * hd + i,
					 _mm256_add_ps(_mm256_loadu_ps(ac + i), _mm256_loadu_ps(ac + hd + i)));
		}
}

void dk_attn_f32_avx2(const struct dk_attn_args *a) { attn(a, 4); }
void dk_attn_f16_avx2(const struct dk_attn_args *a) { attn(a, 2); }
