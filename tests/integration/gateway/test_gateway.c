/*
 * test_gateway.c - the TLS HTTP core against a real `ehrgate serve`, real
 * Postgres (dev services) and real TLS: endpoints, TLS policy, limits,
 * malformed input, slowloris, SIGHUP reload, SIGTERM drain, readiness.
 *
 * Two gateways: `gw` with the defaults (plus test routes) and `lim` with
 * small limits so each one is cheap to cross.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <dirent.h>

#include "common/common.h"
#include "tests/harness/gwproc.h"
#include "tests/harness/harness.h"

static struct gw_proc gw;  /* defaults */
static struct gw_proc lim; /* small limits */

/* A JSON string's value, never NULL (CU_ASSERT_STRING_EQUAL would crash). */
static const char *sv(const json_t *v)
{
	const char *s = json_string_value(v);
	return s ? s : "(missing)";
}

static int64_t now_ms(void)
{
	return ehr_monotonic_ms();
}

static int gw_init(void)
{
	if (gwp_setup(&gw, NULL) < 0 || gwp_start(&gw) < 0) {
		fprintf(stderr, "gateway setup: %s\n", ehr_error_msg());
		return 1;
	}
	return 0;
}

static int gw_clean(void)
{
	gwp_teardown(&gw);
	return 0;
}

static int lim_init(void)
{
	static const char *sets[] = { "server.max_connections=4",
		                      "server.max_headers=16",
		                      "server.max_header_bytes=2048",
		                      "server.max_body_bytes=4096",
		                      "server.read_timeout_s=2",
		                      "server.idle_timeout_s=2",
		                      "server.workers=2",
		                      "server.blocking_threads=1",
		                      "server.blocking_queue=1",
		                      NULL };
	struct gwp_options o = { .sets = sets };

	if (gwp_setup(&lim, &o) < 0 || gwp_start(&lim) < 0) {
		fprintf(stderr, "limits gateway setup: %s\n", ehr_error_msg());
		return 1;
	}
	return 0;
}

static int lim_clean(void)
{
	gwp_teardown(&lim);
	return 0;
}

/* ---------------------------------------------------------------- endpoints */

static void test_healthz(void)
{
	struct gwp_resp res;
	char ct[128];
	json_t *j;

	EHR_ASSERT_OK(gwp_get(&gw, "/healthz", &res));
	CU_ASSERT_EQUAL(res.status, 200);
	j = gwp_resp_json(&res);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "status")), "ok");
	json_decref(j);
	EHR_ASSERT_OK(gwp_resp_header(&res, "Content-Type", ct, sizeof(ct)));
	CU_ASSERT_STRING_EQUAL(ct, "application/json");
	gwp_resp_free(&res);
}

static void test_readyz(void)
{
	struct gwp_resp res;
	json_t *j;

	EHR_ASSERT_OK(gwp_get(&gw, "/readyz", &res));
	CU_ASSERT_EQUAL(res.status, 200);
	j = gwp_resp_json(&res);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "status")), "ready");
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(json_object_get(j, "checks"), "database")), "ok");
	json_decref(j);
	gwp_resp_free(&res);
}

static void test_metrics(void)
{
	struct gwp_resp res;
	char ct[128];
	uint64_t before, after;

	EHR_ASSERT_OK(gwp_metrics(&gw, &res));
	CU_ASSERT_EQUAL(res.status, 200);
	before = gwp_metric(res.body,
	                    "ehrgate_http_requests_total{route=\"healthz\",method=\"GET\",status=\"200\"}");
	gwp_resp_free(&res);
	for (int i = 0; i < 3; i++) {
		EHR_ASSERT_OK(gwp_get(&gw, "/healthz", &res));
		gwp_resp_free(&res);
	}
	EHR_ASSERT_OK(gwp_get(&gw, "/no/such/thing", &res));
	gwp_resp_free(&res);
	EHR_ASSERT_OK(gwp_metrics(&gw, &res));
	CU_ASSERT_EQUAL(res.status, 200);
	EHR_ASSERT_OK(gwp_resp_header(&res, "Content-Type", ct, sizeof(ct)));
	CU_ASSERT_PTR_NOT_NULL(strstr(ct, "text/plain"));
	after = gwp_metric(res.body,
	                   "ehrgate_http_requests_total{route=\"healthz\",method=\"GET\",status=\"200\"}");
	CU_ASSERT_EQUAL(after, before + 3);
	CU_ASSERT(gwp_metric(
	                  res.body,
	                  "ehrgate_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}") >=
	          1);
	CU_ASSERT_PTR_NOT_NULL(strstr(res.body, "# TYPE ehrgate_http_request_duration_seconds histogram"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
	        res.body, "ehrgate_http_request_duration_seconds_bucket{route=\"healthz\",le=\"+Inf\"}"));
	CU_ASSERT_PTR_NOT_NULL(
	        strstr(res.body, "ehrgate_http_request_duration_seconds_count{route=\"healthz\"}"));
	CU_ASSERT_PTR_NOT_NULL(strstr(res.body, "\nehrgate_http_open_connections "));
	/* no raw paths in labels */
	CU_ASSERT_PTR_NULL(strstr(res.body, "/no/such/thing"));
	gwp_resp_free(&res);
}

/* /metrics is served on its own plain-HTTP listener, loopback by default,
 * and no longer on the TLS port every client reaches (it answered anyone:
 * per-route counts, decisions, the break-glass counter). */
static void test_metrics_own_listener(void)
{
	struct gwp_resp res;
	struct gwp_req post = { .method = "POST", .body = "x", .body_len = 1 };
	char url[160];

	EHR_ASSERT_OK(gwp_get(&gw, "/metrics", &res));
	CU_ASSERT_EQUAL(res.status, 404);
	CU_ASSERT(gwp_resp_is_error(&res, "not_found"));
	CU_ASSERT_PTR_NULL(strstr(res.body, "ehrgate_"));
	gwp_resp_free(&res);
	CU_ASSERT(strncmp(gw.metrics_url, "http://127.0.0.1:", 17) == 0);
	EHR_ASSERT_OK(gwp_metrics(&gw, &res));
	CU_ASSERT_EQUAL(res.status, 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(res.body, "# TYPE ehrgate_http_requests_total counter"));
	CU_ASSERT_PTR_NOT_NULL(strstr(res.body, "ehrgate_break_glass_reads_total"));
	gwp_resp_free(&res);
	/* nothing else is served there */
	snprintf(url, sizeof(url), "%s", gw.metrics_url);
	snprintf(strstr(url, "/metrics"), 16, "/healthz");
	EHR_ASSERT_OK(gwp_get(&gw, url, &res));
	CU_ASSERT_EQUAL(res.status, 404);
	gwp_resp_free(&res);
	post.path = gw.metrics_url;
	EHR_ASSERT_OK(gwp_request(&gw, &post, &res));
	CU_ASSERT_EQUAL(res.status, 405);
	gwp_resp_free(&res);
}

