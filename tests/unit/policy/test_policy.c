/*
 * test_policy.c - the contract document, its signature and policy_decide.
 *
 * The decision table below is the specification of policy_decide in
 * executable form; docs/CONTRACTS.md documents the same order of checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "policy/policy.h"
#include "tests/harness/harness.h"

/* ------------------------------------------------------------ documents */

static json_t *base_doc(void)
{
	json_t *d = NULL;
	const char *s = "{\"type\":\"ehrgate.contract.v1\",\"patient\":\"p-7f3a9c\","
	                "\"grantee\":{\"server\":\"srv-cardio-01\"},\"actions\":[\"read\"],"
	                "\"scope\":{\"categories\":[\"lab\",\"imaging\"]},\"purpose\":\"treatment\","
	                "\"not_before\":1764000000,\"not_after\":1795536000,\"issued_at\":1764000000,"
	                "\"nonce\":\"q8Fh2mZ0cT1sLk9wXy3bNA\"}";
	CU_ASSERT_FATAL(ehr_json_parse(&d, s, strlen(s), 1 << 14, 8) == 0);
	return d;
}

static void test_parse_valid(void)
{
	json_t *d = base_doc();
	struct policy_contract c;

	EHR_ASSERT_OK(policy_contract_from_json(&c, d));
	CU_ASSERT_STRING_EQUAL(c.patient, "p-7f3a9c");
	CU_ASSERT_EQUAL(c.grantee_kind, POLICY_GRANTEE_SERVER);
	CU_ASSERT_STRING_EQUAL(c.grantee, "srv-cardio-01");
	CU_ASSERT_EQUAL(c.actions, POLICY_ACT_READ);
	CU_ASSERT_EQUAL(c.scope_kind, POLICY_SCOPE_CATEGORIES);
	CU_ASSERT_EQUAL(c.n_scope, 2);
	CU_ASSERT_STRING_EQUAL(c.scope[1], "imaging");
	CU_ASSERT_EQUAL(c.not_before, 1764000000);
	CU_ASSERT_EQUAL(c.not_after, 1795536000);
	/* Node: sha256(JCS(doc)) base64url, computed independently. */
	CU_ASSERT_STRING_EQUAL(c.cid, "FEGbypGQdOmcQGOaSt-wfzNCP3aB_DBxYj4NJEl-rtA");
	policy_contract_clear(&c);
	json_decref(d);
}

/* The id is over the canonical form: member order and whitespace do not
 * change it; any value change does. */
static void test_cid_canonical(void)
{
	const char *reordered =
	        "{ \"nonce\" : \"q8Fh2mZ0cT1sLk9wXy3bNA\", \"issued_at\":1764000000,"
	        "\"not_after\":1795536000,\"not_before\":1764000000,\"purpose\":\"treatment\","
	        "\"scope\":{\"categories\":[\"lab\",\"imaging\"]},\"actions\":[\"read\"],"
	        "\"grantee\":{\"server\":\"srv-cardio-01\"},\"patient\":\"p-7f3a9c\","
	        "\"type\":\"ehrgate.contract.v1\"}";
	json_t *a = base_doc(), *b = NULL;
	char ca[POLICY_CID_MAX], cb[POLICY_CID_MAX];

	EHR_ASSERT_OK(ehr_json_parse(&b, reordered, strlen(reordered), 1 << 14, 8));
	EHR_ASSERT_OK(policy_contract_id(ca, a));
	EHR_ASSERT_OK(policy_contract_id(cb, b));
	CU_ASSERT_STRING_EQUAL(ca, cb);
	json_object_set_new(b, "not_after", json_integer(1795536001));
	EHR_ASSERT_OK(policy_contract_id(cb, b));
	CU_ASSERT_STRING_NOT_EQUAL(ca, cb);
	json_decref(a);
	json_decref(b);
}

