/*
 * records.h - the EHR record service (docs/STORAGE.md, DESIGN.md §5): all
 * SQL on ehr_records and the sequences that tie a record's row, its object
 * and its ledger entries together. Routes and operator commands call it
 * with typed arguments; it never sees an HTTP request. Bodies come in
 * through a source callback and go out through a sink (start / write /
 * end, in the style of PostgreSQL's DestReceiver).
 *
 *   upload  records_put     row 'pending' -> object -> access.decision +
 *                           ehr.store (one durable batch) -> row 'stored'
 *   read    records_get     row -> decision (recorded) -> ledger's ehr.store
 *                           -> object spooled and verified -> ehr.read ->
 *                           plaintext to the sink
 *   list    records_list    stored and erased rows of a patient
 *   erase   records_erase   retention/hold check -> row 'erasing' with the
 *                           data key wiped (one transaction) -> ehr.erase
 *                           (durable) -> object deleted -> row 'erased'
 *   holds   records_hold_*  legal holds (ehr.hold.place / ehr.hold.lift)
 *   repair  records_fsck    object store vs ledger vs rows; finishes erasures
 *   keys    records_rewrap  re-wrap data keys under a new KEK
 */
#ifndef EHR_RECORDS_H
#define EHR_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloud/cloud.h"
#include "common/common.h"
#include "ledger/ledger.h"
#include "policy/policy.h"

#define RECORDS_MAX_CT 255
#define RECORDS_MAX_CATEGORY 64
#define RECORDS_MAX_PID 128
#define RECORDS_LIST_MAX 1000

struct ehr_db_pool;

/* The handles the service works with; borrowed, never freed by it. A
 * command that has no ledger or store passes NULL for it. */
struct records_env {
	struct ehr_db_pool *db;
	struct ledger *ledger;
	struct obj_store *store;
};

/* 1..max bytes of [A-Za-z0-9._-] (patient ids, categories). */
bool records_id_ok(const char *s, size_t max);
/* 1..RECORDS_MAX_CT printable ASCII bytes. */
bool records_content_type_ok(const char *s);

/*
 * Where a sequence stopped, so the caller can say what happened (a body
 * that broke is the client's doing, a ledger that failed means "retry").
 * The error code says why.
 */
enum records_stage {
	RECORDS_AT_NONE = 0,
	RECORDS_AT_PATIENT,  /* the patient lookup (EHR_ERR_NOT_FOUND: no such patient) */
	RECORDS_AT_ROW,      /* the record's row (EHR_ERR_NOT_FOUND: no such stored record) */
	RECORDS_AT_POLICY,   /* the access decision (EHR_ERR_FORBIDDEN: denied, and recorded) */
	RECORDS_AT_KEYS,     /* KEKs, record id, data key */
	RECORDS_AT_PENDING,  /* inserting the pending row */
	RECORDS_AT_BODY,     /* the source callback failed: see source_err */
	RECORDS_AT_OBJECT,   /* storing or opening the object (EHR_ERR_TAMPER: it does not verify) */
	RECORDS_AT_LEDGER,   /* reading the record's ehr.store entry (EHR_ERR_TAMPER: none) */
	RECORDS_AT_COMMIT,   /* appending the ledger entries: nothing stored or released */
	RECORDS_AT_COMPLETE, /* stored and in the ledger, the row left pending for fsck */
	RECORDS_AT_STREAM,   /* the sink or the spool failed after start */
	RECORDS_AT_ERASED,   /* the record is erased or being erased (EHR_ERR_NOT_FOUND); see erase_seq */
	RECORDS_AT_REFUSED,  /* erasure refused by retention or a hold (EHR_ERR_CONFLICT); see refusal */
};

/* What became of the access decision, for the gateway's counters. */
enum records_decision_state {
	RECORDS_DECISION_NONE = 0,   /* not reached */
	RECORDS_DECISION_RECORDED,   /* in the ledger: dec is what was decided */
	RECORDS_DECISION_UNRECORDED, /* could not be decided or recorded: refused */
};

struct records_decision {
	enum records_decision_state state;
	struct policy_decision dec;
};

/* ---- upload */

/* Read up to cap bytes of the body; *got = 0 at its end. */
typedef int (*records_source_fn)(void *ud, uint8_t *buf, size_t cap, size_t *got);

