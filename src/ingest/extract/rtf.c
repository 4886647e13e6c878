/* RTF: the text of the body, control words mapped, destinations skipped (dk_x_rtf). */
#include <ctype.h>
#include <string.h>

#include "ingest/extract.h"

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
				int h1 = i < n ? dk_x_hexval(s[i]) : -1, h2 = i + 1 < n ? dk_x_hexval(s[i + 1]) : -1;
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
