/* Answers from the fallback endpoint (src/route) for chunks and reduce
 * steps the local engine cannot or should not answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/calls.h"
#include "runner/task.h"
#include "util/buf.h"

/* Does this run want to route a chunk for reason (a DK_FALLBACK_* bit)? */
bool dk_remote_wants(const struct runner *R, unsigned reason)
{
	return R->pl && R->fbp.when && dk_fallback_wants(&R->fbp, reason);
}

/* Remote-only mode. */
bool dk_remote_always(const struct runner *R)
{
	return dk_remote_wants(R, DK_FALLBACK_ALWAYS) && (R->fbp.when & DK_FALLBACK_ALWAYS);
}

/* Appends " (fallback refused: why)" to *msg (or makes it the message). */
void dk_remote_refuse(struct runner *R, char **msg)
{
	struct dk_buf b = {0};
	if (*msg && **msg)
		dk_buf_printf(&b, "%s (fallback refused: %s)", *msg, R->fb_why);
	else
		dk_buf_printf(&b, "fallback refused: %s", R->fb_why);
	free(*msg);
	*msg = dk_buf_steal(&b);
}

enum call_kind { CALL_CHUNK, CALL_REDUCE };

/*
 * A call for a prompt of the pipeline: the rendered system and user
 * templates as two messages.  The original text goes to the fallback
 * client, which applies the gate and redacts as its params say.  A prompt
 * that cannot be rendered comes back as a failed call, in turn.
 */
static void submit(struct runner *R, struct doc *d, int index, enum call_kind kind, const char *rid,
		   const struct dk_tmpl *user, const struct dk_var_values *vals, int max_tokens,
		   json_t *schema)
{
	const struct dk_pipeline *pl = R->pl;
	char *sys = pl->system ? dk_prompt_render_text(pl->system, vals) : NULL;
	char *usr = dk_prompt_render_text(user, vals);
	bool rendered = usr != NULL;
	struct dk_call *c = dk_call_new(sys, usr ? usr : strdup(""));
	if (!c) {
		json_decref(schema);
		dk_run_oom(R, d->path);
		return;
	}
	c->schema = schema;
	snprintf(c->record_id, sizeof c->record_id, "%s", rid); /* a hash: paths may identify */
	c->max_tokens = max_tokens;
	c->temperature = R->temperature;
	c->sensitive = pl->sensitive;
	c->owner = d;
	c->index = index;
	c->kind = kind;
	d->pending++;
	if (rendered) {
		dk_calls_submit(R->calls, c);
	} else {
		c->status = DK_SKIP;
		snprintf(c->resp.error, sizeof c->resp.error, "cannot render the prompt");
		dk_calls_finished(R->calls, c);
	}
}

void dk_remote_chunk(struct runner *R, struct doc *d, size_t ci)
{
	const struct dk_pipeline *pl = R->pl;
	struct cres *c = &d->cr[ci];
	c->fb = false;
	c->remote_tried = true;
	if (!R->fb) {
		dk_remote_refuse(R, &c->error);
		return;
	}
	const struct dk_chunk *ch = &d->chunks[ci];
	char *text = strndup(d->text + ch->start, ch->end - ch->start);
	if (!text) {
		dk_run_oom(R, d->path);
		return;
	}
	char rid[33];
	dk_run_chunk_id(R, d, ci, rid);
	struct chunk_vars cv;
	dk_prompt_chunk_vars_init(R, d, ci, text, &cv);
	/* extract asks one field per local prompt; remotely all at once */
	struct dk_buf fields = {0};
	for (size_t i = 0; i < pl->n_fields; i++)
		dk_buf_printf(&fields, "%s%s", i ? ", " : "", pl->fields[i].name);
	cv.vals.v[DK_VAR_FIELD] = fields.data ? fields.data : "";
	json_t *schema = R->ops->remote_schema ? R->ops->remote_schema(R) : NULL;
	submit(R, d, (int)ci, CALL_CHUNK, rid, pl->user, &cv.vals, R->max_tokens, schema);
	free(text);
	dk_prompt_chunk_vars_free(&cv);
	dk_buf_free(&fields);
}

void dk_remote_reduce(struct runner *R, struct doc *d, const struct dk_tmpl *user,
		      const struct dk_var_values *vals, int max_tokens)
{
	submit(R, d, -1, CALL_REDUCE, d->id, user, vals, max_tokens, NULL);
}

