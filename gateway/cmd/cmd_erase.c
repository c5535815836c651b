/*
 * cmd_erase.c - the operator's erasure commands (docs/ERASURE.md):
 *
 *   ehrgate admin erase RECORD_ID --basis CODE
 *   ehrgate admin hold place|lift (--patient PID | --record RID) --reason CODE
 *   ehrgate admin hold list
 *   ehrgate admin erase-patient PATIENT_ID --basis CODE
 *
 * Each calls one function of the record service (records_erase,
 * records_hold_place/lift/list) or gw_patient_erase (the right to be
 * forgotten), with "operator" as the ledger actor.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"
#include "records/records.h"

static void print_codes(FILE *f, const char *const *codes)
{
	for (size_t i = 0; codes[i] != NULL; i++)
		fprintf(f, "%s%s", i ? ", " : "", codes[i]);
	fprintf(f, "\n");
}

static void erase_usage(FILE *f)
{
	fprintf(f,
	        "usage: ehrgate admin erase RECORD_ID --basis CODE [-c CONFIG] [--set section.key=value]...\n"
	        "Erase one record: its data key is destroyed, its object deleted, and an ehr.erase\n"
	        "ledger entry records the basis. Refused (exit 3) inside the record's minimum\n"
	        "retention ([retention]) or under a legal hold. Legal-basis codes:\n  ");
	print_codes(f, records_erase_bases);
}

static void hold_usage(FILE *f)
{
	fprintf(f, "usage: ehrgate admin hold place|lift (--patient PID | --record RID) --reason CODE\n"
	           "       ehrgate admin hold list\n"
	           "Place or lift a legal hold (an ehr.hold.place / ehr.hold.lift ledger entry); while\n"
	           "a hold is in force, erasure of the record (or of any record of the patient) is\n"
	           "refused. Reason codes:\n  ");
	print_codes(f, records_hold_reasons);
}

/* Open the app for a records command; 0, or an exit status (cfg freed). */
static int open_records(struct gw_config **cfg, struct gw_app **app, const char *who)
{
	if (gw_app_open(app, *cfg, GW_APP_DB | GW_APP_LEDGER | GW_APP_STORE) < 0 ||
	    gw_app_ledger(*app) == NULL) {
		fprintf(stderr, "ehrgate admin %s: %s\n", who,
		        *app ? "the ledger is not available in this build" : ehr_error_detail());
		gw_app_close(*app);
		gw_config_free(*cfg);
		*app = NULL;
		*cfg = NULL;
		return 1;
	}
	return 0;
}

static void close_records(struct gw_config *cfg, struct gw_app *app)
{
	gw_app_close(app);
	gw_config_free(cfg);
}

/* The refusal on stderr, as the 409 body has it. */
static void print_refusal(const char *cmd, const struct records_refusal *why)
{
	json_t *j = json_object();
	char *t;

	records_refusal_json(j, why);
	json_object_set_new(j, "refused_seq", json_integer((json_int_t)why->refused_seq));
	t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	fprintf(stderr, "ehrgate admin %s: refused: %s\n", cmd, t ? t : "");
	free(t);
	json_decref(j);
}

static int run_erase(struct gw_app *app, const char *rid, const char *basis)
{
	struct records_env env = { gw_app_db(app), gw_app_ledger(app), gw_app_store(app) };
	struct records_retention ret;
	struct records_erase_out out;
	struct records_erase_in in = { rid, NULL, "operator", RECORDS_BY_OPERATOR, basis, &ret };
	int err;

	if (gw_retention_from_config(gw_app_config(app), &ret) < 0) {
		fprintf(stderr, "ehrgate admin erase: %s\n", ehr_error_detail());
		return 1;
	}
	err = records_erase(&env, &in, &out);
	if (err == 0) {
		printf("{\"record_id\":\"%s\",\"state\":\"erased\",\"erase_seq\":%llu,\"already_erased\":%s}"
		       "\n",
		       rid, (unsigned long long)out.erase_seq, out.was_erased ? "true" : "false");
		return 0;
	}
	if (out.stage == RECORDS_AT_REFUSED) {
		print_refusal("erase", &out.refusal);
		return 3;
	}
	fprintf(stderr, "ehrgate admin erase: %s%s\n", ehr_error_detail(),
	        out.stage == RECORDS_AT_OBJECT || out.stage == RECORDS_AT_COMPLETE ||
	                        (out.stage == RECORDS_AT_COMMIT && err != EHR_ERR_CONFLICT)
	                ? " (if the erasure began, run the command again or ehrgate fsck to finish it)"
	                : "");
	return err == EHR_ERR_NOT_FOUND || err == EHR_ERR_INVAL ? 2 : 1;
}

/*
 * `ehrgate admin CMD ID --basis CODE [-c CONFIG] [--set ...]`, the shape of
 * both erasure commands: parse, open the app, run(app, ID, CODE). Returns
 * the exit status (usage errors 2, with the usage on stderr).
 */
