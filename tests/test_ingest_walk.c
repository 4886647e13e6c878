/* ingest walk: order, globs, depth, hidden files, symlinks and loops,
 * special and unreadable files, stdin lists, and archives (every format
 * family, nesting three deep, zip bombs, unsafe member names, encryption,
 * truncation, entry limits).  Archives are built at test time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "docket/ingest.h"
#include "testutil.h"
#include "util/buf.h"
#include "util/sha256.h"

/* ---- helpers ---- */

struct ent {
	const char *name;
	const char *data; /* NULL = directory */
	size_t len;       /* 0 = strlen(data) */
};

static la_ssize_t wr_cb(struct archive *a, void *ud, const void *p, size_t n)
{
	(void)a;
	return dk_buf_append(ud, p, n) ? -1 : (la_ssize_t)n;
}

/* Builds an archive in memory; format/filter are libarchive codes. */
static struct dk_buf make_archive(int format, int filter, const struct ent *e, size_t n)
{
	struct dk_buf b = {0};
	struct archive *a = archive_write_new();
	if (format == ARCHIVE_FORMAT_AR_GNU) /* not in set_format's table */
		assert_int_equal(archive_write_set_format_ar_svr4(a), ARCHIVE_OK);
	else
		assert_int_equal(archive_write_set_format(a, format), ARCHIVE_OK);
	if (filter != ARCHIVE_FILTER_NONE)
		assert_int_equal(archive_write_add_filter(a, filter), ARCHIVE_OK);
	if (format == ARCHIVE_FORMAT_ZIP)
		archive_write_set_options(a, "zip:compression=deflate");
	archive_write_set_bytes_in_last_block(a, 1);
	assert_int_equal(archive_write_open(a, &b, NULL, wr_cb, NULL), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *x = archive_entry_new();
		archive_entry_set_pathname(x, e[i].name);
		size_t len = e[i].data ? (e[i].len ? e[i].len : strlen(e[i].data)) : 0;
		archive_entry_set_filetype(x, e[i].data ? AE_IFREG : AE_IFDIR);
		archive_entry_set_perm(x, 0644);
		archive_entry_set_size(x, (la_int64_t)len);
		archive_entry_set_mtime(x, 1700000000, 0);
		assert_int_equal(archive_write_header(a, x), ARCHIVE_OK);
		if (len)
			assert_int_equal(archive_write_data(a, e[i].data, len), (la_ssize_t)len);
		archive_entry_free(x);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return b;
}

static char *path_in(const char *dir, const char *name)
{
	char *p = malloc(strlen(dir) + strlen(name) + 2);
	sprintf(p, "%s/%s", dir, name);
	return p;
}

static void put(const char *dir, const char *name, const void *data, size_t n)
{
	char *p = path_in(dir, name);
	assert_int_equal(dk_test_write_file(p, data, n), 0);
	free(p);
}

static void put_s(const char *dir, const char *name, const char *s)
{
	put(dir, name, s, strlen(s));
}

static void put_buf(const char *dir, const char *name, struct dk_buf *b)
{
	put(dir, name, b->data, b->len);
	dk_buf_free(b);
}

static void rm_rf(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", dir, dir);
	assert_int_equal(system(cmd), 0);
}

/* One collected record. */
struct rec {
	char *path, *member, *mime, *reason, *detail, *text, *format;
	char sha[65];
	uint64_t bytes;
	bool extract;
};

struct recs {
	struct rec *v;
	size_t n;
};

static char *dup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

static struct recs walk(const struct dk_ingest_params *p, const char *const *inputs, size_t n)
{
	struct dk_ingest *ing;
	assert_int_equal(dk_ingest_new(&ing, p), DK_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(dk_ingest_add(ing, inputs[i]), DK_OK);
	struct recs r = {0};
	const struct dk_doc *d;
	enum dk_status st;
	while ((st = dk_ingest_next(ing, &d)) == DK_OK) {
		r.v = realloc(r.v, (r.n + 1) * sizeof *r.v);
		struct rec *x = &r.v[r.n++];
		memset(x, 0, sizeof *x);
		x->path = dup0(d->path);
		x->member = dup0(d->member);
		x->mime = dup0(d->mime);
		x->reason = dup0(d->skip_reason);
		x->detail = dup0(d->detail);
		x->text = dup0(d->text);
		x->format = dup0(d->format);
		x->extract = d->action == DK_DOC_EXTRACT;
		x->bytes = d->bytes;
		memcpy(x->sha, d->sha256, 65);
		/* every record is complete: extracted with text, or skipped with a reason and detail */
		assert_non_null(d->mime);
		assert_non_null(d->charset);
		if (d->action == DK_DOC_EXTRACT) {
			assert_non_null(d->text);
			assert_int_equal(strlen(d->text), d->text_len);
		} else {
			assert_non_null(d->skip_reason);
			assert_non_null(d->detail);
		}
	}
	assert_int_equal(st, DK_EOF);
	dk_ingest_free(ing);
	return r;
}

static struct recs walk1(const struct dk_ingest_params *p, const char *input)
{
	return walk(p, &input, 1);
}

static void recs_free(struct recs *r)
{
	for (size_t i = 0; i < r->n; i++) {
		struct rec *x = &r->v[i];
		free(x->path);
		free(x->member);
		free(x->mime);
		free(x->reason);
		free(x->detail);
		free(x->text);
		free(x->format);
	}
	free(r->v);
	memset(r, 0, sizeof *r);
}

/* The record whose path ends with suffix (fails if absent). */
static struct rec *find(struct recs *r, const char *suffix)
{
	size_t k = strlen(suffix);
	for (size_t i = 0; i < r->n; i++) {
		size_t l = strlen(r->v[i].path);
		if (l >= k && !strcmp(r->v[i].path + l - k, suffix))
			return &r->v[i];
	}
	fprintf(stderr, "no record ending in '%s'; have:\n", suffix);
	for (size_t i = 0; i < r->n; i++)
		fprintf(stderr, "  %s [%s] %s\n", r->v[i].path, r->v[i].extract ? "extract" : r->v[i].reason,
			r->v[i].detail ? r->v[i].detail : "");
	fail();
	return NULL;
}

static bool has(struct recs *r, const char *suffix)
{
	size_t k = strlen(suffix);
	for (size_t i = 0; i < r->n; i++) {
		size_t l = strlen(r->v[i].path);
		if (l >= k && !strcmp(r->v[i].path + l - k, suffix))
			return true;
	}
	return false;
}

/* ---- directory walk ---- */

static void test_order_globs_depth_hidden(void **state)
{
	(void)state;
	char *dir = dk_test_tmpdir();
	char *p;
	const char *subs[] = {"b", "a", "a/deep", "a/deep/deeper", ".git", "build"};
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		p = path_in(dir, subs[i]);
		assert_int_equal(mkdir(p, 0755), 0);
		free(p);
	}
	put_s(dir, "z.txt", "zed\n");
	put_s(dir, "b/two.txt", "two\n");
	put_s(dir, "a/one.txt", "one\n");
	put_s(dir, "a/one.md", "# one\n");
	put_s(dir, "a/deep/three.txt", "three\n");
	put_s(dir, "a/deep/deeper/four.txt", "four\n");
	put_s(dir, ".hidden.txt", "secret\n");
	put_s(dir, ".git/config", "[core]\n");
	put_s(dir, "build/out.txt", "built\n");

