/* Chunking: token bounds, boundaries, overlap, UTF-8 safety, stable ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/ingest.h"
#include "testutil.h"
#include "util/buf.h"
#include "util/sha256.h"

/* A counter with exact, easy semantics: one token per whitespace-separated word. */
static int count_words(void *ud, const char *t, size_t n)
{
	int *calls = ud;
	if (calls)
		(*calls)++;
	int w = 0;
	bool in = false;
	for (size_t i = 0; i < n; i++) {
		bool sp = t[i] == ' ' || t[i] == '\n' || t[i] == '\t';
		if (!sp && !in)
			w++;
		in = !sp;
	}
	return w;
}

/* One token per byte: the worst case for splitting inside characters. */
static int count_bytes(void *ud, const char *t, size_t n)
{
	(void)ud;
	(void)t;
	return (int)n;
}

static void check_invariants(const char *text, size_t len, const struct dk_chunk *c, size_t n, int max,
			     dk_count_fn count, void *ud)
{
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(c[i].index, (int)i);
		assert_int_equal(c[i].count, (int)n);
		assert_true(c[i].start < c[i].end);
		assert_true(c[i].end <= len);
		assert_true(c[i].tokens <= max || c[i].end - c[i].start <= 4); /* only a lone character may exceed */
		assert_int_equal(c[i].tokens, count ? count(ud, text + c[i].start, c[i].end - c[i].start)
						    : dk_chunk_estimate_tokens(NULL, text + c[i].start, c[i].end - c[i].start));
		/* never inside a UTF-8 sequence */
		assert_true(((unsigned char)text[c[i].start] & 0xC0) != 0x80);
		assert_true(c[i].end == len || ((unsigned char)text[c[i].end] & 0xC0) != 0x80);
		if (i) {
			assert_true(c[i].start > c[i - 1].start);
			assert_true(c[i].end > c[i - 1].end);
			/* no gap: every non-space byte is in some chunk */
			for (size_t k = c[i - 1].end; k < c[i].start; k++)
				assert_true(text[k] == ' ' || text[k] == '\n' || text[k] == '\t');
		}
	}
}

static void test_empty_and_small(void **state)
{
	(void)state;
	struct dk_chunk *c;
	size_t n;
	assert_int_equal(dk_chunk_text("", 0, NULL, NULL, &c, &n), DK_OK);
	assert_int_equal(n, 0);
	free(c);
	assert_int_equal(dk_chunk_text(" \n\n\t ", 5, NULL, NULL, &c, &n), DK_OK);
	assert_int_equal(n, 0);
	free(c);
	const char *t = "  Just one short sentence.\n";
	assert_int_equal(dk_chunk_text(t, strlen(t), "abc", NULL, &c, &n), DK_OK);
	assert_int_equal(n, 1);
	assert_int_equal(c[0].start, 2);
	assert_int_equal(c[0].end, strlen(t) - 1);
	assert_int_equal(c[0].tokens, 6); /* four words ("sentence" counts 2) and a period */
	/* the id is sha256("<doc sha>:<start>-<end>") */
	char key[64], hex[65];
	snprintf(key, sizeof key, "abc:%zu-%zu", c[0].start, c[0].end);
	uint8_t d[32];
	dk_sha256(key, strlen(key), d);
	dk_sha256_hex(d, hex);
	assert_string_equal(c[0].id, hex);
	free(c);
}

static void test_boundaries_and_overlap(void **state)
{
	(void)state;
	/* paragraphs of sentences of words */
	struct dk_buf b = {0};
	for (int p = 0; p < 30; p++) {
		for (int s = 0; s < 4; s++) {
			for (int w = 0; w < 9; w++)
				dk_buf_printf(&b, "%sword%d_%d_%d", w ? " " : "", p, s, w);
			dk_buf_puts(&b, ". ");
		}
		dk_buf_puts(&b, "\n\n");
	}
	int calls = 0;
	struct dk_chunk_params p = {.max_tokens = 100, .overlap_tokens = 0, .count = count_words, .count_ud = &calls};
	struct dk_chunk *c;
	size_t n;
	assert_int_equal(dk_chunk_text(b.data, b.len, NULL, &p, &c, &n), DK_OK);
	assert_true(n >= 11 && n <= 15); /* 1080 words at <= 100 per chunk, cut at paragraphs (36 words) */
	check_invariants(b.data, b.len, c, n, 100, count_words, NULL);
	for (size_t i = 0; i + 1 < n; i++) {
		/* every chunk ends at a paragraph end: 72 words (2 paragraphs) fit, 108 do not */
		assert_int_equal(c[i].tokens, 72);
		size_t k = c[i].end;
		while (b.data[k] == ' ')
			k++;
		assert_true(b.data[k] == '\n' && b.data[k + 1] == '\n');
	}
	/* counter calls stay logarithmic per chunk */
	assert_true(calls < (int)n * 40);
	free(c);

	/* sentences when paragraphs are too long */
	p.max_tokens = 30;
	assert_int_equal(dk_chunk_text(b.data, b.len, NULL, &p, &c, &n), DK_OK);
	check_invariants(b.data, b.len, c, n, 30, count_words, NULL);
	for (size_t i = 0; i + 1 < n; i++)
		assert_int_equal(b.data[c[i].end - 1], '.');
	free(c);

	/* overlap: consecutive chunks share about overlap_tokens words */
	p.max_tokens = 100;
	p.overlap_tokens = 20;
	assert_int_equal(dk_chunk_text(b.data, b.len, NULL, &p, &c, &n), DK_OK);
	check_invariants(b.data, b.len, c, n, 100, count_words, NULL);
	for (size_t i = 1; i < n; i++) {
		assert_true(c[i].start < c[i - 1].end);
		int shared = count_words(NULL, b.data + c[i].start, c[i - 1].end - c[i].start);
		assert_true(shared >= 15 && shared <= 20);
	}
	free(c);
	dk_buf_free(&b);
}

