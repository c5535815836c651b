/*
 * routes_audit.c - patient contracts, the patient's access log, the
 * auditor's query API and the ledger proof endpoints (docs/CONTRACTS.md §6,
 * docs/AUDIT.md).
 *
 * Every handler here is blocking (Postgres, ledger appends). Roles are
 * enforced by the core before a handler runs; handlers add the
 * object-level rule: a patient only ever sees entries whose subject is the
 * patient's own pseudonym.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "audit/audit.h"
#include "common/db.h"
#include "policy/policy.h"
#include "gateway/gateway.h"
#include "gateway/gateway_internal.h"
#include "gateway/routes_audit_internal.h"

#define AUDIT_MAX_BODY (32 * 1024)
#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000

/* ------------------------------------------------------------- helpers */

/* The one error table (gateway/errors.c), except that on these routes a
 * signature that does not verify is the caller's document: 422
 * `bad_signature` (docs/CONTRACTS.md §6). */
static void reply_err(struct gw_req *r, int err)
{
	if (err == EHR_ERR_TAMPER) {
		gw_reply_error(r, 422, "bad_signature", "%s",
		               *ehr_error_msg() ? ehr_error_msg() : "signature does not verify");
		return;
	}
	gw_reply_err(r, err);
}

static json_t *body_json(struct gw_req *r)
{
	size_t len = 0;
	const uint8_t *b = gw_req_body(r, &len);
	json_t *j = NULL;
	int err = b ? ehr_json_parse(&j, b, len, AUDIT_MAX_BODY, 8) : EHR_ERR_INVAL;

	if (err < 0) {
		gw_reply_err(r, ehr_error_wrap(err, "body must be a JSON object"));
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		gw_reply_error(r, 400, "invalid_request", "body must be a JSON object");
		return NULL;
	}
	return j;
}

/* Optional unsigned query parameter; replies 400 and returns false if bad. */
bool gw__audit_query_u64(struct gw_req *r, const char *name, uint64_t *out, uint64_t dflt, uint64_t max)
{
	const char *s = gw_req_query(r, name);

	*out = dflt;
	if (s == NULL)
		return true;
	if (ehr_parse_u64(out, s, max) < 0) {
		gw_reply_error(r, 400, "invalid_request", "query parameter '%s' must be an integer 0..%llu",
		               name, (unsigned long long)max);
		return false;
	}
	return true;
}

/* The patient's enrolled device key, which must be the key the access
 * token is bound to (identity jkt). */
static int device_jwk(void *conn, const struct gw_identity *id, json_t **out)
{
	const char *p[] = { id->subject, id->jkt };
	void *res = NULL;
	int err;

	*out = NULL;
	GUARD(ehr_db_exec(conn, &res,
	                  "SELECT device_jwk FROM auth_patients WHERE patient_id = $1 AND device_jkt = $2 "
	                  "AND revoked_at IS NULL AND device_jwk IS NOT NULL",
	                  2, p));
	if (PQntuples(res) != 1) {
		err = ehr_error_set(EHR_ERR_FORBIDDEN, "no enrolled device key for this token");
	} else {
		const char *t = PQgetvalue(res, 0, 0);
		err = ehr_json_parse(out, t, strlen(t), 4096, 4);
	}
	PQclear(res);
	return err;
}

/* ----------------------------------------------------- patient contracts */

static void h_contract_create(struct gw_req *r)
{
	const struct gw_identity *id = gw_req_identity(r);
	struct gw_app *app = gw_req_app(r);
	json_t *body = body_json(r), *jwk = NULL;
	struct ledger_receipt rcpt;
	char cid[POLICY_CID_MAX];
	void *conn = NULL;
	int err;

	if (body == NULL)
		return;
	if ((err = ehr_db_acquire(gw_app_db(app), &conn)) < 0)
		goto out;
	if ((err = device_jwk(conn, id, &jwk)) < 0)
		goto out;
	err = policy_contract_create(conn, gw_app_ledger(app), id->subject, jwk, body, cid, &rcpt);
out:
	if (conn)
		ehr_db_release(gw_app_db(app), conn, err == EHR_ERR_DB || err == EHR_ERR_UNAVAILABLE);
	if (err < 0)
		reply_err(r, err);
	else
		gw_reply_json(r, 201,
		              json_pack("{s:s, s:I, s:o*}", "cid", cid, "seq", (json_int_t)rcpt.seq,
		                        "receipt", gw_receipt_attach(r, rcpt.seq)));
	json_decref(jwk);
	json_decref(body);
}

