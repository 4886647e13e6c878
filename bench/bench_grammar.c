/*
 * Cost of grammar-constrained decoding.
 *
 *   bench_grammar [MODEL.gguf] [-n TOKENS]     (env DK_THREADS: decode threads)
 *
 * MODEL defaults to the SmolLM2-135M-Instruct Q4_1 cache path.  Prints:
 *   1. vocabulary trie build time (49152 pieces for SmolLM2);
 *   2. mask time per step while feeding a tokenized JSON document that
 *      fits the bench schema: every step, and "cold" steps (a parse state
 *      seen for the first time, so no cached mask);
 *   3. decode tok/s of greedy generation with and without the JSON Schema
 *      constraint (same prompt, TOKENS steps each), and the overhead.
 * Without a model it falls back to a synthetic 49152-token vocabulary for
 * 1-2 and skips 3.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "docket/gguf.h"
#include "docket/jsonschema.h"
#include "docket/model.h"
#include "docket/tokenizer.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char schema_text[] =
	"{\"type\":\"object\",\"properties\":{"
	"\"vendor\":{\"type\":\"string\",\"maxLength\":80},"
	"\"date\":{\"type\":\"string\",\"format\":\"date\"},"
	"\"total\":{\"type\":\"number\"},"
	"\"currency\":{\"enum\":[\"EUR\",\"USD\",\"GBP\"]},"
	"\"paid\":{\"type\":\"boolean\"},"
	"\"items\":{\"type\":\"array\",\"maxItems\":20,\"items\":{\"type\":\"object\",\"properties\":{"
	"\"name\":{\"type\":\"string\"},\"qty\":{\"type\":\"integer\"},\"price\":{\"type\":[\"number\",\"null\"]}},"
	"\"required\":[\"name\",\"qty\"],\"additionalProperties\":false}},"
	"\"notes\":{\"type\":\"string\",\"nullable\":true}},"
	"\"required\":[\"vendor\",\"date\",\"total\",\"items\"],\"additionalProperties\":false}";

static const char doc_text[] =
	"{\"vendor\": \"Café Müller GmbH & Co. KG\", \"date\": \"2024-03-15\", \"total\": 47.85, "
	"\"currency\": \"EUR\", \"paid\": true, \"items\": [{\"name\": \"Cappuccino grande\", \"qty\": 3, "
	"\"price\": 4.2}, {\"name\": \"Croissant au beurre\", \"qty\": 2, \"price\": null}, "
	"{\"name\": \"Mineralwasser 0,5l \\\"still\\\"\", \"qty\": 6, \"price\": 2.1}], "
	"\"notes\": \"Tisch 12, Rechnung per E-Mail an buchhaltung@example.com senden\"}";

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static struct dk_grammar_vocab *synthetic_vocab(int32_t n)
{
	char **p = malloc((size_t)n * sizeof *p);
	size_t *l = malloc((size_t)n * sizeof *l);
	uint64_t r = 12345;
	static const char alpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;\"{}[]-_'!?\n";
	for (int32_t i = 0; i < n; i++) {
		if (i < 256) {
			p[i] = malloc(1);
			p[i][0] = (char)i;
			l[i] = 1;
			continue;
		}
		r ^= r << 13;
		r ^= r >> 7;
		r ^= r << 17;
		size_t len = 2 + r % 9;
		p[i] = malloc(len);
		for (size_t k = 0; k < len; k++) {
			r ^= r << 13;
			r ^= r >> 7;
			r ^= r << 17;
			p[i][k] = alpha[k == 0 && (r & 1) ? sizeof alpha - 12 : r % (sizeof alpha - 1)];
		}
		l[i] = len;
	}
	dk_token eog = n - 1;
	l[n - 1] = 0;
	struct dk_grammar_vocab *v = dk_grammar_vocab_new((const char *const *)p, l, n, &eog, 1);
	for (int32_t i = 0; i < n; i++)
		free(p[i]);
	free(p);
	free(l);
	return v;
}

/* Feeds doc token by token (pieces matched greedily, longest first, from
 * the vocabulary), timing apply at every step. */
