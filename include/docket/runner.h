/*
 * The job runner behind `docket run` and `docket batch`.
 *
 * Documents come from ingest (files, directories, archives) one at a time;
 * each is chunked with the model's tokenizer, every chunk becomes one or
 * more engine jobs (a prompt plus either "generate" or "score this
 * continuation"), and jobs are fanned into the engine's batched decode with
 * up to n_seq sequences in flight.  Jobs of one document are queued
 * together, and a job whose prompt prefix is not yet in the prefix cache
 * waits until one job with that prefix has computed it, so sequences that
 * share a prefix run together and reuse it.  At most max_open_docs
 * documents are open at once: memory stays flat on huge trees.
 *
 * Records are written in completion order, one JSON object per line (shape:
 * pipelines/record.schema.json), appended and flushed as they complete,
 * with a checkpoint journal beside the output (see src/runner/output.h).
 * Extract jobs are masked by the grammar compiled from the pipeline's
 * schema (docket/jsonschema.h) unless the pipeline or the caller turns
 * that off; every record carries schema_valid (the value checked against
 * the whole schema) and finish_reason ("length" when a budget ran out).
 * With greedy decoding (temperature 0) and the engine's deterministic mode
 * a record does not depend on its batch mates, so a resumed run yields the
 * same records as an uninterrupted one.
 */
#ifndef DOCKET_RUNNER_H
#define DOCKET_RUNNER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/ingest.h"
#include "docket/model.h"
#include "docket/pipeline.h"
#include "docket/tokenizer.h"

enum dk_out_format { DK_FORMAT_DOCKET, DK_FORMAT_OPENAI_BATCH };
/* What to do with an output that is already there. */
enum dk_out_mode {
	DK_OUT_NEW,         /* refuse a non-empty existing output */
	DK_OUT_OVERWRITE,   /* truncate whatever is there */
	DK_OUT_RESUME,      /* continue: the configuration must match (unless force) */
	DK_OUT_INCREMENTAL, /* append; documents with an ok record and unchanged are skipped */
};
/* AUTO: BAR on a terminal, else LOG (a timestamped line every interval). */
enum dk_progress { DK_PROGRESS_AUTO, DK_PROGRESS_BAR, DK_PROGRESS_JSONL, DK_PROGRESS_NONE,
		   DK_PROGRESS_LOG };

/* Command-line fallback settings (docket/route.h).  They override the
 * pipeline's "fallback" block field by field: NULL/false = the block's.
 * disabled (--no-fallback) turns routing off for the run.  Records
 * answered remotely carry route "fallback" and fallback {host, model}; a
 * chunk that wants to route but may not (sensitive pipeline without
 * allow_sensitive) stays an error whose message says why, and nothing is
 * sent.  Remote calls run on `concurrency` worker threads while local
 * decoding goes on; a record is written only after its call returns, so a
 * killed run re-sends the chunks whose calls were in flight on --resume. */
struct dk_fallback_opts {
	const char *url, *model, *key_env;
	int concurrency;        /* requests in flight (0: the block's max_concurrency, default 8) */
	const char *when;       /* comma list: over_context, invalid_output, local_error, always */
	const char *audit;      /* audit log file; default OUTPUT.audit.jsonl (required for "-") */
	bool allow_sensitive, redact, disabled;
};

struct dk_runner_params {
	const struct dk_pipeline *pipeline; /* borrowed; NULL for batch files */
	const char *model_path;
	const char *output;        /* "-" = stdout */
	enum dk_out_mode mode;
	bool force;
	enum dk_out_format format;
	int shard_k, shard_n;      /* shard_n 0 = no sharding; 0 <= shard_k < shard_n */
	int n_threads;             /* 0 = default */
	int n_seq;                 /* sequences in flight (default 8) */
	int n_ctx;                 /* per sequence (default min(2048, n_ctx_train)) */
	int n_batch;               /* tokens per decode (default 512) */
	bool prefix_cache;         /* default true */
	bool deterministic;        /* default true: a record does not depend on batching or
				    * threads (dk_ctx_params.deterministic) */
	const char *prefix_dir;    /* keep the pipeline's instruction KV here between runs
				    * (runner/prefixes.h); NULL = off; ignored for batch
				    * files and without prefix_cache */
	int max_open_docs;         /* default 4 * n_seq */
	int64_t max_failures;      /* stop after more errors than this; < 0 = no limit */
	/* generation overrides; < 0 = the pipeline's */
	int max_tokens;
	float temperature;
	int64_t seed;
	/* the walk: every dk_ingest_params option (dk_ingest_default_params by
	 * default); include and exclude are added to the pipeline's, borrowed */
	struct dk_ingest_params ingest;
	/* operator */
	enum dk_progress progress;
	double log_interval_s;        /* DK_PROGRESS_LOG lines and metrics writes (default 30) */
	const char *metrics_path;     /* Prometheus textfile (runner/metrics.h); NULL = none */
	const char *report_path;
	const char *const *fail_on;   /* classify: labels that fail the run */
	size_t n_fail_on;
	bool fail_on_unsupported;     /* summarize: a summary with unsupported items fails the run */
	const char *resume_hint;      /* command printed when interrupted */
	volatile sig_atomic_t *stop;  /* set by a signal handler: stop cleanly */
	int constrained;              /* extract: -1 = the pipeline's, 0 = free text, 1 = grammar-masked */
	struct dk_fallback_opts fallback;
	int sync_every, sync_ms;      /* checkpoint fsync interval (defaults 64 records / 1000 ms) */
};
void dk_runner_default_params(struct dk_runner_params *p);

