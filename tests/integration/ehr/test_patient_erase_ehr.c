/*
 * test_patient_erase_ehr.c - patient erasure (docs/ERASURE.md §10) of a
 * patient who HAS records, end to end: the real gateway over TLS, real
 * Postgres, the fs store and real S3 (s3rver behind the SigV4 verifying
 * front), medical servers (mTLS), patients (DPoP), `ehrgate admin`.
 *
 *  - erased: every object gone from the store (looked at directly), every
 *    wrapped key gone from every table, reads 410, `ehrgate ledger verify`;
 *  - refused (409 with the reason, the refusal recorded, nothing erased):
 *    a hold on the patient, a hold on one record, a record in retention;
 *  - an upload racing the erasure is never acknowledged for an erased
 *    patient: an erasure that committed while the upload streamed makes it
 *    410 (and nothing of it stays stored); an upload that holds the
 *    patient's row makes the erasure wait, then the erasure erases it.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ehrtest.h"
#include "tests/harness/harness.h"

static struct gw_proc G;
static struct ehr_client *srv;
static struct obj_store *raw;
static char release[GWP_PATH + 32], reached[GWP_PATH + 48];
static int npatients;

#define q1(...) ehrt_q1(&G, __VA_ARGS__)

static void touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	if (fd >= 0)
		close(fd);
}

/* A new enrolled patient who granted srv read and append; *pat its client. */
static void patient(char pid[160], struct ehr_client **pat)
{
	char name[32];
	ehrt_fmt(name, sizeof(name), "MRN-PE%03d", ++npatients);
	CU_ASSERT_EQUAL_FATAL(ehrt_patient(&G, srv, name, pid, pat), 0);
	CU_ASSERT_EQUAL_FATAL(ehrt_grant(&G, name, ehr_client_id(srv), "read,append"), 0);
}

static long put(const char *pid, const char *cat, char rid[CLOUD_RID_HEX])
{
	static const uint8_t body[] = "PHI-MARKER patient erasure record";
	return ehrt_put(srv, pid, cat, body, sizeof(body) - 1, rid);
}

/* POST /v1/me/erase as the patient; *resp the JSON reply. */
static long me_erase(struct ehr_client *pat, json_t **resp)
{
	return ehrt_post_basis(pat, "/v1/me/erase", "gdpr-17-1-a", resp);
}

static long long erase_state_null(const char *pid)
{
	return q1("SELECT count(*) FROM auth_patients WHERE patient_id = '%s' AND erase_state IS NULL", pid);
}

static int admin_erase(const char *pid, char *out, size_t cap)
{
	const char *a[] = { "admin", "erase-patient", pid, "--basis", "court-order", NULL };
	return gwp_cmd(&G, out, cap, a);
}

/* ------------------------------------------------------------- world */

static int world(bool s3)
{
	static const char *const sets[] = { "server.workers=4", "database.pool_size=12", "log.level=warn",
		                            NULL };
	char sect[2048] = "";
	struct gwp_options o = { .sets = sets,
		                 .extra_ini = "[retention]\ncategories = legal=3650d\n",
		                 .no_test_routes = true,
		                 .keep_port = true };
	if (s3) {
		if (!ehr_test_env("EHRGATE_TEST_S3"))
			return -1;
		gwp_s3_store_ini(sect, sizeof(sect), NULL, NULL);
		o.store_ini = sect;
	}
	if (gwp_setup(&G, &o) < 0)
		return -1;
	/* The gateway pauses an upload at upload.locked (holding the patient's
	 * row) until the release file exists: it does, except in the race test. */
	ehrt_fmt(release, sizeof(release), "%s/release", G.dir);
	ehrt_fmt(reached, sizeof(reached), "%s.reached", release);
	touch(release);
	setenv("EHRGATE_TEST_FAILPOINT", "upload.locked", 1);
	setenv("EHRGATE_TEST_FAILPOINT_RELEASE", release, 1);
	if (gwp_start(&G) < 0)
		return -1;
	unsetenv("EHRGATE_TEST_FAILPOINT");
	if (ehrt_server(&G, "hosp", &srv) < 0)
		return -1;
	if (s3)
		return ehrt_raw_store(&raw, true, NULL);
	{
		char root[GWP_PATH + 16];
		ehrt_fmt(root, sizeof(root), "%s/objects", G.dir);
		return ehrt_raw_store(&raw, false, root);
	}
}

static int init_s3(void)
{
	return world(true) < 0 ? -1 : 0;
}

static int init_fs(void)
{
	return world(false) < 0 ? -1 : 0;
}