	struct dk_ingest_params prm = dk_ingest_default_params();
	struct recs r = walk1(&prm, dir);
	const char *want[] = {"/a/deep/deeper/four.txt", "/a/deep/three.txt", "/a/one.md", "/a/one.txt",
			      "/b/two.txt", "/build/out.txt", "/z.txt"};
	assert_int_equal(r.n, 7);
	for (size_t i = 0; i < 7; i++) {
		size_t l = strlen(r.v[i].path), k = strlen(want[i]);
		assert_true(l > k);
		assert_string_equal(r.v[i].path + l - k, want[i]);
		assert_true(r.v[i].extract);
	}
	assert_string_equal(find(&r, "/b/two.txt")->text, "two\n");
	recs_free(&r);

	/* include globstar txt, exclude a directory: the .md and build/ vanish */
	const char *inc[] = {"**/*.txt"}, *exc[] = {"build/**"};
	prm.include = inc;
	prm.n_include = 1;
	prm.exclude = exc;
	prm.n_exclude = 1;
	/* the .md is an "excluded" record, unread; build/ is pruned, unseen */
	r = walk1(&prm, dir);
	assert_int_equal(r.n, 6);
	const struct rec *md = find(&r, "/a/one.md");
	assert_false(md->extract);
	assert_string_equal(md->reason, "excluded");
	assert_string_equal(md->sha, "");
	assert_non_null(strstr(md->detail, "excluded by the input globs"));
	assert_false(has(&r, "out.txt"));
	recs_free(&r);
	/* without report_excluded the filtered file gives no record */
	prm.report_excluded = false;
	r = walk1(&prm, dir);
	assert_int_equal(r.n, 5);
	assert_false(has(&r, "one.md"));
	recs_free(&r);

