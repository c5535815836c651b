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

#include "common/db.h"
#include "policy/policy.h"
#include "gateway/gateway.h"

#define AUDIT_MAX_BODY (32 * 1024)
#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000
#define EHR_XSTR(x) #x
#define EHR_STR(x) EHR_XSTR(x)

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
static bool query_u64(struct gw_req *r, const char *name, uint64_t *out, uint64_t dflt, uint64_t max)
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
		gw_reply_json(r, 201, json_pack("{s:s, s:I}", "cid", cid, "seq", (json_int_t)rcpt.seq));
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
		gw_reply_json(r, 200, json_pack("{s:s, s:I}", "cid", cid, "seq", (json_int_t)rcpt.seq));
	json_decref(jwk);
	json_decref(body);
}

/* ------------------------------------------------------ reading entries */

struct collect {
	json_t *items;
	bool fhir;
	bool access_log;
	const char *origin;
	uint64_t last_seq;
	unsigned n;
	int err;
};

static const char *fhir_action(const char *type, const json_t *payload)
{
	const char *a = json_string_value(json_object_get(payload, "action"));

	if (a && strcmp(a, "read") == 0)
		return "R";
	if (a && strcmp(a, "append") == 0)
		return "C";
	if (strcmp(type, POLICY_ENTRY_CREATE) == 0 || strstr(type, "store") || strstr(type, "create") ||
	    strstr(type, "register") || strstr(type, "enrol"))
		return "C";
	if (strcmp(type, POLICY_ENTRY_REVOKE) == 0 || strstr(type, "revoke"))
		return "D";
	if (strstr(type, "read"))
		return "R";
	return "E";
}

/* FHIR R4 AuditEvent (http://hl7.org/fhir/R4/auditevent.html) for one
 * ledger entry. outcome: 0 success, 4 minor failure (a denial or a
 * refused authentication). */
static json_t *fhir_audit_event(const struct ledger_entry *e, const json_t *payload, const char *origin)
{
	char when[32], id[24];
	const char *decision = json_string_value(json_object_get(payload, "decision"));
	const json_t *success = json_object_get(payload, "success");
	bool failed = (decision && strcmp(decision, "deny") == 0) || json_is_false(success);
	const char *record = json_string_value(json_object_get(payload, "record"));
	json_t *ev, *entity;

	ehr_time_rfc3339(when, e->ts_ms);
	snprintf(id, sizeof(id), "%llu", (unsigned long long)e->seq);
	entity = json_pack("[{s:{s:{s:s, s:s}}, s:{s:s, s:s}}]", "what", "identifier", "system",
	                   "urn:ehrgate:subject", "value", e->subject, "type", "system",
	                   "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code", "1");
	if (entity && record)
		json_array_append_new(
		        entity,
		        json_pack("{s:{s:{s:s, s:s}}, s:{s:s, s:s}}", "what", "identifier", "system",
		                  "urn:ehrgate:record", "value", record, "type", "system",
		                  "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code", "2"));
	ev = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:s, s:s, s:[{s:{s:{s:s, s:s}}, s:b}], "
	               "s:{s:{s:s}, s:[{s:s, s:s}]}, s:o}",
	               "resourceType", "AuditEvent", "id", id, "type", "system",
	               "urn:ehrgate:ledger-entry-type", "code", e->type, "display", e->type, "action",
	               fhir_action(e->type, payload), "recorded", when, "outcome", failed ? "4" : "0",
	               "outcomeDesc",
	               json_string_value(json_object_get(payload, "reason"))
	                       ? json_string_value(json_object_get(payload, "reason"))
	                       : (failed ? "failure" : "success"),
	               "agent", "who", "identifier", "system", "urn:ehrgate:actor", "value", e->actor,
	               "requestor", 1, "source", "observer", "display", origin, "type", "system",
	               "http://terminology.hl7.org/CodeSystem/security-source-type", "code", "4", "entity",
	               entity ? entity : json_array());
	if (ev && json_is_true(json_object_get(payload, "break_glass")))
		json_object_set_new(ev, "purposeOfEvent",
		                    json_pack("[{s:[{s:s, s:s, s:s}]}]", "coding", "system",
		                              "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code",
		                              "ETREAT", "display", "Emergency Treatment"));
	return ev;
}

