/*
 * test_contract_state.c - contract state materialised from the ledger, on
 * a real PostgreSQL through the real ledger.
 *
 *  - the live path refuses what it must (wrong patient, bad signature,
 *    duplicate, foreign or double revocation);
 *  - `rebuild` from the ledger alone gives exactly the live state, and
 *    repairs a tampered cache;
 *  - a forged ledger entry (bad signature) is never materialised;
 *  - policy_enforce records every decision as an access.decision entry.
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "policy/policy.h"
#include "tests/harness/harness.h"
#include "tests/integration/audit/audit_testlib.h"

static struct ehr_db_fixture db;
static PGconn *su; /* superuser on db */
static struct ledger *ledger;
static EVP_PKEY *ledger_key;
static void *app; /* PGconn as ehrgate_app */
static EVP_PKEY *k1, *k2;
static json_t *jwk1, *jwk2;
static const char *P1 = "pt-alice", *P2 = "pt-bob";
static int64_t now_s;

static int suite_init_inner(void)
{
	struct ehr_db_opts dbo = { .tag = "audit", .migrations = ATL_MIGRATIONS };

	if (ehr_db_fixture_new(&db, &dbo) < 0 || (su = ehr_testdb_connect(db.super_ci)) == NULL) {
		fprintf(stderr, "db: %s\n", ehr_error_msg());
		return 1;
	}
	if (atl_ledger_open(&ledger, &ledger_key, &db) < 0) {
		fprintf(stderr, "ledger: %s\n", ehr_error_msg());
		return 1;
	}
	app = PQconnectdb(db.app_ci);
	if (PQstatus(app) != CONNECTION_OK)
		return 1;
	if (atl_patient_key(&k1, &jwk1) < 0 || atl_patient_key(&k2, &jwk2) < 0)
		return 1;
	now_s = ehr_now_ms() / 1000;
	return 0;
}

static int suite_clean(void)
{
	ledger_close(ledger);
	EVP_PKEY_free(ledger_key);
	PQfinish(app);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	json_decref(jwk1);
	json_decref(jwk2);
	PQfinish(su);
	su = NULL;
	ehr_db_fixture_free(&db);
	return 0;
}

/* CUnit does not run the clean function of a suite whose init failed:
 * tear down here, so a failed start leaves no gateway or database behind. */
static int suite_init(void)
{
	if (suite_init_inner() != 0) {
		suite_clean();
		return 1;
	}
	return 0;
}

static int create(const char *patient, EVP_PKEY *key, json_t *jwk, const char *grantee, const char *actions,
                  const char *scope, const char *purpose, int64_t nb, int64_t na, char cid[POLICY_CID_MAX])
{
	json_t *env = atl_contract(key, patient, grantee, actions, scope, purpose, nb, na);
	struct ledger_receipt rc;
	int err;

	CU_ASSERT_PTR_NOT_NULL_FATAL(env);
	err = policy_contract_create(app, ledger, patient, jwk, env, cid, &rc);
	json_decref(env);
	return err;
}

static char c_s1[POLICY_CID_MAX], c_grp[POLICY_CID_MAX], c_rec[POLICY_CID_MAX], c_rev[POLICY_CID_MAX],
        c_p2[POLICY_CID_MAX];

