/* Copy-constrained decoding (docket/span.h). */
#include "docket/span.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct dk_span {
	const struct dk_grammar_vocab *v;
	int32_t n_vocab;
	char *text;       /* the source, whitespace runs as one space */
	uint32_t *run;    /* [len]: bytes from a place to the next barrier */
	size_t len;
	uint32_t *at;     /* places the copy stands (where its next byte would be) */
	size_t n_at;
	size_t copied;
	bool off;         /* the copy left the source: no more masking */
	bool ended;
	uint64_t *allow;  /* [n_vocab bits] scratch for apply */
	dk_token *ends;   /* tokens whose piece begins with the end bytes */
	int32_t n_ends;
};

static bool wordch(unsigned char c) { return isalnum(c) || c >= 0x80; }

/* A byte no span may hold: the JSON string delimiters and control bytes. */
static bool barrier(unsigned char c) { return c == '"' || c == '\\' || c < 0x20 || c == 0x7f; }

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

struct dk_span *dk_span_new(const char *text, size_t len, const struct dk_grammar_vocab *v,
			    const char *end)
{
	struct dk_span *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->v = v;
	s->n_vocab = dk_grammar_vocab_size(v);
	s->text = malloc(len + 1);
	s->run = malloc((len + 1) * sizeof *s->run);
	s->at = malloc((len + 1) * sizeof *s->at);
	s->allow = calloc(((size_t)s->n_vocab + 63) / 64, sizeof *s->allow);
	s->ends = malloc((size_t)(s->n_vocab ? s->n_vocab : 1) * sizeof *s->ends);
	if (!s->text || !s->run || !s->at || !s->allow || !s->ends) {
		dk_span_free(s);
		return NULL;
	}
	size_t k = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (is_space(c)) {
			if (k && s->text[k - 1] != ' ')
				s->text[k++] = ' ';
		} else {
			s->text[k++] = (char)c;
		}
	}
	s->len = k;
	s->text[k] = 0;
	uint32_t r = 0;
	for (size_t i = k; i-- > 0;) {
		r = barrier((unsigned char)s->text[i]) ? 0 : r + 1;
		s->run[i] = r;
	}
	/* a value starts where a word of the text does: after a space, an
	 * opening bracket or a label's colon, not inside 19/10/2018 at 2018 */
	for (size_t i = 0; i < k; i++) {
		unsigned char c = (unsigned char)s->text[i];
		bool start = !i || strchr(" ([{:#", s->text[i - 1]);
		if (c != ' ' && !barrier(c) && start)
			s->at[s->n_at++] = (uint32_t)i;
	}
	size_t el = strlen(end);
	for (int32_t t = 0; t < s->n_vocab; t++) {
		size_t pl;
		const char *p = dk_grammar_vocab_piece(v, t, &pl);
		if (p && el && pl >= el && !memcmp(p, end, el))
			s->ends[s->n_ends++] = t;
	}
	return s;
}

void dk_span_free(struct dk_span *s)
{
	if (!s)
		return;
	free(s->text);
	free(s->run);
	free(s->at);
	free(s->allow);
	free(s->ends);
	free(s);
}

size_t dk_span_copied(const struct dk_span *s) { return s->copied; }

static void mark(void *ud, dk_token t)
{
	uint64_t *a = ud;
	a[t >> 6] |= 1ull << (t & 63);
}

/* The copy stands at the end of a word at place p (or at a space or punctuation). */
static bool word_end(const struct dk_span *s, size_t p)
{
	return p >= s->len || !wordch((unsigned char)s->text[p]) ||
	       !wordch((unsigned char)s->text[p - 1]);
}

int32_t dk_span_apply(struct dk_span *s, float *logits, int32_t budget)
{
	if (s->off || s->ended)
		return s->n_vocab;
	memset(s->allow, 0, ((size_t)s->n_vocab + 63) / 64 * sizeof *s->allow);
	bool can_end = false;
	for (size_t i = 0; i < s->n_at; i++) {
		size_t p = s->at[i];
		if (p < s->len)
			dk_grammar_vocab_prefixes(s->v, s->text + p, s->run[p], mark, s->allow);
		can_end |= s->copied && word_end(s, p);
	}
	if (s->copied && budget >= 0 && budget <= 1)
		can_end = true;
	for (int32_t i = 0; can_end && i < s->n_ends; i++)
		mark(s->allow, s->ends[i]);
	int32_t n = 0;
	for (int32_t t = 0; t < s->n_vocab; t++) {
		if (s->allow[t >> 6] >> (t & 63) & 1)
			n++;
		else
			logits[t] = -INFINITY;
	}
	return n;
}

bool dk_span_accept(struct dk_span *s, dk_token t)
{
	if (s->off || s->ended)
		return !s->off;
	size_t pl;
	const char *p = dk_grammar_vocab_piece(s->v, t, &pl);
	for (int32_t i = 0; p && i < s->n_ends; i++)
		if (s->ends[i] == t) {
			s->ended = true;
			return true;
		}
	return dk_span_accept_bytes(s, p, p ? pl : 0);
}

bool dk_span_accept_bytes(struct dk_span *s, const char *p, size_t pl)
{
	if (s->off || s->ended)
		return !s->off;
	size_t k = 0;
	for (size_t i = 0; p && i < s->n_at; i++) {
		size_t at = s->at[i];
		if (at < s->len && s->run[at] >= pl && !memcmp(s->text + at, p, pl))
			s->at[k++] = (uint32_t)(at + pl);
	}
	s->n_at = k;
	if (!k) {
		s->off = true;
		return false;
	}
	s->copied += pl;
	return true;
}
