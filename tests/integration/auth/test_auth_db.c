/*
 * test_auth_db.c - auth/ against a real PostgreSQL with the real ledger:
 * single-use registration tokens (also under a race), revocation, renewal,
 * enrolment codes, challenge nonces, DPoP jti replay, and ledger events with
 * rate-limited failures.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/x509_vfy.h>

#include "common/db.h"
#include "auth/auth.h"
#include "ledger/ledger.h"
#include "tests/harness/harness.h"
#include "tests/harness/dbfix.h"
#include "tests/unit/auth/authtest.h"

static struct ehr_db_fixture db;
static char state[256];
static struct ehr_db_pool *pool;
static struct ledger *ledger;
static struct auth_ctx *ctx;

/* auth's event sink as the gateway wires it (to the real ledger), with a
 * switch that makes it fail like an unavailable ledger would. */
static struct test_sink {
	struct ledger *ledger;
	int fail;   /* 0, or the error every append returns */
	int called; /* appends seen, failed or not */
} sink;

static int test_sink_append(void *ud, const char *type, const char *actor, const char *subject,
                            const json_t *payload)
{
	struct test_sink *s = ud;
	struct ledger_entry_in in = { .type = type, .actor = actor, .subject = subject, .payload = payload };
	struct ledger_receipt rcpt;

	s->called++;
	if (s->fail < 0)
		return ehr_error_set(s->fail, "test sink refuses the event");
	return ledger_append(s->ledger, &in, &rcpt);
}

static const struct auth_event_sink events = { .append = test_sink_append, .ud = &sink };

static int setup(void)
{
	struct ledger_config lc = { 0 };
	struct auth_config ac = { 0 };
	EVP_PKEY *lk;

	/* roles, ledger and auth: schemas/sql 0001, 0010, 0020 and 0055 (links) */
	struct ehr_db_opts dbo = { .tag = "auth_db", .migrations = "1,10,20,55" };

	if (ehr_db_fixture_new(&db, &dbo) < 0 || ehr_test_tmpdir(state, sizeof(state), "auth-db") < 0 ||
	    authtest_make_state(state) < 0)
		return 1;
	if (ehr_db_pool_new(&pool, db.app_ci, 8, 5000, 10000) < 0)
		return 1;
	lk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	lc.db = pool;
	lc.conninfo = db.app_ci;
	lc.origin = "ehrgate.test/ledger";
	lc.signing_key = lk;
	lc.batch_max = 64;
	lc.batch_ms = 1;
	if (ledger_open(&ledger, &lc) < 0) {
		fprintf(stderr, "ledger_open: %s\n", ehr_error_msg());
		return 1;
	}
	EVP_PKEY_free(lk);
	ac.state_dir = state;
	ac.db = pool;
	sink.ledger = ledger;
	ac.events = events;
	ac.failure_events_per_min = 5;
	ac.rate_token = 2;
	ac.rate_burst = 3;
	if (auth_ctx_new(&ctx, &ac) < 0) {
		fprintf(stderr, "auth_ctx_new: %s\n", ehr_error_msg());
		return 1;
	}
	return 0;
}

static int teardown(void)
{
	auth_ctx_free(ctx);
	ledger_close(ledger);
	ehr_db_pool_free(pool);
	ehr_db_fixture_free(&db);
	ehr_test_rmrf(state);
	return 0;
}

static long long ledger_count(const char *type, const char *extra)
{
	char q[512];

	snprintf(q, sizeof(q), "SELECT count(*) FROM ledger_entries WHERE type = '%s' %s", type,
	         extra ? extra : "");
	return ehr_testdb_scalar(db.super_ci, q);
}

/* Register a fresh key with a new token; returns the cert (caller frees). */
static X509 *do_register(const char *role, EVP_PKEY **key_out, json_t **resp_out)
{
	struct ehr_buf tok = EHR_BUF_INIT(128), csr = EHR_BUF_INIT(8192);
	EVP_PKEY *key = NULL;
	json_t *resp = NULL;
	int64_t exp;
	X509 *cert = NULL;
	const char *pem;

	if (auth_admin_issue_token(pool, &tok, role, "St Elsewhere Hospital", 3600, &exp) < 0 ||
	    auth_key_generate_p256(&key) < 0 || auth_csr_create(&csr, key, "x") < 0)
		goto out;
	if (auth_register(ctx, &resp, (const char *)csr.data, csr.len, ehr_buf_cstr(&tok), "10.1.1.1") < 0) {
		fprintf(stderr, "register: %s\n", ehr_error_msg());
		goto out;
	}
	pem = json_string_value(json_object_get(resp, "certificate"));
	auth_cert_load_pem(&cert, pem, strlen(pem));
out:
	if (key_out)
		*key_out = key;
	else
		EVP_PKEY_free(key);
	if (resp_out)
		*resp_out = resp;
	else
		json_decref(resp);
	ehr_buf_free(&tok);
	ehr_buf_free(&csr);
	return cert;
}

