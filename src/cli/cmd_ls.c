#include "cli.h"

/* Placeholder until the ls command lands. */
int dk_cmd_ls(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	dk_cli_error("'ls' is not built yet");
	return DK_EXIT_FATAL;
}
