/* test_gateway_unit.c - the config parser's errors and precedence; the router. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "gateway/gateway.h"
#include "gateway/http/http_internal.h"
#include "gateway/gateway_internal.h"
#include "records/records.h"
#include "tests/harness/harness.h"

/* ---------------------------------------------------------------- config */

static struct gw_config *fresh(void)
{
	struct gw_config *c = NULL;

	EHR_ASSERT_OK(gw_config_new(&c));
	return c;
}

#define ASSERT_MSG_HAS(s) CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), (s)))

static void test_defaults(void)
{
	struct gw_config *c = fresh();
	char nproc[16];

	EHR_ASSERT_OK(gw_config_set(c, "server", "state_dir", "/srv/ehr", "test"));
	EHR_ASSERT_OK(gw_config_finish(c));
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "server", "listen"), "127.0.0.1:8443");
	/* metrics on their own loopback listener; "" turns it off; a bad value is an error */
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "metrics", "listen"), "127.0.0.1:9464");
	EHR_ASSERT_OK(gw_config_set(c, "metrics", "listen", "", "test"));
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "metrics", "listen"), "");
	CU_ASSERT(gw_config_set(c, "metrics", "listen", "9464", "test") < 0);
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "tls", "cert"), "/srv/ehr/server.pem");
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "tls", "key"), "/srv/ehr/server.key");
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "tls", "client_ca"), "/srv/ehr/regca.pem");
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "store", "backend"), "fs");
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "database", "admin_url"),
	                       gw_config_get(c, "database", "url"));
	snprintf(nproc, sizeof(nproc), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "server", "workers"), nproc);
	CU_ASSERT_EQUAL(gw_config_get_uint(c, "server", "blocking_threads"), 32);
	CU_ASSERT_TRUE(gw_config_get_bool(c, "log", "access"));
	CU_ASSERT_PTR_NULL(gw_config_get(c, "server", "no_such_key"));
	CU_ASSERT_EQUAL(gw_config_get_uint(c, "nope", "nope"), 0);
	gw_config_free(c);
}

static void test_file_errors(void)
{
	static const struct {
		const char *text;
		const char *must_name;
	} bad[] = {
		{ "[server]\nbogus = 1\n", "[server] bogus" },
		{ "[nosection]\nkey = 1\n", "[nosection] key" },
		{ "[server]\nworkers = abc\n", "[server] workers" },
		{ "[server]\nworkers = 0\n", "[server] workers" },
		{ "[server]\nmax_connections = 99999999999999999999999\n", "[server] max_connections" },
		{ "[server]\nlisten = 127.0.0.1\n", "[server] listen" },
		{ "[server]\nlisten = 127.0.0.1:70000\n", "[server] listen" },
		{ "[server]\nlisten = :8443\n", "[server] listen" },
		{ "[server]\ntest_routes = maybe\n", "[server] test_routes" },
		{ "[server]\nstate_dir =\n", "[server] state_dir" },
		{ "[store]\nbackend = ftp\n", "[store] backend" },
		{ "[log]\nlevel = loud\n", "[log] level" },
		{ "[server]\nworkers = 2\nworkers = 3\n", "[server] workers" },
		{ "workers = 2\n", "workers" },
		{ "[server\nworkers = 2\n", "line 1" },
	};

	for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++) {
		struct gw_config *c = fresh();
		int rc = gw_config_load_string(c, bad[i].text, "test.ini");
		CU_ASSERT_EQUAL(rc, EHR_ERR_CONFIG);
		if (strstr(ehr_error_msg(), bad[i].must_name) == NULL)
			fprintf(stderr, "\n  case %zu: message '%s' does not name '%s'\n", i, ehr_error_msg(),
			        bad[i].must_name);
		ASSERT_MSG_HAS(bad[i].must_name);
		ASSERT_MSG_HAS("test.ini");
		gw_config_free(c);
	}
}