static void h_contract_list(struct gw_req *r)
{
	const struct gw_identity *id = gw_req_identity(r);
	struct gw_app *app = gw_req_app(r);
	json_t *list = NULL;
	void *conn = NULL;
	int err;

	if ((err = ehr_db_acquire(gw_app_db(app), &conn)) < 0) {
		reply_err(r, err);
		return;
	}
	err = policy_store_list_json(conn, id->subject, ehr_now_ms() / 1000, &list);
	ehr_db_release(gw_app_db(app), conn, err == EHR_ERR_DB || err == EHR_ERR_UNAVAILABLE);
	if (err < 0)
		reply_err(r, err);
	else
		gw_reply_json(r, 200, json_pack("{s:o}", "contracts", list));
}

static void h_contract_revoke(struct gw_req *r)
{
	const struct gw_identity *id = gw_req_identity(r);
	struct gw_app *app = gw_req_app(r);
	const char *cid = gw_req_param(r, "cid");
	json_t *body = body_json(r), *jwk = NULL;
	struct ledger_receipt rcpt;
	void *conn = NULL;
	int err;

	if (body == NULL)
		return;
	if ((err = ehr_db_acquire(gw_app_db(app), &conn)) < 0)
		goto out;
	if ((err = device_jwk(conn, id, &jwk)) < 0)
		goto out;
	err = policy_contract_revoke(conn, gw_app_ledger(app), id->subject, jwk, cid, body, &rcpt);
out:
	if (conn)
		ehr_db_release(gw_app_db(app), conn, err == EHR_ERR_DB || err == EHR_ERR_UNAVAILABLE);
	if (err < 0)
		reply_err(r, err);
	else
		gw_reply_json(r, 200,
		              json_pack("{s:s, s:I, s:o*}", "cid", cid, "seq", (json_int_t)rcpt.seq,
		                        "receipt", gw_receipt_attach(r, rcpt.seq)));
	json_decref(jwk);
	json_decref(body);
}

/* ------------------------------------------------------ reading entries */

/* FHIR R4 AuditEvent of one entry: the audit module's mapping (audit/audit.h,
 * docs/AUDIT.md §1), so the query, the FHIR search and the ATNA feed agree. */
static json_t *fhir_audit_event(const struct ledger_entry *e, const char *origin)
{
	struct audit_event ev;
	json_t *j;

	if (audit_event_from_entry(&ev, e, origin) < 0)
		return NULL;
	j = audit_fhir_json(&ev);
	audit_event_clear(&ev);
	return j;
}

static const char *const outcome_names[] = { "success", "failure", "error", "integrity" };

/* Copy payload member `from` to `to` when it is present and not null. */
static int copy_member(json_t *item, const char *to, const json_t *payload, const char *from)
{
	json_t *v = json_object_get(payload, from);

	if (v == NULL || json_is_null(v))
		return 0;
	return json_object_set(item, to, v) == 0 ? 0 : ehr_error_set(EHR_ERR_NOMEM, "out of memory");
}

/*
 * One event of a patient's stream (docs/AUDIT.md §10): what happened, who
 * did it, to which record, how it ended (the AuditEvent outcome rule of
 * audit/, so the stream, the query and the ATNA feed agree), whether it was
 * break-glass, where its receipt is, and the entry's bytes (what the
 * receipt proves, so the client checks the fields it shows against them).
 * Optional members only when the entry has them: decision, reason, action,
 * cid, justification (break-glass), jkt (device-key events: key
 * transparency), kind.
 */
