/*
 * test_witness.c - real `ehrwitness serve` processes over real TLS
 * (tests/harness/witproc), driven as a log would drive them: C2SP
 * tlog-witness add-checkpoint with checkpoints signed by a test log key and
 * consistency proofs computed from an in-memory tree.
 *
 * Covers: a cosigning round (the reply verifies as a cosignature/v1 and the
 * note then meets a quorum of 1), every refusal (404, 403, 409 with its
 * text/x.tlog.size body, 422, 400, 413), growth, two racing requests (a
 * failpoint holds the first inside the per-origin lock), and kill -9 around
 * the persist followed by a restart (state intact, rollback refused).
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "ledger/ledger.h"
#include "tests/harness/harness.h"
#include "tests/harness/witproc.h"

#define ORIGIN "ehrgate.test/witnessed"
#define MAX_LEAVES 256

static struct wit_proc wit;
static EVP_PKEY *log_key, *other_key;
static uint8_t log_pub[32], wit_pub[32];
static uint8_t leaves[MAX_LEAVES][LEDGER_HASH_LEN];

static int suite_init(void)
{
	struct ehr_buf vk = EHR_BUF_INIT(512);
	char name[256];
	int err;

	for (int i = 0; i < MAX_LEAVES; i++) {
		char leaf[32];

		if (ehr_fmt(leaf, sizeof(leaf), "leaf %d", i) < 0)
			return 1;
		merkle_leaf_hash(leaves[i], (const uint8_t *)leaf, strlen(leaf));
	}
	log_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	other_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (log_key == NULL || other_key == NULL || ledger_key_raw_public(log_pub, log_key) < 0 ||
	    ledger_vkey_format(&vk, ORIGIN, log_pub) < 0)
		return 1;
	{
		struct witp_options o = { .name = "w1.test/witness",
			                  .origin = ORIGIN,
			                  .log_vkey = ehr_buf_cstr(&vk) };

		err = witp_setup(&wit, &o);
	}
	ehr_buf_free(&vk);
	if (err < 0 || ledger_cosig_vkey_parse(wit.vkey, strlen(wit.vkey), name, sizeof(name), wit_pub) < 0) {
		fprintf(stderr, "witness setup: %s\n", ehr_error_detail());
		return 1;
	}
	if (witp_start(&wit) < 0) {
		fprintf(stderr, "witness start: %s\n", ehr_error_detail());
		return 1;
	}
	return 0;
}

static int suite_clean(void)
{
	witp_teardown(&wit);
	EVP_PKEY_free(log_key);
	EVP_PKEY_free(other_key);
	return 0;
}

/* A checkpoint note of the first `size` leaves, signed by `key` under key name `origin`. */
static void make_note(struct ehr_buf *note, const char *origin, EVP_PKEY *key, uint64_t size)
{
	uint8_t root[LEDGER_HASH_LEN], pub[32], sig[LEDGER_SIG_LEN];
	struct ehr_buf body = EHR_BUF_INIT(4096);

	CU_ASSERT_FATAL(size <= MAX_LEAVES);
	EHR_ASSERT_OK(merkle_root(root, (const uint8_t(*)[LEDGER_HASH_LEN])leaves, size));
	EHR_ASSERT_OK(ledger_key_raw_public(pub, key));
	EHR_ASSERT_OK(ledger_checkpoint_body(&body, origin, size, root));
	EHR_ASSERT_OK(ledger_ed25519_sign(sig, key, body.data, body.len));
	ehr_buf_reset(note);
	EHR_ASSERT_OK(ledger_checkpoint_note(note, origin, size, root, pub, sig));
	ehr_buf_free(&body);
}

/* The add-checkpoint body from old to size (true proof) for our log. */
static void make_request(struct ehr_buf *req, uint64_t old, uint64_t size)
{
	uint8_t proof[LEDGER_MAX_PROOF][LEDGER_HASH_LEN];
	struct ehr_buf note = EHR_BUF_INIT(8192);
	size_t n = 0;

	make_note(&note, ORIGIN, log_key, size);
	if (old > 0 && old < size)
		EHR_ASSERT_OK(merkle_prove_consistency_mem(
		        proof, &n, (const uint8_t(*)[LEDGER_HASH_LEN])leaves, old, size));
	ehr_buf_reset(req);
	EHR_ASSERT_OK(ledger_add_checkpoint_format(req, old, (const uint8_t(*)[LEDGER_HASH_LEN])proof, n,
	                                           (const char *)note.data, note.len));
	ehr_buf_free(&note);
}

