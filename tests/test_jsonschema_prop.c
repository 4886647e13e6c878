/*
 * Property test for structured output: random schemas (a seeded generator
 * over every supported keyword) × generations under the grammar's mask,
 * with a token budget.  Every output must be complete, parse with jansson
 * and pass dk_schema_validate.
 *
 *   - test_random_logits: 500 schemas × 2 runs on a synthetic vocabulary
 *     (all 256 bytes, JSON-ish multi-byte pieces, split UTF-8) with random
 *     logits;
 *   - test_stories260k: 500 schemas × prompts on stories260K.gguf, a model
 *     that has never seen JSON, with its real tokenizer and logits.
 */
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
#include "docket/jsonschema.h"
#include "docket/model.h"
#include "docket/sampler.h"
#include "docket/tokenizer.h"
#include "testutil.h"

#define N_SCHEMAS 500
#define BUDGET 160

static uint64_t rng_state;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}
static int rn(int n) { return (int)(rnd() % (uint32_t)n); }
static double rf(void) { return (rnd() & 0xFFFFFF) / (double)0x1000000; }

static const char *words[] = {"name", "id", "date", "tags", "a", "b/c", "é", "x y", "count", "ok", "items", "q\"t"};

static json_t *gen_schema(int depth);

static json_t *gen_primitive(const char *type)
{
	json_t *s = json_object();
	json_object_set_new(s, "type", json_string(type));
	if (!strcmp(type, "string")) {
		int k = rn(6);
		if (k == 0) {
			json_object_set_new(s, "format", json_string(rn(2) ? "date" : rn(2) ? "date-time" : "uuid"));
		} else if (k <= 2) {
			int mn = rn(4);
			json_object_set_new(s, "minLength", json_integer(mn));
			if (rn(2))
				json_object_set_new(s, "maxLength", json_integer(mn + rn(6)));
		} else if (k == 3) {
			json_object_set_new(s, "maxLength", json_integer(rn(8)));
		}
	}
	return s;
}

static const char *prim_types[] = {"string", "number", "integer", "boolean", "null"};

static json_t *gen_enum(void)
{
	json_t *s = json_object(), *e = json_array();
	int n = 1 + rn(4);
	for (int i = 0; i < n; i++) {
		switch (rn(5)) {
		case 0: json_array_append_new(e, json_string(words[rn(12)])); break;
		case 1: json_array_append_new(e, json_integer(rn(200) - 100)); break;
		case 2: json_array_append_new(e, json_real(rn(1000) / 8.0)); break;
		case 3: json_array_append_new(e, json_null()); break;
		default: json_array_append_new(e, json_pack("{s:[i,b]}", "k", rn(5), rn(2))); break;
		}
	}
	if (rn(4) == 0) {
		json_object_set(s, "const", json_array_get(e, 0));
		json_decref(e);
	} else {
		json_object_set_new(s, "enum", e);
	}
	return s;
}

static json_t *gen_object(int depth)
{
	json_t *s = json_object(), *props = json_object(), *req = json_array();
	json_object_set_new(s, "type", json_string("object"));
	int n = rn(5);
	for (int i = 0; i < n; i++) {
		const char *k = words[rn(12)];
		if (json_object_get(props, k))
			continue;
		json_object_set_new(props, k, gen_schema(depth + 1));
		if (rn(2))
			json_array_append_new(req, json_string(k));
	}
	if (n || rn(2))
		json_object_set_new(s, "properties", props);
	else
		json_decref(props);
	if (json_array_size(req))
		json_object_set_new(s, "required", req);
	else
		json_decref(req);
	int a = rn(4);
	if (a == 0)
		json_object_set_new(s, "additionalProperties", json_false());
	else if (a == 1 && !n)
		json_object_set_new(s, "additionalProperties", gen_primitive(prim_types[rn(5)]));
	return s;
}

static json_t *gen_array(int depth)
{
	json_t *s = json_object();
	json_object_set_new(s, "type", json_string("array"));
	if (rn(5))
		json_object_set_new(s, "items", gen_schema(depth + 1));
	int mn = rn(3);
	if (rn(2))
		json_object_set_new(s, "minItems", json_integer(mn));
	if (rn(2))
		json_object_set_new(s, "maxItems", json_integer(mn + rn(3)));
	return s;
}

