/*
 * cmd_admin.c - `ehrgate admin`: registration tokens, revocation, listings,
 * and dispatch of `admin rotate-kek` to the storage area (cmd_kek.c).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: ehrgate admin <command> [-c CONFIG] [--set section.key=value]...\n"
	           "\n"
	           "commands:\n"
	           "  issue-token --role server|auditor --name NAME [--ttl 24h]\n"
	           "        print a one-time registration token (256 bits, base64url) on stdout;\n"
	           "        only its SHA-256 is stored. --ttl: N, Ns, Nm, Nh or Nd (default 24h).\n"
	           "  revoke ID|SERIAL\n"
	           "        revoke a server/auditor id (all its certificates), one certificate\n"
	           "        (lower-case hex serial) or a patient (pt-...). Effective at once.\n"
	           "  list principals|tokens|patients\n"
	           "        print JSON (no secrets).\n"
	           "  erase-patient PATIENT_ID --basis CODE\n"
	           "        erase a patient (right to be forgotten; docs/ERASURE.md). Exit 3: refused\n"
	           "        (retention or legal hold), recorded in the ledger.\n"
	           "  migrate-pseudonyms [--external-ids FILE|-]\n"
	           "        create link.key if absent; link pre-0055 (derived) patients from their\n"
	           "        external ids, one per line; print how many remain unlinked.\n"
	           "  rotate-kek ...\n"
	           "        re-wrap data keys under a new key-encryption key (see its --help).\n"
	           "  erase RECORD_ID --basis CODE\n"
	           "        erase one record: data key destroyed, object deleted, ehr.erase entry\n"
	           "        (see its --help for the legal-basis codes).\n"
	           "  hold place|lift (--patient PID | --record RID) --reason CODE | hold list\n"
	           "        legal holds: while one is in force, erasure is refused.\n");
}

static int open_app(struct gw_app **app, struct gw_config **cfg, int *argc, char **argv, unsigned what)
{
	int rc = gw_config_from_args(cfg, argc, argv);

	if (rc != 0)
		return rc;
	if (gw_app_open(app, *cfg, what) < 0) {
		fprintf(stderr, "ehrgate admin: %s\n", ehr_error_detail());
		gw_config_free(*cfg);
		*cfg = NULL;
		return 1;
	}
	return 0;
}

static int cmd_issue_token(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ "ttl", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	struct ehr_buf tok = EHR_BUF_INIT(128);
	const char *role = NULL, *name = NULL, *ttls = "24h";
	int64_t ttl, expires = 0;
	char when[32];
	int c, rc;

	rc = gw_config_from_args(&cfg, &argc, argv);
	if (rc != 0)
		return rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': role = optarg; break;
		case 'n': name = optarg; break;
		case 't': ttls = optarg; break;
		case 'h':
			usage(stdout);
			gw_config_free(cfg);
			return 0;
		default:
			usage(stderr);
			gw_config_free(cfg);
			return 2;
		}
	}
	if (role == NULL || name == NULL || (strcmp(role, "server") != 0 && strcmp(role, "auditor") != 0) ||
	    auth_parse_duration(&ttl, ttls) < 0 || optind != argc) {
		fprintf(stderr, "ehrgate admin issue-token: need --role server|auditor, --name NAME, a valid "
		                "--ttl\n");
		gw_config_free(cfg);
		return 2;
	}
	if (gw_app_open(&app, cfg, GW_APP_DB) < 0) {
		fprintf(stderr, "ehrgate admin: %s\n", ehr_error_detail());
		gw_config_free(cfg);
		return 1;
	}
	rc = auth_admin_issue_token(gw_app_db(app), &tok, role, name, ttl, &expires);
	if (rc < 0) {
		fprintf(stderr, "ehrgate admin issue-token: %s\n", ehr_error_detail());
		rc = 1;
	} else {
		ehr_time_rfc3339(when, expires * 1000);
		printf("%s\n", ehr_buf_cstr(&tok));
		fprintf(stderr, "registration token for role %s, expires %s (single use)\n", role, when);
		rc = 0;
	}
	ehr_buf_free_secure(&tok);
	gw_app_close(app);
	gw_config_free(cfg);
	return rc;
}

static int cmd_revoke(int argc, char **argv)
{
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	struct auth_event_sink events;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if ((rc = open_app(&app, &cfg, &argc, argv, GW_APP_DB | GW_APP_LEDGER)) != 0)
		return rc;
	/* The revocation's "auth.revoke" entry goes to the ledger before it commits. */
	events.append = gw_ledger_event;
	events.ud = gw_app_ledger(app);
	if (argc != 2) {
		fprintf(stderr, "usage: ehrgate admin revoke ID|SERIAL|PATIENT_ID\n");
		rc = 2;
	} else if (auth_admin_revoke(gw_app_db(app), &events, argv[1]) < 0) {
		fprintf(stderr, "ehrgate admin revoke: %s\n", ehr_error_detail());
		rc = 1;
	} else {
		fprintf(stderr, "revoked %s\n", argv[1]);
		rc = 0;
	}
	gw_app_close(app);
	gw_config_free(cfg);
	return rc;
}

static int cmd_list(int argc, char **argv, const char *what)
{
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	json_t *out = NULL;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if ((rc = open_app(&app, &cfg, &argc, argv, GW_APP_DB)) != 0)
		return rc;
	if (what == NULL && argc == 2)
		what = argv[1];
	if (what == NULL || argc > 2) {
		fprintf(stderr, "usage: ehrgate admin list principals|tokens|patients\n");
		rc = 2;
	} else if (auth_admin_list(gw_app_db(app), &out, what) < 0) {
		fprintf(stderr, "ehrgate admin list: %s\n", ehr_error_detail());
		rc = 1;
	} else {
		json_dumpf(out, stdout, JSON_INDENT(2));
		printf("\n");
		rc = 0;
	}
	json_decref(out);
	gw_app_close(app);
	gw_config_free(cfg);
	return rc;
}

int gw_cmd_admin(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (sub == NULL || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
		usage(sub == NULL ? stderr : stdout);
		return sub == NULL ? 2 : 0;
	}
	/* Each subcommand sees its own name as argv[0]. */
	if (strcmp(sub, "issue-token") == 0)
		return cmd_issue_token(argc - 1, argv + 1);
	if (strcmp(sub, "revoke") == 0)
		return cmd_revoke(argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return cmd_list(argc - 1, argv + 1, NULL);
	if (strcmp(sub, "list-principals") == 0)
		return cmd_list(argc - 1, argv + 1, "principals");
	if (strcmp(sub, "list-tokens") == 0)
		return cmd_list(argc - 1, argv + 1, "tokens");
	if (strcmp(sub, "list-patients") == 0)
		return cmd_list(argc - 1, argv + 1, "patients");
	if (strcmp(sub, "erase-patient") == 0)
		return gw_cmd_admin_erase_patient(argc - 1, argv + 1);
	if (strcmp(sub, "migrate-pseudonyms") == 0)
		return gw_cmd_admin_migrate_pseudonyms(argc - 1, argv + 1);
	if (strcmp(sub, "rotate-kek") == 0)
		return gw_cmd_admin_rotate_kek(argc - 1, argv + 1);
	if (strcmp(sub, "erase") == 0)
		return gw_cmd_admin_erase(argc - 1, argv + 1);
	if (strcmp(sub, "hold") == 0)
		return gw_cmd_admin_hold(argc - 1, argv + 1);
	fprintf(stderr, "ehrgate admin: unknown command '%s'\n", sub);
	usage(stderr);
	return 2;
}