static int clean(void)
{
	ehr_client_free(srv);
	srv = NULL;
	obj_store_free(raw);
	raw = NULL;
	gwp_teardown(&G);
	return 0;
}

/* ------------------------------------------------------------- erased */

static void test_erase_with_records(void)
{
	char pid[160], other[160], rids[3][CLOUD_RID_HEX], hex[3][200], orid[CLOUD_RID_HEX], out[4096];
	const char *cats[3] = { "lab", NULL, "imaging" };
	struct ehr_client *pat = NULL, *opat = NULL;
	const char *lv[] = { "ledger", "verify", NULL };

	patient(pid, &pat);
	patient(other, &opat);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL_FATAL(put(pid, cats[i], rids[i]), 201);
		ehrt_wrapped_hex(&G, rids[i], hex[i], sizeof(hex[i]));
		CU_ASSERT_EQUAL_FATAL(strlen(hex[i]), 2 * CLOUD_WRAPPED_LEN);
		CU_ASSERT(ehrt_object_exists(raw, rids[i]));
	}
	CU_ASSERT_EQUAL_FATAL(put(other, "lab", orid), 201);
	CU_ASSERT_EQUAL(ehrt_get(pat, rids[0], NULL), 200);

	CU_ASSERT_EQUAL(admin_erase(pid, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"records_erased\":3"));
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_FALSE(ehrt_object_exists(raw, rids[i]));
		CU_ASSERT_EQUAL(ehrt_rows_holding(&G, hex[i]), 0);
		CU_ASSERT_EQUAL(ehrt_get(pat, rids[i], NULL), 410); /* patient_erased */
		/* The server's contract ended with the erasure: it learns nothing. */
		CU_ASSERT_EQUAL(ehrt_get(srv, rids[i], NULL), 403);
		CU_ASSERT_EQUAL(
		        q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.erase' AND subject = "
		           "'%s' AND position(convert_to('%s', 'UTF8') in entry) > 0 AND "
		           "position(convert_to('patient-erasure', 'UTF8') in entry) > 0",
		           pid, rids[i]),
		        1);
	}
	CU_ASSERT_EQUAL(
	        q1("SELECT count(*) FROM ehr_records WHERE patient = '%s' AND state <> 'erased'", pid), 0);
	/* The other patient is untouched. */
	CU_ASSERT(ehrt_object_exists(raw, orid));
	CU_ASSERT_EQUAL(ehrt_get(opat, orid, NULL), 200);
	CU_ASSERT_EQUAL(gwp_cmd(&G, out, sizeof(out), lv), 0);
	/* Again: already erased, nothing more. */
	CU_ASSERT_EQUAL(admin_erase(pid, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"already\":true"));
	ehr_client_free(pat);
	ehr_client_free(opat);
}

/* ------------------------------------------------------------ refused */

/* The patient's erasure is refused with `reason` (409, recorded), and
 * nothing of theirs is erased. */
static void assert_refused(const char *pid, struct ehr_client *pat, const char *rid, const char *reason,
                           const char *field, const char *value)
{
	long long before = q1("SELECT count(*) FROM ledger_entries WHERE type = 'auth.patient.erase' AND "
	                      "subject = '%s'",
	                      pid);
	json_t *resp = NULL;
	char out[4096];

	CU_ASSERT_EQUAL(me_erase(pat, &resp), 409);
	CU_ASSERT_STRING_EQUAL(ehrt_err_str(resp, "code") ?: "", "erasure_refused");
	CU_ASSERT_STRING_EQUAL(ehrt_err_str(resp, "reason") ?: "", reason);
	CU_ASSERT_STRING_EQUAL(ehrt_err_str(resp, field) ?: "", value);
	{
		json_t *seq = json_object_get(json_object_get(resp, "error"), "refused_seq");
		CU_ASSERT_FATAL(json_is_integer(seq));
		CU_ASSERT_EQUAL(
		        q1("SELECT count(*) FROM ledger_entries WHERE seq = %lld AND type = "
		           "'auth.patient.erase' AND subject = '%s' AND position(convert_to('\"outcome\":"
		           "\"failure\"', 'UTF8') in entry) > 0 AND position(convert_to('%s', 'UTF8') "
		           "in entry) > 0",
		           (long long)json_integer_value(seq), pid, reason),
		        1);
	}
	json_decref(resp);
	/* The operator is refused the same way: exit 3, recorded too. */
	CU_ASSERT_EQUAL(admin_erase(pid, out, sizeof(out)), 3);
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ledger_entries WHERE type = 'auth.patient.erase' AND "
	                   "subject = '%s'",
	                   pid),
	                before + 2);
	/* Nothing erased: the patient, the record, the object, the reads. */
	CU_ASSERT_EQUAL(erase_state_null(pid), 1);
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ehr_records WHERE record_id = '%s' AND state = 'stored' AND "
	                   "wrapped_key IS NOT NULL",
	                   rid),
	                1);
	CU_ASSERT(ehrt_object_exists(raw, rid));
	CU_ASSERT_EQUAL(ehrt_get(pat, rid, NULL), 200);
}

