/* Output file, checkpoint journal, lock, repair on resume. */
#include "runner/output.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/sha256.h"

/* A record found in the output, by the document it is of. */
struct srcrec {
	uint64_t key; /* source_key(path, member, pipeline name) */
	uint64_t content; /* of source.sha256 */
	char id[33];
};

struct dk_out {
	char *path, *jpath;
	int fd, jfd;
	bool is_stdout;
	struct dk_out_params p;
	struct dk_idset done, ok, bad;
	struct srcrec *src;   /* (source key, record id) of every record found, sorted by key */
	size_t n_src, cap_src;
	struct dk_out_scan scan;
	int since_sync;
	double last_sync_ms;
	char err[DK_ERRMSG_MAX];
};

struct dk_out_params dk_out_default_params(void)
{
	return (struct dk_out_params){.path = "-", .config_hash = "", .config_json = "{}",
				      .mode = DK_OUT_NEW, .sync_every = 64, .sync_ms = 1000};
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- id set ---- */

uint64_t dk_idset_key(const char *s, size_t len)
{
	uint8_t d[32];
	dk_sha256(s, len, d);
	uint64_t k = 0;
	for (int i = 0; i < 8; i++)
		k = k << 8 | d[i];
	return k ? k : 1; /* 0 marks an empty slot */
}

static int idset_grow(struct dk_idset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 1024;
	uint64_t *v = calloc(cap, sizeof *v);
	if (!v)
		return -1;
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->v[i])
			continue;
		size_t j = s->v[i] & (cap - 1);
		while (v[j])
			j = (j + 1) & (cap - 1);
		v[j] = s->v[i];
	}
	free(s->v);
	s->v = v;
	s->cap = cap;
	return 0;
}

int dk_idset_add(struct dk_idset *s, uint64_t k)
{
	if ((s->n + 1) * 2 > s->cap && idset_grow(s))
		return -1;
	size_t j = k & (s->cap - 1);
	while (s->v[j]) {
		if (s->v[j] == k)
			return 0;
		j = (j + 1) & (s->cap - 1);
	}
	s->v[j] = k;
	s->n++;
	return 1;
}

bool dk_idset_has(const struct dk_idset *s, uint64_t k)
{
	if (!s->cap)
		return false;
	size_t j = k & (s->cap - 1);
	while (s->v[j]) {
		if (s->v[j] == k)
			return true;
		j = (j + 1) & (s->cap - 1);
	}
	return false;
}

void dk_idset_free(struct dk_idset *s)
{
	free(s->v);
	memset(s, 0, sizeof *s);
}

static uint64_t triple_key(const char *a, const char *b, const char *c)
{
	struct dk_buf t = {0};
	dk_buf_printf(&t, "%s\n%s\n%s", a ? a : "", b ? b : "", c ? c : "");
	uint64_t k = dk_idset_key(t.data ? t.data : "", t.len);
	dk_buf_free(&t);
	return k;
}

static mode_t file_mode(const struct dk_out *o) { return o->p.private_files ? 0600 : 0644; }

/* ---- journal ---- */

char *dk_out_journal_path(const char *path)
{
	struct dk_buf b = {0};
	dk_buf_printf(&b, "%s.ckpt", path);
	return dk_buf_steal(&b);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static enum dk_status journal_header(struct dk_out *o)
{
	struct dk_buf b = {0};
	dk_buf_printf(&b, "{\"docket_checkpoint\":1,\"config_hash\":\"%s\",\"config\":%s}\n",
		      o->p.config_hash, o->p.config_json ? o->p.config_json : "{}");
	int r = ftruncate(o->jfd, 0);
	if (!r)
		r = write_all(o->jfd, b.data, b.len);
	dk_buf_free(&b);
	if (r || fdatasync(o->jfd))
		return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot write checkpoint '%s': %s",
			      o->jpath, strerror(errno));
	return DK_OK;
}

