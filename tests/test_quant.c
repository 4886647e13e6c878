/* engine/quant: fp16/bf16, block formats, reference dots, SIMD levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "docket/gguf.h"
#include "engine/kernels/quant.h"
#include "testrng.h"
#include "testutil.h"
#include "util/sha256.h"
#include "engine/kernels/quant_impl.h"

static uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static size_t row_bytes(const struct dk_qtraits *t, int64_t n)
{
	return t->bytes * (size_t)(n / t->blck);
}

static const char *tname(enum dk_ttype t)
{
	static char buf[16];
	snprintf(buf, sizeof buf, "type %d", (int)t);
	return buf;
}

/* ------------------------------------------------------------------ fp16 */

static void test_fp16_values(void **state)
{
	(void)state;
	assert_int_equal(dk_fp32_to_fp16(0.0f), 0x0000);
	assert_int_equal(dk_fp32_to_fp16(-0.0f), 0x8000);
	assert_int_equal(dk_fp32_to_fp16(1.0f), 0x3c00);
	assert_int_equal(dk_fp32_to_fp16(-2.0f), 0xc000);
	assert_int_equal(dk_fp32_to_fp16(65504.0f), 0x7bff);
	assert_int_equal(dk_fp32_to_fp16(65519.0f), 0x7bff);
	assert_int_equal(dk_fp32_to_fp16(65520.0f), 0x7c00); /* tie rounds to even = inf */
	assert_int_equal(dk_fp32_to_fp16(1e10f), 0x7c00);
	assert_int_equal(dk_fp32_to_fp16(-INFINITY), 0xfc00);
	assert_int_equal(dk_fp32_to_fp16(INFINITY), 0x7c00);
	uint16_t hn = dk_fp32_to_fp16(NAN);
	assert_int_equal(hn & 0x7c00, 0x7c00);
	assert_true((hn & 0x3ff) != 0);
	assert_true(isnan(dk_fp16_to_fp32(hn)));
	/* subnormals: step 2^-24, ties to even */
	assert_int_equal(dk_fp32_to_fp16(0x1p-24f), 0x0001);
	assert_int_equal(dk_fp32_to_fp16(0x1p-25f), 0x0000);
	assert_int_equal(dk_fp32_to_fp16(0x1.8p-24f), 0x0002);
	assert_int_equal(dk_fp32_to_fp16(0x1.8p-23f), 0x0003);
	assert_int_equal(dk_fp32_to_fp16(-0x1p-24f), 0x8001);
	assert_int_equal(dk_fp32_to_fp16(0x1p-14f), 0x0400);
	assert_int_equal(dk_fp32_to_fp16(0x1.ff8p-15f), 0x03ff);
	assert_int_equal(dk_fp32_to_fp16(0x1.ffap-15f), 0x03ff);
	assert_int_equal(dk_fp32_to_fp16(0x1.ffcp-15f), 0x0400); /* tie: up into normals */
	/* normal ties: 1 + 2^-11 is halfway between 1 and 1+2^-10 */
	assert_int_equal(dk_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);
	assert_int_equal(dk_fp32_to_fp16(1.0f + 0x3p-11f), 0x3c02);
	assert_int_equal(dk_fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
	assert_true(dk_fp16_to_fp32(0x0001) == 0x1p-24f);
	assert_true(dk_fp16_to_fp32(0x03ff) == 0x1.ff8p-15f);
	assert_true(dk_fp16_to_fp32(0x7bff) == 65504.0f);
	assert_true(isinf(dk_fp16_to_fp32(0xfc00)) && dk_fp16_to_fp32(0xfc00) < 0);
	assert_true(signbit(dk_fp16_to_fp32(0x8000)));
}

static void test_fp16_roundtrip(void **state)
{
	(void)state;
	/* every half survives half -> float -> half */
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = dk_fp16_to_fp32((uint16_t)h);
		if (isnan(f)) {
			assert_true((h & 0x7c00) == 0x7c00 && (h & 0x3ff));
			assert_true(isnan(dk_fp16_to_fp32(dk_fp32_to_fp16(f))));
			continue;
		}
		assert_int_equal(dk_fp32_to_fp16(f), h);
	}
	/* random floats land on the nearest half */
	rng_seed(1);
	for (int i = 0; i < 200000; i++) {
		float f = u2f((rng_u32() & 0x8fffffffu) | ((rng_u32() % 34 + 100) << 23));
		if (fabsf(f) >= 65504.0f)
			continue;
		uint16_t h = dk_fp32_to_fp16(f);
		double e = fabs((double)f - dk_fp16_to_fp32(h));
		for (int k = -1; k <= 1; k += 2) {
			uint16_t g = (uint16_t)(h + k);
			if ((g & 0x7c00) == 0x7c00 || ((g ^ h) & 0x8000))
				continue;
			assert_true(e <= fabs((double)f - dk_fp16_to_fp32(g)));
		}
	}
}

static void test_bf16(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = dk_bf16_to_fp32((uint16_t)h);
		if (isnan(f)) {
			assert_true(isnan(dk_bf16_to_fp32(dk_fp32_to_bf16(f))));
			continue;
		}
		assert_int_equal(dk_fp32_to_bf16(f), h);
	}
	assert_int_equal(dk_fp32_to_bf16(1.0f), 0x3f80);
	assert_int_equal(dk_fp32_to_bf16(u2f(0x3f808000)), 0x3f80); /* tie to even */
	assert_int_equal(dk_fp32_to_bf16(u2f(0x3f818000)), 0x3f82);
	assert_int_equal(dk_fp32_to_bf16(u2f(0x3f808001)), 0x3f81);
	assert_int_equal(dk_fp32_to_bf16(u2f(0x7f7fffff)), 0x7f80); /* rounds to inf */
	assert_int_equal(dk_fp32_to_bf16(u2f(0x00000001)), 0x0000);
	assert_int_equal(dk_fp32_to_bf16(u2f(0x00018000)), 0x0002); /* subnormal tie */
	uint16_t n = dk_fp32_to_bf16(u2f(0x7f800001)); /* signalling NaN stays NaN */
	assert_true(isnan(dk_bf16_to_fp32(n)));
	assert_int_equal(f2u(dk_bf16_to_fp32(0xc0a0)), 0xc0a00000);
}

