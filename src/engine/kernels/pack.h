/*
 * Weight matrices repacked for row-interleaved integer kernels.  Private
 * to the engine.
 *
 * Why: a quantised row holds a scale per 16 or 32 elements, so a kernel
 * that walks one row at a time pays scale work for every few multiply-
 * adds.  Interleaving 16 rows puts 4 consecutive elements of each row side
 * by side in one 512-bit register: one VNNI instruction then advances 16
 * rows at once, each lane ends a block holding that row's integer block
 * dot, and the scale work is one vector per 16 rows.
 *
 * Layout: rows are taken in groups of 16 (the last group padded with zero
 * rows), a group is a run of units, and units are multiples of 64 bytes,
 * so a group, and a run of groups, is one forward stream of memory that a
 * kernel fetches ahead with one pointer.  Quants are stored as unsigned
 * u = q + off (off: Q4_0 8, Q5_0 16, Q8_0 128, Q3_K 4, else 0), the VNNI
 * unsigned operand; Q6_K stores u = 31 - q, so that a sum of 8 products
 * -q*y fits 16 bits whatever the activation bytes.  A "w vector" v (v < 8)
 * of 32 elements holds elements 4v..4v+3 of each row (row r at bytes
 * 4r..4r+3); it is stored as
 *   bytes:   the vector itself (Q8_0);
 *   nibbles: 4 vectors of 64 bytes, vector v & 3, low nibbles for v < 4,
 *            high for v >= 4 (Q4_*, Q5_*, Q6_K);
 *   crumbs:  2 vectors, vector v / 4, bits 2(v & 3)..2(v & 3)+1 (Q2_K,
 *            Q3_K);
 *   then the higher bits as mask words: 8 64-bit words per bit, word v
 *            bit 4r+i for element 4v+i of row r (Q5_* bit 4, Q6_K bits 4
 *            and 5, Q3_K bit 2).
 * 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): one unit per pair of
 * blocks (2u, 2u+1): the 32 quants of block 2u, then of 2u+1 (qbytes each:
 * 256, 320 or 512), 16 fp16 scales d of block 2u (row order), 16 of 2u+1,
 * and for Q4_1/Q5_1 16 fp16 mins m of block 2u, then 16 of 2u+1.  With an
 * odd number of blocks the last unit's second half is zero.  Units are
 * 576 (Q4_0), 640 (Q4_1), 704 (Q5_0), 768 (Q5_1) or 1088 (Q8_0) bytes.
 * K formats (Q2_K..Q6_K): one unit per super-block of 256: 8 chunks of 32
 * elements (qbytes each: Q2_K 128, Q3_K 192, Q4_K 256, Q5_K 320, Q6_K
 * 384), then the sub-block scales as bytes, [sub-block][row] for the 8
 * sub-blocks of 32 of Q4_K/Q5_K, [pair of sub-blocks][row][2] for the 16
 * of 16 of the others (Q3_K's already minus 32), for Q2_K/Q4_K/Q5_K the
 * mins as bytes [pair of sub-blocks][row][2], then 16 fp16 d and 16 fp16
 * dmin (zero for Q3_K/Q6_K).  Units are 1600, 1856, 2368, 2880 or 3392
 * bytes.
 *
 * Results: every output float is bit-identical to the scalar reference
 * dot, dk_quant_traits_level(t, DK_KERNELS_REF)->vec_dot_ref, on the
 * original row: the kernel forms the same exact integers (block sums; for
 * K formats isum = sum of scale x sub-block sum, and msum = sum of min x
 * the activation's bsums) and then the same float operations in the same
 * order (sum += isum * (dx*dy), plus m*s for Q4_1/Q5_1; K formats
 * sum += dy * (dx*isum - dmin*msum)).  So the packed path does not depend
 * on the batch size, the tiling or the thread count, and it equals the
 * reference level.
 */
#ifndef DK_ENGINE_PACK_H
#define DK_ENGINE_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/gguf.h"

#define DK_PACK_ROWS 16 /* rows per group */

/* Immutable after dk_pack_new: threads share it without locks. */
struct dk_pack {
	enum dk_ttype type;
	int64_t ncols, nrows, ngroups;
	int64_t nb;     /* blocks per row (32 elements, or 256 for K formats) */
	size_t qbytes;  /* bytes of quants per block (K: per chunk of 32) */
	size_t ubytes;  /* bytes per unit (see above) */
	size_t gbytes;  /* bytes per group: units per group x ubytes */
	uint8_t *data;  /* ngroups * gbytes, 64-byte aligned, owned */
};

/* Whether this CPU has a packed kernel for weight type t (AVX-512 VNNI;
 * Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K), honouring DOCKET_KERNELS. */
bool dk_pack_supported(enum dk_ttype t);
/* Whether t has a packed layout at all, whatever the CPU. */
bool dk_pack_has_layout(enum dk_ttype t);

/* Repacks a nrows x ncols matrix of type t (row r at (const char *)w +
 * r*wrow; w is only read, during the call).  ncols must be a multiple of
 * the type's block.  Returns NULL when t has no layout or memory runs
 * out. */
struct dk_pack *dk_pack_new(enum dk_ttype t, const void *w, size_t wrow, int64_t ncols,
			    int64_t nrows);
void dk_pack_free(struct dk_pack *p);

int64_t dk_pack_groups(const struct dk_pack *p);
int64_t dk_pack_rows(const struct dk_pack *p);
/* bytes of packed data */
size_t dk_pack_bytes(const struct dk_pack *p);

/* y[j*ldy + r] = dot(row r, activation row j) for the rows of groups
 * [g0, g1) (rows past nrows are not written) and j < T.  Activation row j
 * is at (const char *)xq + j*xrow in the weight type's dot format (Q8_0,
 * Q8_1 for Q4_1/Q5_1, Q8_K for K formats).  Uses a per-thread scratch
 * (gemm.h); threads may run disjoint group ranges concurrently. */
void dk_pack_gemm(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq, size_t xrow,
		  int32_t T, float *y, int64_t ldy);

/* The scalar specification of dk_pack_gemm over the packed layout, and
 * its test oracle; dk_pack_gemm uses it below AVX-512. */
void dk_pack_gemm_ref(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq,
		      size_t xrow, int32_t T, float *y, int64_t ldy);
/* Internal: the AVX-512 VNNI kernels (pack_avx512.c for 32-element
 * blocks, pack_k_avx512.c for K formats), no CPU check. */
void dk_pack_gemm_avx512(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq,
			 size_t xrow, int32_t T, float *y, int64_t ldy);
void dk_pack_gemm_k_avx512(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq,
			   size_t xrow, int32_t T, float *y, int64_t ldy);

/* Internal, shared by pack.c and the kernels: where a K unit keeps its
 * scales, mins and d (see the layout above). */
int dk_pack_k_nsub(enum dk_ttype t);
size_t dk_pack_k_sc(const struct dk_pack *p);   /* offset of the scales */
size_t dk_pack_k_mn(const struct dk_pack *p);   /* of the mins */
size_t dk_pack_k_d(const struct dk_pack *p);    /* of d; dmin 32 bytes on */

#endif
