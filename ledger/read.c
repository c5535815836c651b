/*
 * ledger_read.c - reading the ledger through the gateway's pool: entries,
 * blocks, checkpoints, and inclusion/consistency proofs built from O(log n)
 * stored perfect-subtree hashes in one query (docs/LEDGER.md §4, §7).
 */
#include "common/db.h"
#include "ledger/ledger_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_COLS "height, prev_hash, tree_size, root, ts_ms, hash, sig, origin, cp_sig"

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Run a binary-result query on a pooled connection. A ledger read reports
 * a lost connection as EHR_ERR_UNAVAILABLE and any other failure as
 * EHR_ERR_DB; on failure the connection is dropped. */
static int query_bin(struct ledger *l, void **conn, void **out, const char *sql, int n,
                     const char *const *params)
{
	int err;

	GUARD(ehr_db_acquire(ledger__pool(l), conn));
	err = ehr_db_exec_binary(*conn, out, sql, n, params);
	if (err < 0) {
		err = ehr_error_wrap(err == EHR_ERR_UNAVAILABLE ? EHR_ERR_UNAVAILABLE : EHR_ERR_DB,
		                     "ledger read");
		ehr_db_release(ledger__pool(l), *conn, true);
		*conn = NULL;
	}
	return err;
}

static int emit_rows(const void *r, ledger_entry_fn cb, void *ctx)
{
	for (int i = 0; i < ehr_db_rows(r); i++) {
		struct ledger_entry e;
		const uint8_t *raw = (const uint8_t *)ehr_db_value(r, i, 2);
		size_t len = ehr_db_len(r, i, 2);
		uint64_t seq = be64((const uint8_t *)ehr_db_value(r, i, 0));

		if (ledger_entry_decode(&e, raw, len, false) < 0 || e.seq != seq)
			return ehr_error_set(EHR_ERR_TAMPER, "ledger entry %llu does not decode",
			                     (unsigned long long)seq);
		e.block_height = be64((const uint8_t *)ehr_db_value(r, i, 1));
		GUARD(cb(ctx, &e, raw, len));
	}
	return 0;
}

int ledger_read_entries_on(void *conn, uint64_t from, unsigned limit, ledger_entry_fn cb, void *ctx)
{
	char num[24], lim[12];
	const char *params[2] = { num, lim };
	void *r = NULL;
	int err;

	ENSURE(limit >= 1 && limit <= 10000 && from <= INT64_MAX, EHR_ERR_INVAL);
	GUARD(ehr_fmt(num, sizeof(num), "%llu", (unsigned long long)from));
	GUARD(ehr_fmt(lim, sizeof(lim), "%u", limit));
	if ((err = ehr_db_exec_binary(conn, &r,
	                              "SELECT seq, block_height, entry FROM ledger_entries "
	                              "WHERE seq >= $1 ORDER BY seq LIMIT $2::int",
	                              2, params)) < 0)
		return ehr_error_wrap(err == EHR_ERR_UNAVAILABLE ? EHR_ERR_UNAVAILABLE : EHR_ERR_DB,
		                      "ledger read");
	err = emit_rows(r, cb, ctx);
	ehr_db_clear(r);
	return err;
}

/* ------------------------------------------------- single entries, cached */

/*
 * Every record read looks up its ehr.store entry by seq: one round trip
 * each time for bytes that never change once committed (ledger_entries
 * refuses UPDATE and DELETE). The last LEDGER_ECACHE_SLOTS such entries are
 * kept, direct-mapped by seq, each at most LEDGER_ECACHE_ENTRY bytes (about
 * 1 MiB in all). A hit is decoded again, as a row would be.
 */
#define LEDGER_ECACHE_SLOTS 1024u
#define LEDGER_ECACHE_ENTRY 1024u

struct ecache_slot {
	uint64_t seq, height;
	size_t len; /* 0: empty */
	uint8_t raw[LEDGER_ECACHE_ENTRY];
};

struct ledger__entry_cache {
	pthread_mutex_t mu;
	struct ecache_slot slot[LEDGER_ECACHE_SLOTS];
};

