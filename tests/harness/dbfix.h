/*
 * dbfix.h - the one database fixture of the tests: a fresh PostgreSQL
 * database on the dev services ($EHRGATE_TEST_PG, the superuser conninfo),
 * the application role, the schemas/sql migrations a test asks for, and
 * conninfo strings for the superuser and for ehrgate_app.
 *
 *   struct ehr_db_fixture db;
 *   struct ehr_db_opts o = { .tag = "ledger", .migrations = "10" };
 *   if (ehr_db_fixture_new(&db, &o) < 0) ...    (db.super_ci, db.app_ci)
 *   ...
 *   ehr_db_fixture_free(&db);                    (drops the database)
 *
 * The database is named <tag>_<pid>_<n> (n counts fixtures in this process),
 * so parallel test binaries never share one. Role ehrgate_app is cluster
 * wide: the fixture creates it when missing (tolerating a concurrent
 * creator), whatever migrations are applied. Migrations are applied as the
 * superuser, file by file in version order, from $EHRGATE_SOURCE_DIR/
 * schemas/sql (default: this source tree), without `ehrgate migrate`'s
 * bookkeeping; the gateway launcher (gwproc.h) creates its database with
 * migrations "none" and runs the real `ehrgate migrate` instead.
 *
 * Functions return 0 or a negative ehr_err with the detail set.
 */
#ifndef EHR_TEST_DBFIX_H
#define EHR_TEST_DBFIX_H

#include <stddef.h>

#include <libpq-fe.h>

struct ehr_db_fixture {
	char name[64];       /* database name */
	char super_ci[1024]; /* conninfo: the superuser, this database */
	char app_ci[1024];   /* conninfo: ehrgate_app, this database */
};

struct ehr_db_opts {
	const char *tag; /* database name prefix, [a-z0-9_] (default "db") */
	/* Which schemas/sql files to apply, by version number:
	 *   NULL or "all"  every file;   "none"  an empty database;
	 *   "1,10,20"      those versions;   "1-19,40-49"  those ranges. */
	const char *migrations;
};

int ehr_db_fixture_new(struct ehr_db_fixture *db, const struct ehr_db_opts *o);
/* Drop the database (WITH FORCE: open connections are cut). Safe on a
 * zeroed or already freed fixture. */
void ehr_db_fixture_free(struct ehr_db_fixture *db);

/* conninfo `base` with dbname and/or user replaced (NULL: keep). */
int ehr_testdb_conninfo(char *out, size_t cap, const char *base, const char *dbname, const char *user);
/* A connection with client_min_messages = warning, or NULL (message on stderr). */
PGconn *ehr_testdb_connect(const char *ci);
/* Run SQL on a new connection to ci: 0, or -1 with the message on stderr. */
int ehr_testdb_exec(const char *ci, const char *sql);
/* A one-row, one-column integer query on a new connection to ci, or -1. */
long long ehr_testdb_scalar(const char *ci, const char *sql);

#endif
