/*
 * auth.h - registration CA, credentials, mutual authentication, tokens,
 * replay cache (DESIGN.md §4, docs/PROTOCOL.md is the byte-level contract).
 *
 * Two layers:
 *  - pure functions (no database): ES256/JWS, JWK and RFC 7638 thumbprints,
 *    CSR checks and certificate issuance, access tokens, DPoP proofs,
 *    the signed enrolment/login strings and pseudonyms. client/ reuses them.
 *  - struct auth_ctx: the gateway's keys plus the PostgreSQL-backed state
 *    (registration tokens, certificates, patients, nonces, DPoP jti cache),
 *    rate limits and events. Events go to a sink the application wires
 *    (the gateway: to the ledger); auth itself never links the ledger.
 *
 * Every verification function returns 0 or a negative ehr_err; a refusal is
 * EHR_ERR_AUTH / EHR_ERR_EXPIRED / EHR_ERR_REPLAY / EHR_ERR_FORBIDDEN with a
 * detail that names the failed check, never the secret.
 */
#ifndef EHR_AUTH_H
#define EHR_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/common.h"

struct ehr_db_pool; /* common/db.h */

#define AUTH_MAX_CSR_PEM 8192
#define AUTH_MAX_JWS 4096      /* compact JWS (token or proof) */
#define AUTH_MAX_ID 127        /* subject ids and pseudonyms */
#define AUTH_TOKEN_MAX_TTL 900 /* seconds: access tokens live 15 min at most */
#define AUTH_NONCE_MAX_TTL 60  /* seconds */

/* Signed strings (docs/PROTOCOL.md §4): prefixes, each followed by '\n'. */
#define AUTH_ENROLL_PREFIX "ehrgate-enroll-v1"
#define AUTH_LOGIN_PREFIX "ehrgate-auth-v1"

/* --------------------------------------------------------------- keys/ES256 */

int auth_key_generate_p256(EVP_PKEY **out);
/* PEM private key (PKCS#8) or public key (SPKI) from a file / memory. */
int auth_key_load_private(EVP_PKEY **out, const char *path);
int auth_key_load_public(EVP_PKEY **out, const char *path);
int auth_key_private_pem(struct ehr_buf *out, EVP_PKEY *key);
int auth_key_public_pem(struct ehr_buf *out, EVP_PKEY *key);
/* Writes the private key as PKCS#8 PEM, mode 0600, atomically, exclusive. */
int auth_key_save_private(const char *path, EVP_PKEY *key);

/* ES256 signatures, JWKs and thumbprints: ehr_es256_*, ehr_jwk_* in common/common.h. */

/* ---------------------------------------------------------------- JWS / JWK */

/* A parsed compact JWS (RFC 7515 §7.1). Only alg ES256 is ever accepted. */
struct auth_jws {
	json_t *header;
	json_t *payload;
	struct ehr_buf signing_input; /* ASCII(b64(header) '.' b64(payload)) */
	uint8_t sig[EHR_ES256_SIG_LEN];
};
/*
 * Strict parse: exactly three base64url parts, header and payload JSON
 * objects (bounded, no duplicate keys), header "alg" exactly "ES256", no
 * "crit", a 64-byte signature. Does NOT verify the signature.
 */
int auth_jws_parse(struct auth_jws *out, const char *compact, size_t len);
void auth_jws_free(struct auth_jws *j);
/* Serialise header and payload (compact JSON) and sign them with ES256. */
int auth_jws_sign(struct ehr_buf *out, EVP_PKEY *key, const json_t *header, const json_t *payload);

/* ---------------------------------------------------- CSR and certificates */

/*
 * Parse a PEM PKCS#10 CSR (at most AUTH_MAX_CSR_PEM bytes): one request, its
 * self-signature valid (proof of possession), ecdsa-with-SHA256, P-256 key.
 */
int auth_csr_parse(X509_REQ **out, const char *pem, size_t len);
/* A PEM CSR for key with subject CN=cn (the gateway ignores the subject). */
int auth_csr_create(struct ehr_buf *pem_out, EVP_PKEY *key, const char *cn);

