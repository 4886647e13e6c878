/* The table of formats that both detection (dk_extract_format) and
 * dispatch (dk_extract) walk, and the helpers the extractors share.  One
 * file per format beside it: csv.c, json.c, rtf.c, eml.c, office.c (the
 * zip+XML documents and EPUB), pdf.c (through pdftotext); HTML/XML is
 * ../markup.c. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "ingest/extract.h"
#include "util/err.h"

const char *dk_x_ext_of(const char *name)
{
	if (!name)
		return "";
	const char *slash = strrchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	const char *dot = strrchr(base, '.');
	return dot && dot != base ? dot + 1 : "";
}

static bool ext_is(const char *name, const char *const *list)
{
	const char *e = dk_x_ext_of(name);
	for (int i = 0; list[i]; i++)
		if (!strcasecmp(e, list[i]))
			return true;
	return false;
}

static bool prefix(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

int dk_x_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* ---- the extractor table and dispatch ---- */

/* One extractor's entry point: s[0..n) is the raw input, or the input
 * converted to UTF-8 when the entry says decode.  Returns 0, or non-zero
 * with *reason and err set (DK_SKIP). */
typedef int (*dk_extract_fn)(const struct dk_xin *in, const char *fmt, const char *s, size_t n,
			     struct dk_buf *out, const char **reason, char *err, size_t errn);

static int x_pdf(const struct dk_xin *in, const char *fmt, const char *s, size_t n, struct dk_buf *out,
		 const char **reason, char *err, size_t errn)
{
	return dk_x_pdf(in, out, reason, err, errn);
}
static int x_office(const struct dk_xin *in, const char *fmt, const char *s, size_t n, struct dk_buf *out,
		    const char **reason, char *err, size_t errn)
{
	return dk_x_office(in, fmt, out, reason, err, errn);
}
#define DK_XFN(fname, call)                                                                          \
	static int fname(const struct dk_xin *in, const char *fmt, const char *s, size_t n,          \
			 struct dk_buf *out, const char **reason, char *err, size_t errn)           \
	{                                                                                            \
		call;                                                                                \
		return 0;                                                                            \
	}
DK_XFN(x_rtf, dk_x_rtf(s, n, out))
DK_XFN(x_eml, dk_x_eml(s, n, out))
DK_XFN(x_html, dk_x_html(s, n, true, out))
DK_XFN(x_xml, dk_x_html(s, n, false, out))
DK_XFN(x_csv, dk_x_csv(s, n, ',', out))
DK_XFN(x_tsv, dk_x_csv(s, n, '\t', out))
DK_XFN(x_json, dk_x_json(s, n, false, out))
DK_XFN(x_jsonl, dk_x_json(s, n, true, out))
DK_XFN(x_text, dk_buf_append(out, s, n))
#undef DK_XFN

/* How an entry trusts a file name's extension (libmagic does not name
 * every format): */
enum dk_ext_rule {
	EXT_NONE,
	EXT_ZIP,   /* when libmagic says application/zip or application/octet-stream */
	EXT_OCTET, /* when it says application/octet-stream */
	EXT_TEXT,  /* when the content is text (a charset other than binary) */
};

/* One format: detection walks the table in order and takes the first entry
 * that matches (so the order is the precedence); extraction calls its fn. */
struct dk_extractor {
	const char *name;            /* the format, as records name it */
	const char *const *mimes;    /* libmagic types that are this format */
	const char *const *exts;     /* extensions trusted under ext_rule */
	enum dk_ext_rule ext_rule;
	bool decode;                 /* fn takes the input converted to UTF-8 */
	bool tidy;                   /* dk_text_tidy the output */
	dk_extract_fn fn;
	bool (*also)(const char *mime, bool text); /* other inputs it takes, or NULL */
};

static bool also_xml(const char *m, bool text)
{
	return prefix(m, "application/") && strstr(m, "+xml") && text;
}
static bool also_text(const char *m, bool text) { return prefix(m, "text/") || text; }

