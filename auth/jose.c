/*
 * jose.c - P-256 keys, ES256 in JOSE form, compact JWS, JWK and RFC 7638
 * thumbprints. Parsing is done here rather than by libjwt so that exactly
 * one algorithm (ES256) can ever be accepted: no "none", no HS256 keyed
 * with a public key (FIELD-NOTES.md, libjwt 1.10 pitfalls).
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "auth/auth.h"
#include "auth/auth_internal.h"

int auth_key_generate_p256(EVP_PKEY **out)
{
	*out = EVP_EC_gen("P-256");
	if (*out == NULL)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "EVP_EC_gen");
	return 0;
}

bool auth_key_is_p256(const EVP_PKEY *key)
{
	char group[64];
	size_t glen = 0;

	if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		return false;
	if (EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1)
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

static int key_load(EVP_PKEY **out, const char *path, bool priv)
{
	struct ehr_buf b = EHR_BUF_INIT(64 * 1024);
	BIO *bio = NULL;
	int err = 0;

	*out = NULL;
	GUARD_GOTO(ehr_file_read(&b, path, 64 * 1024));
	bio = BIO_new_mem_buf(b.data, (int)b.len);
	ENSURE_GOTO(bio != NULL, EHR_ERR_NOMEM);
	*out = priv ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
	            : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (*out == NULL) {
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "reading a PEM key");
		goto out;
	}
out:
	BIO_free(bio);
	ehr_buf_free_secure(&b);
	return err;
}

int auth_key_load_private(EVP_PKEY **out, const char *path)
{
	return key_load(out, path, true);
}

int auth_key_load_public(EVP_PKEY **out, const char *path)
{
	return key_load(out, path, false);
}

static int bio_to_buf(struct ehr_buf *out, BIO *bio)
{
	char *p;
	long n = BIO_get_mem_data(bio, &p);

	ENSURE(n >= 0, EHR_ERR_CRYPTO);
	return ehr_buf_append(out, p, (size_t)n);
}

int auth_key_private_pem(struct ehr_buf *out, EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int err = 0;

	ENSURE(bio != NULL, EHR_ERR_NOMEM);
	if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "PEM_write_bio_PrivateKey");
	else
		err = bio_to_buf(out, bio);
	BIO_free_all(bio);
	return err;
}

int auth_key_public_pem(struct ehr_buf *out, EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int err = 0;

	ENSURE(bio != NULL, EHR_ERR_NOMEM);
	if (PEM_write_bio_PUBKEY(bio, key) != 1)
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "PEM_write_bio_PUBKEY");
	else
		err = bio_to_buf(out, bio);
	BIO_free_all(bio);
	return err;
}

int auth_key_save_private(const char *path, EVP_PKEY *key)
{
	struct ehr_buf b = EHR_BUF_INIT(16 * 1024);
	int err;

	err = auth_key_private_pem(&b, key);
	if (err == 0)
		err = ehr_file_write_atomic(path, b.data, b.len, 0600, true);
	ehr_buf_free_secure(&b);
	return err;
}

/* ------------------------------------------------------------------ ES256 */

