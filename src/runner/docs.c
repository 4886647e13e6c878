/* A document's way: opened, chunked, its chunks' jobs spawned through the
 * pipeline's task, their results gathered, and its records emitted. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runner/output.h"
#include "runner/run.h"
#include "runner/task.h"
#include "util/buf.h"
#include "util/sha256.h"

double dk_run_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

uint64_t dk_run_hash64(const void *p, size_t n)
{
	uint8_t d[32];
	dk_sha256(p, n, d);
	uint64_t k = 0;
	for (int i = 0; i < 8; i++)
		k = k << 8 | d[i];
	return k;
}

void dk_run_id32(char out[33], const char *kind, const char *a, const char *b, const char *c)
{
	struct dk_sha256 s;
	dk_sha256_init(&s);
	const char *v[4] = {kind, a ? a : "", b ? b : "", c ? c : ""};
	for (int i = 0; i < 4; i++)
		dk_sha256_update(&s, v[i], strlen(v[i]) + 1);
	uint8_t d[32];
	dk_sha256_final(&s, d);
	char hex[65];
	dk_sha256_hex(d, hex);
	memcpy(out, hex, 32);
	out[32] = 0;
}

/* Memory ran out on a document's way: the run stops as could-not-finish
 * (exit 3) with what is written kept, and --resume redoes that document. */
void dk_run_oom(struct runner *R, const char *where)
{
	if (!R->io_failed)
		dk_err(R->err, sizeof R->err, DK_FATAL, "out of memory (%s)", where);
	R->io_failed = true;
	R->stopping = true;
}

char *dk_run_trim_dup(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return strndup(s, n);
}

static void job_free(struct job *j) { free(j); }

static void job_done(void *ud, const struct dk_job_result *r);

struct job *dk_run_job_new(struct runner *R, struct doc *d, int chunk, int sub,
			   enum dk_job_kind kind, enum job_role role)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->R = R;
	j->doc = d;
	j->chunk = chunk;
	j->sub = sub;
	j->role = role;
	j->spec = dk_job_default_spec();
	j->spec.kind = kind;
	j->spec.done = job_done;
	j->spec.ud = j;
	return j;
}

struct dk_sampler_params dk_run_gen_params(struct runner *R, uint64_t salt)
{
	struct dk_sampler_params sp = dk_sampler_default_params();
	const struct dk_pipeline *pl = R->pl;
	sp.temperature = R->temperature;
	sp.top_k = pl ? pl->top_k : 0;
	sp.top_p = pl ? pl->top_p : 1;
	sp.min_p = 0;
	sp.repeat_penalty = pl ? pl->repeat_penalty : 1;
	/* per-job seed: the draw does not depend on scheduling */
	sp.seed = R->seed ^ salt;
	return sp;
}

static char *too_long(struct runner *R, int n_prompt, int n_gen)
{
	struct dk_buf b = {0};
	dk_buf_printf(&b,
		      "too-long: prompt of %d tokens + %d to generate does not fit the context of %d "
		      "tokens (lower chunking.max_tokens or raise --ctx)",
		      n_prompt, n_gen, R->n_ctx);
	return dk_buf_steal(&b);
}

/* One line of DOCKET_DUMP_PROMPTS: what the job asks, as tokens. */
static void dump_prompt(struct runner *R, const struct job *j, const dk_token *toks, int n)
{
	static const char *const roles[] = {"map", "reduce", "field", "object", "label", "batch", "line"};
	json_t *ids = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(ids, json_integer(toks[i]));
	json_t *o = json_pack("{s:s, s:i, s:s, s:i, s:s, s:i, s:i, s:o, s:o}", "path", j->doc->path,
			      "chunk", j->chunk, "role", roles[j->role], "sub", j->sub, "kind",
			      j->spec.kind == DK_JOB_GEN ? "gen" : "score", "max_tokens",
			      j->spec.max_tokens, "score_from", j->spec.score_from, "forced",
			      j->spec.forced ? json_string(j->spec.forced) : json_null(), "tokens", ids);
	if (o && j->role == ROLE_LINE) {
		json_object_set_new(o, "cand", json_integer(j->cand));
		json_object_set_new(o, "null_doc", json_boolean(j->null_doc));
	}
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (s)
		fprintf(R->dump, "%s\n", s);
	free(s);
	json_decref(o);
}

