/* grammar: GBNF parsing, recognition, masking against a synthetic
 * vocabulary (checked token by token against accept), budgets, labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/grammar.h"
#include "docket/sampler.h"
#include "testutil.h"

static struct dk_grammar *compile_ok(const char *text)
{
	struct dk_grammar *g;
	enum dk_status st = dk_grammar_parse(&g, text, strlen(text), NULL);
	if (st != DK_OK)
		fail_msg("grammar failed: %s\n%s", dk_grammar_error(g), text);
	return g;
}

static void expect_error(const char *text, const char *needle)
{
	struct dk_grammar *g;
	enum dk_status st = dk_grammar_parse(&g, text, strlen(text), NULL);
	assert_int_equal(st, DK_FATAL);
	if (!strstr(dk_grammar_error(g), needle))
		fail_msg("error '%s' lacks '%s'", dk_grammar_error(g), needle);
	dk_grammar_free(g);
}

/* A vocabulary of the 256 single bytes, some multi-byte pieces, an empty
 * control token and an EOG token (the last id). */
static const char *extra_pieces[] = {
	"{\"", "\":", "\",", "\"}", "}", "true", "false", "null", "ab", "abc", "bc", "aaa",
	", \"", "\n  ", "  ", "é", "\xc3", "\xa9", "日本", "\xe6\x97", "\xa5", "12", "-0", "0.5",
	"e+1", "\"a\"", "\"b\"", "[1", ",2]", "]", "}]", "\"}]}", "spam", "sp", "am", "ham",
};
#define N_EXTRA (int32_t)(sizeof extra_pieces / sizeof extra_pieces[0])

static struct dk_grammar_vocab *test_vocab(int32_t *n_out, dk_token *eog_out)
{
	int32_t n = 256 + N_EXTRA + 2;
	const char **p = calloc((size_t)n, sizeof *p);
	size_t *l = calloc((size_t)n, sizeof *l);
	static char bytes[256];
	for (int i = 0; i < 256; i++) {
		bytes[i] = (char)i;
		p[i] = &bytes[i];
		l[i] = 1;
	}
	for (int32_t i = 0; i < N_EXTRA; i++) {
		p[256 + i] = extra_pieces[i];
		l[256 + i] = strlen(extra_pieces[i]);
	}
	p[n - 2] = "";
	l[n - 2] = 0;
	p[n - 1] = "";
	l[n - 1] = 0;
	dk_token eog = n - 1;
	struct dk_grammar_vocab *v = dk_grammar_vocab_new(p, l, n, &eog, 1);
	free(p);
	free(l);
	assert_non_null(v);
	*n_out = n;
	*eog_out = eog;
	return v;
}

static bool accepts(const struct dk_grammar *g, const char *s)
{
	int32_t n;
	dk_token eog;
	struct dk_grammar_vocab *v = test_vocab(&n, &eog);
	struct dk_grammar_state *st = dk_grammar_state_new(g, v);
	bool ok = dk_grammar_accept_bytes(st, s, strlen(s)) == DK_OK && dk_grammar_is_complete(st);
	dk_grammar_state_free(st);
	dk_grammar_vocab_free(v);
	return ok;
}

