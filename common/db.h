/*
 * db.h - the PostgreSQL connection pool and the one wrapper around libpq
 * statements (library commondb). Only server-side modules link it.
 */
#ifndef EHR_COMMON_DB_H
#define EHR_COMMON_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct pg_conn;   /* libpq's PGconn */
struct pg_result; /* libpq's PGresult */

struct ehr_db_pool;

/*
 * A small fixed-size pool. ehr_db_acquire waits at most acquire_timeout_ms
 * for a free connection, then fails with EHR_ERR_UNAVAILABLE, so a caller is
 * never parked indefinitely. Connections are opened lazily, with
 * connect_timeout and statement_timeout applied, and reopened after failure.
 * A connection the server closed while it was idle (a Postgres restart) is
 * replaced on acquire, before anything is sent on it; a statement sent
 * outside a transaction on a connection that turns out dead is sent once
 * more on a fresh one (it never reached the server). So once Postgres
 * accepts connections again, the next request succeeds.
 */
int ehr_db_pool_new(struct ehr_db_pool **out, const char *conninfo, unsigned size,
                    unsigned acquire_timeout_ms, unsigned statement_timeout_ms);
void ehr_db_pool_free(struct ehr_db_pool *p);
/* *conn is a PGconn*. */
int ehr_db_acquire(struct ehr_db_pool *p, void **conn);
/* broken: the connection saw an error that may have left it unusable. */
void ehr_db_release(struct ehr_db_pool *p, void *conn, bool broken);
/*
 * true when conn (a PGconn*) is open, idle (no transaction) and nothing
 * that arrived on it while idle says it is gone (the server's shutdown
 * message, EOF): one poll(2), no round trip. The pool checks every connection with it on acquire and
 * before a statement sent outside a transaction; the ledger writer before
 * each batch. Pending NOTIFYs are dropped.
 */
bool ehr_db_conn_alive(void *conn);
/* Drop the server's notices on conn (a PGconn*, may be NULL) instead of
 * libpq printing them on stderr, where they would break the JSON log; a
 * shutdown notice is acted on by ehr_db_conn_alive. */
void ehr_db_conn_quiet(void *conn);
/* SELECT 1 through the pool; 0 if the database answers. */
int ehr_db_ping(struct ehr_db_pool *p);
/*
 * The one SQLSTATE -> ehr_err map: EHR_ERR_UNAVAILABLE when the connection
 * is lost (connection_ok false), EHR_ERR_CONFLICT for unique violations
 * (23505), EHR_ERR_FORBIDDEN for privilege or trigger refusals (42501,
 * P0001 raised by our triggers), EHR_ERR_TIMEOUT for a cancelled statement
 * (57014), else EHR_ERR_DB. sqlstate may be NULL.
 */
int ehr_db_sqlstate_err(const char *sqlstate, bool connection_ok);
/*
 * PQexecParams with text parameters. On success *res (a PGresult*) holds
 * the result (PGRES_COMMAND_OK or PGRES_TUPLES_OK) and must be freed with
 * ehr_db_clear (PQclear). On failure *res is NULL, the detail holds the
 * SQLSTATE and message, and the return is ehr_db_sqlstate_err's code.
 */
int ehr_db_exec(void *conn, void **res, const char *sql, int nparams, const char *const *params);
/* As ehr_db_exec, with results in binary format (bytea raw, int8 big-endian). */
int ehr_db_exec_binary(void *conn, void **res, const char *sql, int nparams, const char *const *params);
/* As ehr_db_exec, dropping the result: for statements whose rows nobody reads. */
int ehr_db_run(void *conn, const char *sql, int nparams, const char *const *params);
/* One or more statements without parameters (simple query protocol), e.g. a
 * migration file; the result is dropped. Errors as ehr_db_exec. */
int ehr_db_run_script(void *conn, const char *sql);
/* Transactions on a held connection. ehr_db_rollback never fails the caller:
 * it is for cleanup paths, and a connection it cannot roll back is not
 * reused (ehr_db_release sees the open transaction). */
int ehr_db_begin(void *conn);
int ehr_db_commit(void *conn);
void ehr_db_rollback(void *conn);
/*
 * Give back a connection after an operation that returned err: a
 * transaction it left open is rolled back first, so nothing half-done can
 * commit, and the connection is dropped from the pool when err says it may
 * be unusable (EHR_ERR_UNAVAILABLE, EHR_ERR_DB, EHR_ERR_TIMEOUT). conn may be NULL.
 */
void ehr_db_release_after(struct ehr_db_pool *p, void *conn, int err);
/*
 * One statement with its transaction steps in ONE round trip (libpq
 * pipeline mode): EHR_DB_COMMIT commits after it; EHR_DB_BEGIN_COVERED
 * first begins a transaction whose COMMIT does not wait for its WAL flush
 * (synchronous_commit off for it alone). That is only for writes whose
 * durability is covered elsewhere: PostgreSQL flushes its WAL in order, so
 * a later durable commit anywhere in the cluster (the ledger batch the
 * request waits for) makes it durable too; or writes derived again after a
 * crash (a record row that fsck completes from the ledger). Results and
 * errors as ehr_db_exec (*res is the statement's). A statement that fails
 * skips the COMMIT: the transaction is left failed, for
 * ehr_db_release_after to roll back.
 */
#define EHR_DB_BEGIN_COVERED 1u
#define EHR_DB_COMMIT 2u
#define EHR_DB_BINARY 4u /* the statement's results in binary, as ehr_db_exec_binary */
int ehr_db_exec_steps(void *conn, void **res, unsigned steps, const char *sql, int nparams,
                      const char *const *params);

/* ------------------------------------------------------ typed results */

void ehr_db_clear(void *res);
/* Number of rows (0 for NULL). */
int ehr_db_rows(const void *res);
bool ehr_db_is_null(const void *res, int row, int col);
/* The raw value (text, or bytes for binary results; "" for SQL NULL) and its length. */
const char *ehr_db_value(const void *res, int row, int col);
size_t ehr_db_len(const void *res, int row, int col);
/* Copy a text value into out[cap] with its NUL: EHR_ERR_TOO_LARGE (out "")
 * when it does not fit, EHR_ERR_INVAL when the cell does not exist. */
int ehr_db_get_text(char *out, size_t cap, const void *res, int row, int col);
/* Decimal text value, range-checked like ehr_parse_u64. */
int ehr_db_get_u64(uint64_t *out, const void *res, int row, int col, uint64_t max);
/* A text-format bytea ("\x" + hex) of exactly n bytes into out. */
int ehr_db_get_bytea(uint8_t *out, size_t n, const void *res, int row, int col);

/* ------------------------------------------------------ parameters */

/* Size of a bytea hex parameter for n bytes: "\x", 2n digits, NUL. */
#define EHR_DB_BYTEA_HEX_LEN(n) (2 + 2 * (n) + 1)
/* The bytea hex input form "\x..." of n bytes, for a $k::bytea text
 * parameter; cap >= EHR_DB_BYTEA_HEX_LEN(n), else EHR_ERR_TOO_LARGE. */
int ehr_db_bytea_param(char *out, size_t cap, const void *in, size_t n);

/* A libpq-safe connection string copy with the password removed, for logs. */
int ehr_db_conninfo_redacted(struct ehr_buf *out, const char *conninfo);

#endif
