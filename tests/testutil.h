/* Helpers shared by the cmocka tests. */
#ifndef DK_TESTUTIL_H
#define DK_TESTUTIL_H

#include <stddef.h>

/* Path under ../shared (env DK_SHARED); static buffer, valid until next call.
 * When ../shared itself is missing, skips the calling test (dk_test_need). */
const char *dk_test_shared(const char *rel);
/* The ../shared directory itself (env DK_SHARED). */
const char *dk_test_shared_root(void);
/* Path under the source tree (env DK_SOURCE_DIR); static buffer. */
const char *dk_test_src(const char *rel);
/* The docket CLI binary (env DK_DOCKET). */
const char *dk_test_docket(void);
/* Default model path if it is present (fetched by scripts/fetch-model.sh),
 * else NULL. */
const char *dk_test_default_model(void);
/* The default model's path, for a test that needs it: when it has not been
 * fetched, skips the calling cmocka test (under CI=true fails it). */
const char *dk_test_need_default_model(void);
/* The default model's GGUF, opened (caller frees with dk_gguf_free): skips
 * the calling test as above when it is absent, fails it when it cannot be
 * opened. */
struct dk_gguf *dk_test_open_default_gguf(void);

/* Skipping.  ctest reads exit status 77 as "skipped" (SKIP_RETURN_CODE in
 * tests/CMakeLists.txt); cmocka's skip() alone leaves the status 0, so every
 * skip goes through dk_test_skip, which counts it, and main returns
 * dk_test_run_group(...), which turns any skip into 77. */
#define DK_TEST_SKIPPED 77
/* True when CI=true: there the default model and ../shared must be present. */
int dk_test_in_ci(void);
/* Says why on stderr (one line) and skips the calling cmocka test. */
void dk_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* path when it exists; else skips the calling test, or under CI=true fails
 * it, saying what (e.g. "../shared") is missing. */
const char *dk_test_need(const char *path, const char *what);
/* For main, before the run (a group setup cannot skip): exits 77, or under
 * CI=true 1, when path is missing. */
void dk_test_require(const char *path, const char *what);
/* 1 if any test failed, 77 if any was skipped (reasons on stderr), else 0. */
int dk_test_status(int failed);
#define dk_test_run_group(tests, setup, teardown) \
	dk_test_status(cmocka_run_group_tests(tests, setup, teardown))
/* A fresh temporary directory (mkdtemp); caller frees the string. */
char *dk_test_tmpdir(void);
/* Reads a whole file; *n gets the length; caller frees; NULL on error. */
char *dk_test_read_file(const char *path, size_t *n);
/* Writes a file; returns 0 on success. */
int dk_test_write_file(const char *path, const void *p, size_t n);
/* Runs `sh -c cmd`, captures stdout into *out (caller frees, may be NULL),
 * returns the exit status (or -1). */
int dk_test_run(const char *cmd, char **out);

#endif
