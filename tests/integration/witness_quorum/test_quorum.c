/*
 * test_quorum.c - quorum publication with real witnesses (docs/LEDGER.md §13).
 *
 * Three `ehrwitness serve` processes over TLS, one `ehrgate serve` (and a
 * second instance on the same database), real PostgreSQL. Entries are
 * appended by a separate process with the ledger key (ledger_append_helper,
 * as another instance would), so appends and publication are independent.
 *
 *  - 3 of 3 witnesses up: the head gets published with three cosignatures;
 *  - one stopped (by PID): published with two; two stopped: nothing new is
 *    published, /readyz says paused, appends go on; witnesses restarted:
 *    publication resumes by itself;
 *  - ehrctl audit verify --witness ... --quorum K accepts the published
 *    checkpoint and refuses it with a wrong witness key, naming the witness;
 *  - two gateway instances on one database: one runs the rounds, the
 *    published head never goes back, the other takes over when it dies;
 *  - an operator fork (the ledger rebuilt from the same key, as a database
 *    superuser would): the witnesses refuse it (422), nothing new is
 *    published, the refusal is logged and counted, and ehrctl audit verify
 *    fails naming the point.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "client/client.h"
#include "ledger/ledger.h"
#include "tests/harness/gwproc.h"
#include "tests/harness/harness.h"
#include "tests/harness/witproc.h"

#define NW 3
#define ORIGIN "ehrgate.test/ledger" /* the append helper's origin (ltest.h) */

extern char **environ;

static struct gw_proc gw;
static struct wit_proc W[NW];
static char dir_aud[GWP_PATH + 16];

/* ------------------------------------------------------------ helpers */

static const char *bin_path(const char *env, const char *dflt)
{
	const char *b = ehr_test_env(env);
	return b ? b : dflt;
}

static long long db_scalar(const char *sql)
{
	return gwp_db_scalar(&gw, sql);
}

static long long head_size(void)
{
	return db_scalar("SELECT coalesce(max(tree_size), 0) FROM ledger_blocks");
}

static long long published_size(void)
{
	return db_scalar("SELECT tree_size FROM ledger_published_head");
}

/* The published note (text) into out. */
static void published_note(char *out, size_t cap)
{
	PGconn *c = ehr_testdb_connect(gw.db.super_ci);
	PGresult *r = c ? PQexec(c, "SELECT p.note FROM ledger_published p JOIN ledger_published_head h "
	                            "USING (tree_size)")
	                : NULL;

	out[0] = '\0';
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
}

/* Append n entries from a separate process with the ledger key. */
static int append(int n)
{
	char count[16], key[GWP_PATH + 16];
	const char *argv[] = { LEDGER_HELPER, gw.db.app_ci, key, count, "4", NULL };

	snprintf(count, sizeof(count), "%d", n);
	snprintf(key, sizeof(key), "%s/ledger.key", gw.state_dir);
	return ehr_test_run(NULL, 0, argv);
}

/* Wait (at most ms) until the published size reaches the head. */
static bool wait_published(long ms)
{
	for (long t = 0; t < ms; t += 50) {
		long long h = head_size();
		if (h > 0 && published_size() == h)
			return true;
		gwp_sleep_ms(50);
	}
	return false;
}

static int count_lines(const char *note, const char *prefix)
{
	int n = 0;

	for (const char *p = strstr(note, prefix); p; p = strstr(p + 1, prefix))
		n++;
	return n;
}

/* The number of cosignature lines of witness i in a note. */
static bool has_line(const char *note, int i)
{
	char line[300];

	snprintf(line, sizeof(line), "\xe2\x80\x94 %s ", W[i].name);
	return strstr(note, line) != NULL;
}

/* ------------------------------------------------------------ ehrctl */

