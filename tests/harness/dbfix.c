/* dbfix.c - the database fixture of the tests (see dbfix.h). */
#include "tests/harness/dbfix.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "tests/harness/harness.h"

#ifndef EHR_SOURCE_DIR
#define EHR_SOURCE_DIR "."
#endif

int ehr_testdb_conninfo(char *out, size_t cap, const char *base, const char *dbname, const char *user)
{
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(base ? base : "", &errmsg);
	struct ehr_buf b = EHR_BUF_INIT(4096);
	int err = 0;

	if (opts == NULL) {
		PQfreemem(errmsg);
		return ehr_error_set(EHR_ERR_CONFIG, "EHRGATE_TEST_PG does not parse as a conninfo");
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		const char *v = o->val;
		if (strcmp(o->keyword, "dbname") == 0 && dbname)
			v = dbname;
		else if (strcmp(o->keyword, "user") == 0 && user)
			v = user;
		if (v == NULL || *v == '\0')
			continue;
		GUARD_GOTO(ehr_buf_printf(&b, "%s%s='", b.len ? " " : "", o->keyword));
		for (const char *c = v; *c; c++) {
			if (*c == '\'' || *c == '\\')
				GUARD_GOTO(ehr_buf_append_u8(&b, '\\'));
			GUARD_GOTO(ehr_buf_append_u8(&b, (uint8_t)*c));
		}
		GUARD_GOTO(ehr_buf_append_u8(&b, '\''));
	}
	if (b.len + 1 > cap) {
		err = ehr_error_set(EHR_ERR_TOO_LARGE, "conninfo too long");
		goto out;
	}
	memcpy(out, ehr_buf_cstr(&b), b.len + 1);
out:
	PQconninfoFree(opts);
	ehr_buf_free(&b);
	return err;
}

PGconn *ehr_testdb_connect(const char *ci)
{
	PGconn *c = PQconnectdb(ci);

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "dbfix: connect: %s\n", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	return c;
}

static int exec_on(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "dbfix: %.200s: %s\n", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

int ehr_testdb_exec(const char *ci, const char *sql)
{
	PGconn *c = ehr_testdb_connect(ci);
	int rc = c ? exec_on(c, sql) : -1;

	PQfinish(c);
	return rc;
}

long long ehr_testdb_scalar(const char *ci, const char *sql)
{
	PGconn *c = ehr_testdb_connect(ci);
	PGresult *r;
	long long v = -1;
	int64_t x;

	if (c == NULL)
		return -1;
	r = PQexec(c, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
		if (ehr_parse_i64(&x, PQgetvalue(r, 0, 0), INT64_MIN, INT64_MAX) == 0)
			v = x;
	} else if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		fprintf(stderr, "dbfix: %.200s: %s\n", sql, PQresultErrorMessage(r));
	}
	PQclear(r);
	PQfinish(c);
	return v;
}

/* The leading version number of "NNNN_name.sql", or -1. */
static int file_version(const char *f)
{
	size_t l = strlen(f);
	int v = 0;

	if (l < 9 || strcmp(f + l - 4, ".sql") != 0 || f[4] != '_')
		return -1;
	for (int i = 0; i < 4; i++) {
		if (f[i] < '0' || f[i] > '9')
			return -1;
		v = v * 10 + (f[i] - '0');
	}
	return v;
}

