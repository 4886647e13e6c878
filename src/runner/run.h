/*
 * The runner's inside, shared by its stages (not a public interface):
 *
 *   runner.c     set-up, the loop, the finish
 *   docs.c       a document's way: open, chunks -> jobs (through its task), results, stages
 *   task.c       the task table; task_*.c: what each task asks of the engine
 *                and how it reads the answers (task.h)
 *   prompt.c     templates -> token prompts
 *   record.c     records and output lines
 *   remote.c     the routing stage: answers from the fallback endpoint
 *   calls.c      remote calls in flight on worker threads (calls.h)
 *   batchfile.c  OpenAI Batch input files
 *   sched.c      jobs -> engine slots (knows nothing of the above)
 *
 * One struct runner lives for one run (dk_runner_run or dk_runner_batch);
 * it owns its documents, each document its chunk results.  Everything here
 * runs on the runner's thread; only the network calls of remote.c run on
 * calls.c's workers, and their answers come back to this thread.
 */
#ifndef DK_RUNNER_RUN_H
#define DK_RUNNER_RUN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "docket/chat.h"
#include "docket/ingest.h"
#include "docket/pipeline.h"
#include "docket/route.h"
#include "docket/runner.h"
#include "runner/sched.h"
#include "util/buf.h"
#include "util/err.h"

/* Why a chunk or a document has no answer: decisions (fallback routing)
 * are made on this, never on the message. */
enum dk_reason {
	DK_REASON_NONE,
	DK_REASON_TOO_LONG,       /* the prompt and its generation do not fit the context */
	DK_REASON_INVALID_OUTPUT, /* the local answer fails the schema */
	DK_REASON_LOCAL_ERROR,    /* the engine or the prompt failed */
};

enum job_role { ROLE_MAP, ROLE_REDUCE, ROLE_FIELD, ROLE_OBJECT, ROLE_LABEL, ROLE_BATCH, ROLE_LINE };

/* A token prompt being built. */
struct tokv {
	dk_token *v;
	int n, cap;
};

/* The runner's side of a scheduler job: what its result is for. */
struct job {
	struct runner *R;
	struct doc *doc;
	int chunk;            /* chunk index, -1 for reduce/batch */
	int sub;              /* field or label index */
	int cand;             /* ROLE_LINE: the candidate line, and whether after the
				 content-free document */
	bool null_doc;
	enum job_role role;
	struct dk_job_spec spec;
};

/* extract.line_start: the lines of a chunk scored as a field's start. */
struct line_pick {
	int n;
	char **line;      /* whitespace runs as one space, as a copy reads the text */
	double *lp, *lq;  /* log p(line | the document), log p(line | "N/A") */
	int pending;
	char *forced;     /* '"' and the chosen line: the start written for the model */
};

struct cres {
	uint64_t pt, ct, gt;  /* usage: prompt, cached, completion tokens */
	char *gen;
	char *trimmed;    /* summarize: the partial sentence cut from gen's end */
	double *logp;     /* per label: classify, of its first token (all of it when remote) */
	double *logp_tail; /* per label: of its tokens after the first (NULL: none has any) */
	char **fields;    /* per field: raw answer text, or JSON text (fields_json); NULL = absent */
	struct line_pick *picks; /* per field, for extract.line_start fields */
	bool fields_json; /* fields hold JSON values (constrained, object mode, fallback) */
	bool truncated;   /* a constrained generation ran out of tokens */
	bool hit_length;  /* some generation of the chunk ran out of tokens */
	bool bad_json;    /* object mode: the answer held no JSON object */
	char *error;
	enum dk_reason reason; /* why error is set */
	bool want;
	int pending;
	bool fb;          /* to be answered by the fallback endpoint when emitted */
	bool remote_tried; /* a remote answer was asked for (once per chunk) */
	bool routed;      /* answered by the fallback endpoint */
	char fb_host[256], fb_model[128];
};

struct doc {
	char *path, *member, *mime;
	char sha256[65];
	uint64_t bytes;
	char *text;
	struct dk_chunk *chunks;
	size_t n_chunks;
	struct cres *cr;
	size_t n_fields;
	int pending;          /* jobs and remote calls not finished */
	bool reduced;
	bool fb_done;         /* chunks' fallbacks resolved (per-document records) */
	bool routed;          /* the reduce step was answered remotely */
	char fb_host[256], fb_model[128]; /* of the remote reduce answer */
	char *doc_error;      /* why the reduce step has no answer */
	char *reduce_out;
	char id[33];
	uint64_t prompt_tokens, cached_tokens, completion_tokens;
	double t0;
	bool is_calib;
	json_t *supersedes;   /* --incremental: ids of an earlier version's records */
	/* batch requests */
	char *custom_id;
	char *req_model;
	char **stops;
	size_t n_stops;
	const char *finish;
	char *batch_error;
	struct doc *next;
};

