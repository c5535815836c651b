/*
 * verify_internal.h - shared by verify.c (one range of blocks, checked in
 * order on one connection) and verify_run.c (ledger_verify_db: the ranges
 * on worker threads, each with its own connection in one snapshot, and
 * what is checked once for the whole ledger).
 */
#ifndef EHR_LEDGER_VERIFY_INTERNAL_H
#define EHR_LEDGER_VERIFY_INTERNAL_H

#include "common/db.h"
#include "ledger/ledger_internal.h"

#include <libpq-fe.h>
#include <openssl/evp.h>

/* One worker's range: entries and blocks after `start` up to block
 * end_height, checked in order of position. */
struct vstate {
	PGconn *c;
	EVP_PKEY *pk;
	bool all_signatures; /* both Ed25519 signatures of every block */
	struct ledger_verify_report *rep;
	struct merkle_frontier fr;
	uint64_t cur; /* next expected seq */
	bool have_prev;
	struct ledger_block prev;
	uint64_t end_height;   /* last block of the range (UINT64_MAX: the last one there is) */
	uint64_t trusted_size; /* 0 = none */
	bool trusted_seen;
	uint8_t trusted_root[LEDGER_HASH_LEN];
	uint8_t root_at_trusted[LEDGER_HASH_LEN];
};

/* Report a finding: fills v->rep and the error slot; returns EHR_ERR_TAMPER. */
int ledger__verify_bad(struct vstate *v, enum ledger_bad_kind kind, uint64_t pos, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* A libpq failure while verifying: EHR_ERR_DB, libpq's text in the detail. */
int ledger__verify_pg_err(PGconn *c, const PGresult *r, const char *what);
/* Both Ed25519 signatures of a block: over its header and over its checkpoint body. */
int ledger__verify_block_sigs(struct vstate *v, const struct ledger_block *b);
/* Start at the block `where` selects (SQL after FROM ledger_blocks, one row):
 * the stored right edge of the tree there must hash to its signed root.
 * No row: start at the genesis. */
int ledger__verify_start_at(struct vstate *v, const char *where);
/* Check every block and entry after v's start up to v->end_height. */
int ledger__verify_range(struct vstate *v);

#endif