struct auth_cert_params {
	const char *subject_id; /* CN */
	const char *role;       /* "server" or "auditor": OU */
	int64_t not_before;     /* Unix seconds */
	int64_t not_after;
};
/*
 * Issue a client certificate for pub, signed by ca/ca_key: v3, random
 * positive 128-bit serial, subject O=ehrgate, OU=<role>, CN=<subject_id>,
 * basicConstraints CA:FALSE, keyUsage digitalSignature, extendedKeyUsage
 * clientAuth, SKI/AKI.
 */
int auth_cert_issue(X509 **out, EVP_PKEY *pub, X509 *ca, EVP_PKEY *ca_key, const struct auth_cert_params *p);
/* Lower-case hex of the serial's minimal big-endian bytes. */
int auth_cert_serial_hex(char out[65], const X509 *cert);
/* CN and OU of the subject (empty strings if absent). */
int auth_cert_subject(char *id, size_t idlen, char *role, size_t rolelen, const X509 *cert);
int auth_cert_pem(struct ehr_buf *out, X509 *cert);
int auth_cert_load_pem(X509 **out, const void *pem, size_t len);
int auth_cert_load_file(X509 **out, const char *path);

/* ------------------------------------------------ access tokens and DPoP */

struct auth_token_claims {
	char sub[AUTH_MAX_ID + 1];
	char role[16];
	char jkt[EHR_JKT_LEN + 1];
	char jti[64];
	int64_t iat, nbf, exp;
};

struct auth_token_params {
	EVP_PKEY *key;   /* token.key (private for issue, any for verify) */
	const char *kid; /* header "kid" */
	const char *iss;
	const char *aud;
	int64_t now;  /* Unix seconds */
	int64_t skew; /* seconds of tolerated clock skew */
};

/* An ES256 JWT (typ "at+jwt") with iss, aud, sub, role "patient",
 * cnf.jkt, jti, iat, nbf, exp = now + ttl (ttl 1..AUTH_TOKEN_MAX_TTL). */
int auth_token_issue(struct ehr_buf *out, const struct auth_token_params *p, const char *sub, const char *jkt,
                     int64_t ttl);
/*
 * Verify an access token: strict JWS parse (ES256 only), typ "at+jwt", kid,
 * signature by p->key, iss, aud, sub, role, cnf.jkt, jti, and
 * iat <= now+skew, nbf <= now+skew, exp > now-skew, exp-iat <= 900.
 * EHR_ERR_EXPIRED for an expired token, EHR_ERR_AUTH for the rest.
 */
int auth_token_verify(struct auth_token_claims *out, const struct auth_token_params *p, const char *token,
                      size_t len);

struct auth_dpop_claims {
	char jti[129];
	char jkt[EHR_JKT_LEN + 1]; /* thumbprint of the proof's jwk */
	int64_t iat;
};

/*
 * Verify a DPoP proof (RFC 9449 §4.3) except the jti replay check, which
 * needs shared state: typ "dpop+jwt", alg ES256, a P-256 public "jwk"
 * header, signature by that key, htm == method, htu == url (query and
 * fragment ignored, scheme and host case-insensitive), iat within
 * [now-window, now+skew], jti of 16..128 characters, and, when
 * access_token != NULL, ath == base64url(SHA-256(access_token)).
 */
int auth_dpop_verify(struct auth_dpop_claims *out, const char *proof, size_t len, const char *method,
                     const char *url, const char *access_token, int64_t now, int64_t window, int64_t skew);
/* Build a proof for method/url (query stripped) with a fresh jti. */
int auth_dpop_create(struct ehr_buf *out, EVP_PKEY *key, const char *method, const char *url,
                     const char *access_token, int64_t now);
/* Normalise an http(s) URL for htu comparison: lower-case scheme and host,
 * no default port, no query or fragment. */
int auth_htu_normalize(struct ehr_buf *out, const char *url);

/* "ehrgate-enroll-v1\n" code "\n" jkt */
int auth_enroll_message(struct ehr_buf *out, const char *code, const char *jkt);
/* "ehrgate-auth-v1\n" nonce "\n" ts "\n" patient_id */
int auth_login_message(struct ehr_buf *out, const char *nonce, const char *ts, const char *patient_id);

