/* gwproc.c - run `ehrgate serve` for integration tests (see gwproc.h). */
#include "tests/harness/gwproc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/common.h"
#include "tests/harness/harness.h"

#ifndef EHRGATE_BUILD_BIN
#define EHRGATE_BUILD_BIN "ehrgate"
#endif

extern char **environ;

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void gwp_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* fork/exec argv with stdout to out_fd (or /dev/null), stderr to err_path (append). */
static pid_t spawn(char *const *argv, int out_fd, const char *err_path)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	{
		int devnull = open("/dev/null", O_RDWR);
		int efd = err_path ? open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0600) : devnull;
		dup2(devnull, 0);
		dup2(out_fd >= 0 ? out_fd : devnull, 1);
		dup2(efd >= 0 ? efd : devnull, 2);
		execve(argv[0], argv, environ);
		_exit(127);
	}
}

static int wait_exit(pid_t pid, int *status, long wait_ms)
{
	int64_t deadline = mono_ms() + wait_ms;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return ehr_error_set(EHR_ERR_IO, "waitpid: %s", strerror(errno));
		if (mono_ms() >= deadline)
			return ehr_error_set(EHR_ERR_TIMEOUT, "process %d did not exit within %ld ms",
			                     (int)pid, wait_ms);
		gwp_sleep_ms(10);
	}
	if (status)
		*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return 0;
}

/* Read fd to its end into out (NUL-terminated, what fits in cap; NULL out
 * discards), then close it. */
static void read_all(int fd, char *out, size_t cap)
{
	size_t got = 0;

	for (;;) {
		char tmp[4096];
		ssize_t r = read(fd, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (out && got + 1 < cap) {
			size_t take = (size_t)r < cap - 1 - got ? (size_t)r : cap - 1 - got;
			memcpy(out + got, tmp, take);
			got += take;
		}
	}
	close(fd);
	if (out && cap)
		out[got] = '\0';
}

int gwp_run(struct gw_proc *p, const char *const *args, bool with_config, int *status, char *out, size_t cap)
{
	char *argv[64];
	size_t n = 0;
	int pfd[2] = { -1, -1 };
	pid_t pid;

	argv[n++] = p->bin;
	for (size_t i = 0; args[i] && n < 40; i++) {
		argv[n++] = (char *)args[i];
		if (i == 0 && with_config) {
			argv[n++] = "-c";
			argv[n++] = p->config;
		}
	}
	argv[n] = NULL;
	if (pipe(pfd) != 0)
		return ehr_error_set(EHR_ERR_IO, "pipe: %s", strerror(errno));
	pid = spawn(argv, pfd[1], p->log_path);
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return ehr_error_set(EHR_ERR_IO, "fork: %s", strerror(errno));
	}
	read_all(pfd[0], out, cap);
	return wait_exit(pid, status, 120000);
}

int gwp_cmd(struct gw_proc *p, char *out, size_t cap, const char *const *args)
{
	const char *argv[48];
	size_t n = 0;
	int pfd[2] = { -1, -1 };
	int st = -1;
	pid_t pid;

	argv[n++] = p->bin;
	for (size_t i = 0; args[i] && n + 3 < EHR_ARRAY_LEN(argv); i++)
		argv[n++] = args[i];
	argv[n++] = "-c";
	argv[n++] = p->config;
	argv[n] = NULL;
	if (pipe(pfd) != 0)
		return -1;
	pid = spawn((char *const *)argv, pfd[1], p->log_path);
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return -1;
	}
	read_all(pfd[0], out, cap);
	return wait_exit(pid, &st, 120000) == 0 ? st : -1;
}

int gwp_db_exec(const struct gw_proc *p, const char *sql)
{
	return ehr_testdb_exec(p->db.super_ci, sql);
}

long long gwp_db_scalar(const struct gw_proc *p, const char *sql)
{
	return ehr_testdb_scalar(p->db.super_ci, sql);
}

