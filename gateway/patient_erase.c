/*
 * patient_erase.c - the right to be forgotten (docs/ERASURE.md §10):
 * the one sequence that both POST /v1/me/erase and `ehrgate
 * admin erase-patient` run, and the completion that `ehrgate fsck` runs.
 *
 *   A  one transaction, the patient's row locked: retention/hold check
 *      (409, recorded); auth.patient.erase + auth.revoke + contract.erase
 *      appended as ONE durable batch; then, before commit, the patient
 *      marked 'erasing', the device key revoked, the link, enrolment codes
 *      and challenges deleted, the contracts ended. From the commit on,
 *      nothing leads from the external id to the pseudonym.
 *   B  every record of the patient erased (records/ erasure, one ehr.erase
 *      entry each).
 *   C  'erasing' -> 'erased'.
 *
 * A crash between the batch and the commit leaves the entries without the
 * state: fsck applies them from the ledger. A crash in B or before C
 * leaves 'erasing': fsck (or running the command again) finishes B and C.
 * No acknowledged erasure can be undone: the acknowledgement comes after C.
 * An upload in flight ends under a share lock on the same row
 * (records/upload.c): it commits before A and is erased in B, or finds
 * the patient revoked and is refused.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "common/db.h"
#include "gateway/gateway.h"
#include "gateway/gateway_internal.h"
#include "ledger/ledger.h"
#include "policy/policy.h"
#include "records/records.h"

/* The refusal is itself recorded: an auth.patient.erase entry with outcome
 * failure, the request and the refusal's fields (as ehr.erase.refused has
 * them for a record), then EHR_ERR_CONFLICT. */
static int refuse(struct gw_app *app, const char *pid, const char *actor, const char *basis,
                  const char *requested_by, struct records_refusal *why)
{
	json_t *pl = json_pack("{s:s,s:s,s:s}", "outcome", "failure", "basis", basis, "requested_by",
	                       requested_by);
	struct ledger_entry_in in = { "auth.patient.erase", actor, pid, pl };
	struct ledger_receipt rcpt;
	int err;

	ENSURE(pl != NULL, EHR_ERR_NOMEM);
	records_refusal_json(pl, why);
	err = ledger_append(gw_app_ledger(app), &in, &rcpt);
	json_decref(pl);
	GUARD(err);
	why->refused_seq = rcpt.seq;
	return ehr_error_set(EHR_ERR_CONFLICT, "erasure refused: %s",
	                     why->kind == RECORDS_REFUSED_HOLD ? "legal hold" : "retention");
}

/* Phase A's writes, after the batch is durable: the auth state and the
 * contracts, in the caller's transaction. */
static int apply_state(void *conn, const char *pid, uint64_t erase_seq, const struct auth_erase_request *rq,
                       uint64_t contract_seq, const json_t *contract_payload)
{
	GUARD(auth_patient_erase_apply(conn, pid, erase_seq, rq));
	return policy_store_apply(conn, contract_seq, POLICY_ENTRY_ERASE, contract_payload);
}

static int commit_erasure(struct gw_app *app, void *conn, const char *pid, const char *basis,
                          const char *requested_by, const char *actor, uint64_t *erase_seq)
{
	json_t *p_erase = NULL, *p_revoke = NULL, *p_contracts = NULL;
	struct ledger_entry_in in[3];
	struct ledger_receipt rcpt[3];
	struct auth_erase_request rq = { basis, requested_by, actor };
	int err;

	p_erase = json_pack("{s:s,s:s,s:s}", "outcome", "success", "basis", basis, "requested_by",
	                    requested_by);
	p_revoke = json_pack("{s:s,s:s,s:s}", "outcome", "success", "kind", "patient", "reason", "erasure");
	p_contracts = json_pack("{s:s}", "patient", pid);
	ENSURE_GOTO(p_erase != NULL && p_revoke != NULL && p_contracts != NULL, EHR_ERR_NOMEM);
	in[0] = (struct ledger_entry_in){ "auth.patient.erase", actor, pid, p_erase };
	in[1] = (struct ledger_entry_in){ "auth.revoke", actor, pid, p_revoke };
	in[2] = (struct ledger_entry_in){ POLICY_ENTRY_ERASE, actor, pid, p_contracts };
	GUARD_GOTO(ledger_append_n(gw_app_ledger(app), in, 3, rcpt));
	ehr_failpoint("patient-erase.ledger");
	GUARD_GOTO(apply_state(conn, pid, rcpt[0].seq, &rq, rcpt[2].seq, p_contracts));
	GUARD_GOTO(ehr_db_commit(conn));
	*erase_seq = rcpt[0].seq;
out:
	json_decref(p_erase);
	json_decref(p_revoke);
	json_decref(p_contracts);
	return err;
}

