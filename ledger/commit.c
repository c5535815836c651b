/*
 * commit.c - the ledger's group commit: the one writer thread per process
 * that takes whole queued requests (up to batch_max entries; a larger
 * request alone) and commits them as ONE signed block in ONE transaction,
 * then wakes their appenders. docs/LEDGER.md §3-§5; store.c queues.
 */
#include "ledger/store_internal.h"

#include "common/db.h"
#include "common/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* The group commit, as operators see it (docs/OPERATIONS.md §7): batches
 * and their entries, the time each batch took from being taken off the
 * queue to its commit's answer, and (store.c) the appenders' waits. */
static struct ehr_metric m_batches = EHR_METRIC_LABELLED(
        EHR_METRIC_COUNTER, "ehrgate_ledger_batches_total",
        "Ledger batches (blocks) the writer committed or failed.", "outcome", "committed", "failed");
static struct ehr_metric m_batch_entries = EHR_METRIC(
        EHR_METRIC_COUNTER, "ehrgate_ledger_batch_entries_total", "Entries in committed ledger batches.");
static struct ehr_metric m_commit_us =
        EHR_METRIC(EHR_METRIC_COUNTER, "ehrgate_ledger_commit_microseconds_total",
                   "Time from taking a batch to its commit's answer (build, send, WAL flush), all batches.");
static struct ehr_metric m_appends = EHR_METRIC(EHR_METRIC_COUNTER, "ehrgate_ledger_appends_total",
                                                "Append requests (one or more entries) that were queued.");
static struct ehr_metric m_append_wait_us =
        EHR_METRIC(EHR_METRIC_COUNTER, "ehrgate_ledger_append_wait_microseconds_total",
                   "Time appenders waited from queueing to their batch's outcome.");
static struct ehr_metric *const metrics[] = { &m_batches, &m_batch_entries, &m_commit_us, &m_appends,
	                                      &m_append_wait_us };

void ledger__metrics_init(void)
{
	ehr_metric_register_all(metrics, EHR_ARRAY_LEN(metrics));
}

void ledger__metrics_waited(int64_t us)
{
	ehr_metric_inc(&m_appends, 0);
	ehr_metric_add(&m_append_wait_us, 0, us);
}

/* ----------------------------------------------------------- the writer */

/* The writer's own connection, replaced when the server closed it while
 * idle (a Postgres restart: checked before every batch, so the first
 * batch after the restart does not fail on the dead one). */
static int writer_connect(struct ledger *l)
{
	if (l->conn != NULL && ehr_db_conn_alive(l->conn))
		return 0;
	if (l->conn)
		PQfinish(l->conn);
	l->tip_valid = false;
	l->conn = PQconnectdb(l->conninfo);
	ehr_db_conn_quiet(l->conn);
	if (l->conn == NULL || PQstatus(l->conn) != CONNECTION_OK) {
		int err = ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "ledger writer: cannot connect",
		                               "ledger writer: cannot connect: %s",
		                               l->conn ? PQerrorMessage(l->conn) : "out of memory");

		PQfinish(l->conn);
		l->conn = NULL;
		return err;
	}
	return ledger__pg_simple(
	        l->conn, "SET synchronous_commit = on; SET application_name = 'ehrgate-ledger-writer'",
	        "session setup", NULL);
}

/* Inside the transaction and the lock: make l->tip / l->frontier current. */
static int load_tip(struct ledger *l, PGresult *r)
{
	struct ledger_block b;
	struct merkle_node_ref refs[LEDGER_MAX_LEVELS];
	unsigned n;

	if (PQntuples(r) == 0) {
		l->tip_empty = true;
		memset(&l->tip, 0, sizeof(l->tip));
		merkle__frontier_init(&l->frontier);
		l->tip_valid = true;
		return 0;
	}
	GUARD(ledger__row_block(&b, r, 0));
	if (l->tip_valid && !l->tip_empty && b.height == l->tip.height &&
	    memcmp(b.hash, l->tip.hash, LEDGER_HASH_LEN) == 0) /* not secret */
		return 0;                                      /* nobody else appended since our last batch */
	/* Another process appended: rebuild the right edge with one query. */
	n = merkle__frontier_refs(refs, b.tree_size);
	GUARD(ledger__fetch_nodes(l->conn, refs, n));
	merkle__frontier_init(&l->frontier);
	for (unsigned i = 0; i < n; i++)
		memcpy(l->frontier.h[i], refs[i].hash, LEDGER_HASH_LEN);
	l->frontier.n = n;
	l->frontier.size = b.tree_size;
	l->tip = b;
	l->tip_empty = false;
	l->tip_valid = true;
	return 0;
}