static void test_not_found_and_method(void)
{
	struct gwp_resp res;
	struct gwp_req post = { .method = "POST", .path = "/healthz", .body = "{}", .body_len = 2 };
	char allow[64];

	EHR_ASSERT_OK(gwp_get(&gw, "/nope", &res));
	CU_ASSERT_EQUAL(res.status, 404);
	CU_ASSERT(gwp_resp_is_error(&res, "not_found"));
	gwp_resp_free(&res);
	EHR_ASSERT_OK(gwp_get(&gw, "/healthz/", &res));
	CU_ASSERT_EQUAL(res.status, 404);
	gwp_resp_free(&res);

	EHR_ASSERT_OK(gwp_request(&gw, &post, &res));
	CU_ASSERT_EQUAL(res.status, 405);
	CU_ASSERT(gwp_resp_is_error(&res, "method_not_allowed"));
	EHR_ASSERT_OK(gwp_resp_header(&res, "Allow", allow, sizeof(allow)));
	CU_ASSERT_STRING_EQUAL(allow, "GET");
	gwp_resp_free(&res);
}

static void test_path_params(void)
{
	struct gwp_resp res;
	json_t *j;

	EHR_ASSERT_OK(gwp_get(&gw, "/v1/test/items/a%20b/parts/p-1?x=1", &res));
	CU_ASSERT_EQUAL(res.status, 200);
	j = gwp_resp_json(&res);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "id")), "a b");
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "part")), "p-1");
	json_decref(j);
	gwp_resp_free(&res);
	/* an encoded '/' cannot smuggle a segment into a parameter */
	EHR_ASSERT_OK(gwp_get(&gw, "/v1/test/items/a%2Fb/parts/x", &res));
	CU_ASSERT_EQUAL(res.status, 400);
	CU_ASSERT(gwp_resp_is_error(&res, "bad_request"));
	gwp_resp_free(&res);
	EHR_ASSERT_OK(gwp_get(&gw, "/v1/test/items/a%zz/parts/x", &res));
	CU_ASSERT_EQUAL(res.status, 400);
	gwp_resp_free(&res);
	EHR_ASSERT_OK(gwp_get(&gw, "/v1/test/items/a/parts", &res));
	CU_ASSERT_EQUAL(res.status, 404);
	gwp_resp_free(&res);
}

/* A route declares its query parameters (struct gw_route.query): an
 * unknown, repeated or malformed one is 400 invalid_request naming it,
 * before the handler runs, on every route alike (docs/PROTOCOL.md §1.4). */
static void test_query_params(void)
{
	static const struct {
		const char *path;
		long status;
		const char *says; /* in the message, or NULL */
	} cases[] = {
		{ "/v1/test/sleep?ms=1", 200, NULL },
		{ "/v1/test/sleep?foo=1", 400, "'foo'" },
		{ "/v1/test/sleep?ms=1&ms=2", 400, "'ms' is repeated" },
		{ "/v1/test/sleep?ms=1&", 400, "stray" },
		{ "/v1/test/sleep?&ms=1", 400, "stray" },
		{ "/v1/test/sleep?=1", 400, "no name" },
		{ "/v1/test/sleep?m%73=1", 200, NULL }, /* names are percent-decoded */
		{ "/v1/test/sleep?ms=%zz", 400, "'ms' is malformed" },
		{ "/v1/test/sleep?ms=%00", 400, "'ms' is malformed" },
		{ "/healthz?x=1", 400, "'x'" },
		{ "/healthz?", 200, NULL },
		{ "/v1/test/sleep?%3Cscript%3E=1", 400, "a query parameter is not one" },
	};
	struct gwp_resp res;

	for (size_t i = 0; i < EHR_ARRAY_LEN(cases); i++) {
		EHR_ASSERT_OK(gwp_get(&gw, cases[i].path, &res));
		if (res.status != cases[i].status)
			fprintf(stderr, "\n  %s: %ld %s\n", cases[i].path, res.status, res.body);
		CU_ASSERT_EQUAL(res.status, cases[i].status);
		if (cases[i].status == 400) {
			CU_ASSERT(gwp_resp_is_error(&res, "invalid_request"));
			CU_ASSERT_PTR_NOT_NULL(strstr(res.body, cases[i].says));
			CU_ASSERT_PTR_NULL(strstr(res.body, "<script>"));
		}
		gwp_resp_free(&res);
	}
	/* 33 parameters: over the bound, refused whole */
	{
		char path[1024];
		size_t n = (size_t)snprintf(path, sizeof(path), "/v1/test/sleep?ms=1");
		for (int i = 0; i < 32; i++)
			n += (size_t)snprintf(path + n, sizeof(path) - n, "&x%d=1", i);
		EHR_ASSERT_OK(gwp_get(&gw, path, &res));
		CU_ASSERT_EQUAL(res.status, 400);
		gwp_resp_free(&res);
	}
}

