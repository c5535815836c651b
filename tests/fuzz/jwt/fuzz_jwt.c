/* fuzz_jwt.c - access-token verification on untrusted input (fixed key and
 * time): never crashes; an accepted token always satisfies every claim rule. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "tests/fuzz/auth_fuzz_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_token_params p = { fuzz_key(), NULL, "urn:ehrgate", "urn:ehrgate:api", FUZZ_NOW, 5 };
	struct auth_token_claims c;
	struct auth_jws j;
	char kid[EHR_JKT_LEN + 1];

	if (ehr_jwk_thumbprint(kid, p.key) != 0)
		abort();
	p.kid = kid;
	if (auth_jws_parse(&j, (const char *)data, size) == 0) {
		if (strcmp(json_string_value(json_object_get(j.header, "alg")), "ES256") != 0)
			abort();
		auth_jws_free(&j);
	}
	if (auth_token_verify(&c, &p, (const char *)data, size) == 0) {
		if (strcmp(c.role, "patient") != 0 || strlen(c.jkt) != EHR_JKT_LEN || c.exp <= FUZZ_NOW - 5 ||
		    c.exp - c.iat > AUTH_TOKEN_MAX_TTL || c.iat > FUZZ_NOW + 5)
			abort();
	}
	ehr_error_clear();
	return 0;
}
