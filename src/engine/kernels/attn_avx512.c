/*
 * AVX-512 attention kernels; specification in attn.c (_ref).
 *
 * The query heads of a KV head are taken one at a time, or in sets that
 * share each key tile and value row (see SET_MAX), with the scores of 16
 * keys and then the output accumulators held in registers.  The
 * exponentials are computed 16 keys at a time by dk_vexp512
 * (vexp_avx512.h), an elementwise function, and the single-token kernel
 * is the multi-token one with one token, so each (head, position) gets
 * the same instructions whatever the batch holds.
 */
#include <immintrin.h>
#include <math.h>

#include "engine/kernels/attn.h"
#include "engine/core/kv.h"
#include "engine/kernels/vexp_avx512.h"

#define KINLINE static inline __attribute__((always_inline))

static inline const uint8_t *row(const struct dk_attn_args *a, size_t off, int32_t j)
{
	const uint32_t u = (uint32_t)j; /* j >= 0: a shift and a mask, not signed division */
	return a->blocks[u / DK_KV_BLOCK] + off + (size_t)(u % DK_KV_BLOCK) * a->row_bytes;
}

/* 16 elements of a cache row from element i, widened to float */
KINLINE __m512 load16(const uint8_t *r, int32_t i, size_t esize)
{
	if (esize == 2)
		return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(r + (size_t)i * 2)));
	return _mm512_loadu_ps((const float *)r + i);
}

_Static_assert(DK_KV_BLOCK == 16, "element d of a key tile is one vector of 16 keys");

/* The query heads of a KV head are taken in sets that share each K tile
 * and V row (loaded once per set instead of once per head): at most
 * SET_MAX heads of hd 64, so that a set's value accumulators fit the 32
 * registers.  Per head the arithmetic is the same whatever the set
 * (test_attn test_groups), so sets are a choice of speed only.
 *
 * Scores come 16 keys at a time from the transposed key tile (attn.h):
 * per (key, head) two multiply-add chains, over the even and the odd
 * elements in order, added and scaled.  A decode scores two blocks per
 * pass and a run two tokens per block, so that 4 x the set's heads
 * chains hide the multiply-add latency; which pass a (key, head) takes
 * never changes its instructions.  Against row-wise keys, which needed a
 * horizontal sum per key and head, a run's attention over 100-700 keys
 * took 2.8-3.3 instead of 3.8-5.4 ns per key and head (mb, widened rows).
 * Where a run's time goes (700 keys, 32 tokens, 3 heads, widened rows,
 * each phase timed alone): scores 1.41, softmax 0.60, values 1.51 ns per
 * key and head, against a floor of 1.10 for each product's 4 multiply-adds
 * at one 512-bit multiply-add per cycle.  Scoring two blocks per pair of
 * tokens (one broadcast per two multiply-adds, 24 chains) measured 3.22-
 * 3.30 against 3.09-3.35 as it is: the broadcasts do not bound it.
 *
 * Rows are fetched ahead, spread over the element loop: a decode fetches
 * the key tiles two blocks on and the value rows of the blocks it scores
 * (read after the softmax, by which time they have arrived); a run, whose
 * widened rows sit in L2, fetches the next tile and this block's values
 * once, with its first pair of tokens.  The fetches go to L2 (T1), not
 * L1: fetches into L1 each hold one of the core's few L1 miss buffers
 * until the line comes from memory, and with the demand loads queued
 * behind them a decode over cold rows ran at about half the speed of warm
 * ones (mb, 3 heads per KV head, hd 64, ns per key and head: 128 keys
 * 9.7 -> 5.8, 400 keys 11.8 -> 6.4; batch 16 at 500-token contexts +30%,
 * one sequence there +15%).  The matrix kernels keep T0 (pack_avx512.c):
 * for their single stream T1 measured 13% slower. */
#define SET_MAX 3

static inline const uint8_t *ktile(const struct dk_attn_args *a, int32_t bi)
{
	return a->blocks[bi] + a->k_off;
}

/* element d of the 16 keys of a tile, widened to float */
KINLINE __m512 kvec(const uint8_t *kt, int32_t d, size_t esize)
{
	if (esize == 2)
		return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kt + (size_t)d * 32)));
	return _mm512_loadu_ps((const float *)kt + (size_t)d * 16);
}

