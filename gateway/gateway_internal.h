/*
 * gateway_internal.h - the application's internals, shared between the
 * gateway/ source files only (gateway/cmd/ uses the face, gateway.h, like
 * any other module: scripts/layers.conf).
 */
#ifndef EHR_GATEWAY_INTERNAL_H
#define EHR_GATEWAY_INTERNAL_H

#include "gateway/gateway.h"
#include "policy/policy.h"

/* routes_core.c: routes only mounted with [server] test_routes = true */
extern const struct gw_route gw_routes_test[];
extern const size_t gw_routes_test_len;

/* policy_gate.c (contracts & audit): the access request of an EHR route
 * as the policy sees it, from the identity and the X-EHR-Break-Glass /
 * X-EHR-Purpose headers (EHR_ERR_INVAL for a bad one); the record service
 * (records/) fills patient, action, record and category, decides and
 * records. gw_policy_count then counts what it decided (the
 * ehrgate_access_decisions_* counters of the metrics registry): recorded
 * (allow, deny, break-glass, which is also logged) or not (refused with 503). */
int gw_policy_request(struct gw_req *r, struct policy_request *q);
/* Register the policy counters in the metrics registry (gw_serve does). */
int gw_policy_metrics_register(void);
void gw_policy_count(const struct policy_request *q, const char *record_id, bool recorded,
                     const struct policy_decision *dec);

/* patient_erase_records.c: what patient erasure takes from record erasure
 * (records/, h-erase): the legal-basis codes, the retention/hold check
 * (reason "" when erasable) and erasing every record of the patient. */
#define GW_ERASE_REASON_MAX 64
bool gw__erase_basis_ok(const char *basis);
int gw__erase_check_patient(struct gw_app *app, const char *pid, char *reason, size_t cap);
int gw__erase_patient_records(struct gw_app *app, const char *pid, uint64_t erase_seq, const char *basis,
                              const char *requested_by, const char *actor, uint64_t *erased);

#endif
