/*
 * Run metrics in the Prometheus text exposition format, for node_exporter's
 * textfile collector (the convention for batch jobs): the file is rewritten
 * atomically (temp file + rename in its directory), so a scrape never sees
 * half of it.  Series, each labelled with pipeline and model:
 *
 *   docket_documents_total{status="ok"|"skipped"|"error"}   counter
 *   docket_documents_resumed_total, docket_documents_unchanged_total
 *   docket_chunks_total                                     counter
 *   docket_tokens_total{kind="prompt"|"cached"|"completion"} counter
 *   docket_remote_requests_total{outcome="ok"|"error"}      counter
 *   docket_run_start_timestamp_seconds                      gauge
 *   docket_run_duration_seconds                             gauge
 *   docket_run_in_progress                                  gauge (1 while running)
 *   docket_run_last_success_timestamp_seconds               gauge (set at a successful end,
 *                                                            kept from the file otherwise)
 *   docket_run_success                                      gauge (1 ok, 0 failed; at the end)
 *
 * The writer owns nothing but its path and labels (copied).
 */
#ifndef DK_RUNNER_METRICS_H
#define DK_RUNNER_METRICS_H

#include <stdbool.h>

#include "docket/docket.h"
#include "docket/runner.h"

struct dk_metrics;

/* path should end in ".prom" for the textfile collector.  NULL on out of
 * memory. */
struct dk_metrics *dk_metrics_new(const char *path, const char *pipeline, const char *model,
				  double start_unix_s);
void dk_metrics_free(struct dk_metrics *m);

/* Writes the file from st.  final: the run has ended, success says how (a
 * successful end sets docket_run_last_success_timestamp_seconds).  DK_OK,
 * or DK_FATAL with the reason in dk_metrics_error (the run goes on: metrics
 * are an operator's view, not the product). */
enum dk_status dk_metrics_write(struct dk_metrics *m, const struct dk_runner_stats *st,
				double now_unix_s, bool final, bool success);
const char *dk_metrics_error(const struct dk_metrics *m);

#endif
