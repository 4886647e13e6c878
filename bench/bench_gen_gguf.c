/*
 * bench_gen_gguf: writes a GGUF v3 model with random weights in the shape of
 * a real model, for speed comparisons and loader tests without downloading
 * weights.  The tokenizer (every tokenizer.* key) is copied from an existing
 * GGUF, so prompts tokenise exactly as with the real model.
 *
 *   bench_gen_gguf --shape NAME
 *                  --type q4_0|q4_1|q5_0|q5_1|q8_0|q2_k|q3_k|q4_k|q5_k|q6_k|f16|f32
 *                  --vocab-from V.gguf --out OUT.gguf [--seed N]
 *                  [--chat-template FILE]
 *
 * Shapes (shapes[] below): real models' (smollm2-135m, llama32-1b,
 * qwen25-05b, qwen3-06b, phi35-mini, granite3-2b) and small ones with the
 * same structure, tensor names and metadata keys as llama.cpp's converters
 * write them (tiny, tiny-qwen2, tiny-k with rows of 256 and 512 so that
 * every matrix of a K type is one, and for the fidelity tests tiny-qwen3,
 * tiny-qwen3moe, tiny-phi3, tiny-granite, tiny-gemma3): Q/K norms, 3-D expert tensors and an F32 router, fused
 * attn_qkv and gate/up, rope factor tensors, granite's multipliers, and
 * Gemma 3's post-norms and sliding window (8 positions on two layers of
 * every three).
 *
 * Weights: the older shapes have matrices N(0, 0.02) and norms 1.0.  The
 * fidelity shapes are scaled so that each layer matters and the next-token
 * distribution is peaked, as a trained model's is: matrices N(0,
 * 1/sqrt(row length)), embeddings and output N(0, out_sd) (granite's
 * embeddings, which it multiplies by 12, N(0, 0.02)), norms 1 + N(0, 0.2).  Biases are N(0, 0.002).  Norms, biases, routers and rope
 * factors are F32, as converters store them; the rest is quantised with
 * docket's own from_float.  The vocabulary size is the vocab file's token
 * count (the shape's nominal size is only checked against it).  A matrix
 * whose row length is not a multiple of the requested type's block (K types
 * need 256) is stored as Q8_0, since a GGUF cannot hold partial blocks.
 * Output is deterministic for a seed.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/gguf.h"
#include "engine/kernels/quant.h"

#define ALIGN 32

struct shape {
	const char *name;
	const char *arch;
	const char *model_name;
	uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
	float rope_base, eps;
	bool qkv_bias;
	/* beyond llama (0 / false: absent) */
	uint32_t head_dim, n_rot;          /* 0: n_embd / n_head, head_dim */
	bool qk_norm, fused_qkv, fused_gate_up, untied; /* untied: an output.weight of its own */
	uint32_t n_expert, n_expert_used, n_ff_exp;
	uint32_t n_ctx_orig;               /* rope_factors_long/short for n_ctx > this */
	uint32_t n_swa;                    /* a sliding window key (phi3 files carry one) */
	uint32_t swa_pattern;              /* a sliding_window_pattern key (gemma3) */
	bool post_norms;                   /* post_attention_norm, post_ffw_norm (gemma3) */
	float embd_scale, residual_scale, attn_scale, logit_scale; /* granite */
	float out_sd;                      /* > 0: the fidelity weights (see above) */
	float embd_sd;                     /* token_embd's when not out_sd (untied only) */
};

