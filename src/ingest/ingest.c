/* The ingest walk: inputs -> directories (sorted per level) -> files ->
 * archives (streamed through libarchive, nested ones from memory) ->
 * detection (libmagic) -> extraction.  A stack of directory frames and a
 * stack of archive frames hold the position, so dk_ingest_next produces
 * one record at a time and memory stays flat whatever the tree size. */
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docket/ingest.h"
#include "extract.h"
#include "glob.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/sha256.h"

enum { HEAD_BYTES = 64 * 1024 };

struct dirframe {
	char *fs;    /* directory on disk */
	char *rel;   /* relative to the input ("" for the input itself) */
	char *disp;  /* display path */
	char **names;
	size_t n, i;
	int depth;   /* depth of this directory's entries (0 = the input's) */
	dev_t dev;
	ino_t ino;
};

struct arcframe {
	struct archive *a;
	char *disp;   /* display path of this archive */
	char *member; /* member path of this archive inside the outer ones; NULL = on disk */
	char *rel;    /* relative path for globs */
	struct dk_buf data; /* bytes of a nested archive */
	int fd;       /* outermost: the open file */
	int nest;     /* 1 = on disk */
	char mime[96]; /* as detected, for records about the archive itself */
	uint64_t bytes;
	uint64_t files;
	bool failed;
};

struct dk_ingest {
	struct dk_ingest_params p;
	magic_t magic;
	char err[DK_ERRMSG_MAX];

	char **inputs;
	size_t n_inputs, next_input;
	bool reading_stdin;
	char *line;
	size_t line_cap;

	struct dirframe *dirs;
	size_t n_dirs, cap_dirs;
	dev_t root_dev;
	const char *root_input; /* the input being walked */

	struct arcframe *arcs;
	size_t n_arcs, cap_arcs;
	char *arc_fs;         /* outermost archive on disk */
	uint64_t arc_packed;  /* its size */
	uint64_t arc_expanded;
	uint64_t arc_entries;

	/* the current record and what its pointers borrow */
	struct dk_doc doc;
	struct dk_buf path, fs_path, member, mime, charset, detail, text, raw;
	struct dk_ingest_stats st;
};

struct dk_ingest_params dk_ingest_default_params(void)
{
	return (struct dk_ingest_params){
		.max_depth = -1,
		.hidden = false,
		.follow_symlinks = false,
		.one_filesystem = true,
		.archives = true,
		.max_file_bytes = 256ull << 20,
		.max_member_bytes = 64ull << 20,
		.max_archive_bytes = 1ull << 30,
		.max_ratio = 100.0,
		.max_entries = 100000,
		.max_nesting = 4,
		.max_text_bytes = 64ull << 20,
		.report_excluded = true,
		.tool_timeout_s = 30,
	};
}

struct dk_chunk_params dk_chunk_default_params(void)
{
	return (struct dk_chunk_params){.max_tokens = 512, .overlap_tokens = 64};
}

static magic_t open_magic(char *err, size_t n)
{
	magic_t m = magic_open(MAGIC_MIME_TYPE | MAGIC_MIME_ENCODING | MAGIC_ERROR);
	if (!m) {
		dk_err(err, n, DK_FATAL, "cannot start libmagic: %s", strerror(errno));
		return NULL;
	}
	if (magic_load(m, NULL) != 0) {
		dk_err(err, n, DK_FATAL, "cannot load the libmagic database: %s", magic_error(m));
		magic_close(m);
		return NULL;
	}
	return m;
}

enum dk_status dk_ingest_new(struct dk_ingest **out, const struct dk_ingest_params *p)
{
	*out = NULL;
	struct dk_ingest *ing = calloc(1, sizeof *ing);
	if (!ing)
		return DK_FATAL;
	ing->p = p ? *p : dk_ingest_default_params();
	*out = ing;
	ing->magic = open_magic(ing->err, sizeof ing->err);
	return ing->magic ? DK_OK : DK_FATAL;
}

const char *dk_ingest_error(const struct dk_ingest *ing)
{
	return ing ? ing->err : "out of memory";
}

void dk_ingest_stats(const struct dk_ingest *ing, struct dk_ingest_stats *st)
{
	*st = ing->st;
}

enum dk_status dk_ingest_add(struct dk_ingest *ing, const char *input)
{
	char **n = realloc(ing->inputs, (ing->n_inputs + 1) * sizeof *n);
	if (!n)
		return dk_err(ing->err, sizeof ing->err, DK_FATAL, "out of memory");
	ing->inputs = n;
	if (!(n[ing->n_inputs] = strdup(input)))
		return dk_err(ing->err, sizeof ing->err, DK_FATAL, "out of memory");
	ing->n_inputs++;
	return DK_OK;
}

static void dir_pop(struct dk_ingest *ing)
{
	struct dirframe *d = &ing->dirs[--ing->n_dirs];
	for (size_t i = 0; i < d->n; i++)
		free(d->names[i]);
	free(d->names);
	free(d->fs);
	free(d->rel);
	free(d->disp);
}

static void arc_pop(struct dk_ingest *ing)
{
	struct arcframe *f = &ing->arcs[--ing->n_arcs];
	archive_read_free(f->a);
	if (f->fd >= 0)
		close(f->fd);
	dk_buf_free(&f->data);
	free(f->disp);
	free(f->member);
	free(f->rel);
	if (!ing->n_arcs) {
		free(ing->arc_fs);
		ing->arc_fs = NULL;
	}
}

