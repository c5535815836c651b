/*
 * test_patient_stream.c - a patient's live monitor, GET /v1/me/access/stream
 * (docs/AUDIT.md §8), through a real `ehrgate serve` over TLS, read with
 * libehrclient (fresh DPoP proof per request) and the one SSE reader of
 * ehrctl (client/ctl/ctl_sse.c), and through `ehrctl patient watch`:
 *
 *  - a server's read, a denial and a break-glass read reach the patient's
 *    stream within one second, with the right fields;
 *  - a new device key enrolled for the patient (key transparency) appears
 *    on the old device's stream, which then ends (key_replaced); an
 *    operator revocation appears and ends the stream (revoked);
 *  - resuming with Last-Event-ID gives no gap and no duplicate;
 *  - another patient's entries never appear (every event checked against
 *    the database);
 *  - certificates (server, auditor) are refused 403, no credential 401;
 *  - an expired token ends the stream cleanly (event `end`, then close);
 *  - each open is one audit.query entry about the patient.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "client/client.h"
#include "client/ctl/ctl_commands.h"
#include "ledger/ledger.h"
#include "tests/harness/gwproc.h"
#include "tests/harness/harness.h"
#include "tests/integration/ehr/ehrtest.h"

static struct gw_proc gw;
static char dir_p1[GWP_PATH + 16], dir_p2[GWP_PATH + 16], dir_aud[GWP_PATH + 16];
static char P1[160], P2[160], S1[160], S2[160];
static struct ehr_client *c_none, *c_p1, *c_p2, *c_s1, *c_s2, *c_aud;

#define BREAK_GLASS "X-EHR-Break-Glass: unconscious patient in the emergency room"

/* ------------------------------------------------------------ helpers */

/* Servers, an auditor and two patients, registered and enrolled as real
 * clients are (tests/integration/ehr/ehrtest.h); profiles in gw.dir/<name>. */
static int suite_init_inner(void)
{
	struct ehr_client_opts none = { 0 };

	if (gwp_setup(&gw, NULL) < 0 || gwp_start(&gw) < 0) {
		fprintf(stderr, "gateway: %s\n", ehr_error_msg());
		return 1;
	}
	ehrt_fmt(dir_p1, sizeof(dir_p1), "%s/p1", gw.dir);
	ehrt_fmt(dir_p2, sizeof(dir_p2), "%s/p2", gw.dir);
	ehrt_fmt(dir_aud, sizeof(dir_aud), "%s/aud", gw.dir);
	if (ehrt_server(&gw, "s1", &c_s1) < 0 || ehrt_server(&gw, "s2", &c_s2) < 0 ||
	    ehrt_principal(&gw, "auditor", "aud", &c_aud) < 0 ||
	    ehrt_patient(&gw, c_s1, "p1", P1, &c_p1) < 0 || ehrt_patient(&gw, c_s1, "p2", P2, &c_p2) < 0) {
		fprintf(stderr, "principals: %s\n", ehr_error_msg());
		return 1;
	}
	ehrt_fmt(S1, sizeof(S1), "%s", ehr_client_id(c_s1));
	ehrt_fmt(S2, sizeof(S2), "%s", ehr_client_id(c_s2));
	none.url = gw.base_url;
	none.ca_file = gw.ca_pem;
	return ehr_client_new(&c_none, &none) < 0;
}

static int suite_clean(void)
{
	ehr_client_free(c_none);
	ehr_client_free(c_p1);
	ehr_client_free(c_p2);
	ehr_client_free(c_s1);
	ehr_client_free(c_s2);
	ehr_client_free(c_aud);
	gwp_teardown(&gw);
	return 0;
}

static int suite_init(void)
{
	if (suite_init_inner() != 0) {
		suite_clean();
		return 1;
	}
	return 0;
}

static long long scalar(const char *sql)
{
	return gwp_db_scalar(&gw, sql);
}

static long post_record(struct ehr_client *c, const char *pid, char *rid, size_t cap)
{
	char id[CLOUD_RID_HEX] = "";
	long st = ehrt_put(c, pid, "lab", (const uint8_t *)"lab result 42", 13, id);

	ehrt_fmt(rid, cap, "%s", id);
	return st;
}

