/* docket chunk: walk, extract and chunk inputs into JSONL, no inference. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "docket/gguf.h"
#include "docket/ingest.h"
#include "docket/tokenizer.h"

static void chunk_usage(FILE *f)
{
	fprintf(f, "usage: docket chunk INPUT... [-m MODEL] [--max-tokens N] [--overlap N] [-o OUT.jsonl]\n\n"
		   "Extracts text from every file and archive member and splits it into\n"
		   "token-bounded chunks.  Writes JSONL: for each input record a line\n"
		   "{\"type\":\"document\",...} followed by its {\"type\":\"chunk\",...} lines.\n\n"
		   "  -m, --model PATH        count tokens with this GGUF model's tokenizer\n"
		   "                          (default: a fast estimate, about 4-5 bytes per token)\n"
		   "  --max-tokens N          tokens per chunk (default 512)\n"
		   "  --overlap N             tokens shared by consecutive chunks (default 64)\n"
		   "  --no-text               leave the chunk text out (offsets only)\n"
		   "  -o, --output PATH       output file (default: stdout)\n"
		   "  -q, --quiet             no summary on stderr\n"
		   "%s",
		dk_ingest_options_help());
}

struct tokctx {
	struct dk_tokenizer *tok;
	dk_token *ids;
	size_t cap;
};

static int count_tokens(void *ud, const char *text, size_t len)
{
	struct tokctx *t = ud;
	/* a token covers at least one byte, so len + a few bounds the count */
	if (t->cap < len + 8) {
		size_t nc = len + 8 > t->cap * 2 ? len + 8 : t->cap * 2;
		dk_token *n = realloc(t->ids, nc * sizeof *n);
		if (!n)
			return (int)len;
		t->ids = n;
		t->cap = nc;
	}
	int k = dk_tokenize(t->tok, text, len, false, false, t->ids, (int)t->cap);
	return k < 0 ? -k : k;
}

static int emit(FILE *out, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return -1;
	int r = fputs(s, out) < 0 || fputc('\n', out) == EOF ? -1 : 0;
	free(s);
	return r;
}

