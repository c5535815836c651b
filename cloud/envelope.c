/*
 * envelope.c - AES-256-GCM in fixed-size segments, a STREAM construction
 * (Hoang, Reyhanitabar, Rogaway, Vizár, "Online Authenticated-Encryption
 * and its Nonce-Reuse Misuse-Resistance", 2015).
 *
 * Object = header(16) || segment_0 || ... || segment_{n-1}
 *   header  = "EHRS" || version 0x01 || alg 0x01 || 0x0000 || seg_size u32 BE || nonce_prefix[4]
 *   segment = AES-256-GCM(dek, nonce, aad, plaintext_i) || tag(16)
 *   nonce   = nonce_prefix[4] || i u64 BE
 *   aad     = header(16) || record_id(16) || i u64 BE || final u8 (1 on the last segment, else 0)
 * Every segment but the last holds exactly seg_size plaintext bytes; the last
 * holds 1..seg_size bytes, or 0 when the whole record is empty. A reader
 * treats whatever ends the stream as the final segment, so truncation at a
 * segment boundary fails the final flag, reordering fails the index,
 * splicing from another record fails the record id (and the key).
 */
#include "cloud/cloud_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

static const uint8_t MAGIC[4] = { 'E', 'H', 'R', 'S' };
#define ENV_VERSION 1
#define ENV_ALG_AES256GCM_STREAM 1

struct cloud_seal {
	EVP_CIPHER_CTX *ctx;
	uint8_t key[CLOUD_KEY_LEN];
	uint8_t rid[CLOUD_RID_LEN];
	uint8_t hdr[CLOUD_HDR_LEN];
	uint32_t seg;
	uint8_t *pt; /* seg bytes of pending plaintext */
	size_t fill;
	size_t pt_dirty; /* pt[0..pt_dirty) may have held plaintext: what free wipes */
	uint8_t *ct;     /* seg + tag */
	uint64_t idx;
	bool hdr_sent;
	bool finished;
	struct ehr_buf *tags; /* optional: every segment's tag, in order */
};

struct cloud_unseal {
	EVP_CIPHER_CTX *ctx;
	uint8_t key[CLOUD_KEY_LEN];
	uint8_t rid[CLOUD_RID_LEN];
	uint8_t hdr[CLOUD_HDR_LEN];
	size_t hdr_fill;
	struct cloud_env_header h;
	uint8_t *ct; /* seg + tag of pending ciphertext */
	size_t fill;
	uint8_t *pt;
	size_t pt_dirty; /* pt[0..pt_dirty) may have held plaintext: what free wipes */
	uint64_t idx;
	bool finished;
	bool failed;
	const uint8_t *want; /* optional: the tag each segment must carry */
	size_t nwant;
};

int cloud_ciphertext_size(uint64_t *out, uint64_t n, uint32_t seg)
{
	uint64_t nseg;

	ENSURE(seg >= CLOUD_SEG_MIN && seg <= CLOUD_SEG_MAX, EHR_ERR_INVAL);
	nseg = n == 0 ? 1 : (n + seg - 1) / seg;
	ENSURE(n <= UINT64_MAX - CLOUD_HDR_LEN - nseg * CLOUD_TAG_LEN, EHR_ERR_OVERFLOW);
	*out = CLOUD_HDR_LEN + n + nseg * CLOUD_TAG_LEN;
	return 0;
}

int cloud_plaintext_size(uint64_t *out, uint64_t ct, uint32_t seg)
{
	uint64_t body, full = (uint64_t)seg + CLOUD_TAG_LEN, nseg, check;

	ENSURE(seg >= CLOUD_SEG_MIN && seg <= CLOUD_SEG_MAX, EHR_ERR_INVAL);
	ENSURE(ct >= CLOUD_HDR_LEN + CLOUD_TAG_LEN, EHR_ERR_INVAL);
	body = ct - CLOUD_HDR_LEN;
	nseg = (body + full - 1) / full;
	*out = body - nseg * CLOUD_TAG_LEN;
	GUARD(cloud_ciphertext_size(&check, *out, seg));
	ENSURE(check == ct, EHR_ERR_INVAL);
	return 0;
}