/* Each mutation of a valid document must be refused. */
static void test_parse_invalid(void)
{
	static const struct {
		const char *key;
		const char *value; /* JSON, or NULL to delete the member */
	} bad[] = {
		{ "type", "\"ehrgate.contract.v2\"" },
		{ "type", NULL },
		{ "patient", "\"has space\"" },
		{ "patient", "\"\"" },
		{ "patient", "42" },
		{ "grantee", "{\"server\":\"a\",\"group\":\"b\"}" },
		{ "grantee", "{\"hospital\":\"a\"}" },
		{ "grantee", "\"srv\"" },
		{ "grantee", "{}" },
		{ "actions", "[]" },
		{ "actions", "[\"read\",\"read\"]" },
		{ "actions", "[\"delete\"]" },
		{ "actions", "\"read\"" },
		{ "scope", "{\"all\":false}" },
		{ "scope", "{\"all\":true,\"records\":[\"r1\"]}" },
		{ "scope", "{\"records\":[]}" },
		{ "scope", "{\"records\":[\"r1\",\"r1\"]}" },
		{ "scope", "{\"categories\":[\"Lab\"]}" },
		{ "scope", "{\"records\":[\"a/b\"]}" },
		{ "purpose", "\"fun\"" },
		{ "purpose", NULL },
		{ "not_before", "1.5" },
		{ "not_before", "-1" },
		{ "not_after", "1764000000" }, /* == not_before */
		{ "not_after", "\"2030\"" },
		{ "issued_at", NULL },
		{ "nonce", "\"short\"" },
		{ "nonce", "\"has+plus/slash=padding==\"" },
		{ "extra", "true" },
	};

	for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++) {
		json_t *d = base_doc(), *v = NULL;
		struct policy_contract c;
		int rc;

		if (bad[i].value) {
			v = json_loads(bad[i].value, JSON_DECODE_ANY, NULL);
			CU_ASSERT_PTR_NOT_NULL_FATAL(v);
			json_object_set_new(d, bad[i].key, v);
		} else {
			json_object_del(d, bad[i].key);
		}
		rc = policy_contract_from_json(&c, d);
		if (rc != EHR_ERR_INVAL)
			fprintf(stderr, "\n  mutation %zu (%s) -> %d\n", i, bad[i].key, rc);
		CU_ASSERT_EQUAL(rc, EHR_ERR_INVAL);
		policy_contract_clear(&c);
		json_decref(d);
	}
	{
		struct policy_contract c;
		json_t *arr = json_array();
		EHR_ASSERT_ERR(policy_contract_from_json(&c, arr), EHR_ERR_INVAL);
		json_decref(arr);
	}
}

static void test_revocation_parse(void)
{
	const char *ok = "{\"type\":\"ehrgate.revocation.v1\",\"patient\":\"p-7f3a9c\","
	                 "\"cid\":\"FEGbypGQdOmcQGOaSt-wfzNCP3aB_DBxYj4NJEl-rtA\",\"issued_at\":1764000100,"
	                 "\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAA\"}";
	json_t *d = NULL;
	struct policy_revocation r;

	EHR_ASSERT_OK(ehr_json_parse(&d, ok, strlen(ok), 4096, 4));
	EHR_ASSERT_OK(policy_revocation_from_json(&r, d));
	CU_ASSERT_STRING_EQUAL(r.cid, "FEGbypGQdOmcQGOaSt-wfzNCP3aB_DBxYj4NJEl-rtA");
	json_object_set_new(d, "cid", json_string("short"));
	EHR_ASSERT_ERR(policy_revocation_from_json(&r, d), EHR_ERR_INVAL);
	json_object_set_new(d, "cid", json_string("FEGbypGQdOmcQGOaSt-wfzNCP3aB_DBxYj4NJEl-rtA"));
	json_object_set_new(d, "type", json_string("ehrgate.contract.v1"));
	EHR_ASSERT_ERR(policy_revocation_from_json(&r, d), EHR_ERR_INVAL);
	json_object_set_new(d, "type", json_string("ehrgate.revocation.v1"));
	json_object_set_new(d, "reason", json_string("x"));
	EHR_ASSERT_ERR(policy_revocation_from_json(&r, d), EHR_ERR_INVAL);
	json_decref(d);
}

