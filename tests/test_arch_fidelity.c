/*
 * Fidelity of each architecture beyond llama against llama.cpp, on
 * random-weight files that bench_gen_gguf writes (a fixed seed, so the test
 * regenerates the very file llama.cpp ran: its sha256 is checked) with a
 * real vocabulary from shared/vocab.  The references,
 * tests/data/arch/SHAPE.json, were recorded with llama.cpp's library
 * (greedy, F32 KV cache, top-10 probabilities from a double log-softmax)
 * and llama-perplexity (-c 128, 16 chunks of shared/reference/ppl-text.txt);
 * each file says how.
 *
 * The weights are F32.  With Q8_0 or F16 weights the activations are
 * rounded to that format before each product, and where docket's and
 * llama.cpp's float sums differ in the last bit a value can round the other
 * way; these random networks are sensitive enough that a few such flips
 * move a probability by up to 1e-3 (Q8_0) or 3e-4 (F16) over a long
 * prompt, which says nothing about the architecture.  F32 weights test the
 * graph itself.
 *
 * (tiny-gemma3's reference came from llama-server and llama-perplexity, the
 * same library, as its file says.)
 *
 * Per architecture, with an F32 KV cache:
 *  - the prompt tokenises to llama.cpp's ids;
 *  - teacher-forced greedy: at every step the top-10 probabilities are
 *    within 1e-4 of llama.cpp's and the argmax is llama.cpp's token;
 *  - perplexity within 0.01% of llama-perplexity's.
 * And for routed experts, whose rows are gathered per expert: a sequence's
 * logits are the same bits alone, beside another sequence and with another
 * thread count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/model.h"
#include "docket/perplexity.h"
#include "docket/sampler.h"
#include "testutil.h"

#define PROB_TOL 1e-4 /* the bound on each top-10 probability */
#define PPL_TOL 1e-4  /* relative: 0.01% */
#define NEAR_TIE 1e-4 /* a top-1/top-2 log-probability gap below this may flip */

struct arch_case {
	const char *shape; /* bench_gen_gguf --shape, and tests/data/arch/<shape>.json */
	const char *vocab; /* shared/vocab/ggml-vocab-<vocab>.gguf */
};

static char *tmpdir;

static char model_path[4096];

static const char *generate_path(const struct arch_case *ac)
{
	snprintf(model_path, sizeof model_path, "%s/%s.gguf", tmpdir, ac->shape);
	return model_path;
}

/* Writes the case's file with bench_gen_gguf, as the reference's
 * "generator" line says, and returns its path (static buffer). */
static const char *generate(const struct arch_case *ac)
{
	char vocab[256], cmd[8192];
	snprintf(vocab, sizeof vocab, "vocab/ggml-vocab-%s.gguf", ac->vocab);
	const char *vp = dk_test_need(dk_test_shared(vocab), "the shared vocabularies");
	const char *bd = getenv("DK_BUILD_DIR");
	assert_non_null(bd);
	generate_path(ac);
	snprintf(cmd, sizeof cmd,
		 "'%s/bench/bench_gen_gguf' --shape %s --type f32 --vocab-from '%s' --out '%s' "
		 "--seed 1 2>&1",
		 bd, ac->shape, vp, model_path);
	char *out = NULL;
	int rc = dk_test_run(cmd, &out);
	if (rc != 0)
		fail_msg("bench_gen_gguf %s exited %d: %s", ac->shape, rc, out ? out : "");
	free(out);
	return model_path;
}

static json_t *load_ref(const struct arch_case *ac)
{
	char rel[256];
	snprintf(rel, sizeof rel, "tests/data/arch/%s.json", ac->shape);
	json_error_t je;
	json_t *root = json_load_file(dk_test_src(rel), 0, &je);
	if (!root)
		fail_msg("cannot read %s: %s", rel, je.text);
	return root;
}

