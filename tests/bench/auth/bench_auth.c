/*
 * bench_auth.c - authentication throughput, with same-run baselines.
 *
 *  1. Full TLS 1.3 mTLS handshakes, each followed by one authenticated
 *     request (GET /v1/whoami, revocation checked in Postgres), per second,
 *     against `openssl s_server -www` with the same certificates, suites and
 *     groups, one process each; prints the ratio.
 *  2. Patient token issuance per second (challenge + signed token request,
 *     ledger event included), keep-alive.
 *  3. DPoP-verified requests per second on keep-alive connections, against
 *     /healthz on the same connections as the baseline.
 *
 * Needs EHRGATE_TEST_PG (deploy/devservices.sh). Not part of the test suite:
 * it asserts nothing about speed, it prints figures.
 *   bench_auth [seconds-per-measurement (default 5)] [client threads (default 2)]
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "auth/auth.h"
#include "client/client.h"
#include "tests/harness/gwproc.h"
#include "tests/harness/harness.h"

extern char **environ;

#define SUITES "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
#define GROUPS "X25519:P-256:P-384"

static double seconds = 5;
static int nthreads = 2;
static char tmp[256], state[300], cafile[400], srvdir[300], patdir[300], cert[400], key[400];
static struct gw_proc gw;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------- handshakes */

static SSL_CTX *client_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(ctx, SUITES);
	SSL_CTX_set1_groups_list(ctx, GROUPS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* every handshake is a full one */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_load_verify_locations(ctx, cafile, NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		exit(1);
	}
	return ctx;
}

/* One connection: full handshake, one request, read to close; 1 if 200. */
static int one_exchange(SSL_CTX *ctx, int port, const char *req)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
		                 .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok = 0, n;
	char buf[4096];
	size_t got = 0;
	char head[32] = "";
	SSL *ssl;

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	ssl = SSL_new(ctx);
	X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) == 1 && SSL_write(ssl, req, (int)strlen(req)) > 0) {
		while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
			if (got < sizeof(head) - 1) {
				size_t take = (size_t)n < sizeof(head) - 1 - got ? (size_t)n
				                                                 : sizeof(head) - 1 - got;
				memcpy(head + got, buf, take);
				got += take;
			}
		}
		ok = strncmp(head, "HTTP/1.1 200", 12) == 0 || strncmp(head, "HTTP/1.0 200", 12) == 0;
	}
	ERR_clear_error();
	SSL_free(ssl);
	close(fd);
	return ok;
}

struct hs_arg {
	SSL_CTX *ctx;
	int port;
	const char *req;
	double until;
	long ok, fail;
};

static void *hs_thread(void *p)
{
	struct hs_arg *a = p;

	while (now_s() < a->until) {
		if (one_exchange(a->ctx, a->port, a->req))
			a->ok++;
		else
			a->fail++;
	}
	return NULL;
}

static double run_handshakes(int port, const char *req, long *fails)
{
	pthread_t th[64];
	struct hs_arg args[64];
	SSL_CTX *ctx = client_ctx();
	double t0 = now_s(), el;
	long ok = 0;

	*fails = 0;
	for (int i = 0; i < nthreads; i++) {
		args[i] = (struct hs_arg){ ctx, port, req, t0 + seconds, 0, 0 };
		pthread_create(&th[i], NULL, hs_thread, &args[i]);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		ok += args[i].ok;
		*fails += args[i].fail;
	}
	el = now_s() - t0;
	SSL_CTX_free(ctx);
	return (double)ok / el;
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(s);
	return port;
}

/* ----------------------------------------------- keep-alive measurements */

struct ka_arg {
	const char *mode; /* "dpop", "healthz", "token" */
	double until;
	long ok, fail;
	EVP_PKEY *dev;
	const char *pid;
};

static void *ka_thread(void *p)
{
	struct ka_arg *a = p;
	struct ehr_client *c = NULL;
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	long st;

	if (ehr_client_open_profile(&c, patdir) < 0) {
		fprintf(stderr, "bench: %s\n", ehr_error_msg());
		return NULL;
	}
	while (now_s() < a->until) {
		if (strcmp(a->mode, "token") == 0) {
			json_t *t = NULL;
			if (ehr_client_login_with(c, a->pid, a->dev, &t) == 0)
				a->ok++;
			else
				a->fail++;
			json_decref(t);
			continue;
		}
		ehr_buf_reset(&resp);
		if (ehr_client_request(c, &st, &resp, "GET",
		                       strcmp(a->mode, "dpop") == 0 ? "/v1/whoami" : "/healthz", NULL, NULL,
		                       0, NULL, NULL) == 0 &&
		    st == 200)
			a->ok++;
		else
			a->fail++;
	}
	ehr_client_free(c);
	ehr_buf_free(&resp);
	return NULL;
}

