/*
 * The recognizer: a pushdown automaton run on bytes, with every state
 * (a set of stacks) interned so that it works as a lazily built DFA.
 *
 * A stack is a linked list of nodes (top first).  The top node points at the
 * character element to match next (with the UTF-8 prefix matched so far in
 * `partial`); lower nodes point at the element to resume after the rule
 * they called returns.  Nodes are hash-consed, so equal stacks are the same
 * pointer and a set of stacks is a sorted array of pointers; the NULL
 * "stack" means the whole input is a complete sentence.  Sets are interned
 * and numbered, and the transition (set, byte) → set is memoised.  Masking
 * walks the vocabulary's byte trie from the current set through these
 * transitions, so inside a JSON string (where the set after each character
 * is the set before it) almost every trie edge is a table lookup, and the
 * finished mask of a set is cached too.  Tables are rebuilt from the current
 * set alone when they grow too large.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/grammar.h"
#include "docket/sampler.h"
#include "engine/decode/grammar_impl.h"
#include "util/buf.h"
#include "util/err.h"

#define MAX_SET_NODES (1 << 14)  /* stacks live in one set */
#define MAX_WORK (1 << 18)       /* expansion steps for one byte */
#define MAX_DEPTH 20000          /* nested expansions for one byte */
#define RESET_NODES (1 << 20)
#define RESET_SETS (1 << 16)
#define MASK_CACHE_BYTES (8u << 20)

/* ---- vocabulary ---- */

struct dk_grammar_vocab {
	int32_t n;
	char *bytes;
	size_t *off;      /* [n+1] */
	uint8_t *is_eog;  /* [n] */
	dk_token *eog;
	int32_t n_eog;
	/* trie, node 0 is the root; children of a node are contiguous */
	int32_t nnodes;
	int32_t *child0, *nchild, *tok0, *ntok;
	int32_t *tok_end; /* a node's subtree holds the tokens toks[tok0 .. tok_end) */
	uint64_t (*sub)[4]; /* bytes that occur below the node */
	uint8_t *byte;
	dk_token *toks;   /* tokens in piece order; a node's own tokens at tok0 */
	size_t max_len;   /* longest piece in the trie: the depth of a mask walk */
};

static int cmp_piece(const void *a, const void *b, void *ctx)
{
	const struct dk_grammar_vocab *v = ctx;
	dk_token x = *(const dk_token *)a, y = *(const dk_token *)b;
	size_t lx = v->off[x + 1] - v->off[x], ly = v->off[y + 1] - v->off[y];
	int c = memcmp(v->bytes + v->off[x], v->bytes + v->off[y], lx < ly ? lx : ly);
	if (c)
		return c;
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return x < y ? -1 : x > y;
}

static size_t plen(const struct dk_grammar_vocab *v, dk_token t)
{
	return v->off[t + 1] - v->off[t];
}

static uint8_t byte_at(const struct dk_grammar_vocab *v, int32_t i, size_t depth)
{
	return (uint8_t)v->bytes[v->off[v->toks[i]] + depth];
}

/* Builds the trie over toks[0..nt) breadth first, with node numbers as the
 * work queue: a piece of any length costs heap, never stack.  A node's
 * toks[tok0 .. tok_end) share depth[node] leading bytes. */
static int build_trie(struct dk_grammar_vocab *v, int32_t nt, size_t nn)
{
	size_t *depth = malloc(nn * sizeof *depth);
	if (!depth)
		return -1;
	v->nnodes = 1;
	v->tok0[0] = 0;
	v->tok_end[0] = nt;
	depth[0] = 0;
	for (int32_t node = 0; node < v->nnodes; node++) {
		int32_t lo = v->tok0[node], hi = v->tok_end[node], i = lo;
		size_t d = depth[node];
		while (i < hi && plen(v, v->toks[i]) == d)
			i++;
		v->ntok[node] = i - lo;
		v->child0[node] = v->nnodes;
		int32_t nc = 0;
		for (int32_t j = i; j < hi; nc++) {
			int32_t c = v->nnodes++, s = j;
			uint8_t b = byte_at(v, j, d);
			while (j < hi && byte_at(v, j, d) == b)
				j++;
			v->byte[c] = b;
			v->tok0[c] = s;
			v->tok_end[c] = j;
			depth[c] = d + 1;
		}
		v->nchild[node] = nc;
	}
	free(depth);
	/* children are numbered after their parent: fold the byte sets upwards */
	for (int32_t node = v->nnodes - 1; node >= 0; node--) {
		memset(v->sub[node], 0, sizeof v->sub[node]);
		for (int32_t c = v->child0[node]; c < v->child0[node] + v->nchild[node]; c++) {
			v->sub[node][v->byte[c] >> 6] |= 1ull << (v->byte[c] & 63);
			for (int k = 0; k < 4; k++)
				v->sub[node][k] |= v->sub[c][k];
		}
	}
	return 0;
}

