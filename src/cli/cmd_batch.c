#include "cli.h"

/* Placeholder until the batch command lands. */
int dk_cmd_batch(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	dk_cli_error("'batch' is not built yet");
	return DK_EXIT_FATAL;
}