static void test_long_line(void)
{
	struct gw_config *c = fresh();
	char text[600];

	snprintf(text, sizeof(text), "[server]\nstate_dir = /%0400d\n", 0);
	CU_ASSERT_EQUAL(gw_config_load_string(c, text, "long.ini"), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("line 2");
	gw_config_free(c);
}

static void test_file_ok(void)
{
	struct gw_config *c = fresh();

	EHR_ASSERT_OK(gw_config_load_string(
	        c,
	        "; comment\n[server]\nlisten = [::1]:0\nworkers = auto\ntest_routes = yes\n"
	        "[tls]\ncert = /x/cert.pem ; inline comment\n[store]\nbackend = fs\n",
	        "ok.ini"));
	EHR_ASSERT_OK(gw_config_finish(c));
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "server", "listen"), "[::1]:0");
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "tls", "cert"), "/x/cert.pem");
	CU_ASSERT_TRUE(gw_config_get_bool(c, "server", "test_routes"));
	gw_config_free(c);
}

static void test_env(void)
{
	struct gw_config *c = fresh();
	char *env_ok[] = { "PATH=/bin",
		           "EHRGATE_SERVER_WORKERS=3",
		           "EHRGATE_TEST_PG=host=x",
		           "EHRGATE_BIN=/x",
		           "EHRGATE_CONFIG=/etc/x.ini",
		           "EHRGATE_DATABASE_POOL_SIZE=7",
		           NULL };
	char *env_unknown[] = { "EHRGATE_SERVER_NOPE=1", NULL };
	char *env_bad[] = { "EHRGATE_LOG_LEVEL=verbose", NULL };

	EHR_ASSERT_OK(gw_config_load_env(c, env_ok));
	CU_ASSERT_STRING_EQUAL(gw_config_get(c, "server", "workers"), "3");
	CU_ASSERT_EQUAL(gw_config_get_uint(c, "database", "pool_size"), 7);
	CU_ASSERT_EQUAL(gw_config_load_env(c, env_unknown), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("[server] nope");
	ASSERT_MSG_HAS("EHRGATE_SERVER_NOPE");
	CU_ASSERT_EQUAL(gw_config_load_env(c, env_bad), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("[log] level");
	ASSERT_MSG_HAS("EHRGATE_LOG_LEVEL");
	gw_config_free(c);
}

/* defaults < file < environment < --set */
static void test_precedence(void)
{
	struct gw_config *c = fresh();
	char *env[] = { "EHRGATE_SERVER_WORKERS=3", "EHRGATE_SERVER_MAX_HEADERS=20", NULL };

	EHR_ASSERT_OK(gw_config_load_string(
	        c, "[server]\nworkers = 2\nmax_headers = 10\nmax_body_bytes = 2048\n", "p.ini"));
	EHR_ASSERT_OK(gw_config_load_env(c, env));
	EHR_ASSERT_OK(gw_config_set_arg(c, "server.workers=4"));
	EHR_ASSERT_OK(gw_config_finish(c));
	CU_ASSERT_EQUAL(gw_config_get_uint(c, "server", "workers"), 4);
	CU_ASSERT_EQUAL(gw_config_get_uint(c, "server", "max_headers"), 20);
	CU_ASSERT_EQUAL(gw_config_get_uint(c, "server", "max_body_bytes"), 2048);
	CU_ASSERT_EQUAL(gw_config_get_uint(c, "server", "idle_timeout_s"), 60);
	gw_config_free(c);
}

static void test_set_arg_errors(void)
{
	struct gw_config *c = fresh();

	CU_ASSERT_EQUAL(gw_config_set_arg(c, "server.workers"), EHR_ERR_CONFIG);
	CU_ASSERT_EQUAL(gw_config_set_arg(c, "workers=2"), EHR_ERR_CONFIG);
	CU_ASSERT_EQUAL(gw_config_set_arg(c, ".workers=2"), EHR_ERR_CONFIG);
	CU_ASSERT_EQUAL(gw_config_set_arg(c, "bogus.key=1"), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("[bogus] key");
	ASSERT_MSG_HAS("--set");
	CU_ASSERT_EQUAL(gw_config_set_arg(c, "server.idle_timeout_s=-1"), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("[server] idle_timeout_s");
	gw_config_free(c);
}

static void test_secrets_not_echoed(void)
{
	struct gw_config *c = fresh();
	struct ehr_buf dump = EHR_BUF_INIT(1u << 16);

	CU_ASSERT_EQUAL(gw_config_set(c, "database", "url", "password=hunter2\x01", "test"), EHR_ERR_CONFIG);
	CU_ASSERT_PTR_NULL(strstr(ehr_error_msg(), "hunter2"));
	EHR_ASSERT_OK(gw_config_set(c, "database", "url", "dbname=x password=hunter2", "test"));
	EHR_ASSERT_OK(gw_config_set(c, "store", "s3_secret_key", "s3cr3t", "test"));
	EHR_ASSERT_OK(gw_config_finish(c));
	EHR_ASSERT_OK(gw_config_dump(c, &dump));
	CU_ASSERT_PTR_NULL(strstr(ehr_buf_cstr(&dump), "hunter2"));
	CU_ASSERT_PTR_NULL(strstr(ehr_buf_cstr(&dump), "s3cr3t"));
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&dump), "database.url = (set)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&dump), "server.listen = 127.0.0.1:8443"));
	ehr_buf_free(&dump);
	gw_config_free(c);
}

static void test_cross_checks(void)
{
	struct gw_config *c = fresh();

	EHR_ASSERT_OK(gw_config_set(c, "store", "backend", "s3", "test"));
	CU_ASSERT_EQUAL(gw_config_finish(c), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("s3_endpoint");
	gw_config_free(c);
	c = fresh();
	EHR_ASSERT_OK(gw_config_load_string(
	        c, "[store]\nbackend = s3\ns3_endpoint = http://127.0.0.1:9\ns3_bucket = b\n", "s3.ini"));
	EHR_ASSERT_OK(gw_config_finish(c));
	gw_config_free(c);
	/* no client CA: the engine would ask for no client certificate (as
	 * ehrwitness runs); the gateway refuses the empty path */
	c = fresh();
	CU_ASSERT_EQUAL(gw_config_load_string(c, "[tls]\nclient_ca =\n", "noca.ini"), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("[tls] client_ca");
	gw_config_free(c);
}

static void test_missing_file(void)
{
	struct gw_config *c = fresh();

	CU_ASSERT_EQUAL(gw_config_load_file(c, "/nonexistent/ehrgate.ini"), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("/nonexistent/ehrgate.ini");
	gw_config_free(c);
}

static void test_from_args(void)
{
	struct gw_config *c = NULL;
	char a0[] = "serve", a1[] = "--set", a2[] = "server.workers=5", a3[] = "--keep", a4[] = "-c";
	char *argv[] = { a0, a1, a2, a3, NULL };
	char *argv2[] = { a0, a4, NULL };
	int argc = 4, argc2 = 2;

	CU_ASSERT_EQUAL(gw_config_from_args(&c, &argc, argv), 0);
	CU_ASSERT_EQUAL(argc, 2);
	CU_ASSERT_STRING_EQUAL(argv[1], "--keep");
	CU_ASSERT_EQUAL(gw_config_get_uint(c, "server", "workers"), 5);
	gw_config_free(c);
	c = NULL;
	CU_ASSERT_EQUAL(gw_config_from_args(&c, &argc2, argv2), 2); /* -c without a file */
	CU_ASSERT_PTR_NULL(c);
}

/* [retention]: periods in days or years, per category; malformed values
 * are config errors (docs/ERASURE.md §6). */
static void test_retention(void)
{
	struct records_retention r;
	static const char *const bad_def[] = { "",     "d",     "-1d",  "1w",
		                               "201y", "73001", "1.5y", "99999999999999999999" };
	static const char *const bad_cats[] = { "lab",    "lab=",       "=3d",     "a b=1d",
		                                "lab=1x", "lab=1d,img", "lab=300y" };

	EHR_ASSERT_OK(gw_retention_parse(&r, "0", ""));
	CU_ASSERT_EQUAL(r.default_s, 0);
	CU_ASSERT_EQUAL(r.n, 0);
	EHR_ASSERT_OK(gw_retention_parse(&r, "30", " lab=10y , imaging=3650d,,legal=0 "));
	CU_ASSERT_EQUAL(r.default_s, 30LL * 86400);
	CU_ASSERT_EQUAL(r.n, 3);
	CU_ASSERT_EQUAL(records_retention_period(&r, "lab"), 10LL * 365 * 86400);
	CU_ASSERT_EQUAL(records_retention_period(&r, "imaging"), 3650LL * 86400);
	CU_ASSERT_EQUAL(records_retention_period(&r, "legal"), 0);
	CU_ASSERT_EQUAL(records_retention_period(&r, "other"), 30LL * 86400);
	CU_ASSERT_EQUAL(records_retention_period(&r, ""), 30LL * 86400);
	CU_ASSERT_EQUAL(records_retention_period(NULL, "lab"), 0);
	EHR_ASSERT_OK(gw_retention_parse(&r, "200y", NULL));
	for (size_t i = 0; i < EHR_ARRAY_LEN(bad_def); i++)
		EHR_ASSERT_ERR(gw_retention_parse(&r, bad_def[i], ""), EHR_ERR_CONFIG);
	for (size_t i = 0; i < EHR_ARRAY_LEN(bad_cats); i++)
		EHR_ASSERT_ERR(gw_retention_parse(&r, "0", bad_cats[i]), EHR_ERR_CONFIG);
	{
		char many[4096] = "";
		size_t len = 0;
		for (int i = 0; i <= RECORDS_RETENTION_MAX; i++)
			len += (size_t)snprintf(many + len, sizeof(many) - len, "c%d=1d,", i);
		EHR_ASSERT_ERR(gw_retention_parse(&r, "0", many), EHR_ERR_CONFIG);
	}
	/* The legal-basis and hold-reason codes are closed lists. */
	CU_ASSERT(records_erase_basis_ok("gdpr-17-1-a") && records_erase_basis_ok("court-order"));
	CU_ASSERT(!records_erase_basis_ok("gdpr-17-1-g") && !records_erase_basis_ok("") &&
	          !records_erase_basis_ok(NULL) && !records_erase_basis_ok("GDPR-17-1-A"));
	CU_ASSERT(records_hold_reason_ok("litigation") && !records_hold_reason_ok("whim"));
}

/* docs/OPERATIONS.md documents every key with its environment variable. */
static void test_docs_cover_keys(void)
{
	struct ehr_buf doc = EHR_BUF_INIT(1u << 20);
	const char *section, *key, *def;

	EHR_ASSERT_OK(ehr_file_read(&doc, EHRGATE_SOURCE_DIR "/docs/OPERATIONS.md", doc.max));
	for (size_t i = 0; gw_config_key_at(i, &section, &key, &def); i++) {
		char row[160], env[160];
		size_t n;
		snprintf(row, sizeof(row), "| `%s.%s` |", section, key);
		n = (size_t)snprintf(env, sizeof(env), "`EHRGATE_%s_%s`", section, key);
		for (size_t j = 0; j < n; j++)
			if (env[j] >= 'a' && env[j] <= 'z')
				env[j] = (char)(env[j] - 'a' + 'A');
		if (!strstr(ehr_buf_cstr(&doc), row) || !strstr(ehr_buf_cstr(&doc), env))
			fprintf(stderr, "\n  docs/OPERATIONS.md lacks %s or %s\n", row, env);
		CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&doc), row));
		CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&doc), env));
	}
	ehr_buf_free(&doc);
}

