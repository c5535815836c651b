/* routes_ehr.c - placeholder route table until its owner lands it. */
#include "gateway/gateway.h"

const struct gw_route gw_routes_ehr[] = { { 0 } };
const size_t gw_routes_ehr_len = 0;
