/*
 * cmd_contract.c - `ehrctl contract create|list|revoke` (patient profile).
 *
 * The contract is built here, canonicalised (RFC 8785) and signed with the
 * device key (ES256) by contracts/, exactly as docs/CONTRACTS.md §1 says,
 * so the gateway never sees the key.
 *
 *   ehrctl contract create (--server ID | --group NAME) [--actions read,append]
 *          [--all | --records ID,ID | --categories CAT,CAT] [--purpose P]
 *          [--not-before UNIX] [--not-after UNIX | --days N]
 *   ehrctl contract list
 *   ehrctl contract revoke CID
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl/ctl_commands.h"
#include "policy/policy.h"

static void usage_to(FILE *f)
{
	fprintf(f, "usage: ehrctl contract create (--server ID | --group NAME) [--actions read,append]\n"
	           "                              [--all | --records ID,.. | --categories CAT,..]\n"
	           "                              [--purpose P] [--not-before UNIX] [--not-after UNIX | "
	           "--days N]\n"
	           "       ehrctl contract list\n"
	           "       ehrctl contract revoke CID\n");
}

static int usage(void)
{
	usage_to(stderr);
	return 2;
}

/* "a,b,c" -> ["a","b","c"] (empty items refused). */
static json_t *csv_array(const char *s)
{
	json_t *a = json_array();
	const char *p = s;

	while (a && p && *p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == 0 || json_array_append_new(a, json_stringn(p, n)) != 0) {
			json_decref(a);
			return NULL;
		}
		p = comma ? comma + 1 : NULL;
	}
	return a;
}

static int nonce(char out[32])
{
	struct ehr_buf b = EHR_BUF_INIT(32);
	int err = ehr_random_token(&b, 16);

	if (err == 0)
		err = ehr_str_copy(out, 32, ehr_buf_cstr(&b));
	ehr_buf_free(&b);
	return err;
}

/* {member: doc, "signature": ES256(JCS(doc))} with the device key. */
static json_t *sign_envelope(struct ehr_client *c, const char *member, json_t *doc)
{
	struct ehr_buf sig = EHR_BUF_INIT(128);
	json_t *env = NULL;
	EVP_PKEY *key = ehr_client_device_key(c);

	if (key == NULL) {
		fprintf(stderr, "ehrctl contract: this profile has no device key (patients only)\n");
	} else if (policy_sign_es256(&sig, doc, key) < 0) {
		fprintf(stderr, "ehrctl contract: cannot sign: %s\n", ehr_error_msg());
	} else {
		env = json_pack("{s:O, s:s}", member, doc, "signature", ehr_buf_cstr(&sig));
	}
	ehr_buf_free(&sig);
	return env;
}

static int parse_i64(const char *s, int64_t *out)
{
	if (ehr_parse_i64(out, s, 0, 9007199254740991LL) < 0) {
		fprintf(stderr, "ehrctl contract: '%s' is not a valid integer\n", s);
		return -1;
	}
	return 0;
}

