/*
 * Model load and information: maps the GGUF file, reads and checks the
 * hyper-parameters and tensors, packs the matmul weights, hashes the file
 * from its mapping and builds the tokenizer; after dk_model_load the model
 * is immutable and shared by any number of contexts.  The forward pass is
 * in forward.c, the prefix-file format in prefix_file.c.
 */
#include "docket/model.h"

#include "docket/chat.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/err.h"
#include "util/sha256.h"
#include "engine/core/model_impl.h"


struct dk_model_params dk_model_default_params(void)
{
	return (struct dk_model_params){.verify_tensors = false};
}

/* ---- loading ---- */

static bool hp_u32(struct dk_model *m, const char *arch, const char *suffix, int32_t *out,
		   int32_t dflt, bool required)
{
	char key[160];
	uint32_t v;
	snprintf(key, sizeof key, "%s.%s", arch, suffix);
	if (dk_gguf_get_u32(m->g, key, &v) && v <= INT32_MAX) {
		*out = (int32_t)v;
		return true;
	}
	if (required) {
		dk_err(m->err, sizeof m->err, DK_FATAL, "cannot load '%s': missing or bad '%s'",
		       m->path, key);
		return false;
	}
	*out = dflt;
	return true;
}

static const struct dk_gguf_tensor *want(struct dk_model *m, const char *name, int64_t ne0,
					 int64_t ne1, bool optional, bool f32_only)
{
	const struct dk_gguf_tensor *t = dk_gguf_tensor_by_name(m->g, name);
	if (!t) {
		if (!optional)
			dk_err(m->err, sizeof m->err, DK_FATAL, "cannot load '%s': missing tensor '%s'",
			       m->path, name);
		return NULL;
	}
	int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
	if (t->ne[0] != ne0 || rows != ne1) {
		dk_err(m->err, sizeof m->err, DK_FATAL,
		       "cannot load '%s': tensor '%s' is %" PRId64 "x%" PRId64 ", expected %" PRId64
		       "x%" PRId64,
		       m->path, name, t->ne[0], rows, ne0, ne1);
		return NULL;
	}
	const struct dk_qtraits *tr = dk_quant_traits(t->type);
	if (f32_only ? t->type != DK_TYPE_F32 : !tr || !tr->vec_dot || !dk_quant_traits(tr->dot_type) ||
						      !dk_quant_traits(tr->dot_type)->from_float) {
		dk_err(m->err, sizeof m->err, DK_FATAL,
		       "cannot load '%s': tensor '%s' has type %s, which is not supported there",
		       m->path, name, dk_ttype_name(t->type) ? dk_ttype_name(t->type) : "?");
		return NULL;
	}
	return t;
}

/* Gemma 3: embeddings times sqrt(n_embd), sliding-window attention on
 * most layers with their own rope base, one global layer in every
 * sliding_window_pattern (6 unless the file says; or one flag per layer). */
static enum dk_status gemma3_hparams(struct dk_model *m)
{
	struct dk_model_info *hp = &m->info;
	const char *a = hp->arch;
	char key[160];
	hp->embd_scale = sqrtf((float)hp->n_embd);
	/* the 27B model's queries are scaled by 1/sqrt(n_embd / n_head), its
	 * query_pre_attn_scalar, which no key carries: llama.cpp tells it by
	 * its 62 layers */
	if (hp->n_layer == 62)
		hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
	float cap = 0;
	snprintf(key, sizeof key, "%s.final_logit_softcapping", a);
	if (dk_gguf_get_f32(m->g, key, &cap) && cap != 0)
		return dk_err(m->err, sizeof m->err, DK_FATAL,
			      "cannot load '%s': final logit softcapping is not supported", m->path);
	if (!hp_u32(m, a, "attention.sliding_window", &hp->n_swa, 0, false))
		return DK_FATAL;
	if (hp->n_swa <= 0)
		return DK_OK;
	snprintf(key, sizeof key, "%s.rope.freq_base_swa", a);
	if (!dk_gguf_get_f32(m->g, key, &hp->rope_freq_base_swa))
		hp->rope_freq_base_swa = 10000.0f;
	if (!(hp->rope_freq_base_swa > 0))
		return dk_err(m->err, sizeof m->err, DK_FATAL, "cannot load '%s': bad '%s'", m->path,
			      key);
	snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", a);
	enum dk_gguf_vtype et;
	uint64_t count;
	const uint8_t *flags = NULL;
	if (dk_gguf_get_arr(m->g, key, &et, &count)) {
		if ((et != DK_GGUF_BOOL && et != DK_GGUF_UINT8 && et != DK_GGUF_INT8) ||
		    count != (uint64_t)hp->n_layer || !(flags = dk_gguf_arr_data(m->g, key)))
			return dk_err(m->err, sizeof m->err, DK_FATAL,
				      "cannot load '%s': '%s' is not one flag per layer", m->path, key);
	}
	int32_t pattern = 6;
	if (!flags && !hp_u32(m, a, "attention.sliding_window_pattern", &pattern, 6, false))
		return DK_FATAL;
	for (int i = 0; i < hp->n_layer; i++)
		m->layers[i].swa = flags ? flags[i] != 0 : pattern == 0 || i % pattern < pattern - 1;
	return DK_OK;
}

