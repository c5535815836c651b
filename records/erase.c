/*
 * erase.c - records_erase: crypto-shredding of one record (docs/ERASURE.md).
 *
 *   row locked -> retention and holds (a refusal: ehr.erase.refused) ->
 *   ONE transaction: row 'erasing', wrapped data key and KEK id wiped, the
 *   request (basis, by, actor) kept -> ehr.erase durable, erase_seq set ->
 *   object deleted -> row 'erased'.
 *
 * The wipe is the point of no return: from its commit no read can unwrap
 * the data key (reads share-lock the row until their ehr.read is durable,
 * read.c), and everything after it is finished from the row alone, by a
 * repeated call or by `ehrgate fsck` (records__erase_finish), so a crash
 * at any step leaves a state that completes and never one that undoes an
 * acknowledged erasure.
 */
#include "records/records_internal.h"

#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "common/db.h"

const char *const records_erase_bases[] = {
	"gdpr-17-1-a", /* no longer necessary for the purpose */
	"gdpr-17-1-b", /* consent withdrawn */
	"gdpr-17-1-c", /* objection under Art. 21 */
	"gdpr-17-1-d", /* unlawfully processed */
	"gdpr-17-1-e", /* a legal obligation to erase */
	"gdpr-17-1-f", /* collected from a child under Art. 8(1) */
	"patient-request", "court-order", NULL,
};

bool records__code_in(const char *const *list, const char *code)
{
	for (size_t i = 0; code != NULL && list[i] != NULL; i++)
		if (strcmp(list[i], code) == 0)
			return true;
	return false;
}

bool records_erase_basis_ok(const char *code)
{
	return records__code_in(records_erase_bases, code);
}

json_t *records__erase_payload(const char *rid, const char *basis, const char *requested_by)
{
	return json_pack("{s:s, s:s, s:s}", "record_id", rid, "basis", basis, "requested_by", requested_by);
}

/* ------------------------------------------------ the ehr.erase entry */

struct erase_find {
	const char *rid;
	bool found;
	uint64_t seq;
	uint64_t last; /* the last entry seen, for the next page */
	unsigned n;    /* entries seen on this page */
};

static int erase_find_cb(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct erase_find *f = ctx;
	const char *rid = NULL;
	json_t *j = NULL;

	(void)raw;
	(void)raw_len;
	f->n++;
	f->last = e->seq;
	if (f->found || strcmp(e->type, "ehr.erase") != 0 ||
	    ehr_json_parse(&j, e->payload, e->payload_len, LEDGER_MAX_PAYLOAD, 8) < 0)
		return 0;
	if (ehr_json_get_str(j, "record_id", &rid, 64) == 0 && strcmp(rid, f->rid) == 0) {
		f->found = true;
		f->seq = e->seq;
	}
	json_decref(j);
	return 0;
}

/* An ehr.erase entry for rid already in the ledger (a crash after it was
 * durable and before erase_seq was set), looked up by its subject. */
static int erase_find(struct ledger *l, const char *patient, const char *rid, struct erase_find *f)
{
	struct ledger_query q = { .type = "ehr.erase", .subject = patient, .limit = 10000 };

	memset(f, 0, sizeof(*f));
	f->rid = rid;
	for (;;) {
		f->n = 0;
		GUARD(ledger_query(l, &q, erase_find_cb, f));
		if (f->found || f->n < q.limit)
			return 0;
		q.from_seq = f->last + 1;
	}
}

/* The row of rid, locked FOR UPDATE on conn (in a transaction), with the
 * erasure's request columns. */
static int row_lock(void *conn, const char *rid, struct records_row *row, char *basis, size_t bcap, char *by,
                    size_t bycap, char *actor, size_t acap)
{
	const char *p[1] = { rid };
	void *res = NULL;
	int err;

	GUARD(ehr_db_exec(conn, &res,
	                  "SELECT " RECORDS__ROW_COLS ", coalesce(erase_basis, ''), coalesce(erase_by, ''), "
	                  "coalesce(erase_actor, '') FROM ehr_records WHERE record_id = $1 FOR UPDATE",
	                  1, p));
	if (PQntuples(res) != 1)
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no such record");
	else if ((err = records__row_decode(row, res, 0)) == 0 &&
	         (err = ehr_db_get_text(basis, bcap, res, 0, 14)) == 0 &&
	         (err = ehr_db_get_text(by, bycap, res, 0, 15)) == 0)
		err = ehr_db_get_text(actor, acap, res, 0, 16);
	PQclear(res);
	return err;
}

