/*
 * AVX-512 attention kernels; specification in attn.c (_ref).
 *
 * The query heads of a KV head are taken one at a time, or in sets that
 * share each K and V row (see SET_MAX), with the queries and then the
 * output accumulators held in registers, 16 floats per vector.  The
 * exponentials are computed 16 keys at a time by dk_vexp512
 * (vexp_avx512.h), an elementwise function, and the single-token kernel
 * is the multi-token one with one token, so each (head, position) gets
 * the same instructions whatever the batch holds.
 */
#include <immintrin.h>
#include <math.h>

#include "attn.h"
#include "kv.h"
#include "vexp_avx512.h"

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

/* The query heads of a KV head are taken in sets that share each K and V
 * row (loaded once per set instead of once per head): at most SET_MAX
 * heads of hd 64, so that the queries and the accumulators of a set fit
 * the 32 registers.  Per head the arithmetic is the same whatever the set
 * (test_attn test_groups), so sets are a choice of speed only.
 *
 * Rows are fetched ahead: while scoring key j the kernel fetches key
 * j + PF_KEYS and value j.  A single token reads its rows from memory once
 * its context outgrows the caches, and a batch of decodes does for every
 * sequence; without the fetches a task waited on each row in turn (and a
 * head at a time, with its lighter loop, was the faster way over long
 * contexts).  The values are read after the softmax, by which time they
 * have arrived.  mb_attn, 3 heads, cold rows: 48-250 keys 12-21 -> 9-12
 * ns per key-head; 300-700 keys, sets now beat a head at a time by
 * 10-20% (cold) and up to 2x (rows in L3). */
#define SET_MAX 3
#define PF_KEYS 16

/* Scores of keys j..j+3 (those below n) for the G heads whose queries are
 * in qv[h*hc + c]; head h's row of scores is sc + h*ldsc.  Every (head,
 * key) goes through the same tree whichever slot it takes and whatever G
 * is (a tail slot gets key 0 again and its result is dropped). */
KINLINE void score4(const struct dk_attn_args *a, size_t esize, int hc, int G, const __m512 *qv,
		    int32_t j, int32_t n, float *sc, size_t ldsc)
{
	__m256 y[SET_MAX][4];
	for (int u = 0; u < 4; u++) {
		if (j + u + PF_KEYS < n) {
			const uint8_t *kp = row(a, a->k_off, j + u + PF_KEYS);
			for (size_t o = 0; o < (size_t)hc * 16 * esize; o += 64)
				_mm_prefetch((const char *)kp + o, _MM_HINT_T0);
		}
		if (j + u < n) {
			const uint8_t *vp = row(a, a->v_off, j + u);
			for (size_t o = 0; o < (size_t)hc * 16 * esize; o += 64)
				_mm_prefetch((const char *)vp + o, _MM_HINT_T0);
		}
		const uint8_t *k = row(a, a->k_off, j + u < n ? j + u : 0);
		__m512 t[SET_MAX], k0 = load16(k, 0, esize);
		for (int h = 0; h < G; h++)
			t[h] = _mm512_mul_ps(qv[h * hc], k0);
		for (int c = 1; c < hc; c++) {
			__m512 kc = load16(k, c * 16, esize);
			for (int h = 0; h < G; h++)
				t[h] = _mm512_fmadd_ps(qv[h * hc + c], kc, t[h]);
		}
		for (int h = 0; h < G; h++)
			y[h][u] = _mm256_add_ps(_mm512_castps512_ps256(t[h]),
						_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t[h]), 1)));
	}
	for (int h = 0; h < G; h++) {
		__m256 hh = _mm256_hadd_ps(_mm256_hadd_ps(y[h][0], y[h][1]),
					   _mm256_hadd_ps(y[h][2], y[h][3]));
		__m128 d = _mm_mul_ps(_mm_add_ps(_mm256_castps256_ps128(hh), _mm256_extractf128_ps(hh, 1)),
				      _mm_set1_ps(a->scale));
		if (n - j >= 4)
			_mm_storeu_ps(sc + (size_t)h * ldsc + j, d);
		else
			_mm_mask_storeu_ps(sc + (size_t)h * ldsc + j, (__mmask8)((1u << (n - j)) - 1), d);
	}
}

/* sc[0..n) becomes exp(sc - max) * inv, where inv = 1 / the sum of the
 * exponentials (summed in double, 16 keys at a time from key 0): each
 * p = e * inv is the product the values loop would form per key, formed
 * once here instead of once per slice of every set. */
