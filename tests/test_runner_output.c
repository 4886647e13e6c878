/* The runner's output file: refusal to clobber, lock, journal, repair of
 * torn/corrupt/duplicate lines on resume, config mismatch, incremental keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner/output.h"
#include "testutil.h"

static char *tmp;
static char path[4096];

static struct dk_out *open_mode(enum dk_out_mode m, const char *hash, bool force, enum dk_status want,
				const char *want_msg)
{
	struct dk_out_params p = dk_out_default_params();
	p.path = path;
	p.config_hash = hash;
	p.config_json = "{\"k\":1}";
	p.mode = m;
	p.force = force;
	struct dk_out *o = NULL;
	char err[DK_ERRMSG_MAX] = "";
	enum dk_status st = dk_out_open(&o, &p, err, sizeof err);
	if (st != want)
		fail_msg("open: status %d, want %d: %s", st, want, err);
	if (want_msg && !strstr(err, want_msg))
		fail_msg("open: '%s' lacks '%s'", err, want_msg);
	return o;
}

static const char *rec(const char *id, const char *status, const char *sha)
{
	static char b[512];
	snprintf(b, sizeof b,
		 "{\"id\":\"%s\",\"source\":{\"sha256\":\"%s\"},\"pipeline\":{\"hash\":\"P\"},"
		 "\"model\":{\"sha256\":\"M\"},\"status\":\"%s\"}",
		 id, sha, status);
	return b;
}

static void test_new_and_lock(void **state)
{
	(void)state;
	snprintf(path, sizeof path, "%s/a.jsonl", tmp);
	struct dk_out *o = open_mode(DK_OUT_NEW, "h1", false, DK_OK, NULL);
	/* a second writer is refused while the first holds the lock */
	struct dk_out *o2 = open_mode(DK_OUT_RESUME, "h1", false, DK_FATAL, "locked");
	assert_null(o2);
	const char *r = rec("a", "ok", "S1");
	assert_int_equal(dk_out_write(o, r, strlen(r), "a"), DK_OK);
	r = rec("b", "error", "S2");
	assert_int_equal(dk_out_write(o, r, strlen(r), "b"), DK_OK);
	assert_true(dk_out_done(o, "a"));
	assert_false(dk_out_done(o, "c"));
	assert_int_equal(dk_out_close(o, true), DK_OK);
	dk_out_free(o);
	/* the journal: header with the config hash, then ids */
	char jp[4200];
	snprintf(jp, sizeof jp, "%s.ckpt", path);
	char *j = dk_test_read_file(jp, NULL);
	assert_non_null(j);
	assert_non_null(strstr(j, "{\"docket_checkpoint\":1,\"config_hash\":\"h1\",\"config\":{\"k\":1}}\na\nb\n"));
	free(j);
	/* exists: refused without --resume/--incremental/--overwrite */
	assert_null(open_mode(DK_OUT_NEW, "h1", false, DK_SKIP, "already exists"));
}