struct dk_grammar_vocab *dk_grammar_vocab_new(const char *const *pieces, const size_t *lens,
					      int32_t n_vocab, const dk_token *eog, int32_t n_eog)
{
	if (n_vocab < 0 || n_eog < 0)
		return NULL;
	struct dk_grammar_vocab *v = calloc(1, sizeof *v);
	if (!v)
		return NULL;
	v->n = n_vocab;
	size_t total = 0;
	for (int32_t i = 0; i < n_vocab; i++)
		total += lens[i];
	if (total >= INT32_MAX) { /* trie nodes are numbered with int32_t */
		free(v);
		return NULL;
	}
	v->bytes = malloc(total + 1);
	v->off = malloc(((size_t)n_vocab + 1) * sizeof *v->off);
	v->is_eog = calloc((size_t)n_vocab + 1, 1);
	v->eog = malloc(((size_t)n_eog + 1) * sizeof *v->eog);
	v->toks = malloc(((size_t)n_vocab + 1) * sizeof *v->toks);
	size_t nn = total + 1;
	v->child0 = malloc(nn * sizeof *v->child0);
	v->nchild = malloc(nn * sizeof *v->nchild);
	v->tok0 = malloc(nn * sizeof *v->tok0);
	v->ntok = malloc(nn * sizeof *v->ntok);
	v->tok_end = malloc(nn * sizeof *v->tok_end);
	v->sub = malloc(nn * sizeof *v->sub);
	v->byte = calloc(nn, 1);
	if (!v->bytes || !v->off || !v->is_eog || !v->eog || !v->toks || !v->child0 || !v->nchild ||
	    !v->tok0 || !v->ntok || !v->tok_end || !v->sub || !v->byte) {
		dk_grammar_vocab_free(v);
		return NULL;
	}
	size_t o = 0;
	for (int32_t i = 0; i < n_vocab; i++) {
		v->off[i] = o;
		if (lens[i])
			memcpy(v->bytes + o, pieces[i], lens[i]);
		o += lens[i];
	}
	v->off[n_vocab] = o;
	for (int32_t i = 0; i < n_eog; i++) {
		if (eog[i] >= 0 && eog[i] < n_vocab && !v->is_eog[eog[i]]) {
			v->is_eog[eog[i]] = 1;
			v->eog[v->n_eog++] = eog[i];
		}
	}
	int32_t nt = 0;
	for (int32_t i = 0; i < n_vocab; i++)
		if (!v->is_eog[i] && plen(v, i) > 0)
			v->toks[nt++] = i;
	qsort_r(v->toks, (size_t)nt, sizeof *v->toks, cmp_piece, v);
	for (int32_t i = 0; i < nt; i++)
		if (plen(v, v->toks[i]) > v->max_len)
			v->max_len = plen(v, v->toks[i]);
	if (build_trie(v, nt, nn)) {
		dk_grammar_vocab_free(v);
		return NULL;
	}
	return v;
}

struct dk_grammar_vocab *dk_grammar_vocab_from_tokenizer(const struct dk_tokenizer *t)
{
	int32_t n = dk_tokenizer_n_vocab(t);
	if (n <= 0)
		return NULL;
	char **pieces = calloc((size_t)n, sizeof *pieces);
	size_t *lens = calloc((size_t)n, sizeof *lens);
	dk_token *eog = malloc((size_t)n * sizeof *eog);
	int32_t n_eog = 0;
	struct dk_grammar_vocab *v = NULL;
	if (!pieces || !lens || !eog)
		goto out;
	for (int32_t i = 0; i < n; i++) {
		char buf[256];
		int k = dk_token_to_piece(t, i, buf, sizeof buf, false);
		if (k < 0) {
			pieces[i] = malloc((size_t)-k);
			if (!pieces[i])
				goto out;
			k = dk_token_to_piece(t, i, pieces[i], -k, false);
			if (k < 0)
				k = 0;
		} else {
			pieces[i] = malloc((size_t)k + 1);
			if (!pieces[i])
				goto out;
			memcpy(pieces[i], buf, (size_t)k);
		}
		lens[i] = (size_t)k;
		if (dk_token_is_eog(t, i))
			eog[n_eog++] = i;
	}
	v = dk_grammar_vocab_new((const char *const *)pieces, lens, n, eog, n_eog);
out:
	if (pieces)
		for (int32_t i = 0; i < n; i++)
			free(pieces[i]);
	free(pieces);
	free(lens);
	free(eog);
	return v;
}

void dk_grammar_vocab_free(struct dk_grammar_vocab *v)
{
	if (!v)
		return;
	free(v->bytes);
	free(v->off);
	free(v->is_eog);
	free(v->eog);
	free(v->toks);
	free(v->child0);
	free(v->nchild);
	free(v->tok0);
	free(v->ntok);
	free(v->tok_end);
	free(v->sub);
	free(v->byte);
	free(v);
}

int32_t dk_grammar_vocab_size(const struct dk_grammar_vocab *v) { return v->n; }

const char *dk_grammar_vocab_piece(const struct dk_grammar_vocab *v, dk_token id, size_t *len)
{
	if (id < 0 || id >= v->n)
		return NULL;
	*len = plen(v, id);
	return v->bytes + v->off[id];
}

bool dk_grammar_vocab_is_eog(const struct dk_grammar_vocab *v, dk_token id)
{
	return id >= 0 && id < v->n && v->is_eog[id];
}

void dk_grammar_vocab_prefixes(const struct dk_grammar_vocab *v, const char *p, size_t n,
			       void (*fn)(void *ud, dk_token t), void *ud)
{
	int32_t node = 0;
	for (size_t i = 0; i < n; i++) {
		/* children are in byte order: a binary search */
		int32_t lo = v->child0[node], end = lo + v->nchild[node], hi = end;
		uint8_t b = (uint8_t)p[i];
		while (lo < hi) {
			int32_t mid = lo + (hi - lo) / 2;
			if (v->byte[mid] < b)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == end || v->byte[lo] != b)
			return;
		node = lo;
		for (int32_t k = v->tok0[node]; k < v->tok0[node] + v->ntok[node]; k++)
			fn(ud, v->toks[k]);
	}
}

/* ---- state ---- */

