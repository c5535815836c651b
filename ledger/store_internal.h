/*
 * store_internal.h - the Postgres store's internals, shared by store.c
 * (open, queue, wait) and commit.c (the writer's group commit). Not for
 * the pure files of ledgercore: this one needs libpq.
 */
#ifndef EHR_LEDGER_STORE_INTERNAL_H
#define EHR_LEDGER_STORE_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>

#include <libpq-fe.h>

#include "ledger/ledger_internal.h"

#define LEDGER_BLOCK_COLS "height, prev_hash, tree_size, root, ts_ms, hash, sig, origin, cp_sig"

/*
 * One appender's group of entries (ledger_append_n): queued as a unit,
 * committed in one block with consecutive seqs, never split between
 * blocks, so it is all or nothing.
 */
struct ledger_req {
	struct ledger_req *next;
	struct ehr_buf *enc;          /* n encodings with seq = 0, ts = 0; writer patches */
	struct ledger_receipt *rcpts; /* n receipts, filled once committed */
	size_t n;
	sem_t done; /* posted once the batch is committed or failed */
	int rc;
	struct ehr_error_saved err; /* the writer's error (message and detail) when rc < 0 */
};

struct ledger {
	struct ehr_db_pool *db;
	bool own_db;
	char *conninfo;
	char *origin;
	EVP_PKEY *key;
	uint8_t pub[32];
	unsigned batch_max;
	unsigned batch_ms;
	bool witnessed;
	struct ledger__entry_cache *ecache; /* read.c; NULL: none (no memory) */

	pthread_t writer;
	pthread_mutex_t mu;
	pthread_cond_t work;
	struct ledger_req *head, *tail;
	size_t queued;     /* entries, not requests */
	size_t last_batch; /* entries */
	bool stopping;

	/* writer-only state */
	PGconn *conn;
	bool tip_valid;
	bool tip_empty;
	struct ledger_block tip;
	struct merkle_frontier frontier;
	struct ehr_buf copybuf;
	struct ehr_buf nodesbuf;
};

/* A libpq failure as an ehr_err (conflict, forbidden, unavailable, db). */
int ledger__pg_fail(PGconn *c, PGresult *r, const char *what);
/* Simple-protocol exec expecting success; the result is discarded unless out is given. */
int ledger__pg_simple(PGconn *c, const char *sql, const char *what, PGresult **out);
/* commit.c: the group commit's metrics (registered on the first open), and
 * one appender's wait from queueing to its batch's outcome. */
void ledger__metrics_init(void);
void ledger__metrics_waited(int64_t us);
/* The writer thread (commit.c); arg is the struct ledger. */
void *ledger__writer_main(void *arg);

#endif
