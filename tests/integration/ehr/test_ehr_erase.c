/*
 * test_ehr_erase.c - record erasure end to end (docs/ERASURE.md): the real
 * gateway over TLS, real Postgres, real S3 (s3rver behind the SigV4
 * verifying front), patients (DPoP), medical servers (mTLS), an auditor,
 * `ehrctl` and `ehrgate admin` as a user would run them.
 *
 *  - a patient erases their record: the object is gone from the bucket
 *    (listed directly), the wrapped key is in no table, reads answer 410
 *    with the ehr.erase index, listings say "erased", `ehrgate ledger
 *    verify` and `ehrctl audit verify` (consistency across the erasure)
 *    pass, fsck is clean and rotate-kek skips it;
 *  - who may erase: the owner only (another patient, the servers, the
 *    auditor and no one are refused);
 *  - retention and legal holds: each refusal (409, recorded);
 *  - kill -9 at each step of an erasure, then fsck: it completes and
 *    nothing else changes;
 *  - reads racing an erasure: complete or 410, never partial.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/sha.h>

#include "cloud/cloud_internal.h"
#include "ehrtest.h"
#include "tests/harness/harness.h"

#define MARKER "PHI-MARKER-erase"

static struct gw_proc G;
static struct ehr_client *srv_a, *srv_b, *pat1, *pat2, *aud, *anon;
static char pid1[160], pid2[160];
static struct obj_store *raw;

/* ------------------------------------------------------------ helpers */

#define q1(...) ehrt_q1(&G, __VA_ARGS__)

static uint8_t *make_body(size_t n, unsigned seed)
{
	uint8_t *b = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
	memcpy(b, MARKER, sizeof(MARKER) - 1);
	return b;
}

/* POST /v1/records/{rid}/erase {"basis": basis}; *resp the JSON reply. */
static long erase_req(struct ehr_client *c, const char *rid, const char *basis, json_t **resp)
{
	char path[128];
	snprintf(path, sizeof(path), "/v1/records/%s/erase", rid);
	return ehrt_post_basis(c, path, basis, resp);
}

static long long err_int(const json_t *resp, const char *key)
{
	json_t *v = json_object_get(json_object_get(resp, "error"), key);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* A few bytes as an object's body (obj_store_put's reader). */
struct bytes_src {
	const char *p;
	size_t n;
};

static int bytes_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct bytes_src *b = ctx;
	*got = b->n < cap ? b->n : cap;
	memcpy(buf, b->p, *got);
	b->p += *got;
	b->n -= *got;
	return 0;
}

/* Put an object at rid's key behind the gateway's back (a restored backup). */
static int object_restore(const char *rid)
{
	struct bytes_src b = { "old ciphertext from a backup", 28 };
	struct obj_info info;
	uint8_t r[CLOUD_RID_LEN];
	char key[128];
	GUARD(cloud_rid_parse(r, rid));
	GUARD(cloud_record_key(key, sizeof(key), r));
	return obj_store_put(raw, key, bytes_read, &b, &info);
}

struct listing {
	const char *rid;
	bool seen;
	int n;
};

static int list_cb(void *ctx, const char *key, uint64_t size)
{
	struct listing *l = ctx;
	(void)size;
	l->n++;
	if (strstr(key, l->rid) != NULL)
		l->seen = true;
	return 0;
}

/* The bucket listed directly (not through the gateway). */
static struct listing list_bucket(const char *rid)
{
	struct listing l = { rid, false, 0 };
	CU_ASSERT_EQUAL(obj_store_list(raw, "ehr/", list_cb, &l), 0);
	return l;
}

static int admin(char *out, size_t cap, const char *const *args)
{
	return gwp_cmd(&G, out, cap, args);
}

static int ctl(const char *who, const char *args, char *out, size_t cap)
{
	char cmd[4096];
	ehrt_fmt(cmd, sizeof(cmd), "%s --dir %s/%s %s 2>&1", EHRCTL_BIN, G.dir, who, args);
	return ehrt_sh(out, cap, cmd);
}

/* -------------------------------------------------------------- world */