/* GET /v1/records/{rid} with one extra header (the break-glass declaration). */
static long get_record(struct ehr_client *c, const char *rid, const char *extra)
{
	char path[128];
	const char *hdr[] = { extra, NULL };
	long status = 0;

	ehrt_fmt(path, sizeof(path), "/v1/records/%s", rid);
	ehr_client_request(c, &status, NULL, "GET", path, extra ? hdr : NULL, NULL, 0, NULL, NULL);
	return status;
}

/* ------------------------------------------ a stream read in a thread */

#define MAX_EVENTS 1024

struct event {
	uint64_t id;
	char name[48];
	json_t *data;
	int64_t at_ms; /* when it arrived */
};

struct watcher {
	struct ehr_client *c; /* its own: a client is used by one thread */
	char path[256];
	char last_id[64]; /* "Last-Event-ID: N" or "" */
	struct ctl_sse sse;
	pthread_t th;
	pthread_mutex_t mu;
	struct event ev[MAX_EVENTS];
	size_t n;
	char end[32];
	bool opened, done, stop, joined;
	long status;
};

static bool w_event(struct ctl_sse *s, void *ud)
{
	struct watcher *w = ud;
	json_t *d = NULL;
	uint64_t id = 0;

	pthread_mutex_lock(&w->mu);
	if (strcmp(s->event, "end") == 0) {
		if (ehr_json_parse(&d, s->data.data, s->data.len, 4096, 4) == 0)
			snprintf(w->end, sizeof(w->end), "%s",
			         json_string_value(json_object_get(d, "reason")) ?: "?");
		json_decref(d);
	} else if (w->n < MAX_EVENTS && ehr_parse_u64(&id, s->id, INT64_MAX) == 0 &&
	           ehr_json_parse(&d, s->data.data, s->data.len, s->data.max, 16) == 0) {
		w->ev[w->n].id = id;
		snprintf(w->ev[w->n].name, sizeof(w->ev[w->n].name), "%s", s->event);
		w->ev[w->n].data = d;
		w->ev[w->n].at_ms = ehr_now_ms();
		w->n++;
	}
	pthread_mutex_unlock(&w->mu);
	return !w->stop;
}

static bool w_data(const void *p, size_t n, void *ud)
{
	struct watcher *w = ud;

	w->opened = true;
	if (w->stop)
		return false;
	return ctl_sse_feed(p, n, &w->sse);
}

static void *w_main(void *arg)
{
	struct watcher *w = arg;
	const char *hdr[] = { w->last_id, NULL };

	ehr_client_request(w->c, &w->status, NULL, "GET", w->path, w->last_id[0] ? hdr : NULL, NULL, 0,
	                   w_data, w);
	w->done = true;
	return NULL;
}

/* Open `dir`'s patient stream at `query` (after Last-Event-ID `last` when
 * not NULL) and wait until it is open. */
static struct watcher *watch(const char *dir, const char *query, const char *last)
{
	struct watcher *w = calloc(1, sizeof(*w));

	CU_ASSERT_FATAL(w != NULL);
	pthread_mutex_init(&w->mu, NULL);
	ctl_sse_init(&w->sse, 1 << 20, w_event, w);
	snprintf(w->path, sizeof(w->path), "/v1/me/access/stream?heartbeat=1%s%s", query ? "&" : "",
	         query ? query : "");
	if (last)
		snprintf(w->last_id, sizeof(w->last_id), "Last-Event-ID: %s", last);
	CU_ASSERT_FATAL(ehr_client_open_profile(&w->c, dir) == 0);
	CU_ASSERT_FATAL(pthread_create(&w->th, NULL, w_main, w) == 0);
	for (int i = 0; i < 500 && !w->opened && !w->done; i++)
		gwp_sleep_ms(10);
	CU_ASSERT(w->opened);
	return w;
}

