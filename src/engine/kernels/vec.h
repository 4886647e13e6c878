/*
 * Row kernels of the forward pass: RMS norm, SwiGLU of the feed-forward
 * block, rotary position embedding of attention, and the greedy pick.
 * Private to the engine.
 *
 * SwiGLU: g[i] = g[i] / (1 + e^(-g[i])) * u[i], the SiLU of the gate row
 * times the up row, in that order of operations, with e^x computed by
 * dk_vec_exp_ref's polynomial: dk_vec_swiglu_ref is the specification and
 * the test oracle, and every level gives its bits (test_vec).  Each element
 * gets the same instructions wherever it sits (the tail is masked or
 * padded, never scalar).
 */
#ifndef DK_ENGINE_VEC_H
#define DK_ENGINE_VEC_H

#include <stdbool.h>
#include <stdint.h>

/* e^x, the one exponential of the forward pass (SwiGLU, attention's
 * softmax): x held to [-87, 88], n = x*log2(e) rounded to nearest even,
 * r = x - n*ln2 in two fused steps (ln2 split as 0.693359375 and
 * -2.12194440e-4), e^r by its degree-6 Taylor polynomial in Horner form
 * with fused multiply-adds (fmaf), times 2^n.  Relative error below 2e-7
 * before the final rounding.  The SIMD forms (vexp_avx2.h, vexp_avx512.h)
 * apply these operations lane by lane, so they give its bits: one libm
 * expf could not be matched by a vector kernel. */
float dk_vec_exp_ref(float x);

/* The rope table's sin, cos (of th) and pow (b^e, b > 0), rounded to float
 * from double arithmetic of IEEE operations only (error below 1e-15
 * before the rounding, so they nearly always equal a correctly rounded
 * sinf/cosf/powf).  libm's float functions differ between C library
 * versions and between the FMA and plain builds a CPU selects at run time:
 * with these a sequence's bits do not depend on the machine (|th| < 1e6). */
void dk_vec_sincos_ref(float th, float *sn, float *cs);
float dk_vec_pow_ref(float b, float e);

/* g[0..n) = silu(g) * u; g and u do not overlap */
typedef void (*dk_vec_swiglu_fn)(float *restrict g, const float *restrict u, int64_t n);

void dk_vec_swiglu_ref(float *restrict g, const float *restrict u, int64_t n);
void dk_vec_swiglu_avx2(float *restrict g, const float *restrict u, int64_t n);
void dk_vec_swiglu_avx512(float *restrict g, const float *restrict u, int64_t n);

/* The kernel for this CPU at dk_quant_level() (DOCKET_KERNELS=ref forces
 * the reference); chosen once, thread-safe. */
dk_vec_swiglu_fn dk_vec_swiglu_kernel(void);

/* GeGLU, the gated feed-forward of Gemma: g[i] = gelu(g[i]) * u[i] with
 * the tanh form of GELU, 0.5x(1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))),
 * looked up the way ggml's CPU backend does, so that the activations are
 * its own: g <= -10 gives 0, g >= 10 gives g * u, and otherwise g is
 * rounded to fp16 and its GELU read from a table of fp16 values (built
 * once from dk_vec_tanh_ref, not libm, so it is the same on every machine).
 * The same signature as SwiGLU; one level only (a lookup). */
void dk_vec_geglu_ref(float *restrict g, const float *restrict u, int64_t n);

/* tanh(x) rounded to float from double arithmetic of IEEE operations
 * (error below 1e-15 before the rounding). */
float dk_vec_tanh_ref(float x);

/* y[0..n) = x * (1/rms(x)) * w, as two float roundings like ggml's
 * rms_norm + mul: t = x[i] * scale, then y[i] = t * w[i], with
 *   scale = 1 / sqrtf(mean + eps),  mean = (float)(sum / n).
 * The squares x[i]*x[i] (float) are summed in double in 8 interleaved
 * partial sums, ps[k] over i = k, k+8, ... in increasing i (elements past
 * the last whole 8 go to ps[0]), added as ((0+1)+(2+3))+((4+5)+(6+7)).
 * One running sum was a chain of dependent double adds (4 cycles each, 5%
 * of a batch-16 decode step); the order differs from ggml's by double
 * rounding only, far below the float the mean becomes.  Every level gives
 * the reference's bits (test_vec).  y may equal x. */
typedef void (*dk_vec_rmsnorm_fn)(float *y, const float *x, const float *w, int64_t n, float eps);

void dk_vec_rmsnorm_ref(float *y, const float *x, const float *w, int64_t n, float eps);
void dk_vec_rmsnorm_avx512(float *y, const float *x, const float *w, int64_t n, float eps);

/* As dk_vec_swiglu_kernel; below AVX-512, the reference. */
dk_vec_rmsnorm_fn dk_vec_rmsnorm_kernel(void);

/* Rotary position embedding, in place, of nheads heads of hd floats laid
 * end to end (x[h*hd .. h*hd + hd)); the first n_rot elements of each head
 * rotate (n_rot even, <= hd), the rest are left alone.  cs holds n_rot
 * floats: cos then sin of pair i's angle at cs[2i], cs[2i+1].  Pair i is
 * elements (2i, 2i+1), or (i, i + n_rot/2) when neox; with (a, b) its
 * elements,
 *   a' = a*cos - b*sin,  b' = a*sin + b*cos
 * each product rounded, then the sum or difference: no fused multiply-add,
 * so every level gives the reference's bits (test_vec). */
typedef void (*dk_vec_rope_fn)(float *x, int32_t nheads, int32_t hd, int32_t n_rot,
			       const float *cs, bool neox);

void dk_vec_rope_ref(float *x, int32_t nheads, int32_t hd, int32_t n_rot, const float *cs,
		     bool neox);
void dk_vec_rope_avx512(float *x, int32_t nheads, int32_t hd, int32_t n_rot, const float *cs,
			bool neox);

/* As dk_vec_swiglu_kernel; below AVX-512, the reference. */
dk_vec_rope_fn dk_vec_rope_kernel(void);

/* Index of the largest of x[0..n) under strict >, scanning up from -inf:
 * ties keep the lowest index, NaN and -inf never win; -1 when nothing
 * beats -inf (dk_argmax, sampler.h). */
typedef int32_t (*dk_vec_argmax_fn)(const float *x, int32_t n);

int32_t dk_vec_argmax_ref(const float *x, int32_t n);
int32_t dk_vec_argmax_avx512(const float *x, int32_t n);

/* As dk_vec_rope_kernel. */
dk_vec_argmax_fn dk_vec_argmax_kernel(void);

#endif