static int auditor(void)
{
	char token[512], dir[GWP_PATH + 64];
	const char *args[] = { "admin", "issue-token", "--role", "auditor", "--name", "aud", NULL };
	json_t *info = NULL;
	size_t n;

	if (gwp_cmd(&G, token, sizeof(token), args) != 0)
		return -1;
	n = strlen(token);
	while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r'))
		token[--n] = '\0';
	snprintf(dir, sizeof(dir), "%s/aud", G.dir);
	GUARD(ehr_client_register(G.base_url, G.ca_pem, token, dir, &info));
	json_decref(info);
	return ehr_client_open_profile(&aud, dir);
}

static int suite_init(void)
{
	static const char *const sets[] = { "server.workers=4", "server.max_body_bytes=104857600",
		                            "database.pool_size=12", "log.level=warn", NULL };
	char sect[2048] = "";
	/* In the file: the admin commands read it too. */
	struct gwp_options o = { .sets = sets,
		                 .extra_ini = "[retention]\ncategories = legal=3650d, imaging=10y\n",
		                 .no_test_routes = true,
		                 .keep_port = true };
	if (!ehr_test_env("EHRGATE_TEST_S3"))
		return -1;
	gwp_s3_store_ini(sect, sizeof(sect), NULL, NULL);
	o.store_ini = sect;
	if (gwp_setup(&G, &o) < 0 || gwp_start(&G) < 0)
		return -1;
	if (ehrt_server(&G, "hosp-a", &srv_a) < 0 || ehrt_server(&G, "hosp-b", &srv_b) < 0 ||
	    ehrt_patient(&G, srv_a, "MRN-E001", pid1, &pat1) < 0 ||
	    ehrt_patient(&G, srv_a, "MRN-E002", pid2, &pat2) < 0 || auditor() < 0) {
		fprintf(stderr, "world: %s\n", ehr_error_msg());
		return -1;
	}
	if (ehrt_grant(&G, "MRN-E001", ehr_client_id(srv_a), "read,append") < 0 ||
	    ehrt_grant(&G, "MRN-E002", ehr_client_id(srv_a), "read,append") < 0)
		return -1;
	{
		struct ehr_client_opts co = { .url = G.base_url, .ca_file = G.ca_pem };
		if (ehr_client_new(&anon, &co) < 0)
			return -1;
	}
	return ehrt_raw_store(&raw, true, NULL) < 0 ? -1 : 0;
}

static int suite_clean(void)
{
	ehr_client_free(srv_a);
	ehr_client_free(srv_b);
	ehr_client_free(pat1);
	ehr_client_free(pat2);
	ehr_client_free(aud);
	ehr_client_free(anon);
	obj_store_free(raw);
	gwp_teardown(&G);
	return 0;
}

/* ------------------------------------------------------ patient erasure */

