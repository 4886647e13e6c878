/* Private to ingest: entity decoding and an event-based XML reader. */
#ifndef DK_INGEST_MARKUP_H
#define DK_INGEST_MARKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Decodes the entity at s (s[0] == '&') into out; returns bytes consumed, 0
 * when it is not an entity (then nothing is appended). */
size_t dk_x_entity(const char *s, size_t n, struct dk_buf *out);

/* Callbacks of dk_xml_walk.  name is the qualified tag name ("w:t"); attrs
 * the raw attribute text; text is entity-decoded. */
struct dk_xml_cb {
	void (*start)(void *ud, const char *name, const char *attrs, size_t n);
	void (*end)(void *ud, const char *name);
	void (*text)(void *ud, const char *text, size_t n);
};
void dk_xml_walk(const char *s, size_t n, const struct dk_xml_cb *cb, void *ud);
/* Value of attribute key in attrs (copied into val, truncated to valn). */
bool dk_xml_attr(const char *attrs, size_t n, const char *key, char *val, size_t valn);

#endif
