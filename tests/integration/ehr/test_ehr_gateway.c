/*
 * test_ehr_gateway.c - EHR storage end to end: the real gateway over TLS,
 * real Postgres, the real ledger, and both stores - the filesystem and
 * s3rver behind the SigV4-verifying front - with registered medical servers
 * (mTLS) and enrolled patients (DPoP) as clients (libehrclient).
 */
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "cloud/cloud_internal.h"
#include "policy/policy.h"
#include "ehrtest.h"
#include "faultproxy.h"
#include "tests/harness/harness.h"

#define MARKER "PHI-MARKER-7f3a9c"
#define LEDGER_LOCK_KEY 0x6568726c6467LL /* contracts/ledger_internal.h */

struct world {
	struct gw_proc t;
	struct ehr_client *srv_a, *srv_b, *pat1, *pat2, *anon;
	char pid1[160], pid2[160];
	bool s3;
};

static struct world FS, S3;

/* ------------------------------------------------------------ helpers */

static uint8_t *make_body(size_t n, unsigned seed)
{
	uint8_t *b = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
	/* a known plaintext marker every 64 KiB, to look for in stored objects */
	for (size_t off = 0; off + sizeof(MARKER) - 1 <= n; off += 65536)
		memcpy(b + off, MARKER, sizeof(MARKER) - 1);
	return b;
}

static int world_up(struct world *w, const char *tag, bool s3)
{
	char sect[2048] = "";
	(void)tag; /* the launcher names the database after the binary */
	w->s3 = s3;
	if (s3)
		gwp_s3_store_ini(sect, sizeof(sect), NULL, NULL);
	if (ehrt_gw_setup(&w->t, sect) < 0 || gwp_start(&w->t) < 0)
		return -1;
	if (ehrt_server(&w->t, "hosp-a", &w->srv_a) < 0 || ehrt_server(&w->t, "hosp-b", &w->srv_b) < 0) {
		fprintf(stderr, "server registration: %s\n", ehr_error_msg());
		return -1;
	}
	if (ehrt_patient(&w->t, w->srv_a, "MRN-0001", w->pid1, &w->pat1) < 0 ||
	    ehrt_patient(&w->t, w->srv_a, "MRN-0002", w->pid2, &w->pat2) < 0) {
		fprintf(stderr, "patient enrolment: %s\n", ehr_error_msg());
		return -1;
	}
	/* EHR stores and reads are decided by the patient's contracts
	 * (docs/CONTRACTS.md): both patients grant hosp-a read and append. */
	{
		struct ehr_client *pats[2] = { w->pat1, w->pat2 };
		const char *pids[2] = { w->pid1, w->pid2 };
		int64_t now = ehr_now_ms() / 1000;
		for (int i = 0; i < 2; i++) {
			json_t *env = NULL, *resp = NULL;
			long st = 0;
			if (policy_grant_envelope(
			            &env, ehr_client_device_key(pats[i]), pids[i], ehr_client_id(w->srv_a),
			            POLICY_ACT_READ | POLICY_ACT_APPEND, now - 60, now + 86400) < 0 ||
			    ehr_client_json(pats[i], &st, &resp, "POST", "/v1/me/contracts", env) < 0 ||
			    st != 201) {
				fprintf(stderr, "contract grant: %ld %s\n", st, ehr_error_msg());
				json_decref(env);
				json_decref(resp);
				return -1;
			}
			json_decref(env);
			json_decref(resp);
		}
	}
	/* Patients grant hosp-a (not hosp-b) read and append (docs/CONTRACTS.md). */
	if (ehrt_grant(&w->t, "MRN-0001", ehr_client_id(w->srv_a), "read,append") < 0 ||
	    ehrt_grant(&w->t, "MRN-0002", ehr_client_id(w->srv_a), "read,append") < 0) {
		fprintf(stderr, "contract: %s\n", ehr_error_msg());
		return -1;
	}
	{
		struct ehr_client_opts o = { .url = w->t.base_url, .ca_file = w->t.ca_pem };
		if (ehr_client_new(&w->anon, &o) < 0)
			return -1;
	}
	return 0;
}

static void world_down(struct world *w)
{
	ehr_client_free(w->srv_a);
	ehr_client_free(w->srv_b);
	ehr_client_free(w->pat1);
	ehr_client_free(w->pat2);
	ehr_client_free(w->anon);
	gwp_teardown(&w->t);
}

static int fs_init(void)
{
	return world_up(&FS, "fs", false);
}
static int fs_clean(void)
{
	world_down(&FS);
	return 0;
}
static int s3_init(void)
{
	if (!ehr_test_env("EHRGATE_TEST_S3"))
		return -1;
	return world_up(&S3, "s3", true);
}
static int s3_clean(void)
{
	world_down(&S3);
	return 0;
}

struct stored {
	char rid[CLOUD_RID_HEX];
	long long seq, tree_size;
	char sha[65];
};

/* POST a record; returns the HTTP status, fills st on 201. */
static long post_record(struct ehr_client *c, const char *pid, const void *body, size_t n, const char *ct,
                        const char *cat, struct stored *st, struct ehr_buf *resp_out)
{
	char path[256], cth[300], cath[128];
	const char *hdrs[3] = { NULL, NULL, NULL };
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	long status = 0;
	size_t nh = 0;

	snprintf(path, sizeof(path), "/v1/patients/%s/records", pid);
	if (ct) {
		snprintf(cth, sizeof(cth), "Content-Type: %s", ct);
		hdrs[nh++] = cth;
	}
	if (cat) {
		snprintf(cath, sizeof(cath), "X-EHR-Category: %s", cat);
		hdrs[nh++] = cath;
	}
	if (ehr_client_request(c, &status, &resp, "POST", path, hdrs, body, n, NULL, NULL) < 0)
		status = 0;
	if (status == 201 && st) {
		json_t *j = NULL;
		const char *rid = NULL, *sha = NULL;
		int64_t seq = -1, ts = -1;
		memset(st, 0, sizeof(*st));
		if (ehr_json_parse(&j, resp.data, resp.len, 1 << 20, 8) == 0 &&
		    ehr_json_get_str(j, "record_id", &rid, 40) == 0 &&
		    ehr_json_get_str(j, "sha256", &sha, 64) == 0 &&
		    ehr_json_get_int(j, "seq", &seq, 0, INT64_MAX) == 0 &&
		    ehr_json_get_int(j, "tree_size", &ts, 1, INT64_MAX) == 0) {
			snprintf(st->rid, sizeof(st->rid), "%s", rid);
			snprintf(st->sha, sizeof(st->sha), "%s", sha);
			st->seq = seq;
			st->tree_size = ts;
		}
		json_decref(j);
	}
	if (resp_out)
		ehr_buf_append(resp_out, resp.data, resp.len);
	ehr_buf_free(&resp);
	return status;
}

