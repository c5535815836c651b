/*
 * bench_ledger.c - ledger throughput against a same-run PostgreSQL baseline.
 *
 * Prints (never asserts):
 *   raw baseline: single-row INSERT commits (1 and 16 connections) and
 *     100-row INSERT transactions (1 and 4 connections) into a plain table
 *     whose rows are the size of a ledger row;
 *   durable ledger appends/s at 1, 16 and 256 appender threads, with the
 *     ratio to the baselines;
 *   inclusion proofs/s (generation from the store, and client verification);
 *   verification entries/s over the whole ledger (ledger_verify_db_opts):
 *     right after the fill (Postgres then sets hint bits on every row it
 *     reads: a one-time cost), then the default (ranges at once, the last
 *     block's signatures), one range, and every block's signatures; each
 *     with the CPU per entry of the verifier and of the Postgres backends.
 *
 *   EHRGATE_TEST_PG=... bench_ledger [seconds-per-run (5)] [min entries to verify (1000000)]
 *
 * BENCH_KEEP_DB=1 keeps the database (its conninfo is printed last) and
 * BENCH_LEDGER_KEY=FILE writes the signing key there (PEM, 0600), so that
 * `ehrgate ledger verify --db CONNINFO --pubkey FILE`, or this benchmark's
 * verification passes alone (BENCH_VERIFY_DB=CONNINFO BENCH_LEDGER_KEY=FILE
 * bench_ledger), can run on it again.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ledger/ledger_internal.h"
#include "tests/harness/harness.h"
#include "tests/integration/ledger/ltest.h"

static int g_secs = 5;
static volatile int g_stop;
static size_t g_row_bytes = 200;

static double load1(void)
{
	double l[1] = { -1 };

	return getloadavg(l, 1) == 1 ? l[0] : -1;
}

static double now_s(void)
{
	return (double)ehr_monotonic_ms() / 1000.0;
}

/* ------------------------------------------------------------ baseline */

struct raw_arg {
	const char *ci;
	unsigned rows_per_tx;
	unsigned id;
	long done;
};

static void *raw_main(void *p)
{
	struct raw_arg *a = p;
	PGconn *c = ltest_connect(a->ci, false);
	struct ehr_buf sql = EHR_BUF_INIT(1 << 22), row = EHR_BUF_INIT(4096);
	long k = 0;

	if (c == NULL)
		return NULL;
	ltest_exec(c, "SET synchronous_commit = on");
	/* one row literal of g_row_bytes of payload */
	ehr_buf_append_str(&row, "('\\x");
	for (size_t i = 0; i < g_row_bytes; i++)
		ehr_buf_printf(&row, "%02x", (unsigned)((i * 7 + a->id) & 0xff));
	ehr_buf_append_str(&row, "')");
	while (!g_stop) {
		ehr_buf_reset(&sql);
		ehr_buf_append_str(&sql, "INSERT INTO raw_rows (payload) VALUES ");
		for (unsigned i = 0; i < a->rows_per_tx; i++) {
			if (i)
				ehr_buf_append_u8(&sql, ',');
			ehr_buf_append(&sql, row.data, row.len);
		}
		if (ltest_exec(c, ehr_buf_cstr(&sql)) < 0)
			break; /* autocommit: one transaction per statement */
		k += a->rows_per_tx;
	}
	a->done = k;
	PQfinish(c);
	ehr_buf_free(&sql);
	ehr_buf_free(&row);
	return NULL;
}

static double run_raw(const char *ci, unsigned conns, unsigned rows_per_tx)
{
	pthread_t t[64];
	struct raw_arg a[64];
	double t0, t1;
	long total = 0;

	g_stop = 0;
	for (unsigned i = 0; i < conns; i++) {
		a[i] = (struct raw_arg){ ci, rows_per_tx, i, 0 };
		pthread_create(&t[i], NULL, raw_main, &a[i]);
	}
	t0 = now_s();
	sleep((unsigned)g_secs);
	g_stop = 1;
	for (unsigned i = 0; i < conns; i++) {
		pthread_join(t[i], NULL);
		total += a[i].done;
	}
	t1 = now_s();
	return (double)total / (t1 - t0);
}

/* -------------------------------------------------------------- ledger */

struct app_arg {
	struct ledger *l;
	unsigned id;
	long done;
	long failed;
};

