/*
 * Fallback routing: send a chunk to an OpenAI-compatible endpoint
 * (POST {base_url}/chat/completions) when the local engine cannot handle it,
 * behind a PHI gate, a redactor and an audit trail.
 *
 * The runner's part, per chunk:
 *   1. decide that it *wants* to fall back: dk_fallback_wants(params, reason)
 *      (reason is one DK_FALLBACK_* bit: over_context, invalid_output,
 *      local_error; DK_FALLBACK_ALWAYS makes every chunk want it);
 *   2. ask the gate: dk_route_allowed(params, sensitive, why, n) — false means
 *      the chunk must not leave the machine (record it as failed/skipped with
 *      `why`);
 *   3. call dk_fallback_chat with the *original* text and req.sensitive set
 *      as the pipeline says.  The call enforces the gate again (DK_FATAL,
 *      zero bytes sent, when it forbids), redacts internally when
 *      params.redact is on, restores placeholders in the answer, writes one
 *      audit line per HTTP attempt, and fills resp (host, model) for the
 *      record's `route: fallback`.
 *
 * Threads: dk_fallback_chat may be called from several threads on one
 * object.  At most max_concurrency requests are in flight; each holds one of
 * max_concurrency pooled CURL easy handles, so connections are kept alive
 * and reused between calls.  Callers beyond the limit block until a handle
 * is free.
 *
 * Secrets: the API key is read from the environment variable named by
 * key_env once, at dk_fallback_new; it lives only in the Authorization
 * header kept in memory (wiped at _free).  It is never printed, never put
 * in an error message (server error texts are scrubbed of it), never in the
 * audit file; libcurl verbose output is never enabled.
 *
 * TLS: peer and host verification are always on and cannot be turned off;
 * ca_bundle replaces the system CA store (for a private CA).  Redirects are
 * not followed (they could carry the key elsewhere).  Plain http:// is
 * accepted for local servers (vLLM, llama.cpp) on a trusted network.
 */
#ifndef DOCKET_ROUTE_H
#define DOCKET_ROUTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/redact.h"

/* fallback.when bits */
enum {
	DK_FALLBACK_OVER_CONTEXT = 1u << 0,   /* chunk does not fit the local context */
	DK_FALLBACK_INVALID_OUTPUT = 1u << 1, /* local output failed validation after k attempts */
	DK_FALLBACK_LOCAL_ERROR = 1u << 2,    /* the local engine failed */
	DK_FALLBACK_ALWAYS = 1u << 3,         /* remote-only mode */
};

/* Parses "over_context,invalid_output" (comma/space separated; "none" or ""
 * = 0) into *when.  Returns 0, or -1 naming the bad word in err. */
int dk_fallback_parse_when(const char *list, unsigned *when, char *err, size_t n);
/* Writes the names of the bits ("over_context,always") into buf. */
void dk_fallback_when_str(unsigned when, char *buf, size_t n);

struct dk_fallback_params {
	const char *base_url;     /* e.g. "https://api.openai.com/v1"; "/chat/completions" is appended */
	const char *model;        /* sent as "model" */
	const char *key_env;      /* NAME of the env var holding the API key; NULL/"" = no Authorization */
	long timeout_ms;          /* whole request (default 120000) */
	long connect_timeout_ms;  /* default 10000 */
	int max_retries;          /* retries after the first attempt (default 2 -> 3 attempts) */
	long backoff_base_ms;     /* full-jitter backoff: random in [0, min(max, base * 2^k)] (default 500) */
	long backoff_max_ms;      /* default 20000 */
	long retry_after_max_ms;  /* cap on a server's Retry-After (default 60000) */
	int max_concurrency;      /* requests in flight per object (default 8, 1..64) */
	const char *ca_bundle;    /* PEM file replacing the system CA store; NULL = system store */
	unsigned when;            /* DK_FALLBACK_* bits (default 0: fallback never wanted) */
	bool allow_sensitive;     /* let sensitive pipelines route at all (default false) */
	bool redact;              /* redact before sending (default true) */
	const char *audit_path;   /* JSONL audit file, appended; required by dk_fallback_new */
	const char *user_agent;   /* default "docket/<version>" */
};

/* The defaults documented above (base_url, model, audit_path NULL). */
struct dk_fallback_params dk_fallback_default_params(void);

/*
 * Fills *p from a pipeline's "fallback" object: url, model, key_env, when
 * (array of names or a comma string), allow_sensitive, redact, timeout_ms,
 * connect_timeout_ms, max_retries, max_concurrency, ca_bundle.  Fields that
 * are absent keep their value in *p; strings are borrowed from obj.  Unknown
 * keys are an error (typos in a privacy setting must not pass silently).
 * Returns 0, or -1 with a message in err.
 */
int dk_fallback_params_from_json(struct dk_fallback_params *p, const json_t *obj, char *err, size_t n);

/* Does this run want to fall back for reason (one DK_FALLBACK_* bit)?
 * True for any reason when DK_FALLBACK_ALWAYS is set; false when no URL. */
bool dk_fallback_wants(const struct dk_fallback_params *p, unsigned reason);

/*
 * The PHI gate.  sensitive && !allow_sensitive -> false ("sensitive
 * pipeline: fallback.allow_sensitive is off").  Otherwise true; when it will
 * redact first, why says so ("allowed after redaction").  why may be NULL.
 */
