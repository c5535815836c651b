/* fuzz_jwk.c - ehr_jwk_parse_text on untrusted JSON: whatever is accepted is
 * a P-256 public key that round-trips to the same RFC 7638 thumbprint. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	EVP_PKEY *k = NULL, *k2 = NULL;
	json_t *j = NULL;
	char a[EHR_JKT_LEN + 1], b[EHR_JKT_LEN + 1];

	if (ehr_jwk_parse_text(&k, (const char *)data, size) == 0) {
		if (!ehr_key_is_p256(k) || ehr_jwk_thumbprint(a, k) != 0 || ehr_jwk_from_key(&j, k) != 0 ||
		    ehr_jwk_parse(&k2, j) != 0 || ehr_jwk_thumbprint(b, k2) != 0 || strcmp(a, b) != 0)
			abort();
		json_decref(j);
		EVP_PKEY_free(k2);
		EVP_PKEY_free(k);
	}
	ehr_error_clear();
	return 0;
}
