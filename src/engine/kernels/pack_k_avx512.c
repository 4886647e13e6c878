/*
 * AVX-512 VNNI kernel over the row-interleaved layout of pack.h, for the K
 * formats (Q2_K..Q6_K, Q8_K activations).
 *
 * Tile: one group of 16 rows x up to 16 activation columns, one super-
 * block at a time.  Per chunk of 32 elements the group's quants are
 * unpacked once into 8 vectors of 4 bytes x 16 rows (nibbles or crumbs,
 * the higher bits added under mask words); each column then takes 8
 * vpdpbusd with its activation bytes broadcast from memory, in chains
 * whose lane r ends holding an integer sum of row r, which the row's sub-
 * block scale multiplies into the super-block's isum.  Where the chains'
 * sums fit 16 bits (pack.h: Q4_K's halves of a sub-block, Q2_K/Q3_K's
 * sub-blocks of 16, Q6_K's quarters of 8) two of them are paired per dword
 * and scaled by one vpdpwssd with (scale, scale) pairs; Q5_K's halves need
 * 17 bits and take one vpmulld per chunk.  The stored offsets come back
 * through each chain's start: -4 * sum(y) of its elements for Q3_K, and
 * -31 * sum(y) for Q6_K, whose chains so sum -q*y (the super-block's isum
 * is negated once at its end).  After the 8 chunks, msum = sum of min x
 * the activation's bsums (bsums as from_float makes them: sums of 16
 * quants, so a sub-block of 32 sums two of them within 16 bits) is 4 or 8
 * vpdpwssd on (min, min) and (bsum, bsum) pairs, and the float side is the
 * reference's, lane by lane:
 *   sum = sum + dy * (dx*(float)isum - dmin*(float)msum)
 * (dx*(float)isum alone where there is no min: x - 0 is x) with no fma and
 * no reassociation (ISO C, no contraction).  Integer sums are exact in any
 * order, so each output equals the reference dot bit for bit.
 */
#include "engine/kernels/pack.h"

#include "engine/kernels/gemm.h"
#include "engine/kernels/quant_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define KINLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

enum { KQ2, KQ3, KQ4, KQ5, KQ6 };
#define NSUB(k) ((k) == KQ4 || (k) == KQ5 ? 8 : 16)
#define HASMIN(k) ((k) == KQ2 || (k) == KQ4 || (k) == KQ5)
/* Q3_K stores q + 4; Q6_K stores 31 - q, its chains sum -q*y */
#define OFF(k) ((k) == KQ3 ? 4 : (k) == KQ6 ? 31 : 0)
#define CRUMBS(k) ((k) == KQ2 || (k) == KQ3)
#define XBITS(k) ((k) == KQ6 ? 2 : (k) == KQ2 || (k) == KQ4 ? 0 : 1)
#define QBYTES(k) ((CRUMBS(k) ? 128 : 256) + 64 * XBITS(k))
#define SC_OFF(k) (8 * QBYTES(k))
#define MN_OFF(k) (SC_OFF(k) + 16 * NSUB(k))
#define D_OFF(k) (MN_OFF(k) + (HASMIN(k) ? 16 * NSUB(k) : 0))
#define UBYTES(k) (D_OFF(k) + 64)

#define NC_MAX 16
#ifndef PF_DIST
#define PF_DIST 4096
#endif

/* a tile's columns, interleaved per super-block so that one pointer
 * reaches all of them: super-block b, column c at index b*NC_MAX + c */
struct cols {
	uint8_t *qs;   /* 256 quants, at (b*NC_MAX + c)*256 */
	float *dy;     /* activation scale */
	int32_t *aux;  /* 32 per index: (bsum, bsum) pairs for the mins,
			* -4 * sum(q) per 16 (Q3_K), -31 * sum(q) per 8 (Q6_K) */
	float *acc;    /* NC_MAX vectors of the tile's running sums */
};

