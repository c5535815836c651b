/*
 * test_auth_gw.c - registration and mutual authentication end to end: the
 * real `ehrgate` (init, migrate, serve, admin) on real PostgreSQL over real
 * TLS, driven by `ehrctl` and libehrclient. Every refusal is asserted by
 * status and JSON error body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "auth/auth.h"
#include "client/client.h"
#include "tests/harness/harness.h"
#include "tests/harness/gwproc.h"
#include "tests/unit/auth/authtest.h"

static struct gw_proc gw;
static char tmp[256], state[300], admin_cfg[320], srvdir[300], auddir[300], patdir[300], cafile[320];
static char pid[128];
static const char *const base_sets[] = {
	"auth.rate_register_per_min=100000",
	"auth.rate_enroll_per_min=100000",
	"auth.rate_challenge_per_min=100000",
	"auth.rate_token_per_min=100000",
	"auth.rate_burst=100000",
	NULL,
};

/* The gateway as these tests run it: one worker, no test routes, the
 * gateway's default store; rate limits raised (base_sets) except where a test
 * starts a second instance with its own. */
static int setup(void)
{
	static const char *const sets[] = { "server.workers=1", "database.pool_size=8", "log.level=warn",
		                            "log.access=false", NULL };
	struct gwp_options o = { .sets = sets, .store_ini = "", .no_test_routes = true };

	if (gwp_setup(&gw, &o) < 0) {
		fprintf(stderr, "setup: %s\n", ehr_error_msg());
		return 1;
	}
	snprintf(tmp, sizeof(tmp), "%s", gw.dir);
	snprintf(state, sizeof(state), "%s", gw.state_dir);
	snprintf(admin_cfg, sizeof(admin_cfg), "%s", gw.config);
	snprintf(srvdir, sizeof(srvdir), "%s/server", tmp);
	snprintf(auddir, sizeof(auddir), "%s/auditor", tmp);
	snprintf(patdir, sizeof(patdir), "%s/patient", tmp);
	snprintf(cafile, sizeof(cafile), "%s", gw.ca_pem);
	return gwp_start_with(&gw, base_sets) < 0;
}

static int teardown(void)
{
	gwp_teardown(&gw);
	return 0;
}

/* `ehrgate admin issue-token`; the token into out. */
static int issue_token(char out[128], const char *role, const char *ttl)
{
	const char *argv[] = { EHRGATE_BIN, "admin",   "issue-token",
		               "-c",        admin_cfg, "--role",
		               role,        "--name",  "Integration Test Hospital",
		               "--ttl",     ttl,       NULL };
	int rc = ehr_test_run(out, 128, argv);

	out[strcspn(out, "\n")] = '\0';
	return rc;
}

static int ehrctl(char *out, size_t cap, const char *dir, const char *a1, const char *a2, const char *a3,
                  const char *a4, const char *a5, const char *a6, const char *a7, const char *a8,
                  const char *a9, const char *a10)
{
	const char *argv[16] = { EHRCTL_BIN, "--dir", dir, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, NULL };
	return ehr_test_run(out, cap, argv);
}

static struct ehr_client *plain_client(void)
{
	struct ehr_client_opts o = { .url = gw.base_url, .ca_file = cafile };
	struct ehr_client *c = NULL;

	ehr_client_new(&c, &o);
	return c;
}

static struct ehr_client *cert_client(const char *cert, const char *key)
{
	struct ehr_client_opts o = {
		.url = gw.base_url, .ca_file = cafile, .cert_file = cert, .key_file = key
	};
	struct ehr_client *c = NULL;

	ehr_client_new(&c, &o);
	return c;
}

/* The JSON error shape every refusal must have. */
static void assert_error(long status, long want, const char *body_json)
{
	json_t *j = NULL;

	CU_ASSERT_EQUAL(status, want);
	if (status != want)
		fprintf(stderr, "\n  wanted HTTP %ld, got %ld: %s\n", want, status,
		        body_json ? body_json : "");
	CU_ASSERT_FATAL(body_json != NULL &&
	                ehr_json_parse(&j, body_json, strlen(body_json), 1 << 20, 8) == 0);
	CU_ASSERT(json_is_string(json_object_get(json_object_get(j, "error"), "code")));
	CU_ASSERT(json_is_string(json_object_get(json_object_get(j, "error"), "message")));
	json_decref(j);
}

/* A refusal names the failed check in plain words: no source file, no
 * ".c:", no expression, in the body or the challenge; and the reply
 * carries the request id that keys the server's log (docs/OPERATIONS.md). */
static void assert_no_internals(struct ehr_client *c, const char *body)
{
	static const char *bad[] = { ".c:", "jose.c", "strcmp", "!= NULL", "==", "/work/", "auth/" };
	char www[512] = "", rid[64] = "";

	CU_ASSERT(ehr_client_response_header(c, "WWW-Authenticate", www, sizeof(www)) == 0);
	CU_ASSERT(strncmp(www, "DPoP", 4) == 0);
	CU_ASSERT_PTR_NULL(strstr(www, "error_description=\"\""));
	for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++) {
		CU_ASSERT_PTR_NULL(strstr(body, bad[i]));
		CU_ASSERT_PTR_NULL(strstr(www, bad[i]));
	}
	CU_ASSERT(ehr_client_response_header(c, "X-Request-Id", rid, sizeof(rid)) == 0);
	CU_ASSERT_EQUAL(strlen(rid), 16);
	CU_ASSERT_EQUAL(strspn(rid, "0123456789abcdef"), 16);
}

/* Send with explicit headers (no automatic DPoP); body text may be NULL. */
static long send_raw(struct ehr_client *c, const char *method, const char *path, const char *authz,
                     const char *dpop, const char *body, struct ehr_buf *resp)
{
	struct ehr_buf h1 = EHR_BUF_INIT(8192), h2 = EHR_BUF_INIT(8192);
	const char *hs[4] = { NULL, NULL, NULL, NULL };
	size_t n = 0;
	long status = 0;

	if (authz) {
		ehr_buf_printf(&h1, "Authorization: %s", authz);
		hs[n++] = ehr_buf_cstr(&h1);
	}
	if (dpop) {
		ehr_buf_printf(&h2, "DPoP: %s", dpop);
		hs[n++] = ehr_buf_cstr(&h2);
	}
	if (body)
		hs[n++] = "Content-Type: application/json";
	ehr_buf_reset(resp);
	if (ehr_client_request(c, &status, resp, method, path, hs, body, body ? strlen(body) : 0, NULL,
	                       NULL) < 0)
		fprintf(stderr, "\n  transport: %s\n", ehr_error_msg());
	ehr_buf_free(&h1);
	ehr_buf_free(&h2);
	return status;
}

/* Send through the client's own credentials (a patient profile signs a
 * DPoP proof); body text may be NULL. Returns the status. */