static void test_live_create_and_refusals(void)
{
	char cid[POLICY_CID_MAX];
	json_t *env;
	struct ledger_receipt rc;

	EHR_ASSERT_OK(create(P1, k1, jwk1, "{\"server\":\"srv-1\"}", "[\"read\"]", "{\"all\":true}",
	                     "treatment", now_s - 60, now_s + 3600, c_s1));
	EHR_ASSERT_OK(create(P1, k1, jwk1, "{\"group\":\"cardio\"}", "[\"read\",\"append\"]",
	                     "{\"categories\":[\"lab\"]}", "treatment", now_s - 60, now_s + 3600, c_grp));
	EHR_ASSERT_OK(create(P1, k1, jwk1, "{\"server\":\"srv-2\"}", "[\"read\"]",
	                     "{\"records\":[\"rec-1\"]}", "research", now_s - 60, now_s + 3600, c_rec));
	EHR_ASSERT_OK(create(P1, k1, jwk1, "{\"server\":\"srv-3\"}", "[\"append\"]", "{\"all\":true}",
	                     "treatment", now_s - 60, now_s + 3600, c_rev));
	EHR_ASSERT_OK(create(P2, k2, jwk2, "{\"server\":\"srv-1\"}", "[\"read\"]", "{\"all\":true}",
	                     "treatment", now_s - 60, now_s + 3600, c_p2));
	CU_ASSERT_EQUAL(atl_scalar(su, "SELECT count(*) FROM policy_contracts"), 5);
	CU_ASSERT_EQUAL(atl_scalar(su, "SELECT count(*) FROM ledger_entries WHERE type = 'contract.create'"),
	                5);

	/* P1 cannot file a contract in P2's name, even one P2 signed. */
	env = atl_contract(k2, P2, "{\"server\":\"x\"}", "[\"read\"]", "{\"all\":true}", "treatment", 1, 2);
	EHR_ASSERT_ERR(policy_contract_create(app, ledger, P1, jwk1, env, cid, &rc), EHR_ERR_FORBIDDEN);
	json_decref(env);
	/* Signed by another key than the caller's device key. */
	env = atl_contract(k2, P1, "{\"server\":\"srv-9\"}", "[\"read\"]", "{\"all\":true}", "treatment", 1,
	                   2);
	EHR_ASSERT_ERR(policy_contract_create(app, ledger, P1, jwk1, env, cid, &rc), EHR_ERR_TAMPER);
	/* Tampered after signing. */
	json_object_set_new(json_object_get(env, "contract"), "not_after", json_integer(99999));
	EHR_ASSERT_ERR(policy_contract_create(app, ledger, P1, jwk2, env, cid, &rc), EHR_ERR_TAMPER);
	json_decref(env);
	/* Extra envelope member; schema violation. */
	env = atl_contract(k1, P1, "{\"server\":\"srv-9\"}", "[\"read\"]", "{\"all\":true}", "treatment", 1,
	                   2);
	json_object_set_new(env, "note", json_string("x"));
	EHR_ASSERT_ERR(policy_contract_create(app, ledger, P1, jwk1, env, cid, &rc), EHR_ERR_INVAL);
	json_object_del(env, "note");
	/* The same signed document twice. */
	EHR_ASSERT_OK(policy_contract_create(app, ledger, P1, jwk1, env, cid, &rc));
	EHR_ASSERT_ERR(policy_contract_create(app, ledger, P1, jwk1, env, cid, &rc), EHR_ERR_CONFLICT);
	json_decref(env);
	/* None of the refusals reached the ledger: 5 + the duplicate's first copy. */
	CU_ASSERT_EQUAL(atl_scalar(su, "SELECT count(*) FROM ledger_entries WHERE type = 'contract.create'"),
	                6);
}

static void test_live_revoke(void)
{
	json_t *env;
	struct ledger_receipt rc;

	/* P2 cannot revoke P1's contract: it looks like a missing one. */
	env = atl_revocation(k2, P2, c_rev);
	EHR_ASSERT_ERR(policy_contract_revoke(app, ledger, P2, jwk2, c_rev, env, &rc), EHR_ERR_NOT_FOUND);
	json_decref(env);
	/* Path and document disagree. */
	env = atl_revocation(k1, P1, c_rev);
	EHR_ASSERT_ERR(policy_contract_revoke(app, ledger, P1, jwk1, c_s1, env, &rc), EHR_ERR_INVAL);
	/* Wrong key. */
	EHR_ASSERT_ERR(policy_contract_revoke(app, ledger, P1, jwk2, c_rev, env, &rc), EHR_ERR_TAMPER);
	EHR_ASSERT_OK(policy_contract_revoke(app, ledger, P1, jwk1, c_rev, env, &rc));
	json_decref(env);
	env = atl_revocation(k1, P1, c_rev);
	EHR_ASSERT_ERR(policy_contract_revoke(app, ledger, P1, jwk1, c_rev, env, &rc), EHR_ERR_CONFLICT);
	json_decref(env);
	CU_ASSERT_EQUAL(atl_scalar(su, "SELECT count(*) FROM policy_contracts WHERE revoked_seq IS NOT NULL"),
	                1);
	/* Groups. */
	EHR_ASSERT_OK(policy_group_change(app, ledger, "operator", "cardio", "srv-7", true, &rc));
	EHR_ASSERT_OK(policy_group_change(app, ledger, "operator", "cardio", "srv-8", true, &rc));
	EHR_ASSERT_OK(policy_group_change(app, ledger, "operator", "cardio", "srv-8", false, &rc));
	EHR_ASSERT_ERR(policy_group_change(app, ledger, "operator", "bad group", "srv-8", true, &rc),
	               EHR_ERR_INVAL);
	CU_ASSERT_EQUAL(atl_scalar(su, "SELECT count(*) FROM policy_groups"), 1);
}

