/* GGUF reader: real files, every value type, and hostile/truncated input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/gguf.h"
#include "testutil.h"
#include "util/buf.h"

static void test_stories(void **state)
{
	(void)state;
	struct dk_gguf *g;
	assert_int_equal(dk_gguf_open(&g, dk_test_shared("models/stories260K.gguf")), DK_OK);
	assert_int_equal(dk_gguf_version(g), 3);
	assert_int_equal(dk_gguf_n_tensors(g), 48);
	assert_int_equal(dk_gguf_n_kv(g), 19);
	assert_int_equal(dk_gguf_alignment(g), 32);
	const char *s;
	size_t n;
	assert_true(dk_gguf_get_str(g, "general.architecture", &s, &n));
	assert_int_equal(n, 5);
	assert_memory_equal(s, "llama", 5);
	uint32_t u;
	assert_true(dk_gguf_get_u32(g, "llama.embedding_length", &u));
	assert_int_equal(u, 64);
	assert_true(dk_gguf_get_u32(g, "llama.feed_forward_length", &u));
	assert_int_equal(u, 172);
	assert_false(dk_gguf_get_u32(g, "general.architecture", &u)); /* wrong type */
	assert_false(dk_gguf_get_u32(g, "no.such.key", &u));
	enum dk_gguf_vtype et;
	uint64_t cnt;
	assert_true(dk_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &cnt));
	assert_int_equal(et, DK_GGUF_STRING);
	assert_int_equal(cnt, 512);
	assert_true(dk_gguf_arr_str(g, "tokenizer.ggml.tokens", 1, &s, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(s, "<s>", 3);
	assert_false(dk_gguf_arr_str(g, "tokenizer.ggml.tokens", 512, &s, &n));
	const struct dk_gguf_tensor *t = dk_gguf_tensor_by_name(g, "blk.0.ffn_down.weight");
	assert_non_null(t);
	assert_int_equal(t->type, DK_TYPE_F32);
	assert_int_equal(t->ne[0], 172);
	assert_int_equal(t->ne[1], 64);
	assert_int_equal(t->nbytes, 172 * 64 * 4);
	/* the last tensor ends exactly at the end of the file */
	size_t end = 0;
	for (int64_t i = 0; i < dk_gguf_n_tensors(g); i++) {
		const struct dk_gguf_tensor *x = dk_gguf_tensor(g, i);
		size_t e = (size_t)((const char *)x->data - (const char *)dk_gguf_tensor(g, 0)->data) + x->nbytes;
		if (e > end)
			end = e;
	}
	assert_int_equal(end + 14176, dk_gguf_file_size(g));
	dk_gguf_free(g);
}

static void test_f16_model(void **state)
{
	(void)state;
	struct dk_gguf *g;
	assert_int_equal(dk_gguf_open(&g, dk_test_shared("models/llama-2-tiny-random-F16.gguf")), DK_OK);
	const struct dk_gguf_tensor *t = dk_gguf_tensor_by_name(g, "output.weight");
	assert_non_null(t);
	assert_int_equal(t->type, DK_TYPE_F16);
	assert_int_equal(t->ne[0], 8);
	assert_int_equal(t->ne[1], 32000);
	dk_gguf_free(g);
}

static char *read_seed(size_t *n)
{
	char *p = dk_test_read_file(dk_test_src("tests/fuzz/seeds/fuzz_gguf/small-header.bin"), n);
	assert_non_null(p);
	return p;
}

static void test_all_value_types(void **state)
{
	(void)state;
	size_t n;
	char *p = read_seed(&n);
	assert_non_null(p);
	struct dk_gguf *g;
	assert_int_equal(dk_gguf_open_memory(&g, p, n, "small.gguf"), DK_OK);
	int64_t v;
	assert_true(dk_gguf_get_i64(g, "a.i16", &v));
	assert_int_equal(v, -5);
	assert_true(dk_gguf_get_i64(g, "a.i64", &v));
	assert_int_equal(v, -1);
	uint32_t u;
	assert_false(dk_gguf_get_u32(g, "a.i64", &u)); /* negative does not fit */
	float f;
	assert_true(dk_gguf_get_f32(g, "a.f64", &f));
	assert_true(f == 1.5f);
	bool b;
	assert_true(dk_gguf_get_bool(g, "a.bool", &b));
	assert_true(b);
	const char *s;
	size_t len;
	assert_true(dk_gguf_arr_str(g, "a.arr", 1, &s, &len));
	assert_int_equal(len, 2);
	assert_memory_equal(s, "yz", 2);
	enum dk_gguf_vtype et;
	uint64_t cnt;
	assert_true(dk_gguf_get_arr(g, "a.nested", &et, &cnt));
	assert_int_equal(et, DK_GGUF_ARRAY);
	assert_int_equal(cnt, 1);
	char buf[256];
	assert_string_equal(dk_gguf_kv_render(g, dk_gguf_find(g, "a.arr"), buf, sizeof buf),
			    "[str x 2] 'x', 'yz'");
	const struct dk_gguf_tensor *t = dk_gguf_tensor_by_name(g, "n");
	assert_non_null(t);
	float first;
	memcpy(&first, t->data, 4);
	assert_true(first == 1.0f);
	dk_gguf_free(g);
	free(p);
}

/* Every truncation of a valid file must fail with a message, never crash. */
static void test_truncations(void **state)
{
	(void)state;
	size_t n;
	char *p = read_seed(&n);
	for (size_t k = 0; k < n; k++) {
		char *q = malloc(k ? k : 1);
		memcpy(q, p, k);
		struct dk_gguf *g;
		enum dk_status st = dk_gguf_open_memory(&g, q, k, "cut.gguf");
		assert_int_equal(st, DK_FATAL);
		assert_non_null(strstr(dk_gguf_error(g), "cannot load 'cut.gguf': "));
		dk_gguf_free(g);
		free(q);
	}
	free(p);
}

static void expect_fail(const char *p, size_t n, const char *needle)
{
	struct dk_gguf *g;
	assert_int_equal(dk_gguf_open_memory(&g, p, n, "bad.gguf"), DK_FATAL);
	if (!strstr(dk_gguf_error(g), needle))
		fail_msg("message '%s' lacks '%s'", dk_gguf_error(g), needle);
	dk_gguf_free(g);
}

static void test_hostile(void **state)
{
	(void)state;
	size_t n;
	char *p = read_seed(&n);
	char *q = malloc(n);
	memcpy(q, p, n); q[0] = 'X';
	expect_fail(q, n, "bad magic");
	memcpy(q, p, n); q[4] = 1;
	expect_fail(q, n, "unsupported GGUF version 1");
	memcpy(q, p, n); memset(q + 8, 0xff, 8); /* n_tensors huge */
	expect_fail(q, n, "exceed the file size");
	memcpy(q, p, n); memset(q + 24, 0xff, 8); /* first key length huge */
	expect_fail(q, n, "truncated");
	/* tensor type id: find the tensor "w" info and corrupt its type */
	memcpy(q, p, n);
	char *w = memmem(q, n, "\x01\0\0\0\0\0\0\0w", 9);
	assert_non_null(w);
	uint32_t bad = 77;
	memcpy(w + 9 + 4 + 16, &bad, 4);
	expect_fail(q, n, "unsupported type 77");
	/* row not a multiple of the block: ne0 = 31 for q8_0 */
	memcpy(q, p, n);
	uint64_t ne0 = 31;
	memcpy(w + 9 + 4, &ne0, 8);
	expect_fail(q, n, "not a multiple");
	/* offset outside the file */
	memcpy(q, p, n);
	uint64_t off = 1u << 20;
	memcpy(w + 9 + 4 + 16 + 4, &off, 8);
	expect_fail(q, n, "outside the file");
	/* misaligned offset */
	memcpy(q, p, n);
	off = 3;
	memcpy(w + 9 + 4 + 16 + 4, &off, 8);
	expect_fail(q, n, "not aligned");
	free(q);
	free(p);

	struct dk_gguf *g;
	assert_int_equal(dk_gguf_open(&g, "/nonexistent/x.gguf"), DK_FATAL);
	assert_string_equal(dk_gguf_error(g), "cannot load '/nonexistent/x.gguf': No such file or directory");
	dk_gguf_free(g);
	assert_int_equal(dk_gguf_open(&g, "/tmp"), DK_FATAL);
	assert_non_null(strstr(dk_gguf_error(g), "is a directory"));
	dk_gguf_free(g);
	dk_gguf_free(NULL);
}

/* ---- many keys and tensors: names are indexed, duplicates still refused ---- */

static void put_u32(struct dk_buf *b, uint32_t v) { assert_int_equal(dk_buf_append(b, &v, 4), 0); }
static void put_u64(struct dk_buf *b, uint64_t v) { assert_int_equal(dk_buf_append(b, &v, 8), 0); }
static void put_name(struct dk_buf *b, const char *fmt, long i)
{
	char name[64];
	snprintf(name, sizeof name, fmt, i);
	put_u64(b, strlen(name));
	assert_int_equal(dk_buf_append(b, name, strlen(name)), 0);
}

/* nk keys "k.<i>" (u32 value i; key dup_of is written again as the last
 * one when >= 0) and nt one-row f32 tensors "t.<i>" of i % 7 + 1 elements. */
static struct dk_buf many(long nk, long nt, long dup_key, long dup_tensor)
{
	struct dk_buf b = {0};
	put_u32(&b, 0x46554747u);
	put_u32(&b, 3);
	put_u64(&b, (uint64_t)(nt + (dup_tensor >= 0)));
	put_u64(&b, (uint64_t)(nk + (dup_key >= 0)));
	for (long i = 0; i < nk + (dup_key >= 0); i++) {
		put_name(&b, "k.%ld", i < nk ? i : dup_key);
		put_u32(&b, DK_GGUF_UINT32);
		put_u32(&b, (uint32_t)i);
	}
	for (long i = 0; i < nt + (dup_tensor >= 0); i++) {
		put_name(&b, "t.%ld", i < nt ? i : dup_tensor);
		put_u32(&b, 1);
		put_u64(&b, (uint64_t)(i % 7 + 1));
		put_u32(&b, DK_TYPE_F32);
		put_u64(&b, (uint64_t)i * 32);
	}
	while (b.len % 32)
		dk_buf_putc(&b, 0);
	for (long i = 0; i < (nt + (dup_tensor >= 0)) * 32; i++)
		dk_buf_putc(&b, 0);
	return b;
}

static void test_many_keys(void **state)
{
	(void)state;
	enum { NK = 100000 };
	struct dk_buf b = many(NK, 0, -1, -1);
	struct dk_gguf *g;
	if (dk_gguf_open_memory(&g, b.data, b.len, "keys.gguf") != DK_OK)
		fail_msg("%s", dk_gguf_error(g));
	assert_int_equal(dk_gguf_n_kv(g), NK);
	char key[32];
	for (long i = 0; i < NK; i += 997) {
		uint32_t v;
		snprintf(key, sizeof key, "k.%ld", i);
		assert_int_equal(dk_gguf_find(g, key), i);
		assert_true(dk_gguf_get_u32(g, key, &v));
		assert_int_equal(v, i);
	}
	assert_int_equal(dk_gguf_find(g, "k.99999"), 99999);
	assert_int_equal(dk_gguf_find(g, "k.100000"), -1);
	assert_int_equal(dk_gguf_find(g, "k."), -1);
	assert_int_equal(dk_gguf_find(g, "k.1234 "), -1);
	assert_string_equal(dk_gguf_kv_key(g, 4321), "k.4321");
	dk_gguf_free(g);
	dk_buf_free(&b);

	/* the last of 100001 keys repeats one from the middle */
	b = many(NK, 0, 54321, -1);
	assert_int_equal(dk_gguf_open_memory(&g, b.data, b.len, "dup.gguf"), DK_FATAL);
	assert_string_equal(dk_gguf_error(g), "cannot load 'dup.gguf': duplicate key 'k.54321'");
	dk_gguf_free(g);
	dk_buf_free(&b);
}

static void test_many_tensors(void **state)
{
	(void)state;
	enum { NT = 50000 };
	struct dk_buf b = many(3, NT, -1, -1);
	struct dk_gguf *g;
	if (dk_gguf_open_memory(&g, b.data, b.len, "tensors.gguf") != DK_OK)
		fail_msg("%s", dk_gguf_error(g));
	assert_int_equal(dk_gguf_n_tensors(g), NT);
	char name[32];
	for (long i = 0; i < NT; i += 499) {
		snprintf(name, sizeof name, "t.%ld", i);
		const struct dk_gguf_tensor *t = dk_gguf_tensor_by_name(g, name);
		assert_non_null(t);
		assert_ptr_equal(t, dk_gguf_tensor(g, i));
		assert_string_equal(t->name, name);
		assert_int_equal(t->ne[0], i % 7 + 1);
		assert_int_equal(t->offset, (uint64_t)i * 32);
	}
	assert_null(dk_gguf_tensor_by_name(g, "t.50000"));
	assert_null(dk_gguf_tensor_by_name(g, "k.1"));
	assert_int_equal(dk_gguf_find(g, "t.1"), -1);
	assert_int_equal(dk_gguf_find(g, "k.2"), 2);
	dk_gguf_free(g);
	dk_buf_free(&b);

	b = many(3, NT, -1, 0);
	assert_int_equal(dk_gguf_open_memory(&g, b.data, b.len, "dup.gguf"), DK_FATAL);
	assert_string_equal(dk_gguf_error(g), "cannot load 'dup.gguf': duplicate tensor 't.0'");
	dk_gguf_free(g);
	dk_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stories),
		cmocka_unit_test(test_f16_model),
		cmocka_unit_test(test_all_value_types),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_many_tensors),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