/* ------------------------------------------------------------------ traits */

static void test_traits_table(void **state)
{
	(void)state;
	static const struct { enum dk_ttype t; int blck; size_t bytes; enum dk_ttype dot; } want[] = {
		{ DK_TYPE_F32, 1, 4, DK_TYPE_F32 },     { DK_TYPE_F16, 1, 2, DK_TYPE_F16 },
		{ DK_TYPE_BF16, 1, 2, DK_TYPE_BF16 },   { DK_TYPE_Q4_0, 32, 18, DK_TYPE_Q8_0 },
		{ DK_TYPE_Q4_1, 32, 20, DK_TYPE_Q8_1 }, { DK_TYPE_Q5_0, 32, 22, DK_TYPE_Q8_0 },
		{ DK_TYPE_Q5_1, 32, 24, DK_TYPE_Q8_1 }, { DK_TYPE_Q8_0, 32, 34, DK_TYPE_Q8_0 },
		{ DK_TYPE_Q8_1, 32, 36, DK_TYPE_Q8_1 }, { DK_TYPE_Q2_K, 256, 84, DK_TYPE_Q8_K },
		{ DK_TYPE_Q3_K, 256, 110, DK_TYPE_Q8_K }, { DK_TYPE_Q4_K, 256, 144, DK_TYPE_Q8_K },
		{ DK_TYPE_Q5_K, 256, 176, DK_TYPE_Q8_K }, { DK_TYPE_Q6_K, 256, 210, DK_TYPE_Q8_K },
		{ DK_TYPE_Q8_K, 256, 292, DK_TYPE_Q8_K },
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		const struct dk_qtraits *t = dk_quant_traits(want[i].t);
		assert_non_null(t);
		assert_int_equal(t->type, want[i].t);
		assert_int_equal(t->blck, want[i].blck);
		assert_int_equal(t->bytes, want[i].bytes);
		assert_int_equal(t->dot_type, want[i].dot);
		assert_non_null(t->to_float);
		assert_non_null(t->from_float);
		assert_non_null(t->kernel);
		if (want[i].t != DK_TYPE_Q8_1 && want[i].t != DK_TYPE_Q8_K) {
			assert_non_null(t->vec_dot);
			assert_non_null(t->vec_dot_ref);
			assert_non_null(t->vec_dot_n);
			assert_non_null(t->vec_dot_n_ref);
			assert_non_null(dk_quant_traits(t->dot_type)->from_float);
		}
	}
	assert_null(dk_quant_traits((enum dk_ttype)4));
	assert_null(dk_quant_traits((enum dk_ttype)5));
	assert_null(dk_quant_traits((enum dk_ttype)29));
	assert_null(dk_quant_traits(DK_TYPE_COUNT));
	assert_null(dk_quant_traits((enum dk_ttype)-1));
	assert_null(dk_quant_traits_level(DK_TYPE_Q4_0, 3));
	assert_null(dk_quant_traits_level(DK_TYPE_Q4_0, -1));
	assert_non_null(dk_quant_traits_level(DK_TYPE_Q4_0, DK_KERNELS_REF));
	assert_string_equal(dk_quant_traits_level(DK_TYPE_Q4_0, DK_KERNELS_REF)->kernel, "ref");
	int lvl = dk_quant_level();
	assert_true(lvl >= 0 && lvl <= 2);
	for (int t = 0; t < DK_TYPE_COUNT; t++)
		assert_ptr_equal(dk_quant_traits((enum dk_ttype)t),
				 dk_quant_traits_level((enum dk_ttype)t, lvl));
	print_message("selected kernel level: %s\n", dk_quant_level_name(lvl));
}

/* ------------------------------------------------------------------ known blocks */