#define L(...) (const char *const[]){__VA_ARGS__, NULL}
static const struct dk_extractor extractors[] = {
	{"docx", L("application/vnd.openxmlformats-officedocument.wordprocessingml.document"), L("docx"),
	 EXT_ZIP, false, true, x_office, NULL},
	{"xlsx", L("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), L("xlsx"),
	 EXT_ZIP, false, true, x_office, NULL},
	{"pptx", L("application/vnd.openxmlformats-officedocument.presentationml.presentation"), L("pptx"),
	 EXT_ZIP, false, true, x_office, NULL},
	{"odt", L("application/vnd.oasis.opendocument.text"), L("odt"), EXT_ZIP, false, true, x_office, NULL},
	{"ods", L("application/vnd.oasis.opendocument.spreadsheet"), L("ods"), EXT_ZIP, false, true, x_office, NULL},
	{"odp", L("application/vnd.oasis.opendocument.presentation"), L("odp"), EXT_ZIP, false, true, x_office, NULL},
	{"epub", L("application/epub+zip"), L("epub"), EXT_ZIP, false, true, x_office, NULL},
	{"pdf", L("application/pdf"), L("pdf"), EXT_OCTET, false, true, x_pdf, NULL},
	{"rtf", L("text/rtf", "application/rtf"), NULL, EXT_NONE, false, true, x_rtf, NULL},
	{"eml", L("message/rfc822", "message/news"), L("eml", "mbox"), EXT_TEXT, false, true, x_eml, NULL},
	{"html", L("text/html", "application/xhtml+xml"), L("html", "htm", "xhtml"), EXT_TEXT, true, true,
	 x_html, NULL},
	{"jsonl", L("application/x-ndjson"), L("jsonl", "ndjson"), EXT_TEXT, true, true, x_jsonl, NULL},
	{"json", L("application/json"), L("json", "geojson"), EXT_TEXT, true, true, x_json, NULL},
	{"xml", L("text/xml", "application/xml", "image/svg+xml"), NULL, EXT_NONE, true, true, x_xml,
	 also_xml},
	{"csv", L("text/csv", "application/csv"), L("csv"), EXT_TEXT, true, true, x_csv, NULL},
	{"tsv", L("text/tab-separated-values"), L("tsv", "tab"), EXT_TEXT, true, true, x_tsv, NULL},
	{"markdown", L("text/markdown"), L("md", "markdown", "mdown", "mkd", "rst"), EXT_TEXT, true, false,
	 x_text, NULL},
	/* the last: anything text/ or with a text charset */
	{"text", NULL, NULL, EXT_NONE, true, false, x_text, also_text},
};
#undef L

static bool in_list(const char *s, const char *const *list)
{
	for (int i = 0; list && list[i]; i++)
		if (!strcmp(s, list[i]))
			return true;
	return false;
}

static const struct dk_extractor *find(const char *mime, const char *charset, const char *name)
{
	const char *m = mime ? mime : "";
	bool text = charset && strcasecmp(charset, "binary") != 0;
	bool octet = !strcmp(m, "application/octet-stream");
	bool zip = octet || !strcmp(m, "application/zip");
	for (size_t i = 0; i < sizeof extractors / sizeof *extractors; i++) {
		const struct dk_extractor *x = &extractors[i];
		if (in_list(m, x->mimes))
			return x;
		if (x->exts && ((x->ext_rule == EXT_ZIP && zip) || (x->ext_rule == EXT_OCTET && octet) ||
				(x->ext_rule == EXT_TEXT && text)) &&
		    ext_is(name, x->exts))
			return x;
		if (x->also && x->also(m, text))
			return x;
	}
	return NULL;
}

const char *dk_extract_format(const char *mime, const char *charset, const char *name)
{
	const struct dk_extractor *x = find(mime, charset, name);
	return x ? x->name : NULL;
}

enum dk_status dk_extract(const struct dk_xin *in, struct dk_buf *out, const char **format,
			  const char **reason, char *err, size_t errn)
{
	*reason = NULL;
	const struct dk_extractor *x = find(in->mime, in->charset, in->name);
	const char *fmt = x ? x->name : NULL;
	*format = fmt;
	if (!x) {
		bool bin = in->charset && !strcasecmp(in->charset, "binary");
		*reason = bin ? "binary" : "unsupported-type";
		return dk_err(err, errn, DK_SKIP, "cannot extract '%s': %s content (%s)", in->name,
			      bin ? "binary" : "unsupported", in->mime ? in->mime : "unknown type");
	}
	int rc;
	if (x->decode) {
		struct dk_buf u = {0};
		char cerr[256];
		if (dk_to_utf8(in->data, in->len, in->charset, &u, cerr, sizeof cerr) != 0) {
			dk_buf_free(&u);
			*reason = "decode-error";
			return dk_err(err, errn, DK_SKIP, "cannot decode '%s': %s", in->name, cerr);
		}
		rc = x->fn(in, fmt, u.data ? u.data : "", u.len, out, reason, err, errn);
		dk_buf_free(&u);
	} else {
		rc = x->fn(in, fmt, in->data, in->len, out, reason, err, errn);
	}
	if (rc != 0)
		return DK_SKIP;
	/* members of zip-based documents and RTF bytes are not checked on the way in */
	if (out->data && (dk_utf8_valid_len(out->data, out->len) != out->len || memchr(out->data, 0, out->len))) {
		struct dk_buf clean = {0};
		dk_utf8_sanitize(out->data, out->len, &clean);
		dk_buf_free(out);
		*out = clean;
	}
	if (x->tidy)
		dk_text_tidy(out);
	if (!out->data)
		dk_buf_puts(out, "");
	return DK_OK;
}
