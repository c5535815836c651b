/* audit_testlib.h - fresh databases, ledgers and patient keys for the
 * contracts & audit tests. */
#ifndef EHR_AUDIT_TESTLIB_H
#define EHR_AUDIT_TESTLIB_H

#include <openssl/evp.h>

#include "common/common.h"
#include "policy/policy.h"

struct atl_db {
	char name[64];
	char conninfo[512];     /* superuser, on the fresh database */
	char app_conninfo[512]; /* ehrgate_app, on the fresh database */
	void *conn;             /* PGconn* as superuser */
};

/* Create a fresh database on EHRGATE_TEST_PG and apply schemas/sql
 * migrations 0001-0019 and 0040-0049 in order (creating ehrgate_app if no
 * migration does). */
int atl_db_create(struct atl_db *db);
void atl_db_drop(struct atl_db *db);
/* A ledger on that database with a fresh Ed25519 key. */
int atl_ledger_open(struct ledger **out, EVP_PKEY **key, const struct atl_db *db);
/* A P-256 key and its public JWK. */
int atl_patient_key(EVP_PKEY **key, json_t **jwk);
/* A signed contract envelope. */
json_t *atl_contract(EVP_PKEY *key, const char *patient, const char *grantee_json, const char *actions_json,
                     const char *scope_json, const char *purpose, int64_t nb, int64_t na);
json_t *atl_revocation(EVP_PKEY *key, const char *patient, const char *cid);
long long atl_scalar(void *conn, const char *sql);

#endif
