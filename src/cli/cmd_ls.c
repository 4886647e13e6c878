/* docket ls: what the ingest walk would do with each file and member. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "docket/ingest.h"
#include "docket/pipeline.h"

static void ls_usage(FILE *f)
{
	fprintf(f, "usage: docket ls [--json] [--fast] [--pipeline P] [OPTIONS] INPUT...\n\n"
		   "Lists every file and archive member the walk reaches: path, MIME type,\n"
		   "bytes, and whether it would be extracted or why it is skipped.\n"
		   "INPUT is a file, a directory, an archive, or '-' for paths on stdin.\n\n"
		   "  --json                  one JSON object per line instead of a table\n"
		   "  --fast                  detect types only, do not try extraction\n"
		   "  --pipeline P            apply pipeline P's input globs, as `docket run P` does\n"
		   "                          (files they filter out are listed as excluded)\n"
		   "%s",
		dk_ingest_options_help());
}

int dk_cmd_ls(int argc, char **argv)
{
	struct dk_ingest_params p = dk_ingest_default_params();
	int json = 0;
	bool fast = false;
	struct dk_pipeline *pl = NULL;
	const char **inc = NULL, **exc = NULL;
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
		} else if (!strcmp(a, "--pipeline") || !strncmp(a, "--pipeline=", 11)) {
			const char *name = a[10] == '=' ? a + 11 : i + 1 < argc ? argv[++i] : NULL;
			if (!name || pl) {
				dk_cli_error(name ? "--pipeline given twice" : "--pipeline needs a value");
				rc = DK_EXIT_USAGE;
				goto out;
			}
			if (!(pl = dk_pipeline_load(name, err, sizeof err))) {
				dk_cli_error("%s", err);
				rc = DK_EXIT_USAGE;
				goto out;
			}
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
	if (pl) { /* the pipeline's globs first, then the command line's, as run does */
		inc = calloc(pl->n_include + p.n_include + 1, sizeof *inc);
		exc = calloc(pl->n_exclude + p.n_exclude + 1, sizeof *exc);
		if (!inc || !exc) {
			rc = DK_EXIT_FATAL;
			goto out;
		}
		for (size_t k = 0; k < pl->n_include; k++)
			inc[k] = pl->include[k];
		for (size_t k = 0; k < p.n_include; k++)
			inc[pl->n_include + k] = p.include[k];
		for (size_t k = 0; k < pl->n_exclude; k++)
			exc[k] = pl->exclude[k];
		for (size_t k = 0; k < p.n_exclude; k++)
			exc[pl->n_exclude + k] = p.exclude[k];
	}
	struct dk_ingest_params ip = p;
	if (pl) {
		ip.include = inc;
		ip.n_include = pl->n_include + p.n_include;
		ip.exclude = exc;
		ip.n_exclude = pl->n_exclude + p.n_exclude;
		ip.hidden |= pl->hidden;
		ip.raw_text |= pl->raw_text;
	}
	struct dk_ingest *ing;
	if (dk_ingest_new(&ing, &ip) != DK_OK) {
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
	dk_pipeline_free(pl);
	free(inc);
	free(exc);
	free(inputs);
	return rc;
}
