/*
 * routes_ehr.c - encrypted EHR records (docs/STORAGE.md, DESIGN.md §5).
 *
 *   POST /v1/patients/{pid}/records   a medical server stores a record
 *   GET  /v1/records/{rid}            the patient or the storing server reads it
 *   GET  /v1/patients/{pid}/records   record metadata
 *
 * Store order: metadata row 'pending' (it holds the wrapped data key) ->
 * object -> ledger entry ehr.store (durable) -> row 'stored' -> 201. A
 * failure before the ledger entry removes the object and the row; after
 * it, `ehrgate fsck` completes the row. So no ledger entry ever names an
 * object that was not stored, and no acknowledged record can be lost.
 *
 * The body streams: the route reads it while it arrives (GW_STREAM_BODY),
 * through the STREAM encryptor into the store, so memory stays bounded
 * whatever the record's size ([store] max_record_bytes bounds it).
 *
 * Read order: row -> authorisation (ehr_read_decision, the one place that
 * decides) -> the ledger's ehr.store entry -> object spooled, size and
 * SHA-256 equal to the ledger's -> every segment's GCM tag verified ->
 * ledger entry ehr.read (durable) -> 200, the plaintext streamed from the
 * verified spool, each segment's tag checked again as it is decrypted.
 */
#include "common/db.h"
#include "gateway/gateway.h"
#include "gateway/gateway_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "cloud/cloud.h"
#include "policy/policy.h"

#define EHR_MAX_CT 255
#define EHR_MAX_CATEGORY 64
#define EHR_MAX_PID 128
#define EHR_LIST_MAX 1000

/* ------------------------------------------------------------ validation */

static bool id_ok(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static bool content_type_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > EHR_MAX_CT)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

static int hex_of(char *out, size_t cap, const uint8_t *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	ENSURE(cap >= 2 * n + 1, EHR_ERR_INTERNAL);
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[p[i] >> 4];
		out[2 * i + 1] = hx[p[i] & 15];
	}
	out[2 * n] = '\0';
	return 0;
}

/* libpq bytea in hex escape form "\x..." */
static int bytea_param(char *out, size_t cap, const uint8_t *p, size_t n)
{
	ENSURE(cap >= 2 * n + 3, EHR_ERR_INTERNAL);
	out[0] = '\\';
	out[1] = 'x';
	return hex_of(out + 2, cap - 2, p, n);
}

static int bytea_get(uint8_t *out, size_t n, const char *v)
{
	if (v == NULL || strlen(v) != 2 + 2 * n || v[0] != '\\' || v[1] != 'x')
		return ehr_error_set(EHR_ERR_DB, "unexpected bytea value");
	return ehr_hex_decode(out, n, v + 2, 2 * n);
}

/* ------------------------------------------------------------ rows */

struct ehr_row {
	char record_id[CLOUD_RID_HEX];
	char patient[EHR_MAX_PID + 1];
	char stored_by[128];
	char content_type[EHR_MAX_CT + 1];
	char category[EHR_MAX_CATEGORY + 1];
	bool stored;
	uint64_t ledger_seq;
	int64_t created_ms;
	struct cloud_record_meta meta;
};

#define ROW_COLS                                                                                            \
	"record_id, patient, stored_by, content_type, coalesce(category, ''), state, coalesce(ledger_seq, " \
	"-1), "                                                                                             \
	"created_ms, coalesce(plain_size, 0), coalesce(ct_size, 0), ct_sha256, kek_id, wrapped_key"

