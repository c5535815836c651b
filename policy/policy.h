/*
 * policy.h - access-policy contracts: the contract document (RFC 8785 JCS,
 * ES256 signatures), its evaluation, and the contract state materialised
 * from the ledger. docs/CONTRACTS.md is the byte-level contract.
 *
 * Everything here is pure except policy_store_*, policy_contract_create,
 * policy_contract_revoke, policy_group_change, policy_enforce,
 * policy_evaluate and policy_record, which use PostgreSQL and the ledger.
 */
#ifndef EHR_POLICY_H
#define EHR_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/common.h"
#include "ledger/ledger.h"

/* ---- RFC 8785 JSON Canonicalization Scheme (jcs.c) */

#define JCS_NUMBER_MAX 32
/* Append the canonical form of v to out. Integers must lie within
 * ±(2^53-1); reals are written as ECMAScript Number::toString. */
int jcs_canonicalize(struct ehr_buf *out, const json_t *v);
/* ECMAScript Number::toString of a finite double (RFC 8785 §3.2.2.3). */
int jcs_number(char out[JCS_NUMBER_MAX], double v);

/* ---- the contract model (policy.c) */

#define POLICY_ID_MAX 128 /* patient, server, group, record ids */
#define POLICY_CID_MAX 48 /* base64url(SHA-256) = 43 chars */
#define POLICY_PURPOSE_MAX 32
#define POLICY_MAX_SCOPE 64  /* record ids or categories per contract */
#define POLICY_DOC_MAX 16384 /* signed envelope, bytes */

enum policy_action { POLICY_ACT_READ = 1u << 0, POLICY_ACT_APPEND = 1u << 1 };
enum policy_grantee_kind { POLICY_GRANTEE_SERVER = 1, POLICY_GRANTEE_GROUP = 2 };
enum policy_scope_kind { POLICY_SCOPE_ALL = 1, POLICY_SCOPE_RECORDS = 2, POLICY_SCOPE_CATEGORIES = 3 };
/* Who asks; mirrors the gateway's roles without depending on gateway/. */
enum policy_role { POLICY_ROLE_PATIENT = 1, POLICY_ROLE_SERVER = 2, POLICY_ROLE_AUDITOR = 3 };

/* One contract as evaluation sees it: a parsed, verified document plus
 * the state the ledger gives it (seq of its create entry, revocation). */
struct policy_contract {
	char cid[POLICY_CID_MAX];
	char patient[POLICY_ID_MAX];
	enum policy_grantee_kind grantee_kind;
	char grantee[POLICY_ID_MAX];
	unsigned actions; /* enum policy_action bits */
	enum policy_scope_kind scope_kind;
	char **scope; /* record ids or categories; owned */
	size_t n_scope;
	char purpose[POLICY_PURPOSE_MAX];
	int64_t not_before; /* Unix seconds, inclusive */
	int64_t not_after;  /* Unix seconds, exclusive */
	int64_t issued_at;
	uint64_t seq; /* ledger seq of contract.create */
	bool revoked;
	uint64_t revoked_seq;
};

/* Parse and validate a contract document (the "contract" member of the
 * signed envelope) against contract.schema.json's rules; computes cid. */
int policy_contract_from_json(struct policy_contract *out, const json_t *doc);
void policy_contract_clear(struct policy_contract *c);
/* cid = base64url(SHA-256(JCS(doc))), no padding. */
int policy_contract_id(char out[POLICY_CID_MAX], const json_t *doc);
/* Stable names: "read"/"append", "treatment", ... NULL if unknown. */
const char *policy_action_name(enum policy_action a);
int policy_action_parse(enum policy_action *out, const char *s);
bool policy_purpose_valid(const char *s);

/* A revocation document. */
struct policy_revocation {
	char cid[POLICY_CID_MAX];
	char patient[POLICY_ID_MAX];
	int64_t issued_at;
};
int policy_revocation_from_json(struct policy_revocation *out, const json_t *doc);

/* ---- evaluation (policy.c): a pure function of (contracts, request, now) */

struct policy_request {
	enum policy_role role;
	const char *requester;     /* server id, or patient pseudonym */
	const char *const *groups; /* groups the requesting server is in */
	size_t n_groups;
	const char *patient;       /* whose records */
	enum policy_action action; /* exactly one */
	const char *record_id;     /* NULL: a new record (append) */
	const char *category;      /* NULL if unknown */
	const char *purpose;       /* NULL means "treatment" */
	bool break_glass;          /* emergency declared */
	const char *justification; /* required with break_glass */
};

enum policy_effect { POLICY_DENY = 0, POLICY_ALLOW = 1 };

struct policy_decision {
	enum policy_effect effect;
	const char *reason;       /* static, stable: "allow.contract", "deny.expired", ... */
	char cid[POLICY_CID_MAX]; /* deciding contract, "" if none */
	bool break_glass;         /* allowed only by break-glass: flag it */
};

/*
 * Decide one request against a set of contracts (any patients; revoked and
 * lapsed ones included, they explain denials). Never fails: a malformed
 * request is denied with "deny.invalid_request". See docs/CONTRACTS.md for
 * the order of checks and every reason.
 */
void policy_decide(const struct policy_contract *set, size_t n, const struct policy_request *req, int64_t now,
                   struct policy_decision *out);
/* The payload of an "access.decision" ledger entry for req/dec. */
int policy_decision_payload(json_t **out, const struct policy_request *req,
                            const struct policy_decision *dec);
/* The whole "access.decision" entry for req/dec: type, actor (the
 * requester), subject (the patient) and payload. *payload holds the
 * payload's reference (json_decref it after the append). */
int policy_decision_entry(struct ledger_entry_in *out, json_t **payload, const struct policy_request *req,
                          const struct policy_decision *dec);