struct dk_task_ops;

struct runner {
	const struct dk_runner_params *p;
	const struct dk_pipeline *pl;
	const struct dk_task_ops *ops; /* the pipeline's task; NULL for batch files */
	struct dk_model *model;
	struct dk_ctx *ctx;
	const struct dk_tokenizer *tok;
	enum dk_chat_family chat;
	int32_t n_vocab, n_ctx, n_seq, n_batch;
	const char *model_sha, *model_name;
	struct dk_out *out;
	struct dk_ingest *ing;
	uint64_t *input_docs; /* records per input operand, to warn of one that held none */
	const char *const *inputs; /* the operands as given (file hints read paths from them) */
	size_t n_inputs;
	FILE *batch_in;
	uint64_t batch_line;
	struct dk_sched *sched;
	struct doc *docs;
	int n_open;
	bool eof;
	bool stopping;
	bool io_failed;
	double *calib;        /* classify: label log-probabilities for a content-free document */
	/* extract: the schema, and grammars (one per field, or one for the object) */
	json_t *schema;
	json_t **field_schema; /* each field's own schema, with the definitions */
	bool constrained;
	struct dk_grammar_vocab *gvocab;
	struct dk_grammar **gram;
	int n_gram;
	bool calib_pending;
	struct dk_runner_stats *st;
	json_t *settings;     /* what determines a record's bits (the checkpoint's configuration
			       * less shard and format), and its sha256: in every record */
	char settings_hash[65];
	struct dk_prefixes *pfx; /* --prefix-dir; NULL when off */
	/* fallback routing: fb is NULL when nothing may or will be sent */
	struct dk_fallback *fb;
	struct dk_fallback_params fbp;
	char *audit_path;
	char fb_why[256];     /* why the gate refuses, when it does */
	struct dk_calls *calls; /* remote calls in flight; NULL when fb is */
	int max_tokens;
	float temperature;
	uint64_t seed;
	char err[DK_ERRMSG_MAX];
	double t0;
	struct dk_progress_meter *meter; /* progress lines, log lines, metrics */
	FILE *dump;           /* DOCKET_DUMP_PROMPTS: every job's prompt tokens, JSONL */
};

/* ---- docs.c ---- */

double dk_run_now_ms(void);
uint64_t dk_run_hash64(const void *p, size_t n);
/* 32 hex chars of sha256(kind, a, b, c) */
void dk_run_id32(char out[33], const char *kind, const char *a, const char *b, const char *c);
/* Memory ran out on a document's way: the run stops as could-not-finish
 * (exit 3) with what is written kept, and --resume redoes that document. */
void dk_run_oom(struct runner *R, const char *where);
/* s without leading and trailing whitespace (malloc'd; NULL when out of memory) */
char *dk_run_trim_dup(const char *s);
void dk_run_chunk_id(struct runner *R, const struct doc *d, size_t ci, char out[33]);
void dk_run_doc_free(struct doc *d);
/* Unlinks d from the open documents and frees it. */
void dk_run_doc_close(struct runner *R, struct doc *d);
/* Every job of d has finished: reduce, route or emit. */
void dk_run_doc_stage_done(struct runner *R, struct doc *d);
/* Opens one walked document: skips, resumes, or chunks and spawns its jobs. */
void dk_run_doc_open(struct runner *R, const struct dk_doc *dd);
/* Queues the jobs of chunk ci of d through the pipeline's task. */
void dk_run_spawn_chunk(struct runner *R, struct doc *d, size_t ci);

struct job *dk_run_job_new(struct runner *R, struct doc *d, int chunk, int sub,
			   enum dk_job_kind kind, enum job_role role);
/* A generate job for chunk ci with the run's settings; its seed is the
 * chunk's (plus sub), so a record does not depend on its batch mates. */
struct job *dk_run_gen_job(struct runner *R, struct doc *d, size_t ci, int sub, enum job_role role);
struct dk_sampler_params dk_run_gen_params(struct runner *R, uint64_t salt);
/* Queues j over the tokens of t (taken).  When the prompt cannot run, frees
 * j, sets *err_slot (unless set) and *why (may be NULL) and returns -1. */
int dk_run_submit(struct runner *R, struct job *j, struct tokv *t, int n_prefix, int n_static,
		  char **err_slot, enum dk_reason *why);

/* ---- prompt.c ---- */

int dk_prompt_tokenize(struct runner *R, struct tokv *t, const char *s, size_t len, bool add,
		       bool special);
/* dk_chunk_params.count: tokens of text (ud: the runner) */
int dk_prompt_count_tokens(void *ud, const char *text, size_t len);
/*
 * The prompt of one job: [chat head] system [chat between] user [chat tail].
 * *n_prefix: tokens before the first split_var placeholder (a DK_VAR_*; -1
 * or none: all tokens) of the user template; *n_static: tokens before the
 * first placeholder that is not the pipeline's.  0, or -1 on failure.
 */