/* The architectures docket runs; everything else is llama's layer. */
static const struct arch_traits archs[] = {
	/* name        neox   qkv_bias qk_norm moe    gate_up scales post_norms gelu   hparams */
	{"llama",      false, false,   false,  false, false,  false, false,     false, NULL},
	{"qwen2",      true,  true,    false,  false, false,  false, false,     false, NULL},
	{"qwen3",      true,  false,   true,   false, false,  false, false,     false, NULL},
	{"qwen3moe",   true,  false,   true,   true,  false,  false, false,     false, NULL},
	{"phi3",       true,  false,   false,  false, true,   false, false,     false, NULL},
	{"granite",    false, false,   false,  false, false,  true,  false,     false, NULL},
	{"gemma3",     true,  false,   true,   false, false,  false, true,      true,  gemma3_hparams},
};

static const struct arch_traits *arch_find(const char *name)
{
	for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
		if (!strcmp(archs[i].name, name))
			return &archs[i];
	return NULL;
}

/* A view of rows [r0, r0 + n) of matrix t (ne[0] columns), from the
 * model's view array. */
static const struct dk_gguf_tensor *view_of(struct dk_model *m, const struct dk_gguf_tensor *t,
					    int64_t r0, int64_t n)
{
	if (m->n_views >= m->cap_views)
		return NULL;
	struct dk_gguf_tensor *v = &m->views[m->n_views++];
	size_t rb = dk_ttype_row_bytes(t->type, t->ne[0]);
	*v = *t;
	v->n_dims = 2;
	v->ne[1] = n;
	v->ne[2] = v->ne[3] = 1;
	v->offset = t->offset + (uint64_t)r0 * rb;
	v->nbytes = (size_t)n * rb;
	v->data = (const uint8_t *)t->data + (size_t)r0 * rb;
	return v;
}

const struct dk_pack *dk_model_pack_of(const struct dk_model *m, const struct dk_gguf_tensor *t)
{
	int64_t i = dk_gguf_tensor_index(m->g, t);
	if (i >= 0)
		return m->packs ? m->packs[i] : NULL;
	/* pointer comparison only within the array: compare addresses as integers */
	uintptr_t a = (uintptr_t)m->views, p = (uintptr_t)t;
	if (!m->views || !m->view_packs || p < a || p >= a + (uintptr_t)m->n_views * sizeof *t)
		return NULL;
	return m->view_packs[(p - a) / sizeof *t];
}

#define WANT(var, ne0, ne1, opt, f32)                                  \
	do {                                                           \
		(var) = want(m, name, (ne0), (ne1), (opt), (f32));     \
		if (!(var) && (!(opt) || dk_gguf_tensor_by_name(m->g, name))) \
			return DK_FATAL;                               \
	} while (0)

