/*
 * ledger.h - the tamper-evident ledger.
 *
 * The ledger is an RFC 9162 Merkle tree of entries kept in PostgreSQL,
 * grouped into Ed25519-signed, hash-chained blocks, with C2SP
 * tlog-checkpoint signed notes. docs/LEDGER.md is the byte-level contract.
 *
 * Pure functions (entry encoding, hashing, proof verification, checkpoint
 * parsing) have no database dependency, so client/ reuses them.
 */
#ifndef EHR_LEDGER_H
#define EHR_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/common.h"

struct ehr_db_pool; /* common/db.h */

#define LEDGER_HASH_LEN 32
#define LEDGER_MAX_PROOF 64

/* ------------------------------------------------------------------ entries */

struct ledger_entry_in {
	const char *type;      /* "auth.register", "access.decision", "ehr.store", ... */
	const char *actor;     /* pseudonym of who acted */
	const char *subject;   /* pseudonym or id of what it concerns ("" if none) */
	const json_t *payload; /* JSON object; serialised canonically */
};

/* What an appender learns once its batch is durable. */
struct ledger_receipt {
	uint64_t seq; /* 0-based leaf index */
	uint64_t block_height;
	uint64_t tree_size; /* tree size at the end of the block */
	int64_t ts_ms;
	uint8_t root[LEDGER_HASH_LEN];
};

/* ------------------------------------------------------------ Merkle (pure) */

void merkle_leaf_hash(uint8_t out[LEDGER_HASH_LEN], const uint8_t *entry, size_t len);
void merkle_node_hash(uint8_t out[LEDGER_HASH_LEN], const uint8_t l[LEDGER_HASH_LEN],
                      const uint8_t r[LEDGER_HASH_LEN]);
/* RFC 9162 §2.1.3.2: 0 if `path` proves leaf `index` in a tree of `size` with `root`,
 * else EHR_ERR_TAMPER. */
int merkle_verify_inclusion(const uint8_t leaf[LEDGER_HASH_LEN], uint64_t index, uint64_t size,
                            const uint8_t (*path)[LEDGER_HASH_LEN], size_t path_len,
                            const uint8_t root[LEDGER_HASH_LEN]);
/* RFC 9162 §2.1.4.2. */
int merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[LEDGER_HASH_LEN],
                              const uint8_t root2[LEDGER_HASH_LEN], const uint8_t (*proof)[LEDGER_HASH_LEN],
                              size_t proof_len);

/* ------------------------------------------------------------- the ledger */

struct ledger;

struct ledger_config {
	struct ehr_db_pool *db; /* the gateway's pool (role ehrgate_app) */
	const char *conninfo;   /* for the writer's own connection */
	const char *origin;     /* checkpoint origin line, e.g. "ehrgate.local/ledger" */
	EVP_PKEY *signing_key;  /* Ed25519; the ledger takes a reference */
	unsigned batch_max;     /* entries per block, default 512 */
	unsigned batch_ms;      /* max linger for a batch to fill, default 2 (0 = never);
	                             * the writer lingers only while fewer entries are queued
	                             * than its previous batch held (docs/LEDGER.md §3) */
	bool witnessed;         /* checkpoints count once witnesses cosigned them:
	                         * ledger_published reads the quorum-published head
	                         * (table ledger_published, docs/LEDGER.md §13) */
};

int ledger_open(struct ledger **out, const struct ledger_config *cfg);
/* Commits what is pending, stops the writer, frees. */
void ledger_close(struct ledger *l);
/*
 * Append one entry. Thread-safe. Returns only after the batch holding the
 * entry is durable (synchronous_commit=on), filling *rcpt; if the batch
 * failed, nothing of it was written and every waiter gets the error.
 */
int ledger_append(struct ledger *l, const struct ledger_entry_in *in, struct ledger_receipt *rcpt);
/*
 * Append in[0..n) together: validated first (an invalid entry anywhere
 * appends none), then committed in ONE block with consecutive seqs and one
 * durable wait; rcpts[i] (if rcpts is given) is entry i's receipt. All or
 * nothing: a failed batch writes none of them. A group larger than
 * batch_max is committed alone, as its own block. ledger_append is n = 1.
 */
