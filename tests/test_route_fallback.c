/* Fallback client against a real HTTP(S) server on 127.0.0.1
 * (tests/helpers/fake_openai.py): answers, retries, Retry-After, failures,
 * timeouts, TLS with a private CA, the PHI gate, redaction on the wire, the
 * audit trail, and the API key never leaking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "docket/route.h"
#include "runner/calls.h"
#include "testutil.h"
#include "util/sha256.h"

#define KEY_ENV "DK_TEST_FALLBACK_KEY"
#define KEY_VALUE "sk-docket-test-9f8e7d6c5b4a39281706-SECRET"

struct server {
	pid_t pid;
	int port;
	bool tls;
	char log[512];
	char base[600];
};

static char *tmp;           /* per-run scratch directory */
static struct server plain; /* shared plain-HTTP server */
static char ca_pem[600];    /* test CA, created by the TLS test */

static int start_server(struct server *s, const char *name, const char *cert, const char *key)
{
	char portfile[512];
	memset(s, 0, sizeof *s);
	snprintf(portfile, sizeof portfile, "%s/%s.port", tmp, name);
	snprintf(s->log, sizeof s->log, "%s/%s.log", tmp, name);
	unlink(portfile);
	s->tls = cert != NULL;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char errf[600];
		snprintf(errf, sizeof errf, "%s/%s.stderr", tmp, name);
		int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		const char *py = dk_test_src("tests/helpers/fake_openai.py");
		if (cert)
			execlp("python3", "python3", py, "--port", "0", "--portfile", portfile, "--log", s->log, "--tls",
			       cert, key, (char *)NULL);
		else
			execlp("python3", "python3", py, "--port", "0", "--portfile", portfile, "--log", s->log,
			       (char *)NULL);
		_exit(127);
	}
	s->pid = pid;
	for (int i = 0; i < 200; i++) {
		char *p = dk_test_read_file(portfile, NULL);
		if (p) {
			s->port = atoi(p);
			free(p);
			snprintf(s->base, sizeof s->base, "%s://%s:%d/v1", cert ? "https" : "http",
				 cert ? "localhost" : "127.0.0.1", s->port);
			return s->port > 0 ? 0 : -1;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return -1;
		usleep(50000);
	}
	return -1;
}

static void stop_server(struct server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

static size_t sink(char *p, size_t a, size_t b, void *ud)
{
	(void)p;
	(void)ud;
	return a * b;
}

/* POST /control {"modes": [...], "reset_log": true} */
static void control(struct server *s, const char *modes_json)
{
	char url[128], body[1024];
	snprintf(url, sizeof url, "%s://%s:%d/control", s->tls ? "https" : "http",
		 s->tls ? "localhost" : "127.0.0.1", s->port);
	snprintf(body, sizeof body, "{\"modes\": %s, \"reset_log\": true}", modes_json);
	CURL *h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	if (s->tls)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_pem);
	CURLcode rc = curl_easy_perform(h);
	long st = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(h);
	assert_int_equal(rc, CURLE_OK);
	assert_int_equal(st, 200);
}

/* The requests the server logged, as a JSON array (caller decrefs). */
static json_t *server_log(struct server *s)
{
	json_t *arr = json_array();
	char *t = dk_test_read_file(s->log, NULL);
	if (!t)
		return arr;
	for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
		json_t *j = json_loads(line, 0, NULL);
		assert_non_null(j);
		json_array_append_new(arr, j);
	}
	free(t);
	return arr;
}

static json_t *read_jsonl(const char *path)
{
	json_t *arr = json_array();
	char *t = dk_test_read_file(path, NULL);
	if (!t)
		return arr;
	for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
		json_t *j = json_loads(line, 0, NULL);
		assert_non_null(j);
		json_array_append_new(arr, j);
	}
	free(t);
	return arr;
}

static char audit_path[600];

static struct dk_fallback_params params_for(struct server *s)
{
	struct dk_fallback_params p = dk_fallback_default_params();
	p.base_url = s->base;
	p.model = "test-model";
	p.key_env = KEY_ENV;
	p.timeout_ms = 10000;
	p.connect_timeout_ms = 5000;
	p.backoff_base_ms = 10;
	p.backoff_max_ms = 50;
	p.audit_path = audit_path;
	return p;
}

static struct dk_fallback *client(struct dk_fallback_params *p)
{
	char err[DK_ERRMSG_MAX];
	struct dk_fallback *f = dk_fallback_new(p, err, sizeof err);
	if (!f)
		fail_msg("dk_fallback_new: %s", err);
	return f;
}

static struct dk_fallback_request user_req(const char *text, struct dk_fallback_message msgs[2])
{
	msgs[0] = (struct dk_fallback_message){"system", "You summarise medical notes."};
	msgs[1] = (struct dk_fallback_message){"user", text};
	return (struct dk_fallback_request){
		.messages = msgs, .n_messages = 2, .max_tokens = 64, .temperature = 0, .seed = 7,
		.record_id = "notes/a.txt#0", .sensitive = false,
	};
}

static void fresh_audit(const char *name)
{
	snprintf(audit_path, sizeof audit_path, "%s/%s.audit.jsonl", tmp, name);
	unlink(audit_path);
}

