/* Email (RFC 822/MIME): headers, then each text part decoded (dk_x_eml). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "ingest/extract.h"

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
		} else if (s[i] == '=' && i + 2 < n && dk_x_hexval(s[i + 1]) >= 0 && dk_x_hexval(s[i + 2]) >= 0) {
			dk_buf_putc(out, (char)(dk_x_hexval(s[i + 1]) * 16 + dk_x_hexval(s[i + 2])));
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
