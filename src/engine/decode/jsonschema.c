/*
 * JSON Schema → GBNF, and the validator.  See docket/jsonschema.h for the
 * supported keywords and for what the grammar deliberately leaves out.
 *
 * Each schema node becomes one rule "sN" (memoised by node, so $ref cycles
 * become recursive rules).  Objects with optional properties use a chain of
 * rules "sN-I-F" = "properties from I on, F: nothing emitted yet", which
 * places commas correctly whichever optional ones are present.
 */
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/jsonschema.h"
#include "util/buf.h"
#include "util/err.h"

#define MAX_COUNT 10000 /* largest minItems/maxItems/minLength/maxLength we compile */

static const char *const annotations[] = {
	"title", "description", "default", "examples", "$schema", "$id", "$comment",
	"definitions", "$defs", "readOnly", "writeOnly", "deprecated", NULL,
};
static const char *const supported[] = {
	"type", "nullable", "enum", "const", "properties", "required", "additionalProperties",
	"items", "minItems", "maxItems", "minLength", "maxLength", "anyOf", "oneOf", "format",
	"pattern", "$ref", NULL,
};

static bool in_list(const char *const *l, const char *k)
{
	for (; *l; l++)
		if (!strcmp(*l, k))
			return true;
	return false;
}

/* Shared primitives.  jhex excludes \u0000 (jansson refuses NUL) and the
 * surrogates (a lone one is invalid, a pair would be one code point where
 * the grammar counted two). */
static const char prelude[] =
	"ws ::= ( \" \" | \"\\n\" \" \"{0,16} )?\n"
	"jchar ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" jhex )\n"
	"jhex ::= [1-9a-cA-CeEfF] hx hx hx | [dD] [0-7] hx hx | \"0\" [1-9a-fA-F] hx hx"
	" | \"00\" [1-9a-fA-F] hx | \"000\" [1-9a-fA-F]\n"
	"hx ::= [0-9a-fA-F]\n"
	"jstring ::= \"\\\"\" jchar* \"\\\"\"\n"
	"jint ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n"
	"jnum ::= jint ( \".\" [0-9]{1,15} )? ( [eE] [-+]? [0-9]{1,2} )?\n"
	"jbool ::= \"true\" | \"false\"\n"
	"jnull ::= \"null\"\n"
	"jvalue ::= jobject | jarray | jstring | jnum | jbool | jnull\n"
	"jobject ::= \"{\" ws ( jstring \":\" ws jvalue ( \",\" ws jstring \":\" ws jvalue )* ws )? \"}\"\n"
	"jarray ::= \"[\" ws ( jvalue ( \",\" ws jvalue )* ws )? \"]\"\n"
	"d2 ::= [0-9] [0-9]\n"
	"jdate ::= [0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"3\" [01] )\n"
	"jhour ::= [01] [0-9] | \"2\" [0-3]\n"
	"jtime ::= jhour \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,6} )?"
	" ( \"Z\" | [-+] jhour \":\" [0-5] [0-9] )\n"
	"juuid ::= hx{8} \"-\" hx{4} \"-\" hx{4} \"-\" hx{4} \"-\" hx{12}\n"
	"jemail ::= [A-Za-z0-9._%+-]+ \"@\" [A-Za-z0-9-]+ ( \".\" [A-Za-z0-9-]+ )* \".\" [A-Za-z]{2,24}\n";

/* Patterns the validator checks formats with (same language as above). */
#define RX_DATE "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
#define RX_TIME "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[-+]([01][0-9]|2[0-3]):[0-5][0-9])"
#define RX_UUID "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
#define RX_EMAIL "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,24}"

static const char *format_rule(const char *f)
{
	if (!strcmp(f, "date"))
		return "jdate";
	if (!strcmp(f, "time"))
		return "jtime";
	if (!strcmp(f, "date-time"))
		return "jdate \"T\" jtime";
	if (!strcmp(f, "uuid"))
		return "juuid";
	if (!strcmp(f, "email"))
		return "jemail";
	return NULL;
}

static const char *format_regex(const char *f)
{
	if (!strcmp(f, "date"))
		return "^" RX_DATE "$";
	if (!strcmp(f, "time"))
		return "^" RX_TIME "$";
	if (!strcmp(f, "date-time"))
		return "^" RX_DATE "T" RX_TIME "$";
	if (!strcmp(f, "uuid"))
		return "^" RX_UUID "$";
	if (!strcmp(f, "email"))
		return "^" RX_EMAIL "$";
	return NULL;
}

