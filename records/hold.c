/*
 * hold.c - what may stop an erasure (docs/ERASURE.md §6): minimum
 * retention per category, and legal holds on a patient or a record
 * (ehr_holds; each place and lift an ehr.hold.* ledger entry). The check
 * is one function, used by records_erase and by patient erasure.
 */
#include "records/records_internal.h"

#include <string.h>

#include <libpq-fe.h>

#include "common/db.h"

const char *const records_hold_reasons[] = { "litigation", "investigation", "regulator", "court-order",
	                                     NULL };

bool records_hold_reason_ok(const char *code)
{
	return records__code_in(records_hold_reasons, code);
}

int64_t records_retention_period(const struct records_retention *r, const char *category)
{
	if (r == NULL)
		return 0;
	for (size_t i = 0; category != NULL && *category && i < r->n && i < RECORDS_RETENTION_MAX; i++)
		if (strcmp(r->cat[i].category, category) == 0)
			return r->cat[i].period_s;
	return r->default_s;
}

void records_refusal_json(json_t *j, const struct records_refusal *why)
{
	json_object_set_new(j, "refused_record_id", json_string(why->record_id));
	if (why->kind == RECORDS_REFUSED_HOLD) {
		json_object_set_new(j, "reason", json_string("legal_hold"));
		json_object_set_new(j, "hold_id", json_integer((json_int_t)why->hold_id));
		json_object_set_new(j, "hold_reason", json_string(why->hold_reason));
		json_object_set_new(j, "hold_on", json_string(why->hold_on_patient ? "patient" : "record"));
	} else {
		json_object_set_new(j, "reason", json_string("retention"));
		if (why->category[0])
			json_object_set_new(j, "category", json_string(why->category));
		json_object_set_new(j, "retain_until_ms", json_integer((json_int_t)why->retain_until_ms));
	}
}

/* A hold in force on the row or its patient, oldest first. */
static int hold_of(void *conn, const struct records_row *row, struct records_refusal *why, bool *held)
{
	const char *p[2] = { row->record_id, row->patient };
	void *res = NULL;
	int64_t id = 0;
	int err = 0;

	*held = false;
	GUARD(ehr_db_exec(conn, &res,
	                  "SELECT hold_id, reason, patient IS NOT NULL FROM ehr_holds WHERE lifted_ms IS "
	                  "NULL AND (record_id = $1 OR patient = $2) ORDER BY hold_id LIMIT 1",
	                  2, p));
	if (PQntuples(res) == 1) {
		*held = true;
		why->kind = RECORDS_REFUSED_HOLD;
		why->hold_on_patient = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
		if ((err = ehr_parse_i64(&id, PQgetvalue(res, 0, 0), 0, INT64_MAX)) == 0)
			err = ehr_db_get_text(why->hold_reason, sizeof(why->hold_reason), res, 0, 1);
		why->hold_id = (uint64_t)id;
	}
	PQclear(res);
	return err;
}

int records__check_row(void *conn, const struct records_row *row, const struct records_retention *ret,
                       struct records_refusal *why)
{
	int64_t period = records_retention_period(ret, row->category), now = ehr_now_ms();
	bool held = false;

	memset(why, 0, sizeof(*why));
	memcpy(why->record_id, row->record_id, sizeof(why->record_id));
	memcpy(why->category, row->category, sizeof(why->category));
	/* Serialised with records_hold_place on the same patient. */
	GUARD(ehr_db_run(conn, "SELECT pg_advisory_xact_lock_shared(hashtext('ehr_hold:' || $1))", 1,
	                 (const char *const[]){ row->patient }));
	GUARD(hold_of(conn, row, why, &held));
	if (held)
		return ehr_error_set(EHR_ERR_CONFLICT, "the record is under a legal hold");
	if (period > 0 && period <= (INT64_MAX - row->created_ms) / 1000 &&
	    now < row->created_ms + period * 1000) {
		why->kind = RECORDS_REFUSED_RETENTION;
		why->retain_until_ms = row->created_ms + period * 1000;
		return ehr_error_set(EHR_ERR_CONFLICT, "the record is inside its minimum retention period");
	}
	memset(why, 0, sizeof(*why));
	return 0;
}