/* ---- signatures (contract_sig.c): ES256 over JCS, key as a P-256 JWK */

/* Keys come from ehr_jwk_parse (common/common.h). */
/* Verify a JOSE ES256 signature (base64url of raw r||s, 64 bytes) over
 * JCS(doc). EHR_ERR_TAMPER if it does not verify. */
int policy_verify_es256(const json_t *doc, const char *sig_b64url, EVP_PKEY *pub);
/* Sign JCS(doc) with a P-256 private key (clients and tests). */
int policy_sign_es256(struct ehr_buf *sig_b64url, const json_t *doc, EVP_PKEY *priv);
/* A signed {"contract","signature"} envelope granting `actions` (enum
 * policy_action bits) on all of the patient's records to one server, for
 * [not_before, not_after), purpose "treatment" (clients and tests). */
int policy_grant_envelope(json_t **out, EVP_PKEY *device_key, const char *patient, const char *server,
                          unsigned actions, int64_t not_before, int64_t not_after);

bool policy_id_valid(const char *s); /* 1..127 bytes of [A-Za-z0-9._:@-] */
/* RFC 7638 JWK thumbprint (SHA-256, base64url) of an EC public JWK. */
int policy_jwk_thumbprint(char out[64], const json_t *jwk);

/* ---- state materialised from the ledger (contract_store.c) */
/* `conn` is a PGconn* (role ehrgate_app, or admin for the rebuild). */

/* Ledger entry types written by this module (docs/CONTRACTS.md §4). */
#define POLICY_ENTRY_CREATE "contract.create"
#define POLICY_ENTRY_REVOKE "contract.revoke"
#define POLICY_ENTRY_GROUP_ADD "contract.group.add"
#define POLICY_ENTRY_GROUP_REMOVE "contract.group.remove"
/* Patient erasure ends every contract of payload.patient created before it
 * (docs/ERASURE.md §Patient erasure); payload {"patient", "erase_seq"}. */
#define POLICY_ENTRY_ERASE "contract.erase"
#define POLICY_ENTRY_DECISION "access.decision"

/*
 * Verify a signed contract envelope {"contract","signature"} of `patient`
 * against the device key `jwk`, append contract.create (document,
 * signature, jwk, jkt) and materialise it. Errors: EHR_ERR_INVAL (schema),
 * EHR_ERR_FORBIDDEN (contract.patient is not the caller), EHR_ERR_TAMPER
 * (signature), EHR_ERR_CONFLICT (cid exists).
 */
int policy_contract_create(void *conn, struct ledger *l, const char *patient, const json_t *jwk,
                           const json_t *envelope, char cid[POLICY_CID_MAX], struct ledger_receipt *rcpt);
/* As above for {"revocation","signature"}; EHR_ERR_NOT_FOUND if `cid` is
 * not one of the patient's contracts, EHR_ERR_CONFLICT if already revoked. */
int policy_contract_revoke(void *conn, struct ledger *l, const char *patient, const json_t *jwk,
                           const char *cid, const json_t *envelope, struct ledger_receipt *rcpt);
/* Operator: add/remove a server to/from a named group (a ledger entry). */
int policy_group_change(void *conn, struct ledger *l, const char *actor, const char *group,
                        const char *server, bool add, struct ledger_receipt *rcpt);
/* Apply one ledger entry to the tables (idempotent; re-verifies
 * signatures; other entry types are ignored). EHR_ERR_TAMPER if the
 * entry does not prove what it claims. */
int policy_store_apply(void *conn, uint64_t seq, const char *type, const json_t *payload);
/* All contracts of a patient (any state), for policy_decide. */
int policy_store_load(void *conn, const char *patient, struct policy_contract **out, size_t *n);
void policy_contracts_free(struct policy_contract *set, size_t n);
int policy_store_groups(void *conn, const char *server, char ***out, size_t *n);
void policy_groups_free(char **groups, size_t n);
/* "active", "pending", "expired" or "revoked". */
const char *policy_contract_state(const struct policy_contract *c, int64_t now);
/* GET /v1/me/contracts body items (docs/CONTRACTS.md §6). */
int policy_store_list_json(void *conn, const char *patient, int64_t now, json_t **out);
/*
 * Decide req (loading the patient's contracts and the server's groups when
 * req->groups is NULL) and append the access.decision entry. Returns 0
 * with *dec filled whether allowed or denied; any error means the decision
 * could not be recorded and the caller must refuse (dec says deny).
 */
int policy_enforce(void *conn, struct ledger *l, const struct policy_request *req, int64_t now,
                   struct policy_decision *dec, struct ledger_receipt *rcpt);
/* The two halves of policy_enforce: decide (loads state, no ledger write),
 * then append the access.decision entry. A caller that must order the entry
 * after other work (an EHR append records it just before ehr.store) uses
 * them separately; the decision is never acted on unless recorded. */
int policy_evaluate(void *conn, const struct policy_request *req, int64_t now, struct policy_decision *dec);
int policy_record(struct ledger *l, const struct policy_request *req, const struct policy_decision *dec,
                  struct ledger_receipt *rcpt);

struct policy_rebuild_report {
	uint64_t entries; /* contract.* entries read */
	uint64_t applied;
	uint64_t rejected; /* entries that do not verify: never materialised */
	uint64_t first_rejected_seq;
	char first_reason[256];
};
/* Recompute policy_contracts and policy_groups from ledger_entries alone, in
 * one transaction (admin conninfo: it deletes the old state first). */
int policy_store_rebuild(void *conn, struct policy_rebuild_report *rep);
/* SHA-256 over a canonical dump of the materialised state. */
int policy_store_digest(void *conn, uint8_t out[32]);

#endif
