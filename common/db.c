/* db.c - a small PostgreSQL connection pool with bounded waits. */
#include "common/db.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-events.h>
#include <libpq-fe.h>

#include "common/metrics.h"

struct db_slot {
	PGconn *conn;
	bool busy;
};

struct ehr_db_pool {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	char *conninfo;
	char options[64];
	unsigned size;
	unsigned acquire_timeout_ms;
	struct db_slot *slots;
};

/* Where a request's database time starts: waiting for a pooled connection
 * (and checking or opening it). Summed over every pool of the process. */
static struct ehr_metric m_acquires = EHR_METRIC(EHR_METRIC_COUNTER, "ehrgate_db_acquires_total",
                                                 "Pooled database connections handed out.");
static struct ehr_metric m_acquire_us = EHR_METRIC(
        EHR_METRIC_COUNTER, "ehrgate_db_acquire_wait_microseconds_total",
        "Time spent getting a pooled database connection: waiting for a free one, checking it, opening it.");
static struct ehr_metric *const metrics[] = { &m_acquires, &m_acquire_us };

int ehr_db_pool_new(struct ehr_db_pool **out, const char *conninfo, unsigned size,
                    unsigned acquire_timeout_ms, unsigned statement_timeout_ms)
{
	struct ehr_db_pool *p;
	pthread_condattr_t ca;

	ENSURE(size > 0 && size <= 1024, EHR_ERR_INVAL);
	ehr_metric_register_all(metrics, EHR_ARRAY_LEN(metrics));
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	p->slots = calloc(size, sizeof(*p->slots));
	p->conninfo = strdup(conninfo);
	if (p->slots == NULL || p->conninfo == NULL) {
		free(p->slots);
		free(p->conninfo);
		free(p);
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	}
	p->size = size;
	p->acquire_timeout_ms = acquire_timeout_ms;
	if (ehr_fmt(p->options, sizeof(p->options), "-c statement_timeout=%u", statement_timeout_ms) < 0) {
		free(p->slots);
		free(p->conninfo);
		free(p);
		return EHR_ERR_TOO_LARGE;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->freed, &ca);
	pthread_condattr_destroy(&ca);
	*out = p;
	return 0;
}

void ehr_db_pool_free(struct ehr_db_pool *p)
{
	if (p == NULL)
		return;
	for (unsigned i = 0; i < p->size; i++)
		if (p->slots[i].conn)
			PQfinish(p->slots[i].conn);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->freed);
	free(p->slots);
	free(p->conninfo);
	free(p);
}

/* The server's words to an idle connection (its shutdown notice) are not
 * ours to print on stderr: ehr_db_conn_alive turns them into a reconnect. */
static void db_quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* ------------------------------------------------- prepared statements */

/*
 * Each pooled connection prepares the statements it runs, once, under a
 * name of its own, and runs them by that name afterwards: the server then
 * skips parse, analysis and (once it settles on a generic plan) planning,
 * which was about a third of its time on the request path. The cache
 * rides on the PGconn as libpq event data, so a reset (PQreset: the
 * server forgot the statements) clears it and PQfinish frees it. It holds
 * at most DB_STMT_MAX statements and DB_STMT_BYTES of SQL text; others run
 * unnamed, as before. A statement is found by its full text.
 */
#define DB_STMT_MAX 96
#define DB_STMT_BYTES (48u * 1024u)

struct db_stmt {
	uint64_t hash;
	char *sql;
};

struct db_stmts {
	unsigned n;
	size_t bytes;
	int64_t alive_ms; /* when the connection was last seen working */
	struct db_stmt s[DB_STMT_MAX];
};

/* Checked within this long (on acquire, or before an earlier statement):
 * a statement outside a transaction goes out without another poll(2). A
 * server that went away since can only be in its outage, when a fresh
 * connection would fail as well; the pool still checks on every acquire. */
#define DB_ALIVE_RECENT_MS 100

static void stmts_clear(struct db_stmts *st)
{
	if (st == NULL)
		return;
	for (unsigned i = 0; i < st->n; i++)
		free(st->s[i].sql);
	st->n = 0;
	st->bytes = 0;
}

