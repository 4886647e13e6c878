/* The job runner: set-up, the loop, the finish.  The stages a document
 * goes through are in docs.c (see run.h). */
#include "docket/runner.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docket/grammar.h"
#include "docket/ingest.h"
#include "docket/model.h"
#include "docket/route.h"
#include "runner/calls.h"
#include "runner/output.h"
#include "runner/prefixes.h"
#include "runner/progress.h"
#include "runner/run.h"
#include "runner/sched.h"
#include "runner/task.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/sha256.h"

void dk_runner_default_params(struct dk_runner_params *p)
{
	memset(p, 0, sizeof *p);
	p->output = "-";
	p->n_seq = 8;
	p->n_batch = 512;
	p->prefix_cache = true;
	p->deterministic = true;
	p->max_failures = -1;
	p->max_tokens = -1;
	p->temperature = -1;
	p->seed = -1;
	p->progress = DK_PROGRESS_AUTO;
	p->constrained = -1;
	p->ingest = dk_ingest_default_params();
}

int dk_runner_shard_of(const char *path, int n)
{
	if (n <= 1)
		return 0;
	return (int)(dk_run_hash64(path, strlen(path)) % (uint64_t)n);
}

/* ---- the loop ---- */

static void refill(struct runner *R)
{
	/* remote calls hold their documents open: room for them besides the slots' */
	int max_open = R->p->max_open_docs > 0 ? R->p->max_open_docs
					       : 4 * R->n_seq + (R->calls ? R->fbp.max_concurrency : 0);
	if (R->calib_pending)
		return;
	while (!R->eof && !R->stopping && dk_sched_queued(R->sched) < 2 * R->n_seq + 4 && R->n_open < max_open) {
		if (R->batch_in) {
			char *line = NULL;
			size_t cap = 0;
			ssize_t k = getline(&line, &cap, R->batch_in);
			if (k <= 0) {
				free(line);
				R->eof = true;
				break;
			}
			while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r'))
				line[--k] = 0;
			if (k > 0)
				dk_batchfile_open_line(R, line, (size_t)k);
			else
				R->batch_line++;
			free(line);
			continue;
		}
		const struct dk_doc *dd;
		enum dk_status st = dk_ingest_next(R->ing, &dd);
		if (st == DK_EOF) {
			R->eof = true;
			break;
		}
		if (st != DK_OK) {
			dk_err(R->err, sizeof R->err, DK_FATAL, "%s", dk_ingest_error(R->ing));
			R->io_failed = true;
			R->stopping = true;
			break;
		}
		dk_run_doc_open(R, dd);
	}
}

static double cache_rate(const struct dk_runner_stats *st)
{
	return st->prompt_tokens ? (double)st->cached_tokens / (double)st->prompt_tokens : 0;
}

/* success: the run ended with every record ok or skipped (for the metrics) */
static void progress(struct runner *R, bool final, bool success)
{
	dk_progress_tick(R->meter, R->st, final, success);
}

/* The operator's view; inputs NULL (a batch file): no counted total. */
static struct dk_progress_meter *meter_new(struct runner *R, const char *const *inputs,
					   size_t n_inputs, const struct dk_ingest_params *ip)
{
	const struct dk_runner_params *p = R->p;
	struct dk_progress_params pp = {
		.mode = p->progress,
		.log_interval_s = p->log_interval_s,
		.metrics_path = p->metrics_path,
		.pipeline = R->pl ? R->pl->name : "batch",
		.model = R->model_name,
		.inputs = inputs,
		.n_inputs = n_inputs,
		.ingest = ip,
		.shard_k = p->shard_k,
		.shard_n = p->shard_n,
	};
	return dk_progress_new(&pp);
}

static void abandon_all(struct runner *R)
{
	dk_calls_free(R->calls); /* answers not yet in are dropped: resume asks again */
	R->calls = NULL;
	if (R->sched)
		dk_sched_cancel_all(R->sched);
	while (R->docs) {
		struct doc *d = R->docs;
		R->docs = d->next;
		dk_run_doc_free(d);
	}
	R->n_open = 0;
}