static double run_keepalive(const char *mode, int threads, EVP_PKEY *dev, const char *pid, long *fails)
{
	pthread_t th[64];
	struct ka_arg args[64];
	double t0 = now_s(), el;
	long ok = 0;

	*fails = 0;
	for (int i = 0; i < threads; i++) {
		args[i] = (struct ka_arg){ mode, t0 + seconds, 0, 0, dev, pid };
		pthread_create(&th[i], NULL, ka_thread, &args[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		ok += args[i].ok;
		*fails += args[i].fail;
	}
	el = now_s() - t0;
	return (double)ok / el;
}

/* ------------------------------------------- Postgres commit baseline */

struct pg_arg {
	double until;
	long ok;
	int id;
};

static void *pg_thread(void *p)
{
	struct pg_arg *a = p;
	PGconn *c = ehr_testdb_connect(gw.db.app_ci);
	char jti[64];
	const char *params[1] = { jti };

	if (c == NULL)
		return NULL;
	while (now_s() < a->until) {
		PGresult *r;
		snprintf(jti, sizeof(jti), "bench-%d-%ld", a->id, a->ok);
		r = PQexecParams(c, "INSERT INTO auth_dpop_jti (jti, expires_at) VALUES ($1, now())", 1, NULL,
		                 params, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			a->ok++;
		PQclear(r);
	}
	PQfinish(c);
	return NULL;
}

/* Durable single-row INSERT commits per second, as ehrgate_app, same threads:
 * the floor under every request that spends a jti. */
static double run_pg_commits(int threads)
{
	pthread_t th[64];
	struct pg_arg args[64];
	double t0 = now_s(), el;
	long ok = 0;

	for (int i = 0; i < threads; i++) {
		args[i] = (struct pg_arg){ t0 + seconds, 0, i };
		pthread_create(&th[i], NULL, pg_thread, &args[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		ok += args[i].ok;
	}
	el = now_s() - t0;
	return (double)ok / el;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
	static const char *const sets[] = { "auth.rate_challenge_per_min=1000000",
		                            "auth.rate_token_per_min=1000000",
		                            "auth.rate_burst=1000000",
		                            "auth.rate_enroll_per_min=1000000",
		                            "auth.rate_register_per_min=1000000",
		                            NULL };
	static const char *const base[] = { "server.workers=1", "database.pool_size=8", "log.level=warn",
		                            "log.access=false", NULL };
	struct gwp_options o = { .sets = base, .store_ini = "", .no_test_routes = true };
	char tok[128], out[8192], req[256], sport[16], srvpem[400], srvkey[400], regca[400], code[128],
	        pid[128];
	const char *itok[] = { "admin", "issue-token", "--role", "server", "--name", "Bench Hospital", NULL };
	double gw_hs, ss_hs, dpop, health, tokens, pgc;
	long f1, f2, f3, f4, f5;
	pid_t ss;
	json_t *j = NULL;
	EVP_PKEY *dev = NULL;
	struct ehr_client *sc = NULL;

	if (argc > 1)
		seconds = strtod(argv[1], NULL);
	if (argc > 2)
		nthreads = (int)strtol(argv[2], NULL, 10);
	if (seconds <= 0 || nthreads < 1 || nthreads > 64 || getenv("EHRGATE_TEST_PG") == NULL) {
		fprintf(stderr, "usage: bench_auth [seconds] [threads]  (needs EHRGATE_TEST_PG)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (gwp_setup(&gw, &o) < 0 || gwp_start_with(&gw, sets) < 0)
		goto fail;
	snprintf(tmp, sizeof(tmp), "%s", gw.dir);
	snprintf(state, sizeof(state), "%s", gw.state_dir);
	snprintf(cafile, sizeof(cafile), "%s", gw.ca_pem);
	snprintf(srvdir, sizeof(srvdir), "%s/server", tmp);
	snprintf(patdir, sizeof(patdir), "%s/patient", tmp);
	if (gwp_cmd(&gw, tok, sizeof(tok), itok) != 0)
		goto fail;
	tok[strcspn(tok, "\n")] = '\0';
	if (ehr_client_register(gw.base_url, cafile, tok, srvdir, NULL) < 0) {
		fprintf(stderr, "bench: register: %s\n", ehr_error_msg());
		goto fail;
	}
	snprintf(cert, sizeof(cert), "%s/cert.pem", srvdir);
	snprintf(key, sizeof(key), "%s/key.pem", srvdir);
	/* a patient */
	{
		json_t *b = json_pack("{s:s}", "external_id", "bench-patient");
		long st;
		if (ehr_client_open_profile(&sc, srvdir) < 0 ||
		    ehr_client_json(sc, &st, &j, "POST", "/v1/patients", b) < 0 || st != 201)
			goto fail;
		json_decref(b);
		snprintf(pid, sizeof(pid), "%s", json_string_value(json_object_get(j, "patient_id")));
		snprintf(code, sizeof(code), "%s", json_string_value(json_object_get(j, "enrolment_code")));
		if (ehr_client_enroll(gw.base_url, cafile, pid, code, NULL, patdir) < 0 ||
		    ehr_client_login(patdir) < 0) {
			fprintf(stderr, "bench: enrol: %s\n", ehr_error_msg());
			goto fail;
		}
		snprintf(out, sizeof(out), "%s/device.key", patdir);
		auth_key_load_private(&dev, out);
	}
	printf("bench_auth: %.1f s per measurement, %d client threads, gateway workers=1, same machine (2 "
	       "cores)\n",
	       seconds, nthreads);

	/* 1. handshakes: gateway */
	snprintf(req, sizeof(req),
	         "GET /v1/whoami HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", gw.port);
	gw_hs = run_handshakes(gw.port, req, &f1);
	/* ... and openssl s_server with the same certificate, key, CA, suites and groups */
	snprintf(sport, sizeof(sport), "%d", free_port());
	snprintf(srvpem, sizeof(srvpem), "%s/server.pem", state);
	snprintf(srvkey, sizeof(srvkey), "%s/server.key", state);
	snprintf(regca, sizeof(regca), "%s/regca.pem", state);
	{
		const char *sargv[] = { "/usr/bin/openssl",
			                "s_server",
			                "-quiet",
			                "-accept",
			                sport,
			                "-cert",
			                srvpem,
			                "-key",
			                srvkey,
			                "-CAfile",
			                regca,
			                "-Verify",
			                "1",
			                "-tls1_3",
			                "-ciphersuites",
			                SUITES,
			                "-groups",
			                GROUPS,
			                "-www",
			                "-no_ticket",
			                NULL };
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
		if (posix_spawn(&ss, sargv[0], &fa, NULL, (char *const *)sargv, environ) != 0)
			goto fail;
		posix_spawn_file_actions_destroy(&fa);
	}
	usleep(500 * 1000);
	snprintf(req, sizeof(req), "GET / HTTP/1.0\r\n\r\n");
	ss_hs = run_handshakes((int)strtol(sport, NULL, 10), req, &f2);
	kill(ss, SIGTERM);
	waitpid(ss, NULL, 0);
	printf("mTLS handshake + 1 authenticated request: ehrgate %.0f/s (%ld failed), openssl s_server "
	       "%.0f/s "
	       "(%ld failed), ratio %.2f\n",
	       gw_hs, f1, ss_hs, f2, ss_hs > 0 ? gw_hs / ss_hs : 0.0);

	/* 2. token issuance */
	tokens = run_keepalive("token", nthreads, dev, pid, &f3);
	printf("patient token issuance (challenge + token, ledger event): %.0f/s (%ld failed)\n", tokens, f3);

	/* 3. DPoP-verified requests vs an unauthenticated route, keep-alive */
	dpop = run_keepalive("dpop", nthreads, dev, pid, &f4);
	health = run_keepalive("healthz", nthreads, dev, pid, &f5);
	printf("keep-alive: DPoP-verified GET /v1/whoami %.0f/s (%ld failed), GET /healthz %.0f/s (%ld "
	       "failed), "
	       "ratio %.2f\n",
	       dpop, f4, health, f5, health > 0 ? dpop / health : 0.0);
	pgc = run_pg_commits(nthreads);
	printf("baseline: durable single-row INSERT commits (the jti spend) %.0f/s; DPoP requests / commits "
	       "= %.2f\n",
	       pgc, pgc > 0 ? dpop / pgc : 0.0);

	json_decref(j);
	EVP_PKEY_free(dev);
	ehr_client_free(sc);
	gwp_teardown(&gw);
	return 0;
fail:
	fprintf(stderr, "bench_auth: setup failed: %s\n", ehr_error_msg());
	gwp_teardown(&gw);
	return 1;
}
