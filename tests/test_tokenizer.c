/*
 * Tokenizer tests: every llama.cpp vector in shared/vocab (all vocabs, both
 * the upstream and the real-text sets), the greedy-reference prompt ids and
 * the perplexity token lists, round trips through the streaming
 * detokenizer, special-token parsing on the default chat model, and error
 * paths on hand-built GGUF files.
 */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "docket/gguf.h"
#include "docket/tokenizer.h"
#include "engine/text/unicode.h"
#include "testutil.h"

/* ---- helpers ---- */

struct loaded {
	struct dk_gguf *g;
	struct dk_tokenizer *t;
};

static struct loaded load_path(const char *path)
{
	struct loaded l = {0};
	enum dk_status st = dk_gguf_open(&l.g, path);
	if (st != DK_OK)
		fail_msg("cannot open %s: %s", path, dk_gguf_error(l.g));
	st = dk_tokenizer_new(&l.t, l.g);
	if (st != DK_OK)
		fail_msg("tokenizer for %s: %s", path, dk_tokenizer_error(l.t));
	return l;
}

static void unload(struct loaded *l)
{
	dk_tokenizer_free(l->t);
	dk_gguf_free(l->g);
}

/* Tokenizes into a malloc'd array (exact size via the -(needed) protocol). */
static dk_token *tok_all(const struct dk_tokenizer *t, const char *s, size_t len, bool add_special,
			 bool parse_special, int *n)
{
	int need = dk_tokenize(t, s, len, add_special, parse_special, NULL, 0);
	if (need < 0)
		need = -need;
	dk_token *v = malloc(sizeof *v * (size_t)(need + 1));
	assert_non_null(v);
	int got = dk_tokenize(t, s, len, add_special, parse_special, v, need);
	assert_int_equal(got, need);
	*n = got;
	return v;
}

/* Streams ids through dk_detok into a malloc'd NUL-terminated string. */
static char *detok_all(const struct dk_tokenizer *t, const dk_token *ids, int n, size_t *len)
{
	struct dk_detok d;
	dk_detok_init(&d, t);
	size_t cap = 64, o = 0;
	char *s = malloc(cap);
	for (int i = 0; i <= n; i++) {
		for (;;) {
			int r = i < n ? dk_detok_push(&d, ids[i], s + o, (int)(cap - o - 1))
				      : dk_detok_flush(&d, s + o, (int)(cap - o - 1));
			if (r >= 0) {
				o += (size_t)r;
				break;
			}
			cap = 2 * (cap + (size_t)-r);
			s = realloc(s, cap);
		}
	}
	s[o] = 0;
	*len = o;
	return s;
}

struct vectors {
	char **text;
	size_t *len;
	int **ids;
	int *nids;
	int n;
};

static void vectors_free(struct vectors *v)
{
	for (int i = 0; i < v->n; i++) {
		free(v->text[i]);
		free(v->ids[i]);
	}
	free(v->text);
	free(v->len);
	free(v->ids);
	free(v->nids);
	memset(v, 0, sizeof *v);
}

/* Reads a .inp/.out pair (format: shared/vocab/README.md). */
static int vectors_read(const char *inp, const char *outp, struct vectors *v)
{
	static const char sep[] = "\n__ggml_vocab_test__\n";
	size_t ni, no;
	char *in = dk_test_read_file(inp, &ni);
	char *out = dk_test_read_file(outp, &no);
	memset(v, 0, sizeof *v);
	if (!in || !out) {
		free(in);
		free(out);
		return -1;
	}
	char *p = in, *end = in + ni, *q = out, *qend = out + no;
	for (;;) {
		char *e = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
		if (!e)
			break;
		v->text = realloc(v->text, sizeof *v->text * (size_t)(v->n + 1));
		v->len = realloc(v->len, sizeof *v->len * (size_t)(v->n + 1));
		v->ids = realloc(v->ids, sizeof *v->ids * (size_t)(v->n + 1));
		v->nids = realloc(v->nids, sizeof *v->nids * (size_t)(v->n + 1));
		size_t len = (size_t)(e - p);
		v->text[v->n] = malloc(len + 1);
		memcpy(v->text[v->n], p, len);
		v->text[v->n][len] = 0;
		v->len[v->n] = len;
		char *nl = memchr(q, '\n', (size_t)(qend - q));
		if (!nl)
			nl = qend;
		int cap = 16, k = 0;
		int *ids = malloc(sizeof *ids * (size_t)cap);
		char *c = q;
		while (c < nl) {
			while (c < nl && (*c == ' ' || *c == '\r'))
				c++;
			if (c >= nl)
				break;
			if (k == cap)
				ids = realloc(ids, sizeof *ids * (size_t)(cap *= 2));
			ids[k++] = (int)strtol(c, &c, 10);
		}
		v->ids[v->n] = ids;
		v->nids[v->n] = k;
		v->n++;
		q = nl < qend ? nl + 1 : qend;
		p = e + sizeof sep - 1;
	}
	free(in);
	free(out);
	return 0;
}

static bool is_spm(const struct dk_gguf *g)
{
	const char *m;
	size_t n;
	return dk_gguf_get_str(g, "tokenizer.ggml.model", &m, &n) && n == 5 && !memcmp(m, "llama", 5);
}

