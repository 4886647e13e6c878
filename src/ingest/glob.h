/* Private to ingest: shell-style glob matching for include/exclude. */
#ifndef DK_INGEST_GLOB_H
#define DK_INGEST_GLOB_H

#include <stdbool.h>

/* "*" and "?" match within one path segment, "[a-z]"/"[!x]" classes, "\\"
 * escapes, "**" any number of characters including '/', and "**" + "/"
 * also zero directories.  A pattern without '/' is matched against the
 * last segment of path only. */
bool dk_glob_match(const char *pat, const char *path);

#endif
