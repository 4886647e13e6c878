#include "docket/perplexity.h"
#include "docket/sampler.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/model_impl.h"
#include "util/err.h"

_Static_assert(sizeof(float) == 4 && sizeof(dk_token) == 4, "base file fields");

#define BASE_MAGIC "_logits_"
#define BASE_HEADER 20 /* magic, n_ctx, n_vocab, n_chunk */
/* a log-probability this far below the top is stored as 0, and a stored
 * one below -BASE_RANGE adds nothing to the divergence */
#define BASE_RANGE 16.0f

/* Called for each scored position p (its logits predict next); returns
 * false to stop with c->err set. */
typedef bool (*score_fn)(void *ud, struct dk_ctx *c, const float *logits, dk_token next);
typedef void (*chunk_fn)(void *ud, int32_t chunk);

/* The evaluation llama-perplexity does: each chunk from an empty cache, its
 * first token replaced by BOS where the vocabulary adds one, the second half
 * (n_ctx/2 .. n_ctx-2) scored. */
static enum dk_status run_chunks(struct dk_ctx *c, const dk_token *toks, int32_t n_ctx,
				 int32_t n_chunk, score_fn score, chunk_fn done, void *ud)
{
	/* as llama.cpp: only a vocabulary that adds BOS gets one at each chunk */
	const struct dk_tokenizer *tok = dk_model_tokenizer(dk_ctx_model(c));
	dk_token bos = dk_tokenizer_add_bos(tok) ? dk_tokenizer_bos(tok) : DK_TOKEN_NULL;
	int32_t n_batch = dk_ctx_params(c)->n_batch;
	struct dk_batch *b = dk_batch_new(n_batch);
	if (!b)
		return dk_err(c->err, sizeof c->err, DK_FATAL, "perplexity: out of memory");
	const int32_t first = n_ctx / 2;
	enum dk_status st = DK_OK;
	for (int32_t ch = 0; ch < n_chunk && st == DK_OK; ch++) {
		const dk_token *ct = toks + (size_t)ch * (size_t)n_ctx;
		dk_kv_seq_clear(c, 0);
		for (int32_t start = 0; start < n_ctx && st == DK_OK; start += n_batch) {
			dk_batch_clear(b);
			int32_t k = n_ctx - start < n_batch ? n_ctx - start : n_batch;
			for (int32_t i = 0; i < k; i++) {
				int32_t p = start + i;
				dk_token t = p == 0 && bos != DK_TOKEN_NULL ? bos : ct[p];
				dk_batch_add(b, t, p, 0, p >= first && p <= n_ctx - 2);
			}
			st = dk_decode(c, b);
			for (int32_t i = 0; i < k && st == DK_OK; i++) {
				int32_t p = start + i;
				if (p >= first && p <= n_ctx - 2 && !score(ud, c, dk_logits(c, i), ct[p + 1]))
					st = DK_SKIP;
			}
		}
		if (st == DK_OK && done)
			done(ud, ch);
	}
	dk_kv_seq_clear(c, 0);
	dk_batch_free(b);
	return st;
}

/* ---- perplexity, and the base file writer ---- */

struct ppl_run {
	int32_t nv;
	double nll, nll2;
	int64_t count;
	dk_ppl_progress_fn cb;
	void *ud;
	/* base file: one record of rec_n uint16 per scored token */
	FILE *f;
	const char *path;
	uint16_t *rec;
	size_t rec_n;
};

/* One base record: scale and the log-probability of the lowest stored
 * logit, then each logit's offset above that logit in units of scale,
 * rounded to nearest (ties to even, as lrintf in the default mode). */
