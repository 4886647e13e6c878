/* The paged KV cache: prefix reuse, fork with copy-on-write, eviction, a
 * full cache, and prefix files — all checked by the logits they produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "docket/model.h"
#include "engine/kernels/quant.h"
#include "testutil.h"

static struct dk_model *model;
static int32_t nv;

static int setup(void **s)
{
	(void)s;
	if (dk_model_load(&model, dk_test_shared("models/stories260K.gguf"), NULL) != DK_OK)
		return -1;
	nv = dk_model_info(model)->n_vocab;
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	dk_model_free(model);
	return 0;
}

static struct dk_ctx *ctx(bool cache, int32_t nseq, int32_t blocks)
{
	struct dk_ctx_params p = dk_ctx_default_params();
	p.n_ctx = 256;
	p.n_seq_max = nseq;
	p.n_batch = 128;
	p.n_threads = 1;
	p.prefix_cache = cache;
	p.kv_blocks = blocks;
	struct dk_ctx *c;
	assert_int_equal(dk_ctx_new(&c, model, &p), DK_OK);
	return c;
}

/* feeds toks[from..n) to seq; returns a copy of the last logits */
static float *feed(struct dk_ctx *c, int32_t seq, const dk_token *toks, int32_t from, int32_t n)
{
	struct dk_batch *b = dk_batch_new(128);
	for (int32_t i = from; i < n; i++)
		dk_batch_add(b, toks[i], i, seq, i == n - 1);
	enum dk_status st = dk_decode(c, b);
	if (st != DK_OK)
		fail_msg("decode: %s", dk_ctx_error(c));
	float *out = malloc((size_t)nv * sizeof *out);
	memcpy(out, dk_logits(c, b->n_tokens - 1), (size_t)nv * sizeof *out);
	dk_batch_free(b);
	return out;
}

static void make_tokens(dk_token *t, int32_t n, uint32_t seed)
{
	for (int32_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		t[i] = (dk_token)(3 + (seed >> 8) % (uint32_t)(nv - 3));
	}
	t[0] = 1; /* BOS */
}

static void test_prefix_reuse(void **s)
{
	(void)s;
	dk_token a[40];
	make_tokens(a, 40, 7);
	struct dk_ctx *c = ctx(true, 4, 0);
	float *l0 = feed(c, 0, a, 0, 40);
	dk_kv_seq_clear(c, 0);
	int32_t k = dk_kv_seq_reuse_prefix(c, 1, a, 40, 39);
	assert_int_equal(k, 32); /* two full blocks; the rest is decoded */
	assert_int_equal(dk_kv_seq_len(c, 1), 32);
	float *l1 = feed(c, 1, a, k, 40);
	assert_memory_equal(l0, l1, (size_t)nv * sizeof *l0);
	struct dk_kv_stats st;
	dk_kv_stats(c, &st);
	assert_int_equal(st.hit_tokens, 32);
	assert_int_equal(st.miss_tokens, 8);
	/* a different prompt that shares only the first block reuses one */
	dk_token b[40];
	memcpy(b, a, sizeof b);
	b[20] = a[20] == 5 ? 6 : 5;
	assert_int_equal(dk_kv_seq_reuse_prefix(c, 2, b, 40, 39), 16);
	/* a non-empty sequence never attaches */
	assert_int_equal(dk_kv_seq_reuse_prefix(c, 1, a, 40, 39), 0);
	/* scoring a continuation after a 32-token prompt reads the logits of
	 * position 31: the second cached block ends past it, so only the first
	 * attaches (attaching both left the continuation's first token unscored) */
	assert_int_equal(dk_kv_seq_reuse_prefix(c, 3, a, 33, 31), 16);
	dk_kv_seq_clear(c, 3);
	assert_int_equal(dk_kv_seq_reuse_prefix(c, 3, a, 33, 32), 32);
	dk_kv_seq_clear(c, 3);
	/* out of range means the last token */
	assert_int_equal(dk_kv_seq_reuse_prefix(c, 3, a, 33, -1), 32);
	dk_ctx_free(c);
	/* cache off: nothing is reused, logits the same */
	c = ctx(false, 2, 0);
	assert_int_equal(dk_kv_seq_reuse_prefix(c, 0, a, 40, 39), 0);
	float *l2 = feed(c, 0, a, 0, 40);
	assert_memory_equal(l0, l2, (size_t)nv * sizeof *l0);
	dk_ctx_free(c);
	free(l0); free(l1); free(l2);
}

