/*
 * contract_sig.c - ES256 (RFC 7518 §3.4) signatures over RFC 8785
 * canonical JSON, with the key given as a P-256 JWK (RFC 7517/7518 §6.2).
 *
 * The signature is JOSE's raw r||s (32 + 32 bytes), base64url without
 * padding; OpenSSL wants DER, so we convert in both directions.
 *
 * Note: auth/ parses device JWKs too. This file keeps the minimum needed
 * to verify a contract so contracts/ stays independent of auth/ (clients
 * reuse it); both must accept exactly the same keys: EC, P-256, 32-byte
 * x and y, a point on the curve.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "contracts/contracts.h"

static int jwk_coord(uint8_t out[32], const json_t *jwk, const char *name)
{
	struct ehr_buf raw = EHR_BUF_INIT(64);
	const char *s;
	int err;

	GUARD_GOTO(ehr_json_get_str(jwk, name, &s, 64));
	GUARD_GOTO(ehr_b64url_decode(&raw, s, strlen(s)));
	ENSURE_GOTO(raw.len == 32, EHR_ERR_INVAL);
	memcpy(out, raw.data, 32);
out:
	ehr_buf_free(&raw);
	return err;
}

int policy_jwk_to_pkey(EVP_PKEY **out, const json_t *jwk)
{
	uint8_t pub[65];
	const char *kty, *crv;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	int err = 0;

	*out = NULL;
	ENSURE(json_is_object(jwk), EHR_ERR_INVAL);
	GUARD(ehr_json_get_str(jwk, "kty", &kty, 8));
	GUARD(ehr_json_get_str(jwk, "crv", &crv, 16));
	if (strcmp(kty, "EC") != 0 || strcmp(crv, "P-256") != 0)
		return ehr_error_set(EHR_ERR_INVAL, "JWK must be kty EC, crv P-256");
	if (json_object_get(jwk, "d") != NULL)
		return ehr_error_set(EHR_ERR_INVAL, "JWK must be a public key");
	pub[0] = 0x04;
	GUARD(jwk_coord(pub + 1, jwk, "x"));
	GUARD(jwk_coord(pub + 33, jwk, "y"));

	ENSURE_GOTO((bld = OSSL_PARAM_BLD_new()) != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0));
	GUARD_OSSL_GOTO(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)));
	ENSURE_GOTO((params = OSSL_PARAM_BLD_to_param(bld)) != NULL, EHR_ERR_NOMEM);
	ENSURE_GOTO((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) != NULL, EHR_ERR_CRYPTO);
	GUARD_OSSL_GOTO(EVP_PKEY_fromdata_init(ctx));
	/* fromdata decodes the point, which fails for a point off the curve. */
	if (EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		err = ehr_error_ossl(EHR_ERR_INVAL, "JWK point is not on P-256");
		goto out;
	}
	{
		/* Belt and braces: a full public-key check (on curve, not infinity). */
		EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
		int ok = chk && EVP_PKEY_public_check(chk) == 1;
		EVP_PKEY_CTX_free(chk);
		if (!ok) {
			EVP_PKEY_free(*out);
			*out = NULL;
			err = ehr_error_ossl(EHR_ERR_INVAL, "JWK public key check failed");
			goto out;
		}
	}
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return err;
}

int policy_verify_es256(const json_t *doc, const char *sig_b64url, EVP_PKEY *pub)
{
	struct ehr_buf canon = EHR_BUF_INIT(POLICY_DOC_MAX), raw = EHR_BUF_INIT(128);
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int derlen, err = 0;
	EVP_MD_CTX *md = NULL;

	ENSURE(sig_b64url != NULL && pub != NULL, EHR_ERR_INVAL);
	if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC)
		return ehr_error_set(EHR_ERR_INVAL, "ES256 needs an EC key");
	if (ehr_b64url_decode(&raw, sig_b64url, strlen(sig_b64url)) < 0 || raw.len != 64) {
		err = ehr_error_set(EHR_ERR_TAMPER, "signature must be 64 bytes r||s, base64url");
		goto out;
	}
	GUARD_GOTO(jcs_canonicalize(&canon, doc));
	ENSURE_GOTO((sig = ECDSA_SIG_new()) != NULL, EHR_ERR_NOMEM);
	r = BN_bin2bn(raw.data, 32, NULL);
	s = BN_bin2bn(raw.data + 32, 32, NULL);
	ENSURE_GOTO(r != NULL && s != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(ECDSA_SIG_set0(sig, r, s));
	r = s = NULL;
	derlen = i2d_ECDSA_SIG(sig, &der);
	ENSURE_GOTO(derlen > 0, EHR_ERR_CRYPTO);
	ENSURE_GOTO((md = EVP_MD_CTX_new()) != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub));
	if (EVP_DigestVerify(md, der, (size_t)derlen, canon.data, canon.len) != 1) {
		err = ehr_error_ossl(EHR_ERR_TAMPER, "ES256 signature does not verify");
		goto out;
	}
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	ehr_buf_free(&canon);
	ehr_buf_free(&raw);
	return err;
}

int policy_sign_es256(struct ehr_buf *sig_b64url, const json_t *doc, EVP_PKEY *priv)
{
	struct ehr_buf canon = EHR_BUF_INIT(POLICY_DOC_MAX);
	unsigned char der[80], rs[64];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	ECDSA_SIG *sig = NULL;
	EVP_MD_CTX *md = NULL;
	int err = 0;

	GUARD_GOTO(jcs_canonicalize(&canon, doc));
	ENSURE_GOTO((md = EVP_MD_CTX_new()) != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, priv));
	GUARD_OSSL_GOTO(EVP_DigestSign(md, der, &derlen, canon.data, canon.len));
	ENSURE_GOTO((sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) != NULL, EHR_ERR_CRYPTO);
	ENSURE_GOTO(BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs, 32) == 32, EHR_ERR_CRYPTO);
	ENSURE_GOTO(BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs + 32, 32) == 32, EHR_ERR_CRYPTO);
	GUARD_GOTO(ehr_b64url_encode(sig_b64url, rs, sizeof(rs)));
out:
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
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
