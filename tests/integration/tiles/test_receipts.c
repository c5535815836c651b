/*
 * test_receipts.c - receipts end to end (docs/PROTOCOL.md §16, LEDGER.md
 * §11) through a real `ehrgate serve` and the real ehrctl: an upload's and
 * a read's receipt (`record put|get --receipt`) verify offline with
 * `ehrctl receipt verify`; a flipped byte, a wrong log key, a missing
 * cosignature and a quorum of unknown keys are refused (the cosigned
 * receipts are built here with the witness key code, ledger_cosig_sign);
 * who may fetch a receipt; `Prefer: wait=N` puts the proof in the reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ledger/ledger.h"
#include "tests/harness/gwproc.h"
#include "tests/harness/harness.h"
#include "tests/integration/ehr/ehrtest.h"

static struct gw_proc gw;
static struct ehr_client *srv, *other, *pat;
static char pid[160], vkey[512], rid[CLOUD_RID_HEX];

static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static int suite_init(void)
{
	const char *args[] = { "ledger", "vkey", NULL };

	if (ehrt_gw_setup(&gw, NULL) < 0 || gwp_start(&gw) < 0 || gwp_cmd(&gw, vkey, sizeof(vkey), args) != 0)
		return 1;
	chomp(vkey);
	if (ehrt_server(&gw, "hosp", &srv) < 0 || ehrt_server(&gw, "other", &other) < 0 ||
	    ehrt_patient(&gw, srv, "MRN-R1", pid, &pat) < 0 ||
	    ehrt_grant(&gw, "MRN-R1", ehr_client_id(srv), "read,append") < 0)
		return 1;
	return 0;
}

static int suite_clean(void)
{
	ehr_client_free(srv);
	ehr_client_free(other);
	ehr_client_free(pat);
	gwp_teardown(&gw);
	return 0;
}

/* `ehrctl --dir <dir>/<who> <args>` through the shell; its exit status. */
static int ctl(const char *who, const char *args, char *out, size_t cap)
{
	char cmd[8192];

	ehrt_fmt(cmd, sizeof(cmd), "%s --dir %s/%s %s 2>&1", EHRCTL_BIN, gw.dir, who, args);
	return ehrt_sh(out, cap, cmd);
}

static int verify(const char *file, const char *extra, char *out, size_t cap)
{
	char args[4096];

	ehrt_fmt(args, sizeof(args), "receipt verify %s --log-key %s %s", file, vkey, extra ? extra : "");
	return ctl("hosp", args, out, cap);
}

static void path_of(char *out, size_t cap, const char *name)
{
	ehrt_fmt(out, cap, "%s/%s", gw.dir, name);
}

/* An upload's receipt, saved by `record put --receipt`, verifies offline. */
static void test_upload_receipt_verifies(void)
{
	char in[GWP_PATH + 32], rc1[GWP_PATH + 32], args[2048], out[8192];
	const char *p;

	path_of(in, sizeof(in), "note.txt");
	path_of(rc1, sizeof(rc1), "put.tlog-proof");
	CU_ASSERT_EQUAL_FATAL(ehr_file_write_atomic(in, "blood pressure 120/80\n", 22, 0600, false), 0);
	ehrt_fmt(args, sizeof(args), "record put %s %s --type text/plain --receipt %s", pid, in, rc1);
	CU_ASSERT_EQUAL_FATAL(ctl("hosp", args, out, sizeof(out)), 0);
	p = strstr(out, "\"record_id\": \"");
	CU_ASSERT_FATAL(p != NULL);
	memcpy(rid, p + 14, CLOUD_RID_HEX - 1);
	rid[CLOUD_RID_HEX - 1] = '\0';
	CU_ASSERT(strstr(out, "\"url\": \"/v1/receipts/") != NULL);
	CU_ASSERT_EQUAL(verify(rc1, NULL, out, sizeof(out)), 0);
	CU_ASSERT(strstr(out, "receipt OK") != NULL && strstr(out, "type ehr.store") != NULL);
	if (!strstr(out, "receipt OK"))
		fprintf(stderr, "\n%s\n", out);
}

