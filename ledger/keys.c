/*
 * keys.c - the ledger's Ed25519 keys: raw public keys, signing and
 * verification (pure Ed25519, RFC 8032, through OpenSSL's EVP_DigestSign;
 * libjwt has no EdDSA), and C2SP signed-note key ids and verifier keys
 * (docs/LEDGER.md §6). Blocks and checkpoints both sign with these.
 */
#include "ledger/ledger_internal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

int ledger_key_raw_public(uint8_t out[32], EVP_PKEY *key)
{
	size_t n = 32;

	ENSURE(key != NULL, EHR_ERR_INVAL);
	if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519)
		return ehr_error_set(EHR_ERR_CONFIG, "ledger key is not Ed25519");
	GUARD_OSSL(EVP_PKEY_get_raw_public_key(key, out, &n));
	ENSURE(n == 32, EHR_ERR_CRYPTO);
	return 0;
}

int ledger_key_load_public(uint8_t out[32], const char *path)
{
	struct ehr_buf f = EHR_BUF_INIT(64 * 1024);
	EVP_PKEY *k = NULL;
	BIO *bio = NULL;
	char name[256];
	int err;

	GUARD(ehr_file_read(&f, path, 64 * 1024));
	if (f.len > 10 && memcmp(f.data, "-----BEGIN", 10) == 0) { /* not secret */
		bio = BIO_new_mem_buf(f.data, (int)f.len);
		ENSURE_GOTO(bio != NULL, EHR_ERR_NOMEM);
		k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		if (k == NULL) {
			BIO_free(bio);
			bio = BIO_new_mem_buf(f.data, (int)f.len);
			ENSURE_GOTO(bio != NULL, EHR_ERR_NOMEM);
			k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		}
		if (k == NULL) {
			err = ehr_error_ossl(EHR_ERR_CONFIG, "ledger public key: no PEM key");
			goto out;
		}
		err = ledger_key_raw_public(out, k);
	} else {
		size_t n = f.len;

		while (n > 0 && (f.data[n - 1] == '\n' || f.data[n - 1] == '\r' || f.data[n - 1] == ' '))
			n--;
		err = ledger_vkey_parse((const char *)f.data, n, name, sizeof(name), out);
	}
out:
	EVP_PKEY_free(k);
	BIO_free(bio);
	ehr_buf_free_secure(&f);
	return err;
}

int ledger_ed25519_sign(uint8_t sig[LEDGER_SIG_LEN], EVP_PKEY *key, const void *msg, size_t len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t slen = LEDGER_SIG_LEN;
	int err = 0;

	ENSURE(ctx != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(EVP_DigestSignInit(ctx, NULL, NULL, NULL, key));
	GUARD_OSSL_GOTO(EVP_DigestSign(ctx, sig, &slen, msg, len));
	ENSURE_GOTO(slen == LEDGER_SIG_LEN, EHR_ERR_CRYPTO);
out:
	EVP_MD_CTX_free(ctx);
	return err;
}

int ledger_ed25519_verify(const uint8_t pub[32], const uint8_t sig[LEDGER_SIG_LEN], const void *msg,
                          size_t len)
{
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int err = 0;

	if (k == NULL || ctx == NULL) {
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "Ed25519 public key");
		goto out;
	}
	GUARD_OSSL_GOTO(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k));
	if (EVP_DigestVerify(ctx, sig, LEDGER_SIG_LEN, msg, len) != 1) {
		ERR_clear_error();
		err = ehr_error_set(EHR_ERR_TAMPER, "Ed25519 signature does not verify");
	}
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	return err;
}

/* signed-note key id with a signature type byte: 0x01 for Ed25519 note
 * signatures, 0x04 for tlog-cosignature/v1 (C2SP tlog-cosignature). */
void ledger__key_id(uint8_t out[4], const char *name, uint8_t type, const uint8_t pub[32])
{
	uint8_t tail[2 + 32], h[LEDGER_HASH_LEN];

	tail[0] = 0x0a;
	tail[1] = type;
	memcpy(tail + 2, pub, 32);
	ledger__sha256(h, name, strlen(name), tail, sizeof(tail));
	memcpy(out, h, 4);
}