static struct policy_decision enforce(const char *server, const char *patient, enum policy_action act,
                                      const char *record, const char *category, bool bg)
{
	struct policy_request q = { .role = POLICY_ROLE_SERVER,
		                    .requester = server,
		                    .patient = patient,
		                    .action = act,
		                    .record_id = record,
		                    .category = category,
		                    .break_glass = bg,
		                    .justification = bg ? "cardiac arrest in ward 3" : NULL };
	struct policy_decision d;
	struct ledger_receipt rc;

	EHR_ASSERT_OK(policy_enforce(app, ledger, &q, ehr_now_ms() / 1000, &d, &rc));
	return d;
}

static void test_enforce_records_decisions(void)
{
	long long before =
	        atl_scalar(su, "SELECT count(*) FROM ledger_entries WHERE type = 'access.decision'");
	struct policy_decision d;

	d = enforce("srv-1", P1, POLICY_ACT_READ, "rec-5", NULL, false);
	CU_ASSERT_EQUAL(d.effect, POLICY_ALLOW);
	CU_ASSERT_STRING_EQUAL(d.cid, c_s1);
	d = enforce("srv-3", P1, POLICY_ACT_APPEND, NULL, "lab", false);
	CU_ASSERT_EQUAL(d.effect, POLICY_DENY);
	CU_ASSERT_STRING_EQUAL(d.reason, "deny.revoked");
	/* Group membership comes from the materialised groups. */
	d = enforce("srv-7", P1, POLICY_ACT_APPEND, NULL, "lab", false);
	CU_ASSERT_EQUAL(d.effect, POLICY_ALLOW);
	CU_ASSERT_STRING_EQUAL(d.cid, c_grp);
	d = enforce("srv-8", P1, POLICY_ACT_APPEND, NULL, "lab", false); /* removed from the group */
	CU_ASSERT_EQUAL(d.effect, POLICY_DENY);
	d = enforce("srv-2", P1, POLICY_ACT_READ, "rec-1", NULL, false); /* purpose research required */
	CU_ASSERT_STRING_EQUAL(d.reason, "deny.purpose");
	d = enforce("srv-9", P1, POLICY_ACT_READ, "rec-1", NULL, true);
	CU_ASSERT_EQUAL(d.effect, POLICY_ALLOW);
	CU_ASSERT(d.break_glass);
	CU_ASSERT_EQUAL(atl_scalar(su, "SELECT count(*) FROM ledger_entries WHERE type = 'access.decision'"),
	                before + 6);
	/* The last one is the flagged break-glass read, about P1, by srv-9. */
	CU_ASSERT_EQUAL(atl_scalar(su, "SELECT count(*) FROM ledger_entries WHERE type = 'access.decision' "
	                               "AND actor = 'srv-9' AND subject = 'pt-alice' AND "
	                               "position(convert_to('\"break_glass\":true', 'UTF8') in entry) > 0"),
	                1);
}

static void digest(uint8_t out[32])
{
	EHR_ASSERT_OK(policy_store_digest(su, out));
}

static void test_rebuild_equals_live(void)
{
	uint8_t live[32], rebuilt[32], tampered[32];
	struct policy_rebuild_report rep;

	digest(live);
	EHR_ASSERT_OK(policy_store_rebuild(su, &rep));
	digest(rebuilt);
	CU_ASSERT_EQUAL(memcmp(live, rebuilt, 32), 0); /* not secret */
	CU_ASSERT_EQUAL(rep.rejected, 0);
	CU_ASSERT_EQUAL(rep.applied, rep.entries);
	CU_ASSERT_EQUAL(rep.entries, (uint64_t)atl_scalar(su, "SELECT count(*) FROM ledger_entries "
	                                                      "WHERE type LIKE 'contract.%'"));
	CU_ASSERT_EQUAL(atl_scalar(su, "SELECT count(*) FROM policy_contracts"), 6);

	/* Tamper with the cache as a superuser: un-revoke, extend, delete. */
	PQclear(PQexec(su, "UPDATE policy_contracts SET revoked_seq = NULL"));
	PQclear(PQexec(su, "UPDATE policy_contracts SET not_after = not_after + 1000000"));
	PQclear(PQexec(su, "DELETE FROM policy_groups"));
	digest(tampered);
	CU_ASSERT_NOT_EQUAL(memcmp(live, tampered, 32), 0); /* not secret */
	EHR_ASSERT_OK(policy_store_rebuild(su, &rep));
	digest(rebuilt);
	CU_ASSERT_EQUAL(memcmp(live, rebuilt, 32), 0); /* not secret */
}