/* ------------------------------------------------------------------ tests */

static void test_policy(void **state)
{
	(void)state;
	struct dk_fallback_params p = dk_fallback_default_params();
	char why[128];
	assert_false(dk_route_allowed(&p, true, why, sizeof why));
	assert_non_null(strstr(why, "allow_sensitive"));
	assert_true(dk_route_allowed(&p, false, why, sizeof why));
	p.allow_sensitive = true;
	assert_true(dk_route_allowed(&p, true, why, sizeof why));
	assert_string_equal(why, "allowed after redaction");
	p.redact = false;
	assert_true(dk_route_allowed(&p, true, why, sizeof why));
	assert_string_equal(why, "allowed");

	unsigned w = 99;
	char err[256];
	assert_int_equal(dk_fallback_parse_when("over_context, local_error", &w, err, sizeof err), 0);
	assert_int_equal(w, DK_FALLBACK_OVER_CONTEXT | DK_FALLBACK_LOCAL_ERROR);
	assert_int_equal(dk_fallback_parse_when("always", &w, err, sizeof err), 0);
	assert_int_equal(w, DK_FALLBACK_ALWAYS);
	assert_int_equal(dk_fallback_parse_when("", &w, err, sizeof err), 0);
	assert_int_equal(w, 0);
	assert_int_equal(dk_fallback_parse_when("over_context,sometimes", &w, err, sizeof err), -1);
	assert_non_null(strstr(err, "'sometimes'"));
	char buf[128];
	dk_fallback_when_str(DK_FALLBACK_INVALID_OUTPUT | DK_FALLBACK_ALWAYS, buf, sizeof buf);
	assert_string_equal(buf, "invalid_output,always");

	p = dk_fallback_default_params();
	assert_false(dk_fallback_wants(&p, DK_FALLBACK_OVER_CONTEXT)); /* no url */
	p.base_url = "http://127.0.0.1:1/v1";
	p.when = DK_FALLBACK_OVER_CONTEXT;
	assert_true(dk_fallback_wants(&p, DK_FALLBACK_OVER_CONTEXT));
	assert_false(dk_fallback_wants(&p, DK_FALLBACK_LOCAL_ERROR));
	p.when = DK_FALLBACK_ALWAYS;
	assert_true(dk_fallback_wants(&p, DK_FALLBACK_LOCAL_ERROR));

	json_t *j = json_loads("{\"url\": \"https://x/v1\", \"model\": \"m\", \"key_env\": \"K\", "
			       "\"when\": [\"over_context\", \"invalid_output\"], \"allow_sensitive\": true, "
			       "\"redact\": false, \"timeout_ms\": 5000, \"max_concurrency\": 2}", 0, NULL);
	p = dk_fallback_default_params();
	assert_int_equal(dk_fallback_params_from_json(&p, j, err, sizeof err), 0);
	assert_string_equal(p.base_url, "https://x/v1");
	assert_string_equal(p.key_env, "K");
	assert_int_equal(p.when, DK_FALLBACK_OVER_CONTEXT | DK_FALLBACK_INVALID_OUTPUT);
	assert_true(p.allow_sensitive);
	assert_false(p.redact);
	assert_int_equal(p.timeout_ms, 5000);
	assert_int_equal(p.max_concurrency, 2);
	json_decref(j);
	j = json_loads("{\"allow_sensitve\": true}", 0, NULL);
	assert_int_equal(dk_fallback_params_from_json(&p, j, err, sizeof err), -1);
	assert_non_null(strstr(err, "allow_sensitve"));
	json_decref(j);
}

static void test_new_errors(void **state)
{
	(void)state;
	fresh_audit("new");
	struct dk_fallback_params p = params_for(&plain);
	char err[DK_ERRMSG_MAX];
	p.key_env = "DK_TEST_NO_SUCH_KEY_VAR";
	unsetenv("DK_TEST_NO_SUCH_KEY_VAR");
	assert_null(dk_fallback_new(&p, err, sizeof err));
	assert_non_null(strstr(err, "'DK_TEST_NO_SUCH_KEY_VAR'"));
	p = params_for(&plain);
	p.base_url = "http://user:sk-inline-secret@127.0.0.1:9/v1";
	assert_null(dk_fallback_new(&p, err, sizeof err));
	assert_null(strstr(err, "sk-inline-secret"));
	assert_non_null(strstr(err, "credentials"));
	p = params_for(&plain);
	p.base_url = "ftp://127.0.0.1/v1";
	assert_null(dk_fallback_new(&p, err, sizeof err));
	assert_non_null(strstr(err, "http"));
	p = params_for(&plain);
	p.audit_path = NULL;
	assert_null(dk_fallback_new(&p, err, sizeof err));
	assert_non_null(strstr(err, "audit"));
	p = params_for(&plain);
	p.ca_bundle = "/nonexistent/ca.pem";
	assert_null(dk_fallback_new(&p, err, sizeof err));
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
	p = params_for(&plain);
	struct dk_fallback *f = client(&p);
	char host[64];
	snprintf(host, sizeof host, "127.0.0.1:%d", plain.port);
	assert_string_equal(dk_fallback_host(f), host);
	assert_string_equal(dk_fallback_model(f), "test-model");
	dk_fallback_free(f);
	dk_fallback_free(NULL);
}

