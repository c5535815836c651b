/*
 * test_ehr_robust.c - the gateway under the faults of issue 13, end to end
 * (real gateway over TLS, real Postgres, the fs store, libehrclient):
 *
 *   - a Postgres restart under load (uploads, which go through the ledger
 *     writer, and reads): during the outage only 201/200 or 503; once
 *     Postgres accepts connections again, every request succeeds after a
 *     short grace (the target is 1 s; the bound asserted is the generous
 *     RESTART_GRACE_MS, the measured time is printed);
 *   - memory after a flood of idle TLS connections: within 10 s of the
 *     flood ending the gateway's RSS is below 40 MiB again;
 *   - built again with EHR_ROBUST_STREAMS as test_ehr_bigread (its own
 *     binary, for the suite's per-binary time limit): 64 MiB streamed reads
 *     on fs and S3, cut short at a corrupted middle segment.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <libpq-fe.h>
#include <openssl/ssl.h>

#include "ehrtest.h"
#include "tests/harness/harness.h"

#ifndef EHR_ROBUST_STREAMS /* test_ehr_robust */
#define LOAD_THREADS 8     /* the pool size ehrt_gw_setup sets */
#define MAX_SAMPLES 200000
/* Issue 13's target is 1 s from "Postgres accepts connections" to "every
 * request succeeds"; asserted with room for a loaded 2-core CI machine. */
#define RESTART_GRACE_MS 2500
#define OUTAGE_MS 4000

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------ Postgres restart */

static struct gw_proc PG;
static char pg_pid[160];

struct sample {
	long long t;
	long status;
	bool put;
};

struct loader {
	pthread_t th;
	struct ehr_client *srv;
	char rid[CLOUD_RID_HEX]; /* a record to read */
	struct sample *s;
	size_t n;
	atomic_bool *stop, *pause;
	atomic_int *busy; /* requests in flight over all loaders */
};

static void *load_main(void *arg)
{
	struct loader *ld = arg;
	uint8_t body[4096];
	char rid[CLOUD_RID_HEX];

	memset(body, 'r', sizeof(body));
	for (unsigned i = 0; !atomic_load(ld->stop) && ld->n < MAX_SAMPLES; i++) {
		struct sample *s = &ld->s[ld->n];

		atomic_fetch_add(ld->busy, 1);
		if (atomic_load(ld->pause)) {
			atomic_fetch_sub(ld->busy, 1);
			gwp_sleep_ms(5);
			continue;
		}
		s->put = (i % 2) == 0;
		s->status = s->put ? ehrt_put(ld->srv, pg_pid, NULL, body, sizeof(body), rid)
		                   : ehrt_get(ld->srv, ld->rid, NULL);
		s->t = now_ms();
		ld->n++;
		atomic_fetch_sub(ld->busy, 1);
		if (s->status != 200 && s->status != 201)
			gwp_sleep_ms(20); /* a client backing off, not spinning on 503 */
	}
	return NULL;
}

struct starter {
	pthread_t th;
	int rc;
};

static void *start_main(void *arg)
{
	struct starter *st = arg;

	st->rc = ehr_test_devservices("start-pg");
	return NULL;
}

/* Start Postgres again and return the moment it first accepted a
 * connection (polled every 20 ms beside the start script, which takes a
 * while to return after that). */
static long long pg_start_timed(void)
{
	struct starter st = { .rc = -1 };
	long long t_up = 0, t0 = now_ms();
	bool running = pthread_create(&st.th, NULL, start_main, &st) == 0;

	CU_ASSERT_FATAL(running);
	while (t_up == 0 && now_ms() - t0 < 60000) {
		PGconn *c = PQconnectdb(PG.db.super_ci);

		if (PQstatus(c) == CONNECTION_OK)
			t_up = now_ms();
		PQfinish(c);
		if (t_up == 0)
			gwp_sleep_ms(20);
	}
	pthread_join(st.th, NULL);
	CU_ASSERT_EQUAL(st.rc, 0);
	CU_ASSERT(t_up != 0);
	return t_up ? t_up : now_ms();
}