static void test_words_and_utf8(void **state)
{
	(void)state;
	/* no spaces at all, multibyte characters, one token per byte */
	struct dk_buf b = {0};
	for (int i = 0; i < 500; i++)
		dk_buf_puts(&b, i % 3 ? "\xe6\x97\xa5" : "\xf0\x9f\x98\x80"); /* 3- and 4-byte characters */
	struct dk_chunk_params p = {.max_tokens = 10, .overlap_tokens = 0, .count = count_bytes};
	struct dk_chunk *c;
	size_t n;
	assert_int_equal(dk_chunk_text(b.data, b.len, "d", &p, &c, &n), DK_OK);
	check_invariants(b.data, b.len, c, n, 10, count_bytes, NULL);
	size_t covered = 0;
	for (size_t i = 0; i < n; i++)
		covered += c[i].end - c[i].start;
	assert_int_equal(covered, b.len);
	free(c);
	/* a single character larger than max_tokens still makes progress */
	p.max_tokens = 2;
	assert_int_equal(dk_chunk_text(b.data, b.len, "d", &p, &c, &n), DK_OK);
	assert_int_equal(n, 500);
	free(c);
	dk_buf_free(&b);

	/* words: one long line of words breaks between words */
	for (int i = 0; i < 400; i++)
		dk_buf_printf(&b, "w%03d ", i);
	p = (struct dk_chunk_params){.max_tokens = 50, .count = count_words};
	assert_int_equal(dk_chunk_text(b.data, b.len, NULL, &p, &c, &n), DK_OK);
	assert_int_equal(n, 8);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(c[i].tokens, 50);
		assert_int_equal(b.data[c[i].start], 'w');
	}
	free(c);
	dk_buf_free(&b);
}

static void test_estimate_and_stability(void **state)
{
	(void)state;
	assert_int_equal(dk_chunk_estimate_tokens(NULL, "", 0), 0);
	assert_int_equal(dk_chunk_estimate_tokens(NULL, "a b c", 5), 3);
	assert_int_equal(dk_chunk_estimate_tokens(NULL, "Hello, world!", 13), 4);
	/* a long word costs more than a short one */
	assert_true(dk_chunk_estimate_tokens(NULL, "internationalization", 20) > 2);
	/* real text: the estimate is within a plausible bytes-per-token range */
	size_t len;
	char *t = dk_test_read_file(dk_test_shared("corpus/bbc_news/bbc/tech/001.txt"), &len);
	if (!t) {
		const char *s = "The quick brown fox jumps over the lazy dog. ";
		struct dk_buf b = {0};
		for (int i = 0; i < 100; i++)
			dk_buf_puts(&b, s);
		len = b.len;
		t = dk_buf_steal(&b);
	}
	int est = dk_chunk_estimate_tokens(NULL, t, len);
	assert_true(est > (int)(len / 7) && est < (int)(len / 2));
	/* default params, estimate: ids are identical run to run and depend on the doc */
	struct dk_chunk *a, *b2, *c3;
	size_t na, nb, nc;
	struct dk_chunk_params p = dk_chunk_default_params();
	p.max_tokens = 64;
	p.overlap_tokens = 8;
	assert_int_equal(dk_chunk_text(t, len, "doc1", &p, &a, &na), DK_OK);
	assert_int_equal(dk_chunk_text(t, len, "doc1", &p, &b2, &nb), DK_OK);
	assert_int_equal(dk_chunk_text(t, len, "doc2", &p, &c3, &nc), DK_OK);
	assert_true(na > 3);
	assert_int_equal(na, nb);
	assert_int_equal(na, nc);
	check_invariants(t, len, a, na, 64, NULL, NULL);
	for (size_t i = 0; i < na; i++) {
		assert_string_equal(a[i].id, b2[i].id);
		assert_string_not_equal(a[i].id, c3[i].id);
		assert_int_equal(a[i].start, c3[i].start);
	}
	free(a);
	free(b2);
	free(c3);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_small),
		cmocka_unit_test(test_boundaries_and_overlap),
		cmocka_unit_test(test_words_and_utf8),
		cmocka_unit_test(test_estimate_and_stability),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