static long send_auto(struct ehr_client *c, const char *method, const char *path, const char *body,
                      struct ehr_buf *resp)
{
	long status = 0;

	ehr_buf_reset(resp);
	if (ehr_client_request(c, &status, resp, method, path, NULL, body, body ? strlen(body) : 0, NULL,
	                       NULL) < 0)
		fprintf(stderr, "\n  transport: %s\n", ehr_error_msg());
	return status;
}

/* -------------------------------------------------------- positive flows */

static void test_server_register_whoami_renew(void)
{
	char tok[128], out[4096];

	EHR_ASSERT_OK(issue_token(tok, "server", "1h"));
	CU_ASSERT_EQUAL(strlen(tok), 43);
	CU_ASSERT_EQUAL(ehrctl(out, sizeof(out), srvdir, "register", "--url", gw.base_url, "--token", tok,
	                       "--ca", cafile, "--out", srvdir, NULL),
	                0);
	CU_ASSERT_EQUAL(ehrctl(out, sizeof(out), srvdir, "whoami", NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	                       NULL, NULL),
	                0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"role\": \"server\""));
	CU_ASSERT_EQUAL(ehrctl(out, sizeof(out), srvdir, "renew", NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	                       NULL, NULL),
	                0);
	CU_ASSERT_EQUAL(ehrctl(out, sizeof(out), srvdir, "whoami", NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	                       NULL, NULL),
	                0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"role\": \"server\""));
	{
		struct stat st;
		char p[400];
		snprintf(p, sizeof(p), "%s/key.pem", srvdir);
		CU_ASSERT(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
	}
}

static void test_auditor_register_whoami(void)
{
	char tok[128], out[4096];

	EHR_ASSERT_OK(issue_token(tok, "auditor", "1h"));
	CU_ASSERT_EQUAL(ehrctl(out, sizeof(out), auddir, "register", "--url", gw.base_url, "--token", tok,
	                       "--ca", cafile, "--out", auddir, NULL),
	                0);
	CU_ASSERT_EQUAL(ehrctl(out, sizeof(out), auddir, "whoami", NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	                       NULL, NULL),
	                0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"role\": \"auditor\""));
}

static void test_patient_enrol_login_whoami(void)
{
	char out[8192], code[128];
	json_t *j = NULL;
	struct stat st;
	char p[400];

	CU_ASSERT_EQUAL_FATAL(ehrctl(out, sizeof(out), srvdir, "patient", "create", "--external-id",
	                             "MRN-555-John", NULL, NULL, NULL, NULL, NULL, NULL),
	                      0);
	CU_ASSERT_FATAL(ehr_json_parse(&j, out, strlen(out), 65536, 4) == 0);
	snprintf(pid, sizeof(pid), "%s", json_string_value(json_object_get(j, "patient_id")));
	snprintf(code, sizeof(code), "%s", json_string_value(json_object_get(j, "enrolment_code")));
	json_decref(j);
	CU_ASSERT_PTR_NULL(strstr(pid, "MRN"));
	CU_ASSERT_EQUAL(ehrctl(out, sizeof(out), patdir, "patient", "enroll", "--url", gw.base_url, "--code",
	                       code, "--patient", pid, "--ca", cafile),
	                0);
	CU_ASSERT_EQUAL(ehrctl(out, sizeof(out), patdir, "patient", "login", NULL, NULL, NULL, NULL, NULL,
	                       NULL, NULL, NULL),
	                0);
	snprintf(p, sizeof(p), "%s/device.key", patdir);
	CU_ASSERT(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
	snprintf(p, sizeof(p), "%s/token.json", patdir);
	CU_ASSERT(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
	CU_ASSERT_EQUAL(ehrctl(out, sizeof(out), patdir, "whoami", NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	                       NULL, NULL),
	                0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"role\": \"patient\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, pid));
	/* the second call signs a new proof: it must not be taken for a replay */
	CU_ASSERT_EQUAL(ehrctl(out, sizeof(out), patdir, "whoami", NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	                       NULL, NULL),
	                0);
}

/* ------------------------------------------------------------ registration */

static void test_register_token_reused_or_expired(void)
{
	char tok[128];
	struct ehr_client *c = plain_client();
	struct ehr_buf csr = EHR_BUF_INIT(8192), resp = EHR_BUF_INIT(1 << 20), body = EHR_BUF_INIT(16384);
	EVP_PKEY *k = NULL;
	json_t *b;
	long st;

	EHR_ASSERT_OK(issue_token(tok, "server", "1h"));
	EHR_ASSERT_OK(auth_key_generate_p256(&k));
	EHR_ASSERT_OK(auth_csr_create(&csr, k, "x"));
	b = json_pack("{s:s,s:s}", "csr", ehr_buf_cstr(&csr), "token", tok);
	ehr_json_dump(&body, b);
	st = send_raw(c, "POST", "/v1/register", NULL, NULL, ehr_buf_cstr(&body), &resp);
	CU_ASSERT_EQUAL(st, 201);
	/* reused */
	st = send_raw(c, "POST", "/v1/register", NULL, NULL, ehr_buf_cstr(&body), &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));
	/* expired (--ttl 1s) */
	json_decref(b);
	EHR_ASSERT_OK(issue_token(tok, "server", "1s"));
	sleep(2);
	b = json_pack("{s:s,s:s}", "csr", ehr_buf_cstr(&csr), "token", tok);
	ehr_buf_reset(&body);
	ehr_json_dump(&body, b);
	st = send_raw(c, "POST", "/v1/register", NULL, NULL, ehr_buf_cstr(&body), &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));
	/* a non-P-256 or broken CSR is a 400 */
	st = send_raw(c, "POST", "/v1/register", NULL, NULL,
	              "{\"csr\":\"junk\",\"token\":\"AAAAAAAAAAAAAAAAAAAA\"}", &resp);
	assert_error(st, 400, ehr_buf_cstr(&resp));
	json_decref(b);
	EVP_PKEY_free(k);
	ehr_buf_free(&csr);
	ehr_buf_free(&resp);
	ehr_buf_free(&body);
	ehr_client_free(c);
}

/* ---------------------------------------------------------------- mTLS */

static void path_of(char *out, size_t cap, const char *dir, const char *f)
{
	snprintf(out, cap, "%s/%s", dir, f);
}

static void test_server_route_without_certificate(void)
{
	struct ehr_client *c = plain_client();
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	long st;

	st = send_raw(c, "POST", "/v1/patients", NULL, NULL, "{\"external_id\":\"x\"}", &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));
	st = send_raw(c, "POST", "/v1/register/renew", NULL, NULL, "{\"csr\":\"x\"}", &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));
	st = send_raw(c, "GET", "/v1/whoami", NULL, NULL, NULL, &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));
	ehr_buf_free(&resp);
	ehr_client_free(c);
}