static long post(const struct ehr_buf *req, struct gwp_resp *res)
{
	EHR_ASSERT_OK(witp_request(&wit, "/add-checkpoint", req->data, req->len, res));
	return res->status;
}

/* The size the witness holds, learnt the way a log learns it: old 0 -> 409 (or 200 at 0). */
static uint64_t stored_size(void)
{
	struct ehr_buf req = EHR_BUF_INIT(1u << 16);
	struct gwp_resp res;
	uint64_t size = 0;
	char ct[64];

	make_request(&req, 0, 0);
	if (post(&req, &res) == 409) {
		res.body[strcspn(res.body, "\n")] = '\0';
		EHR_ASSERT_OK(ehr_parse_u64(&size, res.body, INT64_MAX));
		CU_ASSERT(gwp_resp_header(&res, "Content-Type", ct, sizeof(ct)) == 0 &&
		          strcmp(ct, "text/x.tlog.size") == 0);
	} else {
		CU_ASSERT_EQUAL(res.status, 200);
	}
	gwp_resp_free(&res);
	ehr_buf_free(&req);
	return size;
}

/* Submit old -> size; expect 200 and a cosignature that verifies over the note. */
static void advance(uint64_t old, uint64_t size)
{
	struct ehr_buf req = EHR_BUF_INIT(1u << 16), note = EHR_BUF_INIT(16384);
	struct ledger_note_key wk = { .name = wit.name };
	struct ledger_quorum_report rep;
	struct gwp_resp res;
	uint64_t t = 0;

	make_request(&req, old, size);
	if (post(&req, &res) != 200)
		fprintf(stderr, "advance %llu -> %llu: %ld %s\n", (unsigned long long)old,
		        (unsigned long long)size, res.status, res.body);
	CU_ASSERT_EQUAL_FATAL(res.status, 200);
	/* one line "— <name> <base64>\n"; appended to the note it is a cosignature */
	CU_ASSERT(strncmp(res.body, "\xe2\x80\x94 w1.test/witness ", 20) == 0);
	CU_ASSERT(strchr(res.body, '\n') == res.body + res.body_len - 1);
	make_note(&note, ORIGIN, log_key, size);
	EHR_ASSERT_OK(ehr_buf_append(&note, res.body, res.body_len));
	EHR_ASSERT_OK(ledger_cosig_verify((const char *)note.data, note.len, wit.name, wit_pub, &t));
	CU_ASSERT(t > 1700000000 && t < 4000000000ULL);
	memcpy(wk.pub, wit_pub, 32);
	EHR_ASSERT_OK(
	        ledger_note_quorum((const char *)note.data, note.len, ORIGIN, log_pub, &wk, 1, 1, &rep));
	gwp_resp_free(&res);
	ehr_buf_free(&req);
	ehr_buf_free(&note);
}

static void expect(const struct ehr_buf *req, long status, const char *body_prefix)
{
	struct gwp_resp res;

	post(req, &res);
	if (res.status != status)
		fprintf(stderr, "wanted %ld, got %ld: %s\n", status, res.status, res.body);
	CU_ASSERT_EQUAL(res.status, status);
	if (body_prefix != NULL)
		CU_ASSERT(strncmp(res.body, body_prefix, strlen(body_prefix)) == 0);
	gwp_resp_free(&res);
}

static void test_round_and_growth(void)
{
	uint64_t s = stored_size();
	struct gwp_resp res;
	char path[128];
	uint8_t h[SHA256_DIGEST_LENGTH];
	char hex[65];

	CU_ASSERT_EQUAL(s, 0);
	advance(0, 5);
	advance(5, 8);
	advance(8, 8); /* same size, same root: cosigned again */
	advance(8, 13);
	advance(13, 64);
	advance(64, 100);
	CU_ASSERT_EQUAL(stored_size(), 100);
	/* the monitoring endpoint serves the latest cosigned checkpoint */
	SHA256((const uint8_t *)ORIGIN, strlen(ORIGIN), h);
	EHR_ASSERT_OK(ehr_hex_encode_fixed(hex, sizeof(hex), h, sizeof(h)));
	EHR_ASSERT_OK(ehr_fmt(path, sizeof(path), "/%s/checkpoint", hex));
	EHR_ASSERT_OK(witp_request(&wit, path, NULL, 0, &res));
	CU_ASSERT_EQUAL(res.status, 200);
	{
		struct ledger_note_key wk = { .name = wit.name };
		uint64_t size = 0;
		uint8_t root[32];

		memcpy(wk.pub, wit_pub, 32);
		EHR_ASSERT_OK(ledger_note_quorum(res.body, res.body_len, ORIGIN, log_pub, &wk, 1, 1, NULL));
		EHR_ASSERT_OK(ledger_checkpoint_verify(res.body, res.body_len, log_pub, ORIGIN, &size, root));
		CU_ASSERT_EQUAL(size, 100);
	}
	gwp_resp_free(&res);
	EHR_ASSERT_OK(witp_request(
	        &wit, "/0000000000000000000000000000000000000000000000000000000000000000/checkpoint", NULL, 0,
	        &res));
	CU_ASSERT_EQUAL(res.status, 404);
	gwp_resp_free(&res);
}