static void test_fork_cow(void **s)
{
	(void)s;
	dk_token a[60], x[60], y[60];
	make_tokens(a, 60, 11);
	memcpy(x, a, sizeof x);
	memcpy(y, a, sizeof y);
	for (int i = 37; i < 60; i++) {
		x[i] = 10 + i;
		y[i] = 200 + i;
	}
	/* expected: each continuation computed alone */
	struct dk_ctx *c = ctx(false, 1, 0);
	float *ex = feed(c, 0, x, 0, 60);
	dk_kv_seq_clear(c, 0);
	float *ey = feed(c, 0, y, 0, 60);
	dk_ctx_free(c);

	c = ctx(true, 3, 0);
	free(feed(c, 0, a, 0, 37)); /* 37: the last block is partial */
	assert_int_equal(dk_kv_seq_fork(c, 0, 1), DK_OK);
	assert_int_equal(dk_kv_seq_len(c, 1), 37);
	float *gy = feed(c, 1, y, 37, 60); /* writes into the shared partial block */
	float *gx = feed(c, 0, x, 37, 60);
	assert_memory_equal(ex, gx, (size_t)nv * sizeof *ex);
	assert_memory_equal(ey, gy, (size_t)nv * sizeof *ey);
	assert_int_equal(dk_kv_seq_fork(c, 0, 7), DK_SKIP);
	dk_ctx_free(c);
	free(ex); free(ey); free(gx); free(gy);
}

static void test_eviction_and_full(void **s)
{
	(void)s;
	struct dk_ctx *c = ctx(true, 3, 6); /* 6 blocks = 96 positions */
	dk_token a[64], b[64];
	make_tokens(a, 64, 1);
	make_tokens(b, 64, 2);
	free(feed(c, 0, a, 0, 64)); /* 4 blocks, all cached when full */
	dk_kv_seq_clear(c, 0);      /* cached but unreferenced */
	free(feed(c, 1, b, 0, 64)); /* needs 4: 2 free + 2 evicted */
	struct dk_kv_stats st;
	dk_kv_stats(c, &st);
	assert_int_equal(st.evictions, 2);
	assert_int_equal(st.blocks_used, 4);
	/* with every block referenced, a new sequence cannot start */
	struct dk_batch *bt = dk_batch_new(64);
	for (int i = 0; i < 48; i++)
		dk_batch_add(bt, a[i], i, 2, i == 47);
	assert_int_equal(dk_decode(c, bt), DK_SKIP);
	assert_non_null(strstr(dk_ctx_error(c), "kv cache full"));
	assert_int_equal(dk_kv_seq_len(c, 2), 0);
	dk_batch_free(bt);
	dk_ctx_free(c);
}

