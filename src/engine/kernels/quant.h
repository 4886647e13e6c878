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
 * Dots accumulate integers per block and scale once per block, as ggml does.
 * The references fix the order of every float operation (block formats:
 * one running sum over blocks; float formats: 64 fused multiply-add lanes
 * and a fixed tree), and every SIMD level follows it: all levels give the
 * same bits (test_quant).
 * All functions are thread-safe; tables are immutable after the first call.
 */
#ifndef DK_ENGINE_QUANT_H
#define DK_ENGINE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "docket/gguf.h"
#include "engine/kernels/cpu.h"

#define DK_QK 32   /* elements per block of the 32-wide formats */
#define DK_QK_K 256 /* elements per super-block of the K formats */

/* y[0..n) = x as floats.  n is a multiple of the block size. */
typedef void (*dk_to_float_fn)(const void *restrict x, float *restrict y, int64_t n);
/* Quantises/converts n floats into this format: the activation side
 * (F32/F16/BF16/Q8_0/Q8_1/Q8_K, as ggml's reference quantisers) and, for
 * building test models, the weight side (Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 as ggml's
 * reference; Q2_K..Q6_K by a plain per-sub-block min/max fit, valid blocks
 * but not ggml's optimiser).  Every level produces the same bytes. */
typedef void (*dk_from_float_fn)(const float *restrict x, void *restrict y, int64_t n);
/* *s = dot(x, y) over n elements; x of this type, y of dot_type. */
typedef void (*dk_vec_dot_fn)(int64_t n, float *restrict s, const void *restrict x,
			      const void *restrict y);

/* Multi-column dot: s[j*ss] = dot(x, y_j) for j < ny, where activation row
 * y_j starts at (const char *)y + j*ys (ys in bytes, ss in floats).  One
 * weight row is unpacked once and reused across the ny columns, which is
 * what makes batched decode and prefill cheaper than ny vec_dot calls.
 * Each s[j*ss] is bit-identical to a vec_dot call of the same level on
 * y_j, whatever ny is, so batching never changes results (tested). */
typedef void (*dk_vec_dot_n_fn)(int64_t n, float *restrict s, size_t ss,
				const void *restrict x, const void *restrict y, size_t ys,
				int ny);

struct dk_qtraits {
	enum dk_ttype type;
	int blck;                 /* elements per block */
	size_t bytes;             /* bytes per block */
	enum dk_ttype dot_type;   /* activation format for vec_dot */
	dk_to_float_fn to_float;
	dk_from_float_fn from_float;  /* set for every type (see dk_from_float_fn) */
	dk_vec_dot_fn vec_dot;        /* selected implementation */
	dk_vec_dot_fn vec_dot_ref;    /* scalar reference */
	const char *kernel;           /* "ref", "avx2", "avx512" */
	dk_vec_dot_n_fn vec_dot_n;     /* selected multi-column kernel */
	dk_vec_dot_n_fn vec_dot_n_ref; /* loop over vec_dot_ref */
};

/* Traits of t, or NULL when t is not supported.  Q8_1 and Q8_K are
 * activation-only formats: their vec_dot/vec_dot_n are NULL. */
const struct dk_qtraits *dk_quant_traits(enum dk_ttype t);

/* Kernel levels (cpu.h).  dk_quant_traits() uses dk_cpu_kernels(): the
 * highest level the CPU supports, capped by env DOCKET_KERNELS. */

/* The traits table of one level, for tests and benchmarks: NULL when t is
 * unsupported or this CPU cannot run level (the env cap is ignored here).
 * Types a level has no SIMD kernel for carry the next lower level's. */
const struct dk_qtraits *dk_quant_traits_level(enum dk_ttype t, int level);
/* The level dk_quant_traits() selected, and a level's name ("avx512"). */
int dk_quant_level(void);
const char *dk_quant_level_name(int level);

float dk_fp16_to_fp32(uint16_t h);
uint16_t dk_fp32_to_fp16(float f);   /* round to nearest even */
float dk_bf16_to_fp32(uint16_t h);
uint16_t dk_fp32_to_bf16(float f);   /* round to nearest even */

#endif
