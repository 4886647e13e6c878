/* summarize: a summary per chunk (map), then one of the chunk summaries
 * (reduce), locally or from the fallback endpoint; every summary ends at a
 * sentence and is checked against its source (runner/support.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/support.h"
#include "runner/task.h"
#include "util/buf.h"

/* --fail-on-unsupported hits named on stderr */
#define UNSUPPORTED_NAMED 50

/* A generation that ran out of tokens ends inside a sentence: cuts that
 * partial sentence when a complete one comes before it, and returns it
 * (malloc'd; NULL when nothing was cut). */
static char *cut_partial(char *text)
{
	size_t n = dk_support_complete_len(text);
	if (!n || !text[n])
		return NULL;
	char *tail = dk_run_trim_dup(text + n);
	if (tail && !*tail) {
		free(tail);
		return NULL;
	}
	text[n] = 0;
	return tail;
}

static void job_result(struct runner *R, struct doc *d, struct cres *c, const struct job *j,
		       const struct dk_job_result *r)
{
	dk_task_text_job_result(R, d, c, j, r);
	free(c->trimmed);
	c->trimmed = c->gen && r->finish == DK_FINISH_LENGTH ? cut_partial(c->gen) : NULL;
}

/* Queues the reduce job of a document of several chunks (or asks the
 * fallback endpoint, or writes the record when the reduce cannot run). */
static bool reduce(struct runner *R, struct doc *d)
{
	const struct dk_pipeline *pl = R->pl;
	if (d->n_chunks <= 1 || !pl->reduce)
		return false;
	d->reduced = true;
	struct dk_buf sum = {0};
	for (size_t i = 0; i < d->n_chunks; i++)
		dk_buf_printf(&sum, "%s%s", i ? "\n\n" : "",
			      d->cr[i].gen ? d->cr[i].gen : "");
	char cnt[24], bytes[24];
	snprintf(cnt, sizeof cnt, "%zu", d->n_chunks);
	snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)d->bytes);
	const char *base = strrchr(d->path, '/');
	base = base ? base + 1 : d->path;
	struct dk_var_values vals = {0};
	vals.v[DK_VAR_SUMMARIES] = sum.data ? sum.data : "";
	vals.v[DK_VAR_PATH] = d->path;
	vals.v[DK_VAR_NAME] = base;
	vals.v[DK_VAR_MEMBER] = d->member ? d->member : "";
	vals.v[DK_VAR_MIME] = d->mime;
	vals.v[DK_VAR_BYTES] = bytes;
	vals.v[DK_VAR_CHUNK_COUNT] = cnt;
	struct tokv t = {0};
	int n_prefix = 0, n_static = 0;
	char *error = NULL;
	bool remote = dk_remote_always(R);
	if (remote) {
		/* no local inference in remote-only mode */
	} else if (dk_prompt_build(R, pl->system, pl->reduce, &vals, DK_VAR_SUMMARIES, &t, &n_prefix, &n_static) ||
		   dk_prompt_answer_prefix(R, &vals, &t, NULL)) {
		error = strdup("cannot render the reduce prompt");
	} else {
		struct job *j = dk_run_job_new(R, d, -1, 0, DK_JOB_GEN, ROLE_REDUCE);
		j->spec.max_tokens = pl->reduce_max_tokens;
		j->spec.sp = dk_run_gen_params(R, dk_run_hash64(d->id, 32));
		j->spec.stop = pl->stop;
		j->spec.n_stop = pl->n_stop;
		enum dk_reason why = DK_REASON_NONE;
		dk_run_submit(R, j, &t, n_prefix, n_static, &error, &why);
		if (why == DK_REASON_TOO_LONG && dk_remote_wants(R, DK_FALLBACK_OVER_CONTEXT))
			remote = true;
	}
	if (remote && !R->fb) {
		dk_remote_refuse(R, &error);
	} else if (remote) {
		/* the answer comes back through dk_run_doc_stage_done, with
		 * reduce_out or doc_error set; a local error is kept in front */
		free(d->doc_error);
		d->doc_error = error;
		error = NULL;
		dk_remote_reduce(R, d, pl->reduce, &vals, pl->reduce_max_tokens);
		free(t.v);
		dk_buf_free(&sum);
		return true;
	}
	free(t.v);
	dk_buf_free(&sum);
	if (!error)
		return true; /* the reduce job calls dk_run_doc_stage_done again */
	if (dk_record_emit_doc(R, d, error))
		dk_run_doc_close(R, d);
	free(error);
	return true;
}

/* Sets unsupported (the summary's items its source lacks) on rec, and
 * counts and names the record for --fail-on-unsupported. */
static void support(struct runner *R, const struct doc *d, size_t c0, size_t c1, const char *summary,
		    json_t *rec)
{
	size_t a = d->chunks[c0].start, b = d->chunks[c1 - 1].end;
	char *src = strndup(d->text + a, b - a);
	json_t *u = src ? dk_support_check(summary, src) : NULL;
	free(src);
	if (!u) {
		dk_run_oom(R, d->path);
		return;
	}
	size_t n = json_array_size(u);
	if (n && ++R->st->unsupported <= UNSUPPORTED_NAMED && R->p->fail_on_unsupported) {
		char *list = json_dumps(u, JSON_COMPACT);
		fprintf(stderr, "docket: --fail-on-unsupported: '%s' has %zu unsupported item%s: %s%s\n",
			d->path, n, n == 1 ? "" : "s", list ? list : "",
			R->st->unsupported == UNSUPPORTED_NAMED ? " (further ones are counted, not named)"
								: "");
		free(list);
	}
	json_object_set_new(rec, "unsupported", u);
}

/* The summary of chunks [c0, c1): the reduce step's, or the chunks' own
 * joined by newlines (one chunk, or no reduce prompt).  The record says
 * how it ended (finish_reason), what was cut to end it at a sentence
 * (trimmed) and what in it the source does not contain (unsupported). */
static json_t *output(struct runner *R, struct doc *d, size_t c0, size_t c1, json_t *rec,
		      struct task_verdict *v)
{
	json_t *trimmed = json_array();
	json_t *out;
	if (c1 - c0 > 1 && d->reduce_out) {
		bool cut = d->finish && !strcmp(d->finish, "length");
		json_object_set_new(rec, "finish_reason", json_string(cut ? "length" : "stop"));
		char *tail = cut ? cut_partial(d->reduce_out) : NULL;
		if (tail)
			json_array_append_new(trimmed, json_string(tail));
		free(tail);
		out = json_string(d->reduce_out);
	} else {
		out = dk_task_joined_text(d, c0, c1, rec);
		for (size_t i = c0; i < c1; i++)
			if (d->cr[i].trimmed)
				json_array_append_new(trimmed, json_string(d->cr[i].trimmed));
	}
	if (json_array_size(trimmed))
		json_object_set(rec, "trimmed", trimmed);
	json_decref(trimmed);
	support(R, d, c0, c1, json_string_value(out), rec);
	return out;
}

const struct dk_task_ops dk_task_summarize = {
	.spawn = dk_task_text_spawn,
	.job_result = job_result,
	.output = output,
	.remote_answer = dk_task_text_remote_answer,
	.reduce = reduce,
};
