/*
 * The llama-family forward pass.
 *
 * Numerics follow llama.cpp's CPU backend where it matters for matching its
 * outputs: activations are converted to each weight type's dot format
 * before the dot product (fp16 for F16 weights, Q8_0/Q8_1/Q8_K for quantized
 * ones), RMSNorm sums squares in double, RoPE angles are built by repeated
 * multiplication in float, softmax sums in double.  Attention widens F16
 * KV rows and accumulates in float (attn.h says why that is not llama.cpp's
 * flash-attention fp16 accumulator).
 *
 * Every output element is produced by exactly one dot product whose inputs
 * do not depend on the other tokens in the batch, so a sequence's logits
 * are the same whichever sequences share its batch and however many threads
 * run (work is split by rows, never by reduction).
 *
 * This file owns contexts, batches, the forward pass (dk_decode) and its
 * matmul scheduling (row tiles, packed kernels, the BLAS calibration).
 */
#include "docket/model.h"


#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kernels/attn.h"
#include "engine/kernels/gemm.h"
#include "util/err.h"
#include "engine/core/model_impl.h"

/* ---- context ---- */

/* Attention takes a prompt in runs of up to this many tokens: their query
 * rows share each chunk of keys while it is in L1, and a long prompt still
 * makes enough tasks for every thread. */
#define ATT_RUN 32


static void blas_calibrate(struct dk_ctx *c);

/* Every kernel level gives the reference's bits (quant.h, vec.h, attn.h,
 * pack.h), so only OpenBLAS, whose sums follow its own CPU-specific
 * kernels, makes a context's numerics depend on the machine. */
static void set_numerics(struct dk_ctx *c)
{
	snprintf(c->numerics, sizeof c->numerics, "portable");
	for (int t = 0; t < DK_TYPE_COUNT; t++)
		if (c->blas[t]) {
			snprintf(c->numerics, sizeof c->numerics, "kernels=%s,blas",
				 dk_quant_level_name(dk_quant_level()));
			break;
		}
}

struct dk_ctx_params dk_ctx_default_params(void)
{
	const char *env = getenv("DOCKET_PREFILL"); /* the edge: model.h says why here */
	return (struct dk_ctx_params){
		.n_ctx = 2048,
		.n_seq_max = 1,
		.n_batch = 512,
		.n_threads = 0,
		.kv_type = DK_TYPE_F16,
		.prefix_cache = true,
		.deterministic = true,
		.kv_blocks = 0,
		.prefill = !env ? DK_PREFILL_AUTO
			   : !strcmp(env, "int") ? DK_PREFILL_INT
			   : !strcmp(env, "blas") ? DK_PREFILL_BLAS
						  : DK_PREFILL_AUTO,
	};
}

static size_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	size_t kb = 0;
	if (f) {
		char line[256];
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1)
				break;
		fclose(f);
	}
	return kb * 1024;
}

static void *xalloc(size_t n, size_t *total)
{
	*total += n;
	return calloc(1, n ? n : 1);
}

enum dk_status dk_ctx_new(struct dk_ctx **out, struct dk_model *m, const struct dk_ctx_params *pp)
{
	struct dk_ctx *c = calloc(1, sizeof *c);
	*out = c;
	if (!c)
		return DK_FATAL;
	c->m = m;
	c->p = pp ? *pp : dk_ctx_default_params();
	struct dk_ctx_params *p = &c->p;
	const struct dk_model_info *hp = &m->info;
	if (p->n_ctx <= 0)
		p->n_ctx = hp->n_ctx_train < 2048 ? hp->n_ctx_train : 2048;
	if (p->n_seq_max <= 0)
		p->n_seq_max = 1;
	if (p->n_batch <= 0)
		p->n_batch = 512;
	if (p->n_threads <= 0)
		p->n_threads = dk_physical_cores();
	if (p->kv_type != DK_TYPE_F16 && p->kv_type != DK_TYPE_F32)
		return dk_err(c->err, sizeof c->err, DK_FATAL, "kv cache type must be f16 or f32");
	if (p->n_ctx > hp->n_ctx_train)
		return dk_err(c->err, sizeof c->err, DK_FATAL,
			      "context of %d tokens exceeds the model's trained context (%d)", p->n_ctx,
			      hp->n_ctx_train);

	c->kv_dim = hp->n_head_kv * hp->head_dim;
	c->kv_esize = p->kv_type == DK_TYPE_F16 ? 2 : 4;
	c->kv_layer_bytes = 2 * (size_t)DK_KV_BLOCK * (size_t)c->kv_dim * c->kv_esize;
	size_t block_bytes = c->kv_layer_bytes * (size_t)hp->n_layer;
	int32_t per_seq = (p->n_ctx + DK_KV_BLOCK - 1) / DK_KV_BLOCK;
	if (p->kv_blocks <= 0)
		p->kv_blocks = per_seq * p->n_seq_max;
	size_t kv_bytes = (size_t)p->kv_blocks * block_bytes;

	int64_t E = hp->n_embd, QD = (int64_t)hp->n_head * hp->head_dim;
	int64_t FF = hp->n_ff > hp->n_ff_exp ? hp->n_ff : hp->n_ff_exp;
	int64_t NB = p->n_batch, V = hp->n_vocab, NE = hp->n_expert, K = hp->n_expert_used;
	int64_t widest = E > FF ? E : FF;
	widest = widest > QD ? widest : QD;
	/* activation rows in the widest dot format: at most 4 bytes/element */
	c->qx_bytes = (size_t)(widest * 4 + 1024);
	int32_t grp = hp->n_head / hp->n_head_kv;
	if (grp > DK_ATTN_MAX_GROUP)
		grp = DK_ATTN_MAX_GROUP;
	c->att_stride = (size_t)grp * ((size_t)p->n_ctx + 4 * (size_t)hp->head_dim) + 64;
	size_t multi = DK_ATTN_MULTI_SCRATCH(ATT_RUN, grp, hp->head_dim, p->n_ctx) + 64;
	if (multi > c->att_stride)
		c->att_stride = multi;
	size_t scratch = 0;
	size_t avail = mem_available();
	size_t est = kv_bytes + (size_t)NB * (size_t)(4 * E + 2 * QD + 2 * c->kv_dim + 2 * FF) * 4 +
		     (size_t)NB * c->qx_bytes + (size_t)NB * (size_t)V * 4 +
		     (size_t)NB * (size_t)(NE + 2 * K + (K + 2) * E) * 4;
	if (avail && est > avail / 10 * 9)
		return dk_err(c->err, sizeof c->err, DK_FATAL,
			      "cannot allocate the context: %zu MiB asked (kv cache %zu MiB for %d "
			      "sequences x %d tokens, logits and scratch %zu MiB), %zu MiB available; "
			      "lower the context, the parallel sequences or the batch size",
			      est >> 20, kv_bytes >> 20, p->n_seq_max, p->n_ctx, (est - kv_bytes) >> 20,
			      avail >> 20);

