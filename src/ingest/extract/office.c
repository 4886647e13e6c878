/* The zip+XML documents: DOCX, XLSX, PPTX, ODT/ODS/ODP and EPUB, read through libarchive (dk_x_office). */
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest/extract.h"
#include "ingest/markup.h"
#include "util/err.h"

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
			const char *e = dk_x_ext_of(z->m[k].name);
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

int dk_x_office(const struct dk_xin *in, const char *fmt, struct dk_buf *out, const char **reason, char *err,
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