	/* depth 1: the input's entries and one level below */
	prm = dk_ingest_default_params();
	prm.max_depth = 1;
	r = walk1(&prm, dir);
	assert_true(has(&r, "/a/one.txt"));
	assert_false(has(&r, "three.txt"));
	assert_false(has(&r, "four.txt"));
	recs_free(&r);
	prm.max_depth = 0;
	r = walk1(&prm, dir);
	assert_int_equal(r.n, 1);
	assert_true(has(&r, "/z.txt"));
	recs_free(&r);

	/* hidden files only on request */
	prm = dk_ingest_default_params();
	prm.hidden = true;
	r = walk1(&prm, dir);
	assert_int_equal(r.n, 9);
	assert_string_equal(find(&r, "/.hidden.txt")->text, "secret\n");
	assert_true(has(&r, "/.git/config"));
	recs_free(&r);

	/* a file named explicitly is walked whatever the filters say */
	prm = dk_ingest_default_params();
	prm.include = inc;
	prm.n_include = 1;
	p = path_in(dir, "a/one.md");
	r = walk1(&prm, p);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].format, "markdown");
	free(p);
	recs_free(&r);
	rm_rf(dir);
	free(dir);
}

/* raw_text: HTML, JSON and CSV as written (what a file is, for
 * classify-files), plain text as before; off, they go through their
 * extractors */
static void test_raw_text(void **state)
{
	(void)state;
	char *dir = dk_test_tmpdir();
	const char *html = "<!DOCTYPE html>\n<html><body><p>Hi</p><script>x()</script></body></html>\n";
	const char *json = "{\"$schema\": \"s.json\", \"a\": [1, 2]}\n";
	const char *csv = "name,n\nx,1\n";
	put_s(dir, "page.html", html);
	put_s(dir, "conf.json", json);
	put_s(dir, "t.csv", csv);
	put_s(dir, "note.txt", "plain\n");
	for (int raw = 0; raw <= 1; raw++) {
		struct dk_ingest_params prm = dk_ingest_default_params();
		prm.raw_text = raw;
		struct recs r = walk1(&prm, dir);
		assert_int_equal(r.n, 4);
		struct rec *h = find(&r, "/page.html"), *j = find(&r, "/conf.json"), *c = find(&r, "/t.csv");
		assert_true(h->extract && j->extract && c->extract);
		if (raw) {
			assert_string_equal(h->text, html);
			assert_string_equal(j->text, json);
			assert_string_equal(c->text, csv);
			assert_string_equal(h->format, "text");
		} else {
			assert_null(strstr(h->text, "<p>"));
			assert_non_null(strstr(h->text, "Hi"));
			assert_null(strstr(j->text, "{"));
			assert_string_equal(h->format, "html");
		}
		assert_string_equal(find(&r, "/note.txt")->text, "plain\n");
		recs_free(&r);
	}
	rm_rf(dir);
	free(dir);
}

static void test_symlinks_and_loops(void **state)
{
	(void)state;
	char *dir = dk_test_tmpdir();
	char *sub = path_in(dir, "sub");
	assert_int_equal(mkdir(sub, 0755), 0);
	put_s(dir, "sub/real.txt", "real\n");
	char *lnk = path_in(dir, "sub/link.txt"), *loop = path_in(dir, "sub/loop"), *dang = path_in(dir, "dangling");
	assert_int_equal(symlink("real.txt", lnk), 0);
	assert_int_equal(symlink("..", loop), 0); /* sub/loop -> dir: a cycle */
	assert_int_equal(symlink("does-not-exist", dang), 0);

	struct dk_ingest_params prm = dk_ingest_default_params();
	struct recs r = walk1(&prm, dir);
	assert_int_equal(r.n, 4);
	struct rec *x = find(&r, "/sub/link.txt");
	assert_false(x->extract);
	assert_string_equal(x->reason, "symlink");
	assert_non_null(strstr(x->detail, "link.txt"));
	assert_string_equal(find(&r, "/sub/loop")->reason, "symlink");
	assert_string_equal(find(&r, "/dangling")->reason, "symlink");
	assert_true(find(&r, "/sub/real.txt")->extract);
	recs_free(&r);

	prm.follow_symlinks = true;
	r = walk1(&prm, dir);
	x = find(&r, "/sub/link.txt");
	assert_true(x->extract);
	assert_string_equal(x->text, "real\n");
	x = find(&r, "/sub/loop");
	assert_false(x->extract);
	assert_string_equal(x->reason, "symlink-loop");
	assert_non_null(strstr(x->detail, "loop"));
	assert_string_equal(find(&r, "/dangling")->reason, "unreadable");
	assert_int_equal(r.n, 4); /* the loop was not entered: nothing twice */
	recs_free(&r);
	free(sub);
	free(lnk);
	free(loop);
	free(dang);
	rm_rf(dir);
	free(dir);
}

