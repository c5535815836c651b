/*
 * ledger_store.c - the PostgreSQL ledger: open/close, group commit.
 *
 * Appenders (any thread) encode and validate their entries, queue them as
 * one request and sleep. One writer thread with its own connection takes
 * whole requests (up to batch_max entries; a larger request alone), and in
 * ONE transaction: takes the advisory lock, reads
 * the tip, assigns seqs, hashes leaves and completed subtrees, COPYs the
 * entries, inserts the signed block and NOTIFYs; then COMMIT with
 * synchronous_commit=on. Only after COMMIT returns are the appenders woken,
 * each with its receipt, or all with the same error (the whole batch rolled
 * back). docs/LEDGER.md §3-§5.
 */
#include "common/db.h"
#include "ledger/ledger_internal.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

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
	char errmsg[256];
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

/* ------------------------------------------------------------ db helpers */

int ledger__exec(void *conn, void **res, const char *sql, int nparams, const char *const *params)
{
	return ehr_db_exec(conn, res, sql, nparams, params);
}

static int pg_fail(PGconn *c, PGresult *r, const char *what)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
	int code = EHR_ERR_DB;

	if (PQstatus(c) != CONNECTION_OK)
		code = EHR_ERR_UNAVAILABLE;
	else if (state && strcmp(state, "23505") == 0)
		code = EHR_ERR_CONFLICT;
	else if (state && (strcmp(state, "42501") == 0 || strcmp(state, "P0001") == 0))
		code = EHR_ERR_FORBIDDEN;
	return ehr_error_set(code, "ledger %s: %s %s", what, state ? state : "", msg ? msg : "");
}

/* Simple-protocol exec expecting success; the result is discarded unless
 * out is given. */
static int pg_simple(PGconn *c, const char *sql, const char *what, PGresult **out)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int err;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		err = pg_fail(c, r, what);
		PQclear(r);
		return err;
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return 0;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* Copy a binary-format bytea column of exactly n bytes. */
static int col_bytes(uint8_t *dst, size_t n, PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col) || (size_t)PQgetlength(r, row, col) != n)
		return ehr_error_set(EHR_ERR_TAMPER, "ledger: column %d of row %d is not %zu bytes", col, row,
		                     n);
	memcpy(dst, PQgetvalue(r, row, col), n);
	return 0;
}

static int col_i64(int64_t *v, PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
		return ehr_error_set(EHR_ERR_DB, "ledger: column %d is not int8", col);
	*v = (int64_t)get_be64((const uint8_t *)PQgetvalue(r, row, col));
	return 0;
}

#define BLOCK_COLS "height, prev_hash, tree_size, root, ts_ms, hash, sig, origin, cp_sig"

/* A row of BLOCK_COLS fetched in binary format. */
int ledger__row_block(struct ledger_block *b, void *res, int row)
{
	PGresult *r = res;
	int64_t v;
	int len;

	memset(b, 0, sizeof(*b));
	GUARD(col_i64(&v, r, row, 0));
	b->height = (uint64_t)v;
	GUARD(col_bytes(b->prev_hash, LEDGER_HASH_LEN, r, row, 1));
	GUARD(col_i64(&v, r, row, 2));
	b->tree_size = (uint64_t)v;
	GUARD(col_bytes(b->root, LEDGER_HASH_LEN, r, row, 3));
	GUARD(col_i64(&b->ts_ms, r, row, 4));
	GUARD(col_bytes(b->hash, LEDGER_HASH_LEN, r, row, 5));
	GUARD(col_bytes(b->sig, LEDGER_SIG_LEN, r, row, 6));
	len = PQgetlength(r, row, 7);
	if (len <= 0 || (size_t)len >= sizeof(b->origin))
		return ehr_error_set(EHR_ERR_TAMPER, "ledger: block origin length");
	memcpy(b->origin, PQgetvalue(r, row, 7), (size_t)len);
	b->origin[len] = '\0';
	return col_bytes(b->cp_sig, LEDGER_SIG_LEN, r, row, 8);
}