/* ---------------------------------------------------------------- router */

static void h(struct gw_req *r)
{
	(void)r;
}

static const struct gw_route table_a[] = {
	{ "GET", "/", "root", 0, false, h, NULL },
	{ "GET", "/a", "a", 0, false, h, NULL },
	{ "GET", "/a/{id}", "a.get", 0, false, h, NULL },
	{ "POST", "/a/{id}", "a.post", 0, true, h, NULL },
	{ "GET", "/a/{id}/b/{x}", "a.b", 0, false, h, NULL },
};
static const struct gw_route table_b[] = {
	{ "DELETE", "/a/{id}", "a.delete", GW_ROLE_SERVER, true, h, NULL },
	{ "GET", "/a/special", "a.special", 0, false, h, NULL },
};

static struct gw_router *router(void)
{
	const struct gw_route *t[] = { table_a, table_b };
	size_t l[] = { EHR_ARRAY_LEN(table_a), EHR_ARRAY_LEN(table_b) };
	struct gw_router *rt = NULL;

	EHR_ASSERT_OK(gw_router_new(&rt, t, l, 2));
	return rt;
}

static void test_router_match(void)
{
	struct gw_router *rt = router();
	struct gw_match m;
	char allow[64];

	CU_ASSERT_EQUAL(gw_router_count(rt), 7);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/", &m, allow, sizeof(allow)), GW_ROUTE_FOUND);
	CU_ASSERT_STRING_EQUAL(m.route->name, "root");
	gw_match_clear(&m);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/a/x1", &m, allow, sizeof(allow)), GW_ROUTE_FOUND);
	CU_ASSERT_STRING_EQUAL(m.route->name, "a.get");
	CU_ASSERT_EQUAL(m.nparams, 1);
	CU_ASSERT_STRING_EQUAL(m.params[0].value, "x1");
	CU_ASSERT_EQUAL(m.params[0].name_len, 2);
	CU_ASSERT_EQUAL(strncmp(m.params[0].name, "id", 2), 0);
	gw_match_clear(&m);
	CU_ASSERT_EQUAL(gw_router_match(rt, "POST", "/a/x1", &m, allow, sizeof(allow)), GW_ROUTE_FOUND);
	CU_ASSERT_STRING_EQUAL(m.route->name, "a.post");
	gw_match_clear(&m);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/a/%41%62/b/c%20d", &m, allow, sizeof(allow)),
	                GW_ROUTE_FOUND);
	CU_ASSERT_STRING_EQUAL(m.route->name, "a.b");
	CU_ASSERT_STRING_EQUAL(m.params[0].value, "Ab");
	CU_ASSERT_STRING_EQUAL(m.params[1].value, "c d");
	gw_match_clear(&m);
	/* first matching route wins: the parameter route precedes the literal one */
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/a/special", &m, allow, sizeof(allow)), GW_ROUTE_FOUND);
	CU_ASSERT_STRING_EQUAL(m.route->name, "a.get");
	gw_match_clear(&m);
	gw_router_free(rt);
}