#define LEDGER_APPEND_N_MAX 65536
int ledger_append_n(struct ledger *l, const struct ledger_entry_in *in, size_t n,
                    struct ledger_receipt *rcpts);

/* ------------------------------------------------------ Merkle extras (pure) */

/* MTH of leaf hashes[0..n) (RFC 9162 §2.1.1); n == 0 gives SHA-256(""). */
int merkle_root(uint8_t out[LEDGER_HASH_LEN], const uint8_t (*leaves)[LEDGER_HASH_LEN], uint64_t n);
/* RFC 9162 PATH and PROOF computed from in-memory leaf hashes (tests, tools). */
int merkle_prove_inclusion_mem(uint8_t (*out)[LEDGER_HASH_LEN], size_t *out_len,
                               const uint8_t (*leaves)[LEDGER_HASH_LEN], uint64_t index, uint64_t size);
int merkle_prove_consistency_mem(uint8_t (*out)[LEDGER_HASH_LEN], size_t *out_len,
                                 const uint8_t (*leaves)[LEDGER_HASH_LEN], uint64_t size1, uint64_t size2);

/*
 * A client that trusted (old_size, old_root) and is shown (new_size,
 * new_root) with a consistency proof: 0 if the new head extends the old one.
 * EHR_ERR_TAMPER with a detail naming the sizes when the new head is older
 * (rollback: new_size < old_size), forks at equal size, or the proof fails.
 */
int merkle_check_advance(uint64_t old_size, const uint8_t old_root[LEDGER_HASH_LEN], uint64_t new_size,
                         const uint8_t new_root[LEDGER_HASH_LEN], const uint8_t (*proof)[LEDGER_HASH_LEN],
                         size_t proof_len);

/* ------------------------------------------------------- entry encoding (pure) */

#define LEDGER_ENTRY_VERSION 1
#define LEDGER_MAX_TYPE 64
#define LEDGER_MAX_ID 256        /* actor, subject: bytes */
#define LEDGER_MAX_PAYLOAD 65536 /* canonical JSON bytes */

/* A decoded entry. Strings are NUL-terminated copies; payload points into the
 * encoded bytes it was decoded from (not owned). */
struct ledger_entry {
	uint64_t seq;
	int64_t ts_ms;
	uint64_t block_height; /* set by readers from the store; 0 from ledger_entry_decode */
	char type[LEDGER_MAX_TYPE + 1];
	char actor[LEDGER_MAX_ID + 1];
	char subject[LEDGER_MAX_ID + 1];
	const uint8_t *payload; /* canonical JSON text, not NUL-terminated */
	size_t payload_len;
	uint8_t leaf_hash[LEDGER_HASH_LEN];
};

/* Canonical JSON of docs/LEDGER.md §2 (RFC 8785 restricted to integers in
 * ±(2^53-1), no floats). Appends to out. */
int ledger_canonical_json(struct ehr_buf *out, const json_t *v);
/* The entry's canonical bytes (docs/LEDGER.md §1). Appends to out. */
int ledger_entry_encode(struct ehr_buf *out, uint64_t seq, int64_t ts_ms, const struct ledger_entry_in *in);
/* Strict decoder: version, bounds, no trailing bytes. Fills leaf_hash too.
 * With check_payload the payload must parse and re-serialise to itself. */
int ledger_entry_decode(struct ledger_entry *e, const uint8_t *p, size_t len, bool check_payload);

/* ----------------------------------------------------------- blocks (pure) */

#define LEDGER_BLOCK_HEADER_LEN 104
#define LEDGER_SIG_LEN 64

struct ledger_block {
	uint64_t height;
	uint8_t prev_hash[LEDGER_HASH_LEN];
	uint64_t tree_size;
	uint8_t root[LEDGER_HASH_LEN];
	int64_t ts_ms;
	uint8_t hash[LEDGER_HASH_LEN];  /* SHA-256 of the header */
	uint8_t sig[LEDGER_SIG_LEN];    /* Ed25519 over the header */
	uint8_t cp_sig[LEDGER_SIG_LEN]; /* Ed25519 over the checkpoint body */
	char origin[256];
};

void ledger_block_header(uint8_t out[LEDGER_BLOCK_HEADER_LEN], const struct ledger_block *b);
void ledger_block_hash(uint8_t out[LEDGER_HASH_LEN], const struct ledger_block *b);

