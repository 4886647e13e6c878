/* extract: JSON fields per chunk or document, one generation per field
 * (or one object), grounded in the document and validated by the schema. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "docket/grammar.h"
#include "docket/jsonschema.h"
#include "runner/task.h"

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
	char *v = dk_run_trim_dup(raw ? raw : "");
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
		cv->vals.v[DK_VAR_FIELD] = pl->fields[i].name;
		cv->vals.v[DK_VAR_FIELD_DESCRIPTION] = pl->fields[i].description;
		t.n = 0;
		if (dk_prompt_build(R, pl->system, pl->user, &cv->vals, DK_VAR_FIELD, &t, &n_prefix, &n_static) ||
		    dk_prompt_answer_prefix(R, &cv->vals, &t, NULL)) {
			cr->error = strdup("cannot render the prompt");
			break;
		}
		struct job *j = dk_run_gen_job(R, d, ci, (int)i, ROLE_FIELD);
		if (!j) {
			dk_run_oom(R, d->path);
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
				if (dk_prompt_tokenize(R, &t, "\"", 1, false, false)) {
					cr->error = strdup("out of memory");
					free(j);
					break;
				}
			}
		}
		dk_run_submit(R, j, &t, n_prefix, n_static, &cr->error, &cr->reason);
	}
	free(t.v);
}

static void job_result(struct runner *R, struct doc *d, struct cres *c, const struct job *j,
		       const struct dk_job_result *r)
{
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