static void test_router_misses(void)
{
	struct gw_router *rt = router();
	struct gw_match m;
	char allow[64];
	char deep[200] = "";

	CU_ASSERT_EQUAL(gw_router_match(rt, "PUT", "/a/x1", &m, allow, sizeof(allow)), GW_ROUTE_BAD_METHOD);
	CU_ASSERT_STRING_EQUAL(allow, "GET, POST, DELETE");
	CU_ASSERT_EQUAL(gw_router_match(rt, "POST", "/a", &m, allow, sizeof(allow)), GW_ROUTE_BAD_METHOD);
	CU_ASSERT_STRING_EQUAL(allow, "GET");
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/a/x/y", &m, allow, sizeof(allow)), GW_ROUTE_NOT_FOUND);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/a/", &m, allow, sizeof(allow)), GW_ROUTE_NOT_FOUND);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "//a", &m, allow, sizeof(allow)), GW_ROUTE_NOT_FOUND);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/b", &m, allow, sizeof(allow)), GW_ROUTE_NOT_FOUND);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "a", &m, allow, sizeof(allow)), GW_ROUTE_BAD_PATH);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "", &m, allow, sizeof(allow)), GW_ROUTE_BAD_PATH);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/a/x%2Fy", &m, allow, sizeof(allow)), GW_ROUTE_BAD_PATH);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/a/x%00", &m, allow, sizeof(allow)), GW_ROUTE_BAD_PATH);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/a/x%G1", &m, allow, sizeof(allow)), GW_ROUTE_BAD_PATH);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/a/x%4", &m, allow, sizeof(allow)), GW_ROUTE_BAD_PATH);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/a/%", &m, allow, sizeof(allow)), GW_ROUTE_BAD_PATH);
	for (int i = 0; i < 40; i++)
		memcpy(deep + 2 * i, "/a", 3); /* 40 segments: past the router's 16 */
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", deep, &m, allow, sizeof(allow)), GW_ROUTE_NOT_FOUND);
	gw_router_free(rt);
}

