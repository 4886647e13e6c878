/*
 * SentencePiece-style ("llama") and byte-level BPE ("gpt2") tokenizers over
 * a GGUF vocabulary, reproducing llama.cpp's output token for token:
 *
 *   1. special-token partition: text is cut at occurrences of control,
 *      user-defined and unknown tokens, longest token first (user-defined
 *      ones are cut even without parse_special, as llama.cpp does);
 *   2. each remaining stretch of text goes through
 *      - SPM: optional space prefix, ' ' -> U+2581, then bigram merging by
 *        highest score, with <0xNN> byte fallback for unknown characters;
 *      - BPE: the pre-tokenizer (unicode.c), GPT-2 byte mapping, then merging
 *        by lowest merge rank.
 *
 * Both merge loops keep a linked list of symbols and a priority queue of
 * candidate pairs, so a text of n bytes costs O(n log n).
 */
#include "docket/tokenizer.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/text/unicode.h"
#include "util/err.h"

enum { VOCAB_SPM = 1, VOCAB_BPE = 2 };

/* Token attributes, as bits (llama.cpp derives the same from token_type). */
enum {
	A_UNDEFINED = 0, A_UNKNOWN = 1 << 0, A_UNUSED = 1 << 1, A_NORMAL = 1 << 2,
	A_CONTROL = 1 << 3, A_USER = 1 << 4, A_BYTE = 1 << 5,
	A_LSTRIP = 1 << 7, A_RSTRIP = 1 << 8,
};

struct tok {
	const char *text; /* borrowed from the gguf */
	uint32_t len;
	float score;
	uint16_t attr;
};

struct merge {
	const char *l, *r;
	uint32_t ll, rl;
	dk_token res; /* the token l+r spells, or DK_TOKEN_NULL */
};

/* Merge ranks by the token ids of both sides, for merges whose sides are
 * tokens (all of them in practice): the fast path of the BPE loop. */
struct pair_slot {
	uint64_t key; /* (left id + 1) << 32 | (right id + 1); 0 = empty */
	int32_t rank;
	dk_token res;
};

struct trie_node {
	int32_t child, sibling, tok;
	uint8_t byte;
};

struct dk_tokenizer {
	const struct dk_gguf *g;
	int type;
	int32_t n;
	struct tok *toks;
	int32_t *vslot; /* open addressing: token ids by text */
	size_t vmask;
	size_t max_len;

	struct merge *merges; /* BPE: index = rank */
	int32_t nmerges;
	int32_t *mslot;
	size_t mmask;
	size_t max_merge_len; /* of one side */
	struct pair_slot *pslot;
	size_t pmask;

	enum dk_pretok pre;
	bool ignore_merges, add_bos, add_eos, add_space_prefix;
	dk_token bos, eos, eot, eom, unk, pad;
	dk_token byte_tok[256]; /* SPM byte fallback */
	/* SPM: characters (as unit_key) that some token has right before a
	 * "▁"; sorted.  Text is split for merging before any other "▁". */
	uint64_t *glue;
	size_t nglue;
	uint8_t *eog; /* per token: ends generation */

	dk_token *special; /* control/user/unknown ids, longest text first */
	int32_t nspecial;
	int32_t *special_node; /* index in special -> trie node of its text */
	struct trie_node *trie; /* special texts; a node's tok: first token spelled so */
	int32_t ntrie;

	char bmap[256][2]; /* GPT-2 byte -> UTF-8 of its code point */
	uint8_t bmaplen[256];

	char err[DK_ERRMSG_MAX];
};

/* ---- hashing ---- */

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
	const unsigned char *s = p;
	h ^= n * 0x9e3779b97f4a7c15ull;
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, s, 8);
		h = (h ^ v) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
		s += 8;
		n -= 8;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)s[i] << (8 * i);
	h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 29;
	h *= 0x9e3779b97f4a7c15ull;
	h ^= h >> 32;
	return h;
}

static size_t pow2_at_least(size_t n)
{
	size_t c = 16;
	while (c < n)
		c <<= 1;
	return c;
}

static dk_token vocab_find(const struct dk_tokenizer *t, const char *s, size_t len)
{
	if (!t->vslot || len > t->max_len)
		return DK_TOKEN_NULL;
	size_t i = hash_bytes(s, len, 0) & t->vmask;
	for (;;) {
		int32_t id = t->vslot[i];
		if (id < 0)
			return DK_TOKEN_NULL;
		if (t->toks[id].len == len && !memcmp(t->toks[id].text, s, len))
			return id;
		i = (i + 1) & t->vmask;
	}
}

static uint64_t merge_hash(const char *l, size_t ll, const char *r, size_t rl)
{
	return hash_bytes(r, rl, hash_bytes(l, ll, 0x1234567));
}

static int32_t merge_find(const struct dk_tokenizer *t, const char *l, size_t ll, const char *r,
			  size_t rl)
{
	if (!t->mslot || ll > t->max_merge_len || rl > t->max_merge_len)
		return -1;
	size_t i = merge_hash(l, ll, r, rl) & t->mmask;
	for (;;) {
		int32_t k = t->mslot[i];
		if (k < 0)
			return -1;
		const struct merge *m = &t->merges[k];
		if (m->ll == ll && m->rl == rl && !memcmp(m->l, l, ll) && !memcmp(m->r, r, rl))
			return k;
		i = (i + 1) & t->mmask;
	}
}

static inline uint64_t pair_key(dk_token l, dk_token r)
{
	return ((uint64_t)(uint32_t)(l + 1) << 32) | (uint32_t)(r + 1);
}

static inline size_t pair_hash(uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	key *= 0xc4ceb9fe1a85ec53ull;
	key ^= key >> 33;
	return (size_t)key;
}

static const struct pair_slot *pair_find(const struct dk_tokenizer *t, dk_token l, dk_token r)
{
	uint64_t key = pair_key(l, r);
	size_t i = pair_hash(key) & t->pmask;
	for (;;) {
		const struct pair_slot *ps = &t->pslot[i];
		if (ps->key == key)
			return ps;
		if (ps->key == 0)
			return NULL;
		i = (i + 1) & t->pmask;
	}
}

/* ---- growable token output ---- */

struct tvec {
	dk_token *v;
	size_t n, cap;
	bool oom;
};

