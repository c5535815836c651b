/*
 * cmd_contracts.c - `ehrgate contracts ...`: the operator's view of the
 * access-policy contract state (docs/CONTRACTS.md §5).
 *
 *   ehrgate contracts rebuild [-c FILE] [--set k=v]
 *       Recompute policy_contracts and policy_groups from the ledger alone
 *       (admin connection), re-verifying every signature. Prints a JSON
 *       report with the state digest before and after. Exit 0 when every
 *       contract.* entry verified, 1 when some were rejected (the state is
 *       still rebuilt, without them) or on error.
 *   ehrgate contracts digest [-c FILE]
 *       Print the SHA-256 digest of the materialised state.
 *   ehrgate contracts group add|remove GROUP SERVER [-c FILE]
 *       Add or remove a medical server to or from a named group; a ledger
 *       entry (contract.group.add / contract.group.remove).
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/db.h"
#include "policy/policy.h"
#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"

static int usage(void)
{
	fprintf(stderr, "usage: ehrgate contracts rebuild|digest [-c FILE] [--set section.key=value]\n"
	                "       ehrgate contracts group add|remove GROUP SERVER [-c FILE]\n");
	return 2;
}

static PGconn *admin_connect(const struct gw_config *cfg)
{
	const char *url = gw_config_get(cfg, "database", "admin_url");
	PGconn *c;

	if (url == NULL || url[0] == '\0')
		url = gw_config_get(cfg, "database", "url");
	c = PQconnectdb(url ? url : "");
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "ehrgate contracts: cannot connect to the database (admin_url)\n");
		PQfinish(c);
		return NULL;
	}
	return c;
}

static void print_digest(const char *label, const uint8_t d[32])
{
	struct ehr_buf hex = EHR_BUF_INIT(80);

	if (ehr_hex_encode(&hex, d, 32) == 0)
		printf("%s%s", label, ehr_buf_cstr(&hex));
	ehr_buf_free(&hex);
}

static int cmd_rebuild(const struct gw_config *cfg, bool digest_only)
{
	struct policy_rebuild_report rep;
	uint8_t before[32], after[32];
	PGconn *c = admin_connect(cfg);
	int rc = 1;

	if (c == NULL)
		return 1;
	if (policy_store_digest(c, before) < 0) {
		fprintf(stderr, "ehrgate contracts: %s\n", ehr_error_detail());
		goto out;
	}
	if (digest_only) {
		print_digest("", before);
		printf("\n");
		rc = 0;
		goto out;
	}
	if (policy_store_rebuild(c, &rep) < 0 || policy_store_digest(c, after) < 0) {
		fprintf(stderr, "ehrgate contracts rebuild: %s\n", ehr_error_detail());
		goto out;
	}
	printf("{\"entries\":%llu,\"applied\":%llu,\"rejected\":%llu", (unsigned long long)rep.entries,
	       (unsigned long long)rep.applied, (unsigned long long)rep.rejected);
	if (rep.rejected)
		printf(",\"first_rejected_seq\":%llu", (unsigned long long)rep.first_rejected_seq);
	print_digest(",\"digest_before\":\"", before);
	print_digest("\",\"digest_after\":\"", after);
	printf("\",\"changed\":%s}\n", memcmp(before, after, 32) != 0 ? "true" : "false"); /* not secret */
	if (rep.rejected)
		fprintf(stderr,
		        "ehrgate contracts rebuild: %llu ledger entries do not prove consent and were "
		        "not materialised; first at seq %llu: %s\n",
		        (unsigned long long)rep.rejected, (unsigned long long)rep.first_rejected_seq,
		        rep.first_reason);
	rc = rep.rejected ? 1 : 0;
out:
	PQfinish(c);
	return rc;
}

static int cmd_group(const struct gw_config *cfg, int argc, char **argv)
{
	struct gw_app *app = NULL;
	struct ledger_receipt rcpt;
	void *conn = NULL;
	bool add;
	int rc = 1, err;

	if (argc != 4 || (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "remove") != 0))
		return usage();
	add = strcmp(argv[1], "add") == 0;
	if (gw_app_open(&app, cfg, GW_APP_DB | GW_APP_LEDGER) < 0) {
		fprintf(stderr, "ehrgate contracts group: %s\n", ehr_error_detail());
		return 1;
	}
	if ((err = ehr_db_acquire(gw_app_db(app), &conn)) < 0) {
		fprintf(stderr, "ehrgate contracts group: %s\n", ehr_error_detail());
		goto out;
	}
	err = policy_group_change(conn, gw_app_ledger(app), "operator", argv[2], argv[3], add, &rcpt);
	ehr_db_release(gw_app_db(app), conn, err < 0 && err != EHR_ERR_INVAL);
	if (err < 0) {
		fprintf(stderr, "ehrgate contracts group: %s\n", ehr_error_detail());
		goto out;
	}
	printf("{\"seq\":%llu,\"type\":\"%s\"}\n", (unsigned long long)rcpt.seq,
	       add ? POLICY_ENTRY_GROUP_ADD : POLICY_ENTRY_GROUP_REMOVE);
	rc = 0;
out:
	gw_app_close(app);
	return rc;
}

int gw_cmd_contracts(int argc, char **argv)
{
	struct gw_config *cfg = NULL;
	int rc;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage();
		return 0;
	}
	rc = gw_config_from_args(&cfg, &argc, argv);
	if (rc != 0)
		return rc;
	if (argc == 2 && strcmp(argv[1], "rebuild") == 0)
		rc = cmd_rebuild(cfg, false);
	else if (argc == 2 && strcmp(argv[1], "digest") == 0)
		rc = cmd_rebuild(cfg, true);
	else if (argc >= 2 && strcmp(argv[1], "group") == 0)
		rc = cmd_group(cfg, argc - 1, argv + 1);
	else
		rc = usage();
	gw_config_free(cfg);
	return rc;
}