struct gnode {
	int32_t pos;
	uint32_t partial; /* 0, or value | remaining << 24 | length << 28 */
	int32_t close;    /* fewest bytes to finish from this stack */
	uint32_t hash;
	const struct gnode *parent;
};

struct ablock {
	struct ablock *next;
	size_t used;
	struct gnode n[1024];
};

struct gset {
	int32_t off, n;
	int32_t close;
	uint32_t hash;
	int32_t mask;     /* cache slot or -1 */
	int32_t maxclose; /* largest close after an allowed token (valid with mask) */
	bool loop_done;
	uint64_t first[4];
	uint64_t loop[4]; /* bytes that lead back to this very set (once loop_done) */
};

struct wframe {
	int32_t tn, sid, next; /* trie node, its set, next child to try */
};

struct dk_grammar_state {
	const struct dk_grammar *g;
	const struct dk_grammar_vocab *v;
	char err[DK_ERRMSG_MAX];
	struct ablock *blocks;
	size_t nnodes;
	const struct gnode **ntab;
	size_t ntab_cap;
	struct gset *sets;
	int32_t nsets, sets_cap;
	const struct gnode **items;
	size_t nitems, items_cap;
	int32_t *stab;
	size_t stab_cap;
	uint64_t *tkey;
	int32_t *tval;
	size_t ttab_cap, ntrans;
	uint64_t *masks;
	int32_t *mask_owner;
	int32_t mask_words, mask_slots, mask_next;
	uint64_t *bmask; /* budget walk result */
	float *saved;    /* dk_grammar_sample's copy of the logits */
	struct wframe *wstack; /* walk's stack: v->max_len + 1 frames */
	int32_t cur;
	int32_t init; /* the start set, or -1 after the tables were rebuilt */
	bool finished;
	bool failed;
	const struct gnode **tmp;
	size_t ntmp, tmp_cap;
	long work;
};

static uint32_t mix32(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x7feb352dU;
	h ^= h >> 15;
	h *= 0x846ca68bU;
	h ^= h >> 16;
	return h;
}

static int32_t sat(int64_t x) { return x >= DK_G_BIG ? DK_G_BIG : (int32_t)x; }

static int fail(struct dk_grammar_state *s, const char *msg)
{
	if (!s->failed)
		dk_err(s->err, sizeof s->err, DK_FATAL, "grammar: %s", msg);
	s->failed = true;
	return -1;
}

static const struct gnode *intern_node(struct dk_grammar_state *s, int32_t pos, uint32_t partial,
				       const struct gnode *parent)
{
	uint32_t ph = parent ? parent->hash : 0x2545F491u;
	uint32_t h = mix32((uint32_t)pos * 0x9E3779B1u ^ mix32(partial + 0x1234567u) ^ ph * 0x85EBCA77u);
	if ((s->nnodes + 1) * 2 > s->ntab_cap) {
		size_t nc = s->ntab_cap ? s->ntab_cap * 2 : 4096;
		const struct gnode **nt = calloc(nc, sizeof *nt);
		if (!nt)
			return NULL;
		for (size_t i = 0; i < s->ntab_cap; i++) {
			const struct gnode *x = s->ntab[i];
			if (!x)
				continue;
			size_t j = x->hash & (nc - 1);
			while (nt[j])
				j = (j + 1) & (nc - 1);
			nt[j] = x;
		}
		free(s->ntab);
		s->ntab = nt;
		s->ntab_cap = nc;
	}
	size_t j = h & (s->ntab_cap - 1);
	for (const struct gnode *x; (x = s->ntab[j]); j = (j + 1) & (s->ntab_cap - 1))
		if (x->hash == h && x->pos == pos && x->partial == partial && x->parent == parent)
			return x;
	if (!s->blocks || s->blocks->used == sizeof s->blocks->n / sizeof s->blocks->n[0]) {
		struct ablock *b = malloc(sizeof *b);
		if (!b)
			return NULL;
		b->next = s->blocks;
		b->used = 0;
		s->blocks = b;
	}
	struct gnode *n = &s->blocks->n[s->blocks->used++];
	const struct dk_grammar *g = s->g;
	int32_t pc = parent ? parent->close : 0;
	n->pos = pos;
	n->partial = partial;
	n->parent = parent;
	n->hash = h;
	if (partial)
		n->close = sat((int64_t)((partial >> 24) & 3) + g->minrest[pos + 1] + pc);
	else
		n->close = sat((int64_t)g->minrest[pos] + pc);
	s->ntab[j] = n;
	s->nnodes++;
	return n;
}

static int tmp_add(struct dk_grammar_state *s, const struct gnode *n)
{
	if (s->ntmp == s->tmp_cap) {
		if (s->tmp_cap >= MAX_SET_NODES * 4)
			return fail(s, "grammar too ambiguous (too many parse stacks)");
		size_t nc = s->tmp_cap ? s->tmp_cap * 2 : 64;
		const struct gnode **t = realloc(s->tmp, nc * sizeof *t);
		if (!t)
			return fail(s, "out of memory");
		s->tmp = t;
		s->tmp_cap = nc;
	}
	s->tmp[s->ntmp++] = n;
	return 0;
}

static int expand_pos(struct dk_grammar_state *s, int32_t pos, const struct gnode *parent, int depth);

/* A return point: match from its element on. */
static int expand_cont(struct dk_grammar_state *s, const struct gnode *n, int depth)
{
	if (!n)
		return tmp_add(s, NULL);
	if (s->g->el[n->pos].type == DK_EL_CHAR && !n->partial)
		return tmp_add(s, n);
	return expand_pos(s, n->pos, n->parent, depth + 1);
}