static void test_resume_repair(void **state)
{
	(void)state;
	snprintf(path, sizeof path, "%s/b.jsonl", tmp);
	struct dk_out *o = open_mode(DK_OUT_NEW, "h1", false, DK_OK, NULL);
	for (int i = 0; i < 3; i++) {
		char id[8];
		snprintf(id, sizeof id, "r%d", i);
		const char *r = rec(id, "ok", id);
		assert_int_equal(dk_out_write(o, r, strlen(r), id), DK_OK);
	}
	dk_out_free(o); /* as if killed: no close */
	/* append a torn line */
	FILE *f = fopen(path, "a");
	fputs("{\"id\":\"r3\",\"sour", f);
	fclose(f);
	/* wrong configuration: refused, then forced */
	assert_null(open_mode(DK_OUT_RESUME, "h2", false, DK_SKIP, "different configuration"));
	o = open_mode(DK_OUT_RESUME, "h1", false, DK_OK, NULL);
	const struct dk_out_scan *sc = dk_out_scan(o);
	assert_int_equal(sc->records, 3);
	assert_int_equal(sc->torn_bytes, strlen("{\"id\":\"r3\",\"sour"));
	assert_false(sc->rewritten);
	assert_true(dk_out_done(o, "r2"));
	assert_false(dk_out_done(o, "r3"));
	const char *r = rec("r3", "ok", "r3");
	assert_int_equal(dk_out_write(o, r, strlen(r), "r3"), DK_OK);
	dk_out_free(o);
	size_t n;
	char *all = dk_test_read_file(path, &n);
	int lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += all[i] == '\n';
	assert_int_equal(lines, 4);
	assert_int_equal(all[n - 1], '\n');
	free(all);

	/* corrupt middle line and a duplicate: the file is rewritten without them */
	f = fopen(path, "a");
	fputs("not json at all\n", f);
	fputs(rec("r1", "ok", "r1"), f);
	fputc('\n', f);
	fclose(f);
	o = open_mode(DK_OUT_RESUME, "h1", false, DK_OK, NULL);
	sc = dk_out_scan(o);
	assert_int_equal(sc->records, 4);
	assert_int_equal(sc->bad_lines, 1);
	assert_int_equal(sc->duplicates, 1);
	assert_true(sc->rewritten);
	/* the lock moved to the rewritten file */
	assert_null(open_mode(DK_OUT_RESUME, "h1", false, DK_FATAL, "locked"));
	dk_out_free(o);
	all = dk_test_read_file(path, &n);
	lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += all[i] == '\n';
	assert_int_equal(lines, 4);
	assert_null(strstr(all, "not json"));
	free(all);

	o = open_mode(DK_OUT_RESUME, "h2", true, DK_OK, NULL); /* --force */
	dk_out_free(o);
	/* resume without a journal is refused (nothing says what wrote it) */
	char jp[4200];
	snprintf(jp, sizeof jp, "%s.ckpt", path);
	unlink(jp);
	assert_null(open_mode(DK_OUT_RESUME, "h1", false, DK_SKIP, "no checkpoint"));
}

static void test_incremental(void **state)
{
	(void)state;
	snprintf(path, sizeof path, "%s/c.jsonl", tmp);
	struct dk_out *o = open_mode(DK_OUT_NEW, "h1", false, DK_OK, NULL);
	const char *r = rec("x", "ok", "SHA-A");
	dk_out_write(o, r, strlen(r), "x");
	r = rec("y", "ok", "SHA-B");
	dk_out_write(o, r, strlen(r), "y");
	r = rec("z", "error", "SHA-B");
	dk_out_write(o, r, strlen(r), "z");
	dk_out_free(o);
	o = open_mode(DK_OUT_INCREMENTAL, "other", false, DK_OK, NULL);
	assert_true(dk_out_have_ok(o, "SHA-A", "P", "M"));
	assert_false(dk_out_have_ok(o, "SHA-A", "P", "M2"));   /* other model */
	assert_false(dk_out_have_ok(o, "SHA-A", "P2", "M"));   /* other pipeline */
	assert_false(dk_out_have_ok(o, "SHA-B", "P", "M"));    /* had an error: redo */
	assert_false(dk_out_have_ok(o, "SHA-C", "P", "M"));
	dk_out_free(o);
	/* overwrite empties it */
	o = open_mode(DK_OUT_OVERWRITE, "h1", false, DK_OK, NULL);
	assert_false(dk_out_done(o, "x"));
	dk_out_free(o);
	size_t n = 1;
	char *all = dk_test_read_file(path, &n);
	assert_int_equal(n, 0);
	free(all);
}

static const char *src_rec(const char *id, const char *file, const char *sha)
{
	static char b[512];
	snprintf(b, sizeof b,
		 "{\"id\":\"%s\",\"source\":{\"path\":\"%s\",\"member\":null,\"sha256\":\"%s\"},"
		 "\"pipeline\":{\"name\":\"pl\",\"hash\":\"P\"},\"model\":{\"sha256\":\"M\"},"
		 "\"status\":\"ok\"}",
		 id, file, sha);
	return b;
}

/* --incremental on a changed document: the old version's records are named
 * for the new one to supersede; an unchanged one supersedes nothing */
