/*
 * test_audit_e2e.c - contracts and the auditor's API through a real
 * `ehrgate serve` over TLS, with real clients (libehrclient and ehrctl).
 *
 *  - access matrix: every route of gw_routes_audit x every role (none,
 *    patient, another patient, medical server, another medical server,
 *    auditor) x contract state (none, active, revoked): no unauthorised
 *    success, and the object-level rules (a patient sees only its own);
 *  - FHIR AuditEvent output checked field by field;
 *  - `ehrctl audit verify` detects rewritten and dropped entries, a
 *    rollback and a fork made by a database superuser;
 *  - the SSE stream resumes with no gap and no duplicate across a gateway
 *    restart, carries entries written through a second instance, and a
 *    slow consumer is cut off without stalling the gateway.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "client/client.h"
#include "policy/policy.h"
#include "gateway/gateway.h"
#include "tests/harness/gwproc.h"
#include "tests/harness/harness.h"

static struct gw_proc gw;
static PGconn *su; /* superuser on the test database */
static char dir_s1[GWP_PATH + 16], dir_s2[GWP_PATH + 16], dir_aud[GWP_PATH + 16], dir_p1[GWP_PATH + 16],
        dir_p2[GWP_PATH + 16];
static char P1[160], P2[160], S1[160], S2[160], AUD[160];
static struct ehr_client *c_none, *c_p1, *c_p2, *c_s1, *c_s2, *c_aud;

/* ------------------------------------------------------------ helpers */

static long long scalar(const char *sql)
{
	PGresult *r = PQexec(su, sql);
	long long v = -1;
	int64_t x;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	    ehr_parse_i64(&x, PQgetvalue(r, 0, 0), INT64_MIN, INT64_MAX) == 0)
		v = x;
	PQclear(r);
	return v;
}

static int exec_su(const char *sql)
{
	PGresult *r = PQexec(su, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "\n  sql failed: %s: %s\n", sql, PQerrorMessage(su));
	PQclear(r);
	return ok ? 0 : -1;
}

/* Restarts keep the port (options.keep_port): the profiles hold the URL. */
static int start_gw(void)
{
	return gwp_start(&gw);
}

static int issue_token(const char *role, const char *name, char *tok, size_t cap)
{
	/* `admin` takes -c after its own subcommand. */
	const char *args[] = {
		"admin", "issue-token", "--role", role, "--name", name, "-c", gw.config, NULL
	};
	int st = -1;
	size_t n;

	GUARD(gwp_run(&gw, args, false, &st, tok, cap));
	if (st != 0)
		return ehr_error_set(EHR_ERR_INTERNAL, "issue-token exited %d", st);
	n = strlen(tok);
	while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r'))
		tok[--n] = '\0';
	return 0;
}

static int register_principal(const char *role, const char *name, const char *dir, char *id, size_t idcap)
{
	char tok[256];
	json_t *info = NULL;

	GUARD(issue_token(role, name, tok, sizeof(tok)));
	GUARD(ehr_client_register(gw.base_url, gw.ca_pem, tok, dir, &info));
	snprintf(id, idcap, "%s", json_string_value(json_object_get(info, "id")) ?: "");
	json_decref(info);
	return id[0] ? 0 : ehr_error_set(EHR_ERR_INTERNAL, "no id");
}

static int enrol_patient(struct ehr_client *server, const char *ext, const char *dir, char *pid, size_t cap)
{
	json_t *req = json_pack("{s:s}", "external_id", ext), *resp = NULL;
	long status = 0;
	int err;

	err = ehr_client_json(server, &status, &resp, "POST", "/v1/patients", req);
	json_decref(req);
	if (err == 0 && status != 201 && status != 200)
		err = ehr_error_set(EHR_ERR_INTERNAL, "patient create: %ld", status);
	if (err == 0) {
		snprintf(pid, cap, "%s", json_string_value(json_object_get(resp, "patient_id")) ?: "");
		err = ehr_client_enroll(gw.base_url, gw.ca_pem, pid,
		                        json_string_value(json_object_get(resp, "enrolment_code")), NULL,
		                        dir);
	}
	json_decref(resp);
	return err;
}

/* Rewrite a profile's URL (the gateway moved) . */
static void profile_url(const char *dir, const char *url)
{
	char path[GWP_PATH + 64];
	json_t *j;

	snprintf(path, sizeof(path), "%s/profile.json", dir);
	j = json_load_file(path, 0, NULL);
	if (j) {
		json_object_set_new(j, "url", json_string(url));
		json_dump_file(j, path, JSON_COMPACT);
		json_decref(j);
	}
}

static int suite_init_inner(void)
{
	/* every refusal on the ledger, so every kind of AuditEvent can be checked */
	static const char *const sets[] = { "auth.failure_events_per_min=1000000", NULL };
	struct gwp_options o = { .keep_port = true, .sets = sets };
	struct ehr_client_opts none = { 0 };

	if (gwp_setup(&gw, &o) < 0) {
		fprintf(stderr, "setup: %s\n", ehr_error_msg());
		return 1;
	}
	if (start_gw() < 0) {
		fprintf(stderr, "start: %s\n", ehr_error_msg());
		return 1;
	}
	su = PQconnectdb(gw.db.super_ci);
	if (PQstatus(su) != CONNECTION_OK)
		return 1;
	snprintf(dir_s1, sizeof(dir_s1), "%s/s1", gw.dir);
	snprintf(dir_s2, sizeof(dir_s2), "%s/s2", gw.dir);
	snprintf(dir_aud, sizeof(dir_aud), "%s/aud", gw.dir);
	snprintf(dir_p1, sizeof(dir_p1), "%s/p1", gw.dir);
	snprintf(dir_p2, sizeof(dir_p2), "%s/p2", gw.dir);
	if (register_principal("server", "hospital-one", dir_s1, S1, sizeof(S1)) < 0 ||
	    register_principal("server", "hospital-two", dir_s2, S2, sizeof(S2)) < 0 ||
	    register_principal("auditor", "auditor-one", dir_aud, AUD, sizeof(AUD)) < 0 ||
	    ehr_client_open_profile(&c_s1, dir_s1) < 0 || ehr_client_open_profile(&c_s2, dir_s2) < 0 ||
	    ehr_client_open_profile(&c_aud, dir_aud) < 0 ||
	    enrol_patient(c_s1, "mrn-0001", dir_p1, P1, sizeof(P1)) < 0 ||
	    enrol_patient(c_s1, "mrn-0002", dir_p2, P2, sizeof(P2)) < 0 ||
	    ehr_client_open_profile(&c_p1, dir_p1) < 0 || ehr_client_open_profile(&c_p2, dir_p2) < 0) {
		fprintf(stderr, "principals: %s\n", ehr_error_msg());
		return 1;
	}
	none.url = gw.base_url;
	none.ca_file = gw.ca_pem;
	if (ehr_client_new(&c_none, &none) < 0)
		return 1;
	return 0;
}

static int suite_clean(void)
{
	ehr_client_free(c_none);
	ehr_client_free(c_p1);
	ehr_client_free(c_p2);
	ehr_client_free(c_s1);
	ehr_client_free(c_s2);
	ehr_client_free(c_aud);
	if (su)
		PQfinish(su);
	gwp_teardown(&gw);
	return 0;
}

/* CUnit does not run the clean function of a suite whose init failed:
 * tear down here, so a failed start leaves no gateway or database behind. */
static int suite_init(void)
{
	if (suite_init_inner() != 0) {
		suite_clean();
		return 1;
	}
	return 0;
}

static json_t *signed_doc(struct ehr_client *c, const char *member, json_t *doc)
{
	struct ehr_buf sig = EHR_BUF_INIT(128);
	json_t *env = NULL;

	if (policy_sign_es256(&sig, doc, ehr_client_device_key(c)) == 0)
		env = json_pack("{s:o, s:s}", member, doc, "signature", ehr_buf_cstr(&sig));
	else
		json_decref(doc);
	ehr_buf_free(&sig);
	return env;
}

static json_t *contract_for(struct ehr_client *signer, const char *patient, const char *server)
{
	struct ehr_buf n = EHR_BUF_INIT(64);
	int64_t now = ehr_now_ms() / 1000;
	json_t *doc;

	ehr_random_token(&n, 16);
	doc = json_pack("{s:s, s:s, s:{s:s}, s:[s], s:{s:b}, s:s, s:I, s:I, s:I, s:s}", "type",
	                "ehrgate.contract.v1", "patient", patient, "grantee", "server", server, "actions",
	                "read", "scope", "all", 1, "purpose", "treatment", "not_before",
	                (json_int_t)(now - 60), "not_after", (json_int_t)(now + 3600), "issued_at",
	                (json_int_t)now, "nonce", ehr_buf_cstr(&n));
	ehr_buf_free(&n);
	return signed_doc(signer, "contract", doc);
}

static json_t *revocation_for(struct ehr_client *signer, const char *patient, const char *cid)
{
	struct ehr_buf n = EHR_BUF_INIT(64);
	json_t *doc;

	ehr_random_token(&n, 16);
	doc = json_pack("{s:s, s:s, s:s, s:I, s:s}", "type", "ehrgate.revocation.v1", "patient", patient,
	                "cid", cid, "issued_at", (json_int_t)(ehr_now_ms() / 1000), "nonce",
	                ehr_buf_cstr(&n));
	ehr_buf_free(&n);
	return signed_doc(signer, "revocation", doc);
}

static long call(struct ehr_client *c, const char *method, const char *path, const json_t *body,
                 json_t **resp)
{
	long status = 0;
	json_t *r = NULL;

	if (ehr_client_json(c, &status, &r, method, path, body) < 0)
		status = 0; /* refused at the TLS layer (no certificate): no HTTP status */
	if (resp)
		*resp = r;
	else
		json_decref(r);
	return status;
}

/* The stream's first bytes are its ": ehrgate audit stream" comment; an
 * error reply is a JSON body instead. */
static bool stream_first_chunk(const void *d, size_t n, void *ud)
{
	*(bool *)ud = n > 0 && ((const char *)d)[0] == ':';
	return false; /* one chunk is enough: stop */
}

/* ---------------------------------------------------------- contracts */

static char cid_active[POLICY_CID_MAX];

static void test_contract_api(void)
{
	json_t *env = contract_for(c_p1, P1, S1), *resp = NULL, *list;
	size_t i;
	json_t *it;
	bool seen = false;

	CU_ASSERT_EQUAL(call(c_p1, "POST", "/v1/me/contracts", env, &resp), 201);
	snprintf(cid_active, sizeof(cid_active), "%s", json_string_value(json_object_get(resp, "cid")) ?: "");
	CU_ASSERT_EQUAL(strlen(cid_active), 43);
	json_decref(resp);
	/* The same signed document again. */
	CU_ASSERT_EQUAL(call(c_p1, "POST", "/v1/me/contracts", env, NULL), 409);
	/* Tampered after signing: 422. */
	json_object_set_new(json_object_get(env, "contract"), "not_after", json_integer(4102444800));
	CU_ASSERT_EQUAL(call(c_p1, "POST", "/v1/me/contracts", env, NULL), 422);
	json_decref(env);
	/* Not JSON / schema violation: 400. */
	env = json_pack("{s:s}", "contract", "x");
	CU_ASSERT_EQUAL(call(c_p1, "POST", "/v1/me/contracts", env, NULL), 400);
	json_decref(env);

	CU_ASSERT_EQUAL(call(c_p1, "GET", "/v1/me/contracts", NULL, &resp), 200);
	list = json_object_get(resp, "contracts");
	json_array_foreach(list, i, it)
	{
		if (strcmp(json_string_value(json_object_get(it, "cid")) ?: "", cid_active) == 0) {
			seen = true;
			CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(it, "state")), "active");
		}
	}
	CU_ASSERT(seen);
	json_decref(resp);
	/* The ledger holds the signed document: the contract.create entry. */
	{
		char sql[256];
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM ledger_entries WHERE type = 'contract.create' AND subject = "
		         "'%s'",
		         P1);
		CU_ASSERT_EQUAL(scalar(sql), 1);
	}
}

/* ------------------------------------------------------- access matrix */

enum role_ix { R_NONE, R_P1, R_P2, R_S1, R_S2, R_AUD, R_N };
static const char *const role_names[R_N] = { "none",   "patient",      "other-patient",
	                                     "server", "other-server", "auditor" };

