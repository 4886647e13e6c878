/* Records: the JSON line of a chunk, a document or a skipped input, in
 * docket's format or as an OpenAI Batch output line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/docjson.h"
#include "runner/output.h"
#include "runner/task.h"

json_t *dk_record_source(const struct doc *d)
{
	json_t *s = json_object();
	/* a file name need not be UTF-8: escaped as ls --json does, never dropped */
	json_object_set_new(s, "path", dk_json_str(d->path));
	json_object_set_new(s, "member", dk_json_str(d->member));
	json_object_set_new(s, "mime", dk_json_str(d->mime ? d->mime : ""));
	json_object_set_new(s, "bytes", json_integer((json_int_t)d->bytes));
	json_object_set_new(s, "sha256", json_string(d->sha256));
	return s;
}

/* Writes one output line (consumes line) and counts it. */
void dk_record_put_line(struct runner *R, const char *out_id, json_t *line, enum dk_rec_status status)
{
	struct dk_runner_stats *st = R->st;
	if (R->io_failed) { /* nothing after a failure: a half-built record is no record */
		json_decref(line);
		return;
	}
	char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
	json_decref(line);
	if (!s) {
		R->stopping = true;
		dk_err(R->err, sizeof R->err, DK_FATAL, "out of memory");
		return;
	}
	if (dk_out_write(R->out, s, strlen(s), out_id) != DK_OK) {
		snprintf(R->err, sizeof R->err, "%s", dk_out_error(R->out));
		R->stopping = true;
		R->io_failed = true;
		free(s);
		return;
	}
	free(s);
	if (status == DK_REC_OK)
		st->ok++;
	else if (status == DK_REC_SKIPPED)
		st->skipped++;
	else {
		st->errors++;
		if (R->p->max_failures >= 0 && st->errors > (uint64_t)R->p->max_failures) {
			st->max_failures_hit = true;
			R->stopping = true;
		}
	}
}

json_t *dk_record_base(struct runner *R, const char *id, const struct doc *d,
			   const struct dk_chunk *c)
{
	json_t *r = json_object();
	json_object_set_new(r, "id", json_string(id));
	json_object_set_new(r, "source", dk_record_source(d));
	if (c)
		json_object_set_new(r, "chunk",
				    json_pack("{s:i, s:i, s:I, s:I, s:i}", "index", c->index, "count",
					      c->count, "start", (json_int_t)c->start, "end",
					      (json_int_t)c->end, "tokens", c->tokens));
	if (R->pl)
		json_object_set_new(r, "pipeline",
				    json_pack("{s:s, s:s, s:s}", "name", R->pl->name, "task",
					      dk_task_name(R->pl->task), "hash", R->pl->hash));
	json_object_set_new(r, "model", json_pack("{s:s, s:s}", "name", R->model_name, "sha256",
						  R->model_sha ? R->model_sha : ""));
	json_object_set_new(r, "docket", json_pack("{s:s, s:s}", "version", DK_VERSION_STRING,
						   "settings", R->settings_hash));
	if (d && d->supersedes)
		json_object_set(r, "supersedes", d->supersedes);
	return r;
}

static const char *const status_name[] = {"ok", "error", "skipped"};

/* The OpenAI Batch output line carrying a record's output. */
static json_t *openai_line(struct runner *R, const char *id, const char *bid,
			   const struct record_end *e)
{
	json_t *line = json_object();
	json_object_set_new(line, "id", json_string(bid));
	json_object_set_new(line, "custom_id", json_string(id));
	if (e->status == DK_REC_OK) {
		json_t *o = e->output;
		char *content = json_is_string(o) ? strdup(json_string_value(o))
						  : json_dumps(o ? o : json_null(), JSON_COMPACT);
		json_int_t pt = (json_int_t)e->pt, ct = (json_int_t)e->gt;
		json_t *body = json_pack(
			"{s:s, s:s, s:I, s:o, s:[{s:i, s:{s:s, s:o}, s:s}], s:{s:I, s:I, s:I}}", "id",
			id, "object", "chat.completion", "created", (json_int_t)time(NULL), "model",
			dk_json_str(R->model_name), "choices", "index", 0, "message", "role", "assistant",
			"content", dk_json_str(content ? content : ""), "finish_reason", "stop", "usage",
			"prompt_tokens", pt,
			"completion_tokens", ct, "total_tokens", pt + ct);
		free(content);
		json_object_set_new(line, "response",
				    json_pack("{s:i, s:s, s:o}", "status_code", 200, "request_id", id,
					      "body", body));
		json_object_set_new(line, "error", json_null());
	} else {
		const char *st = status_name[e->status];
		const char *msg = e->error ? e->error : e->skip;
		json_object_set_new(line, "response", json_null());
		json_object_set_new(line, "error", json_pack("{s:s, s:o}", "code", st, "message",
							     dk_json_str(msg ? msg : st)));
	}
	return line;
}

