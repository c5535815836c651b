/*
 * contract_sig.c - ES256 (RFC 7518 §3.4) signatures over RFC 8785
 * canonical JSON, with the key given as a P-256 JWK (RFC 7517/7518 §6.2).
 *
 * The signature is JOSE's raw r||s (32 + 32 bytes), base64url without
 * padding; OpenSSL wants DER, so we convert in both directions.
 *
 * JWK parsing and ES256 itself live in common/jose.c, shared with auth/
 * and client/, so every module accepts exactly the same keys.
 */
#include <string.h>

#include <openssl/evp.h>

#include "policy/policy.h"

/* JCS(doc), then ES256 via the shared JOSE primitives (common/jose.c), so a
 * contract signature is checked exactly as auth/ checks device signatures. */
int policy_verify_es256(const json_t *doc, const char *sig_b64url, EVP_PKEY *pub)
{
	struct ehr_buf canon = EHR_BUF_INIT(POLICY_DOC_MAX);
	int err;

	ENSURE(sig_b64url != NULL && pub != NULL, EHR_ERR_INVAL);
	GUARD_GOTO(jcs_canonicalize(&canon, doc));
	err = ehr_es256_verify_b64url(pub, canon.data, canon.len, sig_b64url);
	if (err == EHR_ERR_AUTH)
		err = ehr_error_wrap(EHR_ERR_TAMPER, "contract signature");
out:
	ehr_buf_free(&canon);
	return err;
}

int policy_sign_es256(struct ehr_buf *sig_b64url, const json_t *doc, EVP_PKEY *priv)
{
	struct ehr_buf canon = EHR_BUF_INIT(POLICY_DOC_MAX);
	int err;

	GUARD_GOTO(jcs_canonicalize(&canon, doc));
	err = ehr_es256_sign_b64url(sig_b64url, priv, canon.data, canon.len);
out:
	ehr_buf_free(&canon);
	return err;
}

int policy_grant_envelope(json_t **out, EVP_PKEY *device_key, const char *patient, const char *server,
                          unsigned actions, int64_t not_before, int64_t not_after)
{
	struct ehr_buf nonce = EHR_BUF_INIT(64), sig = EHR_BUF_INIT(128);
	struct policy_contract check;
	json_t *doc = NULL, *acts = json_array();
	int err = 0;

	*out = NULL;
	ENSURE_GOTO(acts != NULL && device_key != NULL && patient != NULL && server != NULL, EHR_ERR_INVAL);
	if (actions & POLICY_ACT_READ)
		json_array_append_new(acts, json_string("read"));
	if (actions & POLICY_ACT_APPEND)
		json_array_append_new(acts, json_string("append"));
	GUARD_GOTO(ehr_random_token(&nonce, 16));
	doc = json_pack("{s:s, s:s, s:{s:s}, s:O, s:{s:b}, s:s, s:I, s:I, s:I, s:s}", "type",
	                "ehrgate.contract.v1", "patient", patient, "grantee", "server", server, "actions",
	                acts, "scope", "all", 1, "purpose", "treatment", "not_before", (json_int_t)not_before,
	                "not_after", (json_int_t)not_after, "issued_at", (json_int_t)(ehr_now_ms() / 1000),
	                "nonce", ehr_buf_cstr(&nonce));
	ENSURE_GOTO(doc != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(policy_contract_from_json(&check, doc)); /* the gateway's own rules */
	policy_contract_clear(&check);
	GUARD_GOTO(policy_sign_es256(&sig, doc, device_key));
	*out = json_pack("{s:O, s:s}", "contract", doc, "signature", ehr_buf_cstr(&sig));
	ENSURE_GOTO(*out != NULL, EHR_ERR_NOMEM);
out:
	json_decref(doc);
	json_decref(acts);
	ehr_buf_free(&nonce);
	ehr_buf_free(&sig);
	return err;
}