static struct dk_ctx *new_ctx(struct dk_model *m, int32_t n_ctx, int32_t n_seq, int threads)
{
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = n_ctx;
	cp.n_batch = n_ctx;
	cp.n_seq_max = n_seq;
	cp.kv_type = DK_TYPE_F32;
	cp.n_threads = threads;
	cp.prefix_cache = false;
	struct dk_ctx *c;
	if (dk_ctx_new(&c, m, &cp) != DK_OK)
		fail_msg("%s", dk_ctx_error(c));
	return c;
}

/* Probabilities as the reference computes them: the log-softmax in
 * double (a float sum over a 150k vocabulary is off by more than the
 * bound). */
static void softmax_double(const float *lg, double *p, int32_t n)
{
	float mx = lg[0];
	for (int32_t i = 1; i < n; i++)
		mx = lg[i] > mx ? lg[i] : mx;
	double sum = 0;
	for (int32_t i = 0; i < n; i++)
		sum += exp((double)lg[i] - mx);
	double ls = log(sum);
	for (int32_t i = 0; i < n; i++)
		p[i] = exp((double)lg[i] - mx - ls);
}

/* Teacher-forced greedy over every prompt; returns the worst |dp|. */
static double check_greedy(struct dk_model *m, json_t *ref, const char *shape)
{
	int32_t nv = dk_model_info(m)->n_vocab;
	const struct dk_tokenizer *tok = dk_model_tokenizer(m);
	/* the context llama-server ran with (it picks rope factors by it) */
	struct dk_ctx *c = new_ctx(m, 512, 1, 1);
	struct dk_batch *b = dk_batch_new(512);
	double *probs = malloc((size_t)nv * sizeof *probs);
	assert_non_null(probs);
	double worst = 0;
	int steps_checked = 0;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(ref, "results"), i, r) {
		const char *prompt = json_string_value(json_object_get(r, "prompt"));
		json_t *pids = json_object_get(r, "prompt_ids");
		json_t *gen = json_object_get(r, "generated_ids");
		dk_token ids[512];
		int n = dk_tokenize(tok, prompt, strlen(prompt), true, true, ids, 512);
		if (n != (int)json_array_size(pids))
			fail_msg("%s '%s': %d prompt tokens, llama.cpp %zu", shape, prompt, n,
				 json_array_size(pids));
		for (int k = 0; k < n; k++)
			if (ids[k] != json_integer_value(json_array_get(pids, (size_t)k)))
				fail_msg("%s '%s': prompt token %d is %d, llama.cpp %lld", shape, prompt,
					 k, ids[k],
					 (long long)json_integer_value(json_array_get(pids, (size_t)k)));
		dk_kv_seq_clear(c, 0);
		dk_batch_clear(b);
		for (int k = 0; k < n; k++)
			dk_batch_add(b, ids[k], k, 0, k == n - 1);
		assert_int_equal(dk_decode(c, b), DK_OK);
		int last = n - 1, pos = n;
		size_t si;
		json_t *st;
		json_array_foreach(json_object_get(r, "steps"), si, st) {
			const float *lg = dk_logits(c, last);
			assert_non_null(lg);
			softmax_double(lg, probs, nv);
			size_t ti;
			json_t *e;
			json_array_foreach(json_object_get(st, "top"), ti, e) {
				int id = (int)json_integer_value(json_array_get(e, 0));
				double want = json_number_value(json_array_get(e, 1));
				double d = fabs(probs[id] - want);
				worst = d > worst ? d : worst;
				if (d > PROB_TOL)
					fail_msg("%s '%s' step %zu token %d: p=%.6f, llama.cpp %.6f", shape,
						 prompt, si, id, probs[id], want);
			}
			dk_token want = (dk_token)json_integer_value(json_array_get(gen, si));
			int argmax = dk_argmax(lg, nv);
			double gap = json_number_value(json_object_get(st, "top1_top2_logprob_gap"));
			if (argmax != want && gap >= NEAR_TIE)
				fail_msg("%s '%s' step %zu: greedy %d, llama.cpp %d (gap %g)", shape,
					 prompt, si, argmax, want, gap);
			steps_checked++;
			dk_batch_clear(b);
			dk_batch_add(b, want, pos++, 0, true);
			assert_int_equal(dk_decode(c, b), DK_OK);
			last = 0;
		}
	}
	assert_true(steps_checked >= 64);
	print_message("%s: %d greedy steps, max |dp| top-10 %.3g\n", shape, steps_checked, worst);
	free(probs);
	dk_batch_free(b);
	dk_ctx_free(c);
	return worst;
}