/* ------------------------------------------------------------- pseudonyms */

#define AUTH_PSEUDONYM_KEY_LEN 32
#define AUTH_LINK_KEY_FILE "link.key"
/*
 * The LEGACY (derived) pseudonym: prefix "-" base64url(HMAC-SHA256(key,
 * "ehrgate-pseudonym-v1\n" kind "\n" identifier)), e.g. kind "patient" gives
 * "pt-...". Anyone holding pseudonym.key can recompute it from the external
 * id forever, so the gateway no longer creates patients this way; it only
 * looks up patients created before migration 0055 (docs/ERASURE.md).
 */
int auth_pseudonym(char out[AUTH_MAX_ID + 1], const uint8_t key[AUTH_PSEUDONYM_KEY_LEN], const char *kind,
                   const char *identifier);
/* A new patient pseudonym: "pt-" base64url(32 random bytes). It has no
 * derivation from anything, so once its link is destroyed nothing leads
 * from an external id to it. */
int auth_pseudonym_random(char out[AUTH_MAX_ID + 1]);
/*
 * The link of an external id: HMAC-SHA256(link_key, "ehrgate-link-v1\n"
 * "patient\n" external_id). Stored (auth_patient_links) only while the
 * patient is not erased, never in the ledger or a log.
 */
int auth_patient_link_hash(uint8_t out[32], const uint8_t link_key[AUTH_PSEUDONYM_KEY_LEN],
                           const char *external_id);

/* -------------------------------------------------- the gateway's context */

struct auth_ctx;

/*
 * Where auth's events go (the gateway wires it to ledger_append). append
 * gets the event type ("auth.register", ...), the actor (a pseudonym,
 * "operator" or "anonymous"), the subject ("" when none) and a JSON object
 * payload that is BORROWED: valid only during the call; json_incref it to
 * keep it. It returns 0 once the event is durable, or a negative ehr_err.
 * A failure makes the operation that needs the event fail (a registration,
 * enrolment, renewal, patient creation, login or revocation is rolled back
 * and not reported as done); failure events only log it. A sink whose
 * append is NULL drops every event (tools and tests).
 */
struct auth_event_sink {
	int (*append)(void *ud, const char *type, const char *actor, const char *subject,
	              const json_t *payload);
	void *ud;
};

struct auth_config {
	const char *state_dir;         /* regca.pem regca.key token.key token.pub pseudonym.key ca.pem */
	struct ehr_db_pool *db;        /* role ehrgate_app */
	struct auth_event_sink events; /* zeroed: no events (tools and tests) */
	const char *issuer;            /* token "iss" */
	const char *audience;          /* token "aud" */
	unsigned cert_days;            /* client certificate validity, default 90 */
	unsigned token_ttl;            /* access token seconds, <= 900 */
	unsigned nonce_ttl;            /* challenge seconds, <= 60 */
	unsigned enroll_ttl;           /* enrolment code seconds, default 86400 */
	unsigned dpop_window;          /* proof iat acceptance window, default 60 */
	unsigned clock_skew;           /* seconds, default 5 */
	/* Per-client-address token buckets: requests per minute, burst. 0 = default. */
	unsigned rate_register, rate_enroll, rate_challenge, rate_token, rate_burst;
	/* Ledger failure events per peer per minute before they are only counted. */
	unsigned failure_events_per_min;
};

/* Sensible defaults for every numeric field (strings are left alone). */
void auth_config_defaults(struct auth_config *cfg);
int auth_ctx_new(struct auth_ctx **out, const struct auth_config *cfg);
void auth_ctx_free(struct auth_ctx *ctx);
const struct auth_config *auth_ctx_config(const struct auth_ctx *ctx);

/* Rate limiting: 0, or EHR_ERR_RATE when `peer` has used up `kind`. */
enum auth_rate_kind {
	AUTH_RATE_REGISTER,
	AUTH_RATE_ENROLL,
	AUTH_RATE_CHALLENGE,
	AUTH_RATE_TOKEN,
	AUTH_RATE__N
};
int auth_rate_check(struct auth_ctx *ctx, enum auth_rate_kind kind, const char *peer);