struct ledger__entry_cache *ledger__entry_cache_new(void)
{
	struct ledger__entry_cache *c = calloc(1, sizeof(*c));

	if (c != NULL)
		pthread_mutex_init(&c->mu, NULL);
	return c;
}

void ledger__entry_cache_free(struct ledger__entry_cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* The entry at seq, into raw (LEDGER_ECACHE_ENTRY bytes): its length, 0 if not kept. */
static size_t ecache_get(struct ledger__entry_cache *c, uint64_t seq, uint8_t *raw, uint64_t *height)
{
	struct ecache_slot *s;
	size_t len = 0;

	if (c == NULL)
		return 0;
	s = &c->slot[seq % LEDGER_ECACHE_SLOTS];
	pthread_mutex_lock(&c->mu);
	if (s->len > 0 && s->seq == seq) {
		len = s->len;
		memcpy(raw, s->raw, len);
		*height = s->height;
	}
	pthread_mutex_unlock(&c->mu);
	return len;
}

static void ecache_put(struct ledger__entry_cache *c, const struct ledger_entry *e, const uint8_t *raw,
                       size_t len)
{
	struct ecache_slot *s;

	if (c == NULL || len == 0 || len > LEDGER_ECACHE_ENTRY)
		return;
	s = &c->slot[e->seq % LEDGER_ECACHE_SLOTS];
	pthread_mutex_lock(&c->mu);
	s->seq = e->seq;
	s->height = e->block_height;
	s->len = len;
	memcpy(s->raw, raw, len);
	pthread_mutex_unlock(&c->mu);
}

struct one_entry {
	struct ledger__entry_cache *c;
	uint64_t seq;
	ledger_entry_fn cb;
	void *ctx;
};

static int keep_one(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t len)
{
	struct one_entry *o = ctx;

	if (e->seq == o->seq)
		ecache_put(o->c, e, raw, len);
	return o->cb(o->ctx, e, raw, len);
}

/* The entry at seq from the cache: 1 when it was there (cb's result in
 * *err), 0 when not. */
static int ecache_emit(struct ledger__entry_cache *c, uint64_t seq, ledger_entry_fn cb, void *ctx, int *err)
{
	uint8_t raw[LEDGER_ECACHE_ENTRY];
	struct ledger_entry e;
	uint64_t height = 0;
	size_t len;

	if ((len = ecache_get(c, seq, raw, &height)) == 0)
		return 0;
	if (ledger_entry_decode(&e, raw, len, false) < 0 || e.seq != seq)
		*err = ehr_error_set(EHR_ERR_TAMPER, "ledger entry %llu does not decode",
		                     (unsigned long long)seq);
	else {
		e.block_height = height;
		*err = cb(ctx, &e, raw, len);
	}
	return 1;
}

int ledger_get_entries(struct ledger *l, uint64_t from, unsigned limit, ledger_entry_fn cb, void *ctx)
{
	struct ledger_query q = { .from_seq = from, .limit = limit };
	struct one_entry o = { ledger__ecache(l), from, cb, ctx };
	int err = 0;

	ENSURE(limit >= 1 && limit <= 10000, EHR_ERR_INVAL);
	if (limit != 1)
		return ledger_query(l, &q, cb, ctx);
	if (ecache_emit(o.c, from, cb, ctx, &err))
		return err;
	return ledger_query(l, &q, keep_one, &o);
}

int ledger_get_entry_on(struct ledger *l, void *conn, uint64_t seq, ledger_entry_fn cb, void *ctx)
{
	struct one_entry o = { ledger__ecache(l), seq, cb, ctx };
	int err = 0;

	if (ecache_emit(o.c, seq, cb, ctx, &err))
		return err;
	return ledger_read_entries_on(conn, seq, 1, keep_one, &o);
}

int ledger_query(struct ledger *l, const struct ledger_query *q, ledger_entry_fn cb, void *ctx)
{
	struct ehr_buf sql = EHR_BUF_INIT(1024);
	char nums[5][24];
	const char *params[8];
	int np = 0, err;
	void *conn = NULL;
	void *r = NULL;
	unsigned limit = q->limit ? q->limit : 100;

	ENSURE(limit <= 10000 && q->from_seq <= INT64_MAX && q->to_seq <= INT64_MAX, EHR_ERR_INVAL);
	GUARD_GOTO(ehr_buf_append_str(&sql,
	                              "SELECT seq, block_height, entry FROM ledger_entries WHERE seq >= $1"));
	GUARD_GOTO(ehr_fmt(nums[0], sizeof(nums[0]), "%llu", (unsigned long long)q->from_seq));
	params[np++] = nums[0];
	if (q->to_seq) {
		GUARD_GOTO(ehr_fmt(nums[1], sizeof(nums[1]), "%llu", (unsigned long long)q->to_seq));
		params[np++] = nums[1];
		GUARD_GOTO(ehr_buf_printf(&sql, " AND seq < $%d", np));
	}
	if (q->type) {
		params[np++] = q->type;
		GUARD_GOTO(ehr_buf_printf(&sql, " AND type = $%d", np));
	}
	if (q->actor) {
		params[np++] = q->actor;
		GUARD_GOTO(ehr_buf_printf(&sql, " AND actor = $%d", np));
	}
	if (q->subject) {
		params[np++] = q->subject;
		GUARD_GOTO(ehr_buf_printf(&sql, " AND subject = $%d", np));
	}
	if (q->since_ms) {
		GUARD_GOTO(ehr_fmt(nums[2], sizeof(nums[2]), "%lld", (long long)q->since_ms));
		params[np++] = nums[2];
		GUARD_GOTO(ehr_buf_printf(&sql, " AND ts_ms >= $%d", np));
	}
	if (q->until_ms) {
		GUARD_GOTO(ehr_fmt(nums[3], sizeof(nums[3]), "%lld", (long long)q->until_ms));
		params[np++] = nums[3];
		GUARD_GOTO(ehr_buf_printf(&sql, " AND ts_ms < $%d", np));
	}
	GUARD_GOTO(ehr_buf_printf(&sql, " ORDER BY seq LIMIT %u", limit));
	GUARD_GOTO(query_bin(l, &conn, &r, ehr_buf_cstr(&sql), np, params));
	err = emit_rows(r, cb, ctx);
	ehr_db_release(ledger__pool(l), conn, false);
out:
	ehr_db_clear(r);
	ehr_buf_free(&sql);
	return err;
}

static int one_block(struct ledger *l, struct ledger_block *b, const char *sql, const char *param)
{
	void *conn = NULL;
	void *r = NULL;
	const char *params[1] = { param };
	int err;

	GUARD(query_bin(l, &conn, &r, sql, param ? 1 : 0, params));
	if (ehr_db_rows(r) == 0)
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no such ledger block");
	else
		err = ledger__row_block(b, r, 0);
	ehr_db_clear(r);
	ehr_db_release(ledger__pool(l), conn, false);
	return err;
}

int ledger_head(struct ledger *l, struct ledger_block *b)
{
	return one_block(l, b, "SELECT " BLOCK_COLS " FROM ledger_blocks ORDER BY height DESC LIMIT 1", NULL);
}

int ledger_block_at_size(struct ledger *l, uint64_t size, struct ledger_block *b)
{
	char num[24];

	ENSURE(size <= INT64_MAX, EHR_ERR_INVAL);
	GUARD(ehr_fmt(num, sizeof(num), "%llu", (unsigned long long)size));
	return one_block(l, b, "SELECT " BLOCK_COLS " FROM ledger_blocks WHERE tree_size = $1", num);
}

int ledger_block_at_height(struct ledger *l, uint64_t height, struct ledger_block *b)
{
	char num[24];

	ENSURE(height <= INT64_MAX, EHR_ERR_INVAL);
	GUARD(ehr_fmt(num, sizeof(num), "%llu", (unsigned long long)height));
	return one_block(l, b, "SELECT " BLOCK_COLS " FROM ledger_blocks WHERE height = $1", num);
}

int ledger_checkpoint(struct ledger *l, uint64_t size, struct ehr_buf *note)
{
	struct ledger_block b;
	uint8_t pub[32];

	ledger_public_key(l, pub);
	if (size == 0)
		GUARD(ledger_head(l, &b));
	else
		GUARD(ledger_block_at_size(l, size, &b));
	return ledger_checkpoint_note(note, b.origin, b.tree_size, b.root, pub, b.cp_sig);
}

/* The quorum-published head: the row of ledger_published that the head
 * row points at (0085_published.sql). */
static int published_note(struct ledger *l, struct ehr_buf *note, uint64_t *size)
{
	void *conn = NULL;
	void *r = NULL;
	int err;

	GUARD(query_bin(l, &conn, &r,
	                "SELECT p.tree_size, p.note FROM ledger_published_head h "
	                "JOIN ledger_published p ON p.tree_size = h.tree_size",
	                0, NULL));
	if (ehr_db_rows(r) == 0) {
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no checkpoint has reached a witness quorum yet");
		goto out;
	}
	*size = be64((const uint8_t *)ehr_db_value(r, 0, 0));
	err = ehr_buf_append(note, ehr_db_value(r, 0, 1), ehr_db_len(r, 0, 1));
out:
	ehr_db_clear(r);
	ehr_db_release(ledger__pool(l), conn, false);
	return err;
}

int ledger_published(struct ledger *l, struct ehr_buf *note, uint64_t *size)
{
	struct ledger_block b;
	uint8_t pub[32];

	if (ledger__witnessed(l))
		return published_note(l, note, size);
	ledger_public_key(l, pub);
	GUARD(ledger_head(l, &b));
	*size = b.tree_size;
	return ledger_checkpoint_note(note, b.origin, b.tree_size, b.root, pub, b.cp_sig);
}

/* Proofs: plan the ranges, fetch every needed perfect subtree in one query. */
static int pool_fetch(void *ctx, struct merkle_node_ref *refs, size_t n)
{
	return ledger__fetch_nodes(ctx, refs, n);
}

static int prove(struct ledger *l, const struct merkle_range *ranges, size_t n,
                 uint8_t (*out)[LEDGER_HASH_LEN])
{
	void *conn = NULL;
	int err;

	if (n == 0)
		return 0;
	GUARD(ehr_db_acquire(ledger__pool(l), &conn));
	err = merkle__ranges_hash(out, ranges, n, pool_fetch, conn);
	ehr_db_release(ledger__pool(l), conn, err == EHR_ERR_UNAVAILABLE || err == EHR_ERR_DB);
	return err;
}

int ledger_prove_inclusion(struct ledger *l, uint64_t index, uint64_t size, uint8_t (*out)[LEDGER_HASH_LEN],
                           size_t *out_len)
{
	struct merkle_range r[LEDGER_MAX_PROOF];

	ENSURE(size <= INT64_MAX, EHR_ERR_INVAL);
	GUARD(merkle__inclusion_ranges(r, out_len, index, size));
	if (*out_len == 0) {
		/* size 1: the proof is empty; still require the entry to exist. */
		struct merkle_node_ref ref = { 0, 0, { 0 } };
		void *conn = NULL;
		int err;

		GUARD(ehr_db_acquire(ledger__pool(l), &conn));
		err = ledger__fetch_nodes(conn, &ref, 1);
		ehr_db_release(ledger__pool(l), conn, false);
		return err;
	}
	return prove(l, r, *out_len, out);
}

int ledger_prove_consistency(struct ledger *l, uint64_t size1, uint64_t size2,
                             uint8_t (*out)[LEDGER_HASH_LEN], size_t *out_len)
{
	struct merkle_range r[LEDGER_MAX_PROOF];

	ENSURE(size2 <= INT64_MAX, EHR_ERR_INVAL);
	GUARD(merkle__consistency_ranges(r, out_len, size1, size2));
	return prove(l, r, *out_len, out);
}