static int pg_init(void)
{
	struct ehr_client *srv = NULL, *pat = NULL;

	if (ehrt_gw_setup(&PG, "") < 0 || gwp_start(&PG) < 0 || ehrt_server(&PG, "hosp-0", &srv) < 0 ||
	    ehrt_patient(&PG, srv, "MRN-R1", pg_pid, &pat) < 0) {
		fprintf(stderr, "robust setup: %s\n", ehr_error_msg());
		ehr_client_free(srv);
		return 1;
	}
	ehr_client_free(pat);
	ehr_client_free(srv);
	return 0;
}

static int pg_clean(void)
{
	gwp_teardown(&PG);
	return 0;
}

/* Stop Postgres, wait OUTAGE_MS, start it: when it accepted again. */
static long long pg_outage(void)
{
	CU_ASSERT_EQUAL(ehr_test_devservices("stop-pg"), 0);
	/* from here on Postgres must be started again whatever fails */
	gwp_sleep_ms(OUTAGE_MS);
	return pg_start_timed();
}

struct tally {
	size_t fails, odd, ok;
	long long last_fail;
};

/* The samples of every loader taken in [from, to). */
static struct tally tally(const struct loader *ld, long long from, long long to)
{
	struct tally t = { 0 };

	for (int i = 0; i < LOAD_THREADS; i++)
		for (size_t k = 0; k < ld[i].n; k++) {
			const struct sample *s = &ld[i].s[k];

			if (s->t < from || s->t >= to)
				continue;
			if (s->status == (s->put ? 201 : 200)) {
				t.ok++;
				continue;
			}
			t.fails++;
			/* 503; or for an upload whose connection was cut between its
			 * ledger commit and its row, the documented 500 "run
			 * ehrgate fsck" (docs/OPERATIONS.md) */
			t.odd += s->status != 503 && !(s->put && s->status == 500);
			if (s->status != 503)
				fprintf(stderr, "\n  failed: %s -> %ld\n", s->put ? "upload" : "read",
				        s->status);
			if (s->t > t.last_fail)
				t.last_fail = s->t;
		}
	return t;
}

/*
 * Uploads (through the ledger writer) and reads run on LOAD_THREADS
 * clients, one per pool connection, through two restarts of Postgres:
 *   1. the clients pause (every pooled connection and the writer's are
 *      open and idle), Postgres stops for OUTAGE_MS and starts, and the
 *      clients go on the moment it accepts a connection: not one request
 *      may fail, since no connection may be used before it is checked;
 *   2. the clients keep going through the outage: each request succeeds
 *      or gets 503 (an upload cut between its ledger commit and its row
 *      may get the 500 that asks for fsck), and from RESTART_GRACE_MS after
 *      Postgres accepts connections again every request succeeds.
 */