static int expand_pos(struct dk_grammar_state *s, int32_t pos, const struct gnode *parent, int depth)
{
	const struct dk_grammar *g = s->g;
	if (++s->work > MAX_WORK || depth > MAX_DEPTH)
		return fail(s, "grammar too ambiguous (expansion limit)");
	struct dk_gelem e = g->el[pos];
	if (e.type == DK_EL_CHAR) {
		const struct gnode *n = intern_node(s, pos, 0, parent);
		return n ? tmp_add(s, n) : fail(s, "out of memory");
	}
	if (e.type == DK_EL_END)
		return expand_cont(s, parent, depth);
	const struct gnode *cont = parent;
	if (g->el[pos + 1].type != DK_EL_END) {
		cont = intern_node(s, pos + 1, 0, parent);
		if (!cont)
			return fail(s, "out of memory");
	}
	for (int32_t a = 0; a < g->rule_nalts[e.val]; a++)
		if (expand_pos(s, g->alt_start[g->rule_alt0[e.val] + a], cont, depth + 1))
			return -1;
	return 0;
}

static bool ranges_hit(const uint32_t *r, int32_t nr, uint32_t lo, uint32_t hi)
{
	for (int32_t i = 0; i < nr; i++) {
		if (r[2 * i] > hi)
			return false;
		if (r[2 * i + 1] >= lo)
			return true;
	}
	return false;
}

/* 0: rejected; 1: mid-character (*np = new partial); 2: character done. */
static int cs_step(const struct dk_grammar *g, const struct dk_gcharset *c, uint32_t partial,
		   uint8_t b, uint32_t *np)
{
	uint32_t v;
	int len, rem;
	if (!partial) {
		if (b < 0x80)
			return (c->ascii[b >> 6] >> (b & 63)) & 1 ? 2 : 0;
		if (!((c->first[b >> 6] >> (b & 63)) & 1))
			return 0;
		len = b <= 0xDF ? 2 : b <= 0xEF ? 3 : 4;
		v = b & (len == 2 ? 0x1Fu : len == 3 ? 0x0Fu : 0x07u);
		rem = len - 1;
	} else {
		if ((b & 0xC0) != 0x80)
			return 0;
		len = (int)((partial >> 28) & 7);
		rem = (int)((partial >> 24) & 3) - 1;
		v = (partial & 0x1FFFFF) << 6 | (b & 0x3Fu);
	}
	uint32_t lo = v << (6 * rem), hi = lo | ((1u << (6 * rem)) - 1);
	uint32_t mn = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
	if (lo < mn)
		lo = mn;
	if (hi > 0x10FFFF)
		hi = 0x10FFFF;
	if (lo > hi || !ranges_hit(g->ranges + c->roff, c->nr, lo, hi))
		return 0;
	if (rem == 0)
		return 2;
	*np = v | (uint32_t)rem << 24 | (uint32_t)len << 28;
	return 1;
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (const struct gnode *const *)a;
	uintptr_t y = (uintptr_t) * (const struct gnode *const *)b;
	return x < y ? -1 : x > y;
}

/* Interns s->tmp[0..ntmp) as a set; returns its id or -1. */
static int32_t intern_set(struct dk_grammar_state *s)
{
	if (s->ntmp > 1)
		qsort(s->tmp, s->ntmp, sizeof *s->tmp, cmp_ptr);
	size_t n = 0;
	for (size_t i = 0; i < s->ntmp; i++)
		if (!n || s->tmp[i] != s->tmp[n - 1])
			s->tmp[n++] = s->tmp[i];
	s->ntmp = n;
	if (n > MAX_SET_NODES)
		return fail(s, "grammar too ambiguous (too many parse stacks)");
	uint32_t h = 0x811C9DC5u ^ (uint32_t)n;
	for (size_t i = 0; i < n; i++)
		h = mix32(h ^ (s->tmp[i] ? s->tmp[i]->hash : 0x5bd1e995u)) + (uint32_t)i;
	if (((size_t)s->nsets + 1) * 2 > s->stab_cap) {
		size_t nc = s->stab_cap ? s->stab_cap * 2 : 1024;
		int32_t *nt = malloc(nc * sizeof *nt);
		if (!nt)
			return fail(s, "out of memory");
		memset(nt, 0xff, nc * sizeof *nt);
		for (int32_t i = 0; i < s->nsets; i++) {
			size_t j = s->sets[i].hash & (nc - 1);
			while (nt[j] >= 0)
				j = (j + 1) & (nc - 1);
			nt[j] = i;
		}
		free(s->stab);
		s->stab = nt;
		s->stab_cap = nc;
	}
	size_t j = h & (s->stab_cap - 1);
	for (int32_t id; (id = s->stab[j]) >= 0; j = (j + 1) & (s->stab_cap - 1)) {
		const struct gset *q = &s->sets[id];
		if (q->hash == h && (size_t)q->n == n &&
		    (n == 0 || memcmp(s->items + q->off, s->tmp, n * sizeof *s->tmp) == 0))
			return id;
	}
	if (s->nsets == s->sets_cap) {
		int32_t nc = s->sets_cap ? s->sets_cap * 2 : 256;
		struct gset *ns = realloc(s->sets, (size_t)nc * sizeof *ns);
		if (!ns)
			return fail(s, "out of memory");
		s->sets = ns;
		s->sets_cap = nc;
	}
	if (s->nitems + n > s->items_cap) {
		size_t nc = s->items_cap ? s->items_cap : 1024;
		while (nc < s->nitems + n)
			nc *= 2;
		const struct gnode **ni = realloc(s->items, nc * sizeof *ni);
		if (!ni)
			return fail(s, "out of memory");
		s->items = ni;
		s->items_cap = nc;
	}
	struct gset *q = &s->sets[s->nsets];
	memset(q, 0, sizeof *q);
	q->off = (int32_t)s->nitems;
	q->n = (int32_t)n;
	q->hash = h;
	q->mask = -1;
	q->close = DK_G_BIG;
	if (n)
		memcpy(s->items + s->nitems, s->tmp, n * sizeof *s->tmp);
	s->nitems += n;
	for (size_t i = 0; i < n; i++) {
		const struct gnode *x = s->tmp[i];
		if (!x) {
			q->close = 0;
			continue;
		}
		if (x->close < q->close)
			q->close = x->close;
		if (x->partial) {
			q->first[2] = ~0ull; /* continuation bytes 0x80-0xBF */
		} else {
			const struct dk_gcharset *c = &s->g->cs[s->g->el[x->pos].val];
			for (int k = 0; k < 4; k++)
				q->first[k] |= c->first[k];
		}
	}
	s->stab[j] = s->nsets;
	return s->nsets++;
}

