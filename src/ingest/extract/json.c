/* JSON and JSON Lines rendered as indented key: value text (dk_x_json). */
#include <ctype.h>
#include <jansson.h>
#include <string.h>

#include "ingest/extract.h"

/* ---- JSON ---- */

static void indent(struct dk_buf *out, int d)
{
	for (int i = 0; i < d; i++)
		dk_buf_puts(out, "  ");
}

static void json_scalar(struct dk_buf *out, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		dk_buf_append(out, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		dk_buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		dk_buf_printf(out, "%.17g", json_real_value(v));
		break;
	case JSON_TRUE:
		dk_buf_puts(out, "true");
		break;
	case JSON_FALSE:
		dk_buf_puts(out, "false");
		break;
	case JSON_NULL:
		dk_buf_puts(out, "null");
		break;
	default:
		break;
	}
}

static bool is_container(json_t *v)
{
	return json_is_object(v) || json_is_array(v);
}

/* Renders as indented "key: value" lines, arrays as "- item" lines. */
static void json_render(struct dk_buf *out, json_t *v, int d)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x) {
			indent(out, d);
			dk_buf_puts(out, k);
			if (is_container(x) && (json_is_object(x) ? json_object_size(x) : json_array_size(x))) {
				dk_buf_puts(out, ":\n");
				json_render(out, x, d + 1);
			} else {
				dk_buf_puts(out, ": ");
				if (is_container(x))
					dk_buf_puts(out, json_is_object(x) ? "{}" : "[]");
				else
					json_scalar(out, x);
				dk_buf_putc(out, '\n');
			}
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			indent(out, d);
			if (is_container(x)) {
				dk_buf_puts(out, "-\n");
				json_render(out, x, d + 1);
			} else {
				dk_buf_puts(out, "- ");
				json_scalar(out, x);
				dk_buf_putc(out, '\n');
			}
		}
	} else {
		indent(out, d);
		json_scalar(out, v);
		dk_buf_putc(out, '\n');
	}
}

void dk_x_json(const char *s0, size_t n0, bool lines, struct dk_buf *out)
{
	struct dk_buf clean = {0};
	dk_utf8_sanitize(s0, n0, &clean);
	const char *s = clean.data ? clean.data : "";
	size_t n = clean.len;
	json_error_t e;
	if (!lines) {
		json_t *v = json_loadb(s, n, JSON_DECODE_ANY, &e);
		if (v) {
			json_render(out, v, 0);
			json_decref(v);
			dk_buf_free(&clean);
			return;
		}
		/* not one document: maybe JSON lines, else keep the text */
	}
	size_t i = 0;
	bool first = true;
	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - s) : n;
		size_t a = i, b = end;
		while (a < b && isspace((unsigned char)s[a]))
			a++;
		while (b > a && isspace((unsigned char)s[b - 1]))
			b--;
		if (b > a) {
			if (!first)
				dk_buf_putc(out, '\n');
			first = false;
			json_t *v = json_loadb(s + a, b - a, JSON_DECODE_ANY, &e);
			if (v) {
				json_render(out, v, 0);
				json_decref(v);
			} else {
				dk_buf_append(out, s + a, b - a);
				dk_buf_putc(out, '\n');
			}
		}
		i = end + 1;
	}
	dk_buf_free(&clean);
}