/* ---- llama.cpp's vectors, every vocab ---- */

static void test_vectors_all_vocabs(void **state)
{
	(void)state;
	char pat[4096];
	snprintf(pat, sizeof pat, "%s", dk_test_shared("vocab/ggml-vocab-*.gguf"));
	glob_t gl;
	assert_int_equal(glob(pat, 0, NULL, &gl), 0);
	assert_true(gl.gl_pathc >= 13);
	int total_fail = 0, total = 0;
	for (size_t f = 0; f < gl.gl_pathc; f++) {
		const char *path = gl.gl_pathv[f];
		struct loaded l = load_path(path);
		static const char *const kinds[2] = {"", ".real"};
		for (int k = 0; k < 2; k++) {
			char inp[4200], outp[4200];
			snprintf(inp, sizeof inp, "%s%s.inp", path, kinds[k]);
			snprintf(outp, sizeof outp, "%s%s.out", path, kinds[k]);
			struct vectors v;
			if (vectors_read(inp, outp, &v))
				fail_msg("missing vectors %s", inp);
			assert_true(v.n > 0);
			int pass = 0;
			for (int i = 0; i < v.n; i++) {
				int n;
				dk_token *ids = tok_all(l.t, v.text[i], v.len[i], false, false, &n);
				bool ok = n == v.nids[i];
				for (int j = 0; ok && j < n; j++)
					ok = ids[j] == v.ids[i][j];
				if (ok) {
					pass++;
				} else {
					fprintf(stderr, "MISMATCH %s%s input %d (%zu bytes): got %d ids, want %d\n",
						strrchr(path, '/') + 1, kinds[k], i, v.len[i], n, v.nids[i]);
				}
				free(ids);
			}
			printf("%-36s %-6s %3d/%d\n", strrchr(path, '/') + 1, k ? "real" : "llama",
			       pass, v.n);
			total += v.n;
			total_fail += v.n - pass;
			vectors_free(&v);
		}
		unload(&l);
	}
	globfree(&gl);
	printf("all vocabs: %d/%d vectors pass\n", total - total_fail, total);
	assert_int_equal(total_fail, 0);
}

/* GPT-4o's pre-tokenizer (Phi-4-mini, Llama 4), which no shared vocabulary
 * uses: the llama-bpe vocabulary with tokenizer.ggml.pre set to "gpt-4o"
 * (spliced in memory), on llama-bpe's inputs; the expected ids are
 * llama.cpp's for that same file (tests/data/vocab, made as the shared
 * .out files are: no BOS, no special-token parsing). */
static void test_gpt4o_pretokenizer(void **state)
{
	(void)state;
	const char *path = dk_test_shared("vocab/ggml-vocab-llama-bpe.gguf");
	size_t n;
	char *d = dk_test_read_file(path, &n);
	assert_non_null(d);
	/* key length, key, type 8 (string), length 9, "llama-bpe" */
	static const char key[] = "tokenizer.ggml.pre";
	char pat[64];
	size_t kl = sizeof key - 1, at = 0;
	uint64_t kl64 = kl, vl = 9, nl = 6;
	uint32_t ty = 8;
	memcpy(pat, &kl64, 8);
	memcpy(pat + 8, key, kl);
	memcpy(pat + 8 + kl, &ty, 4);
	memcpy(pat + 12 + kl, &vl, 8);
	memcpy(pat + 20 + kl, "llama-bpe", 9);
	size_t pl = 29 + kl;
	for (at = 0; at + pl <= n && memcmp(d + at, pat, pl); at++)
		;
	assert_true(at + pl <= n);
	size_t vo = at + 12 + kl;
	memcpy(d + vo, &nl, 8);
	memcpy(d + vo + 8, "gpt-4o", 6);
	memmove(d + vo + 14, d + vo + 17, n - (vo + 17));
	struct loaded l = {0};
	assert_int_equal(dk_gguf_open_memory(&l.g, d, n - 3, "gpt-4o vocab"), DK_OK);
	if (dk_tokenizer_new(&l.t, l.g) != DK_OK)
		fail_msg("%s", dk_tokenizer_error(l.t));
	static const char *const kinds[2] = {"", ".real"};
	for (int k = 0; k < 2; k++) {
		char inp[4200], outp[4200];
		snprintf(inp, sizeof inp, "%s%s.inp", path, kinds[k]);
		snprintf(outp, sizeof outp, "%s", dk_test_src(k ? "tests/data/vocab/gpt-4o-on-llama-bpe.real.out"
							     : "tests/data/vocab/gpt-4o-on-llama-bpe.out"));
		struct vectors v;
		if (vectors_read(inp, outp, &v))
			fail_msg("missing vectors %s", outp);
		assert_true(v.n > 0);
		int bad = 0;
		for (int i = 0; i < v.n; i++) {
			int nt;
			dk_token *ids = tok_all(l.t, v.text[i], v.len[i], false, false, &nt);
			bool ok = nt == v.nids[i];
			for (int j = 0; ok && j < nt; j++)
				ok = ids[j] == v.ids[i][j];
			if (!ok) {
				fprintf(stderr, "MISMATCH gpt-4o%s input %d: got %d ids, want %d\n", kinds[k],
					i, nt, v.nids[i]);
				bad++;
			}
			free(ids);
		}
		printf("gpt-4o on llama-bpe %-6s %d/%d\n", k ? "real" : "llama", v.n - bad, v.n);
		vectors_free(&v);
		assert_int_equal(bad, 0);
	}
	unload(&l);
	free(d);
}