static bool is_json_error(const struct ehr_buf *b, const char *code)
{
	json_t *j = NULL;
	bool ok = false;
	if (ehr_json_parse(&j, b->data, b->len, 1 << 20, 8) == 0) {
		json_t *e = json_object_get(j, "error");
		const char *c = e ? json_string_value(json_object_get(e, "code")) : NULL;
		ok = c && (code == NULL || strcmp(c, code) == 0);
	}
	json_decref(j);
	return ok;
}

/* One authenticated request, so the client's connection (and whatever the
 * auth layer logs for a new one) is in place before a test counts ledger
 * entries or holds the ledger lock. */
static void warm(struct world *w)
{
	char path[256];
	json_t *j = NULL;
	long status = 0;
	snprintf(path, sizeof(path), "/v1/patients/%s/records?limit=1", w->pid1);
	ehr_client_json(w->srv_a, &status, &j, "GET", path, NULL);
	json_decref(j);
}

static long long count_all(struct world *w)
{
	return gwp_db_scalar(&w->t, "SELECT count(*) FROM ledger_entries");
}

static long long count_type(struct world *w, const char *type)
{
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM ledger_entries WHERE type = '%s'", type);
	return gwp_db_scalar(&w->t, sql);
}

static void round_trip(struct world *w, size_t n)
{
	uint8_t *body = make_body(n, (unsigned)n);
	struct stored st;
	struct ehr_buf out = EHR_BUF_INIT(64u << 20);
	char ct[128];
	long s;

	s = post_record(w->srv_a, w->pid1, body, n, "application/fhir+json", "lab", &st, NULL);
	CU_ASSERT_EQUAL(s, 201);
	CU_ASSERT_EQUAL(strlen(st.rid), 32);
	CU_ASSERT(st.tree_size > st.seq);
	if (s != 201) {
		fprintf(stderr, "\n  POST %zu bytes -> %ld (%s)\n", n, s, ehr_client_last_error(w->srv_a));
		free(body);
		return;
	}
	/* the storing server reads it back */
	s = ehrt_get(w->srv_a, st.rid, &out);
	if (s != 200)
		fprintf(stderr, "\n  GET %zu bytes -> %ld (%s), %zu bytes\n", n, s,
		        ehr_client_last_error(w->srv_a), out.len);
	CU_ASSERT_EQUAL(s, 200);
	CU_ASSERT_EQUAL(out.len, n);
	CU_ASSERT(out.len == n && (n == 0 || memcmp(out.data, body, n) == 0)); /* not secret */
	CU_ASSERT_EQUAL(ehr_client_response_header(w->srv_a, "Content-Type", ct, sizeof(ct)), 0);
	CU_ASSERT_STRING_EQUAL(ct, "application/fhir+json");
	{
		char sz[32], want[32];
		snprintf(want, sizeof(want), "%zu", n);
		CU_ASSERT_EQUAL(ehr_client_response_header(w->srv_a, "X-EHR-Size", sz, sizeof(sz)), 0);
		CU_ASSERT_STRING_EQUAL(sz, want);
	}
	/* and so does the patient, with DPoP */
	ehr_buf_reset(&out);
	CU_ASSERT_EQUAL(ehrt_get(w->pat1, st.rid, &out), 200);
	CU_ASSERT(out.len == n && (n == 0 || memcmp(out.data, body, n) == 0)); /* not secret */
	/* the ledger holds the ciphertext hash the answer gave */
	{
		char sql[300];
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM ledger_entries WHERE type = 'ehr.store' AND seq = %lld AND "
		         "position(convert_to('%s', 'UTF8') in entry) > 0",
		         st.seq, st.sha);
		CU_ASSERT_EQUAL(gwp_db_scalar(&w->t, sql), 1);
	}
	ehr_buf_free_secure(&out);
	free(body);
}

static void round_trips(struct world *w)
{
	static const size_t sizes[] = {
		0, 1, CLOUD_SEG_DEFAULT - 1, CLOUD_SEG_DEFAULT, CLOUD_SEG_DEFAULT + 1, 3u << 20
	};
	for (size_t i = 0; i < EHR_ARRAY_LEN(sizes); i++)
		round_trip(w, sizes[i]);
}

/* A read's allowed decision and its ehr.read entry are one batch: every
 * ehr.read directly follows an access.decision in the same block. */
static void reads_batched(struct world *w)
{
	CU_ASSERT(count_type(w, "ehr.read") > 0);
	CU_ASSERT_EQUAL(gwp_db_scalar(&w->t,
	                              "SELECT count(*) FROM ledger_entries r LEFT JOIN ledger_entries d "
	                              "ON d.seq = r.seq - 1 WHERE r.type = 'ehr.read' AND (d.seq IS NULL "
	                              "OR d.type <> 'access.decision' OR d.block_height <> r.block_height)"),
	                0);
}

static void test_fs_round_trips(void)
{
	round_trips(&FS);
	reads_batched(&FS);
}

static void test_s3_round_trips(void)
{
	round_trips(&S3);
	round_trip(&S3, 20u << 20); /* multipart (8 MiB parts) through HTTP */
}

/* ------------------------------------------------------- authorisation */

