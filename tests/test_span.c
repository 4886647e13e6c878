/* Copy-constrained decoding (docket/span.h) over a small vocabulary: where
 * a copy may start and end, crossing line breaks, JSON barriers, and the
 * constraint turning off when the caller leaves it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/span.h"

static const char *const pieces[] = {
	"\"", "NO", ".53", " JALAN", " SAGU", " 18,", " TAMAN", " DAYA", "X", "JALAN", "2018",
	"19", "/10/", "N", "O", "\",", "SAY", "\\", " \"HI",
};
enum { T_Q, T_NO, T_53, T_JALAN, T_SAGU, T_18, T_TAMAN, T_DAYA, T_X, T_JALAN0, T_2018, T_19,
       T_10, T_N, T_O, T_QC, T_SAY, T_BS, T_QHI, N_TOK };

static struct dk_grammar_vocab *vocab(void)
{
	size_t lens[N_TOK];
	for (int i = 0; i < N_TOK; i++)
		lens[i] = strlen(pieces[i]);
	struct dk_grammar_vocab *v = dk_grammar_vocab_new(pieces, lens, N_TOK, NULL, 0);
	assert_non_null(v);
	return v;
}

/* The allowed tokens after masking, as a bit set. */
static uint32_t allowed(struct dk_span *s, int32_t budget)
{
	float l[N_TOK];
	for (int i = 0; i < N_TOK; i++)
		l[i] = 0;
	int32_t n = dk_span_apply(s, l, budget);
	uint32_t bits = 0;
	for (int i = 0; i < N_TOK; i++)
		if (!isinf(l[i]))
			bits |= 1u << i;
	assert_int_equal(n, __builtin_popcount(bits));
	return bits;
}

#define B(t) (1u << (t))

static const char text[] = "NO.53 JALAN SAGU 18,\nTAMAN   DAYA\r\n19/10/2018 SAY \"HI\"";

static void test_start(void **state)
{
	(void)state;
	struct dk_grammar_vocab *v = vocab();
	struct dk_span *s = dk_span_new(text, strlen(text), v, "\"");
	assert_non_null(s);
	/* words start a copy: not a space, not "2018" inside 19/10/2018, not
	 * the end before anything is copied */
	assert_int_equal(allowed(s, -1), B(T_NO) | B(T_N) | B(T_JALAN0) | B(T_19) | B(T_SAY));
	dk_span_free(s);
	dk_grammar_vocab_free(v);
}

static void test_across_lines(void **state)
{
	(void)state;
	struct dk_grammar_vocab *v = vocab();
	struct dk_span *s = dk_span_new(text, strlen(text), v, "\"");
	const int seq[] = {T_NO, T_53, T_JALAN, T_SAGU, T_18, T_TAMAN, T_DAYA};
	for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
		uint32_t a = allowed(s, -1);
		assert_true(a & B(seq[i]));
		assert_true(dk_span_accept(s, seq[i]));
	}
	assert_int_equal(dk_span_copied(s), strlen("NO.53 JALAN SAGU 18, TAMAN DAYA"));
	/* at a word's end: the end tokens (pieces that begin with '"') */
	assert_int_equal(allowed(s, -1), B(T_Q) | B(T_QC));
	assert_true(dk_span_accept(s, T_Q));
	/* ended: nothing more is masked */
	assert_int_equal(allowed(s, -1), (1u << N_TOK) - 1);
	dk_span_free(s);
	dk_grammar_vocab_free(v);
}

static void test_word_end(void **state)
{
	(void)state;
	struct dk_grammar_vocab *v = vocab();
	struct dk_span *s = dk_span_new(text, strlen(text), v, "\"");
	assert_true(dk_span_accept(s, T_N));
	/* inside "NO": no end, unless one token of budget is left */
	assert_int_equal(allowed(s, -1), B(T_O));
	assert_int_equal(allowed(s, 1), B(T_O) | B(T_Q) | B(T_QC));
	assert_true(dk_span_accept(s, T_O));
	assert_true(allowed(s, -1) & B(T_Q)); /* "NO" ends before '.' */
	dk_span_free(s);
	dk_grammar_vocab_free(v);
}

static void test_barriers(void **state)
{
	(void)state;
	struct dk_grammar_vocab *v = vocab();
	struct dk_span *s = dk_span_new(text, strlen(text), v, "\"");
	assert_true(dk_span_accept(s, T_SAY));
	/* the source's quote is no part of a span */
	assert_int_equal(allowed(s, -1), B(T_Q) | B(T_QC));
	dk_span_free(s);
	dk_grammar_vocab_free(v);
}

static void test_off(void **state)
{
	(void)state;
	struct dk_grammar_vocab *v = vocab();
	struct dk_span *s = dk_span_new(text, strlen(text), v, "\"");
	/* a token the source does not continue: the constraint stops */
	assert_false(dk_span_accept(s, T_X));
	assert_int_equal(allowed(s, -1), (1u << N_TOK) - 1);
	dk_span_free(s);
	/* an empty source allows nothing to start */
	s = dk_span_new("", 0, v, "\"");
	assert_int_equal(allowed(s, -1), 0);
	dk_span_free(s);
	dk_grammar_vocab_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start),    cmocka_unit_test(test_across_lines),
		cmocka_unit_test(test_word_end), cmocka_unit_test(test_barriers),
		cmocka_unit_test(test_off),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
