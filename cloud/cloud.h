/*
 * cloud.h - encrypted EHR storage: an object-store interface with a
 * filesystem backend (the embedded default) and an S3 backend (libcurl,
 * SigV4 computed here), plus envelope encryption (per-record data keys,
 * AES-256-GCM STREAM segments, data keys wrapped by a key-encryption key).
 *
 * docs/STORAGE.md is the byte-level contract of a stored object and of a
 * wrapped data key.
 *
 * Streams: readers and writers are callbacks, so a record of any size goes
 * through in constant memory (one S3 part, one segment).
 */
#ifndef EHR_CLOUD_H
#define EHR_CLOUD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* ------------------------------------------------------------- streams */

/* Fill buf with up to cap bytes; *got = 0 means end of stream. */
typedef int (*cloud_read_fn)(void *ctx, uint8_t *buf, size_t cap, size_t *got);
/* Consume n bytes. A negative return stops the transfer with that error. */
typedef int (*cloud_write_fn)(void *ctx, const uint8_t *p, size_t n);

/* A reader over a memory range, for small bodies and tests. */
struct cloud_mem_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
};
int cloud_mem_read(void *ctx, uint8_t *buf, size_t cap, size_t *got);
/* A writer appending to an ehr_buf (bounded by its max). */
int cloud_buf_write(void *ctx, const uint8_t *p, size_t n);

/* -------------------------------------------------------- object store */

struct obj_store;

enum obj_backend { OBJ_BACKEND_FS = 0, OBJ_BACKEND_S3 = 1 };

#define OBJ_S3_MIN_PART (5u * 1024 * 1024)
#define OBJ_S3_DEFAULT_PART (8u * 1024 * 1024)
#define OBJ_S3_SINGLE_PUT_MAX 5368709120ull /* 5 GiB: S3's limit for one PUT */

struct obj_store_config {
	enum obj_backend backend;
	/* filesystem */
	const char *fs_path; /* root directory, created if missing */
	/* S3 */
	const char *s3_endpoint; /* "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:9000" */
	const char *s3_bucket;
	const char *s3_region; /* "us-east-1" if NULL */
	const char *s3_access_key;
	const char *s3_secret_key;
	bool s3_virtual_host;   /* bucket.host/key instead of host/bucket/key */
	const char *s3_ca_file; /* extra CA bundle for https; NULL = system store */
	const char *s3_resolve; /* optional "host:port:addr" pin, as curl --resolve */
	size_t s3_part_size;    /* multipart part size; 0 = 8 MiB; at least 5 MiB */
	/* a put of known size up to this many bytes is one streaming PUT
	 * (UNSIGNED-PAYLOAD); 0 = never (multipart past one part, as before).
	 * [store] s3_single_put_max defaults to OBJ_S3_SINGLE_PUT_MAX */
	uint64_t s3_single_put_max;
	unsigned s3_max_attempts;       /* per request, 0 = 4 */
	unsigned s3_connect_timeout_ms; /* 0 = 3000 */
	unsigned s3_timeout_ms;         /* whole request, 0 = 300000 */
	/* both: a prefix put before every key ("" or e.g. "prod/"), so several
	 * deployments can share a bucket; listing strips it */
	const char *key_prefix;
};

/* Sizes and the SHA-256 of the bytes actually stored or read. */
struct obj_info {
	uint64_t size;
	uint8_t sha256[32];
};

int obj_store_open(struct obj_store **out, const struct obj_store_config *cfg);
void obj_store_free(struct obj_store *s);
enum obj_backend obj_store_backend(const struct obj_store *s);

/*
 * Keys are 1..512 bytes of [A-Za-z0-9._/-], without a leading '/', "//"
 * or a "." / ".." segment. Every call below is thread-safe.
 *
 * put: stores the stream under key atomically (the object appears whole
 * or not at all). S3: a single PUT below the part size, else a multipart
 * upload that is aborted on any failure. Failures of the store itself are
 * EHR_ERR_UNAVAILABLE; a reader's error is returned as is.
 */
