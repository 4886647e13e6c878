/* docket run PIPELINE INPUT... -o OUT.jsonl  (and docket batch, which shares the options) */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "docket/pipeline.h"
#include "docket/runner.h"

/* Shared with cmd_batch.c. */
int dk_cli_run_main(int argc, char **argv, bool batch);

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) { stop_flag = sig; }

static void usage(FILE *f, bool batch)
{
	if (batch)
		fputs("usage: docket batch IN.jsonl -o OUT.jsonl [options]\n"
		      "Runs an OpenAI Batch input file (custom_id, method, url: /v1/chat/completions, body)\n"
		      "with the local model and writes OpenAI Batch output lines.\n",
		      f);
	else
		fputs("usage: docket run PIPELINE INPUT... -o OUT.jsonl [options]\n"
		      "PIPELINE is a pipeline file or a shipped pipeline: summarize-records, classify-files,\n"
		      "extract-fields.  INPUT is a file, directory, archive, or - (paths on stdin).\n",
		      f);
	fputs("\noutput and checkpoints:\n"
	      "  -o, --output FILE      records, one JSON object per line (default: stdout, no checkpoint)\n"
	      "      --resume           continue an interrupted run (same configuration required)\n"
	      "      --force            with --resume: continue despite a configuration change\n"
	      "      --overwrite        replace an existing output\n",
	      f);
	if (!batch)
		fputs("      --incremental      skip documents that already have an ok record (same content,\n"
		      "                         pipeline and model): for cron\n"
		      "      --shard K/N        process only shard K of N (0 <= K < N), by hash of the path\n"
		      "      --format F         docket (default) or openai-batch\n"
		      "      --fail-on LABEL    classify: exit 2 when any file gets LABEL (repeatable)\n"
		      "      --fail-on-unsupported\n"
		      "                         summarize: exit 2 when a summary has items its source\n"
		      "                         does not contain (the record's unsupported list)\n",
		      f);
	if (!batch) {
		fputs("\nwalking inputs (as docket ls; globs are added to the pipeline's):\n", f);
		fputs(dk_ingest_options_help(), f);
	}
	fputs("\nmodel and engine:\n"
	      "  -m, --model PATH       GGUF model (default: $DOCKET_MODEL or the fetched SmolLM2)\n"
	      "  -t, --threads N        compute threads\n"
	      "      --seqs N           sequences in flight (default 8)\n"
	      "      --ctx N            tokens per sequence (default 2048)\n"
	      "      --batch N          tokens per decode step (default 512)\n"
	      "      --no-prefix-cache  do not reuse shared prompt prefixes\n"
	      "      --no-deterministic let long prompts take OpenBLAS where it is faster (F16/F32\n"
	      "                         weights, CPUs without AVX-512 VNNI): records then depend on\n"
	      "                         batching and threads, within float rounding (default: on)\n",
	      f);
	if (!batch)
		fputs("      --prefix-dir DIR   keep the pipeline's instructions, computed, in DIR between\n"
		      "                         runs (created if missing; never any document text): for cron\n",
		      f);
	fputs("      --one-at-a-time    one sequence at a time, no batching (for benchmarks)\n"
	      "      --no-constrain     extract: free-text answers, no schema grammar (for comparison)\n"
	      "      --max-tokens N     override the pipeline's generation length\n"
	      "      --temperature F    override the pipeline's temperature (0 = greedy)\n"
	      "      --seed N           override the pipeline's seed\n"
	      "\noperation:\n"
	      "      --progress MODE    bar, log, jsonl or none (default: bar on a terminal, else log:\n"
	      "                         a timestamped line every --log-interval seconds)\n"
	      "      --log-interval N   seconds between log lines and metrics writes (default 30)\n"
	      "      --quiet            no progress (the same as --progress none)\n"
	      "      --metrics FILE     write Prometheus metrics (textfile collector format) to\n"
	      "                         FILE every interval and at the end\n"
	      "      --report FILE      write the end-of-run summary as JSON\n"
	      "      --max-failures N   stop after more than N records in error (exit 2)\n"
	      "      --sync-every N     fsync the output and checkpoint every N records (default 64)\n"
	      "\nfallback routing to an OpenAI-compatible endpoint (overrides the pipeline's block):\n"
	      "      --fallback-url URL      base URL (\"/chat/completions\" is appended)\n"
	      "      --fallback-model NAME   model to ask for\n"
	      "      --fallback-key-env VAR  environment variable holding the API key\n"
	      "      --fallback-when LIST    over_context, invalid_output, local_error, always\n"
	      "      --allow-sensitive       let a sensitive pipeline route at all\n"
	      "      --redact                redact identifiers before sending (the default)\n"
	      "      --fallback-concurrency N  requests in flight at once, 1..64 (default: the\n"
	      "                              block's max_concurrency, else 8)\n"
	      "      --no-fallback           no routing for this run\n"
	      "      --audit FILE            audit log (default OUT.audit.jsonl)\n"
	      "\nexit status: 0 all ok; 1 usage or configuration error; 2 finished with records in\n"
	      "error, over --max-failures, a --fail-on label or an unsupported summary item\n"
	      "(--fail-on-unsupported); 3 fatal; 130/143 interrupted.\n",
	      f);
}

