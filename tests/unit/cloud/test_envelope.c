/* test_envelope.c - STREAM segments, data-key wrapping, KEK files. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cloud/cloud_internal.h"
#include "tests/harness/harness.h"

#define SEG CLOUD_SEG_MIN /* small segments keep the tests quick and the boundaries many */

static uint8_t DEK[32], RID[16], RID2[16];

static int setup(void)
{
	RAND_bytes(DEK, sizeof(DEK));
	RAND_bytes(RID, sizeof(RID));
	RAND_bytes(RID2, sizeof(RID2));
	return 0;
}

static int seal_all(struct ehr_buf *ct, const uint8_t *pt, size_t n, size_t chunk, const uint8_t *rid)
{
	struct cloud_seal *s;
	size_t off = 0;

	GUARD(cloud_seal_new(&s, DEK, rid, SEG));
	while (off < n) {
		size_t take = n - off < chunk ? n - off : chunk;
		int rc = cloud_seal_update(s, pt + off, take, cloud_buf_write, ct);
		if (rc < 0) {
			cloud_seal_free(s);
			return rc;
		}
		off += take;
	}
	int rc = cloud_seal_final(s, cloud_buf_write, ct);
	cloud_seal_free(s);
	return rc;
}

static int open_all(struct ehr_buf *pt, const uint8_t *ct, size_t n, size_t chunk, const uint8_t *rid)
{
	struct cloud_unseal *u;
	size_t off = 0;
	int rc = 0;

	GUARD(cloud_unseal_new(&u, DEK, rid));
	while (off < n && rc == 0) {
		size_t take = n - off < chunk ? n - off : chunk;
		rc = cloud_unseal_update(u, ct + off, take, cloud_buf_write, pt);
		off += take;
	}
	if (rc == 0)
		rc = cloud_unseal_final(u, cloud_buf_write, pt);
	cloud_unseal_free(u);
	return rc;
}

static void test_round_trips(void)
{
	static const size_t sizes[] = { 0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG + 5 };
	static const size_t chunks[] = { 1, 7, SEG, 100000 };

	for (size_t i = 0; i < EHR_ARRAY_LEN(sizes); i++) {
		size_t n = sizes[i];
		uint8_t *pt = malloc(n + 1);
		uint64_t want_ct;
		RAND_bytes(pt, (int)n + 1);
		EHR_ASSERT_OK(cloud_ciphertext_size(&want_ct, n, SEG));
		for (size_t c = 0; c < EHR_ARRAY_LEN(chunks); c++) {
			struct ehr_buf ct = EHR_BUF_INIT(1 << 20), out = EHR_BUF_INIT(1 << 20);
			EHR_ASSERT_OK(seal_all(&ct, pt, n, chunks[c], RID));
			CU_ASSERT_EQUAL(ct.len, want_ct);
			EHR_ASSERT_OK(open_all(&out, ct.data, ct.len, chunks[(c + 1) % EHR_ARRAY_LEN(chunks)],
			                       RID));
			CU_ASSERT_EQUAL(out.len, n);
			CU_ASSERT(n == 0 || memcmp(out.data, pt, n) == 0); /* not secret */
			/* Nothing of the plaintext shows in the ciphertext. */
			if (n >= 16)
				CU_ASSERT_PTR_NULL(memmem(ct.data, ct.len, pt, 16));
			ehr_buf_free(&ct);
			ehr_buf_free(&out);
		}
		free(pt);
	}
}

/* Each flipped byte is caught, and only segments before it were released. */
static void test_bit_flips(void)
{
	size_t n = 3 * SEG + 10, seglen = SEG + CLOUD_TAG_LEN;
	uint8_t *pt = malloc(n);
	struct ehr_buf ct = EHR_BUF_INIT(1 << 20);

	RAND_bytes(pt, (int)n);
	EHR_ASSERT_OK(seal_all(&ct, pt, n, n, RID));
	for (size_t pos = 0; pos < ct.len; pos += 97) {
		struct ehr_buf out = EHR_BUF_INIT(1 << 20);
		int rc;
		ct.data[pos] ^= 0x01;
		rc = open_all(&out, ct.data, ct.len, 4096, RID);
		CU_ASSERT_EQUAL(rc, EHR_ERR_TAMPER);
		if (pos >= CLOUD_HDR_LEN) {
			size_t seg_idx = (pos - CLOUD_HDR_LEN) / seglen;
			CU_ASSERT_EQUAL(out.len, seg_idx * SEG);
		} else {
			CU_ASSERT_EQUAL(out.len, 0);
		}
		ct.data[pos] ^= 0x01;
		ehr_buf_free(&out);
	}
	free(pt);
	ehr_buf_free(&ct);
}

