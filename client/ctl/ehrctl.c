/*
 * ehrctl.c - the command-line client for medical servers, patients and
 * auditors (docs/PROTOCOL.md §8). Registration, enrolment, login and
 * identity here; records, audit and contracts in cmd_*.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "client/ctl/ctl_commands.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: ehrctl [--dir DIR] <command> [options]\n"
	        "\n"
	        "  --dir DIR   profile directory (default $EHRCTL_DIR, else ~/.ehrctl)\n"
	        "\n"
	        "commands:\n"
	        "  register --url URL --token TOKEN [--ca FILE] [--out DIR]\n"
	        "                       medical server or auditor: new P-256 key, CSR, certificate\n"
	        "  renew                renew the certificate (same id and role)\n"
	        "  patient create --external-id ID\n"
	        "                       (medical server) create a patient; prints its pseudonym and code\n"
	        "  patient enroll --url URL --code CODE --patient ID [--key FILE] [--ca FILE] [--out DIR]\n"
	        "                       bind a device key (0600 file) to a patient\n"
	        "  patient login        challenge + token; stores the access token (0600)\n"
	        "  patient erase --basis CODE\n"
	        "                       (patient) erase yourself: records, keys, contracts, link\n"
	        "  patient watch [--from N] [--count N] [--json]\n"
	        "                       (patient) follow every access to your records, live\n"
	        "  whoami               an authenticated call (mTLS or DPoP): who the gateway sees\n"
	        "  record ...           EHR records (ehrctl record --help)\n"
	        "  contract ...         access contracts (ehrctl contract --help)\n"
	        "  audit ...            ledger queries and verification (ehrctl audit --help)\n"
	        "  receipt ...          a ledger entry's receipt: get it, verify it offline\n"
	        "                       (ehrctl receipt --help)\n"
	        "\n"
	        "Every command is a client of the gateway's HTTP API: schemas/openapi.yaml\n"
	        "(OpenAPI 3.1), with the rules in docs/PROTOCOL.md, STORAGE.md, CONTRACTS.md, AUDIT.md.\n"
	        "Every command and subcommand takes --help (no profile needed).\n"
	        "Errors name the gateway's answer: \"ehrctl: 403 forbidden: <message>\".\n"
	        "exit status: 0 ok; 1 the gateway refused (an HTTP error reply), or audit verify\n"
	        "             found the ledger failing a check; 2 usage; 3 the gateway could not\n"
	        "             be reached or the command failed locally (connection, TLS, profile,\n"
	        "             files)\n");
}

static int fail(const char *what)
{
	return ctl_fail(what);
}

static int cmd_register(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' }, { "token", required_argument, NULL, 't' },
		{ "ca", required_argument, NULL, 'c' },  { "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },      { NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *token = NULL, *ca = NULL, *dir = ehr_client_default_dir();
	json_t *info = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 't': token = optarg; break;
		case 'c': ca = optarg; break;
		case 'o': dir = optarg; break;
		case 'h':
			printf("usage: ehrctl register --url URL --token TOKEN [--ca FILE] [--out DIR]\n"
			       "  Generates a P-256 key (DIR/key.pem, 0600) and a CSR, registers with the "
			       "one-time\n"
			       "  token, and stores cert.pem, regca.pem, gateway-ca.pem and profile.json in "
			       "DIR.\n"
			       "  --ca pins the gateway's CA for this first contact (else the system "
			       "store).\n");
			return 0;
		default: return 2;
		}
	}
	if (url == NULL || token == NULL || optind != argc) {
		fprintf(stderr, "ehrctl register: --url and --token are required\n");
		return 2;
	}
	if (ehr_client_register(url, ca, token, dir, &info) < 0)
		return fail("register");
	printf("registered %s %s, certificate valid until %s\n",
	       json_string_value(json_object_get(info, "role")),
	       json_string_value(json_object_get(info, "id")),
	       json_string_value(json_object_get(info, "not_after")));
	json_decref(info);
	return 0;
}

static int cmd_renew(int argc, char **argv)
{
	json_t *info = NULL;

	if (ctl_wants_help(argc, argv)) {
		printf("usage: ehrctl [--dir DIR] renew\n  New key and certificate, same id and role, "
		       "authenticated with the current certificate.\n");
		return 0;
	}
	if (argc != 1)
		return 2;
	if (ehr_client_renew(ehr_client_default_dir(), &info) < 0)
		return fail("renew");
	printf("renewed %s, certificate valid until %s\n", json_string_value(json_object_get(info, "id")),
	       json_string_value(json_object_get(info, "not_after")));
	json_decref(info);
	return 0;
}

/* POST path {key: value} with the profile's credentials; the reply printed. */
static int post_one(const char *what, const char *path, const char *key, const char *value)
{
	struct ehr_client *cl = NULL;
	json_t *req, *resp = NULL;
	long status = 0;
	int rc;

	if (ctl_open(&cl) != 0)
		return 1;
	req = json_pack("{s:s}", key, value);
	if (ehr_client_json(cl, &status, &resp, "POST", path, req) < 0)
		rc = fail(what);
	else
		rc = ctl_finish(cl, status, resp);
	json_decref(req);
	json_decref(resp);
	ehr_client_free(cl);
	return rc;
}

