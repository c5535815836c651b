/*
 * read.c - records_get: the read sequence (docs/STORAGE.md §5).
 *
 *   row share-locked (records__row_lock) -> decision on it (a denial
 *   recorded at once) -> the ledger's ehr.store entry (cached, or on the
 *   row's connection) -> object spooled, size and SHA-256 equal to the ledger's ->
 *   every segment's GCM tag verified -> access.decision + ehr.read in ONE
 *   durable ledger batch -> the sink: the plaintext streamed from the
 *   verified spool, each segment's tag checked again as it is decrypted.
 *
 * One durable wait per read: an allowed decision is appended with the
 * ehr.read entry (consecutive seqs, all or nothing), still before any byte
 * is released; a read that stops earlier (erased, tampered, a store
 * failure) records the decision alone on its way out. The row's share
 * lock commits without a WAL flush of its own (EHR_DB_BEGIN_COVERED, ehr_db_exec_steps).
 */
#include "records/records_internal.h"

#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "common/db.h"

/* The ledger is the authority on what was stored: find the ehr.store
 * entry at the row's seq that names this record. */
struct ledger_check {
	const char *rid;
	uint8_t sha[32];
	uint64_t size;
	bool found;
	uint8_t tags_sha[32]; /* seg_tags_sha256, when the entry has it */
	bool has_tags;
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
		lc->has_tags = ehr_json_get_str(j, "seg_tags_sha256", &sha, 64) == 0 && strlen(sha) == 64 &&
		               ehr_hex_decode(lc->tags_sha, 32, sha, 64) == 0;
	}
	json_decref(j);
	return 0;
}

/* Allowed or denied, the decision is recorded before it is acted on: a
 * denial here (after *conn, the row's lock, is given back), an allowed
 * one with the ehr.read entry (records__log_read) or alone when the read
 * stops before it (records_get). */
static int get_decide(const struct records_env *env, void **conn, const struct policy_request *q,
                      struct records_decision *d)
{
	int err = records__decide(*conn, q, d);

	if (err < 0 || d->dec.effect != POLICY_ALLOW) {
		ehr_db_release_after(env->db, *conn, err < 0 ? err : EHR_ERR_FORBIDDEN);
		*conn = NULL;
	}
	GUARD(err);
	if (d->dec.effect == POLICY_ALLOW)
		return 0; /* d->state stays NONE: recorded later, before a byte leaves */
	GUARD(records__record(env->ledger, q, d));
	return ehr_error_set(EHR_ERR_FORBIDDEN, "%s", d->dec.reason);
}

/* The row's ledger entry gives the ciphertext's size and hash; the KEK
 * set must hold the row's key (reloaded once if it does not). */
static int get_verify_meta(const struct records_env *env, void *conn, struct records_row *row,
                           const struct cloud_kek **kek, struct ledger_check *lc, struct records_get_out *out)
{
	memset(lc, 0, sizeof(*lc));
	lc->rid = row->record_id;
	out->stage = RECORDS_AT_LEDGER;
	/* on the row's connection: a second one could wait for a pool whose
	 * every connection is held by a read waiting the same way */
	if (ledger_get_entry_on(env->ledger, conn, row->ledger_seq, ledger_entry_cb, lc) < 0)
		return EHR_ERR_UNAVAILABLE; /* the message and detail stay in the slot */
	if (!lc->found)
		return ehr_error_set(EHR_ERR_TAMPER, "record %s has no matching ledger entry",
		                     row->record_id);
	row->meta.ct_size = lc->size;
	memcpy(row->meta.ct_sha256, lc->sha, 32);
	out->stage = RECORDS_AT_KEYS;
	GUARD(obj_store_keks(env->store, false, kek));
	if (!cloud_kek_has(*kek, row->meta.kid))
		GUARD(obj_store_keks(env->store, true, kek));
	return 0;
}

/* The read, on the ledger before a byte is released: the allowed decision
 * and the ehr.read entry in one batch, one durable wait. */
