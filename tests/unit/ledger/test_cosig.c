/*
 * test_cosig.c - C2SP tlog-cosignature (cosignature/v1), quorum checks and
 * the tlog-witness add-checkpoint body (ledger/cosig.c).
 *
 * Known answer: the cosignature line below was computed outside this code
 * (Python `cryptography` Ed25519 and hashlib, following tlog-cosignature
 * literally) with the RFC 8032 §7.1 TEST 1 secret key, witness name
 * "witness.example.com/w1", time 1679315147 and the checkpoint of the
 * tlog-cosignature example; its time bytes (AAAABkGFDL) match the spec's
 * own example cosignature.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ledger/ledger.h"
#include "tests/harness/harness.h"

static const char rfc8032_sk_hex[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char kat_vkey[] = "witness.example.com/w1+7e6f4aaa+BNdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea";
static const char kat_body[] =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
static const char kat_line[] = "\xe2\x80\x94 witness.example.com/w1 "
                               "fm9KqgAAAABkGFDL+TPmh4BYuAjsYRoqMJCWb/gWJaeRF/kmm5tlCr9sJ57DLErur7K0yDXc2ArN+"
                               "TIuotuB/HbuL3AJsp3bv/aNCQ==\n";

static EVP_PKEY *new_key(uint8_t pub[32])
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	CU_ASSERT_FATAL(k != NULL);
	CU_ASSERT_FATAL(ledger_key_raw_public(pub, k) == 0);
	return k;
}

static void test_cosig_kat(void)
{
	struct ehr_buf line = EHR_BUF_INIT(512), vk = EHR_BUF_INIT(256), note = EHR_BUF_INIT(4096);
	uint8_t sk[32], pub[32], pub2[32], nid[4], cid[4];
	char name[64];
	uint64_t t = 0;
	EVP_PKEY *key;

	CU_ASSERT_FATAL(ehr_hex_decode(sk, 32, rfc8032_sk_hex, 64) == 0);
	key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32);
	CU_ASSERT_FATAL(key != NULL);
	EHR_ASSERT_OK(ledger_key_raw_public(pub, key));
	EHR_ASSERT_OK(ledger_cosig_vkey_format(&vk, "witness.example.com/w1", pub));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&vk), kat_vkey);
	EHR_ASSERT_OK(ledger_cosig_vkey_parse(kat_vkey, strlen(kat_vkey), name, sizeof(name), pub2));
	CU_ASSERT_STRING_EQUAL(name, "witness.example.com/w1");
	CU_ASSERT(memcmp(pub, pub2, 32) == 0); /* not secret */
	/* the two signature types give different key ids and vkeys */
	ledger_note_key_id(nid, name, pub);
	ledger_cosig_key_id(cid, name, pub);
	CU_ASSERT(memcmp(nid, cid, 4) != 0); /* not secret */
	EHR_ASSERT_ERR(ledger_vkey_parse(kat_vkey, strlen(kat_vkey), name, sizeof(name), pub2),
	               EHR_ERR_PARSE);

	EHR_ASSERT_OK(ledger_cosig_sign(&line, key, "witness.example.com/w1", 1679315147, kat_body,
	                                strlen(kat_body)));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&line), kat_line);
	EHR_ASSERT_OK(ehr_buf_printf(&note, "%s\n%s", kat_body, kat_line));
	EHR_ASSERT_OK(
	        ledger_cosig_verify((const char *)note.data, note.len, "witness.example.com/w1", pub, &t));
	CU_ASSERT_EQUAL(t, 1679315147);
	/* tampered body; another name; another key */
	note.data[30] ^= 1;
	EHR_ASSERT_ERR(
	        ledger_cosig_verify((const char *)note.data, note.len, "witness.example.com/w1", pub, &t),
	        EHR_ERR_TAMPER);
	note.data[30] ^= 1;
	EHR_ASSERT_ERR(
	        ledger_cosig_verify((const char *)note.data, note.len, "witness.example.com/w2", pub, &t),
	        EHR_ERR_NOT_FOUND);
	pub2[0] ^= 1;
	EHR_ASSERT_ERR(
	        ledger_cosig_verify((const char *)note.data, note.len, "witness.example.com/w1", pub2, &t),
	        EHR_ERR_NOT_FOUND);
	/* a plain Ed25519 note signature by the same key is not a cosignature */
	EHR_ASSERT_ERR(ledger_note_verify((const char *)note.data, note.len, "witness.example.com/w1", pub,
	                                  &(size_t){ 0 }),
	               EHR_ERR_TAMPER);
	/* refused arguments: time 0, time >= 2^63, text without a final newline */
	EHR_ASSERT_ERR(ledger_cosig_sign(&line, key, "w", 0, kat_body, strlen(kat_body)), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(ledger_cosig_sign(&line, key, "w", (uint64_t)1 << 63, kat_body, strlen(kat_body)),
	               EHR_ERR_INVAL);
	EHR_ASSERT_ERR(ledger_cosig_sign(&line, key, "w", 5, kat_body, strlen(kat_body) - 1), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(ledger_cosig_sign(&line, key, "bad name", 5, kat_body, strlen(kat_body)),
	               EHR_ERR_INVAL);
	EVP_PKEY_free(key);
	ehr_buf_free(&line);
	ehr_buf_free(&vk);
	ehr_buf_free(&note);
}

/* A cosignature line whose time is >= 2^63 (hand-built; the signer refuses). */
static void test_cosig_bad_time(void)
{
	struct ehr_buf note = EHR_BUF_INIT(4096), dec = EHR_BUF_INIT(128);
	uint8_t sk[32], pub[32];
	EVP_PKEY *key;
	const char *b64;

	CU_ASSERT_FATAL(ehr_hex_decode(sk, 32, rfc8032_sk_hex, 64) == 0);
	key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32);
	CU_ASSERT_FATAL(key != NULL);
	EHR_ASSERT_OK(ledger_key_raw_public(pub, key));
	b64 = strchr(kat_line + 4, ' ') + 1;
	EHR_ASSERT_OK(ehr_b64_decode(&dec, b64, strlen(b64) - 1));
	dec.data[4] |= 0x80;
	EHR_ASSERT_OK(ehr_buf_printf(&note, "%s\n\xe2\x80\x94 witness.example.com/w1 ", kat_body));
	EHR_ASSERT_OK(ehr_b64_encode(&note, dec.data, dec.len));
	EHR_ASSERT_OK(ehr_buf_append_u8(&note, '\n'));
	EHR_ASSERT_ERR(
	        ledger_cosig_verify((const char *)note.data, note.len, "witness.example.com/w1", pub, NULL),
	        EHR_ERR_TAMPER);
	/* a truncated blob (key id matches, too short) */
	ehr_buf_reset(&note);
	EHR_ASSERT_OK(ehr_buf_printf(&note, "%s\n\xe2\x80\x94 witness.example.com/w1 ", kat_body));
	EHR_ASSERT_OK(ehr_b64_encode(&note, dec.data, 20));
	EHR_ASSERT_OK(ehr_buf_append_u8(&note, '\n'));
	EHR_ASSERT_ERR(
	        ledger_cosig_verify((const char *)note.data, note.len, "witness.example.com/w1", pub, NULL),
	        EHR_ERR_TAMPER);
	EVP_PKEY_free(key);
	ehr_buf_free(&note);
	ehr_buf_free(&dec);
}