static void test_ok_and_audit(void **state)
{
	(void)state;
	fresh_audit("ok");
	control(&plain, "[]");
	struct dk_fallback_params p = params_for(&plain);
	struct dk_fallback *f = client(&p);
	struct dk_fallback_message m[2];
	struct dk_fallback_request rq = user_req("Summarise: cough for three days.", m);
	struct dk_fallback_response r;
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
	assert_string_equal(r.content, "echo: Summarise: cough for three days.");
	assert_string_equal(r.finish_reason, "stop");
	assert_true(r.prompt_tokens > 0);
	assert_true(r.completion_tokens > 0);
	assert_int_equal(r.http_status, 200);
	assert_int_equal(r.attempts, 1);
	assert_string_equal(r.model, "test-model-served");
	char host[64];
	snprintf(host, sizeof host, "127.0.0.1:%d", plain.port);
	assert_string_equal(r.host, host);

	/* what the server got: the exact bytes whose hash the audit holds */
	json_t *log = server_log(&plain);
	assert_int_equal(json_array_size(log), 1);
	json_t *e = json_array_get(log, 0);
	const char *body = json_string_value(json_object_get(e, "body"));
	assert_string_equal(json_string_value(json_object_get(e, "path")), "/v1/chat/completions");
	assert_string_equal(json_string_value(json_object_get(e, "auth")), "Bearer " KEY_VALUE);
	uint8_t d[32];
	char hex[65];
	dk_sha256(body, strlen(body), d);
	dk_sha256_hex(d, hex);
	assert_string_equal(hex, r.body_sha256);
	assert_int_equal(strlen(body), r.body_bytes);
	json_t *sent = json_loads(body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(sent, "model")), "test-model");
	assert_int_equal(json_integer_value(json_object_get(sent, "max_tokens")), 64);
	assert_int_equal(json_integer_value(json_object_get(sent, "seed")), 7);
	assert_int_equal(json_array_size(json_object_get(sent, "messages")), 2);
	assert_null(json_object_get(sent, "response_format"));
	json_decref(sent);

	json_t *audit = read_jsonl(audit_path);
	assert_int_equal(json_array_size(audit), 1);
	json_t *a = json_array_get(audit, 0);
	assert_string_equal(json_string_value(json_object_get(a, "sha256")), hex);
	assert_int_equal(json_integer_value(json_object_get(a, "bytes")), (json_int_t)strlen(body));
	assert_string_equal(json_string_value(json_object_get(a, "record_id")), "notes/a.txt#0");
	assert_string_equal(json_string_value(json_object_get(a, "host")), host);
	assert_int_equal(json_integer_value(json_object_get(a, "status")), 200);
	assert_int_equal(json_integer_value(json_object_get(a, "attempt")), 1);
	assert_string_equal(json_string_value(json_object_get(a, "outcome")), "ok");
	const char *t = json_string_value(json_object_get(a, "time"));
	assert_non_null(t);
	assert_int_equal(strlen(t), 24); /* 2026-01-02T03:04:05.678Z */
	assert_int_equal(t[23], 'Z');
	assert_null(json_object_get(a, "body"));
	json_decref(audit);
	json_decref(log);
	struct stat st;
	assert_int_equal(stat(audit_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	dk_fallback_response_free(&r);
	assert_null(r.content);
	dk_fallback_free(f);
}

static void test_json_schema(void **state)
{
	(void)state;
	fresh_audit("schema");
	control(&plain, "[]");
	struct dk_fallback_params p = params_for(&plain);
	struct dk_fallback *f = client(&p);
	struct dk_fallback_message m[2];
	struct dk_fallback_request rq = user_req("Patient: Ada Lovelace \"the countess\", DOB 12/10/1915.", m);
	json_t *schema = json_loads("{\"type\":\"object\",\"properties\":{\"echo\":{\"type\":\"string\"}},"
				    "\"required\":[\"echo\"],\"additionalProperties\":false}", 0, NULL);
	rq.json_schema = schema;
	rq.schema_name = "summary";
	struct dk_fallback_response r;
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
	json_t *log = server_log(&plain);
	json_t *sent = json_loads(json_string_value(json_object_get(json_array_get(log, 0), "body")), 0, NULL);
	json_t *rf = json_object_get(sent, "response_format");
	assert_string_equal(json_string_value(json_object_get(rf, "type")), "json_schema");
	json_t *js = json_object_get(rf, "json_schema");
	assert_string_equal(json_string_value(json_object_get(js, "name")), "summary");
	assert_true(json_is_true(json_object_get(js, "strict")));
	assert_true(json_equal(json_object_get(js, "schema"), schema));
	/* the name and date went out redacted; the answer has them restored,
	 * inside valid JSON even though the value has quotes */
	const char *user = json_string_value(json_object_get(json_array_get(json_object_get(sent, "messages"), 1), "content"));
	assert_null(strstr(user, "Lovelace"));
	assert_null(strstr(user, "12/10/1915"));
	json_t *ans = json_loads(r.content, 0, NULL);
	assert_non_null(ans);
	assert_string_equal(json_string_value(json_object_get(ans, "echo")), rq.messages[1].content);
	assert_true(r.redactions[DK_PHI_NAME] >= 1);
	assert_int_equal(r.redactions[DK_PHI_DATE], 1);
	json_t *audit = read_jsonl(audit_path);
	json_t *red = json_object_get(json_array_get(audit, 0), "redactions");
	assert_int_equal(json_integer_value(json_object_get(red, "DATE")), 1);
	assert_true(json_is_true(json_object_get(json_array_get(audit, 0), "redacted")));
	json_decref(audit);
	json_decref(ans);
	json_decref(sent);
	json_decref(log);
	json_decref(schema);
	dk_fallback_response_free(&r);
	dk_fallback_free(f);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_retry_after(void **state)
{
	(void)state;
	fresh_audit("retry");
	struct dk_fallback_params p = params_for(&plain);
	p.backoff_base_ms = 0; /* any wait seen below is the server's Retry-After */
	p.backoff_max_ms = 0;
	struct dk_fallback *f = client(&p);
	struct dk_fallback_message m[2];
	struct dk_fallback_request rq = user_req("hello", m);
	struct dk_fallback_response r;

	control(&plain, "[\"429:1\", \"200\"]");
	double t0 = now_s();
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
	double waited = now_s() - t0;
	assert_int_equal(r.attempts, 2);
	assert_true(waited >= 0.9); /* a lower bound: sleeping cannot be shorter */
	dk_fallback_response_free(&r);
	json_t *log = server_log(&plain);
	assert_int_equal(json_array_size(log), 2);
	json_decref(log);
	json_t *audit = read_jsonl(audit_path);
	assert_int_equal(json_array_size(audit), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 0), "outcome")), "retry");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(audit, 0), "status")), 429);
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 1), "outcome")), "ok");
	json_decref(audit);

	/* Retry-After as an HTTP-date */
	control(&plain, "[\"429date:2\", \"200\"]");
	t0 = now_s();
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
	assert_int_equal(r.attempts, 2);
	assert_true(now_s() - t0 >= 0.5); /* whole seconds: >= 1 s minus rounding */
	dk_fallback_response_free(&r);
	dk_fallback_free(f);

	/* a Retry-After beyond the cap is capped */
	p.retry_after_max_ms = 50;
	f = client(&p);
	control(&plain, "[\"429:600\", \"200\"]");
	t0 = now_s();
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
	assert_int_equal(r.attempts, 2);
	assert_true(now_s() - t0 < 60);
	dk_fallback_response_free(&r);
	dk_fallback_free(f);
}

