#include "cli.h"

/* Placeholder until the bench command lands. */
int dk_cmd_bench(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	dk_cli_error("'bench' is not built yet");
	return DK_EXIT_FATAL;
}