static void test_basic_syntax(void **state)
{
	(void)state;
	struct dk_grammar *g = compile_ok(
		"# a comment\n"
		"root ::= greeting \" \" name (\"!\" | \"?\")?\n"
		"greeting ::= \"hi\" | \"hello\"\n"
		"name ::= [A-Z] [a-z]* # trailing comment\n");
	assert_true(accepts(g, "hi Bob"));
	assert_true(accepts(g, "hello Al!"));
	assert_true(accepts(g, "hi X?"));
	assert_false(accepts(g, "hi bob"));
	assert_false(accepts(g, "hi Bob!!"));
	assert_false(accepts(g, "hey Bob"));
	assert_false(accepts(g, "hi "));
	assert_int_equal(dk_grammar_min_bytes(g), 4);
	dk_grammar_free(g);

	/* alternatives on continuation lines, nested groups, repetition counts */
	g = compile_ok("root ::=\n  x{2,3} y+ |\n  \"z\"\n  | \"w\" ( \"1\" | (\"2\" \"3\")* )\n"
		       "x ::= \"a\"\ny ::= [0-9]\n");
	assert_true(accepts(g, "aa1"));
	assert_true(accepts(g, "aaa123"));
	assert_false(accepts(g, "a1"));
	assert_false(accepts(g, "aaaa1"));
	assert_false(accepts(g, "aa"));
	assert_true(accepts(g, "z"));
	assert_true(accepts(g, "w1"));
	assert_true(accepts(g, "w"));
	assert_true(accepts(g, "w2323"));
	assert_false(accepts(g, "w232"));
	dk_grammar_free(g);

	/* an empty last alternative before the next rule */
	g = compile_ok("root ::= \"x\" | \nempty ::=\nother ::= \"y\" |\n  \"z\"");
	assert_true(accepts(g, ""));
	assert_true(accepts(g, "x"));
	assert_false(accepts(g, "y"));
	dk_grammar_free(g);

	g = compile_ok("root ::= \"a\"{3} \"b\"{2,} \"c\"{0,1}");
	assert_true(accepts(g, "aaabb"));
	assert_true(accepts(g, "aaabbbbc"));
	assert_false(accepts(g, "aabb"));
	assert_false(accepts(g, "aaab"));
	dk_grammar_free(g);
}