static void *app_main(void *p)
{
	struct app_arg *a = p;
	char rec[40];
	long k = 0;

	while (!g_stop) {
		json_t *payload;
		struct ledger_entry_in in;

		snprintf(rec, sizeof(rec), "rec-%08x-%08lx", a->id, (unsigned long)k);
		payload = json_pack("{s:s,s:s,s:s,s:i}", "record", rec, "decision", "allow", "purpose",
		                    "treatment", "bytes", 4096);
		in = (struct ledger_entry_in){ "ehr.read", "srv-3f9a1c2b7d", "pt-91c2e07a55aa", payload };
		if (ledger_append(a->l, &in, NULL) < 0)
			a->failed++;
		else
			k++;
		json_decref(payload);
	}
	a->done = k;
	return NULL;
}

static double run_ledger(struct ledger *l, unsigned threads, long *failed)
{
	pthread_t *t = calloc(threads, sizeof(*t));
	struct app_arg *a = calloc(threads, sizeof(*a));
	double t0, t1;
	long total = 0;

	g_stop = 0;
	t0 = now_s();
	for (unsigned i = 0; i < threads; i++) {
		a[i] = (struct app_arg){ l, i, 0, 0 };
		pthread_create(&t[i], NULL, app_main, &a[i]);
	}
	sleep((unsigned)g_secs);
	g_stop = 1;
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += a[i].done;
		*failed += a[i].failed;
	}
	t1 = now_s();
	free(t);
	free(a);
	return (double)total / (t1 - t0);
}

static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---------------------------------------------------------- verification */

/*
 * The CPU the database spends on a verification: every backend of the
 * database but the sampler's own, sampled every 20 ms from /proc (the
 * parallel ranges open connections of their own and close them at the
 * end, so each one's last sample counts).
 */
#define MAX_BACKENDS 64
struct backend_cpu {
	const char *ci;
	volatile int stop;
	int pid[MAX_BACKENDS];
	double first[MAX_BACKENDS], last[MAX_BACKENDS];
	int n;
	pthread_t th;
};

static void backend_sample(struct backend_cpu *b, PGconn *c, bool initial)
{
	PGresult *r = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND "
	                        "backend_type = 'client backend' AND pid "
	                        "<> pg_backend_pid()");

	for (int i = 0; r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
		uint64_t pid;
		double cpu;
		int k = 0;

		if (ehr_parse_u64(&pid, PQgetvalue(r, i, 0), INT32_MAX) < 0 ||
		    (cpu = ehr_test_proc_cpu_s((int)pid)) < 0)
			continue;
		while (k < b->n && b->pid[k] != (int)pid)
			k++;
		if (k == b->n) {
			if (b->n == MAX_BACKENDS)
				continue;
			b->pid[b->n++] = (int)pid;
			b->first[k] = initial ? cpu : 0; /* a new backend: all its CPU is the run's */
		}
		b->last[k] = cpu;
	}
	PQclear(r);
}

static void *backend_main(void *arg)
{
	struct backend_cpu *b = arg;
	PGconn *c = ltest_connect(b->ci, false);

	while (c != NULL && !b->stop) {
		backend_sample(b, c, false);
		usleep(20 * 1000);
	}
	if (c != NULL)
		backend_sample(b, c, false);
	PQfinish(c);
	return NULL;
}

static double backend_total(const struct backend_cpu *b)
{
	double t = 0;

	for (int i = 0; i < b->n; i++)
		t += b->last[i] - b->first[i];
	return t;
}

static void verify_pass(const char *ci, const uint8_t pub[32], unsigned jobs, bool all, const char *what)
{
	struct ledger_verify_opts o = { .jobs = jobs, .all_signatures = all };
	struct ledger_verify_report rep;
	struct backend_cpu bc = { .ci = ci };
	PGconn *c = ltest_connect(ci, false), *mon = ltest_connect(ci, false);
	double s0, s1, t0, t1, rate;
	int rc;

	if (c == NULL || mon == NULL)
		return;
	backend_sample(&bc, mon, true);
	PQfinish(mon);
	pthread_create(&bc.th, NULL, backend_main, &bc);
	s0 = self_cpu_s();
	t0 = now_s();
	rc = ledger_verify_db_opts(c, pub, &o, &rep);
	t1 = now_s();
	s1 = self_cpu_s();
	PQfinish(c);
	usleep(50 * 1000);
	bc.stop = 1;
	pthread_join(bc.th, NULL);
	rate = (double)rep.entries / (t1 - t0);
	printf("verify %s:\n  rc=%d, %llu entries in %llu blocks in %.2f s: %.0f entries/s   TARGET >= 1M/s: "
	       "%s\n",
	       what, rc, (unsigned long long)rep.entries, (unsigned long long)rep.blocks, t1 - t0, rate,
	       rate >= 1e6 ? "met" : "NOT met");
	if (rep.entries > 0)
		printf("  CPU per entry: verifier %.2f us (all its threads), PostgreSQL backends %.2f us; "
		       "load "
		       "average %.1f on %ld cores\n",
		       (s1 - s0) * 1e6 / (double)rep.entries, backend_total(&bc) * 1e6 / (double)rep.entries,
		       load1(), sysconf(_SC_NPROCESSORS_ONLN));
}