static void test_special_missing_unreadable(void **state)
{
	(void)state;
	char *dir = dk_test_tmpdir();
	assert_int_equal(chmod(dir, 0755), 0);
	char *fifo = path_in(dir, "pipe");
	assert_int_equal(mkfifo(fifo, 0644), 0);
	put_s(dir, "secret.txt", "top secret\n");
	char *secret = path_in(dir, "secret.txt");
	assert_int_equal(chmod(secret, 0), 0);

	/* a FIFO is reported, never opened for reading (that would block) */
	struct dk_ingest_params prm = dk_ingest_default_params();
	struct recs r = walk1(&prm, fifo);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].reason, "special-file");
	assert_non_null(strstr(r.v[0].detail, "pipe"));
	recs_free(&r);

	char *missing = path_in(dir, "missing.txt");
	r = walk1(&prm, missing);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].reason, "unreadable");
	assert_non_null(strstr(r.v[0].detail, "missing.txt"));
	assert_non_null(strstr(r.v[0].detail, "no such file"));
	recs_free(&r);

	/* A mode-000 file: root reads it anyway, so the walk runs in a child
	 * that has dropped to an unprivileged uid, where open() really fails. */
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(10);
		struct dk_ingest *ing;
		if (dk_ingest_new(&ing, NULL) != DK_OK)
			_exit(11);
		dk_ingest_add(ing, dir);
		const struct dk_doc *d;
		int seen = 0, ok = 0;
		while (dk_ingest_next(ing, &d) == DK_OK) {
			if (strstr(d->path, "secret.txt")) {
				seen++;
				ok = d->action == DK_DOC_SKIP && !strcmp(d->skip_reason, "unreadable") &&
				     strstr(d->detail, "secret.txt") && strstr(d->detail, "permission denied");
				if (!ok)
					fprintf(stderr, "got %s: %s\n", d->skip_reason ? d->skip_reason : "extract",
						d->detail ? d->detail : "");
			}
		}
		dk_ingest_free(ing);
		_exit(seen == 1 && ok ? 0 : 12);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);

	/* an unreadable directory is one record too */
	char *locked = path_in(dir, "locked");
	assert_int_equal(mkdir(locked, 0), 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(10);
		struct dk_ingest *ing;
		if (dk_ingest_new(&ing, NULL) != DK_OK)
			_exit(11);
		dk_ingest_add(ing, locked);
		const struct dk_doc *d;
		int rc = dk_ingest_next(ing, &d) == DK_OK && d->action == DK_DOC_SKIP &&
				 !strcmp(d->skip_reason, "unreadable") && strstr(d->detail, "locked")
			 ? 0
			 : 13;
		dk_ingest_free(ing);
		_exit(rc);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	free(locked);
	free(missing);
	free(fifo);
	free(secret);
	rm_rf(dir);
	free(dir);
}

static void test_stdin_list(void **state)
{
	(void)state;
	char *dir = dk_test_tmpdir();
	put_s(dir, "one.txt", "first\n");
	put_s(dir, "two.txt", "second\n");
	char *list = path_in(dir, "list");
	char content[4200];
	snprintf(content, sizeof content, "%s/two.txt\n\n%s/one.txt\n", dir, dir);
	assert_int_equal(dk_test_write_file(list, content, strlen(content)), 0);
	int saved = dup(0);
	assert_non_null(freopen(list, "r", stdin));
	const char *in[] = {"-"};
	struct recs r = walk(NULL, in, 1);
	dup2(saved, 0);
	close(saved);
	clearerr(stdin);
	assert_int_equal(r.n, 2);
	/* stdin order is the caller's order */
	assert_string_equal(r.v[0].text, "second\n");
	assert_string_equal(r.v[1].text, "first\n");
	recs_free(&r);
	free(list);
	rm_rf(dir);
	free(dir);
}

/* ---- archives ---- */