int cloud__env_header_parse(struct cloud_env_header *h, const uint8_t *p, size_t n)
{
	struct ehr_cursor c;
	uint8_t magic[4], alg;
	uint16_t reserved;

	ehr_cursor_init(&c, p, n);
	if (ehr_cursor_read(&c, magic, 4) < 0 || ehr_cursor_read_u8(&c, &h->version) < 0 ||
	    ehr_cursor_read_u8(&c, &alg) < 0 || ehr_cursor_read_be16(&c, &reserved) < 0 ||
	    ehr_cursor_read_be32(&c, &h->seg_size) < 0 || ehr_cursor_read(&c, h->nonce_prefix, 4) < 0)
		return ehr_error_set(EHR_ERR_TAMPER, "envelope: short header");
	bool magic_ok = memcmp(magic, MAGIC, 4) == 0; /* not secret */
	if (!magic_ok || h->version != ENV_VERSION || alg != ENV_ALG_AES256GCM_STREAM || reserved != 0)
		return ehr_error_set(EHR_ERR_TAMPER, "envelope: unknown header");
	if (h->seg_size < CLOUD_SEG_MIN || h->seg_size > CLOUD_SEG_MAX)
		return ehr_error_set(EHR_ERR_TAMPER, "envelope: segment size out of range");
	return 0;
}

static void nonce_aad(uint8_t nonce[12], uint8_t aad[CLOUD_HDR_LEN + CLOUD_RID_LEN + 9],
                      const uint8_t hdr[CLOUD_HDR_LEN], const uint8_t rid[CLOUD_RID_LEN], uint64_t idx,
                      bool final)
{
	memcpy(nonce, hdr + 12, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(idx >> (56 - 8 * i));
	memcpy(aad, hdr, CLOUD_HDR_LEN);
	memcpy(aad + CLOUD_HDR_LEN, rid, CLOUD_RID_LEN);
	memcpy(aad + CLOUD_HDR_LEN + CLOUD_RID_LEN, nonce + 4, 8);
	aad[CLOUD_HDR_LEN + CLOUD_RID_LEN + 8] = final ? 1 : 0;
}

/* ------------------------------------------------------------------ seal */

int cloud_seal_new(struct cloud_seal **out, const uint8_t dek[CLOUD_KEY_LEN],
                   const uint8_t rid[CLOUD_RID_LEN], uint32_t seg_size)
{
	struct cloud_seal *s;
	int err = 0;

	*out = NULL;
	if (seg_size == 0)
		seg_size = CLOUD_SEG_DEFAULT;
	ENSURE(seg_size >= CLOUD_SEG_MIN && seg_size <= CLOUD_SEG_MAX, EHR_ERR_INVAL);
	s = calloc(1, sizeof(*s));
	ENSURE(s != NULL, EHR_ERR_NOMEM);
	s->seg = seg_size;
	s->pt = malloc(seg_size);
	s->ct = malloc((size_t)seg_size + CLOUD_TAG_LEN);
	s->ctx = EVP_CIPHER_CTX_new();
	ENSURE_GOTO(s->pt && s->ct && s->ctx, EHR_ERR_NOMEM);
	memcpy(s->key, dek, CLOUD_KEY_LEN);
	memcpy(s->rid, rid, CLOUD_RID_LEN);
	memcpy(s->hdr, MAGIC, 4);
	s->hdr[4] = ENV_VERSION;
	s->hdr[5] = ENV_ALG_AES256GCM_STREAM;
	s->hdr[6] = s->hdr[7] = 0;
	for (int i = 0; i < 4; i++)
		s->hdr[8 + i] = (uint8_t)(seg_size >> (24 - 8 * i));
	GUARD_GOTO(ehr_random(s->hdr + 12, 4));
	GUARD_OSSL_GOTO(EVP_EncryptInit_ex(s->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL));
	*out = s;
	return 0;
out:
	cloud_seal_free(s);
	return err;
}

void cloud_seal_free(struct cloud_seal *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s->key, sizeof(s->key));
	/* Only the bytes ever written: wiping all 64 KiB of a segment buffer
	 * for a 4 KiB record cost page faults on every request. */
	if (s->pt) {
		OPENSSL_cleanse(s->pt, s->pt_dirty);
		free(s->pt);
	}
	free(s->ct);
	EVP_CIPHER_CTX_free(s->ctx);
	free(s);
}

