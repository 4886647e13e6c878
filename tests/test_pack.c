/* engine/pack: the row-interleaved kernels bit-identical to the scalar
 * reference dot on the original rows; engine/gemm: the BLAS path close to
 * a double-precision reference. */
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

#include "docket/docket.h"
#include "docket/gguf.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/pack.h"
#include "engine/kernels/quant.h"
#include "testrng.h"
#include "testutil.h"

static const enum dk_ttype gemm_types[] = { DK_TYPE_Q4_0, DK_TYPE_Q4_1, DK_TYPE_Q5_0,
					    DK_TYPE_Q5_1, DK_TYPE_Q8_0, DK_TYPE_Q2_K,
					    DK_TYPE_Q3_K, DK_TYPE_Q4_K, DK_TYPE_Q5_K,
					    DK_TYPE_Q6_K };
static const int32_t Ts[] = { 1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 24, 32, 33 };
static const int64_t Rs[] = { 1, 3, 5, 16, 17, 64 };
static const int64_t Ks[] = { 32, 96, 576 }; /* 1, 3 (odd) and 18 blocks */
static const int64_t Ks_k[] = { 256, 768, 1536 }; /* K formats: 1, 3 and 6 */

#define MAXR 64
#define MAXT 33
#define PAD 3 /* extra floats per output row, must stay untouched */

struct fixture {
	enum dk_ttype type;
	const struct dk_qtraits *tr, *dt;
	int64_t k;
	size_t wrow, xrow;
	uint8_t *w, *xq;
	float *x;   /* T x k float activations */
};

static bool is_k(enum dk_ttype t)
{
	return dk_ttype_block(t) == 256;
}

/* where a block keeps its fp16 d (dmin follows for Q2_K, Q4_K, Q5_K;
 * m follows for Q4_1, Q5_1) */
static size_t d_pos(enum dk_ttype t, size_t bb)
{
	switch (t) {
	case DK_TYPE_Q2_K: return bb - 4;
	case DK_TYPE_Q3_K:
	case DK_TYPE_Q6_K: return bb - 2;
	default: return 0;
	}
}

static bool has_second(enum dk_ttype t)
{
	return t == DK_TYPE_Q4_1 || t == DK_TYPE_Q5_1 || t == DK_TYPE_Q2_K || t == DK_TYPE_Q4_K ||
	       t == DK_TYPE_Q5_K;
}

/* nrows quantised rows; a few rows get raw random bytes (extreme quants,
 * Q8_0's -128, every scale and min) with a sane scale, and one activation
 * row is all zeros so that -0 sums are exercised; for K formats another
 * gets raw random quants (-128 included) with its bsums recomputed */
static void make(struct fixture *f, enum dk_ttype t, int64_t k, uint64_t seed)
{
	rng_seed(seed);
	f->type = t;
	f->tr = dk_quant_traits(t);
	f->dt = dk_quant_traits(f->tr->dot_type);
	f->k = k;
	f->wrow = dk_ttype_row_bytes(t, k);
	f->xrow = dk_ttype_row_bytes(f->tr->dot_type, k) + 16; /* padded rows */
	f->w = malloc(f->wrow * MAXR);
	f->xq = calloc(MAXT, f->xrow);
	f->x = malloc(sizeof(float) * MAXT * k);
	assert_non_null(f->w);
	assert_non_null(f->xq);
	assert_non_null(f->x);
	float *row = malloc(sizeof(float) * k);
	for (int r = 0; r < MAXR; r++) {
		uint8_t *wr = f->w + (size_t)r * f->wrow;
		if (r % 7 == 5) {
			for (size_t b = 0; b < f->wrow; b++)
				wr[b] = (uint8_t)rng_u32();
			/* fix the fp16 scale (and min) of every block to small normals */
			size_t bb = f->tr->bytes, dp = d_pos(t, bb);
			for (size_t o = 0; o < f->wrow; o += bb) {
				uint16_t d = dk_fp32_to_fp16(0.01f * rng_unif());
				memcpy(wr + o + dp, &d, 2);
				if (has_second(t)) {
					uint16_t m = dk_fp32_to_fp16(-0.05f * rng_unif());
					memcpy(wr + o + dp + 2, &m, 2);
				}
			}
		} else {
			fill(row, k, 0.05f);
			f->tr->from_float(row, wr, k);
		}
	}
	for (int j = 0; j < MAXT; j++) {
		float *xj = f->x + (size_t)j * k;
		if (j == 2)
			memset(xj, 0, sizeof(float) * k);
		else
			fill(xj, k, 1.0f);
		f->dt->from_float(xj, f->xq + (size_t)j * f->xrow, k);
		if (is_k(t) && j == 5) {
			/* struct dk_block_q8_k: float d, 256 quants, 16 int16 bsums */
			for (int64_t b = 0; b < k / 256; b++) {
				uint8_t *blk = f->xq + (size_t)j * f->xrow + (size_t)b * 292;
				int8_t *qs = (int8_t *)(blk + 4);
				for (int e = 0; e < 256; e++)
					qs[e] = (int8_t)rng_u32();
				for (int m = 0; m < 16; m++) {
					int16_t s = 0;
					for (int e = 0; e < 16; e++)
						s = (int16_t)(s + qs[16 * m + e]);
					memcpy(blk + 260 + 2 * m, &s, 2);
				}
			}
		}
	}
	free(row);
}

