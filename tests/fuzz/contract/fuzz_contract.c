/*
 * fuzz_contract.c - libFuzzer target for the access-policy contract parsers
 * (contracts/jcs.c, contracts/policy.c, contracts/contract_sig.c), which see
 * the body of POST /v1/me/contracts and .../revoke.
 *
 * Properties checked (abort when one breaks):
 *   - RFC 8785: canonicalising the canonical form gives the same bytes
 *     (JCS is idempotent) wherever jansson can read the form back;
 *   - a document accepted as a contract has a 43-character id, a valid
 *     window (not_after > not_before), 1..64 scope items when scoped, and
 *     the same id when re-parsed from its canonical form;
 *   - policy_decide on it never allows a server that is not its grantee;
 *   - signature verification of any {"contract","signature"} with a fixed
 *     key fails cleanly (no crash, no success without the private key).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "policy/policy.h"

#define FUZZ_MAX (64 * 1024)

static EVP_PKEY *g_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	g_key = EVP_EC_gen("P-256");
	return g_key ? 0 : 1;
}

static void check_jcs(const json_t *v)
{
	struct ehr_buf a = EHR_BUF_INIT(16 * FUZZ_MAX), b = EHR_BUF_INIT(16 * FUZZ_MAX);
	json_t *again = NULL;

	/* A real with an integral value of 2^53 or more canonicalises to an
	 * integer literal (1e20 -> "100000000000000000000") that jansson cannot
	 * hold or that JCS refuses as an integer (outside ±(2^53-1)): the
	 * round trip is then undefined, not wrong. Where it is defined, the
	 * canonical form must be a fixed point. */
	if (jcs_canonicalize(&a, v) == 0 &&
	    ehr_json_parse(&again, a.data, a.len, a.max, EHR_JSON_MAX_DEPTH + 1) == 0 &&
	    jcs_canonicalize(&b, again) == 0) {
		if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) /* not secret */
			abort();
	}
	json_decref(again);
	ehr_buf_free(&a);
	ehr_buf_free(&b);
}

static void check_contract(const json_t *doc)
{
	struct policy_contract c, c2;
	struct policy_revocation rv;
	struct ehr_buf canon = EHR_BUF_INIT(16 * FUZZ_MAX);
	json_t *again = NULL;

	(void)policy_revocation_from_json(&rv, doc);
	if (policy_contract_from_json(&c, doc) != 0)
		return;
	if (strlen(c.cid) != 43 || c.not_after <= c.not_before)
		abort();
	if (c.scope_kind != POLICY_SCOPE_ALL && (c.n_scope == 0 || c.n_scope > POLICY_MAX_SCOPE))
		abort();
	if (jcs_canonicalize(&canon, doc) != 0 ||
	    ehr_json_parse(&again, canon.data, canon.len, canon.max, EHR_JSON_MAX_DEPTH) != 0 ||
	    policy_contract_from_json(&c2, again) != 0 || strcmp(c.cid, c2.cid) != 0)
		abort();
	{
		struct policy_request q = { .role = POLICY_ROLE_SERVER,
			                    .requester = "fuzz-not-the-grantee",
			                    .patient = c.patient,
			                    .action = POLICY_ACT_READ,
			                    .record_id = "r" };
		struct policy_decision d;
		c.seq = 1;
		policy_decide(&c, 1, &q, c.not_before, &d);
		if (d.effect == POLICY_ALLOW && strcmp(c.grantee, "fuzz-not-the-grantee") != 0)
			abort();
	}
	policy_contract_clear(&c);
	policy_contract_clear(&c2);
	json_decref(again);
	ehr_buf_free(&canon);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *v = NULL;

	if (g_key == NULL)
		LLVMFuzzerInitialize(NULL, NULL);
	if (ehr_json_parse(&v, data, size, FUZZ_MAX, EHR_JSON_MAX_DEPTH) != 0)
		return 0;
	check_jcs(v);
	check_contract(v);
	if (json_is_object(v) && json_object_get(v, "contract")) {
		const char *sig = json_string_value(json_object_get(v, "signature"));
		check_contract(json_object_get(v, "contract"));
		if (sig && policy_verify_es256(json_object_get(v, "contract"), sig, g_key) == 0)
			abort(); /* nobody holds g_key's private half outside this process */
	}
	json_decref(v);
	return 0;
}
