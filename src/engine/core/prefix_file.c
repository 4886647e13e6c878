/*
 * The prefix-file format: a sequence's KV blocks saved to disk and loaded
 * back into a context, keyed by the model's sha256, the cache layout and
 * the numerics that computed them, so a loaded prefix gives the same bits
 * as recomputing it.
 */
#include "docket/model.h"


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/err.h"
#include "engine/core/model_impl.h"

_Static_assert(DK_KV_BLOCK == DK_KV_BLOCK_TOKENS, "the public block size is the cache's");

/* version 2: keys stored transposed (kv_k); version 3: the kernel level
 * that computed the blocks; version 4: the numerics (dk_ctx_numerics)
 * instead, so a file loads under any kernel level that gives the same
 * bits.  Files of other versions are refused with a message that says
 * why. */
#define PREFIX_MAGIC "DKKVPFX4"

/* numerics: dk_ctx_numerics() of the context that computed the blocks,
 * NUL-padded.  Blocks computed with other numerics round differently, and
 * a sequence's logits would then depend on whether its prefix came from a
 * file. */
struct prefix_header {
	char magic[8];
	char model_sha256[64];
	uint32_t n_layer, kv_dim, esize, block, n_blocks;
	char numerics[32];
};
_Static_assert(sizeof(struct prefix_header) == 124, "prefix file header");

enum dk_status dk_kv_prefix_save(struct dk_ctx *c, int32_t seq, int32_t n_max, const char *path,
				 int32_t *n_tokens)
{
	*n_tokens = 0;
	if (seq < 0 || seq >= c->p.n_seq_max)
		return dk_err(c->err, sizeof c->err, DK_SKIP, "save prefix: sequence %d out of range", seq);
	int32_t nb = dk_kv_seq_full_blocks(c->kv, seq);
	if (n_max >= 0 && nb > n_max / DK_KV_BLOCK)
		nb = n_max / DK_KV_BLOCK;
	if (nb == 0)
		return DK_OK;
	const char *sha = dk_model_sha256(c->m);
	if (!sha)
		return dk_err(c->err, sizeof c->err, DK_FATAL, "cannot hash '%s': %s", c->m->path,
			      strerror(errno));
	struct prefix_header h = {.n_layer = (uint32_t)c->m->info.n_layer,
				  .kv_dim = (uint32_t)c->kv_dim, .esize = (uint32_t)c->kv_esize,
				  .block = DK_KV_BLOCK, .n_blocks = (uint32_t)nb};
	strncpy(h.numerics, c->numerics, sizeof h.numerics);
	memcpy(h.magic, PREFIX_MAGIC, 8);
	memcpy(h.model_sha256, sha, 64);
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return dk_err(c->err, sizeof c->err, DK_FATAL, "cannot write '%s': %s", tmp,
			      strerror(errno));
	bool ok = fwrite(&h, sizeof h, 1, f) == 1;
	for (int32_t b = 0; ok && b < nb; b++)
		ok = fwrite(dk_kv_seq_block_tokens(c->kv, seq, b), sizeof(dk_token), DK_KV_BLOCK, f) ==
		     DK_KV_BLOCK;
	for (int32_t b = 0; ok && b < nb; b++)
		ok = fwrite(dk_kv_seq_block(c->kv, seq, b), dk_kv_block_bytes(c->kv), 1, f) == 1;
	ok = fflush(f) == 0 && ok;
	ok = fsync(fileno(f)) == 0 && ok;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return dk_err(c->err, sizeof c->err, DK_FATAL, "cannot write '%s': %s", path,
			      strerror(e));
	}
	*n_tokens = nb * DK_KV_BLOCK;
	return DK_OK;
}