static void unwatch(struct watcher *w)
{
	w->stop = true;
	if (!w->joined)
		pthread_join(w->th, NULL);
	for (size_t i = 0; i < w->n; i++)
		json_decref(w->ev[i].data);
	ctl_sse_free(&w->sse);
	ehr_client_free(w->c);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

/* The first event after index `after` of type `type` whose `key` is
 * `value` (NULL: any), waiting up to `ms`; its position or -1. */
static long wait_for(struct watcher *w, uint64_t after, const char *type, const char *key, const char *value,
                     long ms)
{
	for (long t = 0; t <= ms; t += 10) {
		pthread_mutex_lock(&w->mu);
		for (size_t i = 0; i < w->n; i++) {
			const char *v = key ? json_string_value(json_object_get(w->ev[i].data, key)) : NULL;
			if (w->ev[i].id > after && strcmp(w->ev[i].name, type) == 0 &&
			    (key == NULL || (v && strcmp(v, value) == 0))) {
				pthread_mutex_unlock(&w->mu);
				return (long)i;
			}
		}
		pthread_mutex_unlock(&w->mu);
		if (w->done)
			break;
		gwp_sleep_ms(10);
	}
	return -1;
}

static bool wait_done(struct watcher *w, long ms)
{
	for (long t = 0; t <= ms && !w->done; t += 10)
		gwp_sleep_ms(10);
	return w->done;
}

/* Every event of w is an entry about `pid` (checked in the database),
 * in increasing index order, each index once. */
static void assert_own(struct watcher *w, const char *pid)
{
	char sql[512];

	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->n; i++) {
		PGresult *r;
		PGconn *db = PQconnectdb(gw.db.super_ci);
		const char *subject;

		snprintf(sql, sizeof(sql), "SELECT subject FROM ledger_entries WHERE seq = %llu",
		         (unsigned long long)w->ev[i].id);
		r = PQexec(db, sql);
		subject =
		        PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "";
		if (strcmp(subject, pid) != 0)
			fprintf(stderr, "\n  event %llu is about %s, not %s", (unsigned long long)w->ev[i].id,
			        subject, pid);
		CU_ASSERT_STRING_EQUAL(subject, pid);
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(w->ev[i].data, "index")),
		                (json_int_t)w->ev[i].id);
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(w->ev[i].data, "type")) ?: "",
		                       w->ev[i].name);
		if (i > 0)
			CU_ASSERT(w->ev[i].id > w->ev[i - 1].id);
		PQclear(r);
		PQfinish(db);
	}
	pthread_mutex_unlock(&w->mu);
}

static uint64_t head(void)
{
	return (uint64_t)scalar("SELECT coalesce(max(seq), 0) FROM ledger_entries");
}

/* -------------------------------------------------------------- tests */

/* A server's read, a denial and a break-glass read, each on the patient's
 * stream within a second of the reply; the other patient sees none. */
static void test_reads_within_a_second(void)
{
	struct watcher *w = watch(dir_p1, NULL, NULL), *w2 = watch(dir_p2, NULL, NULL);
	char rid[64] = "", receipt[64];
	uint64_t start = head();
	int64_t t0;
	long i;
	json_t *d;

	CU_ASSERT_EQUAL_FATAL(ehrt_grant(&gw, "p1", S1, "read,append"), 0);
	CU_ASSERT_EQUAL_FATAL(post_record(c_s1, P1, rid, sizeof(rid)), 201);
	CU_ASSERT(wait_for(w, start, "ehr.store", "record", rid, 10000) >= 0);

	t0 = ehr_now_ms();
	CU_ASSERT_EQUAL(get_record(c_s1, rid, NULL), 200);
	i = wait_for(w, start, "ehr.read", "actor", S1, 10000);
	CU_ASSERT_FATAL(i >= 0);
	CU_ASSERT(w->ev[i].at_ms - t0 < 1000);
	d = w->ev[i].data;
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(d, "record")) ?: "", rid);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(d, "outcome")) ?: "", "success");
	CU_ASSERT(json_is_false(json_object_get(d, "break_glass")));
	CU_ASSERT_PTR_NOT_NULL(json_string_value(json_object_get(d, "time")));
	snprintf(receipt, sizeof(receipt), "/v1/receipts/%llu", (unsigned long long)w->ev[i].id);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(d, "receipt")) ?: "", receipt);

	/* S2 has no contract: a denial, then a break-glass read. */
	t0 = ehr_now_ms();
	CU_ASSERT_EQUAL(get_record(c_s2, rid, NULL), 403);
	i = wait_for(w, start, "access.decision", "decision", "deny", 10000);
	CU_ASSERT_FATAL(i >= 0);
	CU_ASSERT(w->ev[i].at_ms - t0 < 1000);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(w->ev[i].data, "outcome")) ?: "", "failure");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(w->ev[i].data, "actor")) ?: "", S2);

	t0 = ehr_now_ms();
	CU_ASSERT_EQUAL(get_record(c_s2, rid, BREAK_GLASS), 200);
	i = wait_for(w, start, "ehr.read", "actor", S2, 10000);
	CU_ASSERT_FATAL(i >= 0);
	CU_ASSERT(w->ev[i].at_ms - t0 < 1000);
	CU_ASSERT(json_is_true(json_object_get(w->ev[i].data, "break_glass")));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(w->ev[i].data, "record")) ?: "", rid);
	i = wait_for(w, start, "access.decision", "reason", "allow.break_glass", 10000);
	CU_ASSERT_FATAL(i >= 0);
	CU_ASSERT(json_is_true(json_object_get(w->ev[i].data, "break_glass")));

	/* P2's stream: its own entries only (its stream's audit.query), none of P1's. */
	gwp_sleep_ms(300);
	CU_ASSERT_EQUAL(wait_for(w2, 0, "ehr.read", NULL, NULL, 0), -1);
	CU_ASSERT_EQUAL(wait_for(w2, 0, "access.decision", NULL, NULL, 0), -1);
	assert_own(w, P1);
	assert_own(w2, P2);
	unwatch(w);
	unwatch(w2);
}