static int row_decode(struct ehr_row *row, PGresult *res, int i)
{
	int64_t seq = 0, v = 0;

	memset(row, 0, sizeof(*row));
	snprintf(row->record_id, sizeof(row->record_id), "%s", PQgetvalue(res, i, 0));
	snprintf(row->patient, sizeof(row->patient), "%s", PQgetvalue(res, i, 1));
	snprintf(row->stored_by, sizeof(row->stored_by), "%s", PQgetvalue(res, i, 2));
	snprintf(row->content_type, sizeof(row->content_type), "%s", PQgetvalue(res, i, 3));
	snprintf(row->category, sizeof(row->category), "%s", PQgetvalue(res, i, 4));
	row->stored = strcmp(PQgetvalue(res, i, 5), "stored") == 0;
	GUARD(ehr_parse_i64(&seq, PQgetvalue(res, i, 6), -1, INT64_MAX));
	row->ledger_seq = seq < 0 ? 0 : (uint64_t)seq;
	GUARD(ehr_parse_i64(&row->created_ms, PQgetvalue(res, i, 7), 0, INT64_MAX));
	GUARD(ehr_parse_i64(&v, PQgetvalue(res, i, 8), 0, INT64_MAX));
	row->meta.plain_size = (uint64_t)v;
	GUARD(ehr_parse_i64(&v, PQgetvalue(res, i, 9), 0, INT64_MAX));
	row->meta.ct_size = (uint64_t)v;
	if (!PQgetisnull(res, i, 10))
		GUARD(bytea_get(row->meta.ct_sha256, 32, PQgetvalue(res, i, 10)));
	snprintf(row->meta.kid, sizeof(row->meta.kid), "%s", PQgetvalue(res, i, 11));
	GUARD(bytea_get(row->meta.wrapped, CLOUD_WRAPPED_LEN, PQgetvalue(res, i, 12)));
	return cloud_rid_parse(row->meta.rid, row->record_id);
}

static int db_exec(struct gw_app *app, PGresult **res, const char *sql, int n, const char *const *params)
{
	void *conn = NULL, *r = NULL;
	int err;

	*res = NULL;
	if (gw_app_db(app) == NULL)
		return ehr_error_set(EHR_ERR_UNAVAILABLE, "no database");
	GUARD(ehr_db_acquire(gw_app_db(app), &conn));
	err = ehr_db_exec(conn, &r, sql, n, params);
	ehr_db_release(gw_app_db(app), conn, err == EHR_ERR_UNAVAILABLE);
	*res = r;
	return err;
}

static int row_load(struct gw_app *app, struct ehr_row *row, const char *rid)
{
	const char *p[1] = { rid };
	PGresult *res = NULL;
	int err;

	GUARD(db_exec(app, &res, "SELECT " ROW_COLS " FROM ehr_records WHERE record_id = $1", 1, p));
	if (PQntuples(res) != 1)
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no such record");
	else
		err = row_decode(row, res, 0);
	PQclear(res);
	return err;
}

/* ------------------------------------------------------- authorisation */

/*
 * The one place that decides who may read a record: the access-policy
 * contracts (gw_policy_check, gateway/policy_gate.c; docs/CONTRACTS.md §2).
 * The patient reads its own records; a medical server needs a contract in
 * force, or a break-glass declaration. The decision, allow or deny, is an
 * access.decision ledger entry. Returns 0 to allow, EHR_ERR_FORBIDDEN to
 * deny, EHR_ERR_INVAL for a bad policy header, another error if the
 * decision could not be recorded; *reason names why.
 */
static int ehr_read_decision(struct gw_req *r, const struct ehr_row *row, const char **reason)
{
	struct policy_decision dec;
	int err = gw_policy_check(r, POLICY_ACT_READ, row->patient, row->record_id, row->category, &dec);

	*reason = dec.reason;
	return err;
}

/* Listing follows the same rule: a patient sees all of theirs, a server
 * the records it stored. Returns the SQL filter's stored_by ("" = all). */
static int ehr_list_decision(const struct gw_identity *id, const char *pid, const char **stored_by)
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

/* ------------------------------------------------------------- replies */

