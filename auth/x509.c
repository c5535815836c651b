/*
 * x509.c - CSR checks and client-certificate issuance by the registration
 * CA, and reading our fields back out of a presented certificate.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "auth/auth.h"
#include "auth/auth_internal.h"

int auth_csr_parse(X509_REQ **out, const char *pem, size_t len)
{
	BIO *bio = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *pub;
	int err = 0;

	*out = NULL;
	if (pem == NULL || len == 0 || len > AUTH_MAX_CSR_PEM)
		return ehr_error_set(EHR_ERR_INVAL, "csr missing or larger than %d bytes", AUTH_MAX_CSR_PEM);
	bio = BIO_new_mem_buf(pem, (int)len);
	ENSURE_GOTO(bio != NULL, EHR_ERR_NOMEM);
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	if (req == NULL) {
		ERR_clear_error();
		err = ehr_error_set(EHR_ERR_INVAL, "csr is not a PEM PKCS#10 request");
		goto out;
	}
	pub = X509_REQ_get0_pubkey(req);
	if (!ehr_key_is_p256(pub)) {
		err = ehr_error_set(EHR_ERR_INVAL, "csr key must be EC P-256");
		goto out;
	}
	if (X509_REQ_get_signature_nid(req) != NID_ecdsa_with_SHA256) {
		err = ehr_error_set(EHR_ERR_INVAL, "csr must be signed with ecdsa-with-SHA256");
		goto out;
	}
	/* Proof of possession of the private key. */
	if (X509_REQ_verify(req, pub) != 1) {
		ERR_clear_error();
		err = ehr_error_set(EHR_ERR_INVAL, "csr self-signature does not verify");
		goto out;
	}
	*out = req;
	req = NULL;
out:
	X509_REQ_free(req);
	BIO_free(bio);
	return err;
}

int auth_csr_create(struct ehr_buf *pem_out, EVP_PKEY *key, const char *cn)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = NULL;
	BIO *bio = NULL;
	char *p;
	long n;
	int err = 0;

	ENSURE_GOTO(req != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(X509_REQ_set_version(req, 0));
	name = X509_NAME_new();
	ENSURE_GOTO(name != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(
	        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0));
	GUARD_OSSL_GOTO(X509_REQ_set_subject_name(req, name));
	GUARD_OSSL_GOTO(X509_REQ_set_pubkey(req, key));
	ENSURE_GOTO(X509_REQ_sign(req, key, EVP_sha256()) > 0, EHR_ERR_CRYPTO);
	bio = BIO_new(BIO_s_mem());
	ENSURE_GOTO(bio != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(PEM_write_bio_X509_REQ(bio, req));
	n = BIO_get_mem_data(bio, &p);
	GUARD_GOTO(ehr_buf_append(pem_out, p, (size_t)n));
out:
	BIO_free(bio);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return err;
}

static int add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (ext == NULL)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "X509V3_EXT_conf_nid");
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : ehr_error_ossl(EHR_ERR_CRYPTO, "X509_add_ext");
}

