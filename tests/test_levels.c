/*
 * Kernel levels give bit-identical results (issue 18): the same model and
 * tokens through DOCKET_KERNELS=ref, avx2 and avx512 (each level this CPU
 * has) give the same greedy tokens and the same full logits vectors, bit
 * for bit, on stories260K (F32), llama-2-tiny-random (F16) and the default
 * model (Q4_1 + Q8_0), and tiny random models with rows of whole K super-
 * blocks in each of Q2_K..Q6_K, Q5_0 and Q5_1 (written by bench_gen_gguf):
 * a long prompt in one call (the packed int8 path at AVX-512), a single
 * sequence decoding, and several sequences prefilled and decoded in shared
 * batches, with an F16 and an F32 KV cache.
 *
 * The level is chosen once per process, so each level runs in a child
 * (this executable re-run with --child) that writes its tokens and logits
 * to a file; the parent compares the files byte for byte.
 * A missing model skips its test with a message and the run exits 77;
 * with CI=true a missing model fails instead.  A level the CPU lacks is
 * reported and left out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "docket/model.h"
#include "docket/sampler.h"
#include "engine/kernels/quant.h"
#include "testutil.h"

static bool skipped_any;

static bool in_ci(void)
{
	const char *ci = getenv("CI");
	return ci && !strcmp(ci, "true");
}

/* ------------------------------------------------------------ the child */

static void put(FILE *f, const void *p, size_t n)
{
	if (fwrite(p, 1, n, f) != n) {
		perror("write");
		exit(2);
	}
}

static void put_logits(FILE *f, const float *lg, int32_t nv)
{
	if (!lg) {
		fprintf(stderr, "missing logits\n");
		exit(2);
	}
	put(f, lg, (size_t)nv * sizeof *lg);
}

static const char *const prompts[] = {
	"Once upon a time, there was a little girl who lived in a village near the forest. "
	"Whenever she went out, the little girl wore a red riding cloak, so everyone in the "
	"village called her Little Red Riding Hood. One morning, her mother asked her to take "
	"a basket of fresh bread and butter to her grandmother, who lived on the other side of "
	"the wood and had been ill for a week.",
	"The budget vote was postponed again today as ministers failed to agree on",
	"Tom and his dog went to the park",
	"Write a short poem about the sea:",
};

static void decode_or_die(struct dk_ctx *c, const struct dk_batch *b)
{
	if (dk_decode(c, b) != DK_OK) {
		fprintf(stderr, "decode: %s\n", dk_ctx_error(c));
		exit(2);
	}
}

/* Everything one level computes, in a fixed order, into path. */
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
	const struct dk_tokenizer *tok = dk_model_tokenizer(m);
	FILE *f = fopen(path, "wb");
	if (!f)
		return 2;
	dk_token ids[4][512];
	int n[4];
	for (int p = 0; p < 4; p++)
		n[p] = dk_tokenize(tok, prompts[p], strlen(prompts[p]), true, false, ids[p], 512);
	const enum dk_ttype kvs[2] = {DK_TYPE_F16, DK_TYPE_F32};
	for (int kv = 0; kv < 2; kv++) {
		struct dk_ctx_params cp = dk_ctx_default_params();
		cp.n_ctx = 256;
		cp.n_seq_max = 4;
		cp.n_batch = 256;
		cp.n_threads = 2;
		cp.kv_type = kvs[kv];
		cp.prefix_cache = false;
		struct dk_ctx *c;
		if (dk_ctx_new(&c, m, &cp) != DK_OK) {
			fprintf(stderr, "ctx: %s\n", dk_ctx_error(c));
			return 2;
		}
		struct dk_batch *b = dk_batch_new(256);
		/* 1: the long prompt in one call, logits of every 16th token and
		 * the last; then one sequence decoding greedily */
		dk_batch_clear(b);
		for (int k = 0; k < n[0]; k++)
			dk_batch_add(b, ids[0][k], k, 0, k % 16 == 0 || k == n[0] - 1);
		decode_or_die(c, b);
		for (int k = 0; k < n[0]; k++)
			if (k % 16 == 0 || k == n[0] - 1)
				put_logits(f, dk_logits(c, k), nv);
		int32_t last = n[0] - 1;
		for (int step = 0; step < 8; step++) {
			const float *lg = dk_logits(c, last);
			put_logits(f, lg, nv);
			dk_token t = dk_argmax(lg, nv);
			put(f, &t, sizeof t);
			dk_batch_clear(b);
			dk_batch_add(b, t, n[0] + step, 0, true);
			decode_or_die(c, b);
			last = 0;
		}
		put_logits(f, dk_logits(c, 0), nv);
		dk_kv_seq_clear(c, 0);
		/* 2: three sequences prefilled in one batch, then decoded
		 * together, one token each per call */
		dk_batch_clear(b);
		int32_t at[4], len[4];
		for (int s = 1; s <= 3; s++) {
			for (int k = 0; k < n[s]; k++) {
				if (k == n[s] - 1)
					at[s] = b->n_tokens;
				dk_batch_add(b, ids[s][k], k, s, k == n[s] - 1);
			}
			len[s] = n[s];
		}
		decode_or_die(c, b);
		for (int step = 0; step < 6; step++) {
			dk_token t[4];
			for (int s = 1; s <= 3; s++) {
				const float *lg = dk_logits(c, at[s]);
				put_logits(f, lg, nv);
				t[s] = dk_argmax(lg, nv);
				put(f, &t[s], sizeof t[s]);
			}
			dk_batch_clear(b);
			for (int s = 1; s <= 3; s++) {
				at[s] = b->n_tokens;
				dk_batch_add(b, t[s], len[s]++, s, true);
			}
			decode_or_die(c, b);
		}
		for (int s = 1; s <= 3; s++)
			put_logits(f, dk_logits(c, at[s]), nv);
		dk_batch_free(b);
		dk_ctx_free(c);
	}
	dk_model_free(m);
	return fclose(f) ? 2 : 0;
}