static void test_escapes_and_classes(void **state)
{
	(void)state;
	struct dk_grammar *g = compile_ok(
		"root ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" [nt\"] )* \"\\\"\" tail\n"
		"tail ::= [\\u00e9\\U0001F600-\\U0001F64F]?\n");
	assert_true(accepts(g, "\"abc\""));
	assert_true(accepts(g, "\"a\\nb\""));
	assert_true(accepts(g, "\"日本語 é\""));
	assert_true(accepts(g, "\"\"é"));
	assert_true(accepts(g, "\"\"\xf0\x9f\x98\x80")); /* U+1F600 */
	assert_false(accepts(g, "\"\"\xf0\x9f\x9a\x80")); /* U+1F680 */
	assert_false(accepts(g, "\"a\\x\""));
	assert_false(accepts(g, "\"a\nb\""));
	assert_false(accepts(g, "\"\xff\"")); /* not UTF-8 */
	assert_false(accepts(g, "\"\xed\xa0\x80\"")); /* a surrogate */
	assert_false(accepts(g, "\"\xc0\xaf\"")); /* overlong */
	dk_grammar_free(g);

	g = compile_ok("root ::= . [-a] [a-] [\\]x] [\\^]");
	assert_true(accepts(g, "日-a]^"));
	assert_true(accepts(g, "xa-x^"));
	assert_false(accepts(g, "xb-x^"));
	dk_grammar_free(g);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("root ::= valu\nvalue ::= \"x\"", "undefined rule 'valu'");
	expect_error("root ::= root \"x\" | \"y\"", "left recursion");
	expect_error("root ::= a\na ::= b? root \"x\"\nb ::= \"b\"", "left recursion");
	expect_error("root ::= \"abc", "line 1");
	expect_error("root ::= \"a\"\n\nfoo ::= [a-", "line 3");
	expect_error("root ::= \"a\"{3,2}", "max below min");
	expect_error("root ::= (\"a\"?)* \"b\"", "can match nothing");
	expect_error("root ::= \"a\"{99999}", "repetition count");
	expect_error("root ::= \"a\" ::= \"b\"", "unexpected character");
	expect_error("root ::= ( \"a\"", "expected ')'");
	expect_error("start ::= \"a\"", "no rule named 'root'");
	expect_error("root ::= \"a\"\nroot ::= \"b\"", "defined twice");
	expect_error("root ::= [z-a]", "out of order");
	expect_error("root ::= \"\\q\"", "unknown escape");
	expect_error("", "no rule named 'root'");
	/* from a file */
	struct dk_grammar *gf;
	assert_int_equal(dk_grammar_load_file(&gf, dk_test_src("tests/fuzz/seeds/fuzz_gbnf/simple.gbnf"), NULL), DK_OK);
	assert_true(accepts(gf, "hello Bob!"));
	dk_grammar_free(gf);
	assert_int_equal(dk_grammar_load_file(&gf, "/nonexistent/x.gbnf", NULL), DK_FATAL);
	assert_string_equal(dk_grammar_error(gf), "cannot read '/nonexistent/x.gbnf': No such file or directory");
	dk_grammar_free(gf);
	assert_int_equal(dk_grammar_load_file(&gf, dk_test_src("tests/fuzz/seeds/fuzz_gbnf/leftrec.gbnf"), NULL),
			 DK_FATAL);
	assert_non_null(strstr(dk_grammar_error(gf), "leftrec.gbnf': left recursion"));
	dk_grammar_free(gf);
	/* a named start rule */
	struct dk_grammar *g;
	assert_int_equal(dk_grammar_parse(&g, "start ::= \"a\"", 13, "start"), DK_OK);
	dk_grammar_free(g);
	dk_grammar_free(NULL);
}

/* The mask must equal "accepting the token leaves a live state". */
static void check_mask_matches_accept(struct dk_grammar_state *st, const struct dk_grammar_vocab *v,
				      int32_t n)
{
	float *lg = malloc((size_t)n * sizeof *lg);
	for (int32_t i = 0; i < n; i++)
		lg[i] = 1.0f;
	int32_t allowed = dk_grammar_apply(st, lg, -1);
	int32_t count = 0;
	for (dk_token t = 0; t < n; t++) {
		struct dk_grammar_state *c = dk_grammar_state_clone(st);
		bool ok = dk_grammar_accept_token(c, t) == DK_OK;
		size_t len;
		dk_grammar_vocab_piece(v, t, &len);
		if (ok != (lg[t] == 1.0f))
			fail_msg("token %d: accept says %d, mask says %d", t, ok, lg[t] == 1.0f);
		assert_int_equal(ok, dk_grammar_token_allowed(st, t, -1));
		count += ok;
		dk_grammar_state_free(c);
	}
	assert_int_equal(count, allowed);
	free(lg);
}

static void test_mask_equals_accept(void **state)
{
	(void)state;
	int32_t n;
	dk_token eog;
	struct dk_grammar_vocab *v = test_vocab(&n, &eog);
	struct dk_grammar *g = compile_ok(
		"root ::= \"{\" ws ( pair ( \",\" ws pair )* )? ws \"}\"\n"
		"pair ::= str \":\" ws val\n"
		"val ::= str | num | \"true\" | \"false\" | \"null\" | \"[\" ( num (\",\" num)* )? \"]\"\n"
		"str ::= \"\\\"\" [^\"\\\\]{0,5} \"\\\"\"\n"
		"num ::= \"-\"? [0-9]+ (\".\" [0-9]+)? ([eE] [+-]? [0-9]+)?\n"
		"ws ::= [ \\n]{0,3}\n");
	/* drive through a document, checking the mask at every byte boundary */
	const char *doc = "{\"ab\": [1,2], \"日本\":\"é\",\n \"x\":-0.5e+1}";
	struct dk_grammar_state *st = dk_grammar_state_new(g, v);
	assert_non_null(st);
	check_mask_matches_accept(st, v, n);
	for (size_t i = 0; doc[i]; i++) {
		assert_int_equal(dk_grammar_accept_bytes(st, doc + i, 1), DK_OK);
		if (i % 3 == 0 || !doc[i + 1])
			check_mask_matches_accept(st, v, n);
	}
	assert_true(dk_grammar_is_complete(st));
	assert_false(dk_grammar_can_continue(st));
	assert_true(dk_grammar_allows_eog(st));
	assert_int_equal(dk_grammar_accept_token(st, eog), DK_OK);
	assert_true(dk_grammar_is_finished(st));
	float lg[4] = {0};
	(void)lg;
	assert_int_equal(dk_grammar_accept_token(st, 'a'), DK_SKIP);
	dk_grammar_state_free(st);

	/* EOG only when complete; empty control token never */
	st = dk_grammar_state_new(g, v);
	assert_false(dk_grammar_token_allowed(st, eog, -1));
	assert_false(dk_grammar_token_allowed(st, n - 2, -1));
	assert_int_equal(dk_grammar_accept_token(st, eog), DK_SKIP);
	assert_int_equal(dk_grammar_accept_token(st, n - 2), DK_SKIP);
	assert_int_equal(dk_grammar_accept_bytes(st, "{", 1), DK_OK);
	assert_int_equal(dk_grammar_accept_bytes(st, "x", 1), DK_SKIP);
	assert_non_null(strstr(dk_grammar_state_error(st), "cannot continue"));
	/* the failed accept left the state where it was */
	assert_int_equal(dk_grammar_accept_bytes(st, "}", 1), DK_OK);
	assert_true(dk_grammar_is_complete(st));
	dk_grammar_state_free(st);
	dk_grammar_free(g);
	dk_grammar_vocab_free(v);
}

static void test_split_utf8_tokens(void **state)
{
	(void)state;
	int32_t n;
	dk_token eog;
	struct dk_grammar_vocab *v = test_vocab(&n, &eog);
	struct dk_grammar *g = compile_ok("root ::= [é日本]+");
	struct dk_grammar_state *st = dk_grammar_state_new(g, v);
	/* "\xe6\x97" then "\xa5" spells 日; "\xc3" then "\xa9" spells é */
	dk_token t_e6 = -1, t_a5 = -1, t_c3 = -1, t_a9 = -1;
	for (dk_token t = 256; t < n; t++) {
		size_t len;
		const char *p = dk_grammar_vocab_piece(v, t, &len);
		if (len == 2 && !memcmp(p, "\xe6\x97", 2))
			t_e6 = t;
		if (len == 1 && (unsigned char)p[0] == 0xa5)
			t_a5 = t;
		if (len == 1 && (unsigned char)p[0] == 0xc3)
			t_c3 = t;
		if (len == 1 && (unsigned char)p[0] == 0xa9)
			t_a9 = t;
	}
	assert_true(t_e6 > 0 && t_a5 > 0 && t_c3 > 0 && t_a9 > 0);
	check_mask_matches_accept(st, v, n);
	assert_true(dk_grammar_token_allowed(st, t_e6, -1));
	assert_true(dk_grammar_token_allowed(st, 0xe6, -1));
	assert_false(dk_grammar_token_allowed(st, 0xe5, -1)); /* no member starts with e5 */
	assert_int_equal(dk_grammar_accept_token(st, t_e6), DK_OK);
	assert_false(dk_grammar_is_complete(st));
	assert_int_equal(dk_grammar_min_bytes_to_close(st), 1);
	check_mask_matches_accept(st, v, n);
	assert_false(dk_grammar_token_allowed(st, 0xa6, -1)); /* 日 is e6 97 a5 */
	assert_int_equal(dk_grammar_accept_token(st, t_a5), DK_OK);
	assert_true(dk_grammar_is_complete(st));
	assert_int_equal(dk_grammar_accept_token(st, t_c3), DK_OK);
	check_mask_matches_accept(st, v, n);
	assert_int_equal(dk_grammar_accept_token(st, t_a9), DK_OK);
	assert_true(dk_grammar_is_complete(st));
	dk_grammar_state_free(st);
	dk_grammar_free(g);
	dk_grammar_vocab_free(v);
}

static void test_budget_closes(void **state)
{
	(void)state;
	int32_t n;
	dk_token eog;
	struct dk_grammar_vocab *v = test_vocab(&n, &eog);
	struct dk_grammar *g = compile_ok("root ::= \"[\" item (\",\" item)* \"]\"\n"
					  "item ::= \"{\\\"k\\\":\\\"\" [a-z]* \"\\\"}\"\n");
	assert_int_equal(dk_grammar_min_bytes(g), 10);
	float *lg = malloc((size_t)n * sizeof *lg);
	/* greedy on logits that favour growing: it must still close in budget */
	for (int budget = 10; budget <= 40; budget += 3) {
		struct dk_grammar_state *st = dk_grammar_state_new(g, v);
		assert_int_equal(dk_grammar_min_bytes_to_close(st), 10);
		int used = 0;
		while (used < budget) {
			for (int32_t i = 0; i < n; i++)
				lg[i] = (i == 'a' || i == ',') ? 5.0f : (i == eog ? -5.0f : 0.0f);
			int32_t k = dk_grammar_apply(st, lg, budget - used);
			assert_true(k > 0);
			dk_token best = 0;
			for (int32_t i = 1; i < n; i++)
				if (lg[i] > lg[best])
					best = i;
			assert_true(dk_grammar_token_allowed(st, best, budget - used));
			assert_int_equal(dk_grammar_accept_token(st, best), DK_OK);
			used++;
			if (best == eog)
				break;
			assert_true(dk_grammar_min_bytes_to_close(st) <= budget - used);
		}
		assert_true(dk_grammar_is_complete(st));
		dk_grammar_state_free(st);
	}
	/* a budget too small from the start falls back to the plain mask */
	struct dk_grammar_state *st = dk_grammar_state_new(g, v);
	for (int32_t i = 0; i < n; i++)
		lg[i] = 0;
	assert_true(dk_grammar_apply(st, lg, 3) > 0);
	assert_true(lg['['] == 0.0f);
	assert_true(isinf(lg['{']));
	dk_grammar_state_free(st);
	free(lg);
	dk_grammar_free(g);
	dk_grammar_vocab_free(v);
}

static void test_clone_independent(void **state)
{
	(void)state;
	int32_t n;
	dk_token eog;
	struct dk_grammar_vocab *v = test_vocab(&n, &eog);
	struct dk_grammar *g = compile_ok("root ::= \"a\" (\"b\" | \"c\") \"d\"");
	struct dk_grammar_state *a = dk_grammar_state_new(g, v);
	assert_int_equal(dk_grammar_accept_bytes(a, "a", 1), DK_OK);
	struct dk_grammar_state *b = dk_grammar_state_clone(a);
	assert_non_null(b);
	assert_int_equal(dk_grammar_accept_bytes(a, "bd", 2), DK_OK);
	assert_int_equal(dk_grammar_accept_bytes(b, "b", 1), DK_OK);
	assert_int_equal(dk_grammar_accept_bytes(b, "c", 1), DK_SKIP);
	assert_int_equal(dk_grammar_accept_bytes(b, "d", 1), DK_OK);
	assert_true(dk_grammar_is_complete(a));
	assert_true(dk_grammar_is_complete(b));
	dk_grammar_state_free(a);
	dk_grammar_state_free(b);
	dk_grammar_free(g);
	dk_grammar_vocab_free(v);
}

/* Ambiguous grammars stay bounded (stacks are deduplicated). */
static void test_ambiguous(void **state)
{
	(void)state;
	int32_t n;
	dk_token eog;
	struct dk_grammar_vocab *v = test_vocab(&n, &eog);
	struct dk_grammar *g = compile_ok("root ::= (\"a\" | \"a\" | [a-z] | x)* \"!\"\nx ::= \"a\" \"a\"?");
	struct dk_grammar_state *st = dk_grammar_state_new(g, v);
	for (int i = 0; i < 300; i++)
		assert_int_equal(dk_grammar_accept_bytes(st, "a", 1), DK_OK);
	assert_int_equal(dk_grammar_accept_bytes(st, "!", 1), DK_OK);
	assert_true(dk_grammar_is_complete(st));
	dk_grammar_state_free(st);
	dk_grammar_free(g);
	dk_grammar_vocab_free(v);
}

/* A grammar whose expansion explodes fails cleanly, with a message, and a
 * reset state fails the same way rather than crashing. */
static void test_expansion_limit(void **state)
{
	(void)state;
	int32_t n;
	dk_token eog;
	struct dk_grammar_vocab *v = test_vocab(&n, &eog);
	char text[2048];
	size_t k = (size_t)snprintf(text, sizeof text, "root ::= a1 \"x\"\n");
	for (int i = 1; i < 14; i++)
		k += (size_t)snprintf(text + k, sizeof text - k, "a%d ::= a%d? a%d?\n", i, i + 1, i + 1);
	snprintf(text + k, sizeof text - k, "a14 ::= \"y\"?\n");
	struct dk_grammar *g = compile_ok(text);
	struct dk_grammar_state *st = dk_grammar_state_new(g, v);
	assert_non_null(st);
	float *lg = calloc((size_t)n, sizeof *lg);
	assert_int_equal(dk_grammar_apply(st, lg, -1), -1);
	assert_non_null(strstr(dk_grammar_state_error(st), "ambiguous"));
	assert_int_equal(dk_grammar_accept_bytes(st, "x", 1), DK_FATAL);
	dk_grammar_state_reset(st);
	assert_int_equal(dk_grammar_apply(st, lg, -1), -1);
	free(lg);
	dk_grammar_state_free(st);
	dk_grammar_free(g);
	dk_grammar_vocab_free(v);
}

/* Logits for a fake model: prefers "spam" tokens; records the calls. */
struct fake {
	int calls;
	int32_t n_vocab;
	int prefix_lens[16];
};

static int fake_logits(void *ud, const dk_token *prefix, int32_t n_prefix, float *logits)
{
	struct fake *f = ud;
	if (f->calls < 16)
		f->prefix_lens[f->calls] = n_prefix;
	f->calls++;
	for (int32_t i = 0; i < f->n_vocab; i++)
		logits[i] = 0;
	if (n_prefix == 0) {
		logits[1] = logf(3.0f); /* "sp" 3x as likely as "ham" */
		logits[2] = 0;
	} else if (prefix[0] == 1) {
		logits[3] = logf(4.0f); /* after "sp": "am" 4x as likely as "ice" */
		logits[4] = 0;
	}
	return 0;
}

static void test_labels(void **state)
{
	(void)state;
	const char *labels[] = {"spam", "ham", "sp\"ice"};
	char *gb = dk_grammar_labels_gbnf(labels, 3);
	assert_string_equal(gb, "root ::= \"spam\" | \"ham\" | \"sp\\\"ice\"\n");
	struct dk_grammar *g = compile_ok(gb);
	assert_true(accepts(g, "spam"));
	assert_true(accepts(g, "sp\"ice"));
	assert_false(accepts(g, "spa"));
	dk_grammar_free(g);
	free(gb);
	assert_null(dk_grammar_labels_gbnf(labels, 0));

	/* tokens: 1 "sp", 2 "ham", 3 "am", 4 "ice"; vocab of 8 */
	dk_token spam[] = {1, 3}, ham[] = {2}, spice[] = {1, 4};
	const dk_token *toks[] = {spam, ham, spice};
	int32_t ntoks[] = {2, 1, 2};
	struct fake f = {.n_vocab = 8};
	double probs[3], logp[3];
	assert_int_equal(dk_label_probs(toks, ntoks, 3, 8, fake_logits, &f, probs, logp), DK_OK);
	/* one call for the empty prefix, one for "sp" */
	assert_int_equal(f.calls, 2);
	assert_int_equal(f.prefix_lens[0], 0);
	assert_int_equal(f.prefix_lens[1], 1);
	/* p(sp)=3/(3+7)=.3, p(ham)=1/10; p(am|sp)=4/11, p(ice|sp)=1/11 */
	double e_spam = 0.3 * 4 / 11, e_ham = 0.1, e_spice = 0.3 / 11;
	double z = e_spam + e_ham + e_spice;
	assert_float_equal(probs[0], e_spam / z, 1e-6);
	assert_float_equal(probs[1], e_ham / z, 1e-6);
	assert_float_equal(probs[2], e_spice / z, 1e-6);
	assert_float_equal(logp[1], log(0.1), 1e-6);
	assert_float_equal(probs[0] + probs[1] + probs[2], 1.0, 1e-9);

	int32_t bad[] = {2, 0, 2};
	assert_int_equal(dk_label_probs(toks, bad, 3, 8, fake_logits, &f, probs, NULL), DK_SKIP);
	dk_token oob[] = {9};
	const dk_token *toks2[] = {oob};
	int32_t n1[] = {1};
	assert_int_equal(dk_label_probs(toks2, n1, 1, 8, fake_logits, &f, probs, NULL), DK_SKIP);

	float lg[3] = {0, 0, logf(2.0f)};
	assert_float_equal(dk_log_softmax_at(lg, 3, 2), log(0.5), 1e-6);
}

/* A 300 KB piece (what a hostile GGUF vocabulary can hold) builds a trie
 * 307200 levels deep, and ("a" "b")* makes every level a new parse state, so
 * a per-byte recursion in the trie build or the mask walk would overflow
 * the stack; both are iterative, and the piece is masked like any other. */
static void test_huge_piece(void **state)
{
	(void)state;
	enum { N = 307200 };
	char *big = malloc(N + 1), *odd = malloc(N + 1);
	assert_non_null(big);
	assert_non_null(odd);
	for (int i = 0; i < N; i++)
		big[i] = odd[i] = "ab"[i & 1];
	odd[N] = 'a'; /* N + 1 bytes: ends in the middle of a pair */
	const char *p[5] = {"a", "b", "c", big, odd};
	size_t l[5] = {1, 1, 1, N, N + 1};
	dk_token eog = 2;
	struct dk_grammar_vocab *v = dk_grammar_vocab_new(p, l, 5, &eog, 1);
	assert_non_null(v);
	size_t len;
	assert_ptr_not_equal(dk_grammar_vocab_piece(v, 3, &len), big);
	assert_int_equal(len, N);
	struct dk_grammar *g = compile_ok("root ::= (\"a\" \"b\")*\n");
	struct dk_grammar_state *st = dk_grammar_state_new(g, v);
	assert_non_null(st);
	float lg[5] = {0};
	assert_int_equal(dk_grammar_apply(st, lg, -1), 4); /* a, big, odd, eog */
	assert_true(lg[0] == 0 && lg[3] == 0 && lg[4] == 0 && lg[2] == 0);
	assert_true(isinf(lg[1]));
	assert_int_equal(dk_grammar_accept_token(st, 3), DK_OK);
	assert_true(dk_grammar_is_complete(st));
	/* after the long token the same mask again, now from the cache */
	memset(lg, 0, sizeof lg);
	assert_int_equal(dk_grammar_apply(st, lg, -1), 4);
	assert_int_equal(dk_grammar_accept_token(st, 4), DK_OK);
	assert_false(dk_grammar_is_complete(st));
	memset(lg, 0, sizeof lg);
	assert_int_equal(dk_grammar_apply(st, lg, -1), 1); /* only "b" */
	assert_true(lg[1] == 0);
	/* a budget of one token: only what leaves the output complete (a
	 * second walk down the same depth) */
	dk_grammar_state_reset(st);
	memset(lg, 0, sizeof lg);
	assert_int_equal(dk_grammar_apply(st, lg, 1), 2); /* big, eog */
	assert_true(lg[3] == 0 && lg[2] == 0);
	assert_true(isinf(lg[0]) && isinf(lg[4]));
	dk_grammar_state_free(st);
	dk_grammar_free(g);
	dk_grammar_vocab_free(v);
	free(big);
	free(odd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_syntax),
		cmocka_unit_test(test_escapes_and_classes),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_mask_equals_accept),
		cmocka_unit_test(test_split_utf8_tokens),
		cmocka_unit_test(test_budget_closes),
		cmocka_unit_test(test_clone_independent),
		cmocka_unit_test(test_ambiguous),
		cmocka_unit_test(test_expansion_limit),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_huge_piece),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