/* Phase A, or where an earlier run stopped. */
static int phase_a(struct gw_app *app, const char *pid, const char *basis, const char *requested_by,
                   const char *actor, struct gw_patient_erase_out *out, struct records_refusal *why)
{
	struct ehr_db_pool *db = gw_app_db(app);
	struct auth_patient_info info;
	void *conn = NULL;
	int err;

	GUARD(ehr_db_acquire(db, &conn));
	GUARD_GOTO(ehr_db_begin(conn));
	GUARD_GOTO(auth_patient_lock(conn, pid, &info));
	switch (info.state) {
	case AUTH_PATIENT_UNKNOWN: err = ehr_error_set(EHR_ERR_NOT_FOUND, "no such patient"); goto out;
	case AUTH_PATIENT_ERASED: out->already = true; /* fall through */
	case AUTH_PATIENT_ERASING:
		out->erase_seq = info.erase_seq;
		ehr_db_rollback(conn);
		goto out;
	case AUTH_PATIENT_ACTIVE:
	default: break;
	}
	err = gw__erase_check_patient(app, pid, why);
	if (err == EHR_ERR_CONFLICT && why->kind != RECORDS_REFUSED_NONE) {
		ehr_db_rollback(conn);
		ehr_error_clear();
		err = refuse(app, pid, actor, basis, requested_by, why);
		goto out;
	}
	GUARD_GOTO(err);
	err = commit_erasure(app, conn, pid, basis, requested_by, actor, &out->erase_seq);
out:
	ehr_db_release_after(db, conn, err);
	return err;
}

/* Phases B and C for a patient already 'erasing', on the request its row
 * keeps (so a re-run or fsck erases the records on the original basis).
 * sweep (fsck): an 'erased' patient's records left stored are erased too. */
static int finish(struct gw_app *app, const char *pid, bool sweep, struct gw_patient_erase_out *out)
{
	struct auth_patient_info info;

	GUARD(auth_patient_lookup(gw_app_db(app), pid, &info));
	if (sweep && info.state == AUTH_PATIENT_ERASED)
		return gw__erase_patient_records(app, pid, info.basis, info.by, info.actor,
		                                 &out->records_erased);
	if (info.state != AUTH_PATIENT_ERASING)
		return 0;
	out->erase_seq = info.erase_seq;
	GUARD(gw__erase_patient_records(app, pid, info.basis, info.by, info.actor, &out->records_erased));
	ehr_failpoint("patient-erase.records");
	return auth_patient_erase_finish(gw_app_db(app), pid);
}

int gw_patient_erase(struct gw_app *app, const char *pid, const char *basis, const char *requested_by,
                     const char *actor, struct gw_patient_erase_out *out, struct records_refusal *why)
{
	memset(out, 0, sizeof(*out));
	memset(why, 0, sizeof(*why));
	if (!gw__erase_basis_ok(basis))
		return ehr_error_set(EHR_ERR_INVAL,
		                     "basis must be one of the legal-basis codes (docs/ERASURE.md)");
	if (pid == NULL || strncmp(pid, "pt-", 3) != 0 || !records_id_ok(pid, RECORDS_MAX_PID))
		return ehr_error_set(EHR_ERR_INVAL, "not a patient pseudonym");
	if (gw_app_ledger(app) == NULL)
		return ehr_error_set(EHR_ERR_UNAVAILABLE, "the ledger is not open");
	GUARD(phase_a(app, pid, basis, requested_by, actor, out, why));
	if (out->already)
		return 0;
	ehr_failpoint("patient-erase.committed");
	return finish(app, pid, false, out);
}

/* ---------------------------------------------------------------- fsck */

struct scan {
	struct gw_app *app;
	struct gw_patient_erase_report *rep;
	uint64_t next;
	size_t seen;
};

/* One success entry of auth.patient.erase or contract.erase: make the
 * state say what the ledger says. */
