/*
 * routes_ehr.c - encrypted EHR records (docs/STORAGE.md, DESIGN.md §5).
 *
 *   POST /v1/patients/{pid}/records   a medical server stores a record
 *   GET  /v1/records/{rid}            the patient or the storing server reads it
 *   GET  /v1/patients/{pid}/records   record metadata
 *   POST /v1/records/{rid}/erase      the patient erases their record
 *                                     (docs/ERASURE.md; records_erase)
 *
 * Thin routes: each parses the request, calls one function of the record
 * service (records/records.h: records_put, records_get, records_list),
 * which owns the SQL and the row -> object -> ledger sequences, and maps
 * the result to a reply. The upload body streams from gw_req_body_read
 * (GW_STREAM_BODY) through records_put, so "100 Continue" goes out only
 * once authentication, validation and the service's checks have passed;
 * a read streams into gw_reply_start/gw_reply_write through a sink.
 */
#include "gateway/gateway.h"
#include "gateway/gateway_internal.h"

#include <stdio.h>
#include <string.h>

#include "records/records.h"

static struct records_env env_of(struct gw_app *app)
{
	return (struct records_env){ gw_app_db(app), gw_app_ledger(app), gw_app_store(app) };
}

/* ------------------------------------------------------------- replies */

static void reply_store_err(struct gw_req *r, int err)
{
	switch (err) {
	case EHR_ERR_UNAVAILABLE:
	case EHR_ERR_AUTH: /* the store refused our credentials: not the client's fault */
	case EHR_ERR_IO:
	case EHR_ERR_TIMEOUT:
		ehr_logf(EHR_LOG_WARN, "ehr.store_unavailable", "%s", ehr_error_detail());
		gw_reply_header(r, "Retry-After", "5");
		gw_reply_error(r, 503, "unavailable", "the record store is unavailable; try again later");
		return;
	case EHR_ERR_TAMPER:
		ehr_logf(EHR_LOG_ERROR, "ehr.integrity", "%s", ehr_error_detail());
		gw_reply_error(r, 502, "integrity_error",
		               "the stored record failed verification; nothing was released");
		return;
	case EHR_ERR_TOO_LARGE: gw_reply_error(r, 413, "too_large", "record too large"); return;
	default: gw_reply_err(r, err); return;
	}
}

/* The body broke while it streamed: the client's doing, nothing stored. */
static void reply_body_err(struct gw_req *r, int source_err)
{
	if (source_err == EHR_ERR_PARSE)
		gw_reply_error(r, 400, "bad_request", "malformed chunked body; nothing was stored");
	else if (source_err == EHR_ERR_TIMEOUT)
		gw_reply_error(r, 408, "timeout", "the body stalled; nothing was stored");
	else
		gw_reply_error(r, 400, "bad_request", "the body ended early; nothing was stored");
}

/* 410 Gone: the record was erased, with the ehr.erase entry's index once
 * it is durable (docs/PROTOCOL.md, docs/ERASURE.md §2). */
static void reply_gone(struct gw_req *r, bool logged, uint64_t seq)
{
	json_t *e = json_pack("{s:s, s:s}", "code", "gone", "message",
	                      logged ? "the record was erased" : "the record is being erased");

	if (e != NULL && logged)
		json_object_set_new(e, "erase_seq", json_integer((json_int_t)seq));
	gw_reply_json(r, 410, json_pack("{s:o}", "error", e));
}

/* 409: an erasure refused by retention or a legal hold; the body says
 * which, and the entry that recorded it (gateway.h). */
void gw_reply_erase_refused(struct gw_req *r, const struct records_refusal *why, bool of_patient)
{
	const char *msg =
	        why->kind == RECORDS_REFUSED_HOLD
	                ? (of_patient ? "a legal hold is in force on the patient or one of their records"
	                              : "the record is under a legal hold")
	                : (of_patient ? "a record of the patient is inside its minimum retention period"
	                              : "the record is inside its minimum retention period");
	json_t *e = json_pack("{s:s, s:s, s:I}", "code", "erasure_refused", "message", msg, "refused_seq",
	                      (json_int_t)why->refused_seq);

	if (e != NULL)
		records_refusal_json(e, why);
	gw_reply_json(r, 409, json_pack("{s:o}", "error", e));
}

