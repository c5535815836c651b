/*
 * upload.c - records_put: the upload sequence (docs/STORAGE.md §4).
 *
 *   patient exists -> decision (a denial recorded at once) -> row 'pending'
 *   holding the wrapped data key -> object streamed through the STREAM
 *   encryptor -> in ONE transaction holding the patient's row
 *   share-locked: the patient still enrolled, access.decision + ehr.store
 *   in ONE durable ledger batch, row 'stored'.
 *
 * One durable wait per upload: the ledger batch (shared with every other
 * request in it). The pending row commits before it and the row 'stored'
 * after it without their own WAL flush (EHR_DB_BEGIN_COVERED, ehr_db_exec_steps): PostgreSQL
 * flushes its WAL in order, so the batch's durable commit carries the
 * pending row; a row left 'pending' by a crash after the batch is
 * completed from the ledger by fsck, as before.
 *
 * The share lock is what makes an upload racing a patient erasure safe
 * (docs/ERASURE.md §10): the erasure takes the patient's row FOR UPDATE
 * and revokes it before it lists the records to erase. Either it waits
 * for this upload's commit and then erases the stored record, or it
 * committed first and this upload finds the patient revoked, removes the
 * object and the row and fails with RECORDS_AT_PATIENT (410 for the
 * gateway). No upload is acknowledged for an erased patient.
 *
 * A failure before the ledger batch removes the object and the row; after
 * it, `ehrgate fsck` completes the row. So no ledger entry ever names an
 * object that was not stored, and no acknowledged record can be lost. The
 * checks share one pooled connection, released before the body streams.
 */
#include "records/records_internal.h"

#include <string.h>

#include "common/db.h"

/* The body as the encryptor's input; remembers why it failed, so a client
 * that went away is not reported as a store failure. */
struct body_src {
	records_source_fn read;
	void *ud;
	int err;
};

static int body_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct body_src *b = ctx;
	int err = b->read(b->ud, buf, cap, got);

	if (err < 0)
		b->err = err;
	return err;
}

/* Keys for a new record: the current KEK, a fresh record id, a wrapped data key. */
static int new_keys(struct obj_store *st, const struct cloud_kek **kek, struct cloud_record_meta *m)
{
	GUARD(obj_store_keks(st, false, kek));
	GUARD(cloud_rid_new(m->rid));
	return cloud_record_prepare(*kek, m);
}

/*
 * On one connection: the patient, the decision, and (if allowed) the keys
 * and the pending row. A denial is recorded after the connection is back.
 */
static int put_begin(const struct records_env *env, const struct records_put_in *in,
                     const struct policy_request *q, struct records_put_out *out,
                     const struct cloud_kek **kek, struct cloud_record_meta *m)
{
	void *conn = NULL;
	int err;

	out->stage = RECORDS_AT_PATIENT;
	GUARD(ehr_db_acquire(env->db, &conn));
	/* The pending row needs no WAL flush of its own: the ledger batch's
	 * durable commit comes after it and flushes it too, and a row lost
	 * with no entry leaves only an orphan object for fsck. */
	if ((err = records__patient_exists(conn, in->patient, false, EHR_DB_BEGIN_COVERED)) < 0)
		goto out;
	out->stage = RECORDS_AT_POLICY;
	if ((err = records__decide(conn, q, &out->decision)) < 0 || out->decision.dec.effect != POLICY_ALLOW)
		goto out;
	out->stage = RECORDS_AT_KEYS;
	if ((err = new_keys(env->store, kek, m)) < 0)
		goto out;
	out->stage = RECORDS_AT_PENDING;
	err = records__row_insert_pending(conn, in->patient, in->stored_by, in->content_type, in->category, m,
	                                  EHR_DB_COMMIT);
out:
	if (err == 0 && out->stage == RECORDS_AT_POLICY)
		ehr_db_rollback(conn); /* denied: nothing was written */
	ehr_db_release_after(env->db, conn, err);
	if (err == 0 && out->stage == RECORDS_AT_POLICY) {
		/* Appending needs a contract with "append" (docs/CONTRACTS.md §2). */
		GUARD(records__record(env->ledger, q, &out->decision));
		return ehr_error_set(EHR_ERR_FORBIDDEN, "%s", out->decision.dec.reason);
	}
	return err;
}

/* Nothing names the object: remove it and the row. */
static void put_undo(const struct records_env *env, const struct cloud_record_meta *m, bool object)
{
	char key[128], rid[CLOUD_RID_HEX];

	if (object && cloud_record_key(key, sizeof(key), m->rid) == 0 &&
	    obj_store_delete(env->store, key) < 0)
		ehr_logf(EHR_LOG_WARN, "ehr.orphan_left", "object left for fsck");
	cloud_rid_hex(rid, m->rid);
	if (records__row_delete_pending(env, rid) < 0)
		ehr_logf(EHR_LOG_WARN, "ehr.pending_left", "a pending row was left for fsck: %s",
		         ehr_error_detail());
}

/* The access.decision and the ehr.store entries, in that order, in one
 * batch: one durable wait, consecutive seqs, all or nothing. */