/* detokenize(tokenize(x)) == x (SPM: with the prefix space it adds). */
static void test_roundtrip(void **state)
{
	(void)state;
	char pat[4096];
	snprintf(pat, sizeof pat, "%s", dk_test_shared("vocab/ggml-vocab-*.gguf"));
	glob_t gl;
	assert_int_equal(glob(pat, 0, NULL, &gl), 0);
	for (size_t f = 0; f < gl.gl_pathc; f++) {
		const char *path = gl.gl_pathv[f];
		struct loaded l = load_path(path);
		bool spm = is_spm(l.g);
		char inp[4200], outp[4200];
		snprintf(inp, sizeof inp, "%s.real.inp", path);
		snprintf(outp, sizeof outp, "%s.real.out", path);
		struct vectors v;
		assert_int_equal(vectors_read(inp, outp, &v), 0);
		int bad = 0;
		for (int i = 0; i < v.n; i++) {
			int n;
			dk_token *ids = tok_all(l.t, v.text[i], v.len[i], false, false, &n);
			size_t len;
			char *back = detok_all(l.t, ids, n, &len);
			const char *want = v.text[i];
			size_t wlen = v.len[i];
			const char *got = back;
			if (spm && wlen > 0) {
				if (len == 0 || back[0] != ' ') {
					bad++;
					goto next;
				}
				got++;
				len--;
			}
			if (len != wlen || memcmp(got, want, wlen)) {
				fprintf(stderr, "ROUNDTRIP %s input %d differs\n", strrchr(path, '/') + 1, i);
				bad++;
			}
		next:
			free(back);
			free(ids);
		}
		vectors_free(&v);
		unload(&l);
		assert_int_equal(bad, 0);
	}
	globfree(&gl);
}

/* ---- llama.cpp server / perplexity references ---- */

static void check_greedy(const char *model, const char *ref)
{
	struct loaded l = load_path(dk_test_shared(model));
	json_error_t je;
	json_t *root = json_load_file(dk_test_shared(ref), 0, &je);
	if (!root)
		fail_msg("%s: %s", ref, je.text);
	json_t *results = json_object_get(root, "results");
	assert_true(json_array_size(results) > 0);
	size_t i;
	json_t *r;
	json_array_foreach(results, i, r) {
		const char *prompt = json_string_value(json_object_get(r, "prompt"));
		json_t *want = json_object_get(r, "prompt_ids");
		assert_non_null(prompt);
		int n;
		dk_token *ids = tok_all(l.t, prompt, strlen(prompt), true, true, &n);
		assert_int_equal((size_t)n, json_array_size(want));
		for (int j = 0; j < n; j++)
			assert_int_equal(ids[j], json_integer_value(json_array_get(want, (size_t)j)));
		free(ids);
	}
	json_decref(root);
	unload(&l);
}

static void test_greedy_prompt_ids(void **state)
{
	(void)state;
	check_greedy("models/stories260K.gguf", "reference/greedy/stories260K.greedy.json");
	check_greedy("models/llama-2-tiny-random-F16.gguf",
		     "reference/greedy/llama-2-tiny-random-F16.greedy.json");
}

static void check_ppl(const char *model, const char *tokens)
{
	struct loaded l = load_path(dk_test_shared(model));
	size_t n;
	char *text = dk_test_read_file(dk_test_shared("reference/ppl-text.txt"), &n);
	assert_non_null(text);
	if (n > 0 && text[n - 1] == '\n')
		n--; /* llama-perplexity drops one trailing newline */
	size_t tn;
	char *want = dk_test_read_file(dk_test_shared(tokens), &tn);
	assert_non_null(want);
	int got_n;
	dk_token *ids = tok_all(l.t, text, n, true, false, &got_n);
	char *p = want;
	int k = 0;
	for (;;) {
		while (*p == ' ' || *p == '\n' || *p == '\r')
			p++;
		if (!*p)
			break;
		long id = strtol(p, &p, 10);
		assert_true(k < got_n);
		if (ids[k] != id)
			fail_msg("%s: token %d is %d, want %ld", tokens, k, ids[k], id);
		k++;
	}
	assert_int_equal(k, got_n);
	printf("%s: %d tokens match\n", tokens, k);
	free(ids);
	free(want);
	free(text);
	unload(&l);
}

static void test_perplexity_tokens(void **state)
{
	(void)state;
	check_ppl("models/stories260K.gguf", "reference/perplexity/ppl-text.stories260K.tokens.txt");
	check_ppl("models/llama-2-tiny-random-F16.gguf",
		  "reference/perplexity/ppl-text.llama-2-tiny-random-F16.tokens.txt");
}