static int patient_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "external-id", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *ext = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'e': ext = optarg; break;
		case 'h':
			printf("usage: ehrctl [--dir DIR] patient create --external-id ID\n"
			       "  (medical server) Creates the patient; prints patient_id (a pseudonym), the "
			       "one-time\n"
			       "  enrolment_code to show the patient, and its expiry. ID is never stored "
			       "raw.\n");
			return 0;
		default: return 2;
		}
	}
	if (ext == NULL || optind != argc) {
		fprintf(stderr, "ehrctl patient create: --external-id is required\n");
		return 2;
	}
	return post_one("patient create", "/v1/patients", "external_id", ext);
}

/* POST /v1/me/erase: the patient's right to be forgotten (docs/ERASURE.md). */
static int patient_erase(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "basis", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *basis = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'b': basis = optarg; break;
		case 'h':
			printf("usage: ehrctl [--dir DIR] patient erase --basis CODE\n"
			       "  (patient) Erase yourself: every record, your device key, your contracts\n"
			       "  and the link from the hospital's id to your pseudonym. Irreversible.\n"
			       "  CODE: patient-request, gdpr-17-1-a..f (docs/ERASURE.md).\n");
			return 0;
		default: return 2;
		}
	}
	if (basis == NULL || optind != argc) {
		fprintf(stderr, "ehrctl patient erase: --basis CODE is required\n");
		return 2;
	}
	return post_one("patient erase", "/v1/me/erase", "basis", basis);
}

static int patient_enroll(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },     { "code", required_argument, NULL, 'c' },
		{ "patient", required_argument, NULL, 'p' }, { "key", required_argument, NULL, 'k' },
		{ "ca", required_argument, NULL, 'a' },      { "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *code = NULL, *pid = NULL, *key = NULL, *ca = NULL,
	           *dir = ehr_client_default_dir();
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 'c': code = optarg; break;
		case 'p': pid = optarg; break;
		case 'k': key = optarg; break;
		case 'a': ca = optarg; break;
		case 'o': dir = optarg; break;
		case 'h':
			printf("usage: ehrctl patient enroll --url URL --code CODE --patient ID [--key FILE] "
			       "[--ca FILE] "
			       "[--out DIR]\n"
			       "  Generates a P-256 device key in FILE (0600; default DIR/device.key; an "
			       "existing\n"
			       "  key is reused), proves possession by signing the code and the key's "
			       "thumbprint,\n"
			       "  and writes a patient profile to DIR.\n");
			return 0;
		default: return 2;
		}
	}
	if (url == NULL || code == NULL || pid == NULL || optind != argc) {
		fprintf(stderr, "ehrctl patient enroll: --url, --code and --patient are required\n");
		return 2;
	}
	if (ehr_client_enroll(url, ca, pid, code, key, dir) < 0)
		return fail("patient enroll");
	printf("enrolled %s\n", pid);
	return 0;
}