static void test_keepalive_pipelined(void)
{
	static const char two[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
	                          "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
	char out[8192];
	size_t got;
	bool closed;
	int n = 0;

	EHR_ASSERT_OK(gwp_raw_tls(&gw, two, sizeof(two) - 1, out, sizeof(out), &got, &closed, 1500));
	for (const char *p = out; (p = strstr(p, "HTTP/1.1 200")) != NULL; p++)
		n++;
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_FALSE(closed); /* keep-alive: the server left it open */
}

/* A second server on a port in use fails at once (SO_REUSEPORT must not let
 * two instances share it silently). */
static void test_port_in_use(void)
{
	char listen[64];
	const char *args[] = { "serve", "--set", listen, NULL };
	char out[1024];
	int st = -1;

	snprintf(listen, sizeof(listen), "server.listen=127.0.0.1:%u", gw.port);
	EHR_ASSERT_OK(gwp_run(&gw, args, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 1);
	CU_ASSERT_PTR_NULL(strstr(out, "listening"));
	gwp_assert_healthy(&gw);
}

/* The access log names routes, never raw paths or query strings. */
static void test_access_log_privacy(void)
{
	struct gwp_resp res;
	struct ehr_buf log = EHR_BUF_INIT(64u << 20);
	bool found = false;

	EHR_ASSERT_OK(gwp_get(&gw, "/v1/test/items/secret-id-4711/parts/p?token=hunter2", &res));
	CU_ASSERT_EQUAL(res.status, 200);
	gwp_resp_free(&res);
	gwp_sleep_ms(400); /* lines are flushed every 100 ms */
	EHR_ASSERT_OK(ehr_file_read(&log, gw.log_path, log.max));
	CU_ASSERT_PTR_NULL(strstr(ehr_buf_cstr(&log), "secret-id-4711"));
	CU_ASSERT_PTR_NULL(strstr(ehr_buf_cstr(&log), "hunter2"));
	for (const char *p = ehr_buf_cstr(&log); (p = strstr(p, "\"event\":\"http.access\"")) != NULL; p++) {
		const char *eol = strchr(p, '\n');
		const char *route = strstr(p, "\"route\":\"test.params\"");
		if (route && (!eol || route < eol)) {
			found = true;
			break;
		}
	}
	CU_ASSERT_TRUE(found);
	ehr_buf_free(&log);
}

/* A 500 or 503 answers with a generic message and the request id; the
 * detail (file:line: expression, a library's text) is only in the log,
 * on a line with the same request id (docs/OPERATIONS.md §3, §6). */
static void check_fail_reply(const char *path, long status, const char *code, const char *detail)
{
	struct gwp_resp res;
	struct ehr_buf log = EHR_BUF_INIT(64u << 20);
	char rid[64] = "", key[96];
	const char *line, *eol;

	EHR_ASSERT_OK(gwp_get(&gw, path, &res));
	CU_ASSERT_EQUAL(res.status, status);
	CU_ASSERT(gwp_resp_is_error(&res, code));
	CU_ASSERT_PTR_NULL(strstr(res.body, ".c:"));
	CU_ASSERT_PTR_NULL(strstr(res.body, detail));
	CU_ASSERT_PTR_NULL(strstr(res.body, "libpq"));
	EHR_ASSERT_OK(gwp_resp_header(&res, "X-Request-Id", rid, sizeof(rid)));
	CU_ASSERT_EQUAL(strlen(rid), 16);
	gwp_resp_free(&res);
	gwp_sleep_ms(400); /* access lines are flushed every 100 ms */
	EHR_ASSERT_OK(ehr_file_read(&log, gw.log_path, log.max));
	CU_ASSERT_FATAL(snprintf(key, sizeof(key), "\"request_id\":\"%s\"", rid) < (int)sizeof(key));
	line = strstr(ehr_buf_cstr(&log), "\"event\":\"http.error\"");
	for (; line; line = strstr(line + 1, "\"event\":\"http.error\"")) {
		eol = strchr(line, '\n');
		if (strstr(line, key) && (!eol || strstr(line, key) < eol))
			break;
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(line);
	eol = strchr(line, '\n');
	CU_ASSERT(strstr(line, detail) != NULL && (!eol || strstr(line, detail) < eol));
	CU_ASSERT(strstr(line, "\"route\":\"test.fail\"") != NULL);
	/* the access line carries the same id */
	line = strstr(ehr_buf_cstr(&log), "\"event\":\"http.access\"");
	for (; line; line = strstr(line + 1, "\"event\":\"http.access\"")) {
		eol = strchr(line, '\n');
		if (strstr(line, key) && (!eol || strstr(line, key) < eol))
			break;
	}
	CU_ASSERT_PTR_NOT_NULL(line);
	ehr_buf_free(&log);
}

static void test_error_detail_only_in_log(void)
{
	check_fail_reply("/v1/test/fail?kind=internal", 500, "internal_error", "gateway/routes_core.c:");
	check_fail_reply("/v1/test/fail?kind=internal", 500, "internal_error", "v == 42");
	check_fail_reply("/v1/test/fail?kind=unavailable", 503, "unavailable", "server-internal-7");
}

/* The client goes away while its request runs on the blocking pool: the
 * late reply is dropped safely and the request no longer counts. */
static void test_client_gone_mid_request(void)
{
	static const char req[] = "GET /v1/test/sleep?ms=600 HTTP/1.1\r\nHost: localhost\r\n\r\n";
	struct gwp_resp res;
	char out[1024];
	size_t got;
	bool closed;

	for (int i = 0; i < 3; i++)
		EHR_ASSERT_OK(gwp_raw_tls(&gw, req, sizeof(req) - 1, out, sizeof(out), &got, &closed, 100));
	CU_ASSERT_EQUAL(got, 0);
	gwp_sleep_ms(1200);
	gwp_assert_healthy(&gw);
	EHR_ASSERT_OK(gwp_metrics(&gw, &res));
	/* nothing is in flight (the scrape is on the metrics listener) */
	CU_ASSERT_EQUAL(gwp_metric(res.body, "\nehrgate_http_inflight_requests"), 0);
	CU_ASSERT(
	        gwp_metric(
	                res.body,
	                "ehrgate_http_requests_total{route=\"test.sleep\",method=\"GET\",status=\"200\"}") >=
	        3);
	gwp_resp_free(&res);
}

/* ---------------------------------------------------------------- TLS policy */

static void test_tls_versions(void)
{
	struct gwp_resp res;
	struct gwp_req r10 = { .path = "/healthz",
		               .sslversion = CURL_SSLVERSION_TLSv1_0 | CURL_SSLVERSION_MAX_TLSv1_0 };
	struct gwp_req r11 = { .path = "/healthz",
		               .sslversion = CURL_SSLVERSION_TLSv1_1 | CURL_SSLVERSION_MAX_TLSv1_1 };
	struct gwp_req r12 = { .path = "/healthz",
		               .sslversion = CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2 };
	struct gwp_req r13 = { .path = "/healthz",
		               .sslversion = CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3 };

	EHR_ASSERT_OK(gwp_request(&gw, &r10, &res));
	CU_ASSERT_EQUAL(res.status, 0);
	CU_ASSERT_NOT_EQUAL(res.curl_code, CURLE_OK);
	gwp_resp_free(&res);
	EHR_ASSERT_OK(gwp_request(&gw, &r11, &res));
	CU_ASSERT_EQUAL(res.status, 0);
	CU_ASSERT_NOT_EQUAL(res.curl_code, CURLE_OK);
	gwp_resp_free(&res);
	EHR_ASSERT_OK(gwp_request(&gw, &r12, &res));
	CU_ASSERT_EQUAL(res.status, 200);
	gwp_resp_free(&res);
	EHR_ASSERT_OK(gwp_request(&gw, &r13, &res));
	CU_ASSERT_EQUAL(res.status, 200);
	gwp_resp_free(&res);
	gwp_assert_healthy(&gw);
}

/* TLS 1.2 offers only the AEAD ECDHE suites. */
static void test_tls12_ciphers(void)
{
	static const char *refused[] = { "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384",
		                         "AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA256" };
	char out[256];
	size_t got;
	bool closed;

	for (size_t i = 0; i < EHR_ARRAY_LEN(refused); i++) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
		SSL *ssl;
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(gw.port) };
		inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
		CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
		SSL_CTX_set_security_level(ctx, 0);
		CU_ASSERT_EQUAL(SSL_CTX_set_cipher_list(ctx, refused[i]), 1);
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		CU_ASSERT_NOT_EQUAL(SSL_connect(ssl), 1);
		ERR_clear_error();
		SSL_free(ssl);
		SSL_CTX_free(ctx);
		close(fd);
	}
	/* the listener still works */
	EHR_ASSERT_OK(gwp_raw_tls(&gw, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35, out, sizeof(out), &got,
	                          &closed, 1000));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 200"));
}

static void test_plaintext_refused(void)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
	struct gwp_req rq = { .path = "/healthz", .http_plain = true, .timeout_ms = 3000 };
	struct gwp_resp res;
	char out[4096];
	size_t got;
	bool closed;

	EHR_ASSERT_OK(gwp_request(&gw, &rq, &res));
	CU_ASSERT(res.status < 200 || res.status > 299);
	CU_ASSERT_NOT_EQUAL(res.curl_code, CURLE_OK);
	gwp_resp_free(&res);
	EHR_ASSERT_OK(gwp_raw_tcp(&gw, req, sizeof(req) - 1, out, sizeof(out), &got, &closed, 3000));
	CU_ASSERT_PTR_NULL(strstr(out, "HTTP/1.1 2"));
	CU_ASSERT_PTR_NULL(strstr(out, "status"));
	CU_ASSERT_TRUE(closed);
	gwp_assert_healthy(&gw);
}

/* Presenting a client certificate from an unknown CA does not fail the
 * handshake: the listener requests certificates but routes decide. */
