#include "cli.h"

/* Placeholder until the perplexity command lands. */
int dk_cmd_perplexity(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	dk_cli_error("'perplexity' is not built yet");
	return DK_EXIT_FATAL;
}
