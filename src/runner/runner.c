/* The job runner: documents -> chunks -> engine jobs -> records. */
#include "docket/runner.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docket/chat.h"
#include "docket/grammar.h"
#include "docket/ingest.h"
#include "docket/jsonschema.h"
#include "docket/model.h"
#include "docket/route.h"
#include "docket/sampler.h"
#include "ingest/docjson.h"
#include "runner/output.h"
#include "runner/prefixes.h"
#include "runner/sched.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/sha256.h"

enum job_role { ROLE_MAP, ROLE_REDUCE, ROLE_FIELD, ROLE_OBJECT, ROLE_LABEL, ROLE_BATCH };

struct doc;
struct runner;

/* The runner's side of a scheduler job: what its result is for. */
struct job {
	struct runner *R;
	struct doc *doc;
	int chunk;            /* chunk index, -1 for reduce/batch */
	int sub;              /* field or label index */
	enum job_role role;
	struct dk_job_spec spec;
};

struct cres {
	uint64_t pt, ct, gt;  /* usage: prompt, cached, completion tokens */
	char *gen;
	double *logp;     /* per label */
	char **fields;    /* per field: raw answer text, or JSON text (fields_json); NULL = absent */
	bool fields_json; /* fields hold JSON values (constrained, object mode, fallback) */
	bool truncated;   /* a constrained generation ran out of tokens */
	bool hit_length;  /* some generation of the chunk ran out of tokens */
	bool bad_json;    /* object mode: the answer held no JSON object */
	char *error;
	bool want;
	int pending;
	bool fb;          /* to be answered by the fallback endpoint when emitted */
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
	int pending;          /* jobs not finished */
	bool reduced;
	bool fb_done;         /* chunks' fallbacks resolved (per-document records) */
	bool routed;          /* the reduce step was answered remotely */
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

struct runner {
	const struct dk_runner_params *p;
	const struct dk_pipeline *pl;
	struct dk_model *model;
	struct dk_ctx *ctx;
	const struct dk_tokenizer *tok;
	enum dk_chat_family chat;
	int32_t n_vocab, n_ctx, n_seq, n_batch;
	const char *model_sha, *model_name;
	struct dk_out *out;
	struct dk_ingest *ing;
	uint64_t *input_docs; /* records per input operand, to warn of one that held none */
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
	json_t *fb_json;      /* the pipeline's fallback block (fbp borrows its strings) */
	char *audit_path;
	char fb_why[256];     /* why the gate refuses, when it does */
	char fb_host[256], fb_model[128]; /* of the last remote answer (reduce) */
	int max_tokens;
	float temperature;
	uint64_t seed;
	char err[DK_ERRMSG_MAX];
	double t0, last_progress;
	bool progress_bar, progress_jsonl;
	int last_bar_len;
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void dk_runner_default_params(struct dk_runner_params *p)
{
	memset(p, 0, sizeof *p);
	p->output = "-";
	p->n_seq = 8;
	p->n_batch = 512;
	p->prefix_cache = true;
	p->deterministic = true;
	p->max_failures = -1;
	p->max_tokens = -1;
	p->temperature = -1;
	p->seed = -1;
	p->progress = DK_PROGRESS_AUTO;
	p->constrained = -1;
}

static uint64_t hash64(const void *p, size_t n)
{
	uint8_t d[32];
	dk_sha256(p, n, d);
	uint64_t k = 0;
	for (int i = 0; i < 8; i++)
		k = k << 8 | d[i];
	return k;
}

int dk_runner_shard_of(const char *path, int n)
{
	if (n <= 1)
		return 0;
	return (int)(hash64(path, strlen(path)) % (uint64_t)n);
}

static void id32(char out[33], const char *kind, const char *a, const char *b, const char *c)
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

/* ---- tokens ---- */

struct tokv {
	dk_token *v;
	int n, cap;
};

static int tokv_push_text(struct runner *R, struct tokv *t, const char *s, size_t len, bool add,
			  bool special)
{
	for (;;) {
		int room = t->cap - t->n;
		int k = dk_tokenize(R->tok, s, len, add, special, t->v ? t->v + t->n : NULL, room);
		if (k >= 0) {
			t->n += k;
			return 0;
		}
		int cap = t->cap ? t->cap : 256;
		while (cap - t->n < -k)
			cap *= 2;
		dk_token *v = realloc(t->v, (size_t)cap * sizeof *v);
		if (!v)
			return -1;
		t->v = v;
		t->cap = cap;
	}
}

static int count_tokens(void *ud, const char *text, size_t len)
{
	struct runner *R = ud;
	dk_token dummy[1];
	int k = dk_tokenize(R->tok, text, len, false, false, dummy, 0);
	return k < 0 ? -k : k;
}

/* ---- prompts ---- */

/* Placeholders whose values come from the pipeline, the same for every
 * document; any other (text, path, name, ...) is the document's. */
static bool pipeline_var(const char *name)
{
	static const char *const v[] = {"labels", "schema", "field", "field_description"};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++)
		if (!strcmp(name, v[i]))
			return true;
	return false;
}

/* Renders t into segs.  *split: byte offset of the first split_var
 * placeholder; *doc (when not NULL): of the first document placeholder;
 * both stay (size_t)-1 when there is none. */
static int render_tmpl(const struct dk_tmpl *t, const struct dk_tmpl_var *vars, size_t nv,
		       const char *split_var, struct dk_segs *segs, size_t *split, size_t *doc)
{
	for (size_t i = 0; t && i < t->n_parts; i++) {
		const struct dk_tmpl_part *p = &t->parts[i];
		if (!p->is_var) {
			if (dk_segs_add(segs, p->text, strlen(p->text), true))
				return -1;
			continue;
		}
		size_t off = 0;
		for (size_t k = 0; k < segs->n; k++)
			off += segs->v[k].len;
		if (split_var && *split == (size_t)-1 && !strcmp(p->text, split_var))
			*split = off;
		if (doc && *doc == (size_t)-1 && !pipeline_var(p->text))
			*doc = off;
		for (size_t k = 0; k < nv; k++)
			if (!strcmp(vars[k].name, p->text)) {
				if (vars[k].value && *vars[k].value &&
				    dk_segs_add(segs, vars[k].value, strlen(vars[k].value), false))
					return -1;
				break;
			}
	}
	return 0;
}

static size_t segs_bytes(const struct dk_segs *s)
{
	size_t off = 0;
	for (size_t k = 0; k < s->n; k++)
		off += s->v[k].len;
	return off;
}

/* Tokens of out (the whole of text, tokenized) that tokenizing text[0..split)
 * alone gives too: the head that does not depend on what follows split. */
static int common_head(struct runner *R, const char *text, size_t split, const struct tokv *out,
		       int *n)
{
	struct tokv pre = {0};
	if (tokv_push_text(R, &pre, text, split, true, false))
		return -1;
	int k = 0;
	while (k < pre.n && k < out->n && pre.v[k] == out->v[k])
		k++;
	*n = k;
	free(pre.v);
	return 0;
}

/*
 * The prompt of one job: [chat head] system [chat between] user [chat tail].
 * Template text may spell control tokens; substituted values never do.
 * *n_prefix: tokens before the first occurrence of split_var in the user
 * template (or all tokens when split_var is NULL).  *n_static: tokens
 * before the first document placeholder of either template (all tokens
 * when there is none): the head that holds nothing of the document.
 */
static int build_prompt(struct runner *R, const struct dk_tmpl *sys, const struct dk_tmpl *user,
			const struct dk_tmpl_var *vars, size_t nv, const char *split_var,
			struct tokv *out, int *n_prefix, int *n_static)
{
	struct dk_segs s_sys = {0}, s_user = {0}, all = {0};
	size_t split_user = (size_t)-1, dummy = (size_t)-1, doc_sys = (size_t)-1, doc_user = (size_t)-1;
	int rc = -1;
	char *rendered = NULL;
	if (render_tmpl(sys, vars, nv, NULL, &s_sys, &dummy, &doc_sys) ||
	    render_tmpl(user, vars, nv, split_var, &s_user, &split_user, &doc_user))
		goto out;
	size_t split = (size_t)-1, doc = (size_t)-1;
	if (R->chat == DK_CHAT_RAW || R->chat == DK_CHAT_UNKNOWN) {
		for (size_t i = 0; i < s_sys.n; i++)
			dk_segs_add(&all, s_sys.v[i].text, s_sys.v[i].len, s_sys.v[i].special);
		if (s_sys.n)
			dk_segs_add(&all, "\n\n", 2, true);
		size_t base = segs_bytes(&all);
		for (size_t i = 0; i < s_user.n; i++)
			dk_segs_add(&all, s_user.v[i].text, s_user.v[i].len, s_user.v[i].special);
		if (split_user != (size_t)-1)
			split = base + split_user;
		doc = doc_sys != (size_t)-1 ? doc_sys : doc_user != (size_t)-1 ? base + doc_user : doc;
		/* one string: no chat control tokens to honour */
		char *j = dk_segs_join(&all);
		if (!j || tokv_push_text(R, out, j, strlen(j), true, false)) {
			free(j);
			goto out;
		}
		*n_prefix = *n_static = out->n;
		if ((split != (size_t)-1 && common_head(R, j, split, out, n_prefix)) ||
		    (doc != (size_t)-1 && common_head(R, j, doc, out, n_static))) {
			free(j);
			goto out;
		}
		free(j);
		rc = 0;
		goto out;
	}
	/* chat: render with markers where the contents go, then splice */
	struct dk_chat_msg msgs[2];
	size_t nm = 0;
	if (sys)
		msgs[nm++] = (struct dk_chat_msg){"system", "\x01S\x01"};
	msgs[nm++] = (struct dk_chat_msg){"user", "\x01U\x01"};
	rendered = dk_chat_render(R->chat, msgs, nm, true);
	if (!rendered)
		goto out;
	const char *ms = sys ? strstr(rendered, "\x01S\x01") : NULL;
	const char *mu = strstr(rendered, "\x01U\x01");
	if (!mu || (sys && (!ms || ms > mu)))
		goto out;
	const char *cur = rendered;
	if (ms) {
		dk_segs_add(&all, cur, (size_t)(ms - cur), true);
		if (doc_sys != (size_t)-1)
			doc = segs_bytes(&all) + doc_sys;
		for (size_t i = 0; i < s_sys.n; i++)
			dk_segs_add(&all, s_sys.v[i].text, s_sys.v[i].len, s_sys.v[i].special);
		cur = ms + 3;
	}
	dk_segs_add(&all, cur, (size_t)(mu - cur), true);
	size_t base = segs_bytes(&all);
	for (size_t i = 0; i < s_user.n; i++)
		dk_segs_add(&all, s_user.v[i].text, s_user.v[i].len, s_user.v[i].special);
	cur = mu + 3;
	dk_segs_add(&all, cur, strlen(cur), true);
	if (split_user != (size_t)-1)
		split = base + split_user;
	if (doc == (size_t)-1 && doc_user != (size_t)-1)
		doc = base + doc_user;
	/* segments are tokenized one by one, and a placeholder's value is a
	 * segment of its own: the heads end at segment boundaries */
	size_t off = 0;
	*n_prefix = *n_static = -1;
	for (size_t i = 0; i < all.n; i++) {
		if (split != (size_t)-1 && off >= split && *n_prefix < 0)
			*n_prefix = out->n;
		if (doc != (size_t)-1 && off >= doc && *n_static < 0)
			*n_static = out->n;
		if (tokv_push_text(R, out, all.v[i].text, all.v[i].len, i == 0, all.v[i].special))
			goto out;
		off += all.v[i].len;
	}
	if (*n_prefix < 0)
		*n_prefix = out->n;
	if (*n_static < 0)
		*n_static = out->n;
	rc = 0;
out:
	free(rendered);
	dk_segs_free(&s_sys);
	dk_segs_free(&s_user);
	dk_segs_free(&all);
	return rc;
}

/* Memory ran out on a document's way: the run stops as could-not-finish
 * (exit 3) with what is written kept, and --resume redoes that document. */
static void oom(struct runner *R, const char *where)
{
	if (!R->io_failed)
		dk_err(R->err, sizeof R->err, DK_FATAL, "out of memory (%s)", where);
	R->io_failed = true;
	R->stopping = true;
}

/* ---- jobs ---- */

static void job_done(void *ud, const struct dk_job_result *r);

static struct job *job_new(struct runner *R, struct doc *d, int chunk, int sub,
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

static void job_free(struct job *j) { free(j); }

static struct dk_sampler_params gen_params(struct runner *R, uint64_t salt)
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

/* ---- records ---- */

static json_t *source_json(const struct doc *d)
{
	json_t *s = json_object();
	/* a file name need not be UTF-8: escaped as ls --json does, never dropped */
	json_object_set_new(s, "path", dk_json_str(d->path));
	json_object_set_new(s, "member", dk_json_str(d->member));
	json_object_set_new(s, "mime", json_string(d->mime ? d->mime : ""));
	json_object_set_new(s, "bytes", json_integer((json_int_t)d->bytes));
	json_object_set_new(s, "sha256", json_string(d->sha256));
	return s;
}

/* Writes one output line (consumes line) and counts it. */
static void put_line(struct runner *R, const char *out_id, json_t *line, const char *status)
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
	if (!strcmp(status, "ok"))
		st->ok++;
	else if (!strcmp(status, "skipped"))
		st->skipped++;
	else {
		st->errors++;
		if (R->p->max_failures >= 0 && st->errors > (uint64_t)R->p->max_failures) {
			st->max_failures_hit = true;
			R->stopping = true;
		}
	}
}

static void write_record(struct runner *R, const char *id, json_t *rec, const char *status)
{
	json_t *line = rec;
	const char *out_id = id;
	char bid[64];
	if (R->p->format == DK_FORMAT_OPENAI_BATCH) {
		/* OpenAI Batch output line carrying the record's output */
		snprintf(bid, sizeof bid, "batch_req_%s", id);
		out_id = bid;
		line = json_object();
		json_object_set_new(line, "id", json_string(bid));
		json_object_set_new(line, "custom_id", json_string(id));
		if (!strcmp(status, "ok")) {
			json_t *o = json_object_get(rec, "output");
			char *content = json_is_string(o) ? strdup(json_string_value(o))
							  : json_dumps(o, JSON_COMPACT);
			json_t *u = json_object_get(rec, "usage");
			json_int_t pt = json_integer_value(json_object_get(u, "prompt_tokens"));
			json_int_t ct = json_integer_value(json_object_get(u, "completion_tokens"));
			json_t *body = json_pack(
				"{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s}, s:s}], s:{s:I, s:I, s:I}}",
				"id", id, "object", "chat.completion", "created", (json_int_t)time(NULL),
				"model", R->model_name, "choices", "index", 0, "message", "role",
				"assistant", "content", content ? content : "", "finish_reason", "stop",
				"usage", "prompt_tokens", pt, "completion_tokens", ct, "total_tokens",
				pt + ct);
			free(content);
			json_object_set_new(line, "response",
					    json_pack("{s:i, s:s, s:o}", "status_code", 200,
						      "request_id", id, "body", body));
			json_object_set_new(line, "error", json_null());
		} else {
			json_object_set_new(line, "response", json_null());
			const char *msg = json_string_value(json_object_get(rec, "error"));
			if (!msg)
				msg = json_string_value(json_object_get(rec, "skip_reason"));
			json_object_set_new(line, "error",
					    json_pack("{s:s, s:s}", "code", status, "message",
						      msg ? msg : status));
		}
	}
	if (line != rec)
		json_decref(rec);
	put_line(R, out_id, line, status);
}

static json_t *record_base(struct runner *R, const char *id, const struct doc *d,
			   const struct dk_chunk *c)
{
	json_t *r = json_object();
	json_object_set_new(r, "id", json_string(id));
	json_object_set_new(r, "source", source_json(d));
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

static void record_finish(struct runner *R, json_t *r, const char *status, json_t *output,
			  const char *error, const char *skip, uint64_t pt, uint64_t ct, uint64_t gt,
			  double ms)
{
	json_object_set_new(r, "status", json_string(status));
	json_object_set_new(r, "output", output ? output : json_null());
	if (error)
		json_object_set_new(r, "error", json_string(error));
	if (skip)
		json_object_set_new(r, "skip_reason", json_string(skip));
	json_object_set_new(r, "usage", json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)pt,
						  "cached_tokens", (json_int_t)ct,
						  "completion_tokens", (json_int_t)gt));
	json_object_set_new(r, "timing_ms", json_real(round(ms * 10) / 10));
	json_object_set_new(r, "route", json_string("local"));
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	json_object_set_new(r, "created", json_string(when));
}

