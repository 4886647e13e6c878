#include "engine/core/kv.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct block {
	int32_t ref;          /* sequences using it */
	bool cached;          /* in the hash table */
	uint64_t hash;        /* chain hash of tokens [0, end of block) */
	uint64_t parent;      /* chain hash before this block (0 for the first) */
	int32_t lru_prev, lru_next; /* unreferenced cached blocks, oldest first */
	int32_t next_free;
	dk_token tokens[DK_KV_BLOCK];
};

struct seq {
	int32_t len;          /* positions written (committed) */
	int32_t reserved;     /* positions with a block behind them */
	int32_t nb;
	int32_t *table;
};

struct dk_kv {
	int32_t n_blocks, n_seq, max_blocks;
	size_t block_bytes;
	uint8_t *mem;
	size_t mem_bytes;
	struct block *blocks;
	struct seq *seqs;
	int32_t free_head, n_free;
	int32_t lru_head, lru_tail, n_lru;
	int32_t *htab;        /* open addressing: block id or -1 */
	int32_t hcap;
	bool prefix_cache;
	uint64_t hits, misses, evictions;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

static uint64_t chain_hash(uint64_t parent, const dk_token *t)
{
	uint64_t h = mix(parent, 0x243f6a8885a308d3ull);
	for (int i = 0; i < DK_KV_BLOCK; i++)
		h = mix(h, (uint32_t)t[i]);
	return h ? h : 1; /* 0 means "no parent" */
}

struct dk_kv *dk_kv_new(int32_t n_blocks, size_t block_bytes, int32_t n_seq, int32_t n_ctx,
			bool prefix_cache)
{
	struct dk_kv *kv = calloc(1, sizeof *kv);
	if (!kv)
		return NULL;
	kv->n_blocks = n_blocks;
	kv->n_seq = n_seq;
	kv->max_blocks = (n_ctx + DK_KV_BLOCK - 1) / DK_KV_BLOCK;
	kv->block_bytes = block_bytes;
	kv->prefix_cache = prefix_cache;
	kv->mem_bytes = (size_t)n_blocks * block_bytes;
	/* anonymous mapping: zero pages, committed lazily, released whole */
	void *m = mmap(NULL, kv->mem_bytes ? kv->mem_bytes : 1, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	kv->mem = m == MAP_FAILED ? NULL : m;
	kv->blocks = calloc((size_t)n_blocks, sizeof *kv->blocks);
	kv->seqs = calloc((size_t)n_seq, sizeof *kv->seqs);
	kv->hcap = 16;
	while (kv->hcap < 2 * n_blocks)
		kv->hcap *= 2;
	kv->htab = malloc((size_t)kv->hcap * sizeof *kv->htab);
	if (!kv->mem || !kv->blocks || !kv->seqs || !kv->htab) {
		dk_kv_free(kv);
		return NULL;
	}
	for (int32_t s = 0; s < n_seq; s++) {
		kv->seqs[s].table = calloc((size_t)kv->max_blocks + 1, sizeof(int32_t));
		if (!kv->seqs[s].table) {
			dk_kv_free(kv);
			return NULL;
		}
	}
	memset(kv->htab, 0xff, (size_t)kv->hcap * sizeof *kv->htab);
	for (int32_t b = 0; b < n_blocks; b++)
		kv->blocks[b].next_free = b + 1 < n_blocks ? b + 1 : -1;
	kv->free_head = n_blocks ? 0 : -1;
	kv->n_free = n_blocks;
	kv->lru_head = kv->lru_tail = -1;
	return kv;
}

void dk_kv_free(struct dk_kv *kv)
{
	if (!kv)
		return;
	if (kv->seqs)
		for (int32_t s = 0; s < kv->n_seq; s++)
			free(kv->seqs[s].table);
	if (kv->mem)
		munmap(kv->mem, kv->mem_bytes ? kv->mem_bytes : 1);
	free(kv->seqs);
	free(kv->blocks);
	free(kv->htab);
	free(kv);
}

size_t dk_kv_block_bytes(const struct dk_kv *kv) { return kv->block_bytes; }
int32_t dk_kv_len(const struct dk_kv *kv, int32_t seq) { return kv->seqs[seq].len; }

uint8_t *dk_kv_block_at(const struct dk_kv *kv, int32_t seq, int32_t pos)
{
	return kv->mem + (size_t)kv->seqs[seq].table[pos / DK_KV_BLOCK] * kv->block_bytes;
}

uint8_t *dk_kv_seq_block(const struct dk_kv *kv, int32_t seq, int32_t bi)
{
	return kv->mem + (size_t)kv->seqs[seq].table[bi] * kv->block_bytes;
}

/* ---- hash table of cached blocks ---- */

static void htab_insert(struct dk_kv *kv, int32_t b)
{
	uint32_t m = (uint32_t)kv->hcap - 1, i = (uint32_t)kv->blocks[b].hash & m;
	while (kv->htab[i] >= 0)
		i = (i + 1) & m;
	kv->htab[i] = b;
}

static void htab_remove(struct dk_kv *kv, int32_t b)
{
	uint32_t m = (uint32_t)kv->hcap - 1, i = (uint32_t)kv->blocks[b].hash & m;
	while (kv->htab[i] != b) {
		if (kv->htab[i] < 0)
			return;
		i = (i + 1) & m;
	}
	kv->htab[i] = -1;
	/* re-insert the rest of the cluster so lookups don't stop early */
	for (i = (i + 1) & m; kv->htab[i] >= 0; i = (i + 1) & m) {
		int32_t x = kv->htab[i];
		kv->htab[i] = -1;
		htab_insert(kv, x);
	}
}

static int32_t htab_find(const struct dk_kv *kv, uint64_t hash, uint64_t parent, const dk_token *t)
{
	uint32_t m = (uint32_t)kv->hcap - 1, i = (uint32_t)hash & m;
	for (; kv->htab[i] >= 0; i = (i + 1) & m) {
		const struct block *b = &kv->blocks[kv->htab[i]];
		if (b->hash == hash && b->parent == parent &&
		    !memcmp(b->tokens, t, sizeof b->tokens))
			return kv->htab[i];
	}
	return -1;
}

/* ---- LRU of unreferenced cached blocks ---- */

static void lru_unlink(struct dk_kv *kv, int32_t b)
{
	struct block *x = &kv->blocks[b];
	if (x->lru_prev >= 0)
		kv->blocks[x->lru_prev].lru_next = x->lru_next;
	else
		kv->lru_head = x->lru_next;
	if (x->lru_next >= 0)
		kv->blocks[x->lru_next].lru_prev = x->lru_prev;
	else
		kv->lru_tail = x->lru_prev;
	kv->n_lru--;
}

static void lru_push(struct dk_kv *kv, int32_t b)
{
	struct block *x = &kv->blocks[b];
	x->lru_prev = kv->lru_tail;
	x->lru_next = -1;
	if (kv->lru_tail >= 0)
		kv->blocks[kv->lru_tail].lru_next = b;
	else
		kv->lru_head = b;
	kv->lru_tail = b;
	kv->n_lru++;
}

static int32_t alloc_block(struct dk_kv *kv)
{
	int32_t b = kv->free_head;
	if (b >= 0) {
		kv->free_head = kv->blocks[b].next_free;
		kv->n_free--;
	} else {
		b = kv->lru_head;
		if (b < 0)
			return -1;
		lru_unlink(kv, b);
		htab_remove(kv, b);
		kv->blocks[b].cached = false;
		kv->evictions++;
	}
	kv->blocks[b].ref = 1;
	kv->blocks[b].hash = 0;
	return b;
}

static void release_block(struct dk_kv *kv, int32_t b)
{
	struct block *x = &kv->blocks[b];
	if (--x->ref > 0)
		return;
	if (x->cached) {
		lru_push(kv, b);
	} else {
		x->next_free = kv->free_head;
		kv->free_head = b;
		kv->n_free++;
	}
}

static void retain_block(struct dk_kv *kv, int32_t b)
{
	if (kv->blocks[b].ref++ == 0 && kv->blocks[b].cached)
		lru_unlink(kv, b);
}

bool dk_kv_reserve(struct dk_kv *kv, const int32_t *n_new, int32_t *need)
{
	int32_t total = 0;
	for (int32_t s = 0; s < kv->n_seq; s++) {
		if (!n_new[s])
			continue;
		struct seq *q = &kv->seqs[s];
		int32_t end = q->len + n_new[s];
		int32_t have = q->nb;
		int32_t want = (end + DK_KV_BLOCK - 1) / DK_KV_BLOCK;
		if (want > have)
			total += want - have;
		/* writing into a shared partial block needs a private copy */
		if (q->len % DK_KV_BLOCK && kv->blocks[q->table[q->len / DK_KV_BLOCK]].ref > 1)
			total++;
	}
	*need = total;
	if (total > kv->n_free + kv->n_lru)
		return false;
	for (int32_t s = 0; s < kv->n_seq; s++) {
		if (!n_new[s])
			continue;
		struct seq *q = &kv->seqs[s];
		if (q->len % DK_KV_BLOCK) {
			int32_t bi = q->len / DK_KV_BLOCK, old = q->table[bi];
			if (kv->blocks[old].ref > 1) {
				int32_t b = alloc_block(kv);
				memcpy(kv->mem + (size_t)b * kv->block_bytes,
				       kv->mem + (size_t)old * kv->block_bytes, kv->block_bytes);
				memcpy(kv->blocks[b].tokens, kv->blocks[old].tokens,
				       sizeof kv->blocks[b].tokens);
				release_block(kv, old);
				q->table[bi] = b;
			}
		}
		int32_t want = (q->len + n_new[s] + DK_KV_BLOCK - 1) / DK_KV_BLOCK;
		while (q->nb < want)
			q->table[q->nb++] = alloc_block(kv);
		q->reserved = q->nb * DK_KV_BLOCK;
	}
	return true;
}

void dk_kv_set_token(struct dk_kv *kv, int32_t seq, int32_t pos, dk_token t)
{
	int32_t b = kv->seqs[seq].table[pos / DK_KV_BLOCK];
	kv->blocks[b].tokens[pos % DK_KV_BLOCK] = t;
}

void dk_kv_commit(struct dk_kv *kv, int32_t seq, int32_t new_len)
{
	struct seq *q = &kv->seqs[seq];
	int32_t first_full = q->len / DK_KV_BLOCK, end_full = new_len / DK_KV_BLOCK;
	q->len = new_len;
	if (!kv->prefix_cache)
		return;
	for (int32_t bi = first_full; bi < end_full; bi++) {
		struct block *x = &kv->blocks[q->table[bi]];
		if (x->cached)
			continue;
		/* every full block gets its chain hash, cached or not, so that a
		 * block computed twice in one step (two sequences with the same
		 * prompt) does not cut the chain for the blocks after it */
		x->parent = bi ? kv->blocks[q->table[bi - 1]].hash : 0;
		x->hash = chain_hash(x->parent, x->tokens);
		if (htab_find(kv, x->hash, x->parent, x->tokens) >= 0)
			continue; /* the same prefix is cached already */
		x->cached = true;
		htab_insert(kv, q->table[bi]);
	}
}

void dk_kv_clear(struct dk_kv *kv, int32_t seq)
{
	struct seq *q = &kv->seqs[seq];
	for (int32_t i = 0; i < q->nb; i++)
		release_block(kv, q->table[i]);
	q->nb = q->len = q->reserved = 0;
}

void dk_kv_fork(struct dk_kv *kv, int32_t src, int32_t dst)
{
	if (src == dst)
		return;
	dk_kv_clear(kv, dst);
	struct seq *s = &kv->seqs[src], *d = &kv->seqs[dst];
	/* only blocks holding written positions are shared */
	int32_t nb = (s->len + DK_KV_BLOCK - 1) / DK_KV_BLOCK;
	for (int32_t i = 0; i < nb; i++) {
		d->table[i] = s->table[i];
		retain_block(kv, s->table[i]);
	}
	d->nb = nb;
	d->len = s->len;
	d->reserved = nb * DK_KV_BLOCK;
}

int32_t dk_kv_reuse_prefix(struct dk_kv *kv, int32_t seq, const dk_token *toks, int32_t n,
			   int32_t keep)
{
	struct seq *q = &kv->seqs[seq];
	if (q->len || q->nb)
		return 0;
	int32_t k = 0;
	if (kv->prefix_cache) {
		uint64_t parent = 0;
		/* a cached position has no logits: stop before the first one wanted */
		while (k + DK_KV_BLOCK <= keep && q->nb < kv->max_blocks) {
			uint64_t h = chain_hash(parent, toks + k);
			int32_t b = htab_find(kv, h, parent, toks + k);
			if (b < 0)
				break;
			retain_block(kv, b);
			q->table[q->nb++] = b;
			parent = h;
			k += DK_KV_BLOCK;
		}
		q->len = k;
		q->reserved = q->nb * DK_KV_BLOCK;
	}
	kv->hits += (uint64_t)k;
	kv->misses += (uint64_t)(n - k);
	return k;
}

void dk_kv_counters(const struct dk_kv *kv, struct dk_kv_counters *out)
{
	out->hit_tokens = kv->hits;
	out->miss_tokens = kv->misses;
	out->evictions = kv->evictions;
	out->blocks_total = kv->n_blocks;
	out->blocks_used = kv->n_blocks - kv->n_free - kv->n_lru;
}

int32_t dk_kv_seq_full_blocks(const struct dk_kv *kv, int32_t seq)
{
	return kv->seqs[seq].len / DK_KV_BLOCK;
}

const dk_token *dk_kv_seq_block_tokens(const struct dk_kv *kv, int32_t seq, int32_t bi)
{
	return kv->blocks[kv->seqs[seq].table[bi]].tokens;
}

bool dk_kv_import_block(struct dk_kv *kv, uint64_t *chain, const dk_token *toks, const void *data)
{
	uint64_t parent = *chain, h = chain_hash(parent, toks);
	*chain = h;
	if (!kv->prefix_cache)
		return false;
	if (htab_find(kv, h, parent, toks) >= 0)
		return true;
	int32_t b = alloc_block(kv);
	if (b < 0)
		return false;
	struct block *x = &kv->blocks[b];
	memcpy(x->tokens, toks, sizeof x->tokens);
	memcpy(kv->mem + (size_t)b * kv->block_bytes, data, kv->block_bytes);
	x->parent = parent;
	x->hash = h;
	x->cached = true;
	htab_insert(kv, b);
	release_block(kv, b); /* unreferenced: reusable, evictable */
	return true;
}
