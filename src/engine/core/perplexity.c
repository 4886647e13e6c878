#include "docket/perplexity.h"
#include "docket/sampler.h"

#include <math.h>
#include <stdlib.h>

enum dk_status dk_perplexity(struct dk_ctx *c, const dk_token *toks, int64_t n, int32_t n_ctx,
			     int32_t max_chunks, dk_ppl_progress_fn cb, void *ud,
			     struct dk_ppl_result *out)
{
	struct dk_model *m = dk_ctx_model(c);
	const struct dk_tokenizer *tok = dk_model_tokenizer(m);
	int32_t nv = dk_model_info(m)->n_vocab;
	int32_t n_batch = dk_ctx_params(c)->n_batch;
	if (n_ctx < 4 || n_ctx > dk_ctx_params(c)->n_ctx || n < 2 * (int64_t)n_ctx)
		return DK_SKIP;
	struct dk_batch *b = dk_batch_new(n_batch);
	if (!b)
		return DK_FATAL;
	int32_t n_chunk = (int32_t)(n / n_ctx);
	if (max_chunks >= 0 && max_chunks < n_chunk)
		n_chunk = max_chunks;
	/* as llama-perplexity: the first token becomes BOS only where the
	 * vocabulary adds one (not Qwen's or GPT-2-style BPE vocabularies) */
	dk_token bos = dk_tokenizer_add_bos(tok) ? dk_tokenizer_bos(tok) : DK_TOKEN_NULL;
	const int32_t first = n_ctx / 2;
	double nll = 0, nll2 = 0;
	int64_t count = 0;
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
				if (p < first || p > n_ctx - 2)
					continue;
				double l = -dk_log_softmax_at(dk_logits(c, i), nv, ct[p + 1]);
				nll += l;
				nll2 += l * l;
				count++;
			}
		}
		if (st == DK_OK && cb)
			cb(ud, ch + 1, exp(nll / (double)count));
	}
	dk_kv_seq_clear(c, 0);
	dk_batch_free(b);
	if (st != DK_OK)
		return st;
	double mean = nll / (double)count, mean2 = nll2 / (double)count;
	out->n_chunk = n_chunk;
	out->count = count;
	out->ppl = exp(mean);
	out->err = count > 1 ? out->ppl * sqrt((mean2 - mean * mean) / (double)(count - 1)) : 0;
	return DK_OK;
}