int auth_cert_issue(X509 **out, EVP_PKEY *pub, X509 *ca, EVP_PKEY *ca_key, const struct auth_cert_params *p)
{
	X509 *cert = NULL;
	X509_NAME *name = NULL;
	BIGNUM *bn = NULL;
	uint8_t serial[16];
	X509V3_CTX v3;
	const EVP_MD *md;
	int err = 0;

	*out = NULL;
	ENSURE(ehr_key_is_p256(pub), EHR_ERR_INVAL);
	ENSURE(p->subject_id != NULL && p->role != NULL && p->not_after > p->not_before, EHR_ERR_INVAL);
	cert = X509_new();
	ENSURE_GOTO(cert != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(X509_set_version(cert, 2));
	/* 128 random bits, positive and of full length (RFC 5280 §4.1.2.2). */
	GUARD_GOTO(ehr_random(serial, sizeof(serial)));
	serial[0] = (uint8_t)((serial[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	ENSURE_GOTO(bn != NULL, EHR_ERR_NOMEM);
	ENSURE_GOTO(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL, EHR_ERR_CRYPTO);
	GUARD_OSSL_GOTO(X509_set_issuer_name(cert, X509_get_subject_name(ca)));
	name = X509_NAME_new();
	ENSURE_GOTO(name != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"ehrgate",
	                                           -1, -1, 0));
	GUARD_OSSL_GOTO(X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8, (const unsigned char *)p->role,
	                                           -1, -1, 0));
	GUARD_OSSL_GOTO(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	                                           (const unsigned char *)p->subject_id, -1, -1, 0));
	GUARD_OSSL_GOTO(X509_set_subject_name(cert, name));
	ENSURE_GOTO(ASN1_TIME_set(X509_getm_notBefore(cert), (time_t)p->not_before) != NULL, EHR_ERR_CRYPTO);
	ENSURE_GOTO(ASN1_TIME_set(X509_getm_notAfter(cert), (time_t)p->not_after) != NULL, EHR_ERR_CRYPTO);
	GUARD_OSSL_GOTO(X509_set_pubkey(cert, pub));
	X509V3_set_ctx(&v3, ca, cert, NULL, NULL, 0);
	GUARD_GOTO(add_ext(cert, &v3, NID_basic_constraints, "critical,CA:FALSE"));
	GUARD_GOTO(add_ext(cert, &v3, NID_key_usage, "critical,digitalSignature"));
	GUARD_GOTO(add_ext(cert, &v3, NID_ext_key_usage, "clientAuth"));
	GUARD_GOTO(add_ext(cert, &v3, NID_subject_key_identifier, "hash"));
	GUARD_GOTO(add_ext(cert, &v3, NID_authority_key_identifier, "keyid:always"));
	md = EVP_PKEY_get_base_id(ca_key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
	ENSURE_GOTO(X509_sign(cert, ca_key, md) > 0, EHR_ERR_CRYPTO);
	*out = cert;
	cert = NULL;
out:
	if (err == EHR_ERR_CRYPTO)
		ERR_clear_error();
	BN_free(bn);
	X509_NAME_free(name);
	X509_free(cert);
	return err;
}

int auth_cert_serial_hex(char out[65], const X509 *cert)
{
	const ASN1_INTEGER *ai = X509_get0_serialNumber(cert);
	BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
	uint8_t raw[32];
	int n;

	out[0] = '\0';
	ENSURE(bn != NULL, EHR_ERR_CRYPTO);
	n = BN_num_bytes(bn);
	if (n <= 0 || n > 20 || BN_is_negative(bn)) { /* RFC 5280 §4.1.2.2: at most 20 octets */
		BN_free(bn);
		return ehr_error_set(EHR_ERR_AUTH, "certificate serial out of range");
	}
	BN_bn2bin(bn, raw);
	BN_free(bn);
	return ehr_hex_encode_fixed(out, 65, raw, (size_t)n);
}

static void name_field(char *dst, size_t dstlen, const X509_NAME *name, int nid)
{
	int idx;
	const ASN1_STRING *s;
	int n;

	dst[0] = '\0';
	idx = X509_NAME_get_index_by_NID(name, nid, -1);
	/* Exactly one such attribute, or we treat it as absent. */
	if (idx < 0 || X509_NAME_get_index_by_NID(name, nid, idx) >= 0)
		return;
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	n = ASN1_STRING_length(s);
	if (n <= 0 || (size_t)n >= dstlen || memchr(ASN1_STRING_get0_data(s), '\0', (size_t)n) != NULL)
		return;
	memcpy(dst, ASN1_STRING_get0_data(s), (size_t)n);
	dst[n] = '\0';
}

int auth_cert_subject(char *id, size_t idlen, char *role, size_t rolelen, const X509 *cert)
{
	const X509_NAME *name = X509_get_subject_name(cert);

	ENSURE(name != NULL, EHR_ERR_AUTH);
	name_field(id, idlen, name, NID_commonName);
	name_field(role, rolelen, name, NID_organizationalUnitName);
	return 0;
}

int auth_cert_pem(struct ehr_buf *out, X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int err = 0;

	ENSURE(bio != NULL, EHR_ERR_NOMEM);
	if (PEM_write_bio_X509(bio, cert) != 1) {
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "PEM_write_bio_X509");
	} else {
		n = BIO_get_mem_data(bio, &p);
		err = ehr_buf_append(out, p, (size_t)n);
	}
	BIO_free(bio);
	return err;
}

int auth_cert_load_pem(X509 **out, const void *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);

	*out = NULL;
	ENSURE(bio != NULL, EHR_ERR_NOMEM);
	*out = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (*out == NULL)
		return ehr_error_ossl(EHR_ERR_INVAL, "PEM certificate");
	return 0;
}

int auth_cert_load_file(X509 **out, const char *path)
{
	struct ehr_buf b = EHR_BUF_INIT(256 * 1024);
	int err;

	*out = NULL;
	err = ehr_file_read(&b, path, 256 * 1024);
	if (err == 0)
		err = auth_cert_load_pem(out, b.data, b.len);
	ehr_buf_free(&b);
	return err;
}