/* ---- SPM details on stories260K ---- */

static void test_spm_basics(void **state)
{
	(void)state;
	struct loaded l = load_path(dk_test_shared("models/stories260K.gguf"));
	const struct dk_tokenizer *t = l.t;
	assert_int_equal(dk_tokenizer_n_vocab(t), 512);
	assert_int_equal(dk_tokenizer_bos(t), 1);
	assert_int_equal(dk_tokenizer_eos(t), 2);
	assert_true(dk_tokenizer_add_bos(t));
	assert_true(dk_token_is_eog(t, 2));
	assert_false(dk_token_is_eog(t, 1));
	assert_int_equal(dk_token_kind(t, 0), DK_TOK_UNKNOWN);
	assert_int_equal(dk_token_kind(t, 1), DK_TOK_CONTROL);
	assert_int_equal(dk_token_kind(t, 3 + 'A'), DK_TOK_BYTE);
	assert_int_equal(dk_tokenizer_find(t, "<0x41>", 6), 3 + 'A');
	assert_int_equal(dk_tokenizer_find(t, "no such token", 13), DK_TOKEN_NULL);

	/* empty text: BOS alone with add_special, nothing without */
	dk_token ids[64];
	assert_int_equal(dk_tokenize(t, "", 0, true, false, ids, 64), 1);
	assert_int_equal(ids[0], 1);
	assert_int_equal(dk_tokenize(t, "", 0, false, false, ids, 64), 0);

	/* capacity protocol */
	int need = dk_tokenize(t, "Once upon a time", 16, true, false, ids, 2);
	assert_int_equal(need, -5);
	assert_int_equal(dk_tokenize(t, "Once upon a time", 16, true, false, ids, 5), 5);

	/* parse_special: "<s>" is BOS with it, plain text without */
	int n = dk_tokenize(t, "<s>hi", 5, false, true, ids, 64);
	assert_true(n >= 2);
	assert_int_equal(ids[0], 1);
	n = dk_tokenize(t, "<s>hi", 5, false, false, ids, 64);
	for (int i = 0; i < n; i++)
		assert_int_not_equal(ids[i], 1);

	/* pieces: "▁" becomes a space, byte tokens their byte, control "" */
	char buf[32];
	dk_token once = ids[0];
	n = dk_tokenize(t, "Once", 4, false, false, ids, 64);
	assert_int_equal(n, 1);
	once = ids[0];
	int pl = dk_token_to_piece(t, once, buf, sizeof buf, false);
	assert_int_equal(pl, 5);
	assert_memory_equal(buf, " Once", 5);
	assert_int_equal(dk_token_to_piece(t, 3 + 0xE2, buf, sizeof buf, false), 1);
	assert_int_equal((unsigned char)buf[0], 0xE2);
	assert_int_equal(dk_token_to_piece(t, 1, buf, sizeof buf, false), 0);
	assert_int_equal(dk_token_to_piece(t, 1, buf, sizeof buf, true), 3);
	assert_memory_equal(buf, "<s>", 3);
	assert_int_equal(dk_token_to_piece(t, once, buf, 2, false), -5);

	/* unknown characters fall back to bytes, and stream back intact:
	 * the detokenizer holds an incomplete UTF-8 sequence */
	const char *emoji = "\xf0\x9f\xa6\x99"; /* U+1F999 */
	n = dk_tokenize(t, emoji, 4, false, false, ids, 64);
	assert_int_equal(n, 5); /* "▁" + four bytes */
	assert_int_equal(ids[1], 3 + 0xF0);
	struct dk_detok d;
	dk_detok_init(&d, t);
	char out[16];
	assert_int_equal(dk_detok_push(&d, ids[0], out, sizeof out), 1);
	assert_int_equal(dk_detok_push(&d, ids[1], out, sizeof out), 0);
	assert_int_equal(dk_detok_push(&d, ids[2], out, sizeof out), 0);
	assert_int_equal(dk_detok_push(&d, ids[3], out, sizeof out), 0);
	assert_int_equal(dk_detok_push(&d, ids[4], out, 2), -4); /* too small: retry */
	assert_int_equal(dk_detok_push(&d, ids[4], out, sizeof out), 4);
	assert_memory_equal(out, emoji, 4);
	assert_int_equal(dk_detok_flush(&d, out, sizeof out), 0);
	/* a dangling lead byte comes out on flush */
	assert_int_equal(dk_detok_push(&d, 3 + 0xE2, out, sizeof out), 0);
	assert_int_equal(dk_detok_flush(&d, out, sizeof out), 1);
	assert_int_equal((unsigned char)out[0], 0xE2);
	unload(&l);
}

/* ---- the default chat model (SmolLM2, BPE, pre=smollm) ---- */

