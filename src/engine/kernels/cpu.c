#include "engine/kernels/cpu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int cpu_level;  /* highest level this CPU runs */
static int sel_level;  /* after the DOCKET_KERNELS cap */
static bool has_f16c;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int detect(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	has_f16c = __builtin_cpu_supports("f16c");
	if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
		return DK_KERNELS_REF;
	/* BMI2 has no __builtin_cpu_supports name in every gcc; every
	 * AVX2+FMA CPU has it. */
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512vnni"))
		return DK_KERNELS_AVX512;
	return DK_KERNELS_AVX2;
#else
	return DK_KERNELS_REF;
#endif
}

static void init(void)
{
	cpu_level = detect();
	sel_level = cpu_level;
	const char *env = getenv("DOCKET_KERNELS");
	if (env && *env) {
		int cap = !strcmp(env, "ref") ? DK_KERNELS_REF
			  : !strcmp(env, "avx2") ? DK_KERNELS_AVX2
						 : DK_KERNELS_AVX512;
		if (cap < sel_level)
			sel_level = cap;
	}
}

int dk_cpu_level(void)
{
	pthread_once(&once, init);
	return cpu_level;
}

int dk_cpu_kernels(void)
{
	pthread_once(&once, init);
	return sel_level;
}

bool dk_cpu_f16c(void)
{
	pthread_once(&once, init);
	return has_f16c;
}
