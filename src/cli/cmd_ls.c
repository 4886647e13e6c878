/* docket ls: what the ingest walk would do with each file and member. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "docket/ingest.h"
#include "ingest/docjson.h"

static void ls_usage(FILE *f)
{
	fprintf(f, "usage: docket ls [--json] [--fast] [OPTIONS] INPUT...\n\n"
		   "Lists every file and archive member the walk reaches: path, MIME type,\n"
		   "bytes, and whether it would be extracted or why it is skipped.\n"
		   "INPUT is a file, a directory, an archive, or '-' for paths on stdin.\n\n"
		   "  --json                  one JSON object per line instead of a table\n"
		   "  --fast                  detect types only, do not try extraction\n"
		   "%s",
		dk_ingest_options_help());
}

int dk_cmd_ls(int argc, char **argv)
{
	struct dk_ingest_params p = dk_ingest_default_params();
	int json = 0;
	bool fast = false;
	const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
	size_t n_inputs = 0;
	char err[512];
	int rc = DK_EXIT_OK;
	if (!inputs)
		return DK_EXIT_FATAL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r = dk_ingest_parse_option(&p, argc, argv, &i, err, sizeof err);
		if (r < 0) {
			dk_cli_error("%s", err);
			rc = DK_EXIT_USAGE;
			goto out;
		}
		if (r > 0)
			continue;
		if (!strcmp(a, "--json")) {
			json = 1;
		} else if (!strcmp(a, "--fast")) {
			fast = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			ls_usage(stdout);
			goto out;
		} else if (!strcmp(a, "--")) {
			while (++i < argc)
				inputs[n_inputs++] = argv[i];
		} else if (a[0] == '-' && a[1]) {
			dk_cli_error("unknown option '%s' for ls (see 'docket ls --help')", a);
			rc = DK_EXIT_USAGE;
			goto out;
		} else {
			inputs[n_inputs++] = a;
		}
	}
	if (!n_inputs) {
		ls_usage(stderr);
		rc = DK_EXIT_USAGE;
		goto out;
	}
	p.no_extract = fast;
	struct dk_ingest *ing;
	if (dk_ingest_new(&ing, &p) != DK_OK) {
		dk_cli_error("%s", dk_ingest_error(ing));
		dk_ingest_free(ing);
		rc = DK_EXIT_FATAL;
		goto out;
	}
	for (size_t i = 0; i < n_inputs; i++)
		dk_ingest_add(ing, inputs[i]);
	const struct dk_doc *d;
	enum dk_status st;
	if (!json)
		printf("%-16s %-32s %10s  %s\n", "ACTION", "MIME", "BYTES", "PATH");
	while ((st = dk_ingest_next(ing, &d)) == DK_OK) {
		if (json) {
			json_t *o = dk_doc_to_json(d);
			char *s = json_dumps(o, JSON_COMPACT);
			if (s)
				puts(s);
			free(s);
			json_decref(o);
		} else {
			char act[64];
			snprintf(act, sizeof act, "%s", d->action == DK_DOC_EXTRACT ? "extract" : d->skip_reason);
			printf("%-16s %-32s %10llu  %s\n", act, d->mime, (unsigned long long)d->bytes, d->path);
		}
	}
	if (st == DK_FATAL) {
		dk_cli_error("%s", dk_ingest_error(ing));
		rc = DK_EXIT_FATAL;
	}
	if (!json) {
		struct dk_ingest_stats s;
		dk_ingest_stats(ing, &s);
		printf("%llu files: %llu to extract, %llu skipped\n", (unsigned long long)s.docs,
		       (unsigned long long)s.extracted, (unsigned long long)s.skipped);
	}
	dk_ingest_free(ing);
	if (fflush(stdout) != 0)
		rc = DK_EXIT_FATAL;
out:
	dk_ingest_params_release(&p);
	free(inputs);
	return rc;
}
