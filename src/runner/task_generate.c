/* generate: one free-text answer per chunk; a document's answer is its
 * chunks' answers, one per line. */
#include <stdlib.h>
#include <string.h>

#include "runner/task.h"
#include "util/buf.h"

void dk_task_text_spawn(struct runner *R, struct doc *d, size_t ci, struct chunk_vars *cv)
{
	const struct dk_pipeline *pl = R->pl;
	struct cres *cr = &d->cr[ci];
	struct tokv t = {0};
	int n_prefix = 0, n_static = 0;
	struct job *j = dk_run_gen_job(R, d, ci, 0, ROLE_MAP);
	if (!j) {
		dk_run_oom(R, d->path);
		return;
	}
	/* an answer template starts the reply for the model (summarize: the
	 * summary itself, not a preamble about it) */
	if (dk_prompt_build(R, pl->system, pl->user, &cv->vals, DK_VAR_TEXT, &t, &n_prefix, &n_static) ||
	    dk_prompt_answer_prefix(R, &cv->vals, &t, NULL)) {
		cr->error = strdup("cannot render the prompt");
		free(t.v);
		free(j);
		return;
	}
	dk_run_submit(R, j, &t, n_prefix, n_static, &cr->error, &cr->reason);
}

void dk_task_text_job_result(struct runner *R, struct doc *d, struct cres *c, const struct job *j,
			     const struct dk_job_result *r)
{
	free(c->gen);
	c->gen = dk_run_trim_dup(r->text);
}

json_t *dk_task_joined_text(struct doc *d, size_t c0, size_t c1, json_t *rec)
{
	bool cut = false;
	for (size_t i = c0; i < c1; i++)
		cut |= d->cr[i].hit_length;
	/* a text cut off at max_tokens is flagged, not passed off as done */
	json_object_set_new(rec, "finish_reason", json_string(cut ? "length" : "stop"));
	struct dk_buf b = {0};
	for (size_t i = c0; i < c1; i++) {
		if (i > c0)
			dk_buf_putc(&b, '\n');
		dk_buf_puts(&b, d->cr[i].gen ? d->cr[i].gen : "");
	}
	json_t *s = json_string(b.data ? b.data : "");
	dk_buf_free(&b);
	return s;
}

static json_t *output(struct runner *R, struct doc *d, size_t c0, size_t c1, json_t *rec,
		      struct task_verdict *v)
{
	return dk_task_joined_text(d, c0, c1, rec);
}

char *dk_task_text_remote_answer(struct runner *R, struct cres *c, const char *content)
{
	free(c->gen);
	c->gen = dk_run_trim_dup(content);
	return NULL;
}

const struct dk_task_ops dk_task_generate = {
	.spawn = dk_task_text_spawn,
	.job_result = dk_task_text_job_result,
	.output = output,
	.remote_answer = dk_task_text_remote_answer,
};