static void authz(struct world *w)
{
	uint8_t *body = make_body(1000, 7);
	struct stored st;
	struct ehr_buf out = EHR_BUF_INIT(1 << 20);
	long long reads;
	char path[256];
	long status;

	CU_ASSERT_EQUAL_FATAL(post_record(w->srv_a, w->pid1, body, 1000, "text/plain", NULL, &st, NULL), 201);
	reads = count_type(w, "ehr.read");
	/* another medical server, another patient, nobody */
	CU_ASSERT_EQUAL(ehrt_get(w->srv_b, st.rid, &out), 403);
	CU_ASSERT(is_json_error(&out, "forbidden"));
	CU_ASSERT_PTR_NULL(memmem(out.data, out.len, MARKER, strlen(MARKER)));
	ehr_buf_reset(&out);
	CU_ASSERT_EQUAL(ehrt_get(w->pat2, st.rid, &out), 403);
	ehr_buf_reset(&out);
	CU_ASSERT_EQUAL(ehrt_get(w->anon, st.rid, &out), 401);
	CU_ASSERT_PTR_NULL(memmem(out.data, out.len, MARKER, strlen(MARKER)));
	CU_ASSERT_EQUAL(count_type(w, "ehr.read"), reads); /* refused reads release nothing */
	/* only servers store; only for existing patients; bad ids refused */
	status = post_record(w->pat1, w->pid1, body, 10, NULL, NULL, NULL, NULL);
	/* a route for servers only: a patient's DPoP credential is the wrong kind (403) */
	CU_ASSERT_EQUAL(status, 403);
	CU_ASSERT_EQUAL(post_record(w->anon, w->pid1, body, 10, NULL, NULL, NULL, NULL), 401);
	CU_ASSERT_EQUAL(post_record(w->srv_b, w->pid1, body, 10, NULL, NULL, NULL, NULL),
	                403); /* no contract */
	CU_ASSERT_EQUAL(post_record(w->srv_a, "pt-doesnotexistdoesnotexistdoesnotexist0000000", body, 10,
	                            NULL, NULL, NULL, NULL),
	                404); /* well-formed, unknown */
	CU_ASSERT_EQUAL(post_record(w->srv_a, "pt-doesnotexist", body, 10, NULL, NULL, NULL, NULL), 400);
	CU_ASSERT_EQUAL(post_record(w->srv_a, w->pid1, body, 10, NULL, "bad category!", NULL, NULL), 400);
	ehr_buf_reset(&out);
	CU_ASSERT_EQUAL(ehrt_get(w->srv_a, "00000000000000000000000000000000", &out), 404);
	ehr_buf_reset(&out);
	CU_ASSERT_EQUAL(ehrt_get(w->srv_a, "not-a-record-id", &out), 400);
	/* listing */
	snprintf(path, sizeof(path), "/v1/patients/%s/records", w->pid1);
	{
		json_t *resp = NULL;
		CU_ASSERT_EQUAL(ehr_client_json(w->pat1, &status, &resp, "GET", path, NULL), 0);
		CU_ASSERT_EQUAL(status, 200);
		CU_ASSERT(resp && json_array_size(json_object_get(resp, "records")) >= 1);
		json_decref(resp);
		resp = NULL;
		CU_ASSERT_EQUAL(ehr_client_json(w->pat2, &status, &resp, "GET", path, NULL), 0);
		CU_ASSERT_EQUAL(status, 403);
		json_decref(resp);
		resp = NULL;
		CU_ASSERT_EQUAL(ehr_client_json(w->srv_b, &status, &resp, "GET", path, NULL), 0);
		CU_ASSERT_EQUAL(status, 200); /* hosp-b stored nothing for this patient */
		CU_ASSERT(resp && json_array_size(json_object_get(resp, "records")) == 0);
		json_decref(resp);
		resp = NULL;
		CU_ASSERT_EQUAL(ehr_client_json(w->anon, &status, &resp, "GET", path, NULL), 0);
		CU_ASSERT_EQUAL(status, 401);
		json_decref(resp);
	}
	ehr_buf_free(&out);
	free(body);
}

static void test_fs_authz(void)
{
	authz(&FS);
}

/* ---------------------------------------------------------- tampering */

/* Read and replace a stored object through the store itself (fs or S3). */
static struct obj_store *raw_store(struct world *w)
{
	struct obj_store *st = NULL;
	char root[400];
	snprintf(root, sizeof(root), "%s/objects", w->t.state_dir);
	return ehrt_raw_store(&st, w->s3, root) < 0 ? NULL : st;
}

static int key_of(char *key, size_t cap, const char *rid)
{
	uint8_t r[CLOUD_RID_LEN];
	GUARD(cloud_rid_parse(r, rid));
	return cloud_record_key(key, cap, r);
}

static void tamper(struct world *w)
{
	size_t n = 5 * CLOUD_SEG_DEFAULT + 123, seglen = CLOUD_SEG_DEFAULT + CLOUD_TAG_LEN;
	uint8_t *body = make_body(n, 99), *tmp = malloc(seglen);
	struct stored st;
	struct obj_store *raw = raw_store(w);
	struct ehr_buf orig = EHR_BUF_INIT(64u << 20), bad = EHR_BUF_INIT(64u << 20),
	               out = EHR_BUF_INIT(64u << 20);
	char key[128];
	long long reads, decisions;

	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	CU_ASSERT_EQUAL_FATAL(post_record(w->srv_a, w->pid1, body, n, "application/pdf", NULL, &st, NULL),
	                      201);
	EHR_ASSERT_OK(key_of(key, sizeof(key), st.rid));
	EHR_ASSERT_OK(obj_store_get(raw, key, cloud_buf_write, &orig, NULL));
	CU_ASSERT_PTR_NULL(memmem(orig.data, orig.len, MARKER, strlen(MARKER))); /* ciphertext only */
	reads = count_type(w, "ehr.read");
	decisions = count_type(w, "access.decision");

	for (int mode = 0; mode < 4; mode++) {
		struct cloud_mem_reader rd;
		ehr_buf_reset(&bad);
		EHR_ASSERT_OK(ehr_buf_append(&bad, orig.data, orig.len));
		switch (mode) {
		case 0: bad.data[CLOUD_HDR_LEN + seglen + 77] ^= 0x20; break; /* one byte flipped */
		case 1:                                                       /* segments 1 and 2 swapped */
			memcpy(tmp, bad.data + CLOUD_HDR_LEN + seglen, seglen);
			memcpy(bad.data + CLOUD_HDR_LEN + seglen, bad.data + CLOUD_HDR_LEN + 2 * seglen,
			       seglen);
			memcpy(bad.data + CLOUD_HDR_LEN + 2 * seglen, tmp, seglen);
			break;
		case 2: bad.len -= seglen / 2; break;            /* truncated */
		case 3: bad.len = CLOUD_HDR_LEN + seglen; break; /* cut at a segment boundary */
		default: break;
		}
		rd = (struct cloud_mem_reader){ bad.data, bad.len, 0 };
		EHR_ASSERT_OK(obj_store_put(raw, key, cloud_mem_read, &rd, NULL));
		ehr_buf_reset(&out);
		CU_ASSERT_EQUAL(ehrt_get(w->srv_a, st.rid, &out), 502);
		CU_ASSERT(is_json_error(&out, "integrity_error"));
		CU_ASSERT_PTR_NULL(memmem(out.data, out.len, MARKER, strlen(MARKER)));
		ehr_buf_reset(&out);
		CU_ASSERT_EQUAL(ehrt_get(w->pat1, st.rid, &out), 502);
		CU_ASSERT_PTR_NULL(memmem(out.data, out.len, MARKER, strlen(MARKER)));
	}
	CU_ASSERT_EQUAL(count_type(w, "ehr.read"), reads);
	/* each refused read's (allowed) decision is in the ledger all the same, alone */
	CU_ASSERT_EQUAL(count_type(w, "access.decision"), decisions + 8);
	/* the object deleted: refused too */
	EHR_ASSERT_OK(obj_store_delete(raw, key));
	ehr_buf_reset(&out);
	CU_ASSERT_EQUAL(ehrt_get(w->srv_a, st.rid, &out), 502);
	/* restored: reads again */
	{
		struct cloud_mem_reader rd = { orig.data, orig.len, 0 };
		EHR_ASSERT_OK(obj_store_put(raw, key, cloud_mem_read, &rd, NULL));
	}
	ehr_buf_reset(&out);
	CU_ASSERT_EQUAL(ehrt_get(w->srv_a, st.rid, &out), 200);
	CU_ASSERT(out.len == n && memcmp(out.data, body, n) == 0); /* not secret */
	obj_store_free(raw);
	ehr_buf_free(&orig);
	ehr_buf_free(&bad);
	ehr_buf_free_secure(&out);
	free(body);
	free(tmp);
}