int records__log_read(const struct records_env *env, const struct records_get_in *in,
                      const struct policy_request *q, const struct records_row *row,
                      struct records_decision *d, struct ledger_receipt *rcpt)
{
	json_t *dp = NULL, *payload = records__payload(row->record_id, row->meta.ct_sha256, row->meta.ct_size,
	                                               in->actor, row->patient);
	struct ledger_entry_in e[2] = { { 0 }, { "ehr.read", in->actor, row->patient, payload } };
	struct ledger_receipt rc[2];
	int err = 0;

	ENSURE_GOTO(payload != NULL, EHR_ERR_NOMEM);
	json_object_set_new(payload, "basis", json_string(d->dec.reason));
	if (in->token_jti && *in->token_jti)
		json_object_set_new(payload, "jti", json_string(in->token_jti));
	GUARD_GOTO(policy_decision_entry(&e[0], &dp, q, &d->dec));
	GUARD_GOTO(ledger_append_n(env->ledger, e, 2, rc));
	*rcpt = rc[1];
out:
	d->state = err < 0 ? RECORDS_DECISION_UNRECORDED : RECORDS_DECISION_RECORDED;
	json_decref(dp);
	json_decref(payload);
	return err;
}

/* The read stopped before its ehr.read batch (err < 0): the allowed
 * decision goes to the ledger alone; err is kept unless that fails. */
static int get_record_alone(const struct records_env *env, const struct policy_request *q,
                            struct records_decision *d, int err)
{
	struct ehr_error_saved saved;
	int rerr;

	ehr_error_save(&saved);
	if ((rerr = records__record(env->ledger, q, d)) < 0)
		return rerr;
	ehr_error_restore(&saved);
	return err;
}

/* The record is erased, or being erased: stage ERASED, with the ehr.erase
 * entry once it is durable. */
int records__gone(struct records_get_out *out, bool logged, uint64_t seq)
{
	out->stage = RECORDS_AT_ERASED;
	out->erase_logged = logged;
	out->erase_seq = seq;
	return ehr_error_set(EHR_ERR_NOT_FOUND, "the record was erased");
}

int records__row_lock(const struct records_env *env, const char *rid, void **conn, struct records_row *row,
                      struct ehr_buf *tags)
{
	const char *p[1] = { rid };
	unsigned char *raw = NULL;
	size_t len = 0;
	void *res = NULL;
	int err = 0;

	GUARD(ehr_db_acquire(env->db, conn));
	GUARD_GOTO(ehr_db_exec_steps(*conn, &res, EHR_DB_BEGIN_COVERED,
	                             "SELECT " RECORDS__ROW_COLS ", seg_tags FROM ehr_records "
	                             "WHERE record_id = $1 FOR SHARE",
	                             1, p));
	if (ehr_db_rows(res) != 1) {
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no such record");
		goto out;
	}
	GUARD_GOTO(records__row_decode(row, res, 0));
	if (!ehr_db_is_null(res, 0, 14)) {
		raw = PQunescapeBytea((const unsigned char *)ehr_db_value(res, 0, 14), &len);
		ENSURE_GOTO(raw != NULL, EHR_ERR_NOMEM);
		err = ehr_buf_append(tags, raw, len);
		PQfreemem(raw);
	}
out:
	ehr_db_clear(res);
	if (err < 0) {
		ehr_db_release_after(env->db, *conn, err == EHR_ERR_NOT_FOUND ? EHR_ERR_INTERNAL : err);
		*conn = NULL;
	}
	return err;
}

/* The whole record verified in cloud_record_open; each segment is checked
 * again as it is decrypted. A failure now (the sink failed, the spool
 * broke) ends the sink incomplete, so no reader takes it for a record. */
static void get_stream(struct cloud_record_reader *rr, const struct records_sink *sink,
                       const struct records_meta *m)
{
	bool done = false;
	int err = sink->start(sink->ud, m);

	while (err == 0 && !done &&
	       (err = cloud_record_read(rr, 1u << 20, sink->write, sink->ud, &done)) == 0)
		;
	if (err < 0 && err != EHR_ERR_IO)
		ehr_logf(EHR_LOG_ERROR, "ehr.read_aborted", "reply aborted: %s", ehr_error_detail());
	sink->end(sink->ud, err == 0 && done);
}

/* After the checks: spool and verify the object, then, with the row
 * share-locked and still stored, the ehr.read entry. *rr on success. */