static void colprep(const int kind, int64_t nsb, const uint8_t *row, const struct cols *cs, int c)
{
	const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)row;
	for (int64_t b = 0; b < nsb; b++) {
		const size_t i = (size_t)b * NC_MAX + (size_t)c;
		memcpy(cs->qs + i * 256, y[b].qs, 256);
		cs->dy[i] = y[b].d;
		int32_t *aux = cs->aux + i * 32;
		if (HASMIN(kind)) {
			/* sub-block sums of the stored bsums, as the reference takes them */
			int16_t bs[16];
			for (int j = 0; j < NSUB(kind); j++)
				bs[j] = NSUB(kind) == 8 ? (int16_t)(y[b].bsums[2 * j] + y[b].bsums[2 * j + 1])
							: y[b].bsums[j];
			for (int k = 0; k < NSUB(kind) / 2; k++)
				aux[k] = (int32_t)((uint32_t)(uint16_t)bs[2 * k] |
						   (uint32_t)(uint16_t)bs[2 * k + 1] << 16);
		} else {
			/* sums of 8 signed bytes from the quants themselves (not the
			 * bsums): sums of (q ^ 0x80) = q + 128 */
			int32_t s8[32];
			UNROLL
			for (int h = 0; h < 4; h++) {
				__m512i q = _mm512_loadu_si512((const void *)(y[b].qs + 64 * h));
				__m512i s = _mm512_sad_epu8(_mm512_xor_si512(q, _mm512_set1_epi8((char)0x80)),
							    _mm512_setzero_si512());
				int64_t e[8];
				_mm512_storeu_si512((void *)e, s);
				for (int m = 0; m < 8; m++)
					s8[8 * h + m] = (int32_t)e[m] - 8 * 128;
			}
			if (kind == KQ6)
				for (int m = 0; m < 32; m++)
					aux[m] = -OFF(kind) * s8[m];
			else
				for (int m = 0; m < 16; m++)
					aux[m] = -OFF(kind) * (s8[2 * m] + s8[2 * m + 1]);
		}
	}
}

/* acc += w . (4 bytes at p, broadcast): the broadcast rides in the
 * instruction's memory operand (GCC emits a separate vpbroadcastd) */
KINLINE __m512i dpbusd_b(__m512i acc, __m512i w, const uint8_t *p)
{
	__asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const int32_t *)p));
	return acc;
}

/* the 8 vectors of u for one chunk (pack.h) */
KINLINE void unpack(const int kind, const uint8_t *qb, __m512i w[8])
{
	if (CRUMBS(kind)) {
		const __m512i m3 = _mm512_set1_epi8(3);
		UNROLL
		for (int h = 0; h < 2; h++) {
			__m512i raw = _mm512_load_si512((const void *)(qb + 64 * h));
			w[4 * h] = _mm512_and_si512(raw, m3);
			w[4 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(raw, 2), m3);
			w[4 * h + 2] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m3);
			w[4 * h + 3] = _mm512_and_si512(_mm512_srli_epi16(raw, 6), m3);
		}
	} else {
		const __m512i m4 = _mm512_set1_epi8(0x0F);
		UNROLL
		for (int v = 0; v < 4; v++) {
			__m512i raw = _mm512_load_si512((const void *)(qb + 64 * v));
			w[v] = _mm512_and_si512(raw, m4);
			w[v + 4] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
		}
	}
	const uint8_t *xm = qb + (CRUMBS(kind) ? 128 : 256);
	for (int bit = 0; bit < XBITS(kind); bit++) {
		const __m512i add = _mm512_set1_epi8((char)((CRUMBS(kind) ? 4 : 16) << bit));
		UNROLL
		for (int v = 0; v < 8; v++) {
			__mmask64 k = _load_mask64((__mmask64 *)(xm + 64 * bit + 8 * v));
			w[v] = _mm512_mask_add_epi8(w[v], k, w[v], add);
		}
	}
}

/* per dword, (low 16 bits of x, low 16 bits of y): hi moves each dword's
 * bytes 0-1 to 2-3 (vpshufb, off the port of vpdpbusd), then a blend */
