/*
 * receipt.c - a ledger entry's receipt from the store: the C2SP tlog-proof
 * of the entry against the published checkpoint (ledger_published), once a
 * published checkpoint covers it (docs/LEDGER.md §11).
 */
#include "ledger/ledger.h"

#include <time.h>

#define RECEIPT_POLL_MS 25

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* The published note and size once it covers index, polling up to wait_ms:
 * 0, or 0 with *pending when it still does not. */
static int published_covering(struct ledger *l, uint64_t index, unsigned wait_ms, struct ehr_buf *note,
                              uint64_t *size, bool *pending)
{
	int64_t deadline = ehr_monotonic_ms() + wait_ms;

	for (;;) {
		int err;

		note->len = 0;
		err = ledger_published(l, note, size);
		if (err < 0 && err != EHR_ERR_NOT_FOUND)
			return err;
		*pending = err == EHR_ERR_NOT_FOUND || *size <= index;
		if (!*pending || ehr_monotonic_ms() >= deadline)
			return 0;
		sleep_ms(RECEIPT_POLL_MS);
	}
}

int ledger_receipt_build(struct ledger *l, uint64_t index, const uint8_t *entry, size_t entry_len,
                         unsigned wait_ms, struct ehr_buf *out, bool *pending)
{
	struct ehr_buf note = EHR_BUF_INIT(LEDGER_NOTE_MAX);
	uint8_t path[LEDGER_MAX_PROOF][LEDGER_HASH_LEN];
	uint64_t size = 0;
	size_t n = 0;
	int err;

	GUARD_GOTO(published_covering(l, index, wait_ms, &note, &size, pending));
	if (*pending)
		goto out;
	GUARD_GOTO(ledger_prove_inclusion(l, index, size, path, &n));
	err = ledger_tlog_proof_format(out, entry, entry_len, index, (const uint8_t(*)[LEDGER_HASH_LEN])path,
	                               n, (const char *)note.data, note.len);
out:
	ehr_buf_free(&note);
	return err;
}
