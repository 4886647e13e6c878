/* PDF through pdftotext, run with a time and output cap (dk_x_pdf). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "ingest/extract.h"
#include "util/err.h"

/* ---- PDF ---- */

static bool find_in_path(const char *prog, char *out, size_t n)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t l = strcspn(path, ":");
		snprintf(out, n, "%.*s/%s", (int)l, path, prog);
		if (access(out, X_OK) == 0)
			return true;
		path += l;
		if (*path == ':')
			path++;
	}
	return false;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum tool_end { TOOL_FAILED, TOOL_EXITED, TOOL_TIMEOUT, TOOL_TOO_BIG };

/* Runs `pdftotext ... file -`, collecting its stdout in raw (at most
 * in->max_text_bytes) for at most in->tool_timeout_s seconds (0: no
 * limit); past either limit the tool and its process group are killed.
 * Always reaps the child; *status is its wait status when TOOL_EXITED. */
static enum tool_end run_tool(const char *tool, const char *file, const struct dk_xin *in, struct dk_buf *raw,
			      int *status)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return TOOL_FAILED;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return TOOL_FAILED;
	}
	if (pid == 0) {
		/* its own process group, so a kill reaches whatever it starts */
		setpgid(0, 0);
#ifdef __linux__
		/* and it does not outlive a docket killed meanwhile */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
#endif
		dup2(pfd[1], 1);
		int dn = open("/dev/null", O_RDWR);
		if (dn >= 0) {
			dup2(dn, 0); /* never the path list docket may be reading */
			dup2(dn, 2);
		}
		execl(tool, "pdftotext", "-q", "-enc", "UTF-8", "-layout", "-nopgbrk", file, "-", (char *)NULL);
		_exit(127);
	}
	(void)parent;
	setpgid(pid, pid); /* also here: whichever of the two runs first */
	close(pfd[1]);
	double deadline = in->tool_timeout_s ? mono_now() + in->tool_timeout_s : 0;
	uint64_t cap = in->max_text_bytes ? in->max_text_bytes : UINT64_MAX;
	enum tool_end how = TOOL_EXITED;
	char buf[65536];
	for (;;) {
		int wait_ms = -1;
		if (deadline) {
			double left = deadline - mono_now();
			if (left <= 0) {
				how = TOOL_TIMEOUT;
				break;
			}
			wait_ms = (int)(left * 1000) + 1;
		}
		struct pollfd pf = {pfd[0], POLLIN, 0};
		int r = poll(&pf, 1, wait_ms);
		if (r < 0 && errno != EINTR) {
			how = TOOL_FAILED;
			break;
		}
		if (r <= 0)
			continue;
		ssize_t k = read(pfd[0], buf, sizeof buf);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k < 0) {
			how = TOOL_FAILED;
			break;
		}
		if (k == 0)
			break;
		if ((uint64_t)k > cap - raw->len) {
			how = TOOL_TOO_BIG;
			break;
		}
		if (dk_buf_append(raw, buf, (size_t)k)) {
			how = TOOL_FAILED;
			break;
		}
	}
	close(pfd[0]);
	/* end of output is not the end of the process: the deadline holds for
	 * its exit too */
	for (long nap_us = 1000; how == TOOL_EXITED; nap_us = nap_us < 50000 ? nap_us * 2 : nap_us) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return TOOL_EXITED;
		if (w < 0 && errno != EINTR)
			how = TOOL_FAILED;
		else if (deadline && mono_now() >= deadline)
			how = TOOL_TIMEOUT;
		else
			nanosleep(&(struct timespec){0, nap_us * 1000}, NULL);
	}
	int e = errno;
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	errno = e;
	return how;
}

int dk_x_pdf(const struct dk_xin *in, struct dk_buf *out, const char **reason, char *err, size_t errn)
{
	char tool[1024];
	if (in->pdftotext) {
		snprintf(tool, sizeof tool, "%s", in->pdftotext);
		if (access(tool, X_OK) != 0) {
			*reason = "tool-missing";
			dk_err(err, errn, DK_SKIP, "cannot extract '%s': pdftotext not found at '%s'", in->name, tool);
			return -1;
		}
	} else if (!find_in_path("pdftotext", tool, sizeof tool)) {
		*reason = "tool-missing";
		dk_err(err, errn, DK_SKIP, "cannot extract '%s': pdftotext (poppler-utils) is not installed", in->name);
		return -1;
	}
	/* pdftotext needs a seekable file: members are written to a private temp file */
	char tmp[] = "/tmp/docket-pdf-XXXXXX";
	const char *file = in->fs_path;
	int tfd = -1;
	if (!file) {
		tfd = mkstemp(tmp);
		if (tfd < 0) {
			*reason = "unreadable";
			dk_err(err, errn, DK_SKIP, "cannot extract '%s': temporary file: %s", in->name, strerror(errno));
			return -1;
		}
		size_t off = 0;
		while (off < in->len) {
			ssize_t w = write(tfd, in->data + off, in->len - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		close(tfd);
		file = tmp;
	}
	struct dk_buf raw = {0};
	int st = 0;
	enum tool_end how = run_tool(tool, file, in, &raw, &st);
	int rc = -1;
	if (how == TOOL_TIMEOUT) {
		*reason = "limit-exceeded";
		dk_err(err, errn, DK_SKIP, "cannot extract '%s': pdftotext timed out after %u s", in->name,
		       in->tool_timeout_s);
	} else if (how == TOOL_TOO_BIG) {
		*reason = "limit-exceeded";
		dk_err(err, errn, DK_SKIP, "cannot extract '%s': extracted text exceeds %llu bytes", in->name,
		       (unsigned long long)in->max_text_bytes);
	} else if (how == TOOL_EXITED && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		dk_utf8_sanitize(raw.data ? raw.data : "", raw.len, out);
		rc = 0;
	} else if (how == TOOL_EXITED) {
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		/* pdftotext exits 1 on open errors, 3 on permission (encryption) errors */
		*reason = code == 3 ? "encrypted" : "decode-error";
		dk_err(err, errn, DK_SKIP, "cannot extract '%s': pdftotext failed (%s)", in->name,
		       code == 3 ? "encrypted" : code == 1 ? "damaged or unreadable pdf" : "exit status");
	}
	dk_buf_free(&raw);
	if (rc != 0 && !*reason) {
		*reason = "unreadable";
		dk_err(err, errn, DK_SKIP, "cannot extract '%s': %s", in->name, strerror(errno));
	}
	if (tfd >= 0)
		unlink(tmp);
	return rc;
}