static void test_smollm(void **state)
{
	(void)state;
	const char *path = dk_test_need_default_model();
	struct loaded l = load_path(path);
	const struct dk_tokenizer *t = l.t;
	const char *q = "What is the capital of France?";
	int n;
	dk_token *ids = tok_all(t, q, strlen(q), true, true, &n);
	assert_true(n > 3 && n < 12);
	assert_false(dk_tokenizer_add_bos(t)); /* add_bos_token = false */
	size_t len;
	char *back = detok_all(t, ids, n, &len);
	assert_string_equal(back, q);
	free(back);
	free(ids);

	const char *chat = "<|im_start|>user\nHi<|im_end|>\n";
	dk_token im_start = dk_tokenizer_find(t, "<|im_start|>", 12);
	dk_token im_end = dk_tokenizer_find(t, "<|im_end|>", 10);
	assert_int_equal(im_start, 1);
	assert_int_equal(im_end, 2);
	ids = tok_all(t, chat, strlen(chat), false, true, &n);
	assert_int_equal(ids[0], im_start);
	int ends = 0;
	for (int i = 0; i < n; i++)
		ends += ids[i] == im_end;
	assert_int_equal(ends, 1);
	free(ids);
	ids = tok_all(t, chat, strlen(chat), false, false, &n);
	for (int i = 0; i < n; i++) {
		assert_int_not_equal(ids[i], im_start);
		assert_int_not_equal(ids[i], im_end);
	}
	back = detok_all(t, ids, n, &len);
	assert_string_equal(back, chat);
	free(back);
	free(ids);

	assert_true(dk_token_is_eog(t, im_end));
	assert_true(dk_token_is_eog(t, dk_tokenizer_eos(t)));
	assert_true(dk_token_is_eog(t, dk_tokenizer_find(t, "<|endoftext|>", 13)));
	assert_false(dk_token_is_eog(t, im_start));
	assert_int_equal(dk_tokenizer_eot(t), im_end);
	char buf[32];
	assert_int_equal(dk_token_to_piece(t, im_start, buf, sizeof buf, false), 0);
	assert_int_equal(dk_token_to_piece(t, im_start, buf, sizeof buf, true), 12);
	unload(&l);
}

/* ---- long text: linear-ish behaviour, no crash ---- */

static void test_long_text(void **state)
{
	(void)state;
	size_t n = 1 << 20;
	char *s = malloc(n);
	for (size_t i = 0; i < n; i++)
		s[i] = "ab c\n  12345 xyz\xc3\xa9."[i % 20];
	const char *vocabs[] = {"vocab/ggml-vocab-llama-bpe.gguf", "vocab/ggml-vocab-llama-spm.gguf",
				"vocab/ggml-vocab-qwen2.gguf"};
	for (size_t v = 0; v < 3; v++) {
		struct loaded l = load_path(dk_test_shared(vocabs[v]));
		int cnt;
		dk_token *ids = tok_all(l.t, s, n, false, false, &cnt);
		assert_true(cnt > (int)(n / 20));
		free(ids);
		/* one 64 KB "word" with no split points */
		memset(s, 'a', 65536);
		ids = tok_all(l.t, s, 65536, false, false, &cnt);
		assert_true(cnt > 0 && cnt < 65536);
		free(ids);
		for (size_t i = 0; i < 65536; i++)
			s[i] = "ab c\n  12345 xyz\xc3\xa9."[i % 20];
		unload(&l);
	}
	free(s);
}

/* ---- pre-tokenizers on hand-picked cases ---- */

/* Splits s with pre-tokenizer p and joins the words with '|'. */
static char *split_join(enum dk_pretok p, const char *s)
{
	size_t len = strlen(s), n = 0;
	uint32_t *cps = malloc((len + 1) * sizeof *cps);
	size_t *offs = malloc((len + 2) * sizeof *offs);
	for (size_t i = 0; i < len;) {
		offs[n] = i;
		cps[n++] = dk_utf8_decode(s, len, &i);
	}
	offs[n] = len;
	struct dk_pretok_buf b = {0};
	assert_int_equal(dk_pretokenize(p, cps, n, &b), 0);
	char *out = malloc(2 * len + 2);
	size_t o = 0, at = 0;
	for (size_t k = 0; k < b.nlens; k++) {
		if (k)
			out[o++] = '|';
		size_t from = offs[at], to = offs[at + b.lens[k]];
		memcpy(out + o, s + from, to - from);
		o += to - from;
		at += b.lens[k];
	}
	assert_int_equal(at, n);
	out[o] = 0;
	dk_pretok_buf_free(&b);
	free(cps);
	free(offs);
	return out;
}

static void expect_split(enum dk_pretok p, const char *in, const char *want)
{
	char *got = split_join(p, in);
	if (strcmp(got, want))
		fail_msg("pre %d on '%s': got '%s', want '%s'", (int)p, in, got, want);
	free(got);
}

