/* docket inspect: a GGUF file's header, metadata and tensor table, as text
 * for people or as one JSON object for scripts, and whether docket can run
 * it (dk_model_check: the load's checks) and if not why.  Everything shown
 * comes through the validating reader (docket/gguf.h), so a corrupt file
 * gets the reader's message and never a partial dump. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "docket/gguf.h"
#include "docket/model.h"

enum { HEAD_N = 8,         /* array elements shown */
       STR_SHOW = 96,      /* string bytes shown in text unless --full */
       HEAD_STR_SHOW = 32, /* bytes of each string element shown in an array head */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: docket inspect [--json] [--full] MODEL\n"
		"  shows a GGUF file's version, alignment, size, whether docket can run it (and\n"
		"  if not why: architecture, hyper-parameters, tensor types, tokenizer), every\n"
		"  metadata key (type and value; arrays as their type, count and first %d\n"
		"  elements) and every tensor (name, type, shape, bytes, offset in the data\n"
		"  section), then totals.\n"
		"      --json   one JSON object: file, version, alignment, file_size, can_run,\n"
		"               why_not (when it cannot), metadata, tensors, summary\n"
		"      --full   do not shorten long strings (text output)\n"
		"  -m, --model PATH   the same as giving MODEL (default: the default model)\n",
		HEAD_N);
}

static const char *vtype_name(enum dk_gguf_vtype t)
{
	static const char *const n[DK_GGUF_VTYPE_COUNT] = {
		"uint8", "int8",  "uint16", "int16", "uint32", "int32",  "float32",
		"bool",  "string", "array", "uint64", "int64", "float64"};
	return (unsigned)t < DK_GGUF_VTYPE_COUNT ? n[t] : "?";
}

static size_t vtype_size(enum dk_gguf_vtype t)
{
	switch (t) {
	case DK_GGUF_UINT8: case DK_GGUF_INT8: case DK_GGUF_BOOL: return 1;
	case DK_GGUF_UINT16: case DK_GGUF_INT16: return 2;
	case DK_GGUF_UINT32: case DK_GGUF_INT32: case DK_GGUF_FLOAT32: return 4;
	case DK_GGUF_UINT64: case DK_GGUF_INT64: case DK_GGUF_FLOAT64: return 8;
	default: return 0;
	}
}

/* One numeric array element from the file's packed little-endian data (the
 * reader validated the length).  Integers as int64/uint64, floats as double. */
struct num {
	enum { N_INT, N_UINT, N_REAL, N_BOOL } kind;
	int64_t i;
	uint64_t u;
	double d;
};

static struct num num_at(enum dk_gguf_vtype t, const uint8_t *p)
{
	struct num v = {.kind = N_INT};
	switch (t) {
	case DK_GGUF_UINT8: v.i = p[0]; break;
	case DK_GGUF_INT8: v.i = (int8_t)p[0]; break;
	case DK_GGUF_BOOL: v.kind = N_BOOL; v.i = p[0] != 0; break;
	case DK_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); v.i = x; break; }
	case DK_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); v.i = x; break; }
	case DK_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); v.i = x; break; }
	case DK_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); v.i = x; break; }
	case DK_GGUF_INT64: { int64_t x; memcpy(&x, p, 8); v.i = x; break; }
	case DK_GGUF_UINT64: { v.kind = N_UINT; memcpy(&v.u, p, 8); break; }
	case DK_GGUF_FLOAT32: { float x; memcpy(&x, p, 4); v.kind = N_REAL; v.d = x; break; }
	case DK_GGUF_FLOAT64: { v.kind = N_REAL; memcpy(&v.d, p, 8); break; }
	default: break;
	}
	return v;
}

static void num_text(FILE *b, struct num v, enum dk_gguf_vtype t)
{
	switch (v.kind) {
	case N_BOOL: fputs(v.i ? "true" : "false", b); break;
	case N_UINT: fprintf(b, "%" PRIu64, v.u); break;
	case N_REAL: fprintf(b, t == DK_GGUF_FLOAT32 ? "%.9g" : "%.17g", v.d); break;
	default: fprintf(b, "%" PRId64, v.i); break;
	}
}

static json_t *num_json(struct num v)
{
	switch (v.kind) {
	case N_BOOL: return json_boolean(v.i);
	case N_UINT:
		/* jansson integers are signed 64-bit: larger values as text */
		if (v.u > INT64_MAX) {
			char tmp[32];
			snprintf(tmp, sizeof tmp, "%" PRIu64, v.u);
			return json_string(tmp);
		}
		return json_integer((json_int_t)v.u);
	case N_REAL: return json_real(v.d);
	default: return json_integer((json_int_t)v.i);
	}
}

