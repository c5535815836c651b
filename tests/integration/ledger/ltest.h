/*
 * ltest.h - helpers for the ledger's database tests and benchmark:
 * connections (one that bypasses triggers, for the tamper tests), Ed25519
 * keys, bulk appends. The database itself is the harness fixture
 * (tests/harness/dbfix.h) with LTEST_MIGRATIONS applied.
 */
#ifndef EHR_LTEST_H
#define EHR_LTEST_H

#include <libpq-fe.h>

#include "ledger/ledger.h"
#include "tests/harness/dbfix.h"

/* The ledger's own schema only (schemas/sql/0010_ledger.sql). */
#define LTEST_MIGRATIONS "10"
/* A superuser connection to db; with bypass, session_replication_role=replica
 * (ordinary triggers do not fire: the tamper tests' attacker). */
PGconn *ltest_connect(const char *ci, bool bypass);
/* Run SQL, expect success; returns 0 or -1 (message on stderr). */
int ltest_exec(PGconn *c, const char *sql);
/* SELECT returning one integer (or -1). */
long long ltest_scalar(PGconn *c, const char *sql);

EVP_PKEY *ltest_key_new(void);
/* Write the private key as PEM to path (0600). */
int ltest_key_write(EVP_PKEY *k, const char *path);
EVP_PKEY *ltest_key_read(const char *path);

int ltest_ledger_open(struct ledger **l, const char *ci, EVP_PKEY *k, unsigned batch_max, unsigned batch_ms);
/* Append n entries from `threads` threads; 0 if every append succeeded. */
int ltest_fill(struct ledger *l, unsigned n, unsigned threads, const char *subject);

/*
 * Append, as a second writer with the key in keyfile and the given origin,
 * batches of 1000 entries (one block each) until the ledger at ci holds
 * `size` entries; nothing when it already does. `note` goes in each
 * payload. 0, or -1 with a message on stderr.
 */
int ltest_grow_to(const char *ci, const char *keyfile, const char *origin, uint64_t size, const char *note);

#define LTEST_ORIGIN "ehrgate.test/ledger"

#endif