/* ------------------------------------------------- keys and signatures (pure) */

/* Raw 32-byte Ed25519 public key of a private or public EVP_PKEY. */
int ledger_key_raw_public(uint8_t out[32], EVP_PKEY *key);
/* Load an Ed25519 public key from PEM (public or private) or from a vkey line. */
int ledger_key_load_public(uint8_t out[32], const char *path);
int ledger_ed25519_sign(uint8_t sig[LEDGER_SIG_LEN], EVP_PKEY *key, const void *msg, size_t len);
/* 0 if valid, EHR_ERR_TAMPER if not. */
int ledger_ed25519_verify(const uint8_t pub[32], const uint8_t sig[LEDGER_SIG_LEN], const void *msg,
                          size_t len);

/* ------------------------------------------------------ checkpoints (pure) */

/* C2SP signed-note key id: SHA-256(name || 0x0A || 0x01 || pub)[:4]. */
void ledger_note_key_id(uint8_t out[4], const char *name, const uint8_t pub[32]);
/* Verifier key "<name>+<hex key id>+<base64(0x01 || pub)>". Appends to out. */
int ledger_vkey_format(struct ehr_buf *out, const char *name, const uint8_t pub[32]);
int ledger_vkey_parse(const char *vkey, size_t len, char *name, size_t name_cap, uint8_t pub[32]);
/* A C2SP signed note: 0 if the first signature line by key name `name` with
 * the key id of `pub` verifies over the note text (which ends at the last
 * "\n\n" and includes its final newline); *text_len gets the text length.
 * Other keys' lines are ignored. EHR_ERR_PARSE / EHR_ERR_TAMPER. */
int ledger_note_verify(const char *note, size_t len, const char *name, const uint8_t pub[32],
                       size_t *text_len);
/* The checkpoint body "<origin>\n<size>\n<base64 root>\n". Appends to out. */
int ledger_checkpoint_body(struct ehr_buf *out, const char *origin, uint64_t size,
                           const uint8_t root[LEDGER_HASH_LEN]);
/* A full signed note (body, blank line, one signature line by key name
 * `origin`) from a signature over the body. Appends to out. */
int ledger_checkpoint_note(struct ehr_buf *out, const char *origin, uint64_t size,
                           const uint8_t root[LEDGER_HASH_LEN], const uint8_t pub[32],
                           const uint8_t sig[LEDGER_SIG_LEN]);
/*
 * Parse and verify a checkpoint note: its origin line must equal `origin`,
 * and a signature line by key name `origin` with the key id of `pub` must
 * verify over the body. Lines by other keys (witness cosignatures) are
 * ignored. Fills *size and root. EHR_ERR_PARSE for malformed notes,
 * EHR_ERR_TAMPER for a bad or missing signature or a wrong origin.
 */
int ledger_checkpoint_verify(const char *note, size_t len, const uint8_t pub[32], const char *origin,
                             uint64_t *size, uint8_t root[LEDGER_HASH_LEN]);

/* -------------------------------------- witnesses: C2SP cosignatures (pure, cosig.c) */

#define LEDGER_NOTE_MAX 16384                          /* bytes of a signed note we accept */
#define LEDGER_SIGTYPE_ED25519 0x01                    /* signed-note Ed25519 signature type */
#define LEDGER_SIGTYPE_COSIG_V1 0x04                   /* C2SP tlog-cosignature Ed25519 (cosignature/v1) */
#define LEDGER_COSIG_BLOB_LEN (4 + 8 + LEDGER_SIG_LEN) /* key id || BE u64 time || sig */
#define LEDGER_WITNESS_MAX_PROOF 63                    /* tlog-witness: at most 63 consistency proof lines */
/* Largest add-checkpoint body: "old <u64>\n", 63 proof lines, "\n", a note. */
#define LEDGER_ADD_CHECKPOINT_MAX (24 + LEDGER_WITNESS_MAX_PROOF * 45 + 1 + LEDGER_NOTE_MAX)