enum cstate { ST_NONE, ST_ACTIVE, ST_REVOKED, ST_N };
static const char *const state_names[ST_N] = { "no-contract", "active", "revoked" };

struct route_case {
	const char *method;
	const char *name;
	unsigned allowed; /* bit per role that may get a 2xx */
};

#define BIT(x) (1u << (x))

/* One request per (route, role, state). Returns the status. */
static long matrix_call(size_t route, enum role_ix role, enum cstate st, const char *cid, uint64_t own_seq,
                        uint64_t size)
{
	struct ehr_client *cl[R_N] = { c_none, c_p1, c_p2, c_s1, c_s2, c_aud };
	struct ehr_client *c = cl[role];
	char path[256];
	json_t *body = NULL, *resp = NULL;
	long status = 0;

	(void)st;
	switch (route) {
	case 0: /* POST /v1/me/contracts: always P1's document, signed by P1 */
		body = contract_for(c_p1, P1, S1);
		status = call(c, "POST", "/v1/me/contracts", body, NULL);
		break;
	case 1: /* GET /v1/me/contracts */
		status = call(c, "GET", "/v1/me/contracts", NULL, &resp);
		if (status == 200 && role == R_P2) {
			/* Another patient sees none of P1's contracts. */
			size_t i;
			json_t *it;
			json_array_foreach(json_object_get(resp, "contracts"), i, it)
			{
				CU_ASSERT_STRING_NOT_EQUAL(
				        json_string_value(
				                json_object_get(it, "contract")
				                        ? json_object_get(json_object_get(it, "contract"),
				                                          "patient")
				                        : NULL)
				                ?: "",
				        P1);
			}
		}
		break;
	case 2: /* POST /v1/me/contracts/{cid}/revoke: P1's revocation (P2 signs its own for P1's cid) */
		snprintf(path, sizeof(path), "/v1/me/contracts/%s/revoke", cid);
		body = role == R_P2 ? revocation_for(c_p2, P2, cid) : revocation_for(c_p1, P1, cid);
		status = call(c, "POST", path, body, NULL);
		break;
	case 3: /* GET /v1/me/access-log */
		status = call(c, "GET", "/v1/me/access-log", NULL, &resp);
		if (status == 200) {
			size_t i;
			json_t *it;
			(void)it;
			json_array_foreach(json_object_get(resp, "entries"), i, it)
			{
				/* Entries are about the caller only: the query is by subject. */
			}
		}
		break;
	case 4: /* GET /v1/audit/entries */
		status = call(c, "GET", "/v1/audit/entries?limit=5", NULL, NULL);
		break;
	case 5: { /* GET /v1/audit/stream */
		bool streaming = false;
		ehr_client_request(c, &status, NULL, "GET", "/v1/audit/stream?since=0", NULL, NULL, 0,
		                   stream_first_chunk, &streaming);
		/* Aborting the transfer leaves no status: a stream that started
		 * is a 200; otherwise ask again for the refusal's status. */
		status = streaming ? 200 : call(c, "GET", "/v1/audit/stream?since=0&heartbeat=1", NULL, NULL);
		break;
	}
	case 6: /* GET /v1/ledger/checkpoint */
		status = call(c, "GET", "/v1/ledger/checkpoint", NULL, NULL);
		break;
	case 7: /* GET /v1/ledger/proof/inclusion of one of P1's own entries */
		snprintf(path, sizeof(path), "/v1/ledger/proof/inclusion?index=%llu&size=%llu",
		         (unsigned long long)own_seq, (unsigned long long)size);
		status = call(c, "GET", path, NULL, NULL);
		break;
	case 8: /* GET /v1/ledger/proof/consistency */
		snprintf(path, sizeof(path), "/v1/ledger/proof/consistency?from=1&to=%llu",
		         (unsigned long long)size);
		status = call(c, "GET", path, NULL, NULL);
		break;
	case 9: { /* GET /v1/me/access/stream: the caller's own entries (test_patient_stream.c) */
		bool streaming = false;
		ehr_client_request(c, &status, NULL, "GET", "/v1/me/access/stream?from=0", NULL, NULL, 0,
		                   stream_first_chunk, &streaming);
		status = streaming ? 200
		                   : call(c, "GET", "/v1/me/access/stream?from=0&heartbeat=1", NULL, NULL);
		break;
	}
	default: break;
	}
	json_decref(body);
	json_decref(resp);
	return status;
}

static void test_access_matrix(void)
{
	static const struct route_case routes[] = {
		{ "POST", "/v1/me/contracts", BIT(R_P1) },
		{ "GET", "/v1/me/contracts", BIT(R_P1) | BIT(R_P2) },
		{ "POST", "/v1/me/contracts/{cid}/revoke", BIT(R_P1) },
		{ "GET", "/v1/me/access-log", BIT(R_P1) | BIT(R_P2) },
		{ "GET", "/v1/audit/entries", BIT(R_AUD) },
		{ "GET", "/v1/audit/stream", BIT(R_AUD) },
		{ "GET", "/v1/ledger/checkpoint", BIT(R_AUD) | BIT(R_P1) | BIT(R_P2) },
		{ "GET", "/v1/ledger/proof/inclusion", BIT(R_AUD) | BIT(R_P1) }, /* P1's entry: not P2's */
		{ "GET", "/v1/ledger/proof/consistency", BIT(R_AUD) | BIT(R_P1) | BIT(R_P2) },
		{ "GET", "/v1/me/access/stream", BIT(R_P1) | BIT(R_P2) },
	};
	unsigned cells = 0, bad = 0;

	for (int st = 0; st < ST_N; st++) {
		char cid[POLICY_CID_MAX] = "";
		char sql[512];
		uint64_t own, size;

		/* Fresh contract state for this round. */
		if (st != ST_NONE) {
			json_t *env = contract_for(c_p1, P1, S2), *resp = NULL;
			CU_ASSERT_EQUAL_FATAL(call(c_p1, "POST", "/v1/me/contracts", env, &resp), 201);
			snprintf(cid, sizeof(cid), "%s",
			         json_string_value(json_object_get(resp, "cid")) ?: "");
			json_decref(env);
			json_decref(resp);
			if (st == ST_REVOKED) {
				char path[128];
				snprintf(path, sizeof(path), "/v1/me/contracts/%s/revoke", cid);
				env = revocation_for(c_p1, P1, cid);
				CU_ASSERT_EQUAL_FATAL(call(c_p1, "POST", path, env, NULL), 200);
				json_decref(env);
			}
		} else {
			/* A well-formed id of no contract. */
			snprintf(cid, sizeof(cid), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
		}
		snprintf(sql, sizeof(sql), "SELECT max(seq) FROM ledger_entries WHERE subject = '%s'", P1);
		own = (uint64_t)scalar(sql);
		size = (uint64_t)scalar("SELECT max(tree_size) FROM ledger_blocks");
		for (size_t rt = 0; rt < EHR_ARRAY_LEN(routes); rt++) {
			for (int role = 0; role < R_N; role++) {
				long s = matrix_call(rt, (enum role_ix)role, (enum cstate)st, cid, own, size);
				bool ok2xx = s >= 200 && s < 300;
				cells++;
				if (ok2xx && !(routes[rt].allowed & BIT(role))) {
					fprintf(stderr, "\n  UNAUTHORISED SUCCESS: %s %s as %s (%s) -> %ld",
					        routes[rt].method, routes[rt].name, role_names[role],
					        state_names[st], s);
					bad++;
				}
				/* Unauthenticated and wrong-role calls are refused as such. */
				if (role == R_NONE && ok2xx)
					bad++;
				if (!(routes[rt].allowed & BIT(role)) && role != R_NONE && role != R_P2 &&
				    s != 403 && s != 401) {
					fprintf(stderr, "\n  %s %s as %s (%s) -> %ld, wanted 401/403",
					        routes[rt].method, routes[rt].name, role_names[role],
					        state_names[st], s);
					bad++;
				}
				/* The owner's outcome depends on the contract state. */
				if (rt == 2 && role == R_P1) {
					long want = st == ST_NONE ? 404 : st == ST_ACTIVE ? 200 : 409;
					if (s != want) {
						fprintf(stderr, "\n  revoke as owner (%s) -> %ld, wanted %ld",
						        state_names[st], s, want);
						bad++;
					}
				}
				if (rt == 2 && role == R_P2 && ok2xx)
					bad++;
				if (rt == 7 && role == R_P2 && s != 404) {
					fprintf(stderr,
					        "\n  another patient's inclusion proof -> %ld, wanted 404",
					        s);
					bad++;
				}
				if ((routes[rt].allowed & BIT(role)) && rt != 0 && rt != 2 && s != 200) {
					fprintf(stderr, "\n  %s %s as %s (%s) -> %ld, wanted 200",
					        routes[rt].method, routes[rt].name, role_names[role],
					        state_names[st], s);
					bad++;
				}
			}
		}
	}
	CU_ASSERT_EQUAL(cells, 10 * 6 * 3);
	CU_ASSERT_EQUAL(bad, 0);
}

/* --------------------------------------------- EHR routes x contract state */

static long post_record(struct ehr_client *c, const char *pid, const char *extra_header, char *rid,
                        size_t cap)
{
	char path[256];
	const char *hdr[4] = { "Content-Type: text/plain", "X-EHR-Category: lab", extra_header, NULL };
	struct ehr_buf resp = EHR_BUF_INIT(1 << 16);
	long status = 0;

	snprintf(path, sizeof(path), "/v1/patients/%s/records", pid);
	if (ehr_client_request(c, &status, &resp, "POST", path, hdr, "lab result 42", 13, NULL, NULL) < 0)
		status = 0;
	if (rid && status == 201) {
		json_t *j = NULL;
		if (ehr_json_parse(&j, resp.data, resp.len, 1 << 16, 8) == 0)
			snprintf(rid, cap, "%s", json_string_value(json_object_get(j, "record_id")) ?: "");
		json_decref(j);
	}
	ehr_buf_free(&resp);
	return status;
}

static long get_record(struct ehr_client *c, const char *rid, const char *extra_header)
{
	char path[128];
	const char *hdr[2] = { extra_header, NULL };
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	long status = 0;

	snprintf(path, sizeof(path), "/v1/records/%s", rid);
	if (ehr_client_request(c, &status, &resp, "GET", path, extra_header ? hdr : NULL, NULL, 0, NULL,
	                       NULL) < 0)
		status = 0;
	ehr_buf_free(&resp);
	return status;
}

static bool grant(struct ehr_client *pat, const char *patient, const char *server, unsigned actions,
                  char *cid)
{
	json_t *env = NULL, *resp = NULL;
	int64_t now = ehr_now_ms() / 1000;
	long st;

	CU_ASSERT_FATAL(policy_grant_envelope(&env, ehr_client_device_key(pat), patient, server, actions,
	                                      now - 60, now + 3600) == 0);
	st = call(pat, "POST", "/v1/me/contracts", env, &resp);
	CU_ASSERT_EQUAL(st, 201);
	snprintf(cid, POLICY_CID_MAX, "%s", json_string_value(json_object_get(resp, "cid")) ?: "");
	json_decref(env);
	json_decref(resp);
	return st == 201;
}

static void revoke_contract(struct ehr_client *pat, const char *patient, const char *cid)
{
	char path[128];
	json_t *env = revocation_for(pat, patient, cid);

	snprintf(path, sizeof(path), "/v1/me/contracts/%s/revoke", cid);
	CU_ASSERT_EQUAL(call(pat, "POST", path, env, NULL), 200);
	json_decref(env);
}

static void test_ehr_matrix(void)
{
	struct ehr_client *cl[R_N] = { c_none, c_p1, c_p2, c_s1, c_s2, c_aud };
	char setup_cid[POLICY_CID_MAX], rid[64] = "";
	unsigned bad = 0, cells = 0;

	/* Start from no contract in force for P1. */
	{
		json_t *resp = NULL, *it;
		size_t i;
		CU_ASSERT_EQUAL_FATAL(call(c_p1, "GET", "/v1/me/contracts", NULL, &resp), 200);
		json_array_foreach(json_object_get(resp, "contracts"), i, it)
		{
			if (strcmp(json_string_value(json_object_get(it, "state")) ?: "", "revoked") != 0)
				revoke_contract(c_p1, P1, json_string_value(json_object_get(it, "cid")));
		}
		json_decref(resp);
	}
	/* A record of P1's, stored by S1 under a contract then revoked. */
	grant(c_p1, P1, S1, POLICY_ACT_APPEND, setup_cid);
	CU_ASSERT_EQUAL_FATAL(post_record(c_s1, P1, NULL, rid, sizeof(rid)), 201);
	CU_ASSERT_EQUAL_FATAL(strlen(rid), 32);
	revoke_contract(c_p1, P1, setup_cid);

	for (int st = 0; st < ST_N; st++) {
		char cid[POLICY_CID_MAX] = "";
		if (st != ST_NONE)
			grant(c_p1, P1, S1, POLICY_ACT_READ | POLICY_ACT_APPEND, cid);
		if (st == ST_REVOKED)
			revoke_contract(c_p1, P1, cid);
		for (int role = 0; role < R_N; role++) {
			long sp = post_record(cl[role], P1, NULL, NULL, 0);
			long sg = get_record(cl[role], rid, NULL);
			bool may_post = role == R_S1 && st == ST_ACTIVE;
			bool may_get = role == R_P1 || (role == R_S1 && st == ST_ACTIVE);
			cells += 2;
			if ((sp >= 200 && sp < 300) != may_post) {
				fprintf(stderr, "\n  POST record as %s (%s) -> %ld", role_names[role],
				        state_names[st], sp);
				bad++;
			}
			if ((sg >= 200 && sg < 300) != may_get) {
				fprintf(stderr, "\n  GET record as %s (%s) -> %ld", role_names[role],
				        state_names[st], sg);
				bad++;
			}
			if (role == R_NONE && (sp != 401 || sg != 401))
				bad++;
		}
		if (st == ST_ACTIVE)
			revoke_contract(c_p1, P1, cid); /* leave no read grant behind for the next round */
	}
	CU_ASSERT_EQUAL(cells, 2 * 6 * 3);
	CU_ASSERT_EQUAL(bad, 0);
	/* POST /v1/records/{rid}/erase (docs/ERASURE.md §1): the owner only.
	 * No one is 401; another patient 403; a certificate (server, auditor)
	 * on this patient-only route is refused as 401 or 403. The owner goes
	 * last: 200, then reads are 410. */
	{
		static const int order[] = { R_NONE, R_P2, R_S1, R_S2, R_AUD, R_P1 };
		char path[128];
		snprintf(path, sizeof(path), "/v1/records/%s/erase", rid);
		for (size_t i = 0; i < EHR_ARRAY_LEN(order); i++) {
			json_t *body = json_pack("{s:s}", "basis", "patient-request");
			long s = call(cl[order[i]], "POST", path, body, NULL);
			long want = order[i] == R_P1 ? 200 : order[i] == R_NONE ? 401 : 403;
			json_decref(body);
			if (s != want &&
			    !(s == 401 && (order[i] == R_S1 || order[i] == R_S2 || order[i] == R_AUD))) {
				fprintf(stderr, "\n  POST erase as %s -> %ld, wanted %ld",
				        role_names[order[i]], s, want);
				bad++;
			}
		}
		CU_ASSERT_EQUAL(get_record(c_p1, rid, NULL), 410);
		CU_ASSERT_EQUAL(get_record(c_s1, rid, NULL), 403); /* no contract in force: learns nothing */
		CU_ASSERT_EQUAL(bad, 0);
	}
	/* POST /v1/me/erase (docs/ERASURE.md §10): a patient erases only
	 * themself (the route takes no patient id: test_patient_erase.c); no one
	 * is 401; a certificate (server, auditor) is 401 or 403. */
	{
		static const int order[] = { R_NONE, R_S1, R_S2, R_AUD };
		for (size_t i = 0; i < EHR_ARRAY_LEN(order); i++) {
			json_t *body = json_pack("{s:s}", "basis", "patient-request");
			long s = call(cl[order[i]], "POST", "/v1/me/erase", body, NULL);
			json_decref(body);
			if (order[i] == R_NONE ? s != 401 : s != 401 && s != 403) {
				fprintf(stderr, "\n  POST /v1/me/erase as %s -> %ld", role_names[order[i]],
				        s);
				bad++;
			}
		}
		CU_ASSERT_EQUAL(bad, 0);
	}
	/* Every decision about P1's records is in the ledger, denials included. */
	{
		char sql[512];
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM ledger_entries WHERE type = 'access.decision' AND subject = "
		         "'%s' AND "
		         "position(convert_to('\"decision\":\"deny\"', 'UTF8') in entry) > 0",
		         P1);
		CU_ASSERT(scalar(sql) >= 6);
	}
}

