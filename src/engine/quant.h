/*
 * Tensor element formats: block layouts, dequantisation, activation
 * quantisation and dot products.  Private to the engine.
 *
 * A weight row of type T (n elements, n a multiple of dk_ttype_block(T)) is
 * multiplied with an activation row that was first converted to
 * traits(T)->dot_type with that type's from_float:
 *   F32  · F32          F16 · F16 (activations rounded to fp16, as llama.cpp)
 *   BF16 · BF16         Q8_0/Q4_0/Q5_0 · Q8_0      Q4_1/Q5_1 · Q8_1
 *   Q2_K..Q6_K · Q8_K
 * Every vec_dot has a scalar vec_dot_ref twin that is its specification and
 * test oracle; dk_quant_traits() returns the fastest implementation this CPU
 * supports, chosen once (DOCKET_KERNELS=ref forces the references).
 */
#ifndef DK_ENGINE_QUANT_H
#define DK_ENGINE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "docket/gguf.h"

#define DK_QK 32   /* elements per block of the 32-wide formats */
#define DK_QK_K 256 /* elements per super-block of the K formats */

/* y[0..n) = x as floats.  n is a multiple of the block size. */
typedef void (*dk_to_float_fn)(const void *restrict x, float *restrict y, int64_t n);
/* Quantises/converts n floats into this format (activation side). */
typedef void (*dk_from_float_fn)(const float *restrict x, void *restrict y, int64_t n);
/* *s = dot(x, y) over n elements; x of this type, y of dot_type. */
typedef void (*dk_vec_dot_fn)(int64_t n, float *restrict s, const void *restrict x,
			      const void *restrict y);

struct dk_qtraits {
	enum dk_ttype type;
	int blck;                 /* elements per block */
	size_t bytes;             /* bytes per block */
	enum dk_ttype dot_type;   /* activation format for vec_dot */
	dk_to_float_fn to_float;
	dk_from_float_fn from_float;  /* NULL where the type is never an activation */
	dk_vec_dot_fn vec_dot;        /* selected implementation */
	dk_vec_dot_fn vec_dot_ref;    /* scalar reference */
	const char *kernel;           /* "ref", "avx2", "avx512" */
};

/* Traits of t, or NULL when t is not supported. */
const struct dk_qtraits *dk_quant_traits(enum dk_ttype t);

float dk_fp16_to_fp32(uint16_t h);
uint16_t dk_fp32_to_fp16(float f);   /* round to nearest even */
float dk_bf16_to_fp32(uint16_t h);
uint16_t dk_fp32_to_bf16(float f);   /* round to nearest even */

#endif
