/*
 * gwproc.h - run a real `ehrgate serve` from an integration test and talk
 * to it over TLS.
 *
 * Typical use (one gateway per test binary, shared by its suites):
 *
 *   static struct gw_proc gw;
 *   static int suite_init(void)
 *   {
 *           const char *sets[] = { "server.idle_timeout_s=5", NULL };
 *           struct gwp_options o = { .sets = sets };
 *           return gwp_setup(&gw, &o) || gwp_start(&gw);
 *   }
 *   static int suite_clean(void) { gwp_teardown(&gw); return 0; }
 *
 *   struct gwp_resp res;
 *   EHR_ASSERT_OK(gwp_get(&gw, "/healthz", &res));
 *   CU_ASSERT_EQUAL(res.status, 200);
 *   gwp_resp_free(&res);
 *
 * gwp_setup:
 *   - makes a private temp dir (p->dir, mode 0700, removed by gwp_teardown
 *     unless EHRGATE_TEST_KEEP is set);
 *   - runs `ehrgate init --state-dir p->state_dir` (so p->state_dir holds
 *     ca.pem, server.pem/key, regca.pem/key, ledger.key/pub, token.key/pub,
 *     pseudonym.key, kek/: see gateway/cmd/cmd_init.c);
 *   - creates a fresh, empty database through the one database fixture
 *     (dbfix.h), named after the test binary: p->db.super_ci (superuser)
 *     and p->db.app_ci (ehrgate_app) are its conninfo strings;
 *   - writes p->config (INI: listen 127.0.0.1:0, metrics listen 127.0.0.1:0, state_dir, test_routes
 *     unless options->no_test_routes, both database urls, the [store]
 *     section: options->store_ini, or by default the fs store under
 *     p->dir/objects; then options->extra_ini appended verbatim; a key may
 *     appear only once in the file, so override base keys with
 *     options->sets instead);
 *   - runs `ehrgate migrate -c p->config` (schemas/sql of the source tree).
 * gwp_start runs `ehrgate serve -c p->config --set ...` and waits (15 s at
 * most) for its "ehrgate listening on https://127.0.0.1:PORT" line, filling
 * p->base_url, p->port and p->pid. The server's stderr (JSON logs) goes to
 * p->log_path. gwp_stop sends SIGTERM and reports the exit status; gwp_kill
 * is kill -9. With options->keep_port, every start after the first listens
 * on the first start's port again (client profiles keep the URL).
 * gwp_teardown stops the server, scans p->log_path for sanitizer reports
 * (ehr_test_check_log: a report fails the binary), drops the database and
 * removes the temp dir.
 *
 * Several servers on one state dir and database (two instances, a second
 * one with other settings): gwp_instance(&b, &gw) makes b a borrower of gw's
 * files and database; gwp_start_with(&b, sets) runs it on its own port, and
 * gwp_teardown(&b) only stops it (its log is gw's log).
 *
 * Every function returns 0 or a negative ehr_err with the detail set.
 * The harness ignores SIGPIPE (raw-socket tests write to closed peers).
 */
#ifndef EHR_TEST_GWPROC_H
#define EHR_TEST_GWPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "tests/harness/dbfix.h"

#define GWP_PATH 256

struct gwp_options {
	const char *const *sets; /* NULL-terminated "section.key=value" for migrate and serve */
	const char *extra_ini;   /* appended to the config file, e.g. "[auth]\nfoo = 1\n" */
	bool no_migrate;         /* skip `ehrgate migrate` */
	const char *store_ini;   /* the [store] section (NULL: fs under dir/objects; "": none) */
	bool no_test_routes;     /* leave server.test_routes off */
	bool keep_port;          /* restarts listen on the first start's port */
};

