/* Prompt templates: parse ({{name}} placeholders), render, and the
 * segments a rendered prompt is tokenized in. */
#include "docket/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"

const struct dk_var_def dk_vars[DK_VAR_COUNT] = {
	[DK_VAR_TEXT] = {"text", DK_SCOPE_CHUNK},
	[DK_VAR_PATH] = {"path", DK_SCOPE_DOCUMENT},
	[DK_VAR_NAME] = {"name", DK_SCOPE_DOCUMENT},
	[DK_VAR_MEMBER] = {"member", DK_SCOPE_DOCUMENT},
	[DK_VAR_MIME] = {"mime", DK_SCOPE_DOCUMENT},
	[DK_VAR_BYTES] = {"bytes", DK_SCOPE_DOCUMENT},
	[DK_VAR_LABELS] = {"labels", DK_SCOPE_PIPELINE},
	[DK_VAR_SCHEMA] = {"schema", DK_SCOPE_PIPELINE},
	[DK_VAR_CHUNK_INDEX] = {"chunk_index", DK_SCOPE_CHUNK},
	[DK_VAR_CHUNK_COUNT] = {"chunk_count", DK_SCOPE_DOCUMENT},
	[DK_VAR_SUMMARIES] = {"summaries", DK_SCOPE_REDUCE},
	[DK_VAR_FIELD] = {"field", DK_SCOPE_PIPELINE},
	[DK_VAR_FIELD_DESCRIPTION] = {"field_description", DK_SCOPE_PIPELINE},
	[DK_VAR_HINTS] = {"hints", DK_SCOPE_DOCUMENT},
};

int dk_var_find(const char *name)
{
	for (int i = 0; i < DK_VAR_COUNT; i++)
		if (!strcmp(name, dk_vars[i].name))
			return i;
	return -1;
}

bool dk_tmpl_known_var(const char *name) { return dk_var_find(name) >= 0; }

static int line_at(const char *s, size_t off)
{
	int line = 1;
	for (size_t i = 0; i < off && s[i]; i++)
		line += s[i] == '\n';
	return line;
}

static int add_part(struct dk_tmpl *t, bool var, const char *s, size_t n)
{
	struct dk_tmpl_part *p = realloc(t->parts, (t->n_parts + 1) * sizeof *p);
	if (!p)
		return -1;
	t->parts = p;
	char *c = strndup(s, n);
	if (!c)
		return -1;
	p[t->n_parts].is_var = var;
	p[t->n_parts].text = c;
	t->n_parts++;
	return 0;
}

struct dk_tmpl *dk_tmpl_parse(const char *path, const char *src, char *err, size_t n)
{
	struct dk_tmpl *t = calloc(1, sizeof *t);
	if (!t || !(t->path = strdup(path ? path : "<template>")) || !(t->src = strdup(src))) {
		dk_tmpl_free(t);
		dk_err(err, n, DK_FATAL, "out of memory");
		return NULL;
	}
	const char *p = src, *lit = src;
	while ((p = strstr(p, "{{")) != NULL) {
		const char *e = strstr(p + 2, "}}");
		if (!e) {
			dk_err(err, n, DK_SKIP, "%s:%d: unterminated placeholder '{{'", t->path,
			       line_at(src, (size_t)(p - src)));
			dk_tmpl_free(t);
			return NULL;
		}
		const char *a = p + 2, *b = e;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		char name[64];
		size_t len = (size_t)(b - a);
		if (len == 0 || len >= sizeof name) {
			dk_err(err, n, DK_SKIP, "%s:%d: bad placeholder '%.*s'", t->path,
			       line_at(src, (size_t)(p - src)), (int)(e + 2 - p), p);
			dk_tmpl_free(t);
			return NULL;
		}
		memcpy(name, a, len);
		name[len] = 0;
		if (!dk_tmpl_known_var(name)) {
			dk_err(err, n, DK_SKIP,
			       "%s:%d: unknown placeholder '{{%s}}' (known: text, path, name, member, mime, "
			       "bytes, labels, schema, chunk_index, chunk_count, summaries, field, "
			       "field_description, hints)",
			       t->path, line_at(src, (size_t)(p - src)), name);
			dk_tmpl_free(t);
			return NULL;
		}
		if ((p > lit && add_part(t, false, lit, (size_t)(p - lit))) ||
		    add_part(t, true, name, len)) {
			dk_err(err, n, DK_FATAL, "out of memory");
			dk_tmpl_free(t);
			return NULL;
		}
		p = lit = e + 2;
	}
	if (*lit && add_part(t, false, lit, strlen(lit))) {
		dk_err(err, n, DK_FATAL, "out of memory");
		dk_tmpl_free(t);
		return NULL;
	}
	return t;
}

void dk_tmpl_free(struct dk_tmpl *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_parts; i++)
		free(t->parts[i].text);
	free(t->parts);
	free(t->path);
	free(t->src);
	free(t);
}

bool dk_tmpl_uses(const struct dk_tmpl *t, const char *var)
{
	if (!t)
		return false;
	for (size_t i = 0; i < t->n_parts; i++)
		if (t->parts[i].is_var && !strcmp(t->parts[i].text, var))
			return true;
	return false;
}

int dk_segs_add(struct dk_segs *s, const char *text, size_t len, bool special)
{
	if (len == 0)
		return 0;
	/* merge with the previous segment of the same kind */
	if (s->n && s->v[s->n - 1].special == special) {
		struct dk_seg *g = &s->v[s->n - 1];
		char *p = realloc(g->text, g->len + len + 1);
		if (!p)
			return -1;
		memcpy(p + g->len, text, len);
		g->len += len;
		p[g->len] = 0;
		g->text = p;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct dk_seg *v = realloc(s->v, cap * sizeof *v);
		if (!v)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	char *c = malloc(len + 1);
	if (!c)
		return -1;
	memcpy(c, text, len);
	c[len] = 0;
	s->v[s->n++] = (struct dk_seg){c, len, special};
	return 0;
}

void dk_segs_free(struct dk_segs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].text);
	free(s->v);
	memset(s, 0, sizeof *s);
}

char *dk_segs_join(const struct dk_segs *s)
{
	struct dk_buf b = {0};
	for (size_t i = 0; i < s->n; i++)
		if (dk_buf_append(&b, s->v[i].text, s->v[i].len)) {
			dk_buf_free(&b);
			return NULL;
		}
	return dk_buf_steal(&b);
}

int dk_tmpl_render(const struct dk_tmpl *t, const struct dk_tmpl_var *vars, size_t n_vars,
		   struct dk_segs *out)
{
	for (size_t i = 0; t && i < t->n_parts; i++) {
		const struct dk_tmpl_part *p = &t->parts[i];
		if (!p->is_var) {
			if (dk_segs_add(out, p->text, strlen(p->text), true))
				return -1;
			continue;
		}
		for (size_t k = 0; k < n_vars; k++)
			if (!strcmp(vars[k].name, p->text)) {
				if (vars[k].value &&
				    dk_segs_add(out, vars[k].value, strlen(vars[k].value), false))
					return -1;
				break;
			}
	}
	return 0;
}