static int32_t compute_step(struct dk_grammar_state *s, int32_t sid, uint8_t b)
{
	const struct dk_grammar *g = s->g;
	s->ntmp = 0;
	s->work = 0;
	int32_t off = s->sets[sid].off, n = s->sets[sid].n;
	for (int32_t i = 0; i < n; i++) {
		const struct gnode *x = s->items[off + i];
		if (!x)
			continue;
		uint32_t np = 0;
		int r = cs_step(g, &g->cs[g->el[x->pos].val], x->partial, b, &np);
		if (r == 1) {
			const struct gnode *y = intern_node(s, x->pos, np, x->parent);
			if (!y)
				return fail(s, "out of memory");
			if (tmp_add(s, y))
				return -1;
		} else if (r == 2) {
			if (expand_pos(s, x->pos + 1, x->parent, 0))
				return -1;
		}
	}
	return intern_set(s);
}

/* The set after byte b from set sid (0: dead), or -1 on failure. */
static int32_t step(struct dk_grammar_state *s, int32_t sid, uint8_t b)
{
	if (!((s->sets[sid].first[b >> 6] >> (b & 63)) & 1))
		return 0;
	uint64_t key = (uint64_t)sid << 8 | b;
	uint32_t h = mix32((uint32_t)key ^ (uint32_t)(key >> 32) * 0x9E3779B1u);
	if ((s->ntrans + 1) * 2 > s->ttab_cap) {
		size_t nc = s->ttab_cap ? s->ttab_cap * 2 : 4096;
		uint64_t *nk = malloc(nc * sizeof *nk);
		int32_t *nv = malloc(nc * sizeof *nv);
		if (!nk || !nv) {
			free(nk);
			free(nv);
			return fail(s, "out of memory");
		}
		memset(nk, 0xff, nc * sizeof *nk);
		for (size_t i = 0; i < s->ttab_cap; i++) {
			if (s->tkey[i] == ~0ull)
				continue;
			uint64_t k = s->tkey[i];
			size_t j = mix32((uint32_t)k ^ (uint32_t)(k >> 32) * 0x9E3779B1u) & (nc - 1);
			while (nk[j] != ~0ull)
				j = (j + 1) & (nc - 1);
			nk[j] = k;
			nv[j] = s->tval[i];
		}
		free(s->tkey);
		free(s->tval);
		s->tkey = nk;
		s->tval = nv;
		s->ttab_cap = nc;
	}
	size_t j = h & (s->ttab_cap - 1);
	for (; s->tkey[j] != ~0ull; j = (j + 1) & (s->ttab_cap - 1))
		if (s->tkey[j] == key)
			return s->tval[j];
	int32_t r = compute_step(s, sid, b);
	if (r < 0)
		return -1;
	/* compute_step does not touch the transition table, so j is still free */
	s->tkey[j] = key;
	s->tval[j] = r;
	s->ntrans++;
	return r;
}

static void clear_tables(struct dk_grammar_state *s)
{
	while (s->blocks) {
		struct ablock *b = s->blocks;
		s->blocks = b->next;
		free(b);
	}
	s->nnodes = 0;
	if (s->ntab)
		memset(s->ntab, 0, s->ntab_cap * sizeof *s->ntab);
	s->nsets = 0;
	s->nitems = 0;
	if (s->stab)
		memset(s->stab, 0xff, s->stab_cap * sizeof *s->stab);
	s->ntrans = 0;
	if (s->tkey)
		memset(s->tkey, 0xff, s->ttab_cap * sizeof *s->tkey);
	for (int32_t i = 0; i < s->mask_slots; i++)
		s->mask_owner[i] = -1;
	s->mask_next = 0;
	s->init = -1;
}

/* Copies set sid of `from` (may be s itself) into s's tables as s->cur.
 * Stacks are flattened first, so from's tables may be cleared meanwhile. */
