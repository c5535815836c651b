/*
 * store.c - the PostgreSQL-backed parts of authentication: registration
 * tokens, certificates and their revocation, patients, enrolment codes,
 * challenge nonces and the DPoP jti replay cache.
 *
 * Every single-use value is spent with one conditional UPDATE ... RETURNING
 * (or an INSERT on a primary key), so two gateway instances racing on the
 * same value cannot both win: the database decides.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/x509_vfy.h>

#include "common/db.h"
#include "auth/auth.h"
#include "auth/auth_internal.h"

json_t *auth__rfc3339(int64_t unix_s)
{
	char t[32];

	ehr_time_rfc3339(t, unix_s * 1000);
	return json_string(t);
}

int64_t auth__now_s(void)
{
	return ehr_now_ms() / 1000;
}

/* Return a connection to the pool (NULL is fine): ehr_db_release_after
 * rolls back what a failed operation left open, so nothing half-done can
 * ever commit and the connection stays reusable. */
static void release(struct auth_ctx *ctx, void *conn, int err)
{
	ehr_db_release_after(ctx->cfg.db, conn, err);
}

/* A secret presented by a client: base64url, 16..128 characters. */
bool auth__plausible_secret(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 16 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* --------------------------------------------------------- certificates */

static int issue_for(struct auth_ctx *ctx, X509 **cert, char serial[65], struct ehr_buf *pem,
                     const char *csr_pem, size_t csr_len, const char *id, const char *role,
                     int64_t *not_after)
{
	X509_REQ *req = NULL;
	struct auth_cert_params p;
	int64_t now = auth__now_s();
	int err;

	GUARD(auth_csr_parse(&req, csr_pem, csr_len));
	p.subject_id = id;
	p.role = role;
	p.not_before = now - 300; /* tolerate client clocks a little behind */
	p.not_after = now + (int64_t)ctx->cfg.cert_days * 86400;
	*not_after = p.not_after;
	err = auth_cert_issue(cert, X509_REQ_get0_pubkey(req), ctx->regca, ctx->regca_key, &p);
	if (err == 0)
		err = auth_cert_serial_hex(serial, *cert);
	if (err == 0)
		err = auth_cert_pem(pem, *cert);
	X509_REQ_free(req);
	return err;
}

static int cert_response(struct auth_ctx *ctx, json_t **resp, const struct ehr_buf *pem, const char *id,
                         const char *role, const char *serial, int64_t not_after)
{
	*resp = json_pack("{s:s,s:[s],s:s,s:s,s:s,s:s,s:o}", "certificate", ehr_buf_cstr(pem), "ca_chain",
	                  ehr_buf_cstr(&ctx->regca_pem), "gateway_ca", ehr_buf_cstr(&ctx->gateway_ca_pem),
	                  "id", id, "role", role, "serial", serial, "not_after", auth__rfc3339(not_after));
	ENSURE(*resp != NULL, EHR_ERR_NOMEM);
	return 0;
}

static int insert_cert(void *conn, const char *serial, const char *id, const char *role, int64_t not_after)
{
	char na[32], nb[32];
	const char *params[5];

	GUARD(ehr_fmt(na, sizeof(na), "%lld", (long long)not_after));
	GUARD(ehr_fmt(nb, sizeof(nb), "%lld", (long long)(auth__now_s() - 300)));
	params[0] = serial;
	params[1] = id;
	params[2] = role;
	params[3] = nb;
	params[4] = na;
	return ehr_db_run(conn,
	                  "INSERT INTO auth_certs (serial, principal_id, role, not_before, not_after) "
	                  "VALUES ($1, $2, $3, to_timestamp($4::bigint), to_timestamp($5::bigint))",
	                  5, params);
}

int auth_register(struct auth_ctx *ctx, json_t **resp, const char *csr_pem, size_t csr_len, const char *token,
                  const char *peer)
{
	uint8_t th[32];
	char hex[67], serial[65], id[40];
	uint8_t rnd[16];
	struct ehr_buf pem = EHR_BUF_INIT(64 * 1024), idh = EHR_BUF_INIT(64);
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	void *conn = NULL, *res = NULL;
	char role[16] = "", name[256] = "";
	int64_t not_after = 0;
	const char *params[3];
	int err;

	*resp = NULL;
	/* Check the CSR first: a malformed request must not burn the token. */
	GUARD_GOTO(auth_csr_parse(&req, csr_pem, csr_len));
	if (!auth__plausible_secret(token)) {
		err = ehr_error_set(EHR_ERR_AUTH, "registration token invalid, used or expired");
		auth_event(ctx, "auth.register", "anonymous", "", false, "bad_token", peer);
		goto out;
	}
	GUARD_GOTO(auth__hash_secret(th, token));
	GUARD_GOTO(ehr_db_bytea_param(hex, sizeof(hex), th, sizeof(th)));
	GUARD_GOTO(ehr_random(rnd, sizeof(rnd)));
	GUARD_GOTO(ehr_hex_encode(&idh, rnd, sizeof(rnd)));

	GUARD_GOTO(ehr_db_acquire(ctx->cfg.db, &conn));
	GUARD_GOTO(ehr_db_begin(conn));
	params[0] = hex;
	GUARD_GOTO(ehr_db_exec(conn, &res,
	                       "UPDATE auth_reg_tokens SET used_at = now() WHERE token_hash = $1::bytea "
	                       "AND used_at IS NULL AND expires_at > now() RETURNING role, name",
	                       1, params));
	if (ehr_db_rows(res) != 1) {
		ehr_db_rollback(conn);
		err = ehr_error_set(EHR_ERR_AUTH, "registration token invalid, used or expired");
		auth_event(ctx, "auth.register", "anonymous", "", false, "bad_token", peer);
		goto out;
	}
	GUARD_GOTO(ehr_db_get_text(role, sizeof(role), res, 0, 0));
	GUARD_GOTO(ehr_db_get_text(name, sizeof(name), res, 0, 1));
	ehr_db_clear(res);
	res = NULL;
	GUARD_GOTO(ehr_fmt(id, sizeof(id), "%s-%s", strcmp(role, "auditor") == 0 ? "aud" : "srv",
	                   ehr_buf_cstr(&idh)));

	GUARD_GOTO(issue_for(ctx, &cert, serial, &pem, csr_pem, csr_len, id, role, &not_after));
	params[0] = id;
	params[1] = role;
	params[2] = name;
	GUARD_GOTO(ehr_db_run(conn, "INSERT INTO auth_principals (id, role, name) VALUES ($1, $2, $3)", 3,
	                      params));
	params[0] = id;
	params[1] = hex;
	GUARD_GOTO(ehr_db_run(conn, "UPDATE auth_reg_tokens SET used_by = $1 WHERE token_hash = $2::bytea", 2,
	                      params));
	GUARD_GOTO(insert_cert(conn, serial, id, role, not_after));
	/* The ledger entry is durable before the registration commits. */
	GUARD_GOTO(auth__emit(ctx, "auth.register", id, id,
	                      json_pack("{s:s,s:s,s:s,s:I}", "outcome", "success", "role", role, "serial",
	                                serial, "not_after", (json_int_t)not_after)));
	GUARD_GOTO(ehr_db_commit(conn));
	GUARD_GOTO(cert_response(ctx, resp, &pem, id, role, serial, not_after));
out:
	release(ctx, conn, err);
	ehr_db_clear(res);
	X509_REQ_free(req);
	X509_free(cert);
	ehr_buf_free(&pem);
	ehr_buf_free(&idh);
	return err;
}

int auth_renew(struct auth_ctx *ctx, json_t **resp, const struct auth_principal *who, const char *csr_pem,
               size_t csr_len)
{
	struct ehr_buf pem = EHR_BUF_INIT(64 * 1024);
	X509 *cert = NULL;
	void *conn = NULL;
	char serial[65];
	int64_t not_after = 0;
	int err;

	*resp = NULL;
	ENSURE(strcmp(who->role, "server") == 0 || strcmp(who->role, "auditor") == 0, EHR_ERR_FORBIDDEN);
	GUARD_GOTO(issue_for(ctx, &cert, serial, &pem, csr_pem, csr_len, who->id, who->role, &not_after));
	GUARD_GOTO(ehr_db_acquire(ctx->cfg.db, &conn));
	GUARD_GOTO(ehr_db_begin(conn));
	GUARD_GOTO(insert_cert(conn, serial, who->id, who->role, not_after));
	GUARD_GOTO(auth__emit(ctx, "auth.renew", who->id, who->id,
	                      json_pack("{s:s,s:s,s:s,s:I}", "outcome", "success", "serial", serial,
	                                "previous", who->serial, "not_after", (json_int_t)not_after)));
	GUARD_GOTO(ehr_db_commit(conn));
	GUARD_GOTO(cert_response(ctx, resp, &pem, who->id, who->role, serial, not_after));
out:
	release(ctx, conn, err);
	X509_free(cert);
	ehr_buf_free(&pem);
	return err;
}

int auth_check_client_cert(struct auth_ctx *ctx, struct auth_principal *p, X509 *cert, long verify_result)
{
	char cn[AUTH_MAX_ID + 1], ou[16];
	void *conn = NULL, *res = NULL;
	const char *params[1];
	int err;

	memset(p, 0, sizeof(*p));
	if (cert == NULL || verify_result == -1)
		return ehr_error_set(EHR_ERR_AUTH, "client certificate required");
	if (verify_result != X509_V_OK)
		return ehr_error_set(EHR_ERR_AUTH, "client certificate not accepted: %s",
		                     X509_verify_cert_error_string(verify_result));
	/* The TLS layer checked the period too; check again, it is cheap. */
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0)
		return ehr_error_set(EHR_ERR_AUTH, "client certificate not yet valid");
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
		return ehr_error_set(EHR_ERR_AUTH, "client certificate expired");
	GUARD(auth_cert_serial_hex(p->serial, cert));
	GUARD(auth_cert_subject(cn, sizeof(cn), ou, sizeof(ou), cert));
	params[0] = p->serial;
	GUARD_GOTO(ehr_db_acquire(ctx->cfg.db, &conn));
	/* One indexed query on every request: revocation is immediate everywhere. */
	GUARD_GOTO(ehr_db_exec(conn, &res,
	                       "SELECT c.principal_id, c.role, "
	                       "(c.revoked_at IS NULL AND p.revoked_at IS NULL AND c.not_after > now())::int "
	                       "FROM auth_certs c JOIN auth_principals p ON p.id = c.principal_id "
	                       "WHERE c.serial = $1",
	                       1, params));
	if (ehr_db_rows(res) != 1) {
		err = ehr_error_set(EHR_ERR_AUTH, "client certificate not registered");
		goto out;
	}
	if (strcmp(ehr_db_value(res, 0, 2), "1") != 0) {
		err = ehr_error_set(EHR_ERR_AUTH, "client certificate revoked");
		goto out;
	}
	if (strcmp(ehr_db_value(res, 0, 0), cn) != 0 || strcmp(ehr_db_value(res, 0, 1), ou) != 0) {
		err = ehr_error_set(EHR_ERR_AUTH, "client certificate does not match its registration");
		goto out;
	}
	GUARD_GOTO(ehr_str_copy(p->id, sizeof(p->id), cn));
	GUARD_GOTO(ehr_str_copy(p->role, sizeof(p->role), ou));
out:
	ehr_db_clear(res);
	release(ctx, conn, err);
	if (err < 0) {
		char keep[65];
		memcpy(keep, p->serial, sizeof(keep));
		memset(p, 0, sizeof(*p));
		/* keep the claimed id for the failure event (a pseudonymous id, never a name) */
		if (strlen(cn) < sizeof(p->id)) /* a bounded copy that keeps the error */
			memcpy(p->id, cn, strlen(cn) + 1);
		memcpy(p->serial, keep, sizeof(keep));
	}
	return err;
}

