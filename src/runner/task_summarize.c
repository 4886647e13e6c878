/* summarize: a summary per chunk (map), then one of the chunk summaries
 * (reduce), locally or from the fallback endpoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/task.h"
#include "util/buf.h"

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
		dk_buf_printf(&sum, "%sPart %zu: %s", i ? "\n" : "", i + 1,
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
	} else if (dk_prompt_build(R, pl->system, pl->reduce, &vals, DK_VAR_SUMMARIES, &t, &n_prefix, &n_static)) {
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

/* Without a reduce prompt the parts are joined, as for generate. */
static json_t *output(struct runner *R, struct doc *d, size_t c0, size_t c1, json_t *rec,
		      struct task_verdict *v)
{
	if (c1 - c0 > 1 && d->reduce_out) {
		json_object_set_new(rec, "finish_reason", json_string(d->finish ? d->finish : "stop"));
		return json_string(d->reduce_out);
	}
	return dk_task_joined_text(d, c0, c1, rec);
}

const struct dk_task_ops dk_task_summarize = {
	.spawn = dk_task_text_spawn,
	.job_result = dk_task_text_job_result,
	.output = output,
	.remote_answer = dk_task_text_remote_answer,
	.reduce = reduce,
};
