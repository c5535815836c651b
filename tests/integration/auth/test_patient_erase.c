/*
 * test_patient_erase.c - the right to be forgotten end to end (docs/ERASURE.md
 * §10): the real `ehrgate` on real PostgreSQL over real TLS,
 * driven by `ehrctl`, libehrclient and `ehrgate admin`. After an erasure the
 * external id's link is gone (recomputing it finds nothing), every request
 * for the patient is refused with 410 patient_erased, and the ledger
 * verifies; a patient cannot erase another, a server cannot erase at all;
 * kill -9 in the middle of an erasure, then `ehrgate fsck`, completes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "client/client.h"
#include "tests/harness/harness.h"
#include "tests/harness/gwproc.h"

static struct gw_proc gw;
static char srvdir[300], cert[320], key[320];

static int ehrctl(char *out, size_t cap, const char *dir, const char *a1, const char *a2, const char *a3,
                  const char *a4, const char *a5, const char *a6, const char *a7, const char *a8,
                  const char *a9, const char *a10)
{
	const char *argv[16] = { EHRCTL_BIN, "--dir", dir, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, NULL };
	return ehr_test_run(out, cap, argv);
}

static int setup(void)
{
	static const char *const sets[] = { "server.workers=1", "database.pool_size=8", "log.level=warn",
		                            "log.access=false", NULL };
	struct gwp_options o = { .sets = sets, .no_test_routes = true };
	const char *args[] = {
		"admin", "issue-token", "--role", "server", "--name", "Erasure Hospital", NULL
	};
	char tok[128], out[4096];

	if (gwp_setup(&gw, &o) < 0 || gwp_start(&gw) < 0) {
		fprintf(stderr, "setup: %s\n", ehr_error_msg());
		return 1;
	}
	snprintf(srvdir, sizeof(srvdir), "%s/server", gw.dir);
	snprintf(cert, sizeof(cert), "%s/cert.pem", srvdir);
	snprintf(key, sizeof(key), "%s/key.pem", srvdir);
	if (gwp_cmd(&gw, tok, sizeof(tok), args) != 0)
		return 1;
	tok[strcspn(tok, "\n")] = '\0';
	return ehrctl(out, sizeof(out), srvdir, "register", "--url", gw.base_url, "--token", tok, "--ca",
	              gw.ca_pem, "--out", srvdir, NULL) != 0;
}

static int teardown(void)
{
	gwp_teardown(&gw);
	return 0;
}

/* Create and enrol a patient for external id ext into dir; pid gets the pseudonym. */
static void make_patient(const char *ext, const char *dir, char pid[128])
{
	char out[8192], code[128];
	json_t *j = NULL;

	CU_ASSERT_EQUAL_FATAL(ehrctl(out, sizeof(out), srvdir, "patient", "create", "--external-id", ext,
	                             NULL, NULL, NULL, NULL, NULL, NULL),
	                      0);
	CU_ASSERT_FATAL(ehr_json_parse(&j, out, strlen(out), 65536, 4) == 0);
	snprintf(pid, 128, "%s", json_string_value(json_object_get(j, "patient_id")));
	snprintf(code, sizeof(code), "%s", json_string_value(json_object_get(j, "enrolment_code")));
	json_decref(j);
	CU_ASSERT_EQUAL_FATAL(ehrctl(out, sizeof(out), dir, "patient", "enroll", "--url", gw.base_url,
	                             "--code", code, "--patient", pid, "--ca", gw.ca_pem),
	                      0);
	CU_ASSERT_EQUAL_FATAL(ehrctl(out, sizeof(out), dir, "patient", "login", NULL, NULL, NULL, NULL, NULL,
	                             NULL, NULL, NULL),
	                      0);
}

