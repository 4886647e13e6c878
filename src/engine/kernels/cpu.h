/*
 * The CPU's kernel level.  cpu.c owns the detection (CPUID) and the
 * DOCKET_KERNELS cap, both read once per process (pthread_once); every
 * kernel family (quant, pack, vec, attn) picks its functions from here.
 *
 * DOCKET_KERNELS=ref|avx2|avx512 caps the level (for tests and A/B runs);
 * unset or empty: the highest level this CPU runs.  Every level gives the
 * references' bits, so the cap changes speed, never results.
 */
#ifndef DK_ENGINE_KERNELS_CPU_H
#define DK_ENGINE_KERNELS_CPU_H

#include <stdbool.h>

enum dk_kernel_level { DK_KERNELS_REF = 0, DK_KERNELS_AVX2 = 1, DK_KERNELS_AVX512 = 2 };

/* The highest level this CPU runs (AVX2 needs FMA; AVX-512 needs F, BW,
 * VL, DQ and VNNI). */
int dk_cpu_level(void);
/* The level in use: dk_cpu_level() capped by DOCKET_KERNELS. */
int dk_cpu_kernels(void);
/* F16C, which the AVX2 attention kernels need besides the level. */
bool dk_cpu_f16c(void);

#endif