static char *trim_dup(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return strndup(s, n);
}

/* Small models often answer in a sentence that restates the question:
 * "The date (the date of the purchase) is 14/03/2024."  Keeps what follows
 * " is " when the sentence starts by naming the field. */
static void strip_restatement(char *v, const char *field)
{
	if (strncasecmp(v, "the ", 4) || strncasecmp(v + 4, field, strlen(field)))
		return;
	char *is = strstr(v, " is ");
	if (!is || is - v > 160)
		return;
	memmove(v, is + 4, strlen(is + 4) + 1);
	size_t n = strlen(v);
	if (n && v[n - 1] == '.')
		v[n - 1] = 0;
}

/* Lowercase with runs of whitespace as one space (malloc'd). */
static char *norm_ws(const char *s, bool drop_commas)
{
	size_t n = strlen(s);
	char *o = malloc(n + 1), *w = o;
	if (!o)
		return NULL;
	bool sp = true;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (drop_commas && c == ',')
			continue;
		if (isspace(c)) {
			if (!sp)
				*w++ = ' ';
			sp = true;
		} else {
			*w++ = (char)tolower(c);
			sp = false;
		}
	}
	while (w > o && w[-1] == ' ')
		w--;
	*w = 0;
	return o;
}

/* The answer appears in the document (ignoring case and spacing): small
 * models invent plausible values, and an extract record must not carry
 * values the document does not hold. */
static bool grounded(const char *doc, const char *value, bool drop_commas)
{
	if (!doc)
		return true;
	char *a = norm_ws(doc, drop_commas), *b = norm_ws(value, drop_commas);
	bool ok = a && b && *b && strstr(a, b);
	free(a);
	free(b);
	return ok;
}

/* A field's raw answer as a JSON value of its schema type (null if none,
 * or if doc is given and does not contain it). */
static json_t *field_value(const struct dk_field *f, const char *raw, const char *doc)
{
	char *v = trim_dup(raw ? raw : "");
	strip_restatement(v, f->name);
	size_t n = strlen(v);
	/* strip surrounding quotes */
	if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
		memmove(v, v + 1, n - 2);
		v[n - 2] = 0;
		n -= 2;
	}
	json_t *out = NULL;
	if (!n || !strcasecmp(v, "null") || !strcasecmp(v, "none") || !strcasecmp(v, "n/a") ||
	    !strcasecmp(v, "unknown")) {
		out = json_null();
	} else if (!strcmp(f->type, "number") || !strcmp(f->type, "integer")) {
		char num[64];
		size_t k = 0;
		const char *s = v;
		while (*s && !isdigit((unsigned char)*s))
			s++;
		if (s > v && s[-1] == '-' && k < sizeof num - 1)
			num[k++] = '-';
		bool dot = false;
		for (; *s && k < sizeof num - 1; s++) {
			if (isdigit((unsigned char)*s))
				num[k++] = *s;
			else if (*s == ',' && isdigit((unsigned char)s[1]))
				continue;
			else if (*s == '.' && !dot && isdigit((unsigned char)s[1])) {
				num[k++] = '.';
				dot = true;
			} else
				break;
		}
		num[k] = 0;
		if (k == 0 || (k == 1 && num[0] == '-') || !grounded(doc, num[0] == '-' ? num + 1 : num, true))
			out = json_null();
		else if (!strcmp(f->type, "integer"))
			out = json_integer((json_int_t)strtoll(num, NULL, 10));
		else
			out = json_real(strtod(num, NULL));
	} else if (!strcmp(f->type, "boolean")) {
		if (!strncasecmp(v, "yes", 3) || !strncasecmp(v, "true", 4))
			out = json_true();
		else if (!strncasecmp(v, "no", 2) || !strncasecmp(v, "false", 5))
			out = json_false();
		else
			out = json_null();
	} else {
		/* a sentence's final period is not part of the value, unless the
		 * document has it ("SDN. BHD.") */
		if (!grounded(doc, v, false) && n > 1 && v[n - 1] == '.')
			v[--n] = 0;
		out = grounded(doc, v, false) ? json_string(v) : json_null();
	}
	free(v);
	return out ? out : json_null();
}

/* The value of field f in a chunk's answer: NULL when absent (object mode
 * left it out), null when it cannot be read or is not grounded in doc. */
static json_t *field_out(const struct runner *R, const struct dk_field *f, const char *raw,
			 bool is_json, const char *doc)
{
	if (!raw)
		return NULL;
	if (!R->pl->grounded || !f->ground)
		doc = NULL;
	bool compound = !strcmp(f->type, "array") || !strcmp(f->type, "object");
	if (!is_json) {
		if (!compound)
			return field_value(f, raw, doc);
		json_t *v = json_loads(raw, JSON_DECODE_ANY, NULL);
		return v ? v : json_null();
	}
	json_t *v = json_loads(raw, JSON_DECODE_ANY, NULL);
	if (!v)
		return json_null();
	if (f->ground && json_is_string(v)) {
		/* same reading as a free answer: "N/A" is null, a number field
		 * holding "RM 9.00" is 9.00, an invented name is null */
		json_t *r = field_value(f, json_string_value(v), doc);
		json_decref(v);
		return r;
	}
	if (f->ground && json_is_number(v)) {
		json_decref(v);
		return field_value(f, raw, doc);
	}
	return v;
}

/* Sets schema_valid (and schema_error, finish_reason) on an extract record. */
static void extract_verdict(struct runner *R, json_t *rec, json_t *o, bool truncated, bool bad_json,
			    bool hit_length)
{
	char why[DK_ERRMSG_MAX] = "";
	bool ok = !truncated && !bad_json && dk_schema_validate(R->schema, o, why, sizeof why);
	if (truncated)
		snprintf(why, sizeof why, "generation ran out of tokens before the value was complete");
	else if (bad_json)
		snprintf(why, sizeof why, "the answer holds no JSON object");
	json_object_set_new(rec, "schema_valid", json_boolean(ok));
	if (!ok)
		json_object_set_new(rec, "schema_error", json_string(why));
	json_object_set_new(rec, "finish_reason", json_string(hit_length ? "length" : "stop"));
}

/* Object mode: the fields of a chunk from the generated object. */
static void object_fields(struct runner *R, struct cres *c, const char *text, bool constrained)
{
	const struct dk_pipeline *pl = R->pl;
	json_t *o = NULL;
	if (constrained) {
		o = json_loads(text, 0, NULL);
	} else {
		/* free text: the outermost {...} in it */
		const char *a = strchr(text, '{'), *b = strrchr(text, '}');
		if (a && b && b > a)
			o = json_loadb(a, (size_t)(b - a + 1), 0, NULL);
	}
	c->fields_json = true;
	if (!json_is_object(o)) {
		c->bad_json = true;
		json_decref(o);
		return;
	}
	for (size_t i = 0; i < pl->n_fields; i++) {
		json_t *v = json_object_get(o, pl->fields[i].name);
		free(c->fields[i]);
		c->fields[i] = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	}
	json_decref(o);
}