static void unmake(struct fixture *f)
{
	free(f->w);
	free(f->xq);
	free(f->x);
}

/* the specification: the reference level's scalar dot on the original row */
static void want_dot(const struct fixture *f, int64_t r, int32_t j, float *out)
{
	const struct dk_qtraits *ref = dk_quant_traits_level(f->type, DK_KERNELS_REF);
	ref->vec_dot_ref(f->k, out, f->w + (size_t)r * f->wrow, f->xq + (size_t)j * f->xrow);
}

/* y from the packed kernel, the groups split at gsplit into two calls (as
 * two threads would); pads past R must stay untouched */
static void run_packed(const struct fixture *f, const struct dk_pack *p, bool ref, int64_t gsplit,
		       int32_t T, float *y, int64_t ldy)
{
	void (*fn)(const struct dk_pack *, int64_t, int64_t, const void *, size_t, int32_t, float *,
		   int64_t) = ref ? dk_pack_gemm_ref : dk_pack_gemm;
	fn(p, 0, gsplit, f->xq, f->xrow, T, y, ldy);
	fn(p, gsplit, dk_pack_groups(p), f->xq, f->xrow, T, y, ldy);
}

static void test_pack_bit_identical(void **state)
{
	(void)state;
	int tested = 0;
	for (size_t ti = 0; ti < sizeof gemm_types / sizeof gemm_types[0]; ti++) {
		for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
			struct fixture f;
			int64_t k = is_k(gemm_types[ti]) ? Ks_k[ki] : Ks[ki];
			make(&f, gemm_types[ti], k, 1000 + ti * 10 + ki);
			for (size_t b = 0; b < sizeof Rs / sizeof Rs[0]; b++) {
				int64_t R = Rs[b], ldy = R + PAD;
				struct dk_pack *p = dk_pack_new(f.type, f.w, f.wrow, f.k, R);
				assert_non_null(p);
				assert_int_equal(dk_pack_groups(p), (R + 15) / 16);
				for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++) {
					int32_t T = Ts[a];
					size_t n = (size_t)(T * ldy);
					float *y = malloc(sizeof(float) * n), *yr = malloc(sizeof(float) * n);
					float *want = malloc(sizeof(float) * n);
					memset(y, 0x7f, sizeof(float) * n);
					memset(yr, 0x7f, sizeof(float) * n);
					memset(want, 0x7f, sizeof(float) * n);
					int64_t split = (int64_t)(a % 2) * dk_pack_groups(p) / 2;
					run_packed(&f, p, false, split, T, y, ldy);
					run_packed(&f, p, true, dk_pack_groups(p) - split, T, yr, ldy);
					for (int32_t j = 0; j < T; j++)
						for (int64_t r = 0; r < R; r++)
							want_dot(&f, r, j, &want[j * ldy + r]);
					for (int32_t j = 0; j < T; j++)
						for (int64_t r = 0; r < ldy; r++)
							if (memcmp(&y[j * ldy + r], &want[j * ldy + r], 4) ||
							    memcmp(&yr[j * ldy + r], &want[j * ldy + r], 4)) {
								fprintf(stderr,
									"type %d k %lld T %d R %lld: y[%d][%lld] %a / ref %a != %a\n",
									f.type, (long long)f.k, T, (long long)R, j,
									(long long)r, y[j * ldy + r], yr[j * ldy + r],
									want[j * ldy + r]);
								fail();
							}
					free(y);
					free(yr);
					free(want);
					tested++;
				}
				dk_pack_free(p);
			}
			unmake(&f);
		}
	}
	fprintf(stderr, "%d shape/type cases bit-identical\n", tested);
}