static void test_archive_formats(void **state)
{
	(void)state;
	char *dir = dk_test_tmpdir();
	const struct ent e[] = {{"docs", NULL, 0}, {"docs/note.txt", "hello from an archive\n", 0}};
	struct {
		const char *name;
		int format, filter;
	} kinds[] = {
		{"a.zip", ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE},
		{"b.tar", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_NONE},
		{"c.tar.gz", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP},
		{"d.tar.bz2", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_BZIP2},
		{"e.tar.xz", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_XZ},
		{"f.tar.zst", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD},
		{"g.7z", ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE},
		{"h.cpio", ARCHIVE_FORMAT_CPIO_SVR4_NOCRC, ARCHIVE_FILTER_NONE},
		{"i.iso", ARCHIVE_FORMAT_ISO9660, ARCHIVE_FILTER_NONE},
	};
	size_t nk = sizeof kinds / sizeof kinds[0];
	for (size_t i = 0; i < nk; i++) {
		struct dk_buf b = make_archive(kinds[i].format, kinds[i].filter, e, 2);
		put_buf(dir, kinds[i].name, &b);
	}
	/* ar holds flat names only */
	const struct ent flat[] = {{"note.txt", "hello from an archive\n", 0}};
	struct dk_buf b = make_archive(ARCHIVE_FORMAT_AR_GNU, ARCHIVE_FILTER_NONE, flat, 1);
	put_buf(dir, "j.a", &b);
	/* single-file compressed streams */
	const struct ent raw[] = {{"data", "hello from a stream\n", 0}};
	int rawf[] = {ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_BZIP2, ARCHIVE_FILTER_XZ, ARCHIVE_FILTER_ZSTD};
	const char *rawn[] = {"k.txt.gz", "l.txt.bz2", "m.txt.xz", "n.txt.zst"};
	for (int i = 0; i < 4; i++) {
		b = make_archive(ARCHIVE_FORMAT_RAW, rawf[i], raw, 1);
		put_buf(dir, rawn[i], &b);
	}

	struct recs r = walk1(NULL, dir);
	const char *note = "hello from an archive\n";
	uint8_t dg[32];
	char hex[65];
	dk_sha256(note, strlen(note), dg);
	dk_sha256_hex(dg, hex);
	for (size_t i = 0; i < nk; i++) {
		char suffix[64];
		snprintf(suffix, sizeof suffix, "/%s!/docs/note.txt", kinds[i].name);
		struct rec *x = find(&r, suffix);
		assert_true(x->extract);
		assert_string_equal(x->text, note);
		assert_string_equal(x->sha, hex);
		assert_int_equal(x->bytes, strlen(note));
		assert_string_equal(x->mime, "text/plain");
		char member[64];
		snprintf(member, sizeof member, "docs/note.txt");
		assert_string_equal(x->member, member);
	}
	assert_string_equal(find(&r, "/j.a!/note.txt")->text, note);
	assert_string_equal(find(&r, "/k.txt.gz!/k.txt")->text, "hello from a stream\n");
	assert_string_equal(find(&r, "/l.txt.bz2!/l.txt")->text, "hello from a stream\n");
	assert_string_equal(find(&r, "/m.txt.xz!/m.txt")->text, "hello from a stream\n");
	assert_string_equal(find(&r, "/n.txt.zst!/n.txt")->text, "hello from a stream\n");
	assert_int_equal(r.n, nk + 1 + 4); /* directories inside archives are not records */
	recs_free(&r);

	/* include globs apply to members; archives are opened to look for them,
	 * and a file merely named like an archive is filtered like any other */
	put_s(dir, "fake.zip", "just text\n");
	struct dk_ingest_params inc = dk_ingest_default_params();
	const char *pat[] = {"**/note.txt"};
	inc.include = pat;
	inc.n_include = 1;
	inc.report_excluded = false;
	r = walk1(&inc, dir);
	assert_int_equal(r.n, nk + 1);
	for (size_t i = 0; i < r.n; i++)
		assert_non_null(strstr(r.v[i].path, "note.txt"));
	recs_free(&r);
	/* with it (the default), every other file and member is an excluded
	 * record: the same count as the unfiltered walk, plus fake.zip */
	inc.report_excluded = true;
	r = walk1(&inc, dir);
	assert_int_equal(r.n, nk + 1 + 4 + 1);
	size_t n_ex = 0;
	for (size_t i = 0; i < r.n; i++) {
		bool is_note = strstr(r.v[i].path, "note.txt") != NULL;
		n_ex += !is_note;
		if (!is_note)
			assert_string_equal(r.v[i].reason, "excluded");
	}
	assert_int_equal(n_ex, 4 + 1);
	assert_non_null(find(&r, "/fake.zip"));
	recs_free(&r);
	char *fake = path_in(dir, "fake.zip");
	unlink(fake);
	free(fake);

	/* archives off: one record per archive file */
	struct dk_ingest_params prm = dk_ingest_default_params();
	prm.archives = false;
	r = walk1(&prm, dir);
	assert_int_equal(r.n, nk + 1 + 4);
	assert_false(find(&r, "/a.zip")->extract);
	assert_string_equal(find(&r, "/a.zip")->reason, "binary");
	recs_free(&r);
	rm_rf(dir);
	free(dir);
}

