/*
 * bench_audit.c - the auditor's API under load (issue 6 benchmark).
 *
 *   bench_audit [ENTRIES] [STREAM_SECONDS]      (defaults 1000000, 20)
 *
 * Needs the dev services (EHRGATE_TEST_PG) and runs a real `ehrgate serve`
 * (tests/harness/gwproc). It:
 *  1. fills the ledger with ENTRIES real entries (ledger_append from 256
 *     threads, same key and origin as the gateway): 8 types, 1000 actors,
 *     20000 subjects, realistic payloads;
 *  2. times GET /v1/audit/entries?limit=100 over mTLS for each filter kind
 *     (none from a random cursor, type, actor, subject, time range, seq
 *     range, subject+type), 40 requests each with random parameters, and
 *     prints p50/p99 next to a same-run baseline: GET /healthz over the
 *     same client (TLS + HTTP cost) and the same SQL run directly;
 *  3. measures SSE delivery latency, from ledger_append returning (the
 *     commit) to the event arriving on /v1/audit/stream, while 100
 *     appends/s are made: p50/p99.
 * Figures only; it asserts nothing.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "client/client.h"
#include "ledger/ledger.h"
#include "gateway/gateway.h"
#include "tests/harness/gwproc.h"

static struct gw_proc gw;
static struct ledger *L;
static uint64_t g_target;
static uint64_t g_next;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const types[] = { "ehr.read",      "ehr.store",       "access.decision", "auth.token",
	                             "auth.register", "contract.create", "contract.revoke", "ehr.list" };

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *filler(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;

	for (;;) {
		uint64_t i;
		char actor[64], subject[64]; /* well-formed ids: the audit query validates them */
		json_t *payload;
		struct ledger_entry_in in;

		pthread_mutex_lock(&g_mu);
		i = g_next < g_target ? g_next++ : UINT64_MAX;
		pthread_mutex_unlock(&g_mu);
		if (i == UINT64_MAX)
			return NULL;
		seed = seed * 1103515245u + 12345u;
		snprintf(actor, sizeof(actor), "srv-%032u", (seed >> 8) % 1000);
		snprintf(subject, sizeof(subject), "pt-%043u", (seed >> 4) % 20000);
		payload = json_pack(
		        "{s:s, s:s, s:I, s:s}", "record", "0123456789abcdef0123456789abcdef", "sha256",
		        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "size",
		        (json_int_t)(seed % 100000), "decision", (seed & 1) ? "allow" : "deny");
		in = (struct ledger_entry_in){ types[i % EHR_ARRAY_LEN(types)], actor, subject, payload };
		if (ledger_append(L, &in, NULL) < 0)
			fprintf(stderr, "append: %s\n", ehr_error_msg());
		json_decref(payload);
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void pct(double *v, size_t n, double *p50, double *p99)
{
	qsort(v, n, sizeof(*v), cmp_d);
	*p50 = v[n / 2];
	*p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
}

static double sql_ms(PGconn *c, const char *sql)
{
	double t0 = now_ms();
	PGresult *r = PQexec(c, sql);
	double t = now_ms() - t0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "sql: %s\n", PQerrorMessage(c));
	PQclear(r);
	return t;
}

/* ---- SSE latency */

#define MAX_EV 100000
static double t_commit[MAX_EV], t_recv[MAX_EV];
static uint64_t stream_base;
static volatile int stream_stop;

struct sse_parse {
	char line[1 << 16];
	size_t len;
};

static size_t sse_write(char *p, size_t s, size_t n, void *ud)
{
	struct sse_parse *sp = ud;
	double t = now_ms();

	for (size_t i = 0; i < s * n; i++) {
		if (p[i] != '\n') {
			if (sp->len < sizeof(sp->line) - 1)
				sp->line[sp->len++] = p[i];
			continue;
		}
		sp->line[sp->len] = '\0';
		if (strncmp(sp->line, "id: ", 4) == 0) {
			uint64_t seq = strtoull(sp->line + 4, NULL, 10);
			if (seq >= stream_base && seq - stream_base < MAX_EV)
				t_recv[seq - stream_base] = t;
		}
		sp->len = 0;
	}
	return stream_stop ? 0 : s * n;
}