/* Does the spec ("all", "none", "1,10,20", "1-19,40-49") select version v? */
static bool spec_wants(const char *spec, int v)
{
	const char *p = spec;

	if (spec == NULL || strcmp(spec, "all") == 0)
		return true;
	if (strcmp(spec, "none") == 0)
		return false;
	while (*p) {
		long lo = 0, hi;
		while (*p >= '0' && *p <= '9')
			lo = lo * 10 + (*p++ - '0');
		hi = lo;
		if (*p == '-') {
			p++;
			hi = 0;
			while (*p >= '0' && *p <= '9')
				hi = hi * 10 + (*p++ - '0');
		}
		if (v >= lo && v <= hi)
			return true;
		while (*p && *p != ',')
			p++;
		if (*p == ',')
			p++;
	}
	return false;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Apply the selected schemas/sql files in version order over c. */
static int apply_migrations(PGconn *c, const char *spec)
{
	const char *src = ehr_test_env("EHRGATE_SOURCE_DIR");
	char dir[1024], *names[256];
	size_t n = 0;
	struct dirent *e;
	DIR *d;
	int err = 0;

	snprintf(dir, sizeof(dir), "%s/schemas/sql", src ? src : EHR_SOURCE_DIR);
	if ((d = opendir(dir)) == NULL)
		return ehr_error_set(EHR_ERR_NOT_FOUND, "cannot open %s", dir);
	while ((e = readdir(d)) != NULL && n < EHR_ARRAY_LEN(names)) {
		int v = file_version(e->d_name);
		if (v >= 0 && spec_wants(spec, v))
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_name);
	for (size_t i = 0; i < n; i++) {
		struct ehr_buf sql = EHR_BUF_INIT(4u << 20);
		char path[1400];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (err == 0 && (err = ehr_file_read(&sql, path, 4u << 20)) == 0 &&
		    exec_on(c, ehr_buf_cstr(&sql)) < 0)
			err = ehr_error_set(EHR_ERR_DB, "migration %s failed", names[i]);
		ehr_buf_free(&sql);
		free(names[i]);
	}
	return err;
}

/* Roles are cluster-wide and other binaries create databases at once. */
static const char ensure_app_role[] =
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'ehrgate_app') "
        "THEN BEGIN CREATE ROLE ehrgate_app LOGIN; EXCEPTION WHEN duplicate_object OR unique_violation "
        "THEN NULL; END; END IF; END $$";

int ehr_db_fixture_new(struct ehr_db_fixture *db, const struct ehr_db_opts *o)
{
	static const struct ehr_db_opts none = { 0 };
	static unsigned counter;
	const char *base = ehr_test_env("EHRGATE_TEST_PG");
	char q[256];
	PGconn *c = NULL;
	int err = 0;

	memset(db, 0, sizeof(*db));
	if (o == NULL)
		o = &none;
	if (base == NULL)
		return ehr_error_set(EHR_ERR_CONFIG,
		                     "EHRGATE_TEST_PG is not set (run tests through tests/run.sh)");
	snprintf(db->name, sizeof(db->name), "%.30s_%d_%u", o->tag ? o->tag : "db", (int)getpid(), counter++);
	GUARD(ehr_testdb_conninfo(db->super_ci, sizeof(db->super_ci), base, db->name, NULL));
	GUARD(ehr_testdb_conninfo(db->app_ci, sizeof(db->app_ci), base, db->name, "ehrgate_app"));
	if ((c = ehr_testdb_connect(base)) == NULL)
		return ehr_error_set(EHR_ERR_UNAVAILABLE, "connect EHRGATE_TEST_PG");
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
	if (exec_on(c, q) < 0 || exec_on(c, ensure_app_role) < 0) {
		err = ehr_error_set(EHR_ERR_DB, "prepare database %s", db->name);
		goto out;
	}
	snprintf(q, sizeof(q), "CREATE DATABASE %s", db->name);
	if (exec_on(c, q) < 0) {
		err = ehr_error_set(EHR_ERR_DB, "create database %s", db->name);
		db->name[0] = '\0';
		goto out;
	}
	PQfinish(c);
	c = NULL;
	if (o->migrations && strcmp(o->migrations, "none") == 0)
		return 0;
	if ((c = ehr_testdb_connect(db->super_ci)) == NULL) {
		err = ehr_error_set(EHR_ERR_UNAVAILABLE, "connect %s", db->name);
		goto out;
	}
	err = apply_migrations(c, o->migrations);
out:
	PQfinish(c);
	return err;
}

void ehr_db_fixture_free(struct ehr_db_fixture *db)
{
	const char *base = ehr_test_env("EHRGATE_TEST_PG");
	char q[256];

	if (base != NULL && db->name[0] != '\0') {
		snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
		ehr_testdb_exec(base, q);
	}
	memset(db, 0, sizeof(*db));
}