static void test_wrong_role(void)
{
	char cert[400], key[400];
	struct ehr_client *c;
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	long st;

	path_of(cert, sizeof(cert), auddir, "cert.pem");
	path_of(key, sizeof(key), auddir, "key.pem");
	c = cert_client(cert, key);
	st = send_raw(c, "POST", "/v1/patients", NULL, NULL, "{\"external_id\":\"x\"}", &resp);
	assert_error(st, 403, ehr_buf_cstr(&resp));
	/* the auditor is otherwise authenticated */
	st = send_raw(c, "GET", "/v1/whoami", NULL, NULL, NULL, &resp);
	CU_ASSERT_EQUAL(st, 200);
	ehr_buf_free(&resp);
	ehr_client_free(c);
}

/* The other kind of credential, valid, is 403 forbidden ("authenticated,
 * but the route is not open to this role", docs/PROTOCOL.md §1.4): a
 * patient's DPoP token on a certificate route, a certificate on a
 * patient-only route. Both were 401. No credential at all stays 401. */
static void test_other_kind_of_credential(void)
{
	static const char *const patient_only[] = { "/v1/me/contracts", "/v1/me/access-log" };
	static const char *const cert_only[] = { "/v1/audit/entries", "/v1/audit/entries?limit=1" };
	char cert[400], key[400];
	struct ehr_client *pat = NULL, *srv, *anon = plain_client();
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	long st;

	path_of(cert, sizeof(cert), srvdir, "cert.pem");
	path_of(key, sizeof(key), srvdir, "key.pem");
	srv = cert_client(cert, key);
	EHR_ASSERT_OK(ehr_client_open_profile(&pat, patdir));
	CU_ASSERT_FATAL(pat != NULL && srv != NULL && anon != NULL);
	for (size_t i = 0; i < EHR_ARRAY_LEN(patient_only); i++) {
		st = send_raw(srv, "GET", patient_only[i], NULL, NULL, NULL, &resp);
		assert_error(st, 403, ehr_buf_cstr(&resp));
		CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&resp), "\"forbidden\""));
		st = send_raw(anon, "GET", patient_only[i], NULL, NULL, NULL, &resp);
		assert_error(st, 401, ehr_buf_cstr(&resp));
	}
	for (size_t i = 0; i < EHR_ARRAY_LEN(cert_only); i++) {
		st = send_auto(pat, "GET", cert_only[i], NULL, &resp);
		assert_error(st, 403, ehr_buf_cstr(&resp));
		CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&resp), "\"forbidden\""));
		st = send_raw(anon, "GET", cert_only[i], NULL, NULL, NULL, &resp);
		assert_error(st, 401, ehr_buf_cstr(&resp));
	}
	/* a patient token on a server route with a body */
	st = send_auto(pat, "POST", "/v1/patients", "{\"external_id\":\"x\"}", &resp);
	assert_error(st, 403, ehr_buf_cstr(&resp));
	/* an invalid token on a certificate route is the route's 401 */
	st = send_raw(anon, "GET", "/v1/audit/entries", "DPoP not-a-token", "x.y.z", NULL, &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));
	/* the refusals are ledger events with reason wrong_role (failure
	 * events are rate-limited per peer, so at least the first is there) */
	CU_ASSERT(
	        ehr_testdb_scalar(gw.db.super_ci,
	                          "SELECT count(*) FROM ledger_entries WHERE type IN ('auth.mtls', "
	                          "'auth.dpop') AND actor NOT IN ('anonymous') AND position('wrong_role' in "
	                          "encode(entry, 'escape')) > 0") >= 1);
	ehr_buf_free(&resp);
	ehr_client_free(pat);
	ehr_client_free(srv);
	ehr_client_free(anon);
}

/* `ehrctl --dir DIR ARGS` through the shell: exit status, stdout and
 * stderr together in out. */