struct gw_proc {
	char dir[GWP_PATH];       /* private temp dir */
	char state_dir[GWP_PATH]; /* dir/state: keys and certificates */
	char config[GWP_PATH];    /* dir/ehrgate.ini */
	char log_path[GWP_PATH];  /* dir/ehrgate.log: serve's stderr (appended across restarts) */
	char ca_pem[GWP_PATH];    /* state_dir/ca.pem: trust anchor for the server cert */
	char regca_pem[GWP_PATH]; /* state_dir/regca.pem */
	char regca_key[GWP_PATH]; /* state_dir/regca.key */
	char bin[GWP_PATH];       /* the ehrgate binary */
	struct ehr_db_fixture db; /* db.super_ci (superuser), db.app_ci (ehrgate_app) */
	char base_url[128];       /* https://127.0.0.1:PORT, set by gwp_start */
	char metrics_url[128];    /* http://127.0.0.1:PORT/metrics ([metrics] listen), or "" */
	uint16_t port;
	pid_t pid;      /* serve's pid while running, else 0 */
	char *sets[32]; /* copies of options->sets */
	size_t nsets;
	char *extra_ini, *store_ini; /* copies, to rewrite the config */
	bool test_routes, keep_port;
	bool borrowed; /* made by gwp_instance: the files and database are not its own */
};

int gwp_setup(struct gw_proc *p, const struct gwp_options *o);
/* Start serve with the setup's sets plus `extra_sets` (NULL-terminated, may be NULL). */
int gwp_start_with(struct gw_proc *p, const char *const *extra_sets);
int gwp_start(struct gw_proc *p);
/* Make `second` another server on first's state dir, config, database and
 * log (first must outlive it); start it with gwp_start_with. */
void gwp_instance(struct gw_proc *second, const struct gw_proc *first);
/* Describe a gateway someone else started (a benchmark's run.sh): its work
 * dir (ehrgate.ini, state/), URL and pid. gwp_cmd and gwp_run work on it
 * (their stderr goes to dir/cmd.log). Never gwp_stop or gwp_teardown it:
 * whoever started it stops it. */
int gwp_attach(struct gw_proc *p, const char *dir, const char *url, pid_t pid);
/* Rewrite p->config with another [store] section (as options->store_ini);
 * the server must be stopped. */
int gwp_set_store(struct gw_proc *p, const char *store_ini);
/* Send a signal to the running server. */
int gwp_signal(struct gw_proc *p, int sig);
/* SIGTERM, wait up to wait_ms (0: 20 s), then SIGKILL. *status (may be NULL)
 * gets the exit code, or 128 + signal number if it was killed by a signal. */
int gwp_stop(struct gw_proc *p, int *status, long wait_ms);
/* kill -9 and reap (crash tests). */
int gwp_kill(struct gw_proc *p);
/* Wait for the server to exit on its own (after a signal the test sent). */
int gwp_wait(struct gw_proc *p, int *status, long wait_ms);
/* Stop the server if running, drop the database, remove the temp dir. */
void gwp_teardown(struct gw_proc *p);
/* Run `ehrgate <args...>` and wait for it (120 s at most), with `-c p->config`
 * inserted after the subcommand when with_config; *status gets the exit code.
 * Its stdout goes to out (may be NULL; NUL-terminated, truncated to cap), its
 * stderr is appended to p->log_path. */
int gwp_run(struct gw_proc *p, const char *const *args, bool with_config, int *status, char *out, size_t cap);
/* Run `ehrgate <args...> -c p->config` (args NULL-terminated, e.g. "admin",
 * "issue-token", ...): stdout into out (may be NULL), stderr appended to
 * p->log_path. Returns the exit code, or -1 when it could not run. */
int gwp_cmd(struct gw_proc *p, char *out, size_t cap, const char *const *args);
/* SQL on p's database as the superuser (dbfix.h: ehr_testdb_exec, ehr_testdb_scalar). */
int gwp_db_exec(const struct gw_proc *p, const char *sql);
long long gwp_db_scalar(const struct gw_proc *p, const char *sql);
/* An S3 [store] section for the dev services' SigV4 front ($EHRGATE_TEST_S3,
 * or `endpoint`), key prefix t<pid>/, then `extra` lines (may be NULL). */
void gwp_s3_store_ini(char *out, size_t cap, const char *endpoint, const char *extra);

