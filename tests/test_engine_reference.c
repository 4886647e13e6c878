/*
 * Engine fidelity against llama.cpp (shared/reference):
 *  - teacher-forced greedy runs: at every step the top-10 probabilities agree
 *    with llama.cpp's and the argmax is llama.cpp's token (unless the
 *    reference marks the step a near-tie); F32 KV cache against the .f32kv
 *    files, F16 against the default ones;
 *  - perplexity close to llama-perplexity's;
 *  - logits do not depend on the thread count or on batch mates.
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

/* Bounds are about 10x the worst error measured over DOCKET_KERNELS=ref,
 * avx2 and avx512 (each test prints what it achieves), so that a drift
 * well short of a wrong token still fails.  The exception is stories260K
 * with an F16 KV cache: llama.cpp's fp16 value accumulator amplifies
 * differences in summation order, its own two variants differ by up to
 * 1.6e-3 (see shared/reference/README.md), docket is within 1.8e-3, and
 * the bound stays where it was. */
#define NEAR_TIE 1e-4

static double check_greedy(const char *model, const char *ref, enum dk_ttype kvt, double tol)
{
	json_error_t je;
	json_t *root = json_load_file(dk_test_shared(ref), 0, &je);
	if (!root)
		fail_msg("cannot read %s: %s", ref, je.text);
	struct dk_model *m;
	if (dk_model_load(&m, dk_test_shared(model), NULL) != DK_OK)
		fail_msg("%s", dk_model_error(m));
	int32_t nv = dk_model_info(m)->n_vocab;
	const struct dk_tokenizer *tok = dk_model_tokenizer(m);
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = 128;
	cp.n_batch = 64;
	cp.kv_type = kvt;
	cp.n_threads = 1;
	struct dk_ctx *c;
	assert_int_equal(dk_ctx_new(&c, m, &cp), DK_OK);
	struct dk_batch *b = dk_batch_new(64);
	float *probs = malloc((size_t)nv * sizeof *probs);
	double worst = 0;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(root, "results"), i, r) {
		const char *prompt = json_string_value(json_object_get(r, "prompt"));
		json_t *pids = json_object_get(r, "prompt_ids");
		json_t *gen = json_object_get(r, "generated_ids");
		json_t *steps = json_object_get(r, "steps");
		/* the tokenizer must reproduce the prompt ids (BOS added) */
		dk_token ids[256];
		int n = dk_tokenize(tok, prompt, strlen(prompt), true, true, ids, 256);
		assert_int_equal(n, (int)json_array_size(pids));
		for (int k = 0; k < n; k++)
			assert_int_equal(ids[k], json_integer_value(json_array_get(pids, (size_t)k)));
		dk_kv_seq_clear(c, 0);
		dk_batch_clear(b);
		for (int k = 0; k < n; k++)
			dk_batch_add(b, ids[k], k, 0, k == n - 1);
		assert_int_equal(dk_decode(c, b), DK_OK);
		int last = n - 1, pos = n;
		size_t si;
		json_t *st;
		json_array_foreach(steps, si, st) {
			const float *lg = dk_logits(c, last);
			assert_non_null(lg);
			dk_softmax(lg, probs, nv);
			size_t ti;
			json_t *e;
			json_array_foreach(json_object_get(st, "top"), ti, e) {
				int id = (int)json_integer_value(json_object_get(e, "id"));
				double d = fabs(probs[id] - json_real_value(json_object_get(e, "prob")));
				if (d > worst)
					worst = d;
				if (d > tol)
					fail_msg("%s %s step %zu token %d: p=%.6f, llama.cpp %.6f", model,
						 prompt, si, id, probs[id],
						 json_real_value(json_object_get(e, "prob")));
			}
			dk_token want = (dk_token)json_integer_value(json_array_get(gen, si));
			int argmax = 0;
			for (int v = 1; v < nv; v++)
				if (lg[v] > lg[argmax])
					argmax = v;
			double gap = json_real_value(json_object_get(st, "top1_top2_logprob_gap"));
			if (argmax != want && gap >= NEAR_TIE)
				fail_msg("%s '%s' step %zu: greedy %d, llama.cpp %d (gap %g)", model, prompt,
					 si, argmax, want, gap);
			/* teacher forcing: continue with llama.cpp's token */
			dk_batch_clear(b);
			dk_batch_add(b, want, pos++, 0, true);
			assert_int_equal(dk_decode(c, b), DK_OK);
			last = 0;
		}
	}
	print_message("%s vs %s: max |dp| %.3g\n", model, ref, worst);
	free(probs);
	dk_batch_free(b);
	dk_ctx_free(c);
	dk_model_free(m);
	json_decref(root);
	return worst;
}