static void test_known_blocks(void **state)
{
	(void)state;
	float x[256], y[256];
	for (int j = 0; j < 32; j++)
		x[j] = (float)(j - 16);
	/* Q4_0: extreme -16 -> d = 2, q = trunc(x/2 + 8.5) clamped to 15 */
	struct dk_block_q4_0 b4;
	dk_quant_traits(DK_TYPE_Q4_0)->from_float(x, &b4, 32);
	assert_int_equal(b4.d, 0x4000);
	assert_int_equal(b4.qs[0], 0x80);  /* x0 = -16 -> 0, x16 = 0 -> 8 */
	assert_int_equal(b4.qs[15], 0xf8); /* x15 = -1 -> 8, x31 = 15 -> 16 -> 15 */
	dk_quant_traits(DK_TYPE_Q4_0)->to_float(&b4, y, 32);
	assert_true(y[0] == -16.0f && y[16] == 0.0f && y[31] == 14.0f);

	/* Q8_0: d = 16/127, q = roundf(x/d) */
	struct dk_block_q8_0 b8;
	dk_quant_traits(DK_TYPE_Q8_0)->from_float(x, &b8, 32);
	assert_int_equal(b8.d, dk_fp32_to_fp16(16.0f / 127));
	assert_int_equal(b8.qs[0], -127);
	assert_int_equal(b8.qs[16], 0);
	assert_int_equal(b8.qs[31], (int)roundf(15 * (127 / 16.0f)));

	/* Q8_1: s carries d*sum(q) */
	struct dk_block_q8_1 b81;
	dk_quant_traits(DK_TYPE_Q8_1)->from_float(x, &b81, 32);
	int sum = 0;
	for (int j = 0; j < 32; j++)
		sum += b81.qs[j];
	assert_int_equal(b81.s, dk_fp32_to_fp16((float)sum * dk_fp16_to_fp32(b81.d)));

	/* Q4_1: min -16, d = 31/15 */
	struct dk_block_q4_1 b41;
	dk_quant_traits(DK_TYPE_Q4_1)->from_float(x, &b41, 32);
	assert_int_equal(b41.m, dk_fp32_to_fp16(-16.0f));
	assert_int_equal(b41.d, dk_fp32_to_fp16(31.0f / 15));
	assert_int_equal(b41.qs[0] & 0xF, 0);
	assert_int_equal(b41.qs[15] >> 4, 15);

	/* Q8_K: the signed extreme becomes -127, d negative */
	for (int j = 0; j < 256; j++)
		x[j] = (float)(j % 7) * 0.5f;
	x[100] = 5.0f;
	struct dk_block_q8_k bk;
	dk_quant_traits(DK_TYPE_Q8_K)->from_float(x, &bk, 256);
	assert_int_equal(bk.qs[100], -127);
	assert_true(bk.d < 0 && fabsf(bk.d + 5.0f / 127) < 1e-7f);
	for (int j = 0; j < 16; j++) {
		int s = 0;
		for (int l = 0; l < 16; l++)
			s += bk.qs[j * 16 + l];
		assert_int_equal(bk.bsums[j], s);
	}
	memset(x, 0, sizeof x);
	memset(&bk, 0x55, sizeof bk);
	dk_quant_traits(DK_TYPE_Q8_K)->from_float(x, &bk, 256);
	assert_true(bk.d == 0.0f && bk.qs[7] == 0 && bk.bsums[3] == 0);

	/* a hand-built Q4_K block: scale j = j+1, min j = 2j, q = e % 16 */
	struct dk_block_q4_k k4;
	memset(&k4, 0, sizeof k4);
	k4.d = dk_fp32_to_fp16(0.5f);
	k4.dmin = dk_fp32_to_fp16(0.25f);
	uint8_t sc[8], mn[8];
	for (int j = 0; j < 8; j++) {
		sc[j] = (uint8_t)(j + 1 + (j >= 4 ? 40 : 0)); /* exercise the 6th bit */
		mn[j] = (uint8_t)(2 * j + (j >= 6 ? 33 : 0));
	}
	for (int j = 0; j < 4; j++) {
		k4.scales[j] = sc[j] | (uint8_t)((sc[j + 4] >> 4) << 6);
		k4.scales[j + 4] = mn[j] | (uint8_t)((mn[j + 4] >> 4) << 6);
		k4.scales[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
	}
	for (int c = 0; c < 4; c++)
		for (int l = 0; l < 32; l++)
			k4.qs[c * 32 + l] = (uint8_t)((l % 16) | (((l + 3) % 16) << 4));
	dk_quant_traits(DK_TYPE_Q4_K)->to_float(&k4, y, 256);
	for (int e = 0; e < 256; e++) {
		int j = e / 32, l = e % 32, c = e / 64;
		(void)c;
		int q = (e % 64) < 32 ? l % 16 : (l + 3) % 16;
		float want = 0.5f * sc[j] * (float)q - 0.25f * mn[j];
		assert_true(y[e] == want);
	}
}

/* ------------------------------------------------------------------ round trips */

struct bound { enum dk_ttype t; double rel_rms; };

static void test_roundtrip(void **state)
{
	(void)state;
	/* relative RMS error bounds for N(0,1)-ish data with outliers */
	static const struct bound b[] = {
		{ DK_TYPE_F32, 0 },      { DK_TYPE_F16, 5e-4 },   { DK_TYPE_BF16, 4e-3 },
		{ DK_TYPE_Q8_0, 0.01 },  { DK_TYPE_Q8_1, 0.01 },  { DK_TYPE_Q8_K, 0.02 },
		{ DK_TYPE_Q4_0, 0.16 },  { DK_TYPE_Q4_1, 0.13 },  { DK_TYPE_Q5_0, 0.08 },
		{ DK_TYPE_Q5_1, 0.065 }, { DK_TYPE_Q2_K, 0.45 },  { DK_TYPE_Q3_K, 0.25 },
		{ DK_TYPE_Q4_K, 0.14 },  { DK_TYPE_Q5_K, 0.07 },  { DK_TYPE_Q6_K, 0.035 },
	};
	enum { N = 256 * 16 };
	float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
	void *q = malloc(N * 4);
	for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
		const struct dk_qtraits *t = dk_quant_traits(b[i].t);
		rng_seed(100 + i);
		fill(x, N, 1.0f);
		memset(q, 0xAB, N * 4);
		t->from_float(x, q, N);
		t->to_float(q, y, N);
		double e2 = 0, x2 = 0;
		for (int j = 0; j < N; j++) {
			assert_true(isfinite(y[j]));
			e2 += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
			x2 += (double)x[j] * x[j];
		}
		double rel = sqrt(e2 / x2);
		print_message("%-8s rel rms error %.5f (bound %.4f)\n", tname(b[i].t), rel, b[i].rel_rms);
		assert_true(rel <= b[i].rel_rms);
		/* a second quantisation of the dequantised values is (nearly) stable */
		if (b[i].t == DK_TYPE_Q8_0 || b[i].t == DK_TYPE_F16 || b[i].t == DK_TYPE_BF16) {
			float *z = malloc(N * sizeof *z);
			t->from_float(y, q, N);
			t->to_float(q, z, N);
			for (int j = 0; j < N; j++)
				assert_true(fabsf(z[j] - y[j]) <= 1e-6f + 1e-2f * fabsf(y[j]));
			free(z);
		}
		/* zero input quantises to zero output */
		memset(x, 0, N * sizeof *x);
		t->from_float(x, q, N);
		t->to_float(q, y, N);
		for (int j = 0; j < N; j++)
			assert_true(y[j] == 0.0f);
	}
	free(x);
	free(y);
	free(q);
}