/* The reply for a record sequence that stopped at `stage` with `err`. */
static void reply_records_err(struct gw_req *r, enum records_stage stage, int err, bool reading, uint64_t max)
{
	switch (stage) {
	case RECORDS_AT_PATIENT:
		reply_store_err(r, err == EHR_ERR_NOT_FOUND ? err : EHR_ERR_UNAVAILABLE);
		return;
	case RECORDS_AT_ROW:
		if (err == EHR_ERR_NOT_FOUND)
			gw_reply_error(r, 404, "not_found", "no such record");
		else
			reply_store_err(r, EHR_ERR_UNAVAILABLE);
		return;
	case RECORDS_AT_POLICY:
		if (err != EHR_ERR_FORBIDDEN)
			reply_store_err(r, EHR_ERR_UNAVAILABLE);
		else if (reading)
			gw_reply_error(r, 403, "forbidden", "not allowed to read this record");
		else
			gw_reply_error(r, 403, "forbidden",
			               "no contract allows this server to add records for this patient");
		return;
	case RECORDS_AT_PENDING: reply_store_err(r, EHR_ERR_UNAVAILABLE); return;
	case RECORDS_AT_OBJECT:
		if (!reading && err == EHR_ERR_TOO_LARGE)
			gw_reply_error(r, 413, "too_large", "the record is larger than %llu bytes",
			               (unsigned long long)max);
		else
			reply_store_err(r, err);
		return;
	case RECORDS_AT_LEDGER: reply_store_err(r, err); return;
	case RECORDS_AT_COMMIT:
		gw_reply_header(r, "Retry-After", "5");
		gw_reply_error(r, 503, "unavailable", "the ledger is unavailable; nothing was %s",
		               reading ? "released" : "stored");
		return;
	case RECORDS_AT_COMPLETE:
		gw_reply_error(r, 500, "internal_error",
		               "record stored and logged, metadata pending; run ehrgate fsck");
		return;
	default: gw_reply_err(r, err); return;
	}
}

/* The access request from the identity and the policy headers; a bad
 * header is the client's (400). 0, or 1 after replying. */
static int policy_request(struct gw_req *r, struct policy_request *q)
{
	if (gw_policy_request(r, q) == 0)
		return 0;
	gw_reply_error(r, 400, "invalid_request", "%s", ehr_error_msg());
	return 1;
}

static void count_decision(const struct policy_request *q, const char *rid, const struct records_decision *d)
{
	if (d->state != RECORDS_DECISION_NONE)
		gw_policy_count(q, rid, d->state == RECORDS_DECISION_RECORDED, &d->dec);
}

/* ----------------------------------------------------------------- POST */

static int body_read(void *ud, uint8_t *buf, size_t cap, size_t *got)
{
	return gw_req_body_read(ud, buf, cap, got);
}

/* The upload's own checks, before anything is asked of the service. 0,
 * or 1 after replying. */
static int put_validate(struct gw_req *r, struct records_put_in *in)
{
	/* {pid} passed the one id validator (gw_id_check) before the handler. */
	if (in->content_type == NULL || *in->content_type == '\0')
		in->content_type = "application/octet-stream";
	if (!records_content_type_ok(in->content_type)) {
		gw_reply_error(r, 400, "invalid_request", "bad Content-Type");
		return 1;
	}
	if (in->category == NULL)
		in->category = gw_req_query(r, "category");
	if (in->category != NULL && !records_id_ok(in->category, RECORDS_MAX_CATEGORY)) {
		gw_reply_error(r, 400, "invalid_request", "category must be 1-64 of [A-Za-z0-9._-]");
		return 1;
	}
	if (in->declared_len > 0 && (uint64_t)in->declared_len > in->max_bytes) {
		gw_reply_error(r, 413, "too_large", "the record is larger than %llu bytes",
		               (unsigned long long)in->max_bytes);
		return 1;
	}
	return 0;
}

