/* witproc.c - run `ehrwitness serve` for tests (see witproc.h). */
#include "tests/harness/witproc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "tests/harness/harness.h"

#ifndef EHRGATE_BUILD_BIN
#define EHRGATE_BUILD_BIN "ehrgate"
#endif
#ifndef EHRWITNESS_BUILD_BIN
#define EHRWITNESS_BUILD_BIN "ehrwitness"
#endif

extern char **environ;

static const char *witness_bin(void)
{
	const char *b = getenv("EHRWITNESS_BIN");

	return b != NULL && *b ? b : EHRWITNESS_BUILD_BIN;
}

static int write_config(struct wit_proc *w, const struct witp_options *o)
{
	struct ehr_buf ini = EHR_BUF_INIT(1u << 16);
	int err = 0;

	GUARD_GOTO(ehr_buf_printf(&ini,
	                          "; written by tests/harness/witproc.c\n"
	                          "[witness]\nname = %s\nkey = %s\nstate_dir = %s\n"
	                          "listen = 127.0.0.1:0\nmetrics_listen = 127.0.0.1:0\n"
	                          "[tls]\ncert = %s/tls/server.pem\nkey = %s/tls/server.key\n"
	                          "[log \"%s\"]\nvkey = %s\n%s\n",
	                          w->name, w->key, w->state_dir, w->dir, w->dir, o->origin, o->log_vkey,
	                          o->extra_ini ? o->extra_ini : ""));
	GUARD_GOTO(ehr_file_write_atomic(w->config, ini.data, ini.len, 0600, false));
out:
	ehr_buf_free(&ini);
	return err;
}

int witp_setup(struct wit_proc *w, const struct witp_options *o)
{
	char tls[GWP_PATH + 8], out[1024];
	size_t n;

	memset(w, 0, sizeof(*w));
	ENSURE(o != NULL && o->origin != NULL && o->log_vkey != NULL, EHR_ERR_INVAL);
	GUARD(ehr_str_copy(w->name, sizeof(w->name), o->name ? o->name : "witness.test/w"));
	if (ehr_test_tmpdir(w->dir, sizeof(w->dir), "witness") != 0)
		return ehr_error_set(EHR_ERR_IO, "cannot make a temp dir");
	GUARD(ehr_fmt(tls, sizeof(tls), "%s/tls", w->dir));
	GUARD(ehr_fmt(w->config, sizeof(w->config), "%s/witness.ini", w->dir));
	GUARD(ehr_fmt(w->key, sizeof(w->key), "%s/witness.key", w->dir));
	GUARD(ehr_fmt(w->state_dir, sizeof(w->state_dir), "%s/state", w->dir));
	GUARD(ehr_fmt(w->log_path, sizeof(w->log_path), "%s/witness.log", w->dir));
	GUARD(ehr_fmt(w->ca_pem, sizeof(w->ca_pem), "%s/ca.pem", tls));
	{
		const char *argv[] = { EHRGATE_BUILD_BIN, "init", "--state-dir", tls, NULL };

		if (ehr_test_run(NULL, 0, argv) != 0)
			return ehr_error_set(EHR_ERR_IO, "ehrgate init (TLS files for the witness) failed");
	}
	{
		const char *argv[] = { witness_bin(), "init", "--key", w->key, "--name", w->name, NULL };

		if (ehr_test_run(out, sizeof(out), argv) != 0)
			return ehr_error_set(EHR_ERR_IO, "ehrwitness init failed");
	}
	n = strcspn(out, "\n");
	out[n] = '\0';
	GUARD(ehr_str_copy(w->vkey, sizeof(w->vkey), out));
	return write_config(w, o);
}

/* The first lines serve prints: "ehrgate metrics on URL", "ehrwitness vkey
 * ...", then "ehrgate listening on https://127.0.0.1:PORT". */
static int read_banner(struct wit_proc *w, int fd)
{
	char text[2048];
	size_t got = 0;
	int64_t deadline = ehr_monotonic_ms() + 15000;

	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - ehr_monotonic_ms();
		const char *l, *m;
		ssize_t r;

		if (left <= 0)
			return ehr_error_set(EHR_ERR_TIMEOUT, "ehrwitness did not start (log %s)",
			                     w->log_path);
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		r = read(fd, text + got, sizeof(text) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return ehr_error_set(EHR_ERR_UNAVAILABLE, "ehrwitness exited early (log %s)",
			                     w->log_path);
		got += (size_t)r;
		text[got] = '\0';
		if ((l = strstr(text, " listening on https://")) != NULL && strchr(l, '\n') != NULL) {
			const char *url = l + 14, *colon = strrchr(url, ':');
			uint64_t port;
			char num[8];
			size_t nl = strcspn(colon + 1, "\n");

			if (nl >= sizeof(num))
				return ehr_error_set(EHR_ERR_PARSE, "unexpected listening line");
			memcpy(num, colon + 1, nl);
			num[nl] = '\0';
			GUARD(ehr_parse_u64(&port, num, 65535));
			w->port = (uint16_t)port;
			GUARD(ehr_fmt(w->base_url, sizeof(w->base_url), "https://127.0.0.1:%u", w->port));
			if ((m = strstr(text, "metrics on ")) != NULL)
				GUARD(ehr_fmt(w->metrics_url, sizeof(w->metrics_url), "%.*s",
				              (int)strcspn(m + 11, "\n"), m + 11));
			return 0;
		}
		if (got + 1 >= sizeof(text))
			return ehr_error_set(EHR_ERR_PARSE, "overlong output from ehrwitness serve");
	}
}