static void test_pretokenizers(void **state)
{
	(void)state;
	/* GPT-2: lower-case contractions only, digits in one run, \s+(?!\S) */
	expect_split(DK_PRE_GPT2, "I'm DON'T 12345", "I|'m| DON|'|T| 12345");
	expect_split(DK_PRE_GPT2, "a   b  ", "a|  | b|  ");
	expect_split(DK_PRE_GPT2, "x\n\ny", "x|\n|\n|y");
	/* Llama 3: case-insensitive contractions, 1-3 digits, newlines */
	expect_split(DK_PRE_LLAMA3, "DON'T I'M", "DON|'T| I|'M");
	expect_split(DK_PRE_LLAMA3, "1234567 x", "123|456|7| x");
	expect_split(DK_PRE_LLAMA3, "a \n\n  b", "a| \n\n| | b");
	expect_split(DK_PRE_LLAMA3, "$hello!!\n\nok", "$hello|!!\n\n|ok");
	/* Qwen2: single digits */
	expect_split(DK_PRE_QWEN2, "x 2024", "x| |2|0|2|4");
	/* Qwen3.5 keeps combining marks with letters (NFD e + U+0301) */
	expect_split(DK_PRE_QWEN35, "cafe\xcc\x81 x", "cafe\xcc\x81| x");
	expect_split(DK_PRE_QWEN2, "cafe\xcc\x81 x", "cafe|\xcc\x81| x");
	/* StarCoder family: every digit alone, then GPT-2 */
	expect_split(DK_PRE_STARCODER, "v12 ok", "v|1|2| ok");
	/* Falcon: punctuation runs first, then GPT-2, then triples of digits */
	expect_split(DK_PRE_FALCON, "a+=b 12345", "a|+=|b| |123|45");
	/* DeepSeek coder: CJK runs, single digits */
	expect_split(DK_PRE_DEEPSEEK_CODER, "ab \xe4\xb8\xad\xe6\x96\x87 42",
		     "ab| |\xe4\xb8\xad\xe6\x96\x87| |4|2");
	/* DeepSeek LLM: trailing white space of a chunk alone */
	expect_split(DK_PRE_DEEPSEEK_LLM, "hi there  ", "hi| there|  ");
	/* non-ASCII white space counts as \s (U+00A0, U+3000) */
	expect_split(DK_PRE_GPT2, "a\xc2\xa0\xc2\xa0" "b", "a|\xc2\xa0|\xc2\xa0|b");
	expect_split(DK_PRE_LLAMA3, "a\xc2\xa0\xc2\xa0" "b", "a|\xc2\xa0|\xc2\xa0" "b");
	/* malformed UTF-8 still tiles the input */
	expect_split(DK_PRE_LLAMA3, "\xff\xfe ok", "\xff\xfe| ok");
}

/* Byte-level tokens can split a UTF-8 character; the streaming detokenizer
 * only ever hands out whole characters. */
static void test_detok_stream_bpe(void **state)
{
	(void)state;
	struct loaded l = load_path(dk_test_shared("vocab/ggml-vocab-gpt-2.gguf"));
	const char *s = "ok \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xe4\xb8\xad\xe6\x96\x87!";
	int n;
	dk_token *ids = tok_all(l.t, s, strlen(s), false, false, &n);
	struct dk_detok d;
	dk_detok_init(&d, l.t);
	char out[256];
	size_t o = 0;
	int held = 0;
	for (int i = 0; i < n; i++) {
		int r = dk_detok_push(&d, ids[i], out + o, (int)(sizeof out - o));
		assert_true(r >= 0);
		held += r == 0;
		/* what came out so far ends on a character boundary */
		if (r > 0) {
			size_t k = o + (size_t)r;
			unsigned char last = (unsigned char)out[k - 1];
			assert_true(last < 0x80 || (last & 0xc0) == 0x80);
		}
		o += (size_t)r;
	}
	assert_true(held > 0); /* some token did end mid-character */
	assert_int_equal(dk_detok_flush(&d, out + o, 8), 0);
	assert_int_equal(o, strlen(s));
	assert_memory_equal(out, s, o);
	free(ids);
	unload(&l);

	/* Llama 3 adds BOS by default; gpt-2 does not */
	l = load_path(dk_test_shared("vocab/ggml-vocab-llama-bpe.gguf"));
	assert_true(dk_tokenizer_add_bos(l.t));
	ids = tok_all(l.t, "Hello", 5, true, false, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 128000);
	assert_true(dk_token_is_eog(l.t, dk_tokenizer_find(l.t, "<|eot_id|>", 10)));
	assert_int_equal(dk_tokenizer_eot(l.t), 128009);
	free(ids);
	unload(&l);
}

/* ---- hand-built GGUF files for error paths ---- */

struct gw {
	unsigned char *p;
	size_t n, cap;
	uint64_t nkv;
};