static void test_nested_three_deep(void **state)
{
	(void)state;
	char *dir = dk_test_tmpdir();
	const struct ent l3[] = {{"dir/note.txt", "deep inside\n", 0}, {"other.txt", "also here\n", 0}};
	struct dk_buf inner = make_archive(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, l3, 2);
	const struct ent l2[] = {{"inner.zip", inner.data, inner.len}, {"mid.txt", "middle\n", 0}};
	struct dk_buf mid = make_archive(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, l2, 2);
	const struct ent l1[] = {{"readme.txt", "outer\n", 0}, {"mid.tar.gz", mid.data, mid.len}};
	struct dk_buf outer = make_archive(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, l1, 2);
	put_buf(dir, "outer.zip", &outer);
	dk_buf_free(&inner);
	dk_buf_free(&mid);
	char *zip = path_in(dir, "outer.zip");

	struct recs r = walk1(NULL, zip);
	assert_int_equal(r.n, 4);
	/* stored order inside each archive, depth first */
	assert_non_null(strstr(r.v[0].path, "outer.zip!/readme.txt"));
	struct rec *x = &r.v[1];
	char want[4200];
	snprintf(want, sizeof want, "%s!/mid.tar.gz!/inner.zip!/dir/note.txt", zip);
	assert_string_equal(x->path, want);
	assert_string_equal(x->member, "mid.tar.gz!/inner.zip!/dir/note.txt");
	assert_string_equal(x->text, "deep inside\n");
	assert_true(strstr(r.v[2].path, "inner.zip!/other.txt") != NULL);
	assert_true(strstr(r.v[3].path, "mid.tar.gz!/mid.txt") != NULL);
	recs_free(&r);

	/* nesting limit: the inner zip is reported, not opened */
	struct dk_ingest_params prm = dk_ingest_default_params();
	prm.max_nesting = 1;
	r = walk1(&prm, zip);
	x = find(&r, "mid.tar.gz!/inner.zip");
	assert_false(x->extract);
	assert_string_equal(x->reason, "limit-exceeded");
	assert_non_null(strstr(x->detail, "nested"));
	assert_string_equal(find(&r, "mid.tar.gz!/mid.txt")->text, "middle\n");
	recs_free(&r);
	free(zip);
	rm_rf(dir);
	free(dir);
}

static void test_zip_bomb_and_limits(void **state)
{
	(void)state;
	char *dir = dk_test_tmpdir();
	size_t big = 40u << 20; /* 40 MiB of zeros deflate to about 40 KiB: ratio ~1000 */
	char *zeros = calloc(1, big);
	const struct ent e[] = {{"a.txt", "before the bomb\n", 0}, {"zeros.bin", zeros, big}, {"after.txt", "after\n", 0}};
	struct dk_buf b = make_archive(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, e, 3);
	assert_true(b.len < big / 100);
	put_buf(dir, "bomb.zip", &b);
	/* the same bomb inside a zip inside a zip */
	const struct ent in1[] = {{"zeros.bin", zeros, big}};
	struct dk_buf z1 = make_archive(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, in1, 1);
	const struct ent in2[] = {{"inner.zip", z1.data, z1.len}};
	struct dk_buf z2 = make_archive(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, in2, 1);
	put_buf(dir, "nested-bomb.zip", &z2);
	dk_buf_free(&z1);
	free(zeros);

	struct recs r = walk1(NULL, dir);
	assert_string_equal(find(&r, "bomb.zip!/a.txt")->text, "before the bomb\n");
	struct rec *x = find(&r, "/bomb.zip!/zeros.bin");
	assert_false(x->extract);
	assert_string_equal(x->reason, "limit-exceeded");
	assert_non_null(strstr(x->detail, "bomb.zip!/zeros.bin"));
	assert_non_null(strstr(x->detail, "ratio"));
	assert_false(has(&r, "after.txt")); /* the walk of that archive stopped there */
	x = find(&r, "nested-bomb.zip!/inner.zip!/zeros.bin");
	assert_string_equal(x->reason, "limit-exceeded");
	recs_free(&r);

	/* member limit: too-large, and the walk of the archive goes on */
	struct dk_ingest_params prm = dk_ingest_default_params();
	prm.max_member_bytes = 1 << 20;
	char *bomb = path_in(dir, "bomb.zip");
	r = walk1(&prm, bomb);
	x = find(&r, "!/zeros.bin");
	assert_string_equal(x->reason, "too-large");
	assert_string_equal(find(&r, "!/after.txt")->text, "after\n");
	recs_free(&r);

	/* total bytes per archive */
	prm = dk_ingest_default_params();
	prm.max_ratio = 1e9;
	prm.max_archive_bytes = 10 << 20;
	r = walk1(&prm, bomb);
	assert_string_equal(find(&r, "!/zeros.bin")->reason, "limit-exceeded");
	recs_free(&r);

	/* plain file limit */
	prm = dk_ingest_default_params();
	prm.max_file_bytes = 1000;
	put(dir, "big.txt", "x", 1);
	char *bigtxt = path_in(dir, "big.txt");
	FILE *f = fopen(bigtxt, "w");
	for (int i = 0; i < 2000; i++)
		fputc('a', f);
	fclose(f);
	r = walk1(&prm, bigtxt);
	assert_string_equal(r.v[0].reason, "too-large");
	assert_int_equal(r.v[0].bytes, 2000);
	assert_string_equal(r.v[0].mime, "text/plain");
	recs_free(&r);

	/* entry limit */
	struct ent many[50];
	char names[50][24];
	for (int i = 0; i < 50; i++) {
		snprintf(names[i], sizeof names[i], "f%02d.txt", i);
		many[i] = (struct ent){names[i], "x\n", 0};
	}
	b = make_archive(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_NONE, many, 50);
	put_buf(dir, "many.tar", &b);
	char *many_tar = path_in(dir, "many.tar");
	prm = dk_ingest_default_params();
	prm.max_entries = 10;
	r = walk1(&prm, many_tar);
	assert_int_equal(r.n, 11);
	assert_string_equal(r.v[10].reason, "limit-exceeded");
	assert_non_null(strstr(r.v[10].detail, "more than 10 entries"));
	recs_free(&r);
	free(many_tar);
	free(bigtxt);
	free(bomb);
	rm_rf(dir);
	free(dir);
}