/* PostgreSQL binary COPY helpers. */
static int copy_field(struct ehr_buf *b, const void *p, size_t n)
{
	GUARD(ehr_buf_append_be32(b, (uint32_t)n));
	return ehr_buf_append(b, p, n);
}

static int copy_i64(struct ehr_buf *b, int64_t v)
{
	GUARD(ehr_buf_append_be32(b, 8));
	return ehr_buf_append_be64(b, (uint64_t)v);
}

static int hexlit(struct ehr_buf *sql, const uint8_t *p, size_t n)
{
	GUARD(ehr_buf_append(sql, "'\\x", 3));
	GUARD(ehr_hex_encode(sql, p, n));
	return ehr_buf_append(sql, "'::bytea", 8);
}

/*
 * Send a multi-statement simple query that contains one COPY ... FROM STDIN,
 * feeding it `copy` when the server asks, and drain every result. Returns
 * the first error; *tip_moved is set if it was ledger_expect_tip's 40001.
 */
static int send_script(struct ledger *l, const char *script, const struct ehr_buf *copy, bool *tip_moved)
{
	PGresult *r;
	int err = 0;

	*tip_moved = false;
	if (PQsendQuery(l->conn, script) != 1)
		return ledger__pg_fail(l->conn, NULL, "send");
	while ((r = PQgetResult(l->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(r);

		if (st == PGRES_COPY_IN) {
			if (PQputCopyData(l->conn, (const char *)copy->data, (int)copy->len) != 1 ||
			    PQputCopyEnd(l->conn, NULL) != 1) {
				if (err == 0)
					err = ledger__pg_fail(l->conn, NULL, "copy data");
			}
		} else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && err == 0) {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

			*tip_moved = state && strcmp(state, "40001") == 0;
			err = ledger__pg_fail(l->conn, r, "append");
		}
		PQclear(r);
		if (PQstatus(l->conn) != CONNECTION_OK) {
			if (err == 0)
				err = ledger__pg_fail(l->conn, NULL, "append");
			break;
		}
	}
	return err;
}

/* BEGIN, take the advisory lock and read the tip inside it (binary, for
 * exact bytes): the slow path, and the first batch of a writer. */
static int tip_reload(struct ledger *l)
{
	char q[128];
	PGresult *r;
	int err;

	GUARD(ehr_fmt(q, sizeof(q), "BEGIN; SELECT pg_advisory_xact_lock(%lld)", (long long)LEDGER_LOCK_KEY));
	GUARD(ledger__pg_simple(l->conn, q, "lock", NULL));
	r = PQexecParams(l->conn,
	                 "SELECT " LEDGER_BLOCK_COLS " FROM ledger_blocks ORDER BY height DESC LIMIT 1", 0,
	                 NULL, NULL, NULL, NULL, 1);
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK)
		err = ledger__pg_fail(l->conn, r, "read tip");
	else
		err = load_tip(l, r);
	PQclear(r);
	return err;
}

/*
 * Patch one encoded entry with its seq and the block's time, push its leaf
 * onto the frontier and append its COPY row (the leaf hash and the
 * subtrees it completes, docs/LEDGER.md §1/§4).
 */
static int copy_entry(struct ehr_buf *cb, struct ehr_buf *e, struct merkle_frontier *fr,
                      const struct ledger_block *blk, struct ledger_receipt *rc)
{
	uint8_t leaf[LEDGER_HASH_LEN], done[LEDGER_MAX_LEVELS][LEDGER_HASH_LEN];
	unsigned ndone, off = 17, tl, al, sl; /* field offsets in the encoding (LEDGER.md §1) */
	uint64_t seq = fr->size;

	put_be64(e->data + 1, seq);
	put_be64(e->data + 9, (uint64_t)blk->ts_ms);
	merkle_leaf_hash(leaf, e->data, e->len);
	merkle__frontier_push(fr, leaf, done, &ndone);
	tl = e->data[off];
	al = (unsigned)(e->data[off + 1 + tl] << 8 | e->data[off + 2 + tl]);
	sl = (unsigned)(e->data[off + 3 + tl + al] << 8 | e->data[off + 4 + tl + al]);
	GUARD(ehr_buf_append_be16(cb, 9));
	GUARD(copy_i64(cb, (int64_t)seq));
	GUARD(copy_i64(cb, blk->ts_ms));
	GUARD(copy_field(cb, e->data + off + 1, tl));
	GUARD(copy_field(cb, e->data + off + 3 + tl, al));
	GUARD(copy_field(cb, e->data + off + 5 + tl + al, sl));
	GUARD(copy_i64(cb, (int64_t)blk->height));
	GUARD(copy_field(cb, e->data, e->len));
	GUARD(copy_field(cb, leaf, LEDGER_HASH_LEN));
	GUARD(copy_field(cb, done, (size_t)ndone * LEDGER_HASH_LEN));
	rc->seq = seq;
	return 0;
}

