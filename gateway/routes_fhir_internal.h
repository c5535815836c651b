/*
 * routes_fhir_internal.h - what the FHIR routes' files share:
 * routes_fhir.c (metadata, AuditEvent, the OperationOutcome error hook,
 * the route table) and routes_fhir_consent.c (Consent). Nothing else
 * includes it.
 */
#ifndef EHR_GATEWAY_ROUTES_FHIR_INTERNAL_H
#define EHR_GATEWAY_ROUTES_FHIR_INTERNAL_H

#include <jansson.h>

#include "gateway/gateway.h"

#define GW_FHIR_CT "application/fhir+json"

/* Reply with a FHIR resource (takes the reference). */
void gw__fhir_reply(struct gw_req *r, int status, json_t *resource);
/* routes_fhir_consent.c: GET /fhir/Consent and GET /fhir/Consent/{seq}
 * (gw_audit_read_fn: run and recorded as audit.query by gw_audit_query_run). */
struct gw_audit_query_info;
void gw__fhir_consent_search(struct gw_req *r, struct gw_audit_query_info *info);
void gw__fhir_consent_read(struct gw_req *r, struct gw_audit_query_info *info);

#endif
