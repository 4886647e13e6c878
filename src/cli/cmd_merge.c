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
#include "docket/runner.h"

static void usage(FILE *f)
{
	fputs("usage: docket merge [--overwrite] OUT.jsonl SHARD.jsonl...\n"
	      "       docket merge -o OUT.jsonl SHARD.jsonl...\n"
	      "Combines the outputs of `docket run --shard K/N` runs: every record once (by id),\n"
	      "less records a later version of their document supersedes (--incremental).\n"
	      "Refuses files whose records were made with different settings.\n",
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
	struct dk_merge_stats st;
	char err[DK_ERRMSG_MAX];
	enum dk_status s = dk_runner_merge(out, (const char *const *)argv + i, (size_t)(argc - i),
					   overwrite, &st, err, sizeof err);
	if (s != DK_OK) {
		dk_cli_error("%s", err);
		return s == DK_SKIP ? DK_EXIT_USAGE : DK_EXIT_FATAL;
	}
	fprintf(stderr,
		"docket: merged %llu records into '%s' (%llu repeated, %llu superseded, %llu "
		"unreadable dropped)\n",
		(unsigned long long)st.kept, out, (unsigned long long)st.repeated,
		(unsigned long long)st.superseded, (unsigned long long)st.dropped);
	return DK_EXIT_OK;
}