/* cosignature/v1 key id: SHA-256(name || 0x0A || 0x04 || pub)[:4]. */
void ledger_cosig_key_id(uint8_t out[4], const char *name, const uint8_t pub[32]);
/* A cosigner's vkey "<name>+<hex key id>+<base64(0x04 || pub)>". Appends to out. */
int ledger_cosig_vkey_format(struct ehr_buf *out, const char *name, const uint8_t pub[32]);
/* Parse such a vkey (signature type 0x04 only; EHR_ERR_PARSE otherwise). */
int ledger_cosig_vkey_parse(const char *vkey, size_t len, char *name, size_t name_cap, uint8_t pub[32]);
/*
 * Cosign a checkpoint: append the signature line
 * "— <name> <base64(key id || timestamp BE u64 || Ed25519 sig)>\n", the
 * signature over "cosignature/v1\ntime <timestamp>\n" || text, where text is
 * the note text (the checkpoint body through its final newline, without any
 * signature lines). timestamp is POSIX seconds, 1..2^63-1.
 */
int ledger_cosig_sign(struct ehr_buf *out, EVP_PKEY *key, const char *name, uint64_t timestamp,
                      const char *text, size_t text_len);
/*
 * Verify witness (name, pub)'s cosignature/v1 on a signed note: the first
 * signature line by that name with its cosignature key id must verify;
 * *timestamp (may be NULL) gets its time. EHR_ERR_PARSE for a malformed
 * note, EHR_ERR_NOT_FOUND when the witness has no line, EHR_ERR_TAMPER when
 * its line does not verify (or its time exceeds 2^63-1).
 */
int ledger_cosig_verify(const char *note, size_t len, const char *name, const uint8_t pub[32],
                        uint64_t *timestamp);

/* A trusted key: a witness (cosignature/v1) or a log (Ed25519 note key). */
struct ledger_note_key {
	const char *name;
	uint8_t pub[32];
};

struct ledger_quorum_report {
	uint64_t size; /* the checkpoint's tree size and root (when it parsed) */
	uint8_t root[LEDGER_HASH_LEN];
	size_t valid;     /* distinct witness keys whose cosignature verified */
	int first_bad;    /* index of the first witness missing or bad; -1 if none */
	int first_bad_rc; /* its error: EHR_ERR_NOT_FOUND (missing) or EHR_ERR_TAMPER (bad) */
	char reason[256]; /* plain text naming the witness and what was wrong */
};

/*
 * Quorum check of a cosigned checkpoint: 0 when the log's signature (key
 * name = origin, ledger_checkpoint_verify) is valid and at least k of the
 * witnesses w[0..n) have a valid cosignature/v1. Witnesses sharing a public
 * key count once (the Ed25519 cosigned message does not commit to the name).
 * The report (may be NULL) is filled in either case. EHR_ERR_PARSE for a
 * malformed note, EHR_ERR_TAMPER for a bad log signature or too few
 * cosignatures, EHR_ERR_INVAL for k > n.
 */
int ledger_note_quorum(const char *note, size_t len, const char *origin, const uint8_t log_pub[32],
                       const struct ledger_note_key *w, size_t n, size_t k, struct ledger_quorum_report *rep);

/*
 * Verify a note against a set of trusted Ed25519 note keys (C2SP
 * tlog-witness): 0 when at least one key has a valid signature line and no
 * line matching a trusted key's name and id fails. EHR_ERR_PARSE for a
 * malformed note, EHR_ERR_TAMPER otherwise; *text_len as ledger_note_verify.
 */
int ledger_note_verify_any(const char *note, size_t len, const struct ledger_note_key *keys, size_t n,
                           size_t *text_len);

/* The unverified fields of a checkpoint note: origin (first line), size and
 * root (strict, as ledger_checkpoint_verify), and the text length. */
int ledger_checkpoint_parse(const char *note, size_t len, char *origin, size_t origin_cap, uint64_t *size,
                            uint8_t root[LEDGER_HASH_LEN], size_t *text_len);

/* A tlog-witness add-checkpoint request, parsed. note points into the body. */
struct ledger_add_checkpoint {
	uint64_t old_size;
	size_t proof_len;
	uint8_t proof[LEDGER_WITNESS_MAX_PROOF][LEDGER_HASH_LEN];
	const char *note;
	size_t note_len;
};

/* Client side: "old <N>\n", one base64 line per proof hash (n <= 63), an
 * empty line, then the checkpoint note. Appends to out. */