static void test_pg_restart_under_load(void)
{
	struct loader ld[LOAD_THREADS];
	atomic_bool stop = false, pause = false;
	atomic_int busy = 0;
	long long t0 = now_ms(), t_stop1, t_up1, t_stop2, t_up2, t_end;
	struct tally before, first, during, after;
	int started = 0;

	memset(ld, 0, sizeof(ld));
	for (int i = 0; i < LOAD_THREADS; i++) {
		char name[32];
		uint8_t b[64] = "seed";

		ehrt_fmt(name, sizeof(name), "hosp-%d", i + 1);
		CU_ASSERT_FATAL(ehrt_server(&PG, name, &ld[i].srv) == 0);
		CU_ASSERT_FATAL(ehrt_grant(&PG, "MRN-R1", ehr_client_id(ld[i].srv), "read,append") == 0);
		CU_ASSERT_FATAL(ehrt_put(ld[i].srv, pg_pid, NULL, b, sizeof(b), ld[i].rid) == 201);
		ld[i].s = calloc(MAX_SAMPLES, sizeof(*ld[i].s));
		ld[i].stop = &stop;
		ld[i].pause = &pause;
		ld[i].busy = &busy;
		CU_ASSERT_FATAL(ld[i].s != NULL);
	}
	for (int i = 0; i < LOAD_THREADS; i++)
		if (pthread_create(&ld[i].th, NULL, load_main, &ld[i]) == 0)
			started++;
	CU_ASSERT_EQUAL(started, LOAD_THREADS);
	gwp_sleep_ms(1500);

	/* 1: idle through the outage */
	atomic_store(&pause, true);
	while (atomic_load(&busy) > 0)
		gwp_sleep_ms(5);
	t_stop1 = now_ms();
	t_up1 = pg_outage();
	atomic_store(&pause, false);
	gwp_sleep_ms(3000);

	/* 2: under load through the outage */
	t_stop2 = now_ms();
	t_up2 = pg_outage();
	gwp_sleep_ms(RESTART_GRACE_MS + 5000);
	atomic_store(&stop, true);
	for (int i = 0; i < started; i++)
		pthread_join(ld[i].th, NULL);
	t_end = now_ms() + 1;

	before = tally(ld, t0, t_stop1);
	first = tally(ld, t_up1, t_stop2);
	during = tally(ld, t_stop2, t_end);
	after = tally(ld, t_up2 + RESTART_GRACE_MS, t_end);
	fprintf(stderr,
	        "\n  postgres restart, idle: %zu requests after, %zu failed\n"
	        "  postgres restart, under load: %zu failed (%zu not 503), the last %lld ms after Postgres "
	        "accepted again (target 1000, asserted %d); %zu successes after that\n",
	        first.ok + first.fails, first.fails, during.fails, during.odd,
	        during.fails ? during.last_fail - t_up2 : 0, RESTART_GRACE_MS, after.ok);
	CU_ASSERT_EQUAL(before.fails, 0);
	CU_ASSERT_EQUAL(first.fails, 0);
	CU_ASSERT(first.ok > 0);
	CU_ASSERT_EQUAL(during.odd, 0);
	CU_ASSERT_EQUAL(after.fails, 0);
	CU_ASSERT(after.ok > 0);
	for (int i = 0; i < LOAD_THREADS; i++) {
		ehr_client_free(ld[i].srv);
		free(ld[i].s);
	}
	gwp_assert_healthy(&PG);
	{
		struct gwp_resp res;
		EHR_ASSERT_OK(gwp_get(&PG, "/readyz", &res));
		CU_ASSERT_EQUAL(res.status, 200);
		gwp_resp_free(&res);
	}
}

/* ------------------------------------------------------ memory after floods */

static struct gw_proc MEM;

#define FLOOD_CONNS 2000
#define RSS_LIMIT_KIB (40 * 1024)

static int mem_init(void)
{
	struct ehr_client *srv = NULL;

	if (ehrt_gw_setup(&MEM, "") < 0 || gwp_start(&MEM) < 0 || ehrt_server(&MEM, "hosp-m", &srv) < 0) {
		fprintf(stderr, "memory setup: %s\n", ehr_error_msg());
		return 1;
	}
	ehr_client_free(srv);
	return 0;
}

static int mem_clean(void)
{
	gwp_teardown(&MEM);
	return 0;
}

/*
 * FLOOD_CONNS TLS connections opened (handshake done) and held idle at
 * once, then closed: TLS 1.2 or 1.3, with a client certificate (a medical
 * server's) or without. Returns how many were opened.
 */
