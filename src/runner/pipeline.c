/* Pipeline files: load, validate with file:line: field messages, hash. */
#include "docket/pipeline.h"
#include "docket/jsonschema.h"
#include "docket/route.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner/values.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/sha256.h"

#ifndef DK_SOURCE_DIR
#define DK_SOURCE_DIR "."
#endif

/* The task names of pipeline files, indexed by enum dk_task. */
static const char *const task_names[] = {
	[DK_TASK_SUMMARIZE] = "summarize",
	[DK_TASK_CLASSIFY] = "classify",
	[DK_TASK_EXTRACT] = "extract",
	[DK_TASK_GENERATE] = "generate",
};

const char *dk_task_name(enum dk_task t)
{
	return (unsigned)t < sizeof task_names / sizeof *task_names && task_names[t] ? task_names[t]
										       : "?";
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct dk_buf b = {0};
	char tmp[8192];
	size_t k;
	while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
		if (dk_buf_append(&b, tmp, k)) {
			fclose(f);
			dk_buf_free(&b);
			return NULL;
		}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		dk_buf_free(&b);
		return NULL;
	}
	if (len)
		*len = b.len;
	return dk_buf_steal(&b);
}

static int line_at(const char *s, size_t off)
{
	int line = 1;
	for (size_t i = 0; i < off && s[i]; i++)
		line += s[i] == '\n';
	return line;
}

/* ---- pipeline files ---- */

struct loader {
	const char *path;
	const char *src; /* raw text, to find the line of a field */
	char *err;
	size_t n;
};

/* Line of the key named by the last component of a dotted field path,
 * searched after the lines of its parents: good enough to point the user
 * at the right place without a position-tracking parser. */
static int field_line(const struct loader *L, const char *field)
{
	const char *from = L->src;
	char comp[128];
	const char *f = field;
	while (*f) {
		size_t k = strcspn(f, ".[");
		if (k && k < sizeof comp - 3) {
			comp[0] = '"';
			memcpy(comp + 1, f, k);
			comp[k + 1] = '"';
			comp[k + 2] = 0;
			const char *hit = strstr(from, comp);
			if (hit)
				from = hit;
		}
		f += k;
		while (*f == '.' || *f == '[' || *f == ']' || (*f >= '0' && *f <= '9'))
			f++;
	}
	return line_at(L->src, (size_t)(from - L->src));
}

static struct dk_pipeline *fail(struct loader *L, struct dk_pipeline *p, const char *field,
				const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static struct dk_pipeline *fail(struct loader *L, struct dk_pipeline *p, const char *field,
				const char *fmt, ...)
{
	char msg[DK_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (field)
		dk_err(L->err, L->n, DK_SKIP, "%s:%d: %s: %s", L->path, field_line(L, field), field,
		       msg);
	else
		dk_err(L->err, L->n, DK_SKIP, "%s: %s", L->path, msg);
	dk_pipeline_free(p);
	return NULL;
}

static const char *jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* Checks that obj has only the listed keys. Returns the first stray key. */
static const char *stray_key(json_t *obj, const char *const *keys)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		bool ok = false;
		for (size_t i = 0; keys[i]; i++)
			if (!strcmp(k, keys[i]))
				ok = true;
		if (!ok)
			return k;
	}
	return NULL;
}

/* A block of the pipeline (input, chunking, ...): an object holding only
 * the given keys.  Returns 0, or -1 with the message written. */
static int check_block(struct loader *L, json_t *o, const char *name, const char *const *keys)
{
	if (!json_is_object(o)) {
		fail(L, NULL, name, "expected an object, got %s", jtype(o));
		return -1;
	}
	const char *bad = stray_key(o, keys);
	if (bad) {
		char f[160];
		snprintf(f, sizeof f, "%s.%s", name, bad);
		fail(L, NULL, f, "unknown field");
		return -1;
	}
	return 0;
}

