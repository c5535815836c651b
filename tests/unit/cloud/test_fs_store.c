/* test_fs_store.c - the filesystem backend and whole records on it. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "cloud/cloud_internal.h"
#include "tests/harness/harness.h"

static char DIR_[64];
static char ROOT[128], KDIR[128];
static struct obj_store *ST;
static struct cloud_kek *KEK;

static int setup(void)
{
	char kid[CLOUD_KID_MAX];
	struct obj_store_config cfg = { .backend = OBJ_BACKEND_FS };

	snprintf(DIR_, sizeof(DIR_), "/tmp/ehr-fs-XXXXXX");
	if (mkdtemp(DIR_) == NULL)
		return -1;
	snprintf(ROOT, sizeof(ROOT), "%s/objects", DIR_);
	snprintf(KDIR, sizeof(KDIR), "%s/kek", DIR_);
	cfg.fs_path = ROOT;
	if (obj_store_open(&ST, &cfg) < 0 || cloud_kek_generate(KDIR, kid) < 0 ||
	    cloud_kek_set_current(KDIR, kid) < 0 || cloud_kek_load(&KEK, KDIR) < 0)
		return -1;
	return 0;
}

static int teardown(void)
{
	char cmd[128];
	obj_store_free(ST);
	cloud_kek_free(KEK);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", DIR_);
	return system(cmd) == 0 ? 0 : -1;
}

static int count_cb(void *ctx, const char *key, uint64_t size)
{
	(void)key;
	(void)size;
	(*(int *)ctx)++;
	return 0;
}

static void test_objects(void)
{
	struct cloud_mem_reader r = { (const uint8_t *)"hello", 5, 0 };
	struct ehr_buf out = EHR_BUF_INIT(1024);
	struct obj_info info;
	uint8_t want[32];
	uint64_t size = 0;
	int n = 0;

	EHR_ASSERT_OK(obj_store_put(ST, "t/a/one", cloud_mem_read, &r, &info));
	SHA256((const uint8_t *)"hello", 5, want);
	CU_ASSERT_EQUAL(info.size, 5);
	CU_ASSERT(memcmp(info.sha256, want, 32) == 0); /* not secret */
	EHR_ASSERT_OK(obj_store_head(ST, "t/a/one", &size));
	CU_ASSERT_EQUAL(size, 5);
	EHR_ASSERT_OK(obj_store_get(ST, "t/a/one", cloud_buf_write, &out, &info));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&out), "hello");
	CU_ASSERT(memcmp(info.sha256, want, 32) == 0); /* not secret */
	r.off = 0;
	EHR_ASSERT_OK(obj_store_put(ST, "t/b", cloud_mem_read, &r, NULL));
	EHR_ASSERT_OK(obj_store_list(ST, "t/", count_cb, &n));
	CU_ASSERT_EQUAL(n, 2);
	n = 0;
	EHR_ASSERT_OK(obj_store_list(ST, "t/a", count_cb, &n));
	CU_ASSERT_EQUAL(n, 1);
	EHR_ASSERT_OK(obj_store_delete(ST, "t/a/one"));
	EHR_ASSERT_OK(obj_store_delete(ST, "t/a/one")); /* idempotent */
	EHR_ASSERT_ERR(obj_store_head(ST, "t/a/one", &size), EHR_ERR_NOT_FOUND);
	EHR_ASSERT_ERR(obj_store_get(ST, "t/a/one", cloud_buf_write, &out, NULL), EHR_ERR_NOT_FOUND);
	EHR_ASSERT_ERR(obj_store_put(ST, "../escape", cloud_mem_read, &r, NULL), EHR_ERR_INVAL);
	EHR_ASSERT_OK(obj_store_delete(ST, "t/b"));
	EHR_ASSERT_OK(obj_store_ping(ST));
	ehr_buf_free(&out);
}

/* A reader that fails half-way leaves no object and no temp file. */
static int failing_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	int *calls = ctx;
	if ((*calls)++ >= 3)
		return ehr_error_set(EHR_ERR_IO, "client went away");
	memset(buf, 'x', cap > 1000 ? 1000 : cap);
	*got = cap > 1000 ? 1000 : cap;
	return 0;
}