/* ------------------------------------------------------------- patients */

bool auth__valid_patient_id(const char *pid)
{
	return pid != NULL && strlen(pid) == 3 + EHR_JKT_LEN && strncmp(pid, "pt-", 3) == 0 &&
	       auth__plausible_secret(pid + 3);
}

int auth_enroll(struct auth_ctx *ctx, json_t **resp, const char *patient_id, const char *code,
                const json_t *jwk, const char *signature, const char *peer)
{
	EVP_PKEY *key = NULL;
	char jkt[EHR_JKT_LEN + 1], hex[67];
	uint8_t ch[32];
	struct ehr_buf msg = EHR_BUF_INIT(512), jwktext = EHR_BUF_INIT(1024);
	json_t *pub = NULL;
	void *conn = NULL, *res = NULL;
	const char *params[3];
	int err;

	*resp = NULL;
	if (!auth__valid_patient_id(patient_id))
		return ehr_error_set(EHR_ERR_INVAL, "patient_id is not a patient pseudonym");
	if (ehr_jwk_parse(&key, jwk) < 0)
		return ehr_error_set(EHR_ERR_INVAL, "jwk must be a P-256 public JWK");
	GUARD_GOTO(ehr_jwk_thumbprint(jkt, key));
	if (!auth__plausible_secret(code)) {
		err = ehr_error_set(EHR_ERR_AUTH, "enrolment code invalid, used or expired");
		auth_event(ctx, "auth.enroll", "anonymous", patient_id, false, "bad_code", peer);
		goto out;
	}
	GUARD_GOTO(auth_enroll_message(&msg, code, jkt));
	if (ehr_es256_verify_b64url(key, msg.data, msg.len, signature) < 0) {
		err = ehr_error_set(EHR_ERR_AUTH, "enrolment signature does not verify");
		auth_event(ctx, "auth.enroll", "anonymous", patient_id, false, "bad_signature", peer);
		goto out;
	}
	GUARD_GOTO(ehr_jwk_from_key(&pub, key));
	GUARD_GOTO(ehr_json_dump(&jwktext, pub));
	GUARD_GOTO(auth__hash_secret(ch, code));
	GUARD_GOTO(ehr_db_bytea_param(hex, sizeof(hex), ch, sizeof(ch)));

	GUARD_GOTO(ehr_db_acquire(ctx->cfg.db, &conn));
	GUARD_GOTO(ehr_db_begin(conn));
	params[0] = hex;
	params[1] = patient_id;
	GUARD_GOTO(ehr_db_exec(conn, &res,
	                       "UPDATE auth_enrol_codes SET used_at = now() WHERE code_hash = $1::bytea "
	                       "AND patient_id = $2 AND used_at IS NULL AND expires_at > now() RETURNING 1",
	                       2, params));
	if (ehr_db_rows(res) != 1) {
		ehr_db_rollback(conn);
		err = ehr_error_set(EHR_ERR_AUTH, "enrolment code invalid, used or expired");
		auth_event(ctx, "auth.enroll", "anonymous", patient_id, false, "bad_code", peer);
		goto out;
	}
	ehr_db_clear(res);
	res = NULL;
	params[0] = patient_id;
	params[1] = jkt;
	params[2] = ehr_buf_cstr(&jwktext);
	GUARD_GOTO(
	        ehr_db_exec(conn, &res,
	                    "UPDATE auth_patients SET device_jkt = $2, device_jwk = $3, enrolled_at = now() "
	                    "WHERE patient_id = $1 AND revoked_at IS NULL RETURNING 1",
	                    3, params));
	if (ehr_db_rows(res) != 1) {
		ehr_db_rollback(conn);
		err = ehr_error_set(EHR_ERR_AUTH, "patient revoked");
		goto out;
	}
	GUARD_GOTO(auth__emit(ctx, "auth.enroll", patient_id, patient_id,
	                      json_pack("{s:s,s:s}", "outcome", "success", "jkt", jkt)));
	GUARD_GOTO(ehr_db_commit(conn));
	*resp = json_pack("{s:s,s:s}", "patient_id", patient_id, "jkt", jkt);
	ENSURE_GOTO(*resp != NULL, EHR_ERR_NOMEM);
out:
	release(ctx, conn, err);
	ehr_db_clear(res);
	json_decref(pub);
	EVP_PKEY_free(key);
	ehr_buf_free(&msg);
	ehr_buf_free(&jwktext);
	return err;
}

