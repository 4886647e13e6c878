/* HTML/XML to text, entity decoding, and a small event-based XML reader for
 * the zip+XML office formats.  Tolerant by design: malformed markup yields
 * whatever text can be recovered, never an error. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "extract.h"
#include "markup.h"

struct ent {
	const char *name;
	uint32_t cp;
};

static const struct ent ents[] = {
	{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''},
	{"nbsp", ' '}, {"copy", 0xA9}, {"reg", 0xAE}, {"trade", 0x2122}, {"hellip", 0x2026},
	{"mdash", 0x2014}, {"ndash", 0x2013}, {"lsquo", 0x2018}, {"rsquo", 0x2019},
	{"ldquo", 0x201C}, {"rdquo", 0x201D}, {"sbquo", 0x201A}, {"bdquo", 0x201E},
	{"bull", 0x2022}, {"middot", 0xB7}, {"euro", 0x20AC}, {"pound", 0xA3}, {"yen", 0xA5},
	{"cent", 0xA2}, {"sect", 0xA7}, {"para", 0xB6}, {"deg", 0xB0}, {"plusmn", 0xB1},
	{"times", 0xD7}, {"divide", 0xF7}, {"frac12", 0xBD}, {"frac14", 0xBC}, {"frac34", 0xBE},
	{"laquo", 0xAB}, {"raquo", 0xBB}, {"iexcl", 0xA1}, {"iquest", 0xBF}, {"shy", 0xAD},
	{"aacute", 0xE1}, {"agrave", 0xE0}, {"acirc", 0xE2}, {"auml", 0xE4}, {"atilde", 0xE3},
	{"aring", 0xE5}, {"aelig", 0xE6}, {"ccedil", 0xE7}, {"eacute", 0xE9}, {"egrave", 0xE8},
	{"ecirc", 0xEA}, {"euml", 0xEB}, {"iacute", 0xED}, {"igrave", 0xEC}, {"icirc", 0xEE},
	{"iuml", 0xEF}, {"ntilde", 0xF1}, {"oacute", 0xF3}, {"ograve", 0xF2}, {"ocirc", 0xF4},
	{"ouml", 0xF6}, {"otilde", 0xF5}, {"oslash", 0xF8}, {"uacute", 0xFA}, {"ugrave", 0xF9},
	{"ucirc", 0xFB}, {"uuml", 0xFC}, {"yacute", 0xFD}, {"yuml", 0xFF}, {"szlig", 0xDF},
	{"Aacute", 0xC1}, {"Agrave", 0xC0}, {"Auml", 0xC4}, {"Aring", 0xC5}, {"Ccedil", 0xC7},
	{"Eacute", 0xC9}, {"Egrave", 0xC8}, {"Ntilde", 0xD1}, {"Ouml", 0xD6}, {"Uuml", 0xDC},
	{"Oslash", 0xD8}, {"AElig", 0xC6}, {"alpha", 0x3B1}, {"beta", 0x3B2}, {"gamma", 0x3B3},
	{"delta", 0x3B4}, {"mu", 0x3BC}, {"pi", 0x3C0}, {"sigma", 0x3C3}, {"omega", 0x3C9},
	{"larr", 0x2190}, {"rarr", 0x2192}, {"uarr", 0x2191}, {"darr", 0x2193}, {"harr", 0x2194},
	{"le", 0x2264}, {"ge", 0x2265}, {"ne", 0x2260}, {"minus", 0x2212}, {"infin", 0x221E},
	{"ensp", ' '}, {"emsp", ' '}, {"thinsp", ' '}, {"zwj", 0x200D}, {"zwnj", 0x200C},
	{"dagger", 0x2020}, {"prime", 0x2032}, {"micro", 0xB5}, {"ordf", 0xAA}, {"ordm", 0xBA},
	{"sup1", 0xB9}, {"sup2", 0xB2}, {"sup3", 0xB3}, {"not", 0xAC}, {"macr", 0xAF},
	{"acute", 0xB4}, {"cedil", 0xB8}, {"uml", 0xA8}, {"curren", 0xA4}, {"brvbar", 0xA6},
};

size_t dk_x_entity(const char *s, size_t n, struct dk_buf *out)
{
	/* s[0] == '&' */
	if (n < 3)
		return 0;
	size_t i = 1;
	if (s[1] == '#') {
		uint32_t cp = 0;
		bool hex = i + 1 < n && (s[2] == 'x' || s[2] == 'X');
		i = hex ? 3 : 2;
		size_t start = i;
		while (i < n && i - start < 8 && (hex ? isxdigit((unsigned char)s[i]) : isdigit((unsigned char)s[i]))) {
			int d = isdigit((unsigned char)s[i]) ? s[i] - '0' : (tolower((unsigned char)s[i]) - 'a' + 10);
			cp = cp * (hex ? 16 : 10) + (uint32_t)d;
			i++;
		}
		if (i == start)
			return 0;
		if (i < n && s[i] == ';')
			i++;
		if (cp == 0)
			cp = 0xFFFD;
		dk_utf8_put(out, cp);
		return i;
	}
	while (i < n && i < 12 && isalnum((unsigned char)s[i]))
		i++;
	if (i >= n || s[i] != ';')
		return 0;
	size_t len = i - 1;
	for (size_t k = 0; k < sizeof ents / sizeof ents[0]; k++) {
		if (strlen(ents[k].name) == len && !memcmp(ents[k].name, s + 1, len)) {
			dk_utf8_put(out, ents[k].cp);
			return i + 1;
		}
	}
	return 0;
}