static void reply_store_err(struct gw_req *r, int err)
{
	switch (err) {
	case EHR_ERR_UNAVAILABLE:
	case EHR_ERR_AUTH: /* the store refused our credentials: not the client's fault */
	case EHR_ERR_IO:
	case EHR_ERR_TIMEOUT:
		ehr_logf(EHR_LOG_WARN, "ehr.store_unavailable", "%s", ehr_error_msg());
		gw_reply_header(r, "Retry-After", "5");
		gw_reply_error(r, 503, "unavailable", "the record store is unavailable; try again later");
		return;
	case EHR_ERR_TAMPER:
		ehr_logf(EHR_LOG_ERROR, "ehr.integrity", "%s", ehr_error_msg());
		gw_reply_error(r, 502, "integrity_error",
		               "the stored record failed verification; nothing was released");
		return;
	case EHR_ERR_TOO_LARGE: gw_reply_error(r, 413, "too_large", "record too large"); return;
	default: gw_reply_err(r, err); return;
	}
}

static json_t *ehr_payload(const char *rid, const uint8_t sha[32], uint64_t size, const char *actor,
                           const char *patient)
{
	char hex[65];
	hex_of(hex, sizeof(hex), sha, 32);
	return json_pack("{s:s, s:s, s:I, s:s, s:s}", "record_id", rid, "sha256", hex, "size",
	                 (json_int_t)size, "actor", actor, "patient", patient);
}

/* ----------------------------------------------------------------- POST */

static int patient_exists(struct gw_app *app, const char *pid)
{
	const char *p[1] = { pid };
	PGresult *res = NULL;
	int err;

	GUARD(db_exec(app, &res, "SELECT 1 FROM auth_patients WHERE patient_id = $1 AND revoked_at IS NULL",
	              1, p));
	err = PQntuples(res) == 1 ? 0 : ehr_error_set(EHR_ERR_NOT_FOUND, "no such patient");
	PQclear(res);
	return err;
}

static void delete_pending(struct gw_app *app, const char *rid)
{
	const char *p[1] = { rid };
	PGresult *res = NULL;
	if (db_exec(app, &res, "DELETE FROM ehr_records WHERE record_id = $1 AND state = 'pending'", 1, p) <
	    0)
		ehr_logf(EHR_LOG_WARN, "ehr.pending_left", "a pending row was left for fsck: %s",
		         ehr_error_msg());
	PQclear(res);
}

/* The request body as the encryptor's input; remembers why it failed, so
 * a client that went away is not reported as a store failure. */
struct body_src {
	struct gw_req *r;
	int err;
};

static int body_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct body_src *b = ctx;
	int err = gw_req_body_read(b->r, buf, cap, got);

	if (err < 0)
		b->err = err;
	return err;
}