static int patient_login(int argc, char **argv)
{
	if (ctl_wants_help(argc, argv)) {
		printf("usage: ehrctl [--dir DIR] patient login\n  Signs a fresh challenge with the device "
		       "key and "
		       "stores the DPoP-bound access token in DIR/token.json (0600).\n");
		return 0;
	}
	if (argc != 1)
		return 2;
	if (ehr_client_login(ehr_client_default_dir()) < 0)
		return fail("patient login");
	printf("logged in\n");
	return 0;
}

static int cmd_patient(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		printf("usage: ehrctl patient create|enroll|login|erase|watch [--help]\n");
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "create") == 0)
		return patient_create(argc - 1, argv + 1);
	if (strcmp(argv[1], "enroll") == 0)
		return patient_enroll(argc - 1, argv + 1);
	if (strcmp(argv[1], "login") == 0)
		return patient_login(argc - 1, argv + 1);
	if (strcmp(argv[1], "erase") == 0)
		return patient_erase(argc - 1, argv + 1);
	if (strcmp(argv[1], "watch") == 0)
		return ctl_cmd_patient_watch(argc - 1, argv + 1);
	fprintf(stderr, "ehrctl patient: unknown command '%s'\n", argv[1]);
	return 2;
}

static int cmd_whoami(int argc, char **argv)
{
	struct ehr_client *cl = NULL;
	json_t *resp = NULL;
	long status = 0;
	int rc;

	if (ctl_wants_help(argc, argv)) {
		printf("usage: ehrctl [--dir DIR] whoami\n  GET /v1/whoami, authenticated with the profile's "
		       "certificate (mTLS) or access token and a DPoP proof.\n");
		return 0;
	}
	if (argc != 1)
		return 2;
	if (ctl_open(&cl) != 0)
		return 1;
	if (ehr_client_json(cl, &status, &resp, "GET", "/v1/whoami", NULL) < 0)
		rc = fail("whoami");
	else
		rc = ctl_finish(cl, status, resp);
	json_decref(resp);
	ehr_client_free(cl);
	return rc;
}

int main(int argc, char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			setenv("EHRCTL_DIR", argv[i + 1], 1);
			i += 2;
		} else if (strncmp(argv[i], "--dir=", 6) == 0) {
			setenv("EHRCTL_DIR", argv[i] + 6, 1);
			i++;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	argc -= i;
	argv += i;
	optind = 1;
	if (strcmp(argv[0], "register") == 0)
		return ctl_exit(cmd_register(argc, argv));
	if (strcmp(argv[0], "renew") == 0)
		return ctl_exit(cmd_renew(argc, argv));
	if (strcmp(argv[0], "patient") == 0)
		return ctl_exit(cmd_patient(argc, argv));
	if (strcmp(argv[0], "whoami") == 0)
		return ctl_exit(cmd_whoami(argc, argv));
	if (strcmp(argv[0], "record") == 0)
		return ctl_exit(ctl_cmd_record(argc, argv));
	if (strcmp(argv[0], "audit") == 0)
		return ctl_exit(ctl_cmd_audit(argc, argv));
	if (strcmp(argv[0], "contract") == 0)
		return ctl_exit(ctl_cmd_contract(argc, argv));
	if (strcmp(argv[0], "receipt") == 0)
		return ctl_exit(ctl_cmd_receipt(argc, argv));
	fprintf(stderr, "ehrctl: unknown command '%s'\n", argv[0]);
	usage(stderr);
	return 2;
}