/* ------------------------------------------------------------ signatures */

/* Produced by Node's crypto (dsaEncoding ieee-p1363) over the canonical
 * form computed in JavaScript: an independent ES256 + JCS implementation. */
static const char node_jwk[] = "{\"kty\":\"EC\",\"x\":\"lwHfWd7ZbIgjOi9iDiJx513o6lvWYJqLuBoaD3syUfI\","
                               "\"y\":\"f2bMT9UiMbG-3m_1sGkPkj2Y1ugGcsZpW3VNniobCZg\",\"crv\":\"P-256\"}";
static const char node_sig[] =
        "0ZuRBICntdxnMZoQ8agu2LfgDN7lmaNee4nUngpDaQSGDSQEuV7_RyAA6t03YKVn83VpPMTlKkJ8zfeRC6ddQQ";

static EVP_PKEY *load_jwk(const char *s)
{
	json_t *j = json_loads(s, 0, NULL);
	EVP_PKEY *k = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	if (ehr_jwk_parse(&k, j) != 0)
		k = NULL;
	json_decref(j);
	return k;
}

static void test_sig_node_interop(void)
{
	json_t *d = base_doc();
	EVP_PKEY *k = load_jwk(node_jwk);
	char flipped[sizeof(node_sig)];

	CU_ASSERT_PTR_NOT_NULL_FATAL(k);
	EHR_ASSERT_OK(policy_verify_es256(d, node_sig, k));
	/* One changed value in the document. */
	json_object_set_new(d, "not_after", json_integer(1795536001));
	EHR_ASSERT_ERR(policy_verify_es256(d, node_sig, k), EHR_ERR_TAMPER);
	json_object_set_new(d, "not_after", json_integer(1795536000));
	/* One flipped signature character. */
	memcpy(flipped, node_sig, sizeof(node_sig));
	flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
	EHR_ASSERT_ERR(policy_verify_es256(d, flipped, k), EHR_ERR_TAMPER);
	/* Truncated, and not base64url at all. */
	EHR_ASSERT_ERR(policy_verify_es256(d, "0ZuRBICntdxnMZoQ8agu2Lfg", k), EHR_ERR_TAMPER);
	EHR_ASSERT_ERR(policy_verify_es256(d, "!!!!", k), EHR_ERR_TAMPER);
	/* Signature swapped with one over another document. */
	EVP_PKEY_free(k);
	json_decref(d);
}

static void test_sig_roundtrip_and_wrong_key(void)
{
	EVP_PKEY *a = EVP_EC_gen("P-256"), *b = EVP_EC_gen("P-256");
	struct ehr_buf sig = EHR_BUF_INIT(128);
	json_t *d = base_doc();

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	EHR_ASSERT_OK(policy_sign_es256(&sig, d, a));
	CU_ASSERT_EQUAL(sig.len, 86);
	EHR_ASSERT_OK(policy_verify_es256(d, ehr_buf_cstr(&sig), a));
	EHR_ASSERT_ERR(policy_verify_es256(d, ehr_buf_cstr(&sig), b), EHR_ERR_TAMPER);
	/* Another patient's key signing the same document proves nothing for ours. */
	EHR_ASSERT_ERR(policy_verify_es256(d, node_sig, a), EHR_ERR_TAMPER);
	ehr_buf_free(&sig);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	json_decref(d);
}