void gwp_s3_store_ini(char *out, size_t cap, const char *endpoint, const char *extra)
{
	snprintf(out, cap,
	         "[store]\nbackend = s3\ns3_endpoint = %s\ns3_bucket = %s\ns3_region = %s\n"
	         "s3_access_key = %s\ns3_secret_key = %s\nkey_prefix = t%d/\n%s",
	         endpoint ? endpoint : ehr_test_env("EHRGATE_TEST_S3"),
	         ehr_test_env("EHRGATE_TEST_S3_BUCKET"), ehr_test_env("EHRGATE_TEST_S3_REGION"),
	         ehr_test_env("EHRGATE_TEST_S3_ACCESS_KEY"), ehr_test_env("EHRGATE_TEST_S3_SECRET_KEY"),
	         (int)getpid(), extra ? extra : "");
}

/* Write p->config from the setup's options (see gwproc.h). */
static int write_config(struct gw_proc *p)
{
	struct ehr_buf ini = EHR_BUF_INIT(1u << 16);
	int err = 0;

	GUARD_GOTO(ehr_buf_printf(&ini,
	                          "; written by tests/harness/gwproc.c\n"
	                          "[server]\nlisten = 127.0.0.1:0\nstate_dir = %s\n%s"
	                          "[metrics]\nlisten = 127.0.0.1:0\n"
	                          "[database]\nurl = %s\nadmin_url = %s\n",
	                          p->state_dir, p->test_routes ? "test_routes = true\n" : "", p->db.app_ci,
	                          p->db.super_ci));
	if (p->store_ini)
		GUARD_GOTO(ehr_buf_printf(&ini, "%s\n", p->store_ini));
	else
		GUARD_GOTO(ehr_buf_printf(&ini, "[store]\nbackend = fs\nfs_path = %s/objects\n", p->dir));
	if (p->extra_ini)
		GUARD_GOTO(ehr_buf_printf(&ini, "%s\n", p->extra_ini));
	GUARD_GOTO(ehr_file_write_atomic(p->config, ini.data, ini.len, 0600, false));
out:
	ehr_buf_free(&ini);
	return err;
}

int gwp_set_store(struct gw_proc *p, const char *store_ini)
{
	ENSURE(p->pid <= 0, EHR_ERR_EXISTS);
	free(p->store_ini);
	p->store_ini = store_ini ? strdup(store_ini) : NULL;
	return write_config(p);
}

/* The database name part: gw_<binary> in [a-z0-9_]. */
static void db_tag(char *out, size_t cap)
{
	char exe[GWP_PATH] = "test";
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *base;
	size_t j;

	if (n > 0)
		exe[n] = '\0';
	base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
	j = (size_t)snprintf(out, cap, "gw_");
	for (; *base && j + 1 < cap; base++)
		out[j++] = (char)((*base >= 'a' && *base <= 'z') || (*base >= '0' && *base <= '9') ? *base
		                                                                                   : '_');
	out[j] = '\0';
}

static void set_paths(struct gw_proc *p)
{
	snprintf(p->state_dir, sizeof(p->state_dir), "%.200s/state", p->dir);
	snprintf(p->config, sizeof(p->config), "%.200s/ehrgate.ini", p->dir);
	snprintf(p->log_path, sizeof(p->log_path), "%.200s/ehrgate.log", p->dir);
	snprintf(p->ca_pem, sizeof(p->ca_pem), "%.200s/ca.pem", p->state_dir);
	snprintf(p->regca_pem, sizeof(p->regca_pem), "%.200s/regca.pem", p->state_dir);
	snprintf(p->regca_key, sizeof(p->regca_key), "%.200s/regca.key", p->state_dir);
}

int gwp_attach(struct gw_proc *p, const char *dir, const char *url, pid_t pid)
{
	const char *bin = ehr_test_env("EHRGATE_BIN");

	memset(p, 0, sizeof(*p));
	if (dir == NULL || url == NULL || pid <= 0)
		return ehr_error_set(EHR_ERR_INVAL, "gwp_attach: no gateway dir, URL or pid");
	snprintf(p->bin, sizeof(p->bin), "%s", bin ? bin : EHRGATE_BUILD_BIN);
	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	set_paths(p);
	/* `ehrgate admin ...` runs against it: their stderr to cmd.log, not serve's log */
	snprintf(p->log_path, sizeof(p->log_path), "%.200s/cmd.log", p->dir);
	snprintf(p->base_url, sizeof(p->base_url), "%s", url);
	p->pid = pid;
	p->borrowed = true;
	return 0;
}

