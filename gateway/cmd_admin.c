/* cmd_admin.c - placeholder until its owner lands it. */
#include <stdio.h>

#include "gateway/commands.h"

int gw_cmd_admin(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "ehrgate: %s is not implemented yet\n", argv[0]);
	return 2;
}