/* Reads the journal's config hash into hash (65 bytes); -1 if absent/unreadable. */
static int journal_read_hash(const char *jpath, char hash[65])
{
	FILE *f = fopen(jpath, "r");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	ssize_t k = getline(&line, &cap, f);
	fclose(f);
	int rc = -1;
	if (k > 0) {
		json_t *j = json_loads(line, 0, NULL);
		const char *h = json_string_value(json_object_get(j, "config_hash"));
		if (h && strlen(h) < 65) {
			strcpy(hash, h);
			rc = 0;
		}
		json_decref(j);
	}
	free(line);
	return rc;
}

json_t *dk_out_journal_config(const char *path)
{
	char *jpath = dk_out_journal_path(path);
	FILE *f = jpath ? fopen(jpath, "r") : NULL;
	free(jpath);
	if (!f)
		return NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t k = getline(&line, &cap, f);
	fclose(f);
	json_t *j = k > 0 ? json_loads(line, 0, NULL) : NULL;
	free(line);
	json_t *c = json_incref(json_object_get(j, "config"));
	json_decref(j);
	return c;
}

void dk_out_config_diff(const json_t *a, const json_t *b, char *out, size_t n)
{
	struct dk_buf d = {0};
	const char *k;
	json_t *v;
	/* keys of a that b lacks or holds otherwise, then keys only b has */
	for (int pass = 0; pass < 2; pass++) {
		const json_t *x = pass ? b : a, *y = pass ? a : b;
		json_object_foreach((json_t *)x, k, v) {
			json_t *w = json_object_get(y, k);
			if (pass && w)
				continue;
			if (w && json_equal(v, w))
				continue;
			char *sv = json_dumps(pass ? w : v, JSON_ENCODE_ANY | JSON_COMPACT);
			char *sw = json_dumps(pass ? v : w, JSON_ENCODE_ANY | JSON_COMPACT);
			dk_buf_printf(&d, "%s%s %s -> %s", d.len ? ", " : "", k, sv ? sv : "(unset)",
				      sw ? sw : "(unset)");
			free(sv);
			free(sw);
		}
	}
	snprintf(out, n, "%s", d.data ? d.data : "");
	dk_buf_free(&d);
}

/* ---- scanning and repair ---- */

static uint64_t source_key(const char *path, const char *member, const char *pipeline)
{
	return triple_key(path, member ? member : "", pipeline);
}

static int cmp_src(const void *a, const void *b)
{
	uint64_t x = ((const struct srcrec *)a)->key, y = ((const struct srcrec *)b)->key;
	return x < y ? -1 : x > y;
}

static void note_source(struct dk_out *o, json_t *j, const char *id)
{
	json_t *s = json_object_get(j, "source");
	const char *path = json_string_value(json_object_get(s, "path"));
	const char *member = json_string_value(json_object_get(s, "member"));
	const char *pl = json_string_value(json_object_get(json_object_get(j, "pipeline"), "name"));
	const char *sha = json_string_value(json_object_get(s, "sha256"));
	if (!path || !pl || strlen(id) > 32)
		return;
	if (o->n_src == o->cap_src) {
		size_t nc = o->cap_src ? 2 * o->cap_src : 256;
		struct srcrec *v = realloc(o->src, nc * sizeof *v);
		if (!v)
			return; /* supersedes lists are best effort; records are not lost */
		o->src = v;
		o->cap_src = nc;
	}
	struct srcrec *r = &o->src[o->n_src++];
	r->key = source_key(path, member, pl);
	r->content = dk_idset_key(sha ? sha : "", sha ? strlen(sha) : 0);
	snprintf(r->id, sizeof r->id, "%s", id);
}

json_t *dk_out_superseded(const struct dk_out *o, const char *path, const char *member,
			  const char *pipeline, const char *sha256)
{
	uint64_t content = dk_idset_key(sha256, strlen(sha256));
	if (!o->n_src)
		return NULL;
	struct srcrec k = {.key = source_key(path, member, pipeline)};
	const struct srcrec *hit = bsearch(&k, o->src, o->n_src, sizeof k, cmp_src);
	if (!hit)
		return NULL;
	while (hit > o->src && hit[-1].key == k.key)
		hit--;
	json_t *a = json_array();
	for (; hit < o->src + o->n_src && hit->key == k.key; hit++)
		if (hit->content != content)
			json_array_append_new(a, json_string(hit->id));
	if (!json_array_size(a)) {
		json_decref(a);
		return NULL;
	}
	return a;
}

