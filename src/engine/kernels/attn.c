#include "engine/kernels/attn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/kv.h"
#include "engine/kernels/cpu.h"
#include "engine/kernels/quant.h"
#include "engine/kernels/vec.h"

static inline const uint8_t *row(const struct dk_attn_args *a, size_t off, int32_t j)
{
	return a->blocks[j / DK_KV_BLOCK] + off + (size_t)(j % DK_KV_BLOCK) * a->row_bytes;
}

static inline float elem(const uint8_t *row, int32_t i, size_t esize)
{
	return esize == 2 ? dk_fp16_to_fp32(((const uint16_t *)row)[i]) : ((const float *)row)[i];
}

/* One query head, either cache type, in the order of the vector kernels
 * (attn.h): score = (even chain + odd chain) * scale, each chain fused
 * multiply-adds over the key's elements d = 0, 2, ... or 1, 3, ...;
 * p = e^(score - max) (dk_vec_exp_ref) times 1/sum, the sum in double in
 * 16 partial sums over keys j = k (mod 16), added as a tree; output =
 * (even-key chain + odd-key chain) of fused p_j * v_j; keys j from lo. */
static void one_head(const struct dk_attn_args *a, size_t esize)
{
	int32_t hd = a->hd, n = a->n, lo = a->lo;
	float *sc = a->scratch, *odd = a->scratch + n, mx = -INFINITY;
	for (int32_t j = lo; j < n; j++) {
		/* key j: element i at index i * DK_KV_BLOCK of its tile (attn.h) */
		const uint8_t *k = a->blocks[j / DK_KV_BLOCK] + a->k_off +
				   (size_t)(j % DK_KV_BLOCK) * esize;
		float e = 0, o = 0;
		for (int32_t i = 0; i < hd; i++) {
			if (i % 2 == 0)
				e = fmaf(a->q[i], elem(k, i * DK_KV_BLOCK, esize), e);
			else
				o = fmaf(a->q[i], elem(k, i * DK_KV_BLOCK, esize), o);
		}
		sc[j] = (e + o) * a->scale;
		if (sc[j] > mx)
			mx = sc[j];
	}
	double ps[16] = {0};
	for (int32_t j = lo; j < n; j++) {
		sc[j] = dk_vec_exp_ref(sc[j] - mx);
		ps[j % 16] += (double)sc[j];
	}
	for (int w = 8; w >= 1; w /= 2)
		for (int k = 0; k < w; k++)
			ps[k] = ps[k] + ps[k + w];
	const float inv = (float)(1.0 / ps[0]);
	for (int32_t i = 0; i < hd; i++)
		a->out[i] = odd[i] = 0;
	for (int32_t j = lo; j < n; j++) {
		const uint8_t *v = row(a, a->v_off, j);
		float p = sc[j] * inv, *acc = j % 2 ? odd : a->out;
		for (int32_t i = 0; i < hd; i++)
			acc[i] = fmaf(p, elem(v, i, esize), acc[i]);
	}
	for (int32_t i = 0; i < hd; i++)
		a->out[i] = a->out[i] + odd[i];
}

static void f32_one(const struct dk_attn_args *a) { one_head(a, 4); }
static void f16_one(const struct dk_attn_args *a) { one_head(a, 2); }

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
	/* the level and the DOCKET_KERNELS cap are cpu.c's; the AVX2 kernels
	 * also convert F16 rows, so they need F16C */
	const int level = dk_cpu_f16c() ? dk_cpu_kernels() : DK_KERNELS_REF;
	/* tiny heads (the test models) stay on the reference, whose summation
	 * order is llama.cpp's for heads narrower than its vector step */
	if (level >= 2 && hd % 16 == 0 && hd >= 32 && hd <= 256)
		return esize == 2 ? dk_attn_f16_avx512 : dk_attn_f32_avx512;
	if (level >= 1 && hd % 8 == 0 && hd >= 32)
		return esize == 2 ? dk_attn_f16_avx2 : dk_attn_f32_avx2;
	return esize == 2 ? dk_attn_f16_ref : dk_attn_f32_ref;
}

static void multi_each(const struct dk_attn_multi_args *m, dk_attn_fn fn)
{
	struct dk_attn_args a = m->a;
	for (int32_t t = 0; t < m->nt; t++) {
		a.n = m->nk[t];
		a.lo = m->lo ? m->lo[t] : 0;
		a.q = m->a.q + (size_t)t * m->q_stride;
		a.out = m->a.out + (size_t)t * m->out_stride;
		fn(&a);
	}
}

void dk_attn_multi_f32_each(const struct dk_attn_multi_args *m)
{
	multi_each(m, dk_attn_kernel(4, m->a.hd));
}

void dk_attn_multi_f16_each(const struct dk_attn_multi_args *m)
{
	multi_each(m, dk_attn_kernel(2, m->a.hd));
}

dk_attn_multi_fn dk_attn_multi_kernel(size_t esize, int32_t hd)
{
	dk_attn_fn one = dk_attn_kernel(esize, hd);
	if (one == dk_attn_f16_avx512)
		return dk_attn_multi_f16_avx512;
	if (one == dk_attn_f32_avx512)
		return dk_attn_multi_f32_avx512;
	return esize == 2 ? dk_attn_multi_f16_each : dk_attn_multi_f32_each;
}