static void test_failed_put(void)
{
	int calls = 0, n = 0;
	uint64_t size;
	char tmp[256];

	EHR_ASSERT_ERR(obj_store_put(ST, "f/x", failing_read, &calls, NULL), EHR_ERR_IO);
	EHR_ASSERT_ERR(obj_store_head(ST, "f/x", &size), EHR_ERR_NOT_FOUND);
	EHR_ASSERT_OK(obj_store_list(ST, "", count_cb, &n));
	CU_ASSERT_EQUAL(n, 0);
	snprintf(tmp, sizeof(tmp), "rmdir %s/.tmp 2>/dev/null", ROOT); /* succeeds only if empty */
	CU_ASSERT_EQUAL(system(tmp), 0);
	snprintf(tmp, sizeof(tmp), "%s/.tmp", ROOT);
	CU_ASSERT_EQUAL(mkdir(tmp, 0700), 0);
}

/* A deterministic plaintext stream of any length: constant memory. */
struct gen {
	uint64_t left;
	uint64_t pos;
	EVP_MD_CTX *md;
};

static uint8_t gen_byte(uint64_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13);
}

static int gen_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct gen *g = ctx;
	size_t n = g->left < cap ? (size_t)g->left : cap;
	for (size_t i = 0; i < n; i++)
		buf[i] = gen_byte(g->pos + i);
	if (g->md)
		EVP_DigestUpdate(g->md, buf, n);
	g->pos += n;
	g->left -= n;
	*got = n;
	return 0;
}

struct check {
	uint64_t pos;
	bool ok;
};

static int check_write(void *ctx, const uint8_t *p, size_t n)
{
	struct check *c = ctx;
	for (size_t i = 0; i < n; i++)
		if (p[i] != gen_byte(c->pos + i))
			c->ok = false;
	c->pos += n;
	return 0;
}

static void round_trip(uint64_t n)
{
	struct cloud_record_meta m;
	struct gen g = { .left = n };
	struct check c = { .ok = true };
	uint64_t want_ct;

	memset(&m, 0, sizeof(m));
	EHR_ASSERT_OK(cloud_rid_new(m.rid));
	EHR_ASSERT_OK(cloud_record_put(ST, KEK, &m, gen_read, &g, 0));
	CU_ASSERT_EQUAL(m.plain_size, n);
	EHR_ASSERT_OK(cloud_ciphertext_size(&want_ct, n, CLOUD_SEG_DEFAULT));
	CU_ASSERT_EQUAL(m.ct_size, want_ct);
	CU_ASSERT_STRING_EQUAL(m.kid, cloud_kek_current(KEK));
	EHR_ASSERT_OK(cloud_record_get(ST, KEK, &m, check_write, &c));
	CU_ASSERT_EQUAL(c.pos, n);
	CU_ASSERT(c.ok);
}

static void test_record_sizes(void)
{
	round_trip(0);
	round_trip(1);
	round_trip(CLOUD_SEG_DEFAULT - 1);
	round_trip(CLOUD_SEG_DEFAULT);
	round_trip(CLOUD_SEG_DEFAULT + 1);
}

/* 64 MiB through put and get while the process's heap stays small. */
static void test_record_64mib(void)
{
	struct rusage before, after;
	getrusage(RUSAGE_SELF, &before);
	round_trip(64ull << 20);
	getrusage(RUSAGE_SELF, &after);
	/* ru_maxrss is in KiB: the peak may not grow by anything like 64 MiB */
	fprintf(stderr, "\n  64 MiB record: peak RSS grew by %ld KiB\n", after.ru_maxrss - before.ru_maxrss);
	CU_ASSERT(after.ru_maxrss - before.ru_maxrss < 16 * 1024);
}

static int file_path(char *out, size_t cap, const uint8_t rid[16])
{
	char key[128];
	GUARD(cloud_record_key(key, sizeof(key), rid));
	snprintf(out, cap, "%s/%s", ROOT, key);
	return 0;
}