/* The next block over the cached tip: every entry of every request in
 * order (so a request's entries get consecutive seqs), its root, header
 * hash, signature and checkpoint signature; the COPY stream in l->copybuf. */
static int build_block(struct ledger *l, struct ledger_req **reqs, unsigned n, struct merkle_frontier *fr,
                       struct ledger_block *blk)
{
	static const char copy_sig[] = "PGCOPY\n\377\r\n";
	struct ehr_buf *cb = &l->copybuf;
	struct ehr_buf body = EHR_BUF_INIT(1024);
	uint8_t header[LEDGER_BLOCK_HEADER_LEN];
	int64_t now = ehr_now_ms();
	int err = 0;

	*fr = l->frontier;
	memset(blk, 0, sizeof(*blk));
	blk->ts_ms = now;
	if (!l->tip_empty) {
		blk->height = l->tip.height + 1;
		memcpy(blk->prev_hash, l->tip.hash, LEDGER_HASH_LEN);
		blk->ts_ms = now > l->tip.ts_ms ? now : l->tip.ts_ms; /* never goes back */
	}
	/* PostgreSQL binary COPY format */
	ehr_buf_reset(cb);
	GUARD_GOTO(ehr_buf_append(cb, copy_sig, 11));
	GUARD_GOTO(ehr_buf_append_be32(cb, 0));
	GUARD_GOTO(ehr_buf_append_be32(cb, 0));
	for (unsigned i = 0; i < n; i++)
		for (size_t k = 0; k < reqs[i]->n; k++)
			GUARD_GOTO(copy_entry(cb, &reqs[i]->enc[k], fr, blk, &reqs[i]->rcpts[k]));
	GUARD_GOTO(ehr_buf_append_be16(cb, 0xffff));
	blk->tree_size = fr->size;
	merkle__frontier_root(fr, blk->root);
	ledger_block_header(header, blk);
	ledger__sha256(blk->hash, header, sizeof(header), NULL, 0);
	GUARD_GOTO(ledger_ed25519_sign(blk->sig, l->key, header, sizeof(header)));
	GUARD_GOTO(ledger_checkpoint_body(&body, l->origin, blk->tree_size, blk->root));
	GUARD_GOTO(ledger_ed25519_sign(blk->cp_sig, l->key, body.data, body.len));
out:
	ehr_buf_free(&body);
	return err;
}

/* The one script: on the fast path lock + ledger_expect_tip first (40001
 * if another process appended), then COPY, the block, NOTIFY, COMMIT. */
static int build_script(struct ledger *l, struct ehr_buf *sql, const struct ledger_block *blk, bool fast)
{
	char *origin_lit = PQescapeLiteral(l->conn, l->origin, strlen(l->origin));
	int err = 0;

	ENSURE_GOTO(origin_lit != NULL, EHR_ERR_NOMEM);
	if (fast) {
		GUARD_GOTO(ehr_buf_printf(sql, "BEGIN; SELECT pg_advisory_xact_lock(%lld); ",
		                          (long long)LEDGER_LOCK_KEY));
		if (l->tip_empty)
			GUARD_GOTO(ehr_buf_append_str(sql, "SELECT ledger_expect_tip(NULL); "));
		else
			GUARD_GOTO(ehr_buf_printf(sql, "SELECT ledger_expect_tip(%llu); ",
			                          (unsigned long long)l->tip.height));
	}
	GUARD_GOTO(ehr_buf_append_str(sql,
	                              "COPY ledger_entries (seq, ts_ms, type, actor, subject, block_height, "
	                              "entry, leaf_hash, nodes) FROM STDIN (FORMAT binary); "));
	GUARD_GOTO(ehr_buf_printf(sql, "INSERT INTO ledger_blocks (" LEDGER_BLOCK_COLS ") VALUES (%llu, ",
	                          (unsigned long long)blk->height));
	GUARD_GOTO(hexlit(sql, blk->prev_hash, LEDGER_HASH_LEN));
	GUARD_GOTO(ehr_buf_printf(sql, ", %llu, ", (unsigned long long)blk->tree_size));
	GUARD_GOTO(hexlit(sql, blk->root, LEDGER_HASH_LEN));
	GUARD_GOTO(ehr_buf_printf(sql, ", %lld, ", (long long)blk->ts_ms));
	GUARD_GOTO(hexlit(sql, blk->hash, LEDGER_HASH_LEN));
	GUARD_GOTO(ehr_buf_append(sql, ", ", 2));
	GUARD_GOTO(hexlit(sql, blk->sig, LEDGER_SIG_LEN));
	GUARD_GOTO(ehr_buf_printf(sql, ", %s, ", origin_lit));
	GUARD_GOTO(hexlit(sql, blk->cp_sig, LEDGER_SIG_LEN));
	GUARD_GOTO(ehr_buf_printf(sql, "); NOTIFY " LEDGER_NOTIFY_CHANNEL ", '%llu'; COMMIT",
	                          (unsigned long long)(blk->tree_size - 1)));
out:
	PQfreemem(origin_lit);
	return err;
}

