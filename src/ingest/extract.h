/* Private to ingest: the text extractors.  Each takes raw bytes and appends
 * UTF-8 text to out.  They never read outside [data, data+len) and never
 * fail on malformed input: they extract what they can. */
#ifndef DK_INGEST_EXTRACT_H
#define DK_INGEST_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "util/buf.h"

/* Inputs of one extraction. */
struct dk_xin {
	const char *data;
	size_t len;
	const char *name;     /* display path, for messages and extension hints */
	const char *mime;     /* from libmagic */
	const char *charset;  /* from libmagic */
	const char *fs_path;  /* file on disk holding exactly these bytes, or NULL */
	const char *pdftotext; /* NULL = search $PATH */
	uint64_t max_zip_bytes; /* cap on bytes expanded from a zip-based document */
	uint64_t max_text_bytes; /* cap on a helper tool's output (0 = none) */
	unsigned tool_timeout_s; /* a helper tool running longer is killed (0 = never) */
};

/* Outcome: DK_OK with text in out (UTF-8, LF newlines), or DK_SKIP with a
 * static *reason and a message in err. */
enum dk_status dk_extract(const struct dk_xin *in, struct dk_buf *out, const char **format,
			  const char **reason, char *err, size_t errn);

/* Which extractor a (mime, name) goes to; NULL = none (binary/unsupported). */
const char *dk_extract_format(const char *mime, const char *charset, const char *name);

/* Individual extractors (also driven by the fuzz harness).  Input is
 * expected to be UTF-8 already for the markup/csv/json ones; invalid bytes
 * are replaced. */
void dk_x_html(const char *s, size_t n, bool html, struct dk_buf *out);
void dk_x_rtf(const char *s, size_t n, struct dk_buf *out);
void dk_x_csv(const char *s, size_t n, char delim, struct dk_buf *out);
void dk_x_json(const char *s, size_t n, bool lines, struct dk_buf *out);
void dk_x_eml(const char *s, size_t n, struct dk_buf *out);
/* The zip+XML documents (fmt: docx, xlsx, pptx, odt, ods, odp, epub) and
 * PDF (through pdftotext); these read in->fs_path or in->data themselves.
 * Return 0, or non-zero with *reason and err set. */
int dk_x_office(const struct dk_xin *in, const char *fmt, struct dk_buf *out, const char **reason, char *err,
		size_t errn);
int dk_x_pdf(const struct dk_xin *in, struct dk_buf *out, const char **reason, char *err, size_t errn);
/* The value of hex digit c, or -1 (RTF \'hh escapes, quoted-printable). */
int dk_x_hexval(char c);
/* The extension of name's last component without the dot ("" for none). */
const char *dk_x_ext_of(const char *name);

/* Charset conversion to UTF-8 with newline normalisation (CRLF, CR -> LF)
 * and replacement of invalid sequences.  charset as libmagic names it
 * (NULL = guess).  Returns 0, or -1 when the charset is unknown to iconv or
 * the bytes are not in it (err says which). */
int dk_to_utf8(const char *s, size_t n, const char *charset, struct dk_buf *out, char *err, size_t errn);
/* Appends s, replacing invalid UTF-8 with U+FFFD and normalising newlines. */
void dk_utf8_sanitize(const char *s, size_t n, struct dk_buf *out);
/* Length of the longest valid UTF-8 prefix of s. */
size_t dk_utf8_valid_len(const char *s, size_t n);
/* Appends code point cp as UTF-8 (invalid ones as U+FFFD). */
void dk_utf8_put(struct dk_buf *b, uint32_t cp);
/* Collapses runs of more than one blank line and trims trailing spaces on lines
 * and whitespace at both ends, in place. */
void dk_text_tidy(struct dk_buf *b);

#endif