static void test_patient_erases(void)
{
	size_t n = 300000;
	uint8_t *body = make_body(n, 1);
	struct ehr_buf got = EHR_BUF_INIT(1 << 22);
	char rid[CLOUD_RID_HEX], hex[200], args[1024], out[1 << 14], state[GWP_PATH + 32];
	json_t *resp = NULL;
	long long erase_seq, stores;

	CU_ASSERT_EQUAL_FATAL(ehrt_put(srv_a, pid1, "lab", body, n, rid), 201);
	CU_ASSERT_EQUAL(ehrt_get(pat1, rid, &got), 200);
	CU_ASSERT(got.len == n && memcmp(got.data, body, n) == 0); /* not secret */
	ehrt_wrapped_hex(&G, rid, hex, sizeof(hex));
	CU_ASSERT_EQUAL_FATAL(strlen(hex), 2 * CLOUD_WRAPPED_LEN);
	CU_ASSERT_EQUAL(ehrt_rows_holding(&G, hex), 1);
	CU_ASSERT(list_bucket(rid).seen);
	/* The auditor's verifier keeps a frontier from before the erasure. */
	ehrt_fmt(state, sizeof(state), "%s/aud-state.json", G.dir);
	ehrt_fmt(args, sizeof(args), "audit verify --ledger-key %s/ledger.pub --state %s", G.state_dir,
	         state);
	CU_ASSERT_EQUAL(ctl("aud", args, out, sizeof(out)), 0);

	/* Who may not: no one, another patient, the servers, the auditor. */
	CU_ASSERT_EQUAL(erase_req(anon, rid, "patient-request", NULL), 401);
	CU_ASSERT_EQUAL(erase_req(pat2, rid, "patient-request", NULL), 403);
	/* A certificate on a patient-only route: 403, the wrong kind of
	 * credential (PROTOCOL.md §1.4). */
	{
		struct ehr_client *certs[3] = { srv_a, srv_b, aud };
		for (int i = 0; i < 3; i++) {
			long s = erase_req(certs[i], rid, "patient-request", NULL);
			CU_ASSERT_EQUAL(s, 403);
		}
	}
	/* Bad requests. */
	CU_ASSERT_EQUAL(erase_req(pat1, rid, "because", NULL), 400);
	CU_ASSERT_EQUAL(erase_req(pat1, "00000000000000000000000000000000", "patient-request", NULL), 404);
	CU_ASSERT_EQUAL(erase_req(pat1, "NOT-HEX", "patient-request", NULL), 400);
	CU_ASSERT(ehrt_object_exists(raw, rid));
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.erase'"), 0);

	/* The owner erases it with ehrctl. */
	stores = q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.store'");
	ehrt_fmt(args, sizeof(args), "record erase %s --basis gdpr-17-1-b", rid);
	CU_ASSERT_EQUAL(ctl("MRN-E001", args, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"erased\""));
	erase_seq = q1("SELECT erase_seq FROM ehr_records WHERE record_id = '%s' AND state = 'erased'", rid);
	CU_ASSERT_FATAL(erase_seq > 0);
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries WHERE seq = %lld AND type = 'ehr.erase' AND "
	                   "subject = '%s' AND position(convert_to('gdpr-17-1-b', 'UTF8') in entry) > 0 AND "
	                   "position(convert_to('\"requested_by\":\"patient\"', 'UTF8') in entry) > 0 AND "
	                   "position(convert_to('MRN-E001', 'UTF8') in entry) = 0",
	                   erase_seq, pid1),
	                1);
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.store'"), stores);

	/* Gone from the bucket, listed directly; the key in no table. */
	CU_ASSERT_FALSE(list_bucket(rid).seen);
	CU_ASSERT_FALSE(ehrt_object_exists(raw, rid));
	CU_ASSERT_EQUAL(ehrt_rows_holding(&G, hex), 0);
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ehr_records WHERE record_id = '%s' AND wrapped_key IS NULL "
	                   "AND kek_id IS NULL AND ct_sha256 IS NOT NULL AND ledger_seq IS NOT NULL",
	                   rid),
	                1);

	/* Reads: 410 with the erase entry's index, for every reader. */
	ehr_buf_reset(&got);
	CU_ASSERT_EQUAL(ehrt_get(pat1, rid, &got), 410);
	{
		json_t *j = NULL;
		CU_ASSERT_EQUAL(ehr_json_parse(&j, got.data, got.len, 1 << 16, 8), 0);
		CU_ASSERT_STRING_EQUAL(ehrt_err_str(j, "code") ?: "", "gone");
		CU_ASSERT_EQUAL(err_int(j, "erase_seq"), erase_seq);
		json_decref(j);
	}
	ehr_buf_reset(&got);
	CU_ASSERT_EQUAL(ehrt_get(srv_a, rid, &got), 410);
	ehr_buf_reset(&got);
	CU_ASSERT_EQUAL(ehrt_get(srv_b, rid, &got), 403); /* no contract: it learns nothing */

	/* Listings show it erased. */
	ehrt_fmt(args, sizeof(args), "record list %s", pid1);
	CU_ASSERT_EQUAL(ctl("MRN-E001", args, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, rid));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"erased\""));

	/* Again: 200, already erased, the same entry. */
	CU_ASSERT_EQUAL(erase_req(pat1, rid, "patient-request", &resp), 200);
	CU_ASSERT(json_is_true(json_object_get(resp, "already_erased")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(resp, "erase_seq")), erase_seq);
	json_decref(resp);

	/* The ledger verifies, server side and from the auditor's frontier
	 * (a consistency proof across the erasure, and its entries). */
	{
		const char *lv[] = { "ledger", "verify", NULL };
		CU_ASSERT_EQUAL(admin(out, sizeof(out), lv), 0);
	}
	ehrt_fmt(args, sizeof(args), "audit verify --ledger-key %s/ledger.pub --state %s", G.state_dir,
	         state);
	CU_ASSERT_EQUAL(ctl("aud", args, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"ok\":true"));
	ehrt_fmt(args, sizeof(args), "audit verify --ledger-key %s/ledger.pub --full", G.state_dir);
	CU_ASSERT_EQUAL(ctl("aud", args, out, sizeof(out)), 0);
	/* The erase entry's inclusion proof, as the auditor fetches it. */
	{
		long long size = q1("SELECT max(tree_size) FROM ledger_blocks");
		char path[160];
		json_t *j = NULL;
		long st = 0;
		snprintf(path, sizeof(path), "/v1/ledger/proof/inclusion?index=%lld&size=%lld", erase_seq,
		         size);
		CU_ASSERT_EQUAL(ehr_client_json(aud, &st, &j, "GET", path, NULL), 0);
		CU_ASSERT_EQUAL(st, 200);
		json_decref(j);
	}

	/* An object restored for an erased record: fsck deletes it again. */
	{
		const char *fa[] = { "fsck", "--grace", "0", NULL };
		CU_ASSERT_EQUAL(object_restore(rid), 0);
		CU_ASSERT(ehrt_object_exists(raw, rid));
		CU_ASSERT_EQUAL(admin(out, sizeof(out), fa), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "erased-record-object"));
		CU_ASSERT_FALSE(ehrt_object_exists(raw, rid));
	}
	/* fsck: consistent, nothing missing; rotate-kek skips it. */
	{
		const char *fa[] = { "fsck", "--grace", "0", NULL };
		const char *rk[] = { "admin", "rotate-kek", NULL };
		CU_ASSERT_EQUAL(admin(out, sizeof(out), fa), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "0 missing objects"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "1 erased records (0 erasures completed)"));
		CU_ASSERT_EQUAL(admin(out, sizeof(out), rk), 0);
		CU_ASSERT_EQUAL(
		        q1("SELECT count(*) FROM ehr_records WHERE record_id = '%s' AND wrapped_key IS "
		           "NULL AND kek_id IS NULL AND state = 'erased'",
		           rid),
		        1);
		CU_ASSERT_EQUAL(
		        q1("SELECT count(*) FROM ehr_records WHERE kek_id IS NOT NULL AND kek_id <> (SELECT "
		           "kek_id FROM ehr_records WHERE kek_id IS NOT NULL ORDER BY created_ms DESC "
		           "LIMIT 1)"),
		        0);
	}
	/* The database refuses to bring the key back. */
	CU_ASSERT_NOT_EQUAL(gwp_db_exec(&G, "UPDATE ehr_records SET state = 'stored' WHERE state = 'erased'"),
	                    0);
	ehr_buf_free(&got);
	free(body);
}

