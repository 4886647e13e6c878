/*
 * docket bench: engine speed on one model, and how close it comes to what
 * the machine allows.
 *
 *   ppN       one sequence, fresh context, one dk_decode of N prompt tokens
 *             (logits for the last only): N / seconds, best of -r after a
 *             warm-up.
 *   tg128     one sequence after a 16-token prompt, 128 single-token
 *             decodes, each asking for logits and feeding back the argmax.
 *   batch_tg  S sequences after 16-token prompts, 64 steps of one dk_decode
 *             holding S tokens: S*64 / seconds.
 *   shared_prefix
 *             the batch-document workload: N chunks of (fixed 400-token
 *             instruction + distinct 300 random tokens) + 64 greedy tokens,
 *             continuous batching over P sequences, with the prefix cache on
 *             and off, through docket run's scheduler (runner/sched.h): with
 *             the cache on, documents wait while the first computes the
 *             shared instruction (otherwise the first P documents all
 *             compute it side by side), as they do in docket run.
 *             --shared-only runs this alone, cache on (for comparisons
 *             with a server: bench/vs-llama-server.sh).
 *   bounds    OpenBLAS SGEMM GFLOP/s, streaming read GB/s and the engine's
 *             int8 kernel GOP/s on cached Q4_0 weights (0 where this CPU
 *             has none), with the same threads; prefill_roofline_ratio =
 *             pp512 * 2 * matmul params / sgemm flops (prefill_int8_ratio
 *             the same over the int8 bound), decode_roofline_ratio = tg128 *
 *             weight bytes / read bandwidth, batch_roofline_ratio = the
 *             aggregate at the largest batch of 16 or fewer * 2 * (matmul
 *             params + output projection) / int8 ops: batched decode
 *             multiplies every token by every weight, logits included.
 *
 * Progress goes to stderr; stdout holds the table, or one JSON object.
 * Token ids are pseudo-random (seeded), so speed does not depend on text.
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "docket/bounds.h"
#include "docket/runner.h"
#include "docket/model.h"
#include "docket/sampler.h"

struct sizes {
	int pp_small, pp_large;   /* reported as pp128 / pp512 */
	int tg_prompt, tg_n;      /* tg128 */
	int batch_s[8], n_batch_s;
	int batch_steps;
	int sp_prefix, sp_chunk, sp_gen, sp_chunks, sp_parallel;
	int gemm_n;
	size_t read_bytes;
};

struct opts {
	const char *model;
	int threads, reps;
	bool json, quick, no_bounds, no_shared, shared_only;
	enum dk_ttype kv;
	uint64_t seed;
};

