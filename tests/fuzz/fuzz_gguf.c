/* Fuzz target: the GGUF reader must reject any malformed input cleanly, and
 * a file it accepts must be safe for the tokenizer and, through it, the
 * grammar vocabulary trie and a constrained mask (vocabularies are where a
 * hostile file hides huge or odd tokens). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "docket/gguf.h"
#include "docket/grammar.h"
#include "docket/tokenizer.h"

static struct dk_grammar *grammar;

/* Tokenizer, grammar vocabulary, then a few constrained steps. */
static void constrain(const struct dk_gguf *g)
{
	struct dk_tokenizer *t;
	if (dk_tokenizer_new(&t, g) != DK_OK) {
		if (!dk_tokenizer_error(t)[0])
			abort(); /* a failure must say why */
		dk_tokenizer_free(t);
		return;
	}
	if (!grammar) {
		static const char text[] = "root ::= (\"a\" \"b\")* | \"{\" [^}]* \"}\"\n";
		if (dk_grammar_parse(&grammar, text, sizeof text - 1, NULL) != DK_OK)
			abort();
	}
	struct dk_grammar_vocab *v = dk_grammar_vocab_from_tokenizer(t);
	struct dk_grammar_state *st = v ? dk_grammar_state_new(grammar, v) : NULL;
	int32_t n = dk_tokenizer_n_vocab(t);
	float *logits = st ? malloc((size_t)n * sizeof *logits) : NULL;
	for (int step = 0; logits && step < 4; step++) {
		for (int32_t i = 0; i < n; i++)
			logits[i] = 0;
		if (dk_grammar_apply(st, logits, -1) <= 0)
			break;
		int32_t pick = 0;
		while (pick < n && logits[pick] != 0)
			pick++;
		if (pick == n || dk_grammar_accept_token(st, pick) != DK_OK)
			abort(); /* an allowed token must be accepted */
		if (dk_grammar_is_finished(st))
			break;
	}
	free(logits);
	dk_grammar_state_free(st);
	dk_grammar_vocab_free(v);
	dk_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dk_gguf *g;
	if (dk_gguf_open_memory(&g, data, size, "fuzz.gguf") == DK_OK) {
		/* touch everything a caller may read */
		char buf[512];
		for (int64_t i = 0; i < dk_gguf_n_kv(g); i++)
			dk_gguf_kv_render(g, i, buf, sizeof buf);
		volatile uint8_t sink = 0;
		for (int64_t i = 0; i < dk_gguf_n_tensors(g); i++) {
			const struct dk_gguf_tensor *t = dk_gguf_tensor(g, i);
			if (t->nbytes)
				sink ^= ((const uint8_t *)t->data)[t->nbytes - 1];
		}
		(void)sink;
		constrain(g);
	}
	dk_gguf_free(g);
	return 0;
}