static void test_jwk_invalid(void)
{
	static const char *bad[] = {
		/* y changed: the point is not on the curve */
		"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"lwHfWd7ZbIgjOi9iDiJx513o6lvWYJqLuBoaD3syUfI\","
		"\"y\":\"f2bMT9UiMbG-3m_1sGkPkj2Y1ugGcsZpW3VNniobCZh\"}",
		"{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
		"{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"lwHfWd7ZbIgjOi9iDiJx513o6lvWYJqLuBoaD3syUfI\","
		"\"y\":\"f2bMT9UiMbG-3m_1sGkPkj2Y1ugGcsZpW3VNniobCZg\"}",
		/* x 31 bytes */
		"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"lwHfWd7ZbIgjOi9iDiJx513o6lvWYJqLuBoaD3syUf\","
		"\"y\":\"f2bMT9UiMbG-3m_1sGkPkj2Y1ugGcsZpW3VNniobCZg\"}",
		/* a private key is refused where a public one is expected */
		"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"lwHfWd7ZbIgjOi9iDiJx513o6lvWYJqLuBoaD3syUfI\","
		"\"y\":\"f2bMT9UiMbG-3m_1sGkPkj2Y1ugGcsZpW3VNniobCZg\",\"d\":\"AAAA\"}",
		"{\"kty\":\"EC\",\"crv\":\"P-256\"}",
	};

	for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++) {
		json_t *j = json_loads(bad[i], 0, NULL);
		EVP_PKEY *k = NULL;
		CU_ASSERT_PTR_NOT_NULL_FATAL(j);
		CU_ASSERT(ehr_jwk_parse(&k, j) < 0);
		CU_ASSERT_PTR_NULL(k);
		json_decref(j);
	}
}

/* ------------------------------------------------------- decision table */

struct spec {
	const char *cid, *patient, *grantee;
	bool group;
	unsigned actions;
	enum policy_scope_kind scope;
	const char *items[3];
	const char *purpose;
	int64_t nb, na;
	uint64_t seq;
	bool revoked;
};

static const struct spec specs[] = {
	{ "C1",
	  "P1",
	  "S1",
	  false,
	  POLICY_ACT_READ,
	  POLICY_SCOPE_ALL,
	  { 0 },
	  "treatment",
	  1000,
	  2000,
	  10,
	  false },
	{ "C2",
	  "P1",
	  "cardio",
	  true,
	  POLICY_ACT_READ | POLICY_ACT_APPEND,
	  POLICY_SCOPE_CATEGORIES,
	  { "lab", "imaging" },
	  "treatment",
	  1000,
	  2000,
	  11,
	  false },
	{ "C3",
	  "P1",
	  "S2",
	  false,
	  POLICY_ACT_READ,
	  POLICY_SCOPE_RECORDS,
	  { "r1", "r2" },
	  "research",
	  1000,
	  2000,
	  12,
	  false },
	{ "C4",
	  "P1",
	  "S3",
	  false,
	  POLICY_ACT_APPEND,
	  POLICY_SCOPE_ALL,
	  { 0 },
	  "treatment",
	  1000,
	  2000,
	  13,
	  true },
	{ "C5",
	  "P1",
	  "S4",
	  false,
	  POLICY_ACT_READ,
	  POLICY_SCOPE_ALL,
	  { 0 },
	  "treatment",
	  3000,
	  4000,
	  14,
	  false },
	{ "C6",
	  "P1",
	  "S5",
	  false,
	  POLICY_ACT_READ,
	  POLICY_SCOPE_ALL,
	  { 0 },
	  "treatment",
	  100,
	  500,
	  15,
	  false },
	{ "C7",
	  "P2",
	  "S1",
	  false,
	  POLICY_ACT_READ | POLICY_ACT_APPEND,
	  POLICY_SCOPE_ALL,
	  { 0 },
	  "treatment",
	  1000,
	  2000,
	  16,
	  false },
	{ "C8",
	  "P1",
	  "S1",
	  false,
	  POLICY_ACT_READ | POLICY_ACT_APPEND,
	  POLICY_SCOPE_ALL,
	  { 0 },
	  "treatment",
	  1000,
	  2000,
	  20,
	  false },
	{ "C9",
	  "P1",
	  "S6",
	  false,
	  POLICY_ACT_READ,
	  POLICY_SCOPE_ALL,
	  { 0 },
	  "treatment",
	  1000,
	  2000,
	  21,
	  true },
	{ "C10",
	  "P1",
	  "S6",
	  false,
	  POLICY_ACT_READ,
	  POLICY_SCOPE_ALL,
	  { 0 },
	  "treatment",
	  1000,
	  2000,
	  22,
	  false },
	/* Listed before C11's older twin to show order in the array does not matter. */
	{ "C12",
	  "P2",
	  "S8",
	  false,
	  POLICY_ACT_READ,
	  POLICY_SCOPE_ALL,
	  { 0 },
	  "treatment",
	  1000,
	  2000,
	  31,
	  false },
	{ "C11",
	  "P2",
	  "S8",
	  false,
	  POLICY_ACT_READ,
	  POLICY_SCOPE_ALL,
	  { 0 },
	  "treatment",
	  1000,
	  2000,
	  30,
	  false },
};