static int ctl_sh(char *out, size_t cap, const char *dir, const char *args)
{
	char cmd[2048];
	FILE *f;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' --dir '%s' %s 2>&1", EHRCTL_BIN, dir, args);
	if ((f = popen(cmd, "r")) == NULL)
		return -1;
	n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ehrctl names the gateway's answer (status and error code) and exits 1
 * for a refusal; it said "request failed" and the JSON body, and exited 1
 * for everything. A gateway that cannot be reached is 3. */
static void test_ehrctl_errors_and_exit_status(void)
{
	char out[8192], args[2048];

	/* a patient on an auditor route: 403 forbidden */
	CU_ASSERT_EQUAL(ctl_sh(out, sizeof(out), patdir, "audit query --limit 1"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ehrctl: 403 forbidden: "));
	/* an auditor's malformed filter: 400 invalid_request, named */
	CU_ASSERT_EQUAL(ctl_sh(out, sizeof(out), auddir, "audit query --actor .."), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ehrctl: 400 invalid_request: actor"));
	/* a server without a contract, through the profile functions too */
	CU_ASSERT_EQUAL(ctl_sh(out, sizeof(out), srvdir, "contract list"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "403 forbidden"));
	CU_ASSERT_EQUAL(ctl_sh(out, sizeof(out), auddir, "patient create --external-id MRN-9"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ehrctl: 403 forbidden: "));
	snprintf(args, sizeof(args),
	         "register --url %s --token AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA --ca %s --out %s/x",
	         gw.base_url, cafile, tmp);
	CU_ASSERT_EQUAL(ctl_sh(out, sizeof(out), srvdir, args), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ehrctl register: 401 unauthenticated: "));
	/* success is 0 */
	CU_ASSERT_EQUAL(ctl_sh(out, sizeof(out), auddir, "audit query --limit 1"), 0);
	/* nothing listens there: 3 */
	snprintf(args, sizeof(args), "register --url https://127.0.0.1:1 --token x --ca %s --out %s/y",
	         cafile, tmp);
	CU_ASSERT_EQUAL(ctl_sh(out, sizeof(out), srvdir, args), 3);
}

/* Every route checks its query parameters and ids alike, after
 * authentication: an unknown or repeated parameter, or an id outside its
 * documented format, is 400 invalid_request naming it. Before, the audit
 * query ignored ?foo=1 (all entries) and limit=1&limit=1000, and the record
 * list answered 200 for the patient id "..". */
static void test_strict_ids_and_queries(void)
{
	static const struct {
		const char *path;
		const char *says;
	} aud_cases[] = {
		{ "/v1/audit/entries?foo=1", "'foo'" },
		{ "/v1/audit/entries?limit=1&limit=1000", "'limit' is repeated" },
		{ "/v1/audit/entries?tpye=auth.token", "'tpye'" },
		{ "/v1/audit/entries?actor=..", "actor" },
		{ "/v1/audit/entries?subject=%2e", "subject" },
		{ "/v1/audit/stream?since=0&foo=1", "'foo'" },
		{ "/v1/ledger/checkpoint?sise=1", "'sise'" },
		{ "/v1/ledger/proof/inclusion?index=0&size=1&index=0", "'index' is repeated" },
	};
	static const char *const srv_bad_ids[] = {
		"/v1/patients/%2e%2e/records",
		"/v1/patients/%2e/records",
		"/v1/patients/0123abcd/records",
		"/v1/patients/pt-short/records",
		"/v1/records/%2e%2e",
		"/v1/records/ABCDEF0123456789ABCDEF0123456789",
	};
	char cert[400], key[400], path[512];
	struct ehr_client *aud, *srv, *pat = NULL;
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	long st;

	path_of(cert, sizeof(cert), auddir, "cert.pem");
	path_of(key, sizeof(key), auddir, "key.pem");
	aud = cert_client(cert, key);
	path_of(cert, sizeof(cert), srvdir, "cert.pem");
	path_of(key, sizeof(key), srvdir, "key.pem");
	srv = cert_client(cert, key);
	EHR_ASSERT_OK(ehr_client_open_profile(&pat, patdir));
	CU_ASSERT_FATAL(aud != NULL && srv != NULL && pat != NULL);
	for (size_t i = 0; i < EHR_ARRAY_LEN(aud_cases); i++) {
		st = send_raw(aud, "GET", aud_cases[i].path, NULL, NULL, NULL, &resp);
		assert_error(st, 400, ehr_buf_cstr(&resp));
		CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&resp), "invalid_request"));
		if (strstr(ehr_buf_cstr(&resp), aud_cases[i].says) == NULL)
			fprintf(stderr, "\n  %s: %s\n", aud_cases[i].path, ehr_buf_cstr(&resp));
		CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&resp), aud_cases[i].says));
	}
	/* well-formed filters still work */
	snprintf(path, sizeof(path), "/v1/audit/entries?limit=1&subject=%s&actor=anonymous", pid);
	st = send_raw(aud, "GET", path, NULL, NULL, NULL, &resp);
	CU_ASSERT_EQUAL(st, 200);
	for (size_t i = 0; i < EHR_ARRAY_LEN(srv_bad_ids); i++) {
		st = send_raw(srv, "GET", srv_bad_ids[i], NULL, NULL, NULL, &resp);
		if (st != 400)
			fprintf(stderr, "\n  %s: %ld %s\n", srv_bad_ids[i], st, ehr_buf_cstr(&resp));
		assert_error(st, 400, ehr_buf_cstr(&resp));
		CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&resp), "invalid_request"));
	}
	/* the patient's own list, and the same refusals for a patient */
	snprintf(path, sizeof(path), "/v1/patients/%s/records?limit=5", pid);
	st = send_auto(pat, "GET", path, NULL, &resp);
	CU_ASSERT_EQUAL(st, 200);
	snprintf(path, sizeof(path), "/v1/patients/%s/records?limit=5&offset=3", pid);
	st = send_auto(pat, "GET", path, NULL, &resp);
	assert_error(st, 400, ehr_buf_cstr(&resp));
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&resp), "'offset'"));
	st = send_auto(pat, "GET", "/v1/patients/%2e%2e/records", NULL, &resp);
	assert_error(st, 400, ehr_buf_cstr(&resp));
	st = send_auto(pat, "POST", "/v1/me/contracts/%2e%2e/revoke", "{}", &resp);
	assert_error(st, 400, ehr_buf_cstr(&resp));
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&resp), "contract id"));
	ehr_buf_free(&resp);
	ehr_client_free(aud);
	ehr_client_free(srv);
	ehr_client_free(pat);
}

static int write_pair(const char *dir, const char *name, X509 *cert, EVP_PKEY *key, char *cpath, char *kpath)
{
	struct ehr_buf b = EHR_BUF_INIT(65536);

	snprintf(cpath, 400, "%s/%s.pem", dir, name);
	snprintf(kpath, 400, "%s/%s.key", dir, name);
	GUARD(auth_cert_pem(&b, cert));
	GUARD(ehr_file_write_atomic(cpath, b.data, b.len, 0644, false));
	ehr_buf_free(&b);
	unlink(kpath);
	return auth_key_save_private(kpath, key);
}

static void test_foreign_ca_and_expired_certificate(void)
{
	X509 *fca = NULL, *fcert = NULL, *regca = NULL, *old = NULL;
	EVP_PKEY *fkey = NULL, *k = NULL, *regkey = NULL;
	char cpath[400], kpath[400], p[400], serial[65], id[128], q[1024];
	struct ehr_client *c;
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	struct auth_cert_params cp;
	long st;

	/* a look-alike certificate (same id, same role) from a CA we never trusted */
	EHR_ASSERT_OK(authtest_make_ca(&fca, &fkey, "ehrgate dev registration CA"));
	EHR_ASSERT_OK(auth_key_generate_p256(&k));
	{
		X509 *mine = NULL;
		char role[16];
		path_of(p, sizeof(p), srvdir, "cert.pem");
		EHR_ASSERT_OK(auth_cert_load_file(&mine, p));
		EHR_ASSERT_OK(auth_cert_subject(id, sizeof(id), role, sizeof(role), mine));
		X509_free(mine);
	}
	cp.subject_id = id;
	cp.role = "server";
	cp.not_before = time(NULL) - 60;
	cp.not_after = time(NULL) + 86400;
	EHR_ASSERT_OK(auth_cert_issue(&fcert, k, fca, fkey, &cp));
	EHR_ASSERT_OK(write_pair(tmp, "foreign", fcert, k, cpath, kpath));
	c = cert_client(cpath, kpath);
	st = send_raw(c, "POST", "/v1/patients", NULL, NULL, "{\"external_id\":\"x\"}", &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));
	ehr_client_free(c);

	/* an expired certificate from the real registration CA, registered in the DB */
	path_of(p, sizeof(p), state, "regca.pem");
	EHR_ASSERT_OK(auth_cert_load_file(&regca, p));
	path_of(p, sizeof(p), state, "regca.key");
	EHR_ASSERT_OK(auth_key_load_private(&regkey, p));
	cp.not_before = time(NULL) - 200 * 86400;
	cp.not_after = time(NULL) - 100 * 86400;
	EHR_ASSERT_OK(auth_cert_issue(&old, k, regca, regkey, &cp));
	EHR_ASSERT_OK(auth_cert_serial_hex(serial, old));
	snprintf(q, sizeof(q),
	         "INSERT INTO auth_certs (serial, principal_id, role, not_before, not_after) VALUES ('%s', "
	         "'%s', "
	         "'server', now() - interval '200 days', now() + interval '1 day')",
	         serial, id);
	CU_ASSERT_EQUAL(ehr_testdb_exec(gw.db.super_ci, q),
	                0); /* the DB even thinks it is valid: the TLS check decides */
	EHR_ASSERT_OK(write_pair(tmp, "expired", old, k, cpath, kpath));
	c = cert_client(cpath, kpath);
	st = send_raw(c, "POST", "/v1/patients", NULL, NULL, "{\"external_id\":\"x\"}", &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));
	ehr_client_free(c);
	X509_free(fca);
	X509_free(fcert);
	X509_free(regca);
	X509_free(old);
	EVP_PKEY_free(fkey);
	EVP_PKEY_free(k);
	EVP_PKEY_free(regkey);
	ehr_buf_free(&resp);
}