/* ------------------------------------------------------------------ dots */

static const enum dk_ttype dot_types[] = {
	DK_TYPE_F32, DK_TYPE_F16, DK_TYPE_BF16, DK_TYPE_Q4_0, DK_TYPE_Q4_1, DK_TYPE_Q5_0,
	DK_TYPE_Q5_1, DK_TYPE_Q8_0, DK_TYPE_Q2_K, DK_TYPE_Q3_K, DK_TYPE_Q4_K, DK_TYPE_Q5_K,
	DK_TYPE_Q6_K,
};
#define N_DOT (sizeof dot_types / sizeof dot_types[0])

struct pair {
	const struct dk_qtraits *w, *a;
	int64_t n;
	float *xf, *yf;        /* original floats */
	float *xd, *yd;        /* dequantised */
	void *xq, *yq;         /* quantised rows: ny activation rows for yq */
	size_t xb, yb;
};

static void pair_make(struct pair *p, enum dk_ttype t, int64_t n, int ny, uint64_t seed)
{
	p->w = dk_quant_traits_level(t, DK_KERNELS_REF);
	p->a = dk_quant_traits_level(p->w->dot_type, DK_KERNELS_REF);
	p->n = n;
	p->xb = row_bytes(p->w, n);
	p->yb = row_bytes(p->a, n);
	p->xf = malloc((size_t)n * sizeof(float));
	p->yf = malloc((size_t)n * ny * sizeof(float));
	p->xd = malloc((size_t)n * sizeof(float));
	p->yd = malloc((size_t)n * ny * sizeof(float));
	p->xq = malloc(p->xb);
	p->yq = malloc(p->yb * (size_t)ny);
	rng_seed(seed);
	fill(p->xf, n, 0.05f);
	fill(p->yf, n * ny, 1.0f);
	p->w->from_float(p->xf, p->xq, n);
	p->w->to_float(p->xq, p->xd, n);
	for (int j = 0; j < ny; j++) {
		p->a->from_float(p->yf + j * n, (char *)p->yq + j * p->yb, n);
		p->a->to_float((char *)p->yq + j * p->yb, p->yd + j * n, n);
	}
}

static void pair_free(struct pair *p)
{
	free(p->xf);
	free(p->yf);
	free(p->xd);
	free(p->yd);
	free(p->xq);
	free(p->yq);
}

static void test_dot_ref(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_DOT; i++) {
		for (int nb = 1; nb <= 9; nb += 4) {
			struct pair p;
			int64_t n = (int64_t)nb * DK_QK_K;
			pair_make(&p, dot_types[i], n, 1, 7 + i * 31 + (uint64_t)nb);
			double want = 0, mag = 0;
			for (int64_t e = 0; e < n; e++) {
				want += (double)p.xd[e] * p.yd[e];
				mag += fabs((double)p.xd[e] * p.yd[e]);
			}
			float got = NAN;
			p.w->vec_dot_ref(n, &got, p.xq, p.yq);
			/* _1 formats use the fp16-rounded block sum s of the
			 * activations, so they carry its rounding */
			double tol = (dot_types[i] == DK_TYPE_Q4_1 || dot_types[i] == DK_TYPE_Q5_1)
					     ? 2e-3 * mag
					     : 2e-6 * mag + 1e-6;
			if (fabs(got - want) > tol)
				fail_msg("%s n=%lld: ref dot %.9g, dequantised dot %.9g", tname(dot_types[i]),
					 (long long)n, got, want);
			/* and the quantised dot tracks the float dot */
			double fl = 0;
			for (int64_t e = 0; e < n; e++)
				fl += (double)p.xf[e] * p.yf[e];
			assert_true(fabs(got - fl) <= 0.5 * mag + 1e-3);
			pair_free(&p);
		}
	}
}