static int flood(struct gw_proc *g, int version, const char *cert_dir)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(g->port) };
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL **ssl = calloc(FLOOD_CONNS, sizeof(*ssl));
	char cert[GWP_PATH + 64], key[GWP_PATH + 64];
	int opened = 0;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (ctx == NULL || ssl == NULL || SSL_CTX_load_verify_locations(ctx, g->ca_pem, NULL) != 1)
		goto out;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_min_proto_version(ctx, version);
	SSL_CTX_set_max_proto_version(ctx, version);
	if (cert_dir) {
		ehrt_fmt(cert, sizeof(cert), "%s/cert.pem", cert_dir);
		ehrt_fmt(key, sizeof(key), "%s/key.pem", cert_dir);
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
			goto out;
	}
	for (int i = 0; i < FLOOD_CONNS; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    (ssl[i] = SSL_new(ctx)) == NULL) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		SSL_set_fd(ssl[i], fd);
		SSL_set_tlsext_host_name(ssl[i], "localhost");
		if (SSL_connect(ssl[i]) == 1) {
			opened++;
		} else {
			SSL_free(ssl[i]);
			ssl[i] = NULL;
			close(fd);
		}
	}
	for (int i = 0; i < FLOOD_CONNS; i++) {
		if (ssl[i] == NULL)
			continue;
		int fd = SSL_get_fd(ssl[i]);

		SSL_free(ssl[i]);
		close(fd);
	}
out:
	free(ssl);
	SSL_CTX_free(ctx);
	return opened;
}

/*
 * Rounds of FLOOD_CONNS idle connections (TLS 1.3 and 1.2, with a client
 * certificate and without): 10 s after each, the RSS is under 40 MiB
 * (issue 13: it grew 20 -> 105 MiB after one round and stayed).
 */
static void test_rss_after_floods(void)
{
	long before = ehr_test_proc_kib(MEM.pid, "VmRSS");
	const char *env = getenv("EHRGATE_TEST_FLOOD_ROUNDS"); /* more rounds by hand */
	int rounds = env ? (int)strtol(env, NULL, 10) : 4;
	char cert_dir[GWP_PATH + 64];

	ehrt_fmt(cert_dir, sizeof(cert_dir), "%s/hosp-m", MEM.dir);
	gwp_assert_healthy(&MEM);
	for (int round = 0; round < rounds; round++) {
		int version = round % 2 ? TLS1_2_VERSION : TLS1_3_VERSION;
		bool with_cert = (round / 2) % 2 == 0;
		long peak, after;
		int opened = flood(&MEM, version, with_cert ? cert_dir : NULL);

		peak = ehr_test_proc_kib(MEM.pid, "VmRSS");
		CU_ASSERT(opened > FLOOD_CONNS * 9 / 10);
		for (int waited = 0; waited < 10000; waited += 250) { /* 10 s at most */
			gwp_sleep_ms(250);
			after = ehr_test_proc_kib(MEM.pid, "VmRSS");
			if (after >= 0 && after < RSS_LIMIT_KIB)
				break;
		}
		fprintf(stderr,
		        "\n  flood %d (TLS 1.%d, %s): %d connections; RSS %ld KiB before, %ld as the flood "
		        "ended, %ld within 10 s (limit %d)\n",
		        round + 1, version == TLS1_3_VERSION ? 3 : 2, with_cert ? "client cert" : "no cert",
		        opened, before, peak, after, RSS_LIMIT_KIB);
#if defined(__SANITIZE_ADDRESS__)
		/* ASan keeps freed memory in quarantine, so RSS says nothing about
		 * the gateway's here; the normal build asserts the bound. */
		CU_ASSERT(after >= 0);
#else
		CU_ASSERT(after >= 0 && after < RSS_LIMIT_KIB);
#endif
	}
	gwp_assert_healthy(&MEM);
}

#else /* test_ehr_bigread: built with EHR_ROBUST_STREAMS */
/* ------------------------------------------------- 64 MiB streamed reads */

#define BIG_LEN ((size_t)64 << 20)
#define SEG_CT ((size_t)CLOUD_SEG_DEFAULT + CLOUD_TAG_LEN)

struct big_world {
	struct gw_proc g;
	struct ehr_client *srv, *pat;
	char pid[160];
	bool s3;
};

static struct big_world BFS, BS3;

