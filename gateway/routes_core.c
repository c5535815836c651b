/*
 * routes_core.c - the gateway's own routes: liveness, readiness, metrics,
 * and (only with [server] test_routes = true) test helpers.
 */
#include "gateway/gw_internal.h"
#include "cloud/cloud.h"

#include <stdlib.h>
#include <time.h>

static void route_healthz(struct gw_req *r)
{
	static const char ok[] = "{\"status\":\"ok\"}";

	gw_reply_bytes(r, 200, "application/json", ok, sizeof(ok) - 1);
}

/* Ready when every configured dependency answers. Runs on the blocking
 * pool: the database ping may wait up to the pool's acquire timeout. */
static void route_readyz(struct gw_req *r)
{
	struct gw_app *app = gw_req_app(r);
	json_t *checks = json_object();
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
	if (down.len) {
		json_t *body = json_pack("{s:{s:s, s:s+}, s:o}", "error", "code", "unavailable", "message",
		                         "not ready: ", ehr_buf_cstr(&down), "checks", checks);
		gw_reply_header(r, "Retry-After", "1");
		gw_reply_json(r, 503, body);
	} else {
		gw_reply_json(r, 200, json_pack("{s:s, s:o}", "status", "ready", "checks", checks));
	}
	ehr_buf_free(&down);
}

static void route_metrics(struct gw_req *r)
{
	struct ehr_buf b = EHR_BUF_INIT(16u << 20);

	if (gw_metrics_render(r->srv, &b) < 0) {
		ehr_buf_free(&b);
		gw_reply_err(r, EHR_ERR_INTERNAL);
		return;
	}
	gw_reply_bytes(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
	ehr_buf_free(&b);
}

const struct gw_route gw_routes_core[] = {
	{ "GET", "/healthz", "healthz", 0, 0, route_healthz },
	{ "GET", "/readyz", "readyz", 0, GW_BLOCKING, route_readyz },
	{ "GET", "/metrics", "metrics", 0, 0, route_metrics },
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

/* GET /v1/test/items/{id}/parts/{part}: echoes the decoded parameters. */
static void route_test_params(struct gw_req *r)
{
	gw_reply_json(r, 200,
	              json_pack("{s:s, s:s, s:s}", "id", gw_req_param(r, "id"), "part",
	                        gw_req_param(r, "part"), "path", gw_req_path(r)));
}

const struct gw_route gw_routes_test[] = {
	{ "GET", "/v1/test/sleep", "test.sleep", 0, GW_BLOCKING, route_test_sleep },
	{ "POST", "/v1/test/echo", "test.echo", 0, 0, route_test_echo },
	{ "GET", "/v1/test/items/{id}/parts/{part}", "test.params", 0, 0, route_test_params },
};
const size_t gw_routes_test_len = EHR_ARRAY_LEN(gw_routes_test);
