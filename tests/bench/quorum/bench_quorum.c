/*
 * bench_quorum.c - publication with three witnesses on loopback
 * (docs/LEDGER.md §13), against same-run baselines. Prints, never asserts:
 *
 *   append -> published latency: entries appended open-loop at a fixed rate
 *     (1,000 and 10,000 appends/s by default) while the publisher runs with
 *     three real `ehrwitness serve` processes over TLS; for each entry, the
 *     time from its acknowledged append to the first moment the published
 *     head (ledger_published_head, polled every millisecond on its own
 *     connection) covers it; p50 and p99, next to the append latency
 *     itself (submit -> durable ack) of the same run;
 *   append throughput with the publisher on, as a ratio to the same ledger
 *     with it off (closed loop, 256 appenders), measured off, on, on, off.
 *
 *   EHRGATE_TEST_PG=... bench_quorum [seconds-per-run (5)] [rate ...]
 *   env: EHRWITNESS_BIN, EHRGATE_BIN (for `ehrgate init`'s TLS files),
 *        QUORUM_K (default 2)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ledger/ledger.h"
#include "publish/publish.h"
#include "tests/harness/harness.h"
#include "tests/integration/ledger/ltest.h"
#include "tests/harness/witproc.h"

#define NW 3

static int g_secs = 5;
static struct ledger *g_ledger;
static struct ehr_db_fixture g_db;
static _Atomic int g_stop;

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_us(int64_t t)
{
	int64_t d = t - now_us();

	if (d > 0) {
		struct timespec ts = { d / 1000000, (d % 1000000) * 1000 };
		nanosleep(&ts, NULL);
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static double pct(int64_t *v, size_t n, double p)
{
	if (n == 0)
		return -1;
	return (double)v[(size_t)((double)(n - 1) * p)] / 1000.0;
}

static int append_one(unsigned id, struct ledger_receipt *r)
{
	json_t *payload =
	        json_pack("{s:I, s:s}", "i", (json_int_t)id, "pad", "0123456789abcdef0123456789abcdef");
	struct ledger_entry_in in = {
		.type = "bench.quorum", .actor = "bench", .subject = "subj", .payload = payload
	};
	int err = ledger_append(g_ledger, &in, r);

	json_decref(payload);
	return err;
}

/* ------------------------------------------------------------ latency */

struct lat_run {
	double rate;
	unsigned threads;
	uint64_t base; /* first seq of the run (tree size before it) */
	size_t cap;
	_Atomic int64_t *ack_us; /* per seq - base: when its append returned */
	_Atomic int64_t *sub_us; /* when it was submitted */
	_Atomic int64_t *pub_us; /* when the published head first covered it */
	_Atomic uint64_t issued;
	_Atomic long failures;
	int64_t t0;
};

struct lat_arg {
	struct lat_run *run;
	unsigned id;
};

/* Open loop: append k of this run happens at t0 + k / rate, whoever is free. */
static void *lat_appender(void *p)
{
	struct lat_arg *a = p;
	struct lat_run *run = a->run;

	while (!atomic_load(&g_stop)) {
		uint64_t k = atomic_fetch_add(&run->issued, 1);
		int64_t at = run->t0 + (int64_t)((double)k * 1e6 / run->rate), sub;
		struct ledger_receipt r;

		if (at > run->t0 + (int64_t)g_secs * 1000000)
			break;
		sleep_until_us(at);
		sub = now_us();
		if (append_one(a->id, &r) < 0) {
			atomic_fetch_add(&run->failures, 1);
			continue;
		}
		if (r.seq >= run->base && r.seq - run->base < run->cap) {
			atomic_store(&run->ack_us[r.seq - run->base], now_us());
			atomic_store(&run->sub_us[r.seq - run->base], sub);
		}
	}
	return NULL;
}