static void test_5xx_exhausted(void **state)
{
	(void)state;
	fresh_audit("5xx");
	struct dk_fallback_params p = params_for(&plain);
	struct dk_fallback *f = client(&p);
	struct dk_fallback_message m[2];
	struct dk_fallback_request rq = user_req("hello", m);
	struct dk_fallback_response r;
	control(&plain, "[\"500\", \"502\", \"503\", \"200\"]");
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_SKIP);
	assert_null(r.content);
	assert_int_equal(r.attempts, 3);
	assert_int_equal(r.http_status, 503);
	char want[256];
	snprintf(want, sizeof want, "fallback to '127.0.0.1:%d': 3 attempts failed: http 503: fake error 503",
		 plain.port);
	assert_string_equal(r.error, want);
	assert_string_equal(dk_fallback_error(f), want);
	json_t *log = server_log(&plain);
	assert_int_equal(json_array_size(log), 3);
	json_decref(log);
	json_t *audit = read_jsonl(audit_path);
	assert_int_equal(json_array_size(audit), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 2), "outcome")), "error");
	json_decref(audit);

	/* 504 then success: retried */
	control(&plain, "[\"504\", \"200\"]");
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
	assert_int_equal(r.attempts, 2);
	dk_fallback_response_free(&r);

	/* 400: not retried, skip; 401/404: fatal */
	control(&plain, "[\"400\"]");
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_SKIP);
	assert_int_equal(r.attempts, 1);
	assert_non_null(strstr(r.error, "http 400"));
	control(&plain, "[\"401\"]");
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_FATAL);
	assert_int_equal(r.attempts, 1);
	control(&plain, "[\"404\"]");
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_FATAL);
	dk_fallback_free(f);
}