/* Resolves "#", "#/definitions/x", "#/$defs/x" (one level, ~0 ~1 unescaped). */
static const json_t *resolve_ref(const json_t *root, const char *ref)
{
	if (!strcmp(ref, "#"))
		return root;
	const char *name = NULL, *kw = NULL;
	if (!strncmp(ref, "#/definitions/", 14)) {
		kw = "definitions";
		name = ref + 14;
	} else if (!strncmp(ref, "#/$defs/", 8)) {
		kw = "$defs";
		name = ref + 8;
	}
	if (!name || strchr(name, '/'))
		return NULL;
	char key[256];
	size_t k = 0;
	for (const char *p = name; *p && k + 1 < sizeof key; p++) {
		if (p[0] == '~' && p[1] == '0') {
			key[k++] = '~';
			p++;
		} else if (p[0] == '~' && p[1] == '1') {
			key[k++] = '/';
			p++;
		} else {
			key[k++] = *p;
		}
	}
	key[k] = 0;
	const json_t *defs = json_object_get(root, kw);
	return defs ? json_object_get(defs, key) : NULL;
}

/* ---- validator ---- */

struct vc {
	const json_t *root;
	char *err;
	size_t n;
	int depth;
};

static bool vfail(struct vc *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool vfail(struct vc *c, const char *path, const char *fmt, ...)
{
	if (!c->err || !c->n)
		return false;
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(c->err, c->n, "%s: %s", *path ? path : "/", msg);
	return false;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE: case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

static bool is_type(const json_t *v, const char *t)
{
	if (!strcmp(t, "string"))
		return json_is_string(v);
	if (!strcmp(t, "number"))
		return json_is_number(v);
	if (!strcmp(t, "integer"))
		return json_is_integer(v) ||
		       (json_is_real(v) && isfinite(json_real_value(v)) &&
			floor(json_real_value(v)) == json_real_value(v));
	if (!strcmp(t, "boolean"))
		return json_is_boolean(v);
	if (!strcmp(t, "null"))
		return json_is_null(v);
	if (!strcmp(t, "object"))
		return json_is_object(v);
	if (!strcmp(t, "array"))
		return json_is_array(v);
	return false;
}

/* json_equal, except numbers compare by value (1 == 1.0). */
static bool value_eq(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_is_array(a) && json_is_array(b)) {
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!value_eq(json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	}
	if (json_is_object(a) && json_is_object(b)) {
		if (json_object_size(a) != json_object_size(b))
			return false;
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)a, k, x) {
			const json_t *y = json_object_get(b, k);
			if (!y || !value_eq(x, y))
				return false;
		}
		return true;
	}
	return json_equal((json_t *)a, (json_t *)b);
}

static size_t utf8_len(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			k++;
	return k;
}

