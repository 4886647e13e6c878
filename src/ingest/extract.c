/* The extractors for CSV, JSON, RTF, email, the zip+XML office formats,
 * EPUB and PDF (through pdftotext), and the table of formats that both
 * detection (dk_extract_format) and dispatch (dk_extract) walk. */
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "extract.h"
#include "markup.h"
#include "util/err.h"

static const char *ext_of(const char *name)
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
	const char *e = ext_of(name);
	for (int i = 0; list[i]; i++)
		if (!strcasecmp(e, list[i]))
			return true;
	return false;
}

static bool prefix(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

/* ---- CSV ---- */

/* Parses one record starting at *pos; fields appended to f as NUL-separated
 * strings, count in *nf.  Returns false at end of input. */
static bool csv_record(const char *s, size_t n, size_t *pos, char delim, struct dk_buf *f, size_t *offs,
		       size_t maxf, size_t *nf)
{
	size_t i = *pos;
	if (i >= n)
		return false;
	dk_buf_clear(f);
	*nf = 0;
	for (;;) {
		if (*nf < maxf)
			offs[*nf] = f->len;
		bool quoted = i < n && s[i] == '"';
		if (quoted) {
			i++;
			while (i < n) {
				if (s[i] == '"') {
					if (i + 1 < n && s[i + 1] == '"') {
						dk_buf_putc(f, '"');
						i += 2;
						continue;
					}
					i++;
					break;
				}
				dk_buf_putc(f, s[i++]);
			}
		}
		while (i < n && s[i] != delim && s[i] != '\n')
			dk_buf_putc(f, s[i++]);
		dk_buf_putc(f, 0);
		if (*nf < maxf)
			(*nf)++;
		if (i < n && s[i] == delim) {
			i++;
			continue;
		}
		if (i < n)
			i++; /* '\n' */
		break;
	}
	*pos = i;
	return true;
}

static void trim_put(struct dk_buf *out, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	size_t l = strlen(v);
	while (l && (v[l - 1] == ' ' || v[l - 1] == '\t' || v[l - 1] == '\r'))
		l--;
	/* a value with embedded newlines stays on one logical line */
	for (size_t i = 0; i < l; i++)
		dk_buf_putc(out, v[i] == '\n' ? ' ' : v[i]);
}

/* A first row is a header when its fields are all non-empty and none is a number. */
static bool csv_is_header(const struct dk_buf *hdr, const size_t *off, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		const char *v = hdr->data + off[k];
		while (*v == ' ')
			v++;
		if (!*v)
			return false;
		char *end;
		strtod(v, &end);
		while (*end == ' ' || *end == '\r')
			end++;
		if (end != v && !*end)
			return false;
	}
	return true;
}

void dk_x_csv(const char *s0, size_t n0, char delim, struct dk_buf *out)
{
	struct dk_buf clean = {0};
	dk_utf8_sanitize(s0, n0, &clean);
	const char *s = clean.data ? clean.data : "";
	size_t n = clean.len;
	if (!delim) {
		const char *nl = memchr(s, '\n', n);
		size_t l = nl ? (size_t)(nl - s) : n;
		size_t tabs = 0, commas = 0, semis = 0;
		for (size_t i = 0; i < l; i++) {
			tabs += s[i] == '\t';
			commas += s[i] == ',';
			semis += s[i] == ';';
		}
		delim = tabs > commas && tabs >= semis ? '\t' : (semis > commas ? ';' : ',');
	}
	enum { MAXF = 1024 };
	size_t *hoff = calloc(MAXF, sizeof *hoff), *offs = calloc(MAXF, sizeof *offs);
	struct dk_buf hdr = {0}, f = {0};
	size_t nh = 0, nf = 0, pos = 0;
	if (!hoff || !offs)
		goto done;
	if (!csv_record(s, n, &pos, delim, &hdr, hoff, MAXF, &nh))
		goto done;
	if (!csv_is_header(&hdr, hoff, nh)) {
		/* headerless (e.g. OCR boxes "x1,y1,...,text"): rows as lines of values */
		pos = 0;
		while (csv_record(s, n, &pos, delim, &f, offs, MAXF, &nf)) {
			for (size_t k = 0; k < nf; k++) {
				if (k)
					dk_buf_puts(out, ", ");
				trim_put(out, f.data + offs[k]);
			}
			dk_buf_putc(out, '\n');
		}
		goto done;
	}
	bool rows = false;
	while (csv_record(s, n, &pos, delim, &f, offs, MAXF, &nf)) {
		if (nf == 1 && !f.data[offs[0]])
			continue; /* blank line */
		if (rows)
			dk_buf_putc(out, '\n');
		rows = true;
		for (size_t k = 0; k < nf; k++) {
			const char *v = f.data + offs[k];
			if (!*v)
				continue;
			if (k < nh && hdr.data[hoff[k]])
				trim_put(out, hdr.data + hoff[k]);
			else
				dk_buf_printf(out, "column %zu", k + 1);
			dk_buf_puts(out, ": ");
			trim_put(out, v);
			dk_buf_putc(out, '\n');
		}
	}
	if (!rows) { /* a header alone is still text */
		for (size_t k = 0; k < nh; k++) {
			if (k)
				dk_buf_puts(out, ", ");
			trim_put(out, hdr.data + hoff[k]);
		}
		dk_buf_putc(out, '\n');
	}
done:
	free(hoff);
	free(offs);
	dk_buf_free(&hdr);
	dk_buf_free(&f);
	dk_buf_free(&clean);
}

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

/* ---- RTF ---- */

static const uint16_t cp1252_hi[32] = {
	0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
	0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
	0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178,
};

