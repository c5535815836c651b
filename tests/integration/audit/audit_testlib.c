/* audit_testlib.c - see audit_testlib.h. */
#include "tests/integration/audit/audit_testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>

#include "tests/harness/harness.h"

int atl_ledger_open(struct ledger **out, EVP_PKEY **key, const struct ehr_db_fixture *db)
{
	struct ledger_config cfg;

	*key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (*key == NULL)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "keygen");
	memset(&cfg, 0, sizeof(cfg));
	cfg.conninfo = db->app_ci;
	cfg.origin = "ehrgate.test/ledger";
	cfg.signing_key = *key;
	cfg.batch_ms = 1;
	return ledger_open(out, &cfg);
}

int atl_patient_key(EVP_PKEY **key, json_t **jwk)
{
	uint8_t pub[65];
	size_t len = 0;
	struct ehr_buf x = EHR_BUF_INIT(64), y = EHR_BUF_INIT(64);
	int err = 0;

	*jwk = NULL;
	*key = EVP_EC_gen("P-256");
	if (*key == NULL)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "EVP_EC_gen");
	GUARD_OSSL(EVP_PKEY_get_octet_string_param(*key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len));
	ENSURE(len == 65, EHR_ERR_CRYPTO);
	GUARD_GOTO(ehr_b64url_encode(&x, pub + 1, 32));
	GUARD_GOTO(ehr_b64url_encode(&y, pub + 33, 32));
	*jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", ehr_buf_cstr(&x), "y",
	                 ehr_buf_cstr(&y));
	ENSURE_GOTO(*jwk != NULL, EHR_ERR_NOMEM);
out:
	ehr_buf_free(&x);
	ehr_buf_free(&y);
	return err;
}

static json_t *envelope(EVP_PKEY *key, const char *member, json_t *doc)
{
	struct ehr_buf sig = EHR_BUF_INIT(128);
	json_t *env = NULL;

	if (doc && policy_sign_es256(&sig, doc, key) == 0)
		env = json_pack("{s:o, s:s}", member, doc, "signature", ehr_buf_cstr(&sig));
	else
		json_decref(doc);
	ehr_buf_free(&sig);
	return env;
}

static void nonce(char out[32])
{
	struct ehr_buf b = EHR_BUF_INIT(32);
	if (ehr_random_token(&b, 16) == 0)
		snprintf(out, 32, "%s", ehr_buf_cstr(&b));
	ehr_buf_free(&b);
}

json_t *atl_contract(EVP_PKEY *key, const char *patient, const char *grantee_json, const char *actions_json,
                     const char *scope_json, const char *purpose, int64_t nb, int64_t na)
{
	char n[32] = "";
	json_t *doc;

	nonce(n);
	doc = json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:I, s:I, s:I, s:s}", "type", "ehrgate.contract.v1",
	                "patient", patient, "grantee", json_loads(grantee_json, 0, NULL), "actions",
	                json_loads(actions_json, 0, NULL), "scope", json_loads(scope_json, 0, NULL),
	                "purpose", purpose, "not_before", (json_int_t)nb, "not_after", (json_int_t)na,
	                "issued_at", (json_int_t)nb, "nonce", n);
	return envelope(key, "contract", doc);
}

json_t *atl_revocation(EVP_PKEY *key, const char *patient, const char *cid)
{
	char n[32] = "";
	json_t *doc;

	nonce(n);
	doc = json_pack("{s:s, s:s, s:s, s:I, s:s}", "type", "ehrgate.revocation.v1", "patient", patient,
	                "cid", cid, "issued_at", (json_int_t)(ehr_now_ms() / 1000), "nonce", n);
	return envelope(key, "revocation", doc);
}

long long atl_scalar(void *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	long long v = -1;
	int64_t x;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	    ehr_parse_i64(&x, PQgetvalue(r, 0, 0), INT64_MIN, INT64_MAX) == 0)
		v = x;
	PQclear(r);
	return v;
}
