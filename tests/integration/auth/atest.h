/* atest.h - auth integration helpers: a fresh database with the roles, ledger
 * and auth migrations applied, and conninfo strings for it. */
#ifndef EHR_ATEST_H
#define EHR_ATEST_H

#include <stdbool.h>

#include <libpq-fe.h>

struct atest_db {
	char name[64];
	char super_ci[1024]; /* superuser, this database */
	char app_ci[1024];   /* ehrgate_app, this database */
};

/* Create the database and apply schemas/sql/0001, 0010 and 0020 (all=false)
 * or every migration in schemas/sql (all=true). */
int atest_db_create(struct atest_db *db, const char *tag, bool all);
void atest_db_drop(struct atest_db *db);
PGconn *atest_connect(const char *ci);
int atest_exec(const char *ci, const char *sql);
long long atest_scalar(const char *ci, const char *sql);
/* A fresh temporary directory (mkdtemp under /tmp). */
int atest_tmpdir(char out[256], const char *tag);
void atest_rmrf(const char *dir);

#endif