/* ------------------------------------------------ retention and holds */

static void expect_refused(struct ehr_client *c, const char *rid, const char *reason, const char *extra_key,
                           const char *extra_val)
{
	json_t *resp = NULL;
	long long refused_seq;

	CU_ASSERT_EQUAL(erase_req(c, rid, "patient-request", &resp), 409);
	CU_ASSERT_STRING_EQUAL(ehrt_err_str(resp, "code") ?: "", "erasure_refused");
	CU_ASSERT_STRING_EQUAL(ehrt_err_str(resp, "reason") ?: "", reason);
	if (extra_key)
		CU_ASSERT_STRING_EQUAL(ehrt_err_str(resp, extra_key) ?: "", extra_val);
	refused_seq = err_int(resp, "refused_seq");
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries WHERE seq = %lld AND type = "
	                   "'ehr.erase.refused' AND position(convert_to('%s', 'UTF8') in entry) > 0",
	                   refused_seq, rid),
	                1);
	json_decref(resp);
	CU_ASSERT(ehrt_object_exists(raw, rid));
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ehr_records WHERE record_id = '%s' AND state = 'stored' AND "
	                   "wrapped_key IS NOT NULL",
	                   rid),
	                1);
}

static void test_retention_and_holds(void)
{
	uint8_t *body = make_body(1000, 2);
	char legal[CLOUD_RID_HEX], lab[CLOUD_RID_HEX], lab2[CLOUD_RID_HEX], out[1 << 14];
	long long places = q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.hold.place'");

	CU_ASSERT_EQUAL_FATAL(ehrt_put(srv_a, pid1, "legal", body, 1000, legal), 201);
	CU_ASSERT_EQUAL_FATAL(ehrt_put(srv_a, pid1, "lab", body, 1000, lab), 201);
	CU_ASSERT_EQUAL_FATAL(ehrt_put(srv_a, pid1, NULL, body, 1000, lab2), 201);

	/* Inside retention: the patient and the operator are refused. */
	expect_refused(pat1, legal, "retention", "category", "legal");
	{
		const char *a[] = { "admin", "erase", legal, "--basis", "court-order", NULL };
		CU_ASSERT_EQUAL(admin(out, sizeof(out), a), 3);
	}
	/* A hold on the record. */
	{
		const char *place[] = { "admin", "hold",     "place",      "--record",
			                lab,     "--reason", "litigation", NULL };
		const char *lift[] = { "admin", "hold",     "lift",       "--record",
			               lab,     "--reason", "litigation", NULL };
		const char *a[] = { "admin", "erase", lab, "--basis", "gdpr-17-1-a", NULL };
		const char *bad[] = { "admin", "hold", "place", "--record", lab, "--reason", "spite", NULL };
		const char *list[] = { "admin", "hold", "list", NULL };
		CU_ASSERT_EQUAL(admin(out, sizeof(out), place), 0);
		CU_ASSERT_EQUAL(admin(out, sizeof(out), place), 2); /* already in force */
		CU_ASSERT_EQUAL(admin(out, sizeof(out), bad), 2);
		CU_ASSERT_EQUAL(admin(out, sizeof(out), list), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, lab));
		expect_refused(pat1, lab, "legal_hold", "hold_reason", "litigation");
		CU_ASSERT_EQUAL(admin(out, sizeof(out), a), 3);
		CU_ASSERT_EQUAL(admin(out, sizeof(out), lift), 0);
		CU_ASSERT_EQUAL(admin(out, sizeof(out), lift), 2); /* none in force */
		CU_ASSERT_EQUAL(erase_req(pat1, lab, "patient-request", NULL), 200);
		CU_ASSERT_FALSE(ehrt_object_exists(raw, lab));
	}
	/* A hold on the patient covers every record of theirs. */
	{
		const char *place[] = { "admin", "hold",     "place",         "--patient",
			                pid1,    "--reason", "investigation", NULL };
		const char *lift[] = { "admin", "hold",     "lift",          "--patient",
			               pid1,    "--reason", "investigation", NULL };
		const char *nobody[] = { "admin",     "hold",     "place",     "--patient",
			                 "pt-nobody", "--reason", "regulator", NULL };
		const char *a[] = { "admin", "erase", lab2, "--basis", "court-order", NULL };
		CU_ASSERT_EQUAL(admin(out, sizeof(out), place), 0);
		CU_ASSERT_EQUAL(admin(out, sizeof(out), nobody), 2);
		expect_refused(pat1, lab2, "legal_hold", "hold_on", "patient");
		CU_ASSERT_EQUAL(admin(out, sizeof(out), lift), 0);
		/* The operator erases it. */
		CU_ASSERT_EQUAL(admin(out, sizeof(out), a), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"erased\""));
		CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.erase' AND actor = "
		                   "'operator' AND position(convert_to('court-order', 'UTF8') in entry) > 0"),
		                1);
	}
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.hold.place'"), places + 2);
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.hold.lift'"), 2);
	/* Operator input errors. */
	{
		const char *nob[] = { "admin", "erase", legal, NULL };
		const char *badb[] = { "admin", "erase", legal, "--basis", "whim", NULL };
		const char *none[] = { "admin",   "erase",       "0123456789abcdef0123456789abcdef",
			               "--basis", "court-order", NULL };
		CU_ASSERT_EQUAL(admin(out, sizeof(out), nob), 2);
		CU_ASSERT_EQUAL(admin(out, sizeof(out), badb), 2);
		CU_ASSERT_EQUAL(admin(out, sizeof(out), none), 2);
	}
	free(body);
}