static long long metric(const char *name)
{
	struct gwp_resp m;
	long long v = -1;

	if (gwp_metrics(&gw, &m) == 0 && m.body) {
		const char *p = strstr(m.body, name);
		while (p && p > m.body && p[-1] != '\n')
			p = strstr(p + 1, name);
		if (p)
			v = strtoll(p + strlen(name), NULL, 10);
	}
	gwp_resp_free(&m);
	return v;
}

static void test_break_glass(void)
{
	char rid[64] = "", cid[POLICY_CID_MAX];
	long long before = metric("ehrgate_break_glass_reads_total ");
	json_t *log = NULL, *it;
	size_t i;
	bool seen = false;

	grant(c_p1, P1, S1, POLICY_ACT_APPEND, cid);
	CU_ASSERT_EQUAL_FATAL(post_record(c_s1, P1, NULL, rid, sizeof(rid)), 201);
	/* S2 has no contract: refused, then allowed by declaring an emergency. */
	CU_ASSERT_EQUAL(get_record(c_s2, rid, NULL), 403);
	CU_ASSERT_EQUAL(get_record(c_s2, rid, "X-EHR-Break-Glass: too short"), 403);
	CU_ASSERT_EQUAL(get_record(c_s2, rid, "X-EHR-Break-Glass: unconscious patient in the emergency room"),
	                200);
	/* Break-glass never appends. */
	CU_ASSERT_EQUAL(post_record(c_s2, P1, "X-EHR-Break-Glass: unconscious patient in the emergency room",
	                            NULL, 0),
	                403);
	/* A patient cannot break glass into another patient's record. */
	CU_ASSERT_EQUAL(get_record(c_p2, rid, "X-EHR-Break-Glass: unconscious patient in the emergency room"),
	                403);
	CU_ASSERT_EQUAL(metric("ehrgate_break_glass_reads_total "), before + 1);
	/* The patient sees it in the access log, flagged. */
	CU_ASSERT_EQUAL(call(c_p1, "GET", "/v1/me/access-log?limit=1000", NULL, &log), 200);
	json_array_foreach(json_object_get(log, "entries"), i, it)
	{
		if (json_is_true(json_object_get(it, "break_glass"))) {
			seen = true;
			CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(it, "requester")), S2);
			CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(it, "record")), rid);
			CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(it, "reason")),
			                       "allow.break_glass");
		}
		/* Only P1's own entries. */
	}
	CU_ASSERT(seen);
	json_decref(log);
	/* The other patient's log does not show it. */
	log = NULL;
	CU_ASSERT_EQUAL(call(c_p2, "GET", "/v1/me/access-log?limit=1000", NULL, &log), 200);
	json_array_foreach(json_object_get(log, "entries"), i, it)
	{
		CU_ASSERT(!json_is_true(json_object_get(it, "break_glass")));
	}
	json_decref(log);
}

/* A contract naming a group: membership comes from `ehrgate contracts
 * group add|remove` (ledger entries), and takes effect at once. */
static void test_group_grantee(void)
{
	char rid[64] = "", cid[POLICY_CID_MAX] = "", out[1024];
	const char *add[] = { "contracts", "group", "add", "cardiology", S2, NULL };
	const char *rm[] = { "contracts", "group", "remove", "cardiology", S2, NULL };
	json_t *env, *resp = NULL;
	int64_t now = ehr_now_ms() / 1000;
	struct ehr_buf n = EHR_BUF_INIT(64);
	int st = -1;

	grant(c_p1, P1, S1, POLICY_ACT_APPEND, cid);
	CU_ASSERT_EQUAL_FATAL(post_record(c_s1, P1, NULL, rid, sizeof(rid)), 201);
	ehr_random_token(&n, 16);
	env = signed_doc(c_p1, "contract",
	                 json_pack("{s:s, s:s, s:{s:s}, s:[s], s:{s:[s]}, s:s, s:I, s:I, s:I, s:s}", "type",
	                           "ehrgate.contract.v1", "patient", P1, "grantee", "group", "cardiology",
	                           "actions", "read", "scope", "categories", "lab", "purpose", "treatment",
	                           "not_before", (json_int_t)(now - 60), "not_after",
	                           (json_int_t)(now + 3600), "issued_at", (json_int_t)now, "nonce",
	                           ehr_buf_cstr(&n)));
	ehr_buf_free(&n);
	CU_ASSERT_EQUAL(call(c_p1, "POST", "/v1/me/contracts", env, &resp), 201);
	json_decref(env);
	json_decref(resp);
	CU_ASSERT_EQUAL(get_record(c_s2, rid, NULL), 403); /* not in the group yet */
	EHR_ASSERT_OK(gwp_run(&gw, add, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "contract.group.add"));
	CU_ASSERT_EQUAL(get_record(c_s2, rid, NULL), 200);
	EHR_ASSERT_OK(gwp_run(&gw, rm, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_EQUAL(get_record(c_s2, rid, NULL), 403);
	/* A bad group name is refused and writes nothing. */
	{
		const char *bad[] = { "contracts", "group", "add", "bad name", S2, NULL };
		long long before =
		        scalar("SELECT count(*) FROM ledger_entries WHERE type LIKE 'contract.group.%'");
		EHR_ASSERT_OK(gwp_run(&gw, bad, true, &st, out, sizeof(out)));
		CU_ASSERT_EQUAL(st, 1);
		CU_ASSERT_EQUAL(
		        scalar("SELECT count(*) FROM ledger_entries WHERE type LIKE 'contract.group.%'"),
		        before);
	}
}

/* `ehrgate contracts rebuild` from the ledger alone equals the live state,
 * and undoes a superuser's edits to the materialised tables. */
static void test_contracts_rebuild_cli(void)
{
	const char *rebuild[] = { "contracts", "rebuild", NULL }, *digest[] = { "contracts", "digest", NULL };
	char live[256] = "", out[4096] = "", after[256] = "";
	int st = -1;

	EHR_ASSERT_OK(gwp_run(&gw, digest, true, &st, live, sizeof(live)));
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_EQUAL(strlen(live), 65); /* 64 hex + newline */
	EHR_ASSERT_OK(gwp_run(&gw, rebuild, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"rejected\":0"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"changed\":false"));
	EHR_ASSERT_OK(gwp_run(&gw, digest, true, &st, after, sizeof(after)));
	CU_ASSERT_STRING_EQUAL(after, live);
	/* Un-revoke everything and drop a contract behind the ledger's back. */
	CU_ASSERT_EQUAL(exec_su("UPDATE policy_contracts SET revoked_seq = NULL, revocation = NULL, "
	                        "revocation_signature = NULL"),
	                0);
	CU_ASSERT_EQUAL(
	        exec_su("DELETE FROM policy_contracts WHERE created_seq = (SELECT min(created_seq) FROM "
	                "policy_contracts)"),
	        0);
	EHR_ASSERT_OK(gwp_run(&gw, digest, true, &st, after, sizeof(after)));
	CU_ASSERT_STRING_NOT_EQUAL(after, live);
	EHR_ASSERT_OK(gwp_run(&gw, rebuild, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"changed\":true"));
	EHR_ASSERT_OK(gwp_run(&gw, digest, true, &st, after, sizeof(after)));
	CU_ASSERT_STRING_EQUAL(after, live);
}

/* ----------------------------------------------------------------- FHIR */

static void test_fhir_audit_event(void)
{
	const char *hdr[] = { "Accept: application/fhir+json", NULL };
	struct ehr_buf body = EHR_BUF_INIT(1 << 20);
	char path[256], sql[512];
	json_t *b = NULL, *ev, *agent, *entity;
	long status = 0;
	long long seq;

	snprintf(sql, sizeof(sql),
	         "SELECT min(seq) FROM ledger_entries WHERE type = 'contract.create' AND subject = '%s'", P1);
	seq = scalar(sql);
	snprintf(path, sizeof(path), "/v1/audit/entries?type=contract.create&subject=%s&limit=1", P1);
	EHR_ASSERT_OK(ehr_client_request(c_aud, &status, &body, "GET", path, hdr, NULL, 0, NULL, NULL));
	CU_ASSERT_EQUAL_FATAL(status, 200);
	EHR_ASSERT_OK(ehr_json_parse(&b, body.data, body.len, 1 << 20, 16));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(b, "resourceType")), "Bundle");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(b, "type")), "searchset");
	CU_ASSERT_EQUAL_FATAL(json_array_size(json_object_get(b, "entry")), 1);
	ev = json_object_get(json_array_get(json_object_get(b, "entry"), 0), "resource");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ev, "resourceType")), "AuditEvent");
	{
		char id[24];
		snprintf(id, sizeof(id), "%lld", seq);
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ev, "id")), id);
	}
	/* BALP PatientCreate (issue 14): type rest, subtype create, and the
	 * entry type as the last subtype. */
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(ev, "type"), "code")),
	                       "rest");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(ev, "type"), "system")),
	                       "http://terminology.hl7.org/CodeSystem/audit-event-type");
	{
		json_t *sub = json_object_get(ev, "subtype");
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(sub, 0), "code")),
		                       "create");
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(
		                               json_array_get(sub, json_array_size(sub) - 1), "code")),
		                       "contract.create");
		CU_ASSERT_STRING_EQUAL(
		        json_string_value(
		                json_array_get(json_object_get(json_object_get(ev, "meta"), "profile"), 0)),
		        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientCreate");
	}
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ev, "action")), "C");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ev, "outcome")), "0");
	/* recorded is RFC 3339 UTC with milliseconds */
	CU_ASSERT_EQUAL(strlen(json_string_value(json_object_get(ev, "recorded")) ?: ""), 24);
	agent = json_array_get(json_object_get(ev, "agent"), 0);
	CU_ASSERT_STRING_EQUAL(
	        json_string_value(json_object_get(
	                json_object_get(json_object_get(agent, "who"), "identifier"), "value")),
	        P1);
	CU_ASSERT(json_is_true(json_object_get(agent, "requestor")));
	CU_ASSERT_PTR_NOT_NULL(json_string_value(
	        json_object_get(json_object_get(json_object_get(ev, "source"), "observer"), "display")));
	/* entity 0 is the contract (BALP entity[data]), entity 1 the patient */
	entity = json_array_get(json_object_get(ev, "entity"), 1);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(entity, "what"), "type")),
	                       "Patient");
	CU_ASSERT_STRING_EQUAL(
	        json_string_value(json_object_get(
	                json_object_get(json_object_get(entity, "what"), "identifier"), "value")),
	        P1);
	json_decref(b);
	/* The plain JSON form of the same entry carries the encoded bytes. */
	b = NULL;
	CU_ASSERT_EQUAL(call(c_aud, "GET", path, NULL, &b), 200);
	CU_ASSERT_EQUAL(
	        json_integer_value(json_object_get(json_array_get(json_object_get(b, "entries"), 0), "seq")),
	        seq);
	CU_ASSERT_PTR_NOT_NULL(json_string_value(
	        json_object_get(json_array_get(json_object_get(b, "entries"), 0), "entry")));
	json_decref(b);
	ehr_buf_free(&body);
}

