/* Attention kernels against their scalar references on random K/V laid out
 * in blocks (keys as transposed tiles, attn.h), for several head sizes and
 * lengths that cross block edges; slots past the last position hold NaN,
 * which must never reach a result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/attn.h"
#include "engine/core/kv.h"
#include "engine/kernels/quant.h"
#include "testutil.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
	rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* Slots from `used` on of a block whose layer holds kv_dim-wide keys (as
 * tiles) then value rows of rowb bytes: NaN, as stale cache contents may
 * be.  used = 0: the block is full. */
static void stale_slots(uint8_t *blk, int32_t used, size_t esize, size_t kv_dim, size_t rowb)
{
	if (used == 0)
		return;
	for (int32_t j = used; j < DK_KV_BLOCK; j++)
		for (size_t e = 0; e < kv_dim; e++) {
			size_t ki = e * DK_KV_BLOCK + (size_t)j;
			uint8_t *v = blk + DK_KV_BLOCK * rowb + (size_t)j * rowb;
			if (esize == 2) {
				((uint16_t *)blk)[ki] = 0x7E00;
				((uint16_t *)v)[e] = 0x7E00;
			} else {
				((float *)blk)[ki] = NAN;
				((float *)v)[e] = NAN;
			}
		}
}

static void check(size_t esize, int32_t hd, int32_t n, dk_attn_fn fast, dk_attn_fn ref)
{
	int32_t nb = (n + DK_KV_BLOCK - 1) / DK_KV_BLOCK;
	size_t rowb = (size_t)hd * esize * 3; /* three heads per row: use the middle one */
	size_t blockb = 2 * DK_KV_BLOCK * rowb;
	uint8_t *mem = malloc((size_t)nb * blockb);
	uint8_t **blocks = malloc((size_t)nb * sizeof *blocks);
	/* blocks in scrambled order, as a paged cache has them */
	for (int32_t b = 0; b < nb; b++)
		blocks[b] = mem + (size_t)((b * 7) % nb) * blockb;
	for (size_t i = 0; i < (size_t)nb * blockb / esize; i++) {
		float x = frand() * 3.0f;
		if (esize == 2)
			((uint16_t *)mem)[i] = dk_fp32_to_fp16(x);
		else
			((float *)mem)[i] = x;
	}
	stale_slots(blocks[nb - 1], n % DK_KV_BLOCK, esize, (size_t)hd * 3, rowb);
	float *q = malloc((size_t)hd * 4), *o1 = malloc((size_t)hd * 4), *o2 = malloc((size_t)hd * 4);
	float *s1 = malloc(((size_t)n + 4 * (size_t)hd) * 4), *s2 = malloc(((size_t)n + 4 * (size_t)hd) * 4);
	for (int32_t i = 0; i < hd; i++)
		q[i] = frand() * 2.0f;
	struct dk_attn_args a = {.q = q, .nq = 1, .hd = hd, .n = n, .scale = 1.0f / sqrtf((float)hd),
				 .blocks = blocks, .k_off = (size_t)hd * esize * DK_KV_BLOCK,
				 .v_off = DK_KV_BLOCK * rowb + (size_t)hd * esize, .row_bytes = rowb};
	a.out = o1;
	a.scratch = s1;
	ref(&a);
	a.out = o2;
	a.scratch = s2;
	fast(&a);
	/* bit for bit: every level follows the reference's order (attn.h) */
	for (int32_t i = 0; i < hd; i++)
		if (memcmp(&o1[i], &o2[i], sizeof o1[i]))
			fail_msg("esize %zu hd %d n %d: out[%d] %a vs ref %a", esize, hd, n, i, o2[i], o1[i]);
	free(mem); free(blocks); free(q); free(o1); free(o2); free(s1); free(s2);
}