void dk_ingest_free(struct dk_ingest *ing)
{
	if (!ing)
		return;
	while (ing->n_arcs)
		arc_pop(ing);
	while (ing->n_dirs)
		dir_pop(ing);
	free(ing->arcs);
	free(ing->dirs);
	for (size_t i = 0; i < ing->n_inputs; i++)
		free(ing->inputs[i]);
	free(ing->inputs);
	free(ing->line);
	if (ing->magic)
		magic_close(ing->magic);
	struct dk_buf *bufs[] = {&ing->path, &ing->fs_path, &ing->member, &ing->mime, &ing->charset,
				 &ing->detail, &ing->text, &ing->raw};
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
		dk_buf_free(bufs[i]);
	free(ing);
}

/* ---- records ---- */

static void rec_begin(struct dk_ingest *ing, const char *disp, const char *fs, const char *member, int depth)
{
	dk_buf_clear(&ing->path);
	dk_buf_puts(&ing->path, disp);
	dk_buf_clear(&ing->fs_path);
	dk_buf_puts(&ing->fs_path, fs ? fs : "");
	dk_buf_clear(&ing->member);
	if (member)
		dk_buf_puts(&ing->member, member);
	dk_buf_clear(&ing->mime);
	dk_buf_puts(&ing->mime, "application/octet-stream");
	dk_buf_clear(&ing->charset);
	dk_buf_puts(&ing->charset, "binary");
	dk_buf_clear(&ing->detail);
	dk_buf_clear(&ing->text);
	struct dk_doc *d = &ing->doc;
	memset(d, 0, sizeof *d);
	d->path = ing->path.data;
	d->fs_path = ing->fs_path.data;
	d->member = member ? ing->member.data : NULL;
	d->mime = ing->mime.data;
	d->charset = ing->charset.data;
	d->depth = depth;
	d->action = DK_DOC_SKIP;
}

static void rec_mime(struct dk_ingest *ing, const char *mime, const char *cs)
{
	dk_buf_clear(&ing->mime);
	dk_buf_puts(&ing->mime, mime);
	dk_buf_clear(&ing->charset);
	dk_buf_puts(&ing->charset, cs);
	ing->doc.mime = ing->mime.data;
	ing->doc.charset = ing->charset.data;
}

