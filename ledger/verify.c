/*
 * verify.c - one range of the ledger recomputed from the database, in
 * order of position (docs/LEDGER.md §8): every entry's encoding against its
 * columns, every leaf hash, every stored subtree hash, every block root,
 * header hash and hash-chain link (and, with all_signatures, both
 * signatures of every block). Entries are streamed with binary COPY in
 * block-aligned chunks; verify_run.c runs the ranges and the checks made
 * once for the whole ledger.
 */
#include "ledger/verify_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#define BLOCK_COLS "height, prev_hash, tree_size, root, ts_ms, hash, sig, origin, cp_sig"
#define CHUNK_BLOCKS 1024

int ledger__verify_bad(struct vstate *v, enum ledger_bad_kind kind, uint64_t pos, const char *fmt, ...)
{
	va_list ap;

	v->rep->bad = kind;
	if (kind == LEDGER_BAD_ENTRY)
		v->rep->bad_seq = pos;
	else
		v->rep->bad_height = pos;
	va_start(ap, fmt);
	if (ehr_vfmt(v->rep->reason, sizeof(v->rep->reason), fmt, ap) < 0) {
		static const char too_long[] = "finding too long to describe";

		memcpy(v->rep->reason, too_long, sizeof(too_long)); /* fits: reason[256] */
	}
	va_end(ap);
	return ehr_error_set(EHR_ERR_TAMPER, "%s %llu: %s", kind == LEDGER_BAD_ENTRY ? "entry" : "block",
	                     (unsigned long long)pos, v->rep->reason);
}

/* Always EHR_ERR_DB (verification reports no other database code);
 * libpq's text goes to the log detail only. */
int ledger__verify_pg_err(PGconn *c, const PGresult *r, const char *what)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	return ehr_error_set_detail(EHR_ERR_DB, "verify: database error", "verify: %s: %s %s", what,
	                            state ? state : "-", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
}