KINLINE __m512i pair16(__m512i x, __m512i y, __m512i hi)
{
	return _mm512_mask_blend_epi16((__mmask32)0xAAAAAAAAu, x, _mm512_shuffle_epi8(y, hi));
}

KINLINE void tile(const int kind, const int nc, int64_t nsb, const uint8_t *q,
		  const struct cols *cs, float *y, int64_t ldy, __mmask16 mask, int pf)
{
	const size_t QB = QBYTES(kind), UB = UBYTES(kind);
	const int LINES = (int)(UB / 64);
	/* per dword j of each lane: bytes 2-3 from bytes 4j, 4j+1 */
	const __m512i hi = _mm512_set4_epi32(0x0D0C8080, 0x09088080, 0x05048080, 0x01008080);
	/* Q4_K: byte r of 16 scales, broadcast to each 128-bit lane, into
	 * dword r = (sc, sc) as 16-bit halves */
	const __m512i dup = _mm512_set_epi32(
		0x800F800F, 0x800E800E, 0x800D800D, 0x800C800C, 0x800B800B, 0x800A800A, 0x80098009,
		0x80088008, 0x80078007, 0x80068006, 0x80058005, 0x80048004, 0x80038003, 0x80028002,
		0x80018001, 0x80008000);
	__m512 *acc = (__m512 *)cs->acc;
	UNROLL
	for (int c = 0; c < nc; c++)
		acc[c] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nsb; b++) {
		const uint8_t *ub = q + (size_t)b * UB;
		const size_t i0 = (size_t)b * NC_MAX;
		__m512i isum[NC_MAX];
		UNROLL
		for (int c = 0; c < nc; c++)
			isum[c] = _mm512_setzero_si512();
#pragma GCC unroll 1
		for (int ch = 0; ch < 8; ch++) {
			/* the first column tile over a block of groups brings the
			 * weights from memory: fetch ahead, a share of the unit's
			 * lines per chunk, across units and groups */
			if (pf)
				for (int l = ch * LINES / 8; l < (ch + 1) * LINES / 8; l++)
					_mm_prefetch((const char *)ub + PF_DIST + 64 * l, _MM_HINT_T0);
			__m512i w[8];
			unpack(kind, ub + (size_t)ch * QB, w);
			const uint8_t *yq = cs->qs + i0 * 256 + (size_t)ch * 32;
			const uint8_t *scp = ub + SC_OFF(kind) + (NSUB(kind) == 8 ? 16 : 32) * ch;
			if (kind == KQ5) {
				/* a sub-block of 32 is two chains over 16 elements, whose
				 * sums need 17 bits: vpmulld by the scale */
				__m512i sc = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)scp));
				UNROLL
				for (int c = 0; c < nc; c++) {
					const uint8_t *ys = yq + c * 256;
					__m512i a = _mm512_setzero_si512(), e = _mm512_setzero_si512();
					UNROLL
					for (int v = 0; v < 4; v++) {
						a = dpbusd_b(a, w[v], ys + 4 * v);
						e = dpbusd_b(e, w[v + 4], ys + 16 + 4 * v);
					}
					isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(_mm512_add_epi32(a, e), sc));
				}
			} else {
				/* the chains' sums fit 16 bits (pack.h), so they go in
				 * pairs into one vpdpwssd with (scale, scale) pairs: Q4_K
				 * the two halves of its sub-block with (sc, sc); Q2_K/Q3_K
				 * the two sub-blocks of the chunk with (sc_a, sc_b), as
				 * the scales are stored; Q6_K the first and then the last
				 * 8 elements of both, with (sc_a, sc_b) twice */
				__m512i sp;
				if (kind == KQ4)
					sp = _mm512_shuffle_epi8(
						_mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)scp)), dup);
				else if (kind == KQ2)
					sp = _mm512_cvtepu8_epi16(_mm256_load_si256((const __m256i *)scp));
				else
					sp = _mm512_cvtepi8_epi16(_mm256_load_si256((const __m256i *)scp));
				UNROLL
				for (int c = 0; c < nc; c++) {
					const uint8_t *ys = yq + c * 256;
					const int32_t *aux = cs->aux + (i0 + (size_t)c) * 32;
					if (kind == KQ6) {
						__m512i c1 = _mm512_set1_epi32(aux[4 * ch]);
						__m512i c2 = _mm512_set1_epi32(aux[4 * ch + 1]);
						__m512i c3 = _mm512_set1_epi32(aux[4 * ch + 2]);
						__m512i c4 = _mm512_set1_epi32(aux[4 * ch + 3]);
						c1 = dpbusd_b(dpbusd_b(c1, w[0], ys), w[1], ys + 4);
						c2 = dpbusd_b(dpbusd_b(c2, w[2], ys + 8), w[3], ys + 12);
						c3 = dpbusd_b(dpbusd_b(c3, w[4], ys + 16), w[5], ys + 20);
						c4 = dpbusd_b(dpbusd_b(c4, w[6], ys + 24), w[7], ys + 28);
						isum[c] = _mm512_dpwssd_epi32(isum[c], pair16(c1, c3, hi), sp);
						isum[c] = _mm512_dpwssd_epi32(isum[c], pair16(c2, c4, hi), sp);
						continue;
					}
					__m512i a = kind == KQ3 ? _mm512_set1_epi32(aux[2 * ch]) : _mm512_setzero_si512();
					__m512i e = kind == KQ3 ? _mm512_set1_epi32(aux[2 * ch + 1]) : _mm512_setzero_si512();
					UNROLL
					for (int v = 0; v < 4; v++) {
						a = dpbusd_b(a, w[v], ys + 4 * v);
						e = dpbusd_b(e, w[v + 4], ys + 16 + 4 * v);
					}
					isum[c] = _mm512_dpwssd_epi32(isum[c], pair16(a, e, hi), sp);
				}
			}
		}
		if (kind == KQ6) {
			UNROLL
			for (int c = 0; c < nc; c++)
				isum[c] = _mm512_sub_epi32(_mm512_setzero_si512(), isum[c]);
		}
		if (pf)
			for (int l = LINES / 8 * 8; l < LINES; l++)
				_mm_prefetch((const char *)ub + PF_DIST + 64 * l, _MM_HINT_T0);
		__m512 dx = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(ub + D_OFF(kind))));
		if (HASMIN(kind)) {
			__m512 dm = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(ub + D_OFF(kind) + 32)));
			__m512i mn[8];
			for (int k = 0; k < NSUB(kind) / 2; k++)
				mn[k] = _mm512_cvtepu8_epi16(
					_mm256_load_si256((const __m256i *)(ub + MN_OFF(kind) + 32 * k)));
			UNROLL
			for (int c = 0; c < nc; c++) {
				const int32_t *aux = cs->aux + (i0 + (size_t)c) * 32;
				__m512i m = _mm512_setzero_si512();
				for (int k = 0; k < NSUB(kind) / 2; k++)
					m = _mm512_dpwssd_epi32(m, mn[k], _mm512_set1_epi32(aux[k]));
				__m512 t = _mm512_sub_ps(_mm512_mul_ps(dx, _mm512_cvtepi32_ps(isum[c])),
							 _mm512_mul_ps(dm, _mm512_cvtepi32_ps(m)));
				t = _mm512_mul_ps(_mm512_set1_ps(cs->dy[i0 + c]), t);
				acc[c] = _mm512_add_ps(acc[c], t);
			}
		} else {
			UNROLL
			for (int c = 0; c < nc; c++) {
				__m512 t = _mm512_mul_ps(dx, _mm512_cvtepi32_ps(isum[c]));
				t = _mm512_mul_ps(_mm512_set1_ps(cs->dy[i0 + c]), t);
				acc[c] = _mm512_add_ps(acc[c], t);
			}
		}
	}
	UNROLL
	for (int c = 0; c < nc; c++)
		_mm512_mask_storeu_ps(y + (size_t)c * ldy, mask, acc[c]);
}