static void loop(struct runner *R)
{
	for (;;) {
		if (R->p->stop && *R->p->stop && !R->stopping) {
			R->stopping = true;
			R->st->interrupted = true;
			R->st->signal = (int)*R->p->stop;
		}
		if (R->stopping)
			break;
		dk_remote_drain(R, 0);
		refill(R);
		bool idle = !dk_sched_queued(R->sched) && !dk_sched_active(R->sched);
		if (idle && R->eof && !(R->calls && dk_calls_outstanding(R->calls)))
			break;
		if (idle) {
			/* only the network is busy: wait for an answer (in slices,
			 * for the stop flag and the progress line) */
			dk_remote_drain(R, 200);
		} else if (dk_sched_step(R->sched) != DK_OK) {
			if (!R->io_failed)
				dk_err(R->err, sizeof R->err, DK_FATAL, "%s", dk_sched_error(R->sched));
			R->io_failed = true;
			R->stopping = true;
		}
		progress(R, false, false);
	}
	if (R->calls)
		R->st->remote_peak = dk_calls_peak(R->calls);
	abandon_all(R);
}

/* A run that checked nothing must not pass for one that checked everything
 * (a CI gate over a tree the globs filter out): say so on stderr. */
static void warn_empty(struct runner *R, const char *const *inputs)
{
	const struct dk_runner_stats *st = R->st;
	for (size_t i = 0; i < R->n_inputs; i++)
		if (!R->input_docs[i] && strcmp(inputs[i], "-") && !st->other_shards)
			fprintf(stderr, "docket: warning: '%s' holds no documents\n", inputs[i]);
	uint64_t processed = st->ok + st->errors + st->resumed + st->unchanged;
	if (st->docs && !processed)
		fprintf(stderr,
			"docket: warning: no document was processed: all %llu were skipped (%llu "
			"excluded by the input globs; see 'docket ls --pipeline %s')\n",
			(unsigned long long)st->docs, (unsigned long long)st->excluded, R->pl->name);
}

/* ---- setup ---- */

/* A sensitive pipeline's records, checkpoint and report are summaries of
 * private documents: created 0600, not world-readable. */
static bool private_files(const struct runner *R) { return R->pl && R->pl->sensitive; }

/* Writes j to path atomically (temp file + rename), mode 0600 or 0644. */
static int write_json_file(const char *path, const json_t *j, bool priv)
{
	struct dk_buf tmp = {0};
	dk_buf_printf(&tmp, "%s.tmp.%d", path, (int)getpid());
	if (!tmp.data)
		return -1;
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, priv ? 0600 : 0644);
	int rc = fd < 0 || json_dumpfd(j, fd, JSON_INDENT(2)) || write(fd, "\n", 1) != 1 || fsync(fd)
			 ? -1
			 : 0;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (!rc && rename(tmp.data, path))
		rc = -1, e = errno;
	if (rc)
		unlink(tmp.data);
	dk_buf_free(&tmp);
	errno = e;
	return rc;
}