static void maybe_cleanup(struct auth_ctx *ctx, void *conn)
{
	/* Expired single-use values are useless after their window; prune now and then. */
	if ((atomic_fetch_add(&ctx->cleanup_tick, 1) & 1023) != 0)
		return;
	ehr_db_run(conn, "DELETE FROM auth_dpop_jti WHERE expires_at < now()", 0, NULL);
	ehr_db_run(conn, "DELETE FROM auth_challenges WHERE expires_at < now() - interval '1 hour'", 0, NULL);
	ehr_error_clear();
}

int auth_challenge(struct auth_ctx *ctx, json_t **resp, const char *patient_id)
{
	struct ehr_buf nonce = EHR_BUF_INIT(64);
	char hex[67], exp[24];
	uint8_t nh[32];
	void *conn = NULL;
	const char *params[3];
	int64_t expires;
	int err;

	*resp = NULL;
	if (!auth__valid_patient_id(patient_id))
		return ehr_error_set(EHR_ERR_INVAL, "patient_id is not a patient pseudonym");
	/* Issued whether or not the patient exists, so this does not reveal who is enrolled. */
	GUARD_GOTO(ehr_random_token(&nonce, 32));
	GUARD_GOTO(auth__hash_secret(nh, ehr_buf_cstr(&nonce)));
	GUARD_GOTO(ehr_db_bytea_param(hex, sizeof(hex), nh, sizeof(nh)));
	expires = auth__now_s() + ctx->cfg.nonce_ttl;
	GUARD_GOTO(ehr_fmt(exp, sizeof(exp), "%lld", (long long)expires));
	params[0] = hex;
	params[1] = patient_id;
	params[2] = exp;
	GUARD_GOTO(ehr_db_acquire(ctx->cfg.db, &conn));
	GUARD_GOTO(ehr_db_run(conn,
	                      "INSERT INTO auth_challenges (nonce_hash, patient_id, expires_at) "
	                      "VALUES ($1::bytea, $2, to_timestamp($3::bigint))",
	                      3, params));
	maybe_cleanup(ctx, conn);
	*resp = json_pack("{s:s,s:o,s:I}", "nonce", ehr_buf_cstr(&nonce), "expires_at",
	                  auth__rfc3339(expires), "expires_in", (json_int_t)ctx->cfg.nonce_ttl);
	ENSURE_GOTO(*resp != NULL, EHR_ERR_NOMEM);
out:
	release(ctx, conn, err);
	ehr_buf_free_secure(&nonce);
	return err;
}