static void test_superseded(void **state)
{
	(void)state;
	snprintf(path, sizeof path, "%s/d.jsonl", tmp);
	struct dk_out *o = open_mode(DK_OUT_NEW, "h1", false, DK_OK, NULL);
	const char *r = src_rec("a1", "a.txt", "SHA-1");
	dk_out_write(o, r, strlen(r), "a1");
	r = src_rec("b1", "b.txt", "SHA-2");
	dk_out_write(o, r, strlen(r), "b1");
	r = src_rec("a2", "a.txt", "SHA-3"); /* a.txt changed once already */
	dk_out_write(o, r, strlen(r), "a2");
	dk_out_free(o);
	o = open_mode(DK_OUT_INCREMENTAL, "h1", false, DK_OK, NULL);
	json_t *a = dk_out_superseded(o, "a.txt", NULL, "pl", "SHA-4");
	assert_int_equal(json_array_size(a), 2);
	char *s = json_dumps(a, JSON_COMPACT);
	assert_true(!strcmp(s, "[\"a1\",\"a2\"]") || !strcmp(s, "[\"a2\",\"a1\"]"));
	free(s);
	json_decref(a);
	a = dk_out_superseded(o, "a.txt", NULL, "pl", "SHA-3"); /* a2's content: only a1 */
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(json_string_value(json_array_get(a, 0)), "a1");
	json_decref(a);
	assert_null(dk_out_superseded(o, "b.txt", NULL, "pl", "SHA-2"));
	assert_null(dk_out_superseded(o, "b.txt", NULL, "other-pipeline", "SHA-9"));
	assert_null(dk_out_superseded(o, "c.txt", NULL, "pl", "SHA-9"));
	dk_out_free(o);
}

/* a sensitive pipeline's records and checkpoint are 0600 whatever the umask */
static void test_private_files(void **state)
{
	(void)state;
	mode_t old = umask(022);
	for (int priv = 0; priv < 2; priv++) {
		snprintf(path, sizeof path, "%s/p%d.jsonl", tmp, priv);
		struct dk_out_params p = dk_out_default_params();
		p.path = path;
		p.config_hash = "h";
		p.private_files = priv;
		struct dk_out *o = NULL;
		char err[DK_ERRMSG_MAX];
		assert_int_equal(dk_out_open(&o, &p, err, sizeof err), DK_OK);
		dk_out_free(o);
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, priv ? 0600 : 0644);
		char *j = dk_out_journal_path(path);
		assert_int_equal(stat(j, &st), 0);
		assert_int_equal(st.st_mode & 0777, priv ? 0600 : 0644);
		free(j);
	}
	umask(old);
}

/* a configuration mismatch says which settings differ */
static void test_config_diff(void **state)
{
	(void)state;
	json_t *a = json_pack("{s:i, s:s, s:b}", "max_tokens", 8, "model", "m", "x", 1);
	json_t *b = json_pack("{s:i, s:s, s:b}", "max_tokens", 3, "model", "m", "prefix_cache", 0);
	char d[256];
	dk_out_config_diff(a, b, d, sizeof d);
	assert_string_equal(d, "max_tokens 8 -> 3, x true -> (unset), prefix_cache (unset) -> false");
	dk_out_config_diff(a, a, d, sizeof d);
	assert_string_equal(d, "");
	json_decref(a);
	json_decref(b);
}

static void test_idset(void **state)
{
	(void)state;
	struct dk_idset s = {0};
	char id[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof id, "id-%d", i);
		assert_int_equal(dk_idset_add(&s, dk_idset_key(id, strlen(id))), 1);
	}
	for (int i = 0; i < 5000; i += 7) {
		snprintf(id, sizeof id, "id-%d", i);
		assert_int_equal(dk_idset_add(&s, dk_idset_key(id, strlen(id))), 0);
		assert_true(dk_idset_has(&s, dk_idset_key(id, strlen(id))));
	}
	assert_false(dk_idset_has(&s, dk_idset_key("id-5000", 7)));
	assert_int_equal(s.n, 5000);
	dk_idset_free(&s);
}

int main(void)
{
	tmp = dk_test_tmpdir();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_and_lock),
		cmocka_unit_test(test_resume_repair),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_superseded),
		cmocka_unit_test(test_private_files),
		cmocka_unit_test(test_config_diff),
		cmocka_unit_test(test_idset),
	};
	int rc = dk_test_run_group(tests, NULL, NULL);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	dk_test_run(cmd, NULL);
	free(tmp);
	return rc;
}