static uint32_t cp1252(unsigned b)
{
	return b >= 0x80 && b < 0xA0 ? cp1252_hi[b - 0x80] : b;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

void dk_x_rtf(const char *s, size_t n, struct dk_buf *out)
{
	enum { MAXD = 256 };
	bool skip[MAXD];
	int uc[MAXD];
	int d = 0;
	skip[0] = false;
	uc[0] = 1;
	int pending_skip = 0; /* chars to drop after \uN */
	bool dest_next = false;
	size_t i = 0;
	while (i < n) {
		char c = s[i];
		if (c == '{') {
			if (d + 1 < MAXD) {
				d++;
				skip[d] = skip[d - 1];
				uc[d] = uc[d - 1];
			} else {
				d++; /* too deep: nested beyond the stack inherit "skip" */
			}
			i++;
			continue;
		}
		if (c == '}') {
			if (d > 0)
				d--;
			pending_skip = 0;
			i++;
			continue;
		}
		int cd = d < MAXD ? d : MAXD - 1;
		bool sk = skip[cd] || d >= MAXD;
		if (c == '\\' && i + 1 < n) {
			char x = s[i + 1];
			if (isalpha((unsigned char)x)) {
				size_t j = i + 1;
				char word[32];
				size_t wl = 0;
				while (j < n && isalpha((unsigned char)s[j])) {
					if (wl < sizeof word - 1)
						word[wl++] = s[j];
					j++;
				}
				word[wl] = 0;
				bool has = false, neg = false;
				long v = 0;
				if (j < n && s[j] == '-') {
					neg = true;
					j++;
				}
				while (j < n && isdigit((unsigned char)s[j])) {
					if (v < 100000000)
						v = v * 10 + (s[j] - '0');
					has = true;
					j++;
				}
				if (neg)
					v = -v;
				if (j < n && s[j] == ' ')
					j++;
				i = j;
				static const char *const dests[] = {"fonttbl", "colortbl", "stylesheet", "info", "pict",
								    "object", "header", "footer", "headerl", "headerr",
								    "footerl", "footerr", "themedata", "colorschememapping",
								    "datastore", "latentstyles", "listtable", "listoverridetable",
								    "rsidtbl", "generator", "xmlnstbl", "fldinst", "filetbl",
								    "revtbl", "bkmkstart", "bkmkend", NULL};
				bool isdest = false;
				for (int k = 0; dests[k]; k++)
					if (!strcmp(word, dests[k]))
						isdest = true;
				if (isdest || dest_next) {
					if (d < MAXD)
						skip[d] = true;
					dest_next = false;
					continue;
				}
				if (!strcmp(word, "bin") && has && v > 0) {
					i += (size_t)v < n - i ? (size_t)v : n - i;
					continue;
				}
				if (!strcmp(word, "uc") && has) {
					if (d < MAXD)
						uc[d] = (int)(v < 0 ? 0 : v > 10 ? 10 : v);
					continue;
				}
				if (sk)
					continue;
				if (!strcmp(word, "par") || !strcmp(word, "line") || !strcmp(word, "row") ||
				    !strcmp(word, "sect") || !strcmp(word, "page"))
					dk_buf_putc(out, '\n');
				else if (!strcmp(word, "tab") || !strcmp(word, "cell"))
					dk_buf_putc(out, '\t');
				else if (!strcmp(word, "emdash"))
					dk_utf8_put(out, 0x2014);
				else if (!strcmp(word, "endash"))
					dk_utf8_put(out, 0x2013);
				else if (!strcmp(word, "lquote"))
					dk_utf8_put(out, 0x2018);
				else if (!strcmp(word, "rquote"))
					dk_utf8_put(out, 0x2019);
				else if (!strcmp(word, "ldblquote"))
					dk_utf8_put(out, 0x201C);
				else if (!strcmp(word, "rdblquote"))
					dk_utf8_put(out, 0x201D);
				else if (!strcmp(word, "bullet"))
					dk_utf8_put(out, 0x2022);
				else if (!strcmp(word, "u") && has) {
					dk_utf8_put(out, (uint32_t)(v < 0 ? v + 65536 : v));
					pending_skip = uc[cd];
				}
				continue;
			}
			i += 2;
			if (x == '*') {
				dest_next = true;
				continue;
			}
			if (x == '\'' && i + 1 < n + 1) {
				int h1 = i < n ? hexval(s[i]) : -1, h2 = i + 1 < n ? hexval(s[i + 1]) : -1;
				if (h1 >= 0 && h2 >= 0) {
					i += 2;
					if (pending_skip > 0) {
						pending_skip--;
						continue;
					}
					if (!sk)
						dk_utf8_put(out, cp1252((unsigned)(h1 * 16 + h2)));
				}
				continue;
			}
			if (sk)
				continue;
			if (x == '\\' || x == '{' || x == '}')
				dk_buf_putc(out, x);
			else if (x == '~')
				dk_buf_putc(out, ' ');
			else if (x == '_')
				dk_buf_putc(out, '-');
			else if (x == '\n' || x == '\r')
				dk_buf_putc(out, '\n');
			continue;
		}
		i++;
		if (c == '\r' || c == '\n')
			continue;
		if (pending_skip > 0) {
			pending_skip--;
			continue;
		}
		if (!sk)
			dk_utf8_put(out, cp1252((unsigned char)c));
	}
	/* \uN and \'hh can produce bad sequences only through cp1252 of
	 * multibyte source bytes: the output above is valid UTF-8 by construction. */
}

/* ---- email ---- */

struct hdr {
	const char *name;
	size_t nlen;
	struct dk_buf val; /* unfolded */
};

/* Parses headers into h (up to maxh); returns offset of the body. */
static size_t parse_headers(const char *s, size_t n, struct hdr *h, size_t maxh, size_t *nh)
{
	size_t i = 0;
	*nh = 0;
	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - s) : n;
		size_t le = end;
		if (le > i && s[le - 1] == '\r')
			le--;
		if (le == i)
			return nl ? end + 1 : n; /* blank line: body starts */
		if ((s[i] == ' ' || s[i] == '\t') && *nh) {
			dk_buf_putc(&h[*nh - 1].val, ' ');
			size_t a = i;
			while (a < le && (s[a] == ' ' || s[a] == '\t'))
				a++;
			dk_buf_append(&h[*nh - 1].val, s + a, le - a);
		} else {
			const char *colon = memchr(s + i, ':', le - i);
			if (!colon)
				return i; /* not a header: the body starts here */
			if (*nh < maxh) {
				struct hdr *x = &h[(*nh)++];
				x->name = s + i;
				x->nlen = (size_t)(colon - (s + i));
				dk_buf_clear(&x->val);
				const char *v = colon + 1;
				while (v < s + le && (*v == ' ' || *v == '\t'))
					v++;
				dk_buf_append(&x->val, v, (size_t)(s + le - v));
			}
		}
		i = nl ? end + 1 : n;
	}
	return n;
}