static void rec_skip(struct dk_ingest *ing, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void rec_skip(struct dk_ingest *ing, const char *reason, const char *fmt, ...)
{
	char msg[DK_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	dk_verr(msg, sizeof msg, DK_SKIP, fmt, ap);
	va_end(ap);
	dk_buf_clear(&ing->detail);
	dk_buf_puts(&ing->detail, msg);
	ing->doc.action = DK_DOC_SKIP;
	ing->doc.skip_reason = reason;
	ing->doc.detail = ing->detail.data;
	ing->doc.text = NULL;
	ing->doc.text_len = 0;
}

/* A file or member the globs filter out: a record that says so (1) when
 * report_excluded, else nothing (0).  Its bytes are not read. */
static int rec_excluded(struct dk_ingest *ing, const char *disp, const char *fs, const char *member,
			int depth, uint64_t bytes)
{
	if (!ing->p.report_excluded)
		return 0;
	rec_begin(ing, disp, fs, member, depth);
	ing->doc.bytes = bytes;
	rec_skip(ing, "excluded", "not processing '%s': excluded by the input globs", disp);
	return 1;
}

static void rec_done(struct dk_ingest *ing)
{
	ing->doc.input = ing->next_input ? (int)ing->next_input - 1 : 0;
	ing->st.docs++;
	ing->st.bytes_read += ing->doc.bytes;
	if (ing->doc.action == DK_DOC_EXTRACT) {
		ing->st.extracted++;
		ing->st.text_bytes += ing->doc.text_len;
	} else {
		ing->st.skipped++;
	}
}

/* strerror, lowercased as the house style wants */
static const char *lerr(int e, char *buf, size_t n)
{
	snprintf(buf, n, "%s", strerror(e));
	if (buf[0] && isupper((unsigned char)buf[0]) && !(buf[1] && isupper((unsigned char)buf[1])))
		buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

/* libarchive's message, lowercased like ours ("Truncated input" -> "truncated input") */
static const char *aerr(struct archive *a, const char *fallback)
{
	static __thread char buf[DK_ERRMSG_MAX];
	const char *m = archive_error_string(a);
	if (!m || !*m)
		return fallback;
	snprintf(buf, sizeof buf, "%s", m);
	if (isupper((unsigned char)buf[0]) && !isupper((unsigned char)buf[1]))
		buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

/* The skip reason for a libarchive failure: password-protected archives
 * (7z with encrypted headers, zip with encrypted central data) are "encrypted". */
static const char *areason(struct archive *a)
{
	const char *m = archive_error_string(a);
	if (m && (strcasestr(m, "encrypt") || strcasestr(m, "passphrase") || strcasestr(m, "password")))
		return "encrypted";
	return "archive-error";
}

/* "text/plain; charset=utf-8" -> mime, charset */
static void detect(struct dk_ingest *ing, const void *data, size_t n)
{
	char mime[256] = "application/octet-stream", cs[64] = "binary";
	const char *r = n ? magic_buffer(ing->magic, data, n < HEAD_BYTES ? n : HEAD_BYTES) : "inode/x-empty; charset=binary";
	if (r) {
		const char *semi = strchr(r, ';');
		size_t l = semi ? (size_t)(semi - r) : strlen(r);
		if (l >= sizeof mime)
			l = sizeof mime - 1;
		memcpy(mime, r, l);
		mime[l] = 0;
		const char *c = semi ? strstr(semi, "charset=") : NULL;
		if (c)
			snprintf(cs, sizeof cs, "%s", c + 8);
	}
	rec_mime(ing, mime, cs);
}

static bool is_archive_mime(const char *m)
{
	static const char *const list[] = {
		"application/zip", "application/x-zip-compressed", "application/java-archive",
		"application/x-tar", "application/x-gtar", "application/x-ustar", "application/gzip",
		"application/x-gzip", "application/x-bzip2", "application/x-xz", "application/zstd",
		"application/x-zstd", "application/x-7z-compressed", "application/x-cpio",
		"application/x-iso9660-image", "application/x-archive", "application/x-debian-package",
		"application/vnd.debian.binary-package", "application/x-rar", "application/vnd.rar",
		"application/x-rar-compressed", "application/x-lzma", "application/x-lzip", "application/x-lz4",
		"application/x-compress", "application/vnd.ms-cab-compressed", "application/x-xar",
		"application/x-lha", "application/x-lharc", "application/x-rpm", "application/x-bzip",
		NULL};
	for (int i = 0; list[i]; i++)
		if (!strcmp(m, list[i]))
			return true;
	return false;
}

static bool is_office(const char *fmt)
{
	static const char *const list[] = {"docx", "xlsx", "pptx", "odt", "ods", "odp", "epub", NULL};
	for (int i = 0; fmt && list[i]; i++)
		if (!strcmp(fmt, list[i]))
			return true;
	return false;
}

/* The formats whose extractor reads text and rewrites it: raw_text takes
 * their characters as they are. */
static bool markup_format(const char *fmt)
{
	static const char *const list[] = {"html", "xml", "json", "jsonl", "csv", "tsv", "markdown", NULL};
	for (int i = 0; fmt && list[i]; i++)
		if (!strcmp(fmt, list[i]))
			return true;
	return false;
}

/* Extracts ing->raw (already detected) into the record. */
static void extract_raw(struct dk_ingest *ing, const char *fs_for_tools)
{
	struct dk_doc *d = &ing->doc;
	if (!ing->raw.len) {
		rec_skip(ing, "empty", "nothing to extract from '%s': empty file", d->path);
		return;
	}
	const char *fmt = dk_extract_format(d->mime, d->charset, d->path);
	if (ing->p.no_extract) {
		if (fmt) {
			d->action = DK_DOC_EXTRACT;
			d->format = fmt;
		} else {
			bool bin = !strcasecmp(d->charset, "binary");
			rec_skip(ing, bin ? "binary" : "unsupported-type", "cannot extract '%s': %s content (%s)", d->path,
				 bin ? "binary" : "unsupported", d->mime);
		}
		return;
	}
	struct dk_xin in = {
		.data = ing->raw.data,
		.len = ing->raw.len,
		.name = d->path,
		.mime = d->mime,
		.charset = d->charset,
		.fs_path = fs_for_tools,
		.pdftotext = ing->p.pdftotext,
		.max_zip_bytes = ing->p.max_member_bytes * 4,
		.max_text_bytes = ing->p.max_text_bytes,
		.tool_timeout_s = ing->p.tool_timeout_s,
	};
	const char *reason = NULL;
	char err[DK_ERRMSG_MAX];
	dk_buf_clear(&ing->text);
	enum dk_status st;
	if (ing->p.raw_text && markup_format(fmt)) {
		/* as the plain-text extractor takes it: UTF-8, LF newlines */
		char cerr[256];
		st = DK_OK;
		if (dk_to_utf8(in.data, in.len, in.charset, &ing->text, cerr, sizeof cerr)) {
			reason = "decode-error";
			st = dk_err(err, sizeof err, DK_SKIP, "cannot decode '%s': %s", d->path, cerr);
		}
		d->format = "text";
	} else {
		st = dk_extract(&in, &ing->text, &d->format, &reason, err, sizeof err);
	}
	if (st != DK_OK) {
		rec_skip(ing, reason ? reason : "decode-error", "%s", err);
		return;
	}
	if (ing->text.len > ing->p.max_text_bytes && ing->p.max_text_bytes) {
		size_t l = (size_t)ing->p.max_text_bytes;
		while (l && ((unsigned char)ing->text.data[l] & 0xC0) == 0x80)
			l--;
		ing->text.len = l;
		ing->text.data[l] = 0;
		d->truncated = true;
	}
	d->action = DK_DOC_EXTRACT;
	d->text = ing->text.data ? ing->text.data : "";
	d->text_len = ing->text.len;
}

static void hash_raw(struct dk_ingest *ing)
{
	uint8_t dg[32];
	dk_sha256(ing->raw.data ? ing->raw.data : "", ing->raw.len, dg);
	dk_sha256_hex(dg, ing->doc.sha256);
}

/* ---- globs and names ---- */

static bool excluded(const struct dk_ingest *ing, const char *rel)
{
	for (size_t i = 0; i < ing->p.n_exclude; i++) {
		const char *pat = ing->p.exclude[i];
		if (dk_glob_match(pat, rel))
			return true;
		/* a "dir/" + "**" pattern also prunes "dir" itself */
		size_t l = strlen(pat);
		if (l > 3 && !strcmp(pat + l - 3, "/**")) {
			char tmp[4096];
			snprintf(tmp, sizeof tmp, "%.*s", (int)(l - 3), pat);
			if (dk_glob_match(tmp, rel))
				return true;
		}
	}
	return false;
}

static bool included(const struct dk_ingest *ing, const char *rel)
{
	if (!ing->p.n_include)
		return true;
	for (size_t i = 0; i < ing->p.n_include; i++)
		if (dk_glob_match(ing->p.include[i], rel))
			return true;
	return false;
}

static bool archive_ext(const char *name)
{
	static const char *const e[] = {".zip", ".tar", ".tgz", ".tbz", ".tbz2", ".txz", ".tzst", ".gz", ".bz2", ".xz",
					".zst", ".7z", ".cpio", ".iso", ".a", ".ar", ".deb", ".rar", ".jar", ".lz",
					".lzma", ".lz4", ".Z", ".cab", ".xar", ".rpm", NULL};
	size_t n = strlen(name);
	for (int i = 0; e[i]; i++) {
		size_t k = strlen(e[i]);
		if (n > k && !strcasecmp(name + n - k, e[i]))
			return true;
	}
	return false;
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a);
	if (!la)
		return strdup(b);
	char *s = malloc(la + strlen(b) + 2);
	if (s)
		sprintf(s, "%s%s%s", a, a[la - 1] == '/' ? "" : "/", b);
	return s;
}

/* ---- archives ---- */

static struct archive *arc_new(void)
{
	struct archive *a = archive_read_new();
	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	archive_read_support_format_raw(a);
	return a;
}

/* Opens an archive frame; on failure fills a skip record and returns -1. */
static int arc_push(struct dk_ingest *ing, int fd, struct dk_buf *data, const char *disp, const char *member,
		    const char *rel, int nest)
{
	if (ing->n_arcs == ing->cap_arcs) {
		size_t nc = ing->cap_arcs ? ing->cap_arcs * 2 : 4;
		struct arcframe *n = realloc(ing->arcs, nc * sizeof *n);
		if (!n)
			return -1;
		ing->arcs = n;
		ing->cap_arcs = nc;
	}
	struct archive *a = arc_new();
	int r;
	if (fd >= 0)
		r = archive_read_open_fd(a, fd, 65536);
	else
		r = archive_read_open_memory(a, data->data, data->len);
	if (r != ARCHIVE_OK) {
		rec_skip(ing, areason(a), "cannot open '%s': %s", disp, aerr(a, "not a readable archive"));
		archive_read_free(a);
		return -1;
	}
	struct arcframe *f = &ing->arcs[ing->n_arcs++];
	memset(f, 0, sizeof *f);
	f->a = a;
	f->fd = fd;
	f->nest = nest;
	f->disp = strdup(disp);
	f->member = member ? strdup(member) : NULL;
	f->rel = strdup(rel);
	snprintf(f->mime, sizeof f->mime, "%s", ing->doc.mime ? ing->doc.mime : "application/octet-stream");
	f->bytes = data ? data->len : ing->arc_packed;
	if (data) { /* the frame takes the bytes: libarchive reads them in place */
		f->data = *data;
		memset(data, 0, sizeof *data);
	}
	return 0;
}

static bool unsafe_member(const char *name)
{
	if (name[0] == '/' || name[0] == '\\')
		return true;
	if (isalpha((unsigned char)name[0]) && name[1] == ':')
		return true;
	const char *p = name;
	while (*p) {
		size_t l = strcspn(p, "/\\");
		if (l == 2 && p[0] == '.' && p[1] == '.')
			return true;
		p += l;
		if (*p)
			p++;
	}
	return false;
}

static bool hidden_member(const char *name)
{
	const char *p = name;
	while (*p) {
		size_t l = strcspn(p, "/");
		if (l && p[0] == '.' && !(l == 1) && !(l == 2 && p[1] == '.'))
			return true;
		p += l;
		if (*p)
			p++;
	}
	return false;
}

static void abort_archives(struct dk_ingest *ing)
{
	while (ing->n_arcs)
		arc_pop(ing);
}

/* Name of the only member of a single-file compressed stream. */
static void raw_name(const char *disp, char *out, size_t n)
{
	const char *b = strrchr(disp, '/');
	b = b ? b + 1 : disp;
	snprintf(out, n, "%s", b);
	static const char *const e[] = {".gz", ".bz2", ".xz", ".zst", ".lz", ".lzma", ".lz4", ".Z", ".z", NULL};
	size_t l = strlen(out);
	for (int i = 0; e[i]; i++) {
		size_t k = strlen(e[i]);
		if (l > k && !strcmp(out + l - k, e[i])) {
			out[l - k] = 0;
			return;
		}
	}
	if (!strcmp(out + (l > 4 ? l - 4 : 0), ".tgz"))
		strcpy(out + l - 4, ".tar");
	else
		snprintf(out, n, "data");
}

static int classify_member(struct dk_ingest *ing, struct arcframe *f, const char *disp, const char *member,
			   const char *rel, bool only_archive);

/* One step in the top archive: 1 = a record is ready, 0 = keep going. */
static int arc_step(struct dk_ingest *ing)
{
	struct arcframe *f = &ing->arcs[ing->n_arcs - 1];
	struct archive_entry *e;
	int r = archive_read_next_header(f->a, &e);
	if (r == ARCHIVE_EOF) {
		bool empty = f->files == 0 && !f->failed;
		if (empty) {
			rec_begin(ing, f->disp, ing->arc_fs, f->member, f->nest - 1);
			rec_mime(ing, f->mime, "binary");
			ing->doc.bytes = f->bytes;
			rec_skip(ing, "empty", "nothing to extract from '%s': archive has no files", f->disp);
		}
		arc_pop(ing);
		return empty;
	}
	if (r < ARCHIVE_WARN) {
		int ret = 0;
		if (!f->failed) {
			rec_begin(ing, f->disp, ing->arc_fs, f->member, f->nest - 1);
			rec_mime(ing, f->mime, "binary");
			ing->doc.bytes = f->bytes;
			rec_skip(ing, areason(f->a), "cannot read '%s': %s", f->disp, aerr(f->a, "damaged archive"));
			ret = 1;
		}
		arc_pop(ing);
		return ret;
	}
	const char *name = archive_entry_pathname_utf8(e);
	if (!name)
		name = archive_entry_pathname(e);
	char rawbuf[512];
	if (archive_format(f->a) == ARCHIVE_FORMAT_RAW) {
		if (archive_filter_code(f->a, 0) == ARCHIVE_FILTER_NONE) {
			/* libmagic saw a compressed stream that libarchive cannot
			 * decompress: "raw" would hand back the same bytes forever */
			rec_begin(ing, f->disp, ing->arc_fs, f->member, f->nest - 1);
			rec_mime(ing, f->mime, "binary");
			ing->doc.bytes = f->bytes;
			rec_skip(ing, "unsupported-type", "cannot open '%s': compression format not supported", f->disp);
			f->failed = true;
			arc_pop(ing);
			return 1;
		}
		raw_name(f->disp, rawbuf, sizeof rawbuf);
		name = rawbuf;
	}
	if (!name || !*name)
		name = "unnamed";
	while (name[0] == '.' && name[1] == '/')
		name += 2;
	mode_t type = archive_entry_filetype(e);
	/* every header counts, directories and filtered ones included, so that
	 * millions of empty entries cannot keep the walk busy */
	if (++ing->arc_entries > ing->p.max_entries) {
		rec_begin(ing, f->disp, ing->arc_fs, f->member, f->nest - 1);
		rec_mime(ing, f->mime, "binary");
		ing->doc.bytes = f->bytes;
		rec_skip(ing, "limit-exceeded", "stopped reading '%s': more than %llu entries", f->disp,
			 (unsigned long long)ing->p.max_entries);
		abort_archives(ing);
		return 1;
	}
	if (type == AE_IFDIR)
		return 0;
	char *disp = malloc(strlen(f->disp) + strlen(name) + 3);
	char *member = malloc((f->member ? strlen(f->member) : 0) + strlen(name) + 3);
	char *rel = malloc(strlen(f->rel) + strlen(name) + 3);
	if (!disp || !member || !rel) {
		free(disp);
		free(member);
		free(rel);
		return 0;
	}
	sprintf(disp, "%s!/%s", f->disp, name);
	if (f->member)
		sprintf(member, "%s!/%s", f->member, name);
	else
		strcpy(member, name);
	sprintf(rel, "%s!/%s", f->rel, name);
	int ret = 1;
	f->files++; /* filtered members count: the archive is not "empty" */
	bool unsafe = unsafe_member(name);
	if (!unsafe && !ing->p.hidden && hidden_member(name)) {
		ret = 0;
		goto out;
	}
	bool want = included(ing, name) || included(ing, rel);
	if (!unsafe && (excluded(ing, name) || excluded(ing, rel) || (!want && !archive_ext(name)))) {
		ret = rec_excluded(ing, disp, ing->arc_fs, member, f->nest,
				   archive_entry_size_is_set(e) ? (uint64_t)archive_entry_size(e) : 0);
		goto out;
	}
	rec_begin(ing, disp, ing->arc_fs, member, f->nest);
	ing->doc.bytes = archive_entry_size_is_set(e) ? (uint64_t)archive_entry_size(e) : 0;
	if (unsafe) {
		rec_skip(ing, "unsafe-path", "not following '%s': member name '%s' escapes the archive", disp, name);
		goto out;
	}
	if (type == AE_IFLNK || archive_entry_hardlink(e)) {
		rec_skip(ing, "symlink", "not following '%s': link inside the archive", disp);
		goto out;
	}
	if (type != AE_IFREG && type != 0) {
		rec_skip(ing, "special-file", "not reading '%s': not a regular file", disp);
		goto out;
	}
	if (archive_entry_is_encrypted(e) || archive_entry_is_data_encrypted(e)) {
		rec_skip(ing, "encrypted", "cannot read '%s': member is encrypted", disp);
		goto out;
	}
	if (archive_entry_size_is_set(e) && (uint64_t)archive_entry_size(e) > ing->p.max_member_bytes) {
		uint64_t sz = (uint64_t)archive_entry_size(e);
		/* skipping a member of a compressed stream means decompressing it */
		if (archive_filter_code(f->a, 0) != ARCHIVE_FILTER_NONE) {
			ing->arc_expanded += sz;
			if (ing->arc_expanded > ing->p.max_archive_bytes) {
				rec_skip(ing, "limit-exceeded",
					 "stopped reading '%s': skipping %llu bytes would expand beyond %llu bytes", disp,
					 (unsigned long long)sz, (unsigned long long)ing->p.max_archive_bytes);
				abort_archives(ing);
				goto out;
			}
		}
		rec_skip(ing, "too-large", "not reading '%s': %llu bytes exceeds the member limit of %llu", disp,
			 (unsigned long long)sz, (unsigned long long)ing->p.max_member_bytes);
		goto out;
	}
	dk_buf_clear(&ing->raw);
	char buf[65536];
	ssize_t k;
	uint64_t floor_bytes = 1u << 20; /* tiny archives of text compress far beyond any ratio */
	for (;;) {
		k = archive_read_data(f->a, buf, sizeof buf);
		if (k <= 0)
			break;
		ing->arc_expanded += (uint64_t)k;
		if (ing->raw.len + (size_t)k > ing->p.max_member_bytes) {
			ing->doc.bytes = ing->raw.len + (uint64_t)k;
			rec_skip(ing, "too-large", "not reading '%s': expands beyond the member limit of %llu bytes",
				 disp, (unsigned long long)ing->p.max_member_bytes);
			goto out;
		}
		double ratio = ing->arc_packed ? (double)ing->arc_expanded / (double)ing->arc_packed : 0;
		if (ing->arc_expanded > ing->p.max_archive_bytes ||
		    (ing->arc_expanded > floor_bytes && ratio > ing->p.max_ratio)) {
			ing->doc.bytes = ing->raw.len + (uint64_t)k;
			rec_skip(ing, "limit-exceeded",
				 "stopped reading '%s': expanded %llu bytes from %llu (ratio %.0f, limits %llu bytes, ratio %.0f)",
				 disp, (unsigned long long)ing->arc_expanded, (unsigned long long)ing->arc_packed, ratio,
				 (unsigned long long)ing->p.max_archive_bytes, ing->p.max_ratio);
			abort_archives(ing);
			goto out;
		}
		if (dk_buf_append(&ing->raw, buf, (size_t)k)) {
			rec_skip(ing, "limit-exceeded", "cannot read '%s': out of memory", disp);
			goto out;
		}
	}
	if (k < 0) {
		bool enc = archive_entry_is_encrypted(e);
		rec_skip(ing, enc ? "encrypted" : areason(f->a), "cannot read '%s': %s", disp, aerr(f->a, "damaged member"));
		if (k == ARCHIVE_FATAL)
			f->failed = true;
		goto out;
	}
	ing->doc.bytes = ing->raw.len;
	int c = classify_member(ing, f, disp, member, rel, !want);
	if (c == 0)
		ret = 0; /* a nested archive was pushed: its members are the records */
	else if (c < 0) /* named like an archive but not one, and filtered out */
		ret = rec_excluded(ing, disp, ing->arc_fs, member, f->nest, ing->raw.len);
out:
	free(disp);
	free(member);
	free(rel);
	return ret;
}

/* Detects ing->raw of a member; pushes nested archives (0) or extracts into
 * the record (1); -1 = not an archive and only_archive (filtered out). */
static int classify_member(struct dk_ingest *ing, struct arcframe *f, const char *disp, const char *member,
			   const char *rel, bool only_archive)
{
	hash_raw(ing);
	detect(ing, ing->raw.data, ing->raw.len);
	const char *fmt = dk_extract_format(ing->doc.mime, ing->doc.charset, disp);
	if (ing->p.archives && !is_office(fmt) && is_archive_mime(ing->doc.mime)) {
		if (f->nest > ing->p.max_nesting) {
			rec_skip(ing, "limit-exceeded", "not opening '%s': archives nested deeper than %d", disp,
				 ing->p.max_nesting);
			return 1;
		}
		/* on failure the skip record is set */
		return arc_push(ing, -1, &ing->raw, disp, member, rel, f->nest + 1) == 0 ? 0 : 1;
	}
	if (only_archive)
		return -1;
	extract_raw(ing, NULL);
	return 1;
}

/* ---- files and directories ---- */

static int read_all(int fd, struct dk_buf *b, uint64_t limit)
{
	dk_buf_clear(b);
	for (;;) {
		if (dk_buf_reserve(b, 65536))
			return -1;
		ssize_t k = read(fd, b->data + b->len, 65536);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (k == 0)
			break;
		b->len += (size_t)k;
		if (b->len > limit) {
			errno = EFBIG;
			return -1;
		}
	}
	b->data[b->len] = 0;
	return 0;
}

/* A regular file: 1 = record ready, 0 = an archive frame was pushed. */
static int do_file(struct dk_ingest *ing, const char *fs, const char *disp, const char *rel, const struct stat *lst,
		   bool only_archive)
{
	char eb[128];
	rec_begin(ing, disp, fs, NULL, 0);
	ing->doc.bytes = (uint64_t)lst->st_size;
	int fd = open(fs, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rec_skip(ing, "unreadable", "cannot open '%s': %s", disp, lerr(errno, eb, sizeof eb));
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		rec_skip(ing, "special-file", "not reading '%s': not a regular file", disp);
		return 1;
	}
	ing->doc.bytes = (uint64_t)st.st_size;
	/* blocking reads from here: O_NONBLOCK only guarded the open of a FIFO */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	char *head = malloc(HEAD_BYTES);
	if (!head) {
		close(fd);
		rec_skip(ing, "unreadable", "cannot read '%s': out of memory", disp);
		return 1;
	}
	ssize_t hn = pread(fd, head, HEAD_BYTES, 0);
	if (hn < 0) {
		rec_skip(ing, "unreadable", "cannot read '%s': %s", disp, lerr(errno, eb, sizeof eb));
		free(head);
		close(fd);
		return 1;
	}
	detect(ing, head, (size_t)hn);
	free(head);
	const char *fmt = dk_extract_format(ing->doc.mime, ing->doc.charset, disp);
	if (ing->p.archives && !is_office(fmt) && is_archive_mime(ing->doc.mime)) {
		free(ing->arc_fs);
		ing->arc_fs = strdup(fs);
		ing->arc_packed = (uint64_t)st.st_size;
		ing->arc_expanded = 0;
		ing->arc_entries = 0;
		if (arc_push(ing, fd, NULL, disp, NULL, rel, 1) == 0)
			return 0;
		close(fd);
		free(ing->arc_fs);
		ing->arc_fs = NULL;
		return 1;
	}
	if (only_archive) { /* named like an archive, but filtered out by include */
		close(fd);
		return rec_excluded(ing, disp, fs, NULL, 0, (uint64_t)st.st_size);
	}
	if ((uint64_t)st.st_size > ing->p.max_file_bytes) {
		close(fd);
		rec_skip(ing, "too-large", "not reading '%s': %llu bytes exceeds the file limit of %llu", disp,
			 (unsigned long long)st.st_size, (unsigned long long)ing->p.max_file_bytes);
		return 1;
	}
	int r = read_all(fd, &ing->raw, ing->p.max_file_bytes);
	int e = errno;
	close(fd);
	if (r != 0) {
		if (e == EFBIG)
			rec_skip(ing, "too-large", "not reading '%s': grew beyond the file limit of %llu", disp,
				 (unsigned long long)ing->p.max_file_bytes);
		else
			rec_skip(ing, "unreadable", "cannot read '%s': %s", disp, lerr(e, eb, sizeof eb));
		return 1;
	}
	ing->doc.bytes = ing->raw.len;
	hash_raw(ing);
	extract_raw(ing, fs);
	return 1;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int dir_push(struct dk_ingest *ing, const char *fs, const char *disp, const char *rel, int depth,
		    const struct stat *st)
{
	char eb[128];
	DIR *dh = opendir(fs);
	if (!dh) {
		rec_begin(ing, disp, fs, NULL, 0);
		rec_mime(ing, "inode/directory", "binary");
		rec_skip(ing, "unreadable", "cannot open '%s': %s", disp, lerr(errno, eb, sizeof eb));
		return 1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(dh))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!ing->p.hidden && de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof *nn);
			if (!nn)
				break;
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name)))
			break;
		n++;
	}
	closedir(dh);
	if (n) /* an empty directory has no array: qsort(NULL, 0) is undefined */
		qsort(names, n, sizeof *names, cmp_names);
	if (ing->n_dirs == ing->cap_dirs) {
		size_t nc = ing->cap_dirs ? ing->cap_dirs * 2 : 16;
		struct dirframe *nd = realloc(ing->dirs, nc * sizeof *nd);
		if (!nd) {
			for (size_t i = 0; i < n; i++)
				free(names[i]);
			free(names);
			return 0;
		}
		ing->dirs = nd;
		ing->cap_dirs = nc;
	}
	struct dirframe *d = &ing->dirs[ing->n_dirs++];
	*d = (struct dirframe){.fs = strdup(fs), .rel = strdup(rel), .disp = strdup(disp), .names = names, .n = n,
			       .depth = depth, .dev = st->st_dev, .ino = st->st_ino};
	return 0;
}

