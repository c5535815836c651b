/* audit_testlib.h - ledgers, patient keys and signed contracts for the
 * contracts & audit tests, on the harness database fixture
 * (tests/harness/dbfix.h) with ATL_MIGRATIONS applied. */
#ifndef EHR_AUDIT_TESTLIB_H
#define EHR_AUDIT_TESTLIB_H

#include <openssl/evp.h>

#include "common/common.h"
#include "policy/policy.h"
#include "tests/harness/dbfix.h"

/* Roles and the ledger (0001-0019), contracts and audit (0040-0049). */
#define ATL_MIGRATIONS "1-19,40-49"

/* A ledger on that database with a fresh Ed25519 key. */
int atl_ledger_open(struct ledger **out, EVP_PKEY **key, const struct ehr_db_fixture *db);
/* A P-256 key and its public JWK. */
int atl_patient_key(EVP_PKEY **key, json_t **jwk);
/* A signed contract envelope. */
json_t *atl_contract(EVP_PKEY *key, const char *patient, const char *grantee_json, const char *actions_json,
                     const char *scope_json, const char *purpose, int64_t nb, int64_t na);
json_t *atl_revocation(EVP_PKEY *key, const char *patient, const char *cid);
long long atl_scalar(void *conn, const char *sql);

#endif