static void check_ppl(struct dk_model *m, json_t *ref, const char *shape)
{
	json_t *pj = json_object_get(ref, "perplexity");
	double want = json_number_value(json_object_get(pj, "final_ppl"));
	int32_t n_ctx = (int32_t)json_integer_value(json_object_get(pj, "n_ctx"));
	int32_t chunks = (int32_t)json_integer_value(json_object_get(pj, "n_chunk"));
	assert_true(want > 0 && n_ctx > 0 && chunks > 0);
	size_t len;
	char *text = dk_test_read_file(dk_test_shared("reference/ppl-text.txt"), &len);
	assert_non_null(text);
	if (len && text[len - 1] == '\n')
		len--;
	dk_token *toks = malloc((len + 8) * sizeof *toks);
	assert_non_null(toks);
	int n = dk_tokenize(dk_model_tokenizer(m), text, len, true, false, toks, (int)len + 8);
	assert_true(n > chunks * n_ctx);
	struct dk_ctx *c = new_ctx(m, n_ctx, 1, 2);
	struct dk_ppl_result r;
	assert_int_equal(dk_perplexity(c, toks, n, n_ctx, chunks, NULL, NULL, &r), DK_OK);
	assert_int_equal(r.n_chunk, chunks);
	double rel = fabs(r.ppl - want) / want;
	print_message("%s: PPL -c %d x %d chunks %.4f, llama.cpp %.4f (rel %.2e)\n", shape, n_ctx,
		      chunks, r.ppl, want, rel);
	if (!(rel <= PPL_TOL))
		fail_msg("%s: perplexity %.4f, llama.cpp %.4f: relative error %.3g over %.3g", shape,
			 r.ppl, want, rel, PPL_TOL);
	dk_ctx_free(c);
	free(toks);
	free(text);
}

static struct dk_model *load(const struct arch_case *ac, json_t *ref, const char *arch)
{
	const char *path = generate(ac);
	struct dk_model *m;
	if (dk_model_load(&m, path, NULL) != DK_OK)
		fail_msg("%s", dk_model_error(m));
	const char *sha = json_string_value(json_object_get(ref, "model_sha256"));
	if (!sha || strcmp(sha, dk_model_sha256(m)))
		fail_msg("%s: bench_gen_gguf wrote a file with sha256 %s, the reference was made "
			 "on %s: the generator changed, so the reference must be made again",
			 ac->shape, dk_model_sha256(m), sha ? sha : "?");
	assert_string_equal(dk_model_info(m)->arch, arch);
	return m;
}

static void run_case(const struct arch_case *ac, const char *arch)
{
	json_t *ref = load_ref(ac);
	struct dk_model *m = load(ac, ref, arch);
	check_greedy(m, ref, ac->shape);
	check_ppl(m, ref, ac->shape);
	dk_model_free(m);
	json_decref(ref);
	remove(generate_path(ac));
}

static const struct arch_case qwen3 = {"tiny-qwen3", "qwen2"};
static const struct arch_case qwen3moe = {"tiny-qwen3moe", "qwen2"};
static const struct arch_case phi3 = {"tiny-phi3", "phi-3"};
static const struct arch_case granite = {"tiny-granite", "refact"};
/* Gemma 3 with a sliding window of 8: the long prompts cross it many times */
static const struct arch_case gemma3 = {"tiny-gemma3", "llama-spm"};

