/*
 * serve.c - the application on the engine: the route tables, limits and
 * TLS files of [server], [tls] and [log] become gw_http_options, with
 * gw_gate authenticating and the app as every handler's userdata.
 */
#include "gateway/gateway_internal.h"

size_t gw_route_tables(const struct gw_route *tables[GW_ROUTE_TABLES], size_t lens[GW_ROUTE_TABLES])
{
	const struct gw_route *const t[GW_ROUTE_TABLES] = { gw_routes_core,    gw_routes_auth,
		                                            gw_routes_ehr,     gw_routes_audit,
		                                            gw_routes_fhir,    gw_routes_tiles,
		                                            gw_routes_console, gw_routes_test };
	const size_t n[GW_ROUTE_TABLES] = { gw_routes_core_len,    gw_routes_auth_len, gw_routes_ehr_len,
		                            gw_routes_audit_len,   gw_routes_fhir_len, gw_routes_tiles_len,
		                            gw_routes_console_len, gw_routes_test_len };

	for (size_t i = 0; i < GW_ROUTE_TABLES; i++) {
		tables[i] = t[i];
		lens[i] = n[i];
	}
	return GW_ROUTE_TABLES - 1; /* all but gw_routes_test */
}

int gw_serve(const struct gw_config *cfg, struct gw_app *app)
{
	const struct gw_route *tables[GW_ROUTE_TABLES];
	size_t lens[GW_ROUTE_TABLES];
	size_t production = gw_route_tables(tables, lens);
	struct gw_http_options o = {
		.listen = gw_config_get(cfg, "server", "listen"),
		.public_url = gw_config_get(cfg, "server", "public_url"),
		.tls_cert = gw_config_get(cfg, "tls", "cert"),
		.tls_key = gw_config_get(cfg, "tls", "key"),
		.tls_client_ca = gw_config_get(cfg, "tls", "client_ca"),
		.workers = (unsigned)gw_config_get_uint(cfg, "server", "workers"),
		.blocking_threads = (unsigned)gw_config_get_uint(cfg, "server", "blocking_threads"),
		.blocking_queue = gw_config_get_uint(cfg, "server", "blocking_queue"),
		.max_headers = (unsigned)gw_config_get_uint(cfg, "server", "max_headers"),
		.max_header_bytes = gw_config_get_uint(cfg, "server", "max_header_bytes"),
		.max_body_bytes = gw_config_get_uint(cfg, "server", "max_body_bytes"),
		.max_connections = (long)gw_config_get_uint(cfg, "server", "max_connections"),
		.idle_timeout_s = (unsigned)gw_config_get_uint(cfg, "server", "idle_timeout_s"),
		.read_timeout_s = (unsigned)gw_config_get_uint(cfg, "server", "read_timeout_s"),
		.drain_timeout_s = (unsigned)gw_config_get_uint(cfg, "server", "drain_timeout_s"),
		.access_log = gw_config_get_bool(cfg, "log", "access"),
		.metrics_listen = gw_config_get(cfg, "metrics", "listen"),
		.tables = tables,
		.table_lens = lens,
		/* the test routes are mounted only with [server] test_routes = true */
		.ntables = gw_config_get_bool(cfg, "server", "test_routes") ? GW_ROUTE_TABLES : production,
		.gate = gw_gate,
		.param_check = gw_id_check,
		.error_render = gw_fhir_error_render,
		.app = app,
	};

	GUARD(gw_policy_metrics_register());
	return gw_server_run(&o);
}
