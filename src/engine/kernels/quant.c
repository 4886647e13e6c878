/*
 * Reference (scalar) tensor formats: fp16/bf16 conversion, dequantisation,
 * quantisation and dot products, plus the run-time choice of kernel level.
 *
 * The references define the numerics: activation quantisers follow ggml's
 * reference algorithms (Q8_0/Q8_1: d = amax/127, roundf; Q8_K: d = -max/127
 * of the signed extreme, round half to even), and every dot accumulates
 * integers per block before scaling, so a SIMD kernel can be checked against
 * them exactly for the integer part.
 */
#include "engine/kernels/quant.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/quant_impl.h"

/* ---------------------------------------------------------------- fp16/bf16 */

static inline uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

float dk_fp16_to_fp32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
	if (e == 0) {
		/* zero or subnormal: m * 2^-24, exact in float */
		float v = (float)m * 0x1p-24f;
		return u2f(sign | f2u(v));
	}
	if (e == 31)
		return u2f(sign | 0x7f800000u | (m << 13));
	return u2f(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t dk_fp32_to_fp16(float f)
{
	uint32_t x = f2u(f);
	uint32_t sign = (x >> 16) & 0x8000;
	x &= 0x7fffffffu;
	if (x > 0x7f800000u) /* NaN: keep it a (quiet) NaN */
		return (uint16_t)(sign | 0x7e00 | ((x >> 13) & 0x3ff));
	if (x >= 0x477ff000u) /* >= 65520 rounds past the largest half */
		return (uint16_t)(sign | 0x7c00);
	if (x < 0x38800000u) {
		/* below 2^-14: adding 0.5 (ulp 2^-24) makes the FPU round the
		 * value to a multiple of the half subnormal step, ties to even */
		float v = u2f(x) + 0.5f;
		return (uint16_t)(sign | (f2u(v) - 0x3f000000u));
	}
	x += 0xc8000fffu + ((x >> 13) & 1); /* rebias exponent, round to even */
	return (uint16_t)(sign | (x >> 13));
}

float dk_bf16_to_fp32(uint16_t h)
{
	return u2f((uint32_t)h << 16);
}

uint16_t dk_fp32_to_bf16(float f)
{
	uint32_t x = f2u(f);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 0x40);
	return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

#define H2F(h) dk_fp16_to_fp32(h)
#define F2H(f) dk_fp32_to_fp16(f)

/* Round half to even via the float-add trick; valid for |v| < 2^22. */
static inline int nearest_int(float v)
{
	float t = v + 12582912.f;
	int32_t i;
	memcpy(&i, &t, 4);
	return (i & 0x007fffff) - 0x00400000;
}

/* ---------------------------------------------------------------- F32/F16/BF16 */

static void f32_to_float(const void *restrict x, float *restrict y, int64_t n)
{
	memcpy(y, x, (size_t)n * sizeof(float));
}

static void f32_from_float(const float *restrict x, void *restrict y, int64_t n)
{
	memcpy(y, x, (size_t)n * sizeof(float));
}

static void f16_to_float(const void *restrict vx, float *restrict y, int64_t n)
{
	const uint16_t *x = vx;
	for (int64_t i = 0; i < n; i++)
		y[i] = H2F(x[i]);
}

static void f16_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	uint16_t *y = vy;
	for (int64_t i = 0; i < n; i++)
		y[i] = F2H(x[i]);
}

static void bf16_to_float(const void *restrict vx, float *restrict y, int64_t n)
{
	const uint16_t *x = vx;
	for (int64_t i = 0; i < n; i++)
		y[i] = dk_bf16_to_fp32(x[i]);
}

static void bf16_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	uint16_t *y = vy;
	for (int64_t i = 0; i < n; i++)
		y[i] = dk_fp32_to_bf16(x[i]);
}

/* Float dots: 64 lanes, lane k a multiply-add chain (fmaf, one rounding)
 * over elements k, k+64, ... in order, then the fixed tree below: the
 * order four 512-bit registers (or eight 256-bit ones) compute in, so
 * every level gives these bits; fewer lanes made the SIMD forms wait on
 * one chain's latency.  F16 and BF16 products are exact in float. */
#define FLANES 64

static float lane_tree(float l[FLANES])
{
	for (int w = FLANES / 2; w >= 1; w /= 2)
		for (int k = 0; k < w; k++)
			l[k] = l[k] + l[k + w];
	return l[0];
}

static void dot_f32_ref(int64_t n, float *restrict s, const void *restrict vx,
			const void *restrict vy)
{
	const float *x = vx, *y = vy;
	float l[FLANES] = {0};
	for (int64_t i = 0; i < n; i++)
		l[i % FLANES] = fmaf(x[i], y[i], l[i % FLANES]);
	*s = lane_tree(l);
}

static void dot_f16_ref(int64_t n, float *restrict s, const void *restrict vx,
			const void *restrict vy)
{
	const uint16_t *x = vx, *y = vy;
	float l[FLANES] = {0};
	for (int64_t i = 0; i < n; i++)
		l[i % FLANES] = fmaf(H2F(x[i]), H2F(y[i]), l[i % FLANES]);
	*s = lane_tree(l);
}