static void base_record(const float *l, int32_t nv, uint16_t *rec, size_t rec_n)
{
	float mx = l[0], mn = l[0];
	for (int32_t i = 1; i < nv; i++) {
		mx = l[i] > mx ? l[i] : mx;
		mn = l[i] < mn ? l[i] : mn;
	}
	if (mn < mx - BASE_RANGE)
		mn = mx - BASE_RANGE;
	double sum = 0;
	for (int32_t i = 0; i < nv; i++)
		sum += exp((double)l[i] - mx);
	float lse = (float)log(sum);
	float scale = (mx - mn) / 65535.0f;
	float min_lp = mn - mx - lse;
	memcpy(rec, &scale, 4);
	memcpy(rec + 2, &min_lp, 4);
	uint16_t *q = rec + 4;
	memset(q, 0, (rec_n - 4) * sizeof *q);
	if (scale > 0) {
		float inv = 1.0f / scale;
		for (int32_t i = 0; i < nv; i++) {
			if (!(l[i] > mn))
				continue;
			long v = lrintf(inv * (l[i] - mn));
			q[i] = (uint16_t)(v > 65535 ? 65535 : v);
		}
	}
}

static bool ppl_score(void *ud, struct dk_ctx *c, const float *logits, dk_token next)
{
	struct ppl_run *r = ud;
	double l = -dk_log_softmax_at(logits, r->nv, next);
	r->nll += l;
	r->nll2 += l * l;
	r->count++;
	if (r->f) {
		base_record(logits, r->nv, r->rec, r->rec_n);
		if (fwrite(r->rec, sizeof *r->rec, r->rec_n, r->f) != r->rec_n) {
			dk_err(c->err, sizeof c->err, DK_FATAL, "cannot write '%s': %s", r->path,
			       dk_errno_str(errno));
			return false;
		}
	}
	return true;
}

static void ppl_chunk(void *ud, int32_t ch)
{
	struct ppl_run *r = ud;
	if (r->cb)
		r->cb(r->ud, ch + 1, exp(r->nll / (double)r->count));
}

static size_t base_rec_n(int32_t n_vocab)
{
	return 2 * (((size_t)n_vocab + 1) / 2) + 4;
}

static enum dk_status ppl(struct dk_ctx *c, const dk_token *toks, int64_t n, int32_t n_ctx,
			  int32_t max_chunks, const char *path, dk_ppl_progress_fn cb, void *ud,
			  struct dk_ppl_result *out)
{
	if (n_ctx < 4 || n_ctx > dk_ctx_params(c)->n_ctx || n < 2 * (int64_t)n_ctx)
		return dk_err(c->err, sizeof c->err, DK_SKIP,
			      "perplexity: %lld tokens with -c %d (context %d) is too few",
			      (long long)n, (int)n_ctx, (int)dk_ctx_params(c)->n_ctx);
	int64_t n_chunk = n / n_ctx;
	if (max_chunks >= 0 && max_chunks < n_chunk)
		n_chunk = max_chunks;
	if (n_chunk > INT32_MAX)
		return dk_err(c->err, sizeof c->err, DK_SKIP, "perplexity: too many chunks");
	struct ppl_run r = {.nv = dk_model_info(dk_ctx_model(c))->n_vocab, .cb = cb, .ud = ud,
			    .path = path};
	char tmp[4096];
	enum dk_status st = DK_OK;
	if (path) {
		if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof tmp)
			return dk_err(c->err, sizeof c->err, DK_SKIP, "path too long: '%s'", path);
		r.rec_n = base_rec_n(r.nv);
		r.rec = malloc(r.rec_n * sizeof *r.rec);
		if (!r.rec)
			return dk_err(c->err, sizeof c->err, DK_FATAL, "perplexity: out of memory");
		r.f = fopen(tmp, "wb");
		if (!r.f) {
			free(r.rec);
			return dk_err(c->err, sizeof c->err, DK_FATAL, "cannot write '%s': %s", path,
				      dk_errno_str(errno));
		}
		int32_t h[3] = {n_ctx, r.nv, (int32_t)n_chunk};
		size_t nt = (size_t)n_chunk * (size_t)n_ctx;
		if (fwrite(BASE_MAGIC, 1, 8, r.f) != 8 || fwrite(h, sizeof h, 1, r.f) != 1 ||
		    fwrite(toks, sizeof *toks, nt, r.f) != nt)
			st = dk_err(c->err, sizeof c->err, DK_FATAL, "cannot write '%s': %s", tmp,
				    dk_errno_str(errno));
	}
	if (st == DK_OK)
		st = run_chunks(c, toks, n_ctx, (int32_t)n_chunk, ppl_score, ppl_chunk, &r);
	if (r.f) {
		if (st == DK_SKIP) /* a failed write: the message is set, the file unusable */
			st = DK_FATAL;
		if (fclose(r.f) != 0 && st == DK_OK)
			st = dk_err(c->err, sizeof c->err, DK_FATAL, "cannot write '%s': %s", tmp,
				    dk_errno_str(errno));
		if (st == DK_OK && rename(tmp, path) != 0)
			st = dk_err(c->err, sizeof c->err, DK_FATAL, "cannot write '%s': %s", path,
				    dk_errno_str(errno));
		if (st != DK_OK)
			unlink(tmp);
		free(r.rec);
	}
	if (st != DK_OK)
		return st;
	double mean = r.nll / (double)r.count, mean2 = r.nll2 / (double)r.count;
	out->n_chunk = (int32_t)n_chunk;
	out->count = r.count;
	out->ppl = exp(mean);
	out->err = r.count > 1 ? out->ppl * sqrt((mean2 - mean * mean) / (double)(r.count - 1)) : 0;
	return DK_OK;
}