/* Durable: publish the receipts and the new tip. */
static void publish(struct ledger *l, struct ledger_req **reqs, unsigned n, const struct merkle_frontier *fr,
                    const struct ledger_block *blk)
{
	for (unsigned i = 0; i < n; i++)
		for (size_t k = 0; k < reqs[i]->n; k++) {
			struct ledger_receipt *rc = &reqs[i]->rcpts[k];

			rc->block_height = blk->height;
			rc->tree_size = blk->tree_size;
			rc->ts_ms = blk->ts_ms;
			memcpy(rc->root, blk->root, LEDGER_HASH_LEN);
		}
	l->frontier = *fr;
	l->tip = *blk;
	/* ledger_open refused an origin that does not fit here: cannot fail (if it did, the
	 * tip is reloaded from the database on the next batch). */
	l->tip_empty = false;
	l->tip_valid = ehr_str_copy(l->tip.origin, sizeof(l->tip.origin), l->origin) == 0;
}

/*
 * Nothing of a failed batch is acknowledged. If the connection was lost
 * during COMMIT the outcome is unknown to us; verification and the tip
 * reload on the next batch see whatever committed. Returns err, its
 * message kept across the rollback.
 */
static int batch_fail(struct ledger *l, int err)
{
	struct ehr_error_saved saved;

	ehr_error_save(&saved);
	l->tip_valid = false;
	if (l->conn && PQstatus(l->conn) == CONNECTION_OK && PQtransactionStatus(l->conn) != PQTRANS_IDLE)
		ledger__pg_simple(l->conn, "ROLLBACK", "rollback", NULL);
	if (l->conn && PQstatus(l->conn) != CONNECTION_OK) {
		PQfinish(l->conn);
		l->conn = NULL;
	}
	ehr_error_restore(&saved);
	return err;
}

/*
 * One attempt at committing reqs[0..n) as one block. The fast path trusts
 * the cached tip and sends everything in one script (one round trip plus
 * the COPY data): lock, ledger_expect_tip (which raises 40001 if another
 * process appended meanwhile), COPY, block, NOTIFY, COMMIT. The slow path
 * first reads the tip inside the lock. Either way one transaction.
 */
static int batch_try(struct ledger *l, struct ledger_req **reqs, unsigned n, bool fast, bool *tip_moved)
{
	struct merkle_frontier fr;
	struct ledger_block blk;
	struct ehr_buf sql = EHR_BUF_INIT(16 * 1024);
	int err = 0;

	*tip_moved = false;
	GUARD(writer_connect(l));
	if (!fast || !l->tip_valid) {
		GUARD_GOTO(tip_reload(l));
		fast = false;
	}
	GUARD_GOTO(build_block(l, reqs, n, &fr, &blk));
	GUARD_GOTO(build_script(l, &sql, &blk, fast));
	GUARD_GOTO(send_script(l, ehr_buf_cstr(&sql), &l->copybuf, tip_moved));
	if (PQtransactionStatus(l->conn) != PQTRANS_IDLE) {
		err = ehr_error_set(EHR_ERR_DB, "ledger: commit did not end the transaction");
		goto out;
	}
	publish(l, reqs, n, &fr, &blk);
out:
	if (err < 0)
		err = batch_fail(l, err);
	ehr_buf_free(&sql);
	return err;
}

