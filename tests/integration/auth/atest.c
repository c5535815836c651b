/* atest.c - auth integration helpers (see atest.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "tests/harness/harness.h"
#include "tests/integration/auth/atest.h"

#ifndef EHR_SOURCE_DIR
#define EHR_SOURCE_DIR "."
#endif

PGconn *atest_connect(const char *ci)
{
	PGconn *c = PQconnectdb(ci);

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "atest: connect: %s\n", PQerrorMessage(c));
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
		fprintf(stderr, "atest: %s\n", PQerrorMessage(c));
	PQclear(r);
	return ok ? 0 : -1;
}

int atest_exec(const char *ci, const char *sql)
{
	PGconn *c = atest_connect(ci);
	int rc = c ? exec_on(c, sql) : -1;

	PQfinish(c);
	return rc;
}

long long atest_scalar(const char *ci, const char *sql)
{
	PGconn *c = atest_connect(ci);
	PGresult *r;
	long long v = -1;

	if (c == NULL)
		return -1;
	r = PQexec(c, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else
		fprintf(stderr, "atest: %s\n", PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return v;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int apply_file(PGconn *c, const char *file)
{
	struct ehr_buf sql = EHR_BUF_INIT(4 << 20), path = EHR_BUF_INIT(4096);
	int rc = -1;

	if (ehr_buf_printf(&path, "%s/schemas/sql/%s", EHR_SOURCE_DIR, file) == 0 &&
	    ehr_file_read(&sql, ehr_buf_cstr(&path), 4 << 20) == 0) {
		rc = exec_on(c, ehr_buf_cstr(&sql));
		if (rc < 0)
			fprintf(stderr, "atest: migration %s failed\n", file);
	}
	ehr_buf_free(&sql);
	ehr_buf_free(&path);
	return rc;
}

int atest_db_create(struct atest_db *db, const char *tag, bool all)
{
	const char *base = ehr_test_env("EHRGATE_TEST_PG");
	static int counter;
	PGconn *c;
	char q[256];
	int rc = 0;

	if (base == NULL) {
		fprintf(stderr, "atest: EHRGATE_TEST_PG is not set (source deploy/devservices.sh env)\n");
		return -1;
	}
	snprintf(db->name, sizeof(db->name), "auth_%s_%d_%d", tag, (int)getpid(), counter++);
	snprintf(db->super_ci, sizeof(db->super_ci), "%s dbname=%s", base, db->name);
	snprintf(db->app_ci, sizeof(db->app_ci), "%s dbname=%s user=ehrgate_app", base, db->name);
	if ((c = atest_connect(base)) == NULL)
		return -1;
	snprintf(q, sizeof(q), "CREATE DATABASE %s", db->name);
	rc = exec_on(c, q);
	PQfinish(c);
	if (rc < 0 || (c = atest_connect(db->super_ci)) == NULL)
		return -1;
	if (all) {
		struct ehr_buf dirp = EHR_BUF_INIT(4096);
		char *names[256];
		size_t n = 0;
		DIR *d;
		struct dirent *e;
		ehr_buf_printf(&dirp, "%s/schemas/sql", EHR_SOURCE_DIR);
		d = opendir(ehr_buf_cstr(&dirp));
		while (d && (e = readdir(d)) != NULL && n < 256)
			if (strlen(e->d_name) > 4 && strcmp(e->d_name + strlen(e->d_name) - 4, ".sql") == 0)
				names[n++] = strdup(e->d_name);
		if (d)
			closedir(d);
		qsort(names, n, sizeof(names[0]), name_cmp);
		for (size_t i = 0; i < n; i++) {
			if (rc == 0)
				rc = apply_file(c, names[i]);
			free(names[i]);
		}
		ehr_buf_free(&dirp);
	} else {
		static const char *files[] = { "0001_roles.sql", "0010_ledger.sql", "0020_auth.sql" };
		for (size_t i = 0; i < EHR_ARRAY_LEN(files) && rc == 0; i++)
			rc = apply_file(c, files[i]);
	}
	PQfinish(c);
	return rc;
}

void atest_db_drop(struct atest_db *db)
{
	const char *base = ehr_test_env("EHRGATE_TEST_PG");
	char q[256];

	if (base == NULL || db->name[0] == '\0')
		return;
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
	atest_exec(base, q);
}

int atest_tmpdir(char out[256], const char *tag)
{
	snprintf(out, 256, "/tmp/ehrauth-%s-XXXXXX", tag);
	return mkdtemp(out) != NULL ? 0 : -1;
}

static int rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[1024];

	if (d == NULL)
		return unlink(dir);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (e->d_type == DT_DIR)
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	return rmdir(dir);
}

void atest_rmrf(const char *dir)
{
	if (dir != NULL && strncmp(dir, "/tmp/ehrauth-", 13) == 0)
		rm_tree(dir);
}