static void test_register_single_use(void)
{
	struct ehr_buf tok = EHR_BUF_INIT(128), csr = EHR_BUF_INIT(8192);
	struct auth_principal p;
	EVP_PKEY *key = NULL;
	json_t *resp = NULL;
	X509 *cert = NULL;
	const char *pem;
	char q[256];
	int64_t exp;
	long long before = ledger_count("auth.register", "AND actor <> 'anonymous'");

	EHR_ASSERT_OK(auth_admin_issue_token(pool, &tok, "server", "Clinic A", 3600, &exp));
	CU_ASSERT_EQUAL(tok.len, 43); /* 256 bits */
	/* only the hash is stored */
	snprintf(q, sizeof(q),
	         "SELECT count(*) FROM auth_reg_tokens WHERE position('%s' in encode(token_hash, 'escape')) "
	         "> 0",
	         ehr_buf_cstr(&tok));
	CU_ASSERT_EQUAL(ehr_testdb_scalar(db.super_ci, q), 0);
	EHR_ASSERT_OK(auth_key_generate_p256(&key));
	EHR_ASSERT_OK(auth_csr_create(&csr, key, "ignored"));
	EHR_ASSERT_OK(
	        auth_register(ctx, &resp, (const char *)csr.data, csr.len, ehr_buf_cstr(&tok), "10.0.0.1"));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(resp, "role")), "server");
	CU_ASSERT_EQUAL(strncmp(json_string_value(json_object_get(resp, "id")), "srv-", 4), 0);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(resp, "ca_chain")), 1);
	pem = json_string_value(json_object_get(resp, "certificate"));
	EHR_ASSERT_OK(auth_cert_load_pem(&cert, pem, strlen(pem)));
	EHR_ASSERT_OK(auth_check_client_cert(ctx, &p, cert, X509_V_OK));
	CU_ASSERT_STRING_EQUAL(p.role, "server");
	CU_ASSERT_STRING_EQUAL(p.id, json_string_value(json_object_get(resp, "id")));
	/* 90 days */
	{
		int days = 0, secs = 0;
		ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert));
		CU_ASSERT(days >= 89 && days <= 90);
	}
	/* the name is in the DB, never in the ledger */
	CU_ASSERT_EQUAL(ehr_testdb_scalar(db.super_ci,
	                                  "SELECT count(*) FROM ledger_entries WHERE position('Clinic A' in "
	                                  "encode(entry, 'escape')) > 0"),
	                0);
	CU_ASSERT_EQUAL(ledger_count("auth.register", "AND actor <> 'anonymous'"), before + 1);
	json_decref(resp);
	resp = NULL;
	/* second use of the same token */
	EHR_ASSERT_ERR(
	        auth_register(ctx, &resp, (const char *)csr.data, csr.len, ehr_buf_cstr(&tok), "10.0.0.1"),
	        EHR_ERR_AUTH);
	CU_ASSERT_PTR_NULL(resp);
	X509_free(cert);
	EVP_PKEY_free(key);
	ehr_buf_free(&tok);
	ehr_buf_free(&csr);
}

static void test_register_expired_and_bad_csr(void)
{
	struct ehr_buf tok = EHR_BUF_INIT(128), csr = EHR_BUF_INIT(8192);
	EVP_PKEY *key = NULL;
	json_t *resp = NULL;
	int64_t exp;

	EHR_ASSERT_OK(auth_admin_issue_token(pool, &tok, "auditor", "Auditor", 1, &exp));
	EHR_ASSERT_OK(auth_key_generate_p256(&key));
	EHR_ASSERT_OK(auth_csr_create(&csr, key, "x"));
	/* a malformed CSR is refused without burning the token */
	EHR_ASSERT_ERR(auth_register(ctx, &resp, "junk", 4, ehr_buf_cstr(&tok), "10.0.0.2"), EHR_ERR_INVAL);
	sleep(2); /* --ttl 1s */
	EHR_ASSERT_ERR(
	        auth_register(ctx, &resp, (const char *)csr.data, csr.len, ehr_buf_cstr(&tok), "10.0.0.2"),
	        EHR_ERR_AUTH);
	/* an unknown token */
	EHR_ASSERT_ERR(auth_register(ctx, &resp, (const char *)csr.data, csr.len,
	                             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "10.0.0.2"),
	               EHR_ERR_AUTH);
	EVP_PKEY_free(key);
	ehr_buf_free(&tok);
	ehr_buf_free(&csr);
}

struct race {
	const char *token;
	const struct ehr_buf *csr;
	int rc;
};

static void *race_fn(void *arg)
{
	struct race *r = arg;
	json_t *resp = NULL;

	r->rc = auth_register(ctx, &resp, (const char *)r->csr->data, r->csr->len, r->token, "10.0.0.3");
	json_decref(resp);
	return NULL;
}