static int collect_entry(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct collect *c = ctx;
	json_t *payload = NULL, *item = NULL;
	struct ehr_buf b64 = EHR_BUF_INIT(2 * LEDGER_MAX_PAYLOAD + 1024);
	char when[32];
	int err;

	GUARD_GOTO(
	        ehr_json_parse(&payload, e->payload, e->payload_len, LEDGER_MAX_PAYLOAD, EHR_JSON_MAX_DEPTH));
	ehr_time_rfc3339(when, e->ts_ms);
	if (c->fhir) {
		item = json_pack("{s:o}", "resource", fhir_audit_event(e, payload, c->origin));
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
static int seq_from_time(struct gw_app *app, int64_t since_ms, uint64_t *seq)
{
	char ts[24];
	const char *p[] = { ts };
	void *conn = NULL, *res = NULL;
	int err;

	snprintf(ts, sizeof(ts), "%lld", (long long)since_ms);
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
		for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
			if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~')
				GUARD(ehr_buf_append_u8(out, *p));
			else
				GUARD(ehr_buf_printf(out, "%%%02X", *p));
		}
	}
	return 0;
}

/*
 * GET /v1/audit/entries?type=&actor=&subject=&since=&until=&from_seq=&to_seq=&limit=&cursor=
 * since/until: Unix milliseconds (until exclusive); cursor: the opaque
 * next_cursor of the previous page (today: a decimal seq).
 */