static void dot_bf16_ref(int64_t n, float *restrict s, const void *restrict vx,
			 const void *restrict vy)
{
	const uint16_t *x = vx, *y = vy;
	float l[FLANES] = {0};
	for (int64_t i = 0; i < n; i++)
		l[i % FLANES] = fmaf(dk_bf16_to_fp32(x[i]), dk_bf16_to_fp32(y[i]), l[i % FLANES]);
	*s = lane_tree(l);
}

/* ---------------------------------------------------------------- 32-wide blocks */

static void q4_0_to_float(const void *restrict vx, float *restrict y, int64_t n)
{
	const struct dk_block_q4_0 *x = vx;
	for (int64_t i = 0; i < n / DK_QK; i++, y += DK_QK) {
		float d = H2F(x[i].d);
		for (int j = 0; j < 16; j++) {
			y[j] = (float)((x[i].qs[j] & 0xF) - 8) * d;
			y[j + 16] = (float)((x[i].qs[j] >> 4) - 8) * d;
		}
	}
}

static void q4_0_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q4_0 *y = vy;
	for (int64_t i = 0; i < n / DK_QK; i++, x += DK_QK) {
		/* the signed extreme maps to -8, so the full range -8..7 is used */
		float amax = 0, max = 0;
		for (int j = 0; j < DK_QK; j++)
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		float d = max / -8, id = d != 0 ? 1.0f / d : 0.0f;
		y[i].d = F2H(d);
		for (int j = 0; j < 16; j++) {
			int q0 = (int8_t)(x[j] * id + 8.5f), q1 = (int8_t)(x[j + 16] * id + 8.5f);
			q0 = q0 < 15 ? q0 : 15;
			q1 = q1 < 15 ? q1 : 15;
			y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
		}
	}
}

static void q4_1_to_float(const void *restrict vx, float *restrict y, int64_t n)
{
	const struct dk_block_q4_1 *x = vx;
	for (int64_t i = 0; i < n / DK_QK; i++, y += DK_QK) {
		float d = H2F(x[i].d), m = H2F(x[i].m);
		for (int j = 0; j < 16; j++) {
			y[j] = (float)(x[i].qs[j] & 0xF) * d + m;
			y[j + 16] = (float)(x[i].qs[j] >> 4) * d + m;
		}
	}
}

static void q4_1_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q4_1 *y = vy;
	for (int64_t i = 0; i < n / DK_QK; i++, x += DK_QK) {
		float min = FLT_MAX, max = -FLT_MAX;
		for (int j = 0; j < DK_QK; j++) {
			min = x[j] < min ? x[j] : min;
			max = x[j] > max ? x[j] : max;
		}
		float d = (max - min) / 15, id = d != 0 ? 1.0f / d : 0.0f;
		y[i].d = F2H(d);
		y[i].m = F2H(min);
		for (int j = 0; j < 16; j++) {
			int q0 = (int8_t)((x[j] - min) * id + 0.5f);
			int q1 = (int8_t)((x[j + 16] - min) * id + 0.5f);
			q0 = q0 < 15 ? q0 : 15;
			q1 = q1 < 15 ? q1 : 15;
			y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
		}
	}
}

static void q5_0_to_float(const void *restrict vx, float *restrict y, int64_t n)
{
	const struct dk_block_q5_0 *x = vx;
	for (int64_t i = 0; i < n / DK_QK; i++, y += DK_QK) {
		float d = H2F(x[i].d);
		uint32_t qh;
		memcpy(&qh, x[i].qh, 4);
		for (int j = 0; j < 16; j++) {
			int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
			y[j] = (float)(((x[i].qs[j] & 0xF) | (h0 << 4)) - 16) * d;
			y[j + 16] = (float)(((x[i].qs[j] >> 4) | (h1 << 4)) - 16) * d;
		}
	}
}

static void q5_0_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q5_0 *y = vy;
	for (int64_t i = 0; i < n / DK_QK; i++, x += DK_QK) {
		float amax = 0, max = 0;
		for (int j = 0; j < DK_QK; j++)
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		float d = max / -16, id = d != 0 ? 1.0f / d : 0.0f;
		y[i].d = F2H(d);
		uint32_t qh = 0;
		for (int j = 0; j < 16; j++) {
			int q0 = (int8_t)(x[j] * id + 16.5f), q1 = (int8_t)(x[j + 16] * id + 16.5f);
			q0 = q0 < 31 ? q0 : 31;
			q1 = q1 < 31 ? q1 : 31;
			y[i].qs[j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
			qh |= (uint32_t)((q0 >> 4) & 1) << j;
			qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
		}
		memcpy(y[i].qh, &qh, 4);
	}
}

static void q5_1_to_float(const void *restrict vx, float *restrict y, int64_t n)
{
	const struct dk_block_q5_1 *x = vx;
	for (int64_t i = 0; i < n / DK_QK; i++, y += DK_QK) {
		float d = H2F(x[i].d), m = H2F(x[i].m);
		uint32_t qh;
		memcpy(&qh, x[i].qh, 4);
		for (int j = 0; j < 16; j++) {
			int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
			y[j] = (float)((x[i].qs[j] & 0xF) | (h0 << 4)) * d + m;
			y[j + 16] = (float)((x[i].qs[j] >> 4) | (h1 << 4)) * d + m;
		}
	}
}

