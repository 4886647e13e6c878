/* extract: JSON fields per chunk or document, one generation per field
 * (or one object), grounded in the document and validated by the schema. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <math.h>

#include "docket/grammar.h"
#include "docket/jsonschema.h"
#include "runner/task.h"
#include "runner/values.h"

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

/* A string value after the field's normalisations (a field whose format
 * is date ends with "date"); malloc'd, NULL when out of memory. */
static char *normalized(const struct dk_pipeline *pl, const struct dk_field *f, char *v)
{
	bool date = f->format && !strcmp(f->format, "date");
	for (size_t i = 0; v && i < f->n_normalize; i++) {
		char *w = dk_value_normalize(v, f->normalize[i], pl->date_order);
		free(v);
		v = w;
		date &= f->normalize[i] != DK_NORM_DATE;
	}
	if (v && date) {
		char *w = dk_value_normalize(v, DK_NORM_DATE, pl->date_order);
		free(v);
		v = w;
	}
	return v;
}

/* Is the string v in doc: as written (ignoring case and spacing, line
 * breaks included), or, being a date written YYYY-MM-DD, as any printed
 * form of that date? */
static bool string_grounded(const struct dk_pipeline *pl, const char *doc, const char *v)
{
	char iso[11];
	if (dk_value_grounded(doc, v, false))
		return true;
	return dk_value_canonical_date(v, pl->date_order, iso) && !strcmp(iso, v) &&
	       dk_value_text_has_date(doc, iso, pl->date_order);
}

/* A field's raw answer as a JSON value of its schema type: null if none;
 * with doc (grounding), null too when the document does not hold it (a
 * number: no number of that value printed, "RM 30.00" and "30,00" read as
 * 30), or when it fails the field's own schema (format, pattern: a time is
 * not a date, a label word is not an address). */
static json_t *field_value(const struct runner *R, size_t fi, const char *raw, const char *doc)
{
	const struct dk_pipeline *pl = R->pl;
	const struct dk_field *f = &pl->fields[fi];
	char *v = dk_run_trim_dup(raw ? raw : "");
	if (!v)
		return json_null();
	strip_restatement(v, f->name);
	size_t n = strlen(v);
	/* strip surrounding quotes */
	if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
		memmove(v, v + 1, n - 2);
		v[n - 2] = 0;
		n -= 2;
	}
	json_t *out = NULL;
	double x;
	if (!n || !strcasecmp(v, "null") || !strcasecmp(v, "none") || !strcasecmp(v, "n/a") ||
	    !strcasecmp(v, "unknown")) {
		out = json_null();
	} else if (!strcmp(f->type, "number") || !strcmp(f->type, "integer")) {
		if (!dk_value_find_number(v, &x) || (doc && !dk_value_text_has_number(doc, x, &x)))
			out = json_null();
		else if (!strcmp(f->type, "integer"))
			out = x == floor(x) && fabs(x) < 9e15 ? json_integer((json_int_t)x) : json_null();
		else
			out = json_real(x);
	} else if (!strcmp(f->type, "boolean")) {
		if (!strncasecmp(v, "yes", 3) || !strncasecmp(v, "true", 4))
			out = json_true();
		else if (!strncasecmp(v, "no", 2) || !strncasecmp(v, "false", 5))
			out = json_false();
		else
			out = json_null();
	} else {
		v = normalized(pl, f, v);
		if (!v)
			return json_null();
		n = strlen(v);
		/* a sentence's final period is not part of the value, unless the
		 * document has it ("SDN. BHD.") */
		if (doc && !string_grounded(pl, doc, v) && n > 1 && v[n - 1] == '.')
			v[--n] = 0;
		out = !*v || (doc && !string_grounded(pl, doc, v)) ? json_null() : json_string(v);
	}
	free(v);
	if (!out)
		return json_null();
	/* the field's own format and pattern */
	if (doc && !json_is_null(out) && R->field_schema && R->field_schema[fi] &&
	    !dk_schema_validate(R->field_schema[fi], out, NULL, 0)) {
		json_decref(out);
		return json_null();
	}
	return out;
}

/* The value of field f in a chunk's answer: NULL when absent (object mode
 * left it out), null when it cannot be read or is not grounded in doc. */