static void test_unsafe_names_encrypted_truncated(void **state)
{
	(void)state;
	char *dir = dk_test_tmpdir();
	char *box = path_in(dir, "box");
	assert_int_equal(mkdir(box, 0755), 0);
	const struct ent e[] = {{"../evil.txt", "escape\n", 0},
				{"ok/../../evil2.txt", "escape\n", 0},
				{"/etc/evil3.txt", "absolute\n", 0},
				{"fine.txt", "fine\n", 0}};
	struct dk_buf b = make_archive(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_NONE, e, 4);
	put_buf(box, "slip.tar", &b);
	char *tar = path_in(box, "slip.tar");
	struct recs r = walk1(NULL, tar);
	assert_int_equal(r.n, 4);
	struct rec *x = find(&r, "slip.tar!/../evil.txt");
	assert_false(x->extract);
	assert_string_equal(x->reason, "unsafe-path");
	assert_non_null(strstr(x->detail, "../evil.txt"));
	assert_string_equal(find(&r, "slip.tar!/ok/../../evil2.txt")->reason, "unsafe-path");
	assert_string_equal(find(&r, "slip.tar!//etc/evil3.txt")->reason, "unsafe-path");
	assert_string_equal(find(&r, "slip.tar!/fine.txt")->text, "fine\n");
	recs_free(&r);
	/* nothing was written anywhere */
	char *evil = path_in(dir, "evil.txt");
	assert_int_equal(access(evil, F_OK), -1);
	free(evil);

	/* an encrypted zip member (zip(1) with a password) */
	char cmd[8400];
	put_s(dir, "plain.txt", "secret words\n");
	snprintf(cmd, sizeof cmd, "cd '%s' && zip -q -P hunter2 enc.zip plain.txt", dir);
	if (system(cmd) == 0) {
		char *enc = path_in(dir, "enc.zip");
		r = walk1(NULL, enc);
		assert_int_equal(r.n, 1);
		assert_string_equal(r.v[0].reason, "encrypted");
		assert_non_null(strstr(r.v[0].detail, "enc.zip!/plain.txt"));
		recs_free(&r);
		free(enc);
	} else {
		fprintf(stderr, "zip(1) not available: encrypted member case not run\n");
	}

	/* 7-Zip: encrypted members, and encrypted headers (nothing readable) */
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && 7z a -bd -bso0 -pk m.7z plain.txt >/dev/null && 7z a -bd -bso0 -pk -mhe=on h.7z plain.txt >/dev/null",
		 dir);
	if (system(cmd) == 0) {
		char *m7 = path_in(dir, "m.7z"), *h7 = path_in(dir, "h.7z");
		const char *both[] = {m7, h7};
		r = walk(NULL, both, 2);
		assert_int_equal(r.n, 2);
		assert_string_equal(find(&r, "m.7z!/plain.txt")->reason, "encrypted");
		x = find(&r, "/h.7z");
		assert_string_equal(x->reason, "encrypted");
		assert_non_null(strstr(x->detail, "h.7z"));
		recs_free(&r);
		free(m7);
		free(h7);
	} else {
		fprintf(stderr, "7z(1) not available: encrypted 7z cases not run\n");
	}

	/* a truncated archive: what can be read is, the rest is one error record */
	struct ent many[8];
	char names[8][24], *blob = malloc(200000);
	uint32_t lcg = 12345; /* incompressible-ish, so the cut falls after some members */
	for (int i = 0; i < 200000; i++) {
		lcg = lcg * 1103515245u + 12345u;
		blob[i] = (char)('a' + (lcg >> 16) % 26);
	}
	for (int i = 0; i < 8; i++) {
		snprintf(names[i], sizeof names[i], "part%d.txt", i);
		many[i] = (struct ent){names[i], blob, 200000};
	}
	b = make_archive(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, many, 8);
	b.len /= 2;
	put_buf(dir, "cut.tar.gz", &b);
	free(blob);
	char *cut = path_in(dir, "cut.tar.gz");
	r = walk1(NULL, cut);
	assert_true(r.n >= 1);
	struct rec *last = &r.v[r.n - 1];
	assert_false(last->extract);
	assert_string_equal(last->reason, "archive-error");
	assert_non_null(strstr(last->detail, "cut.tar.gz"));
	assert_non_null(strstr(last->detail, "cannot read"));
	assert_true(r.n >= 2); /* members before the cut were read */
	for (size_t i = 0; i + 1 < r.n; i++)
		assert_true(r.v[i].extract && strlen(r.v[i].text) == 200000);
	recs_free(&r);

	/* garbage that claims to be a zip */
	put(dir, "junk.zip", "PK\003\004garbage-garbage-garbage-garbage", 36);
	char *junk = path_in(dir, "junk.zip");
	r = walk1(NULL, junk);
	assert_int_equal(r.n, 1);
	assert_false(r.v[0].extract);
	assert_non_null(r.v[0].detail);
	assert_non_null(strstr(r.v[0].detail, "junk.zip"));
	recs_free(&r);
	free(junk);
	free(cut);
	free(tar);
	free(box);
	rm_rf(dir);
	free(dir);
}