static void h_record_create(struct gw_req *r)
{
	struct gw_app *app = gw_req_app(r);
	const struct gw_identity *id = gw_req_identity(r);
	struct obj_store *st = gw_app_store(app);
	const struct cloud_kek *kek = NULL;
	const char *pid = gw_req_param(r, "pid");
	const char *ct = gw_req_header(r, "Content-Type");
	const char *cat = gw_req_header(r, "X-EHR-Category");
	struct cloud_record_meta m;
	struct ledger_receipt rcpt;
	struct policy_decision dec;
	char rid[CLOUD_RID_HEX], wrapped[2 * CLOUD_WRAPPED_LEN + 3], sha_b[70], key[128];
	char seq[24], plain[24], ctsize[24], shahex[65];
	uint64_t max = gw_config_get_uint(gw_app_config(app), "store", "max_record_bytes");
	int64_t declared = gw_req_body_length(r);
	struct body_src src = { r, 0 };
	PGresult *res = NULL;
	bool object_written = false;
	int err;

	memset(&m, 0, sizeof(m));
	if (!id_ok(pid, EHR_MAX_PID)) {
		gw_reply_error(r, 400, "invalid_request", "bad patient id");
		return;
	}
	if (ct == NULL || *ct == '\0')
		ct = "application/octet-stream";
	if (!content_type_ok(ct)) {
		gw_reply_error(r, 400, "invalid_request", "bad Content-Type");
		return;
	}
	if (cat == NULL)
		cat = gw_req_query(r, "category");
	if (cat != NULL && !id_ok(cat, EHR_MAX_CATEGORY)) {
		gw_reply_error(r, 400, "invalid_request", "category must be 1-64 of [A-Za-z0-9._-]");
		return;
	}
	if (declared > 0 && (uint64_t)declared > max) {
		gw_reply_error(r, 413, "too_large", "the record is larger than %llu bytes",
		               (unsigned long long)max);
		return;
	}
	if (st == NULL || gw_app_ledger(app) == NULL) {
		gw_reply_error(r, 503, "unavailable", "record storage is not configured");
		return;
	}
	if ((err = patient_exists(app, pid)) < 0) {
		reply_store_err(r, err == EHR_ERR_NOT_FOUND ? err : EHR_ERR_UNAVAILABLE);
		return;
	}
	/* Appending needs a contract with "append" (docs/CONTRACTS.md §2). A
	 * refusal is recorded at once; an allowance just before ehr.store. */
	if ((err = gw_policy_decide(r, POLICY_ACT_APPEND, pid, NULL, cat, &dec)) < 0) {
		if (err == EHR_ERR_FORBIDDEN &&
		    gw_policy_record(r, POLICY_ACT_APPEND, pid, NULL, cat, &dec) == 0)
			gw_reply_error(r, 403, "forbidden",
			               "no contract allows this server to add records for this patient");
		else if (err == EHR_ERR_INVAL)
			gw_reply_error(r, 400, "invalid_request", "%s", ehr_error_msg());
		else
			reply_store_err(r, EHR_ERR_UNAVAILABLE);
		return;
	}

	/* 1. the pending row, holding the wrapped data key */
	if ((err = obj_store_keks(st, false, &kek)) < 0 || (err = cloud_rid_new(m.rid)) < 0 ||
	    (err = cloud_record_prepare(kek, &m)) < 0) {
		gw_reply_err(r, err);
		return;
	}
	cloud_rid_hex(rid, m.rid);
	bytea_param(wrapped, sizeof(wrapped), m.wrapped, CLOUD_WRAPPED_LEN);
	{
		const char *p[7] = { rid, pid, id->subject, ct, cat, m.kid, wrapped };
		err = db_exec(app, &res,
		              "INSERT INTO ehr_records (record_id, patient, stored_by, content_type, "
		              "category, kek_id, "
		              "wrapped_key, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7::bytea, "
		              "(extract(epoch from clock_timestamp()) * 1000)::bigint)",
		              7, p);
		PQclear(res);
		res = NULL;
		if (err < 0) {
			reply_store_err(r, EHR_ERR_UNAVAILABLE);
			return;
		}
	}

	/* 2. the object */
	if ((err = cloud_record_put_sized(st, kek, &m, body_read, &src, max, gw_req_body_length(r))) < 0) {
		delete_pending(app, rid);
		if (src.err == EHR_ERR_PARSE)
			gw_reply_error(r, 400, "bad_request", "malformed chunked body; nothing was stored");
		else if (src.err == EHR_ERR_TIMEOUT)
			gw_reply_error(r, 408, "timeout", "the body stalled; nothing was stored");
		else if (src.err != 0)
			gw_reply_error(r, 400, "bad_request", "the body ended early; nothing was stored");
		else if (err == EHR_ERR_TOO_LARGE)
			gw_reply_error(r, 413, "too_large", "the record is larger than %llu bytes",
			               (unsigned long long)max);
		else
			reply_store_err(r, err);
		return;
	}
	object_written = true;

	/* 3. the ledger entry, durable before anything is acknowledged */
	{
		json_t *payload = ehr_payload(rid, m.ct_sha256, m.ct_size, id->actor, pid);
		struct ledger_entry_in in = { "ehr.store", id->actor, pid, payload };
		err = gw_policy_record(r, POLICY_ACT_APPEND, pid, NULL, cat, &dec); /* the access.decision */
		if (err == 0)
			err = payload ? ledger_append(gw_app_ledger(app), &in, &rcpt) : EHR_ERR_NOMEM;
		json_decref(payload);
	}
	if (err < 0) {
		/* Nothing names the object: remove it and the row. */
		if (cloud_record_key(key, sizeof(key), m.rid) == 0 && obj_store_delete(st, key) < 0)
			ehr_logf(EHR_LOG_WARN, "ehr.orphan_left", "object left for fsck");
		delete_pending(app, rid);
		(void)object_written;
		ehr_logf(EHR_LOG_WARN, "ehr.ledger_failed", "%s", ehr_error_msg());
		gw_reply_header(r, "Retry-After", "5");
		gw_reply_error(r, 503, "unavailable", "the ledger is unavailable; nothing was stored");
		return;
	}

	/* 4. the row completes */
	bytea_param(sha_b, sizeof(sha_b), m.ct_sha256, 32);
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)rcpt.seq);
	snprintf(plain, sizeof(plain), "%llu", (unsigned long long)m.plain_size);
	snprintf(ctsize, sizeof(ctsize), "%llu", (unsigned long long)m.ct_size);
	{
		const char *p[5] = { rid, seq, plain, ctsize, sha_b };
		err = db_exec(app, &res,
		              "UPDATE ehr_records SET state = 'stored', ledger_seq = $2, plain_size = $3, "
		              "ct_size = $4, "
		              "ct_sha256 = $5::bytea WHERE record_id = $1",
		              5, p);
		PQclear(res);
	}
	if (err < 0) {
		/* Stored and in the ledger; fsck completes the row. Say so. */
		ehr_logf(EHR_LOG_ERROR, "ehr.row_incomplete",
		         "record in ledger, row left pending for fsck: %s", ehr_error_msg());
		gw_reply_error(r, 500, "internal",
		               "record stored and logged, metadata pending; run ehrgate fsck");
		return;
	}
	hex_of(shahex, sizeof(shahex), m.ct_sha256, 32);
	gw_reply_json(r, 201,
	              json_pack("{s:s, s:I, s:I, s:s, s:I, s:I, s:s, s:s?}", "record_id", rid, "seq",
	                        (json_int_t)rcpt.seq, "tree_size", (json_int_t)rcpt.tree_size, "sha256",
	                        shahex, "size", (json_int_t)m.plain_size, "stored_size",
	                        (json_int_t)m.ct_size, "content_type", ct, "category", cat));
}

