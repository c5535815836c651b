/* fuzz_csr.c - auth_csr_parse on untrusted PEM: never crashes, and whatever it
 * accepts holds a P-256 key whose self-signature verifies. */
#include <stdint.h>
#include <stdlib.h>

#include "auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	X509_REQ *req = NULL;

	if (auth_csr_parse(&req, (const char *)data, size) == 0) {
		EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
		if (!ehr_key_is_p256(pub) || X509_REQ_verify(req, pub) != 1)
			abort();
		X509_REQ_free(req);
	}
	ehr_error_clear();
	return 0;
}
