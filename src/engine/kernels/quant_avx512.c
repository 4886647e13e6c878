/* AVX-512 (F/BW/VL/DQ/VNNI) kernels.  The 32-wide block formats reuse the
 * 256-bit kernels of quant_x86.h with vpdpbusd; the K formats with 64-element
 * chunks and the float formats get 512-bit versions here. */
#include "engine/kernels/quant_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

/* vpdpbusd does not saturate: exact for every operand range */
#define DOT_U8S8(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
/* 32 vector registers: unrolled K chunks stay in registers */
#define UNROLL_CHUNK _Pragma("GCC unroll 16")
#include "engine/kernels/quant_x86.h"

/* ---- float formats, written for nc columns like the integer kernels */

/* The reference's 64 lanes (quant.c, dot_f32_ref) are four vectors per
 * column, one multiply-add chain each; lanes past n keep their value
 * (mask); then the tree: vectors u + u+2, u + u+1, halves, hsum256. */
#define FLOAT_KERNEL(name, T, LOAD, LOADM)                                                    \
	KINLINE void name(int64_t n, float *s, size_t ss, const void *vx, const void *vy,       \
			  size_t ys, const int nc)                                              \
	{                                                                                       \
		const T *x = vx;                                                                \
		__m512 acc[4][4];                                                               \
		UNROLL                                                                         \
		for (int c = 0; c < nc; c++)                                                    \
			UNROLL                                                                 \
			for (int u = 0; u < 4; u++)                                             \
				acc[c][u] = _mm512_setzero_ps();                                \
		int64_t i = 0;                                                                  \
		for (; i + 64 <= n; i += 64)                                                    \
			UNROLL                                                                 \
			for (int u = 0; u < 4; u++) {                                           \
				__m512 xv = LOAD(x + i + 16 * u);                               \
				UNROLL                                                         \
				for (int c = 0; c < nc; c++) {                                  \
					const T *y = (const T *)YROW(vy, c, ys);                \
					acc[c][u] = _mm512_fmadd_ps(xv, LOAD(y + i + 16 * u), acc[c][u]); \
				}                                                               \
			}                                                                       \
		for (int u = 0; i < n; i += 16, u++) {                                          \
			__mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF                            \
						  : (__mmask16)((1u << (n - i)) - 1);            \
			__m512 xv = LOADM(m, x + i);                                            \
			UNROLL                                                                 \
			for (int c = 0; c < nc; c++) {                                          \
				const T *y = (const T *)YROW(vy, c, ys);                        \
				acc[c][u] = _mm512_mask3_fmadd_ps(xv, LOADM(m, y + i), acc[c][u], m); \
			}                                                                       \
		}                                                                               \
		UNROLL                                                                         \
		for (int c = 0; c < nc; c++) {                                                  \
			__m512 a = _mm512_add_ps(_mm512_add_ps(acc[c][0], acc[c][2]),           \
						 _mm512_add_ps(acc[c][1], acc[c][3]));          \
			__m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1)); \
			s[(size_t)c * ss] = hsum256(h);                                         \
		}                                                                               \
	}

#define LD_F32(p) _mm512_loadu_ps(p)
#define LDM_F32(m, p) _mm512_maskz_loadu_ps((m), (p))
/* bf16 -> f32 is a 16-bit shift, exact */
#define LD_BF16(p) \
	_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define LDM_BF16(m, p) \
	_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16((m), (p))), 16))

FLOAT_KERNEL(k5_f32, float, LD_F32, LDM_F32)
FLOAT_KERNEL(k5_bf16, uint16_t, LD_BF16, LDM_BF16)
DOTN_DRIVER(dotn5_f32, k5_f32)
DOTN_DRIVER(dotn5_bf16, k5_bf16)

/* ---- Q4_K . Q8_K, 64 elements (two sub-blocks) per 512-bit step */

