/*
 * Private to src/engine/core: the model and context structs that the load
 * (model.c), the forward pass (forward.c) and the prefix-file format
 * (prefix_file.c) share.  The model is immutable after dk_model_load; a
 * context owns its scratch, cache and pool.
 */
#ifndef DK_ENGINE_CORE_MODEL_IMPL_H
#define DK_ENGINE_CORE_MODEL_IMPL_H

#include <stdatomic.h>

#include "docket/model.h"
#include "engine/core/kv.h"
#include "engine/core/threadpool.h"
#include "engine/kernels/pack.h"
#include "engine/kernels/quant.h"
#include "engine/kernels/vec.h"
#include "util/err.h"

struct dk_model;

/* What an architecture needs beyond the llama layer, as data: one row per
 * architecture in model.c's table, read by the load and the forward pass
 * (no code asks for an architecture by name). */
struct arch_traits {
	const char *name;
	bool neox;          /* rope rotates (i, i + n_rot/2) pairs */
	bool qkv_bias;      /* attn_{q,k,v}.bias are required */
	bool qk_norm;       /* attn_q_norm / attn_k_norm: RMSNorm of each Q and K head before rope */
	bool moe;           /* routed experts: ffn_gate_inp, ffn_{gate,up,down}_exps */
	bool fused_gate_up; /* ffn_up holds the gate rows, then the up rows; no ffn_gate */
	bool scales;        /* embedding, residual, attention and logit multipliers */
	bool post_norms;    /* post_attention_norm / post_ffw_norm: RMSNorm of each block's
			     * output before its residual add */
	bool gelu;          /* the feed-forward gate is GELU (GeGLU), not SiLU (SwiGLU) */
	/* reads what else the architecture's keys say (NULL: nothing) */
	enum dk_status (*hparams)(struct dk_model *m);
};

/* Matrices are tensors of the file or views of part of one (the Q, K and V
 * rows of a fused attn_qkv, the gate and up halves of a fused ffn_up, one
 * expert of an ffn_*_exps): the forward pass does not tell them apart. */
struct layer {
	const struct dk_gguf_tensor *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *bo;
	const struct dk_gguf_tensor *q_norm, *k_norm; /* [head_dim] each, or NULL */
	const struct dk_gguf_tensor *ffn_norm, *wg, *wu, *wd;
	/* routed experts: the router [n_embd x n_expert] and n_expert views each */
	const struct dk_gguf_tensor *gate_inp, **eg, **eu, **ed;
	const struct dk_gguf_tensor *attn_post_norm, *ffn_post_norm; /* or NULL */
	bool swa;           /* attends to the last n_swa positions only, with the local rope */
};

/* Experts a token may go through, at most (llama.cpp's limit too). */
#define DK_MAX_EXPERTS_USED 32

struct dk_model {
	char *path;
	struct dk_gguf *g;
	struct dk_tokenizer *tok;
	struct dk_model_info info;
	const struct arch_traits *arch;
	const struct dk_gguf_tensor *tok_embd, *out_norm, *output, *rope_freqs;
	/* rope frequency factors by context: short up to n_ctx_orig, long past it */
	const struct dk_gguf_tensor *rope_short, *rope_long;
	struct layer *layers;
	/* packed copies of the matmul weights, by tensor index (NULL: none) */
	struct dk_pack **packs;
	/* views of parts of tensors (struct layer), and their packed copies */
	struct dk_gguf_tensor *views;
	struct dk_pack **view_packs;
	int64_t n_views, cap_views;
	const struct dk_gguf_tensor **expert_ptrs; /* the layers' eg/eu/ed arrays */
	char *chat_template;
	char sha256[65];        /* of the mapped file, set at load: the model is immutable after */
	char err[DK_ERRMSG_MAX];
};

/* The packed copy of matrix t (a tensor of the file or a view), or NULL. */
const struct dk_pack *dk_model_pack_of(const struct dk_model *m, const struct dk_gguf_tensor *t);

/* Attention takes a prompt in runs of up to this many tokens: their query
 * rows share each chunk of keys while it is in L1, and a long prompt still
 * makes enough tasks for every thread. */
#define ATT_RUN 32

struct dk_ctx {
	struct dk_model *m;
	struct dk_ctx_params p;
	struct dk_pool *pool;
	struct dk_kv *kv;
	size_t kv_esize;        /* bytes per K/V element */
	size_t kv_layer_bytes;  /* per layer inside a block: K tiles then V rows (kv_k) */
	int32_t kv_dim;

	/* scratch, n_batch rows each */
	float *x, *xb, *xb2, *q, *k, *v, *att, *hb, *hb2;
	uint8_t *qx;            /* activations in a weight's dot format */
	size_t qx_bytes;
	float *rope;            /* [n_batch][n_rot] cos, sin pairs */
	float *rope_swa;        /* the same for the windowed layers' rope (NULL: none) */
	float *logits;          /* [n_out][n_vocab] */
	int32_t *out_row;       /* batch index -> logits row or -1 */
	int32_t *out_idx;       /* logits row -> batch index */
	int32_t n_out;
	float *att_scratch;     /* per thread: scores[n_ctx], acc[head_dim], ... */
	size_t att_stride;
	uint8_t **att_blocks;   /* per thread: block pointers of one sequence */
	int32_t att_blocks_stride;
	float *att_wide;        /* F16 cache, per thread: one KV head of one sequence
				 * widened to float, blocks of [K tile][V rows] */
	size_t att_wide_stride;
	int32_t *att_runs;      /* batch index where run r starts; [n_runs] = n_tokens */
	const float *rope_ff;   /* rope frequency factors for this context, or NULL */
	int32_t glu_T, glu_n;   /* the SwiGLU pass: rows and row length */
	/* routed experts, n_batch rows each: router logits then probabilities
	 * [n_expert], chosen experts and weights [n_expert_used], weighted
	 * outputs [n_expert_used][n_embd]; one expert's rows (indexes into
	 * sel), inputs and outputs */
	float *moe_logits, *moe_w, *moe_out, *xe, *ye;
	int32_t *moe_sel, *moe_rows;
	dk_vec_swiglu_fn swiglu; /* this CPU's kernels (vec.h): SwiGLU or GeGLU */
	dk_vec_rope_fn rope_fn;
	dk_vec_rmsnorm_fn rmsnorm;
	int32_t n_runs;
	_Atomic int64_t att_next; /* next attention task (counts down) */
	int32_t att_heads;      /* KV heads per attention task: 1 or all */
	bool att_store;         /* attention tasks rope and store their own rows */

	/* the batch being decoded */
	const struct dk_batch *b;
	int32_t *seq_new;       /* per sequence: tokens in this batch */
	int layer;
	/* what c->qx holds: activations x converted to qx_type for T rows;
	 * reset whenever an activation buffer is rewritten */
	const float *qx_src;
	enum dk_ttype qx_type;
	int32_t qx_T;
	const struct dk_qtraits *norm_dt; /* norm passes: convert rows to this too */
	bool norm_add;          /* norm passes: first add xb2 into x (the residual) */
	const float *post_norm; /* norm passes: first normalise xb2 with this (NULL: no) */
	/* attention and SwiGLU passes: convert what they write, in whole blocks,
	 * to the next matrix's activation format too (NULL = none) */
	const struct dk_qtraits *out_dt;
	/* deterministic off: weight types whose products over BLAS_MIN_T or
	 * more tokens take dequantise + OpenBLAS (blas_calibrate) */
	bool blas[DK_TYPE_COUNT];
	char numerics[32];      /* dk_ctx_numerics */
	char err[DK_ERRMSG_MAX];
};

#endif
