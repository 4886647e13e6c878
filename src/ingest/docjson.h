/* JSON shape of an ingest record, shared by 'docket ls', 'docket chunk' and
 * anything else that reports documents (private to the tree, not public). */
#ifndef DK_INGEST_DOCJSON_H
#define DK_INGEST_DOCJSON_H

#include <jansson.h>
#include <stddef.h>

#include "docket/ingest.h"

/* A JSON string from bytes that may not be valid UTF-8 (file names):
 * invalid sequences become U+FFFD.  New reference. */
json_t *dk_json_str(const char *s);
json_t *dk_json_strn(const char *s, size_t n);
/* {"path", ["fs_path", "member"], "mime", "charset", "bytes", ["sha256"],
 *  "action": "extract"|"skip", ["skip_reason", "detail"], ["format"],
 *  ["text_bytes", "truncated"]}.  New reference. */
json_t *dk_doc_to_json(const struct dk_doc *d);

#endif