enum dk_status dk_perplexity(struct dk_ctx *c, const dk_token *toks, int64_t n, int32_t n_ctx,
			     int32_t max_chunks, dk_ppl_progress_fn cb, void *ud,
			     struct dk_ppl_result *out)
{
	return ppl(c, toks, n, n_ctx, max_chunks, NULL, cb, ud, out);
}

enum dk_status dk_perplexity_save_base(struct dk_ctx *c, const dk_token *toks, int64_t n,
				       int32_t n_ctx, int32_t max_chunks, const char *path,
				       dk_ppl_progress_fn cb, void *ud, struct dk_ppl_result *out)
{
	return ppl(c, toks, n, n_ctx, max_chunks, path, cb, ud, out);
}

/* ---- the base file reader ---- */

struct dk_kld_base {
	FILE *f;
	char *path;
	int32_t n_ctx, n_vocab, n_chunk;
	dk_token *toks;  /* n_chunk * n_ctx */
	bool read;       /* records are consumed as they are read: one pass only */
	char err[DK_ERRMSG_MAX];
};

enum dk_status dk_kld_base_open(struct dk_kld_base **out, const char *path)
{
	struct dk_kld_base *b = calloc(1, sizeof *b);
	*out = b;
	if (!b)
		return DK_FATAL;
	b->path = strdup(path);
	b->f = fopen(path, "rb");
	if (!b->path || !b->f)
		return dk_err(b->err, sizeof b->err, DK_FATAL, "cannot open '%s': %s", path,
			      dk_errno_str(errno));
	struct stat sb;
	if (fstat(fileno(b->f), &sb) != 0)
		return dk_err(b->err, sizeof b->err, DK_FATAL, "cannot read '%s': %s", path,
			      dk_errno_str(errno));
	uint64_t size = (uint64_t)sb.st_size;
	char magic[8];
	int32_t h[3];
	if (size < BASE_HEADER || fread(magic, 1, 8, b->f) != 8 || memcmp(magic, BASE_MAGIC, 8) ||
	    fread(h, sizeof h, 1, b->f) != 1)
		return dk_err(b->err, sizeof b->err, DK_SKIP,
			      "'%s' is not a KL-divergence base file (no \"%s\" header)", path,
			      BASE_MAGIC);
	b->n_ctx = h[0];
	b->n_vocab = h[1];
	b->n_chunk = h[2];
	/* the bounds keep the size arithmetic below within 64 bits */
	if (b->n_ctx < 4 || b->n_ctx > (1 << 20) || b->n_vocab < 1 || b->n_vocab > (1 << 22) ||
	    b->n_chunk < 1 || b->n_chunk > (1 << 20))
		return dk_err(b->err, sizeof b->err, DK_SKIP,
			      "'%s': implausible header (n_ctx %d, n_vocab %d, n_chunk %d)", path,
			      (int)b->n_ctx, (int)b->n_vocab, (int)b->n_chunk);
	uint64_t nt = (uint64_t)b->n_chunk * (uint64_t)b->n_ctx;
	uint64_t scored = (uint64_t)(b->n_ctx - 1 - b->n_ctx / 2);
	uint64_t want = BASE_HEADER + 4 * nt +
			(uint64_t)b->n_chunk * scored * base_rec_n(b->n_vocab) * 2;
	if (size != want)
		return dk_err(b->err, sizeof b->err, DK_SKIP,
			      "'%s' is %s: %llu bytes, its header (n_ctx %d, n_vocab %d, n_chunk %d) "
			      "needs %llu",
			      path, size < want ? "truncated" : "longer than its header says",
			      (unsigned long long)size, (int)b->n_ctx, (int)b->n_vocab,
			      (int)b->n_chunk, (unsigned long long)want);
	b->toks = malloc(nt * sizeof *b->toks);
	if (!b->toks)
		return dk_err(b->err, sizeof b->err, DK_FATAL, "'%s': out of memory", path);
	if (fread(b->toks, sizeof *b->toks, nt, b->f) != nt)
		return dk_err(b->err, sizeof b->err, DK_FATAL, "cannot read '%s': %s", path,
			      ferror(b->f) ? dk_errno_str(errno) : "unexpected end of file");
	for (uint64_t i = 0; i < nt; i++)
		if (b->toks[i] < 0 || b->toks[i] >= b->n_vocab)
			return dk_err(b->err, sizeof b->err, DK_SKIP,
				      "'%s': token %llu is %d, outside the vocabulary of %d", path,
				      (unsigned long long)i, (int)b->toks[i], (int)b->n_vocab);
	return DK_OK;
}