static void check_level(int level)
{
	static const int nblocks[] = { 1, 3, 7, 33 };
	int checked = 0;
	char kernels[512] = "";
	for (size_t i = 0; i < N_DOT; i++) {
		const struct dk_qtraits *tl = dk_quant_traits_level(dot_types[i], level);
		const struct dk_qtraits *tr = dk_quant_traits_level(dot_types[i], DK_KERNELS_REF);
		assert_non_null(tl);
		checked += tl->vec_dot != tl->vec_dot_ref;
		snprintf(kernels + strlen(kernels), sizeof kernels - strlen(kernels), " %s=%s",
			 tname(dot_types[i]), tl->kernel ? tl->kernel : "?");
		for (size_t k = 0; k < sizeof nblocks / sizeof nblocks[0]; k++) {
			/* block counts in units of the type's own block, and for
			 * the scalar types odd element counts too */
			int64_t n = (int64_t)nblocks[k] * (tr->blck == 1 ? 37 : tr->blck);
			enum { NY = 7 };
			struct pair p;
			pair_make(&p, dot_types[i], n, NY, 1000 + i * 17 + k);
			double mag = 0;
			for (int64_t e = 0; e < n; e++)
				mag += fabs((double)p.xd[e] * p.yd[e]);
			float ref = NAN, got = NAN;
			tr->vec_dot_ref(n, &ref, p.xq, p.yq);
			tl->vec_dot(n, &got, p.xq, p.yq);
			(void)mag;
			/* bit-identical to the reference at every level (quant.h) */
			if (memcmp(&got, &ref, sizeof got))
				fail_msg("%s level %s n=%lld: %a vs ref %a", tname(dot_types[i]),
					 dk_quant_level_name(level), (long long)n, got, ref);
			/* multi-column kernel equals single dots of the same level */
			for (int ny = 1; ny <= NY; ny++) {
				float s[3 * NY];
				for (int j = 0; j < 3 * NY; j++)
					s[j] = -777.0f;
				tl->vec_dot_n(n, s, 3, p.xq, p.yq, p.yb, ny);
				for (int j = 0; j < NY; j++) {
					if (j >= ny) {
						assert_true(s[3 * j] == -777.0f);
						continue;
					}
					float one = NAN;
					tl->vec_dot(n, &one, p.xq, (char *)p.yq + j * p.yb);
					/* bit-identical: batching must not change results */
					if (memcmp(&one, &s[3 * j], sizeof one))
						fail_msg("%s level %s n=%lld ny=%d col %d: %.9g vs %.9g",
							 tname(dot_types[i]), dk_quant_level_name(level),
							 (long long)n, ny, j, s[3 * j], one);
					assert_true(s[3 * j + 1] == -777.0f && s[3 * j + 2] == -777.0f);
				}
			}
			/* to_float of this level equals the reference exactly */
			float *d1 = malloc((size_t)n * sizeof(float));
			tl->to_float(p.xq, d1, n);
			assert_memory_equal(d1, p.xd, (size_t)n * sizeof(float));
			free(d1);
			pair_free(&p);
		}
	}
	print_message("level %s: %d of %zu dots have SIMD kernels:%s\n", dk_quant_level_name(level),
		      checked, N_DOT, kernels);
	/* every type has this level's own kernel, so each was exercised above */
	for (size_t i = 0; i < N_DOT; i++) {
		const char *k = dk_quant_traits_level(dot_types[i], level)->kernel;
		if (!k || strcmp(k, dk_quant_level_name(level)) != 0)
			fail_msg("%s at level %s runs kernel %s", tname(dot_types[i]),
				 dk_quant_level_name(level), k ? k : "(none)");
	}
	if (level > DK_KERNELS_REF)
		assert_int_equal(checked, N_DOT);
}

/* The highest level this CPU runs, detected here rather than asked of
 * quant.c, so that a level the CPU has cannot go unchecked because the
 * tables wrongly lack it (same features as quant.c's detect_cpu). */
static int cpu_level(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
		return DK_KERNELS_REF;
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512vnni"))
		return DK_KERNELS_AVX512;
	return DK_KERNELS_AVX2;
#else
	return DK_KERNELS_REF;
#endif
}

static void test_level_ref(void **state)
{
	(void)state;
	check_level(DK_KERNELS_REF);
}

static void test_level_avx2(void **state)
{
	(void)state;
	if (cpu_level() < DK_KERNELS_AVX2)
		dk_test_skip("the cpu lacks avx2+fma: the avx2 kernels are not checked");
	check_level(DK_KERNELS_AVX2);
}

static void test_level_avx512(void **state)
{
	(void)state;
	if (cpu_level() < DK_KERNELS_AVX512)
		dk_test_skip("the cpu lacks avx512 f/bw/vl/dq/vnni: the avx512 kernels are not checked");
	check_level(DK_KERNELS_AVX512);
}

/* Weight rows of arbitrary bytes (as a hostile or foreign file may hold:
 * every bit pattern of scales, high bits and masks) give the same dots at
 * every level.  Only the float scale fields are kept finite. */
static uint16_t rand_half(void)
{
	/* finite, magnitude about 2^-10 .. 2^-3, either sign */
	return (uint16_t)(((rng_u32() & 1) << 15) | ((5 + rng_u32() % 8) << 10) | (rng_u32() & 0x3ff));
}

static void randomize_row(enum dk_ttype t, void *row, size_t bytes, size_t blk, int64_t n)
{
	uint8_t *b = row;
	for (size_t i = 0; i < bytes; i++)
		b[i] = (uint8_t)rng_u32();
	size_t nb = bytes / blk;
	for (size_t i = 0; i < nb; i++) {
		uint8_t *p = b + i * blk;
		uint16_t h[2] = { rand_half(), rand_half() };
		switch (t) {
		case DK_TYPE_Q4_1: case DK_TYPE_Q5_1: case DK_TYPE_Q4_K: case DK_TYPE_Q5_K:
			memcpy(p, h, 4);
			break;
		case DK_TYPE_Q4_0: case DK_TYPE_Q5_0: case DK_TYPE_Q8_0:
			memcpy(p, h, 2);
			break;
		case DK_TYPE_Q2_K:
			memcpy(p + offsetof(struct dk_block_q2_k, d), h, 4);
			break;
		case DK_TYPE_Q3_K:
			memcpy(p + offsetof(struct dk_block_q3_k, d), h, 2);
			break;
		case DK_TYPE_Q6_K:
			memcpy(p + offsetof(struct dk_block_q6_k, d), h, 2);
			break;
		default:
			break;
		}
	}
	if (t == DK_TYPE_F16 || t == DK_TYPE_BF16) {
		uint16_t *h = row;
		for (int64_t i = 0; i < n; i++)
			h[i] = t == DK_TYPE_F16 ? rand_half() : dk_fp32_to_bf16(rng_unif());
	} else if (t == DK_TYPE_F32) {
		float *f = row;
		for (int64_t i = 0; i < n; i++)
			f[i] = rng_unif();
	}
}