	c->kv = dk_kv_new(p->kv_blocks, block_bytes, p->n_seq_max, p->n_ctx, p->prefix_cache);
	c->x = xalloc((size_t)(NB * E) * 4, &scratch);
	c->xb = xalloc((size_t)(NB * (E > QD ? E : QD)) * 4, &scratch);
	c->xb2 = xalloc((size_t)(NB * E) * 4, &scratch);
	c->q = xalloc((size_t)(NB * QD) * 4, &scratch);
	c->k = xalloc((size_t)(NB * c->kv_dim) * 4, &scratch);
	c->v = xalloc((size_t)(NB * c->kv_dim) * 4, &scratch);
	c->att = xalloc((size_t)(NB * QD) * 4, &scratch);
	c->hb = xalloc((size_t)(NB * FF) * 4, &scratch);
	c->hb2 = xalloc((size_t)(NB * FF) * 4, &scratch);
	c->qx = xalloc((size_t)NB * c->qx_bytes, &scratch);
	c->rope = xalloc((size_t)(NB * hp->n_rot) * 4, &scratch);
	if (hp->n_swa > 0)
		c->rope_swa = xalloc((size_t)(NB * hp->n_rot) * 4, &scratch);
	c->logits = xalloc((size_t)(NB * V) * 4, &scratch);
	c->out_row = xalloc((size_t)NB * 4, &scratch);
	c->out_idx = xalloc((size_t)NB * 4, &scratch);
	c->seq_new = xalloc((size_t)p->n_seq_max * 4, &scratch);
	c->att_scratch = xalloc(c->att_stride * 4 * (size_t)p->n_threads, &scratch);
	c->att_blocks_stride = per_seq + 1;
	c->att_blocks = xalloc((size_t)c->att_blocks_stride * sizeof(uint8_t *) * (size_t)p->n_threads,
			       &scratch);
	if (c->kv_esize == 2) {
		c->att_wide_stride = (size_t)per_seq * DK_KV_BLOCK * 2 * (size_t)hp->head_dim + 16;
		c->att_wide = xalloc(c->att_wide_stride * 4 * (size_t)p->n_threads, &scratch);
	}
	c->att_runs = xalloc(((size_t)NB + 1) * 4, &scratch);
	if (NE) {
		c->moe_logits = xalloc((size_t)(NB * NE) * 4, &scratch);
		c->moe_sel = xalloc((size_t)(NB * K) * 4, &scratch);
		c->moe_w = xalloc((size_t)(NB * K) * 4, &scratch);
		c->moe_out = xalloc((size_t)(NB * K * E) * 4, &scratch);
		c->moe_rows = xalloc((size_t)(NB * K) * 4, &scratch);
		c->xe = xalloc((size_t)(NB * E) * 4, &scratch);
		c->ye = xalloc((size_t)(NB * E) * 4, &scratch);
	}
	/* frequency factors: the file's own, else the short or long set by the
	 * context this context holds (as llama.cpp picks them) */
	const struct dk_gguf_tensor *ff = m->rope_freqs;
	if (!ff)
		ff = p->n_ctx > hp->n_ctx_orig && m->rope_long ? m->rope_long : m->rope_short;
	c->rope_ff = ff ? ff->data : NULL;
	c->swiglu = m->arch->gelu ? dk_vec_geglu_ref : dk_vec_swiglu_kernel();
	c->rope_fn = dk_vec_rope_kernel();
	c->rmsnorm = dk_vec_rmsnorm_kernel();
	c->pool = dk_pool_new(p->n_threads);
	if ((c->kv_esize == 2 && !c->att_wide) || !c->att_runs || !c->kv || !c->x || !c->xb || !c->xb2 || !c->q || !c->k || !c->v || !c->att || !c->hb ||
	    !c->hb2 || !c->qx || !c->rope || (hp->n_swa > 0 && !c->rope_swa) || !c->logits ||
	    !c->out_row || !c->out_idx || !c->seq_new || !c->att_scratch || !c->att_blocks || !c->pool ||
	    (NE && (!c->moe_logits || !c->moe_sel || !c->moe_w || !c->moe_out || !c->moe_rows ||
		    !c->xe || !c->ye)))
		return dk_err(c->err, sizeof c->err, DK_FATAL,
			      "cannot allocate the context (%zu MiB kv cache, %zu MiB scratch): %s",
			      kv_bytes >> 20, scratch >> 20, strerror(ENOMEM));
	if (!p->deterministic) {
		/* products are split over the pool's threads: one OpenBLAS thread each */
		openblas_set_num_threads(1);
		blas_calibrate(c);
	}
	set_numerics(c);
	return DK_OK;
}

void dk_ctx_free(struct dk_ctx *c)
{
	if (!c)
		return;
	dk_pool_free(c->pool);
	dk_kv_free(c->kv);
	free(c->x); free(c->xb); free(c->xb2); free(c->q); free(c->k); free(c->v);
	free(c->att); free(c->hb); free(c->hb2); free(c->qx); free(c->rope);
	free(c->rope_swa);
	free(c->logits); free(c->out_row); free(c->out_idx); free(c->seq_new);
	free(c->att_scratch);
	free(c->att_blocks);
	free(c->att_wide);
	free(c->att_runs);
	free(c->moe_logits); free(c->moe_sel); free(c->moe_w); free(c->moe_out);
	free(c->moe_rows); free(c->xe); free(c->ye);
	free(c);
}

const char *dk_ctx_error(const struct dk_ctx *c) { return c ? c->err : "out of memory"; }
const struct dk_ctx_params *dk_ctx_params(const struct dk_ctx *c) { return &c->p; }
struct dk_model *dk_ctx_model(const struct dk_ctx *c) { return c->m; }
const char *dk_ctx_numerics(const struct dk_ctx *c) { return c->numerics; }

/* ---- batches ---- */

struct dk_batch *dk_batch_new(int32_t cap)
{
	struct dk_batch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->cap = cap > 0 ? cap : 1;
	b->token = calloc((size_t)b->cap, sizeof *b->token);
	b->pos = calloc((size_t)b->cap, sizeof *b->pos);
	b->seq = calloc((size_t)b->cap, sizeof *b->seq);
	b->logits = calloc((size_t)b->cap, sizeof *b->logits);
	if (!b->token || !b->pos || !b->seq || !b->logits) {
		dk_batch_free(b);
		return NULL;
	}
	return b;
}

void dk_batch_free(struct dk_batch *b)
{
	if (!b)
		return;
	free(b->token); free(b->pos); free(b->seq); free(b->logits);
	free(b);
}

void dk_batch_clear(struct dk_batch *b) { b->n_tokens = 0; }

int dk_batch_add(struct dk_batch *b, dk_token t, int32_t pos, int32_t seq, bool logits)
{
	if (b->n_tokens >= b->cap)
		return -1;
	int32_t i = b->n_tokens++;
	b->token[i] = t;
	b->pos[i] = pos;
	b->seq[i] = seq;
	b->logits[i] = logits;
	return 0;
}

/* ---- kernels of the forward pass ---- */

/* Runs a pass split by token (or element) over n floats of work: on the
 * caller alone when it is small, because handing a few thousand floats to
 * the other threads costs more than the work (a single-token decode step
 * would otherwise wait on six such hand-offs per layer).  Every pass here
 * gives each row the same arithmetic whatever thread runs it. */
#define SMALL_PASS 8192

static void run_pass(struct dk_ctx *c, dk_pool_fn fn, void *ctx, int64_t n)
{
	if (n <= SMALL_PASS)
		fn(ctx, 0, 1);
	else
		dk_pool_run(c->pool, fn, ctx);
}

/* Deterministic mode off lets a prompt's products take dequantise +
 * OpenBLAS SGEMM where that is faster: on CPUs without the packed int8
 * kernels, and for F16/F32 weights (bench_gemm: F16 at 512 tokens, 89-99
 * against 58-70 GFLOP/s per core here).  Its sums are ordered by OpenBLAS's
 * blocking, which depends on the number of tokens and rows in the call, so
 * a token's logits then depend on its batch and the thread count, and a
 * prompt's differ slightly from its tokens decoded one at a time. */
#define BLAS_MIN_T DK_BLAS_MIN_TOKENS

