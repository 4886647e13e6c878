/*
 * OpenAI-compatible chat-completions client with the PHI gate, redaction,
 * retries and the audit trail (see docket/route.h).
 */
#include "docket/route.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/sha256.h"

/* Responses larger than this are refused (a chat answer is kilobytes). */
#define MAX_RESPONSE_BYTES (64u << 20)

/* ----------------------------------------------------------- when flags */

static const struct {
	const char *name;
	unsigned bit;
} when_names[] = {
	{"over_context", DK_FALLBACK_OVER_CONTEXT},
	{"invalid_output", DK_FALLBACK_INVALID_OUTPUT},
	{"local_error", DK_FALLBACK_LOCAL_ERROR},
	{"always", DK_FALLBACK_ALWAYS},
};

int dk_fallback_parse_when(const char *list, unsigned *when, char *err, size_t n)
{
	unsigned w = 0;
	const char *p = list ? list : "";
	while (*p) {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		size_t l = strcspn(p, ", \t");
		if (!l)
			break;
		int found = 0;
		if (l == 4 && !memcmp(p, "none", 4))
			found = 1;
		for (size_t k = 0; k < sizeof when_names / sizeof when_names[0] && !found; k++) {
			if (strlen(when_names[k].name) == l && !memcmp(p, when_names[k].name, l)) {
				w |= when_names[k].bit;
				found = 1;
			}
		}
		if (!found) {
			dk_err(err, n, DK_FATAL,
			       "fallback.when: unknown condition '%.*s' (expected over_context, invalid_output, "
			       "local_error, always)",
			       (int)(l > 64 ? 64 : l), p);
			return -1;
		}
		p += l;
	}
	*when = w;
	return 0;
}

void dk_fallback_when_str(unsigned when, char *buf, size_t n)
{
	if (!n)
		return;
	buf[0] = 0;
	size_t k = 0;
	for (size_t i = 0; i < sizeof when_names / sizeof when_names[0]; i++) {
		if (!(when & when_names[i].bit))
			continue;
		int w = snprintf(buf + k, n - k, "%s%s", k ? "," : "", when_names[i].name);
		if (w < 0 || (size_t)w >= n - k)
			return;
		k += (size_t)w;
	}
}

struct dk_fallback_params dk_fallback_default_params(void)
{
	return (struct dk_fallback_params){
		.timeout_ms = 120000,
		.connect_timeout_ms = 10000,
		.max_retries = 2,
		.backoff_base_ms = 500,
		.backoff_max_ms = 20000,
		.retry_after_max_ms = 60000,
		.max_concurrency = 8,
		.redact = true,
	};
}