int ledger_add_checkpoint_format(struct ehr_buf *out, uint64_t old_size,
                                 const uint8_t (*proof)[LEDGER_HASH_LEN], size_t n, const char *note,
                                 size_t note_len);
/* Witness side, strict: every line ends in '\n'; "old" then one space and a
 * decimal without leading zeros (<= 2^63-1); each proof line exactly one
 * canonical base64 32-byte hash; at most 63 of them; the empty line; a
 * non-empty note (its own syntax is checked later). At most
 * LEDGER_ADD_CHECKPOINT_MAX bytes. EHR_ERR_PARSE / EHR_ERR_TOO_LARGE. */
int ledger_add_checkpoint_parse(struct ledger_add_checkpoint *req, const char *body, size_t len);

/* ---------------------------------------------------- reading the ledger */

/* Called once per entry, in seq order; a negative return stops the walk and
 * is returned. `raw` is the entry's canonical encoding. */
typedef int (*ledger_entry_fn)(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len);

struct ledger_query {
	uint64_t from_seq; /* first seq (inclusive) */
	uint64_t to_seq;   /* last seq, exclusive; 0 = no bound */
	const char *type;  /* NULL = any */
	const char *actor;
	const char *subject;
	int64_t since_ms; /* inclusive; 0 = no bound */
	int64_t until_ms; /* exclusive; 0 = no bound */
	unsigned limit;   /* 1..10000; 0 means 100 */
};

/* Entries from `from` on, at most `limit` (1..10000). */
int ledger_get_entries(struct ledger *l, uint64_t from, unsigned limit, ledger_entry_fn cb, void *ctx);
int ledger_query(struct ledger *l, const struct ledger_query *q, ledger_entry_fn cb, void *ctx);
/* As ledger_get_entries, on a connection the caller holds (a PGconn*, e.g.
 * a feed's own session, so reading never takes a slot of the request pool). */
int ledger_read_entries_on(void *conn, uint64_t from, unsigned limit, ledger_entry_fn cb, void *ctx);
/* The entry at seq (cb is not called when there is none yet), from the
 * ledger's cache of single entries or else on conn (a PGconn* the caller
 * holds, e.g. in a transaction, so no second pooled connection is taken:
 * with every handler holding one and waiting for another, the pool would
 * run dry). ledger_get_entries(l, seq, 1, ..) uses the same cache. */
int ledger_get_entry_on(struct ledger *l, void *conn, uint64_t seq, ledger_entry_fn cb, void *ctx);

/* Latest block (the signed tree head); EHR_ERR_NOT_FOUND if the ledger is empty. */
int ledger_head(struct ledger *l, struct ledger_block *b);
/* The block that ended at tree size `size`; EHR_ERR_NOT_FOUND if none did. */
int ledger_block_at_size(struct ledger *l, uint64_t size, struct ledger_block *b);
int ledger_block_at_height(struct ledger *l, uint64_t height, struct ledger_block *b);
/* The C2SP checkpoint note at a tree size a block ended at (0 = latest). */
int ledger_checkpoint(struct ledger *l, uint64_t size, struct ehr_buf *note);
/*
 * The published checkpoint: the newest tree head that clients are handed
 * (tiles, receipts, proofs). Without witnesses it is the latest signed
 * checkpoint; with witnesses it is the newest one that reached quorum and
 * carries its cosignature lines (ledger_config.witnessed: the head of
 * table ledger_published, which the publisher of publish/publish.h moves
 * forward). *size is its tree size.
 * EHR_ERR_NOT_FOUND when nothing is published yet.
 */
int ledger_published(struct ledger *l, struct ehr_buf *note, uint64_t *size);
/* RFC 9162 PATH(index, D[size]) and PROOF(size1, D[size2]) from the store,
 * with O(log n) lookups (docs/LEDGER.md §4). out has LEDGER_MAX_PROOF slots. */
int ledger_prove_inclusion(struct ledger *l, uint64_t index, uint64_t size, uint8_t (*out)[LEDGER_HASH_LEN],
                           size_t *out_len);
int ledger_prove_consistency(struct ledger *l, uint64_t size1, uint64_t size2,
                             uint8_t (*out)[LEDGER_HASH_LEN], size_t *out_len);