static void test_kernels(void **state)
{
	(void)state;
	int32_t hds[] = {32, 40, 48, 64, 128}, ns[] = {1, 2, 15, 16, 17, 33, 100, 700};
	bool simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		    __builtin_cpu_supports("f16c");
	bool avx512 = simd && dk_quant_level() >= DK_KERNELS_AVX512;
	for (size_t h = 0; h < sizeof hds / sizeof hds[0]; h++)
		for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
			check(4, hds[h], ns[k], dk_attn_f32_ref, dk_attn_f32_ref);
			if (!simd)
				continue;
			check(4, hds[h], ns[k], dk_attn_f32_avx2, dk_attn_f32_ref);
			check(2, hds[h], ns[k], dk_attn_f16_avx2, dk_attn_f16_ref);
			if (!avx512 || hds[h] % 16)
				continue;
			check(4, hds[h], ns[k], dk_attn_f32_avx512, dk_attn_f32_ref);
			check(2, hds[h], ns[k], dk_attn_f16_avx512, dk_attn_f16_ref);
		}
	/* kernel choice: small heads stay on the reference */
	assert_ptr_equal(dk_attn_kernel(2, 8), dk_attn_f16_ref);
	assert_ptr_equal(dk_attn_kernel(4, 4), dk_attn_f32_ref);
	if (simd && !getenv("DOCKET_KERNELS")) {
		assert_ptr_equal(dk_attn_kernel(2, 64),
				 avx512 ? dk_attn_f16_avx512 : dk_attn_f16_avx2);
		/* heads that are not a multiple of 16 wide stay on AVX2 */
		assert_ptr_equal(dk_attn_kernel(4, 40), dk_attn_f32_avx2);
	}
}

/* a group of heads in one pass equals each head alone, bit for bit */
static void test_groups(void **state)
{
	(void)state;
	if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	      __builtin_cpu_supports("f16c")))
		dk_test_skip("the cpu lacks avx2/fma/f16c: the avx2 attention kernel is not checked");
	int32_t hd = 64, n = 77, nb = (n + DK_KV_BLOCK - 1) / DK_KV_BLOCK;
	for (size_t esize = 2; esize <= 4; esize += 2) {
		size_t rowb = (size_t)hd * esize, blockb = 2 * DK_KV_BLOCK * rowb;
		uint8_t *mem = malloc((size_t)nb * blockb);
		uint8_t **blocks = malloc((size_t)nb * sizeof *blocks);
		for (int32_t b = 0; b < nb; b++)
			blocks[b] = mem + (size_t)b * blockb;
		for (size_t i = 0; i < (size_t)nb * blockb / esize; i++) {
			float x = frand() * 3.0f;
			if (esize == 2)
				((uint16_t *)mem)[i] = dk_fp32_to_fp16(x);
			else
				((float *)mem)[i] = x;
		}
		for (int32_t G = 1; G <= DK_ATTN_MAX_GROUP; G += 2) {
			float *q = malloc((size_t)G * hd * 4), *o1 = malloc((size_t)G * hd * 4),
			      *o2 = malloc((size_t)G * hd * 4);
			float *sc = malloc((size_t)G * ((size_t)n + 4 * (size_t)hd) * 4);
			for (int32_t i = 0; i < G * hd; i++)
				q[i] = frand();
			dk_attn_fn fn = dk_attn_kernel(esize, hd);
			struct dk_attn_args a = {.q = q, .out = o1, .nq = G, .hd = hd, .n = n,
						 .scale = 0.125f, .blocks = blocks, .k_off = 0,
						 .v_off = DK_KV_BLOCK * rowb, .row_bytes = rowb, .scratch = sc};
			fn(&a);
			for (int32_t g = 0; g < G; g++) {
				struct dk_attn_args one = a;
				one.nq = 1;
				one.q = q + g * hd;
				one.out = o2 + g * hd;
				fn(&one);
			}
			assert_memory_equal(o1, o2, (size_t)G * hd * 4);
			/* and the reference agrees with itself grouped */
			free(q); free(o1); free(o2); free(sc);
		}
		free(mem); free(blocks);
	}
}

/* The engine widens a sequence's F16 rows to float once and runs the F32
 * kernel over the copy for prompt runs, the F16 kernel on the cache for
 * single tokens: the two must give the same bits, at every kernel level. */