struct dk_runner_stats {
	uint64_t docs, chunks;          /* documents seen (in this shard), chunks processed */
	uint64_t ok, skipped, errors;   /* records written */
	uint64_t excluded;              /* documents the input globs filtered out (skipped records) */
	uint64_t resumed;               /* records already in the output (not redone) */
	uint64_t unchanged;             /* --incremental: documents skipped as unchanged */
	uint64_t other_shards;          /* documents left to other shards */
	uint64_t prompt_tokens, cached_tokens, completion_tokens;
	uint64_t fail_on_hits;          /* records whose label is in fail_on */
	uint64_t unsupported;           /* summaries with unsupported items */
	uint32_t prefix_files_loaded;   /* --prefix-dir: instruction files loaded, written */
	uint32_t prefix_files_saved;
	uint64_t prefix_tokens_loaded;
	double wall_ms;
	uint64_t remote_ok, remote_errors; /* requests to the fallback endpoint, by outcome */
	int remote_peak;                /* most requests in flight at once */
	bool interrupted;               /* stopped by *stop */
	int signal;                     /* the value *stop held */
	bool max_failures_hit;
};

/* Runs the pipeline over inputs.  DK_OK: the run finished (see stats for
 * errors); DK_SKIP: a usage/configuration refusal (bad pipeline vs model,
 * output exists or locked, resume mismatch; message in err); DK_FATAL: the
 * run could not go on (model load, I/O).  An interrupted run returns DK_OK
 * with stats->interrupted. */
enum dk_status dk_runner_run(const struct dk_runner_params *p, const char *const *inputs,
			     size_t n_inputs, struct dk_runner_stats *stats, char *err, size_t n);

/* Runs an OpenAI Batch input file (JSONL of {custom_id, method, url:
 * "/v1/chat/completions", body}) and writes OpenAI Batch output lines.
 * p->pipeline is ignored; generation defaults come from each body. */
enum dk_status dk_runner_batch(const struct dk_runner_params *p, const char *in_path,
			       struct dk_runner_stats *stats, char *err, size_t n);

/* What dk_runner_merge did: records written, records seen before (same id),
 * records a later version supersedes, and torn or unreadable lines dropped
 * (each with a warning on stderr). */
struct dk_merge_stats {
	uint64_t kept, repeated, superseded, dropped;
};

/* Combines the outputs of shards (`docket run --shard K/N`) or of
 * --incremental runs into out: every record once (by id, first seen wins),
 * less those another record supersedes.  Outputs whose records carry
 * different settings hashes are refused, naming the settings that differ
 * when the checkpoints are beside them.  out is written to a temporary file
 * and renamed into place (0600 when any input is private), so it is never
 * half-written.  DK_OK; DK_SKIP for a refusal (an input missing, different
 * settings, out exists without overwrite, out among the inputs); DK_FATAL
 * when writing fails.  The message is in err. */
enum dk_status dk_runner_merge(const char *out, const char *const *inputs, size_t n_inputs,
			       bool overwrite, struct dk_merge_stats *st, char *err, size_t n);

/* The shared-prefix batch workload, run by the scheduler `docket run` uses:
 * n_docs documents of the same n_prefix instruction tokens followed by
 * n_chunk tokens of their own (random ids from seed), n_gen greedy tokens
 * each (end of generation ignored), n_parallel in flight.  This is what
 * `docket bench` reports as its shared-prefix figure. */
struct dk_bench_shared_params {
	int n_docs, n_prefix, n_chunk, n_gen, n_parallel, n_batch;
	uint64_t seed;
	/* called on the caller's thread after each finished document; NULL: none */
	void (*progress)(void *ud, int done, int n_docs);
	void *ud;
};
struct dk_bench_shared_params dk_bench_shared_default_params(void);

struct dk_bench_shared_result {
	double seconds;         /* from the first submitted document to the last finished */
	double docs_per_s, gen_tok_per_s;
	double hit_rate;        /* cache-hit tokens / the shared-prefix tokens of all documents */
	double prompt_hit_rate; /* cache-hit tokens / all prompt tokens */
	uint64_t hit, miss;     /* prompt tokens from the cache, computed */
	uint64_t n_decode_calls;
};

/* Runs the workload on c, whose prefix cache setting (on or off) it
 * measures; c needs n_parallel sequences and n_prefix + n_chunk + n_gen
 * positions.  c is borrowed: its KV state is left dirty.  DK_OK, or an
 * error with its message in err (a context too small, out of memory, a
 * failed decode). */
enum dk_status dk_bench_shared_run(struct dk_ctx *c, const struct dk_bench_shared_params *p,
				   struct dk_bench_shared_result *r, char *err, size_t n);

/* Shard of a path: hash(path) mod n. */
int dk_runner_shard_of(const char *path, int n);

#endif
