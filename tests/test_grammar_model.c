/* grammar with real vocabularies and a real model: masks over the
 * stories260K (SPM, byte fallback) and SmolLM2 (byte-level BPE)
 * vocabularies agree with accept token by token; label probabilities from
 * stories260K's logits match scoring every label separately. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/gguf.h"
#include "docket/grammar.h"
#include "docket/sampler.h"
#include "docket/jsonschema.h"
#include "docket/model.h"
#include "docket/tokenizer.h"
#include "testutil.h"

static const char json_schema[] =
	"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"
	"\"n\":{\"type\":\"integer\"},\"ok\":{\"type\":\"boolean\"}},\"required\":[\"name\"],"
	"\"additionalProperties\":false}";

/* Walks doc through the vocabulary (tokenized by the real tokenizer),
 * checking at each step the mask against a per-token accept on a clone. */
static void check_vocab(const char *path, int stride)
{
	struct dk_gguf *gg;
	if (dk_gguf_open(&gg, path) != DK_OK)
		fail_msg("%s: %s", path, gg ? dk_gguf_error(gg) : "out of memory");
	struct dk_tokenizer *tok;
	if (dk_tokenizer_new(&tok, gg) != DK_OK)
		fail_msg("tokenizer: %s", dk_tokenizer_error(tok));
	struct dk_grammar_vocab *v = dk_grammar_vocab_from_tokenizer(tok);
	assert_non_null(v);
	int32_t n = dk_tokenizer_n_vocab(tok);
	assert_int_equal(dk_grammar_vocab_size(v), n);
	assert_true(dk_grammar_vocab_is_eog(v, dk_tokenizer_eos(tok)));
	json_error_t je;
	json_t *schema = json_loads(json_schema, 0, &je);
	struct dk_grammar *g;
	char err[256];
	assert_int_equal(dk_schema_compile(schema, &g, err, sizeof err), DK_OK);
	const char *doc = "{\"name\": \"Tom Müller\", \"n\": -42, \"ok\": true}";
	dk_token toks[128];
	int nt = dk_tokenize(tok, doc, strlen(doc), false, false, toks, 128);
	assert_true(nt > 0);
	struct dk_grammar_state *st = dk_grammar_state_new(g, v);
	float *lg = malloc((size_t)n * sizeof *lg);
	for (int i = 0; i <= nt; i++) {
		for (int32_t t = 0; t < n; t++)
			lg[t] = 0;
		int32_t allowed = dk_grammar_apply(st, lg, -1);
		assert_true(allowed > 0);
		for (int32_t t = i % stride; t < n; t += stride) {
			struct dk_grammar_state *c = dk_grammar_state_clone(st);
			bool ok = dk_grammar_accept_token(c, t) == DK_OK;
			if (ok != (lg[t] == 0)) {
				size_t len;
				const char *p = dk_grammar_vocab_piece(v, t, &len);
				fail_msg("%s step %d token %d '%.*s': accept %d, mask %d", path, i, t, (int)len, p,
					 ok, lg[t] == 0);
			}
			dk_grammar_state_free(c);
		}
		if (i == nt)
			break;
		/* SPM prefixes a space to the first piece; the grammar does not
		 * allow it, which the mask must have said */
		if (isinf(lg[toks[i]])) {
			size_t len;
			const char *p = dk_grammar_vocab_piece(v, toks[i], &len);
			assert_true(i == 0 && len > 0 && p[0] == ' ');
			assert_int_equal(dk_grammar_accept_bytes(st, p + 1, len - 1), DK_OK);
			continue;
		}
		assert_int_equal(dk_grammar_accept_token(st, toks[i]), DK_OK);
	}
	assert_true(dk_grammar_is_complete(st));
	assert_true(isfinite(lg[dk_tokenizer_eos(tok)]));
	/* the same document again after a reset, with the caches warm */
	dk_grammar_state_reset(st);
	assert_false(dk_grammar_is_complete(st));
	assert_int_equal(dk_grammar_accept_bytes(st, doc, strlen(doc)), DK_OK);
	assert_true(dk_grammar_is_complete(st));
	free(lg);
	dk_grammar_state_free(st);
	dk_grammar_free(g);
	json_decref(schema);
	dk_grammar_vocab_free(v);
	dk_tokenizer_free(tok);
	dk_gguf_free(gg);
}

