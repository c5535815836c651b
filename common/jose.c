/*
 * jose.c - the JOSE primitives several modules need: P-256 key checks,
 * ES256 signatures in JOSE form (RFC 7518 §3.4: raw r||s, 64 bytes), P-256
 * JWKs (RFC 7517/7518 §6.2) and RFC 7638 thumbprints. auth/ (tokens, DPoP,
 * enrolment), contracts/ (patient-signed contracts) and client/ all use
 * these, so every module accepts exactly the same keys and signatures.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "common/common.h"

bool ehr_key_is_p256(const EVP_PKEY *key)
{
	char group[64];
	size_t glen = 0;

	if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		return false;
	if (EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1)
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/* ------------------------------------------------------------------ ES256 */

int ehr_es256_sign(uint8_t sig[EHR_ES256_SIG_LEN], EVP_PKEY *key, const void *data, size_t len)
{
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	unsigned char der[80];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	const BIGNUM *r, *s;
	int err = 0;

	ENSURE(ehr_key_is_p256(key), EHR_ERR_INVAL);
	md = EVP_MD_CTX_new();
	ENSURE_GOTO(md != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key));
	GUARD_OSSL_GOTO(EVP_DigestSign(md, der, &derlen, data, len));
	es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	if (es == NULL) {
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "d2i_ECDSA_SIG");
		goto out;
	}
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32) {
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "BN_bn2binpad");
		goto out;
	}
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return err;
}

int ehr_es256_verify(EVP_PKEY *key, const void *data, size_t len, const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int derlen, err = 0;

	if (!ehr_key_is_p256(key))
		return ehr_error_set(EHR_ERR_AUTH, "verification key is not P-256");
	if (siglen != EHR_ES256_SIG_LEN)
		return ehr_error_set(EHR_ERR_AUTH, "ES256 signature must be 64 bytes");
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, 32, NULL);
	s = BN_bin2bn(sig + 32, 32, NULL);
	ENSURE_GOTO(es != NULL && r != NULL && s != NULL, EHR_ERR_NOMEM);
	ENSURE_GOTO(ECDSA_SIG_set0(es, r, s) == 1, EHR_ERR_CRYPTO);
	r = s = NULL;
	derlen = i2d_ECDSA_SIG(es, &der);
	ENSURE_GOTO(derlen > 0, EHR_ERR_CRYPTO);
	md = EVP_MD_CTX_new();
	ENSURE_GOTO(md != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key));
	if (EVP_DigestVerify(md, der, (size_t)derlen, data, len) != 1) {
		ERR_clear_error();
		err = ehr_error_set(EHR_ERR_AUTH, "bad signature");
		goto out;
	}
out:
	OPENSSL_free(der);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return err;
}

int ehr_es256_sign_b64url(struct ehr_buf *out, EVP_PKEY *key, const void *data, size_t len)
{
	uint8_t sig[EHR_ES256_SIG_LEN];

	GUARD(ehr_es256_sign(sig, key, data, len));
	return ehr_b64url_encode(out, sig, sizeof(sig));
}

int ehr_es256_verify_b64url(EVP_PKEY *key, const void *data, size_t len, const char *sig_b64url)
{
	struct ehr_buf sig = EHR_BUF_INIT(128);
	int err;

	if (sig_b64url == NULL || strlen(sig_b64url) != 86 ||
	    ehr_b64url_decode(&sig, sig_b64url, strlen(sig_b64url)) < 0) {
		ehr_buf_free(&sig);
		return ehr_error_set(EHR_ERR_AUTH, "signature must be 64 bytes in base64url");
	}
	err = ehr_es256_verify(key, data, len, sig.data, sig.len);
	ehr_buf_free(&sig);
	return err;
}

/* -------------------------------------------------------------------- JWK */

static int jwk_coord(uint8_t out[32], const json_t *jwk, const char *name)
{
	const char *s = json_string_value(json_object_get(jwk, name));
	struct ehr_buf b = EHR_BUF_INIT(64);
	int err = 0;

	/* 32 bytes are exactly 43 base64url characters (RFC 7518 §6.2.1.2). */
	if (s == NULL || strlen(s) != 43 || ehr_b64url_decode(&b, s, 43) < 0 || b.len != 32)
		err = ehr_error_set(EHR_ERR_AUTH, "JWK '%s' must be 32 bytes in base64url", name);
	else
		memcpy(out, b.data, 32);
	ehr_buf_free(&b);
	return err;
}