static void test_bad_answers(void **state)
{
	(void)state;
	fresh_audit("bad");
	struct dk_fallback_params p = params_for(&plain);
	struct dk_fallback *f = client(&p);
	struct dk_fallback_message m[2];
	struct dk_fallback_request rq = user_req("hello", m);
	struct dk_fallback_response r;

	control(&plain, "[\"malformed\"]");
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_SKIP);
	assert_int_equal(r.attempts, 1);
	assert_non_null(strstr(r.error, "malformed json"));
	assert_null(r.content);

	control(&plain, "[\"nochoices\"]");
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_SKIP);
	assert_non_null(strstr(r.error, "no choices"));

	/* truncated body: a transport failure, retried, then given up */
	control(&plain, "[\"truncated\", \"truncated\", \"truncated\"]");
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_SKIP);
	assert_int_equal(r.attempts, 3);
	assert_non_null(strstr(r.error, "3 attempts failed"));
	assert_null(r.content);
	control(&plain, "[\"truncated\", \"200\"]");
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
	assert_int_equal(r.attempts, 2);
	assert_string_equal(r.content, "echo: hello");
	dk_fallback_response_free(&r);

	/* connection closed without an answer (libcurl itself resends once on
	 * a fresh connection when a kept-alive one died: more drops queued) */
	control(&plain, "[\"drop\", \"drop\", \"drop\", \"drop\", \"drop\", \"drop\"]");
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_SKIP);
	assert_int_equal(r.attempts, 3);

	/* a slow answer times out */
	dk_fallback_free(f);
	p.timeout_ms = 300;
	p.max_retries = 0;
	f = client(&p);
	control(&plain, "[\"slow:3\"]");
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_SKIP);
	assert_int_equal(r.attempts, 1);
	assert_non_null(strstr(r.error, "timed out"));
	dk_fallback_free(f);

	/* nothing listening: connection refused, retried, skipped */
	p = params_for(&plain);
	p.base_url = "http://127.0.0.1:1/v1";
	f = client(&p);
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_SKIP);
	assert_int_equal(r.attempts, 3);
	assert_int_equal(r.http_status, 0);
	dk_fallback_free(f);
}

static void test_sensitive_gate(void **state)
{
	(void)state;
	fresh_audit("gate");
	control(&plain, "[]");
	struct dk_fallback_params p = params_for(&plain);
	struct dk_fallback *f = client(&p);
	struct dk_fallback_message m[2];
	struct dk_fallback_request rq = user_req("Patient: Ada Lovelace, MRN 12345678.", m);
	rq.sensitive = true;
	struct dk_fallback_response r;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_FATAL);
		assert_int_equal(r.attempts, 0);
		assert_int_equal(r.body_bytes, 0);
		assert_non_null(strstr(r.error, "allow_sensitive"));
	}
	dk_fallback_free(f);
	/* the server saw nothing at all, and nothing was audited as sent */
	json_t *log = server_log(&plain);
	assert_int_equal(json_array_size(log), 0);
	json_decref(log);
	json_t *audit = read_jsonl(audit_path);
	assert_int_equal(json_array_size(audit), 0);
	json_decref(audit);

	/* allowed + redact: goes, redacted; allowed without redact: goes raw */
	p.allow_sensitive = true;
	f = client(&p);
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
	dk_fallback_response_free(&r);
	dk_fallback_free(f);
	p.redact = false;
	f = client(&p);
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
	dk_fallback_response_free(&r);
	dk_fallback_free(f);
	log = server_log(&plain);
	assert_int_equal(json_array_size(log), 2);
	assert_null(strstr(json_string_value(json_object_get(json_array_get(log, 0), "body")), "Lovelace"));
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(log, 1), "body")), "Lovelace"));
	json_decref(log);
}

/* Planted identifiers in real notes: none reaches the server; the echoed
 * answer comes back with the originals restored. */
static const char *const planted[][2] = {
	{"Patient: Jonathan Whitfield. ", "Whitfield"},
	{"DOB: 03/14/1962. ", "03/14/1962"},
	{"MRN: 48213377. ", "48213377"},
	{"Phone: (555) 867-5309. ", "867-5309"},
	{"Email jwhitfield@example-mail.net. ", "jwhitfield@example-mail.net"},
	{"SSN 412-55-9087. ", "412-55-9087"},
	{"Lives at 1425 West Maple Avenue, Springfield, IL 62704. ", "Maple Avenue"},
	{"Zip noted as IL 62704. ", "62704"},
	{"Seen by Dr. Evangeline Okonkwo on Feb 7, 2021. ", "Okonkwo"},
	{"Seen on Feb 7, 2021. ", "Feb 7, 2021"},
	{"Portal https://mychart.example-health.org/p/1. ", "mychart.example-health.org"},
	{"Device 192.168.44.21. ", "192.168.44.21"},
	{"License plate 7XQZ219. ", "7XQZ219"},
	{"Whitfield agrees with the plan. ", "Whitfield"},
};