/* Handles one path: 1 = a record is ready, 0 = continue. explicit = named
 * by the user (always followed, never filtered). */
static int do_path(struct dk_ingest *ing, const char *fs, const char *disp, const char *rel, int depth, bool explicit)
{
	char eb[128];
	struct stat st;
	int r = explicit ? stat(fs, &st) : lstat(fs, &st);
	if (r != 0) {
		rec_begin(ing, disp, fs, NULL, 0);
		rec_skip(ing, "unreadable", "cannot open '%s': %s", disp, lerr(errno, eb, sizeof eb));
		return 1;
	}
	if (S_ISLNK(st.st_mode)) {
		if (excluded(ing, rel))
			return rec_excluded(ing, disp, fs, NULL, 0, 0);
		if (!ing->p.follow_symlinks) {
			rec_begin(ing, disp, fs, NULL, 0);
			rec_mime(ing, "inode/symlink", "binary");
			rec_skip(ing, "symlink", "not following '%s': symbolic link (use --follow-symlinks)", disp);
			return 1;
		}
		if (stat(fs, &st) != 0) {
			rec_begin(ing, disp, fs, NULL, 0);
			rec_mime(ing, "inode/symlink", "binary");
			rec_skip(ing, errno == ELOOP ? "symlink-loop" : "unreadable", "cannot follow '%s': %s", disp,
				 lerr(errno, eb, sizeof eb));
			return 1;
		}
	}
	if (S_ISDIR(st.st_mode)) {
		if (!explicit && excluded(ing, rel))
			return 0;
		if (!explicit && ing->p.max_depth >= 0 && depth + 1 > ing->p.max_depth)
			return 0;
		for (size_t i = 0; i < ing->n_dirs; i++) {
			if (ing->dirs[i].dev == st.st_dev && ing->dirs[i].ino == st.st_ino) {
				rec_begin(ing, disp, fs, NULL, 0);
				rec_mime(ing, "inode/directory", "binary");
				rec_skip(ing, "symlink-loop", "not entering '%s': it loops back to '%s'", disp,
					 ing->dirs[i].disp);
				return 1;
			}
		}
		if (!explicit && ing->p.one_filesystem && st.st_dev != ing->root_dev) {
			rec_begin(ing, disp, fs, NULL, 0);
			rec_mime(ing, "inode/directory", "binary");
			rec_skip(ing, "other-filesystem", "not entering '%s': another filesystem", disp);
			return 1;
		}
		return dir_push(ing, fs, disp, rel, explicit ? 0 : depth + 1, &st);
	}
	bool only_archive = false;
	if (!explicit && !S_ISDIR(st.st_mode)) {
		if (excluded(ing, rel))
			return rec_excluded(ing, disp, fs, NULL, 0, (uint64_t)st.st_size);
		if (!included(ing, rel)) {
			if (!(ing->p.archives && archive_ext(rel)))
				return rec_excluded(ing, disp, fs, NULL, 0, (uint64_t)st.st_size);
			only_archive = true;
		}
	}
	if (!S_ISREG(st.st_mode)) {
		rec_begin(ing, disp, fs, NULL, 0);
		rec_mime(ing, S_ISFIFO(st.st_mode) ? "inode/fifo" : S_ISSOCK(st.st_mode) ? "inode/socket"
			 : S_ISCHR(st.st_mode) ? "inode/chardevice" : "inode/blockdevice", "binary");
		rec_skip(ing, "special-file", "not reading '%s': not a regular file", disp);
		return 1;
	}
	return do_file(ing, fs, disp, rel, &st, only_archive);
}