static void write_report(struct runner *R)
{
	const struct dk_runner_stats *st = R->st;
	double secs = st->wall_ms / 1000;
	json_t *r = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:f, s:f, s:f, s:f, s:b, s:b}",
		"documents", (json_int_t)st->docs, "chunks", (json_int_t)st->chunks, "ok",
		(json_int_t)st->ok, "skipped", (json_int_t)st->skipped, "error", (json_int_t)st->errors,
		"resumed", (json_int_t)st->resumed, "unchanged", (json_int_t)st->unchanged,
		"other_shards", (json_int_t)st->other_shards, "tokens", "prompt",
		(json_int_t)st->prompt_tokens, "cached", (json_int_t)st->cached_tokens, "completion",
		(json_int_t)st->completion_tokens, "cache_hit_rate", cache_rate(st), "docs_per_s",
		secs > 0 ? (double)st->docs / secs : 0.0, "tokens_per_s",
		secs > 0 ? (double)(st->prompt_tokens - st->cached_tokens + st->completion_tokens) / secs
			 : 0.0,
		"wall_s", secs, "interrupted", st->interrupted, "max_failures_hit", st->max_failures_hit);
	if (R->pl)
		json_object_set_new(r, "pipeline", json_pack("{s:s, s:s}", "name", R->pl->name, "hash",
							     R->pl->hash));
	json_object_set_new(r, "model", json_pack("{s:s, s:s}", "name", R->model_name, "sha256",
						  R->model_sha ? R->model_sha : ""));
	json_object_set_new(r, "docket", json_pack("{s:s}", "version", DK_VERSION_STRING));
	if (R->settings)
		json_object_set_new(r, "settings", json_pack("{s:s, s:O}", "hash", R->settings_hash,
							     "values", R->settings));
	if (R->ctx) {
		/* the engine's counters: what the prefix cache served and computed,
		 * and the cached blocks it reclaimed (finished documents', mostly) */
		struct dk_kv_stats ks;
		dk_kv_stats(R->ctx, &ks);
		json_object_set_new(r, "kv_cache",
				    json_pack("{s:I, s:I, s:I, s:i}", "hit_tokens", (json_int_t)ks.hit_tokens,
					      "miss_tokens", (json_int_t)ks.miss_tokens, "evictions",
					      (json_int_t)ks.evictions, "blocks", (int)ks.blocks_total));
	}
	if (R->p->prefix_dir && R->pl)
		json_object_set_new(r, "prefix_files",
				    json_pack("{s:s, s:i, s:i, s:I}", "dir", R->p->prefix_dir, "loaded",
					      (int)st->prefix_files_loaded, "saved",
					      (int)st->prefix_files_saved, "loaded_tokens",
					      (json_int_t)st->prefix_tokens_loaded));
	if (R->p->report_path && write_json_file(R->p->report_path, r, private_files(R)))
		fprintf(stderr, "docket: cannot write report '%s': %s\n", R->p->report_path,
			dk_errno_str(errno));
	json_decref(r);
}

static enum dk_status setup(struct runner *R, char *err, size_t n)
{
	const struct dk_runner_params *p = R->p;
	/* a model that is not there is a run that cannot be done (3), like a
	 * damaged one: the command line may be right on another machine */
	if (!p->model_path || access(p->model_path, R_OK))
		return dk_err(err, n, DK_FATAL, "cannot open model '%s': %s",
			      p->model_path ? p->model_path : "", dk_errno_str(errno));
	struct dk_model_params mp = dk_model_default_params();
	enum dk_status st = dk_model_load(&R->model, p->model_path, &mp);
	if (st != DK_OK) /* the model's message names the file */
		return dk_err(err, n, DK_FATAL, "%s",
			      R->model ? dk_model_error(R->model) : "cannot load model: out of memory");
	const struct dk_model_info *mi = dk_model_info(R->model);
	R->tok = dk_model_tokenizer(R->model);
	R->n_vocab = mi->n_vocab;
	R->model_name = mi->name;
	R->model_sha = dk_model_sha256(R->model);
	if (!R->model_sha)
		return dk_err(err, n, DK_FATAL, "cannot read model '%s' to hash it", p->model_path);
	const char *tmpl = dk_model_chat_template(R->model);
	R->chat = tmpl ? dk_chat_detect(tmpl) : DK_CHAT_RAW;
	if (R->chat == DK_CHAT_UNKNOWN)
		R->chat = DK_CHAT_RAW;
	const struct dk_pipeline *pl = R->pl;
	R->max_tokens = p->max_tokens >= 0 ? p->max_tokens : pl ? pl->max_tokens : 256;
	R->temperature = p->temperature >= 0 ? p->temperature : pl ? pl->temperature : 0;
	R->seed = p->seed >= 0 ? (uint64_t)p->seed : pl ? pl->seed : 0;
	R->n_seq = p->n_seq > 0 ? p->n_seq : 8;
	R->n_batch = p->n_batch > 0 ? p->n_batch : 512;
	R->n_ctx = p->n_ctx > 0 ? p->n_ctx : 2048;
	if (mi->n_ctx_train > 0 && R->n_ctx > mi->n_ctx_train) {
		if (p->n_ctx > 0)
			return dk_err(err, n, DK_SKIP, "--ctx %d exceeds the model's training context %d",
				      p->n_ctx, mi->n_ctx_train);
		R->n_ctx = mi->n_ctx_train;
	}
	if (R->n_batch < R->n_seq)
		R->n_batch = R->n_seq;
	/* every job's prompt, for running the same tokens through another
	 * engine (bench/tasks.sh) */
	const char *dump = getenv("DOCKET_DUMP_PROMPTS");
	if (dump && *dump && !(R->dump = fopen(dump, "w")))
		return dk_err(err, n, DK_FATAL, "cannot open '%s': %s", dump, dk_errno_str(errno));
	/* before the output is opened: a bad directory is refused with nothing
	 * written.  Batch files bring their own prompts, whose heads may hold
	 * anything. */
	if (p->prefix_dir && p->prefix_cache && pl &&
	    dk_prefixes_new(&R->pfx, p->prefix_dir, R->model_sha,
			    dk_ctx_default_params().kv_type == DK_TYPE_F16, err, n) != DK_OK)
		return DK_SKIP;
	return DK_OK;
}