/* oneOf branches get distinct types so that no value matches two */
static json_t *gen_choice(int depth)
{
	json_t *s = json_object(), *alts = json_array();
	static const char *kinds[] = {"string", "integer", "boolean", "null", "array", "object"};
	int used = 0, n = 2 + rn(2);
	for (int i = 0; i < n; i++) {
		int k = rn(6);
		if (used & (1 << k))
			continue;
		used |= 1 << k;
		json_t *b = k == 4 ? gen_array(depth + 1) : k == 5 ? gen_object(depth + 1) : gen_primitive(kinds[k]);
		json_array_append_new(alts, b);
	}
	json_object_set_new(s, rn(2) ? "anyOf" : "oneOf", alts);
	if (rn(4) == 0 && !(used & (1 << 3)))
		json_object_set_new(s, "nullable", json_true());
	return s;
}

static json_t *gen_schema(int depth)
{
	int k = depth >= 3 ? rn(7) : rn(12);
	json_t *s;
	if (k < 5) {
		s = gen_primitive(prim_types[k]);
	} else if (k == 5) {
		s = gen_enum();
	} else if (k == 6) {
		/* nullable types, both spellings */
		const char *t = prim_types[rn(4)];
		s = gen_primitive(t);
		if (rn(2))
			json_object_set_new(s, "nullable", json_true());
		else
			json_object_set_new(s, "type", json_pack("[s,s]", t, "null"));
	} else if (k <= 8) {
		s = gen_object(depth);
	} else if (k <= 10) {
		s = gen_array(depth);
	} else {
		s = gen_choice(depth);
	}
	if (rn(10) == 0)
		json_object_set_new(s, "description", json_string("ignored"));
	return s;
}

/* ---- the generation loop ---- */

typedef int (*next_logits_fn)(void *ud, dk_token last, float *logits);

/* Generates under the mask; returns the bytes in *out (caller frees). */
/* Draws argmax(logit + Gumbel noise) over the unmasked entries. */
static dk_token gumbel_pick(const float *lg, int32_t n_vocab)
{
	dk_token best = DK_TOKEN_NULL;
	double bv = -INFINITY;
	for (int32_t t = 0; t < n_vocab; t++) {
		if (isinf(lg[t]) && lg[t] < 0)
			continue;
		double u = rf() * 0.999999 + 1e-7;
		double x = lg[t] - log(-log(u));
		if (x > bv) {
			bv = x;
			best = t;
		}
	}
	return best;
}

/* fast: try the unmasked draw first (dk_grammar_token_allowed), mask only
 * when it is not allowed, as a runner's fast path would. */
static void generate(const struct dk_grammar *g, const struct dk_grammar_vocab *v, int32_t n_vocab,
		     next_logits_fn fn, void *ud, bool fast, char **out, size_t *outn, bool *complete)
{
	struct dk_grammar_state *st = dk_grammar_state_new(g, v);
	assert_non_null(st);
	float *lg = malloc((size_t)n_vocab * sizeof *lg);
	size_t cap = 1024, n = 0;
	char *buf = malloc(cap);
	dk_token last = DK_TOKEN_NULL;
	for (int used = 0; used < BUDGET; used++) {
		if (fn(ud, last, lg))
			fail_msg("logits callback failed");
		dk_token best = fast ? gumbel_pick(lg, n_vocab) : DK_TOKEN_NULL;
		if (best < 0 || !dk_grammar_token_allowed(st, best, BUDGET - used)) {
			int32_t k = dk_grammar_apply(st, lg, BUDGET - used);
			if (k < 0)
				fail_msg("apply: %s", dk_grammar_state_error(st));
			if (k == 0)
				break;
			best = gumbel_pick(lg, n_vocab);
		}
		assert_true(best >= 0);
		if (dk_grammar_accept_token(st, best) != DK_OK)
			fail_msg("accept of an allowed token failed: %s", dk_grammar_state_error(st));
		if (dk_grammar_vocab_is_eog(v, best))
			break;
		size_t len;
		const char *p = dk_grammar_vocab_piece(v, best, &len);
		while (n + len + 1 > cap)
			buf = realloc(buf, cap *= 2);
		memcpy(buf + n, p, len);
		n += len;
		last = best;
	}
	buf[n] = 0;
	*complete = dk_grammar_is_complete(st);
	*out = buf;
	*outn = n;
	free(lg);
	dk_grammar_state_free(st);
}

static void check_output(const json_t *schema, const char *text, size_t n, bool complete, int which)
{
	char *sd = json_dumps(schema, JSON_COMPACT);
	if (!complete)
		fail_msg("schema %d %s: output not complete within the budget: %s", which, sd, text);
	json_error_t e;
	json_t *v = json_loadb(text, n, JSON_DECODE_ANY, &e);
	if (!v)
		fail_msg("schema %d %s: output does not parse (%s): %s", which, sd, e.text, text);
	char err[512];
	if (!dk_schema_validate(schema, v, err, sizeof err))
		fail_msg("schema %d %s: output %s does not validate: %s", which, sd, text, err);
	json_decref(v);
	free(sd);
}

