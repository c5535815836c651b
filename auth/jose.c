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
	if (alg == NULL || strcmp(alg, "ES256") != 0) {
		err = ehr_error_set(EHR_ERR_AUTH, "JWS alg must be ES256");
		goto out;
	}
	if (json_object_get(out->header, "crit") != NULL) {
		err = ehr_error_set(EHR_ERR_AUTH, "JWS crit header is not supported");
		goto out;
	}
	GUARD_GOTO(jws_part_json(&out->payload, d1 + 1, (size_t)(d2 - d1 - 1)));
	if (ehr_b64url_decode(&sig, d2 + 1, len - (size_t)(d2 + 1 - compact)) < 0 ||
	    sig.len != EHR_ES256_SIG_LEN) {
		err = ehr_error_set(EHR_ERR_AUTH, "JWS signature must be 64 bytes in base64url");
		goto out;
	}
	memcpy(out->sig, sig.data, EHR_ES256_SIG_LEN);
	GUARD_GOTO(ehr_buf_append(&out->signing_input, compact, (size_t)(d2 - compact)));
out:
	ehr_buf_free(&sig);
	if (err < 0) {
		if (err != EHR_ERR_AUTH && err != EHR_ERR_NOMEM)
			err = ehr_error_wrap(EHR_ERR_AUTH, "JWS rejected");
		auth_jws_free(out);
	}
	return err;
}

int auth_jws_sign(struct ehr_buf *out, EVP_PKEY *key, const json_t *header, const json_t *payload)
{
	struct ehr_buf h = EHR_BUF_INIT(AUTH_MAX_JWS), p = EHR_BUF_INIT(AUTH_MAX_JWS);
	struct ehr_buf si = EHR_BUF_INIT(AUTH_MAX_JWS);
	uint8_t sig[EHR_ES256_SIG_LEN];
	int err;

	GUARD_GOTO(ehr_json_dump(&h, header));
	GUARD_GOTO(ehr_json_dump(&p, payload));
	GUARD_GOTO(ehr_b64url_encode(&si, h.data, h.len));
	GUARD_GOTO(ehr_buf_append_u8(&si, '.'));
	GUARD_GOTO(ehr_b64url_encode(&si, p.data, p.len));
	GUARD_GOTO(ehr_es256_sign(sig, key, si.data, si.len));
	GUARD_GOTO(ehr_buf_append(out, si.data, si.len));
	GUARD_GOTO(ehr_buf_append_u8(out, '.'));
	GUARD_GOTO(ehr_b64url_encode(out, sig, sizeof(sig)));
out:
	ehr_buf_free(&h);
	ehr_buf_free(&p);
	ehr_buf_free(&si);
	return err;
}
