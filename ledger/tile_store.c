/*
 * tile_store.c - C2SP tlog-tiles served from the store (docs/LEDGER.md §10):
 * hash tiles from the stored perfect subtrees (a level-l tile hash is the
 * subtree of height 8l kept in the row that ends it, §3), entry bundles
 * from the entries' canonical bytes. One indexed query per tile.
 */
#include "common/db.h"
#include "ledger/ledger_internal.h"

#include <string.h>

/* Check the rows (one per seq, in order) and append the tile's bytes. */
static int tile_rows(struct ehr_buf *out, const void *r, const struct ledger_tile *t)
{
	if ((unsigned)ehr_db_rows(r) != t->width)
		return ehr_error_set_detail(EHR_ERR_TAMPER, "ledger tile incomplete",
		                            "tile expects %u rows, the store has %d", t->width,
		                            ehr_db_rows(r));
	for (int i = 0; i < ehr_db_rows(r); i++) {
		size_t len = ehr_db_len(r, i, 0);

		if (t->entries) {
			/* c2sp.org/tlog-tiles: big-endian uint16 length, then the entry */
			ENSURE(len >= 1 && len <= LEDGER_MAX_BUNDLE_ENTRY, EHR_ERR_TOO_LARGE);
			GUARD(ehr_buf_append_be16(out, (uint16_t)len));
		} else {
			ENSURE(len == LEDGER_HASH_LEN, EHR_ERR_TAMPER);
		}
		GUARD(ehr_buf_append(out, ehr_db_value(r, i, 0), len));
	}
	return 0;
}

int ledger_tile_read(struct ledger *l, const struct ledger_tile *t, struct ehr_buf *out)
{
	char first[24], last[24], step[24], off[12];
	const char *params[4] = { first, last, step, off };
	unsigned h = t->entries ? 0 : 8 * t->level; /* subtree height of one tile hash */
	uint64_t k0 = t->index * LEDGER_TILE_WIDTH;
	void *conn = NULL, *r = NULL;
	const char *sql;
	int err;

	ENSURE(ledger_tile_covered(t, INT64_MAX), EHR_ERR_INVAL);
	/* hash i of the tile is subtree (h, k0 + i), kept in row ((k0+i+1) << h) - 1 */
	GUARD(ehr_fmt(first, sizeof(first), "%llu", (unsigned long long)(((k0 + 1) << h) - 1)));
	GUARD(ehr_fmt(last, sizeof(last), "%llu", (unsigned long long)(((k0 + t->width) << h) - 1)));
	GUARD(ehr_fmt(step, sizeof(step), "%llu", (unsigned long long)(UINT64_C(1) << h)));
	GUARD(ehr_fmt(off, sizeof(off), "%u", h == 0 ? 1 : (h - 1) * LEDGER_HASH_LEN + 1));
	if (t->entries)
		sql = "SELECT entry FROM ledger_entries WHERE seq BETWEEN $1 AND $2 ORDER BY seq";
	else if (h == 0)
		sql = "SELECT leaf_hash FROM ledger_entries WHERE seq BETWEEN $1 AND $2 ORDER BY seq";
	else
		sql = "SELECT substring(nodes FROM $4::int FOR 32) FROM ledger_entries "
		      "WHERE seq IN (SELECT generate_series($1::bigint, $2::bigint, $3::bigint)) ORDER BY "
		      "seq";
	GUARD(ehr_db_acquire(ledger__pool(l), &conn));
	err = ehr_db_exec_binary(conn, &r, sql, h == 0 ? 2 : 4, params);
	if (err < 0) {
		err = ehr_error_wrap(err == EHR_ERR_UNAVAILABLE ? EHR_ERR_UNAVAILABLE : EHR_ERR_DB,
		                     "ledger read");
		ehr_db_release(ledger__pool(l), conn, true);
		return err;
	}
	err = tile_rows(out, r, t);
	ehr_db_clear(r);
	ehr_db_release(ledger__pool(l), conn, false);
	return err;
}