/* ---- synthetic vocabulary, random logits ---- */

static const char *pieces[] = {
	"{", "}", "[", "]", "{\"", "\":", "\": ", "\",", "\", \"", "\"}", "\"]", "}]", "]}", "},{",
	", ", ",\n", "\n", "\n  ", "\n    ", "  ", "    ", "\t", "true", "false", "null", "nul", "tr",
	"0", "1", "12", "123", "-1", "0.", ".5", "e1", "E-", "e+0", "2024-", "01-", "-31", "T1", ":00",
	"Z", "+01:00", "-4", "abc", "def", "name", "id", "date", "tags", "count", "ok", "items", "b/c",
	"x y", "é", "日本", "\xe6\x97", "\xa5", "\\n", "\\u00e9", "\\u", "00", "e9", "\\\"", "\\\\",
	"q\\\"t", " the", " and", "ing", "Once", " upon", " a", " time", "\"\"", "[]", "{}", "\"a\"",
};
#define N_PIECES (int32_t)(sizeof pieces / sizeof pieces[0])

static int random_logits(void *ud, dk_token last, float *logits)
{
	int32_t n = *(int32_t *)ud;
	(void)last;
	for (int32_t t = 0; t < n; t++)
		logits[t] = (float)(rf() * 4.0);
	return 0;
}

static void test_random_logits(void **state)
{
	(void)state;
	int32_t n = 256 + N_PIECES + 2;
	const char **p = calloc((size_t)n, sizeof *p);
	size_t *l = calloc((size_t)n, sizeof *l);
	static char bytes[256];
	for (int i = 0; i < 256; i++) {
		bytes[i] = (char)i;
		p[i] = &bytes[i];
		l[i] = 1;
	}
	for (int32_t i = 0; i < N_PIECES; i++) {
		p[256 + i] = pieces[i];
		l[256 + i] = strlen(pieces[i]);
	}
	p[n - 2] = p[n - 1] = "";
	dk_token eog[] = {n - 2, n - 1};
	struct dk_grammar_vocab *v = dk_grammar_vocab_new(p, l, n, eog, 2);
	free(p);
	free(l);
	rng_state = 0x9E3779B97F4A7C15ull;
	int generated = 0;
	for (int i = 0; i < N_SCHEMAS; i++) {
		json_t *schema = gen_schema(0);
		struct dk_grammar *g;
		char err[512];
		if (dk_schema_compile(schema, &g, err, sizeof err) != DK_OK) {
			char *sd = json_dumps(schema, JSON_COMPACT);
			fail_msg("schema %d %s does not compile: %s", i, sd, err);
		}
		for (int run = 0; run < 2; run++) {
			char *text;
			size_t tn;
			bool complete;
			generate(g, v, n, random_logits, &n, run == 1, &text, &tn, &complete);
			check_output(schema, text, tn, complete, i);
			free(text);
			generated++;
		}
		dk_grammar_free(g);
		json_decref(schema);
	}
	assert_int_equal(generated, 2 * N_SCHEMAS);
	dk_grammar_vocab_free(v);
}

/* ---- stories260K: real tokenizer, real logits ---- */

struct lm {
	struct dk_ctx *ctx;
	struct dk_batch *batch;
	const dk_token *prompt;
	int32_t nprompt;
	int32_t pos;
	int32_t n_vocab;
};

static int model_logits(void *ud, dk_token last, float *logits)
{
	struct lm *m = ud;
	dk_batch_clear(m->batch);
	if (last == DK_TOKEN_NULL) {
		dk_kv_seq_clear(m->ctx, 0);
		for (int32_t i = 0; i < m->nprompt; i++)
			dk_batch_add(m->batch, m->prompt[i], i, 0, i == m->nprompt - 1);
		m->pos = m->nprompt;
	} else {
		dk_batch_add(m->batch, last, m->pos++, 0, true);
	}
	if (dk_decode(m->ctx, m->batch) != DK_OK)
		return -1;
	const float *l = dk_logits(m->ctx, m->batch->n_tokens - 1);
	if (!l)
		return -1;
	memcpy(logits, l, (size_t)m->n_vocab * sizeof *logits);
	return 0;
}

/* dk_grammar_sample with the engine's sampler (top-k/top-p/temperature and
 * greedy) on random logits: outputs stay valid. */
