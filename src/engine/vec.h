/*
 * Elementwise kernels of the feed-forward block.  Private to the engine.
 *
 * SwiGLU: g[i] = g[i] / (1 + e^(-g[i])) * u[i], the SiLU of the gate row
 * times the up row, in that order of operations.  dk_vec_swiglu_ref (libm
 * expf, then the division and the product) is the specification and the
 * test oracle.  The SIMD levels compute e^x with a polynomial (relative
 * error below 2e-7 before the final rounding), so they differ from it by a
 * few ulp; each element gets the same instructions wherever it sits (the
 * tail is masked or padded, never scalar), so how a row is split over
 * threads does not change results.
 */
#ifndef DK_ENGINE_VEC_H
#define DK_ENGINE_VEC_H

#include <stdint.h>

/* g[0..n) = silu(g) * u; g and u do not overlap */
typedef void (*dk_vec_swiglu_fn)(float *restrict g, const float *restrict u, int64_t n);

void dk_vec_swiglu_ref(float *restrict g, const float *restrict u, int64_t n);
void dk_vec_swiglu_avx2(float *restrict g, const float *restrict u, int64_t n);
void dk_vec_swiglu_avx512(float *restrict g, const float *restrict u, int64_t n);

/* The kernel for this CPU at dk_quant_level() (DOCKET_KERNELS=ref forces
 * the reference); chosen once, thread-safe. */
dk_vec_swiglu_fn dk_vec_swiglu_kernel(void);

#endif