/*
 * Fetch perfect-subtree hashes: node (level, idx) is stored in the row of
 * its last leaf, seq = ((idx + 1) << level) - 1, as leaf_hash (level 0) or
 * bytes [(level-1)*32, level*32) of nodes. One query for all of them.
 */
int ledger__fetch_nodes(void *conn, struct merkle_node_ref *refs, size_t n)
{
	struct ehr_buf arr = EHR_BUF_INIT(64 * 1024);
	const char *params[1];
	int formats[1] = { 0 };
	PGresult *r = NULL;
	int err = 0;

	GUARD_GOTO(ehr_buf_append_u8(&arr, '{'));
	for (size_t i = 0; i < n; i++) {
		ENSURE_GOTO(refs[i].level < 63 && refs[i].idx < (UINT64_C(1) << (63 - refs[i].level)),
		            EHR_ERR_INVAL);
		GUARD_GOTO(ehr_buf_printf(&arr, "%s%llu", i ? "," : "",
		                          (unsigned long long)(((refs[i].idx + 1) << refs[i].level) - 1)));
	}
	GUARD_GOTO(ehr_buf_append_u8(&arr, '}'));
	params[0] = ehr_buf_cstr(&arr);
	r = PQexecParams(conn,
	                 "SELECT seq, leaf_hash, nodes FROM ledger_entries WHERE seq = ANY($1::bigint[])", 1,
	                 NULL, params, NULL, formats, 1);
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
		err = pg_fail(conn, r, "fetch nodes");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t want = ((refs[i].idx + 1) << refs[i].level) - 1;
		bool found = false;

		for (int row = 0; row < PQntuples(r) && !found; row++) {
			int64_t seq;

			GUARD_GOTO(col_i64(&seq, r, row, 0));
			if ((uint64_t)seq != want)
				continue;
			found = true;
			if (refs[i].level == 0) {
				GUARD_GOTO(col_bytes(refs[i].hash, LEDGER_HASH_LEN, r, row, 1));
			} else {
				size_t off = (size_t)(refs[i].level - 1) * LEDGER_HASH_LEN;

				ENSURE_GOTO((size_t)PQgetlength(r, row, 2) >= off + LEDGER_HASH_LEN,
				            EHR_ERR_TAMPER);
				memcpy(refs[i].hash, PQgetvalue(r, row, 2) + off, LEDGER_HASH_LEN);
			}
		}
		if (!found) {
			err = ehr_error_set(EHR_ERR_NOT_FOUND, "ledger: no entry %llu",
			                    (unsigned long long)want);
			goto out;
		}
	}
out:
	PQclear(r);
	ehr_buf_free(&arr);
	return err;
}

/* ----------------------------------------------------------- the writer */