static void test_with_sampler(void **state)
{
	(void)state;
	int32_t n = 256 + N_PIECES + 1;
	const char **p = calloc((size_t)n, sizeof *p);
	size_t *l = calloc((size_t)n, sizeof *l);
	static char bytes[256];
	for (int i = 0; i < 256; i++) {
		bytes[i] = (char)i;
		p[i] = &bytes[i];
		l[i] = 1;
	}
	for (int32_t i = 0; i < N_PIECES; i++) {
		p[256 + i] = pieces[i];
		l[256 + i] = strlen(pieces[i]);
	}
	p[n - 1] = "";
	dk_token eog = n - 1;
	struct dk_grammar_vocab *v = dk_grammar_vocab_new(p, l, n, &eog, 1);
	free(p);
	free(l);
	float *lg = malloc((size_t)n * sizeof *lg);
	rng_state = 0x1234567ull;
	for (int i = 0; i < 100; i++) {
		json_t *schema = gen_schema(0);
		struct dk_grammar *g;
		char err[512];
		assert_int_equal(dk_schema_compile(schema, &g, err, sizeof err), DK_OK);
		struct dk_sampler_params sp = dk_sampler_default_params();
		sp.seed = (uint64_t)i;
		if (i % 3 == 0)
			sp.temperature = 0;
		struct dk_sampler *smp = dk_sampler_new(&sp, n);
		struct dk_grammar_state *st = dk_grammar_state_new(g, v);
		char out[4096];
		size_t on = 0;
		for (int used = 0; used < BUDGET; used++) {
			random_logits(&n, DK_TOKEN_NULL, lg);
			dk_token t = dk_grammar_sample(st, smp, lg, BUDGET - used);
			if (t < 0)
				break;
			dk_sampler_accept(smp, t);
			if (t == eog)
				break;
			size_t len;
			const char *pc = dk_grammar_vocab_piece(v, t, &len);
			assert_true(on + len < sizeof out);
			memcpy(out + on, pc, len);
			on += len;
		}
		out[on] = 0;
		check_output(schema, out, on, dk_grammar_is_complete(st), i);
		dk_grammar_state_free(st);
		dk_sampler_free(smp);
		dk_grammar_free(g);
		json_decref(schema);
	}
	free(lg);
	dk_grammar_vocab_free(v);
}

static void test_stories260k(void **state)
{
	(void)state;
	const char *path = dk_test_shared("models/stories260K.gguf");
	struct dk_model *model;
	if (dk_model_load(&model, path, NULL) != DK_OK)
		fail_msg("cannot load %s: %s", path, dk_model_error(model));
	const struct dk_tokenizer *tok = dk_model_tokenizer(model);
	struct dk_grammar_vocab *v = dk_grammar_vocab_from_tokenizer(tok);
	assert_non_null(v);
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = 512;
	cp.n_seq_max = 1;
	cp.n_threads = 1;
	struct dk_ctx *ctx;
	if (dk_ctx_new(&ctx, model, &cp) != DK_OK)
		fail_msg("ctx: %s", dk_ctx_error(ctx));
	struct lm lm = {.ctx = ctx, .batch = dk_batch_new(512), .n_vocab = dk_grammar_vocab_size(v)};
	static const char *prompts[] = {
		"Once upon a time", "The little dog said", "Lily wanted to write a list:",
		"Tom and his mom went to the park. They saw", "Here is the answer in JSON:",
	};
	rng_state = 0xD1B54A32D192ED03ull;
	for (int i = 0; i < N_SCHEMAS; i++) {
		json_t *schema = gen_schema(0);
		struct dk_grammar *g;
		char err[512];
		if (dk_schema_compile(schema, &g, err, sizeof err) != DK_OK)
			fail_msg("schema %d does not compile: %s", i, err);
		const char *pr = prompts[i % 5];
		dk_token ptoks[64];
		int np = dk_tokenize(tok, pr, strlen(pr), true, false, ptoks, 64);
		assert_true(np > 0);
		lm.prompt = ptoks;
		lm.nprompt = np;
		char *text;
		size_t tn;
		bool complete;
		generate(g, v, lm.n_vocab, model_logits, &lm, i % 2, &text, &tn, &complete);
		check_output(schema, text, tn, complete, i);
		free(text);
		dk_grammar_free(g);
		json_decref(schema);
	}
	dk_batch_free(lm.batch);
	dk_ctx_free(ctx);
	dk_grammar_vocab_free(v);
	dk_model_free(model);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_logits),
		cmocka_unit_test(test_with_sampler),
		cmocka_unit_test(test_stories260k),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
