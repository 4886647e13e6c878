#include "docjson.h"

#include <string.h>

#include "extract.h"

json_t *dk_json_strn(const char *s, size_t n)
{
	if (!s)
		return json_null();
	if (dk_utf8_valid_len(s, n) == n && !memchr(s, 0, n))
		return json_stringn(s, n);
	struct dk_buf b = {0};
	dk_utf8_sanitize(s, n, &b);
	json_t *j = json_stringn(b.data ? b.data : "", b.len);
	dk_buf_free(&b);
	return j;
}

json_t *dk_json_str(const char *s)
{
	return s ? dk_json_strn(s, strlen(s)) : json_null();
}

json_t *dk_doc_to_json(const struct dk_doc *d)
{
	json_t *o = json_object();
	json_object_set_new(o, "path", dk_json_str(d->path));
	if (d->member) {
		json_object_set_new(o, "fs_path", dk_json_str(d->fs_path));
		json_object_set_new(o, "member", dk_json_str(d->member));
	}
	json_object_set_new(o, "mime", dk_json_str(d->mime));
	json_object_set_new(o, "charset", dk_json_str(d->charset));
	json_object_set_new(o, "bytes", json_integer((json_int_t)d->bytes));
	if (d->sha256[0])
		json_object_set_new(o, "sha256", json_string(d->sha256));
	json_object_set_new(o, "action", json_string(d->action == DK_DOC_EXTRACT ? "extract" : "skip"));
	if (d->action == DK_DOC_SKIP) {
		json_object_set_new(o, "skip_reason", json_string(d->skip_reason ? d->skip_reason : "unsupported-type"));
		if (d->detail)
			json_object_set_new(o, "detail", dk_json_str(d->detail));
	}
	if (d->format)
		json_object_set_new(o, "format", json_string(d->format));
	if (d->action == DK_DOC_EXTRACT && d->text) {
		json_object_set_new(o, "text_bytes", json_integer((json_int_t)d->text_len));
		if (d->truncated)
			json_object_set_new(o, "truncated", json_true());
	}
	return o;
}

json_t *dk_chunk_to_json(const struct dk_doc *d, const struct dk_chunk *c, bool with_text)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "type", json_string("chunk"));
	json_object_set_new(o, "path", dk_json_str(d->path));
	json_object_set_new(o, "doc_sha256", json_string(d->sha256));
	json_object_set_new(o, "id", json_string(c->id));
	json_object_set_new(o, "index", json_integer(c->index));
	json_object_set_new(o, "count", json_integer(c->count));
	json_object_set_new(o, "start", json_integer((json_int_t)c->start));
	json_object_set_new(o, "end", json_integer((json_int_t)c->end));
	json_object_set_new(o, "tokens", json_integer(c->tokens));
	if (with_text)
		json_object_set_new(o, "text", dk_json_strn(d->text + c->start, c->end - c->start));
	return o;
}