static void test_record_tamper(void)
{
	struct cloud_record_meta m;
	struct gen g = { .left = 3 * CLOUD_SEG_DEFAULT + 100 };
	struct ehr_buf out = EHR_BUF_INIT(1 << 20), orig = EHR_BUF_INIT(1 << 20);
	char path[256];
	size_t seglen = CLOUD_SEG_DEFAULT + CLOUD_TAG_LEN;

	memset(&m, 0, sizeof(m));
	EHR_ASSERT_OK(cloud_rid_new(m.rid));
	EHR_ASSERT_OK(cloud_record_put(ST, KEK, &m, gen_read, &g, 0));
	EHR_ASSERT_OK(file_path(path, sizeof(path), m.rid));
	EHR_ASSERT_OK(ehr_file_read(&orig, path, 1 << 20));

	/* one byte flipped */
	orig.data[CLOUD_HDR_LEN + seglen + 5] ^= 1;
	EHR_ASSERT_OK(ehr_file_write_atomic(path, orig.data, orig.len, 0600, false));
	EHR_ASSERT_ERR(cloud_record_get(ST, KEK, &m, cloud_buf_write, &out), EHR_ERR_TAMPER);
	CU_ASSERT_EQUAL(out.len, 0); /* hash checked before any decryption */
	orig.data[CLOUD_HDR_LEN + seglen + 5] ^= 1;
	/* truncated */
	EHR_ASSERT_OK(ehr_file_write_atomic(path, orig.data, orig.len - seglen, 0600, false));
	EHR_ASSERT_ERR(cloud_record_get(ST, KEK, &m, cloud_buf_write, &out), EHR_ERR_TAMPER);
	CU_ASSERT_EQUAL(out.len, 0);
	/* longer than recorded */
	EHR_ASSERT_OK(ehr_buf_append(&orig, "x", 1));
	EHR_ASSERT_OK(ehr_file_write_atomic(path, orig.data, orig.len, 0600, false));
	EHR_ASSERT_ERR(cloud_record_get(ST, KEK, &m, cloud_buf_write, &out), EHR_ERR_TAMPER);
	CU_ASSERT_EQUAL(out.len, 0);
	orig.len--;
	/* restored: reads again */
	EHR_ASSERT_OK(ehr_file_write_atomic(path, orig.data, orig.len, 0600, false));
	EHR_ASSERT_OK(cloud_record_get(ST, KEK, &m, cloud_buf_write, &out));
	CU_ASSERT_EQUAL(out.len, 3 * CLOUD_SEG_DEFAULT + 100);
	ehr_buf_reset(&out);
	/* segments swapped AND the ledger hash forged to match: the tags still refuse */
	{
		uint8_t *tmp = malloc(seglen);
		uint8_t *s1 = orig.data + CLOUD_HDR_LEN, *s2 = s1 + seglen;
		struct cloud_record_meta forged = m;
		memcpy(tmp, s1, seglen);
		memcpy(s1, s2, seglen);
		memcpy(s2, tmp, seglen);
		free(tmp);
		SHA256(orig.data, orig.len, forged.ct_sha256);
		EHR_ASSERT_OK(ehr_file_write_atomic(path, orig.data, orig.len, 0600, false));
		EHR_ASSERT_ERR(cloud_record_get(ST, KEK, &forged, cloud_buf_write, &out), EHR_ERR_TAMPER);
		CU_ASSERT_EQUAL(out.len, 0);
	}
	/* the object deleted */
	EHR_ASSERT_OK(unlink(path) == 0 ? 0 : -1);
	EHR_ASSERT_ERR(cloud_record_get(ST, KEK, &m, cloud_buf_write, &out), EHR_ERR_NOT_FOUND);
	ehr_buf_free(&out);
	ehr_buf_free(&orig);
}

static void test_record_limit(void)
{
	struct cloud_record_meta m;
	struct gen g = { .left = 300000 };
	uint64_t size;
	char key[128];

	memset(&m, 0, sizeof(m));
	EHR_ASSERT_OK(cloud_rid_new(m.rid));
	EHR_ASSERT_ERR(cloud_record_put(ST, KEK, &m, gen_read, &g, 200000), EHR_ERR_TOO_LARGE);
	EHR_ASSERT_OK(cloud_record_key(key, sizeof(key), m.rid));
	EHR_ASSERT_ERR(obj_store_head(ST, key, &size), EHR_ERR_NOT_FOUND);
}

/* The stepwise reader: bounded pieces, done after the last; a forged ledger
 * hash over a corrupted object is still refused at open, before any read. */
struct pieces {
	uint64_t pos;
	size_t calls;
	size_t biggest;
	bool ok;
};
static int piece_write(void *ctx, const uint8_t *p, size_t n)
{
	struct pieces *pc = ctx;
	for (size_t i = 0; i < n; i++)
		if (p[i] != gen_byte(pc->pos + i))
			pc->ok = false;
	pc->pos += n;
	return 0;
}

/* A record of a few KiB is spooled in memory, not in a file: the same
 * refusals as a large one (flipped byte, short, long, forged hash). */