static void test_random_bytes(void **state)
{
	(void)state;
	for (int level = 1; level <= 2; level++) {
		if (!dk_quant_traits_level(DK_TYPE_F32, level))
			continue;
		for (size_t i = 0; i < N_DOT; i++) {
			for (int rep = 0; rep < 20; rep++) {
				struct pair p;
				int64_t n = DK_QK_K * (1 + rep % 5);
				pair_make(&p, dot_types[i], n, 1, 5000 + i * 100 + (uint64_t)rep);
				randomize_row(dot_types[i], p.xq, p.xb, p.w->bytes, n);
				p.w->to_float(p.xq, p.xd, n);
				double mag = 0;
				for (int64_t e = 0; e < n; e++)
					mag += fabs((double)p.xd[e] * p.yd[e]);
				const struct dk_qtraits *tl = dk_quant_traits_level(dot_types[i], level);
				float ref = NAN, got = NAN;
				p.w->vec_dot_ref(n, &ref, p.xq, p.yq);
				tl->vec_dot(n, &got, p.xq, p.yq);
				(void)mag;
				if (memcmp(&got, &ref, sizeof got))
					fail_msg("%s level %s rep %d: %a vs ref %a", tname(dot_types[i]),
						 dk_quant_level_name(level), rep, got, ref);
				float d1[DK_QK_K * 5];
				tl->to_float(p.xq, d1, n);
				assert_memory_equal(d1, p.xd, (size_t)n * sizeof(float));
				pair_free(&p);
			}
		}
	}
}

/* The default model's real weights (Q4_1 layers, Q8_0 embeddings): every
 * level agrees with the reference and with the float dot of the
 * dequantised rows.  Skipped when the model has not been fetched. */
static void test_real_model(void **state)
{
	(void)state;
	struct dk_gguf *g = dk_test_open_default_gguf();
	static const char *const names[] = { "blk.0.ffn_gate.weight", "blk.0.ffn_down.weight",
					     "blk.0.attn_v.weight", "token_embd.weight" };
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
		const struct dk_gguf_tensor *t = dk_gguf_tensor_by_name(g, names[k]);
		assert_non_null(t);
		const struct dk_qtraits *tr = dk_quant_traits_level(t->type, DK_KERNELS_REF);
		assert_non_null(tr);
		const struct dk_qtraits *at = dk_quant_traits_level(tr->dot_type, DK_KERNELS_REF);
		int64_t n = t->ne[0], rows = t->ne[1];
		size_t rb = row_bytes(tr, n), ab = row_bytes(at, n);
		enum { NY = 5 };
		float *a = malloc((size_t)n * NY * sizeof *a), *ad = malloc((size_t)n * NY * sizeof *ad);
		float *w = malloc((size_t)n * sizeof *w);
		uint8_t *aq = malloc(ab * NY);
		rng_seed(77 + k);
		fill(a, n * NY, 1.0f);
		for (int j = 0; j < NY; j++) {
			at->from_float(a + j * n, aq + j * ab, n);
			at->to_float(aq + j * ab, ad + j * n, n);
		}
		for (int64_t r = 0; r < rows; r += rows / 97 + 1) {
			const uint8_t *wr = (const uint8_t *)t->data + (size_t)r * rb;
			tr->to_float(wr, w, n);
			double want = 0, mag = 0;
			for (int64_t e = 0; e < n; e++) {
				want += (double)w[e] * ad[e];
				mag += fabs((double)w[e] * ad[e]);
			}
			float ref = NAN;
			tr->vec_dot_ref(n, &ref, wr, aq);
			double tol = t->type == DK_TYPE_Q4_1 ? 2e-3 * mag : 2e-6 * mag + 1e-6;
			if (fabs(ref - want) > tol)
				fail_msg("%s row %lld: ref %.9g, dequantised %.9g", names[k], (long long)r, ref, want);
			for (int level = 1; level <= 2; level++) {
				const struct dk_qtraits *tl = dk_quant_traits_level(t->type, level);
				if (!tl)
					continue;
				float got = NAN, s[NY];
				tl->vec_dot(n, &got, wr, aq);
				if (memcmp(&got, &ref, sizeof got))
					fail_msg("%s row %lld level %s: %a vs ref %a", names[k], (long long)r,
						 dk_quant_level_name(level), got, ref);
				tl->vec_dot_n(n, s, 1, wr, aq, ab, NY);
				assert_memory_equal(&got, &s[0], sizeof got);
			}
		}
		free(a);
		free(ad);
		free(w);
		free(aq);
	}
	dk_gguf_free(g);
}