KINLINE void k5_q4_k(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys,
		     const int nc)
{
	const struct dk_block_q4_k *x = vx;
	float sum[4];
	UNROLL
	for (int c = 0; c < nc; c++)
		sum[c] = 0;
	const __m512i m4 = _mm512_set1_epi8(0x0F);
	/* low half keeps the low nibbles, high half shifts down the high ones */
	const __m512i nshift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
	for (int64_t i = 0; i < n / DK_QK_K; i++) {
		uint32_t u[4];
		q4k_scales(x[i].scales, u);
		const uint8_t *mn = (const uint8_t *)u + 8;
		__m512i sc16 = _mm512_cvtepu8_epi16(_mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)u)));
		float dx = h2f(x[i].d), dmx = h2f(x[i].dmin);
		__m512i sumi[4];
		UNROLL
		for (int c = 0; c < nc; c++)
			sumi[c] = _mm512_setzero_si512();
		UNROLL
		for (int j = 0; j < 4; j++) {
			__m512i q4 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j)));
			q4 = _mm512_and_si512(_mm512_srlv_epi16(q4, nshift), m4);
			/* 16-bit lanes 0..15 get scale 2j, 16..31 scale 2j+1 */
			__m512i idx = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * j)),
							 _mm256_set1_epi16((short)(2 * j + 1)), 1);
			__m512i scv = _mm512_permutexvar_epi16(idx, sc16);
			UNROLL
			for (int c = 0; c < nc; c++) {
				const int8_t *q8 = ((const struct dk_block_q8_k *)YROW(vy, c, ys))[i].qs + 64 * j;
				__m512i p = _mm512_maddubs_epi16(q4, _mm512_loadu_si512(q8));
				sumi[c] = _mm512_add_epi32(sumi[c], _mm512_madd_epi16(p, scv));
			}
		}
		UNROLL
		for (int c = 0; c < nc; c++) {
			const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)YROW(vy, c, ys) + i;
			__m256i ms = q4k_minsum(mn, y->bsums);
			sum[c] = ksum(sum[c], y->d, dx, dmx, _mm512_reduce_add_epi32(sumi[c]), hsum128i(_mm256_castsi256_si128(ms)));
		}
	}
	UNROLL
	for (int c = 0; c < nc; c++)
		s[(size_t)c * ss] = sum[c];
}
DOTN_DRIVER(dotn5_q4_k, k5_q4_k)

/* ---- Q5_K . Q8_K: Q4_K plus bit 2j (low half) / 2j+1 (high half) of qh */

KINLINE void k5_q5_k(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys,
		     const int nc)
{
	const struct dk_block_q5_k *x = vx;
	float sum[4];
	UNROLL
	for (int c = 0; c < nc; c++)
		sum[c] = 0;
	const __m512i m4 = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
	const __m512i nshift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
	const __m512i hbase = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(1), 1);
	for (int64_t i = 0; i < n / DK_QK_K; i++) {
		uint32_t u[4];
		q4k_scales(x[i].scales, u);
		const uint8_t *mn = (const uint8_t *)u + 8;
		__m512i sc16 = _mm512_cvtepu8_epi16(_mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)u)));
		float dx = h2f(x[i].d), dmx = h2f(x[i].dmin);
		__m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)x[i].qh));
		__m512i sumi[4];
		UNROLL
		for (int c = 0; c < nc; c++)
			sumi[c] = _mm512_setzero_si512();
		UNROLL
		for (int j = 0; j < 4; j++) {
			__m512i q5 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j)));
			q5 = _mm512_and_si512(_mm512_srlv_epi16(q5, nshift), m4);
			/* 16-bit shifts: each byte's bit 0 afterwards is its own bit 2j(+1) */
			__m512i hb = _mm512_and_si512(
				_mm512_srlv_epi16(qh, _mm512_add_epi16(hbase, _mm512_set1_epi16((short)(2 * j)))), one);
			q5 = _mm512_or_si512(q5, _mm512_slli_epi16(hb, 4));
			__m512i idx = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * j)),
							 _mm256_set1_epi16((short)(2 * j + 1)), 1);
			__m512i scv = _mm512_permutexvar_epi16(idx, sc16);
			UNROLL
			for (int c = 0; c < nc; c++) {
				const int8_t *q8 = ((const struct dk_block_q8_k *)YROW(vy, c, ys))[i].qs + 64 * j;
				__m512i p = _mm512_maddubs_epi16(q5, _mm512_loadu_si512(q8));
				sumi[c] = _mm512_add_epi32(sumi[c], _mm512_madd_epi16(p, scv));
			}
		}
		UNROLL
		for (int c = 0; c < nc; c++) {
			const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)YROW(vy, c, ys) + i;
			__m256i ms = q4k_minsum(mn, y->bsums);
			sum[c] = ksum(sum[c], y->d, dx, dmx, _mm512_reduce_add_epi32(sumi[c]), hsum128i(_mm256_castsi256_si128(ms)));
		}
	}
	UNROLL
	for (int c = 0; c < nc; c++)
		s[(size_t)c * ss] = sum[c];
}
DOTN_DRIVER(dotn5_q5_k, k5_q5_k)