static const char *hget(struct hdr *h, size_t nh, const char *name)
{
	for (size_t k = 0; k < nh; k++)
		if (h[k].nlen == strlen(name) && !strncasecmp(h[k].name, name, h[k].nlen))
			return h[k].val.data ? h[k].val.data : "";
	return NULL;
}

/* Parameter of a header value, e.g. boundary="x" (copied into v). */
static bool hparam(const char *val, const char *key, char *v, size_t vn)
{
	if (!val)
		return false;
	size_t kl = strlen(key);
	for (const char *p = val; *p; p++) {
		if ((p == val || p[-1] == ';' || p[-1] == ' ' || p[-1] == '\t') && !strncasecmp(p, key, kl) && p[kl] == '=') {
			p += kl + 1;
			size_t l = 0;
			if (*p == '"') {
				p++;
				while (p[l] && p[l] != '"')
					l++;
			} else {
				while (p[l] && p[l] != ';' && !isspace((unsigned char)p[l]))
					l++;
			}
			if (l >= vn)
				l = vn - 1;
			memcpy(v, p, l);
			v[l] = 0;
			return true;
		}
	}
	return false;
}

static void b64_decode(const char *s, size_t n, struct dk_buf *out)
{
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int v;
		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+' || c == '-')
			v = 62;
		else if (c == '/' || c == '_')
			v = 63;
		else
			continue;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dk_buf_putc(out, (char)((acc >> bits) & 0xFF));
		}
	}
}

static void qp_decode(const char *s, size_t n, bool header, struct dk_buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '=' && i + 1 < n && (s[i + 1] == '\n' || s[i + 1] == '\r')) {
			i++;
			if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
				i++;
		} else if (s[i] == '=' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			dk_buf_putc(out, (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
			i += 2;
		} else if (header && s[i] == '_') {
			dk_buf_putc(out, ' ');
		} else {
			dk_buf_putc(out, s[i]);
		}
	}
}

/* Decodes RFC 2047 encoded words (=?cs?B?...?=) in a header value. */
static void header_decode(const char *v, struct dk_buf *out)
{
	size_t n = strlen(v);
	size_t i = 0;
	while (i < n) {
		const char *ew = strstr(v + i, "=?");
		if (!ew) {
			dk_utf8_sanitize(v + i, n - i, out);
			return;
		}
		size_t at = (size_t)(ew - v);
		const char *q1 = strchr(ew + 2, '?');
		const char *q2 = q1 ? strchr(q1 + 1, '?') : NULL;
		const char *end = q2 ? strstr(q2 + 1, "?=") : NULL;
		if (!q1 || !q2 || !end || q2 != q1 + 2) {
			dk_utf8_sanitize(v + i, at + 2 - i, out);
			i = at + 2;
			continue;
		}
		/* whitespace between two encoded words is dropped */
		bool ws = true;
		for (size_t k = i; k < at; k++)
			if (!isspace((unsigned char)v[k]))
				ws = false;
		if (!ws || i == 0)
			dk_utf8_sanitize(v + i, at - i, out);
		char cs[64];
		size_t cl = (size_t)(q1 - (ew + 2));
		if (cl >= sizeof cs)
			cl = sizeof cs - 1;
		memcpy(cs, ew + 2, cl);
		cs[cl] = 0;
		struct dk_buf raw = {0};
		if (q1[1] == 'B' || q1[1] == 'b')
			b64_decode(q2 + 1, (size_t)(end - (q2 + 1)), &raw);
		else
			qp_decode(q2 + 1, (size_t)(end - (q2 + 1)), true, &raw);
		char err[128];
		if (dk_to_utf8(raw.data ? raw.data : "", raw.len, cs, out, err, sizeof err) != 0)
			dk_utf8_sanitize(raw.data ? raw.data : "", raw.len, out);
		dk_buf_free(&raw);
		i = (size_t)(end - v) + 2;
	}
}

static void eml_part(const char *s, size_t n, struct dk_buf *out, int depth);

