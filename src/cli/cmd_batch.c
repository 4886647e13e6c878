/* docket batch IN.jsonl -o OUT.jsonl: an OpenAI Batch input file, run locally. */
#include <stdbool.h>

#include "cli.h"

/* In cmd_run.c: the options are shared with `docket run`. */
int dk_cli_run_main(int argc, char **argv, bool batch);

int dk_cmd_batch(int argc, char **argv) { return dk_cli_run_main(argc, argv, true); }
