/* Command-line options for the ingest walk, shared by ls, chunk and run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/ingest.h"
#include "util/err.h"

static int parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || v < 0)
		return -1;
	double mul = 1;
	switch (*end) {
	case 'k': case 'K': mul = 1024.0; end++; break;
	case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
	case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
	case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end || v * mul > 1.8e19)
		return -1;
	*out = (uint64_t)(v * mul);
	return 0;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int push(const char ***arr, size_t *n, const char *v)
{
	const char **a = realloc((void *)*arr, (*n + 1) * sizeof *a);
	if (!a)
		return -1;
	a[(*n)++] = v;
	*arr = a;
	return 0;
}

int dk_ingest_parse_option(struct dk_ingest_params *p, int argc, char **argv, int *i, char *err, size_t errn)
{
	const char *a = argv[*i];
	if (strncmp(a, "--", 2))
		return 0;
	static const char *const flags[] = {"--hidden", "--follow-symlinks", "--cross-filesystems", "--no-archives", NULL};
	for (int k = 0; flags[k]; k++) {
		if (strcmp(a, flags[k]))
			continue;
		if (k == 0)
			p->hidden = true;
		else if (k == 1)
			p->follow_symlinks = true;
		else if (k == 2)
			p->one_filesystem = false;
		else
			p->archives = false;
		return 1;
	}
	static const char *const valued[] = {"--include", "--exclude", "--max-depth", "--max-file-bytes",
					     "--max-member-bytes", "--max-archive-bytes", "--max-ratio",
					     "--max-entries", "--max-nesting", "--pdftotext", "--max-text-bytes",
					     "--tool-timeout", NULL};
	int which = -1;
	const char *val = NULL;
	for (int k = 0; valued[k]; k++) {
		size_t l = strlen(valued[k]);
		if (!strncmp(a, valued[k], l) && (a[l] == 0 || a[l] == '=')) {
			which = k;
			if (a[l] == '=') {
				val = a + l + 1;
			} else if (*i + 1 < argc) {
				val = argv[++*i];
			} else {
				dk_err(err, errn, DK_FATAL, "option '%s' needs a value", valued[k]);
				return -1;
			}
			break;
		}
	}
	if (which < 0)
		return 0;
	long v;
	uint64_t b;
	int rc = 0;
	switch (which) {
	case 0:
		rc = push(&p->include, &p->n_include, val);
		break;
	case 1:
		rc = push(&p->exclude, &p->n_exclude, val);
		break;
	case 2:
		rc = parse_int(val, -1, 1 << 20, &v);
		if (!rc)
			p->max_depth = (int)v;
		break;
	case 3:
	case 4:
	case 5:
		rc = parse_bytes(val, &b);
		if (!rc)
			*(which == 3 ? &p->max_file_bytes : which == 4 ? &p->max_member_bytes : &p->max_archive_bytes) = b;
		break;
	case 6: {
		char *end;
		double r = strtod(val, &end);
		if (end == val || *end || !(r >= 1))
			rc = -1;
		else
			p->max_ratio = r;
		break;
	}
	case 7:
		rc = parse_bytes(val, &b);
		if (!rc)
			p->max_entries = b;
		break;
	case 8:
		rc = parse_int(val, 0, 64, &v);
		if (!rc)
			p->max_nesting = (int)v;
		break;
	case 9:
		p->pdftotext = val;
		break;
	case 10:
		rc = parse_bytes(val, &b);
		if (!rc)
			p->max_text_bytes = b;
		break;
	case 11:
		rc = parse_int(val, 0, 86400, &v);
		if (!rc)
			p->tool_timeout_s = (unsigned)v;
		break;
	}
	if (rc) {
		dk_err(err, errn, DK_FATAL, "bad value '%s' for %s", val, valued[which]);
		return -1;
	}
	return 1;
}

void dk_ingest_params_release(struct dk_ingest_params *p)
{
	free((void *)p->include);
	free((void *)p->exclude);
	p->include = p->exclude = NULL;
	p->n_include = p->n_exclude = 0;
}

const char *dk_ingest_options_help(void)
{
	return "  --include GLOB          only files matching GLOB (repeatable; '**' crosses directories)\n"
	       "  --exclude GLOB          skip files and directories matching GLOB (repeatable)\n"
	       "  --max-depth N           directory recursion depth (-1 = unlimited, default)\n"
	       "  --hidden                also walk dot-files and dot-directories\n"
	       "  --follow-symlinks       follow symbolic links (loops are detected)\n"
	       "  --cross-filesystems     descend into other mounted filesystems\n"
	       "  --no-archives           do not open archives (one record per archive)\n"
	       "  --max-file-bytes N      skip files larger than N (default 256M)\n"
	       "  --max-member-bytes N    skip archive members larger than N (default 64M)\n"
	       "  --max-archive-bytes N   stop an archive after expanding N bytes (default 1G)\n"
	       "  --max-ratio X           stop an archive expanding more than X times its size (default 100)\n"
	       "  --max-entries N         stop an archive after N members (default 100000)\n"
	       "  --max-nesting N         open archives nested up to N deep (default 4)\n"
	       "  --max-text-bytes N      cut extracted text at N bytes; a PDF beyond it is skipped (default 64M)\n"
	       "  --tool-timeout SECONDS  kill pdftotext after this long and skip the file (default 30, 0 = never)\n"
	       "  --pdftotext PATH        pdftotext binary (default: from $PATH)\n";
}