static json_t *field_out(const struct runner *R, size_t fi, const char *raw, bool is_json,
			 const char *doc)
{
	const struct dk_field *f = &R->pl->fields[fi];
	if (!raw)
		return NULL;
	if (!R->pl->grounded || !f->ground)
		doc = NULL;
	bool compound = !strcmp(f->type, "array") || !strcmp(f->type, "object");
	if (!is_json) {
		if (!compound)
			return field_value(R, fi, raw, doc);
		json_t *v = json_loads(raw, JSON_DECODE_ANY, NULL);
		return v ? v : json_null();
	}
	json_t *v = json_loads(raw, JSON_DECODE_ANY, NULL);
	if (!v)
		return json_null();
	if (f->ground && json_is_string(v)) {
		/* same reading as a free answer: "N/A" is null, a number field
		 * holding "RM 9.00" is 9.00, an invented name is null */
		json_t *r = field_value(R, fi, json_string_value(v), doc);
		json_decref(v);
		return r;
	}
	if (f->ground && json_is_number(v)) {
		json_decref(v);
		return field_value(R, fi, raw, doc);
	}
	return v;
}

/* Sets schema_valid (and schema_error, finish_reason) on an extract record. */
static void extract_verdict(struct runner *R, json_t *rec, json_t *o, bool truncated, bool bad_json,
			    bool hit_length, struct task_verdict *v)
{
	char why[DK_ERRMSG_MAX] = "";
	bool ok = !truncated && !bad_json && dk_schema_validate(R->schema, o, why, sizeof why);
	if (truncated)
		snprintf(why, sizeof why, "generation ran out of tokens before the value was complete");
	else if (bad_json)
		snprintf(why, sizeof why, "the answer holds no JSON object");
	v->schema_checked = true;
	v->schema_valid = ok;
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

/* An extract output over chunks [c0, c1) of d: each field's first non-null
 * value in chunk order; the result is as sound as its chunks. */
static json_t *output(struct runner *R, struct doc *d, size_t c0, size_t c1, json_t *rec,
		      struct task_verdict *verdict)
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
			json_t *w = field_out(R, i, cr->fields ? cr->fields[i] : NULL, cr->fields_json,
					      d->text);
			if (w) {
				json_decref(v);
				v = w;
			}
		}
		if (v)
			json_object_set_new(o, pl->fields[i].name, v);
	}
	extract_verdict(R, rec, o, trunc, bad, len, verdict);
	return o;
}

/* Extract: the schema, and unless turned off, the grammars that mask
 * generation (one per field, or one for the whole object) over a trie of
 * the model's vocabulary. */
