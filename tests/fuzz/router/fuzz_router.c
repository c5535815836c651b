/* fuzz_router.c - route matching on untrusted request targets: the first
 * line of the input is the method, the rest the raw path. Matching must
 * return one of its four results, never crash, and every decoded parameter
 * must be free of '/' and NUL. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *nl, allow[128];
	struct gw_match m;
	enum gw_route_result res;

	if (rt == NULL) {
		const struct gw_route *t[] = { gw_routes_core,  gw_routes_auth, gw_routes_ehr,
			                       gw_routes_audit, gw_routes_test, extra };
		size_t l[] = { gw_routes_core_len,  gw_routes_auth_len, gw_routes_ehr_len,
			       gw_routes_audit_len, gw_routes_test_len, EHR_ARRAY_LEN(extra) };
		if (gw_router_new(&rt, t, l, 6) < 0)
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
	res = gw_router_match(rt, buf, nl ? nl + 1 : "/", &m, allow, sizeof(allow));
	switch (res) {
	case GW_ROUTE_FOUND:
		if (m.route == NULL)
			abort();
		for (size_t i = 0; i < m.nparams; i++)
			if (m.params[i].value == NULL || strchr(m.params[i].value, '/'))
				abort();
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
