/* docket merge OUT.jsonl SHARD.jsonl...: combine shard outputs into one file.
 * Each record is kept once (by id, first seen wins); torn or unreadable
 * lines are dropped with a warning.  The result is written to a temporary
 * file and renamed into place, so OUT is never half-written. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "runner/output.h"
#include "util/buf.h"

static void usage(FILE *f)
{
	fputs("usage: docket merge [--overwrite] OUT.jsonl SHARD.jsonl...\n"
	      "       docket merge -o OUT.jsonl SHARD.jsonl...\n"
	      "Combines the outputs of `docket run --shard K/N` runs: every record once (by id).\n",
	      f);
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
	struct dk_buf tmp = {0};
	dk_buf_printf(&tmp, "%s.merge.%d", out, (int)getpid());
	FILE *w = fopen(tmp.data, "w");
	if (!w) {
		dk_cli_error("cannot create '%s': %s", tmp.data, strerror(errno));
		dk_buf_free(&tmp);
		return DK_EXIT_FATAL;
	}
	struct dk_idset seen = {0};
	unsigned long long kept = 0, dup = 0, bad = 0;
	int rc = DK_EXIT_OK;
	char *line = NULL;
	size_t cap = 0;
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
		fprintf(stderr, "docket: merged %llu records into '%s' (%llu repeated, %llu unreadable dropped)\n",
			kept, out, dup, bad);
	dk_buf_free(&tmp);
	return rc;
}