/* ---------------------------------------------------- kill -9 and fsck */

/* Everything but rid: the other rows, the ledger's entries before, the objects. */
static long long others_digest(const char *rid)
{
	return q1("SELECT ('x' || substr(md5(coalesce(string_agg(record_id || state || "
	          "coalesce(encode(wrapped_key, "
	          "'hex'), '') || coalesce(erase_seq::text, ''), ',' ORDER BY record_id), '')), 1, "
	          "15))::bit(60)::"
	          "bigint FROM ehr_records WHERE record_id <> '%s'",
	          rid);
}

static void crash_at(const char *failpoint)
{
	uint8_t *body = make_body(5000, 3);
	char rid[CLOUD_RID_HEX], out[1 << 14];
	const char *a[] = { "admin", "erase", NULL, "--basis", "gdpr-17-1-d", NULL };
	const char *fa[] = { "fsck", "--grace", "0", NULL };
	struct ehr_buf got = EHR_BUF_INIT(1 << 16);
	long long digest, entries, objects;
	int rc;

	CU_ASSERT_EQUAL_FATAL(ehrt_put(srv_a, pid2, "lab", body, 5000, rid), 201);
	a[2] = rid;
	digest = others_digest(rid);
	entries = q1("SELECT count(*) FROM ledger_entries");
	objects = list_bucket(rid).n;
	setenv("EHRGATE_TEST_FAILPOINT", failpoint, 1);
	rc = admin(out, sizeof(out), a);
	unsetenv("EHRGATE_TEST_FAILPOINT");
	CU_ASSERT_NOT_EQUAL(rc, 0); /* killed */
	CU_ASSERT_EQUAL(
	        q1("SELECT count(*) FROM ehr_records WHERE record_id = '%s' AND state = 'erasing' AND "
	           "wrapped_key IS NULL",
	           rid),
	        1);
	/* Unreadable from the crash on. */
	CU_ASSERT_EQUAL(ehrt_get(pat2, rid, &got), 410);
	/* A dry run reports it and changes nothing. */
	{
		const char *dry[] = { "fsck", "--dry-run", "--grace", "0", NULL };
		CU_ASSERT_EQUAL(admin(out, sizeof(out), dry), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "(dry run: left)"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "0 missing objects"));
		CU_ASSERT_EQUAL(
		        q1("SELECT count(*) FROM ehr_records WHERE record_id = '%s' AND state = 'erasing'",
		           rid),
		        1);
	}
	/* fsck completes it, once. */
	CU_ASSERT_EQUAL(admin(out, sizeof(out), fa), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "erasure completed"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "(1 erasures completed)"));
	CU_ASSERT_EQUAL(
	        q1("SELECT count(*) FROM ehr_records WHERE record_id = '%s' AND state = 'erased'", rid), 1);
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.erase' AND "
	                   "position(convert_to('%s', 'UTF8') in entry) > 0",
	                   rid),
	                1);
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ehr_records r JOIN ledger_entries e ON e.seq = r.erase_seq "
	                   "WHERE r.record_id = '%s' AND e.type = 'ehr.erase' AND e.actor = 'operator' AND "
	                   "position(convert_to('gdpr-17-1-d', 'UTF8') in e.entry) > 0",
	                   rid),
	                1);
	CU_ASSERT_FALSE(ehrt_object_exists(raw, rid));
	/* Nothing else changed. */
	CU_ASSERT_EQUAL(others_digest(rid), digest);
	CU_ASSERT_EQUAL(list_bucket(rid).n, objects - 1);
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries"),
	                entries + 2); /* ehr.erase + the 410's decision */
	CU_ASSERT_EQUAL(admin(out, sizeof(out), fa), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "(0 erasures completed)"));
	{
		const char *lv[] = { "ledger", "verify", NULL };
		CU_ASSERT_EQUAL(admin(out, sizeof(out), lv), 0);
	}
	ehr_buf_free(&got);
	free(body);
}