static int writer_connect(struct ledger *l)
{
	if (l->conn != NULL && PQstatus(l->conn) == CONNECTION_OK)
		return 0;
	if (l->conn)
		PQfinish(l->conn);
	l->tip_valid = false;
	l->conn = PQconnectdb(l->conninfo);
	if (l->conn == NULL || PQstatus(l->conn) != CONNECTION_OK) {
		int err = ehr_error_set(EHR_ERR_UNAVAILABLE, "ledger writer: cannot connect: %s",
		                        l->conn ? PQerrorMessage(l->conn) : "out of memory");

		PQfinish(l->conn);
		l->conn = NULL;
		return err;
	}
	return pg_simple(l->conn,
	                 "SET synchronous_commit = on; SET application_name = 'ehrgate-ledger-writer'",
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
		return pg_fail(l->conn, NULL, "send");
	while ((r = PQgetResult(l->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(r);

		if (st == PGRES_COPY_IN) {
			if (PQputCopyData(l->conn, (const char *)copy->data, (int)copy->len) != 1 ||
			    PQputCopyEnd(l->conn, NULL) != 1) {
				if (err == 0)
					err = pg_fail(l->conn, NULL, "copy data");
			}
		} else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && err == 0) {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

			*tip_moved = state && strcmp(state, "40001") == 0;
			err = pg_fail(l->conn, r, "append");
		}
		PQclear(r);
		if (PQstatus(l->conn) != CONNECTION_OK) {
			if (err == 0)
				err = pg_fail(l->conn, NULL, "append");
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

	snprintf(q, sizeof(q), "BEGIN; SELECT pg_advisory_xact_lock(%lld)", (long long)LEDGER_LOCK_KEY);
	GUARD(pg_simple(l->conn, q, "lock", NULL));
	r = PQexecParams(l->conn, "SELECT " BLOCK_COLS " FROM ledger_blocks ORDER BY height DESC LIMIT 1", 0,
	                 NULL, NULL, NULL, NULL, 1);
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK)
		err = pg_fail(l->conn, r, "read tip");
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
	GUARD_GOTO(ehr_buf_printf(sql, "INSERT INTO ledger_blocks (" BLOCK_COLS ") VALUES (%llu, ",
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
	snprintf(l->tip.origin, sizeof(l->tip.origin), "%s", l->origin);
	l->tip_empty = false;
	l->tip_valid = true;
}

/*
 * Nothing of a failed batch is acknowledged. If the connection was lost
 * during COMMIT the outcome is unknown to us; verification and the tip
 * reload on the next batch see whatever committed. Returns err, its
 * message kept across the rollback.
 */
static int batch_fail(struct ledger *l, int err)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", ehr_error_msg());
	l->tip_valid = false;
	if (l->conn && PQstatus(l->conn) == CONNECTION_OK && PQtransactionStatus(l->conn) != PQTRANS_IDLE)
		pg_simple(l->conn, "ROLLBACK", "rollback", NULL);
	if (l->conn && PQstatus(l->conn) != CONNECTION_OK) {
		PQfinish(l->conn);
		l->conn = NULL;
	}
	return ehr_error_set(err, "%s", msg);
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
		snprintf(q->errmsg, sizeof(q->errmsg), "ledger writer out of memory");
		sem_post(&q->done);
	}
	l->tail = NULL;
	l->queued = 0;
}

static void *writer_main(void *arg)
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

		rc = commit_batch(l, batch, n);
		if (rc < 0)
			ehr_logf(EHR_LOG_ERROR, "ledger.batch_failed", "batch of %u requests failed: %s", n,
			         ehr_error_msg());
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
				snprintf(batch[i]->errmsg, sizeof(batch[i]->errmsg), "%s", ehr_error_msg());
		}
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

/* ------------------------------------------------------------ public API */

int ledger_open(struct ledger **out, const struct ledger_config *cfg)
{
	struct ledger *l;
	int err = 0;

	*out = NULL;
	ENSURE(cfg != NULL && cfg->conninfo != NULL && cfg->origin != NULL && cfg->signing_key != NULL,
	       EHR_ERR_INVAL);
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->work, NULL);
	ehr_buf_init(&l->copybuf, 256u * 1024 * 1024);
	l->conninfo = strdup(cfg->conninfo);
	l->origin = strdup(cfg->origin);
	ENSURE_GOTO(l->conninfo != NULL && l->origin != NULL, EHR_ERR_NOMEM);
	if (strlen(cfg->origin) >= sizeof(l->tip.origin)) {
		err = ehr_error_set(EHR_ERR_CONFIG, "ledger origin too long");
		goto out;
	}
	{
		struct ehr_buf probe = EHR_BUF_INIT(512);
		uint8_t z[LEDGER_HASH_LEN] = { 0 };

		err = ledger_checkpoint_body(&probe, cfg->origin, 0, z);
		ehr_buf_free(&probe);
		if (err < 0) {
			err = ehr_error_set(EHR_ERR_CONFIG,
			                    "ledger origin must be a key name (no spaces or '+')");
			goto out;
		}
	}
	GUARD_GOTO(ledger_key_raw_public(l->pub, cfg->signing_key));
	ENSURE_GOTO(EVP_PKEY_up_ref(cfg->signing_key) == 1, EHR_ERR_CRYPTO);
	l->key = cfg->signing_key;
	l->batch_max = cfg->batch_max ? cfg->batch_max : 512;
	if (l->batch_max > 65536)
		l->batch_max = 65536;
	l->batch_ms = cfg->batch_ms;
	if (cfg->db != NULL) {
		l->db = cfg->db;
	} else {
		GUARD_GOTO(ehr_db_pool_new(&l->db, cfg->conninfo, 4, 5000, 60000));
		l->own_db = true;
	}
	if (pthread_create(&l->writer, NULL, writer_main, l) != 0) {
		err = ehr_error_set(EHR_ERR_INTERNAL, "cannot start the ledger writer");
		goto out;
	}
	*out = l;
	return 0;
out:
	if (l->own_db)
		ehr_db_pool_free(l->db);
	EVP_PKEY_free(l->key);
	free(l->conninfo);
	free(l->origin);
	ehr_buf_free(&l->copybuf);
	free(l);
	return err;
}

void ledger_close(struct ledger *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->stopping = true;
	pthread_cond_broadcast(&l->work);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->writer, NULL);
	if (l->conn)
		PQfinish(l->conn);
	if (l->own_db)
		ehr_db_pool_free(l->db);
	EVP_PKEY_free(l->key);
	free(l->conninfo);
	free(l->origin);
	ehr_buf_free(&l->copybuf);
	ehr_buf_free(&l->nodesbuf);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->work);
	free(l);
}