static int seal_emit(struct cloud_seal *s, bool final, cloud_write_fn out, void *octx)
{
	uint8_t nonce[12], aad[CLOUD_HDR_LEN + CLOUD_RID_LEN + 9];
	int len = 0, flen = 0;

	nonce_aad(nonce, aad, s->hdr, s->rid, s->idx, final);
	GUARD_OSSL(EVP_EncryptInit_ex(s->ctx, NULL, NULL, s->key, nonce));
	GUARD_OSSL(EVP_EncryptUpdate(s->ctx, NULL, &len, aad, (int)sizeof(aad)));
	len = 0;
	if (s->fill > 0)
		GUARD_OSSL(EVP_EncryptUpdate(s->ctx, s->ct, &len, s->pt, (int)s->fill));
	GUARD_OSSL(EVP_EncryptFinal_ex(s->ctx, s->ct + len, &flen));
	ENSURE((size_t)(len + flen) == s->fill, EHR_ERR_CRYPTO);
	GUARD_OSSL(EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_GET_TAG, CLOUD_TAG_LEN, s->ct + s->fill));
	OPENSSL_cleanse(s->pt, s->fill);
	if (s->tags)
		GUARD(ehr_buf_append(s->tags, s->ct + s->fill, CLOUD_TAG_LEN));
	GUARD(out(octx, s->ct, s->fill + CLOUD_TAG_LEN));
	s->fill = 0;
	s->idx++;
	return 0;
}

int cloud_seal_update(struct cloud_seal *s, const uint8_t *p, size_t n, cloud_write_fn out, void *octx)
{
	ENSURE(!s->finished, EHR_ERR_INVAL);
	if (!s->hdr_sent) {
		GUARD(out(octx, s->hdr, CLOUD_HDR_LEN));
		s->hdr_sent = true;
	}
	while (n > 0) {
		size_t take;
		/* A full buffer is emitted only once more data shows it is not the last. */
		if (s->fill == s->seg)
			GUARD(seal_emit(s, false, out, octx));
		take = s->seg - s->fill;
		if (take > n)
			take = n;
		memcpy(s->pt + s->fill, p, take);
		s->fill += take;
		if (s->fill > s->pt_dirty)
			s->pt_dirty = s->fill;
		p += take;
		n -= take;
	}
	return 0;
}

void cloud_seal_keep_tags(struct cloud_seal *s, struct ehr_buf *tags)
{
	s->tags = tags;
}

int cloud_seal_final(struct cloud_seal *s, cloud_write_fn out, void *octx)
{
	ENSURE(!s->finished, EHR_ERR_INVAL);
	if (!s->hdr_sent) {
		GUARD(out(octx, s->hdr, CLOUD_HDR_LEN));
		s->hdr_sent = true;
	}
	GUARD(seal_emit(s, true, out, octx));
	s->finished = true;
	return 0;
}

/* ---------------------------------------------------------------- unseal */

int cloud_unseal_new(struct cloud_unseal **out, const uint8_t dek[CLOUD_KEY_LEN],
                     const uint8_t rid[CLOUD_RID_LEN])
{
	struct cloud_unseal *u;
	int err = 0;

	*out = NULL;
	u = calloc(1, sizeof(*u));
	ENSURE(u != NULL, EHR_ERR_NOMEM);
	u->ctx = EVP_CIPHER_CTX_new();
	ENSURE_GOTO(u->ctx != NULL, EHR_ERR_NOMEM);
	memcpy(u->key, dek, CLOUD_KEY_LEN);
	memcpy(u->rid, rid, CLOUD_RID_LEN);
	GUARD_OSSL_GOTO(EVP_DecryptInit_ex(u->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL));
	*out = u;
	return 0;
out:
	cloud_unseal_free(u);
	return err;
}

void cloud_unseal_free(struct cloud_unseal *u)
{
	if (u == NULL)
		return;
	OPENSSL_cleanse(u->key, sizeof(u->key));
	if (u->pt) {
		OPENSSL_cleanse(u->pt, u->pt_dirty);
		free(u->pt);
	}
	free(u->ct);
	EVP_CIPHER_CTX_free(u->ctx);
	free(u);
}