/* A read's receipt (the ehr.read entry), also the patient's own. */
static void test_read_receipt_verifies(void)
{
	char rc2[GWP_PATH + 32], got[GWP_PATH + 32], args[2048], out[8192];

	path_of(rc2, sizeof(rc2), "get.tlog-proof");
	path_of(got, sizeof(got), "got.txt");
	ehrt_fmt(args, sizeof(args), "record get %s -o %s --receipt %s", rid, got, rc2);
	CU_ASSERT_EQUAL_FATAL(ctl("MRN-R1", args, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(verify(rc2, NULL, out, sizeof(out)), 0);
	CU_ASSERT(strstr(out, "type ehr.read") != NULL);
}

/* Each byte flipped in turn (outside the cosignature lines a verifier
 * ignores) makes the receipt fail; so does another log key. */
static void test_tampered_refused(void)
{
	char rc1[GWP_PATH + 32], bad[GWP_PATH + 32], out[8192];
	struct ehr_buf t = EHR_BUF_INIT(LEDGER_TLOG_PROOF_MAX);
	size_t where[4], nw = 0;
	const char *s;

	path_of(rc1, sizeof(rc1), "put.tlog-proof");
	path_of(bad, sizeof(bad), "bad.tlog-proof");
	CU_ASSERT_EQUAL_FATAL(ehr_file_read(&t, rc1, LEDGER_TLOG_PROOF_MAX), 0);
	s = ehr_buf_cstr(&t);
	where[nw++] = (size_t)(strstr(s, "extra ") - s) + 10; /* the entry */
	where[nw++] = (size_t)(strstr(s, "index ") - s) + 6;  /* the index */
	where[nw++] = (size_t)(strstr(s, "\n\n") - s) - 3;    /* the last proof hash */
	where[nw++] = t.len - 10;                             /* the log's signature */
	for (size_t i = 0; i < nw; i++) {
		uint8_t keep = t.data[where[i]];
		t.data[where[i]] = (uint8_t)(keep == 'A' ? 'B' : (keep == '1' ? '2' : 'A'));
		CU_ASSERT_EQUAL_FATAL(ehr_file_write_atomic(bad, t.data, t.len, 0600, false), 0);
		CU_ASSERT_EQUAL(verify(bad, NULL, out, sizeof(out)), 1);
		CU_ASSERT(strstr(out, "FAILED") != NULL || strstr(out, "invalid") != NULL);
		t.data[where[i]] = keep;
	}
	/* another log's key */
	{
		char args[2048];
		ehrt_fmt(args, sizeof(args), "receipt verify %s --log-key %s", rc1,
		         "ehrgate.local/ledger+00000000+AaSXkq6rS0mP2wXJjgZ4o1mTUpM0bGMxDd7mfbIPW9nu");
		CU_ASSERT_NOT_EQUAL(ctl("hosp", args, out, sizeof(out)), 0);
	}
	ehr_buf_free(&t);
}

/* A witness key, its cosignature vkey as a --witness argument. */
static EVP_PKEY *witness(const char *name, char *arg, size_t cap)
{
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	struct ehr_buf v = EHR_BUF_INIT(512);
	uint8_t pub[32];

	if (c && EVP_PKEY_keygen_init(c) == 1 && EVP_PKEY_keygen(c, &k) == 1 &&
	    ledger_key_raw_public(pub, k) == 0 && ledger_cosig_vkey_format(&v, name, pub) == 0)
		ehrt_fmt(arg, cap, "--witness %s=%s", name, ehr_buf_cstr(&v));
	EVP_PKEY_CTX_free(c);
	ehr_buf_free(&v);
	return k;
}

/* The receipt with cosignature lines by keys[0..n) appended to its note. */
static int cosign(const char *in, const char *outf, EVP_PKEY *const *keys, const char *const *names, size_t n)
{
	struct ehr_buf t = EHR_BUF_INIT(LEDGER_TLOG_PROOF_MAX), extra = EHR_BUF_INIT(LEDGER_MAX_BUNDLE_ENTRY);
	struct ledger_tlog_proof p;
	char origin[256];
	uint8_t root[LEDGER_HASH_LEN];
	uint64_t size;
	size_t text_len;
	int err;

	if ((err = ehr_file_read(&t, in, LEDGER_TLOG_PROOF_MAX)) < 0 ||
	    (err = ledger_tlog_proof_parse(&p, &extra, (const char *)t.data, t.len)) < 0 ||
	    (err = ledger_checkpoint_parse(p.note, p.note_len, origin, sizeof(origin), &size, root,
	                                   &text_len)) < 0)
		goto out;
	{
		/* a copy of the note's text: appending lines may move t's bytes */
		struct ehr_buf text = EHR_BUF_INIT(LEDGER_NOTE_MAX);
		err = ehr_buf_append(&text, p.note, text_len);
		for (size_t i = 0; i < n && err == 0; i++)
			err = ledger_cosig_sign(&t, keys[i], names[i], 1700000000 + i,
			                        (const char *)text.data, text.len);
		ehr_buf_free(&text);
	}
	if (err == 0)
		err = ehr_file_write_atomic(outf, t.data, t.len, 0600, false);
out:
	ehr_buf_free(&t);
	ehr_buf_free(&extra);
	return err;
}

static void test_witness_quorum(void)
{
	char rc1[GWP_PATH + 32], cos[GWP_PATH + 32], one[GWP_PATH + 32], out[8192];
	char w1[512], w2[512], w3[512], w4[512], extra[4096];
	const char *names[] = { "witness.one/w", "witness.two/w" };
	EVP_PKEY *k1 = witness(names[0], w1, sizeof(w1)), *k2 = witness(names[1], w2, sizeof(w2));
	EVP_PKEY *k3 = witness("unknown.three/w", w3, sizeof(w3)),
	         *k4 = witness("unknown.four/w", w4, sizeof(w4));
	EVP_PKEY *both[] = { k1, k2 };

	CU_ASSERT_FATAL(k1 && k2 && k3 && k4);
	path_of(rc1, sizeof(rc1), "put.tlog-proof");
	path_of(cos, sizeof(cos), "cosigned.tlog-proof");
	path_of(one, sizeof(one), "one-cosig.tlog-proof");
	EHR_ASSERT_OK(cosign(rc1, cos, both, names, 2));
	EHR_ASSERT_OK(cosign(rc1, one, both, names, 1));

	ehrt_fmt(extra, sizeof(extra), "%s %s --quorum 2", w1, w2);
	CU_ASSERT_EQUAL(verify(cos, extra, out, sizeof(out)), 0);
	CU_ASSERT(strstr(out, "2 of 2 witnesses") != NULL);
	/* a cosignature missing: 1 of 2 is not a quorum of 2; it is one of 1 */
	CU_ASSERT_EQUAL(verify(one, extra, out, sizeof(out)), 1);
	CU_ASSERT(strstr(out, "witness.two/w") != NULL);
	ehrt_fmt(extra, sizeof(extra), "%s %s --quorum 1", w1, w2);
	CU_ASSERT_EQUAL(verify(one, extra, out, sizeof(out)), 0);
	/* the plain receipt has no cosignature at all */
	ehrt_fmt(extra, sizeof(extra), "%s --quorum 1", w1);
	CU_ASSERT_EQUAL(verify(rc1, extra, out, sizeof(out)), 1);
	/* a quorum of keys the receipt was not cosigned by */
	ehrt_fmt(extra, sizeof(extra), "%s %s --quorum 1", w3, w4);
	CU_ASSERT_EQUAL(verify(cos, extra, out, sizeof(out)), 1);
	/* a bigger quorum than witnesses is a usage error */
	ehrt_fmt(extra, sizeof(extra), "%s --quorum 2", w1);
	CU_ASSERT_EQUAL(verify(cos, extra, out, sizeof(out)), 2);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k3);
	EVP_PKEY_free(k4);
}

/* Who may fetch: the actor, the patient concerned, auditors; another
 * server gets the 404 of an entry that does not exist. */
static void test_who_may_fetch(void)
{
	char rc1[GWP_PATH + 32], args[256], out[8192];
	struct ehr_buf t = EHR_BUF_INIT(LEDGER_TLOG_PROOF_MAX), extra = EHR_BUF_INIT(LEDGER_MAX_BUNDLE_ENTRY);
	struct ledger_tlog_proof p;
	struct ehr_client *aud = NULL;

	path_of(rc1, sizeof(rc1), "put.tlog-proof");
	CU_ASSERT_EQUAL_FATAL(ehr_file_read(&t, rc1, LEDGER_TLOG_PROOF_MAX), 0);
	EHR_ASSERT_OK(ledger_tlog_proof_parse(&p, &extra, (const char *)t.data, t.len));
	ehrt_fmt(args, sizeof(args), "receipt get %llu -o -", (unsigned long long)p.index);
	CU_ASSERT_EQUAL(ctl("hosp", args, out, sizeof(out)), 0);
	CU_ASSERT(strncmp(out, "c2sp.org/tlog-proof@v1\n", 23) == 0);
	CU_ASSERT_EQUAL(ctl("MRN-R1", args, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(ctl("other", args, out, sizeof(out)), 1);
	CU_ASSERT(strstr(out, "404") != NULL);
	EHR_ASSERT_OK(ehrt_principal(&gw, "auditor", "aud", &aud));
	CU_ASSERT_EQUAL(ctl("aud", args, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(ctl("aud", "receipt get 999999999", out, sizeof(out)), 1);
	CU_ASSERT(strstr(out, "404") != NULL);
	{ /* a malformed index is the gateway's 400 */
		char cert[GWP_PATH + 32], key[GWP_PATH + 32];
		struct gwp_req rq = { .path = "/v1/receipts/01", .cert = cert, .key = key };
		struct gwp_resp res;

		ehrt_fmt(cert, sizeof(cert), "%s/aud/cert.pem", gw.dir);
		ehrt_fmt(key, sizeof(key), "%s/aud/key.pem", gw.dir);
		EHR_ASSERT_OK(gwp_request(&gw, &rq, &res));
		CU_ASSERT_EQUAL(res.status, 400);
		gwp_resp_free(&res);
	}
	ehr_client_free(aud);
	ehr_buf_free(&t);
	ehr_buf_free(&extra);
}

/* Prefer: wait=N on the upload itself: the reply carries the proof. */
static void test_prefer_wait_in_reply(void)
{
	char url[512], cert[GWP_PATH + 32], key[GWP_PATH + 32], idx[32];
	const char *hdrs[] = { "Prefer: wait=5", "Content-Type: text/plain", NULL };
	struct gwp_req rq = { .method = "POST", .path = url, .body = "x", .body_len = 1, .headers = hdrs };
	struct gwp_resp res;
	json_t *j, *rcpt;

	ehrt_fmt(url, sizeof(url), "/v1/patients/%s/records", pid);
	ehrt_fmt(cert, sizeof(cert), "%s/hosp/cert.pem", gw.dir);
	ehrt_fmt(key, sizeof(key), "%s/hosp/key.pem", gw.dir);
	rq.cert = cert;
	rq.key = key;
	EHR_ASSERT_OK(gwp_request(&gw, &rq, &res));
	CU_ASSERT_EQUAL(res.status, 201);
	j = gwp_resp_json(&res);
	rcpt = json_object_get(j, "receipt");
	CU_ASSERT(json_is_string(json_object_get(rcpt, "proof")) &&
	          strncmp(json_string_value(json_object_get(rcpt, "proof")), "c2sp.org/tlog-proof@v1\n",
	                  23) == 0);
	CU_ASSERT(gwp_resp_header(&res, "X-EHR-Ledger-Index", idx, sizeof(idx)) == 0 &&
	          json_integer_value(json_object_get(rcpt, "index")) == strtoll(idx, NULL, 10));
	json_decref(j);
	gwp_resp_free(&res);
	/* and the receipt route itself, with the index from the header */
	ehrt_fmt(url, sizeof(url), "/v1/receipts/%s", idx);
	rq.method = "GET";
	rq.body = NULL;
	rq.body_len = 0;
	EHR_ASSERT_OK(gwp_request(&gw, &rq, &res));
	CU_ASSERT_EQUAL(res.status, 200);
	gwp_resp_free(&res);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("receipts", suite_init, suite_clean,
	              { "upload_receipt_verifies", test_upload_receipt_verifies },
	              { "read_receipt_verifies", test_read_receipt_verifies },
	              { "tampered_refused", test_tampered_refused },
	              { "witness_quorum", test_witness_quorum }, { "who_may_fetch", test_who_may_fetch },
	              { "prefer_wait_in_reply", test_prefer_wait_in_reply });
}

EHR_TEST_MAIN(register_suites)