static int ctl(const char *args, char *out, size_t cap)
{
	const char *bin = bin_path("EHRGATE_CTL", "client/ehrctl");
	char cmd[8192];
	FILE *f;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' --dir '%s' %s 2>&1", bin, dir_aud, args);
	f = popen(cmd, "r");
	if (f == NULL)
		return -1;
	n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int register_auditor(void)
{
	char tok[256];
	const char *args[] = { "admin",     "issue-token", "--role",  "auditor", "--name",
		               "auditor-q", "-c",          gw.config, NULL };
	json_t *info = NULL;
	int st = -1;

	GUARD(gwp_run(&gw, args, false, &st, tok, sizeof(tok)));
	if (st != 0)
		return ehr_error_set(EHR_ERR_INTERNAL, "issue-token exited %d", st);
	tok[strcspn(tok, "\r\n")] = '\0';
	snprintf(dir_aud, sizeof(dir_aud), "%s/aud", gw.dir);
	GUARD(ehr_client_register(gw.base_url, gw.ca_pem, tok, dir_aud, &info));
	json_decref(info);
	return 0;
}

/* "--witness NAME=VKEY" for every witness, into out. */
static void witness_args(char *out, size_t cap)
{
	size_t n = 0;

	out[0] = '\0';
	for (int i = 0; i < NW; i++)
		n += (size_t)snprintf(out + n, cap - n, " --witness '%s=%s'", W[i].name, W[i].vkey);
}

/* ------------------------------------------------------------ setup */

static char witness_set[4096];
static char cafile[GWP_PATH + 20];
static char log_vkey[1024];

static int suite_init(void)
{
	char out[1024], list[3072];
	FILE *caf;
	const char *vk_args[] = { "ledger", "vkey", "-c", gw.config, "--set", "ledger.origin=" ORIGIN, NULL };
	const char *sets[] = { "ledger.origin=" ORIGIN, NULL };
	struct gwp_options o = { .sets = sets, .keep_port = true };
	size_t n = 0;
	int st = -1;

	if (gwp_setup(&gw, &o) < 0 || gwp_run(&gw, vk_args, false, &st, out, sizeof(out)) < 0 || st != 0) {
		fprintf(stderr, "gateway setup: %s (status %d)\n", ehr_error_detail(), st);
		return 1;
	}
	out[strcspn(out, "\n")] = '\0';
	snprintf(log_vkey, sizeof(log_vkey), "%s", out);
	list[0] = '\0';
	/* three witnesses, each with its own TLS CA: the gateway trusts all three */
	snprintf(cafile, sizeof(cafile), "%s/witness-ca.pem", gw.dir);
	caf = fopen(cafile, "w");
	if (caf == NULL)
		return 1;
	for (int i = 0; i < NW; i++) {
		char name[64];
		struct witp_options wo = { .name = name, .origin = ORIGIN, .log_vkey = out };
		struct ehr_buf pem = EHR_BUF_INIT(1 << 20);
		snprintf(name, sizeof(name), "w%d.test/witness", i);
		if (witp_setup(&W[i], &wo) < 0 || witp_start(&W[i]) < 0 ||
		    ehr_file_read(&pem, W[i].ca_pem, pem.max) < 0) {
			fprintf(stderr, "witness %d: %s\n", i, ehr_error_detail());
			fclose(caf);
			return 1;
		}
		fwrite(pem.data, 1, pem.len, caf);
		ehr_buf_free(&pem);
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s %s", i ? ", " : "", W[i].base_url,
		                      W[i].vkey);
	}
	fclose(caf);
	snprintf(witness_set, sizeof(witness_set), "witness.witnesses=%s", list);
	{
		char ca[GWP_PATH + 64];
		const char *extra[] = { witness_set,
			                "witness.quorum=2",
			                ca,
			                "witness.interval_ms=100",
			                "witness.timeout_ms=1000",
			                NULL };
		snprintf(ca, sizeof(ca), "witness.ca_file=%s", cafile);
		if (gwp_start_with(&gw, extra) < 0) {
			fprintf(stderr, "gateway start: %s\n", ehr_error_detail());
			return 1;
		}
	}
	if (register_auditor() < 0) {
		fprintf(stderr, "auditor: %s\n", ehr_error_detail());
		return 1;
	}
	return 0;
}