struct sp_result {
	double seconds;
	double docs_per_s;
	double gen_tok_per_s;
	double hit_rate;        /* hit tokens / shared-prefix tokens of all documents */
	double prompt_hit_rate; /* hit tokens / all prompt tokens */
	uint64_t hit, miss;
	int n_decode_calls;
	bool ok;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64: enough for token ids */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill_tokens(dk_token *t, int n, int32_t n_vocab, uint64_t *s)
{
	for (int i = 0; i < n; i++)
		t[i] = (dk_token)(rng_next(s) % (uint64_t)n_vocab);
}

static void progress(const struct opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const struct opts *o, const char *fmt, ...)
{
	(void)o;
	va_list ap;
	fputs("bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static struct dk_ctx *make_ctx(struct dk_model *m, const struct opts *o, int n_ctx, int n_seq,
			       int n_batch, bool prefix_cache, bool deterministic)
{
	struct dk_ctx_params p = dk_ctx_default_params();
	int train = dk_model_info(m)->n_ctx_train;
	p.n_ctx = n_ctx > train ? train : n_ctx;
	p.n_seq_max = n_seq;
	p.n_batch = n_batch;
	p.n_threads = o->threads;
	p.kv_type = o->kv;
	p.prefix_cache = prefix_cache;
	p.deterministic = deterministic;
	struct dk_ctx *c = NULL;
	if (dk_ctx_new(&c, m, &p) != DK_OK) {
		dk_cli_error("cannot create a context (n_ctx %d, %d sequences, batch %d): %s", p.n_ctx,
			     n_seq, n_batch, c ? dk_ctx_error(c) : "out of memory");
		dk_ctx_free(c);
		return NULL;
	}
	return c;
}

static bool decode(struct dk_ctx *c, const struct dk_batch *b)
{
	enum dk_status st = dk_decode(c, b);
	if (st != DK_OK) {
		dk_cli_error("decode of %d tokens failed: %s", b->n_tokens, dk_ctx_error(c));
		return false;
	}
	return true;
}

/* Prompt throughput for n tokens; tokens/s (best of reps), or -1. */
static double bench_pp(struct dk_ctx *c, int n, const struct opts *o, uint64_t *rs)
{
	int32_t n_vocab = dk_model_info(dk_ctx_model(c))->n_vocab;
	if (n > dk_ctx_params(c)->n_ctx || n > dk_ctx_params(c)->n_batch)
		return -1;
	struct dk_batch *b = dk_batch_new(n);
	dk_token *t = malloc((size_t)n * sizeof *t);
	double best = -1;
	if (!b || !t)
		goto out;
	fill_tokens(t, n, n_vocab, rs);
	for (int r = -1; r < o->reps; r++) {
		dk_kv_seq_clear(c, 0);
		dk_batch_clear(b);
		for (int i = 0; i < n; i++)
			dk_batch_add(b, t[i], i, 0, i == n - 1);
		double t0 = now_s();
		if (!decode(c, b)) {
			best = -1;
			goto out;
		}
		double dt = now_s() - t0;
		if (r >= 0 && n / dt > best)
			best = n / dt;
	}
out:
	dk_kv_seq_clear(c, 0);
	dk_batch_free(b);
	free(t);
	return best;
}

/* Single-sequence generation; tokens/s, or -1. */
static double bench_tg(struct dk_ctx *c, int prompt, int n, int reps, uint64_t *rs)
{
	const struct dk_model_info *mi = dk_model_info(dk_ctx_model(c));
	struct dk_batch *b = dk_batch_new(prompt > 1 ? prompt : 1);
	double best = -1;
	if (!b)
		return -1;
	for (int r = -1; r < reps; r++) {
		dk_kv_seq_clear(c, 0);
		dk_batch_clear(b);
		for (int i = 0; i < prompt; i++)
			dk_batch_add(b, (dk_token)(rng_next(rs) % (uint64_t)mi->n_vocab), i, 0,
				     i == prompt - 1);
		if (!decode(c, b))
			goto fail;
		dk_token t = dk_argmax(dk_logits(c, prompt - 1), mi->n_vocab);
		double t0 = now_s();
		for (int i = 0; i < n; i++) {
			dk_batch_clear(b);
			dk_batch_add(b, t, prompt + i, 0, true);
			if (!decode(c, b))
				goto fail;
			t = dk_argmax(dk_logits(c, 0), mi->n_vocab);
		}
		double dt = now_s() - t0;
		if (r >= 0 && n / dt > best)
			best = n / dt;
	}
	dk_kv_seq_clear(c, 0);
	dk_batch_free(b);
	return best;
fail:
	dk_kv_seq_clear(c, 0);
	dk_batch_free(b);
	return -1;
}

/* S sequences, `steps` decodes of S tokens; aggregate tokens/s, or -1. */
static double bench_batch(struct dk_ctx *c, int S, int prompt, int steps, int reps, uint64_t *rs)
{
	const struct dk_model_info *mi = dk_model_info(dk_ctx_model(c));
	int cap = S * prompt > S ? S * prompt : S;
	struct dk_batch *b = dk_batch_new(cap);
	dk_token *last = malloc((size_t)S * sizeof *last);
	double best = -1;
	if (!b || !last)
		goto out;
	for (int r = 0; r < reps; r++) {
		for (int s = 0; s < S; s++)
			dk_kv_seq_clear(c, s);
		dk_batch_clear(b);
		for (int s = 0; s < S; s++)
			for (int i = 0; i < prompt; i++)
				dk_batch_add(b, (dk_token)(rng_next(rs) % (uint64_t)mi->n_vocab), i, s,
					     i == prompt - 1);
		if (!decode(c, b)) {
			best = -1;
			goto out;
		}
		for (int s = 0; s < S; s++)
			last[s] = dk_argmax(dk_logits(c, s * prompt + prompt - 1), mi->n_vocab);
		double t0 = now_s();
		for (int k = 0; k < steps; k++) {
			dk_batch_clear(b);
			for (int s = 0; s < S; s++)
				dk_batch_add(b, last[s], prompt + k, s, true);
			if (!decode(c, b)) {
				best = -1;
				goto out;
			}
			for (int s = 0; s < S; s++)
				last[s] = dk_argmax(dk_logits(c, s), mi->n_vocab);
		}
		double dt = now_s() - t0;
		if ((double)S * steps / dt > best)
			best = (double)S * steps / dt;
	}
out:
	for (int s = 0; s < S; s++)
		dk_kv_seq_clear(c, s);
	dk_batch_free(b);
	free(last);
	return best;
}

/* Progress lines of the shared-prefix workload: four in a run. */
struct sp_progress {
	const struct opts *o;
	double t0;
};

static void sp_progress(void *ud, int done, int n)
{
	struct sp_progress *k = ud;
	if (n >= 8 && done % (n / 4) == 0 && done < n)
		progress(k->o, "  %d/%d documents, %.1f s", done, n, now_s() - k->t0);
}

/* The shared-prefix workload on a fresh context with the prefix cache on or
 * off, run by the runner's scheduler (dk_bench_shared_run). */
static struct sp_result bench_shared(struct dk_model *m, const struct opts *o,
				     const struct sizes *z, bool cache)
{
	struct sp_result res = {0};
	struct dk_bench_shared_params bp = dk_bench_shared_default_params();
	bp.n_docs = z->sp_chunks;
	bp.n_prefix = z->sp_prefix;
	bp.n_chunk = z->sp_chunk;
	bp.n_gen = z->sp_gen;
	bp.n_parallel = z->sp_parallel;
	bp.seed = o->seed;
	struct sp_progress k = {.o = o, .t0 = now_s()};
	bp.progress = sp_progress;
	bp.ud = &k;
	struct dk_ctx *c = make_ctx(m, o, bp.n_prefix + bp.n_chunk + bp.n_gen, bp.n_parallel,
				    bp.n_batch, cache, true);
	if (!c)
		return res;
	struct dk_bench_shared_result r;
	char err[DK_ERRMSG_MAX];
	if (dk_bench_shared_run(c, &bp, &r, err, sizeof err) != DK_OK) {
		dk_cli_error("%s", err);
		dk_ctx_free(c);
		return res;
	}
	dk_ctx_free(c);
	res.seconds = r.seconds;
	res.docs_per_s = r.docs_per_s;
	res.gen_tok_per_s = r.gen_tok_per_s;
	res.hit_rate = r.hit_rate;
	res.prompt_hit_rate = r.prompt_hit_rate;
	res.hit = r.hit;
	res.miss = r.miss;
	res.n_decode_calls = (int)r.n_decode_calls;
	res.ok = true;
	return res;
}

/* pp, tg, batched tg and the deterministic-off pair; false after an error
 * (already reported). */
static bool bench_engine(struct dk_model *m, const struct opts *o, const struct sizes *z,
			 uint64_t *rs, double *pp_s, double *pp_l, double *tg, double *btg, double *pp_nd,
			 char *blas, size_t nblas)
{
	int pp_ctx = z->pp_large > z->tg_prompt + z->tg_n ? z->pp_large : z->tg_prompt + z->tg_n;
	struct dk_ctx *cp = make_ctx(m, o, pp_ctx, 1, z->pp_large, false, true);
	if (!cp)
		return false;
	progress(o, "pp%d (%d threads, %d reps)", z->pp_small, o->threads, o->reps);
	*pp_s = bench_pp(cp, z->pp_small, o, rs);
	progress(o, "pp%d", z->pp_large);
	*pp_l = bench_pp(cp, z->pp_large, o, rs);
	progress(o, "tg%d", z->tg_n);
	*tg = bench_tg(cp, z->tg_prompt, z->tg_n, o->reps, rs);
	dk_ctx_free(cp);
	if (*tg < 0 || *pp_s < 0) {
		dk_cli_error("prompt or generation benchmark failed");
		return false;
	}

	int s_max = z->batch_s[z->n_batch_s - 1];
	struct dk_ctx *cb = make_ctx(m, o, z->tg_prompt + z->batch_steps + 1, s_max,
				     s_max * z->tg_prompt > 512 ? s_max * z->tg_prompt : 512, false, true);
	if (!cb)
		return false;
	for (int i = 0; i < z->n_batch_s; i++) {
		progress(o, "batch_tg %d sequences", z->batch_s[i]);
		btg[i] = bench_batch(cb, z->batch_s[i], z->tg_prompt, z->batch_steps, o->reps, rs);
	}
	dk_ctx_free(cb);

	/* Deterministic mode off can change only products of 64 or more
	 * tokens (model.h: dk_ctx_params.deterministic): the large prefill.
	 * Decode steps of fewer tokens run the same kernels either way, and
	 * where no weight type takes OpenBLAS the prefill does too, so there
	 * the cost is 0 by construction rather than a difference of noise. */
	struct dk_ctx *cn = make_ctx(m, o, pp_ctx, 1, z->pp_large, false, false);
	if (!cn)
		return false;
	blas[0] = 0;
	for (int t = 0; t < DK_TYPE_COUNT; t++)
		if (dk_ctx_uses_blas(cn, (enum dk_ttype)t))
			snprintf(blas + strlen(blas), nblas - strlen(blas), "%s%s", *blas ? "," : "",
				 dk_ttype_name((enum dk_ttype)t));
	*pp_nd = *pp_l;
	if (*blas && z->pp_large >= DK_BLAS_MIN_TOKENS) {
		progress(o, "deterministic off: pp%d (OpenBLAS for %s)", z->pp_large, blas);
		*pp_nd = bench_pp(cn, z->pp_large, o, rs);
	}
	dk_ctx_free(cn);
	return true;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: docket bench [-m MODEL] [-t N] [-r N] [--json] [--quick]\n"
		"                    [--chunks N] [--parallel P] [--kv f16|f32]\n"
		"  -m, --model PATH   model (default: $DOCKET_MODEL or the cached default)\n"
		"  -t, --threads N    threads for the engine and the bounds (default: cores)\n"
		"  -r, --reps N       repetitions, best is kept (default 3)\n"
		"      --json         print one JSON object on stdout\n"
		"      --quick        tiny sizes (a smoke test, not a measurement)\n"
		"      --chunks N     shared-prefix documents (default 64)\n"
		"      --parallel P   shared-prefix sequences in flight (default 16)\n"
		"      --kv TYPE      kv cache type (default f16)\n"
		"      --no-bounds    skip the machine bounds\n"
		"      --no-shared    skip the shared-prefix workload\n"
		"      --shared-only  only the shared-prefix workload, cache on\n"
		"      --seed N       token id seed (default 1)\n");
}

static json_t *jnum(double v)
{
	/* JSON has no NaN: an unmeasured figure is null. */
	return v >= 0 && isfinite(v) ? json_real(round(v * 1000) / 1000) : json_null();
}

static json_t *jratio(double v)
{
	return v >= 0 && isfinite(v) ? json_real(round(v * 10000) / 10000) : json_null();
}

/* A relative cost: negative when "off" came out slower (noise). */
static json_t *jcost(double on, double off)
{
	return on > 0 && off > 0 ? json_real(round((1 - on / off) * 10000) / 10000) : json_null();
}

int dk_cmd_bench(int argc, char **argv)
{
	enum { O_JSON = 256, O_QUICK, O_CHUNKS, O_PARALLEL, O_KV, O_NOBOUNDS, O_NOSHARED, O_SHAREDONLY, O_SEED, O_HELP };
	static const struct option lopts[] = {
		{"model", required_argument, 0, 'm'}, {"threads", required_argument, 0, 't'},
		{"reps", required_argument, 0, 'r'}, {"json", no_argument, 0, O_JSON},
		{"quick", no_argument, 0, O_QUICK}, {"chunks", required_argument, 0, O_CHUNKS},
		{"parallel", required_argument, 0, O_PARALLEL}, {"kv", required_argument, 0, O_KV},
		{"no-bounds", no_argument, 0, O_NOBOUNDS}, {"no-shared", no_argument, 0, O_NOSHARED},
		{"shared-only", no_argument, 0, O_SHAREDONLY},
		{"seed", required_argument, 0, O_SEED}, {"help", no_argument, 0, O_HELP},
		{0, 0, 0, 0}};
	struct opts o = {.reps = 3, .kv = DK_TYPE_F16, .seed = 1};
	int chunks = -1, parallel = -1, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:t:r:", lopts, NULL)) != -1) {
		switch (c) {
		case 'm': o.model = optarg; break;
		case 't': o.threads = atoi(optarg); break;
		case 'r': o.reps = atoi(optarg); break;
		case O_JSON: o.json = true; break;
		case O_QUICK: o.quick = true; break;
		case O_CHUNKS: chunks = atoi(optarg); break;
		case O_PARALLEL: parallel = atoi(optarg); break;
		case O_NOBOUNDS: o.no_bounds = true; break;
		case O_NOSHARED: o.no_shared = true; break;
		case O_SHAREDONLY: o.shared_only = o.no_bounds = true; break;
		case O_SEED: o.seed = strtoull(optarg, NULL, 10); break;
		case O_KV:
			if (!strcmp(optarg, "f16")) o.kv = DK_TYPE_F16;
			else if (!strcmp(optarg, "f32")) o.kv = DK_TYPE_F32;
			else { dk_cli_error("--kv must be f16 or f32, not '%s'", optarg); return DK_EXIT_USAGE; }
			break;
		case O_HELP: usage(stdout); return DK_EXIT_OK;
		default: usage(stderr); return DK_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		dk_cli_error("unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return DK_EXIT_USAGE;
	}
	if (o.threads <= 0)
		o.threads = dk_cli_default_threads();
	if (o.reps < 1 || o.reps > 100 || (chunks != -1 && (chunks < 1 || chunks > 100000)) ||
	    (parallel != -1 && (parallel < 1 || parallel > 256)) || o.threads > 256) {
		dk_cli_error("-r must be in 1..100, --chunks >= 1, --parallel in 1..256, -t <= 256");
		return DK_EXIT_USAGE;
	}

	struct sizes z;
	if (o.quick)
		z = (struct sizes){16, 32, 4, 8, {1, 2}, 2, 8, 32, 16, 4, 4, 2, 128, (size_t)16 << 20};
	else
		z = (struct sizes){128, 512, 16, 128, {1, 4, 8, 16, 32}, 5, 64, 400, 300, 64, 64, 16,
				   1024, (size_t)1 << 30};
	if (chunks > 0)
		z.sp_chunks = chunks;
	if (parallel > 0)
		z.sp_parallel = parallel;

	const char *path = dk_cli_model_path(o.model);
	if (!path)
		return DK_EXIT_USAGE;
	struct dk_model *m = NULL;
	struct dk_model_params mp = dk_model_default_params();
	progress(&o, "loading %s", path);
	if (dk_model_load(&m, path, &mp) != DK_OK) {
		dk_cli_error("%s", m ? dk_model_error(m) : "out of memory");
		dk_model_free(m);
		return DK_EXIT_FATAL;
	}
	const struct dk_model_info *mi = dk_model_info(m);
	if (z.sp_prefix + z.sp_chunk + z.sp_gen > mi->n_ctx_train) {
		/* Keep the workload's proportions on short-context models. */
		if (z.sp_gen > mi->n_ctx_train / 4)
			z.sp_gen = mi->n_ctx_train / 4 > 1 ? mi->n_ctx_train / 4 : 1;
		double f = (double)(mi->n_ctx_train - z.sp_gen) / (z.sp_prefix + z.sp_chunk);
		z.sp_prefix = (int)(z.sp_prefix * f);
		z.sp_chunk = (int)(z.sp_chunk * f) > 1 ? (int)(z.sp_chunk * f) : 1;
		progress(&o, "the model's context is %d tokens: shared prefix scaled to %d + %d + %d",
			 mi->n_ctx_train, z.sp_prefix, z.sp_chunk, z.sp_gen);
	}
	uint64_t rs = o.seed;
	int rc = DK_EXIT_FATAL;
	double load[3] = {-1, -1, -1};
	getloadavg(load, 3);

	double pp_s = -1, pp_l = -1, tg = -1, btg[8], pp_nd = -1;
	char blas[128] = "";
	for (int i = 0; i < 8; i++)
		btg[i] = -1;
	if (!o.shared_only &&
	    !bench_engine(m, &o, &z, &rs, &pp_s, &pp_l, &tg, btg, &pp_nd, blas, sizeof blas))
		goto out;

	/* ---- shared prefix ---- */
	struct sp_result on = {0}, off = {0};
	if (!o.no_shared) {
		progress(&o, "shared prefix: %d chunks, %d in parallel, cache on", z.sp_chunks,
			 z.sp_parallel);
		on = bench_shared(m, &o, &z, true);
		if (!o.shared_only) {
			progress(&o, "shared prefix: cache off");
			off = bench_shared(m, &o, &z, false);
		}
		if (!on.ok || (!o.shared_only && !off.ok))
			goto out;
	}

	/* ---- bounds ---- */
	double gflops = -1, gbps = -1, i8 = -1;
	if (!o.no_bounds) {
		progress(&o, "bounds: sgemm %d", z.gemm_n);
		gflops = dk_bounds_sgemm_gflops(z.gemm_n, o.threads, o.reps);
		progress(&o, "bounds: read %zu MiB", z.read_bytes >> 20);
		gbps = dk_bounds_read_gbps(z.read_bytes, o.threads, o.reps);
		progress(&o, "bounds: int8 kernel");
		i8 = dk_bounds_int8_gops(o.threads, o.reps);
	}
	int64_t qd = (int64_t)mi->n_head * mi->head_dim, kvd = (int64_t)mi->n_head_kv * mi->head_dim;
	/* Weights each prompt token is multiplied by; the output projection runs
	 * once per prompt (logits for the last token only), so it is left out. */
	uint64_t matmul_params = (uint64_t)mi->n_layer *
				 (uint64_t)(mi->n_embd * qd * 2 + mi->n_embd * kvd * 2 +
					    (int64_t)mi->n_embd * mi->n_ff * 3);
	double pre_ratio = gflops > 0 && pp_l > 0 ? pp_l * 2.0 * (double)matmul_params / (gflops * 1e9) : -1;
	double dec_ratio = gbps > 0 ? tg * (double)mi->weight_bytes / (gbps * 1e9) : -1;
	double pre_i8_ratio = i8 > 0 && pp_l > 0 ? pp_l * 2.0 * (double)matmul_params / (i8 * 1e9) : -1;
	int bi = -1; /* the largest batch of 16 sequences or fewer */
	for (int i = 0; i < z.n_batch_s; i++)
		if (z.batch_s[i] <= 16 && btg[i] > 0)
			bi = i;
	double batch_ops = 2.0 * ((double)matmul_params + (double)mi->n_vocab * (double)mi->n_embd);
	double batch_ratio = i8 > 0 && bi >= 0 ? btg[bi] * batch_ops / (i8 * 1e9) : -1;

	const char *level = dk_kernel_level_name();
	const char *tname = dk_ttype_name(mi->wtype);
	char k_s[16], k_l[16], k_t[16];
	snprintf(k_s, sizeof k_s, "pp%d", z.pp_small);
	snprintf(k_l, sizeof k_l, "pp%d", z.pp_large);
	snprintf(k_t, sizeof k_t, "tg%d", z.tg_n);
	if (o.json) {
		json_t *j = json_object();
		json_t *jm = json_object();
		json_object_set_new(jm, "name", json_string(mi->name));
		json_object_set_new(jm, "path", json_string(path));
		json_object_set_new(jm, "arch", json_string(mi->arch));
		json_object_set_new(jm, "type", json_string(tname ? tname : "?"));
		json_object_set_new(jm, "params", json_integer((json_int_t)mi->n_params));
		json_object_set_new(jm, "matmul_params", json_integer((json_int_t)matmul_params));
		json_object_set_new(jm, "weight_bytes", json_integer((json_int_t)mi->weight_bytes));
		json_object_set_new(j, "model", jm);
		json_object_set_new(j, "threads", json_integer(o.threads));
		json_object_set_new(j, "kernel_level", json_string(level));
		json_object_set_new(j, "kv_type", json_string(o.kv == DK_TYPE_F16 ? "f16" : "f32"));
		json_object_set_new(j, "reps", json_integer(o.reps));
		json_object_set_new(j, "quick", json_boolean(o.quick));
		json_t *jl = json_array();
		for (int i = 0; i < 3; i++)
			json_array_append_new(jl, jnum(load[i]));
		json_object_set_new(j, "loadavg", jl);
		/* Fixed names for tools; in --quick mode "sizes" says what ran. */
		json_object_set_new(j, "pp128", jnum(pp_s));
		json_object_set_new(j, "pp512", jnum(pp_l));
		json_object_set_new(j, "tg128", jnum(tg));
		json_t *jb = json_object();
		for (int i = 0; i < z.n_batch_s; i++) {
			char k[16];
			snprintf(k, sizeof k, "%d", z.batch_s[i]);
			json_object_set_new(jb, k, jnum(btg[i]));
		}
		json_object_set_new(j, "batch_tg", jb);
		json_t *jd = json_object();
		json_object_set_new(jd, "pp512_on", jnum(pp_l));
		json_object_set_new(jd, "pp512_off", jnum(pp_nd));
		json_object_set_new(jd, "pp512_cost", jcost(pp_l, pp_nd));
		json_object_set_new(jd, "blas_types", json_string(blas));
		/* decode steps of fewer than 64 tokens run the same kernels either way */
		json_object_set_new(jd, "decode_cost", json_real(0));
		json_object_set_new(j, "deterministic", jd);
		if (!o.no_shared) {
			json_t *js = json_object();
			json_object_set_new(js, "n_chunks", json_integer(z.sp_chunks));
			json_object_set_new(js, "parallel", json_integer(z.sp_parallel));
			json_object_set_new(js, "prefix_tokens", json_integer(z.sp_prefix));
			json_object_set_new(js, "chunk_tokens", json_integer(z.sp_chunk));
			json_object_set_new(js, "gen_tokens", json_integer(z.sp_gen));
			json_object_set_new(js, "seconds_cache_on", jnum(on.seconds));
			json_object_set_new(js, "seconds_cache_off", jnum(off.ok ? off.seconds : -1));
			json_object_set_new(js, "documents_per_second_cache_on", jnum(on.docs_per_s));
			json_object_set_new(js, "documents_per_second_cache_off", jnum(off.ok ? off.docs_per_s : -1));
			json_object_set_new(js, "gen_tokens_per_second_cache_on", jnum(on.gen_tok_per_s));
			json_object_set_new(js, "gen_tokens_per_second_cache_off", jnum(off.ok ? off.gen_tok_per_s : -1));
			json_object_set_new(js, "prefix_hit_rate", jratio(on.hit_rate));
			json_object_set_new(js, "prompt_token_hit_rate", jratio(on.prompt_hit_rate));
			json_object_set_new(js, "hit_tokens", json_integer((json_int_t)on.hit));
			json_object_set_new(js, "miss_tokens", json_integer((json_int_t)on.miss));
			json_object_set_new(js, "prefix_hit_rate_cache_off", jratio(off.ok ? off.hit_rate : -1));
			json_object_set_new(js, "speedup", jratio(off.ok && on.seconds > 0 ? off.seconds / on.seconds : -1));
			json_object_set_new(js, "decode_calls_cache_on", json_integer(on.n_decode_calls));
			json_object_set_new(j, "shared_prefix", js);
		} else {
			json_object_set_new(j, "shared_prefix", json_null());
		}
		json_t *jo = json_object();
		json_object_set_new(jo, "sgemm_gflops", jnum(gflops));
		json_object_set_new(jo, "sgemm_n", json_integer(z.gemm_n));
		json_object_set_new(jo, "read_gbps", jnum(gbps));
		json_object_set_new(jo, "read_bytes", json_integer((json_int_t)z.read_bytes));
		json_object_set_new(jo, "prefill_roofline_ratio", jratio(pre_ratio));
		json_object_set_new(jo, "decode_roofline_ratio", jratio(dec_ratio));
		json_object_set_new(jo, "int8_gops", jnum(i8));
		json_object_set_new(jo, "prefill_int8_ratio", jratio(pre_i8_ratio));
		json_object_set_new(jo, "batch_roofline_ratio", jratio(batch_ratio));
		json_object_set_new(jo, "batch_roofline_sequences",
				    json_integer(bi >= 0 ? z.batch_s[bi] : -1));
		json_object_set_new(j, "bounds", jo);
		json_t *jz = json_object();
		json_object_set_new(jz, "pp128", json_integer(z.pp_small));
		json_object_set_new(jz, "pp512", json_integer(z.pp_large));
		json_object_set_new(jz, "tg128", json_integer(z.tg_n));
		json_object_set_new(jz, "tg_prompt", json_integer(z.tg_prompt));
		json_object_set_new(jz, "batch_steps", json_integer(z.batch_steps));
		json_object_set_new(j, "sizes", jz);
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
		json_decref(j);
		if (!s) {
			dk_cli_error("out of memory");
			goto out;
		}
		puts(s);
		free(s);
	} else {
		printf("model      %s (%s, %s, %.1fM params, %.1f MiB weights)\n", mi->name, mi->arch,
		       tname ? tname : "?", (double)mi->n_params / 1e6,
		       (double)mi->weight_bytes / (1 << 20));
		printf("threads    %d   kernels %s   kv %s   load %.2f %.2f %.2f%s\n", o.threads,
		       level, o.kv == DK_TYPE_F16 ? "f16" : "f32", load[0], load[1],
		       load[2], o.quick ? "   (quick: tiny sizes)" : "");
		if (!o.shared_only) {
			printf("\n%-28s %12s\n", "test", "tokens/s");
			printf("%-28s %12.1f\n", k_s, pp_s);
			printf("%-28s %12.1f\n", k_l, pp_l);
			printf("%-28s %12.1f\n", k_t, tg);
			for (int i = 0; i < z.n_batch_s; i++) {
				char k[40];
				snprintf(k, sizeof k, "batch_tg x%d", z.batch_s[i]);
				printf("%-28s %12.1f\n", k, btg[i]);
			}
			char kp[48];
			snprintf(kp, sizeof kp, "pp%d, deterministic off", z.pp_large);
			if (*blas && z.pp_large >= DK_BLAS_MIN_TOKENS)
				printf("%-28s %12.1f   (on: %.1f, cost %.1f%%; OpenBLAS for %s)\n", kp, pp_nd,
				       pp_l, pp_nd > 0 ? 100 * (1 - pp_l / pp_nd) : 0, blas);
			else
				printf("%-28s %12s   (no product takes OpenBLAS here: same kernels, cost 0)\n",
				       kp, "same");
			printf("%-28s %12s   (decode steps under 64 tokens: same kernels, cost 0)\n",
			       "tg/batch, determ. off", "same");
		}
		if (!o.no_shared) {
			printf("\nshared prefix: %d docs x (%d prefix + %d chunk) + %d generated, %d in parallel\n",
			       z.sp_chunks, z.sp_prefix, z.sp_chunk, z.sp_gen, z.sp_parallel);
			printf("  cache on   %8.2f s  %8.2f docs/s  prefix hit rate %.3f (of all prompt tokens %.3f)\n",
			       on.seconds, on.docs_per_s, on.hit_rate, on.prompt_hit_rate);
			if (!o.shared_only)
				printf("  cache off  %8.2f s  %8.2f docs/s   speedup x%.2f\n", off.seconds,
				       off.docs_per_s, on.seconds > 0 ? off.seconds / on.seconds : 0);
		}
		if (!o.no_bounds) {
			printf("\nbounds: sgemm %.1f GFLOP/s (n=%d), read %.2f GB/s\n", gflops, z.gemm_n, gbps);
			printf("  prefill roofline %.3f (%s at %.1f GFLOP/token)\n", pre_ratio, k_l,
			       2.0 * (double)matmul_params * 1e-9);
			printf("  decode roofline  %.3f (%s at %.1f MiB/token)\n", dec_ratio, k_t,
			       (double)mi->weight_bytes / (1 << 20));
			if (i8 > 0) {
				printf("int8 kernel %.1f GOP/s (cached Q4_0 weights)\n", i8);
				printf("  prefill int8     %.3f\n", pre_i8_ratio);
				if (bi >= 0)
					printf("  batch roofline   %.3f (batch_tg x%d at %.2f GOP/token)\n",
					       batch_ratio, z.batch_s[bi], batch_ops * 1e-9);
			}
		}
	}
	rc = DK_EXIT_OK;
out:
	dk_model_free(m);
	return rc;
}
