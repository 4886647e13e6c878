/* The shared-prefix workload of `docket bench`, on the runner's scheduler,
 * so that the figure `docket bench` prints is what `docket run` does. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "docket/runner.h"
#include "runner/sched.h"
#include "util/err.h"

struct dk_bench_shared_params dk_bench_shared_default_params(void)
{
	return (struct dk_bench_shared_params){
		.n_docs = 64,
		.n_prefix = 400,
		.n_chunk = 300,
		.n_gen = 64,
		.n_parallel = 16,
		.n_batch = 512,
		.seed = 42,
	};
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64: the token ids only need to be reproducible */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill_tokens(dk_token *t, int n, int32_t n_vocab, uint64_t *s)
{
	for (int i = 0; i < n; i++)
		t[i] = (dk_token)(rng_next(s) % (uint64_t)n_vocab);
}

struct counter {
	const struct dk_bench_shared_params *p;
	int done;
};

static void on_done(void *ud, const struct dk_job_result *r)
{
	(void)r;
	struct counter *k = ud;
	k->done++;
	if (k->p->progress)
		k->p->progress(k->p->ud, k->done, k->p->n_docs);
}

enum dk_status dk_bench_shared_run(struct dk_ctx *c, const struct dk_bench_shared_params *p,
				   struct dk_bench_shared_result *r, char *err, size_t n)
{
	memset(r, 0, sizeof *r);
	if (p->n_docs < 1 || p->n_prefix < 1 || p->n_chunk < 0 || p->n_gen < 1 ||
	    p->n_parallel < 1 || p->n_batch < 1)
		return dk_err(err, n, DK_SKIP, "shared prefix: bad workload sizes");
	const struct dk_ctx_params *cp = dk_ctx_params(c);
	struct dk_model *m = dk_ctx_model(c);
	int plen = p->n_prefix + p->n_chunk, need = plen + p->n_gen;
	if (cp->n_ctx < need)
		return dk_err(err, n, DK_SKIP,
			      "shared prefix: the context (%d) is shorter than %d tokens", cp->n_ctx,
			      need);
	if (cp->n_seq_max < p->n_parallel)
		return dk_err(err, n, DK_SKIP,
			      "shared prefix: the context holds %d sequences, not %d", cp->n_seq_max,
			      p->n_parallel);

	struct dk_sched_params sp;
	dk_sched_default_params(&sp);
	sp.ctx = c;
	sp.tok = dk_model_tokenizer(m);
	sp.n_seq = p->n_parallel;
	sp.n_batch = p->n_batch;
	sp.n_ctx = need;
	sp.n_vocab = dk_model_info(m)->n_vocab;
	sp.prefix_cache = cp->prefix_cache;
	struct dk_sched *s = NULL;
	enum dk_status st = DK_OK;
	dk_token *head = malloc((size_t)p->n_prefix * sizeof *head);
	struct counter k = {.p = p};
	if (!head || dk_sched_new(&s, &sp) != DK_OK) {
		st = dk_err(err, n, DK_FATAL, "shared prefix: out of memory");
		goto out;
	}
	uint64_t rs = p->seed ^ 0x5eed;
	fill_tokens(head, p->n_prefix, sp.n_vocab, &rs);
	struct dk_job_spec js = dk_job_default_spec();
	js.sp.temperature = 0; /* greedy */
	js.max_tokens = p->n_gen;
	js.n_prefix = p->n_prefix;
	js.ignore_eog = true;
	js.done = on_done;
	js.ud = &k;
	for (int d = 0; d < p->n_docs; d++) {
		/* the scheduler takes the token array over */
		dk_token *toks = malloc((size_t)plen * sizeof *toks);
		if (!toks) {
			st = dk_err(err, n, DK_FATAL, "shared prefix: out of memory");
			goto out;
		}
		memcpy(toks, head, (size_t)p->n_prefix * sizeof *toks);
		fill_tokens(toks + p->n_prefix, p->n_chunk, sp.n_vocab, &rs);
		if (dk_sched_submit(s, &js, toks, plen) != DK_OK) {
			st = dk_err(err, n, DK_FATAL, "shared prefix: out of memory");
			goto out;
		}
	}
	double t0 = now_s();
	while (dk_sched_queued(s) || dk_sched_active(s))
		if (dk_sched_step(s) != DK_OK) {
			st = dk_err(err, n, DK_FATAL, "shared prefix: %s", dk_sched_error(s));
			goto out;
		}
	r->seconds = now_s() - t0;
	r->n_decode_calls = dk_sched_decodes(s);
	struct dk_kv_stats ks;
	dk_kv_stats(c, &ks);
	r->hit = ks.hit_tokens;
	r->miss = ks.miss_tokens;
	/* the first document must compute the prefix, so the best is (N-1)/N */
	r->hit_rate = (double)ks.hit_tokens / ((double)p->n_docs * p->n_prefix);
	r->prompt_hit_rate = ks.hit_tokens + ks.miss_tokens
				     ? (double)ks.hit_tokens / (double)(ks.hit_tokens + ks.miss_tokens)
				     : 0;
	r->docs_per_s = p->n_docs / r->seconds;
	r->gen_tok_per_s = (double)p->n_docs * p->n_gen / r->seconds;
out:
	dk_sched_free(s);
	free(head);
	return st;
}
