/*
 * fuzz_tlog_proof.c - libFuzzer target for receipts (C2SP tlog-proof,
 * docs/LEDGER.md §11): ledger_tlog_proof_parse and the whole offline check
 * ledger_tlog_proof_verify, which `ehrctl receipt verify` runs on a file
 * anyone may hand it.
 *
 * Properties (abort on violation):
 *  - a receipt that parses formats back to exactly the same bytes
 *    (ledger_tlog_proof_format): parsing is exact;
 *  - whatever verifies has an entry whose seq is its index (the log key
 *    below is arbitrary, so in practice every input is refused: the
 *    target exercises every refusal path without crashing).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/ledger.h"

/* An arbitrary test-only Ed25519 public key; never used outside fuzzing. */
static const uint8_t fuzz_pub[32] = {
	0x03, 0xa1, 0x07, 0xbf, 0xf3, 0xce, 0x10, 0xbe, 0x1d, 0x70, 0xdd, 0x18, 0xe7, 0x4b, 0xc0, 0x99,
	0x67, 0xe4, 0xd6, 0x30, 0x9b, 0xa5, 0x0d, 0x5f, 0x1d, 0xdc, 0x86, 0x64, 0x12, 0x55, 0x31, 0xb8,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ledger_tlog_proof p;
	struct ledger_tlog_proof_report rep;
	struct ehr_buf extra = EHR_BUF_INIT(LEDGER_MAX_BUNDLE_ENTRY),
	               again = EHR_BUF_INIT(LEDGER_TLOG_PROOF_MAX);
	struct ledger_note_key w = { "witness.fuzz/w", { 0 } };

	if (ledger_tlog_proof_parse(&p, &extra, (const char *)data, size) == 0) {
		if (ledger_tlog_proof_format(
		            &again, p.has_extra ? extra.data : NULL, p.has_extra ? extra.len : 0, p.index,
		            (const uint8_t(*)[LEDGER_HASH_LEN])p.path, p.path_len, p.note, p.note_len) < 0 ||
		    again.len != size || memcmp(again.data, data, size) != 0) /* not secret */
			abort();
	}
	extra.len = 0;
	if (ledger_tlog_proof_verify((const char *)data, size, "ehrgate.fuzz/ledger", fuzz_pub, &w, 1, 0,
	                             &extra, &rep) == 0 &&
	    rep.entry.seq != rep.index)
		abort();
	ehr_buf_free(&extra);
	ehr_buf_free(&again);
	ehr_error_clear();
	return 0;
}
