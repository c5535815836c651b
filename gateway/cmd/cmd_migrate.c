/*
 * cmd_migrate.c - `ehrgate migrate`: apply schemas/sql/NNNN_name.sql in
 * numeric order, once each, each in its own transaction, recorded in
 * schema_migrations(version, name, sha256, applied_at).
 *
 * A session advisory lock serialises concurrent migrators. A file whose
 * SHA-256 differs from the one recorded when it was applied stops the run:
 * applied migrations are history and must not be edited.
 */
#include "common/db.h"
#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#ifndef EHRGATE_SOURCE_DIR
#define EHRGATE_SOURCE_DIR "."
#endif

#define MIGRATE_LOCK_KEY "7301948573" /* pg_advisory_lock key, fixed for ehrgate */
#define MIGRATE_MAX_FILE (4u << 20)
#define MIGRATE_MAX_FILES 1000

struct migration {
	unsigned version;
	char name[128];
	char file[160];
};

static int cmp_migration(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;
	return x->version < y->version ? -1 : x->version > y->version;
}

/* NNNN_[a-z0-9_]+.sql */
static bool migration_name(const char *f, unsigned *version)
{
	size_t n = strlen(f);
	uint64_t v;
	char digits[5];

	if (n < 10 || n >= 160 || strcmp(f + n - 4, ".sql") != 0 || f[4] != '_')
		return false;
	for (size_t i = 5; i < n - 4; i++)
		if (!((f[i] >= 'a' && f[i] <= 'z') || (f[i] >= '0' && f[i] <= '9') || f[i] == '_' ||
		      f[i] == '-'))
			return false;
	memcpy(digits, f, 4);
	digits[4] = '\0';
	if (ehr_parse_u64(&v, digits, 9999) < 0)
		return false;
	*version = (unsigned)v;
	return true;
}

static int list_migrations(const char *dir, struct migration **out, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct migration *m = NULL;
	size_t count = 0;
	int err = 0;

	if (d == NULL)
		return ehr_error_set_detail(EHR_ERR_NOT_FOUND, "cannot open the migrations directory",
		                            "cannot open migrations directory %s", dir);
	m = calloc(MIGRATE_MAX_FILES, sizeof(*m));
	ENSURE_GOTO(m != NULL, EHR_ERR_NOMEM);
	while ((e = readdir(d)) != NULL) {
		unsigned v;
		if (!migration_name(e->d_name, &v))
			continue;
		ENSURE_GOTO(count < MIGRATE_MAX_FILES, EHR_ERR_TOO_LARGE);
		m[count].version = v;
		GUARD_GOTO(ehr_str_copy(m[count].file, sizeof(m[count].file), e->d_name));
		GUARD_GOTO(ehr_fmt(m[count].name, sizeof(m[count].name), "%.*s", (int)(strlen(e->d_name) - 9),
		                   e->d_name + 5));
		count++;
	}
	qsort(m, count, sizeof(*m), cmp_migration);
	for (size_t i = 1; i < count; i++)
		if (m[i].version == m[i - 1].version) {
			err = ehr_error_set(EHR_ERR_CONFLICT, "two migrations share number %04u: %s and %s",
			                    m[i].version, m[i - 1].file, m[i].file);
			goto out;
		}
	*out = m;
	*n = count;
	m = NULL;
out:
	free(m);
	closedir(d);
	return err;
}

/* Run sql (possibly several statements) through the one libpq wrapper;
 * migrate reports every failure as EHR_ERR_DB named after `what`. */
/* Name what failed in front of the database's public message; the log
 * detail (libpq's text) is kept. Every failure here is EHR_ERR_DB. */
static int db_err(int err, const char *what)
{
	if (err == 0)
		return 0;
	return ehr_error_wrap(EHR_ERR_DB, "%s", what);
}

static int exec_ok(PGconn *c, const char *sql, const char *what)
{
	return db_err(ehr_db_run_script(c, sql), what);
}

static int sha256_hex(char out[65], const void *p, size_t n)
{
	uint8_t md[32];
	unsigned mdlen = 0;

	GUARD_OSSL(EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL));
	return ehr_hex_encode_fixed(out, 65, md, sizeof(md));
}

/* The recorded sha256 of `version`, or "" when not applied. */
static int applied_hash(PGconn *c, unsigned version, char out[65])
{
	char v[16];
	const char *params[1] = { v };
	void *r = NULL;
	int err;

	out[0] = '\0';
	GUARD(ehr_fmt(v, sizeof(v), "%u", version));
	err = db_err(ehr_db_exec(c, &r, "SELECT sha256 FROM schema_migrations WHERE version = $1", 1, params),
	             "read schema_migrations");
	if (err == 0 && ehr_db_rows(r) == 1)
		err = ehr_db_get_text(out, 65, r, 0, 0);
	ehr_db_clear(r);
	return err;
}

