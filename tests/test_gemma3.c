/*
 * Gemma 3 (issue 20).
 *
 *  - tiny-gemma3 (bench_gen_gguf: random weights, Gemma 3's layer with a
 *    sliding window of 8 positions on two layers of three): with prompts
 *    well past the window, a sequence's logits are the same bits whether
 *    its prompt comes in one call, in pieces or token by token, on 1 or 3
 *    threads, alone or beside other sequences, with either cache type, and
 *    at every kernel level (each level in a child, as in test_levels).
 *  - gemma-3-270m Q4_K_M (scripts/fetch-model.sh gemma3-270m): the
 *    tokenizer gives llama.cpp's prompt ids; teacher-forced, the greedy
 *    token is llama.cpp's at every step but near-ties and the top-10
 *    probabilities are close (shared/reference/greedy-real); perplexity on
 *    ppl-text.txt is within 0.5% of llama-perplexity's (perplexity-real);
 *    the last logits of a prompt past the 512-position window do not
 *    depend on its batches; and the levels give the same bits on it too.
 *
 * A model that cannot be had (no ../shared for the tokenizer of the tiny
 * one, a fetch that fails) skips its test, exit 77; under CI=true it fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "docket/model.h"
#include "docket/perplexity.h"
#include "docket/sampler.h"
#include "engine/kernels/quant.h"
#include "testutil.h"

static char self[4096];

/* ------------------------------------------------------------ the models */

static const char *tiny_model(void)
{
	static char path[4200];
	if (path[0])
		return path;
	const char *vocab = dk_test_shared("models/stories260K.gguf");
	char *dir = dk_test_tmpdir();
	assert_non_null(dir);
	snprintf(path, sizeof path, "%s/tiny-gemma3.gguf", dir);
	free(dir);
	const char *bd = getenv("DK_BUILD_DIR");
	char cmd[12000];
	snprintf(cmd, sizeof cmd,
		 "'%s/bench/bench_gen_gguf' --shape tiny-gemma3 --type q8_0 --vocab-from '%s' "
		 "--out '%s' --seed 11 2>&1",
		 bd && *bd ? bd : ".", vocab, path);
	char *out = NULL;
	int rc = dk_test_run(cmd, &out);
	if (rc != 0) {
		path[0] = 0;
		fail_msg("bench_gen_gguf: exit %d: %s", rc, out ? out : "");
	}
	free(out);
	return path;
}

/* The real model through the fetch script: when it cannot be had, skip
 * (under CI=true fail). */
static const char *real_model(void)
{
	static char path[4096];
	static bool tried;
	if (tried) {
		if (!path[0])
			dk_test_skip("gemma-3-270m-q4_k_m.gguf could not be fetched (see above)");
		return path;
	}
	tried = true;
	char cmd[4300];
	snprintf(cmd, sizeof cmd, "'%s' gemma3-270m", dk_test_src("scripts/fetch-model.sh"));
	char *out = NULL;
	int rc = dk_test_run(cmd, &out);
	if (rc == 0 && out) {
		out[strcspn(out, "\n")] = 0;
		snprintf(path, sizeof path, "%s", out);
	}
	free(out);
	if (rc != 0 || !path[0] || access(path, R_OK)) {
		path[0] = 0;
		if (dk_test_in_ci())
			fail_msg("scripts/fetch-model.sh gemma3-270m failed (exit %d); under CI=true "
				 "the model must be there",
				 rc);
		dk_test_skip("scripts/fetch-model.sh gemma3-270m failed (exit %d): the real Gemma 3 "
			     "is not checked",
			     rc);
	}
	return path;
}

static void decode_ok(struct dk_ctx *c, const struct dk_batch *b)
{
	if (dk_decode(c, b) != DK_OK)
		fail_msg("decode: %s", dk_ctx_error(c));
}

/* ------------------------------------------------- invariance (tiny model) */

/* Logits of tokens from..n-1 of ids[0..n) in a fresh context, the prompt
 * fed `piece` tokens per call; with `mate`, every call also carries one
 * token of another sequence. */