static void eml_body(const char *body, size_t bn, struct hdr *h, size_t nh, struct dk_buf *out, int depth)
{
	const char *ct = hget(h, nh, "Content-Type");
	const char *cte = hget(h, nh, "Content-Transfer-Encoding");
	const char *cd = hget(h, nh, "Content-Disposition");
	char boundary[256], cs[64];
	if (ct && !strncasecmp(ct, "multipart/", 10) && hparam(ct, "boundary", boundary, sizeof boundary) && depth < 8) {
		bool alt = !strncasecmp(ct, "multipart/alternative", 21);
		char delim[260];
		snprintf(delim, sizeof delim, "--%s", boundary);
		size_t dl = strlen(delim);
		const char *p = body, *e = body + bn;
		const char *cur = NULL;
		/* parts of an alternative: keep the first text/plain, else the first */
		const char *best = NULL;
		size_t bestn = 0;
		bool best_plain = false;
		while (p < e) {
			const char *hit = memmem(p, (size_t)(e - p), delim, dl);
			if (!hit)
				break;
			if (cur) {
				size_t pn = (size_t)(hit - cur);
				if (alt) {
					struct hdr ph[16] = {0};
					size_t pnh;
					parse_headers(cur, pn, ph, 16, &pnh);
					const char *pct = hget(ph, pnh, "Content-Type");
					bool plain = !pct || !strncasecmp(pct, "text/plain", 10);
					if (!best || (plain && !best_plain)) {
						best = cur;
						bestn = pn;
						best_plain = plain;
					}
					for (int k = 0; k < 16; k++)
						dk_buf_free(&ph[k].val);
				} else {
					eml_part(cur, pn, out, depth + 1);
				}
			}
			p = hit + dl;
			if (p + 2 <= e && p[0] == '-' && p[1] == '-')
				break;
			const char *nl = memchr(p, '\n', (size_t)(e - p));
			cur = nl ? nl + 1 : e;
			p = cur;
		}
		if (alt && best)
			eml_part(best, bestn, out, depth + 1);
		return;
	}
	if (cd && !strncasecmp(cd, "attachment", 10)) {
		char fn[256];
		if (hparam(cd, "filename", fn, sizeof fn))
			dk_buf_printf(out, "[attachment: %s]\n", fn);
		else
			dk_buf_puts(out, "[attachment]\n");
		return;
	}
	if (ct && strncasecmp(ct, "text/", 5) && strncasecmp(ct, "message/", 8)) {
		dk_buf_printf(out, "[%.*s part]\n", (int)strcspn(ct, ";"), ct);
		return;
	}
	struct dk_buf raw = {0};
	if (cte && !strncasecmp(cte, "base64", 6))
		b64_decode(body, bn, &raw);
	else if (cte && !strncasecmp(cte, "quoted-printable", 16))
		qp_decode(body, bn, false, &raw);
	else
		dk_buf_append(&raw, body, bn);
	struct dk_buf txt = {0};
	char err[128];
	if (!hparam(ct, "charset", cs, sizeof cs))
		strcpy(cs, "utf-8");
	if (dk_to_utf8(raw.data ? raw.data : "", raw.len, cs, &txt, err, sizeof err) != 0)
		dk_utf8_sanitize(raw.data ? raw.data : "", raw.len, &txt);
	if (ct && !strncasecmp(ct, "text/html", 9))
		dk_x_html(txt.data ? txt.data : "", txt.len, true, out);
	else if (ct && !strncasecmp(ct, "message/rfc822", 14))
		eml_part(txt.data ? txt.data : "", txt.len, out, depth + 1);
	else
		dk_buf_append(out, txt.data ? txt.data : "", txt.len);
	dk_buf_putc(out, '\n');
	dk_buf_free(&raw);
	dk_buf_free(&txt);
}

static void eml_part(const char *s, size_t n, struct dk_buf *out, int depth)
{
	struct hdr h[64] = {0};
	size_t nh;
	size_t body = parse_headers(s, n, h, 64, &nh);
	if (depth == 0 || hget(h, nh, "Subject")) {
		static const char *const show[] = {"From", "To", "Cc", "Date", "Subject", NULL};
		for (int k = 0; show[k]; k++) {
			const char *v = hget(h, nh, show[k]);
			if (v) {
				dk_buf_printf(out, "%s: ", show[k]);
				header_decode(v, out);
				dk_buf_putc(out, '\n');
			}
		}
		dk_buf_putc(out, '\n');
	}
	eml_body(s + body, n - body, h, nh, out, depth);
	for (int k = 0; k < 64; k++)
		dk_buf_free(&h[k].val);
}

void dk_x_eml(const char *s, size_t n, struct dk_buf *out)
{
	struct dk_buf tmp = {0};
	eml_part(s, n, &tmp, 0);
	dk_utf8_sanitize(tmp.data ? tmp.data : "", tmp.len, out);
	dk_buf_free(&tmp);
}

/* ---- zip + XML documents ---- */

struct zmember {
	char *name;
	struct dk_buf data;
};

struct zdoc {
	struct zmember *m;
	size_t n;
};

static void zdoc_free(struct zdoc *z)
{
	for (size_t i = 0; i < z->n; i++) {
		free(z->m[i].name);
		dk_buf_free(&z->m[i].data);
	}
	free(z->m);
	z->m = NULL;
	z->n = 0;
}

static struct dk_buf *zget(struct zdoc *z, const char *name)
{
	for (size_t i = 0; i < z->n; i++)
		if (!strcmp(z->m[i].name, name))
			return &z->m[i].data;
	return NULL;
}