static void test_refused_patient_hold(void)
{
	char pid[160], rid[CLOUD_RID_HEX], out[1024];
	struct ehr_client *pat = NULL;
	json_t *resp = NULL;

	patient(pid, &pat);
	CU_ASSERT_EQUAL_FATAL(put(pid, "lab", rid), 201);
	{
		const char *place[] = { "admin", "hold",     "place",      "--patient",
			                pid,     "--reason", "litigation", NULL };
		CU_ASSERT_EQUAL_FATAL(gwp_cmd(&G, out, sizeof(out), place), 0);
	}
	assert_refused(pid, pat, rid, "legal_hold", "hold_on", "patient");
	{
		const char *lift[] = { "admin", "hold",     "lift",       "--patient",
			               pid,     "--reason", "litigation", NULL };
		CU_ASSERT_EQUAL_FATAL(gwp_cmd(&G, out, sizeof(out), lift), 0);
	}
	/* Lifted: the patient erases themself. */
	CU_ASSERT_EQUAL(me_erase(pat, &resp), 200);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(resp, "records_erased")), 1);
	json_decref(resp);
	CU_ASSERT_FALSE(ehrt_object_exists(raw, rid));
	ehr_client_free(pat);
}

static void test_refused_record_hold(void)
{
	char pid[160], rid[CLOUD_RID_HEX], rid2[CLOUD_RID_HEX], out[1024];
	struct ehr_client *pat = NULL;

	patient(pid, &pat);
	CU_ASSERT_EQUAL_FATAL(put(pid, "lab", rid), 201);
	CU_ASSERT_EQUAL_FATAL(put(pid, NULL, rid2), 201);
	{
		const char *place[] = { "admin", "hold",     "place",       "--record",
			                rid2,    "--reason", "court-order", NULL };
		CU_ASSERT_EQUAL_FATAL(gwp_cmd(&G, out, sizeof(out), place), 0);
	}
	assert_refused(pid, pat, rid, "legal_hold", "refused_record_id", rid2);
	CU_ASSERT(ehrt_object_exists(raw, rid2));
	ehr_client_free(pat);
}

static void test_refused_retention(void)
{
	char pid[160], rid[CLOUD_RID_HEX], legal[CLOUD_RID_HEX];
	struct ehr_client *pat = NULL;

	patient(pid, &pat);
	CU_ASSERT_EQUAL_FATAL(put(pid, "lab", rid), 201);
	CU_ASSERT_EQUAL_FATAL(put(pid, "legal", legal), 201);
	assert_refused(pid, pat, rid, "retention", "category", "legal");
	CU_ASSERT(ehrt_object_exists(raw, legal));
	ehr_client_free(pat);
}

/* ------------------------------------------------------------- races */

struct upload {
	const char *pid;
	int fd; /* the body's read end (chunked), or -1: a small body at once */
	long status;
	char rid[CLOUD_RID_HEX];
	char code[64];
};

static void *upload_thread(void *ud)
{
	struct upload *u = ud;
	char path[256];
	struct ehr_buf resp = EHR_BUF_INIT(1 << 16);
	json_t *j = NULL;

	if (u->fd < 0) {
		u->status = put(u->pid, NULL, u->rid);
		return NULL;
	}
	ehrt_fmt(path, sizeof(path), "/v1/patients/%s/records", u->pid);
	if (ehr_client_upload(srv, &u->status, &resp, "POST", path, NULL, u->fd, -1) < 0)
		u->status = 0;
	if (ehr_json_parse(&j, resp.data, resp.len, 1 << 20, 8) == 0 && ehrt_err_str(j, "code"))
		ehrt_fmt(u->code, sizeof(u->code), "%s", ehrt_err_str(j, "code"));
	json_decref(j);
	ehr_buf_free(&resp);
	return NULL;
}

static bool wait_for(const char *what, long long (*probe)(const char *), const char *arg)
{
	for (int i = 0; i < 1000; i++) {
		if (probe(arg) > 0)
			return true;
		gwp_sleep_ms(10);
	}
	fprintf(stderr, "\n  timed out waiting for %s", what);
	return false;
}