static int put_ledger(const struct records_env *env, const struct records_put_in *in,
                      const struct policy_request *q, const struct cloud_record_meta *m,
                      struct records_put_out *out)
{
	struct ledger_receipt rc[2];
	json_t *dp = NULL,
	       *sp = records__payload(out->record_id, m->ct_sha256, m->ct_size, in->actor, in->patient);
	struct ledger_entry_in e[2] = { { 0 }, { "ehr.store", in->actor, in->patient, sp } };
	int err = 0;

	ENSURE_GOTO(sp != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(records__payload_tags(sp, m->seg_tags));
	GUARD_GOTO(policy_decision_entry(&e[0], &dp, q, &out->decision.dec));
	GUARD_GOTO(ledger_append_n(env->ledger, e, 2, rc));
	out->rcpt = rc[1];
out:
	out->decision.state = err < 0 ? RECORDS_DECISION_UNRECORDED : RECORDS_DECISION_RECORDED;
	json_decref(dp);
	json_decref(sp);
	return err;
}

/*
 * The end of an upload, in one transaction on the patient's share-locked
 * row (see the top of the file): the patient still enrolled (else stage
 * RECORDS_AT_PATIENT, nothing in the ledger), the ledger batch (stage
 * RECORDS_AT_COMMIT), the row 'stored' (stage RECORDS_AT_COMPLETE: a
 * failure leaves the row 'pending' for fsck, which completes it from the
 * ledger).
 */
static int put_commit(const struct records_env *env, const struct records_put_in *in,
                      const struct policy_request *q, const struct cloud_record_meta *m,
                      struct records_put_out *out)
{
	void *conn = NULL;
	int err;

	out->stage = RECORDS_AT_PATIENT;
	GUARD(ehr_db_acquire(env->db, &conn));
	/* The ledger batch is the one durable wait: this transaction's own
	 * commit (the lock and the row 'stored') is not waited for; a row it
	 * leaves 'pending' after a crash is completed by fsck from the entry. */
	GUARD_GOTO(records__patient_exists(conn, in->patient, true, EHR_DB_BEGIN_COVERED));
	ehr_failpoint_wait("upload.locked");
	out->stage = RECORDS_AT_COMMIT;
	GUARD_GOTO(put_ledger(env, in, q, m, out));
	out->stage = RECORDS_AT_COMPLETE;
	err = records__row_complete(env, conn, out->record_id, out->rcpt.seq, m->plain_size, m->ct_size,
	                            m->ct_sha256, m->seg_tags, false, EHR_DB_COMMIT);
out:
	ehr_db_release_after(env->db, conn, err);
	return err;
}

static int put_run(const struct records_env *env, const struct records_put_in *in,
                   struct records_put_out *out, struct ehr_buf *tags)
{
	const struct cloud_kek *kek = NULL;
	struct body_src src = { in->read, in->read_ud, 0 };
	struct policy_request q = *in->policy;
	struct cloud_record_meta m;
	int err;

	memset(out, 0, sizeof(*out));
	memset(&m, 0, sizeof(m));
	m.seg_tags = tags; /* the segment tags, for the ledger and the row */
	ENSURE(env->db != NULL && env->ledger != NULL && env->store != NULL, EHR_ERR_UNAVAILABLE);
	q.patient = in->patient;
	q.action = POLICY_ACT_APPEND;
	q.record_id = NULL;
	q.category = in->category && *in->category ? in->category : NULL;
	GUARD(put_begin(env, in, &q, out, &kek, &m));
	cloud_rid_hex(out->record_id, m.rid);

	out->stage = RECORDS_AT_OBJECT;
	if ((err = cloud_record_put_sized(env->store, kek, &m, body_read, &src, in->max_bytes,
	                                  in->declared_len)) < 0) {
		put_undo(env, &m, false);
		out->source_err = src.err;
		if (src.err != 0)
			out->stage = RECORDS_AT_BODY;
		return err;
	}
	err = put_commit(env, in, &q, &m, out);
	if (err < 0 && out->stage != RECORDS_AT_COMPLETE) {
		/* Nothing in the ledger names the object: undo it. */
		if (out->stage == RECORDS_AT_COMMIT)
			ehr_logf(EHR_LOG_WARN, "ehr.ledger_failed", "%s", ehr_error_detail());
		put_undo(env, &m, true);
		return err;
	}
	if (err < 0) {
		/* Stored and in the ledger; fsck completes the row. Say so. */
		ehr_logf(EHR_LOG_ERROR, "ehr.row_incomplete",
		         "record in ledger, row left pending for fsck: %s", ehr_error_detail());
		return err;
	}
	GUARD(ehr_hex_encode_fixed(out->sha256, sizeof(out->sha256), m.ct_sha256, 32));
	out->plain_size = m.plain_size;
	out->ct_size = m.ct_size;
	out->stage = RECORDS_AT_NONE;
	return 0;
}

int records_put(const struct records_env *env, const struct records_put_in *in, struct records_put_out *out)
{
	struct ehr_buf tags = EHR_BUF_INIT(64u << 20);
	int err = put_run(env, in, out, &tags);

	ehr_buf_free(&tags);
	return err;
}
