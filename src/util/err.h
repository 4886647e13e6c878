/* Error-message helpers shared by every module's per-object message buffer. */
#ifndef DK_UTIL_ERR_H
#define DK_UTIL_ERR_H

#include <stdarg.h>
#include <stddef.h>

#include "docket/docket.h"

/* printf into buf (size n, always NUL-terminated, truncated if needed).
 * Returns st so that a failure path reads `return dk_err(e, n, DK_FATAL, ...)`. */
enum dk_status dk_err(char *buf, size_t n, enum dk_status st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
enum dk_status dk_verr(char *buf, size_t n, enum dk_status st, const char *fmt, va_list ap);

/* strerror(e) with its first letter lowercased, as every docket message
 * reads ("cannot open 'x': no such file or directory").  Thread-local
 * storage, valid until the thread's next call. */
const char *dk_errno_str(int e);

#endif
