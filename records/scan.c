/*
 * scan.c - the sequences that walk every record: fsck (object store vs
 * ledger vs rows, docs/STORAGE.md §6) and the KEK re-wrap (§7). They
 * report each finding through a callback; the commands print.
 */
#include "records/records_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "common/db.h"

struct led {
	uint8_t rid[CLOUD_RID_LEN];
	uint64_t seq;
	uint64_t size;
	uint8_t sha[32];
	bool seen; /* object found */
};

struct obj {
	uint8_t rid[CLOUD_RID_LEN];
	char key[96];
	uint64_t size;
};

struct fsck {
	const struct records_env *env;
	const struct records_fsck_opts *o;
	struct records_fsck_report *rep;
	struct led *led;
	size_t nled, capled;
	struct obj *obj;
	size_t nobj, capobj;
	uint8_t (*erased)[CLOUD_RID_LEN]; /* erased records, sorted */
	size_t nerased, caperased;
	uint64_t next_seq;
	uint64_t last_seen;
};

static void emit(struct fsck *f, enum records_fsck_event ev, const struct records_fsck_item *it)
{
	if (f->o->report)
		f->o->report(f->o->ud, ev, it);
}

static int rid_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CLOUD_RID_LEN); /* not secret */
}

static int grow(void **p, size_t *cap, size_t n, size_t elem)
{
	size_t nc;
	void *np;

	if (n < *cap)
		return 0;
	nc = *cap ? 2 * *cap : 1024;
	np = realloc(*p, nc * elem);
	ENSURE(np != NULL, EHR_ERR_NOMEM);
	*p = np;
	*cap = nc;
	return 0;
}

static int on_entry(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct fsck *f = ctx;
	json_t *j = NULL;
	const char *rid = NULL, *sha = NULL;
	int64_t size = 0;
	struct led l;

	(void)raw;
	(void)raw_len;
	f->next_seq = e->seq + 1;
	f->last_seen++;
	if (strcmp(e->type, "ehr.store") != 0)
		return 0;
	memset(&l, 0, sizeof(l));
	if (ehr_json_parse(&j, e->payload, e->payload_len, LEDGER_MAX_PAYLOAD, 8) < 0 ||
	    ehr_json_get_str(j, "record_id", &rid, 64) < 0 || cloud_rid_parse(l.rid, rid) < 0 ||
	    ehr_json_get_str(j, "sha256", &sha, 64) < 0 || ehr_hex_decode(l.sha, 32, sha, strlen(sha)) < 0 ||
	    ehr_json_get_int(j, "size", &size, 0, INT64_MAX) < 0) {
		emit(f, RECORDS_FSCK_MALFORMED_ENTRY, &(struct records_fsck_item){ .seq = e->seq });
		json_decref(j);
		return 0;
	}
	json_decref(j);
	l.seq = e->seq;
	l.size = (uint64_t)size;
	GUARD(grow((void **)&f->led, &f->capled, f->nled, sizeof(*f->led)));
	f->led[f->nled++] = l;
	return 0;
}

static int on_object(void *ctx, const char *key, uint64_t size)
{
	struct fsck *f = ctx;
	struct obj o;

	memset(&o, 0, sizeof(o));
	if (cloud_record_key_parse(o.rid, key) < 0 || strlen(key) >= sizeof(o.key)) {
		f->rep->foreign++;
		return 0;
	}
	memcpy(o.key, key, strlen(key) + 1);
	o.size = size;
	GUARD(grow((void **)&f->obj, &f->capobj, f->nobj, sizeof(*f->obj)));
	f->obj[f->nobj++] = o;
	return 0;
}

static struct led *find_led(struct fsck *f, const uint8_t rid[CLOUD_RID_LEN])
{
	return f->nled > 0 ? bsearch(rid, f->led, f->nled, sizeof(*f->led), rid_cmp) : NULL;
}

static bool is_erased(struct fsck *f, const uint8_t rid[CLOUD_RID_LEN])
{
	/* bsearch(..., NULL, 0, ...) is undefined (UBSan): no erased records */
	return f->nerased > 0 && bsearch(rid, f->erased, f->nerased, CLOUD_RID_LEN, rid_cmp) != NULL;
}