bool dk_route_allowed(const struct dk_fallback_params *p, bool sensitive, char *why, size_t n);

struct dk_fallback;

/*
 * Validates params (base_url http(s), model, audit_path set, key present in
 * the environment when key_env is given, CA bundle readable), reads the
 * key, opens the audit file.  NULL on failure with a message in err (never
 * the key's value).  Strings in params are copied.
 */
struct dk_fallback *dk_fallback_new(const struct dk_fallback_params *p, char *err, size_t n);
void dk_fallback_free(struct dk_fallback *f);
/* Makes every call on f, running or to come, end soon with DK_SKIP
 * ("cancelled"): transfers abort, back-off waits end, nothing more is sent.
 * Any thread; f stays cancelled until freed.  For a run that is stopping
 * and will not use the answers. */
void dk_fallback_cancel(struct dk_fallback *f);
/* The last failure's message (any thread); borrowed until the next call. */
const char *dk_fallback_error(const struct dk_fallback *f);
/* Endpoint host ("api.openai.com", "127.0.0.1:8080" keeps a port), model. */
const char *dk_fallback_host(const struct dk_fallback *f);
const char *dk_fallback_model(const struct dk_fallback *f);

struct dk_fallback_message {
	const char *role;    /* "system", "user", "assistant" */
	const char *content; /* UTF-8, NUL-terminated */
};

struct dk_fallback_request {
	const struct dk_fallback_message *messages;
	size_t n_messages;
	int max_tokens;         /* <= 0: not sent */
	double temperature;     /* < 0: not sent */
	int64_t seed;           /* < 0: not sent */
	const json_t *json_schema;  /* NULL, or a JSON Schema: sent as response_format
				       {type: json_schema, json_schema: {name, schema, strict: true}} */
	const char *schema_name;    /* default "result" */
	const char *record_id;      /* for the audit line (document path + chunk), may be NULL */
	bool sensitive;             /* the pipeline's sensitivity: the gate is applied here too */
};

struct dk_fallback_response {
	char *content;           /* malloc'd, placeholders restored; NULL unless DK_OK */
	size_t content_len;
	char finish_reason[32];  /* "stop", "length", ... or "" */
	int64_t prompt_tokens;   /* from usage, -1 when absent */
	int64_t completion_tokens;
	long http_status;        /* last HTTP status, 0 when none came back */
	int attempts;            /* HTTP attempts made (0 when refused before sending) */
	char host[256];          /* endpoint host, for the record's route info */
	char model[128];         /* model the server says answered (else the requested one) */
	size_t redactions[DK_PHI_COUNT]; /* placeholders inserted, by type */
	size_t body_bytes;       /* size of the body sent */
	char body_sha256[65];    /* sha256 of the exact body sent, "" when nothing was sent */
	char error[DK_ERRMSG_MAX]; /* message when not DK_OK */
};

/*
 * One chat completion.  resp is zeroed first and always filled as far as it
 * got; free its content with dk_fallback_response_free.
 *   DK_OK     content holds the answer;
 *   DK_SKIP   this chunk failed: retries exhausted ("fallback to 'host': 3
 *             attempts failed: http 503"), timeout, malformed/truncated
 *             answer, no choices, a 4xx other than 401/403/404/429;
 *   DK_FATAL  nothing will work: the gate forbids (zero bytes sent), auth
 *             refused (401/403), no such endpoint (404), TLS verification
 *             failed, the audit file cannot be written (the request that
 *             could not be audited is not retried, and later calls refuse
 *             until a new object is made), out of memory.
 */
enum dk_status dk_fallback_chat(struct dk_fallback *f, const struct dk_fallback_request *req,
				struct dk_fallback_response *resp);
void dk_fallback_response_free(struct dk_fallback_response *resp);

/*
 * The audit trail: one JSONL line per HTTP attempt that left the machine,
 * appended with a single write(2) and fdatasync'd, under a mutex (one file
 * may be shared by threads; O_APPEND keeps lines whole across processes).
 * Fields: time (ISO 8601 UTC, ms), record_id, host, model, bytes, sha256 of
 * the exact body sent, redactions {TYPE: count} (only types > 0), redacted
 * (bool), sensitive (bool), attempt (1-based), status (HTTP status, 0 when
 * none), outcome ("ok", "retry", "error"), error (short reason, never a
 * server-supplied text).  Never the key, never the body.  A line is written
 * after its attempt ends, so a process killed mid-request leaves that one
 * attempt unaudited; libcurl may also resend an attempt once, transparently,
 * when a kept-alive connection turns out to be closed before any answer.
 */
struct dk_audit;

struct dk_audit_entry {
	const char *record_id;   /* may be NULL */
	const char *host;
	const char *model;
	size_t bytes;
	const char *sha256;      /* hex */
	const size_t *redactions; /* DK_PHI_COUNT counts, or NULL */
	bool redacted;
	bool sensitive;
	int attempt;
	long status;
	const char *outcome;
	const char *error;       /* NULL when none */
};

/* Opens (creating, mode 0600) for appending.  NULL with a message in err. */
struct dk_audit *dk_audit_open(const char *path, char *err, size_t n);
void dk_audit_close(struct dk_audit *a);
/* 0, or -1 with errno set. */
int dk_audit_write(struct dk_audit *a, const struct dk_audit_entry *e);

#endif
