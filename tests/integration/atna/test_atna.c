/*
 * test_atna.c - the ATNA feed (IHE ITI-20) end to end: `ehrgate serve` with
 * [atna] pointing at a real rsyslog (imtcp, GnuTLS, x509/certvalid) from the
 * dev services. Traffic makes ledger entries (registrations that succeed and
 * that fail); rsyslog is stopped mid-stream and started again, the gateway
 * is restarted, a repository that refuses our certificate is tried; then
 * tests/integration/atna/check_atna.py judges the file rsyslog wrote: every
 * ledger index arrived, in order, each an RFC 5424 message (facility 10,
 * MSGID IHE+RFC-3881) whose MSG is a well-formed AuditMessage matching its
 * entry.
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "ledger/ledger.h"
#include "tests/harness/gwproc.h"
#include "tests/harness/harness.h"

static struct gw_proc gw;
static char syslog_addr[64], syslog_ca[512], syslog_cert[512], syslog_key[512], syslog_file[512];
static int n_ok;

/* deploy/devservices.sh CMD STATE; with out, services.env is read into it.
 * (Through the shell, not ehr_test_run: a daemon it starts would inherit
 * the capture pipe and hold it open.) */
static int devservices(const char *cmd, char *out, size_t cap)
{
	const char *script = ehr_test_env("EHRGATE_DEVSERVICES");
	const char *state = ehr_test_env("EHRGATE_TEST_STATE");
	char line[2048];
	FILE *f;
	size_t n;

	if (state == NULL)
		return -1;
	snprintf(line, sizeof(line), "'%s' %s '%s' >/dev/null 2>&1",
	         script ? script : EHRGATE_SOURCE_DIR "/deploy/devservices.sh", cmd, state);
	if (system(line) != 0)
		return -1;
	if (out == NULL)
		return 0;
	snprintf(line, sizeof(line), "%s/services.env", state);
	if ((f = fopen(line, "r")) == NULL)
		return -1;
	n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
	return 0;
}

/* The value of `export NAME='value'` in services.env text. */
static int env_value(const char *text, const char *name, char *out, size_t cap)
{
	char key[96];
	const char *p, *end;

	snprintf(key, sizeof(key), "export %s='", name);
	if ((p = strstr(text, key)) == NULL)
		return -1;
	p += strlen(key);
	if ((end = strchr(p, '\'')) == NULL || (size_t)(end - p) >= cap)
		return -1;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return 0;
}

static int syslog_start(void)
{
	static char env[8192];

	if (devservices("start-syslog", env, sizeof(env)) != 0)
		return -1;
	if (env_value(env, "EHRGATE_TEST_SYSLOG", syslog_addr, sizeof(syslog_addr)) < 0 ||
	    env_value(env, "EHRGATE_TEST_SYSLOG_CA", syslog_ca, sizeof(syslog_ca)) < 0 ||
	    env_value(env, "EHRGATE_TEST_SYSLOG_CERT", syslog_cert, sizeof(syslog_cert)) < 0 ||
	    env_value(env, "EHRGATE_TEST_SYSLOG_KEY", syslog_key, sizeof(syslog_key)) < 0 ||
	    env_value(env, "EHRGATE_TEST_SYSLOG_FILE", syslog_file, sizeof(syslog_file)) < 0)
		return -1;
	return 0;
}

static int suite_init(void)
{
	static char ini[4096];
	const char *sets[] = { "auth.rate_register_per_min=100000", "auth.rate_burst=100000",
		               "auth.failure_events_per_min=100000", NULL };
	struct gwp_options o = { .sets = sets, .extra_ini = ini, .keep_port = true };

	if (syslog_start() < 0) {
		fprintf(stderr, "devservices start-syslog failed (rsyslog, rsyslog-gnutls installed?)\n");
		return -1;
	}
	/* a fresh file for this binary's gateway */
	if (truncate(syslog_file, 0) < 0)
		return -1;
	snprintf(
	        ini, sizeof(ini),
	        "[atna]\nrepositories = arr1=%s\nca_file = %s\ncert = %s\nkey = %s\nhostname = ehrgate-test\n"
	        "poll_ms = 200\nsettle_ms = 300\nbackoff_max_ms = 1000\ntimeout_ms = 3000\nbatch = 7\n",
	        syslog_addr, syslog_ca, syslog_cert, syslog_key);
	return gwp_setup(&gw, &o) || gwp_start(&gw);
}