static void test_kill9_wiped(void)
{
	crash_at("erase.wiped");
}
static void test_kill9_logged(void)
{
	crash_at("erase.logged");
}
static void test_kill9_deleted(void)
{
	crash_at("erase.deleted");
}

/* ---------------------------------------------------- reads vs erasure */

struct reader {
	struct ehr_client *c;
	const char *rid;
	const uint8_t *body;
	size_t n;
	volatile bool *stop;
	int ok, gone, bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct ehr_buf got = EHR_BUF_INIT(16u << 20);
	bool last = false;

	while (!last) {
		long st;
		last = *r->stop;
		ehr_buf_reset(&got);
		st = ehrt_get(r->c, r->rid, &got);
		if (st == 200 && got.len == r->n && memcmp(got.data, r->body, r->n) == 0) /* not secret */
			r->ok++;
		else if (st == 410)
			r->gone++;
		else {
			r->bad++;
			fprintf(stderr, "\n  read -> %ld (%zu bytes): %.200s\n", st, got.len,
			        st != 200 && got.len ? (const char *)got.data : "");
		}
	}
	ehr_buf_free(&got);
	return NULL;
}

static void test_read_races_erasure(void)
{
	size_t n = 6u << 20;
	uint8_t *body = make_body(n, 4);
	char rid[CLOUD_RID_HEX];
	volatile bool stop = false;
	struct ehr_client *pat2b = NULL; /* a client per thread */
	struct reader rd[2] = { { NULL, rid, body, n, &stop, 0, 0, 0 },
		                { srv_a, rid, body, n, &stop, 0, 0, 0 } };
	pthread_t th[2];
	long long erase_seq;
	char dir[GWP_PATH + 32];

	ehrt_fmt(dir, sizeof(dir), "%s/MRN-E002", G.dir);
	CU_ASSERT_EQUAL_FATAL(ehr_client_open_profile(&pat2b, dir), 0);
	rd[0].c = pat2b;

	CU_ASSERT_EQUAL_FATAL(ehrt_put(srv_a, pid2, "lab", body, n, rid), 201);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, reader_main, &rd[i]);
	while (rd[0].ok + rd[1].ok < 3)
		gwp_sleep_ms(20);
	{
		json_t *resp = NULL;
		long st = erase_req(pat2, rid, "gdpr-17-1-a", &resp);
		CU_ASSERT_EQUAL(st, 200);
		if (st != 200) {
			fprintf(stderr, "\n  erase -> %ld: ", st);
			json_dumpf(resp, stderr, 0);
		}
		json_decref(resp);
	}
	stop = true;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	fprintf(stderr, "\n  reads: %d+%d complete, %d+%d gone, %d+%d other\n", rd[0].ok, rd[1].ok,
	        rd[0].gone, rd[1].gone, rd[0].bad, rd[1].bad);
	CU_ASSERT_EQUAL(rd[0].bad + rd[1].bad, 0);
	CU_ASSERT(rd[0].gone >= 1 && rd[1].gone >= 1);
	/* Every released read is on the ledger before the erasure. */
	erase_seq = q1("SELECT erase_seq FROM ehr_records WHERE record_id = '%s'", rid);
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.read' AND seq > %lld AND "
	                   "position(convert_to('%s', 'UTF8') in entry) > 0",
	                   erase_seq, rid),
	                0);
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.read' AND "
	                   "position(convert_to('%s', 'UTF8') in entry) > 0",
	                   rid),
	                rd[0].ok + rd[1].ok);
	ehr_client_free(pat2b);
	free(body);
}

static void reg(void)
{
	EHR_ADD_SUITE("ehr_erase", suite_init, suite_clean, { "patient erases", test_patient_erases },
	              { "retention and holds", test_retention_and_holds },
	              { "kill -9 after the key wipe", test_kill9_wiped },
	              { "kill -9 after the ehr.erase entry", test_kill9_logged },
	              { "kill -9 after the object delete", test_kill9_deleted },
	              { "reads racing an erasure", test_read_races_erasure });
}

EHR_TEST_MAIN(reg)