static void note_record(struct dk_out *o, json_t *j)
{
	const char *st = json_string_value(json_object_get(j, "status"));
	const char *sha = json_string_value(json_object_get(json_object_get(j, "source"), "sha256"));
	const char *ph = json_string_value(json_object_get(json_object_get(j, "pipeline"), "hash"));
	const char *ms = json_string_value(json_object_get(json_object_get(j, "model"), "sha256"));
	if (!st || !sha || !*sha)
		return;
	uint64_t k = triple_key(sha, ph, ms);
	if (!strcmp(st, "ok"))
		dk_idset_add(&o->ok, k);
	else if (!strcmp(st, "error"))
		dk_idset_add(&o->bad, k);
}

/* Scans the open output: fills done/ok sets, cuts a torn tail, and
 * rewrites the file when it holds bad or duplicate lines. */
static enum dk_status scan_output(struct dk_out *o)
{
	int fd2 = dup(o->fd);
	if (fd2 < 0 || lseek(fd2, 0, SEEK_SET) < 0)
		return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot read '%s': %s", o->path,
			      strerror(errno));
	FILE *f = fdopen(fd2, "r");
	if (!f) {
		close(fd2);
		return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot read '%s': %s", o->path,
			      strerror(errno));
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t k;
	off_t good_end = 0, pos = 0;
	bool need_rewrite = false;
	while ((k = getline(&line, &cap, f)) > 0) {
		pos += k;
		if (line[k - 1] != '\n') { /* torn last line */
			o->scan.torn_bytes = (uint64_t)k;
			break;
		}
		json_t *j = json_loadb(line, (size_t)k - 1, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "id"));
		if (!j || !id) {
			o->scan.bad_lines++;
			need_rewrite = true;
		} else if (dk_idset_add(&o->done, dk_idset_key(id, strlen(id))) == 0) {
			o->scan.duplicates++;
			need_rewrite = true;
		} else {
			o->scan.records++;
			note_record(o, j);
			if (o->p.mode == DK_OUT_INCREMENTAL)
				note_source(o, j, id);
		}
		json_decref(j);
		good_end = pos;
	}
	fclose(f);
	free(line);
	if (o->n_src)
		qsort(o->src, o->n_src, sizeof *o->src, cmp_src);
	if (o->scan.torn_bytes && ftruncate(o->fd, good_end))
		return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot repair '%s': %s", o->path,
			      strerror(errno));
	if (!need_rewrite)
		return DK_OK;

	/* Rewrite valid, first-seen lines through a temporary file, then rename
	 * it over the output and move the lock to the new file. */
	struct dk_buf tmp = {0};
	dk_buf_printf(&tmp, "%s.repair.%d", o->path, (int)getpid());
	int tfd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, file_mode(o));
	fd2 = dup(o->fd);
	f = fd2 >= 0 && lseek(fd2, 0, SEEK_SET) == 0 ? fdopen(fd2, "r") : NULL;
	if (tfd < 0 || !f) {
		if (tfd >= 0)
			close(tfd);
		if (f)
			fclose(f);
		else if (fd2 >= 0)
			close(fd2);
		dk_buf_free(&tmp);
		return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot repair '%s': %s", o->path,
			      strerror(errno));
	}
	struct dk_idset seen = {0};
	line = NULL;
	cap = 0;
	int bad = 0;
	while (!bad && (k = getline(&line, &cap, f)) > 0) {
		if (line[k - 1] != '\n')
			break;
		json_t *j = json_loadb(line, (size_t)k - 1, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "id"));
		if (j && id && dk_idset_add(&seen, dk_idset_key(id, strlen(id))) == 1)
			bad = write_all(tfd, line, (size_t)k);
		json_decref(j);
	}
	free(line);
	fclose(f);
	dk_idset_free(&seen);
	if (bad || fsync(tfd) || rename(tmp.data, o->path)) {
		close(tfd);
		unlink(tmp.data);
		dk_buf_free(&tmp);
		return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot repair '%s': %s", o->path,
			      strerror(errno));
	}
	dk_buf_free(&tmp);
	close(tfd);
	int nfd = open(o->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (nfd < 0 || flock(nfd, LOCK_EX | LOCK_NB)) {
		if (nfd >= 0)
			close(nfd);
		return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot reopen '%s' after repair: %s",
			      o->path, strerror(errno));
	}
	close(o->fd);
	o->fd = nfd;
	o->scan.rewritten = true;
	return DK_OK;
}