/* Each open is one audit.query entry about the patient, on its stream. */
static void test_open_is_audited(void)
{
	char sql[512];
	long long before, after;
	struct watcher *w;

	snprintf(
	        sql, sizeof(sql),
	        "SELECT count(*) FROM ledger_entries WHERE type = 'audit.query' AND subject = '%s' "
	        "AND position('\\x6d652e6163636573735f73747265616d'::bytea in entry) > 0", /* me.access_stream */
	        P1);
	before = scalar(sql);
	w = watch(dir_p1, NULL, NULL);
	CU_ASSERT(wait_for(w, 0, "audit.query", "actor", P1, 10000) >= 0); /* a loaded machine */
	after = scalar(sql);
	CU_ASSERT_EQUAL(after, before + 1);
	unwatch(w);
}

/* From index 0 through a cut, then Last-Event-ID: the two runs together
 * are exactly the patient's entries in the database, each once. */
static void test_resume_no_gap_no_duplicate(void)
{
	char last[32], sql[512], rid[64];
	struct watcher *a = watch(dir_p1, "from=0", NULL), *b;
	long long want;
	size_t k;
	uint64_t cut;

	CU_ASSERT_FATAL(wait_for(a, 0, "ehr.read", NULL, NULL, 10000) >= 0);
	a->stop = true;
	pthread_join(a->th, NULL);
	a->joined = true;
	k = a->n / 2; /* cut in the middle of what was received */
	CU_ASSERT_FATAL(k > 0);
	cut = a->ev[k - 1].id;
	/* New entries while nobody listens. */
	CU_ASSERT_EQUAL(post_record(c_s1, P1, rid, sizeof(rid)), 201);
	CU_ASSERT_EQUAL(get_record(c_s1, rid, NULL), 200);
	snprintf(last, sizeof(last), "%llu", (unsigned long long)cut);
	b = watch(dir_p1, NULL, last);
	snprintf(sql, sizeof(sql), "SELECT max(seq) FROM ledger_entries WHERE subject = '%s'", P1);
	for (int t = 0; t < 300; t++) {
		bool have;
		want = scalar(sql);
		pthread_mutex_lock(&b->mu);
		have = b->n > 0 && (long long)b->ev[b->n - 1].id >= want;
		pthread_mutex_unlock(&b->mu);
		if (have)
			break;
		gwp_sleep_ms(10);
	}
	pthread_mutex_lock(&b->mu);
	{
		/* a[0..k) + b == every entry about P1 up to b's last */
		uint64_t upto = b->n ? b->ev[b->n - 1].id : cut;
		PGconn *db = PQconnectdb(gw.db.super_ci);
		PGresult *r;
		size_t j = 0, bad = 0;

		snprintf(sql, sizeof(sql),
		         "SELECT seq FROM ledger_entries WHERE subject = '%s' AND seq <= %llu ORDER BY seq",
		         P1, (unsigned long long)upto);
		r = PQexec(db, sql);
		CU_ASSERT_EQUAL_FATAL(PQresultStatus(r), PGRES_TUPLES_OK);
		CU_ASSERT_EQUAL((size_t)PQntuples(r), k + b->n);
		for (int row = 0; row < PQntuples(r); row++, j++) {
			uint64_t seq = strtoull(PQgetvalue(r, row, 0), NULL, 10);
			uint64_t got = j < k ? a->ev[j].id : j - k < b->n ? b->ev[j - k].id : UINT64_MAX;
			if (got != seq)
				bad++;
		}
		CU_ASSERT_EQUAL(bad, 0);
		CU_ASSERT(b->n > 0 && b->ev[0].id > cut);
		PQclear(r);
		PQfinish(db);
	}
	pthread_mutex_unlock(&b->mu);
	unwatch(a);
	unwatch(b);
}