static void tpush(struct tvec *o, dk_token id)
{
	if (o->oom)
		return;
	if (o->n == o->cap) {
		size_t nc = o->cap ? o->cap * 2 : 256;
		dk_token *p = realloc(o->v, nc * sizeof *p);
		if (!p) {
			o->oom = true;
			return;
		}
		o->v = p;
		o->cap = nc;
	}
	o->v[o->n++] = id;
}

/* ---- construction ---- */

static enum dk_status fail(struct dk_tokenizer *t, const char *fmt, const char *arg)
{
	const char *path = dk_gguf_path(t->g);
	char msg[256];
	snprintf(msg, sizeof msg, fmt, arg);
	return dk_err(t->err, sizeof t->err, DK_FATAL, "cannot load tokenizer from '%s': %s",
		      path ? path : "?", msg);
}

static void get_id(const struct dk_tokenizer *t, const char *key, dk_token *out)
{
	int64_t v;
	if (dk_gguf_get_i64(t->g, key, &v) && v >= 0 && v < t->n)
		*out = (dk_token)v;
}

static bool text_is(const struct tok *k, const char *s)
{
	size_t n = strlen(s);
	return k->len == n && !memcmp(k->text, s, n);
}

static bool text_in(const struct tok *k, const char *const *list)
{
	for (; *list; list++)
		if (text_is(k, *list))
			return true;
	return false;
}

/* Tokens llama.cpp recognises by their text as end of turn / generation or
 * fill-in-the-middle markers; they are made control tokens. */
static const char *const eot_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
	"<|end_of_text|>", "<EOT>", "_<EOT>",
	"<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", /* DeepSeek */
	"<end_of_utterance>", NULL};
static const char *const eog_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
	"<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
	"<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", NULL};
static const char *const fim_texts[] = {
	"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>",
	"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>",
	"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>",
	NULL};
static const char *const fim_eog_texts[] = {
	"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
	"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<fim_repo>", "<REPO>", "<reponame>",
	"<|file_sep|>", "<file_sep>", "<|file_separator|>", NULL};

static int cmp_special(const void *a, const void *b, void *ctx)
{
	const struct dk_tokenizer *t = ctx;
	dk_token x = *(const dk_token *)a, y = *(const dk_token *)b;
	if (t->toks[x].len != t->toks[y].len)
		return t->toks[x].len > t->toks[y].len ? -1 : 1;
	return x < y ? -1 : x > y;
}

static int build_trie(struct dk_tokenizer *t)
{
	size_t total = 1;
	for (int32_t i = 0; i < t->nspecial; i++)
		total += t->toks[t->special[i]].len;
	t->trie = malloc(total * sizeof *t->trie);
	t->special_node = malloc(((size_t)t->nspecial + 1) * sizeof *t->special_node);
	if (!t->trie || !t->special_node)
		return -1;
	t->trie[0] = (struct trie_node){-1, -1, -1, 0};
	t->ntrie = 1;
	for (int32_t i = 0; i < t->nspecial; i++) {
		const struct tok *k = &t->toks[t->special[i]];
		int32_t node = 0;
		for (uint32_t j = 0; j < k->len; j++) {
			uint8_t b = (uint8_t)k->text[j];
			int32_t c = t->trie[node].child;
			while (c >= 0 && t->trie[c].byte != b)
				c = t->trie[c].sibling;
			if (c < 0) {
				c = t->ntrie++;
				t->trie[c] = (struct trie_node){-1, t->trie[node].child, -1, b};
				t->trie[node].child = c;
			}
			node = c;
		}
		if (t->trie[node].tok < 0)
			t->trie[node].tok = t->special[i];
		t->special_node[i] = node;
	}
	return 0;
}

static uint64_t unit_key(const char *s, size_t n);
static void *grow(void *p, size_t *cap, size_t need, size_t elem, bool *oom);
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Collects the characters that precede a "▁" inside some token, cutting
 * tokens into units the way the merge loop cuts text. */
static int build_glue(struct dk_tokenizer *t)
{
	size_t cap = 0;
	for (int32_t i = 0; i < t->n; i++) {
		const struct tok *k = &t->toks[i];
		size_t prev_off = 0, prev_n = 0;
		for (size_t off = 0; off < k->len;) {
			size_t n = dk_utf8_len((unsigned char)k->text[off]);
			if (n > k->len - off)
				n = k->len - off;
			bool marker = n == 3 && !memcmp(k->text + off, "\xe2\x96\x81", 3);
			bool prev_marker = prev_n == 3 && !memcmp(k->text + prev_off, "\xe2\x96\x81", 3);
			if (marker && prev_n && !prev_marker) {
				uint64_t *g = grow(t->glue, &cap, t->nglue + 1, sizeof *g, &(bool){false});
				if (!g)
					return -1;
				t->glue = g;
				t->glue[t->nglue++] = unit_key(k->text + prev_off, prev_n);
			}
			prev_off = off;
			prev_n = n;
			off += n;
		}
	}
	if (t->nglue)
		qsort(t->glue, t->nglue, sizeof *t->glue, cmp_u64);
	return 0;
}

static enum dk_status load(struct dk_tokenizer *t)
{
	const struct dk_gguf *g = t->g;
	const char *model;
	size_t mlen;
	if (!dk_gguf_get_str(g, "tokenizer.ggml.model", &model, &mlen))
		return fail(t, "%s", "no tokenizer metadata (tokenizer.ggml.model missing)");
	if (mlen == 5 && !memcmp(model, "llama", 5))
		t->type = VOCAB_SPM;
	else if (mlen == 4 && !memcmp(model, "gpt2", 4))
		t->type = VOCAB_BPE;
	else {
		char name[64];
		snprintf(name, sizeof name, "%.*s", (int)(mlen > 40 ? 40 : mlen), model);
		return fail(t, "unsupported tokenizer model '%s'", name);
	}