static void h_record_create(struct gw_req *r)
{
	struct gw_app *app = gw_req_app(r);
	const struct gw_identity *id = gw_req_identity(r);
	struct records_env env = env_of(app);
	struct records_put_out out;
	struct policy_request q;
	struct records_put_in in = {
		.patient = gw_req_param(r, "pid"),
		.stored_by = id->subject,
		.actor = id->actor,
		.content_type = gw_req_header(r, "Content-Type"),
		.category = gw_req_header(r, "X-EHR-Category"),
		.policy = &q,
		.max_bytes = gw_config_get_uint(gw_app_config(app), "store", "max_record_bytes"),
		.declared_len = gw_req_body_length(r),
		.read = body_read,
		.read_ud = r,
	};
	int err;

	if (put_validate(r, &in) != 0)
		return;
	if (env.store == NULL || env.ledger == NULL) {
		gw_reply_error(r, 503, "unavailable", "record storage is not configured");
		return;
	}
	if (policy_request(r, &q) != 0)
		return;
	err = records_put(&env, &in, &out);
	count_decision(&q, NULL, &out.decision);
	if (err == 0)
		gw_reply_json(r, 201,
		              json_pack("{s:s, s:I, s:I, s:s, s:I, s:I, s:s, s:s*, s:o*}", "record_id",
		                        out.record_id, "seq", (json_int_t)out.rcpt.seq, "tree_size",
		                        (json_int_t)out.rcpt.tree_size, "sha256", out.sha256, "size",
		                        (json_int_t)out.plain_size, "stored_size", (json_int_t)out.ct_size,
		                        "content_type", in.content_type, "category", in.category, "receipt",
		                        gw_receipt_attach(r, out.rcpt.seq)));
	else if (out.stage == RECORDS_AT_BODY)
		reply_body_err(r, out.source_err);
	else if (out.stage == RECORDS_AT_PATIENT && err == EHR_ERR_NOT_FOUND &&
	         gw_patient_refused(r, in.patient))
		return; /* 410 patient_erased */
	else
		reply_records_err(r, out.stage, err, false, in.max_bytes);
}

/* ------------------------------------------------------------------ GET */

/* The reply as the read's sink: every check has passed when start runs. */
static int sink_start(void *ud, const struct records_meta *m)
{
	struct gw_req *r = ud;
	char v[24];

	gw_reply_header(r, "X-EHR-Record-Id", m->record_id);
	if (m->category[0])
		gw_reply_header(r, "X-EHR-Category", m->category);
	GUARD(ehr_fmt(v, sizeof(v), "%llu", (unsigned long long)m->read_seq));
	gw_reply_header(r, "X-EHR-Ledger-Seq", v);
	/* the ehr.read entry's receipt (and with Prefer: wait, its publication) */
	json_decref(gw_receipt_attach(r, m->read_seq));
	GUARD(ehr_fmt(v, sizeof(v), "%llu", (unsigned long long)m->plain_size));
	gw_reply_header(r, "X-EHR-Size", v);
	/* The type is the uploader's: never let a browser render it in our origin. */
	gw_reply_header(r, "X-Content-Type-Options", "nosniff");
	gw_reply_header(r, "Content-Disposition", "attachment");
	gw_reply_start(r, 200, m->content_type, (int64_t)m->plain_size);
	return 0;
}

static int sink_write(void *ud, const uint8_t *p, size_t n)
{
	return gw_reply_write(ud, p, n);
}

/* An incomplete reply is aborted short of its Content-Length, so no
 * client can take it for a complete record. */
static void sink_end(void *ud, bool complete)
{
	gw_reply_end(ud, complete);
}