static int on_entry(void *ud, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct scan *s = ud;
	struct ehr_db_pool *db = gw_app_db(s->app);
	json_t *pl = NULL;
	void *conn = NULL;
	const char *outcome = NULL;
	int err;

	(void)raw;
	(void)raw_len;
	s->next = e->seq + 1;
	s->seen++;
	GUARD_GOTO(ehr_json_parse(&pl, e->payload, e->payload_len, LEDGER_MAX_PAYLOAD, EHR_JSON_MAX_DEPTH));
	GUARD_GOTO(ehr_db_acquire(db, &conn));
	GUARD_GOTO(ehr_db_begin(conn));
	if (strcmp(e->type, POLICY_ENTRY_ERASE) == 0) {
		GUARD_GOTO(policy_store_apply(conn, e->seq, e->type, pl));
	} else if (ehr_json_get_str(pl, "outcome", &outcome, 16) == 0 && strcmp(outcome, "success") == 0) {
		struct auth_patient_info info;
		struct auth_erase_request rq = { NULL, NULL, e->actor };
		GUARD_GOTO(auth_patient_lock(conn, e->subject, &info));
		GUARD_GOTO(ehr_json_get_str(pl, "basis", &rq.basis, 31));
		GUARD_GOTO(ehr_json_get_str(pl, "requested_by", &rq.by, 15));
		if (info.state == AUTH_PATIENT_ACTIVE) {
			GUARD_GOTO(auth_patient_erase_apply(conn, e->subject, e->seq, &rq));
			s->rep->applied++;
		}
	}
	GUARD_GOTO(ehr_db_commit(conn));
out:
	ehr_error_clear();
	ehr_db_release_after(db, conn, err);
	json_decref(pl);
	if (err < 0 && err != EHR_ERR_DB && err != EHR_ERR_UNAVAILABLE)
		s->rep->failed++;
	return err == EHR_ERR_DB || err == EHR_ERR_UNAVAILABLE ? err : 0;
}

static int scan_type(struct scan *s, const char *type)
{
	s->next = 0;
	for (;;) {
		struct ledger_query q = { .from_seq = s->next, .type = type, .limit = 1000 };
		s->seen = 0;
		GUARD(ledger_query(gw_app_ledger(s->app), &q, on_entry, s));
		if (s->seen < 1000)
			return 0;
	}
}

int gw_patient_erase_complete(struct gw_app *app, struct gw_patient_erase_report *rep)
{
	struct scan s = { app, rep, 0, 0 };
	json_t *pids = NULL;
	size_t i;
	json_t *v;
	int err = 0;

	memset(rep, 0, sizeof(*rep));
	GUARD(scan_type(&s, "auth.patient.erase"));
	GUARD(scan_type(&s, POLICY_ENTRY_ERASE));
	GUARD(auth_patients_erasing(gw_app_db(app), &pids));
	json_array_foreach(pids, i, v)
	{
		struct gw_patient_erase_out out;
		const char *pid = json_string_value(v);

		memset(&out, 0, sizeof(out));
		if (finish(app, pid, true, &out) < 0) {
			rep->failed++;
			continue;
		}
		rep->completed++;
		rep->records_erased += out.records_erased;
	}
	json_decref(pids);
	return err;
}

/* ---------------------------------------------------------------- HTTP */

void gw_reply_patient_erased(struct gw_req *r, const char *pid)
{
	struct auth_patient_info info = { 0 };
	json_t *j;

	auth_patient_lookup(gw_app_db(gw_req_app(r)), pid, &info);
	ehr_error_clear();
	j = json_pack(
	        "{s:{s:s,s:s,s:I}}", "error", "code", "patient_erased", "message",
	        "this patient was erased at their or the operator's request; nothing is served for them",
	        "erase_seq", (json_int_t)info.erase_seq);
	if (j == NULL)
		gw_reply_error(r, 410, "patient_erased", "this patient was erased");
	else
		gw_reply_json(r, 410, j);
}

int gw_patient_refused(struct gw_req *r, const char *pid)
{
	struct auth_patient_info info;

	if (auth_patient_lookup(gw_app_db(gw_req_app(r)), pid, &info) < 0) {
		gw_reply_err(r, EHR_ERR_UNAVAILABLE);
		return 1;
	}
	if (info.state == AUTH_PATIENT_ERASING || info.state == AUTH_PATIENT_ERASED) {
		gw_reply_patient_erased(r, pid);
		return 1;
	}
	return 0;
}