/* The state of a record's row: 0 none, 1 pending (age in ms), 2 stored. */
static int row_state(const struct records_env *env, const char *rid, int *state, int64_t *age_ms)
{
	const char *p[1] = { rid };
	void *res = NULL;
	int err = 0;

	GUARD(records__exec(
	        env, &res,
	        "SELECT state, (extract(epoch from clock_timestamp()) * 1000)::bigint - created_ms "
	        "FROM ehr_records WHERE record_id = $1",
	        1, p));
	*state = 0;
	*age_ms = 0;
	if (PQntuples(res) == 1) {
		*state = strcmp(PQgetvalue(res, 0, 0), "stored") == 0 ? 2 : 1;
		err = ehr_parse_i64(age_ms, PQgetvalue(res, 0, 1), INT64_MIN, INT64_MAX);
	}
	PQclear(res);
	return err;
}

/* 0: finish every 'erasing' row (a crash or a failure after the key was
 * wiped), as records_erase would have. */
static int finish_erasing(struct fsck *f)
{
	void *res = NULL;

	f->rep->failed_at = "listing erasures";
	GUARD(records__exec(f->env, &res,
	                    "SELECT record_id FROM ehr_records WHERE state = 'erasing' ORDER BY record_id", 0,
	                    NULL));
	f->rep->failed_at = NULL;
	for (int i = 0; i < PQntuples(res); i++) {
		struct records_fsck_item it = { .rid = PQgetvalue(res, i, 0) };
		enum records_stage st;

		if (f->o->dry_run) {
			emit(f, RECORDS_FSCK_ERASE_COMPLETED, &it);
			continue;
		}
		if (records__erase_finish(f->env, it.rid, &it.seq, &st) < 0) {
			it.detail = ehr_error_detail();
			emit(f, RECORDS_FSCK_ERASE_FAILED, &it);
			f->rep->failures++;
			continue;
		}
		emit(f, RECORDS_FSCK_ERASE_COMPLETED, &it);
		f->rep->erasures_completed++;
	}
	PQclear(res);
	return 0;
}

/* The erased records (and, in a dry run, those being erased), sorted. */
static int collect_erased(struct fsck *f)
{
	void *res = NULL;
	int err = 0;

	f->rep->failed_at = "listing erasures";
	GUARD(records__exec(f->env, &res,
	                    "SELECT record_id FROM ehr_records WHERE state IN ('erased', 'erasing') ORDER BY "
	                    "record_id",
	                    0, NULL));
	f->rep->failed_at = NULL;
	for (int i = 0; i < PQntuples(res) && err == 0; i++) {
		if ((err = grow((void **)&f->erased, &f->caperased, f->nerased, CLOUD_RID_LEN)) == 0 &&
		    cloud_rid_parse(f->erased[f->nerased], PQgetvalue(res, i, 0)) == 0)
			f->nerased++;
	}
	PQclear(res);
	if (f->nerased > 0) /* qsort(NULL, 0, ...) is undefined (UBSan) */
		qsort(f->erased, f->nerased, CLOUD_RID_LEN, rid_cmp);
	f->rep->erased = f->nerased;
	return err;
}

/* 1 and 2: every ehr.store entry (sorted by record id), every object. */
static int collect(struct fsck *f)
{
	for (;;) {
		struct ledger_query q = { .from_seq = f->next_seq, .type = "ehr.store", .limit = 10000 };
		uint64_t before = f->last_seen;

		f->rep->failed_at = "reading the ledger";
		GUARD(ledger_query(f->env->ledger, &q, on_entry, f));
		if (f->last_seen - before < 10000)
			break;
	}
	if (f->nled > 0)
		qsort(f->led, f->nled, sizeof(*f->led), rid_cmp);
	f->rep->failed_at = "listing the object store";
	GUARD(obj_store_list(f->env->store, CLOUD_RECORD_PREFIX, on_object, f));
	f->rep->failed_at = NULL;
	return 0;
}

/* 3: an object with no ledger entry is an orphan, unless its pending row
 * is younger than the grace (an upload in flight). */