static void h_record_get(struct gw_req *r)
{
	struct gw_app *app = gw_req_app(r);
	struct records_env env = env_of(app);
	struct policy_request q;
	const struct gw_identity *id = gw_req_identity(r);
	struct records_get_in in = { gw_req_param(r, "rid"), id->actor, &q, id->token_jti };
	struct records_sink sink = { sink_start, sink_write, sink_end, r };
	struct records_get_out out;
	int err;

	/* {rid} passed the one id validator (gw_id_check) before the handler. */
	if (env.store == NULL || env.ledger == NULL) {
		gw_reply_error(r, 503, "unavailable", "record storage is not configured");
		return;
	}
	if (policy_request(r, &q) != 0)
		return;
	err = records_get(&env, &in, &sink, &out);
	count_decision(&q, in.record_id, &out.decision);
	if (err < 0 && out.stage == RECORDS_AT_ERASED)
		reply_gone(r, out.erase_logged, out.erase_seq);
	else if (err < 0)
		reply_records_err(r, out.stage, err, true, 0);
}

/* ----------------------------------------------------------------- list */

/* A patient lists all of theirs, a server the records it stored. Returns
 * the filter's stored_by ("" = all). */
static int list_decision(const struct gw_identity *id, const char *pid, const char **stored_by)
{
	if (id->role == GW_ROLE_PATIENT) {
		if (strcmp(id->subject, pid) != 0)
			return ehr_error_set(EHR_ERR_FORBIDDEN, "a patient may list only their own records");
		*stored_by = "";
		return 0;
	}
	if (id->role == GW_ROLE_SERVER) {
		*stored_by = id->subject;
		return 0;
	}
	return ehr_error_set(EHR_ERR_FORBIDDEN, "not allowed");
}

static void h_record_list(struct gw_req *r)
{
	const char *pid = gw_req_param(r, "pid"), *stored_by = "", *lim = gw_req_query(r, "limit");
	const char *after = gw_req_query(r, "after");
	struct records_env env = env_of(gw_req_app(r));
	uint64_t limit = 100;
	int64_t after_ms = -1;
	json_t *arr = NULL;

	/* {pid} passed the one id validator (gw_id_check) before the handler. */
	if (lim && ehr_parse_u64(&limit, lim, RECORDS_LIST_MAX) < 0) {
		gw_reply_error(r, 400, "invalid_request", "limit must be 1..%d", RECORDS_LIST_MAX);
		return;
	}
	if (limit == 0)
		limit = 1;
	if (after && ehr_parse_i64(&after_ms, after, 0, INT64_MAX) < 0) {
		gw_reply_error(r, 400, "invalid_request", "after must be a created_ms value");
		return;
	}
	if (list_decision(gw_req_identity(r), pid, &stored_by) < 0) {
		gw_reply_error(r, 403, "forbidden", "%s", ehr_error_msg());
		return;
	}
	if (gw_patient_refused(r, pid))
		return;
	if (records_list(&env, pid, stored_by, after_ms, limit, &arr) < 0) {
		reply_store_err(r, EHR_ERR_UNAVAILABLE);
		return;
	}
	gw_reply_json(r, 200, json_pack("{s:s, s:o}", "patient_id", pid, "records", arr));
}

/* ---------------------------------------------------------------- erase */

#define ERASE_MAX_BODY 1024

/* The body {"basis": CODE}; 0, or 1 after replying. */
static int erase_basis(struct gw_req *r, char *basis, size_t cap)
{
	size_t len = 0;
	const uint8_t *b = gw_req_body(r, &len);
	const char *v = NULL;
	json_t *j = NULL;
	int err = b ? ehr_json_parse(&j, b, len, ERASE_MAX_BODY, 4) : EHR_ERR_INVAL;

	if (err == 0 && (!json_is_object(j) || ehr_json_get_str(j, "basis", &v, 64) < 0))
		err = EHR_ERR_INVAL;
	if (err == 0 && !records_erase_basis_ok(v))
		err = ehr_error_set(EHR_ERR_INVAL, "unknown legal basis (docs/ERASURE.md §5)");
	else if (err == 0)
		err = ehr_str_copy(basis, cap, v);
	else
		err = ehr_error_set(err, "body must be {\"basis\": CODE}");
	json_decref(j);
	if (err < 0) {
		gw_reply_err(r, err);
		return 1;
	}
	return 0;
}

