/* The docket command line: one dk_cmd_<name> per subcommand, each in its
 * own cmd_<name>.c.  Each returns the process exit status.  Errors go to
 * stderr as one line "docket: ..." (dk_cli_die / dk_cli_error). */
#ifndef DK_CLI_H
#define DK_CLI_H

#include <stdbool.h>

/* Exit statuses (documented in the README). */
enum {
	DK_EXIT_OK = 0,
	DK_EXIT_USAGE = 1,    /* bad arguments or configuration */
	DK_EXIT_PARTIAL = 2,  /* finished, but some inputs failed */
	DK_EXIT_FATAL = 3,    /* could not run / could not finish */
};

int dk_cmd_inspect(int argc, char **argv);
int dk_cmd_tokenize(int argc, char **argv);
int dk_cmd_generate(int argc, char **argv);
int dk_cmd_perplexity(int argc, char **argv);
int dk_cmd_bench(int argc, char **argv);
int dk_cmd_ls(int argc, char **argv);
int dk_cmd_chunk(int argc, char **argv);
int dk_cmd_run(int argc, char **argv);
int dk_cmd_batch(int argc, char **argv);
int dk_cmd_merge(int argc, char **argv);

/* Prints "docket: <msg>" on stderr. */
void dk_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The model to use: opt (from -m/--model) if given, else $DOCKET_MODEL,
 * else the default model in the user cache ($XDG_CACHE_HOME or ~/.cache,
 * docket/models/SmolLM2-135M-Instruct.Q4_1.gguf).  Returns a static
 * string; when nothing is found, prints how to fetch it and returns NULL. */
const char *dk_cli_model_path(const char *opt);

/* Default thread count: physical cores. */
int dk_cli_default_threads(void);

#endif