static void bench_mask(const struct dk_grammar *g, const struct dk_grammar_vocab *v,
		       const struct dk_tokenizer *tok)
{
	int32_t n = dk_grammar_vocab_size(v);
	dk_token toks[1024];
	int nt = 0;
	if (tok) {
		nt = dk_tokenize(tok, doc_text, strlen(doc_text), false, false, toks, 1024);
	} else {
		for (size_t i = 0; doc_text[i];) {
			dk_token best = (unsigned char)doc_text[i];
			size_t bl = 1;
			for (dk_token t = 256; t < n; t++) {
				size_t len;
				const char *p = dk_grammar_vocab_piece(v, t, &len);
				if (len > bl && !strncmp(p, doc_text + i, len)) {
					best = t;
					bl = len;
				}
			}
			toks[nt++] = best;
			i += bl;
		}
	}
	float *lg = malloc((size_t)n * sizeof *lg);
	double *ts = malloc((size_t)(nt + 1) * sizeof *ts);
	struct dk_grammar_state *st = dk_grammar_state_new(g, v);
	for (int rep = 0; rep < 2; rep++) {
		dk_grammar_state_reset(st);
		int steps = 0;
		double total = 0;
		long allowed = 0;
		for (int i = 0; i < nt; i++) {
			for (int32_t t = 0; t < n; t++)
				lg[t] = 0;
			double t0 = now();
			int32_t k = dk_grammar_apply(st, lg, -1);
			double dt = now() - t0;
			ts[steps++] = dt;
			total += dt;
			if (getenv("DK_BENCH_VERBOSE") && dt > 1e-3) {
				size_t len;
				const char *p = dk_grammar_vocab_piece(v, toks[i], &len);
				printf("    step %d before '%.*s': %.2f ms\n", i, (int)len, p, 1e3 * dt);
			}
			allowed += k;
			if (!isfinite(lg[toks[i]]) || dk_grammar_accept_token(st, toks[i]) != DK_OK) {
				size_t len;
				const char *p = dk_grammar_vocab_piece(v, toks[i], &len);
				printf("  step %d: token %d '%.*s' rejected: %s\n", i, toks[i], (int)len, p,
				       dk_grammar_state_error(st));
				break;
			}
		}
		qsort(ts, (size_t)steps, sizeof *ts, cmp_d);
		printf("  %s: %d steps, mask mean %.3f ms, median %.3f ms, p90 %.3f ms, max %.3f ms, "
		       "mean allowed %ld of %d%s\n",
		       rep ? "second document (state reset, caches kept)" : "first document", steps, 1e3 * total / steps,
		       1e3 * ts[steps / 2], 1e3 * ts[steps * 9 / 10], 1e3 * ts[steps - 1],
		       allowed / (steps ? steps : 1), (int)n, dk_grammar_is_complete(st) ? ", complete" : "");
	}
	dk_grammar_state_free(st);
	free(lg);
	free(ts);
}

/* check_first: take the unmasked argmax when the grammar allows it, mask
 * only otherwise (the fast path of docket/grammar.h). */
static double run_decode(struct dk_ctx *ctx, const struct dk_tokenizer *tok, const struct dk_grammar *g,
			 const struct dk_grammar_vocab *v, int ntok, bool check_first, double *mask_s,
			 char *out, size_t outn)
{
	const char *prompt = "<|im_start|>user\nExtract the invoice as JSON: Café Müller, 15 March 2024, "
			     "3 cappuccino at 4.20, 2 croissants, total 47.85 EUR, paid.<|im_end|>\n"
			     "<|im_start|>assistant\n";
	dk_token pt[512];
	int np = dk_tokenize(tok, prompt, strlen(prompt), false, true, pt, 512);
	int32_t n = dk_tokenizer_n_vocab(tok);
	struct dk_batch *b = dk_batch_new(512);
	float *lg = malloc((size_t)n * sizeof *lg);
	struct dk_grammar_state *st = g ? dk_grammar_state_new(g, v) : NULL;
	dk_kv_seq_clear(ctx, 0);
	dk_batch_clear(b);
	for (int i = 0; i < np; i++)
		dk_batch_add(b, pt[i], i, 0, i == np - 1);
	dk_decode(ctx, b);
	memcpy(lg, dk_logits(ctx, np - 1), (size_t)n * sizeof *lg);
	int pos = np, done = 0;
	size_t on = 0;
	*mask_s = 0;
	double t0 = now();
	for (; done < ntok; done++) {
		dk_token best = 0;
		for (int32_t t = 1; t < n; t++)
			if (lg[t] > lg[best])
				best = t;
		if (st) {
			double m0 = now();
			if (!check_first || !dk_grammar_token_allowed(st, best, ntok - done)) {
				dk_grammar_apply(st, lg, ntok - done);
				best = 0;
				for (int32_t t = 1; t < n; t++)
					if (lg[t] > lg[best])
						best = t;
			}
			*mask_s += now() - m0;
		}
		if (st) {
			double m0 = now();
			dk_grammar_accept_token(st, best);
			*mask_s += now() - m0;
		}
		if (dk_token_is_eog(tok, best))
			break;
		char piece[256];
		int k = dk_token_to_piece(tok, best, piece, sizeof piece, false);
		if (k > 0 && on + (size_t)k < outn) {
			memcpy(out + on, piece, (size_t)k);
			on += (size_t)k;
		}
		dk_batch_clear(b);
		dk_batch_add(b, best, pos++, 0, true);
		if (dk_decode(ctx, b) != DK_OK)
			break;
		memcpy(lg, dk_logits(ctx, 0), (size_t)n * sizeof *lg);
	}
	double dt = now() - t0;
	out[on] = 0;
	dk_grammar_state_free(st);
	free(lg);
	dk_batch_free(b);
	return done ? done / dt : 0;
}