static enum dk_status structured_setup(struct runner *R, char *err, size_t n)
{
	const struct dk_pipeline *pl = R->pl;
	R->schema = json_loads(pl->schema_json, 0, NULL);
	if (!R->schema)
		return dk_err(err, n, DK_FATAL, "out of memory");
	R->constrained = R->p->constrained < 0 ? pl->constrained : R->p->constrained > 0;
	/* each field's own schema, with the definitions its $refs may name:
	 * a grounded value is checked against it (format, pattern) */
	R->field_schema = calloc(pl->n_fields ? pl->n_fields : 1, sizeof *R->field_schema);
	if (!R->field_schema)
		return dk_err(err, n, DK_FATAL, "out of memory");
	for (size_t i = 0; i < pl->n_fields; i++) {
		json_t *sc = json_loads(pl->fields[i].schema_json, 0, NULL);
		const char *defs[] = {"definitions", "$defs"};
		for (size_t k = 0; sc && k < 2; k++) {
			json_t *dv = json_object_get(R->schema, defs[k]);
			if (dv)
				json_object_set(sc, defs[k], dv);
		}
		if (!(R->field_schema[i] = sc))
			return dk_err(err, n, DK_FATAL, "out of memory");
	}
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
			 * would have written "RM 9.00"); and it writes the value as
			 * the document prints it, its format and pattern checked
			 * after (a 135M model copies 25/12/2018, it does not
			 * convert it to 2018-12-25) */
			if (sc && f->ground && pl->grounded) {
				json_object_set_new(sc, "type", json_string(f->type));
				json_object_del(sc, "nullable");
				json_object_del(sc, "format");
				json_object_del(sc, "pattern");
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

/* The prompt of field fi of chunk ci, up to the answer template:
 * 0, or -1 with cr->error set. */
static int field_prompt(struct runner *R, struct chunk_vars *cv, size_t fi, struct tokv *t,
			int *n_prefix, int *n_static, struct cres *cr)
{
	const struct dk_pipeline *pl = R->pl;
	cv->vals.v[DK_VAR_FIELD] = pl->fields[fi].name;
	cv->vals.v[DK_VAR_FIELD_DESCRIPTION] = pl->fields[fi].description;
	t->n = 0;
	if (dk_prompt_build(R, pl->system, pl->user, &cv->vals, DK_VAR_FIELD, t, n_prefix, n_static) ||
	    dk_prompt_answer_prefix(R, &cv->vals, t, NULL)) {
		if (!cr->error)
			cr->error = strdup("cannot render the prompt");
		return -1;
	}
	return 0;
}

/* The generate job of field fi over the prompt t (taken); forced: the
 * start of the answer written for the model (the JSON string's quote, and
 * for a line_start field the chosen line), NULL for none. */
static void field_job(struct runner *R, struct doc *d, size_t ci, size_t fi, struct tokv *t,
		      int n_prefix, int n_static, const char *forced)
{
	const struct dk_pipeline *pl = R->pl;
	struct cres *cr = &d->cr[ci];
	struct job *j = dk_run_gen_job(R, d, ci, (int)fi, ROLE_FIELD);
	if (!j) {
		free(t->v);
		t->v = NULL;
		dk_run_oom(R, d->path);
		return;
	}
	if (R->constrained) {
		j->spec.grammar = (int)fi;
		const struct dk_field *f = &pl->fields[fi];
		if (forced) {
			j->spec.forced = forced;
			if (dk_prompt_tokenize(R, t, "\"", 1, false, false) ||
			    (forced[1] && dk_prompt_tokenize(R, t, forced + 1, strlen(forced + 1), false, false))) {
				cr->error = strdup("out of memory");
				free(t->v);
				t->v = NULL;
				free(j);
				return;
			}
			/* and the value is copied from the chunk, a span of it */
			if (pl->grounded && f->ground && pl->copy) {
				const struct dk_chunk *c = &d->chunks[ci];
				j->spec.span = d->text + c->start;
				j->spec.span_len = c->end - c->start;
				j->spec.span_end = "\"";
				j->spec.span_skip = 1;
			}
		}
	}
	dk_run_submit(R, j, t, n_prefix, n_static, &cr->error, &cr->reason);
}

/* The lines of text (n bytes) that can start a copied value: whitespace
 * runs as one space, trimmed, unique, without a character that ends a
 * span ('"', '\\', control bytes); the first max of them. */
static int candidate_lines(const char *text, size_t n, struct line_pick *lp, int max)
{
	lp->line = calloc((size_t)max, sizeof *lp->line);
	if (!lp->line)
		return -1;
	const char *p = text, *end = text + n;
	while (p < end && lp->n < max) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		if (!e)
			e = end;
		char *l = malloc((size_t)(e - p) + 1), *w = l;
		if (!l)
			return -1;
		bool ok = true;
		for (const char *q = p; q < e; q++) {
			unsigned char c = (unsigned char)*q;
			if (isspace(c)) {
				if (w > l && w[-1] != ' ')
					*w++ = ' ';
			} else if (c == '"' || c == '\\' || c < 0x20 || c == 0x7f) {
				ok = false;
			} else {
				*w++ = (char)c;
			}
		}
		while (w > l && w[-1] == ' ')
			w--;
		*w = 0;
		for (int k = 0; ok && k < lp->n; k++)
			ok = strcmp(lp->line[k], l) != 0;
		if (ok && *l)
			lp->line[lp->n++] = l;
		else
			free(l);
		p = e + 1;
	}
	return 0;
}

/* Score jobs for a line_start field: every candidate line as the start of
 * the answer, after the document (prompt t) and after "N/A". */
