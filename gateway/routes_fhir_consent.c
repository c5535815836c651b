/*
 * routes_fhir_consent.c - contracts as FHIR R4 Consent (docs/CONTRACTS.md
 * §9): GET /fhir/Consent?patient= (a Bundle searchset, paged by seq) and
 * GET /fhir/Consent/{seq}. Each contract.create entry is a Consent (active,
 * or inactive once revoked) and each contract.revoke entry is one too
 * (inactive), with the signed original attached.
 *
 * Who may read: an auditor, any; a patient, its own only (another
 * patient's Consent answers 404, a search for another patient 403).
 */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "audit/audit.h"
#include "common/db.h"
#include "gateway/gateway_internal.h"
#include "gateway/routes_audit_internal.h"
#include "gateway/routes_fhir_internal.h"

#define CONSENT_PAGE_DEFAULT 100
#define CONSENT_PAGE_MAX 1000

/* One ledger entry, copied out of a ledger_query callback. */
struct owned_entry {
	struct ledger_entry e;
	uint8_t *payload;
	bool have;
};

static void owned_free(struct owned_entry *o)
{
	free(o->payload);
	memset(o, 0, sizeof(*o));
}

static int copy_entry(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct owned_entry *o = ctx;

	(void)raw;
	(void)raw_len;
	o->payload = malloc(e->payload_len ? e->payload_len : 1);
	if (o->payload == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	memcpy(o->payload, e->payload, e->payload_len);
	o->e = *e;
	o->e.payload = o->payload;
	o->have = true;
	return 0;
}

static int load_entry(struct ledger *l, uint64_t seq, struct owned_entry *o)
{
	struct ledger_query q = { .from_seq = seq, .to_seq = seq + 1, .limit = 1 };

	memset(o, 0, sizeof(*o));
	return ledger_query(l, &q, copy_entry, o);
}

/* The other half of a contract: for a create, its revocation (if any);
 * for a revoke, its create. From the materialised state (policy_contracts). */
static int contract_pair(struct gw_app *app, const char *cid, bool want_revoke, uint64_t *seq, bool *found)
{
	const char *p[] = { cid };
	void *conn = NULL, *res = NULL;
	int err;

	*found = false;
	GUARD(ehr_db_acquire(gw_app_db(app), &conn));
	err = ehr_db_exec(conn, &res, "SELECT created_seq, revoked_seq FROM policy_contracts WHERE cid = $1",
	                  1, p);
	if (err == 0 && PQntuples(res) == 1 && !PQgetisnull(res, 0, want_revoke ? 1 : 0)) {
		err = ehr_parse_u64(seq, PQgetvalue(res, 0, want_revoke ? 1 : 0), INT64_MAX);
		*found = err == 0;
	}
	PQclear(res);
	ehr_db_release(gw_app_db(app), conn, err < 0);
	return err;
}

/* The Consent of entry e (a contract.create or contract.revoke); NULL with
 * *err 0 when e is neither. */
static json_t *consent_of(struct gw_app *app, const struct owned_entry *e, int *err)
{
	struct owned_entry other = { 0 };
	bool is_revoke = strcmp(e->e.type, POLICY_ENTRY_REVOKE) == 0, found = false;
	json_t *pl = NULL, *out = NULL;
	uint64_t seq = 0;

	*err = 0;
	if (!is_revoke && strcmp(e->e.type, POLICY_ENTRY_CREATE) != 0)
		return NULL;
	if ((*err = ehr_json_parse(&pl, e->e.payload, e->e.payload_len, LEDGER_MAX_PAYLOAD,
	                           EHR_JSON_MAX_DEPTH)) < 0)
		return NULL;
	/* a create's other half is its revocation; a revocation's, its create */
	*err = contract_pair(app, json_string_value(json_object_get(pl, "cid")) ?: "", !is_revoke, &seq,
	                     &found);
	if (*err == 0 && found)
		*err = load_entry(gw_app_ledger(app), seq, &other);
	if (*err == 0 && is_revoke && !other.have)
		*err = ehr_error_set(EHR_ERR_INTERNAL, "a revocation without its contract");
	if (*err == 0) {
		out = is_revoke ? audit_consent_json(&other.e, &e->e, true)
		                : audit_consent_json(&e->e, other.have ? &other.e : NULL, false);
		if (out == NULL)
			*err = ehr_error_set(EHR_ERR_INTERNAL, "cannot render the Consent");
	}
	owned_free(&other);
	json_decref(pl);
	return out;
}

/* ------------------------------------------------------------- read */

void gw__fhir_consent_read(struct gw_req *r, struct gw_audit_query_info *info)
{
	const struct gw_identity *id = gw_req_identity(r);
	struct gw_app *app = gw_req_app(r);
	struct owned_entry e = { 0 };
	json_t *res = NULL;
	uint64_t seq;
	int err = 0;

	(void)info; /* a read by id: no count, no patient filter */
	if (ehr_parse_u64(&seq, gw_req_param(r, "seq"), INT64_MAX - 1) < 0 ||
	    (err = load_entry(gw_app_ledger(app), seq, &e)) < 0 || !e.have ||
	    (id->role == GW_ROLE_PATIENT && strcmp(e.e.subject, id->subject) != 0) ||
	    ((res = consent_of(app, &e, &err)) == NULL && err == 0)) {
		if (err < 0)
			gw_reply_err(r, err);
		else /* another patient's looks exactly like a missing one */
			gw_reply_error(r, 404, "not_found", "no such Consent");
	} else if (res == NULL) {
		gw_reply_err(r, err);
	} else {
		gw__fhir_reply(r, 200, res);
	}
	owned_free(&e);
}

/* ----------------------------------------------------------- search */

struct seq_list {
	uint64_t seq[CONSENT_PAGE_MAX + 1];
	size_t n;
};

static int note_seq(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct seq_list *s = ctx;

	(void)raw;
	(void)raw_len;
	if (s->n < EHR_ARRAY_LEN(s->seq))
		s->seq[s->n++] = e->seq;
	return 0;
}

/* The first count + 1 contract.create and contract.revoke seqs from
 * `from`, merged in seq order into out (one more than a page says there is
 * a next page). */
static int consent_seqs(struct ledger *l, const char *patient, uint64_t from, unsigned count,
                        struct seq_list *out)
{
	struct seq_list *a = calloc(2, sizeof(*a));
	struct ledger_query q = { .from_seq = from, .subject = patient, .limit = count + 1 };
	size_t i = 0, j = 0;
	int err;

	if (a == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	q.type = POLICY_ENTRY_CREATE;
	GUARD_GOTO(ledger_query(l, &q, note_seq, &a[0]));
	q.type = POLICY_ENTRY_REVOKE;
	GUARD_GOTO(ledger_query(l, &q, note_seq, &a[1]));
	out->n = 0;
	while (out->n < count + 1 && (i < a[0].n || j < a[1].n))
		out->seq[out->n++] = (j >= a[1].n || (i < a[0].n && a[0].seq[i] < a[1].seq[j]))
		                             ? a[0].seq[i++]
		                             : a[1].seq[j++];
out:
	free(a);
	return err;
}

void gw__fhir_consent_search(struct gw_req *r, struct gw_audit_query_info *info)
{
	const struct gw_identity *id = gw_req_identity(r);
	struct gw_app *app = gw_req_app(r);
	const char *patient = gw_req_query(r, "patient");
	struct seq_list *s = calloc(1, sizeof(*s));
	json_t *entries = json_array(), *bundle = NULL;
	uint64_t count, cursor;
	char url[512];
	int err = 0;

	if (s == NULL || entries == NULL) {
		err = ehr_error_set(EHR_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (!gw__audit_query_u64(r, "_count", &count, CONSENT_PAGE_DEFAULT, CONSENT_PAGE_MAX) ||
	    !gw__audit_query_u64(r, "_cursor", &cursor, 0, INT64_MAX))
		goto out;
	if (count == 0) {
		gw_reply_error(r, 400, "invalid_request", "_count must be 1..%d", CONSENT_PAGE_MAX);
		goto out;
	}
	if (id->role == GW_ROLE_PATIENT) {
		if (patient && strcmp(patient, id->subject) != 0) {
			gw_reply_error(r, 403, "forbidden", "a patient reads its own Consents only");
			goto out;
		}
		patient = id->subject;
	}
	info->subject = patient;
	GUARD_GOTO(consent_seqs(gw_app_ledger(app), patient, cursor, (unsigned)count, s));
	for (size_t i = 0; i < s->n && i < count; i++) {
		struct owned_entry e = { 0 };
		json_t *res = NULL;
		if ((err = load_entry(gw_app_ledger(app), s->seq[i], &e)) == 0 && e.have)
			res = consent_of(app, &e, &err);
		owned_free(&e);
		if (err < 0)
			goto out;
		if (res)
			json_array_append_new(entries, json_pack("{s:o, s:{s:s}}", "resource", res, "search",
			                                         "mode", "match"));
	}
	/* patient passed the id validator: base64url, nothing to escape */
	if (patient)
		GUARD_GOTO(ehr_fmt(url, sizeof(url), "/fhir/Consent?patient=%s&_count=%llu", patient,
		                   (unsigned long long)count));
	else
		GUARD_GOTO(ehr_fmt(url, sizeof(url), "/fhir/Consent?_count=%llu", (unsigned long long)count));
	bundle = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "resourceType", "Bundle", "type", "searchset",
	                   "link", "relation", "self", "url", url);
	ENSURE_GOTO(bundle != NULL, EHR_ERR_NOMEM);
	if (s->n > count) {
		char next[600];
		GUARD_GOTO(ehr_fmt(next, sizeof(next), "%s&_cursor=%llu", url,
		                   (unsigned long long)s->seq[count]));
		json_array_append_new(json_object_get(bundle, "link"),
		                      json_pack("{s:s, s:s}", "relation", "next", "url", next));
	}
	if (json_array_size(entries) > 0)
		json_object_set(bundle, "entry", entries);
	info->count = (long long)json_array_size(entries);
	gw__fhir_reply(r, 200, bundle);
	bundle = NULL;
out:
	if (err < 0)
		gw_reply_err(r, err);
	json_decref(bundle);
	json_decref(entries);
	free(s);
}
