/*
 * test_console.c - the web console at /console/ (docs/CONSOLE.md) through a
 * real `ehrgate serve`:
 *
 *  - the files: the page, the hashed script and stylesheet, their content
 *    types, cache headers and the Content-Security-Policy; /console
 *    redirects; an unknown file is 404, a malformed name 400;
 *  - every flow of issue 15 in Debian's chromium, driven by Playwright
 *    (tests/console/console.test.mjs): the auditor finds and verifies an
 *    ehrctl upload, a corrupted proof fails, the live tail shows an upload
 *    within 2 s; a patient enrols, logs in, grants a contract, sees the
 *    upload and a break-glass read live, and a revoked contract stops the
 *    hospital's next read; axe-core finds no serious or critical violation;
 *    no request leaves for another origin. Each flow is one CUnit test
 *    here, judged from the script's "console-flow:" lines. Screenshots of
 *    every step are kept in a directory the output names when a flow fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "tests/harness/gwproc.h"
#include "tests/harness/harness.h"

static struct gw_proc gw;
static char dir_srv[GWP_PATH + 16], dir_aud[GWP_PATH + 16], shots[GWP_PATH + 16];
static char srv_id[160], aud_id[160], pid[160], code[160], vkey[512];
static char *flow_out; /* the Playwright script's stdout */

static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static int register_principal(const char *role, const char *dir, char *id, size_t cap)
{
	const char *args[] = { "admin",        "issue-token", "--role",  role, "--name",
		               "Console test", "-c",          gw.config, NULL };
	char tok[256];
	json_t *info = NULL;
	int st = -1;

	GUARD(gwp_run(&gw, args, false, &st, tok, sizeof(tok)));
	ENSURE(st == 0, EHR_ERR_INTERNAL);
	chomp(tok);
	GUARD(ehr_client_register(gw.base_url, gw.ca_pem, tok, dir, &info));
	snprintf(id, cap, "%s", json_string_value(json_object_get(info, "id")) ?: "");
	json_decref(info);
	return id[0] ? 0 : ehr_error_set(EHR_ERR_INTERNAL, "no id");
}

/* The hospital creates the patient; the code is what the patient types. */
static int create_patient(void)
{
	struct ehr_client *srv = NULL;
	json_t *req = json_pack("{s:s}", "external_id", "MRN-console-1"), *resp = NULL;
	long status = 0;
	int err;

	err = ehr_client_open_profile(&srv, dir_srv);
	if (err == 0)
		err = ehr_client_json(srv, &status, &resp, "POST", "/v1/patients", req);
	if (err == 0 && status != 201)
		err = ehr_error_set(EHR_ERR_INTERNAL, "patient create: %ld", status);
	if (err == 0) {
		snprintf(pid, sizeof(pid), "%s",
		         json_string_value(json_object_get(resp, "patient_id")) ?: "");
		snprintf(code, sizeof(code), "%s",
		         json_string_value(json_object_get(resp, "enrolment_code")) ?: "");
	}
	json_decref(req);
	json_decref(resp);
	ehr_client_free(srv);
	return err;
}

static int suite_init(void)
{
	const char *vk_args[] = { "ledger", "vkey", NULL };
	struct gwp_options o = { .no_test_routes = true };

	if (gwp_setup(&gw, &o) || gwp_start(&gw))
		return -1;
	snprintf(dir_srv, sizeof(dir_srv), "%s/srv", gw.dir);
	snprintf(dir_aud, sizeof(dir_aud), "%s/aud", gw.dir);
	snprintf(shots, sizeof(shots), "%s/shots", gw.dir);
	if (register_principal("server", dir_srv, srv_id, sizeof(srv_id)) < 0 ||
	    register_principal("auditor", dir_aud, aud_id, sizeof(aud_id)) < 0 || create_patient() < 0) {
		fprintf(stderr, "console setup: %s\n", ehr_error_msg());
		return -1;
	}
	if (gwp_cmd(&gw, vkey, sizeof(vkey), vk_args) != 0)
		return -1;
	chomp(vkey);
	return 0;
}

static int suite_clean(void)
{
	free(flow_out);
	gwp_teardown(&gw);
	return 0;
}