static void gw_put(struct gw *w, const void *d, size_t n)
{
	if (w->n + n > w->cap) {
		w->cap = (w->n + n) * 2 + 64;
		w->p = realloc(w->p, w->cap);
	}
	memcpy(w->p + w->n, d, n);
	w->n += n;
}
static void gw_u32(struct gw *w, uint32_t v) { gw_put(w, &v, 4); }
static void gw_u64(struct gw *w, uint64_t v) { gw_put(w, &v, 8); }
static void gw_str(struct gw *w, const char *s)
{
	gw_u64(w, strlen(s));
	gw_put(w, s, strlen(s));
}
static void gw_begin(struct gw *w)
{
	memset(w, 0, sizeof *w);
	gw_put(w, "GGUF", 4);
	gw_u32(w, 3);
	gw_u64(w, 0); /* tensors */
	gw_u64(w, 0); /* kv count, patched by gw_end */
}
static void gw_kv_str(struct gw *w, const char *k, const char *v)
{
	gw_str(w, k);
	gw_u32(w, DK_GGUF_STRING);
	gw_str(w, v);
	w->nkv++;
}
static void gw_kv_strs(struct gw *w, const char *k, const char *const *v, uint64_t n)
{
	gw_str(w, k);
	gw_u32(w, DK_GGUF_ARRAY);
	gw_u32(w, DK_GGUF_STRING);
	gw_u64(w, n);
	for (uint64_t i = 0; i < n; i++)
		gw_str(w, v[i]);
	w->nkv++;
}
static void gw_kv_f32s(struct gw *w, const char *k, const float *v, uint64_t n)
{
	gw_str(w, k);
	gw_u32(w, DK_GGUF_ARRAY);
	gw_u32(w, DK_GGUF_FLOAT32);
	gw_u64(w, n);
	gw_put(w, v, 4 * n);
	w->nkv++;
}
static void gw_end(struct gw *w)
{
	memcpy(w->p + 16, &w->nkv, 8);
	static const unsigned char zero[32];
	gw_put(w, zero, (32 - w->n % 32) % 32);
}

static void expect_error(struct gw *w, const char *needle)
{
	struct dk_gguf *g;
	enum dk_status st = dk_gguf_open_memory(&g, w->p, w->n, "tiny.gguf");
	if (st != DK_OK)
		fail_msg("gguf: %s", dk_gguf_error(g));
	struct dk_tokenizer *t;
	st = dk_tokenizer_new(&t, g);
	assert_int_equal(st, DK_FATAL);
	const char *msg = dk_tokenizer_error(t);
	if (!strstr(msg, needle))
		fail_msg("error '%s' lacks '%s'", msg, needle);
	assert_non_null(strstr(msg, "tiny.gguf"));
	dk_tokenizer_free(t);
	dk_gguf_free(g);
	free(w->p);
}

static void test_errors(void **state)
{
	(void)state;
	struct gw w;
	static const char *const toks[] = {"<unk>", "<s>", "</s>", "a", "b", "ab"};

	gw_begin(&w);
	gw_kv_str(&w, "general.architecture", "llama");
	gw_end(&w);
	expect_error(&w, "no tokenizer metadata");

	gw_begin(&w);
	gw_kv_str(&w, "tokenizer.ggml.model", "bert");
	gw_kv_strs(&w, "tokenizer.ggml.tokens", toks, 6);
	gw_end(&w);
	expect_error(&w, "unsupported tokenizer model 'bert'");

	gw_begin(&w);
	gw_kv_str(&w, "tokenizer.ggml.model", "llama");
	gw_end(&w);
	expect_error(&w, "tokenizer.ggml.tokens missing");

	gw_begin(&w);
	gw_kv_str(&w, "tokenizer.ggml.model", "gpt2");
	gw_kv_str(&w, "tokenizer.ggml.pre", "nonesuch");
	gw_kv_strs(&w, "tokenizer.ggml.tokens", toks, 6);
	gw_end(&w);
	expect_error(&w, "unknown pre-tokenizer 'nonesuch'");

	gw_begin(&w);
	gw_kv_str(&w, "tokenizer.ggml.model", "gpt2");
	gw_kv_strs(&w, "tokenizer.ggml.tokens", toks, 6);
	gw_end(&w);
	expect_error(&w, "merges missing");

	static const char *const bad_merges[] = {"a b", "ab"};
	gw_begin(&w);
	gw_kv_str(&w, "tokenizer.ggml.model", "gpt2");
	gw_kv_strs(&w, "tokenizer.ggml.tokens", toks, 6);
	gw_kv_strs(&w, "tokenizer.ggml.merges", bad_merges, 2);
	gw_end(&w);
	expect_error(&w, "malformed entry");

	static const float scores[3] = {0, 0, 0};
	gw_begin(&w);
	gw_kv_str(&w, "tokenizer.ggml.model", "llama");
	gw_kv_strs(&w, "tokenizer.ggml.tokens", toks, 6);
	gw_kv_f32s(&w, "tokenizer.ggml.scores", scores, 3);
	gw_end(&w);
	expect_error(&w, "scores does not match");
}