static long long pending_rows(const char *pid)
{
	return q1("SELECT count(*) FROM ehr_records WHERE patient = '%s' AND state = 'pending'", pid);
}

static long long reached_file(const char *path)
{
	return access(path, F_OK) == 0;
}

static int count_cb(void *ctx, const char *key, uint64_t size)
{
	(void)key;
	(void)size;
	(*(int *)ctx)++;
	return 0;
}

static int objects(void)
{
	int n = 0;
	CU_ASSERT_EQUAL(obj_store_list(raw, "ehr/", count_cb, &n), 0);
	return n;
}

/* The erasure commits while the upload's body is still arriving: the
 * upload is refused 410 and nothing of it stays. */
static void test_upload_after_erasure_began(void)
{
	static char chunk[64 * 1024];
	char pid[160], out[4096];
	struct ehr_client *pat = NULL;
	struct upload u = { 0 };
	pthread_t t;
	int fds[2], before;

	patient(pid, &pat);
	before = objects();
	CU_ASSERT_FATAL(pipe(fds) == 0);
	u.pid = pid;
	u.fd = fds[0];
	memset(chunk, 'x', sizeof(chunk));
	CU_ASSERT_FATAL(pthread_create(&t, NULL, upload_thread, &u) == 0);
	CU_ASSERT(write(fds[1], chunk, sizeof(chunk)) == (ssize_t)sizeof(chunk));
	CU_ASSERT(wait_for("the pending row", pending_rows, pid));
	CU_ASSERT_EQUAL(admin_erase(pid, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"records_erased\":0"));
	CU_ASSERT(write(fds[1], chunk, sizeof(chunk)) == (ssize_t)sizeof(chunk));
	close(fds[1]);
	pthread_join(t, NULL);
	close(fds[0]);
	CU_ASSERT_EQUAL(u.status, 410);
	CU_ASSERT_STRING_EQUAL(u.code, "patient_erased");
	CU_ASSERT_EQUAL(q1("SELECT count(*) FROM ehr_records WHERE patient = '%s'", pid), 0);
	CU_ASSERT_EQUAL(
	        q1("SELECT count(*) FROM ledger_entries WHERE type = 'ehr.store' AND subject = '%s'", pid),
	        0);
	CU_ASSERT_EQUAL(objects(), before);
	ehr_client_free(pat);
}

struct erasure {
	const char *pid;
	int status;
	char out[4096];
};

static void *erase_thread(void *ud)
{
	struct erasure *e = ud;
	e->status = admin_erase(e->pid, e->out, sizeof(e->out));
	return NULL;
}

/* The upload holds the patient's row (paused at upload.locked): the
 * erasure waits for it, then erases the record it stored. */
static void test_erasure_waits_for_upload(void)
{
	char pid[160];
	struct ehr_client *pat = NULL;
	struct upload u = { 0 };
	struct erasure e = { 0 };
	pthread_t tu, te;

	patient(pid, &pat);
	unlink(reached);
	unlink(release);
	u.pid = pid;
	u.fd = -1;
	e.pid = pid;
	CU_ASSERT_FATAL(pthread_create(&tu, NULL, upload_thread, &u) == 0);
	CU_ASSERT(wait_for("the upload at upload.locked", reached_file, reached));
	CU_ASSERT_FATAL(pthread_create(&te, NULL, erase_thread, &e) == 0);
	gwp_sleep_ms(500);
	CU_ASSERT_EQUAL(erase_state_null(pid), 1); /* the erasure waits on the row */
	touch(release);
	pthread_join(tu, NULL);
	pthread_join(te, NULL);
	CU_ASSERT_EQUAL(u.status, 201);
	CU_ASSERT_EQUAL(e.status, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.out, "\"records_erased\":1"));
	CU_ASSERT_EQUAL(
	        q1("SELECT count(*) FROM ehr_records WHERE record_id = '%s' AND state = 'erased'", u.rid), 1);
	CU_ASSERT_FALSE(ehrt_object_exists(raw, u.rid));
	ehr_client_free(pat);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("patient_erase_fs", init_fs, clean, { "erase with records", test_erase_with_records });
	EHR_ADD_SUITE("patient_erase_s3", init_s3, clean, { "erase with records", test_erase_with_records },
	              { "refused: hold on the patient", test_refused_patient_hold },
	              { "refused: hold on a record", test_refused_record_hold },
	              { "refused: retention", test_refused_retention },
	              { "upload after the erasure began", test_upload_after_erasure_began },
	              { "erasure waits for an upload", test_erasure_waits_for_upload });
}

EHR_TEST_MAIN(register_suites)