static const struct shape shapes[] = {
	{"smollm2-135m", "llama", "SmolLM2-135M (random weights)", 576, 30, 9, 3, 1536, 49152,
	 8192, 100000.0f, 1e-5f, false, .head_dim = 0},
	{"llama32-1b", "llama", "Llama-3.2-1B (random weights)", 2048, 16, 32, 8, 8192, 128256,
	 8192, 500000.0f, 1e-5f, false, .head_dim = 0},
	{"qwen25-05b", "qwen2", "Qwen2.5-0.5B (random weights)", 896, 24, 14, 2, 4864, 151936,
	 32768, 1000000.0f, 1e-6f, true, .head_dim = 0},
	{"tiny", "llama", "tiny llama (random weights)", 64, 2, 4, 2, 128, 0, 512, 10000.0f,
	 1e-5f, false, .head_dim = 0},
	{"tiny-qwen2", "qwen2", "tiny qwen2 (random weights)", 64, 2, 4, 2, 128, 0, 512,
	 10000.0f, 1e-6f, true, .head_dim = 0},
	{"qwen3-06b", "qwen3", "Qwen3-0.6B (random weights)", 1024, 28, 16, 8, 3072, 151936,
	 40960, 1000000.0f, 1e-6f, false, .head_dim = 128, .qk_norm = true},
	{"phi35-mini", "phi3", "Phi-3.5-mini (random weights)", 3072, 32, 32, 32, 8192, 32064,
	 131072, 10000.0f, 1e-5f, false, .fused_qkv = true, .fused_gate_up = true,
	 .n_ctx_orig = 4096, .n_swa = 262144, .untied = true},
	{"granite3-2b", "granite", "Granite-3.3-2B (random weights)", 2048, 40, 32, 8, 8192, 49159,
	 131072, 10000000.0f, 1e-5f, false, .embd_scale = 12.0f,
	 .residual_scale = 0.22f, .attn_scale = 0.015625f, .logit_scale = 8.0f},
	/* the fidelity shapes: small, each with its architecture's peculiarities */
	{"tiny-qwen3", "qwen3", "tiny qwen3 (random weights)", 64, 2, 4, 2, 192, 0, 4096,
	 1000000.0f, 1e-6f, false, .head_dim = 64, .qk_norm = true, .out_sd = 0.45f},
	{"tiny-qwen3moe", "qwen3moe", "tiny qwen3moe (random weights)", 64, 2, 4, 2, 192, 0, 4096,
	 1000000.0f, 1e-6f, false, .head_dim = 64, .qk_norm = true, .n_expert = 16,
	 .n_expert_used = 4, .n_ff_exp = 32, .out_sd = 0.45f},
	{"tiny-phi3", "phi3", "tiny phi3 (random weights)", 128, 2, 4, 2, 256, 0, 4096, 10000.0f,
	 1e-5f, false, .n_rot = 24, .fused_qkv = true, .fused_gate_up = true, .n_ctx_orig = 256,
	 .n_swa = 2047, .untied = true, .out_sd = 0.3f},
	{"tiny-granite", "granite", "tiny granite (random weights)", 128, 2, 4, 2, 384, 0, 4096,
	 10000000.0f, 1e-5f, false, .embd_scale = 12.0f, .residual_scale = 0.22f,
	 .attn_scale = 0.015625f, .logit_scale = 8.0f, .untied = true, .out_sd = 2.4f,
	 .embd_sd = 0.02f},
	{"tiny-gemma3", "gemma3", "tiny gemma3 (random weights)", 64, 3, 2, 1, 128, 0, 512,
	 1000000.0f, 1e-6f, false, .qk_norm = true, .n_swa = 8, .swa_pattern = 3,
	 .post_norms = true, .out_sd = 0.2f},
	{"tiny-k", "llama", "tiny llama, K rows (random weights)", 256, 2, 4, 2, 512, 0, 512,
	 10000.0f, 1e-5f, false, .head_dim = 0},
};

/* ---- deterministic normal numbers ---- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	/* splitmix64: fast, and every seed gives a full-quality stream */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill_normal(float *x, int64_t n, float sd)
{
	for (int64_t i = 0; i < n; i += 2) {
		uint64_t r = rng_next();
		/* 1 - u keeps the log argument in (0, 1] */
		double u1 = 1.0 - (double)(r >> 40) / (double)(1ull << 24);
		double u2 = (double)(r & 0xffffff) / (double)(1ull << 24);
		double m = sqrt(-2.0 * log(u1)) * sd;
		x[i] = (float)(m * cos(6.283185307179586 * u2));
		if (i + 1 < n)
			x[i + 1] = (float)(m * sin(6.283185307179586 * u2));
	}
}