/* A request as the patient of profile dir: the status, the error code into code. */
static long patient_call(const char *dir, const char *method, const char *path, json_t *body, char *code,
                         size_t cap)
{
	struct ehr_client *c = NULL;
	json_t *resp = NULL;
	long st = 0;

	code[0] = '\0';
	if (ehr_client_open_profile(&c, dir) < 0)
		return -1;
	if (ehr_client_json(c, &st, &resp, method, path, body) < 0)
		st = -1;
	if (resp != NULL && json_is_string(json_object_get(json_object_get(resp, "error"), "code")))
		snprintf(code, cap, "%s",
		         json_string_value(json_object_get(json_object_get(resp, "error"), "code")));
	json_decref(resp);
	ehr_client_free(c);
	return st;
}

/* A request as the medical server (mTLS). */
static long server_call(const char *method, const char *path, const char *body, char *code, size_t cap)
{
	struct gwp_req rq = { .method = method,
		              .path = path,
		              .body = body,
		              .body_len = body ? strlen(body) : 0,
		              .cert = cert,
		              .key = key };
	const char *hdr[] = { "Content-Type: application/json", NULL };
	struct gwp_resp r = { 0 };
	json_t *j = NULL;
	long st;

	rq.headers = hdr;
	code[0] = '\0';
	gwp_request(&gw, &rq, &r);
	st = r.status;
	if (r.body && ehr_json_parse(&j, r.body, strlen(r.body), 1 << 20, 8) == 0 &&
	    json_is_string(json_object_get(json_object_get(j, "error"), "code")))
		snprintf(code, cap, "%s",
		         json_string_value(json_object_get(json_object_get(j, "error"), "code")));
	if (j != NULL && json_is_string(json_object_get(j, "patient_id")))
		snprintf(code, cap, "%s", json_string_value(json_object_get(j, "patient_id")));
	json_decref(j);
	gwp_resp_free(&r);
	return st;
}

/* How many link rows recomputing the external id's keyed hash finds. */
static long long link_rows(const char *ext)
{
	struct ehr_buf path = EHR_BUF_INIT(512), raw = EHR_BUF_INIT(64), hex = EHR_BUF_INIT(80);
	uint8_t h[32];
	char q[256];

	EHR_ASSERT_OK(ehr_buf_printf(&path, "%s/" AUTH_LINK_KEY_FILE, gw.state_dir));
	EHR_ASSERT_OK(ehr_file_read(&raw, ehr_buf_cstr(&path), 64));
	CU_ASSERT_FATAL(raw.len == 32);
	EHR_ASSERT_OK(auth_patient_link_hash(h, raw.data, ext));
	EHR_ASSERT_OK(ehr_hex_encode(&hex, h, sizeof(h)));
	snprintf(q, sizeof(q), "SELECT count(*) FROM auth_patient_links WHERE link_hash = '\\x%s'::bytea",
	         ehr_buf_cstr(&hex));
	ehr_buf_free(&path);
	ehr_buf_free_secure(&raw);
	ehr_buf_free(&hex);
	return gwp_db_scalar(&gw, q);
}

static long long state_of(const char *pid, const char *state)
{
	char q[256];

	snprintf(q, sizeof(q),
	         "SELECT count(*) FROM auth_patients WHERE patient_id = '%s' AND erase_state %s", pid, state);
	return gwp_db_scalar(&gw, q);
}

