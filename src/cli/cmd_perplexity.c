/*
 * docket perplexity: the perplexity of a text, computed the way llama.cpp's
 * llama-perplexity computes it, so the two can be compared number for number:
 * the text (one trailing newline dropped) is tokenized once (with BOS if the
 * vocabulary adds it), cut into n_chunk = n_tokens / n_ctx non-overlapping
 * chunks, each chunk's first token replaced by that BOS and evaluated from
 * an empty cache; only the second
 * half of each chunk is scored (logits at positions n_ctx/2 .. n_ctx-2
 * predict the next token), with the log-sum-exp summed in double.
 *
 * --kl-divergence-base FILE also writes the log-probabilities of every
 * scored token to FILE, in llama-perplexity's format; with --kl-divergence
 * it reads such a file instead (its tokens, not -f) and measures this model
 * against it: KL divergence, top-token agreement, Δp, and the PPL ratio.
 */
#include <getopt.h>
#include <stdbool.h>
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
	fprintf(f, "usage: docket perplexity [-m MODEL] -f FILE -c N [-b N] [--kv f16|f32] [-t N] [--chunks K]\n"
		   "                         [--kl-divergence-base OUT]\n"
		   "       docket perplexity [-m MODEL] --kl-divergence-base BASE --kl-divergence [-b N] [-t N] ...\n");
}

static void kld_progress(void *ud, int32_t chunk, const struct dk_kld_stats *s)
{
	(void)ud;
	double nll = s->sum_nll / (double)s->count, nllb = s->sum_nll_base / (double)s->count;
	double dp2 = s->sum_dp2 / (double)s->count;
	if (chunk == 1)
		printf("chunk        PPL   ln(PPL/PPL(base))      KLD   RMS dp %%  same top %%\n");
	printf("%5d %10.4f %19.5f %8.5f %10.3f %11.3f\n", chunk, exp(nll), nll - nllb,
	       s->sum_kld / (double)s->count, 100 * sqrt(dp2),
	       100.0 * (double)s->n_same_top / (double)s->count);
	fflush(stdout);
}

static void print_q(const char *what, const float *q, double mul, const char *unit)
{
	static const char *const names[DK_KLD_NQ] = {"maximum", "99.9%", "99.0%", "95.0%", "90.0%",
						      "75.0%", "median", "25.0%", "10.0%", "5.0%",
						      "1.0%", "0.1%", "minimum"};
	for (int i = 0; i < DK_KLD_NQ; i++)
		printf("%-8s %-4s %10.6f%s\n", names[i], what, mul * q[i], unit);
}

static int run_kld(struct dk_model *m, const char *base_path, int n_ctx_arg, int n_batch,
		   int threads, enum dk_ttype kvt, int max_chunks)
{
	struct dk_kld_base *b = NULL;
	struct dk_ctx *ctx = NULL;
	struct dk_kld_stats s = {0};
	int rc = DK_EXIT_FATAL;
	enum dk_status st = dk_kld_base_open(&b, base_path);
	if (st != DK_OK) {
		dk_cli_error("%s", dk_kld_base_error(b));
		rc = st == DK_SKIP ? DK_EXIT_USAGE : DK_EXIT_FATAL;
		goto out;
	}
	int n_ctx = dk_kld_base_n_ctx(b);
	if (n_ctx_arg > 0 && n_ctx_arg != n_ctx) {
		dk_cli_error("-c %d, but '%s' was made with -c %d (leave -c out)", n_ctx_arg, base_path,
			     n_ctx);
		rc = DK_EXIT_USAGE;
		goto out;
	}
	if (dk_kld_base_n_vocab(b) != dk_model_info(m)->n_vocab) {
		dk_cli_error("'%s' was made with a vocabulary of %d, this model has %d", base_path,
			     (int)dk_kld_base_n_vocab(b), (int)dk_model_info(m)->n_vocab);
		rc = DK_EXIT_USAGE;
		goto out;
	}
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = n_ctx;
	cp.n_batch = n_batch <= 0 || n_batch > n_ctx ? n_ctx : n_batch;
	cp.n_threads = threads;
	cp.kv_type = kvt;
	cp.prefix_cache = false;
	if (dk_ctx_new(&ctx, m, &cp) != DK_OK) {
		dk_cli_error("%s", dk_ctx_error(ctx));
		goto out;
	}
	int n_chunk = dk_kld_base_n_chunk(b);
	if (max_chunks >= 0 && max_chunks < n_chunk)
		n_chunk = max_chunks;
	fprintf(stderr, "kl-divergence: '%s', %d chunks of %d, %d threads\n", base_path, n_chunk,
		n_ctx, dk_ctx_params(ctx)->n_threads);
	st = dk_kl_divergence(ctx, b, max_chunks, kld_progress, NULL, &s);
	if (st != DK_OK) {
		dk_cli_error("%s", dk_ctx_error(ctx));
		rc = st == DK_SKIP ? DK_EXIT_USAGE : DK_EXIT_FATAL;
		goto out;
	}
	if (s.count < 2) {
		dk_cli_error("'%s': too few tokens scored for statistics", base_path);
		goto out;
	}
	struct dk_kld_summary r;
	dk_kld_summarize(&s, &r);
	printf("\n====== perplexity ======\n");
	printf("PPL(Q)                       : %10.6f +/- %10.6f\n", r.ppl.v, r.ppl.err);
	printf("PPL(base)                    : %10.6f +/- %10.6f\n", r.ppl_base.v, r.ppl_base.err);
	printf("cor(ln PPL(Q), ln PPL(base)) : %6.2f%%\n", 100 * r.cor);
	printf("ln(PPL(Q)/PPL(base))         : %10.6f +/- %10.6f\n", r.ln_ppl_ratio.v,
	       r.ln_ppl_ratio.err);
	printf("PPL(Q)/PPL(base)             : %10.6f +/- %10.6f\n", r.ppl_ratio.v, r.ppl_ratio.err);
	printf("PPL(Q)-PPL(base)             : %10.6f +/- %10.6f\n", r.ppl_diff.v, r.ppl_diff.err);
	printf("\n====== KL divergence ======\n");
	printf("mean     KLD  %10.6f +/- %10.6f\n", r.kld.v, r.kld.err);
	print_q("KLD", r.kld_q, 1, "");
	printf("\n====== token probability: dp = p - p(base) ======\n");
	printf("mean     dp   %10.6f +/- %8.6f %%\n", 100 * r.dp.v, 100 * r.dp.err);
	print_q("dp", r.dp_q, 100, " %");
	printf("RMS      dp   %10.6f +/- %8.6f %%\n", 100 * r.dp_rms.v, 100 * r.dp_rms.err);
	printf("same top p    %10.6f +/- %8.6f %%\n", 100 * r.same_top.v, 100 * r.same_top.err);
	rc = DK_EXIT_OK;
out:
	dk_kld_stats_free(&s);
	dk_ctx_free(ctx);
	dk_kld_base_free(b);
	return rc;
}