static bool regex_match(const char *rx, const char *s)
{
	regex_t r;
	if (regcomp(&r, rx, REG_EXTENDED | REG_NOSUB))
		return false;
	bool ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

/* A JSON Schema pattern (ECMA-262 syntax) as POSIX extended syntax: the
 * class escapes \\d \\w \\s and their negations become bracket
 * expressions, inside brackets too; an escaped character inside brackets is
 * the character.  Unanchored, as JSON Schema patterns are.  NULL when out
 * of memory. */
static char *pattern_to_ere(const char *p)
{
	struct dk_buf b = {0};
	bool in = false;
	for (; *p; p++) {
		if (*p == '\\' && p[1]) {
			char c = *++p;
			const char *cls = NULL;
			if (c == 'd' || c == 'D')
				cls = "0-9";
			else if (c == 'w' || c == 'W')
				cls = "A-Za-z0-9_";
			else if (c == 's' || c == 'S')
				cls = "[:space:]";
			bool neg = c == 'D' || c == 'W' || c == 'S';
			if (cls && in && neg) { /* [^...] inside [...] has no POSIX spelling */
				dk_buf_free(&b);
				return NULL;
			}
			if (cls && in)
				dk_buf_puts(&b, cls);
			else if (cls)
				dk_buf_printf(&b, "[%s%s]", neg ? "^" : "", cls);
			else if (in)
				dk_buf_putc(&b, c);
			else if (c == 'n' || c == 't' || c == 'r')
				dk_buf_putc(&b, c == 'n' ? '\n' : c == 't' ? '\t' : '\r');
			else {
				dk_buf_putc(&b, '\\');
				dk_buf_putc(&b, c);
			}
			continue;
		}
		if (*p == '[' && !in) {
			in = true;
			dk_buf_putc(&b, '[');
			if (p[1] == '^')
				dk_buf_putc(&b, *++p);
			if (p[1] == ']')
				dk_buf_putc(&b, *++p);
			continue;
		}
		if (*p == ']' && in)
			in = false;
		dk_buf_putc(&b, *p);
	}
	return dk_buf_steal(&b);
}

/* Does s match the JSON Schema pattern?  *bad: the pattern does not compile. */
static bool pattern_match(const char *pattern, const char *s, bool *bad)
{
	char *ere = pattern_to_ere(pattern);
	regex_t r;
	*bad = !ere || regcomp(&r, ere, REG_EXTENDED | REG_NOSUB);
	free(ere);
	if (*bad)
		return false;
	bool ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

static void path_join(char *out, size_t n, const char *path, const char *seg)
{
	/* JSON pointer escaping: ~ → ~0, / → ~1 */
	size_t k = (size_t)snprintf(out, n, "%s/", path);
	for (const char *p = seg; *p && k + 3 < n; p++) {
		if (*p == '~') {
			out[k++] = '~';
			out[k++] = '0';
		} else if (*p == '/') {
			out[k++] = '~';
			out[k++] = '1';
		} else {
			out[k++] = *p;
		}
	}
	if (k < n)
		out[k] = 0;
}

static bool get_count(const json_t *s, const char *kw, long *out)
{
	const json_t *x = json_object_get(s, kw);
	if (!x)
		return false;
	if (json_is_integer(x) && json_integer_value(x) >= 0) {
		*out = (long)(json_integer_value(x) > 0x7fffffff ? 0x7fffffff : json_integer_value(x));
		return true;
	}
	if (json_is_real(x) && json_real_value(x) >= 0 && floor(json_real_value(x)) == json_real_value(x)) {
		double d = json_real_value(x);
		*out = d > 0x7fffffff ? 0x7fffffff : (long)d;
		return true;
	}
	return false;
}

static bool vnode(struct vc *c, const json_t *s, const json_t *v, const char *path);

static bool vtypes(struct vc *c, const json_t *s, const json_t *v, const char *path)
{
	const json_t *t = json_object_get(s, "type");
	if (!t)
		return true;
	if (json_is_true(json_object_get(s, "nullable")) && json_is_null(v))
		return true;
	if (json_is_string(t)) {
		if (is_type(v, json_string_value(t)))
			return true;
		return vfail(c, path, "expected %s, got %s", json_string_value(t), type_name(v));
	}
	if (json_is_array(t)) {
		size_t i;
		json_t *x;
		json_array_foreach(t, i, x)
			if (json_is_string(x) && is_type(v, json_string_value(x)))
				return true;
		char *d = json_dumps(t, JSON_COMPACT);
		vfail(c, path, "expected one of %s, got %s", d ? d : "?", type_name(v));
		free(d);
		return false;
	}
	return vfail(c, path, "schema: bad 'type'");
}

static bool vnode(struct vc *c, const json_t *s, const json_t *v, const char *path)
{
	if (json_is_true(s))
		return true;
	if (json_is_false(s))
		return vfail(c, path, "schema false allows nothing");
	if (!json_is_object(s))
		return vfail(c, path, "schema is not an object");
	if (++c->depth > 200) {
		c->depth--;
		return vfail(c, path, "schema nesting too deep");
	}
	bool ok = false;
	const char *k;
	json_t *x;
	json_object_foreach((json_t *)s, k, x) {
		if (!in_list(annotations, k) && !in_list(supported, k)) {
			vfail(c, path, "schema: unsupported keyword '%s'", k);
			goto out;
		}
	}
	const json_t *ref = json_object_get(s, "$ref");
	if (ref) {
		const json_t *t = json_is_string(ref) ? resolve_ref(c->root, json_string_value(ref)) : NULL;
		if (!t) {
			vfail(c, path, "schema: cannot resolve $ref");
			goto out;
		}
		if (!vnode(c, t, v, path))
			goto out;
	}
	/* OpenAPI's nullable: null is accepted whatever the other keywords say
	 * (the grammar adds a null alternative the same way) */
	if (json_is_true(json_object_get(s, "nullable")) && json_is_null(v)) {
		ok = true;
		goto out;
	}
	if (!vtypes(c, s, v, path))
		goto out;
	const json_t *en = json_object_get(s, "enum");
	if (en) {
		size_t i;
		json_t *e;
		bool hit = false;
		json_array_foreach(en, i, e)
			if (value_eq(e, v)) {
				hit = true;
				break;
			}
		if (!hit) {
			vfail(c, path, "value not in enum");
			goto out;
		}
	}
	const json_t *cn = json_object_get(s, "const");
	if (cn && !value_eq(cn, v)) {
		vfail(c, path, "value is not the const");
		goto out;
	}
	long lim;
	if (json_is_string(v)) {
		size_t len = utf8_len(json_string_value(v), json_string_length(v));
		if (get_count(s, "minLength", &lim) && len < (size_t)lim) {
			vfail(c, path, "string shorter than minLength %ld", lim);
			goto out;
		}
		if (get_count(s, "maxLength", &lim) && len > (size_t)lim) {
			vfail(c, path, "string longer than maxLength %ld", lim);
			goto out;
		}
		const json_t *pt = json_object_get(s, "pattern");
		if (pt) {
			bool bad = !json_is_string(pt);
			if (!bad && (strlen(json_string_value(v)) != json_string_length(v) ||
				     !pattern_match(json_string_value(pt), json_string_value(v), &bad)) &&
			    !bad) {
				vfail(c, path, "does not match the pattern %s", json_string_value(pt));
				goto out;
			}
			if (bad) {
				vfail(c, path, "schema: invalid pattern");
				goto out;
			}
		}
		const json_t *f = json_object_get(s, "format");
		if (f) {
			const char *rx = json_is_string(f) ? format_regex(json_string_value(f)) : NULL;
			if (!rx) {
				vfail(c, path, "schema: unsupported format");
				goto out;
			}
			if (strlen(json_string_value(v)) != json_string_length(v) ||
			    !regex_match(rx, json_string_value(v))) {
				vfail(c, path, "not a valid %s", json_string_value(f));
				goto out;
			}
		}
	}
	if (json_is_array(v)) {
		size_t n = json_array_size(v);
		if (get_count(s, "minItems", &lim) && n < (size_t)lim) {
			vfail(c, path, "fewer than minItems %ld items", lim);
			goto out;
		}
		if (get_count(s, "maxItems", &lim) && n > (size_t)lim) {
			vfail(c, path, "more than maxItems %ld items", lim);
			goto out;
		}
		const json_t *items = json_object_get(s, "items");
		if (items) {
			for (size_t i = 0; i < n; i++) {
				char p[512], seg[24];
				snprintf(seg, sizeof seg, "%zu", i);
				path_join(p, sizeof p, path, seg);
				if (!vnode(c, items, json_array_get(v, i), p))
					goto out;
			}
		}
	}
	if (json_is_object(v)) {
		const json_t *props = json_object_get(s, "properties");
		const json_t *addl = json_object_get(s, "additionalProperties");
		const json_t *req = json_object_get(s, "required");
		size_t i;
		json_t *r;
		json_array_foreach(req, i, r) {
			if (json_is_string(r) && !json_object_get(v, json_string_value(r))) {
				vfail(c, path, "missing required property '%s'", json_string_value(r));
				goto out;
			}
		}
		json_object_foreach((json_t *)v, k, x) {
			char p[512];
			path_join(p, sizeof p, path, k);
			const json_t *ps = props ? json_object_get(props, k) : NULL;
			if (ps) {
				if (!vnode(c, ps, x, p))
					goto out;
			} else if (json_is_false(addl)) {
				vfail(c, path, "property '%s' not allowed (additionalProperties: false)", k);
				goto out;
			} else if (addl && !json_is_true(addl)) {
				if (!vnode(c, addl, x, p))
					goto out;
			}
		}
	}
	const json_t *any = json_object_get(s, "anyOf");
	if (any) {
		size_t i;
		json_t *b;
		bool hit = false;
		json_array_foreach(any, i, b)
			if (vnode(c, b, v, path)) {
				hit = true;
				break;
			}
		if (!hit) {
			vfail(c, path, "matches no anyOf branch");
			goto out;
		}
	}
	const json_t *one = json_object_get(s, "oneOf");
	if (one) {
		size_t i, hits = 0;
		json_t *b;
		json_array_foreach(one, i, b)
			hits += vnode(c, b, v, path);
		if (hits != 1) {
			vfail(c, path, "matches %zu oneOf branches, not exactly one", hits);
			goto out;
		}
	}
	ok = true;
out:
	c->depth--;
	return ok;
}

bool dk_schema_validate(const json_t *schema, const json_t *value, char *err, size_t n)
{
	struct vc c = {schema, err, n, 0};
	if (err && n)
		err[0] = 0;
	if (!schema || !value)
		return vfail(&c, "", "no schema or no value");
	return vnode(&c, schema, value, "");
}

/* ---- compiler ---- */

struct memo {
	const json_t *node;
	int id;
};

struct sc {
	const json_t *root;
	struct dk_buf out;
	char *err;
	size_t n;
	bool failed;
	int next;
	struct memo *memo;
	int nmemo, cap;
	int depth;
};

static int cfail(struct sc *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfail(struct sc *c, const char *path, const char *fmt, ...)
{
	if (c->failed)
		return -1;
	c->failed = true;
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (c->err && c->n)
		snprintf(c->err, c->n, "schema: %s: %s", *path ? path : "/", msg);
	return -1;
}

/* Appends bytes as a GBNF literal. */
static int put_lit(struct dk_buf *b, const char *s, size_t n)
{
	int bad = dk_buf_putc(b, '"');
	for (size_t i = 0; i < n && !bad; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			bad |= dk_buf_printf(b, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			bad |= dk_buf_printf(b, "\\x%02X", ch);
		else
			bad |= dk_buf_putc(b, (char)ch);
	}
	bad |= dk_buf_putc(b, '"');
	return bad ? -1 : 0;
}

/* Appends the JSON text of v as a GBNF literal. */
static int put_json_lit(struct dk_buf *b, const json_t *v)
{
	char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!d)
		return -1;
	int r = put_lit(b, d, strlen(d));
	free(d);
	return r;
}

static int gen(struct sc *c, const json_t *s, const char *path, char name[32]);

static int count_kw(struct sc *c, const json_t *s, const char *kw, const char *path, long *out)
{
	if (!json_object_get(s, kw))
		return 0;
	char p[512];
	path_join(p, sizeof p, path, kw);
	if (!get_count(s, kw, out))
		return cfail(c, p, "must be a non-negative integer");
	if (*out > MAX_COUNT)
		return cfail(c, p, "%ld is more than the supported %d", *out, MAX_COUNT);
	return 1;
}

/* ("," ws X){a,b} where b < 0 means unbounded; a, b already >= 0. */
static int put_rep(struct dk_buf *b, long lo, long hi)
{
	if (hi < 0)
		return lo == 0 ? dk_buf_puts(b, "*") : dk_buf_printf(b, "{%ld,}", lo);
	if (lo == hi)
		return lo == 1 ? 0 : dk_buf_printf(b, "{%ld}", lo);
	return dk_buf_printf(b, "{%ld,%ld}", lo, hi);
}

static int gen_string(struct sc *c, const json_t *s, const char *path, struct dk_buf *b)
{
	long mn = 0, mx = -1;
	int r1 = count_kw(c, s, "minLength", path, &mn);
	int r2 = count_kw(c, s, "maxLength", path, &mx);
	if (r1 < 0 || r2 < 0)
		return -1;
	if (mx >= 0 && mx < mn)
		return cfail(c, path, "maxLength below minLength");
	const json_t *pt = json_object_get(s, "pattern");
	if (pt) {
		/* checked by the validator, not generated: a grammar of a regular
		 * expression's language is not built */
		char p[512];
		path_join(p, sizeof p, path, "pattern");
		bool bad = !json_is_string(pt);
		if (!bad)
			pattern_match(json_string_value(pt), "", &bad);
		if (bad)
			return cfail(c, p, "not a pattern docket can read (POSIX extended syntax, "
				     "with \\d \\w \\s)");
	}
	const json_t *f = json_object_get(s, "format");
	if (f) {
		char p[512];
		path_join(p, sizeof p, path, "format");
		const char *fr = json_is_string(f) ? format_rule(json_string_value(f)) : NULL;
		if (!fr)
			return cfail(c, p, "unsupported format '%s' (supported: date, time, date-time, uuid, email)",
				     json_is_string(f) ? json_string_value(f) : "?");
		if (r1 > 0 || r2 > 0)
			return cfail(c, p, "format together with minLength/maxLength is not supported");
		return dk_buf_printf(b, "\"\\\"\" %s \"\\\"\"", fr);
	}
	if (dk_buf_puts(b, "\"\\\"\" jchar"))
		return -1;
	if (mx < 0)
		return dk_buf_puts(b, mn == 0 ? "*" : "") || (mn ? dk_buf_printf(b, "{%ld,}", mn) : 0) ||
		       dk_buf_puts(b, " \"\\\"\"");
	return dk_buf_printf(b, "{%ld,%ld} \"\\\"\"", mn, mx);
}

static int gen_array(struct sc *c, const json_t *s, const char *path, struct dk_buf *b)
{
	long mn = 0, mx = -1;
	if (count_kw(c, s, "minItems", path, &mn) < 0 || count_kw(c, s, "maxItems", path, &mx) < 0)
		return -1;
	if (mx >= 0 && mx < mn)
		return cfail(c, path, "maxItems below minItems");
	const json_t *items = json_object_get(s, "items");
	char p[512], el[32] = "jvalue";
	path_join(p, sizeof p, path, "items");
	if (items && json_is_array(items))
		return cfail(c, p, "tuple form (an array of schemas) is not supported");
	if (items && gen(c, items, p, el))
		return -1;
	if (mx == 0)
		return dk_buf_puts(b, "\"[\" ws \"]\"");
	if (mn == 0) {
		if (dk_buf_printf(b, "\"[\" ws ( %s ( \",\" ws %s )", el, el) ||
		    put_rep(b, 0, mx < 0 ? -1 : mx - 1) || dk_buf_puts(b, " ws )? \"]\""))
			return -1;
		return 0;
	}
	if (dk_buf_printf(b, "\"[\" ws %s ( \",\" ws %s )", el, el) ||
	    put_rep(b, mn - 1, mx < 0 ? -1 : mx - 1) || dk_buf_puts(b, " ws \"]\""))
		return -1;
	return 0;
}

struct prop {
	const char *key;
	const json_t *schema;
	bool required;
	char rule[32];
};

static int gen_object(struct sc *c, const json_t *s, const char *path, int id, struct dk_buf *b)
{
	const json_t *props = json_object_get(s, "properties");
	const json_t *addl = json_object_get(s, "additionalProperties");
	const json_t *req = json_object_get(s, "required");
	char p[512];
	if (props && !json_is_object(props)) {
		path_join(p, sizeof p, path, "properties");
		return cfail(c, p, "must be an object");
	}
	if (req && !json_is_array(req)) {
		path_join(p, sizeof p, path, "required");
		return cfail(c, p, "must be an array of strings");
	}
	if (addl && !json_is_object(addl) && !json_is_boolean(addl)) {
		path_join(p, sizeof p, path, "additionalProperties");
		return cfail(c, p, "must be a boolean or a schema");
	}
	size_t np = props ? json_object_size(props) : 0, nreq = req ? json_array_size(req) : 0;
	struct prop *pr = calloc(np + nreq + 1, sizeof *pr);
	if (!pr)
		return cfail(c, path, "out of memory");
	size_t n = 0;
	int rc = -1;
	const char *k;
	json_t *x;
	if (props) {
		json_object_foreach((json_t *)props, k, x) {
			pr[n].key = k;
			pr[n].schema = x;
			n++;
		}
	}
	for (size_t i = 0; i < nreq; i++) {
		const json_t *r = json_array_get(req, i);
		char rp[512];
		snprintf(rp, sizeof rp, "%s/required/%zu", path, i);
		if (!json_is_string(r)) {
			cfail(c, rp, "must be a string");
			goto out;
		}
		size_t j = 0;
		while (j < n && strcmp(pr[j].key, json_string_value(r)))
			j++;
		if (j == n) {
			if (json_is_false(addl)) {
				cfail(c, rp, "required property '%s' is not in properties and "
					     "additionalProperties is false", json_string_value(r));
				goto out;
			}
			pr[n].key = json_string_value(r);
			pr[n].schema = addl && !json_is_boolean(addl) ? addl : NULL;
			n++;
		}
		pr[j].required = true;
	}
	for (size_t i = 0; i < n; i++) {
		strcpy(pr[i].rule, "jvalue");
		if (pr[i].schema) {
			path_join(p, sizeof p, path, "properties");
			char pp[512];
			path_join(pp, sizeof pp, p, pr[i].key);
			if (gen(c, pr[i].schema, pp, pr[i].rule))
				goto out;
		}
	}
	if (n == 0) {
		if (json_is_false(addl)) {
			rc = dk_buf_puts(b, "\"{\" ws \"}\"");
			goto out;
		}
		char vr[32] = "jvalue";
		if (addl && json_is_object(addl)) {
			path_join(p, sizeof p, path, "additionalProperties");
			if (gen(c, addl, p, vr))
				goto out;
		}
		rc = dk_buf_printf(b, "\"{\" ws ( jstring \":\" ws %s ( \",\" ws jstring \":\" ws %s )* ws )? \"}\"",
				   vr, vr);
		goto out;
	}
	/* chain: sID-I-F ::= what may follow from property I on, F = 1 when no
	 * property has been written yet */
	for (size_t i = n; i-- > 0;) {
		json_t *ks = json_string(pr[i].key);
		char *kj = ks ? json_dumps(ks, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		json_decref(ks);
		if (!kj) {
			cfail(c, path, "out of memory");
			goto out;
		}
		for (int f = 0; f < 2; f++) {
			bool last = i + 1 == n;
			int e = dk_buf_printf(&c->out, "s%d-%zu-%d ::= ", id, i, f);
			e |= dk_buf_puts(&c->out, f ? "" : "\",\" ws ");
			e |= put_lit(&c->out, kj, strlen(kj));
			e |= dk_buf_printf(&c->out, " \":\" ws %s", pr[i].rule);
			if (!last)
				e |= dk_buf_printf(&c->out, " s%d-%zu-0", id, i + 1);
			if (!pr[i].required) {
				if (last)
					e |= dk_buf_puts(&c->out, " | ");
				else
					e |= dk_buf_printf(&c->out, " | s%d-%zu-%d", id, i + 1, f);
			}
			e |= dk_buf_putc(&c->out, '\n');
			if (e) {
				free(kj);
				cfail(c, path, "out of memory");
				goto out;
			}
		}
		free(kj);
	}
	rc = dk_buf_printf(b, "\"{\" ws s%d-0-1 ws \"}\"", id);
	/* an object whose properties are all optional may be empty: "{" ws ws "}"
	 * is then possible; harmless (two bounded runs) */
out:
	free(pr);
	return rc ? -1 : 0;
}

static const char *const type_names[] = {"string", "number", "integer", "boolean", "null",
					 "object", "array", NULL};

static int gen_type(struct sc *c, const json_t *s, const char *path, const char *t, int id,
		    struct dk_buf *b)
{
	if (!strcmp(t, "string"))
		return gen_string(c, s, path, b);
	if (!strcmp(t, "number"))
		return dk_buf_puts(b, "jnum");
	if (!strcmp(t, "integer"))
		return dk_buf_puts(b, "jint");
	if (!strcmp(t, "boolean"))
		return dk_buf_puts(b, "jbool");
	if (!strcmp(t, "null"))
		return dk_buf_puts(b, "jnull");
	if (!strcmp(t, "object"))
		return gen_object(c, s, path, id, b);
	if (!strcmp(t, "array"))
		return gen_array(c, s, path, b);
	char p[512];
	path_join(p, sizeof p, path, "type");
	return cfail(c, p, "unknown type '%s'", t);
}

static int gen_body(struct sc *c, const json_t *s, const char *path, int id, struct dk_buf *b)
{
	char p[512];
	const char *k;
	json_t *x;
	json_object_foreach((json_t *)s, k, x) {
		if (!in_list(annotations, k) && !in_list(supported, k)) {
			path_join(p, sizeof p, path, k);
			return cfail(c, p, "unsupported keyword '%s'", k);
		}
	}
	bool nullable = json_is_true(json_object_get(s, "nullable"));
	const json_t *ref = json_object_get(s, "$ref");
	if (ref) {
		path_join(p, sizeof p, path, "$ref");
		const json_t *t = json_is_string(ref) ? resolve_ref(c->root, json_string_value(ref)) : NULL;
		if (!t)
			return cfail(c, p, "cannot resolve '%s' (supported: #, #/definitions/x, #/$defs/x)",
				     json_is_string(ref) ? json_string_value(ref) : "?");
		if (json_object_size(s) > 1) {
			json_object_foreach((json_t *)s, k, x)
				if (strcmp(k, "$ref") && !in_list(annotations, k))
					return cfail(c, p, "$ref beside other keywords is not supported");
		}
		char r[32];
		if (gen(c, t, p, r))
			return -1;
		return dk_buf_puts(b, r);
	}
	const json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
	if (en || cn) {
		if (en && !json_is_array(en)) {
			path_join(p, sizeof p, path, "enum");
			return cfail(c, p, "must be an array");
		}
		/* keep only values the whole schema accepts */
		json_t *vals = json_array();
		if (cn)
			json_array_append(vals, (json_t *)cn);
		else
			json_array_extend(vals, (json_t *)en);
		if (nullable && !cn)
			json_array_append_new(vals, json_null());
		int nalt = 0, e = 0;
		size_t i;
		json_array_foreach(vals, i, x) {
			struct vc vc = {c->root, NULL, 0, 0};
			if (!vnode(&vc, s, x, ""))
				continue;
			e |= dk_buf_puts(b, nalt++ ? " | " : "");
			e |= put_json_lit(b, x);
		}
		json_decref(vals);
		if (e)
			return cfail(c, path, "out of memory");
		if (!nalt) {
			path_join(p, sizeof p, path, cn ? "const" : "enum");
			return cfail(c, p, "no value satisfies the rest of the schema");
		}
		return 0;
	}
	const json_t *alts = json_object_get(s, "anyOf");
	const char *altkw = "anyOf";
	if (!alts) {
		alts = json_object_get(s, "oneOf");
		altkw = "oneOf";
	}
	if (alts) {
		path_join(p, sizeof p, path, altkw);
		if (!json_is_array(alts) || json_array_size(alts) == 0)
			return cfail(c, p, "must be a non-empty array of schemas");
		json_object_foreach((json_t *)s, k, x) {
			if (strcmp(k, altkw) && strcmp(k, "nullable") && !in_list(annotations, k))
				return cfail(c, p, "%s beside '%s' is not supported (move '%s' into each branch)",
					     altkw, k, k);
		}
		size_t i;
		json_array_foreach(alts, i, x) {
			char bp[512], seg[24], r[32];
			snprintf(seg, sizeof seg, "%zu", i);
			path_join(bp, sizeof bp, p, seg);
			if (gen(c, x, bp, r))
				return -1;
			if ((i && dk_buf_puts(b, " | ")) || dk_buf_puts(b, r))
				return cfail(c, path, "out of memory");
		}
		if (nullable && dk_buf_puts(b, " | jnull"))
			return cfail(c, path, "out of memory");
		return 0;
	}
	const json_t *t = json_object_get(s, "type");
	const char *single[1];
	const char **types = single;
	size_t nt = 0;
	const char *list[16];
	if (!t) {
		/* infer from the keywords present */
		if (json_object_get(s, "properties") || json_object_get(s, "required") ||
		    json_object_get(s, "additionalProperties"))
			single[nt++] = "object";
		else if (json_object_get(s, "items") || json_object_get(s, "minItems") ||
			 json_object_get(s, "maxItems"))
			single[nt++] = "array";
		else if (json_object_get(s, "minLength") || json_object_get(s, "maxLength") ||
			 json_object_get(s, "format") || json_object_get(s, "pattern"))
			single[nt++] = "string";
		else
			return dk_buf_puts(b, "jvalue"); /* jvalue includes null */
	} else if (json_is_string(t)) {
		single[nt++] = json_string_value(t);
	} else if (json_is_array(t) && json_array_size(t) > 0 && json_array_size(t) <= 16) {
		types = list;
		size_t i;
		json_array_foreach(t, i, x) {
			path_join(p, sizeof p, path, "type");
			if (!json_is_string(x) || !in_list(type_names, json_string_value(x)))
				return cfail(c, p, "unknown type in list");
			list[nt++] = json_string_value(x);
		}
	} else {
		path_join(p, sizeof p, path, "type");
		return cfail(c, p, "must be a type name or a list of them");
	}
	bool has_null = false;
	for (size_t i = 0; i < nt; i++) {
		if (i && dk_buf_puts(b, " | "))
			return cfail(c, path, "out of memory");
		if (!strcmp(types[i], "null"))
			has_null = true;
		/* "integer" beside "number" is redundant but harmless */
		if (gen_type(c, s, path, types[i], id, b))
			return -1;
	}
	if (nullable && !has_null && dk_buf_puts(b, " | jnull"))
		return cfail(c, path, "out of memory");
	return 0;
}

static int gen(struct sc *c, const json_t *s, const char *path, char name[32])
{
	if (json_is_true(s)) {
		strcpy(name, "jvalue");
		return 0;
	}
	if (json_is_false(s))
		return cfail(c, path, "schema false matches nothing");
	if (!json_is_object(s))
		return cfail(c, path, "a schema must be an object or a boolean");
	for (int i = 0; i < c->nmemo; i++) {
		if (c->memo[i].node == s) {
			snprintf(name, 32, "s%d", c->memo[i].id);
			return 0;
		}
	}
	if (++c->depth > 100)
		return cfail(c, path, "schema nested too deep");
	if (c->nmemo == c->cap) {
		int nc = c->cap ? c->cap * 2 : 32;
		struct memo *m = realloc(c->memo, (size_t)nc * sizeof *m);
		if (!m)
			return cfail(c, path, "out of memory");
		c->memo = m;
		c->cap = nc;
	}
	int id = c->next++;
	c->memo[c->nmemo++] = (struct memo){s, id};
	snprintf(name, 32, "s%d", id);
	struct dk_buf b = {0};
	int rc = gen_body(c, s, path, id, &b);
	if (rc == 0 && b.len == 0)
		rc = cfail(c, path, "empty schema body");
	if (rc == 0) {
		if (dk_buf_printf(&c->out, "s%d ::= %s\n", id, b.data))
			rc = cfail(c, path, "out of memory");
	}
	dk_buf_free(&b);
	c->depth--;
	return rc ? -1 : 0;
}

enum dk_status dk_schema_to_gbnf(const json_t *schema, char **out, char *err, size_t n)
{
	*out = NULL;
	if (err && n)
		err[0] = 0;
	struct sc c;
	memset(&c, 0, sizeof c);
	c.root = schema;
	c.err = err;
	c.n = n;
	char r[32];
	if (!schema) {
		cfail(&c, "", "no schema");
		return DK_SKIP;
	}
	int rc = gen(&c, schema, "", r);
	if (rc == 0 && (dk_buf_printf(&c.out, "root ::= %s\n", r) || dk_buf_puts(&c.out, prelude)))
		rc = cfail(&c, "", "out of memory");
	free(c.memo);
	if (rc) {
		dk_buf_free(&c.out);
		return DK_SKIP;
	}
	*out = dk_buf_steal(&c.out);
	return DK_OK;
}

enum dk_status dk_schema_compile(const json_t *schema, struct dk_grammar **out, char *err, size_t n)
{
	*out = NULL;
	char *text;
	enum dk_status st = dk_schema_to_gbnf(schema, &text, err, n);
	if (st != DK_OK)
		return st;
	struct dk_grammar *g;
	st = dk_grammar_parse(&g, text, strlen(text), "root");
	if (st != DK_OK) {
		if (err && n)
			snprintf(err, n, "schema: cannot compile: %s", dk_grammar_error(g));
		dk_grammar_free(g);
		free(text);
		return DK_SKIP;
	}
	free(text);
	*out = g;
	return DK_OK;
}
