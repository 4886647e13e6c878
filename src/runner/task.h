/*
 * Tasks: what a pipeline's task asks of the engine for a chunk, and how it
 * turns the answers into a record's output.
 *
 * Each task is one file (task_<name>.c) holding one struct dk_task_ops,
 * and one row of the table in task.c.  Nothing outside the table branches
 * on the task.  Every hook runs on the runner's thread; a hook that fails
 * for one chunk leaves the message in that chunk's result (cres.error and
 * cres.reason), and one that runs out of memory calls dk_run_oom.
 */
#ifndef DK_RUNNER_TASK_H
#define DK_RUNNER_TASK_H

#include "runner/run.h"

/* What a record says about its output besides the output itself. */
struct task_verdict {
	bool schema_checked; /* the output was validated against the pipeline's schema */
	bool schema_valid;
};

struct dk_task_ops {
	/* before the engine starts (extract: the schema and its grammars); NULL: none */
	enum dk_status (*setup)(struct runner *R, char *err, size_t n);
	/* before the first document (classify: calibration); NULL: none */
	void (*start)(struct runner *R);
	/* the document start queued (is_calib) is done; needed with a start
	 * that queues one */
	void (*calibrated)(struct runner *R, struct doc *d);
	/* queues the jobs of chunk ci, whose template values are cv */
	void (*spawn)(struct runner *R, struct doc *d, size_t ci, struct chunk_vars *cv);
	/* folds a finished job of chunk c into its result */
	void (*job_result)(struct runner *R, struct doc *d, struct cres *c, const struct job *j,
			   const struct dk_job_result *r);
	/* the output of chunks [c0, c1) of d (one chunk, or the whole
	 * document); sets its task fields (labels, finish_reason, ...) on rec */
	json_t *(*output)(struct runner *R, struct doc *d, size_t c0, size_t c1, json_t *rec,
			  struct task_verdict *v);
	/* the schema a remote answer must follow (new reference), or NULL */
	json_t *(*remote_schema)(const struct runner *R);
	/* reads a remote answer into c: NULL, or why it is unusable (malloc'd) */
	char *(*remote_answer)(struct runner *R, struct cres *c, const char *content);
	/* once every chunk is done: true when it takes the document over (a
	 * reduce job, or its record); NULL: none */
	bool (*reduce)(struct runner *R, struct doc *d);
};

extern const struct dk_task_ops dk_task_summarize, dk_task_generate, dk_task_classify,
	dk_task_extract;

/* The ops of task t. */
const struct dk_task_ops *dk_task_ops(enum dk_task t);

/* Generate and summarize share a chunk's job (one free-text generation)
 * and its remote answer. */
void dk_task_text_spawn(struct runner *R, struct doc *d, size_t ci, struct chunk_vars *cv);
void dk_task_text_job_result(struct runner *R, struct doc *d, struct cres *c, const struct job *j,
			     const struct dk_job_result *r);
char *dk_task_text_remote_answer(struct runner *R, struct cres *c, const char *content);

/* Generate and summarize: the chunks' texts joined by newlines, with
 * finish_reason "length" when any was cut off. */
json_t *dk_task_joined_text(struct doc *d, size_t c0, size_t c1, json_t *rec);

#endif