/* Activation quantisers of the SIMD levels must produce the same bytes. */
static void test_from_float_levels(void **state)
{
	(void)state;
	static const enum dk_ttype act[] = { DK_TYPE_F16, DK_TYPE_BF16, DK_TYPE_Q8_0,
					     DK_TYPE_Q8_1, DK_TYPE_Q8_K };
	enum { N = 256 * 5 };
	float *x = malloc(N * sizeof *x);
	uint8_t *a = malloc(N * 4), *b = malloc(N * 4);
	for (int level = 1; level <= 2; level++) {
		for (size_t i = 0; i < sizeof act / sizeof act[0]; i++) {
			const struct dk_qtraits *tl = dk_quant_traits_level(act[i], level);
			if (!tl)
				continue;
			const struct dk_qtraits *tr = dk_quant_traits_level(act[i], 0);
			rng_seed(55 + i);
			fill(x, N, 3.0f);
			/* exact ties and tiny values */
			x[3] = 0.5f;
			x[40] = 0;
			x[41] = 1e-30f;
			/* exact rounding ties after scaling: block 2 has amax 127, so
			 * d = 1; super-block 1 has -127 (then +127) as its extreme,
			 * so Q8_K's scale is exactly 1 */
			for (int j = 0; j < 32; j++)
				x[64 + j] = (float)(j - 16) + 0.5f;
			x[64] = 127.0f;
			x[65] = -126.5f;
			x[66] = 0.49999997f;
			x[67] = -0.50000006f;
			for (int j = 0; j < 256; j++)
				x[256 + j] = (float)((j * 37) % 250 - 125) + (j % 3 ? 0.5f : 0.25f);
			x[300] = -127.0f;
			x[301] = 127.0f;
			/* an all-zero block (scale 0, inverse 0) */
			for (int j = 640; j < 672; j++)
				x[j] = 0;
			if (act[i] == DK_TYPE_F16 || act[i] == DK_TYPE_BF16) {
				/* specials and the edges of the fp16 range */
				x[50] = INFINITY;
				x[51] = -NAN;
				x[52] = u2f(0x7f800001); /* signalling NaN */
				x[53] = 65520.0f;
				x[54] = 0x1p-25f;
				x[55] = -0x1.8p-24f;
				x[56] = 1e-40f; /* fp32 subnormal */
			}
			/* whole row, and rows whose last group of blocks is partial
			 * (the SIMD Q8 forms take 16 blocks at a time) */
			static const int lens[] = { N, 32, 18 * 32, 33 * 32 };
			for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
				if (lens[k] % tr->blck)
					continue;
				size_t nb = row_bytes(tr, lens[k]);
				memset(a, 0, nb);
				memset(b, 0xAA, nb);
				tr->from_float(x, a, lens[k]);
				tl->from_float(x, b, lens[k]);
				assert_memory_equal(a, b, nb);
			}
		}
	}
	free(x);
	free(a);
	free(b);
}

/* ------------------------------------------------------------------ golden */

/* Cross-check against the format's independent Python implementation
 * (gguf-py's gguf.quants, from the ggml project): for fixed pseudo-random
 * inputs, the sha256 of its dequantised floats and of its quantised bytes.
 * `test_quant --dump-golden DIR` writes the inputs used here. */
static const struct { enum dk_ttype t; const char *deq; } golden_deq[] = {
	{ DK_TYPE_F16, "489c6905ed259b082f0cc43ebdb393b2e5f815db706d5d7bfea7c12f29ea1385" },
	{ DK_TYPE_BF16, "850b14a2336933c3ffe288933fae75bbdb884844d0513f1aa46260ed6779e690" },
	{ DK_TYPE_Q4_0, "486c1512bc87821a945032e7faaab1ead3f4a5ac0e44076459805df947df3675" },
	{ DK_TYPE_Q4_1, "5865f83614345c2b0cf35376236817d6f05e52602c4a7016d28158fc40f9d7a9" },
	{ DK_TYPE_Q5_0, "b5d7d5b95945ce414ba3cd025e70948c4c19293e5e4d580dbfa8d970fe94cd7e" },
	{ DK_TYPE_Q5_1, "c719c9ef097739e24c25e26bedfa7a76a7fbf93176cd1b83aaf818172d1602a6" },
	{ DK_TYPE_Q8_0, "40d90622e99c41c08d6ce47d13fa3f0f5225cdaa670c5e91b93e56f3f77abc59" },
	{ DK_TYPE_Q2_K, "a3d9e0e011320a46f1f0b815207019ca1173a294d24af1b5702b493991fa6713" },
	{ DK_TYPE_Q3_K, "6978ae640a21c6152efcbb361aa0aaf7aaafcab5e2cbee45c89767754bd99916" },
	{ DK_TYPE_Q4_K, "8052da0f6f195bf1ba397b0ee5d254b1ad97883a83bcdc25a69108cad346d597" },
	{ DK_TYPE_Q5_K, "843589bf28b5bb38ad38919621b3bcecc5c757c7761628bd7874a8254472440d" },
	{ DK_TYPE_Q6_K, "60316d7c7b9e712662cc80c129a16f04a0201960d0a62bde048c64d941cdeca6" },
};
static const struct { enum dk_ttype t; const char *q; } golden_q[] = {
	{ DK_TYPE_BF16, "9c260052a8a44bb623eb89e8546fad1f5d67ab3694ba16629c90f1f93aa124e8" },
	{ DK_TYPE_Q4_0, "18f88ab63522b1fc4bd610d4c076a8f042f70b793669b707424950d3c99de816" },
	{ DK_TYPE_Q4_1, "881fe2def03557496dc2146eea53b774ca59181eabf70a155543fa4242fb0f8e" },
	{ DK_TYPE_Q5_0, "448e3807755ee198171b701110d34e7188292f450597efba554913998f8ac8ed" },
	{ DK_TYPE_Q5_1, "89a9cc96e0031dbfac126c9f218d338b5ce57b0bfe61d4c58c8744d012c9320a" },
	{ DK_TYPE_Q8_0, "8cc309686d545adbe78608d6e77eec5220a19ef336b495438f561f942917134d" },
};
enum { GOLDEN_N = 256 * 64 };

