/* Deterministic random test data shared by the kernel tests: an
 * xorshift64* generator (the same numbers on every platform) and a fill
 * shaped like real weights.  Each test file gets its own state. */
#ifndef DK_TESTRNG_H
#define DK_TESTRNG_H

#include <stdint.h>

static uint64_t rng_state;

static inline void rng_seed(uint64_t s)
{
	rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

static inline uint32_t rng_u32(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static inline float rng_unif(void) /* [-1, 1) */
{
	return (float)(rng_u32() >> 8) * 0x1p-23f - 1.0f;
}

/* roughly normal, with an occasional outlier like real weights */
static inline void fill(float *x, int64_t n, float scale)
{
	for (int64_t i = 0; i < n; i++) {
		float v = (rng_unif() + rng_unif() + rng_unif()) * scale;
		if (rng_u32() % 97 == 0)
			v *= 6;
		x[i] = v;
	}
}

#endif
