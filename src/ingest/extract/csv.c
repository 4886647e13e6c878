/* CSV: RFC 4180 records rendered as "header: value" lines (dk_x_csv). */
#include <stdlib.h>
#include <string.h>

#include "ingest/extract.h"

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