int auth_token(struct auth_ctx *ctx, json_t **resp, const char *patient_id, const char *nonce, const char *ts,
               const char *signature, const char *peer)
{
	struct auth_token_params tp;
	struct ehr_buf msg = EHR_BUF_INIT(1024), tok = EHR_BUF_INIT(AUTH_MAX_JWS);
	EVP_PKEY *key = NULL;
	char hex[67], jkt[EHR_JKT_LEN + 1];
	uint8_t nh[32];
	void *conn = NULL, *res = NULL;
	const char *params[2];
	const char *reason = "internal";
	int64_t t, now = auth__now_s();
	int err;

	*resp = NULL;
	if (!auth__valid_patient_id(patient_id))
		return ehr_error_set(EHR_ERR_INVAL, "patient_id is not a patient pseudonym");
	if (ts == NULL || ehr_parse_i64(&t, ts, 0, 253402300799LL) < 0)
		return ehr_error_set(EHR_ERR_INVAL, "ts must be decimal Unix seconds");
	if (!auth__plausible_secret(nonce)) {
		reason = "bad_nonce";
		err = ehr_error_set(EHR_ERR_AUTH, "nonce invalid, used or expired");
		goto out;
	}
	if (t < now - (int64_t)ctx->cfg.nonce_ttl - (int64_t)ctx->cfg.clock_skew ||
	    t > now + (int64_t)ctx->cfg.clock_skew) {
		reason = "stale_ts";
		err = ehr_error_set(EHR_ERR_AUTH, "ts outside the accepted window");
		goto out;
	}
	GUARD_GOTO(auth__hash_secret(nh, nonce));
	GUARD_GOTO(ehr_db_bytea_param(hex, sizeof(hex), nh, sizeof(nh)));
	GUARD_GOTO(ehr_db_acquire(ctx->cfg.db, &conn));
	/* Spend the nonce first: whatever follows, it gets exactly one try. */
	params[0] = hex;
	params[1] = patient_id;
	GUARD_GOTO(ehr_db_exec(conn, &res,
	                       "UPDATE auth_challenges SET used_at = now() WHERE nonce_hash = $1::bytea "
	                       "AND patient_id = $2 AND used_at IS NULL AND expires_at > now() RETURNING 1",
	                       2, params));
	if (ehr_db_rows(res) != 1) {
		reason = "bad_nonce";
		err = ehr_error_set(EHR_ERR_AUTH, "nonce invalid, used or expired");
		goto out;
	}
	ehr_db_clear(res);
	res = NULL;
	GUARD_GOTO(ehr_db_exec(conn, &res,
	                       "SELECT device_jwk, device_jkt, (revoked_at IS NULL)::int, erase_seq "
	                       "FROM auth_patients WHERE patient_id = $1 AND device_jkt IS NOT NULL",
	                       1, params + 1));
	if (ehr_db_rows(res) != 1) {
		reason = "not_enrolled";
		err = ehr_error_set(EHR_ERR_AUTH, "login refused: bad signature or no enrolled device");
		goto out;
	}
	GUARD_GOTO(ehr_jwk_parse_text(&key, ehr_db_value(res, 0, 0), ehr_db_len(res, 0, 0)));
	GUARD_GOTO(ehr_db_get_text(jkt, sizeof(jkt), res, 0, 1));
	GUARD_GOTO(auth_login_message(&msg, nonce, ts, patient_id));
	if (ehr_es256_verify_b64url(key, msg.data, msg.len, signature) < 0) {
		reason = "bad_signature";
		err = ehr_error_set(EHR_ERR_AUTH, "login refused: bad signature or no enrolled device");
		goto out;
	}
	if (strcmp(ehr_db_value(res, 0, 2), "1") != 0) {
		/* The device key proved itself: it may learn that it was erased. */
		reason = "not_enrolled";
		err = ehr_db_is_null(res, 0, 3)
		              ? ehr_error_set(EHR_ERR_AUTH,
		                              "login refused: bad signature or no enrolled device")
		              : ehr_error_set(EHR_ERR_GONE, "this patient was erased (ledger entry %s)",
		                              ehr_db_value(res, 0, 3));
		goto out;
	}
	tp.key = ctx->token_key;
	tp.kid = ctx->kid;
	tp.iss = ctx->issuer;
	tp.aud = ctx->audience;
	tp.now = now;
	tp.skew = ctx->cfg.clock_skew;
	GUARD_GOTO(auth_token_issue(&tok, &tp, patient_id, jkt, ctx->cfg.token_ttl));
	GUARD_GOTO(auth_event(ctx, "auth.token", patient_id, patient_id, true, "login", peer));
	*resp = json_pack("{s:s,s:s,s:I}", "access_token", ehr_buf_cstr(&tok), "token_type", "DPoP",
	                  "expires_in", (json_int_t)ctx->cfg.token_ttl);
	ENSURE_GOTO(*resp != NULL, EHR_ERR_NOMEM);
out:
	if (err == EHR_ERR_AUTH || err == EHR_ERR_GONE) {
		struct ehr_error_saved saved;
		ehr_error_save(&saved);
		auth_event(ctx, "auth.token", "anonymous", patient_id, false, reason, peer);
		ehr_error_restore(&saved);
	}
	ehr_db_clear(res);
	release(ctx, conn, err);
	EVP_PKEY_free(key);
	ehr_buf_free(&msg);
	ehr_buf_free_secure(&tok);
	return err;
}