/* Who was authenticated (mirrors the gateway's identity). */
struct auth_principal {
	char role[16];             /* "server", "auditor" or "patient" */
	char id[AUTH_MAX_ID + 1];  /* server/auditor id or patient pseudonym */
	char serial[65];           /* certificate serial (mTLS) */
	char jkt[EHR_JKT_LEN + 1]; /* device key thumbprint (patient) */
	char token_jti[64];        /* patient: the access token's jti (BALP OAUTHaccessTokenUse) */
	int64_t token_exp;         /* patient: the access token's exp, Unix seconds (streams end there) */
	uint64_t erase_seq;        /* with EHR_ERR_GONE: the patient's erasure entry */
};

/*
 * mTLS: cert was verified against the registration CA by the TLS layer
 * (verify_result is its X509_V_* result, -1 when no certificate). Checks
 * that result, the validity period, and - with one indexed query - that the
 * certificate is registered, not revoked and its principal not revoked.
 * Fills *p; role checks are the caller's.
 */
int auth_check_client_cert(struct auth_ctx *ctx, struct auth_principal *p, X509 *cert, long verify_result);

/*
 * Patient request: `authorization` is the Authorization header ("DPoP
 * <token>"), `dpop` the DPoP header. Verifies the token, the proof, binds
 * them (cnf.jkt == thumbprint of the proof key), checks that the patient is
 * still enrolled with that key, and spends the proof's jti (single-use
 * across all instances sharing the database).
 */
int auth_check_dpop_request(struct auth_ctx *ctx, struct auth_principal *p, const char *authorization,
                            const char *dpop, const char *method, const char *url);

/* Registration (POST /v1/register): consumes the token, issues a certificate.
 * Fills resp with {certificate, ca_chain, gateway_ca, id, role, not_after}. */
int auth_register(struct auth_ctx *ctx, json_t **resp, const char *csr_pem, size_t csr_len, const char *token,
                  const char *peer);
/* Renewal by an authenticated principal with a new CSR: same id and role. */
int auth_renew(struct auth_ctx *ctx, json_t **resp, const struct auth_principal *who, const char *csr_pem,
               size_t csr_len);
/*
 * POST /v1/patients by a server: {patient_id, enrolment_code, expires_at}.
 * The external id is found through its link (auth_patient_link_hash); a
 * patient created before migration 0055 through its derived pseudonym
 * (then linked). An unknown or erased external id gets a new random
 * pseudonym. Idempotent while linked: the same external id gives the same
 * patient_id and a new code.
 */
int auth_patient_create(struct auth_ctx *ctx, json_t **resp, const struct auth_principal *server,
                        const char *external_id);

/* ---------------------------------------------------- patient erasure */

enum auth_patient_state {
	AUTH_PATIENT_UNKNOWN = 0, /* no such pseudonym */
	AUTH_PATIENT_ACTIVE,      /* not erased (it may be revoked) */
	AUTH_PATIENT_ERASING,     /* erasure committed and in the ledger; records may remain */
	AUTH_PATIENT_ERASED,
};
struct auth_patient_info {
	enum auth_patient_state state;
	uint64_t erase_seq; /* the auth.patient.erase entry, when ERASING/ERASED */
	char basis[32];     /* the erasure's legal basis, by whom, and its ledger actor */
	char by[16];
	char actor[AUTH_MAX_ID + 1];
};
/* Who asked for an erasure, and on what basis (kept on the row). */
struct auth_erase_request {
	const char *basis, *by, *actor;
};
/* Where a patient stands (one primary-key read). */
int auth_patient_lookup(struct ehr_db_pool *db, const char *pid, struct auth_patient_info *out);
/* The same inside the caller's transaction, locking the row (FOR UPDATE)
 * so two erasures of one patient serialise. */