static void test_fs_tamper(void)
{
	tamper(&FS);
}

static void test_s3_tamper(void)
{
	tamper(&S3);
}

static void test_s3_authz(void)
{
	authz(&S3);
}

/* ------------------------------------------------- a real S3 client looks */

static void test_s3_bucket_scan(void)
{
	char cfgpath[400], dl[400], cmd[2048], out[1 << 16];
	FILE *f;
	uint16_t port = fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3"));
	int nobj = 0;

	snprintf(cfgpath, sizeof(cfgpath), "%s/s3cfg", S3.t.dir);
	snprintf(dl, sizeof(dl), "%s/download", S3.t.dir);
	f = fopen(cfgpath, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fprintf(f,
	        "[default]\naccess_key = %s\nsecret_key = %s\nhost_base = 127.0.0.1:%u\nhost_bucket = "
	        "127.0.0.1:%u\n"
	        "use_https = False\nsignature_v2 = False\nbucket_location = %s\n",
	        ehr_test_env("EHRGATE_TEST_S3_ACCESS_KEY"), ehr_test_env("EHRGATE_TEST_S3_SECRET_KEY"), port,
	        port, ehr_test_env("EHRGATE_TEST_S3_REGION"));
	fclose(f);
	/* s3cmd signs with SigV4 through the verifying front */
	snprintf(cmd, sizeof(cmd), "s3cmd -q -c %s sync s3://%s/t%d/ %s/ 2>&1 && find %s -type f | wc -l",
	         cfgpath, ehr_test_env("EHRGATE_TEST_S3_BUCKET"), (int)getpid(), dl, dl);
	f = popen(cmd, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	size_t got = fread(out, 1, sizeof(out) - 1, f);
	out[got] = '\0';
	CU_ASSERT_EQUAL(pclose(f), 0);
	{
		uint64_t v = 0;
		char *nl = strrchr(out, '\n');
		if (nl)
			*nl = '\0';
		nl = strrchr(out, '\n');
		ehr_parse_u64(&v, nl ? nl + 1 : out, 1000000);
		nobj = (int)v;
	}
	fprintf(stderr, "\n  s3cmd downloaded %d objects\n", nobj);
	/* every stored record of this gateway, no more, no less */
	CU_ASSERT(nobj >= 8);
	CU_ASSERT_EQUAL(nobj,
	                gwp_db_scalar(&S3.t, "SELECT count(*) FROM ehr_records WHERE state = 'stored'"));
	if (nobj < 8)
		fprintf(stderr, "  s3cmd said: %s\n", out);
	/* no object holds the plaintext marker; no key holds a patient id or MRN */
	snprintf(cmd, sizeof(cmd), "grep -rl %s %s | wc -l; find %s | grep -c -e %s -e MRN-", MARKER, dl, dl,
	         S3.pid1);
	f = popen(cmd, "r");
	got = fread(out, 1, sizeof(out) - 1, f);
	out[got] = '\0';
	pclose(f);
	CU_ASSERT_STRING_EQUAL(out, "0\n0\n");
}

/* ------------------------------------------------------ S3 stopped */

static int devservices(const char *what)
{
	char cmd[1024];
	int rc = -1;
	snprintf(cmd, sizeof(cmd), "%s/deploy/devservices.sh %s %s >/dev/null 2>&1", EHR_SOURCE_DIR, what,
	         ehr_test_env("EHRGATE_TEST_STATE"));
	/* a restart on the same port can race the old socket's teardown */
	for (int i = 0; i < 3 && rc != 0; i++) {
		if (i)
			sleep(1);
		rc = system(cmd);
	}
	return rc;
}

static void test_s3_stopped(void)
{
	uint8_t *body = make_body(5000, 3);
	long long stores = count_type(&S3, "ehr.store"), all = count_all(&S3);
	struct ehr_buf out = EHR_BUF_INIT(1 << 20), resp = EHR_BUF_INIT(1 << 20);
	long status = 0;
	struct stored st;

	CU_ASSERT_EQUAL_FATAL(devservices("stop-s3"), 0);
	CU_ASSERT_EQUAL(post_record(S3.srv_a, S3.pid1, body, 5000, NULL, NULL, NULL, &resp), 503);
	CU_ASSERT(is_json_error(&resp, "unavailable"));
	CU_ASSERT_EQUAL(count_type(&S3, "ehr.store"), stores);
	CU_ASSERT_EQUAL(count_all(&S3), all); /* no ledger entry of any kind */
	CU_ASSERT_EQUAL(gwp_db_scalar(&S3.t, "SELECT count(*) FROM ehr_records WHERE state = 'pending'"), 0);
	CU_ASSERT_EQUAL(
	        ehr_client_request(S3.anon, &status, &out, "GET", "/readyz", NULL, NULL, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(status, 503);
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&out), "\"store\":\"down\""));
	CU_ASSERT_EQUAL_FATAL(devservices("start-s3"), 0);
	ehr_buf_reset(&out);
	CU_ASSERT_EQUAL(
	        ehr_client_request(S3.anon, &status, &out, "GET", "/readyz", NULL, NULL, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(status, 200);
	CU_ASSERT_EQUAL(post_record(S3.srv_a, S3.pid1, body, 5000, NULL, NULL, &st, NULL), 201);
	CU_ASSERT_EQUAL(count_type(&S3, "ehr.store"), stores + 1);
	ehr_buf_free(&out);
	ehr_buf_free(&resp);
	free(body);
}

/* ------------------------------------------ S3 failing mid-multipart */

static void test_s3_multipart_failure(void)
{
	struct fault_proxy fp;
	char ep[64], sect[2048], orig[2048];
	size_t n = 20u << 20;
	uint8_t *body = make_body(n, 11);
	long long stores = count_type(&S3, "ehr.store"), all;
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);

	CU_ASSERT_FATAL(fault_proxy_start(&fp, fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3"))) == 0);
	fp.fail_part_from = 2;
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%u", fp.port);
	snprintf(orig, sizeof(orig), "%s", S3.t.store_ini);
	gwp_s3_store_ini(sect, sizeof(sect), ep, "s3_single_put_max = 0\n");
	gwp_stop(&S3.t, NULL, 0);
	CU_ASSERT_EQUAL_FATAL(gwp_set_store(&S3.t, sect), 0);
	CU_ASSERT_EQUAL_FATAL(gwp_start(&S3.t), 0);

	warm(&S3);
	all = count_all(&S3); /* after the restart and a first request */
	CU_ASSERT_EQUAL(post_record(S3.srv_a, S3.pid1, body, n, NULL, NULL, NULL, &resp), 503);
	CU_ASSERT(is_json_error(&resp, "unavailable"));
	CU_ASSERT_EQUAL(fp.parts_ok, 1);
	CU_ASSERT_EQUAL(fp.aborts_seen,
	                1); /* AbortMultipartUpload sent (s3rver answers 405: see test_s3_store) */
	CU_ASSERT(fp.abort_status == 204 || fp.abort_status == 405);
	CU_ASSERT_EQUAL(fp.completes_ok, 0);
	CU_ASSERT_EQUAL(count_type(&S3, "ehr.store"), stores);
	CU_ASSERT_EQUAL(count_all(&S3), all);
	CU_ASSERT_EQUAL(gwp_db_scalar(&S3.t, "SELECT count(*) FROM ehr_records WHERE state = 'pending'"), 0);

	gwp_stop(&S3.t, NULL, 0);
	fault_proxy_stop(&fp);
	CU_ASSERT_EQUAL(gwp_set_store(&S3.t, orig), 0);
	CU_ASSERT_EQUAL(gwp_start(&S3.t), 0);
	ehr_buf_free(&resp);
	free(body);
}

/* A wrong S3 secret: the verifying front refuses every signature, so the
 * gateway answers 503, stores nothing in the ledger, and is not ready. */
static void test_s3_wrong_secret(void)
{
	char sect[2048], orig[2048];
	uint8_t *body = make_body(3000, 4);
	long long stores = count_type(&S3, "ehr.store"), all;
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	long status = 0;

	snprintf(orig, sizeof(orig), "%s", S3.t.store_ini);
	gwp_s3_store_ini(sect, sizeof(sect), NULL, NULL);
	{
		char *p = strstr(sect, "s3_secret_key = ");
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		p += strlen("s3_secret_key = ");
		*p = *p == 'X' ? 'Y' : 'X'; /* one character changed */
	}
	gwp_stop(&S3.t, NULL, 0);
	CU_ASSERT_EQUAL_FATAL(gwp_set_store(&S3.t, sect), 0);
	CU_ASSERT_EQUAL_FATAL(gwp_start(&S3.t), 0);
	warm(&S3);
	all = count_all(&S3); /* after the restart and a first request */
	CU_ASSERT_EQUAL(post_record(S3.srv_a, S3.pid1, body, 3000, NULL, NULL, NULL, &resp), 503);
	CU_ASSERT(is_json_error(&resp, "unavailable"));
	CU_ASSERT_EQUAL(count_type(&S3, "ehr.store"), stores);
	CU_ASSERT_EQUAL(count_all(&S3), all); /* no ledger entry of any kind */
	ehr_buf_reset(&resp);
	CU_ASSERT_EQUAL(
	        ehr_client_request(S3.anon, &status, &resp, "GET", "/readyz", NULL, NULL, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(status, 503);
	gwp_stop(&S3.t, NULL, 0);
	CU_ASSERT_EQUAL(gwp_set_store(&S3.t, orig), 0);
	CU_ASSERT_EQUAL(gwp_start(&S3.t), 0);
	ehr_buf_free(&resp);
	free(body);
}

/* --------------------------------------------- kill -9 during an upload */

struct bg_post {
	struct world *w;
	const uint8_t *body;
	size_t n;
	long status;
};

static void *bg_post_fn(void *arg)
{
	struct bg_post *b = arg;
	b->status = post_record(b->w->srv_a, b->w->pid1, b->body, b->n, NULL, NULL, NULL, NULL);
	return NULL;
}

static int count_cb(void *ctx, const char *key, uint64_t size)
{
	(void)key;
	(void)size;
	(*(int *)ctx)++;
	return 0;
}

static int object_count(struct obj_store *raw)
{
	int n = 0;
	if (obj_store_list(raw, "ehr/", count_cb, &n) < 0)
		return -1;
	return n;
}

static void kill9(struct world *w)
{
	size_t n = 2u << 20;
	uint8_t *body = make_body(n, 5);
	struct obj_store *raw = raw_store(w);
	struct bg_post bp = { .w = w, .body = body, .n = n };
	long long stores = count_type(w, "ehr.store");
	int before = object_count(raw), now = before;
	PGconn *lock = PQconnectdb(w->t.db.super_ci);
	PGresult *r;
	pthread_t th;
	char out[1 << 14], sql[128];
	int rc;

	CU_ASSERT_FATAL(PQstatus(lock) == CONNECTION_OK);
	warm(w);
	/* Hold the ledger writer's lock: the upload reaches S3, then waits for the ledger. */
	snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%lld)", LEDGER_LOCK_KEY);
	r = PQexec(lock, sql);
	CU_ASSERT(PQresultStatus(r) == PGRES_TUPLES_OK);
	PQclear(r);
	pthread_create(&th, NULL, bg_post_fn, &bp);
	for (int i = 0; i < 400 && now == before; i++) {
		usleep(50 * 1000);
		now = object_count(raw);
	}
	CU_ASSERT_EQUAL(now, before + 1); /* the object is stored, the ledger entry is not */
	usleep(200 * 1000);
	gwp_kill(&w->t); /* kill -9 */
	r = PQexec(lock, "COMMIT");
	PQclear(r);
	PQfinish(lock);
	pthread_join(th, NULL);
	CU_ASSERT(bp.status != 201);
	CU_ASSERT_EQUAL(count_type(w, "ehr.store"), stores);

	/* fsck: reported, kept on a dry run, removed otherwise */
	{
		const char *args[] = { "fsck", "--dry-run", "--grace", "0", NULL };
		rc = gwp_cmd(&w->t, out, sizeof(out), args);
		fprintf(stderr, "\n%s", out);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "orphan-object ehr/"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "0 missing objects"));
		CU_ASSERT_EQUAL(object_count(raw), before + 1);
	}
	{
		const char *args[] = { "fsck", "--grace", "0", NULL };
		rc = gwp_cmd(&w->t, out, sizeof(out), args);
		fprintf(stderr, "%s", out);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "1 orphan objects (1 removed)"));
		CU_ASSERT_EQUAL(object_count(raw), before);
		CU_ASSERT_EQUAL(
		        gwp_db_scalar(&w->t, "SELECT count(*) FROM ehr_records WHERE state = 'pending'"), 0);
	}
	{
		const char *args[] = { "fsck", "--grace", "0", NULL };
		rc = gwp_cmd(&w->t, out, sizeof(out), args);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "0 orphan objects (0 removed), 0 missing objects"));
	}
	CU_ASSERT_EQUAL(gwp_start(&w->t), 0);
	obj_store_free(raw);
	free(body);
}