const char *dk_kld_base_error(const struct dk_kld_base *b)
{
	return b ? b->err : "out of memory";
}

void dk_kld_base_free(struct dk_kld_base *b)
{
	if (!b)
		return;
	if (b->f)
		fclose(b->f);
	free(b->toks);
	free(b->path);
	free(b);
}

int32_t dk_kld_base_n_ctx(const struct dk_kld_base *b) { return b->n_ctx; }
int32_t dk_kld_base_n_vocab(const struct dk_kld_base *b) { return b->n_vocab; }
int32_t dk_kld_base_n_chunk(const struct dk_kld_base *b) { return b->n_chunk; }

/* ---- KL divergence against a base ---- */

struct kld_run {
	struct dk_kld_base *b;
	struct dk_kld_stats *s;
	int32_t nv;
	uint16_t *rec;
	size_t rec_n;
	dk_kld_progress_fn cb;
	void *ud;
};

static bool kld_score(void *ud, struct dk_ctx *c, const float *l, dk_token next)
{
	struct kld_run *r = ud;
	struct dk_kld_stats *s = r->s;
	if (fread(r->rec, sizeof *r->rec, r->rec_n, r->b->f) != r->rec_n) {
		dk_err(c->err, sizeof c->err, DK_SKIP, "cannot read '%s': %s", r->b->path,
		       ferror(r->b->f) ? dk_errno_str(errno) : "unexpected end of file");
		return false;
	}
	float scale, min_lp;
	memcpy(&scale, r->rec, 4);
	memcpy(&min_lp, r->rec + 2, 4);
	const uint16_t *q = r->rec + 4;
	int32_t nv = r->nv, top = 0, top_base = 0;
	for (int32_t i = 1; i < nv; i++) {
		if (l[i] > l[top])
			top = i;
		if (q[i] > q[top_base])
			top_base = i;
	}
	double sum = 0;
	for (int32_t i = 0; i < nv; i++)
		sum += exp((double)l[i] - l[top]);
	double lse = (double)l[top] + log(sum); /* log p(i) = l[i] - lse */
	double nll = lse - l[next];
	double nll_base = -((double)scale * q[next] + min_lp);
	double kld = 0;
	for (int32_t i = 0; i < nv; i++) {
		double lpb = (double)scale * q[i] + min_lp;
		if (lpb > -BASE_RANGE)
			kld += exp(lpb) * (lpb - ((double)l[i] - lse));
	}
	double dp = exp(-nll) - exp(-nll_base);
	s->sum_nll += nll;
	s->sum_nll2 += nll * nll;
	s->sum_nll_base += nll_base;
	s->sum_nll_base2 += nll_base * nll_base;
	s->sum_nll_nll_base += nll * nll_base;
	s->sum_kld += kld;
	s->sum_kld2 += kld * kld;
	s->sum_dp += dp;
	s->sum_dp2 += dp * dp;
	s->sum_dp4 += dp * dp * dp * dp;
	s->n_same_top += top == top_base;
	s->kld[s->count] = (float)kld;
	s->dp[s->count] = (float)dp;
	s->count++;
	return true;
}