/* The verification passes; `fresh`: the ledger was just written. */
static void verify_passes(const char *ci, const uint8_t pub[32], bool fresh)
{
	static const struct {
		unsigned jobs;
		bool all;
		const char *what;
	} pass[] = {
		{ 0, false, "first pass after the writes (Postgres sets hint bits)" },
		{ 0, false, "default: ranges at once, the last block's signatures" },
		{ 1, false, "one range (--jobs 1)" },
		{ 0, true, "--all-signatures" },
	};

	for (size_t i = fresh ? 0 : 1; i < EHR_ARRAY_LEN(pass); i++)
		verify_pass(ci, pub, pass[i].jobs, pass[i].all, pass[i].what);
}

/* BENCH_VERIFY_DB=CONNINFO BENCH_LEDGER_KEY=FILE: only the verification
 * passes, on a database kept by an earlier run (BENCH_KEEP_DB=1). */
static int verify_only(const char *ci, const char *keyfile)
{
	uint8_t pub[32];

	if (keyfile == NULL || ledger_key_load_public(pub, keyfile) < 0) {
		fprintf(stderr, "BENCH_VERIFY_DB needs BENCH_LEDGER_KEY (the kept run's key): %s\n",
		        ehr_error_msg());
		return 1;
	}
	verify_passes(ci, pub, false);
	return 0;
}