/* `ehrgate <sub> ...` with the setup's sets; fails unless it exits 0. */
static int run_checked(struct gw_proc *p, const char *const *args, bool with_sets, bool with_config)
{
	const char *argv[48];
	char out[4096];
	size_t k = 0;
	int st = -1;

	for (; k < 8 && args[k]; k++)
		argv[k] = args[k];
	for (size_t i = 0; with_sets && i < p->nsets && k + 2 < EHR_ARRAY_LEN(argv); i++) {
		argv[k++] = "--set";
		argv[k++] = p->sets[i];
	}
	argv[k] = NULL;
	GUARD(gwp_run(p, argv, with_config, &st, out, sizeof(out)));
	if (st != 0)
		return ehr_error_set(EHR_ERR_INTERNAL, "ehrgate %s exited %d (log %s)", args[0], st,
		                     p->log_path);
	return 0;
}

int gwp_setup(struct gw_proc *p, const struct gwp_options *o)
{
	static const struct gwp_options none = { 0 };
	const char *bin = ehr_test_env("EHRGATE_BIN");
	struct ehr_db_opts dbo = { .migrations = "none" };
	char tag[48];
	int err = 0;

	/* Raw-socket tests write to connections the server may have closed. */
	signal(SIGPIPE, SIG_IGN);
	if (o == NULL)
		o = &none;
	memset(p, 0, sizeof(*p));
	if (ehr_test_env("EHRGATE_TEST_PG") == NULL)
		return ehr_error_set(EHR_ERR_CONFIG,
		                     "EHRGATE_TEST_PG is not set (run tests through tests/run.sh)");
	snprintf(p->bin, sizeof(p->bin), "%s", bin ? bin : EHRGATE_BUILD_BIN);
	snprintf(p->dir, sizeof(p->dir), "/tmp/ehrgw.XXXXXX");
	if (mkdtemp(p->dir) == NULL)
		return ehr_error_set(EHR_ERR_IO, "mkdtemp: %s", strerror(errno));
	set_paths(p);
	for (size_t i = 0; o->sets && o->sets[i] && p->nsets < EHR_ARRAY_LEN(p->sets); i++)
		p->sets[p->nsets++] = strdup(o->sets[i]);
	p->extra_ini = o->extra_ini ? strdup(o->extra_ini) : NULL;
	p->store_ini = o->store_ini ? strdup(o->store_ini) : NULL;
	p->test_routes = !o->no_test_routes;
	p->keep_port = o->keep_port;
	db_tag(tag, sizeof(tag));
	dbo.tag = tag;
	GUARD_GOTO(ehr_db_fixture_new(&p->db, &dbo));
	{
		const char *args[] = { "init", "--state-dir", p->state_dir, NULL };
		GUARD_GOTO(run_checked(p, args, false, false));
	}
	GUARD_GOTO(write_config(p));
	if (!o->no_migrate) {
		const char *args[] = { "migrate", NULL };
		GUARD_GOTO(run_checked(p, args, true, true));
	}
out:
	return err;
}

void gwp_instance(struct gw_proc *second, const struct gw_proc *first)
{
	memcpy(second, first, sizeof(*second));
	second->pid = 0;
	second->port = 0;
	second->base_url[0] = '\0';
	second->borrowed = true;
}