	enum dk_gguf_vtype et;
	uint64_t n;
	if (!dk_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n) || et != DK_GGUF_STRING)
		return fail(t, "%s", "tokenizer.ggml.tokens missing or not a string array");
	if (n == 0 || n > (1u << 30))
		return fail(t, "%s", "tokenizer.ggml.tokens has a bad length");
	t->n = (int32_t)n;
	t->toks = calloc(n, sizeof *t->toks);
	t->eog = calloc(n, 1);
	if (!t->toks || !t->eog)
		return fail(t, "%s", "out of memory");

	const float *scores = NULL;
	uint64_t ns;
	if (dk_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &ns)) {
		if (et != DK_GGUF_FLOAT32 || ns != n)
			return fail(t, "%s", "tokenizer.ggml.scores does not match the tokens");
		scores = dk_gguf_arr_data(g, "tokenizer.ggml.scores");
	}
	const unsigned char *types = NULL;
	if (dk_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &ns)) {
		if ((et != DK_GGUF_INT32 && et != DK_GGUF_UINT32) || ns != n)
			return fail(t, "%s", "tokenizer.ggml.token_type does not match the tokens");
		types = dk_gguf_arr_data(g, "tokenizer.ggml.token_type");
	}

	t->vmask = pow2_at_least(2 * n) - 1;
	t->vslot = malloc((t->vmask + 1) * sizeof *t->vslot);
	if (!t->vslot)
		return fail(t, "%s", "out of memory");
	memset(t->vslot, 0xff, (t->vmask + 1) * sizeof *t->vslot);
	for (uint64_t i = 0; i < n; i++) {
		struct tok *k = &t->toks[i];
		const char *s;
		size_t len;
		dk_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len);
		if (len > DK_TOKEN_MAX_BYTES) {
			char msg[96];
			snprintf(msg, sizeof msg, "token %" PRIu64 " is %zu bytes (limit %d)", i, len,
				 DK_TOKEN_MAX_BYTES);
			return fail(t, "%s", msg);
		}
		k->text = s;
		k->len = (uint32_t)len;
		if (scores)
			memcpy(&k->score, (const char *)scores + 4 * i, 4);
		k->attr = A_NORMAL;
		if (types) {
			int32_t ty;
			memcpy(&ty, types + 4 * i, 4);
			switch (ty) {
			case DK_TOK_NORMAL: k->attr = A_NORMAL; break;
			case DK_TOK_UNKNOWN: k->attr = A_UNKNOWN; break;
			case DK_TOK_CONTROL: k->attr = A_CONTROL; break;
			case DK_TOK_USER_DEFINED: k->attr = A_USER; break;
			case DK_TOK_UNUSED: k->attr = A_UNUSED; break;
			case DK_TOK_BYTE: k->attr = A_BYTE; break;
			default: k->attr = A_UNDEFINED; break;
			}
		}
		if (len == 0)
			continue; /* unreachable by text */
		if (len > t->max_len)
			t->max_len = len;
		/* a later duplicate wins, as in llama.cpp's text->id map */
		size_t j = hash_bytes(s, len, 0) & t->vmask;
		for (;;) {
			int32_t id = t->vslot[j];
			if (id < 0 || (t->toks[id].len == len && !memcmp(t->toks[id].text, s, len))) {
				t->vslot[j] = (int32_t)i;
				break;
			}
			j = (j + 1) & t->vmask;
		}
	}

	/* defaults, then metadata */
	t->bos = t->eos = t->eot = t->eom = t->unk = t->pad = DK_TOKEN_NULL;
	if (t->type == VOCAB_SPM) {
		t->bos = t->n > 1 ? 1 : DK_TOKEN_NULL;
		t->eos = t->n > 2 ? 2 : DK_TOKEN_NULL;
		t->unk = 0;
		t->add_bos = true;
		t->add_space_prefix = true;
		t->pre = DK_PRE_DEFAULT;
	} else {
		t->bos = t->eos = t->n > 11 ? 11 : DK_TOKEN_NULL;
		t->pre = DK_PRE_DEFAULT;
		const char *pre;
		size_t plen;
		if (dk_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &plen) &&
		    !dk_pretok_from_name(pre, plen, &t->pre, &t->ignore_merges, &t->add_bos)) {
			char name[64];
			snprintf(name, sizeof name, "%.*s", (int)(plen > 40 ? 40 : plen), pre);
			return fail(t, "unknown pre-tokenizer '%s'", name);
		}
	}
	get_id(t, "tokenizer.ggml.bos_token_id", &t->bos);
	get_id(t, "tokenizer.ggml.eos_token_id", &t->eos);
	get_id(t, "tokenizer.ggml.eot_token_id", &t->eot);
	get_id(t, "tokenizer.ggml.eom_token_id", &t->eom);
	get_id(t, "tokenizer.ggml.unknown_token_id", &t->unk);
	get_id(t, "tokenizer.ggml.padding_token_id", &t->pad);
	bool b;
	if (dk_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b))
		t->add_bos = b;
	if (dk_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b))
		t->add_eos = b;
	if (dk_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b))
		t->add_space_prefix = b;
	if (t->unk >= t->n)
		t->unk = DK_TOKEN_NULL;

	/* end-of-generation and text-recognised control tokens */
	for (int32_t i = 0; i < t->n; i++) {
		struct tok *k = &t->toks[i];
		/* every listed text starts with one of these bytes */
		if (k->len < 3 || !strchr("<[_\xe2", k->text[0]))
			continue;
		if (text_in(k, eog_texts) || text_in(k, fim_eog_texts)) {
			t->eog[i] = 1;
			k->attr = A_CONTROL;
		} else if (text_in(k, eot_texts) || text_in(k, fim_texts)) {
			k->attr = A_CONTROL;
		}
	}
	/* Without eot_token_id, the first text of eot_texts present wins
	 * (llama.cpp takes whichever its hash map yields first; an ordered
	 * choice prefers the chat-turn markers over <|endoftext|>). */
	for (const char *const *e = eot_texts; *e && t->eot == DK_TOKEN_NULL; e++)
		t->eot = vocab_find(t, *e, strlen(*e));
	/* "</s>" is listed for one model family; a vocabulary that also has
	 * "<|tool_response>" uses it as text (llama.cpp drops it there too) */
	dk_token tr = vocab_find(t, "<|tool_response>", 16);
	dk_token es = vocab_find(t, "</s>", 4);
	if (tr != DK_TOKEN_NULL && es != DK_TOKEN_NULL)
		t->eog[es] = 0;
	if (t->eos >= 0)
		t->eog[t->eos] = 1;
	if (t->eot >= 0)
		t->eog[t->eot] = 1;
	if (t->eom >= 0)
		t->eog[t->eom] = 1;

	/* special tokens, longest first */
	t->special = malloc(n * sizeof *t->special);
	if (!t->special)
		return fail(t, "%s", "out of memory");
	for (int32_t i = 0; i < t->n; i++)
		if ((t->toks[i].attr & (A_CONTROL | A_USER | A_UNKNOWN)) && t->toks[i].len)
			t->special[t->nspecial++] = i;
	qsort_r(t->special, (size_t)t->nspecial, sizeof *t->special, cmp_special, t);

	/* Phi-3 vocabularies strip white space after their special tokens. */
	const char *name;
	size_t nlen;
	if (dk_gguf_get_str(g, "general.name", &name, &nlen)) {
		char low[128];
		size_t m = nlen < sizeof low - 1 ? nlen : sizeof low - 1;
		for (size_t i = 0; i < m; i++)
			low[i] = (char)tolower((unsigned char)name[i]);
		low[m] = 0;
		if (strstr(low, "phi-3") || strstr(low, "phi3")) {
			for (int32_t i = 0; i < t->nspecial; i++)
				t->toks[t->special[i]].attr |= A_RSTRIP;
			for (int32_t i = 0; i < t->n; i++) {
				struct tok *k = &t->toks[i];
				if (text_is(k, "</s>"))
					k->attr |= A_RSTRIP;
				if (text_is(k, "<unk>") || text_is(k, "<s>") || text_is(k, "<|endoftext|>"))
					k->attr &= (uint16_t)~A_RSTRIP;
			}
		}
	}
	if (build_trie(t))
		return fail(t, "%s", "out of memory");

	if (t->type == VOCAB_SPM) {
		static const char hex[] = "0123456789ABCDEF";
		if (build_glue(t))
			return fail(t, "%s", "out of memory");
		for (int c = 0; c < 256; c++) {
			char buf[6] = {'<', '0', 'x', hex[c >> 4], hex[c & 15], '>'};
			dk_token id = vocab_find(t, buf, 6);
			if (id == DK_TOKEN_NULL) {
				char one = (char)c;
				id = vocab_find(t, &one, 1);
			}
			t->byte_tok[c] = id == DK_TOKEN_NULL ? t->unk : id;
		}
	} else {
		for (int c = 0; c < 256; c++)
			t->bmaplen[c] = (uint8_t)dk_utf8_encode(dk_unicode_byte_to_cp((uint8_t)c),
								t->bmap[c]);
		if (!dk_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &ns) || et != DK_GGUF_STRING)
			return fail(t, "%s", "tokenizer.ggml.merges missing or not a string array");
		if (ns > (1u << 30))
			return fail(t, "%s", "tokenizer.ggml.merges has a bad length");
		t->merges = calloc(ns ? ns : 1, sizeof *t->merges);
		t->mmask = pow2_at_least(2 * ns) - 1;
		t->mslot = malloc((t->mmask + 1) * sizeof *t->mslot);
		if (!t->merges || !t->mslot)
			return fail(t, "%s", "out of memory");
		memset(t->mslot, 0xff, (t->mmask + 1) * sizeof *t->mslot);
		for (uint64_t i = 0; i < ns; i++) {
			const char *s;
			size_t len;
			dk_gguf_arr_str(g, "tokenizer.ggml.merges", i, &s, &len);
			/* split at the first space after the first byte */
			const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
			if (!sp)
				return fail(t, "%s", "malformed entry in tokenizer.ggml.merges");
			struct merge *m = &t->merges[t->nmerges];
			m->l = s;
			m->ll = (uint32_t)(sp - s);
			m->r = sp + 1;
			m->rl = (uint32_t)(len - m->ll - 1);
			size_t j = merge_hash(m->l, m->ll, m->r, m->rl) & t->mmask;
			bool dup = false;
			for (;;) {
				int32_t k = t->mslot[j];
				if (k < 0)
					break;
				const struct merge *o = &t->merges[k];
				if (o->ll == m->ll && o->rl == m->rl && !memcmp(o->l, m->l, m->ll) &&
				    !memcmp(o->r, m->r, m->rl)) {
					dup = true; /* the first rank stays */
					break;
				}
				j = (j + 1) & t->mmask;
			}
			if (m->ll > t->max_merge_len)
				t->max_merge_len = m->ll;
			if (m->rl > t->max_merge_len)
				t->max_merge_len = m->rl;
			/* ranks are entry indices, duplicates included */
			if (!dup)
				t->mslot[j] = t->nmerges;
			t->nmerges++;
		}
		t->pmask = pow2_at_least(2 * ns) - 1;
		t->pslot = calloc(t->pmask + 1, sizeof *t->pslot);
		char *cat = malloc(2 * t->max_merge_len + 1);
		if (!t->pslot || !cat) {
			free(cat);
			return fail(t, "%s", "out of memory");
		}
		for (int32_t k = 0; k < t->nmerges; k++) {
			struct merge *m = &t->merges[k];
			memcpy(cat, m->l, m->ll);
			memcpy(cat + m->ll, m->r, m->rl);
			m->res = vocab_find(t, cat, m->ll + m->rl);
			dk_token l = vocab_find(t, m->l, m->ll), r = vocab_find(t, m->r, m->rl);
			if (l == DK_TOKEN_NULL || r == DK_TOKEN_NULL)
				continue;
			uint64_t key = pair_key(l, r);
			size_t j = pair_hash(key) & t->pmask;
			while (t->pslot[j].key && t->pslot[j].key != key)
				j = (j + 1) & t->pmask;
			if (!t->pslot[j].key) /* the first rank stays */
				t->pslot[j] = (struct pair_slot){key, k, m->res};
		}
		free(cat);
	}
	return DK_OK;
}