/* ---- output with error tracking ---- */

struct out {
	FILE *f;
	const char *path;
	bool failed;
	uint64_t pos;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->failed || n == 0)
		return;
	if (fwrite(p, 1, n, o->f) != n)
		o->failed = true;
	o->pos += n;
}

static void put_u32(struct out *o, uint32_t v) { put(o, &v, 4); }
static void put_u64(struct out *o, uint64_t v) { put(o, &v, 8); }
static void put_str(struct out *o, const char *s, size_t n)
{
	put_u64(o, n);
	put(o, s, n);
}
static void pad_to(struct out *o, uint64_t align)
{
	static const char zeros[ALIGN];
	put(o, zeros, (size_t)((align - o->pos % align) % align));
}

/* ---- metadata ---- */

static void kv_head(struct out *o, const char *key, enum dk_gguf_vtype t)
{
	put_str(o, key, strlen(key));
	put_u32(o, (uint32_t)t);
}
static void kv_str(struct out *o, const char *key, const char *v)
{
	kv_head(o, key, DK_GGUF_STRING);
	put_str(o, v, strlen(v));
}
static void kv_u32(struct out *o, const char *key, uint32_t v)
{
	kv_head(o, key, DK_GGUF_UINT32);
	put_u32(o, v);
}
static void kv_f32(struct out *o, const char *key, float v)
{
	kv_head(o, key, DK_GGUF_FLOAT32);
	put(o, &v, 4);
}

static size_t scalar_size(enum dk_gguf_vtype t)
{
	switch (t) {
	case DK_GGUF_UINT8: case DK_GGUF_INT8: case DK_GGUF_BOOL: return 1;
	case DK_GGUF_UINT16: case DK_GGUF_INT16: return 2;
	case DK_GGUF_UINT32: case DK_GGUF_INT32: case DK_GGUF_FLOAT32: return 4;
	case DK_GGUF_UINT64: case DK_GGUF_INT64: case DK_GGUF_FLOAT64: return 8;
	default: return 0;
	}
}

/* Copies KV i of the vocab file; returns false for a shape we cannot copy
 * (nested arrays), which the caller reports. */
static bool copy_kv(struct out *o, const struct dk_gguf *g, int64_t i)
{
	const char *key = dk_gguf_kv_key(g, i);
	enum dk_gguf_vtype t = dk_gguf_kv_type(g, i);
	if (t == DK_GGUF_STRING) {
		const char *s;
		size_t n;
		if (!dk_gguf_get_str(g, key, &s, &n))
			return false;
		kv_head(o, key, t);
		put_str(o, s, n);
		return true;
	}
	if (t == DK_GGUF_ARRAY) {
		enum dk_gguf_vtype et;
		uint64_t n;
		if (!dk_gguf_get_arr(g, key, &et, &n))
			return false;
		kv_head(o, key, t);
		put_u32(o, (uint32_t)et);
		put_u64(o, n);
		if (et == DK_GGUF_STRING) {
			for (uint64_t j = 0; j < n; j++) {
				const char *s;
				size_t len;
				if (!dk_gguf_arr_str(g, key, j, &s, &len))
					return false;
				put_str(o, s, len);
			}
			return true;
		}
		size_t es = scalar_size(et);
		const void *d = dk_gguf_arr_data(g, key);
		if (!es || (!d && n))
			return false;
		put(o, d, es * n);
		return true;
	}
	size_t es = scalar_size(t);
	if (!es)
		return false;
	kv_head(o, key, t);
	if (t == DK_GGUF_BOOL) {
		bool b = false;
		dk_gguf_get_bool(g, key, &b);
		uint8_t v = b;
		put(o, &v, 1);
	} else if (t == DK_GGUF_FLOAT32 || t == DK_GGUF_FLOAT64) {
		float f = 0;
		dk_gguf_get_f32(g, key, &f);
		if (t == DK_GGUF_FLOAT32) {
			put(o, &f, 4);
		} else {
			double d = f;
			put(o, &d, 8);
		}
	} else {
		int64_t v = 0;
		uint32_t u = 0;
		/* UINT64 ids above INT64_MAX do not occur in tokenizer metadata */
		if (!dk_gguf_get_i64(g, key, &v) && dk_gguf_get_u32(g, key, &u))
			v = u;
		put(o, &v, es); /* little-endian: the low bytes are the value */
	}
	return true;
}