int auth_es256_sign(uint8_t sig[AUTH_ES256_SIG_LEN], EVP_PKEY *key, const void *data, size_t len)
{
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	unsigned char der[80];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	const BIGNUM *r, *s;
	int err = 0;

	ENSURE(auth_key_is_p256(key), EHR_ERR_INVAL);
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

int auth_es256_verify(EVP_PKEY *key, const void *data, size_t len, const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int derlen, err = 0;

	if (!auth_key_is_p256(key))
		return ehr_error_set(EHR_ERR_AUTH, "verification key is not P-256");
	if (siglen != AUTH_ES256_SIG_LEN)
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

int auth_sign_b64url(struct ehr_buf *out, EVP_PKEY *key, const void *data, size_t len)
{
	uint8_t sig[AUTH_ES256_SIG_LEN];

	GUARD(auth_es256_sign(sig, key, data, len));
	return ehr_b64url_encode(out, sig, sizeof(sig));
}

int auth_verify_b64url(EVP_PKEY *key, const void *data, size_t len, const char *sig_b64url)
{
	struct ehr_buf sig = EHR_BUF_INIT(128);
	int err;

	if (sig_b64url == NULL || strlen(sig_b64url) != 86 ||
	    ehr_b64url_decode(&sig, sig_b64url, strlen(sig_b64url)) < 0) {
		ehr_buf_free(&sig);
		return ehr_error_set(EHR_ERR_AUTH, "signature must be 64 bytes in base64url");
	}
	err = auth_es256_verify(key, data, len, sig.data, sig.len);
	ehr_buf_free(&sig);
	return err;
}

/* -------------------------------------------------------------------- JWS */

void auth_jws_free(struct auth_jws *j)
{
	json_decref(j->header);
	json_decref(j->payload);
	ehr_buf_free(&j->signing_input);
	j->header = j->payload = NULL;
}

static int jws_part_json(json_t **out, const char *b64, size_t n)
{
	struct ehr_buf raw = EHR_BUF_INIT(AUTH_MAX_JWS);
	int err;

	*out = NULL;
	if (n == 0 || ehr_b64url_decode(&raw, b64, n) < 0) {
		ehr_buf_free(&raw);
		return ehr_error_set(EHR_ERR_AUTH, "JWS part is not base64url");
	}
	err = ehr_json_parse(out, raw.data, raw.len, AUTH_MAX_JWS, 6);
	ehr_buf_free(&raw);
	if (err < 0)
		return ehr_error_set(EHR_ERR_AUTH, "JWS part is not JSON");
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return ehr_error_set(EHR_ERR_AUTH, "JWS part is not a JSON object");
	}
	return 0;
}

int auth_jws_parse(struct auth_jws *out, const char *compact, size_t len)
{
	const char *d1, *d2;
	struct ehr_buf sig = EHR_BUF_INIT(128);
	const char *alg;
	int err = 0;

	memset(out, 0, sizeof(*out));
	ehr_buf_init(&out->signing_input, AUTH_MAX_JWS);
	if (compact == NULL || len == 0 || len > AUTH_MAX_JWS)
		return ehr_error_set(EHR_ERR_AUTH, "JWS missing or too large");
	if (memchr(compact, '\0', len) != NULL)
		return ehr_error_set(EHR_ERR_AUTH, "JWS contains NUL");
	d1 = memchr(compact, '.', len);
	if (d1 == NULL)
		return ehr_error_set(EHR_ERR_AUTH, "JWS must have three parts");
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - compact));
	if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - compact)) != NULL)
		return ehr_error_set(EHR_ERR_AUTH, "JWS must have three parts");
	GUARD_GOTO(jws_part_json(&out->header, compact, (size_t)(d1 - compact)));
	/* The algorithm is pinned before anything else is looked at. */
	alg = json_string_value(json_object_get(out->header, "alg"));
	ENSURE_GOTO(alg != NULL && strcmp(alg, "ES256") == 0, EHR_ERR_AUTH);
	ENSURE_GOTO(json_object_get(out->header, "crit") == NULL, EHR_ERR_AUTH);
	GUARD_GOTO(jws_part_json(&out->payload, d1 + 1, (size_t)(d2 - d1 - 1)));
	if (ehr_b64url_decode(&sig, d2 + 1, len - (size_t)(d2 + 1 - compact)) < 0 ||
	    sig.len != AUTH_ES256_SIG_LEN) {
		err = ehr_error_set(EHR_ERR_AUTH, "JWS signature must be 64 bytes in base64url");
		goto out;
	}
	memcpy(out->sig, sig.data, AUTH_ES256_SIG_LEN);
	GUARD_GOTO(ehr_buf_append(&out->signing_input, compact, (size_t)(d2 - compact)));
out:
	ehr_buf_free(&sig);
	if (err < 0) {
		if (err != EHR_ERR_AUTH && err != EHR_ERR_NOMEM)
			err = ehr_error_set(EHR_ERR_AUTH, "JWS rejected: %s", ehr_error_msg());
		auth_jws_free(out);
	}
	return err;
}

int auth_jws_sign(struct ehr_buf *out, EVP_PKEY *key, const json_t *header, const json_t *payload)
{
	struct ehr_buf h = EHR_BUF_INIT(AUTH_MAX_JWS), p = EHR_BUF_INIT(AUTH_MAX_JWS);
	struct ehr_buf si = EHR_BUF_INIT(AUTH_MAX_JWS);
	uint8_t sig[AUTH_ES256_SIG_LEN];
	int err;

	GUARD_GOTO(ehr_json_dump(&h, header));
	GUARD_GOTO(ehr_json_dump(&p, payload));
	GUARD_GOTO(ehr_b64url_encode(&si, h.data, h.len));
	GUARD_GOTO(ehr_buf_append_u8(&si, '.'));
	GUARD_GOTO(ehr_b64url_encode(&si, p.data, p.len));
	GUARD_GOTO(auth_es256_sign(sig, key, si.data, si.len));
	GUARD_GOTO(ehr_buf_append(out, si.data, si.len));
	GUARD_GOTO(ehr_buf_append_u8(out, '.'));
	GUARD_GOTO(ehr_b64url_encode(out, sig, sizeof(sig)));
out:
	ehr_buf_free(&h);
	ehr_buf_free(&p);
	ehr_buf_free(&si);
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

int auth_jwk_parse(EVP_PKEY **out, const json_t *jwk)
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

int auth_jwk_parse_text(EVP_PKEY **out, const char *text, size_t len)
{
	json_t *j;
	int err;

	*out = NULL;
	if (ehr_json_parse(&j, text, len, 2048, 4) < 0)
		return ehr_error_set(EHR_ERR_AUTH, "JWK is not JSON");
	err = auth_jwk_parse(out, j);
	json_decref(j);
	return err;
}

static int key_coords(uint8_t x[32], uint8_t y[32], EVP_PKEY *key)
{
	BIGNUM *bx = NULL, *by = NULL;
	int err = 0;

	ENSURE(auth_key_is_p256(key), EHR_ERR_INVAL);
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

int auth_jwk_from_key(json_t **out, EVP_PKEY *key)
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

int auth_jwk_thumbprint(char out[AUTH_JKT_LEN + 1], EVP_PKEY *key)
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
	ENSURE_GOTO(t.len == AUTH_JKT_LEN, EHR_ERR_INTERNAL);
	memcpy(out, t.data, AUTH_JKT_LEN + 1);
out:
	ehr_buf_free(&bx);
	ehr_buf_free(&by);
	ehr_buf_free(&canon);
	ehr_buf_free(&t);
	return err;
}