static int start_input(struct dk_ingest *ing, const char *in)
{
	struct stat st;
	ing->root_input = in;
	if (stat(in, &st) == 0)
		ing->root_dev = st.st_dev;
	const char *base = strrchr(in, '/');
	/* globs see paths relative to the input; a single file is its own name */
	return do_path(ing, in, in, base && base[1] ? base + 1 : in, 0, true);
}

static int dir_step(struct dk_ingest *ing)
{
	struct dirframe *d = &ing->dirs[ing->n_dirs - 1];
	if (d->i >= d->n) {
		dir_pop(ing);
		return 0;
	}
	const char *name = d->names[d->i++];
	char *fs = join(d->fs, name), *disp = join(d->disp, name), *rel = join(d->rel, name);
	int r = 0;
	if (fs && disp && rel)
		r = do_path(ing, fs, disp, rel, d->depth, false);
	free(fs);
	free(disp);
	free(rel);
	return r;
}

/* Lines of the stdin path list are paths: longer ones cannot name a file. */
enum { LIST_LINE_MAX = 4096 };

/* Next line of the stdin list into ing->line: its length, or -1 at the end.
 * A longer line than LIST_LINE_MAX is read to its end but only its start
 * is kept (*too_long), so one endless line cannot exhaust memory. */
static ssize_t list_line(struct dk_ingest *ing, bool *too_long)
{
	*too_long = false;
	if (ing->line_cap < LIST_LINE_MAX + 1) {
		char *p = realloc(ing->line, LIST_LINE_MAX + 1);
		if (!p)
			return -1;
		ing->line = p;
		ing->line_cap = LIST_LINE_MAX + 1;
	}
	size_t n = 0;
	int c = EOF;
	while ((c = getc_unlocked(stdin)) != EOF && c != '\n') {
		if (n < LIST_LINE_MAX)
			ing->line[n++] = (char)c;
		else
			*too_long = true;
	}
	ing->line[n] = 0;
	if (c == EOF && n == 0)
		return -1;
	return (ssize_t)n;
}

