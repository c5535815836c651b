/*
 * test_openapi_live.c - every route `ehrgate routes` prints, called as a
 * client would (mTLS for servers and auditors, DPoP for the patient), with
 * a success and a refusal each where one can be provoked. Each reply's
 * status is asserted here; its body is recorded (gwp_record_reply) and
 * validated against schemas/openapi.yaml by tests/openapi/validate_replies.js
 * after the integration tests (tests/run.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth/auth.h"
#include "client/client.h"
#include "common/common.h"
#include "tests/harness/gwproc.h"
#include "tests/harness/harness.h"
#include "tests/integration/audit/audit_testlib.h"

static struct gw_proc gw;
static char srv_cert[GWP_PATH + 32], srv_key[GWP_PATH + 32], aud_cert[GWP_PATH + 32], aud_key[GWP_PATH + 32],
        pat_dir[GWP_PATH + 32];
static char SRV[64], PID[64], RID[64], CID[64];
static struct ehr_client *pat;

static long req(const char *method, const char *path, const char *cert, const char *key, const char *body,
                const char *const *headers, struct gwp_resp *out)
{
	struct gwp_req rq = { .method = method, .path = path, .cert = cert, .key = key, .headers = headers };
	struct gwp_resp tmp = { 0 };
	struct gwp_resp *r = out ? out : &tmp;
	long status;

	if (body) {
		rq.body = body;
		rq.body_len = strlen(body);
	}
	if (gwp_request(&gw, &rq, r) < 0) {
		fprintf(stderr, "\n  %s %s: %s\n", method, path, ehr_error_msg());
		return -1;
	}
	if (r->status <= 0)
		fprintf(stderr, "\n  %s %s: curl %d\n", method, path, r->curl_code);
	status = r->status;
	if (out == NULL)
		gwp_resp_free(&tmp);
	return status;
}

/* A patient request through libehrclient (it signs the DPoP proof), recorded. */
static long preq(const char *method, const char *path, const json_t *body, json_t **resp)
{
	struct ehr_buf out = EHR_BUF_INIT(1u << 20);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	const char *hdr[] = { "Content-Type: application/json", NULL };
	char ct[256] = "";
	long status = 0;

	if (ehr_client_request(pat, &status, &out, method, path, text ? hdr : NULL, text,
	                       text ? strlen(text) : 0, NULL, NULL) < 0)
		status = -1;
	if (ehr_client_response_header(pat, "Content-Type", ct, sizeof(ct)) < 0)
		ct[0] = '\0';
	gwp_record_reply(method, path, status, ct, out.data, out.len);
	if (resp)
		*resp = status > 0 ? json_loadb((const char *)out.data, out.len, 0, NULL) : NULL;
	free(text);
	ehr_buf_free(&out);
	return status;
}

/* Keep the start of a streamed reply, then stop the transfer. */
static bool first_chunk(const void *d, size_t n, void *ud)
{
	char *out = ud;

	memcpy(out, d, n < 63 ? n : 63);
	out[n < 63 ? n : 63] = '\0';
	return false;
}

/* Register a principal with a fresh key and CSR over POST /v1/register;
 * its certificate and key go to cert/key (PEM files). */