struct records_put_in {
	const char *patient;      /* checked with records_id_ok */
	const char *stored_by;    /* the storing server's subject */
	const char *actor;        /* the ledger actor (pseudonym) */
	const char *content_type; /* checked with records_content_type_ok */
	const char *category;     /* NULL if none */
	/* The access request as the gateway built it from the identity and the
	 * headers (role, requester, purpose, break-glass); records_put fills
	 * patient, action (append), record_id (NULL) and category. */
	const struct policy_request *policy;
	uint64_t max_bytes;   /* plaintext bound ([store] max_record_bytes) */
	int64_t declared_len; /* the body's declared length, -1 if unknown */
	records_source_fn read;
	void *read_ud;
};

struct records_put_out {
	char record_id[CLOUD_RID_HEX];
	struct ledger_receipt rcpt; /* of the ehr.store entry */
	char sha256[65];            /* of the ciphertext, lower-case hex */
	uint64_t plain_size, ct_size;
	enum records_stage stage; /* where it stopped, on failure */
	int source_err;           /* the source's own error, if it failed */
	struct records_decision decision;
};

/*
 * Store one record: the patient must exist, a contract must allow the
 * append (a denial is recorded in the ledger at once), the pending row
 * holds the wrapped data key, the body streams from in->read through the
 * STREAM encryptor into the store, then access.decision and ehr.store are
 * appended in one durable batch, and only then does the row become
 * 'stored'. 0 means the record is stored and in the ledger. A failure
 * before the ledger removes the object and the row; a failure after it
 * (RECORDS_AT_COMPLETE) leaves the row for fsck. The body is read only
 * after every check, so a client's "100 Continue" comes after them.
 */
int records_put(const struct records_env *env, const struct records_put_in *in, struct records_put_out *out);

/* ---- read */

/* What the sink learns before the first byte: every check has passed and
 * the read is on the ledger. */
struct records_meta {
	const char *record_id;
	const char *content_type;
	const char *category; /* "" if none */
	uint64_t plain_size;
	uint64_t read_seq; /* the ehr.read entry */
};

/* The sink: start once, write the plaintext in order, end once with
 * whether the whole record was written. */
struct records_sink {
	int (*start)(void *ud, const struct records_meta *m);
	int (*write)(void *ud, const uint8_t *p, size_t n);
	void (*end)(void *ud, bool complete);
	void *ud;
};

struct records_get_in {
	const char *record_id; /* 32 lower-case hex digits */
	const char *actor;     /* the ledger actor (pseudonym) */
	/* As for records_put; records_get fills patient, action (read),
	 * record_id and category from the row. */
	const struct policy_request *policy;
};

struct records_get_out {
	enum records_stage stage;
	struct records_decision decision;
	bool erase_logged;  /* RECORDS_AT_ERASED: the ehr.erase entry is durable, */
	uint64_t erase_seq; /* at this index */
};

/*
 * Read one record into the sink. Nothing reaches the sink unless the row
 * is stored, the decision allows it and is recorded, the object's size and
 * SHA-256 equal the ledger's ehr.store entry, every segment's GCM tag
 * verifies and the ehr.read entry is durable. An erased record (or one
 * whose erasure committed while this read spooled it) fails with
 * RECORDS_AT_ERASED: the row is share-locked from the check that it is
 * still stored until ehr.read is durable, so a read either precedes the
 * erasure in the ledger and completes from its verified spool, or fails. A failure before start
 * returns < 0 and the sink is untouched; once started, the sink's end is
 * always called and records_get returns 0 (end says whether it completed).
 */
int records_get(const struct records_env *env, const struct records_get_in *in,
                const struct records_sink *sink, struct records_get_out *out);

/* ---- list */

/*
 * The stored and erased records of `patient` as a JSON array (new
 * reference), oldest first, created after after_ms (-1 = all), at most
 * limit; stored_by "" means every server's (the patient's own view), else
 * only that server's. Each carries "state": "stored", "erasing" or
 * "erased" (with "erase_seq" once the ehr.erase entry is durable).
 */
int records_list(const struct records_env *env, const char *patient, const char *stored_by, int64_t after_ms,
                 uint64_t limit, json_t **out);

/* ---- erasure, retention and legal holds (docs/ERASURE.md) */

/* The closed lists of codes (NULL-terminated), for usage texts and docs. */
extern const char *const records_erase_bases[]; /* gdpr-17-1-a .. gdpr-17-1-f, patient-request, court-order */
extern const char *const records_hold_reasons[]; /* litigation, investigation, regulator, court-order */
bool records_erase_basis_ok(const char *code);
bool records_hold_reason_ok(const char *code);

/* Who asked for an erasure (the ehr.erase payload's requested_by). */
#define RECORDS_BY_PATIENT "patient"
#define RECORDS_BY_OPERATOR "operator"
#define RECORDS_BY_PATIENT_ERASURE "patient-erasure" /* right to be forgotten (h-forget) */