/* ------------------------------------------------- FHIR search, Consent */

/* Every FHIR body fetched here goes to this file too, for validate.js. */
static char fhir_file[GWP_PATH + 64];

static long fhir_get(struct ehr_client *c, const char *path, json_t **out)
{
	const char *hdr[] = { "Accept: application/fhir+json", NULL };
	struct ehr_buf body = EHR_BUF_INIT(16 << 20);
	char ct[128] = "";
	long status = 0;
	FILE *f;

	*out = NULL;
	if (ehr_client_request(c, &status, &body, "GET", path, hdr, NULL, 0, NULL, NULL) < 0) {
		ehr_buf_free(&body);
		return 0;
	}
	ehr_client_response_header(c, "Content-Type", ct, sizeof(ct));
	if (status >= 500)
		fprintf(stderr, "\n  %s: %ld %.*s\n", path, status, (int)body.len, (const char *)body.data);
	/* every /fhir reply, errors included, is FHIR JSON */
	if (strncmp(ct, "application/fhir+json", 21) != 0)
		fprintf(stderr, "\n  %s: Content-Type %s\n", path, ct);
	CU_ASSERT(strncmp(ct, "application/fhir+json", 21) == 0);
	if (ehr_json_parse(out, body.data, body.len, 16 << 20, 64) < 0)
		*out = NULL;
	CU_ASSERT_PTR_NOT_NULL(*out);
	if (fhir_file[0] && (f = fopen(fhir_file, "a")) != NULL) {
		fwrite(body.data, 1, body.len, f);
		fputc('\n', f);
		fclose(f);
	}
	ehr_buf_free(&body);
	return status;
}

static const char *rtype(const json_t *j)
{
	return json_string_value(json_object_get(j, "resourceType")) ?: "";
}

/* A refusal: the status and an OperationOutcome whose text names `what`. */
static void expect_outcome(struct ehr_client *c, const char *path, long want, const char *what)
{
	json_t *j = NULL;
	long st = fhir_get(c, path, &j);
	const char *text = json_string_value(json_object_get(
	        json_object_get(json_array_get(json_object_get(j, "issue"), 0), "details"), "text"));

	if (st != want)
		fprintf(stderr, "\n  %s: %ld, wanted %ld\n", path, st, want);
	CU_ASSERT_EQUAL(st, want);
	CU_ASSERT_STRING_EQUAL(rtype(j), "OperationOutcome");
	if (what)
		CU_ASSERT(text && strstr(text, what) != NULL);
	json_decref(j);
}

static size_t entries_n(const json_t *b)
{
	return json_array_size(json_object_get(b, "entry"));
}

static const json_t *entry_res(const json_t *b, size_t i)
{
	return json_object_get(json_array_get(json_object_get(b, "entry"), i), "resource");
}

static const char *link_of(const json_t *b, const char *rel)
{
	size_t i;
	json_t *l;

	json_array_foreach(json_object_get(b, "link"), i, l)
	{
		if (strcmp(json_string_value(json_object_get(l, "relation")) ?: "", rel) == 0)
			return json_string_value(json_object_get(l, "url"));
	}
	return NULL;
}

static bool has_subtype(const json_t *ev, const char *code)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(ev, "subtype"), i, c)
	{
		if (strcmp(json_string_value(json_object_get(c, "code")) ?: "", code) == 0)
			return true;
	}
	return false;
}

static void test_fhir_auditevent_search(void)
{
	char path[512], dir[GWP_PATH];
	json_t *b = NULL, *b2 = NULL, *ev = NULL;
	const char *next, *id0;
	long st;

	CU_ASSERT_FATAL(ehr_test_tmpdir(dir, sizeof(dir), "fhirs") == 0);
	snprintf(fhir_file, sizeof(fhir_file), "%s/fhir.jsonl", dir);
	/* metadata is public */
	CU_ASSERT_EQUAL(fhir_get(c_none, "/fhir/metadata", &b), 200);
	CU_ASSERT_STRING_EQUAL(rtype(b), "CapabilityStatement");
	json_decref(b);
	/* contract.create entries of P1, through the indexed subtype */
	snprintf(path, sizeof(path),
	         "/fhir/AuditEvent?patient=%s&subtype=urn:ehrgate:ledger-entry-type%%7Ccontract.create", P1);
	CU_ASSERT_EQUAL(fhir_get(c_aud, path, &b), 200);
	CU_ASSERT_STRING_EQUAL(rtype(b), "Bundle");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(b, "type")), "searchset");
	CU_ASSERT(entries_n(b) >= 2);
	for (size_t i = 0; i < entries_n(b); i++) {
		CU_ASSERT(has_subtype(entry_res(b, i), "contract.create"));
		CU_ASSERT(has_subtype(entry_res(b, i), "create"));
	}
	/* paging: _count=1, the next link gives the next one */
	snprintf(path, sizeof(path),
	         "/fhir/"
	         "AuditEvent?patient=%s&subtype=urn:ehrgate:ledger-entry-type%%7Ccontract.create&_count=1",
	         P1);
	CU_ASSERT_EQUAL(fhir_get(c_aud, path, &b2), 200);
	CU_ASSERT_EQUAL(entries_n(b2), 1);
	id0 = json_string_value(json_object_get(entry_res(b2, 0), "id"));
	CU_ASSERT_STRING_EQUAL(id0, json_string_value(json_object_get(entry_res(b, 0), "id")));
	next = link_of(b2, "next");
	CU_ASSERT_FATAL(next != NULL);
	snprintf(path, sizeof(path), "%s", next);
	json_decref(b2);
	CU_ASSERT_EQUAL(fhir_get(c_aud, path, &b2), 200);
	CU_ASSERT_EQUAL(entries_n(b2), 1);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(entry_res(b2, 0), "id")),
	                       json_string_value(json_object_get(entry_res(b, 1), "id")));
	/* read by id */
	snprintf(path, sizeof(path), "/fhir/AuditEvent/%s",
	         json_string_value(json_object_get(entry_res(b, 0), "id")));
	CU_ASSERT_EQUAL(fhir_get(c_aud, path, &ev), 200);
	CU_ASSERT(json_equal(ev, (json_t *)entry_res(b, 0)));
	json_decref(ev);
	json_decref(b2);
	json_decref(b);
	/* outcome, type (token with system), entity, date */
	CU_ASSERT_EQUAL(fhir_get(c_aud, "/fhir/AuditEvent?outcome=4&_count=50", &b), 200);
	CU_ASSERT(entries_n(b) > 0);
	for (size_t i = 0; i < entries_n(b); i++)
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(entry_res(b, i), "outcome")), "4");
	json_decref(b);
	CU_ASSERT_EQUAL(
	        fhir_get(c_aud, "/fhir/AuditEvent?type=http://dicom.nema.org/resources/ontology/DCM%7C110114",
	                 &b),
	        200);
	CU_ASSERT(entries_n(b) > 0);
	for (size_t i = 0; i < entries_n(b); i++)
		CU_ASSERT(has_subtype(entry_res(b, i), "110122"));
	json_decref(b);
	snprintf(path, sizeof(path), "/fhir/AuditEvent?entity=%s&agent=%s", P1, S1);
	CU_ASSERT_EQUAL(fhir_get(c_aud, path, &b), 200);
	CU_ASSERT(entries_n(b) > 0);
	json_decref(b);
	CU_ASSERT_EQUAL(fhir_get(c_aud, "/fhir/AuditEvent?date=ge2100-01-01", &b), 200);
	CU_ASSERT_EQUAL(entries_n(b), 0);
	CU_ASSERT_PTR_NULL(json_object_get(b, "entry")); /* no empty arrays in R4 */
	json_decref(b);
	CU_ASSERT_EQUAL(fhir_get(c_aud, "/fhir/AuditEvent?date=ge2020-01-01&date=lt2100&_count=3", &b), 200);
	CU_ASSERT_EQUAL(entries_n(b), 3);
	json_decref(b);
	/* refusals are OperationOutcomes */
	expect_outcome(c_aud, "/fhir/AuditEvent?foo=1", 400, "foo");
	expect_outcome(c_aud, "/fhir/AuditEvent?_count=1&_count=2", 400, "_count");
	expect_outcome(c_aud, "/fhir/AuditEvent?date=yesterday", 400, "date");
	expect_outcome(c_aud, "/fhir/AuditEvent?outcome=3", 400, "outcome");
	expect_outcome(c_aud, "/fhir/AuditEvent?patient=..", 400, "patient");
	expect_outcome(c_aud, "/fhir/AuditEvent/99999999999", 404, NULL);
	expect_outcome(c_aud, "/fhir/AuditEvent/01", 400, NULL);
	expect_outcome(c_aud, "/fhir/Nothing", 404, NULL);
	/* the other kind of credential: 403 (wrong_role), as an OperationOutcome */
	{
		json_t *j = NULL;
		long s = fhir_get(c_p1, "/fhir/AuditEvent", &j);
		CU_ASSERT_EQUAL(s, 403);
		CU_ASSERT_STRING_EQUAL(rtype(j), "OperationOutcome");
		json_decref(j);
	}
	expect_outcome(c_s1, "/fhir/AuditEvent", 403, NULL);
	expect_outcome(c_none, "/fhir/AuditEvent", 401, NULL);
	/* a plain JSON error elsewhere, as before */
	st = call(c_aud, "GET", "/v1/audit/entries?foo=1", NULL, &b);
	CU_ASSERT_EQUAL(st, 400);
	CU_ASSERT_PTR_NOT_NULL(json_object_get(b, "error"));
	json_decref(b);
}