int obj_store_put(struct obj_store *s, const char *key, cloud_read_fn rd, void *rctx, struct obj_info *info);
/*
 * put_sized: the same, with size >= 0 promising that the reader yields
 * exactly size bytes (< 0: unknown, as obj_store_put). A reader that ends
 * early or yields more is refused with EHR_ERR_INVAL before the object is
 * complete, and nothing stays stored. S3: a known size up to
 * s3_single_put_max goes up as ONE streaming PUT (payload not hashed before
 * sending: x-amz-content-sha256 UNSIGNED-PAYLOAD; the SHA-256 in info, which
 * the ledger keeps and checks on every read, is the integrity check); it is
 * retried only while no byte of the body has been read, and on a failure
 * after it started the key is deleted (best effort). Otherwise multipart.
 */
int obj_store_put_sized(struct obj_store *s, const char *key, cloud_read_fn rd, void *rctx, int64_t size,
                        struct obj_info *info);
/* get: streams the object to wr. EHR_ERR_NOT_FOUND if absent. */
int obj_store_get(struct obj_store *s, const char *key, cloud_write_fn wr, void *wctx, struct obj_info *info);
/* head: size of the object; EHR_ERR_NOT_FOUND if absent. */
int obj_store_head(struct obj_store *s, const char *key, uint64_t *size);
/* delete: idempotent (absent is success). */
int obj_store_delete(struct obj_store *s, const char *key);
/* list: every key starting with prefix, in lexicographic order for S3. A
 * negative return from fn stops the listing and is returned. */
typedef int (*obj_list_fn)(void *ctx, const char *key, uint64_t size);
int obj_store_list(struct obj_store *s, const char *prefix, obj_list_fn fn, void *ctx);
/* ping: 0 if the store answers (S3: HEAD bucket; fs: the root is writable). */
int obj_store_ping(struct obj_store *s);

/* ------------------------------------------------- key-encryption keys */

#define CLOUD_KEY_LEN 32
#define CLOUD_KID_MAX 64     /* [A-Za-z0-9_-]{1,63} */
#define CLOUD_RID_LEN 16     /* record id: 128 random bits */
#define CLOUD_RID_HEX 33     /* 32 hex digits + NUL */
#define CLOUD_WRAPPED_LEN 61 /* version(1) || nonce(12) || ct(32) || tag(16) */

struct cloud_kek;

/* Load every <kid>.key (32 bytes, mode 0600) in dir and the kid named by
 * dir/current. Keys stay in memory until cloud_kek_free (which wipes them). */
int cloud_kek_load(struct cloud_kek **out, const char *dir);
void cloud_kek_free(struct cloud_kek *k);
const char *cloud_kek_current(const struct cloud_kek *k);
/* true if kid is loaded. */
bool cloud_kek_has(const struct cloud_kek *k, const char *kid);
/* Create dir/<newkid>.key from 32 random bytes (exclusive, 0600) without
 * touching dir/current. newkid is "k" + UTC time + 4 random hex digits. */
int cloud_kek_generate(const char *dir, char kid_out[CLOUD_KID_MAX]);
/* Point dir/current at kid (atomic replace). */
int cloud_kek_set_current(const char *dir, const char *kid);

/* New random data key. */
int cloud_dek_new(uint8_t dek[CLOUD_KEY_LEN]);
/* AES-256-GCM key wrap under KEK `kid` (NULL = current), AAD binding the
 * kid and the record id, so a wrapped key cannot be moved to another
 * record or relabelled. *kid_used receives the kid (points into k). */
int cloud_dek_wrap(const struct cloud_kek *k, const char *kid, const uint8_t rid[CLOUD_RID_LEN],
                   const uint8_t dek[CLOUD_KEY_LEN], uint8_t out[CLOUD_WRAPPED_LEN], const char **kid_used);
/* EHR_ERR_NOT_FOUND for an unknown kid, EHR_ERR_TAMPER for a bad tag. */
int cloud_dek_unwrap(const struct cloud_kek *k, const char *kid, const uint8_t rid[CLOUD_RID_LEN],
                     const uint8_t wrapped[CLOUD_WRAPPED_LEN], uint8_t dek[CLOUD_KEY_LEN]);

/* ------------------------------------------- STREAM segment encryption */

#define CLOUD_SEG_DEFAULT (64u * 1024)
#define CLOUD_SEG_MIN 1024u
#define CLOUD_SEG_MAX (1024u * 1024)
#define CLOUD_HDR_LEN 16 /* see docs/STORAGE.md */
#define CLOUD_TAG_LEN 16

