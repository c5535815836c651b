/* cmd_kek.c - placeholder until its owner lands it. */
#include <stdio.h>

#include "gateway/commands.h"

int gw_cmd_admin_rotate_kek(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "ehrgate: %s is not implemented yet\n", argv[0]);
	return 2;
}