/* The signed original attached to a Consent verifies with its jwk. */
static void check_attachment(const json_t *consent, const char *member)
{
	const char *data =
	        json_string_value(json_object_get(json_object_get(consent, "sourceAttachment"), "data"));
	struct ehr_buf raw = EHR_BUF_INIT(1 << 20);
	json_t *p = NULL;
	EVP_PKEY *key = NULL;

	CU_ASSERT_FATAL(data != NULL);
	EHR_ASSERT_OK(ehr_b64_decode(&raw, data, strlen(data)));
	EHR_ASSERT_OK(ehr_json_parse(&p, raw.data, raw.len, 1 << 20, 16));
	EHR_ASSERT_OK(ehr_jwk_parse(&key, json_object_get(p, "jwk")));
	EHR_ASSERT_OK(policy_verify_es256(json_object_get(p, member),
	                                  json_string_value(json_object_get(p, "signature")), key));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "cid")),
	                       json_string_value(json_object_get(
	                               json_array_get(json_object_get(consent, "identifier"), 0), "value")));
	EVP_PKEY_free(key);
	json_decref(p);
	ehr_buf_free(&raw);
}

static void test_fhir_consent(void)
{
	char path[512];
	json_t *b = NULL, *c = NULL;
	size_t active = 0, inactive = 0, revocations = 0;
	const char *own_id = NULL;

	snprintf(path, sizeof(path), "/fhir/Consent?patient=%s", P1);
	CU_ASSERT_EQUAL_FATAL(fhir_get(c_aud, path, &b), 200);
	CU_ASSERT(entries_n(b) >= 2);
	for (size_t i = 0; i < entries_n(b); i++) {
		const json_t *r = entry_res(b, i);
		const char *status = json_string_value(json_object_get(r, "status"));
		const char *title =
		        json_string_value(json_object_get(json_object_get(r, "sourceAttachment"), "title"));
		bool is_rev = title && strstr(title, "revocation") != NULL;

		CU_ASSERT_STRING_EQUAL(rtype(r), "Consent");
		CU_ASSERT_STRING_EQUAL(
		        json_string_value(json_object_get(
		                json_object_get(json_object_get(r, "patient"), "identifier"), "value")),
		        P1);
		CU_ASSERT_STRING_EQUAL(
		        json_string_value(json_object_get(json_object_get(r, "provision"), "type")),
		        "permit");
		check_attachment(r, is_rev ? "revocation" : "contract");
		revocations += is_rev;
		active += strcmp(status, "active") == 0;
		inactive += strcmp(status, "inactive") == 0;
		if (own_id == NULL)
			own_id = json_string_value(json_object_get(r, "id"));
	}
	CU_ASSERT(active >= 1);
	CU_ASSERT(revocations >= 1); /* contract_api revoked one */
	CU_ASSERT(inactive >= 2);    /* the revoked contract and its revocation */
	/* read by id; the patient reads its own, another patient gets 404 */
	CU_ASSERT_FATAL(own_id != NULL);
	snprintf(path, sizeof(path), "/fhir/Consent/%s", own_id ? own_id : "0");
	CU_ASSERT_EQUAL(fhir_get(c_aud, path, &c), 200);
	CU_ASSERT(json_equal(c, (json_t *)entry_res(b, 0)));
	json_decref(c);
	CU_ASSERT_EQUAL(fhir_get(c_p1, path, &c), 200);
	json_decref(c);
	expect_outcome(c_p2, path, 404, NULL);
	expect_outcome(c_s1, path, 403, NULL);
	CU_ASSERT_EQUAL(fhir_get(c_p1, "/fhir/Consent", &c), 200);
	CU_ASSERT_EQUAL(entries_n(c), entries_n(b));
	json_decref(c);
	snprintf(path, sizeof(path), "/fhir/Consent?patient=%s", P2);
	expect_outcome(c_p1, path, 403, NULL);
	/* an AuditEvent's seq is no Consent */
	CU_ASSERT_EQUAL(fhir_get(c_aud, "/fhir/Consent?_count=1", &c), 200);
	CU_ASSERT_EQUAL(entries_n(c), 1);
	CU_ASSERT_PTR_NOT_NULL(link_of(c, "next"));
	json_decref(c);
	expect_outcome(c_aud, "/fhir/Consent/0", 404, NULL);
	json_decref(b);
}

/* Wait until `sql` counts at least `want` (audit.query entries are
 * committed by the flusher shortly after the reply). */
static long long wait_count(const char *sql, long long want)
{
	int64_t end = ehr_monotonic_ms() + 10000;
	long long n;

	while ((n = scalar(sql)) < want && ehr_monotonic_ms() < end)
		gwp_sleep_ms(20);
	return n;
}

/* Wait until the ledger stops growing for 300 ms: the audit.query entries
 * of earlier requests have been committed. */
static void settle(void)
{
	int64_t end = ehr_monotonic_ms() + 10000;
	long long n = scalar("SELECT count(*) FROM ledger_entries"), m;
	int quiet = 0;

	while (quiet < 15 && ehr_monotonic_ms() < end) {
		gwp_sleep_ms(20);
		m = scalar("SELECT count(*) FROM ledger_entries");
		quiet = m == n ? quiet + 1 : 0;
		n = m;
	}
}

/* Refusals the other cases may not have made: each one an entry with
 * outcome "failure" (issue 14: 41 of them rendered as success). */
static void provoke_refusals(void)
{
	json_t *resp = NULL, *req;
	long status = 0;
	char out[4096];
	int st = -1;

	/* auth.register: a bad registration token */
	CU_ASSERT(ehr_client_register(gw.base_url, gw.ca_pem, "not-a-token", "/tmp/ehr-nonexistent-dir",
	                              &resp) < 0);
	json_decref(resp);
	resp = NULL;
	/* auth.enroll: a bad enrolment code */
	CU_ASSERT(ehr_client_enroll(gw.base_url, gw.ca_pem, P1, "bad-code", NULL,
	                            "/tmp/ehr-nonexistent-dir") < 0);
	/* auth.token: a login that does not verify */
	{
		char ts[24];
		snprintf(ts, sizeof(ts), "%lld", (long long)(ehr_now_ms() / 1000));
		req = json_pack("{s:s, s:s, s:s, s:s}", "patient_id", P1, "nonce", "AAAA", "ts", ts,
		                "signature", "AAAA");
	}
	EHR_ASSERT_OK(ehr_client_json(c_none, &status, &resp, "POST", "/v1/auth/token", req));
	CU_ASSERT(status >= 400 && status < 500);
	json_decref(req);
	json_decref(resp);
	resp = NULL;
	/* auth.dpop with an empty subject: no credentials on a patient route */
	EHR_ASSERT_OK(ehr_client_json(c_none, &status, &resp, "GET", "/v1/me/contracts", NULL));
	CU_ASSERT_EQUAL(status, 401);
	json_decref(resp);
	resp = NULL;
	/* auth.mtls refused: an auditor certificate on a server route */
	EHR_ASSERT_OK(ehr_client_json(c_aud, &status, &resp, "POST", "/v1/patients", NULL));
	CU_ASSERT_EQUAL(status, 403);
	json_decref(resp);
	/* ehr.hold.place, ehr.erase.refused (409 under the hold), ehr.hold.lift,
	 * then ehr.erase: a record of P1's stored by S1 under a contract */
	{
		char rid[64] = "", cid[POLICY_CID_MAX] = "", path[128];
		const char *place[] = { "admin",    "hold",       "place", "--record", rid,
			                "--reason", "litigation", "-c",    gw.config,  NULL };
		const char *lift[] = { "admin",    "hold",       "lift", "--record", rid,
			               "--reason", "litigation", "-c",   gw.config,  NULL };
		json_t *b = json_pack("{s:s}", "basis", "patient-request");

		grant(c_p1, P1, S1, POLICY_ACT_APPEND, cid);
		CU_ASSERT_EQUAL_FATAL(post_record(c_s1, P1, NULL, rid, sizeof(rid)), 201);
		revoke_contract(c_p1, P1, cid);
		snprintf(path, sizeof(path), "/v1/records/%s/erase", rid);
		EHR_ASSERT_OK(gwp_run(&gw, place, false, &st, out, sizeof(out)));
		CU_ASSERT_EQUAL(st, 0);
		CU_ASSERT_EQUAL(call(c_p1, "POST", path, b, NULL), 409);
		EHR_ASSERT_OK(gwp_run(&gw, lift, false, &st, out, sizeof(out)));
		CU_ASSERT_EQUAL(st, 0);
		CU_ASSERT_EQUAL(call(c_p1, "POST", path, b, NULL), 200);
		json_decref(b);
	}
	/* audit.query, success and refused, on a /fhir route */
	CU_ASSERT_EQUAL(call(c_aud, "GET", "/fhir/AuditEvent?_count=1", NULL, NULL), 200);
	CU_ASSERT_EQUAL(call(c_aud, "GET", "/fhir/AuditEvent?foo=1", NULL, NULL), 400);
	settle(); /* the audit.query entries are committed after their replies */
	/* auth.renew and auth.revoke (success) */
	{
		char dir[GWP_PATH + 16], id[160];
		const char *args[] = { "admin", "revoke", id, "-c", gw.config, NULL };
		json_t *info = NULL;

		snprintf(dir, sizeof(dir), "%s/renewer", gw.dir);
		CU_ASSERT_FATAL(register_principal("server", "renewer", dir, id, sizeof(id)) == 0);
		EHR_ASSERT_OK(ehr_client_renew(dir, &info));
		json_decref(info);
		EHR_ASSERT_OK(gwp_run(&gw, args, false, &st, out, sizeof(out)));
		CU_ASSERT_EQUAL(st, 0);
	}
}

/* The /fhir AuditEvent and Consent reads are audit reads (issue 14 item 2):
 * each request, refused or not, is one audit.query entry naming the route,
 * the raw query, the outcome, the count of a search and the patient it
 * filtered on. */
static void test_fhir_audit_queries(void)
{
	static const struct {
		const char *route, *outcome;
		bool count, patient;
	} want[] = {
		{ "fhir.auditevent.search", "success", true, true },
		{ "fhir.auditevent.search", "failure", false, false },
		{ "fhir.auditevent.search", "failure", false, false },
		{ "fhir.auditevent.read", "success", false, false },
		{ "fhir.consent.search", "success", true, true },
		{ "fhir.consent.read", "failure", false, false },
	};
	char sql[256], path[512];
	long long before, after, start, top;
	json_t *resp = NULL, *it;
	size_t i, n = 0;

	settle();
	start = scalar("SELECT max(seq) + 1 FROM ledger_entries");
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM ledger_entries WHERE type = 'audit.query'");
	before = scalar(sql);
	snprintf(path, sizeof(path), "/fhir/AuditEvent?patient=%s&_count=2", P1);
	CU_ASSERT_EQUAL(call(c_aud, "GET", path, NULL, NULL), 200);
	CU_ASSERT_EQUAL(call(c_aud, "GET", "/fhir/AuditEvent?foo=1", NULL, NULL), 400);
	CU_ASSERT_EQUAL(call(c_aud, "GET", "/fhir/AuditEvent?_count=abc", NULL, NULL), 400);
	CU_ASSERT_EQUAL(call(c_aud, "GET", "/fhir/AuditEvent/1", NULL, NULL), 200);
	CU_ASSERT_EQUAL(call(c_p1, "GET", "/fhir/Consent?_count=1", NULL, NULL), 200);
	CU_ASSERT_EQUAL(call(c_aud, "GET", "/fhir/Consent/0", NULL, NULL), 404);
	after = wait_count(sql, before + 6);
	CU_ASSERT_EQUAL(after, before + 6);
	top = scalar("SELECT max(seq) + 1 FROM ledger_entries");
	snprintf(path, sizeof(path), "/v1/audit/entries?type=audit.query&from_seq=%lld&to_seq=%lld", start,
	         top);
	CU_ASSERT_EQUAL_FATAL(call(c_aud, "GET", path, NULL, &resp), 200);
	json_array_foreach(json_object_get(resp, "entries"), i, it)
	{
		json_t *pl = json_object_get(it, "payload");
		const char *route = json_string_value(json_object_get(pl, "route"));
		const char *outcome = json_string_value(json_object_get(pl, "outcome"));
		const char *subject = json_string_value(json_object_get(it, "subject"));

		CU_ASSERT_FATAL(n < EHR_ARRAY_LEN(want) && route && outcome && subject);
		CU_ASSERT_STRING_EQUAL(route, want[n].route);
		CU_ASSERT_STRING_EQUAL(outcome, want[n].outcome);
		CU_ASSERT_EQUAL(json_is_integer(json_object_get(pl, "count")), want[n].count);
		CU_ASSERT_STRING_EQUAL(subject, want[n].patient ? P1 : "");
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(it, "actor")),
		                       strcmp(route, "fhir.consent.search") == 0 ? P1 : AUD);
		n++;
	}
	CU_ASSERT_EQUAL(n, EHR_ARRAY_LEN(want));
	json_decref(resp);
}