static void q5_1_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q5_1 *y = vy;
	for (int64_t i = 0; i < n / DK_QK; i++, x += DK_QK) {
		float min = FLT_MAX, max = -FLT_MAX;
		for (int j = 0; j < DK_QK; j++) {
			min = x[j] < min ? x[j] : min;
			max = x[j] > max ? x[j] : max;
		}
		float d = (max - min) / 31, id = d != 0 ? 1.0f / d : 0.0f;
		y[i].d = F2H(d);
		y[i].m = F2H(min);
		uint32_t qh = 0;
		for (int j = 0; j < 16; j++) {
			int q0 = (uint8_t)((x[j] - min) * id + 0.5f);
			int q1 = (uint8_t)((x[j + 16] - min) * id + 0.5f);
			q0 = q0 < 31 ? q0 : 31;
			q1 = q1 < 31 ? q1 : 31;
			y[i].qs[j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
			qh |= (uint32_t)((q0 >> 4) & 1) << j;
			qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
		}
		memcpy(y[i].qh, &qh, 4);
	}
}

static void q8_0_to_float(const void *restrict vx, float *restrict y, int64_t n)
{
	const struct dk_block_q8_0 *x = vx;
	for (int64_t i = 0; i < n / DK_QK; i++, y += DK_QK) {
		float d = H2F(x[i].d);
		for (int j = 0; j < DK_QK; j++)
			y[j] = (float)x[i].qs[j] * d;
	}
}

static void q8_0_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q8_0 *y = vy;
	for (int64_t i = 0; i < n / DK_QK; i++, x += DK_QK) {
		float amax = 0;
		for (int j = 0; j < DK_QK; j++)
			amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
		float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
		y[i].d = F2H(d);
		for (int j = 0; j < DK_QK; j++)
			y[i].qs[j] = (int8_t)roundf(x[j] * id);
	}
}

static void q8_1_to_float(const void *restrict vx, float *restrict y, int64_t n)
{
	const struct dk_block_q8_1 *x = vx;
	for (int64_t i = 0; i < n / DK_QK; i++, y += DK_QK) {
		float d = H2F(x[i].d);
		for (int j = 0; j < DK_QK; j++)
			y[j] = (float)x[i].qs[j] * d;
	}
}

static void q8_1_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q8_1 *y = vy;
	for (int64_t i = 0; i < n / DK_QK; i++, x += DK_QK) {
		float amax = 0;
		for (int j = 0; j < DK_QK; j++)
			amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
		float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
		y[i].d = F2H(d);
		int sum = 0;
		for (int j = 0; j < DK_QK; j++) {
			y[i].qs[j] = (int8_t)roundf(x[j] * id);
			sum += y[i].qs[j];
		}
		y[i].s = F2H((float)sum * d);
	}
}

