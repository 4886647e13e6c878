/*
 * 256-bit kernels (dots, activation quantisers, fp16 rows) shared by
 * quant_avx2.c and quant_avx512.c.
 * Include once per ISA file after defining
 *   DOT_U8S8(acc, u, s)  acc (8 x i32) += sums of 4 products u8 x s8
 * (maddubs+madd on AVX2, vpdpbusd on AVX-512 VNNI).  Everything here is
 * static, so each including file gets its own copy built for its ISA.
 *
 * Every kernel is written once for nc activation columns (nc a compile-time
 * constant after inlining): vec_dot is the nc = 1 instance and vec_dot_n
 * runs groups of 4, so one column's arithmetic is identical in both and the
 * multi-column result equals single dots bit-for-bit.
 */
#ifndef DK_ENGINE_QUANT_X86_H
#define DK_ENGINE_QUANT_X86_H

#include <immintrin.h>
#include <string.h>

#include "engine/kernels/quant_impl.h"

#define KINLINE static inline __attribute__((always_inline))
/* the per-column/per-chunk loops must be unrolled so their vectors stay
 * in registers */
#define UNROLL _Pragma("GCC unroll 16")
/* loops over the chunks of a K super-block: unrolling them costs registers;
 * an ISA file may define it before including this header */
#ifndef UNROLL_CHUNK
#define UNROLL_CHUNK
#endif
#define YROW(y, c, ys) ((const char *)(y) + (size_t)(c) * (ys))

static inline float h2f(uint16_t h)
{
	return _cvtsh_ss(h);
}

/* lanes k and k+4, then k and k+2, then k and k+1: the last three levels
 * of the reference's tree (quant.c, lane_tree) */
KINLINE float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles first, then high nibbles,
 * which is element order for the 32-wide formats */
KINLINE __m256i nibbles32(const uint8_t *p)
{
	__m128i t = _mm_loadu_si128((const __m128i *)p);
	__m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
	return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0xFF where the bit is set */
KINLINE __m256i bits32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
					       0x0101010101010101, 0x0000000000000000);
	__m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
	b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
	return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/* signed x signed via |x| and sign-transferred y (x, y in -127..127) */
KINLINE __m256i dot_s8s8(__m256i x, __m256i y)
{
	return DOT_U8S8(_mm256_setzero_si256(), _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

#define DOTN_DRIVER(name, kern)                                                            \
	static __attribute__((unused)) void name(int64_t n, float *restrict s, size_t ss, \
			 const void *restrict x,                                           \
			 const void *restrict y, size_t ys, int ny)                        \
	{                                                                              \
		int j = 0;                                                             \
		for (; j + 4 <= ny; j += 4)                                            \
			kern(n, s + (size_t)j * ss, ss, x, YROW(y, j, ys), ys, 4);      \
		switch (ny - j) {                                                      \
		case 3: kern(n, s + (size_t)j * ss, ss, x, YROW(y, j, ys), ys, 3); break; \
		case 2: kern(n, s + (size_t)j * ss, ss, x, YROW(y, j, ys), ys, 2); break; \
		case 1: kern(n, s + (size_t)j * ss, ss, x, YROW(y, j, ys), ys, 1); break; \
		default: break;                                                        \
		}                                                                      \
	}                                                                              \
	static __attribute__((unused)) void name##_1(int64_t n, float *restrict s,        \
			 const void *restrict x,                                           \
			     const void *restrict y)                                       \
	{                                                                              \
		kern(n, s, 0, x, y, 0, 1);                                             \
	}

/* the same in groups of at most 2 columns */
#define DOTN_DRIVER2(name, kern)                                                           \
	static __attribute__((unused)) void name(int64_t n, float *restrict s, size_t ss, \
			 const void *restrict x,                                           \
			 const void *restrict y, size_t ys, int ny)                        \
	{                                                                              \
		int j = 0;                                                             \
		for (; j + 2 <= ny; j += 2)                                            \
			kern(n, s + (size_t)j * ss, ss, x, YROW(y, j, ys), ys, 2);      \
		if (j < ny)                                                            \
			kern(n, s + (size_t)j * ss, ss, x, YROW(y, j, ys), ys, 1);      \
	}                                                                              \
	static __attribute__((unused)) void name##_1(int64_t n, float *restrict s,        \
			 const void *restrict x,                                           \
			     const void *restrict y)                                       \
	{                                                                              \
		kern(n, s, 0, x, y, 0, 1);                                             \
	}

KINLINE int hsum256i(__m256i v)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
	return _mm_cvtsi128_si32(s);
}