static int cmd_create(struct ehr_client *c, int argc, char **argv)
{
	const char *server = NULL, *group = NULL, *actions = "read", *records = NULL, *cats = NULL,
	           *purpose = "treatment";
	int64_t now = ehr_now_ms() / 1000, nb = now, na = 0, days = 30;
	json_t *doc = NULL, *env = NULL, *resp = NULL, *scope, *acts;
	struct policy_contract check;
	char n[32];
	long status = 0;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--all") == 0) {
			records = cats = NULL;
			continue;
		}
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(a, "--server") == 0)
			server = v;
		else if (strcmp(a, "--group") == 0)
			group = v;
		else if (strcmp(a, "--actions") == 0)
			actions = v;
		else if (strcmp(a, "--records") == 0)
			records = v;
		else if (strcmp(a, "--categories") == 0)
			cats = v;
		else if (strcmp(a, "--purpose") == 0)
			purpose = v;
		else if (strcmp(a, "--not-before") == 0) {
			if (parse_i64(v, &nb) < 0)
				return 2;
		} else if (strcmp(a, "--not-after") == 0) {
			if (parse_i64(v, &na) < 0)
				return 2;
		} else if (strcmp(a, "--days") == 0) {
			if (parse_i64(v, &days) < 0)
				return 2;
		} else
			return usage();
	}
	if ((server == NULL) == (group == NULL) || (records && cats))
		return usage();
	if (na == 0)
		na = nb + days * 86400;
	if (records)
		scope = json_pack("{s:o}", "records", csv_array(records));
	else if (cats)
		scope = json_pack("{s:o}", "categories", csv_array(cats));
	else
		scope = json_pack("{s:b}", "all", 1);
	acts = csv_array(actions);
	if (nonce(n) < 0 || scope == NULL || acts == NULL) {
		json_decref(scope);
		json_decref(acts);
		fprintf(stderr, "ehrctl contract: bad arguments\n");
		return 2;
	}
	doc = json_pack("{s:s, s:s, s:{s:s}, s:o, s:o, s:s, s:I, s:I, s:I, s:s}", "type",
	                "ehrgate.contract.v1", "patient", ehr_client_id(c), "grantee",
	                server ? "server" : "group", server ? server : group, "actions", acts, "scope", scope,
	                "purpose", purpose, "not_before", (json_int_t)nb, "not_after", (json_int_t)na,
	                "issued_at", (json_int_t)now, "nonce", n);
	/* Check locally with the gateway's own rules before signing. */
	if (doc == NULL || policy_contract_from_json(&check, doc) < 0) {
		fprintf(stderr, "ehrctl contract: invalid contract: %s\n", ehr_error_msg());
		rc = 2;
		goto out;
	}
	policy_contract_clear(&check);
	if ((env = sign_envelope(c, "contract", doc)) == NULL)
		goto out;
	if (ehr_client_json(c, &status, &resp, "POST", "/v1/me/contracts", env) < 0) {
		fprintf(stderr, "ehrctl contract: %s\n", ehr_error_msg());
		goto out;
	}
	rc = ctl_finish(c, status, resp);
out:
	json_decref(doc);
	json_decref(env);
	json_decref(resp);
	return rc;
}

static int cmd_revoke(struct ehr_client *c, const char *cid)
{
	json_t *doc, *env = NULL, *resp = NULL;
	struct ehr_buf path = EHR_BUF_INIT(256);
	char n[32];
	long status = 0;
	int rc = 1;

	if (nonce(n) < 0)
		return 1;
	doc = json_pack("{s:s, s:s, s:s, s:I, s:s}", "type", "ehrgate.revocation.v1", "patient",
	                ehr_client_id(c), "cid", cid, "issued_at", (json_int_t)(ehr_now_ms() / 1000), "nonce",
	                n);
	{
		struct policy_revocation check;
		if (doc == NULL || policy_revocation_from_json(&check, doc) < 0) {
			fprintf(stderr, "ehrctl contract: invalid revocation: %s\n", ehr_error_msg());
			rc = 2;
			goto out;
		}
	}
	if ((env = sign_envelope(c, "revocation", doc)) == NULL)
		goto out;
	if (ehr_buf_printf(&path, "/v1/me/contracts/%s/revoke", cid) < 0 ||
	    ehr_client_json(c, &status, &resp, "POST", ehr_buf_cstr(&path), env) < 0) {
		fprintf(stderr, "ehrctl contract: %s\n", ehr_error_msg());
		goto out;
	}
	rc = ctl_finish(c, status, resp);
out:
	ehr_buf_free(&path);
	json_decref(doc);
	json_decref(env);
	json_decref(resp);
	return rc;
}

int ctl_cmd_contract(int argc, char **argv)
{
	struct ehr_client *c = NULL;
	int rc;

	if (argc < 2)
		return usage();
	if (ctl_wants_help(argc, argv)) { /* before the profile: help needs none */
		usage_to(stdout);
		return 0;
	}
	if (strcmp(argv[1], "create") != 0 && strcmp(argv[1], "list") != 0 && strcmp(argv[1], "revoke") != 0)
		return usage();
	if (strcmp(argv[1], "revoke") == 0 && argc != 3)
		return usage();
	if (ctl_open(&c) != 0)
		return 1;
	if (strcmp(argv[1], "create") == 0) {
		rc = cmd_create(c, argc - 1, argv + 1);
	} else if (strcmp(argv[1], "list") == 0) {
		json_t *resp = NULL;
		long status = 0;
		if (ehr_client_json(c, &status, &resp, "GET", "/v1/me/contracts", NULL) < 0) {
			fprintf(stderr, "ehrctl contract: %s\n", ehr_error_msg());
			rc = 1;
		} else {
			rc = ctl_finish(c, status, resp);
		}
		json_decref(resp);
	} else {
		rc = cmd_revoke(c, argv[2]);
	}
	ehr_client_free(c);
	return rc;
}
