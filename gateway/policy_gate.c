/*
 * policy_gate.c - where EHR routes build the access request the contracts
 * are asked (docs/CONTRACTS.md §2-§4), and where the decisions the record
 * service made (records/: decided, recorded in the ledger as
 * access.decision) are counted for /metrics.
 *
 * The request is built from the authenticated identity and two headers:
 *   X-EHR-Break-Glass: <justification>   a medical server declares an
 *        emergency (10-500 printable ASCII bytes); reads only
 *   X-EHR-Purpose: <purpose>             default "treatment"
 * Fails closed: if the decision cannot be recorded, the answer is no.
 */
#include <stdlib.h>
#include <string.h>

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

/* Register the counters with common's metrics registry (once, before
 * serving), so /metrics shows them from the start, zeros included. */
int gw_policy_metrics_register(void)
{
	GUARD(ehr_metric_register(&m_decisions));
	GUARD(ehr_metric_register(&m_break_glass));
	return ehr_metric_register(&m_unrecorded);
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

int gw_policy_request(struct gw_req *r, struct policy_request *q)
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
	q->purpose = purpose;
	q->break_glass = bg != NULL;
	q->justification = bg;
	return 0;
}

void gw_policy_count(const struct policy_request *q, const char *record_id, bool recorded,
                     const struct policy_decision *dec)
{
	if (!recorded) {
		ehr_metric_inc(&m_unrecorded, 0);
		return;
	}
	if (dec->effect != POLICY_ALLOW) {
		ehr_metric_inc(&m_decisions, DECISION_DENY);
		return;
	}
	ehr_metric_inc(&m_decisions, DECISION_ALLOW);
	if (dec->break_glass) {
		ehr_metric_inc(&m_break_glass, 0);
		ehr_log_json(EHR_LOG_WARN, "policy.break_glass",
		             json_pack("{s:s, s:s}", "requester", q->requester, "record",
		                       record_id ? record_id : ""));
	}
}