static enum dk_status open_output(struct runner *R, char *err, size_t n)
{
	const struct dk_runner_params *p = R->p;
	/* the configuration that determines the records */
	json_t *cfg = json_pack("{s:s, s:s, s:s, s:s, s:i, s:f, s:I, s:s, s:i}",
				"pipeline", R->pl ? R->pl->name : "batch", "pipeline_hash",
				R->pl ? R->pl->hash : "", "model", R->model_name, "model_sha256",
				R->model_sha, "max_tokens", R->max_tokens, "temperature",
				(double)R->temperature, "seed", (json_int_t)R->seed, "chat",
				dk_chat_family_name(R->chat), "n_ctx", R->n_ctx);
	if (R->schema)
		json_object_set_new(cfg, "constrained", json_boolean(R->constrained));
	/* only when off, so that checkpoints of earlier runs still match */
	if (!p->deterministic)
		json_object_set_new(cfg, "deterministic", json_false());
	/* what else the bits depend on: nothing ("portable") at every kernel
	 * level in deterministic mode; the level and OpenBLAS otherwise, so a
	 * resume or merge never mixes records computed differently */
	const char *numerics = dk_ctx_numerics(R->ctx);
	if (strcmp(numerics, "portable"))
		json_object_set_new(cfg, "numerics", json_string(numerics));
	/* where records may be answered, and how much of them is sent: a
	 * resumed run must not mix local-only and routed records silently */
	if (R->pl && R->fbp.when)
		json_object_set_new(cfg, "fallback",
				    json_pack("{s:s, s:s, s:I, s:b, s:b}", "url",
					      R->fbp.base_url ? R->fbp.base_url : "", "model",
					      R->fbp.model ? R->fbp.model : "", "when",
					      (json_int_t)R->fbp.when, "allow_sensitive",
					      R->fbp.allow_sensitive, "redact", R->fbp.redact));
	/* the settings records carry are the same for every shard of a run, so
	 * that merge can tell shards of one run from shards of two */
	char *sj = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
	if (!sj) {
		json_decref(cfg);
		return dk_err(err, n, DK_FATAL, "out of memory");
	}
	uint8_t sd[32];
	dk_sha256(sj, strlen(sj), sd);
	dk_sha256_hex(sd, R->settings_hash);
	free(sj);
	R->settings = json_deep_copy(cfg);
	/* the cache changes no record (sh_run_invariance), so it is no setting
	 * of one; but a resume that mixes the two is refused rather than
	 * trusted on that alone (only when off, as deterministic) */
	if (!p->prefix_cache)
		json_object_set_new(cfg, "prefix_cache", json_false());
	json_object_set_new(cfg, "format", json_string(p->format == DK_FORMAT_OPENAI_BATCH
							       ? "openai-batch"
							       : "docket"));
	if (p->shard_n > 1) {
		char sh[32];
		snprintf(sh, sizeof sh, "%d/%d", p->shard_k, p->shard_n);
		json_object_set_new(cfg, "shard", json_string(sh));
	}
	char *cj = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(cfg);
	if (!cj || !R->settings)
		return dk_err(err, n, DK_FATAL, "out of memory");
	uint8_t d[32];
	char hex[65];
	dk_sha256(cj, strlen(cj), d);
	dk_sha256_hex(d, hex);
	struct dk_out_params op = dk_out_default_params();
	op.path = p->output ? p->output : "-";
	op.config_hash = hex;
	op.config_json = cj;
	op.mode = (enum dk_out_mode)p->mode;
	op.force = p->force;
	op.private_files = private_files(R);
	if (p->sync_every > 0)
		op.sync_every = p->sync_every;
	if (p->sync_ms > 0)
		op.sync_ms = p->sync_ms;
	enum dk_status st = dk_out_open(&R->out, &op, err, n);
	free(cj);
	if (st == DK_OK) {
		const struct dk_out_scan *sc = dk_out_scan(R->out);
		if (sc->torn_bytes)
			fprintf(stderr, "docket: '%s': removed a torn last line (%llu bytes)\n", op.path,
				(unsigned long long)sc->torn_bytes);
		if (sc->bad_lines || sc->duplicates)
			fprintf(stderr, "docket: '%s': dropped %llu unreadable and %llu repeated lines\n",
				op.path, (unsigned long long)sc->bad_lines,
				(unsigned long long)sc->duplicates);
	}
	return st;
}