static json_t *me_event(const struct ledger_entry *e, const json_t *payload, const char *when,
                        const char *origin, const char *entry_b64)
{
	struct audit_event ev;
	const json_t *rec = json_object_get(payload, "record_id");
	const char *basis = json_string_value(json_object_get(payload, "basis"));
	char receipt[64];
	unsigned oc;
	json_t *item;
	int err = audit_event_from_entry(&ev, e, origin);

	oc = err < 0 ? EHR_ARRAY_LEN(outcome_names) : (unsigned)ev.outcome / 4;
	audit_event_clear(&ev);
	if (err < 0 || oc >= EHR_ARRAY_LEN(outcome_names) ||
	    ehr_fmt(receipt, sizeof(receipt), "/v1/receipts/%llu", (unsigned long long)e->seq) < 0)
		return NULL;
	if (!json_is_string(rec))
		rec = json_object_get(payload, "record");
	item = json_pack("{s:I, s:s, s:s, s:s, s:O?, s:s, s:b, s:s, s:s}", "index", (json_int_t)e->seq,
	                 "type", e->type, "time", when, "actor", e->actor, "record",
	                 json_is_string(rec) ? rec : NULL, "outcome", outcome_names[oc], "break_glass",
	                 json_is_true(json_object_get(payload, "break_glass")) ||
	                         (basis && strcmp(basis, "allow.break_glass") == 0),
	                 "receipt", receipt, "entry", entry_b64);
	if (item == NULL || copy_member(item, "decision", payload, "decision") < 0 ||
	    copy_member(item, "reason", payload, "reason") < 0 ||
	    copy_member(item, "action", payload, "action") < 0 ||
	    copy_member(item, "cid", payload, "cid") < 0 ||
	    copy_member(item, "justification", payload, "justification") < 0 ||
	    copy_member(item, "jkt", payload, "jkt") < 0 || copy_member(item, "kind", payload, "kind") < 0) {
		json_decref(item);
		return NULL;
	}
	return item;
}

/* A ledger_query callback (routes_audit_internal.h). */
int gw__audit_collect_entry(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct gw__audit_collect *c = ctx;
	json_t *payload = NULL, *item = NULL;
	struct ehr_buf b64 = EHR_BUF_INIT(2 * LEDGER_MAX_PAYLOAD + 1024);
	char when[32];
	int err;

	GUARD_GOTO(
	        ehr_json_parse(&payload, e->payload, e->payload_len, LEDGER_MAX_PAYLOAD, EHR_JSON_MAX_DEPTH));
	ehr_time_rfc3339(when, e->ts_ms);
	if (c->fhir) {
		item = json_pack("{s:o}", "resource", fhir_audit_event(e, c->origin));
	} else if (c->me_stream) {
		GUARD_GOTO(ehr_b64_encode(&b64, raw, raw_len));
		item = me_event(e, payload, when, c->origin, ehr_buf_cstr(&b64));
	} else if (c->access_log) {
		item = json_pack("{s:I, s:s, s:s, s:O?, s:O?, s:O?, s:O?, s:O?, s:b}", "seq",
		                 (json_int_t)e->seq, "time", when, "requester", e->actor, "decision",
		                 json_object_get(payload, "decision"), "reason",
		                 json_object_get(payload, "reason"), "cid", json_object_get(payload, "cid"),
		                 "action", json_object_get(payload, "action"), "record",
		                 json_object_get(payload, "record"), "break_glass",
		                 json_is_true(json_object_get(payload, "break_glass")));
	} else {
		GUARD_GOTO(ehr_b64_encode(&b64, raw, raw_len));
		item = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:I, s:O, s:s}", "seq", (json_int_t)e->seq,
		                 "ts_ms", (json_int_t)e->ts_ms, "time", when, "type", e->type, "actor",
		                 e->actor, "subject", e->subject, "block_height", (json_int_t)e->block_height,
		                 "payload", payload, "entry", ehr_buf_cstr(&b64));
	}
	ENSURE_GOTO(item != NULL && json_array_append_new(c->items, item) == 0, EHR_ERR_NOMEM);
	item = NULL;
	c->last_seq = e->seq;
	c->n++;
out:
	json_decref(item);
	json_decref(payload);
	ehr_buf_free(&b64);
	return err;
}

/* A time bound becomes a seq bound through the (ts_ms, seq) index of
 * migration 0041, so a time-filtered page never scans from seq 0. */
int gw__audit_seq_from_time(struct gw_app *app, int64_t since_ms, uint64_t *seq)
{
	char ts[24];
	const char *p[] = { ts };
	void *conn = NULL, *res = NULL;
	int err;

	GUARD(ehr_fmt(ts, sizeof(ts), "%lld", (long long)since_ms));
	GUARD(ehr_db_acquire(gw_app_db(app), &conn));
	err = ehr_db_exec(
	        conn, &res,
	        "SELECT seq FROM ledger_entries WHERE ts_ms >= $1::bigint ORDER BY ts_ms, seq LIMIT 1", 1, p);
	if (err == 0) {
		if (PQntuples(res) == 1)
			err = ehr_parse_u64(seq, PQgetvalue(res, 0, 0), UINT64_MAX);
		else
			*seq = UINT64_MAX; /* nothing that late */
	}
	PQclear(res);
	ehr_db_release(gw_app_db(app), conn, err < 0);
	return err;
}