static void test_reorder_truncate_splice(void)
{
	size_t n = 4 * SEG, seglen = SEG + CLOUD_TAG_LEN;
	uint8_t *pt = malloc(n), *tmp = malloc(seglen);
	struct ehr_buf ct = EHR_BUF_INIT(1 << 20), ct2 = EHR_BUF_INIT(1 << 20), out = EHR_BUF_INIT(1 << 20);
	uint8_t *s1, *s2;

	RAND_bytes(pt, (int)n);
	EHR_ASSERT_OK(seal_all(&ct, pt, n, n, RID));

	/* swap segments 1 and 2 */
	s1 = ct.data + CLOUD_HDR_LEN + seglen;
	s2 = s1 + seglen;
	memcpy(tmp, s1, seglen);
	memcpy(s1, s2, seglen);
	memcpy(s2, tmp, seglen);
	EHR_ASSERT_ERR(open_all(&out, ct.data, ct.len, 5000, RID), EHR_ERR_TAMPER);
	CU_ASSERT_EQUAL(out.len, SEG); /* only segment 0 was released */
	memcpy(s2, s1, seglen);
	memcpy(s1, tmp, seglen);
	ehr_buf_reset(&out);
	EHR_ASSERT_OK(open_all(&out, ct.data, ct.len, 5000, RID));
	CU_ASSERT_EQUAL(out.len, n);

	/* truncation at a segment boundary (drop the final segment) */
	ehr_buf_reset(&out);
	EHR_ASSERT_ERR(open_all(&out, ct.data, ct.len - seglen, 5000, RID), EHR_ERR_TAMPER);
	/* truncation inside a segment, inside the header, to nothing */
	ehr_buf_reset(&out);
	EHR_ASSERT_ERR(open_all(&out, ct.data, ct.len - 1, 5000, RID), EHR_ERR_TAMPER);
	ehr_buf_reset(&out);
	EHR_ASSERT_ERR(open_all(&out, ct.data, 10, 5000, RID), EHR_ERR_TAMPER);
	ehr_buf_reset(&out);
	EHR_ASSERT_ERR(open_all(&out, ct.data, 0, 5000, RID), EHR_ERR_TAMPER);
	/* extension: the final segment repeated */
	{
		struct ehr_buf ext = EHR_BUF_INIT(1 << 20);
		EHR_ASSERT_OK(ehr_buf_append(&ext, ct.data, ct.len));
		EHR_ASSERT_OK(ehr_buf_append(&ext, ct.data + ct.len - seglen, seglen));
		ehr_buf_reset(&out);
		EHR_ASSERT_ERR(open_all(&out, ext.data, ext.len, 5000, RID), EHR_ERR_TAMPER);
		ehr_buf_free(&ext);
	}
	/* the right bytes under another record id */
	ehr_buf_reset(&out);
	EHR_ASSERT_ERR(open_all(&out, ct.data, ct.len, 5000, RID2), EHR_ERR_TAMPER);
	CU_ASSERT_EQUAL(out.len, 0);
	/* splicing: segment 1 of another record (same key, same offsets) */
	EHR_ASSERT_OK(seal_all(&ct2, pt, n, n, RID2));
	memcpy(ct.data + CLOUD_HDR_LEN + seglen, ct2.data + CLOUD_HDR_LEN + seglen, seglen);
	ehr_buf_reset(&out);
	EHR_ASSERT_ERR(open_all(&out, ct.data, ct.len, 5000, RID), EHR_ERR_TAMPER);
	CU_ASSERT_EQUAL(out.len, SEG);

	free(pt);
	free(tmp);
	ehr_buf_free(&ct);
	ehr_buf_free(&ct2);
	ehr_buf_free(&out);
}