/* the sums of a's, b's, c's and d's 8 lanes in lanes 0..3 (exact) */
KINLINE __m128i hsum4x256i(__m256i a, __m256i b, __m256i c, __m256i d)
{
	__m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
	return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* the sums of a's and of b's 8 lanes in lanes 0 and 1 (exact integers) */
KINLINE __m128i hsum2x256i(__m256i a, __m256i b)
{
	__m256i h = _mm256_hadd_epi32(a, b); /* a01 a23 b01 b23 | a45 a67 b45 b67 */
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
	return _mm_hadd_epi32(s, s);
}

/* ------------------------------------------------------------ 32-wide blocks */

/* Weight-side registers of one 32-wide block: q as the dot's unsigned
 * operand (|q| for the signed formats), sq the signed q (sign source). */
struct xblk {
	__m256i u, sq;
	__m128 dm; /* lane 0 = d, lane 1 = m (garbage for formats without m) */
};

/* the two halves at p (d and m of a weight block, d and s of a Q8_1 block)
 * as floats in lanes 0 and 1, one conversion for both */
KINLINE __m128 h2f2(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return _mm_cvtph_ps(_mm_cvtsi32_si128((int)v));
}

KINLINE struct xblk prep_q4_0(const struct dk_block_q4_0 *b)
{
	struct xblk r;
	r.sq = _mm256_sub_epi8(nibbles32(b->qs), _mm256_set1_epi8(8));
	r.u = _mm256_sign_epi8(r.sq, r.sq);
	r.dm = h2f2(b);
	return r;
}

KINLINE struct xblk prep_q5_0(const struct dk_block_q5_0 *b)
{
	struct xblk r;
	__m256i hb = _mm256_and_si256(bits32(b->qh), _mm256_set1_epi8(0x10));
	r.sq = _mm256_sub_epi8(_mm256_or_si256(nibbles32(b->qs), hb), _mm256_set1_epi8(16));
	r.u = _mm256_sign_epi8(r.sq, r.sq);
	r.dm = h2f2(b);
	return r;
}

KINLINE struct xblk prep_q8_0(const struct dk_block_q8_0 *b)
{
	struct xblk r;
	r.sq = _mm256_loadu_si256((const __m256i *)b->qs);
	r.u = _mm256_sign_epi8(r.sq, r.sq);
	r.dm = h2f2(b);
	return r;
}

KINLINE struct xblk prep_q4_1(const struct dk_block_q4_1 *b)
{
	struct xblk r;
	r.u = nibbles32(b->qs);
	r.sq = r.u;
	r.dm = h2f2(b);
	return r;
}

KINLINE struct xblk prep_q5_1(const struct dk_block_q5_1 *b)
{
	struct xblk r;
	__m256i hb = _mm256_and_si256(bits32(b->qh), _mm256_set1_epi8(0x10));
	r.u = _mm256_or_si256(nibbles32(b->qs), hb);
	r.sq = r.u;
	r.dm = h2f2(b);
	return r;
}

/* integer dot of a prepared block with 32 activation bytes */
#define IDOT_SIGNED(xb, qy) DOT_U8S8(_mm256_setzero_si256(), (xb).u, _mm256_sign_epi8((qy), (xb).sq))
#define IDOT_UNSIGNED(xb, qy) DOT_U8S8(_mm256_setzero_si256(), (xb).u, (qy))
#define WITH_MIN 1
#define NO_MIN 0

/* The reference's order (quant.c): per block the exact integer dot,
 * reduced across lanes, then sum += isum * (dx*dy) (+ m*s for the _1
 * formats) in block order, so every level gives the reference's bits.
 * Four blocks per step share one horizontal reduction and one vector of
 * scale products. */
#define BLOCK32_KERNEL(name, XT, YT, PREP, IDOT, HASMIN)                                       \
	KINLINE void name(int64_t n, float *s, size_t ss, const void *vx, const void *vy,       \
			  size_t ys, const int nc)                                              \
	{                                                                                       \
		const XT *x = vx;                                                               \
		float sum[4];                                                                   \
		UNROLL                                                                         \
		for (int c = 0; c < nc; c++)                                                    \
			sum[c] = 0;                                                             \
		const int64_t nb = n / DK_QK;                                                   \
		int64_t i = 0;                                                                  \
		for (; i + 3 < nb; i += 4) {                                                    \
			struct xblk x0 = PREP(&x[i]), x1 = PREP(&x[i + 1]);                     \
			struct xblk x2 = PREP(&x[i + 2]), x3 = PREP(&x[i + 3]);                 \
			UNROLL                                                                 \
			for (int c = 0; c < nc; c++) {                                          \
				const YT *y = (const YT *)YROW(vy, c, ys) + i;                  \
				__m128i is = hsum4x256i(                                        \
					IDOT(x0, _mm256_loadu_si256((const __m256i *)y[0].qs)),  \
					IDOT(x1, _mm256_loadu_si256((const __m256i *)y[1].qs)),  \
					IDOT(x2, _mm256_loadu_si256((const __m256i *)y[2].qs)),  \
					IDOT(x3, _mm256_loadu_si256((const __m256i *)y[3].qs))); \
				__m128 f01 = _mm_unpacklo_ps(_mm_mul_ps(x0.dm, h2f2(&y[0])),    \
							     _mm_mul_ps(x1.dm, h2f2(&y[1])));   \
				__m128 f23 = _mm_unpacklo_ps(_mm_mul_ps(x2.dm, h2f2(&y[2])),    \
							     _mm_mul_ps(x3.dm, h2f2(&y[3])));   \
				__m128 t = _mm_mul_ps(_mm_cvtepi32_ps(is), _mm_movelh_ps(f01, f23)); \
				if (HASMIN)                                                     \
					t = _mm_add_ps(t, _mm_movehl_ps(f23, f01));             \
				sum[c] = sum[c] + _mm_cvtss_f32(t);                             \
				sum[c] = sum[c] + _mm_cvtss_f32(_mm_movehdup_ps(t));            \
				sum[c] = sum[c] + _mm_cvtss_f32(_mm_movehl_ps(t, t));           \
				sum[c] = sum[c] + _mm_cvtss_f32(_mm_shuffle_ps(t, t, 3));       \
			}                                                                       \
		}                                                                               \
		for (; i + 1 < nb; i += 2) {                                                    \
			struct xblk x0 = PREP(&x[i]), x1 = PREP(&x[i + 1]);                     \
			UNROLL                                                                 \
			for (int c = 0; c < nc; c++) {                                          \
				const YT *y = (const YT *)YROW(vy, c, ys) + i;                  \
				__m256i p0 = IDOT(x0, _mm256_loadu_si256((const __m256i *)y[0].qs)); \
				__m256i p1 = IDOT(x1, _mm256_loadu_si256((const __m256i *)y[1].qs)); \
				__m128i is = hsum2x256i(p0, p1);                                \
				__m128 f0 = _mm_mul_ps(x0.dm, h2f2(&y[0]));                     \
				__m128 f1 = _mm_mul_ps(x1.dm, h2f2(&y[1]));                     \
				float t0 = (float)_mm_cvtsi128_si32(is) * _mm_cvtss_f32(f0);    \
				float t1 = (float)_mm_extract_epi32(is, 1) * _mm_cvtss_f32(f1); \
				if (HASMIN) {                                                   \
					t0 = t0 + _mm_cvtss_f32(_mm_movehdup_ps(f0));           \
					t1 = t1 + _mm_cvtss_f32(_mm_movehdup_ps(f1));           \
				}                                                               \
				sum[c] = sum[c] + t0;                                           \
				sum[c] = sum[c] + t1;                                           \
			}                                                                       \
		}                                                                               \
		if (i < nb) {                                                                   \
			struct xblk x0 = PREP(&x[i]);                                           \
			UNROLL                                                                 \
			for (int c = 0; c < nc; c++) {                                          \
				const YT *y = (const YT *)YROW(vy, c, ys) + i;                  \
				__m256i p0 = IDOT(x0, _mm256_loadu_si256((const __m256i *)y->qs)); \
				__m128 f0 = _mm_mul_ps(x0.dm, h2f2(y));                         \
				float t0 = (float)hsum256i(p0) * _mm_cvtss_f32(f0);             \
				if (HASMIN)                                                     \
					t0 = t0 + _mm_cvtss_f32(_mm_movehdup_ps(f0));           \
				sum[c] = sum[c] + t0;                                           \
			}                                                                       \
		}                                                                               \
		UNROLL                                                                         \
		for (int c = 0; c < nc; c++)                                                    \
			s[(size_t)c * ss] = sum[c];                                             \
	}

BLOCK32_KERNEL(k_q4_0, struct dk_block_q4_0, struct dk_block_q8_0, prep_q4_0, IDOT_SIGNED, NO_MIN)
BLOCK32_KERNEL(k_q5_0, struct dk_block_q5_0, struct dk_block_q8_0, prep_q5_0, IDOT_SIGNED, NO_MIN)
BLOCK32_KERNEL(k_q8_0, struct dk_block_q8_0, struct dk_block_q8_0, prep_q8_0, IDOT_SIGNED, NO_MIN)
BLOCK32_KERNEL(k_q4_1, struct dk_block_q4_1, struct dk_block_q8_1, prep_q4_1, IDOT_UNSIGNED, WITH_MIN)
BLOCK32_KERNEL(k_q5_1, struct dk_block_q5_1, struct dk_block_q8_1, prep_q5_1, IDOT_UNSIGNED, WITH_MIN)
DOTN_DRIVER(dotn_q4_0, k_q4_0)
DOTN_DRIVER(dotn_q5_0, k_q5_0)
DOTN_DRIVER(dotn_q8_0, k_q8_0)
DOTN_DRIVER(dotn_q4_1, k_q4_1)
DOTN_DRIVER(dotn_q5_1, k_q5_1)

/* ------------------------------------------------------------ K formats */

/* The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a Q4_K/Q5_K block. */
KINLINE void q4k_scales(const uint8_t *p, uint32_t u[4])
{
	const uint32_t m1 = 0x3f3f3f3f, m2 = 0x0f0f0f0f, m3 = 0x03030303;
	memcpy(u, p, 12);
	u[3] = ((u[2] >> 4) & m2) | (((u[1] >> 6) & m3) << 4);
	uint32_t mins_lo = u[1] & m1;
	u[1] = (u[2] & m2) | (((u[0] >> 6) & m3) << 4);
	u[2] = mins_lo;
	u[0] &= m1;
}

/* sum over sub-blocks of 32 of min_j * (bsums[2j] + bsums[2j+1]) */
KINLINE __m256i q4k_minsum(const uint8_t mins[8], const int16_t *bsums)
{
	__m128i m = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mins));
	__m256i b = _mm256_loadu_si256((const __m256i *)bsums);
	__m128i b2 = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
	return _mm256_castsi128_si256(_mm_madd_epi16(m, b2)); /* 4 x i32 */
}