/* --------------------------------------------------------- DPoP requests */

/* Why a patient's valid token no longer works: erased (EHR_ERR_GONE, with
 * the erasure's seq in p), else revoked or re-enrolled. Only a caller who
 * proved possession of the patient's device key gets this far. */
static int refused_patient(void *conn, struct auth_principal *p, const char *sub)
{
	struct auth_patient_info info;

	if (auth_patient_lock(conn, sub, &info) == 0 &&
	    (info.state == AUTH_PATIENT_ERASING || info.state == AUTH_PATIENT_ERASED) &&
	    ehr_str_copy(p->id, sizeof(p->id), sub) == 0) {
		p->erase_seq = info.erase_seq;
		return ehr_error_set(EHR_ERR_GONE, "this patient was erased (ledger entry %llu)",
		                     (unsigned long long)info.erase_seq);
	}
	return ehr_error_set(EHR_ERR_AUTH, "patient revoked or re-enrolled");
}

int auth_check_dpop_request(struct auth_ctx *ctx, struct auth_principal *p, const char *authorization,
                            const char *dpop, const char *method, const char *url)
{
	struct auth_token_params tp;
	struct auth_token_claims tc;
	struct auth_dpop_claims dc;
	const char *token;
	void *conn = NULL, *res = NULL;
	char exp[24];
	const char *params[4];
	int64_t now = auth__now_s();
	int err;

	memset(p, 0, sizeof(*p));
	if (authorization == NULL || strncasecmp(authorization, "DPoP ", 5) != 0)
		return ehr_error_set(EHR_ERR_AUTH, "Authorization: DPoP <token> required");
	token = authorization + 5;
	tp.key = ctx->token_key;
	tp.kid = ctx->kid;
	tp.iss = ctx->issuer;
	tp.aud = ctx->audience;
	tp.now = now;
	tp.skew = ctx->cfg.clock_skew;
	GUARD(auth_token_verify(&tc, &tp, token, strlen(token)));
	if (dpop == NULL)
		return ehr_error_set(EHR_ERR_AUTH, "DPoP proof required");
	GUARD(auth_dpop_verify(&dc, dpop, strlen(dpop), method, url, token, now, ctx->cfg.dpop_window,
	                       ctx->cfg.clock_skew));
	if (CRYPTO_memcmp(tc.jkt, dc.jkt, EHR_JKT_LEN) != 0)
		return ehr_error_set(EHR_ERR_AUTH, "proof key does not match the token's cnf.jkt");
	GUARD(ehr_fmt(exp, sizeof(exp), "%lld",
	              (long long)(dc.iat + ctx->cfg.dpop_window + ctx->cfg.clock_skew + 1)));
	params[0] = dc.jti;
	params[1] = exp;
	params[2] = tc.sub;
	params[3] = tc.jkt;
	GUARD_GOTO(ehr_db_acquire(ctx->cfg.db, &conn));
	/*
	 * One statement: the patient is still bound to this key, and the jti
	 * is new. Its commit does not wait for a WAL flush of its own: the
	 * request's ledger batch (a read's ehr.read, a contract's entry) is a
	 * later durable commit and flushes it with everything before it, so
	 * the spend joins that group commit (docs/PROTOCOL.md §7).
	 */
	err = ehr_db_exec_steps(
	        conn, &res, EHR_DB_BEGIN_COVERED | EHR_DB_COMMIT,
	        "INSERT INTO auth_dpop_jti (jti, expires_at) SELECT $1, to_timestamp($2::bigint) "
	        "WHERE EXISTS (SELECT 1 FROM auth_patients WHERE patient_id = $3 AND device_jkt = $4 "
	        "AND revoked_at IS NULL) RETURNING 1",
	        4, params);
	if (err == EHR_ERR_CONFLICT) {
		err = ehr_error_set(EHR_ERR_REPLAY, "DPoP proof jti already used");
		goto out;
	}
	if (err < 0)
		goto out;
	if (ehr_db_rows(res) != 1) {
		err = refused_patient(conn, p, tc.sub);
		goto out;
	}
	maybe_cleanup(ctx, conn);
	GUARD_GOTO(ehr_str_copy(p->role, sizeof(p->role), "patient"));
	GUARD_GOTO(ehr_str_copy(p->id, sizeof(p->id), tc.sub));
	memcpy(p->jkt, tc.jkt, sizeof(p->jkt));
	memcpy(p->token_jti, tc.jti, sizeof(p->token_jti));
	p->token_exp = tc.exp;
out:
	ehr_db_clear(res);
	release(ctx, conn, err);
	return err;
}