/* Issue 14: every AuditEvent the gateway can emit validates against the
 * HL7 FHIR R4 JSON schema and the BALP constraints of its profile
 * (tests/fhir/validate.js), and every entry type is among them. */
static void test_fhir_every_event_validates(void)
{
	static const char *const want[] = {
		"auth.register outcome=0",       "auth.register outcome=4",   "auth.renew outcome=0",
		"auth.patient.create outcome=0", "auth.enroll outcome=0",     "auth.enroll outcome=4",
		"auth.token outcome=0",          "auth.token outcome=4",      "auth.mtls outcome=0",
		"auth.mtls outcome=4",           "auth.dpop outcome=0",       "auth.dpop outcome=4",
		"auth.revoke outcome=0",         "contract.create outcome=0", "contract.revoke outcome=0",
		"contract.group.add outcome=0",  "ehr.store outcome=0",       "ehr.read outcome=0",
		"access.decision outcome=0",     "access.decision outcome=4", "ehr.erase outcome=0",
		"ehr.erase.refused outcome=4",   "ehr.hold.place outcome=0",  "ehr.hold.lift outcome=0",
		"audit.query outcome=0",         "audit.query outcome=4",
	};
	static const char *const profiles[] = {
		"IHE.BasicAudit.PatientRead",   "IHE.BasicAudit.OAUTHaccessTokenUse.Minimal",
		"IHE.BasicAudit.PatientCreate", "IHE.BasicAudit.PatientUpdate",
		"IHE.BasicAudit.PatientDelete", "IHE.BasicAudit.Query",
		"IHE.BasicAudit.AuthZconsent",
	};
	static const char *const invalid[] = { "empty-subject.json", "read-no-patient.json",
		                               "read-failure-claims-profile.json" };
	const char *hdr[] = { "Accept: application/fhir+json", NULL };
	char dir[GWP_PATH], file[GWP_PATH + 64], script[GWP_PATH + 64], path[160], cursor[32] = "0";
	static char out[1 << 20];
	const char *argv[] = { "/usr/bin/env", "node", script, file, NULL };
	struct ehr_buf body = EHR_BUF_INIT(64 << 20);
	json_t *summary = NULL, *types;
	const char *last;
	FILE *f;
	int rc;

	provoke_refusals();
	CU_ASSERT_FATAL(ehr_test_tmpdir(dir, sizeof(dir), "fhir") == 0);
	snprintf(file, sizeof(file), "%s/bundles.jsonl", dir);
	snprintf(script, sizeof(script), "%s/tests/fhir/validate.js", EHR_SOURCE_DIR);
	f = fopen(file, "w");
	CU_ASSERT_FATAL(f != NULL);
	for (int page = 0; page < 1000; page++) {
		json_t *b = NULL;
		const char *next, *c;
		long status = 0;

		body.len = 0;
		snprintf(path, sizeof(path), "/v1/audit/entries?limit=1000&cursor=%s", cursor);
		EHR_ASSERT_OK(
		        ehr_client_request(c_aud, &status, &body, "GET", path, hdr, NULL, 0, NULL, NULL));
		CU_ASSERT_EQUAL_FATAL(status, 200);
		fwrite(body.data, 1, body.len, f);
		fputc('\n', f);
		CU_ASSERT_FATAL(ehr_json_parse(&b, body.data, body.len, 64 << 20, 64) == 0);
		next = json_string_value(
		        json_object_get(json_array_get(json_object_get(b, "link"), 0), "url"));
		c = next ? strstr(next, "cursor=") : NULL;
		if (c == NULL) {
			json_decref(b);
			break;
		}
		snprintf(cursor, sizeof(cursor), "%.*s", (int)strcspn(c + 7, "&"), c + 7);
		json_decref(b);
	}
	fclose(f);
	ehr_buf_free(&body);
	if (fhir_file[0]) { /* Bundles, Consents, CapabilityStatement, OperationOutcomes */
		const char *argv2[] = { "/usr/bin/env", "node", script, fhir_file, NULL };
		rc = ehr_test_run(out, sizeof(out), argv2);
		if (rc != 0)
			fprintf(stderr, "\n  validate.js %s exited %d:\n%.20000s\n", fhir_file, rc, out);
		CU_ASSERT_EQUAL(rc, 0);
	}
	rc = ehr_test_run(out, sizeof(out), argv);
	if (rc != 0)
		fprintf(stderr, "\n  validate.js exited %d:\n%.20000s\n", rc, out);
	CU_ASSERT_EQUAL(rc, 0);
	/* the last line is the summary */
	last = out + strlen(out);
	while (last > out && last[-1] == '\n')
		last--;
	while (last > out && last[-1] != '\n')
		last--;
	summary = json_loads(last, 0, NULL);
	CU_ASSERT_FATAL(summary != NULL);
	types = json_object_get(summary, "entry_types");
	for (size_t i = 0; i < EHR_ARRAY_LEN(want); i++) {
		if (json_object_get(types, want[i]) == NULL) {
			fprintf(stderr, "\n  no AuditEvent for %s\n", want[i]);
			CU_FAIL("an entry type the gateway emits was not rendered");
		}
	}
	/* a patient's read carries its token id (BALP OAUTHaccessTokenUse); the
	 * erasure, the holds and the audit queries follow their profiles */
	for (size_t i = 0; i < EHR_ARRAY_LEN(profiles); i++) {
		if (json_object_get(json_object_get(summary, "profiles"), profiles[i]) == NULL) {
			fprintf(stderr, "\n  no AuditEvent declares %s\n", profiles[i]);
			CU_FAIL("a BALP profile the gateway emits was not rendered");
		}
	}
	CU_ASSERT(json_integer_value(json_object_get(summary, "invalid")) == 0);
	json_decref(summary);
	ehr_test_rmrf(dir);
	/* and the validator refuses what main rendered before (an empty subject)
	 * and what BALP forbids */
	for (size_t i = 0; i < EHR_ARRAY_LEN(invalid); i++) {
		snprintf(file, sizeof(file), "%s/tests/fhir/invalid/%s", EHR_SOURCE_DIR, invalid[i]);
		rc = ehr_test_run(out, sizeof(out), argv);
		if (rc != 1)
			fprintf(stderr, "\n  %s: validate.js exited %d, wanted 1\n", invalid[i], rc);
		CU_ASSERT_EQUAL(rc, 1);
	}
}

/* Filters and cursor pagination walk every entry exactly once. */
static void test_query_pagination(void)
{
	long long total = scalar("SELECT count(*) FROM ledger_entries");
	long long walked = 0, last = -1;
	char path[128], cursor[32] = "0";
	bool order_ok = true;

	for (int guard = 0; guard < 1000; guard++) {
		json_t *resp = NULL, *it;
		size_t i;
		/* to_seq: each page is itself an audit.query entry; walk what existed */
		snprintf(path, sizeof(path), "/v1/audit/entries?limit=7&cursor=%s&to_seq=%lld", cursor,
		         total);
		CU_ASSERT_EQUAL_FATAL(call(c_aud, "GET", path, NULL, &resp), 200);
		json_array_foreach(json_object_get(resp, "entries"), i, it)
		{
			long long s = json_integer_value(json_object_get(it, "seq"));
			if (s != last + 1)
				order_ok = false;
			last = s;
			walked++;
		}
		if (!json_is_string(json_object_get(resp, "next_cursor"))) {
			json_decref(resp);
			break;
		}
		snprintf(cursor, sizeof(cursor), "%s",
		         json_string_value(json_object_get(resp, "next_cursor")));
		json_decref(resp);
	}
	CU_ASSERT(order_ok);
	CU_ASSERT_EQUAL(walked, total);
	/* A type filter returns only that type; a bad parameter is a 400. */
	{
		json_t *resp = NULL, *it;
		size_t i;
		CU_ASSERT_EQUAL(call(c_aud, "GET", "/v1/audit/entries?type=contract.revoke", NULL, &resp),
		                200);
		CU_ASSERT(json_array_size(json_object_get(resp, "entries")) > 0);
		json_array_foreach(json_object_get(resp, "entries"), i, it)
		{
			CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(it, "type")),
			                       "contract.revoke");
		}
		json_decref(resp);
		CU_ASSERT_EQUAL(call(c_aud, "GET", "/v1/audit/entries?limit=abc", NULL, NULL), 400);
		CU_ASSERT_EQUAL(call(c_aud, "GET", "/v1/audit/entries?since=99999999999999", NULL, &resp),
		                200);
		CU_ASSERT_EQUAL(json_array_size(json_object_get(resp, "entries")), 0);
		json_decref(resp);
	}
}

/* --------------------------------------------------------- audit.query */

/* Every audit read is one audit.query entry: actor the caller, subject the
 * patient filtered on, payload {route, query, outcome, count}; a refused
 * (400) query is recorded as a failure, by the handler or by the route's
 * query check. */