KINLINE float hsum128i(__m128i v)
{
	v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
	v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
	return (float)_mm_cvtsi128_si32(v);
}

/* one super-block into the running sum, as the reference writes it
 * (quant.c KFMT): the exact integer sums, then the same float operations */
KINLINE float ksum(float sum, float yd, float dx, float dmin, int isum, float msum)
{
	return sum + yd * (dx * (float)isum - dmin * msum);
}

/* Q4_K . Q8_K */
KINLINE void k_q4_k(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys,
		    const int nc)
{
	const struct dk_block_q4_k *x = vx;
	float sum[4];
	UNROLL
	for (int c = 0; c < nc; c++)
		sum[c] = 0;
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	for (int64_t i = 0; i < n / DK_QK_K; i++) {
		uint32_t u[4];
		q4k_scales(x[i].scales, u);
		const uint8_t *sc = (const uint8_t *)u, *mn = sc + 8;
		float dx = h2f(x[i].d), dmx = h2f(x[i].dmin);
		__m256i sumi[4];
		UNROLL
		for (int c = 0; c < nc; c++)
			sumi[c] = _mm256_setzero_si256();
		UNROLL_CHUNK
		for (int j = 0; j < 4; j++) {
			__m256i q4 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
			__m256i lo = _mm256_and_si256(q4, m4);
			__m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
			__m256i sl = _mm256_set1_epi16(sc[2 * j]), sh = _mm256_set1_epi16(sc[2 * j + 1]);
			UNROLL
			for (int c = 0; c < nc; c++) {
				const int8_t *q8 =
					((const struct dk_block_q8_k *)YROW(vy, c, ys))[i].qs + 64 * j;
				__m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
				__m256i ph = _mm256_maddubs_epi16(
					hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
				sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(pl, sl));
				sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(ph, sh));
			}
		}
		UNROLL
		for (int c = 0; c < nc; c++) {
			const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)YROW(vy, c, ys) + i;
			__m256i ms = q4k_minsum(mn, y->bsums);
			sum[c] = ksum(sum[c], y->d, dx, dmx, hsum256i(sumi[c]), hsum128i(_mm256_castsi256_si128(ms)));
		}
	}
	UNROLL
	for (int c = 0; c < nc; c++)
		s[(size_t)c * ss] = sum[c];
}
DOTN_DRIVER(dotn_q4_k, k_q4_k)

