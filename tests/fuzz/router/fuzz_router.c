/* fuzz_router.c - route matching on untrusted request targets: the first
 * line of the input is the method, the rest the raw target. Matching the
 * path (before '?') must return one of its four results, never crash, and
 * every decoded parameter must be free of '/' and NUL and go through the id
 * validator; the query (after '?') is parsed as gateway/http/query.c does:
 * at most GW_MAX_QUERY named parameters, each found again by name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/http_internal.h"
#include "gateway/gateway_internal.h"

static struct gw_router *rt;

static void nop(struct gw_req *r)
{
	(void)r;
}

static const struct gw_route extra[] = {
	{ "GET", "/", "root", 0, false, nop, NULL },
	{ "GET", "/v1/a/{x}/b/{y}/c/{z}", "abc", 0, false, nop, NULL },
	{ "PUT", "/v1/patients/{pid}/records/{rid}", "rec", GW_ROLE_SERVER, true, nop, NULL },
};

static void check_query(const char *raw)
{
	struct gw_req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return;
	r->raw_query = raw;
	if (gw__query_parse(r) == 0) {
		if (r->nquery > GW_MAX_QUERY)
			abort();
		for (size_t i = 0; i < r->nquery; i++) {
			const char *first = gw_req_query(r, r->query[i].name);
			if (r->query[i].name[0] == '\0' || first == NULL)
				abort();
			(void)gw_id_check(r->query[i].name, r->query[i].value, false);
		}
	} else if (r->query_msg[0] == '\0') {
		abort(); /* a refusal always says why */
	}
	gw__query_free(r);
	free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *nl, *q, allow[128];
	struct gw_match m;
	enum gw_route_result res;

	if (rt == NULL) {
		const struct gw_route *t[GW_ROUTE_TABLES + 1];
		size_t l[GW_ROUTE_TABLES + 1];

		/* every real table (gw_route_tables, the test table included), then extra */
		gw_route_tables(t, l);
		t[GW_ROUTE_TABLES] = extra;
		l[GW_ROUTE_TABLES] = EHR_ARRAY_LEN(extra);
		if (gw_router_new(&rt, t, l, GW_ROUTE_TABLES + 1) < 0)
			abort();
	}
	buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	if (nl && (q = strchr(nl + 1, '?')) != NULL) {
		*q = '\0';
		check_query(q + 1);
	}
	res = gw_router_match(rt, buf, nl ? nl + 1 : "/", &m, allow, sizeof(allow));
	switch (res) {
	case GW_ROUTE_FOUND:
		if (m.route == NULL)
			abort();
		for (size_t i = 0; i < m.nparams; i++) {
			char name[64];
			if (m.params[i].value == NULL || strchr(m.params[i].value, '/') ||
			    m.params[i].name_len >= sizeof(name))
				abort();
			memcpy(name, m.params[i].name, m.params[i].name_len);
			name[m.params[i].name_len] = '\0';
			(void)gw_id_check(name, m.params[i].value, true);
		}
		break;
	case GW_ROUTE_NOT_FOUND:
	case GW_ROUTE_BAD_PATH: break;
	case GW_ROUTE_BAD_METHOD:
		if (allow[0] == '\0')
			abort();
		break;
	default: abort();
	}
	gw_match_clear(&m);
	free(buf);
	return 0;
}