static int stmts_event(PGEventId id, void *info, void *pass)
{
	(void)pass;
	if (id == PGEVT_CONNRESET) {
		PGconn *c = ((PGEventConnReset *)info)->conn;

		stmts_clear(PQinstanceData(c, stmts_event));
	} else if (id == PGEVT_CONNDESTROY) {
		PGconn *c = ((PGEventConnDestroy *)info)->conn;
		struct db_stmts *st = PQinstanceData(c, stmts_event);

		stmts_clear(st);
		free(st);
	}
	return 1;
}

/* Give c a statement cache; without one (no memory) it runs unnamed. */
static void stmts_attach(PGconn *c)
{
	struct db_stmts *st;

	if (c == NULL || (st = calloc(1, sizeof(*st))) == NULL)
		return;
	if (PQregisterEventProc(c, stmts_event, "ehrgate statements", NULL) != 1 ||
	    PQsetInstanceData(c, stmts_event, st) != 1)
		free(st);
}

static uint64_t stmt_hash(const char *sql)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */

	for (; *sql; sql++)
		h = (h ^ (uint8_t)*sql) * 1099511628211ull;
	return h;
}

/*
 * The name sql is prepared under on c, preparing it now if c has room:
 * 1 with name set, 0 to run it unnamed. A prepare the server refused
 * (the statement is wrong, or the transaction failed) returns -1 with its
 * result in *failed, to be reported as the statement's own; one lost
 * with the connection returns 0 (the send fails next, and may be retried).
 */
static int stmt_name(PGconn *c, const char *sql, int nparams, char name[16], PGresult **failed)
{
	struct db_stmts *st = PQinstanceData(c, stmts_event);
	uint64_t h;
	size_t len;
	PGresult *r;
	char *copy;

	if (st == NULL)
		return 0;
	h = stmt_hash(sql);
	for (unsigned i = 0; i < st->n; i++)
		if (st->s[i].hash == h && strcmp(st->s[i].sql, sql) == 0)
			return ehr_fmt(name, 16, "ehr_%u", i) < 0 ? 0 : 1;
	len = strlen(sql);
	if (st->n == DB_STMT_MAX || st->bytes + len > DB_STMT_BYTES ||
	    ehr_fmt(name, 16, "ehr_%u", st->n) < 0 || (copy = strdup(sql)) == NULL)
		return 0;
	r = PQprepare(c, name, sql, nparams, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		free(copy);
		if (PQstatus(c) != CONNECTION_OK) {
			PQclear(r);
			return 0;
		}
		*failed = r;
		return -1;
	}
	PQclear(r);
	st->s[st->n++] = (struct db_stmt){ h, copy };
	st->bytes += len;
	return 1;
}

/* Send sql (by name when prepared): 1 sent, 0 not sent, -1 refused
 * (*failed holds the server's answer). */
static int stmt_send(PGconn *c, const char *sql, int nparams, const char *const *params, int format,
                     PGresult **failed)
{
	char name[16];
	int rc = stmt_name(c, sql, nparams, name, failed);

	if (rc < 0)
		return -1;
	if (rc == 1)
		return PQsendQueryPrepared(c, name, nparams, params, NULL, NULL, format);
	return PQsendQueryParams(c, sql, nparams, NULL, params, NULL, NULL, format);
}

static void conn_seen_alive(PGconn *c)
{
	struct db_stmts *st = PQinstanceData(c, stmts_event);

	if (st != NULL)
		st->alive_ms = ehr_monotonic_ms();
}

/* ehr_db_conn_alive, skipped when c was seen working a moment ago. */
static bool conn_alive_recent(PGconn *c)
{
	struct db_stmts *st = PQinstanceData(c, stmts_event);

	if (st != NULL && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE &&
	    ehr_monotonic_ms() - st->alive_ms < DB_ALIVE_RECENT_MS)
		return true;
	if (!ehr_db_conn_alive(c))
		return false;
	conn_seen_alive(c);
	return true;
}

static PGconn *db_connect(struct ehr_db_pool *p)
{
	const char *keys[] = { "dbname", "connect_timeout", "options", "application_name", NULL };
	const char *vals[] = { p->conninfo, "5", p->options, "ehrgate", NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);

	ehr_db_conn_quiet(c);
	if (c != NULL && PQstatus(c) == CONNECTION_OK)
		stmts_attach(c);
	return c;
}

