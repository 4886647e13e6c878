/* Remote calls in flight: a FIFO of submitted calls, a list of finished
 * ones, and workers moving calls from one to the other through the network. */
#include "runner/calls.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct dk_calls {
	struct dk_fallback *fb;
	pthread_mutex_t mu;
	pthread_cond_t work;       /* a call was queued, or quit */
	pthread_cond_t done;       /* a call finished */
	struct dk_call *head, *tail; /* queued */
	struct dk_call *fin_head, *fin_tail; /* finished, not taken */
	size_t outstanding;
	int running, peak;
	bool quit;
	pthread_t *tid;
	int n_tid;
};

struct dk_call *dk_call_new(char *system, char *user)
{
	struct dk_call *c = calloc(1, sizeof *c);
	if (!c || !user) {
		free(c);
		free(system);
		free(user);
		return NULL;
	}
	c->system = system;
	c->user = user;
	c->temperature = -1;
	return c;
}

void dk_call_free(struct dk_call *c)
{
	if (!c)
		return;
	free(c->system);
	free(c->user);
	json_decref(c->schema);
	dk_fallback_response_free(&c->resp);
	free(c);
}

static void run_call(struct dk_fallback *fb, struct dk_call *c)
{
	struct dk_fallback_message m[2];
	size_t nm = 0;
	if (c->system && *c->system)
		m[nm++] = (struct dk_fallback_message){"system", c->system};
	m[nm++] = (struct dk_fallback_message){"user", c->user};
	struct dk_fallback_request rq = {
		.messages = m,
		.n_messages = nm,
		.max_tokens = c->max_tokens,
		.temperature = c->temperature,
		.seed = -1,
		.json_schema = c->schema,
		.record_id = c->record_id,
		.sensitive = c->sensitive,
	};
	c->status = dk_fallback_chat(fb, &rq, &c->resp);
}

static void *worker(void *arg)
{
	struct dk_calls *q = arg;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->quit && !q->head)
			pthread_cond_wait(&q->work, &q->mu);
		if (q->quit)
			break;
		struct dk_call *c = q->head;
		q->head = c->next;
		if (!q->head)
			q->tail = NULL;
		c->next = NULL;
		if (++q->running > q->peak)
			q->peak = q->running;
		pthread_mutex_unlock(&q->mu);
		run_call(q->fb, c);
		pthread_mutex_lock(&q->mu);
		q->running--;
		if (q->fin_tail)
			q->fin_tail->next = c;
		else
			q->fin_head = c;
		q->fin_tail = c;
		pthread_cond_signal(&q->done);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

struct dk_calls *dk_calls_new(struct dk_fallback *fb, int workers)
{
	if (!fb || workers < 1 || workers > 64)
		return NULL;
	struct dk_calls *q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->fb = fb;
	q->tid = calloc((size_t)workers, sizeof *q->tid);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->work, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->done, &ca);
	pthread_condattr_destroy(&ca);
	if (!q->tid) {
		dk_calls_free(q);
		return NULL;
	}
	for (int i = 0; i < workers; i++) {
		if (pthread_create(&q->tid[i], NULL, worker, q)) {
			dk_calls_free(q);
			return NULL;
		}
		q->n_tid++;
	}
	return q;
}

static void free_list(struct dk_call *c)
{
	while (c) {
		struct dk_call *next = c->next;
		dk_call_free(c);
		c = next;
	}
}

void dk_calls_free(struct dk_calls *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->quit = true;
	pthread_cond_broadcast(&q->work);
	pthread_mutex_unlock(&q->mu);
	if (q->n_tid)
		dk_fallback_cancel(q->fb); /* running calls end soon, unrecorded */
	for (int i = 0; i < q->n_tid; i++)
		pthread_join(q->tid[i], NULL);
	free_list(q->head);
	free_list(q->fin_head);
	free(q->tid);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->done);
	free(q);
}

void dk_calls_submit(struct dk_calls *q, struct dk_call *c)
{
	c->next = NULL;
	pthread_mutex_lock(&q->mu);
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	q->outstanding++;
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->mu);
}

void dk_calls_finished(struct dk_calls *q, struct dk_call *c)
{
	c->next = NULL;
	pthread_mutex_lock(&q->mu);
	if (q->fin_tail)
		q->fin_tail->next = c;
	else
		q->fin_head = c;
	q->fin_tail = c;
	q->outstanding++;
	pthread_cond_signal(&q->done);
	pthread_mutex_unlock(&q->mu);
}

struct dk_call *dk_calls_take(struct dk_calls *q, int wait_ms)
{
	pthread_mutex_lock(&q->mu);
	if (!q->fin_head && wait_ms > 0 && q->outstanding) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += wait_ms / 1000;
		until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!q->fin_head &&
		       pthread_cond_timedwait(&q->done, &q->mu, &until) != ETIMEDOUT)
			;
	}
	struct dk_call *c = q->fin_head;
	if (c) {
		q->fin_head = c->next;
		if (!q->fin_head)
			q->fin_tail = NULL;
		c->next = NULL;
		q->outstanding--;
	}
	pthread_mutex_unlock(&q->mu);
	return c;
}

size_t dk_calls_outstanding(struct dk_calls *q)
{
	pthread_mutex_lock(&q->mu);
	size_t n = q->outstanding;
	pthread_mutex_unlock(&q->mu);
	return n;
}

int dk_calls_peak(struct dk_calls *q)
{
	pthread_mutex_lock(&q->mu);
	int n = q->peak;
	pthread_mutex_unlock(&q->mu);
	return n;
}
