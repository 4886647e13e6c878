/* UTF-8 validation, charset conversion (iconv) and text tidying for ingest. */
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "extract.h"
#include "util/err.h"

void dk_utf8_put(struct dk_buf *b, uint32_t cp)
{
	char u[4];
	if (cp == 0) /* a NUL would end the C string early */
		return;
	if (cp >= 0xD800 && cp <= 0xDFFF)
		cp = 0xFFFD;
	if (cp > 0x10FFFF)
		cp = 0xFFFD;
	if (cp < 0x80) {
		dk_buf_putc(b, (char)cp);
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		dk_buf_append(b, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		dk_buf_append(b, u, 3);
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		dk_buf_append(b, u, 4);
	}
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t seq_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t k;
	uint32_t min;
	if (c >= 0xC2 && c <= 0xDF) {
		k = 2;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		k = 3;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		k = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < k)
		return 0;
	uint32_t cp = c & (0x7F >> k);
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return k;
}

size_t dk_utf8_valid_len(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = seq_len(u + i, n - i);
		if (!k)
			return i;
		i += k;
	}
	return n;
}

void dk_utf8_sanitize(const char *s, size_t n, struct dk_buf *out)
{
	const unsigned char *u = (const unsigned char *)s;
	if (dk_buf_reserve(out, n + 16))
		return;
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		/* fast path over plain ASCII without CR/NUL */
		while (run < n && u[run] < 0x80 && u[run] != '\r' && u[run] != 0)
			run++;
		if (run > i) {
			dk_buf_append(out, s + i, run - i);
			i = run;
			continue;
		}
		unsigned c = u[i];
		if (c == '\r') {
			dk_buf_putc(out, '\n');
			i += (i + 1 < n && u[i + 1] == '\n') ? 2 : 1;
		} else if (c == 0) {
			i++; /* NULs would end the C string early */
		} else {
			size_t k = seq_len(u + i, n - i);
			if (k) {
				dk_buf_append(out, s + i, k);
				i += k;
			} else {
				dk_utf8_put(out, 0xFFFD);
				i++;
			}
		}
	}
}

/* iconv from `from` into out; 0, or -1 (errno EINVAL = unknown charset,
 * EILSEQ = bad bytes). */
static int conv(const char *s, size_t n, const char *from, struct dk_buf *tmp)
{
	iconv_t cd = iconv_open("UTF-8", from);
	if (cd == (iconv_t)-1) {
		errno = EINVAL;
		return -1;
	}
	char *in = (char *)s;
	size_t inleft = n;
	int rc = 0;
	while (inleft) {
		if (dk_buf_reserve(tmp, inleft * 2 + 64)) {
			rc = -1;
			errno = ENOMEM;
			break;
		}
		char *o = tmp->data + tmp->len;
		size_t oleft = tmp->cap - tmp->len - 1;
		size_t before = oleft;
		size_t r = iconv(cd, &in, &inleft, &o, &oleft);
		tmp->len += before - oleft;
		if (r == (size_t)-1 && errno != E2BIG) {
			if (errno == EINVAL) /* truncated sequence at the end: drop it */
				break;
			rc = -1;
			break;
		}
	}
	if (tmp->data)
		tmp->data[tmp->len] = 0;
	iconv_close(cd);
	return rc;
}

int dk_to_utf8(const char *s, size_t n, const char *charset, struct dk_buf *out, char *err, size_t errn)
{
	const unsigned char *u = (const unsigned char *)s;
	const char *cs = charset ? charset : "";
	/* a byte-order mark outranks libmagic's guess */
	if (n >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) {
		s += 3;
		n -= 3;
		cs = "utf-8";
	} else if (n >= 2 && u[0] == 0xFF && u[1] == 0xFE) {
		s += 2;
		n -= 2;
		cs = "UTF-16LE";
	} else if (n >= 2 && u[0] == 0xFE && u[1] == 0xFF) {
		s += 2;
		n -= 2;
		cs = "UTF-16BE";
	}
	bool utf8ish = !*cs || !strcasecmp(cs, "utf-8") || !strcasecmp(cs, "us-ascii") ||
		       !strcasecmp(cs, "binary") || !strcasecmp(cs, "unknown-8bit") ||
		       !strcasecmp(cs, "iso-8859-1");
	if (utf8ish) {
		if (dk_utf8_valid_len(s, n) == n) {
			dk_utf8_sanitize(s, n, out);
			return 0;
		}
		/* Not UTF-8: Latin-1 text in the wild is nearly always
		 * Windows-1252 (curly quotes, euro in 0x80-0x9f); the five bytes
		 * 1252 leaves undefined make iconv fail, then plain Latin-1. */
		struct dk_buf tmp = {0};
		if (conv(s, n, "WINDOWS-1252", &tmp) != 0) {
			dk_buf_clear(&tmp);
			if (conv(s, n, "ISO-8859-1", &tmp) != 0) {
				dk_buf_free(&tmp);
				dk_err(err, errn, DK_SKIP, "cannot convert from latin-1");
				return -1;
			}
		}
		dk_utf8_sanitize(tmp.data ? tmp.data : "", tmp.len, out);
		dk_buf_free(&tmp);
		return 0;
	}
	const char *from = cs;
	if (!strcasecmp(cs, "utf-16le"))
		from = "UTF-16LE";
	else if (!strcasecmp(cs, "utf-16be"))
		from = "UTF-16BE";
	else if (!strcasecmp(cs, "ebcdic"))
		from = "EBCDIC-US";
	struct dk_buf tmp = {0};
	if (conv(s, n, from, &tmp) != 0) {
		int e = errno;
		dk_buf_free(&tmp);
		if (e == EINVAL)
			dk_err(err, errn, DK_SKIP, "unknown charset '%s'", cs);
		else
			dk_err(err, errn, DK_SKIP, "invalid %s byte sequence", cs);
		return -1;
	}
	dk_utf8_sanitize(tmp.data ? tmp.data : "", tmp.len, out);
	dk_buf_free(&tmp);
	return 0;
}

void dk_text_tidy(struct dk_buf *b)
{
	if (!b->data)
		return;
	char *s = b->data;
	size_t n = b->len, w = 0;
	int nl = 0;          /* newlines pending */
	size_t sp_start = 0; /* spaces pending, as a range in s */
	size_t sp_len = 0;
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\n') {
			nl++;
			sp_len = 0;
		} else if (c == ' ' || c == '\t' || c == '\f' || c == '\v') {
			if (!sp_len)
				sp_start = i;
			sp_len++;
		} else {
			if (any && nl) {
				int k = nl > 2 ? 2 : nl;
				for (int j = 0; j < k; j++)
					s[w++] = '\n';
			}
			if (sp_len && any) { /* inner spaces and indentation stay */
				memmove(s + w, s + sp_start, sp_len);
				w += sp_len;
			}
			nl = 0;
			sp_len = 0;
			s[w++] = c;
			any = true;
		}
	}
	b->len = w;
	s[w] = 0;
}