/* An ffn_*_exps tensor: n_expert matrices of `rows` x ne0, one view each. */
static enum dk_status load_experts(struct dk_model *m, int layer, const char *suffix, int64_t ne0,
				   int64_t rows, const struct dk_gguf_tensor **out)
{
	const struct dk_model_info *hp = &m->info;
	char name[128];
	snprintf(name, sizeof name, "blk.%d.%s", layer, suffix);
	const struct dk_gguf_tensor *t;
	WANT(t, ne0, rows * hp->n_expert, false, false);
	if (t->ne[1] != rows || t->ne[2] != hp->n_expert)
		return dk_err(m->err, sizeof m->err, DK_FATAL,
			      "cannot load '%s': tensor '%s' is not %d experts of %" PRId64 " rows",
			      m->path, name, hp->n_expert, rows);
	for (int e = 0; e < hp->n_expert; e++)
		if (!(out[e] = view_of(m, t, (int64_t)e * rows, rows)))
			return dk_err(m->err, sizeof m->err, DK_FATAL, "cannot load '%s': out of memory",
				      m->path);
	return DK_OK;
}

static enum dk_status load_tensors(struct dk_model *m)
{
	struct dk_model_info *hp = &m->info;
	const struct arch_traits *A = m->arch;
	char name[128];
	int64_t E = hp->n_embd, qd = (int64_t)hp->n_head * hp->head_dim,
		kvd = (int64_t)hp->n_head_kv * hp->head_dim, FF = hp->n_ff;

	const struct dk_gguf_tensor *te = dk_gguf_tensor_by_name(m->g, "token_embd.weight");
	if (!te)
		return dk_err(m->err, sizeof m->err, DK_FATAL,
			      "cannot load '%s': missing tensor 'token_embd.weight'", m->path);
	hp->n_vocab = (int32_t)te->ne[1];
	snprintf(name, sizeof name, "token_embd.weight");
	WANT(m->tok_embd, E, hp->n_vocab, false, false);
	snprintf(name, sizeof name, "output_norm.weight");
	WANT(m->out_norm, E, 1, false, true);
	snprintf(name, sizeof name, "output.weight");
	WANT(m->output, E, hp->n_vocab, true, false);
	hp->tied_output = m->output == NULL;
	if (!m->output)
		m->output = m->tok_embd;
	snprintf(name, sizeof name, "rope_freqs.weight");
	WANT(m->rope_freqs, hp->n_rot / 2, 1, true, true);
	snprintf(name, sizeof name, "rope_factors_short.weight");
	WANT(m->rope_short, hp->n_rot / 2, 1, true, true);
	snprintf(name, sizeof name, "rope_factors_long.weight");
	WANT(m->rope_long, hp->n_rot / 2, 1, true, true);

