/*
 * Ingest: walk inputs (files, directories, archives), detect each file's type
 * with libmagic, extract its text as UTF-8, and split text into chunks.
 *
 * Every file or archive member the walk reaches becomes exactly one dk_doc:
 * either DK_DOC_EXTRACT with its text, or DK_DOC_SKIP with a reason.  Nothing
 * is silently dropped: a file or member that the include/exclude globs
 * filter out is a DK_DOC_SKIP "excluded" record (unless report_excluded is
 * turned off).  Not reached, and so without a record: hidden files (without
 * hidden), directories an exclude glob prunes, and what lies below the
 * depth limit.
 *
 * Order is deterministic: inputs in the order they were added; inside a
 * directory, entries sorted bytewise by name (sorting is per directory level,
 * so memory stays flat on huge trees); inside an archive, members in stored
 * order.  Archive members are addressed as "outer.zip!/inner.tar.gz!/a.txt".
 *
 * Ingest knows nothing of models: chunking counts tokens through a callback.
 * A dk_ingest object is used by one thread at a time; separate objects are
 * independent.  Memory stays flat on any tree size: about one directory
 * listing per level, one file (or member) and its text, and for nested
 * archives the bytes of each open inner archive.
 */
#ifndef DOCKET_INGEST_H
#define DOCKET_INGEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"

struct dk_ingest_params {
	/* Shell globs, matched against the path relative to the input given
	 * ("sub/a.txt"; archive members as "sub/x.zip!/dir/note.txt") and, for
	 * members, also against the member's path inside its innermost archive
	 * ("dir/note.txt").  "*" and "?" do not cross '/', "**" does ("**" +
	 * "/" also matches zero directories).  A pattern without '/' matches
	 * the base name.  No include = everything.  Exclude wins over include
	 * and also prunes directories.  Files named like archives are opened
	 * even when include does not match them, to look for matching members.
	 * Arrays borrowed for the object's life. */
	const char **include;
	size_t n_include;
	const char **exclude;
	size_t n_exclude;
	int max_depth;        /* directory recursion below an input, -1 = unlimited; 0 = only the input's entries */
	bool hidden;          /* walk dot-files and dot-directories (default false) */
	bool follow_symlinks; /* default false: symlinks reached inside directories are skipped ("symlink");
	                         inputs named explicitly are always followed; loops are detected */
	bool one_filesystem;  /* default true: do not descend into other mounted filesystems */
	bool archives;        /* default true: walk into archives; false = one record for the archive itself */
	uint64_t max_file_bytes;    /* plain file larger than this: skip "too-large" (default 256 MiB) */
	uint64_t max_member_bytes;  /* archive member larger than this: skip "too-large" (default 64 MiB) */
	uint64_t max_archive_bytes; /* total bytes expanded from one outermost archive (default 1 GiB) */
	double max_ratio;           /* expanded / compressed bytes for one archive (default 100) */
	uint64_t max_entries;       /* members per outermost archive, nested included (default 100000) */
	int max_nesting;            /* archives inside archives: 0 = don't open nested ones (default 4) */
	uint64_t max_text_bytes;    /* extracted text is truncated (at a UTF-8 boundary) beyond this (default 64 MiB);
	                               for PDFs pdftotext is stopped there instead and the file is skipped
	                               ("limit-exceeded"), so a PDF that expands without end costs no more */
	unsigned tool_timeout_s;    /* pdftotext running longer than this is killed and the file skipped
	                               ("limit-exceeded"); 0 = no limit (default 30) */
	bool no_extract;            /* detect and classify only: text stays NULL (for "docket ls") */
	bool raw_text;              /* text formats (HTML, XML, JSON, CSV, Markdown) as written, markup
	                               and all, not through their extractor: what a file is, not what
	                               it says (classify-files); office documents and PDFs are still
	                               extracted (default false) */
	const char *pdftotext;      /* path of pdftotext; NULL = look it up in $PATH */
	bool report_excluded;       /* default true: files and members the globs filter out are
	                               "excluded" records (their bytes unread); false = no record */
};

/* Defaults as documented above. */
struct dk_ingest_params dk_ingest_default_params(void);

/* Command-line options shared by every command that walks inputs (ls,
 * chunk, run): --include GLOB, --exclude GLOB, --max-depth N, --hidden,
 * --follow-symlinks, --cross-filesystems, --no-archives, --max-file-bytes N,
 * --max-member-bytes N, --max-archive-bytes N (N may end in K, M, G),
 * --max-ratio X, --max-entries N, --max-nesting N, --max-text-bytes N,
 * --tool-timeout SECONDS, --pdftotext PATH, and the
 * --opt=value spellings.  Looks at argv[*i]: returns 1 when it was one of
 * these (then *i is left on its last argument, include/exclude arrays grow by
 * realloc and point into argv), 0 when it is not, -1 on a bad or missing
 * value (err, size errn, says which). */
int dk_ingest_parse_option(struct dk_ingest_params *p, int argc, char **argv, int *i, char *err, size_t errn);
/* Frees the include/exclude arrays grown by dk_ingest_parse_option. */
void dk_ingest_params_release(struct dk_ingest_params *p);
/* Help text for those options, one per line, indented by two spaces (static). */
const char *dk_ingest_options_help(void);

enum dk_doc_action { DK_DOC_EXTRACT, DK_DOC_SKIP };