/* ---- tensors ---- */

enum kind { MATRIX, NORM, BIAS, ROUTER, EMBD, ROPE_SHORT, ROPE_LONG };

struct tensor {
	char name[64];
	enum dk_ttype type;
	int64_t ne0, ne1, ne2; /* ne1 == 1 for vectors, ne2 > 1 for experts */
	enum kind kind;
	uint64_t offset;
};

static enum dk_ttype matrix_type(enum dk_ttype want, int64_t ne0)
{
	return ne0 % dk_ttype_block(want) ? DK_TYPE_Q8_0 : want;
}

static int add3(struct tensor *ts, int n, const char *name, enum dk_ttype type, int64_t ne0,
		int64_t ne1, int64_t ne2, enum kind kind)
{
	struct tensor *t = &ts[n];
	snprintf(t->name, sizeof t->name, "%s", name);
	t->type = kind == MATRIX || kind == EMBD ? matrix_type(type, ne0) : DK_TYPE_F32;
	t->ne0 = ne0;
	t->ne1 = ne1;
	t->ne2 = ne2;
	t->kind = kind;
	return n + 1;
}

static int add(struct tensor *ts, int n, const char *name, enum dk_ttype type, int64_t ne0,
	       int64_t ne1, enum kind kind)
{
	return add3(ts, n, name, type, ne0, ne1, 1, kind);
}

/* One row of tensor t (row r of ne1*ne2) in float. */
static void fill_row(const struct shape *sh, const struct tensor *t, int64_t r, float *row)
{
	bool fid = sh->out_sd > 0;
	switch (t->kind) {
	case NORM:
		if (fid) {
			fill_normal(row, t->ne0, 0.2f);
			for (int64_t j = 0; j < t->ne0; j++)
				row[j] += 1.0f;
		} else {
			for (int64_t j = 0; j < t->ne0; j++)
				row[j] = 1.0f;
		}
		return;
	case BIAS:
		fill_normal(row, t->ne0, 0.002f);
		return;
	case ROPE_SHORT: case ROPE_LONG:
		/* factors that grow with the pair index, as the published ones do:
		 * short ones near 1, long ones up to 1 + 20 */
		for (int64_t j = 0; j < t->ne0; j++) {
			float u = (float)j / (float)t->ne0;
			row[j] = t->kind == ROPE_SHORT ? 1.0f + 0.1f * u : 1.0f + 20.0f * u * u;
		}
		return;
	case EMBD:
		fill_normal(row, t->ne0,
			    !fid ? 0.02f
			    : sh->embd_sd > 0 && !strcmp(t->name, "token_embd.weight") ? sh->embd_sd
										  : sh->out_sd);
		return;
	case MATRIX: case ROUTER:
		fill_normal(row, t->ne0, fid ? 1.0f / sqrtf((float)t->ne0) : 0.02f);
		return;
	}
	(void)r;
}