/* the all-zero activation row comes out as +0 everywhere, also where
 * weights are negative, as the reference's sum from +0 does */
static void test_pack_zero_column(void **state)
{
	(void)state;
	for (size_t ti = 0; ti < sizeof gemm_types / sizeof gemm_types[0]; ti++) {
		struct fixture f;
		make(&f, gemm_types[ti], is_k(gemm_types[ti]) ? 512 : 96, 77 + ti);
		struct dk_pack *p = dk_pack_new(f.type, f.w, f.wrow, f.k, 17);
		assert_non_null(p);
		float y[4 * 17];
		dk_pack_gemm(p, 0, dk_pack_groups(p), f.xq, f.xrow, 4, y, 17);
		for (int r = 0; r < 17; r++) {
			assert_true(y[2 * 17 + r] == 0.0f);
			assert_false(signbit(y[2 * 17 + r]));
			assert_true(y[0 * 17 + r] != 0.0f); /* the others are real dots */
		}
		dk_pack_free(p);
		unmake(&f);
	}
}

static void test_pack_refuses(void **state)
{
	(void)state;
	uint8_t w[64] = { 0 };
	/* types without a packed layout, and shapes the layout cannot hold */
	assert_null(dk_pack_new(DK_TYPE_F16, w, 64, 32, 1));
	assert_null(dk_pack_new(DK_TYPE_F32, w, 128, 32, 1));
	assert_null(dk_pack_new(DK_TYPE_Q8_K, w, 292, 256, 1));
	assert_null(dk_pack_new(DK_TYPE_Q4_0, w, 18, 48, 1));
	assert_null(dk_pack_new(DK_TYPE_Q4_0, w, 18, 32, 0));
	assert_null(dk_pack_new(DK_TYPE_Q6_K, w, 210, 128, 1));
	assert_false(dk_pack_supported(DK_TYPE_F16));
	assert_false(dk_pack_supported(DK_TYPE_Q8_1));
	assert_false(dk_pack_supported(DK_TYPE_Q8_K));
	bool avx512 = dk_quant_level() == DK_KERNELS_AVX512;
	for (size_t ti = 0; ti < sizeof gemm_types / sizeof gemm_types[0]; ti++) {
		assert_true(dk_pack_has_layout(gemm_types[ti]));
		assert_true(dk_pack_supported(gemm_types[ti]) == avx512);
	}
}

/* DOCKET_KERNELS=ref: the level is read once per process, so ask a child
 * (this executable with --ref-probe) started with the variable set */
static void test_pack_env_ref(void **state)
{
	(void)state;
	char self[4096], cmd[4200];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	assert_true(n > 0);
	self[n] = 0;
	snprintf(cmd, sizeof cmd, "DOCKET_KERNELS=ref '%s' --ref-probe", self);
	assert_int_equal(system(cmd), 0);
}

/* real weights of the default model (SmolLM2 Q4_1, Q8_0 embedding): every
 * output of a few whole matrices, and 1000 rows of the embedding, equal
 * the reference dot */
