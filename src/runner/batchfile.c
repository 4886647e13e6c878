/* OpenAI Batch input files (docket batch): one chat completion request
 * per line in, one Batch output line per request out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runner/output.h"
#include "runner/run.h"
#include "util/buf.h"

void dk_batchfile_emit(struct runner *R, struct doc *d)
{
	char out_id[64], rid[64], cid[64];
	snprintf(out_id, sizeof out_id, "batch_req_%s", d->id);
	snprintf(rid, sizeof rid, "req_%s", d->id);
	snprintf(cid, sizeof cid, "chatcmpl-%s", d->id);
	json_t *line = json_object();
	json_object_set_new(line, "id", json_string(out_id));
	json_object_set_new(line, "custom_id", json_string(d->custom_id));
	enum dk_rec_status status = DK_REC_OK;
	if (d->batch_error) {
		status = DK_REC_ERROR;
		json_object_set_new(
			line, "response",
			json_pack("{s:i, s:s, s:{s:{s:s, s:s, s:n}}}", "status_code", 400, "request_id",
				  rid, "body", "error", "message", d->batch_error, "type",
				  "invalid_request_error", "param"));
		json_object_set_new(line, "error", json_pack("{s:s, s:s}", "code", "invalid_request",
							     "message", d->batch_error));
	} else {
		json_t *body = json_pack(
			"{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s}, s:n, s:s}], s:{s:I, s:I, s:I}}",
			"id", cid, "object", "chat.completion", "created", (json_int_t)time(NULL), "model",
			d->req_model ? d->req_model : R->model_name, "choices", "index", 0, "message",
			"role", "assistant", "content", d->reduce_out ? d->reduce_out : "", "logprobs",
			"finish_reason", d->finish ? d->finish : "stop", "usage", "prompt_tokens",
			(json_int_t)d->prompt_tokens, "completion_tokens",
			(json_int_t)d->completion_tokens, "total_tokens",
			(json_int_t)(d->prompt_tokens + d->completion_tokens));
		json_object_set_new(line, "response",
				    json_pack("{s:i, s:s, s:o}", "status_code", 200, "request_id", rid,
					      "body", body));
		json_object_set_new(line, "error", json_null());
	}
	R->st->chunks++;
	dk_record_put_line(R, out_id, line, status);
}

static const char *msg_content(json_t *c, struct dk_buf *tmp)
{
	if (json_is_string(c))
		return json_string_value(c);
	/* [{"type":"text","text":"..."}, ...] */
	size_t i;
	json_t *p;
	dk_buf_clear(tmp);
	json_array_foreach(c, i, p) {
		const char *t = json_string_value(json_object_get(p, "text"));
		if (t)
			dk_buf_puts(tmp, t);
	}
	return tmp->data ? tmp->data : "";
}

/* Tokens of a chat conversation: the family's scaffolding may hold control
 * tokens, message contents never do. */
static int render_messages(struct runner *R, json_t *msgs, struct tokv *out)
{
	size_t n = json_array_size(msgs);
	struct dk_chat_msg *m = calloc(n ? n : 1, sizeof *m);
	char (*mark)[32] = calloc(n ? n : 1, sizeof *mark);
	const char **content = calloc(n ? n : 1, sizeof *content);
	struct dk_buf *tmp = calloc(n ? n : 1, sizeof *tmp);
	int rc = -1;
	char *r = NULL;
	if (!m || !mark || !content || !tmp)
		goto out;
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(msgs, i);
		const char *role = json_string_value(json_object_get(x, "role"));
		if (!role)
			goto out;
		if (!strcmp(role, "developer"))
			role = "system";
		content[i] = msg_content(json_object_get(x, "content"), &tmp[i]);
		snprintf(mark[i], sizeof mark[i], "\x01%zu\x01", i);
		m[i] = (struct dk_chat_msg){role, mark[i]};
	}
	if (R->chat == DK_CHAT_RAW || R->chat == DK_CHAT_UNKNOWN) {
		struct dk_buf b = {0};
		for (size_t i = 0; i < n; i++)
			dk_buf_printf(&b, "%s%s", i ? "\n\n" : "", content[i]);
		rc = dk_prompt_tokenize(R, out, b.data ? b.data : "", b.len, true, false);
		dk_buf_free(&b);
		goto out;
	}
	r = dk_chat_render(R->chat, m, n, true);
	if (!r)
		goto out;
	const char *cur = r;
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		const char *at = strstr(cur, mark[i]);
		if (!at)
			goto out;
		if (at > cur && dk_prompt_tokenize(R, out, cur, (size_t)(at - cur), first, true))
			goto out;
		if (at > cur)
			first = false;
		if (*content[i] && dk_prompt_tokenize(R, out, content[i], strlen(content[i]), first, false))
			goto out;
		if (*content[i])
			first = false;
		cur = at + strlen(mark[i]);
	}
	if (*cur && dk_prompt_tokenize(R, out, cur, strlen(cur), first, true))
		goto out;
	rc = 0;
