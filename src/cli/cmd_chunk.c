#include "cli.h"

/* Placeholder until the chunk command lands. */
int dk_cmd_chunk(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	dk_cli_error("'chunk' is not built yet");
	return DK_EXIT_FATAL;
}