/* JSON shapes of docs/LEDGER.md §7: {"tree_size","leaf_index","hashes":[b64...]}
 * and {"tree_size","first_size"|..,"hashes"}. New references. */
json_t *ledger_proof_json(uint64_t tree_size, uint64_t index_or_size1, bool consistency,
                          const uint8_t (*hashes)[LEDGER_HASH_LEN], size_t n);
/* docs/LEDGER.md §7: a block as JSON (all hashes and signatures base64) and
 * an entry as JSON (fields, parsed payload, base64 "entry" bytes and
 * "leaf_hash", so a client can recompute the leaf). New references or NULL. */
json_t *ledger_block_json(const struct ledger_block *b);
json_t *ledger_entry_json(const struct ledger_entry *e, const uint8_t *raw, size_t len);
/* Parse that JSON (client side). consistency selects "first_size" over
 * "leaf_index". Unknown members are ignored. hashes has LEDGER_MAX_PROOF
 * slots. EHR_ERR_PARSE on anything malformed. */
int ledger_proof_from_json(const void *text, size_t len, bool consistency, uint64_t *tree_size,
                           uint64_t *index_or_size1, uint8_t (*hashes)[LEDGER_HASH_LEN], size_t *n);
/* The ledger's public key and origin. */
void ledger_public_key(struct ledger *l, uint8_t out[32]);
const char *ledger_origin(struct ledger *l);

/* ------------------------------------------- C2SP tlog-tiles (docs/LEDGER.md §10) */

#define LEDGER_TILE_WIDTH 256
/* An entry bundle prefixes each entry with a big-endian uint16 length, so
 * ledger_entry_encode refuses entries longer than this. */
#define LEDGER_MAX_BUNDLE_ENTRY 65535

/* A tile resource: hash tile (level, index) or entry bundle (entries),
 * width LEDGER_TILE_WIDTH for a full tile, 1..255 for a partial one. */
struct ledger_tile {
	bool entries;
	unsigned level; /* 0..63; 0 for entry bundles */
	uint64_t index;
	unsigned width;
};

/* Strict parse of the path after "<prefix>/tile/": "<L>/<N>[.p/<W>]" or
 * "entries/<N>[.p/<W>]", <N> in x-prefixed 3-digit groups, no leading zeros,
 * one spelling per tile (any level 0..63 and index: whether the tile
 * exists is ledger_tile_covered's question). EHR_ERR_PARSE. */
int ledger_tile_path_parse(struct ledger_tile *t, const char *path, size_t len);
/* The same path, canonical. Appends to out. */
int ledger_tile_path_format(struct ehr_buf *out, const struct ledger_tile *t);
/* Whether every hash (entry) of t lies in the tree of `size` entries: the
 * full tiles below it and every partial tile of any size up to it. */
bool ledger_tile_covered(const struct ledger_tile *t, uint64_t size);
/* The tile's bytes from the store: width * 32 hash bytes, or the bundle
 * (uint16 length || entry bytes, for each entry). The caller checks
 * ledger_tile_covered against the published size first. Appends to out. */
int ledger_tile_read(struct ledger *l, const struct ledger_tile *t, struct ehr_buf *out);

/* --------------------------------- receipts: C2SP tlog-proof (docs/LEDGER.md §11) */

#define LEDGER_TLOG_PROOF_MAX (96 * 1024) /* extra (base64 entry) + 64 hashes + note */

/* A parsed tlog-proof; note points into the text it was parsed from. */
struct ledger_tlog_proof {
	bool has_extra;
	uint64_t index;
	size_t path_len;
	uint8_t path[LEDGER_MAX_PROOF][LEDGER_HASH_LEN];
	const char *note;
	size_t note_len;
};

/* "c2sp.org/tlog-proof@v1\n[extra <base64>\n]index <i>\n<hash lines>\n<note>"
 * (extra_len 0: no extra line). Appends to out. */
int ledger_tlog_proof_format(struct ehr_buf *out, const void *extra, size_t extra_len, uint64_t index,
                             const uint8_t (*path)[LEDGER_HASH_LEN], size_t n, const char *note,
                             size_t note_len);