/*
 * The routing policy: the pipeline's fallback block, overridden by the
 * command line.  The endpoint object is made only when something may be
 * sent: a sensitive pipeline without allow_sensitive never opens a
 * connection (its chunks are recorded as refused).
 */
static enum dk_status fallback_setup(struct runner *R, char *err, size_t n)
{
	const struct dk_runner_params *p = R->p;
	const struct dk_fallback_opts *o = &p->fallback;
	const struct dk_pipeline *pl = R->pl;
	R->fbp = pl->has_fallback ? pl->fallback : dk_fallback_default_params();
	if (o->url)
		R->fbp.base_url = o->url;
	if (o->model)
		R->fbp.model = o->model;
	if (o->key_env)
		R->fbp.key_env = o->key_env;
	if (o->when) {
		char e[128];
		if (dk_fallback_parse_when(o->when, &R->fbp.when, e, sizeof e))
			return dk_err(err, n, DK_SKIP, "--fallback-when: %s", e);
	}
	if (o->allow_sensitive)
		R->fbp.allow_sensitive = true;
	if (o->redact)
		R->fbp.redact = true;
	if (o->disabled)
		R->fbp.when = 0;
	if (o->concurrency > 0)
		R->fbp.max_concurrency = o->concurrency;
	if (!R->fbp.when)
		return DK_OK;
	if (!R->fbp.base_url || !*R->fbp.base_url)
		return dk_err(err, n, DK_SKIP,
			      "fallback.when is set but no endpoint is (fallback.url or --fallback-url)");
	if (!dk_route_allowed(&R->fbp, pl->sensitive, R->fb_why, sizeof R->fb_why))
		return DK_OK;
	if (o->audit) {
		R->audit_path = strdup(o->audit);
	} else {
		if (!p->output || !strcmp(p->output, "-"))
			return dk_err(err, n, DK_SKIP,
				      "fallback routing writing to stdout needs --audit FILE");
		struct dk_buf b = {0};
		dk_buf_printf(&b, "%s.audit.jsonl", p->output);
		R->audit_path = dk_buf_steal(&b);
	}
	if (!R->audit_path)
		return dk_err(err, n, DK_FATAL, "out of memory");
	R->fbp.audit_path = R->audit_path;
	char e[DK_ERRMSG_MAX];
	R->fb = dk_fallback_new(&R->fbp, e, sizeof e);
	if (!R->fb)
		return dk_err(err, n, DK_SKIP, "fallback: %s", e);
	R->calls = dk_calls_new(R->fb, R->fbp.max_concurrency);
	if (!R->calls)
		return dk_err(err, n, DK_FATAL, "fallback: cannot start %d workers",
			      R->fbp.max_concurrency);
	return DK_OK;
}

