/*
 * records.c - the SQL on ehr_records: validation of what goes into a row,
 * the row codec, and the statements the sequences use (insert pending,
 * complete, delete pending, load, list, count).
 */
#include "records/records_internal.h"

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/db.h"

bool records_id_ok(const char *s, size_t max)
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

bool records_content_type_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > RECORDS_MAX_CT)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/* A bytea column of exactly n bytes; anything else is a database fault
 * (EHR_ERR_DB, as the rows are ours). */
static int bytea_get(uint8_t *out, size_t n, PGresult *res, int i, int col)
{
	if (ehr_db_get_bytea(out, n, res, i, col) < 0)
		return ehr_error_set(EHR_ERR_DB, "unexpected bytea value");
	return 0;
}

int records__exec(const struct records_env *env, void **res, const char *sql, int n,
                  const char *const *params)
{
	void *conn = NULL;
	int err;

	*res = NULL;
	if (env->db == NULL)
		return ehr_error_set(EHR_ERR_UNAVAILABLE, "no database");
	GUARD(ehr_db_acquire(env->db, &conn));
	err = ehr_db_exec(conn, res, sql, n, params);
	ehr_db_release(env->db, conn, err == EHR_ERR_UNAVAILABLE);
	return err;
}

/* ------------------------------------------------------------------ rows */

static enum records_row_state state_of(const char *s)
{
	if (strcmp(s, "stored") == 0)
		return ROW_STORED;
	if (strcmp(s, "erasing") == 0)
		return ROW_ERASING;
	if (strcmp(s, "erased") == 0)
		return ROW_ERASED;
	return ROW_PENDING;
}

int records__row_decode(struct records_row *row, void *resv, int i)
{
	PGresult *res = resv;
	int64_t seq = 0, v = 0;

	memset(row, 0, sizeof(*row));
	GUARD(ehr_db_get_text(row->record_id, sizeof(row->record_id), res, i, 0));
	GUARD(ehr_db_get_text(row->patient, sizeof(row->patient), res, i, 1));
	GUARD(ehr_db_get_text(row->stored_by, sizeof(row->stored_by), res, i, 2));
	GUARD(ehr_db_get_text(row->content_type, sizeof(row->content_type), res, i, 3));
	GUARD(ehr_db_get_text(row->category, sizeof(row->category), res, i, 4));
	row->state = state_of(PQgetvalue(res, i, 5));
	row->stored = row->state == ROW_STORED;
	GUARD(ehr_parse_i64(&seq, PQgetvalue(res, i, 6), -1, INT64_MAX));
	row->ledger_seq = seq < 0 ? 0 : (uint64_t)seq;
	GUARD(ehr_parse_i64(&row->created_ms, PQgetvalue(res, i, 7), 0, INT64_MAX));
	GUARD(ehr_parse_i64(&v, PQgetvalue(res, i, 8), 0, INT64_MAX));
	row->meta.plain_size = (uint64_t)v;
	GUARD(ehr_parse_i64(&v, PQgetvalue(res, i, 9), 0, INT64_MAX));
	row->meta.ct_size = (uint64_t)v;
	if (!PQgetisnull(res, i, 10))
		GUARD(bytea_get(row->meta.ct_sha256, 32, res, i, 10));
	GUARD(ehr_db_get_text(row->meta.kid, sizeof(row->meta.kid), res, i, 11));
	if (!PQgetisnull(res, i, 12))
		GUARD(bytea_get(row->meta.wrapped, CLOUD_WRAPPED_LEN, res, i, 12));
	GUARD(ehr_parse_i64(&seq, PQgetvalue(res, i, 13), -1, INT64_MAX));
	row->erase_logged = seq >= 0;
	row->erase_seq = seq < 0 ? 0 : (uint64_t)seq;
	return cloud_rid_parse(row->meta.rid, row->record_id);
}

int records__patient_exists(void *conn, const char *pid, bool share_lock, unsigned steps)
{
	const char *p[1] = { pid };
	void *res = NULL;
	int err;

	GUARD(ehr_db_exec_steps(
	        conn, &res, steps,
	        share_lock ? "SELECT revoked_at IS NULL FROM auth_patients WHERE patient_id = $1 "
	                     "FOR SHARE"
	                   : "SELECT true FROM auth_patients WHERE patient_id = $1 AND "
	                     "revoked_at IS NULL",
	        1, p));
	err = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0
	              ? 0
	              : ehr_error_set(EHR_ERR_NOT_FOUND, "no such patient");
	PQclear(res);
	return err;
}