static void test_audit_query_entries(void)
{
	char sql[512], path[512], q[256];
	long long before, after, top, start;
	json_t *resp = NULL, *it;
	size_t i;
	int ok = 0, failed = 0, patient = 0;

	settle();
	start = scalar("SELECT max(seq) + 1 FROM ledger_entries");
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM ledger_entries WHERE type = 'audit.query'");
	before = scalar(sql);
	snprintf(q, sizeof(q), "type=contract.create&subject=%s&limit=2", P1);
	for (int k = 0; k < 5; k++) {
		snprintf(path, sizeof(path), "/v1/audit/entries?%s", q);
		CU_ASSERT_EQUAL(call(c_aud, "GET", path, NULL, NULL), 200);
	}
	CU_ASSERT_EQUAL(call(c_aud, "GET", "/v1/audit/entries?limit=abc", NULL, NULL), 400);
	/* refused by the route's query check (an unknown name): recorded too */
	CU_ASSERT_EQUAL(call(c_aud, "GET", "/v1/audit/entries?foo=1", NULL, NULL), 400);
	CU_ASSERT_EQUAL(call(c_aud, "GET", "/v1/ledger/checkpoint", NULL, NULL), 200);
	CU_ASSERT_EQUAL(call(c_p1, "GET", "/v1/me/access-log?limit=3", NULL, NULL), 200);
	after = wait_count(sql, before + 9);
	CU_ASSERT_EQUAL(after, before + 9);
	if (after != before + 9)
		fprintf(stderr, "\n  audit.query entries: %lld, wanted %lld\n", after, before + 9);
	gwp_sleep_ms(200); /* nothing more arrives */
	CU_ASSERT_EQUAL(scalar(sql), before + 9);

	top = scalar("SELECT max(seq) + 1 FROM ledger_entries");
	snprintf(path, sizeof(path), "/v1/audit/entries?type=audit.query&from_seq=%lld&to_seq=%lld", start,
	         top);
	CU_ASSERT_EQUAL_FATAL(call(c_aud, "GET", path, NULL, &resp), 200);
	json_array_foreach(json_object_get(resp, "entries"), i, it)
	{
		json_t *pl = json_object_get(it, "payload");
		const char *actor = json_string_value(json_object_get(it, "actor"));
		const char *subject = json_string_value(json_object_get(it, "subject"));
		const char *route = json_string_value(json_object_get(pl, "route"));
		const char *query = json_string_value(json_object_get(pl, "query"));
		const char *outcome = json_string_value(json_object_get(pl, "outcome"));

		CU_ASSERT_PTR_NOT_NULL_FATAL(route);
		CU_ASSERT_PTR_NOT_NULL_FATAL(query);
		CU_ASSERT_PTR_NOT_NULL_FATAL(outcome);
		if (strcmp(route, "me.access_log") == 0) {
			patient++;
			CU_ASSERT_STRING_EQUAL(actor, P1);
			CU_ASSERT_STRING_EQUAL(subject, P1);
			CU_ASSERT_STRING_EQUAL(query, "limit=3");
			CU_ASSERT_STRING_EQUAL(outcome, "success");
			CU_ASSERT(json_is_integer(json_object_get(pl, "count")));
			continue;
		}
		CU_ASSERT_STRING_EQUAL(actor, AUD);
		if (strcmp(route, "ledger.checkpoint") == 0) {
			CU_ASSERT_STRING_EQUAL(query, "");
			CU_ASSERT_PTR_NULL(json_object_get(pl, "count"));
			continue;
		}
		CU_ASSERT_STRING_EQUAL(route, "audit.entries");
		if (strcmp(outcome, "failure") == 0) {
			failed++;
			CU_ASSERT(strcmp(query, "limit=abc") == 0 || strcmp(query, "foo=1") == 0);
			CU_ASSERT_STRING_EQUAL(subject, "");
			CU_ASSERT_PTR_NULL(json_object_get(pl, "count"));
		} else {
			ok++;
			CU_ASSERT_STRING_EQUAL(outcome, "success");
			CU_ASSERT_STRING_EQUAL(query, q);
			CU_ASSERT_STRING_EQUAL(subject, P1);
			CU_ASSERT_EQUAL(json_integer_value(json_object_get(pl, "count")), 2);
		}
	}
	json_decref(resp);
	CU_ASSERT_EQUAL(ok, 5);
	CU_ASSERT_EQUAL(failed, 2);
	CU_ASSERT_EQUAL(patient, 1);
}

/* A clean shutdown commits every queued audit.query entry (AUDIT.md §7):
 * counted right after the gateway stopped, without waiting. */
static void test_audit_query_shutdown(void)
{
	const char *sql = "SELECT count(*) FROM ledger_entries WHERE type = 'audit.query'";
	long long before;

	settle();
	before = scalar(sql);
	for (int i = 0; i < 20; i++)
		CU_ASSERT_EQUAL(call(c_aud, "GET", "/v1/ledger/checkpoint", NULL, NULL), 200);
	CU_ASSERT_EQUAL(gwp_stop(&gw, NULL, 0), 0);
	CU_ASSERT_EQUAL(scalar(sql), before + 20);
	CU_ASSERT_EQUAL_FATAL(start_gw(), 0);
}

/* ------------------------------------------------------------ ehrctl */

/* Run ehrctl with --dir dir; stdout+stderr into out. Returns the exit code. */
static int ctl(const char *dir, const char *args, char *out, size_t cap)
{
	const char *bin = ehr_test_env("EHRGATE_CTL");
	char cmd[4096];
	FILE *f;
	size_t n;
	int st;

	if (bin == NULL)
		bin = "client/ehrctl";
	snprintf(cmd, sizeof(cmd), "'%s' --dir '%s' %s 2>&1", bin, dir, args);
	f = popen(cmd, "r");
	if (f == NULL)
		return -1;
	n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void append_contracts(int n);

/* Break-glass through ehrctl: refused without a declaration, allowed and
 * counted with one; a justification with a line break is refused locally. */
static void test_break_glass_ctl(void)
{
	char rid[64] = "", cid[POLICY_CID_MAX], args[2 * GWP_PATH + 256], out[4096], path[GWP_PATH + 32];
	long long before = metric("ehrgate_break_glass_reads_total ");
	struct ehr_buf got = EHR_BUF_INIT(1 << 20);

	grant(c_p1, P1, S1, POLICY_ACT_APPEND, cid);
	CU_ASSERT_EQUAL_FATAL(post_record(c_s1, P1, NULL, rid, sizeof(rid)), 201);
	snprintf(path, sizeof(path), "%s/bg.out", gw.dir);
	snprintf(args, sizeof(args), "record get %s -o '%s'", rid, path);
	CU_ASSERT_NOT_EQUAL(ctl(dir_s2, args, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "forbidden"));
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
	snprintf(args, sizeof(args),
	         "record get %s -o '%s' --break-glass \"$(printf 'line\\nbreak injected')\"", rid, path);
	CU_ASSERT_EQUAL(ctl(dir_s2, args, out, sizeof(out)), 2);
	snprintf(args, sizeof(args),
	         "record get %s -o '%s' --break-glass 'unconscious patient in the emergency room'", rid,
	         path);
	CU_ASSERT_EQUAL(ctl(dir_s2, args, out, sizeof(out)), 0);
	EHR_ASSERT_OK(ehr_file_read(&got, path, 1 << 20));
	CU_ASSERT(got.len > 0);
	CU_ASSERT_EQUAL(metric("ehrgate_break_glass_reads_total "), before + 1);
	unlink(path);
	ehr_buf_free(&got);
}

static char verify_args[2048];

/* The integer member `name` of verify's JSON line, -1 when absent. */
static long long out_num(const char *out, const char *name)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "\"%s\":", name);
	p = strstr(out, key);
	return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static int verify(char *out, size_t cap, bool full)
{
	char args[2200];
	snprintf(args, sizeof(args), "%s%s", verify_args, full ? " --full" : "");
	return ctl(dir_aud, args, out, cap);
}

static void test_verify_detects_tampering(void)
{
	char out[8192];
	long long k, size1, size2, last_size;
	PGresult *saved;

	snprintf(verify_args, sizeof(verify_args),
	         "audit verify --ledger-key '%s/ledger.pub' --state '%s/aud-state.json'", gw.state_dir,
	         gw.dir);
	CU_ASSERT_EQUAL(verify(out, sizeof(out), false), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"ok\":true"));
	/* Verifying again is fine (consistency proof from the first run's tree);
	 * the new entries are the audit.query entries of the first run's
	 * requests (AUDIT.md §7). */
	size1 = out_num(out, "tree_size");
	CU_ASSERT_EQUAL(verify(out, sizeof(out), false), 0);
	CU_ASSERT_EQUAL(out_num(out, "previous_size"), size1);
	size2 = out_num(out, "tree_size");
	CU_ASSERT_EQUAL(out_num(out, "entries_checked"), size2 - size1);
	/* New entries are checked incrementally, from the kept frontier. */
	append_contracts(3);
	CU_ASSERT_EQUAL(verify(out, sizeof(out), false), 0);
	CU_ASSERT_EQUAL(out_num(out, "previous_size"), size2);
	CU_ASSERT(out_num(out, "tree_size") >= size2 + 3);
	CU_ASSERT_EQUAL(out_num(out, "entries_checked"), out_num(out, "tree_size") - size2);
	if (out_num(out, "previous_size") != size2)
		fprintf(stderr, "\n  verify said: %s (wanted previous_size %lld)\n", out, size2);

	/* REWRITTEN: change one byte of a middle entry's payload. */
	k = scalar("SELECT max(seq) / 2 FROM ledger_entries");
	{
		char sql[512];
		snprintf(sql, sizeof(sql), "SELECT entry FROM ledger_entries WHERE seq = %lld", k);
		saved = PQexecParams(su, sql, 0, NULL, NULL, NULL, NULL, 1);
		CU_ASSERT_FATAL(PQresultStatus(saved) == PGRES_TUPLES_OK && PQntuples(saved) == 1);
		snprintf(sql, sizeof(sql),
		         "SET session_replication_role = replica; UPDATE ledger_entries SET entry = "
		         "set_byte(entry, length(entry) - 3, get_byte(entry, length(entry) - 3) # 1) WHERE "
		         "seq = %lld; "
		         "SET session_replication_role = origin",
		         k);
		CU_ASSERT_EQUAL(exec_su(sql), 0);
		CU_ASSERT_EQUAL(verify(out, sizeof(out), true), 1);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "REWRITTEN"));
		/* Restore the original bytes. */
		{
			const char *vals[] = { PQgetvalue(saved, 0, 0) };
			int lens[] = { PQgetlength(saved, 0, 0) }, fmts[] = { 1 };
			char upd[160];
			PGresult *r;
			exec_su("SET session_replication_role = replica");
			snprintf(upd, sizeof(upd), "UPDATE ledger_entries SET entry = $1 WHERE seq = %lld",
			         k);
			r = PQexecParams(su, upd, 1, NULL, vals, lens, fmts, 0);
			CU_ASSERT_EQUAL(PQresultStatus(r), PGRES_COMMAND_OK);
			PQclear(r);
			exec_su("SET session_replication_role = origin");
		}
		CU_ASSERT_EQUAL(verify(out, sizeof(out), true), 0);

		/* REWRITTEN, well formed: the entry is re-encoded with another
		 * payload, so it decodes and matches what is served; only the
		 * signed tree says it is not the entry that was appended. */
		{
			struct ledger_entry d;
			struct ehr_buf enc = EHR_BUF_INIT(1 << 20);
			json_t *payload = json_pack("{s:s}", "forged", "yes");
			char upd[160];
			const char *vals[1];
			int lens[1], fmts[] = { 1 };
			PGresult *r;

			CU_ASSERT_FATAL(ledger_entry_decode(&d, (const uint8_t *)PQgetvalue(saved, 0, 0),
			                                    (size_t)PQgetlength(saved, 0, 0), false) == 0);
			{
				struct ledger_entry_in in = { d.type, d.actor, d.subject, payload };
				EHR_ASSERT_OK(ledger_entry_encode(&enc, d.seq, d.ts_ms, &in));
			}
			vals[0] = (const char *)enc.data;
			lens[0] = (int)enc.len;
			exec_su("SET session_replication_role = replica");
			snprintf(upd, sizeof(upd), "UPDATE ledger_entries SET entry = $1 WHERE seq = %lld",
			         k);
			r = PQexecParams(su, upd, 1, NULL, vals, lens, fmts, 0);
			CU_ASSERT_EQUAL(PQresultStatus(r), PGRES_COMMAND_OK);
			PQclear(r);
			CU_ASSERT_EQUAL(verify(out, sizeof(out), true), 1);
			{
				char want[64];
				snprintf(want, sizeof(want),
				         "REWRITTEN: entry %lld is not in the signed tree", k);
				CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
				if (strstr(out, want) == NULL)
					fprintf(stderr, "\n  verify said: %s\n", out);
			}
			vals[0] = PQgetvalue(saved, 0, 0);
			lens[0] = PQgetlength(saved, 0, 0);
			r = PQexecParams(su, upd, 1, NULL, vals, lens, fmts, 0);
			CU_ASSERT_EQUAL(PQresultStatus(r), PGRES_COMMAND_OK);
			PQclear(r);
			exec_su("SET session_replication_role = origin");
			json_decref(payload);
			ehr_buf_free(&enc);
		}
		CU_ASSERT_EQUAL(verify(out, sizeof(out), true), 0);

		/* DROPPED: the row disappears. */
		exec_su("CREATE TABLE saved_entry AS SELECT * FROM ledger_entries WHERE false");
		snprintf(sql, sizeof(sql),
		         "INSERT INTO saved_entry SELECT * FROM ledger_entries WHERE seq = %lld; "
		         "SET session_replication_role = replica; DELETE FROM ledger_entries WHERE seq = "
		         "%lld; "
		         "SET session_replication_role = origin",
		         k, k);
		CU_ASSERT_EQUAL(exec_su(sql), 0);
		CU_ASSERT_EQUAL(verify(out, sizeof(out), true), 1);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "DROPPED"));
		if (strstr(out, "DROPPED") == NULL)
			fprintf(stderr, "\n  verify said: %s\n", out);
		CU_ASSERT_EQUAL(exec_su("INSERT INTO ledger_entries SELECT * FROM saved_entry; DROP TABLE "
		                        "saved_entry"),
		                0);
		CU_ASSERT_EQUAL(verify(out, sizeof(out), true), 0);
		PQclear(saved);
	}
	last_size = out_num(out, "tree_size"); /* what the state file now trusts */
	settle();                              /* that run's own audit.query entries are in */

	/* ROLLBACK: the last blocks and their entries vanish. */
	{
		long long n = scalar("SELECT max(tree_size) FROM ledger_blocks"), keep;
		char sql[512];

		/* below the trusted size (later blocks hold audit.query entries) */
		snprintf(sql, sizeof(sql),
		         "SELECT max(tree_size) FROM ledger_blocks WHERE tree_size < %lld AND height < "
		         "(SELECT max(height) - 2 FROM ledger_blocks)",
		         last_size);
		keep = scalar(sql);

		CU_ASSERT_FATAL(keep > 0 && keep < n);
		snprintf(sql, sizeof(sql),
		         "SET session_replication_role = replica; DELETE FROM ledger_entries WHERE seq >= "
		         "%lld; "
		         "DELETE FROM ledger_blocks WHERE tree_size > %lld; SET session_replication_role = "
		         "origin",
		         keep, keep);
		CU_ASSERT_EQUAL(exec_su(sql), 0);
		CU_ASSERT_EQUAL(verify(out, sizeof(out), false), 1);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "ROLLBACK"));

		/* FORK: the server then grows a different history past the old size.
		 * The gateway reads the tip inside its lock, so it appends after
		 * the truncated tree. */
		for (long long i = keep; i <= n + 1; i++) {
			json_t *env = contract_for(c_p2, P2, S2);
			call(c_p2, "POST", "/v1/me/contracts", env, NULL);
			json_decref(env);
		}
		CU_ASSERT(scalar("SELECT max(tree_size) FROM ledger_blocks") > n);
		CU_ASSERT_EQUAL(verify(out, sizeof(out), false), 1);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "FORK"));
	}
	if (strstr(out, "FORK") == NULL)
		fprintf(stderr, "\n  verify said: %s\n", out);
}