static void test_s3_kill9(void)
{
	kill9(&S3);
}

static void test_fs_kill9(void)
{
	kill9(&FS);
}

/* fsck's other findings: a ledger entry whose object is gone (reported, exit
 * status 1), and a row left pending by a crash after the ledger commit
 * (completed from the ledger, and the record reads again). */
static void test_fs_fsck_findings(void)
{
	struct world *w = &FS;
	uint8_t *body = make_body(70000, 31);
	struct stored st;
	struct obj_store *raw = raw_store(w);
	struct ehr_buf obj = EHR_BUF_INIT(1 << 20), out = EHR_BUF_INIT(1 << 20);
	char key[128], txt[1 << 14], sql[512];
	int rc;

	CU_ASSERT_EQUAL_FATAL(post_record(w->srv_a, w->pid1, body, 70000, NULL, NULL, &st, NULL), 201);
	EHR_ASSERT_OK(key_of(key, sizeof(key), st.rid));
	EHR_ASSERT_OK(obj_store_get(raw, key, cloud_buf_write, &obj, NULL));
	EHR_ASSERT_OK(obj_store_delete(raw, key));
	{
		const char *args[] = { "fsck", "--grace", "0", NULL };
		rc = gwp_cmd(&w->t, txt, sizeof(txt), args);
		CU_ASSERT_EQUAL(rc, 1);
		snprintf(sql, sizeof(sql), "missing-object %s ledger-seq=%lld", st.rid, st.seq);
		CU_ASSERT_PTR_NOT_NULL(strstr(txt, sql));
		CU_ASSERT_PTR_NOT_NULL(strstr(txt, "1 missing objects"));
	}
	{
		struct cloud_mem_reader rd = { obj.data, obj.len, 0 };
		EHR_ASSERT_OK(obj_store_put(raw, key, cloud_mem_read, &rd, NULL));
	}
	/* the crash after the ledger commit, before the row completed */
	snprintf(sql, sizeof(sql),
	         "UPDATE ehr_records SET state = 'pending', ledger_seq = NULL, ct_sha256 = NULL, ct_size = "
	         "NULL, "
	         "plain_size = NULL WHERE record_id = '%s'",
	         st.rid);
	CU_ASSERT_EQUAL_FATAL(gwp_db_exec(&w->t, sql), 0);
	CU_ASSERT_EQUAL(ehrt_get(w->srv_a, st.rid, &out), 404); /* not readable while pending */
	{
		const char *args[] = { "fsck", "--grace", "0", NULL };
		rc = gwp_cmd(&w->t, txt, sizeof(txt), args);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(txt, "1 pending rows completed"));
		CU_ASSERT_PTR_NOT_NULL(strstr(txt, "0 orphan objects"));
	}
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM ehr_records WHERE record_id = '%s' AND state = 'stored' AND "
	         "ledger_seq = %lld "
	         "AND plain_size = 70000",
	         st.rid, st.seq);
	CU_ASSERT_EQUAL(gwp_db_scalar(&w->t, sql), 1);
	ehr_buf_reset(&out);
	CU_ASSERT_EQUAL(ehrt_get(w->srv_a, st.rid, &out), 200);
	CU_ASSERT(out.len == 70000 && memcmp(out.data, body, 70000) == 0); /* not secret */
	obj_store_free(raw);
	ehr_buf_free(&obj);
	ehr_buf_free_secure(&out);
	free(body);
}

