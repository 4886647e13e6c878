#include "err.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

const char *dk_errno_str(int e)
{
	static _Thread_local char buf[128];
	snprintf(buf, sizeof buf, "%s", strerror(e));
	/* "No such file" but not "EOF" or "I/O error": only a capital followed by lowercase */
	if (isupper((unsigned char)buf[0]) && islower((unsigned char)buf[1]))
		buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

const char *dk_status_str(enum dk_status st)
{
	switch (st) {
	case DK_OK: return "ok";
	case DK_EOF: return "eof";
	case DK_RETRY: return "retry";
	case DK_SKIP: return "skip";
	case DK_FATAL: return "fatal";
	}
	return "unknown";
}

enum dk_status dk_verr(char *buf, size_t n, enum dk_status st, const char *fmt, va_list ap)
{
	if (buf && n)
		vsnprintf(buf, n, fmt, ap);
	return st;
}

enum dk_status dk_err(char *buf, size_t n, enum dk_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	dk_verr(buf, n, st, fmt, ap);
	va_end(ap);
	return st;
}