/* Loads the members accepted by want() into z.  Returns 0, or -1 with reason/err. */
static int zload(const struct dk_xin *in, bool (*want)(const char *), struct zdoc *z, const char **reason,
		 char *err, size_t errn)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_zip(a);
	int rc = 0;
	uint64_t total = 0;
	uint64_t cap = in->max_zip_bytes ? in->max_zip_bytes : (256u << 20);
	if (archive_read_open_memory(a, in->data, in->len) != ARCHIVE_OK) {
		*reason = "decode-error";
		dk_err(err, errn, DK_SKIP, "cannot open '%s': %s", in->name, archive_error_string(a));
		archive_read_free(a);
		return -1;
	}
	struct archive_entry *e;
	for (;;) {
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			if (z->n)
				break; /* keep what was read (e.g. a trailing directory is damaged) */
			*reason = "decode-error";
			dk_err(err, errn, DK_SKIP, "cannot read '%s': %s", in->name, archive_error_string(a));
			rc = -1;
			break;
		}
		const char *nm = archive_entry_pathname(e);
		if (!nm || !want(nm))
			continue;
		if (archive_entry_is_encrypted(e)) {
			*reason = "encrypted";
			dk_err(err, errn, DK_SKIP, "cannot read '%s': member '%s' is encrypted", in->name, nm);
			rc = -1;
			break;
		}
		struct zmember *nm2 = realloc(z->m, (z->n + 1) * sizeof *z->m);
		if (!nm2) {
			rc = -1;
			*reason = "limit-exceeded";
			dk_err(err, errn, DK_SKIP, "cannot read '%s': out of memory", in->name);
			break;
		}
		z->m = nm2;
		struct zmember *m = &z->m[z->n++];
		m->name = strdup(nm);
		memset(&m->data, 0, sizeof m->data);
		char buf[65536];
		ssize_t k;
		while ((k = archive_read_data(a, buf, sizeof buf)) > 0) {
			total += (uint64_t)k;
			if (total > cap) {
				*reason = "limit-exceeded";
				dk_err(err, errn, DK_SKIP, "cannot read '%s': expands beyond %llu bytes", in->name,
				       (unsigned long long)cap);
				rc = -1;
				goto out;
			}
			dk_buf_append(&m->data, buf, (size_t)k);
		}
		if (k < 0) {
			*reason = "decode-error";
			dk_err(err, errn, DK_SKIP, "cannot read '%s': %s", in->name, archive_error_string(a));
			rc = -1;
			break;
		}
	}
out:
	archive_read_free(a);
	return rc;
}

struct oxml {
	struct dk_buf *out;
	int fmt;       /* 0 docx, 1 pptx, 2 xlsx sheet, 3 xlsx strings, 4 odf */
	bool in_t;     /* inside a text element */
	bool in_v;     /* xlsx: inside <v> */
	bool in_cell;  /* odf: inside a table cell */
	int skip;      /* depth of elements whose text is dropped */
	char ctype[16];
	struct dk_buf cur;
	char **strings; /* xlsx shared strings */
	size_t nstrings;
	bool row_any;
};

static const char *local(const char *name)
{
	const char *c = strchr(name, ':');
	return c ? c + 1 : name;
}

static void ox_start(void *ud, const char *name, const char *attrs, size_t n)
{
	struct oxml *o = ud;
	const char *l = local(name);
	switch (o->fmt) {
	case 0:
		if (!strcmp(name, "w:t"))
			o->in_t = true;
		else if (!strcmp(name, "w:tab"))
			dk_buf_putc(o->out, '\t');
		else if (!strcmp(name, "w:br") || !strcmp(name, "w:cr"))
			dk_buf_putc(o->out, '\n');
		break;
	case 1:
		if (!strcmp(name, "a:t"))
			o->in_t = true;
		else if (!strcmp(name, "a:br"))
			dk_buf_putc(o->out, '\n');
		break;
	case 2:
		if (!strcmp(l, "row")) {
			o->row_any = false;
		} else if (!strcmp(l, "c")) {
			if (!dk_xml_attr(attrs, n, "t", o->ctype, sizeof o->ctype))
				o->ctype[0] = 0;
			dk_buf_clear(&o->cur);
		} else if (!strcmp(l, "v") || !strcmp(l, "t")) {
			o->in_v = true;
		}
		break;
	case 3:
		if (!strcmp(l, "si"))
			dk_buf_clear(&o->cur);
		else if (!strcmp(l, "t"))
			o->in_t = true;
		else if (!strcmp(l, "rPh"))
			o->skip++;
		break;
	case 4:
		if (!strncmp(name, "text:", 5) || !strncmp(name, "table:", 6)) {
			if (!strcmp(name, "text:tab"))
				dk_buf_putc(o->out, '\t');
			else if (!strcmp(name, "text:line-break"))
				dk_buf_putc(o->out, '\n');
			else if (!strcmp(name, "text:s")) {
				char c[16];
				int k = dk_xml_attr(attrs, n, "text:c", c, sizeof c) ? atoi(c) : 1;
				for (int j = 0; j < k && j < 64; j++)
					dk_buf_putc(o->out, ' ');
			} else if (!strcmp(name, "table:table-cell")) {
				o->in_cell = true;
			} else if (!strcmp(name, "text:note-citation")) {
				o->skip++;
			}
		}
		break;
	}
}

static void ox_end(void *ud, const char *name)
{
	struct oxml *o = ud;
	const char *l = local(name);
	switch (o->fmt) {
	case 0:
		if (!strcmp(name, "w:t"))
			o->in_t = false;
		else if (!strcmp(name, "w:p"))
			dk_buf_putc(o->out, '\n');
		else if (!strcmp(name, "w:tc"))
			dk_buf_putc(o->out, '\t');
		break;
	case 1:
		if (!strcmp(name, "a:t"))
			o->in_t = false;
		else if (!strcmp(name, "a:p"))
			dk_buf_putc(o->out, '\n');
		break;
	case 2:
		if (!strcmp(l, "v") || !strcmp(l, "t")) {
			o->in_v = false;
		} else if (!strcmp(l, "c")) {
			const char *v = o->cur.data ? o->cur.data : "";
			if (!*v)
				break;
			if (o->row_any)
				dk_buf_putc(o->out, '\t');
			o->row_any = true;
			if (!strcmp(o->ctype, "s")) {
				char *endp;
				unsigned long k = strtoul(v, &endp, 10);
				if (k < o->nstrings)
					dk_buf_puts(o->out, o->strings[k]);
			} else if (!strcmp(o->ctype, "b")) {
				dk_buf_puts(o->out, !strcmp(v, "1") ? "TRUE" : "FALSE");
			} else {
				dk_buf_puts(o->out, v);
			}
		} else if (!strcmp(l, "row")) {
			if (o->row_any)
				dk_buf_putc(o->out, '\n');
		}
		break;
	case 3:
		if (!strcmp(l, "t")) {
			o->in_t = false;
		} else if (!strcmp(l, "rPh")) {
			if (o->skip)
				o->skip--;
		} else if (!strcmp(l, "si")) {
			char **ns = realloc(o->strings, (o->nstrings + 1) * sizeof *ns);
			if (ns) {
				o->strings = ns;
				o->strings[o->nstrings++] = strdup(o->cur.data ? o->cur.data : "");
			}
		}
		break;
	case 4:
		if (!strcmp(name, "text:p") || !strcmp(name, "text:h"))
			dk_buf_putc(o->out, o->in_cell ? ' ' : '\n');
		else if (!strcmp(name, "table:table-cell")) {
			o->in_cell = false;
			dk_buf_putc(o->out, '\t');
		} else if (!strcmp(name, "table:table-row"))
			dk_buf_putc(o->out, '\n');
		else if (!strcmp(name, "text:note-citation") && o->skip)
			o->skip--;
		break;
	}
}