static int sig_ok(EVP_PKEY *pk, const uint8_t *sig, const void *msg, size_t len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (ctx == NULL)
		return 0;
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
	     EVP_DigestVerify(ctx, sig, LEDGER_SIG_LEN, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

int ledger__verify_block_sigs(struct vstate *v, const struct ledger_block *b)
{
	uint8_t header[LEDGER_BLOCK_HEADER_LEN];
	struct ehr_buf body = EHR_BUF_INIT(1024);
	bool ok;

	ledger_block_header(header, b);
	if (!sig_ok(v->pk, b->sig, header, sizeof(header)))
		return ledger__verify_bad(v, LEDGER_BAD_BLOCK, b->height, "block signature does not verify");
	if (ledger_checkpoint_body(&body, b->origin, b->tree_size, b->root) < 0) {
		ehr_buf_free(&body);
		return ledger__verify_bad(v, LEDGER_BAD_CHECKPOINT, b->height,
		                          "block origin is not a valid key name");
	}
	ok = sig_ok(v->pk, b->cp_sig, body.data, body.len);
	ehr_buf_free(&body);
	if (!ok)
		return ledger__verify_bad(v, LEDGER_BAD_CHECKPOINT, b->height,
		                          "checkpoint signature does not verify");
	return 0;
}

/*
 * Checks of a block that do not depend on its entries. Its signatures only
 * with all_signatures: the hash chain ties every header to the last
 * block's, whose signatures verify_run.c checks (docs/LEDGER.md §8).
 */
static int check_block_self(struct vstate *v, const struct ledger_block *b)
{
	uint8_t header[LEDGER_BLOCK_HEADER_LEN], h[LEDGER_HASH_LEN];

	ledger_block_header(header, b);
	ledger__sha256(h, header, sizeof(header), NULL, 0);
	if (memcmp(h, b->hash, LEDGER_HASH_LEN) != 0) /* not secret */
		return ledger__verify_bad(v, LEDGER_BAD_BLOCK, b->height,
		                          "stored block hash is not the hash of its header");
	return v->all_signatures ? ledger__verify_block_sigs(v, b) : 0;
}

/* Chain checks against the previous block. */
static int check_block_link(struct vstate *v, const struct ledger_block *b)
{
	static const uint8_t zero[LEDGER_HASH_LEN];

	if (!v->have_prev) {
		if (b->height != 0)
			return ledger__verify_bad(v, LEDGER_BAD_BLOCK, 0,
			                          "block missing (first block found has height %llu)",
			                          (unsigned long long)b->height);
		if (memcmp(b->prev_hash, zero, LEDGER_HASH_LEN) != 0) /* not secret */
			return ledger__verify_bad(v, LEDGER_BAD_BLOCK, 0,
			                          "genesis block has a non-zero previous hash");
		return 0;
	}
	if (b->height != v->prev.height + 1)
		return ledger__verify_bad(v, LEDGER_BAD_BLOCK, v->prev.height + 1,
		                          "block missing (next block found has height %llu)",
		                          (unsigned long long)b->height);
	if (memcmp(b->prev_hash, v->prev.hash, LEDGER_HASH_LEN) != 0) /* not secret */
		return ledger__verify_bad(v, LEDGER_BAD_BLOCK, b->height,
		                          "previous-block hash does not link to block %llu",
		                          (unsigned long long)v->prev.height);
	if (b->tree_size <= v->prev.tree_size)
		return ledger__verify_bad(v, LEDGER_BAD_BLOCK, b->height, "tree size does not grow");
	if (b->ts_ms < v->prev.ts_ms)
		return ledger__verify_bad(v, LEDGER_BAD_BLOCK, b->height, "block time goes backwards");
	return 0;
}

static int fetch_blocks(struct vstate *v, struct ledger_block *out, int *n, const char *where)
{
	char sql[512];
	PGresult *r;
	int err = 0;

	GUARD(ehr_fmt(sql, sizeof(sql), "SELECT " BLOCK_COLS " FROM ledger_blocks %s", where));
	if (ehr_db_exec_binary(v->c, (void **)&r, sql, 0, NULL) < 0)
		return ehr_error_wrap(EHR_ERR_DB, "verify: reading blocks");
	*n = PQntuples(r);
	for (int i = 0; i < *n && err == 0; i++) {
		if (ledger__row_block(&out[i], r, i) < 0) {
			int64_t h = 0;

			if (PQgetlength(r, i, 0) == 8) {
				const uint8_t *p = (const uint8_t *)PQgetvalue(r, i, 0);

				for (int k = 0; k < 8; k++)
					h = (h << 8) | p[k];
			}
			err = ledger__verify_bad(v, LEDGER_BAD_BLOCK, (uint64_t)h,
			                         "block row has a malformed column");
		}
	}
	PQclear(r);
	return err;
}

/* A binary COPY tuple: int16 nfields, then (int32 len, bytes) each. */
struct field {
	const uint8_t *p;
	int32_t len;
};

static int parse_tuple(struct field *f, int nf, const uint8_t *p, size_t len)
{
	struct ehr_cursor c;
	uint16_t n;

	ehr_cursor_init(&c, p, len);
	if (ehr_cursor_read_be16(&c, &n) < 0 || n != nf)
		return -1;
	for (int i = 0; i < nf; i++) {
		uint32_t l;

		if (ehr_cursor_read_be32(&c, &l) < 0)
			return -1;
		f[i].len = (int32_t)l;
		if (f[i].len < 0) {
			f[i].p = NULL;
			continue;
		}
		if (ehr_cursor_take(&c, &f[i].p, l) < 0)
			return -1;
	}
	return ehr_cursor_remaining(&c) == 0 ? 0 : -1;
}

static uint64_t fbe64(const struct field *f)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | f->p[i];
	return v;
}

/*
 * The structure of LEDGER.md §1 without copies: version, seq, ts and the
 * length-prefixed fields, each within bounds, nothing trailing. (Field
 * domains were enforced when the entry was written; here what matters is
 * that the columns say what the hashed bytes say.)
 */
struct eview {
	uint64_t seq;
	int64_t ts;
	const uint8_t *type, *actor, *subject;
	size_t tlen, alen, slen;
};

static bool entry_view(struct eview *ev, const uint8_t *p, size_t n)
{
	size_t off = 17, l;

	if (n < 17 + 1 + 2 + 2 + 4 || p[0] != LEDGER_ENTRY_VERSION)
		return false;
	ev->seq = 0;
	for (int i = 1; i <= 8; i++)
		ev->seq = (ev->seq << 8) | p[i];
	ev->ts = 0;
	for (int i = 9; i <= 16; i++)
		ev->ts = (int64_t)(((uint64_t)ev->ts << 8) | p[i]);
	l = p[off];
	if (l == 0 || l > LEDGER_MAX_TYPE || off + 1 + l + 2 > n)
		return false;
	ev->type = p + off + 1;
	ev->tlen = l;
	off += 1 + l;
	l = (size_t)p[off] << 8 | p[off + 1];
	if (l == 0 || l > LEDGER_MAX_ID || off + 2 + l + 2 > n)
		return false;
	ev->actor = p + off + 2;
	ev->alen = l;
	off += 2 + l;
	l = (size_t)p[off] << 8 | p[off + 1];
	if (l > LEDGER_MAX_ID || off + 2 + l + 4 > n)
		return false;
	ev->subject = p + off + 2;
	ev->slen = l;
	off += 2 + l;
	l = (size_t)p[off] << 24 | (size_t)p[off + 1] << 16 | (size_t)p[off + 2] << 8 | p[off + 3];
	return l <= LEDGER_MAX_PAYLOAD && off + 4 + l == n;
}

static bool same(const struct field *f, const uint8_t *p, size_t n)
{
	return f->len >= 0 && (size_t)f->len == n && memcmp(f->p, p, n) == 0; /* not secret */
}

/* One entry row against the block it belongs to. */
static int check_entry(struct vstate *v, const struct field *f, const struct ledger_block *b)
{
	struct eview e;
	uint8_t leaf[LEDGER_HASH_LEN];
	uint8_t done[LEDGER_MAX_LEVELS][LEDGER_HASH_LEN];
	unsigned ndone;
	uint64_t seq = v->cur;

	if (f[0].len != 8 || f[1].len != 8 || f[5].len != 8 || f[6].len < 0 || f[7].len < 0 || f[8].len < 0)
		return ledger__verify_bad(v, LEDGER_BAD_ENTRY, seq, "row has NULL or malformed columns");
	if (!entry_view(&e, f[6].p, (size_t)f[6].len))
		return ledger__verify_bad(v, LEDGER_BAD_ENTRY, seq, "entry bytes do not decode");
	if (e.seq != seq)
		return ledger__verify_bad(v, LEDGER_BAD_ENTRY, seq,
		                          "entry bytes encode seq %llu in the row of seq %llu",
		                          (unsigned long long)e.seq, (unsigned long long)seq);
	if ((int64_t)fbe64(&f[1]) != e.ts || !same(&f[2], e.type, e.tlen) || !same(&f[3], e.actor, e.alen) ||
	    !same(&f[4], e.subject, e.slen))
		return ledger__verify_bad(v, LEDGER_BAD_ENTRY, seq,
		                          "indexed columns differ from the entry bytes");
	if (fbe64(&f[5]) != b->height)
		return ledger__verify_bad(v, LEDGER_BAD_ENTRY, seq,
		                          "row names block %llu but block %llu covers it",
		                          (unsigned long long)fbe64(&f[5]), (unsigned long long)b->height);
	if (e.ts != b->ts_ms)
		return ledger__verify_bad(v, LEDGER_BAD_ENTRY, seq,
		                          "entry time differs from its block's time");
	merkle_leaf_hash(leaf, f[6].p, (size_t)f[6].len);
	if (f[7].len != LEDGER_HASH_LEN || memcmp(f[7].p, leaf, LEDGER_HASH_LEN) != 0) /* not secret */
		return ledger__verify_bad(v, LEDGER_BAD_ENTRY, seq,
		                          "stored leaf hash is not SHA-256(0x00 || entry)");
	merkle__frontier_push(&v->fr, leaf, done, &ndone);
	if ((size_t)f[8].len != (size_t)ndone * LEDGER_HASH_LEN)
		return ledger__verify_bad(v, LEDGER_BAD_ENTRY, seq,
		                          "stored subtree hashes: %d bytes, expected %u levels", f[8].len,
		                          ndone);
	for (unsigned k = 0; k < ndone; k++) {
		const uint8_t *stored = f[8].p + (size_t)k * LEDGER_HASH_LEN;

		if (memcmp(stored, done[k], LEDGER_HASH_LEN) != 0) /* not secret */
			return ledger__verify_bad(v, LEDGER_BAD_ENTRY, seq,
			                          "stored subtree hash at level %u differs", k + 1);
	}
	v->cur++;
	v->rep->entries++;
	if (v->trusted_size && v->fr.size == v->trusted_size) {
		merkle__frontier_root(&v->fr, v->root_at_trusted);
		v->trusted_seen = true;
	}
	return 0;
}

static int finish_block(struct vstate *v, const struct ledger_block *b)
{
	uint8_t root[LEDGER_HASH_LEN];

	merkle__frontier_root(&v->fr, root);
	if (memcmp(root, b->root, LEDGER_HASH_LEN) != 0) /* not secret */
		return ledger__verify_bad(v, LEDGER_BAD_BLOCK, b->height,
		                          "signed root differs from the root recomputed from entries 0..%llu",
		                          (unsigned long long)(b->tree_size - 1));
	v->prev = *b;
	v->have_prev = true;
	v->rep->blocks++;
	return 0;
}

/* The binary COPY header (signature, flags, extension) before the first tuple. */
static int skip_copy_header(const uint8_t **p, size_t *plen)
{
	uint32_t ext;

	if (*plen < 19 || memcmp(*p, "PGCOPY\n\377\r\n\0", 11) != 0) /* not secret */
		return ehr_error_set(EHR_ERR_DB, "verify: bad COPY header");
	ext = (uint32_t)(*p)[15] << 24 | (uint32_t)(*p)[16] << 16 | (uint32_t)(*p)[17] << 8 | (*p)[18];
	if (*plen < 19 + (size_t)ext)
		return ehr_error_set(EHR_ERR_DB, "verify: bad COPY header");
	*p += 19 + ext;
	*plen -= 19 + ext;
	return 0;
}

/* Stream entries [v->cur, blocks[n-1].tree_size) and check them block by block. */
static int verify_chunk(struct vstate *v, const struct ledger_block *blocks, int n)
{
	char sql[512];
	PGresult *r;
	int bi = 0, err = 0;
	bool header = true, ended = false;
	uint64_t end = blocks[n - 1].tree_size;

	GUARD(check_block_link(v, &blocks[0]));
	GUARD(check_block_self(v, &blocks[0]));
	GUARD(ehr_fmt(sql, sizeof(sql),
	              "COPY (SELECT seq, ts_ms, type, actor, subject, block_height, entry, leaf_hash, nodes "
	              "FROM ledger_entries WHERE seq >= %llu AND seq < %llu ORDER BY seq) TO STDOUT (FORMAT "
	              "binary)",
	              (unsigned long long)v->cur, (unsigned long long)end));
	r = PQexec(v->c, sql);
	if (r == NULL || PQresultStatus(r) != PGRES_COPY_OUT) {
		err = ledger__verify_pg_err(v->c, r, "COPY");
		PQclear(r);
		return err;
	}
	PQclear(r);
	for (;;) {
		char *buf = NULL;
		int len = PQgetCopyData(v->c, &buf, 0);
		const uint8_t *p = (const uint8_t *)buf;
		size_t plen;
		struct field f[9];

		if (len == -1)
			break;
		if (len < 0) {
			err = ledger__verify_pg_err(v->c, NULL, "COPY stream");
			break;
		}
		plen = (size_t)len;
		if (err < 0 || ended) { /* drain after a finding */
			PQfreemem(buf);
			continue;
		}
		if (header) {
			header = false;
			if ((err = skip_copy_header(&p, &plen)) < 0 || plen == 0) {
				PQfreemem(buf);
				continue;
			}
		}
		if (plen == 2 && p[0] == 0xff && p[1] == 0xff) {
			ended = true;
			PQfreemem(buf);
			continue;
		}
		if (parse_tuple(f, 9, p, plen) < 0 || f[0].len != 8) {
			err = ledger__verify_bad(v, LEDGER_BAD_ENTRY, v->cur, "row does not parse");
		} else {
			uint64_t seq = fbe64(&f[0]);

			if (seq != v->cur)
				err = ledger__verify_bad(v, LEDGER_BAD_ENTRY, v->cur,
				                         "entry missing (next row has seq %llu)",
				                         (unsigned long long)seq);
			else
				err = check_entry(v, f, &blocks[bi]);
			while (err == 0 && bi < n && v->cur == blocks[bi].tree_size) {
				err = finish_block(v, &blocks[bi]);
				bi++;
				/* the next block is checked before its first entry */
				if (err == 0 && bi < n && (err = check_block_link(v, &blocks[bi])) == 0)
					err = check_block_self(v, &blocks[bi]);
			}
		}
		PQfreemem(buf);
	}
	r = PQgetResult(v->c);
	while (r) {
		if (err == 0 && PQresultStatus(r) != PGRES_COMMAND_OK)
			err = ledger__verify_pg_err(v->c, r, "COPY");
		PQclear(r);
		r = PQgetResult(v->c);
	}
	if (err == 0 && v->cur < end)
		err = ledger__verify_bad(
		        v, LEDGER_BAD_ENTRY, v->cur, "entry missing (block %llu claims tree size %llu)",
		        (unsigned long long)blocks[bi].height, (unsigned long long)blocks[bi].tree_size);
	return err;
}

int ledger__verify_start_at(struct vstate *v, const char *where)
{
	struct merkle_node_ref refs[LEDGER_MAX_LEVELS];
	struct ledger_block b;
	uint8_t root[LEDGER_HASH_LEN];
	unsigned nr;
	int n = 0;

	GUARD(fetch_blocks(v, &b, &n, where));
	if (n != 1)
		return 0;
	GUARD(check_block_self(v, &b));
	nr = merkle__frontier_refs(refs, b.tree_size);
	if (ledger__fetch_nodes(v->c, refs, nr) < 0)
		return ledger__verify_bad(v, LEDGER_BAD_BLOCK, b.height, "stored right edge unreadable: %s",
		                          ehr_error_msg());
	for (unsigned i = 0; i < nr; i++)
		memcpy(v->fr.h[i], refs[i].hash, LEDGER_HASH_LEN);
	v->fr.n = nr;
	v->fr.size = b.tree_size;
	merkle__frontier_root(&v->fr, root);
	if (memcmp(root, b.root, LEDGER_HASH_LEN) != 0) /* not secret */
		return ledger__verify_bad(v, LEDGER_BAD_BLOCK, b.height,
		                          "stored subtree hashes do not hash to the signed root");
	v->prev = b;
	v->have_prev = true;
	v->cur = b.tree_size;
	return 0;
}

int ledger__verify_range(struct vstate *v)
{
	struct ledger_block *blocks = calloc(CHUNK_BLOCKS, sizeof(*blocks));
	char where[256];
	int n = 0, err = 0;

	if (blocks == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	for (;;) {
		unsigned long long after = v->have_prev ? (unsigned long long)v->prev.height : 0;

		if (v->have_prev && v->prev.height >= v->end_height)
			break;
		GUARD_GOTO(ehr_fmt(where, sizeof(where),
		                   "WHERE height %s %llu AND height <= %llu ORDER BY height LIMIT %d",
		                   v->have_prev ? ">" : ">=", after, (unsigned long long)v->end_height,
		                   CHUNK_BLOCKS));
		GUARD_GOTO(fetch_blocks(v, blocks, &n, where));
		if (n == 0)
			break;
		GUARD_GOTO(verify_chunk(v, blocks, n));
	}
out:
	free(blocks);
	return err;
}