struct mm {
	const struct dk_qtraits *tr, *dt;
	const uint8_t *w;
	size_t wrow;            /* bytes per weight row */
	int64_t ncols, nrows;
	const float *x;         /* T rows of ncols floats, ldx apart */
	int64_t ldx;
	const uint8_t *xq;      /* converted activations */
	size_t xrow;
	int32_t T;
	float *y;               /* y[t*ldy + r] */
	int64_t ldy;
	const struct dk_pack *pk; /* packed weights (pack.h), or NULL */
	enum dk_ttype type;
	bool blas;              /* dequantise + OpenBLAS on the float rows x */
};

static void mm_convert(void *arg, int ith, int nth)
{
	struct mm *j = arg;
	for (int32_t t = ith; t < j->T; t += nth)
		j->dt->from_float(j->x + t * j->ldx, (uint8_t *)j->xq + (size_t)t * j->xrow, j->ncols);
}

/* Column tile: activations of this many tokens stay in L1/L2 while each
 * weight row streams through once per tile. */
#define MM_TILE 32

static void mm_range(const struct mm *j, int64_t r0, int64_t r1)
{
	const struct dk_qtraits *tr = j->tr;
	if (r1 <= r0)
		return;
	if (j->blas) {
		size_t nf = dk_gemm_blas_scratch(j->ncols);
		float *sc = dk_gemm_scratch(nf * sizeof(float));
		if (sc && dk_gemm_blas(j->type, j->ncols, j->w + (size_t)r0 * j->wrow, j->wrow, r1 - r0,
				       j->x, j->ldx, j->T, j->y + r0, j->ldy, sc, nf) == DK_OK)
			return;
		/* out of memory: the integer kernels need no scratch of this size */
	}
	if (j->pk) {
		/* r0 is a multiple of the group size (mm_split) */
		dk_pack_gemm(j->pk, r0 / DK_PACK_ROWS, (r1 + DK_PACK_ROWS - 1) / DK_PACK_ROWS, j->xq,
			     j->xrow, j->T, j->y, j->ldy);
		return;
	}
	/* vec_dot_n gives each column exactly what vec_dot gives it, so using it
	 * for batches does not make results depend on batch mates */
	bool multi = tr->vec_dot_n && j->T > 1;
	for (int32_t t0 = 0; t0 < j->T; t0 += MM_TILE) {
		int32_t nt = j->T - t0 < MM_TILE ? j->T - t0 : MM_TILE;
		const uint8_t *xt = j->xq + (size_t)t0 * j->xrow;
		float *yt = j->y + t0 * j->ldy;
		for (int64_t r = r0; r < r1; r++) {
			const uint8_t *wr = j->w + (size_t)r * j->wrow;
			if (multi) {
				tr->vec_dot_n(j->ncols, yt + r, (size_t)j->ldy, wr, xt, j->xrow, nt);
			} else {
				for (int32_t t = 0; t < nt; t++)
					tr->vec_dot(j->ncols, yt + t * j->ldy + r, wr,
						    xt + (size_t)t * j->xrow);
			}
		}
	}
}

static int64_t mm_units(const struct mm *j)
{
	return (j->nrows + DK_PACK_ROWS - 1) / DK_PACK_ROWS;
}

/* Thread ith's share of u units of rows: whole groups of DK_PACK_ROWS, so
 * that a packed group is never split (and every kernel sees the same row
 * ranges whatever the thread count divides them into).  Fixed contiguous
 * shares: handing out smaller chunks from a shared counter was measured
 * slower for decode (each chunk restarts the hardware prefetcher's stream)
 * and no better with another process on one core.  Nor did stealing pay:
 * owners taking their shares front to back in shrinking pieces, a thread
 * done early taking half of what is left of another's from the back, cut
 * the wait for the slower thread from 2% to 0.7% of a batch-16 step, but
 * the products themselves took 4% longer (alternated: 0.993x, 3/16). */
static void mm_split(int64_t units, int ith, int nth, int64_t *a, int64_t *z)
{
	*a = units * ith / nth * DK_PACK_ROWS;
	*z = units * (ith + 1) / nth * DK_PACK_ROWS;
}

/* Several products of one input (or one alone), as one parallel loop over
 * their rows laid end to end: one hand-off to the threads instead of one
 * per matrix, and small matrices (k, v) share the threads with the big one. */
struct mm_multi {
	struct mm *m;
	int n;
	int64_t units; /* groups of rows, all matrices together */
};

static void mm_multi_rows(void *arg, int ith, int nth)
{
	struct mm_multi *u = arg;
	int64_t a, z, base = 0;
	mm_split(u->units, ith, nth, &a, &z);
	for (int i = 0; i < u->n && base < z; i++) {
		/* matrix i covers rows [base, base + units*16) of the joint range */
		int64_t span = mm_units(&u->m[i]) * DK_PACK_ROWS;
		int64_t lo = a > base ? a - base : 0, hi = z - base < span ? z - base : span;
		if (lo < span)
			mm_range(&u->m[i], lo, hi < u->m[i].nrows ? hi : u->m[i].nrows);
		base += span;
	}
}

