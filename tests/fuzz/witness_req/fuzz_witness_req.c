/*
 * fuzz_witness_req.c - libFuzzer target for what ehrwitness parses from an
 * untrusted client (C2SP tlog-witness add-checkpoint, ledger/cosig.c): the
 * request body, then the checkpoint note inside it, its log signature
 * against a fixed trusted key, witness cosignatures, and the quorum check;
 * plus cosignature vkeys.
 *
 * The first byte selects: 0 = add-checkpoint body, 1 = cosigned note,
 * 2 = cosignature vkey. Seeds in corpus/ are signed by the fixed keys below
 * (log: seed 0x00..0x1f, origin ehrgate.fuzz/ledger; witness: seed
 * 0x20..0x3f, name w.fuzz/w1), so mutations get past the signature checks.
 *
 * Properties (abort on violation):
 *  - a body that parses re-formats (ledger_add_checkpoint_format) to the
 *    same bytes: the parser is exact and strict (one encoding per request);
 *  - a note that meets a quorum of 1 has a cosignature that verifies alone,
 *    and a checkpoint that verifies;
 *  - a vkey that parses re-formats to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/ledger.h"

#define FUZZ_ORIGIN "ehrgate.fuzz/ledger"
#define FUZZ_WITNESS "w.fuzz/w1"

static struct ledger_note_key log_key = { .name = FUZZ_ORIGIN }, wit_key = { .name = FUZZ_WITNESS };
static bool ready;

static void key_from_seed(uint8_t pub[32], uint8_t first)
{
	uint8_t seed[32];
	EVP_PKEY *k;

	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)(first + i);
	k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	if (k == NULL || ledger_key_raw_public(pub, k) < 0)
		abort();
	EVP_PKEY_free(k);
}

static void init(void)
{
	if (ready)
		return;
	key_from_seed(log_key.pub, 0x00);
	key_from_seed(wit_key.pub, 0x20);
	ready = true;
}

static void fuzz_note(const char *note, size_t n)
{
	struct ledger_quorum_report rep;
	uint8_t root[32];
	uint64_t size, t;
	size_t tl;

	(void)ledger_note_verify_any(note, n, &log_key, 1, &tl);
	(void)ledger_cosig_verify(note, n, FUZZ_WITNESS, wit_key.pub, &t);
	if (ledger_note_quorum(note, n, FUZZ_ORIGIN, log_key.pub, &wit_key, 1, 1, &rep) == 0) {
		if (ledger_cosig_verify(note, n, FUZZ_WITNESS, wit_key.pub, &t) != 0 ||
		    ledger_checkpoint_verify(note, n, log_key.pub, FUZZ_ORIGIN, &size, root) != 0 ||
		    size != rep.size)
			abort();
	}
}

static void fuzz_request(const char *d, size_t n)
{
	struct ledger_add_checkpoint *req = malloc(sizeof(*req));
	struct ehr_buf again = EHR_BUF_INIT(LEDGER_ADD_CHECKPOINT_MAX + 64);
	char origin[256];
	uint8_t root[32];
	uint64_t size;
	size_t tl;

	if (req == NULL)
		abort();
	if (ledger_add_checkpoint_parse(req, d, n) == 0) {
		if (ledger_add_checkpoint_format(&again, req->old_size, (const uint8_t(*)[32])req->proof,
		                                 req->proof_len, req->note, req->note_len) < 0 ||
		    again.len != n || memcmp(again.data, d, n) != 0) /* not secret */
			abort();
		(void)ledger_checkpoint_parse(req->note, req->note_len, origin, sizeof(origin), &size, root,
		                              &tl);
		fuzz_note(req->note, req->note_len);
	}
	ehr_buf_free(&again);
	free(req);
}

static void fuzz_vkey(const char *d, size_t n)
{
	char name[256];
	uint8_t k[32];

	if (ledger_cosig_vkey_parse(d, n, name, sizeof(name), k) == 0) {
		struct ehr_buf again = EHR_BUF_INIT(1024);

		if (ledger_cosig_vkey_format(&again, name, k) < 0 || again.len != n ||
		    memcmp(again.data, d, n) != 0) /* not secret */
			abort();
		ehr_buf_free(&again);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: fuzz_request((const char *)data + 1, size - 1); break;
	case 1: fuzz_note((const char *)data + 1, size - 1); break;
	default: fuzz_vkey((const char *)data + 1, size - 1); break;
	}
	ehr_error_clear();
	return 0;
}