static void test_pack_real_model(void **state)
{
	(void)state;
	struct dk_gguf *g = dk_test_open_default_gguf();
	static const char *const names[] = { "blk.0.attn_q.weight", "blk.0.attn_k.weight",
					     "blk.0.ffn_up.weight", "blk.0.ffn_down.weight",
					     "token_embd.weight" };
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
		const struct dk_gguf_tensor *t = dk_gguf_tensor_by_name(g, names[k]);
		assert_non_null(t);
		const struct dk_qtraits *tr = dk_quant_traits(t->type), *dt = dk_quant_traits(tr->dot_type);
		const struct dk_qtraits *ref = dk_quant_traits_level(t->type, DK_KERNELS_REF);
		int64_t n = t->ne[0], rows = t->ne[1];
		if (strcmp(names[k], "token_embd.weight") == 0)
			rows = 1000;
		size_t wrow = dk_ttype_row_bytes(t->type, n), xrow = dk_ttype_row_bytes(tr->dot_type, n);
		struct dk_pack *p = dk_pack_new(t->type, t->data, wrow, n, rows);
		assert_non_null(p);
		enum { T = 9 };
		float *x = malloc(sizeof(float) * (size_t)n * T);
		uint8_t *xq = malloc(xrow * T);
		float *y = malloc(sizeof(float) * (size_t)rows * T), want;
		rng_seed(900 + k);
		fill(x, n * T, 1.0f);
		for (int j = 0; j < T; j++)
			dt->from_float(x + (size_t)j * n, xq + (size_t)j * xrow, n);
		dk_pack_gemm(p, 0, dk_pack_groups(p), xq, xrow, T, y, rows);
		for (int j = 0; j < T; j++)
			for (int64_t r = 0; r < rows; r++) {
				ref->vec_dot_ref(n, &want, (const char *)t->data + (size_t)r * wrow,
						 xq + (size_t)j * xrow);
				if (memcmp(&want, &y[j * rows + r], 4))
					fail_msg("%s row %lld col %d: %a != %a", names[k], (long long)r, j,
						 y[j * rows + r], want);
			}
		dk_pack_free(p);
		free(x);
		free(xq);
		free(y);
	}
	dk_gguf_free(g);
}

static void test_blas(void **state)
{
	(void)state;
	const enum dk_ttype types[] = { DK_TYPE_Q4_0, DK_TYPE_Q4_1, DK_TYPE_Q8_0, DK_TYPE_Q4_K,
					DK_TYPE_Q6_K, DK_TYPE_F16, DK_TYPE_F32 };
	for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
		enum dk_ttype t = types[ti];
		const struct dk_qtraits *tr = dk_quant_traits(t);
		int64_t k = 512, R = 37;
		int32_t T = 13;
		size_t wrow = dk_ttype_row_bytes(t, k);
		uint8_t *w = malloc(wrow * (size_t)R);
		float *wf = malloc(sizeof(float) * (size_t)(k * R));
		float *x = malloc(sizeof(float) * (size_t)(k * T));
		float *y = malloc(sizeof(float) * (size_t)(T * R));
		rng_seed(500 + ti);
		fill(wf, k * R, 0.05f);
		for (int64_t r = 0; r < R; r++)
			tr->from_float(wf + r * k, w + (size_t)r * wrow, k);
		for (int64_t r = 0; r < R; r++)
			tr->to_float(w + (size_t)r * wrow, wf + r * k, k);
		fill(x, k * T, 1.0f);
		/* 10 rows per tile: several tiles and a partial last one */
		float *scratch = malloc(sizeof(float) * (size_t)(k * 10));
		assert_int_equal(dk_gemm_blas(t, k, w, wrow, R, x, k, T, y, R, scratch, (size_t)(k * 10)),
				 DK_OK);
		for (int32_t j = 0; j < T; j++)
			for (int64_t r = 0; r < R; r++) {
				double ref = 0, mag = 0;
				for (int64_t i = 0; i < k; i++) {
					ref += (double)wf[r * k + i] * x[j * k + i];
					mag += fabs((double)wf[r * k + i] * x[j * k + i]);
				}
				double err = fabs(y[j * R + r] - ref);
				if (err > 1e-5 * mag + 1e-6) {
					fprintf(stderr, "type %d y[%d][%lld] = %g, want %g\n", t, j, (long long)r,
						y[j * R + r], ref);
					fail();
				}
			}
		/* too small a scratch is an error, not an overflow */
		assert_int_equal(dk_gemm_blas(t, k, w, wrow, R, x, k, T, y, R, scratch, (size_t)k - 1),
				 DK_FATAL);
		free(scratch);
		free(w);
		free(wf);
		free(x);
		free(y);
	}
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--ref-probe") == 0)
		return !dk_pack_supported(DK_TYPE_Q4_0) && !dk_pack_supported(DK_TYPE_Q8_0) ? 0 : 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pack_bit_identical),
		cmocka_unit_test(test_pack_zero_column),
		cmocka_unit_test(test_pack_refuses),
		cmocka_unit_test(test_pack_env_ref),
		cmocka_unit_test(test_pack_real_model),
		cmocka_unit_test(test_blas),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