static void test_greedy_stories_f32kv(void **s)
{
	(void)s;
	/* achieved 1.55e-6 at every level */
	check_greedy("models/stories260K.gguf", "reference/greedy/stories260K.greedy.f32kv.json",
		     DK_TYPE_F32, 1.5e-5);
}

static void test_greedy_stories_f16kv(void **s)
{
	(void)s;
	/* achieved 1.67e-3 (ref, avx512) and 1.78e-3 (avx2): see above */
	check_greedy("models/stories260K.gguf", "reference/greedy/stories260K.greedy.json",
		     DK_TYPE_F16, 2e-3);
}

static void test_greedy_tiny_f32kv(void **s)
{
	(void)s;
	check_greedy("models/llama-2-tiny-random-F16.gguf",
		     "reference/greedy/llama-2-tiny-random-F16.greedy.f32kv.json", DK_TYPE_F32,
		     3e-10); /* achieved 2.73e-11 (its probabilities are all near 1/32000) */
}

static void test_greedy_tiny_f16kv(void **s)
{
	(void)s;
	check_greedy("models/llama-2-tiny-random-F16.gguf",
		     "reference/greedy/llama-2-tiny-random-F16.greedy.json", DK_TYPE_F16,
		     6e-8); /* achieved 5.66e-9 */
}

/* tol bounds |ppl - llama.cpp's| / llama.cpp's. */
static void check_ppl(const char *model, const char *name, int n_ctx, enum dk_ttype kvt, double tol)
{
	char ref[256];
	snprintf(ref, sizeof ref, "reference/perplexity/%s%s.ppl.json", name,
		 kvt == DK_TYPE_F32 ? ".f32kv" : "");
	json_error_t je;
	json_t *root = json_load_file(dk_test_shared(ref), 0, &je);
	if (!root)
		fail_msg("cannot read %s: %s", ref, je.text);
	char key[16];
	snprintf(key, sizeof key, "c%d", n_ctx);
	double want = json_real_value(json_object_get(json_object_get(root, key), "final_ppl"));
	assert_true(want > 0);

	struct dk_model *m;
	assert_int_equal(dk_model_load(&m, dk_test_shared(model), NULL), DK_OK);
	size_t len;
	char *text = dk_test_read_file(dk_test_shared("reference/ppl-text.txt"), &len);
	if (len && text[len - 1] == '\n')
		len--;
	dk_token *toks = malloc((len + 8) * sizeof *toks);
	int n = dk_tokenize(dk_model_tokenizer(m), text, len, true, false, toks, (int)len + 8);
	assert_true(n > 2 * n_ctx);
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = n_ctx;
	cp.n_batch = n_ctx;
	cp.kv_type = kvt;
	cp.n_threads = 1;
	cp.prefix_cache = false;
	struct dk_ctx *c;
	assert_int_equal(dk_ctx_new(&c, m, &cp), DK_OK);
	struct dk_ppl_result r;
	assert_int_equal(dk_perplexity(c, toks, n, n_ctx, -1, NULL, NULL, &r), DK_OK);
	double rel = fabs(r.ppl - want) / want;
	print_message("%s -c %d kv %s: PPL %.4f, llama.cpp %.4f (rel %.2e)\n", name, n_ctx,
		      kvt == DK_TYPE_F32 ? "f32" : "f16", r.ppl, want, rel);
	if (!(rel <= tol))
		fail_msg("%s -c %d: relative error %.3g over %.3g", name, n_ctx, rel, tol);
	assert_int_equal(r.n_chunk,
			 (int)json_integer_value(json_object_get(json_object_get(root, key), "n_chunk")));
	dk_ctx_free(c);
	dk_model_free(m);
	free(toks);
	free(text);
	json_decref(root);
}

