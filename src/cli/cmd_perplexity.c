/*
 * docket perplexity: the perplexity of a text, computed the way llama.cpp's
 * llama-perplexity computes it, so the two can be compared number for number:
 * the text (one trailing newline dropped) is tokenized once with BOS, cut
 * into n_chunk = n_tokens / n_ctx non-overlapping chunks, each chunk's first
 * token replaced by BOS and evaluated from an empty cache; only the second
 * half of each chunk is scored (logits at positions n_ctx/2 .. n_ctx-2
 * predict the next token), with the log-sum-exp summed in double.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "docket/model.h"
#include "docket/perplexity.h"

static void progress(void *ud, int32_t chunk, double ppl)
{
	(void)ud;
	printf("[%d]%.4lf,", chunk, ppl);
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: docket perplexity [-m MODEL] -f FILE -c N [-b N] [--kv f16|f32] [-t N] [--chunks K]\n");
}

int dk_cmd_perplexity(int argc, char **argv)
{
	enum { O_KV = 256, O_CHUNKS, O_HELP };
	static const struct option opts[] = {
		{"model", required_argument, 0, 'm'}, {"file", required_argument, 0, 'f'},
		{"ctx", required_argument, 0, 'c'}, {"batch", required_argument, 0, 'b'},
		{"threads", required_argument, 0, 't'}, {"kv", required_argument, 0, O_KV},
		{"chunks", required_argument, 0, O_CHUNKS}, {"help", no_argument, 0, O_HELP},
		{0, 0, 0, 0}};
	const char *model = NULL, *file = NULL;
	int n_ctx = 512, n_batch = 0, threads = 0, max_chunks = -1;
	enum dk_ttype kvt = DK_TYPE_F32; /* fidelity first: see README */
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:f:c:b:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'f': file = optarg; break;
		case 'c': n_ctx = atoi(optarg); break;
		case 'b': n_batch = atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		case O_CHUNKS: max_chunks = atoi(optarg); break;
		case O_KV:
			if (!strcmp(optarg, "f16")) kvt = DK_TYPE_F16;
			else if (!strcmp(optarg, "f32")) kvt = DK_TYPE_F32;
			else { dk_cli_error("--kv must be f16 or f32, not '%s'", optarg); return DK_EXIT_USAGE; }
			break;
		case O_HELP: usage(stdout); return DK_EXIT_OK;
		default: usage(stderr); return DK_EXIT_USAGE;
		}
	}
	if (!file || n_ctx < 4) {
		usage(stderr);
		return DK_EXIT_USAGE;
	}
	if (n_batch <= 0 || n_batch > n_ctx)
		n_batch = n_ctx;
	FILE *fp = fopen(file, "rb");
	if (!fp) {
		dk_cli_error("cannot open '%s': %m", file);
		return DK_EXIT_USAGE;
	}
	size_t cap = 1 << 16, len = 0, k;
	char *text = malloc(cap + 1);
	while (text && (k = fread(text + len, 1, cap - len, fp)) > 0) {
		len += k;
		if (len == cap) {
			cap *= 2;
			char *t = realloc(text, cap + 1);
			if (!t) { free(text); text = NULL; }
			text = t;
		}
	}
	fclose(fp);
	if (!text) {
		dk_cli_error("out of memory reading '%s'", file);
		return DK_EXIT_FATAL;
	}
	if (len && text[len - 1] == '\n')
		len--;
	text[len] = 0;
	const char *mpath = dk_cli_model_path(model);
	if (!mpath) { free(text); return DK_EXIT_FATAL; }

	int rc = DK_EXIT_FATAL;
	struct dk_model *m = NULL;
	struct dk_ctx *ctx = NULL;
	dk_token *toks = NULL;
	if (dk_model_load(&m, mpath, NULL) != DK_OK) {
		dk_cli_error("%s", dk_model_error(m));
		goto out;
	}
	const struct dk_tokenizer *tok = dk_model_tokenizer(m);
	int ncap = (int)len + 8;
	toks = malloc((size_t)ncap * sizeof *toks);
	int n = toks ? dk_tokenize(tok, text, len, true, false, toks, ncap) : -1;
	if (n < 2 * n_ctx) {
		dk_cli_error("'%s' has %d tokens; perplexity with -c %d needs at least %d", file, n,
			     n_ctx, 2 * n_ctx);
		rc = DK_EXIT_USAGE;
		goto out;
	}
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = n_ctx;
	cp.n_batch = n_batch;
	cp.n_threads = threads;
	cp.kv_type = kvt;
	cp.prefix_cache = false;
	if (dk_ctx_new(&ctx, m, &cp) != DK_OK) {
		dk_cli_error("%s", dk_ctx_error(ctx));
		goto out;
	}
	int n_chunk = n / n_ctx;
	if (max_chunks >= 0 && max_chunks < n_chunk)
		n_chunk = max_chunks;
	fprintf(stderr, "perplexity: %d tokens, %d chunks of %d, %d threads\n", n, n_chunk, n_ctx,
		dk_ctx_params(ctx)->n_threads);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct dk_ppl_result r;
	if (dk_perplexity(ctx, toks, n, n_ctx, max_chunks, progress, NULL, &r) != DK_OK) {
		dk_cli_error("%s", dk_ctx_error(ctx));
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	printf("\n");
	fprintf(stderr, "perplexity: %lld tokens scored in %.2f s (%.1f tokens/s evaluated)\n",
		(long long)r.count, secs, (double)r.n_chunk * n_ctx / secs);
	printf("PPL = %.4f +/- %.5f\n", r.ppl, r.err);
	rc = DK_EXIT_OK;
out:
	free(toks);
	free(text);
	dk_ctx_free(ctx);
	dk_model_free(m);
	return rc;
}
