#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "docket/docket.h"

/* docket version [--json]: for scripts, the version and what the engine
 * computes with on this machine. */
static int cmd_version(int argc, char **argv)
{
	bool json = argc > 1 && !strcmp(argv[1], "--json");
	if (argc > 2 || (argc == 2 && !json)) {
		dk_cli_error("usage: docket version [--json]");
		return DK_EXIT_USAGE;
	}
	if (json)
		printf("{\"version\":\"%s\",\"kernels\":\"%s\"}\n", DK_VERSION_STRING,
		       dk_kernel_level_name());
	else
		printf("docket %s (kernels %s)\n", DK_VERSION_STRING, dk_kernel_level_name());
	return DK_EXIT_OK;
}

struct command {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
};

static const struct command commands[] = {
	{"run", dk_cmd_run, "run a pipeline over inputs: run PIPELINE INPUT... -o OUT.jsonl"},
	{"batch", dk_cmd_batch, "run an OpenAI Batch input file locally: batch IN.jsonl -o OUT.jsonl"},
	{"merge", dk_cmd_merge, "merge shard outputs: merge OUT.jsonl SHARD.jsonl..."},
	{"ls", dk_cmd_ls, "list what would be processed: ls [--json] INPUT..."},
	{"chunk", dk_cmd_chunk, "extract and chunk without inference: chunk INPUT... -o chunks.jsonl"},
	{"generate", dk_cmd_generate, "generate text: generate -m MODEL -p PROMPT [--chat] [-n N]"},
	{"tokenize", dk_cmd_tokenize, "tokenize text: tokenize -m MODEL [--ids] (TEXT | -f FILE)"},
	{"perplexity", dk_cmd_perplexity, "perplexity of a text: perplexity -m MODEL -f FILE -c N"},
	{"inspect", dk_cmd_inspect, "show a GGUF file's metadata and tensors: inspect MODEL"},
	{"bench", dk_cmd_bench, "measure engine speed: bench -m MODEL [--json]"},
	{"version", cmd_version, "the version and kernel level: version [--json]"},
};

void dk_cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("docket: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *dk_cli_model_path(const char *opt)
{
	static char buf[4096];
	if (opt && *opt)
		return opt;
	const char *env = getenv("DOCKET_MODEL");
	if (env && *env)
		return env;
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	if (xdg && *xdg)
		snprintf(buf, sizeof buf, "%s/docket/models/SmolLM2-135M-Instruct.Q4_1.gguf", xdg);
	else
		snprintf(buf, sizeof buf, "%s/.cache/docket/models/SmolLM2-135M-Instruct.Q4_1.gguf",
			 home ? home : "");
	if (access(buf, R_OK) == 0)
		return buf;
	dk_cli_error("no model given and the default model is not at '%s'; "
		     "run scripts/fetch-model.sh, or pass --model PATH / set DOCKET_MODEL", buf);
	return NULL;
}

int dk_cli_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: docket COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\n'docket COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return DK_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return DK_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("docket %s (kernels %s)\n", DK_VERSION_STRING, dk_kernel_level_name());
		return DK_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	dk_cli_error("unknown command '%s' (see 'docket --help')", argv[1]);
	return DK_EXIT_USAGE;
}