static void kld_chunk(void *ud, int32_t ch)
{
	struct kld_run *r = ud;
	r->s->n_chunk = ch + 1;
	if (r->cb)
		r->cb(r->ud, ch + 1, r->s);
}

enum dk_status dk_kl_divergence(struct dk_ctx *c, struct dk_kld_base *b, int32_t max_chunks,
				dk_kld_progress_fn cb, void *ud, struct dk_kld_stats *out)
{
	memset(out, 0, sizeof *out);
	int32_t nv = dk_model_info(dk_ctx_model(c))->n_vocab;
	if (b->n_vocab != nv)
		return dk_err(c->err, sizeof c->err, DK_SKIP,
			      "'%s' was made with a vocabulary of %d, this model has %d", b->path,
			      (int)b->n_vocab, (int)nv);
	if (b->n_ctx > dk_ctx_params(c)->n_ctx)
		return dk_err(c->err, sizeof c->err, DK_SKIP,
			      "'%s' was made with -c %d, over this context's %d", b->path,
			      (int)b->n_ctx, (int)dk_ctx_params(c)->n_ctx);
	if (b->read)
		return dk_err(c->err, sizeof c->err, DK_SKIP, "'%s' was already read", b->path);
	int32_t n_chunk = b->n_chunk;
	if (max_chunks >= 0 && max_chunks < n_chunk)
		n_chunk = max_chunks;
	size_t n = (size_t)n_chunk * (size_t)(b->n_ctx - 1 - b->n_ctx / 2);
	struct kld_run r = {.b = b, .s = out, .nv = nv, .rec_n = base_rec_n(nv), .cb = cb,
			    .ud = ud};
	r.rec = malloc(r.rec_n * sizeof *r.rec);
	out->kld = malloc((n ? n : 1) * sizeof *out->kld);
	out->dp = malloc((n ? n : 1) * sizeof *out->dp);
	if (!r.rec || !out->kld || !out->dp) {
		free(r.rec);
		dk_kld_stats_free(out);
		return dk_err(c->err, sizeof c->err, DK_FATAL, "kl-divergence: out of memory");
	}
	b->read = true;
	enum dk_status st = run_chunks(c, b->toks, b->n_ctx, n_chunk, kld_score, kld_chunk, &r);
	free(r.rec);
	return st;
}

