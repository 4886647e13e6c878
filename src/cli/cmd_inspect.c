#include "cli.h"

/* Placeholder until the inspect command lands. */
int dk_cmd_inspect(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	dk_cli_error("'inspect' is not built yet");
	return DK_EXIT_FATAL;
}