/* A pattern ending in '/' (a directory's index, "/console/") is its own
 * route: the path with the slash matches it, the path without does not. */
static void test_router_trailing_slash(void)
{
	static const struct gw_route dir[] = { { "GET", "/d", "d", 0, false, h, NULL },
		                               { "GET", "/d/", "d.index", 0, false, h, NULL },
		                               { "GET", "/d/{id}", "d.file", 0, false, h, NULL } };
	static const struct gw_route two_empty[] = { { "GET", "/d//", "x", 0, false, h, NULL } };
	const struct gw_route *t[] = { dir }, *bad[] = { two_empty };
	size_t l[] = { EHR_ARRAY_LEN(dir) }, lb[] = { 1 };
	struct gw_router *rt = NULL;
	struct gw_match m;
	char allow[64];

	EHR_ASSERT_OK(gw_router_new(&rt, t, l, 1));
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/d", &m, allow, sizeof(allow)), GW_ROUTE_FOUND);
	CU_ASSERT_STRING_EQUAL(m.route->name, "d");
	gw_match_clear(&m);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/d/", &m, allow, sizeof(allow)), GW_ROUTE_FOUND);
	CU_ASSERT_STRING_EQUAL(m.route->name, "d.index");
	gw_match_clear(&m);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/d/app.js", &m, allow, sizeof(allow)), GW_ROUTE_FOUND);
	CU_ASSERT_STRING_EQUAL(m.route->name, "d.file");
	gw_match_clear(&m);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/d//", &m, allow, sizeof(allow)), GW_ROUTE_NOT_FOUND);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/d/app.js/", &m, allow, sizeof(allow)),
	                GW_ROUTE_NOT_FOUND);
	gw_router_free(rt);
	rt = NULL;
	EHR_ASSERT_ERR(gw_router_new(&rt, bad, lb, 1), EHR_ERR_INVAL);
	CU_ASSERT_PTR_NULL(rt);
}