static int suite_clean(void)
{
	for (int i = 0; i < NW; i++) {
		witp_teardown(&W[i]);
	}
	gwp_teardown(&gw);
	return 0;
}

/* /readyz's publication state ("ok", "paused", "standby") of p into out. */
static void readyz_state(const struct gw_proc *p, char *out, size_t cap)
{
	struct gwp_resp r;
	json_t *j = NULL;

	out[0] = '\0';
	if (gwp_get(p, "/readyz", &r) == 0 && (j = gwp_resp_json(&r)) != NULL)
		snprintf(out, cap, "%s",
		         json_string_value(json_object_get(json_object_get(j, "checks"), "publication"))
		                 ?: "");
	json_decref(j);
	gwp_resp_free(&r);
}

static uint64_t metric(const struct gw_proc *p, const char *series)
{
	struct gwp_resp r;
	uint64_t v = 0;

	if (gwp_metrics(p, &r) == 0)
		v = gwp_metric(r.body, series);
	gwp_resp_free(&r);
	return v;
}

/* ------------------------------------------------------------ tests */

static void test_three_of_three(void)
{
	char note[16384];
	char st[32];

	CU_ASSERT_EQUAL_FATAL(append(40), 0);
	CU_ASSERT_FATAL(wait_published(10000));
	published_note(note, sizeof(note));
	for (int i = 0; i < NW; i++)
		CU_ASSERT(has_line(note, i));
	CU_ASSERT_EQUAL(count_lines(note, "\xe2\x80\x94 "), 1 + NW);
	/* the note carries a verifiable quorum of all three */
	{
		struct ledger_note_key k[NW];
		uint8_t log_pub[32];
		char path[GWP_PATH + 16];
		snprintf(path, sizeof(path), "%s/ledger.pub", gw.state_dir);
		EHR_ASSERT_OK(ledger_key_load_public(log_pub, path));
		for (int i = 0; i < NW; i++) {
			char name[128];
			k[i].name = W[i].name;
			EHR_ASSERT_OK(ledger_cosig_vkey_parse(W[i].vkey, strlen(W[i].vkey), name,
			                                      sizeof(name), k[i].pub));
		}
		EHR_ASSERT_OK(ledger_note_quorum(note, strlen(note), ORIGIN, log_pub, k, NW, NW, NULL));
	}
	readyz_state(&gw, st, sizeof(st));
	CU_ASSERT_STRING_EQUAL(st, "ok");
	CU_ASSERT_EQUAL(metric(&gw, "\nehrgate_publication_quorum "), 1);
	CU_ASSERT_EQUAL((long long)metric(&gw, "\nehrgate_publication_published_size "), published_size());
}

static void test_two_of_three(void)
{
	char note[16384];

	EHR_ASSERT_OK(witp_stop(&W[2], NULL));
	CU_ASSERT_EQUAL_FATAL(append(40), 0);
	CU_ASSERT_FATAL(wait_published(10000));
	published_note(note, sizeof(note));
	CU_ASSERT(has_line(note, 0));
	CU_ASSERT(has_line(note, 1));
	CU_ASSERT_FALSE(has_line(note, 2));
	CU_ASSERT(metric(&gw, "\nehrgate_witness_errors_total{witness=\"w2.test/witness\"} ") > 0);
}

static void test_one_of_three_pauses(void)
{
	long long before;
	char st[32];

	EHR_ASSERT_OK(witp_stop(&W[1], NULL));
	before = published_size();
	/* appends go on while publication cannot */
	CU_ASSERT_EQUAL_FATAL(append(40), 0);
	CU_ASSERT_EQUAL(append(40), 0);
	gwp_sleep_ms(1500);
	CU_ASSERT(head_size() >= before + 80);
	CU_ASSERT_EQUAL(published_size(), before);
	readyz_state(&gw, st, sizeof(st));
	CU_ASSERT_STRING_EQUAL(st, "paused");
	CU_ASSERT_EQUAL(metric(&gw, "\nehrgate_publication_quorum "), 0);
	CU_ASSERT(metric(&gw, "\nehrgate_publication_lag_entries ") >= 80);
	CU_ASSERT(metric(&gw, "\nehrgate_publication_rounds_total{outcome=\"below_quorum\"} ") > 0);
}