int gwp_start_with(struct gw_proc *p, const char *const *extra)
{
	char *argv[100];
	size_t n = 0;
	int pfd[2];
	char line[512], listen[64];
	size_t got = 0;
	int64_t deadline;
	int err = 0;

	if (p->pid > 0)
		return ehr_error_set(EHR_ERR_EXISTS, "the gateway is already running");
	argv[n++] = p->bin;
	argv[n++] = "serve";
	argv[n++] = "-c";
	argv[n++] = p->config;
	for (size_t i = 0; i < p->nsets; i++) {
		argv[n++] = "--set";
		argv[n++] = p->sets[i];
	}
	if (p->keep_port && p->port != 0) {
		snprintf(listen, sizeof(listen), "server.listen=127.0.0.1:%u", p->port);
		argv[n++] = "--set";
		argv[n++] = listen;
	}
	for (size_t i = 0; extra && extra[i] && n + 3 < EHR_ARRAY_LEN(argv); i++) {
		argv[n++] = "--set";
		argv[n++] = (char *)extra[i];
	}
	argv[n] = NULL;
	p->metrics_url[0] = '\0';
	if (pipe(pfd) != 0)
		return ehr_error_set(EHR_ERR_IO, "pipe: %s", strerror(errno));
	p->pid = spawn(argv, pfd[1], p->log_path);
	close(pfd[1]);
	if (p->pid < 0) {
		p->pid = 0;
		close(pfd[0]);
		return ehr_error_set(EHR_ERR_IO, "fork: %s", strerror(errno));
	}
	deadline = mono_ms() + 15000;
	for (;;) {
		struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
		int64_t left = deadline - mono_ms();
		char *nl;
		if (left <= 0) {
			err = ehr_error_set(EHR_ERR_TIMEOUT,
			                    "ehrgate serve did not print its listening line (log %s)",
			                    p->log_path);
			break;
		}
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		ssize_t r = read(pfd[0], line + got, sizeof(line) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = ehr_error_set(EHR_ERR_UNAVAILABLE,
			                    "ehrgate serve exited before listening (log %s)", p->log_path);
			break;
		}
		got += (size_t)r;
		line[got] = '\0';
		/* "ehrgate metrics on http://..." comes first when [metrics] listen is on */
		while ((nl = strchr(line, '\n')) != NULL && strncmp(line, "ehrgate metrics on ", 19) == 0) {
			*nl = '\0';
			if (strlen(line + 19) < sizeof(p->metrics_url))
				memcpy(p->metrics_url, line + 19, strlen(line + 19) + 1);
			got -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, got + 1);
		}
		if ((nl = strchr(line, '\n')) != NULL) {
			const char *url = strstr(line, "https://");
			const char *colon;
			uint64_t port;
			*nl = '\0';
			if (url == NULL || (colon = strrchr(url, ':')) == NULL ||
			    ehr_parse_u64(&port, colon + 1, 65535) < 0) {
				err = ehr_error_set(EHR_ERR_PARSE, "unexpected first line from serve");
				break;
			}
			snprintf(p->base_url, sizeof(p->base_url), "%s", url);
			p->port = (uint16_t)port;
			break;
		}
		if (got + 1 >= sizeof(line)) {
			err = ehr_error_set(EHR_ERR_PARSE, "overlong first line from serve");
			break;
		}
	}
	close(pfd[0]);
	if (err < 0) {
		int st;
		kill(p->pid, SIGKILL);
		wait_exit(p->pid, &st, 5000);
		p->pid = 0;
	}
	return err;
}

int gwp_start(struct gw_proc *p)
{
	return gwp_start_with(p, NULL);
}

int gwp_signal(struct gw_proc *p, int sig)
{
	if (p->pid <= 0)
		return ehr_error_set(EHR_ERR_NOT_FOUND, "the gateway is not running");
	if (kill(p->pid, sig) != 0)
		return ehr_error_set(EHR_ERR_IO, "kill: %s", strerror(errno));
	return 0;
}

int gwp_wait(struct gw_proc *p, int *status, long wait_ms)
{
	int err;

	if (p->pid <= 0)
		return ehr_error_set(EHR_ERR_NOT_FOUND, "the gateway is not running");
	err = wait_exit(p->pid, status, wait_ms > 0 ? wait_ms : 20000);
	if (err == 0)
		p->pid = 0;
	return err;
}