static enum dk_status start_engine(struct runner *R, char *err, size_t n)
{
	const struct dk_runner_params *p = R->p;
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = R->n_ctx;
	cp.n_seq_max = R->n_seq;
	cp.n_batch = R->n_batch;
	if (p->n_threads > 0)
		cp.n_threads = p->n_threads;
	cp.prefix_cache = p->prefix_cache;
	cp.deterministic = p->deterministic;
	if (dk_ctx_new(&R->ctx, R->model, &cp) != DK_OK)
		return dk_err(err, n, DK_FATAL, "cannot create the context: %s",
			      R->ctx ? dk_ctx_error(R->ctx) : "out of memory");
	struct dk_sched_params sp;
	dk_sched_default_params(&sp);
	sp.ctx = R->ctx;
	sp.tok = R->tok;
	sp.n_seq = R->n_seq;
	sp.n_batch = R->n_batch;
	sp.n_ctx = R->n_ctx;
	sp.n_vocab = R->n_vocab;
	sp.prefix_cache = p->prefix_cache;
	sp.grammars = R->gram;
	sp.n_grammars = R->n_gram;
	sp.gvocab = R->gvocab;
	if (dk_sched_new(&R->sched, &sp) != DK_OK)
		return dk_err(err, n, DK_FATAL, "out of memory");
	dk_sched_set_prefixes(R->sched, R->pfx);
	return DK_OK;
}

static enum dk_status finish(struct runner *R, enum dk_status st, char *err, size_t n)
{
	R->st->wall_ms = dk_run_now_ms() - R->t0;
	if (R->out) {
		bool complete = st == DK_OK && !R->stopping;
		if (dk_out_close(R->out, complete) != DK_OK && st == DK_OK)
			st = dk_err(err, n, DK_FATAL, "%s", dk_out_error(R->out));
	}
	if (R->io_failed && st == DK_OK)
		st = dk_err(err, n, DK_FATAL, "%s", R->err);
	if (R->pfx) {
		struct dk_prefixes_stats ps;
		dk_prefixes_stats(R->pfx, &ps);
		R->st->prefix_files_loaded = (uint32_t)ps.loaded;
		R->st->prefix_files_saved = (uint32_t)ps.saved;
		R->st->prefix_tokens_loaded = (uint64_t)ps.loaded_tokens;
		dk_prefixes_free(R->pfx);
		R->pfx = NULL;
	}
	if (R->ctx)
		progress(R, true, st == DK_OK && !R->stopping && !R->st->errors);
	dk_progress_free(R->meter); /* joins the counting walk */
	R->meter = NULL;
	if (R->model)
		write_report(R);
	dk_sched_free(R->sched);
	R->sched = NULL;
	for (int g = 0; g < R->n_gram; g++)
		dk_grammar_free(R->gram[g]);
	free(R->gram);
	dk_grammar_vocab_free(R->gvocab);
	for (size_t i = 0; R->field_schema && R->pl && i < R->pl->n_fields; i++)
		json_decref(R->field_schema[i]);
	free(R->field_schema);
	json_decref(R->schema);
	json_decref(R->settings);
	free(R->calib);
	dk_ctx_free(R->ctx);
	dk_out_free(R->out);
	if (R->dump)
		fclose(R->dump);
	dk_ingest_free(R->ing);
	if (R->batch_in)
		fclose(R->batch_in);
	dk_model_free(R->model);
	dk_calls_free(R->calls);
	dk_fallback_free(R->fb);
	free(R->audit_path);
	return st;
}