static void test_resumes(void)
{
	char note[16384], st[32];

	CU_ASSERT_EQUAL_FATAL(witp_start(&W[1]), 0);
	CU_ASSERT_EQUAL_FATAL(witp_start(&W[2]), 0);
	CU_ASSERT_FATAL(wait_published(10000)); /* by itself: nothing was appended */
	CU_ASSERT_EQUAL(append(10), 0);
	CU_ASSERT(wait_published(10000));
	published_note(note, sizeof(note));
	CU_ASSERT_EQUAL(count_lines(note, "\xe2\x80\x94 "), 1 + NW);
	readyz_state(&gw, st, sizeof(st));
	CU_ASSERT_STRING_EQUAL(st, "ok");
}

/* `ehrctl receipt get INDEX --wait W` into file; its exit status. */
static int receipt_get(long long index, int wait_s, const char *file, char *out, size_t cap)
{
	char args[GWP_PATH + 128];

	snprintf(args, sizeof(args), "receipt get %lld --wait %d -o '%s'", index, wait_s, file);
	return ctl(args, out, cap);
}

/* Receipts (LEDGER.md §11) against real witnesses: one published with the
 * quorum verifies offline with the witness keys; an entry that no published
 * checkpoint covers yet (publication paused) is 202 pending, then verifies
 * once the witnesses are back. */
static void test_receipts_with_witnesses(void)
{
	char file[GWP_PATH + 32], args[8192], wargs[4096], out[8192];
	long long idx;

	snprintf(file, sizeof(file), "%s/r.tlog-proof", gw.dir);
	witness_args(wargs, sizeof(wargs));
	CU_ASSERT_FATAL(wait_published(10000));
	idx = head_size() - 1;
	CU_ASSERT_EQUAL_FATAL(receipt_get(idx, 10, file, out, sizeof(out)), 0);
	snprintf(args, sizeof(args), "receipt verify '%s' --log-key '%s'%s --quorum 2", file, log_vkey,
	         wargs);
	CU_ASSERT_EQUAL(ctl(args, out, sizeof(out)), 0);
	if (strstr(out, "NO_QUORUM") || strstr(out, "BAD"))
		fprintf(stderr, "\n  receipt verify: %s\n", out);

	/* two witnesses down: the new entries stay unpublished, their receipt pending */
	EHR_ASSERT_OK(witp_stop(&W[1], NULL));
	EHR_ASSERT_OK(witp_stop(&W[2], NULL));
	CU_ASSERT_EQUAL_FATAL(append(5), 0);
	idx = head_size() - 1;
	{
		int rc = receipt_get(idx, 0, file, out, sizeof(out));
		CU_ASSERT_EQUAL(rc, 3); /* no refusal (202), but no receipt */
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "not covered by a published checkpoint yet"));
		if (rc != 3)
			fprintf(stderr, "\n  receipt get %lld (published %lld): %d %s\n", idx,
			        published_size(), rc, out);
	}
	CU_ASSERT_EQUAL_FATAL(witp_start(&W[1]), 0);
	CU_ASSERT_EQUAL_FATAL(witp_start(&W[2]), 0);
	CU_ASSERT_EQUAL(receipt_get(idx, 15, file, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(ctl(args, out, sizeof(out)), 0);
	/* the same receipt with a quorum of three keys none of which cosigned: refused */
	snprintf(args, sizeof(args), "receipt verify '%s' --log-key '%s' --witness 'x1.test/w=%s' --quorum 1",
	         file, log_vkey, W[0].vkey);
	CU_ASSERT_EQUAL(ctl(args, out, sizeof(out)), 2);
}

static void test_verify_with_witnesses(void)
{
	char args[8192], wargs[4096], out[8192], other[512];
	struct ehr_buf vk = EHR_BUF_INIT(512);
	uint8_t pub[32];
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	witness_args(wargs, sizeof(wargs));
	snprintf(args, sizeof(args),
	         "audit verify --ledger-key '%s/ledger.pub' --state '%s/aud-state.json'%s --quorum 2",
	         gw.state_dir, gw.dir, wargs);
	CU_ASSERT_EQUAL(ctl(args, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"ok\":true"));
	if (strstr(out, "\"ok\":true") == NULL)
		fprintf(stderr, "\n  verify: %s\n", out);

	/* w0's key replaced by another: with all three required, w0 is named */
	CU_ASSERT_PTR_NOT_NULL_FATAL(k);
	EHR_ASSERT_OK(ledger_key_raw_public(pub, k));
	EHR_ASSERT_OK(ledger_cosig_vkey_format(&vk, W[0].name, pub));
	snprintf(other, sizeof(other), "%s", ehr_buf_cstr(&vk));
	snprintf(args, sizeof(args),
	         "audit verify --ledger-key '%s/ledger.pub' --state '%s/aud-state2.json' --witness '%s=%s' "
	         "--witness '%s=%s' --witness '%s=%s' --quorum 3",
	         gw.state_dir, gw.dir, W[0].name, other, W[1].name, W[1].vkey, W[2].name, W[2].vkey);
	CU_ASSERT_EQUAL(ctl(args, out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "NO_QUORUM"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, W[0].name));
	/* a checkpoint that is not published (the log's own note) has no quorum */
	ehr_buf_free(&vk);
	EVP_PKEY_free(k);
	/* usage errors */
	CU_ASSERT_EQUAL(ctl("audit verify --ledger-key x --quorum 2", out, sizeof(out)), 2);
	snprintf(args, sizeof(args), "audit verify --ledger-key x --witness 'other=%s'", W[0].vkey);
	CU_ASSERT_EQUAL(ctl(args, out, sizeof(out)), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "the vkey is for"));
}