static void test_widened(void **state)
{
	(void)state;
	bool simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		    __builtin_cpu_supports("f16c");
	bool avx512 = simd && dk_quant_level() >= DK_KERNELS_AVX512;
	const struct { dk_attn_fn f16, f32; bool ok; } lv[] = {
		{dk_attn_f16_ref, dk_attn_f32_ref, true},
		{dk_attn_f16_avx2, dk_attn_f32_avx2, simd},
		{dk_attn_f16_avx512, dk_attn_f32_avx512, avx512},
	};
	int32_t hds[] = {8, 64, 128}, ns[] = {1, 5, 16, 33, 300};
	for (size_t h = 0; h < 3; h++)
		for (size_t k = 0; k < 5; k++) {
			int32_t hd = hds[h], n = ns[k], nb = (n + DK_KV_BLOCK - 1) / DK_KV_BLOCK, G = 3;
			size_t r16 = (size_t)hd * 2, r32 = (size_t)hd * 4;
			uint8_t *m16 = malloc((size_t)nb * 2 * DK_KV_BLOCK * r16);
			uint8_t *m32 = malloc((size_t)nb * 2 * DK_KV_BLOCK * r32);
			uint8_t **b16 = malloc((size_t)nb * sizeof *b16), **b32 = malloc((size_t)nb * sizeof *b32);
			uint16_t *h16 = (uint16_t *)m16;
			float *f32 = (float *)m32;
			for (size_t i = 0; i < (size_t)nb * 2 * DK_KV_BLOCK * hd; i++) {
				h16[i] = dk_fp32_to_fp16(frand() * 3.0f);
				f32[i] = dk_fp16_to_fp32(h16[i]);
			}
			for (int32_t b = 0; b < nb; b++) {
				b16[b] = m16 + (size_t)b * 2 * DK_KV_BLOCK * r16;
				b32[b] = m32 + (size_t)b * 2 * DK_KV_BLOCK * r32;
			}
			stale_slots(b16[nb - 1], n % DK_KV_BLOCK, 2, (size_t)hd, r16);
			stale_slots(b32[nb - 1], n % DK_KV_BLOCK, 4, (size_t)hd, r32);
			float *q = malloc((size_t)G * hd * 4), *o1 = malloc((size_t)G * hd * 4),
			      *o2 = malloc((size_t)G * hd * 4);
			float *sc = malloc((size_t)G * ((size_t)n + 4 * (size_t)hd) * 4);
			for (int32_t i = 0; i < G * hd; i++)
				q[i] = frand();
			for (size_t l = 0; l < 3; l++) {
				if (!lv[l].ok || (l > 0 && hd < 32))
					continue;
				struct dk_attn_args a = {.q = q, .out = o1, .nq = G, .hd = hd, .n = n,
							 .scale = 0.125f, .blocks = b16, .k_off = 0,
							 .v_off = DK_KV_BLOCK * r16, .row_bytes = r16,
							 .scratch = sc};
				lv[l].f16(&a);
				a.out = o2;
				a.blocks = b32;
				a.v_off = DK_KV_BLOCK * r32;
				a.row_bytes = r32;
				lv[l].f32(&a);
				if (memcmp(o1, o2, (size_t)G * hd * 4))
					fail_msg("level %zu hd %d n %d: f32 on widened rows differs from f16", l,
						 hd, n);
			}
			/* several tokens at once (positions n-nt+1..n), through the
			 * multi-token kernels on the F16 rows and on the widened rows,
			 * against each token alone through the F16 kernel */
			int32_t nt = n < 6 ? n : 6, nk[6];
			float *qm = malloc((size_t)nt * G * hd * 4), *om = malloc((size_t)nt * G * hd * 4),
			      *oe = malloc((size_t)nt * G * hd * 4);
			float *sm = malloc(DK_ATTN_MULTI_SCRATCH(nt, G, hd, n) * 4);
			for (int32_t i = 0; i < nt * G * hd; i++)
				qm[i] = frand();
			for (int32_t t = 0; t < nt; t++)
				nk[t] = n - nt + 1 + t;
			dk_attn_fn f16 = dk_attn_kernel(2, hd);
			for (int32_t t = 0; t < nt; t++) {
				struct dk_attn_args a = {.q = qm + (size_t)t * G * hd, .out = oe + (size_t)t * G * hd,
							 .nq = G, .hd = hd, .n = nk[t], .scale = 0.125f,
							 .blocks = b16, .k_off = 0, .v_off = DK_KV_BLOCK * r16,
							 .row_bytes = r16, .scratch = sc};
				f16(&a);
			}
			for (size_t es = 2; es <= 4; es += 2) {
				struct dk_attn_multi_args ma = {
					.a = {.q = qm, .out = om, .nq = G, .hd = hd, .scale = 0.125f,
					      .blocks = es == 2 ? b16 : b32, .k_off = 0,
					      .v_off = DK_KV_BLOCK * (es == 2 ? r16 : r32),
					      .row_bytes = es == 2 ? r16 : r32, .scratch = sm},
					.nt = nt, .nk = nk, .q_stride = (size_t)G * hd, .out_stride = (size_t)G * hd};
				memset(om, 0xff, (size_t)nt * G * hd * 4);
				dk_attn_multi_kernel(es, hd)(&ma);
				if (memcmp(om, oe, (size_t)nt * G * hd * 4))
					fail_msg("hd %d n %d: multi-token kernel (esize %zu) differs from one at a time",
						 hd, n, es);
			}
			free(qm); free(om); free(oe); free(sm);
			free(q); free(o1); free(o2); free(sc);
			free(m16); free(m32); free(b16); free(b32);
		}
}