/* The ehr.erase entry of an 'erasing' row: the one already in the ledger,
 * or appended now from what the row kept; then erase_seq, on conn. */
static int finish_log(const struct records_env *env, void *conn, const struct records_row *row,
                      const char *basis, const char *by, const char *actor, uint64_t *seq)
{
	struct erase_find f;
	struct ledger_receipt rc;
	char seqs[24];
	const char *p[2] = { row->record_id, seqs };

	GUARD(erase_find(env->ledger, row->patient, row->record_id, &f));
	if (f.found) {
		*seq = f.seq;
	} else {
		json_t *pl = records__erase_payload(row->record_id, basis, by);
		struct ledger_entry_in e = { "ehr.erase", actor, row->patient, pl };
		int err;

		ENSURE(pl != NULL, EHR_ERR_NOMEM);
		json_object_set_new(pl, "store_seq", json_integer((json_int_t)row->ledger_seq));
		err = ledger_append(env->ledger, &e, &rc);
		json_decref(pl);
		GUARD(err);
		*seq = rc.seq;
	}
	ehr_failpoint("erase.logged");
	GUARD(ehr_fmt(seqs, sizeof(seqs), "%llu", (unsigned long long)*seq));
	return ehr_db_run(conn, "UPDATE ehr_records SET erase_seq = $2::bigint WHERE record_id = $1", 2, p);
}

/* Step 2 under the row lock: nothing to do if erased, the entry if it is
 * not yet durable. *done: the row was already 'erased'. */
static int finish_entry(const struct records_env *env, const char *rid, uint64_t *seq, bool *done)
{
	char basis[64], by[32], actor[128];
	struct records_row row;
	void *conn = NULL;
	int err;

	*done = false;
	GUARD(ehr_db_acquire(env->db, &conn));
	GUARD_GOTO(ehr_db_begin(conn));
	GUARD_GOTO(row_lock(conn, rid, &row, basis, sizeof(basis), by, sizeof(by), actor, sizeof(actor)));
	if (row.state == ROW_ERASED) {
		*seq = row.erase_seq;
		*done = true;
		goto out;
	}
	ENSURE_GOTO(row.state == ROW_ERASING, EHR_ERR_CONFLICT);
	if (row.erase_logged)
		*seq = row.erase_seq;
	else
		GUARD_GOTO(finish_log(env, conn, &row, basis, by, actor, seq));
	err = ehr_db_commit(conn);
out:
	ehr_db_release_after(env->db, conn, err);
	return err;
}

int records__erase_finish(const struct records_env *env, const char *rid, uint64_t *seq,
                          enum records_stage *stage)
{
	const char *p[1] = { rid };
	uint8_t ridb[CLOUD_RID_LEN];
	char key[128];
	void *res = NULL;
	bool done = false;

	*stage = RECORDS_AT_COMMIT;
	GUARD(cloud_rid_parse(ridb, rid));
	GUARD(finish_entry(env, rid, seq, &done));
	if (done)
		return 0;
	*stage = RECORDS_AT_OBJECT;
	GUARD(cloud_record_key(key, sizeof(key), ridb));
	GUARD(obj_store_delete(env->store, key)); /* absent is success */
	ehr_failpoint("erase.deleted");
	*stage = RECORDS_AT_COMPLETE;
	GUARD(records__exec(
	        env, &res,
	        "UPDATE ehr_records SET state = 'erased' WHERE record_id = $1 AND state = 'erasing'", 1, p));
	PQclear(res);
	*stage = RECORDS_AT_NONE;
	return 0;
}

/* ------------------------------------------------------- the request */

/* The refusal, on the ledger: ehr.erase.refused names the record, the
 * basis asked for and why (codes and ids only). */
static int log_refusal(const struct records_env *env, const struct records_erase_in *in, const char *patient,
                       struct records_refusal *why)
{
	json_t *pl = records__erase_payload(in->record_id, in->basis, in->requested_by);
	struct ledger_entry_in e = { "ehr.erase.refused", in->actor, patient, pl };
	struct ledger_receipt rc;
	int err;