void dk_kld_stats_free(struct dk_kld_stats *s)
{
	free(s->kld);
	free(s->dp);
	s->kld = s->dp = NULL;
}

/* ---- summary ---- */

const float dk_kld_quantiles[DK_KLD_NQ] = {1.0f, 0.999f, 0.99f, 0.95f, 0.9f, 0.75f, 0.5f,
					   0.25f, 0.1f, 0.05f, 0.01f, 0.001f, 0.0f};

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

static float quantile(const float *v, size_t n, float frac)
{
	if (frac <= 0)
		return v[0];
	if (frac >= 1)
		return v[n - 1];
	float p = frac * (float)(n - 1);
	size_t i = (size_t)p;
	p -= (float)i;
	return (1 - p) * v[i] + p * v[i + 1 < n ? i + 1 : n - 1];
}

/* mean of n values and its standard error, from their sum and sum of squares */
static struct dk_mean_err mean_err(double sum, double sum2, int64_t n)
{
	struct dk_mean_err r = {0, 0};
	if (n < 1)
		return r;
	r.v = sum / (double)n;
	double var = sum2 / (double)n - r.v * r.v;
	r.err = var > 0 && n > 1 ? sqrt(var / (double)(n - 1)) : 0;
	return r;
}

void dk_kld_summarize(struct dk_kld_stats *s, struct dk_kld_summary *o)
{
	memset(o, 0, sizeof *o);
	int64_t n = s->count;
	if (n < 2)
		return;
	qsort(s->kld, (size_t)n, sizeof *s->kld, cmp_float);
	qsort(s->dp, (size_t)n, sizeof *s->dp, cmp_float);
	struct dk_mean_err lp = mean_err(s->sum_nll, s->sum_nll2, n);
	struct dk_mean_err lb = mean_err(s->sum_nll_base, s->sum_nll_base2, n);
	/* covariance of the two mean NLLs */
	double cov = (s->sum_nll_nll_base / (double)n - lp.v * lb.v) / (double)(n - 1);
	o->ppl = (struct dk_mean_err){exp(lp.v), exp(lp.v) * lp.err};
	o->ppl_base = (struct dk_mean_err){exp(lb.v), exp(lb.v) * lb.err};
	o->cor = lp.err > 0 && lb.err > 0 ? cov / (lp.err * lb.err) : 0;
	double rv = lp.err * lp.err + lb.err * lb.err - 2 * cov;
	o->ln_ppl_ratio = (struct dk_mean_err){lp.v - lb.v, rv > 0 ? sqrt(rv) : 0};
	o->ppl_ratio = (struct dk_mean_err){exp(o->ln_ppl_ratio.v),
					    exp(o->ln_ppl_ratio.v) * o->ln_ppl_ratio.err};
	double dv = o->ppl.err * o->ppl.err + o->ppl_base.err * o->ppl_base.err -
		    2 * o->ppl.v * o->ppl_base.v * cov;
	o->ppl_diff = (struct dk_mean_err){o->ppl.v - o->ppl_base.v, dv > 0 ? sqrt(dv) : 0};
	o->kld = mean_err(s->sum_kld, s->sum_kld2, n);
	o->dp = mean_err(s->sum_dp, s->sum_dp2, n);
	for (int i = 0; i < DK_KLD_NQ; i++) {
		o->kld_q[i] = quantile(s->kld, (size_t)n, dk_kld_quantiles[i]);
		o->dp_q[i] = quantile(s->dp, (size_t)n, dk_kld_quantiles[i]);
	}
	struct dk_mean_err ms = mean_err(s->sum_dp2, s->sum_dp4, n);
	double rms = sqrt(ms.v);
	o->dp_rms = (struct dk_mean_err){rms, rms > 0 ? 0.5 / rms * ms.err : 0};
	double f = (double)s->n_same_top / (double)n;
	o->same_top = (struct dk_mean_err){f, sqrt(f * (1 - f) / (double)(n - 1))};
}
