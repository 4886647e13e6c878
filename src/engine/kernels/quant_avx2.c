/* AVX2/FMA/F16C kernels (compiled with those flags only; see quant.c for
 * the run-time selection). */
#include "engine/kernels/quant_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

/* maddubs saturates at int16, which the operand ranges here never reach */
#define DOT_U8S8(acc, u, s) \
	_mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#include "engine/kernels/quant_x86.h"

static void set(struct dk_qtraits *t, dk_vec_dot_fn dot, dk_vec_dot_n_fn dotn)
{
	t->vec_dot = dot;
	t->vec_dot_n = dotn;
}

void dk_quant_install_avx2(struct dk_qtraits tab[DK_TYPE_COUNT])
{
	set(&tab[DK_TYPE_F32], dotn_f32_1, dotn_f32);
	set(&tab[DK_TYPE_F16], dotn_f16_1, dotn_f16);
	set(&tab[DK_TYPE_BF16], dotn_bf16_1, dotn_bf16);
	set(&tab[DK_TYPE_Q4_0], dotn_q4_0_1, dotn_q4_0);
	set(&tab[DK_TYPE_Q4_1], dotn_q4_1_1, dotn_q4_1);
	set(&tab[DK_TYPE_Q5_0], dotn_q5_0_1, dotn_q5_0);
	set(&tab[DK_TYPE_Q5_1], dotn_q5_1_1, dotn_q5_1);
	set(&tab[DK_TYPE_Q8_0], dotn_q8_0_1, dotn_q8_0);
	set(&tab[DK_TYPE_Q2_K], dotn_q2_k_1, dotn_q2_k);
	set(&tab[DK_TYPE_Q3_K], dotn_q3_k_1, dotn_q3_k);
	set(&tab[DK_TYPE_Q4_K], dotn_q4_k_1, dotn_q4_k);
	set(&tab[DK_TYPE_Q5_K], dotn_q5_k_1, dotn_q5_k);
	set(&tab[DK_TYPE_Q6_K], dotn_q6_k_1, dotn_q6_k);
	tab[DK_TYPE_F16].to_float = f16_to_float_f16c;
	tab[DK_TYPE_F16].from_float = f16_from_float_f16c;
	tab[DK_TYPE_Q8_0].from_float = q8_0_from_float_simd;
	tab[DK_TYPE_Q8_1].from_float = q8_1_from_float_simd;
	tab[DK_TYPE_Q8_K].from_float = q8_k_from_float_simd;
}

#else /* other architectures: nothing to install (never called) */

void dk_quant_install_avx2(struct dk_qtraits tab[DK_TYPE_COUNT])
{
	(void)tab;
}

#endif