enum dk_status dk_runner_run(const struct dk_runner_params *p, const char *const *inputs,
			     size_t n_inputs, struct dk_runner_stats *stats, char *err, size_t n)
{
	struct runner R_ = {0}, *R = &R_;
	memset(stats, 0, sizeof *stats);
	R->p = p;
	R->pl = p->pipeline;
	R->st = stats;
	R->t0 = dk_run_now_ms();
	if (!R->pl)
		return dk_err(err, n, DK_SKIP, "no pipeline");
	R->ops = dk_task_ops(R->pl->task);
	if (p->shard_n > 1 && (p->shard_k < 0 || p->shard_k >= p->shard_n))
		return dk_err(err, n, DK_SKIP, "bad shard %d/%d (K counts from 0 to N-1)", p->shard_k,
			      p->shard_n);
	/* an operand that is not there is a mistyped command, like cp's: refused
	 * before anything is written (inside a tree, an unreadable file is a record) */
	struct stat sb;
	for (size_t i = 0; i < n_inputs; i++)
		if (strcmp(inputs[i], "-") && stat(inputs[i], &sb))
			return dk_err(err, n, DK_SKIP, "cannot open '%s': %s", inputs[i],
				      dk_errno_str(errno));
	R->inputs = inputs;
	R->n_inputs = n_inputs;
	R->input_docs = calloc(n_inputs + 1, sizeof *R->input_docs);
	if (!R->input_docs)
		return dk_err(err, n, DK_FATAL, "out of memory");
	enum dk_status st = setup(R, err, n);
	if (st == DK_OK)
		st = R->ops->setup ? R->ops->setup(R, err, n) : DK_OK;
	if (st == DK_OK)
		st = fallback_setup(R, err, n);
	/* the engine first: the configuration records its numerics */
	if (st == DK_OK)
		st = start_engine(R, err, n);
	if (st == DK_OK)
		st = open_output(R, err, n);
	if (st == DK_OK) {
		const struct dk_ingest_params *w = &p->ingest;
		size_t ni = R->pl->n_include + w->n_include, ne = R->pl->n_exclude + w->n_exclude;
		const char **inc = calloc(ni + 1, sizeof *inc), **exc = calloc(ne + 1, sizeof *exc);
		for (size_t i = 0; inc && i < R->pl->n_include; i++)
			inc[i] = R->pl->include[i];
		for (size_t i = 0; inc && i < w->n_include; i++)
			inc[R->pl->n_include + i] = w->include[i];
		for (size_t i = 0; exc && i < R->pl->n_exclude; i++)
			exc[i] = R->pl->exclude[i];
		for (size_t i = 0; exc && i < w->n_exclude; i++)
			exc[R->pl->n_exclude + i] = w->exclude[i];
		struct dk_ingest_params ip = *w;
		ip.include = inc;
		ip.n_include = ni;
		ip.exclude = exc;
		ip.n_exclude = ne;
		ip.hidden |= R->pl->hidden;
		ip.raw_text |= R->pl->raw_text;
		if (dk_ingest_new(&R->ing, &ip) != DK_OK) {
			st = dk_err(err, n, DK_FATAL, "cannot start ingest: %s",
				    R->ing ? dk_ingest_error(R->ing) : "out of memory");
		} else if (!(R->meter = meter_new(R, inputs, n_inputs, &ip))) {
			st = dk_err(err, n, DK_FATAL, "out of memory");
		} else {
			for (size_t i = 0; i < n_inputs; i++)
				dk_ingest_add(R->ing, inputs[i]);
			if (R->ops->start)
				R->ops->start(R);
			loop(R);
			if (!R->stopping)
				warn_empty(R, inputs);
		}
		st = finish(R, st, err, n);
		free(inc);
		free(exc);
		free(R->input_docs);
		return st;
	}
	st = finish(R, st, err, n);
	free(R->input_docs);
	return st;
}

enum dk_status dk_runner_batch(const struct dk_runner_params *p, const char *in_path,
			       struct dk_runner_stats *stats, char *err, size_t n)
{
	struct runner R_ = {0}, *R = &R_;
	memset(stats, 0, sizeof *stats);
	R->p = p;
	R->pl = NULL;
	R->st = stats;
	R->t0 = dk_run_now_ms();
	R->batch_in = !strcmp(in_path, "-") ? fdopen(dup(STDIN_FILENO), "r") : fopen(in_path, "r");
	if (!R->batch_in)
		return dk_err(err, n, DK_SKIP, "cannot open '%s': %s", in_path, strerror(errno));
	enum dk_status st = setup(R, err, n);
	if (st == DK_OK)
		st = start_engine(R, err, n);
	if (st == DK_OK)
		st = open_output(R, err, n);
	if (st == DK_OK && !(R->meter = meter_new(R, NULL, 0, NULL)))
		st = dk_err(err, n, DK_FATAL, "out of memory");
	if (st == DK_OK)
		loop(R);
	return finish(R, st, err, n);
}