/* random bytes with every 16-bit word made finite (as fp16 or bf16) */
static uint8_t *golden_blocks(enum dk_ttype t, size_t *bytes)
{
	const struct dk_qtraits *tr = dk_quant_traits_level(t, DK_KERNELS_REF);
	*bytes = tr->bytes * (GOLDEN_N / (size_t)tr->blck);
	uint8_t *b = malloc(*bytes);
	rng_seed(0x601d + (uint64_t)t);
	for (size_t i = 0; i < *bytes; i++)
		b[i] = (uint8_t)rng_u32();
	uint16_t inf = t == DK_TYPE_BF16 ? 0x7f80 : 0x7c00;
	for (size_t i = 0; i + 1 < *bytes; i += 2) {
		uint16_t h;
		memcpy(&h, b + i, 2);
		if ((h & inf) == inf)
			h &= 0xbfff;
		memcpy(b + i, &h, 2);
	}
	return b;
}

static float *golden_floats(void)
{
	float *x = malloc(GOLDEN_N * sizeof *x);
	rng_seed(0x601d);
	for (int i = 0; i < GOLDEN_N; i += 32)
		fill(x + i, 32, i % 96 == 0 ? 0.01f : i % 96 == 32 ? 1.0f : 30.0f);
	for (int i = 0; i < 32; i++) {
		x[i] = 0;       /* a zero block */
		x[32 + i] = 1.5f; /* a constant block */
	}
	return x;
}

static void sha_hex(const void *p, size_t n, char hex[65])
{
	struct dk_sha256 s;
	uint8_t d[32];
	dk_sha256_init(&s);
	dk_sha256_update(&s, p, n);
	dk_sha256_final(&s, d);
	dk_sha256_hex(d, hex);
}

static void test_golden(void **state)
{
	(void)state;
	float *y = malloc(GOLDEN_N * sizeof *y);
	char hex[65];
	for (size_t i = 0; i < sizeof golden_deq / sizeof golden_deq[0]; i++) {
		size_t nb;
		uint8_t *b = golden_blocks(golden_deq[i].t, &nb);
		for (int level = 0; level <= 2; level++) {
			const struct dk_qtraits *t = dk_quant_traits_level(golden_deq[i].t, level);
			if (!t)
				continue;
			t->to_float(b, y, GOLDEN_N);
			sha_hex(y, GOLDEN_N * sizeof *y, hex);
			if (strcmp(hex, golden_deq[i].deq))
				fail_msg("%s dequantisation differs from gguf-py: %s", tname(golden_deq[i].t), hex);
		}
		free(b);
	}
	float *x = golden_floats();
	uint8_t *q = malloc(GOLDEN_N * 4);
	for (size_t i = 0; i < sizeof golden_q / sizeof golden_q[0]; i++) {
		const struct dk_qtraits *t = dk_quant_traits_level(golden_q[i].t, DK_KERNELS_REF);
		t->from_float(x, q, GOLDEN_N);
		sha_hex(q, t->bytes * (GOLDEN_N / (size_t)t->blck), hex);
		if (strcmp(hex, golden_q[i].q))
			fail_msg("%s quantisation differs from gguf-py: %s", tname(golden_q[i].t), hex);
	}
	free(q);
	free(x);
	free(y);
}

static int dump_golden(const char *dir)
{
	char path[4096];
	for (size_t i = 0; i < sizeof golden_deq / sizeof golden_deq[0]; i++) {
		size_t nb;
		uint8_t *b = golden_blocks(golden_deq[i].t, &nb);
		snprintf(path, sizeof path, "%s/deq_%d.bin", dir, (int)golden_deq[i].t);
		if (dk_test_write_file(path, b, nb))
			return 1;
		free(b);
	}
	float *x = golden_floats();
	snprintf(path, sizeof path, "%s/quant_in.f32", dir);
	int rc = dk_test_write_file(path, x, GOLDEN_N * sizeof *x);
	free(x);
	return rc;
}

/* DOCKET_KERNELS caps the level; checked in child processes since the
 * choice is made once per process. */
static void test_env_cap(void **state)
{
	(void)state;
	int top = 0;
	while (top < 2 && dk_quant_traits_level(DK_TYPE_F32, top + 1))
		top++;
	static const struct { const char *env; int cap; } cases[] = {
		{ "ref", 0 }, { "avx2", 1 }, { "avx512", 2 }, { "", 2 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char cmd[512], *out = NULL;
		snprintf(cmd, sizeof cmd, "DOCKET_KERNELS='%s' /proc/%d/exe --print-level", cases[i].env,
			 (int)getpid());
		assert_int_equal(dk_test_run(cmd, &out), 0);
		assert_non_null(out);
		int want = cases[i].cap < top ? cases[i].cap : top;
		char exp[64];
		/* Q4_1 has a kernel at every level, so its name is the level's */
		snprintf(exp, sizeof exp, "%s %s\n", dk_quant_level_name(want), dk_quant_level_name(want));
		assert_string_equal(out, exp);
		free(out);
	}
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--print-level")) {
		printf("%s %s\n", dk_quant_level_name(dk_quant_level()),
		       dk_quant_traits(DK_TYPE_Q4_1)->kernel);
		return 0;
	}
	if (argc > 2 && !strcmp(argv[1], "--dump-golden"))
		return dump_golden(argv[2]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fp16_values),
		cmocka_unit_test(test_fp16_roundtrip),
		cmocka_unit_test(test_bf16),
		cmocka_unit_test(test_traits_table),
		cmocka_unit_test(test_known_blocks),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_dot_ref),
		cmocka_unit_test(test_level_ref),
		cmocka_unit_test(test_level_avx2),
		cmocka_unit_test(test_level_avx512),
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_from_float_levels),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_real_model),
		cmocka_unit_test(test_env_cap),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
