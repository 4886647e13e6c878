/*
 * The inference engine: a llama-family transformer (architectures "llama",
 * "qwen2", "qwen3", "qwen3moe", "phi3", "granite" and "gemma3") over a GGUF
 * file, a KV cache holding many sequences, and a batched decode.
 *
 * Lifecycle:
 *   1. dk_model_load: map the weights (read-only, shared between processes),
 *      read hyper-parameters and the tokenizer.  Immutable afterwards, so one
 *      model may serve many contexts and threads.
 *   2. dk_ctx_new: allocate the KV cache and every scratch buffer once, for
 *      at most n_seq_max sequences of at most n_ctx tokens and at most
 *      n_batch tokens per call.  If that does not fit it fails up front,
 *      naming what was asked for; nothing is allocated during decode.
 *   3. Fill a dk_batch with (token, position, sequence, want-logits) and call
 *      dk_decode; read logits with dk_logits.  Sequences are independent:
 *      they join (first token at position 0, or after dk_kv_seq_reuse_prefix)
 *      and leave (dk_kv_seq_clear) between calls.
 *   4. dk_ctx_free, dk_model_free.
 *
 * Positions of a sequence must be contiguous: each token of sequence s in a
 * batch has position dk_kv_seq_len(s) + (its rank among s's tokens in the
 * batch).
 */
#ifndef DOCKET_MODEL_H
#define DOCKET_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/gguf.h"
#include "docket/tokenizer.h"

struct dk_model;
struct dk_ctx;

struct dk_model_info {
	char arch[32];         /* general.architecture: "llama", "qwen2", ... */
	char name[128];        /* general.name, or the file's base name */
	int32_t n_vocab;
	int32_t n_ctx_train;
	int32_t n_embd;
	int32_t n_layer;
	int32_t n_head;
	int32_t n_head_kv;
	int32_t head_dim;
	int32_t n_ff;
	int32_t n_rot;         /* rope dimension count */
	float rope_freq_base;
	float rope_freq_scale; /* 1 / linear scaling factor */
	float norm_eps;
	int32_t n_expert;      /* routed experts per layer (0: a dense feed-forward) */
	int32_t n_expert_used; /* experts each token goes through */
	int32_t n_ff_exp;      /* feed-forward width of one expert */
	int32_t n_ctx_orig;    /* rope: the context that short frequency factors are for */
	float rope_attn_factor;/* rope: cos and sin are multiplied by this (1: none) */
	float embd_scale;      /* token embeddings are multiplied by this (1: none) */
	float residual_scale;  /* block outputs are multiplied by this before the residual add */
	float attn_scale;      /* attention score scale: 1/sqrt(head_dim) unless the file says */
	float logit_scale;     /* logits are divided by this (1: none) */
	int32_t n_swa;         /* sliding window of the windowed layers, in positions (0: none) */
	float rope_freq_base_swa;  /* the windowed layers' rope */
	float rope_freq_scale_swa;
	bool tied_output;      /* output projection shares token_embd */
	enum dk_ttype wtype;   /* most common weight type (for display) */
	uint64_t n_params;
	size_t weight_bytes;
	size_t packed_bytes;   /* weights copied into the kernels' layout at load */
};

struct dk_model_params {
	bool verify_tensors;   /* default false: check every weight is finite */
};
struct dk_model_params dk_model_default_params(void);

/* Loads path; *out set also on failure (read dk_model_error, then free). */
enum dk_status dk_model_load(struct dk_model **out, const char *path,
			     const struct dk_model_params *p);
/* Whether docket can run the GGUF file at path: DK_OK, or DK_FATAL with
 * the reason in why (e.g. "architecture 'xyz' is not supported (...)",
 * "tensor '...' has type ..., which is not supported there").  Runs the
 * load's checks of the hyper-parameters, tensors and tokenizer without
 * hashing or repacking the weights. */
enum dk_status dk_model_check(const char *path, char *why, size_t n);
void dk_model_free(struct dk_model *m);
const char *dk_model_error(const struct dk_model *m);