static void test_conflict(void)
{
	struct ehr_buf req = EHR_BUF_INIT(1u << 16);
	uint64_t s = stored_size();
	struct gwp_resp res;
	char ct[64], want[32];

	CU_ASSERT_FATAL(s >= 8);
	/* an old size that is not the stored one: 409, body = stored size */
	make_request(&req, s - 3, s + 2);
	CU_ASSERT_EQUAL(post(&req, &res), 409);
	EHR_ASSERT_OK(gwp_resp_header(&res, "Content-Type", ct, sizeof(ct)));
	CU_ASSERT_STRING_EQUAL(ct, "text/x.tlog.size");
	EHR_ASSERT_OK(ehr_fmt(want, sizeof(want), "%llu\n", (unsigned long long)s));
	CU_ASSERT_STRING_EQUAL(res.body, want);
	gwp_resp_free(&res);
	ehr_buf_free(&req);
}

static void test_refusals(void)
{
	struct ehr_buf req = EHR_BUF_INIT(1u << 17), note = EHR_BUF_INIT(16384);
	uint64_t s = stored_size();

	/* 404: a log the witness does not know (validly signed by its own key) */
	make_note(&note, "other.test/log", log_key, s + 1);
	EHR_ASSERT_OK(ledger_add_checkpoint_format(&req, 0, NULL, 0, (const char *)note.data, note.len));
	expect(&req, 404, NULL);
	/* 403: our origin, signed by a key the witness does not trust */
	make_note(&note, ORIGIN, other_key, s + 1);
	ehr_buf_reset(&req);
	EHR_ASSERT_OK(ledger_add_checkpoint_format(&req, s, NULL, 0, (const char *)note.data, note.len));
	expect(&req, 403, NULL);
	/* 403: the trusted key's line is there but does not verify */
	make_request(&req, s, s + 1);
	req.data[req.len - 10] = req.data[req.len - 10] == 'A' ? 'B' : 'A';
	expect(&req, 403, NULL);
	/* 422: a consistency proof that does not verify */
	make_request(&req, s, s + 5);
	{
		char *line = strchr((char *)req.data, '\n') + 1;

		line[3] = line[3] == 'A' ? 'B' : 'A';
	}
	expect(&req, 422, NULL);
	/* 422: proof lines with old size 0 */
	make_request(&req, 0, 0);
	{
		struct ehr_buf b = EHR_BUF_INIT(1u << 16);
		uint8_t p[1][32] = { { 1 } };

		make_note(&note, ORIGIN, log_key, s + 1);
		EHR_ASSERT_OK(ledger_add_checkpoint_format(&b, 0, (const uint8_t(*)[32])p, 1,
		                                           (const char *)note.data, note.len));
		expect(&b, 422, NULL);
		ehr_buf_free(&b);
	}
	/* 422: size 0 with another root than the empty tree's */
	{
		uint8_t root[32] = { 9 }, sig[64];
		struct ehr_buf body = EHR_BUF_INIT(1024);

		EHR_ASSERT_OK(ledger_checkpoint_body(&body, ORIGIN, 0, root));
		EHR_ASSERT_OK(ledger_ed25519_sign(sig, log_key, body.data, body.len));
		ehr_buf_reset(&note);
		EHR_ASSERT_OK(ledger_checkpoint_note(&note, ORIGIN, 0, root, log_pub, sig));
		ehr_buf_reset(&req);
		EHR_ASSERT_OK(
		        ledger_add_checkpoint_format(&req, 0, NULL, 0, (const char *)note.data, note.len));
		expect(&req, 422, NULL);
		ehr_buf_free(&body);
	}
	/* 422: the stored size with another root (a fork) */
	{
		uint8_t saved[32];

		memcpy(saved, leaves[0], 32);
		leaves[0][0] ^= 1;
		make_request(&req, s, s);
		memcpy(leaves[0], saved, 32);
		expect(&req, 422, NULL);
	}
	/* 400: old size above the checkpoint size (a rollback attempt) */
	make_request(&req, s, s - 1);
	expect(&req, 400, NULL);
	/* 400: malformed bodies */
	{
		static const char *const bad[] = { "old 1\n", "old x\n\nfoo\n", "garbage",
			                           "old 01\n\n" ORIGIN "\n" };

		for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++) {
			struct ehr_buf b = EHR_BUF_INIT(64);

			EHR_ASSERT_OK(ehr_buf_append_str(&b, bad[i]));
			expect(&b, 400, NULL);
			ehr_buf_free(&b);
		}
	}
	/* 400: 64 consistency proof lines (the spec allows 63) */
	make_note(&note, ORIGIN, log_key, s + 1);
	ehr_buf_reset(&req);
	EHR_ASSERT_OK(ehr_buf_printf(&req, "old %llu\n", (unsigned long long)s));
	for (int i = 0; i < 64; i++)
		EHR_ASSERT_OK(ehr_buf_append_str(&req, "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"));
	EHR_ASSERT_OK(ehr_buf_append_u8(&req, '\n'));
	EHR_ASSERT_OK(ehr_buf_append(&req, note.data, note.len));
	expect(&req, 400, NULL);
	/* 413: a body larger than any valid request */
	ehr_buf_reset(&req);
	while (req.len <= LEDGER_ADD_CHECKPOINT_MAX)
		EHR_ASSERT_OK(ehr_buf_append_str(&req, "old 1\n"));
	expect(&req, 413, NULL);
	/* nothing of that moved the witness */
	CU_ASSERT_EQUAL(stored_size(), s);
	{
		struct gwp_resp m;

		EHR_ASSERT_OK(witp_metrics(&wit, &m));
		CU_ASSERT(gwp_metric(m.body, "\nehrwitness_add_checkpoint_total{outcome=\"conflict\"} ") >=
		          1);
		CU_ASSERT(gwp_metric(m.body,
		                     "\nehrwitness_add_checkpoint_total{outcome=\"inconsistent\"} ") >= 4);
		CU_ASSERT(gwp_metric(m.body,
		                     "\nehrwitness_add_checkpoint_total{outcome=\"bad_signature\"} ") >= 2);
		CU_ASSERT(gwp_metric(m.body,
		                     "\nehrwitness_add_checkpoint_total{outcome=\"unknown_origin\"} ") >= 1);
		CU_ASSERT(gwp_metric(m.body, "\nehrwitness_add_checkpoint_total{outcome=\"cosigned\"} ") >=
		          6);
		gwp_resp_free(&m);
	}
	ehr_buf_free(&req);
	ehr_buf_free(&note);
}