int dk_fallback_params_from_json(struct dk_fallback_params *p, const json_t *obj, char *err, size_t n)
{
	if (!json_is_object(obj)) {
		dk_err(err, n, DK_FATAL, "fallback: expected an object");
		return -1;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		const char **sp = NULL;
		long *lp = NULL;
		int *ip = NULL;
		bool *bp = NULL;
		if (!strcmp(k, "url") || !strcmp(k, "base_url"))
			sp = &p->base_url;
		else if (!strcmp(k, "model"))
			sp = &p->model;
		else if (!strcmp(k, "key_env"))
			sp = &p->key_env;
		else if (!strcmp(k, "ca_bundle"))
			sp = &p->ca_bundle;
		else if (!strcmp(k, "timeout_ms"))
			lp = &p->timeout_ms;
		else if (!strcmp(k, "connect_timeout_ms"))
			lp = &p->connect_timeout_ms;
		else if (!strcmp(k, "max_retries"))
			ip = &p->max_retries;
		else if (!strcmp(k, "max_concurrency"))
			ip = &p->max_concurrency;
		else if (!strcmp(k, "allow_sensitive"))
			bp = &p->allow_sensitive;
		else if (!strcmp(k, "redact"))
			bp = &p->redact;
		else if (!strcmp(k, "when")) {
			unsigned w = 0;
			if (json_is_string(v)) {
				if (dk_fallback_parse_when(json_string_value(v), &w, err, n))
					return -1;
			} else if (json_is_array(v)) {
				size_t i;
				json_t *e;
				json_array_foreach(v, i, e) {
					unsigned one;
					if (!json_is_string(e)) {
						dk_err(err, n, DK_FATAL, "fallback.when: expected names");
						return -1;
					}
					if (dk_fallback_parse_when(json_string_value(e), &one, err, n))
						return -1;
					w |= one;
				}
			} else {
				dk_err(err, n, DK_FATAL, "fallback.when: expected a list of names");
				return -1;
			}
			p->when = w;
			continue;
		} else {
			dk_err(err, n, DK_FATAL, "fallback: unknown key '%s'", k);
			return -1;
		}
		if (sp) {
			if (!json_is_string(v) && !json_is_null(v)) {
				dk_err(err, n, DK_FATAL, "fallback.%s: expected a string", k);
				return -1;
			}
			*sp = json_is_null(v) ? NULL : json_string_value(v);
		} else if (lp || ip) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 86400000) {
				dk_err(err, n, DK_FATAL, "fallback.%s: expected a non-negative integer", k);
				return -1;
			}
			if (lp)
				*lp = (long)json_integer_value(v);
			else
				*ip = (int)json_integer_value(v);
		} else if (bp) {
			if (!json_is_boolean(v)) {
				dk_err(err, n, DK_FATAL, "fallback.%s: expected true or false", k);
				return -1;
			}
			*bp = json_is_true(v);
		}
	}
	return 0;
}

bool dk_fallback_wants(const struct dk_fallback_params *p, unsigned reason)
{
	if (!p || !p->base_url || !*p->base_url)
		return false;
	return (p->when & DK_FALLBACK_ALWAYS) || (p->when & reason);
}

bool dk_route_allowed(const struct dk_fallback_params *p, bool sensitive, char *why, size_t n)
{
	if (sensitive && !p->allow_sensitive) {
		dk_err(why, n, DK_FATAL, "sensitive pipeline: fallback.allow_sensitive is off");
		return false;
	}
	dk_err(why, n, DK_OK, "%s", p->redact ? "allowed after redaction" : "allowed");
	return true;
}

/* ---------------------------------------------------------------- object */

struct dk_fallback {
	struct dk_fallback_params p;
	char *base_url, *model, *ca_bundle, *user_agent, *url;
	char host[256];
	char *key;              /* the API key, or NULL */
	size_t key_len;
	struct curl_slist *headers; /* the Authorization line lives here */
	CURL **pool;
	bool *busy;
	int npool;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct dk_audit *audit;
	bool audit_broken;
	struct dk_redactor *red;
	uint64_t seq;
	atomic_bool cancelled;  /* dk_fallback_cancel: transfers abort, no new attempts */
	char err[DK_ERRMSG_MAX];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dupstr(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Replaces every occurrence of the key in s (in place) by '*'. */
static void scrub(const struct dk_fallback *f, char *s)
{
	if (!f->key || f->key_len < 4 || !s)
		return;
	char *p;
	while ((p = strstr(s, f->key)))
		memset(p, '*', f->key_len);
}

static void wipe_headers(struct curl_slist *h)
{
	for (; h; h = h->next)
		if (h->data)
			explicit_bzero(h->data, strlen(h->data));
}

/* Aborts a transfer once the object is cancelled (checked about once a second
 * by libcurl, and at every chunk of data). */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	const struct dk_fallback *f = ud;
	return atomic_load(&f->cancelled) ? 1 : 0;
}

static CURL *make_handle(struct dk_fallback *f)
{
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	int bad = 0;
	bad |= curl_easy_setopt(h, CURLOPT_URL, f->url) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, f->headers) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_VERBOSE, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, f->p.timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, f->p.connect_timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, f->user_agent) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_XFERINFODATA, f) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
	bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#endif
	if (f->ca_bundle)
		bad |= curl_easy_setopt(h, CURLOPT_CAINFO, f->ca_bundle) != CURLE_OK;
	if (bad) {
		curl_easy_cleanup(h);
		return NULL;
	}
	return h;
}