static void test_two_instances(void)
{
	struct gw_proc b;
	char sa[32], sb[32], ca[GWP_PATH + 64];
	const char *extra[] = { witness_set, "witness.quorum=2", ca, "witness.interval_ms=100", NULL };
	long long last = published_size();
	pid_t helper;
	char count[16], key[GWP_PATH + 16];
	const char *argv[] = { LEDGER_HELPER, gw.db.app_ci, key, count, "4", NULL };
	bool monotonic = true;

	snprintf(ca, sizeof(ca), "witness.ca_file=%s", cafile);
	gwp_instance(&b, &gw);
	CU_ASSERT_EQUAL_FATAL(gwp_start_with(&b, extra), 0);
	gwp_sleep_ms(500);
	readyz_state(&gw, sa, sizeof(sa));
	readyz_state(&b, sb, sizeof(sb));
	CU_ASSERT_STRING_EQUAL(sa, "ok");
	CU_ASSERT_STRING_EQUAL(sb, "standby");
	/* appends from another process while we sample the published head */
	snprintf(count, sizeof(count), "%d", 400);
	snprintf(key, sizeof(key), "%s/ledger.key", gw.state_dir);
	{
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		CU_ASSERT_EQUAL_FATAL(
		        posix_spawn(&helper, LEDGER_HELPER, &fa, NULL, (char *const *)argv, environ), 0);
		posix_spawn_file_actions_destroy(&fa);
	}
	for (int t = 0; t < 60; t++) {
		long long p = published_size();
		if (p < last)
			monotonic = false;
		last = p;
		gwp_sleep_ms(50);
	}
	waitpid(helper, NULL, 0);
	CU_ASSERT(monotonic);
	CU_ASSERT(wait_published(10000));
	/* the active instance dies: the other takes over */
	CU_ASSERT_EQUAL(gwp_kill(&gw), 0);
	CU_ASSERT_EQUAL(append(20), 0);
	CU_ASSERT(wait_published(10000));
	readyz_state(&b, sb, sizeof(sb));
	CU_ASSERT_STRING_EQUAL(sb, "ok");
	CU_ASSERT_EQUAL(db_scalar("SELECT count(*) FROM ledger_published p WHERE p.tree_size > "
	                          "(SELECT tree_size FROM ledger_published_head)"),
	                0);
	gwp_teardown(&b);
	{
		const char *again[] = { witness_set,
			                "witness.quorum=2",
			                ca,
			                "witness.interval_ms=100",
			                "witness.timeout_ms=1000",
			                NULL };
		CU_ASSERT_EQUAL_FATAL(gwp_start_with(&gw, again), 0);
	}
}