static void test_redaction_on_the_wire(void **state)
{
	(void)state;
	fresh_audit("wire");
	control(&plain, "[]");
	struct dk_fallback_params p = params_for(&plain);
	p.allow_sensitive = true;
	p.redact = true;
	struct dk_fallback *f = client(&p);
	size_t np = sizeof planted / sizeof planted[0];
	int sent = 0;
	for (int id = 3; id <= 440 && sent < 8; id += 53) {
		char rel[64];
		snprintf(rel, sizeof rel, "corpus/mtsamples/docs/mts_%04d.txt", id);
		char *note = dk_test_read_file(dk_test_shared(rel), NULL);
		if (!note)
			continue;
		size_t nl = strlen(note) > 3000 ? 3000 : strlen(note);
		while (nl && (note[nl - 1] & 0xc0) == 0x80)
			nl--; /* keep UTF-8 whole */
		if (nl && (unsigned char)note[nl - 1] >= 0xc0)
			nl--;
		note[nl] = 0;
		/* planted sentences: half in front, half after the note */
		size_t cap = nl + 4096;
		char *text = malloc(cap);
		size_t k = 0;
		for (size_t i = 0; i < np; i++) {
			if (i == np / 2) {
				memcpy(text + k, note, nl);
				k += nl;
				text[k++] = ' ';
			}
			size_t l = strlen(planted[(i + (size_t)id) % np][0]);
			memcpy(text + k, planted[(i + (size_t)id) % np][0], l);
			k += l;
		}
		text[k] = 0;
		struct dk_fallback_message m[2];
		struct dk_fallback_request rq = user_req(text, m);
		rq.sensitive = true;
		struct dk_fallback_response r;
		assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
		char want[8192];
		snprintf(want, sizeof want, "echo: %s", text);
		assert_string_equal(r.content, want); /* restored locally */
		dk_fallback_response_free(&r);
		free(text);
		free(note);
		sent++;
	}
	assert_true(sent > 0);
	dk_fallback_free(f);
	json_t *log = server_log(&plain);
	assert_int_equal(json_array_size(log), (size_t)sent);
	size_t i;
	json_t *e;
	json_array_foreach(log, i, e) {
		const char *body = json_string_value(json_object_get(e, "body"));
		/* the wire form escapes '/' no more than jansson does: compare
		 * against the decoded message contents too */
		json_t *b = json_loads(body, 0, NULL);
		const char *user = json_string_value(
			json_object_get(json_array_get(json_object_get(b, "messages"), 1), "content"));
		for (size_t q = 0; q < np; q++) {
			if (strstr(body, planted[q][1]) || strstr(user, planted[q][1]))
				fail_msg("planted '%s' reached the server", planted[q][1]);
		}
		assert_non_null(strstr(user, "[NAME_1]"));
		json_decref(b);
	}
	json_decref(log);
}

static void test_concurrency_and_reuse(void **state);

/* Runs fn with fd 2 redirected to a file; returns the captured text. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
	char path[600];
	snprintf(path, sizeof path, "%s/stderr.txt", tmp);
	fflush(stderr);
	int saved = dup(2);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	return dk_test_read_file(path, NULL);
}

struct leak_ctx {
	char errors[16][2 * DK_ERRMSG_MAX + 2];
	int n;
};

static void leak_scenarios(void *arg)
{
	struct leak_ctx *c = arg;
	struct dk_fallback_params p = params_for(&plain);
	struct dk_fallback *f = client(&p);
	struct dk_fallback_message m[2];
	/* the key in the content too: what the user sends is theirs, but none of
	 * our own messages may echo it */
	struct dk_fallback_request rq = user_req("hello", m);
	struct dk_fallback_response r;
	static const char *const scenarios[] = {"[]", "[\"500\",\"500\",\"500\"]", "[\"401\"]", "[\"400\"]",
						"[\"malformed\"]", "[\"truncated\",\"truncated\",\"truncated\"]"};
	for (size_t s = 0; s < sizeof scenarios / sizeof scenarios[0]; s++) {
		control(&plain, scenarios[s]);
		dk_fallback_chat(f, &rq, &r);
		snprintf(c->errors[c->n++], sizeof c->errors[0], "%s|%s", r.error, dk_fallback_error(f));
		dk_fallback_response_free(&r);
	}
	dk_fallback_free(f);
	p.timeout_ms = 200;
	p.max_retries = 0;
	f = client(&p);
	control(&plain, "[\"slow:1\"]");
	dk_fallback_chat(f, &rq, &r);
	snprintf(c->errors[c->n++], sizeof c->errors[0], "%s", r.error);
	dk_fallback_free(f);
	p = params_for(&plain);
	p.base_url = "http://127.0.0.1:1/v1";
	f = client(&p);
	dk_fallback_chat(f, &rq, &r);
	snprintf(c->errors[c->n++], sizeof c->errors[0], "%s", r.error);
	dk_fallback_free(f);
}

static void test_key_never_leaks(void **state)
{
	(void)state;
	fresh_audit("leak");
	struct leak_ctx c = {0};
	char *err = capture_stderr(leak_scenarios, &c);
	assert_non_null(err);
	assert_null(strstr(err, KEY_VALUE));
	assert_null(strstr(err, "SECRET"));
	free(err);
	for (int i = 0; i < c.n; i++) {
		assert_null(strstr(c.errors[i], KEY_VALUE));
		assert_null(strstr(c.errors[i], "9f8e7d6c5b4a"));
	}
	assert_true(c.n >= 8);
	char *audit = dk_test_read_file(audit_path, NULL);
	assert_non_null(audit);
	assert_true(strlen(audit) > 100);
	assert_null(strstr(audit, KEY_VALUE));
	assert_null(strstr(audit, "9f8e7d6c5b4a"));
	assert_null(strstr(audit, "hello")); /* nor the body */
	free(audit);
	/* and it did reach the server, so the checks above were not vacuous */
	json_t *log = server_log(&plain);
	assert_true(json_array_size(log) >= 1);
	json_decref(log);
}