static void labels_json(struct runner *R, const double *probs, json_t **labels, const char **best)
{
	*labels = json_object();
	size_t bi = 0;
	for (size_t i = 0; i < R->pl->n_labels; i++) {
		json_object_set_new(*labels, R->pl->labels[i], json_real(round(probs[i] * 1e6) / 1e6));
		if (probs[i] > probs[bi])
			bi = i;
	}
	*best = R->pl->labels[bi];
}

/* Label distribution of one chunk.  Small models prefer some labels
 * whatever the text says; dividing by the probabilities they give a
 * content-free document ("contextual calibration", Zhao et al. 2021)
 * removes that bias. */
static void chunk_probs(struct runner *R, const double *logp, double *out)
{
	double mx = -INFINITY;
	size_t n = R->pl->n_labels;
	for (size_t i = 0; i < n; i++) {
		out[i] = logp[i] - (R->calib ? R->calib[i] : 0);
		if (out[i] > mx)
			mx = out[i];
	}
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += out[i] = exp(out[i] - mx);
	for (size_t i = 0; i < n; i++)
		out[i] /= sum;
}

static bool fail_on_label(struct runner *R, const char *label)
{
	for (size_t i = 0; i < R->p->n_fail_on; i++)
		if (!strcmp(R->p->fail_on[i], label))
			return true;
	return false;
}

/* --fail-on hits named on stderr, so a CI log says which files to look at */
#define FAIL_ON_NAMED 50

/* A classify output: the label distribution probs goes into rec, the
 * chosen label is returned (and counted, and named, when --fail-on names it). */
static json_t *label_output(struct runner *R, const struct doc *d, const double *probs, json_t *rec)
{
	json_t *labels;
	const char *best;
	labels_json(R, probs, &labels, &best);
	json_object_set_new(rec, "labels", labels);
	if (fail_on_label(R, best) && ++R->st->fail_on_hits <= FAIL_ON_NAMED)
		fprintf(stderr, "docket: --fail-on: '%s' is %s%s\n", d->path, best,
			R->st->fail_on_hits == FAIL_ON_NAMED ? " (further hits are counted, not named)"
							      : "");
	return json_string(best);
}

/* An extract output over chunks [c0, c1) of d: each field's first non-null
 * value in chunk order; the result is as sound as its chunks. */
static json_t *extract_output(struct runner *R, struct doc *d, size_t c0, size_t c1, json_t *rec)
{
	const struct dk_pipeline *pl = R->pl;
	json_t *o = json_object();
	bool trunc = false, bad = true, len = false;
	for (size_t c = c0; c < c1; c++) {
		trunc |= d->cr[c].truncated;
		bad &= d->cr[c].bad_json;
		len |= d->cr[c].hit_length;
	}
	for (size_t i = 0; i < pl->n_fields; i++) {
		json_t *v = NULL;
		for (size_t c = c0; c < c1 && (!v || json_is_null(v)); c++) {
			const struct cres *cr = &d->cr[c];
			json_t *w = field_out(R, &pl->fields[i], cr->fields ? cr->fields[i] : NULL,
					      cr->fields_json, d->text);
			if (w) {
				json_decref(v);
				v = w;
			}
		}
		if (v)
			json_object_set_new(o, pl->fields[i].name, v);
	}
	extract_verdict(R, rec, o, trunc, bad, len);
	return o;
}

/* The output of chunk ci (per-chunk records) or of the whole document. */
static json_t *chunk_output(struct runner *R, struct doc *d, int ci, json_t *rec)
{
	const struct dk_pipeline *pl = R->pl;
	struct cres *c = &d->cr[ci];
	switch (pl->task) {
	case DK_TASK_SUMMARIZE:
	case DK_TASK_GENERATE:
		/* a text cut off at max_tokens is flagged, not passed off as done */
		json_object_set_new(rec, "finish_reason", json_string(c->hit_length ? "length" : "stop"));
		return json_string(c->gen ? c->gen : "");
	case DK_TASK_CLASSIFY: {
		double *pr = calloc(pl->n_labels, sizeof *pr);
		if (!pr) {
			oom(R, d->path);
			return json_null();
		}
		chunk_probs(R, c->logp, pr);
		json_t *out = label_output(R, d, pr, rec);
		free(pr);
		return out;
	}
	case DK_TASK_EXTRACT:
		return extract_output(R, d, (size_t)ci, (size_t)ci + 1, rec);
	}
	return json_null();
}

static json_t *doc_output(struct runner *R, struct doc *d, json_t *rec)
{
	const struct dk_pipeline *pl = R->pl;
	if (d->n_chunks == 1)
		return chunk_output(R, d, 0, rec);
	switch (pl->task) {
	case DK_TASK_SUMMARIZE:
		/* without a reduce prompt the parts are joined, as for generate */
		if (d->reduce_out) {
			json_object_set_new(rec, "finish_reason",
					    json_string(d->finish ? d->finish : "stop"));
			return json_string(d->reduce_out);
		}
		/* fall through */
	case DK_TASK_GENERATE: {
		bool cut = false;
		for (size_t i = 0; i < d->n_chunks; i++)
			cut |= d->cr[i].hit_length;
		json_object_set_new(rec, "finish_reason", json_string(cut ? "length" : "stop"));
		struct dk_buf b = {0};
		for (size_t i = 0; i < d->n_chunks; i++) {
			if (i)
				dk_buf_putc(&b, '\n');
			dk_buf_puts(&b, d->cr[i].gen ? d->cr[i].gen : "");
		}
		json_t *s = json_string(b.data ? b.data : "");
		dk_buf_free(&b);
		return s;
	}
	case DK_TASK_CLASSIFY: {
		/* mean of the chunks' label distributions */
		size_t n = pl->n_labels;
		double *acc = calloc(n, sizeof *acc), *pr = calloc(n, sizeof *pr);
		if (!acc || !pr) {
			free(acc);
			free(pr);
			oom(R, d->path);
			return json_null();
		}
		for (size_t c = 0; c < d->n_chunks; c++) {
			chunk_probs(R, d->cr[c].logp, pr);
			for (size_t i = 0; i < n; i++)
				acc[i] += pr[i] / (double)d->n_chunks;
		}
		json_t *out = label_output(R, d, acc, rec);
		free(acc);
		free(pr);
		return out;
	}
	case DK_TASK_EXTRACT:
		return extract_output(R, d, 0, d->n_chunks, rec);
	}
	return json_null();
}

static void doc_free(struct doc *d)
{
	if (!d)
		return;
	json_decref(d->supersedes);
	for (size_t i = 0; d->cr && i < d->n_chunks; i++) {
		free(d->cr[i].gen);
		free(d->cr[i].logp);
		free(d->cr[i].error);
		for (size_t k = 0; d->cr[i].fields && k < d->n_fields; k++)
			free(d->cr[i].fields[k]);
		free(d->cr[i].fields);
	}
	free(d->cr);
	free(d->path);
	free(d->member);
	free(d->mime);
	free(d->text);
	free(d->chunks);
	free(d->reduce_out);
	free(d->custom_id);
	free(d->req_model);
	for (size_t i = 0; i < d->n_stops; i++)
		free(d->stops[i]);
	free(d->stops);
	free(d->batch_error);
	free(d);
}

/* ---- document lifecycle ---- */

static void close_doc(struct runner *R, struct doc *d)
{
	struct doc **pp = &R->docs;
	while (*pp && *pp != d)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = d->next;
		R->n_open--;
	}
	doc_free(d);
}

static void chunk_id(struct runner *R, const struct doc *d, size_t ci, char out[33])
{
	id32(out, "chunk", d->path, d->chunks[ci].id, R->pl->hash);
}

/* ---- fallback routing ---- */

/* The template values of chunk ci of d: v[0..12) (text, path, name, member,
 * mime, bytes, labels, schema, chunk_index, chunk_count, field,
 * field_description), borrowing text and the run's strings; the numbers
 * and the label list live in the struct.  Free with chunk_vars_free. */
struct chunk_vars {
	char idx[24], cnt[24], bytes[24];
	struct dk_buf labels;
	struct dk_tmpl_var v[12];
};

static void chunk_vars_init(const struct runner *R, const struct doc *d, size_t ci,
			    const char *text, struct chunk_vars *cv)
{
	const struct dk_pipeline *pl = R->pl;
	const struct dk_chunk *c = &d->chunks[ci];
	memset(&cv->labels, 0, sizeof cv->labels);
	snprintf(cv->idx, sizeof cv->idx, "%d", c->index + 1);
	snprintf(cv->cnt, sizeof cv->cnt, "%d", c->count);
	snprintf(cv->bytes, sizeof cv->bytes, "%llu", (unsigned long long)d->bytes);
	for (size_t i = 0; i < pl->n_labels; i++)
		dk_buf_printf(&cv->labels, "%s%s", i ? ", " : "", pl->labels[i]);
	const char *base = strrchr(d->path, '/');
	base = base ? base + 1 : d->path;
	const struct dk_tmpl_var v[12] = {
		{"text", text ? text : ""},
		{"path", d->path},
		{"name", base},
		{"member", d->member ? d->member : ""},
		{"mime", d->mime},
		{"bytes", cv->bytes},
		{"labels", cv->labels.data ? cv->labels.data : ""},
		{"schema", pl->schema_json ? pl->schema_json : ""},
		{"chunk_index", cv->idx},
		{"chunk_count", cv->cnt},
		{"field", ""},
		{"field_description", ""},
	};
	memcpy(cv->v, v, sizeof v);
}

static void chunk_vars_free(struct chunk_vars *cv) { dk_buf_free(&cv->labels); }

/* Does this run want to route a chunk for reason (a DK_FALLBACK_* bit)? */
static bool fb_wants(const struct runner *R, unsigned reason)
{
	return R->pl && R->fbp.when && dk_fallback_wants(&R->fbp, reason);
}

/* Remote-only mode. */
static bool fb_always(const struct runner *R)
{
	return fb_wants(R, DK_FALLBACK_ALWAYS) && (R->fbp.when & DK_FALLBACK_ALWAYS);
}

/* Appends " (fallback refused: why)" to *msg (or makes it the message). */
static void fb_refuse(struct runner *R, char **msg)
{
	struct dk_buf b = {0};
	if (*msg && **msg)
		dk_buf_printf(&b, "%s (fallback refused: %s)", *msg, R->fb_why);
	else
		dk_buf_printf(&b, "fallback refused: %s", R->fb_why);
	free(*msg);
	*msg = dk_buf_steal(&b);
}

static char *render_text(const struct dk_tmpl *t, const struct dk_tmpl_var *vars, size_t nv)
{
	struct dk_segs segs = {0};
	size_t dummy = (size_t)-1;
	char *s = NULL;
	if (!render_tmpl(t, vars, nv, NULL, &segs, &dummy, NULL))
		s = dk_segs_join(&segs);
	dk_segs_free(&segs);
	return s;
}

/*
 * One remote chat completion for a prompt of the pipeline: the rendered
 * system and user templates as two messages.  The original text goes to
 * dk_fallback_chat, which applies the gate and redacts as its params say.
 * Returns the status; on DK_FATAL the run stops (R->err says why) and the
 * caller writes no record, so a resumed run asks again.
 */