/* Q5_K . Q8_K: Q4_K plus a fifth bit per element from qh */
KINLINE void k_q5_k(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys,
		    const int nc)
{
	const struct dk_block_q5_k *x = vx;
	float sum[4];
	UNROLL
	for (int c = 0; c < nc; c++)
		sum[c] = 0;
	const __m256i m4 = _mm256_set1_epi8(0x0F), b16 = _mm256_set1_epi8(16);
	for (int64_t i = 0; i < n / DK_QK_K; i++) {
		uint32_t u[4];
		q4k_scales(x[i].scales, u);
		const uint8_t *sc = (const uint8_t *)u, *mn = sc + 8;
		float dx = h2f(x[i].d), dmx = h2f(x[i].dmin);
		__m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
		__m256i sumi[4];
		UNROLL
		for (int c = 0; c < nc; c++)
			sumi[c] = _mm256_setzero_si256();
		UNROLL_CHUNK
		for (int j = 0; j < 4; j++) {
			__m256i q5 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
			/* bit 2j of qh[l] -> 16 for the low half, bit 2j+1 for the high */
			__m256i hl = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j), 4), b16);
			__m256i hh = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j + 1), 4), b16);
			__m256i lo = _mm256_or_si256(_mm256_and_si256(q5, m4), hl);
			__m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q5, 4), m4), hh);
			__m256i sl = _mm256_set1_epi16(sc[2 * j]), sh = _mm256_set1_epi16(sc[2 * j + 1]);
			UNROLL
			for (int c = 0; c < nc; c++) {
				const int8_t *q8 =
					((const struct dk_block_q8_k *)YROW(vy, c, ys))[i].qs + 64 * j;
				__m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
				__m256i ph = _mm256_maddubs_epi16(
					hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
				sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(pl, sl));
				sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(ph, sh));
			}
		}
		UNROLL
		for (int c = 0; c < nc; c++) {
			const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)YROW(vy, c, ys) + i;
			__m256i ms = q4k_minsum(mn, y->bsums);
			sum[c] = ksum(sum[c], y->d, dx, dmx, hsum256i(sumi[c]), hsum128i(_mm256_castsi256_si128(ms)));
		}
	}
	UNROLL
	for (int c = 0; c < nc; c++)
		s[(size_t)c * ss] = sum[c];
}
DOTN_DRIVER(dotn_q5_k, k_q5_k)