int dk_prompt_build(struct runner *R, const struct dk_tmpl *sys, const struct dk_tmpl *user,
		    const struct dk_var_values *vals, int split_var, struct tokv *out,
		    int *n_prefix, int *n_static);
/* Appends the pipeline's answer template (the start of the reply);
 * *word_next (may be NULL): it ends inside a sentence. */
int dk_prompt_answer_prefix(struct runner *R, const struct dk_var_values *vals, struct tokv *t,
			    bool *word_next);
/* t rendered as one string (malloc'd), NULL when out of memory */
char *dk_prompt_render_text(const struct dk_tmpl *t, const struct dk_var_values *vals);

/* The template values of chunk ci of d (pipeline, document and chunk
 * scopes; a task sets the field ones), borrowing text and the run's
 * strings; the numbers and the label list live in the struct.  Free with
 * dk_prompt_chunk_vars_free. */
struct chunk_vars {
	char idx[24], cnt[24], bytes[24];
	struct dk_buf labels;
	struct dk_buf hints; /* {{hints}}, when a template asks for them */
	struct dk_var_values vals;
};
void dk_prompt_chunk_vars_init(const struct runner *R, const struct doc *d, size_t ci,
			       const char *text, struct chunk_vars *cv);
void dk_prompt_chunk_vars_free(struct chunk_vars *cv);

/* ---- record.c ---- */

json_t *dk_record_source(const struct doc *d);
json_t *dk_record_base(struct runner *R, const char *id, const struct doc *d,
		       const struct dk_chunk *c);
enum dk_rec_status { DK_REC_OK, DK_REC_ERROR, DK_REC_SKIPPED };

/* How a record ends: what dk_record_end writes after the task's fields. */
struct record_end {
	enum dk_rec_status status;
	json_t *output;          /* taken; NULL = null */
	const char *error;       /* error, or a skip's detail */
	const char *skip;        /* skip_reason */
	uint64_t pt, ct, gt;     /* usage: prompt, cached, completion tokens */
	double ms;               /* timing_ms */
	const char *fb_host, *fb_model; /* answered by the fallback endpoint; NULL = local */
};
/* Finishes rec (consumed) and writes it as the run's format wants it (a
 * record, or an OpenAI Batch output line built from e), and counts it. */
void dk_record_end(struct runner *R, const char *id, json_t *rec, const struct record_end *e);
/* Writes one output line (consumed) and counts it. */
void dk_record_put_line(struct runner *R, const char *out_id, json_t *line, enum dk_rec_status status);
/* The record of chunk ci, unless it first waits for a remote answer (which
 * calls it again). */
void dk_record_emit_chunk(struct runner *R, struct doc *d, size_t ci);
/* The record of d; false when it waits for remote answers instead (d stays
 * open, and dk_run_doc_stage_done comes again when they are in). */
bool dk_record_emit_doc(struct runner *R, struct doc *d, const char *error);
void dk_record_emit_skip(struct runner *R, struct doc *d, const char *reason, const char *detail);

/* ---- remote.c ---- */

/* Does this run want to route a chunk for reason (a DK_FALLBACK_* bit)? */
bool dk_remote_wants(const struct runner *R, unsigned reason);
/* Remote-only mode. */
bool dk_remote_always(const struct runner *R);
/* Appends " (fallback refused: why)" to *msg (or makes it the message). */
void dk_remote_refuse(struct runner *R, char **msg);
/* Asks the fallback endpoint to answer chunk ci (all of it: every field,
 * every label), replacing what the local engine left.  The call runs on a
 * worker; d stays open (d->pending) until its answer is applied on this
 * thread, which then emits the chunk's record (per-chunk pipelines) or
 * re-enters dk_run_doc_stage_done.  Once per chunk. */
void dk_remote_chunk(struct runner *R, struct doc *d, size_t ci);
/* Sends chunk ci when it was marked, or when the local engine failed and
 * the run wants local_error: true when it did (the caller waits). */
bool dk_remote_resolve(struct runner *R, struct doc *d, size_t ci);
/* Asks for the reduce step of d (template user over vals); its answer sets
 * d->reduce_out or d->doc_error, then dk_run_doc_stage_done comes again. */
void dk_remote_reduce(struct runner *R, struct doc *d, const struct dk_tmpl *user,
		      const struct dk_var_values *vals, int max_tokens);
/* Applies every remote answer that is in; waits up to wait_ms for one when
 * none is.  Returns the calls still out. */
size_t dk_remote_drain(struct runner *R, int wait_ms);

/* ---- batchfile.c ---- */

/* One request line of an OpenAI Batch input file. */
void dk_batchfile_open_line(struct runner *R, const char *line, size_t len);
/* The output line of a finished request. */
void dk_batchfile_emit(struct runner *R, struct doc *d);

#endif