static void ox_text(void *ud, const char *t, size_t n)
{
	struct oxml *o = ud;
	if (o->skip)
		return;
	switch (o->fmt) {
	case 0:
	case 1:
		if (o->in_t)
			dk_buf_append(o->out, t, n);
		break;
	case 2:
		if (o->in_v)
			dk_buf_append(&o->cur, t, n);
		break;
	case 3:
		if (o->in_t)
			dk_buf_append(&o->cur, t, n);
		break;
	case 4:
		dk_buf_append(o->out, t, n);
		break;
	}
}

static void ox_run(struct oxml *o, struct dk_buf *x)
{
	static const struct dk_xml_cb cb = {ox_start, ox_end, ox_text};
	if (x && x->data)
		dk_xml_walk(x->data, x->len, &cb, o);
}

static bool want_docx(const char *n)
{
	return !strcmp(n, "word/document.xml");
}
static bool want_pptx(const char *n)
{
	return !strncmp(n, "ppt/slides/slide", 16) && strstr(n, ".xml") && !strchr(n + 11, '/');
}
static bool want_xlsx(const char *n)
{
	return !strcmp(n, "xl/sharedStrings.xml") || (!strncmp(n, "xl/worksheets/sheet", 19) && !strchr(n + 14, '/'));
}
static bool want_odf(const char *n)
{
	return !strcmp(n, "content.xml");
}
static bool want_epub(const char *n)
{
	(void)n;
	return true;
}

/* Number in a name like "ppt/slides/slide12.xml" (for numeric order). */
static long name_num(const char *s)
{
	const char *p = s + strlen(s);
	while (p > s && !isdigit((unsigned char)p[-1]))
		p--;
	while (p > s && isdigit((unsigned char)p[-1]))
		p--;
	return strtol(p, NULL, 10);
}

