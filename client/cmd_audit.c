/* cmd_audit.c - placeholder until its owner lands `ehrctl audit`. */
#include <stdio.h>

#include "client/ctl_commands.h"

int ctl_cmd_audit(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "ehrctl %s: not implemented\n", argv[0]);
	return 2;
}
