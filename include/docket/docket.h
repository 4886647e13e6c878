/*
 * docket — batch document processing with a local LLM engine.
 *
 * Common definitions shared by every public header: the graded status code
 * every fallible call returns, and the version.
 *
 * Status codes are graded like libarchive's: DK_OK and DK_EOF are success,
 * DK_RETRY means "the same call may succeed later" (e.g. HTTP 429), DK_SKIP
 * means "this one item cannot be processed, carry on with the next" (a
 * corrupt archive member, an unsupported file), DK_FATAL means the object is
 * no longer usable.  Every object that can fail keeps a human-readable
 * message for its last failure, retrieved with dk_<module>_error(obj); the
 * message is lowercase and names the thing: "cannot open 'x.zip': truncated
 * archive".
 */
#ifndef DOCKET_DOCKET_H
#define DOCKET_DOCKET_H

#include <stddef.h>
#include <stdint.h>

#define DK_VERSION_STRING "0.1.0"

/* The kernel level this process computes with, chosen once from CPUID and
 * capped by DOCKET_KERNELS: "avx512", "avx2" or "ref" (static string).  In
 * the deterministic default every level gives the same bits. */
const char *dk_kernel_level_name(void);

enum dk_status {
	DK_OK = 0,      /* success */
	DK_EOF = 1,     /* no more items: success, end of stream */
	DK_RETRY = -10, /* transient failure: the same call may succeed later */
	DK_SKIP = -20,  /* this item failed; the object is still usable */
	DK_FATAL = -30, /* the object is unusable; free it */
};

/* Static, lowercase name of a status ("ok", "eof", "retry", "skip", "fatal"). */
const char *dk_status_str(enum dk_status st);

/* Size of the per-object error message buffers. */
#define DK_ERRMSG_MAX 512

#endif
