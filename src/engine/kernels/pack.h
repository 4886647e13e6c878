/*
 * Weight matrices repacked for row-interleaved integer kernels.  Private
 * to the engine.
 *
 * Why: a Q4_0/Q4_1/Q8_0 row holds one scale per 32 elements, so a kernel
 * that walks one row at a time pays a float conversion and a multiply-add
 * for every 32 multiply-adds.  Interleaving 16 rows puts element 4k..4k+3
 * of each row side by side in one 512-bit register: one VNNI instruction
 * then advances 16 rows at once, each lane ends a block holding that row's
 * whole integer block dot, and the float work is one vector per 16 rows.
 *
 * Layout: rows are taken in groups of 16 (the last group padded with zero
 * rows).  A group is a run of units, one per pair of blocks (2u, 2u+1),
 * each unit holding, in turn:
 *   the quants of block 2u, then of block 2u+1, as 64-byte vectors, vector
 *   v holding 4 bytes per row (row r at bytes 4r..4r+3):
 *     Q4_0, Q4_1: 4 vectors, vector v = bytes 4v..4v+3 of each row's qs;
 *                 the low nibbles are elements 4v..4v+3, the high nibbles
 *                 elements 16+4v..16+4v+3
 *     Q8_0:       8 vectors, vector v = elements 4v..4v+3, stored + 128 (so
 *                 the VNNI unsigned operand needs no per-use flip)
 *   16 fp16 scales d of block 2u (row order), then 16 of block 2u+1
 *   for Q4_1, 16 fp16 mins m of block 2u, then 16 of block 2u+1.
 * With an odd number of blocks the last unit's second half is zero.  So
 * the scales travel with their quants, and a group, and a run of groups,
 * is one forward stream of memory (units are 576, 640 or 1088 bytes, all
 * multiples of 64): a kernel fetches ahead with one pointer.
 *
 * Results: every output float is bit-identical to the scalar reference
 * dot, dk_quant_traits_level(t, DK_KERNELS_REF)->vec_dot_ref, on the
 * original row: the kernel forms the same exact integer block sums and
 * then the same float operations in the same order (sum += isum * (dx*dy),
 * plus dmin*s for Q4_1).  So the packed path does not depend on the batch
 * size, the tiling or the thread count, and it equals the reference level.
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
	int64_t ncols, nrows, nb, ngroups;
	size_t qbytes;  /* bytes of quants per block of a group: 256 or 512 */
	size_t ubytes;  /* bytes per unit (pair of blocks): 576, 640 or 1088 */
	size_t gbytes;  /* bytes per group: units per group x ubytes */
	uint8_t *data;  /* ngroups * gbytes, 64-byte aligned, owned */
};

/* Whether this CPU has a packed kernel for weight type t (AVX-512 VNNI;
 * Q4_0, Q4_1, Q8_0), honouring DOCKET_KERNELS. */
bool dk_pack_supported(enum dk_ttype t);

/* Repacks a nrows x ncols matrix of type t (row r at (const char *)w +
 * r*wrow; w is only read, during the call).  ncols must be a multiple of
 * 32.  Returns NULL when t is not supported or memory runs out. */
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
 * or Q8_1 for Q4_1).  Uses a per-thread scratch (gemm.h); threads may run
 * disjoint group ranges concurrently. */
void dk_pack_gemm(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq, size_t xrow,
		  int32_t T, float *y, int64_t ldy);

/* The scalar specification of dk_pack_gemm over the packed layout, and
 * its test oracle; dk_pack_gemm uses it below AVX-512. */
void dk_pack_gemm_ref(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq,
		      size_t xrow, int32_t T, float *y, int64_t ldy);
/* Internal: the AVX-512 VNNI kernel (pack_avx512.c), no CPU check. */
void dk_pack_gemm_avx512(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq,
			 size_t xrow, int32_t T, float *y, int64_t ldy);

#endif