/* A scalar value by key.  The reader gives no raw access to scalars, so
 * this goes through its typed getters, which cover every scalar type;
 * FLOAT64 comes back through float (enough for display). */
static bool scalar_of(const struct dk_gguf *g, const char *key, enum dk_gguf_vtype t,
		      struct num *v)
{
	*v = (struct num){.kind = N_INT};
	switch (t) {
	case DK_GGUF_BOOL: {
		bool x;
		if (!dk_gguf_get_bool(g, key, &x))
			return false;
		v->kind = N_BOOL;
		v->i = x;
		return true;
	}
	case DK_GGUF_FLOAT32:
	case DK_GGUF_FLOAT64: {
		float x;
		if (!dk_gguf_get_f32(g, key, &x))
			return false;
		v->kind = N_REAL;
		v->d = x;
		return true;
	}
	case DK_GGUF_UINT64: {
		int64_t x;
		if (dk_gguf_get_i64(g, key, &x)) {
			v->kind = N_UINT;
			v->u = (uint64_t)x;
			return true;
		}
		/* above INT64_MAX: recover it from the rendering */
		int64_t i = dk_gguf_find(g, key);
		char tmp[64];
		dk_gguf_kv_render(g, i, tmp, sizeof tmp);
		v->kind = N_UINT;
		v->u = strtoull(tmp, NULL, 10);
		return true;
	}
	default:
		return dk_gguf_get_i64(g, key, &v->i);
	}
}

/* Text form of a string: escapes control characters and backslashes so a
 * value stays on one line; cut after max bytes (at a UTF-8 boundary) unless
 * max is 0. */
static void str_text(FILE *b, const char *s, size_t len, size_t max)
{
	size_t n = len;
	if (max && n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--; /* do not split a character */
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '\n': fputs("\\n", b); break;
		case '\t': fputs("\\t", b); break;
		case '\r': fputs("\\r", b); break;
		case '\\': fputs("\\\\", b); break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(b, "\\x%02x", c);
			else
				fputc((char)c, b);
		}
	}
	if (n < len)
		fprintf(b, "... (%zu bytes)", len);
}

/* An array's first elements, as text or as a JSON list. */
static void array_head(const struct dk_gguf *g, const char *key, enum dk_gguf_vtype et,
		       uint64_t count, FILE *text, json_t *list)
{
	const uint8_t *data = et == DK_GGUF_STRING ? NULL : dk_gguf_arr_data(g, key);
	const size_t sz = vtype_size(et);
	for (uint64_t j = 0; j < count && j < HEAD_N; j++) {
		if (text && j)
			fputs(", ", text);
		if (et == DK_GGUF_STRING) {
			const char *s;
			size_t n;
			if (!dk_gguf_arr_str(g, key, j, &s, &n))
				break;
			if (text) {
				fputc('\'', text);
				str_text(text, s, n, HEAD_STR_SHOW);
				fputc('\'', text);
			}
			if (list)
				json_array_append_new(list, json_stringn(s, n));
		} else if (sz && data) {
			struct num v = num_at(et, data + j * sz);
			if (text)
				num_text(text, v, et);
			if (list)
				json_array_append_new(list, num_json(v));
		} else { /* nested arrays: the reader exposes only their outer count */
			if (text)
				fputs("[...]", text);
			if (list)
				json_array_append_new(list, json_null());
		}
	}
	if (text && count > HEAD_N)
		fputs(", ...", text);
}

struct totals {
	int64_t params;
	uint64_t bytes[DK_TYPE_COUNT];
	int64_t count[DK_TYPE_COUNT];
};

static void tally(const struct dk_gguf *g, struct totals *t)
{
	memset(t, 0, sizeof *t);
	for (int64_t i = 0; i < dk_gguf_n_tensors(g); i++) {
		const struct dk_gguf_tensor *x = dk_gguf_tensor(g, i);
		int64_t n = 1;
		for (int d = 0; d < x->n_dims; d++)
			n *= x->ne[d];
		t->params += n;
		if ((unsigned)x->type < DK_TYPE_COUNT) {
			t->bytes[x->type] += x->nbytes;
			t->count[x->type]++;
		}
	}
}

static const char *type_name(enum dk_ttype t)
{
	const char *n = dk_ttype_name(t);
	return n ? n : "?";
}