/* ---- whitespace-collapsing writer ---- */

struct tw {
	struct dk_buf *b;
	size_t start; /* where this extraction began in b */
	int nl;       /* newlines pending (0..2) */
	bool sp;      /* a space pending */
	bool pre;     /* inside <pre>: keep whitespace */
};

static void tw_break(struct tw *w, int k)
{
	if (w->nl < k)
		w->nl = k;
}

static void tw_flush(struct tw *w)
{
	bool any = w->b->len > w->start;
	if (any && w->nl) {
		for (int j = 0; j < w->nl; j++)
			dk_buf_putc(w->b, '\n');
	} else if (any && w->sp) {
		char last = w->b->data[w->b->len - 1];
		if (last != '\n' && last != ' ')
			dk_buf_putc(w->b, ' ');
	}
	w->nl = 0;
	w->sp = false;
}

static void tw_char(struct tw *w, char c)
{
	if (!w->pre && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f')) {
		w->sp = true;
		return;
	}
	if (w->pre && c == '\n') {
		tw_break(w, 1);
		return;
	}
	if (w->nl || w->sp)
		tw_flush(w);
	dk_buf_putc(w->b, c);
}

static void tw_str(struct tw *w, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tw_char(w, s[i]);
}

/* ---- HTML ---- */

static int block_level(const char *name)
{
	static const char *const para[] = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table",
					   "blockquote", "pre", "section", "article", "header", "footer",
					   "aside", "nav", "figure", "form", "fieldset", "address", "main", "hr",
					   "body", "title", "caption", "details", "summary", NULL};
	static const char *const line[] = {"br", "li", "tr", "div", "dt", "dd", "option", "legend", "figcaption",
					   "center", "thead", "tbody", "tfoot", "head", "html", NULL};
	for (int i = 0; para[i]; i++)
		if (!strcmp(name, para[i]))
			return 2;
	for (int i = 0; line[i]; i++)
		if (!strcmp(name, line[i]))
			return 1;
	return 0;
}

static const char *find_ci(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	for (size_t i = 0; i + k <= n; i++)
		if (!strncasecmp(s + i, needle, k))
			return s + i;
	return NULL;
}

static const char *find(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	if (k > n)
		return NULL;
	return memmem(s, n, needle, k);
}

void dk_x_html(const char *s0, size_t n0, bool html, struct dk_buf *out)
{
	struct dk_buf clean = {0};
	dk_utf8_sanitize(s0, n0, &clean);
	const char *s = clean.data ? clean.data : "";
	size_t n = clean.len;
	struct tw w = {.b = out, .start = out->len};
	size_t i = 0;
	struct dk_buf ent = {0};
	while (i < n) {
		char c = s[i];
		if (c == '&') {
			dk_buf_clear(&ent);
			size_t k = dk_x_entity(s + i, n - i, &ent);
			if (k) {
				tw_str(&w, ent.data, ent.len);
				i += k;
			} else {
				tw_char(&w, '&');
				i++;
			}
			continue;
		}
		if (c != '<') {
			tw_char(&w, c);
			i++;
			continue;
		}
		const char *rest = s + i;
		size_t rn = n - i;
		if (rn >= 4 && !memcmp(rest, "<!--", 4)) {
			const char *e = find(rest + 4, rn - 4, "-->");
			i = e ? (size_t)(e - s) + 3 : n;
			continue;
		}
		if (rn >= 9 && !memcmp(rest, "<![CDATA[", 9)) {
			const char *e = find(rest + 9, rn - 9, "]]>");
			size_t end = e ? (size_t)(e - s) : n;
			tw_str(&w, s + i + 9, end - (i + 9));
			i = e ? end + 3 : n;
			continue;
		}
		if (rn >= 2 && (rest[1] == '!' || rest[1] == '?')) {
			const char *e = memchr(rest, '>', rn);
			i = e ? (size_t)(e - s) + 1 : n;
			continue;
		}
		size_t j = 1;
		bool closing = false;
		if (j < rn && rest[j] == '/') {
			closing = true;
			j++;
		}
		if (j >= rn || !isalpha((unsigned char)rest[j])) {
			tw_char(&w, '<');
			i++;
			continue;
		}
		char name[32];
		size_t nl = 0;
		while (j < rn && (isalnum((unsigned char)rest[j]) || rest[j] == ':' || rest[j] == '-' || rest[j] == '_')) {
			if (nl < sizeof name - 1)
				name[nl++] = html ? (char)tolower((unsigned char)rest[j]) : rest[j];
			j++;
		}
		name[nl] = 0;
		/* skip attributes, honouring quotes so that '>' inside them is not the end */
		char q = 0;
		bool selfclose = false;
		while (j < rn) {
			char d = rest[j];
			if (q) {
				if (d == q)
					q = 0;
			} else if (d == '"' || d == '\'') {
				q = d;
			} else if (d == '>') {
				selfclose = j > 0 && rest[j - 1] == '/';
				break;
			}
			j++;
		}
		i += j < rn ? j + 1 : rn;
		if (html) {
			if (!closing && !selfclose && (!strcmp(name, "script") || !strcmp(name, "style"))) {
				char endtag[16];
				snprintf(endtag, sizeof endtag, "</%s", name);
				const char *e = find_ci(s + i, n - i, endtag);
				if (!e) {
					i = n;
				} else {
					const char *gt = memchr(e, '>', (size_t)(s + n - e));
					i = gt ? (size_t)(gt - s) + 1 : n;
				}
				continue;
			}
			if (!strcmp(name, "pre"))
				w.pre = !closing;
			int bl = block_level(name);
			if (bl)
				tw_break(&w, bl);
			else if (!strcmp(name, "td") || !strcmp(name, "th"))
				w.sp = true;
		} else {
			tw_break(&w, 1);
		}
	}
	dk_buf_free(&ent);
	dk_buf_free(&clean);
	if (!out->data)
		dk_buf_puts(out, ""); /* callers may read out->data */
}

