/*
 * AVX-512 VNNI kernel over the row-interleaved layout of pack.h, for the
 * 32-element formats (the K formats are in pack_k_avx512.c).
 *
 * Tile: one group of 16 rows x up to 16 activation columns.  Per block the
 * group's quants are unpacked once into 8 vectors of 4 bytes x 16 rows;
 * each column then takes 8 vpdpbusd with its 4 activation bytes broadcast
 * from memory (the columns' quants and scales are copied side by side per
 * block first, so one pointer reaches them all and nothing spills),
 * which leaves lane r holding row r's integer block dot.  Weights are the
 * unsigned operand (nibbles, Q5's fifth bit added under a mask word, or
 * q8 + 128); the offset is taken back by
 * starting the sum at -offset * sum(y) of the block.  Integer sums are
 * exact in any order, so splitting them over two accumulators (for
 * latency: with one chain per column, even 16 columns, a batch of 16 ran
 * 2% slower, 0/10) is free; the float side is the reference's, lane by
 * lane:
 *   sum = sum + (float)isum * (dx*dy)       (+ m*s inside, for Q4_1/Q5_1)
 * with no fma and no reassociation (ISO C, no contraction).
 *
 * What bounds a batch of 16: on Zen 4 the two float multiplies per block
 * and column share the two pipes that run vpdpbusd (8 per block and
 * column).  Timed with deliberately wrong variants, alternated at batch
 * 16 on the 135M Q4_0 shape: one multiply replaced by an add, +5.5% (8/8);
 * the nibble unpacking removed, +0.4%.  Both multiplies are the
 * reference's, so this is the kernel's ceiling.
 */
#include "engine/kernels/pack.h"

#include "engine/kernels/gemm.h"
#include "engine/kernels/quant_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define KINLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

enum { K_Q4_0, K_Q4_1, K_Q8_0, K_Q5_0, K_Q5_1 };
/* Q4_1/Q5_1 take Q8_1 activations and a min term */
#define HAS_MIN(kind) ((kind) == K_Q4_1 || (kind) == K_Q5_1)
#define IS_Q5(kind) ((kind) == K_Q5_0 || (kind) == K_Q5_1)
/* Columns per tile: 16 accumulators and the 8 weight vectors of a block
 * fit the 32 registers, and a batch of 16 decodes then fetches and
 * unpacks each weight block once per step instead of twice (alternated:
 * 1B Q4_0 batch 16 +19%, then +5% and 135M +6% from the side-by-side
 * column data; the kernel on weights from memory 592 -> 664 GOP/s). */
#define NC_MAX 16
#ifndef PF_DIST
#define PF_DIST 2048
#endif

/* a tile's columns, interleaved per block so that one pointer reaches
 * all of them: block b, column c at index b*NC_MAX + c */
struct cols {
	float *dy;      /* activation scale */
	float *sy;      /* Q8_1: d * sum(q), as stored */
	int32_t *corr;  /* -offset * sum(q) (Q4_0, Q8_0) */
	uint8_t *qs;    /* 32 quants, at (b*NC_MAX + c)*32 */
};

KINLINE float h2f(const void *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	return _cvtsh_ss(h);
}

static void colprep(const int kind, int64_t nb, const uint8_t *row, const struct cols *cs, int c)
{
	const size_t yb = HAS_MIN(kind) ? sizeof(struct dk_block_q8_1) : sizeof(struct dk_block_q8_0);
	const size_t yo = HAS_MIN(kind) ? offsetof(struct dk_block_q8_1, qs)
					: offsetof(struct dk_block_q8_0, qs);
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *blk = row + (size_t)b * yb;
		const size_t i = (size_t)b * NC_MAX + (size_t)c;
		__m256i q = _mm256_loadu_si256((const __m256i *)(blk + yo));
		_mm256_store_si256((__m256i *)(cs->qs + i * 32), q);
		cs->dy[i] = h2f(blk);
		if (HAS_MIN(kind)) {
			cs->sy[i] = h2f(blk + offsetof(struct dk_block_q8_1, s));
			continue;
		}
		/* sum of 32 signed bytes: unsigned sums of (q ^ 0x80) = q + 128 */
		__m256i s = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)),
					    _mm256_setzero_si256());
		__m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
		h = _mm_add_epi64(h, _mm_unpackhi_epi64(h, h));
		int32_t sum = (int32_t)_mm_cvtsi128_si64(h) - 32 * 128;
		cs->corr[i] = -(kind == K_Q8_0 ? 128 : kind == K_Q5_0 ? 16 : 8) * sum;
	}
}

/* acc += w . (4 bytes at p, broadcast): the broadcast rides in the
 * instruction's memory operand (GCC emits a separate vpbroadcastd) */
