#include "runner/prefixes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/err.h"
#include "util/sha256.h"

/* what this run did with one head: a head is looked for once and written
 * once, whatever the number of jobs that start with it */
struct head {
	char name[48]; /* file name: <model>-<kv>-<tokens>.dkkv */
	bool tried, loaded, saved;
};

struct dk_prefixes {
	char *dir;
	char model[17];
	const char *kv;
	struct head *heads;
	size_t n_heads, cap;
	struct dk_prefixes_stats st;
	char err[512];
};

enum dk_status dk_prefixes_new(struct dk_prefixes **out, const char *dir, const char *model_sha256,
			       bool kv_f16, char *err, size_t n)
{
	*out = NULL;
	struct stat sb;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return dk_err(err, n, DK_SKIP, "cannot create prefix directory '%s': %s", dir,
			      strerror(errno));
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return dk_err(err, n, DK_SKIP, "prefix directory '%s' is not a directory", dir);
	struct dk_prefixes *p = calloc(1, sizeof *p);
	if (!p || !(p->dir = strdup(dir))) {
		free(p);
		return dk_err(err, n, DK_FATAL, "out of memory");
	}
	snprintf(p->model, sizeof p->model, "%.16s", model_sha256);
	p->kv = kv_f16 ? "f16" : "f32";
	*out = p;
	return DK_OK;
}

void dk_prefixes_free(struct dk_prefixes *p)
{
	if (!p)
		return;
	free(p->heads);
	free(p->dir);
	free(p);
}

const char *dk_prefixes_error(const struct dk_prefixes *p) { return p->err; }

void dk_prefixes_stats(const struct dk_prefixes *p, struct dk_prefixes_stats *st) { *st = p->st; }

/* The record of head toks[0..n) (n whole blocks); NULL when out of memory. */
static struct head *head_of(struct dk_prefixes *p, const dk_token *toks, int32_t n)
{
	uint8_t d[32];
	char hex[65], name[sizeof ((struct head *)0)->name];
	dk_sha256(toks, (size_t)n * sizeof *toks, d);
	dk_sha256_hex(d, hex);
	snprintf(name, sizeof name, "%s-%s-%.16s.dkkv", p->model, p->kv, hex);
	for (size_t i = 0; i < p->n_heads; i++)
		if (!strcmp(p->heads[i].name, name))
			return &p->heads[i];
	if (p->n_heads == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 8;
		struct head *h = realloc(p->heads, cap * sizeof *h);
		if (!h)
			return NULL;
		p->heads = h;
		p->cap = cap;
	}
	struct head *h = &p->heads[p->n_heads++];
	memset(h, 0, sizeof *h);
	memcpy(h->name, name, sizeof name);
	return h;
}

static void path_of(const struct dk_prefixes *p, const struct head *h, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", p->dir, h->name);
}

enum dk_status dk_prefixes_load(struct dk_prefixes *p, struct dk_ctx *c, const dk_token *toks,
				int32_t n)
{
	n -= n % DK_KV_BLOCK_TOKENS;
	if (n <= 0)
		return DK_OK;
	struct head *h = head_of(p, toks, n);
	if (!h || h->tried)
		return DK_OK;
	h->tried = true;
	char path[4096];
	path_of(p, h, path, sizeof path);
	struct stat sb;
	if (stat(path, &sb) != 0 && errno == ENOENT)
		return DK_OK;
	int32_t got = 0;
	enum dk_status st = dk_kv_prefix_load(c, path, &got);
	if (st != DK_OK)
		return dk_err(p->err, sizeof p->err, st, "%s", dk_ctx_error(c));
	/* a file holds exactly the head its name is the hash of; anything
	 * else was put there by hand, and only its matching blocks attach */
	h->loaded = got == n;
	p->st.loaded++;
	p->st.loaded_tokens += got;
	return DK_OK;
}

enum dk_status dk_prefixes_save(struct dk_prefixes *p, struct dk_ctx *c, int32_t seq,
				const dk_token *toks, int32_t n)
{
	n -= n % DK_KV_BLOCK_TOKENS;
	if (n <= 0)
		return DK_OK;
	struct head *h = head_of(p, toks, n);
	if (!h || h->loaded || h->saved)
		return DK_OK;
	h->saved = true; /* once, even when it fails: one warning per head */
	char path[4096];
	path_of(p, h, path, sizeof path);
	int32_t put = 0;
	enum dk_status st = dk_kv_prefix_save(c, seq, n, path, &put);
	if (st != DK_OK)
		return dk_err(p->err, sizeof p->err, st, "%s", dk_ctx_error(c));
	if (put) {
		p->st.saved++;
		p->st.saved_tokens += put;
	}
	return DK_OK;
}