void ehr_db_conn_quiet(void *conn)
{
	if (conn != NULL)
		PQsetNoticeProcessor(conn, db_quiet_notice, NULL);
}

bool ehr_db_conn_alive(void *conn)
{
	PGconn *c = conn;
	struct pollfd pfd;
	PGnotify *n;

	if (c == NULL || PQstatus(c) != CONNECTION_OK || PQsocket(c) < 0)
		return false;
	pfd.fd = PQsocket(c);
	pfd.events = POLLIN;
	/* Nothing arrived while idle: the usual case, one syscall. Something
	 * did: a NOTIFY, a parameter change, or the server's FATAL (57P01 on
	 * shutdown, taken by libpq as a notice) and then EOF, which libpq only
	 * sees on a later read; so read until nothing is left (a few rounds at
	 * most), and the EOF marks the connection bad. */
	for (int round = 0; round < 8; round++) {
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) == 0)
			break;
		if (PQconsumeInput(c) != 1 || PQstatus(c) != CONNECTION_OK)
			return false;
	}
	while ((n = PQnotifies(c)) != NULL)
		PQfreemem(n);
	return PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
}

static int acquire(struct ehr_db_pool *p, void **conn);

int ehr_db_acquire(struct ehr_db_pool *p, void **conn)
{
	int64_t t0 = ehr_monotonic_us();
	int err = acquire(p, conn);

	if (err == 0)
		ehr_metric_inc(&m_acquires, 0);
	ehr_metric_add(&m_acquire_us, 0, ehr_monotonic_us() - t0);
	return err;
}

static int acquire(struct ehr_db_pool *p, void **conn)
{
	struct timespec deadline;
	struct db_slot *slot = NULL;
	PGconn *c;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += p->acquire_timeout_ms / 1000;
	deadline.tv_nsec += (long)(p->acquire_timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->lock);
	for (;;) {
		for (unsigned i = 0; i < p->size && slot == NULL; i++)
			if (!p->slots[i].busy)
				slot = &p->slots[i];
		if (slot)
			break;
		if (pthread_cond_timedwait(&p->freed, &p->lock, &deadline) == ETIMEDOUT) {
			pthread_mutex_unlock(&p->lock);
			return ehr_error_set(EHR_ERR_UNAVAILABLE, "no database connection free within %u ms",
			                     p->acquire_timeout_ms);
		}
	}
	slot->busy = true;
	c = slot->conn;
	slot->conn = NULL;
	pthread_mutex_unlock(&p->lock);

	/* A connection the server closed while it sat in the pool (a restart)
	 * is replaced here, before any statement is sent on it. */
	if (c != NULL && !ehr_db_conn_alive(c)) {
		PQfinish(c);
		c = NULL;
	}
	if (c != NULL)
		conn_seen_alive(c);
	if (c == NULL) {
		c = db_connect(p);
		if (c == NULL || PQstatus(c) != CONNECTION_OK) {
			int rc = ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "database connection failed",
			                              "database connection failed: %s",
			                              c ? PQerrorMessage(c) : "out of memory");
			if (c)
				PQfinish(c);
			pthread_mutex_lock(&p->lock);
			slot->busy = false;
			pthread_cond_signal(&p->freed);
			pthread_mutex_unlock(&p->lock);
			return rc;
		}
	}
	pthread_mutex_lock(&p->lock);
	slot->conn = c;
	pthread_mutex_unlock(&p->lock);
	*conn = c;
	return 0;
}

void ehr_db_release(struct ehr_db_pool *p, void *conn, bool broken)
{
	PGconn *c = conn;

	if (c == NULL)
		return;
	/* A connection left inside a transaction or marked broken is not reused. */
	if (broken || PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE)
		broken = true;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->size; i++) {
		if (p->slots[i].busy && p->slots[i].conn == c) {
			if (broken) {
				PQfinish(c);
				p->slots[i].conn = NULL;
			}
			p->slots[i].busy = false;
			break;
		}
	}
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
}

/* The public message names the SQLSTATE (and the text of our own schema's
 * RAISE, P0001); libpq's full text, which may quote values, goes to the
 * log detail only. */