/* Strict parse: every line ends in '\n', the index has no leading zeros,
 * each hash line is canonical base64 of 32 bytes (at most 64), the note
 * follows the empty line (its own syntax is the verifier's). The decoded
 * extra data goes to extra. EHR_ERR_PARSE / EHR_ERR_TOO_LARGE. */
int ledger_tlog_proof_parse(struct ledger_tlog_proof *p, struct ehr_buf *extra, const char *text, size_t len);

struct ledger_tlog_proof_report {
	uint64_t index;
	struct ledger_quorum_report quorum; /* the checkpoint: size, root, witnesses */
	struct ledger_entry entry;          /* the entry of the extra line (payload points into extra) */
};
/*
 * Verify an ehrgate receipt offline: parse it; the checkpoint must carry
 * the log's signature (key name = origin, log_pub) and k of the witnesses
 * w[0..n) (ledger_note_quorum); the extra line must be a ledger entry
 * (LEDGER.md §1) whose seq is the index; SHA-256(0x00 || entry) must be
 * proven included at that index in the checkpoint's tree. 0, or
 * EHR_ERR_PARSE (malformed), EHR_ERR_TAMPER (a check failed; the thread's
 * message says which), EHR_ERR_INVAL (k > n). rep is filled as far as it got.
 */
int ledger_tlog_proof_verify(const char *text, size_t len, const char *origin, const uint8_t log_pub[32],
                             const struct ledger_note_key *w, size_t n, size_t k, struct ehr_buf *extra,
                             struct ledger_tlog_proof_report *rep);
/*
 * Server side: the receipt of entry `index` (whose canonical bytes are
 * entry[0..entry_len)) against the published checkpoint, waiting up to
 * wait_ms for one that covers it. 0 with *pending = false and the receipt
 * appended to out; 0 with *pending = true when none covers it yet.
 */
int ledger_receipt_build(struct ledger *l, uint64_t index, const uint8_t *entry, size_t entry_len,
                         unsigned wait_ms, struct ehr_buf *out, bool *pending);

/* ----------------------------------------------------------- verification */

enum ledger_bad_kind { LEDGER_BAD_NONE = 0, LEDGER_BAD_ENTRY, LEDGER_BAD_BLOCK, LEDGER_BAD_CHECKPOINT };

struct ledger_verify_report {
	uint64_t entries;   /* entries checked */
	uint64_t blocks;    /* blocks checked */
	uint64_t tree_size; /* size of the verified tree */
	uint8_t root[LEDGER_HASH_LEN];
	enum ledger_bad_kind bad; /* LEDGER_BAD_NONE when everything matched */
	uint64_t bad_seq;         /* LEDGER_BAD_ENTRY: the first entry that does not match */
	uint64_t bad_height;      /* LEDGER_BAD_BLOCK/CHECKPOINT: the first such block */
	char reason[256];
};

/*
 * Recompute the ledger from the database from seq `from` on (docs/LEDGER.md
 * §8), streaming the tables: every entry against its columns, every leaf,
 * stored subtree node, block root, block hash and hash-chain link, and the
 * last block's block and checkpoint signatures (which, through the chain,
 * vouch for every earlier header); with all_signatures, both signatures of
 * every block. `conn` is a PGconn*. With a trusted checkpoint note the
 * database must also contain that tree head (rollback/fork check). Ranges
 * of a long ledger are checked in parallel (jobs; each range after the
 * first on its own connection with conn's parameters, all in one
 * snapshot). Returns 0 when all match, EHR_ERR_TAMPER (report filled: the
 * first bad position) when not, or another error if the database could
 * not be read.
 */
struct ledger_verify_opts {
	uint64_t from;            /* start at the block boundary at or below this seq */
	const char *trusted_note; /* a checkpoint note kept by an auditor, or NULL */
	size_t trusted_len;
	bool all_signatures; /* verify both Ed25519 signatures of every block */
	unsigned jobs;       /* ranges at once; 0 = one per CPU (at most 4) for a long ledger */
};
int ledger_verify_db_opts(void *conn, const uint8_t pub[32], const struct ledger_verify_opts *o,
                          struct ledger_verify_report *rep);
/* The same with the defaults (last block's signatures, automatic jobs). */
int ledger_verify_db(void *conn, const uint8_t pub[32], uint64_t from, const char *trusted_note,
                     size_t trusted_len, struct ledger_verify_report *rep);

#endif
