/*
 * Perplexity of a token sequence, computed exactly as llama.cpp's
 * llama-perplexity does (see shared/reference/README.md): n_chunk =
 * n_tokens / n_ctx non-overlapping chunks, each chunk's first token replaced
 * by BOS when the vocabulary adds BOS (tokenizer.ggml.add_bos_token), and
 * evaluated from an empty cache at positions 0..n_ctx-1; only the
 * logits at positions n_ctx/2 .. n_ctx-2 are scored (each predicts the next
 * token); per-token NLL = -(logit - max - log Σ exp(logit - max)) with the
 * sum in double.
 */
#ifndef DOCKET_PERPLEXITY_H
#define DOCKET_PERPLEXITY_H

#include <stdint.h>

#include "docket/model.h"

struct dk_ppl_result {
	int32_t n_chunk;
	int64_t count;      /* tokens scored */
	double ppl;         /* exp(mean nll) */
	double err;         /* ppl * sqrt(var(nll) / (count - 1)) */
};

/* Called after each chunk with the cumulative perplexity so far. */
typedef void (*dk_ppl_progress_fn)(void *ud, int32_t chunk, double ppl_so_far);

/* ctx must have n_ctx >= n_ctx here and n_batch dividing work as it likes;
 * sequence 0 is used and cleared.  max_chunks < 0: all.  DK_SKIP when the
 * text is shorter than 2 * n_ctx tokens (message in dk_ctx_error). */
enum dk_status dk_perplexity(struct dk_ctx *c, const dk_token *toks, int64_t n, int32_t n_ctx,
			     int32_t max_chunks, dk_ppl_progress_fn cb, void *ud,
			     struct dk_ppl_result *out);

/*
 * KL-divergence base files, in the format of llama-perplexity's
 * --kl-divergence-base, so either engine reads the other's: the model's
 * log-probabilities over the scored positions of every chunk, against which
 * another model (a quantization of it) is measured.  All fields are
 * little-endian:
 *
 *   "_logits_"  int32 n_ctx  int32 n_vocab  int32 n_chunk
 *   int32 tokens[n_chunk * n_ctx]           (as tokenized; where the vocabulary
 *                                            adds BOS, it replaces each chunk's
 *                                            first at evaluation)
 *   per chunk, per scored position (n_ctx - 1 - n_ctx/2 of them), a record
 *   of nv = 2*((n_vocab+1)/2) + 4 uint16:
 *     float scale, float min_log_prob, uint16 q[n_vocab], padding to nv
 *   with log p(i) = scale * q[i] + min_log_prob; logits more than 16 below
 *   the maximum are stored as q = 0.
 */

/* As dk_perplexity, and writes the base file to path (replaced atomically
 * when complete).  DK_FATAL with a message in dk_ctx_error on I/O errors. */
enum dk_status dk_perplexity_save_base(struct dk_ctx *c, const dk_token *toks, int64_t n,
				       int32_t n_ctx, int32_t max_chunks, const char *path,
				       dk_ppl_progress_fn cb, void *ud, struct dk_ppl_result *out);

struct dk_kld_base;

/* Opens a base file and checks it whole: magic, header, size (a truncated
 * or overlong file is refused before any evaluation), tokens in range.
 * *out is set also on failure (read dk_kld_base_error, then free).
 * DK_SKIP: not a valid base file; DK_FATAL: cannot read it. */
enum dk_status dk_kld_base_open(struct dk_kld_base **out, const char *path);
const char *dk_kld_base_error(const struct dk_kld_base *b);
void dk_kld_base_free(struct dk_kld_base *b);
int32_t dk_kld_base_n_ctx(const struct dk_kld_base *b);
int32_t dk_kld_base_n_vocab(const struct dk_kld_base *b);
int32_t dk_kld_base_n_chunk(const struct dk_kld_base *b);

/* Running sums over the scored tokens; Δp = p(next token) - p_base(it). */
struct dk_kld_stats {
	int32_t n_chunk;
	int64_t count;               /* tokens scored */
	int64_t n_same_top;          /* tokens whose top token is the base's */
	double sum_nll, sum_nll2;    /* the model's negative log-likelihood */
	double sum_nll_base, sum_nll_base2, sum_nll_nll_base;
	double sum_kld, sum_kld2;    /* KL(base || model) per token */
	double sum_dp, sum_dp2, sum_dp4;
	float *kld, *dp;             /* per token, in order; sorted by dk_kld_summarize */
};

/* Called after each chunk with the sums so far (kld and dp unsorted). */
typedef void (*dk_kld_progress_fn)(void *ud, int32_t chunk, const struct dk_kld_stats *s);

/* Evaluates the base's tokens with c (n_ctx >= the base's, its vocabulary
 * the base's) and accumulates the statistics into *out, which the caller
 * releases with dk_kld_stats_free.  max_chunks < 0: all.  DK_SKIP with a
 * message in dk_ctx_error when the base does not fit the model or context,
 * or a read fails. */
enum dk_status dk_kl_divergence(struct dk_ctx *c, struct dk_kld_base *b, int32_t max_chunks,
				dk_kld_progress_fn cb, void *ud, struct dk_kld_stats *out);
void dk_kld_stats_free(struct dk_kld_stats *s);

/* A statistic's mean and its standard error. */
struct dk_mean_err {
	double v, err;
};

/* Quantiles listed in dk_kld_quantiles, high to low. */
#define DK_KLD_NQ 13

struct dk_kld_summary {
	struct dk_mean_err ppl, ppl_base;  /* exp of the mean NLL */
	double cor;                        /* correlation of the two NLLs */
	struct dk_mean_err ln_ppl_ratio, ppl_ratio, ppl_diff;
	struct dk_mean_err kld;
	float kld_q[DK_KLD_NQ];            /* at dk_kld_quantiles */
	struct dk_mean_err dp;             /* mean Δp */
	float dp_q[DK_KLD_NQ];
	struct dk_mean_err dp_rms;
	struct dk_mean_err same_top;       /* fraction of tokens */
};

/* 1, .999, .99, .95, .9, .75, .5, .25, .1, .05, .01, .001, 0: linear
 * interpolation between the sorted values, the median the mean of the two
 * middle ones for an even count. */
extern const float dk_kld_quantiles[DK_KLD_NQ];

/* Sorts s->kld and s->dp and derives the summary (s->count >= 2). */
void dk_kld_summarize(struct dk_kld_stats *s, struct dk_kld_summary *out);

#endif