int records_erase_check(const struct records_env *env, const char *patient, const char *record_id,
                        const struct records_retention *ret, struct records_refusal *why)
{
	const char *p[2] = { patient, record_id ? record_id : "" };
	void *conn = NULL, *res = NULL;
	int err;

	memset(why, 0, sizeof(*why));
	ENSURE(env->db != NULL && patient != NULL, EHR_ERR_INVAL);
	GUARD(ehr_db_acquire(env->db, &conn));
	GUARD_GOTO(ehr_db_begin(conn));
	GUARD_GOTO(ehr_db_exec(conn, &res,
	                       "SELECT " RECORDS__ROW_COLS " FROM ehr_records WHERE patient = $1 AND state "
	                       "= 'stored' AND ($2 = '' OR record_id = $2) ORDER BY record_id",
	                       2, p));
	for (int i = 0; i < PQntuples(res); i++) {
		struct records_row row;

		GUARD_GOTO(records__row_decode(&row, res, i));
		GUARD_GOTO(records__check_row(conn, &row, ret, why));
	}
	err = ehr_db_commit(conn);
out:
	PQclear(res);
	ehr_db_release_after(env->db, conn, err);
	return err;
}

/* ------------------------------------------------------------- holds */

/* The hold's target: its patient (for a record: the record's), checked
 * to exist. */
static int hold_target(void *conn, const struct records_hold_in *in, char *patient, size_t cap)
{
	const char *p[1] = { in->record_id ? in->record_id : in->patient };
	void *res = NULL;
	int err;

	if ((in->patient == NULL) == (in->record_id == NULL))
		return ehr_error_set(EHR_ERR_INVAL, "a hold is on a patient or on a record");
	if (!records_hold_reason_ok(in->reason))
		return ehr_error_set(EHR_ERR_INVAL, "unknown hold reason");
	GUARD(ehr_db_exec(conn, &res,
	                  in->record_id ? "SELECT patient FROM ehr_records WHERE record_id = $1 AND state <> "
	                                  "'pending'"
	                                : "SELECT patient_id FROM auth_patients WHERE patient_id = $1",
	                  1, p));
	if (PQntuples(res) != 1)
		err = ehr_error_set(EHR_ERR_NOT_FOUND, in->record_id ? "no such record" : "no such patient");
	else
		err = ehr_db_get_text(patient, cap, res, 0, 0);
	PQclear(res);
	return err;
}

static int hold_log(const struct records_env *env, const char *type, const struct records_hold_in *in,
                    const char *patient, uint64_t hold_id, struct ledger_receipt *rcpt)
{
	json_t *pl = json_pack("{s:I, s:s, s:s}", "hold_id", (json_int_t)hold_id, "reason", in->reason, "on",
	                       in->record_id ? "record" : "patient");
	struct ledger_entry_in e = { type, in->actor, patient, pl };
	int err;

	ENSURE(pl != NULL, EHR_ERR_NOMEM);
	if (in->record_id)
		json_object_set_new(pl, "record_id", json_string(in->record_id));
	err = ledger_append(env->ledger, &e, rcpt);
	json_decref(pl);
	return err;
}

/* Run sql on conn; its one row's first column as a u64 into *v. */
static int one_u64(void *conn, const char *sql, int n, const char *const *p, uint64_t *v)
{
	void *res = NULL;
	int err;

	GUARD(ehr_db_exec(conn, &res, sql, n, p));
	err = PQntuples(res) == 1 ? ehr_parse_u64(v, PQgetvalue(res, 0, 0), INT64_MAX)
	                          : ehr_error_set(EHR_ERR_NOT_FOUND, "no such hold in force");
	PQclear(res);
	return err;
}

int records_hold_place(const struct records_env *env, const struct records_hold_in *in, uint64_t *hold_id,
                       struct ledger_receipt *rcpt)
{
	char patient[RECORDS_MAX_PID + 1], ids[24], seqs[24];
	const char *p[3] = { in->record_id ? NULL : in->patient, in->record_id, in->reason };
	void *conn = NULL;
	int err;