	m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
	/* views: 3 of a fused attn_qkv, 2 of a fused ffn_up, 3 per expert */
	m->cap_views = (int64_t)hp->n_layer * (5 + 3 * (int64_t)hp->n_expert);
	m->views = calloc((size_t)m->cap_views, sizeof *m->views);
	m->expert_ptrs = calloc((size_t)hp->n_layer * 3 * (size_t)hp->n_expert + 1,
				sizeof *m->expert_ptrs);
	if (!m->layers || !m->views || !m->expert_ptrs)
		return dk_err(m->err, sizeof m->err, DK_FATAL, "cannot load '%s': out of memory", m->path);
	for (int i = 0; i < hp->n_layer; i++) {
		struct layer *L = &m->layers[i];
#define T(field, suffix, ne0, ne1, opt, f32)                                 \
	snprintf(name, sizeof name, "blk.%d.%s", i, suffix);                 \
	WANT(L->field, ne0, ne1, opt, f32);
		T(attn_norm, "attn_norm.weight", E, 1, false, true);
		const struct dk_gguf_tensor *qkv, *gu;
		snprintf(name, sizeof name, "blk.%d.attn_qkv.weight", i);
		WANT(qkv, E, qd + 2 * kvd, true, false);
		if (qkv) {
			L->wq = view_of(m, qkv, 0, qd);
			L->wk = view_of(m, qkv, qd, kvd);
			L->wv = view_of(m, qkv, qd + kvd, kvd);
		} else {
			T(wq, "attn_q.weight", E, qd, false, false);
			T(wk, "attn_k.weight", E, kvd, false, false);
			T(wv, "attn_v.weight", E, kvd, false, false);
		}
		T(wo, "attn_output.weight", qd, E, false, false);
		T(bq, "attn_q.bias", qd, 1, !A->qkv_bias, true);
		T(bk, "attn_k.bias", kvd, 1, !A->qkv_bias, true);
		T(bv, "attn_v.bias", kvd, 1, !A->qkv_bias, true);
		T(bo, "attn_output.bias", E, 1, true, true);
		T(q_norm, "attn_q_norm.weight", hp->head_dim, 1, !A->qk_norm, true);
		T(k_norm, "attn_k_norm.weight", hp->head_dim, 1, !A->qk_norm, true);
		if (A->post_norms) {
			T(attn_post_norm, "post_attention_norm.weight", E, 1, false, true);
			T(ffn_post_norm, "post_ffw_norm.weight", E, 1, false, true);
		}
		T(ffn_norm, "ffn_norm.weight", E, 1, false, true);
		if (A->moe) {
			T(gate_inp, "ffn_gate_inp.weight", E, hp->n_expert, false, false);
			const struct dk_gguf_tensor **ep =
				m->expert_ptrs + (size_t)i * 3 * (size_t)hp->n_expert;
			L->eg = ep;
			L->eu = ep + hp->n_expert;
			L->ed = ep + 2 * hp->n_expert;
			if (load_experts(m, i, "ffn_gate_exps.weight", E, hp->n_ff_exp, L->eg) != DK_OK ||
			    load_experts(m, i, "ffn_up_exps.weight", E, hp->n_ff_exp, L->eu) != DK_OK ||
			    load_experts(m, i, "ffn_down_exps.weight", hp->n_ff_exp, E, L->ed) != DK_OK)
				return DK_FATAL;
		} else if (A->fused_gate_up) {
			snprintf(name, sizeof name, "blk.%d.ffn_up.weight", i);
			WANT(gu, E, 2 * FF, false, false);
			L->wg = view_of(m, gu, 0, FF);
			L->wu = view_of(m, gu, FF, FF);
			T(wd, "ffn_down.weight", FF, E, false, false);
		} else {
			T(wg, "ffn_gate.weight", E, FF, false, false);
			T(wu, "ffn_up.weight", E, FF, false, false);
			T(wd, "ffn_down.weight", FF, E, false, false);
		}
#undef T
		if ((!A->moe && (!L->wg || !L->wu)) || !L->wq || !L->wk || !L->wv)
			return dk_err(m->err, sizeof m->err, DK_FATAL, "cannot load '%s': out of memory",
				      m->path);
	}
	/* the most common weight type, for display */
	int count[DK_TYPE_COUNT] = {0};
	for (int64_t i = 0; i < dk_gguf_n_tensors(m->g); i++) {
		const struct dk_gguf_tensor *t = dk_gguf_tensor(m->g, i);
		int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
		hp->n_params += (uint64_t)n;
		hp->weight_bytes += t->nbytes;
		if (t->n_dims >= 2)
			count[t->type]++;
	}
	int best = 0;
	for (int t = 0; t < DK_TYPE_COUNT; t++)
		if (count[t] > count[best])
			best = t;
	hp->wtype = (enum dk_ttype)best;
	return DK_OK;
}

static enum dk_status check_finite(struct dk_model *m)
{
	for (int64_t i = 0; i < dk_gguf_n_tensors(m->g); i++) {
		const struct dk_gguf_tensor *t = dk_gguf_tensor(m->g, i);
		const struct dk_qtraits *tr = dk_quant_traits(t->type);
		if (!tr)
			continue;
		float *row = malloc((size_t)t->ne[0] * sizeof *row);
		if (!row)
			return dk_err(m->err, sizeof m->err, DK_FATAL, "cannot load '%s': out of memory",
				      m->path);
		int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
		size_t rb = dk_ttype_row_bytes(t->type, t->ne[0]);
		for (int64_t r = 0; r < rows; r++) {
			tr->to_float((const uint8_t *)t->data + r * rb, row, t->ne[0]);
			for (int64_t j = 0; j < t->ne[0]; j++)
				if (!isfinite(row[j])) {
					free(row);
					return dk_err(m->err, sizeof m->err, DK_FATAL,
						      "cannot load '%s': tensor '%s' holds a non-finite value (row %" PRId64 ")",
						      m->path, t->name, r);
				}
		}
		free(row);
	}
	return DK_OK;
}