enum dk_status dk_out_open(struct dk_out **out, const struct dk_out_params *p, char *err, size_t n)
{
	*out = NULL;
	struct dk_out *o = calloc(1, sizeof *o);
	if (!o)
		return dk_err(err, n, DK_FATAL, "out of memory");
	o->p = *p;
	o->fd = o->jfd = -1;
	if (o->p.sync_every <= 0)
		o->p.sync_every = 64;
	if (o->p.sync_ms <= 0)
		o->p.sync_ms = 1000;
	o->last_sync_ms = now_ms();
	if (!p->path || !strcmp(p->path, "-")) {
		if (p->mode == DK_OUT_RESUME || p->mode == DK_OUT_INCREMENTAL) {
			free(o);
			return dk_err(err, n, DK_SKIP, "--resume and --incremental need an output file (-o)");
		}
		o->is_stdout = true;
		o->fd = STDOUT_FILENO;
		*out = o;
		return DK_OK;
	}
	o->path = strdup(p->path);
	o->jpath = dk_out_journal_path(p->path);
	enum dk_status st = DK_OK;
	o->fd = open(o->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, file_mode(o));
	/* the output cannot be had (read-only, locked): the run cannot be done
	 * now, though the command is right (DK_FATAL, exit 3) */
	if (o->fd < 0) {
		st = dk_err(err, n, DK_FATAL, "cannot open '%s': %s", o->path, dk_errno_str(errno));
		goto fail;
	}
	if (flock(o->fd, LOCK_EX | LOCK_NB)) {
		st = dk_err(err, n, DK_FATAL,
			    "'%s' is locked: another docket run is writing it", o->path);
		goto fail;
	}
	struct stat sb;
	if (fstat(o->fd, &sb)) {
		st = dk_err(err, n, DK_FATAL, "cannot stat '%s': %s", o->path, strerror(errno));
		goto fail;
	}
	bool exists = sb.st_size > 0;
	char old[65] = "";
	bool have_journal = journal_read_hash(o->jpath, old) == 0;

	switch (p->mode) {
	case DK_OUT_NEW:
		if (exists) {
			st = dk_err(err, n, DK_SKIP,
				    "'%s' already exists; use --resume to continue that run, "
				    "--incremental to add to it, or --overwrite to replace it",
				    o->path);
			goto fail;
		}
		/* fall through */
	case DK_OUT_OVERWRITE:
		if (ftruncate(o->fd, 0)) {
			st = dk_err(err, n, DK_FATAL, "cannot truncate '%s': %s", o->path, strerror(errno));
			goto fail;
		}
		have_journal = false;
		break;
	case DK_OUT_RESUME:
		if (exists && !have_journal && !p->force) {
			st = dk_err(err, n, DK_SKIP,
				    "cannot resume '%s': no checkpoint '%s' says which configuration "
				    "wrote it (use --force to resume anyway)",
				    o->path, o->jpath);
			goto fail;
		}
		if (have_journal && strcmp(old, p->config_hash) && !p->force) {
			char diff[384] = "";
			json_t *was = dk_out_journal_config(o->path);
			json_t *now = json_loads(p->config_json ? p->config_json : "{}", 0, NULL);
			if (was && now)
				dk_out_config_diff(was, now, diff, sizeof diff);
			json_decref(was);
			json_decref(now);
			st = dk_err(err, n, DK_SKIP,
				    "cannot resume '%s': it was written with a different configuration "
				    "(%s; checkpoint %.12s, now %.12s); use --force to resume anyway, or "
				    "write to a new output",
				    o->path, *diff ? diff : "pipeline, prompts, model or settings changed",
				    old, p->config_hash);
			goto fail;
		}
		break;
	case DK_OUT_INCREMENTAL:
		break;
	}
	if (p->mode == DK_OUT_RESUME || p->mode == DK_OUT_INCREMENTAL) {
		char e2[DK_ERRMSG_MAX];
		if ((st = scan_output(o)) != DK_OK) {
			snprintf(e2, sizeof e2, "%s", o->err);
			dk_err(err, n, st, "%s", e2);
			goto fail;
		}
	}
	o->jfd = open(o->jpath, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, file_mode(o));
	if (o->jfd < 0) {
		st = dk_err(err, n, DK_FATAL, "cannot open checkpoint '%s': %s", o->jpath, strerror(errno));
		goto fail;
	}
	/* A new header unless we continue the very same configuration. */
	if (!have_journal || strcmp(old, p->config_hash)) {
		if ((st = journal_header(o)) != DK_OK) {
			snprintf(err, n, "%s", o->err);
			goto fail;
		}
	}
	*out = o;
	return DK_OK;
fail:
	dk_out_free(o);
	return st;
}