static void list_entries(struct gw_req *r, bool access_log)
{
	const struct gw_identity *id = gw_req_identity(r);
	struct gw_app *app = gw_req_app(r);
	struct ledger_query q;
	struct collect c;
	uint64_t limit, from, to, since, until, cursor;
	char next[24];
	json_t *body;
	int err;

	memset(&q, 0, sizeof(q));
	memset(&c, 0, sizeof(c));
	if (!query_u64(r, "limit", &limit, AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX) ||
	    !query_u64(r, "from_seq", &from, 0, INT64_MAX) || !query_u64(r, "to_seq", &to, 0, INT64_MAX) ||
	    !query_u64(r, "since", &since, 0, INT64_MAX) || !query_u64(r, "until", &until, 0, INT64_MAX) ||
	    !query_u64(r, "cursor", &cursor, 0, INT64_MAX))
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
	if (since > 0) {
		uint64_t s;
		if ((err = seq_from_time(app, (int64_t)since, &s)) < 0) {
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
		err = ledger_query(gw_app_ledger(app), &q, collect_entry, &c);
	if (err < 0) {
		json_decref(c.items);
		reply_err(r, err);
		return;
	}
	snprintf(next, sizeof(next), "%llu", (unsigned long long)(c.last_seq + 1));
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

static void h_audit_entries(struct gw_req *r)
{
	list_entries(r, false);
}

static void h_access_log(struct gw_req *r)
{
	list_entries(r, true);
}

/* ----------------------------------------------------------- proofs */

static void h_checkpoint(struct gw_req *r)
{
	struct ehr_buf note = EHR_BUF_INIT(4096);
	uint64_t size;
	int err;

	if (!query_u64(r, "size", &size, 0, INT64_MAX))
		return;
	err = ledger_checkpoint(gw_app_ledger(gw_req_app(r)), size, &note);
	if (err < 0)
		reply_err(r, err);
	else
		gw_reply_bytes(r, 200, "text/plain; charset=utf-8", note.data, note.len);
	ehr_buf_free(&note);
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

static void h_inclusion(struct gw_req *r)
{
	const struct gw_identity *id = gw_req_identity(r);
	struct ledger *l = gw_app_ledger(gw_req_app(r));
	uint8_t path[LEDGER_MAX_PROOF][LEDGER_HASH_LEN];
	size_t n = 0;
	uint64_t index, size;
	int err;

	if (gw_req_query(r, "index") == NULL || gw_req_query(r, "size") == NULL) {
		gw_reply_error(r, 400, "invalid_request", "index and size are required");
		return;
	}
	if (!query_u64(r, "index", &index, 0, INT64_MAX) || !query_u64(r, "size", &size, 0, INT64_MAX))
		return;
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

static void h_consistency(struct gw_req *r)
{
	struct ledger *l = gw_app_ledger(gw_req_app(r));
	uint8_t proof[LEDGER_MAX_PROOF][LEDGER_HASH_LEN];
	size_t n = 0;
	uint64_t from, to;
	int err;

	if (gw_req_query(r, "from") == NULL || gw_req_query(r, "to") == NULL) {
		gw_reply_error(r, 400, "invalid_request", "from and to are required");
		return;
	}
	if (!query_u64(r, "from", &from, 0, INT64_MAX) || !query_u64(r, "to", &to, 0, INT64_MAX))
		return;
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

/* --------------------------------------------------------- live stream */

/*
 * GET /v1/audit/stream: Server-Sent Events, one event per ledger entry,
 * `id` = seq (docs/AUDIT.md §3). Each stream has its own Postgres
 * connection, driven asynchronously from the connection's event loop:
 * it LISTENs on the channel the ledger NOTIFYs after every commit (by any
 * gateway instance), and on a notification fetches the entries past the
 * last one sent. The loop never blocks on it. A client that does not read
 * fast enough is cut off once more than `buffer` bytes are queued for it,
 * with a final `overflow` event naming the id to resume after.
 */
#define AUDIT_LEDGER_CHANNEL "ehrgate_ledger" /* contracts/ledger_store.c NOTIFYs it, payload = last seq */
#define SSE_BATCH 100
#define SSE_BUFFER_DEFAULT (1u << 20)
/* Each stream holds one Postgres connection: bound them per process. */
#define SSE_MAX_STREAMS 64

static atomic_int sse_open;

struct sse {
	struct gw_stream *s;
	PGconn *pg;
	struct event *pg_ev, *hb_ev, *retry_ev;
	uint64_t next; /* first seq not yet sent */
	bool have_sent;
	bool busy, dirty, more;
	unsigned rows; /* rows of the batch in progress */
	size_t limit;  /* backlog bound, bytes */
	unsigned heartbeat_s;
	bool ended;
};

static void sse_free(struct sse *x)
{
	if (x == NULL)
		return;
	atomic_fetch_sub(&sse_open, 1);
	if (x->pg_ev)
		event_free(x->pg_ev);
	if (x->hb_ev)
		event_free(x->hb_ev);
	if (x->retry_ev)
		event_free(x->retry_ev);
	if (x->pg)
		PQfinish(x->pg);
	free(x);
}

static void sse_end(struct sse *x)
{
	if (x->ended)
		return;
	x->ended = true;
	gw_stream_end(x->s);
	sse_free(x);
}

static void sse_on_close(struct gw_stream *s, void *ud)
{
	(void)s;
	sse_end(ud);
}

static int sse_send(struct sse *x, const char *text, size_t len)
{
	return gw_stream_write(x->s, text, len);
}

static bool sse_fetch(struct sse *x)
{
	char from[24];
	const char *p[] = { from };

	snprintf(from, sizeof(from), "%llu", (unsigned long long)x->next);
	if (!PQsendQueryParams(x->pg,
	                       "SELECT seq, block_height, entry FROM ledger_entries WHERE seq >= $1::bigint "
	                       "ORDER BY seq LIMIT " EHR_STR(SSE_BATCH),
	                       1, NULL, p, NULL, NULL, 0))
		return false;
	while (PQflush(x->pg) == 1)
		; /* a few dozen bytes on a local socket */
	x->busy = true;
	x->rows = 0;
	return true;
}

/* One row -> one event. False ends the stream (client gone or overflow). */
static bool sse_row(struct sse *x, PGresult *res, int i)
{
	size_t len = 0;
	unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &len);
	struct ledger_entry e;
	struct collect c;
	struct ehr_buf ev = EHR_BUF_INIT(4 * LEDGER_MAX_PAYLOAD);
	char *data = NULL;
	bool ok = false;

	memset(&c, 0, sizeof(c));
	c.items = json_array();
	if (raw == NULL || c.items == NULL || ledger_entry_decode(&e, raw, len, false) < 0)
		goto out;
	ehr_parse_u64(&e.block_height, PQgetvalue(res, i, 1), UINT64_MAX);
	if (collect_entry(&c, &e, raw, len) < 0 ||
	    (data = json_dumps(json_array_get(c.items, 0), JSON_COMPACT)) == NULL)
		goto out;
	if (ehr_buf_printf(&ev, "id: %llu\nevent: entry\ndata: %s\n\n", (unsigned long long)e.seq, data) <
	            0 ||
	    sse_send(x, (const char *)ev.data, ev.len) < 0)
		goto out;
	x->next = e.seq + 1;
	x->have_sent = true;
	if (gw_stream_backlog(x->s) > x->limit) {
		struct ehr_buf o = EHR_BUF_INIT(256);
		ehr_buf_printf(&o,
		               "event: overflow\ndata: {\"reason\":\"slow "
		               "consumer\",\"last_event_id\":\"%llu\"}\n\n",
		               (unsigned long long)e.seq);
		sse_send(x, ehr_buf_cstr(&o), o.len);
		ehr_buf_free(&o);
		ehr_logf(EHR_LOG_WARN, "audit.stream_overflow", "slow consumer cut off after seq %llu",
		         (unsigned long long)e.seq);
		goto out;
	}
	ok = true;
out:
	free(data);
	json_decref(c.items);
	ehr_buf_free(&ev);
	if (raw)
		PQfreemem(raw);
	return ok;
}

static void sse_pump(struct sse *x);

static void sse_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sse_pump(arg);
}

/* Start the next fetch if one is due and the client keeps up. */
static void sse_pump(struct sse *x)
{
	if (x->busy || !(x->dirty || x->more))
		return;
	if (gw_stream_backlog(x->s) > x->limit / 2) {
		struct timeval tv = { 0, 50 * 1000 };
		evtimer_add(x->retry_ev, &tv);
		return;
	}
	x->dirty = x->more = false;
	if (!sse_fetch(x)) {
		ehr_logf(EHR_LOG_WARN, "audit.stream_db", "fetch failed: %s", PQerrorMessage(x->pg));
		sse_end(x);
	}
}

static void sse_on_pg(evutil_socket_t fd, short what, void *arg)
{
	struct sse *x = arg;
	PGnotify *n;

	(void)fd;
	(void)what;
	if (!PQconsumeInput(x->pg)) {
		ehr_logf(EHR_LOG_WARN, "audit.stream_db", "lost the database: %s", PQerrorMessage(x->pg));
		sse_end(x); /* the client reconnects with Last-Event-ID */
		return;
	}
	while ((n = PQnotifies(x->pg)) != NULL) {
		x->dirty = true;
		PQfreemem(n);
	}
	while (x->busy && !PQisBusy(x->pg)) {
		PGresult *res = PQgetResult(x->pg);
		if (res == NULL) {
			x->busy = false;
			x->more = x->rows == SSE_BATCH;
			break;
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			ehr_logf(EHR_LOG_WARN, "audit.stream_db", "query failed: %s",
			         PQresultErrorMessage(res));
			PQclear(res);
			sse_end(x);
			return;
		}
		for (int i = 0; i < PQntuples(res); i++) {
			x->rows++;
			if (!sse_row(x, res, i)) {
				PQclear(res);
				sse_end(x);
				return;
			}
		}
		PQclear(res);
	}
	sse_pump(x);
}

static void sse_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct sse *x = arg;
	char hb[64];
	int n;

	(void)fd;
	(void)what;
	n = snprintf(hb, sizeof(hb), ": heartbeat %lld\n\n", (long long)ehr_now_ms());
	if (sse_send(x, hb, (size_t)n) < 0)
		sse_end(x);
}

static void sse_start(struct gw_stream *s, void *ud)
{
	struct sse *x = ud;
	struct event_base *base;
	struct timeval hb;
	static const char hello[] = ": ehrgate audit stream\nretry: 1000\n\n";

	if (s == NULL) {
		sse_free(x);
		return;
	}
	x->s = s;
	base = gw_stream_base(s);
	gw_stream_set_close_cb(s, sse_on_close, x);
	x->pg_ev = event_new(base, PQsocket(x->pg), EV_READ | EV_PERSIST, sse_on_pg, x);
	x->hb_ev = event_new(base, -1, EV_PERSIST, sse_heartbeat, x);
	x->retry_ev = evtimer_new(base, sse_retry, x);
	hb.tv_sec = x->heartbeat_s;
	hb.tv_usec = 0;
	if (x->pg_ev == NULL || x->hb_ev == NULL || x->retry_ev == NULL || event_add(x->pg_ev, NULL) != 0 ||
	    event_add(x->hb_ev, &hb) != 0 || sse_send(x, hello, sizeof(hello) - 1) < 0) {
		sse_end(x);
		return;
	}
	x->dirty = true; /* catch up from `next` at once */
	sse_pump(x);
}

static void h_audit_stream(struct gw_req *r)
{
	const struct gw_config *cfg = gw_app_config(gw_req_app(r));
	const char *last = gw_req_header(r, "Last-Event-ID"), *since = gw_req_query(r, "since");
	uint64_t v, hb, buf;
	struct sse *x;
	PGresult *res;

	if (!query_u64(r, "heartbeat", &hb, 15, 60) ||
	    !query_u64(r, "buffer", &buf, SSE_BUFFER_DEFAULT, 64u << 20))
		return;
	if (hb == 0 || buf < 1024) {
		gw_reply_error(r, 400, "invalid_request",
		               "heartbeat must be 1..60 s and buffer at least 1024 bytes");
		return;
	}
	if (atomic_fetch_add(&sse_open, 1) >= SSE_MAX_STREAMS) {
		atomic_fetch_sub(&sse_open, 1);
		gw_reply_header(r, "Retry-After", "5");
		gw_reply_error(r, 503, "unavailable", "too many open audit streams, retry later");
		return;
	}
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		atomic_fetch_sub(&sse_open, 1);
		reply_err(r, ehr_error_set(EHR_ERR_NOMEM, "out of memory"));
		return;
	}
	x->heartbeat_s = (unsigned)hb;
	x->limit = (size_t)buf;
	if (last != NULL) { /* resume after the last event seen */
		if (ehr_parse_u64(&v, last, INT64_MAX - 1) < 0) {
			sse_free(x);
			gw_reply_error(r, 400, "invalid_request", "Last-Event-ID must be a seq");
			return;
		}
		x->next = v + 1;
	} else if (since != NULL) { /* start at this seq */
		if (ehr_parse_u64(&v, since, INT64_MAX) < 0) {
			sse_free(x);
			gw_reply_error(r, 400, "invalid_request", "since must be a seq");
			return;
		}
		x->next = v;
	}
	x->pg = PQconnectdb(gw_config_get(cfg, "database", "url"));
	if (PQstatus(x->pg) != CONNECTION_OK) {
		ehr_logf(EHR_LOG_WARN, "audit.stream_db", "connect: %s", PQerrorMessage(x->pg));
		sse_free(x);
		gw_reply_error(r, 503, "unavailable", "the database is unavailable, retry later");
		return;
	}
	/* LISTEN before reading the head, so nothing committed in between is missed. */
	res = PQexec(x->pg, "LISTEN " AUDIT_LEDGER_CHANNEL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		PQclear(res);
		sse_free(x);
		gw_reply_error(r, 503, "unavailable", "the database is unavailable, retry later");
		return;
	}
	PQclear(res);
	if (last == NULL && since == NULL) { /* only new entries */
		res = PQexec(x->pg, "SELECT coalesce(max(seq) + 1, 0) FROM ledger_entries");
		if (PQresultStatus(res) != PGRES_TUPLES_OK ||
		    ehr_parse_u64(&x->next, PQgetvalue(res, 0, 0), INT64_MAX) < 0) {
			PQclear(res);
			sse_free(x);
			gw_reply_error(r, 503, "unavailable", "the database is unavailable, retry later");
			return;
		}
		PQclear(res);
	}
	if (PQsetnonblocking(x->pg, 1) != 0) {
		sse_free(x);
		reply_err(r,
		          ehr_error_set(EHR_ERR_INTERNAL, "cannot make the stream connection non-blocking"));
		return;
	}
	gw_reply_header(r, "X-Accel-Buffering", "no");
	gw_reply_stream(r, "text/event-stream", sse_start, x);
}

/* ------------------------------------------------------------- table */

#define PAT GW_ROLE_PATIENT
#define AUD GW_ROLE_AUDITOR

const struct gw_route gw_routes_audit[] = {
	{ "POST", "/v1/me/contracts", "me.contracts.create", PAT, GW_BLOCKING, h_contract_create },
	{ "GET", "/v1/me/contracts", "me.contracts.list", PAT, GW_BLOCKING, h_contract_list },
	{ "POST", "/v1/me/contracts/{cid}/revoke", "me.contracts.revoke", PAT, GW_BLOCKING,
	  h_contract_revoke },
	{ "GET", "/v1/me/access-log", "me.access_log", PAT, GW_BLOCKING, h_access_log },
	{ "GET", "/v1/audit/entries", "audit.entries", AUD, GW_BLOCKING, h_audit_entries },
	{ "GET", "/v1/audit/stream", "audit.stream", AUD, GW_BLOCKING, h_audit_stream },
	{ "GET", "/v1/ledger/checkpoint", "ledger.checkpoint", AUD | PAT, GW_BLOCKING, h_checkpoint },
	{ "GET", "/v1/ledger/proof/inclusion", "ledger.proof.inclusion", AUD | PAT, GW_BLOCKING,
	  h_inclusion },
	{ "GET", "/v1/ledger/proof/consistency", "ledger.proof.consistency", AUD | PAT, GW_BLOCKING,
	  h_consistency },
};
const size_t gw_routes_audit_len = EHR_ARRAY_LEN(gw_routes_audit);