/* Commit reqs[0..n) as one block. On success fills each receipt. */
static int commit_batch(struct ledger *l, struct ledger_req **reqs, unsigned n)
{
	bool moved = false;
	int err = batch_try(l, reqs, n, true, &moved);

	if (err < 0 && moved) /* another process appended: reload the tip, once */
		err = batch_try(l, reqs, n, false, &moved);
	return err;
}

/*
 * Linger (at most batch_ms) only while fewer entries are queued than were
 * in flight when the previous batch completed (its entries plus those that
 * queued during its commit): those appenders are about to re-queue, so the
 * batch fills at once, while a lone appender never waits. batch_ms = 0: no
 * linger. Called with l->mu held.
 */
static void linger(struct ledger *l)
{
	size_t target = l->last_batch < l->batch_max ? l->last_batch : l->batch_max;
	struct timespec ts;

	if (l->batch_ms == 0 || l->queued >= target || l->stopping)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)l->batch_ms * 1000000L;
	while (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (l->queued < target && !l->stopping &&
	       pthread_cond_timedwait(&l->work, &l->mu, &ts) != ETIMEDOUT)
		;
}

/*
 * Take whole requests from the queue while their entries fit in batch_max.
 * A request is never split: one larger than batch_max is taken alone, as
 * its own block. Called with l->mu held; returns the number of requests.
 */
static unsigned take_batch(struct ledger *l, struct ledger_req **batch)
{
	unsigned n = 0;
	size_t entries = 0;

	while (l->head != NULL && n < l->batch_max && (n == 0 || entries + l->head->n <= l->batch_max)) {
		entries += l->head->n;
		batch[n++] = l->head;
		l->head = l->head->next;
		l->queued -= batch[n - 1]->n;
	}
	if (l->head == NULL)
		l->tail = NULL;
	return n;
}

/* The writer could not allocate its batch: fail every queued request. */
static void fail_all(struct ledger *l)
{
	for (struct ledger_req *q = l->head; q; q = l->head) {
		l->head = q->next;
		q->rc = EHR_ERR_NOMEM;
		ehr_error_set(EHR_ERR_NOMEM, "ledger writer out of memory");
		ehr_error_save(&q->err);
		sem_post(&q->done);
	}
	l->tail = NULL;
	l->queued = 0;
}

void *ledger__writer_main(void *arg)
{
	struct ledger *l = arg;
	struct ledger_req **batch = calloc(l->batch_max, sizeof(*batch));

	pthread_mutex_lock(&l->mu);
	for (;;) {
		unsigned n;
		int rc;

		while (l->head == NULL && !l->stopping)
			pthread_cond_wait(&l->work, &l->mu);
		if (l->head == NULL && l->stopping)
			break;
		if (batch == NULL) {
			fail_all(l);
			continue;
		}
		linger(l);
		n = take_batch(l, batch);
		pthread_mutex_unlock(&l->mu);

		int64_t t0 = ehr_monotonic_us();
		rc = commit_batch(l, batch, n);
		ehr_metric_add(&m_commit_us, 0, ehr_monotonic_us() - t0);
		ehr_metric_inc(&m_batches, rc < 0 ? 1 : 0);
		if (rc < 0)
			ehr_logf(EHR_LOG_ERROR, "ledger.batch_failed", "batch of %u requests failed: %s", n,
			         ehr_error_detail());
		/*
		 * Wake the waiters outside the mutex (sem_post), so that 256
		 * woken appenders do not pile up on l->mu. The semaphore
		 * publishes rc/receipts to the waiter; glibc allows the waiter
		 * to destroy it as soon as sem_wait returns.
		 */
		size_t entries = 0;
		for (unsigned i = 0; i < n; i++) {
			entries += batch[i]->n;
			batch[i]->rc = rc;
			if (rc < 0)
				ehr_error_save(&batch[i]->err);
		}
		if (rc == 0)
			ehr_metric_add(&m_batch_entries, 0, (int64_t)entries);
		pthread_mutex_lock(&l->mu);
		l->last_batch = entries + l->queued; /* in flight when this batch completed */
		pthread_mutex_unlock(&l->mu);
		for (unsigned i = 0; i < n; i++)
			sem_post(&batch[i]->done);
		pthread_mutex_lock(&l->mu);
	}
	pthread_mutex_unlock(&l->mu);
	free(batch);
	return NULL;
}