enum dk_status dk_kv_prefix_load(struct dk_ctx *c, const char *path, int32_t *n_tokens)
{
	*n_tokens = 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return dk_err(c->err, sizeof c->err, DK_FATAL, "cannot open '%s': %s", path,
			      strerror(errno));
	struct prefix_header h;
	enum dk_status st = DK_OK;
	const char *sha = dk_model_sha256(c->m);
	dk_token *toks = NULL;
	void *data = NULL;
	const bool got = fread(&h, sizeof h, 1, f) == 1;
	if (got && !memcmp(h.magic, PREFIX_MAGIC, 7) && memcmp(h.magic, PREFIX_MAGIC, 8)) {
		st = dk_err(c->err, sizeof c->err, DK_SKIP,
			    "'%s' is a prefix file of another docket version (format %c, this one "
			    "reads %c); recompute it",
			    path, h.magic[7], PREFIX_MAGIC[7]);
		goto out;
	}
	if (!got || memcmp(h.magic, PREFIX_MAGIC, 8)) {
		st = dk_err(c->err, sizeof c->err, DK_SKIP, "'%s' is not a docket prefix file", path);
		goto out;
	}
	if (!sha || memcmp(h.model_sha256, sha, 64)) {
		st = dk_err(c->err, sizeof c->err, DK_SKIP,
			    "'%s' was saved for another model (sha256 %.12s...)", path, h.model_sha256);
		goto out;
	}
	if (h.n_layer != (uint32_t)c->m->info.n_layer || h.kv_dim != (uint32_t)c->kv_dim ||
	    h.esize != c->kv_esize || h.block != DK_KV_BLOCK) {
		st = dk_err(c->err, sizeof c->err, DK_SKIP,
			    "'%s' has another cache layout (kv %s, block %u)", path,
			    h.esize == 2 ? "f16" : "f32", h.block);
		goto out;
	}
	if (memchr(h.numerics, 0, sizeof h.numerics) == NULL ||
	    strcmp(h.numerics, c->numerics)) {
		st = dk_err(c->err, sizeof c->err, DK_SKIP,
			    "'%s' was computed with numerics '%.31s', this context's are '%s'; recompute it",
			    path, h.numerics, c->numerics);
		goto out;
	}
	if (h.n_blocks == 0 || h.n_blocks > (uint32_t)c->p.kv_blocks ||
	    h.n_blocks * DK_KV_BLOCK > (uint32_t)c->p.n_ctx) {
		st = dk_err(c->err, sizeof c->err, DK_SKIP, "'%s': %u blocks do not fit this context",
			    path, h.n_blocks);
		goto out;
	}
	toks = malloc((size_t)h.n_blocks * DK_KV_BLOCK * sizeof *toks);
	data = malloc(dk_kv_block_bytes(c->kv));
	if (!toks || !data) {
		st = dk_err(c->err, sizeof c->err, DK_FATAL, "out of memory loading '%s'", path);
		goto out;
	}
	if (fread(toks, sizeof *toks, (size_t)h.n_blocks * DK_KV_BLOCK, f) !=
	    (size_t)h.n_blocks * DK_KV_BLOCK) {
		st = dk_err(c->err, sizeof c->err, DK_SKIP, "'%s' is truncated", path);
		goto out;
	}
	for (size_t i = 0; i < (size_t)h.n_blocks * DK_KV_BLOCK; i++)
		if (toks[i] < 0 || toks[i] >= c->m->info.n_vocab) {
			st = dk_err(c->err, sizeof c->err, DK_SKIP, "'%s' holds a token outside the vocabulary", path);
			goto out;
		}
	uint64_t chain = 0;
	for (uint32_t b = 0; b < h.n_blocks; b++) {
		if (fread(data, dk_kv_block_bytes(c->kv), 1, f) != 1) {
			st = dk_err(c->err, sizeof c->err, DK_SKIP, "'%s' is truncated", path);
			goto out;
		}
		if (!dk_kv_import_block(c->kv, &chain, toks + (size_t)b * DK_KV_BLOCK, data)) {
			st = dk_err(c->err, sizeof c->err, DK_SKIP,
				    "'%s': no room in the kv cache (or the prefix cache is off)", path);
			goto out;
		}
		*n_tokens += DK_KV_BLOCK;
	}
out:
	free(toks);
	free(data);
	fclose(f);
	return st;
}

