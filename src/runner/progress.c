/* Progress lines, log lines, JSON lines and metrics (see progress.h). */
#include "runner/progress.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runner/metrics.h"

struct dk_progress_meter {
	struct dk_progress_params p;
	enum dk_progress mode;
	struct dk_metrics *metrics;
	double t0, t0_unix, last_line, last_metrics;
	int last_bar_len;
	/* the counting walk */
	pthread_t th;
	bool th_started;
	atomic_bool stop;
	atomic_llong total; /* -1 until the walk ends */
};

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double unix_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *count_walk(void *arg)
{
	struct dk_progress_meter *pr = arg;
	struct dk_ingest_params ip = *pr->p.ingest;
	ip.no_extract = true; /* types only: the total, cheaply */
	struct dk_ingest *ing = NULL;
	if (dk_ingest_new(&ing, &ip) != DK_OK) {
		dk_ingest_free(ing);
		return NULL;
	}
	for (size_t i = 0; i < pr->p.n_inputs; i++)
		dk_ingest_add(ing, pr->p.inputs[i]);
	long long n = 0;
	const struct dk_doc *d;
	enum dk_status st;
	while (!atomic_load(&pr->stop) && (st = dk_ingest_next(ing, &d)) == DK_OK)
		if (pr->p.shard_n <= 1 || dk_runner_shard_of(d->path, pr->p.shard_n) == pr->p.shard_k)
			n++;
	if (!atomic_load(&pr->stop) && st == DK_EOF)
		atomic_store(&pr->total, n);
	dk_ingest_free(ing);
	return NULL;
}

struct dk_progress_meter *dk_progress_new(const struct dk_progress_params *p)
{
	struct dk_progress_meter *pr = calloc(1, sizeof *pr);
	if (!pr)
		return NULL;
	pr->p = *p;
	if (pr->p.log_interval_s <= 0)
		pr->p.log_interval_s = 30;
	pr->mode = p->mode;
	if (pr->mode == DK_PROGRESS_AUTO)
		pr->mode = isatty(STDERR_FILENO) ? DK_PROGRESS_BAR : DK_PROGRESS_LOG;
	pr->t0 = pr->last_line = pr->last_metrics = mono_s();
	pr->t0_unix = unix_s();
	atomic_store(&pr->total, -1);
	if (p->metrics_path &&
	    !(pr->metrics = dk_metrics_new(p->metrics_path, p->pipeline, p->model, pr->t0_unix))) {
		free(pr);
		return NULL;
	}
	bool stdin_input = false;
	for (size_t i = 0; i < p->n_inputs; i++)
		stdin_input |= !strcmp(p->inputs[i], "-");
	/* no total to show or log: no walk */
	if (p->inputs && p->ingest && !stdin_input && pr->mode != DK_PROGRESS_NONE &&
	    pthread_create(&pr->th, NULL, count_walk, pr) == 0)
		pr->th_started = true;
	return pr;
}

void dk_progress_free(struct dk_progress_meter *pr)
{
	if (!pr)
		return;
	atomic_store(&pr->stop, true);
	if (pr->th_started)
		pthread_join(pr->th, NULL);
	dk_metrics_free(pr->metrics);
	free(pr);
}

long long dk_progress_total(struct dk_progress_meter *pr) { return atomic_load(&pr->total); }

static void fmt_dur(char *b, size_t n, double s)
{
	long t = (long)(s + 0.5);
	if (t >= 3600)
		snprintf(b, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
	else
		snprintf(b, n, "%ldm%02lds", t / 60, t % 60);
}

void dk_progress_tick(struct dk_progress_meter *pr, const struct dk_runner_stats *st, bool final,
		      bool success)
{
	if (!pr)
		return;
	double t = mono_s(), secs = t - pr->t0;
	if (pr->metrics && (final || t - pr->last_metrics >= pr->p.log_interval_s)) {
		pr->last_metrics = t;
		if (dk_metrics_write(pr->metrics, st, unix_s(), final, success) != DK_OK)
			fprintf(stderr, "docket: warning: %s\n", dk_metrics_error(pr->metrics));
	}
	double every = pr->mode == DK_PROGRESS_BAR ? 0.2
		       : pr->mode == DK_PROGRESS_JSONL ? 1.0
						       : pr->p.log_interval_s;
	if (pr->mode == DK_PROGRESS_NONE || (!final && t - pr->last_line < every))
		return;
	/* the LOG mode's last word is the run's summary line */
	if (final && pr->mode == DK_PROGRESS_LOG)
		return;
	pr->last_line = t;
	long long total = dk_progress_total(pr);
	/* documents done: records written, resumed or left unchanged */
	unsigned long long done = st->ok + st->skipped + st->errors + st->resumed + st->unchanged;
	double tps = secs > 0 ? (double)(st->prompt_tokens - st->cached_tokens + st->completion_tokens) / secs
			      : 0;
	double hit = st->prompt_tokens ? (double)st->cached_tokens / (double)st->prompt_tokens : 0;
	char tot[32] = "?", pct[16] = "", eta[48] = "", el[32];
	fmt_dur(el, sizeof el, secs);
	if (total >= 0) {
		snprintf(tot, sizeof tot, "%lld", total);
		if (total > 0)
			snprintf(pct, sizeof pct, " (%.1f%%)", 100.0 * (double)done / (double)total);
		/* from this run's pace, not the documents it found already done */
		unsigned long long fresh = st->ok + st->skipped + st->errors;
		if (fresh > 0 && (unsigned long long)total > done) {
			char d[32];
			fmt_dur(d, sizeof d, secs / (double)fresh * (double)((unsigned long long)total - done));
			snprintf(eta, sizeof eta, ", eta %s", d);
		}
	}
	if (pr->mode == DK_PROGRESS_JSONL) {
		fprintf(stderr,
			"{\"event\":\"%s\",\"docs\":%llu,\"done\":%llu,\"total\":%lld,\"chunks\":%llu,"
			"\"ok\":%llu,\"skipped\":%llu,\"errors\":%llu,\"tokens_per_s\":%.1f,"
			"\"cache_hit_rate\":%.4f,\"elapsed_s\":%.2f}\n",
			final ? "done" : "progress", (unsigned long long)st->docs, done, total,
			(unsigned long long)st->chunks, (unsigned long long)st->ok,
			(unsigned long long)st->skipped, (unsigned long long)st->errors, tps, hit, secs);
	} else if (pr->mode == DK_PROGRESS_BAR) {
		char line[256];
		int n = snprintf(line, sizeof line,
				 "\r%llu/%s docs%s | %llu errors | %.0f tok/s | cache %.0f%% | %s%s", done,
				 tot, pct, (unsigned long long)st->errors, tps, 100 * hit, el, eta);
		fputs(line, stderr);
		for (int i = n; i < pr->last_bar_len; i++)
			fputc(' ', stderr);
		pr->last_bar_len = n;
		if (final)
			fputc('\n', stderr);
	} else { /* LOG: one line a cron mail or a CI log can be read by */
		char when[32];
		time_t now = time(NULL);
		struct tm tm;
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
		fprintf(stderr,
			"%s docket: %llu/%s documents%s, %llu errors, %.0f tok/s, cache %.0f%%, "
			"elapsed %s%s\n",
			when, done, tot, pct, (unsigned long long)st->errors, tps, 100 * hit, el, eta);
	}
	fflush(stderr);
}
