/*
 * fuzz_checkpoint.c - libFuzzer target for what a ledger client parses from
 * an untrusted server (docs/LEDGER.md §6-§7): checkpoint signed notes,
 * verifier keys, proof JSON, and the RFC 9162 verifiers fed with arbitrary
 * indices, sizes and hashes; plus the entry decoder.
 *
 * The first byte selects the parser; the rest is its input. Seeds in
 * corpus/ include notes validly signed by the fixed key below, so mutations
 * start from inputs that get past the signature check.
 *
 * Properties (abort on violation):
 *  - a checkpoint that verifies re-encodes to the same note (its body and
 *    our single signature line), i.e. parsing is exact;
 *  - a proof that parses re-serialises (ledger_proof_json) and parses back
 *    to the same values;
 *  - an entry that decodes re-hashes to the leaf hash the decoder reported.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/ledger.h"

/* Test-only Ed25519 key (seed bytes 0x00..0x1f); never used outside fuzzing. */
static const uint8_t fuzz_seed[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};
#define FUZZ_ORIGIN "ehrgate.fuzz/ledger"

static uint8_t pub[32];
static bool ready;

static void init(void)
{
	EVP_PKEY *k;

	if (ready)
		return;
	k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, fuzz_seed, 32);
	if (k == NULL || ledger_key_raw_public(pub, k) < 0)
		abort();
	EVP_PKEY_free(k);
	ready = true;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void fuzz_note(const uint8_t *d, size_t n)
{
	uint64_t size;
	uint8_t root[32];
	size_t tl;

	(void)ledger_note_verify((const char *)d, n, FUZZ_ORIGIN, pub, &tl);
	if (ledger_checkpoint_verify((const char *)d, n, pub, FUZZ_ORIGIN, &size, root) == 0) {
		struct ehr_buf body = EHR_BUF_INIT(4096);

		if (ledger_checkpoint_body(&body, FUZZ_ORIGIN, size, root) < 0)
			abort();
		/* the verified text starts with exactly the canonical body */
		if (body.len > n || memcmp(body.data, d, body.len) != 0) /* not secret */
			abort();
		ehr_buf_free(&body);
	}
}

static void fuzz_vkey(const uint8_t *d, size_t n)
{
	char name[256];
	uint8_t k[32];

	if (ledger_vkey_parse((const char *)d, n, name, sizeof(name), k) == 0) {
		struct ehr_buf again = EHR_BUF_INIT(1024);

		if (ledger_vkey_format(&again, name, k) < 0 || again.len != n ||
		    memcmp(again.data, d, n) != 0) /* not secret */
			abort();
		ehr_buf_free(&again);
	}
}

static void fuzz_proof_json(const uint8_t *d, size_t n, bool consistency)
{
	uint8_t h[LEDGER_MAX_PROOF][32], h2[LEDGER_MAX_PROOF][32];
	uint64_t size, idx, size2, idx2;
	size_t k, k2;
	json_t *j;
	struct ehr_buf s = EHR_BUF_INIT(1 << 16);

	if (ledger_proof_from_json(d, n, consistency, &size, &idx, h, &k) != 0)
		return;
	j = ledger_proof_json(size, idx, consistency, (const uint8_t(*)[32])h, k);
	if (j == NULL || ehr_json_dump(&s, j) < 0 ||
	    ledger_proof_from_json(s.data, s.len, consistency, &size2, &idx2, h2, &k2) != 0 ||
	    size2 != size || idx2 != idx || k2 != k || memcmp(h, h2, k * 32) != 0) /* not secret */
		abort();
	json_decref(j);
	ehr_buf_free(&s);
	/* and run the verifier on whatever came in */
	if (consistency)
		(void)merkle_verify_consistency(idx, size, h[0], h[k ? k - 1 : 0], (const uint8_t(*)[32])h,
		                                k);
	else
		(void)merkle_verify_inclusion(h[0], idx, size, (const uint8_t(*)[32])h, k, h[0]);
}

/* Raw: u64 a, u64 b, 32-byte leaf/root1, 32-byte root/root2, then hashes. */
static void fuzz_verifiers(const uint8_t *d, size_t n)
{
	uint64_t a, b;

	if (n < 80)
		return;
	a = rd64(d);
	b = rd64(d + 8);
	n -= 80;
	if (n / 32 > LEDGER_MAX_PROOF + 2)
		n = (LEDGER_MAX_PROOF + 2) * 32;
	(void)merkle_verify_inclusion(d + 16, a, b, (const uint8_t(*)[32])(d + 80), n / 32, d + 48);
	(void)merkle_verify_consistency(a, b, d + 16, d + 48, (const uint8_t(*)[32])(d + 80), n / 32);
	(void)merkle_check_advance(a, d + 16, b, d + 48, (const uint8_t(*)[32])(d + 80), n / 32);
}

static void fuzz_entry(const uint8_t *d, size_t n)
{
	struct ledger_entry e;
	uint8_t leaf[32];

	if (ledger_entry_decode(&e, d, n, true) == 0) {
		merkle_leaf_hash(leaf, d, n);
		if (memcmp(leaf, e.leaf_hash, 32) != 0 || e.payload_len > n) /* not secret */
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	if (size < 1)
		return 0;
	switch (data[0] % 6) {
	case 0: fuzz_note(data + 1, size - 1); break;
	case 1: fuzz_vkey(data + 1, size - 1); break;
	case 2: fuzz_proof_json(data + 1, size - 1, false); break;
	case 3: fuzz_proof_json(data + 1, size - 1, true); break;
	case 4: fuzz_verifiers(data + 1, size - 1); break;
	default: fuzz_entry(data + 1, size - 1); break;
	}
	ehr_error_clear();
	return 0;
}