static uint32_t file_type_of(enum dk_ttype t)
{
	/* llama.cpp's ftype numbering (mostly-<type>), a fact of the format */
	switch (t) {
	case DK_TYPE_F32: return 0;
	case DK_TYPE_F16: return 1;
	case DK_TYPE_Q4_0: return 2;
	case DK_TYPE_Q4_1: return 3;
	case DK_TYPE_Q8_0: return 7;
	case DK_TYPE_Q5_0: return 8;
	case DK_TYPE_Q5_1: return 9;
	case DK_TYPE_Q2_K: return 10;
	case DK_TYPE_Q3_K: return 11; /* Q3_K_S: every matrix Q3_K */
	case DK_TYPE_Q4_K: return 14; /* Q4_K_S */
	case DK_TYPE_Q5_K: return 16; /* Q5_K_S */
	case DK_TYPE_Q6_K: return 18;
	default: return 0;
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_gen_gguf --shape ");
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		fprintf(stderr, "%s%s", i ? "|" : "", shapes[i].name);
	fprintf(stderr, "\n                      --type q4_0|q4_1|q5_0|q5_1|q8_0|q2_k|q3_k|q4_k|q5_k|q6_k|f16|f32\n"
			"                      --vocab-from V.gguf\n"
			"                      --out OUT.gguf [--seed N] [--chat-template FILE]\n");
	return 2;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = (n + 4096 + 1) * 2;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		size_t k = fread(buf + n, 1, 4096, f);
		n += k;
		if (k < 4096)
			break;
	}
	bool bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	return buf;
}