static void human_bytes(char *buf, size_t n, uint64_t b)
{
	if (b >= (1ull << 30))
		snprintf(buf, n, "%.2f GiB", (double)b / (double)(1ull << 30));
	else if (b >= (1ull << 20))
		snprintf(buf, n, "%.2f MiB", (double)b / (double)(1ull << 20));
	else if (b >= 1024)
		snprintf(buf, n, "%.2f KiB", (double)b / 1024.0);
	else
		snprintf(buf, n, "%" PRIu64 " B", b);
}

static int print_text(const struct dk_gguf *g, const char *path, bool full, const char *why_not)
{
	char hb[32];
	human_bytes(hb, sizeof hb, dk_gguf_file_size(g));
	printf("file       %s\n", path);
	printf("size       %zu bytes (%s)\n", dk_gguf_file_size(g), hb);
	printf("version    %" PRIu32 "\n", dk_gguf_version(g));
	printf("alignment  %zu\n", dk_gguf_alignment(g));
	if (why_not)
		printf("can run    no \u2014 %s\n", why_not);
	else
		printf("can run    yes\n");

	const int64_t nkv = dk_gguf_n_kv(g);
	printf("metadata   %" PRId64 " keys\n", nkv);
	int kw = 0;
	for (int64_t i = 0; i < nkv; i++) {
		int l = (int)strlen(dk_gguf_kv_key(g, i));
		if (l > kw)
			kw = l;
	}
	if (kw > 48)
		kw = 48;
	for (int64_t i = 0; i < nkv; i++) {
		const char *key = dk_gguf_kv_key(g, i);
		enum dk_gguf_vtype t = dk_gguf_kv_type(g, i);
		if (t == DK_GGUF_ARRAY) {
			enum dk_gguf_vtype et = DK_GGUF_UINT8;
			uint64_t count = 0;
			dk_gguf_get_arr(g, key, &et, &count);
			char ty[48];
			snprintf(ty, sizeof ty, "%s[%" PRIu64 "]", vtype_name(et), count);
			fprintf(stdout, "  %-*s  %-16s ", kw, key, ty);
			array_head(g, key, et, count, stdout, NULL);
		} else {
			fprintf(stdout, "  %-*s  %-16s ", kw, key, vtype_name(t));
			if (t == DK_GGUF_STRING) {
				const char *s;
				size_t n;
				if (dk_gguf_get_str(g, key, &s, &n))
					str_text(stdout, s, n, full ? 0 : STR_SHOW);
			} else {
				struct num v;
				if (scalar_of(g, key, t, &v))
					num_text(stdout, v, t);
				else
					fputs("?", stdout);
			}
		}
		putchar('\n');
	}

	const int64_t nt = dk_gguf_n_tensors(g);
	printf("tensors    %" PRId64 "\n", nt);
	int nw = 4;
	for (int64_t i = 0; i < nt; i++) {
		int l = (int)strlen(dk_gguf_tensor(g, i)->name);
		if (l > nw)
			nw = l;
	}
	printf("  %-*s  %-6s  %-22s  %12s  %12s\n", nw, "name", "type", "shape", "bytes", "offset");
	for (int64_t i = 0; i < nt; i++) {
		const struct dk_gguf_tensor *x = dk_gguf_tensor(g, i);
		char shape[96];
		size_t o = 0;
		for (int d = 0; d < x->n_dims && o < sizeof shape; d++)
			o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%" PRId64, d ? " x " : "",
					      x->ne[d]);
		printf("  %-*s  %-6s  %-22s  %12zu  %12" PRIu64 "\n", nw, x->name, type_name(x->type),
		       shape, x->nbytes, x->offset);
	}

	struct totals tt;
	tally(g, &tt);
	uint64_t all = 0;
	for (int t = 0; t < DK_TYPE_COUNT; t++)
		all += tt.bytes[t];
	human_bytes(hb, sizeof hb, all);
	printf("summary    %" PRId64 " tensors, %" PRId64 " parameters, %" PRIu64 " bytes (%s)\n", nt,
	       tt.params, all, hb);
	for (int t = 0; t < DK_TYPE_COUNT; t++) {
		if (!tt.count[t])
			continue;
		human_bytes(hb, sizeof hb, tt.bytes[t]);
		printf("  %-6s  %6" PRId64 " tensors  %14" PRIu64 " bytes (%s)\n",
		       type_name((enum dk_ttype)t), tt.count[t], tt.bytes[t], hb);
	}
	return DK_EXIT_OK;
}