static int big_up(struct big_world *w, bool s3)
{
	char sect[2048] = "";

	w->s3 = s3;
	if (s3)
		gwp_s3_store_ini(sect, sizeof(sect), NULL, NULL);
	if (ehrt_gw_setup(&w->g, sect) < 0 || gwp_start(&w->g) < 0 ||
	    ehrt_server(&w->g, "hosp-s", &w->srv) < 0 ||
	    ehrt_patient(&w->g, w->srv, "MRN-S1", w->pid, &w->pat) < 0 ||
	    ehrt_grant(&w->g, "MRN-S1", ehr_client_id(w->srv), "read,append") < 0) {
		fprintf(stderr, "stream setup: %s\n", ehr_error_msg());
		return 1;
	}
	return 0;
}

static void big_down(struct big_world *w)
{
	ehr_client_free(w->srv);
	ehr_client_free(w->pat);
	gwp_teardown(&w->g);
}

static int bfs_init(void)
{
	return big_up(&BFS, false);
}
static int bfs_clean(void)
{
	big_down(&BFS);
	return 0;
}
static int bs3_init(void)
{
	return ehr_test_env("EHRGATE_TEST_S3") ? big_up(&BS3, true) : 1;
}
static int bs3_clean(void)
{
	big_down(&BS3);
	return 0;
}

static bool collect(const void *data, size_t len, void *ud)
{
	return ehr_buf_append(ud, data, len) == 0;
}

/* GET the record: the status, whether the transfer completed, the bytes. */
static long big_get(struct ehr_client *c, const char *rid, struct ehr_buf *out, bool *complete)
{
	char path[128];
	long status = 0;

	ehr_buf_reset(out);
	ehrt_fmt(path, sizeof(path), "/v1/records/%s", rid);
	*complete = ehr_client_request(c, &status, NULL, "GET", path, NULL, NULL, 0, collect, out) == 0;
	return status;
}

static uint8_t *big_body(void)
{
	uint8_t *b = malloc(BIG_LEN);

	for (size_t i = 0; b && i < BIG_LEN; i++)
		b[i] = (uint8_t)((i * 2654435761u + 7) >> 11);
	return b;
}

static void put_object(struct obj_store *raw, const char *key, const struct ehr_buf *b)
{
	struct cloud_mem_reader rd = { b->data, b->len, 0 };

	EHR_ASSERT_OK(obj_store_put(raw, key, cloud_mem_read, &rd, NULL));
}

/*
 * A 64 MiB record round trip, then with one middle segment of its object
 * corrupted: the reply starts (the segments before it verified and went
 * out) and is cut short before the bad segment's bytes, so the client
 * sees an incomplete transfer that holds nothing but the record's true
 * prefix. A row whose tag list differs from the ledger's is refused
 * before any byte; a row without a list (as fsck leaves it, or a record
 * stored before the lists) is read the old way.
 */
