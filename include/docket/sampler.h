/*
 * Token sampling.  The chain, applied in this order to a logits vector:
 *   penalties (repetition / frequency / presence over the last
 *   penalty_last_n tokens) → top-k → temperature → top-p → min-p → draw.
 * temperature <= 0 is greedy (argmax, ties to the lowest id) and ignores
 * the rest; the penalties, being first, still apply.  The draw uses the
 * sampler's own PRNG (xoshiro256** seeded through splitmix64) seeded from
 * seed, so a run is deterministic for a given seed and input, on every
 * platform.  Penalised tokens are those of the last penalty_last_n accepted
 * (<= 0: none): the callers (docket generate, the runner) accept the
 * prompt's tokens before the first sample, as llama.cpp does, and then
 * each chosen token.  A token in that window with count c gets
 *   l = l > 0 ? l / repeat_penalty : l * repeat_penalty;
 *   l -= c * freq_penalty + presence_penalty;
 * top-p keeps the shortest run of most probable tokens whose mass reaches
 * top_p; min-p keeps tokens with p >= min_p * p_max.  A sample allocates
 * nothing and sorts nothing in full: ~0.1 ms for 49152 tokens with top-k 40.
 */
#ifndef DOCKET_SAMPLER_H
#define DOCKET_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/tokenizer.h"

struct dk_sampler_params {
	float temperature;      /* default 0.8; <= 0: greedy */
	int32_t top_k;          /* default 40; <= 0: off */
	float top_p;            /* default 0.95; >= 1: off */
	float min_p;            /* default 0.05; <= 0: off */
	float repeat_penalty;   /* default 1.0 (off) */
	float freq_penalty;     /* default 0 */
	float presence_penalty; /* default 0 */
	int32_t penalty_last_n; /* default 64 */
	uint64_t seed;          /* default 0 */
};

struct dk_sampler_params dk_sampler_default_params(void);

struct dk_sampler;
/* n_vocab: length of the logits vectors it will be given (> 0, else NULL).
 * p NULL: defaults.  NULL when out of memory. */
struct dk_sampler *dk_sampler_new(const struct dk_sampler_params *p, int32_t n_vocab);
void dk_sampler_free(struct dk_sampler *s);
/* Restarts the history and re-seeds the PRNG. */
void dk_sampler_reset(struct dk_sampler *s);

/* Picks a token from logits[n_vocab].  logits is scratch: it is modified.
 * Tokens masked to -INFINITY (e.g. by a grammar) are never picked; returns
 * DK_TOKEN_NULL only if every token is masked.  Does not record the token:
 * call dk_sampler_accept with what was finally chosen. */
dk_token dk_sampler_sample(struct dk_sampler *s, float *logits);
/* Records a token in the penalty history. */
void dk_sampler_accept(struct dk_sampler *s, dk_token t);

/* The greedy pick: the id of the largest of logits[0..n), ties to the
 * lowest id; NaN and -INFINITY are never picked (DK_TOKEN_NULL when
 * nothing else is there).  What dk_sampler_sample returns at temperature
 * <= 0 without penalties; SIMD where the CPU has it (~16 logits per
 * instruction), same answer as the scalar scan. */
dk_token dk_argmax(const float *logits, int32_t n);

/* Softmax of logits[n] into probs[n], in float with max subtracted. */
void dk_softmax(const float *logits, float *probs, int32_t n);

/* ---- scoring (moved from grammar.h: it reads logits, not grammars) ---- */

/*
 * Per-label probabilities for a constrained choice.
 *
 * Each label i is given as its token sequence toks[i][0..ntoks[i]).  The
 * probability of a label is the product over its tokens of the softmax
 * probability of that token given the prompt and the label's previous
 * tokens (full sequence scoring), renormalised over the label set.  Labels
 * that share a token prefix share the calls: logits_fn is called once per
 * distinct prefix (the empty prefix first), in depth-first order, and must
 * write into logits (n_vocab floats) the model's logits after prompt +
 * prefix[0..n_prefix).  A typical runner keeps the prompt's KV, forks the
 * sequence per prefix (or feeds prefixes incrementally, since calls come
 * depth first) and decodes.  logits_fn returns 0, or non-zero to abort.
 *
 * probs[n_labels] receives the normalised probabilities; logp (may be
 * NULL) the unnormalised log probabilities.  Returns DK_OK, DK_SKIP when a
 * label has no tokens or a token is out of range, DK_FATAL when the
 * callback failed or memory ran out.
 */
typedef int (*dk_logits_fn)(void *ud, const dk_token *prefix, int32_t n_prefix, float *logits);
enum dk_status dk_label_probs(const dk_token *const *toks, const int32_t *ntoks, int32_t n_labels,
			      int32_t n_vocab, dk_logits_fn logits_fn, void *ud, double *probs,
			      double *logp);
/* log softmax(logits)[t] over n logits, in double. */
double dk_log_softmax_at(const float *logits, int32_t n, dk_token t);

#endif