int records__row_insert_pending(void *conn, const char *pid, const char *stored_by, const char *ct,
                                const char *cat, const struct cloud_record_meta *m, unsigned steps)
{
	char rid[CLOUD_RID_HEX], wrapped[EHR_DB_BYTEA_HEX_LEN(CLOUD_WRAPPED_LEN)];
	const char *p[7] = { rid, pid, stored_by, ct, cat, m->kid, wrapped };
	void *res = NULL;
	int err;

	cloud_rid_hex(rid, m->rid);
	GUARD(ehr_db_bytea_param(wrapped, sizeof(wrapped), m->wrapped, CLOUD_WRAPPED_LEN));
	err = ehr_db_exec_steps(
	        conn, &res, steps,
	        "INSERT INTO ehr_records (record_id, patient, stored_by, content_type, category, "
	        "kek_id, wrapped_key, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7::bytea, "
	        "(extract(epoch from clock_timestamp()) * 1000)::bigint)",
	        7, p);
	PQclear(res);
	return err;
}

int records__row_complete(const struct records_env *env, void *conn, const char *rid, uint64_t seq,
                          uint64_t plain, uint64_t ct, const uint8_t sha[32], const struct ehr_buf *tags,
                          bool only_pending, unsigned steps)
{
	static const char *const sql[2] = {
		"UPDATE ehr_records SET state = 'stored', ledger_seq = $2, plain_size = $3, ct_size = $4, "
		"ct_sha256 = $5::bytea, seg_tags = $6::bytea WHERE record_id = $1",
		"UPDATE ehr_records SET state = 'stored', ledger_seq = $2, plain_size = $3, ct_size = $4, "
		"ct_sha256 = $5::bytea, seg_tags = $6::bytea WHERE record_id = $1 AND state = 'pending'",
	};
	char seqs[24], plains[24], cts[24], sha_b[EHR_DB_BYTEA_HEX_LEN(32)];
	struct ehr_buf tags_b = EHR_BUF_INIT(64u << 20);
	const char *p[6] = { rid, seqs, plains, cts, sha_b, NULL };
	void *res = NULL;
	int err = 0;

	GUARD(ehr_db_bytea_param(sha_b, sizeof(sha_b), sha, 32));
	GUARD(ehr_fmt(seqs, sizeof(seqs), "%llu", (unsigned long long)seq));
	GUARD(ehr_fmt(plains, sizeof(plains), "%llu", (unsigned long long)plain));
	GUARD(ehr_fmt(cts, sizeof(cts), "%llu", (unsigned long long)ct));
	if (tags != NULL && tags->len > 0) { /* bytea hex input: \x and the digits */
		GUARD_GOTO(ehr_buf_append(&tags_b, "\\x", 2));
		GUARD_GOTO(ehr_hex_encode(&tags_b, tags->data, tags->len));
		p[5] = ehr_buf_cstr(&tags_b);
	}
	if (conn != NULL) {
		err = ehr_db_exec_steps(conn, NULL, steps, sql[only_pending], 6, p);
	} else {
		err = records__exec(env, &res, sql[only_pending], 6, p);
		PQclear(res);
	}
out:
	ehr_buf_free(&tags_b);
	return err;
}

int records__payload_tags(json_t *payload, const struct ehr_buf *tags)
{
	uint8_t h[32];
	char hex[65];

	if (tags == NULL || tags->len == 0)
		return 0;
	GUARD(cloud_tags_sha256(h, tags));
	GUARD(ehr_hex_encode_fixed(hex, sizeof(hex), h, 32));
	return json_object_set_new(payload, "seg_tags_sha256", json_string(hex)) == 0
	               ? 0
	               : ehr_error_set(EHR_ERR_NOMEM, "out of memory");
}

int records__row_delete_pending(const struct records_env *env, const char *rid)
{
	const char *p[1] = { rid };
	void *res = NULL;
	int err = records__exec(env, &res,
	                        "DELETE FROM ehr_records WHERE record_id = $1 AND state = 'pending'", 1, p);

	PQclear(res);
	return err;
}