static void test_router_bad_tables(void)
{
	static const struct gw_route dup[] = { { "GET", "/x", "x1", 0, false, h, NULL },
		                               { "GET", "/x", "x2", 0, false, h, NULL } };
	static const struct gw_route rel[] = { { "GET", "x", "x", 0, false, h, NULL } };
	static const struct gw_route open_brace[] = { { "GET", "/x/{id", "x", 0, false, h, NULL } };
	static const struct gw_route empty_param[] = { { "GET", "/x/{}", "x", 0, false, h, NULL } };
	static const struct gw_route empty_seg[] = { { "GET", "/x//y", "x", 0, false, h, NULL } };
	static const struct gw_route no_fn[] = { { "GET", "/x", "x", 0, false, NULL, NULL } };
	const struct gw_route *cases[] = { dup, rel, open_brace, empty_param, empty_seg, no_fn };
	size_t lens[] = { 2, 1, 1, 1, 1, 1 };
	int want[] = { EHR_ERR_CONFLICT, EHR_ERR_INVAL, EHR_ERR_INVAL,
		       EHR_ERR_INVAL,    EHR_ERR_INVAL, EHR_ERR_INVAL };

	for (size_t i = 0; i < EHR_ARRAY_LEN(cases); i++) {
		struct gw_router *rt = NULL;
		EHR_ASSERT_ERR(gw_router_new(&rt, &cases[i], &lens[i], 1), want[i]);
		CU_ASSERT_PTR_NULL(rt);
	}
}