/* Key transparency: a second device enrolled for P3 shows on the first
 * device's stream (auth.enroll with the new key's jkt), which then ends;
 * the new device sees both enrolments; an operator revocation appears on
 * its stream and ends it; reconnecting is refused. */
static void test_device_keys(void)
{
	char dir_a[GWP_PATH + 16], dir_b[GWP_PATH + 16], P3[160], P3b[160];
	struct ehr_client *ca = NULL;
	const char *args[] = { "admin", "revoke", P3, "-c", gw.config, NULL };
	struct watcher *wa, *wb;
	struct ehr_client *cb = NULL;
	uint64_t start;
	int st = -1;
	long i;
	json_t *who = NULL;
	long status = 0;
	const char *jkt_b;

	ehrt_fmt(dir_a, sizeof(dir_a), "%s/p3a", gw.dir);
	ehrt_fmt(dir_b, sizeof(dir_b), "%s/p3b", gw.dir);
	CU_ASSERT_FATAL(ehrt_patient_device(&gw, c_s1, "mrn-3", "p3a", P3, &ca) == 0);
	ehr_client_free(ca);
	wa = watch(dir_a, NULL, NULL);
	start = head();
	CU_ASSERT_FATAL(ehrt_patient_device(&gw, c_s1, "mrn-3", "p3b", P3b, &cb) == 0);
	CU_ASSERT_STRING_EQUAL(P3, P3b); /* the same pseudonym, a new phone */
	CU_ASSERT_FATAL(ehr_client_json(cb, &status, &who, "GET", "/v1/whoami", NULL) == 0);
	jkt_b = json_string_value(json_object_get(who, "jkt"));
	CU_ASSERT_FATAL(jkt_b != NULL);
	CU_ASSERT(wait_for(wa, start, "auth.patient.create", "actor", S1, 10000) >= 0);
	i = wait_for(wa, start, "auth.enroll", "jkt", jkt_b, 10000);
	CU_ASSERT(i >= 0);
	CU_ASSERT(wait_done(wa, 10000));
	CU_ASSERT_STRING_EQUAL(wa->end, "key_replaced");
	assert_own(wa, P3);
	unwatch(wa);

	/* The new device: both enrolments from the start, then the revocation. */
	wb = watch(dir_b, "from=0", NULL);
	CU_ASSERT(wait_for(wb, 0, "auth.enroll", "jkt", jkt_b, 10000) >= 0);
	pthread_mutex_lock(&wb->mu);
	{
		int enrols = 0;
		for (size_t k = 0; k < wb->n; k++)
			enrols += strcmp(wb->ev[k].name, "auth.enroll") == 0;
		CU_ASSERT_EQUAL(enrols, 2);
	}
	pthread_mutex_unlock(&wb->mu);
	CU_ASSERT(wb->end[0] == '\0'); /* an old enrolment does not end it */
	start = head();
	CU_ASSERT_EQUAL(gwp_run(&gw, args, false, &st, NULL, 0), 0);
	CU_ASSERT_EQUAL(st, 0);
	i = wait_for(wb, start, "auth.revoke", "actor", "operator", 10000);
	CU_ASSERT(i >= 0);
	if (i >= 0)
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(wb->ev[i].data, "kind")) ?: "",
		                       "patient");
	CU_ASSERT(wait_done(wb, 10000));
	CU_ASSERT_STRING_EQUAL(wb->end, "revoked");
	assert_own(wb, P3);
	unwatch(wb);
	/* The revoked device is refused. */
	status = 0;
	ehr_client_request(cb, &status, NULL, "GET", "/v1/me/access/stream", NULL, NULL, 0, NULL, NULL);
	CU_ASSERT_EQUAL(status, 401);
	json_decref(who);
	ehr_client_free(cb);
}