/* ------------------------------------------------------------ operator */

int auth_admin_issue_token(struct ehr_db_pool *db, struct ehr_buf *token_out, const char *role,
                           const char *name, int64_t ttl_s, int64_t *expires_at)
{
	uint8_t th[32];
	char hex[67], exp[24];
	const char *params[4];
	void *conn = NULL;
	int err;

	ENSURE(role != NULL && (strcmp(role, "server") == 0 || strcmp(role, "auditor") == 0), EHR_ERR_INVAL);
	ENSURE(name != NULL && *name != '\0' && strlen(name) <= 200, EHR_ERR_INVAL);
	ENSURE(ttl_s > 0, EHR_ERR_INVAL);
	GUARD(ehr_random_token(token_out, 32));
	GUARD(auth__hash_secret(th, ehr_buf_cstr(token_out)));
	GUARD(ehr_db_bytea_param(hex, sizeof(hex), th, sizeof(th)));
	*expires_at = auth__now_s() + ttl_s;
	GUARD(ehr_fmt(exp, sizeof(exp), "%lld", (long long)*expires_at));
	params[0] = hex;
	params[1] = role;
	params[2] = name;
	params[3] = exp;
	GUARD(ehr_db_acquire(db, &conn));
	err = ehr_db_run(conn,
	                 "INSERT INTO auth_reg_tokens (token_hash, role, name, expires_at) "
	                 "VALUES ($1::bytea, $2, $3, to_timestamp($4::bigint))",
	                 4, params);
	ehr_db_release(db, conn, err < 0);
	OPENSSL_cleanse(th, sizeof(th));
	return err;
}