void dk_out_free(struct dk_out *o)
{
	if (!o)
		return;
	if (!o->is_stdout && o->fd >= 0)
		close(o->fd);
	if (o->jfd >= 0)
		close(o->jfd);
	dk_idset_free(&o->done);
	dk_idset_free(&o->ok);
	dk_idset_free(&o->bad);
	free(o->src);
	free(o->path);
	free(o->jpath);
	free(o);
}

const char *dk_out_error(const struct dk_out *o) { return o->err; }
const struct dk_out_scan *dk_out_scan(const struct dk_out *o) { return &o->scan; }

bool dk_out_done(const struct dk_out *o, const char *id)
{
	return dk_idset_has(&o->done, dk_idset_key(id, strlen(id)));
}

bool dk_out_have_ok(const struct dk_out *o, const char *sha256, const char *pipeline_hash,
		    const char *model_sha256)
{
	uint64_t k = triple_key(sha256, pipeline_hash, model_sha256);
	return dk_idset_has(&o->ok, k) && !dk_idset_has(&o->bad, k);
}

enum dk_status dk_out_sync(struct dk_out *o)
{
	o->since_sync = 0;
	o->last_sync_ms = now_ms();
	if (o->is_stdout)
		return DK_OK;
	if (fdatasync(o->fd))
		return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot sync '%s': %s", o->path,
			      strerror(errno));
	if (o->jfd >= 0 && fdatasync(o->jfd))
		return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot sync '%s': %s", o->jpath,
			      strerror(errno));
	return DK_OK;
}

enum dk_status dk_out_write(struct dk_out *o, const char *line, size_t len, const char *id)
{
	/* one write(2) for the whole line, so a kill leaves at most a torn tail */
	char *b = malloc(len + 1);
	if (!b)
		return dk_err(o->err, sizeof o->err, DK_FATAL, "out of memory");
	memcpy(b, line, len);
	b[len] = '\n';
	int r = write_all(o->fd, b, len + 1);
	free(b);
	if (r)
		return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot write '%s': %s",
			      o->is_stdout ? "<stdout>" : o->path, strerror(errno));
	if (id)
		dk_idset_add(&o->done, dk_idset_key(id, strlen(id)));
	if (o->jfd >= 0 && id) {
		size_t il = strlen(id);
		char *jl = malloc(il + 1);
		if (!jl)
			return dk_err(o->err, sizeof o->err, DK_FATAL, "out of memory");
		memcpy(jl, id, il);
		jl[il] = '\n';
		r = write_all(o->jfd, jl, il + 1);
		free(jl);
		if (r)
			return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot write '%s': %s", o->jpath,
				      strerror(errno));
	}
	if (++o->since_sync >= o->p.sync_every || now_ms() - o->last_sync_ms >= o->p.sync_ms)
		return dk_out_sync(o);
	return DK_OK;
}

enum dk_status dk_out_close(struct dk_out *o, bool complete)
{
	if (complete && o->jfd >= 0) {
		const char *m = "{\"complete\":true}\n";
		if (write_all(o->jfd, m, strlen(m)))
			return dk_err(o->err, sizeof o->err, DK_FATAL, "cannot write '%s': %s", o->jpath,
				      strerror(errno));
	}
	return dk_out_sync(o);
}