const struct dk_model_info *dk_model_info(const struct dk_model *m);
/* Borrowed; valid for the model's lifetime. */
const struct dk_tokenizer *dk_model_tokenizer(const struct dk_model *m);
const struct dk_gguf *dk_model_gguf(const struct dk_model *m);
/* tokenizer.chat_template or NULL; NUL-terminated, owned by the model. */
const char *dk_model_chat_template(const struct dk_model *m);
/* Hex sha256 of the model file, computed from the mapping at load (the
 * model is immutable after); never NULL for a loaded model. */
const char *dk_model_sha256(struct dk_model *m);

struct dk_chat_msg;
/* Renders chat messages for this model: the family is `family` when not
 * NULL ("chatml", "llama3", ... see chat.h), else recognised from the
 * model's chat template.  template_system: when msgs has no system message,
 * insert the default one the template itself inserts (e.g. SmolLM2's "You
 * are a helpful AI assistant named SmolLM...").  The BOS text is written
 * literally only where the tokenizer does not add BOS itself.  Returns a
 * malloc'd string to tokenize with parse_special=true, or NULL with a
 * message in err (unknown or missing template, unknown family name). */
char *dk_model_chat_render(const struct dk_model *m, const char *family,
			   const struct dk_chat_msg *msgs, size_t n, bool add_assistant,
			   bool template_system, char *err, size_t errn);
const char *dk_model_path(const struct dk_model *m);

/* How a context with deterministic off picks OpenBLAS for long products. */
enum dk_prefill { DK_PREFILL_AUTO = 0, DK_PREFILL_INT, DK_PREFILL_BLAS };

struct dk_ctx_params {
	int32_t n_ctx;        /* max tokens per sequence; default 2048 (<= n_ctx_train) */
	int32_t n_seq_max;    /* max live sequences; default 1 */
	int32_t n_batch;      /* max tokens per dk_decode call; default 512 */
	int32_t n_threads;    /* default: physical cores */
	enum dk_ttype kv_type;/* DK_TYPE_F16 (default, as llama.cpp) or DK_TYPE_F32 */
	bool prefix_cache;    /* reuse KV of identical prompt prefixes; default true */
	bool deterministic;   /* default true: a sequence's logits do not depend on its
			       * batch mates, the thread count, or how its prompt is
			       * split into calls (bit for bit).  false: products of
			       * 64 or more tokens may take dequantise + OpenBLAS
			       * SGEMM for the weight types where that measured faster
			       * at creation (F16/F32 weights; CPUs without AVX-512
			       * VNNI), whose sums depend on those; results stay within
			       * float rounding.  prefill forces the choice. */
	int32_t kv_blocks;    /* KV pages of DK_KV_BLOCK tokens; 0 = n_seq_max*n_ctx worth */
	enum dk_prefill prefill; /* deterministic off only: DK_PREFILL_AUTO (measure at
				  * creation), _INT (never OpenBLAS), _BLAS (always) */
};
/* The defaults, and the one place the engine's environment knobs are read
 * (each call, so a caller may change them between contexts):
 *   DOCKET_PREFILL=int|blas   sets prefill (other values: auto).
 * DOCKET_KERNELS, process-wide, is read once by the kernels (kernels/cpu.c). */
struct dk_ctx_params dk_ctx_default_params(void);

enum dk_status dk_ctx_new(struct dk_ctx **out, struct dk_model *m, const struct dk_ctx_params *p);
void dk_ctx_free(struct dk_ctx *c);
const char *dk_ctx_error(const struct dk_ctx *c);
const struct dk_ctx_params *dk_ctx_params(const struct dk_ctx *c);
struct dk_model *dk_ctx_model(const struct dk_ctx *c);

/* A batch of tokens to decode.  Arrays are owned by the batch. */
struct dk_batch {
	int32_t n_tokens;
	int32_t cap;
	dk_token *token;
	int32_t *pos;
	int32_t *seq;
	bool *logits;     /* compute logits for this token */
};
struct dk_batch *dk_batch_new(int32_t cap);
void dk_batch_free(struct dk_batch *b);
void dk_batch_clear(struct dk_batch *b);
/* Appends one token; returns -1 when the batch is full. */
int dk_batch_add(struct dk_batch *b, dk_token t, int32_t pos, int32_t seq, bool logits);

/* Runs the model over the batch and appends its tokens' K/V to their
 * sequences.  DK_SKIP: this batch is invalid (bad position, sequence out of
 * range, over n_ctx, no KV room) and nothing changed — message names the
 * sequence; DK_FATAL: internal failure. */