struct racer {
	struct ehr_buf req;
	struct gwp_resp res;
	volatile bool done;
};

static void *race_main(void *arg)
{
	struct racer *r = arg;

	witp_request(&wit, "/add-checkpoint", r->req.data, r->req.len, &r->res);
	r->done = true;
	return NULL;
}

static bool file_exists(const char *p)
{
	return access(p, F_OK) == 0;
}

/* Restart the witness with a failpoint armed (NULL: none). */
static void restart_with(const char *failpoint, const char *release)
{
	if (wit.pid > 0)
		EHR_ASSERT_OK(witp_stop(&wit, NULL));
	if (failpoint != NULL) {
		setenv("EHRGATE_TEST_FAILPOINT", failpoint, 1);
		if (release != NULL)
			setenv("EHRGATE_TEST_FAILPOINT_RELEASE", release, 1);
	}
	EHR_ASSERT_OK(witp_start(&wit));
	unsetenv("EHRGATE_TEST_FAILPOINT");
	unsetenv("EHRGATE_TEST_FAILPOINT_RELEASE");
}

/*
 * The spec's race: A (old s -> s+3) is held inside the origin's lock after
 * it took it; B (old s -> s+7) arrives meanwhile and must wait, then be
 * checked against A's result (409, size s+3), never cosign from the stale
 * size and so never roll A back (or be rolled back).
 */
