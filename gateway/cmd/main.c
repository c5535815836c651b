/* main.c - `ehrgate` dispatches to its subcommands (gateway/commands.h). */
#include <stdio.h>
#include <string.h>

#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"

#ifndef EHRGATE_VERSION
#define EHRGATE_VERSION "0.1.0"
#endif

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
	{ "init", gw_cmd_init, "create the state directory: dev PKI, ledger, token and encryption keys" },
	{ "migrate", gw_cmd_migrate, "apply the SQL migrations in order, once each" },
	{ "serve", gw_cmd_serve, "run the gateway" },
	{ "ledger", gw_cmd_ledger, "ledger tools (verify, ...)" },
	{ "admin", gw_cmd_admin, "operator tasks: registration tokens, revocation, key rotation" },
	{ "fsck", gw_cmd_fsck, "find and remove orphan objects in the store" },
	{ "contracts", gw_cmd_contracts, "access-contract tools (rebuild, ...)" },
	{ "routes", gw_cmd_routes, "list the HTTP routes serve mounts (schemas/openapi.yaml covers them)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ehrgate [--help | --version] <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nEvery command takes --help. Commands that read the configuration take\n"
	           "-c/--config FILE and --set section.key=value (see docs/OPERATIONS.md).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("ehrgate %s\n", EHRGATE_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "ehrgate: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
