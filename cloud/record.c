/*
 * record.c - one EHR record = one encrypted object. Put streams plaintext
 * through the STREAM encryptor into the store; get spools the ciphertext,
 * checks its size and SHA-256 against what the ledger recorded, and only
 * then decrypts, segment by segment, each tag verified before its
 * plaintext is handed on.
 */
#include "cloud/cloud_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#define REC_CHUNK (64 * 1024)
/* An object of at most this many ciphertext bytes is spooled in memory (no
 * more than the read chunk a file spool needs), larger ones in a file. */
#define REC_SPOOL_MEM_MAX REC_CHUNK

int cloud_rid_new(uint8_t rid[CLOUD_RID_LEN])
{
	return ehr_random(rid, CLOUD_RID_LEN);
}

void cloud_rid_hex(char out[CLOUD_RID_HEX], const uint8_t rid[CLOUD_RID_LEN])
{
	(void)ehr_hex_encode_fixed(out, CLOUD_RID_HEX, rid, CLOUD_RID_LEN); /* fits by construction */
}

int cloud_rid_parse(uint8_t rid[CLOUD_RID_LEN], const char *hex)
{
	if (hex == NULL || strlen(hex) != 2 * CLOUD_RID_LEN)
		return ehr_error_set(EHR_ERR_INVAL, "record id must be 32 hex digits");
	for (const char *p = hex; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return ehr_error_set(EHR_ERR_INVAL, "record id must be 32 lower-case hex digits");
	return ehr_hex_decode(rid, CLOUD_RID_LEN, hex, 2 * CLOUD_RID_LEN);
}

int cloud_record_key(char *out, size_t cap, const uint8_t rid[CLOUD_RID_LEN])
{
	char hex[CLOUD_RID_HEX];

	cloud_rid_hex(hex, rid);
	return ehr_fmt(out, cap, CLOUD_RECORD_PREFIX "%.2s/%s", hex, hex);
}

int cloud_record_key_parse(uint8_t rid[CLOUD_RID_LEN], const char *key)
{
	size_t pl = strlen(CLOUD_RECORD_PREFIX);
	const char *hex;

	if (strncmp(key, CLOUD_RECORD_PREFIX, pl) != 0 || strlen(key) != pl + 3 + 2 * CLOUD_RID_LEN ||
	    key[pl + 2] != '/')
		return ehr_error_set(EHR_ERR_INVAL, "not a record key");
	hex = key + pl + 3;
	if (memcmp(key + pl, hex, 2) != 0) /* not secret */
		return ehr_error_set(EHR_ERR_INVAL, "not a record key");
	return cloud_rid_parse(rid, hex);
}

/* ------------------------------------------------------------------ put */

/* Pull-side adapter: the store pulls ciphertext; we pull plaintext from the
 * caller and push it through the encryptor into `pending`. */
struct put_pipe {
	cloud_read_fn rd;
	void *rctx;
	struct cloud_seal *seal;
	uint8_t *in; /* one segment of plaintext */
	struct ehr_buf pending;
	size_t pend_off;
	uint64_t plain;
	uint64_t max_plain;
	bool done;
};

static int pipe_sink(void *ctx, const uint8_t *p, size_t n)
{
	struct put_pipe *pp = ctx;
	return ehr_buf_append(&pp->pending, p, n);
}

static int pipe_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct put_pipe *pp = ctx;

	while (pp->pend_off == pp->pending.len && !pp->done) {
		size_t n = 0;
		ehr_buf_reset(&pp->pending);
		pp->pend_off = 0;
		GUARD(pp->rd(pp->rctx, pp->in, CLOUD_SEG_DEFAULT, &n));
		if (n == 0) {
			GUARD(cloud_seal_final(pp->seal, pipe_sink, pp));
			pp->done = true;
			break;
		}
		pp->plain += n;
		if (pp->max_plain && pp->plain > pp->max_plain)
			return ehr_error_set(EHR_ERR_TOO_LARGE, "record larger than %llu bytes",
			                     (unsigned long long)pp->max_plain);
		GUARD(cloud_seal_update(pp->seal, pp->in, n, pipe_sink, pp));
		OPENSSL_cleanse(pp->in, n);
	}
	*got = pp->pending.len - pp->pend_off;
	if (*got > cap)
		*got = cap;
	memcpy(buf, pp->pending.data + pp->pend_off, *got);
	pp->pend_off += *got;
	return 0;
}