/* 16 signed sub-block scales . 16 bsums, as 8 x i32 (for offset removal) */
KINLINE __m256i scale_bsums16(__m256i sc16, const int16_t *bsums)
{
	return _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)bsums));
}

/* 16-bit lanes 0..7 = a, 8..15 = b */
KINLINE __m256i pair16(int a, int b)
{
	return _mm256_set_m128i(_mm_set1_epi16((short)b), _mm_set1_epi16((short)a));
}

/* Q6_K . Q8_K: unsigned 6-bit q times y, then subtract 32 * sum(sc_j*bsums_j) */
KINLINE void k_q6_k(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys,
		    const int nc)
{
	const struct dk_block_q6_k *x = vx;
	float sum[4];
	UNROLL
	for (int c = 0; c < nc; c++)
		sum[c] = 0;
	const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
	for (int64_t i = 0; i < n / DK_QK_K; i++) {
		const int8_t *sc = x[i].scales;
		__m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
		__m256i sumi[4];
		UNROLL
		for (int c = 0; c < nc; c++) {
			const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)YROW(vy, c, ys) + i;
			sumi[c] = _mm256_slli_epi32(scale_bsums16(sc16, y->bsums), 5);
			sumi[c] = _mm256_sub_epi32(_mm256_setzero_si256(), sumi[c]);
		}
		UNROLL_CHUNK
		for (int h = 0; h < 2; h++) {
			__m256i qh = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
			__m256i l0 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h));
			__m256i l1 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h + 32));
			__m256i q[4];
			q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
					       _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
			q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
					       _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
			q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
					       _mm256_and_si256(qh, m30));
			q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
					       _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
			UNROLL_CHUNK
			for (int k = 0; k < 4; k++) {
				int b = 8 * h + 2 * k;
				__m256i scv = pair16(sc[b], sc[b + 1]);
				UNROLL
				for (int c = 0; c < nc; c++) {
					const int8_t *q8 = ((const struct dk_block_q8_k *)YROW(vy, c, ys))[i].qs +
							   128 * h + 32 * k;
					__m256i p = _mm256_maddubs_epi16(
						q[k], _mm256_loadu_si256((const __m256i *)q8));
					sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(p, scv));
				}
			}
		}
		float dx = h2f(x[i].d);
		UNROLL
		for (int c = 0; c < nc; c++) {
			const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)YROW(vy, c, ys) + i;
			sum[c] = ksum(sum[c], y->d, dx, 0.0f, hsum256i(sumi[c]), 0.0f);
		}
	}
	UNROLL
	for (int c = 0; c < nc; c++)
		s[(size_t)c * ss] = sum[c];
}
DOTN_DRIVER(dotn_q6_k, k_q6_k)