int dk_run_submit(struct runner *R, struct job *j, struct tokv *t, int n_prefix, int n_static,
		  char **err_slot, enum dk_reason *why)
{
	dk_token *toks = t->v;
	int n_toks = t->n;
	t->v = NULL;
	t->n = t->cap = 0;
	int n_gen = j->spec.kind == DK_JOB_GEN ? j->spec.max_tokens : 0;
	if (n_toks == 0 || n_toks + n_gen > R->n_ctx) {
		if (!*err_slot) {
			*err_slot = too_long(R, n_toks, n_gen);
			if (why)
				*why = DK_REASON_TOO_LONG;
		}
		free(toks);
		job_free(j);
		return -1;
	}
	j->spec.n_prefix = n_prefix;
	j->spec.n_static = n_static;
	if (R->dump)
		dump_prompt(R, j, toks, n_toks);
	if (dk_sched_submit(R->sched, &j->spec, toks, n_toks) != DK_OK) {
		dk_run_oom(R, j->doc->path);
		job_free(j);
		return -1;
	}
	j->doc->pending++;
	if (j->chunk >= 0)
		j->doc->cr[j->chunk].pending++;
	return 0;
}

/* A generate job for chunk ci with the run's settings; its seed is the
 * chunk's (plus sub), so a record does not depend on its batch mates. */
struct job *dk_run_gen_job(struct runner *R, struct doc *d, size_t ci, int sub, enum job_role role)
{
	struct job *j = dk_run_job_new(R, d, (int)ci, sub, DK_JOB_GEN, role);
	if (!j)
		return NULL;
	j->spec.max_tokens = R->max_tokens;
	j->spec.sp = dk_run_gen_params(R, dk_run_hash64(d->chunks[ci].id, 64) + (uint64_t)sub);
	j->spec.stop = R->pl->stop;
	j->spec.n_stop = R->pl->n_stop;
	return j;
}

void dk_run_spawn_chunk(struct runner *R, struct doc *d, size_t ci)
{
	const struct dk_chunk *c = &d->chunks[ci];
	struct cres *cr = &d->cr[ci];
	if (!d->is_calib && dk_remote_always(R)) {
		cr->fb = true; /* remote-only: nothing to compute here */
		return;
	}
	char *text = strndup(d->text + c->start, c->end - c->start);
	if (!text) {
		dk_run_oom(R, d->path);
		return;
	}
	struct chunk_vars cv;
	dk_prompt_chunk_vars_init(R, d, ci, text, &cv);
	R->ops->spawn(R, d, ci, &cv);
	free(text);
	dk_prompt_chunk_vars_free(&cv);
	if (!d->is_calib && cr->reason == DK_REASON_TOO_LONG &&
	    dk_remote_wants(R, DK_FALLBACK_OVER_CONTEXT))
		cr->fb = true;
}

void dk_run_doc_free(struct doc *d)
{
	if (!d)
		return;
	json_decref(d->supersedes);
	for (size_t i = 0; d->cr && i < d->n_chunks; i++) {
		free(d->cr[i].gen);
		free(d->cr[i].trimmed);
		free(d->cr[i].logp);
		free(d->cr[i].logp_tail);
		free(d->cr[i].error);
		for (size_t k = 0; d->cr[i].fields && k < d->n_fields; k++)
			free(d->cr[i].fields[k]);
		for (size_t k = 0; d->cr[i].picks && k < d->n_fields; k++) {
			struct line_pick *lp = &d->cr[i].picks[k];
			for (int m = 0; m < lp->n; m++)
				free(lp->line[m]);
			free(lp->line);
			free(lp->lp);
			free(lp->lq);
			free(lp->forced);
		}
		free(d->cr[i].picks);
		free(d->cr[i].fields);
	}
	free(d->cr);
	free(d->path);
	free(d->member);
	free(d->mime);
	free(d->text);
	free(d->chunks);
	free(d->reduce_out);
	free(d->doc_error);
	free(d->custom_id);
	free(d->req_model);
	for (size_t i = 0; i < d->n_stops; i++)
		free(d->stops[i]);
	free(d->stops);
	free(d->batch_error);
	free(d);
}

void dk_run_doc_close(struct runner *R, struct doc *d)
{
	struct doc **pp = &R->docs;
	while (*pp && *pp != d)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = d->next;
		R->n_open--;
	}
	dk_run_doc_free(d);
}