static bool accepts_fhir(struct gw_req *r)
{
	const char *a = gw_req_header(r, "Accept");
	return a && strstr(a, "application/fhir+json") != NULL;
}

/* A query value, percent-encoded (RFC 3986 unreserved characters kept). */
int gw__url_encode(struct ehr_buf *out, const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~')
			GUARD(ehr_buf_append_u8(out, *p));
		else
			GUARD(ehr_buf_printf(out, "%%%02X", *p));
	}
	return 0;
}

/* The same query with cursor=next, as a path (FHIR Bundle.link "next"). */
static int next_url(struct ehr_buf *out, struct gw_req *r, const char *next)
{
	static const char *const keys[] = { "type",  "actor",    "subject", "since",
		                            "until", "from_seq", "to_seq",  "limit" };

	GUARD(ehr_buf_append_str(out, "/v1/audit/entries?cursor="));
	GUARD(ehr_buf_append_str(out, next));
	for (size_t i = 0; i < EHR_ARRAY_LEN(keys); i++) {
		const char *v = gw_req_query(r, keys[i]);
		if (v == NULL)
			continue;
		GUARD(ehr_buf_printf(out, "&%s=", keys[i]));
		GUARD(gw__url_encode(out, v));
	}
	return 0;
}

/*
 * GET /v1/audit/entries?type=&actor=&subject=&since=&until=&from_seq=&to_seq=&limit=&cursor=
 * since/until: Unix milliseconds (until exclusive); cursor: the opaque
 * next_cursor of the previous page (today: a decimal seq).
 */
static void list_entries(struct gw_req *r, bool access_log, struct gw_audit_query_info *info)
{
	const struct gw_identity *id = gw_req_identity(r);
	struct gw_app *app = gw_req_app(r);
	struct ledger_query q;
	struct gw__audit_collect c;
	uint64_t limit, from, to, since, until, cursor;
	char next[24];
	json_t *body;
	int err;

	memset(&q, 0, sizeof(q));
	memset(&c, 0, sizeof(c));
	if (!gw__audit_query_u64(r, "limit", &limit, AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX) ||
	    !gw__audit_query_u64(r, "from_seq", &from, 0, INT64_MAX) ||
	    !gw__audit_query_u64(r, "to_seq", &to, 0, INT64_MAX) ||
	    !gw__audit_query_u64(r, "since", &since, 0, INT64_MAX) ||
	    !gw__audit_query_u64(r, "until", &until, 0, INT64_MAX) ||
	    !gw__audit_query_u64(r, "cursor", &cursor, 0, INT64_MAX))
		return;
	if (limit == 0)
		limit = AUDIT_PAGE_DEFAULT;
	q.from_seq = from > cursor ? from : cursor;
	q.to_seq = to;
	q.since_ms = (int64_t)since;
	q.until_ms = (int64_t)until;
	q.limit = (unsigned)limit;
	if (access_log) {
		q.type = POLICY_ENTRY_DECISION;
		q.subject = id->subject;
	} else {
		q.type = gw_req_query(r, "type");
		q.actor = gw_req_query(r, "actor");
		q.subject = gw_req_query(r, "subject");
		c.fhir = accepts_fhir(r);
	}
	info->subject = q.subject;
	if (since > 0) {
		uint64_t s;
		if ((err = gw__audit_seq_from_time(app, (int64_t)since, &s)) < 0) {
			reply_err(r, err);
			return;
		}
		if (s > q.from_seq)
			q.from_seq = s;
	}
	c.items = json_array();
	c.access_log = access_log;
	c.origin = ledger_origin(gw_app_ledger(app));
	if (c.items == NULL) {
		reply_err(r, ehr_error_set(EHR_ERR_NOMEM, "out of memory"));
		return;
	}
	if (q.from_seq == UINT64_MAX || (q.to_seq && q.from_seq >= q.to_seq))
		err = 0;
	else
		err = ledger_query(gw_app_ledger(app), &q, gw__audit_collect_entry, &c);
	if (err < 0) {
		json_decref(c.items);
		reply_err(r, err);
		return;
	}
	info->count = c.n;
	if ((err = ehr_fmt(next, sizeof(next), "%llu", (unsigned long long)(c.last_seq + 1))) < 0) {
		json_decref(c.items);
		reply_err(r, err);
		return;
	}
	if (c.fhir) {
		body = json_pack("{s:s, s:s, s:o}", "resourceType", "Bundle", "type", "searchset", "entry",
		                 c.items);
		char *text;
		if (body && c.n == limit) {
			struct ehr_buf url = EHR_BUF_INIT(4096);
			if (next_url(&url, r, next) == 0)
				json_object_set_new(body, "link",
				                    json_pack("[{s:s, s:s}]", "relation", "next", "url",
				                              ehr_buf_cstr(&url)));
			ehr_buf_free(&url);
		}
		text = body ? json_dumps(body, JSON_COMPACT) : NULL;
		json_decref(body);
		if (text == NULL) {
			reply_err(r, ehr_error_set(EHR_ERR_NOMEM, "cannot encode the reply"));
			return;
		}
		gw_reply_bytes(r, 200, "application/fhir+json", text, strlen(text));
		free(text);
		return;
	} else {
		body = json_pack("{s:o, s:o}", "entries", c.items, "next_cursor",
		                 c.n == limit ? json_string(next) : json_null());
	}
	gw_reply_json(r, 200, body);
}