static int adopt_set(struct dk_grammar_state *s, const struct dk_grammar_state *from, int32_t sid,
		     bool clear)
{
	struct dk_buf flat = {0};
	int32_t n = from->sets[sid].n;
	const struct gnode *const *it = from->items + from->sets[sid].off;
	for (int32_t i = 0; i < n; i++) {
		int32_t depth = 0;
		for (const struct gnode *x = it[i]; x; x = x->parent)
			depth++;
		if (dk_buf_append(&flat, &depth, sizeof depth))
			goto oom;
		for (const struct gnode *x = it[i]; x; x = x->parent) {
			int32_t rec[2] = {x->pos, (int32_t)x->partial};
			if (dk_buf_append(&flat, rec, sizeof rec))
				goto oom;
		}
	}
	if (clear)
		clear_tables(s);
	s->ntmp = 0;
	if (tmp_add(s, NULL)) /* set 0 is the dead (empty) set */
		goto oom;
	s->ntmp = 0;
	if (intern_set(s) != 0)
		goto oom;
	const int32_t *p = (const int32_t *)(void *)flat.data;
	s->ntmp = 0;
	for (int32_t i = 0; i < n; i++) {
		int32_t depth = *p++;
		const struct gnode *parent = NULL;
		/* records run top → bottom; build bottom → top */
		for (int32_t k = depth - 1; k >= 0; k--) {
			parent = intern_node(s, p[2 * k], (uint32_t)p[2 * k + 1], parent);
			if (!parent)
				goto oom;
		}
		p += 2 * depth;
		if (tmp_add(s, parent))
			goto oom;
	}
	int32_t id = intern_set(s);
	dk_buf_free(&flat);
	if (id < 0)
		return -1;
	s->cur = id;
	return 0;
oom:
	dk_buf_free(&flat);
	return fail(s, "out of memory");
}

static struct dk_grammar_state *state_alloc(const struct dk_grammar *g, const struct dk_grammar_vocab *v)
{
	struct dk_grammar_state *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->g = g;
	s->v = v;
	s->init = -1;
	s->mask_words = (v->n + 63) / 64;
	size_t per = (size_t)(s->mask_words ? s->mask_words : 1) * 8;
	size_t slots = MASK_CACHE_BYTES / per;
	s->mask_slots = slots < 4 ? 4 : slots > 256 ? 256 : (int32_t)slots;
	s->masks = calloc((size_t)s->mask_slots * (size_t)s->mask_words + 1, 8);
	s->bmask = calloc((size_t)s->mask_words + 1, 8);
	s->mask_owner = malloc((size_t)s->mask_slots * sizeof *s->mask_owner);
	s->wstack = malloc((v->max_len + 1) * sizeof *s->wstack);
	if (!s->masks || !s->bmask || !s->mask_owner || !s->wstack) {
		dk_grammar_state_free(s);
		return NULL;
	}
	for (int32_t i = 0; i < s->mask_slots; i++)
		s->mask_owner[i] = -1;
	return s;
}

static void start_set(struct dk_grammar_state *s)
{
	const struct dk_grammar *g = s->g;
	s->ntmp = 0;
	s->work = 0;
	for (int32_t a = 0; a < g->rule_nalts[g->root]; a++)
		if (expand_pos(s, g->alt_start[g->rule_alt0[g->root] + a], NULL, 0))
			break;
	/* a failure here leaves the state dead with its message */
	int32_t id = s->failed ? 0 : intern_set(s);
	s->cur = id < 0 ? 0 : id;
	s->init = s->cur;
}

struct dk_grammar_state *dk_grammar_state_new(const struct dk_grammar *g,
					      const struct dk_grammar_vocab *v)
{
	struct dk_grammar_state *s = state_alloc(g, v);
	if (!s)
		return NULL;
	s->ntmp = 0;
	if (intern_set(s) != 0) { /* set 0: dead */
		dk_grammar_state_free(s);
		return NULL;
	}
	start_set(s);
	return s;
}

void dk_grammar_state_reset(struct dk_grammar_state *s)
{
	if (s->failed) {
		/* a failure may have left the tables half-updated: start clean */
		s->failed = false;
		clear_tables(s);
		s->ntmp = 0;
		if (intern_set(s) != 0) {
			fail(s, "out of memory");
			return;
		}
	}
	s->finished = false;
	s->err[0] = 0;
	if (s->init >= 0)
		s->cur = s->init;
	else
		start_set(s);
}

void dk_grammar_state_free(struct dk_grammar_state *s)
{
	if (!s)
		return;
	clear_tables(s);
	free(s->ntab);
	free(s->sets);
	free(s->items);
	free(s->stab);
	free(s->tkey);
	free(s->tval);
	free(s->masks);
	free(s->mask_owner);
	free(s->bmask);
	free(s->saved);
	free(s->wstack);
	free(s->tmp);
	free(s);
}

struct dk_grammar_state *dk_grammar_state_clone(const struct dk_grammar_state *src)
{
	struct dk_grammar_state *s = state_alloc(src->g, src->v);
	if (!s)
		return NULL;
	if (adopt_set(s, src, src->cur, false)) {
		dk_grammar_state_free(s);
		return NULL;
	}
	s->finished = src->finished;
	s->failed = src->failed;
	memcpy(s->err, src->err, sizeof s->err);
	return s;
}

const char *dk_grammar_state_error(const struct dk_grammar_state *s)
{
	return s ? s->err : "out of memory";
}

static int maybe_reset(struct dk_grammar_state *s)
{
	if (s->nnodes < RESET_NODES && s->nsets < RESET_SETS)
		return 0;
	return adopt_set(s, s, s->cur, true);
}

/* ---- masking ---- */

struct walk {
	uint64_t *mask;
	int32_t budget;   /* < 0: none */
	int32_t maxclose;
};

/* Fills sets[sid].loop: inside a JSON string most bytes lead back to the
 * same set, and a trie subtree made only of such bytes is allowed whole. */