/* ---- event XML reader ---- */

void dk_xml_walk(const char *s, size_t n, const struct dk_xml_cb *cb, void *ud)
{
	size_t i = 0;
	struct dk_buf text = {0};
	while (i < n) {
		if (s[i] != '<') {
			size_t j = i;
			dk_buf_clear(&text);
			while (j < n && s[j] != '<') {
				if (s[j] == '&') {
					size_t k = dk_x_entity(s + j, n - j, &text);
					if (k) {
						j += k;
						continue;
					}
				}
				dk_buf_putc(&text, s[j]);
				j++;
			}
			if (cb->text && text.len)
				cb->text(ud, text.data, text.len);
			i = j;
			continue;
		}
		if (i + 4 <= n && !memcmp(s + i, "<!--", 4)) {
			const char *e = find(s + i + 4, n - i - 4, "-->");
			i = e ? (size_t)(e - s) + 3 : n;
			continue;
		}
		if (i + 9 <= n && !memcmp(s + i, "<![CDATA[", 9)) {
			const char *e = find(s + i + 9, n - i - 9, "]]>");
			size_t end = e ? (size_t)(e - s) : n;
			if (cb->text && end > i + 9)
				cb->text(ud, s + i + 9, end - (i + 9));
			i = e ? end + 3 : n;
			continue;
		}
		const char *gt = memchr(s + i, '>', n - i);
		size_t end = gt ? (size_t)(gt - s) : n;
		const char *t = s + i + 1;
		size_t tn = end - (i + 1);
		i = gt ? end + 1 : n;
		if (!tn || *t == '?' || *t == '!')
			continue;
		bool closing = *t == '/';
		if (closing) {
			t++;
			tn--;
		}
		bool selfclose = tn && t[tn - 1] == '/';
		if (selfclose)
			tn--;
		size_t nl = 0;
		while (nl < tn && !isspace((unsigned char)t[nl]))
			nl++;
		char name[64];
		size_t k = nl < sizeof name - 1 ? nl : sizeof name - 1;
		memcpy(name, t, k);
		name[k] = 0;
		if (closing) {
			if (cb->end)
				cb->end(ud, name);
		} else {
			if (cb->start)
				cb->start(ud, name, t + nl, tn - nl);
			if (selfclose && cb->end)
				cb->end(ud, name);
		}
	}
	dk_buf_free(&text);
}

bool dk_xml_attr(const char *attrs, size_t n, const char *key, char *val, size_t valn)
{
	size_t kl = strlen(key);
	size_t i = 0;
	while (i < n) {
		while (i < n && isspace((unsigned char)attrs[i]))
			i++;
		size_t ks = i;
		while (i < n && attrs[i] != '=' && !isspace((unsigned char)attrs[i]))
			i++;
		size_t ke = i;
		while (i < n && isspace((unsigned char)attrs[i]))
			i++;
		if (i >= n || attrs[i] != '=') {
			i++;
			continue;
		}
		i++;
		while (i < n && isspace((unsigned char)attrs[i]))
			i++;
		if (i >= n)
			break;
		char q = attrs[i];
		size_t vs, ve;
		if (q == '"' || q == '\'') {
			vs = ++i;
			while (i < n && attrs[i] != q)
				i++;
			ve = i;
			i++;
		} else {
			vs = i;
			while (i < n && !isspace((unsigned char)attrs[i]))
				i++;
			ve = i;
		}
		if (ke - ks == kl && !memcmp(attrs + ks, key, kl)) {
			size_t l = ve - vs < valn - 1 ? ve - vs : valn - 1;
			memcpy(val, attrs + vs, l);
			val[l] = 0;
			return true;
		}
	}
	return false;
}