/* -------------------------------------------------------- rotate-kek */

struct objhash {
	char key[128];
	uint8_t sha[32];
};

static void rotate(struct world *w)
{
	uint8_t *body = make_body(100000, 21);
	struct stored st;
	struct obj_store *raw = raw_store(w);
	struct obj_info before, after;
	struct ehr_buf sink = EHR_BUF_INIT(64u << 20), out = EHR_BUF_INIT(1 << 20);
	char key[128], outtxt[4096];
	long long rows;
	int rc;

	CU_ASSERT_EQUAL_FATAL(post_record(w->srv_a, w->pid1, body, 100000, NULL, NULL, &st, NULL), 201);
	EHR_ASSERT_OK(key_of(key, sizeof(key), st.rid));
	EHR_ASSERT_OK(obj_store_get(raw, key, cloud_buf_write, &sink, &before));
	rows = gwp_db_scalar(&w->t, "SELECT count(*) FROM ehr_records");
	{
		const char *args[] = { "admin", "rotate-kek", NULL };
		rc = gwp_cmd(&w->t, outtxt, sizeof(outtxt), args);
		fprintf(stderr, "\n%s", outtxt);
		CU_ASSERT_EQUAL(rc, 0);
	}
	/* every data key is now under the new KEK ... */
	CU_ASSERT_EQUAL(gwp_db_scalar(&w->t, "SELECT count(DISTINCT kek_id) FROM ehr_records"), 1);
	CU_ASSERT_EQUAL(gwp_db_scalar(&w->t, "SELECT count(*) FROM ehr_records"), rows);
	{
		char sql[512], cur[128] = "";
		FILE *f;
		snprintf(sql, sizeof(sql), "%s/kek/current", w->t.state_dir);
		f = fopen(sql, "r");
		if (f) {
			if (fgets(cur, sizeof(cur), f) == NULL)
				cur[0] = '\0';
			fclose(f);
		}
		cur[strcspn(cur, "\n")] = '\0';
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM ehr_records WHERE kek_id = '%s'", cur);
		CU_ASSERT_EQUAL(gwp_db_scalar(&w->t, sql), rows);
	}
	/* ... the object was not rewritten ... */
	ehr_buf_reset(&sink);
	EHR_ASSERT_OK(obj_store_get(raw, key, cloud_buf_write, &sink, &after));
	CU_ASSERT(memcmp(before.sha256, after.sha256, 32) == 0); /* not secret */
	/* ... and the running gateway still reads it (it reloads the KEKs) */
	CU_ASSERT_EQUAL(ehrt_get(w->pat1, st.rid, &out), 200);
	CU_ASSERT(out.len == 100000 && memcmp(out.data, body, 100000) == 0); /* not secret */
	/* new records use the new KEK */
	CU_ASSERT_EQUAL(post_record(w->srv_a, w->pid1, body, 10, NULL, NULL, &st, NULL), 201);
	CU_ASSERT_EQUAL(gwp_db_scalar(&w->t, "SELECT count(DISTINCT kek_id) FROM ehr_records"), 1);
	/* the old KEK file is retired only now that nothing uses it */
	{
		const char *args[] = { "admin", "rotate-kek", "--retire", NULL };
		char path[400];
		struct stat sb;
		int nkeys = 0;
		rc = gwp_cmd(&w->t, outtxt, sizeof(outtxt), args);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(outtxt, "is used by no record: deleted"));
		snprintf(path, sizeof(path), "ls %s/kek/*.key | wc -l", w->t.state_dir);
		FILE *f = popen(path, "r");
		if (f) {
			if (fscanf(f, "%d", &nkeys) != 1) /* cppcheck-suppress invalidscanf */
				nkeys = -1;
			pclose(f);
		}
		CU_ASSERT_EQUAL(nkeys, 1);
		(void)sb;
	}
	ehr_buf_reset(&out);
	CU_ASSERT_EQUAL(ehrt_get(w->pat1, st.rid, &out), 200);
	obj_store_free(raw);
	ehr_buf_free(&sink);
	ehr_buf_free_secure(&out);
	free(body);
}