static void test_ppl_stories(void **s)
{
	(void)s;
	/* achieved 1.92e-7, 4.45e-8 and 6.29e-5 at the worst level; the F16
	 * bound stays at its old 5e-4 (8x) */
	check_ppl("models/stories260K.gguf", "stories260K", 128, DK_TYPE_F32, 2e-6);
	check_ppl("models/stories260K.gguf", "stories260K", 256, DK_TYPE_F32, 5e-7);
	check_ppl("models/stories260K.gguf", "stories260K", 128, DK_TYPE_F16, 5e-4);
}

static void test_ppl_tiny(void **s)
{
	(void)s;
	/* achieved 9.08e-9 and 1.39e-7 */
	check_ppl("models/llama-2-tiny-random-F16.gguf", "llama-2-tiny-random-F16", 128, DK_TYPE_F32,
		  1e-7);
	check_ppl("models/llama-2-tiny-random-F16.gguf", "llama-2-tiny-random-F16", 256, DK_TYPE_F16,
		  1.5e-6);
}

/* Runs prompt through a fresh context and returns the last logits (copied). */
static float *run_prompt(struct dk_model *m, int threads, bool det, const dk_token *ids, int n)
{
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = 128;
	cp.n_threads = threads;
	cp.deterministic = det;
	struct dk_ctx *c;
	assert_int_equal(dk_ctx_new(&c, m, &cp), DK_OK);
	struct dk_batch *b = dk_batch_new(128);
	for (int k = 0; k < n; k++)
		dk_batch_add(b, ids[k], k, 0, k == n - 1);
	assert_int_equal(dk_decode(c, b), DK_OK);
	int32_t nv = dk_model_info(m)->n_vocab;
	float *out = malloc((size_t)nv * sizeof *out);
	memcpy(out, dk_logits(c, n - 1), (size_t)nv * sizeof *out);
	dk_batch_free(b);
	dk_ctx_free(c);
	return out;
}

static float *run_alone(struct dk_model *m, int threads, const dk_token *ids, int n)
{
	return run_prompt(m, threads, true, ids, n);
}

/* Deterministic mode off: a prompt of 64+ tokens may take OpenBLAS, which
 * sums in another order (close, not equal); with the integer path forced
 * it is the deterministic result bit for bit. */
static void check_nondeterministic(const char *model, bool differs)
{
	struct dk_model *m;
	assert_int_equal(dk_model_load(&m, dk_test_shared(model), NULL), DK_OK);
	const char *text = "Once upon a time there was a little girl named Lily. She loved to play "
			   "outside in the sun with her dog. One day she saw a big red ball in the "
			   "park and ran to get it, but the ball rolled into the pond and she was sad. "
			   "Her mom came and helped her get the ball out of the water, and they went "
			   "home together, happy again.";
	dk_token ids[512];
	int n = dk_tokenize(dk_model_tokenizer(m), text, strlen(text), true, false, ids, 512);
	assert_true(n >= 64);
	if (n > 100)
		n = 100; /* the context holds 128 */
	int32_t nv = dk_model_info(m)->n_vocab;
	float *on = run_prompt(m, 2, true, ids, n);
	setenv("DOCKET_PREFILL", "blas", 1);
	float *blas = run_prompt(m, 2, false, ids, n);
	/* the same call again, both threads in OpenBLAS at once: the same bits
	 * (what depends on the batch is the order of sums, not a race) */
	for (int rep = 0; rep < 4; rep++) {
		float *again = run_prompt(m, 2, false, ids, n);
		assert_memory_equal(blas, again, (size_t)nv * sizeof *again);
		free(again);
	}
	setenv("DOCKET_PREFILL", "int", 1);
	float *intp = run_prompt(m, 2, false, ids, n);
	unsetenv("DOCKET_PREFILL");
	assert_memory_equal(on, intp, (size_t)nv * sizeof *on);
	double maxd = 0, maxa = 0;
	for (int32_t i = 0; i < nv; i++) {
		maxd = fmax(maxd, fabs((double)on[i] - blas[i]));
		maxa = fmax(maxa, fabs((double)on[i]));
	}
	print_message("%s: max |int - openblas| %.3g over max |logit| %.3g\n", model, maxd, maxa);
	/* OpenBLAS did take the products (the tiny model's 8-element sums come
	 * out the same in either order) */
	if (differs)
		assert_true(maxd > 0);
	assert_true(maxd <= 1e-3 * (1 + maxa));
	assert_int_equal(dk_argmax(on, nv), dk_argmax(blas, nv));
	free(on), free(blas), free(intp);
	dk_model_free(m);
}

