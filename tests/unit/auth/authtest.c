/* authtest.c - helpers shared by the auth unit and integration tests. */
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/x509v3.h>

#include "tests/unit/auth/authtest.h"

int authtest_make_ca(X509 **ca, EVP_PKEY **key, const char *name)
{
	X509 *c = X509_new();
	X509_NAME *n;
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	GUARD(auth_key_generate_p256(key));
	ASN1_INTEGER_set(X509_get_serialNumber(c), 1);
	X509_set_version(c, 2);
	n = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(c, n);
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), 86400L * 365);
	X509_set_pubkey(c, *key);
	X509V3_set_ctx(&v3, c, c, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(c, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
	X509_add_ext(c, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
	X509_add_ext(c, ext, -1);
	X509_EXTENSION_free(ext);
	if (X509_sign(c, *key, EVP_sha256()) <= 0) {
		X509_free(c);
		return ehr_error_ossl(EHR_ERR_CRYPTO, "X509_sign");
	}
	*ca = c;
	return 0;
}

int authtest_libjwt_token(struct ehr_buf *out, const char *alg, const char *payload_json,
                          const char *header_kid, const void *hmac_key, size_t keylen)
{
	jwt_t *jwt = NULL;
	char *s;
	int err = 0;

	if (jwt_new(&jwt) != 0)
		return EHR_ERR_NOMEM;
	jwt_add_grants_json(jwt, payload_json);
	jwt_add_header(jwt, "typ", "at+jwt");
	if (header_kid)
		jwt_add_header(jwt, "kid", header_kid);
	if (strcmp(alg, "none") == 0)
		jwt_set_alg(jwt, JWT_ALG_NONE, NULL, 0);
	else
		jwt_set_alg(jwt, JWT_ALG_HS256, hmac_key, (int)keylen);
	s = jwt_encode_str(jwt);
	if (s == NULL)
		err = EHR_ERR_CRYPTO;
	else
		err = ehr_buf_append_str(out, s);
	free(s);
	jwt_free(jwt);
	return err;
}

int authtest_es256_jws(struct ehr_buf *out, EVP_PKEY *key, const char *header_json, const char *payload_json)
{
	json_t *h = json_loads(header_json, 0, NULL), *p = json_loads(payload_json, 0, NULL);
	int err = (h && p) ? auth_jws_sign(out, key, h, p) : EHR_ERR_PARSE;

	json_decref(h);
	json_decref(p);
	return err;
}

void authtest_tamper_last(struct ehr_buf *jws)
{
	/* Change the first signature character: always a real change of r. */
	uint8_t *dot = memchr(jws->data, '.', jws->len);
	dot = memchr(dot + 1, '.', jws->len - (size_t)(dot + 1 - jws->data));
	dot[1] = dot[1] == 'A' ? 'B' : 'A';
}

static int write_cert(const char *path, X509 *c)
{
	struct ehr_buf b = EHR_BUF_INIT(1 << 16);
	int err = auth_cert_pem(&b, c);

	if (err == 0)
		err = ehr_file_write_atomic(path, b.data, b.len, 0644, false);
	ehr_buf_free(&b);
	return err;
}

int authtest_make_state(const char *dir)
{
	X509 *regca = NULL, *ca = NULL;
	EVP_PKEY *rk = NULL, *ck = NULL, *tk = NULL;
	struct ehr_buf p = EHR_BUF_INIT(4096), pub = EHR_BUF_INIT(4096);
	uint8_t pk[32];
	int err;

	GUARD_GOTO(ehr_mkdir_p(dir, 0700));
	GUARD_GOTO(authtest_make_ca(&regca, &rk, "test registration CA"));
	GUARD_GOTO(authtest_make_ca(&ca, &ck, "test gateway CA"));
	GUARD_GOTO(auth_key_generate_p256(&tk));
	GUARD_GOTO(ehr_buf_printf(&p, "%s/regca.pem", dir));
	GUARD_GOTO(write_cert(ehr_buf_cstr(&p), regca));
	ehr_buf_reset(&p);
	GUARD_GOTO(ehr_buf_printf(&p, "%s/regca.key", dir));
	GUARD_GOTO(auth_key_save_private(ehr_buf_cstr(&p), rk));
	ehr_buf_reset(&p);
	GUARD_GOTO(ehr_buf_printf(&p, "%s/ca.pem", dir));
	GUARD_GOTO(write_cert(ehr_buf_cstr(&p), ca));
	ehr_buf_reset(&p);
	GUARD_GOTO(ehr_buf_printf(&p, "%s/token.key", dir));
	GUARD_GOTO(auth_key_save_private(ehr_buf_cstr(&p), tk));
	ehr_buf_reset(&p);
	GUARD_GOTO(ehr_buf_printf(&p, "%s/token.pub", dir));
	GUARD_GOTO(auth_key_public_pem(&pub, tk));
	GUARD_GOTO(ehr_file_write_atomic(ehr_buf_cstr(&p), pub.data, pub.len, 0644, false));
	ehr_buf_reset(&p);
	GUARD_GOTO(ehr_buf_printf(&p, "%s/pseudonym.key", dir));
	GUARD_GOTO(ehr_random(pk, sizeof(pk)));
	GUARD_GOTO(ehr_file_write_atomic(ehr_buf_cstr(&p), pk, sizeof(pk), 0600, false));
	ehr_buf_reset(&p);
	GUARD_GOTO(ehr_buf_printf(&p, "%s/" AUTH_LINK_KEY_FILE, dir));
	GUARD_GOTO(ehr_random(pk, sizeof(pk)));
	GUARD_GOTO(ehr_file_write_atomic(ehr_buf_cstr(&p), pk, sizeof(pk), 0600, false));
out:
	X509_free(regca);
	X509_free(ca);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ck);
	EVP_PKEY_free(tk);
	ehr_buf_free(&p);
	ehr_buf_free(&pub);
	return err;
}