static void *fail_new(struct dk_fallback *f, char *err, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void *fail_new(struct dk_fallback *f, char *err, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	dk_verr(err, n, DK_FATAL, fmt, ap);
	va_end(ap);
	dk_fallback_free(f);
	return NULL;
}

struct dk_fallback *dk_fallback_new(const struct dk_fallback_params *p, char *err, size_t n)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		dk_err(err, n, DK_FATAL, "fallback: cannot initialise libcurl");
		return NULL;
	}
	struct dk_fallback *f = calloc(1, sizeof *f);
	if (!f) {
		dk_err(err, n, DK_FATAL, "fallback: out of memory");
		return NULL;
	}
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->p = *p;
	if (!p->base_url || !*p->base_url)
		return fail_new(f, err, n, "fallback: no url given");
	if (!p->model || !*p->model)
		return fail_new(f, err, n, "fallback: no model given");
	if (!p->audit_path || !*p->audit_path)
		return fail_new(f, err, n, "fallback: no audit file given");
	if (p->max_concurrency < 1 || p->max_concurrency > 64)
		return fail_new(f, err, n, "fallback: max_concurrency %d out of range 1..64", p->max_concurrency);
	if (p->max_retries < 0 || p->max_retries > 20)
		return fail_new(f, err, n, "fallback: max_retries %d out of range 0..20", p->max_retries);

	/* URL: scheme, host, no credentials */
	CURLU *u = curl_url();
	if (!u)
		return fail_new(f, err, n, "fallback: out of memory");
	char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, p->base_url, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	int bad_scheme = scheme && strcmp(scheme, "http") && strcmp(scheme, "https");
	if (host)
		snprintf(f->host, sizeof f->host, "%s%s%s", host, port ? ":" : "", port ? port : "");
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	int has_user = user != NULL;
	curl_free(user);
	curl_url_cleanup(u);
	if (uc != CURLUE_OK || !f->host[0])
		return fail_new(f, err, n, "fallback: invalid url '%.200s'", has_user ? "(hidden)" : p->base_url);
	if (has_user)
		return fail_new(f, err, n, "fallback: credentials in the url are not allowed (use key_env)");
	if (bad_scheme)
		return fail_new(f, err, n, "fallback: url '%.200s' must be http:// or https://", p->base_url);

	f->base_url = dupstr(p->base_url);
	f->model = dupstr(p->model);
	f->ca_bundle = dupstr(p->ca_bundle);
	f->user_agent = dupstr(p->user_agent ? p->user_agent : "docket/" DK_VERSION_STRING);
	if (!f->base_url || !f->model || !f->user_agent || (p->ca_bundle && !f->ca_bundle))
		return fail_new(f, err, n, "fallback: out of memory");
	f->p.base_url = f->base_url;
	f->p.model = f->model;
	f->p.ca_bundle = f->ca_bundle;
	f->p.user_agent = f->user_agent;
	f->p.key_env = NULL;
	f->p.audit_path = NULL;

	size_t bl = strlen(f->base_url);
	while (bl && f->base_url[bl - 1] == '/')
		bl--;
	static const char suffix[] = "/chat/completions";
	struct dk_buf ub = {0};
	if (bl >= sizeof suffix - 1 && !memcmp(f->base_url + bl - (sizeof suffix - 1), suffix, sizeof suffix - 1))
		dk_buf_append(&ub, f->base_url, bl);
	else if (dk_buf_append(&ub, f->base_url, bl) == 0)
		dk_buf_puts(&ub, suffix);
	if (!ub.data)
		return fail_new(f, err, n, "fallback: out of memory");
	f->url = dk_buf_steal(&ub);

	if (f->ca_bundle && access(f->ca_bundle, R_OK) != 0)
		return fail_new(f, err, n, "fallback: cannot read CA bundle '%s': %s", f->ca_bundle, strerror(errno));

	/* the key: read once, kept only in memory */
	if (p->key_env && *p->key_env) {
		const char *k = getenv(p->key_env);
		if (!k || !*k)
			return fail_new(f, err, n, "fallback: environment variable '%s' (the API key) is not set",
					p->key_env);
		for (const char *c = k; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return fail_new(f, err, n, "fallback: the API key in '%s' contains control characters",
						p->key_env);
		f->key_len = strlen(k);
		f->key = strdup(k);
		if (!f->key)
			return fail_new(f, err, n, "fallback: out of memory");
	}
	struct curl_slist *h = NULL, *t;
	static const char *const fixed[] = {"Content-Type: application/json", "Accept: application/json", "Expect:"};
	for (size_t i = 0; i < 3; i++) {
		if (!(t = curl_slist_append(h, fixed[i])))
			goto oom_headers;
		h = t;
	}
	if (f->key) {
		size_t al = f->key_len + 32;
		char *auth = malloc(al);
		if (!auth)
			goto oom_headers;
		snprintf(auth, al, "Authorization: Bearer %s", f->key);
		t = curl_slist_append(h, auth);
		explicit_bzero(auth, al);
		free(auth);
		if (!t)
			goto oom_headers;
		h = t;
	}
	f->headers = h;

	f->npool = p->max_concurrency;
	f->pool = calloc((size_t)f->npool, sizeof *f->pool);
	f->busy = calloc((size_t)f->npool, sizeof *f->busy);
	if (!f->pool || !f->busy)
		return fail_new(f, err, n, "fallback: out of memory");
	for (int i = 0; i < f->npool; i++)
		if (!(f->pool[i] = make_handle(f)))
			return fail_new(f, err, n, "fallback: cannot set up a libcurl handle");

	f->red = dk_redactor_new(NULL);
	if (!f->red)
		return fail_new(f, err, n, "fallback: out of memory");
	f->audit = dk_audit_open(p->audit_path, err, n);
	if (!f->audit) {
		dk_fallback_free(f);
		return NULL;
	}
	return f;
oom_headers:
	wipe_headers(h);
	curl_slist_free_all(h);
	return fail_new(f, err, n, "fallback: out of memory");
}

