/* JSON strings from bytes that may not be UTF-8, for the tree's records
 * (dk_doc_to_json and dk_chunk_to_json are public, docket/ingest.h). */
#ifndef DK_INGEST_DOCJSON_H
#define DK_INGEST_DOCJSON_H

#include <jansson.h>
#include <stddef.h>

#include "docket/ingest.h"

/* A JSON string from bytes that may not be valid UTF-8 (file names):
 * invalid sequences become U+FFFD.  New reference. */
json_t *dk_json_str(const char *s);
json_t *dk_json_strn(const char *s, size_t n);
#endif