int gwp_kill(struct gw_proc *p)
{
	int err;

	GUARD(gwp_signal(p, SIGKILL));
	err = wait_exit(p->pid, NULL, 20000);
	p->pid = 0;
	return err;
}

int gwp_stop(struct gw_proc *p, int *status, long wait_ms)
{
	int err;

	GUARD(gwp_signal(p, SIGTERM));
	err = wait_exit(p->pid, status, wait_ms > 0 ? wait_ms : 20000);
	if (err == EHR_ERR_TIMEOUT) {
		kill(p->pid, SIGKILL);
		wait_exit(p->pid, status, 5000);
	}
	p->pid = 0;
	return err;
}

void gwp_teardown(struct gw_proc *p)
{
	if (p->pid > 0)
		gwp_stop(p, NULL, 0);
	if (p->borrowed) {
		memset(p, 0, sizeof(*p));
		return;
	}
	ehr_test_check_log(p->log_path);
	ehr_db_fixture_free(&p->db);
	if (p->dir[0])
		ehr_test_rmrf(p->dir);
	for (size_t i = 0; i < p->nsets; i++)
		free(p->sets[i]);
	free(p->extra_ini);
	free(p->store_ini);
	memset(p, 0, sizeof(*p));
}

/* ------------------------------------------------------------------ curl */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	struct ehr_buf *b = ud;

	return ehr_buf_append(b, data, size * nmemb) == 0 ? size * nmemb : 0;
}

int gwp_request(const struct gw_proc *p, const struct gwp_req *rq, struct gwp_resp *out)
{
	static bool curl_ready;
	struct ehr_buf body = EHR_BUF_INIT(256u << 20), hdrs = EHR_BUF_INIT(1u << 20),
	               url = EHR_BUF_INIT(8192);
	struct curl_slist *hl = NULL;
	CURL *c;
	CURLcode rc;
	const char *method = rq->method ? rq->method : (rq->body ? "POST" : "GET");
	bool api;

	memset(out, 0, sizeof(*out));
	if (!curl_ready) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = true;
	}
	if (strncmp(rq->path, "https://", 8) == 0 || strncmp(rq->path, "http://", 7) == 0)
		GUARD(ehr_buf_append_str(&url, rq->path));
	else if (rq->http_plain)
		GUARD(ehr_buf_printf(&url, "http://127.0.0.1:%u%s", p->port, rq->path));
	else
		GUARD(ehr_buf_printf(&url, "%s%s", p->base_url, rq->path));
	c = curl_easy_init();
	if (c == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "curl_easy_init");
	curl_easy_setopt(c, CURLOPT_URL, ehr_buf_cstr(&url));
	curl_easy_setopt(c, CURLOPT_CAINFO, rq->cacert ? rq->cacert : p->ca_pem);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, rq->timeout_ms > 0 ? rq->timeout_ms : 10000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdrs);
	if (rq->sslversion)
		curl_easy_setopt(c, CURLOPT_SSLVERSION, rq->sslversion);
	if (rq->cert)
		curl_easy_setopt(c, CURLOPT_SSLCERT, rq->cert);
	if (rq->key)
		curl_easy_setopt(c, CURLOPT_SSLKEY, rq->key);
	if (strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (rq->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
	}
	hl = curl_slist_append(hl, "Expect:");
	for (size_t i = 0; rq->headers && rq->headers[i]; i++)
		hl = curl_slist_append(hl, rq->headers[i]);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	/* Only the TLS API's replies are checked against schemas/openapi.yaml:
	 * not the metrics listener's, nor plain-HTTP probes of the TLS port. */
	api = strncmp(ehr_buf_cstr(&url), p->base_url, strlen(p->base_url)) == 0;
	rc = curl_easy_perform(c);
	out->curl_code = (int)rc;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
	ehr_buf_free(&url);
	ehr_buf_append(&body, "", 0);
	ehr_buf_append(&hdrs, "", 0);
	out->body_len = body.len;
	out->body = body.data ? (char *)ehr_buf_detach(&body, NULL) : strdup("");
	out->headers = hdrs.data ? (char *)ehr_buf_detach(&hdrs, NULL) : strdup("");
	if (api && (rc == CURLE_OK || out->status > 0)) {
		char ct[256];
		if (gwp_resp_header(out, "Content-Type", ct, sizeof(ct)) < 0)
			ct[0] = '\0';
		gwp_record_reply(method, rq->path, out->status, ct, out->body, out->body_len);
	}
	return 0;
}