static void test_fs_rotate(void)
{
	rotate(&FS);
}

static void test_s3_rotate(void)
{
	rotate(&S3);
}

/* ------------------------------------------------------ ehrctl record */

/* The JSON that `ehrctl record put` printed last, and its record id
 * (pointing into the returned object). */
static json_t *put_answer(const char *out, const char **rid)
{
	const char *brace = strchr(out, '{');
	json_t *j = NULL;

	*rid = NULL;
	if (brace == NULL || ehr_json_parse(&j, brace, strlen(brace), 1 << 20, 8) < 0)
		return NULL;
	if (ehr_json_get_str(j, "record_id", rid, 40) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The patient downloads rid with the CLI into outp: the bytes are body. */
static void patient_gets(struct world *w, const char *rid, const char *outp, const uint8_t *body, size_t n)
{
	char cmd[2048], out[1 << 14];
	struct ehr_buf got = EHR_BUF_INIT(64u << 20);

	ehrt_fmt(cmd, sizeof(cmd), "%s --dir %s/MRN-0001 record get %s -o %s 2>&1", EHRCTL_BIN, w->t.dir, rid,
	         outp);
	CU_ASSERT_EQUAL(ehrt_sh(out, sizeof(out), cmd), 0);
	EHR_ASSERT_OK(ehr_file_read(&got, outp, 64u << 20));
	CU_ASSERT(got.len == n && memcmp(got.data, body, n) == 0); /* not secret */
	ehr_buf_free(&got);
}

static void test_fs_ehrctl(void)
{
	struct world *w = &FS;
	size_t n = 3u << 20;
	uint8_t *body = make_body(n, 77);
	char in[400], outp[400], cmd[2048], out[1 << 14];
	const char *rid, *rid2;
	json_t *j, *j2;
	FILE *f;
	int rc;

	ehrt_fmt(in, sizeof(in), "%s/scan.pdf", w->t.dir);
	ehrt_fmt(outp, sizeof(outp), "%s/scan-copy.pdf", w->t.dir);
	f = fopen(in, "wb");
	CU_ASSERT_FATAL(f != NULL && fwrite(body, 1, n, f) == n);
	fclose(f);
	/* a server uploads with the CLI, on a pseudo-terminal so the progress bar shows */
	ehrt_fmt(cmd, sizeof(cmd),
	         "script -qec '%s --dir %s/hosp-a record put %s %s --type application/pdf --category "
	         "imaging' /dev/null",
	         EHRCTL_BIN, w->t.dir, w->pid1, in);
	rc = ehrt_sh(out, sizeof(out), cmd);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "upload"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "100%"));
	j = put_answer(out, &rid);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	/* the patient downloads it */
	patient_gets(w, rid, outp, body, n);
	/* from a pipe the upload is chunked (no Content-Length): same bytes back */
	ehrt_fmt(cmd, sizeof(cmd), "cat %s | %s --dir %s/hosp-a record put %s - --type application/pdf 2>&1",
	         in, EHRCTL_BIN, w->t.dir, w->pid1);
	rc = ehrt_sh(out, sizeof(out), cmd);
	CU_ASSERT_EQUAL(rc, 0);
	j2 = put_answer(out, &rid2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j2);
	patient_gets(w, rid2, outp, body, n);
	json_decref(j2);
	/* another server is refused, and no file appears */
	unlink(outp);
	ehrt_fmt(cmd, sizeof(cmd), "%s --dir %s/hosp-b record get %s -o %s 2>&1", EHRCTL_BIN, w->t.dir, rid,
	         outp);
	rc = ehrt_sh(out, sizeof(out), cmd);
	CU_ASSERT_NOT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(access(outp, F_OK), -1);
	{
		char part[420];
		ehrt_fmt(part, sizeof(part), "%s.part", outp);
		CU_ASSERT_EQUAL(access(part, F_OK), -1);
	}
	/* list shows it, with the category */
	ehrt_fmt(cmd, sizeof(cmd), "%s --dir %s/MRN-0001 record list %s", EHRCTL_BIN, w->t.dir, w->pid1);
	rc = ehrt_sh(out, sizeof(out), cmd);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, rid));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "imaging"));
	json_decref(j);
	free(body);
}

