/* The summary support check (runner/support.h) over records made elsewhere
 * (bench/tasks.sh: llama-server's summaries): reads JSONL records on stdin,
 * writes them with "unsupported" set from their output and the text of
 * their source.path.
 * usage: bench_support < records.jsonl > checked.jsonl */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "runner/support.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *s = NULL;
	size_t n = 0, cap = 0, k;
	char buf[65536];
	while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
		if (n + k + 1 > cap) {
			cap = (n + k + 1) * 2;
			char *t = realloc(s, cap);
			if (!t) {
				free(s);
				fclose(f);
				return NULL;
			}
			s = t;
		}
		for (size_t i = 0; i < k; i++)
			s[n++] = buf[i];
	}
	fclose(f);
	if (!s)
		s = calloc(1, 1);
	else
		s[n] = 0;
	return s;
}

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;
	while (getline(&line, &cap, stdin) > 0) {
		json_t *r = json_loads(line, 0, NULL);
		const char *path = json_string_value(json_object_get(json_object_get(r, "source"), "path"));
		const char *out = json_string_value(json_object_get(r, "output"));
		char *src = path ? slurp(path) : NULL;
		if (!r || !src) {
			fprintf(stderr, "bench_support: cannot read a record or its source\n");
			rc = 1;
		} else if (out) {
			json_object_set_new(r, "unsupported", dk_support_check(out, src));
		}
		char *s = r ? json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		if (s)
			puts(s);
		free(s);
		free(src);
		json_decref(r);
	}
	free(line);
	return rc;
}