KINLINE void softmax(float *sc, int32_t n)
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
		__m512 e = _mm512_maskz_mov_ps(k, dk_vexp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, sc + j), m)));
		_mm512_mask_storeu_ps(sc + j, k, e);
		s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
		s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
	}
	const __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1))));
	for (int32_t j = 0; j < n; j += 16) {
		__mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
		_mm512_mask_storeu_ps(sc + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, sc + j), inv));
	}
}

/* Values of keys j0..j1-1 for G heads, vectors c0..c0+CS-1 of each: head
 * h's vector c0+i accumulates even keys in acc[h*CS + i] and odd keys in
 * acc2[h*CS + i], each in key order; so per head the order is the same
 * whatever G and CS are.  Taking the vectors in slices of CS keeps a set's
 * accumulators in registers. */
KINLINE void values(const struct dk_attn_args *a, size_t esize, int G, int CS, int c0,
		    const float *sc, size_t ldsc, int32_t j0, int32_t j1, __m512 *acc, __m512 *acc2)
{
	int32_t j = j0;
	for (; j + 1 < j1; j += 2) {
		const uint8_t *v0 = row(a, a->v_off, j), *v1 = row(a, a->v_off, j + 1);
		__m512 p0[SET_MAX], p1[SET_MAX];
		for (int h = 0; h < G; h++) {
			p0[h] = _mm512_set1_ps(sc[(size_t)h * ldsc + j]);
			p1[h] = _mm512_set1_ps(sc[(size_t)h * ldsc + j + 1]);
		}
		for (int i = 0; i < CS; i++) {
			__m512 x0 = load16(v0, (c0 + i) * 16, esize), x1 = load16(v1, (c0 + i) * 16, esize);
			for (int h = 0; h < G; h++) {
				acc[h * CS + i] = _mm512_fmadd_ps(p0[h], x0, acc[h * CS + i]);
				acc2[h * CS + i] = _mm512_fmadd_ps(p1[h], x1, acc2[h * CS + i]);
			}
		}
	}
	if (j < j1) {
		const uint8_t *v0 = row(a, a->v_off, j);
		for (int h = 0; h < G; h++) {
			__m512 p0 = _mm512_set1_ps(sc[(size_t)h * ldsc + j]);
			for (int i = 0; i < CS; i++)
				acc[h * CS + i] = _mm512_fmadd_ps(p0, load16(v0, (c0 + i) * 16, esize),
								  acc[h * CS + i]);
		}
	}
}

/* Many tokens' query rows over shared keys (dk_attn_multi_args), also the
 * single-token kernel (nt = 1), for the set of G heads from head g0.  Keys
 * are taken in chunks that stay in L1 while every row uses them, instead
 * of each row streaming all keys from L2.  Scores of all rows are kept
 * (scratch), then each row's softmax, then the values chunk by chunk with
 * each row's accumulators parked in scratch between chunks: per row, the
 * same operations in the same order whatever nt, G, the chunking or the
 * other rows are. */