static void make_self_signed(const char *certpath, const char *keypath)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	FILE *f;

	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"stranger", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, k);
	X509_sign(x, k, EVP_sha256());
	f = fopen(certpath, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(keypath, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void test_client_cert_optional(void)
{
	char cert[600], key[600];
	struct gwp_resp res;
	struct gwp_req rq = { .path = "/healthz", .cert = cert, .key = key };

	snprintf(cert, sizeof(cert), "%s/stranger.pem", gw.dir);
	snprintf(key, sizeof(key), "%s/stranger.key", gw.dir);
	make_self_signed(cert, key);
	EHR_ASSERT_OK(gwp_request(&gw, &rq, &res));
	CU_ASSERT_EQUAL(res.status, 200);
	gwp_resp_free(&res);
}

/* ---------------------------------------------------------------- limits */

static void test_oversized_headers(void)
{
	struct ehr_buf big = EHR_BUF_INIT(1u << 20);
	char out[4096];
	size_t got;
	bool closed;

	ehr_buf_append_str(&big, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ");
	for (int i = 0; i < 4000; i++)
		ehr_buf_append_u8(&big, 'a');
	ehr_buf_append_str(&big, "\r\n\r\n");
	EHR_ASSERT_OK(gwp_raw_tls(&lim, big.data, big.len, out, sizeof(out), &got, &closed, 3000));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 431"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "{\"error\":{\"code\":\"headers_too_large\""));
	CU_ASSERT_PTR_NULL(strstr(out, "<HTML"));
	CU_ASSERT_TRUE(closed);
	ehr_buf_free(&big);
	gwp_assert_healthy(&lim);
}

static void test_too_many_headers(void)
{
	struct ehr_buf req = EHR_BUF_INIT(1u << 20);
	char out[4096];
	size_t got;
	bool closed;

	ehr_buf_append_str(&req, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n");
	for (int i = 0; i < 20; i++)
		ehr_buf_printf(&req, "X-H%d: v\r\n", i);
	ehr_buf_append_str(&req, "\r\n");
	EHR_ASSERT_OK(gwp_raw_tls(&lim, req.data, req.len, out, sizeof(out), &got, &closed, 3000));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 431"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"code\":\"headers_too_large\""));
	CU_ASSERT_TRUE(closed);
	ehr_buf_free(&req);
	gwp_assert_healthy(&lim);
}

static void test_oversized_body(void)
{
	static const char huge[] =
	        "POST /v1/test/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999\r\n\r\nabc";
	char *body = malloc(10000);
	struct gwp_req small = { .path = "/v1/test/echo", .body = body, .body_len = 4000 };
	struct gwp_req big = { .path = "/v1/test/echo", .body = body, .body_len = 10000 };
	struct gwp_resp res;
	char out[4096];
	size_t got;
	bool closed;
	json_t *j;

	memset(body, 'x', 10000);
	EHR_ASSERT_OK(gwp_request(&lim, &small, &res));
	CU_ASSERT_EQUAL(res.status, 200);
	j = gwp_resp_json(&res);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "bytes")), 4000);
	json_decref(j);
	gwp_resp_free(&res);

	EHR_ASSERT_OK(gwp_request(&lim, &big, &res));
	CU_ASSERT_EQUAL(res.status, 413);
	CU_ASSERT(gwp_resp_is_error(&res, "too_large"));
	gwp_resp_free(&res);

	EHR_ASSERT_OK(gwp_raw_tls(&lim, huge, sizeof(huge) - 1, out, sizeof(out), &got, &closed, 3000));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 413"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"code\":\"too_large\""));
	CU_ASSERT_TRUE(closed);
	free(body);
	gwp_assert_healthy(&lim);
}

static void test_malformed_requests(void)
{
	static const struct {
		const char *req;
		const char *status;
	} cases[] = {
		{ "GARBAGE\r\n\r\n", "HTTP/1.1 400" },
		{ "GET\r\n\r\n", "HTTP/1.1 400" },
		{ "GET /healthz HTTP/1.1\r\nNoColonHere\r\n\r\n", "HTTP/1.1 400" },
		{ "GET /healthz HTTP/1.1\r\n Continuation: x\r\n\r\n", "HTTP/1.1 400" },
		{ "BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 501" },
		{ "GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400" },
		{ "POST /v1/test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", "HTTP/1.1 400" },
		/* HTTP/1.x other than 1.0 and 1.1 (HTTP/1.2 was served as 1.1) */
		{ "GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n", "HTTP/1.1 505" },
		{ "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505" },
		/* a bare LF anywhere in the head: 400 and close (it used to end a line) */
		{ "GET /healthz HTTP/1.1\nHost: x\n\n", "HTTP/1.1 400" },
		{ "GET /healthz HTTP/1.1\r\nHost: x\r\n\n", "HTTP/1.1 400" },
	};
	char out[4096];
	size_t got;
	bool closed;

	for (size_t i = 0; i < EHR_ARRAY_LEN(cases); i++) {
		EHR_ASSERT_OK(gwp_raw_tls(&gw, cases[i].req, strlen(cases[i].req), out, sizeof(out), &got,
		                          &closed, 3000));
		if (strstr(out, cases[i].status) == NULL)
			fprintf(stderr, "\n  case %zu: got %.80s\n", i, out);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, cases[i].status));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "{\"error\":{\"code\":\""));
		CU_ASSERT_PTR_NULL(strstr(out, "<HTML"));
		CU_ASSERT_TRUE(closed);
	}
	/* The finding: a bare LF let "X-A: a\nContent-Length: 37" frame a body
	 * that another parser reads as a second request (200, then 400 on one
	 * connection). Now: one 400, the connection closed, nothing else. */
	{
		static const char smuggle[] =
		        "POST /v1/test/echo HTTP/1.1\r\nHost: x\r\nX-A: a\nContent-Length: 37\r\n\r\n"
		        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
		EHR_ASSERT_OK(gwp_raw_tls(&gw, smuggle, sizeof(smuggle) - 1, out, sizeof(out), &got, &closed,
		                          3000));
		CU_ASSERT(strncmp(out, "HTTP/1.1 400", 12) == 0);
		CU_ASSERT_PTR_NULL(strstr(out + 1, "HTTP/1.1 "));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "bare LF"));
		CU_ASSERT_TRUE(closed);
	}
	/* an over-long request line: JSON 4xx, then close */
	{
		struct ehr_buf b = EHR_BUF_INIT(1u << 20);
		ehr_buf_append_str(&b, "GET /");
		for (int i = 0; i < 40000; i++)
			ehr_buf_append_u8(&b, 'a');
		ehr_buf_append_str(&b, " HTTP/1.1\r\nHost: x\r\n\r\n");
		EHR_ASSERT_OK(gwp_raw_tls(&gw, b.data, b.len, out, sizeof(out), &got, &closed, 3000));
		CU_ASSERT(strstr(out, "HTTP/1.1 400") || strstr(out, "HTTP/1.1 414") ||
		          strstr(out, "HTTP/1.1 431"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "{\"error\":{\"code\":\""));
		CU_ASSERT_TRUE(closed);
		ehr_buf_free(&b);
	}
	gwp_assert_healthy(&gw);
}

/* A TLS connection to the limits gateway, kept open by the caller. */
static SSL *open_tls(struct gw_proc *p, int *fdp, SSL_CTX **ctxp)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(p->port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	SSL *ssl;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	SSL_CTX_load_verify_locations(ctx, p->ca_pem, NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "\n  open_tls: connect to port %u: %s\n", p->port, strerror(errno));
		close(fd);
		SSL_CTX_free(ctx);
		return NULL;
	}
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		unsigned long e = ERR_peek_error();
		char why[256];
		ERR_error_string_n(e, why, sizeof(why));
		fprintf(stderr, "\n  open_tls: handshake failed: %s (errno %d)\n", why, errno);
		ERR_clear_error();
		SSL_free(ssl);
		SSL_CTX_free(ctx);
		close(fd);
		return NULL;
	}
	*fdp = fd;
	*ctxp = ctx;
	return ssl;
}