int main(int argc, char **argv)
{
	struct ehr_db_fixture db;
	struct ehr_db_opts dbo = { .tag = "ledger_bench", .migrations = LTEST_MIGRATIONS };
	EVP_PKEY *key;
	struct ledger *l = NULL;
	uint8_t pub[32];
	PGconn *su;
	uint64_t min_verify = 1000000;
	double raw1, raw16, batch1, batch4, batched, r[3];
	static const unsigned threads[3] = { 1, 16, 256 };
	long failed = 0;
	long long n;

	if (argc > 1) {
		uint64_t v;

		if (ehr_parse_u64(&v, argv[1], 3600) == 0 && v > 0)
			g_secs = (int)v;
	}
	if (argc > 2) {
		uint64_t v;

		if (ehr_parse_u64(&v, argv[2], UINT64_MAX) == 0)
			min_verify = v;
	}
	if (getenv("BENCH_VERIFY_DB") != NULL)
		return verify_only(getenv("BENCH_VERIFY_DB"), getenv("BENCH_LEDGER_KEY"));
	if (ehr_db_fixture_new(&db, &dbo) < 0)
		return 1;
	key = ltest_key_new();
	ledger_key_raw_public(pub, key);
	if (getenv("BENCH_LEDGER_KEY") != NULL && ltest_key_write(key, getenv("BENCH_LEDGER_KEY")) < 0)
		return 1;
	su = ltest_connect(db.super_ci, false);
	if (su == NULL ||
	    ltest_exec(su, "CREATE TABLE raw_rows (id bigserial PRIMARY KEY, payload bytea NOT NULL); "
	                   "GRANT SELECT, INSERT ON raw_rows TO ehrgate_app; "
	                   "GRANT USAGE ON SEQUENCE raw_rows_id_seq TO ehrgate_app") < 0)
		return 1;

	/* size the baseline rows like ledger rows: measure one */
	if (ltest_ledger_open(&l, db.app_ci, key, 512, 2) < 0 || ltest_fill(l, 64, 4, "pt-91c2e07a55aa") < 0)
		return 1;
	g_row_bytes =
	        (size_t)ltest_scalar(su, "SELECT avg(pg_column_size(t.*))::bigint FROM ledger_entries t");
	printf("ledger row: %zu bytes on average (baseline rows carry the same payload size)\n", g_row_bytes);
	printf("seconds per run: %d; machine: %ld cores\n\n", g_secs, sysconf(_SC_NPROCESSORS_ONLN));

	raw1 = run_raw(db.app_ci, 1, 1);
	printf("baseline  single-row commits,  1 connection : %9.0f rows/s\n", raw1);
	raw16 = run_raw(db.app_ci, 16, 1);
	printf("baseline  single-row commits, 16 connections: %9.0f rows/s\n", raw16);
	batch1 = run_raw(db.app_ci, 1, 100);
	printf("baseline  100-row transactions, 1 connection : %9.0f rows/s\n", batch1);
	batch4 = run_raw(db.app_ci, 4, 100);
	printf("baseline  100-row transactions, 4 connections: %9.0f rows/s\n", batch4);
	batched = batch1 > batch4 ? batch1 : batch4;
	printf("\n");
	for (int i = 0; i < 3; i++) {
		double c0 = self_cpu_s(), c1;

		r[i] = run_ledger(l, threads[i], &failed);
		c1 = self_cpu_s();
		printf("ledger    %3u appenders: %9.0f durable appends/s   ratio vs single-row(%s) %.2f   vs "
		       "batched %.2f   (gateway-side CPU %.1f us/append)\n",
		       threads[i], r[i], threads[i] == 1 ? "1 conn" : "16 conns",
		       r[i] / (threads[i] == 1 ? raw1 : raw16), r[i] / batched,
		       (c1 - c0) * 1e6 / (r[i] * g_secs));
	}
	printf("ledger    failed appends: %ld\n", failed);
	printf("TARGET    256 appenders >= 50%% of batched raw: %s (%.0f%%)\n\n",
	       r[2] >= 0.5 * batched ? "met" : "NOT met", 100.0 * r[2] / batched);

	/* grow the ledger for the verification measurement */
	n = ltest_scalar(su, "SELECT count(*) FROM ledger_entries");
	if ((uint64_t)n < min_verify) {
		double t0 = now_s();

		printf("filling to %llu entries with 256 appenders ...\n", (unsigned long long)min_verify);
		fflush(stdout);
		ltest_fill(l, (unsigned)(min_verify - (uint64_t)n), 256, "pt-fill");
		printf("  %.0f appends/s while filling\n",
		       (double)(min_verify - (uint64_t)n) / (now_s() - t0));
	}
	n = ltest_scalar(su, "SELECT count(*) FROM ledger_entries");

	/* inclusion proofs */
	{
		struct ledger_block head;
		uint8_t proof[LEDGER_MAX_PROOF][32];
		size_t plen = 0;
		long k = 0, ok = 0;
		double t0 = now_s(), t1;
		uint64_t x = 88172645463325252ULL;

		ledger_head(l, &head);
		while ((t1 = now_s()) - t0 < g_secs) {
			uint64_t idx;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			idx = x % head.tree_size;
			if (ledger_prove_inclusion(l, idx, head.tree_size, proof, &plen) == 0)
				k++;
		}
		printf("inclusion proofs: %.0f generated/s from the store (tree size %llu, 1 thread, %zu "
		       "hashes each)\n",
		       (double)k / (t1 - t0), (unsigned long long)head.tree_size, plen);
		t0 = now_s();
		for (long i = 0; i < 200000; i++)
			ok += merkle_verify_inclusion(head.root, 0, head.tree_size,
			                              (const uint8_t(*)[32])proof, plen,
			                              head.root) == EHR_ERR_TAMPER;
		t1 = now_s();
		printf("inclusion proofs: %.0f verified/s by a client (negative path included)\n",
		       200000.0 / (t1 - t0));
		(void)ok;
	}
	ledger_close(l);

	/* verification: four passes over the same ledger */
	verify_passes(db.app_ci, pub, true);
	(void)n;
	PQfinish(su);
	EVP_PKEY_free(key);
	if (getenv("BENCH_KEEP_DB") == NULL)
		ehr_db_fixture_free(&db);
	else /* e.g. to profile: ehrgate ledger verify --db CONNINFO --pubkey $BENCH_LEDGER_KEY */
		printf("kept the database: %s\n", db.app_ci);
	return 0;
}