/* ---- Q6_K . Q8_K, 64 elements (four sub-blocks) per 512-bit step */

KINLINE void k5_q6_k(int64_t n, float *s, size_t ss, const void *vx, const void *vy, size_t ys,
		     const int nc)
{
	const struct dk_block_q6_k *x = vx;
	float sum[4];
	UNROLL
	for (int c = 0; c < nc; c++)
		sum[c] = 0;
	const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
	/* per-half shifts that bring bits 2k..2k+1 of qh to bits 4..5 */
	const __m512i sh_a = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
	const __m512i sh_b = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
	for (int64_t i = 0; i < n / DK_QK_K; i++) {
		__m256i sc256 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
		__m512i sc16 = _mm512_castsi256_si512(sc256);
		__m512i sumi[4];
		UNROLL
		for (int c = 0; c < nc; c++) {
			const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)YROW(vy, c, ys) + i;
			__m256i corr = _mm256_slli_epi32(scale_bsums16(sc256, y->bsums), 5);
			sumi[c] = _mm512_inserti64x4(_mm512_setzero_si512(),
						     _mm256_sub_epi32(_mm256_setzero_si256(), corr), 0);
		}
		UNROLL
		for (int h = 0; h < 2; h++) {
			__m512i ql = _mm512_loadu_si512(x[i].ql + 64 * h);
			__m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h)));
			__m512i q[2];
			q[0] = _mm512_or_si512(_mm512_and_si512(ql, m4),
					       _mm512_and_si512(_mm512_sllv_epi16(qh, sh_a), m30));
			q[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
					       _mm512_and_si512(_mm512_srlv_epi16(qh, sh_b), m30));
			UNROLL
			for (int p = 0; p < 2; p++) {
				int b = 8 * h + 4 * p;
				/* 16-bit lane l gets scale b + l/8 */
				__m512i idx = _mm512_add_epi16(
					_mm512_set1_epi16((short)b),
					_mm512_set_epi64(0x0003000300030003, 0x0003000300030003,
							 0x0002000200020002, 0x0002000200020002,
							 0x0001000100010001, 0x0001000100010001, 0, 0));
				__m512i scv = _mm512_permutexvar_epi16(idx, sc16);
				UNROLL
				for (int c = 0; c < nc; c++) {
					const int8_t *q8 = ((const struct dk_block_q8_k *)YROW(vy, c, ys))[i].qs +
							   128 * h + 64 * p;
					__m512i pr = _mm512_maddubs_epi16(q[p], _mm512_loadu_si512(q8));
					sumi[c] = _mm512_add_epi32(sumi[c], _mm512_madd_epi16(pr, scv));
				}
			}
		}
		float dx = h2f(x[i].d);
		UNROLL
		for (int c = 0; c < nc; c++) {
			const struct dk_block_q8_k *y = (const struct dk_block_q8_k *)YROW(vy, c, ys) + i;
			sum[c] = ksum(sum[c], y->d, dx, 0.0f, _mm512_reduce_add_epi32(sumi[c]), 0.0f);
		}
	}
	UNROLL
	for (int c = 0; c < nc; c++)
		s[(size_t)c * ss] = sum[c];
}
DOTN_DRIVER(dotn5_q6_k, k5_q6_k)