/* Eight concurrent registrations with one token: exactly one wins. */
static void test_register_race(void)
{
	struct ehr_buf tok = EHR_BUF_INIT(128), csr = EHR_BUF_INIT(8192);
	EVP_PKEY *key = NULL;
	struct race rs[8];
	pthread_t th[8];
	int64_t exp;
	int wins = 0, auth_fail = 0;

	EHR_ASSERT_OK(auth_admin_issue_token(pool, &tok, "server", "Race", 3600, &exp));
	EHR_ASSERT_OK(auth_key_generate_p256(&key));
	EHR_ASSERT_OK(auth_csr_create(&csr, key, "x"));
	for (int i = 0; i < 8; i++) {
		rs[i].token = ehr_buf_cstr(&tok);
		rs[i].csr = &csr;
		pthread_create(&th[i], NULL, race_fn, &rs[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		wins += rs[i].rc == 0;
		auth_fail += rs[i].rc == EHR_ERR_AUTH;
	}
	CU_ASSERT_EQUAL(wins, 1);
	CU_ASSERT_EQUAL(auth_fail, 7);
	EVP_PKEY_free(key);
	ehr_buf_free(&tok);
	ehr_buf_free(&csr);
}

static void test_cert_checks_and_revocation(void)
{
	struct auth_principal p;
	json_t *resp = NULL, *renewed = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = do_register("server", &key, &resp), *c2 = NULL, *rogue = NULL;
	X509 *regca = NULL;
	EVP_PKEY *regkey = NULL;
	struct ehr_buf csr = EHR_BUF_INIT(8192), path = EHR_BUF_INIT(512);
	struct auth_principal who;
	char serial[65];
	const char *pem;

	CU_ASSERT_PTR_NOT_NULL_FATAL(cert);
	EHR_ASSERT_OK(auth_check_client_cert(ctx, &p, cert, X509_V_OK));
	/* what the TLS layer says is final */
	EHR_ASSERT_ERR(auth_check_client_cert(ctx, &p, NULL, -1), EHR_ERR_AUTH);
	EHR_ASSERT_ERR(auth_check_client_cert(ctx, &p, cert, X509_V_ERR_CERT_HAS_EXPIRED), EHR_ERR_AUTH);
	EHR_ASSERT_ERR(auth_check_client_cert(ctx, &p, cert, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
	               EHR_ERR_AUTH);
	/* signed by the registration CA but never registered (e.g. a stolen CA key used offline) */
	ehr_buf_printf(&path, "%s/regca.pem", state);
	EHR_ASSERT_OK(auth_cert_load_file(&regca, ehr_buf_cstr(&path)));
	ehr_buf_reset(&path);
	ehr_buf_printf(&path, "%s/regca.key", state);
	EHR_ASSERT_OK(auth_key_load_private(&regkey, ehr_buf_cstr(&path)));
	EHR_ASSERT_OK(auth_check_client_cert(ctx, &who, cert, X509_V_OK));
	{
		struct auth_cert_params cp = { who.id, "server", time(NULL) - 60, time(NULL) + 3600 };
		EHR_ASSERT_OK(auth_cert_issue(&rogue, key, regca, regkey, &cp));
		EHR_ASSERT_ERR(auth_check_client_cert(ctx, &p, rogue, X509_V_OK), EHR_ERR_AUTH);
	}
	/* renewal: new serial, same id and role */
	EHR_ASSERT_OK(auth_csr_create(&csr, key, "x"));
	EHR_ASSERT_OK(auth_renew(ctx, &renewed, &who, (const char *)csr.data, csr.len));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(renewed, "id")), who.id);
	CU_ASSERT_STRING_NOT_EQUAL(json_string_value(json_object_get(renewed, "serial")), who.serial);
	pem = json_string_value(json_object_get(renewed, "certificate"));
	EHR_ASSERT_OK(auth_cert_load_pem(&c2, pem, strlen(pem)));
	EHR_ASSERT_OK(auth_check_client_cert(ctx, &p, c2, X509_V_OK));
	/* revoke one certificate by serial: the other stays valid */
	EHR_ASSERT_OK(auth_cert_serial_hex(serial, cert));
	EHR_ASSERT_OK(auth_admin_revoke(pool, &events, serial));
	EHR_ASSERT_ERR(auth_check_client_cert(ctx, &p, cert, X509_V_OK), EHR_ERR_AUTH);
	EHR_ASSERT_OK(auth_check_client_cert(ctx, &p, c2, X509_V_OK));
	EHR_ASSERT_ERR(auth_admin_revoke(pool, &events, serial), EHR_ERR_NOT_FOUND);
	/* revoke the principal: every certificate goes */
	EHR_ASSERT_OK(auth_admin_revoke(pool, &events, who.id));
	EHR_ASSERT_ERR(auth_check_client_cert(ctx, &p, c2, X509_V_OK), EHR_ERR_AUTH);
	CU_ASSERT(ledger_count("auth.revoke", NULL) >= 2);
	CU_ASSERT(ledger_count("auth.renew", NULL) >= 1);
	X509_free(cert);
	X509_free(c2);
	X509_free(rogue);
	X509_free(regca);
	EVP_PKEY_free(regkey);
	EVP_PKEY_free(key);
	json_decref(resp);
	json_decref(renewed);
	ehr_buf_free(&csr);
	ehr_buf_free(&path);
}

/* ------------------------------------------------------------- patients */

static struct auth_principal server;
static char pid[128];
static EVP_PKEY *device;

static int enroll_with(const char *patient, const char *code, EVP_PKEY *key, EVP_PKEY *signer)
{
	struct ehr_buf msg = EHR_BUF_INIT(512), sig = EHR_BUF_INIT(256);
	char jkt[EHR_JKT_LEN + 1];
	json_t *jwk = NULL, *resp = NULL;
	int err;

	ehr_jwk_from_key(&jwk, key);
	ehr_jwk_thumbprint(jkt, key);
	auth_enroll_message(&msg, code, jkt);
	ehr_es256_sign_b64url(&sig, signer, msg.data, msg.len);
	err = auth_enroll(ctx, &resp, patient, code, jwk, ehr_buf_cstr(&sig), "10.2.0.1");
	json_decref(jwk);
	json_decref(resp);
	ehr_buf_free(&msg);
	ehr_buf_free(&sig);
	return err;
}

static void test_patient_enrol(void)
{
	json_t *resp = NULL, *resp2 = NULL;
	X509 *cert = do_register("server", NULL, NULL);
	EVP_PKEY *other = NULL;
	const char *code;
	char q[256];

	CU_ASSERT_PTR_NOT_NULL_FATAL(cert);
	EHR_ASSERT_OK(auth_check_client_cert(ctx, &server, cert, X509_V_OK));
	EHR_ASSERT_OK(auth_patient_create(ctx, &resp, &server, "MRN-0042-Jane-Doe"));
	snprintf(pid, sizeof(pid), "%s", json_string_value(json_object_get(resp, "patient_id")));
	CU_ASSERT_EQUAL(strncmp(pid, "pt-", 3), 0);
	code = json_string_value(json_object_get(resp, "enrolment_code"));
	/* the external id is stored nowhere */
	CU_ASSERT_EQUAL(ehr_testdb_scalar(db.super_ci,
	                                  "SELECT count(*) FROM auth_patients WHERE patient_id LIKE '%Jane%' "
	                                  "OR created_by LIKE '%Jane%'"),
	                0);
	CU_ASSERT_EQUAL(ehr_testdb_scalar(db.super_ci,
	                                  "SELECT count(*) FROM ledger_entries WHERE position('Jane' in "
	                                  "encode(entry, 'escape')) > 0"),
	                0);
	EHR_ASSERT_OK(auth_key_generate_p256(&device));
	EHR_ASSERT_OK(auth_key_generate_p256(&other));
	/* signature by another key than the JWK's: refused, and the code survives */
	EHR_ASSERT_ERR(enroll_with(pid, code, device, other), EHR_ERR_AUTH);
	/* the wrong patient for this code */
	EHR_ASSERT_ERR(enroll_with("pt-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", code, device, device),
	               EHR_ERR_AUTH);
	EHR_ASSERT_OK(enroll_with(pid, code, device, device));
	/* a code is single-use */
	EHR_ASSERT_ERR(enroll_with(pid, code, other, other), EHR_ERR_AUTH);
	/* the same external id maps to the same pseudonym; a fresh code is issued */
	EHR_ASSERT_OK(auth_patient_create(ctx, &resp2, &server, "MRN-0042-Jane-Doe"));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(resp2, "patient_id")), pid);
	/* an expired code */
	snprintf(q, sizeof(q),
	         "UPDATE auth_enrol_codes SET expires_at = now() - interval '1 second' WHERE used_at IS "
	         "NULL AND patient_id = '%s'",
	         pid);
	CU_ASSERT_EQUAL(ehr_testdb_exec(db.super_ci, q), 0);
	EHR_ASSERT_ERR(
	        enroll_with(pid, json_string_value(json_object_get(resp2, "enrolment_code")), other, other),
	        EHR_ERR_AUTH);
	CU_ASSERT(ledger_count("auth.enroll", "AND actor <> 'anonymous'") >= 1);
	CU_ASSERT(ledger_count("auth.patient.create", NULL) >= 2);
	X509_free(cert);
	EVP_PKEY_free(other);
	json_decref(resp);
	json_decref(resp2);
}

