/* A growable byte buffer, always NUL-terminated (data[len] == 0) so that it
 * can be handed to string functions.  Zero-initialised struct is an empty
 * buffer; dk_buf_free releases it and leaves it empty again. */
#ifndef DK_UTIL_BUF_H
#define DK_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct dk_buf {
	char *data; /* owned; NULL while cap == 0 */
	size_t len;
	size_t cap;
};

/* All return 0, or -1 when memory runs out (the buffer is then unchanged). */
int dk_buf_reserve(struct dk_buf *b, size_t extra);
int dk_buf_append(struct dk_buf *b, const void *p, size_t n);
int dk_buf_puts(struct dk_buf *b, const char *s);
int dk_buf_putc(struct dk_buf *b, char c);
int dk_buf_printf(struct dk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dk_buf_clear(struct dk_buf *b); /* len = 0, keeps memory */
void dk_buf_free(struct dk_buf *b);
/* Hands the memory to the caller (free() it); the buffer becomes empty.
 * Never NULL on success: an empty buffer yields "". */
char *dk_buf_steal(struct dk_buf *b);

#endif
