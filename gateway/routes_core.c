/*
 * routes_core.c - the gateway's own routes: liveness, readiness,
 * and (only with [server] test_routes = true) test helpers.
 */
#include "common/db.h"
#include "common/metrics.h"
#include "gateway/gateway_internal.h"
#include "cloud/cloud.h"
#include "publish/publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

static void route_healthz(struct gw_req *r)
{
	static const char ok[] = "{\"status\":\"ok\"}";

	gw_reply_bytes(r, 200, "application/json", ok, sizeof(ok) - 1);
}

/* The publication detail of /readyz: quorum state, sizes, each witness.
 * Below quorum publication pauses but the gateway still serves (appends
 * never wait for witnesses), so it is detail, not a 503. */
static json_t *publication_detail(struct publisher *p, const char **state)
{
	struct publish_status st;
	json_t *ws = json_array();

	publish_status(p, &st);
	*state = !st.active ? "standby" : st.quorum_ok ? "ok" : "paused";
	for (unsigned i = 0; i < st.n && ws; i++)
		json_array_append_new(ws, json_pack("{s:s, s:I, s:I, s:i, s:b}", "name", st.w[i].name,
		                                    "cosigned_size", (json_int_t)st.w[i].cosigned_size,
		                                    "cosigned_ms", (json_int_t)st.w[i].cosigned_ms,
		                                    "last_status", st.w[i].last_status, "ok", st.w[i].ok));
	return json_pack("{s:s, s:i, s:i, s:i, s:I, s:I, s:I, s:o}", "state", *state, "quorum",
	                 (int)st.quorum, "witnesses", (int)st.n, "cosigners", (int)st.cosigners,
	                 "published_size", (json_int_t)st.published_size, "head_size",
	                 (json_int_t)st.head_size, "lag_ms", (json_int_t)st.lag_ms, "witness",
	                 ws ? ws : json_array());
}

/* Ready when every configured dependency answers. Runs on the blocking
 * pool: the database ping may wait up to the pool's acquire timeout. */
static void route_readyz(struct gw_req *r)
{
	struct gw_app *app = gw_req_app(r);
	json_t *checks = json_object();
	json_t *publication = NULL;
	struct ehr_buf down = EHR_BUF_INIT(256);

	if (gw_app_db(app)) {
		bool ok = ehr_db_ping(gw_app_db(app)) == 0;
		json_object_set_new(checks, "database", json_string(ok ? "ok" : "down"));
		if (!ok)
			ehr_buf_printf(&down, "%sdatabase", down.len ? ", " : "");
	}
	if (gw_app_store(app)) {
		/* ---- storage: a cheap reachability check of the object store goes here,
		 * setting checks.store to "ok"/"down" and appending "store" to `down`. */
		bool ok = obj_store_ping(gw_app_store(app)) == 0;
		json_object_set_new(checks, "store", json_string(ok ? "ok" : "down"));
		if (!ok)
			ehr_buf_printf(&down, "%sstore", down.len ? ", " : "");
	}
	if (gw_app_publisher(app)) {
		const char *state;
		json_t *detail = publication_detail(gw_app_publisher(app), &state);
		json_object_set_new(checks, "publication", json_string(state));
		if (detail)
			publication = detail;
	}
	if (down.len) {
		json_t *body = json_pack("{s:{s:s, s:s+}, s:o}", "error", "code", "unavailable", "message",
		                         "not ready: ", ehr_buf_cstr(&down), "checks", checks);
		if (body && publication)
			json_object_set_new(body, "publication", publication);
		else
			json_decref(publication);
		gw_reply_header(r, "Retry-After", "1");
		gw_reply_json(r, 503, body);
	} else {
		json_t *body = json_pack("{s:s, s:o}", "status", "ready", "checks", checks);
		if (body && publication)
			json_object_set_new(body, "publication", publication);
		else
			json_decref(publication);
		gw_reply_json(r, 200, body);
	}
	ehr_buf_free(&down);
}

const struct gw_route gw_routes_core[] = {
	{ "GET", "/healthz", "healthz", 0, 0, route_healthz, NULL },
	{ "GET", "/readyz", "readyz", 0, GW_BLOCKING, route_readyz, NULL },
	/* /metrics is not here: it has its own listener ([metrics] listen) */
};
const size_t gw_routes_core_len = EHR_ARRAY_LEN(gw_routes_core);

/* GET /v1/test/sleep?ms=N: sleeps on the blocking pool (N <= 60000), for
 * drain tests. */
static void route_test_sleep(struct gw_req *r)
{
	const char *ms = gw_req_query(r, "ms");
	uint64_t n = 0;
	struct timespec ts;

	if (ms && ehr_parse_u64(&n, ms, 60000) < 0) {
		gw_reply_error(r, 400, "bad_request", "ms must be an integer in 0..60000");
		return;
	}
	ts.tv_sec = (time_t)(n / 1000);
	ts.tv_nsec = (long)(n % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0)
		;
	gw_reply_json(r, 200, json_pack("{s:s, s:I}", "status", "ok", "slept_ms", (json_int_t)n));
}

/* POST /v1/test/echo: echoes the body length, for body-limit tests. */
static void route_test_echo(struct gw_req *r)
{
	size_t n;

	gw_req_body(r, &n);
	gw_reply_json(r, 200, json_pack("{s:I}", "bytes", (json_int_t)n));
}