static int cmp_member(const void *a, const void *b)
{
	const struct zmember *x = a, *y = b;
	long nx = name_num(x->name), ny = name_num(y->name);
	if (nx != ny)
		return nx < ny ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* EPUB: container.xml -> OPF -> spine order of XHTML documents. */
struct opf {
	char **ids, **hrefs;
	size_t n;
	char **spine;
	size_t ns;
	char rootfile[512];
};

static void opf_start(void *ud, const char *name, const char *attrs, size_t n)
{
	struct opf *o = ud;
	const char *l = local(name);
	char id[256], href[512];
	if (!strcmp(l, "rootfile") && !o->rootfile[0]) {
		dk_xml_attr(attrs, n, "full-path", o->rootfile, sizeof o->rootfile);
	} else if (!strcmp(l, "item") && dk_xml_attr(attrs, n, "id", id, sizeof id) &&
		   dk_xml_attr(attrs, n, "href", href, sizeof href)) {
		char **a = realloc(o->ids, (o->n + 1) * sizeof *a), **b;
		if (!a)
			return;
		o->ids = a;
		b = realloc(o->hrefs, (o->n + 1) * sizeof *b);
		if (!b)
			return;
		o->hrefs = b;
		o->ids[o->n] = strdup(id);
		o->hrefs[o->n] = strdup(href);
		o->n++;
	} else if (!strcmp(l, "itemref") && dk_xml_attr(attrs, n, "idref", id, sizeof id)) {
		char **a = realloc(o->spine, (o->ns + 1) * sizeof *a);
		if (!a)
			return;
		o->spine = a;
		o->spine[o->ns++] = strdup(id);
	}
}

/* Sorted views for the spine walk: positions ordered by name, ties by
 * position, so a lookup finds the first of equal names as a scan would. */
struct by_name {
	const char *const *names; /* NULL: use members */
	const struct zmember *m;
};

static const char *bn_name(const struct by_name *b, size_t i)
{
	return b->names ? b->names[i] : b->m[i].name;
}

static int cmp_by_name(const void *x, const void *y, void *ud)
{
	size_t a = *(const size_t *)x, b = *(const size_t *)y;
	int c = strcmp(bn_name(ud, a), bn_name(ud, b));
	return c ? c : a < b ? -1 : a > b;
}

static size_t *sort_by_name(struct by_name *b, size_t n)
{
	size_t *ix = malloc((n ? n : 1) * sizeof *ix);
	if (!ix)
		return NULL;
	for (size_t i = 0; i < n; i++)
		ix[i] = i;
	qsort_r(ix, n, sizeof *ix, cmp_by_name, b);
	return ix;
}

/* First k in ix[0..n) whose name is key; n when none. */
static size_t lower_bound(const struct by_name *b, const size_t *ix, size_t n, const char *key)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(bn_name(b, ix[mid]), key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && !strcmp(bn_name(b, ix[lo]), key) ? lo : n;
}

static void epub_extract(struct zdoc *z, struct dk_buf *out)
{
	struct opf o = {0};
	static const struct dk_xml_cb cb = {opf_start, NULL, NULL};
	struct dk_buf *c = zget(z, "META-INF/container.xml");
	if (c && c->data)
		dk_xml_walk(c->data, c->len, &cb, &o);
	struct dk_buf *opf = o.rootfile[0] ? zget(z, o.rootfile) : NULL;
	if (opf && opf->data)
		dk_xml_walk(opf->data, opf->len, &cb, &o);
	char dir[512] = "";
	const char *sl = strrchr(o.rootfile, '/');
	if (sl)
		snprintf(dir, sizeof dir, "%.*s/", (int)(sl - o.rootfile), o.rootfile);
	bool any = false;
	/* a hostile OPF may list 10^5 items and spine entries: look both up
	 * through sorted indexes, not by scanning */
	struct by_name items = {(const char *const *)o.ids, NULL}, members = {NULL, z->m};
	size_t *iix = sort_by_name(&items, o.n), *mix = sort_by_name(&members, z->n);
	for (size_t s = 0; iix && mix && s < o.ns; s++) {
		for (size_t i = lower_bound(&items, iix, o.n, o.spine[s]); i < o.n; i++) {
			size_t k = iix[i];
			if (strcmp(o.ids[k], o.spine[s]))
				break;
			char path[1100];
			snprintf(path, sizeof path, "%s%s", dir, o.hrefs[k]);
			size_t j = lower_bound(&members, mix, z->n, path);
			struct dk_buf *x = j < z->n ? &z->m[mix[j]].data : NULL;
			if (x && x->data) {
				dk_x_html(x->data, x->len, true, out);
				dk_buf_puts(out, "\n\n");
				any = true;
			}
		}
	}
	free(iix);
	free(mix);
	if (!any) { /* no usable spine: every XHTML member in stored order */
		for (size_t k = 0; k < z->n; k++) {
			const char *e = ext_of(z->m[k].name);
			if (!strcasecmp(e, "xhtml") || !strcasecmp(e, "html") || !strcasecmp(e, "htm")) {
				dk_x_html(z->m[k].data.data ? z->m[k].data.data : "", z->m[k].data.len, true, out);
				dk_buf_puts(out, "\n\n");
			}
		}
	}
	for (size_t k = 0; k < o.n; k++) {
		free(o.ids[k]);
		free(o.hrefs[k]);
	}
	for (size_t k = 0; k < o.ns; k++)
		free(o.spine[k]);
	free(o.ids);
	free(o.hrefs);
	free(o.spine);
}

static int office(const struct dk_xin *in, const char *fmt, struct dk_buf *out, const char **reason, char *err,
		  size_t errn)
{
	struct zdoc z = {0};
	bool (*want)(const char *) = !strcmp(fmt, "docx")   ? want_docx
				     : !strcmp(fmt, "pptx") ? want_pptx
				     : !strcmp(fmt, "xlsx") ? want_xlsx
				     : !strcmp(fmt, "epub") ? want_epub
							    : want_odf;
	if (zload(in, want, &z, reason, err, errn) != 0) {
		zdoc_free(&z);
		return -1;
	}
	struct oxml o = {.out = out};
	if (!strcmp(fmt, "docx")) {
		o.fmt = 0;
		ox_run(&o, zget(&z, "word/document.xml"));
	} else if (!strcmp(fmt, "pptx")) {
		qsort(z.m, z.n, sizeof *z.m, cmp_member);
		o.fmt = 1;
		for (size_t k = 0; k < z.n; k++) {
			ox_run(&o, &z.m[k].data);
			dk_buf_putc(out, '\n');
		}
	} else if (!strcmp(fmt, "xlsx")) {
		o.fmt = 3;
		ox_run(&o, zget(&z, "xl/sharedStrings.xml"));
		qsort(z.m, z.n, sizeof *z.m, cmp_member);
		o.fmt = 2;
		o.skip = 0;
		for (size_t k = 0; k < z.n; k++) {
			if (strncmp(z.m[k].name, "xl/worksheets/", 14))
				continue;
			ox_run(&o, &z.m[k].data);
			dk_buf_putc(out, '\n');
		}
	} else if (!strcmp(fmt, "epub")) {
		epub_extract(&z, out);
	} else {
		o.fmt = 4;
		ox_run(&o, zget(&z, "content.xml"));
	}
	for (size_t k = 0; k < o.nstrings; k++)
		free(o.strings[k]);
	free(o.strings);
	dk_buf_free(&o.cur);
	bool found = z.n > 0;
	zdoc_free(&z);
	if (!found) {
		*reason = "decode-error";
		dk_err(err, errn, DK_SKIP, "cannot read '%s': no %s content found", in->name, fmt);
		return -1;
	}
	return 0;
}

/* ---- PDF ---- */

static bool find_in_path(const char *prog, char *out, size_t n)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t l = strcspn(path, ":");
		snprintf(out, n, "%.*s/%s", (int)l, path, prog);
		if (access(out, X_OK) == 0)
			return true;
		path += l;
		if (*path == ':')
			path++;
	}
	return false;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum tool_end { TOOL_FAILED, TOOL_EXITED, TOOL_TIMEOUT, TOOL_TOO_BIG };

/* Runs `pdftotext ... file -`, collecting its stdout in raw (at most
 * in->max_text_bytes) for at most in->tool_timeout_s seconds (0: no
 * limit); past either limit the tool and its process group are killed.
 * Always reaps the child; *status is its wait status when TOOL_EXITED. */