/* Repacks every matmul weight that has a packed kernel on this CPU (see
 * pack.h): one copy made at load, shared read-only by every context.  The
 * mapped originals are then dropped from memory, except the embedding
 * table, which lookups still read.  A weight that cannot be packed (out of
 * memory) keeps the per-row kernels: slower, same results per sequence. */
static void pack_weights(struct dk_model *m)
{
	int64_t n = dk_gguf_n_tensors(m->g);
	m->packs = calloc((size_t)n, sizeof *m->packs);
	m->view_packs = calloc((size_t)m->n_views + 1, sizeof *m->view_packs);
	if (!m->packs || !m->view_packs)
		return;
	/* the output, every layer's matrices, then every view (experts) */
	int64_t nmat = 1 + 7 * (int64_t)m->info.n_layer + m->n_views;
	for (int64_t k = 0; k < nmat; k++) {
		const struct dk_gguf_tensor *t;
		if (k == 0) {
			t = m->output;
		} else if (k <= 7 * (int64_t)m->info.n_layer) {
			const struct layer *L = &m->layers[(k - 1) / 7];
			const struct dk_gguf_tensor *ls[] = { L->wq, L->wk, L->wv, L->wo, L->wg, L->wu, L->wd };
			t = ls[(k - 1) % 7];
		} else {
			t = &m->views[k - 1 - 7 * (int64_t)m->info.n_layer];
		}
		if (!t || !dk_pack_supported(t->type))
			continue;
		int64_t idx = dk_gguf_tensor_index(m->g, t);
		struct dk_pack **slot = idx >= 0 ? &m->packs[idx] : &m->view_packs[t - m->views];
		if (*slot)
			continue;
		int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
		*slot = dk_pack_new(t->type, t->data, dk_ttype_row_bytes(t->type, t->ne[0]), t->ne[0],
				    rows);
		if (!*slot)
			continue;
		m->info.packed_bytes += dk_pack_bytes(*slot);
		if (t == m->tok_embd)
			continue;
		/* whole pages inside the tensor only: neighbours may be in use */
		long pg = sysconf(_SC_PAGESIZE);
		uintptr_t a = ((uintptr_t)t->data + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
		uintptr_t z = ((uintptr_t)t->data + t->nbytes) & ~((uintptr_t)pg - 1);
		if (pg > 0 && z > a)
			(void)madvise((void *)a, z - a, MADV_DONTNEED);
	}
}

/* The load; check: its checks only (dk_model_check), no hash, no packed
 * weights. */
static enum dk_status load(struct dk_model *m, const char *path, const struct dk_model_params *p,
			   bool check)
{
	m->path = strdup(path);
	if (!m->path)
		return dk_err(m->err, sizeof m->err, DK_FATAL, "cannot load '%s': out of memory", path);
	if (dk_gguf_open(&m->g, path) != DK_OK)
		return dk_err(m->err, sizeof m->err, DK_FATAL, "%s", dk_gguf_error(m->g));
	/* Hashed from the mapping once here, so contexts only read the model. */
	if (!check) {
		uint8_t digest[32];
		dk_sha256(dk_gguf_file_data(m->g), dk_gguf_file_size(m->g), digest);
		dk_sha256_hex(digest, m->sha256);
	}

	struct dk_model_info *hp = &m->info;
	const char *s;
	size_t n;
	if (!dk_gguf_get_str(m->g, "general.architecture", &s, &n))
		return dk_err(m->err, sizeof m->err, DK_FATAL,
			      "cannot load '%s': no general.architecture", path);
	snprintf(hp->arch, sizeof hp->arch, "%.*s", (int)n, s);
	m->arch = arch_find(hp->arch);
	if (!m->arch) {
		char list[256] = "";
		for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
				 archs[i].name);
		return dk_err(m->err, sizeof m->err, DK_FATAL,
			      "cannot load '%s': architecture '%s' is not supported (%s)", path,
			      hp->arch, list);
	}
	if (dk_gguf_get_str(m->g, "general.name", &s, &n))
		snprintf(hp->name, sizeof hp->name, "%.*s", (int)n, s);
	else {
		const char *b = strrchr(path, '/');
		snprintf(hp->name, sizeof hp->name, "%s", b ? b + 1 : path);
	}
	const char *a = hp->arch;
	if (!hp_u32(m, a, "context_length", &hp->n_ctx_train, 2048, false) ||
	    !hp_u32(m, a, "embedding_length", &hp->n_embd, 0, true) ||
	    !hp_u32(m, a, "block_count", &hp->n_layer, 0, true) ||
	    !hp_u32(m, a, "attention.head_count", &hp->n_head, 0, true) ||
	    !hp_u32(m, a, "attention.head_count_kv", &hp->n_head_kv, hp->n_head, false))
		return DK_FATAL;
	if (m->arch->moe) {
		if (!hp_u32(m, a, "expert_count", &hp->n_expert, 0, true) ||
		    !hp_u32(m, a, "expert_used_count", &hp->n_expert_used, 0, true) ||
		    !hp_u32(m, a, "expert_feed_forward_length", &hp->n_ff_exp, 0, true) ||
		    !hp_u32(m, a, "feed_forward_length", &hp->n_ff, hp->n_ff_exp, false))
			return DK_FATAL;
		if (hp->n_expert <= 0 || hp->n_expert > 4096 || hp->n_expert_used <= 0 ||
		    hp->n_expert_used > hp->n_expert || hp->n_expert_used > DK_MAX_EXPERTS_USED ||
		    hp->n_ff_exp <= 0)
			return dk_err(m->err, sizeof m->err, DK_FATAL,
				      "cannot load '%s': inconsistent experts (%d, %d used, ff %d)", path,
				      hp->n_expert, hp->n_expert_used, hp->n_ff_exp);
	} else if (!hp_u32(m, a, "feed_forward_length", &hp->n_ff, 0, true)) {
		return DK_FATAL;
	}
	if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_layer > 1024 || hp->n_head <= 0 ||
	    hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv || hp->n_ff <= 0)
		return dk_err(m->err, sizeof m->err, DK_FATAL,
			      "cannot load '%s': inconsistent hyper-parameters (embd %d, layers %d, "
			      "heads %d/%d, ff %d)",
			      path, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff);
	if (!hp_u32(m, a, "attention.key_length", &hp->head_dim, hp->n_embd / hp->n_head, false))
		return DK_FATAL;
	if (!hp_u32(m, a, "rope.dimension_count", &hp->n_rot, hp->head_dim, false))
		return DK_FATAL;
	if (hp->head_dim <= 0 || hp->head_dim > 1024 || hp->n_rot <= 0 || hp->n_rot > hp->head_dim ||
	    hp->n_rot % 2)
		return dk_err(m->err, sizeof m->err, DK_FATAL,
			      "cannot load '%s': bad head size %d / rope dims %d", path, hp->head_dim,
			      hp->n_rot);
	char key[160];
	snprintf(key, sizeof key, "%s.rope.freq_base", a);
	if (!dk_gguf_get_f32(m->g, key, &hp->rope_freq_base))
		hp->rope_freq_base = 10000.0f;
	snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a);
	if (!dk_gguf_get_f32(m->g, key, &hp->norm_eps))
		hp->norm_eps = 1e-5f;
	hp->rope_freq_scale = 1.0f;
	float factor = 0;
	snprintf(key, sizeof key, "%s.rope.scaling.type", a);
	if (dk_gguf_get_str(m->g, key, &s, &n) && !(n == 4 && !memcmp(s, "none", 4))) {
		/* longrope: the frequency factors are tensors (rope_factors_*) */
		if (!(n == 6 && !memcmp(s, "linear", 6)) && !(n == 8 && !memcmp(s, "longrope", 8)))
			return dk_err(m->err, sizeof m->err, DK_FATAL,
				      "cannot load '%s': rope scaling '%.*s' is not supported (linear, "
				      "longrope)",
				      path, (int)n, s);
		snprintf(key, sizeof key, "%s.rope.scaling.factor", a);
		dk_gguf_get_f32(m->g, key, &factor);
	} else {
		snprintf(key, sizeof key, "%s.rope.scale_linear", a);
		dk_gguf_get_f32(m->g, key, &factor);
	}
	if (factor > 0)
		hp->rope_freq_scale = 1.0f / factor;
	if (!hp_u32(m, a, "rope.scaling.original_context_length", &hp->n_ctx_orig, hp->n_ctx_train,
		    false))
		return DK_FATAL;
	snprintf(key, sizeof key, "%s.rope.scaling.attn_factor", a);
	if (!dk_gguf_get_f32(m->g, key, &hp->rope_attn_factor))
		hp->rope_attn_factor = 1.0f;
	/* the multipliers: a key that is absent (or 0, as llama.cpp reads it)
	 * leaves that step out */
	static const struct { const char *suffix; size_t off; } mults[] = {
		{"embedding_scale", offsetof(struct dk_model_info, embd_scale)},
		{"residual_scale", offsetof(struct dk_model_info, residual_scale)},
		{"logit_scale", offsetof(struct dk_model_info, logit_scale)},
		{"attention.scale", offsetof(struct dk_model_info, attn_scale)},
	};
	for (size_t i = 0; i < sizeof mults / sizeof mults[0]; i++) {
		float *v = (float *)((char *)hp + mults[i].off), f = 0;
		snprintf(key, sizeof key, "%s.%s", a, mults[i].suffix);
		*v = m->arch->scales && dk_gguf_get_f32(m->g, key, &f) && f != 0 ? f : 0;
		if (!isfinite(*v))
			return dk_err(m->err, sizeof m->err, DK_FATAL, "cannot load '%s': bad '%s'",
				      path, key);
	}
	if (hp->attn_scale == 0)
		hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
	if (hp->embd_scale == 0)
		hp->embd_scale = 1.0f;
	if (hp->residual_scale == 0)
		hp->residual_scale = 1.0f;
	if (hp->logit_scale == 0)
		hp->logit_scale = 1.0f;
	if (!(hp->rope_freq_base > 0) || !(hp->norm_eps > 0))
		return dk_err(m->err, sizeof m->err, DK_FATAL,
			      "cannot load '%s': bad rope base or norm epsilon", path);
	hp->rope_freq_base_swa = hp->rope_freq_base;
	hp->rope_freq_scale_swa = 1.0f;

	if (load_tensors(m) != DK_OK)
		return DK_FATAL;
	if (m->arch->hparams && m->arch->hparams(m) != DK_OK)
		return DK_FATAL;
	if (!check && p->verify_tensors && check_finite(m) != DK_OK)
		return DK_FATAL;

	if (!check)
		pack_weights(m);

	if (dk_tokenizer_new(&m->tok, m->g) != DK_OK)
		return dk_err(m->err, sizeof m->err, DK_FATAL, "cannot load '%s': %s", path,
			      dk_tokenizer_error(m->tok));
	if (dk_gguf_get_str(m->g, "tokenizer.chat_template", &s, &n)) {
		m->chat_template = strndup(s, n);
		if (!m->chat_template)
			return dk_err(m->err, sizeof m->err, DK_FATAL, "cannot load '%s': out of memory",
				      path);
	}
	return DK_OK;
}