	ENSURE(env->db != NULL && env->ledger != NULL, EHR_ERR_UNAVAILABLE);
	GUARD(ehr_db_acquire(env->db, &conn));
	GUARD_GOTO(hold_target(conn, in, patient, sizeof(patient)));
	/* In force from this commit, before its entry: a crash leaves it held. */
	GUARD_GOTO(ehr_db_begin(conn));
	GUARD_GOTO(ehr_db_run(conn, "SELECT pg_advisory_xact_lock(hashtext('ehr_hold:' || $1))", 1,
	                      (const char *const[]){ patient }));
	err = one_u64(conn,
	              "INSERT INTO ehr_holds (patient, record_id, reason, placed_ms) VALUES ($1, $2, $3, "
	              "(extract(epoch from clock_timestamp()) * 1000)::bigint) RETURNING hold_id",
	              3, p, hold_id);
	if (err == EHR_ERR_CONFLICT)
		err = ehr_error_set(EHR_ERR_EXISTS, "that hold is already in force");
	GUARD_GOTO(err);
	GUARD_GOTO(ehr_db_commit(conn));
	GUARD_GOTO(hold_log(env, "ehr.hold.place", in, patient, *hold_id, rcpt));
	GUARD_GOTO(ehr_fmt(ids, sizeof(ids), "%llu", (unsigned long long)*hold_id));
	GUARD_GOTO(ehr_fmt(seqs, sizeof(seqs), "%llu", (unsigned long long)rcpt->seq));
	err = ehr_db_run(conn, "UPDATE ehr_holds SET placed_seq = $2::bigint WHERE hold_id = $1::bigint", 2,
	                 (const char *const[]){ ids, seqs });
out:
	ehr_db_release_after(env->db, conn, err);
	return err;
}

int records_hold_lift(const struct records_env *env, const struct records_hold_in *in, uint64_t *hold_id,
                      struct ledger_receipt *rcpt)
{
	char patient[RECORDS_MAX_PID + 1], ids[24], seqs[24];
	const char *p[3] = { in->record_id ? "" : in->patient, in->record_id ? in->record_id : "",
		             in->reason };
	void *conn = NULL;
	int err;

	ENSURE(env->db != NULL && env->ledger != NULL, EHR_ERR_UNAVAILABLE);
	GUARD(ehr_db_acquire(env->db, &conn));
	GUARD_GOTO(hold_target(conn, in, patient, sizeof(patient)));
	GUARD_GOTO(
	        one_u64(conn,
	                "SELECT hold_id FROM ehr_holds WHERE lifted_ms IS NULL AND coalesce(patient, '') = "
	                "$1 AND coalesce(record_id, '') = $2 AND reason = $3",
	                3, p, hold_id));
	/* The entry first: a crash before the row leaves the hold in force. */
	GUARD_GOTO(hold_log(env, "ehr.hold.lift", in, patient, *hold_id, rcpt));
	GUARD_GOTO(ehr_fmt(ids, sizeof(ids), "%llu", (unsigned long long)*hold_id));
	GUARD_GOTO(ehr_fmt(seqs, sizeof(seqs), "%llu", (unsigned long long)rcpt->seq));
	err = ehr_db_run(conn,
	                 "UPDATE ehr_holds SET lifted_seq = $2::bigint, lifted_ms = (extract(epoch from "
	                 "clock_timestamp()) * 1000)::bigint WHERE hold_id = $1::bigint",
	                 2, (const char *const[]){ ids, seqs });
out:
	ehr_db_release_after(env->db, conn, err);
	return err;
}

int records_hold_list(const struct records_env *env, json_t **out)
{
	void *res = NULL;
	json_t *arr;

	*out = NULL;
	GUARD(records__exec(
	        env, &res,
	        "SELECT json_build_object('hold_id', hold_id, 'patient', patient, 'record_id', "
	        "record_id, 'reason', reason, 'placed_ms', placed_ms, 'placed_seq', placed_seq)::text "
	        "FROM ehr_holds WHERE lifted_ms IS NULL ORDER BY hold_id",
	        0, NULL));
	arr = json_array();
	for (int i = 0; arr != NULL && i < PQntuples(res); i++) {
		json_t *j = NULL;
		const char *v = PQgetvalue(res, i, 0);

		if (ehr_json_parse(&j, v, strlen(v), 1u << 16, 4) == 0)
			json_array_append_new(arr, j);
	}
	PQclear(res);
	ENSURE(arr != NULL, EHR_ERR_NOMEM);
	*out = arr;
	return 0;
}