void ledger_note_key_id(uint8_t out[4], const char *name, const uint8_t pub[32])
{
	ledger__key_id(out, name, LEDGER_SIGTYPE_ED25519, pub);
}

/* A C2SP key name: non-empty, no Unicode spaces (we allow only printable
 * ASCII and non-ASCII UTF-8 bytes without ' '), no '+'. */
bool ledger__key_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];

		if (c <= 0x20 || c == 0x7f || c == '+')
			return false;
	}
	return true;
}

int ledger__vkey_format(struct ehr_buf *out, const char *name, uint8_t type, const uint8_t pub[32])
{
	uint8_t id[4], k[33];
	char idhex[9];

	ENSURE(ledger__key_name_ok(name, strlen(name)), EHR_ERR_INVAL);
	ledger__key_id(id, name, type, pub);
	k[0] = type;
	memcpy(k + 1, pub, 32);
	GUARD(ehr_hex_encode_fixed(idhex, sizeof(idhex), id, sizeof(id)));
	GUARD(ehr_buf_printf(out, "%s+%s+", name, idhex));
	return ehr_b64_encode(out, k, sizeof(k));
}

int ledger_vkey_format(struct ehr_buf *out, const char *name, const uint8_t pub[32])
{
	return ledger__vkey_format(out, name, LEDGER_SIGTYPE_ED25519, pub);
}

int ledger__vkey_parse(const char *vkey, size_t len, uint8_t type, char *name, size_t name_cap,
                       uint8_t pub[32])
{
	struct ehr_buf k = EHR_BUF_INIT(64);
	const char *p1, *p2;
	uint8_t id[4], want[4];
	size_t nlen;
	int err = 0;

	p1 = memchr(vkey, '+', len);
	if (p1 == NULL)
		return ehr_error_set(EHR_ERR_PARSE, "vkey: expected name+id+key");
	p2 = memchr(p1 + 1, '+', len - (size_t)(p1 + 1 - vkey));
	if (p2 == NULL || p2 - p1 != 9)
		return ehr_error_set(EHR_ERR_PARSE, "vkey: expected name+id+key");
	nlen = (size_t)(p1 - vkey);
	if (!ledger__key_name_ok(vkey, nlen) || nlen + 1 > name_cap)
		return ehr_error_set(EHR_ERR_PARSE, "vkey: bad key name");
	for (int i = 1; i <= 8; i++)
		if (!((p1[i] >= '0' && p1[i] <= '9') || (p1[i] >= 'a' && p1[i] <= 'f')))
			return ehr_error_set(EHR_ERR_PARSE, "vkey: key id must be 8 lower-case hex digits");
	if (ehr_hex_decode(id, 4, p1 + 1, 8) < 0)
		return ehr_error_set(EHR_ERR_PARSE, "vkey: bad key id");
	if (ehr_b64_decode(&k, p2 + 1, len - (size_t)(p2 + 1 - vkey)) < 0 || k.len != 33 ||
	    k.data[0] != type) {
		err = ehr_error_set(EHR_ERR_PARSE, type == LEDGER_SIGTYPE_ED25519
		                                           ? "vkey: not an Ed25519 key"
		                                           : "vkey: not an Ed25519 cosignature/v1 key");
		goto out;
	}
	memcpy(name, vkey, nlen);
	name[nlen] = '\0';
	memcpy(pub, k.data + 1, 32);
	ledger__key_id(want, name, type, pub);
	if (memcmp(want, id, 4) != 0) /* not secret */
		err = ehr_error_set(EHR_ERR_PARSE, "vkey: key id does not match the key");
out:
	ehr_buf_free(&k);
	return err;
}

int ledger_vkey_parse(const char *vkey, size_t len, char *name, size_t name_cap, uint8_t pub[32])
{
	return ledger__vkey_parse(vkey, len, LEDGER_SIGTYPE_ED25519, name, name_cap, pub);
}
