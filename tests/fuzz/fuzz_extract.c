/* Fuzz target: the text extractors (HTML, XML, RTF, CSV/TSV, JSON/JSONL,
 * email, charset conversion, chunking of the result).  The first byte picks
 * the extractor; the rest is the document.  Invariants: no crash, output is
 * valid UTF-8 without NULs, and chunk ranges stay inside the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "docket/ingest.h"
#include "ingest/extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct dk_buf *b)
{
	const char *s = b->data ? b->data : "";
	if (dk_utf8_valid_len(s, b->len) != b->len || memchr(s, 0, b->len))
		abort();
	struct dk_chunk *c;
	size_t n;
	struct dk_chunk_params p = {.max_tokens = 16, .overlap_tokens = 4};
	if (dk_chunk_text(s, b->len, NULL, &p, &c, &n) != DK_OK)
		abort();
	for (size_t i = 0; i < n; i++)
		if (c[i].start >= c[i].end || c[i].end > b->len || (i && c[i].start <= c[i - 1].start))
			abort();
	free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	struct dk_buf out = {0};
	char err[256];
	static const char *const charsets[] = {"utf-8", "iso-8859-1", "utf-16le", "utf-16be", "unknown-8bit", "binary"};
	switch (data[0] % 10) {
	case 0:
		dk_x_html(s, n, true, &out);
		break;
	case 1:
		dk_x_html(s, n, false, &out);
		break;
	case 2:
		dk_x_rtf(s, n, &out);
		break;
	case 3:
		dk_x_csv(s, n, 0, &out);
		break;
	case 4:
		dk_x_csv(s, n, '\t', &out);
		break;
	case 5:
		dk_x_json(s, n, false, &out);
		break;
	case 6:
		dk_x_json(s, n, true, &out);
		break;
	case 7:
		dk_x_eml(s, n, &out);
		break;
	case 8:
		if (dk_to_utf8(s, n, charsets[(data[0] / 10) % 6], &out, err, sizeof err) != 0)
			dk_buf_clear(&out);
		break;
	default: {
		/* the whole dispatch, with libmagic deciding (zip-based formats included) */
		char *text;
		size_t tl;
		const char *reason;
		if (dk_extract_buffer(s, n, "fuzz.bin", NULL, &text, &tl, &reason, err, sizeof err) == DK_OK) {
			dk_buf_append(&out, text, tl);
			free(text);
		}
		break;
	}
	}
	dk_text_tidy(&out);
	check(&out);
	dk_buf_free(&out);
	return 0;
}