static json_t *meta_json(const struct dk_gguf *g, int64_t i)
{
	const char *key = dk_gguf_kv_key(g, i);
	enum dk_gguf_vtype t = dk_gguf_kv_type(g, i);
	if (t == DK_GGUF_STRING) {
		const char *s;
		size_t n;
		return dk_gguf_get_str(g, key, &s, &n) ? json_stringn(s, n) : json_null();
	}
	if (t == DK_GGUF_ARRAY) {
		enum dk_gguf_vtype et = DK_GGUF_UINT8;
		uint64_t count = 0;
		dk_gguf_get_arr(g, key, &et, &count);
		json_t *head = json_array();
		array_head(g, key, et, count, NULL, head);
		return json_pack("{s:s, s:I, s:o}", "type", vtype_name(et), "count",
				 (json_int_t)count, "head", head);
	}
	struct num v;
	return scalar_of(g, key, t, &v) ? num_json(v) : json_null();
}

static int print_json(const struct dk_gguf *g, const char *path, const char *why_not)
{
	json_t *meta = json_object();
	for (int64_t i = 0; i < dk_gguf_n_kv(g); i++)
		json_object_set_new(meta, dk_gguf_kv_key(g, i), meta_json(g, i));

	json_t *tensors = json_array();
	for (int64_t i = 0; i < dk_gguf_n_tensors(g); i++) {
		const struct dk_gguf_tensor *x = dk_gguf_tensor(g, i);
		json_t *shape = json_array();
		for (int d = 0; d < x->n_dims; d++)
			json_array_append_new(shape, json_integer(x->ne[d]));
		json_array_append_new(tensors,
				      json_pack("{s:s, s:s, s:o, s:I, s:I}", "name", x->name, "type",
						type_name(x->type), "shape", shape, "bytes",
						(json_int_t)x->nbytes, "offset", (json_int_t)x->offset));
	}

	struct totals tt;
	tally(g, &tt);
	json_t *by_type = json_object();
	for (int t = 0; t < DK_TYPE_COUNT; t++)
		if (tt.count[t])
			json_object_set_new(by_type, type_name((enum dk_ttype)t),
					    json_integer((json_int_t)tt.bytes[t]));

	json_t *root = json_pack(
		"{s:s, s:I, s:I, s:I, s:o, s:o, s:{s:I, s:I, s:o}}", "file", path, "version",
		(json_int_t)dk_gguf_version(g), "alignment", (json_int_t)dk_gguf_alignment(g),
		"file_size", (json_int_t)dk_gguf_file_size(g), "metadata", meta, "tensors", tensors,
		"summary", "tensors", (json_int_t)dk_gguf_n_tensors(g), "params",
		(json_int_t)tt.params, "bytes_by_type", by_type);
	if (!root || json_object_set_new(root, "can_run", json_boolean(!why_not)) ||
	    (why_not && json_object_set_new(root, "why_not", json_string(why_not)))) {
		json_decref(root);
		dk_cli_error("out of memory");
		return DK_EXIT_FATAL;
	}
	int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(root);
	return rc == 0 ? DK_EXIT_OK : DK_EXIT_FATAL;
}

int dk_cmd_inspect(int argc, char **argv)
{
	enum { O_JSON = 256, O_FULL, O_HELP };
	static const struct option opts[] = {
		{"json", no_argument, 0, O_JSON}, {"full", no_argument, 0, O_FULL},
		{"model", required_argument, 0, 'm'}, {"help", no_argument, 0, O_HELP},
		{0, 0, 0, 0}};
	bool as_json = false, full = false;
	const char *model = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case O_JSON: as_json = true; break;
		case O_FULL: full = true; break;
		case 'h':
		case O_HELP: usage(stdout); return DK_EXIT_OK;
		default: usage(stderr); return DK_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		if (model || optind + 1 < argc) {
			dk_cli_error("inspect takes one model file");
			return DK_EXIT_USAGE;
		}
		model = argv[optind];
	}
	const char *path = dk_cli_model_path(model);
	if (!path)
		return DK_EXIT_USAGE;

	struct dk_gguf *g = NULL;
	if (dk_gguf_open(&g, path) != DK_OK) {
		if (g)
			dk_cli_error("%s", dk_gguf_error(g));
		else
			dk_cli_error("cannot load '%s': out of memory", path);
		dk_gguf_free(g);
		return DK_EXIT_FATAL;
	}
	char why[DK_ERRMSG_MAX];
	const char *why_not = dk_model_check(path, why, sizeof why) == DK_OK ? NULL : why;
	int rc = as_json ? print_json(g, path, why_not) : print_text(g, path, full, why_not);
	dk_gguf_free(g);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		dk_cli_error("cannot write the output");
		return DK_EXIT_FATAL;
	}
	return rc;
}