static int login(json_t **tok, const char *patient, EVP_PKEY *key, const char *nonce_override,
                 int64_t ts_shift, const char *peer)
{
	json_t *ch = NULL;
	struct ehr_buf msg = EHR_BUF_INIT(1024), sig = EHR_BUF_INIT(256);
	char ts[32];
	const char *nonce;
	int err;

	*tok = NULL;
	GUARD(auth_challenge(ctx, &ch, patient));
	nonce = nonce_override ? nonce_override : json_string_value(json_object_get(ch, "nonce"));
	snprintf(ts, sizeof(ts), "%lld", (long long)(time(NULL) + ts_shift));
	auth_login_message(&msg, nonce, ts, patient);
	ehr_es256_sign_b64url(&sig, key, msg.data, msg.len);
	err = auth_token(ctx, tok, patient, nonce, ts, ehr_buf_cstr(&sig), peer);
	json_decref(ch);
	ehr_buf_free(&msg);
	ehr_buf_free(&sig);
	return err;
}

static char last_nonce[128];

static void test_login_and_nonce_replay(void)
{
	json_t *tok = NULL, *ch = NULL;
	struct ehr_buf msg = EHR_BUF_INIT(1024), sig = EHR_BUF_INIT(256);
	EVP_PKEY *other = NULL;
	char ts[32];

	CU_ASSERT_PTR_NOT_NULL_FATAL(device);
	EHR_ASSERT_OK(login(&tok, pid, device, NULL, 0, "10.3.0.1"));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(tok, "token_type")), "DPoP");
	CU_ASSERT(json_integer_value(json_object_get(tok, "expires_in")) <= 900);
	json_decref(tok);
	/* replay: the same nonce twice */
	EHR_ASSERT_OK(auth_challenge(ctx, &ch, pid));
	CU_ASSERT(json_integer_value(json_object_get(ch, "expires_in")) <= 60);
	snprintf(last_nonce, sizeof(last_nonce), "%s", json_string_value(json_object_get(ch, "nonce")));
	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	auth_login_message(&msg, last_nonce, ts, pid);
	ehr_es256_sign_b64url(&sig, device, msg.data, msg.len);
	EHR_ASSERT_OK(auth_token(ctx, &tok, pid, last_nonce, ts, ehr_buf_cstr(&sig), "10.3.0.2"));
	json_decref(tok);
	EHR_ASSERT_ERR(auth_token(ctx, &tok, pid, last_nonce, ts, ehr_buf_cstr(&sig), "10.3.0.2"),
	               EHR_ERR_AUTH);
	/* a signature by another key; the nonce is burnt by the attempt */
	EHR_ASSERT_OK(auth_key_generate_p256(&other));
	EHR_ASSERT_ERR(login(&tok, pid, other, NULL, 0, "10.3.0.3"), EHR_ERR_AUTH);
	/* a stale timestamp */
	EHR_ASSERT_ERR(login(&tok, pid, device, NULL, -600, "10.3.0.4"), EHR_ERR_AUTH);
	/* an expired nonce */
	json_decref(ch);
	EHR_ASSERT_OK(auth_challenge(ctx, &ch, pid));
	CU_ASSERT_EQUAL(ehr_testdb_exec(db.super_ci,
	                                "UPDATE auth_challenges SET expires_at = now() - interval '1 second' "
	                                "WHERE used_at IS NULL"),
	                0);
	ehr_buf_reset(&msg);
	ehr_buf_reset(&sig);
	auth_login_message(&msg, json_string_value(json_object_get(ch, "nonce")), ts, pid);
	ehr_es256_sign_b64url(&sig, device, msg.data, msg.len);
	EHR_ASSERT_ERR(auth_token(ctx, &tok, pid, json_string_value(json_object_get(ch, "nonce")), ts,
	                          ehr_buf_cstr(&sig), "10.3.0.5"),
	               EHR_ERR_AUTH);
	/* a patient that never enrolled gets a nonce (no enumeration) but no token */
	EHR_ASSERT_ERR(
	        login(&tok, "pt-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", device, NULL, 0, "10.3.0.6"),
	        EHR_ERR_AUTH);
	json_decref(ch);
	EVP_PKEY_free(other);
	ehr_buf_free(&msg);
	ehr_buf_free(&sig);
}