static void audit_entries(struct gw_req *r, struct gw_audit_query_info *info)
{
	list_entries(r, false, info);
}

static void me_access_log(struct gw_req *r, struct gw_audit_query_info *info)
{
	list_entries(r, true, info);
}

/* ----------------------------------------------------------- proofs */

static void checkpoint(struct gw_req *r, struct gw_audit_query_info *info)
{
	struct ehr_buf note = EHR_BUF_INIT(4096);
	uint64_t size;
	int err;

	(void)info; /* not a listing, no patient filter */

	if (!gw__audit_query_u64(r, "size", &size, 0, INT64_MAX))
		return;
	/* No size: the published checkpoint (with witnesses: the newest one
	 * that reached quorum, cosignature lines included). A size: the log's
	 * own signed note for that block, cosigned or not. */
	if (size == 0)
		err = ledger_published(gw_app_ledger(gw_req_app(r)), &note, &size);
	else
		err = ledger_checkpoint(gw_app_ledger(gw_req_app(r)), size, &note);
	if (err < 0)
		reply_err(r, err);
	else
		gw_reply_bytes(r, 200, "text/plain; charset=utf-8", note.data, note.len);
	ehr_buf_free(&note);
}

/* The size of the published checkpoint: the proofs' default tree size. */
static int published_size(struct ledger *l, uint64_t *size)
{
	struct ehr_buf note = EHR_BUF_INIT(LEDGER_NOTE_MAX);
	int err = ledger_published(l, &note, size);

	ehr_buf_free(&note);
	return err;
}

struct owner_check {
	const char *subject;
	bool own;
};

static int owner_cb(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct owner_check *o = ctx;
	(void)raw;
	(void)raw_len;
	o->own = strcmp(e->subject, o->subject) == 0;
	return 0;
}

static void inclusion(struct gw_req *r, struct gw_audit_query_info *info)
{
	const struct gw_identity *id = gw_req_identity(r);
	struct ledger *l = gw_app_ledger(gw_req_app(r));
	uint8_t path[LEDGER_MAX_PROOF][LEDGER_HASH_LEN];
	size_t n = 0;
	uint64_t index, size;
	int err;

	(void)info; /* not a listing, no patient filter */

	if (gw_req_query(r, "index") == NULL) {
		gw_reply_error(r, 400, "invalid_request", "index is required");
		return;
	}
	if (!gw__audit_query_u64(r, "index", &index, 0, INT64_MAX) ||
	    !gw__audit_query_u64(r, "size", &size, 0, INT64_MAX))
		return;
	if (gw_req_query(r, "size") == NULL && (err = published_size(l, &size)) < 0) {
		reply_err(r, err);
		return;
	}
	if (id->role == GW_ROLE_PATIENT) {
		/* Patients may prove their own entries only; others' look absent. */
		struct owner_check o = { id->subject, false };
		struct ledger_query q = { .from_seq = index, .to_seq = index + 1, .limit = 1 };
		if ((err = ledger_query(l, &q, owner_cb, &o)) < 0) {
			reply_err(r, err);
			return;
		}
		if (!o.own) {
			gw_reply_error(r, 404, "not_found", "no such entry");
			return;
		}
	}
	if (index >= size) {
		gw_reply_error(r, 400, "invalid_request", "index must be below size");
		return;
	}
	err = ledger_prove_inclusion(l, index, size, path, &n);
	if (err < 0)
		reply_err(r, err);
	else
		gw_reply_json(
		        r, 200,
		        ledger_proof_json(size, index, false, (const uint8_t(*)[LEDGER_HASH_LEN])path, n));
}