void dk_run_chunk_id(struct runner *R, const struct doc *d, size_t ci, char out[33])
{
	dk_run_id32(out, "chunk", d->path, d->chunks[ci].id, R->pl->hash);
}

void dk_run_doc_open(struct runner *R, const struct dk_doc *dd)
{
	const struct dk_pipeline *pl = R->pl;
	struct dk_runner_stats *st = R->st;
	if (R->p->shard_n > 1 && dk_runner_shard_of(dd->path, R->p->shard_n) != R->p->shard_k) {
		st->other_shards++;
		return;
	}
	st->docs++;
	if (R->input_docs && dd->input >= 0 && (size_t)dd->input < R->n_inputs)
		R->input_docs[dd->input]++;
	if (dd->action == DK_DOC_SKIP && dd->skip_reason && !strcmp(dd->skip_reason, "excluded"))
		st->excluded++;
	struct doc *d = calloc(1, sizeof *d);
	if (!d || !(d->path = strdup(dd->path)) || (dd->member && !(d->member = strdup(dd->member))) ||
	    !(d->mime = strdup(dd->mime ? dd->mime : ""))) {
		dk_run_doc_free(d);
		dk_run_oom(R, dd->path);
		return;
	}
	d->t0 = dk_run_now_ms();
	snprintf(d->sha256, sizeof d->sha256, "%s", dd->sha256);
	d->bytes = dd->bytes;
	d->n_fields = pl->n_fields;
	dk_run_id32(d->id, "doc", d->path, d->sha256, pl->hash);
	if (R->p->mode == DK_OUT_INCREMENTAL && *d->sha256 &&
	    dk_out_have_ok(R->out, d->sha256, pl->hash, R->model_sha)) {
		st->unchanged++;
		dk_run_doc_free(d);
		return;
	}
	if (R->p->mode == DK_OUT_INCREMENTAL) {
		/* looked up as the records spell the path (escaped when not UTF-8) */
		json_t *src = dk_record_source(d);
		d->supersedes = dk_out_superseded(
			R->out, json_string_value(json_object_get(src, "path")),
			json_string_value(json_object_get(src, "member")), pl->name, d->sha256);
		json_decref(src);
	}
	if (dd->action == DK_DOC_SKIP || !dd->text) {
		if (dk_out_done(R->out, d->id))
			st->resumed++;
		else
			dk_record_emit_skip(R, d, dd->skip_reason ? dd->skip_reason : "unreadable", dd->detail);
		dk_run_doc_free(d);
		return;
	}
	if (!pl->per_chunk && dk_out_done(R->out, d->id)) {
		st->resumed++;
		dk_run_doc_free(d);
		return;
	}
	struct dk_chunk_params cp = dk_chunk_default_params();
	cp.max_tokens = pl->chunk_tokens;
	cp.overlap_tokens = pl->chunk_overlap;
	cp.count = dk_prompt_count_tokens;
	cp.count_ud = R;
	/* a pipeline that reads only a document's head (classify) tokenizes only
	 * a generous head of it: 16 bytes a token is more than text averages */
	size_t len = dd->text_len;
	if (pl->max_chunks && len > pl->max_chunks * (size_t)pl->chunk_tokens * 16 + 4096) {
		len = pl->max_chunks * (size_t)pl->chunk_tokens * 16 + 4096;
		while (len > 0 && ((unsigned char)dd->text[len] & 0xC0) == 0x80)
			len--; /* not inside a UTF-8 sequence */
	}
	if (dk_chunk_text(dd->text, len, dd->sha256[0] ? dd->sha256 : NULL, &cp, &d->chunks,
			  &d->n_chunks) != DK_OK) {
		json_t *rec = dk_record_base(R, d->id, d, NULL);
		struct record_end e = {.status = DK_REC_ERROR, .error = "cannot chunk the text"};
		dk_record_end(R, d->id, rec, &e);
		dk_run_doc_free(d);
		return;
	}
	if (d->n_chunks == 0) {
		if (dk_out_done(R->out, d->id))
			st->resumed++;
		else
			dk_record_emit_skip(R, d, "empty", "no text to process");
		dk_run_doc_free(d);
		return;
	}
	if (pl->max_chunks && d->n_chunks > pl->max_chunks)
		d->n_chunks = pl->max_chunks;
	d->text = strndup(dd->text, dd->text_len);
	d->cr = calloc(d->n_chunks, sizeof *d->cr);
	if (!d->text || !d->cr) {
		dk_run_doc_free(d);
		dk_run_oom(R, dd->path);
		return;
	}
	size_t want = 0;
	for (size_t i = 0; i < d->n_chunks; i++) {
		char id[33];
		dk_run_chunk_id(R, d, i, id);
		d->cr[i].want = !pl->per_chunk || !dk_out_done(R->out, id);
		if (!d->cr[i].want)
			st->resumed++;
		want += d->cr[i].want;
	}
	if (!want) {
		dk_run_doc_free(d);
		return;
	}
	d->next = R->docs;
	R->docs = d;
	R->n_open++;
	for (size_t i = 0; i < d->n_chunks; i++)
		if (d->cr[i].want) {
			dk_run_spawn_chunk(R, d, i);
			if (pl->per_chunk && d->cr[i].pending == 0)
				dk_record_emit_chunk(R, d, i); /* failed before running */
		}
	if (d->pending == 0)
		dk_run_doc_stage_done(R, d);
}