static struct policy_contract set[EHR_ARRAY_LEN(specs)];

static int table_init(void)
{
	for (size_t i = 0; i < EHR_ARRAY_LEN(specs); i++) {
		const struct spec *s = &specs[i];
		struct policy_contract *c = &set[i];
		memset(c, 0, sizeof(*c));
		snprintf(c->cid, sizeof(c->cid), "%s", s->cid);
		snprintf(c->patient, sizeof(c->patient), "%s", s->patient);
		snprintf(c->grantee, sizeof(c->grantee), "%s", s->grantee);
		c->grantee_kind = s->group ? POLICY_GRANTEE_GROUP : POLICY_GRANTEE_SERVER;
		c->actions = s->actions;
		c->scope_kind = s->scope;
		for (size_t j = 0; j < 3 && s->items[j]; j++)
			c->n_scope++;
		c->scope = calloc(c->n_scope ? c->n_scope : 1, sizeof(char *));
		for (size_t j = 0; j < c->n_scope; j++)
			c->scope[j] = strdup(s->items[j]);
		snprintf(c->purpose, sizeof(c->purpose), "%s", s->purpose);
		c->not_before = s->nb;
		c->not_after = s->na;
		c->seq = s->seq;
		c->revoked = s->revoked;
	}
	return 0;
}

static int table_clean(void)
{
	for (size_t i = 0; i < EHR_ARRAY_LEN(set); i++)
		policy_contract_clear(&set[i]);
	return 0;
}

#define BG "patient unconscious, arrived by ambulance"
static const char *const cardio[] = { "cardio" };
static const char *const other_groups[] = { "radiology", "oncology" };

struct row {
	const char *name;
	enum policy_role role;
	const char *requester;
	const char *const *groups;
	size_t n_groups;
	const char *patient;
	enum policy_action action;
	const char *record, *category, *purpose;
	bool bg;
	const char *just;
	int64_t now;
	/* expected */
	enum policy_effect effect;
	const char *reason, *cid;
	bool flagged;
};

#define SRV POLICY_ROLE_SERVER
#define RD POLICY_ACT_READ
#define AP POLICY_ACT_APPEND
#define OK POLICY_ALLOW
#define NO POLICY_DENY

