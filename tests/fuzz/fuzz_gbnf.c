/*
 * Fuzz target: GBNF text → dk_grammar_parse, then (when it compiles) a short
 * constrained walk over a byte vocabulary driven by the input's own bytes:
 * the mask must agree with dk_grammar_token_allowed and accept, and the
 * close estimate must stay consistent.  Input: grammar text, optionally
 * followed by "\n%%\n" and bytes that steer the walk.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "docket/grammar.h"

static struct dk_grammar_vocab *vocab;

static struct dk_grammar_vocab *byte_vocab(void)
{
	static char bytes[256];
	const char *p[260];
	size_t l[260];
	for (int i = 0; i < 256; i++) {
		bytes[i] = (char)i;
		p[i] = &bytes[i];
		l[i] = 1;
	}
	p[256] = "ab";
	l[256] = 2;
	p[257] = "\"}";
	l[257] = 2;
	p[258] = "\xc3\xa9x";
	l[258] = 3;
	p[259] = "";
	l[259] = 0;
	dk_token eog = 259;
	return dk_grammar_vocab_new(p, l, 260, &eog, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!vocab)
		vocab = byte_vocab();
	const char *text = (const char *)data;
	size_t glen = size;
	const uint8_t *steer = NULL;
	size_t nsteer = 0;
	for (size_t i = 0; i + 4 <= size; i++) {
		if (!memcmp(data + i, "\n%%\n", 4)) {
			glen = i;
			steer = data + i + 4;
			nsteer = size - i - 4;
			break;
		}
	}
	struct dk_grammar *g;
	if (dk_grammar_parse(&g, text, glen, NULL) != DK_OK) {
		if (!dk_grammar_error(g)[0])
			abort(); /* a failure must say why */
		dk_grammar_free(g);
		return 0;
	}
	struct dk_grammar_state *st = dk_grammar_state_new(g, vocab);
	float logits[260];
	for (size_t step = 0; step < 16; step++) {
		for (int i = 0; i < 260; i++)
			logits[i] = 0;
		int32_t n = dk_grammar_apply(st, logits, -1);
		if (n <= 0)
			break;
		/* pick the k-th allowed token, k from the steering bytes */
		int32_t k = nsteer ? steer[step % nsteer] % n : 0, pick = -1;
		for (int i = 0; i < 260 && pick < 0; i++)
			if (logits[i] == 0 && k-- == 0)
				pick = i;
		if (pick < 0 || !dk_grammar_token_allowed(st, pick, -1))
			abort();
		for (int i = 0; i < 260; i += 37)
			if (dk_grammar_token_allowed(st, i, -1) != (logits[i] == 0))
				abort();
		if (dk_grammar_accept_token(st, pick) != DK_OK)
			abort();
		if (dk_grammar_is_finished(st))
			break;
		if (dk_grammar_is_complete(st) != (dk_grammar_min_bytes_to_close(st) == 0))
			abort();
	}
	struct dk_grammar_state *c = dk_grammar_state_clone(st);
	dk_grammar_state_free(c);
	dk_grammar_state_reset(st);
	dk_grammar_state_free(st);
	dk_grammar_free(g);
	return 0;
}