/* ------------------------------------------------------------ the files */

static void expect_header(const struct gwp_resp *r, const char *name, const char *want_prefix)
{
	char v[1024] = "";

	EHR_ASSERT_OK(gwp_resp_header(r, name, v, sizeof(v)));
	if (strncmp(v, want_prefix, strlen(want_prefix)) != 0)
		fprintf(stderr, "\n  %s: %s, wanted %s...\n", name, v, want_prefix);
	CU_ASSERT_EQUAL(strncmp(v, want_prefix, strlen(want_prefix)), 0);
}

/* The script and stylesheet index.html names: "app-<hash>.<ext>". */
static void asset_name(const char *html, const char *ext, char *out, size_t cap)
{
	const char *p = html;

	out[0] = '\0';
	while ((p = strstr(p, "app-")) != NULL) {
		size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789-.");
		if (n < cap && n > strlen(ext) && strncmp(p + n - strlen(ext), ext, strlen(ext)) == 0) {
			memcpy(out, p, n);
			out[n] = '\0';
			return;
		}
		p += 4;
	}
}

static void test_files(void)
{
	struct gwp_resp r;
	char js[96], css[96], path[160], csp[1024] = "";

	EHR_ASSERT_OK(gwp_get(&gw, "/console/", &r));
	CU_ASSERT_EQUAL(r.status, 200);
	expect_header(&r, "Content-Type", "text/html; charset=utf-8");
	expect_header(&r, "Content-Security-Policy", "default-src 'self'; script-src 'self'");
	expect_header(&r, "Cache-Control", "no-cache");
	expect_header(&r, "X-Content-Type-Options", "nosniff");
	gwp_resp_header(&r, "Content-Security-Policy", csp, sizeof(csp));
	CU_ASSERT_PTR_NULL(strstr(csp, "unsafe-inline"));
	CU_ASSERT_PTR_NULL(strstr(csp, "http"));
	CU_ASSERT_PTR_NULL(strstr(r.body ? r.body : "", "<script>")); /* no inline script */
	asset_name(r.body ? r.body : "", ".js", js, sizeof(js));
	asset_name(r.body ? r.body : "", ".css", css, sizeof(css));
	gwp_resp_free(&r);
	CU_ASSERT(js[0] != '\0' && css[0] != '\0');

	snprintf(path, sizeof(path), "/console/%s", js);
	EHR_ASSERT_OK(gwp_get(&gw, path, &r));
	CU_ASSERT_EQUAL(r.status, 200);
	expect_header(&r, "Content-Type", "text/javascript");
	expect_header(&r, "Cache-Control", "public, max-age=31536000, immutable");
	expect_header(&r, "Content-Security-Policy", "default-src 'self'");
	gwp_resp_free(&r);
	snprintf(path, sizeof(path), "/console/%s", css);
	EHR_ASSERT_OK(gwp_get(&gw, path, &r));
	CU_ASSERT_EQUAL(r.status, 200);
	expect_header(&r, "Content-Type", "text/css");
	gwp_resp_free(&r);

	EHR_ASSERT_OK(gwp_get(&gw, "/console", &r));
	CU_ASSERT_EQUAL(r.status, 301);
	expect_header(&r, "Location", "/console/");
	gwp_resp_free(&r);
	EHR_ASSERT_OK(gwp_get(&gw, "/console/app-0000.js", &r));
	CU_ASSERT_EQUAL(r.status, 404);
	CU_ASSERT(gwp_resp_is_error(&r, "not_found"));
	gwp_resp_free(&r);
	EHR_ASSERT_OK(gwp_get(&gw, "/console/.env", &r));
	CU_ASSERT_EQUAL(r.status, 400);
	gwp_resp_free(&r);
	EHR_ASSERT_OK(gwp_get(&gw, "/console/..%2f..%2fetc%2fpasswd", &r));
	CU_ASSERT(r.status == 400 || r.status == 404);
	gwp_resp_free(&r);
	EHR_ASSERT_OK(gwp_get(&gw, "/console/Index.HTML", &r));
	CU_ASSERT_EQUAL(r.status, 400);
	gwp_resp_free(&r);
}

/* ------------------------------------------------------------ the browser */