/* Q2_K . Q8_K: q in 0..3 with 4-bit scales and mins per 16 */
KINLINE void k_q2_k(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys,
		    const int nc)
{
	const struct dk_block_q2_k *x = vx;
	float sum[4];
	UNROLL
	for (int c = 0; c < nc; c++)
		sum[c] = 0;
	const __m256i m3 = _mm256_set1_epi8(3);
	for (int64_t i = 0; i < n / DK_QK_K; i++) {
		__m128i s8 = _mm_loadu_si128((const __m128i *)x[i].scales);
		__m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
		const uint8_t *sc = x[i].scales;
		__m256i sumi[4];
		UNROLL
		for (int c = 0; c < nc; c++)
			sumi[c] = _mm256_setzero_si256();
		UNROLL_CHUNK
		for (int h = 0; h < 2; h++) {
			__m256i q2 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
			UNROLL_CHUNK
			for (int k = 0; k < 4; k++) {
				__m256i q = _mm256_and_si256(_mm256_srli_epi16(q2, 2 * k), m3);
				int b = 8 * h + 2 * k;
				__m256i scv = pair16(sc[b] & 0xF, sc[b + 1] & 0xF);
				UNROLL
				for (int c = 0; c < nc; c++) {
					const int8_t *q8 = ((const struct dk_block_q8_k *)YROW(vy, c, ys))[i].qs +
							   128 * h + 32 * k;
					__m256i p = _mm256_maddubs_epi16(
						q, _mm256_loadu_si256((const __m256i *)q8));
					sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(p, scv));
				}
			}
		}
		float dx = h2f(x[i].d), dmx = h2f(x[i].dmin);
		UNROLL
		for (int c = 0; c < nc; c++) {
			const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)YROW(vy, c, ys) + i;
			__m256i ms = scale_bsums16(mn16, y->bsums);
			__m128i m128 = _mm_add_epi32(_mm256_castsi256_si128(ms), _mm256_extracti128_si256(ms, 1));
			sum[c] = ksum(sum[c], y->d, dx, dmx, hsum256i(sumi[c]), hsum128i(m128));
		}
	}
	UNROLL
	for (int c = 0; c < nc; c++)
		s[(size_t)c * ss] = sum[c];
}
DOTN_DRIVER(dotn_q2_k, k_q2_k)

/* The 16 signed 6-bit scales of a Q3_K block (dk_q3k_scale, four at a time):
 * low nibbles from bytes 0..7, 2-bit high parts from bytes 8..11. */
KINLINE void q3k_scales(const uint8_t *p, int8_t out[16])
{
	const uint32_t m2 = 0x0f0f0f0f, m3 = 0x03030303;
	uint32_t a[3], r[4];
	memcpy(a, p, 12);
	r[0] = (a[0] & m2) | (((a[2] >> 0) & m3) << 4);
	r[1] = (a[1] & m2) | (((a[2] >> 2) & m3) << 4);
	r[2] = ((a[0] >> 4) & m2) | (((a[2] >> 4) & m3) << 4);
	r[3] = ((a[1] >> 4) & m2) | (((a[2] >> 6) & m3) << 4);
	__m128i v = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)r), _mm_set1_epi8(32));
	_mm_storeu_si128((__m128i *)out, v);
}

/* Q3_K . Q8_K: unsigned (q+4) in 0..7, then subtract 4 * sum(sc_j*bsums_j) */
KINLINE void k_q3_k(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys,
		    const int nc)
{
	const struct dk_block_q3_k *x = vx;
	float sum[4];
	UNROLL
	for (int c = 0; c < nc; c++)
		sum[c] = 0;
	const __m256i m3 = _mm256_set1_epi8(3), b4 = _mm256_set1_epi8(4);
	for (int64_t i = 0; i < n / DK_QK_K; i++) {
		int8_t sc[16];
		q3k_scales(x[i].scales, sc);
		__m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
		__m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
		__m256i sumi[4];
		UNROLL
		for (int c = 0; c < nc; c++) {
			const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)YROW(vy, c, ys) + i;
			sumi[c] = _mm256_slli_epi32(scale_bsums16(sc16, y->bsums), 2);
			sumi[c] = _mm256_sub_epi32(_mm256_setzero_si256(), sumi[c]);
		}
		UNROLL_CHUNK
		for (int h = 0; h < 2; h++) {
			__m256i q3 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
			UNROLL_CHUNK
			for (int k = 0; k < 4; k++) {
				int bit = 4 * h + k;
				/* hmask bit set means +4 relative to the -4 offset */
				__m256i hb = _mm256_and_si256(
					_mm256_slli_epi16(_mm256_srli_epi16(hm, bit), 2), b4);
				__m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q3, 2 * k), m3), hb);
				int b = 8 * h + 2 * k;
				__m256i scv = pair16(sc[b], sc[b + 1]);
				UNROLL
				for (int c = 0; c < nc; c++) {
					const int8_t *q8 = ((const struct dk_block_q8_k *)YROW(vy, c, ys))[i].qs +
							   128 * h + 32 * k;
					__m256i p = _mm256_maddubs_epi16(
						q, _mm256_loadu_si256((const __m256i *)q8));
					sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(p, scv));
				}
			}
		}
		float dx = h2f(x[i].d);
		UNROLL
		for (int c = 0; c < nc; c++) {
			const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)YROW(vy, c, ys) + i;
			sum[c] = ksum(sum[c], y->d, dx, 0.0f, hsum256i(sumi[c]), 0.0f);
		}
	}
	UNROLL
	for (int c = 0; c < nc; c++)
		s[(size_t)c * ss] = sum[c];
}
DOTN_DRIVER(dotn_q3_k, k_q3_k)