static float *logits_from(struct dk_model *m, const dk_token *ids, int n, int from, int piece,
			  int threads, enum dk_ttype kv, bool mate)
{
	const int32_t nv = dk_model_info(m)->n_vocab;
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = n + 16;
	cp.n_seq_max = 3;
	cp.n_batch = piece + 1;
	cp.n_threads = threads;
	cp.kv_type = kv;
	cp.prefix_cache = false;
	struct dk_ctx *c;
	if (dk_ctx_new(&c, m, &cp) != DK_OK)
		fail_msg("ctx: %s", dk_ctx_error(c));
	struct dk_batch *b = dk_batch_new(piece + 1);
	float *out = malloc((size_t)(n - from) * (size_t)nv * sizeof *out);
	assert_non_null(out);
	int mate_pos = 0;
	for (int k0 = 0; k0 < n; k0 += piece) {
		int k1 = k0 + piece < n ? k0 + piece : n;
		dk_batch_clear(b);
		if (mate)
			dk_batch_add(b, ids[(mate_pos * 7) % n], mate_pos, 2, true), mate_pos++;
		int32_t first = b->n_tokens;
		for (int k = k0; k < k1; k++)
			dk_batch_add(b, ids[k], k, 1, k >= from);
		decode_ok(c, b);
		for (int k = k0 > from ? k0 : from; k < k1; k++)
			memcpy(out + (size_t)(k - from) * nv, dk_logits(c, first + k - k0),
			       (size_t)nv * sizeof *out);
	}
	dk_batch_free(b);
	dk_ctx_free(c);
	return out;
}

static int tiny_prompt(const struct dk_model *m, dk_token *ids, int cap)
{
	const char *text = "Once upon a time there was a little girl named Lily. She loved to play "
			   "outside in the sun with her dog. One day she saw a big red ball in the "
			   "park and ran to get it, but the ball rolled into the pond and she was sad. "
			   "Her mom came and helped her get the ball out of the water.";
	return dk_tokenize(dk_model_tokenizer(m), text, strlen(text), true, false, ids, cap);
}

static void test_tiny_invariance(void **state)
{
	(void)state;
	struct dk_model *m;
	if (dk_model_load(&m, tiny_model(), NULL) != DK_OK)
		fail_msg("%s", dk_model_error(m));
	const struct dk_model_info *hp = dk_model_info(m);
	assert_string_equal(hp->arch, "gemma3");
	assert_int_equal(hp->n_swa, 8);
	assert_true(hp->embd_scale == 8.0f); /* sqrt(64) */
	dk_token ids[200];
	int n = tiny_prompt(m, ids, 200);
	assert_true(n > 6 * hp->n_swa);
	const size_t bytes = (size_t)n * (size_t)hp->n_vocab * sizeof(float);
	const enum dk_ttype kvs[2] = {DK_TYPE_F32, DK_TYPE_F16};
	for (int kv = 0; kv < 2; kv++) {
		float *one = logits_from(m, ids, n, 0, 127, 1, kvs[kv], false);
		/* runs of attention are at most 32 tokens: 128 crosses them */
		const struct { int piece, threads; bool mate; } ways[] = {
			{127, 3, false}, {5, 1, false}, {1, 2, false}, {7, 3, true}, {33, 2, true},
		};
		for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
			float *got = logits_from(m, ids, n, 0, ways[w].piece, ways[w].threads, kvs[kv],
						 ways[w].mate);
			if (memcmp(one, got, bytes)) {
				size_t i = 0;
				while (!memcmp(&one[i], &got[i], sizeof *got))
					i++;
				fail_msg("kv %s, pieces of %d, %d threads%s: token %zu's logits differ from "
					 "the prompt in one call",
					 kv ? "f16" : "f32", ways[w].piece, ways[w].threads,
					 ways[w].mate ? ", a batch mate" : "", i / (size_t)hp->n_vocab);
			}
			free(got);
		}
		free(one);
	}
	dk_model_free(m);
}

/* The real model past its 512-position window: the last tokens of a 560-
 * token prompt in calls of up to 511 on 2 threads, and in calls of 37 on 1
 * thread beside another sequence: the same bits. */
static void test_real_invariance(void **state)
{
	(void)state;
	struct dk_model *m;
	if (dk_model_load(&m, real_model(), NULL) != DK_OK)
		fail_msg("%s", dk_model_error(m));
	assert_int_equal(dk_model_info(m)->n_swa, 512);
	size_t len;
	char *text = dk_test_read_file(dk_test_shared("reference/ppl-text.txt"), &len);
	assert_non_null(text);
	enum { N = 560, FROM = N - 4 };
	dk_token *ids = malloc((len + 8) * sizeof *ids);
	int n = dk_tokenize(dk_model_tokenizer(m), text, len, true, false, ids, (int)len + 8);
	assert_true(n >= N);
	const size_t bytes = (size_t)(N - FROM) * (size_t)dk_model_info(m)->n_vocab * sizeof(float);
	float *a = logits_from(m, ids, N, FROM, 511, 2, DK_TYPE_F32, false);
	float *b = logits_from(m, ids, N, FROM, 37, 1, DK_TYPE_F32, true);
	if (memcmp(a, b, bytes))
		fail_msg("gemma-3-270m: the last logits of a %d-token prompt depend on its batches", N);
	free(a), free(b), free(ids), free(text);
	dk_model_free(m);
}