/* One record.  Borrowed until the next dk_ingest_next or dk_ingest_free. */
struct dk_doc {
	const char *path;     /* display path, members as "outer.zip!/inner.tar.gz!/dir/note.txt" */
	const char *fs_path;  /* the file on disk (outermost archive for members) */
	const char *member;   /* path inside the archive(s) ("inner.tar.gz!/dir/note.txt"), NULL for plain files */
	const char *mime;     /* from libmagic, e.g. "text/plain"; "inode/directory"-like or "application/octet-stream" when unknown; never NULL */
	const char *charset;  /* from libmagic, e.g. "utf-8", "iso-8859-1", "binary"; never NULL */
	uint64_t bytes;       /* raw size (of the file or member) */
	char sha256[65];      /* hex sha256 of the raw bytes; "" when they could not be read */
	enum dk_doc_action action;
	const char *skip_reason; /* NULL when extracted; else "binary", "too-large", "unsupported-type",
	                            "encrypted", "decode-error", "limit-exceeded", "unreadable",
	                            "unsafe-path", "symlink", "symlink-loop", "special-file",
	                            "other-filesystem", "tool-missing", "empty", "archive-error",
	                            "excluded" */
	const char *detail;   /* lowercase message naming the file and the reason, or NULL */
	const char *format;   /* extractor used: "text", "markdown", "csv", "json", "html", "xml", "docx", ... or NULL */
	const char *text;     /* extracted UTF-8 (NUL-terminated, CRLF normalised) when action == DK_DOC_EXTRACT */
	size_t text_len;
	bool truncated;       /* text was cut at max_text_bytes */
	int depth;            /* archive nesting: 0 = plain file, 1 = member of an archive on disk, ... */
	int input;            /* the input it came from: its index in dk_ingest_add order */
};

struct dk_ingest;

/* p NULL = defaults.  p's arrays are borrowed for the object's lifetime. */
enum dk_status dk_ingest_new(struct dk_ingest **out, const struct dk_ingest_params *p);
/* Queues an input: a file, a directory, an archive, or "-" to read a list of
 * paths (one per line) from stdin when the walk reaches it.  Inputs are
 * walked in the order added.  A missing input is not an error here: it
 * becomes a skipped record ("unreadable") when reached. */
enum dk_status dk_ingest_add(struct dk_ingest *ing, const char *input);
/* Next record.  DK_OK (*doc set), DK_EOF (done), DK_FATAL (out of memory,
 * libmagic could not load: see dk_ingest_error). */
enum dk_status dk_ingest_next(struct dk_ingest *ing, const struct dk_doc **doc);
const char *dk_ingest_error(const struct dk_ingest *ing);
void dk_ingest_free(struct dk_ingest *ing);

/* Counters so far (for summaries and benchmarks). */
struct dk_ingest_stats {
	uint64_t docs, extracted, skipped;
	uint64_t bytes_read;   /* raw bytes of all records */
	uint64_t text_bytes;   /* extracted text bytes */
};
void dk_ingest_stats(const struct dk_ingest *ing, struct dk_ingest_stats *st);

/* Extracts text from an in-memory buffer without walking (used by the fuzz
 * harness and by callers that already hold the bytes).  name is used for
 * messages and as an extension hint; mime may be NULL (then libmagic
 * decides).  On DK_OK *text is malloc'd UTF-8 (caller frees); on DK_SKIP
 * *reason is a static skip reason and err (size n) says why. */
enum dk_status dk_extract_buffer(const void *data, size_t len, const char *name, const char *mime,
				 char **text, size_t *text_len, const char **reason, char *err, size_t n);

/* ---- chunking ---- */

/* Token counter: number of tokens in text[0..len).  The runner passes the
 * model tokenizer; NULL = fast estimate (about 4 bytes per token, words and
 * punctuation counted, 4-5 bytes per token on English).  Must be
 * deterministic. */
typedef int (*dk_count_fn)(void *ud, const char *text, size_t len);

struct dk_chunk_params {
	int max_tokens;     /* per chunk, >= 1 (default 512) */
	int overlap_tokens; /* tokens repeated from the previous chunk, 0 .. max_tokens/2 (default 64) */
	dk_count_fn count;  /* NULL = estimate */
	void *count_ud;
};
struct dk_chunk_params dk_chunk_default_params(void);

struct dk_chunk {
	int index, count;    /* 0-based index, total chunks of the document */
	size_t start, end;   /* byte range [start, end) in the text; never splits a UTF-8 sequence */
	int tokens;          /* count(text + start, end - start) */
	char id[65];         /* hex sha256 of "<doc_sha256>:<start>-<end>": stable across runs */
};

/* Splits text into chunks of at most max_tokens (a single "word" that is
 * longer is cut at a UTF-8 boundary), breaking preferably at paragraph,
 * then sentence, then word boundaries.  Consecutive chunks overlap by about
 * overlap_tokens.  *out malloc'd array (caller frees), *n its length; zero
 * chunks only for empty (or all-whitespace) text.  doc_sha256 NULL = hash of
 * the text itself. */
enum dk_status dk_chunk_text(const char *text, size_t len, const char *doc_sha256,
			     const struct dk_chunk_params *p, struct dk_chunk **out, size_t *n);

/* The fast estimate used when count is NULL. */
int dk_chunk_estimate_tokens(void *ud, const char *text, size_t len);

/* The JSON shape of a document as `docket ls` and `docket chunk` print it:
 * {"path", ["fs_path", "member"], "mime", "charset", "bytes", ["sha256"],
 *  "action": "extract"|"skip", ["skip_reason", "detail"], ["format"],
 *  ["text_bytes", "truncated"]}.  Names that are not UTF-8 are escaped
 * (invalid sequences become U+FFFD).  New reference, NULL when out of memory. */
json_t *dk_doc_to_json(const struct dk_doc *d);

/* One chunk c of d: {"type": "chunk", "path", "doc_sha256", "id", "index",
 * "count", "start", "end", "tokens", ["text"]}.  New reference, NULL when
 * out of memory. */
json_t *dk_chunk_to_json(const struct dk_doc *d, const struct dk_chunk *c, bool with_text);

#endif
