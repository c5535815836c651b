/*
 * policy_gate.c - where EHR routes ask the access-policy contracts
 * (docs/CONTRACTS.md §2-§4): one call per read or append, which decides,
 * records the decision in the ledger (access.decision) and counts it.
 *
 * The request is built from the authenticated identity and two headers:
 *   X-EHR-Break-Glass: <justification>   a medical server declares an
 *        emergency (10-500 printable ASCII bytes); reads only
 *   X-EHR-Purpose: <purpose>             default "treatment"
 * Fails closed: if the decision cannot be recorded, the answer is no.
 */
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/metrics.h"
#include "policy/policy.h"
#include "gateway/gateway_internal.h"

enum { DECISION_ALLOW, DECISION_DENY }; /* the series of m_decisions */
static struct ehr_metric m_decisions =
        EHR_METRIC_LABELLED(EHR_METRIC_COUNTER, "ehrgate_access_decisions_total",
                            "EHR access decisions recorded in the ledger.", "decision", "allow", "deny");
static struct ehr_metric m_break_glass = EHR_METRIC(EHR_METRIC_COUNTER, "ehrgate_break_glass_reads_total",
                                                    "Reads allowed only by a break-glass declaration.");
static struct ehr_metric m_unrecorded =
        EHR_METRIC(EHR_METRIC_COUNTER, "ehrgate_access_decisions_unrecorded_total",
                   "Requests refused because their decision could not be recorded.");

/* The counters are in /metrics from the start, zeros included, whether or
 * not a request ever reaches the gate: registered when the program loads.
 * The definitions are constants, so a failure is a typo: stop there. */
__attribute__((constructor)) static void register_metrics(void)
{
	if (ehr_metric_register(&m_decisions) < 0 || ehr_metric_register(&m_break_glass) < 0 ||
	    ehr_metric_register(&m_unrecorded) < 0)
		abort();
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* The request as the policy sees it, from the identity and the headers. */
static int build_request(struct gw_req *r, struct policy_request *q, enum policy_action action,
                         const char *patient, const char *record_id, const char *category)
{
	const struct gw_identity *id = gw_req_identity(r);
	const char *bg = gw_req_header(r, "X-EHR-Break-Glass");
	const char *purpose = gw_req_header(r, "X-EHR-Purpose");

	memset(q, 0, sizeof(*q));
	if (bg != NULL && !printable(bg))
		return ehr_error_set(EHR_ERR_INVAL, "X-EHR-Break-Glass must be printable ASCII");
	if (purpose != NULL && !policy_purpose_valid(purpose))
		return ehr_error_set(EHR_ERR_INVAL, "X-EHR-Purpose is not a documented purpose");
	switch (id->role) {
	case GW_ROLE_PATIENT: q->role = POLICY_ROLE_PATIENT; break;
	case GW_ROLE_SERVER: q->role = POLICY_ROLE_SERVER; break;
	case GW_ROLE_AUDITOR: q->role = POLICY_ROLE_AUDITOR; break;
	default: return ehr_error_set(EHR_ERR_FORBIDDEN, "no identity");
	}
	q->requester = id->subject;
	q->patient = patient;
	q->action = action;
	q->record_id = record_id;
	q->category = category && *category ? category : NULL;
	q->purpose = purpose;
	q->break_glass = bg != NULL;
	q->justification = bg;
	return 0;
}

int gw_policy_decide(struct gw_req *r, enum policy_action action, const char *patient, const char *record_id,
                     const char *category, struct policy_decision *dec)
{
	struct gw_app *app = gw_req_app(r);
	struct policy_request q;
	void *conn = NULL;
	int err;

	dec->effect = POLICY_DENY;
	dec->reason = "deny.invalid_request";
	dec->cid[0] = '\0';
	dec->break_glass = false;
	GUARD(build_request(r, &q, action, patient, record_id, category));
	if ((err = ehr_db_acquire(gw_app_db(app), &conn)) < 0)
		goto unavailable;
	err = policy_evaluate(conn, &q, ehr_now_ms() / 1000, dec);
	ehr_db_release(gw_app_db(app), conn, err == EHR_ERR_DB || err == EHR_ERR_UNAVAILABLE);
	if (err < 0)
		goto unavailable;
	return dec->effect == POLICY_ALLOW ? 0 : ehr_error_set(EHR_ERR_FORBIDDEN, "%s", dec->reason);
unavailable:
	ehr_metric_inc(&m_unrecorded, 0);
	dec->effect = POLICY_DENY;
	return err == EHR_ERR_FORBIDDEN ? EHR_ERR_UNAVAILABLE : err;
}

int gw_policy_record(struct gw_req *r, enum policy_action action, const char *patient, const char *record_id,
                     const char *category, const struct policy_decision *dec)
{
	struct policy_request q;
	int err;

	GUARD(build_request(r, &q, action, patient, record_id, category));
	if ((err = policy_record(gw_app_ledger(gw_req_app(r)), &q, dec, NULL)) < 0) {
		ehr_metric_inc(&m_unrecorded, 0);
		return err == EHR_ERR_FORBIDDEN ? EHR_ERR_UNAVAILABLE : err;
	}
	if (dec->effect != POLICY_ALLOW) {
		ehr_metric_inc(&m_decisions, DECISION_DENY);
		return 0;
	}
	ehr_metric_inc(&m_decisions, DECISION_ALLOW);
	if (dec->break_glass) {
		ehr_metric_inc(&m_break_glass, 0);
		ehr_log_json(EHR_LOG_WARN, "policy.break_glass",
		             json_pack("{s:s, s:s}", "requester", q.requester, "record",
		                       record_id ? record_id : ""));
	}
	return 0;
}

int gw_policy_check(struct gw_req *r, enum policy_action action, const char *patient, const char *record_id,
                    const char *category, struct policy_decision *dec)
{
	int err = gw_policy_decide(r, action, patient, record_id, category, dec);
	int rec;

	if (err < 0 && err != EHR_ERR_FORBIDDEN)
		return err;
	/* Allowed or denied, the decision is recorded before it is acted on. */
	if ((rec = gw_policy_record(r, action, patient, record_id, category, dec)) < 0) {
		dec->effect = POLICY_DENY;
		return rec;
	}
	return dec->effect == POLICY_ALLOW ? 0 : ehr_error_set(EHR_ERR_FORBIDDEN, "%s", dec->reason);
}