static int register_principal(const char *role, const char *cert, const char *key, char *id, size_t cap)
{
	const char *args[] = { "admin", "issue-token", "--role", role, "--name", "openapi-test", NULL };
	struct ehr_buf csr = EHR_BUF_INIT(8192);
	char tok[256] = "";
	EVP_PKEY *k = EVP_EC_gen("P-256");
	json_t *body = NULL, *resp = NULL;
	struct gwp_resp r = { 0 };
	char *text = NULL;
	FILE *f;
	int err = -1;

	if (k == NULL || gwp_cmd(&gw, tok, sizeof(tok), args) != 0 || auth_csr_create(&csr, k, "t") < 0)
		goto out;
	tok[strcspn(tok, "\r\n")] = '\0';
	body = json_pack("{s:s, s:s}", "csr", ehr_buf_cstr(&csr), "token", tok);
	text = json_dumps(body, JSON_COMPACT);
	if (text == NULL || req("POST", "/v1/register", NULL, NULL, text, NULL, &r) != 201 ||
	    (resp = gwp_resp_json(&r)) == NULL)
		goto out;
	snprintf(id, cap, "%s", json_string_value(json_object_get(resp, "id")) ?: "");
	if ((f = fopen(cert, "w")) == NULL)
		goto out;
	fputs(json_string_value(json_object_get(resp, "certificate")) ?: "", f);
	fclose(f);
	if ((f = fopen(key, "w")) == NULL)
		goto out;
	err = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1 ? 0 : -1;
	fclose(f);
out:
	gwp_resp_free(&r);
	free(text);
	json_decref(body);
	json_decref(resp);
	ehr_buf_free(&csr);
	EVP_PKEY_free(k);
	return err;
}

static int suite_init(void)
{
	struct gwp_options o = { 0 };
	struct gwp_resp r = { 0 };
	json_t *resp = NULL;
	int rc = 1;

	if (gwp_setup(&gw, &o) < 0 || gwp_start(&gw) < 0)
		return 1;
	snprintf(srv_cert, sizeof(srv_cert), "%s/srv.pem", gw.dir);
	snprintf(srv_key, sizeof(srv_key), "%s/srv.key", gw.dir);
	snprintf(aud_cert, sizeof(aud_cert), "%s/aud.pem", gw.dir);
	snprintf(aud_key, sizeof(aud_key), "%s/aud.key", gw.dir);
	snprintf(pat_dir, sizeof(pat_dir), "%s/patient", gw.dir);
	if (register_principal("server", srv_cert, srv_key, SRV, sizeof(SRV)) < 0 ||
	    register_principal("auditor", aud_cert, aud_key, (char[64]){ 0 }, 64) < 0) {
		fprintf(stderr, "register: %s\n", ehr_error_msg());
		return 1;
	}
	if (req("POST", "/v1/patients", srv_cert, srv_key, "{\"external_id\":\"mrn-openapi-1\"}", NULL, &r) !=
	            201 ||
	    (resp = gwp_resp_json(&r)) == NULL)
		goto out;
	snprintf(PID, sizeof(PID), "%s", json_string_value(json_object_get(resp, "patient_id")) ?: "");
	if (ehr_client_enroll(gw.base_url, gw.ca_pem, PID,
	                      json_string_value(json_object_get(resp, "enrolment_code")), NULL,
	                      pat_dir) < 0 ||
	    ehr_client_open_profile(&pat, pat_dir) < 0) {
		fprintf(stderr, "enrol: %s\n", ehr_error_msg());
		goto out;
	}
	rc = 0;
out:
	json_decref(resp);
	gwp_resp_free(&r);
	return rc;
}

static int suite_clean(void)
{
	ehr_client_free(pat);
	gwp_teardown(&gw);
	return 0;
}

static void test_core(void)
{
	CU_ASSERT_EQUAL(req("GET", "/healthz", NULL, NULL, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", "/readyz", NULL, NULL, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", "/metrics", NULL, NULL, NULL, NULL, NULL), 404); /* own listener */
	CU_ASSERT_EQUAL(req("DELETE", "/healthz", NULL, NULL, NULL, NULL, NULL), 405);
	CU_ASSERT_EQUAL(req("GET", "/v1/nothing-here", NULL, NULL, NULL, NULL, NULL), 404);
}