enum dk_status dk_ingest_next(struct dk_ingest *ing, const struct dk_doc **doc)
{
	*doc = NULL;
	if (!ing->magic)
		return DK_FATAL;
	for (;;) {
		int r;
		if (ing->n_arcs)
			r = arc_step(ing);
		else if (ing->n_dirs)
			r = dir_step(ing);
		else if (ing->reading_stdin) {
			bool too_long;
			ssize_t k = list_line(ing, &too_long);
			if (k < 0) {
				ing->reading_stdin = false;
				continue;
			}
			if (too_long) {
				size_t cut = 256; /* the record shows the start of the line */
				while (cut && ((unsigned char)ing->line[cut] & 0xC0) == 0x80)
					cut--;
				memcpy(ing->line + cut, "...", 4);
				rec_begin(ing, ing->line, NULL, NULL, 0);
				rec_skip(ing, "unreadable", "cannot open '%.60s...': name longer than %d bytes in the input list",
					 ing->line, LIST_LINE_MAX);
				r = 1;
			} else {
				while (k > 0 && (ing->line[k - 1] == '\n' || ing->line[k - 1] == '\r'))
					ing->line[--k] = 0;
				if (!k)
					continue;
				r = start_input(ing, ing->line);
			}
		} else if (ing->next_input < ing->n_inputs) {
			const char *in = ing->inputs[ing->next_input++];
			if (!strcmp(in, "-")) {
				ing->reading_stdin = true;
				continue;
			}
			r = start_input(ing, in);
		} else {
			return DK_EOF;
		}
		if (r) {
			rec_done(ing);
			*doc = &ing->doc;
			return DK_OK;
		}
	}
}