/* ------------------------------------------------------------- SSE */

struct tailproc {
	pid_t pid;
	int fd;
	char buf[1 << 20];
	size_t len;
};

static int tail_start(struct tailproc *t, uint64_t since)
{
	const char *bin = ehr_test_env("EHRGATE_CTL");
	char since_s[32];
	int p[2];

	snprintf(since_s, sizeof(since_s), "%llu", (unsigned long long)since);
	if (pipe(p) != 0)
		return -1;
	t->len = 0;
	t->pid = fork();
	if (t->pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(bin ? bin : "client/ehrctl", "ehrctl", "--dir", dir_aud, "audit", "tail", "--since-seq",
		      since_s, "--retries", "100", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	t->fd = p[0];
	fcntl(t->fd, F_SETFL, O_NONBLOCK);
	return t->pid > 0 ? 0 : -1;
}

/* Read until the line for seq `until` arrived or timeout. */
static void tail_read_until(struct tailproc *t, uint64_t until, long timeout_ms)
{
	int64_t end = ehr_monotonic_ms() + timeout_ms;
	char want[48];

	snprintf(want, sizeof(want), "\"seq\":%llu,", (unsigned long long)until);
	while (ehr_monotonic_ms() < end && t->len < sizeof(t->buf) - 1) {
		struct pollfd pfd = { t->fd, POLLIN, 0 };
		ssize_t n;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = read(t->fd, t->buf + t->len, sizeof(t->buf) - 1 - t->len);
		if (n <= 0)
			break;
		t->len += (size_t)n;
		t->buf[t->len] = '\0';
		if (strstr(t->buf, want))
			break;
	}
}

static void tail_stop(struct tailproc *t)
{
	int st;
	kill(t->pid, SIGTERM);
	waitpid(t->pid, &st, 0);
	close(t->fd);
}

/* Every seq from `from` to `to` exactly once, in order. Entries past `to`
 * may follow (each reconnecting client's first request on a new instance
 * is itself a ledger event), but they too must be contiguous. */
static bool tail_exact(const struct tailproc *t, uint64_t from, uint64_t to)
{
	const char *p = t->buf;
	uint64_t want = from;

	while ((p = strstr(p, "\"seq\":")) != NULL) {
		uint64_t v = strtoull(p + 6, NULL, 10);
		if (v != want) {
			fprintf(stderr, "\n  stream: got seq %llu, wanted %llu", (unsigned long long)v,
			        (unsigned long long)want);
			return false;
		}
		want++;
		p += 6;
	}
	if (want < to + 1)
		fprintf(stderr, "\n  stream ended at %llu, wanted through %llu", (unsigned long long)want - 1,
		        (unsigned long long)to);
	return want >= to + 1;
}

static void append_contracts(int n)
{
	for (int i = 0; i < n; i++) {
		json_t *env = contract_for(c_p1, P1, S1);
		call(c_p1, "POST", "/v1/me/contracts", env, NULL);
		json_decref(env);
	}
}

static void test_stream_resume_across_restart(void)
{
	static struct tailproc t;
	uint64_t start = (uint64_t)scalar("SELECT max(seq) FROM ledger_entries") + 1, last;

	CU_ASSERT_EQUAL_FATAL(tail_start(&t, start), 0);
	append_contracts(5);
	last = (uint64_t)scalar("SELECT max(seq) FROM ledger_entries");
	tail_read_until(&t, last, 10000);
	/* Restart on the same port while the client is connected. */
	CU_ASSERT_EQUAL(gwp_stop(&gw, NULL, 0), 0);
	CU_ASSERT_EQUAL_FATAL(start_gw(), 0);
	append_contracts(5);
	last = (uint64_t)scalar("SELECT max(seq) FROM ledger_entries");
	tail_read_until(&t, last, 15000);
	tail_stop(&t);
	CU_ASSERT(tail_exact(&t, start, last));
}

static void test_stream_sees_other_instance(void)
{
	static struct tailproc t;
	struct gw_proc b;
	const char *sets[] = { "server.listen=127.0.0.1:0", NULL };
	uint64_t start = (uint64_t)scalar("SELECT max(seq) FROM ledger_entries") + 1, last;
	struct ehr_client *p1b = NULL;

	gwp_instance(&b, &gw);
	CU_ASSERT_EQUAL_FATAL(gwp_start_with(&b, sets), 0);
	CU_ASSERT_EQUAL_FATAL(tail_start(&t, start), 0); /* streams from A (the profile's URL) */
	/* Write through B only. */
	profile_url(dir_p1, b.base_url);
	CU_ASSERT_EQUAL_FATAL(ehr_client_open_profile(&p1b, dir_p1), 0);
	profile_url(dir_p1, gw.base_url);
	CU_ASSERT_STRING_EQUAL(ehr_client_url(p1b), b.base_url);
	for (int i = 0; i < 3; i++) {
		json_t *env = contract_for(p1b, P1, S2);
		CU_ASSERT_EQUAL(call(p1b, "POST", "/v1/me/contracts", env, NULL), 201);
		json_decref(env);
	}
	last = (uint64_t)scalar("SELECT max(seq) FROM ledger_entries");
	tail_read_until(&t, last, 10000);
	tail_stop(&t);
	CU_ASSERT(tail_exact(&t, start, last));
	ehr_client_free(p1b);
	gwp_teardown(&b);
}

struct bulk {
	struct ledger *l;
	pthread_mutex_t mu;
	int left, failed;
};

static void *bulk_main(void *arg)
{
	struct bulk *b = arg;
	char filler[4001];

	memset(filler, 'x', sizeof(filler) - 1);
	filler[sizeof(filler) - 1] = '\0';
	for (;;) {
		json_t *payload;
		struct ledger_entry_in in;
		bool go;

		pthread_mutex_lock(&b->mu);
		go = b->left-- > 0;
		pthread_mutex_unlock(&b->mu);
		if (!go)
			return NULL;
		payload = json_pack("{s:s}", "filler", filler);
		in = (struct ledger_entry_in){ "test.bulk", "srv-test", "pt-test", payload };
		if (ledger_append(b->l, &in, NULL) < 0) {
			pthread_mutex_lock(&b->mu);
			b->failed++;
			pthread_mutex_unlock(&b->mu);
		}
		json_decref(payload);
	}
}

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
	(void)p;
	*(size_t *)ud += s * n;
	return s * n;
}

/* A consumer that reads at 2 KB/s with a 4 KB server-side bound is cut off
 * (the gateway logs the overflow) while the gateway keeps answering. */
static void test_stream_slow_consumer(void)
{
	char url[256], cert[GWP_PATH + 32], key[GWP_PATH + 32], logbuf[256];
	struct ehr_buf log = EHR_BUF_INIT(64u << 20);
	CURL *h = curl_easy_init();
	size_t got = 0;
	struct gwp_resp hz;
	int64_t t0;

	/* Make sure there is far more to send than socket buffers hold: about
	 * 16 MB of events, appended through the ledger with the gateway's own
	 * key from this process (a second appender is safe by design). */
	{
		struct gw_config *cfg = NULL;
		struct gw_app *app = NULL;
		pthread_t th[32];
		struct bulk b = { 0 };

		CU_ASSERT_FATAL(gw_config_build(&cfg, gw.config, NULL, 0) == 0);
		CU_ASSERT_FATAL(gw_app_open(&app, cfg, GW_APP_DB | GW_APP_LEDGER) == 0);
		b.l = gw_app_ledger(app);
		b.left = 4000;
		for (int i = 0; i < 32; i++)
			pthread_create(&th[i], NULL, bulk_main, &b);
		for (int i = 0; i < 32; i++)
			pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(b.failed, 0);
		gw_app_close(app);
		gw_config_free(cfg);
	}
	snprintf(url, sizeof(url), "%s/v1/audit/stream?since=0&buffer=4096", gw.base_url);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir_aud);
	snprintf(key, sizeof(key), "%s/key.pem", dir_aud);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, gw.ca_pem);
	curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
	curl_easy_setopt(h, CURLOPT_SSLKEY, key);
	curl_easy_setopt(h, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)2048);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 1024L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 4000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
	t0 = ehr_monotonic_ms();
	curl_easy_perform(h);
	curl_easy_cleanup(h);
	CU_ASSERT(ehr_monotonic_ms() - t0 < 10000);
	/* The gateway still answers at once. */
	EHR_ASSERT_OK(gwp_get(&gw, "/healthz", &hz));
	CU_ASSERT_EQUAL(hz.status, 200);
	gwp_resp_free(&hz);
	EHR_ASSERT_OK(ehr_file_read(&log, gw.log_path, 64u << 20));
	snprintf(logbuf, sizeof(logbuf), "audit.stream_overflow");
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&log), logbuf));
	ehr_buf_free(&log);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("audit_e2e", suite_init, suite_clean, { "contract_api", test_contract_api },
	              { "access_matrix", test_access_matrix }, { "ehr_matrix", test_ehr_matrix },
	              { "break_glass", test_break_glass }, { "break_glass_ctl", test_break_glass_ctl },
	              { "group_grantee", test_group_grantee },
	              { "contracts_rebuild_cli", test_contracts_rebuild_cli },
	              { "fhir_audit_event", test_fhir_audit_event },
	              { "fhir_auditevent_search", test_fhir_auditevent_search },
	              { "fhir_consent", test_fhir_consent },
	              { "fhir_audit_queries", test_fhir_audit_queries },
	              { "fhir_every_event_validates", test_fhir_every_event_validates },
	              { "query_pagination", test_query_pagination },
	              { "audit_query_entries", test_audit_query_entries },
	              { "audit_query_shutdown", test_audit_query_shutdown },
	              { "stream_resume_across_restart", test_stream_resume_across_restart },
	              { "stream_sees_other_instance", test_stream_sees_other_instance },
	              { "verify_detects_tampering", test_verify_detects_tampering },
	              /* last: it adds ~16 MB of entries */
	              { "stream_slow_consumer", test_stream_slow_consumer });
}

EHR_TEST_MAIN(register_suites)