static void db_error(int code, const PGresult *r, const char *state, PGconn *conn)
{
	const char *own = r && state && strcmp(state, "P0001") == 0
	                          ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
	                          : NULL;
	char pub[256];

	if (ehr_fmt(pub, sizeof(pub), "database error %s%s%s", state ? state : "-", own ? ": " : "",
	            own ? own : "") < 0)
		memcpy(pub, "database error", sizeof("database error"));
	ehr_error_set_detail(code, pub, "database: %s %s", state ? state : "-", PQerrorMessage(conn));
}

int ehr_db_sqlstate_err(const char *state, bool connection_ok)
{
	if (!connection_ok)
		return EHR_ERR_UNAVAILABLE;
	if (state == NULL)
		return EHR_ERR_DB;
	if (strcmp(state, "23505") == 0)
		return EHR_ERR_CONFLICT;
	if (strcmp(state, "42501") == 0 || strcmp(state, "P0001") == 0)
		return EHR_ERR_FORBIDDEN;
	if (strcmp(state, "57014") == 0)
		return EHR_ERR_TIMEOUT;
	return EHR_ERR_DB;
}

/* The last result of a sent statement, as PQexec would return it (an
 * error result wins over a later one; NULL when none came). */
static PGresult *db_collect(PGconn *c)
{
	PGresult *last = NULL, *r;

	while ((r = PQgetResult(c)) != NULL) {
		if (last != NULL && PQresultStatus(last) == PGRES_FATAL_ERROR) {
			PQclear(r);
			continue;
		}
		PQclear(last);
		last = r;
		if (PQresultStatus(r) == PGRES_COPY_IN || PQresultStatus(r) == PGRES_COPY_OUT)
			break;
	}
	return last;
}

/* Keep a successful result, or map the failure and free it. */
static int db_result(PGconn *conn, PGresult *r, void **res)
{
	ExecStatusType st = PQresultStatus(r);
	const char *state;
	int code;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (res != NULL)
			*res = r;
		else
			PQclear(r);
		return 0;
	}
	state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	code = ehr_db_sqlstate_err(state, PQstatus(conn) == CONNECTION_OK);
	db_error(code, r, state, conn);
	PQclear(r);
	return code;
}

/*
 * Outside a transaction a statement may go out on a fresh connection: if
 * the held one died since it was checked (the server restarted between
 * statements), or the send itself failed, nothing of the statement reached
 * the server, so it is reconnected (PQreset: same PGconn, same pool slot)
 * and sent once more. Inside a transaction a lost connection is an error:
 * the transaction is gone with it.
 */
static PGresult *db_send(PGconn *c, const char *sql, int nparams, const char *const *params,
                         int result_format)
{
	/* Not after a loss the caller already saw: a COMMIT must never land on
	 * a new connection outside the transaction it was meant for. */
	bool fresh = PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;

	PGresult *failed = NULL;
	int rc;

	if (fresh && !conn_alive_recent(c))
		PQreset(c);
	if ((rc = stmt_send(c, sql, nparams, params, result_format, &failed)) == 0) {
		if (!fresh)
			return NULL;
		PQreset(c); /* never sent: once more on a new connection */
		rc = stmt_send(c, sql, nparams, params, result_format, &failed);
	}
	if (rc < 0)
		return failed;
	return rc == 1 ? db_collect(c) : NULL;
}

static int db_exec(void *conn, void **res, const char *sql, int nparams, const char *const *params,
                   int result_format)
{
	if (res != NULL)
		*res = NULL;
	return db_result(conn, db_send(conn, sql, nparams, params, result_format), res);
}

int ehr_db_exec(void *conn, void **res, const char *sql, int nparams, const char *const *params)
{
	return db_exec(conn, res, sql, nparams, params, 0);
}

int ehr_db_exec_binary(void *conn, void **res, const char *sql, int nparams, const char *const *params)
{
	return db_exec(conn, res, sql, nparams, params, 1);
}

int ehr_db_run(void *conn, const char *sql, int nparams, const char *const *params)
{
	return db_exec(conn, NULL, sql, nparams, params, 0);
}