static void test_nondeterministic(void **s)
{
	(void)s;
	check_nondeterministic("models/stories260K.gguf", true);
	check_nondeterministic("models/llama-2-tiny-random-F16.gguf", false);
}

static void test_invariance(void **s)
{
	(void)s;
	struct dk_model *m;
	assert_int_equal(dk_model_load(&m, dk_test_shared("models/stories260K.gguf"), NULL), DK_OK);
	const struct dk_tokenizer *tok = dk_model_tokenizer(m);
	int32_t nv = dk_model_info(m)->n_vocab;
	const char *pa = "Once upon a time there was a cat", *pb = "The dog ran to the big red";
	dk_token a[64], bb[64];
	int na = dk_tokenize(tok, pa, strlen(pa), true, false, a, 64);
	int nb = dk_tokenize(tok, pb, strlen(pb), true, false, bb, 64);
	float *a1 = run_alone(m, 1, a, na), *a2 = run_alone(m, 2, a, na), *a3 = run_alone(m, 3, a, na);
	assert_memory_equal(a1, a2, (size_t)nv * sizeof *a1);
	assert_memory_equal(a1, a3, (size_t)nv * sizeof *a1);

	/* the same prompt in one batch with another sequence, token by token
	 * interleaved, and split across calls: the same logits, bit for bit */
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = 128;
	cp.n_seq_max = 4;
	struct dk_ctx *c;
	assert_int_equal(dk_ctx_new(&c, m, &cp), DK_OK);
	struct dk_batch *b = dk_batch_new(128);
	int ia = 0, ib = 0;
	int32_t la = -1;
	while (ia < na) {
		dk_batch_clear(b);
		for (int k = 0; k < 3 && ia < na; k++, ia++) {
			if (ia == na - 1)
				la = b->n_tokens;
			dk_batch_add(b, a[ia], ia, 2, ia == na - 1);
			if (ib < nb) {
				dk_batch_add(b, bb[ib], ib, 0, true);
				ib++;
			}
		}
		assert_int_equal(dk_decode(c, b), DK_OK);
	}
	assert_memory_equal(a1, dk_logits(c, la), (size_t)nv * sizeof *a1);

	/* a sequence forked from a and then fed the same token gives the same
	 * logits as a itself */
	assert_int_equal(dk_kv_seq_fork(c, 2, 3), DK_OK);
	assert_int_equal(dk_kv_seq_len(c, 3), na);
	dk_batch_clear(b);
	dk_batch_add(b, 13, na, 2, true);
	dk_batch_add(b, 13, na, 3, true);
	assert_int_equal(dk_decode(c, b), DK_OK);
	assert_memory_equal(dk_logits(c, 0), dk_logits(c, 1), (size_t)nv * sizeof(float));

	/* bad batches are refused without changing anything */
	dk_batch_clear(b);
	dk_batch_add(b, 5, 7, 1, true); /* position gap */
	assert_int_equal(dk_decode(c, b), DK_SKIP);
	assert_non_null(strstr(dk_ctx_error(c), "position 7 given where 0 comes next"));
	dk_batch_clear(b);
	dk_batch_add(b, nv + 5, 0, 1, true);
	assert_int_equal(dk_decode(c, b), DK_SKIP);
	dk_batch_clear(b);
	dk_batch_add(b, 5, 0, 9, true);
	assert_int_equal(dk_decode(c, b), DK_SKIP);
	assert_int_equal(dk_kv_seq_len(c, 1), 0);

	dk_batch_free(b);
	dk_ctx_free(c);
	free(a1); free(a2); free(a3);
	dk_model_free(m);
}

/* Nine sequences prefilled in one batch and then decoded together, one
 * token each per step: a batch of this many runs gives each task all KV
 * heads of a run, and each task ropes and stores its own rows and
 * converts its output for the next matrix.  Every sequence's logits must
 * equal the same tokens decoded alone, bit for bit. */