int main(int argc, char **argv)
{
	const char *shape_name = NULL, *type_name = "q8_0", *vocab = NULL, *out_path = NULL,
		   *tmpl_path = NULL;
	uint64_t seed = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			return usage();
		if (!strcmp(a, "--shape"))
			shape_name = argv[++i];
		else if (!strcmp(a, "--type"))
			type_name = argv[++i];
		else if (!strcmp(a, "--vocab-from"))
			vocab = argv[++i];
		else if (!strcmp(a, "--out"))
			out_path = argv[++i];
		else if (!strcmp(a, "--chat-template"))
			tmpl_path = argv[++i];
		else if (!strcmp(a, "--seed"))
			seed = strtoull(argv[++i], NULL, 10);
		else
			return usage();
	}
	if (!shape_name || !vocab || !out_path)
		return usage();

	const struct shape *sh = NULL;
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		if (!strcmp(shapes[i].name, shape_name))
			sh = &shapes[i];
	if (!sh) {
		fprintf(stderr, "bench_gen_gguf: unknown shape '%s'\n", shape_name);
		return 2;
	}
	static const struct { const char *name; enum dk_ttype t; } types[] = {
		{"q4_0", DK_TYPE_Q4_0}, {"q4_1", DK_TYPE_Q4_1}, {"q5_0", DK_TYPE_Q5_0},
		{"q5_1", DK_TYPE_Q5_1}, {"q8_0", DK_TYPE_Q8_0}, {"q2_k", DK_TYPE_Q2_K},
		{"q3_k", DK_TYPE_Q3_K}, {"q4_k", DK_TYPE_Q4_K}, {"q5_k", DK_TYPE_Q5_K},
		{"q6_k", DK_TYPE_Q6_K}, {"f16", DK_TYPE_F16}, {"f32", DK_TYPE_F32},
	};
	enum dk_ttype wtype = DK_TYPE_COUNT;
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (!strcmp(types[i].name, type_name))
			wtype = types[i].t;
	if (wtype == DK_TYPE_COUNT ||
	    (wtype != DK_TYPE_F32 && (!dk_quant_traits(wtype) || !dk_quant_traits(wtype)->from_float))) {
		fprintf(stderr, "bench_gen_gguf: unsupported type '%s'\n", type_name);
		return 2;
	}

	struct dk_gguf *g = NULL;
	if (dk_gguf_open(&g, vocab) != DK_OK) {
		fprintf(stderr, "bench_gen_gguf: %s\n", g ? dk_gguf_error(g) : "out of memory");
		dk_gguf_free(g);
		return 1;
	}
	enum dk_gguf_vtype et;
	uint64_t n_vocab;
	if (!dk_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_vocab) || et != DK_GGUF_STRING) {
		fprintf(stderr, "bench_gen_gguf: '%s' has no tokenizer.ggml.tokens\n", vocab);
		dk_gguf_free(g);
		return 1;
	}
	if (sh->n_vocab && sh->n_vocab != n_vocab)
		fprintf(stderr, "bench_gen_gguf: note: %s has %" PRIu64 " tokens, %s nominally %u; "
			"using %" PRIu64 "\n", vocab, n_vocab, sh->name, sh->n_vocab, n_vocab);

	char *tmpl = NULL;
	if (tmpl_path && !(tmpl = read_text(tmpl_path))) {
		fprintf(stderr, "bench_gen_gguf: cannot read '%s': %s\n", tmpl_path, strerror(errno));
		dk_gguf_free(g);
		return 1;
	}

	/* tensor list, in the order converters write it */
	int64_t E = sh->n_embd, hd = sh->head_dim ? sh->head_dim : sh->n_embd / sh->n_head;
	int64_t qd = hd * sh->n_head, kvd = hd * sh->n_head_kv, nrot = sh->n_rot ? sh->n_rot : hd;
	int cap = 5 + 16 * (int)sh->n_layer;
	struct tensor *ts = calloc((size_t)cap, sizeof *ts);
	if (!ts) {
		dk_gguf_free(g);
		free(tmpl);
		return 1;
	}
	int nt = 0;
	nt = add(ts, nt, "token_embd.weight", wtype, E, (int64_t)n_vocab, EMBD);
	if (sh->n_ctx_orig) {
		nt = add(ts, nt, "rope_factors_long.weight", wtype, nrot / 2, 1, ROPE_LONG);
		nt = add(ts, nt, "rope_factors_short.weight", wtype, nrot / 2, 1, ROPE_SHORT);
	}
	nt = add(ts, nt, "output_norm.weight", wtype, E, 1, NORM);
	if (sh->untied)
		nt = add(ts, nt, "output.weight", wtype, E, (int64_t)n_vocab, EMBD);
	for (uint32_t l = 0; l < sh->n_layer; l++) {
		char nm[64];
#define T3(suffix, ne0, ne1, ne2, kind)                                   \
	do {                                                              \
		snprintf(nm, sizeof nm, "blk.%u.%s", l, suffix);          \
		nt = add3(ts, nt, nm, wtype, ne0, ne1, ne2, kind);        \
	} while (0)
#define T(suffix, ne0, ne1, kind) T3(suffix, ne0, ne1, 1, kind)
		T("attn_norm.weight", E, 1, NORM);
		if (sh->fused_qkv) {
			T("attn_qkv.weight", E, qd + 2 * kvd, MATRIX);
		} else {
			T("attn_q.weight", E, qd, MATRIX);
			T("attn_k.weight", E, kvd, MATRIX);
			T("attn_v.weight", E, kvd, MATRIX);
		}
		if (sh->qkv_bias) {
			T("attn_q.bias", qd, 1, BIAS);
			T("attn_k.bias", kvd, 1, BIAS);
			T("attn_v.bias", kvd, 1, BIAS);
		}
		if (sh->qk_norm) {
			T("attn_k_norm.weight", hd, 1, NORM);
			T("attn_q_norm.weight", hd, 1, NORM);
		}
		T("attn_output.weight", qd, E, MATRIX);
		if (sh->post_norms)
			T("post_attention_norm.weight", E, 1, NORM);
		T("ffn_norm.weight", E, 1, NORM);
		if (sh->n_expert) {
			T("ffn_gate_inp.weight", E, sh->n_expert, ROUTER);
			T3("ffn_gate_exps.weight", E, sh->n_ff_exp, sh->n_expert, MATRIX);
			T3("ffn_down_exps.weight", sh->n_ff_exp, E, sh->n_expert, MATRIX);
			T3("ffn_up_exps.weight", E, sh->n_ff_exp, sh->n_expert, MATRIX);
		} else if (sh->fused_gate_up) {
			T("ffn_up.weight", E, 2 * (int64_t)sh->n_ff, MATRIX);
			T("ffn_down.weight", sh->n_ff, E, MATRIX);
		} else {
			T("ffn_gate.weight", E, sh->n_ff, MATRIX);
			T("ffn_up.weight", E, sh->n_ff, MATRIX);
			T("ffn_down.weight", sh->n_ff, E, MATRIX);
		}
		if (sh->post_norms)
			T("post_ffw_norm.weight", E, 1, NORM);
#undef T
#undef T3
	}
	uint64_t off = 0;
	for (int i = 0; i < nt; i++) {
		ts[i].offset = off;
		off += dk_ttype_row_bytes(ts[i].type, ts[i].ne0) * (uint64_t)ts[i].ne1 *
		       (uint64_t)ts[i].ne2;
		off = (off + ALIGN - 1) / ALIGN * ALIGN;
	}

	struct out o = {.f = fopen(out_path, "wb"), .path = out_path};
	if (!o.f) {
		fprintf(stderr, "bench_gen_gguf: cannot create '%s': %s\n", out_path, strerror(errno));
		free(ts);
		free(tmpl);
		dk_gguf_free(g);
		return 1;
	}

	int64_t n_tok_kv = 0;
	for (int64_t i = 0; i < dk_gguf_n_kv(g); i++)
		if (!strncmp(dk_gguf_kv_key(g, i), "tokenizer.", 10) &&
		    !(tmpl && !strcmp(dk_gguf_kv_key(g, i), "tokenizer.chat_template")))
			n_tok_kv++;
	uint64_t n_kv = 14 + (uint64_t)n_tok_kv + (tmpl != NULL);
	n_kv += (sh->head_dim ? 2 : 0) + (sh->n_expert ? 3 : 0) + (sh->n_ctx_orig ? 2 : 0) +
		(sh->n_swa ? 1 : 0) + (sh->swa_pattern ? 1 : 0) + (sh->logit_scale != 0 ? 4 : 0);
	char key[128];
	const char *a = sh->arch;
	put(&o, "GGUF", 4);
	put_u32(&o, 3);
	put_u64(&o, (uint64_t)nt);
	put_u64(&o, n_kv);
	kv_str(&o, "general.architecture", a);
	kv_str(&o, "general.name", sh->model_name);
	kv_u32(&o, "general.alignment", ALIGN);
	kv_u32(&o, "general.file_type", file_type_of(wtype));