static const struct row rows[] = {
	/* name                     role requester groups n patient action record category purpose bg just now -> */
	{ "read, server grantee, all", SRV, "S1", NULL, 0, "P1", RD, "r9", NULL, NULL, false, NULL, 1500, OK,
	  "allow.contract", "C1", false },
	{ "overlap: oldest contract decides", SRV, "S1", NULL, 0, "P1", RD, "r1", "lab", NULL, false, NULL,
	  1500, OK, "allow.contract", "C1", false },
	{ "append needs a contract with append", SRV, "S1", NULL, 0, "P1", AP, NULL, "lab", NULL, false, NULL,
	  1500, OK, "allow.contract", "C8", false },
	{ "contract of another patient", SRV, "S1", NULL, 0, "P2", RD, "x", NULL, NULL, false, NULL, 1500, OK,
	  "allow.contract", "C7", false },
	{ "wrong grantee", SRV, "S9", NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL, 1500, NO,
	  "deny.grantee", "", false },
	{ "patient without contracts", SRV, "S1", NULL, 0, "P3", RD, "r1", NULL, NULL, false, NULL, 1500, NO,
	  "deny.no_contract", "", false },
	{ "revoked", SRV, "S3", NULL, 0, "P1", AP, NULL, NULL, NULL, false, NULL, 1500, NO, "deny.revoked",
	  "C4", false },
	{ "revoked beats wrong action", SRV, "S3", NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL, 1500, NO,
	  "deny.revoked", "C4", false },
	{ "revoked and also expired", SRV, "S3", NULL, 0, "P1", AP, NULL, NULL, NULL, false, NULL, 5000, NO,
	  "deny.revoked", "C4", false },
	{ "not yet valid", SRV, "S4", NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL, 1500, NO,
	  "deny.not_yet_valid", "C5", false },
	{ "not_before is inclusive", SRV, "S4", NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL, 3000, OK,
	  "allow.contract", "C5", false },
	{ "last second before not_after", SRV, "S4", NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL, 3999,
	  OK, "allow.contract", "C5", false },
	{ "not_after is exclusive", SRV, "S4", NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL, 4000, NO,
	  "deny.expired", "C5", false },
	{ "expired", SRV, "S5", NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL, 1500, NO, "deny.expired",
	  "C6", false },
	{ "group grantee, category in scope", SRV, "S7", cardio, 1, "P1", RD, "r5", "lab", NULL, false, NULL,
	  1500, OK, "allow.contract", "C2", false },
	{ "group grantee, append in scope", SRV, "S7", cardio, 1, "P1", AP, NULL, "imaging", NULL, false,
	  NULL, 1500, OK, "allow.contract", "C2", false },
	{ "category mismatch", SRV, "S7", cardio, 1, "P1", RD, "r5", "psych", NULL, false, NULL, 1500, NO,
	  "deny.scope", "C2", false },
	{ "category unknown", SRV, "S7", cardio, 1, "P1", RD, "r5", NULL, NULL, false, NULL, 1500, NO,
	  "deny.scope", "C2", false },
	{ "server not in the group", SRV, "S7", other_groups, 2, "P1", RD, "r5", "lab", NULL, false, NULL,
	  1500, NO, "deny.grantee", "", false },
	{ "group name is not a server id", SRV, "cardio", NULL, 0, "P1", RD, "r5", "lab", NULL, false, NULL,
	  1500, NO, "deny.grantee", "", false },
	{ "group of another patient", SRV, "S7", cardio, 1, "P2", RD, "r5", "lab", NULL, false, NULL, 1500,
	  NO, "deny.grantee", "", false },
	{ "record id in scope", SRV, "S2", NULL, 0, "P1", RD, "r1", NULL, "research", false, NULL, 1500, OK,
	  "allow.contract", "C3", false },
	{ "record id out of scope", SRV, "S2", NULL, 0, "P1", RD, "r3", NULL, "research", false, NULL, 1500,
	  NO, "deny.scope", "C3", false },
	{ "record scope needs a record id", SRV, "S2", NULL, 0, "P1", RD, NULL, NULL, "research", false, NULL,
	  1500, NO, "deny.scope", "C3", false },
	{ "append on a read-only contract", SRV, "S2", NULL, 0, "P1", AP, "r1", NULL, "research", false, NULL,
	  1500, NO, "deny.action", "C3", false },
	{ "purpose mismatch (default treatment)", SRV, "S2", NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL,
	  1500, NO, "deny.purpose", "C3", false },
	{ "purpose mismatch, two candidates", SRV, "S1", NULL, 0, "P1", RD, "r1", NULL, "research", false,
	  NULL, 1500, NO, "deny.purpose", "C1", false },
	{ "revoked, then granted again", SRV, "S6", NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL, 1500,
	  OK, "allow.contract", "C10", false },
	{ "overlap independent of array order", SRV, "S8", NULL, 0, "P2", RD, "r1", NULL, NULL, false, NULL,
	  1500, OK, "allow.contract", "C11", false },
	{ "all contracts lapsed", SRV, "S1", NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL, 2000, NO,
	  "deny.expired", "C1", false },
	{ "break-glass read", SRV, "S9", NULL, 0, "P1", RD, "r1", NULL, NULL, true, BG, 1500, OK,
	  "allow.break_glass", "", true },
	{ "break-glass, no contract at all", SRV, "S9", NULL, 0, "P3", RD, "r1", NULL, NULL, true, BG, 1500,
	  OK, "allow.break_glass", "", true },
	{ "break-glass over a revoked contract", SRV, "S3", NULL, 0, "P1", RD, "r1", NULL, NULL, true, BG,
	  1500, OK, "allow.break_glass", "", true },
	{ "break-glass cannot append", SRV, "S9", NULL, 0, "P1", AP, NULL, NULL, NULL, true, BG, 1500, NO,
	  "deny.break_glass_action", "", false },
	{ "break-glass without justification", SRV, "S9", NULL, 0, "P1", RD, "r1", NULL, NULL, true, NULL,
	  1500, NO, "deny.break_glass_justification", "", false },
	{ "break-glass, justification too short", SRV, "S9", NULL, 0, "P1", RD, "r1", NULL, NULL, true,
	  "help", 1500, NO, "deny.break_glass_justification", "", false },
	{ "break-glass not needed: contract wins", SRV, "S1", NULL, 0, "P1", RD, "r1", NULL, NULL, true, BG,
	  1500, OK, "allow.contract", "C1", false },
	{ "patient reads own records", POLICY_ROLE_PATIENT, "P1", NULL, 0, "P1", RD, "r1", NULL, NULL, false,
	  NULL, 1500, OK, "allow.owner", "", false },
	{ "patient reads another's records", POLICY_ROLE_PATIENT, "P2", NULL, 0, "P1", RD, "r1", NULL, NULL,
	  false, NULL, 1500, NO, "deny.not_owner", "", false },
	{ "patient cannot break glass", POLICY_ROLE_PATIENT, "P2", NULL, 0, "P1", RD, "r1", NULL, NULL, true,
	  BG, 1500, NO, "deny.not_owner", "", false },
	{ "auditor never reads records", POLICY_ROLE_AUDITOR, "S1", NULL, 0, "P1", RD, "r1", NULL, NULL,
	  false, NULL, 1500, NO, "deny.role", "", false },
	{ "auditor cannot break glass", POLICY_ROLE_AUDITOR, "A1", NULL, 0, "P1", RD, "r1", NULL, NULL, true,
	  BG, 1500, NO, "deny.role", "", false },
	{ "unknown purpose", SRV, "S1", NULL, 0, "P1", RD, "r1", NULL, "fun", false, NULL, 1500, NO,
	  "deny.invalid_request", "", false },
	{ "no requester", SRV, NULL, NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL, 1500, NO,
	  "deny.invalid_request", "", false },
	{ "no patient", SRV, "S1", NULL, 0, NULL, RD, "r1", NULL, NULL, false, NULL, 1500, NO,
	  "deny.invalid_request", "", false },
	{ "two actions at once", SRV, "S1", NULL, 0, "P1", RD | AP, "r1", NULL, NULL, false, NULL, 1500, NO,
	  "deny.invalid_request", "", false },
	{ "unknown role", 0, "S1", NULL, 0, "P1", RD, "r1", NULL, NULL, false, NULL, 1500, NO,
	  "deny.invalid_request", "", false },
};