/* ---------------------------------------------------- levels (children) */

/* Whose logits a level writes: every prompt token's of a small vocabulary,
 * every 16th and the last of a large one. */
static bool wanted(int k, int n, int32_t nv)
{
	return nv <= 4096 || k % 16 == 0 || k == n - 1;
}

/* What one level computes into path: the prompt's logits (wanted) and 8
 * greedy steps, with each cache type. */
static int child(const char *model, const char *level, const char *path)
{
	if (strcmp(dk_quant_level_name(dk_quant_level()), level)) {
		fprintf(stderr, "asked for level %s, running %s\n", level,
			dk_quant_level_name(dk_quant_level()));
		return 3;
	}
	struct dk_model *m;
	if (dk_model_load(&m, model, NULL) != DK_OK) {
		fprintf(stderr, "%s\n", dk_model_error(m));
		return 2;
	}
	const int32_t nv = dk_model_info(m)->n_vocab;
	FILE *f = fopen(path, "wb");
	if (!f)
		return 2;
	dk_token ids[256];
	int n = tiny_prompt(m, ids, 200);
	for (int kv = 0; kv < 2; kv++) {
		struct dk_ctx_params cp = dk_ctx_default_params();
		cp.n_ctx = 256;
		cp.n_batch = 128;
		cp.n_threads = 2;
		cp.kv_type = kv ? DK_TYPE_F16 : DK_TYPE_F32;
		cp.prefix_cache = false;
		struct dk_ctx *c;
		if (dk_ctx_new(&c, m, &cp) != DK_OK) {
			fprintf(stderr, "ctx: %s\n", dk_ctx_error(c));
			return 2;
		}
		struct dk_batch *b = dk_batch_new(128);
		for (int k0 = 0; k0 < n; k0 += 128) {
			dk_batch_clear(b);
			int k1 = k0 + 128 < n ? k0 + 128 : n;
			for (int k = k0; k < k1; k++)
				dk_batch_add(b, ids[k], k, 0, wanted(k, n, nv));
			if (dk_decode(c, b) != DK_OK)
				return 2;
			for (int k = k0; k < k1; k++)
				if (wanted(k, n, nv) &&
				    fwrite(dk_logits(c, k - k0), sizeof(float), (size_t)nv, f) != (size_t)nv)
					return 2;
		}
		int32_t last = (n - 1) % 128, pos = n;
		for (int step = 0; step < 8; step++) {
			dk_token t = dk_argmax(dk_logits(c, last), nv);
			dk_batch_clear(b);
			dk_batch_add(b, t, pos++, 0, true);
			if (dk_decode(c, b) != DK_OK ||
			    fwrite(dk_logits(c, 0), sizeof(float), (size_t)nv, f) != (size_t)nv)
				return 2;
			last = 0;
		}
		dk_batch_free(b);
		dk_ctx_free(c);
	}
	dk_model_free(m);
	return fclose(f) ? 2 : 0;
}

static int run_level(const char *model, const char *level, const char *path)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		setenv("DOCKET_KERNELS", level, 1);
		execl(self, self, "--child", model, level, path, (char *)NULL);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void check_levels(const char *model)
{
	char *dir = dk_test_tmpdir();
	char *ref = NULL;
	size_t nref = 0;
	for (int level = DK_KERNELS_REF; level <= DK_KERNELS_AVX512; level++) {
		const char *name = dk_quant_level_name(level);
		if (!dk_quant_traits_level(DK_TYPE_F32, level)) {
			print_message("level %s: this CPU lacks it, not compared\n", name);
			continue;
		}
		char path[4200];
		snprintf(path, sizeof path, "%s/%s.bin", dir, name);
		int rc = run_level(model, name, path);
		if (rc != 0)
			fail_msg("%s at level %s: child exited %d", model, name, rc);
		size_t n;
		char *got = dk_test_read_file(path, &n);
		assert_non_null(got);
		unlink(path);
		if (!ref) {
			ref = got;
			nref = n;
			continue;
		}
		assert_int_equal(n, nref);
		if (memcmp(got, ref, n))
			fail_msg("%s: level %s differs from ref", model, name);
		print_message("%s: level %s bit-identical to ref (%zu bytes of logits)\n", model, name, n);
		free(got);
	}
	free(ref);
	rmdir(dir);
	free(dir);
}