int dk_cmd_chunk(int argc, char **argv)
{
	struct dk_ingest_params p = dk_ingest_default_params();
	struct dk_chunk_params cp = dk_chunk_default_params();
	const char *model = NULL, *outpath = NULL;
	bool with_text = true, quiet = false;
	const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
	size_t n_inputs = 0;
	char err[512];
	int rc = DK_EXIT_OK;
	struct dk_gguf *g = NULL;
	struct tokctx tc = {0};
	struct dk_ingest *ing = NULL;
	FILE *out = stdout;
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
		bool has_next = i + 1 < argc;
		if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_next) {
			model = argv[++i];
		} else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has_next) {
			outpath = argv[++i];
		} else if ((!strcmp(a, "--max-tokens") || !strcmp(a, "--overlap")) && has_next) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			bool max = !strcmp(a, "--max-tokens");
			if (*end || end == argv[i] || v < (max ? 1 : 0) || v > 1000000) {
				dk_cli_error("bad value '%s' for %s", argv[i], a);
				rc = DK_EXIT_USAGE;
				goto out;
			}
			*(max ? &cp.max_tokens : &cp.overlap_tokens) = (int)v;
		} else if (!strcmp(a, "--no-text")) {
			with_text = false;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			quiet = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			chunk_usage(stdout);
			goto out;
		} else if (!strcmp(a, "--")) {
			while (++i < argc)
				inputs[n_inputs++] = argv[i];
		} else if (a[0] == '-' && a[1]) {
			dk_cli_error("unknown option or missing value '%s' for chunk (see 'docket chunk --help')", a);
			rc = DK_EXIT_USAGE;
			goto out;
		} else {
			inputs[n_inputs++] = a;
		}
	}
	if (!n_inputs) {
		chunk_usage(stderr);
		rc = DK_EXIT_USAGE;
		goto out;
	}
	if (cp.overlap_tokens > cp.max_tokens / 2) {
		dk_cli_error("--overlap %d must be at most half of --max-tokens %d", cp.overlap_tokens, cp.max_tokens);
		rc = DK_EXIT_USAGE;
		goto out;
	}
	if (model) {
		if (dk_gguf_open(&g, model) != DK_OK) {
			dk_cli_error("%s", g ? dk_gguf_error(g) : "out of memory");
			rc = DK_EXIT_FATAL;
			goto out;
		}
		if (dk_tokenizer_new(&tc.tok, g) != DK_OK) {
			dk_cli_error("cannot load the tokenizer of '%s': %s", model,
				     tc.tok ? dk_tokenizer_error(tc.tok) : "out of memory");
			rc = DK_EXIT_FATAL;
			goto out;
		}
		cp.count = count_tokens;
		cp.count_ud = &tc;
	}
	if (outpath && strcmp(outpath, "-")) {
		out = fopen(outpath, "w");
		if (!out) {
			dk_cli_error("cannot write '%s': %s", outpath, strerror(errno));
			out = stdout;
			rc = DK_EXIT_FATAL;
			goto out;
		}
	}
	if (dk_ingest_new(&ing, &p) != DK_OK) {
		dk_cli_error("%s", dk_ingest_error(ing));
		rc = DK_EXIT_FATAL;
		goto out;
	}
	for (size_t i = 0; i < n_inputs; i++)
		dk_ingest_add(ing, inputs[i]);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	const struct dk_doc *d;
	enum dk_status st;
	uint64_t n_chunks = 0;
	while ((st = dk_ingest_next(ing, &d)) == DK_OK) {
		struct dk_chunk *ch = NULL;
		size_t nch = 0;
		if (d->action == DK_DOC_EXTRACT &&
		    dk_chunk_text(d->text, d->text_len, d->sha256, &cp, &ch, &nch) != DK_OK) {
			dk_cli_error("out of memory chunking '%s'", d->path);
			rc = DK_EXIT_FATAL;
			break;
		}
		json_t *o = json_object();
		json_object_set_new(o, "type", json_string("document"));
		json_t *dj = dk_doc_to_json(d);
		json_object_update(o, dj);
		json_decref(dj);
		json_object_set_new(o, "chunks", json_integer((json_int_t)nch));
		int w = emit(out, o);
		for (size_t k = 0; k < nch && !w; k++) {
			json_t *c = dk_chunk_to_json(d, &ch[k], with_text);
			w = emit(out, c);
		}
		n_chunks += nch;
		free(ch);
		if (w) {
			dk_cli_error("cannot write output: %s", strerror(errno));
			rc = DK_EXIT_FATAL;
			break;
		}
	}
	if (st == DK_FATAL) {
		dk_cli_error("%s", dk_ingest_error(ing));
		rc = DK_EXIT_FATAL;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (fflush(out) != 0 && rc == DK_EXIT_OK) {
		dk_cli_error("cannot write output: %s", strerror(errno));
		rc = DK_EXIT_FATAL;
	}
	if (!quiet) {
		struct dk_ingest_stats s;
		dk_ingest_stats(ing, &s);
		double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
		if (sec <= 0)
			sec = 1e-9;
		fprintf(stderr,
			"docket: %llu documents (%llu extracted, %llu skipped), %llu chunks; "
			"%.1f MB in %.2f s: %.1f MB/s, %.0f files/s\n",
			(unsigned long long)s.docs, (unsigned long long)s.extracted, (unsigned long long)s.skipped,
			(unsigned long long)n_chunks, (double)s.bytes_read / 1e6, sec, (double)s.bytes_read / 1e6 / sec,
			(double)s.docs / sec);
	}
out:
	if (out && out != stdout)
		fclose(out);
	dk_ingest_free(ing);
	dk_tokenizer_free(tc.tok);
	free(tc.ids);
	dk_gguf_free(g);
	dk_ingest_params_release(&p);
	free(inputs);
	return rc;
}
