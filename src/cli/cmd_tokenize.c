#include "cli.h"

/* Placeholder until the tokenize command lands. */
int dk_cmd_tokenize(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	dk_cli_error("'tokenize' is not built yet");
	return DK_EXIT_FATAL;
}