int gwp_get(const struct gw_proc *p, const char *path, struct gwp_resp *out)
{
	struct gwp_req rq = { .path = path };

	return gwp_request(p, &rq, out);
}

int gwp_metrics(const struct gw_proc *p, struct gwp_resp *out)
{
	if (p->metrics_url[0] == '\0')
		return ehr_error_set(EHR_ERR_NOT_FOUND, "the gateway serves no metrics listener");
	return gwp_get(p, p->metrics_url, out);
}

void gwp_resp_free(struct gwp_resp *r)
{
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

int gwp_resp_header(const struct gwp_resp *r, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);
	const char *line = r->headers;
	bool found = false;

	while (line && *line) {
		const char *eol = strstr(line, "\r\n");
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		if (len > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
			const char *v = line + n + 1;
			while (*v == ' ')
				v++;
			snprintf(out, cap, "%.*s", (int)(len - (size_t)(v - line)), v);
			found = true;
		}
		line = eol ? eol + 2 : NULL;
	}
	return found ? 0 : EHR_ERR_NOT_FOUND;
}

json_t *gwp_resp_json(const struct gwp_resp *r)
{
	return r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
}

bool gwp_resp_is_error(const struct gwp_resp *r, const char *code)
{
	json_t *j = gwp_resp_json(r);
	const char *c = j ? json_string_value(json_object_get(json_object_get(j, "error"), "code")) : NULL;
	const char *m = j ? json_string_value(json_object_get(json_object_get(j, "error"), "message")) : NULL;
	bool ok = c != NULL && m != NULL && (code == NULL || strcmp(c, code) == 0);

	json_decref(j);
	return ok;
}

/* ------------------------------------------------------------- raw sockets */

static int tcp_connect(const struct gw_proc *p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(p->port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return ehr_error_set(EHR_ERR_IO, "socket: %s", strerror(errno));
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return ehr_error_set(EHR_ERR_IO, "connect: %s", strerror(errno));
	}
	return fd;
}

/* Bound every blocking read, so a silent server cannot hang a test. */
static void set_rcvtimeo(int fd, long timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static bool wait_readable(int fd, int64_t deadline)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	int64_t left = deadline - mono_ms();

	return left > 0 && poll(&pf, 1, (int)left) > 0;
}

int gwp_raw_tcp(const struct gw_proc *p, const void *data, size_t len, char *out, size_t cap, size_t *got,
                bool *closed, long timeout_ms)
{
	int fd = tcp_connect(p);
	int64_t deadline = mono_ms() + timeout_ms;

	set_rcvtimeo(fd, timeout_ms);
	*got = 0;
	*closed = false;
	if (fd < 0)
		return fd;
	if (len && write(fd, data, len) < 0) {
		/* the server may already have closed: fall through to read */
	}
	while (wait_readable(fd, deadline)) {
		char tmp[4096];
		ssize_t r = read(fd, tmp, sizeof(tmp));
		if (r <= 0) {
			*closed = true;
			break;
		}
		if (*got + 1 < cap) {
			size_t take = (size_t)r < cap - 1 - *got ? (size_t)r : cap - 1 - *got;
			memcpy(out + *got, tmp, take);
			*got += take;
		}
	}
	out[*got] = '\0';
	close(fd);
	return 0;
}

