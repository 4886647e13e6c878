/*
 * Copy-constrained decoding: a generation that may only write a span of a
 * source text.
 *
 * The source is read with every run of whitespace (line breaks too) as one
 * space, so a span may cross the source's line breaks ("18, TAMAN DAYA"
 * for "18,\nTAMAN DAYA").  A span starts where a word of the text does
 * (after a space, an opening bracket, ':' or '#'; not at "2018" inside
 * "19/10/2018"); '"', '\\' and control characters end every span (a span is
 * written inside a JSON string as it stands).  At each step a token is
 * allowed when its piece continues the text copied so far at some place in
 * the source (one walk down the vocabulary trie per place the copy may
 * stand), and the end tokens (pieces that begin with the end string, e.g.
 * the '"' that closes the JSON string) once something is copied and the
 * copy stands at the end of a word, so a value is not cut inside a word.
 * With one token of budget left the end is allowed anywhere.
 *
 * It masks logits on top of whatever else masks them (a grammar): the
 * caller applies it first.  One state per generation; the source is copied.
 */
#ifndef DOCKET_SPAN_H
#define DOCKET_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/grammar.h"
#include "docket/tokenizer.h"

struct dk_span;

/* A state at the start of a copy from text[0..len); v is borrowed (keep it
 * alive until the state is freed); end: the bytes that end the copy.
 * NULL when out of memory. */
struct dk_span *dk_span_new(const char *text, size_t len, const struct dk_grammar_vocab *v,
			    const char *end);
void dk_span_free(struct dk_span *s);

/* Sets logits[t] to -INFINITY for every token t that cannot continue the
 * copy; budget: tokens that may still be sampled, this one included (< 0:
 * no limit).  Returns the number of tokens left allowed. */
int32_t dk_span_apply(struct dk_span *s, float *logits, int32_t budget);

/* The copy after token t.  A token that continues no place of the source
 * (the caller sampled without the mask) turns the constraint off: false,
 * and later steps are not masked. */
bool dk_span_accept(struct dk_span *s, dk_token t);

/* The copy after the bytes p[0..n) (text the caller wrote for the model,
 * such as a chosen start); false, and off, when the source does not
 * continue with them. */
bool dk_span_accept_bytes(struct dk_span *s, const char *p, size_t n);

/* Bytes copied so far. */
size_t dk_span_copied(const struct dk_span *s);

#endif