/* Queue req and sleep until the writer has committed or failed its batch.
 * req lives on the caller's stack until the writer has posted req->done,
 * and we do not return before that: the queue never holds a dead request. */
static int enqueue_wait(struct ledger *l, struct ledger_req *req)
{
	pthread_mutex_lock(&l->mu);
	if (l->stopping) {
		pthread_mutex_unlock(&l->mu);
		return ehr_error_set(EHR_ERR_UNAVAILABLE, "ledger is closing");
	}
	if (l->tail)
		l->tail->next = req;
	else
		l->head = req;
	l->tail = req;
	l->queued += req->n;
	pthread_cond_signal(&l->work);
	pthread_mutex_unlock(&l->mu);
	while (sem_wait(&req->done) != 0)
		; /* EINTR */
	if (req->rc < 0)
		return ehr_error_set(req->rc, "%s", req->errmsg);
	return 0;
}

int ledger_append_n(struct ledger *l, const struct ledger_entry_in *in, size_t n,
                    struct ledger_receipt *rcpts)
{
	struct ledger_req req;
	size_t encoded = 0;
	int err = 0;

	ENSURE(l != NULL && in != NULL && n > 0 && n <= LEDGER_APPEND_N_MAX, EHR_ERR_INVAL);
	memset(&req, 0, sizeof(req));
	req.n = n;
	req.enc = calloc(n, sizeof(*req.enc));
	req.rcpts = calloc(n, sizeof(*req.rcpts));
	ENSURE_GOTO(req.enc != NULL && req.rcpts != NULL, EHR_ERR_NOMEM);
	/* Validate and serialise here, on the caller's thread, in parallel: an
	 * invalid entry anywhere means none of them is queued. */
	for (; encoded < n; encoded++) {
		ehr_buf_init(&req.enc[encoded], 1024 + LEDGER_MAX_PAYLOAD);
		GUARD_GOTO(ledger_entry_encode(&req.enc[encoded], 0, 0, &in[encoded]));
	}
	sem_init(&req.done, 0, 0);
	err = enqueue_wait(l, &req);
	sem_destroy(&req.done);
	if (err == 0 && rcpts)
		memcpy(rcpts, req.rcpts, n * sizeof(*rcpts));
out:
	for (size_t i = 0; req.enc && i < n; i++) /* calloc: unused ones are empty */
		ehr_buf_free(&req.enc[i]);
	free(req.enc);
	free(req.rcpts);
	return err;
}

int ledger_append(struct ledger *l, const struct ledger_entry_in *in, struct ledger_receipt *rcpt)
{
	return ledger_append_n(l, in, 1, rcpt);
}

void ledger_public_key(struct ledger *l, uint8_t out[32])
{
	memcpy(out, l->pub, 32);
}

const char *ledger_origin(struct ledger *l)
{
	return l->origin;
}

/* For ledger_read.c. */
struct ehr_db_pool *ledger__pool(struct ledger *l);
struct ehr_db_pool *ledger__pool(struct ledger *l)
{
	return l->db;
}