static int compute_loop(struct dk_grammar_state *s, int32_t sid)
{
	uint64_t loop[4] = {0};
	for (int b = 0; b < 256; b++) {
		if (!((s->sets[sid].first[b >> 6] >> (b & 63)) & 1))
			continue;
		int32_t nid = step(s, sid, (uint8_t)b);
		if (nid < 0)
			return -1;
		if (nid == sid)
			loop[b >> 6] |= 1ull << (b & 63);
	}
	memcpy(s->sets[sid].loop, loop, sizeof loop);
	s->sets[sid].loop_done = true;
	return 0;
}

static void mark_range(const struct dk_grammar_vocab *v, struct walk *w, int32_t lo, int32_t hi)
{
	for (int32_t i = lo; i < hi; i++) {
		dk_token t = v->toks[i];
		w->mask[t >> 6] |= 1ull << (t & 63);
	}
}

/* Allows node tn's own tokens, reached in set sid. */
static void allow_own(struct dk_grammar_state *s, struct walk *w, int32_t tn, int32_t sid)
{
	const struct dk_grammar_vocab *v = s->v;
	int32_t c = s->sets[sid].close;
	if (w->budget < 0 || c <= w->budget - 1) {
		for (int32_t i = 0; i < v->ntok[tn]; i++) {
			dk_token t = v->toks[v->tok0[tn] + i];
			w->mask[t >> 6] |= 1ull << (t & 63);
		}
		if (v->ntok[tn] && c > w->maxclose)
			w->maxclose = c;
	}
}

/* Depth-first over the trie from the root in the current set, with an
 * explicit stack one frame per byte of the longest piece. */
static int walk(struct dk_grammar_state *s, struct walk *w)
{
	const struct dk_grammar_vocab *v = s->v;
	struct wframe *st = s->wstack;
	int32_t top = 0;
	st[0] = (struct wframe){0, s->cur, v->child0[0]};
	while (top >= 0) {
		struct wframe *f = &st[top];
		if (f->next == v->child0[f->tn] + v->nchild[f->tn]) {
			top--;
			continue;
		}
		int32_t c = f->next++, sid = f->sid;
		uint8_t b = v->byte[c];
		if (!((s->sets[sid].first[b >> 6] >> (b & 63)) & 1))
			continue;
		int32_t nid = step(s, sid, b);
		if (nid < 0)
			return -1;
		if (!nid)
			continue;
		if (nid == sid && v->tok_end[c] - v->tok0[c] > 1) {
			if (!s->sets[sid].loop_done && compute_loop(s, sid))
				return -1;
			const uint64_t *lp = s->sets[sid].loop, *sb = v->sub[c];
			if (!(sb[0] & ~lp[0]) && !(sb[1] & ~lp[1]) && !(sb[2] & ~lp[2]) && !(sb[3] & ~lp[3])) {
				/* every token below ends in this same set */
				int32_t cl = s->sets[sid].close;
				if (w->budget < 0 || cl <= w->budget - 1) {
					mark_range(v, w, v->tok0[c], v->tok_end[c]);
					if (cl > w->maxclose)
						w->maxclose = cl;
				}
				continue;
			}
		}
		allow_own(s, w, c, nid);
		st[++top] = (struct wframe){c, nid, v->child0[c]};
	}
	return 0;
}

static bool set_complete(const struct dk_grammar_state *s, int32_t sid)
{
	return s->sets[sid].n > 0 && s->items[s->sets[sid].off] == NULL;
}

static uint64_t *plain_mask(struct dk_grammar_state *s)
{
	int32_t slot = s->sets[s->cur].mask;
	if (slot >= 0)
		return s->masks + (size_t)slot * (size_t)s->mask_words;
	slot = s->mask_next;
	s->mask_next = (s->mask_next + 1) % s->mask_slots;
	if (s->mask_owner[slot] >= 0 && s->mask_owner[slot] < s->nsets)
		s->sets[s->mask_owner[slot]].mask = -1;
	s->mask_owner[slot] = -1;
	uint64_t *m = s->masks + (size_t)slot * (size_t)s->mask_words;
	memset(m, 0, (size_t)s->mask_words * 8);
	struct walk w = {m, -1, 0};
	if (walk(s, &w))
		return NULL;
	s->sets[s->cur].mask = slot;
	s->sets[s->cur].maxclose = w.maxclose;
	s->mask_owner[slot] = s->cur;
	return m;
}

int32_t dk_grammar_apply(struct dk_grammar_state *s, float *logits, int32_t budget)
{
	const struct dk_grammar_vocab *v = s->v;
	if (s->failed)
		return -1;
	if (s->finished) {
		for (int32_t t = 0; t < v->n; t++)
			logits[t] = -INFINITY;
		return 0;
	}
	if (maybe_reset(s))
		return -1;
	uint64_t *m = plain_mask(s);
	if (!m)
		return -1;
	bool eog = set_complete(s, s->cur);
	if (budget >= 0 && s->sets[s->cur].maxclose > budget - 1) {
		memset(s->bmask, 0, (size_t)s->mask_words * 8);
		struct walk w = {s->bmask, budget, 0};
		if (walk(s, &w))
			return -1;
		bool any = eog;
		for (int32_t i = 0; i < s->mask_words && !any; i++)
			any = s->bmask[i] != 0;
		if (any)
			m = s->bmask;
	}
	int32_t allowed = 0;
	for (int32_t t = 0; t < v->n; t++) {
		bool ok = v->is_eog[t] ? eog : (m[t >> 6] >> (t & 63)) & 1;
		if (ok)
			allowed++;
		else
			logits[t] = -INFINITY;
	}
	return allowed;
}

