#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dk_buf_reserve(struct dk_buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return 0;
	if (extra > (size_t)-1 / 2 - b->len)
		return -1;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

int dk_buf_append(struct dk_buf *b, const void *p, size_t n)
{
	if (dk_buf_reserve(b, n))
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
	return 0;
}

int dk_buf_puts(struct dk_buf *b, const char *s) { return dk_buf_append(b, s, strlen(s)); }
int dk_buf_putc(struct dk_buf *b, char c) { return dk_buf_append(b, &c, 1); }

int dk_buf_printf(struct dk_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || dk_buf_reserve(b, (size_t)n))
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void dk_buf_clear(struct dk_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = 0;
}

void dk_buf_free(struct dk_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *dk_buf_steal(struct dk_buf *b)
{
	char *p = b->data;
	if (!p)
		p = calloc(1, 1);
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
