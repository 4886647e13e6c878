/* docket tokenize: the token ids (and pieces) a model's tokenizer gives for a
 * text.  Only the GGUF metadata is read; the weights are never touched. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "docket/gguf.h"
#include "docket/tokenizer.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: docket tokenize [-m MODEL] [--no-bos] [--no-special] [--ids] (TEXT | -f FILE)\n"
		"  prints one line per token, \"ID<TAB>PIECE\" (the piece's bytes with \\n, \\t,\n"
		"  \\r, \\\\ and other control or invalid UTF-8 bytes escaped as \\xNN)\n"
		"  -m, --model PATH   GGUF model (default: $DOCKET_MODEL, then the default model)\n"
		"  -f, --file FILE    tokenize FILE's bytes exactly as they are\n"
		"      --ids          print only the ids, space-separated, on one line\n"
		"      --no-bos       do not add BOS/EOS (add_special = false)\n"
		"      --no-special   treat text such as <|im_start|> as plain text\n");
}

/* Writes s[0..n) with control bytes, backslashes and bytes that are not part
 * of a well-formed UTF-8 sequence escaped. */
static void put_escaped(FILE *b, const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		if (c == '\\') {
			fputs("\\\\", b);
		} else if (c == '\n') {
			fputs("\\n", b);
		} else if (c == '\t') {
			fputs("\\t", b);
		} else if (c == '\r') {
			fputs("\\r", b);
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(b, "\\x%02x", c);
		} else if (c < 0x80) {
			fputc((char)c, b);
		} else {
			size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c <= 0xef ? 3
				     : c >= 0xc2 && c <= 0xdf ? 2 : 0;
			bool ok = len && i + len <= n;
			for (size_t k = 1; ok && k < len; k++)
				ok = (s[i + k] & 0xc0) == 0x80;
			if (ok) {
				fwrite(s + i, 1, len, b);
				i += len;
				continue;
			}
			fprintf(b, "\\x%02x", c);
		}
		i++;
	}
}

static char *read_all(const char *path, size_t *n)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f)
		return NULL;
	char *data = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&data, &len);
	char tmp[65536];
	size_t k;
	bool err = !m;
	while (!err && (k = fread(tmp, 1, sizeof tmp, f)) > 0)
		err = fwrite(tmp, 1, k, m) != k;
	err = err || ferror(f);
	if (m && fclose(m))
		err = true;
	if (f != stdin)
		fclose(f);
	if (err) {
		free(data);
		return NULL;
	}
	*n = len;
	return data;
}

int dk_cmd_tokenize(int argc, char **argv)
{
	enum { O_IDS = 256, O_NO_BOS, O_NO_SPECIAL, O_HELP };
	static const struct option opts[] = {
		{"model", required_argument, 0, 'm'}, {"file", required_argument, 0, 'f'},
		{"ids", no_argument, 0, O_IDS}, {"no-bos", no_argument, 0, O_NO_BOS},
		{"no-special", no_argument, 0, O_NO_SPECIAL}, {"help", no_argument, 0, O_HELP},
		{0, 0, 0, 0}};
	const char *model = NULL, *file = NULL;
	bool ids_only = false, add_special = true, parse_special = true;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'f': file = optarg; break;
		case O_IDS: ids_only = true; break;
		case O_NO_BOS: add_special = false; break;
		case O_NO_SPECIAL: parse_special = false; break;
		case 'h':
		case O_HELP: usage(stdout); return DK_EXIT_OK;
		default: usage(stderr); return DK_EXIT_USAGE;
		}
	}
	int npos = argc - optind;
	if ((file && npos != 0) || (!file && npos != 1)) {
		dk_cli_error("tokenize takes one TEXT argument or -f FILE");
		return DK_EXIT_USAGE;
	}
	const char *path = dk_cli_model_path(model);
	if (!path)
		return DK_EXIT_USAGE;

	char *text;
	size_t len;
	if (file) {
		text = read_all(file, &len);
		if (!text) {
			dk_cli_error("cannot read '%s': %m", file);
			return DK_EXIT_FATAL;
		}
	} else {
		len = strlen(argv[optind]);
		text = malloc(len + 1);
		if (!text) {
			dk_cli_error("out of memory");
			return DK_EXIT_FATAL;
		}
		memcpy(text, argv[optind], len + 1);
	}

	int rc = DK_EXIT_FATAL;
	struct dk_gguf *g = NULL;
	struct dk_tokenizer *t = NULL;
	dk_token *ids = NULL;
	if (dk_gguf_open(&g, path) != DK_OK) {
		dk_cli_error("%s", g ? dk_gguf_error(g) : "out of memory");
		goto done;
	}
	if (dk_tokenizer_new(&t, g) != DK_OK) {
		dk_cli_error("%s", dk_tokenizer_error(t));
		goto done;
	}
	int n = dk_tokenize(t, text, len, add_special, parse_special, NULL, 0);
	if (n < 0) {
		if (n == INT32_MIN || !(ids = malloc(sizeof *ids * (size_t)-n))) {
			dk_cli_error("out of memory");
			goto done;
		}
		n = dk_tokenize(t, text, len, add_special, parse_special, ids, -n);
	}
	char small[256];
	for (int i = 0; i < n; i++) {
		if (ids_only) {
			printf(i ? " %d" : "%d", ids[i]);
			continue;
		}
		printf("%d\t", ids[i]);
		char *piece = small;
		int pl = dk_token_to_piece(t, ids[i], small, sizeof small, true);
		if (pl < 0) {
			piece = malloc((size_t)-pl);
			if (!piece) {
				dk_cli_error("out of memory");
				goto done;
			}
			pl = dk_token_to_piece(t, ids[i], piece, -pl, true);
		}
		put_escaped(stdout, (const unsigned char *)piece, (size_t)pl);
		if (piece != small)
			free(piece);
		putchar('\n');
	}
	if (ids_only)
		putchar('\n');
	if (fflush(stdout) != 0 || ferror(stdout)) {
		dk_cli_error("cannot write the output");
		goto done;
	}
	rc = DK_EXIT_OK;
done:
	free(ids);
	free(text);
	dk_tokenizer_free(t);
	dk_gguf_free(g);
	return rc;
}