static void test_record_tamper_small(void)
{
	struct cloud_record_meta m, forged;
	struct gen g = { .left = 4000 };
	struct ehr_buf out = EHR_BUF_INIT(1 << 20), orig = EHR_BUF_INIT(1 << 20);
	char path[256];

	memset(&m, 0, sizeof(m));
	EHR_ASSERT_OK(cloud_rid_new(m.rid));
	EHR_ASSERT_OK(cloud_record_put(ST, KEK, &m, gen_read, &g, 0));
	EHR_ASSERT_OK(file_path(path, sizeof(path), m.rid));
	EHR_ASSERT_OK(ehr_file_read(&orig, path, 1 << 20));
	EHR_ASSERT_OK(cloud_record_get(ST, KEK, &m, cloud_buf_write, &out));
	CU_ASSERT_EQUAL(out.len, 4000);
	ehr_buf_reset(&out);
	/* one byte flipped */
	orig.data[CLOUD_HDR_LEN + 5] ^= 1;
	EHR_ASSERT_OK(ehr_file_write_atomic(path, orig.data, orig.len, 0600, false));
	EHR_ASSERT_ERR(cloud_record_get(ST, KEK, &m, cloud_buf_write, &out), EHR_ERR_TAMPER);
	CU_ASSERT_EQUAL(out.len, 0);
	/* ... and the ledger hash forged to match: the tag refuses */
	forged = m;
	SHA256(orig.data, orig.len, forged.ct_sha256);
	EHR_ASSERT_ERR(cloud_record_get(ST, KEK, &forged, cloud_buf_write, &out), EHR_ERR_TAMPER);
	CU_ASSERT_EQUAL(out.len, 0);
	orig.data[CLOUD_HDR_LEN + 5] ^= 1;
	/* truncated by one byte */
	EHR_ASSERT_OK(ehr_file_write_atomic(path, orig.data, orig.len - 1, 0600, false));
	EHR_ASSERT_ERR(cloud_record_get(ST, KEK, &m, cloud_buf_write, &out), EHR_ERR_TAMPER);
	CU_ASSERT_EQUAL(out.len, 0);
	/* longer than recorded */
	EHR_ASSERT_OK(ehr_buf_append(&orig, "x", 1));
	EHR_ASSERT_OK(ehr_file_write_atomic(path, orig.data, orig.len, 0600, false));
	EHR_ASSERT_ERR(cloud_record_get(ST, KEK, &m, cloud_buf_write, &out), EHR_ERR_TAMPER);
	CU_ASSERT_EQUAL(out.len, 0);
	orig.len--;
	/* restored: reads again, byte for byte */
	EHR_ASSERT_OK(ehr_file_write_atomic(path, orig.data, orig.len, 0600, false));
	EHR_ASSERT_OK(cloud_record_get(ST, KEK, &m, cloud_buf_write, &out));
	CU_ASSERT_EQUAL(out.len, 4000);
	for (size_t i = 0; i < out.len && i < 4000; i++)
		if (out.data[i] != gen_byte(i)) {
			CU_FAIL("plaintext differs");
			break;
		}
	ehr_buf_free(&out);
	ehr_buf_free(&orig);
}

static void test_record_reader(void)
{
	struct cloud_record_meta m;
	struct gen g = { .left = 10 * CLOUD_SEG_DEFAULT + 5 };
	struct cloud_record_reader *rr = NULL;
	struct pieces pc = { .ok = true };
	struct ehr_buf orig = EHR_BUF_INIT(1 << 22);
	bool done = false;
	char path[256];
	int rounds = 0;

	memset(&m, 0, sizeof(m));
	EHR_ASSERT_OK(cloud_rid_new(m.rid));
	EHR_ASSERT_OK(cloud_record_put(ST, KEK, &m, gen_read, &g, 0));
	EHR_ASSERT_OK(cloud_record_open(&rr, ST, KEK, &m));
	while (!done && rounds < 100) {
		uint64_t before = pc.pos;
		EHR_ASSERT_OK(cloud_record_read(rr, 3 * CLOUD_SEG_DEFAULT, piece_write, &pc, &done));
		/* at most the asked-for ciphertext plus one chunk's worth of segments */
		CU_ASSERT(pc.pos - before <= 5 * CLOUD_SEG_DEFAULT);
		rounds++;
	}
	CU_ASSERT(done);
	CU_ASSERT(rounds >= 3);
	CU_ASSERT_EQUAL(pc.pos, 10 * CLOUD_SEG_DEFAULT + 5);
	CU_ASSERT(pc.ok);
	cloud_record_close(rr);
	rr = NULL;

	/* corrupt one byte of the last segment and forge the ledger hash to match */
	EHR_ASSERT_OK(file_path(path, sizeof(path), m.rid));
	EHR_ASSERT_OK(ehr_file_read(&orig, path, 1 << 22));
	orig.data[orig.len - 3] ^= 1;
	EHR_ASSERT_OK(ehr_file_write_atomic(path, orig.data, orig.len, 0600, false));
	SHA256(orig.data, orig.len, m.ct_sha256);
	EHR_ASSERT_ERR(cloud_record_open(&rr, ST, KEK, &m), EHR_ERR_TAMPER);
	CU_ASSERT_PTR_NULL(rr);
	ehr_buf_free(&orig);
}