/* String array at field; 0 ok, -1 wrong type (message in L). */
static int str_array(struct loader *L, json_t *v, const char *field, char ***out, size_t *n)
{
	if (!v)
		return 0;
	if (!json_is_array(v)) {
		fail(L, NULL, field, "expected an array of strings, got %s", jtype(v));
		return -1;
	}
	size_t m = json_array_size(v);
	char **a = calloc(m ? m : 1, sizeof *a);
	if (!a) {
		fail(L, NULL, field, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < m; i++) {
		json_t *e = json_array_get(v, i);
		if (!json_is_string(e)) {
			for (size_t j = 0; j < i; j++)
				free(a[j]);
			free(a);
			fail(L, NULL, field, "item %zu: expected a string, got %s", i, jtype(e));
			return -1;
		}
		a[i] = strdup(json_string_value(e));
	}
	*out = a;
	*n = m;
	return 0;
}

static struct dk_tmpl *load_tmpl(struct loader *L, const char *dir, json_t *v, const char *field,
				 struct dk_sha256 *h)
{
	if (!json_is_string(v)) {
		fail(L, NULL, field, "expected a file name (string), got %s", jtype(v));
		return NULL;
	}
	const char *rel = json_string_value(v);
	char path[PATH_MAX];
	if (rel[0] == '/')
		snprintf(path, sizeof path, "%s", rel);
	else
		snprintf(path, sizeof path, "%s/%s", dir, rel);
	char *src = read_file(path, NULL);
	if (!src) {
		fail(L, NULL, field, "cannot read prompt file '%s': %s", path, strerror(errno));
		return NULL;
	}
	char msg[DK_ERRMSG_MAX];
	struct dk_tmpl *t = dk_tmpl_parse(path, src, msg, sizeof msg);
	if (!t) {
		dk_err(L->err, L->n, DK_SKIP, "%s: %s: %s", L->path, field, msg);
		free(src);
		return NULL;
	}
	/* the prompt text, not its location, is what defines the pipeline */
	dk_sha256_update(h, field, strlen(field) + 1);
	dk_sha256_update(h, src, strlen(src) + 1);
	free(src);
	return t;
}

static char *dir_of(const char *path)
{
	const char *s = strrchr(path, '/');
	if (!s)
		return strdup(".");
	if (s == path)
		return strdup("/");
	return strndup(path, (size_t)(s - path));
}

static bool is_file(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

char *dk_pipeline_find(const char *name)
{
	if (!name || !*name)
		return NULL;
	if (strchr(name, '/') || is_file(name))
		return is_file(name) ? strdup(name) : NULL;
	char buf[PATH_MAX + 128];
	/* an installed docket uses its own share/ (beside bin/), before the
	 * source tree it was built from, which may be gone or newer */
	char share[PATH_MAX] = "";
	char exe[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (k > 0) {
		exe[k] = 0;
		char *s = strrchr(exe, '/');
		if (s) {
			*s = 0;
			snprintf(share, sizeof share, "%.*s/../share/docket/pipelines", PATH_MAX - 64, exe);
		}
	}
	const char *env = getenv("DOCKET_PIPELINES");
	const char *dirs[] = {env, share, DK_SOURCE_DIR "/pipelines",
			      "/usr/local/share/docket/pipelines", "/usr/share/docket/pipelines"};
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		snprintf(buf, sizeof buf, "%s/%s.json", dirs[i], name);
		if (is_file(buf))
			return strdup(buf);
		snprintf(buf, sizeof buf, "%s/%s", dirs[i], name);
		if (is_file(buf))
			return strdup(buf);
	}
	return NULL;
}

static int get_int(struct loader *L, json_t *o, const char *key, const char *field, int lo, int hi,
		   int *out)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_integer(v)) {
		fail(L, NULL, field, "expected an integer, got %s", jtype(v));
		return -1;
	}
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi) {
		fail(L, NULL, field, "%lld is out of range [%d, %d]", (long long)x, lo, hi);
		return -1;
	}
	*out = (int)x;
	return 0;
}

static int get_num(struct loader *L, json_t *o, const char *key, const char *field, double lo,
		   double hi, float *out)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_number(v)) {
		fail(L, NULL, field, "expected a number, got %s", jtype(v));
		return -1;
	}
	double x = json_number_value(v);
	if (x < lo || x > hi) {
		fail(L, NULL, field, "%g is out of range [%g, %g]", x, lo, hi);
		return -1;
	}
	*out = (float)x;
	return 0;
}