enum dk_status dk_model_load(struct dk_model **out, const char *path, const struct dk_model_params *p)
{
	struct dk_model_params dp = dk_model_default_params();
	struct dk_model *m = calloc(1, sizeof *m);
	*out = m;
	if (!m)
		return DK_FATAL;
	return load(m, path, p ? p : &dp, false);
}

enum dk_status dk_model_check(const char *path, char *why, size_t n)
{
	struct dk_model_params dp = dk_model_default_params();
	struct dk_model *m = calloc(1, sizeof *m);
	if (!m)
		return dk_err(why, n, DK_FATAL, "out of memory");
	enum dk_status st = load(m, path, &dp, true);
	if (st != DK_OK) {
		/* the reason alone: the caller names the file */
		char prefix[DK_ERRMSG_MAX];
		snprintf(prefix, sizeof prefix, "cannot load '%s': ", path);
		const char *e = m->err;
		if (!strncmp(e, prefix, strlen(prefix)))
			e += strlen(prefix);
		snprintf(why, n, "%s", e);
	}
	dk_model_free(m);
	return st;
}

void dk_model_free(struct dk_model *m)
{
	if (!m)
		return;
	dk_tokenizer_free(m->tok);
	if (m->packs)
		for (int64_t i = 0; i < dk_gguf_n_tensors(m->g); i++)
			dk_pack_free(m->packs[i]);
	free(m->packs);
	dk_gguf_free(m->g);
	if (m->view_packs)
		for (int64_t i = 0; i < m->n_views; i++)
			dk_pack_free(m->view_packs[i]);
	free(m->view_packs);
	free(m->views);
	free(m->expert_ptrs);
	free(m->layers);
	free(m->chat_template);
	free(m->path);
	free(m);
}