void dk_fallback_cancel(struct dk_fallback *f)
{
	if (f)
		atomic_store(&f->cancelled, true);
}

void dk_fallback_free(struct dk_fallback *f)
{
	if (!f)
		return;
	for (int i = 0; f->pool && i < f->npool; i++)
		if (f->pool[i])
			curl_easy_cleanup(f->pool[i]);
	free(f->pool);
	free(f->busy);
	wipe_headers(f->headers);
	curl_slist_free_all(f->headers);
	if (f->key) {
		explicit_bzero(f->key, f->key_len);
		free(f->key);
	}
	dk_audit_close(f->audit);
	dk_redactor_free(f->red);
	free(f->base_url);
	free(f->model);
	free(f->ca_bundle);
	free(f->user_agent);
	free(f->url);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
}

const char *dk_fallback_error(const struct dk_fallback *f)
{
	return f ? f->err : "";
}

const char *dk_fallback_host(const struct dk_fallback *f)
{
	return f->host;
}

const char *dk_fallback_model(const struct dk_fallback *f)
{
	return f->model;
}

void dk_fallback_response_free(struct dk_fallback_response *r)
{
	if (!r)
		return;
	free(r->content);
	r->content = NULL;
	r->content_len = 0;
}

/* ------------------------------------------------------------- requests */

struct xfer {
	struct dk_buf body;
	bool too_big;
	long retry_after_ms; /* -1 = none */
};