out:
	free(r);
	for (size_t i = 0; tmp && i < n; i++)
		dk_buf_free(&tmp[i]);
	free(tmp);
	free(m);
	free(mark);
	free(content);
	return rc;
}

void dk_batchfile_open_line(struct runner *R, const char *line, size_t len)
{
	R->batch_line++;
	struct dk_runner_stats *st = R->st;
	json_error_t je;
	json_t *j = json_loadb(line, len, 0, &je);
	struct doc *d = calloc(1, sizeof *d);
	d->t0 = dk_run_now_ms();
	char where[64];
	snprintf(where, sizeof where, "line %llu", (unsigned long long)R->batch_line);
	d->path = strdup(where);
	d->mime = strdup("application/json");
	const char *cid = json_string_value(json_object_get(j, "custom_id"));
	d->custom_id = strdup(cid ? cid : where);
	dk_run_id32(d->id, "batch", d->custom_id, NULL, NULL);
	char out_id[64];
	snprintf(out_id, sizeof out_id, "batch_req_%s", d->id);
	st->docs++;
	if (dk_out_done(R->out, out_id)) {
		st->resumed++;
		json_decref(j);
		dk_run_doc_free(d);
		return;
	}
	json_t *body = json_object_get(j, "body");
	const char *url = json_string_value(json_object_get(j, "url"));
	const char *method = json_string_value(json_object_get(j, "method"));
	json_t *msgs = json_object_get(body, "messages");
	struct dk_buf e = {0};
	if (!j)
		dk_buf_printf(&e, "%s: invalid JSON: %s", where, je.text);
	else if (!cid)
		dk_buf_printf(&e, "%s: missing custom_id", where);
	else if (method && strcmp(method, "POST"))
		dk_buf_printf(&e, "%s: method '%s' is not POST", where, method);
	else if (url && strcmp(url, "/v1/chat/completions"))
		dk_buf_printf(&e, "%s: url '%s' is not supported (only /v1/chat/completions)", where, url);
	else if (!json_is_array(msgs) || !json_array_size(msgs))
		dk_buf_printf(&e, "%s: body.messages must be a non-empty array", where);
	const char *model = json_string_value(json_object_get(body, "model"));
	d->req_model = model ? strdup(model) : NULL;
	struct tokv t = {0};
	if (!e.len && render_messages(R, msgs, &t))
		dk_buf_printf(&e, "%s: cannot render messages (each needs role and content)", where);
	if (e.len) {
		d->batch_error = dk_buf_steal(&e);
		dk_batchfile_emit(R, d);
		free(t.v);
		json_decref(j);
		dk_run_doc_free(d);
		return;
	}
	struct job *jb = dk_run_job_new(R, d, -1, 0, DK_JOB_GEN, ROLE_BATCH);
	json_t *mt = json_object_get(body, "max_completion_tokens");
	if (!mt)
		mt = json_object_get(body, "max_tokens");
	jb->spec.max_tokens = json_is_integer(mt) && json_integer_value(mt) > 0
				 ? (int)json_integer_value(mt)
				 : (R->max_tokens > 0 ? R->max_tokens : 256);
	jb->spec.sp = dk_run_gen_params(R, dk_run_hash64(d->custom_id, strlen(d->custom_id)));
	json_t *x;
	if ((x = json_object_get(body, "temperature")) && json_is_number(x))
		jb->spec.sp.temperature = (float)json_number_value(x);
	if ((x = json_object_get(body, "top_p")) && json_is_number(x))
		jb->spec.sp.top_p = (float)json_number_value(x);
	if ((x = json_object_get(body, "seed")) && json_is_integer(x))
		jb->spec.sp.seed = (uint64_t)json_integer_value(x);
	if ((x = json_object_get(body, "frequency_penalty")) && json_is_number(x))
		jb->spec.sp.freq_penalty = (float)json_number_value(x);
	if ((x = json_object_get(body, "presence_penalty")) && json_is_number(x))
		jb->spec.sp.presence_penalty = (float)json_number_value(x);
	x = json_object_get(body, "stop");
	if (json_is_string(x)) {
		d->stops = calloc(1, sizeof *d->stops);
		d->stops[d->n_stops++] = strdup(json_string_value(x));
	} else if (json_is_array(x)) {
		d->stops = calloc(json_array_size(x) + 1, sizeof *d->stops);
		size_t i;
		json_t *v;
		json_array_foreach(x, i, v)
			if (json_is_string(v))
				d->stops[d->n_stops++] = strdup(json_string_value(v));
	}
	jb->spec.stop = d->stops;
	jb->spec.n_stop = d->n_stops;
	json_decref(j);
	d->next = R->docs;
	R->docs = d;
	R->n_open++;
	if (dk_run_submit(R, jb, &t, 0, 0, &d->batch_error, NULL)) {
		dk_batchfile_emit(R, d);
		dk_run_doc_close(R, d);
	}
	free(t.v);
}
