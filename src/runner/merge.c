/* docket merge: shard outputs combined into one file, every record once. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docket/runner.h"
#include "runner/output.h"
#include "util/buf.h"
#include "util/err.h"

/* Shards of two different runs must not pass for one: says which settings
 * differ, from the checkpoints beside the files when they are there. */
static enum dk_status merge_refuse(const char *a, const char *ha, const char *b, const char *hb,
				   char *err, size_t n)
{
	char diff[384] = "";
	json_t *ca = dk_out_journal_config(a), *cb = dk_out_journal_config(b);
	if (ca && cb) {
		/* shards of one run differ in these by design */
		json_object_del(ca, "shard");
		json_object_del(cb, "shard");
		dk_out_config_diff(ca, cb, diff, sizeof diff);
	}
	json_decref(ca);
	json_decref(cb);
	return dk_err(err, n, DK_SKIP,
		      "cannot merge '%s' and '%s': their records were made with different settings "
		      "(%s%s%.12s vs %.12s)",
		      a, b, diff, *diff ? "; " : "", ha, hb);
}

enum dk_status dk_runner_merge(const char *out, const char *const *in, size_t n_in, bool overwrite,
			       struct dk_merge_stats *st, char *err, size_t n)
{
	memset(st, 0, sizeof *st);
	for (size_t k = 0; k < n_in; k++)
		if (!strcmp(in[k], out))
			return dk_err(err, n, DK_SKIP, "the output '%s' is also an input", out);
	if (!overwrite && access(out, F_OK) == 0)
		return dk_err(err, n, DK_SKIP, "'%s' already exists (use --overwrite)", out);
	/* first pass: the records later versions supersede (an --incremental
	 * output, or shards of one), and each file's settings */
	struct dk_idset superseded = {0};
	char first_settings[65] = "";
	int first_file = -1;
	size_t i = 0;
	char *line = NULL;
	size_t cap = 0;
	enum dk_status rc = DK_OK;
	for (size_t k = 0; k < n_in && rc == DK_OK; k++) {
		FILE *f = fopen(in[k], "r");
		if (!f) {
			rc = dk_err(err, n, DK_SKIP, "cannot open '%s': %s", in[k], dk_errno_str(errno));
			break;
		}
		bool seen_settings = false;
		ssize_t len;
		while ((len = getline(&line, &cap, f)) > 0) {
			if (line[len - 1] != '\n')
				break;
			json_t *j = json_loadb(line, (size_t)len - 1, 0, NULL);
			json_t *sup = json_object_get(j, "supersedes");
			for (size_t a = 0; a < json_array_size(sup); a++) {
				const char *sid = json_string_value(json_array_get(sup, a));
				if (sid && dk_idset_add(&superseded, dk_idset_key(sid, strlen(sid))) < 0)
					rc = dk_err(err, n, DK_FATAL, "out of memory");
			}
			const char *sh = json_string_value(
				json_object_get(json_object_get(j, "docket"), "settings"));
			if (sh && !seen_settings) {
				seen_settings = true;
				if (first_file < 0) {
					snprintf(first_settings, sizeof first_settings, "%s", sh);
					first_file = (int)k;
				} else if (strcmp(first_settings, sh)) {
					rc = merge_refuse(in[first_file], first_settings, in[k], sh, err, n);
				}
			}
			json_decref(j);
			if (rc != DK_OK)
				break;
		}
		fclose(f);
	}
	if (rc != DK_OK) {
		free(line);
		dk_idset_free(&superseded);
		return rc;
	}
	struct dk_buf tmp = {0};
	if (dk_buf_printf(&tmp, "%s.merge.%d", out, (int)getpid())) {
		dk_idset_free(&superseded);
		free(line);
		return dk_err(err, n, DK_FATAL, "out of memory");
	}
	/* merged records are as private as the most private input (a sensitive
	 * pipeline writes 0600) */
	bool priv = false;
	struct stat sb;
	for (size_t k = 0; k < n_in; k++)
		priv |= stat(in[k], &sb) == 0 && !(sb.st_mode & 0044);
	int wfd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, priv ? 0600 : 0644);
	FILE *w = wfd >= 0 ? fdopen(wfd, "w") : NULL;
	if (!w && wfd >= 0)
		close(wfd);
	if (!w) {
		rc = dk_err(err, n, DK_FATAL, "cannot create '%s': %s", tmp.data, dk_errno_str(errno));
		dk_buf_free(&tmp);
		dk_idset_free(&superseded);
		free(line);
		return rc;
	}
	struct dk_idset seen = {0};
	for (i = 0; i < n_in && rc == DK_OK; i++) {
		FILE *f = fopen(in[i], "r");
		if (!f) {
			rc = dk_err(err, n, DK_SKIP, "cannot open '%s': %s", in[i], dk_errno_str(errno));
			break;
		}
		ssize_t k;
		uint64_t lineno = 0;
		while ((k = getline(&line, &cap, f)) > 0) {
			lineno++;
			bool torn = line[k - 1] != '\n';
			json_t *j = torn ? NULL : json_loadb(line, (size_t)k - 1, 0, NULL);
			const char *id = json_string_value(json_object_get(j, "id"));
			if (!id) {
				fprintf(stderr, "docket: warning: '%s' line %llu: %s, dropped\n", in[i],
					(unsigned long long)lineno, torn ? "torn last line" : "not a record");
				st->dropped++;
			} else if (dk_idset_add(&seen, dk_idset_key(id, strlen(id))) == 0) {
				st->repeated++;
			} else if (dk_idset_has(&superseded, dk_idset_key(id, strlen(id)))) {
				st->superseded++;
			} else if (fwrite(line, 1, (size_t)k, w) != (size_t)k) {
				rc = dk_err(err, n, DK_FATAL, "cannot write '%s': %s", tmp.data,
					    dk_errno_str(errno));
			} else {
				st->kept++;
			}
			json_decref(j);
		}
		fclose(f);
	}
	free(line);
	dk_idset_free(&seen);
	dk_idset_free(&superseded);
	if ((fflush(w) || fsync(fileno(w))) && rc == DK_OK)
		rc = dk_err(err, n, DK_FATAL, "cannot write '%s': %s", tmp.data, dk_errno_str(errno));
	fclose(w);
	if (rc == DK_OK && rename(tmp.data, out))
		rc = dk_err(err, n, DK_FATAL, "cannot write '%s': %s", out, dk_errno_str(errno));
	if (rc != DK_OK)
		unlink(tmp.data);
	dk_buf_free(&tmp);
	return rc;
}