static void close_tls(SSL *ssl, int fd, SSL_CTX *ctx)
{
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
}

/* Read until the server closes; true if it did within timeout_ms. */
static bool closed_within(SSL *ssl, int fd, long timeout_ms, char *seen, size_t cap)
{
	int64_t deadline = now_ms() + timeout_ms;
	size_t n = 0;

	seen[0] = '\0';
	while (now_ms() < deadline) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		char tmp[1024];
		int r;
		if (poll(&pf, 1, 100) <= 0)
			continue;
		r = SSL_read(ssl, tmp, sizeof(tmp));
		if (r <= 0) {
			if (SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ)
				continue;
			ERR_clear_error();
			return true;
		}
		if (n + (size_t)r < cap) {
			memcpy(seen + n, tmp, (size_t)r);
			n += (size_t)r;
			seen[n] = '\0';
		}
	}
	return false;
}

static void test_slowloris_idle(void)
{
	int fd;
	SSL_CTX *ctx;
	SSL *ssl = open_tls(&lim, &fd, &ctx);
	char seen[1024];
	int64_t t0 = now_ms();

	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	/* A handshake and then silence: dropped after read_timeout_s = 2. */
	CU_ASSERT_TRUE(closed_within(ssl, fd, 8000, seen, sizeof(seen)));
	CU_ASSERT(now_ms() - t0 < 7000);
	CU_ASSERT_PTR_NULL(strstr(seen, "HTTP/1.1 2"));
	close_tls(ssl, fd, ctx);
	gwp_assert_healthy(&lim);
}

/* TCP connect and silence (no ClientHello): dropped by the same deadline. */
static void test_slowloris_no_handshake(void)
{
	char out[256];
	size_t got;
	bool closed;
	int64_t t0 = now_ms();

	EHR_ASSERT_OK(gwp_raw_tcp(&lim, "", 0, out, sizeof(out), &got, &closed, 8000));
	CU_ASSERT_TRUE(closed);
	CU_ASSERT(now_ms() - t0 < 7000);
	CU_ASSERT_EQUAL(got, 0);
	gwp_assert_healthy(&lim);
}

static void test_slowloris_trickle(void)
{
	int fd;
	SSL_CTX *ctx;
	SSL *ssl = open_tls(&lim, &fd, &ctx);
	static const char head[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
	int64_t t0 = now_ms();
	bool dropped = false;

	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	SSL_write(ssl, head, sizeof(head) - 1);
	/* One byte every 300 ms: each resets an idle timer, but the request
	 * deadline (read_timeout_s = 2) still ends it. */
	while (now_ms() - t0 < 10000) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (SSL_write(ssl, "a", 1) <= 0) {
			ERR_clear_error();
			dropped = true;
			break;
		}
		if (poll(&pf, 1, 300) > 0) {
			char tmp[512];
			int r = SSL_read(ssl, tmp, sizeof(tmp));
			if (r <= 0 && SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ) {
				ERR_clear_error();
				dropped = true;
				break;
			}
		}
	}
	CU_ASSERT_TRUE(dropped);
	CU_ASSERT(now_ms() - t0 < 7000);
	close_tls(ssl, fd, ctx);
	gwp_assert_healthy(&lim);
}

static void test_connection_limit(void)
{
	SSL *s[6] = { 0 };
	SSL_CTX *c[6] = { 0 };
	int fd[6] = { -1, -1, -1, -1, -1, -1 };
	int opened = 0;
	int extra_fd;
	SSL_CTX *extra_ctx;
	SSL *extra;

	gwp_sleep_ms(300); /* earlier tests' connections are gone */
	for (int i = 0; i < 4; i++) {
		s[i] = open_tls(&lim, &fd[i], &c[i]);
		opened += s[i] != NULL;
	}
	CU_ASSERT_EQUAL(opened, 4);
	/* the fifth is refused during the handshake */
	extra = open_tls(&lim, &extra_fd, &extra_ctx);
	CU_ASSERT_PTR_NULL(extra);
	if (extra)
		close_tls(extra, extra_fd, extra_ctx);
	for (int i = 0; i < 4; i++)
		if (s[i])
			close_tls(s[i], fd[i], c[i]);
	gwp_sleep_ms(300);
	gwp_assert_healthy(&lim);
}

struct sleeper {
	struct gw_proc *p;
	long status;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *s = arg;
	struct gwp_req rq = { .path = "/v1/test/sleep?ms=1200", .timeout_ms = 10000 };
	struct gwp_resp res;

	s->status = gwp_request(s->p, &rq, &res) == 0 ? res.status : -1;
	gwp_resp_free(&res);
	return NULL;
}

/* One blocking thread and a queue of one: a third concurrent blocking
 * request is refused with 503 and Retry-After, the others complete. */
static void test_blocking_queue_full(void)
{
	struct sleeper a = { .p = &lim }, b = { .p = &lim };
	struct gwp_req rq = { .path = "/v1/test/sleep?ms=1", .timeout_ms = 5000 };
	struct gwp_resp res;
	pthread_t ta, tb;
	char retry[16] = "";

	pthread_create(&ta, NULL, sleeper_main, &a);
	gwp_sleep_ms(300);
	pthread_create(&tb, NULL, sleeper_main, &b);
	gwp_sleep_ms(300);
	EHR_ASSERT_OK(gwp_request(&lim, &rq, &res));
	CU_ASSERT_EQUAL(res.status, 503);
	CU_ASSERT(gwp_resp_is_error(&res, "unavailable"));
	gwp_resp_header(&res, "Retry-After", retry, sizeof(retry));
	CU_ASSERT_STRING_EQUAL(retry, "1");
	gwp_resp_free(&res);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CU_ASSERT_EQUAL(a.status, 200);
	CU_ASSERT_EQUAL(b.status, 200);
	/* inline routes never wait for the pool */
	gwp_assert_healthy(&lim);
}

/* ---------------------------------------------------------------- signals */

static long server_cert_serial(struct gw_proc *p)
{
	int fd;
	SSL_CTX *ctx;
	SSL *ssl = open_tls(p, &fd, &ctx);
	X509 *x;
	long serial = -1;

	if (ssl == NULL)
		return -1;
	x = SSL_get1_peer_certificate(ssl);
	if (x) {
		serial = ASN1_INTEGER_get(X509_get_serialNumber(x));
		X509_free(x);
	}
	close_tls(ssl, fd, ctx);
	return serial;
}

/* A new server certificate (small serial `serial`, readable with ASN1_INTEGER_get) signed by the dev CA. */
static int write_server_cert(struct gw_proc *p, long serial)
{
	char path[700];
	FILE *f;
	EVP_PKEY *cakey, *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *ca, *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	snprintf(path, sizeof(path), "%s/ca.key", p->state_dir);
	f = fopen(path, "r");
	cakey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	snprintf(path, sizeof(path), "%s/ca.pem", p->state_dir);
	f = fopen(path, "r");
	ca = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!cakey || !ca)
		return -1;
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	X509_set_pubkey(x, k);
	X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(x, cakey, EVP_sha256());
	snprintf(path, sizeof(path), "%s/server.key", p->state_dir);
	f = fopen(path, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	snprintf(path, sizeof(path), "%s/server.pem", p->state_dir);
	f = fopen(path, "w");
	PEM_write_X509(f, x);
	fclose(f);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(k);
	EVP_PKEY_free(cakey);
	return 0;
}