/* lines to fetch ahead while scoring: key tiles k[x] (whole) and the
 * value rows (from v_off) of blocks v[x], x below score2's nx; those are
 * never NULL (a pointer to data already at hand when there is nothing
 * ahead: a fetch is only a hint) */
struct fetch {
	const uint8_t *k[2];
	const uint8_t *v[2];
};

/* Scores of unit 0 (tile kt0, query heads q0) into o[0..G) and, when two,
 * of unit 1 (tile kt1, heads q1) into o[G..2G): 16 keys per vector,
 * the even and odd chains added, times scale.  same: kt1 == kt0 (one
 * load); pf: fetch f's lines (nx of its pairs), spread over the loop. */
KINLINE void score2(const struct dk_attn_args *a, size_t esize, int hd, int G, bool same, bool two,
		    bool pf, int nx, const uint8_t *kt0, const uint8_t *kt1, const float *q0,
		    const float *q1, const struct fetch *f, __m512 *o)
{
	const size_t hq = (size_t)a->hd;             /* distance between heads of a query */
	const size_t vl = ((size_t)hd * esize + 63) / 64; /* 64-byte lines of a value row */
	const size_t lp = esize / 2;                 /* lines per step, of a tile and of values */
	__m512 e[2 * SET_MAX], od[2 * SET_MAX];
	for (int h = 0; h < 2 * G; h++)
		e[h] = od[h] = _mm512_setzero_ps();
	_Pragma("GCC unroll 4")
	for (int d = 0; d < hd; d += 2) {
		if (pf) {
			/* a tile is hd * 16 * esize bytes: lp lines per step of 2
			 * covers it; the value rows, 16 * vl lines, likewise */
			for (int x = 0; x < nx; x++)
				for (size_t l = 0; l < lp; l++) {
					size_t li = (size_t)d / 2 * lp + l;
					_mm_prefetch((const char *)f->k[x] + li * 64, _MM_HINT_T1);
					_mm_prefetch((const char *)f->v[x] + a->v_off + (li / vl) * a->row_bytes +
							     (li % vl) * 64,
						     _MM_HINT_T1);
				}
		}
		for (int u = 0; u < 2; u++) {
			const int dd = d + u;
			const __m512 k0 = kvec(kt0, dd, esize);
			const __m512 k1 = same || !two ? k0 : kvec(kt1, dd, esize);
			__m512 *acc = u ? od : e;
			for (int h = 0; h < G; h++) {
				acc[h] = _mm512_fmadd_ps(_mm512_set1_ps(q0[(size_t)h * hq + dd]), k0, acc[h]);
				if (two)
					acc[G + h] = _mm512_fmadd_ps(_mm512_set1_ps(q1[(size_t)h * hq + dd]), k1,
								     acc[G + h]);
			}
		}
	}
	const __m512 sc = _mm512_set1_ps(a->scale);
	for (int h = 0; h < 2 * G; h++)
		o[h] = _mm512_mul_ps(_mm512_add_ps(e[h], od[h]), sc);
}

/* the G scores of block bi into rows s + h*ldsc, keys below n only */
KINLINE void store_scores(const __m512 *o, int G, float *s, size_t ldsc, int32_t bi, int32_t n)
{
	int32_t left = n - bi * DK_KV_BLOCK;
	if (left <= 0)
		return;
	__mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
	for (int h = 0; h < G; h++)
		_mm512_mask_storeu_ps(s + (size_t)h * ldsc + (size_t)bi * DK_KV_BLOCK, k, o[h]);
}

/* sc[lo..n) becomes exp(sc - max) * inv, where inv = 1 / the sum of the
 * exponentials (summed in double, 16 keys at a time from key lo & ~15,
 * lanes below lo masked, so a lane is a key's position mod 16): each
 * p = e * inv is the product the values loop would form per key, formed
 * once here instead of once per slice of every set.  The double sum is a
 * quarter of the softmax's time (704 keys: 25 cycles per 16, 18.5 with a
 * float sum); the widening costs it, not the chain's latency (four chains
 * instead of two: 4%).  A float sum would save about 5% of a run's
 * attention and give up the precision the reference specifies. */