/* Certificates are the other kind of credential: 403; none at all: 401. */
static void test_refusals(void)
{
	struct ehr_buf body = EHR_BUF_INIT(1 << 16);
	struct ehr_client *cl[] = { c_aud, c_s1, c_none };
	long want[] = { 403, 403, 401 };

	for (size_t i = 0; i < EHR_ARRAY_LEN(cl); i++) {
		long status = 0;
		ehr_buf_reset(&body);
		ehr_client_request(cl[i], &status, &body, "GET", "/v1/me/access/stream?from=0", NULL, NULL, 0,
		                   NULL, NULL);
		CU_ASSERT_EQUAL(status, want[i]);
		CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&body), "\"error\""));
	}
	/* Malformed starts and unknown parameters: 400. */
	{
		static const char *const bad[] = { "/v1/me/access/stream?from=x",
			                           "/v1/me/access/stream?since=0",
			                           "/v1/me/access/stream?heartbeat=0" };
		for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++) {
			long status = 0;
			ehr_client_request(c_p1, &status, NULL, "GET", bad[i], NULL, NULL, 0, NULL, NULL);
			CU_ASSERT_EQUAL(status, 400);
		}
	}
	{
		const char *hdr[] = { "Last-Event-ID: nope", NULL };
		long status = 0;
		ehr_client_request(c_p1, &status, NULL, "GET", "/v1/me/access/stream", hdr, NULL, 0, NULL,
		                   NULL);
		CU_ASSERT_EQUAL(status, 400);
	}
	ehr_buf_free(&body);
}

/* A second instance on the same database issues 3-second tokens: a
 * stream opened with one ends with `end` token_expired, then closes. */
static void test_expired_token_ends_stream(void)
{
	static const char *const sets[] = { "auth.token_ttl_s=3", NULL };
	struct ehr_client *c4 = NULL;
	struct gw_proc gw2;
	struct watcher *w;
	json_t *tok = NULL;
	char dir[GWP_PATH + 16], pid[160];
	int64_t t0;

	ehrt_fmt(dir, sizeof(dir), "%s/p4", gw.dir);
	CU_ASSERT_FATAL(ehrt_patient(&gw, c_s1, "p4", pid, &c4) == 0);
	ehr_client_free(c4);
	gwp_instance(&gw2, &gw);
	CU_ASSERT_FATAL(gwp_start_with(&gw2, sets) == 0);
	w = calloc(1, sizeof(*w));
	CU_ASSERT_FATAL(w != NULL);
	pthread_mutex_init(&w->mu, NULL);
	ctl_sse_init(&w->sse, 1 << 20, w_event, w);
	snprintf(w->path, sizeof(w->path), "/v1/me/access/stream?heartbeat=1&from=0");
	CU_ASSERT_FATAL(ehr_client_open_profile(&w->c, dir) == 0);
	/* The 3-second token, from the second instance. */
	{
		struct ehr_client *c2 = NULL;
		struct ehr_client_opts o = { .url = gw2.base_url, .ca_file = gw.ca_pem };
		CU_ASSERT_FATAL(ehr_client_new(&c2, &o) == 0);
		CU_ASSERT_FATAL(ehr_client_login_with(c2, pid, ehr_client_device_key(w->c), &tok) == 0);
		ehr_client_free(c2);
	}
	CU_ASSERT_FATAL(ehr_client_set_token(w->c, json_string_value(json_object_get(tok, "access_token"))) ==
	                0);
	t0 = ehr_now_ms();
	CU_ASSERT_FATAL(pthread_create(&w->th, NULL, w_main, w) == 0);
	CU_ASSERT(wait_for(w, 0, "auth.enroll", NULL, NULL, 10000) >= 0);
	CU_ASSERT(wait_done(w, 15000));
	CU_ASSERT_EQUAL(w->status, 200);
	CU_ASSERT_STRING_EQUAL(w->end, "token_expired");
	CU_ASSERT(ehr_now_ms() - t0 <= 12000); /* ended by the 3 s token, not by a timeout */
	assert_own(w, pid);
	unwatch(w);
	json_decref(tok);
	gwp_teardown(&gw2);
}

/* ehrctl with the profile `dir`: its exit status; stdout and stderr in out. */
static int ctl(const char *dir, const char *args, char *out, size_t cap)
{
	char cmd[4096];

	int rc;

	ehrt_fmt(cmd, sizeof(cmd), "'%s' --dir '%s' %s 2>&1", EHRCTL_BIN, dir, args);
	rc = ehrt_sh(out, cap, cmd);
	if (rc != 0) /* say what it said: the assertion that follows names the line */
		fprintf(stderr, "\n  ehrctl %s -> %d: %.300s", args, rc, out);
	return rc;
}

/* `ehrctl patient watch`: one line per entry, the patient's only; usage
 * errors exit 2, a refused profile exits 1. */