KINLINE void multi_set(const struct dk_attn_multi_args *m, size_t esize, int hc, int G, int32_t g0)
{
	const struct dk_attn_args *a = &m->a;
	const int32_t hd = a->hd, nq = a->nq;
	const int32_t nmax = m->nk[m->nt - 1];
	const size_t ldsc = ((size_t)nmax + 15) & ~(size_t)15, ldp = 2 * (size_t)hd + 16;
	float *sc = a->scratch, *park = sc + (size_t)m->nt * nq * ldsc;
	/* keys per chunk: K (then V) rows of one chunk fill about 16 KiB */
	int32_t ch = (int32_t)(16384 / ((size_t)hd * esize)) & ~15;
	if (ch < 16)
		ch = 16;
	for (int32_t j0 = 0; j0 < nmax; j0 += ch) {
		for (int32_t t = 0; t < m->nt; t++) {
			int32_t n = m->nk[t];
			if (j0 >= n)
				continue;
			__m512 qv[SET_MAX * 16];
			for (int h = 0; h < G; h++) {
				const float *q = a->q + (size_t)t * m->q_stride + (size_t)(g0 + h) * hd;
				for (int c = 0; c < hc; c++)
					qv[h * hc + c] = _mm512_loadu_ps(q + c * 16);
			}
			int32_t j1 = j0 + ch < n ? j0 + ch : n;
			float *s = sc + ((size_t)t * nq + g0) * ldsc;
			for (int32_t j = j0; j < j1; j += 4)
				score4(a, esize, hc, G, qv, j, n, s, ldsc);
		}
	}
	for (int32_t t = 0; t < m->nt; t++)
		for (int h = 0; h < G; h++) {
			size_t r = (size_t)t * nq + g0 + h;
			softmax(sc + r * ldsc, m->nk[t]);
		}
	/* vectors per slice of the values: two accumulators per head and vector */
	const int CS = G == 1 ? hc : G == 2 ? 4 : 2;
	for (int32_t j0 = 0; j0 < nmax; j0 += ch) {
		for (int32_t t = 0; t < m->nt; t++) {
			int32_t n = m->nk[t];
			if (j0 >= n)
				continue;
			float *pr = park + ((size_t)t * nq + g0) * ldp;
			const float *s = sc + ((size_t)t * nq + g0) * ldsc;
			int32_t j1 = j0 + ch < n ? j0 + ch : n;
			for (int c0 = 0; c0 < hc; c0 += CS) {
				__m512 acc[SET_MAX * 16], acc2[SET_MAX * 16];
				for (int h = 0; h < G; h++)
					for (int i = 0; i < CS; i++) {
						const float *pa = pr + (size_t)h * ldp + 16 + (c0 + i) * 16;
						acc[h * CS + i] = j0 ? _mm512_loadu_ps(pa) : _mm512_setzero_ps();
						acc2[h * CS + i] = j0 ? _mm512_loadu_ps(pa + hd) : _mm512_setzero_ps();
					}
				values(a, esize, G, CS, c0, s, ldsc, j0, j1, acc, acc2);
				for (int h = 0; h < G; h++)
					for (int i = 0; i < CS; i++) {
						float *pa = pr + (size_t)h * ldp + 16 + (c0 + i) * 16;
						if (j1 < n) {
							_mm512_storeu_ps(pa, acc[h * CS + i]);
							_mm512_storeu_ps(pa + hd, acc2[h * CS + i]);
						} else {
							_mm512_storeu_ps(a->out + (size_t)t * m->out_stride +
										 (size_t)(g0 + h) * hd + (c0 + i) * 16,
									 _mm512_add_ps(acc[h * CS + i], acc2[h * CS + i]));
						}
					}
			}
		}
	}
}

/* the query heads of a KV head in sets of as equal sizes as SET_MAX allows
 * (4 heads: 2 + 2, not 3 + 1), each set on its compile-time path */
KINLINE void multi(const struct dk_attn_multi_args *m, size_t esize, int hc)
{
	const int32_t nq = m->a.nq;
	const int32_t smax = hc == 4 ? SET_MAX : 1;
	const int32_t nsets = (nq + smax - 1) / smax;
	for (int32_t s = 0, g0 = 0; s < nsets; s++) {
		int32_t G = (nq - g0 + (nsets - s) - 1) / (nsets - s);
		if (hc == 4 && G == 3)
			multi_set(m, esize, 4, 3, g0);
		else if (hc == 4 && G == 2)
			multi_set(m, esize, 4, 2, g0);
		else
			multi_set(m, esize, hc, 1, g0);
		g0 += G;
	}
}

KINLINE void attn_multi(const struct dk_attn_multi_args *m, size_t esize)
{
	if (m->a.hd == 64)
		multi(m, esize, 4);
	else if (m->a.hd == 128)
		multi(m, esize, 8);
	else if (m->a.hd <= 256)
		multi(m, esize, m->a.hd / 16);
	/* larger heads: dk_attn_kernel never picks these kernels there */
}

/* one token: the multi-token kernel with nt = 1, so that a token gets the
 * same bits alone as in a run */
KINLINE void attn(const struct dk_attn_args *a, size_t esize)
{
	const struct dk_attn_multi_args m = { .a = *a, .nt = 1, .nk = &a->n };
	attn_multi(&m, esize);
}

void dk_attn_f32_avx512(const struct dk_attn_args *a) { attn(a, 4); }
void dk_attn_f16_avx512(const struct dk_attn_args *a) { attn(a, 2); }

void dk_attn_multi_f32_avx512(const struct dk_attn_multi_args *m) { attn_multi(m, 4); }
void dk_attn_multi_f16_avx512(const struct dk_attn_multi_args *m) { attn_multi(m, 2); }