/* lane k = max over the lanes of m[k], for 16 vectors: a tree of pairwise
 * shuffles and maxima (max is exact, so any order gives the reference's
 * value).  Sixteen horizontal reductions stored as scalars and reloaded
 * as a vector cost a store-forwarding stall per group of blocks, half of
 * this function's time in a decode step (perf). */
KINLINE __m512 hmax16(__m512 m[16])
{
	/* quarters: pair (a, b) -> a's 8 partial maxima, then b's */
	__m512 w[8], z[4], y[2];
	for (int i = 0; i < 8; i++)
		w[i] = _mm512_max_ps(_mm512_shuffle_f32x4(m[2 * i], m[2 * i + 1], 0x44),
				     _mm512_shuffle_f32x4(m[2 * i], m[2 * i + 1], 0xEE));
	/* one block per 128-bit lane, 4 partials each: blocks 4i .. 4i+3 */
	for (int i = 0; i < 4; i++)
		z[i] = _mm512_max_ps(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0x88),
				     _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0xDD));
	/* per lane j: 2 partials of block 4i+j of z[2i], then of z[2i+1] */
	for (int i = 0; i < 2; i++)
		y[i] = _mm512_max_ps(_mm512_shuffle_ps(z[2 * i], z[2 * i + 1], 0x44),
				     _mm512_shuffle_ps(z[2 * i], z[2 * i + 1], 0xEE));
	/* lane 4j + r holds block 4r + j: a 4 x 4 transpose puts them in order */
	__m512 v = _mm512_max_ps(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xDD));
	const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
	return _mm512_permutexvar_ps(order, v);
}

/* Q8_0 and Q8_1 activations, 16 blocks at a time: the 16 block maxima go
 * through one vector division, one reciprocal and one fp16 conversion (the
 * reference's operations, lane by lane: same bytes), then each block is
 * scaled, rounded half away from zero and narrowed with saturation.  Decode
 * runs this on one thread while the other waits, so its cost counts
 * twice; the AVX2 form spent two scalar divisions and a software fp16
 * conversion per block. */
KINLINE void q8_rows(const float *restrict x, void *restrict vy, int64_t n, const int q81)
{
	const int64_t nb = n / DK_QK;
	const __m512 sign = _mm512_set1_ps(-0.0f);
	for (int64_t b0 = 0; b0 < nb; b0 += 16) {
		const int nv = nb - b0 < 16 ? (int)(nb - b0) : 16;
		__m512 m[16];
		for (int k = 0; k < 16; k++) {
			if (k >= nv) {
				m[k] = _mm512_setzero_ps();
				continue;
			}
			const float *p = x + (b0 + k) * DK_QK;
			m[k] = _mm512_max_ps(_mm512_andnot_ps(sign, _mm512_loadu_ps(p)),
					     _mm512_andnot_ps(sign, _mm512_loadu_ps(p + 16)));
		}
		/* the reference starts its maximum at 0 */
		const __m512 am = _mm512_max_ps(_mm512_setzero_ps(), hmax16(m));
		__m512 d = _mm512_div_ps(am, _mm512_set1_ps(127.0f));
		__mmask16 nz = _mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_NEQ_UQ);
		__m512 id = _mm512_maskz_div_ps(nz, _mm512_set1_ps(1.0f), d);
		float dv[16] __attribute__((aligned(64))), iv[16] __attribute__((aligned(64)));
		uint16_t dh[16] __attribute__((aligned(32)));
		_mm512_store_ps(dv, d);
		_mm512_store_ps(iv, id);
		_mm256_store_si256((__m256i *)dh,
				   _mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
		for (int k = 0; k < nv; k++) {
			const float *p = x + (b0 + k) * DK_QK;
			const __m512 mul = _mm512_set1_ps(iv[k]);
			__m512i q[2];
			for (int h = 0; h < 2; h++) {
				__m512 v = _mm512_mul_ps(_mm512_loadu_ps(p + 16 * h), mul);
				__m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
				__mmask16 up = _mm512_cmp_ps_mask(_mm512_andnot_ps(sign, _mm512_sub_ps(v, t)),
								  _mm512_set1_ps(0.5f), _CMP_GE_OQ);
				__m512 one = _mm512_or_ps(_mm512_and_ps(v, sign), _mm512_set1_ps(1.0f));
				q[h] = _mm512_cvtps_epi32(_mm512_mask_add_ps(t, up, t, one));
			}
			int8_t *qs;
			if (q81) {
				struct dk_block_q8_1 *y = (struct dk_block_q8_1 *)vy + b0 + k;
				y->d = dh[k];
				int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(
					_mm512_cvtepi8_epi32(_mm512_cvtsepi32_epi8(q[0])),
					_mm512_cvtepi8_epi32(_mm512_cvtsepi32_epi8(q[1]))));
				y->s = (uint16_t)_cvtss_sh((float)sum * dv[k],
							   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
				qs = y->qs;
			} else {
				struct dk_block_q8_0 *y = (struct dk_block_q8_0 *)vy + b0 + k;
				y->d = dh[k];
				qs = y->qs;
			}
			_mm_storeu_si128((__m128i *)qs, _mm512_cvtsepi32_epi8(q[0]));
			_mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtsepi32_epi8(q[1]));
		}
	}
}