/* Minimum retention: records of a category may not be erased until
 * period_s after they were stored; categories not listed (and records
 * with none) use default_s. 0 = no minimum. */
#define RECORDS_RETENTION_MAX 32
struct records_retention {
	int64_t default_s;
	size_t n;
	struct {
		char category[RECORDS_MAX_CATEGORY + 1];
		int64_t period_s;
	} cat[RECORDS_RETENTION_MAX];
};
/* The period that applies to `category` ("" or NULL: none). */
int64_t records_retention_period(const struct records_retention *r, const char *category);

enum records_refusal_kind {
	RECORDS_REFUSED_NONE = 0,
	RECORDS_REFUSED_RETENTION, /* inside the category's minimum retention */
	RECORDS_REFUSED_HOLD,      /* a legal hold on the record or its patient */
};

/* Why an erasure was refused: what the 409 says, and what the
 * ehr.erase.refused entry records (no PHI: codes and ids). */
struct records_refusal {
	enum records_refusal_kind kind;
	char record_id[CLOUD_RID_HEX]; /* the record that blocks it */
	char category[RECORDS_MAX_CATEGORY + 1];
	int64_t retain_until_ms; /* RETENTION */
	uint64_t hold_id;        /* HOLD */
	char hold_reason[32];    /* HOLD: its reason code */
	bool hold_on_patient;    /* HOLD: placed on the patient, not the record */
	uint64_t refused_seq;    /* the ehr.erase.refused entry (records_erase only) */
};

/* Add why's fields (ids and codes: "reason" retention|legal_hold, ...) to
 * j: the ehr.erase.refused payload and the 409 body say the same. */
void records_refusal_json(json_t *j, const struct records_refusal *why);

/*
 * The retention and hold check alone, so a patient erasure refuses as a
 * record erasure does: 0 if every stored record of `patient` (or only
 * `record_id` when not NULL) may be erased now; EHR_ERR_CONFLICT with *why
 * for the first that may not. Records already erased are not checked.
 * `ret` NULL means no retention periods. Writes nothing.
 */
int records_erase_check(const struct records_env *env, const char *patient, const char *record_id,
                        const struct records_retention *ret, struct records_refusal *why);

struct records_erase_in {
	const char *record_id; /* 32 lower-case hex digits */
	const char *patient; /* NULL (operator), else the record must be this patient's (EHR_ERR_FORBIDDEN) */
	const char *actor;   /* the ledger actor: a pseudonym, or "operator" */
	const char *requested_by;                  /* RECORDS_BY_* */
	const char *basis;                         /* records_erase_basis_ok */
	const struct records_retention *retention; /* NULL = no retention periods */
};

struct records_erase_out {
	enum records_stage stage;       /* where it stopped, on failure */
	uint64_t erase_seq;             /* the ehr.erase entry */
	bool was_erased;                /* erased by an earlier request: erase_seq is that one's */
	struct records_refusal refusal; /* RECORDS_AT_REFUSED */
};

/*
 * Erase one stored record (crypto-shredding, docs/ERASURE.md §2). On the
 * row, locked: the retention and hold check (a refusal is recorded as an
 * ehr.erase.refused entry and fails with EHR_ERR_CONFLICT, stage
 * RECORDS_AT_REFUSED); then in ONE transaction the row becomes 'erasing',
 * its wrapped data key and KEK id are wiped and the request is kept. From
 * that commit the record is unreadable and nothing undoes it. Then the
 * ehr.erase entry is made durable (erase_seq), the object is deleted and
 * the row becomes 'erased'. A failure after the wipe (stage
 * RECORDS_AT_COMMIT: the ledger; RECORDS_AT_OBJECT: the store) leaves an
 * 'erasing' row that a repeated call or `ehrgate fsck` finishes from the
 * row alone. A record already erased answers 0 with was_erased. Errors:
 * EHR_ERR_INVAL (basis, id), EHR_ERR_NOT_FOUND (no stored record: stage
 * RECORDS_AT_ROW), EHR_ERR_FORBIDDEN (another patient's).
 */
int records_erase(const struct records_env *env, const struct records_erase_in *in,
                  struct records_erase_out *out);

struct records_hold_in {
	const char *patient;   /* a patient pseudonym, or */
	const char *record_id; /* one record (exactly one of the two) */
	const char *reason;    /* records_hold_reason_ok */
	const char *actor;     /* the ledger actor ("operator") */
};

