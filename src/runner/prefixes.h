/*
 * Instruction prefixes kept on disk between runs (docket run --prefix-dir).
 *
 * Every prompt of a pipeline starts with the same instructions.  The prefix
 * cache computes them once per run; this keeps their KV in a directory, so
 * that the next run (tonight's cron job) starts with them cached.  Only a
 * prompt's head before its first document-derived placeholder is saved,
 * rounded down to whole KV blocks: the runner passes that length, so no
 * document text, name or path reaches the directory.
 *
 * Files are named <model sha256, 16 hex>-<f16|f32>-<sha256 of the head's
 * tokens, 16 hex>.dkkv.  dk_kv_prefix_load checks model, cache layout,
 * kernel level and tokens again, so a renamed or stale file is refused,
 * never used.  A missing, refused or unreadable file costs the run nothing
 * but the computation the file would have saved: the head is computed and
 * the file written anew.
 *
 * Lifecycle:
 *   1. dk_prefixes_new once the context exists;
 *   2. dk_prefixes_load before a sequence attaches its prompt from the
 *      prefix cache (dk_kv_seq_reuse_prefix);
 *   3. dk_prefixes_save once a sequence has computed its head;
 *   4. dk_prefixes_stats for the report;
 *   5. dk_prefixes_free.
 * Each head is loaded at most once and saved at most once per run.
 */
#ifndef DK_RUNNER_PREFIXES_H
#define DK_RUNNER_PREFIXES_H

#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/model.h"

struct dk_prefixes;

/* dir is created (mode 0700) when missing.  model_sha256: 64 hex chars,
 * copied; kv_f16: the context's cache type (part of the file name, so
 * that runs with either type keep their own files).  DK_SKIP with a
 * message in err when dir cannot be created or is not a directory (a
 * configuration error: the run should not start). */
enum dk_status dk_prefixes_new(struct dk_prefixes **out, const char *dir, const char *model_sha256,
			       bool kv_f16, char *err, size_t n);
void dk_prefixes_free(struct dk_prefixes *p);

/* Loads the file of the head toks[0..n) (n rounded down to whole blocks)
 * into c's prefix cache, the first time this head is asked for.
 * DK_OK: loaded, or nothing to do (no file, a head under one block, asked
 * before).  DK_SKIP: a file is there but unusable (another model, layout
 * or kernel level, damaged); DK_FATAL: it could not be read.  Both leave
 * the reason in dk_prefixes_error and are warnings, not failures: the
 * caller computes the head, and dk_prefixes_save then replaces the file. */
enum dk_status dk_prefixes_load(struct dk_prefixes *p, struct dk_ctx *c, const dk_token *toks,
				int32_t n);

/* Saves the head toks[0..n) (rounded down to whole blocks) that sequence
 * seq of c has computed, unless this head was loaded or saved before in
 * this run.  seq must hold toks at positions 0..n-1.  DK_FATAL (message in
 * dk_prefixes_error) when the file cannot be written; the run goes on. */
enum dk_status dk_prefixes_save(struct dk_prefixes *p, struct dk_ctx *c, int32_t seq,
				const dk_token *toks, int32_t n);

/* The message of the last DK_SKIP or DK_FATAL; borrowed until the next call. */
const char *dk_prefixes_error(const struct dk_prefixes *p);

struct dk_prefixes_stats {
	int32_t loaded, saved;             /* files */
	int64_t loaded_tokens, saved_tokens;
};
void dk_prefixes_stats(const struct dk_prefixes *p, struct dk_prefixes_stats *st);

#endif