int gwp_tls_open(const struct gw_proc *p, struct gwp_tls *t)
{
	int err = 0;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	t->ctx = SSL_CTX_new(TLS_client_method());
	ENSURE_GOTO(t->ctx != NULL, EHR_ERR_CRYPTO);
	if (SSL_CTX_load_verify_locations(t->ctx, p->ca_pem, NULL) != 1) {
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "load ca.pem");
		goto out;
	}
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	if ((t->fd = tcp_connect(p)) < 0) {
		err = t->fd;
		t->fd = -1;
		goto out;
	}
	set_rcvtimeo(t->fd, 10000); /* a handshake the server never answers */
	t->ssl = SSL_new(t->ctx);
	ENSURE_GOTO(t->ssl != NULL, EHR_ERR_CRYPTO);
	SSL_set_fd(t->ssl, t->fd);
	SSL_set_tlsext_host_name(t->ssl, "localhost");
	SSL_set1_host(t->ssl, "localhost");
	if (SSL_connect(t->ssl) != 1) {
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "TLS handshake");
		goto out;
	}
	return 0;
out:
	gwp_tls_close(t);
	return err;
}

int gwp_tls_write(struct gwp_tls *t, const void *data, size_t len)
{
	const char *d = data;

	while (len > 0) {
		int n = SSL_write(t->ssl, d, len > (1u << 30) ? (1 << 30) : (int)len);
		if (n <= 0) {
			ERR_clear_error();
			return ehr_error_set(EHR_ERR_IO, "TLS write failed (the server closed?)");
		}
		d += n;
		len -= (size_t)n;
	}
	return 0;
}

int gwp_tls_read(struct gwp_tls *t, const char *until, char *out, size_t cap, size_t *got, bool *closed,
                 long timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;

	*closed = false;
	out[*got] = '\0';
	while (!(until && strstr(out, until)) &&
	       (SSL_pending(t->ssl) > 0 || wait_readable(t->fd, deadline))) {
		char tmp[16384];
		int r = SSL_read(t->ssl, tmp, sizeof(tmp));
		if (r <= 0) {
			int e = SSL_get_error(t->ssl, r);
			if (e == SSL_ERROR_WANT_READ)
				continue;
			*closed = true;
			ERR_clear_error();
			break;
		}
		if (*got + 1 < cap) {
			size_t take = (size_t)r < cap - 1 - *got ? (size_t)r : cap - 1 - *got;
			memcpy(out + *got, tmp, take);
			*got += take;
			out[*got] = '\0';
		}
	}
	return 0;
}

void gwp_tls_close(struct gwp_tls *t)
{
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	if (t->fd >= 0)
		close(t->fd);
	memset(t, 0, sizeof(*t));
	t->fd = -1;
}

int gwp_raw_tls(const struct gw_proc *p, const void *data, size_t len, char *out, size_t cap, size_t *got,
                bool *closed, long timeout_ms)
{
	struct gwp_tls t;

	*got = 0;
	*closed = false;
	out[0] = '\0';
	GUARD(gwp_tls_open(p, &t));
	set_rcvtimeo(t.fd, timeout_ms);
	/* the server may close early (e.g. on a limit): read what it sent */
	(void)gwp_tls_write(&t, data, len);
	gwp_tls_read(&t, NULL, out, cap, got, closed, timeout_ms);
	gwp_tls_close(&t);
	return 0;
}

void gwp_assert_healthy(struct gw_proc *p)
{
	struct gwp_resp res;

	CU_ASSERT_EQUAL_FATAL(p->pid > 0 && kill(p->pid, 0) == 0, 1);
	EHR_ASSERT_OK(gwp_get(p, "/healthz", &res));
	CU_ASSERT_EQUAL(res.status, 200);
	gwp_resp_free(&res);
}

uint64_t gwp_metric(const char *text, const char *series)
{
	const char *p = text ? strstr(text, series) : NULL;
	uint64_t v = 0;
	char num[32];
	size_t n = 0;

	if (p == NULL)
		return 0;
	p += strlen(series);
	while (*p == ' ')
		p++;
	while (*p >= '0' && *p <= '9' && n < sizeof(num) - 1)
		num[n++] = *p++;
	num[n] = '\0';
	ehr_parse_u64(&v, num, UINT64_MAX);
	return v;
}
