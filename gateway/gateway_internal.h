/*
 * gateway_internal.h - the application's internals, shared between the
 * gateway/ source files only (gateway/cmd/ uses the face, gateway.h, like
 * any other module: scripts/layers.conf).
 */
#ifndef EHR_GATEWAY_INTERNAL_H
#define EHR_GATEWAY_INTERNAL_H

#include <string.h>

#include <openssl/crypto.h>

#include "gateway/gateway.h"
#include "policy/policy.h"

static inline void gw_cleanse_str(char *s)
{
	OPENSSL_cleanse(s, strlen(s));
}

/* app.c: open the object store of [store], KEKs attached. */
struct obj_store;
int gw_store_open(struct obj_store **out, const struct gw_config *cfg);

/* routes_core.c: routes only mounted with [server] test_routes = true */
extern const struct gw_route gw_routes_test[];
extern const size_t gw_routes_test_len;

/* policy_gate.c (contracts & audit): decide one EHR read or append against
 * the access-policy contracts, record it in the ledger (access.decision),
 * count it (ehrgate_access_decisions_* in the metrics registry). 0 = allowed; EHR_ERR_FORBIDDEN = denied (detail = reason);
 * EHR_ERR_INVAL = bad X-EHR-Break-Glass / X-EHR-Purpose header; any other
 * error = the decision could not be recorded (refuse with 503). */
int gw_policy_check(struct gw_req *r, enum policy_action action, const char *patient, const char *record_id,
                    const char *category, struct policy_decision *dec);
/* The halves of gw_policy_check, for a route that must record the decision
 * later (an append records it just before its ehr.store entry): decide
 * without writing (same returns), then record; a decision must be recorded
 * before it is acted on, and a failed record means refuse (503). */
int gw_policy_decide(struct gw_req *r, enum policy_action action, const char *patient, const char *record_id,
                     const char *category, struct policy_decision *dec);
int gw_policy_record(struct gw_req *r, enum policy_action action, const char *patient, const char *record_id,
                     const char *category, const struct policy_decision *dec);

#endif