static void test_header_parse(void)
{
	struct cloud_env_header h;
	uint8_t good[CLOUD_HDR_LEN] = { 'E', 'H', 'R', 'S', 1, 1, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9 };
	uint8_t bad[CLOUD_HDR_LEN];

	EHR_ASSERT_OK(cloud__env_header_parse(&h, good, sizeof(good)));
	CU_ASSERT_EQUAL(h.seg_size, 65536);
	EHR_ASSERT_ERR(cloud__env_header_parse(&h, good, sizeof(good) - 1), EHR_ERR_TAMPER);
	for (size_t i = 0; i < 12; i++) {
		memcpy(bad, good, sizeof(bad));
		bad[i] ^= 0x80;
		/* bytes 9..11 change the segment size to something still valid or not;
		 * all others must be refused */
		if (i >= 9)
			continue;
		EHR_ASSERT_ERR(cloud__env_header_parse(&h, bad, sizeof(bad)), EHR_ERR_TAMPER);
	}
	memcpy(bad, good, sizeof(bad));
	bad[8] = 0x7f; /* 2 GiB segments: refused before any allocation */
	EHR_ASSERT_ERR(cloud__env_header_parse(&h, bad, sizeof(bad)), EHR_ERR_TAMPER);
}

static char KDIR[64];

static void write_key(const char *kid, mode_t mode, size_t len)
{
	char path[256];
	uint8_t k[64];
	int fd;
	snprintf(path, sizeof(path), "%s/%s.key", KDIR, kid);
	RAND_bytes(k, sizeof(k));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, k, len), (ssize_t)len);
	fchmod(fd, mode);
	close(fd);
}