static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	size_t n = sz * nm;
	if (x->body.len + n > MAX_RESPONSE_BYTES) {
		x->too_big = true;
		return 0;
	}
	return dk_buf_append(&x->body, p, n) ? 0 : n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	size_t n = sz * nm;
	static const char name[] = "retry-after:";
	if (n > sizeof name - 1 && !strncasecmp(p, name, sizeof name - 1)) {
		char v[128];
		size_t l = n - (sizeof name - 1);
		if (l >= sizeof v)
			l = sizeof v - 1;
		memcpy(v, p + sizeof name - 1, l);
		v[l] = 0;
		char *s = v;
		while (*s == ' ' || *s == '\t')
			s++;
		char *e = s + strlen(s);
		while (e > s && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
			*--e = 0;
		char *end;
		errno = 0;
		double secs = strtod(s, &end);
		if (end != s && !*end && errno == 0 && secs >= 0) {
			x->retry_after_ms = secs > 1e7 ? (long)1e10 : (long)(secs * 1000.0);
		} else {
			time_t when = curl_getdate(s, NULL);
			if (when != (time_t)-1) {
				time_t now = time(NULL);
				x->retry_after_ms = when > now ? (long)(when - now) * 1000 : 0;
			}
		}
	}
	return n;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Sleeps ms, in slices so that a cancel ends the wait early. */
static void sleep_ms(const struct dk_fallback *f, long ms)
{
	while (ms > 0 && !atomic_load(&f->cancelled)) {
		long step = ms < 100 ? ms : 100;
		struct timespec ts = {0, step * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		ms -= step;
	}
}

static int acquire(struct dk_fallback *f)
{
	pthread_mutex_lock(&f->mu);
	for (;;) {
		for (int i = 0; i < f->npool; i++) {
			if (!f->busy[i]) {
				f->busy[i] = true;
				pthread_mutex_unlock(&f->mu);
				return i;
			}
		}
		pthread_cond_wait(&f->cv, &f->mu);
	}
}

static void release(struct dk_fallback *f, int i)
{
	pthread_mutex_lock(&f->mu);
	f->busy[i] = false;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static enum dk_status finish(struct dk_fallback *f, struct dk_fallback_response *r, enum dk_status st,
			     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum dk_status finish(struct dk_fallback *f, struct dk_fallback_response *r, enum dk_status st,
			     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	dk_verr(r->error, sizeof r->error, st, fmt, ap);
	va_end(ap);
	scrub(f, r->error);
	pthread_mutex_lock(&f->mu);
	memcpy(f->err, r->error, sizeof f->err);
	pthread_mutex_unlock(&f->mu);
	return st;
}

/* Restores placeholders inside every string of a JSON value (so values with
 * quotes or backslashes stay valid JSON). */
static int unredact_json(const struct dk_redact_map *m, json_t *v)
{
	if (json_is_string(v)) {
		char *o;
		size_t ol;
		if (dk_unredact(m, json_string_value(v), json_string_length(v), &o, &ol) != DK_OK)
			return -1;
		int rc = json_string_setn(v, o, ol);
		free(o);
		return rc;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e) if (unredact_json(m, e)) return -1;
	} else if (json_is_object(v)) {
		const char *k;
		json_t *e;
		json_object_foreach(v, k, e) if (unredact_json(m, e)) return -1;
	}
	return 0;
}

/* The request body (compact JSON).  Redacts message contents into map when
 * map is non-NULL. */
static char *build_body(struct dk_fallback *f, const struct dk_fallback_request *req,
			struct dk_redact_map **map, bool redact, char *err, size_t n)
{
	json_t *root = json_object(), *msgs = json_array();
	if (!root || !msgs)
		goto oom;
	json_object_set_new(root, "model", json_string(f->model));
	json_object_set_new(root, "messages", msgs);
	for (size_t i = 0; i < req->n_messages; i++) {
		const struct dk_fallback_message *m = &req->messages[i];
		const char *c = m->content ? m->content : "";
		char *red = NULL;
		size_t rl = strlen(c);
		if (redact) {
			if (dk_redact(f->red, c, rl, &red, &rl, map) != DK_OK)
				goto oom;
			c = red;
		}
		json_t *o = json_object();
		json_t *s = json_stringn(c, rl);
		free(red);
		if (!o || !s) {
			json_decref(o);
			json_decref(s);
			json_decref(root);
			dk_err(err, n, DK_SKIP, "message %zu is not valid UTF-8", i);
			return NULL;
		}
		json_object_set_new(o, "role", json_string(m->role ? m->role : "user"));
		json_object_set_new(o, "content", s);
		json_array_append_new(msgs, o);
	}
	if (req->max_tokens > 0)
		json_object_set_new(root, "max_tokens", json_integer(req->max_tokens));
	if (req->temperature >= 0)
		json_object_set_new(root, "temperature", json_real(req->temperature));
	if (req->seed >= 0)
		json_object_set_new(root, "seed", json_integer(req->seed));
	if (req->json_schema) {
		json_t *js = json_object(), *rf = json_object();
		json_object_set_new(js, "name", json_string(req->schema_name ? req->schema_name : "result"));
		json_object_set(js, "schema", (json_t *)req->json_schema);
		json_object_set_new(js, "strict", json_true());
		json_object_set_new(rf, "type", json_string("json_schema"));
		json_object_set_new(rf, "json_schema", js);
		json_object_set_new(root, "response_format", rf);
	}
	json_object_set_new(root, "stream", json_false());
	char *body = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!body)
		dk_err(err, n, DK_FATAL, "cannot serialise the request");
	return body;
oom:
	json_decref(root);
	json_decref(msgs);
	dk_err(err, n, DK_FATAL, "out of memory");
	return NULL;
}

/* The "error.message" of an OpenAI-style error body, shortened. */
static void server_message(const struct dk_buf *b, char *out, size_t n)
{
	out[0] = 0;
	json_t *j = json_loadb(b->data ? b->data : "", b->len, 0, NULL);
	json_t *e = json_object_get(j, "error");
	const char *m = json_string_value(json_object_get(e, "message"));
	if (!m)
		m = json_string_value(e);
	if (m)
		snprintf(out, n, ": %.160s", m);
	json_decref(j);
}

static bool retryable_http(long s)
{
	return s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

static bool fatal_curl(CURLcode c)
{
	switch (c) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_OUT_OF_MEMORY:
		return true;
	default:
		return false;
	}
}

/* Parses a 200 answer into r; DK_OK or DK_SKIP with a reason in why. */
static enum dk_status parse_answer(const struct xfer *x, const struct dk_redact_map *map, bool want_json,
				   struct dk_fallback_response *r, char *why, size_t n)
{
	json_error_t je;
	json_t *j = json_loadb(x->body.data ? x->body.data : "", x->body.len, 0, &je);
	if (!j)
		return dk_err(why, n, DK_SKIP, "malformed json in the answer (%s at byte %d)", je.text, je.position);
	enum dk_status st = DK_OK;
	json_t *choices = json_object_get(j, "choices");
	json_t *c0 = json_array_get(choices, 0);
	json_t *msg = json_object_get(c0, "message");
	json_t *content = json_object_get(msg, "content");
	if (!json_is_object(j) || !json_is_array(choices)) {
		st = dk_err(why, n, DK_SKIP, "answer has no choices");
		goto out;
	}
	if (!c0 || !json_is_object(msg)) {
		st = dk_err(why, n, DK_SKIP, "answer has an empty choices list");
		goto out;
	}
	if (!json_is_string(content)) {
		const char *refusal = json_string_value(json_object_get(msg, "refusal"));
		st = dk_err(why, n, DK_SKIP, "answer has no content%s", refusal ? " (the model refused)" : "");
		goto out;
	}
	const char *fr = json_string_value(json_object_get(c0, "finish_reason"));
	snprintf(r->finish_reason, sizeof r->finish_reason, "%s", fr ? fr : "");
	json_t *usage = json_object_get(j, "usage");
	json_t *pt = json_object_get(usage, "prompt_tokens"), *ct = json_object_get(usage, "completion_tokens");
	r->prompt_tokens = json_is_integer(pt) ? json_integer_value(pt) : -1;
	r->completion_tokens = json_is_integer(ct) ? json_integer_value(ct) : -1;
	const char *model = json_string_value(json_object_get(j, "model"));
	if (model && *model)
		snprintf(r->model, sizeof r->model, "%s", model);
	const char *txt = json_string_value(content);
	size_t tl = json_string_length(content);
	char *out = NULL;
	size_t ol = 0;
	if (map && want_json) {
		json_t *inner = json_loadb(txt, tl, 0, NULL);
		if (inner) {
			if (unredact_json(map, inner) == 0)
				out = json_dumps(inner, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
			json_decref(inner);
			if (out)
				ol = strlen(out);
		}
	}
	if (!out && map) {
		if (dk_unredact(map, txt, tl, &out, &ol) != DK_OK)
			out = NULL;
	} else if (!out) {
		out = malloc(tl + 1);
		if (out) {
			memcpy(out, txt, tl);
			out[tl] = 0;
			ol = tl;
		}
	}
	if (!out) {
		st = dk_err(why, n, DK_FATAL, "out of memory");
		goto out;
	}
	r->content = out;
	r->content_len = ol;
out:
	json_decref(j);
	return st;
}

enum dk_status dk_fallback_chat(struct dk_fallback *f, const struct dk_fallback_request *req,
				struct dk_fallback_response *r)
{
	memset(r, 0, sizeof *r);
	r->prompt_tokens = r->completion_tokens = -1;
	snprintf(r->host, sizeof r->host, "%s", f->host);
	snprintf(r->model, sizeof r->model, "%s", f->model);

	/* the gate, again: the runner cannot forget it */
	char why[160];
	if (!dk_route_allowed(&f->p, req->sensitive, why, sizeof why))
		return finish(f, r, DK_FATAL, "fallback to '%s' refused: %s", f->host, why);
	pthread_mutex_lock(&f->mu);
	bool broken = f->audit_broken;
	pthread_mutex_unlock(&f->mu);
	if (broken)
		return finish(f, r, DK_FATAL, "fallback to '%s' refused: the audit file cannot be written", f->host);
	if (!req->n_messages)
		return finish(f, r, DK_SKIP, "fallback to '%s': no messages", f->host);

	struct dk_redact_map *map = NULL;
	bool redact = f->p.redact;
	char err[256];
	char *body = build_body(f, req, redact ? &map : NULL, redact, err, sizeof err);
	if (!body) {
		dk_redact_map_free(map);
		return finish(f, r, DK_SKIP, "fallback to '%s': %s", f->host, err);
	}
	size_t blen = strlen(body);
	uint8_t dg[32];
	dk_sha256(body, blen, dg);
	dk_sha256_hex(dg, r->body_sha256);
	r->body_bytes = blen;
	for (int t = 0; map && t < DK_PHI_COUNT; t++)
		r->redactions[t] = dk_redact_map_count(map, t);

	int slot = acquire(f);
	CURL *h = f->pool[slot];
	pthread_mutex_lock(&f->mu);
	uint64_t rs = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (++f->seq * 0xbf58476d1ce4e5b9ull) ^
		      (uint64_t)(uintptr_t)r;
	pthread_mutex_unlock(&f->mu);
	rs |= 1;

	int max_attempts = 1 + f->p.max_retries;
	enum dk_status st = DK_SKIP;
	char last[256] = "";
	bool exhausted = false;
	struct xfer x = {0};
	for (int attempt = 1; attempt <= max_attempts; attempt++) {
		if (atomic_load(&f->cancelled)) {
			snprintf(last, sizeof last, "cancelled");
			st = DK_SKIP;
			break;
		}
		dk_buf_clear(&x.body);
		x.too_big = false;
		x.retry_after_ms = -1;
		char ebuf[CURL_ERROR_SIZE] = "";
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
		CURLcode cc = curl_easy_perform(h);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
		long status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		r->attempts = attempt;
		r->http_status = status;

		bool retry = false;
		const char *outcome = "error";
		if (cc != CURLE_OK) {
			if (cc == CURLE_OPERATION_TIMEDOUT)
				snprintf(last, sizeof last, "timed out after %ld ms", f->p.timeout_ms);
			else if (cc == CURLE_ABORTED_BY_CALLBACK)
				snprintf(last, sizeof last, "cancelled");
			else if (x.too_big)
				snprintf(last, sizeof last, "answer larger than %u bytes", MAX_RESPONSE_BYTES);
			else
				snprintf(last, sizeof last, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
			scrub(f, last);
			if (fatal_curl(cc))
				st = DK_FATAL;
			else if (x.too_big || cc == CURLE_ABORTED_BY_CALLBACK)
				st = DK_SKIP;
			else
				retry = true;
		} else if (status == 200) {
			char pw[224];
			st = parse_answer(&x, map, req->json_schema != NULL, r, pw, sizeof pw);
			if (st == DK_OK)
				outcome = "ok";
			else
				snprintf(last, sizeof last, "%s", pw);
		} else {
			char sm[192];
			server_message(&x.body, sm, sizeof sm);
			snprintf(last, sizeof last, "http %ld%s", status, sm);
			scrub(f, last);
			if (retryable_http(status))
				retry = true;
			else if (status == 401 || status == 403 || status == 404)
				st = DK_FATAL;
			else
				st = DK_SKIP;
		}
		if (retry)
			outcome = attempt < max_attempts ? "retry" : "error";
		char aerr[64];
		if (cc != CURLE_OK)
			snprintf(aerr, sizeof aerr, "%s", cc == CURLE_OPERATION_TIMEDOUT ? "timeout" : curl_easy_strerror(cc));
		else if (status != 200)
			snprintf(aerr, sizeof aerr, "http %ld", status);
		else if (st != DK_OK)
			snprintf(aerr, sizeof aerr, "bad answer");
		struct dk_audit_entry ae = {
			.record_id = req->record_id,
			.host = f->host,
			.model = f->model,
			.bytes = blen,
			.sha256 = r->body_sha256,
			.redactions = r->redactions,
			.redacted = redact,
			.sensitive = req->sensitive,
			.attempt = attempt,
			.status = status,
			.outcome = outcome,
			.error = (st == DK_OK && !retry) ? NULL : aerr,
		};
		if (dk_audit_write(f->audit, &ae) != 0) {
			int saved = errno;
			pthread_mutex_lock(&f->mu);
			f->audit_broken = true;
			pthread_mutex_unlock(&f->mu);
			errno = saved;
			if (st == DK_OK)
				dk_fallback_response_free(r);
			snprintf(last, sizeof last, "cannot write the audit file: %s", strerror(errno));
			st = DK_FATAL;
			break;
		}
		if (!retry)
			break;
		if (attempt == max_attempts) {
			st = DK_SKIP;
			exhausted = true;
			break;
		}
		long wait;
		if (x.retry_after_ms >= 0) {
			wait = x.retry_after_ms > f->p.retry_after_max_ms ? f->p.retry_after_max_ms : x.retry_after_ms;
		} else {
			long cap = f->p.backoff_base_ms;
			for (int k = 1; k < attempt && cap < f->p.backoff_max_ms; k++)
				cap *= 2;
			if (cap > f->p.backoff_max_ms)
				cap = f->p.backoff_max_ms;
			wait = cap > 0 ? (long)(rng_next(&rs) % (uint64_t)(cap + 1)) : 0;
		}
		sleep_ms(f, wait);
	}
	release(f, slot);
	dk_buf_free(&x.body);
	explicit_bzero(body, blen);
	free(body);
	dk_redact_map_free(map);
	if (st == DK_OK)
		return DK_OK;
	if (exhausted)
		return finish(f, r, st, "fallback to '%s': %d attempt%s failed: %s", f->host, r->attempts,
			      r->attempts == 1 ? "" : "s", last);
	return finish(f, r, st, "fallback to '%s': %s", f->host, last);
}
