/* AVX2 + FMA + F16C attention kernels; specification in attn.c (_ref). */
#include <immintrin.h>
#include <math.h>

#include "attn.h"
#include "kv.h"

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

KINLINE void attn(const struct dk_attn_args *a, size_t esize)
{
	int32_t hd = a->hd, n = a->n, G = a->nq;
	float *sc = a->scratch;                 /* [G][n] */
	float *acc = a->scratch + (size_t)G * n; /* [G][hd] */
	float mx[DK_ATTN_MAX_GROUP];
	for (int32_t g = 0; g < G; g++)
		mx[g] = -INFINITY;
	/* 16 keys at a time from their transposed tile (attn.h): per key and
	 * head one multiply-add chain over d in order, in two vectors of 8 */
	for (int32_t j0 = 0; j0 < n; j0 += DK_KV_BLOCK) {
		const uint8_t *kt = a->blocks[j0 / DK_KV_BLOCK] + a->k_off;
		int32_t nv = n - j0 < DK_KV_BLOCK ? n - j0 : DK_KV_BLOCK;
		for (int32_t g = 0; g < G; g++) {
			const float *q = a->q + (size_t)g * hd;
			__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
			for (int32_t i = 0; i < hd; i++) {
				__m256 qi = _mm256_broadcast_ss(q + i);
				s0 = _mm256_fmadd_ps(qi, load8(kt, i * DK_KV_BLOCK, esize), s0);
				s1 = _mm256_fmadd_ps(qi, load8(kt, i * DK_KV_BLOCK + 8, esize), s1);
			}
			float v[DK_KV_BLOCK];
			_mm256_storeu_ps(v, _mm256_mul_ps(s0, _mm256_set1_ps(a->scale)));
			_mm256_storeu_ps(v + 8, _mm256_mul_ps(s1, _mm256_set1_ps(a->scale)));
			for (int32_t u = 0; u < nv; u++) {
				sc[(size_t)g * n + j0 + u] = v[u];
				if (v[u] > mx[g])
					mx[g] = v[u];
			}
		}
	}
	float inv[DK_ATTN_MAX_GROUP];
	for (int32_t g = 0; g < G; g++) {
		double sum = 0;
		float *s = sc + (size_t)g * n;
		for (int32_t j = 0; j < n; j++) {
			s[j] = expf(s[j] - mx[g]);
			sum += (double)s[j];
		}
		inv[g] = (float)(1.0 / sum);
		for (int32_t i = 0; i < hd; i++)
			acc[(size_t)g * hd + i] = 0;
	}
	for (int32_t j = 0; j < n; j++) {
		const uint8_t *v = row(a, a->v_off, j);
		for (int32_t g = 0; g < G; g++) {
			float *ac = acc + (size_t)g * hd;
			__m256 p = _mm256_set1_ps(sc[(size_t)g * n + j] * inv[g]);
			for (int32_t i = 0; i < hd; i += 8)
				_mm256_storeu_ps(ac + i, _mm256_fmadd_ps(p, load8(v, i, esize),
									 _mm256_loadu_ps(ac + i)));
		}
	}
	for (int32_t g = 0; g < G; g++)
		for (int32_t i = 0; i < hd; i++)
			a->out[(size_t)g * hd + i] = acc[(size_t)g * hd + i];
}

void dk_attn_f32_avx2(const struct dk_attn_args *a) { attn(a, 4); }
void dk_attn_f16_avx2(const struct dk_attn_args *a) { attn(a, 2); }