static void test_concurrent(void)
{
	struct racer a = { .req = EHR_BUF_INIT(1u << 16) }, b = { .req = EHR_BUF_INIT(1u << 16) };
	char release[GWP_PATH + 16], reached[GWP_PATH + 32], want[32];
	uint64_t s = stored_size();
	pthread_t ta, tb;

	EHR_ASSERT_OK(ehr_fmt(release, sizeof(release), "%s/release", wit.dir));
	EHR_ASSERT_OK(ehr_fmt(reached, sizeof(reached), "%s.reached", release));
	restart_with("witness.locked", release);
	make_request(&a.req, s, s + 3);
	make_request(&b.req, s, s + 7);
	CU_ASSERT_FATAL(pthread_create(&ta, NULL, race_main, &a) == 0);
	for (int i = 0; i < 1000 && !file_exists(reached); i++)
		gwp_sleep_ms(10);
	CU_ASSERT_FATAL(file_exists(reached));
	CU_ASSERT_FATAL(pthread_create(&tb, NULL, race_main, &b) == 0);
	gwp_sleep_ms(500);
	/* B waits on A's lock: neither has an answer while A is held */
	CU_ASSERT(!a.done && !b.done);
	{
		FILE *f = fopen(release, "w");

		CU_ASSERT_FATAL(f != NULL);
		fclose(f);
	}
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CU_ASSERT_EQUAL(a.res.status, 200);
	CU_ASSERT_EQUAL(b.res.status, 409);
	EHR_ASSERT_OK(ehr_fmt(want, sizeof(want), "%llu\n", (unsigned long long)(s + 3)));
	CU_ASSERT_STRING_EQUAL(b.res.body, want);
	gwp_resp_free(&a.res);
	gwp_resp_free(&b.res);
	unlink(release);
	unlink(reached);
	restart_with(NULL, NULL);
	CU_ASSERT_EQUAL(stored_size(), s + 3);
	/* B, retried from the size it was told, succeeds */
	advance(s + 3, s + 7);
	ehr_buf_free(&a.req);
	ehr_buf_free(&b.req);
}

/* kill -9 inside add-checkpoint, before and after the state file is replaced. */
static void test_crash(void)
{
	struct ehr_buf req = EHR_BUF_INIT(1u << 16);
	uint64_t s = stored_size();
	struct gwp_resp res;
	int status = 0;

	/* after persisting, before answering: the new size survives */
	restart_with("witness.persist.after", NULL);
	make_request(&req, s, s + 2);
	EHR_ASSERT_OK(witp_request(&wit, "/add-checkpoint", req.data, req.len, &res));
	CU_ASSERT_EQUAL(res.status, 0); /* no answer: the process died */
	gwp_resp_free(&res);
	EHR_ASSERT_OK(witp_wait(&wit, &status, 10000));
	CU_ASSERT_EQUAL(status, 128 + SIGKILL);
	restart_with(NULL, NULL);
	CU_ASSERT_EQUAL(stored_size(), s + 2);
	/* rollback refused: the old head again (409), a smaller tree (400) */
	make_request(&req, s, s + 1);
	expect(&req, 409, NULL);
	make_request(&req, s + 2, s + 1);
	expect(&req, 400, NULL);

	/* before persisting: nothing changed, nothing was answered */
	restart_with("witness.persist.before", NULL);
	make_request(&req, s + 2, s + 4);
	EHR_ASSERT_OK(witp_request(&wit, "/add-checkpoint", req.data, req.len, &res));
	CU_ASSERT_EQUAL(res.status, 0);
	gwp_resp_free(&res);
	EHR_ASSERT_OK(witp_wait(&wit, &status, 10000));
	CU_ASSERT_EQUAL(status, 128 + SIGKILL);
	restart_with(NULL, NULL);
	CU_ASSERT_EQUAL(stored_size(), s + 2);
	advance(s + 2, s + 4);
	/* a plain kill -9 between requests loses nothing either */
	EHR_ASSERT_OK(witp_kill(&wit));
	restart_with(NULL, NULL);
	CU_ASSERT_EQUAL(stored_size(), s + 4);
	ehr_buf_free(&req);
}

/* A second ehrwitness on the same state directory is refused. */
static void test_one_per_state_dir(void)
{
	struct wit_proc second = wit;

	second.pid = 0;
	second.port = 0;
	CU_ASSERT(witp_start(&second) < 0);
	CU_ASSERT_EQUAL(second.pid, 0);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("witness", suite_init, suite_clean, { "round_and_growth", test_round_and_growth },
	              { "conflict", test_conflict }, { "refusals", test_refusals },
	              { "concurrent", test_concurrent }, { "crash", test_crash },
	              { "one_per_state_dir", test_one_per_state_dir });
}

EHR_TEST_MAIN(register_suites)
