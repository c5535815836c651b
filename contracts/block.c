/*
 * block.c - block headers (docs/LEDGER.md §5) and the Ed25519 helpers the
 * blocks and checkpoints share. Signing goes through OpenSSL's
 * EVP_DigestSign (pure Ed25519, RFC 8032); libjwt has no EdDSA.
 */
#include "contracts/ledger_internal.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

static const char block_magic[16] = { 'E', 'H', 'R', 'G', 'A', 'T', 'E', '-',
	                              'B', 'L', 'O', 'C', 'K', '-', 'V', '1' };

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

void ledger_block_header(uint8_t out[LEDGER_BLOCK_HEADER_LEN], const struct ledger_block *b)
{
	uint8_t *p = out;

	memcpy(p, block_magic, 16);
	p += 16;
	put_be64(p, b->height);
	p += 8;
	memcpy(p, b->prev_hash, LEDGER_HASH_LEN);
	p += LEDGER_HASH_LEN;
	put_be64(p, b->tree_size);
	p += 8;
	memcpy(p, b->root, LEDGER_HASH_LEN);
	p += LEDGER_HASH_LEN;
	put_be64(p, (uint64_t)b->ts_ms);
}

void ledger_block_hash(uint8_t out[LEDGER_HASH_LEN], const struct ledger_block *b)
{
	uint8_t h[LEDGER_BLOCK_HEADER_LEN];

	ledger_block_header(h, b);
	ledger__sha256(out, h, sizeof(h), NULL, 0);
}

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

int ledger__block_verify(const struct ledger_block *b, const uint8_t pub[32])
{
	uint8_t h[LEDGER_BLOCK_HEADER_LEN];

	ledger_block_header(h, b);
	return ledger_ed25519_verify(pub, b->sig, h, sizeof(h));
}
