/* cmd_serve.c - `ehrgate serve` (being written). */
#include <stdio.h>

#include "gateway/commands.h"

int gw_cmd_serve(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "ehrgate %s: not implemented yet\n", argv[0]);
	return 2;
}