/*
 * A request holds at most one pooled connection at a time. With a pool of
 * one, an upload, a server read and a patient read of a record whose
 * ledger entry the (restarted) gateway has not cached yet all succeed: a
 * read that took a second connection for the entry while holding its
 * row's lock waited for itself and failed 503 after acquire_timeout_ms
 * (and under load, with every handler doing so, the pool ran dry).
 */
static void test_fs_one_connection(void)
{
	static const char *const one[] = { "database.pool_size=1", "database.acquire_timeout_ms=1000", NULL };
	struct ehr_buf got = EHR_BUF_INIT(1u << 20);
	uint8_t *body = make_body(5000, 77);
	struct stored st;

	EHR_ASSERT_OK(gwp_stop(&FS.t, NULL, 10000));
	CU_ASSERT_FATAL(gwp_start_with(&FS.t, one) == 0);
	CU_ASSERT_EQUAL_FATAL(
	        post_record(FS.srv_a, FS.pid1, body, 5000, "application/octet-stream", "lab", &st, NULL),
	        201);
	EHR_ASSERT_OK(gwp_stop(&FS.t, NULL, 10000)); /* an empty entry cache */
	CU_ASSERT_FATAL(gwp_start_with(&FS.t, one) == 0);
	CU_ASSERT_EQUAL(ehrt_get(FS.srv_a, st.rid, &got), 200);
	CU_ASSERT(got.len == 5000 && memcmp(got.data, body, 5000) == 0); /* not secret */
	ehr_buf_reset(&got);
	CU_ASSERT_EQUAL(ehrt_get(FS.pat1, st.rid, &got), 200);
	CU_ASSERT(got.len == 5000 && memcmp(got.data, body, 5000) == 0); /* not secret */
	/* a denied read (hosp-b has no contract) gives the connection back too */
	CU_ASSERT_EQUAL(ehrt_get(FS.srv_b, st.rid, NULL), 403);
	CU_ASSERT_EQUAL(ehrt_get(FS.srv_a, st.rid, NULL), 200);
	EHR_ASSERT_OK(gwp_stop(&FS.t, NULL, 10000));
	CU_ASSERT_FATAL(gwp_start(&FS.t) == 0);
	ehr_buf_free(&got);
	free(body);
}

/*
 * The group commit and the pool as /metrics shows them (docs/OPERATIONS.md
 * §7). An upload and a read are two append requests of two entries each
 * (the decision with ehr.store, the decision with ehr.read), committed in
 * one or two batches, each having waited; the requests took pooled
 * connections (the certificate check, the row, the decision) and waited
 * for them some time. Nothing failed.
 */
enum { M_APPENDS, M_WAIT, M_OK, M_FAILED, M_ENTRIES, M_COMMIT, M_ACQ, M_ACQ_US, M_N };

static void metrics_of(struct world *w, uint64_t v[M_N])
{
	static const char *const series[M_N] = {
		"\nehrgate_ledger_appends_total ",
		"\nehrgate_ledger_append_wait_microseconds_total ",
		"\nehrgate_ledger_batches_total{outcome=\"committed\"} ",
		"\nehrgate_ledger_batches_total{outcome=\"failed\"} ",
		"\nehrgate_ledger_batch_entries_total ",
		"\nehrgate_ledger_commit_microseconds_total ",
		"\nehrgate_db_acquires_total ",
		"\nehrgate_db_acquire_wait_microseconds_total ",
	};
	struct gwp_resp res;

	memset(v, 0, M_N * sizeof(*v));
	EHR_ASSERT_OK(gwp_metrics(&w->t, &res));
	CU_ASSERT_EQUAL(res.status, 200);
	for (int i = 0; i < M_N && res.body != NULL; i++) {
		CU_ASSERT_PTR_NOT_NULL(strstr(res.body, series[i] + 1));
		v[i] = gwp_metric(res.body, series[i]);
	}
	gwp_resp_free(&res);
}

static void test_fs_metrics(void)
{
	uint64_t a[M_N], b[M_N];
	uint8_t *body = make_body(3000, 5);
	struct stored st;

	/* after a restart the first request also appends a once-only entry */
	CU_ASSERT_EQUAL(ehrt_get(FS.srv_a, "00000000000000000000000000000000", NULL), 404);
	metrics_of(&FS, a);
	CU_ASSERT_EQUAL_FATAL(
	        post_record(FS.srv_a, FS.pid1, body, 3000, "application/octet-stream", "lab", &st, NULL),
	        201);
	CU_ASSERT_EQUAL(ehrt_get(FS.srv_a, st.rid, NULL), 200);
	metrics_of(&FS, b);
	CU_ASSERT_EQUAL(b[M_APPENDS] - a[M_APPENDS], 2);
	CU_ASSERT_EQUAL(b[M_ENTRIES] - a[M_ENTRIES], 4);
	CU_ASSERT(b[M_OK] - a[M_OK] >= 1 && b[M_OK] - a[M_OK] <= 2);
	CU_ASSERT_EQUAL(b[M_FAILED], a[M_FAILED]);
	CU_ASSERT(b[M_WAIT] > a[M_WAIT]);
	CU_ASSERT(b[M_COMMIT] > a[M_COMMIT]);
	CU_ASSERT(b[M_ACQ] - a[M_ACQ] >= 4);
	CU_ASSERT(b[M_ACQ_US] > a[M_ACQ_US]);
	free(body);
}

static void reg(void)
{
	EHR_ADD_SUITE("ehr_fs", fs_init, fs_clean, { "round trips", test_fs_round_trips },
	              { "authorisation", test_fs_authz }, { "tampering", test_fs_tamper },
	              { "kill -9 and fsck", test_fs_kill9 }, { "rotate-kek", test_fs_rotate },
	              { "ehrctl record", test_fs_ehrctl }, { "fsck findings", test_fs_fsck_findings },
	              { "one pooled connection", test_fs_one_connection },
	              { "ledger and pool metrics", test_fs_metrics });
	EHR_ADD_SUITE("ehr_s3", s3_init, s3_clean, { "round trips", test_s3_round_trips },
	              { "authorisation", test_s3_authz }, { "tampering", test_s3_tamper },
	              { "s3 stopped", test_s3_stopped }, { "wrong S3 secret", test_s3_wrong_secret },
	              { "multipart failure", test_s3_multipart_failure },
	              { "kill -9 and fsck", test_s3_kill9 }, { "rotate-kek", test_s3_rotate },
	              { "bucket scan with s3cmd", test_s3_bucket_scan });
}

EHR_TEST_MAIN(reg)