int ehr_jwk_parse(EVP_PKEY **out, const json_t *jwk)
{
	uint8_t point[65];
	const char *kty, *crv;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY_CTX *chk = NULL;
	int err = 0;

	*out = NULL;
	if (!json_is_object(jwk))
		return ehr_error_set(EHR_ERR_AUTH, "JWK must be an object");
	kty = json_string_value(json_object_get(jwk, "kty"));
	crv = json_string_value(json_object_get(jwk, "crv"));
	if (kty == NULL || strcmp(kty, "EC") != 0 || crv == NULL || strcmp(crv, "P-256") != 0)
		return ehr_error_set(EHR_ERR_AUTH, "JWK must be kty EC, crv P-256");
	if (json_object_get(jwk, "d") != NULL)
		return ehr_error_set(EHR_ERR_AUTH, "JWK holds a private key");
	point[0] = 0x04;
	GUARD(jwk_coord(point + 1, jwk, "x"));
	GUARD(jwk_coord(point + 33, jwk, "y"));
	bld = OSSL_PARAM_BLD_new();
	ENSURE_GOTO(bld != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0));
	GUARD_OSSL_GOTO(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)));
	params = OSSL_PARAM_BLD_to_param(bld);
	ENSURE_GOTO(params != NULL, EHR_ERR_NOMEM);
	pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	ENSURE_GOTO(pctx != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(EVP_PKEY_fromdata_init(pctx));
	if (EVP_PKEY_fromdata(pctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		ERR_clear_error();
		err = ehr_error_set(EHR_ERR_AUTH, "JWK is not a point on P-256");
		goto out;
	}
	chk = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
	ENSURE_GOTO(chk != NULL, EHR_ERR_NOMEM);
	if (EVP_PKEY_public_check(chk) != 1) {
		ERR_clear_error();
		err = ehr_error_set(EHR_ERR_AUTH, "JWK is not a valid P-256 public key");
		goto out;
	}
out:
	if (err < 0) {
		EVP_PKEY_free(*out);
		*out = NULL;
	}
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return err;
}

int ehr_jwk_parse_text(EVP_PKEY **out, const char *text, size_t len)
{
	json_t *j;
	int err;

	*out = NULL;
	if (ehr_json_parse(&j, text, len, 2048, 4) < 0)
		return ehr_error_set(EHR_ERR_AUTH, "JWK is not JSON");
	err = ehr_jwk_parse(out, j);
	json_decref(j);
	return err;
}

static int key_coords(uint8_t x[32], uint8_t y[32], EVP_PKEY *key)
{
	BIGNUM *bx = NULL, *by = NULL;
	int err = 0;

	ENSURE(ehr_key_is_p256(key), EHR_ERR_INVAL);
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1 || BN_bn2binpad(bx, x, 32) != 32 ||
	    BN_bn2binpad(by, y, 32) != 32)
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "reading EC coordinates");
	BN_free(bx);
	BN_free(by);
	return err;
}

static int coords_b64(struct ehr_buf *bx, struct ehr_buf *by, EVP_PKEY *key)
{
	uint8_t x[32], y[32];

	GUARD(key_coords(x, y, key));
	GUARD(ehr_b64url_encode(bx, x, 32));
	return ehr_b64url_encode(by, y, 32);
}

int ehr_jwk_from_key(json_t **out, EVP_PKEY *key)
{
	struct ehr_buf bx = EHR_BUF_INIT(64), by = EHR_BUF_INIT(64);
	int err;

	*out = NULL;
	err = coords_b64(&bx, &by, key);
	if (err == 0) {
		*out = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256", "x", ehr_buf_cstr(&bx),
		                 "y", ehr_buf_cstr(&by));
		if (*out == NULL)
			err = ehr_error_set(EHR_ERR_NOMEM, "json_pack");
	}
	ehr_buf_free(&bx);
	ehr_buf_free(&by);
	return err;
}

int ehr_jwk_thumbprint(char out[EHR_JKT_LEN + 1], EVP_PKEY *key)
{
	struct ehr_buf bx = EHR_BUF_INIT(64), by = EHR_BUF_INIT(64);
	struct ehr_buf canon = EHR_BUF_INIT(256), t = EHR_BUF_INIT(64);
	uint8_t md[32];
	int err;

	/* RFC 7638 §3.2: required members only, lexicographic order, no whitespace. */
	GUARD_GOTO(coords_b64(&bx, &by, key));
	GUARD_GOTO(ehr_buf_printf(&canon, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
	                          ehr_buf_cstr(&bx), ehr_buf_cstr(&by)));
	ENSURE_GOTO(EVP_Digest(canon.data, canon.len, md, NULL, EVP_sha256(), NULL) == 1, EHR_ERR_CRYPTO);
	GUARD_GOTO(ehr_b64url_encode(&t, md, sizeof(md)));
	ENSURE_GOTO(t.len == EHR_JKT_LEN, EHR_ERR_INTERNAL);
	memcpy(out, t.data, EHR_JKT_LEN + 1);
out:
	ehr_buf_free(&bx);
	ehr_buf_free(&by);
	ehr_buf_free(&canon);
	ehr_buf_free(&t);
	return err;
}