	ENSURE(pl != NULL, EHR_ERR_NOMEM);
	records_refusal_json(pl, why);
	err = ledger_append(env->ledger, &e, &rc);
	json_decref(pl);
	GUARD(err);
	why->refused_seq = rc.seq;
	return 0;
}

/* Step 1: lock the row, check it, and wipe its key in one transaction.
 * Returns 0 with the row 'erasing' (now or from an earlier request), or
 * with out->was_erased; EHR_ERR_CONFLICT with the refusal, unrecorded. */
static int erase_begin(const struct records_env *env, const struct records_erase_in *in,
                       struct records_erase_out *out, char *patient, size_t pcap)
{
	const char *p[4] = { in->record_id, in->basis, in->requested_by, in->actor };
	char basis[64], by[32], actor[128];
	struct records_row row;
	void *conn = NULL;
	int err;

	out->stage = RECORDS_AT_ROW;
	GUARD(ehr_db_acquire(env->db, &conn));
	GUARD_GOTO(ehr_db_begin(conn));
	GUARD_GOTO(row_lock(conn, in->record_id, &row, basis, sizeof(basis), by, sizeof(by), actor,
	                    sizeof(actor)));
	if (row.state == ROW_PENDING) {
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no such record");
		goto out;
	}
	GUARD_GOTO(ehr_fmt(patient, pcap, "%s", row.patient));
	out->stage = RECORDS_AT_POLICY;
	if (in->patient != NULL && strcmp(row.patient, in->patient) != 0) {
		err = ehr_error_set(EHR_ERR_FORBIDDEN, "a patient may erase only their own records");
		goto out;
	}
	if (row.state != ROW_STORED) { /* erased, or an erasure to finish */
		out->was_erased = row.state == ROW_ERASED;
		out->erase_seq = row.erase_seq;
		goto out;
	}
	out->stage = RECORDS_AT_PENDING;
	if ((err = records__check_row(conn, &row, in->retention, &out->refusal)) < 0) {
		if (err == EHR_ERR_CONFLICT) /* refused; any other error is the database's */
			out->stage = RECORDS_AT_REFUSED;
		goto out;
	}
	GUARD_GOTO(ehr_db_run(conn,
	                      "UPDATE ehr_records SET state = 'erasing', wrapped_key = NULL, kek_id = NULL, "
	                      "erase_basis = $2, erase_by = $3, erase_actor = $4, erase_ms = "
	                      "(extract(epoch from clock_timestamp()) * 1000)::bigint WHERE record_id = $1",
	                      4, p));
	err = ehr_db_commit(conn);
out:
	OPENSSL_cleanse(row.meta.wrapped, sizeof(row.meta.wrapped));
	ehr_db_release_after(env->db, conn, err);
	return err;
}

int records_erase(const struct records_env *env, const struct records_erase_in *in,
                  struct records_erase_out *out)
{
	uint8_t ridb[CLOUD_RID_LEN];
	char patient[RECORDS_MAX_PID + 1] = "";
	int err;

	memset(out, 0, sizeof(*out));
	ENSURE(env->db != NULL && env->ledger != NULL && env->store != NULL, EHR_ERR_UNAVAILABLE);
	if (in->record_id == NULL || cloud_rid_parse(ridb, in->record_id) < 0)
		return ehr_error_set(EHR_ERR_INVAL, "record id must be 32 lower-case hex digits");
	if (!records_erase_basis_ok(in->basis))
		return ehr_error_set(EHR_ERR_INVAL, "unknown legal basis");
	ENSURE(in->actor != NULL && in->requested_by != NULL, EHR_ERR_INVAL);
	if ((err = erase_begin(env, in, out, patient, sizeof(patient))) == EHR_ERR_CONFLICT &&
	    out->stage == RECORDS_AT_REFUSED) {
		out->stage = RECORDS_AT_COMMIT;
		GUARD(log_refusal(env, in, patient, &out->refusal));
		out->stage = RECORDS_AT_REFUSED;
		return ehr_error_set(EHR_ERR_CONFLICT, "erasure refused");
	}
	GUARD(err);
	if (out->was_erased)
		return 0;
	ehr_failpoint("erase.wiped");
	return records__erase_finish(env, in->record_id, &out->erase_seq, &out->stage);
}