/* ------------------------------------------------------------ float formats */

/* The reference's 64 lanes (quant.c, dot_f32_ref) are eight vectors, one
 * multiply-add chain each; the tail's lanes past n keep their value
 * (blend); then the tree: vectors r + r+4, r + r+2, r + r+1, hsum256. */
#define FLOAT_KERNEL256(name, T, LOAD)                                                         \
	KINLINE void name(int64_t n, float *s, size_t ss, const void *vx, const void *vy,       \
			  size_t ys, const int nc)                                              \
	{                                                                                       \
		const T *x = vx;                                                                \
		const T *y = (const T *)vy;                                                     \
		(void)ss;                                                                       \
		(void)ys;                                                                       \
		(void)nc;                                                                       \
		__m256 acc[8];                                                                  \
		UNROLL                                                                          \
		for (int r = 0; r < 8; r++)                                                     \
			acc[r] = _mm256_setzero_ps();                                           \
		int64_t i = 0;                                                                  \
		for (; i + 64 <= n; i += 64)                                                    \
			UNROLL                                                                  \
			for (int r = 0; r < 8; r++)                                             \
				acc[r] = _mm256_fmadd_ps(LOAD(x + i + 8 * r), LOAD(y + i + 8 * r), acc[r]); \
		if (i < n) {                                                                    \
			const int rem = (int)(n - i);                                           \
			T tx[64] = {0}, ty[64] = {0};                                           \
			memcpy(tx, x + i, (size_t)rem * sizeof(T));                             \
			memcpy(ty, y + i, (size_t)rem * sizeof(T));                             \
			const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);         \
			for (int r = 0; r < 8 && 8 * r < rem; r++) {                            \
				__m256 k = _mm256_castsi256_ps(                                 \
					_mm256_cmpgt_epi32(_mm256_set1_epi32(rem - 8 * r), lane)); \
				acc[r] = _mm256_blendv_ps(                                      \
					acc[r], _mm256_fmadd_ps(LOAD(tx + 8 * r), LOAD(ty + 8 * r), acc[r]), k); \
			}                                                                       \
		}                                                                               \
		UNROLL                                                                          \
		for (int r = 0; r < 4; r++)                                                     \
			acc[r] = _mm256_add_ps(acc[r], acc[r + 4]);                             \
		acc[0] = _mm256_add_ps(acc[0], acc[2]);                                         \
		acc[1] = _mm256_add_ps(acc[1], acc[3]);                                         \
		s[0] = hsum256(_mm256_add_ps(acc[0], acc[1]));                                  \
	}

#define LD8_F32(p) _mm256_loadu_ps(p)
#define LD8_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
/* bf16 -> f32 is a 16-bit shift, exact */
#define LD8_BF16(p) \
	_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))

FLOAT_KERNEL256(k_f32, float, LD8_F32)
FLOAT_KERNEL256(k_f16, uint16_t, LD8_F16)
FLOAT_KERNEL256(k_bf16, uint16_t, LD8_BF16)
/* one column at a time: eight accumulators per column fill the registers */
#define DOTN_DRIVER1(name, kern)                                                           \
	static __attribute__((unused)) void name(int64_t n, float *restrict s, size_t ss, \
			 const void *restrict x,                                           \
			 const void *restrict y, size_t ys, int ny)                        \
	{                                                                              \
		for (int j = 0; j < ny; j++)                                           \
			kern(n, s + (size_t)j * ss, ss, x, YROW(y, j, ys), ys, 1);      \
	}                                                                              \
	static __attribute__((unused)) void name##_1(int64_t n, float *restrict s,        \
			 const void *restrict x,                                           \
			     const void *restrict y)                                       \
	{                                                                              \
		kern(n, s, 0, x, y, 0, 1);                                             \
	}
DOTN_DRIVER1(dotn_f32, k_f32)
DOTN_DRIVER1(dotn_f16, k_f16)
DOTN_DRIVER1(dotn_bf16, k_bf16)

/* ------------------------------------------------------------ activation quantisers
 * Byte-identical to the references in quant.c: the same scalar scale
 * arithmetic, the same per-element multiply, and the same rounding (roundf's
 * half-away-from-zero for Q8_0/Q8_1, half-to-even for Q8_K). */