static void test_auth(void)
{
	char body[512];

	CU_ASSERT_EQUAL(req("POST", "/v1/register", NULL, NULL, "{\"csr\":\"x\"}", NULL, NULL), 400);
	CU_ASSERT_EQUAL(req("POST", "/v1/register/renew", srv_cert, srv_key, "{\"csr\":\"x\"}", NULL, NULL),
	                400);
	CU_ASSERT_EQUAL(req("POST", "/v1/register/renew", NULL, NULL, "{\"csr\":\"x\"}", NULL, NULL), 401);
	CU_ASSERT_EQUAL(req("POST", "/v1/patients", aud_cert, aud_key, "{\"external_id\":\"m\"}", NULL, NULL),
	                403);
	CU_ASSERT_EQUAL(req("POST", "/v1/patients", srv_cert, srv_key, "[]", NULL, NULL), 400);
	snprintf(body, sizeof(body), "{\"patient_id\":\"%s\"}", PID);
	CU_ASSERT_EQUAL(req("POST", "/v1/auth/challenge", NULL, NULL, body, NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("POST", "/v1/auth/challenge", NULL, NULL, "{}", NULL, NULL), 400);
	snprintf(body, sizeof(body),
	         "{\"patient_id\":\"%s\",\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	         "\"ts\":\"1\",\"signature\":\"%086d\"}",
	         PID, 0);
	CU_ASSERT(req("POST", "/v1/auth/token", NULL, NULL, body, NULL, NULL) >= 400);
	snprintf(body, sizeof(body),
	         "{\"patient_id\":\"%s\",\"code\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	         "\"jwk\":{\"kty\":\"EC\"},\"signature\":\"x\"}",
	         PID);
	CU_ASSERT_EQUAL(req("POST", "/v1/enroll", NULL, NULL, body, NULL, NULL), 400);
	CU_ASSERT_EQUAL(req("GET", "/v1/whoami", srv_cert, srv_key, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", "/v1/whoami", NULL, NULL, NULL, NULL, NULL), 401);
	CU_ASSERT_EQUAL(preq("GET", "/v1/whoami", NULL, NULL), 200);
}

static void test_contracts_and_records(void)
{
	int64_t now = ehr_now_ms() / 1000;
	char grantee[128], path[256];
	json_t *env, *resp = NULL;
	const char *up[] = { "Content-Type: text/plain", "X-EHR-Category: lab", NULL };
	struct gwp_resp r = { 0 };

	snprintf(path, sizeof(path), "/v1/patients/%s/records", PID);
	CU_ASSERT_EQUAL(req("POST", path, srv_cert, srv_key, "no contract yet", up, NULL), 403);
	snprintf(grantee, sizeof(grantee), "{\"server\":\"%s\"}", SRV);
	env = atl_contract(ehr_client_device_key(pat), PID, grantee, "[\"read\",\"append\"]",
	                   "{\"all\":true}", "treatment", now - 60, now + 3600);
	CU_ASSERT_EQUAL_FATAL(preq("POST", "/v1/me/contracts", env, &resp), 201);
	snprintf(CID, sizeof(CID), "%s", json_string_value(json_object_get(resp, "cid")) ?: "");
	json_decref(resp);
	CU_ASSERT_EQUAL(preq("POST", "/v1/me/contracts", env, NULL), 409);
	json_decref(env);
	env = json_object();
	CU_ASSERT_EQUAL(preq("POST", "/v1/me/contracts", env, NULL), 400);
	json_decref(env);
	CU_ASSERT_EQUAL(preq("GET", "/v1/me/contracts", NULL, NULL), 200);

	CU_ASSERT_EQUAL_FATAL(req("POST", path, srv_cert, srv_key, "a lab result", up, &r), 201);
	resp = gwp_resp_json(&r);
	snprintf(RID, sizeof(RID), "%s", json_string_value(json_object_get(resp, "record_id")) ?: "");
	json_decref(resp);
	gwp_resp_free(&r);
	CU_ASSERT_EQUAL(req("GET", path, srv_cert, srv_key, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(preq("GET", path, NULL, NULL), 200);
	CU_ASSERT_EQUAL(
	        req("GET", "/v1/patients/pt-x/records?limit=abc", srv_cert, srv_key, NULL, NULL, NULL), 400);
	snprintf(path, sizeof(path), "/v1/records/%s", RID);
	CU_ASSERT_EQUAL(req("GET", path, srv_cert, srv_key, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(preq("GET", path, NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", "/v1/records/0123456789abcdef0123456789abcdef", srv_cert, srv_key, NULL,
	                    NULL, NULL),
	                404);
	CU_ASSERT_EQUAL(req("GET", "/v1/records/nothex", srv_cert, srv_key, NULL, NULL, NULL), 400);
	CU_ASSERT_EQUAL(req("GET", path, aud_cert, aud_key, NULL, NULL, NULL), 403);

	snprintf(path, sizeof(path), "/v1/me/contracts/%s/revoke", CID);
	env = atl_revocation(ehr_client_device_key(pat), PID, CID);
	CU_ASSERT_EQUAL(preq("POST", path, env, NULL), 200);
	CU_ASSERT_EQUAL(preq("POST", path, env, NULL), 409);
	json_decref(env);
	CU_ASSERT_EQUAL(preq("GET", "/v1/me/access-log?limit=5", NULL, NULL), 200);
	CU_ASSERT_EQUAL(preq("GET", "/v1/me/access-log?limit=x", NULL, NULL), 400);
	CU_ASSERT_EQUAL(preq("GET", "/v1/me/access/stream?heartbeat=0", NULL, NULL), 400);
	CU_ASSERT_EQUAL(preq("GET", "/v1/me/access/stream?from=x", NULL, NULL), 400);
	CU_ASSERT_EQUAL(req("GET", "/v1/me/access/stream", aud_cert, aud_key, NULL, NULL, NULL), 403);
	{
		/* the stream's first bytes, then the client leaves */
		char first[64] = "";
		long st = 0;
		ehr_client_request(pat, &st, NULL, "GET", "/v1/me/access/stream?from=0", NULL, NULL, 0,
		                   first_chunk, first);
		CU_ASSERT_EQUAL(strncmp(first, ": ehrgate access stream", 23), 0);
	}
}

static void test_audit(void)
{
	const char *fhir[] = { "Accept: application/fhir+json", NULL };
	char path[256];
	long long size;
	struct gwp_resp r = { 0 };
	json_t *resp;

	CU_ASSERT_EQUAL(req("GET", "/v1/audit/entries?limit=5", aud_cert, aud_key, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", "/v1/audit/entries?limit=5", aud_cert, aud_key, NULL, fhir, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", "/v1/audit/entries?limit=abc", aud_cert, aud_key, NULL, NULL, NULL), 400);
	CU_ASSERT_EQUAL(req("GET", "/v1/audit/entries", srv_cert, srv_key, NULL, NULL, NULL), 403);
	CU_ASSERT_EQUAL(req("GET", "/v1/audit/stream?heartbeat=0", aud_cert, aud_key, NULL, NULL, NULL), 400);
	{
		/* a stream ends only when the client leaves: read its start, then time out */
		struct gwp_req rq = { .path = "/v1/audit/stream?since=0",
			              .cert = aud_cert,
			              .key = aud_key,
			              .timeout_ms = 1500 };
		gwp_request(&gw, &rq, &r);
		CU_ASSERT_EQUAL(r.status, 200);
		CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "event: entry"));
		gwp_resp_free(&r);
	}
	CU_ASSERT_EQUAL_FATAL(req("GET", "/v1/ledger/checkpoint", aud_cert, aud_key, NULL, NULL, &r), 200);
	size = strtoll(strchr(r.body, '\n') + 1, NULL, 10);
	gwp_resp_free(&r);
	CU_ASSERT_FATAL(size > 2);
	CU_ASSERT_EQUAL(preq("GET", "/v1/ledger/checkpoint", NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", "/v1/ledger/checkpoint?size=x", aud_cert, aud_key, NULL, NULL, NULL), 400);
	snprintf(path, sizeof(path), "/v1/ledger/proof/inclusion?index=1&size=%lld", size);
	CU_ASSERT_EQUAL(req("GET", path, aud_cert, aud_key, NULL, NULL, NULL), 200);
	/* no size: the published checkpoint's tree size (LEDGER.md §13) */
	CU_ASSERT_EQUAL(req("GET", "/v1/ledger/proof/inclusion?index=1", aud_cert, aud_key, NULL, NULL, NULL),
	                200);
	CU_ASSERT_EQUAL(req("GET", "/v1/ledger/proof/inclusion?size=2", aud_cert, aud_key, NULL, NULL, NULL),
	                400);
	snprintf(path, sizeof(path), "/v1/ledger/proof/inclusion?index=0&size=%lld", size);
	CU_ASSERT_EQUAL(preq("GET", path, NULL, NULL), 404); /* not the patient's entry */
	snprintf(path, sizeof(path), "/v1/ledger/proof/consistency?from=1&to=%lld", size);
	CU_ASSERT_EQUAL(req("GET", path, aud_cert, aud_key, NULL, NULL, &r), 200);
	resp = gwp_resp_json(&r);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(resp, "tree_size")), size);
	json_decref(resp);
	gwp_resp_free(&r);
	CU_ASSERT_EQUAL(
	        req("GET", "/v1/ledger/proof/consistency?from=0&to=1", aud_cert, aud_key, NULL, NULL, NULL),
	        400);
}

/* The FHIR face: FHIR bodies (application/fhir+json) and OperationOutcome
 * refusals, each reply checked against the document's schemas. */
static void test_fhir(void)
{
	char path[256];
	struct gwp_resp r = { 0 };
	json_t *resp = NULL;
	const char *id;

	CU_ASSERT_EQUAL(req("GET", "/fhir/metadata", NULL, NULL, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", "/fhir/AuditEvent?_count=3", aud_cert, aud_key, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", "/fhir/AuditEvent?date=ge2020-01-01&date=lt2100-01-01&_count=2", aud_cert,
	                    aud_key, NULL, NULL, NULL),
	                200);
	snprintf(path, sizeof(path), "/fhir/AuditEvent?patient=%s&outcome=0&_count=2", PID);
	CU_ASSERT_EQUAL(req("GET", path, aud_cert, aud_key, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", "/fhir/AuditEvent?outcome=3", aud_cert, aud_key, NULL, NULL, NULL), 400);
	CU_ASSERT_EQUAL(req("GET", "/fhir/AuditEvent?foo=1", aud_cert, aud_key, NULL, NULL, NULL), 400);
	CU_ASSERT_EQUAL(req("GET", "/fhir/AuditEvent", NULL, NULL, NULL, NULL, NULL), 401);
	CU_ASSERT_EQUAL(req("GET", "/fhir/AuditEvent", srv_cert, srv_key, NULL, NULL, NULL), 403);
	CU_ASSERT_EQUAL(req("GET", "/fhir/AuditEvent/1", aud_cert, aud_key, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", "/fhir/AuditEvent/999999999", aud_cert, aud_key, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(preq("GET", "/fhir/Consent", NULL, &resp), 200);
	id = json_string_value(json_object_get(
	        json_object_get(json_array_get(json_object_get(resp, "entry"), 0), "resource"), "id"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(id);
	snprintf(path, sizeof(path), "/fhir/Consent/%s", id);
	json_decref(resp);
	CU_ASSERT_EQUAL(preq("GET", path, NULL, NULL), 200);
	CU_ASSERT_EQUAL(req("GET", path, aud_cert, aud_key, NULL, NULL, NULL), 200);
	snprintf(path, sizeof(path), "/fhir/Consent?patient=%s&_count=1", PID);
	CU_ASSERT_EQUAL(req("GET", path, aud_cert, aud_key, NULL, NULL, &r), 200);
	gwp_resp_free(&r);
	CU_ASSERT_EQUAL(req("GET", "/fhir/Consent/0", aud_cert, aud_key, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(req("GET", "/fhir/Consent?_count=0", aud_cert, aud_key, NULL, NULL, NULL), 400);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("openapi_live", suite_init, suite_clean, { "core", test_core }, { "auth", test_auth },
	              { "contracts_and_records", test_contracts_and_records }, { "audit", test_audit },
	              { "fhir", test_fhir });
}

EHR_TEST_MAIN(register_suites)