/* ---- HTTPS requests with libcurl */
struct gwp_req {
	const char *method; /* default "GET" (or "POST" when body is set) */
	const char *path;   /* "/healthz" (joined to base_url) or a full https:// URL */
	const void *body;
	size_t body_len;
	const char *const *headers; /* NULL-terminated "Name: value" */
	const char *cert, *key;     /* client certificate and key (PEM files), optional */
	const char *cacert;         /* default p->ca_pem */
	long timeout_ms;            /* default 10000 */
	long sslversion;            /* CURLOPT_SSLVERSION value, 0 = default (TLS 1.2+) */
	bool http_plain;            /* http:// instead of https:// (plaintext on the TLS port) */
};
struct gwp_resp {
	long status;   /* 0 when no HTTP response arrived */
	int curl_code; /* CURLcode */
	char *body;    /* NUL-terminated */
	size_t body_len;
	char *headers; /* raw header block(s), NUL-terminated */
};
int gwp_request(const struct gw_proc *p, const struct gwp_req *rq, struct gwp_resp *out);
int gwp_get(const struct gw_proc *p, const char *path, struct gwp_resp *out);
/* GET p->metrics_url: the [metrics] listener (plain HTTP, loopback; the
 * harness's config listens on 127.0.0.1:0 and gwp_start reads the
 * "ehrgate metrics on URL" line). EHR_ERR_NOT_FOUND when it is off. */
int gwp_metrics(const struct gw_proc *p, struct gwp_resp *out);
void gwp_resp_free(struct gwp_resp *r);
/* The value of the last header `name` (case-insensitive) into out; 0 or EHR_ERR_NOT_FOUND. */
int gwp_resp_header(const struct gwp_resp *r, const char *name, char *out, size_t cap);
/* The body parsed as JSON (new reference) or NULL. */
json_t *gwp_resp_json(const struct gwp_resp *r);
/* body is {"error":{"code":code,...}} (code NULL: any code). */
bool gwp_resp_is_error(const struct gwp_resp *r, const char *code);

/* Append one reply to $EHRGATE_TEST_REPLIES when it is set (replies.c):
 * tests/openapi/validate_replies.js checks each against schemas/openapi.yaml.
 * gwp_request records its replies itself; tests that talk through
 * libehrclient hand theirs here. path may be a full URL or a path with query. */
void gwp_record_reply(const char *method, const char *path, long status, const char *content_type,
                      const void *body, size_t len);

/* ---- raw bytes over TLS (OpenSSL), for malformed-request tests */
/*
 * Connect to p's port, complete a TLS handshake (verifying p->ca_pem), write
 * `len` bytes, then read until the server closes or `timeout_ms` passes.
 * *got gets the bytes read (NUL-terminated in out, truncated to cap - 1);
 * *closed is true when the server closed the connection.
 */
int gwp_raw_tls(const struct gw_proc *p, const void *data, size_t len, char *out, size_t cap, size_t *got,
                bool *closed, long timeout_ms);
/* A TLS connection driven step by step (100-continue, pipelining, streams). */
struct gwp_tls {
	void *ctx, *ssl; /* SSL_CTX *, SSL * */
	int fd;
};
int gwp_tls_open(const struct gw_proc *p, struct gwp_tls *t);
int gwp_tls_write(struct gwp_tls *t, const void *data, size_t len); /* EHR_ERR_IO once closed */
/* Append what arrives to out (from out[*got]; NUL-terminated, truncated to
 * cap - 1) until `until` (may be NULL) appears in out, the server closes
 * (*closed) or timeout_ms passes. */
int gwp_tls_read(struct gwp_tls *t, const char *until, char *out, size_t cap, size_t *got, bool *closed,
                 long timeout_ms);
void gwp_tls_close(struct gwp_tls *t);
/* Plain TCP: connect, write, read as above (no TLS). */
int gwp_raw_tcp(const struct gw_proc *p, const void *data, size_t len, char *out, size_t cap, size_t *got,
                bool *closed, long timeout_ms);

/* ---- small test helpers */
void gwp_sleep_ms(long ms);
/* CUnit assertions: the process is alive (fatal if not) and /healthz is 200. */
void gwp_assert_healthy(struct gw_proc *p);
/* The value of the first sample of `series` (e.g. "\nehrgate_x_total ") in a
 * /metrics text, 0 when absent. */
uint64_t gwp_metric(const char *text, const char *series);

#endif