static void test_tiny_levels(void **state)
{
	(void)state;
	check_levels(tiny_model());
}

static void test_real_levels(void **state)
{
	(void)state;
	check_levels(real_model());
}

/* ------------------------------------------- the real model vs llama.cpp */

/* Gemma 3 270M Q4_K_M amplifies the smallest numerical difference (its
 * activations are rounded to 8 bits before every product, and a flipped
 * rounding moves the next layer): llama.cpp itself, the same build and
 * flags with the same tokens fed in other batches, or without weight
 * repacking, differs from its own reference at 5-7 of these 384 teacher-
 * forced steps (gaps up to 0.147 nats), its top-3 log-probabilities by 0.075-
 * 0.083 on average and its probabilities by up to 0.115.  The bounds are
 * about 1.5x docket's own figures (in the comments), which are of that
 * kind: a real fault in a layer moves them by far more. */
#define MAX_DIFFER 16      /* steps whose greedy token is not llama.cpp's: 11 */
#define FLIP_GAP 0.5       /* ... each where llama.cpp's top two are closer: 0.28 */
#define MEAN_DLOGP 0.14    /* mean |log p - llama.cpp's| over its top 3: 0.096 */
#define MAX_DP 0.35        /* max |p - llama.cpp's| over its top 10: 0.245 */

static void test_real_greedy(void **state)
{
	(void)state;
	const char *ref = "reference/greedy-real/gemma-3-270m-q4_k_m.greedy.f32kv.json";
	json_error_t je;
	json_t *root = json_load_file(dk_test_shared(ref), 0, &je);
	if (!root)
		fail_msg("cannot read %s: %s", ref, je.text);
	struct dk_model *m;
	if (dk_model_load(&m, real_model(), NULL) != DK_OK)
		fail_msg("%s", dk_model_error(m));
	assert_string_equal(dk_model_sha256(m),
			    json_string_value(json_object_get(root, "model_sha256")));
	const int32_t nv = dk_model_info(m)->n_vocab;
	const struct dk_tokenizer *tok = dk_model_tokenizer(m);
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = 256;
	cp.n_batch = 64;
	cp.kv_type = DK_TYPE_F32;
	cp.n_threads = 2;
	struct dk_ctx *c;
	assert_int_equal(dk_ctx_new(&c, m, &cp), DK_OK);
	struct dk_batch *b = dk_batch_new(64);
	float *probs = malloc((size_t)nv * sizeof *probs);
	double worst = 0, sum_dlogp = 0;
	int steps = 0, differ = 0, n_dlogp = 0;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(root, "results"), i, r) {
		const char *prompt = json_string_value(json_object_get(r, "prompt"));
		json_t *pids = json_object_get(r, "prompt_ids");
		json_t *gen = json_object_get(r, "generated_ids");
		dk_token ids[256];
		int n = dk_tokenize(tok, prompt, strlen(prompt), true, true, ids, 256);
		assert_int_equal(n, (int)json_array_size(pids));
		for (int k = 0; k < n; k++)
			assert_int_equal(ids[k], json_integer_value(json_array_get(pids, (size_t)k)));
		dk_kv_seq_clear(c, 0);
		dk_batch_clear(b);
		for (int k = 0; k < n; k++)
			dk_batch_add(b, ids[k], k, 0, k == n - 1);
		decode_ok(c, b);
		int last = n - 1, pos = n;
		size_t si;
		json_t *st;
		json_array_foreach(json_object_get(r, "steps"), si, st) {
			const float *lg = dk_logits(c, last);
			assert_non_null(lg);
			dk_softmax(lg, probs, nv);
			size_t ti;
			json_t *e;
			json_array_foreach(json_object_get(st, "top"), ti, e) {
				int id = (int)json_integer_value(json_object_get(e, "id"));
				double d = fabs(probs[id] - json_real_value(json_object_get(e, "prob")));
				worst = d > worst ? d : worst;
				if (ti < 3) {
					sum_dlogp += fabs(log(probs[id]) -
							  json_real_value(json_object_get(e, "logprob")));
					n_dlogp++;
				}
			}
			dk_token want = (dk_token)json_integer_value(json_array_get(gen, si));
			int argmax = dk_argmax(lg, nv);
			double gap = json_real_value(json_object_get(st, "top1_top2_logprob_gap"));
			steps++;
			if (argmax != want) {
				differ++;
				print_message("'%.24s' step %zu: greedy %d, llama.cpp %d (its gap %.3g; "
					      "here %.4f vs %.4f)\n",
					      prompt, si, argmax, want, gap, log(probs[argmax]), log(probs[want]));
				if (gap >= FLIP_GAP)
					fail_msg("'%s' step %zu: greedy %d where llama.cpp's %d led by %.3g nats",
						 prompt, si, argmax, want, gap);
			}
			dk_batch_clear(b);
			dk_batch_add(b, want, pos++, 0, true);
			decode_ok(c, b);
			last = 0;
		}
	}
	const double mean = sum_dlogp / n_dlogp;
	print_message("gemma-3-270m: %d of %d teacher-forced steps differ; mean |dlogp| over the top "
		      "3 %.3g, max |dp| over the top 10 %.3g\n",
		      differ, steps, mean, worst);
	assert_int_equal(steps, 384);
	if (differ > MAX_DIFFER || !(mean <= MEAN_DLOGP) || !(worst <= MAX_DP))
		fail_msg("further from llama.cpp than its own variants are: %d steps differ (at most "
			 "%d), mean |dlogp| %.3g (%.3g), max |dp| %.3g (%.3g)",
			 differ, MAX_DIFFER, mean, MEAN_DLOGP, worst, MAX_DP);
	free(probs);
	dk_batch_free(b);
	dk_ctx_free(c);
	dk_model_free(m);
	json_decref(root);
}