static int get_open_logged(const struct records_env *env, const struct records_get_in *in,
                           const struct policy_request *q, struct records_row *row,
                           const struct cloud_kek *kek, void *conn, struct cloud_record_reader **rr,
                           struct ledger_receipt *rcpt, struct records_get_out *out)
{
	int err;

	/* Spool, check the ledger hash, verify every tag: nothing is released
	 * unless the whole record is good. */
	out->stage = RECORDS_AT_OBJECT;
	if ((err = cloud_record_open(rr, env->store, kek, &row->meta)) < 0) {
		/* stored, and the row share-locked since: nothing erased it */
		ehr_db_release_after(env->db, conn, EHR_ERR_INTERNAL);
		return err != EHR_ERR_NOT_FOUND ? err : ehr_error_set(EHR_ERR_TAMPER, "object missing");
	}
	out->stage = RECORDS_AT_COMMIT;
	err = records__log_read(env, in, q, row, &out->decision, rcpt);
	if (err == 0)
		err = ehr_db_commit(conn);
	ehr_db_release_after(env->db, conn, err);
	if (err < 0) {
		cloud_record_close(*rr);
		*rr = NULL;
	}
	return err;
}

int records_get(const struct records_env *env, const struct records_get_in *in,
                const struct records_sink *sink, struct records_get_out *out)
{
	const struct cloud_kek *kek = NULL;
	struct cloud_record_reader *rr = NULL;
	struct policy_request q = *in->policy;
	struct ledger_receipt rcpt = { 0 };
	struct ehr_buf tags = EHR_BUF_INIT(64u << 20);
	struct records_row row;
	struct records_meta m;
	struct ledger_check lc;
	void *conn = NULL;
	bool streamed = false;
	int err;

	memset(out, 0, sizeof(*out));
	ENSURE(env->db != NULL && env->ledger != NULL && env->store != NULL, EHR_ERR_UNAVAILABLE);
	out->stage = RECORDS_AT_ROW;
	if ((err = records__row_lock(env, in->record_id, &conn, &row, &tags)) < 0) {
		ehr_buf_free(&tags);
		return err == EHR_ERR_NOT_FOUND ? err : EHR_ERR_UNAVAILABLE;
	}
	if (row.state == ROW_PENDING) {
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no such record");
		goto out;
	}
	q.patient = row.patient;
	q.action = POLICY_ACT_READ;
	q.record_id = row.record_id;
	q.category = row.category[0] ? row.category : NULL;
	out->stage = RECORDS_AT_POLICY;
	if ((err = get_decide(env, &conn, &q, &out->decision)) < 0)
		goto out;
	/* Only who may read it learns that it was erased. */
	if (row.state != ROW_STORED) {
		err = records__gone(out, row.erase_logged, row.erase_seq);
	} else if ((err = get_verify_meta(env, conn, &row, &kek, &lc, out)) == 0) {
		/* segment by segment, as the object arrives (stream.c); the whole
		 * object first for a row fsck completed (no tag list) or an entry
		 * that commits to none. Either way conn, the lock, goes with it. */
		if (lc.has_tags && tags.len > 0) {
			err = records__get_streamed(env, in, &q, &row, kek, lc.tags_sha, conn, &tags, sink,
			                            out);
			streamed = err == 0;
		} else {
			err = get_open_logged(env, in, &q, &row, kek, conn, &rr, &rcpt, out);
		}
		conn = NULL;
	}
out:
	/* the lock goes before the decision alone is recorded */
	ehr_db_release_after(env->db, conn, err < 0 ? err : EHR_ERR_INTERNAL);
	OPENSSL_cleanse(row.meta.wrapped, sizeof(row.meta.wrapped));
	ehr_buf_free(&tags);
	if (out->decision.state == RECORDS_DECISION_NONE && out->stage != RECORDS_AT_ROW)
		err = get_record_alone(env, &q, &out->decision, err);
	if (err < 0 || streamed)
		return err;
	out->stage = RECORDS_AT_STREAM;
	m = (struct records_meta){ row.record_id, row.content_type, row.category, row.meta.plain_size,
		                   rcpt.seq };
	get_stream(rr, sink, &m);
	cloud_record_close(rr);
	out->stage = RECORDS_AT_NONE;
	return 0;
}