static void spawn_lines(struct runner *R, struct doc *d, size_t ci, size_t fi, struct chunk_vars *cv,
			struct tokv *t, int n_prefix, int n_static)
{
	const struct dk_pipeline *pl = R->pl;
	struct cres *cr = &d->cr[ci];
	const struct dk_chunk *c = &d->chunks[ci];
	if (!cr->picks && !(cr->picks = calloc(pl->n_fields, sizeof *cr->picks))) {
		dk_run_oom(R, d->path);
		return;
	}
	struct line_pick *lp = &cr->picks[fi];
	/* the head of a document, where such values are; a line is judged
	 * by its first tokens */
	enum { MAX_LINES = 12, LINE_TOKENS = 24 };
	if (candidate_lines(d->text + c->start, c->end - c->start, lp, MAX_LINES) ||
	    !(lp->lp = calloc((size_t)(lp->n ? lp->n : 1), sizeof *lp->lp)) ||
	    !(lp->lq = calloc((size_t)(lp->n ? lp->n : 1), sizeof *lp->lq))) {
		dk_run_oom(R, d->path);
		return;
	}
	if (!lp->n) { /* nothing to start from: an ordinary copy */
		struct tokv own = *t;
		*t = (struct tokv){0};
		field_job(R, d, ci, fi, &own, n_prefix, n_static, "\"");
		return;
	}
	/* the same question about a content-free document */
	struct tokv q = {0};
	int q_prefix = 0, q_static = 0;
	const char *text = cv->vals.v[DK_VAR_TEXT];
	cv->vals.v[DK_VAR_TEXT] = "N/A";
	int rc = field_prompt(R, cv, fi, &q, &q_prefix, &q_static, cr);
	cv->vals.v[DK_VAR_TEXT] = text;
	if (rc || dk_prompt_tokenize(R, t, "\"", 1, false, false) ||
	    dk_prompt_tokenize(R, &q, "\"", 1, false, false)) {
		free(q.v);
		if (!cr->error)
			cr->error = strdup("out of memory");
		return;
	}
	for (int m = 0; m < lp->n && !cr->error; m++)
		for (int null_doc = 0; null_doc < 2 && !cr->error; null_doc++) {
			const struct tokv *base = null_doc ? &q : t;
			struct tokv full = {0};
			full.cap = base->n + 64;
			full.v = malloc((size_t)full.cap * sizeof *full.v);
			if (!full.v) {
				cr->error = strdup("out of memory");
				break;
			}
			memcpy(full.v, base->v, (size_t)base->n * sizeof *full.v);
			full.n = base->n;
			if (dk_prompt_tokenize(R, &full, lp->line[m], strlen(lp->line[m]), false, false)) {
				free(full.v);
				cr->error = strdup("out of memory");
				break;
			}
			if (full.n > base->n + LINE_TOKENS)
				full.n = base->n + LINE_TOKENS;
			struct job *j = dk_run_job_new(R, d, (int)ci, (int)fi, DK_JOB_SCORE, ROLE_LINE);
			if (!j) {
				free(full.v);
				dk_run_oom(R, d->path);
				break;
			}
			j->cand = m;
			j->null_doc = null_doc;
			j->spec.score_from = base->n;
			if (dk_run_submit(R, j, &full, null_doc ? q_prefix : n_prefix,
					  null_doc ? q_static : n_static, &cr->error, &cr->reason) == 0)
				lp->pending++;
		}
	free(q.v);
}

/* Every line of field fi is scored: the value starts with the one whose
 * log-probability gains most from the document over "N/A", and the model
 * continues it. */
static void lines_scored(struct runner *R, struct doc *d, size_t ci, size_t fi)
{
	struct cres *cr = &d->cr[ci];
	struct line_pick *lp = &cr->picks[fi];
	int best = 0;
	for (int m = 1; m < lp->n; m++)
		if (lp->lp[m] - lp->lq[m] > lp->lp[best] - lp->lq[best])
			best = m;
	size_t n = strlen(lp->line[best]);
	if (!(lp->forced = malloc(n + 2))) {
		dk_run_oom(R, d->path);
		return;
	}
	lp->forced[0] = '"';
	memcpy(lp->forced + 1, lp->line[best], n + 1);
	char *text = strndup(d->text + d->chunks[ci].start, d->chunks[ci].end - d->chunks[ci].start);
	if (!text) {
		dk_run_oom(R, d->path);
		return;
	}
	struct chunk_vars cv;
	dk_prompt_chunk_vars_init(R, d, ci, text, &cv);
	struct tokv t = {0};
	int n_prefix = 0, n_static = 0;
	if (!field_prompt(R, &cv, fi, &t, &n_prefix, &n_static, cr))
		field_job(R, d, ci, fi, &t, n_prefix, n_static, lp->forced);
	free(t.v);
	free(text);
	dk_prompt_chunk_vars_free(&cv);
}

