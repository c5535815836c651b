/* ehrtest.c - see ehrtest.h. */
#include "ehrtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/common.h"
#include "tests/harness/harness.h"

extern char **environ;

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Run argv, stdout into out (may be NULL), stderr to the terminal. */
static int run(char *out, size_t cap, const char *const *argv)
{
	int pfd[2], status = 0;
	pid_t pid;
	posix_spawn_file_actions_t fa;
	size_t got = 0;

	if (pipe(pfd) != 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	for (;;) {
		char buf[4096];
		ssize_t n = read(pfd[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		if (out && got + 1 < cap) {
			size_t take = (size_t)n < cap - 1 - got ? (size_t)n : cap - 1 - got;
			memcpy(out + got, buf, take);
			got += take;
		}
	}
	if (out)
		out[got] = '\0';
	close(pfd[0]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int super_exec(const char *ci, const char *sql)
{
	PGconn *c = PQconnectdb(ci);
	PGresult *r;
	int rc = -1;

	if (PQstatus(c) == CONNECTION_OK) {
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
			rc = 0;
		else
			fprintf(stderr, "ehrtest: %s: %s", sql, PQerrorMessage(c));
		PQclear(r);
	} else {
		fprintf(stderr, "ehrtest: connect: %s", PQerrorMessage(c));
	}
	PQfinish(c);
	return rc;
}

int ehrt_exec(struct ehrt *t, const char *sql)
{
	return super_exec(t->super_ci, sql);
}

long long ehrt_scalar(struct ehrt *t, const char *sql)
{
	PGconn *c = PQconnectdb(t->super_ci);
	PGresult *r;
	long long v = -1;

	if (PQstatus(c) == CONNECTION_OK) {
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
			int64_t x;
			if (ehr_parse_i64(&x, PQgetvalue(r, 0, 0), INT64_MIN, INT64_MAX) == 0)
				v = x;
		} else {
			fprintf(stderr, "ehrtest: %s: %s", sql, PQerrorMessage(c));
		}
		PQclear(r);
	}
	PQfinish(c);
	return v;
}

static int write_ini(struct ehrt *t)
{
	struct ehr_buf b = EHR_BUF_INIT(16384);
	int rc;

	rc = ehr_buf_printf(
	        &b,
	        "[server]\nstate_dir = %s\nlisten = 127.0.0.1:%d\nworkers = 2\nmax_body_bytes = 104857600\n"
	        "[database]\nurl = %s\nadmin_url = %s\npool_size = 8\n"
	        "[log]\nlevel = warn\n"
	        "%s\n",
	        t->state, t->port, t->app_ci, t->super_ci, t->store_extra);
	if (rc == 0)
		rc = ehr_file_write_atomic(t->ini, b.data, b.len, 0600, false);
	ehr_buf_free(&b);
	return rc;
}

void ehrt_s3_section(char *out, size_t cap, const char *endpoint, const char *extra)
{
	snprintf(out, cap,
	         "[store]\nbackend = s3\ns3_endpoint = %s\ns3_bucket = %s\ns3_region = %s\ns3_access_key = "
	         "%s\n"
	         "s3_secret_key = %s\nkey_prefix = t%d/\n%s",
	         endpoint ? endpoint : ehr_test_env("EHRGATE_TEST_S3"),
	         ehr_test_env("EHRGATE_TEST_S3_BUCKET"), ehr_test_env("EHRGATE_TEST_S3_REGION"),
	         ehr_test_env("EHRGATE_TEST_S3_ACCESS_KEY"), ehr_test_env("EHRGATE_TEST_S3_SECRET_KEY"),
	         (int)getpid(), extra ? extra : "");
}

int ehrt_set_store(struct ehrt *t, const char *store_section)
{
	snprintf(t->store_extra, sizeof(t->store_extra), "%s", store_section);
	return write_ini(t);
}

int ehrt_setup(struct ehrt *t, const char *tag, const char *store_section)
{
	const char *pg = ehr_test_env("EHRGATE_TEST_PG");
	char sql[256], out[4096];
	int rc;

	memset(t, 0, sizeof(*t));
	if (pg == NULL) {
		fprintf(stderr, "ehrtest: EHRGATE_TEST_PG is not set\n");
		return -1;
	}
	snprintf(t->dir, sizeof(t->dir), "/tmp/ehrt-%s-XXXXXX", tag);
	if (mkdtemp(t->dir) == NULL)
		return -1;
	snprintf(t->state, sizeof(t->state), "%s/state", t->dir);
	snprintf(t->ini, sizeof(t->ini), "%s/ehrgate.ini", t->dir);
	snprintf(t->log, sizeof(t->log), "%s/serve.log", t->dir);
	snprintf(t->ca, sizeof(t->ca), "%s/ca.pem", t->state);
	snprintf(t->dbname, sizeof(t->dbname), "ehrt_%s_%d", tag, (int)getpid());
	snprintf(t->super_ci, sizeof(t->super_ci), "%s dbname=%s", pg, t->dbname);
	snprintf(t->app_ci, sizeof(t->app_ci), "%s dbname=%s user=ehrgate_app", pg, t->dbname);
	snprintf(t->store_extra, sizeof(t->store_extra), "%s", store_section ? store_section : "");
	t->port = free_port();
	snprintf(t->url, sizeof(t->url), "https://127.0.0.1:%d", t->port);
	{
		const char *argv[] = { EHRGATE_BIN, "init", "--state-dir", t->state, NULL };
		if ((rc = run(out, sizeof(out), argv)) != 0) {
			fprintf(stderr, "ehrtest: ehrgate init exited %d\n", rc);
			return -1;
		}
	}
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", t->dbname);
	if (super_exec(pg, sql) < 0 || write_ini(t) < 0)
		return -1;
	{
		const char *argv[] = { EHRGATE_BIN, "migrate", "-c", t->ini, NULL };
		if ((rc = run(out, sizeof(out), argv)) != 0) {
			fprintf(stderr, "ehrtest: ehrgate migrate exited %d\n", rc);
			return -1;
		}
	}
	return 0;
}

int ehrt_start(struct ehrt *t)
{
	const char *argv[] = { EHRGATE_BIN, "serve", "-c", t->ini, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 2, t->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	t->pid = pid;
	for (int i = 0; i < 300; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "ehrtest: ehrgate serve exited early (see %s)\n", t->log);
			t->pid = 0;
			return -1;
		}
		if (port_open(t->port))
			return 0;
		usleep(50 * 1000);
	}
	ehrt_stop(t, true);
	return -1;
}

void ehrt_stop(struct ehrt *t, bool kill9)
{
	int status;

	if (t->pid <= 0)
		return;
	kill(t->pid, kill9 ? SIGKILL : SIGTERM);
	for (int i = 0; i < 400; i++) {
		if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
			t->pid = 0;
			return;
		}
		usleep(50 * 1000);
	}
	kill(t->pid, SIGKILL);
	waitpid(t->pid, &status, 0);
	t->pid = 0;
}

void ehrt_teardown(struct ehrt *t)
{
	char sql[256];
	const char *pg = ehr_test_env("EHRGATE_TEST_PG");

	ehrt_stop(t, false);
	ehr_test_check_log(t->log);
	if (pg && t->dbname[0]) {
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->dbname);
		super_exec(pg, sql);
	}
	if (t->dir[0] && getenv("EHRGATE_TEST_KEEP") == NULL) {
		const char *argv[] = { "/bin/rm", "-rf", t->dir, NULL };
		run(NULL, 0, argv);
	}
}

int ehrt_cmd(struct ehrt *t, char *out, size_t cap, const char *const *args)
{
	const char *argv[32];
	size_t n = 0;

	argv[n++] = EHRGATE_BIN;
	for (size_t i = 0; args[i] && n < 28; i++)
		argv[n++] = args[i];
	argv[n++] = "-c";
	argv[n++] = t->ini;
	argv[n] = NULL;
	return run(out, cap, argv);
}

int ehrt_server(struct ehrt *t, const char *name, struct ehr_client **out)
{
	char token[512], dir[400];
	const char *args[] = { "admin", "issue-token", "--role", "server", "--name", name, NULL };
	json_t *info = NULL;
	size_t n;

	if (ehrt_cmd(t, token, sizeof(token), args) != 0)
		return ehr_error_set(EHR_ERR_INTERNAL, "issue-token failed");
	n = strlen(token);
	while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r'))
		token[--n] = '\0';
	snprintf(dir, sizeof(dir), "%s/%s", t->dir, name);
	GUARD(ehr_client_register(t->url, t->ca, token, dir, &info));
	json_decref(info);
	return ehr_client_open_profile(out, dir);
}

int ehrt_patient(struct ehrt *t, struct ehr_client *srv, const char *name, char pid[160],
                 struct ehr_client **out)
{
	json_t *body = json_pack("{s:s}", "external_id", name), *resp = NULL;
	const char *p = NULL, *code = NULL;
	char dir[400];
	long status = 0;
	int err;

	err = ehr_client_json(srv, &status, &resp, "POST", "/v1/patients", body);
	json_decref(body);
	if (err < 0 || status != 201 || resp == NULL || ehr_json_get_str(resp, "patient_id", &p, 150) < 0 ||
	    ehr_json_get_str(resp, "enrolment_code", &code, 200) < 0) {
		json_decref(resp);
		return ehr_error_set(EHR_ERR_INTERNAL, "patient create: status %ld", status);
	}
	snprintf(pid, 160, "%s", p);
	snprintf(dir, sizeof(dir), "%s/%s", t->dir, name);
	err = ehr_client_enroll(t->url, t->ca, pid, code, NULL, dir);
	json_decref(resp);
	GUARD(err);
	return ehr_client_open_profile(out, dir);
}

int ehrt_grant(struct ehrt *t, const char *patient_name, const char *server_id, const char *actions)
{
	char dir[400], out[8192];
	int rc;

	snprintf(dir, sizeof(dir), "%s/%s", t->dir, patient_name);
	{
		const char *argv[] = { EHRCTL_BIN,  "--dir",     dir,         "contract", "create",
			               "--server",  server_id,   "--actions", actions,    "--all",
			               "--purpose", "treatment", "--days",    "1",        NULL };
		rc = run(out, sizeof(out), argv);
	}
	if (rc != 0)
		return ehr_error_set(EHR_ERR_INTERNAL, "ehrctl contract create exited %d", rc);
	return 0;
}
