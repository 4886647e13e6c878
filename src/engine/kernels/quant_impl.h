/*
 * Block layouts of the GGUF tensor formats and the glue between quant.c and
 * the per-ISA kernel files.  Private to src/engine/kernels/quant*.c.
 *
 * Layouts are those of the file format (ggml's), little-endian, packed; a
 * "half" is an IEEE fp16 bit pattern.  Every struct's size is pinned below
 * because rows in a mapped file are arrays of these blocks.
 */
#ifndef DK_ENGINE_QUANT_IMPL_H
#define DK_ENGINE_QUANT_IMPL_H

#include <stdint.h>

#include "engine/kernels/quant.h"

/* x = (q - 8) * d; qs[j] low nibble = element j, high nibble = element j+16 */
struct dk_block_q4_0 {
	uint16_t d;
	uint8_t qs[DK_QK / 2];
};
/* x = q * d + m */
struct dk_block_q4_1 {
	uint16_t d, m;
	uint8_t qs[DK_QK / 2];
};
/* x = (q - 16) * d; bit j of qh is bit 4 of element j */
struct dk_block_q5_0 {
	uint16_t d;
	uint8_t qh[4];
	uint8_t qs[DK_QK / 2];
};
/* x = q * d + m */
struct dk_block_q5_1 {
	uint16_t d, m;
	uint8_t qh[4];
	uint8_t qs[DK_QK / 2];
};
/* x = q * d */
struct dk_block_q8_0 {
	uint16_t d;
	int8_t qs[DK_QK];
};
/* x = q * d; s = d * sum(qs) */
struct dk_block_q8_1 {
	uint16_t d, s;
	int8_t qs[DK_QK];
};

/* 16 sub-blocks of 16: x = d*(sc&15)*q - dmin*(sc>>4), q in 0..3 */
struct dk_block_q2_k {
	uint8_t scales[DK_QK_K / 16];
	uint8_t qs[DK_QK_K / 4];
	uint16_t d, dmin;
};
/* 16 sub-blocks of 16: x = d*(sc-32)*q, q in -4..3 (2 low bits in qs, the
 * high bit in hmask, inverted); sc are 6-bit, packed in 12 bytes */
struct dk_block_q3_k {
	uint8_t hmask[DK_QK_K / 8];
	uint8_t qs[DK_QK_K / 4];
	uint8_t scales[12];
	uint16_t d;
};
/* 8 sub-blocks of 32: x = d*sc*q - dmin*m, q in 0..15; 6-bit sc/m packed */
struct dk_block_q4_k {
	uint16_t d, dmin;
	uint8_t scales[12];
	uint8_t qs[DK_QK_K / 2];
};
/* as Q4_K with a fifth bit per element in qh */
struct dk_block_q5_k {
	uint16_t d, dmin;
	uint8_t scales[12];
	uint8_t qh[DK_QK_K / 8];
	uint8_t qs[DK_QK_K / 2];
};
/* 16 sub-blocks of 16: x = d*sc*(q-32), q 6 bits (4 in ql, 2 in qh) */
struct dk_block_q6_k {
	uint8_t ql[DK_QK_K / 2];
	uint8_t qh[DK_QK_K / 4];
	int8_t scales[DK_QK_K / 16];
	uint16_t d;
};
/* activation side of the K formats: x = q * d; bsums = sums of 16 qs */
struct dk_block_q8_k {
	float d;
	int8_t qs[DK_QK_K];
	int16_t bsums[DK_QK_K / 16];
};

_Static_assert(sizeof(struct dk_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(struct dk_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(struct dk_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(struct dk_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(struct dk_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(struct dk_block_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(struct dk_block_q2_k) == 84, "q2_k block");
_Static_assert(sizeof(struct dk_block_q3_k) == 110, "q3_k block");
_Static_assert(sizeof(struct dk_block_q4_k) == 144, "q4_k block");
_Static_assert(sizeof(struct dk_block_q5_k) == 176, "q5_k block");
_Static_assert(sizeof(struct dk_block_q6_k) == 210, "q6_k block");
_Static_assert(sizeof(struct dk_block_q8_k) == 292, "q8_k block");

/* 6-bit scale j and min j (j < 8) of a Q4_K/Q5_K block: the first four
 * pairs sit in the low 6 bits of bytes 0..7; the last four are split into a
 * nibble in bytes 8..11 and 2 high bits in the top of bytes 0..7. */
static inline void dk_q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/* Signed 6-bit scale j (j < 16) of a Q3_K block, already minus 32. */
static inline int dk_q3k_scale(int j, const uint8_t *s)
{
	int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
	int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
	return (lo | (hi << 4)) - 32;
}

/* The integers of one K super-block (Q2_K..Q6_K) at block: q[e] as the
 * reference dot multiplies it (Q3_K -4..3, Q6_K -32..31), each sub-block's
 * scale and min (mn 0 for Q3_K and Q6_K); returns the number of sub-blocks
 * (8 of 32 elements or 16 of 16), or 0 for another type.  The packer
 * (pack.c) reads K blocks through it, so the format is decoded in one
 * place. */
int dk_quant_k_unpack(enum dk_ttype t, const void *block, int q[DK_QK_K], int sc[16], int mn[16]);

/* Builds a multi-column kernel out of a single-column one. */
#define DK_DOT_N_LOOP(name, dot)                                                      \
	static void name(int64_t n, float *restrict s, size_t ss, const void *restrict x, \
			 const void *restrict y, size_t ys, int ny)                       \
	{                                                                             \
		for (int j = 0; j < ny; j++)                                          \
			dot(n, s + (size_t)j * ss, x, (const char *)y + (size_t)j * ys);  \
	}

/* Per-ISA files override entries of a table that starts as a copy of the
 * level below.  Each is called once, only when the CPU supports the ISA. */
void dk_quant_install_avx2(struct dk_qtraits tab[DK_TYPE_COUNT]);
void dk_quant_install_avx512(struct dk_qtraits tab[DK_TYPE_COUNT]);

#endif