static int basis_command(int argc, char **argv, const char *cmd, void (*usage)(FILE *),
                         int (*run)(struct gw_app *, const char *, const char *))
{
	static const struct option opts[] = {
		{ "basis", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	const char *basis = NULL;
	int c, rc;

	if ((rc = gw_config_from_args(&cfg, &argc, argv)) != 0)
		return rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'b': basis = optarg; break;
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
	if (basis == NULL || optind != argc - 1 || !records_erase_basis_ok(basis)) {
		usage(stderr);
		gw_config_free(cfg);
		return 2;
	}
	if ((rc = open_records(&cfg, &app, cmd)) != 0)
		return rc;
	rc = run(app, argv[optind], basis);
	close_records(cfg, app);
	return rc;
}

int gw_cmd_admin_erase(int argc, char **argv)
{
	return basis_command(argc, argv, "erase", erase_usage, run_erase);
}

static int run_hold(struct gw_app *app, const char *verb, const struct records_hold_in *in)
{
	struct records_env env = { gw_app_db(app), gw_app_ledger(app), gw_app_store(app) };
	struct ledger_receipt rc;
	uint64_t id = 0;
	json_t *list = NULL;
	int err;

	if (strcmp(verb, "list") == 0) {
		if ((err = records_hold_list(&env, &list)) == 0) {
			json_dumpf(list, stdout, JSON_INDENT(2));
			printf("\n");
			json_decref(list);
		}
	} else {
		err = strcmp(verb, "place") == 0 ? records_hold_place(&env, in, &id, &rc)
		                                 : records_hold_lift(&env, in, &id, &rc);
		if (err == 0)
			printf("{\"hold_id\":%llu,\"%s_seq\":%llu}\n", (unsigned long long)id, verb,
			       (unsigned long long)rc.seq);
	}
	if (err < 0) {
		fprintf(stderr, "ehrgate admin hold %s: %s\n", verb, ehr_error_detail());
		return err == EHR_ERR_NOT_FOUND || err == EHR_ERR_EXISTS || err == EHR_ERR_INVAL ? 2 : 1;
	}
	return 0;
}

int gw_cmd_admin_hold(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "patient", required_argument, NULL, 'p' },
		{ "record", required_argument, NULL, 'r' },
		{ "reason", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct records_hold_in in = { .actor = "operator" };
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	const char *verb = argc > 1 ? argv[1] : "";
	bool list;
	int c, rc;

	if ((rc = gw_config_from_args(&cfg, &argc, argv)) != 0)
		return rc;
	/* argv[1] is the verb: getopt sees it as its argv[0]. */
	optind = 1;
	while (argc > 1 && (c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': in.patient = optarg; break;
		case 'r': in.record_id = optarg; break;
		case 'e': in.reason = optarg; break;
		case 'h':
			hold_usage(stdout);
			gw_config_free(cfg);
			return 0;
		default:
			hold_usage(stderr);
			gw_config_free(cfg);
			return 2;
		}
	}
	list = strcmp(verb, "list") == 0;
	if (optind != argc - 1 || !(list || strcmp(verb, "place") == 0 || strcmp(verb, "lift") == 0) ||
	    (!list &&
	     ((in.patient == NULL) == (in.record_id == NULL) || !records_hold_reason_ok(in.reason)))) {
		hold_usage(stderr);
		gw_config_free(cfg);
		return 2;
	}
	if ((rc = open_records(&cfg, &app, "hold")) != 0)
		return rc;
	rc = run_hold(app, verb, &in);
	close_records(cfg, app);
	return rc;
}

static void erase_patient_usage(FILE *f)
{
	fprintf(f, "usage: ehrgate admin erase-patient PATIENT_ID --basis CODE [-c CONFIG] [--set "
	           "section.key=value]...\n"
	           "Erase a patient (right to be forgotten): every record, the device key, the contracts\n"
	           "and the link from the external id (docs/ERASURE.md §10). Refused (exit 3, recorded)\n"
	           "while a record is inside its minimum retention ([retention]) or a legal hold is in\n"
	           "force. Running it again finishes an erasure a crash interrupted. Legal-basis codes:\n  ");
	print_codes(f, records_erase_bases);
}

static int run_erase_patient(struct gw_app *app, const char *pid, const char *basis)
{
	struct gw_patient_erase_out out;
	struct records_refusal why;
	int err = gw_patient_erase(app, pid, basis, "operator", "operator", &out, &why);

	if (err == 0) {
		printf("{\"patient_id\":\"%s\",\"state\":\"erased\",\"erase_seq\":%llu,\"records_erased\":%"
		       "llu,"
		       "\"already\":%s}\n",
		       pid, (unsigned long long)out.erase_seq, (unsigned long long)out.records_erased,
		       out.already ? "true" : "false");
		return 0;
	}
	if (err == EHR_ERR_CONFLICT && why.kind != RECORDS_REFUSED_NONE) {
		print_refusal("erase-patient", &why);
		return 3;
	}
	fprintf(stderr, "ehrgate admin erase-patient: %s\n", ehr_error_detail());
	return err == EHR_ERR_INVAL || err == EHR_ERR_NOT_FOUND ? 2 : 1;
}

int gw_cmd_admin_erase_patient(int argc, char **argv)
{
	return basis_command(argc, argv, "erase-patient", erase_patient_usage, run_erase_patient);
}