static int unseal_emit(struct cloud_unseal *u, bool final, cloud_write_fn out, void *octx)
{
	uint8_t nonce[12], aad[CLOUD_HDR_LEN + CLOUD_RID_LEN + 9];
	size_t ctlen;
	int len = 0, flen = 0, err = 0;

	if (u->fill < CLOUD_TAG_LEN)
		return ehr_error_set(EHR_ERR_TAMPER, "envelope: truncated segment");
	ctlen = u->fill - CLOUD_TAG_LEN;
	/* With a list, the segment is the one it names at this index, and
	 * the final segment is its last (checked before decrypting). */
	if (u->want != NULL &&
	    (u->idx >= u->nwant || (final && u->idx + 1 != u->nwant) ||
	     CRYPTO_memcmp(u->ct + ctlen, u->want + u->idx * CLOUD_TAG_LEN, CLOUD_TAG_LEN) != 0)) {
		u->failed = true;
		return ehr_error_set(EHR_ERR_TAMPER, "envelope: segment %llu is not the one the ledger lists",
		                     (unsigned long long)u->idx);
	}
	nonce_aad(nonce, aad, u->hdr, u->rid, u->idx, final);
	GUARD_OSSL(EVP_DecryptInit_ex(u->ctx, NULL, NULL, u->key, nonce));
	GUARD_OSSL(EVP_DecryptUpdate(u->ctx, NULL, &len, aad, (int)sizeof(aad)));
	len = 0;
	/* Marked before the decryptor writes, so a failure still gets wiped. */
	if (ctlen > u->pt_dirty)
		u->pt_dirty = ctlen;
	if (ctlen > 0)
		GUARD_OSSL(EVP_DecryptUpdate(u->ctx, u->pt, &len, u->ct, (int)ctlen));
	GUARD_OSSL(EVP_CIPHER_CTX_ctrl(u->ctx, EVP_CTRL_GCM_SET_TAG, CLOUD_TAG_LEN, u->ct + ctlen));
	if (EVP_DecryptFinal_ex(u->ctx, u->pt + len, &flen) != 1) {
		OPENSSL_cleanse(u->pt, ctlen);
		u->failed = true;
		return ehr_error_set(EHR_ERR_TAMPER, "envelope: segment %llu failed authentication",
		                     (unsigned long long)u->idx);
	}
	err = out(octx, u->pt, ctlen);
	OPENSSL_cleanse(u->pt, ctlen);
	GUARD(err);
	u->fill = 0;
	u->idx++;
	return 0;
}

int cloud_unseal_update(struct cloud_unseal *u, const uint8_t *p, size_t n, cloud_write_fn out, void *octx)
{
	ENSURE(!u->finished && !u->failed, EHR_ERR_INVAL);
	if (u->hdr_fill < CLOUD_HDR_LEN) {
		size_t take = CLOUD_HDR_LEN - u->hdr_fill;
		if (take > n)
			take = n;
		memcpy(u->hdr + u->hdr_fill, p, take);
		u->hdr_fill += take;
		p += take;
		n -= take;
		if (u->hdr_fill < CLOUD_HDR_LEN)
			return 0;
		GUARD(cloud__env_header_parse(&u->h, u->hdr, CLOUD_HDR_LEN));
		u->ct = malloc((size_t)u->h.seg_size + CLOUD_TAG_LEN);
		u->pt = malloc(u->h.seg_size);
		ENSURE(u->ct && u->pt, EHR_ERR_NOMEM);
	}
	while (n > 0) {
		size_t full = (size_t)u->h.seg_size + CLOUD_TAG_LEN, take;
		if (u->fill == full)
			GUARD(unseal_emit(u, false, out, octx));
		take = full - u->fill;
		if (take > n)
			take = n;
		memcpy(u->ct + u->fill, p, take);
		u->fill += take;
		p += take;
		n -= take;
	}
	return 0;
}

void cloud_unseal_expect_tags(struct cloud_unseal *u, const uint8_t *tags, size_t n)
{
	u->want = tags;
	u->nwant = n;
}

int cloud_unseal_final(struct cloud_unseal *u, cloud_write_fn out, void *octx)
{
	ENSURE(!u->finished && !u->failed, EHR_ERR_INVAL);
	if (u->hdr_fill < CLOUD_HDR_LEN)
		return ehr_error_set(EHR_ERR_TAMPER, "envelope: truncated header");
	GUARD(unseal_emit(u, true, out, octx));
	u->finished = true;
	return 0;
}