static void test_sighup_reload(void)
{
	char path[700];
	long before = server_cert_serial(&gw), after = -1;
	FILE *f;

	CU_ASSERT_NOT_EQUAL(before, 4242);
	CU_ASSERT_EQUAL_FATAL(write_server_cert(&gw, 4242), 0);
	/* not yet reloaded: the old certificate is still served */
	CU_ASSERT_NOT_EQUAL(server_cert_serial(&gw), 4242);
	EHR_ASSERT_OK(gwp_signal(&gw, SIGHUP));
	for (int i = 0; i < 50 && after != 4242; i++) {
		gwp_sleep_ms(100);
		after = server_cert_serial(&gw);
	}
	CU_ASSERT_EQUAL(after, 4242);
	gwp_assert_healthy(&gw);

	/* A broken certificate file: the reload fails, the old one stays. */
	snprintf(path, sizeof(path), "%s/server.pem", gw.state_dir);
	f = fopen(path, "w");
	fputs("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	EHR_ASSERT_OK(gwp_signal(&gw, SIGHUP));
	gwp_sleep_ms(500);
	CU_ASSERT_EQUAL(server_cert_serial(&gw), 4242);
	gwp_assert_healthy(&gw);
	{
		struct gwp_resp res;
		EHR_ASSERT_OK(gwp_metrics(&gw, &res));
		CU_ASSERT_EQUAL(gwp_metric(res.body, "\nehrgate_tls_reload_failures_total"), 1);
		CU_ASSERT_EQUAL(gwp_metric(res.body, "\nehrgate_tls_reloads_total"), 1);
		gwp_resp_free(&res);
	}
	/* restore a valid pair for later tests and restarts */
	CU_ASSERT_EQUAL(write_server_cert(&gw, 4343), 0);
	EHR_ASSERT_OK(gwp_signal(&gw, SIGHUP));
}

struct slow_call {
	struct gw_proc *p;
	struct gwp_resp res;
	int rc;
};

static void *slow_request(void *arg)
{
	struct slow_call *c = arg;
	struct gwp_req rq = { .path = "/v1/test/sleep?ms=1500", .timeout_ms = 10000 };

	c->rc = gwp_request(c->p, &rq, &c->res);
	return NULL;
}

static void test_sigterm_drain(void)
{
	static const char hz[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	struct slow_call call = { .p = &gw };
	struct gwp_tls idle;
	char buf[2048];
	size_t got = 0;
	bool closed = false;
	pthread_t t;
	int status = -1;
	json_t *j;

	/* a keep-alive connection, idle between requests when the drain starts */
	EHR_ASSERT_OK(gwp_tls_open(&gw, &idle));
	EHR_ASSERT_OK(gwp_tls_write(&idle, hz, sizeof(hz) - 1));
	EHR_ASSERT_OK(gwp_tls_read(&idle, "\"ok\"}", buf, sizeof(buf), &got, &closed, 5000));
	CU_ASSERT(strncmp(buf, "HTTP/1.1 200", 12) == 0 && !closed);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, slow_request, &call), 0);
	gwp_sleep_ms(400); /* the request is in flight on the blocking pool */
	EHR_ASSERT_OK(gwp_signal(&gw, SIGTERM));
	gwp_sleep_ms(200);
	/* the drain closed the idle one: no request can start on it any more
	 * (one that did could outlive the drain's count and the server) */
	got = 0;
	(void)gwp_tls_write(&idle, hz, sizeof(hz) - 1);
	(void)gwp_tls_read(&idle, NULL, buf, sizeof(buf), &got, &closed, 3000);
	CU_ASSERT(closed);
	CU_ASSERT(strstr(buf, "HTTP/1.1 200") == NULL);
	gwp_tls_close(&idle);
	/* no new connections while draining */
	{
		struct gwp_resp res;
		struct gwp_req rq = { .path = "/healthz", .timeout_ms = 2000 };
		EHR_ASSERT_OK(gwp_request(&gw, &rq, &res));
		CU_ASSERT(res.status < 200 || res.status > 299);
		gwp_resp_free(&res);
	}
	pthread_join(t, NULL);
	EHR_ASSERT_OK(call.rc);
	CU_ASSERT_EQUAL(call.res.status, 200);
	j = gwp_resp_json(&call.res);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "slept_ms")), 1500);
	json_decref(j);
	{
		char conn[32] = "";
		gwp_resp_header(&call.res, "Connection", conn, sizeof(conn));
		CU_ASSERT_STRING_EQUAL(conn, "close"); /* draining moves keep-alive clients off */
	}
	gwp_resp_free(&call.res);
	EHR_ASSERT_OK(gwp_wait(&gw, &status, 20000));
	CU_ASSERT_EQUAL(status, 0);
	/* start again for the suites that follow */
	EHR_ASSERT_OK(gwp_start(&gw));
	gwp_assert_healthy(&gw);
}

/* ---------------------------------------------------------------- readiness */

static void test_readyz_follows_postgres(void)
{
	struct gwp_resp res;
	json_t *j;
	long status = 0;

	CU_ASSERT_EQUAL_FATAL(ehr_test_devservices("stop-pg"), 0);
	/* from here on, Postgres must be started again whatever fails */
	EHR_ASSERT_OK(gwp_get(&gw, "/readyz", &res));
	CU_ASSERT_EQUAL(res.status, 503);
	CU_ASSERT(gwp_resp_is_error(&res, "unavailable"));
	j = gwp_resp_json(&res);
	CU_ASSERT_PTR_NOT_NULL(j);
	if (j) {
		const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
		const char *db = json_string_value(json_object_get(json_object_get(j, "checks"), "database"));
		CU_ASSERT(msg && strstr(msg, "database"));
		CU_ASSERT(db && strcmp(db, "down") == 0);
	}
	json_decref(j);
	gwp_resp_free(&res);
	/* liveness is not readiness */
	EHR_ASSERT_OK(gwp_get(&gw, "/healthz", &res));
	CU_ASSERT_EQUAL(res.status, 200);
	gwp_resp_free(&res);

	CU_ASSERT_EQUAL_FATAL(ehr_test_devservices("start-pg"), 0);
	for (int i = 0; i < 50 && status != 200; i++) {
		EHR_ASSERT_OK(gwp_get(&gw, "/readyz", &res));
		status = res.status;
		gwp_resp_free(&res);
		if (status != 200)
			gwp_sleep_ms(200);
	}
	CU_ASSERT_EQUAL(status, 200);
}

/* ---------------------------------------------------------------- commands */

static struct gw_proc cmd; /* no server: init and migrate */

static int cmd_init(void)
{
	struct gwp_options o = { .no_migrate = true };

	if (gwp_setup(&cmd, &o) < 0) {
		fprintf(stderr, "commands setup: %s\n", ehr_error_msg());
		return 1;
	}
	return 0;
}

static int cmd_clean(void)
{
	gwp_teardown(&cmd);
	return 0;
}

