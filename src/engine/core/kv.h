/*
 * The KV cache: a pool of fixed-size blocks (pages) of DK_KV_BLOCK token
 * positions, allocated once, shared between sequences by reference count.
 *
 * A sequence is a table of block ids; position p lives in block table[p /
 * DK_KV_BLOCK], slot p % DK_KV_BLOCK.  A block that is full is immutable, so
 * sequences can share it: dk_kv_fork copies a table (copy-on-write applies
 * to a shared, partly filled last block), and the prefix cache keeps full
 * blocks keyed by a hash of all tokens from position 0 to the block's end,
 * so a new sequence whose prompt starts with the same tokens attaches them
 * instead of recomputing.  Unreferenced cached blocks stay reusable until
 * space is needed, then the least recently used go first.
 *
 * The pool knows nothing of what a block holds (the model lays out K and V
 * for every layer inside it); it manages ids, tokens and counts.
 */
#ifndef DK_ENGINE_KV_H
#define DK_ENGINE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/tokenizer.h"

#define DK_KV_BLOCK 16

struct dk_kv;

/* n_blocks blocks of block_bytes each for up to n_seq sequences of at most
 * n_ctx positions.  NULL when memory cannot be had. */
struct dk_kv *dk_kv_new(int32_t n_blocks, size_t block_bytes, int32_t n_seq, int32_t n_ctx,
			bool prefix_cache);
void dk_kv_free(struct dk_kv *kv);

int32_t dk_kv_len(const struct dk_kv *kv, int32_t seq);
/* Block memory of the block holding position pos of seq (pos < reserved). */
uint8_t *dk_kv_block_at(const struct dk_kv *kv, int32_t seq, int32_t pos);
/* Block memory by sequence-relative block index (for attention loops). */
uint8_t *dk_kv_seq_block(const struct dk_kv *kv, int32_t seq, int32_t bi);

/* Makes room for n_new[s] more positions in every sequence s (n_new has
 * n_seq entries), allocating and un-sharing blocks as needed.  All or
 * nothing: returns false (and changes nothing) when the pool is too small,
 * with *need set to the blocks that would have been needed. */
bool dk_kv_reserve(struct dk_kv *kv, const int32_t *n_new, int32_t *need);
/* Records the token at a reserved position (for the prefix cache). */
void dk_kv_set_token(struct dk_kv *kv, int32_t seq, int32_t pos, dk_token t);
/* Marks positions up to new_len as written; newly full blocks enter the
 * prefix cache. */
void dk_kv_commit(struct dk_kv *kv, int32_t seq, int32_t new_len);

void dk_kv_clear(struct dk_kv *kv, int32_t seq);
void dk_kv_fork(struct dk_kv *kv, int32_t src, int32_t dst);
/* Attaches cached full blocks for a prefix of toks[0..n) that ends at or
 * before position keep (which is left to decode: its logits are wanted). */
int32_t dk_kv_reuse_prefix(struct dk_kv *kv, int32_t seq, const dk_token *toks, int32_t n,
			   int32_t keep);

struct dk_kv_counters {
	uint64_t hit_tokens, miss_tokens, evictions;
	int32_t blocks_total, blocks_used;
};
void dk_kv_counters(const struct dk_kv *kv, struct dk_kv_counters *out);

/* ---- save/load of prefixes ---- */
size_t dk_kv_block_bytes(const struct dk_kv *kv);
/* Number of full, written blocks at the start of seq. */
int32_t dk_kv_seq_full_blocks(const struct dk_kv *kv, int32_t seq);
/* Tokens of block bi of seq (DK_KV_BLOCK of them). */
const dk_token *dk_kv_seq_block_tokens(const struct dk_kv *kv, int32_t seq, int32_t bi);
/* Adds one full block to the prefix cache as if it had been computed:
 * *chain is the chain hash of everything before it (0 at the start) and is
 * advanced past it.  Returns false when no block can be had.  A block
 * already cached under the same tokens is kept (and true returned). */
bool dk_kv_import_block(struct dk_kv *kv, uint64_t *chain, const dk_token *toks, const void *data);

#endif
