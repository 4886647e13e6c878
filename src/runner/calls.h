/*
 * Remote calls in flight: a small pool of worker threads that run
 * dk_fallback_chat, so the runner's thread keeps decoding while the network
 * answers.
 *
 * The runner's thread builds a call (messages, schema, what the answer is
 * for), submits it, and later takes it back finished; workers touch nothing
 * but the call and the fallback object (which is safe to share).  Calls come
 * back in the order they finish, not the order they were sent.
 *
 * Lifecycle: dk_calls_new starts the workers; dk_calls_free cancels the
 * fallback object's transfers, joins the workers and frees every call still
 * queued, running or not taken, so a stopping run drops answers it will not
 * record (a resumed run asks again).
 */
#ifndef DK_RUNNER_CALLS_H
#define DK_RUNNER_CALLS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "docket/route.h"

struct dk_call {
	/* the request; the call owns every string and the schema reference */
	char *system, *user;    /* system may be NULL */
	json_t *schema;         /* NULL: free text */
	char record_id[65];
	int max_tokens;
	double temperature;
	bool sensitive;
	/* the answer, filled by a worker */
	enum dk_status status;
	struct dk_fallback_response resp;
	/* the submitter's: what the answer is for (never read by the pool) */
	void *owner;
	int index;
	int kind;
	struct dk_call *next;
};

/* A call taking ownership of system and user (malloc'd; freed here even
 * when this fails).  NULL when out of memory. */
struct dk_call *dk_call_new(char *system, char *user);
/* Frees the call, its strings, schema reference and response.  NULL: no-op. */
void dk_call_free(struct dk_call *c);

struct dk_calls;

/* Starts `workers` threads (1..64) calling fb, which must outlive the pool.
 * NULL on failure (out of memory, no threads). */
struct dk_calls *dk_calls_new(struct dk_fallback *fb, int workers);
/* Cancels, joins and frees, as above.  NULL: no-op. */
void dk_calls_free(struct dk_calls *q);

/* Queues c (the pool owns it until dk_calls_take returns it). */
void dk_calls_submit(struct dk_calls *q, struct dk_call *c);
/* Hands back c as finished without sending it (a request that could not be
 * built: c->status and c->resp.error say why), in order with the others. */
void dk_calls_finished(struct dk_calls *q, struct dk_call *c);
/* A finished call (the caller owns it), or NULL when none finishes within
 * wait_ms (0: do not wait). */
struct dk_call *dk_calls_take(struct dk_calls *q, int wait_ms);
/* Calls submitted and not yet taken back. */
size_t dk_calls_outstanding(struct dk_calls *q);
/* The most calls that were running on the network at once. */
int dk_calls_peak(struct dk_calls *q);

#endif
