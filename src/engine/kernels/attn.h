/*
 * Attention of one query head over one sequence's cached keys and values.
 *
 * Keys and values live in KV blocks (see kv.h) of DK_KV_BLOCK positions,
 * elements F32 or F16.  Keys are stored transposed, a tile per block and
 * KV head: element d of position j's key is at
 *   blocks[j / DK_KV_BLOCK] + k_off + (d * DK_KV_BLOCK + j % DK_KV_BLOCK) * esize
 * so element d of 16 consecutive keys is one vector, and a vector kernel
 * scores 16 keys with multiply-adds alone (row-wise keys needed a
 * horizontal sum per key and head: a quarter of the arithmetic).  Values
 * stay rows of hd elements: position j's at blocks[j / DK_KV_BLOCK] + v_off
 * + (j % DK_KV_BLOCK) * row_bytes.  Slots of a block past the last
 * position hold anything (stale rows, NaN): kernels may compute on them
 * but never let them reach a result.
 *
 * A sliding window leaves keys below lo out: the result is the one over
 * keys lo..n-1 with every sum still indexed by the key's position j (the
 * partials by j mod 16, the value chains by j mod 2), so that shifting the
 * blocks by whole blocks, lo and n with them, gives the same bits.
 *
 * Both cache types: scores = q·k * scale in float, softmax with the sum in
 * double, output = Σ p_j v_j accumulated in float (F16 rows are widened,
 * nothing is rounded to fp16 on the way), every sum in the fixed order
 * attn.c's one_head specifies (even/odd chains of fused multiply-adds, 16
 * double partials, dk_vec_exp_ref), so every level gives the same bits.  This is not llama.cpp's CPU
 * flash attention, which accumulates values in fp16: emulating that cost
 * three times the arithmetic per key, and attention over a 700-token
 * context is most of docket's batch workload; the difference to it is of
 * the size of llama.cpp's own F16-vs-F32 cache difference (README).
 * The _ref functions are the specification; dk_attn_kernel() picks the
 * kernel for this CPU once (DOCKET_KERNELS=ref forces the references).
 * Each (query head, position) is computed by the same instructions
 * whatever else is in the batch, so batching does not change results.
 */
#ifndef DK_ENGINE_ATTN_H
#define DK_ENGINE_ATTN_H

#include <stddef.h>
#include <stdint.h>

struct dk_attn_args {
	const float *q;              /* [nq][hd]: query heads sharing this KV head */
	float *out;                  /* [nq][hd] */
	int32_t nq;                  /* 1..DK_ATTN_MAX_GROUP */
	int32_t hd;
	int32_t n;                   /* positions 0..n-1 */
	int32_t lo;                  /* keys below lo are left out (a sliding window); 0: none */
	float scale;
	uint8_t *const *blocks;      /* ceil(n / DK_KV_BLOCK) block pointers */
	size_t k_off;                /* offset of this KV head's key tile in a block */
	size_t v_off;                /* offset of slot 0's value row in a block */
	size_t row_bytes;            /* distance between value rows */
	float *scratch;              /* nq * (n + 4*hd) floats, private to the caller */
};

/* Query heads per KV head handled in one pass (K/V rows are read once for
 * all of them); each head's arithmetic is the same as alone. */
#define DK_ATTN_MAX_GROUP 8

typedef void (*dk_attn_fn)(const struct dk_attn_args *a);

void dk_attn_f32_ref(const struct dk_attn_args *a);
void dk_attn_f16_ref(const struct dk_attn_args *a);
void dk_attn_f32_avx2(const struct dk_attn_args *a);
void dk_attn_f16_avx2(const struct dk_attn_args *a);
void dk_attn_f32_avx512(const struct dk_attn_args *a);
void dk_attn_f16_avx512(const struct dk_attn_args *a);

/* The kernel for a cache element size (2 = F16, 4 = F32) and head size. */
dk_attn_fn dk_attn_kernel(size_t esize, int32_t hd);

/* Several tokens of one sequence (a run of a prompt) over the same keys:
 * token t's query group is at a.q + t*q_stride, its output at
 * a.out + t*out_stride (floats), and it sees positions lo[t]..nk[t]-1 (lo
 * NULL: from 0), nk and lo ascending; a.n and a.lo are ignored.  Each (token, head) gets exactly what
 * dk_attn_fn gives it alone (test_attn checks bit equality); the AVX-512
 * kernel takes keys in chunks that stay in L1 for all rows, where one
 * token at a time streams every key from L2 once per head.
 * a.scratch: DK_ATTN_MULTI_SCRATCH(nt, nq, hd, nk[nt-1]) floats. */
struct dk_attn_multi_args {
	struct dk_attn_args a;
	int32_t nt;
	const int32_t *nk;
	const int32_t *lo;
	size_t q_stride, out_stride;
};
#define DK_ATTN_MULTI_SCRATCH(nt, nq, hd, nmax) \
	((size_t)(nt) * (size_t)(nq) * ((((size_t)(nmax) + 15) & ~(size_t)15) + 2 * (size_t)(hd) + 16))

typedef void (*dk_attn_multi_fn)(const struct dk_attn_multi_args *m);

/* one token at a time through dk_attn_kernel(esize, hd) */
void dk_attn_multi_f32_each(const struct dk_attn_multi_args *m);
void dk_attn_multi_f16_each(const struct dk_attn_multi_args *m);
void dk_attn_multi_f32_avx512(const struct dk_attn_multi_args *m);
void dk_attn_multi_f16_avx512(const struct dk_attn_multi_args *m);

/* The multi-token kernel matching dk_attn_kernel(esize, hd). */
dk_attn_multi_fn dk_attn_multi_kernel(size_t esize, int32_t hd);

#endif