int main(int argc, char **argv)
{
	const char *model_path = NULL;
	int ntok = 96;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			ntok = atoi(argv[++i]);
		else
			model_path = argv[i];
	}
	static char defpath[1024];
	if (!model_path) {
		const char *home = getenv("HOME");
		snprintf(defpath, sizeof defpath, "%s/.cache/docket/models/SmolLM2-135M-Instruct.Q4_1.gguf",
			 home ? home : "/root");
		model_path = defpath;
	}
	json_error_t je;
	json_t *schema = json_loads(schema_text, 0, &je);
	struct dk_grammar *g;
	char err[512];
	if (dk_schema_compile(schema, &g, err, sizeof err) != DK_OK) {
		fprintf(stderr, "bench schema: %s\n", err);
		return 1;
	}
	struct dk_model *m = NULL;
	const struct dk_tokenizer *tok = NULL;
	if (dk_model_load(&m, model_path, NULL) == DK_OK) {
		tok = dk_model_tokenizer(m);
	} else {
		printf("no model (%s): synthetic vocabulary, no decode timing\n", dk_model_error(m));
		dk_model_free(m);
		m = NULL;
	}
	double t0 = now();
	struct dk_grammar_vocab *v = tok ? dk_grammar_vocab_from_tokenizer(tok) : synthetic_vocab(49152);
	printf("vocabulary: %d tokens, trie built in %.1f ms (%s)\n", (int)dk_grammar_vocab_size(v),
	       1e3 * (now() - t0), tok ? model_path : "synthetic");
	printf("mask per step over a %zu-byte invoice document:\n", strlen(doc_text));
	bench_mask(g, v, tok);
	if (m) {
		struct dk_ctx_params cp = dk_ctx_default_params();
		cp.n_ctx = 1024;
		if (getenv("DK_THREADS"))
			cp.n_threads = atoi(getenv("DK_THREADS"));
		struct dk_ctx *ctx;
		if (dk_ctx_new(&ctx, m, &cp) != DK_OK) {
			fprintf(stderr, "ctx: %s\n", dk_ctx_error(ctx));
			return 1;
		}
		char out[8192];
		double ms;
		run_decode(ctx, tok, NULL, NULL, 8, false, &ms, out, sizeof out); /* warm up */
		double free_tps = run_decode(ctx, tok, NULL, NULL, ntok, false, &ms, out, sizeof out);
		printf("decode, unconstrained: %.1f tok/s\n", free_tps);
		for (int cf = 0; cf < 2; cf++) {
			double con_tps = run_decode(ctx, tok, g, v, ntok, cf, &ms, out, sizeof out);
			printf("decode, JSON Schema constrained (%s): %.1f tok/s, grammar %.3f ms/token "
			       "= %.1f%% of the unconstrained step\n",
			       cf ? "check the pick first" : "full mask every step", con_tps, 1e3 * ms / ntok,
			       100.0 * (ms / ntok) * free_tps);
		}
		printf("constrained output: %s\n", out);
		dk_ctx_free(ctx);
	}
	dk_grammar_vocab_free(v);
	dk_grammar_free(g);
	json_decref(schema);
	dk_model_free(m);
	return 0;
}
