#include "engine/core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Spins before sleeping (about 50-100 µs); every YIELD_EVERY spins the
 * thread also yields, so that on an oversubscribed machine (CI running
 * tests in parallel, other jobs) a spinning thread hands its core to the
 * thread everyone is waiting for instead of burning its time slice. */
#define SPIN_ITERS 20000
#define YIELD_EVERY 256

struct worker {
	struct dk_pool *pool;
	pthread_t tid;
	int ith;
};

struct dk_pool {
	int n;
	struct worker *workers;
	_Atomic unsigned gen;      /* bumped for every job */
	_Atomic int pending;       /* workers still running the current job */
	_Atomic bool stop;
	dk_pool_fn fn;
	void *ctx;
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* job posted (for sleeping workers) */
	_Atomic int sleepers;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct dk_pool *p = w->pool;
	/* the pool is created with gen 0 and no job is posted before every
	 * worker exists, so a worker that starts late still sees job 1 */
	unsigned seen = 0;
	for (;;) {
		int spins = 0;
		while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) {
			if (++spins < SPIN_ITERS) {
				cpu_relax();
				if (spins % YIELD_EVERY == 0)
					sched_yield();
				continue;
			}
			pthread_mutex_lock(&p->mu);
			atomic_fetch_add(&p->sleepers, 1);
			while (atomic_load(&p->gen) == seen)
				pthread_cond_wait(&p->cv, &p->mu);
			atomic_fetch_sub(&p->sleepers, 1);
			pthread_mutex_unlock(&p->mu);
		}
		seen = atomic_load(&p->gen);
		if (atomic_load(&p->stop))
			return NULL;
		p->fn(p->ctx, w->ith, p->n);
		atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
	}
}

struct dk_pool *dk_pool_new(int n_threads)
{
	struct dk_pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->n = n_threads < 1 ? 1 : n_threads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->workers = calloc((size_t)p->n, sizeof *p->workers);
	if (!p->workers) {
		free(p);
		return NULL;
	}
	for (int i = 1; i < p->n; i++) {
		p->workers[i].pool = p;
		p->workers[i].ith = i;
		if (pthread_create(&p->workers[i].tid, NULL, worker_main, &p->workers[i]) != 0) {
			p->n = i; /* shut down the ones that started */
			dk_pool_free(p);
			return NULL;
		}
	}
	return p;
}

void dk_pool_free(struct dk_pool *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, true);
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add(&p->gen, 1);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 1; i < p->n; i++)
		pthread_join(p->workers[i].tid, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->workers);
	free(p);
}

int dk_pool_size(const struct dk_pool *p) { return p ? p->n : 1; }

void dk_pool_run(struct dk_pool *p, dk_pool_fn fn, void *ctx)
{
	if (!p || p->n == 1) {
		fn(ctx, 0, 1);
		return;
	}
	p->fn = fn;
	p->ctx = ctx;
	atomic_store(&p->pending, p->n - 1);
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	if (atomic_load(&p->sleepers)) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	fn(ctx, 0, p->n);
	/* yield now and then: on an oversubscribed machine the worker we wait
	 * for may need this core */
	for (unsigned spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
		cpu_relax();
		if (spins % YIELD_EVERY == YIELD_EVERY - 1)
			sched_yield();
	}
}

int dk_physical_cores(void)
{
	/* count distinct (physical id, core id) pairs in /proc/cpuinfo */
	FILE *f = fopen("/proc/cpuinfo", "r");
	int pairs[1024][2], n = 0, phys = 0;
	if (f) {
		char line[256];
		while (fgets(line, sizeof line, f)) {
			int v;
			if (sscanf(line, "physical id : %d", &v) == 1)
				phys = v;
			else if (sscanf(line, "core id : %d", &v) == 1) {
				bool seen = false;
				for (int i = 0; i < n; i++)
					if (pairs[i][0] == phys && pairs[i][1] == v)
						seen = true;
				if (!seen && n < 1024) {
					pairs[n][0] = phys;
					pairs[n][1] = v;
					n++;
				}
			}
		}
		fclose(f);
	}
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = online > 0 ? (int)online : 1;
	if (online > 0 && n > online)
		n = (int)online;
	return n;
}
