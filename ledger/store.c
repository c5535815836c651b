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
#include "ledger/store_internal.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

/* ------------------------------------------------------------ db helpers */

/*
 * The one SQLSTATE map (ehr_db_sqlstate_err), except that the writer never
 * reported a cancelled statement (57014) as a timeout: it stays EHR_ERR_DB.
 * The public message names the step and the SQLSTATE; libpq's text, which
 * may quote values, goes to the log detail only.
 */
int ledger__pg_fail(PGconn *c, PGresult *r, const char *what)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
	int code = ehr_db_sqlstate_err(state, PQstatus(c) == CONNECTION_OK);
	char pub[128];

	if (code == EHR_ERR_TIMEOUT)
		code = EHR_ERR_DB;
	if (ehr_fmt(pub, sizeof(pub), "ledger %s: database error %s", what, state ? state : "-") < 0)
		ehr_error_clear(); /* `what` is one of our short literals: cannot happen; pub is "" */
	return ehr_error_set_detail(code, pub[0] ? pub : NULL, "ledger %s: %s %s", what, state ? state : "",
	                            msg ? msg : "");
}

/* Simple-protocol exec expecting success; the result is discarded unless
 * out is given. */
int ledger__pg_simple(PGconn *c, const char *sql, const char *what, PGresult **out)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int err;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		err = ledger__pg_fail(c, r, what);
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

/* A row of LEDGER_BLOCK_COLS fetched in binary format. */
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
		err = ledger__pg_fail(conn, r, "fetch nodes");
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

/* ------------------------------------------------------------ public API */

/* Everything a ledger holds, with no writer running: ledger_open's failure
 * path and ledger_close share it. */
static void ledger_free(struct ledger *l)
{
	if (l->conn)
		PQfinish(l->conn);
	if (l->own_db)
		ehr_db_pool_free(l->db);
	EVP_PKEY_free(l->key);
	free(l->conninfo);
	free(l->origin);
	ehr_buf_free(&l->copybuf);
	ehr_buf_free(&l->nodesbuf);
	ledger__entry_cache_free(l->ecache);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->work);
	free(l);
}

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
	l->ecache = ledger__entry_cache_new();
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
	l->witnessed = cfg->witnessed;
	if (cfg->db != NULL) {
		l->db = cfg->db;
	} else {
		GUARD_GOTO(ehr_db_pool_new(&l->db, cfg->conninfo, 4, 5000, 60000));
		l->own_db = true;
	}
	ledger__metrics_init();
	if (pthread_create(&l->writer, NULL, ledger__writer_main, l) != 0) {
		err = ehr_error_set(EHR_ERR_INTERNAL, "cannot start the ledger writer");
		goto out;
	}
	*out = l;
	return 0;
out:
	ledger_free(l);
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
	ledger_free(l);
}

/* Queue req and sleep until the writer has committed or failed its batch.
 * req lives on the caller's stack until the writer has posted req->done,
 * and we do not return before that: the queue never holds a dead request. */
static int enqueue_wait(struct ledger *l, struct ledger_req *req)
{
	int64_t t0 = ehr_monotonic_us();

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
	ledger__metrics_waited(ehr_monotonic_us() - t0);
	if (req->rc < 0) {
		ehr_error_restore(&req->err);
		return req->rc;
	}
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
struct ehr_db_pool *ledger__pool(struct ledger *l)
{
	return l->db;
}

bool ledger__witnessed(const struct ledger *l)
{
	return l->witnessed;
}

struct ledger__entry_cache *ledger__ecache(struct ledger *l)
{
	return l->ecache;
}
