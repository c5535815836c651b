/* atest.c - auth integration helpers (see atest.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

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

int atest_db_create_empty(struct atest_db *db, const char *tag)
{
	const char *base = ehr_test_env("EHRGATE_TEST_PG");
	static int counter;
	char q[256];

	if (base == NULL) {
		fprintf(stderr, "atest: EHRGATE_TEST_PG is not set\n");
		return -1;
	}
	snprintf(db->name, sizeof(db->name), "authe_%s_%d_%d", tag, (int)getpid(), counter++);
	snprintf(db->super_ci, sizeof(db->super_ci), "%s dbname=%s", base, db->name);
	snprintf(db->app_ci, sizeof(db->app_ci), "%s dbname=%s user=ehrgate_app", base, db->name);
	snprintf(q, sizeof(q), "CREATE DATABASE %s", db->name);
	return atest_exec(base, q);
}

int atest_run(char *out, size_t cap, const char *const *argv)
{
	char tmpl[] = "/tmp/ehrauth-run-XXXXXX";
	int fd = mkstemp(tmpl), status = 0;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	ssize_t n;

	if (fd < 0)
		return -1;
	unlink(tmpl);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
	if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(fd);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	waitpid(pid, &status, 0);
	if (out != NULL && cap > 0) {
		lseek(fd, 0, SEEK_SET);
		n = read(fd, out, cap - 1);
		out[n > 0 ? n : 0] = '\0';
	}
	close(fd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The port comes from serve's own "ehrgate listening on https://127.0.0.1:PORT"
 * line (listen 127.0.0.1:0): no window in which another process can take a
 * port we picked. */
int atest_gw_start(struct atest_gw *g, const char *ehrgate, const char *state_dir, const struct atest_db *db,
                   const char *const *sets)
{
	static int counter;
	const char *argv[64];
	char ini[4096], out[600];
	struct ehr_buf log = EHR_BUF_INIT(1 << 20);
	posix_spawn_file_actions_t fa;
	size_t n = 0;
	pid_t pid;
	int status, rc;

	memset(g, 0, sizeof(*g));
	g->pid = -1;
	snprintf(g->cfg, sizeof(g->cfg), "%s/gw-%d-%d.ini", state_dir, (int)getpid(), counter);
	snprintf(g->err, sizeof(g->err), "%s/gw-%d-%d.err", state_dir, (int)getpid(), counter);
	snprintf(out, sizeof(out), "%s/gw-%d-%d.out", state_dir, (int)getpid(), counter++);
	snprintf(ini, sizeof(ini),
	         "[server]\nstate_dir = %s\nlisten = 127.0.0.1:0\nworkers = 1\n"
	         "[database]\nurl = %s\nadmin_url = %s\npool_size = 8\n[log]\nlevel = warn\naccess = false\n",
	         state_dir, db->app_ci, db->super_ci);
	if (ehr_file_write_atomic(g->cfg, ini, strlen(ini), 0600, false) < 0)
		return -1;
	argv[n++] = ehrgate;
	argv[n++] = "serve";
	argv[n++] = "-c";
	argv[n++] = g->cfg;
	for (size_t i = 0; sets != NULL && sets[i] != NULL && n < 60; i++) {
		argv[n++] = "--set";
		argv[n++] = sets[i];
	}
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, g->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rc = posix_spawn(&pid, ehrgate, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -1;
	g->pid = pid;
	for (int i = 0; i < 300; i++) {
		const char *p;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "atest: ehrgate serve exited early (see %s)\n", g->err);
			g->pid = -1;
			ehr_buf_free(&log);
			return -1;
		}
		ehr_buf_reset(&log);
		if (ehr_file_read(&log, out, 1 << 20) == 0 &&
		    (p = strstr(ehr_buf_cstr(&log), "listening on https://127.0.0.1:")) != NULL) {
			uint64_t port = 0;
			char digits[8] = "";
			size_t k = 0;
			p += strlen("listening on https://127.0.0.1:");
			while (k < sizeof(digits) - 1 && p[k] >= '0' && p[k] <= '9') {
				digits[k] = p[k];
				k++;
			}
			if (k > 0 && p[k] == '\n' && ehr_parse_u64(&port, digits, 65535) == 0 && port > 0) {
				g->port = (int)port;
				snprintf(g->url, sizeof(g->url), "https://127.0.0.1:%d", g->port);
				ehr_buf_free(&log);
				return 0;
			}
		}
		ehr_error_clear();
		usleep(50 * 1000);
	}
	ehr_buf_free(&log);
	atest_gw_stop(g);
	return -1;
}

void atest_gw_stop(struct atest_gw *g)
{
	int status;

	if (g->pid <= 0)
		return;
	kill(g->pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(g->pid, &status, WNOHANG) == g->pid) {
			g->pid = -1;
			ehr_test_check_log(g->err);
			return;
		}
		usleep(50 * 1000);
	}
	kill(g->pid, SIGKILL);
	waitpid(g->pid, &status, 0);
	g->pid = -1;
	ehr_test_check_log(g->err);
}