/* A size promise: exact sizes store (0 and 5 bytes); a reader that ends
 * early or runs long is EHR_ERR_INVAL and leaves nothing; a record of known
 * plaintext size promises its exact ciphertext size. */
static void test_sized_put(void)
{
	const struct {
		size_t give;
		int64_t promise;
		int want;
	} cases[] = { { 5, 5, 0 },
		      { 0, 0, 0 },
		      { 4, 5, EHR_ERR_INVAL },
		      { 6, 5, EHR_ERR_INVAL },
		      { 1, 0, EHR_ERR_INVAL },
		      { 0, 1, EHR_ERR_INVAL },
		      { 5, -1, 0 } };
	int n = 0;

	for (size_t i = 0; i < EHR_ARRAY_LEN(cases); i++) {
		struct cloud_mem_reader r = { (const uint8_t *)"hello!", cases[i].give, 0 };
		struct obj_info info;
		uint64_t size = 0;
		int rc = obj_store_put_sized(ST, "sized/x", cloud_mem_read, &r, cases[i].promise, &info);
		CU_ASSERT_EQUAL(rc, cases[i].want);
		if (cases[i].want == 0) {
			CU_ASSERT_EQUAL(info.size, cases[i].give);
			EHR_ASSERT_OK(obj_store_head(ST, "sized/x", &size));
			CU_ASSERT_EQUAL(size, cases[i].give);
			EHR_ASSERT_OK(obj_store_delete(ST, "sized/x"));
		} else {
			CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), "declared"));
			EHR_ASSERT_ERR(obj_store_head(ST, "sized/x", &size), EHR_ERR_NOT_FOUND);
		}
	}
	EHR_ASSERT_OK(obj_store_list(ST, "sized/", count_cb, &n));
	CU_ASSERT_EQUAL(n, 0);

	/* records */
	{
		const uint64_t sizes[] = { 0, 1, CLOUD_SEG_DEFAULT, 3 * CLOUD_SEG_DEFAULT + 17 };
		for (size_t i = 0; i < EHR_ARRAY_LEN(sizes); i++) {
			struct cloud_record_meta m;
			struct gen g = { .left = sizes[i] };
			uint64_t ct = 0;
			char key[128];
			memset(&m, 0, sizeof(m));
			EHR_ASSERT_OK(cloud_rid_new(m.rid));
			EHR_ASSERT_OK(
			        cloud_record_put_sized(ST, KEK, &m, gen_read, &g, 0, (int64_t)sizes[i]));
			EHR_ASSERT_OK(cloud_ciphertext_size(&ct, sizes[i], CLOUD_SEG_DEFAULT));
			CU_ASSERT_EQUAL(m.ct_size, ct);
			CU_ASSERT_EQUAL(m.plain_size, sizes[i]);
			EHR_ASSERT_OK(cloud_record_key(key, sizeof(key), m.rid));
			EHR_ASSERT_OK(obj_store_delete(ST, key));
		}
		/* one byte short, one byte long, and over max_plain */
		const struct {
			uint64_t give;
			int64_t promise;
			uint64_t max;
			int want;
		} bad[] = { { 99999, 100000, 0, EHR_ERR_INVAL },
			    { 100001, 100000, 0, EHR_ERR_INVAL },
			    { 10, 100000, 1000, EHR_ERR_TOO_LARGE } };
		for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++) {
			struct cloud_record_meta m;
			struct gen g = { .left = bad[i].give };
			uint64_t size;
			char key[128];
			memset(&m, 0, sizeof(m));
			EHR_ASSERT_OK(cloud_rid_new(m.rid));
			EHR_ASSERT_ERR(
			        cloud_record_put_sized(ST, KEK, &m, gen_read, &g, bad[i].max, bad[i].promise),
			        bad[i].want);
			EHR_ASSERT_OK(cloud_record_key(key, sizeof(key), m.rid));
			EHR_ASSERT_ERR(obj_store_head(ST, key, &size), EHR_ERR_NOT_FOUND);
		}
	}
}

static void reg(void)
{
	EHR_ADD_SUITE("fs_store", setup, teardown, { "objects", test_objects },
	              { "failed put", test_failed_put }, { "record sizes", test_record_sizes },
	              { "record 64 MiB", test_record_64mib }, { "record tamper", test_record_tamper },
	              { "record tamper small", test_record_tamper_small },
	              { "record limit", test_record_limit }, { "record reader", test_record_reader },
	              { "sized put", test_sized_put });
}

EHR_TEST_MAIN(reg)
