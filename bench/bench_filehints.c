/* The rules alone: for each path on stdin (the input it was walked from as
 * argv[1..], if any), the {{hints}} classify-files puts in its prompt, one
 * "PATH<TAB>HINTS" line each.  bench/classify_files.sh scores the rules'
 * guess ("| Rules: L") against the hand labels, beside the model's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/filehints.h"

int main(int argc, char **argv)
{
	const char *const *inputs = (const char *const *)argv + 1;
	char line[4096];
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\n")] = 0;
		FILE *f = fopen(line, "rb");
		if (!f) {
			fprintf(stderr, "bench_filehints: cannot open '%s'\n", line);
			continue;
		}
		/* the bytes stand in for the extracted text: the same for plain text */
		size_t cap = 1 << 20, n = 0;
		char *buf = malloc(cap + 1);
		if (buf)
			n = fread(buf, 1, cap, f);
		fclose(f);
		if (!buf)
			return 1;
		buf[n] = 0;
		struct dk_buf b = {0};
		if (dk_filehints_describe(dk_filehints_rel(line, inputs, (size_t)(argc - 1)), buf, strlen(buf), &b))
			return 1;
		printf("%s\t%s\n", line, b.data ? b.data : "");
		dk_buf_free(&b);
		free(buf);
	}
	return 0;
}