static bool is_hex(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int auth_admin_revoke(struct ehr_db_pool *db, const struct auth_event_sink *events, const char *what)
{
	void *conn = NULL, *res = NULL;
	const char *params[1] = { what };
	const char *kind;
	int err;

	ENSURE(what != NULL && *what != '\0' && strlen(what) <= 128, EHR_ERR_INVAL);
	GUARD(ehr_db_acquire(db, &conn));
	GUARD_GOTO(ehr_db_begin(conn));
	if (strncmp(what, "pt-", 3) == 0) {
		kind = "patient";
		GUARD_GOTO(ehr_db_exec(conn, &res,
		                       "UPDATE auth_patients SET revoked_at = now() WHERE patient_id = $1 "
		                       "AND revoked_at IS NULL RETURNING 1",
		                       1, params));
	} else if (is_hex(what)) {
		kind = "certificate";
		GUARD_GOTO(ehr_db_exec(conn, &res,
		                       "UPDATE auth_certs SET revoked_at = now() WHERE serial = $1 "
		                       "AND revoked_at IS NULL RETURNING 1",
		                       1, params));
	} else {
		kind = "principal";
		GUARD_GOTO(ehr_db_exec(conn, &res,
		                       "UPDATE auth_principals SET revoked_at = now() WHERE id = $1 "
		                       "AND revoked_at IS NULL RETURNING 1",
		                       1, params));
		if (ehr_db_rows(res) == 1)
			GUARD_GOTO(
			        ehr_db_run(conn,
			                   "UPDATE auth_certs SET revoked_at = now() WHERE principal_id = $1 "
			                   "AND revoked_at IS NULL",
			                   1, params));
	}
	if (ehr_db_rows(res) != 1) {
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no active %s with that id", kind);
		goto out;
	}
	GUARD_GOTO(auth__sink_emit(events, "auth.revoke", "operator", what,
	                           json_pack("{s:s,s:s}", "outcome", "success", "kind", kind)));
	GUARD_GOTO(ehr_db_commit(conn));
out:
	ehr_db_clear(res);
	ehr_db_release_after(db, conn, err);
	return err;
}

int auth_admin_list(struct ehr_db_pool *db, json_t **out, const char *what)
{
	void *conn = NULL, *res = NULL;
	const char *sql;
	int err;

	*out = NULL;
	if (strcmp(what, "principals") == 0)
		sql = "SELECT json_agg(t ORDER BY t.created_at)::text FROM (SELECT p.id, p.role, p.name, "
		      "p.created_at, p.revoked_at, (SELECT json_agg(json_build_object('serial', c.serial, "
		      "'not_after', c.not_after, 'revoked_at', c.revoked_at) ORDER BY c.issued_at) "
		      "FROM auth_certs c WHERE c.principal_id = p.id) AS certificates FROM auth_principals "
		      "p) t";
	else if (strcmp(what, "tokens") == 0)
		sql = "SELECT json_agg(t ORDER BY t.created_at)::text FROM (SELECT role, name, created_at, "
		      "expires_at, used_at, used_by FROM auth_reg_tokens) t";
	else if (strcmp(what, "patients") == 0)
		sql = "SELECT json_agg(t ORDER BY t.created_at)::text FROM (SELECT patient_id, created_by, "
		      "created_at, device_jkt, enrolled_at, revoked_at FROM auth_patients) t";
	else
		return ehr_error_set(EHR_ERR_INVAL, "list principals|tokens|patients");
	GUARD(ehr_db_acquire(db, &conn));
	GUARD_GOTO(ehr_db_exec(conn, &res, sql, 0, NULL));
	if (ehr_db_is_null(res, 0, 0))
		*out = json_array();
	else
		GUARD_GOTO(ehr_json_parse(out, ehr_db_value(res, 0, 0), ehr_db_len(res, 0, 0), 64u << 20, 8));
out:
	ehr_db_clear(res);
	ehr_db_release(db, conn, err < 0);
	return err;
}