/* roundf, exactly, for |v| < 2^23: v - trunc(v) is exact there */
KINLINE __m256 round_away(__m256 v)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
	__m256 f = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
	__m256 up = _mm256_cmp_ps(f, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
	__m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
	return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

/* 4 x 8 int32 (values within int8) -> 32 int8 in element order */
KINLINE __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d)
{
	__m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
	return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

KINLINE float hmax256(__m256 v)
{
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_movehdup_ps(m));
	return _mm_cvtss_f32(m);
}


/* one 32-block: scale as the reference, quantise with roundf; returns the
 * sum of the quantised values */
KINLINE int q8_block(const float *x, uint16_t *hd, int8_t *qs, float *dout)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 v[4];
	__m256 m = _mm256_setzero_ps();
	UNROLL
	for (int k = 0; k < 4; k++) {
		v[k] = _mm256_loadu_ps(x + 8 * k);
		m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
	}
	float amax = hmax256(m);
	float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
	*hd = dk_fp32_to_fp16(d);
	*dout = d;
	__m256 mul = _mm256_set1_ps(id);
	__m256i q[4];
	UNROLL
	for (int k = 0; k < 4; k++)
		q[k] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[k], mul)));
	_mm256_storeu_si256((__m256i *)qs, pack32(q[0], q[1], q[2], q[3]));
	return hsum256i(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
}

/* the AVX2 level's Q8_0/Q8_1 quantisers (AVX-512 has its own, q8_rows) */
__attribute__((unused)) static void q8_0_from_float_simd(const float *restrict x, void *restrict vy,
							 int64_t n)
{
	struct dk_block_q8_0 *y = vy;
	for (int64_t i = 0; i < n / DK_QK; i++) {
		float d;
		q8_block(x + i * DK_QK, &y[i].d, y[i].qs, &d);
	}
}

__attribute__((unused)) static void q8_1_from_float_simd(const float *restrict x, void *restrict vy,
							 int64_t n)
{
	struct dk_block_q8_1 *y = vy;
	for (int64_t i = 0; i < n / DK_QK; i++) {
		float d;
		int sum = q8_block(x + i * DK_QK, &y[i].d, y[i].qs, &d);
		y[i].s = dk_fp32_to_fp16((float)sum * d);
	}
}

static void q8_k_from_float_simd(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q8_k *y = vy;
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t i = 0; i < n / DK_QK_K; i++, x += DK_QK_K) {
		__m256 m = _mm256_setzero_ps();
		for (int k = 0; k < DK_QK_K; k += 8)
			m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
		float amax = hmax256(m);
		if (amax == 0) {
			memset(&y[i], 0, sizeof y[i]);
			continue;
		}
		/* the first element of largest magnitude, as the reference picks it */
		float max = 0;
		__m256 am = _mm256_set1_ps(amax);
		for (int k = 0; k < DK_QK_K; k += 8) {
			int hit = _mm256_movemask_ps(
				_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), am, _CMP_EQ_OQ));
			if (hit) {
				max = x[k + __builtin_ctz((unsigned)hit)];
				break;
			}
		}
		float iscale = -127.f / max;
		__m256 mul = _mm256_set1_ps(iscale);
		for (int k = 0; k < DK_QK_K; k += 32) {
			__m256i q[4];
			UNROLL
			for (int u = 0; u < 4; u++)
				q[u] = _mm256_cvtps_epi32(_mm256_round_ps(
					_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * u), mul),
					_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
			__m256i b = pack32(q[0], q[1], q[2], q[3]); /* saturates at 127 like MIN */
			_mm256_storeu_si256((__m256i *)(y[i].qs + k), b);
			/* sums of 16: bytes -> pairs -> quads -> 16s */
			__m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), b),
						       _mm256_set1_epi16(1));
			__m256i h = _mm256_hadd_epi32(s4, s4);
			h = _mm256_hadd_epi32(h, h);
			y[i].bsums[k / 16] = (int16_t)_mm256_extract_epi32(h, 0);
			y[i].bsums[k / 16 + 1] = (int16_t)_mm256_extract_epi32(h, 4);
		}
		y[i].d = 1 / iscale;
	}
}

/* ------------------------------------------------------------ fp16 rows */

static void f16_to_float_f16c(const void *restrict vx, float *restrict y, int64_t n)
{
	const uint16_t *x = vx;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
	for (; i < n; i++)
		y[i] = _cvtsh_ss(x[i]);
}

static void f16_from_float_f16c(const float *restrict x, void *restrict vy, int64_t n)
{
	uint16_t *y = vy;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(y + i),
				 _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

#endif
