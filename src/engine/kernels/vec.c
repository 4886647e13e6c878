/* Row kernels: references and the choice of level (vec.h). */
#include "engine/kernels/vec.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "engine/kernels/quant.h"

float dk_vec_exp_ref(float x)
{
	x = fminf(fmaxf(x, -87.0f), 88.0f);
	const float n = nearbyintf(x * 1.44269504088896341f);
	float r = fmaf(-n, 0.693359375f, x);
	r = fmaf(-n, -2.12194440e-4f, r);
	float p = 1.0f / 720;
	p = fmaf(p, r, 1.0f / 120);
	p = fmaf(p, r, 1.0f / 24);
	p = fmaf(p, r, 1.0f / 6);
	p = fmaf(p, r, 0.5f);
	p = fmaf(p, r, 1.0f);
	p = fmaf(p, r, 1.0f);
	const uint32_t e = (uint32_t)((int32_t)n + 127) << 23;
	float two_n;
	memcpy(&two_n, &e, sizeof two_n);
	return p * two_n;
}

/* The rope table's functions, in double with IEEE operations only (no
 * libm but exact helpers): libm's sinf/cosf/powf may differ between C
 * library versions and between their FMA and plain builds, which a CPU
 * picks at run time, and the table feeds every logit. */

/* log(x) for x > 0 finite: x = m 2^e with m in [sqrt(1/2), sqrt(2)),
 * log m = 2 atanh(s), s = (m-1)/(m+1), by its series */
static double log_d(double x)
{
	int e;
	double m = frexp(x, &e);
	if (m < 0.70710678118654752440) {
		m *= 2;
		e--;
	}
	const double s = (m - 1) / (m + 1), z = s * s;
	double t = 1.0 / 25;
	for (int k = 11; k >= 0; k--)
		t = 1.0 / (2 * k + 1) + z * t;
	return (double)e * 0.69314718055994530942 + 2 * s * t;
}