struct qfix {
	EVP_PKEY *log, *w[3];
	uint8_t log_pub[32];
	struct ledger_note_key keys[4];
	struct ehr_buf note;
	size_t text_len;
};

static const char *origin = "ehrgate.test/ledger";

static void qfix_init(struct qfix *f)
{
	static const char *names[3] = { "w0.test/w", "w1.test/w", "w2.test/w" };
	uint8_t root[32], sig[64];
	size_t tl;

	memset(f, 0, sizeof(*f));
	ehr_buf_init(&f->note, 8192);
	f->log = new_key(f->log_pub);
	for (int i = 0; i < 3; i++) {
		f->w[i] = new_key(f->keys[i].pub);
		f->keys[i].name = names[i];
	}
	memset(root, 7, sizeof(root));
	EHR_ASSERT_OK(ledger_checkpoint_body(&f->note, origin, 42, root));
	EHR_ASSERT_OK(ledger_ed25519_sign(sig, f->log, f->note.data, f->note.len));
	ehr_buf_reset(&f->note);
	EHR_ASSERT_OK(ledger_checkpoint_note(&f->note, origin, 42, root, f->log_pub, sig));
	EHR_ASSERT_OK(ledger_note_verify((const char *)f->note.data, f->note.len, origin, f->log_pub, &tl));
	f->text_len = tl;
}