struct stream_arg {
	char url[256], cert[800], key[800];
};

static void *stream_main(void *arg)
{
	struct stream_arg *a = arg;
	static struct sse_parse sp;
	CURL *h = curl_easy_init();

	curl_easy_setopt(h, CURLOPT_URL, a->url);
	curl_easy_setopt(h, CURLOPT_CAINFO, gw.ca_pem);
	curl_easy_setopt(h, CURLOPT_SSLCERT, a->cert);
	curl_easy_setopt(h, CURLOPT_SSLKEY, a->key);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sse_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sp);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_perform(h);
	curl_easy_cleanup(h);
	return NULL;
}

int main(int argc, char **argv)
{
	uint64_t entries = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	unsigned stream_s = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 20;
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	struct gwp_options o = { 0 };
	struct ehr_client *aud = NULL;
	char dir[700], tok[256], setsbuf[64];
	const char *args[] = { "admin", "issue-token", "--role", "auditor", "--name",
		               "bench", "-c",          NULL,     NULL };
	json_t *info = NULL;
	PGconn *su;
	pthread_t th[256];
	double t0, t1;
	int st = 0;

	(void)setsbuf;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (gwp_setup(&gw, &o) < 0 || gwp_start(&gw) < 0) {
		fprintf(stderr, "gateway: %s\n", ehr_error_msg());
		return 1;
	}
	if (gw_config_build(&cfg, gw.config, NULL, 0) < 0 ||
	    gw_app_open(&app, cfg, GW_APP_DB | GW_APP_LEDGER) < 0) {
		fprintf(stderr, "app: %s\n", ehr_error_msg());
		goto out;
	}
	L = gw_app_ledger(app);
	su = PQconnectdb(gw.db.super_ci);

	/* 1. fill */
	g_target = entries;
	t0 = now_ms();
	for (unsigned i = 0; i < 256; i++)
		pthread_create(&th[i], NULL, filler, (void *)(uintptr_t)(i + 1));
	for (unsigned i = 0; i < 256; i++)
		pthread_join(th[i], NULL);
	t1 = now_ms();
	printf("fill: %llu ledger entries in %.1f s = %.0f appends/s (256 threads, group commit)\n",
	       (unsigned long long)entries, (t1 - t0) / 1e3, (double)entries / ((t1 - t0) / 1e3));
	PQclear(PQexec(su, "ANALYZE ledger_entries"));

	/* auditor */
	args[7] = gw.config;
	if (gwp_run(&gw, args, false, &st, tok, sizeof(tok)) < 0 || st != 0) {
		fprintf(stderr, "issue-token failed\n");
		goto out;
	}
	tok[strcspn(tok, "\r\n")] = '\0';
	snprintf(dir, sizeof(dir), "%s/aud", gw.dir);
	if (ehr_client_register(gw.base_url, gw.ca_pem, tok, dir, &info) < 0 ||
	    ehr_client_open_profile(&aud, dir) < 0) {
		fprintf(stderr, "auditor: %s\n", ehr_error_msg());
		goto out;
	}
	json_decref(info);

	/* 2. queries */
	{
		struct kind {
			const char *name;
		} kinds[] = { { "healthz (baseline)" },
			      { "no filter, random cursor" },
			      { "type" },
			      { "actor" },
			      { "subject" },
			      { "time range" },
			      { "seq range" },
			      { "subject + type" } };
		long long max_seq = 0, min_ts = 0, max_ts = 0;
		PGresult *r = PQexec(su, "SELECT max(seq), min(ts_ms), max(ts_ms) FROM ledger_entries");
		if (PQresultStatus(r) == PGRES_TUPLES_OK) {
			max_seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
			min_ts = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
			max_ts = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
		}
		PQclear(r);
		printf("\nGET /v1/audit/entries?limit=100 on %lld entries, 40 requests each (ms):\n",
		       max_seq + 1);
		printf("%-26s %8s %8s %10s %10s %8s\n", "filter", "p50", "p99", "sql p50", "sql p99",
		       "p50/hz");
		double hz50 = 1;
		for (size_t k = 0; k < EHR_ARRAY_LEN(kinds); k++) {
			double http[40], sql[40], h50, h99, s50 = 0, s99 = 0;
			unsigned seed = 7u + (unsigned)k;
			for (int i = 0; i < 40; i++) {
				char path[512], q[1024];
				struct ehr_buf resp = EHR_BUF_INIT(64u << 20);
				long status = 0;
				double ta;
				long long a, b;
				seed = seed * 1103515245u + 12345u;
				a = (long long)((seed >> 3) % (unsigned)(max_seq + 1));
				q[0] = '\0';
				switch (k) {
				case 0: snprintf(path, sizeof(path), "/healthz"); break;
				case 1:
					snprintf(path, sizeof(path),
					         "/v1/audit/entries?limit=100&cursor=%lld", a);
					snprintf(q, sizeof(q),
					         "SELECT seq, block_height, entry FROM ledger_entries WHERE "
					         "seq >= %lld ORDER BY seq LIMIT 100",
					         a);
					break;
				case 2:
					snprintf(path, sizeof(path),
					         "/v1/audit/entries?limit=100&type=%s&cursor=%lld",
					         types[seed % 8], a);
					snprintf(q, sizeof(q),
					         "SELECT seq, block_height, entry FROM ledger_entries WHERE "
					         "seq >= %lld AND type = '%s' ORDER BY seq LIMIT 100",
					         a, types[seed % 8]);
					break;
				case 3:
					snprintf(path, sizeof(path),
					         "/v1/audit/entries?limit=100&actor=srv-%032u", seed % 1000);
					snprintf(q, sizeof(q),
					         "SELECT seq, block_height, entry FROM ledger_entries WHERE "
					         "seq >= 0 AND actor = 'srv-%032u' ORDER BY seq LIMIT 100",
					         seed % 1000);
					break;
				case 4:
					snprintf(path, sizeof(path),
					         "/v1/audit/entries?limit=100&subject=pt-%043u",
					         seed % 20000);
					snprintf(q, sizeof(q),
					         "SELECT seq, block_height, entry FROM ledger_entries WHERE "
					         "seq >= 0 AND subject = 'pt-%043u' ORDER BY seq LIMIT 100",
					         seed % 20000);
					break;
				case 5:
					b = min_ts + (long long)((double)(max_ts - min_ts) *
					                         ((seed >> 5) % 1000) / 1000.0);
					snprintf(path, sizeof(path),
					         "/v1/audit/entries?limit=100&since=%lld&until=%lld", b,
					         b + 1000);
					snprintf(q, sizeof(q),
					         "SELECT seq, block_height, entry FROM ledger_entries WHERE "
					         "ts_ms >= %lld AND ts_ms < %lld ORDER BY seq LIMIT 100",
					         b, b + 1000);
					break;
				case 6:
					snprintf(path, sizeof(path),
					         "/v1/audit/entries?limit=100&from_seq=%lld&to_seq=%lld", a,
					         a + 5000);
					snprintf(q, sizeof(q),
					         "SELECT seq, block_height, entry FROM ledger_entries WHERE "
					         "seq >= %lld AND seq < %lld ORDER BY seq LIMIT 100",
					         a, a + 5000);
					break;
				default:
					snprintf(path, sizeof(path),
					         "/v1/audit/entries?limit=100&subject=pt-%043u&type=%s",
					         seed % 20000, types[seed % 8]);
					snprintf(q, sizeof(q),
					         "SELECT seq, block_height, entry FROM ledger_entries WHERE "
					         "seq >= 0 AND subject = 'pt-%043u' AND type = '%s' ORDER BY "
					         "seq LIMIT 100",
					         seed % 20000, types[seed % 8]);
					break;
				}
				ta = now_ms();
				if (ehr_client_request(aud, &status, &resp, "GET", path, NULL, NULL, 0, NULL,
				                       NULL) < 0 ||
				    status != 200)
					fprintf(stderr, "%s -> %ld %s\n", path, status, ehr_error_msg());
				http[i] = now_ms() - ta;
				sql[i] = q[0] ? sql_ms(su, q) : 0;
				ehr_buf_free(&resp);
			}
			pct(http, 40, &h50, &h99);
			if (k == 0)
				hz50 = h50;
			else
				pct(sql, 40, &s50, &s99);
			printf("%-26s %8.2f %8.2f %10.2f %10.2f %8.1f\n", kinds[k].name, h50, h99, s50, s99,
			       h50 / hz50);
		}
	}

	/* 3. stream latency at 100 appends/s */
	{
		struct stream_arg sa;
		pthread_t sth;
		PGresult *r = PQexec(su, "SELECT coalesce(max(seq) + 1, 0) FROM ledger_entries");
		unsigned n = stream_s * 100, got = 0;
		double lat[MAX_EV], p50, p99;

		stream_base = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		snprintf(sa.url, sizeof(sa.url), "%s/v1/audit/stream?since=%llu&heartbeat=5", gw.base_url,
		         (unsigned long long)stream_base);
		snprintf(sa.cert, sizeof(sa.cert), "%s/cert.pem", dir);
		snprintf(sa.key, sizeof(sa.key), "%s/key.pem", dir);
		pthread_create(&sth, NULL, stream_main, &sa);
		usleep(500 * 1000);
		for (unsigned i = 0; i < n && i < MAX_EV; i++) {
			double due = now_ms() + 10.0;
			struct ledger_receipt rc;
			json_t *payload = json_pack("{s:I}", "i", (json_int_t)i);
			struct ledger_entry_in in = { "bench.stream", "srv-bench", "pt-bench", payload };
			if (ledger_append(L, &in, &rc) == 0 && rc.seq >= stream_base &&
			    rc.seq - stream_base < MAX_EV)
				t_commit[rc.seq - stream_base] = now_ms();
			json_decref(payload);
			while (now_ms() < due)
				usleep(500);
		}
		usleep(1000 * 1000);
		stream_stop = 1;
		/* one more entry wakes the stream so the transfer ends */
		{
			json_t *payload = json_pack("{s:b}", "end", 1);
			struct ledger_entry_in in = { "bench.stream", "srv-bench", "pt-bench", payload };
			ledger_append(L, &in, NULL);
			json_decref(payload);
		}
		pthread_join(sth, NULL);
		for (unsigned i = 0; i < MAX_EV; i++)
			if (t_commit[i] > 0 && t_recv[i] > 0)
				lat[got++] = t_recv[i] - t_commit[i];
		if (got > 0) {
			pct(lat, got, &p50, &p99);
			printf("\nSSE delivery, commit -> event, %u events at 100 appends/s: p50 %.2f ms, "
			       "p99 %.2f ms "
			       "(%u of %u delivered)\n",
			       got, p50, p99, got, n);
		} else {
			printf("\nSSE delivery: no events measured\n");
		}
	}
	/* 4. independent verification of the whole ledger by ehrctl */
	{
		const char *ctl = getenv("EHRGATE_CTL");
		char cmd[2600], line[512] = "";
		FILE *f;
		double tv;
		if (ctl != NULL) {
			snprintf(cmd, sizeof(cmd),
			         "'%s' --dir '%s' audit verify --ledger-key '%s/ledger.pub' --state "
			         "'%s/bench-state.json' 2>&1",
			         ctl, dir, gw.state_dir, gw.dir);
			tv = now_ms();
			f = popen(cmd, "r");
			if (f && fgets(line, sizeof(line), f) == NULL)
				line[0] = '\0';
			if (f)
				pclose(f);
			tv = now_ms() - tv;
			printf("\nehrctl audit verify (first run, every entry fetched, decoded and hashed "
			       "into the signed "
			       "root): %.1f s: %s",
			       tv / 1e3, line);
		}
	}
out:
	ehr_client_free(aud);
	gw_app_close(app);
	gw_config_free(cfg);
	gwp_teardown(&gw);
	return 0;
}
