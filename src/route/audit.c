/* JSONL audit trail of requests that left the machine (see docket/route.h). */
#include "docket/route.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"

struct dk_audit {
	int fd;
	pthread_mutex_t mu;
};

struct dk_audit *dk_audit_open(const char *path, char *err, size_t n)
{
	if (!path || !*path) {
		dk_err(err, n, DK_FATAL, "audit: no file given");
		return NULL;
	}
	struct dk_audit *a = calloc(1, sizeof *a);
	if (!a) {
		dk_err(err, n, DK_FATAL, "audit: out of memory");
		return NULL;
	}
	a->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (a->fd < 0) {
		dk_err(err, n, DK_FATAL, "cannot open audit file '%s': %s", path, strerror(errno));
		free(a);
		return NULL;
	}
	pthread_mutex_init(&a->mu, NULL);
	return a;
}

void dk_audit_close(struct dk_audit *a)
{
	if (!a)
		return;
	close(a->fd);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

static void iso_now(char out[32])
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	size_t k = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + k, 32 - k, ".%03dZ", (int)(tv.tv_usec / 1000));
}

int dk_audit_write(struct dk_audit *a, const struct dk_audit_entry *e)
{
	char ts[32];
	iso_now(ts);
	json_t *o = json_object();
	json_t *red = json_object();
	if (!o || !red) {
		json_decref(o);
		json_decref(red);
		errno = ENOMEM;
		return -1;
	}
	json_object_set_new(o, "time", json_string(ts));
	/* a record id that is not UTF-8 (a path) cannot be a JSON string: null */
	json_t *rid = e->record_id ? json_string(e->record_id) : NULL;
	json_object_set_new(o, "record_id", rid ? rid : json_null());
	json_object_set_new(o, "host", json_string(e->host ? e->host : ""));
	json_object_set_new(o, "model", json_string(e->model ? e->model : ""));
	json_object_set_new(o, "bytes", json_integer((json_int_t)e->bytes));
	json_object_set_new(o, "sha256", json_string(e->sha256 ? e->sha256 : ""));
	for (int t = 0; e->redactions && t < DK_PHI_COUNT; t++)
		if (e->redactions[t])
			json_object_set_new(red, dk_phi_name(t), json_integer((json_int_t)e->redactions[t]));
	json_object_set_new(o, "redactions", red);
	json_object_set_new(o, "redacted", json_boolean(e->redacted));
	json_object_set_new(o, "sensitive", json_boolean(e->sensitive));
	json_object_set_new(o, "attempt", json_integer(e->attempt));
	json_object_set_new(o, "status", json_integer(e->status));
	json_object_set_new(o, "outcome", json_string(e->outcome ? e->outcome : ""));
	if (e->error)
		json_object_set_new(o, "error", json_string(e->error));
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!line) {
		errno = ENOMEM;
		return -1;
	}
	size_t len = strlen(line);
	line[len] = '\n'; /* json_dumps' NUL becomes the newline; write len+1 bytes */
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	const char *p = line;
	size_t left = len + 1;
	while (left) {
		ssize_t w = write(a->fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -1;
			break;
		}
		p += w;
		left -= (size_t)w;
	}
	if (rc == 0 && fdatasync(a->fd) != 0 && errno != EINVAL)
		rc = -1;
	int saved = errno;
	pthread_mutex_unlock(&a->mu);
	free(line);
	errno = saved;
	return rc;
}