int auth_patient_lock(void *conn, const char *pid, struct auth_patient_info *out);
/*
 * Inside the caller's transaction, once the auth.patient.erase entry at
 * `seq` is durable: mark the patient 'erasing', revoke the device key,
 * delete the link (nothing leads from the external id to the pseudonym
 * any more), enrolment codes and login challenges. Idempotent.
 */
int auth_patient_erase_apply(void *conn, const char *pid, uint64_t seq, const struct auth_erase_request *rq);
/* 'erasing' -> 'erased' once every record is erased. */
int auth_patient_erase_finish(struct ehr_db_pool *db, const char *pid);
/* Pseudonyms of patients whose erasure is unfinished, as a JSON array:
 * left 'erasing' (by a crash), or 'erased' with a record still stored or
 * being erased (an upload whose ehr.store was durable when the process
 * died, its row completed by fsck afterwards). */
int auth_patients_erasing(struct ehr_db_pool *db, json_t **out);
/* Legacy (derived-pseudonym) patients: total, linked, erased. */
struct auth_legacy_counts {
	uint64_t total, linked, erased;
};
int auth_legacy_counts(struct ehr_db_pool *db, struct auth_legacy_counts *out);
/* How many external-id links the database holds (0 before migration 0055):
 * a new link.key is safe only when it is 0, since links made under another
 * key would no longer be found (docs/ERASURE.md §11). */
int auth_links_count(struct ehr_db_pool *db, uint64_t *n);
/*
 * `ehrgate admin migrate-pseudonyms --external-ids FILE`: link the legacy
 * patient whose derived pseudonym (under pseudonym_key) the external id
 * gives, if any and not erased. *linked is 1 when a link was created.
 */
int auth_legacy_link(struct ehr_db_pool *db, const uint8_t pseudonym_key[AUTH_PSEUDONYM_KEY_LEN],
                     const uint8_t link_key[AUTH_PSEUDONYM_KEY_LEN], const char *external_id, int *linked);
/* POST /v1/enroll. */
int auth_enroll(struct auth_ctx *ctx, json_t **resp, const char *patient_id, const char *code,
                const json_t *jwk, const char *signature, const char *peer);
/* POST /v1/auth/challenge. */
int auth_challenge(struct auth_ctx *ctx, json_t **resp, const char *patient_id);
/* POST /v1/auth/token. */
int auth_token(struct auth_ctx *ctx, json_t **resp, const char *patient_id, const char *nonce, const char *ts,
               const char *signature, const char *peer);

/*
 * Event (to the configured sink) for an authentication outcome. Successes
 * are always appended; a sink failure is logged and returned. Failures go through a per-peer token bucket; beyond it they are
 * counted, and the count is carried by the next failure event appended.
 * actor must be a pseudonym (or "anonymous"), reason a fixed word.
 */
int auth_event(struct auth_ctx *ctx, const char *type, const char *actor, const char *subject, bool success,
               const char *reason, const char *peer);

/*
 * Success event for an authenticated request: appended for the first
 * request of a credential (certificate serial or device key) and then at
 * most once per 5 minutes per credential and gateway instance, so the
 * ledger shows who was active without one entry per request.
 */
int auth_event_session(struct auth_ctx *ctx, const char *type, const struct auth_principal *p);

/* ------------------------------------------------------- operator commands */

/* Registration token: 32 random bytes, base64url, stored as SHA-256 only. */
int auth_admin_issue_token(struct ehr_db_pool *db, struct ehr_buf *token_out, const char *role,
                           const char *name, int64_t ttl_s, int64_t *expires_at);
/* Revoke a principal (all its certificates) by id, or one certificate by
 * serial; the "auth.revoke" event goes to events (NULL: none) before the
 * revocation commits. EHR_ERR_NOT_FOUND when nothing matched. */
int auth_admin_revoke(struct ehr_db_pool *db, const struct auth_event_sink *events, const char *id_or_serial);
/* JSON array of principals / outstanding tokens (no secrets). */
int auth_admin_list(struct ehr_db_pool *db, json_t **out, const char *what);

/* Parse "90s", "15m", "24h", "7d" or plain seconds. */
int auth_parse_duration(int64_t *out, const char *s);

#endif