static void test_ehrctl_watch(void)
{
	static char out[1 << 18];
	char sql[256], args[128];
	long long n;
	size_t lines = 0;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM ledger_entries WHERE subject = '%s'", P1);
	n = scalar(sql);
	CU_ASSERT_FATAL(n > 3);
	snprintf(args, sizeof(args), "patient watch --from 0 --count %lld --json", n);
	CU_ASSERT_EQUAL(ctl(dir_p1, args, out, sizeof(out)), 0);
	for (char *l = out, *e; (e = strchr(l, '\n')) != NULL; l = e + 1) {
		json_t *j = NULL;
		*e = '\0';
		if (ehr_json_parse(&j, l, strlen(l), 1 << 16, 16) == 0) {
			char q[256];
			snprintf(q, sizeof(q),
			         "SELECT count(*) FROM ledger_entries WHERE seq = %lld AND subject = '%s'",
			         (long long)json_integer_value(json_object_get(j, "index")), P1);
			CU_ASSERT_EQUAL(scalar(q), 1);
			lines++;
		}
		json_decref(j);
	}
	CU_ASSERT_EQUAL((long long)lines, n);
	/* The text form: one line per entry, break-glass flagged. */
	snprintf(args, sizeof(args), "patient watch --from 0 --count %lld", n);
	CU_ASSERT_EQUAL(ctl(dir_p1, args, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " BREAK-GLASS"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " ehr.read "));
	CU_ASSERT_EQUAL(ctl(dir_p1, "patient watch --count", out, sizeof(out)), 2);
	CU_ASSERT_EQUAL(ctl(dir_p1, "patient watch --help", out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(ctl(dir_aud, "patient watch --count 1", out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "403 forbidden: "));
}

/* Serve `body` as the stream from a fake gateway (fake_stream.py, with the
 * gateway's own certificate) to `ehrctl patient watch` on a copy of P1's
 * profile: its exit status, output in out. */
static int watch_fake(const char *body, char *out, size_t cap)
{
	char file[GWP_PATH + 32], dir[GWP_PATH + 32], cmd[4 * GWP_PATH], line[32] = "";
	FILE *srv, *f;
	json_t *prof;
	int rc;

	ehrt_fmt(file, sizeof(file), "%s/fake.sse", gw.dir);
	ehrt_fmt(dir, sizeof(dir), "%s/p1fake", gw.dir);
	f = fopen(file, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs(body, f);
	fclose(f);
	ehrt_fmt(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s'", dir, dir_p1, dir);
	CU_ASSERT_FATAL(ehrt_sh(line, sizeof(line), cmd) == 0);
	ehrt_fmt(cmd, sizeof(cmd),
	         "python3 '%s/tests/integration/audit/fake_stream.py' '%s/server.pem' "
	         "'%s/server.key' '%s'",
	         EHR_SOURCE_DIR, gw.state_dir, gw.state_dir, file);
	srv = popen(cmd, "r");
	CU_ASSERT_FATAL(srv != NULL);
	CU_ASSERT_FATAL(fgets(line, sizeof(line), srv) != NULL);
	line[strcspn(line, "\n")] = '\0';
	ehrt_fmt(file, sizeof(file), "%s/profile.json", dir);
	prof = json_load_file(file, 0, NULL);
	CU_ASSERT_FATAL(prof != NULL);
	ehrt_fmt(cmd, sizeof(cmd), "https://127.0.0.1:%s", line);
	json_object_set_new(prof, "url", json_string(cmd));
	json_dump_file(prof, file, JSON_COMPACT);
	json_decref(prof);
	rc = ctl(dir, "patient watch --from 0 --count 1 --retries 0", out, cap);
	pclose(srv);
	return rc;
}

/* An event whose fields are not what its entry bytes say (a lying
 * gateway) stops `ehrctl patient watch`: REWRITTEN, exit 1; the same
 * event unchanged is printed. */
static void test_ehrctl_watch_refuses_forgery(void)
{
	static char out[1 << 16];
	char body[1 << 15];
	json_t *ev = NULL;
	char *text;
	long long index;

	CU_ASSERT_EQUAL_FATAL(ctl(dir_p1, "patient watch --from 0 --count 1 --json", out, sizeof(out)), 0);
	CU_ASSERT_EQUAL_FATAL(ehr_json_parse(&ev, out, strlen(out), sizeof(out), 16), 0);
	index = json_integer_value(json_object_get(ev, "index"));
	text = json_dumps(ev, JSON_COMPACT);
	ehrt_fmt(body, sizeof(body), ": fake\n\nid: %lld\nevent: %s\ndata: %s\n\n", index,
	         json_string_value(json_object_get(ev, "type")), text);
	free(text);
	CU_ASSERT_EQUAL(watch_fake(body, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NULL(strstr(out, "REWRITTEN"));

	json_object_set_new(ev, "actor", json_string("srv-forged"));
	text = json_dumps(ev, JSON_COMPACT);
	ehrt_fmt(body, sizeof(body), "id: %lld\nevent: %s\ndata: %s\n\n", index,
	         json_string_value(json_object_get(ev, "type")), text);
	free(text);
	CU_ASSERT_EQUAL(watch_fake(body, out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "REWRITTEN: event"));
	CU_ASSERT_PTR_NULL(strstr(out, "srv-forged"));
	json_decref(ev);
}

/* With the log's vkey, every event's receipt is fetched and verified
 * offline (and bound to the event's entry); a quorum of a witness that
 * never cosigned is refused: BAD_RECEIPT, exit 1. */
static void test_ehrctl_watch_receipts(void)
{
	static char out[1 << 18];
	const char *args[] = { "ledger", "vkey", NULL };
	char vkey[512] = "", cmd[2048], *p;
	struct ehr_buf wk = EHR_BUF_INIT(512);
	uint8_t pub[32];
	long long n, verified = 0;

	CU_ASSERT_EQUAL_FATAL(gwp_cmd(&gw, vkey, sizeof(vkey), args), 0);
	vkey[strcspn(vkey, "\r\n")] = '\0';
	/* every entry about P1 so far: the server's reads and the break-glass read among them */
	ehrt_fmt(cmd, sizeof(cmd), "SELECT count(*) FROM ledger_entries WHERE subject = '%s'", P1);
	n = scalar(cmd);
	CU_ASSERT_FATAL(n > 5);
	ehrt_fmt(cmd, sizeof(cmd), "patient watch --from 0 --count %lld --log-key '%s'", n, vkey);
	CU_ASSERT_EQUAL(ctl(dir_p1, cmd, out, sizeof(out)), 0);
	for (p = out; (p = strstr(p, " receipt=verified")) != NULL; p++)
		verified++;
	CU_ASSERT_EQUAL(verified, n);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "BREAK-GLASS receipt=verified"));
	ehrt_fmt(cmd, sizeof(cmd), "patient watch --from 0 --count 2 --json --log-key '%s'", vkey);
	CU_ASSERT_EQUAL(ctl(dir_p1, cmd, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"receipt_status\":\"verified\""));

	/* A witness that never cosigned, required: refused. */
	memset(pub, 7, sizeof(pub));
	CU_ASSERT_FATAL(ledger_cosig_vkey_format(&wk, "witness.example", pub) == 0);
	ehrt_fmt(cmd, sizeof(cmd),
	         "patient watch --from 0 --count 1 --log-key '%s' --witness 'witness.example=%s' --quorum 1",
	         vkey, ehr_buf_cstr(&wk));
	CU_ASSERT_EQUAL(ctl(dir_p1, cmd, out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "BAD_RECEIPT: event"));
	/* Witnesses without the log key, a quorum above them: usage. */
	ehrt_fmt(cmd, sizeof(cmd), "patient watch --witness 'witness.example=%s'", ehr_buf_cstr(&wk));
	CU_ASSERT_EQUAL(ctl(dir_p1, cmd, out, sizeof(out)), 2);
	ehrt_fmt(cmd, sizeof(cmd), "patient watch --log-key '%s' --quorum 1", vkey);
	CU_ASSERT_EQUAL(ctl(dir_p1, cmd, out, sizeof(out)), 2);
	ehr_buf_free(&wk);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("patient_stream", suite_init, suite_clean,
	              { "reads_within_a_second", test_reads_within_a_second },
	              { "open_is_audited", test_open_is_audited },
	              { "resume_no_gap_no_duplicate", test_resume_no_gap_no_duplicate },
	              { "refusals", test_refusals }, { "ehrctl_watch", test_ehrctl_watch },
	              { "ehrctl_watch_refuses_forgery", test_ehrctl_watch_refuses_forgery },
	              { "ehrctl_watch_receipts", test_ehrctl_watch_receipts },
	              { "device_keys", test_device_keys },
	              { "expired_token_ends_stream", test_expired_token_ends_stream });
}

EHR_TEST_MAIN(register_suites)