static void test_prefix_files(void **s)
{
	(void)s;
	char *dir = dk_test_tmpdir();
	char path[512];
	snprintf(path, sizeof path, "%s/prefix.dkkv", dir);
	dk_token a[40];
	make_tokens(a, 40, 5);
	struct dk_ctx *c = ctx(true, 2, 0);
	float *l0 = feed(c, 0, a, 0, 40);
	int32_t n;
	/* a limit keeps the blocks past it (a document after the
	 * instructions) off the disk */
	assert_int_equal(dk_kv_prefix_save(c, 0, 31, path, &n), DK_OK);
	assert_int_equal(n, 16);
	size_t len16;
	char *b16 = dk_test_read_file(path, &len16);
	free(b16);
	assert_int_equal(dk_kv_prefix_save(c, 0, 15, path, &n), DK_OK);
	assert_int_equal(n, 0);
	assert_int_equal(dk_kv_prefix_save(c, 0, -1, path, &n), DK_OK);
	assert_int_equal(n, 32);
	size_t len32;
	char *b32 = dk_test_read_file(path, &len32);
	free(b32);
	/* 16 more positions: their tokens and one more block of keys/values */
	assert_true(len32 > len16 + 16 * sizeof(dk_token));
	dk_ctx_free(c);

	c = ctx(true, 2, 0);
	assert_int_equal(dk_kv_prefix_load(c, path, &n), DK_OK);
	assert_int_equal(n, 32);
	assert_int_equal(dk_kv_seq_reuse_prefix(c, 1, a, 40, 39), 32);
	float *l1 = feed(c, 1, a, 32, 40);
	assert_memory_equal(l0, l1, (size_t)nv * sizeof *l0);
	dk_ctx_free(c);

	/* another layout (f32 cache) refuses the file */
	struct dk_ctx_params p = dk_ctx_default_params();
	p.n_ctx = 256;
	p.kv_type = DK_TYPE_F32;
	assert_int_equal(dk_ctx_new(&c, model, &p), DK_OK);
	assert_int_equal(dk_kv_prefix_load(c, path, &n), DK_SKIP);
	assert_non_null(strstr(dk_ctx_error(c), "another cache layout"));
	dk_ctx_free(c);
	/* another model refuses it */
	struct dk_model *m2;
	assert_int_equal(dk_model_load(&m2, dk_test_shared("models/llama-2-tiny-random-F16.gguf"), NULL), DK_OK);
	struct dk_ctx *c2;
	p.kv_type = DK_TYPE_F16;
	assert_int_equal(dk_ctx_new(&c2, m2, &p), DK_OK);
	assert_int_equal(dk_kv_prefix_load(c2, path, &n), DK_SKIP);
	assert_non_null(strstr(dk_ctx_error(c2), "another model"));
	dk_ctx_free(c2);
	dk_model_free(m2);
	/* a truncated file is refused, and nothing half-loaded is used */
	size_t len;
	char *bytes = dk_test_read_file(path, &len);
	assert_int_equal(dk_test_write_file(path, bytes, len - 100), 0);
	c = ctx(true, 2, 0);
	assert_int_equal(dk_kv_prefix_load(c, path, &n), DK_SKIP);
	assert_non_null(strstr(dk_ctx_error(c), "truncated"));
	assert_int_equal(dk_kv_prefix_load(c, "/nonexistent/p.dkkv", &n), DK_FATAL);
	/* the file records this context's numerics; blocks computed with
	 * other numerics would round differently */
	assert_string_equal(dk_ctx_numerics(c), "portable");
	assert_memory_equal(bytes + 8 + 64 + 5 * sizeof(uint32_t), "portable", 9);
	char *other = malloc(len);
	assert_non_null(other);
	memcpy(other, bytes, len);
	memcpy(other + 8 + 64 + 5 * sizeof(uint32_t), "kernels=avx2,blas", 18);
	assert_int_equal(dk_test_write_file(path, other, len), 0);
	assert_int_equal(dk_kv_prefix_load(c, path, &n), DK_SKIP);
	assert_non_null(strstr(dk_ctx_error(c), "computed with numerics 'kernels=avx2,blas'"));
	/* an unterminated numerics field is refused, not read past */
	memset(other + 8 + 64 + 5 * sizeof(uint32_t), 'x', 32);
	assert_int_equal(dk_test_write_file(path, other, len), 0);
	assert_int_equal(dk_kv_prefix_load(c, path, &n), DK_SKIP);
	free(other);
	/* a file of the row-wise key layout (format 1) is refused by name */
	memcpy(bytes, "DKKVPFX1", 8);
	assert_int_equal(dk_test_write_file(path, bytes, len), 0);
	assert_int_equal(dk_kv_prefix_load(c, path, &n), DK_SKIP);
	assert_non_null(strstr(dk_ctx_error(c), "another docket version (format 1"));
	assert_int_equal(n, 0);
	dk_ctx_free(c);
	free(bytes);
	/* a process whose prompts may take OpenBLAS (deterministic off) marks
	 * its files, and a deterministic one refuses them */
	struct dk_ctx_params pn = dk_ctx_default_params();
	pn.n_ctx = 256;
	pn.n_threads = 1;
	pn.deterministic = false;
	pn.prefill = DK_PREFILL_BLAS;
	assert_int_equal(dk_ctx_new(&c, model, &pn), DK_OK);
	char want[40];
	snprintf(want, sizeof want, "kernels=%s,blas", dk_quant_level_name(dk_quant_level()));
	assert_string_equal(dk_ctx_numerics(c), want);
	free(feed(c, 0, a, 0, 40));
	assert_int_equal(dk_kv_prefix_save(c, 0, -1, path, &n), DK_OK);
	assert_int_equal(n, 32);
	dk_ctx_free(c);
	c = ctx(true, 2, 0);
	assert_int_equal(dk_kv_prefix_load(c, path, &n), DK_SKIP);
	assert_non_null(strstr(dk_ctx_error(c), "computed with numerics 'kernels="));
	dk_ctx_free(c);
	unlink(path);
	rmdir(dir);
	free(dir);
	free(l0); free(l1);
}

/* two sequences sharing a 32-token prefix and then diverging, computed in
 * one step: the second's own blocks after the shared (duplicate) ones must
 * still enter the cache */
static void test_duplicate_blocks(void **s)
{
	(void)s;
	dk_token x[65], y[65];
	make_tokens(x, 65, 9);
	make_tokens(y, 65, 10);
	memcpy(y, x, 32 * sizeof *y);
	struct dk_ctx *c = ctx(true, 3, 0);
	struct dk_batch *b = dk_batch_new(128);
	for (int32_t i = 0; i < 64; i++) {
		dk_batch_add(b, x[i], i, 0, false);
		dk_batch_add(b, y[i], i, 1, i == 63);
	}
	assert_int_equal(dk_decode(c, b), DK_OK);
	dk_batch_free(b);
	dk_kv_seq_clear(c, 0);
	dk_kv_seq_clear(c, 1);
	assert_int_equal(dk_kv_seq_reuse_prefix(c, 2, y, 65, 64), 64);
	dk_kv_seq_clear(c, 2);
	assert_int_equal(dk_kv_seq_reuse_prefix(c, 2, x, 65, 64), 64);
	dk_ctx_free(c);
}

int main(void)
{
	/* the group setup loads a model from ../shared, and a setup cannot skip */
	dk_test_require(dk_test_shared_root(), "../shared (the shared test data)");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefix_reuse),
		cmocka_unit_test(test_fork_cow),
		cmocka_unit_test(test_eviction_and_full),
		cmocka_unit_test(test_prefix_files),
		cmocka_unit_test(test_duplicate_blocks),
	};
	return dk_test_run_group(tests, setup, teardown);
}