/* e^y, |y| < 700: y = k ln2 + r (ln2 split in two), Taylor to r^16 */
static double exp_d(double y)
{
	const double k = nearbyint(y * 1.44269504088896338700);
	const double r = (y - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
	double p = 1.0;
	for (int i = 16; i >= 1; i--)
		p = 1.0 + p * r / i;
	return ldexp(p, (int)k);
}

float dk_vec_pow_ref(float b, float e)
{
	return (float)exp_d((double)e * log_d((double)b));
}

void dk_vec_sincos_ref(float th, float *sn, float *cs)
{
	/* th = k pi/2 + r, |r| <= pi/4: pi/2 in three parts (fdlibm's), the
	 * first two products exact for |k| < 2^20 */
	const double x = th, k = nearbyint(x * 0.63661977236758134308);
	const double r = ((x - k * 1.57079632673412561417e+00) - k * 6.07710050630396597660e-11) -
			 k * 2.02226624871116645580e-21;
	const double z = r * r;
	double s = 0, c = 0;
	for (int i = 8; i >= 1; i--) {
		/* sin: sum (-1)^i r^(2i+1)/(2i+1)!, cos: sum (-1)^i r^(2i)/(2i)! */
		s = 1.0 - z * s / ((2 * i) * (2 * i + 1));
		c = 1.0 - z * c / ((2 * i - 1) * (2 * i));
	}
	s *= r;
	const long q = (long)fmod(k, 4.0);
	const double sv = q == 0 || q == -4 ? s : q == 1 || q == -3 ? c : q == 2 || q == -2 ? -s : -c;
	const double cv = q == 0 || q == -4 ? c : q == 1 || q == -3 ? -s : q == 2 || q == -2 ? -c : s;
	*sn = (float)sv;
	*cs = (float)cv;
}

void dk_vec_swiglu_ref(float *restrict g, const float *restrict u, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		g[i] = g[i] / (1.0f + dk_vec_exp_ref(-g[i])) * u[i];
}

float dk_vec_tanh_ref(float x)
{
	const double y = fabs((double)x);
	double t;
	if (y < 0.0625) {
		/* the series, where 1 - 2/(e^2y + 1) would cancel: terms to y^15 */
		static const double c[] = {1.0, -1.0 / 3, 2.0 / 15, -17.0 / 315, 62.0 / 2835,
					   -1382.0 / 155925, 21844.0 / 6081075, -929569.0 / 638512875};
		const double z = y * y;
		t = 0;
		for (int i = 7; i >= 0; i--)
			t = c[i] + z * t;
		t *= y;
	} else if (y < 20) {
		t = 1.0 - 2.0 / (exp_d(2 * y) + 1.0);
	} else {
		t = 1.0;
	}
	return (float)(x < 0 ? -t : t);
}

/* gelu of every fp16 value, as fp16 (dk_vec_geglu_ref) */
static uint16_t gelu_tab[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static void gelu_init(void)
{
	for (uint32_t h = 0; h < (1u << 16); h++) {
		const float x = dk_fp16_to_fp32((uint16_t)h);
		/* ggml's expression, one float rounding per operation */
		const float a = 0.044715f * x * x;
		const float b = 0.79788456080286535587989211986876f * x * (1.0f + a);
		const float t = dk_vec_tanh_ref(b);
		gelu_tab[h] = dk_fp32_to_fp16(0.5f * x * (1.0f + t));
	}
}

void dk_vec_geglu_ref(float *restrict g, const float *restrict u, int64_t n)
{
	pthread_once(&gelu_once, gelu_init);
	for (int64_t i = 0; i < n; i++) {
		const float x = g[i];
		if (x <= -10.0f)
			g[i] = 0.0f;
		else if (x >= 10.0f)
			g[i] = x * u[i];
		else
			g[i] = dk_fp16_to_fp32(gelu_tab[dk_fp32_to_fp16(x)]) * u[i];
	}
}

dk_vec_swiglu_fn dk_vec_swiglu_kernel(void)
{
	switch (dk_quant_level()) {
	case DK_KERNELS_AVX512:
		return dk_vec_swiglu_avx512;
	case DK_KERNELS_AVX2:
		return dk_vec_swiglu_avx2;
	default:
		return dk_vec_swiglu_ref;
	}
}

void dk_vec_rope_ref(float *x, int32_t nheads, int32_t hd, int32_t n_rot, const float *cs,
		     bool neox)
{
	const int32_t half = n_rot / 2;
	for (int32_t h = 0; h < nheads; h++) {
		float *v = x + (size_t)h * (size_t)hd;
		for (int32_t i = 0; i < half; i++) {
			const int32_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
			const float x0 = v[a], x1 = v[b], co = cs[2 * i], si = cs[2 * i + 1];
			v[a] = x0 * co - x1 * si;
			v[b] = x0 * si + x1 * co;
		}
	}
}

dk_vec_rope_fn dk_vec_rope_kernel(void)
{
	return dk_quant_level() == DK_KERNELS_AVX512 ? dk_vec_rope_avx512 : dk_vec_rope_ref;
}

int32_t dk_vec_argmax_ref(const float *x, int32_t n)
{
	int32_t best = -1;
	float bv = -INFINITY;
	for (int32_t i = 0; i < n; i++)
		if (x[i] > bv) {
			bv = x[i];
			best = i;
		}
	return best;
}

dk_vec_argmax_fn dk_vec_argmax_kernel(void)
{
	return dk_quant_level() == DK_KERNELS_AVX512 ? dk_vec_argmax_avx512 : dk_vec_argmax_ref;
}

void dk_vec_rmsnorm_ref(float *y, const float *x, const float *w, int64_t n, float eps)
{
	double ps[8] = {0};
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			ps[k] += (double)(x[i + k] * x[i + k]);
	for (; i < n; i++)
		ps[0] += (double)(x[i] * x[i]);
	double sum = ((ps[0] + ps[1]) + (ps[2] + ps[3])) + ((ps[4] + ps[5]) + (ps[6] + ps[7]));
	const float mean = (float)(sum / (double)n);
	const float scale = 1.0f / sqrtf(mean + eps);
	for (i = 0; i < n; i++) {
		float t = x[i] * scale;
		y[i] = t * w[i];
	}
}

dk_vec_rmsnorm_fn dk_vec_rmsnorm_kernel(void)
{
	return dk_quant_level() == DK_KERNELS_AVX512 ? dk_vec_rmsnorm_avx512 : dk_vec_rmsnorm_ref;
}
