/*
 * Pipelines: a JSON file (pipelines/<name>.json, shape documented in
 * pipelines/pipeline.schema.json) that names a task, input filters,
 * chunking, prompt templates, generation settings and the output shape.
 *
 * Templates are text files (prompts/...) located relative to the pipeline
 * file, with {{name}} placeholders.  Known names: text, path, name, member,
 * mime, bytes, labels, schema, chunk_index, chunk_count, summaries, field,
 * field_description.  An unknown placeholder, a missing file, a wrong type
 * or a missing required field is a load error naming file, line and field.
 *
 * A rendered prompt is a list of segments: template text (which may spell
 * chat control tokens) and substituted values (never parsed as control
 * tokens).  Everything before the first per-chunk value is identical for
 * every chunk of a run, so it tokenizes identically and the engine's
 * prefix cache serves it.
 */
#ifndef DOCKET_PIPELINE_H
#define DOCKET_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/route.h"

enum dk_task { DK_TASK_SUMMARIZE, DK_TASK_CLASSIFY, DK_TASK_EXTRACT, DK_TASK_GENERATE };
const char *dk_task_name(enum dk_task t);

/* A parsed template: literal text and placeholders, alternating. */
struct dk_tmpl_part {
	bool is_var;
	char *text; /* literal text, or the placeholder's name */
};
struct dk_tmpl {
	char *path;  /* file it came from (for messages) */
	char *src;   /* whole file content */
	struct dk_tmpl_part *parts;
	size_t n_parts;
};

/* One field of an extract pipeline (from schema.properties, in file order). */
struct dk_field {
	char *name;
	char *type;        /* its first non-null type: "string", "number", "integer",
			      "boolean", "array", "object"; "string" when only enum/const */
	char *description; /* "" when none */
	char *schema_json; /* the property's own schema (compact JSON) */
	bool plain;        /* no enum, const, format, pattern, anyOf or oneOf */
	bool nullable;     /* null is one of its values */
	bool ground;       /* nullable, no enum, const, anyOf or oneOf, and free text or a
			      number: a value that does not appear in the document, or
			      fails the field's format or pattern, may become null */
	char *format;      /* its "format", NULL when none */
	int normalize[8];  /* extract.normalize: the field's normalisations in order
			      (enum dk_norm of runner/values.h) */
	size_t n_normalize;
	bool line_start;   /* extract.line_start: the value starts at a line chosen by scoring */
};

/*
 * How an extract pipeline asks for its fields (the "extract" block):
 *   fields - one short generation per field after the shared document
 *            prefix (best with small models: one question at a time);
 *   object - one generation per chunk that writes the whole JSON object
 *            (the prompt shows {{schema}}; nested schemas work).
 * constrained (default true): generation is masked by the grammar compiled
 * from the schema (the field's in fields mode, the whole schema in object
 * mode), so every value parses and has its schema's shape.
 * grounded (default true): a free-text or number value that does not occur
 * in the document (ignoring case, spacing and thousands separators; a
 * number by value, a date by date) or fails its field's format or pattern
 * becomes null, for fields whose schema admits null (a value the schema
 * requires is kept, so a constrained record always validates); small
 * models invent plausible values, and copy the wrong line.
 * copy (default true, fields mode, constrained, grounded): a grounded free-text
 * field is generated as a copy of the document: each token must continue
 * text the document holds (whitespace and line breaks read as one space),
 * so a value is a span of the document, across its line breaks.
 * normalize: per field, what its value goes through before grounding and
 * output ("trim", "collapse_spaces", "lower", "upper", "date"); a field
 * whose format is "date" is read as printed and written YYYY-MM-DD.
 * line_start (fields mode, with copy): fields whose value begins at the
 * start of a line of the document (a receipt's address): each of the
 * chunk's first 12 lines is scored as the start of the answer (up to 24
 * tokens of it), against the same after a content-free document ("N/A"),
 * and the value starts
 * with the line that gains most from the document (pointwise mutual
 * information), then continues as a copy, across line breaks, until the
 * model closes it.  Small models locate a field far better by this
 * comparison than by their first generated token.
 * date_order: how a numeric date whose numbers do not settle it is read,
 * "dmy" (default: 03/04/2019 is 3 April) or "mdy".
 */
enum dk_extract_mode { DK_EXTRACT_FIELDS, DK_EXTRACT_OBJECT };

struct dk_pipeline {
	char *name;
	char *path;         /* the pipeline file */
	char *dir;          /* its directory: prompt paths are relative to it */
	char *description;
	enum dk_task task;

	/* input */
	char **include, **exclude;
	size_t n_include, n_exclude;
	bool hidden;        /* also walk dot-files and dot-directories (CI files, .env) */
	bool raw_text;      /* text formats as written (dk_ingest_params.raw_text) */

	/* chunking (tokens of the model's tokenizer) */
	int chunk_tokens;   /* default 384 */
	int chunk_overlap;  /* default 32 */

	/* prompts; NULL when not given */
	struct dk_tmpl *system;
	struct dk_tmpl *user;    /* the per-chunk prompt ("map" for summarize) */
	struct dk_tmpl *reduce;  /* summarize: combines chunk summaries */
	struct dk_tmpl *answer;  /* extract, classify: the start of the model's
				    answer, written for it ("This document belongs
				    to the category:"); small models answer far
				    better inside such a frame.  Ending inside a
				    sentence, it makes labels be scored as new
				    words (" sport") */