json_t *records__payload(const char *rid, const uint8_t sha[32], uint64_t size, const char *actor,
                         const char *patient)
{
	char hex[65];

	if (ehr_hex_encode_fixed(hex, sizeof(hex), sha, 32) < 0)
		return NULL;
	return json_pack("{s:s, s:s, s:I, s:s, s:s}", "record_id", rid, "sha256", hex, "size",
	                 (json_int_t)size, "actor", actor, "patient", patient);
}

/* ------------------------------------------------------------- listing */

static const char *const state_names[] = { "pending", "stored", "erasing", "erased" };

static json_t *row_json(const struct records_row *row)
{
	char sha[65];
	json_t *j;

	if (ehr_hex_encode_fixed(sha, sizeof(sha), row->meta.ct_sha256, 32) < 0)
		return NULL; /* cannot happen: 65 bytes hold 32 in hex */
	j = json_pack("{s:s, s:s, s:s?, s:I, s:I, s:s, s:I, s:s, s:I}", "record_id", row->record_id,
	              "content_type", row->content_type, "category", row->category[0] ? row->category : NULL,
	              "size", (json_int_t)row->meta.plain_size, "stored_size", (json_int_t)row->meta.ct_size,
	              "sha256", sha, "seq", (json_int_t)row->ledger_seq, "stored_by", row->stored_by,
	              "created_ms", (json_int_t)row->created_ms);
	if (j == NULL)
		return NULL;
	json_object_set_new(j, "state", json_string(state_names[row->state]));
	if (row->erase_logged)
		json_object_set_new(j, "erase_seq", json_integer((json_int_t)row->erase_seq));
	return j;
}

int records_list(const struct records_env *env, const char *patient, const char *stored_by, int64_t after_ms,
                 uint64_t limit, json_t **out)
{
	char lims[24], afters[24];
	const char *p[4] = { patient, stored_by, afters, lims };
	void *res = NULL;
	json_t *arr;

	*out = NULL;
	GUARD(ehr_fmt(lims, sizeof(lims), "%llu", (unsigned long long)limit));
	GUARD(ehr_fmt(afters, sizeof(afters), "%lld", (long long)after_ms));
	GUARD(records__exec(env, &res,
	                    "SELECT " RECORDS__ROW_COLS
	                    " FROM ehr_records WHERE patient = $1 AND state <> 'pending' "
	                    "AND ($2 = '' OR stored_by = $2) AND created_ms > $3::bigint "
	                    "ORDER BY created_ms, record_id LIMIT $4::int",
	                    4, p));
	arr = json_array();
	for (int i = 0; arr != NULL && i < PQntuples(res); i++) {
		struct records_row row;

		if (records__row_decode(&row, res, i) < 0)
			continue;
		json_array_append_new(arr, row_json(&row));
	}
	PQclear(res);
	ENSURE(arr != NULL, EHR_ERR_NOMEM);
	*out = arr;
	return 0;
}

int records_count(const struct records_env *env, const char *kid, uint64_t *n)
{
	const char *p[1] = { kid };
	void *res = NULL;
	int err;

	GUARD(records__exec(env, &res,
	                    kid ? "SELECT count(*) FROM ehr_records WHERE kek_id = $1"
	                        : "SELECT count(*) FROM ehr_records",
	                    kid ? 1 : 0, kid ? p : NULL));
	err = ehr_parse_u64(n, PQgetvalue(res, 0, 0), UINT64_MAX);
	PQclear(res);
	return err;
}

/* ------------------------------------------------------------ decisions */

int records__decide(void *conn, const struct policy_request *q, struct records_decision *d)
{
	int err = policy_evaluate(conn, q, ehr_now_ms() / 1000, &d->dec);

	if (err < 0) {
		d->state = RECORDS_DECISION_UNRECORDED;
		d->dec.effect = POLICY_DENY;
		return err == EHR_ERR_FORBIDDEN ? EHR_ERR_UNAVAILABLE : err;
	}
	return 0;
}

int records__record(struct ledger *l, const struct policy_request *q, struct records_decision *d)
{
	int err = policy_record(l, q, &d->dec, NULL);

	if (err < 0) {
		d->state = RECORDS_DECISION_UNRECORDED;
		d->dec.effect = POLICY_DENY;
		return err == EHR_ERR_FORBIDDEN ? EHR_ERR_UNAVAILABLE : err;
	}
	d->state = RECORDS_DECISION_RECORDED;
	return 0;
}