typedef void (*tile_fn)(int64_t nsb, const uint8_t *q, const struct cols *cs, float *y,
			int64_t ldy, __mmask16 mask, int pf);

#define TILE(kind, nc)                                                                        \
	static void tile_##kind##_##nc(int64_t nsb, const uint8_t *q, const struct cols *cs,     \
				       float *y, int64_t ldy, __mmask16 mask, int pf)               \
	{                                                                                     \
		tile(kind, nc, nsb, q, cs, y, ldy, mask, pf);                                  \
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

TILES(KQ2)
TILES(KQ3)
TILES(KQ4)
TILES(KQ5)
TILES(KQ6)

static const tile_fn tiles[5][NC_MAX] = { TAB(KQ2), TAB(KQ3), TAB(KQ4), TAB(KQ5), TAB(KQ6) };

/* Groups are taken in blocks whose packed weights stay in L2 while every
 * column tile streams past them. */
#define L2_WEIGHTS (512 * 1024)

void dk_pack_gemm_k_avx512(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq,
			   size_t xrow, int32_t T, float *y, int64_t ldy)
{
	const int kind = p->type == DK_TYPE_Q2_K   ? KQ2
			 : p->type == DK_TYPE_Q3_K ? KQ3
			 : p->type == DK_TYPE_Q4_K ? KQ4
			 : p->type == DK_TYPE_Q5_K ? KQ5
						   : KQ6;
	const int64_t nsb = p->nb;
	if (g1 <= g0 || T <= 0)
		return;
	/* per super-block and column: 256 quants, 32 aux, dy; then acc */
	const size_t n = (size_t)nsb * NC_MAX;
	uint8_t *sp = dk_gemm_scratch(n * (256 + 128 + 4) + NC_MAX * 64 + 64);
	if (!sp) { /* out of memory: the reference needs no scratch */
		dk_pack_gemm_ref(p, g0, g1, xq, xrow, T, y, ldy);
		return;
	}
	const struct cols cs = {.qs = sp,
				.aux = (int32_t *)(sp + n * 256),
				.dy = (float *)(sp + n * 384),
				.acc = (float *)(sp + n * 388 + ((64 - n * 388 % 64) % 64))};
	int64_t rb = (int64_t)(L2_WEIGHTS / p->gbytes);
	if (rb < 1)
		rb = 1;
	/* one column tile (decode batches) is prepared once, more per block */
	const bool once = T <= NC_MAX;
	for (int c = 0; once && c < T; c++)
		colprep(kind, nsb, (const uint8_t *)xq + (size_t)c * xrow, &cs, c);
	for (int64_t ga = g0; ga < g1; ga += rb) {
		int64_t gz = g1 - ga < rb ? g1 : ga + rb;
		for (int32_t j = 0; j < T; j += NC_MAX) {
			int nc = T - j < NC_MAX ? T - j : NC_MAX;
			for (int c = 0; !once && c < nc; c++)
				colprep(kind, nsb, (const uint8_t *)xq + (size_t)(j + c) * xrow, &cs, c);
			for (int64_t g = ga; g < gz; g++) {
				int64_t left = p->nrows - g * DK_PACK_ROWS;
				__mmask16 mask = left >= DK_PACK_ROWS ? (__mmask16)0xFFFF
								      : (__mmask16)((1u << left) - 1);
				tiles[kind][nc - 1](nsb, p->data + (size_t)g * p->gbytes, &cs,
						    y + (size_t)j * ldy + g * DK_PACK_ROWS, ldy, mask, j == 0);
			}
		}
	}
}

#else /* other architectures: dk_pack_gemm never selects this */

void dk_pack_gemm_k_avx512(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq,
			   size_t xrow, int32_t T, float *y, int64_t ldy)
{
	dk_pack_gemm_ref(p, g0, g1, xq, xrow, T, y, ldy);
}

#endif
