/*
 * records_internal.h - shared by the files of records/: the row of
 * ehr_records and the SQL on it (records.c), used by the sequences in
 * upload.c, read.c and scan.c.
 */
#ifndef EHR_RECORDS_INTERNAL_H
#define EHR_RECORDS_INTERNAL_H

#include "records/records.h"

enum records_row_state { ROW_PENDING, ROW_STORED, ROW_ERASING, ROW_ERASED };

/* One row of ehr_records (an erasing or erased row has no key: meta.kid
 * is "" and meta.wrapped zero). */
struct records_row {
	char record_id[CLOUD_RID_HEX];
	char patient[RECORDS_MAX_PID + 1];
	char stored_by[128];
	char content_type[RECORDS_MAX_CT + 1];
	char category[RECORDS_MAX_CATEGORY + 1];
	bool stored;
	enum records_row_state state;
	uint64_t ledger_seq;
	bool erase_logged; /* erase_seq is set */
	uint64_t erase_seq;
	int64_t created_ms;
	struct cloud_record_meta meta;
};

/* The row columns records__row_decode reads, in order. */
#define RECORDS__ROW_COLS                                                                                   \
	"record_id, patient, stored_by, content_type, coalesce(category, ''), state, coalesce(ledger_seq, " \
	"-1), created_ms, coalesce(plain_size, 0), coalesce(ct_size, 0), ct_sha256, coalesce(kek_id, ''), " \
	"wrapped_key, coalesce(erase_seq, -1)"
/* Decode row i of a result of "SELECT " RECORDS__ROW_COLS. */
int records__row_decode(struct records_row *row, void *res, int i);

/* Run one statement on a pooled connection (acquired and released here,
 * dropped if it broke). *res is a PGresult* the caller PQclears. */
int records__exec(const struct records_env *env, void **res, const char *sql, int n,
                  const char *const *params);
/* On a connection the caller holds: ehr_db_exec. */

/* EHR_ERR_NOT_FOUND unless `pid` is an enrolled, unrevoked patient.
 * share_lock: the patient's row stays share-locked until the caller's
 * transaction ends, so no revocation or erasure can commit meanwhile.
 * steps: EHR_DB_BEGIN_COVERED / EHR_DB_COMMIT sent with it in one round
 * trip (ehr_db_exec_steps), here and below; 0 for none. */
int records__patient_exists(void *conn, const char *pid, bool share_lock, unsigned steps);
/* Insert the 'pending' row of a new record, holding its wrapped data key. */
int records__row_insert_pending(void *conn, const char *pid, const char *stored_by, const char *ct,
                                const char *cat, const struct cloud_record_meta *m, unsigned steps);
/* Mark a row 'stored' with its ledger seq, sizes, ciphertext hash and
 * segment tags (NULL: none, e.g. fsck completing from the ledger), on
 * conn (the caller's transaction) or, when conn is NULL, on a pooled
 * connection; only_pending adds "AND state = 'pending'" (fsck); steps as
 * ehr_db_exec_steps (0 on a pooled connection). */
int records__row_complete(const struct records_env *env, void *conn, const char *rid, uint64_t seq,
                          uint64_t plain, uint64_t ct, const uint8_t sha[32], const struct ehr_buf *tags,
                          bool only_pending, unsigned steps);
/* Add "seg_tags_sha256" (the SHA-256 of the segment tag list) to an
 * ehr.store payload; nothing when tags is NULL or empty. */
int records__payload_tags(json_t *payload, const struct ehr_buf *tags);
/* The ehr.erase payload of a record (no PHI: ids and codes). New reference or NULL. */
json_t *records__erase_payload(const char *rid, const char *basis, const char *requested_by);
/* Finish an 'erasing' row (records_erase after the wipe, and fsck): the
 * ehr.erase entry found in the ledger or appended, the object deleted,
 * the row 'erased'. *seq is the entry. *stage says where it stopped. */
int records__erase_finish(const struct records_env *env, const char *rid, uint64_t *seq,
                          enum records_stage *stage);

/* code is one of list's (NULL-terminated). */
bool records__code_in(const char *const *list, const char *code);
/* The retention and hold check of one stored row, on conn (which the
 * caller may hold in a transaction): 0, or EHR_ERR_CONFLICT with *why. */
int records__check_row(void *conn, const struct records_row *row, const struct records_retention *ret,
                       struct records_refusal *why);

/* Remove a 'pending' row (never a stored one). */
int records__row_delete_pending(const struct records_env *env, const char *rid);

/* The read on the ledger before a byte is released: the allowed decision
 * and ehr.read in one batch, one durable wait; d->state says whether the
 * decision is on the ledger. */
int records__log_read(const struct records_env *env, const struct records_get_in *in,
                      const struct policy_request *q, const struct records_row *row,
                      struct records_decision *d, struct ledger_receipt *rcpt);
/* The record is erased, or being erased: stage ERASED, EHR_ERR_NOT_FOUND. */
int records__gone(struct records_get_out *out, bool logged, uint64_t seq);
/*
 * A read's first step, in one round trip: acquire *conn and begin on it a
 * transaction that loads the record's row share-locked (FOR SHARE), so an
 * erasure (which locks it FOR UPDATE to wipe the key) waits until this
 * read's ehr.read entry is durable and the lock is released, and nothing
 * the read decided on can change under it. Its commit needs no WAL flush
 * of its own (EHR_DB_BEGIN_COVERED). tags gets the row's segment tag list
 * (left empty when it has none). EHR_ERR_NOT_FOUND without a row; on any
 * error *conn is released and NULL.
 */
int records__row_lock(const struct records_env *env, const char *rid, void **conn, struct records_row *row,
                      struct ehr_buf *tags);
/*
 * records_get for a record whose ehr.store entry commits to its segment
 * tags (tags_sha: its seg_tags_sha256), streamed segment by segment
 * (stream.c), on conn (records__row_lock's; released here) with the row's
 * tag list (not empty). 0: done (the sink ended, complete or cut short);
 * < 0: nothing was released, out->stage says where it stopped.
 */
int records__get_streamed(const struct records_env *env, const struct records_get_in *in,
                          const struct policy_request *q, struct records_row *row,
                          const struct cloud_kek *kek, const uint8_t tags_sha[32], void *conn,
                          struct ehr_buf *tags, const struct records_sink *sink, struct records_get_out *out);

/* The ehr.store ledger payload of a record. New reference or NULL. */
json_t *records__payload(const char *rid, const uint8_t sha[32], uint64_t size, const char *actor,
                         const char *patient);
/*
 * Decide q on conn without writing (policy_evaluate; fails closed): 0 with
 * d->dec filled, allowed or denied; an error means it could not be decided
 * (d->state = UNRECORDED, never EHR_ERR_FORBIDDEN). Then record it:
 * records__record appends the access.decision entry alone (d->state says
 * whether it is in the ledger).
 */
int records__decide(void *conn, const struct policy_request *q, struct records_decision *d);
int records__record(struct ledger *l, const struct policy_request *q, struct records_decision *d);

#endif