static int suite_clean(void)
{
	gwp_teardown(&gw);
	(void)devservices("stop-syslog", NULL, 0);
	return 0;
}

static int issue_token(const char *role, const char *name, char *tok, size_t cap)
{
	const char *args[] = {
		"admin", "issue-token", "--role", role, "--name", name, "-c", gw.config, NULL
	};
	int st = -1;
	size_t n;

	GUARD(gwp_run(&gw, args, false, &st, tok, cap));
	if (st != 0) {
		fprintf(stderr, "\n  issue-token exited %d (log %s)\n", st, gw.log_path);
		return -1;
	}
	n = strlen(tok);
	while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r'))
		tok[--n] = '\0';
	return 0;
}

/* One successful registration (auth.register, success) and one with a
 * token nobody issued (auth.register, failure). */
static void traffic_on(struct gw_proc *g, int rounds)
{
	for (int i = 0; i < rounds; i++) {
		char tok[256], dir[GWP_PATH + 32], name[64];
		json_t *info = NULL;

		snprintf(name, sizeof(name), "hospital-%d", n_ok);
		snprintf(dir, sizeof(dir), "%s/prof%d", gw.dir, n_ok++);
		CU_ASSERT_EQUAL_FATAL(issue_token("server", name, tok, sizeof(tok)), 0);
		if (ehr_client_register(g->base_url, g->ca_pem, tok, dir, &info) != 0) {
			fprintf(stderr, "\n  register failed: %s (log %s)\n", ehr_error_detail(),
			        g->log_path);
			CU_FAIL("a registration with an issued token failed");
		}
		json_decref(info);
		snprintf(dir, sizeof(dir), "%s/bad%d", gw.dir, n_ok);
		CU_ASSERT_NOT_EQUAL(ehr_client_register(gw.base_url, gw.ca_pem,
		                                        "notIssuedByAnyone_0123456789", dir, &info),
		                    0);
		json_decref(info);
	}
}

static void traffic(int rounds)
{
	traffic_on(&gw, rounds);
}

static long long ledger_size(void)
{
	return gwp_db_scalar(&gw, "SELECT count(*) FROM ledger_entries");
}

/* Distinct indices in rsyslog's file (a line's index="N"). */
static long long received(void)
{
	FILE *f = fopen(syslog_file, "r");
	static char line[1 << 17];
	char *seen;
	long long n = 0, cap = 1 << 16;

	if (f == NULL)
		return -1;
	seen = calloc((size_t)cap, 1);
	while (seen && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, " index=\"");
		long long idx = p ? strtoll(p + 8, NULL, 10) : -1;
		if (idx >= 0 && idx < cap && !seen[idx]) {
			seen[idx] = 1;
			n++;
		}
	}
	free(seen);
	fclose(f);
	return n;
}

/* Wait (30 s at most) until every ledger index is in the file. */
static void wait_all_received(const char *when)
{
	long long want = 0, got = 0;

	for (int i = 0; i < 300; i++) {
		want = ledger_size();
		got = received();
		if (want > 0 && got == want)
			return;
		gwp_sleep_ms(100);
	}
	fprintf(stderr, "\n  %s: %lld of %lld ledger indices received\n", when, got, want);
	CU_FAIL("not every ledger index arrived");
}

/* The ledger as check_atna.py reads it: [{"seq","type","actor","subject","payload"}]. */
static int dump_entries(const char *path)
{
	PGconn *c = PQconnectdb(gw.db.super_ci);
	PGresult *r = NULL;
	json_t *arr = json_array();
	int err = -1;

	if (PQstatus(c) != CONNECTION_OK)
		goto out;
	r = PQexecParams(c, "SELECT entry FROM ledger_entries ORDER BY seq", 0, NULL, NULL, NULL, NULL, 1);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		goto out;
	for (int i = 0; i < PQntuples(r); i++) {
		struct ledger_entry e;
		json_t *pl;
		if (ledger_entry_decode(&e, (const uint8_t *)PQgetvalue(r, i, 0),
		                        (size_t)PQgetlength(r, i, 0), false) < 0)
			goto out;
		pl = json_loadb((const char *)e.payload, e.payload_len, 0, NULL);
		json_array_append_new(arr, json_pack("{s:I,s:s,s:s,s:s,s:o}", "seq", (json_int_t)e.seq,
		                                     "type", e.type, "actor", e.actor, "subject", e.subject,
		                                     "payload", pl ? pl : json_object()));
	}
	err = json_dump_file(arr, path, 0);
out:
	PQclear(r);
	PQfinish(c);
	json_decref(arr);
	return err;
}

