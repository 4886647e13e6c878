/*
 * A persistent pool of worker threads for the engine's parallel loops.
 *
 * dk_pool_run(p, fn, ctx) calls fn(ctx, ith, nth) once on each of the nth
 * threads (the caller is thread 0) and returns when all have finished.  A
 * decode step issues hundreds of these, so workers spin briefly before
 * sleeping: waking a sleeping thread costs more than a small matmul.
 * Work must be split by ith/nth in a way that does not change results
 * (split rows, never a reduction), so that output is independent of nth.
 */
#ifndef DK_ENGINE_THREADPOOL_H
#define DK_ENGINE_THREADPOOL_H

typedef void (*dk_pool_fn)(void *ctx, int ith, int nth);

struct dk_pool;

/* n_threads >= 1 (1 = no worker threads).  NULL when threads cannot start. */
struct dk_pool *dk_pool_new(int n_threads);
void dk_pool_free(struct dk_pool *p);
int dk_pool_size(const struct dk_pool *p);
/* Not reentrant: one dk_pool_run at a time per pool. */
void dk_pool_run(struct dk_pool *p, dk_pool_fn fn, void *ctx);

/* Number of physical cores (falls back to online CPUs). */
int dk_physical_cores(void);

#endif