static void test_operator_fork(void)
{
	char args[8192], wargs[4096], out[8192], log[1 << 16];
	long long before, refused;
	FILE *f;
	size_t n;

	CU_ASSERT_FATAL(wait_published(10000));
	before = published_size();
	refused = (long long)metric(&gw, "\nehrgate_witness_refusals_by_status_total{status=\"422\"} ");
	/* The insider rebuilds the ledger from the same key: everything goes,
	 * a different history of more entries is signed in its place. */
	CU_ASSERT_EQUAL_FATAL(gwp_db_exec(&gw, "SET session_replication_role = replica; "
	                                       "TRUNCATE ledger_entries, ledger_blocks"),
	                      0);
	CU_ASSERT_EQUAL_FATAL(append((int)before + 30), 0);
	CU_ASSERT(head_size() > before);
	gwp_sleep_ms(2000);
	/* refused by the witnesses: nothing new is published */
	CU_ASSERT_EQUAL(published_size(), before);
	CU_ASSERT((long long)metric(&gw, "\nehrgate_witness_refusals_by_status_total{status=\"422\"} ") >
	          refused);
	f = fopen(gw.log_path, "r");
	n = f ? fread(log, 1, sizeof(log) - 1, f) : 0;
	log[n] = '\0';
	if (f) {
		/* the tail of the log: the refusals are recent */
		fseek(f, 0, SEEK_END);
		long end = ftell(f);
		if (end > (long)sizeof(log) - 1) {
			fseek(f, end - (long)sizeof(log) + 1, SEEK_SET);
			n = fread(log, 1, sizeof(log) - 1, f);
			log[n] = '\0';
		}
		fclose(f);
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "witness.refused"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "HTTP 422"));
	/* the auditor with the witness keys: the cosigned head does not match
	 * the rewritten entries, and verify names where */
	witness_args(wargs, sizeof(wargs));
	snprintf(args, sizeof(args),
	         "audit verify --ledger-key '%s/ledger.pub' --state '%s/aud-state.json'%s --quorum 2",
	         gw.state_dir, gw.dir, wargs);
	CU_ASSERT_EQUAL(ctl(args, out, sizeof(out)), 1);
	CU_ASSERT(strstr(out, "FORK") != NULL || strstr(out, "REWRITTEN") != NULL);
	if (strstr(out, "FORK") == NULL && strstr(out, "REWRITTEN") == NULL)
		fprintf(stderr, "\n  verify after the fork: %s\n", out);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("quorum publication", suite_init, suite_clean,
	              { "3 of 3 witnesses", test_three_of_three },
	              { "2 of 3 (one stopped)", test_two_of_three },
	              { "1 of 3: paused, appends go on", test_one_of_three_pauses },
	              { "witnesses back: resumes by itself", test_resumes },
	              { "receipts with the witnesses' cosignatures", test_receipts_with_witnesses },
	              { "ehrctl audit verify --witness --quorum", test_verify_with_witnesses },
	              { "two instances, one published head", test_two_instances },
	              { "operator fork refused and visible", test_operator_fork });
}

EHR_TEST_MAIN(register_suites)
