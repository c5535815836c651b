/* fuzz_dpop.c - DPoP proof verification on untrusted input (fixed method, URL,
 * token and time): never crashes; an accepted proof is bound to a P-256 key
 * and its iat is inside the window. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "tests/fuzz/auth_fuzz_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_dpop_claims c;

	if (auth_dpop_verify(&c, (const char *)data, size, "GET", FUZZ_URL, FUZZ_TOKEN, FUZZ_NOW, 60, 5) ==
	    0) {
		if (strlen(c.jkt) != EHR_JKT_LEN || c.iat < FUZZ_NOW - 60 || c.iat > FUZZ_NOW + 5 ||
		    strlen(c.jti) < 16)
			abort();
	}
	ehr_error_clear();
	return 0;
}