static void test_kek(void)
{
	struct cloud_kek *k = NULL, *k2 = NULL;
	uint8_t wrapped[CLOUD_WRAPPED_LEN], dek[32], back[32];
	const char *kid = NULL;
	char newkid[CLOUD_KID_MAX], oldkid[CLOUD_KID_MAX];
	char cmd[128];

	snprintf(KDIR, sizeof(KDIR), "/tmp/ehr-kek-XXXXXX");
	CU_ASSERT_FATAL(mkdtemp(KDIR) != NULL);
	EHR_ASSERT_ERR(cloud_kek_load(&k, KDIR), EHR_ERR_NOT_FOUND); /* no current */
	write_key("k1", 0600, 32);
	EHR_ASSERT_OK(cloud_kek_set_current(KDIR, "k1"));
	EHR_ASSERT_OK(cloud_kek_load(&k, KDIR));
	CU_ASSERT_STRING_EQUAL(cloud_kek_current(k), "k1");

	RAND_bytes(dek, sizeof(dek));
	EHR_ASSERT_OK(cloud_dek_wrap(k, NULL, RID, dek, wrapped, &kid));
	CU_ASSERT_STRING_EQUAL(kid, "k1");
	EHR_ASSERT_OK(cloud_dek_unwrap(k, "k1", RID, wrapped, back));
	CU_ASSERT(memcmp(dek, back, 32) == 0); /* not secret */
	/* bound to the record id, the kid, and every byte */
	EHR_ASSERT_ERR(cloud_dek_unwrap(k, "k1", RID2, wrapped, back), EHR_ERR_TAMPER);
	EHR_ASSERT_ERR(cloud_dek_unwrap(k, "k9", RID, wrapped, back), EHR_ERR_NOT_FOUND);
	for (size_t i = 1; i < CLOUD_WRAPPED_LEN; i += 5) {
		wrapped[i] ^= 4;
		EHR_ASSERT_ERR(cloud_dek_unwrap(k, "k1", RID, wrapped, back), EHR_ERR_TAMPER);
		wrapped[i] ^= 4;
	}
	wrapped[0] = 2;
	EHR_ASSERT_ERR(cloud_dek_unwrap(k, "k1", RID, wrapped, back), EHR_ERR_TAMPER);
	wrapped[0] = 1;

	/* rotation: a new KEK becomes current; old wraps still open with the old kid */
	EHR_ASSERT_OK(cloud_kek_generate(KDIR, newkid));
	EHR_ASSERT_OK(cloud_kek_set_current(KDIR, newkid));
	EHR_ASSERT_OK(cloud_kek_load(&k2, KDIR));
	CU_ASSERT_STRING_EQUAL(cloud_kek_current(k2), newkid);
	EHR_ASSERT_OK(cloud_dek_unwrap(k2, "k1", RID, wrapped, back));
	{
		uint8_t rewrapped[CLOUD_WRAPPED_LEN];
		EHR_ASSERT_OK(cloud_dek_wrap(k2, NULL, RID, back, rewrapped, &kid));
		CU_ASSERT_STRING_EQUAL(kid, newkid);
		/* the new wrap does not open under the old kid's label */
		EHR_ASSERT_ERR(cloud_dek_unwrap(k2, "k1", RID, rewrapped, back), EHR_ERR_TAMPER);
		EHR_ASSERT_OK(cloud_dek_unwrap(k2, newkid, RID, rewrapped, back));
		CU_ASSERT(memcmp(dek, back, 32) == 0); /* not secret */
	}
	snprintf(oldkid, sizeof(oldkid), "%s", newkid);
	cloud_kek_free(k2);
	k2 = NULL;

	/* refusals: group-readable key, wrong length, current naming a missing key */
	write_key("k2", 0644, 32);
	EHR_ASSERT_ERR(cloud_kek_load(&k2, KDIR), EHR_ERR_CONFIG);
	write_key("k2", 0600, 31);
	chmod(KDIR, 0700);
	{
		char p[256];
		snprintf(p, sizeof(p), "%s/k2.key", KDIR);
		chmod(p, 0600);
	}
	EHR_ASSERT_ERR(cloud_kek_load(&k2, KDIR), EHR_ERR_CONFIG);
	write_key("k2", 0600, 32);
	EHR_ASSERT_OK(cloud_kek_set_current(KDIR, "nosuch"));
	EHR_ASSERT_ERR(cloud_kek_load(&k2, KDIR), EHR_ERR_CONFIG);
	EHR_ASSERT_ERR(cloud_kek_set_current(KDIR, "../evil"), EHR_ERR_INVAL);

	cloud_kek_free(k);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", KDIR);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static void test_rid_and_keys(void)
{
	uint8_t rid[16], back[16];
	char hex[CLOUD_RID_HEX], key[128];

	EHR_ASSERT_OK(cloud_rid_new(rid));
	cloud_rid_hex(hex, rid);
	EHR_ASSERT_OK(cloud_rid_parse(back, hex));
	CU_ASSERT(memcmp(rid, back, 16) == 0); /* not secret */
	EHR_ASSERT_OK(cloud_record_key(key, sizeof(key), rid));
	CU_ASSERT(strncmp(key, "ehr/", 4) == 0 && strlen(key) == 4 + 3 + 32);
	EHR_ASSERT_OK(cloud__key_check(key));
	EHR_ASSERT_OK(cloud_record_key_parse(back, key));
	CU_ASSERT(memcmp(rid, back, 16) == 0); /* not secret */
	key[4] = key[4] == 'a' ? 'b' : 'a';    /* fan-out directory no longer matches */
	EHR_ASSERT_ERR(cloud_record_key_parse(back, key), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(cloud_rid_parse(back, "ABCDEF0123456789ABCDEF0123456789"), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(cloud_rid_parse(back, "abc"), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(cloud__key_check("../x"), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(cloud__key_check("a/../x"), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(cloud__key_check("/a"), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(cloud__key_check("a//b"), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(cloud__key_check("a/.tmp/b"), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(cloud__key_check("a b"), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(cloud__key_check(""), EHR_ERR_INVAL);
}

/* Open ct against a tag list of ntags tags; 0 or the error. */
static int open_listed(struct ehr_buf *pt, const struct ehr_buf *ct, const uint8_t *tags, size_t ntags)
{
	struct cloud_unseal *u;
	int rc;

	ehr_buf_reset(pt);
	GUARD(cloud_unseal_new(&u, DEK, RID));
	cloud_unseal_expect_tags(u, tags, ntags);
	rc = cloud_unseal_update(u, ct->data, ct->len, cloud_buf_write, pt);
	if (rc == 0)
		rc = cloud_unseal_final(u, cloud_buf_write, pt);
	cloud_unseal_free(u);
	return rc;
}

/*
 * The tag list the ledger commits to (docs/STORAGE.md §3): kept by the
 * sealer in order, it opens its own object; a list with one tag changed,
 * one tag fewer (a truncated object that still ends in a valid final
 * segment would need it) or one more (an object cut at a boundary) is
 * refused, and nothing past the first bad segment is released.
 */
static void test_tag_list(void)
{
	size_t n = 3 * SEG + 5;
	uint8_t *p = malloc(n);
	struct ehr_buf ct = EHR_BUF_INIT(1 << 20), pt = EHR_BUF_INIT(1 << 20), tags = EHR_BUF_INIT(4096),
	               bad = EHR_BUF_INIT(4096);
	struct cloud_seal *s;
	uint8_t h[32];

	RAND_bytes(p, (int)n);
	EHR_ASSERT_OK(cloud_seal_new(&s, DEK, RID, SEG));
	cloud_seal_keep_tags(s, &tags);
	EHR_ASSERT_OK(cloud_seal_update(s, p, n, cloud_buf_write, &ct));
	EHR_ASSERT_OK(cloud_seal_final(s, cloud_buf_write, &ct));
	cloud_seal_free(s);
	CU_ASSERT_EQUAL(tags.len, 4 * CLOUD_TAG_LEN);
	for (size_t i = 0; i < 4; i++) { /* each segment ends in its listed tag */
		size_t at = CLOUD_HDR_LEN + (i + 1) * (SEG + CLOUD_TAG_LEN) - CLOUD_TAG_LEN -
		            (i == 3 ? SEG - 5 : 0);
		int same = memcmp(tags.data + i * CLOUD_TAG_LEN, ct.data + at, 16); /* not secret */
		CU_ASSERT_EQUAL(same, 0);
	}
	EHR_ASSERT_OK(cloud_tags_sha256(h, &tags));
	EHR_ASSERT_OK(open_listed(&pt, &ct, tags.data, 4));
	CU_ASSERT(pt.len == n && memcmp(pt.data, p, n) == 0); /* not secret */

	EHR_ASSERT_OK(ehr_buf_append(&bad, tags.data, tags.len));
	bad.data[2 * CLOUD_TAG_LEN] ^= 1; /* segment 2's tag */
	EHR_ASSERT_ERR(open_listed(&pt, &ct, bad.data, 4), EHR_ERR_TAMPER);
	CU_ASSERT_EQUAL(pt.len, 2 * SEG);                                    /* segments 0 and 1 only */
	EHR_ASSERT_ERR(open_listed(&pt, &ct, tags.data, 3), EHR_ERR_TAMPER); /* one fewer */
	CU_ASSERT_EQUAL(pt.len, 3 * SEG);
	ehr_buf_reset(&bad);
	EHR_ASSERT_OK(ehr_buf_append(&bad, tags.data, tags.len));
	EHR_ASSERT_OK(ehr_buf_append(&bad, tags.data, CLOUD_TAG_LEN));
	EHR_ASSERT_ERR(open_listed(&pt, &ct, bad.data, 5), EHR_ERR_TAMPER); /* one more */
	CU_ASSERT_EQUAL(pt.len, 3 * SEG);
	ehr_buf_reset(&bad);
	EHR_ASSERT_ERR(cloud_tags_sha256(h, &bad), EHR_ERR_INVAL); /* an empty list hashes to nothing */
	free(p);
	ehr_buf_free(&ct);
	ehr_buf_free(&pt);
	ehr_buf_free(&tags);
	ehr_buf_free(&bad);
}

static void reg(void)
{
	EHR_ADD_SUITE("envelope", setup, NULL, { "round trips", test_round_trips },
	              { "bit flips", test_bit_flips },
	              { "reorder truncate splice", test_reorder_truncate_splice },
	              { "header parse", test_header_parse }, { "kek", test_kek },
	              { "record ids and keys", test_rid_and_keys }, { "tag list", test_tag_list });
}

EHR_TEST_MAIN(reg)
