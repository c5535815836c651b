/*
 * routes_audit_internal.h - what the audit routes' two files share:
 * routes_audit.c (contracts, the entry query API with its FHIR rendering,
 * proofs, and the route table) and routes_audit_stream.c (the live SSE
 * stream). Nothing else includes it.
 */
#ifndef EHR_GATEWAY_ROUTES_AUDIT_INTERNAL_H
#define EHR_GATEWAY_ROUTES_AUDIT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "gateway/gateway.h"
#include "ledger/ledger.h"

/* Entries rendered as JSON items into `items`: the ledger entry as stored
 * (default), the patient's access-log view, the patient's stream event
 * (docs/AUDIT.md §10), or a FHIR R4 AuditEvent. */
struct gw__audit_collect {
	json_t *items;
	bool fhir;
	bool access_log;
	bool me_stream;
	const char *origin;
	uint64_t last_seq;
	unsigned n;
	int err;
};

/* routes_audit.c: render one entry (a ledger_query callback; ctx is a
 * struct gw__audit_collect). */
int gw__audit_collect_entry(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len);
/* routes_audit.c: an optional unsigned query parameter; replies 400 and
 * returns false if bad. */
bool gw__audit_query_u64(struct gw_req *r, const char *name, uint64_t *out, uint64_t dflt, uint64_t max);
/* routes_audit.c: the first seq at or after since_ms (UINT64_MAX: none),
 * by one probe of the (ts_ms, seq) index. */
int gw__audit_seq_from_time(struct gw_app *app, int64_t since_ms, uint64_t *seq);
/* routes_audit.c: append a query value, percent-encoded (RFC 3986). */
int gw__url_encode(struct ehr_buf *out, const char *v);
/* routes_audit_stream.c: GET /v1/audit/stream and the patient's
 * GET /v1/me/access/stream, one SSE implementation with a subject filter
 * (gw_audit_read_fns). */
struct gw_audit_query_info;
void gw__audit_stream(struct gw_req *r, struct gw_audit_query_info *info);
void gw__me_access_stream(struct gw_req *r, struct gw_audit_query_info *info);

#endif
