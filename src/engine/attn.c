#include "attn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "quant.h"

static inline const uint8_t *row(const struct dk_attn_args *a, size_t off, int32_t j)
{
	return a->blocks[j / DK_KV_BLOCK] + off + (size_t)(j % DK_KV_BLOCK) * a->row_bytes;
}

static void f32_one(const struct dk_attn_args *a)
{
	int32_t hd = a->hd, n = a->n;
	float *sc = a->scratch, mx = -INFINITY;
	for (int32_t j = 0; j < n; j++) {
		const float *k = (const float *)row(a, a->k_off, j);
		float d = 0;
		for (int32_t i = 0; i < hd; i++)
			d += a->q[i] * k[i];
		sc[j] = d * a->scale;
		if (sc[j] > mx)
			mx = sc[j];
	}
	double sum = 0;
	for (int32_t j = 0; j < n; j++) {
		sc[j] = expf(sc[j] - mx);
		sum += (double)sc[j];
	}
	const float inv = (float)(1.0 / sum);
	for (int32_t i = 0; i < hd; i++)
		a->out[i] = 0;
	for (int32_t j = 0; j < n; j++) {
		const float *v = (const float *)row(a, a->v_off, j);
		float p = sc[j] * inv;
		for (int32_t i = 0; i < hd; i++)
			a->out[i] += p * v[i];
	}
}

static void f16_one(const struct dk_attn_args *a)
{
	int32_t hd = a->hd, n = a->n;
	uint16_t *q16 = (uint16_t *)a->scratch, *acc = q16 + hd;
	for (int32_t i = 0; i < hd; i++) {
		q16[i] = dk_fp32_to_fp16(a->q[i]);
		acc[i] = 0;
	}
	float M = -INFINITY, S = 0;
	for (int32_t j = 0; j < n; j++) {
		const uint16_t *k = (const uint16_t *)row(a, a->k_off, j);
		const uint16_t *v = (const uint16_t *)row(a, a->v_off, j);
		float d = 0;
		for (int32_t i = 0; i < hd; i++)
			d += dk_fp16_to_fp32(q16[i]) * dk_fp16_to_fp32(k[i]);
		d *= a->scale;
		float ms = 1.0f, vs = 1.0f;
		if (d > M) {
			float Mold = M;
			M = d;
			ms = expf(Mold - M);
			for (int32_t i = 0; i < hd; i++)
				acc[i] = dk_fp32_to_fp16(dk_fp16_to_fp32(acc[i]) * ms);
		} else {
			vs = expf(d - M);
		}
		for (int32_t i = 0; i < hd; i++)
			acc[i] = dk_fp32_to_fp16(dk_fp16_to_fp32(acc[i]) + dk_fp16_to_fp32(v[i]) * vs);
		S = S * ms + vs;
	}
	const float inv = S == 0.0f ? 0.0f : 1.0f / S;
	for (int32_t i = 0; i < hd; i++)
		a->out[i] = dk_fp16_to_fp32(acc[i]) * inv;
}

/* The specification of a group: each head on its own. */
static void per_head(const struct dk_attn_args *a, void (*one)(const struct dk_attn_args *))
{
	struct dk_attn_args h = *a;
	h.nq = 1;
	for (int32_t g = 0; g < a->nq; g++) {
		h.q = a->q + (size_t)g * a->hd;
		h.out = a->out + (size_t)g * a->hd;
		one(&h);
	}
}

void dk_attn_f32_ref(const struct dk_attn_args *a) { per_head(a, f32_one); }
void dk_attn_f16_ref(const struct dk_attn_args *a) { per_head(a, f16_one); }

dk_attn_fn dk_attn_kernel(size_t esize, int32_t hd)
{
	static int level = -1;
	if (level < 0) {
		const char *e = getenv("DOCKET_KERNELS");
		level = (e && !strcmp(e, "ref")) ? 0 :
			(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
			 __builtin_cpu_supports("f16c")) ? 1 : 0;
	}
	/* tiny heads (the test models) stay on the reference, whose summation
	 * order is llama.cpp's for heads narrower than its vector step */
	if (level >= 1 && hd % 8 == 0 && hd >= 32)
		return esize == 2 ? dk_attn_f16_avx2 : dk_attn_f32_avx2;
	return esize == 2 ? dk_attn_f16_ref : dk_attn_f32_ref;
}