int ehr_db_run_script(void *conn, const char *sql)
{
	return db_result(conn, PQexec(conn, sql), NULL);
}

int ehr_db_begin(void *conn)
{
	return ehr_db_run(conn, "BEGIN", 0, NULL);
}

int ehr_db_commit(void *conn)
{
	return ehr_db_run(conn, "COMMIT", 0, NULL);
}

void ehr_db_rollback(void *conn)
{
	PQclear(PQexec(conn, "ROLLBACK"));
}

void ehr_db_release_after(struct ehr_db_pool *p, void *conn, int err)
{
	if (conn == NULL)
		return;
	/* A transaction left open (or failed) is rolled back before reuse. */
	if (err < 0 && PQtransactionStatus(conn) != PQTRANS_IDLE)
		ehr_db_rollback(conn);
	ehr_db_release(p, conn, err == EHR_ERR_UNAVAILABLE || err == EHR_ERR_DB || err == EHR_ERR_TIMEOUT);
}

/* ------------------------------------------------------------ pipelined steps */

/* Read one pipelined query's results up to its NULL: the statement's own
 * result is kept in *keep (if keep), a failure mapped once into *err. */
static void steps_collect(PGconn *c, PGresult **keep, int *err)
{
	PGresult *r;

	while ((r = PQgetResult(c)) != NULL) {
		ExecStatusType st = PQresultStatus(r);

		if (keep && *keep == NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) {
			*keep = r;
		} else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && *err == 0) {
			*err = db_result(c, r, NULL); /* frees r; PIPELINE_ABORTED follows an earlier error */
		} else {
			PQclear(r);
		}
	}
}

int ehr_db_exec_steps(void *conn, void **res, unsigned steps, const char *sql, int nparams,
                      const char *const *params)
{
	const char *q[4];
	unsigned nq = 0, stmt;
	PGconn *c = conn;
	PGresult *mine = NULL, *r, *failed = NULL;
	char name[16];
	int err = 0, named, format = (steps & EHR_DB_BINARY) ? 1 : 0;

	if (res != NULL)
		*res = NULL;
	if (steps & EHR_DB_BEGIN_COVERED) {
		q[nq++] = "BEGIN";
		q[nq++] = "SET LOCAL synchronous_commit = off";
	}
	stmt = nq;
	q[nq++] = sql;
	if (steps & EHR_DB_COMMIT)
		q[nq++] = "COMMIT";
	/* prepared (if it is to be) before the pipeline begins */
	if ((named = stmt_name(c, sql, nparams, name, &failed)) < 0)
		return db_result(c, failed, NULL);
	if (PQenterPipelineMode(c) != 1)
		return db_result(c, NULL, NULL);
	for (unsigned i = 0; i < nq; i++) {
		int sent;

		if (i != stmt)
			sent = PQsendQueryParams(c, q[i], 0, NULL, NULL, NULL, NULL, 0);
		else if (named == 1)
			sent = PQsendQueryPrepared(c, name, nparams, params, NULL, NULL, format);
		else
			sent = PQsendQueryParams(c, sql, nparams, NULL, params, NULL, NULL, format);
		if (sent != 1) {
			err = ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "database connection failed",
			                           "database: send: %s", PQerrorMessage(c));
			break;
		}
	}
	if (err == 0 && PQpipelineSync(c) != 1)
		err = ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "database connection failed",
		                           "database: sync: %s", PQerrorMessage(c));
	if (err == 0) {
		/* every query's results, then the sync point */
		for (unsigned i = 0; i < nq; i++)
			steps_collect(c, i == stmt ? &mine : NULL, &err);
		if ((r = PQgetResult(c)) != NULL && PQresultStatus(r) != PGRES_PIPELINE_SYNC && err == 0)
			err = db_result(c, r, NULL);
		else
			PQclear(r);
	}
	/* A connection that did not reach the sync point cannot leave pipeline
	 * mode: the caller's release drops it (err is UNAVAILABLE or DB). */
	if (PQexitPipelineMode(c) != 1 && err == 0)
		err = ehr_error_set_detail(EHR_ERR_DB, "database error", "database: pipeline: %s",
		                           PQerrorMessage(c));
	if (err == 0 && mine == NULL)
		err = ehr_error_set(EHR_ERR_DB, "database error");
	if (err < 0 || res == NULL)
		PQclear(mine);
	else
		*res = mine;
	return err;
}