static void check_file(void)
{
	char entries[GWP_PATH + 32], out[16384];
	const char *argv[] = { "/usr/bin/python3",
		               EHRGATE_SOURCE_DIR "/tests/integration/atna/check_atna.py",
		               syslog_file,
		               entries,
		               "ehrgate.local/ledger",
		               NULL };
	int rc;

	snprintf(entries, sizeof(entries), "%s/entries.json", gw.dir);
	CU_ASSERT_EQUAL_FATAL(dump_entries(entries), 0);
	rc = ehr_test_run(out, sizeof(out), argv);
	fprintf(stderr, "\n%s", out);
	CU_ASSERT_EQUAL(rc, 0);
}

static void test_every_index_across_restarts(void)
{
	traffic(4);
	wait_all_received("while rsyslog runs");

	/* rsyslog goes away mid-stream: the feed keeps the entries for later */
	CU_ASSERT_EQUAL_FATAL(devservices("stop-syslog", NULL, 0), 0);
	traffic(3);
	gwp_sleep_ms(1500); /* the sender finds the repository gone and backs off */
	CU_ASSERT(received() < ledger_size());
	gwp_assert_healthy(&gw); /* requests never wait for the feed */
	CU_ASSERT_EQUAL_FATAL(syslog_start(), 0);
	traffic(2);
	wait_all_received("after rsyslog restarted");

	/* the gateway restarts: it resumes from its cursor */
	CU_ASSERT_EQUAL_FATAL(gwp_stop(&gw, NULL, 0), 0);
	CU_ASSERT(gwp_db_scalar(&gw, "SELECT count(*) FROM atna_cursor WHERE repository = 'arr1'") == 1);
	CU_ASSERT_EQUAL_FATAL(gwp_start(&gw), 0);
	traffic(2);
	wait_all_received("after the gateway restarted");

	/* both down, entries made while the gateway is gone too */
	CU_ASSERT_EQUAL_FATAL(gwp_stop(&gw, NULL, 0), 0);
	CU_ASSERT_EQUAL_FATAL(devservices("stop-syslog", NULL, 0), 0);
	CU_ASSERT_EQUAL_FATAL(gwp_start(&gw), 0);
	traffic(2);
	CU_ASSERT_EQUAL_FATAL(syslog_start(), 0);
	wait_all_received("after both restarted");
	check_file();
}

/* The cursor settles: after a quiet moment it holds the last index. */
static void test_cursor_catches_up(void)
{
	long long cur = -2, head = -1;

	traffic(1);
	wait_all_received("cursor test");
	for (int i = 0; i < 50; i++) {
		head = ledger_size() - 1;
		cur = gwp_db_scalar(&gw, "SELECT last_seq FROM atna_cursor WHERE repository = 'arr1'");
		if (cur == head)
			break;
		gwp_sleep_ms(100);
	}
	CU_ASSERT_EQUAL(cur, head);
}

/* Metrics: sent counts up, lag comes back to 0. */
static void test_metrics(void)
{
	struct gwp_resp res;

	EHR_ASSERT_OK(gwp_metrics(&gw, &res));
	CU_ASSERT_EQUAL(res.status, 200);
	CU_ASSERT(gwp_metric(res.body, "\nehrgate_atna_sent_total ") > 0);
	CU_ASSERT(strstr(res.body, "\nehrgate_atna_lag_entries ") != NULL);
	CU_ASSERT(strstr(res.body, "\nehrgate_atna_errors_total ") != NULL);
	gwp_resp_free(&res);
}

/* A second gateway on the same database and ledger, with its own [atna]
 * overrides; it sends to repository `name`, which nothing else sends to. */
static int start_second(struct gw_proc *b, const char *name, const char *extra1, const char *extra2)
{
	static char repo[256];
	const char *sets[] = { repo, extra1, extra2, NULL };

	snprintf(repo, sizeof(repo), "atna.repositories=%s=%s", name, syslog_addr);
	gwp_instance(b, &gw);
	return gwp_start_with(b, sets);
}

static long long cursor_rows(const char *name)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM atna_cursor WHERE repository = '%s' AND last_seq >= 0", name);
	return gwp_db_scalar(&gw, sql);
}