/* lanes of keys j..j+15 that are at or past lo and below n */
static inline __mmask16 lanes(int32_t j, int32_t lo, int32_t n)
{
	__mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
	return lo > j ? (__mmask16)(k & ~((1u << (lo - j)) - 1)) : k;
}

KINLINE void softmax(float *sc, int32_t lo, int32_t n)
{
	const int32_t j16 = lo & ~15;
	__m512 mx16 = _mm512_set1_ps(-INFINITY);
	for (int32_t j = j16; j < n; j += 16) {
		__mmask16 k = lanes(j, lo, n);
		mx16 = _mm512_mask_max_ps(mx16, k, mx16, _mm512_maskz_loadu_ps(k, sc + j));
	}
	const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx16));
	__m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
	for (int32_t j = j16; j < n; j += 16) {
		__mmask16 k = lanes(j, lo, n);
		__m512 e = _mm512_maskz_mov_ps(k, dk_vexp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, sc + j), m)));
		_mm512_mask_storeu_ps(sc + j, k, e);
		s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
		s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
	}
	/* the reference's tree (attn.c): k + k+8, k + k+4, k + k+2, k + k+1 */
	const __m512d t8 = _mm512_add_pd(s0, s1);
	const __m256d t4 = _mm256_add_pd(_mm512_castpd512_pd256(t8), _mm512_extractf64x4_pd(t8, 1));
	const __m128d t2 = _mm_add_pd(_mm256_castpd256_pd128(t4), _mm256_extractf128_pd(t4, 1));
	const __m512 inv = _mm512_set1_ps((float)(1.0 / (_mm_cvtsd_f64(t2) + _mm_cvtsd_f64(_mm_unpackhi_pd(t2, t2)))));
	for (int32_t j = j16; j < n; j += 16) {
		__mmask16 k = lanes(j, lo, n);
		_mm512_mask_storeu_ps(sc + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, sc + j), inv));
	}
}

/* Values of keys j0..j1-1 for G heads, vectors c0..c0+CS-1 of each: head
 * h's vector c0+i accumulates even keys in acc[h*CS + i] and odd keys in
 * acc2[h*CS + i], each in key order (an odd j0, a window's start, first
 * goes to acc2 alone); so per head the order is the same
 * whatever G and CS are.  Taking the vectors in slices of CS keeps a set's
 * accumulators in registers. */
