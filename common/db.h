/*
 * db.h - the PostgreSQL connection pool and the one wrapper around libpq
 * statements (library commondb). Only server-side modules link it.
 */
#ifndef EHR_COMMON_DB_H
#define EHR_COMMON_DB_H

#include <stdbool.h>

#include "common/common.h"

struct pg_conn;   /* libpq's PGconn */
struct pg_result; /* libpq's PGresult */

struct ehr_db_pool;

/*
 * A small fixed-size pool. ehr_db_acquire waits at most acquire_timeout_ms
 * for a free connection, then fails with EHR_ERR_UNAVAILABLE, so a caller is
 * never parked indefinitely. Connections are opened lazily, with
 * connect_timeout and statement_timeout applied, and reopened after failure.
 */
int ehr_db_pool_new(struct ehr_db_pool **out, const char *conninfo, unsigned size,
                    unsigned acquire_timeout_ms, unsigned statement_timeout_ms);
void ehr_db_pool_free(struct ehr_db_pool *p);
/* *conn is a PGconn*. */
int ehr_db_acquire(struct ehr_db_pool *p, void **conn);
/* broken: the connection saw an error that may have left it unusable. */
void ehr_db_release(struct ehr_db_pool *p, void *conn, bool broken);
/* SELECT 1 through the pool; 0 if the database answers. */
int ehr_db_ping(struct ehr_db_pool *p);
/*
 * PQexecParams with text parameters. On success *res (a PGresult*) holds
 * the result (PGRES_COMMAND_OK or PGRES_TUPLES_OK) and must be PQclear()ed.
 * On failure the detail holds the SQLSTATE and message, and the return is
 * EHR_ERR_CONFLICT for unique violations (23505), EHR_ERR_FORBIDDEN for
 * privilege or trigger refusals (42501, P0001 raised by our triggers),
 * EHR_ERR_UNAVAILABLE for a lost connection, else EHR_ERR_DB.
 */
int ehr_db_exec(void *conn, void **res, const char *sql, int nparams, const char *const *params);
/* A libpq-safe connection string copy with the password removed, for logs. */
int ehr_db_conninfo_redacted(struct ehr_buf *out, const char *conninfo);

#endif