/* The reply to records_erase. */
static void reply_erase(struct gw_req *r, const char *rid, int err, const struct records_erase_out *out)
{
	if (err == 0) {
		gw_reply_json(r, 200,
		              json_pack("{s:s, s:s, s:I, s:b}", "record_id", rid, "state", "erased",
		                        "erase_seq", (json_int_t)out->erase_seq, "already_erased",
		                        out->was_erased));
		return;
	}
	switch (out->stage) {
	case RECORDS_AT_REFUSED: gw_reply_erase_refused(r, &out->refusal, false); return;
	case RECORDS_AT_POLICY: gw_reply_error(r, 403, "forbidden", "%s", ehr_error_msg()); return;
	case RECORDS_AT_COMMIT:
	case RECORDS_AT_OBJECT:
	case RECORDS_AT_COMPLETE:
		if (err == EHR_ERR_CONFLICT || out->stage == RECORDS_AT_COMMIT) {
			/* Refused and not recorded, or the key wiped and the rest to do. */
			gw_reply_header(r, "Retry-After", "5");
			gw_reply_error(r, 503, "unavailable",
			               "the ledger or the store is unavailable; repeat the request to "
			               "complete it");
			return;
		}
		reply_store_err(r, err);
		return;
	default:
		if (err == EHR_ERR_NOT_FOUND)
			gw_reply_error(r, 404, "not_found", "no such record");
		else
			reply_store_err(r, err == EHR_ERR_INVAL ? err : EHR_ERR_UNAVAILABLE);
		return;
	}
}

/* POST /v1/records/{rid}/erase {"basis": CODE}: the patient erases one of
 * their own records (docs/ERASURE.md §2). */
static void h_record_erase(struct gw_req *r)
{
	struct gw_app *app = gw_req_app(r);
	const struct gw_identity *id = gw_req_identity(r);
	struct records_env env = env_of(app);
	struct records_retention ret;
	struct records_erase_out out;
	uint8_t ridb[CLOUD_RID_LEN];
	char basis[64];
	struct records_erase_in in = {
		.record_id = gw_req_param(r, "rid"),
		.patient = id->subject,
		.actor = id->actor,
		.requested_by = RECORDS_BY_PATIENT,
		.basis = basis,
		.retention = &ret,
	};
	int err;

	if (cloud_rid_parse(ridb, in.record_id) < 0) {
		gw_reply_error(r, 400, "invalid_request", "record id must be 32 lower-case hex digits");
		return;
	}
	if (erase_basis(r, basis, sizeof(basis)) != 0)
		return;
	if (env.store == NULL || env.ledger == NULL) {
		gw_reply_error(r, 503, "unavailable", "record storage is not configured");
		return;
	}
	if (gw_retention_from_config(gw_app_config(app), &ret) < 0) {
		gw_reply_err(r, EHR_ERR_CONFIG);
		return;
	}
	err = records_erase(&env, &in, &out);
	reply_erase(r, in.record_id, err, &out);
}

#define SRV GW_ROLE_SERVER
#define PAT GW_ROLE_PATIENT

const struct gw_route gw_routes_ehr[] = {
	{ "POST", "/v1/patients/{pid}/records", "ehr.records.create", SRV, GW_STREAM_BODY, h_record_create,
	  "category" },
	{ "GET", "/v1/patients/{pid}/records", "ehr.records.list", SRV | PAT, GW_BLOCKING, h_record_list,
	  "limit after" },
	{ "GET", "/v1/records/{rid}", "ehr.records.get", SRV | PAT, GW_BLOCKING, h_record_get, NULL },
	{ "POST", "/v1/records/{rid}/erase", "ehr.records.erase", PAT, GW_BLOCKING, h_record_erase, NULL },
};
const size_t gw_routes_ehr_len = EHR_ARRAY_LEN(gw_routes_ehr);