static void dot_q4_0_q8_0_ref(int64_t n, float *restrict s, const void *restrict vx,
			      const void *restrict vy)
{
	const struct dk_block_q4_0 *x = vx;
	const struct dk_block_q8_0 *y = vy;
	float sum = 0;
	for (int64_t i = 0; i < n / DK_QK; i++) {
		int isum = 0;
		for (int j = 0; j < 16; j++)
			isum += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j] +
				((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
		sum += (float)isum * (H2F(x[i].d) * H2F(y[i].d));
	}
	*s = sum;
}

static void dot_q4_1_q8_1_ref(int64_t n, float *restrict s, const void *restrict vx,
			      const void *restrict vy)
{
	const struct dk_block_q4_1 *x = vx;
	const struct dk_block_q8_1 *y = vy;
	float sum = 0;
	for (int64_t i = 0; i < n / DK_QK; i++) {
		int isum = 0;
		for (int j = 0; j < 16; j++)
			isum += (x[i].qs[j] & 0xF) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
		/* sum(q*d + m)(qy*dy) = d*dy*sum(q*qy) + m*s */
		sum += (float)isum * (H2F(x[i].d) * H2F(y[i].d)) + H2F(x[i].m) * H2F(y[i].s);
	}
	*s = sum;
}

static void dot_q5_0_q8_0_ref(int64_t n, float *restrict s, const void *restrict vx,
			      const void *restrict vy)
{
	const struct dk_block_q5_0 *x = vx;
	const struct dk_block_q8_0 *y = vy;
	float sum = 0;
	for (int64_t i = 0; i < n / DK_QK; i++) {
		uint32_t qh;
		memcpy(&qh, x[i].qh, 4);
		int isum = 0;
		for (int j = 0; j < 16; j++) {
			int q0 = ((x[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4)) - 16;
			int q1 = ((x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16;
			isum += q0 * y[i].qs[j] + q1 * y[i].qs[j + 16];
		}
		sum += (float)isum * (H2F(x[i].d) * H2F(y[i].d));
	}
	*s = sum;
}

static void dot_q5_1_q8_1_ref(int64_t n, float *restrict s, const void *restrict vx,
			      const void *restrict vy)
{
	const struct dk_block_q5_1 *x = vx;
	const struct dk_block_q8_1 *y = vy;
	float sum = 0;
	for (int64_t i = 0; i < n / DK_QK; i++) {
		uint32_t qh;
		memcpy(&qh, x[i].qh, 4);
		int isum = 0;
		for (int j = 0; j < 16; j++) {
			int q0 = (x[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
			int q1 = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
			isum += q0 * y[i].qs[j] + q1 * y[i].qs[j + 16];
		}
		sum += (float)isum * (H2F(x[i].d) * H2F(y[i].d)) + H2F(x[i].m) * H2F(y[i].s);
	}
	*s = sum;
}

static void dot_q8_0_q8_0_ref(int64_t n, float *restrict s, const void *restrict vx,
			      const void *restrict vy)
{
	const struct dk_block_q8_0 *x = vx;
	const struct dk_block_q8_0 *y = vy;
	float sum = 0;
	for (int64_t i = 0; i < n / DK_QK; i++) {
		int isum = 0;
		for (int j = 0; j < DK_QK; j++)
			isum += x[i].qs[j] * y[i].qs[j];
		sum += (float)isum * (H2F(x[i].d) * H2F(y[i].d));
	}
	*s = sum;
}

/* ---------------------------------------------------------------- K formats */

/* Unpacked view of one K super-block: q[e] for the 256 elements, the integer
 * scale (and min) of each sub-block.  The dots and dequantisers share it. */
struct kview {
	int q[DK_QK_K];
	int sc[16], mn[16];
	int nsub;  /* 8 (sub-blocks of 32) or 16 (of 16) */
};

static void unpack_q2_k(const struct dk_block_q2_k *b, struct kview *v)
{
	v->nsub = 16;
	for (int j = 0; j < 16; j++) {
		v->sc[j] = b->scales[j] & 0xF;
		v->mn[j] = b->scales[j] >> 4;
	}
	/* element h*128 + k*32 + l sits in qs[h*32 + l] at bits 2k */
	for (int h = 0; h < 2; h++)
		for (int k = 0; k < 4; k++)
			for (int l = 0; l < 32; l++)
				v->q[h * 128 + k * 32 + l] = (b->qs[h * 32 + l] >> (2 * k)) & 3;
}

static void unpack_q3_k(const struct dk_block_q3_k *b, struct kview *v)
{
	v->nsub = 16;
	for (int j = 0; j < 16; j++) {
		v->sc[j] = dk_q3k_scale(j, b->scales);
		v->mn[j] = 0;
	}
	/* as Q2_K, plus the high bit in hmask[l] bit h*4 + k (set means +0,
	 * clear means -4) */
	for (int h = 0; h < 2; h++)
		for (int k = 0; k < 4; k++)
			for (int l = 0; l < 32; l++) {
				int lo = (b->qs[h * 32 + l] >> (2 * k)) & 3;
				int hb = (b->hmask[l] >> (h * 4 + k)) & 1;
				v->q[h * 128 + k * 32 + l] = lo - (hb ? 0 : 4);
			}
}

static void unpack_q4_k(const struct dk_block_q4_k *b, struct kview *v)
{
	v->nsub = 8;
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		dk_q4k_scale_min(j, b->scales, &sc, &m);
		v->sc[j] = sc;
		v->mn[j] = m;
	}
	for (int c = 0; c < 4; c++)
		for (int l = 0; l < 32; l++) {
			v->q[c * 64 + l] = b->qs[c * 32 + l] & 0xF;
			v->q[c * 64 + 32 + l] = b->qs[c * 32 + l] >> 4;
		}
}

static void unpack_q5_k(const struct dk_block_q5_k *b, struct kview *v)
{
	v->nsub = 8;
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		dk_q4k_scale_min(j, b->scales, &sc, &m);
		v->sc[j] = sc;
		v->mn[j] = m;
	}
	for (int c = 0; c < 4; c++)
		for (int l = 0; l < 32; l++) {
			v->q[c * 64 + l] = (b->qs[c * 32 + l] & 0xF) | (((b->qh[l] >> (2 * c)) & 1) << 4);
			v->q[c * 64 + 32 + l] =
				(b->qs[c * 32 + l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4);
		}
}

static void unpack_q6_k(const struct dk_block_q6_k *b, struct kview *v)
{
	v->nsub = 16;
	for (int j = 0; j < 16; j++) {
		v->sc[j] = b->scales[j];
		v->mn[j] = 0;
	}
	/* element h*128 + k*32 + l: low nibble from ql[h*64 + l + 32*(k&1)]
	 * (high nibble for k >= 2), 2 high bits from qh[h*32 + l] at bits 2k */
	for (int h = 0; h < 2; h++)
		for (int k = 0; k < 4; k++)
			for (int l = 0; l < 32; l++) {
				uint8_t qlb = b->ql[h * 64 + l + 32 * (k & 1)];
				int lo = k < 2 ? (qlb & 0xF) : (qlb >> 4);
				int hi = (b->qh[h * 32 + l] >> (2 * k)) & 3;
				v->q[h * 128 + k * 32 + l] = (lo | (hi << 4)) - 32;
			}
}

int dk_quant_k_unpack(enum dk_ttype t, const void *block, int q[DK_QK_K], int sc[16], int mn[16])
{
	struct kview v;
	switch (t) {
	case DK_TYPE_Q2_K: unpack_q2_k(block, &v); break;
	case DK_TYPE_Q3_K: unpack_q3_k(block, &v); break;
	case DK_TYPE_Q4_K: unpack_q4_k(block, &v); break;
	case DK_TYPE_Q5_K: unpack_q5_k(block, &v); break;
	case DK_TYPE_Q6_K: unpack_q6_k(block, &v); break;
	default: return 0;
	}
	memcpy(q, v.q, sizeof v.q);
	for (int j = 0; j < 16; j++) {
		sc[j] = j < v.nsub ? v.sc[j] : 0;
		mn[j] = j < v.nsub ? v.mn[j] : 0;
	}
	return v.nsub;
}

/* y = d*sc*q - dmin*mn per sub-block */
static void kview_to_float(const struct kview *v, float d, float dmin, float *y)
{
	int len = DK_QK_K / v->nsub;
	for (int j = 0; j < v->nsub; j++) {
		float dl = d * (float)v->sc[j], ml = dmin * (float)v->mn[j];
		for (int l = 0; l < len; l++)
			y[j * len + l] = dl * (float)v->q[j * len + l] - ml;
	}
}

/* integer parts of dot(view, q8k): sum sc_j*sum(q*qy) and sum mn_j*bsums */
static void kview_dot(const struct kview *v, const struct dk_block_q8_k *y, int *isum,
		      int *msum)
{
	int len = DK_QK_K / v->nsub, a = 0, m = 0;
	for (int j = 0; j < v->nsub; j++) {
		int t = 0;
		for (int l = 0; l < len; l++)
			t += v->q[j * len + l] * y->qs[j * len + l];
		a += v->sc[j] * t;
		int bs = 0;
		for (int l = 0; l < len / 16; l++)
			bs += y->bsums[j * len / 16 + l];
		m += v->mn[j] * bs;
	}
	*isum = a;
	*msum = m;
}

#define KFMT(name, blk, HASMIN)                                                              \
	static void name##_to_float(const void *restrict vx, float *restrict y, int64_t n)   \
	{                                                                                    \
		const struct blk *x = vx;                                                    \
		struct kview v;                                                              \
		for (int64_t i = 0; i < n / DK_QK_K; i++, y += DK_QK_K) {                    \
			unpack_##name(&x[i], &v);                                            \
			kview_to_float(&v, H2F(x[i].d), HASMIN(x[i]), y);                    \
		}                                                                            \
	}                                                                                    \
	static void dot_##name##_q8_k_ref(int64_t n, float *restrict s,                     \
					  const void *restrict vx, const void *restrict vy) \
	{                                                                                    \
		const struct blk *x = vx;                                                    \
		const struct dk_block_q8_k *y = vy;                                          \
		struct kview v;                                                              \
		float sum = 0;                                                               \
		for (int64_t i = 0; i < n / DK_QK_K; i++) {                                  \
			int isum, msum;                                                      \
			unpack_##name(&x[i], &v);                                            \
			kview_dot(&v, &y[i], &isum, &msum);                                  \
			sum += y[i].d * (H2F(x[i].d) * (float)isum - HASMIN(x[i]) * (float)msum); \
		}                                                                            \
		*s = sum;                                                                    \
	}

#define KMIN(b) H2F((b).dmin)
#define KNOMIN(b) 0.0f
KFMT(q2_k, dk_block_q2_k, KMIN)
KFMT(q3_k, dk_block_q3_k, KNOMIN)
KFMT(q4_k, dk_block_q4_k, KMIN)
KFMT(q5_k, dk_block_q5_k, KMIN)
KFMT(q6_k, dk_block_q6_k, KNOMIN)

static void q8_k_to_float(const void *restrict vx, float *restrict y, int64_t n)
{
	const struct dk_block_q8_k *x = vx;
	for (int64_t i = 0; i < n / DK_QK_K; i++, y += DK_QK_K)
		for (int j = 0; j < DK_QK_K; j++)
			y[j] = x[i].d * (float)x[i].qs[j];
}

static void q8_k_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q8_k *y = vy;
	for (int64_t i = 0; i < n / DK_QK_K; i++, x += DK_QK_K) {
		float amax = 0, max = 0;
		for (int j = 0; j < DK_QK_K; j++)
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		if (amax == 0) {
			memset(&y[i], 0, sizeof y[i]);
			continue;
		}
		/* the signed extreme maps to -127 exactly */
		float iscale = -127.f / max;
		for (int j = 0; j < DK_QK_K; j++) {
			int v = nearest_int(iscale * x[j]);
			y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
		}
		for (int j = 0; j < 16; j++) {
			int sum = 0;
			for (int l = 0; l < 16; l++)
				sum += y[i].qs[j * 16 + l];
			y[i].bsums[j] = (int16_t)sum;
		}
		y[i].d = 1 / iscale;
	}
}

/* ---- weight-side K quantisers (for synthetic models and tests).
 * Simple per-sub-block min/max (or absmax) fits, not ggml's optimiser; they
 * produce valid blocks with bounded error. */

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Affine fit per sub-block: x ~ sc_j*d*q - mn_j*dmin, q in 0..qmax, scale and
 * min quantised to 0..smax; d and dmin are written as fp16 into *hd, *hm. */
static void fit_affine(const float *x, int nsub, int qmax, int smax, int *q, int *sc, int *mn,
		       uint16_t *hd, uint16_t *hm)
{
	int len = DK_QK_K / nsub;
	float scale[16], mins[16], maxs = 0, maxm = 0;
	for (int j = 0; j < nsub; j++) {
		float lo = x[j * len], hi = x[j * len];
		for (int l = 1; l < len; l++) {
			lo = x[j * len + l] < lo ? x[j * len + l] : lo;
			hi = x[j * len + l] > hi ? x[j * len + l] : hi;
		}
		if (lo > 0)
			lo = 0; /* mins are stored as non-negative offsets */
		scale[j] = (hi - lo) / (float)qmax;
		mins[j] = -lo;
		maxs = scale[j] > maxs ? scale[j] : maxs;
		maxm = mins[j] > maxm ? mins[j] : maxm;
	}
	*hd = F2H(maxs / (float)smax);
	*hm = F2H(maxm / (float)smax);
	float d = H2F(*hd), dm = H2F(*hm);
	for (int j = 0; j < nsub; j++) {
		sc[j] = d > 0 ? clampi(nearest_int(scale[j] / d), 0, smax) : 0;
		mn[j] = dm > 0 ? clampi(nearest_int(mins[j] / dm), 0, smax) : 0;
		float ds = d * (float)sc[j], m = dm * (float)mn[j];
		for (int l = 0; l < len; l++)
			q[j * len + l] = ds > 0 ? clampi(nearest_int((x[j * len + l] + m) / ds), 0, qmax) : 0;
	}
}

/* Symmetric fit per sub-block of 16: x ~ d*sc_j*q, q in -qh..qh-1, signed
 * scales in -smax..smax. */
static void fit_symmetric(const float *x, int qh, int smax, int *q, int *sc, uint16_t *hd)
{
	float scale[16], amaxs = 0;
	for (int j = 0; j < 16; j++) {
		float amax = 0, max = 0;
		for (int l = 0; l < 16; l++)
			if (fabsf(x[j * 16 + l]) > amax) {
				amax = fabsf(x[j * 16 + l]);
				max = x[j * 16 + l];
			}
		scale[j] = max / (float)-qh; /* the extreme lands on -qh */
		amaxs = fabsf(scale[j]) > amaxs ? fabsf(scale[j]) : amaxs;
	}
	*hd = F2H(amaxs / (float)smax);
	float d = H2F(*hd);
	for (int j = 0; j < 16; j++) {
		sc[j] = d > 0 ? clampi(nearest_int(scale[j] / d), -smax, smax) : 0;
		float ds = d * (float)sc[j];
		for (int l = 0; l < 16; l++)
			q[j * 16 + l] = ds != 0 ? clampi(nearest_int(x[j * 16 + l] / ds), -qh, qh - 1) : 0;
	}
}

static void pack_q4k_scales(const int *sc, const int *mn, uint8_t s[12])
{
	memset(s, 0, 12);
	for (int j = 0; j < 8; j++) {
		if (j < 4) {
			s[j] = (uint8_t)sc[j];
			s[j + 4] = (uint8_t)mn[j];
		} else {
			s[j + 4] = (uint8_t)((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
			s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
			s[j] |= (uint8_t)((mn[j] >> 4) << 6);
		}
	}
}

static void q4_k_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q4_k *y = vy;
	int q[DK_QK_K], sc[16], mn[16];
	for (int64_t i = 0; i < n / DK_QK_K; i++, x += DK_QK_K) {
		fit_affine(x, 8, 15, 63, q, sc, mn, &y[i].d, &y[i].dmin);
		pack_q4k_scales(sc, mn, y[i].scales);
		for (int c = 0; c < 4; c++)
			for (int l = 0; l < 32; l++)
				y[i].qs[c * 32 + l] = (uint8_t)(q[c * 64 + l] | (q[c * 64 + 32 + l] << 4));
	}
}

static void q5_k_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q5_k *y = vy;
	int q[DK_QK_K], sc[16], mn[16];
	for (int64_t i = 0; i < n / DK_QK_K; i++, x += DK_QK_K) {
		fit_affine(x, 8, 31, 63, q, sc, mn, &y[i].d, &y[i].dmin);
		pack_q4k_scales(sc, mn, y[i].scales);
		memset(y[i].qh, 0, sizeof y[i].qh);
		for (int c = 0; c < 4; c++)
			for (int l = 0; l < 32; l++) {
				int a = q[c * 64 + l], b = q[c * 64 + 32 + l];
				y[i].qs[c * 32 + l] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
				y[i].qh[l] |= (uint8_t)(((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1)));
			}
	}
}

static void q2_k_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q2_k *y = vy;
	int q[DK_QK_K], sc[16], mn[16];
	for (int64_t i = 0; i < n / DK_QK_K; i++, x += DK_QK_K) {
		fit_affine(x, 16, 3, 15, q, sc, mn, &y[i].d, &y[i].dmin);
		for (int j = 0; j < 16; j++)
			y[i].scales[j] = (uint8_t)(sc[j] | (mn[j] << 4));
		memset(y[i].qs, 0, sizeof y[i].qs);
		for (int h = 0; h < 2; h++)
			for (int k = 0; k < 4; k++)
				for (int l = 0; l < 32; l++)
					y[i].qs[h * 32 + l] |= (uint8_t)(q[h * 128 + k * 32 + l] << (2 * k));
	}
}

static void q3_k_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q3_k *y = vy;
	int q[DK_QK_K], sc[16];
	for (int64_t i = 0; i < n / DK_QK_K; i++, x += DK_QK_K) {
		fit_symmetric(x, 4, 31, q, sc, &y[i].d);
		memset(y[i].scales, 0, sizeof y[i].scales);
		for (int j = 0; j < 16; j++) {
			int v = sc[j] + 32;
			if (j < 8)
				y[i].scales[j] |= (uint8_t)(v & 0xF);
			else
				y[i].scales[j - 8] |= (uint8_t)((v & 0xF) << 4);
			y[i].scales[8 + (j & 3)] |= (uint8_t)((v >> 4) << (2 * (j >> 2)));
		}
		memset(y[i].qs, 0, sizeof y[i].qs);
		memset(y[i].hmask, 0, sizeof y[i].hmask);
		for (int h = 0; h < 2; h++)
			for (int k = 0; k < 4; k++)
				for (int l = 0; l < 32; l++) {
					int u = q[h * 128 + k * 32 + l] + 4; /* 0..7 */
					y[i].qs[h * 32 + l] |= (uint8_t)((u & 3) << (2 * k));
					y[i].hmask[l] |= (uint8_t)((u >> 2) << (h * 4 + k));
				}
	}
}

static void q6_k_from_float(const float *restrict x, void *restrict vy, int64_t n)
{
	struct dk_block_q6_k *y = vy;
	int q[DK_QK_K], sc[16];
	for (int64_t i = 0; i < n / DK_QK_K; i++, x += DK_QK_K) {
		fit_symmetric(x, 32, 127, q, sc, &y[i].d);
		for (int j = 0; j < 16; j++)
			y[i].scales[j] = (int8_t)sc[j];
		memset(y[i].ql, 0, sizeof y[i].ql);
		memset(y[i].qh, 0, sizeof y[i].qh);
		for (int h = 0; h < 2; h++)
			for (int k = 0; k < 4; k++)
				for (int l = 0; l < 32; l++) {
					int u = q[h * 128 + k * 32 + l] + 32; /* 0..63 */
					y[i].ql[h * 64 + l + 32 * (k & 1)] |= (uint8_t)((u & 0xF) << (k < 2 ? 0 : 4));
					y[i].qh[h * 32 + l] |= (uint8_t)((u >> 4) << (2 * k));
				}
	}
}

/* ---------------------------------------------------------------- tables */

DK_DOT_N_LOOP(dotn_f32_ref, dot_f32_ref)
DK_DOT_N_LOOP(dotn_f16_ref, dot_f16_ref)
DK_DOT_N_LOOP(dotn_bf16_ref, dot_bf16_ref)
DK_DOT_N_LOOP(dotn_q4_0_ref, dot_q4_0_q8_0_ref)
DK_DOT_N_LOOP(dotn_q4_1_ref, dot_q4_1_q8_1_ref)
DK_DOT_N_LOOP(dotn_q5_0_ref, dot_q5_0_q8_0_ref)
DK_DOT_N_LOOP(dotn_q5_1_ref, dot_q5_1_q8_1_ref)
DK_DOT_N_LOOP(dotn_q8_0_ref, dot_q8_0_q8_0_ref)
DK_DOT_N_LOOP(dotn_q2_k_ref, dot_q2_k_q8_k_ref)
DK_DOT_N_LOOP(dotn_q3_k_ref, dot_q3_k_q8_k_ref)
DK_DOT_N_LOOP(dotn_q4_k_ref, dot_q4_k_q8_k_ref)
DK_DOT_N_LOOP(dotn_q5_k_ref, dot_q5_k_q8_k_ref)
DK_DOT_N_LOOP(dotn_q6_k_ref, dot_q6_k_q8_k_ref)

#define T(id, blck, bytes, dt, tof, fromf, dot, dotn)                                        \
	[id] = { id, blck, bytes, dt, tof, fromf, dot, dot, "ref", dotn, dotn }

static const struct dk_qtraits ref_table[DK_TYPE_COUNT] = {
	T(DK_TYPE_F32, 1, 4, DK_TYPE_F32, f32_to_float, f32_from_float, dot_f32_ref, dotn_f32_ref),
	T(DK_TYPE_F16, 1, 2, DK_TYPE_F16, f16_to_float, f16_from_float, dot_f16_ref, dotn_f16_ref),
	T(DK_TYPE_BF16, 1, 2, DK_TYPE_BF16, bf16_to_float, bf16_from_float, dot_bf16_ref,
	  dotn_bf16_ref),
	T(DK_TYPE_Q4_0, DK_QK, sizeof(struct dk_block_q4_0), DK_TYPE_Q8_0, q4_0_to_float,
	  q4_0_from_float, dot_q4_0_q8_0_ref, dotn_q4_0_ref),
	T(DK_TYPE_Q4_1, DK_QK, sizeof(struct dk_block_q4_1), DK_TYPE_Q8_1, q4_1_to_float,
	  q4_1_from_float, dot_q4_1_q8_1_ref, dotn_q4_1_ref),
	T(DK_TYPE_Q5_0, DK_QK, sizeof(struct dk_block_q5_0), DK_TYPE_Q8_0, q5_0_to_float,
	  q5_0_from_float, dot_q5_0_q8_0_ref, dotn_q5_0_ref),
	T(DK_TYPE_Q5_1, DK_QK, sizeof(struct dk_block_q5_1), DK_TYPE_Q8_1, q5_1_to_float,
	  q5_1_from_float, dot_q5_1_q8_1_ref, dotn_q5_1_ref),
	T(DK_TYPE_Q8_0, DK_QK, sizeof(struct dk_block_q8_0), DK_TYPE_Q8_0, q8_0_to_float,
	  q8_0_from_float, dot_q8_0_q8_0_ref, dotn_q8_0_ref),
	/* Q8_1 and Q8_K are activation formats only: no dot of their own */
	T(DK_TYPE_Q8_1, DK_QK, sizeof(struct dk_block_q8_1), DK_TYPE_Q8_1, q8_1_to_float,
	  q8_1_from_float, NULL, NULL),
	T(DK_TYPE_Q2_K, DK_QK_K, sizeof(struct dk_block_q2_k), DK_TYPE_Q8_K, q2_k_to_float,
	  q2_k_from_float, dot_q2_k_q8_k_ref, dotn_q2_k_ref),
	T(DK_TYPE_Q3_K, DK_QK_K, sizeof(struct dk_block_q3_k), DK_TYPE_Q8_K, q3_k_to_float,
	  q3_k_from_float, dot_q3_k_q8_k_ref, dotn_q3_k_ref),
	T(DK_TYPE_Q4_K, DK_QK_K, sizeof(struct dk_block_q4_k), DK_TYPE_Q8_K, q4_k_to_float,
	  q4_k_from_float, dot_q4_k_q8_k_ref, dotn_q4_k_ref),
	T(DK_TYPE_Q5_K, DK_QK_K, sizeof(struct dk_block_q5_k), DK_TYPE_Q8_K, q5_k_to_float,
	  q5_k_from_float, dot_q5_k_q8_k_ref, dotn_q5_k_ref),
	T(DK_TYPE_Q6_K, DK_QK_K, sizeof(struct dk_block_q6_k), DK_TYPE_Q8_K, q6_k_to_float,
	  q6_k_from_float, dot_q6_k_q8_k_ref, dotn_q6_k_ref),
	T(DK_TYPE_Q8_K, DK_QK_K, sizeof(struct dk_block_q8_k), DK_TYPE_Q8_K, q8_k_to_float,
	  q8_k_from_float, NULL, NULL),
};

/* ---------------------------------------------------------------- selection */

static struct dk_qtraits tables[3][DK_TYPE_COUNT];
static int cpu_level;  /* highest level this CPU runs (cpu.h) */
static int sel_level;  /* after the DOCKET_KERNELS cap (cpu.h) */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void set_kernel_name(struct dk_qtraits *tab, const char *name)
{
	for (int t = 0; t < DK_TYPE_COUNT; t++)
		if (tab[t].blck && tab[t].vec_dot != tab[t].vec_dot_ref)
			tab[t].kernel = name;
}

static void init_tables(void)
{
	memcpy(tables[0], ref_table, sizeof ref_table);
	memcpy(tables[1], tables[0], sizeof ref_table);
	memcpy(tables[2], tables[0], sizeof ref_table);
	cpu_level = dk_cpu_level();
#if defined(__x86_64__)
	if (cpu_level >= DK_KERNELS_AVX2) {
		dk_quant_install_avx2(tables[1]);
		set_kernel_name(tables[1], "avx2");
		memcpy(tables[2], tables[1], sizeof ref_table);
	}
	if (cpu_level >= DK_KERNELS_AVX512) {
		dk_quant_install_avx512(tables[2]);
		for (int t = 0; t < DK_TYPE_COUNT; t++)
			if (tables[2][t].blck && tables[2][t].vec_dot != tables[1][t].vec_dot)
				tables[2][t].kernel = "avx512";
	}
#endif
	sel_level = dk_cpu_kernels();
}

const struct dk_qtraits *dk_quant_traits(enum dk_ttype t)
{
	pthread_once(&init_once, init_tables);
	if ((unsigned)t >= DK_TYPE_COUNT || !tables[sel_level][t].blck)
		return NULL;
	return &tables[sel_level][t];
}

const struct dk_qtraits *dk_quant_traits_level(enum dk_ttype t, int level)
{
	pthread_once(&init_once, init_tables);
	if (level < 0 || level > cpu_level || (unsigned)t >= DK_TYPE_COUNT ||
	    !tables[level][t].blck)
		return NULL;
	return &tables[level][t];
}

int dk_quant_level(void)
{
	pthread_once(&init_once, init_tables);
	return sel_level;
}

const char *dk_quant_level_name(int level)
{
	static const char *const names[] = { "ref", "avx2", "avx512" };
	return level >= 0 && level <= 2 ? names[level] : "?";
}