static void test_stories_vocab(void **state)
{
	(void)state;
	check_vocab(dk_test_shared("models/stories260K.gguf"), 1);
}

static void test_smollm2_vocab(void **state)
{
	(void)state;
	check_vocab(dk_test_need_default_model(), 97);
}

struct lm {
	struct dk_model *m;
	struct dk_ctx *ctx;
	struct dk_batch *b;
	dk_token prompt[64];
	int np;
	int calls;
};

/* Logits after prompt + prefix, decoded from scratch each time. */
static int lm_logits(void *ud, const dk_token *prefix, int32_t n_prefix, float *logits)
{
	struct lm *l = ud;
	l->calls++;
	dk_kv_seq_clear(l->ctx, 0);
	dk_batch_clear(l->b);
	int n = 0;
	for (int i = 0; i < l->np; i++, n++)
		dk_batch_add(l->b, l->prompt[i], n, 0, false);
	for (int i = 0; i < n_prefix; i++, n++)
		dk_batch_add(l->b, prefix[i], n, 0, false);
	l->b->logits[n - 1] = true;
	if (dk_decode(l->ctx, l->b) != DK_OK)
		return -1;
	memcpy(logits, dk_logits(l->ctx, n - 1),
	       (size_t)dk_tokenizer_n_vocab(dk_model_tokenizer(l->m)) * sizeof *logits);
	return 0;
}

static void test_label_probs_model(void **state)
{
	(void)state;
	struct lm l = {0};
	const char *path = dk_test_shared("models/stories260K.gguf");
	if (dk_model_load(&l.m, path, NULL) != DK_OK)
		fail_msg("%s: %s", path, dk_model_error(l.m));
	const struct dk_tokenizer *tok = dk_model_tokenizer(l.m);
	int32_t nv = dk_tokenizer_n_vocab(tok);
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = 128;
	cp.n_threads = 1;
	assert_int_equal(dk_ctx_new(&l.ctx, l.m, &cp), DK_OK);
	l.b = dk_batch_new(128);
	const char *prompt = "The dog was very";
	l.np = dk_tokenize(tok, prompt, strlen(prompt), true, false, l.prompt, 64);
	const char *labels[] = {" happy", " sad", " hungry", " happy and"};
	dk_token lt[4][16];
	int32_t ln[4];
	const dk_token *lp[4];
	for (int i = 0; i < 4; i++) {
		/* tokenize "x label" and drop the tokens of "x", so that the label
		 * is spelled as it would be mid-sentence */
		ln[i] = dk_tokenize(tok, labels[i] + 1, strlen(labels[i] + 1), false, false, lt[i], 16);
		assert_true(ln[i] > 0);
		lp[i] = lt[i];
	}
	double probs[4], logp[4];
	assert_int_equal(dk_label_probs(lp, ln, 4, nv, lm_logits, &l, probs, logp), DK_OK);
	int calls = l.calls;
	double sum = 0;
	float *lg = malloc((size_t)nv * sizeof *lg);
	for (int i = 0; i < 4; i++) {
		assert_true(probs[i] > 0 && probs[i] < 1);
		sum += probs[i];
		/* score the label on its own */
		double want = 0;
		for (int k = 0; k < ln[i]; k++) {
			assert_int_equal(lm_logits(&l, lt[i], k, lg), 0);
			want += dk_log_softmax_at(lg, nv, lt[i][k]);
		}
		assert_float_equal(logp[i], want, 1e-4);
	}
	assert_float_equal(sum, 1.0, 1e-9);
	/* " happy" and " happy and" share their first tokens: fewer calls
	 * than tokens in all */
	assert_true(calls < ln[0] + ln[1] + ln[2] + ln[3]);
	free(lg);
	dk_batch_free(l.b);
	dk_ctx_free(l.ctx);
	dk_model_free(l.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stories_vocab),
		cmocka_unit_test(test_smollm2_vocab),
		cmocka_unit_test(test_label_probs_model),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