static int get_bool(struct loader *L, json_t *o, const char *key, const char *field, bool *out)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_boolean(v)) {
		fail(L, NULL, field, "expected true or false, got %s", jtype(v));
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

static int get_str(struct loader *L, json_t *o, const char *key, const char *field, char **out)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_string(v)) {
		fail(L, NULL, field, "expected a string, got %s", jtype(v));
		return -1;
	}
	free(*out);
	*out = strdup(json_string_value(v));
	return 0;
}

static void free_strv(char **v, size_t n);

static struct dk_pipeline *load_file(const char *path, char *err, size_t n)
{
	struct loader L = {path, NULL, err, n};
	size_t len;
	char *src = read_file(path, &len);
	if (!src) {
		dk_err(err, n, DK_SKIP, "cannot read pipeline '%s': %s", path, strerror(errno));
		return NULL;
	}
	L.src = src;
	json_error_t je;
	json_t *root = json_loadb(src, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		dk_err(err, n, DK_SKIP, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
		free(src);
		return NULL;
	}
	struct dk_pipeline *p = calloc(1, sizeof *p);
	struct dk_sha256 h;
	dk_sha256_init(&h);
	if (!p) {
		fail(&L, NULL, NULL, "out of memory");
		goto out;
	}
	p->path = strdup(path);
	p->dir = dir_of(path);
	p->chunk_tokens = 384;
	p->chunk_overlap = 32;
	p->max_tokens = 128;
	p->reduce_max_tokens = -1;
	p->temperature = 0;
	p->top_p = 1;
	p->repeat_penalty = 1;
	p->sensitive = true;
	p->constrained = true;
	p->grounded = true;
	p->calibrate = true;
	p->copy = true;
	p->date_order = DK_DATE_DMY;

	if (!json_is_object(root)) {
		p = fail(&L, p, NULL, "expected a JSON object at the top level, got %s", jtype(root));
		goto out;
	}
	static const char *const top[] = {"$schema", "name", "description", "task", "input",
					  "chunking", "prompts", "labels", "schema", "generation",
					  "output", "sensitive", "fallback", "extract", "classify", NULL};
	const char *bad = stray_key(root, top);
	if (bad) {
		p = fail(&L, p, bad, "unknown field (see pipelines/pipeline.schema.json)");
		goto out;
	}
	json_t *v = json_object_get(root, "name");
	if (!v) {
		p = fail(&L, p, NULL, "missing required field 'name'");
		goto out;
	}
	if (get_str(&L, root, "name", "name", &p->name) || get_str(&L, root, "description", "description", &p->description)) {
		dk_pipeline_free(p);
		p = NULL;
		goto out;
	}
	v = json_object_get(root, "task");
	if (!v) {
		p = fail(&L, p, NULL, "missing required field 'task'");
		goto out;
	}
	const char *task = json_string_value(v);
	if (!task) {
		p = fail(&L, p, "task", "expected a string, got %s", jtype(v));
		goto out;
	}
	size_t tn = 0;
	while (tn < sizeof task_names / sizeof *task_names && strcmp(task, task_names[tn]))
		tn++;
	if (tn == sizeof task_names / sizeof *task_names) {
		p = fail(&L, p, "task", "'%s' is not one of summarize, classify, extract, generate",
			 task);
		goto out;
	}
	p->task = (enum dk_task)tn;

	json_t *in = json_object_get(root, "input");
	if (in) {
		static const char *const ik[] = {"include", "exclude", "hidden", "raw_text", NULL};
		if (check_block(&L, in, "input", ik))
			goto bad;
		if (get_bool(&L, in, "hidden", "input.hidden", &p->hidden) ||
		    get_bool(&L, in, "raw_text", "input.raw_text", &p->raw_text))
			goto bad;
		if (str_array(&L, json_object_get(in, "include"), "input.include", &p->include, &p->n_include) ||
		    str_array(&L, json_object_get(in, "exclude"), "input.exclude", &p->exclude, &p->n_exclude)) {
			dk_pipeline_free(p);
			p = NULL;
			goto out;
		}
	}
	json_t *ch = json_object_get(root, "chunking");
	if (ch) {
		static const char *const ck[] = {"max_tokens", "overlap_tokens", NULL};
		if (check_block(&L, ch, "chunking", ck))
			goto bad;
		if (get_int(&L, ch, "max_tokens", "chunking.max_tokens", 16, 1 << 20, &p->chunk_tokens) ||
		    get_int(&L, ch, "overlap_tokens", "chunking.overlap_tokens", 0, 1 << 19, &p->chunk_overlap)) {
			dk_pipeline_free(p);
			p = NULL;
			goto out;
		}
		if (p->chunk_overlap > p->chunk_tokens / 2) {
			p = fail(&L, p, "chunking.overlap_tokens", "must be at most half of max_tokens (%d)",
				 p->chunk_tokens / 2);
			goto out;
		}
	}

	json_t *pr = json_object_get(root, "prompts");
	if (!pr) {
		p = fail(&L, p, NULL, "missing required field 'prompts'");
		goto out;
	}
	if (!json_is_object(pr)) {
		p = fail(&L, p, "prompts", "expected an object, got %s", jtype(pr));
		goto out;
	}
	static const char *const pk[] = {"system", "user", "reduce", "answer", NULL};
	if ((bad = stray_key(pr, pk))) {
		char f[160];
		snprintf(f, sizeof f, "prompts.%s", bad);
		p = fail(&L, p, f, "unknown prompt (known: system, user, reduce, answer)");
		goto out;
	}
	if ((v = json_object_get(pr, "system")) && !(p->system = load_tmpl(&L, p->dir, v, "prompts.system", &h)))
		goto bad;
	if (!(v = json_object_get(pr, "user"))) {
		p = fail(&L, p, "prompts", "missing required prompt 'user'");
		goto out;
	}
	if (!(p->user = load_tmpl(&L, p->dir, v, "prompts.user", &h)))
		goto bad;
	if ((v = json_object_get(pr, "reduce")) && !(p->reduce = load_tmpl(&L, p->dir, v, "prompts.reduce", &h)))
		goto bad;
	if ((v = json_object_get(pr, "answer")) && !(p->answer = load_tmpl(&L, p->dir, v, "prompts.answer", &h)))
		goto bad;
	if (!dk_tmpl_uses(p->user, "text")) {
		p = fail(&L, p, "prompts.user", "the user prompt must contain {{text}}");
		goto out;
	}
	if (p->reduce && !dk_tmpl_uses(p->reduce, "summaries")) {
		p = fail(&L, p, "prompts.reduce", "the reduce prompt must contain {{summaries}}");
		goto out;
	}

	if (str_array(&L, json_object_get(root, "labels"), "labels", &p->labels, &p->n_labels))
		goto bad;
	if (p->task == DK_TASK_CLASSIFY && p->n_labels < 2) {
		p = fail(&L, p, json_object_get(root, "labels") ? "labels" : NULL,
			 "a classify pipeline needs 'labels' with at least two labels");
		goto out;
	}
	/* classify reads a document's head by default: the first chunk decides
	 * what a file is, and a long file costs one chunk, not all of them */
	json_t *cl = json_object_get(root, "classify");
	if (cl && p->task != DK_TASK_CLASSIFY) {
		p = fail(&L, p, "classify", "only for a classify pipeline");
		goto out;
	}
	p->max_chunks = p->task == DK_TASK_CLASSIFY ? 1 : 0;
	if (cl) {
		json_t *sv = json_object_get(cl, "scope");
		const char *scope = json_string_value(sv);
		static const char *const ck[] = {"scope", "calibrate", NULL};
		if (!json_is_object(cl) || stray_key(cl, ck)) {
			p = fail(&L, p, "classify",
				 "expected {\"scope\": \"head\" | \"all\", \"calibrate\": true | false}");
			goto out;
		}
		if (get_bool(&L, cl, "calibrate", "classify.calibrate", &p->calibrate))
			goto bad;
		if (sv && (!scope || (strcmp(scope, "head") && strcmp(scope, "all")))) {
			p = fail(&L, p, "classify.scope", "expected \"head\" or \"all\"");
			goto out;
		}
		if (scope && !strcmp(scope, "all"))
			p->max_chunks = 0;
	}
	for (size_t i = 0; i < p->n_labels; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcmp(p->labels[i], p->labels[j]) || !*p->labels[i]) {
				p = fail(&L, p, "labels", "label %zu ('%s') is empty or repeated", i,
					 p->labels[i]);
				goto out;
			}

	json_t *sc = json_object_get(root, "schema");
	if (sc) {
		if (!json_is_object(sc)) {
			p = fail(&L, p, "schema", "expected a JSON Schema object, got %s", jtype(sc));
			goto out;
		}
		json_t *props = json_object_get(sc, "properties");
		if (!json_is_object(props) || json_object_size(props) == 0) {
			p = fail(&L, p, "schema", "expected an object schema with 'properties'");
			goto out;
		}
		p->schema_json = json_dumps(sc, JSON_COMPACT | JSON_PRESERVE_ORDER);
		/* the grammar compiler is the judge of what is supported */
		char serr[DK_ERRMSG_MAX];
		char *gbnf = NULL;
		if (dk_schema_to_gbnf(sc, &gbnf, serr, sizeof serr) != DK_OK) {
			const char *m = !strncmp(serr, "schema: ", 8) ? serr + 8 : serr;
			p = fail(&L, p, "schema", "%s", m);
			goto out;
		}
		free(gbnf);
		p->fields = calloc(json_object_size(props), sizeof *p->fields);
		const char *k;
		json_t *fv;
		json_object_foreach(props, k, fv) {
			char f[200];
			snprintf(f, sizeof f, "schema.properties.%s", k);
			if (!json_is_object(fv)) {
				p = fail(&L, p, f, "expected an object, got %s", jtype(fv));
				goto out;
			}
			json_t *tv = json_object_get(fv, "type");
			const char *ty = json_string_value(tv);
			size_t ti;
			json_t *te;
			if (json_is_array(tv))
				json_array_foreach(tv, ti, te) {
					const char *t = json_string_value(te);
					if (t && strcmp(t, "null")) {
						ty = t;
						break;
					}
				}
			if (!ty || !strcmp(ty, "null"))
				ty = "string";
			bool choice = json_object_get(fv, "enum") || json_object_get(fv, "const") ||
				      json_object_get(fv, "anyOf") || json_object_get(fv, "oneOf");
			const char *fmt = json_string_value(json_object_get(fv, "format"));
			bool plain = !choice && !fmt && !json_object_get(fv, "pattern");
			bool nullable = json_is_true(json_object_get(fv, "nullable")) ||
					(json_is_string(tv) && !strcmp(json_string_value(tv), "null"));
			if (json_is_array(tv))
				json_array_foreach(tv, ti, te)
					nullable |= json_is_string(te) && !strcmp(json_string_value(te), "null");
			const char *d = json_string_value(json_object_get(fv, "description"));
			struct dk_field *fd = &p->fields[p->n_fields++];
			fd->name = strdup(k);
			fd->type = strdup(ty);
			fd->description = strdup(d ? d : "");
			fd->schema_json = json_dumps(fv, JSON_COMPACT | JSON_PRESERVE_ORDER);
			fd->plain = plain;
			fd->nullable = nullable;
			fd->format = fmt ? strdup(fmt) : NULL;
			fd->ground = !choice && nullable &&
				     (!strcmp(ty, "string") || !strcmp(ty, "number") || !strcmp(ty, "integer"));
		}
	}
	json_t *ex = json_object_get(root, "extract");
	if (ex) {
		static const char *const ek[] = {"mode", "constrained", "grounded", "copy",
						 "normalize", "date_order", "line_start", NULL};
		if (check_block(&L, ex, "extract", ek))
			goto bad;
		json_t *nv = json_object_get(ex, "normalize");
		if (nv && !json_is_object(nv)) {
			p = fail(&L, p, "extract.normalize", "expected an object of field: [normalisations]");
			goto out;
		}
		const char *nk;
		json_t *nl;
		json_object_foreach(nv, nk, nl) {
			char f[200];
			snprintf(f, sizeof f, "extract.normalize.%s", nk);
			struct dk_field *fd = NULL;
			for (size_t i = 0; i < p->n_fields; i++)
				if (!strcmp(p->fields[i].name, nk))
					fd = &p->fields[i];
			if (!fd) {
				p = fail(&L, p, f, "not a field of the schema");
				goto out;
			}
			if (!json_is_array(nl) || json_array_size(nl) > sizeof fd->normalize / sizeof *fd->normalize) {
				p = fail(&L, p, f, "expected an array of at most %zu normalisations",
					 sizeof fd->normalize / sizeof *fd->normalize);
				goto out;
			}
			size_t k;
			json_t *op;
			json_array_foreach(nl, k, op) {
				int id = json_is_string(op) ? dk_value_norm_find(json_string_value(op)) : -1;
				if (id < 0) {
					p = fail(&L, p, f, "item %zu: expected one of trim, collapse_spaces, lower, "
						 "upper, date", k);
					goto out;
				}
				fd->normalize[fd->n_normalize++] = id;
			}
		}
		json_t *lv = json_object_get(ex, "line_start");
		if (lv && !json_is_array(lv)) {
			p = fail(&L, p, "extract.line_start", "expected an array of field names");
			goto out;
		}
		size_t li;
		json_t *le;
		json_array_foreach(lv, li, le) {
			struct dk_field *fd = NULL;
			for (size_t i = 0; json_is_string(le) && i < p->n_fields; i++)
				if (!strcmp(p->fields[i].name, json_string_value(le)))
					fd = &p->fields[i];
			if (!fd || !fd->ground || strcmp(fd->type, "string")) {
				p = fail(&L, p, "extract.line_start",
					 "item %zu: not a free-text field of the schema that admits null", li);
				goto out;
			}
			fd->line_start = true;
		}
		json_t *dv = json_object_get(ex, "date_order");
		if (dv) {
			const char *o = json_string_value(dv);
			if (!o || (strcmp(o, "dmy") && strcmp(o, "mdy"))) {
				p = fail(&L, p, "extract.date_order", "expected \"dmy\" or \"mdy\"");
				goto out;
			}
			p->date_order = !strcmp(o, "mdy") ? DK_DATE_MDY : DK_DATE_DMY;
		}
		json_t *m = json_object_get(ex, "mode");
		if (m) {
			const char *ms = json_string_value(m);
			if (!ms || (strcmp(ms, "fields") && strcmp(ms, "object"))) {
				p = fail(&L, p, "extract.mode", "expected \"fields\" or \"object\"");
				goto out;
			}
			p->extract_mode = !strcmp(ms, "object") ? DK_EXTRACT_OBJECT : DK_EXTRACT_FIELDS;
		}
		if (get_bool(&L, ex, "constrained", "extract.constrained", &p->constrained) ||
		    get_bool(&L, ex, "grounded", "extract.grounded", &p->grounded) ||
		    get_bool(&L, ex, "copy", "extract.copy", &p->copy))
			goto bad;
	}
	if (p->task == DK_TASK_EXTRACT && !p->n_fields) {
		p = fail(&L, p, NULL, "an extract pipeline needs 'schema' with 'properties'");
		goto out;
	}
	if (p->task == DK_TASK_EXTRACT && p->extract_mode == DK_EXTRACT_FIELDS &&
	    !dk_tmpl_uses(p->user, "field")) {
		p = fail(&L, p, "prompts.user", "an extract prompt must contain {{field}} (asked once per field)");
		goto out;
	}

	json_t *g = json_object_get(root, "generation");
	if (g) {
		static const char *const gk[] = {"max_tokens", "reduce_max_tokens", "temperature", "top_p",
						 "top_k", "repeat_penalty", "seed", "stop", NULL};
		if (check_block(&L, g, "generation", gk))
			goto bad;
		int seed = 0;
		if (get_int(&L, g, "max_tokens", "generation.max_tokens", 1, 1 << 16, &p->max_tokens) ||
		    get_int(&L, g, "reduce_max_tokens", "generation.reduce_max_tokens", 1, 1 << 16, &p->reduce_max_tokens) ||
		    get_num(&L, g, "temperature", "generation.temperature", 0, 10, &p->temperature) ||
		    get_num(&L, g, "top_p", "generation.top_p", 0, 1, &p->top_p) ||
		    get_int(&L, g, "top_k", "generation.top_k", 0, 1 << 20, &p->top_k) ||
		    get_num(&L, g, "repeat_penalty", "generation.repeat_penalty", 0.5, 5, &p->repeat_penalty) ||
		    get_int(&L, g, "seed", "generation.seed", 0, INT_MAX, &seed) ||
		    str_array(&L, json_object_get(g, "stop"), "generation.stop", &p->stop, &p->n_stop))
			goto bad;
		p->seed = (uint64_t)seed;
	}
	if (p->reduce_max_tokens < 0)
		p->reduce_max_tokens = p->max_tokens;

	v = json_object_get(root, "output");
	if (v) {
		const char *o = json_string_value(v);
		if (!o || (strcmp(o, "per_chunk") && strcmp(o, "per_document"))) {
			p = fail(&L, p, "output", "expected \"per_chunk\" or \"per_document\"");
			goto out;
		}
		p->per_chunk = !strcmp(o, "per_chunk");
	}
	if (get_bool(&L, root, "sensitive", "sensitive", &p->sensitive))
		goto bad;
	json_t *fb = json_object_get(root, "fallback");
	if (fb) {
		static const char *const fk[] = {"url", "model", "key_env", "when", "allow_sensitive",
						 "redact", "timeout_ms", "connect_timeout_ms",
						 "max_retries", "max_concurrency", "ca_bundle", NULL};
		if (check_block(&L, fb, "fallback", fk))
			goto bad;
		p->has_fallback = true;
		/* the routing layer reads the block itself; checking it here makes a
		 * typo in a privacy setting a load error, not a run-time one */
		p->fallback = dk_fallback_default_params();
		char ferr[DK_ERRMSG_MAX];
		json_t *fbc = json_deep_copy(fb);
		/* early names of two conditions, kept so older pipelines still load */
		json_t *wl = json_object_get(fbc, "when"), *wv;
		size_t wi;
		json_array_foreach(wl, wi, wv) {
			const char *w = json_string_value(wv);
			if (w && !strcmp(w, "error"))
				json_array_set_new(wl, wi, json_string("local_error"));
			else if (w && !strcmp(w, "too-long"))
				json_array_set_new(wl, wi, json_string("over_context"));
		}
		p->fallback_block = fbc;
		if (!fbc || dk_fallback_params_from_json(&p->fallback, fbc, ferr, sizeof ferr)) {
			p = fail(&L, p, "fallback", "%s", fbc ? ferr : "out of memory");
			goto out;
		}
		/* the shapes the schema allows (a comma string for when is the
		 * command line's, not the file's) */
		char *url = NULL, *model = NULL, *key_env = NULL, **when = NULL;
		size_t n_when = 0;
		int bad_shape = get_str(&L, fb, "url", "fallback.url", &url) ||
				get_str(&L, fb, "model", "fallback.model", &model) ||
				get_str(&L, fb, "key_env", "fallback.key_env", &key_env) ||
				str_array(&L, json_object_get(fb, "when"), "fallback.when", &when, &n_when);
		free(url);
		free(model);
		free(key_env);
		free_strv(when, n_when);
		if (bad_shape)
			goto bad;
	}

	/* hash: canonical JSON (key order and whitespace do not matter) + prompts */
	char *canon = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	if (canon) {
		dk_sha256_update(&h, canon, strlen(canon) + 1);
		free(canon);
	}
	uint8_t d[32];
	dk_sha256_final(&h, d);
	dk_sha256_hex(d, p->hash);
	goto out;
bad:
	dk_pipeline_free(p);
	p = NULL;
out:
	json_decref(root);
	free(src);
	return p;
}

struct dk_pipeline *dk_pipeline_load(const char *path_or_name, char *err, size_t n)
{
	char *path = dk_pipeline_find(path_or_name);
	if (!path) {
		dk_err(err, n, DK_SKIP,
		       "no pipeline '%s' (not a file, and not a shipped pipeline: summarize-records, "
		       "classify-files, extract-fields)",
		       path_or_name ? path_or_name : "");
		return NULL;
	}
	struct dk_pipeline *p = load_file(path, err, n);
	free(path);
	return p;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void dk_pipeline_free(struct dk_pipeline *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->path);
	free(p->dir);
	free(p->description);
	free_strv(p->include, p->n_include);
	free_strv(p->exclude, p->n_exclude);
	dk_tmpl_free(p->system);
	dk_tmpl_free(p->user);
	dk_tmpl_free(p->reduce);
	dk_tmpl_free(p->answer);
	free_strv(p->labels, p->n_labels);
	free(p->schema_json);
	for (size_t i = 0; i < p->n_fields; i++) {
		free(p->fields[i].name);
		free(p->fields[i].type);
		free(p->fields[i].description);
		free(p->fields[i].schema_json);
		free(p->fields[i].format);
	}
	free(p->fields);
	free_strv(p->stop, p->n_stop);
	json_decref(p->fallback_block);
	free(p);
}