/* The real route tables of every area compile into one router. */
static void test_real_tables(void)
{
	const struct gw_route *t[GW_ROUTE_TABLES];
	size_t l[GW_ROUTE_TABLES];
	struct gw_router *rt = NULL;

	gw_route_tables(t, l); /* the one list serve and `ehrgate routes` read, test table included */
	EHR_ASSERT_OK(gw_router_new(&rt, t, l, GW_ROUTE_TABLES));
	/* every {parameter} of every real route has an id validator */
	EHR_ASSERT_OK(gw_router_check_params(rt, gw_id_check));
	EHR_ASSERT_ERR(gw_router_check_params(rt, NULL), EHR_ERR_CONFIG);
	gw_router_free(rt);
}

/* "{+name}": the rest of the path, one or more segments, each decoded
 * (no encoded '/'), joined by '/'; the first matching route wins. */
static void test_router_rest(void)
{
	static const struct gw_route t[] = {
		{ "GET", "/t/entries/{+bundle}", "t.entries", 0, false, h, NULL },
		{ "GET", "/t/{+tile}", "t.tile", 0, false, h, NULL },
	};
	static const struct gw_route not_last[] = { { "GET", "/x/{+r}/y", "x", 0, false, h, NULL } };
	static const struct gw_route empty[] = { { "GET", "/x/{+}", "x", 0, false, h, NULL } };
	const struct gw_route *tt[] = { t };
	size_t l = EHR_ARRAY_LEN(t), one = 1;
	struct gw_router *rt = NULL;
	struct gw_match m;

	EHR_ASSERT_OK(gw_router_new(&rt, tt, &l, 1));
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/t/0/x001/234.p/5", &m, NULL, 0), GW_ROUTE_FOUND);
	CU_ASSERT_STRING_EQUAL(m.route->name, "t.tile");
	CU_ASSERT_STRING_EQUAL(m.params[0].value, "0/x001/234.p/5");
	CU_ASSERT_EQUAL(m.params[0].name_len, 4);
	gw_match_clear(&m);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/t/entries/000", &m, NULL, 0), GW_ROUTE_FOUND);
	CU_ASSERT_STRING_EQUAL(m.route->name, "t.entries");
	CU_ASSERT_STRING_EQUAL(m.params[0].value, "000");
	gw_match_clear(&m);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/t/a%20b/c", &m, NULL, 0), GW_ROUTE_FOUND);
	CU_ASSERT_STRING_EQUAL(m.params[0].value, "a b/c");
	gw_match_clear(&m);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/t", &m, NULL, 0), GW_ROUTE_NOT_FOUND);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/t/", &m, NULL, 0), GW_ROUTE_NOT_FOUND);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/t/0//1", &m, NULL, 0), GW_ROUTE_NOT_FOUND);
	CU_ASSERT_EQUAL(gw_router_match(rt, "GET", "/t/0/x%2F1", &m, NULL, 0), GW_ROUTE_BAD_PATH);
	gw_router_free(rt);
	rt = NULL;
	tt[0] = not_last;
	EHR_ASSERT_ERR(gw_router_new(&rt, tt, &one, 1), EHR_ERR_INVAL);
	tt[0] = empty;
	EHR_ASSERT_ERR(gw_router_new(&rt, tt, &one, 1), EHR_ERR_INVAL);
}

static int knows_nothing(const char *name, const char *value, bool path)
{
	(void)name;
	(void)value;
	return path ? EHR_ERR_INVAL : 0;
}

