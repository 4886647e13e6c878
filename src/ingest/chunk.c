/* Token-bounded chunking.  For each chunk: grow the byte range exponentially
 * until it no longer fits, binary-search the largest fitting end, then step
 * back to the best boundary in the second half of that range (paragraph >
 * sentence > word > any UTF-8 boundary).  O(log n) counter calls per chunk,
 * each over about one chunk of text. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/ingest.h"
#include "util/sha256.h"

static bool is_ws(char c)
{
	return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_cont(char c)
{
	return ((unsigned char)c & 0xC0) == 0x80;
}

/* ASCII punctuation as ispunct() has it in the C locale, without the
 * locale lookup (this is the hot loop of chunking with the estimate). */
static inline bool is_punct(unsigned char c)
{
	return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

int dk_chunk_estimate_tokens(void *ud, const char *text, size_t len)
{
	(void)ud;
	const unsigned char *t = (const unsigned char *)text;
	size_t i = 0;
	long n = 0;
	while (i < len) {
		unsigned char c = t[i];
		if (is_ws((char)c)) {
			i++;
		} else if (is_punct(c)) {
			n++;
			i++;
		} else {
			size_t j = i + 1;
			while (j < len && !is_ws((char)t[j]) && !is_punct(t[j]))
				j++;
			n += 1 + (long)((j - i - 1) / 5);
			i = j;
		}
	}
	return n > 0x7fffffff ? 0x7fffffff : (int)n;
}

struct cctx {
	const char *t;
	size_t len;
	dk_count_fn count;
	void *ud;
};

static int cnt(const struct cctx *c, size_t s, size_t e)
{
	return e > s ? c->count(c->ud, c->t + s, e - s) : 0;
}

static size_t align_back(const struct cctx *c, size_t p)
{
	while (p > 0 && p < c->len && is_cont(c->t[p]))
		p--;
	return p;
}

static size_t next_char(const struct cctx *c, size_t p)
{
	if (p >= c->len)
		return c->len;
	p++;
	while (p < c->len && is_cont(c->t[p]))
		p++;
	return p;
}

/* Largest e in (s, len] on a UTF-8 boundary with count(s, e) <= max;
 * s itself when even one character does not fit. */
/* guess: expected bytes for max tokens (from the previous chunk), 0 = none.
 * A good guess brackets the answer within a few percent, so the binary
 * search that follows needs few (costly, with a real tokenizer) counts. */
static size_t fit_end(const struct cctx *c, size_t s, int max, size_t guess, bool *all)
{
	*all = false;
	size_t lo = s, hi = 0; /* lo fits; hi (if set) does not */
	if (guess) {
		size_t probe[2] = {s + guess - guess / 32, s + guess + guess / 32 + 8};
		for (int k = 0; k < 2 && !hi; k++) {
			size_t e = probe[k] < c->len && probe[k] > s ? align_back(c, probe[k]) : c->len;
			if (e <= lo)
				continue;
			if (cnt(c, s, e) <= max) {
				lo = e;
				if (e >= c->len) {
					*all = true;
					return c->len;
				}
			} else {
				hi = e;
			}
		}
	}
	size_t step = (size_t)max * 4 + 16;
	if (lo - s > step)
		step = lo - s;
	while (!hi) {
		size_t e = lo + step < c->len && lo + step > lo ? align_back(c, lo + step) : c->len;
		if (e <= lo)
			e = next_char(c, lo);
		if (cnt(c, s, e) <= max) {
			lo = e;
			if (e >= c->len) {
				*all = true;
				return c->len;
			}
			step *= 2;
		} else {
			hi = e;
		}
	}
	while (hi - lo > 4) {
		size_t mid = align_back(c, lo + (hi - lo) / 2);
		if (mid <= lo)
			break;
		if (cnt(c, s, mid) <= max)
			lo = mid;
		else
			hi = mid;
	}
	/* close the last few bytes one character at a time */
	for (;;) {
		size_t e = next_char(c, lo);
		if (e >= hi || cnt(c, s, e) > max)
			break;
		lo = e;
	}
	return lo;
}

/* Best break in [from, to]: end of a paragraph, sentence, or word. */
static size_t best_break(const struct cctx *c, size_t from, size_t to)
{
	const char *t = c->t;
	for (size_t p = to; p > from; p--) /* paragraph: the chunk ends before a blank line */
		if (t[p - 1] == '\n' && p < c->len && (t[p] == '\n' || (p >= 2 && t[p - 2] == '\n')))
			return p;
	for (size_t p = to; p > from; p--) { /* sentence or line end */
		char a = t[p - 1];
		if (a == '\n')
			return p;
		if (p < c->len && is_ws(t[p])) {
			size_t q = p;
			/* closing quotes and brackets belong to the sentence */
			while (q > from && (t[q - 1] == '"' || t[q - 1] == '\'' || t[q - 1] == ')'))
				q--;
			char b = t[q - 1];
			if (b == '.' || b == '!' || b == '?' || b == ';' || b == ':')
				return p;
		}
	}
	for (size_t p = to; p > from; p--)
		if (is_ws(t[p - 1]) || (p < c->len && is_ws(t[p])))
			return p;
	return to;
}

enum dk_status dk_chunk_text(const char *text, size_t len, const char *doc_sha256, const struct dk_chunk_params *p,
			     struct dk_chunk **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	struct dk_chunk_params dp = p ? *p : dk_chunk_default_params();
	if (dp.max_tokens < 1)
		dp.max_tokens = 1;
	if (dp.overlap_tokens < 0)
		dp.overlap_tokens = 0;
	if (dp.overlap_tokens > dp.max_tokens / 2)
		dp.overlap_tokens = dp.max_tokens / 2;
	struct cctx c = {.t = text, .len = len, .count = dp.count ? dp.count : dk_chunk_estimate_tokens,
			 .ud = dp.count ? dp.count_ud : NULL};
	char dochex[65];
	if (!doc_sha256) {
		uint8_t d[32];
		dk_sha256(text, len, d);
		dk_sha256_hex(d, dochex);
		doc_sha256 = dochex;
	}
	struct dk_chunk *v = NULL;
	size_t nv = 0, cap = 0;
	size_t s = 0, prev = 0; /* prev: end of the previous chunk */
	size_t guess = 0;       /* bytes for max_tokens, as the previous chunk had them */
	while (s < len && is_ws(text[s]))
		s++;
	while (s < len) {
		bool all;
		size_t lo = fit_end(&c, s, dp.max_tokens, guess, &all);
		size_t e;
		if (all) {
			e = len;
		} else if (lo <= s) {
			e = next_char(&c, s); /* one character over the limit: it goes alone */
		} else {
			/* with overlap, the break must still move past the previous chunk */
			size_t from = s + (lo - s) / 2;
			if (from <= prev && prev < lo)
				from = prev + 1;
			e = best_break(&c, from, lo);
		}
		size_t end = e;
		while (end > s && is_ws(text[end - 1]))
			end--;
		if (end == s)
			end = e;
		if (nv == cap) {
			cap = cap ? cap * 2 : 16;
			struct dk_chunk *nn = realloc(v, cap * sizeof *nn);
			if (!nn) {
				free(v);
				return DK_FATAL;
			}
			v = nn;
		}
		struct dk_chunk *k = &v[nv++];
		memset(k, 0, sizeof *k);
		k->index = (int)(nv - 1);
		k->start = s;
		k->end = end;
		k->tokens = cnt(&c, s, end);
		if (k->tokens > 0)
			guess = (size_t)((double)(end - s) * dp.max_tokens / k->tokens);
		char key[128];
		int kl = snprintf(key, sizeof key, "%s:%zu-%zu", doc_sha256, s, end);
		uint8_t d[32];
		dk_sha256(key, (size_t)kl, d);
		dk_sha256_hex(d, k->id);
		if (e >= len)
			break;
		prev = e;
		size_t ns = e;
		if (dp.overlap_tokens > 0) {
			/* smallest start in (s, end) whose tail still fits the overlap */
			size_t a = next_char(&c, s), b = end;
			if (guess) { /* bracket the answer around the expected overlap size first */
				size_t ob = guess * (size_t)dp.overlap_tokens / (size_t)dp.max_tokens;
				size_t wide = ob + ob / 8 + 16, narrow = ob > ob / 8 + 16 ? ob - ob / 8 - 16 : 0;
				size_t a2 = end - s > wide ? align_back(&c, end - wide) : a;
				size_t b2 = align_back(&c, end - narrow);
				if (a2 > a && a2 < b2 && cnt(&c, a2, end) > dp.overlap_tokens)
					a = a2;
				if (b2 > a && b2 < b && cnt(&c, b2, end) <= dp.overlap_tokens)
					b = b2;
			}
			while (b - a > 4) {
				size_t mid = align_back(&c, a + (b - a) / 2);
				if (mid <= a)
					break;
				if (cnt(&c, mid, end) <= dp.overlap_tokens)
					b = mid;
				else
					a = mid;
			}
			size_t q = b;
			while (q < end && !is_ws(text[q - 1]))
				q = next_char(&c, q);
			if (q < end && q > s)
				ns = q;
		}
		if (ns <= s)
			ns = e > s ? e : next_char(&c, s);
		s = ns;
		while (s < len && is_ws(text[s]))
			s++;
	}
	for (size_t i = 0; i < nv; i++)
		v[i].count = (int)nv;
	*out = v;
	*n = nv;
	return DK_OK;
}