/* Ciphertext size of a plaintext of n bytes with segment size seg. */
int cloud_ciphertext_size(uint64_t *out, uint64_t n, uint32_t seg);
/* The inverse; EHR_ERR_INVAL if ct is not a possible ciphertext size. */
int cloud_plaintext_size(uint64_t *out, uint64_t ct, uint32_t seg);

/*
 * Push-style encryptor/decryptor. update() may call out() zero or more
 * times; final() flushes the last (final-flagged) segment. The decryptor
 * only ever passes on plaintext whose GCM tag has verified; final()
 * returns EHR_ERR_TAMPER for a truncated stream. Both wipe their key and
 * buffers when freed.
 */
struct cloud_seal;
int cloud_seal_new(struct cloud_seal **out, const uint8_t dek[CLOUD_KEY_LEN],
                   const uint8_t rid[CLOUD_RID_LEN], uint32_t seg_size);
int cloud_seal_update(struct cloud_seal *s, const uint8_t *p, size_t n, cloud_write_fn out, void *octx);
int cloud_seal_final(struct cloud_seal *s, cloud_write_fn out, void *octx);
/* Append every segment's 16-byte GCM tag to tags, in order, as segments
 * are sealed (the list the ledger commits to, docs/STORAGE.md). */
void cloud_seal_keep_tags(struct cloud_seal *s, struct ehr_buf *tags);
void cloud_seal_free(struct cloud_seal *s);

struct cloud_unseal;
int cloud_unseal_new(struct cloud_unseal **out, const uint8_t dek[CLOUD_KEY_LEN],
                     const uint8_t rid[CLOUD_RID_LEN]);
int cloud_unseal_update(struct cloud_unseal *u, const uint8_t *p, size_t n, cloud_write_fn out, void *octx);
int cloud_unseal_final(struct cloud_unseal *u, cloud_write_fn out, void *octx);
/* Segment i must carry tags[16 i .. 16 i + 16) and the final segment must
 * be the n-th: checked before each segment is decrypted (EHR_ERR_TAMPER
 * otherwise). tags must outlive u. */
void cloud_unseal_expect_tags(struct cloud_unseal *u, const uint8_t *tags, size_t n);
void cloud_unseal_free(struct cloud_unseal *u);

/*
 * KEKs held by a store for the gateway: loaded from dir at attach, and
 * reloaded when dir/current changes (checked at most once a second) or when
 * force is set (a row names a kid not loaded: a rotation happened). A set
 * returned stays valid until obj_store_free, even after a reload.
 */
int obj_store_attach_keks(struct obj_store *s, const char *dir);
int obj_store_keks(struct obj_store *s, bool force, const struct cloud_kek **out);

/* ------------------------------------------------------------- records */

/* What a stored record needs kept beside it (the metadata row). */
struct cloud_record_meta {
	uint8_t rid[CLOUD_RID_LEN];
	char kid[CLOUD_KID_MAX];
	uint8_t wrapped[CLOUD_WRAPPED_LEN];
	uint64_t plain_size;
	uint64_t ct_size;
	uint8_t ct_sha256[32];
	/* optional, caller-owned: cloud_record_put appends every segment's
	 * tag here; cloud_record_stream reads the list from here */
	struct ehr_buf *seg_tags;
};

/* SHA-256 over a tag list: what the ehr.store entry commits to. */
int cloud_tags_sha256(uint8_t out[32], const struct ehr_buf *tags);

/* New random record id, and its 32-hex-digit form. */
int cloud_rid_new(uint8_t rid[CLOUD_RID_LEN]);
void cloud_rid_hex(char out[CLOUD_RID_HEX], const uint8_t rid[CLOUD_RID_LEN]);
int cloud_rid_parse(uint8_t rid[CLOUD_RID_LEN], const char *hex);
/* Object key of a record: "ehr/<first 2 hex>/<rid hex>". Carries nothing
 * but the random record id. */
int cloud_record_key(char *out, size_t cap, const uint8_t rid[CLOUD_RID_LEN]);
/* Parse a record object key back into its rid (for fsck). */
int cloud_record_key_parse(uint8_t rid[CLOUD_RID_LEN], const char *key);
#define CLOUD_RECORD_PREFIX "ehr/"