/* Run the Playwright script once; its stdout is kept for the flow tests. */
static void test_browser_run(void)
{
	char env_url[256], script[GWP_PATH + 64], node_modules[GWP_PATH + 64];
	const char *argv[] = { "/usr/bin/env", "node", script, NULL };
	size_t cap = 1 << 20;
	int rc;

	snprintf(script, sizeof(script), "%s/tests/console/console.test.mjs", EHR_SOURCE_DIR);
	snprintf(node_modules, sizeof(node_modules), "%s/tests/console/node_modules/playwright-core",
	         EHR_SOURCE_DIR);
	if (access(node_modules, R_OK) != 0) {
		fprintf(stderr, "\n  tests/console/node_modules is missing: run deploy/bootstrap.sh\n");
		CU_FAIL("playwright-core is not installed");
		return;
	}
	snprintf(env_url, sizeof(env_url), "%s", gw.base_url);
	setenv("CONSOLE_URL", env_url, 1);
	setenv("CONSOLE_SERVER_DIR", dir_srv, 1);
	setenv("CONSOLE_SERVER_ID", srv_id, 1);
	setenv("CONSOLE_AUDITOR_DIR", dir_aud, 1);
	setenv("CONSOLE_PATIENT_ID", pid, 1);
	setenv("CONSOLE_ENROL_CODE", code, 1);
	setenv("CONSOLE_VKEY", vkey, 1);
	setenv("CONSOLE_SHOTS", shots, 1);
	setenv("CONSOLE_OUT", EHR_CONSOLE_OUT, 1);
	flow_out = calloc(1, cap);
	if (flow_out == NULL) {
		CU_FAIL("no memory");
		return;
	}
	rc = ehr_test_run(flow_out, cap, argv);
	printf("\n%s", flow_out);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc != 0) {
		fprintf(stderr, "\n  console flows failed: screenshots of each step in %s\n", shots);
		setenv("EHRGATE_TEST_KEEP", "1", 1); /* keep the screenshots for a person */
	}
}

static void expect_flow(const char *name)
{
	char want[160];

	snprintf(want, sizeof(want), "console-flow: ok %s\n", name);
	if (flow_out == NULL || strstr(flow_out, want) == NULL)
		fprintf(stderr, "\n  flow '%s' did not pass\n", name);
	CU_ASSERT_PTR_NOT_NULL(flow_out ? strstr(flow_out, want) : NULL);
}

static void test_patient_enrols_and_grants(void)
{
	expect_flow("patient-enrol-login-grant");
}
static void test_patient_sees_upload(void)
{
	expect_flow("patient-sees-upload");
}
static void test_auditor_finds_and_verifies(void)
{
	expect_flow("auditor-finds-upload-and-verifies");
}
static void test_auditor_corrupted_proof_fails(void)
{
	expect_flow("auditor-corrupted-proof-fails");
}
static void test_auditor_live_tail(void)
{
	expect_flow("auditor-live-tail-2s");
}
static void test_patient_revoke_stops_read(void)
{
	expect_flow("patient-revoke-stops-read");
}
static void test_patient_break_glass_live(void)
{
	expect_flow("patient-sees-break-glass-live");
}
static void test_accessibility(void)
{
	expect_flow("axe-no-serious-violation");
}
static void test_same_origin_only(void)
{
	expect_flow("csp-and-same-origin-only");
}

static void register_suites(void)
{
	EHR_ADD_SUITE("console", suite_init, suite_clean, { "files", test_files },
	              { "browser_run", test_browser_run },
	              { "patient_enrols_and_grants", test_patient_enrols_and_grants },
	              { "patient_sees_upload", test_patient_sees_upload },
	              { "auditor_finds_and_verifies", test_auditor_finds_and_verifies },
	              { "auditor_corrupted_proof_fails", test_auditor_corrupted_proof_fails },
	              { "auditor_live_tail", test_auditor_live_tail },
	              { "patient_revoke_stops_read", test_patient_revoke_stops_read },
	              { "patient_break_glass_live", test_patient_break_glass_live },
	              { "accessibility", test_accessibility }, { "same_origin_only", test_same_origin_only });
}

EHR_TEST_MAIN(register_suites)
