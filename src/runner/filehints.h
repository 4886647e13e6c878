/* File hints: what rules can tell about a file from its path and text (its
 * kind by name, the role of the directories it sits in, a generated-file
 * banner, secrets and personal data in the text), in words, for a classify
 * prompt's {{hints}}.  The model reads them beside the text and decides. */
#ifndef DK_RUNNER_FILEHINTS_H
#define DK_RUNNER_FILEHINTS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Appends the hints for a file at rel (the path from the walked input's own
 * name down, so the directories above it play no part) with the extracted
 * text[0..len) to out: phrases joined by "; ", the most decisive first
 * (secrets, then generated, then the name's kind, then directories).
 * Appends nothing when no rule speaks.  0, or -1 when memory runs out. */
int dk_filehints_describe(const char *rel, const char *text, size_t len, struct dk_buf *out);

/* The start of the part of path that hints read: from the name of the input
 * it was walked from (inputs[i] a directory that path lies under), or all of
 * path when none is. */
const char *dk_filehints_rel(const char *path, const char *const *inputs, size_t n_inputs);

#endif
