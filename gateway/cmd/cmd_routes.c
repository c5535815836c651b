/*
 * cmd_routes.c - `ehrgate routes [--test]`: the router's tables, one route
 * a line, "METHOD PATTERN NAME ROLES QUERY", in match order (QUERY: the
 * query parameter names the route accepts, comma-separated, or "-"). It reads the tables
 * serve mounts (gw_route_tables), so tests/openapi/check_routes.js can hold
 * schemas/openapi.yaml to the code without a hand-kept list.
 */
#include <stdio.h>
#include <string.h>

#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"

static void print_roles(unsigned roles)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = { { GW_ROLE_PATIENT, "patient" },
		      { GW_ROLE_SERVER, "server" },
		      { GW_ROLE_AUDITOR, "auditor" } };
	const char *sep = "";

	if (roles == 0) {
		fputs("public", stdout);
		return;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (roles & names[i].bit) {
			printf("%s%s", sep, names[i].name);
			sep = ",";
		}
	}
}

int gw_cmd_routes(int argc, char **argv)
{
	const struct gw_route *tables[GW_ROUTE_TABLES];
	size_t lens[GW_ROUTE_TABLES];
	size_t n = gw_route_tables(tables, lens);

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: ehrgate routes [--test]\n\n"
		       "Print the routes `ehrgate serve` mounts, one a line: METHOD PATTERN NAME ROLES "
		       "QUERY\n"
		       "(roles: public or a comma-separated list of patient, server, auditor; query: the\n"
		       "query parameters the route accepts, comma-separated, or -).\n"
		       "--test adds the routes mounted only with [server] test_routes = true.\n");
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--test") == 0) {
		n = GW_ROUTE_TABLES;
	} else if (argc != 1) {
		fprintf(stderr, "usage: ehrgate routes [--test]\n");
		return 2;
	}
	for (size_t t = 0; t < n; t++) {
		for (size_t i = 0; i < lens[t]; i++) {
			const char *q = tables[t][i].query;
			printf("%s %s %s ", tables[t][i].method, tables[t][i].pattern, tables[t][i].name);
			print_roles(tables[t][i].roles);
			putchar(' ');
			if (q == NULL || *q == '\0')
				putchar('-');
			for (; q && *q; q++)
				putchar(*q == ' ' ? ',' : *q);
			putchar('\n');
		}
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