static int apply_one(PGconn *c, const char *dir, const struct migration *m, int *applied)
{
	struct ehr_buf path = EHR_BUF_INIT(4096), sql = EHR_BUF_INIT(MIGRATE_MAX_FILE);
	char hash[65], recorded[65], v[16], record[300];
	const char *params[3];
	int err = 0;

	GUARD_GOTO(ehr_buf_printf(&path, "%s/%s", dir, m->file));
	GUARD_GOTO(ehr_file_read(&sql, ehr_buf_cstr(&path), MIGRATE_MAX_FILE));
	GUARD_GOTO(sha256_hex(hash, sql.data ? (const void *)sql.data : "", sql.len));
	GUARD_GOTO(applied_hash(c, m->version, recorded));
	if (recorded[0] != '\0') {
		if (strcmp(recorded, hash) != 0) {
			err = ehr_error_set(
			        EHR_ERR_TAMPER,
			        "migration %s was applied with sha256 %s but the file now has %s; "
			        "applied migrations must not change (add a new one instead)",
			        m->file, recorded, hash);
		}
		goto out;
	}
	GUARD_GOTO(exec_ok(c, "BEGIN", "begin"));
	if ((err = exec_ok(c, ehr_buf_cstr(&sql), m->file)) < 0) {
		ehr_db_rollback(c);
		goto out;
	}
	GUARD_GOTO(ehr_fmt(v, sizeof(v), "%u", m->version));
	params[0] = v;
	params[1] = m->name;
	params[2] = hash;
	err = ehr_db_run(c, "INSERT INTO schema_migrations(version, name, sha256) VALUES ($1, $2, $3)", 3,
	                 params);
	if (err < 0) {
		err = db_err(err, ehr_fmt(record, sizeof(record), "record %s", m->file) == 0
		                          ? record
		                          : "record a migration");
		ehr_db_rollback(c);
		goto out;
	}
	GUARD_GOTO(exec_ok(c, "COMMIT", m->file));
	printf("ehrgate migrate: applied %s\n", m->file);
	(*applied)++;
out:
	ehr_buf_free(&path);
	ehr_buf_free(&sql);
	return err;
}

static int migrate(const char *conninfo, const char *dir)
{
	struct migration *m = NULL;
	size_t n = 0;
	int applied = 0, err = 0;
	PGconn *c = NULL;

	GUARD(list_migrations(dir, &m, &n));
	c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		err = ehr_error_set_detail(EHR_ERR_UNAVAILABLE,
		                           "cannot connect to the database ([database] admin_url)",
		                           "connect: %s", PQerrorMessage(c));
		goto out;
	}
	(void)ehr_db_run_script(c, "SET client_min_messages = warning");
	GUARD_GOTO(exec_ok(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "advisory lock"));
	GUARD_GOTO(exec_ok(c,
	                   "CREATE TABLE IF NOT EXISTS schema_migrations ("
	                   " version integer PRIMARY KEY,"
	                   " name text NOT NULL,"
	                   " sha256 text NOT NULL,"
	                   " applied_at timestamptz NOT NULL DEFAULT now())",
	                   "create schema_migrations"));
	for (size_t i = 0; i < n; i++)
		GUARD_GOTO(apply_one(c, dir, &m[i], &applied));
	printf("ehrgate migrate: %d applied, %zu total in %s\n", applied, n, dir);
out:
	if (c && PQstatus(c) == CONNECTION_OK)
		(void)ehr_db_run_script(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")");
	PQfinish(c);
	free(m);
	return err;
}

static void migrate_usage(FILE *f)
{
	fprintf(f,
	        "usage: ehrgate migrate [--schemas DIR] [-c FILE] [--set section.key=value]...\n\n"
	        "Apply the SQL migrations NNNN_name.sql from DIR in numeric order, once each,\n"
	        "each in its own transaction, as [database] admin_url (default: [database] url).\n"
	        "Applied files are recorded with their SHA-256 in table schema_migrations; a\n"
	        "changed applied file stops the run. DIR defaults to the source tree's\n"
	        "schemas/sql, then %s.\n",
	        "/usr/share/ehrgate/sql");
}

int gw_cmd_migrate(int argc, char **argv)
{
	struct gw_config *cfg = NULL;
	const char *dir = NULL;
	struct stat st;
	int rc;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			migrate_usage(stdout);
			return 0;
		}
	if ((rc = gw_config_from_args(&cfg, &argc, argv)) != 0)
		return rc;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--schemas") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strncmp(argv[i], "--schemas=", 10) == 0) {
			dir = argv[i] + 10;
		} else {
			fprintf(stderr, "ehrgate migrate: unexpected argument '%s'\n", argv[i]);
			migrate_usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (dir == NULL)
		dir = (stat(EHRGATE_SOURCE_DIR "/schemas/sql", &st) == 0 && S_ISDIR(st.st_mode))
		              ? EHRGATE_SOURCE_DIR "/schemas/sql"
		              : "/usr/share/ehrgate/sql";
	if (migrate(gw_config_get(cfg, "database", "admin_url"), dir) < 0) {
		fprintf(stderr, "ehrgate migrate: %s\n", ehr_error_detail());
		rc = 1;
		goto out;
	}
	rc = 0;
out:
	gw_config_free(cfg);
	return rc;
}
