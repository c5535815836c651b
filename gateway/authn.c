/* authn.c - placeholder: deny every role-protected route until auth lands. */
#include "gateway/gateway.h"

int gw_authenticate(struct gw_req *r, const struct gw_route *route, struct gw_identity *id)
{
	(void)r;
	(void)route;
	(void)id;
	return ehr_error_set(EHR_ERR_AUTH, "authentication is not available");
}