/* `ehrgate admin revoke` bites on the next request of an open connection. */
static void test_revoked_on_open_connection(void)
{
	char tok[128], dir[400], out[1024];
	struct ehr_client *c = NULL;
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	const char *revoke[] = { EHRGATE_BIN, "admin", "revoke", "-c", admin_cfg, NULL, NULL };
	json_t *info = NULL;
	long st;

	snprintf(dir, sizeof(dir), "%s/server2", tmp);
	EHR_ASSERT_OK(issue_token(tok, "server", "1h"));
	EHR_ASSERT_OK(ehr_client_register(gw.base_url, cafile, tok, dir, &info));
	EHR_ASSERT_OK(ehr_client_open_profile(&c, dir));
	CU_ASSERT_FATAL(c != NULL);
	st = send_raw(c, "GET", "/v1/whoami", NULL, NULL, NULL, &resp);
	CU_ASSERT_EQUAL(st, 200);
	st = send_raw(c, "GET", "/v1/whoami", NULL, NULL, NULL, &resp);
	CU_ASSERT_EQUAL(st, 200);
	CU_ASSERT_EQUAL(ehr_client_last_connects(c), 0); /* kept alive */
	revoke[5] = json_string_value(json_object_get(info, "id"));
	CU_ASSERT_EQUAL(ehr_test_run(out, sizeof(out), revoke), 0);
	st = send_raw(c, "GET", "/v1/whoami", NULL, NULL, NULL, &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));
	CU_ASSERT_EQUAL(ehr_client_last_connects(c), 0); /* same connection, refused anyway */
	json_decref(info);
	ehr_client_free(c);
	ehr_buf_free(&resp);
}

/* ---------------------------------------------------------- patients */

static EVP_PKEY *device;
static char token[AUTH_MAX_JWS];

static void load_patient(void)
{
	char p[400];
	struct ehr_buf tb = EHR_BUF_INIT(65536);
	json_t *j = NULL;

	if (device == NULL) {
		path_of(p, sizeof(p), patdir, "device.key");
		auth_key_load_private(&device, p);
	}
	/* a fresh login through the library */
	{
		struct ehr_client *c = plain_client();
		json_t *t = NULL;
		if (ehr_client_login_with(c, pid, device, &t) == 0)
			snprintf(token, sizeof(token), "%s",
			         json_string_value(json_object_get(t, "access_token")));
		json_decref(t);
		ehr_client_free(c);
	}
	json_decref(j);
	ehr_buf_free(&tb);
}

static long dpop_call(struct ehr_client *c, const char *tok, EVP_PKEY *key, const char *htm, const char *path,
                      int64_t iat, struct ehr_buf *resp)
{
	struct ehr_buf proof = EHR_BUF_INIT(4096), authz = EHR_BUF_INIT(8192), url = EHR_BUF_INIT(512);
	long st;

	ehr_buf_printf(&url, "%s%s", gw.base_url, path);
	auth_dpop_create(&proof, key, htm, ehr_buf_cstr(&url), tok, iat);
	ehr_buf_printf(&authz, "DPoP %s", tok);
	st = send_raw(c, "GET", "/v1/whoami", ehr_buf_cstr(&authz), ehr_buf_cstr(&proof), NULL, resp);
	ehr_buf_free(&proof);
	ehr_buf_free(&authz);
	ehr_buf_free(&url);
	return st;
}

static void test_dpop_negatives(void)
{
	struct ehr_client *c = plain_client();
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20), proof = EHR_BUF_INIT(4096), authz = EHR_BUF_INIT(8192),
	               url = EHR_BUF_INIT(512);
	char www[512];
	EVP_PKEY *other = NULL;
	long st;

	load_patient();
	CU_ASSERT_FATAL(device != NULL && token[0] != '\0');
	/* control: a correct call passes */
	CU_ASSERT_EQUAL(dpop_call(c, token, device, "GET", "/v1/whoami", time(NULL), &resp), 200);
	/* replayed jti: the very same proof twice */
	ehr_buf_printf(&url, "%s/v1/whoami", gw.base_url);
	EHR_ASSERT_OK(auth_dpop_create(&proof, device, "GET", ehr_buf_cstr(&url), token, time(NULL)));
	ehr_buf_printf(&authz, "DPoP %s", token);
	st = send_raw(c, "GET", "/v1/whoami", ehr_buf_cstr(&authz), ehr_buf_cstr(&proof), NULL, &resp);
	CU_ASSERT_EQUAL(st, 200);
	st = send_raw(c, "GET", "/v1/whoami", ehr_buf_cstr(&authz), ehr_buf_cstr(&proof), NULL, &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));
	CU_ASSERT(ehr_client_response_header(c, "WWW-Authenticate", www, sizeof(www)) == 0 &&
	          strncmp(www, "DPoP", 4) == 0);
	/* wrong htm, wrong htu, stale iat */
	assert_error(dpop_call(c, token, device, "POST", "/v1/whoami", time(NULL), &resp), 401,
	             ehr_buf_cstr(&resp));
	assert_error(dpop_call(c, token, device, "GET", "/v1/patients", time(NULL), &resp), 401,
	             ehr_buf_cstr(&resp));
	assert_error(dpop_call(c, token, device, "GET", "/v1/whoami", time(NULL) - 120, &resp), 401,
	             ehr_buf_cstr(&resp));
	/* a proof by a different key than the token is bound to */
	EHR_ASSERT_OK(auth_key_generate_p256(&other));
	assert_error(dpop_call(c, token, other, "GET", "/v1/whoami", time(NULL), &resp), 401,
	             ehr_buf_cstr(&resp));
	/* a token without its proof */
	st = send_raw(c, "GET", "/v1/whoami", ehr_buf_cstr(&authz), NULL, NULL, &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));
	EVP_PKEY_free(other);
	ehr_buf_free(&resp);
	ehr_buf_free(&proof);
	ehr_buf_free(&authz);
	ehr_buf_free(&url);
	ehr_client_free(c);
}

