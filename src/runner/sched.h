/*
 * The scheduler: token jobs -> engine slots -> typed results.
 *
 * A job is a token prompt and what to do with it: generate (sampling with
 * the job's settings, an optional grammar masking each step, stop strings)
 * or score (the log-probability of the prompt's tail after its head, and
 * of each of a set of choice tokens right after the prompt: one prefill
 * answers every one-token label of a classify chunk).
 * The scheduler keeps a FIFO queue and one slot per engine sequence; each
 * dk_sched_step admits queued jobs into free slots and runs one dk_decode
 * over every live slot (continuous batching).  It knows nothing of tasks,
 * documents or records: a finished job is handed to its done callback.
 *
 * Prefix warming: jobs whose first n_prefix tokens match a job that is still
 * computing them wait in the queue, so that they find those tokens in the
 * prefix cache instead of computing them again.  With prefixes set
 * (--prefix-dir), a job's first n_static tokens are loaded from / saved to
 * disk around admission.
 *
 * Lifecycle:
 *   1. dk_sched_new over an existing context (borrowed, as are the
 *      tokenizer, the grammars and the prefix files);
 *   2. dk_sched_submit, any number of times, also from a done callback;
 *   3. dk_sched_step until dk_sched_active and dk_sched_queued are 0;
 *   4. dk_sched_free, which cancels what is left.
 * Errors: dk_sched_step returns DK_FATAL (message in dk_sched_error) when
 * the engine fails as a whole; a job that fails alone finishes with its
 * error in the result.
 */
#ifndef DK_RUNNER_SCHED_H
#define DK_RUNNER_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/grammar.h"
#include "docket/model.h"
#include "docket/sampler.h"
#include "docket/span.h"
#include "docket/tokenizer.h"

struct dk_prefixes;
struct dk_sched;

enum dk_job_kind {
	DK_JOB_GEN,   /* generate up to max_tokens */
	DK_JOB_SCORE, /* sum of log p(toks[t]) for t in [score_from, n_toks) */
};

enum dk_finish {
	DK_FINISH_STOP,      /* end of generation, a stop string, the grammar's end, a score */
	DK_FINISH_LENGTH,    /* max_tokens or the context ran out */
	DK_FINISH_CANCELLED, /* dk_sched_cancel_all: the job did not run to its end */
};

/* What a finished job hands to its done callback; strings are borrowed
 * until the callback returns. */
struct dk_job_result {
	enum dk_finish finish;
	const char *text;  /* generate: the output ("" when none), forced bytes included */
	double logp;       /* score: the continuation's log-probability */
	const double *choice_logp; /* score with choices: log p of each choice token after
				    * the prompt, n_choices of them */
	int n_choices;
	int n_prompt;      /* prompt tokens */
	int n_cached;      /* of them, served from the prefix cache */
	int n_gen;         /* tokens generated */
	bool constrained;  /* a grammar masked the generation */
	const char *error; /* NULL, or why the job failed (the decode, a grammar dead end) */
};

typedef void (*dk_job_done_fn)(void *ud, const struct dk_job_result *r);

struct dk_job_spec {
	enum dk_job_kind kind;
	int n_prefix;        /* leading tokens shared with sibling jobs (prefix warming) */
	int n_static;        /* leading tokens from the pipeline alone: what prefix files keep */
	int score_from;      /* score: the first scored token (n_toks: none) */
	const dk_token *choices; /* score: tokens whose log-probability right after the
				  * prompt is wanted too (copied at submit) */
	int n_choices;
	int max_tokens;      /* generate */
	struct dk_sampler_params sp;
	char **stop;         /* borrowed: must outlive the job */
	size_t n_stop;
	int grammar;         /* index into the scheduler's grammars, -1 = free text */
	const char *forced;  /* borrowed: bytes after the prompt fed to the grammar ("\"") */
	const char *span;    /* borrowed, NULL = none: the output may only copy a span of
				span[0..span_len) (docket/span.h), ended by span_end */
	size_t span_len;
	const char *span_end;
	size_t span_skip;    /* forced bytes before the copy: the rest of forced is copied text */
	bool ignore_eog;     /* generate past end-of-generation tokens (a benchmark's fixed length) */
	dk_job_done_fn done; /* called exactly once per submitted job */
	void *ud;
};

/* A spec for a free-text generate job: no grammar, no prefix. */
struct dk_job_spec dk_job_default_spec(void);

struct dk_sched_params {
	struct dk_ctx *ctx;                /* borrowed */
	const struct dk_tokenizer *tok;    /* borrowed */
	int32_t n_seq, n_batch, n_ctx, n_vocab;
	bool prefix_cache;                 /* attach cached prefixes, and warm them first */
	struct dk_grammar **grammars;      /* borrowed; a job's grammar indexes this */
	int n_grammars;
	const struct dk_grammar_vocab *gvocab; /* borrowed; needed with grammars */
};

void dk_sched_default_params(struct dk_sched_params *p);

/* DK_FATAL when memory runs out. */
enum dk_status dk_sched_new(struct dk_sched **out, const struct dk_sched_params *p);
/* Cancels every queued or running job (their callbacks see
 * DK_FINISH_CANCELLED), then frees. NULL is a no-op. */
void dk_sched_free(struct dk_sched *s);

/* Loads and saves job heads (--prefix-dir); borrowed, NULL = off. */
void dk_sched_set_prefixes(struct dk_sched *s, struct dk_prefixes *pfx);

/* Queues a job over toks[0..n_toks), which the scheduler takes (freed when
 * the job ends, or here on failure).  n_prefix and n_static are clamped to
 * n_toks.  DK_FATAL when memory runs out: the callback is not called. */
enum dk_status dk_sched_submit(struct dk_sched *s, const struct dk_job_spec *spec, dk_token *toks,
			       int n_toks);

/* Admits queued jobs into free slots, then runs one decode over the live
 * slots; done callbacks run inside.  DK_FATAL: the engine failed or memory
 * ran out (dk_sched_error); the jobs stay where they are. */
enum dk_status dk_sched_step(struct dk_sched *s);

/* Ends every queued and running job with DK_FINISH_CANCELLED. */
void dk_sched_cancel_all(struct dk_sched *s);

int dk_sched_queued(const struct dk_sched *s);
/* dk_decode calls made so far. */
uint64_t dk_sched_decodes(const struct dk_sched *s);
int dk_sched_active(const struct dk_sched *s);
const char *dk_sched_error(const struct dk_sched *s);

#endif