enum dk_status dk_decode(struct dk_ctx *c, const struct dk_batch *b);
/* Logits (n_vocab floats) of batch token i, which must have asked for them.
 * Borrowed until the next dk_decode. NULL if i did not ask. */
const float *dk_logits(const struct dk_ctx *c, int32_t i);
/* Whether products with weights of type t over DK_BLAS_MIN_TOKENS or more
 * tokens take dequantise + OpenBLAS in c: only with deterministic off, for
 * the types where that measured faster when c was created. */
#define DK_BLAS_MIN_TOKENS 64
bool dk_ctx_uses_blas(const struct dk_ctx *c, enum dk_ttype t);
/* What, besides the model file and the generation settings, a sequence's
 * bits depend on in c, as a short string: "portable" when they are the
 * same at every kernel level and on every machine running this build (the
 * deterministic default: DOCKET_KERNELS=ref, avx2 and avx512 give the
 * same logits, bit for bit); "kernels=<level>,blas" when some products
 * take OpenBLAS (deterministic off), whose sums follow its own kernels.
 * Two contexts give bit-identical records when their strings (and model
 * and settings) are equal.  Valid for c's lifetime. */
const char *dk_ctx_numerics(const struct dk_ctx *c);

/* ---- sequences in the KV cache ---- */
int32_t dk_kv_seq_len(const struct dk_ctx *c, int32_t seq);
/* Forgets a sequence (its cached prefix blocks stay reusable). */
void dk_kv_seq_clear(struct dk_ctx *c, int32_t seq);
/* dst becomes a copy of src (shared blocks, copy-on-write). dst is cleared first. */
enum dk_status dk_kv_seq_fork(struct dk_ctx *c, int32_t src, int32_t dst);
/* For an empty sequence about to be fed toks[0..n): attaches the longest
 * run of cached KV for a prefix of toks that ends at or before position
 * first_logits, and returns its length k (the caller then decodes toks[k..n)
 * from position k).  first_logits is the first position whose logits the
 * caller will read: n - 1 for generation, the last prompt token for scoring
 * a continuation (a value outside [0, n) means n - 1).  Positions from
 * there on are always decoded, since a cached position has K and V but no
 * logits.  0 when the prefix cache is off or nothing matches. */
int32_t dk_kv_seq_reuse_prefix(struct dk_ctx *c, int32_t seq, const dk_token *toks, int32_t n,
			       int32_t first_logits);

/* Positions per KV block: the prefix cache and prefix files hold whole
 * blocks only. */
#define DK_KV_BLOCK_TOKENS 16

/*
 * Prefix files: the KV of a sequence's first full blocks saved to disk, so
 * that a later process (tomorrow's cron run) starts with its instruction
 * prefix already cached.  The file is keyed by the model's sha256, the
 * cache layout, the numerics (dk_ctx_numerics) and the tokens themselves;
 * loading checks all four, so a file saved at one kernel level loads at
 * another when the numerics are "portable".
 */
/* Saves the written full blocks of seq among its first n_max positions
 * (n_max < 0: all of them) to path, atomically (temp file + rename).  A
 * caller whose sequence goes on past its instructions passes their length,
 * so that nothing after them (a document) reaches the disk.  *n_tokens
 * gets the number of tokens saved (a multiple of DK_KV_BLOCK; 0 writes
 * nothing). */
enum dk_status dk_kv_prefix_save(struct dk_ctx *c, int32_t seq, int32_t n_max, const char *path,
				 int32_t *n_tokens);
/* Loads a prefix file into the prefix cache; sequences then attach it with
 * dk_kv_seq_reuse_prefix.  DK_SKIP (with a message) when the file is for
 * another model or layout or is damaged, DK_FATAL on I/O errors. */
enum dk_status dk_kv_prefix_load(struct dk_ctx *c, const char *path, int32_t *n_tokens);

struct dk_kv_stats {
	uint64_t hit_tokens;    /* prompt tokens served from the prefix cache */
	uint64_t miss_tokens;   /* prompt tokens computed */
	uint64_t evictions;     /* cached blocks evicted */
	int32_t blocks_total;
	int32_t blocks_used;
};
void dk_kv_stats(const struct dk_ctx *c, struct dk_kv_stats *out);

#endif