/* ------------------------------------------------------------------ GET */

struct ledger_check {
	const char *rid;
	uint8_t sha[32];
	uint64_t size;
	bool found;
	int err;
};

static int ledger_entry_cb(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct ledger_check *lc = ctx;
	json_t *j = NULL;
	const char *rid = NULL, *sha = NULL;
	int64_t size = 0;

	(void)raw;
	(void)raw_len;
	if (strcmp(e->type, "ehr.store") != 0)
		return 0;
	if (ehr_json_parse(&j, e->payload, e->payload_len, LEDGER_MAX_PAYLOAD, 8) < 0)
		return 0;
	if (ehr_json_get_str(j, "record_id", &rid, 64) == 0 && strcmp(rid, lc->rid) == 0 &&
	    ehr_json_get_str(j, "sha256", &sha, 64) == 0 && strlen(sha) == 64 &&
	    ehr_json_get_int(j, "size", &size, 0, INT64_MAX) == 0 &&
	    ehr_hex_decode(lc->sha, 32, sha, 64) == 0) {
		lc->size = (uint64_t)size;
		lc->found = true;
	}
	json_decref(j);
	return 0;
}

static int reply_write(void *ctx, const uint8_t *p, size_t n)
{
	return gw_reply_write(ctx, p, n);
}