static void test_tls(void **state)
{
	(void)state;
	if (dk_test_run("command -v openssl >/dev/null 2>&1", NULL) != 0) {
		dk_test_skip("openssl cli not installed: the tls test cannot make its certificate");
	}
	char cmd[4096];
	snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", tmp);
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && ( "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key "
		 "-out ca.pem -days 2 -subj '/CN=docket test CA' -addext basicConstraints=critical,CA:TRUE "
		 "-addext keyUsage=critical,keyCertSign,cRLSign && "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.csr "
		 "-subj '/CN=localhost' && "
		 "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n"
		 "extendedKeyUsage=serverAuth\\n' > ext.cnf && "
		 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 "
		 "-extfile ext.cnf ) 2>&1",
		 tmp);
	char *out = NULL;
	int rc = dk_test_run(cmd, &out);
	free(out);
	assert_int_equal(rc, 0);
	char cert[600], key[600];
	snprintf(cert, sizeof cert, "%s/srv.pem", tmp);
	snprintf(key, sizeof key, "%s/srv.key", tmp);
	struct server s;
	assert_int_equal(start_server(&s, "tls", cert, key), 0);

	fresh_audit("tls");
	struct dk_fallback_params p = params_for(&s);
	p.ca_bundle = ca_pem;
	struct dk_fallback *f = client(&p);
	struct dk_fallback_message m[2];
	struct dk_fallback_request rq = user_req("over tls", m);
	struct dk_fallback_response r;
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
	assert_string_equal(r.content, "echo: over tls");
	dk_fallback_response_free(&r);
	dk_fallback_free(f);

	/* the system store does not know the test CA: verification fails,
	 * fatally, and no request reached the server */
	control(&s, "[]");
	p.ca_bundle = NULL;
	f = client(&p);
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_FATAL);
	assert_int_equal(r.attempts, 1);
	assert_non_null(strstr(r.error, "certificate"));
	dk_fallback_free(f);
	json_t *log = server_log(&s);
	assert_int_equal(json_array_size(log), 0);
	json_decref(log);

	/* the right CA but the wrong name: host verification is on too */
	p.ca_bundle = ca_pem;
	char wrong[128];
	snprintf(wrong, sizeof wrong, "https://127.0.0.2:%d/v1", s.port);
	p.base_url = wrong;
	f = client(&p);
	assert_int_not_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
	dk_fallback_free(f);
	stop_server(&s);
}

/* An audit trail that cannot be written stops all further sending. */
static void test_audit_failure(void **state)
{
	(void)state;
	if (access("/dev/full", W_OK) != 0)
		dk_test_skip("/dev/full not writable: the audit-failure test needs it");
	control(&plain, "[]");
	struct dk_fallback_params p = params_for(&plain);
	p.audit_path = "/dev/full";
	struct dk_fallback *f = client(&p);
	struct dk_fallback_message m[2];
	struct dk_fallback_request rq = user_req("hello", m);
	struct dk_fallback_response r;
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_FATAL);
	assert_null(r.content);
	assert_non_null(strstr(r.error, "audit"));
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_FATAL);
	assert_int_equal(r.attempts, 0);
	dk_fallback_free(f);
	json_t *log = server_log(&plain);
	assert_int_equal(json_array_size(log), 1);
	json_decref(log);
}

struct worker {
	struct dk_fallback *f;
	int ok;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	struct dk_fallback_message m[2];
	struct dk_fallback_request rq = user_req("parallel [[mode:slow:0.3]]", m);
	for (int i = 0; i < 2; i++) {
		struct dk_fallback_response r;
		if (dk_fallback_chat(w->f, &rq, &r) == DK_OK)
			w->ok++;
		dk_fallback_response_free(&r);
	}
	return NULL;
}

static void test_concurrency_and_reuse(void **state)
{
	(void)state;
	fresh_audit("conc");
	control(&plain, "[]");
	struct dk_fallback_params p = params_for(&plain);
	p.max_concurrency = 2;
	struct dk_fallback *f = client(&p);
	pthread_t th[6];
	struct worker w[6];
	for (int i = 0; i < 6; i++) {
		w[i] = (struct worker){f, 0};
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	int ok = 0;
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		ok += w[i].ok;
	}
	assert_int_equal(ok, 12);
	char url[128];
	snprintf(url, sizeof url, "curl -s http://127.0.0.1:%d/stats", plain.port);
	char *out = NULL;
	assert_int_equal(dk_test_run(url, &out), 0);
	json_t *st = json_loads(out, 0, NULL);
	free(out);
	assert_int_equal(json_integer_value(json_object_get(st, "requests")), 12);
	json_int_t mi = json_integer_value(json_object_get(st, "max_inflight"));
	assert_true(mi >= 1 && mi <= 2);
	json_decref(st);
	json_t *audit = read_jsonl(audit_path);
	assert_int_equal(json_array_size(audit), 12); /* whole lines from 6 threads */
	json_decref(audit);
	dk_fallback_free(f);

	/* one handle, sequential calls: the same TCP connection is reused */
	p.max_concurrency = 1;
	f = client(&p);
	control(&plain, "[]");
	struct dk_fallback_message m[2];
	struct dk_fallback_request rq = user_req("reuse", m);
	for (int i = 0; i < 3; i++) {
		struct dk_fallback_response r;
		assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_OK);
		dk_fallback_response_free(&r);
	}
	dk_fallback_free(f);
	json_t *log = server_log(&plain);
	assert_int_equal(json_array_size(log), 3);
	json_int_t port0 = json_integer_value(json_object_get(json_array_get(log, 0), "client_port"));
	for (size_t i = 1; i < 3; i++)
		assert_int_equal(json_integer_value(json_object_get(json_array_get(log, i), "client_port")), port0);
	json_decref(log);
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *cancel_later(void *arg)
{
	usleep(300 * 1000);
	dk_fallback_cancel(arg);
	return NULL;
}