static enum dk_status fb_ask(struct runner *R, const char *rid, const struct dk_tmpl *user,
			     const struct dk_tmpl_var *vars, size_t nv, int max_tokens,
			     const json_t *schema, struct dk_fallback_response *resp)
{
	const struct dk_pipeline *pl = R->pl;
	char *sys = pl->system ? render_text(pl->system, vars, nv) : NULL;
	char *usr = render_text(user, vars, nv);
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

static json_t *classify_schema(const struct dk_pipeline *pl)
{
	json_t *en = json_array();
	for (size_t i = 0; i < pl->n_labels; i++)
		json_array_append_new(en, json_string(pl->labels[i]));
	return json_pack("{s:s, s:{s:{s:s, s:o}}, s:[s], s:b}", "type", "object", "properties",
			 "label", "type", "string", "enum", en, "required", "label",
			 "additionalProperties", 0);
}

/* The label an answer names: {"label": L}, or text equal to / containing a
 * label (case-insensitive).  -1 when none. */
static int answer_label(const struct dk_pipeline *pl, const char *content)
{
	json_t *j = json_loads(content, 0, NULL);
	const char *l = json_string_value(json_object_get(j, "label"));
	bool structured = json_is_object(j);
	char *t = trim_dup(l ? l : content);
	json_decref(j);
	int found = -1;
	if (structured && !l) {
		free(t);
		return -1;
	}
	for (size_t i = 0; t && i < pl->n_labels && found < 0; i++)
		if (!strcasecmp(t, pl->labels[i]))
			found = (int)i;
	/* free text naming a label; an object must say it in "label" */
	for (size_t i = 0; t && !structured && i < pl->n_labels && found < 0; i++)
		if (strcasestr(t, pl->labels[i]))
			found = (int)i;
	free(t);
	return found;
}

/*
 * Answers chunk ci remotely, replacing whatever the local engine left in
 * its result.  why_local: the local problem, kept in the error when the
 * remote answer fails too.  Returns -1 when the run must stop (no record).
 */
static int fb_chunk(struct runner *R, struct doc *d, size_t ci)
{
	const struct dk_pipeline *pl = R->pl;
	struct cres *c = &d->cr[ci];
	c->fb = false;
	if (!R->fb) {
		fb_refuse(R, &c->error);
		return 0;
	}
	const struct dk_chunk *ch = &d->chunks[ci];
	char *text = strndup(d->text + ch->start, ch->end - ch->start);
	char rid[33];
	chunk_id(R, d, ci, rid);
	struct chunk_vars cv;
	chunk_vars_init(R, d, ci, text, &cv);
	/* extract asks one field per local prompt; remotely all at once */
	struct dk_buf fields = {0};
	for (size_t i = 0; i < pl->n_fields; i++)
		dk_buf_printf(&fields, "%s%s", i ? ", " : "", pl->fields[i].name);
	cv.v[10].value = fields.data ? fields.data : "";
	struct dk_tmpl_var *vars = cv.v;
	json_t *schema = NULL;
	if (pl->task == DK_TASK_EXTRACT && pl->schema_json)
		schema = json_loads(pl->schema_json, 0, NULL);
	else if (pl->task == DK_TASK_CLASSIFY)
		schema = classify_schema(pl);
	struct dk_fallback_response resp;
	enum dk_status st = fb_ask(R, rid, pl->user, vars, 12, R->max_tokens, schema, &resp);
	json_decref(schema);
	free(text);
	chunk_vars_free(&cv);
	dk_buf_free(&fields);
	if (st == DK_FATAL) {
		dk_fallback_response_free(&resp);
		return -1;
	}
	if (st == DK_OK) {
		const char *content = resp.content ? resp.content : "";
		char *bad = NULL;
		switch (pl->task) {
		case DK_TASK_SUMMARIZE:
		case DK_TASK_GENERATE:
			free(c->gen);
			c->gen = trim_dup(content);
			break;
		case DK_TASK_CLASSIFY: {
			int k = answer_label(pl, content);
			if (k < 0) {
				bad = strdup("fallback: the answer names none of the labels");
				break;
			}
			if (!c->logp)
				c->logp = calloc(pl->n_labels, sizeof *c->logp);
			/* a remote answer is a label, not a distribution: all mass on it */
			for (size_t i = 0; c->logp && i < pl->n_labels; i++)
				c->logp[i] = (int)i == k ? 0 : -1e4;
			break;
		}
		case DK_TASK_EXTRACT: {
			json_t *o = json_loads(content, 0, NULL);
			if (!json_is_object(o)) {
				json_decref(o);
				bad = strdup("fallback: the answer is not a JSON object");
				break;
			}
			if (!c->fields)
				c->fields = calloc(pl->n_fields ? pl->n_fields : 1, sizeof *c->fields);
			for (size_t i = 0; c->fields && i < pl->n_fields; i++) {
				json_t *v = json_object_get(o, pl->fields[i].name);
				free(c->fields[i]);
				c->fields[i] = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
			}
			c->fields_json = true;
			c->truncated = c->bad_json = c->hit_length = false;
			json_decref(o);
			break;
		}
		}
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
static int fb_resolve(struct runner *R, struct doc *d, size_t ci)
{
	struct cres *c = &d->cr[ci];
	if (!c->want || c->routed)
		return 0;
	if (!c->fb && c->error && strncmp(c->error, "too-long:", 9) && fb_wants(R, DK_FALLBACK_LOCAL_ERROR))
		c->fb = true;
	if (!c->fb)
		return 0;
	return fb_chunk(R, d, ci);
}

static void set_route(json_t *rec, const char *host, const char *model)
{
	json_object_set_new(rec, "route", json_string("fallback"));
	json_object_set_new(rec, "fallback", json_pack("{s:s, s:s}", "host", host, "model", model));
}

static void emit_chunk(struct runner *R, struct doc *d, size_t ci)
{
	struct cres *c = &d->cr[ci];
	/* the record is written only once the remote answer is in: a run
	 * killed during the call asks again when resumed */
	if (fb_resolve(R, d, ci))
		return;
	char id[33];
	chunk_id(R, d, ci, id);
	json_t *rec = record_base(R, id, d, &d->chunks[ci]);
	R->st->chunks++;
	json_t *o = NULL;
	if (!c->error) {
		o = chunk_output(R, d, (int)ci, rec);
		if (R->pl->task == DK_TASK_EXTRACT && !c->routed && R->fb &&
		    fb_wants(R, DK_FALLBACK_INVALID_OUTPUT) &&
		    !json_is_true(json_object_get(rec, "schema_valid"))) {
			json_decref(o);
			o = NULL;
			c->error = strdup("invalid-output: the local answer misses required fields");
			if (fb_chunk(R, d, ci)) {
				json_decref(rec);
				return;
			}
			if (!c->error)
				o = chunk_output(R, d, (int)ci, rec);
		}
	}
	double ms = now_ms() - d->t0;
	if (c->error) {
		json_object_del(rec, "schema_valid");
		record_finish(R, rec, "error", NULL, c->error, NULL, c->pt, c->ct, c->gt, ms);
		if (c->routed)
			set_route(rec, c->fb_host, c->fb_model);
		write_record(R, id, rec, "error");
		return;
	}
	record_finish(R, rec, "ok", o, NULL, NULL, c->pt, c->ct, c->gt, ms);
	if (c->routed)
		set_route(rec, c->fb_host, c->fb_model);
	write_record(R, id, rec, "ok");
}

/* Marks a per-document record routed when any part of it was. */
static void doc_route(struct runner *R, const struct doc *d, json_t *rec)
{
	if (d->routed) {
		set_route(rec, R->fb_host, R->fb_model);
		return;
	}
	for (size_t i = 0; i < d->n_chunks; i++)
		if (d->cr[i].routed) {
			set_route(rec, d->cr[i].fb_host, d->cr[i].fb_model);
			return;
		}
}

static void emit_doc(struct runner *R, struct doc *d, const char *error)
{
	json_t *rec = record_base(R, d->id, d, NULL);
	R->st->chunks += d->n_chunks;
	if (!error)
		for (size_t i = 0; i < d->n_chunks && !error; i++)
			error = d->cr[i].error;
	json_t *o = NULL;
	if (!error) {
		o = doc_output(R, d, rec);
		if (R->pl->task == DK_TASK_EXTRACT && R->fb && fb_wants(R, DK_FALLBACK_INVALID_OUTPUT) &&
		    !json_is_true(json_object_get(rec, "schema_valid"))) {
			json_decref(o);
			o = NULL;
			for (size_t i = 0; i < d->n_chunks; i++) {
				struct cres *c = &d->cr[i];
				if (c->routed)
					continue;
				c->error = strdup("invalid-output: the local answer misses required fields");
				if (fb_chunk(R, d, i)) {
					json_decref(rec);
					return;
				}
				if (c->error && !error)
					error = c->error;
			}
			if (!error)
				o = doc_output(R, d, rec);
		}
	}
	double ms = now_ms() - d->t0;
	if (error) {
		json_object_del(rec, "schema_valid");
		json_object_del(rec, "labels");
		record_finish(R, rec, "error", NULL, error, NULL, d->prompt_tokens, d->cached_tokens,
			      d->completion_tokens, ms);
		doc_route(R, d, rec);
		write_record(R, d->id, rec, "error");
		return;
	}
	record_finish(R, rec, "ok", o, NULL, NULL, d->prompt_tokens, d->cached_tokens,
		      d->completion_tokens, ms);
	doc_route(R, d, rec);
	write_record(R, d->id, rec, "ok");
}

static void emit_skip(struct runner *R, struct doc *d, const char *reason, const char *detail)
{
	json_t *rec = record_base(R, d->id, d, NULL);
	record_finish(R, rec, "skipped", NULL, detail, reason, 0, 0, 0, now_ms() - d->t0);
	write_record(R, d->id, rec, "skipped");
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

/* Queues a generate/score job, or records why it cannot run. */
/* Appends the pipeline's answer template (the start of the model's reply).
 * *word_next (may be NULL) says it ends inside a sentence ("The category
 * is"): what follows is a new word, and BPE vocabularies spell a word with
 * its leading space (" sport"), which is how the model expects to see it. */
static int answer_prefix(struct runner *R, const struct dk_tmpl_var *vars, size_t nv, struct tokv *t,
			 bool *word_next)
{
	if (word_next)
		*word_next = false;
	if (!R->pl->answer)
		return 0;
	struct dk_segs sg = {0};
	size_t dummy = (size_t)-1;
	int rc = render_tmpl(R->pl->answer, vars, nv, NULL, &sg, &dummy, NULL);
	char *a = rc ? NULL : dk_segs_join(&sg);
	if (!a || tokv_push_text(R, t, a, strlen(a), false, false))
		rc = -1;
	if (a && *a && word_next)
		*word_next = !isspace((unsigned char)a[strlen(a) - 1]);
	free(a);
	dk_segs_free(&sg);
	return rc;
}

static int submit(struct runner *R, struct job *j, struct tokv *t, int n_prefix, int n_static,
		  char **err_slot)
{
	dk_token *toks = t->v;
	int n_toks = t->n;
	t->v = NULL;
	t->n = t->cap = 0;
	int n_gen = j->spec.kind == DK_JOB_GEN ? j->spec.max_tokens : 0;
	if (n_toks == 0 || n_toks + n_gen > R->n_ctx) {
		if (!*err_slot)
			*err_slot = too_long(R, n_toks, n_gen);
		free(toks);
		job_free(j);
		return -1;
	}
	j->spec.n_prefix = n_prefix;
	j->spec.n_static = n_static;
	if (dk_sched_submit(R->sched, &j->spec, toks, n_toks) != DK_OK) {
		oom(R, j->doc->path);
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
static struct job *gen_job(struct runner *R, struct doc *d, size_t ci, int sub, enum job_role role)
{
	struct job *j = job_new(R, d, (int)ci, sub, DK_JOB_GEN, role);
	if (!j)
		return NULL;
	j->spec.max_tokens = R->max_tokens;
	j->spec.sp = gen_params(R, hash64(d->chunks[ci].id, 64) + (uint64_t)sub);
	j->spec.stop = R->pl->stop;
	j->spec.n_stop = R->pl->n_stop;
	return j;
}

static void spawn_chunk(struct runner *R, struct doc *d, size_t ci)
{
	const struct dk_pipeline *pl = R->pl;
	const struct dk_chunk *c = &d->chunks[ci];
	struct cres *cr = &d->cr[ci];
	if (!d->is_calib && fb_always(R)) {
		cr->fb = true; /* remote-only: nothing to compute here */
		return;
	}
	char *text = strndup(d->text + c->start, c->end - c->start);
	if (!text) {
		oom(R, d->path);
		return;
	}
	struct chunk_vars cv;
	chunk_vars_init(R, d, ci, text, &cv);
	struct dk_tmpl_var *vars = cv.v;
	struct tokv t = {0};
	int n_prefix = 0, n_static = 0;
	switch (pl->task) {
	case DK_TASK_SUMMARIZE:
	case DK_TASK_GENERATE: {
		struct job *j = gen_job(R, d, ci, 0, ROLE_MAP);
		if (!j) {
			oom(R, d->path);
			break;
		}
		if (build_prompt(R, pl->system, pl->user, vars, 10, "text", &t, &n_prefix, &n_static)) {
			cr->error = strdup("cannot render the prompt");
			job_free(j);
			break;
		}
		submit(R, j, &t, n_prefix, n_static, &cr->error);
		break;
	}
	case DK_TASK_CLASSIFY: {
		cr->logp = calloc(pl->n_labels, sizeof *cr->logp);
		if (!cr->logp) {
			oom(R, d->path);
			break;
		}
		bool word_next;
		if (build_prompt(R, pl->system, pl->user, vars, 10, NULL, &t, &n_prefix, &n_static) ||
		    answer_prefix(R, vars, 10, &t, &word_next)) {
			cr->error = strdup("cannot render the prompt");
			break;
		}
		int n_prompt = t.n;
		for (size_t i = 0; i < pl->n_labels && !cr->error; i++) {
			struct tokv full = {0};
			full.cap = n_prompt + 64;
			full.v = malloc((size_t)full.cap * sizeof *full.v);
			if (!full.v) {
				cr->error = strdup("out of memory");
				break;
			}
			memcpy(full.v, t.v, (size_t)n_prompt * sizeof *t.v);
			full.n = n_prompt;
			char lab[512];
			snprintf(lab, sizeof lab, "%s%s", word_next ? " " : "", pl->labels[i]);
			if (tokv_push_text(R, &full, lab, strlen(lab), false, false) || full.n == n_prompt) {
				free(full.v);
				cr->error = strdup("cannot tokenize a label");
				break;
			}
			struct job *j = job_new(R, d, (int)ci, (int)i, DK_JOB_SCORE, ROLE_LABEL);
			if (!j) {
				free(full.v);
				oom(R, d->path);
				break;
			}
			j->spec.score_from = n_prompt;
			submit(R, j, &full, n_prompt, n_static, &cr->error);
		}
		free(t.v);
		break;
	}
	case DK_TASK_EXTRACT:
		cr->fields = calloc(pl->n_fields, sizeof *cr->fields);
		if (!cr->fields) {
			oom(R, d->path);
			break;
		}
		if (pl->extract_mode == DK_EXTRACT_OBJECT) {
			if (build_prompt(R, pl->system, pl->user, vars, 10, "text", &t, &n_prefix, &n_static) ||
			    answer_prefix(R, vars, 10, &t, NULL)) {
				cr->error = strdup("cannot render the prompt");
				break;
			}
			struct job *j = gen_job(R, d, ci, 0, ROLE_OBJECT);
			if (!j) {
				oom(R, d->path);
				break;
			}
			j->spec.grammar = R->constrained ? 0 : -1;
			submit(R, j, &t, n_prefix, n_static, &cr->error);
			break;
		}
		for (size_t i = 0; i < pl->n_fields && !cr->error; i++) {
			vars[10].value = pl->fields[i].name;
			vars[11].value = pl->fields[i].description;
			t.n = 0;
			if (build_prompt(R, pl->system, pl->user, vars, 12, "field", &t, &n_prefix, &n_static) ||
			    answer_prefix(R, vars, 12, &t, NULL)) {
				cr->error = strdup("cannot render the prompt");
				break;
			}
			struct job *j = gen_job(R, d, ci, (int)i, ROLE_FIELD);
			if (!j) {
				oom(R, d->path);
				break;
			}
			if (R->constrained) {
				j->spec.grammar = (int)i;
				/* a free-text field's answer opens its JSON string here, so
				 * the model copies the value instead of choosing between
				 * a quote and "null" (not found is judged by grounding) */
				const struct dk_field *f = &pl->fields[i];
				if (f->plain && !strcmp(f->type, "string") &&
				    (!f->nullable || (pl->grounded && f->ground))) {
					j->spec.forced = "\"";
					if (tokv_push_text(R, &t, "\"", 1, false, false)) {
						cr->error = strdup("out of memory");
						job_free(j);
						break;
					}
				}
			}
			submit(R, j, &t, n_prefix, n_static, &cr->error);
		}
		free(t.v);
		break;
	}
	free(text);
	chunk_vars_free(&cv);
	if (!d->is_calib && cr->error && !strncmp(cr->error, "too-long:", 9) &&
	    fb_wants(R, DK_FALLBACK_OVER_CONTEXT))
		cr->fb = true;
}

static void doc_stage_done(struct runner *R, struct doc *d);
static void emit_batch(struct runner *R, struct doc *d);

static void open_doc(struct runner *R, const struct dk_doc *dd)
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
		doc_free(d);
		oom(R, dd->path);
		return;
	}
	d->t0 = now_ms();
	snprintf(d->sha256, sizeof d->sha256, "%s", dd->sha256);
	d->bytes = dd->bytes;
	d->n_fields = pl->n_fields;
	id32(d->id, "doc", d->path, d->sha256, pl->hash);
	if (R->p->mode == DK_OUT_INCREMENTAL && *d->sha256 &&
	    dk_out_have_ok(R->out, d->sha256, pl->hash, R->model_sha)) {
		st->unchanged++;
		doc_free(d);
		return;
	}
	if (R->p->mode == DK_OUT_INCREMENTAL) {
		/* looked up as the records spell the path (escaped when not UTF-8) */
		json_t *src = source_json(d);
		d->supersedes = dk_out_superseded(
			R->out, json_string_value(json_object_get(src, "path")),
			json_string_value(json_object_get(src, "member")), pl->name, d->sha256);
		json_decref(src);
	}
	if (dd->action == DK_DOC_SKIP || !dd->text) {
		if (dk_out_done(R->out, d->id))
			st->resumed++;
		else
			emit_skip(R, d, dd->skip_reason ? dd->skip_reason : "unreadable", dd->detail);
		doc_free(d);
		return;
	}
	if (!pl->per_chunk && dk_out_done(R->out, d->id)) {
		st->resumed++;
		doc_free(d);
		return;
	}
	struct dk_chunk_params cp = dk_chunk_default_params();
	cp.max_tokens = pl->chunk_tokens;
	cp.overlap_tokens = pl->chunk_overlap;
	cp.count = count_tokens;
	cp.count_ud = R;
	if (dk_chunk_text(dd->text, dd->text_len, dd->sha256[0] ? dd->sha256 : NULL, &cp, &d->chunks,
			  &d->n_chunks) != DK_OK) {
		json_t *rec = record_base(R, d->id, d, NULL);
		record_finish(R, rec, "error", NULL, "cannot chunk the text", NULL, 0, 0, 0, 0);
		write_record(R, d->id, rec, "error");
		doc_free(d);
		return;
	}
	if (d->n_chunks == 0) {
		if (dk_out_done(R->out, d->id))
			st->resumed++;
		else
			emit_skip(R, d, "empty", "no text to process");
		doc_free(d);
		return;
	}
	d->text = strndup(dd->text, dd->text_len);
	d->cr = calloc(d->n_chunks, sizeof *d->cr);
	if (!d->text || !d->cr) {
		doc_free(d);
		oom(R, dd->path);
		return;
	}
	size_t want = 0;
	for (size_t i = 0; i < d->n_chunks; i++) {
		char id[33];
		chunk_id(R, d, i, id);
		d->cr[i].want = !pl->per_chunk || !dk_out_done(R->out, id);
		if (!d->cr[i].want)
			st->resumed++;
		want += d->cr[i].want;
	}
	if (!want) {
		doc_free(d);
		return;
	}
	d->next = R->docs;
	R->docs = d;
	R->n_open++;
	for (size_t i = 0; i < d->n_chunks; i++)
		if (d->cr[i].want) {
			spawn_chunk(R, d, i);
			if (pl->per_chunk && d->cr[i].pending == 0)
				emit_chunk(R, d, i); /* failed before running */
		}
	if (d->pending == 0)
		doc_stage_done(R, d);
}

static void doc_stage_done(struct runner *R, struct doc *d)
{
	const struct dk_pipeline *pl = R->pl;
	if (d->is_calib) {
		if (!d->cr[0].error) {
			R->calib = malloc(pl->n_labels * sizeof *R->calib);
			if (R->calib)
				memcpy(R->calib, d->cr[0].logp, pl->n_labels * sizeof *R->calib);
		}
		R->calib_pending = false;
		close_doc(R, d);
		return;
	}
	if (d->custom_id) {
		emit_batch(R, d);
		close_doc(R, d);
		return;
	}
	if (pl->per_chunk) {
		close_doc(R, d);
		return;
	}
	if (!d->fb_done) {
		d->fb_done = true;
		for (size_t i = 0; i < d->n_chunks; i++)
			if (fb_resolve(R, d, i)) {
				close_doc(R, d); /* the run stops; no record */
				return;
			}
	}
	bool err = false;
	for (size_t i = 0; i < d->n_chunks; i++)
		err |= d->cr[i].error != NULL;
	if (!err && pl->task == DK_TASK_SUMMARIZE && d->n_chunks > 1 && pl->reduce && !d->reduced) {
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
		struct dk_tmpl_var vars[] = {
			{"summaries", sum.data ? sum.data : ""}, {"path", d->path}, {"name", base},
			{"member", d->member ? d->member : ""}, {"mime", d->mime}, {"bytes", bytes},
			{"chunk_count", cnt},
		};
		struct tokv t = {0};
		int n_prefix = 0, n_static = 0;
		char *error = NULL;
		bool remote = fb_always(R);
		if (remote) {
			/* no local inference in remote-only mode */
		} else if (build_prompt(R, pl->system, pl->reduce, vars, sizeof vars / sizeof vars[0],
				 "summaries", &t, &n_prefix, &n_static)) {
			error = strdup("cannot render the reduce prompt");
		} else {
			struct job *j = job_new(R, d, -1, 0, DK_JOB_GEN, ROLE_REDUCE);
			j->spec.max_tokens = pl->reduce_max_tokens;
			j->spec.sp = gen_params(R, hash64(d->id, 32));
			j->spec.stop = pl->stop;
			j->spec.n_stop = pl->n_stop;
			submit(R, j, &t, n_prefix, n_static, &error);
			if (error && !strncmp(error, "too-long:", 9) && fb_wants(R, DK_FALLBACK_OVER_CONTEXT))
				remote = true;
		}
		if (remote && !R->fb) {
			fb_refuse(R, &error);
		} else if (remote) {
			struct dk_fallback_response resp;
			enum dk_status fs = fb_ask(R, d->id, pl->reduce, vars, sizeof vars / sizeof vars[0],
						   pl->reduce_max_tokens, NULL, &resp);
			if (fs == DK_OK) {
				free(error);
				error = NULL;
				free(d->reduce_out);
				d->reduce_out = trim_dup(resp.content ? resp.content : "");
				d->routed = true;
				snprintf(R->fb_host, sizeof R->fb_host, "%s", resp.host);
				snprintf(R->fb_model, sizeof R->fb_model, "%s", resp.model);
				if (resp.prompt_tokens > 0)
					d->prompt_tokens += (uint64_t)resp.prompt_tokens;
				if (resp.completion_tokens > 0)
					d->completion_tokens += (uint64_t)resp.completion_tokens;
			} else if (fs != DK_FATAL) {
				struct dk_buf b = {0};
				dk_buf_printf(&b, "%s%sfallback failed: %s", error ? error : "",
					      error ? " (" : "", resp.error);
				if (error)
					dk_buf_putc(&b, ')');
				free(error);
				error = dk_buf_steal(&b);
			}
			dk_fallback_response_free(&resp);
			if (fs == DK_FATAL) {
				dk_buf_free(&sum);
				free(error);
				free(t.v);
				close_doc(R, d);
				return;
			}
			if (!error) {
				dk_buf_free(&sum);
				free(t.v);
				emit_doc(R, d, NULL);
				close_doc(R, d);
				return;
			}
		}
		free(t.v);
		dk_buf_free(&sum);
		if (!error)
			return; /* the reduce job will call us again */
		emit_doc(R, d, error);
		free(error);
		close_doc(R, d);
		return;
	}
	emit_doc(R, d, NULL);
	close_doc(R, d);
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
	const char *text = r->text;
	if (j->chunk >= 0) {
		struct cres *c = &d->cr[j->chunk];
		c->pt += (uint64_t)r->n_prompt;
		c->ct += (uint64_t)r->n_cached;
		c->gt += (uint64_t)r->n_gen;
		if (r->error && !c->error)
			c->error = strdup(r->error);
		switch (j->role) {
		case ROLE_MAP:
			free(c->gen);
			c->gen = trim_dup(text);
			break;
		case ROLE_FIELD:
			if (!(c->fields[j->sub] = strdup(text)))
				oom(R, d->path);
			if (r->constrained)
				c->fields_json = true;
			break;
		case ROLE_OBJECT:
			object_fields(R, c, text, r->constrained);
			break;
		case ROLE_LABEL:
			c->logp[j->sub] = r->logp;
			break;
		default:
			break;
		}
		if (r->finish == DK_FINISH_LENGTH) {
			c->hit_length = true;
			c->truncated |= r->constrained; /* a cut-off JSON value is no value */
		}
		c->pending--;
	} else {
		if (r->error && !d->batch_error)
			d->batch_error = strdup(r->error);
		free(d->reduce_out);
		d->reduce_out = j->role == ROLE_BATCH ? strdup(text) : trim_dup(text);
		d->finish = r->finish == DK_FINISH_LENGTH ? "length" : "stop";
	}
	d->pending--;
	int chunk = j->chunk;
	job_free(j);
	if (R->pl && R->pl->per_chunk && !d->is_calib && chunk >= 0 && d->cr[chunk].pending == 0)
		emit_chunk(R, d, (size_t)chunk);
	if (d->pending == 0)
		doc_stage_done(R, d);
}

/* ---- OpenAI batch requests ---- */

static void emit_batch(struct runner *R, struct doc *d)
{
	char out_id[64], rid[64], cid[64];
	snprintf(out_id, sizeof out_id, "batch_req_%s", d->id);
	snprintf(rid, sizeof rid, "req_%s", d->id);
	snprintf(cid, sizeof cid, "chatcmpl-%s", d->id);
	json_t *line = json_object();
	json_object_set_new(line, "id", json_string(out_id));
	json_object_set_new(line, "custom_id", json_string(d->custom_id));
	const char *status = "ok";
	if (d->batch_error) {
		status = "error";
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
	put_line(R, out_id, line, status);
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
		rc = tokv_push_text(R, out, b.data ? b.data : "", b.len, true, false);
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
		if (at > cur && tokv_push_text(R, out, cur, (size_t)(at - cur), first, true))
			goto out;
		if (at > cur)
			first = false;
		if (*content[i] && tokv_push_text(R, out, content[i], strlen(content[i]), first, false))
			goto out;
		if (*content[i])
			first = false;
		cur = at + strlen(mark[i]);
	}
	if (*cur && tokv_push_text(R, out, cur, strlen(cur), first, true))
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

static void open_batch_line(struct runner *R, const char *line, size_t len)
{
	R->batch_line++;
	struct dk_runner_stats *st = R->st;
	json_error_t je;
	json_t *j = json_loadb(line, len, 0, &je);
	struct doc *d = calloc(1, sizeof *d);
	d->t0 = now_ms();
	char where[64];
	snprintf(where, sizeof where, "line %llu", (unsigned long long)R->batch_line);
	d->path = strdup(where);
	d->mime = strdup("application/json");
	const char *cid = json_string_value(json_object_get(j, "custom_id"));
	d->custom_id = strdup(cid ? cid : where);
	id32(d->id, "batch", d->custom_id, NULL, NULL);
	char out_id[64];
	snprintf(out_id, sizeof out_id, "batch_req_%s", d->id);
	st->docs++;
	if (dk_out_done(R->out, out_id)) {
		st->resumed++;
		json_decref(j);
		doc_free(d);
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
		emit_batch(R, d);
		free(t.v);
		json_decref(j);
		doc_free(d);
		return;
	}
	struct job *jb = job_new(R, d, -1, 0, DK_JOB_GEN, ROLE_BATCH);
	json_t *mt = json_object_get(body, "max_completion_tokens");
	if (!mt)
		mt = json_object_get(body, "max_tokens");
	jb->spec.max_tokens = json_is_integer(mt) && json_integer_value(mt) > 0
				 ? (int)json_integer_value(mt)
				 : (R->max_tokens > 0 ? R->max_tokens : 256);
	jb->spec.sp = gen_params(R, hash64(d->custom_id, strlen(d->custom_id)));
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
	if (submit(R, jb, &t, 0, 0, &d->batch_error)) {
		emit_batch(R, d);
		close_doc(R, d);
	}
	free(t.v);
}

/* ---- the loop ---- */

/* Queues the labels of a content-free document; records wait for it. */
static void start_calibration(struct runner *R)
{
	struct doc *d = calloc(1, sizeof *d);
	struct dk_chunk *c = calloc(1, sizeof *c);
	struct cres *cr = calloc(1, sizeof *cr);
	if (!d || !c || !cr) {
		free(d);
		free(c);
		free(cr);
		return;
	}
	d->is_calib = true;
	d->t0 = now_ms();
	d->path = strdup("calibration");
	d->mime = strdup("text/plain");
	d->text = strdup("N/A");
	d->chunks = c;
	d->n_chunks = 1;
	d->cr = cr;
	c->count = 1;
	c->end = 3;
	c->tokens = count_tokens(R, "N/A", 3);
	snprintf(c->id, sizeof c->id, "calibration");
	cr->want = true;
	d->next = R->docs;
	R->docs = d;
	R->n_open++;
	R->calib_pending = true;
	spawn_chunk(R, d, 0);
	if (d->pending == 0)
		doc_stage_done(R, d);
}

static void refill(struct runner *R)
{
	int max_open = R->p->max_open_docs > 0 ? R->p->max_open_docs : 4 * R->n_seq;
	if (R->calib_pending)
		return;
	while (!R->eof && !R->stopping && dk_sched_queued(R->sched) < 2 * R->n_seq + 4 && R->n_open < max_open) {
		if (R->batch_in) {
			char *line = NULL;
			size_t cap = 0;
			ssize_t k = getline(&line, &cap, R->batch_in);
			if (k <= 0) {
				free(line);
				R->eof = true;
				break;
			}
			while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r'))
				line[--k] = 0;
			if (k > 0)
				open_batch_line(R, line, (size_t)k);
			else
				R->batch_line++;
			free(line);
			continue;
		}
		const struct dk_doc *dd;
		enum dk_status st = dk_ingest_next(R->ing, &dd);
		if (st == DK_EOF) {
			R->eof = true;
			break;
		}
		if (st != DK_OK) {
			dk_err(R->err, sizeof R->err, DK_FATAL, "%s", dk_ingest_error(R->ing));
			R->io_failed = true;
			R->stopping = true;
			break;
		}
		open_doc(R, dd);
	}
}

static double cache_rate(const struct dk_runner_stats *st)
{
	return st->prompt_tokens ? (double)st->cached_tokens / (double)st->prompt_tokens : 0;
}

static void progress(struct runner *R, bool final)
{
	double t = now_ms();
	if (!final && t - R->last_progress < (R->progress_jsonl ? 1000 : 200))
		return;
	R->last_progress = t;
	const struct dk_runner_stats *st = R->st;
	double secs = (t - R->t0) / 1000;
	double tps = secs > 0 ? (double)(st->prompt_tokens - st->cached_tokens + st->completion_tokens) / secs : 0;
	if (R->progress_jsonl) {
		fprintf(stderr,
			"{\"event\":\"%s\",\"docs\":%llu,\"chunks\":%llu,\"ok\":%llu,\"skipped\":%llu,"
			"\"errors\":%llu,\"tokens_per_s\":%.1f,\"cache_hit_rate\":%.4f,\"elapsed_s\":%.2f}\n",
			final ? "done" : "progress", (unsigned long long)st->docs,
			(unsigned long long)st->chunks, (unsigned long long)st->ok,
			(unsigned long long)st->skipped, (unsigned long long)st->errors, tps,
			cache_rate(st), secs);
		fflush(stderr);
	} else if (R->progress_bar) {
		char line[256];
		int n = snprintf(line, sizeof line,
				 "\r%llu docs (%llu ok, %llu skipped, %llu errors) | %llu chunks | %.0f tok/s | "
				 "cache %.0f%% | %d:%02d",
				 (unsigned long long)st->docs, (unsigned long long)st->ok,
				 (unsigned long long)st->skipped, (unsigned long long)st->errors,
				 (unsigned long long)st->chunks, tps, 100 * cache_rate(st), (int)secs / 60,
				 (int)secs % 60);
		fputs(line, stderr);
		for (int i = n; i < R->last_bar_len; i++)
			fputc(' ', stderr);
		R->last_bar_len = n;
		if (final)
			fputc('\n', stderr);
		fflush(stderr);
	}
}

static void abandon_all(struct runner *R)
{
	if (R->sched)
		dk_sched_cancel_all(R->sched);
	while (R->docs) {
		struct doc *d = R->docs;
		R->docs = d->next;
		doc_free(d);
	}
	R->n_open = 0;
}

static void loop(struct runner *R)
{
	for (;;) {
		if (R->p->stop && *R->p->stop && !R->stopping) {
			R->stopping = true;
			R->st->interrupted = true;
			R->st->signal = (int)*R->p->stop;
		}
		if (R->stopping)
			break;
		refill(R);
		if (R->eof && !dk_sched_queued(R->sched) && !dk_sched_active(R->sched))
			break;
		if (dk_sched_step(R->sched) != DK_OK) {
			if (!R->io_failed)
				dk_err(R->err, sizeof R->err, DK_FATAL, "%s", dk_sched_error(R->sched));
			R->io_failed = true;
			R->stopping = true;
		}
		progress(R, false);
	}
	abandon_all(R);
}

/* A run that checked nothing must not pass for one that checked everything
 * (a CI gate over a tree the globs filter out): say so on stderr. */
static void warn_empty(struct runner *R, const char *const *inputs)
{
	const struct dk_runner_stats *st = R->st;
	for (size_t i = 0; i < R->n_inputs; i++)
		if (!R->input_docs[i] && strcmp(inputs[i], "-") && !st->other_shards)
			fprintf(stderr, "docket: warning: '%s' holds no documents\n", inputs[i]);
	uint64_t processed = st->ok + st->errors + st->resumed + st->unchanged;
	if (st->docs && !processed)
		fprintf(stderr,
			"docket: warning: no document was processed: all %llu were skipped (%llu "
			"excluded by the input globs; see 'docket ls --pipeline %s')\n",
			(unsigned long long)st->docs, (unsigned long long)st->excluded, R->pl->name);
}

/* ---- setup ---- */

/* A sensitive pipeline's records, checkpoint and report are summaries of
 * private documents: created 0600, not world-readable. */
static bool private_files(const struct runner *R) { return R->pl && R->pl->sensitive; }

/* Writes j to path atomically (temp file + rename), mode 0600 or 0644. */
static int write_json_file(const char *path, const json_t *j, bool priv)
{
	struct dk_buf tmp = {0};
	dk_buf_printf(&tmp, "%s.tmp.%d", path, (int)getpid());
	if (!tmp.data)
		return -1;
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, priv ? 0600 : 0644);
	int rc = fd < 0 || json_dumpfd(j, fd, JSON_INDENT(2)) || write(fd, "\n", 1) != 1 || fsync(fd)
			 ? -1
			 : 0;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (!rc && rename(tmp.data, path))
		rc = -1, e = errno;
	if (rc)
		unlink(tmp.data);
	dk_buf_free(&tmp);
	errno = e;
	return rc;
}

static void write_report(struct runner *R)
{
	const struct dk_runner_stats *st = R->st;
	double secs = st->wall_ms / 1000;
	json_t *r = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:f, s:f, s:f, s:f, s:b, s:b}",
		"documents", (json_int_t)st->docs, "chunks", (json_int_t)st->chunks, "ok",
		(json_int_t)st->ok, "skipped", (json_int_t)st->skipped, "error", (json_int_t)st->errors,
		"resumed", (json_int_t)st->resumed, "unchanged", (json_int_t)st->unchanged,
		"other_shards", (json_int_t)st->other_shards, "tokens", "prompt",
		(json_int_t)st->prompt_tokens, "cached", (json_int_t)st->cached_tokens, "completion",
		(json_int_t)st->completion_tokens, "cache_hit_rate", cache_rate(st), "docs_per_s",
		secs > 0 ? (double)st->docs / secs : 0.0, "tokens_per_s",
		secs > 0 ? (double)(st->prompt_tokens - st->cached_tokens + st->completion_tokens) / secs
			 : 0.0,
		"wall_s", secs, "interrupted", st->interrupted, "max_failures_hit", st->max_failures_hit);
	if (R->pl)
		json_object_set_new(r, "pipeline", json_pack("{s:s, s:s}", "name", R->pl->name, "hash",
							     R->pl->hash));
	json_object_set_new(r, "model", json_pack("{s:s, s:s}", "name", R->model_name, "sha256",
						  R->model_sha ? R->model_sha : ""));
	json_object_set_new(r, "docket", json_pack("{s:s}", "version", DK_VERSION_STRING));
	if (R->settings)
		json_object_set_new(r, "settings", json_pack("{s:s, s:O}", "hash", R->settings_hash,
							     "values", R->settings));
	if (R->ctx) {
		/* the engine's counters: what the prefix cache served and computed,
		 * and the cached blocks it reclaimed (finished documents', mostly) */
		struct dk_kv_stats ks;
		dk_kv_stats(R->ctx, &ks);
		json_object_set_new(r, "kv_cache",
				    json_pack("{s:I, s:I, s:I, s:i}", "hit_tokens", (json_int_t)ks.hit_tokens,
					      "miss_tokens", (json_int_t)ks.miss_tokens, "evictions",
					      (json_int_t)ks.evictions, "blocks", (int)ks.blocks_total));
	}
	if (R->p->prefix_dir && R->pl)
		json_object_set_new(r, "prefix_files",
				    json_pack("{s:s, s:i, s:i, s:I}", "dir", R->p->prefix_dir, "loaded",
					      (int)st->prefix_files_loaded, "saved",
					      (int)st->prefix_files_saved, "loaded_tokens",
					      (json_int_t)st->prefix_tokens_loaded));
	if (R->p->report_path && write_json_file(R->p->report_path, r, private_files(R)))
		fprintf(stderr, "docket: cannot write report '%s': %s\n", R->p->report_path,
			dk_errno_str(errno));
	json_decref(r);
}

static enum dk_status setup(struct runner *R, char *err, size_t n)
{
	const struct dk_runner_params *p = R->p;
	/* a model that is not there is a run that cannot be done (3), like a
	 * damaged one: the command line may be right on another machine */
	if (!p->model_path || access(p->model_path, R_OK))
		return dk_err(err, n, DK_FATAL, "cannot open model '%s': %s",
			      p->model_path ? p->model_path : "", dk_errno_str(errno));
	struct dk_model_params mp = dk_model_default_params();
	enum dk_status st = dk_model_load(&R->model, p->model_path, &mp);
	if (st != DK_OK) /* the model's message names the file */
		return dk_err(err, n, DK_FATAL, "%s",
			      R->model ? dk_model_error(R->model) : "cannot load model: out of memory");
	const struct dk_model_info *mi = dk_model_info(R->model);
	R->tok = dk_model_tokenizer(R->model);
	R->n_vocab = mi->n_vocab;
	R->model_name = mi->name;
	R->model_sha = dk_model_sha256(R->model);
	if (!R->model_sha)
		return dk_err(err, n, DK_FATAL, "cannot read model '%s' to hash it", p->model_path);
	const char *tmpl = dk_model_chat_template(R->model);
	R->chat = tmpl ? dk_chat_detect(tmpl) : DK_CHAT_RAW;
	if (R->chat == DK_CHAT_UNKNOWN)
		R->chat = DK_CHAT_RAW;
	const struct dk_pipeline *pl = R->pl;
	R->max_tokens = p->max_tokens >= 0 ? p->max_tokens : pl ? pl->max_tokens : 256;
	R->temperature = p->temperature >= 0 ? p->temperature : pl ? pl->temperature : 0;
	R->seed = p->seed >= 0 ? (uint64_t)p->seed : pl ? pl->seed : 0;
	R->n_seq = p->n_seq > 0 ? p->n_seq : 8;
	R->n_batch = p->n_batch > 0 ? p->n_batch : 512;
	R->n_ctx = p->n_ctx > 0 ? p->n_ctx : 2048;
	if (mi->n_ctx_train > 0 && R->n_ctx > mi->n_ctx_train) {
		if (p->n_ctx > 0)
			return dk_err(err, n, DK_SKIP, "--ctx %d exceeds the model's training context %d",
				      p->n_ctx, mi->n_ctx_train);
		R->n_ctx = mi->n_ctx_train;
	}
	if (R->n_batch < R->n_seq)
		R->n_batch = R->n_seq;
	/* before the output is opened: a bad directory is refused with nothing
	 * written.  Batch files bring their own prompts, whose heads may hold
	 * anything. */
	if (p->prefix_dir && p->prefix_cache && pl &&
	    dk_prefixes_new(&R->pfx, p->prefix_dir, R->model_sha,
			    dk_ctx_default_params().kv_type == DK_TYPE_F16, err, n) != DK_OK)
		return DK_SKIP;
	return DK_OK;
}

static enum dk_status open_output(struct runner *R, char *err, size_t n)
{
	const struct dk_runner_params *p = R->p;
	/* the configuration that determines the records */
	json_t *cfg = json_pack("{s:s, s:s, s:s, s:s, s:i, s:f, s:I, s:s, s:i}",
				"pipeline", R->pl ? R->pl->name : "batch", "pipeline_hash",
				R->pl ? R->pl->hash : "", "model", R->model_name, "model_sha256",
				R->model_sha, "max_tokens", R->max_tokens, "temperature",
				(double)R->temperature, "seed", (json_int_t)R->seed, "chat",
				dk_chat_family_name(R->chat), "n_ctx", R->n_ctx);
	if (R->schema)
		json_object_set_new(cfg, "constrained", json_boolean(R->constrained));
	/* only when off, so that checkpoints of earlier runs still match */
	if (!p->deterministic)
		json_object_set_new(cfg, "deterministic", json_false());
	/* what else the bits depend on: nothing ("portable") at every kernel
	 * level in deterministic mode; the level and OpenBLAS otherwise, so a
	 * resume or merge never mixes records computed differently */
	const char *numerics = dk_ctx_numerics(R->ctx);
	if (strcmp(numerics, "portable"))
		json_object_set_new(cfg, "numerics", json_string(numerics));
	/* where records may be answered, and how much of them is sent: a
	 * resumed run must not mix local-only and routed records silently */
	if (R->pl && R->fbp.when)
		json_object_set_new(cfg, "fallback",
				    json_pack("{s:s, s:s, s:I, s:b, s:b}", "url",
					      R->fbp.base_url ? R->fbp.base_url : "", "model",
					      R->fbp.model ? R->fbp.model : "", "when",
					      (json_int_t)R->fbp.when, "allow_sensitive",
					      R->fbp.allow_sensitive, "redact", R->fbp.redact));
	/* the settings records carry are the same for every shard of a run, so
	 * that merge can tell shards of one run from shards of two */
	char *sj = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
	if (!sj) {
		json_decref(cfg);
		return dk_err(err, n, DK_FATAL, "out of memory");
	}
	uint8_t sd[32];
	dk_sha256(sj, strlen(sj), sd);
	dk_sha256_hex(sd, R->settings_hash);
	free(sj);
	R->settings = json_deep_copy(cfg);
	/* the cache changes no record (sh_run_invariance), so it is no setting
	 * of one; but a resume that mixes the two is refused rather than
	 * trusted on that alone (only when off, as deterministic) */
	if (!p->prefix_cache)
		json_object_set_new(cfg, "prefix_cache", json_false());
	json_object_set_new(cfg, "format", json_string(p->format == DK_FORMAT_OPENAI_BATCH
							       ? "openai-batch"
							       : "docket"));
	if (p->shard_n > 1) {
		char sh[32];
		snprintf(sh, sizeof sh, "%d/%d", p->shard_k, p->shard_n);
		json_object_set_new(cfg, "shard", json_string(sh));
	}
	char *cj = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(cfg);
	if (!cj || !R->settings)
		return dk_err(err, n, DK_FATAL, "out of memory");
	uint8_t d[32];
	char hex[65];
	dk_sha256(cj, strlen(cj), d);
	dk_sha256_hex(d, hex);
	struct dk_out_params op = dk_out_default_params();
	op.path = p->output ? p->output : "-";
	op.config_hash = hex;
	op.config_json = cj;
	op.mode = (enum dk_out_mode)p->mode;
	op.force = p->force;
	op.private_files = private_files(R);
	if (p->sync_every > 0)
		op.sync_every = p->sync_every;
	if (p->sync_ms > 0)
		op.sync_ms = p->sync_ms;
	enum dk_status st = dk_out_open(&R->out, &op, err, n);
	free(cj);
	if (st == DK_OK) {
		const struct dk_out_scan *sc = dk_out_scan(R->out);
		if (sc->torn_bytes)
			fprintf(stderr, "docket: '%s': removed a torn last line (%llu bytes)\n", op.path,
				(unsigned long long)sc->torn_bytes);
		if (sc->bad_lines || sc->duplicates)
			fprintf(stderr, "docket: '%s': dropped %llu unreadable and %llu repeated lines\n",
				op.path, (unsigned long long)sc->bad_lines,
				(unsigned long long)sc->duplicates);
	}
	return st;
}

/*
 * The routing policy: the pipeline's fallback block, overridden by the
 * command line.  The endpoint object is made only when something may be
 * sent: a sensitive pipeline without allow_sensitive never opens a
 * connection (its chunks are recorded as refused).
 */
static enum dk_status fallback_setup(struct runner *R, char *err, size_t n)
{
	const struct dk_runner_params *p = R->p;
	const struct dk_fallback_opts *o = &p->fallback;
	const struct dk_pipeline *pl = R->pl;
	R->fbp = dk_fallback_default_params();
	if (pl->fallback_json) {
		char e[DK_ERRMSG_MAX] = "out of memory";
		R->fb_json = json_loads(pl->fallback_json, 0, NULL);
		if (!R->fb_json || dk_fallback_params_from_json(&R->fbp, R->fb_json, e, sizeof e))
			return dk_err(err, n, DK_SKIP, "pipeline '%s': fallback: %s", pl->name, e);
	}
	if (o->url)
		R->fbp.base_url = o->url;
	if (o->model)
		R->fbp.model = o->model;
	if (o->key_env)
		R->fbp.key_env = o->key_env;
	if (o->when) {
		char e[128];
		if (dk_fallback_parse_when(o->when, &R->fbp.when, e, sizeof e))
			return dk_err(err, n, DK_SKIP, "--fallback-when: %s", e);
	}
	if (o->allow_sensitive)
		R->fbp.allow_sensitive = true;
	if (o->redact)
		R->fbp.redact = true;
	if (o->disabled)
		R->fbp.when = 0;
	if (!R->fbp.when)
		return DK_OK;
	if (!R->fbp.base_url || !*R->fbp.base_url)
		return dk_err(err, n, DK_SKIP,
			      "fallback.when is set but no endpoint is (fallback.url or --fallback-url)");
	if (!dk_route_allowed(&R->fbp, pl->sensitive, R->fb_why, sizeof R->fb_why))
		return DK_OK;
	if (o->audit) {
		R->audit_path = strdup(o->audit);
	} else {
		if (!p->output || !strcmp(p->output, "-"))
			return dk_err(err, n, DK_SKIP,
				      "fallback routing writing to stdout needs --audit FILE");
		struct dk_buf b = {0};
		dk_buf_printf(&b, "%s.audit.jsonl", p->output);
		R->audit_path = dk_buf_steal(&b);
	}
	if (!R->audit_path)
		return dk_err(err, n, DK_FATAL, "out of memory");
	R->fbp.audit_path = R->audit_path;
	char e[DK_ERRMSG_MAX];
	R->fb = dk_fallback_new(&R->fbp, e, sizeof e);
	if (!R->fb)
		return dk_err(err, n, DK_SKIP, "fallback: %s", e);
	return DK_OK;
}

/* Extract: the schema, and unless turned off, the grammars that mask
 * generation (one per field, or one for the whole object) over a trie of
 * the model's vocabulary. */
static enum dk_status structured_setup(struct runner *R, char *err, size_t n)
{
	const struct dk_pipeline *pl = R->pl;
	if (!pl || pl->task != DK_TASK_EXTRACT)
		return DK_OK;
	R->schema = json_loads(pl->schema_json, 0, NULL);
	if (!R->schema)
		return dk_err(err, n, DK_FATAL, "out of memory");
	R->constrained = R->p->constrained < 0 ? pl->constrained : R->p->constrained > 0;
	if (!R->constrained)
		return DK_OK;
	R->gvocab = dk_grammar_vocab_from_tokenizer(R->tok);
	R->n_gram = pl->extract_mode == DK_EXTRACT_OBJECT ? 1 : (int)pl->n_fields;
	R->gram = calloc((size_t)R->n_gram, sizeof *R->gram);
	if (!R->gvocab || !R->gram)
		return dk_err(err, n, DK_FATAL, "out of memory");
	for (int g = 0; g < R->n_gram; g++) {
		json_t *sc;
		if (pl->extract_mode == DK_EXTRACT_OBJECT) {
			sc = json_incref(R->schema);
		} else {
			/* a field's schema on its own, with the definitions its
			 * $refs may name */
			const struct dk_field *f = &pl->fields[g];
			sc = json_loads(f->schema_json, 0, NULL);
			/* a grounded field's null comes from grounding: the model is
			 * asked for a value (made to say "null", it says it where it
			 * would have written "RM 9.00") */
			if (sc && f->ground && pl->grounded) {
				json_object_set_new(sc, "type", json_string(f->type));
				json_object_del(sc, "nullable");
			}
			const char *defs[] = {"definitions", "$defs"};
			for (size_t k = 0; sc && k < 2; k++) {
				json_t *dv = json_object_get(R->schema, defs[k]);
				if (dv)
					json_object_set(sc, defs[k], dv);
			}
		}
		char e[DK_ERRMSG_MAX];
		enum dk_status st = sc ? dk_schema_compile(sc, &R->gram[g], e, sizeof e) : DK_FATAL;
		json_decref(sc);
		if (st != DK_OK)
			return dk_err(err, n, DK_SKIP, "pipeline '%s': schema%s%s: %s", pl->name,
				      pl->extract_mode == DK_EXTRACT_OBJECT ? "" : ".properties.",
				      pl->extract_mode == DK_EXTRACT_OBJECT ? "" : pl->fields[g].name,
				      sc ? e : "out of memory");
		/* one token per byte is the worst case the mask plans for */
		int32_t need = dk_grammar_min_bytes(R->gram[g]);
		if (need > R->max_tokens)
			return dk_err(err, n, DK_SKIP,
				      "pipeline '%s': generation.max_tokens %d cannot hold the shortest "
				      "valid %s (%d bytes)", pl->name, R->max_tokens,
				      pl->extract_mode == DK_EXTRACT_OBJECT ? "object" : "value", (int)need);
	}
	return DK_OK;
}

static enum dk_status start_engine(struct runner *R, char *err, size_t n)
{
	const struct dk_runner_params *p = R->p;
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = R->n_ctx;
	cp.n_seq_max = R->n_seq;
	cp.n_batch = R->n_batch;
	if (p->n_threads > 0)
		cp.n_threads = p->n_threads;
	cp.prefix_cache = p->prefix_cache;
	cp.deterministic = p->deterministic;
	if (dk_ctx_new(&R->ctx, R->model, &cp) != DK_OK)
		return dk_err(err, n, DK_FATAL, "cannot create the context: %s",
			      R->ctx ? dk_ctx_error(R->ctx) : "out of memory");
	struct dk_sched_params sp;
	dk_sched_default_params(&sp);
	sp.ctx = R->ctx;
	sp.tok = R->tok;
	sp.n_seq = R->n_seq;
	sp.n_batch = R->n_batch;
	sp.n_ctx = R->n_ctx;
	sp.n_vocab = R->n_vocab;
	sp.prefix_cache = p->prefix_cache;
	sp.grammars = R->gram;
	sp.n_grammars = R->n_gram;
	sp.gvocab = R->gvocab;
	if (dk_sched_new(&R->sched, &sp) != DK_OK)
		return dk_err(err, n, DK_FATAL, "out of memory");
	dk_sched_set_prefixes(R->sched, R->pfx);
	R->progress_bar = p->progress == DK_PROGRESS_BAR ||
			  (p->progress == DK_PROGRESS_AUTO && isatty(STDERR_FILENO));
	R->progress_jsonl = p->progress == DK_PROGRESS_JSONL;
	return DK_OK;
}

static enum dk_status finish(struct runner *R, enum dk_status st, char *err, size_t n)
{
	R->st->wall_ms = now_ms() - R->t0;
	if (R->out) {
		bool complete = st == DK_OK && !R->stopping;
		if (dk_out_close(R->out, complete) != DK_OK && st == DK_OK)
			st = dk_err(err, n, DK_FATAL, "%s", dk_out_error(R->out));
	}
	if (R->io_failed && st == DK_OK)
		st = dk_err(err, n, DK_FATAL, "%s", R->err);
	if (R->pfx) {
		struct dk_prefixes_stats ps;
		dk_prefixes_stats(R->pfx, &ps);
		R->st->prefix_files_loaded = (uint32_t)ps.loaded;
		R->st->prefix_files_saved = (uint32_t)ps.saved;
		R->st->prefix_tokens_loaded = (uint64_t)ps.loaded_tokens;
		dk_prefixes_free(R->pfx);
		R->pfx = NULL;
	}
	if (R->ctx)
		progress(R, true);
	if (R->model)
		write_report(R);
	dk_sched_free(R->sched);
	R->sched = NULL;
	for (int g = 0; g < R->n_gram; g++)
		dk_grammar_free(R->gram[g]);
	free(R->gram);
	dk_grammar_vocab_free(R->gvocab);
	json_decref(R->schema);
	json_decref(R->settings);
	free(R->calib);
	dk_ctx_free(R->ctx);
	dk_out_free(R->out);
	dk_ingest_free(R->ing);
	if (R->batch_in)
		fclose(R->batch_in);
	dk_model_free(R->model);
	dk_fallback_free(R->fb);
	json_decref(R->fb_json);
	free(R->audit_path);
	return st;
}

enum dk_status dk_runner_run(const struct dk_runner_params *p, const char *const *inputs,
			     size_t n_inputs, struct dk_runner_stats *stats, char *err, size_t n)
{
	struct runner R_ = {0}, *R = &R_;
	memset(stats, 0, sizeof *stats);
	R->p = p;
	R->pl = p->pipeline;
	R->st = stats;
	R->t0 = now_ms();
	if (!R->pl)
		return dk_err(err, n, DK_SKIP, "no pipeline");
	if (p->shard_n > 1 && (p->shard_k < 0 || p->shard_k >= p->shard_n))
		return dk_err(err, n, DK_SKIP, "bad shard %d/%d (K counts from 0 to N-1)", p->shard_k,
			      p->shard_n);
	/* an operand that is not there is a mistyped command, like cp's: refused
	 * before anything is written (inside a tree, an unreadable file is a record) */
	struct stat sb;
	for (size_t i = 0; i < n_inputs; i++)
		if (strcmp(inputs[i], "-") && stat(inputs[i], &sb))
			return dk_err(err, n, DK_SKIP, "cannot open '%s': %s", inputs[i],
				      dk_errno_str(errno));
	R->n_inputs = n_inputs;
	R->input_docs = calloc(n_inputs + 1, sizeof *R->input_docs);
	if (!R->input_docs)
		return dk_err(err, n, DK_FATAL, "out of memory");
	enum dk_status st = setup(R, err, n);
	if (st == DK_OK)
		st = structured_setup(R, err, n);
	if (st == DK_OK)
		st = fallback_setup(R, err, n);
	/* the engine first: the configuration records its numerics */
	if (st == DK_OK)
		st = start_engine(R, err, n);
	if (st == DK_OK)
		st = open_output(R, err, n);
	if (st == DK_OK) {
		size_t ni = R->pl->n_include + p->n_include, ne = R->pl->n_exclude + p->n_exclude;
		const char **inc = calloc(ni + 1, sizeof *inc), **exc = calloc(ne + 1, sizeof *exc);
		for (size_t i = 0; i < R->pl->n_include; i++)
			inc[i] = R->pl->include[i];
		for (size_t i = 0; i < p->n_include; i++)
			inc[R->pl->n_include + i] = p->include[i];
		for (size_t i = 0; i < R->pl->n_exclude; i++)
			exc[i] = R->pl->exclude[i];
		for (size_t i = 0; i < p->n_exclude; i++)
			exc[R->pl->n_exclude + i] = p->exclude[i];
		struct dk_ingest_params ip = dk_ingest_default_params();
		ip.include = inc;
		ip.n_include = ni;
		ip.exclude = exc;
		ip.n_exclude = ne;
		ip.hidden = p->hidden;
		ip.archives = !p->no_archives;
		if (dk_ingest_new(&R->ing, &ip) != DK_OK) {
			st = dk_err(err, n, DK_FATAL, "cannot start ingest: %s",
				    R->ing ? dk_ingest_error(R->ing) : "out of memory");
		} else {
			for (size_t i = 0; i < n_inputs; i++)
				dk_ingest_add(R->ing, inputs[i]);
			if (R->pl->task == DK_TASK_CLASSIFY)
				start_calibration(R);
			loop(R);
			if (!R->stopping)
				warn_empty(R, inputs);
		}
		st = finish(R, st, err, n);
		free(inc);
		free(exc);
		free(R->input_docs);
		return st;
	}
	st = finish(R, st, err, n);
	free(R->input_docs);
	return st;
}

enum dk_status dk_runner_batch(const struct dk_runner_params *p, const char *in_path,
			       struct dk_runner_stats *stats, char *err, size_t n)
{
	struct runner R_ = {0}, *R = &R_;
	memset(stats, 0, sizeof *stats);
	R->p = p;
	R->pl = NULL;
	R->st = stats;
	R->t0 = now_ms();
	R->batch_in = !strcmp(in_path, "-") ? fdopen(dup(STDIN_FILENO), "r") : fopen(in_path, "r");
	if (!R->batch_in)
		return dk_err(err, n, DK_SKIP, "cannot open '%s': %s", in_path, strerror(errno));
	enum dk_status st = setup(R, err, n);
	if (st == DK_OK)
		st = start_engine(R, err, n);
	if (st == DK_OK)
		st = open_output(R, err, n);
	if (st == DK_OK)
		loop(R);
	return finish(R, st, err, n);
}