static void qfix_cosign(struct qfix *f, int i, uint64_t t)
{
	struct ehr_buf body = EHR_BUF_INIT(8192);

	EHR_ASSERT_OK(ehr_buf_append(&body, f->note.data, f->text_len));
	EHR_ASSERT_OK(
	        ledger_cosig_sign(&f->note, f->w[i], f->keys[i].name, t, (const char *)body.data, body.len));
	ehr_buf_free(&body);
}

static void qfix_free(struct qfix *f)
{
	EVP_PKEY_free(f->log);
	for (int i = 0; i < 3; i++)
		EVP_PKEY_free(f->w[i]);
	ehr_buf_free(&f->note);
}

static void test_quorum(void)
{
	struct ledger_quorum_report rep;
	struct qfix f;
	const char *n;

	qfix_init(&f);
	n = (const char *)f.note.data;
	/* no cosignatures: k = 0 passes on the log signature alone */
	EHR_ASSERT_OK(ledger_note_quorum(n, f.note.len, origin, f.log_pub, f.keys, 3, 0, &rep));
	CU_ASSERT(rep.valid == 0 && rep.first_bad == 0 && rep.size == 42);
	qfix_cosign(&f, 0, 1000);
	qfix_cosign(&f, 1, 1001);
	n = (const char *)f.note.data;
	EHR_ASSERT_OK(ledger_note_quorum(n, f.note.len, origin, f.log_pub, f.keys, 3, 2, &rep));
	CU_ASSERT(rep.valid == 2 && rep.first_bad == 2 && rep.first_bad_rc == EHR_ERR_NOT_FOUND);
	EHR_ASSERT_ERR(ledger_note_quorum(n, f.note.len, origin, f.log_pub, f.keys, 3, 3, &rep),
	               EHR_ERR_TAMPER);
	CU_ASSERT(rep.valid == 2 && rep.first_bad == 2);
	CU_ASSERT(strstr(rep.reason, "w2.test/w") != NULL);
	EHR_ASSERT_ERR(ledger_note_quorum(n, f.note.len, origin, f.log_pub, f.keys, 3, 4, &rep),
	               EHR_ERR_INVAL);
	/* the same public key under two names counts once */
	f.keys[3].name = "w0-again.test/w";
	memcpy(f.keys[3].pub, f.keys[0].pub, 32);
	EHR_ASSERT_OK(ledger_note_quorum(n, f.note.len, origin, f.log_pub, f.keys, 4, 2, &rep));
	CU_ASSERT(rep.valid == 2);
	/* the same witness line twice counts once */
	qfix_cosign(&f, 1, 1002);
	n = (const char *)f.note.data;
	EHR_ASSERT_ERR(ledger_note_quorum(n, f.note.len, origin, f.log_pub, f.keys, 3, 3, &rep),
	               EHR_ERR_TAMPER);
	/* a bad cosignature by w1 (its first line decides) */
	{
		size_t pos = f.text_len + 1;
		const char *l1 = strstr(n + pos, "w1.test/w ");

		CU_ASSERT_FATAL(l1 != NULL);
		uint8_t *c = &f.note.data[(size_t)(l1 - n) + 30];

		/* another base64 letter, so the line still parses and only the
		 * signature bytes change (a flipped bit could make '@' or '[') */
		*c = *c == 'A' ? 'B' : 'A';
		EHR_ASSERT_ERR(ledger_note_quorum(n, f.note.len, origin, f.log_pub, f.keys, 3, 2, &rep),
		               EHR_ERR_TAMPER);
		CU_ASSERT(rep.valid == 1 && rep.first_bad == 1 && rep.first_bad_rc == EHR_ERR_TAMPER);
	}
	/* a bad log signature */
	f.note.data[3] ^= 1;
	EHR_ASSERT_ERR(ledger_note_quorum(n, f.note.len, origin, f.log_pub, f.keys, 3, 0, &rep),
	               EHR_ERR_TAMPER);
	f.note.data[3] ^= 1;
	/* another origin */
	EHR_ASSERT_ERR(ledger_note_quorum(n, f.note.len, "other/log", f.log_pub, f.keys, 3, 0, NULL),
	               EHR_ERR_TAMPER);
	/* malformed */
	EHR_ASSERT_ERR(ledger_note_quorum(n, f.text_len, origin, f.log_pub, f.keys, 3, 0, NULL),
	               EHR_ERR_PARSE);
	qfix_free(&f);
}