#define KU(suffix, v) (snprintf(key, sizeof key, "%s." suffix, a), kv_u32(&o, key, v))
#define KF(suffix, v) (snprintf(key, sizeof key, "%s." suffix, a), kv_f32(&o, key, v))
	KU("context_length", sh->n_ctx);
	KU("embedding_length", sh->n_embd);
	KU("block_count", sh->n_layer);
	KU("feed_forward_length", sh->n_ff);
	KU("attention.head_count", sh->n_head);
	KU("attention.head_count_kv", sh->n_head_kv);
	KU("rope.dimension_count", (uint32_t)nrot);
	KU("vocab_size", (uint32_t)n_vocab);
	KF("rope.freq_base", sh->rope_base);
	KF("attention.layer_norm_rms_epsilon", sh->eps);
	if (sh->head_dim) {
		KU("attention.key_length", sh->head_dim);
		KU("attention.value_length", sh->head_dim);
	}
	if (sh->n_expert) {
		KU("expert_count", sh->n_expert);
		KU("expert_used_count", sh->n_expert_used);
		KU("expert_feed_forward_length", sh->n_ff_exp);
	}
	if (sh->n_ctx_orig) {
		/* su/longrope's attention factor, as the phi3 converter computes it */
		double scale = (double)sh->n_ctx / sh->n_ctx_orig;
		KU("rope.scaling.original_context_length", sh->n_ctx_orig);
		KF("rope.scaling.attn_factor",
		   (float)sqrt(1.0 + log(scale) / log((double)sh->n_ctx_orig)));
	}
	if (sh->n_swa)
		KU("attention.sliding_window", sh->n_swa);
	if (sh->swa_pattern)
		KU("attention.sliding_window_pattern", sh->swa_pattern);
	if (sh->logit_scale != 0) {
		KF("embedding_scale", sh->embd_scale);
		KF("residual_scale", sh->residual_scale);
		KF("attention.scale", sh->attn_scale);
		KF("logit_scale", sh->logit_scale);
	}