/*
 * Place a legal hold: the hold row first (in force from its commit), then
 * the ehr.hold.place entry. EHR_ERR_NOT_FOUND: no such patient or record;
 * EHR_ERR_EXISTS: the same hold is already in force.
 */
int records_hold_place(const struct records_env *env, const struct records_hold_in *in, uint64_t *hold_id,
                       struct ledger_receipt *rcpt);
/* Lift the hold in force on that target with that reason: the
 * ehr.hold.lift entry, then the row. EHR_ERR_NOT_FOUND if none is. */
int records_hold_lift(const struct records_env *env, const struct records_hold_in *in, uint64_t *hold_id,
                      struct ledger_receipt *rcpt);
/* The holds in force as a JSON array (new reference). */
int records_hold_list(const struct records_env *env, json_t **out);

/* ---- fsck (docs/STORAGE.md §6) */

enum records_fsck_event {
	RECORDS_FSCK_MALFORMED_ENTRY,   /* seq: an ehr.store entry whose payload does not parse */
	RECORDS_FSCK_SIZE_MISMATCH,     /* key, ledger_size, size */
	RECORDS_FSCK_ROW_FAILED,        /* detail: reading a row failed */
	RECORDS_FSCK_IN_FLIGHT,         /* key, age_ms: pending and younger than grace */
	RECORDS_FSCK_ORPHAN,            /* key, size: no ehr.store entry */
	RECORDS_FSCK_DELETE_FAILED,     /* key, detail */
	RECORDS_FSCK_MISSING,           /* rid, seq: an entry without its object */
	RECORDS_FSCK_PENDING_BAD_SIZE,  /* rid, ledger_size: not a ciphertext size */
	RECORDS_FSCK_PENDING_COMPLETED, /* rid, seq: completed (or would be) from the ledger */
	RECORDS_FSCK_STALE_PENDING,     /* rid: neither object nor entry, removed (or would be) */
	RECORDS_FSCK_ERASE_COMPLETED,   /* rid, seq: an 'erasing' row finished (or would be) */
	RECORDS_FSCK_ERASE_FAILED,      /* rid, detail: finishing it failed */
	RECORDS_FSCK_ERASED_OBJECT,     /* key: an erased record's object still stored, deleted */
};

struct records_fsck_item {
	const char *key; /* object key, or NULL */
	const char *rid; /* record id, or NULL */
	uint64_t seq, ledger_size, size;
	int64_t age_ms;
	const char *detail;
};

typedef void (*records_fsck_fn)(void *ud, enum records_fsck_event ev, const struct records_fsck_item *it);

struct records_fsck_opts {
	bool dry_run;     /* report, change nothing */
	uint64_t grace_s; /* pending rows younger than this may be uploads in flight */
	records_fsck_fn report;
	void *ud;
};

struct records_fsck_report {
	size_t ledger_records, objects, orphans, removed, missing, completed, dropped, young, foreign,
	        failures, erased, erasures_completed;
	const char *failed_at; /* on a fatal error: "reading the ledger", ... or NULL */
};

/*
 * Reconcile the object store, the ledger and the rows: orphan objects (no
 * ehr.store entry) are removed with their pending row; entries without an
 * object are reported; pending rows whose entry exists are completed from
 * the ledger; pending rows with neither, older than grace, are removed.
 * First, every 'erasing' row is finished as records_erase would (ehr.erase
 * found in the ledger or appended, object deleted, row 'erased'); erased
 * records are consistent without their object (counted in rep->erased).
 * Returns < 0 only if it could not scan (rep->failed_at says which);
 * per-record failures are counted in rep->failures.
 */
int records_fsck(const struct records_env *env, const struct records_fsck_opts *o,
                 struct records_fsck_report *rep);

/* ---- KEK rotation */

/* A row that could not be re-wrapped (detail: why; kid: its KEK or NULL). */
typedef void (*records_rewrap_fn)(void *ud, const char *rid, const char *kid, const char *detail);

/*
 * One pass over every row whose data key is not under `kid` (erased rows
 * hold none and are skipped): unwrap with
 * its own KEK, wrap under `kid`, compare-and-set, so a concurrent writer is
 * never overwritten. Objects are never read. Adds to *done / *failed.
 */
int records_rewrap(const struct records_env *env, const struct cloud_kek *kek, const char *kid, size_t *done,
                   size_t *failed, records_rewrap_fn on_fail, void *ud);
/* How many rows use KEK `kid` (NULL: all rows). */
int records_count(const struct records_env *env, const char *kid, uint64_t *n);

#endif
