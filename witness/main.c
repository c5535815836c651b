/*
 * main.c - the ehrwitness program (docs/WITNESS.md):
 *
 *   ehrwitness init --key FILE --name NAME   new Ed25519 cosigner key; prints its vkey
 *   ehrwitness serve -c CONFIG [--set section.key=value ...]
 *   ehrwitness vkey -c CONFIG                print the configured key's vkey
 */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "witness/witness.h"

#define MAX_SETS 32

static void usage(FILE *f)
{
	fprintf(f, "usage: ehrwitness <command> [options]\n\n"
	           "commands:\n"
	           "  init --key FILE --name NAME   write a new Ed25519 witness key (mode 0600, never\n"
	           "                                overwritten) and print its cosignature vkey\n"
	           "  serve -c FILE [--set section.key=value ...]\n"
	           "                                run the witness (C2SP tlog-witness over HTTPS)\n"
	           "  vkey -c FILE                  print the configured witness key's vkey\n"
	           "\nSee docs/WITNESS.md for the configuration file.\n");
}

static int fail(const char *what)
{
	fprintf(stderr, "ehrwitness %s: %s\n", what, ehr_error_detail());
	return 1;
}

static int cmd_init(int argc, char **argv)
{
	struct ehr_buf vkey = EHR_BUF_INIT(512);
	const char *key = NULL, *name = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[++i];
		else {
			usage(stderr);
			return 2;
		}
	}
	if (key == NULL || name == NULL) {
		usage(stderr);
		return 2;
	}
	if (witness_init_key(key, name, &vkey) < 0)
		return fail("init");
	printf("%s\n", ehr_buf_cstr(&vkey));
	ehr_buf_free(&vkey);
	return 0;
}

/* -c FILE and --set pairs after the command. */
static int config_args(int argc, char **argv, const char **path, const char **sets, size_t cap)
{
	size_t n = 0;

	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			*path = argv[++i];
		else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && n + 1 < cap)
			sets[n++] = argv[++i];
		else
			return -1;
	}
	sets[n] = NULL;
	return *path == NULL ? -1 : 0;
}

static int cmd_serve(int argc, char **argv, bool serve)
{
	static struct witness_config cfg; /* large: not on the stack */
	const char *path = NULL, *sets[MAX_SETS + 1];
	struct rlimit nocore = { 0, 0 };

	if (config_args(argc, argv, &path, sets, EHR_ARRAY_LEN(sets)) < 0) {
		usage(stderr);
		return 2;
	}
	if (witness_config_load(&cfg, path, sets) < 0)
		return fail("config");
	if (!serve) {
		struct ehr_buf vkey = EHR_BUF_INIT(512);

		if (witness_config_vkey(&cfg, &vkey) < 0)
			return fail("vkey");
		printf("%s\n", ehr_buf_cstr(&vkey));
		ehr_buf_free(&vkey);
		return 0;
	}
	/* the key is the witness's crown jewel: no core dumps, no ptrace peers */
	setrlimit(RLIMIT_CORE, &nocore);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (witness_serve(&cfg) < 0)
		return fail("serve");
	return 0;
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
	if (strcmp(argv[1], "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1, true);
	if (strcmp(argv[1], "vkey") == 0)
		return cmd_serve(argc - 1, argv + 1, false);
	fprintf(stderr, "ehrwitness: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