#undef KU
#undef KF
	for (int64_t i = 0; i < dk_gguf_n_kv(g); i++) {
		if (strncmp(dk_gguf_kv_key(g, i), "tokenizer.", 10) ||
		    (tmpl && !strcmp(dk_gguf_kv_key(g, i), "tokenizer.chat_template")))
			continue;
		if (!copy_kv(&o, g, i)) {
			fprintf(stderr, "bench_gen_gguf: cannot copy '%s' from '%s'\n",
				dk_gguf_kv_key(g, i), vocab);
			o.failed = true;
		}
	}
	if (tmpl)
		kv_str(&o, "tokenizer.chat_template", tmpl);
	for (int i = 0; i < nt; i++) {
		put_str(&o, ts[i].name, strlen(ts[i].name));
		uint32_t nd = ts[i].ne2 > 1 ? 3 : ts[i].ne1 > 1 ? 2 : 1;
		put_u32(&o, nd);
		put_u64(&o, (uint64_t)ts[i].ne0);
		if (nd >= 2)
			put_u64(&o, (uint64_t)ts[i].ne1);
		if (nd == 3)
			put_u64(&o, (uint64_t)ts[i].ne2);
		put_u32(&o, (uint32_t)ts[i].type);
		put_u64(&o, ts[i].offset);
	}
	pad_to(&o, ALIGN);
	uint64_t data_start = o.pos;

	int64_t maxrow = 0;
	for (int i = 0; i < nt; i++)
		maxrow = ts[i].ne0 > maxrow ? ts[i].ne0 : maxrow;
	float *row = malloc((size_t)maxrow * sizeof *row);
	void *q = malloc(dk_ttype_row_bytes(DK_TYPE_F32, maxrow));
	rng_state = seed;
	for (int i = 0; i < nt && row && q && !o.failed; i++) {
		pad_to(&o, ALIGN);
		if (o.pos - data_start != ts[i].offset) {
			fprintf(stderr, "bench_gen_gguf: internal error: offset of '%s'\n", ts[i].name);
			o.failed = true;
			break;
		}
		size_t rb = dk_ttype_row_bytes(ts[i].type, ts[i].ne0);
		for (int64_t r = 0; r < ts[i].ne1 * ts[i].ne2; r++) {
			fill_row(sh, &ts[i], r, row);
			if (ts[i].type == DK_TYPE_F32)
				memcpy(q, row, rb);
			else
				dk_quant_traits(ts[i].type)->from_float(row, q, ts[i].ne0);
			put(&o, q, rb);
		}
	}
	pad_to(&o, ALIGN);
	if (!row || !q)
		o.failed = true;
	free(row);
	free(q);
	free(ts);
	free(tmpl);
	dk_gguf_free(g);
	if (fclose(o.f) != 0)
		o.failed = true;
	if (o.failed) {
		fprintf(stderr, "bench_gen_gguf: cannot write '%s'\n", out_path);
		remove(out_path);
		return 1;
	}
	fprintf(stderr, "bench_gen_gguf: wrote '%s' (%s, %s, %d tensors, %.1f MiB)\n", out_path,
		sh->name, type_name, nt, (double)o.pos / (1024.0 * 1024.0));
	return 0;
}