static void test_decision_table(void)
{
	unsigned failures = 0;

	CU_ASSERT(EHR_ARRAY_LEN(rows) >= 30);
	for (size_t i = 0; i < EHR_ARRAY_LEN(rows); i++) {
		const struct row *w = &rows[i];
		struct policy_request req = {
			.role = w->role,
			.requester = w->requester,
			.groups = w->groups,
			.n_groups = w->n_groups,
			.patient = w->patient,
			.action = w->action,
			.record_id = w->record,
			.category = w->category,
			.purpose = w->purpose,
			.break_glass = w->bg,
			.justification = w->just,
		};
		struct policy_decision d;
		policy_decide(set, EHR_ARRAY_LEN(set), &req, w->now, &d);
		if (d.effect != w->effect || strcmp(d.reason, w->reason) != 0 || strcmp(d.cid, w->cid) != 0 ||
		    d.break_glass != w->flagged) {
			fprintf(stderr, "\n  row %zu \"%s\": got %s %s cid=%s bg=%d, want %s cid=%s bg=%d", i,
			        w->name, d.effect == OK ? "allow" : "deny", d.reason, d.cid, d.break_glass,
			        w->reason, w->cid, w->flagged);
			failures++;
		}
	}
	CU_ASSERT_EQUAL(failures, 0);
}