static void q8_0_rows(const float *restrict x, void *restrict vy, int64_t n) { q8_rows(x, vy, n, 0); }
static void q8_1_rows(const float *restrict x, void *restrict vy, int64_t n) { q8_rows(x, vy, n, 1); }

static void set(struct dk_qtraits *t, dk_vec_dot_fn dot, dk_vec_dot_n_fn dotn)
{
	t->vec_dot = dot;
	t->vec_dot_n = dotn;
}

void dk_quant_install_avx512(struct dk_qtraits tab[DK_TYPE_COUNT])
{
	set(&tab[DK_TYPE_F32], dotn5_f32_1, dotn5_f32);
	set(&tab[DK_TYPE_F16], dotn_f16_1, dotn_f16); /* vcvtph2ps zmm is slower here */
	set(&tab[DK_TYPE_BF16], dotn5_bf16_1, dotn5_bf16);
	set(&tab[DK_TYPE_Q4_0], dotn_q4_0_1, dotn_q4_0);
	set(&tab[DK_TYPE_Q4_1], dotn_q4_1_1, dotn_q4_1);
	set(&tab[DK_TYPE_Q5_0], dotn_q5_0_1, dotn_q5_0);
	set(&tab[DK_TYPE_Q5_1], dotn_q5_1_1, dotn_q5_1);
	set(&tab[DK_TYPE_Q8_0], dotn_q8_0_1, dotn_q8_0);
	set(&tab[DK_TYPE_Q2_K], dotn_q2_k_1, dotn_q2_k);
	set(&tab[DK_TYPE_Q3_K], dotn_q3_k_1, dotn_q3_k);
	set(&tab[DK_TYPE_Q4_K], dotn5_q4_k_1, dotn5_q4_k);
	set(&tab[DK_TYPE_Q5_K], dotn5_q5_k_1, dotn5_q5_k);
	set(&tab[DK_TYPE_Q6_K], dotn5_q6_k_1, dotn5_q6_k);
	tab[DK_TYPE_F16].to_float = f16_to_float_f16c;
	tab[DK_TYPE_F16].from_float = f16_from_float_f16c;
	tab[DK_TYPE_Q8_0].from_float = q8_0_rows;
	tab[DK_TYPE_Q8_1].from_float = q8_1_rows;
	tab[DK_TYPE_Q8_K].from_float = q8_k_from_float_simd;
}

#else /* other architectures: nothing to install (never called) */

void dk_quant_install_avx512(struct dk_qtraits tab[DK_TYPE_COUNT])
{
	(void)tab;
}

#endif