/* ------------------------------------------------------------ the parent */

static char self[4096];

/* Runs the child at level into path; returns its exit status. */
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

static void check_model(const char *model)
{
	if (!model || access(model, R_OK)) {
		if (in_ci())
			fail_msg("model %s missing (CI=true: a missing model fails)", model ? model : "(default)");
		print_message("model %s not present: skipped\n", model ? model : "(default, not fetched)");
		skipped_any = true;
		skip();
	}
	char *dir = dk_test_tmpdir();
	char *ref = NULL;
	size_t nref = 0;
	int compared = 0;
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
		if (memcmp(got, ref, n)) {
			size_t i = 0;
			while (got[i] == ref[i])
				i++;
			fail_msg("%s: level %s differs from ref at byte %zu of %zu", model, name, i, n);
		}
		print_message("%s: level %s bit-identical to ref (%zu bytes of tokens and logits)\n",
			      model, name, n);
		free(got);
		compared++;
	}
	free(ref);
	rmdir(dir);
	free(dir);
	if (!compared)
		print_message("only one kernel level on this CPU: nothing to compare\n");
}

static void test_stories260k(void **state)
{
	(void)state;
	check_model(dk_test_shared("models/stories260K.gguf"));
}

static void test_llama_tiny_f16(void **state)
{
	(void)state;
	check_model(dk_test_shared("models/llama-2-tiny-random-F16.gguf"));
}

static void test_default_model(void **state)
{
	(void)state;
	check_model(dk_test_default_model());
}

/* Q2_K..Q6_K, Q5_0, Q5_1: every matrix of the tiny-k shape in that type */
static void test_k_formats(void **state)
{
	(void)state;
	const char *bd = getenv("DK_BUILD_DIR");
	char gen[4200];
	snprintf(gen, sizeof gen, "%s/bench/bench_gen_gguf", bd ? bd : ".");
	if (!bd || access(gen, X_OK)) {
		if (in_ci())
			fail_msg("%s not built (CI=true: fails)", gen);
		print_message("%s not built: skipped\n", gen);
		skipped_any = true;
		skip();
	}
	const char *vocab = dk_test_shared("models/stories260K.gguf");
	if (!vocab || access(vocab, R_OK)) {
		if (in_ci())
			fail_msg("stories260K missing (CI=true: fails)");
		print_message("stories260K not present: skipped\n");
		skipped_any = true;
		skip();
	}
	static const char *const types[] = { "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q5_0", "q5_1" };
	char *dir = dk_test_tmpdir();
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		char model[4300], cmd[13000];
		snprintf(model, sizeof model, "%s/tiny-k-%s.gguf", dir, types[i]);
		snprintf(cmd, sizeof cmd, "'%s' --shape tiny-k --type %s --vocab-from '%s' --out '%s' 2>&1",
			 gen, types[i], vocab, model);
		char *out = NULL;
		int rc = dk_test_run(cmd, &out);
		if (rc != 0)
			fail_msg("%s: exit %d: %s", cmd, rc, out ? out : "");
		free(out);
		check_model(model);
		unlink(model);
	}
	rmdir(dir);
	free(dir);
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
		cmocka_unit_test(test_stories260k),
		cmocka_unit_test(test_llama_tiny_f16),
		cmocka_unit_test(test_default_model),
		cmocka_unit_test(test_k_formats),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (rc == 0 && skipped_any) {
		fprintf(stderr, "test_levels: a model is missing: skipped (exit 77)\n");
		return 77;
	}
	return rc;
}
