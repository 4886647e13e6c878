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

/* Scores of keys j..j+3 (those below n) for a query held in qv: every key
 * goes through the same tree whichever slot it takes (a tail slot gets key
 * 0 again and its result is dropped).  Stored scaled into sc[j..]. */
KINLINE void score4(const struct dk_attn_args *a, size_t esize, int hc, const __m512 *qv,
		    int32_t j, int32_t n, float *sc)
{
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
	__m128 d = _mm_mul_ps(_mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)),
			      _mm_set1_ps(a->scale));
	if (n - j >= 4)
		_mm_storeu_ps(sc + j, d);
	else
		_mm_mask_storeu_ps(sc + j, (__mmask8)((1u << (n - j)) - 1), d);
}

/* sc[0..n) becomes exp(sc - max); returns 1 / their sum (summed in double,
 * 16 keys at a time from key 0). */
KINLINE float softmax(float *sc, int32_t n)
{
	__m512 mx16 = _mm512_set1_ps(-INFINITY);
	for (int32_t j = 0; j < n; j += 16) {
		__mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
		mx16 = _mm512_mask_max_ps(mx16, k, mx16, _mm512_maskz_loadu_ps(k, sc + j));
	}
	const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx16));
	__m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
	for (int32_t j = 0; j < n; j += 16) {
		__mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
		__m512 e = _mm512_maskz_mov_ps(k, vexp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, sc + j), m)));
		_mm512_mask_storeu_ps(sc + j, k, e);
		s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
		s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
	}
	return (float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)));
}

/* values of keys j0..j1-1 (j0 even) into the two accumulators: even keys
 * into acc, odd into acc2, each in key order */
KINLINE void values(const struct dk_attn_args *a, size_t esize, int hc, const float *sc,
		    float inv, int32_t j0, int32_t j1, __m512 *acc, __m512 *acc2)
{
	int32_t j = j0;
	for (; j + 1 < j1; j += 2) {
		const uint8_t *v0 = row(a, a->v_off, j), *v1 = row(a, a->v_off, j + 1);
		__m512 p0 = _mm512_set1_ps(sc[j] * inv), p1 = _mm512_set1_ps(sc[j + 1] * inv);
		for (int c = 0; c < hc; c++) {
			acc[c] = _mm512_fmadd_ps(p0, load16(v0, c * 16, esize), acc[c]);
			acc2[c] = _mm512_fmadd_ps(p1, load16(v1, c * 16, esize), acc2[c]);
		}
	}
	if (j < j1) {
		const uint8_t *v0 = row(a, a->v_off, j);
		__m512 p0 = _mm512_set1_ps(sc[j] * inv);
		for (int c = 0; c < hc; c++)
			acc[c] = _mm512_fmadd_ps(p0, load16(v0, c * 16, esize), acc[c]);
	}
}

/* one head: hc = hd/16 vectors, a compile-time constant where it matters */
KINLINE void head(const struct dk_attn_args *a, size_t esize, int hc, const float *q, float *out,
		  float *sc)
{
	const int32_t n = a->n;
	__m512 qv[16], acc[16], acc2[16];
	for (int c = 0; c < hc; c++)
		qv[c] = _mm512_loadu_ps(q + c * 16);
	for (int32_t j = 0; j < n; j += 4)
		score4(a, esize, hc, qv, j, n, sc);
	const float inv = softmax(sc, n);
	for (int c = 0; c < hc; c++)
		acc[c] = acc2[c] = _mm512_setzero_ps();
	values(a, esize, hc, sc, inv, 0, n, acc, acc2);
	for (int c = 0; c < hc; c++)
		_mm512_storeu_ps(out + c * 16, _mm512_add_ps(acc[c], acc2[c]));
}

/* Many tokens' query rows over shared keys (dk_attn_multi_args): the same
 * per-row steps as head(), but keys taken in chunks that stay in L1 while
 * every row uses them, instead of each row streaming all keys from L2.
 * Scores of all rows are kept (scratch), then each row's softmax, then
 * the values chunk by chunk with each row's two accumulators parked in
 * scratch between chunks: per row, the same operations in the same order. */
KINLINE void multi(const struct dk_attn_multi_args *m, size_t esize, int hc)
{
	const struct dk_attn_args *a = &m->a;
	const int32_t hd = a->hd, nq = a->nq, rows = m->nt * nq;
	const int32_t nmax = m->nk[m->nt - 1];
	const size_t ldsc = ((size_t)nmax + 15) & ~(size_t)15;
	float *sc = a->scratch, *park = sc + (size_t)rows * ldsc;
	/* keys per chunk: K (then V) rows of one chunk fill about 16 KiB */
	int32_t ch = (int32_t)(16384 / ((size_t)hd * esize)) & ~15;
	if (ch < 16)
		ch = 16;
	for (int32_t j0 = 0; j0 < nmax; j0 += ch) {
		for (int32_t r = 0; r < rows; r++) {
			int32_t t = r / nq, g = r % nq, n = m->nk[t];
			if (j0 >= n)
				continue;
			const float *q = a->q + (size_t)t * m->q_stride + (size_t)g * hd;
			__m512 qv[16];
			for (int c = 0; c < hc; c++)
				qv[c] = _mm512_loadu_ps(q + c * 16);
			int32_t j1 = j0 + ch < n ? j0 + ch : n;
			for (int32_t j = j0; j < j1; j += 4)
				score4(a, esize, hc, qv, j, n, sc + (size_t)r * ldsc);
		}
	}
	for (int32_t r = 0; r < rows; r++)
		park[(size_t)r * (2 * hd + 16)] = softmax(sc + (size_t)r * ldsc, m->nk[r / nq]);
	for (int32_t j0 = 0; j0 < nmax; j0 += ch) {
		for (int32_t r = 0; r < rows; r++) {
			int32_t t = r / nq, g = r % nq, n = m->nk[t];
			if (j0 >= n)
				continue;
			float *pr = park + (size_t)r * (2 * hd + 16);
			float inv = pr[0];
			float *pa = pr + 16, *pb = pr + 16 + hd;
			__m512 acc[16], acc2[16];
			for (int c = 0; c < hc; c++) {
				acc[c] = j0 ? _mm512_loadu_ps(pa + c * 16) : _mm512_setzero_ps();
				acc2[c] = j0 ? _mm512_loadu_ps(pb + c * 16) : _mm512_setzero_ps();
			}
			int32_t j1 = j0 + ch < n ? j0 + ch : n;
			values(a, esize, hc, sc + (size_t)r * ldsc, inv, j0, j1, acc, acc2);
			if (j1 < n) {
				for (int c = 0; c < hc; c++) {
					_mm512_storeu_ps(pa + c * 16, acc[c]);
					_mm512_storeu_ps(pb + c * 16, acc2[c]);
				}
			} else {
				float *out = a->out + (size_t)t * m->out_stride + (size_t)g * hd;
				for (int c = 0; c < hc; c++)
					_mm512_storeu_ps(out + c * 16, _mm512_add_ps(acc[c], acc2[c]));
			}
		}
	}
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

KINLINE void attn_multi(const struct dk_attn_multi_args *m, size_t esize)
{
	if (m->a.hd == 64)
		multi(m, esize, 4);
	else if (m->a.hd == 128)
		multi(m, esize, 8);
	else
		multi(m, esize, m->a.hd / 16);
}

void dk_attn_multi_f32_avx512(const struct dk_attn_multi_args *m) { attn_multi(m, 4); }
void dk_attn_multi_f16_avx512(const struct dk_attn_multi_args *m) { attn_multi(m, 2); }