/* "local problem (fallback failed: why)", or the remote failure alone. */
static char *failed_msg(const char *local, const char *why)
{
	struct dk_buf b = {0};
	if (local && *local)
		dk_buf_printf(&b, "%s (fallback failed: %s)", local, why);
	else
		dk_buf_printf(&b, "fallback failed: %s", why);
	return dk_buf_steal(&b);
}

static void apply_chunk(struct runner *R, struct doc *d, struct cres *c, struct dk_call *k)
{
	const struct dk_fallback_response *resp = &k->resp;
	if (k->status == DK_OK) {
		char *bad = R->ops->remote_answer(R, c, resp->content ? resp->content : "");
		free(c->error);
		c->error = bad;
		if (!bad) {
			c->routed = true;
			snprintf(c->fb_host, sizeof c->fb_host, "%s", resp->host);
			snprintf(c->fb_model, sizeof c->fb_model, "%s", resp->model);
		}
	} else {
		char *m = failed_msg(c->error, resp->error);
		free(c->error);
		c->error = m;
	}
	if (resp->prompt_tokens > 0) {
		c->pt += (uint64_t)resp->prompt_tokens;
		d->prompt_tokens += (uint64_t)resp->prompt_tokens;
	}
	if (resp->completion_tokens > 0) {
		c->gt += (uint64_t)resp->completion_tokens;
		d->completion_tokens += (uint64_t)resp->completion_tokens;
	}
}

static void apply_reduce(struct doc *d, struct dk_call *k)
{
	const struct dk_fallback_response *resp = &k->resp;
	if (k->status == DK_OK) {
		free(d->doc_error);
		d->doc_error = NULL;
		free(d->reduce_out);
		d->reduce_out = dk_run_trim_dup(resp->content ? resp->content : "");
		d->routed = true;
		snprintf(d->fb_host, sizeof d->fb_host, "%s", resp->host);
		snprintf(d->fb_model, sizeof d->fb_model, "%s", resp->model);
	} else {
		char *m = failed_msg(d->doc_error, resp->error);
		free(d->doc_error);
		d->doc_error = m;
	}
	if (resp->prompt_tokens > 0)
		d->prompt_tokens += (uint64_t)resp->prompt_tokens;
	if (resp->completion_tokens > 0)
		d->completion_tokens += (uint64_t)resp->completion_tokens;
}

/* One answer back on the runner's thread: into the chunk or the document,
 * then on down the document's way. */
static void apply(struct runner *R, struct dk_call *k)
{
	struct doc *d = k->owner;
	if (k->status == DK_OK)
		R->st->remote_ok++;
	else
		R->st->remote_errors++;
	if (k->status == DK_FATAL) { /* no record: a resumed run asks again */
		if (!R->stopping)
			dk_err(R->err, sizeof R->err, DK_FATAL, "fallback: %s", k->resp.error);
		R->io_failed = true;
		R->stopping = true;
		return;
	}
	d->pending--;
	if (k->kind == CALL_REDUCE) {
		apply_reduce(d, k);
	} else {
		apply_chunk(R, d, &d->cr[k->index], k);
		if (R->pl->per_chunk)
			dk_record_emit_chunk(R, d, (size_t)k->index);
	}
	if (d->pending == 0)
		dk_run_doc_stage_done(R, d);
}

size_t dk_remote_drain(struct runner *R, int wait_ms)
{
	if (!R->calls)
		return 0;
	struct dk_call *k;
	while (!R->stopping && (k = dk_calls_take(R->calls, wait_ms))) {
		apply(R, k);
		dk_call_free(k);
		wait_ms = 0;
	}
	return dk_calls_outstanding(R->calls);
}

bool dk_remote_resolve(struct runner *R, struct doc *d, size_t ci)
{
	struct cres *c = &d->cr[ci];
	if (!c->want || c->routed || c->remote_tried)
		return false;
	if (!c->fb && c->error && c->reason != DK_REASON_TOO_LONG &&
	    dk_remote_wants(R, DK_FALLBACK_LOCAL_ERROR))
		c->fb = true;
	if (!c->fb)
		return false;
	int before = d->pending;
	dk_remote_chunk(R, d, ci);
	return d->pending != before;
}
