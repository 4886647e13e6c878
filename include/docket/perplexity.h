/*
 * Perplexity of a token sequence, computed exactly as llama.cpp's
 * llama-perplexity does (see shared/reference/README.md): n_chunk =
 * n_tokens / n_ctx non-overlapping chunks, each chunk's first token replaced
 * by BOS and evaluated from an empty cache at positions 0..n_ctx-1; only the
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

#endif