static void check_object(struct fsck *f, const struct obj *ob)
{
	struct records_fsck_report *rep = f->rep;
	struct led *l = find_led(f, ob->rid);
	struct records_fsck_item it = { .key = ob->key, .size = ob->size };
	char rid[CLOUD_RID_HEX];
	int state = 0;

	if (l && is_erased(f, ob->rid)) {
		/* Its erasure deleted it once; the store brought it back (a
		 * restored backup, a replica): delete it again. */
		emit(f, RECORDS_FSCK_ERASED_OBJECT, &it);
		if (!f->o->dry_run && obj_store_delete(f->env->store, ob->key) < 0) {
			it.detail = ehr_error_detail();
			emit(f, RECORDS_FSCK_DELETE_FAILED, &it);
			rep->failures++;
		}
		return;
	}
	if (l) {
		l->seen = true;
		it.ledger_size = l->size;
		if (l->size != ob->size)
			emit(f, RECORDS_FSCK_SIZE_MISMATCH, &it);
		return;
	}
	cloud_rid_hex(rid, ob->rid);
	it.rid = rid;
	if (row_state(f->env, rid, &state, &it.age_ms) < 0) {
		it.detail = ehr_error_detail();
		emit(f, RECORDS_FSCK_ROW_FAILED, &it);
		rep->failures++;
		return;
	}
	if (state == 1 && it.age_ms < (int64_t)f->o->grace_s * 1000) {
		emit(f, RECORDS_FSCK_IN_FLIGHT, &it);
		rep->young++;
		return;
	}
	rep->orphans++;
	emit(f, RECORDS_FSCK_ORPHAN, &it);
	if (f->o->dry_run)
		return;
	if (obj_store_delete(f->env->store, ob->key) < 0) {
		it.detail = ehr_error_detail();
		emit(f, RECORDS_FSCK_DELETE_FAILED, &it);
		rep->failures++;
		return;
	}
	rep->removed++;
	if (state == 1 && records__row_delete_pending(f->env, rid) < 0)
		rep->failures++;
}

/* 5: a pending row whose entry exists is completed from the ledger; one
 * with neither entry nor object, older than the grace, is removed. */
static void check_pending(struct fsck *f, const char *rid, int64_t age)
{
	struct records_fsck_report *rep = f->rep;
	struct records_fsck_item it = { .rid = rid, .age_ms = age };
	uint8_t ridb[CLOUD_RID_LEN];
	struct led *l;
	char key[128];
	uint64_t pn = 0, size;

	if (cloud_rid_parse(ridb, rid) < 0)
		return;
	if ((l = find_led(f, ridb)) != NULL) {
		it.seq = l->seq;
		it.ledger_size = l->size;
		if (cloud_plaintext_size(&pn, l->size, CLOUD_SEG_DEFAULT) < 0) {
			emit(f, RECORDS_FSCK_PENDING_BAD_SIZE, &it);
			rep->failures++;
			return;
		}
		emit(f, RECORDS_FSCK_PENDING_COMPLETED, &it);
		if (f->o->dry_run)
			return;
		if (records__row_complete(f->env, NULL, rid, l->seq, pn, l->size, l->sha, NULL, true, 0) < 0)
			rep->failures++;
		else
			rep->completed++;
		return;
	}
	if (age < (int64_t)f->o->grace_s * 1000)
		return;
	/* An object, if any, was handled as an orphan above. */
	if (cloud_record_key(key, sizeof(key), ridb) == 0 && obj_store_head(f->env->store, key, &size) == 0)
		return;
	emit(f, RECORDS_FSCK_STALE_PENDING, &it);
	if (f->o->dry_run)
		return;
	if (records__row_delete_pending(f->env, rid) < 0)
		rep->failures++;
	else
		rep->dropped++;
}

static int check_pending_rows(struct fsck *f)
{
	void *res = NULL;

	f->rep->failed_at = "";
	GUARD(records__exec(
	        f->env, &res,
	        "SELECT record_id, (extract(epoch from clock_timestamp()) * 1000)::bigint - created_ms "
	        "FROM ehr_records WHERE state = 'pending' ORDER BY record_id",
	        0, NULL));
	f->rep->failed_at = NULL;
	for (int i = 0; i < PQntuples(res); i++) {
		int64_t age = 0;

		if (ehr_parse_i64(&age, PQgetvalue(res, i, 1), INT64_MIN, INT64_MAX) < 0)
			continue;
		check_pending(f, PQgetvalue(res, i, 0), age);
	}
	PQclear(res);
	return 0;
}

int records_fsck(const struct records_env *env, const struct records_fsck_opts *o,
                 struct records_fsck_report *rep)
{
	struct fsck f;
	int err = 0;