static void h_record_get(struct gw_req *r)
{
	struct gw_app *app = gw_req_app(r);
	const struct gw_identity *id = gw_req_identity(r);
	struct obj_store *st = gw_app_store(app);
	const char *rid = gw_req_param(r, "rid");
	const struct cloud_kek *kek = NULL;
	const char *reason = "";
	struct ehr_row row;
	struct ledger_check lc = { 0 };
	struct ledger_receipt rcpt;
	struct cloud_record_reader *rr = NULL;
	bool done = false;
	uint8_t ridb[CLOUD_RID_LEN];
	int err;

	if (cloud_rid_parse(ridb, rid) < 0) {
		gw_reply_error(r, 400, "invalid_request", "record id must be 32 lower-case hex digits");
		return;
	}
	if (st == NULL || gw_app_ledger(app) == NULL) {
		gw_reply_error(r, 503, "unavailable", "record storage is not configured");
		return;
	}
	if ((err = row_load(app, &row, rid)) < 0 || !row.stored) {
		if (err == 0 || err == EHR_ERR_NOT_FOUND)
			gw_reply_error(r, 404, "not_found", "no such record");
		else
			reply_store_err(r, EHR_ERR_UNAVAILABLE);
		return;
	}
	if ((err = ehr_read_decision(r, &row, &reason)) < 0) {
		if (err == EHR_ERR_FORBIDDEN)
			gw_reply_error(r, 403, "forbidden", "not allowed to read this record");
		else if (err == EHR_ERR_INVAL)
			gw_reply_error(r, 400, "invalid_request", "%s", ehr_error_msg());
		else
			reply_store_err(r, EHR_ERR_UNAVAILABLE);
		return;
	}
	/* The ledger is the authority on what was stored. */
	lc.rid = rid;
	if ((err = ledger_get_entries(gw_app_ledger(app), row.ledger_seq, 1, ledger_entry_cb, &lc)) < 0) {
		reply_store_err(r, EHR_ERR_UNAVAILABLE);
		return;
	}
	if (!lc.found) {
		reply_store_err(r,
		                ehr_error_set(EHR_ERR_TAMPER, "record %s has no matching ledger entry", rid));
		return;
	}
	row.meta.ct_size = lc.size;
	memcpy(row.meta.ct_sha256, lc.sha, 32);

	if ((err = obj_store_keks(st, false, &kek)) < 0) {
		gw_reply_err(r, err);
		return;
	}
	if (!cloud_kek_has(kek, row.meta.kid) && (err = obj_store_keks(st, true, &kek)) < 0) {
		gw_reply_err(r, err);
		return;
	}
	/* Spool, check the ledger hash, verify every tag: nothing is released
	 * unless the whole record is good. */
	if ((err = cloud_record_open(&rr, st, kek, &row.meta)) < 0) {
		reply_store_err(r, err == EHR_ERR_NOT_FOUND ? ehr_error_set(EHR_ERR_TAMPER, "object missing")
		                                            : err);
		return;
	}
	/* The read is on the ledger before a byte is released. */
	{
		json_t *payload = ehr_payload(rid, lc.sha, lc.size, id->actor, row.patient);
		struct ledger_entry_in in = { "ehr.read", id->actor, row.patient, payload };
		if (payload)
			json_object_set_new(payload, "basis", json_string(reason));
		err = payload ? ledger_append(gw_app_ledger(app), &in, &rcpt) : EHR_ERR_NOMEM;
		json_decref(payload);
	}
	if (err < 0) {
		cloud_record_close(rr);
		gw_reply_header(r, "Retry-After", "5");
		gw_reply_error(r, 503, "unavailable", "the ledger is unavailable; nothing was released");
		return;
	}
	gw_reply_header(r, "X-EHR-Record-Id", rid);
	if (row.category[0])
		gw_reply_header(r, "X-EHR-Category", row.category);
	{
		char v[24];
		snprintf(v, sizeof(v), "%llu", (unsigned long long)rcpt.seq);
		gw_reply_header(r, "X-EHR-Ledger-Seq", v);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)row.meta.plain_size);
		gw_reply_header(r, "X-EHR-Size", v);
	}
	/* The type is the uploader's: never let a browser render it in our origin. */
	gw_reply_header(r, "X-Content-Type-Options", "nosniff");
	gw_reply_header(r, "Content-Disposition", "attachment");
	/* The whole record verified in cloud_record_open; each segment is
	 * checked again as it is decrypted from the spool. A failure now (the
	 * client left, the spool broke) aborts the reply short of its
	 * Content-Length, so no client can take it for a complete record. */
	gw_reply_start(r, 200, row.content_type, (int64_t)row.meta.plain_size);
	while (!done && (err = cloud_record_read(rr, 1u << 20, reply_write, r, &done)) == 0)
		;
	cloud_record_close(rr);
	if (err < 0 && err != EHR_ERR_IO)
		ehr_logf(EHR_LOG_ERROR, "ehr.read_aborted", "reply aborted: %s", ehr_error_msg());
	gw_reply_end(r, err == 0 && done);
}