static void many_sequences(const char *model)
{
	struct dk_model *m;
	assert_int_equal(dk_model_load(&m, dk_test_shared(model), NULL), DK_OK);
	int32_t nv = dk_model_info(m)->n_vocab;
	enum { S = 9, STEPS = 3 };
	dk_token ids[S][40];
	int len[S];
	for (int q = 0; q < S; q++) {
		len[q] = 5 + 2 * q;
		for (int k = 0; k < len[q] + STEPS; k++)
			ids[q][k] = (dk_token)(1 + (q * 37 + k * 11) % (nv - 1));
	}
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = 64;
	cp.n_seq_max = S;
	cp.n_threads = 2;
	struct dk_ctx *c;
	assert_int_equal(dk_ctx_new(&c, m, &cp), DK_OK);
	struct dk_batch *b = dk_batch_new(512);
	for (int q = 0; q < S; q++)
		for (int k = 0; k < len[q]; k++)
			dk_batch_add(b, ids[q][k], k, q, false);
	assert_int_equal(dk_decode(c, b), DK_OK);
	for (int st = 0; st < STEPS; st++) {
		dk_batch_clear(b);
		for (int q = 0; q < S; q++)
			dk_batch_add(b, ids[q][len[q] + st], len[q] + st, q, true);
		assert_int_equal(dk_decode(c, b), DK_OK);
	}
	for (int q = 0; q < S; q++) {
		float *alone = run_alone(m, 1, ids[q], len[q] + STEPS);
		assert_memory_equal(alone, dk_logits(c, q), (size_t)nv * sizeof *alone);
		free(alone);
	}
	dk_batch_free(b);
	dk_ctx_free(c);
	dk_model_free(m);
}

static void test_many_sequences_stories(void **s)
{
	(void)s;
	many_sequences("models/stories260K.gguf");
}

static void test_many_sequences_tiny(void **s)
{
	(void)s;
	many_sequences("models/llama-2-tiny-random-F16.gguf");
}

static void test_load_errors(void **s)
{
	(void)s;
	struct dk_model *m;
	/* a vocab-only file has no weights */
	assert_int_equal(dk_model_load(&m, dk_test_shared("vocab/ggml-vocab-llama-spm.gguf"), NULL),
			 DK_FATAL);
	assert_non_null(strstr(dk_model_error(m), "ggml-vocab-llama-spm.gguf"));
	dk_model_free(m);
	assert_int_equal(dk_model_load(&m, "/nonexistent.gguf", NULL), DK_FATAL);
	assert_non_null(strstr(dk_model_error(m), "cannot load '/nonexistent.gguf'"));
	dk_model_free(m);
	/* a context longer than the model was trained for */
	assert_int_equal(dk_model_load(&m, dk_test_shared("models/stories260K.gguf"), NULL), DK_OK);
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = 4096;
	struct dk_ctx *c;
	assert_int_equal(dk_ctx_new(&c, m, &cp), DK_FATAL);
	assert_non_null(strstr(dk_ctx_error(c), "exceeds the model's trained context (2048)"));
	dk_ctx_free(c);
	/* a kv cache that cannot fit in memory is refused up front */
	cp.n_ctx = 2048;
	cp.n_seq_max = 1 << 20;
	assert_int_equal(dk_ctx_new(&c, m, &cp), DK_FATAL);
	assert_non_null(strstr(dk_ctx_error(c), "MiB available"));
	dk_ctx_free(c);
	dk_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greedy_stories_f32kv),
		cmocka_unit_test(test_greedy_stories_f16kv),
		cmocka_unit_test(test_greedy_tiny_f32kv),
		cmocka_unit_test(test_greedy_tiny_f16kv),
		cmocka_unit_test(test_ppl_stories),
		cmocka_unit_test(test_ppl_tiny),
		cmocka_unit_test(test_invariance),
		cmocka_unit_test(test_nondeterministic),
		cmocka_unit_test(test_many_sequences_stories),
		cmocka_unit_test(test_many_sequences_tiny),
		cmocka_unit_test(test_load_errors),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