/* Pure: the same inputs always give the same decision, and an empty set
 * denies everything a server asks. */
static void test_decide_pure(void)
{
	struct policy_request req = { .role = SRV, .requester = "S1", .patient = "P1", .action = RD };
	struct policy_decision a, b;

	policy_decide(set, EHR_ARRAY_LEN(set), &req, 1500, &a);
	policy_decide(set, EHR_ARRAY_LEN(set), &req, 1500, &b);
	CU_ASSERT_EQUAL(a.effect, b.effect);
	CU_ASSERT_STRING_EQUAL(a.reason, b.reason);
	CU_ASSERT_STRING_EQUAL(a.cid, b.cid);
	policy_decide(NULL, 0, &req, 1500, &a);
	CU_ASSERT_EQUAL(a.effect, NO);
	CU_ASSERT_STRING_EQUAL(a.reason, "deny.no_contract");
	policy_decide(NULL, 0, NULL, 1500, &a);
	CU_ASSERT_EQUAL(a.effect, NO);
}

static void test_decision_payload(void)
{
	struct policy_request req = { .role = SRV,
		                      .requester = "S9",
		                      .patient = "P1",
		                      .action = RD,
		                      .record_id = "r1",
		                      .break_glass = true,
		                      .justification = BG };
	struct policy_decision d;
	json_t *p = NULL;

	policy_decide(set, EHR_ARRAY_LEN(set), &req, 1500, &d);
	EHR_ASSERT_OK(policy_decision_payload(&p, &req, &d));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "decision")), "allow");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "reason")), "allow.break_glass");
	CU_ASSERT(json_is_true(json_object_get(p, "break_glass")));
	CU_ASSERT(json_is_null(json_object_get(p, "cid")));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "justification")), BG);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "record")), "r1");
	json_decref(p);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("document", NULL, NULL, { "parse_valid", test_parse_valid },
	              { "cid_canonical", test_cid_canonical }, { "parse_invalid", test_parse_invalid },
	              { "revocation_parse", test_revocation_parse });
	EHR_ADD_SUITE("signature", NULL, NULL, { "node_interop", test_sig_node_interop },
	              { "roundtrip_wrong_key", test_sig_roundtrip_and_wrong_key },
	              { "jwk_invalid", test_jwk_invalid });
	EHR_ADD_SUITE("decide", table_init, table_clean, { "decision_table", test_decision_table },
	              { "pure", test_decide_pure }, { "payload", test_decision_payload });
}

EHR_TEST_MAIN(register_suites)