const char *dk_model_error(const struct dk_model *m) { return m ? m->err : "out of memory"; }
const struct dk_model_info *dk_model_info(const struct dk_model *m) { return &m->info; }
const struct dk_tokenizer *dk_model_tokenizer(const struct dk_model *m) { return m->tok; }
const struct dk_gguf *dk_model_gguf(const struct dk_model *m) { return m->g; }
const char *dk_model_chat_template(const struct dk_model *m) { return m->chat_template; }
const char *dk_model_path(const struct dk_model *m) { return m->path; }

const char *dk_model_sha256(struct dk_model *m) { return m->sha256; }

char *dk_model_chat_render(const struct dk_model *m, const char *family,
			   const struct dk_chat_msg *msgs, size_t n, bool add_assistant,
			   bool template_system, char *err, size_t errn)
{
	struct dk_chat_style st = {0};
	enum dk_chat_family f;
	if (family) {
		f = dk_chat_family_by_name(family);
		if (f == DK_CHAT_UNKNOWN) {
			dk_err(err, errn, DK_FATAL,
			       "unknown chat template family '%s' (chatml, llama2, llama3, mistral, "
			       "phi3, phi4, gemma, zephyr, granite, raw)", family);
			return NULL;
		}
	} else {
		f = dk_chat_detect_style(m->chat_template, &st);
		if (f == DK_CHAT_UNKNOWN) {
			dk_chat_style_clear(&st);
			dk_err(err, errn, DK_FATAL,
			       "the chat template of '%s' is %s; name a family (chatml, llama2, llama3, "
			       "mistral, phi3, phi4, gemma, zephyr, granite) or give a raw prompt",
			       m->path, m->chat_template ? "not one docket recognises" : "missing");
			return NULL;
		}
	}
	char bos[64] = "";
	dk_token b = dk_tokenizer_bos(m->tok);
	if (!dk_tokenizer_add_bos(m->tok) && b != DK_TOKEN_NULL) {
		size_t len;
		const char *t = dk_token_text(m->tok, b, &len);
		if (t && len < sizeof bos)
			memcpy(bos, t, len);
	}
	char eos[64] = "";
	dk_token e = dk_tokenizer_eos(m->tok);
	if (e != DK_TOKEN_NULL) {
		size_t len;
		const char *t = dk_token_text(m->tok, e, &len);
		if (t && len < sizeof eos)
			memcpy(eos, t, len);
	}
	struct dk_chat_opts o = {.default_system = template_system ? st.default_system : NULL,
				 .bos = bos[0] ? bos : NULL,
				 .eos = eos[0] ? eos : NULL};
	char *r = dk_chat_render_ex(f, msgs, n, add_assistant, &o);
	dk_chat_style_clear(&st);
	if (!r)
		dk_err(err, errn, DK_FATAL, "cannot render these messages as %s",
		       dk_chat_family_name(f));
	return r;
}

const char *dk_kernel_level_name(void) { return dk_quant_level_name(dk_quant_level()); }