void dk_run_doc_stage_done(struct runner *R, struct doc *d)
{
	const struct dk_pipeline *pl = R->pl;
	if (d->is_calib) {
		R->ops->calibrated(R, d);
		R->calib_pending = false;
		dk_run_doc_close(R, d);
		return;
	}
	if (d->custom_id) {
		dk_batchfile_emit(R, d);
		dk_run_doc_close(R, d);
		return;
	}
	if (pl->per_chunk) {
		dk_run_doc_close(R, d);
		return;
	}
	if (!d->fb_done) {
		d->fb_done = true;
		bool sent = false;
		for (size_t i = 0; i < d->n_chunks; i++)
			sent |= dk_remote_resolve(R, d, i);
		if (sent)
			return; /* back here when the answers are in */
	}
	bool err = false;
	for (size_t i = 0; i < d->n_chunks; i++)
		err |= d->cr[i].error != NULL;
	if (!err && !d->reduced && R->ops->reduce && R->ops->reduce(R, d))
		return;
	if (dk_record_emit_doc(R, d, d->doc_error))
		dk_run_doc_close(R, d);
}

static void job_done(void *ud, const struct dk_job_result *r)
{
	struct job *j = ud;
	struct runner *R = j->R;
	struct doc *d = j->doc;
	if (r->finish == DK_FINISH_CANCELLED) { /* the run is stopping: its documents go unrecorded */
		job_free(j);
		return;
	}
	struct dk_runner_stats *st = R->st;
	st->prompt_tokens += (uint64_t)r->n_prompt;
	st->cached_tokens += (uint64_t)r->n_cached;
	st->completion_tokens += (uint64_t)r->n_gen;
	d->prompt_tokens += (uint64_t)r->n_prompt;
	d->cached_tokens += (uint64_t)r->n_cached;
	d->completion_tokens += (uint64_t)r->n_gen;
	if (j->chunk >= 0) {
		struct cres *c = &d->cr[j->chunk];
		c->pt += (uint64_t)r->n_prompt;
		c->ct += (uint64_t)r->n_cached;
		c->gt += (uint64_t)r->n_gen;
		if (r->error && !c->error) {
			c->error = strdup(r->error);
			c->reason = DK_REASON_LOCAL_ERROR;
		}
		R->ops->job_result(R, d, c, j, r);
		if (r->finish == DK_FINISH_LENGTH) {
			c->hit_length = true;
			c->truncated |= r->constrained; /* a cut-off JSON value is no value */
		}
		c->pending--;
	} else {
		if (r->error && !d->batch_error)
			d->batch_error = strdup(r->error);
		free(d->reduce_out);
		d->reduce_out = j->role == ROLE_BATCH ? strdup(r->text) : dk_run_trim_dup(r->text);
		d->finish = r->finish == DK_FINISH_LENGTH ? "length" : "stop";
	}
	d->pending--;
	int chunk = j->chunk;
	job_free(j);
	if (R->pl && R->pl->per_chunk && !d->is_calib && chunk >= 0 && d->cr[chunk].pending == 0)
		dk_record_emit_chunk(R, d, (size_t)chunk);
	if (d->pending == 0)
		dk_run_doc_stage_done(R, d);
}
