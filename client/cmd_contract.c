/* cmd_contract.c - placeholder until its owner lands `ehrctl contract`. */
#include <stdio.h>

#include "client/ctl_commands.h"

int ctl_cmd_contract(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "ehrctl %s: not implemented\n", argv[0]);
	return 2;
}