static void test_patient_erases_self(void)
{
	char a[128], b[128], out[8192], code[128], path[256], dira[300], dirb[300];
	json_t *body;

	snprintf(dira, sizeof(dira), "%s/pa", gw.dir);
	snprintf(dirb, sizeof(dirb), "%s/pb", gw.dir);
	make_patient("MRN-ERASE-A", dira, a);
	make_patient("MRN-ERASE-B", dirb, b);
	CU_ASSERT_EQUAL(link_rows("MRN-ERASE-A"), 1);
	/* A cannot name B: the body has only a basis */
	body = json_pack("{s:s,s:s}", "basis", "patient-request", "patient_id", b);
	CU_ASSERT_EQUAL(patient_call(dira, "POST", "/v1/me/erase", body, code, sizeof(code)), 400);
	json_decref(body);
	/* a bad basis */
	body = json_pack("{s:s}", "basis", "because");
	CU_ASSERT_EQUAL(patient_call(dira, "POST", "/v1/me/erase", body, code, sizeof(code)), 400);
	json_decref(body);
	/* a server cannot erase a patient */
	CU_ASSERT(server_call("POST", "/v1/me/erase", "{\"basis\":\"patient-request\"}", code, sizeof(code)) /
	                  100 ==
	          4);
	CU_ASSERT_EQUAL(state_of(a, "IS NULL"), 1);
	CU_ASSERT_EQUAL(state_of(b, "IS NULL"), 1);

	/* A erases themself with ehrctl */
	CU_ASSERT_EQUAL(ehrctl(out, sizeof(out), dira, "patient", "erase", "--basis", "patient-request", NULL,
	                       NULL, NULL, NULL, NULL, NULL),
	                0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "erased"));
	CU_ASSERT_EQUAL(state_of(a, "= 'erased'"), 1);
	CU_ASSERT_EQUAL(state_of(b, "IS NULL"), 1); /* B untouched */
	/* the link is gone: recomputing the keyed hash finds nothing */
	CU_ASSERT_EQUAL(link_rows("MRN-ERASE-A"), 0);
	CU_ASSERT_EQUAL(link_rows("MRN-ERASE-B"), 1);
	/* every request for A is refused with 410 patient_erased */
	CU_ASSERT_EQUAL(patient_call(dira, "GET", "/v1/whoami", NULL, code, sizeof(code)), 410);
	CU_ASSERT_STRING_EQUAL(code, "patient_erased");
	snprintf(path, sizeof(path), "/v1/patients/%s/records", a);
	CU_ASSERT_EQUAL(patient_call(dira, "GET", path, NULL, code, sizeof(code)), 410);
	CU_ASSERT_EQUAL(server_call("GET", path, NULL, code, sizeof(code)), 410);
	CU_ASSERT_STRING_EQUAL(code, "patient_erased");
	CU_ASSERT_NOT_EQUAL(ehrctl(out, sizeof(out), dira, "patient", "login", NULL, NULL, NULL, NULL, NULL,
	                           NULL, NULL, NULL),
	                    0);
	CU_ASSERT_EQUAL(patient_call(dirb, "GET", "/v1/whoami", NULL, code, sizeof(code)), 200);
	/* the same external id later: a new, unrelated pseudonym */
	CU_ASSERT_EQUAL(
	        server_call("POST", "/v1/patients", "{\"external_id\":\"MRN-ERASE-A\"}", code, sizeof(code)),
	        201);
	CU_ASSERT(strncmp(code, "pt-", 3) == 0 && strcmp(code, a) != 0);
	/* the erasure, the revocation and the contracts' end are in the ledger;
	 * no external id anywhere in it; the ledger verifies */
	CU_ASSERT_EQUAL(gwp_db_scalar(&gw, "SELECT count(*) FROM ledger_entries WHERE type IN "
	                                   "('auth.patient.erase','auth.revoke','contract.erase')"),
	                3);
	CU_ASSERT_EQUAL(gwp_db_scalar(&gw, "SELECT count(*) FROM ledger_entries WHERE "
	                                   "position('MRN-' in encode(entry, 'escape')) > 0"),
	                0);
	{
		const char *args[] = { "ledger", "verify", NULL };
		CU_ASSERT_EQUAL(gwp_cmd(&gw, out, sizeof(out), args), 0);
	}
}