int witp_start(struct wit_proc *w)
{
	char listen[64];
	const char *argv[] = { witness_bin(), "serve", "-c", w->config, "--set", listen, NULL };
	int pfd[2], err;

	ENSURE(w->pid <= 0, EHR_ERR_EXISTS);
	GUARD(ehr_fmt(listen, sizeof(listen), "witness.listen=127.0.0.1:%u", w->port));
	if (pipe(pfd) != 0)
		return ehr_error_set(EHR_ERR_IO, "pipe: %s", strerror(errno));
	w->pid = fork();
	if (w->pid == 0) {
		int devnull = open("/dev/null", O_RDWR),
		    efd = open(w->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);

		dup2(devnull, 0);
		dup2(pfd[1], 1);
		dup2(efd >= 0 ? efd : devnull, 2);
		close(pfd[0]);
		execve(argv[0], (char *const *)argv, environ);
		_exit(127);
	}
	close(pfd[1]);
	if (w->pid < 0) {
		w->pid = 0;
		close(pfd[0]);
		return ehr_error_set(EHR_ERR_IO, "fork: %s", strerror(errno));
	}
	err = read_banner(w, pfd[0]);
	close(pfd[0]);
	if (err < 0)
		witp_kill(w);
	return err;
}

int witp_wait(struct wit_proc *w, int *status, long wait_ms)
{
	int64_t deadline = ehr_monotonic_ms() + (wait_ms > 0 ? wait_ms : 20000);
	int st;

	ENSURE(w->pid > 0, EHR_ERR_NOT_FOUND);
	for (;;) {
		pid_t r = waitpid(w->pid, &st, WNOHANG);

		if (r == w->pid)
			break;
		if (r < 0 && errno != EINTR)
			return ehr_error_set(EHR_ERR_IO, "waitpid: %s", strerror(errno));
		if (ehr_monotonic_ms() >= deadline)
			return ehr_error_set(EHR_ERR_TIMEOUT, "ehrwitness %d did not exit", (int)w->pid);
		gwp_sleep_ms(10);
	}
	w->pid = 0;
	if (status)
		*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return 0;
}

int witp_kill(struct wit_proc *w)
{
	ENSURE(w->pid > 0, EHR_ERR_NOT_FOUND);
	kill(w->pid, SIGKILL);
	return witp_wait(w, NULL, 20000);
}

int witp_stop(struct wit_proc *w, int *status)
{
	int err;

	ENSURE(w->pid > 0, EHR_ERR_NOT_FOUND);
	kill(w->pid, SIGTERM);
	if ((err = witp_wait(w, status, 20000)) == EHR_ERR_TIMEOUT)
		return witp_kill(w);
	return err;
}

void witp_teardown(struct wit_proc *w)
{
	if (w->pid > 0)
		witp_stop(w, NULL);
	if (w->log_path[0])
		ehr_test_check_log(w->log_path);
	if (w->dir[0])
		ehr_test_rmrf(w->dir);
	memset(w, 0, sizeof(*w));
}

/* Through gwp_request with a full URL; the witness's replies are not the
 * gateway's API, so they are not recorded for the OpenAPI check. */
int witp_request(const struct wit_proc *w, const char *path, const void *body, size_t len,
                 struct gwp_resp *out)
{
	static struct gw_proc none = { .base_url = "witness:" };
	char url[512];
	struct gwp_req rq = { .path = url, .body = body, .body_len = len, .cacert = w->ca_pem };

	GUARD(ehr_fmt(url, sizeof(url), "%s%s", w->base_url, path));
	return gwp_request(&none, &rq, out);
}

int witp_metrics(const struct wit_proc *w, struct gwp_resp *out)
{
	static struct gw_proc none = { .base_url = "witness:" };
	struct gwp_req rq = { .path = w->metrics_url };

	ENSURE(w->metrics_url[0] != '\0', EHR_ERR_NOT_FOUND);
	return gwp_request(&none, &rq, out);
}