static void test_forged_tokens(void)
{
	struct ehr_client *c = plain_client();
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20), t = EHR_BUF_INIT(4096), pem = EHR_BUF_INIT(4096);
	EVP_PKEY *tk = NULL, *tpub = NULL;
	char p[400], kid[EHR_JKT_LEN + 1], jkt[EHR_JKT_LEN + 1], pl[1024];
	struct auth_token_params tp;
	int64_t now = time(NULL);

	load_patient();
	CU_ASSERT_FATAL(device != NULL);
	path_of(p, sizeof(p), state, "token.key");
	EHR_ASSERT_OK(auth_key_load_private(&tk, p));
	path_of(p, sizeof(p), state, "token.pub");
	EHR_ASSERT_OK(auth_key_load_public(&tpub, p));
	EHR_ASSERT_OK(ehr_jwk_thumbprint(kid, tk));
	EHR_ASSERT_OK(ehr_jwk_thumbprint(jkt, device));
	tp.key = tk;
	tp.kid = kid;
	tp.iss = "urn:ehrgate";
	tp.aud = "urn:ehrgate:api";
	tp.skew = 5;
	/* control: a token we mint with the gateway's own key and parameters passes */
	tp.now = now;
	EHR_ASSERT_OK(auth_token_issue(&t, &tp, pid, jkt, 600));
	CU_ASSERT_EQUAL(dpop_call(c, ehr_buf_cstr(&t), device, "GET", "/v1/whoami", now, &resp), 200);
	/* expired */
	ehr_buf_reset(&t);
	tp.now = now - 2000;
	EHR_ASSERT_OK(auth_token_issue(&t, &tp, pid, jkt, 900));
	assert_error(dpop_call(c, ehr_buf_cstr(&t), device, "GET", "/v1/whoami", now, &resp), 401,
	             ehr_buf_cstr(&resp));
	/* tampered signature */
	ehr_buf_reset(&t);
	tp.now = now;
	EHR_ASSERT_OK(auth_token_issue(&t, &tp, pid, jkt, 600));
	authtest_tamper_last(&t);
	assert_error(dpop_call(c, ehr_buf_cstr(&t), device, "GET", "/v1/whoami", now, &resp), 401,
	             ehr_buf_cstr(&resp));
	/* HS256 keyed with the public key (token.pub), and alg none */
	snprintf(pl, sizeof(pl),
	         "{\"iss\":\"urn:ehrgate\",\"aud\":\"urn:ehrgate:api\",\"sub\":\"%s\",\"role\":\"patient\","
	         "\"cnf\":{\"jkt\":\"%s\"},\"jti\":\"forged0123456789\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%"
	         "lld}",
	         pid, jkt, (long long)now, (long long)now, (long long)now + 600);
	EHR_ASSERT_OK(auth_key_public_pem(&pem, tpub));
	ehr_buf_reset(&t);
	EHR_ASSERT_OK(authtest_libjwt_token(&t, "HS256", pl, kid, pem.data, pem.len));
	assert_error(dpop_call(c, ehr_buf_cstr(&t), device, "GET", "/v1/whoami", now, &resp), 401,
	             ehr_buf_cstr(&resp));
	assert_no_internals(c, ehr_buf_cstr(&resp));
	ehr_buf_reset(&t);
	EHR_ASSERT_OK(authtest_libjwt_token(&t, "none", pl, kid, NULL, 0));
	assert_error(dpop_call(c, ehr_buf_cstr(&t), device, "GET", "/v1/whoami", now, &resp), 401,
	             ehr_buf_cstr(&resp));
	EVP_PKEY_free(tk);
	EVP_PKEY_free(tpub);
	ehr_buf_free(&resp);
	ehr_buf_free(&t);
	ehr_buf_free(&pem);
	ehr_client_free(c);
}

static void test_nonce_replay_and_expired_code(void)
{
	struct ehr_client *c = plain_client();
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20), msg = EHR_BUF_INIT(1024), sig = EHR_BUF_INIT(256),
	               body = EHR_BUF_INIT(4096);
	json_t *ch = NULL, *b = NULL;
	char ts[32], q[512], out[8192];
	long st;

	load_patient();
	snprintf(q, sizeof(q), "{\"patient_id\":\"%s\"}", pid);
	st = send_raw(c, "POST", "/v1/auth/challenge", NULL, NULL, q, &resp);
	CU_ASSERT_EQUAL_FATAL(st, 200);
	CU_ASSERT_FATAL(ehr_json_parse(&ch, resp.data, resp.len, 65536, 4) == 0);
	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	auth_login_message(&msg, json_string_value(json_object_get(ch, "nonce")), ts, pid);
	ehr_es256_sign_b64url(&sig, device, msg.data, msg.len);
	b = json_pack("{s:s,s:s,s:s,s:s}", "patient_id", pid, "nonce",
	              json_string_value(json_object_get(ch, "nonce")), "ts", ts, "signature",
	              ehr_buf_cstr(&sig));
	ehr_json_dump(&body, b);
	{
		/* RFC 6749 §5.1: the token reply is not cached; it said
		 * Cache-Control: no-store twice (the route's and the core's). */
		const char *hs[] = { "Content-Type: application/json", NULL };
		struct gwp_req rq = { .method = "POST",
			              .path = "/v1/auth/token",
			              .body = body.data,
			              .body_len = body.len,
			              .headers = hs };
		struct gwp_resp res;
		size_t n = 0;
		EHR_ASSERT_OK(gwp_request(&gw, &rq, &res));
		CU_ASSERT_EQUAL(res.status, 200);
		for (const char *h = res.headers; h && (h = strcasestr(h, "\ncache-control:")) != NULL; h++)
			n++;
		CU_ASSERT_EQUAL(n, 1);
		CU_ASSERT_PTR_NOT_NULL(strcasestr(res.headers, "\ncache-control: no-store\r\n"));
		gwp_resp_free(&res);
	}
	st = send_raw(c, "POST", "/v1/auth/token", NULL, NULL, ehr_buf_cstr(&body), &resp);
	assert_error(st, 401, ehr_buf_cstr(&resp));

	/* an expired enrolment code */
	CU_ASSERT_EQUAL_FATAL(ehrctl(out, sizeof(out), srvdir, "patient", "create", "--external-id",
	                             "MRN-556", NULL, NULL, NULL, NULL, NULL, NULL),
	                      0);
	{
		json_t *j = NULL;
		char dir[400];
		CU_ASSERT_FATAL(ehr_json_parse(&j, out, strlen(out), 65536, 4) == 0);
		CU_ASSERT_EQUAL(ehr_testdb_exec(gw.db.super_ci,
		                                "UPDATE auth_enrol_codes SET expires_at = now() - interval "
		                                "'1 second' WHERE used_at IS NULL"),
		                0);
		snprintf(dir, sizeof(dir), "%s/patient2", tmp);
		/* ehrctl reports the refusal... */
		CU_ASSERT_NOT_EQUAL(ehrctl(out, sizeof(out), dir, "patient", "enroll", "--url", gw.base_url,
		                           "--code", json_string_value(json_object_get(j, "enrolment_code")),
		                           "--patient", json_string_value(json_object_get(j, "patient_id")),
		                           "--ca", cafile),
		                    0);
		/* ...which is a 401 with a JSON error on the wire */
		{
			EVP_PKEY *k = NULL;
			json_t *jwk = NULL, *eb;
			char jkt[EHR_JKT_LEN + 1];
			const char *code = json_string_value(json_object_get(j, "enrolment_code"));
			auth_key_generate_p256(&k);
			ehr_jwk_from_key(&jwk, k);
			ehr_jwk_thumbprint(jkt, k);
			ehr_buf_reset(&msg);
			ehr_buf_reset(&sig);
			auth_enroll_message(&msg, code, jkt);
			ehr_es256_sign_b64url(&sig, k, msg.data, msg.len);
			eb = json_pack("{s:s,s:s,s:O,s:s}", "patient_id",
			               json_string_value(json_object_get(j, "patient_id")), "code", code,
			               "jwk", jwk, "signature", ehr_buf_cstr(&sig));
			ehr_buf_reset(&body);
			ehr_json_dump(&body, eb);
			st = send_raw(c, "POST", "/v1/enroll", NULL, NULL, ehr_buf_cstr(&body), &resp);
			assert_error(st, 401, ehr_buf_cstr(&resp));
			json_decref(eb);
			json_decref(jwk);
			EVP_PKEY_free(k);
		}
		json_decref(j);
	}
	json_decref(ch);
	json_decref(b);
	ehr_buf_free(&resp);
	ehr_buf_free(&msg);
	ehr_buf_free(&sig);
	ehr_buf_free(&body);
	ehr_client_free(c);
}

