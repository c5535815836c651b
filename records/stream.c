/*
 * stream.c - the streamed read of a record whose ehr.store entry commits
 * to its segment tags (docs/STORAGE.md §5a): nothing is spooled. With the
 * row share-locked and still stored, its tag list is loaded and checked
 * against the ledger's seg_tags_sha256; then the object is fetched and each
 * segment, matched to the list and authenticated, is released as it
 * arrives. The ehr.read entry is made durable after the first segment
 * verified and before its plaintext leaves; a failure later aborts the
 * reply short of its length, so it never looks complete.
 */
#include "records/records_internal.h"

#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "common/db.h"

struct streamed {
	const struct records_env *env;
	const struct records_get_in *in;
	const struct policy_request *q;
	const struct records_row *row;
	const struct records_sink *sink;
	struct records_get_out *out;
	void *conn; /* the row's share lock, until the ehr.read entry is durable */
	bool started;
};

/* After the first segment verified, before its plaintext leaves: the
 * read on the ledger, the lock released, the reply started. */
static int before_first(void *ctx)
{
	struct streamed *st = ctx;
	struct ledger_receipt rcpt;
	struct records_meta m;
	int err;

	st->out->stage = RECORDS_AT_COMMIT;
	err = records__log_read(st->env, st->in, st->q, st->row, &st->out->decision, &rcpt);
	if (err == 0)
		err = ehr_db_commit(st->conn);
	ehr_db_release_after(st->env->db, st->conn, err);
	st->conn = NULL;
	GUARD(err);
	st->out->stage = RECORDS_AT_STREAM;
	m = (struct records_meta){ st->row->record_id, st->row->content_type, st->row->category,
		                   st->row->meta.plain_size, rcpt.seq };
	st->started = true;
	return st->sink->start(st->sink->ud, &m);
}

/* Nothing was released: what the failure means for the caller. The row
 * was 'stored' and has been share-locked since, so no erasure removed the
 * object: a missing one is tampering. */
static int not_released(struct streamed *st, int err)
{
	if (err != EHR_ERR_NOT_FOUND || st->out->stage != RECORDS_AT_OBJECT)
		return err;
	return ehr_error_set(EHR_ERR_TAMPER, "object missing");
}

int records__get_streamed(const struct records_env *env, const struct records_get_in *in,
                          const struct policy_request *q, struct records_row *row,
                          const struct cloud_kek *kek, const uint8_t tags_sha[32], void *conn,
                          struct ehr_buf *tags, const struct records_sink *sink, struct records_get_out *out)
{
	struct streamed st = { env, in, q, row, sink, out, conn, false };
	uint8_t h[32];
	bool released = false;
	int err;

	out->stage = RECORDS_AT_OBJECT; /* a list unlike the ledger's: the stored data is not the record */
	if (tags->len % CLOUD_TAG_LEN != 0 || SHA256(tags->data, tags->len, h) == NULL ||
	    CRYPTO_memcmp(h, tags_sha, 32) != 0) {
		err = ehr_error_set(EHR_ERR_TAMPER, "record %s: segment tags differ from the ledger's",
		                    row->record_id);
		goto out;
	}
	row->meta.seg_tags = tags;
	err = cloud_record_stream(env->store, kek, &row->meta, before_first, &st, sink->write, sink->ud,
	                          &released);
	row->meta.seg_tags = NULL;
	if (st.started) {
		/* The reply began: a failure now can only cut it short. */
		if (err < 0 && err != EHR_ERR_IO)
			ehr_logf(EHR_LOG_ERROR, "ehr.read_aborted", "reply aborted: %s", ehr_error_detail());
		sink->end(sink->ud, err == 0);
		out->stage = RECORDS_AT_NONE;
		err = 0;
	} else if (err < 0) {
		err = not_released(&st, err);
	}
out:
	if (st.conn != NULL) /* rolled back: nothing was released */
		ehr_db_release_after(env->db, st.conn, err < 0 ? err : EHR_ERR_INTERNAL);
	return err;
}