static mode_t mode_of(const char *dir, const char *name)
{
	char path[800];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) != 0)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static void test_init_files(void)
{
	static const char *keys[] = { "ca.key",     "server.key", "regca.key",
		                      "ledger.key", "token.key",  "link.key" };
	static const char *pub[] = { "ca.pem", "server.pem", "regca.pem", "ledger.pub", "token.pub" };
	struct ehr_buf kid = EHR_BUF_INIT(64), raw = EHR_BUF_INIT(64);
	char path[800];

	CU_ASSERT_EQUAL(mode_of(cmd.state_dir, "."), 0700);
	CU_ASSERT_EQUAL(mode_of(cmd.state_dir, "kek"), 0700);
	for (size_t i = 0; i < EHR_ARRAY_LEN(keys); i++)
		CU_ASSERT_EQUAL(mode_of(cmd.state_dir, keys[i]), 0600);
	for (size_t i = 0; i < EHR_ARRAY_LEN(pub); i++)
		CU_ASSERT_EQUAL(mode_of(cmd.state_dir, pub[i]), 0644);
	snprintf(path, sizeof(path), "%s/kek/current", cmd.state_dir);
	EHR_ASSERT_OK(ehr_file_read(&kid, path, 64));
	CU_ASSERT_EQUAL(kid.len, 16);
	snprintf(path, sizeof(path), "%s/kek/%s.key", cmd.state_dir, ehr_buf_cstr(&kid));
	EHR_ASSERT_OK(ehr_file_read(&raw, path, 64));
	CU_ASSERT_EQUAL(raw.len, 32);
	ehr_buf_reset(&raw);
	snprintf(path, sizeof(path), "%s/link.key", cmd.state_dir);
	EHR_ASSERT_OK(ehr_file_read(&raw, path, 64));
	CU_ASSERT_EQUAL(raw.len, 32);
	/* a fresh install has no legacy (derived) pseudonyms, so no pseudonym.key */
	CU_ASSERT_EQUAL(mode_of(cmd.state_dir, "pseudonym.key"), (mode_t)-1);
	/* key types */
	{
		FILE *f;
		EVP_PKEY *k;
		snprintf(path, sizeof(path), "%s/ledger.key", cmd.state_dir);
		f = fopen(path, "r");
		k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
		CU_ASSERT(k && EVP_PKEY_get_id(k) == EVP_PKEY_ED25519);
		EVP_PKEY_free(k);
		if (f)
			fclose(f);
		snprintf(path, sizeof(path), "%s/token.key", cmd.state_dir);
		f = fopen(path, "r");
		k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
		CU_ASSERT(k && EVP_PKEY_get_id(k) == EVP_PKEY_EC && EVP_PKEY_get_bits(k) == 256);
		EVP_PKEY_free(k);
		if (f)
			fclose(f);
	}
	/* server.pem chains to ca.pem and names localhost and 127.0.0.1 */
	{
		FILE *f;
		X509 *srv, *ca;
		X509_STORE *store = X509_STORE_new();
		X509_STORE_CTX *ctx = X509_STORE_CTX_new();
		snprintf(path, sizeof(path), "%s/server.pem", cmd.state_dir);
		f = fopen(path, "r");
		srv = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
		snprintf(path, sizeof(path), "%s/ca.pem", cmd.state_dir);
		f = fopen(path, "r");
		ca = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
		CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
		CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
		X509_STORE_add_cert(store, ca);
		X509_STORE_CTX_init(ctx, store, srv, NULL);
		CU_ASSERT_EQUAL(X509_verify_cert(ctx), 1);
		CU_ASSERT_EQUAL(X509_check_host(srv, "localhost", 0, 0, NULL), 1);
		CU_ASSERT_EQUAL(X509_check_ip_asc(srv, "127.0.0.1", 0), 1);
		CU_ASSERT_EQUAL(X509_check_host(srv, "example.org", 0, 0, NULL), 0);
		X509_STORE_CTX_free(ctx);
		X509_STORE_free(store);
		X509_free(srv);
		X509_free(ca);
	}
	ehr_buf_free(&kid);
	ehr_buf_free(&raw);
}

