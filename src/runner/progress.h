/*
 * What a run tells its operator while it goes: a progress line on a
 * terminal, a timestamped log line every interval when stderr is a file or
 * a pipe (cron mail, a CI log), JSON lines for machines, and the Prometheus
 * metrics file (runner/metrics.h) on the same clock.
 *
 * The total is counted by a second walk over the same inputs in a thread of
 * its own (types detected, nothing extracted), so it is known early on a big
 * tree without holding up the run; until that walk ends the total reads "?"
 * and there is no ETA.  Inputs read from stdin ("-") cannot be walked twice:
 * their total stays unknown.
 */
#ifndef DK_RUNNER_PROGRESS_H
#define DK_RUNNER_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "docket/ingest.h"
#include "docket/runner.h"

struct dk_progress_params {
	enum dk_progress mode;       /* AUTO: BAR on a terminal, LOG otherwise */
	double log_interval_s;       /* LOG lines and metrics writes (default 30) */
	const char *metrics_path;    /* NULL: no metrics file */
	const char *pipeline, *model;/* metrics labels */
	/* for the counting walk: NULL inputs = no total */
	const char *const *inputs;
	size_t n_inputs;
	const struct dk_ingest_params *ingest; /* the run's walk (globs included) */
	int shard_k, shard_n;
};

struct dk_progress_meter;

/* Starts the counting walk.  NULL on out of memory.  Borrowed: params'
 * strings and arrays for the object's life. */
struct dk_progress_meter *dk_progress_new(const struct dk_progress_params *p);
/* Stops the counting walk and frees. */
void dk_progress_free(struct dk_progress_meter *pr);

/* Reports st when the interval for the mode has passed, or always when
 * final (success: the run ended well, for the metrics). */
void dk_progress_tick(struct dk_progress_meter *pr, const struct dk_runner_stats *st, bool final,
		      bool success);

/* The documents the counting walk found for this shard, or -1 while it is
 * still walking (or cannot). */
long long dk_progress_total(struct dk_progress_meter *pr);

#endif