	memset(&f, 0, sizeof(f));
	memset(rep, 0, sizeof(*rep));
	f.env = env;
	f.o = o;
	f.rep = rep;
	ENSURE(env->db != NULL && env->ledger != NULL && env->store != NULL, EHR_ERR_INVAL);
	GUARD_GOTO(finish_erasing(&f));
	GUARD_GOTO(collect_erased(&f));
	GUARD_GOTO(collect(&f));
	for (size_t i = 0; i < f.nobj; i++)
		check_object(&f, &f.obj[i]);
	/* 4: ledger entries without an object (an erased record has none) */
	for (size_t i = 0; i < f.nled; i++) {
		char rid[CLOUD_RID_HEX];

		if (f.led[i].seen || is_erased(&f, f.led[i].rid))
			continue;
		cloud_rid_hex(rid, f.led[i].rid);
		rep->missing++;
		emit(&f, RECORDS_FSCK_MISSING,
		     &(struct records_fsck_item){ .rid = rid, .seq = f.led[i].seq });
	}
	GUARD_GOTO(check_pending_rows(&f));
out:
	rep->ledger_records = f.nled;
	rep->objects = f.nobj;
	free(f.led);
	free(f.obj);
	free(f.erased);
	return err;
}

/* ------------------------------------------------------------ re-wrap */

/* Re-wrap one row's data key under kid, compare-and-set. 1 if the row
 * changed, 0 if a concurrent writer got there first or it failed. */
static int rewrap_row(const struct records_env *env, const struct cloud_kek *kek, const char *kid,
                      PGresult *res, int i, records_rewrap_fn on_fail, void *ud, size_t *failed)
{
	const char *rid = PQgetvalue(res, i, 0), *oldkid = PQgetvalue(res, i, 1);
	uint8_t ridb[CLOUD_RID_LEN], oldw[CLOUD_WRAPPED_LEN], neww[CLOUD_WRAPPED_LEN], dek[CLOUD_KEY_LEN];
	char oldw_s[EHR_DB_BYTEA_HEX_LEN(CLOUD_WRAPPED_LEN)], neww_s[EHR_DB_BYTEA_HEX_LEN(CLOUD_WRAPPED_LEN)];
	const char *q[5] = { rid, kid, neww_s, oldkid, oldw_s };
	void *r2 = NULL;
	int err;

	if (cloud_rid_parse(ridb, rid) < 0 || ehr_db_get_bytea(oldw, sizeof(oldw), res, i, 2) < 0) {
		on_fail(ud, rid, NULL, "malformed row");
		(*failed)++;
		return 0;
	}
	err = cloud_dek_unwrap(kek, oldkid, ridb, oldw, dek);
	if (err == 0)
		err = cloud_dek_wrap(kek, kid, ridb, dek, neww, NULL);
	OPENSSL_cleanse(dek, sizeof(dek));
	if (err < 0) {
		on_fail(ud, rid, oldkid, ehr_error_detail());
		(*failed)++;
		return 0;
	}
	GUARD(ehr_db_bytea_param(oldw_s, sizeof(oldw_s), oldw, CLOUD_WRAPPED_LEN));
	GUARD(ehr_db_bytea_param(neww_s, sizeof(neww_s), neww, CLOUD_WRAPPED_LEN));
	GUARD(records__exec(
	        env, &r2,
	        "UPDATE ehr_records SET kek_id = $2, wrapped_key = $3::bytea WHERE record_id = $1 "
	        "AND kek_id = $4 AND wrapped_key = $5::bytea",
	        5, q));
	err = strcmp(PQcmdTuples(r2), "1") == 0 ? 1 : 0;
	PQclear(r2);
	return err;
}

int records_rewrap(const struct records_env *env, const struct cloud_kek *kek, const char *kid, size_t *done,
                   size_t *failed, records_rewrap_fn on_fail, void *ud)
{
	char last[CLOUD_RID_HEX] = "";

	for (;;) {
		const char *p[2] = { kid, last };
		void *res = NULL;
		int n, err = 0;

		GUARD(records__exec(
		        env, &res,
		        "SELECT record_id, kek_id, wrapped_key FROM ehr_records WHERE kek_id <> $1 AND "
		        "wrapped_key IS NOT NULL AND record_id > $2 ORDER BY record_id LIMIT 500",
		        2, p));
		n = PQntuples(res);
		for (int i = 0; i < n && err >= 0; i++) {
			if ((err = ehr_db_get_text(last, sizeof(last), res, i, 0)) < 0)
				break;
			if ((err = rewrap_row(env, kek, kid, res, i, on_fail, ud, failed)) > 0)
				(*done)++;
		}
		PQclear(res);
		if (err < 0)
			return err;
		if (n < 500)
			return 0;
	}
}
