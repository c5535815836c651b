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
#include <stdatomic.h>
#include <string.h>

#include "policy/policy.h"
#include "gateway/gateway_internal.h"

static atomic_ulong n_allow, n_deny, n_break_glass, n_unrecorded;

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
		atomic_fetch_add(&n_unrecorded, 1);
		return;
	}
	if (dec->effect != POLICY_ALLOW) {
		atomic_fetch_add(&n_deny, 1);
		return;
	}
	atomic_fetch_add(&n_allow, 1);
	if (dec->break_glass) {
		atomic_fetch_add(&n_break_glass, 1);
		ehr_log_json(EHR_LOG_WARN, "policy.break_glass",
		             json_pack("{s:s, s:s}", "requester", q->requester, "record",
		                       record_id ? record_id : ""));
	}
}

int gw_policy_metrics_render(struct ehr_buf *out)
{
	return ehr_buf_printf(
	        out,
	        "# HELP ehrgate_access_decisions_total EHR access decisions recorded in the ledger.\n"
	        "# TYPE ehrgate_access_decisions_total counter\n"
	        "ehrgate_access_decisions_total{decision=\"allow\"} %lu\n"
	        "ehrgate_access_decisions_total{decision=\"deny\"} %lu\n"
	        "# HELP ehrgate_break_glass_reads_total Reads allowed only by a break-glass declaration.\n"
	        "# TYPE ehrgate_break_glass_reads_total counter\n"
	        "ehrgate_break_glass_reads_total %lu\n"
	        "# HELP ehrgate_access_decisions_unrecorded_total Requests refused because their decision "
	        "could not be recorded.\n"
	        "# TYPE ehrgate_access_decisions_unrecorded_total counter\n"
	        "ehrgate_access_decisions_unrecorded_total %lu\n",
	        atomic_load(&n_allow), atomic_load(&n_deny), atomic_load(&n_break_glass),
	        atomic_load(&n_unrecorded));
}