int cloud_record_prepare(const struct cloud_kek *kek, struct cloud_record_meta *meta)
{
	uint8_t dek[CLOUD_KEY_LEN];
	const char *kid = NULL;
	int err = 0;

	GUARD_GOTO(cloud_dek_new(dek));
	GUARD_GOTO(cloud_dek_wrap(kek, NULL, meta->rid, dek, meta->wrapped, &kid));
	GUARD_GOTO(ehr_str_copy(meta->kid, sizeof(meta->kid), kid));
out:
	OPENSSL_cleanse(dek, sizeof(dek));
	return err;
}

int cloud_record_put(struct obj_store *st, const struct cloud_kek *kek, struct cloud_record_meta *meta,
                     cloud_read_fn rd, void *rctx, uint64_t max_plain)
{
	return cloud_record_put_sized(st, kek, meta, rd, rctx, max_plain, -1);
}

int cloud_record_put_sized(struct obj_store *st, const struct cloud_kek *kek, struct cloud_record_meta *meta,
                           cloud_read_fn rd, void *rctx, uint64_t max_plain, int64_t plain_size)
{
	uint8_t dek[CLOUD_KEY_LEN];
	struct put_pipe pp = { .rd = rd, .rctx = rctx, .max_plain = max_plain };
	struct obj_info info;
	const char *kid = NULL;
	char key[128];
	int64_t ct_size = -1;
	int err = 0;

	ehr_buf_init(&pp.pending, 2 * (CLOUD_SEG_DEFAULT + CLOUD_TAG_LEN) + CLOUD_HDR_LEN);
	if (plain_size >= 0) {
		uint64_t ct = 0;
		if (max_plain && (uint64_t)plain_size > max_plain) {
			err = ehr_error_set(EHR_ERR_TOO_LARGE, "record larger than %llu bytes",
			                    (unsigned long long)max_plain);
			goto out;
		}
		GUARD_GOTO(cloud_ciphertext_size(&ct, (uint64_t)plain_size, CLOUD_SEG_DEFAULT));
		ENSURE_GOTO(ct <= (uint64_t)INT64_MAX, EHR_ERR_TOO_LARGE);
		ct_size = (int64_t)ct;
	}
	GUARD_GOTO(cloud_record_key(key, sizeof(key), meta->rid));
	if (meta->kid[0] == '\0') {
		GUARD_GOTO(cloud_dek_new(dek));
		GUARD_GOTO(cloud_dek_wrap(kek, NULL, meta->rid, dek, meta->wrapped, &kid));
		GUARD_GOTO(ehr_str_copy(meta->kid, sizeof(meta->kid), kid));
	} else {
		GUARD_GOTO(cloud_dek_unwrap(kek, meta->kid, meta->rid, meta->wrapped, dek));
	}
	GUARD_GOTO(cloud_seal_new(&pp.seal, dek, meta->rid, CLOUD_SEG_DEFAULT));
	if (meta->seg_tags != NULL) {
		ehr_buf_reset(meta->seg_tags);
		cloud_seal_keep_tags(pp.seal, meta->seg_tags);
	}
	pp.in = malloc(CLOUD_SEG_DEFAULT);
	ENSURE_GOTO(pp.in != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(obj_store_put_sized(st, key, pipe_read, &pp, ct_size, &info));
	meta->plain_size = pp.plain;
	meta->ct_size = info.size;
	memcpy(meta->ct_sha256, info.sha256, 32);
out:
	OPENSSL_cleanse(dek, sizeof(dek));
	cloud_seal_free(pp.seal);
	if (pp.in) {
		OPENSSL_cleanse(pp.in, CLOUD_SEG_DEFAULT);
		free(pp.in);
	}
	ehr_buf_free_secure(&pp.pending);
	return err;
}

/* ------------------------------------------------------------------ get */

struct spool {
	int fd;       /* the file spool, or -1 */
	uint8_t *mem; /* or the memory spool, limit bytes */
	uint64_t size;
	uint64_t limit;
};

static int spool_write(void *ctx, const uint8_t *p, size_t n)
{
	struct spool *sp = ctx;

	if (sp->size + n > sp->limit)
		return ehr_error_set(EHR_ERR_TAMPER, "stored object is larger than the ledger says");
	if (sp->mem != NULL) {
		memcpy(sp->mem + sp->size, p, n);
		sp->size += n;
		return 0;
	}
	while (n > 0) {
		ssize_t w = write(sp->fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return ehr_error_set_detail(EHR_ERR_IO, "spool write failed", "spool write: %s",
			                            strerror(errno));
		}
		p += w;
		n -= (size_t)w;
		sp->size += (uint64_t)w;
	}
	return 0;
}

static int spool_open(int *fd)
{
	const char *dir = getenv("TMPDIR");

	if (dir == NULL || dir[0] == '\0')
		dir = "/tmp";
	*fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (*fd < 0) {
		char path[4096];
		GUARD(ehr_fmt(path, sizeof(path), "%s/ehrgate-spool.XXXXXX", dir));
		*fd = mkostemp(path, O_CLOEXEC);
		if (*fd < 0)
			return ehr_error_set_detail(EHR_ERR_IO, "spool failed", "spool: %s", strerror(errno));
		unlink(path);
	}
	return 0;
}

struct cloud_record_reader {
	int fd;       /* the file spool, or -1 */
	uint8_t *mem; /* or the memory spool: mem_len bytes, read up to mem_off */
	size_t mem_len;
	size_t mem_off;
	uint8_t dek[CLOUD_KEY_LEN];
	uint8_t rid[CLOUD_RID_LEN];
	struct cloud_unseal *u;
	uint8_t *chunk;
	bool eof;
	bool done;
};

static int discard(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
	return 0;
}

void cloud_record_close(struct cloud_record_reader *rr)
{
	if (rr == NULL)
		return;
	OPENSSL_cleanse(rr->dek, sizeof(rr->dek));
	cloud_unseal_free(rr->u);
	free(rr->chunk);
	free(rr->mem);
	if (rr->fd >= 0)
		close(rr->fd);
	free(rr);
}

static int rewind_unseal(struct cloud_record_reader *rr)
{
	cloud_unseal_free(rr->u);
	rr->u = NULL;
	rr->eof = false;
	rr->mem_off = 0;
	if (rr->mem == NULL && lseek(rr->fd, 0, SEEK_SET) != 0)
		return ehr_error_set_detail(EHR_ERR_IO, "spool seek failed", "spool seek: %s",
		                            strerror(errno));
	return cloud_unseal_new(&rr->u, rr->dek, rr->rid);
}

/* Feed the spool through the decryptor until at least max bytes of
 * ciphertext went in (0 = all). */
static int pump(struct cloud_record_reader *rr, size_t max, cloud_write_fn wr, void *wctx)
{
	size_t fed = 0;

	while (!rr->eof && (max == 0 || fed < max)) {
		const uint8_t *p = rr->chunk;
		ssize_t n;
		if (rr->mem != NULL) {
			size_t left = rr->mem_len - rr->mem_off;
			n = (ssize_t)(left < REC_CHUNK ? left : REC_CHUNK);
			p = rr->mem + rr->mem_off;
			rr->mem_off += (size_t)n;
		} else {
			n = read(rr->fd, rr->chunk, REC_CHUNK);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return ehr_error_set_detail(EHR_ERR_IO, "spool read failed", "spool read: %s",
			                            strerror(errno));
		}
		if (n == 0) {
			rr->eof = true;
			GUARD(cloud_unseal_final(rr->u, wr, wctx));
			rr->done = true;
			break;
		}
		GUARD(cloud_unseal_update(rr->u, p, (size_t)n, wr, wctx));
		fed += (size_t)n;
	}
	return 0;
}

int cloud_record_open(struct cloud_record_reader **out, struct obj_store *st, const struct cloud_kek *kek,
                      const struct cloud_record_meta *meta)
{
	struct cloud_record_reader *rr;
	struct spool sp = { .fd = -1, .limit = meta->ct_size };
	struct obj_info info;
	char key[128];
	int err = 0;

	*out = NULL;
	rr = calloc(1, sizeof(*rr));
	ENSURE(rr != NULL, EHR_ERR_NOMEM);
	rr->fd = -1;
	memcpy(rr->rid, meta->rid, CLOUD_RID_LEN);
	GUARD_GOTO(cloud_record_key(key, sizeof(key), meta->rid));
	/* A small object (a few KiB is the common record) needs no file. */
	if (meta->ct_size <= REC_SPOOL_MEM_MAX) {
		rr->mem = sp.mem = malloc(meta->ct_size > 0 ? (size_t)meta->ct_size : 1);
		ENSURE_GOTO(rr->mem != NULL, EHR_ERR_NOMEM);
	} else {
		rr->chunk = malloc(REC_CHUNK);
		ENSURE_GOTO(rr->chunk != NULL, EHR_ERR_NOMEM);
		GUARD_GOTO(spool_open(&sp.fd));
		rr->fd = sp.fd;
	}
	GUARD_GOTO(obj_store_get(st, key, spool_write, &sp, &info));
	rr->mem_len = (size_t)sp.size;
	/* The whole object must be the one the ledger recorded, before any
	 * decryption. */
	if (info.size != meta->ct_size || CRYPTO_memcmp(info.sha256, meta->ct_sha256, 32) != 0) {
		err = ehr_error_set(EHR_ERR_TAMPER, "stored object does not match its ledger entry");
		goto out;
	}
	GUARD_GOTO(cloud_dek_unwrap(kek, meta->kid, meta->rid, meta->wrapped, rr->dek));
	/* Every tag, before a byte of plaintext leaves. */
	GUARD_GOTO(rewind_unseal(rr));
	GUARD_GOTO(pump(rr, 0, discard, NULL));
	rr->done = false;
	GUARD_GOTO(rewind_unseal(rr));
	*out = rr;
	rr = NULL;
out:
	cloud_record_close(rr);
	return err;
}

int cloud_record_read(struct cloud_record_reader *rr, size_t max_plain, cloud_write_fn wr, void *wctx,
                      bool *done)
{
	int err = rr->done ? 0 : pump(rr, max_plain, wr, wctx);

	*done = rr->done;
	return err;
}

int cloud_record_get(struct obj_store *st, const struct cloud_kek *kek, const struct cloud_record_meta *meta,
                     cloud_write_fn wr, void *wctx)
{
	struct cloud_record_reader *rr = NULL;
	bool done = false;
	int err;

	GUARD(cloud_record_open(&rr, st, kek, meta));
	err = cloud_record_read(rr, 0, wr, wctx, &done);
	if (err == 0 && !done)
		err = ehr_error_set(EHR_ERR_INTERNAL, "record read stopped early");
	cloud_record_close(rr);
	return err;
}

/* ---------------------------------------------------- streaming get */

int cloud_tags_sha256(uint8_t out[32], const struct ehr_buf *tags)
{
	ENSURE(tags != NULL && tags->len > 0 && tags->len % CLOUD_TAG_LEN == 0, EHR_ERR_INVAL);
	SHA256(tags->data, tags->len, out);
	return 0;
}

struct stream_pipe {
	struct cloud_unseal *u;
	uint64_t got, limit;
	int (*before_first)(void *ctx);
	void *bctx;
	cloud_write_fn wr;
	void *wctx;
	struct ehr_buf held; /* verified plaintext not yet released (the first CLOUD_STREAM_HOLD bytes) */
	bool released;
};

/* Release: before_first once, then what was held. */
static int stream_release(struct stream_pipe *sp)
{
	int err = 0;

	if (sp->before_first)
		GUARD(sp->before_first(sp->bctx));
	sp->released = true;
	if (sp->held.len > 0)
		err = sp->wr(sp->wctx, sp->held.data, sp->held.len);
	OPENSSL_cleanse(sp->held.data, sp->held.len);
	ehr_buf_reset(&sp->held);
	return err;
}

/* The unseal's output: plaintext of a segment already matched to the
 * ledger's list and authenticated. The first CLOUD_STREAM_HOLD bytes are
 * held, so a record that small is verified whole (its size and SHA-256
 * too) before anything leaves, exactly like a spooled read. */
static int stream_out(void *ctx, const uint8_t *p, size_t n)
{
	struct stream_pipe *sp = ctx;

	if (sp->released)
		return n > 0 ? sp->wr(sp->wctx, p, n) : 0;
	if (sp->held.len + n <= CLOUD_STREAM_HOLD)
		return ehr_buf_append(&sp->held, p, n);
	GUARD(stream_release(sp));
	return n > 0 ? sp->wr(sp->wctx, p, n) : 0;
}

/* The store's output: ciphertext as it arrives. */
static int stream_in(void *ctx, const uint8_t *p, size_t n)
{
	struct stream_pipe *sp = ctx;

	if (sp->got + n > sp->limit)
		return ehr_error_set(EHR_ERR_TAMPER, "stored object is larger than the ledger says");
	sp->got += n;
	return cloud_unseal_update(sp->u, p, n, stream_out, sp);
}

int cloud_record_stream(struct obj_store *st, const struct cloud_kek *kek,
                        const struct cloud_record_meta *meta, int (*before_first)(void *ctx), void *bctx,
                        cloud_write_fn wr, void *wctx, bool *released)
{
	struct stream_pipe sp = {
		.limit = meta->ct_size,
		.before_first = before_first,
		.bctx = bctx,
		.wr = wr,
		.wctx = wctx,
		.held = EHR_BUF_INIT(CLOUD_STREAM_HOLD),
	};
	uint8_t dek[CLOUD_KEY_LEN];
	struct obj_info info;
	char key[128];
	int err = 0;

	*released = false;
	ENSURE(meta->seg_tags != NULL && meta->seg_tags->len > 0 && meta->seg_tags->len % CLOUD_TAG_LEN == 0,
	       EHR_ERR_INVAL);
	GUARD(cloud_record_key(key, sizeof(key), meta->rid));
	GUARD(cloud_dek_unwrap(kek, meta->kid, meta->rid, meta->wrapped, dek));
	err = cloud_unseal_new(&sp.u, dek, meta->rid);
	OPENSSL_cleanse(dek, sizeof(dek));
	GUARD(err);
	cloud_unseal_expect_tags(sp.u, meta->seg_tags->data, meta->seg_tags->len / CLOUD_TAG_LEN);
	GUARD_GOTO(obj_store_get(st, key, stream_in, &sp, &info));
	GUARD_GOTO(cloud_unseal_final(sp.u, stream_out, &sp));
	/* Every segment matched the list; the whole object is the ledger's too. */
	if (info.size != meta->ct_size || CRYPTO_memcmp(info.sha256, meta->ct_sha256, 32) != 0) {
		err = ehr_error_set(EHR_ERR_TAMPER, "stored object does not match its ledger entry");
		goto out;
	}
	if (!sp.released)
		err = stream_release(&sp); /* a small record, verified whole */
out:
	*released = sp.released;
	cloud_unseal_free(sp.u);
	ehr_buf_free_secure(&sp.held);
	return err;
}