int dk_cmd_perplexity(int argc, char **argv)
{
	enum { O_KV = 256, O_CHUNKS, O_KLD_BASE, O_KLD, O_HELP };
	static const struct option opts[] = {
		{"model", required_argument, 0, 'm'}, {"file", required_argument, 0, 'f'},
		{"ctx", required_argument, 0, 'c'}, {"batch", required_argument, 0, 'b'},
		{"threads", required_argument, 0, 't'}, {"kv", required_argument, 0, O_KV},
		{"chunks", required_argument, 0, O_CHUNKS},
		{"kl-divergence-base", required_argument, 0, O_KLD_BASE},
		{"kl-divergence", no_argument, 0, O_KLD}, {"help", no_argument, 0, O_HELP},
		{0, 0, 0, 0}};
	const char *model = NULL, *file = NULL, *kld_base = NULL;
	bool kld = false, ctx_set = false;
	int n_ctx = 512, n_batch = 0, threads = 0, max_chunks = -1;
	enum dk_ttype kvt = DK_TYPE_F32; /* fidelity first: see README */
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:f:c:b:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'f': file = optarg; break;
		case 'c': n_ctx = atoi(optarg); ctx_set = true; break;
		case 'b': n_batch = atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		case O_CHUNKS: max_chunks = atoi(optarg); break;
		case O_KV:
			if (!strcmp(optarg, "f16")) kvt = DK_TYPE_F16;
			else if (!strcmp(optarg, "f32")) kvt = DK_TYPE_F32;
			else { dk_cli_error("--kv must be f16 or f32, not '%s'", optarg); return DK_EXIT_USAGE; }
			break;
		case O_KLD_BASE: kld_base = optarg; break;
		case O_KLD: kld = true; break;
		case O_HELP: usage(stdout); return DK_EXIT_OK;
		default: usage(stderr); return DK_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		dk_cli_error("unexpected argument '%s'", argv[optind]);
		return DK_EXIT_USAGE;
	}
	if (kld && !kld_base) {
		dk_cli_error("--kl-divergence needs --kl-divergence-base BASE, the file to read");
		return DK_EXIT_USAGE;
	}
	if (kld) {
		const char *mp = dk_cli_model_path(model);
		if (!mp)
			return DK_EXIT_FATAL;
		struct dk_model *km = NULL;
		int krc = DK_EXIT_FATAL;
		if (dk_model_load(&km, mp, NULL) != DK_OK)
			dk_cli_error("%s", dk_model_error(km));
		else
			krc = run_kld(km, kld_base, ctx_set ? n_ctx : 0, n_batch, threads, kvt,
				      max_chunks);
		dk_model_free(km);
		return krc;
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
	enum dk_status pst =
		kld_base ? dk_perplexity_save_base(ctx, toks, n, n_ctx, max_chunks, kld_base, progress,
						   NULL, &r)
			 : dk_perplexity(ctx, toks, n, n_ctx, max_chunks, progress, NULL, &r);
	if (pst != DK_OK) {
		dk_cli_error("%s", dk_ctx_error(ctx));
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	printf("\n");
	fprintf(stderr, "perplexity: %lld tokens scored in %.2f s (%.1f tokens/s evaluated)\n",
		(long long)r.count, secs, (double)r.n_chunk * n_ctx / secs);
	printf("PPL = %.4f +/- %.5f\n", r.ppl, r.err);
	if (kld_base)
		fprintf(stderr, "perplexity: KL-divergence base written to '%s'\n", kld_base);
	rc = DK_EXIT_OK;
out:
	free(toks);
	free(text);
	dk_ctx_free(ctx);
	dk_model_free(m);
	return rc;
}
