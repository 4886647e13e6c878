/* docket merge OUT.jsonl SHARD.jsonl...: combine shard outputs into one file.
 * Each record is kept once (by id, first seen wins), less those another
 * record supersedes (--incremental keeps an old version beside the new);
 * torn or unreadable lines are dropped with a warning.  Files whose records
 * carry different settings hashes are refused.  The result is written to a temporary
 * file and renamed into place, so OUT is never half-written. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "runner/output.h"
#include "util/buf.h"
#include "util/err.h"

static void usage(FILE *f)
{
	fputs("usage: docket merge [--overwrite] OUT.jsonl SHARD.jsonl...\n"
	      "       docket merge -o OUT.jsonl SHARD.jsonl...\n"
	      "Combines the outputs of `docket run --shard K/N` runs: every record once (by id),\n"
	      "less records a later version of their document supersedes (--incremental).\n"
	      "Refuses files whose records were made with different settings.\n",
	      f);
}

/* Shards of two different runs must not pass for one: says which settings
 * differ, from the checkpoints beside the files when they are there. */
static void merge_refuse(const char *a, const char *ha, const char *b, const char *hb)
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
	dk_cli_error("cannot merge '%s' and '%s': their records were made with different settings "
		     "(%s%s%.12s vs %.12s)",
		     a, b, diff, *diff ? "; " : "", ha, hb);
}

int dk_cmd_merge(int argc, char **argv)
{
	static const struct option opts[] = {
		{"output", required_argument, 0, 'o'},
		{"overwrite", no_argument, 0, 'f'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	const char *out = NULL;
	bool overwrite = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'f': overwrite = true; break;
		case 'h': usage(stdout); return DK_EXIT_OK;
		default: usage(stderr); return DK_EXIT_USAGE;
		}
	}
	int i = optind;
	if (!out && i < argc)
		out = argv[i++];
	if (!out || i >= argc) {
		usage(stderr);
		return DK_EXIT_USAGE;
	}
	for (int k = i; k < argc; k++)
		if (!strcmp(argv[k], out)) {
			dk_cli_error("the output '%s' is also an input", out);
			return DK_EXIT_USAGE;
		}
	if (!overwrite && access(out, F_OK) == 0) {
		dk_cli_error("'%s' already exists (use --overwrite)", out);
		return DK_EXIT_USAGE;
	}
	/* first pass: the records later versions supersede (an --incremental
	 * output, or shards of one), and each file's settings */
	struct dk_idset superseded = {0};
	char first_settings[65] = "";
	int first_file = -1;
	unsigned long long n_superseded = 0;
	char *line = NULL;
	size_t cap = 0;
	int rc = DK_EXIT_OK;
	for (int k = i; k < argc && rc == DK_EXIT_OK; k++) {
		FILE *f = fopen(argv[k], "r");
		if (!f) {
			dk_cli_error("cannot open '%s': %s", argv[k], dk_errno_str(errno));
			rc = DK_EXIT_USAGE;
			break;
		}
		bool seen_settings = false;
		ssize_t n;
		while ((n = getline(&line, &cap, f)) > 0) {
			if (line[n - 1] != '\n')
				break;
			json_t *j = json_loadb(line, (size_t)n - 1, 0, NULL);
			json_t *sup = json_object_get(j, "supersedes");
			for (size_t a = 0; a < json_array_size(sup); a++) {
				const char *sid = json_string_value(json_array_get(sup, a));
				if (sid && dk_idset_add(&superseded, dk_idset_key(sid, strlen(sid))) == 1)
					n_superseded++;
			}
			const char *sh = json_string_value(
				json_object_get(json_object_get(j, "docket"), "settings"));
			if (sh && !seen_settings) {
				seen_settings = true;
				if (first_file < 0) {
					snprintf(first_settings, sizeof first_settings, "%s", sh);
					first_file = k;
				} else if (strcmp(first_settings, sh)) {
					merge_refuse(argv[first_file], first_settings, argv[k], sh);
					rc = DK_EXIT_USAGE;
				}
			}
			json_decref(j);
			if (rc != DK_EXIT_OK)
				break;
		}
		fclose(f);
	}
	if (rc != DK_EXIT_OK) {
		free(line);
		dk_idset_free(&superseded);
		return rc;
	}
	struct dk_buf tmp = {0};
	dk_buf_printf(&tmp, "%s.merge.%d", out, (int)getpid());
	/* merged records are as private as the most private input (a sensitive
	 * pipeline writes 0600) */
	bool priv = false;
	struct stat sb;
	for (int k = i; k < argc; k++)
		priv |= stat(argv[k], &sb) == 0 && !(sb.st_mode & 0044);
	int wfd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, priv ? 0600 : 0644);
	FILE *w = wfd >= 0 ? fdopen(wfd, "w") : NULL;
	if (!w && wfd >= 0)
		close(wfd);
	if (!w) {
		dk_cli_error("cannot create '%s': %s", tmp.data, strerror(errno));
		dk_buf_free(&tmp);
		return DK_EXIT_FATAL;
	}
	struct dk_idset seen = {0};
	unsigned long long kept = 0, dup = 0, bad = 0, old = 0;
	for (; i < argc && rc == DK_EXIT_OK; i++) {
		FILE *f = fopen(argv[i], "r");
		if (!f) {
			dk_cli_error("cannot open '%s': %s", argv[i], strerror(errno));
			rc = DK_EXIT_USAGE;
			break;
		}
		ssize_t k;
		unsigned long long lineno = 0;
		while ((k = getline(&line, &cap, f)) > 0) {
			lineno++;
			bool torn = line[k - 1] != '\n';
			json_t *j = torn ? NULL : json_loadb(line, (size_t)k - 1, 0, NULL);
			const char *id = json_string_value(json_object_get(j, "id"));
			if (!id) {
				dk_cli_error("warning: '%s' line %llu: %s, dropped", argv[i], lineno,
					     torn ? "torn last line" : "not a record");
				bad++;
			} else if (dk_idset_add(&seen, dk_idset_key(id, strlen(id))) == 0) {
				dup++;
			} else if (dk_idset_has(&superseded, dk_idset_key(id, strlen(id)))) {
				old++;
			} else if (fwrite(line, 1, (size_t)k, w) != (size_t)k) {
				rc = DK_EXIT_FATAL;
			} else {
				kept++;
			}
			json_decref(j);
		}
		fclose(f);
	}
	free(line);
	dk_idset_free(&seen);
	dk_idset_free(&superseded);
	if (fflush(w) || fsync(fileno(w)))
		rc = DK_EXIT_FATAL;
	fclose(w);
	if (rc == DK_EXIT_OK && rename(tmp.data, out)) {
		dk_cli_error("cannot write '%s': %s", out, strerror(errno));
		rc = DK_EXIT_FATAL;
	}
	if (rc != DK_EXIT_OK)
		unlink(tmp.data);
	else
		fprintf(stderr,
			"docket: merged %llu records into '%s' (%llu repeated, %llu superseded, %llu "
			"unreadable dropped)\n",
			kept, out, dup, old, bad);
	dk_buf_free(&tmp);
	return rc;
}