/* ehr_db_exec_steps (common/db.c), on the jti table the DPoP spend uses:
 * BEGIN (covered) + statement + COMMIT in one round trip; a failing
 * statement skips the COMMIT, leaves the transaction failed, and the
 * connection is rolled back and reusable after ehr_db_release_after. */
static void test_db_exec_steps(void)
{
	const char *ins =
	        "INSERT INTO auth_dpop_jti (jti, expires_at) VALUES ($1, now() + interval '1 minute') "
	        "RETURNING 1";
	const char *p[1] = { "steps-test-jti-0123456789" };
	void *conn = NULL, *res = NULL;
	int err;

	EHR_ASSERT_OK(ehr_db_acquire(pool, &conn));
	EHR_ASSERT_OK(ehr_db_exec_steps(conn, &res, EHR_DB_BEGIN_COVERED | EHR_DB_COMMIT, ins, 1, p));
	CU_ASSERT_EQUAL(ehr_db_rows(res), 1);
	ehr_db_clear(res);
	CU_ASSERT_EQUAL(PQtransactionStatus(conn), PQTRANS_IDLE); /* committed */
	/* the same jti again: the unique violation, nothing committed, the transaction left failed */
	err = ehr_db_exec_steps(conn, &res, EHR_DB_BEGIN_COVERED | EHR_DB_COMMIT, ins, 1, p);
	CU_ASSERT_EQUAL(err, EHR_ERR_CONFLICT);
	CU_ASSERT_PTR_NULL(res);
	CU_ASSERT_EQUAL(PQtransactionStatus(conn), PQTRANS_INERROR);
	ehr_db_release_after(pool, conn, err);
	/* BEGIN alone: the transaction stays open, without its own WAL flush; COMMIT alone ends it */
	EHR_ASSERT_OK(ehr_db_acquire(pool, &conn));
	EHR_ASSERT_OK(ehr_db_exec_steps(conn, &res, EHR_DB_BEGIN_COVERED,
	                                "SELECT current_setting('synchronous_commit')", 0, NULL));
	CU_ASSERT_STRING_EQUAL(ehr_db_value(res, 0, 0), "off");
	ehr_db_clear(res);
	CU_ASSERT_EQUAL(PQtransactionStatus(conn), PQTRANS_INTRANS);
	EHR_ASSERT_OK(ehr_db_exec_steps(conn, &res, EHR_DB_COMMIT,
	                                "SELECT count(*) FROM auth_dpop_jti WHERE jti = $1", 1, p));
	CU_ASSERT_STRING_EQUAL(ehr_db_value(res, 0, 0), "1");
	ehr_db_clear(res);
	CU_ASSERT_EQUAL(PQtransactionStatus(conn), PQTRANS_IDLE);
	/* outside a transaction again: the session's own setting */
	EHR_ASSERT_OK(ehr_db_exec(conn, &res, "SELECT current_setting('synchronous_commit')", 0, NULL));
	CU_ASSERT_STRING_EQUAL(ehr_db_value(res, 0, 0), "on");
	ehr_db_clear(res);
	ehr_db_release(pool, conn, false);
}