/* The published head, polled every millisecond on its own connection. */
static void *lat_monitor(void *p)
{
	struct lat_run *run = p;
	PGconn *c = ltest_connect(g_db.super_ci, false);
	long long last = (long long)run->base;

	while (c && !atomic_load(&g_stop)) {
		long long s = ltest_scalar(c, "SELECT tree_size FROM ledger_published_head");
		int64_t t = now_us();
		for (long long q = last; q < s; q++)
			if (q >= (long long)run->base && (uint64_t)q - run->base < run->cap)
				atomic_store(&run->pub_us[q - (long long)run->base], t);
		if (s > last)
			last = s;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	if (c)
		PQfinish(c);
	return NULL;
}

static void latency_run(double rate, unsigned threads)
{
	struct lat_run run = { .rate = rate, .threads = threads };
	pthread_t t[256], mon;
	struct lat_arg args[256];
	int64_t *pub_lat, *ack_lat;
	size_t np = 0, na = 0, missing = 0;
	struct ledger_block head;
	double secs;

	run.base = ledger_head(g_ledger, &head) == 0 ? head.tree_size : 0;
	run.cap = (size_t)(rate * g_secs * 1.1) + 1000;
	run.ack_us = calloc(run.cap, sizeof(*run.ack_us));
	run.sub_us = calloc(run.cap, sizeof(*run.sub_us));
	run.pub_us = calloc(run.cap, sizeof(*run.pub_us));
	pub_lat = calloc(run.cap, sizeof(*pub_lat));
	ack_lat = calloc(run.cap, sizeof(*ack_lat));
	if (!run.ack_us || !run.sub_us || !run.pub_us || !pub_lat || !ack_lat)
		return;
	atomic_store(&g_stop, 0);
	pthread_create(&mon, NULL, lat_monitor, &run);
	run.t0 = now_us() + 20000;
	for (unsigned i = 0; i < threads; i++) {
		args[i] = (struct lat_arg){ &run, i };
		pthread_create(&t[i], NULL, lat_appender, &args[i]);
	}
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	secs = (double)(now_us() - run.t0) / 1e6;
	/* let publication catch up (at most 5 s), then stop the monitor */
	for (int w = 0; w < 500; w++) {
		struct ledger_block h;
		bool all = ledger_head(g_ledger, &h) == 0 && h.tree_size > run.base &&
		           atomic_load(&run.pub_us[h.tree_size - 1 - run.base]) != 0;
		if (all)
			break;
		sleep_until_us(now_us() + 10000);
	}
	atomic_store(&g_stop, 1);
	pthread_join(mon, NULL);
	for (size_t i = 0; i < run.cap; i++) {
		int64_t a = atomic_load(&run.ack_us[i]), s = atomic_load(&run.sub_us[i]),
		        pb = atomic_load(&run.pub_us[i]);
		if (a == 0)
			continue;
		ack_lat[na++] = a - s;
		if (pb == 0)
			missing++;
		else
			pub_lat[np++] = pb > a ? pb - a : 0;
	}
	qsort(pub_lat, np, sizeof(*pub_lat), cmp_i64);
	qsort(ack_lat, na, sizeof(*ack_lat), cmp_i64);
	printf("target %6.0f appends/s, %3u appenders: achieved %7.0f appends/s (%ld failed)\n", rate,
	       threads, (double)na / secs, (long)atomic_load(&run.failures));
	printf("  baseline, append (submit -> durable ack):   p50 %7.2f ms   p99 %7.2f ms\n",
	       pct(ack_lat, na, 0.5), pct(ack_lat, na, 0.99));
	printf("  append ack -> quorum-published:            p50 %7.2f ms   p99 %7.2f ms   (target p99 < 250 "
	       "ms)%s\n",
	       pct(pub_lat, np, 0.5), pct(pub_lat, np, 0.99), missing ? "  [some never published]" : "");
	if (missing)
		printf("  %zu of %zu acknowledged entries were not published within 5 s\n", missing, na);
	free(run.ack_us);
	free(run.sub_us);
	free(run.pub_us);
	free(pub_lat);
	free(ack_lat);
}

/* ------------------------------------------------------------ throughput */

static _Atomic long g_done;

static void *tp_appender(void *p)
{
	unsigned id = (unsigned)(uintptr_t)p;
	struct ledger_receipt r;

	while (!atomic_load(&g_stop))
		if (append_one(id, &r) == 0)
			atomic_fetch_add(&g_done, 1);
	return NULL;
}

static double throughput(unsigned threads)
{
	pthread_t t[256];
	int64_t t0;

	atomic_store(&g_stop, 0);
	atomic_store(&g_done, 0);
	t0 = now_us();
	for (unsigned i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, tp_appender, (void *)(uintptr_t)i);
	sleep_until_us(t0 + (int64_t)g_secs * 1000000);
	atomic_store(&g_stop, 1);
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	return (double)atomic_load(&g_done) / ((double)(now_us() - t0) / 1e6);
}

/* ------------------------------------------------------------ setup */

static char g_list[4096];

static int start_publisher(struct publisher **pub, const char *ca)
{
	struct publish_witness pw[NW];
	const char *k = getenv("QUORUM_K");
	struct publish_config pc = {
		.ledger = g_ledger,
		.conninfo = g_db.app_ci,
		.witnesses = pw,
		.quorum = k ? (unsigned)strtoul(k, NULL, 10) : 2,
		.ca_file = ca,
		.interval_ms = 250,
		.timeout_ms = 2000,
	};

	GUARD(publish_witnesses_parse(pw, NW, &pc.n, g_list));
	return publish_start(pub, &pc);
}

/* Three witnesses trusting the ledger key for LTEST_ORIGIN; their TLS CAs
 * into one file (ca), their "<url> <vkey>" items into g_list. */
static int start_witnesses(struct wit_proc *w, const char *log_vkey, const char *ca)
{
	FILE *f = fopen(ca, "w");
	size_t n = 0;
	int err = 0;

	ENSURE(f != NULL, EHR_ERR_IO);
	for (int i = 0; i < NW && err == 0; i++) {
		char name[64];
		struct witp_options o = { .name = name, .origin = LTEST_ORIGIN, .log_vkey = log_vkey };
		struct ehr_buf pem = EHR_BUF_INIT(1 << 20);
		snprintf(name, sizeof(name), "w%d.bench/witness", i);
		if ((err = witp_setup(&w[i], &o)) == 0 && (err = witp_start(&w[i])) == 0 &&
		    (err = ehr_file_read(&pem, w[i].ca_pem, pem.max)) == 0) {
			fwrite(pem.data, 1, pem.len, f);
			n += (size_t)snprintf(g_list + n, sizeof(g_list) - n, "%s%s %s", i ? ", " : "",
			                      w[i].base_url, w[i].vkey);
		}
		ehr_buf_free(&pem);
	}
	fclose(f);
	return err;
}

int main(int argc, char **argv)
{
	struct ehr_db_opts o = { .tag = "benchq", .migrations = "1-19,85" };
	struct wit_proc w[NW];
	struct publisher *pub = NULL;
	char dir[] = "/tmp/ehr-benchq-XXXXXX", ca[64];
	struct ehr_buf vk = EHR_BUF_INIT(512);
	uint8_t lpub[32];
	EVP_PKEY *lk = ltest_key_new();
	double rates[8] = { 1000, 10000 };
	size_t nrates = 2;

	if (argc > 1)
		g_secs = (int)strtol(argv[1], NULL, 10);
	if (argc > 2) {
		nrates = 0;
		for (int i = 2; i < argc && nrates < 8; i++)
			rates[nrates++] = strtod(argv[i], NULL);
	}
	memset(w, 0, sizeof(w));
	if (mkdtemp(dir) == NULL || ehr_db_fixture_new(&g_db, &o) < 0 || lk == NULL) {
		fprintf(stderr, "bench_quorum: setup failed: %s\n", ehr_error_detail());
		return 1;
	}
	snprintf(ca, sizeof(ca), "%s/witness-ca.pem", dir);
	if (ledger_key_raw_public(lpub, lk) < 0 || ledger_vkey_format(&vk, LTEST_ORIGIN, lpub) < 0 ||
	    ltest_ledger_open(&g_ledger, g_db.app_ci, lk, 512, 2) < 0 ||
	    start_witnesses(w, ehr_buf_cstr(&vk), ca) < 0) {
		fprintf(stderr, "bench_quorum: setup: %s\n", ehr_error_detail());
		return 1;
	}
	printf("bench_quorum: %d s per run, 3 ehrwitness on loopback (TLS), quorum %s, database %s\n", g_secs,
	       getenv("QUORUM_K") ? getenv("QUORUM_K") : "2", g_db.name);

	/* throughput: off, on, on, off */
	{
		double off1, on1, on2, off2;
		off1 = throughput(256);
		if (start_publisher(&pub, ca) < 0) {
			fprintf(stderr, "bench_quorum: publisher: %s\n", ehr_error_detail());
			return 1;
		}
		on1 = throughput(256);
		on2 = throughput(256);
		publish_stop(pub);
		pub = NULL;
		off2 = throughput(256);
		printf("append throughput, 256 appenders: off %.0f /s, on %.0f /s, on %.0f /s, off %.0f /s\n",
		       off1, on1, on2, off2);
		printf("  ratio witnesses on / off: %.3f (target >= 0.95)\n", (on1 + on2) / (off1 + off2));
	}
	/* latency at each rate */
	if (start_publisher(&pub, ca) < 0)
		return 1;
	sleep_until_us(now_us() + 1000000); /* first round: catch up */
	for (size_t i = 0; i < nrates; i++)
		latency_run(rates[i], rates[i] >= 5000 ? 256 : 64);
	publish_stop(pub);
	for (int i = 0; i < NW; i++)
		witp_teardown(&w[i]);
	ledger_close(g_ledger);
	EVP_PKEY_free(lk);
	ehr_buf_free(&vk);
	ehr_db_fixture_free(&g_db);
	ehr_test_rmrf(dir);
	return 0;
}