static uint64_t errors_of(struct gw_proc *b)
{
	struct gwp_resp res;
	uint64_t n = 0;

	if (gwp_metrics(b, &res) == 0 && res.status == 200)
		n = gwp_metric(res.body, "\nehrgate_atna_errors_total ");
	gwp_resp_free(&res);
	return n;
}

/* A repository whose certificate our CA did not issue: the handshake fails,
 * nothing counts as sent, the error is counted, requests are unaffected. */
static void test_repository_not_trusted(void)
{
	static char ca[GWP_PATH + 32];
	struct gw_proc b;

	snprintf(ca, sizeof(ca), "atna.ca_file=%s", gw.ca_pem); /* the gateway's own CA */
	CU_ASSERT_EQUAL_FATAL(start_second(&b, "wrongca", ca, NULL), 0);
	traffic(1);
	gwp_sleep_ms(2000);
	CU_ASSERT(errors_of(&b) > 0);
	CU_ASSERT_EQUAL(cursor_rows("wrongca"), 0);
	gwp_assert_healthy(&b);
	gwp_teardown(&b);
}

/* A client certificate the repository does not accept (x509/certvalid): with
 * TLS 1.3 our writes go out before the refusal arrives, so only the settle
 * rule keeps the cursor from claiming them. */
static void test_client_cert_refused(void)
{
	static char cert[GWP_PATH + 32], key[GWP_PATH + 32];
	struct gw_proc b;

	snprintf(cert, sizeof(cert), "atna.cert=%s/server.pem", gw.state_dir);
	snprintf(key, sizeof(key), "atna.key=%s/server.key", gw.state_dir);
	CU_ASSERT_EQUAL_FATAL(start_second(&b, "badcert", cert, key), 0);
	traffic(1);
	gwp_sleep_ms(2500);
	CU_ASSERT(errors_of(&b) > 0);
	CU_ASSERT_EQUAL(cursor_rows("badcert"), 0);
	gwp_teardown(&b);
}

/* Two instances with the same repository: one advisory lock, one sender;
 * when it stops, the other takes over from the cursor. */
static void test_one_sender_per_repository(void)
{
	struct gw_proc b;
	long long locks = -1;

	gwp_instance(&b, &gw);
	CU_ASSERT_EQUAL_FATAL(gwp_start_with(&b, NULL), 0);
	traffic(1);
	wait_all_received("two instances");
	locks = gwp_db_scalar(&gw, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = "
	                           "1096043073 AND granted");
	CU_ASSERT_EQUAL(locks, 1);
	CU_ASSERT_EQUAL_FATAL(gwp_stop(&gw, NULL, 0), 0);
	traffic_on(&b, 2);
	wait_all_received("after the first instance stopped");
	gwp_teardown(&b);
	CU_ASSERT_EQUAL_FATAL(gwp_start(&gw), 0);
	check_file();
}

/* A feed that is on needs its TLS files: refused by the configuration check
 * when they are not set, and at start when they do not load. */
static void test_config_refusals(void)
{
	char repo[128], out[4096];
	const char *a1[] = { "serve", "--set", repo, "--set", "atna.ca_file=", "--print-config", NULL };
	const char *a2[] = { "serve", "--set", repo, "--set", "atna.ca_file=/nonexistent/ca.pem", NULL };
	const char *a3[] = { "serve", "--set", "atna.repositories=a=host", "--print-config", NULL };
	int st = -1;

	snprintf(repo, sizeof(repo), "atna.repositories=other=%s", syslog_addr);
	EHR_ASSERT_OK(gwp_run(&gw, a1, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 1);
	EHR_ASSERT_OK(gwp_run(&gw, a2, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 1);
	EHR_ASSERT_OK(gwp_run(&gw, a3, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 1);
	CU_ASSERT_EQUAL(cursor_rows("other"), 0);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("atna", suite_init, suite_clean,
	              { "every_index_across_restarts", test_every_index_across_restarts },
	              { "cursor_catches_up", test_cursor_catches_up }, { "metrics", test_metrics },
	              { "repository_not_trusted", test_repository_not_trusted },
	              { "client_cert_refused", test_client_cert_refused },
	              { "config_refusals", test_config_refusals },
	              { "one_sender_per_repository", test_one_sender_per_repository });
}

EHR_TEST_MAIN(register_suites)