/* Acceptance: every file of the shared corpus becomes a complete record. */
static void test_corpus(void **state)
{
	(void)state;
	const char *corpus = dk_test_need(dk_test_shared("corpus"), "../shared/corpus");
	char *c = strdup(corpus);
	struct recs r = walk1(NULL, c);
	char cmd[4200], *out = NULL;
	snprintf(cmd, sizeof cmd, "find '%s' -type f ! -name '.*' | wc -l", c);
	assert_int_equal(dk_test_run(cmd, &out), 0);
	long files = atol(out);
	free(out);
	/* archives add their members: never fewer records than files */
	assert_true((long)r.n >= files);
	size_t extracted = 0;
	for (size_t i = 0; i < r.n; i++)
		extracted += r.v[i].extract;
	assert_true(extracted > r.n * 9 / 10);
	struct rec *x = find(&r, "bbc/sport/199.txt");
	assert_true(x->extract);
	assert_non_null(strstr(x->text, "\xc2\xa3")); /* the Latin-1 pound sign, now UTF-8 */
	x = find(&r, "mtsamples_full.csv.gz!/mtsamples_full.csv");
	assert_true(x->extract);
	assert_string_equal(x->format, "csv");
	assert_non_null(strstr(x->text, "medical_specialty: "));
	x = find(&r, "file_type_samples_libmagic/tests/issue311docx.testfile");
	assert_true(x->extract);
	assert_string_equal(x->format, "docx");
	x = find(&r, "file_type_samples_libmagic/tests/json1.testfile");
	assert_string_equal(x->format, "json");
	recs_free(&r);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_globs_depth_hidden),
		cmocka_unit_test(test_symlinks_and_loops),
		cmocka_unit_test(test_special_missing_unreadable),
		cmocka_unit_test(test_stdin_list),
		cmocka_unit_test(test_archive_formats),
		cmocka_unit_test(test_nested_three_deep),
		cmocka_unit_test(test_zip_bomb_and_limits),
		cmocka_unit_test(test_raw_text),
		cmocka_unit_test(test_unsafe_names_encrypted_truncated),
		cmocka_unit_test(test_corpus),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