static void test_verify_any(void)
{
	struct ledger_note_key keys[2];
	struct qfix f;
	uint8_t pub2[32];
	EVP_PKEY *k2 = new_key(pub2);
	size_t tl = 0;
	const char *n;

	qfix_init(&f);
	n = (const char *)f.note.data;
	keys[0].name = origin;
	memcpy(keys[0].pub, pub2, 32);
	keys[1].name = origin;
	memcpy(keys[1].pub, f.log_pub, 32);
	EHR_ASSERT_OK(ledger_note_verify_any(n, f.note.len, keys, 2, &tl));
	CU_ASSERT_EQUAL(tl, f.text_len);
	EHR_ASSERT_ERR(ledger_note_verify_any(n, f.note.len, keys, 1, &tl), EHR_ERR_TAMPER);
	EHR_ASSERT_ERR(ledger_note_verify_any(n, f.note.len, keys, 0, &tl), EHR_ERR_TAMPER);
	EHR_ASSERT_ERR(ledger_note_verify_any(n, f.text_len, keys, 2, &tl), EHR_ERR_PARSE);
	/* a second trusted key's line that fails makes the note bad, even with one good line */
	{
		struct ehr_buf bad = EHR_BUF_INIT(8192);
		uint8_t id[4], blob[68];

		ledger_note_key_id(id, origin, pub2);
		memcpy(blob, id, 4);
		memset(blob + 4, 0x55, 64);
		EHR_ASSERT_OK(ehr_buf_append(&bad, f.note.data, f.note.len));
		EHR_ASSERT_OK(ehr_buf_printf(&bad, "\xe2\x80\x94 %s ", origin));
		EHR_ASSERT_OK(ehr_b64_encode(&bad, blob, sizeof(blob)));
		EHR_ASSERT_OK(ehr_buf_append_u8(&bad, '\n'));
		EHR_ASSERT_ERR(ledger_note_verify_any((const char *)bad.data, bad.len, keys, 2, &tl),
		               EHR_ERR_TAMPER);
		EHR_ASSERT_OK(ledger_note_verify_any((const char *)bad.data, bad.len, keys + 1, 1, &tl));
		ehr_buf_free(&bad);
	}
	EVP_PKEY_free(k2);
	qfix_free(&f);
}

static void test_checkpoint_parse(void)
{
	struct qfix f;
	char o[64], tiny[4];
	uint8_t root[32];
	uint64_t size;
	size_t tl;

	qfix_init(&f);
	EHR_ASSERT_OK(ledger_checkpoint_parse((const char *)f.note.data, f.note.len, o, sizeof(o), &size,
	                                      root, &tl));
	CU_ASSERT_STRING_EQUAL(o, origin);
	CU_ASSERT(size == 42 && root[0] == 7 && tl == f.text_len);
	EHR_ASSERT_ERR(ledger_checkpoint_parse((const char *)f.note.data, f.note.len, tiny, sizeof(tiny),
	                                       &size, root, &tl),
	               EHR_ERR_PARSE);
	qfix_free(&f);
}

static void test_add_checkpoint_roundtrip(void)
{
	struct ehr_buf b = EHR_BUF_INIT(LEDGER_ADD_CHECKPOINT_MAX + 1024);
	static uint8_t proof[64][32];
	struct ledger_add_checkpoint *req = calloc(1, sizeof(*req));
	static const char note[] = "o\n1\nAAAA\n\n\xe2\x80\x94 o AAAAAAAA\n";
	size_t counts[] = { 0, 1, 5, 63 };

	CU_ASSERT_FATAL(req != NULL);
	for (size_t i = 0; i < 64; i++)
		memset(proof[i], (int)i, 32);
	for (size_t c = 0; c < EHR_ARRAY_LEN(counts); c++) {
		ehr_buf_reset(&b);
		EHR_ASSERT_OK(ledger_add_checkpoint_format(&b, 7 + c, (const uint8_t(*)[32])proof, counts[c],
		                                           note, strlen(note)));
		EHR_ASSERT_OK(ledger_add_checkpoint_parse(req, (const char *)b.data, b.len));
		CU_ASSERT(req->old_size == 7 + c && req->proof_len == counts[c]);
		CU_ASSERT(memcmp(req->proof, proof, counts[c] * 32) == 0); /* not secret */
		CU_ASSERT(req->note_len == strlen(note) &&
		          memcmp(req->note, note, req->note_len) == 0); /* not secret */
	}
	/* the spec's example shape */
	{
		static const char ex[] = "old 20852014\n"
		                         "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
		                         "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
		                         "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
		                         "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
		                         "\n"
		                         "example.com/behind-the-sofa\n20852163\n"
		                         "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n";

		EHR_ASSERT_OK(ledger_add_checkpoint_parse(req, ex, strlen(ex)));
		CU_ASSERT(req->old_size == 20852014 && req->proof_len == 4);
		CU_ASSERT(req->proof[3][0] == 0xff && req->proof[3][1] == 0xa5);
	}
	/* old 0 is written "0" */
	ehr_buf_reset(&b);
	EHR_ASSERT_OK(ledger_add_checkpoint_format(&b, 0, NULL, 0, note, strlen(note)));
	CU_ASSERT(memcmp(b.data, "old 0\n\n", 7) == 0); /* not secret */
	/* the formatter refuses 64 proof lines */
	EHR_ASSERT_ERR(
	        ledger_add_checkpoint_format(&b, 1, (const uint8_t(*)[32])proof, 64, note, strlen(note)),
	        EHR_ERR_INVAL);
	free(req);
	ehr_buf_free(&b);
}