static void big_stream(struct big_world *w)
{
	uint8_t *body = big_body();
	struct ehr_buf got = EHR_BUF_INIT(BIG_LEN + 1), obj = EHR_BUF_INIT(BIG_LEN + (1 << 20));
	struct obj_store *raw = NULL;
	char rid[CLOUD_RID_HEX], key[128], objects[GWP_PATH + 16], sql[256];
	uint8_t r[CLOUD_RID_LEN];
	size_t bad_seg = 512;
	bool complete = false;

	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	CU_ASSERT_EQUAL_FATAL(ehrt_put(w->srv, w->pid, NULL, body, BIG_LEN, rid), 201);
	CU_ASSERT_EQUAL(big_get(w->srv, rid, &got, &complete), 200);
	CU_ASSERT(complete);
	CU_ASSERT(got.len == BIG_LEN && memcmp(got.data, body, BIG_LEN) == 0); /* not secret */
	CU_ASSERT_EQUAL(
	        ehrt_q1(&w->g, "SELECT length(seg_tags) FROM ehr_records WHERE record_id = '%s'", rid),
	        (long long)(BIG_LEN / CLOUD_SEG_DEFAULT * CLOUD_TAG_LEN));

	/* one byte of segment 512 (of 1024) flipped behind the gateway's back */
	ehrt_fmt(objects, sizeof(objects), "%s/objects", w->g.state_dir);
	EHR_ASSERT_OK(ehrt_raw_store(&raw, w->s3, objects));
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	EHR_ASSERT_OK(cloud_rid_parse(r, rid));
	EHR_ASSERT_OK(cloud_record_key(key, sizeof(key), r));
	CU_ASSERT_EQUAL_FATAL(obj_store_get(raw, key, cloud_buf_write, &obj, NULL), 0);
	obj.data[CLOUD_HDR_LEN + bad_seg * SEG_CT + 1000] ^= 0x01;
	put_object(raw, key, &obj);
	/* the 200 came, then the connection closed short of Content-Length */
	(void)big_get(w->srv, rid, &got, &complete);
	CU_ASSERT(!complete);
	CU_ASSERT(got.len >= CLOUD_STREAM_HOLD && got.len <= bad_seg * CLOUD_SEG_DEFAULT);
	CU_ASSERT(memcmp(got.data, body, got.len) == 0); /* not secret */
	fprintf(stderr, "\n  corrupted segment %zu: %zu bytes released, then the reply was cut\n", bad_seg,
	        got.len);
	obj.data[CLOUD_HDR_LEN + bad_seg * SEG_CT + 1000] ^= 0x01;
	put_object(raw, key, &obj);

	/* the tag list in the row is not the one the ledger committed to */
	ehrt_fmt(sql, sizeof(sql),
	         "UPDATE ehr_records SET seg_tags = overlay(seg_tags placing '\\x00' from 17) WHERE "
	         "record_id = '%s'",
	         rid);
	CU_ASSERT_EQUAL(gwp_db_exec(&w->g, sql), 0);
	{
		long st = big_get(w->srv, rid, &got, &complete);
		if (st != 502)
			fprintf(stderr, "\n  tag list tampered: %ld %.*s\n", st,
			        (int)(got.len < 300 ? got.len : 300), (const char *)got.data);
		CU_ASSERT_EQUAL(st, 502);
	}
	CU_ASSERT(got.len < 4096 && memmem(got.data, got.len, "integrity_error", 15) != NULL);

	/* no list: the old way, whole object first */
	ehrt_fmt(sql, sizeof(sql), "UPDATE ehr_records SET seg_tags = NULL WHERE record_id = '%s'", rid);
	CU_ASSERT_EQUAL(gwp_db_exec(&w->g, sql), 0);
	CU_ASSERT_EQUAL(big_get(w->pat, rid, &got, &complete), 200);
	CU_ASSERT(complete && got.len == BIG_LEN && memcmp(got.data, body, BIG_LEN) == 0); /* not secret */
	gwp_assert_healthy(&w->g);
	obj_store_free(raw);
	ehr_buf_free(&obj);
	ehr_buf_free_secure(&got);
	free(body);
}

static void test_fs_big_stream(void)
{
	big_stream(&BFS);
}

static void test_s3_big_stream(void)
{
	big_stream(&BS3);
}

#endif

#ifndef EHR_ROBUST_STREAMS
static void register_suites(void)
{
	EHR_ADD_SUITE("pg_restart", pg_init, pg_clean, { "restart under load", test_pg_restart_under_load });
	EHR_ADD_SUITE("memory", mem_init, mem_clean, { "rss after floods", test_rss_after_floods });
}
#else
static void register_suites(void)
{
	EHR_ADD_SUITE("stream_fs", bfs_init, bfs_clean, { "64 MiB streamed", test_fs_big_stream });
	EHR_ADD_SUITE("stream_s3", bs3_init, bs3_clean, { "64 MiB streamed", test_s3_big_stream });
}
#endif

EHR_TEST_MAIN(register_suites)
