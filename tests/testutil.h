/* Helpers shared by the cmocka tests. */
#ifndef DK_TESTUTIL_H
#define DK_TESTUTIL_H

#include <stddef.h>

/* Path under ../shared (env DK_SHARED); static buffer, valid until next call. */
const char *dk_test_shared(const char *rel);
/* Path under the source tree (env DK_SOURCE_DIR); static buffer. */
const char *dk_test_src(const char *rel);
/* The docket CLI binary (env DK_DOCKET). */
const char *dk_test_docket(void);
/* Default model path if it is present (fetched by scripts/fetch-model.sh),
 * else NULL: tests that need it then skip with a message. */
const char *dk_test_default_model(void);
/* The default model's path, for a test that needs it: when it has not been
 * fetched, says so and skips the calling cmocka test (does not return). */
const char *dk_test_need_default_model(void);
/* The default model's GGUF, opened (caller frees with dk_gguf_free): skips
 * the calling test as above when it is absent, fails it when it cannot be
 * opened. */
struct dk_gguf *dk_test_open_default_gguf(void);
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