enum dk_status dk_extract_buffer(const void *data, size_t len, const char *name, const char *mime, char **text,
				 size_t *text_len, const char **reason, char *err, size_t n)
{
	*text = NULL;
	*text_len = 0;
	*reason = NULL;
	char mbuf[256] = "", cs[64] = "utf-8";
	if (!mime) {
		magic_t m = open_magic(err, n);
		if (!m) {
			*reason = "unsupported-type";
			return DK_FATAL;
		}
		const char *r = magic_buffer(m, data, len < HEAD_BYTES ? len : HEAD_BYTES);
		if (r) {
			size_t l = strcspn(r, ";");
			snprintf(mbuf, sizeof mbuf, "%.*s", (int)l, r);
			const char *c = strstr(r, "charset=");
			if (c)
				snprintf(cs, sizeof cs, "%s", c + 8);
		}
		magic_close(m);
		mime = mbuf;
	}
	struct dk_ingest_params dp = dk_ingest_default_params();
	struct dk_xin in = {.data = data, .len = len, .name = name ? name : "buffer", .mime = mime, .charset = cs,
			    .max_zip_bytes = 64u << 20, .max_text_bytes = dp.max_text_bytes,
			    .tool_timeout_s = dp.tool_timeout_s};
	struct dk_buf out = {0};
	const char *fmt;
	enum dk_status st = dk_extract(&in, &out, &fmt, reason, err, n);
	if (st != DK_OK) {
		dk_buf_free(&out);
		return st;
	}
	*text_len = out.len;
	*text = dk_buf_steal(&out);
	return DK_OK;
}
