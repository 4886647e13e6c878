#include "cli.h"

/* Placeholder until the generate command lands. */
int dk_cmd_generate(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	dk_cli_error("'generate' is not built yet");
	return DK_EXIT_FATAL;
}