static void test_init_refuses_overwrite(void)
{
	struct ehr_buf before = EHR_BUF_INIT(1u << 16), after = EHR_BUF_INIT(1u << 16);
	const char *args[] = { "init", "--state-dir", cmd.state_dir, NULL };
	char path[800], out[4096];
	int st = -1;

	snprintf(path, sizeof(path), "%s/ledger.key", cmd.state_dir);
	EHR_ASSERT_OK(ehr_file_read(&before, path, before.max));
	EHR_ASSERT_OK(gwp_run(&cmd, args, false, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 1);
	EHR_ASSERT_OK(ehr_file_read(&after, path, after.max));
	CU_ASSERT(before.len == after.len &&
	          memcmp(before.data, after.data, before.len) == 0); /* not secret */
	/* one file missing: still refused, nothing written */
	snprintf(path, sizeof(path), "%s/token.pub", cmd.state_dir);
	CU_ASSERT_EQUAL(unlink(path), 0);
	EHR_ASSERT_OK(gwp_run(&cmd, args, false, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 1);
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
	/* a fresh directory is created with mode 0700 */
	{
		char fresh[700];
		const char *args2[] = { "init", "--state-dir", fresh, NULL };
		snprintf(fresh, sizeof(fresh), "%s/fresh/state", cmd.dir);
		EHR_ASSERT_OK(gwp_run(&cmd, args2, false, &st, out, sizeof(out)));
		CU_ASSERT_EQUAL(st, 0);
		CU_ASSERT_EQUAL(mode_of(fresh, "."), 0700);
		CU_ASSERT_EQUAL(mode_of(fresh, "regca.key"), 0600);
	}
	ehr_buf_free(&before);
	ehr_buf_free(&after);
}

static void test_migrate(void)
{
	const char *args[] = { "migrate", NULL };
	char out[8192];
	int st = -1;

	EHR_ASSERT_OK(gwp_run(&cmd, args, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "applied 0001_roles.sql"));
	/* a second run applies nothing */
	EHR_ASSERT_OK(gwp_run(&cmd, args, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NULL(strstr(out, "applied 0001"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " 0 applied"));
}

static int copy_file(const char *from, const char *to, const char *append)
{
	struct ehr_buf b = EHR_BUF_INIT(8u << 20);
	int err;

	if ((err = ehr_file_read(&b, from, b.max)) == 0 && append)
		err = ehr_buf_append_str(&b, append);
	if (err == 0)
		err = ehr_file_write_atomic(to, b.data ? (void *)b.data : (void *)"", b.len, 0644, false);
	ehr_buf_free(&b);
	return err;
}

/* A copy of schemas/sql in dir, with `edit` appended to 0001_roles.sql. */
static void copy_schemas(const char *dir, const char *edit)
{
	DIR *d = opendir(EHRGATE_SOURCE_DIR "/schemas/sql");
	struct dirent *e;

	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	mkdir(dir, 0700);
	while ((e = readdir(d)) != NULL) {
		char from[800], to[800];
		if (strlen(e->d_name) < 5 || strcmp(e->d_name + strlen(e->d_name) - 4, ".sql") != 0)
			continue;
		snprintf(from, sizeof(from), "%s/schemas/sql/%s", EHRGATE_SOURCE_DIR, e->d_name);
		snprintf(to, sizeof(to), "%s/%s", dir, e->d_name);
		EHR_ASSERT_OK(copy_file(from, to, strcmp(e->d_name, "0001_roles.sql") == 0 ? edit : NULL));
	}
	closedir(d);
}

static void test_migrate_refuses_changed_file(void)
{
	char dir[700], extra[800], out[8192];
	const char *args[] = { "migrate", "--schemas", dir, NULL };
	int st = -1;

	snprintf(dir, sizeof(dir), "%s/sql-changed", cmd.dir);
	copy_schemas(dir, "-- edited after it was applied\n");
	EHR_ASSERT_OK(gwp_run(&cmd, args, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 1);
	{
		FILE *f = fopen(cmd.log_path, "r");
		char line[2048];
		bool named = false;
		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, "0001_roles.sql") && strstr(line, "sha256"))
				named = true;
		if (f)
			fclose(f);
		CU_ASSERT_TRUE(named);
	}
	/* a new migration is applied once, after the others */
	snprintf(dir, sizeof(dir), "%s/sql-new", cmd.dir);
	copy_schemas(dir, NULL);
	snprintf(extra, sizeof(extra), "%s/0009_gw_test_extra.sql", dir);
	EHR_ASSERT_OK(
	        ehr_file_write_atomic(extra, "CREATE TABLE gw_test_extra (id int);\n", 37, 0644, false));
	EHR_ASSERT_OK(gwp_run(&cmd, args, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "applied 0009_gw_test_extra.sql"));
	EHR_ASSERT_OK(gwp_run(&cmd, args, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NULL(strstr(out, "applied 0009"));
	/* two files with one number are refused */
	snprintf(extra, sizeof(extra), "%s/0009_gw_test_twin.sql", dir);
	EHR_ASSERT_OK(ehr_file_write_atomic(extra, "SELECT 1;\n", 10, 0644, false));
	EHR_ASSERT_OK(gwp_run(&cmd, args, true, &st, out, sizeof(out)));
	CU_ASSERT_EQUAL(st, 1);
}

struct migrate_call {
	struct gw_proc *p;
	int status;
	char out[8192];
};

static void *migrate_thread(void *arg)
{
	struct migrate_call *c = arg;
	const char *args[] = { "migrate", NULL };

	if (gwp_run(c->p, args, true, &c->status, c->out, sizeof(c->out)) < 0)
		c->status = -1;
	return NULL;
}

/* Two migrators on a fresh database: the advisory lock serialises them and
 * every file is applied exactly once. */
static void test_migrate_concurrent(void)
{
	struct gw_proc fresh_db;
	struct gwp_options o = { .no_migrate = true };
	struct migrate_call a = { .p = &fresh_db }, b = { .p = &fresh_db };
	pthread_t ta, tb;
	int applied = 0;

	CU_ASSERT_EQUAL_FATAL(gwp_setup(&fresh_db, &o), 0);
	pthread_create(&ta, NULL, migrate_thread, &a);
	pthread_create(&tb, NULL, migrate_thread, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CU_ASSERT_EQUAL(a.status, 0);
	CU_ASSERT_EQUAL(b.status, 0);
	for (const char *p = a.out; (p = strstr(p, "applied 0001_roles.sql")) != NULL; p++)
		applied++;
	for (const char *p = b.out; (p = strstr(p, "applied 0001_roles.sql")) != NULL; p++)
		applied++;
	CU_ASSERT_EQUAL(applied, 1);
	gwp_teardown(&fresh_db);
}

static void test_cli_usage(void)
{
	static const char *cmds[] = { "init", "migrate", "serve", "ledger", "admin", "fsck", "contracts" };
	char out[8192];
	int st = -1;

	for (size_t i = 0; i < EHR_ARRAY_LEN(cmds); i++) {
		const char *args[] = { cmds[i], "--help", NULL };
		EHR_ASSERT_OK(gwp_run(&cmd, args, false, &st, out, sizeof(out)));
		if (st != 0)
			fprintf(stderr, "\n  ehrgate %s --help exited %d\n", cmds[i], st);
		CU_ASSERT_EQUAL(st, 0);
		if (i < 3) /* the core's commands print their usage on stdout */
			CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: ehrgate"));
	}
	{
		const char *args[] = { "--help", NULL };
		EHR_ASSERT_OK(gwp_run(&cmd, args, false, &st, out, sizeof(out)));
		CU_ASSERT_EQUAL(st, 0);
	}
	{
		const char *args[] = { "--version", NULL };
		EHR_ASSERT_OK(gwp_run(&cmd, args, false, &st, out, sizeof(out)));
		CU_ASSERT_EQUAL(st, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "ehrgate "));
	}
	{
		const char *args[] = { "frobnicate", NULL };
		EHR_ASSERT_OK(gwp_run(&cmd, args, false, &st, out, sizeof(out)));
		CU_ASSERT_EQUAL(st, 2);
	}
	{
		const char *args[] = { "serve", "--set", "server.wrokers=2", NULL };
		EHR_ASSERT_OK(gwp_run(&cmd, args, true, &st, out, sizeof(out)));
		CU_ASSERT_EQUAL(st, 1);
	}
	{
		const char *args[] = { "serve", "--print-config", NULL };
		EHR_ASSERT_OK(gwp_run(&cmd, args, true, &st, out, sizeof(out)));
		CU_ASSERT_EQUAL(st, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "server.test_routes = true"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "database.url = (set)"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "metrics.listen = 127.0.0.1:0"));
	}
}

static void register_suites(void)
{
	EHR_ADD_SUITE(
	        "gateway", gw_init, gw_clean, { "healthz", test_healthz }, { "readyz", test_readyz },
	        { "metrics", test_metrics },
	        { "metrics on its own listener only", test_metrics_own_listener },
	        { "404 and 405 JSON", test_not_found_and_method }, { "path parameters", test_path_params },
	        { "query parameters: declared, once, well-formed", test_query_params },
	        { "keep-alive pipelining", test_keepalive_pipelined },
	        { "a second server on a port in use fails", test_port_in_use },
	        { "access log: route names, no paths or queries", test_access_log_privacy },
	        { "5xx: generic reply, detail in the log by request id", test_error_detail_only_in_log },
	        { "client gone mid-request", test_client_gone_mid_request },
	        { "TLS 1.0/1.1 refused, 1.2/1.3 ok", test_tls_versions },
	        { "TLS 1.2 non-AEAD suites refused", test_tls12_ciphers },
	        { "plaintext HTTP refused", test_plaintext_refused },
	        { "client certificate optional", test_client_cert_optional },
	        { "malformed requests answered in JSON", test_malformed_requests },
	        { "SIGHUP reloads certificates", test_sighup_reload },
	        { "SIGTERM drains in-flight requests", test_sigterm_drain },
	        { "readyz follows Postgres", test_readyz_follows_postgres });
	EHR_ADD_SUITE("commands", cmd_init, cmd_clean,
	              { "init: files, modes, key types, cert", test_init_files },
	              { "init refuses to overwrite keys", test_init_refuses_overwrite },
	              { "migrate: once each", test_migrate },
	              { "migrate refuses a changed file; applies a new one once",
	                test_migrate_refuses_changed_file },
	              { "two concurrent migrators", test_migrate_concurrent },
	              { "--help, --version, usage errors", test_cli_usage });
	EHR_ADD_SUITE("limits", lim_init, lim_clean, { "oversized headers", test_oversized_headers },
	              { "too many headers", test_too_many_headers },
	              { "oversized body", test_oversized_body },
	              { "slowloris: idle after handshake", test_slowloris_idle },
	              { "slowloris: no handshake", test_slowloris_no_handshake },
	              { "slowloris: trickling headers", test_slowloris_trickle },
	              { "connection limit", test_connection_limit },
	              { "blocking queue full: 503", test_blocking_queue_full });
}

EHR_TEST_MAIN(register_suites)