KINLINE __m512i dpbusd_b(__m512i acc, __m512i w, const uint8_t *p)
{
	__asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const int32_t *)p));
	return acc;
}

/* one block: 16 rows x nc columns, into acc */
KINLINE void block(const int kind, const int nc, int64_t b, const uint8_t *qb, const uint16_t *ds,
		   const struct cols *cs, __m512 *acc)
{
	const __m512i lo = _mm512_set1_epi8(0x0F);
	__m512i w[8];
	if (kind == K_Q8_0) {
		UNROLL
		for (int v = 0; v < 8; v++)
			w[v] = _mm512_load_si512((const void *)(qb + v * 64));
	} else {
		UNROLL
		for (int v = 0; v < 4; v++) {
			__m512i raw = _mm512_load_si512((const void *)(qb + v * 64));
			w[v] = _mm512_and_si512(raw, lo);
			w[v + 4] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo);
		}
	}
	if (IS_Q5(kind)) {
		/* the fifth bit, one mask word per vector: a masked add of 16 */
		const __m512i b4 = _mm512_set1_epi8(16);
		UNROLL
		for (int v = 0; v < 8; v++) {
			__mmask64 k = _load_mask64((__mmask64 *)(qb + 256 + 8 * v));
			w[v] = _mm512_mask_add_epi8(w[v], k, w[v], b4);
		}
	}
	__m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)ds));
	__m512 m = HAS_MIN(kind)
			   ? _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(ds + 2 * DK_PACK_ROWS)))
			   : _mm512_setzero_ps();
	const size_t i0 = (size_t)b * NC_MAX;
	const uint8_t *yq = cs->qs + i0 * 32;
	UNROLL
	for (int c = 0; c < nc; c++) {
		const uint8_t *ys = yq + c * 32;
		__m512i ia = HAS_MIN(kind) ? _mm512_setzero_si512() : _mm512_set1_epi32(cs->corr[i0 + c]);
		__m512i ib = _mm512_setzero_si512();
		UNROLL
		for (int v = 0; v < 8; v += 2) {
			ia = dpbusd_b(ia, w[v], ys + 4 * v);
			ib = dpbusd_b(ib, w[v + 1], ys + 4 * v + 4);
		}
		__m512 s = _mm512_mul_ps(d, _mm512_set1_ps(cs->dy[i0 + c]));
		__m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(ia, ib)), s);
		if (HAS_MIN(kind))
			t = _mm512_add_ps(t, _mm512_mul_ps(m, _mm512_set1_ps(cs->sy[i0 + c])));
		acc[c] = _mm512_add_ps(acc[c], t);
	}
}

KINLINE void tile(const int kind, const int nc, int64_t nb, const uint8_t *q,
		  const struct cols *cs, float *y, int64_t ldy, __mmask16 mask, int pf)
{
	const size_t qbytes = kind == K_Q8_0 ? 512 : IS_Q5(kind) ? 320 : 256;
	const size_t ubytes = 2 * qbytes + (HAS_MIN(kind) ? 128 : 64);
	__m512 acc[NC_MAX];
	UNROLL
	for (int c = 0; c < nc; c++)
		acc[c] = _mm512_setzero_ps();
	for (int64_t u = 0; 2 * u < nb; u++) {
		const uint8_t *ub = q + (size_t)u * ubytes;
		/* the first column tile over a block of groups brings the weights
		 * from memory (the later ones find them in L2), and the hardware
		 * prefetcher alone left decode at a third of the bandwidth and
		 * small batches waiting on memory between multiplies: fetch ahead
		 * one unit per unit, across the end of the group into the next,
		 * into L1 (fetching into L2 only, as attention does, left the
		 * single stream 13% slower) */
		if (pf) {
			UNROLL
			for (size_t o = 0; o < ubytes; o += 64)
				_mm_prefetch((const char *)ub + PF_DIST + o, _MM_HINT_T0);
		}
		const uint16_t *ds = (const uint16_t *)(ub + 2 * qbytes);
		block(kind, nc, 2 * u, ub, ds, cs, acc);
		if (2 * u + 1 < nb)
			block(kind, nc, 2 * u + 1, ub + qbytes, ds + DK_PACK_ROWS, cs, acc);
	}
	UNROLL
	for (int c = 0; c < nc; c++)
		_mm512_mask_storeu_ps(y + (size_t)c * ldy, mask, acc[c]);
}

typedef void (*tile_fn)(int64_t nb, const uint8_t *q, const struct cols *cs, float *y,
			int64_t ldy, __mmask16 mask, int pf);