static void test_dpop_requests(void)
{
	struct auth_principal p;
	json_t *tok = NULL;
	struct ehr_buf proof = EHR_BUF_INIT(4096), authz = EHR_BUF_INIT(4096);
	EVP_PKEY *other = NULL;
	const char *at;
	const char *url = "https://gw.test:8443/v1/whoami";

	EHR_ASSERT_OK(login(&tok, pid, device, NULL, 0, "10.4.0.1"));
	at = json_string_value(json_object_get(tok, "access_token"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(at);
	ehr_buf_printf(&authz, "DPoP %s", at);
	EHR_ASSERT_OK(auth_dpop_create(&proof, device, "GET", url, at, time(NULL)));
	EHR_ASSERT_OK(
	        auth_check_dpop_request(ctx, &p, ehr_buf_cstr(&authz), ehr_buf_cstr(&proof), "GET", url));
	CU_ASSERT_STRING_EQUAL(p.id, pid);
	CU_ASSERT_STRING_EQUAL(p.role, "patient");
	/* the same proof again: replay */
	EHR_ASSERT_ERR(
	        auth_check_dpop_request(ctx, &p, ehr_buf_cstr(&authz), ehr_buf_cstr(&proof), "GET", url),
	        EHR_ERR_REPLAY);
	/* a proof from another key */
	EHR_ASSERT_OK(auth_key_generate_p256(&other));
	ehr_buf_reset(&proof);
	EHR_ASSERT_OK(auth_dpop_create(&proof, other, "GET", url, at, time(NULL)));
	EHR_ASSERT_ERR(
	        auth_check_dpop_request(ctx, &p, ehr_buf_cstr(&authz), ehr_buf_cstr(&proof), "GET", url),
	        EHR_ERR_AUTH);
	/* no proof; Bearer instead of DPoP */
	EHR_ASSERT_ERR(auth_check_dpop_request(ctx, &p, ehr_buf_cstr(&authz), NULL, "GET", url),
	               EHR_ERR_AUTH);
	ehr_buf_reset(&proof);
	EHR_ASSERT_OK(auth_dpop_create(&proof, device, "GET", url, at, time(NULL)));
	{
		struct ehr_buf bearer = EHR_BUF_INIT(4096);
		ehr_buf_printf(&bearer, "Bearer %s", at);
		EHR_ASSERT_ERR(auth_check_dpop_request(ctx, &p, ehr_buf_cstr(&bearer), ehr_buf_cstr(&proof),
		                                       "GET", url),
		               EHR_ERR_AUTH);
		ehr_buf_free(&bearer);
	}
	/* revoke the patient: the still-unexpired token stops working at once */
	EHR_ASSERT_OK(auth_admin_revoke(pool, &events, pid));
	EHR_ASSERT_ERR(
	        auth_check_dpop_request(ctx, &p, ehr_buf_cstr(&authz), ehr_buf_cstr(&proof), "GET", url),
	        EHR_ERR_AUTH);
	json_decref(tok);
	EVP_PKEY_free(other);
	ehr_buf_free(&proof);
	ehr_buf_free(&authz);
}

/* A flood of failures from one address adds at most the bucket's worth of
 * ledger entries; successes are never dropped. */
static void test_failure_events_rate_limited(void)
{
	long long before = ledger_count("auth.flood", NULL), after;

	for (int i = 0; i < 40; i++)
		auth_event(ctx, "auth.flood", "anonymous", "", false, "test", "192.0.2.66");
	after = ledger_count("auth.flood", NULL);
	CU_ASSERT_EQUAL(after - before, 5); /* failure_events_per_min = 5 (the burst) */
	for (int i = 0; i < 3; i++)
		EHR_ASSERT_OK(auth_event(ctx, "auth.flood", "srv-x", "", true, "ok", "192.0.2.66"));
	CU_ASSERT_EQUAL(ledger_count("auth.flood", NULL), after + 3);
	/* another address still gets its failures recorded */
	auth_event(ctx, "auth.flood", "anonymous", "", false, "test", "192.0.2.67");
	CU_ASSERT_EQUAL(ledger_count("auth.flood", NULL), after + 4);
}

/* Run fn with stderr captured into buf (NUL-terminated). */
static void capture_stderr(char *buf, size_t cap, void (*fn)(void *), void *arg)
{
	char path[] = "/tmp/ehr-auth-stderr-XXXXXX";
	int fd = mkstemp(path), saved;
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return;
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, cap - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
}

static int failed_event_rc;

static void emit_failure_event(void *arg)
{
	(void)arg;
	failed_event_rc = auth_event(ctx, "auth.sinkfail", "anonymous", "", false, "test", "192.0.2.90");
}

/* auth knows only its sink: when the sink fails (the ledger is down), an
 * operation that needs its event fails and is rolled back - the token is
 * not spent, nothing is revoked - and a failure event is logged, not lost
 * silently. Once the sink works again, the same token registers. */
static void test_sink_failure(void)
{
	struct ehr_buf tok = EHR_BUF_INIT(128), csr = EHR_BUF_INIT(8192);
	EVP_PKEY *key = NULL;
	json_t *resp = NULL;
	X509 *cert = NULL;
	struct auth_principal who;
	char log[4096], serial[65];
	int64_t exp;
	long long regs = ledger_count("auth.register", "AND actor <> 'anonymous'");
	int calls;

	EHR_ASSERT_OK(auth_admin_issue_token(pool, &tok, "server", "Sink Clinic", 3600, &exp));
	EHR_ASSERT_OK(auth_key_generate_p256(&key));
	EHR_ASSERT_OK(auth_csr_create(&csr, key, "x"));
	sink.fail = EHR_ERR_UNAVAILABLE;
	calls = sink.called;
	EHR_ASSERT_ERR(
	        auth_register(ctx, &resp, (const char *)csr.data, csr.len, ehr_buf_cstr(&tok), "192.0.2.91"),
	        EHR_ERR_UNAVAILABLE);
	CU_ASSERT_PTR_NULL(resp);
	CU_ASSERT_EQUAL(sink.called, calls + 1);
	CU_ASSERT_EQUAL(ehr_testdb_scalar(db.super_ci,
	                                  "SELECT count(*) FROM auth_principals WHERE name = 'Sink "
	                                  "Clinic'"),
	                0);

	/* a failure event: returned and logged */
	capture_stderr(log, sizeof(log), emit_failure_event, NULL);
	CU_ASSERT_EQUAL(failed_event_rc, EHR_ERR_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "auth.ledger_event_failed"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "auth.sinkfail"));
	CU_ASSERT_EQUAL(ledger_count("auth.sinkfail", NULL), 0);

	/* the token was not burned */
	sink.fail = 0;
	EHR_ASSERT_OK(
	        auth_register(ctx, &resp, (const char *)csr.data, csr.len, ehr_buf_cstr(&tok), "192.0.2.91"));
	CU_ASSERT_EQUAL(ledger_count("auth.register", "AND actor <> 'anonymous'"), regs + 1);
	snprintf(serial, sizeof(serial), "%s", json_string_value(json_object_get(resp, "serial")));

	/* revocation needs its event too: refused while the sink fails, nothing revoked */
	sink.fail = EHR_ERR_DB;
	EHR_ASSERT_ERR(auth_admin_revoke(pool, &events, serial), EHR_ERR_DB);
	sink.fail = 0;
	{
		const char *pem = json_string_value(json_object_get(resp, "certificate"));
		EHR_ASSERT_OK(auth_cert_load_pem(&cert, pem, strlen(pem)));
		EHR_ASSERT_OK(auth_check_client_cert(ctx, &who, cert, X509_V_OK));
	}
	EHR_ASSERT_OK(auth_admin_revoke(pool, &events, serial));
	EHR_ASSERT_ERR(auth_check_client_cert(ctx, &who, cert, X509_V_OK), EHR_ERR_AUTH);

	/* a sink without append drops events: the operation itself still works */
	{
		struct auth_event_sink none = { 0 };
		long long revs = ledger_count("auth.revoke", NULL);
		EHR_ASSERT_OK(auth_admin_revoke(pool, &none, json_string_value(json_object_get(resp, "id"))));
		CU_ASSERT_EQUAL(ledger_count("auth.revoke", NULL), revs);
	}
	X509_free(cert);
	json_decref(resp);
	EVP_PKEY_free(key);
	ehr_buf_free(&tok);
	ehr_buf_free(&csr);
}

static void test_rate_limit_token_route(void)
{
	int ok = 0, limited = 0;

	/* rate_token = 2/min, burst 3 */
	for (int i = 0; i < 6; i++) {
		int rc = auth_rate_check(ctx, AUTH_RATE_TOKEN, "198.51.100.7");
		ok += rc == 0;
		limited += rc == EHR_ERR_RATE;
	}
	CU_ASSERT_EQUAL(ok, 3);
	CU_ASSERT_EQUAL(limited, 3);
	EHR_ASSERT_OK(auth_rate_check(ctx, AUTH_RATE_TOKEN, "198.51.100.8"));
}

/* A 32-byte key of the test state directory. */
static void state_key(uint8_t out[32], const char *name)
{
	struct ehr_buf path = EHR_BUF_INIT(512), raw = EHR_BUF_INIT(64);

	EHR_ASSERT_OK(ehr_buf_printf(&path, "%s/%s", state, name));
	EHR_ASSERT_OK(ehr_file_read(&raw, ehr_buf_cstr(&path), 64));
	CU_ASSERT_FATAL(raw.len == 32);
	memcpy(out, raw.data, 32);
	ehr_buf_free(&path);
	ehr_buf_free_secure(&raw);
}

/* How many link rows the external id's keyed hash finds (as the gateway's lookup would). */
static long long link_rows(const uint8_t lk[32], const char *ext)
{
	uint8_t h[32];
	struct ehr_buf hex = EHR_BUF_INIT(80);
	char q[256];

	EHR_ASSERT_OK(auth_patient_link_hash(h, lk, ext));
	EHR_ASSERT_OK(ehr_hex_encode(&hex, h, sizeof(h)));
	snprintf(q, sizeof(q), "SELECT count(*) FROM auth_patient_links WHERE link_hash = '\\x%s'::bytea",
	         ehr_buf_cstr(&hex));
	ehr_buf_free(&hex);
	return ehr_testdb_scalar(db.super_ci, q);
}

static void erase_state(const char *who, uint64_t seq)
{
	struct auth_erase_request rq = { "patient-request", "patient", who };
	void *conn = NULL;

	EHR_ASSERT_OK(ehr_db_acquire(pool, &conn));
	EHR_ASSERT_OK(ehr_db_begin(conn));
	EHR_ASSERT_OK(auth_patient_erase_apply(conn, who, seq, &rq));
	EHR_ASSERT_OK(ehr_db_commit(conn));
	ehr_db_release(pool, conn, false);
}

/* New pseudonyms are random, found again only through the link; erasure
 * deletes the link, after which neither the old derivation nor the link
 * lookup leads anywhere and the same external id gets a new pseudonym.
 * Legacy (derived) patients are linked lazily. */
static void test_patient_links_and_erasure(void)
{
	struct auth_principal srv = { .role = "server", .id = "srv-links" };
	struct auth_patient_info info;
	uint8_t pk[32], lk[32];
	char derived[AUTH_MAX_ID + 1], npid[AUTH_MAX_ID + 1], legacy[AUTH_MAX_ID + 1], q[512];
	json_t *r1 = NULL, *r2 = NULL, *r3 = NULL;

	state_key(pk, "pseudonym.key");
	state_key(lk, AUTH_LINK_KEY_FILE);
	EHR_ASSERT_OK(auth_patient_create(ctx, &r1, &srv, "MRN-LINK-1"));
	snprintf(npid, sizeof(npid), "%s", json_string_value(json_object_get(r1, "patient_id")));
	EHR_ASSERT_OK(auth_pseudonym(derived, pk, "patient", "MRN-LINK-1"));
	CU_ASSERT_STRING_NOT_EQUAL(npid, derived); /* not derived from the external id */
	CU_ASSERT_EQUAL(link_rows(lk, "MRN-LINK-1"), 1);
	EHR_ASSERT_OK(auth_patient_create(ctx, &r2, &srv, "MRN-LINK-1"));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r2, "patient_id")), npid); /* idempotent */
	EHR_ASSERT_OK(auth_patient_lookup(pool, npid, &info));
	CU_ASSERT_EQUAL(info.state, AUTH_PATIENT_ACTIVE);
	/* erasure: the link and the enrolment codes go */
	erase_state(npid, 424242);
	CU_ASSERT_EQUAL(link_rows(lk, "MRN-LINK-1"), 0);
	snprintf(q, sizeof(q), "SELECT count(*) FROM auth_enrol_codes WHERE patient_id = '%s'", npid);
	CU_ASSERT_EQUAL(ehr_testdb_scalar(db.super_ci, q), 0);
	snprintf(q, sizeof(q), "SELECT count(*) FROM auth_patients WHERE patient_id = '%s'", derived);
	CU_ASSERT_EQUAL(ehr_testdb_scalar(db.super_ci, q), 0); /* the old derivation finds nothing */
	EHR_ASSERT_OK(auth_patient_lookup(pool, npid, &info));
	CU_ASSERT_EQUAL(info.state, AUTH_PATIENT_ERASING);
	CU_ASSERT_EQUAL(info.erase_seq, 424242);
	EHR_ASSERT_OK(auth_patient_erase_finish(pool, npid));
	EHR_ASSERT_OK(auth_patient_lookup(pool, npid, &info));
	CU_ASSERT_EQUAL(info.state, AUTH_PATIENT_ERASED);
	/* the same external id now gets a new, unrelated pseudonym */
	json_decref(r2);
	EHR_ASSERT_OK(auth_patient_create(ctx, &r2, &srv, "MRN-LINK-1"));
	CU_ASSERT_STRING_NOT_EQUAL(json_string_value(json_object_get(r2, "patient_id")), npid);

	/* a legacy patient (created before 0055 with a derived pseudonym) */
	EHR_ASSERT_OK(auth_pseudonym(legacy, pk, "patient", "MRN-LEGACY-7"));
	snprintf(q, sizeof(q),
	         "INSERT INTO auth_patients (patient_id, created_by, scheme) VALUES ('%s', 'srv-old', "
	         "'derived')",
	         legacy);
	CU_ASSERT_EQUAL(ehr_testdb_exec(db.super_ci, q), 0);
	CU_ASSERT_EQUAL(link_rows(lk, "MRN-LEGACY-7"), 0);
	EHR_ASSERT_OK(auth_patient_create(ctx, &r3, &srv, "MRN-LEGACY-7"));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r3, "patient_id")), legacy);
	CU_ASSERT_EQUAL(link_rows(lk, "MRN-LEGACY-7"), 1); /* linked lazily */
	erase_state(legacy, 424243);
	CU_ASSERT_EQUAL(link_rows(lk, "MRN-LEGACY-7"), 0);
	json_decref(r3);
	EHR_ASSERT_OK(auth_patient_create(ctx, &r3, &srv, "MRN-LEGACY-7"));
	CU_ASSERT_STRING_NOT_EQUAL(json_string_value(json_object_get(r3, "patient_id")), legacy);
	/* no external id and no link hash in the ledger */
	CU_ASSERT_EQUAL(ehr_testdb_scalar(db.super_ci,
	                                  "SELECT count(*) FROM ledger_entries WHERE position('MRN-L' in "
	                                  "encode(entry, 'escape')) > 0"),
	                0);
	OPENSSL_cleanse(pk, sizeof(pk));
	OPENSSL_cleanse(lk, sizeof(lk));
	json_decref(r1);
	json_decref(r2);
	json_decref(r3);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("auth.db", setup, teardown, { "register_single_use", test_register_single_use },
	              { "register_expired_and_bad_csr", test_register_expired_and_bad_csr },
	              { "register_race", test_register_race },
	              { "cert_checks_and_revocation", test_cert_checks_and_revocation },
	              { "patient_enrol", test_patient_enrol },
	              { "patient_links_and_erasure", test_patient_links_and_erasure },
	              { "login_and_nonce_replay", test_login_and_nonce_replay },
	              { "dpop_requests", test_dpop_requests }, { "db_exec_steps", test_db_exec_steps },
	              { "failure_events_rate_limited", test_failure_events_rate_limited },
	              { "sink_failure", test_sink_failure },
	              { "rate_limit_token_route", test_rate_limit_token_route });
}

EHR_TEST_MAIN(register_suites)
