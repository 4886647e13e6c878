/*
 * The output file and its checkpoint journal.
 *
 * OUT.jsonl holds one record per line and is the source of truth: on
 * resume every complete, parsable line is a finished record, a torn last
 * line is cut off, unparsable or repeated lines are dropped (the file is
 * rewritten through a temporary and rename).  OUT.jsonl.ckpt, beside it,
 * starts with a header line {"docket_checkpoint":1,"config_hash":...,
 * "config":{...}} followed by the ids of finished records, one per line;
 * it says which configuration produced OUT.  A record is written (one
 * write(2) of the whole line) before its id is journaled, and both files are
 * fdatasync'ed every sync_every records or sync_ms milliseconds, output
 * first, so the journal never names a record the output lacks.
 *
 * The output is locked with flock(LOCK_EX) for the whole run.
 */
#ifndef DK_RUNNER_OUTPUT_H
#define DK_RUNNER_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "docket/docket.h"
#include "docket/runner.h" /* enum dk_out_mode */

struct dk_out_params {
	const char *path;        /* "-" = stdout: no lock, no journal, no resume */
	const char *config_hash; /* hex */
	const char *config_json; /* compact JSON object describing the configuration */
	enum dk_out_mode mode;
	bool force;              /* resume despite a configuration mismatch */
	int sync_every;          /* records between fdatasync (default 64) */
	int sync_ms;             /* or milliseconds (default 1000) */
	bool private_files;      /* create the output and checkpoint 0600 (the umask may
				  * only tighten it): a sensitive pipeline's records */
};
struct dk_out_params dk_out_default_params(void);

struct dk_out;

/* Opens (and on resume repairs) the output.  DK_OK, or DK_SKIP for a
 * refusal of the command as given (exists, configuration mismatch: message
 * in err), DK_FATAL when the output cannot be had (cannot be created,
 * locked by another run) or on I/O failures. */
enum dk_status dk_out_open(struct dk_out **out, const struct dk_out_params *p, char *err, size_t n);
void dk_out_free(struct dk_out *o);
const char *dk_out_error(const struct dk_out *o);

/* What opening found. */
struct dk_out_scan {
	uint64_t records;     /* valid records kept */
	uint64_t torn_bytes;  /* bytes cut from a torn last line */
	uint64_t bad_lines;   /* unparsable lines dropped */
	uint64_t duplicates;  /* repeated ids dropped */
	bool rewritten;
};
const struct dk_out_scan *dk_out_scan(const struct dk_out *o);

/* A record with this id is already in the output. */
bool dk_out_done(const struct dk_out *o, const char *id);
/* An ok record for this (content sha256, pipeline hash, model sha256)
 * exists and none of that triple is in error. */
bool dk_out_have_ok(const struct dk_out *o, const char *sha256, const char *pipeline_hash,
		    const char *model_sha256);

/* --incremental: the ids of the records already in the output for the same
 * document (path, archive member or NULL, pipeline name) with other content
 * than sha256, as a new JSON array (caller owns), or NULL when there are
 * none.  They are the records of an earlier version of the document, which
 * the new version's records supersede. */
json_t *dk_out_superseded(const struct dk_out *o, const char *path, const char *member,
			  const char *pipeline, const char *sha256);

/* Appends line (no newline; one JSON object) and journals id. */
enum dk_status dk_out_write(struct dk_out *o, const char *line, size_t len, const char *id);
/* Makes everything written durable now. */
enum dk_status dk_out_sync(struct dk_out *o);
/* Final sync; complete marks the journal as a finished run. */
enum dk_status dk_out_close(struct dk_out *o, bool complete);

/* The journal's path for an output path (malloc'd). */
char *dk_out_journal_path(const char *path);
/* The configuration recorded in the journal beside output path (a new
 * reference), or NULL when there is none or it cannot be read. */
json_t *dk_out_journal_config(const char *path);
/* Which keys of two configurations differ, as "key old -> new, ..." in out
 * (size n; "" when none). */
void dk_out_config_diff(const json_t *a, const json_t *b, char *out, size_t n);

/* A set of 64-bit keys (open addressing), for ids seen. */
struct dk_idset {
	uint64_t *v;
	size_t n, cap;
};
uint64_t dk_idset_key(const char *s, size_t len);
int dk_idset_add(struct dk_idset *s, uint64_t k); /* 1 added, 0 present, -1 oom */
bool dk_idset_has(const struct dk_idset *s, uint64_t k);
void dk_idset_free(struct dk_idset *s);

#endif