#define TILE(kind, nc)                                                                        \
	static void tile_##kind##_##nc(int64_t nb, const uint8_t *q, const struct cols *cs,      \
				       float *y, int64_t ldy, __mmask16 mask, int pf)               \
	{                                                                                     \
		tile(kind, nc, nb, q, cs, y, ldy, mask, pf);                                   \
	}
#define TILES(kind) TILE(kind, 1) TILE(kind, 2) TILE(kind, 3) TILE(kind, 4)      \
	TILE(kind, 5) TILE(kind, 6) TILE(kind, 7) TILE(kind, 8) TILE(kind, 9)         \
	TILE(kind, 10) TILE(kind, 11) TILE(kind, 12) TILE(kind, 13) TILE(kind, 14)    \
	TILE(kind, 15) TILE(kind, 16)
#define TAB(kind)                                                                      \
	{ tile_##kind##_1,  tile_##kind##_2,  tile_##kind##_3,  tile_##kind##_4,        \
	  tile_##kind##_5,  tile_##kind##_6,  tile_##kind##_7,  tile_##kind##_8,        \
	  tile_##kind##_9,  tile_##kind##_10, tile_##kind##_11, tile_##kind##_12,       \
	  tile_##kind##_13, tile_##kind##_14, tile_##kind##_15, tile_##kind##_16 }

TILES(K_Q4_0)
TILES(K_Q4_1)
TILES(K_Q8_0)
TILES(K_Q5_0)
TILES(K_Q5_1)

static const tile_fn tiles[5][NC_MAX] = { TAB(K_Q4_0), TAB(K_Q4_1), TAB(K_Q8_0), TAB(K_Q5_0),
					  TAB(K_Q5_1) };

/* Groups are taken in blocks whose packed weights stay in L2 while every
 * column tile streams past them. */
#define L2_WEIGHTS (512 * 1024)

void dk_pack_gemm_avx512(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq,
			 size_t xrow, int32_t T, float *y, int64_t ldy)
{
	const int kind = p->type == DK_TYPE_Q4_0   ? K_Q4_0
			 : p->type == DK_TYPE_Q4_1 ? K_Q4_1
			 : p->type == DK_TYPE_Q5_0 ? K_Q5_0
			 : p->type == DK_TYPE_Q5_1 ? K_Q5_1
						   : K_Q8_0;
	const int64_t nb = p->nb;
	if (g1 <= g0 || T <= 0)
		return;
	/* per block and column: 32 quants, dy, sy, corr */
	const size_t n = (size_t)nb * NC_MAX;
	uint8_t *sp = dk_gemm_scratch(n * (32 + 3 * sizeof(float)));
	if (!sp) { /* out of memory: the reference needs no scratch */
		dk_pack_gemm_ref(p, g0, g1, xq, xrow, T, y, ldy);
		return;
	}
	const struct cols cs = {.qs = sp,
				.dy = (float *)(sp + n * 32),
				.sy = (float *)(sp + n * 36),
				.corr = (int32_t *)(sp + n * 40)};
	int64_t rb = (int64_t)(L2_WEIGHTS / p->gbytes);
	if (rb < 1)
		rb = 1;
	/* one column tile (decode batches) is prepared once, more per block */
	const bool once = T <= NC_MAX;
	for (int c = 0; once && c < T; c++)
		colprep(kind, nb, (const uint8_t *)xq + (size_t)c * xrow, &cs, c);
	for (int64_t ga = g0; ga < g1; ga += rb) {
		int64_t gz = g1 - ga < rb ? g1 : ga + rb;
		for (int32_t j = 0; j < T; j += NC_MAX) {
			int nc = T - j < NC_MAX ? T - j : NC_MAX;
			for (int c = 0; !once && c < nc; c++)
				colprep(kind, nb, (const uint8_t *)xq + (size_t)(j + c) * xrow, &cs, c);
			for (int64_t g = ga; g < gz; g++) {
				int64_t left = p->nrows - g * DK_PACK_ROWS;
				__mmask16 mask = left >= DK_PACK_ROWS ? (__mmask16)0xFFFF
								      : (__mmask16)((1u << left) - 1);
				tiles[kind][nc - 1](nb, p->data + (size_t)g * p->gbytes, &cs,
						    y + (size_t)j * ldy + g * DK_PACK_ROWS, ldy, mask, j == 0);
			}
		}
	}
}

#else /* other architectures: dk_pack_gemm never selects this */

void dk_pack_gemm_avx512(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq,
			 size_t xrow, int32_t T, float *y, int64_t ldy)
{
	dk_pack_gemm_ref(p, g0, g1, xq, xrow, T, y, ldy);
}

#endif