/* ---------------------------------------------------- TLS properties */

/* Connect with a client context; returns the SSL (handshake done) or NULL. */
static SSL *tls_connect(SSL_CTX *ctx, int *fd_out)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
		                 .sin_port = htons((uint16_t)gw.port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	SSL *ssl;

	*fd_out = fd;
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		return NULL;
	ssl = SSL_new(ctx);
	X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		ERR_clear_error();
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/* Forward secrecy: every key exchange is ephemeral (EC)DHE; static-RSA
 * suites are refused; sessions never allow 0-RTT early data. */
static void test_forward_secrecy(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	int fd = -1;
	char buf[512];

	SSL_CTX_load_verify_locations(ctx, cafile, NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ssl = tls_connect(ctx, &fd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(SSL_version(ssl), TLS1_3_VERSION);
	CU_ASSERT(SSL_get_negotiated_group(ssl) == NID_X25519 ||
	          SSL_get_negotiated_group(ssl) == NID_X9_62_prime256v1 ||
	          SSL_get_negotiated_group(ssl) == NID_secp384r1);
	/* read the NewSessionTicket: its session must not permit early data */
	SSL_write(ssl, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 61);
	while (SSL_read(ssl, buf, sizeof(buf)) > 0)
		;
	CU_ASSERT_EQUAL(SSL_SESSION_get_max_early_data(SSL_get_session(ssl)), 0);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	ERR_clear_error();

	/* TLS 1.2 offering only static-RSA (non-forward-secret) suites: refused */
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_cipher_list(ctx, "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA:AES256-SHA");
	SSL_CTX_load_verify_locations(ctx, cafile, NULL);
	ssl = tls_connect(ctx, &fd);
	CU_ASSERT_PTR_NULL(ssl);
	if (ssl)
		SSL_free(ssl);
	close(fd);
	/* TLS 1.2 with ECDHE is still fine */
	SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
	ssl = tls_connect(ctx, &fd);
	CU_ASSERT_PTR_NOT_NULL(ssl);
	if (ssl) {
		CU_ASSERT_EQUAL(SSL_version(ssl), TLS1_2_VERSION);
		SSL_free(ssl);
	}
	close(fd);
	SSL_CTX_free(ctx);
	ERR_clear_error();
}

/* MITM: the client pins the gateway CA; a server certificate from any
 * other CA (here: the registration CA) fails the handshake. */
static void test_client_pins_gateway_ca(void)
{
	char wrong[400];
	struct ehr_client_opts o = { .url = gw.base_url };
	struct ehr_client *c = NULL;
	struct ehr_buf resp = EHR_BUF_INIT(65536);
	long st = 0;

	path_of(wrong, sizeof(wrong), state, "regca.pem");
	o.ca_file = wrong;
	EHR_ASSERT_OK(ehr_client_new(&c, &o));
	EHR_ASSERT_ERR(ehr_client_request(c, &st, &resp, "GET", "/healthz", NULL, NULL, 0, NULL, NULL),
	               EHR_ERR_AUTH);
	CU_ASSERT_EQUAL(st, 0);
	ehr_client_free(c);
	/* control: the right CA */
	o.ca_file = cafile;
	EHR_ASSERT_OK(ehr_client_new(&c, &o));
	EHR_ASSERT_OK(ehr_client_request(c, &st, &resp, "GET", "/healthz", NULL, NULL, 0, NULL, NULL));
	CU_ASSERT_EQUAL(st, 200);
	ehr_client_free(c);
	ehr_buf_free(&resp);
}

/* ------------------------------------------------- more than one gateway */

static void test_rate_limit_429(void)
{
	static const char *const sets[] = { "auth.rate_challenge_per_min=1", "auth.rate_burst=2", NULL };
	struct gw_proc g2;
	struct ehr_client_opts o = { .ca_file = cafile };
	struct ehr_client *c = NULL;
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	char q[256];
	long st[3];

	gwp_instance(&g2, &gw);
	CU_ASSERT_FATAL(gwp_start_with(&g2, sets) == 0);
	o.url = g2.base_url;
	EHR_ASSERT_OK(ehr_client_new(&c, &o));
	snprintf(q, sizeof(q), "{\"patient_id\":\"%s\"}", pid);
	for (int i = 0; i < 3; i++)
		st[i] = send_raw(c, "POST", "/v1/auth/challenge", NULL, NULL, q, &resp);
	CU_ASSERT_EQUAL(st[0], 200);
	CU_ASSERT_EQUAL(st[1], 200);
	assert_error(st[2], 429, ehr_buf_cstr(&resp));
	ehr_client_free(c);
	ehr_buf_free(&resp);
	gwp_teardown(&g2);
}

/* Two instances on one database: a proof spent on one is a replay on the
 * other, and a revocation on one is seen by the other at once. */
static void test_two_instances(void)
{
	static const char *const sets[] = { "server.public_url=https://ehrgate.test", NULL };
	struct gw_proc a, b;
	struct ehr_client_opts o = { .ca_file = cafile };
	struct ehr_client *ca = NULL, *cb = NULL;
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20), proof = EHR_BUF_INIT(4096), authz = EHR_BUF_INIT(8192);
	char cert[400], key[400], id[128], role[16], out[1024];
	const char *revoke[] = { EHRGATE_BIN, "admin", "revoke", "-c", admin_cfg, id, NULL };
	X509 *x = NULL;

	load_patient();
	gwp_instance(&a, &gw);
	CU_ASSERT_FATAL(gwp_start_with(&a, sets) == 0);
	gwp_instance(&b, &gw);
	CU_ASSERT_FATAL(gwp_start_with(&b, sets) == 0);
	o.url = a.base_url;
	ehr_client_new(&ca, &o);
	o.url = b.base_url;
	ehr_client_new(&cb, &o);
	EHR_ASSERT_OK(
	        auth_dpop_create(&proof, device, "GET", "https://ehrgate.test/v1/whoami", token, time(NULL)));
	ehr_buf_printf(&authz, "DPoP %s", token);
	CU_ASSERT_EQUAL(
	        send_raw(ca, "GET", "/v1/whoami", ehr_buf_cstr(&authz), ehr_buf_cstr(&proof), NULL, &resp),
	        200);
	assert_error(
	        send_raw(cb, "GET", "/v1/whoami", ehr_buf_cstr(&authz), ehr_buf_cstr(&proof), NULL, &resp),
	        401, ehr_buf_cstr(&resp));
	ehr_client_free(ca);
	ehr_client_free(cb);

	/* revocation: the server's certificate, via instance a's neighbour */
	path_of(cert, sizeof(cert), srvdir, "cert.pem");
	path_of(key, sizeof(key), srvdir, "key.pem");
	EHR_ASSERT_OK(auth_cert_load_file(&x, cert));
	EHR_ASSERT_OK(auth_cert_subject(id, sizeof(id), role, sizeof(role), x));
	o.cert_file = cert;
	o.key_file = key;
	o.url = a.base_url;
	ehr_client_new(&ca, &o);
	o.url = b.base_url;
	ehr_client_new(&cb, &o);
	CU_ASSERT_EQUAL(send_raw(ca, "GET", "/v1/whoami", NULL, NULL, NULL, &resp), 200);
	CU_ASSERT_EQUAL(send_raw(cb, "GET", "/v1/whoami", NULL, NULL, NULL, &resp), 200);
	CU_ASSERT_EQUAL(ehr_test_run(out, sizeof(out), revoke), 0);
	assert_error(send_raw(ca, "GET", "/v1/whoami", NULL, NULL, NULL, &resp), 401, ehr_buf_cstr(&resp));
	assert_error(send_raw(cb, "GET", "/v1/whoami", NULL, NULL, NULL, &resp), 401, ehr_buf_cstr(&resp));
	X509_free(x);
	ehr_client_free(ca);
	ehr_client_free(cb);
	ehr_buf_free(&resp);
	ehr_buf_free(&proof);
	ehr_buf_free(&authz);
	gwp_teardown(&a);
	gwp_teardown(&b);
}

/* The ledger saw the registrations, enrolments, logins and failures, under
 * pseudonyms only. */
static void test_ledger_events(void)
{
	CU_ASSERT(ehr_testdb_scalar(
	                  gw.db.super_ci,
	                  "SELECT count(*) FROM ledger_entries WHERE type = 'auth.register' AND actor "
	                  "LIKE 'srv-%'") >= 2);
	CU_ASSERT(ehr_testdb_scalar(
	                  gw.db.super_ci,
	                  "SELECT count(*) FROM ledger_entries WHERE type = 'auth.register' AND actor "
	                  "LIKE 'aud-%'") >= 1);
	CU_ASSERT(ehr_testdb_scalar(gw.db.super_ci,
	                            "SELECT count(*) FROM ledger_entries WHERE type = 'auth.renew'") >= 1);
	CU_ASSERT(ehr_testdb_scalar(gw.db.super_ci,
	                            "SELECT count(*) FROM ledger_entries WHERE type = 'auth.enroll'") >= 1);
	CU_ASSERT(ehr_testdb_scalar(gw.db.super_ci,
	                            "SELECT count(*) FROM ledger_entries WHERE type = 'auth.token' AND actor "
	                            "LIKE 'pt-%'") >= 2);
	CU_ASSERT(ehr_testdb_scalar(gw.db.super_ci,
	                            "SELECT count(*) FROM ledger_entries WHERE type = 'auth.revoke'") >= 1);
	CU_ASSERT(
	        ehr_testdb_scalar(gw.db.super_ci,
	                          "SELECT count(*) FROM ledger_entries WHERE type = 'auth.dpop' AND actor = "
	                          "'anonymous'") >= 1);
	CU_ASSERT(ehr_testdb_scalar(gw.db.super_ci,
	                            "SELECT count(*) FROM ledger_entries WHERE type = 'auth.mtls'") >= 1);
	/* sampled success events for authenticated requests */
	CU_ASSERT(ehr_testdb_scalar(gw.db.super_ci,
	                            "SELECT count(*) FROM ledger_entries WHERE type = 'auth.mtls' AND actor "
	                            "LIKE 'srv-%'") >= 1);
	CU_ASSERT(ehr_testdb_scalar(gw.db.super_ci,
	                            "SELECT count(*) FROM ledger_entries WHERE type = 'auth.dpop' AND actor "
	                            "LIKE 'pt-%'") >= 1);
	/* no hospital name, no external id */
	CU_ASSERT_EQUAL(ehr_testdb_scalar(gw.db.super_ci,
	                                  "SELECT count(*) FROM ledger_entries WHERE position('Integration "
	                                  "Test Hospital' in encode(entry, 'escape')) > 0 OR "
	                                  "position('MRN-' in encode(entry, 'escape')) > 0"),
	                0);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("auth.gateway", setup, teardown,
	              { "server_register_whoami_renew", test_server_register_whoami_renew },
	              { "auditor_register_whoami", test_auditor_register_whoami },
	              { "patient_enrol_login_whoami", test_patient_enrol_login_whoami },
	              { "register_token_reused_or_expired", test_register_token_reused_or_expired },
	              { "server_route_without_certificate", test_server_route_without_certificate },
	              { "wrong_role", test_wrong_role },
	              { "other_kind_of_credential_403", test_other_kind_of_credential },
	              { "strict_ids_and_queries", test_strict_ids_and_queries },
	              { "ehrctl_errors_and_exit_status", test_ehrctl_errors_and_exit_status },
	              { "foreign_ca_and_expired_certificate", test_foreign_ca_and_expired_certificate },
	              { "revoked_on_open_connection", test_revoked_on_open_connection },
	              { "dpop_negatives", test_dpop_negatives }, { "forged_tokens", test_forged_tokens },
	              { "nonce_replay_and_expired_code", test_nonce_replay_and_expired_code },
	              { "rate_limit_429", test_rate_limit_429 }, { "two_instances", test_two_instances },
	              { "forward_secrecy", test_forward_secrecy },
	              { "client_pins_gateway_ca", test_client_pins_gateway_ca },
	              { "ledger_events", test_ledger_events });
}

EHR_TEST_MAIN(register_suites)