/* The set after piece p[0..n) from the current set: 0 dead, -1 failure. */
static int32_t run_bytes(struct dk_grammar_state *s, const char *p, size_t n)
{
	int32_t sid = s->cur;
	for (size_t i = 0; i < n && sid > 0; i++)
		sid = step(s, sid, (uint8_t)p[i]);
	return sid;
}

bool dk_grammar_token_allowed(struct dk_grammar_state *s, dk_token t, int32_t budget)
{
	const struct dk_grammar_vocab *v = s->v;
	if (s->failed || s->finished || t < 0 || t >= v->n)
		return false;
	if (v->is_eog[t])
		return set_complete(s, s->cur);
	if (plen(v, t) == 0)
		return false;
	int32_t sid = run_bytes(s, v->bytes + v->off[t], plen(v, t));
	return sid > 0 && (budget < 0 || s->sets[sid].close <= budget - 1);
}

dk_token dk_grammar_sample(struct dk_grammar_state *s, struct dk_sampler *smp, float *logits,
			   int32_t budget)
{
	int32_t n = s->v->n;
	if (s->failed || s->finished)
		return DK_TOKEN_NULL;
	if (!s->saved && !(s->saved = malloc((size_t)(n ? n : 1) * sizeof *s->saved))) {
		fail(s, "out of memory");
		return DK_TOKEN_NULL;
	}
	memcpy(s->saved, logits, (size_t)n * sizeof *logits);
	dk_token t = dk_sampler_sample(smp, logits);
	if (t < 0 || !dk_grammar_token_allowed(s, t, budget)) {
		memcpy(logits, s->saved, (size_t)n * sizeof *logits);
		if (dk_grammar_apply(s, logits, budget) <= 0)
			return DK_TOKEN_NULL;
		t = dk_sampler_sample(smp, logits);
		if (t < 0)
			return DK_TOKEN_NULL;
	}
	return dk_grammar_accept_token(s, t) == DK_OK ? t : DK_TOKEN_NULL;
}

enum dk_status dk_grammar_accept_bytes(struct dk_grammar_state *s, const char *p, size_t n)
{
	if (s->failed)
		return DK_FATAL;
	if (s->finished)
		return dk_err(s->err, sizeof s->err, DK_SKIP, "grammar: output already finished");
	if (maybe_reset(s))
		return DK_FATAL;
	int32_t sid = run_bytes(s, p, n);
	if (sid < 0)
		return DK_FATAL;
	if (sid == 0)
		return dk_err(s->err, sizeof s->err, DK_SKIP, "grammar: '%.*s' cannot continue the output",
			      (int)(n > 40 ? 40 : n), p);
	s->cur = sid;
	return DK_OK;
}

enum dk_status dk_grammar_accept_token(struct dk_grammar_state *s, dk_token t)
{
	const struct dk_grammar_vocab *v = s->v;
	if (s->failed)
		return DK_FATAL;
	if (t < 0 || t >= v->n)
		return dk_err(s->err, sizeof s->err, DK_SKIP, "grammar: token %d out of range", (int)t);
	if (s->finished)
		return dk_err(s->err, sizeof s->err, DK_SKIP, "grammar: output already finished");
	if (v->is_eog[t]) {
		if (!set_complete(s, s->cur))
			return dk_err(s->err, sizeof s->err, DK_SKIP,
				      "grammar: end of generation before the output is complete");
		s->finished = true;
		return DK_OK;
	}
	if (plen(v, t) == 0)
		return dk_err(s->err, sizeof s->err, DK_SKIP, "grammar: token %d has no text", (int)t);
	return dk_grammar_accept_bytes(s, v->bytes + v->off[t], plen(v, t));
}

bool dk_grammar_is_complete(const struct dk_grammar_state *s)
{
	return s->finished || (!s->failed && set_complete(s, s->cur));
}

bool dk_grammar_can_continue(const struct dk_grammar_state *s)
{
	if (s->finished || s->failed)
		return false;
	const struct gset *q = &s->sets[s->cur];
	return q->n > 1 || (q->n == 1 && s->items[q->off] != NULL);
}

bool dk_grammar_allows_eog(const struct dk_grammar_state *s)
{
	return !s->finished && !s->failed && set_complete(s, s->cur);
}

bool dk_grammar_is_finished(const struct dk_grammar_state *s) { return s->finished; }

int32_t dk_grammar_min_bytes_to_close(const struct dk_grammar_state *s)
{
	if (s->finished)
		return 0;
	return s->sets[s->cur].close;
}

/* ---- classification ---- */

char *dk_grammar_labels_gbnf(const char *const *labels, int32_t n_labels)
{
	if (n_labels < 1)
		return NULL;
	struct dk_buf b = {0};
	int bad = dk_buf_puts(&b, "root ::=");
	for (int32_t i = 0; i < n_labels && !bad; i++) {
		bad |= dk_buf_puts(&b, i ? " | \"" : " \"");
		for (const unsigned char *p = (const unsigned char *)labels[i]; *p && !bad; p++) {
			if (*p == '"' || *p == '\\')
				bad |= dk_buf_printf(&b, "\\%c", *p);
			else if (*p < 0x20 || *p == 0x7f)
				bad |= dk_buf_printf(&b, "\\x%02X", *p);
			else
				bad |= dk_buf_putc(&b, (char)*p);
		}
		bad |= dk_buf_putc(&b, '"');
	}
	bad |= dk_buf_putc(&b, '\n');
	if (bad) {
		dk_buf_free(&b);
		return NULL;
	}
	return dk_buf_steal(&b);
}