/* ----------------------------------------------------------------- list */

static void h_record_list(struct gw_req *r)
{
	struct gw_app *app = gw_req_app(r);
	const struct gw_identity *id = gw_req_identity(r);
	const char *pid = gw_req_param(r, "pid"), *stored_by = "", *lim = gw_req_query(r, "limit");
	const char *after = gw_req_query(r, "after");
	uint64_t limit = 100;
	int64_t after_ms = -1;
	char lims[16], afters[24];
	PGresult *res = NULL;
	json_t *arr;
	int err;

	if (!id_ok(pid, EHR_MAX_PID)) {
		gw_reply_error(r, 400, "invalid_request", "bad patient id");
		return;
	}
	if (lim && ehr_parse_u64(&limit, lim, EHR_LIST_MAX) < 0) {
		gw_reply_error(r, 400, "invalid_request", "limit must be 1..%d", EHR_LIST_MAX);
		return;
	}
	if (limit == 0)
		limit = 1;
	if (after && ehr_parse_i64(&after_ms, after, 0, INT64_MAX) < 0) {
		gw_reply_error(r, 400, "invalid_request", "after must be a created_ms value");
		return;
	}
	if ((err = ehr_list_decision(id, pid, &stored_by)) < 0) {
		gw_reply_error(r, 403, "forbidden", "%s", ehr_error_msg());
		return;
	}
	snprintf(lims, sizeof(lims), "%llu", (unsigned long long)limit);
	snprintf(afters, sizeof(afters), "%lld", (long long)after_ms);
	{
		const char *p[4] = { pid, stored_by, afters, lims };
		err = db_exec(app, &res,
		              "SELECT " ROW_COLS " FROM ehr_records WHERE patient = $1 AND state = 'stored' "
		              "AND ($2 = '' OR stored_by = $2) AND created_ms > $3::bigint "
		              "ORDER BY created_ms, record_id LIMIT $4::int",
		              4, p);
	}
	if (err < 0) {
		reply_store_err(r, EHR_ERR_UNAVAILABLE);
		return;
	}
	arr = json_array();
	for (int i = 0; i < PQntuples(res); i++) {
		struct ehr_row row;
		char sha[65];
		if (row_decode(&row, res, i) < 0)
			continue;
		hex_of(sha, sizeof(sha), row.meta.ct_sha256, 32);
		json_array_append_new(arr,
		                      json_pack("{s:s, s:s, s:s?, s:I, s:I, s:s, s:I, s:s, s:I}", "record_id",
		                                row.record_id, "content_type", row.content_type, "category",
		                                row.category[0] ? row.category : NULL, "size",
		                                (json_int_t)row.meta.plain_size, "stored_size",
		                                (json_int_t)row.meta.ct_size, "sha256", sha, "seq",
		                                (json_int_t)row.ledger_seq, "stored_by", row.stored_by,
		                                "created_ms", (json_int_t)row.created_ms));
	}
	PQclear(res);
	gw_reply_json(r, 200, json_pack("{s:s, s:o}", "patient_id", pid, "records", arr));
}

#define SRV GW_ROLE_SERVER
#define PAT GW_ROLE_PATIENT

const struct gw_route gw_routes_ehr[] = {
	{ "POST", "/v1/patients/{pid}/records", "ehr.records.create", SRV, GW_STREAM_BODY, h_record_create },
	{ "GET", "/v1/patients/{pid}/records", "ehr.records.list", SRV | PAT, GW_BLOCKING, h_record_list },
	{ "GET", "/v1/records/{rid}", "ehr.records.get", SRV | PAT, GW_BLOCKING, h_record_get },
};
const size_t gw_routes_ehr_len = EHR_ARRAY_LEN(gw_routes_ehr);
