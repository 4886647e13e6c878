/* Run metrics for node_exporter's textfile collector (see metrics.h). */
#include "runner/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"

struct dk_metrics {
	char *path, *tmp;
	char *labels; /* pipeline="...",model="..." */
	double start;
	double last_success; /* carried over from the file a previous run left */
	char err[DK_ERRMSG_MAX];
};

/* A label value as the exposition format wants it: \\, \" and \n escaped. */
static void put_label(struct dk_buf *b, const char *name, const char *v)
{
	dk_buf_printf(b, "%s%s=\"", b->len ? "," : "", name);
	for (const char *p = v ? v : ""; *p; p++) {
		if (*p == '\\' || *p == '"')
			dk_buf_putc(b, '\\');
		if (*p == '\n') {
			dk_buf_puts(b, "\\n");
			continue;
		}
		dk_buf_putc(b, *p);
	}
	dk_buf_putc(b, '"');
}

struct dk_metrics *dk_metrics_new(const char *path, const char *pipeline, const char *model,
				  double start_unix_s)
{
	struct dk_metrics *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	struct dk_buf l = {0}, t = {0};
	put_label(&l, "pipeline", pipeline);
	put_label(&l, "model", model);
	dk_buf_printf(&t, "%s.tmp.%d", path, (int)getpid());
	m->path = strdup(path);
	m->labels = dk_buf_steal(&l);
	m->tmp = dk_buf_steal(&t);
	m->start = start_unix_s;
	if (!m->path || !m->labels || !m->tmp) {
		dk_metrics_free(m);
		return NULL;
	}
	/* a failed run must not erase when the last one succeeded: alerts are
	 * written on that timestamp's age */
	FILE *f = fopen(path, "r");
	char line[1024];
	while (f && fgets(line, sizeof line, f)) {
		const char *k = "docket_run_last_success_timestamp_seconds{";
		char *v = strncmp(line, k, strlen(k)) ? NULL : strrchr(line, '}');
		if (v)
			m->last_success = strtod(v + 1, NULL);
	}
	if (f)
		fclose(f);
	return m;
}

void dk_metrics_free(struct dk_metrics *m)
{
	if (!m)
		return;
	free(m->path);
	free(m->tmp);
	free(m->labels);
	free(m);
}

const char *dk_metrics_error(const struct dk_metrics *m) { return m ? m->err : "out of memory"; }

static void head(struct dk_buf *b, const char *name, const char *type, const char *help)
{
	dk_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct dk_buf *b, const struct dk_metrics *m, const char *name,
		   const char *extra, double v)
{
	dk_buf_printf(b, "%s{%s%s%s} %.17g\n", name, m->labels, extra ? "," : "", extra ? extra : "",
		      v);
}

enum dk_status dk_metrics_write(struct dk_metrics *m, const struct dk_runner_stats *st,
				double now_unix_s, bool final, bool success)
{
	struct dk_buf b = {0};
	head(&b, "docket_documents_total", "counter", "Records written, by status.");
	sample(&b, m, "docket_documents_total", "status=\"ok\"", (double)st->ok);
	sample(&b, m, "docket_documents_total", "status=\"skipped\"", (double)st->skipped);
	sample(&b, m, "docket_documents_total", "status=\"error\"", (double)st->errors);
	head(&b, "docket_documents_resumed_total", "counter",
	     "Documents already in the output when the run started (--resume).");
	sample(&b, m, "docket_documents_resumed_total", NULL, (double)st->resumed);
	head(&b, "docket_documents_unchanged_total", "counter",
	     "Documents skipped as unchanged (--incremental).");
	sample(&b, m, "docket_documents_unchanged_total", NULL, (double)st->unchanged);
	head(&b, "docket_chunks_total", "counter", "Chunks processed.");
	sample(&b, m, "docket_chunks_total", NULL, (double)st->chunks);
	head(&b, "docket_tokens_total", "counter",
	     "Tokens: prompt (cached included), cached (served by the prefix cache), completion.");
	sample(&b, m, "docket_tokens_total", "kind=\"prompt\"", (double)st->prompt_tokens);
	sample(&b, m, "docket_tokens_total", "kind=\"cached\"", (double)st->cached_tokens);
	sample(&b, m, "docket_tokens_total", "kind=\"completion\"", (double)st->completion_tokens);
	head(&b, "docket_remote_requests_total", "counter",
	     "Requests to the fallback endpoint, by outcome.");
	sample(&b, m, "docket_remote_requests_total", "outcome=\"ok\"", (double)st->remote_ok);
	sample(&b, m, "docket_remote_requests_total", "outcome=\"error\"", (double)st->remote_errors);
	head(&b, "docket_run_start_timestamp_seconds", "gauge", "When the run started (Unix time).");
	sample(&b, m, "docket_run_start_timestamp_seconds", NULL, m->start);
	head(&b, "docket_run_duration_seconds", "gauge", "Wall time of the run so far, or in all.");
	sample(&b, m, "docket_run_duration_seconds", NULL, now_unix_s - m->start);
	head(&b, "docket_run_in_progress", "gauge", "1 while the run is going, 0 once it ended.");
	sample(&b, m, "docket_run_in_progress", NULL, final ? 0 : 1);
	if (final) {
		head(&b, "docket_run_success", "gauge",
		     "1 when the run ended with every record ok or skipped, else 0.");
		sample(&b, m, "docket_run_success", NULL, success ? 1 : 0);
		if (success)
			m->last_success = now_unix_s;
	}
	if (m->last_success > 0) {
		head(&b, "docket_run_last_success_timestamp_seconds", "gauge",
		     "When a run last ended successfully (Unix time).");
		sample(&b, m, "docket_run_last_success_timestamp_seconds", NULL, m->last_success);
	}
	if (!b.data)
		return dk_err(m->err, sizeof m->err, DK_FATAL, "cannot write metrics '%s': out of memory",
			      m->path);
	int fd = open(m->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ssize_t k = fd >= 0 ? write(fd, b.data, b.len) : -1;
	int e = errno;
	bool ok = fd >= 0 && k == (ssize_t)b.len && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	if (ok && rename(m->tmp, m->path) != 0) {
		ok = false;
		e = errno;
	}
	dk_buf_free(&b);
	if (!ok) {
		unlink(m->tmp);
		return dk_err(m->err, sizeof m->err, DK_FATAL, "cannot write metrics '%s': %s", m->path,
			      dk_errno_str(e));
	}
	return DK_OK;
}