	/* classify */
	char **labels;
	size_t n_labels;
	size_t max_chunks;   /* chunks of a document processed, from its start; 0 = all.
			      * classify: 1 ("classify": {"scope": "head"}, the default), 0
			      * for "scope": "all" (the chunks' distributions averaged) */
	bool calibrate;      /* classify: divide out the labels' probabilities on a
			      * content-free document (default true) */
	/* extract: the JSON Schema text (object with properties) and its fields */
	char *schema_json;
	struct dk_field *fields;
	size_t n_fields;
	enum dk_extract_mode extract_mode; /* default fields */
	bool constrained;    /* default true */
	bool grounded;       /* default true */
	bool copy;           /* default true */
	int date_order;      /* enum dk_date_order of runner/values.h; default day first */

	/* generation */
	int max_tokens;      /* default 128 */
	int reduce_max_tokens; /* default max_tokens */
	float temperature;   /* default 0 (greedy) */
	float top_p;         /* default 1 */
	int top_k;           /* default 0 (off) */
	float repeat_penalty;/* default 1 */
	uint64_t seed;       /* default 0 */
	char **stop;
	size_t n_stop;

	bool per_chunk;      /* output shape: one record per chunk (else per document) */
	bool sensitive;      /* default true: never leaves the machine unless allowed */

	/* fallback block, parsed once at load: fallback's strings are borrowed
	 * from fallback_block, which the pipeline owns (NULL when none) */
	bool has_fallback;
	struct dk_fallback_params fallback;
	json_t *fallback_block;

	char hash[65];       /* sha256 of the canonical pipeline JSON + every prompt file */
};

/* Loads a pipeline by path, or by name ("summarize-records") from the
 * shipped pipelines: $DOCKET_PIPELINES, then the installed ones beside the
 * executable (<prefix>/bin/docket -> <prefix>/share/docket/pipelines), then
 * the source tree's (a build-tree binary), then /usr/local/share and
 * /usr/share.  On failure returns NULL and writes a
 * message into err (size n), e.g.
 *   "pipelines/x.json:12: generation.temperature: expected a number". */
struct dk_pipeline *dk_pipeline_load(const char *path_or_name, char *err, size_t n);
void dk_pipeline_free(struct dk_pipeline *p);
/* Resolves a name to a file path (malloc'd, caller frees) or NULL. */
char *dk_pipeline_find(const char *path_or_name);

/* Template parsing; NULL on error (err names path:line and the placeholder). */
struct dk_tmpl *dk_tmpl_parse(const char *path, const char *src, char *err, size_t n);
void dk_tmpl_free(struct dk_tmpl *t);
bool dk_tmpl_known_var(const char *name);
bool dk_tmpl_uses(const struct dk_tmpl *t, const char *var);

/* The template variables, one table: each placeholder's name and where its
 * value comes from.  The scope decides what a prompt head may hold: only
 * pipeline values may reach a prefix file (docket run --prefix-dir). */
enum dk_var_scope {
	DK_SCOPE_PIPELINE, /* the same for every document: labels, schema, a field */
	DK_SCOPE_DOCUMENT, /* the document: path, name, mime, bytes, ... */
	DK_SCOPE_CHUNK,    /* the chunk: its text and index */
	DK_SCOPE_REDUCE,   /* a document's reduce step: the chunk summaries */
};
enum dk_var {
	DK_VAR_TEXT,
	DK_VAR_PATH,
	DK_VAR_NAME,
	DK_VAR_MEMBER,
	DK_VAR_MIME,
	DK_VAR_BYTES,
	DK_VAR_LABELS,
	DK_VAR_SCHEMA,
	DK_VAR_CHUNK_INDEX,
	DK_VAR_CHUNK_COUNT,
	DK_VAR_SUMMARIES,
	DK_VAR_FIELD,
	DK_VAR_FIELD_DESCRIPTION,
	DK_VAR_HINTS,
	DK_VAR_COUNT
};
struct dk_var_def {
	const char *name;
	enum dk_var_scope scope;
};
extern const struct dk_var_def dk_vars[DK_VAR_COUNT];
/* The variable named name, or -1 when there is none. */
int dk_var_find(const char *name);
/* Values by variable (borrowed); NULL renders as "". */
struct dk_var_values {
	const char *v[DK_VAR_COUNT];
};

/* Values for rendering: name -> value pairs (borrowed). */
struct dk_tmpl_var {
	const char *name;
	const char *value;
};

/* A rendered prompt segment.  special: template text (may spell control
 * tokens); otherwise a substituted value. */
struct dk_seg {
	char *text;
	size_t len;
	bool special;
};
struct dk_segs {
	struct dk_seg *v;
	size_t n, cap;
};
/* Appends t rendered with vars to out; a placeholder without a value
 * renders as "".  Returns 0, -1 on out of memory. */
int dk_tmpl_render(const struct dk_tmpl *t, const struct dk_tmpl_var *vars, size_t n_vars,
		   struct dk_segs *out);
int dk_segs_add(struct dk_segs *s, const char *text, size_t len, bool special);
void dk_segs_free(struct dk_segs *s);
/* Concatenation of all segments (malloc'd). */
char *dk_segs_join(const struct dk_segs *s);

#endif