/* A tiny SPM vocabulary: merging follows scores, not length. */
static void test_tiny_spm(void **state)
{
	(void)state;
	static const char *const toks[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "c",
					   "ab", "bc", "\xe2\x96\x81\x61"};
	static const float scores[] = {0, 0, 0, -1, -2, -2, -2, -5, -3, -4};
	struct gw w;
	gw_begin(&w);
	gw_kv_str(&w, "tokenizer.ggml.model", "llama");
	gw_kv_strs(&w, "tokenizer.ggml.tokens", toks, 10);
	gw_kv_f32s(&w, "tokenizer.ggml.scores", scores, 10);
	gw_end(&w);
	struct dk_gguf *g;
	assert_int_equal(dk_gguf_open_memory(&g, w.p, w.n, "tiny.gguf"), DK_OK);
	struct dk_tokenizer *t;
	assert_int_equal(dk_tokenizer_new(&t, g), DK_OK);
	dk_token ids[16];
	/* "▁abc": bc (-3) beats ▁a (-4) beats ab (-5) → ▁a bc */
	int n = dk_tokenize(t, "abc", 3, true, false, ids, 16);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 9);
	assert_int_equal(ids[2], 8);
	/* no byte tokens: an unknown character becomes <unk> per byte */
	n = dk_tokenize(t, "x", 1, false, false, ids, 16);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 3);
	assert_int_equal(ids[1], 0);
	dk_tokenizer_free(t);
	dk_gguf_free(g);
	free(w.p);

	/* a token with "▁" inside ("a▁b"): merging must not be cut there */
	static const char *const toks2[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b",
					    "a\xe2\x96\x81", "a\xe2\x96\x81" "b"};
	static const float scores2[] = {0, 0, 0, -3, -3, -3, -1, -2};
	gw_begin(&w);
	gw_kv_str(&w, "tokenizer.ggml.model", "llama");
	gw_kv_strs(&w, "tokenizer.ggml.tokens", toks2, 8);
	gw_kv_f32s(&w, "tokenizer.ggml.scores", scores2, 8);
	gw_end(&w);
	assert_int_equal(dk_gguf_open_memory(&g, w.p, w.n, "tiny2.gguf"), DK_OK);
	assert_int_equal(dk_tokenizer_new(&t, g), DK_OK);
	n = dk_tokenize(t, "a b a", 5, false, false, ids, 16);
	assert_int_equal(n, 4); /* ▁ a▁b ▁ a */
	assert_int_equal(ids[0], 3);
	assert_int_equal(ids[1], 7);
	assert_int_equal(ids[2], 3);
	assert_int_equal(ids[3], 4);
	dk_tokenizer_free(t);
	dk_gguf_free(g);
	free(w.p);
}

/* Token texts longer than DK_TOKEN_MAX_BYTES are refused, naming the file
 * and the token; one at the limit loads.  The fuzz seeds hold the same two
 * cases, so the fuzzer starts on both sides of the limit. */
static void test_token_limit(void **state)
{
	(void)state;
	char *big = malloc(307201);
	assert_non_null(big);
	memset(big, 'a', 307200);
	big[307200] = 0;
	const char *toks[] = {"<unk>", "<s>", "</s>", big, "b"};
	struct gw w;
	gw_begin(&w);
	gw_kv_str(&w, "tokenizer.ggml.model", "llama");
	gw_kv_strs(&w, "tokenizer.ggml.tokens", toks, 5);
	gw_end(&w);
	struct dk_gguf *g;
	assert_int_equal(dk_gguf_open_memory(&g, w.p, w.n, "tiny.gguf"), DK_OK);
	struct dk_tokenizer *t;
	assert_int_equal(dk_tokenizer_new(&t, g), DK_FATAL);
	assert_string_equal(dk_tokenizer_error(t),
			    "cannot load tokenizer from 'tiny.gguf': token 3 is 307200 bytes (limit 4096)");
	dk_tokenizer_free(t);
	dk_gguf_free(g);
	free(w.p);

	big[DK_TOKEN_MAX_BYTES] = 0;
	gw_begin(&w);
	gw_kv_str(&w, "tokenizer.ggml.model", "llama");
	gw_kv_strs(&w, "tokenizer.ggml.tokens", toks, 5);
	gw_end(&w);
	assert_int_equal(dk_gguf_open_memory(&g, w.p, w.n, "tiny.gguf"), DK_OK);
	assert_int_equal(dk_tokenizer_new(&t, g), DK_OK);
	size_t len;
	dk_token_text(t, 3, &len);
	assert_int_equal(len, DK_TOKEN_MAX_BYTES);
	assert_int_equal(dk_tokenizer_find(t, big, DK_TOKEN_MAX_BYTES), 3);
	dk_tokenizer_free(t);
	dk_gguf_free(g);
	free(w.p);
	free(big);

	static const char *const seeds[] = {"tests/fuzz/seeds/fuzz_gguf/vocab-token-4096.bin",
					    "tests/fuzz/seeds/fuzz_gguf/vocab-token-4097.bin"};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(dk_gguf_open(&g, dk_test_src(seeds[i])), DK_OK);
		enum dk_status st = dk_tokenizer_new(&t, g);
		if (i == 0) {
			assert_int_equal(st, DK_OK);
			dk_token_text(t, 6, &len);
			assert_int_equal(len, 4096);
		} else {
			assert_int_equal(st, DK_FATAL);
			assert_non_null(strstr(dk_tokenizer_error(t), "vocab-token-4097.bin': token 6 is 4097 bytes (limit 4096)"));
		}
		dk_tokenizer_free(t);
		dk_gguf_free(g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_all_vocabs),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_gpt4o_pretokenizer),
		cmocka_unit_test(test_greedy_prompt_ids),
		cmocka_unit_test(test_perplexity_tokens),
		cmocka_unit_test(test_spm_basics),
		cmocka_unit_test(test_pretokenizers),
		cmocka_unit_test(test_detok_stream_bpe),
		cmocka_unit_test(test_smollm),
		cmocka_unit_test(test_long_text),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_tiny_spm),
		cmocka_unit_test(test_token_limit),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