static void test_qwen3(void **s)
{
	(void)s;
	run_case(&qwen3, "qwen3");
}

static void test_qwen3moe(void **s)
{
	(void)s;
	run_case(&qwen3moe, "qwen3moe");
}

static void test_phi3(void **s)
{
	(void)s;
	run_case(&phi3, "phi3");
}

static void test_granite(void **s)
{
	(void)s;
	run_case(&granite, "granite");
}

static void test_gemma3(void **s)
{
	(void)s;
	run_case(&gemma3, "gemma3");
}

/* The last logits of toks decoded in c's sequence seq, copied. */
static float *last_logits(struct dk_ctx *c, const dk_token *toks, int n, int32_t seq)
{
	int32_t nv = dk_model_info(dk_ctx_model(c))->n_vocab;
	struct dk_batch *b = dk_batch_new(n);
	for (int k = 0; k < n; k++)
		dk_batch_add(b, toks[k], k, seq, k == n - 1);
	assert_int_equal(dk_decode(c, b), DK_OK);
	float *out = malloc((size_t)nv * sizeof *out);
	memcpy(out, dk_logits(c, n - 1), (size_t)nv * sizeof *out);
	dk_batch_free(b);
	return out;
}

/* Routed experts gather each expert's rows from the whole batch: a
 * sequence's logits must still be the same bits alone, interleaved with
 * another sequence in one batch, and with two threads. */
static void test_qwen3moe_invariance(void **s)
{
	(void)s;
	json_t *ref = load_ref(&qwen3moe);
	struct dk_model *m = load(&qwen3moe, ref, "qwen3moe");
	int32_t nv = dk_model_info(m)->n_vocab;
	dk_token a[24], bb[24];
	for (int k = 0; k < 24; k++) {
		a[k] = (dk_token)(100 + k * 997 % 5000);
		bb[k] = (dk_token)(7000 + k * 613 % 3000);
	}
	struct dk_ctx *c1 = new_ctx(m, 64, 2, 1);
	float *alone = last_logits(c1, a, 24, 0);
	dk_ctx_free(c1);
	struct dk_ctx *c2 = new_ctx(m, 64, 2, 2);
	float *two = last_logits(c2, a, 24, 1);
	assert_memory_equal(alone, two, (size_t)nv * sizeof *two);
	dk_ctx_free(c2);

	struct dk_ctx *c = new_ctx(m, 64, 2, 2);
	struct dk_batch *b = dk_batch_new(64);
	int32_t la = -1;
	for (int k0 = 0; k0 < 24; k0 += 5) {
		dk_batch_clear(b);
		for (int k = k0; k < k0 + 5 && k < 24; k++) {
			dk_batch_add(b, bb[k], k, 0, true);
			if (k == 23)
				la = b->n_tokens;
			dk_batch_add(b, a[k], k, 1, k == 23);
		}
		assert_int_equal(dk_decode(c, b), DK_OK);
	}
	assert_memory_equal(alone, dk_logits(c, la), (size_t)nv * sizeof *alone);
	dk_batch_free(b);
	dk_ctx_free(c);
	free(alone);
	free(two);
	dk_model_free(m);
	json_decref(ref);
	remove(generate_path(&qwen3moe));
}

static int setup(void **s)
{
	(void)s;
	tmpdir = dk_test_tmpdir();
	return tmpdir ? 0 : -1;
}

static int teardown(void **s)
{
	(void)s;
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	dk_test_run(cmd, NULL);
	free(tmpdir);
	return 0;
}

int main(void)
{
	dk_test_require(dk_test_shared_root(), "../shared (the shared test data)");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qwen3),
		cmocka_unit_test(test_qwen3moe),
		cmocka_unit_test(test_qwen3moe_invariance),
		cmocka_unit_test(test_phi3),
		cmocka_unit_test(test_granite),
		cmocka_unit_test(test_gemma3),
	};
	return dk_test_run_group(tests, setup, teardown);
}
