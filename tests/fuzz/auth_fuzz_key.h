/* auth_fuzz_key.h - a fixed P-256 key for the jwt/dpop fuzz targets and their
 * seeds (test-only; it protects nothing). Fixed time so seeds stay valid. */
#ifndef EHR_AUTH_FUZZ_KEY_H
#define EHR_AUTH_FUZZ_KEY_H

#include <string.h>

#include <openssl/pem.h>

#include "auth/auth.h"

#define FUZZ_NOW 1900000000LL
#define FUZZ_URL "https://gw.example:8443/v1/whoami"
#define FUZZ_TOKEN "tok"

static const char fuzz_key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                   "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgDemm422Daj+G3I8S\n"
                                   "kjeYwgzP4i0GBNhHl5aCYR4n+dahRANCAAQffmwldCh4XrSHUpaXh7HEETP+d8YR\n"
                                   "qmWq8Gr+v947rOO36M3x8ZsLTDAb3HOmkVd7f7yq+I2sGWuOFO+iEycv\n"
                                   "-----END PRIVATE KEY-----\n";

static inline EVP_PKEY *fuzz_key(void)
{
	static EVP_PKEY *k;
	if (k == NULL) {
		BIO *b = BIO_new_mem_buf(fuzz_key_pem, -1);
		k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	return k;
}

#endif
