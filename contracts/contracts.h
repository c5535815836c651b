/*
 * contracts.h - the tamper-evident ledger and access-policy contracts.
 *
 * The ledger is an RFC 9162 Merkle tree of entries kept in PostgreSQL,
 * grouped into Ed25519-signed, hash-chained blocks, with C2SP
 * tlog-checkpoint signed notes. docs/LEDGER.md is the byte-level contract.
 *
 * Pure functions (entry encoding, hashing, proof verification, checkpoint
 * parsing) have no database dependency, so client/ reuses them.
 */
#ifndef EHR_CONTRACTS_H
#define EHR_CONTRACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/common.h"

#define LEDGER_HASH_LEN 32
#define LEDGER_MAX_PROOF 64

/* ------------------------------------------------------------------ entries */

struct ledger_entry_in {
	const char *type;       /* "register", "auth", "ehr.store", ... */
	const char *actor;      /* pseudonym of who acted */
	const char *subject;    /* pseudonym or id of what it concerns ("" if none) */
	const json_t *payload;  /* JSON object; serialised canonically */
};

/* What an appender learns once its batch is durable. */
struct ledger_receipt {
	uint64_t seq;          /* 0-based leaf index */
	uint64_t block_height;
	uint64_t tree_size;    /* tree size at the end of the block */
	int64_t ts_ms;
	uint8_t root[LEDGER_HASH_LEN];
};

/* ------------------------------------------------------------ Merkle (pure) */

void merkle_leaf_hash(uint8_t out[LEDGER_HASH_LEN], const uint8_t *entry, size_t len);
void merkle_node_hash(uint8_t out[LEDGER_HASH_LEN], const uint8_t l[LEDGER_HASH_LEN],
                      const uint8_t r[LEDGER_HASH_LEN]);
/* RFC 9162 §2.1.3.2: 0 if `path` proves leaf `index` in a tree of `size` with `root`,
 * else EHR_ERR_TAMPER. */
int merkle_verify_inclusion(const uint8_t leaf[LEDGER_HASH_LEN], uint64_t index, uint64_t size,
                            const uint8_t (*path)[LEDGER_HASH_LEN], size_t path_len,
                            const uint8_t root[LEDGER_HASH_LEN]);
/* RFC 9162 §2.1.4.2. */
int merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[LEDGER_HASH_LEN],
                              const uint8_t root2[LEDGER_HASH_LEN],
                              const uint8_t (*proof)[LEDGER_HASH_LEN], size_t proof_len);

/* ------------------------------------------------------------- the ledger */

struct ledger;

struct ledger_config {
	struct ehr_db_pool *db;     /* the gateway's pool (role ehrgate_app) */
	const char *conninfo;       /* for the writer's own connection */
	const char *origin;         /* checkpoint origin line, e.g. "ehrgate.local/ledger" */
	EVP_PKEY *signing_key;      /* Ed25519; the ledger takes a reference */
	unsigned batch_max;         /* entries per block, default 512 */
	unsigned batch_ms;          /* max wait before a batch commits, default 2 */
};

int ledger_open(struct ledger **out, const struct ledger_config *cfg);
/* Commits what is pending, stops the writer, frees. */
void ledger_close(struct ledger *l);
/*
 * Append one entry. Thread-safe. Returns only after the batch holding the
 * entry is durable (synchronous_commit=on), filling *rcpt; if the batch
 * failed, nothing of it was written and every waiter gets the error.
 */
int ledger_append(struct ledger *l, const struct ledger_entry_in *in, struct ledger_receipt *rcpt);

/* ==================================================================== */
/* access-policy contracts (contracts/policy*.c, jcs.c, contract*.c)    */
/* Owned by the contracts & audit engineer; docs/CONTRACTS.md is the    */
/* byte-level contract. Everything here is pure except policy_store_*.  */
/* ==================================================================== */

/* ---- RFC 8785 JSON Canonicalization Scheme (jcs.c) */

#define JCS_NUMBER_MAX 32
/* Append the canonical form of v to out. Integers must lie within
 * ±(2^53-1); reals are written as ECMAScript Number::toString. */
int jcs_canonicalize(struct ehr_buf *out, const json_t *v);
/* ECMAScript Number::toString of a finite double (RFC 8785 §3.2.2.3). */
int jcs_number(char out[JCS_NUMBER_MAX], double v);

/* ---- the contract model (policy.c) */

#define POLICY_ID_MAX 128          /* patient, server, group, record ids */
#define POLICY_CID_MAX 48          /* base64url(SHA-256) = 43 chars */
#define POLICY_PURPOSE_MAX 32
#define POLICY_MAX_SCOPE 64        /* record ids or categories per contract */
#define POLICY_DOC_MAX 16384       /* signed envelope, bytes */

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
	unsigned actions;                  /* enum policy_action bits */
	enum policy_scope_kind scope_kind;
	char **scope;                      /* record ids or categories; owned */
	size_t n_scope;
	char purpose[POLICY_PURPOSE_MAX];
	int64_t not_before;                /* Unix seconds, inclusive */
	int64_t not_after;                 /* Unix seconds, exclusive */
	int64_t issued_at;
	uint64_t seq;                      /* ledger seq of contract.create */
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
	const char *requester;              /* server id, or patient pseudonym */
	const char *const *groups;          /* groups the requesting server is in */
	size_t n_groups;
	const char *patient;                /* whose records */
	enum policy_action action;          /* exactly one */
	const char *record_id;              /* NULL: a new record (append) */
	const char *category;               /* NULL if unknown */
	const char *purpose;                /* NULL means "treatment" */
	bool break_glass;                   /* emergency declared */
	const char *justification;          /* required with break_glass */
};

enum policy_effect { POLICY_DENY = 0, POLICY_ALLOW = 1 };

struct policy_decision {
	enum policy_effect effect;
	const char *reason;                 /* static, stable: "allow.contract", "deny.expired", ... */
	char cid[POLICY_CID_MAX];           /* deciding contract, "" if none */
	bool break_glass;                   /* allowed only by break-glass: flag it */
};

/*
 * Decide one request against a set of contracts (any patients; revoked and
 * lapsed ones included, they explain denials). Never fails: a malformed
 * request is denied with "deny.invalid_request". See docs/CONTRACTS.md for
 * the order of checks and every reason.
 */
void policy_decide(const struct policy_contract *set, size_t n, const struct policy_request *req,
                   int64_t now, struct policy_decision *out);
/* The payload of an "access.decision" ledger entry for req/dec. */
int policy_decision_payload(json_t **out, const struct policy_request *req,
                            const struct policy_decision *dec);

/* ---- signatures (contract_sig.c): ES256 over JCS, key as a P-256 JWK */

/* Import a public P-256 JWK {"kty":"EC","crv":"P-256","x","y"}. */
int policy_jwk_to_pkey(EVP_PKEY **out, const json_t *jwk);
/* Verify a JOSE ES256 signature (base64url of raw r||s, 64 bytes) over
 * JCS(doc). EHR_ERR_TAMPER if it does not verify. */
int policy_verify_es256(const json_t *doc, const char *sig_b64url, EVP_PKEY *pub);
/* Sign JCS(doc) with a P-256 private key (clients and tests). */
int policy_sign_es256(struct ehr_buf *sig_b64url, const json_t *doc, EVP_PKEY *priv);

#endif