/* ------------------------------------------------------------ typed results */

void ehr_db_clear(void *res)
{
	PQclear(res);
}

int ehr_db_rows(const void *res)
{
	return res != NULL ? PQntuples(res) : 0;
}

static bool db_cell(const void *res, int row, int col)
{
	return res != NULL && row >= 0 && col >= 0 && row < PQntuples(res) && col < PQnfields(res);
}

bool ehr_db_is_null(const void *res, int row, int col)
{
	return !db_cell(res, row, col) || PQgetisnull(res, row, col);
}

const char *ehr_db_value(const void *res, int row, int col)
{
	return db_cell(res, row, col) ? PQgetvalue(res, row, col) : "";
}

size_t ehr_db_len(const void *res, int row, int col)
{
	return db_cell(res, row, col) ? (size_t)PQgetlength(res, row, col) : 0;
}

int ehr_db_get_text(char *out, size_t cap, const void *res, int row, int col)
{
	size_t n;

	ENSURE(cap > 0, EHR_ERR_INVAL);
	out[0] = '\0';
	if (!db_cell(res, row, col))
		return ehr_error_set(EHR_ERR_INVAL, "no column %d in row %d", col, row);
	n = (size_t)PQgetlength(res, row, col);
	if (n >= cap)
		return ehr_error_set(EHR_ERR_TOO_LARGE, "column %d: %zu bytes do not fit in %zu", col, n,
		                     cap - 1);
	memcpy(out, PQgetvalue(res, row, col), n);
	out[n] = '\0';
	return 0;
}

int ehr_db_get_u64(uint64_t *out, const void *res, int row, int col, uint64_t max)
{
	if (!db_cell(res, row, col))
		return ehr_error_set(EHR_ERR_INVAL, "no column %d in row %d", col, row);
	return ehr_parse_u64(out, PQgetvalue(res, row, col), max);
}

int ehr_db_get_bytea(uint8_t *out, size_t n, const void *res, int row, int col)
{
	const char *v;
	size_t len;

	if (!db_cell(res, row, col))
		return ehr_error_set(EHR_ERR_INVAL, "no column %d in row %d", col, row);
	v = PQgetvalue(res, row, col);
	len = (size_t)PQgetlength(res, row, col);
	if (len < 2 || v[0] != '\\' || v[1] != 'x')
		return ehr_error_set(EHR_ERR_PARSE, "column %d is not a hex bytea", col);
	return ehr_hex_decode(out, n, v + 2, len - 2);
}

/* --------------------------------------------------------------- parameters */

int ehr_db_bytea_param(char *out, size_t cap, const void *in, size_t n)
{
	if (cap < 3) {
		if (cap > 0)
			out[0] = '\0';
		return ehr_error_set(EHR_ERR_TOO_LARGE, "bytea parameter buffer too small");
	}
	out[0] = '\\';
	out[1] = 'x';
	return ehr_hex_encode_fixed(out + 2, cap - 2, in, n);
}

int ehr_db_ping(struct ehr_db_pool *p)
{
	void *conn;
	int err;

	GUARD(ehr_db_acquire(p, &conn));
	err = ehr_db_run(conn, "SELECT 1", 0, NULL);
	ehr_db_release(p, conn, err < 0);
	return err;
}

int ehr_db_conninfo_redacted(struct ehr_buf *out, const char *conninfo)
{
	PQconninfoOption *opts;
	char *errmsg = NULL;
	bool first = true;

	opts = PQconninfoParse(conninfo, &errmsg);
	if (opts == NULL) {
		PQfreemem(errmsg);
		return ehr_error_set(EHR_ERR_CONFIG, "database conninfo does not parse");
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (o->val == NULL || strcmp(o->keyword, "password") == 0)
			continue;
		if (ehr_buf_printf(out, "%s%s=%s", first ? "" : " ", o->keyword, o->val) < 0) {
			PQconninfoFree(opts);
			return EHR_ERR_NOMEM;
		}
		first = false;
	}
	PQconninfoFree(opts);
	return 0;
}
