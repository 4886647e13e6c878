#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "docket/gguf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *envor(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return v && *v ? v : dflt;
}

const char *dk_test_shared_root(void) { return envor("DK_SHARED", "../shared"); }

const char *dk_test_shared(const char *rel)
{
	static char buf[4096];
	dk_test_need(dk_test_shared_root(), "../shared (the shared test data)");
	snprintf(buf, sizeof buf, "%s/%s", dk_test_shared_root(), rel);
	return buf;
}

const char *dk_test_src(const char *rel)
{
	static char buf[4096];
	snprintf(buf, sizeof buf, "%s/%s", envor("DK_SOURCE_DIR", "."), rel);
	return buf;
}

const char *dk_test_docket(void) { return envor("DK_DOCKET", "docket"); }

static const char *model_path(void);

const char *dk_test_default_model(void)
{
	const char *m = model_path();
	return access(m, R_OK) == 0 ? m : NULL;
}

char *dk_test_tmpdir(void)
{
	char tmpl[] = "/tmp/docket-test-XXXXXX";
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

char *dk_test_read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, len = 0;
	char *p = malloc(cap);
	size_t k;
	while ((k = fread(p + len, 1, cap - len - 1, f)) > 0) {
		len += k;
		if (cap - len < 2) { cap *= 2; p = realloc(p, cap); }
	}
	fclose(f);
	p[len] = 0;
	if (n)
		*n = len;
	return p;
}

int dk_test_write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int bad = fwrite(p, 1, n, f) != n;
	return fclose(f) != 0 || bad ? -1 : 0;
}

int dk_test_run(const char *cmd, char **out)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	size_t k;
	while ((k = fread(buf + len, 1, cap - len - 1, p)) > 0) {
		len += k;
		if (cap - len < 2) { cap *= 2; buf = realloc(buf, cap); }
	}
	buf[len] = 0;
	int st = pclose(p);
	if (out)
		*out = buf;
	else
		free(buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int n_skipped;
static char first_reason[512];

int dk_test_in_ci(void)
{
	const char *ci = getenv("CI");
	return ci && *ci && strcmp(ci, "false") != 0 && strcmp(ci, "0") != 0;
}

void dk_test_skip(const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	fprintf(stderr, "skipped: %s\n", why);
	if (n_skipped++ == 0)
		snprintf(first_reason, sizeof first_reason, "%s", why);
	skip();
	abort(); /* skip() does not return inside a test */
}

const char *dk_test_need(const char *path, const char *what)
{
	if (access(path, R_OK) == 0)
		return path;
	if (dk_test_in_ci())
		fail_msg("%s missing at %s: under CI=true this is a failure, not a skip", what, path);
	dk_test_skip("%s missing at %s", what, path);
}

void dk_test_require(const char *path, const char *what)
{
	if (access(path, R_OK) == 0)
		return;
	if (dk_test_in_ci()) {
		fprintf(stderr, "failed: %s missing at %s (under CI=true this is a failure, not a skip)\n",
			what, path);
		exit(1);
	}
	fprintf(stderr, "skipped: %s missing at %s\n", what, path);
	exit(DK_TEST_SKIPPED);
}

int dk_test_status(int failed)
{
	if (failed)
		return 1;
	if (n_skipped) {
		fprintf(stderr, "skipped %d test%s: %s%s\n", n_skipped, n_skipped > 1 ? "s" : "",
			first_reason, n_skipped > 1 ? " (and others above)" : "");
		return DK_TEST_SKIPPED;
	}
	return 0;
}

static const char *model_path(void)
{
	static char buf[4096];
	const char *m = getenv("DOCKET_MODEL");
	if (m && *m)
		return m;
	const char *xdg = getenv("XDG_CACHE_HOME");
	if (xdg && *xdg)
		snprintf(buf, sizeof buf, "%s/docket/models/SmolLM2-135M-Instruct.Q4_1.gguf", xdg);
	else
		snprintf(buf, sizeof buf, "%s/.cache/docket/models/SmolLM2-135M-Instruct.Q4_1.gguf",
			 envor("HOME", "/"));
	return buf;
}

const char *dk_test_need_default_model(void)
{
	return dk_test_need(model_path(), "default model (scripts/fetch-model.sh)");
}

struct dk_gguf *dk_test_open_default_gguf(void)
{
	const char *path = dk_test_need_default_model();
	struct dk_gguf *g = NULL;
	if (dk_gguf_open(&g, path) != DK_OK)
		fail_msg("%s: %s", path, g ? dk_gguf_error(g) : "out of memory");
	return g;
}