/* A cancel ends a call waiting on a slow server at once, and later calls
 * send nothing. */
static void test_cancel(void **state)
{
	(void)state;
	fresh_audit("cancel");
	control(&plain, "[\"slow:5\"]");
	struct dk_fallback_params p = params_for(&plain);
	struct dk_fallback *f = client(&p);
	struct dk_fallback_message m[2];
	struct dk_fallback_request rq = user_req("slow one", m);
	pthread_t th;
	pthread_create(&th, NULL, cancel_later, f);
	double t0 = mono_s();
	struct dk_fallback_response r;
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_SKIP);
	double took = mono_s() - t0;
	pthread_join(th, NULL);
	assert_non_null(strstr(r.error, "cancelled"));
	assert_true(took < 3.0); /* not the server's 5 s */
	dk_fallback_response_free(&r);
	json_t *log = server_log(&plain);
	size_t sent = json_array_size(log);
	json_decref(log);
	assert_int_equal(dk_fallback_chat(f, &rq, &r), DK_SKIP);
	assert_int_equal(r.attempts, 0);
	dk_fallback_response_free(&r);
	log = server_log(&plain);
	assert_int_equal(json_array_size(log), sent);
	json_decref(log);
	dk_fallback_free(f);
}

/* The runner's pool: every call comes back once, answered, with up to
 * `workers` on the wire at once; freeing it with calls out drops them. */
static void test_calls_pool(void **state)
{
	(void)state;
	fresh_audit("pool");
	control(&plain, "[\"slow:0.5\", \"slow:0.5\", \"slow:0.5\", \"slow:0.5\", \"slow:0.5\", \"slow:0.5\"]");
	struct dk_fallback_params p = params_for(&plain);
	p.max_concurrency = 3;
	struct dk_fallback *f = client(&p);
	struct dk_calls *q = dk_calls_new(f, 3);
	assert_non_null(q);
	bool seen[6] = {0};
	for (int i = 0; i < 6; i++) {
		char u[32];
		snprintf(u, sizeof u, "call %d", i);
		struct dk_call *c = dk_call_new(NULL, strdup(u));
		assert_non_null(c);
		c->index = i;
		dk_calls_submit(q, c);
	}
	assert_int_equal(dk_calls_outstanding(q), 6);
	for (int got = 0; got < 6;) {
		struct dk_call *c = dk_calls_take(q, 5000);
		assert_non_null(c);
		assert_int_equal(c->status, DK_OK);
		char want[48];
		snprintf(want, sizeof want, "echo: call %d", c->index);
		assert_string_equal(c->resp.content, want);
		assert_false(seen[c->index]);
		seen[c->index] = true;
		dk_call_free(c);
		got++;
	}
	assert_int_equal(dk_calls_outstanding(q), 0);
	assert_int_equal(dk_calls_peak(q), 3);
	assert_null(dk_calls_take(q, 0));
	/* a call that cannot be built comes back in turn, unsent */
	struct dk_call *c = dk_call_new(NULL, strdup("never sent"));
	c->status = DK_SKIP;
	dk_calls_finished(q, c);
	c = dk_calls_take(q, 0);
	assert_non_null(c);
	assert_int_equal(c->resp.attempts, 0);
	dk_call_free(c);
	/* freed with slow calls on the wire: back quickly, nothing leaks (ASan) */
	control(&plain, "[\"slow:5\", \"slow:5\", \"slow:5\", \"slow:5\"]");
	for (int i = 0; i < 4; i++)
		dk_calls_submit(q, dk_call_new(strdup("sys"), strdup("slow")));
	usleep(200 * 1000);
	double t0 = mono_s();
	dk_calls_free(q);
	assert_true(mono_s() - t0 < 3.0);
	dk_fallback_free(f);
	control(&plain, "[]");
}

static int setup(void **state)
{
	(void)state;
	tmp = dk_test_tmpdir();
	if (!tmp)
		return -1;
	setenv(KEY_ENV, KEY_VALUE, 1);
	/* the servers are local: a proxy from the environment must not interfere */
	static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
					      "all_proxy", "ALL_PROXY"};
	for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++)
		unsetenv(proxies[i]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (start_server(&plain, "plain", NULL, NULL) != 0) {
		fprintf(stderr, "cannot start tests/helpers/fake_openai.py with python3\n");
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	stop_server(&plain);
	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	dk_test_run(cmd, NULL);
	free(tmp);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_new_errors),
		cmocka_unit_test(test_ok_and_audit),
		cmocka_unit_test(test_json_schema),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_5xx_exhausted),
		cmocka_unit_test(test_bad_answers),
		cmocka_unit_test(test_sensitive_gate),
		cmocka_unit_test(test_redaction_on_the_wire),
		cmocka_unit_test(test_key_never_leaks),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_audit_failure),
		cmocka_unit_test(test_concurrency_and_reuse),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_calls_pool),
	};
	return dk_test_run_group(tests, setup, teardown);
}