/* One generate job per field, or one for the whole object (object mode),
 * masked by the field's or the object's grammar when constrained. */
static void spawn(struct runner *R, struct doc *d, size_t ci, struct chunk_vars *cv)
{
	const struct dk_pipeline *pl = R->pl;
	struct cres *cr = &d->cr[ci];
	struct tokv t = {0};
	int n_prefix = 0, n_static = 0;
	cr->fields = calloc(pl->n_fields, sizeof *cr->fields);
	if (!cr->fields) {
		dk_run_oom(R, d->path);
		return;
	}
	if (pl->extract_mode == DK_EXTRACT_OBJECT) {
		if (dk_prompt_build(R, pl->system, pl->user, &cv->vals, DK_VAR_TEXT, &t, &n_prefix, &n_static) ||
		    dk_prompt_answer_prefix(R, &cv->vals, &t, NULL)) {
			cr->error = strdup("cannot render the prompt");
			free(t.v);
			return;
		}
		struct job *j = dk_run_gen_job(R, d, ci, 0, ROLE_OBJECT);
		if (!j) {
			free(t.v);
			dk_run_oom(R, d->path);
			return;
		}
		j->spec.grammar = R->constrained ? 0 : -1;
		dk_run_submit(R, j, &t, n_prefix, n_static, &cr->error, &cr->reason);
		return;
	}
	for (size_t i = 0; i < pl->n_fields && !cr->error; i++) {
		if (field_prompt(R, cv, i, &t, &n_prefix, &n_static, cr))
			break;
		const struct dk_field *f = &pl->fields[i];
		bool grounded = pl->grounded && f->ground;
		/* a free-text field's answer opens its JSON string here, so the
		 * model copies the value instead of choosing between a quote and
		 * "null" (not found is judged by grounding) */
		bool quote = R->constrained && !strcmp(f->type, "string") &&
			     ((f->plain && !f->nullable) || grounded);
		if (quote && grounded && pl->copy && f->line_start) {
			spawn_lines(R, d, ci, i, cv, &t, n_prefix, n_static);
			continue;
		}
		/* field_job takes the prompt: t is rebuilt for the next field */
		struct tokv own = t;
		t = (struct tokv){0};
		field_job(R, d, ci, i, &own, n_prefix, n_static, quote ? "\"" : NULL);
	}
	free(t.v);
}

static void job_result(struct runner *R, struct doc *d, struct cres *c, const struct job *j,
		       const struct dk_job_result *r)
{
	if (j->role == ROLE_LINE) {
		struct line_pick *lp = &c->picks[j->sub];
		(j->null_doc ? lp->lq : lp->lp)[j->cand] = r->logp;
		if (--lp->pending == 0 && !c->error)
			lines_scored(R, d, (size_t)(c - d->cr), (size_t)j->sub);
		return;
	}
	if (j->role == ROLE_OBJECT) {
		object_fields(R, c, r->text, r->constrained);
		return;
	}
	if (!(c->fields[j->sub] = strdup(r->text)))
		dk_run_oom(R, d->path);
	if (r->constrained)
		c->fields_json = true;
}

static json_t *remote_schema(const struct runner *R)
{
	return R->pl->schema_json ? json_loads(R->pl->schema_json, 0, NULL) : NULL;
}

/* The remote endpoint answers all fields at once, as one JSON object. */
static char *remote_answer(struct runner *R, struct cres *c, const char *content)
{
	const struct dk_pipeline *pl = R->pl;
	json_t *o = json_loads(content, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return strdup("fallback: the answer is not a JSON object");
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
	return NULL;
}

const struct dk_task_ops dk_task_extract = {
	.setup = structured_setup,
	.spawn = spawn,
	.job_result = job_result,
	.output = output,
	.remote_schema = remote_schema,
	.remote_answer = remote_answer,
};