static enum tool_end run_tool(const char *tool, const char *file, const struct dk_xin *in, struct dk_buf *raw,
			      int *status)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return TOOL_FAILED;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return TOOL_FAILED;
	}
	if (pid == 0) {
		/* its own process group, so a kill reaches whatever it starts */
		setpgid(0, 0);
#ifdef __linux__
		/* and it does not outlive a docket killed meanwhile */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
#endif
		dup2(pfd[1], 1);
		int dn = open("/dev/null", O_RDWR);
		if (dn >= 0) {
			dup2(dn, 0); /* never the path list docket may be reading */
			dup2(dn, 2);
		}
		execl(tool, "pdftotext", "-q", "-enc", "UTF-8", "-layout", "-nopgbrk", file, "-", (char *)NULL);
		_exit(127);
	}
	(void)parent;
	setpgid(pid, pid); /* also here: whichever of the two runs first */
	close(pfd[1]);
	double deadline = in->tool_timeout_s ? mono_now() + in->tool_timeout_s : 0;
	uint64_t cap = in->max_text_bytes ? in->max_text_bytes : UINT64_MAX;
	enum tool_end how = TOOL_EXITED;
	char buf[65536];
	for (;;) {
		int wait_ms = -1;
		if (deadline) {
			double left = deadline - mono_now();
			if (left <= 0) {
				how = TOOL_TIMEOUT;
				break;
			}
			wait_ms = (int)(left * 1000) + 1;
		}
		struct pollfd pf = {pfd[0], POLLIN, 0};
		int r = poll(&pf, 1, wait_ms);
		if (r < 0 && errno != EINTR) {
			how = TOOL_FAILED;
			break;
		}
		if (r <= 0)
			continue;
		ssize_t k = read(pfd[0], buf, sizeof buf);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k < 0) {
			how = TOOL_FAILED;
			break;
		}
		if (k == 0)
			break;
		if ((uint64_t)k > cap - raw->len) {
			how = TOOL_TOO_BIG;
			break;
		}
		if (dk_buf_append(raw, buf, (size_t)k)) {
			how = TOOL_FAILED;
			break;
		}
	}
	close(pfd[0]);
	/* end of output is not the end of the process: the deadline holds for
	 * its exit too */
	for (long nap_us = 1000; how == TOOL_EXITED; nap_us = nap_us < 50000 ? nap_us * 2 : nap_us) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return TOOL_EXITED;
		if (w < 0 && errno != EINTR)
			how = TOOL_FAILED;
		else if (deadline && mono_now() >= deadline)
			how = TOOL_TIMEOUT;
		else
			nanosleep(&(struct timespec){0, nap_us * 1000}, NULL);
	}
	int e = errno;
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	errno = e;
	return how;
}

static int pdf(const struct dk_xin *in, struct dk_buf *out, const char **reason, char *err, size_t errn)
{
	char tool[1024];
	if (in->pdftotext) {
		snprintf(tool, sizeof tool, "%s", in->pdftotext);
		if (access(tool, X_OK) != 0) {
			*reason = "tool-missing";
			dk_err(err, errn, DK_SKIP, "cannot extract '%s': pdftotext not found at '%s'", in->name, tool);
			return -1;
		}
	} else if (!find_in_path("pdftotext", tool, sizeof tool)) {
		*reason = "tool-missing";
		dk_err(err, errn, DK_SKIP, "cannot extract '%s': pdftotext (poppler-utils) is not installed", in->name);
		return -1;
	}
	/* pdftotext needs a seekable file: members are written to a private temp file */
	char tmp[] = "/tmp/docket-pdf-XXXXXX";
	const char *file = in->fs_path;
	int tfd = -1;
	if (!file) {
		tfd = mkstemp(tmp);
		if (tfd < 0) {
			*reason = "unreadable";
			dk_err(err, errn, DK_SKIP, "cannot extract '%s': temporary file: %s", in->name, strerror(errno));
			return -1;
		}
		size_t off = 0;
		while (off < in->len) {
			ssize_t w = write(tfd, in->data + off, in->len - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		close(tfd);
		file = tmp;
	}
	struct dk_buf raw = {0};
	int st = 0;
	enum tool_end how = run_tool(tool, file, in, &raw, &st);
	int rc = -1;
	if (how == TOOL_TIMEOUT) {
		*reason = "limit-exceeded";
		dk_err(err, errn, DK_SKIP, "cannot extract '%s': pdftotext timed out after %u s", in->name,
		       in->tool_timeout_s);
	} else if (how == TOOL_TOO_BIG) {
		*reason = "limit-exceeded";
		dk_err(err, errn, DK_SKIP, "cannot extract '%s': extracted text exceeds %llu bytes", in->name,
		       (unsigned long long)in->max_text_bytes);
	} else if (how == TOOL_EXITED && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		dk_utf8_sanitize(raw.data ? raw.data : "", raw.len, out);
		rc = 0;
	} else if (how == TOOL_EXITED) {
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		/* pdftotext exits 1 on open errors, 3 on permission (encryption) errors */
		*reason = code == 3 ? "encrypted" : "decode-error";
		dk_err(err, errn, DK_SKIP, "cannot extract '%s': pdftotext failed (%s)", in->name,
		       code == 3 ? "encrypted" : code == 1 ? "damaged or unreadable pdf" : "exit status");
	}
	dk_buf_free(&raw);
	if (rc != 0 && !*reason) {
		*reason = "unreadable";
		dk_err(err, errn, DK_SKIP, "cannot extract '%s': %s", in->name, strerror(errno));
	}
	if (tfd >= 0)
		unlink(tmp);
	return rc;
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
	return pdf(in, out, reason, err, errn);
}
static int x_office(const struct dk_xin *in, const char *fmt, const char *s, size_t n, struct dk_buf *out,
		    const char **reason, char *err, size_t errn)
{
	return office(in, fmt, out, reason, err, errn);
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