/* An entry the gateway would never write (bad signature, or a revocation
 * of another patient's contract) can still be appended by a compromised
 * writer; rebuild must not turn it into consent. */
static void test_forged_entries_not_materialised(void)
{
	uint8_t live[32], rebuilt[32];
	struct policy_rebuild_report rep;
	struct ledger_receipt rc, forged;
	json_t *env, *payload;
	char cid[POLICY_CID_MAX];

	digest(live);
	env = atl_contract(k2, P1, "{\"server\":\"srv-evil\"}", "[\"read\"]", "{\"all\":true}", "treatment",
	                   1, now_s + 3600);
	EHR_ASSERT_OK(policy_contract_id(cid, json_object_get(env, "contract")));
	/* Signed by P2's key but claiming P1's (jwk1, jkt of jwk1). */
	{
		char jkt[64];
		EHR_ASSERT_OK(policy_jwk_thumbprint(jkt, jwk1));
		payload = json_pack("{s:s, s:O, s:O, s:O, s:s}", "cid", cid, "contract",
		                    json_object_get(env, "contract"), "signature",
		                    json_object_get(env, "signature"), "jwk", jwk1, "jkt", jkt);
	}
	{
		struct ledger_entry_in in = { POLICY_ENTRY_CREATE, P1, P1, payload };
		EHR_ASSERT_OK(ledger_append(ledger, &in, &forged));
	}
	json_decref(payload);
	json_decref(env);
	/* P2 "revokes" P1's contract with a revocation P2 really signed:
	 * the signature verifies, but P2 does not own the contract. */
	env = atl_revocation(k2, P2, c_s1);
	{
		char jkt[64];
		EHR_ASSERT_OK(policy_jwk_thumbprint(jkt, jwk2));
		payload = json_pack("{s:s, s:O, s:O, s:O, s:s}", "cid", c_s1, "revocation",
		                    json_object_get(env, "revocation"), "signature",
		                    json_object_get(env, "signature"), "jwk", jwk2, "jkt", jkt);
	}
	{
		struct ledger_entry_in in = { POLICY_ENTRY_REVOKE, P2, P1, payload };
		EHR_ASSERT_OK(ledger_append(ledger, &in, &rc));
	}
	json_decref(payload);
	json_decref(env);

	EHR_ASSERT_OK(policy_store_rebuild(su, &rep));
	CU_ASSERT_EQUAL(rep.rejected, 2);
	CU_ASSERT_EQUAL(rep.first_rejected_seq, forged.seq);
	digest(rebuilt);
	CU_ASSERT_EQUAL(memcmp(live, rebuilt, 32), 0); /* not secret */
	{
		char sql[200];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM policy_contracts WHERE cid = '%s'", cid);
		CU_ASSERT_EQUAL(atl_scalar(su, sql), 0);
	}
	/* The live apply path refuses the same entries. */
	CU_ASSERT_EQUAL(atl_scalar(su, "SELECT count(*) FROM policy_contracts WHERE revoked_seq IS NOT NULL"),
	                1);
}

/* The application role cannot delete contracts (the ledger, not the cache,
 * is the record; only the operator's rebuild empties it). */
static void test_app_role_cannot_delete(void)
{
	PGresult *r = PQexec(app, "DELETE FROM policy_contracts");
	CU_ASSERT_EQUAL(PQresultStatus(r), PGRES_FATAL_ERROR);
	PQclear(r);
	r = PQexec(app, "UPDATE ledger_entries SET type = 'x'");
	CU_ASSERT_EQUAL(PQresultStatus(r), PGRES_FATAL_ERROR);
	PQclear(r);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("contract_state", suite_init, suite_clean,
	              { "live_create_and_refusals", test_live_create_and_refusals },
	              { "live_revoke", test_live_revoke },
	              { "enforce_records_decisions", test_enforce_records_decisions },
	              { "rebuild_equals_live", test_rebuild_equals_live },
	              { "forged_entries_not_materialised", test_forged_entries_not_materialised },
	              { "app_role_cannot_delete", test_app_role_cannot_delete });
}

EHR_TEST_MAIN(register_suites)