KINLINE void values(const struct dk_attn_args *a, size_t esize, int G, int CS, int c0,
		    const float *sc, size_t ldsc, int32_t j0, int32_t j1, __m512 *acc, __m512 *acc2)
{
	int32_t j = j0;
	if ((j & 1) && j < j1) {
		const uint8_t *v1 = row(a, a->v_off, j);
		for (int h = 0; h < G; h++) {
			__m512 p1 = _mm512_set1_ps(sc[(size_t)h * ldsc + j]);
			for (int i = 0; i < CS; i++)
				acc2[h * CS + i] = _mm512_fmadd_ps(p1, load16(v1, (c0 + i) * 16, esize),
								   acc2[h * CS + i]);
		}
		j++;
	}
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
/* token t's first key (dk_attn_multi_args.lo) */
#define LO(t) (m->lo ? m->lo[t] : 0)

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
	const int32_t nb = (nmax + DK_KV_BLOCK - 1) / DK_KV_BLOCK;
	const int hd16 = hc * 16;
	if (m->nt == 1) {
		const float *q = a->q + (size_t)g0 * hd;
		float *s = sc + (size_t)g0 * ldsc;
		int32_t bi = LO(0) / DK_KV_BLOCK;
		for (; bi + 1 < nb; bi += 2) {
			const struct fetch f = {
				.k = {ktile(a, bi + 2 < nb ? bi + 2 : bi), ktile(a, bi + 3 < nb ? bi + 3 : bi)},
				.v = {a->blocks[bi], a->blocks[bi + 1]}};
			__m512 o[2 * SET_MAX];
			score2(a, esize, hd16, G, false, true, true, 2, ktile(a, bi), ktile(a, bi + 1), q, q,
			       &f, o);
			store_scores(o, G, s, ldsc, bi, nmax);
			store_scores(o + G, G, s, ldsc, bi + 1, nmax);
		}
		if (bi < nb) {
			const struct fetch f = {.k = {ktile(a, bi), NULL}, .v = {a->blocks[bi], NULL}};
			__m512 o[2 * SET_MAX];
			score2(a, esize, hd16, G, false, false, true, 1, ktile(a, bi), NULL, q, q, &f, o);
			store_scores(o, G, s, ldsc, bi, nmax);
		}
	} else {
		for (int32_t bi = 0; bi < nb; bi++) {
			const uint8_t *kt = ktile(a, bi);
			const struct fetch f = {.k = {ktile(a, bi + 1 < nb ? bi + 1 : bi), NULL},
						.v = {a->blocks[bi], NULL}};
			for (int32_t t = 0; t < m->nt; t += 2) {
				const bool two = t + 1 < m->nt;
				/* lo ascending: below lo[t], the block is below lo[t+1] too */
				if (bi * DK_KV_BLOCK >= m->nk[two ? t + 1 : t] || (bi + 1) * DK_KV_BLOCK <= LO(t))
					continue;
				const float *q0 = a->q + (size_t)t * m->q_stride + (size_t)g0 * hd;
				__m512 o[2 * SET_MAX];
				if (!two)
					score2(a, esize, hd16, G, true, false, false, 0, kt, kt, q0, q0, &f, o);
				else if (t == 0)
					score2(a, esize, hd16, G, true, true, true, 1, kt, kt, q0,
					       q0 + m->q_stride, &f, o);
				else
					score2(a, esize, hd16, G, true, true, false, 0, kt, kt, q0,
					       q0 + m->q_stride, &f, o);
				store_scores(o, G, sc + ((size_t)t * nq + g0) * ldsc, ldsc, bi, m->nk[t]);
				if (two)
					store_scores(o + G, G, sc + ((size_t)(t + 1) * nq + g0) * ldsc, ldsc, bi,
						     m->nk[t + 1]);
			}
		}
	}
	for (int32_t t = 0; t < m->nt; t++)
		for (int h = 0; h < G; h++) {
			size_t r = (size_t)t * nq + g0 + h;
			softmax(sc + r * ldsc, LO(t), m->nk[t]);
		}
	/* vectors per slice of the values: two accumulators per head and vector */
	const int CS = G == 1 ? hc : G == 2 ? 4 : 2;
	for (int32_t j0 = 0; j0 < nmax; j0 += ch) {
		for (int32_t t = 0; t < m->nt; t++) {
			int32_t n = m->nk[t], lo = LO(t);
			if (j0 >= n || j0 + ch <= lo)
				continue;
			/* the token's first chunk starts its accumulators */
			const bool first = j0 <= lo;
			float *pr = park + ((size_t)t * nq + g0) * ldp;
			const float *s = sc + ((size_t)t * nq + g0) * ldsc;
			int32_t j1 = j0 + ch < n ? j0 + ch : n;
			for (int c0 = 0; c0 < hc; c0 += CS) {
				__m512 acc[SET_MAX * 16], acc2[SET_MAX * 16];
				for (int h = 0; h < G; h++)
					for (int i = 0; i < CS; i++) {
						const float *pa = pr + (size_t)h * ldp + 16 + (c0 + i) * 16;
						acc[h * CS + i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(pa);
						acc2[h * CS + i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(pa + hd);
					}
				values(a, esize, G, CS, c0, s, ldsc, first ? lo : j0, j1, acc, acc2);
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

#undef LO

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
	const struct dk_attn_multi_args m = { .a = *a, .nt = 1, .nk = &a->n, .lo = &a->lo };
	attn_multi(&m, esize);
}

void dk_attn_f32_avx512(const struct dk_attn_args *a) { attn(a, 4); }
void dk_attn_f16_avx512(const struct dk_attn_args *a) { attn(a, 2); }

void dk_attn_multi_f32_avx512(const struct dk_attn_multi_args *m) { attn_multi(m, 4); }
void dk_attn_multi_f16_avx512(const struct dk_attn_multi_args *m) { attn_multi(m, 2); }
