/*
 * ledger_internal.h - shared by the ledger's files.
 */
#ifndef EHR_LEDGER_INTERNAL_H
#define EHR_LEDGER_INTERNAL_H

#include "ledger/ledger.h"

/* The advisory lock key every appender takes (pg_advisory_xact_lock). */
#define LEDGER_LOCK_KEY 0x6568726c6467LL /* "ehrldg" */
#define LEDGER_NOTIFY_CHANNEL "ehrgate_ledger"
#define LEDGER_MAX_LEVELS 64

/* A half-open range of leaves [begin, end). */
struct merkle_range {
	uint64_t begin, end;
};

/* A perfect subtree: leaves [idx << level, (idx + 1) << level). */
struct merkle_node_ref {
	unsigned level;
	uint64_t idx;
	uint8_t hash[LEDGER_HASH_LEN];
};

/* Fill refs[i].hash for every ref; a negative return aborts. */
typedef int (*merkle_fetch_fn)(void *ctx, struct merkle_node_ref *refs, size_t n);

/* The ranges whose MTHs form PATH(index, D[size]) / PROOF(size1, D[size2]),
 * in proof order. out needs LEDGER_MAX_PROOF slots. */
int merkle__inclusion_ranges(struct merkle_range *out, size_t *n, uint64_t index, uint64_t size);
int merkle__consistency_ranges(struct merkle_range *out, size_t *n, uint64_t size1, uint64_t size2);
/* Compute the MTH of each range from perfect subtrees fetched in one call. */
int merkle__ranges_hash(uint8_t (*out)[LEDGER_HASH_LEN], const struct merkle_range *ranges, size_t n,
                        merkle_fetch_fn fetch, void *ctx);

/*
 * The right edge of a tree: the MTHs of the perfect subtrees of the binary
 * decomposition of size, largest first. Appending a leaf completes zero or
 * more subtrees (levels 1..ctz(size+1)), which the caller may record.
 */
struct merkle_frontier {
	uint64_t size;
	unsigned n;
	uint8_t h[LEDGER_MAX_LEVELS][LEDGER_HASH_LEN];
};

void merkle__frontier_init(struct merkle_frontier *f);
/* completed[k-1] receives the level-k node completed by this leaf, for
 * k = 1..*ncompleted (may be NULL). */
void merkle__frontier_push(struct merkle_frontier *f, const uint8_t leaf[LEDGER_HASH_LEN],
                           uint8_t (*completed)[LEDGER_HASH_LEN], unsigned *ncompleted);
void merkle__frontier_root(const struct merkle_frontier *f, uint8_t out[LEDGER_HASH_LEN]);
/* The perfect subtrees (level, idx) that make up a frontier of `size`,
 * largest first; returns their count. */
unsigned merkle__frontier_refs(struct merkle_node_ref *refs, uint64_t size);

/* Fast SHA-256 with a cached, per-thread context. */
void ledger__sha256(uint8_t out[LEDGER_HASH_LEN], const void *p1, size_t n1, const void *p2, size_t n2);

/* A C2SP key name or log origin (keys.c; checkpoint.c checks origins). */
bool ledger__key_name_ok(const char *s, size_t n);

/* signed-note key ids and vkeys with a signature type byte (keys.c). */
void ledger__key_id(uint8_t out[4], const char *name, uint8_t type, const uint8_t pub[32]);
int ledger__vkey_format(struct ehr_buf *out, const char *name, uint8_t type, const uint8_t pub[32]);
int ledger__vkey_parse(const char *vkey, size_t len, uint8_t type, char *name, size_t name_cap,
                       uint8_t pub[32]);

/* Walk a signed note's signature lines (checkpoint.c): checks the framing
 * (LEDGER_NOTE_MAX, no control bytes, text ending at the last "\n\n", em
 * dash lines, key names, base64 of >= 5 bytes), sets *text_len, and calls
 * cb (if given) per line with the key name and decoded key id || signature.
 * A negative cb return stops the walk and is returned. */
typedef int (*ledger__note_sig_fn)(void *ctx, const char *name, size_t nlen, const uint8_t *blob,
                                   size_t blen);
int ledger__note_scan(const char *note, size_t len, size_t *text_len, ledger__note_sig_fn cb, void *ctx);
/* The first signature line by key name `name` with key id `id`: its blob
 * (key id || signature) into blob[blob_cap]. EHR_ERR_NOT_FOUND if none,
 * EHR_ERR_TAMPER if it is longer than blob_cap. */
int ledger__note_find(const char *note, size_t len, const char *name, const uint8_t id[4], size_t *text_len,
                      uint8_t *blob, size_t blob_cap, size_t *blob_len);

/* Block header signature check with a block's fields. */
int ledger__block_verify(const struct ledger_block *b, const uint8_t pub[32]);

/* Store helpers (ledger_store.c) used by reads and verification. */
int ledger__row_block(struct ledger_block *b, void *res, int row);
int ledger__fetch_nodes(void *conn, struct merkle_node_ref *refs, size_t n);
/* The tail both C2SP bodies with a proof share (tlog-proof, tlog-witness
 * add-checkpoint): each hash base64 on its own line, an empty line, the
 * note. */
int ledger__hashes_then_note(struct ehr_buf *out, const uint8_t (*hashes)[LEDGER_HASH_LEN], size_t n,
                             const char *note, size_t note_len);
/* read.c: entries read one at a time, kept by seq (they never change once
 * committed); NULL when there is no memory for it, and then not used. */
struct ledger__entry_cache;
struct ledger__entry_cache *ledger__entry_cache_new(void);
void ledger__entry_cache_free(struct ledger__entry_cache *c);
/* store.c: what the readers (read.c, tile_store.c) need of the opaque
 * struct ledger: its request pool, whether publication is witnessed, its
 * entry cache. */
struct ehr_db_pool *ledger__pool(struct ledger *l);
bool ledger__witnessed(const struct ledger *l);
struct ledger__entry_cache *ledger__ecache(struct ledger *l);

#endif