/* tol bounds |ppl - llama.cpp's| / llama.cpp's. */
static void check_ppl(int n_ctx, double tol)
{
	const char *ref = "reference/perplexity-real/gemma-3-270m-q4_k_m.f32kv.ppl.json";
	json_error_t je;
	json_t *root = json_load_file(dk_test_shared(ref), 0, &je);
	if (!root)
		fail_msg("cannot read %s: %s", ref, je.text);
	char key[16];
	snprintf(key, sizeof key, "c%d", n_ctx);
	json_t *rc = json_object_get(root, key);
	double want = json_real_value(json_object_get(rc, "final_ppl"));
	assert_true(want > 0);
	struct dk_model *m;
	if (dk_model_load(&m, real_model(), NULL) != DK_OK)
		fail_msg("%s", dk_model_error(m));
	size_t len;
	char *text = dk_test_read_file(dk_test_shared("reference/ppl-text.txt"), &len);
	assert_non_null(text);
	if (len && text[len - 1] == '\n')
		len--;
	dk_token *toks = malloc((len + 8) * sizeof *toks);
	int n = dk_tokenize(dk_model_tokenizer(m), text, len, true, false, toks, (int)len + 8);
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = n_ctx;
	cp.n_batch = n_ctx;
	cp.kv_type = DK_TYPE_F32;
	cp.n_threads = 2;
	cp.prefix_cache = false;
	struct dk_ctx *c;
	assert_int_equal(dk_ctx_new(&c, m, &cp), DK_OK);
	struct dk_ppl_result r;
	assert_int_equal(dk_perplexity(c, toks, n, n_ctx, -1, NULL, NULL, &r), DK_OK);
	assert_int_equal(r.n_chunk, (int)json_integer_value(json_object_get(rc, "n_chunk")));
	double rel = fabs(r.ppl - want) / want;
	print_message("gemma-3-270m -c %d kv f32: PPL %.4f, llama.cpp %.4f (rel %.2e)\n", n_ctx, r.ppl,
		      want, rel);
	if (!(rel <= tol))
		fail_msg("-c %d: relative error %.3g over %.3g", n_ctx, rel, tol);
	dk_ctx_free(c);
	dk_model_free(m);
	free(toks);
	free(text);
	json_decref(root);
}

static void test_real_ppl(void **state)
{
	(void)state;
	check_ppl(128, 5e-3);
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "--child"))
		return child(argv[2], argv[3], argv[4]);
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
	if (k <= 0)
		return 1;
	self[k] = 0;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tiny_invariance),
		cmocka_unit_test(test_tiny_levels),
		cmocka_unit_test(test_real_greedy),
		cmocka_unit_test(test_real_ppl),
		cmocka_unit_test(test_real_invariance),
		cmocka_unit_test(test_real_levels),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