/* The one id validator: the documented formats, nothing else. */
static void test_id_validator(void)
{
	static const char pt[] = "pt-0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
	static const char cid[] = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
	static const char rid[] = "0123456789abcdef0123456789abcdef";
	static const struct {
		const char *name, *value;
		bool path, ok;
	} cases[] = {
		{ "pid", pt, true, true },
		{ "pid", "..", true, false },
		{ "pid", ".", true, false },
		{ "pid", rid, true, false },
		{ "pid", "pt-short", true, false },
		{ "pid", "pt-0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I=", true, false },
		{ "rid", rid, true, true },
		{ "rid", "0123456789ABCDEF0123456789ABCDEF", true, false },
		{ "rid", "0123456789abcdef", true, false },
		{ "rid", "..", true, false },
		{ "cid", cid, true, true },
		{ "cid", "../../etc", true, false },
		{ "patient", pt, false, true },
		{ "patient", "x", false, false },
		{ "actor", "srv-0123456789abcdef0123456789abcdef", false, true },
		{ "actor", "aud-0123456789abcdef0123456789abcdef", false, true },
		{ "actor", "operator", false, true },
		{ "actor", "anonymous", false, true },
		{ "actor", pt, false, true },
		{ "actor", "..", false, false },
		{ "actor", "srv-xyz", false, false },
		{ "subject", "4a0b9c", false, true },
		{ "subject", cid, false, true },
		{ "subject", "", false, false },
		{ "tile", "0/x001/x234/067.p/5", true, true },
		{ "tile", "63/000", true, true },
		{ "tile", "0/x000/001", true, false },
		{ "tile", "entries/000", true, false },
		{ "tile", "64/000", true, false },
		{ "bundle", "x070/000.p/255", true, true },
		{ "bundle", "000.p/256", true, false },
		{ "index", "0", true, true },
		{ "index", "01", true, false },
		{ "limit", "anything: not an id", false, true },
		{ "nosuch", "x", true, false },
		{ "asset", "app-0123456789ab.js", true, true },
		{ "asset", "index.html", true, true },
		{ "asset", ".env", true, false },
		{ "asset", "..", true, false },
		{ "asset", "-x.js", true, false },
		{ "asset", "Index.html", true, false },
		{ "asset", "a/b", true, false },
		{ "asset", "a\\b", true, false },
		{ "asset", "", true, false },
		{ "asset", "0123456789012345678901234567890123456789012345678901234567890123x", true, false },
	};
	struct gw_router *rt = NULL;
	static const struct gw_route one[] = { { "GET", "/x/{pid}", "x", 0, false, h, NULL } };
	const struct gw_route *t[] = { one };
	size_t l[] = { 1 };

	for (size_t i = 0; i < EHR_ARRAY_LEN(cases); i++) {
		int rc = gw_id_check(cases[i].name, cases[i].value, cases[i].path);
		if ((rc == 0) != cases[i].ok)
			fprintf(stderr, "\n  %s=%s: %d\n", cases[i].name, cases[i].value, rc);
		CU_ASSERT_EQUAL(rc == 0, cases[i].ok);
	}
	/* value NULL: does the validator know the name? */
	CU_ASSERT_EQUAL(gw_id_check("pid", NULL, true), 0);
	CU_ASSERT(gw_id_check("id", NULL, true) < 0);
	EHR_ASSERT_OK(gw_router_new(&rt, t, l, 1));
	EHR_ASSERT_ERR(gw_router_check_params(rt, knows_nothing), EHR_ERR_CONFIG);
	gw_router_free(rt);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("config", NULL, NULL, { "defaults and derived paths", test_defaults },
	              { "file errors name the key", test_file_errors }, { "over-long line", test_long_line },
	              { "valid file", test_file_ok }, { "environment", test_env },
	              { "precedence: default < file < env < --set", test_precedence },
	              { "--set errors", test_set_arg_errors },
	              { "secrets never echoed", test_secrets_not_echoed },
	              { "cross-key checks", test_cross_checks }, { "missing file", test_missing_file },
	              { "command-line options", test_from_args },
	              { "docs/OPERATIONS.md covers every key", test_docs_cover_keys },
	              { "[retention] periods", test_retention });
	EHR_ADD_SUITE("router", NULL, NULL, { "matches and parameters", test_router_match },
	              { "misses: 404, 405 with Allow, bad paths", test_router_misses },
	              { "invalid tables refused", test_router_bad_tables },
	              { "a pattern ending in a slash", test_router_trailing_slash },
	              { "{+rest} parameters", test_router_rest }, { "real route tables", test_real_tables },
	              { "one id validator", test_id_validator });
}

EHR_TEST_MAIN(register_suites)