/* GET /v1/test/fail?kind=internal|unavailable: fails through the one error
 * table, with a log detail the client must never see (a failed ENSURE, or
 * a library's text), for the error-reply tests. */
static int test_fail_internal(int v)
{
	ENSURE(v == 42, EHR_ERR_INTERNAL);
	return 0;
}

static void route_test_fail(struct gw_req *r)
{
	const char *kind = gw_req_query(r, "kind");

	if (kind && strcmp(kind, "unavailable") == 0)
		gw_reply_err(r, ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "database connection failed",
		                                     "libpq: could not connect to server-internal-7"));
	else
		gw_reply_err(r, test_fail_internal(7));
}

/* GET /v1/test/items/{item}/parts/{part}: echoes the decoded parameters. */
static void route_test_params(struct gw_req *r)
{
	gw_reply_json(r, 200,
	              json_pack("{s:s, s:s, s:s}", "id", gw_req_param(r, "item"), "part",
	                        gw_req_param(r, "part"), "path", gw_req_path(r)));
}

/* POST /v1/test/stream-echo[?stop_at=N]: reads the body as it streams
 * (GW_STREAM_BODY) and answers its length and SHA-256; with stop_at, replies
 * after N bytes without reading the rest. For the streaming-layer tests. */
static void route_test_stream_echo(struct gw_req *r)
{
	const char *stop = gw_req_query(r, "stop_at");
	uint64_t stop_at = UINT64_MAX, total = 0;
	uint8_t buf[65536], md[32];
	char hex[65];
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	int err = 0;

	if (h == NULL || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(h);
		gw_reply_error(r, 500, "internal_error", "no digest");
		return;
	}
	if (stop && ehr_parse_u64(&stop_at, stop, UINT64_MAX) < 0) {
		EVP_MD_CTX_free(h);
		gw_reply_error(r, 400, "bad_request", "stop_at must be an integer");
		return;
	}
	while (total < stop_at) {
		size_t got = 0, want = sizeof(buf);
		if (stop_at - total < want)
			want = (size_t)(stop_at - total);
		if ((err = gw_req_body_read(r, buf, want, &got)) < 0 || got == 0)
			break;
		EVP_DigestUpdate(h, buf, got);
		total += got;
	}
	EVP_DigestFinal_ex(h, md, NULL);
	EVP_MD_CTX_free(h);
	if (err < 0) {
		gw_reply_err(r, err);
		return;
	}
	ehr_hex_encode_fixed(hex, sizeof(hex), md, sizeof(md));
	gw_reply_json(r, 200, json_pack("{s:I, s:s}", "bytes", (json_int_t)total, "sha256", hex));
}

/* GET /v1/test/stream-out?bytes=N[&chunked=1][&abort_at=K]: streams N bytes
 * (byte i is i % 251) with gw_reply_start/write/end, with Content-Length or
 * chunked; abort_at ends the reply with gw_reply_end(r, false) after K. */
static void route_test_stream_out(struct gw_req *r)
{
	const char *n = gw_req_query(r, "bytes"), *ch = gw_req_query(r, "chunked");
	const char *ab = gw_req_query(r, "abort_at");
	uint64_t bytes = 0, abort_at = UINT64_MAX, off = 0;
	uint8_t buf[65536];
	bool chunked = ch && strcmp(ch, "1") == 0;
	int err = 0;

	if (n == NULL || ehr_parse_u64(&bytes, n, 1ull << 34) < 0 ||
	    (ab && ehr_parse_u64(&abort_at, ab, UINT64_MAX) < 0)) {
		gw_reply_error(r, 400, "bad_request", "bytes (and abort_at) must be integers");
		return;
	}
	gw_reply_start(r, 200, "application/octet-stream", chunked ? -1 : (int64_t)bytes);
	while (off < bytes && off < abort_at && err == 0) {
		size_t len = sizeof(buf);
		if (bytes - off < len)
			len = (size_t)(bytes - off);
		if (abort_at - off < len)
			len = (size_t)(abort_at - off);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)((off + i) % 251);
		err = gw_reply_write(r, buf, len);
		off += len;
	}
	gw_reply_end(r, err == 0 && off == bytes);
}

const struct gw_route gw_routes_test[] = {
	{ "POST", "/v1/test/stream-echo", "test.stream_echo", 0, GW_STREAM_BODY, route_test_stream_echo,
	  "stop_at" },
	{ "GET", "/v1/test/stream-out", "test.stream_out", 0, GW_BLOCKING, route_test_stream_out,
	  "bytes chunked abort_at" },
	{ "GET", "/v1/test/sleep", "test.sleep", 0, GW_BLOCKING, route_test_sleep, "ms" },
	{ "GET", "/v1/test/fail", "test.fail", 0, GW_BLOCKING, route_test_fail, "kind" },
	{ "POST", "/v1/test/echo", "test.echo", 0, 0, route_test_echo, NULL },
	/* "x" and "token": the log tests send them and check they are never logged */
	{ "GET", "/v1/test/items/{item}/parts/{part}", "test.params", 0, 0, route_test_params, "x token" },
};
const size_t gw_routes_test_len = EHR_ARRAY_LEN(gw_routes_test);
