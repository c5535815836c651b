/* routes_core.c - placeholder until the core routes land. */
#include "gateway/gateway.h"

const struct gw_route gw_routes_core[] = { { 0 } };
const size_t gw_routes_core_len = 0;