enum {
	O_RESUME = 256, O_FORCE, O_OVERWRITE, O_INCREMENTAL, O_SHARD, O_FORMAT,
	O_FAIL_ON, O_SEQS, O_CTX, O_BATCH, O_NO_PREFIX, O_ONE, O_NO_CONSTRAIN, O_MAX_TOKENS,
	O_TEMP, O_SEED, O_PROGRESS, O_REPORT, O_MAX_FAIL, O_SYNC, O_FB_URL, O_FB_MODEL, O_FB_KEY,
	O_FB_WHEN, O_ALLOW_SENS, O_REDACT, O_NO_FB, O_AUDIT, O_PREFIX_DIR, O_DET, O_NODET,
	O_METRICS, O_LOG_INTERVAL, O_QUIET, O_FB_CONC, O_FAIL_UNSUP,
};

static bool parse_int(const char *s, long lo, long hi, long *out)
{
	char *e;
	long v = strtol(s, &e, 10);
	if (!*s || *e || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* The option's name as the user would type it ("--seqs", "-t"). */
static void opt_name(const struct option *opts, int c, char *out, size_t n)
{
	for (const struct option *o = opts; o->name; o++)
		if (o->val == c) {
			snprintf(out, n, "--%s", o->name);
			return;
		}
	snprintf(out, n, "-%c", c);
}

/* Writes s to f quoted for a POSIX shell when it needs it ('*.c', 'a b'). */
static void shell_quote(FILE *f, const char *s)
{
	bool plain = *s != 0;
	for (const char *p = s; *p; p++)
		plain &= strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				"@%+=:,./-_", *p) != NULL;
	if (plain) {
		fputs(s, f);
		return;
	}
	fputc('\'', f);
	for (const char *p = s; *p; p++)
		if (*p == '\'')
			fputs("'\\''", f);
		else
			fputc(*p, f);
	fputc('\'', f);
}

/* Whether arg is an option of ours whose value is the next argument
 * ("-o FILE", "--seqs N"), so that the value is not read as an option. */
static bool takes_value(const struct option *opts, const char *arg)
{
	if (arg[0] != '-')
		return false;
	if (arg[1] != '-')
		return arg[1] && strchr("omt", arg[1]) && !arg[2];
	if (strchr(arg, '='))
		return false;
	for (const struct option *o = opts; o->name; o++)
		if (!strcmp(arg + 2, o->name))
			return o->has_arg == required_argument;
	return false;
}

static void push(const char ***v, size_t *n, const char *s)
{
	const char **p = realloc(*v, (*n + 1) * sizeof *p);
	if (!p)
		return;
	p[(*n)++] = s;
	*v = p;
}

int dk_cli_run_main(int argc, char **argv, bool batch)
{
	static const struct option opts[] = {
		{"output", required_argument, 0, 'o'},
		{"model", required_argument, 0, 'm'},
		{"threads", required_argument, 0, 't'},
		{"help", no_argument, 0, 'h'},
		{"resume", no_argument, 0, O_RESUME},
		{"force", no_argument, 0, O_FORCE},
		{"overwrite", no_argument, 0, O_OVERWRITE},
		{"incremental", no_argument, 0, O_INCREMENTAL},
		{"shard", required_argument, 0, O_SHARD},
		{"format", required_argument, 0, O_FORMAT},
		{"fail-on", required_argument, 0, O_FAIL_ON},
		{"fail-on-unsupported", no_argument, 0, O_FAIL_UNSUP},
		{"seqs", required_argument, 0, O_SEQS},
		{"ctx", required_argument, 0, O_CTX},
		{"batch", required_argument, 0, O_BATCH},
		{"no-prefix-cache", no_argument, 0, O_NO_PREFIX},
		{"prefix-dir", required_argument, 0, O_PREFIX_DIR},
		{"deterministic", no_argument, 0, O_DET},
		{"no-deterministic", no_argument, 0, O_NODET},
		{"one-at-a-time", no_argument, 0, O_ONE},
		{"no-constrain", no_argument, 0, O_NO_CONSTRAIN},
		{"max-tokens", required_argument, 0, O_MAX_TOKENS},
		{"temperature", required_argument, 0, O_TEMP},
		{"seed", required_argument, 0, O_SEED},
		{"progress", required_argument, 0, O_PROGRESS},
		{"metrics", required_argument, 0, O_METRICS},
		{"log-interval", required_argument, 0, O_LOG_INTERVAL},
		{"quiet", no_argument, 0, O_QUIET},
		{"report", required_argument, 0, O_REPORT},
		{"max-failures", required_argument, 0, O_MAX_FAIL},
		{"sync-every", required_argument, 0, O_SYNC},
		{"fallback-url", required_argument, 0, O_FB_URL},
		{"fallback-model", required_argument, 0, O_FB_MODEL},
		{"fallback-key-env", required_argument, 0, O_FB_KEY},
		{"fallback-when", required_argument, 0, O_FB_WHEN},
		{"allow-sensitive", no_argument, 0, O_ALLOW_SENS},
		{"redact", no_argument, 0, O_REDACT},
		{"no-fallback", no_argument, 0, O_NO_FB},
		{"fallback-concurrency", required_argument, 0, O_FB_CONC},
		{"audit", required_argument, 0, O_AUDIT},
		{0, 0, 0, 0},
	};
	struct dk_runner_params p;
	dk_runner_default_params(&p);
	p.mode = DK_OUT_NEW;
	const char *model_opt = NULL;
	const char **fail_on = NULL;
	size_t n_fail_on = 0;
	bool resume = false, overwrite = false, incremental = false;
	int rc = DK_EXIT_USAGE;
	long v;
	int c;
	/* the walk options, shared with docket ls and chunk, first: getopt sees
	 * the rest (argv itself stays as typed, for the resume hint) */
	char **av = calloc((size_t)argc + 1, sizeof *av);
	int ac = 0;
	if (!av) {
		dk_cli_error("out of memory");
		return DK_EXIT_FATAL;
	}
	av[ac++] = argv[0];
	for (int i = 1; i < argc; i++) {
		char werr[DK_ERRMSG_MAX];
		int r = strcmp(argv[i], "--") ? dk_ingest_parse_option(&p.ingest, argc, argv, &i, werr,
									  sizeof werr)
					      : 0;
		if (r < 0) {
			dk_cli_error("%s", werr);
			goto out;
		}
		if (r > 0)
			continue;
		av[ac++] = argv[i];
		if (!strcmp(argv[i], "--")) {
			while (++i < argc)
				av[ac++] = argv[i];
			break;
		}
		if (takes_value(opts, argv[i]) && i + 1 < argc)
			av[ac++] = argv[++i];
	}
	optind = 1;
	while ((c = getopt_long(ac, av, "o:m:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': p.output = optarg; break;
		case 'm': model_opt = optarg; break;
		case 't':
			if (!parse_int(optarg, 1, 1024, &v))
				goto bad_num;
			p.n_threads = (int)v;
			break;
		case 'h': usage(stdout, batch); rc = DK_EXIT_OK; goto out;
		case O_RESUME: resume = true; break;
		case O_FORCE: p.force = true; break;
		case O_OVERWRITE: overwrite = true; break;
		case O_INCREMENTAL: incremental = true; break;
		case O_SHARD: {
			long k, n;
			char *slash = strchr(optarg, '/');
			if (!slash) {
				dk_cli_error("--shard wants K/N (e.g. 0/4), got '%s'", optarg);
				goto out;
			}
			*slash = 0;
			bool ok = parse_int(optarg, 0, 1 << 20, &k) && parse_int(slash + 1, 1, 1 << 20, &n);
			*slash = '/';
			if (!ok || k >= n) {
				dk_cli_error("--shard '%s': K must be in 0..N-1 and N >= 1", optarg);
				goto out;
			}
			p.shard_k = (int)k;
			p.shard_n = (int)n;
			break;
		}
		case O_FORMAT:
			if (!strcmp(optarg, "docket") || !strcmp(optarg, "jsonl"))
				p.format = DK_FORMAT_DOCKET;
			else if (!strcmp(optarg, "openai-batch"))
				p.format = DK_FORMAT_OPENAI_BATCH;
			else {
				dk_cli_error("--format '%s': expected docket or openai-batch", optarg);
				goto out;
			}
			break;
		case O_FAIL_ON: push(&fail_on, &n_fail_on, optarg); break;
		case O_FAIL_UNSUP: p.fail_on_unsupported = true; break;
		case O_SEQS:
			if (!parse_int(optarg, 1, 1024, &v))
				goto bad_num;
			p.n_seq = (int)v;
			break;
		case O_CTX:
			if (!parse_int(optarg, 64, 1 << 20, &v))
				goto bad_num;
			p.n_ctx = (int)v;
			break;
		case O_BATCH:
			if (!parse_int(optarg, 1, 1 << 16, &v))
				goto bad_num;
			p.n_batch = (int)v;
			break;
		case O_NO_PREFIX: p.prefix_cache = false; break;
		case O_PREFIX_DIR: p.prefix_dir = optarg; break;
		case O_DET: p.deterministic = true; break;
		case O_NODET: p.deterministic = false; break;
		case O_ONE: p.n_seq = 1; break;
		case O_NO_CONSTRAIN: p.constrained = 0; break;
		case O_MAX_TOKENS:
			if (!parse_int(optarg, 1, 1 << 16, &v))
				goto bad_num;
			p.max_tokens = (int)v;
			break;
		case O_TEMP: {
			char *e;
			double t = strtod(optarg, &e);
			if (*e || t < 0 || t > 10) {
				dk_cli_error("--temperature '%s': expected a number in [0, 10]", optarg);
				goto out;
			}
			p.temperature = (float)t;
			break;
		}
		case O_SEED:
			if (!parse_int(optarg, 0, 0x7fffffffL, &v))
				goto bad_num;
			p.seed = v;
			break;
		case O_PROGRESS:
			if (!strcmp(optarg, "bar") || !strcmp(optarg, "tty"))
				p.progress = DK_PROGRESS_BAR;
			else if (!strcmp(optarg, "jsonl"))
				p.progress = DK_PROGRESS_JSONL;
			else if (!strcmp(optarg, "log"))
				p.progress = DK_PROGRESS_LOG;
			else if (!strcmp(optarg, "none"))
				p.progress = DK_PROGRESS_NONE;
			else {
				dk_cli_error("--progress '%s': expected bar, log, jsonl or none", optarg);
				goto out;
			}
			break;
		case O_QUIET: p.progress = DK_PROGRESS_NONE; break;
		case O_METRICS: p.metrics_path = optarg; break;
		case O_LOG_INTERVAL:
			if (!parse_int(optarg, 1, 86400, &v))
				goto bad_num;
			p.log_interval_s = (double)v;
			break;
		case O_REPORT: p.report_path = optarg; break;
		case O_MAX_FAIL:
			if (!parse_int(optarg, 0, 0x7fffffffL, &v))
				goto bad_num;
			p.max_failures = v;
			break;
		case O_SYNC:
			if (!parse_int(optarg, 1, 1 << 24, &v))
				goto bad_num;
			p.sync_every = (int)v;
			break;
		case O_FB_URL: p.fallback.url = optarg; break;
		case O_FB_MODEL: p.fallback.model = optarg; break;
		case O_FB_KEY: p.fallback.key_env = optarg; break;
		case O_FB_WHEN: p.fallback.when = optarg; break;
		case O_ALLOW_SENS: p.fallback.allow_sensitive = true; break;
		case O_REDACT: p.fallback.redact = true; break;
		case O_NO_FB: p.fallback.disabled = true; break;
		case O_FB_CONC:
			if (!parse_int(optarg, 1, 64, &v))
				goto bad_num;
			p.fallback.concurrency = (int)v;
			break;
		case O_AUDIT: p.fallback.audit = optarg; break;
		default:
			usage(stderr, batch);
			goto out;
		}
		continue;
bad_num: {
		char name[64];
		opt_name(opts, c, name, sizeof name);
		dk_cli_error("%s: bad value '%s' (see --help)", name, optarg);
		goto out;
	}
	}
	int npos = ac - optind;
	if (batch ? npos != 1 : npos < 2) {
		usage(stderr, batch);
		goto out;
	}
	if ((resume + overwrite + incremental) > 1) {
		dk_cli_error("--resume, --overwrite and --incremental exclude one another");
		goto out;
	}
	if (p.prefix_dir && (batch || !p.prefix_cache)) {
		dk_cli_error(batch ? "--prefix-dir is for pipelines: a batch file's prompts may hold "
				     "anything in their heads"
				   : "--prefix-dir needs the prefix cache (drop --no-prefix-cache)");
		goto out;
	}
	p.mode = resume ? DK_OUT_RESUME
		 : overwrite ? DK_OUT_OVERWRITE
		 : incremental ? DK_OUT_INCREMENTAL
			       : DK_OUT_NEW;
	p.fail_on = fail_on;
	p.n_fail_on = n_fail_on;
	p.model_path = dk_cli_model_path(model_opt);
	if (!p.model_path) { /* no model on this machine: the run cannot be done */
		rc = DK_EXIT_FATAL;
		goto out;
	}

	struct dk_pipeline *pl = NULL;
	if (!batch) {
		char err[DK_ERRMSG_MAX];
		pl = dk_pipeline_load(av[optind], err, sizeof err);
		if (!pl) {
			dk_cli_error("%s", err);
			goto out;
		}
		for (size_t i = 0; i < n_fail_on; i++) {
			bool known = false;
			for (size_t k = 0; k < pl->n_labels; k++)
				known |= !strcmp(pl->labels[k], fail_on[i]);
			if (!known) {
				dk_cli_error("--fail-on '%s': not a label of pipeline '%s'", fail_on[i],
					     pl->name);
				dk_pipeline_free(pl);
				goto out;
			}
		}
		if (p.fail_on_unsupported && pl->task != DK_TASK_SUMMARIZE) {
			dk_cli_error("--fail-on-unsupported: only for a summarize pipeline ('%s' is %s)",
				     pl->name, dk_task_name(pl->task));
			dk_pipeline_free(pl);
			goto out;
		}
		p.pipeline = pl;
	}

	/* the command to run to continue after an interruption */
	char *hint = NULL;
	size_t hint_len = 0;
	FILE *hf = open_memstream(&hint, &hint_len);
	if (hf) {
		fputs("docket", hf);
		for (int i = 0; i < argc; i++) {
			if (!strcmp(argv[i], "--overwrite"))
				continue;
			fputc(' ', hf);
			shell_quote(hf, argv[i]);
		}
		if (!resume)
			fputs(" --resume", hf);
		if (fclose(hf)) {
			free(hint);
			hint = NULL;
		}
	}
	p.resume_hint = hint;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND | SA_RESTART; /* a second signal kills at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	p.stop = &stop_flag;

	struct dk_runner_stats st;
	char err[DK_ERRMSG_MAX] = "";
	enum dk_status s;
	if (batch)
		s = dk_runner_batch(&p, av[optind], &st, err, sizeof err);
	else
		s = dk_runner_run(&p, (const char *const *)av + optind + 1, (size_t)(npos - 1), &st,
				  err, sizeof err);
	if (s != DK_OK) {
		dk_cli_error("%s", err);
		rc = s == DK_SKIP ? DK_EXIT_USAGE : DK_EXIT_FATAL;
	} else {
		double secs = st.wall_ms / 1000;
		fprintf(stderr,
			"docket: %llu records (%llu ok, %llu skipped, %llu error) from %llu documents in "
			"%.1f s (%.2f docs/s); %llu prompt tokens (%.0f%% from cache), %llu generated",
			(unsigned long long)(st.ok + st.skipped + st.errors), (unsigned long long)st.ok,
			(unsigned long long)st.skipped, (unsigned long long)st.errors,
			(unsigned long long)st.docs, secs, secs > 0 ? (double)st.docs / secs : 0.0,
			(unsigned long long)st.prompt_tokens,
			st.prompt_tokens ? 100.0 * (double)st.cached_tokens / (double)st.prompt_tokens : 0.0,
			(unsigned long long)st.completion_tokens);
		if (st.resumed)
			fprintf(stderr, "; %llu already done", (unsigned long long)st.resumed);
		if (st.unchanged)
			fprintf(stderr, "; %llu unchanged", (unsigned long long)st.unchanged);
		if (st.other_shards)
			fprintf(stderr, "; %llu left to other shards", (unsigned long long)st.other_shards);
		fputc('\n', stderr);
		if (st.interrupted) {
			fprintf(stderr, "docket: interrupted by signal %d; resume with:\n  %s\n", st.signal,
				hint ? hint : "docket ... --resume");
			rc = 128 + st.signal;
		} else if (st.max_failures_hit) {
			dk_cli_error("stopped: more than %lld records in error (--max-failures)",
				     (long long)p.max_failures);
			rc = DK_EXIT_PARTIAL;
		} else if (st.errors) {
			rc = DK_EXIT_PARTIAL;
		} else if (st.fail_on_hits) {
			dk_cli_error("%llu file(s) got a --fail-on label", (unsigned long long)st.fail_on_hits);
			rc = DK_EXIT_PARTIAL;
		} else if (p.fail_on_unsupported && st.unsupported) {
			dk_cli_error("%llu summar%s with unsupported items (--fail-on-unsupported)",
				     (unsigned long long)st.unsupported, st.unsupported == 1 ? "y" : "ies");
			rc = DK_EXIT_PARTIAL;
		} else {
			rc = DK_EXIT_OK;
		}
	}
	free(hint);
	dk_pipeline_free(pl);
out:
	dk_ingest_params_release(&p.ingest);
	free(av);
	free(fail_on);
	return rc;
}

int dk_cmd_run(int argc, char **argv) { return dk_cli_run_main(argc, argv, false); }