static void mm_setup(const struct dk_ctx *c, struct mm *j, const struct dk_gguf_tensor *W, const float *x, int64_t ldx,
		     int32_t T, float *y, int64_t ldy)
{
	memset(j, 0, sizeof *j);
	j->tr = dk_quant_traits(W->type);
	j->dt = dk_quant_traits(j->tr->dot_type);
	j->w = W->data;
	j->ncols = W->ne[0];
	j->nrows = W->ne[1] * W->ne[2] * W->ne[3];
	j->wrow = dk_ttype_row_bytes(W->type, j->ncols);
	j->x = x;
	j->ldx = ldx;
	j->T = T;
	j->y = y;
	j->ldy = ldy;
	j->pk = dk_model_pack_of(c->m, W);
	j->type = W->type;
	j->blas = T >= BLAS_MIN_T && W->type < DK_TYPE_COUNT && c->blas[W->type];
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Times both ways of a T = BLAS_MIN_T product for each weight type of the
 * model, one thread, on up to 256 rows of a real matrix of that type, and
 * marks the types where OpenBLAS is at least 5% faster.  Runs once, at
 * context creation, only with deterministic mode off.  params.prefill
 * (DOCKET_PREFILL=blas|int, model.h) skips the timing and takes that path
 * for every type (tests). */
static void blas_calibrate(struct dk_ctx *c)
{
	const struct dk_model *m = c->m;
	if (c->p.prefill == DK_PREFILL_INT)
		return;
	const bool force = c->p.prefill == DK_PREFILL_BLAS;
	const struct dk_gguf_tensor *cand[8];
	int nc = 0;
	if (m->info.n_layer > 0) {
		const struct layer *L = &m->layers[0];
		const struct dk_gguf_tensor *w[] = {L->wq, L->wk, L->wv, L->wo, L->wg, L->wu, L->wd};
		for (size_t i = 0; i < sizeof w / sizeof *w; i++)
			cand[nc++] = w[i];
	}
	cand[nc++] = m->output;
	bool seen[DK_TYPE_COUNT] = {0};
	for (int i = 0; i < nc; i++) {
		const struct dk_gguf_tensor *W = cand[i];
		if (!W || W->type >= DK_TYPE_COUNT || seen[W->type] || !dk_quant_traits(W->type)->to_float)
			continue;
		seen[W->type] = true;
		if (force) {
			c->blas[W->type] = true;
			continue;
		}
		const int32_t T = BLAS_MIN_T;
		struct mm j;
		int64_t ncols = W->ne[0], rows = W->ne[1] < 256 ? W->ne[1] : 256;
		const struct dk_qtraits *dt = dk_quant_traits(dk_quant_traits(W->type)->dot_type);
		size_t xrow = dk_ttype_row_bytes(dt->type, ncols);
		float *x = malloc((size_t)T * (size_t)ncols * sizeof *x);
		float *y = malloc((size_t)T * (size_t)rows * sizeof *y);
		uint8_t *xq = malloc((size_t)T * xrow);
		if (!x || !y || !xq) {
			free(x), free(y), free(xq);
			return;
		}
		for (int64_t k = 0; k < (int64_t)T * ncols; k++)
			x[k] = (float)((k * 7919) % 2001 - 1000) / 1000.0f;
		mm_setup(c, &j, W, x, ncols, T, y, rows);
		j.nrows = rows;
		j.xq = xq;
		j.xrow = xrow;
		double best_int = 1e30, best_blas = 1e30;
		for (int rep = 0; rep < 3; rep++) {
			double t0 = now_s();
			if (dt->type != DK_TYPE_F32)
				for (int32_t t = 0; t < T; t++)
					dt->from_float(x + t * ncols, xq + (size_t)t * xrow, ncols);
			else
				j.xq = (const uint8_t *)x, j.xrow = (size_t)ncols * 4;
			j.blas = false;
			mm_range(&j, 0, rows);
			double t1 = now_s();
			j.blas = true;
			mm_range(&j, 0, rows);
			double t2 = now_s();
			if (t1 - t0 < best_int)
				best_int = t1 - t0;
			if (t2 - t1 < best_blas)
				best_blas = t2 - t1;
		}
		c->blas[W->type] = best_blas < 0.95 * best_int;
		free(x), free(y), free(xq);
	}
}

/* Points j at activations in its dot format, converting x unless c->qx
 * already holds it. */
static void mm_input(struct dk_ctx *c, struct mm *j)
{
	if (j->tr->dot_type == DK_TYPE_F32) {
		j->xq = (const uint8_t *)j->x;
		j->xrow = (size_t)j->ldx * 4;
		return;
	}
	j->xq = c->qx;
	j->xrow = dk_ttype_row_bytes(j->tr->dot_type, j->ncols);
	if (c->qx_src != j->x || c->qx_type != j->tr->dot_type || c->qx_T != j->T) {
		run_pass(c, mm_convert, j, (int64_t)j->T * j->ncols);
		c->qx_src = j->x;
		c->qx_type = j->tr->dot_type;
		c->qx_T = j->T;
	}
}

/* y_i = W_i x for n matrices of the same input; one parallel loop when they
 * read the same activation format, else one each. */
static void matmul_n(struct dk_ctx *c, int n, const struct dk_gguf_tensor *const *W, const float *x,
		     int64_t ldx, int32_t T, float *const *y, const int64_t *ldy)
{
	struct mm m[3];
	bool same = true;
	for (int i = 0; i < n; i++) {
		mm_setup(c, &m[i], W[i], x, ldx, T, y[i], ldy[i]);
		same &= m[i].tr->dot_type == m[0].tr->dot_type;
	}
	if (!same) {
		for (int i = 0; i < n; i++) {
			struct mm_multi u = {.m = &m[i], .n = 1, .units = mm_units(&m[i])};
			mm_input(c, &m[i]);
			dk_pool_run(c->pool, mm_multi_rows, &u);
		}
		return;
	}
	struct mm_multi u = {.m = m, .n = n};
	for (int i = 0; i < n; i++)
		u.units += mm_units(&m[i]);
	mm_input(c, &m[0]);
	for (int i = 1; i < n; i++) {
		m[i].xq = m[0].xq;
		m[i].xrow = m[0].xrow;
	}
	dk_pool_run(c->pool, mm_multi_rows, &u);
}

/* y[t][r] = W[r] . x[t] for all rows r of W and T tokens. */
static void matmul(struct dk_ctx *c, const struct dk_gguf_tensor *W, const float *x, int64_t ldx,
		   int32_t T, float *y, int64_t ldy)
{
	float *const yy[1] = {y};
	const int64_t ll[1] = {ldy};
	matmul_n(c, 1, &W, x, ldx, T, yy, ll);
}

static void add_bias(float *y, const struct dk_gguf_tensor *b, int32_t T, int64_t n)
{
	if (!b)
		return;
	const float *bb = b->data;
	for (int32_t t = 0; t < T; t++)
		for (int64_t i = 0; i < n; i++)
			y[t * n + i] += bb[i];
}

/* cos/sin per token and rotary pair, angles built like ggml's rope cache;
 * the functions are vec.h's, not libm's, so the table is the same on
 * every machine */
static void rope_table(struct dk_ctx *c, float *tab, float base, float scale)
{
	const struct dk_model_info *hp = &c->m->info;
	const float theta_scale = dk_vec_pow_ref(base, -2.0f / (float)hp->n_rot);
	const float *ff = c->rope_ff, ms = hp->rope_attn_factor;
	for (int32_t t = 0; t < c->b->n_tokens; t++) {
		float *cs = tab + (size_t)t * hp->n_rot;
		float theta = (float)c->b->pos[t];
		for (int32_t i0 = 0; i0 < hp->n_rot; i0 += 2) {
			float f = ff ? ff[i0 / 2] : 1.0f;
			float th = scale * (theta / f);
			dk_vec_sincos_ref(th, &cs[i0 + 1], &cs[i0]);
			if (ms != 1.0f) {
				cs[i0] *= ms;
				cs[i0 + 1] *= ms;
			}
			theta *= theta_scale;
		}
	}
}

/* the batch's tables: the global layers' and, with a sliding window, the
 * windowed layers' own */
static void rope_tables(struct dk_ctx *c)
{
	const struct dk_model_info *hp = &c->m->info;
	rope_table(c, c->rope, hp->rope_freq_base, hp->rope_freq_scale);
	if (c->rope_swa)
		rope_table(c, c->rope_swa, hp->rope_freq_base_swa, hp->rope_freq_scale_swa);
}

static void rope_apply(const struct dk_ctx *c, float *v, int32_t nheads, const float *cs)
{
	const struct dk_model_info *hp = &c->m->info;
	c->rope_fn(v, nheads, hp->head_dim, hp->n_rot, cs, c->m->arch->neox);
}

/* A block holds, per layer, the keys then the values of its DK_KV_BLOCK
 * positions.  Keys are transposed, a tile per KV head (attn.h): element d
 * of slot j's head-h key at ((h * head_dim + d) * DK_KV_BLOCK + j) * esize
 * from kv_k; values are rows of kv_dim elements, slot j's at kv_v. */
static inline uint8_t *kv_k(const struct dk_ctx *c, uint8_t *blk, int layer)
{
	return blk + (size_t)layer * c->kv_layer_bytes;
}

static inline uint8_t *kv_v(const struct dk_ctx *c, uint8_t *blk, int layer, int slot)
{
	return blk + (size_t)layer * c->kv_layer_bytes + (size_t)DK_KV_BLOCK * c->kv_dim * c->kv_esize +
	       (size_t)slot * c->kv_dim * c->kv_esize;
}

/* Rope token t's query heads of KV heads [h0, h1) and those key heads,
 * then store their K/V rows in the cache. */
static void qkv_prep(struct dk_ctx *c, int32_t t, int32_t h0, int32_t h1)
{
	const struct dk_model_info *hp = &c->m->info;
	int32_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
	int32_t QD = hp->n_head * hd, KD = c->kv_dim;
	const struct layer *L = &c->m->layers[c->layer];
	const float *cs = (L->swa ? c->rope_swa : c->rope) + (size_t)t * hp->n_rot;
	float *q = c->q + (size_t)t * QD, *k = c->k + (size_t)t * KD, *v = c->v + (size_t)t * KD;
	if (L->q_norm) {
		for (int32_t h = h0 * group; h < h1 * group; h++)
			c->rmsnorm(q + (size_t)h * hd, q + (size_t)h * hd, L->q_norm->data, hd,
				   hp->norm_eps);
		for (int32_t h = h0; h < h1; h++)
			c->rmsnorm(k + (size_t)h * hd, k + (size_t)h * hd, L->k_norm->data, hd,
				   hp->norm_eps);
	}
	rope_apply(c, q + (size_t)h0 * group * hd, (h1 - h0) * group, cs);
	rope_apply(c, k + (size_t)h0 * hd, h1 - h0, cs);
	int32_t s = c->b->seq[t], pos = c->b->pos[t];
	uint8_t *blk = dk_kv_block_at(c->kv, s, pos);
	const int slot = pos % DK_KV_BLOCK;
	size_t off = (size_t)h0 * hd * c->kv_esize, n = (size_t)(h1 - h0) * hd;
	uint8_t *kt = kv_k(c, blk, c->layer);
	uint8_t *vd = kv_v(c, blk, c->layer, slot) + off;
	if (c->kv_esize == 2) {
		/* the F16 level's converter: the reference's bytes, vectorised */
		const dk_from_float_fn to_f16 = dk_quant_traits(DK_TYPE_F16)->from_float;
		uint16_t *kh = (uint16_t *)kt + slot, tmp[64];
		for (size_t e0 = (size_t)h0 * hd; e0 < (size_t)h1 * hd; e0 += 64) {
			size_t ne = (size_t)h1 * hd - e0 < 64 ? (size_t)h1 * hd - e0 : 64;
			to_f16(k + e0, tmp, (int64_t)ne);
			for (size_t i = 0; i < ne; i++)
				kh[(e0 + i) * DK_KV_BLOCK] = tmp[i];
		}
		to_f16(v + (size_t)h0 * hd, vd, (int64_t)n);
	} else {
		float *kh = (float *)kt + slot;
		for (size_t e = (size_t)h0 * hd; e < (size_t)h1 * hd; e++)
			kh[e * DK_KV_BLOCK] = k[e];
		memcpy(vd, v + (size_t)h0 * hd, n * 4);
	}
}

/* QKV prep for one layer, token by token (when attention tasks cannot do
 * it themselves: c->att_store). */
static void qkv_store(void *arg, int ith, int nth)
{
	struct dk_ctx *c = arg;
	for (int32_t t = ith; t < c->b->n_tokens; t += nth)
		qkv_prep(c, t, 0, c->m->info.n_head_kv);
}

/* Runs of the batch for attention: consecutive tokens of one sequence at
 * consecutive positions (a prompt), at most ATT_RUN long (defined above). */

static void att_runs(struct dk_ctx *c)
{
	const struct dk_batch *b = c->b;
	int32_t n = 0;
	for (int32_t i = 0; i < b->n_tokens; i++)
		if (i == 0 || b->seq[i] != b->seq[i - 1] || b->pos[i] != b->pos[i - 1] + 1 ||
		    i - c->att_runs[n - 1] >= ATT_RUN)
			c->att_runs[n++] = i;
	c->att_runs[n] = b->n_tokens;
	c->n_runs = n;
	/* a task may rope and store its run's rows itself when no other run of
	 * the batch needs them: every run is all of its sequence's tokens */
	c->att_store = true;
	for (int32_t r = 0; r < n; r++)
		if (c->att_runs[r + 1] - c->att_runs[r] != c->seq_new[b->seq[c->att_runs[r]]])
			c->att_store = false;
}

/* A run needs its sequence's F16 keys and values once per query head and
 * token: from this many tokens on, widening them to float once and running
 * the float kernel over the copy is cheaper.  The float kernel on widened
 * rows computes exactly what the F16 kernel computes on the rows (attn.h),
 * so which path a token takes never shows in its result. */
#define ATT_WIDEN_MIN 8

/* Attention of run r's tokens for KV head kvh and its query heads. */
static void attend(struct dk_ctx *c, int ith, int32_t r, int32_t kvh)
{
	const struct dk_model_info *hp = &c->m->info;
	const struct dk_batch *b = c->b;
	int32_t nh = hp->n_head, hd = hp->head_dim, QD = nh * hd, nkv = hp->n_head_kv;
	int32_t group = nh / nkv;
	int32_t per = group < DK_ATTN_MAX_GROUP ? group : DK_ATTN_MAX_GROUP;
	float *scratch = c->att_scratch + c->att_stride * (size_t)ith;
	uint8_t **blocks = c->att_blocks + (size_t)c->att_blocks_stride * (size_t)ith;
	float *wide = c->att_wide ? c->att_wide + c->att_wide_stride * (size_t)ith : NULL;
	size_t row_bytes = (size_t)c->kv_dim * c->kv_esize;
	size_t kbase = (size_t)c->layer * c->kv_layer_bytes;
	size_t vbase = kbase + (size_t)DK_KV_BLOCK * row_bytes;
	const size_t wblock = (size_t)2 * DK_KV_BLOCK * (size_t)hd; /* floats */
	int32_t i0 = c->att_runs[r], i1 = c->att_runs[r + 1], s = b->seq[i0];
	/* a windowed layer leaves out the blocks wholly before the run's first
	 * window, and each token the positions before its own (attn.h: the
	 * same bits as with every block) */
	const int32_t win = c->m->layers[c->layer].swa ? hp->n_swa : 0;
	const int32_t lo0 = win && b->pos[i0] + 1 > win ? b->pos[i0] + 1 - win : 0;
	const int32_t b0 = lo0 / DK_KV_BLOCK, base = b0 * DK_KV_BLOCK;
	int32_t nkeys = b->pos[i1 - 1] + 1 - base;
	struct dk_attn_args args = {.hd = hd, .scale = hp->attn_scale,
				    .scratch = scratch, .blocks = blocks};
	dk_attn_multi_fn fn;
	size_t head = (size_t)kvh * hd * c->kv_esize, ktile = head * DK_KV_BLOCK;
	if (wide && i1 - i0 >= ATT_WIDEN_MIN) {
		const dk_to_float_fn widen = dk_quant_traits(DK_TYPE_F16)->to_float;
		for (int32_t bi = 0; bi * DK_KV_BLOCK < nkeys; bi++) {
			const uint8_t *src = dk_kv_seq_block(c->kv, s, b0 + bi);
			float *dst = wide + (size_t)bi * wblock;
			int32_t rows = nkeys - bi * DK_KV_BLOCK < DK_KV_BLOCK ? nkeys - bi * DK_KV_BLOCK
									       : DK_KV_BLOCK;
			/* the key tile whole (slots past the end included: kernels
			 * never let them reach a result), the value rows in use */
			widen(src + kbase + ktile, dst, (int64_t)hd * DK_KV_BLOCK);
			for (int32_t j = 0; j < rows; j++)
				widen(src + vbase + (size_t)j * row_bytes + head,
				      dst + (size_t)(DK_KV_BLOCK + j) * hd, hd);
			blocks[bi] = (uint8_t *)dst;
		}
		args.k_off = 0;
		args.v_off = (size_t)DK_KV_BLOCK * hd * 4;
		args.row_bytes = (size_t)hd * 4;
		fn = dk_attn_multi_kernel(4, hd);
	} else {
		for (int32_t bi = 0; bi * DK_KV_BLOCK < nkeys; bi++)
			blocks[bi] = dk_kv_seq_block(c->kv, s, b0 + bi);
		args.k_off = kbase + ktile;
		args.v_off = vbase + head;
		args.row_bytes = row_bytes;
		fn = dk_attn_multi_kernel(c->kv_esize, hd);
	}
	int32_t nk[ATT_RUN], lo[ATT_RUN];
	for (int32_t t = i0; t < i1; t++) {
		nk[t - i0] = b->pos[t] + 1 - base;
		lo[t - i0] = win && b->pos[t] + 1 > win ? b->pos[t] + 1 - win - base : 0;
	}
	for (int32_t h0 = kvh * group; h0 < (kvh + 1) * group; h0 += per) {
		args.nq = (kvh + 1) * group - h0 < per ? (kvh + 1) * group - h0 : per;
		args.q = c->q + (size_t)i0 * QD + (size_t)h0 * hd;
		args.out = c->att + (size_t)i0 * QD + (size_t)h0 * hd;
		if (i1 - i0 == 1 && args.nq == 1) {
			args.n = nk[0];
			args.lo = lo[0];
			dk_attn_kernel(c->kv_esize, hd)(&args);
		} else {
			struct dk_attn_multi_args ma = {.a = args, .nt = i1 - i0, .nk = nk, .lo = lo,
							.q_stride = (size_t)QD, .out_stride = (size_t)QD};
			fn(&ma);
		}
	}
}

/* Attention for every (token, head) of the batch; each token sees its own
 * sequence's positions 0..pos only (causal, and sequences never mix).
 * One task = one run x one KV head with all its query heads, so K/V rows
 * are read (and widened) once for all of them; with many runs (a batch of
 * decodes) one task takes all KV heads of a run, so that a thread reads a
 * sequence's rows as one forward stream instead of every third 128 bytes
 * while the other thread reads the rest (batch 16, +2-3%).  Tasks are
 * taken from a shared counter, longest-context runs first, because under
 * a causal mask their cost grows with position and fixed shares would
 * leave one thread with most of it. *
 * A task also ropes and stores its own rows when no other run needs them
 * (c->att_store), and converts its output heads for the output projection
 * (c->out_dt): two hand-offs per layer fewer, and the rows it touches are
 * in its cache. */
static void attention(void *arg, int ith, int nth)
{
	(void)nth;
	struct dk_ctx *c = arg;
	const struct dk_model_info *hp = &c->m->info;
	int32_t hd = hp->head_dim, QD = hp->n_head * hd, group = hp->n_head / hp->n_head_kv;
	int32_t tpr = hp->n_head_kv / c->att_heads; /* tasks per run */
	for (;;) {
		int64_t task = atomic_fetch_sub_explicit(&c->att_next, 1, memory_order_relaxed) - 1;
		if (task < 0)
			return;
		int32_t r = (int32_t)(task / tpr), h0 = (int32_t)(task % tpr) * c->att_heads,
			h1 = h0 + c->att_heads;
		int32_t i0 = c->att_runs[r], i1 = c->att_runs[r + 1];
		if (c->att_store)
			for (int32_t t = i0; t < i1; t++)
				qkv_prep(c, t, h0, h1);
		for (int32_t kvh = h0; kvh < h1; kvh++)
			attend(c, ith, r, kvh);
		if (c->out_dt) {
			/* the task's heads are whole blocks of the format (attn_convert) */
			const struct dk_qtraits *dt = c->out_dt;
			size_t xrow = dk_ttype_row_bytes(dt->type, QD);
			int64_t e0 = (int64_t)h0 * group * hd, ne = (int64_t)(h1 - h0) * group * hd;
			size_t o = dk_ttype_row_bytes(dt->type, e0);
			for (int32_t t = i0; t < i1; t++)
				dt->from_float(c->att + (size_t)t * QD + e0, c->qx + (size_t)t * xrow + o, ne);
		}
	}
}

/* rmsnorm of every token's row into xb, each row then converted to the
 * next matrix's activation format (c->norm_dt, NULL = none) by the thread
 * that normalised it: the same rows as mm_convert, one hand-off fewer */
static void residual(float *x, const float *d, int64_t n, float scale)
{
	if (scale == 1.0f) {
		for (int64_t i = 0; i < n; i++)
			x[i] += d[i];
	} else {
		for (int64_t i = 0; i < n; i++)
			x[i] += d[i] * scale;
	}
}

static void norm_rows_with(struct dk_ctx *c, const float *w, int ith, int nth)
{
	const struct dk_model_info *hp = &c->m->info;
	int64_t E = hp->n_embd;
	const struct dk_qtraits *dt = c->norm_dt;
	size_t xrow = dt ? dk_ttype_row_bytes(dt->type, E) : 0;
	for (int32_t t = ith; t < c->b->n_tokens; t += nth) {
		if (c->norm_add) {
			if (c->post_norm)
				c->rmsnorm(c->xb2 + (size_t)t * E, c->xb2 + (size_t)t * E, c->post_norm, E,
					   hp->norm_eps);
			residual(c->x + (size_t)t * E, c->xb2 + (size_t)t * E, E, hp->residual_scale);
		}
		c->rmsnorm(c->xb + (size_t)t * E, c->x + (size_t)t * E, w, E, hp->norm_eps);
		if (dt)
			dt->from_float(c->xb + (size_t)t * E, c->qx + (size_t)t * xrow, E);
	}
}

static void norm_rows(void *arg, int ith, int nth)
{
	struct dk_ctx *c = arg;
	norm_rows_with(c, c->m->layers[c->layer].attn_norm->data, ith, nth);
}

static void ffn_norm_rows(void *arg, int ith, int nth)
{
	struct dk_ctx *c = arg;
	norm_rows_with(c, c->m->layers[c->layer].ffn_norm->data, ith, nth);
}

/* Runs a norm pass whose rows are also converted for matrix W. */
static void norm_for(struct dk_ctx *c, dk_pool_fn fn, const struct dk_gguf_tensor *W)
{
	const struct dk_qtraits *dt = dk_quant_traits(dk_quant_traits(W->type)->dot_type);
	c->norm_dt = dt->type == DK_TYPE_F32 ? NULL : dt;
	run_pass(c, fn, c, (int64_t)c->b->n_tokens * c->m->info.n_embd);
	c->qx_src = c->norm_dt ? c->xb : NULL;
	c->qx_type = dt->type;
	c->qx_T = c->b->n_tokens;
	c->norm_dt = NULL;
	c->norm_add = false;
}

/* x += xb2 (the residual; first normalised by post, the block's post-norm,
 * when there is one), then the norm pass: the add runs on the norm's
 * threads, row by row, instead of on one thread before it. */
static void add_norm_for(struct dk_ctx *c, dk_pool_fn fn, const struct dk_gguf_tensor *W,
			 const struct dk_gguf_tensor *post)
{
	c->norm_add = true;
	c->post_norm = post ? post->data : NULL;
	norm_for(c, fn, W);
	c->post_norm = NULL;
}

/* hb = SwiGLU(hb, hb2), and each span converted to the down projection's
 * activation format (c->out_dt, NULL = none) by the thread that computed
 * it: spans are whole blocks of that format, which converts block by
 * block, so one pass does both. */
static void swiglu(void *arg, int ith, int nth)
{
	struct dk_ctx *c = arg;
	const struct dk_qtraits *dt = c->out_dt;
	int64_t FF = c->glu_n, bk = dt ? dt->blck : 1, per = FF / bk;
	int64_t n = (int64_t)c->glu_T * per; /* blocks */
	int64_t a = n * ith / nth, z = n * (ith + 1) / nth;
	size_t xrow = dt ? dk_ttype_row_bytes(dt->type, FF) : 0;
	while (a < z) {
		int64_t t = a / per, u0 = a % per, u1 = u0 + (z - a) < per ? u0 + (z - a) : per;
		float *h = c->hb + t * FF + u0 * bk;
		c->swiglu(h, c->hb2 + t * FF + u0 * bk, (u1 - u0) * bk);
		if (dt)
			dt->from_float(h, c->qx + (size_t)t * xrow + (size_t)u0 * dt->bytes, (u1 - u0) * bk);
		a += u1 - u0;
	}
}

/* Which format a pass writing an input of W converts its output to, when
 * its units of work are whole blocks of `unit` elements: W's activation
 * format when it has one, else NULL (the matmul converts, or needs none). */
static const struct dk_qtraits *out_format(const struct dk_gguf_tensor *W, int64_t unit)
{
	const struct dk_qtraits *dt = dk_quant_traits(dk_quant_traits(W->type)->dot_type);
	return dt->type != DK_TYPE_F32 && unit % dt->blck == 0 ? dt : NULL;
}

/* Records that c->qx now holds x converted by a pass (see out_format). */
static void converted(struct dk_ctx *c, const float *x, int32_t T)
{
	if (!c->out_dt)
		return;
	c->qx_src = x;
	c->qx_type = c->out_dt->type;
	c->qx_T = T;
	c->out_dt = NULL;
}

/* The feed-forward block of T rows of x (its input format maybe already
 * in c->qx): y = down(SwiGLU(gate x, up x)). */
static void ffn(struct dk_ctx *c, const struct dk_gguf_tensor *wg, const struct dk_gguf_tensor *wu,
		const struct dk_gguf_tensor *wd, const float *x, int32_t T, float *y)
{
	int64_t E = c->m->info.n_embd, FF = wg->ne[1];
	const struct dk_gguf_tensor *W[2] = {wg, wu};
	float *const yy[2] = {c->hb, c->hb2};
	const int64_t ld[2] = {FF, FF};
	matmul_n(c, 2, W, x, E, T, yy, ld);
	c->out_dt = out_format(wd, FF);
	c->glu_T = T;
	c->glu_n = FF;
	run_pass(c, swiglu, c, (int64_t)T * FF * 4); /* expf: ~4x a norm */
	converted(c, c->hb, T);
	matmul(c, wd, c->hb, FF, T, y, E);
}

/* Routing of token t: the softmax of its router logits over all experts,
 * the n_expert_used largest (ties to the lower index) in decreasing order,
 * and their probabilities divided by their sum. */
static void moe_route(struct dk_ctx *c, int32_t t)
{
	const struct dk_model_info *hp = &c->m->info;
	int32_t NE = hp->n_expert, K = hp->n_expert_used;
	float *lg = c->moe_logits + (size_t)t * NE;
	int32_t *sel = c->moe_sel + (size_t)t * K;
	float *w = c->moe_w + (size_t)t * K;
	float mx = lg[0];
	for (int32_t e = 1; e < NE; e++)
		mx = lg[e] > mx ? lg[e] : mx;
	double sum = 0;
	for (int32_t e = 0; e < NE; e++) {
		lg[e] = dk_vec_exp_ref(lg[e] - mx);
		sum += lg[e];
	}
	const float inv = (float)(1.0 / sum);
	for (int32_t e = 0; e < NE; e++)
		lg[e] *= inv;
	for (int32_t r = 0; r < K; r++) {
		int32_t best = -1;
		for (int32_t e = 0; e < NE; e++) {
			bool taken = false;
			for (int32_t q = 0; q < r && !taken; q++)
				taken = sel[q] == e;
			if (!taken && (best < 0 || lg[e] > lg[best]))
				best = e;
		}
		sel[r] = best;
		w[r] = lg[best];
	}
	double ws = 0;
	for (int32_t r = 0; r < K; r++)
		ws += w[r];
	float wsum = (float)ws;
	if (wsum < 6.103515625e-5f) /* the smallest normal fp16, as llama.cpp clamps */
		wsum = 6.103515625e-5f;
	for (int32_t r = 0; r < K; r++)
		w[r] /= wsum;
}

/* The routed feed-forward block over c->xb: each expert runs once over the
 * rows routed to it (gathered), each row's result is weighted into its
 * slot, and a token's slots are summed in routing order, so a token's
 * output does not depend on which tokens share its batch. */
static void ffn_moe(struct dk_ctx *c, const struct layer *L, int32_t T)
{
	const struct dk_model_info *hp = &c->m->info;
	int64_t E = hp->n_embd;
	int32_t NE = hp->n_expert, K = hp->n_expert_used;
	matmul(c, L->gate_inp, c->xb, E, T, c->moe_logits, NE);
	for (int32_t t = 0; t < T; t++)
		moe_route(c, t);
	for (int32_t e = 0; e < NE; e++) {
		int32_t n = 0;
		for (int32_t i = 0; i < T * K; i++)
			if (c->moe_sel[i] == e) {
				c->moe_rows[n] = i;
				memcpy(c->xe + (size_t)n * E, c->xb + (size_t)(i / K) * E,
				       (size_t)E * sizeof *c->xe);
				n++;
			}
		if (!n)
			continue;
		c->qx_src = NULL; /* c->xe holds other rows than last time */
		ffn(c, L->eg[e], L->eu[e], L->ed[e], c->xe, n, c->ye);
		for (int32_t j = 0; j < n; j++) {
			int32_t i = c->moe_rows[j];
			const float *y = c->ye + (size_t)j * E;
			float *o = c->moe_out + (size_t)i * E, w = c->moe_w[i];
			for (int64_t d = 0; d < E; d++)
				o[d] = y[d] * w;
		}
	}
	for (int32_t t = 0; t < T; t++) {
		float *y = c->xb2 + (size_t)t * E;
		const float *o = c->moe_out + (size_t)t * K * E;
		memcpy(y, o, (size_t)E * sizeof *y);
		for (int32_t r = 1; r < K; r++)
			for (int64_t d = 0; d < E; d++)
				y[d] += o[(size_t)r * E + d];
	}
	c->qx_src = NULL;
}

enum dk_status dk_decode(struct dk_ctx *c, const struct dk_batch *b)
{
	const struct dk_model_info *hp = &c->m->info;
	struct dk_ctx_params *p = &c->p;
	int32_t T = b->n_tokens;
	if (T <= 0)
		return dk_err(c->err, sizeof c->err, DK_SKIP, "empty batch");
	if (T > p->n_batch)
		return dk_err(c->err, sizeof c->err, DK_SKIP,
			      "batch of %d tokens exceeds the context's batch size %d", T, p->n_batch);
	memset(c->seq_new, 0, (size_t)p->n_seq_max * sizeof *c->seq_new);
	for (int32_t i = 0; i < T; i++) {
		int32_t s = b->seq[i];
		if (s < 0 || s >= p->n_seq_max)
			return dk_err(c->err, sizeof c->err, DK_SKIP,
				      "sequence %d out of range (0..%d)", s, p->n_seq_max - 1);
		if (b->token[i] < 0 || b->token[i] >= hp->n_vocab)
			return dk_err(c->err, sizeof c->err, DK_SKIP,
				      "token %d of sequence %d is outside the vocabulary (%d)",
				      b->token[i], s, hp->n_vocab);
		int32_t want = dk_kv_len(c->kv, s) + c->seq_new[s];
		if (b->pos[i] != want)
			return dk_err(c->err, sizeof c->err, DK_SKIP,
				      "sequence %d: position %d given where %d comes next", s, b->pos[i],
				      want);
		if (b->pos[i] >= p->n_ctx)
			return dk_err(c->err, sizeof c->err, DK_SKIP,
				      "sequence %d is longer than the context of %d tokens", s, p->n_ctx);
		c->seq_new[s]++;
	}
	int32_t need;
	if (!dk_kv_reserve(c->kv, c->seq_new, &need)) {
		struct dk_kv_counters kc;
		dk_kv_counters(c->kv, &kc);
		return dk_err(c->err, sizeof c->err, DK_SKIP,
			      "kv cache full: this batch needs %d more blocks of %d tokens, %d of %d "
			      "are in use",
			      need, DK_KV_BLOCK, kc.blocks_used, kc.blocks_total);
	}
	for (int32_t i = 0; i < T; i++)
		dk_kv_set_token(c->kv, b->seq[i], b->pos[i], b->token[i]);

	c->b = b;
	int64_t E = hp->n_embd, QD = (int64_t)hp->n_head * hp->head_dim, KD = c->kv_dim;
	const struct dk_qtraits *et = dk_quant_traits(c->m->tok_embd->type);
	size_t erow = dk_ttype_row_bytes(c->m->tok_embd->type, E);
	for (int32_t i = 0; i < T; i++) {
		float *x = c->x + i * E;
		et->to_float((const uint8_t *)c->m->tok_embd->data + (size_t)b->token[i] * erow, x, E);
		if (hp->embd_scale != 1.0f)
			for (int64_t j = 0; j < E; j++)
				x[j] *= hp->embd_scale;
	}
	rope_tables(c);
	att_runs(c);

	for (int l = 0; l < hp->n_layer; l++) {
		const struct layer *L = &c->m->layers[l];
		c->layer = l;
		if (l == 0)
			norm_for(c, norm_rows, L->wq);
		else /* the previous layer's feed-forward output is still in xb2 */
			add_norm_for(c, norm_rows, L->wq, c->m->layers[l - 1].ffn_post_norm);
		{
			const struct dk_gguf_tensor *W[3] = {L->wq, L->wk, L->wv};
			float *const y[3] = {c->q, c->k, c->v};
			const int64_t ld[3] = {QD, KD, KD};
			matmul_n(c, 3, W, c->xb, E, T, y, ld);
		}
		add_bias(c->q, L->bq, T, QD);
		add_bias(c->k, L->bk, T, KD);
		add_bias(c->v, L->bv, T, KD);
		if (!c->att_store)
			run_pass(c, qkv_store, c, (int64_t)T * (QD + 2 * KD));
		c->att_heads = c->n_runs >= 4 * dk_pool_size(c->pool) ? hp->n_head_kv : 1;
		atomic_store_explicit(&c->att_next, (int64_t)c->n_runs * (hp->n_head_kv / c->att_heads),
				      memory_order_relaxed);
		c->out_dt = out_format(L->wo, (int64_t)(hp->n_head / hp->n_head_kv) * hp->head_dim);
		dk_pool_run(c->pool, attention, c);
		converted(c, c->att, T);
		matmul(c, L->wo, c->att, QD, T, c->xb2, E);
		add_bias(c->xb2, L->bo, T, E);
		if (L->gate_inp) {
			add_norm_for(c, ffn_norm_rows, L->gate_inp, L->attn_post_norm);
			ffn_moe(c, L, T);
		} else {
			add_norm_for(c, ffn_norm_rows, L->wg, L->attn_post_norm);
			ffn(c, L->wg, L->wu, L->wd, c->xb, T, c->xb2);
		}
		if (l == hp->n_layer - 1)
			for (int32_t t = 0; t < T; t++) {
				float *d = c->xb2 + (size_t)t * E;
				if (L->ffn_post_norm)
					c->rmsnorm(d, d, L->ffn_post_norm->data, E, hp->norm_eps);
				residual(c->x + (size_t)t * E, d, E, hp->residual_scale);
			}
	}

	/* final norm and logits only for the tokens that asked */
	c->n_out = 0;
	for (int32_t i = 0; i < T; i++) {
		c->out_row[i] = -1;
		if (!b->logits[i])
			continue;
		c->rmsnorm(c->xb + (size_t)c->n_out * E, c->x + (size_t)i * E, c->m->out_norm->data, E,
			hp->norm_eps);
		c->out_idx[c->n_out] = i;
		c->out_row[i] = c->n_out++;
	}
	c->qx_src = NULL;
	if (c->n_out)
		matmul(c, c->m->output, c->xb, E, c->n_out, c->logits, hp->n_vocab);
	if (c->n_out && hp->logit_scale != 1.0f) {
		const float inv = 1.0f / hp->logit_scale;
		for (int64_t i = 0; i < (int64_t)c->n_out * hp->n_vocab; i++)
			c->logits[i] *= inv;
	}
	c->qx_src = NULL;

	for (int32_t s = 0; s < p->n_seq_max; s++)
		if (c->seq_new[s])
			dk_kv_commit(c->kv, s, dk_kv_len(c->kv, s) + c->seq_new[s]);
	c->b = NULL;
	return DK_OK;
}

bool dk_ctx_uses_blas(const struct dk_ctx *c, enum dk_ttype t)
{
	return t < DK_TYPE_COUNT && c->blas[t];
}

const float *dk_logits(const struct dk_ctx *c, int32_t i)
{
	if (i < 0 || i >= c->p.n_batch || c->out_row[i] < 0)
		return NULL;
	return c->logits + (size_t)c->out_row[i] * c->m->info.n_vocab;
}

int32_t dk_kv_seq_len(const struct dk_ctx *c, int32_t seq)
{
	return seq >= 0 && seq < c->p.n_seq_max ? dk_kv_len(c->kv, seq) : 0;
}

void dk_kv_seq_clear(struct dk_ctx *c, int32_t seq)
{
	if (seq >= 0 && seq < c->p.n_seq_max)
		dk_kv_clear(c->kv, seq);
}

enum dk_status dk_kv_seq_fork(struct dk_ctx *c, int32_t src, int32_t dst)
{
	if (src < 0 || src >= c->p.n_seq_max || dst < 0 || dst >= c->p.n_seq_max)
		return dk_err(c->err, sizeof c->err, DK_SKIP, "fork %d -> %d: sequence out of range",
			      src, dst);
	dk_kv_fork(c->kv, src, dst);
	return DK_OK;
}

int32_t dk_kv_seq_reuse_prefix(struct dk_ctx *c, int32_t seq, const dk_token *toks, int32_t n,
			       int32_t first_logits)
{
	if (seq < 0 || seq >= c->p.n_seq_max || n <= 0)
		return 0;
	if (n > c->p.n_ctx)
		n = c->p.n_ctx;
	if (first_logits < 0 || first_logits > n - 1)
		first_logits = n - 1;
	return dk_kv_reuse_prefix(c->kv, seq, toks, n, first_logits);
}

void dk_kv_stats(const struct dk_ctx *c, struct dk_kv_stats *out)
{
	struct dk_kv_counters kc;
	dk_kv_counters(c->kv, &kc);
	out->hit_tokens = kc.hit_tokens;
	out->miss_tokens = kc.miss_tokens;
	out->evictions = kc.evictions;
	out->blocks_total = kc.blocks_total;
	out->blocks_used = kc.blocks_used;
}