enum dk_status dk_tokenizer_new(struct dk_tokenizer **out, const struct dk_gguf *g)
{
	struct dk_tokenizer *t = calloc(1, sizeof *t);
	*out = t;
	if (!t)
		return DK_FATAL;
	t->g = g;
	if (!g)
		return dk_err(t->err, sizeof t->err, DK_FATAL, "cannot load tokenizer: no model");
	return load(t);
}

void dk_tokenizer_free(struct dk_tokenizer *t)
{
	if (!t)
		return;
	free(t->toks);
	free(t->vslot);
	free(t->merges);
	free(t->mslot);
	free(t->pslot);
	free(t->eog);
	free(t->special);
	free(t->special_node);
	free(t->trie);
	free(t->glue);
	free(t);
}

const char *dk_tokenizer_error(const struct dk_tokenizer *t)
{
	return t ? t->err : "out of memory";
}

/* ---- priority queues ---- */

struct spm_sym {
	int32_t prev, next;
	uint32_t off, n;
	dk_token id; /* BPE: the symbol's token, DK_TOKEN_NULL if none */
};

struct spm_bigram {
	int32_t left, right;
	float score;
	uint32_t size;
};

/* true when a should come out of the queue before b */
static bool spm_before(const struct spm_bigram *a, const struct spm_bigram *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

struct bpe_bigram {
	int32_t left, right;
	int32_t rank;
	uint32_t size;
	dk_token res; /* the merged symbol's token */
};

static bool bpe_before(const struct bpe_bigram *a, const struct bpe_bigram *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

#define HEAP_FUNCS(NAME, T, BEFORE)                                                        \
	struct NAME {                                                                      \
		T *v;                                                                      \
		size_t n, cap;                                                             \
	};                                                                                 \
	static int NAME##_push(struct NAME *h, T x)                                        \
	{                                                                                  \
		if (h->n == h->cap) {                                                      \
			size_t nc = h->cap ? h->cap * 2 : 64;                              \
			T *p = realloc(h->v, nc * sizeof *p);                              \
			if (!p)                                                            \
				return -1;                                                 \
			h->v = p;                                                          \
			h->cap = nc;                                                       \
		}                                                                          \
		size_t i = h->n++;                                                         \
		while (i > 0) {                                                            \
			size_t up = (i - 1) / 2;                                           \
			if (!BEFORE(&x, &h->v[up]))                                        \
				break;                                                     \
			h->v[i] = h->v[up];                                                \
			i = up;                                                            \
		}                                                                          \
		h->v[i] = x;                                                               \
		return 0;                                                                  \
	}                                                                                  \
	static T NAME##_pop(struct NAME *h)                                                \
	{                                                                                  \
		T top = h->v[0];                                                           \
		T x = h->v[--h->n];                                                        \
		size_t i = 0;                                                              \
		for (;;) {                                                                 \
			size_t c = 2 * i + 1;                                              \
			if (c >= h->n)                                                     \
				break;                                                     \
			if (c + 1 < h->n && BEFORE(&h->v[c + 1], &h->v[c]))                \
				c++;                                                       \
			if (!BEFORE(&h->v[c], &x))                                         \
				break;                                                     \
			h->v[i] = h->v[c];                                                 \
			i = c;                                                             \
		}                                                                          \
		if (h->n)                                                                  \
			h->v[i] = x;                                                       \
		return top;                                                                \
	}

HEAP_FUNCS(spm_heap, struct spm_bigram, spm_before)
HEAP_FUNCS(bpe_heap, struct bpe_bigram, bpe_before)

/* Scratch memory for one dk_tokenize call. */
struct work {
	char *text;
	size_t ntext, captext;
	struct spm_sym *sym;
	size_t capsym;
	struct spm_heap sh;
	struct bpe_heap bh;
	uint32_t *cps;
	size_t capcps;
	struct dk_pretok_buf pb;
	bool oom;
};

static void *grow(void *p, size_t *cap, size_t need, size_t elem, bool *oom)
{
	if (need <= *cap)
		return p;
	size_t nc = *cap ? *cap : 64;
	while (nc < need)
		nc *= 2;
	void *q = realloc(p, nc * elem);
	if (!q) {
		*oom = true;
		return NULL;
	}
	*cap = nc;
	return q;
}

static void work_free(struct work *w)
{
	free(w->text);
	free(w->sym);
	free(w->sh.v);
	free(w->bh.v);
	free(w->cps);
	dk_pretok_buf_free(&w->pb);
}

/* ---- SPM ---- */

static void spm_try_bigram(const struct dk_tokenizer *t, struct work *w, int32_t l, int32_t r)
{
	if (l < 0 || r < 0)
		return;
	const struct spm_sym *a = &w->sym[l], *b = &w->sym[r];
	size_t size = a->n + b->n;
	dk_token id = vocab_find(t, w->text + a->off, size);
	if (id == DK_TOKEN_NULL)
		return;
	struct spm_bigram bg = {l, r, t->toks[id].score, (uint32_t)size};
	if (spm_heap_push(&w->sh, bg))
		w->oom = true;
}

static bool is_marker(const char *p, const struct spm_sym *y)
{
	return y->n == 3 && !memcmp(p + y->off, "\xe2\x96\x81", 3);
}

static uint64_t unit_key(const char *s, size_t n)
{
	uint64_t key = (uint64_t)n << 32;
	for (size_t i = 0; i < n; i++)
		key |= (uint64_t)(unsigned char)s[i] << (8 * i);
	return key;
}

static bool spm_cut_before(const struct dk_tokenizer *t, const char *p, const struct spm_sym *l,
			   const struct spm_sym *r)
{
	if (!is_marker(p, r) || is_marker(p, l) || l->n > 4)
		return false;
	uint64_t key = unit_key(p + l->off, l->n);
	size_t lo = 0, hi = t->nglue;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (t->glue[mid] == key)
			return false;
		if (t->glue[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return true;
}

/* Runs the merge queue over symbols [a, b) (already linked). */
static void spm_merge(const struct dk_tokenizer *t, struct work *w, int32_t a, int32_t b)
{
	w->sh.n = 0;
	for (int32_t i = a + 1; i < b; i++)
		spm_try_bigram(t, w, i - 1, i);
	while (w->sh.n && !w->oom) {
		struct spm_bigram bg = spm_heap_pop(&w->sh);
		struct spm_sym *l = &w->sym[bg.left], *r = &w->sym[bg.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			w->sym[r->next].prev = bg.left;
		spm_try_bigram(t, w, l->prev, bg.left);
		spm_try_bigram(t, w, bg.left, l->next);
	}
}

static void spm_tokenize(const struct dk_tokenizer *t, struct work *w, const char *s, size_t len,
			 bool prefix, struct tvec *out)
{
	/* build the escaped text: optional leading space, ' ' -> U+2581 */
	size_t need = 3 * (len + 1);
	char *p = grow(w->text, &w->captext, need, 1, &w->oom);
	if (!p)
		return;
	w->text = p;
	size_t m = 0;
	if (prefix) {
		memcpy(p, "\xe2\x96\x81", 3);
		m = 3;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] == ' ') {
			memcpy(p + m, "\xe2\x96\x81", 3);
			m += 3;
		} else {
			p[m++] = s[i];
		}
	}
	if (m == 0)
		return;
	struct spm_sym *sym = grow(w->sym, &w->capsym, m, sizeof *sym, &w->oom);
	if (!sym)
		return;
	w->sym = sym;
	int32_t ns = 0;
	for (size_t off = 0; off < m;) {
		size_t n = dk_utf8_len((unsigned char)p[off]);
		if (n > m - off)
			n = m - off;
		sym[ns] = (struct spm_sym){ns - 1, off + n == m ? -1 : ns + 1, (uint32_t)off,
					   (uint32_t)n, DK_TOKEN_NULL};
		off += n;
		ns++;
	}
	/* Merge segment by segment: a segment ends before a "▁" whose left
	 * neighbour is a character no vocabulary token has in front of a "▁".
	 * No merge can cross such a point, and merges in different segments
	 * never touch the same symbols, so the result is the one a single
	 * queue over the whole text gives -- with small queues. */
	for (int32_t a = 0; a < ns && !w->oom;) {
		int32_t b = a + 1;
		while (b < ns && !spm_cut_before(t, p, &sym[b - 1], &sym[b]))
			b++;
		sym[a].prev = -1;
		sym[b - 1].next = -1;
		spm_merge(t, w, a, b);
		for (int32_t i = a; i != -1; i = w->sym[i].next) {
			const struct spm_sym *y = &w->sym[i];
			dk_token id = vocab_find(t, p + y->off, y->n);
			if (id != DK_TOKEN_NULL) {
				tpush(out, id);
				continue;
			}
			/* merged symbols are tokens by construction; a single
			 * character that is not falls back to its bytes */
			for (uint32_t j = 0; j < y->n; j++) {
				dk_token bt = t->byte_tok[(unsigned char)p[y->off + j]];
				if (bt != DK_TOKEN_NULL)
					tpush(out, bt);
			}
		}
		a = b;
	}
}

/* ---- BPE ---- */

static void bpe_add_bigram(const struct dk_tokenizer *t, struct work *w, int32_t l, int32_t r)
{
	if (l < 0 || r < 0)
		return;
	const struct spm_sym *a = &w->sym[l], *b = &w->sym[r];
	int32_t rank;
	dk_token res;
	if (a->id != DK_TOKEN_NULL && b->id != DK_TOKEN_NULL) {
		const struct pair_slot *ps = pair_find(t, a->id, b->id);
		if (!ps)
			return;
		rank = ps->rank;
		res = ps->res;
	} else {
		rank = merge_find(t, w->text + a->off, a->n, w->text + b->off, b->n);
		if (rank < 0)
			return;
		res = t->merges[rank].res;
	}
	struct bpe_bigram bg = {l, r, rank, a->n + b->n, res};
	if (bpe_heap_push(&w->bh, bg))
		w->oom = true;
}

/* One pre-tokenized word, already byte-mapped, in w->text[0..m). */
static void bpe_word(const struct dk_tokenizer *t, struct work *w, size_t m, struct tvec *out)
{
	const char *p = w->text;
	if (t->ignore_merges) {
		dk_token id = vocab_find(t, p, m);
		if (id != DK_TOKEN_NULL) {
			tpush(out, id);
			return;
		}
	}
	struct spm_sym *sym = grow(w->sym, &w->capsym, m, sizeof *sym, &w->oom);
	if (!sym)
		return;
	w->sym = sym;
	int32_t ns = 0;
	for (size_t off = 0; off < m;) {
		size_t n = dk_utf8_len((unsigned char)p[off]);
		if (n > m - off)
			n = m - off;
		sym[ns] = (struct spm_sym){ns - 1, off + n == m ? -1 : ns + 1, (uint32_t)off,
					   (uint32_t)n, vocab_find(t, p + off, n)};
		off += n;
		ns++;
	}
	w->bh.n = 0;
	for (int32_t i = 1; i < ns; i++)
		bpe_add_bigram(t, w, i - 1, i);
	while (w->bh.n && !w->oom) {
		struct bpe_bigram bg = bpe_heap_pop(&w->bh);
		struct spm_sym *l = &w->sym[bg.left], *r = &w->sym[bg.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size)
			continue;
		l->n += r->n;
		l->id = bg.res;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			w->sym[r->next].prev = bg.left;
		bpe_add_bigram(t, w, l->prev, bg.left);
		bpe_add_bigram(t, w, bg.left, l->next);
	}
	for (int32_t i = 0; i < ns; i = w->sym[i].next < 0 ? ns : w->sym[i].next) {
		const struct spm_sym *y = &w->sym[i];
		if (y->n == 0)
			continue;
		if (y->id != DK_TOKEN_NULL) {
			tpush(out, y->id);
			continue;
		}
		/* llama.cpp's last resort: each byte of the mapped text alone */
		for (uint32_t j = 0; j < y->n; j++) {
			dk_token b = vocab_find(t, p + y->off + j, 1);
			if (b != DK_TOKEN_NULL)
				tpush(out, b);
		}
	}
}

static void bpe_tokenize(const struct dk_tokenizer *t, struct work *w, const char *s, size_t len,
			 struct tvec *out)
{
	uint32_t *cps = grow(w->cps, &w->capcps, len + 1, sizeof *cps, &w->oom);
	if (!cps)
		return;
	w->cps = cps;
	size_t n = 0;
	for (size_t i = 0; i < len;)
		cps[n++] = dk_utf8_decode(s, len, &i);
	if (dk_pretokenize(t->pre, cps, n, &w->pb)) {
		w->oom = true;
		return;
	}
	size_t start = 0;
	for (size_t k = 0; k < w->pb.nlens && !w->oom; k++) {
		size_t wl = w->pb.lens[k];
		/* each code point re-encoded (malformed input became U+FFFD),
		 * each byte mapped to its printable stand-in */
		char *p = grow(w->text, &w->captext, wl * 8, 1, &w->oom);
		if (!p)
			return;
		w->text = p;
		size_t m = 0;
		for (size_t i = start; i < start + wl; i++) {
			char u[4];
			size_t ul = dk_utf8_encode(cps[i], u);
			for (size_t j = 0; j < ul; j++) {
				unsigned char b = (unsigned char)u[j];
				memcpy(p + m, t->bmap[b], t->bmaplen[b]);
				m += t->bmaplen[b];
			}
		}
		start += wl;
		bpe_word(t, w, m, out);
	}
}

/* ---- special-token partition ---- */

struct frag {
	size_t off, len;
	dk_token tok; /* DK_TOKEN_NULL: raw text */
	int32_t next;
};

struct frags {
	struct frag *v;
	size_t n, cap;
};

static int32_t frag_add(struct frags *f, struct frag x, bool *oom)
{
	struct frag *p = grow(f->v, &f->cap, f->n + 1, sizeof *p, oom);
	if (!p)
		return -1;
	f->v = p;
	f->v[f->n] = x;
	return (int32_t)f->n++;
}

static bool special_usable(const struct dk_tokenizer *t, dk_token id, bool parse_special)
{
	return parse_special || !(t->toks[id].attr & (A_CONTROL | A_UNKNOWN));
}

/* Cuts the raw fragments at every occurrence of special token id, the way
 * llama.cpp does: leftmost first within each fragment, non-overlapping. */
static void partition_one(const struct dk_tokenizer *t, const char *text, struct frags *f,
			  dk_token id, bool *oom)
{
	const struct tok *k = &t->toks[id];
	for (int32_t fi = 0; fi >= 0 && !*oom; fi = f->v[fi].next) {
		if (f->v[fi].tok != DK_TOKEN_NULL)
			continue;
		size_t off = f->v[fi].off, len = f->v[fi].len;
		const char *hit = memmem(text + off, len, k->text, k->len);
		if (!hit)
			continue;
		size_t m = (size_t)(hit - text);
		/* this fragment becomes: [left] token [right]; the right part is
		 * visited next by the loop */
		size_t llen = m - off;
		if (k->attr & A_LSTRIP)
			while (llen > 0 && isspace((unsigned char)text[off + llen - 1]))
				llen--;
		size_t roff = m + k->len, rlen = off + len - roff;
		if (k->attr & A_RSTRIP)
			while (rlen > 0 && isspace((unsigned char)text[roff])) {
				roff++;
				rlen--;
			}
		int32_t after = f->v[fi].next;
		int32_t right = -1;
		if (rlen > 0) {
			right = frag_add(f, (struct frag){roff, rlen, DK_TOKEN_NULL, after}, oom);
			if (right < 0)
				return;
			after = right;
		}
		int32_t tk = frag_add(f, (struct frag){m, k->len, id, after}, oom);
		if (tk < 0)
			return;
		if (llen > 0) {
			f->v[fi].len = llen;
			f->v[fi].next = tk;
			fi = tk; /* continue after the token */
		} else {
			/* the fragment itself turns into the token */
			f->v[fi] = f->v[tk];
			f->n--;
		}
	}
}

int dk_tokenize(const struct dk_tokenizer *t, const char *text, size_t len, bool add_special,
		bool parse_special, dk_token *out, int max)
{
	struct tvec o = {0};
	struct work w = {0};
	struct frags f = {0};
	bool oom = false;

	/* symbol offsets are 32-bit and SPM triples spaces */
	if (len > (size_t)1 << 30)
		return INT32_MIN;

	if (len > 0)
		frag_add(&f, (struct frag){0, len, DK_TOKEN_NULL, -1}, &oom);

	/* Which special texts occur at all (one trie walk from each position
	 * covers every token at once), then cut for each token in turn,
	 * longest first, as llama.cpp does -- skipping the absent ones. */
	if (len > 0 && t->nspecial > 0) {
		uint8_t *seen = NULL;
		for (size_t i = 0; i < len && !oom; i++) {
			int32_t node = 0;
			for (size_t j = i; j < len; j++) {
				int32_t c = t->trie[node].child;
				while (c >= 0 && t->trie[c].byte != (uint8_t)text[j])
					c = t->trie[c].sibling;
				if (c < 0)
					break;
				node = c;
				if (t->trie[node].tok < 0)
					continue;
				if (!seen && !(seen = calloc((size_t)t->ntrie, 1))) {
					oom = true;
					break;
				}
				seen[node] = 1;
			}
		}
		for (int32_t r = 0; seen && r < t->nspecial && !oom; r++) {
			dk_token id = t->special[r];
			if (seen[t->special_node[r]] && special_usable(t, id, parse_special))
				partition_one(t, text, &f, id, &oom);
		}
		free(seen);
	}

	if (add_special && t->add_bos && t->bos != DK_TOKEN_NULL)
		tpush(&o, t->bos);
	bool prev_special = true;
	for (int32_t fi = f.n ? 0 : -1; fi >= 0 && !oom && !w.oom; fi = f.v[fi].next) {
		const struct frag *x = &f.v[fi];
		if (x->tok != DK_TOKEN_NULL) {
			tpush(&o, x->tok);
			prev_special = true;
			continue;
		}
		if (t->type == VOCAB_SPM)
			spm_tokenize(t, &w, text + x->off, x->len, t->add_space_prefix && prev_special,
				     &o);
		else
			bpe_tokenize(t, &w, text + x->off, x->len, &o);
		prev_special = false;
	}
	if (add_special && t->add_eos && t->eos != DK_TOKEN_NULL)
		tpush(&o, t->eos);

	int ret;
	if (oom || w.oom || o.oom || o.n > (size_t)INT32_MAX) {
		ret = INT32_MIN; /* cannot happen short of memory exhaustion */
	} else if (o.n > (size_t)(max < 0 ? 0 : max)) {
		ret = -(int)o.n;
	} else {
		if (o.n)
			memcpy(out, o.v, o.n * sizeof *out);
		ret = (int)o.n;
	}
	free(o.v);
	free(f.v);
	work_free(&w);
	return ret;
}

/* ---- pieces ---- */

static int copy_out(const char *s, size_t n, char *buf, int cap)
{
	if (n > (size_t)INT32_MAX)
		return INT32_MIN;
	if ((int)n > cap)
		return -(int)n;
	if (n)
		memcpy(buf, s, n);
	return (int)n;
}

int dk_token_to_piece(const struct dk_tokenizer *t, dk_token id, char *buf, int n, bool special)
{
	if (id < 0 || id >= t->n)
		return 0;
	const struct tok *k = &t->toks[id];
	if (!special && (k->attr & (A_CONTROL | A_UNKNOWN)))
		return 0;
	if (k->attr & (A_CONTROL | A_UNKNOWN | A_USER))
		return copy_out(k->text, k->len, buf, n);
	if (t->type == VOCAB_SPM) {
		if (k->attr & A_BYTE) {
			if (k->len == 6 && !memcmp(k->text, "<0x", 3)) {
				char h[3] = {k->text[3], k->text[4], 0};
				char b = (char)strtoul(h, NULL, 16);
				return copy_out(&b, 1, buf, n);
			}
			return copy_out(k->text, k->len, buf, n);
		}
		if (!(k->attr & A_NORMAL))
			return 0;
		/* U+2581 -> ' ' */
		size_t need = 0;
		for (size_t i = 0; i < k->len;) {
			if (i + 3 <= k->len && !memcmp(k->text + i, "\xe2\x96\x81", 3)) {
				i += 3;
			} else {
				i++;
			}
			need++;
		}
		if (need > (size_t)(n < 0 ? 0 : n))
			return -(int)need;
		size_t o = 0;
		for (size_t i = 0; i < k->len;) {
			if (i + 3 <= k->len && !memcmp(k->text + i, "\xe2\x96\x81", 3)) {
				buf[o++] = ' ';
				i += 3;
			} else {
				buf[o++] = k->text[i++];
			}
		}
		return (int)o;
	}
	if (!(k->attr & A_NORMAL))
		return 0;
	/* GPT-2 byte mapping back to bytes; unmapped characters pass through */
	size_t o = 0;
	char tmp[4];
	int cap = n < 0 ? 0 : n;
	for (size_t i = 0; i < k->len;) {
		size_t i0 = i;
		uint32_t cp = dk_utf8_decode(k->text, k->len, &i);
		int b = dk_unicode_cp_to_byte(cp);
		size_t ln;
		const char *src;
		if (b >= 0) {
			tmp[0] = (char)b;
			src = tmp;
			ln = 1;
		} else {
			src = k->text + i0;
			ln = i - i0;
		}
		if (o + ln <= (size_t)cap)
			memcpy(buf + o, src, ln);
		o += ln;
	}
	if (o > (size_t)cap)
		return -(int)o;
	return (int)o;
}

const char *dk_token_text(const struct dk_tokenizer *t, dk_token id, size_t *len)
{
	if (id < 0 || id >= t->n) {
		*len = 0;
		return "";
	}
	*len = t->toks[id].len;
	return t->toks[id].text;
}

enum dk_token_kind dk_token_kind(const struct dk_tokenizer *t, dk_token id)
{
	if (id < 0 || id >= t->n)
		return DK_TOK_UNUSED;
	uint16_t a = t->toks[id].attr;
	if (a & A_CONTROL)
		return DK_TOK_CONTROL;
	if (a & A_USER)
		return DK_TOK_USER_DEFINED;
	if (a & A_UNKNOWN)
		return DK_TOK_UNKNOWN;
	if (a & A_BYTE)
		return DK_TOK_BYTE;
	if (a & A_UNUSED)
		return DK_TOK_UNUSED;
	return DK_TOK_NORMAL;
}

float dk_token_score(const struct dk_tokenizer *t, dk_token id)
{
	return id >= 0 && id < t->n ? t->toks[id].score : 0.0f;
}

int32_t dk_tokenizer_n_vocab(const struct dk_tokenizer *t) { return t->n; }
dk_token dk_tokenizer_bos(const struct dk_tokenizer *t) { return t->bos; }
dk_token dk_tokenizer_eos(const struct dk_tokenizer *t) { return t->eos; }
dk_token dk_tokenizer_eot(const struct dk_tokenizer *t) { return t->eot; }
bool dk_tokenizer_add_bos(const struct dk_tokenizer *t) { return t->add_bos; }

bool dk_token_is_eog(const struct dk_tokenizer *t, dk_token id)
{
	return id >= 0 && id < t->n && t->eog[id];
}

dk_token dk_tokenizer_find(const struct dk_tokenizer *t, const char *text, size_t len)
{
	return vocab_find(t, text, len);
}

/* ---- streaming detokenizer ---- */

void dk_detok_init(struct dk_detok *d, const struct dk_tokenizer *t)
{
	memset(d, 0, sizeof *d);
	d->tok = t;
}

/* Bytes at the end of s[0..n) that start a UTF-8 sequence still missing
 * continuation bytes (0 when s ends on a boundary). */
static size_t incomplete_tail(const unsigned char *s, size_t n)
{
	for (size_t k = 1; k <= 3 && k <= n; k++) {
		unsigned char c = s[n - k];
		if ((c & 0xc0) == 0x80)
			continue; /* continuation: look further back */
		size_t want = c >= 0xf0 && c <= 0xf7 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		if (c >= 0xf8)
			want = 1;
		return want > k ? k : 0;
	}
	return 0;
}

int dk_detok_push(struct dk_detok *d, dk_token id, char *out, int n)
{
	char small[256];
	char *tmp = small;
	int np = d->npending;
	int len = dk_token_to_piece(d->tok, id, small + np, (int)sizeof small - np, false);
	if (len < 0) {
		tmp = malloc((size_t)np + (size_t)-len);
		if (!tmp)
			return INT32_MIN;
		len = dk_token_to_piece(d->tok, id, tmp + np, -len, false);
	}
	memcpy(tmp, d->pending, (size_t)np);
	size_t total = (size_t)np + (size_t)(len > 0 ? len : 0);
	size_t hold = incomplete_tail((unsigned char *)tmp, total);
	size_t emit_n = total - hold;
	int ret;
	if (emit_n > (size_t)(n < 0 ? 0 : n)) {
		ret = -(int)emit_n; /* state unchanged: the caller may retry */
	} else {
		memcpy(out, tmp, emit_n);
		memcpy(d->pending, tmp + emit_n, hold);
		d->npending = (int)hold;
		ret = (int)emit_n;
	}
	if (tmp != small)
		free(tmp);
	return ret;
}

int dk_detok_flush(struct dk_detok *d, char *out, int n)
{
	if (d->npending > n)
		return -d->npending;
	memcpy(out, d->pending, (size_t)d->npending);
	int r = d->npending;
	d->npending = 0;
	return r;
}
