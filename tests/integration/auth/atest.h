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
/* Create an empty database (no migrations). */
int atest_db_create_empty(struct atest_db *db, const char *tag);

/* Run a program (argv[0] is a path), stdout captured into out (NUL-terminated,
 * may be NULL), stderr passed through. Returns the exit status, or -1. */
int atest_run(char *out, size_t cap, const char *const *argv);

/* A gateway process (`ehrgate serve`) on a free loopback port. */
struct atest_gw {
	int pid;
	int port;
	char url[64];
	char cfg[512];
	char err[600]; /* its stderr: scanned for sanitizer reports at stop */
};
/* Write DIR/gw-PORT.ini for state_dir and db, then serve with the extra
 * --set assignments (NULL-terminated, may be NULL); waits until it accepts. */
int atest_gw_start(struct atest_gw *g, const char *ehrgate, const char *state_dir, const struct atest_db *db,
                   const char *const *sets);
/* SIGTERM, then SIGKILL after 5 s; by PID. */
void atest_gw_stop(struct atest_gw *g);

/* A fresh temporary directory (mkdtemp under /tmp). */
int atest_tmpdir(char out[256], const char *tag);
void atest_rmrf(const char *dir);

#endif
