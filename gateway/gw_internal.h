/*
 * gw_internal.h - gateway internals shared between the gateway/ source files.
 * Not part of the module's face (gateway.h, commands.h).
 */
#ifndef EHR_GW_INTERNAL_H
#define EHR_GW_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "gateway/gateway.h"

static inline void gw_cleanse_str(char *s)
{
	OPENSSL_cleanse(s, strlen(s));
}

/* config.c: "host:port" / "[v6]:port" */
int gw_parse_listen(const char *v, char *host, size_t host_cap, uint16_t *port);

/* router.c: a compiled route table. */
#define GW_MAX_PARAMS 8
struct gw_param {
	const char *name; /* points into the route pattern */
	size_t name_len;
	char *value;      /* decoded, owned by the match */
};
struct gw_match {
	const struct gw_route *route;
	int route_index;
	size_t nparams;
	struct gw_param params[GW_MAX_PARAMS];
};
enum gw_route_result { GW_ROUTE_FOUND = 0, GW_ROUTE_NOT_FOUND = 1, GW_ROUTE_BAD_METHOD = 2, GW_ROUTE_BAD_PATH = 3 };
struct gw_router;
/* Validates every pattern (leading '/', {name} whole segments, no duplicate
 * method+pattern). */
int gw_router_new(struct gw_router **out, const struct gw_route *const *tables, const size_t *lens, size_t ntables);
void gw_router_free(struct gw_router *rt);
size_t gw_router_count(const struct gw_router *rt);
const struct gw_route *gw_router_route(const struct gw_router *rt, size_t i);
/* Match a raw (still percent-encoded) path without query. On GW_ROUTE_BAD_METHOD
 * `allow` receives "GET, POST" for the Allow header. Free with gw_match_clear. */
enum gw_route_result gw_router_match(const struct gw_router *rt, const char *method, const char *raw_path,
                                     struct gw_match *m, char *allow, size_t allow_cap);
void gw_match_clear(struct gw_match *m);

#endif
