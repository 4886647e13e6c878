#include "cli.h"

/* Placeholder until the merge command lands. */
int dk_cmd_merge(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	dk_cli_error("'merge' is not built yet");
	return DK_EXIT_FATAL;
}