static void test_add_checkpoint_malformed(void)
{
	static const char *const bad[] = {
		"",
		"old 1",
		"old 1\n",
		"old 1\n\n",
		"\nold 1\n\nnote\n",
		"old\n\nnote\n",
		"old \n\nnote\n",
		"old 01\n\nnote\n",
		"old 00\n\nnote\n",
		"old -1\n\nnote\n",
		"old +1\n\nnote\n",
		"old  1\n\nnote\n",
		"old 1 \n\nnote\n",
		"Old 1\n\nnote\n",
		"old 1\r\n\r\nnote\n",
		"old 9223372036854775808\n\nnote\n",
		"old 99999999999999999999999\n\nnote\n",
		"old 1\nAAAA\n\nnote\n",
		"old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw\n\nnote\n",
		"old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw==\n\nnote\n",
		"old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkax=\n\nnote\n",
		"old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\r\n\nnote\n",
		"old 1\n PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\nnote\n",
		"old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n",
		"old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=",
	};
	struct ledger_add_checkpoint *req = calloc(1, sizeof(*req));
	struct ehr_buf b = EHR_BUF_INIT(2 * LEDGER_ADD_CHECKPOINT_MAX);

	CU_ASSERT_FATAL(req != NULL);
	for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++) {
		int rc = ledger_add_checkpoint_parse(req, bad[i], strlen(bad[i]));

		if (rc != EHR_ERR_PARSE)
			fprintf(stderr, "case %zu: rc %d\n", i, rc);
		CU_ASSERT_EQUAL(rc, EHR_ERR_PARSE);
	}
	/* 64 proof lines: one too many */
	EHR_ASSERT_OK(ehr_buf_append_str(&b, "old 1\n"));
	for (int i = 0; i < 64; i++)
		EHR_ASSERT_OK(ehr_buf_append_str(&b, "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"));
	EHR_ASSERT_OK(ehr_buf_append_str(&b, "\nnote\n"));
	EHR_ASSERT_ERR(ledger_add_checkpoint_parse(req, (const char *)b.data, b.len), EHR_ERR_PARSE);
	/* larger than the limit */
	ehr_buf_reset(&b);
	EHR_ASSERT_OK(ehr_buf_append_str(&b, "old 1\n\n"));
	while (b.len <= LEDGER_ADD_CHECKPOINT_MAX)
		EHR_ASSERT_OK(
		        ehr_buf_append_str(&b, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"));
	EHR_ASSERT_ERR(ledger_add_checkpoint_parse(req, (const char *)b.data, b.len), EHR_ERR_TOO_LARGE);
	/* the largest old size is accepted */
	EHR_ASSERT_OK(ledger_add_checkpoint_parse(req, "old 9223372036854775807\n\nn\n", 27));
	CU_ASSERT(req->old_size == 9223372036854775807ULL);
	free(req);
	ehr_buf_free(&b);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("cosignature", NULL, NULL, { "kat", test_cosig_kat },
	              { "bad_time", test_cosig_bad_time }, { "quorum", test_quorum },
	              { "verify_any", test_verify_any }, { "checkpoint_parse", test_checkpoint_parse });
	EHR_ADD_SUITE("add_checkpoint", NULL, NULL, { "roundtrip", test_add_checkpoint_roundtrip },
	              { "malformed", test_add_checkpoint_malformed });
}

EHR_TEST_MAIN(register_suites)
