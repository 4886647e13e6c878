/* Elementwise kernels (vec.h) against their scalar references: random
 * gates over the range a model produces and past it (where e^-g
 * overflows or vanishes), every tail length, and splits at every point
 * (threads split rows anywhere: the bits must not move). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant.h"
#include "engine/vec.h"
#include "testrng.h"

#define N 1000

struct level {
	const char *name;
	int level;
	dk_vec_swiglu_fn fn;
};

static const struct level levels[] = {
	{ "avx2", DK_KERNELS_AVX2, dk_vec_swiglu_avx2 },
	{ "avx512", DK_KERNELS_AVX512, dk_vec_swiglu_avx512 },
};

static void make(float *g, float *u, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		float s = i % 7 == 0 ? 120.0f : i % 3 == 0 ? 12.0f : 4.0f;
		g[i] = rng_unif() * s;
		u[i] = rng_unif() * 3.0f;
	}
	/* the edges of expf's range, zero, and values where silu is ~0 or ~g */
	const float edge[] = { 0.0f, -0.0f, 87.5f, -87.5f, 88.5f, -88.5f, 89.0f, -89.0f,
			       104.0f, -104.0f, 200.0f, -200.0f, 1e-30f, -1e-30f, 30.0f, -30.0f };
	for (size_t i = 0; i < sizeof edge / sizeof edge[0] && (int64_t)i < n; i++)
		g[i * 13 % n] = edge[i];
}

static void test_swiglu_matches_ref(void **state)
{
	(void)state;
	rng_seed(7);
	static float g[N], u[N], want[N], got[N];
	int tested = 0;
	for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
		if (dk_quant_level() < levels[l].level)
			continue;
		for (int64_t n = 1; n <= N; n = n < 40 ? n + 1 : n * 5 / 2) {
			make(g, u, n);
			memcpy(want, g, sizeof(float) * (size_t)n);
			memcpy(got, g, sizeof(float) * (size_t)n);
			dk_vec_swiglu_ref(want, u, n);
			levels[l].fn(got, u, n);
			for (int64_t i = 0; i < n; i++) {
				double err = fabs((double)got[i] - want[i]);
				/* a few ulp; tiny where the reference is 0 (vec_avx2.c) */
				if (!(err <= 4e-7 * fabs(want[i]) + 1e-34)) {
					fprintf(stderr, "%s n %lld: g %a u %a: got %a want %a\n",
						levels[l].name, (long long)n, g[i], u[i], got[i], want[i]);
					fail();
				}
			}
			tested++;
		}
	}
	if (!tested)
		skip();
}

static void test_swiglu_split_invariant(void **state)
{
	(void)state;
	rng_seed(11);
	static float g[100], u[100], whole[100], parts[100];
	dk_vec_swiglu_fn fn = dk_vec_swiglu_kernel();
	make(g, u, 100);
	memcpy(whole, g, sizeof whole);
	fn(whole, u, 100);
	for (int k = 0; k <= 100; k++) {
		memcpy(parts, g, sizeof parts);
		fn(parts, u, k);
		fn(parts + k, u + k, 100 - k);
		assert_memory_equal(parts, whole, sizeof whole);
	}
}

static void test_swiglu_ref_values(void **state)
{
	(void)state;
	/* silu(0) = 0, silu(x) -> x for large x, -> -0 for very negative x */
	float g[4] = { 0.0f, 50.0f, -200.0f, 1.0f }, u[4] = { 3.0f, 2.0f, 1.0f, 1.0f };
	dk_vec_swiglu_ref(g, u, 4);
	assert_true(g[0] == 0.0f);
	assert_true(g[1] == 100.0f);
	assert_true(g[2] == 0.0f);
	assert_true(fabsf(g[3] - 0.7310586f) < 1e-6f);
	/* the selected kernel on the same inputs (AVX2 leaves a value below
	 * 1e-34 where the reference underflows to 0: vec_avx2.c) */
	float h[4] = { 0.0f, 50.0f, -200.0f, 1.0f };
	dk_vec_swiglu_kernel()(h, u, 4);
	assert_true(h[0] == 0.0f && h[1] == 100.0f && fabsf(h[2]) < 1e-34f);
	assert_true(fabsf(h[3] - 0.7310586f) < 1e-6f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_swiglu_matches_ref),
		cmocka_unit_test(test_swiglu_split_invariant),
		cmocka_unit_test(test_swiglu_ref_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