/* A sliding window (keys below lo left out): every level gives the
 * reference's bits; shifting the blocks by whole blocks (lo and n with
 * them) changes nothing; the multi-token kernels with a window per token
 * equal each token alone; and the reference is the softmax over the
 * window, computed here in double. */
static void test_window(void **state)
{
	(void)state;
	bool simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		    __builtin_cpu_supports("f16c");
	bool avx512 = simd && dk_quant_level() >= DK_KERNELS_AVX512;
	const int32_t hd = 64, n = 300, G = 2, nb = (n + DK_KV_BLOCK - 1) / DK_KV_BLOCK;
	const int32_t los[] = {0, 1, 5, 15, 16, 17, 40, 123, 298, 299};
	for (size_t es = 2; es <= 4; es += 2) {
		size_t rowb = (size_t)hd * es, blockb = 2 * DK_KV_BLOCK * rowb;
		uint8_t *mem = malloc((size_t)nb * blockb);
		uint8_t **blocks = malloc((size_t)nb * sizeof *blocks);
		for (int32_t b = 0; b < nb; b++)
			blocks[b] = mem + (size_t)((b * 5) % nb) * blockb;
		for (size_t i = 0; i < (size_t)nb * blockb / es; i++) {
			float x = frand() * 3.0f;
			if (es == 2)
				((uint16_t *)mem)[i] = dk_fp32_to_fp16(x);
			else
				((float *)mem)[i] = x;
		}
		stale_slots(blocks[nb - 1], n % DK_KV_BLOCK, es, (size_t)hd, rowb);
		const dk_attn_fn ref = es == 2 ? dk_attn_f16_ref : dk_attn_f32_ref;
		const struct { dk_attn_fn fn; bool ok; } lv[] = {
			{es == 2 ? dk_attn_f16_avx2 : dk_attn_f32_avx2, simd},
			{es == 2 ? dk_attn_f16_avx512 : dk_attn_f32_avx512, avx512},
		};
		float *q = malloc((size_t)G * hd * 4), *o1 = malloc((size_t)G * hd * 4),
		      *o2 = malloc((size_t)G * hd * 4);
		float *sc = malloc((size_t)G * ((size_t)n + 4 * (size_t)hd) * 4);
		for (int32_t i = 0; i < G * hd; i++)
			q[i] = frand();
		for (size_t k = 0; k < sizeof los / sizeof los[0]; k++) {
			const int32_t lo = los[k];
			struct dk_attn_args a = {.q = q, .out = o1, .nq = G, .hd = hd, .n = n, .lo = lo,
						 .scale = 0.125f, .blocks = blocks, .k_off = 0,
						 .v_off = DK_KV_BLOCK * rowb, .row_bytes = rowb, .scratch = sc};
			ref(&a);
			/* the softmax over keys lo..n-1, in double */
			for (int32_t g = 0; g < G; g++) {
				double s[300], mx = -INFINITY, sum = 0;
				for (int32_t j = lo; j < n; j++) {
					const uint8_t *kt = blocks[j / DK_KV_BLOCK] + (size_t)(j % DK_KV_BLOCK) * es;
					double d = 0;
					for (int32_t i = 0; i < hd; i++) {
						size_t e = (size_t)i * DK_KV_BLOCK;
						double kv = es == 2 ? dk_fp16_to_fp32(((const uint16_t *)kt)[e])
								    : ((const float *)kt)[e];
						d += (double)q[g * hd + i] * kv;
					}
					s[j] = d * 0.125;
					mx = s[j] > mx ? s[j] : mx;
				}
				for (int32_t j = lo; j < n; j++)
					sum += s[j] = exp(s[j] - mx);
				for (int32_t i = 0; i < hd; i++) {
					double o = 0;
					for (int32_t j = lo; j < n; j++) {
						const uint8_t *v = blocks[j / DK_KV_BLOCK] + DK_KV_BLOCK * rowb +
								   (size_t)(j % DK_KV_BLOCK) * rowb;
						double vv = es == 2 ? dk_fp16_to_fp32(((const uint16_t *)v)[i])
								    : ((const float *)v)[i];
						o += s[j] / sum * vv;
					}
					if (fabs(o - o1[g * hd + i]) > 1e-5 * (1 + fabs(o)))
						fail_msg("esize %zu lo %d: out[%d][%d] %g, softmax over the window %g",
							 es, lo, g, i, o1[g * hd + i], o);
				}
			}
			for (size_t l = 0; l < 2; l++) {
				if (!lv[l].ok)
					continue;
				a.out = o2;
				lv[l].fn(&a);
				if (memcmp(o1, o2, (size_t)G * hd * 4))
					fail_msg("esize %zu lo %d: level %zu differs from the reference", es, lo,
						 l + 1);
			}
			/* whole blocks dropped from the front: the same bits */
			const int32_t b0 = lo / DK_KV_BLOCK;
			dk_attn_fn fns[3] = {ref, lv[0].ok ? lv[0].fn : ref, lv[1].ok ? lv[1].fn : ref};
			for (int f = 0; f < 3; f++) {
				struct dk_attn_args sh = a;
				sh.blocks = blocks + b0;
				sh.n = n - b0 * DK_KV_BLOCK;
				sh.lo = lo - b0 * DK_KV_BLOCK;
				sh.out = o2;
				fns[f](&sh);
				if (memcmp(o1, o2, (size_t)G * hd * 4))
					fail_msg("esize %zu lo %d: shifted by %d blocks differs", es, lo, b0);
			}
		}
		/* a run of tokens, each with its own window */
		enum { NT = 7 };
		const int32_t W = 37;
		int32_t nk[NT], lo[NT];
		float *qm = malloc((size_t)NT * G * hd * 4), *om = malloc((size_t)NT * G * hd * 4),
		      *oe = malloc((size_t)NT * G * hd * 4);
		float *sm = malloc(DK_ATTN_MULTI_SCRATCH(NT, G, hd, n) * 4);
		for (int32_t i = 0; i < NT * G * hd; i++)
			qm[i] = frand();
		for (int32_t t = 0; t < NT; t++) {
			nk[t] = n - NT + 1 + t;
			lo[t] = nk[t] - W;
		}
		dk_attn_fn one = dk_attn_kernel(es, hd);
		for (int32_t t = 0; t < NT; t++) {
			struct dk_attn_args a = {.q = qm + (size_t)t * G * hd, .out = oe + (size_t)t * G * hd,
						 .nq = G, .hd = hd, .n = nk[t], .lo = lo[t], .scale = 0.125f,
						 .blocks = blocks, .k_off = 0, .v_off = DK_KV_BLOCK * rowb,
						 .row_bytes = rowb, .scratch = sc};
			one(&a);
		}
		struct dk_attn_multi_args ma = {
			.a = {.q = qm, .out = om, .nq = G, .hd = hd, .scale = 0.125f, .blocks = blocks,
			      .k_off = 0, .v_off = DK_KV_BLOCK * rowb, .row_bytes = rowb, .scratch = sm},
			.nt = NT, .nk = nk, .lo = lo, .q_stride = (size_t)G * hd,
			.out_stride = (size_t)G * hd};
		memset(om, 0xff, (size_t)NT * G * hd * 4);
		dk_attn_multi_kernel(es, hd)(&ma);
		if (memcmp(om, oe, (size_t)NT * G * hd * 4))
			fail_msg("esize %zu: multi-token kernel with windows differs from one at a time", es);
		free(qm); free(om); free(oe); free(sm);
		free(q); free(o1); free(o2); free(sc);
		free(mem); free(blocks);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_kernels), cmocka_unit_test(test_groups),
					   cmocka_unit_test(test_widened), cmocka_unit_test(test_window)};
	return dk_test_run_group(tests, NULL, NULL);
}
