#include "cli.h"

/* Placeholder until the run command lands. */
int dk_cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	dk_cli_error("'run' is not built yet");
	return DK_EXIT_FATAL;
}
