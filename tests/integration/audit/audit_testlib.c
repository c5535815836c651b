/* audit_testlib.c - see audit_testlib.h. */
#include "tests/integration/audit/audit_testlib.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>

#include "tests/harness/harness.h"

#ifndef EHR_SOURCE_DIR
#error "EHR_SOURCE_DIR must be defined"
#endif

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int apply_file(PGconn *c, const char *path)
{
	struct ehr_buf sql = EHR_BUF_INIT(1 << 22);
	PGresult *r;
	int err = 0;

	GUARD(ehr_file_read(&sql, path, 1 << 22));
	r = PQexec(c, ehr_buf_cstr(&sql));
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		err = ehr_error_set(EHR_ERR_DB, "%s: %s", path, PQerrorMessage(c));
	PQclear(r);
	ehr_buf_free(&sql);
	return err;
}

int atl_db_create(struct atl_db *db)
{
	const char *base = ehr_test_env("EHRGATE_TEST_PG");
	char dir[512], *names[256];
	size_t n = 0;
	PGconn *c;
	PGresult *r;
	DIR *d;
	struct dirent *de;
	int err = 0;
	static unsigned counter;

	memset(db, 0, sizeof(*db));
	if (base == NULL)
		return ehr_error_set(EHR_ERR_CONFIG, "EHRGATE_TEST_PG is not set");
	snprintf(db->name, sizeof(db->name), "audit_%d_%u", (int)getpid(), counter++);
	c = PQconnectdb(base);
	if (PQstatus(c) != CONNECTION_OK) {
		err = ehr_error_set(EHR_ERR_DB, "connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return err;
	}
	{
		char sql[160];
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db->name);
		r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			err = ehr_error_set(EHR_ERR_DB, "%s", PQerrorMessage(c));
		PQclear(r);
		/* Roles are cluster-wide: make sure the app role exists with a
		 * password we know, whatever migration 0001 does. */
		r = PQexec(c,
		           "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ehrgate_app') "
		           "THEN CREATE ROLE ehrgate_app LOGIN PASSWORD 'app'; END IF; END $$");
		PQclear(r);
	}
	PQfinish(c);
	GUARD(err);
	snprintf(db->conninfo, sizeof(db->conninfo), "%s dbname=%s", base, db->name);
	snprintf(db->app_conninfo, sizeof(db->app_conninfo), "%s dbname=%s user=ehrgate_app password=app",
	         base, db->name);
	c = PQconnectdb(db->conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		err = ehr_error_set(EHR_ERR_DB, "connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return err;
	}
	r = PQexec(c, "SET client_min_messages = warning");
	PQclear(r);
	snprintf(dir, sizeof(dir), "%s/schemas/sql", EHR_SOURCE_DIR);
	d = opendir(dir);
	while (d && (de = readdir(d)) != NULL && n < EHR_ARRAY_LEN(names)) {
		const char *s = de->d_name;
		size_t l = strlen(s);
		int num;
		if (l < 9 || strcmp(s + l - 4, ".sql") != 0 || s[0] < '0' || s[0] > '9')
			continue;
		num = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
		if (!((num >= 1 && num <= 19) || (num >= 40 && num <= 49)))
			continue;
		names[n++] = strdup(s);
	}
	if (d)
		closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (err == 0)
			err = apply_file(c, path);
		free(names[i]);
	}
	if (err < 0) {
		PQfinish(c);
		return err;
	}
	db->conn = c;
	return 0;
}

void atl_db_drop(struct atl_db *db)
{
	const char *base = ehr_test_env("EHRGATE_TEST_PG");
	PGconn *c;

	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
	if (base == NULL || db->name[0] == '\0')
		return;
	c = PQconnectdb(base);
	if (PQstatus(c) == CONNECTION_OK) {
		char sql[160];
		PGresult *r;
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
		r = PQexec(c, sql);
		PQclear(r);
	}
	PQfinish(c);
}

int atl_ledger_open(struct ledger **out, EVP_PKEY **key, const struct atl_db *db)
{
	struct ledger_config cfg;

	*key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (*key == NULL)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "keygen");
	memset(&cfg, 0, sizeof(cfg));
	cfg.conninfo = db->app_conninfo;
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