/*
 * Draw a fresh data key for meta->rid and wrap it under the current KEK
 * (fills meta->kid and meta->wrapped), so the wrapped key can be saved
 * before any object exists.
 */
int cloud_record_prepare(const struct cloud_kek *kek, struct cloud_record_meta *meta);
/*
 * Encrypt the plaintext stream and store it at cloud_record_key(rid).
 * meta->rid must be set by the caller (fresh random). If meta->kid is set
 * (cloud_record_prepare) that wrapped key is used, else a fresh one is
 * drawn. Fills the sizes and the ciphertext hash. The data key never
 * leaves this call unwrapped. max_plain bounds the plaintext (0 = no bound): past it the
 * upload is abandoned with EHR_ERR_TOO_LARGE and nothing is stored.
 */
int cloud_record_put(struct obj_store *st, const struct cloud_kek *kek, struct cloud_record_meta *meta,
                     cloud_read_fn rd, void *rctx, uint64_t max_plain);
/* The same when the plaintext size is known (plain_size >= 0, e.g. an HTTP
 * Content-Length; -1 = unknown): the exact ciphertext size is promised to
 * obj_store_put_sized (one streaming PUT on S3). A reader yielding another
 * number of bytes fails with EHR_ERR_INVAL and nothing is stored; a
 * plain_size above max_plain is EHR_ERR_TOO_LARGE at once. */
int cloud_record_put_sized(struct obj_store *st, const struct cloud_kek *kek, struct cloud_record_meta *meta,
                           cloud_read_fn rd, void *rctx, uint64_t max_plain, int64_t plain_size);
/*
 * Fetch, verify and decrypt a record. The ciphertext is spooled to an
 * unlinked temporary file while hashed; its size and SHA-256 must equal
 * meta's (from the ledger) before a single byte is decrypted, and every
 * segment's tag is checked before its plaintext goes to wr. Any mismatch
 * is EHR_ERR_TAMPER.
 */
int cloud_record_get(struct obj_store *st, const struct cloud_kek *kek, const struct cloud_record_meta *meta,
                     cloud_write_fn wr, void *wctx);

/*
 * The same in steps, for a reply that streams: cloud_record_open spools the
 * object, checks its size and SHA-256 against meta, unwraps the data key and
 * then verifies EVERY segment's tag (plaintext discarded), so by the time it
 * returns the whole record is known good. cloud_record_read then decrypts
 * again, whole segments of at most about max_plain bytes per call, each tag
 * re-verified before its plaintext goes to wr; *done is set after the final
 * segment. Memory is constant. cloud_record_close wipes and frees.
 */
struct cloud_record_reader;
/* What cloud_record_stream verifies before releasing anything. */
#define CLOUD_STREAM_HOLD (1024u * 1024)
/*
 * Fetch, verify and decrypt a record as it arrives, for a record whose
 * segment tags are known (meta->seg_tags, already checked against the
 * ledger): each segment must carry the tag listed for its index and pass
 * GCM before its plaintext goes to wr, and the final one must be the
 * last listed; the object's size and SHA-256 are checked against meta at
 * the end too. The first CLOUD_STREAM_HOLD bytes of plaintext are held
 * back, so a record up to that size is verified whole before any of it
 * leaves (as cloud_record_get); past it, segments go out as they verify.
 * before_first (may be NULL) runs once, just before the first plaintext
 * is handed on: a failure there ends the transfer with nothing released.
 * Memory: one segment plus the hold.
 * A failure after plaintext went out leaves wr's consumer short: the
 * caller must make that visible (an aborted reply).
 */
int cloud_record_stream(struct obj_store *st, const struct cloud_kek *kek,
                        const struct cloud_record_meta *meta, int (*before_first)(void *ctx), void *bctx,
                        cloud_write_fn wr, void *wctx, bool *released);
int cloud_record_open(struct cloud_record_reader **out, struct obj_store *st, const struct cloud_kek *kek,
                      const struct cloud_record_meta *meta);
int cloud_record_read(struct cloud_record_reader *rr, size_t max_plain, cloud_write_fn wr, void *wctx,
                      bool *done);
void cloud_record_close(struct cloud_record_reader *rr);

#endif