/* kill -9 at each point of an operator erasure, then fsck completes it. */
static void test_kill9_then_fsck(void)
{
	static const char *const points[] = { "patient-erase.ledger", "patient-erase.committed",
		                              "patient-erase.records" };
	char pid[128], dir[300], out[8192], ext[64];

	for (size_t i = 0; i < EHR_ARRAY_LEN(points); i++) {
		const char *erase[] = { "admin", "erase-patient", pid, "--basis", "gdpr-17-1-a", NULL };
		const char *fsck[] = { "fsck", NULL };
		snprintf(dir, sizeof(dir), "%s/k%zu", gw.dir, i);
		snprintf(ext, sizeof(ext), "MRN-KILL-%zu", i);
		make_patient(ext, dir, pid);
		setenv("EHRGATE_TEST_FAILPOINT", points[i], 1);
		CU_ASSERT_NOT_EQUAL(gwp_cmd(&gw, out, sizeof(out), erase), 0); /* killed */
		unsetenv("EHRGATE_TEST_FAILPOINT");
		CU_ASSERT_EQUAL(state_of(pid, "= 'erased'"), 0);
		CU_ASSERT_EQUAL(gwp_cmd(&gw, out, sizeof(out), fsck), 0);
		CU_ASSERT_EQUAL(state_of(pid, "= 'erased'"), 1);
		CU_ASSERT_EQUAL(link_rows(ext), 0);
		/* exactly one erasure entry: fsck applied it, did not add another */
		{
			char q[256];
			snprintf(q, sizeof(q),
			         "SELECT count(*) FROM ledger_entries WHERE type = 'auth.patient.erase' AND "
			         "subject = '%s'",
			         pid);
			CU_ASSERT_EQUAL(gwp_db_scalar(&gw, q), 1);
		}
		/* running the command again: already erased, exit 0 */
		CU_ASSERT_EQUAL(gwp_cmd(&gw, out, sizeof(out), erase), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"already\":true"));
	}
}

/* A state directory from before schema 0055 (no link.key): `ehrgate init`
 * adds link.key alone, and only while the database holds no links. */
static void test_init_adds_link_key(void)
{
	struct ehr_buf path = EHR_BUF_INIT(512), saved = EHR_BUF_INIT(64), ledger = EHR_BUF_INIT(4096),
	               now = EHR_BUF_INIT(4096), made = EHR_BUF_INIT(64);
	const char *init[] = { "init", NULL };
	char out[4096], lpath[512];

	EHR_ASSERT_OK(ehr_buf_printf(&path, "%s/" AUTH_LINK_KEY_FILE, gw.state_dir));
	snprintf(lpath, sizeof(lpath), "%s/ledger.key", gw.state_dir);
	EHR_ASSERT_OK(ehr_file_read(&saved, ehr_buf_cstr(&path), 64));
	EHR_ASSERT_OK(ehr_file_read(&ledger, lpath, 4096));
	CU_ASSERT_EQUAL_FATAL(unlink(ehr_buf_cstr(&path)), 0);
	/* Links exist (made under the old key): refused, nothing created. */
	CU_ASSERT_EQUAL(gwp_cmd(&gw, out, sizeof(out), init), 1);
	CU_ASSERT_NOT_EQUAL(access(ehr_buf_cstr(&path), F_OK), 0);
	/* No links: link.key is added, nothing else touched. */
	CU_ASSERT_EQUAL(gwp_db_exec(&gw, "DELETE FROM auth_patient_links"), 0);
	CU_ASSERT_EQUAL(gwp_cmd(&gw, out, sizeof(out), init), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "added"));
	EHR_ASSERT_OK(ehr_file_read(&made, ehr_buf_cstr(&path), 64));
	CU_ASSERT_EQUAL(made.len, 32);
	EHR_ASSERT_OK(ehr_file_read(&now, lpath, 4096));
	CU_ASSERT(now.len == ledger.len && memcmp(now.data, ledger.data, now.len) == 0); /* not secret */
	/* Everything present: init refuses as before. */
	CU_ASSERT_EQUAL(gwp_cmd(&gw, out, sizeof(out), init), 1);
	/* Put the running gateway's key back. */
	EHR_ASSERT_OK(ehr_file_write_atomic(ehr_buf_cstr(&path), saved.data, saved.len, 0600, false));
	ehr_buf_free(&path);
	ehr_buf_free_secure(&saved);
	ehr_buf_free_secure(&made);
	ehr_buf_free_secure(&ledger);
	ehr_buf_free_secure(&now);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("auth.patient_erase", setup, teardown,
	              { "patient_erases_self", test_patient_erases_self },
	              { "kill9_then_fsck", test_kill9_then_fsck },
	              { "init_adds_link_key", test_init_adds_link_key });
}

EHR_TEST_MAIN(register_suites)