static void consistency(struct gw_req *r, struct gw_audit_query_info *info)
{
	struct ledger *l = gw_app_ledger(gw_req_app(r));
	uint8_t proof[LEDGER_MAX_PROOF][LEDGER_HASH_LEN];
	size_t n = 0;
	uint64_t from, to;
	int err;

	(void)info; /* not a listing, no patient filter */

	if (gw_req_query(r, "from") == NULL) {
		gw_reply_error(r, 400, "invalid_request", "from is required");
		return;
	}
	if (!gw__audit_query_u64(r, "from", &from, 0, INT64_MAX) ||
	    !gw__audit_query_u64(r, "to", &to, 0, INT64_MAX))
		return;
	if (gw_req_query(r, "to") == NULL && (err = published_size(l, &to)) < 0) {
		reply_err(r, err);
		return;
	}
	if (from == 0 || from > to) {
		gw_reply_error(r, 400, "invalid_request", "need 0 < from <= to");
		return;
	}
	err = ledger_prove_consistency(l, from, to, proof, &n);
	if (err < 0)
		reply_err(r, err);
	else
		gw_reply_json(r, 200,
		              ledger_proof_json(to, from, true, (const uint8_t(*)[LEDGER_HASH_LEN])proof, n));
}

/* ------------------------------------------------------------- table */

/* Every read of the audit trail is an audit.query entry (audit_query.c). */
static void h_audit_entries(struct gw_req *r)
{
	gw_audit_query_run(r, audit_entries);
}

static void h_access_log(struct gw_req *r)
{
	gw_audit_query_run(r, me_access_log);
}

static void h_audit_stream(struct gw_req *r)
{
	gw_audit_query_run(r, gw__audit_stream);
}

static void h_me_access_stream(struct gw_req *r)
{
	gw_audit_query_run(r, gw__me_access_stream);
}

static void h_checkpoint(struct gw_req *r)
{
	gw_audit_query_run(r, checkpoint);
}

static void h_inclusion(struct gw_req *r)
{
	gw_audit_query_run(r, inclusion);
}

static void h_consistency(struct gw_req *r)
{
	gw_audit_query_run(r, consistency);
}

#define PAT GW_ROLE_PATIENT
#define AUD GW_ROLE_AUDITOR
/* the audit reads: checked and recorded by gw_audit_query_run */
#define AQ (GW_BLOCKING | GW_CHECK_IN_HANDLER)
/* list_entries' paging and range parameters (docs/AUDIT.md §1) */
#define PAGE_QUERY "since until from_seq to_seq limit cursor"

const struct gw_route gw_routes_audit[] = {
	{ "POST", "/v1/me/contracts", "me.contracts.create", PAT, GW_BLOCKING, h_contract_create, NULL },
	{ "GET", "/v1/me/contracts", "me.contracts.list", PAT, GW_BLOCKING, h_contract_list, NULL },
	{ "POST", "/v1/me/contracts/{cid}/revoke", "me.contracts.revoke", PAT, GW_BLOCKING, h_contract_revoke,
	  NULL },
	{ "GET", "/v1/me/access-log", "me.access_log", PAT, AQ, h_access_log, PAGE_QUERY },
	{ "GET", "/v1/me/access/stream", "me.access_stream", PAT, AQ, h_me_access_stream,
	  "from heartbeat buffer" },
	{ "GET", "/v1/audit/entries", "audit.entries", AUD, AQ, h_audit_entries,
	  "type actor subject " PAGE_QUERY },
	{ "GET", "/v1/audit/stream", "audit.stream", AUD, AQ, h_audit_stream, "since heartbeat buffer" },
	{ "GET", "/v1/ledger/checkpoint", "ledger.checkpoint", AUD | PAT, AQ, h_checkpoint, "size" },
	{ "GET", "/v1/ledger/proof/inclusion", "ledger.proof.inclusion", AUD | PAT, AQ, h_inclusion,
	  "index size" },
	{ "GET", "/v1/ledger/proof/consistency", "ledger.proof.consistency", AUD | PAT, AQ, h_consistency,
	  "from to" },
};
const size_t gw_routes_audit_len = EHR_ARRAY_LEN(gw_routes_audit);
