/* Answers from the fallback endpoint (src/route) for chunks and reduce
 * steps the local engine cannot or should not answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/*
 * One remote chat completion for a prompt of the pipeline: the rendered
 * system and user templates as two messages.  The original text goes to
 * dk_fallback_chat, which applies the gate and redacts as its params say.
 * Returns the status; on DK_FATAL the run stops (R->err says why) and the
 * caller writes no record, so a resumed run asks again.
 */
enum dk_status dk_remote_ask(struct runner *R, const char *rid, const struct dk_tmpl *user,
			     const struct dk_var_values *vals, int max_tokens,
			     const json_t *schema, struct dk_fallback_response *resp)
{
	const struct dk_pipeline *pl = R->pl;
	char *sys = pl->system ? dk_prompt_render_text(pl->system, vals) : NULL;
	char *usr = dk_prompt_render_text(user, vals);
	struct dk_fallback_message m[2];
	size_t nm = 0;
	if (sys && *sys)
		m[nm++] = (struct dk_fallback_message){"system", sys};
	m[nm++] = (struct dk_fallback_message){"user", usr ? usr : ""};
	struct dk_fallback_request rq = {0};
	rq.messages = m;
	rq.n_messages = nm;
	rq.max_tokens = max_tokens;
	rq.temperature = R->temperature;
	rq.seed = -1;
	rq.json_schema = schema;
	rq.record_id = rid; /* a hash: document paths may themselves be identifying */
	rq.sensitive = pl->sensitive;
	enum dk_status st;
	if (!usr) {
		memset(resp, 0, sizeof *resp);
		snprintf(resp->error, sizeof resp->error, "cannot render the prompt");
		st = DK_SKIP;
	} else {
		st = dk_fallback_chat(R->fb, &rq, resp);
		if (st == DK_OK)
			R->st->remote_ok++;
		else
			R->st->remote_errors++;
	}
	free(sys);
	free(usr);
	if (st == DK_FATAL) {
		dk_err(R->err, sizeof R->err, DK_FATAL, "fallback: %s", resp->error);
		R->io_failed = true;
		R->stopping = true;
	}
	return st;
}

/*
 * Answers chunk ci remotely, replacing whatever the local engine left in
 * its result.  why_local: the local problem, kept in the error when the
 * remote answer fails too.  Returns -1 when the run must stop (no record).
 */
int dk_remote_chunk(struct runner *R, struct doc *d, size_t ci)
{
	const struct dk_pipeline *pl = R->pl;
	struct cres *c = &d->cr[ci];
	c->fb = false;
	if (!R->fb) {
		dk_remote_refuse(R, &c->error);
		return 0;
	}
	const struct dk_chunk *ch = &d->chunks[ci];
	char *text = strndup(d->text + ch->start, ch->end - ch->start);
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
	struct dk_fallback_response resp;
	enum dk_status st = dk_remote_ask(R, rid, pl->user, &cv.vals, R->max_tokens, schema, &resp);
	json_decref(schema);
	free(text);
	dk_prompt_chunk_vars_free(&cv);
	dk_buf_free(&fields);
	if (st == DK_FATAL) {
		dk_fallback_response_free(&resp);
		return -1;
	}
	if (st == DK_OK) {
		const char *content = resp.content ? resp.content : "";
		char *bad = R->ops->remote_answer(R, c, content);
		free(c->error);
		c->error = bad;
		if (!bad) {
			c->routed = true;
			snprintf(c->fb_host, sizeof c->fb_host, "%s", resp.host);
			snprintf(c->fb_model, sizeof c->fb_model, "%s", resp.model);
		}
	} else {
		struct dk_buf b = {0};
		if (c->error && *c->error)
			dk_buf_printf(&b, "%s (fallback failed: %s)", c->error, resp.error);
		else
			dk_buf_printf(&b, "fallback failed: %s", resp.error);
		free(c->error);
		c->error = dk_buf_steal(&b);
	}
	if (resp.prompt_tokens > 0) {
		c->pt += (uint64_t)resp.prompt_tokens;
		d->prompt_tokens += (uint64_t)resp.prompt_tokens;
	}
	if (resp.completion_tokens > 0) {
		c->gt += (uint64_t)resp.completion_tokens;
		d->completion_tokens += (uint64_t)resp.completion_tokens;
	}
	dk_fallback_response_free(&resp);
	return 0;
}

/* Routes chunk ci when it was marked, or when the local engine failed and
 * the run wants local_error.  -1: the run must stop. */
int dk_remote_resolve(struct runner *R, struct doc *d, size_t ci)
{
	struct cres *c = &d->cr[ci];
	if (!c->want || c->routed)
		return 0;
	if (!c->fb && c->error && c->reason != DK_REASON_TOO_LONG &&
	    dk_remote_wants(R, DK_FALLBACK_LOCAL_ERROR))
		c->fb = true;
	if (!c->fb)
		return 0;
	return dk_remote_chunk(R, d, ci);
}