void dk_record_end(struct runner *R, const char *id, json_t *r, const struct record_end *e)
{
	json_object_set_new(r, "status", json_string(status_name[e->status]));
	json_object_set_new(r, "output", e->output ? e->output : json_null());
	if (e->error)
		json_object_set_new(r, "error", dk_json_str(e->error));
	if (e->skip)
		json_object_set_new(r, "skip_reason", dk_json_str(e->skip));
	json_object_set_new(r, "usage", json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)e->pt,
						  "cached_tokens", (json_int_t)e->ct,
						  "completion_tokens", (json_int_t)e->gt));
	json_object_set_new(r, "timing_ms", json_real(round(e->ms * 10) / 10));
	json_object_set_new(r, "route", json_string(e->fb_host ? "fallback" : "local"));
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	json_object_set_new(r, "created", json_string(when));
	if (e->fb_host)
		json_object_set_new(r, "fallback", json_pack("{s:s, s:s}", "host", e->fb_host, "model",
							     e->fb_model ? e->fb_model : ""));
	if (R->p->format != DK_FORMAT_OPENAI_BATCH) {
		dk_record_put_line(R, id, r, e->status);
		return;
	}
	char bid[64];
	snprintf(bid, sizeof bid, "batch_req_%s", id);
	json_t *line = openai_line(R, id, bid, e);
	json_decref(r);
	dk_record_put_line(R, bid, line, e->status);
}

/* The remote endpoint that answered any part of d (host and model), or NULL. */
static void doc_route(const struct doc *d, struct record_end *e)
{
	if (d->routed) {
		e->fb_host = d->fb_host;
		e->fb_model = d->fb_model;
		return;
	}
	for (size_t i = 0; i < d->n_chunks; i++)
		if (d->cr[i].routed) {
			e->fb_host = d->cr[i].fb_host;
			e->fb_model = d->cr[i].fb_model;
			return;
		}
}

/* A local answer that fails the schema, when the run routes those: the
 * chunk is asked remotely (true), once. */
static bool reask_invalid(struct runner *R, struct doc *d, size_t ci)
{
	struct cres *c = &d->cr[ci];
	if (c->routed || c->remote_tried || !R->fb || !dk_remote_wants(R, DK_FALLBACK_INVALID_OUTPUT))
		return false;
	free(c->error);
	c->error = strdup("invalid-output: the local answer misses required fields");
	c->reason = DK_REASON_INVALID_OUTPUT;
	int before = d->pending;
	dk_remote_chunk(R, d, ci);
	return d->pending != before;
}

void dk_record_emit_chunk(struct runner *R, struct doc *d, size_t ci)
{
	struct cres *c = &d->cr[ci];
	/* the record is written only once the remote answer is in: a run
	 * killed during the call asks again when resumed */
	if (dk_remote_resolve(R, d, ci))
		return;
	char id[33];
	dk_run_chunk_id(R, d, ci, id);
	json_t *rec = dk_record_base(R, id, d, &d->chunks[ci]);
	json_t *o = NULL;
	if (!c->error) {
		struct task_verdict v = {0};
		o = R->ops->output(R, d, ci, ci + 1, rec, &v);
		if (v.schema_checked && !v.schema_valid && reask_invalid(R, d, ci)) {
			json_decref(o);
			json_decref(rec);
			return; /* emitted again with the remote answer */
		}
	}
	R->st->chunks++;
	struct record_end e = {
		.status = DK_REC_OK, .output = o, .pt = c->pt, .ct = c->ct, .gt = c->gt,
		.ms = dk_run_now_ms() - d->t0,
		.fb_host = c->routed ? c->fb_host : NULL, .fb_model = c->fb_model,
	};
	if (c->error) {
		json_object_del(rec, "schema_valid");
		e.status = DK_REC_ERROR;
		e.error = c->error;
	}
	dk_record_end(R, id, rec, &e);
}

bool dk_record_emit_doc(struct runner *R, struct doc *d, const char *error)
{
	json_t *rec = dk_record_base(R, d->id, d, NULL);
	if (!error)
		for (size_t i = 0; i < d->n_chunks && !error; i++)
			error = d->cr[i].error;
	json_t *o = NULL;
	if (!error) {
		struct task_verdict v = {0};
		o = R->ops->output(R, d, 0, d->n_chunks, rec, &v);
		if (v.schema_checked && !v.schema_valid) {
			bool sent = false;
			for (size_t i = 0; i < d->n_chunks; i++)
				sent |= reask_invalid(R, d, i);
			if (sent) {
				json_decref(o);
				json_decref(rec);
				return false;
			}
		}
	}
	R->st->chunks += d->n_chunks;
	struct record_end e = {
		.status = DK_REC_OK, .output = o, .pt = d->prompt_tokens, .ct = d->cached_tokens,
		.gt = d->completion_tokens, .ms = dk_run_now_ms() - d->t0,
	};
	if (error) {
		json_object_del(rec, "schema_valid");
		json_object_del(rec, "labels");
		e.status = DK_REC_ERROR;
		e.error = error;
	}
	doc_route(d, &e);
	dk_record_end(R, d->id, rec, &e);
	return true;
}

void dk_record_emit_skip(struct runner *R, struct doc *d, const char *reason, const char *detail)
{
	json_t *rec = dk_record_base(R, d->id, d, NULL);
	struct record_end e = {
		.status = DK_REC_SKIPPED, .error = detail, .skip = reason,
		.ms = dk_run_now_ms() - d->t0,
	};
	dk_record_end(R, d->id, rec, &e);
}
