/*
 * gateway_internal.h - the application's internals, shared between the
 * gateway/ source files only (gateway/cmd/ uses the face, gateway.h, like
 * any other module: scripts/layers.conf).
 */
#ifndef EHR_GATEWAY_INTERNAL_H
#define EHR_GATEWAY_INTERNAL_H

#include "gateway/gateway.h"
#include "policy/policy.h"

struct ledger;

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
 * (records/): the legal-basis codes, the retention/hold check over every
 * record of the patient with the [retention] periods (0, or
 * EHR_ERR_CONFLICT with *why) and erasing every record of the patient. */
bool gw__erase_basis_ok(const char *basis);
int gw__erase_check_patient(struct gw_app *app, const char *pid, struct records_refusal *why);
int gw__erase_patient_records(struct gw_app *app, const char *pid, const char *basis,
                              const char *requested_by, const char *actor, uint64_t *erased);

/*
 * audit_query.c: every request on an audit read route is one `audit.query`
 * ledger entry (docs/AUDIT.md §7). Actor: the caller's id or pseudonym;
 * subject: the patient pseudonym the request filtered on, else "";
 * payload {"route", "query" (raw query string), "outcome"
 * ("success"|"failure"), "count" (entries returned, when it applies)}.
 * Entries go through a bounded queue (GW_AUDIT_QUEUE_MAX) to one flusher
 * thread that commits them with ledger_append_n; see the file's comment
 * for what is guaranteed.
 */
#define GW_AUDIT_QUERY_TYPE "audit.query"
#define GW_AUDIT_QUEUE_MAX 4096
#define GW_AUDIT_QUEUE_WAIT_MS 2000
struct gw_audit_queue;
int gw_audit_queue_new(struct gw_audit_queue **out, struct ledger *ledger, size_t cap);
/* Commits what is queued (retrying a failed commit a few times), then frees. */
void gw_audit_queue_free(struct gw_audit_queue *q);
/* Reserve a slot, waiting up to wait_ms for room: 0, or EHR_ERR_UNAVAILABLE. */
int gw_audit_queue_reserve(struct gw_audit_queue *q, unsigned wait_ms);
/* Fill a reserved slot (payload stolen; NULL gives the slot back). */
void gw_audit_queue_put(struct gw_audit_queue *q, const char *actor, const char *subject, json_t *payload);
/* The app's queue, or NULL when it was opened without GW_APP_AUDIT_QUERIES. */
struct gw_audit_queue *gw_app_audit_queue(struct gw_app *app);

/* What an audit read handler tells the recorder: entries returned (-1: not
 * a listing) and the patient pseudonym it filtered on (NULL: none). */
struct gw_audit_query_info {
	long long count;
	const char *subject;
};
typedef void (*gw_audit_read_fn)(struct gw_req *r, struct gw_audit_query_info *info);
/* Run an audit read route's handler and record the request as one
 * audit.query entry, success or failure. When the queue stays full the
 * handler does not run and the reply is 503 (Retry-After: 1). */
void gw_audit_query_run(struct gw_req *r, gw_audit_read_fn fn);

/* routes_tiles.c: a tlog-tiles path parameter ({+tile}, or {+bundle} with
 * bundle: the part after "entries/") as a tile; EHR_ERR_PARSE. */
struct ledger_tile;
int gw__tile_parse(struct ledger_tile *t, const char *value, bool bundle);
/* Whether the gate lets this request through without credentials: entry
 * bundles with [ledger] public_entries = true (docs/LEDGER.md §10). */
bool gw_tiles_route_open(const struct gw_req *r);

/* routes_receipts.c: the receipt of ledger entry `index` on an acknowledged
 * reply (docs/PROTOCOL.md §16): sets X-EHR-Ledger-Index and X-EHR-Receipt
 * (the receipt URL) and returns the reply's "receipt" member
 * {"index","url"} (new reference; NULL when out of memory). With
 * `Prefer: wait=N` on the request it first waits (capped) for a published
 * checkpoint covering the entry and adds "proof" (the tlog-proof text), or
 * "status":"pending" when none came in time. */
json_t *gw_receipt_attach(struct gw_req *r, uint64_t index);
/* GET /v1/receipts/{index} (in gw_routes_tiles). */
void gw__receipt_get(struct gw_req *r);

#endif
