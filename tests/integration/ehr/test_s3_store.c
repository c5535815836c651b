/*
 * test_s3_store.c - the S3 backend against the real s3rver, every request
 * through the SigV4-verifying front (EHRGATE_TEST_S3), so a signing bug
 * fails here. Faults come from a real proxy (faultproxy.c) in front of the
 * front, or from a closed port.
 *
 * The "s3_https" suite talks to the same front over HTTPS
 * (EHRGATE_TEST_S3_HTTPS, a certificate for 127.0.0.1 and localhost from the
 * dev services' private CA, EHRGATE_TEST_S3_CA): with that CA as s3_ca_file
 * everything works; with the system store, another CA, a CA impersonating the
 * test CA's name, a missing CA file, or a host name the certificate does not
 * carry, every call is refused at once with a TLS verification error, tried
 * exactly once (counted by a TCP relay), and nothing is written. A handshake
 * cut by the network is still retried.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cloud/cloud_internal.h"
#include "faultproxy.h"
#include "tests/harness/harness.h"

static struct cloud_kek *KEK;
static char KDIR[64];

static void base_cfg(struct obj_store_config *c)
{
	memset(c, 0, sizeof(*c));
	c->backend = OBJ_BACKEND_S3;
	c->s3_endpoint = ehr_test_env("EHRGATE_TEST_S3");
	c->s3_bucket = ehr_test_env("EHRGATE_TEST_S3_BUCKET");
	c->s3_region = ehr_test_env("EHRGATE_TEST_S3_REGION");
	c->s3_access_key = ehr_test_env("EHRGATE_TEST_S3_ACCESS_KEY");
	c->s3_secret_key = ehr_test_env("EHRGATE_TEST_S3_SECRET_KEY");
	c->s3_part_size = OBJ_S3_MIN_PART;
}

static int open_store(struct obj_store **st, const struct obj_store_config *c)
{
	return obj_store_open(st, c);
}

static int setup(void)
{
	char kid[CLOUD_KID_MAX];
	if (!ehr_test_env("EHRGATE_TEST_S3") || !ehr_test_env("EHRGATE_TEST_S3_BUCKET")) {
		fprintf(stderr, "EHRGATE_TEST_S3* not set: run deploy/devservices.sh start and source "
		                "services.env\n");
		return -1;
	}
	snprintf(KDIR, sizeof(KDIR), "/tmp/ehr-s3kek-XXXXXX");
	if (mkdtemp(KDIR) == NULL || cloud_kek_generate(KDIR, kid) < 0 ||
	    cloud_kek_set_current(KDIR, kid) < 0 || cloud_kek_load(&KEK, KDIR) < 0)
		return -1;
	return 0;
}

static int teardown(void)
{
	char cmd[128];
	cloud_kek_free(KEK);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", KDIR);
	return system(cmd) == 0 ? 0 : -1;
}

struct keys {
	int n;
	char last[256];
};

static int list_cb(void *ctx, const char *key, uint64_t size)
{
	struct keys *k = ctx;
	(void)size;
	k->n++;
	snprintf(k->last, sizeof(k->last), "%s", key);
	return 0;
}

/* put/head/get/list/delete of a small object, and the not-found answers after. */
static void objects_round_trip(const struct obj_store_config *c)
{
	struct obj_store *st = NULL;
	char prefix[64], key[128];
	uint8_t rnd[8];
	struct cloud_mem_reader r = { (const uint8_t *)"hello s3", 8, 0 };
	struct ehr_buf out = EHR_BUF_INIT(1024);
	struct obj_info info;
	struct keys k = { 0 };
	uint64_t size = 0;
	uint8_t want[32];

	EHR_ASSERT_OK(open_store(&st, c));
	CU_ASSERT_FATAL(st != NULL);
	EHR_ASSERT_OK(obj_store_ping(st));
	RAND_bytes(rnd, sizeof(rnd));
	snprintf(prefix, sizeof(prefix), "t-%02x%02x%02x%02x/", rnd[0], rnd[1], rnd[2], rnd[3]);
	snprintf(key, sizeof(key), "%sa/one", prefix);
	EHR_ASSERT_OK(obj_store_put(st, key, cloud_mem_read, &r, &info));
	SHA256((const uint8_t *)"hello s3", 8, want);
	CU_ASSERT(memcmp(info.sha256, want, 32) == 0); /* not secret */
	EHR_ASSERT_OK(obj_store_head(st, key, &size));
	CU_ASSERT_EQUAL(size, 8);
	EHR_ASSERT_OK(obj_store_get(st, key, cloud_buf_write, &out, &info));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&out), "hello s3");
	EHR_ASSERT_OK(obj_store_list(st, prefix, list_cb, &k));
	CU_ASSERT_EQUAL(k.n, 1);
	CU_ASSERT_STRING_EQUAL(k.last, key);
	EHR_ASSERT_OK(obj_store_delete(st, key));
	EHR_ASSERT_OK(obj_store_delete(st, key));
	EHR_ASSERT_ERR(obj_store_head(st, key, &size), EHR_ERR_NOT_FOUND);
	ehr_buf_reset(&out);
	EHR_ASSERT_ERR(obj_store_get(st, key, cloud_buf_write, &out, NULL), EHR_ERR_NOT_FOUND);
	CU_ASSERT_EQUAL(out.len, 0);
	k.n = 0;
	EHR_ASSERT_OK(obj_store_list(st, prefix, list_cb, &k));
	CU_ASSERT_EQUAL(k.n, 0);
	obj_store_free(st);
	ehr_buf_free(&out);
}

static void test_objects(void)
{
	struct obj_store_config c;

	base_cfg(&c);
	objects_round_trip(&c);
}

/* Deterministic plaintext of any size, checked on the way out. */
struct gen {
	uint64_t left, pos;
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

static void record_round_trip(struct obj_store *st, uint64_t n)
{
	struct cloud_record_meta m;
	struct gen g = { .left = n };
	struct check ck = { .ok = true };
	char key[128];

	memset(&m, 0, sizeof(m));
	EHR_ASSERT_OK(cloud_rid_new(m.rid));
	EHR_ASSERT_OK(cloud_record_put(st, KEK, &m, gen_read, &g, 0));
	CU_ASSERT_EQUAL(m.plain_size, n);
	EHR_ASSERT_OK(cloud_record_get(st, KEK, &m, check_write, &ck));
	CU_ASSERT_EQUAL(ck.pos, n);
	CU_ASSERT(ck.ok);
	EHR_ASSERT_OK(cloud_record_key(key, sizeof(key), m.rid));
	EHR_ASSERT_OK(obj_store_delete(st, key));
}

static void test_record_sizes(void)
{
	struct obj_store_config c;
	struct obj_store *st = NULL;

	base_cfg(&c);
	EHR_ASSERT_OK(open_store(&st, &c));
	record_round_trip(st, 0);
	record_round_trip(st, 1);
	record_round_trip(st, CLOUD_SEG_DEFAULT - 1);
	record_round_trip(st, CLOUD_SEG_DEFAULT);
	record_round_trip(st, CLOUD_SEG_DEFAULT + 1);
	/* exactly one part, one part + 1 byte (multipart, 2 parts) */
	record_round_trip(st, OBJ_S3_MIN_PART - CLOUD_HDR_LEN - 80 * CLOUD_TAG_LEN);
	record_round_trip(st, OBJ_S3_MIN_PART + 1);
	obj_store_free(st);
}

static void test_record_64mib(void)
{
	struct obj_store_config c;
	struct obj_store *st = NULL;

	base_cfg(&c);
	c.s3_part_size = OBJ_S3_DEFAULT_PART;
	EHR_ASSERT_OK(open_store(&st, &c));
	record_round_trip(st, 64ull << 20);
	obj_store_free(st);
}

/* Virtual-hosted addressing: <bucket>.s3.amazonaws.com pinned to the loopback
 * front with a curl --resolve entry (no name lookup, no traffic leaves). */
static void test_virtual_host(void)
{
	struct obj_store_config c;
	struct obj_store *st = NULL;
	char ep[128], resolve[192];
	uint16_t port = fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3"));

	base_cfg(&c);
	snprintf(ep, sizeof(ep), "http://s3.amazonaws.com:%u", port);
	snprintf(resolve, sizeof(resolve), "%s.s3.amazonaws.com:%u:127.0.0.1", c.s3_bucket, port);
	c.s3_endpoint = ep;
	c.s3_resolve = resolve;
	c.s3_virtual_host = true;
	EHR_ASSERT_OK(open_store(&st, &c));
	EHR_ASSERT_OK(obj_store_ping(st));
	record_round_trip(st, 1000);
	record_round_trip(st, 2 * OBJ_S3_MIN_PART + 7); /* multipart in vhost style */
	obj_store_free(st);
}

/* The front checks signatures: a wrong secret or region is refused, and
 * nothing is stored. */
static void test_bad_credentials(void)
{
	struct obj_store_config c, good;
	struct obj_store *st = NULL, *gst = NULL;
	struct cloud_mem_reader r = { (const uint8_t *)"x", 1, 0 };
	uint64_t size;

	base_cfg(&good);
	EHR_ASSERT_OK(open_store(&gst, &good));
	base_cfg(&c);
	c.s3_secret_key = "not-the-secret";
	EHR_ASSERT_OK(open_store(&st, &c));
	EHR_ASSERT_ERR(obj_store_put(st, "badcred/x", cloud_mem_read, &r, NULL), EHR_ERR_AUTH);
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), "403"));
	EHR_ASSERT_ERR(obj_store_ping(st), EHR_ERR_AUTH);
	EHR_ASSERT_ERR(obj_store_head(gst, "badcred/x", &size), EHR_ERR_NOT_FOUND);
	obj_store_free(st);
	base_cfg(&c);
	c.s3_region = "eu-west-3";
	EHR_ASSERT_OK(open_store(&st, &c));
	r.off = 0;
	EHR_ASSERT_ERR(obj_store_put(st, "badcred/y", cloud_mem_read, &r, NULL), EHR_ERR_AUTH);
	EHR_ASSERT_ERR(obj_store_head(gst, "badcred/y", &size), EHR_ERR_NOT_FOUND);
	obj_store_free(st);
	obj_store_free(gst);
}

/* S3 unreachable: a closed loopback port. UNAVAILABLE after the retries. */
static void test_unreachable(void)
{
	struct obj_store_config c;
	struct obj_store *st = NULL;
	struct cloud_mem_reader r = { (const uint8_t *)"x", 1, 0 };
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	char ep[64];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int64_t t0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	getsockname(fd, (struct sockaddr *)&a, &al);
	close(fd); /* the port is now closed: connections are refused */
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%u", ntohs(a.sin_port));
	base_cfg(&c);
	c.s3_endpoint = ep;
	EHR_ASSERT_OK(open_store(&st, &c));
	t0 = ehr_monotonic_ms();
	EHR_ASSERT_ERR(obj_store_put(st, "down/x", cloud_mem_read, &r, NULL), EHR_ERR_UNAVAILABLE);
	EHR_ASSERT_ERR(obj_store_ping(st), EHR_ERR_UNAVAILABLE);
	fprintf(stderr, "\n  unreachable S3 answered in %lld ms (with retries)\n",
	        (long long)(ehr_monotonic_ms() - t0));
	obj_store_free(st);
}

/*
 * Exactly one AbortMultipartUpload reached S3 through the verifying front.
 * s3rver 3.7.1 does not implement AbortMultipartUpload and answers 405
 * MethodNotAllowed - which it can only do after the front accepted the
 * signature (a bad one is 403). AWS, MinIO and Ceph answer 204.
 */
#define ASSERT_ABORT_SENT(fp)                                                    \
	do {                                                                     \
		CU_ASSERT_EQUAL((fp).aborts_seen, 1);                            \
		CU_ASSERT((fp).abort_status == 204 || (fp).abort_status == 405); \
	} while (0)

/* S3 failing in the middle of a multipart upload: parts from #3 on get 500.
 * The put fails UNAVAILABLE, AbortMultipartUpload reaches S3 and is
 * accepted, and no object exists. */
static void test_multipart_failure_aborts(void)
{
	struct fault_proxy fp;
	struct obj_store_config c, good;
	struct obj_store *st = NULL, *gst = NULL;
	struct cloud_record_meta m;
	struct gen g = { .left = 4 * OBJ_S3_MIN_PART };
	char ep[64], key[128];
	uint64_t size;

	CU_ASSERT_FATAL(fault_proxy_start(&fp, fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3"))) == 0);
	fp.fail_part_from = 3;
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%u", fp.port);
	base_cfg(&c);
	c.s3_endpoint = ep;
	base_cfg(&good);
	EHR_ASSERT_OK(open_store(&st, &c));
	EHR_ASSERT_OK(open_store(&gst, &good));
	memset(&m, 0, sizeof(m));
	EHR_ASSERT_OK(cloud_rid_new(m.rid));
	EHR_ASSERT_ERR(cloud_record_put(st, KEK, &m, gen_read, &g, 0), EHR_ERR_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), "aborted"));
	CU_ASSERT_EQUAL(fp.parts_ok, 2);
	CU_ASSERT_EQUAL(fp.parts_failed, 4); /* part 3, tried max_attempts = 4 times */
	ASSERT_ABORT_SENT(fp);
	CU_ASSERT_EQUAL(fp.completes_ok, 0);
	EHR_ASSERT_OK(cloud_record_key(key, sizeof(key), m.rid));
	EHR_ASSERT_ERR(obj_store_head(gst, key, &size), EHR_ERR_NOT_FOUND);
	obj_store_free(st);
	obj_store_free(gst);
	fault_proxy_stop(&fp);
}

/* Wait (up to 30 s) until the proxy holds part `held` in flight (0: don't
 * wait for that), has seen UploadPart number `seen` arrive (0: don't) and
 * has failed `failed` UploadParts (0: don't). false on the timeout. */
static bool proxy_wait(struct fault_proxy *fp, unsigned held, unsigned seen, unsigned failed)
{
	for (int ms = 0; ms < 30000; ms += 2) {
		if ((held == 0 || (fault_proxy_holding(fp) && fault_proxy_part_max_seen(fp) == held)) &&
		    (seen == 0 || fault_proxy_part_max_seen(fp) >= seen) &&
		    (failed == 0 || fault_proxy_parts_failed(fp) >= failed))
			return true;
		usleep(2 * 1000);
	}
	return false;
}

/* The caller's stream failing mid-upload (a client that went away) aborts too. */
struct failing {
	struct gen g;
	uint64_t fail_at;
	struct fault_proxy *fp; /* if set: fail only once UploadPart #wait_part arrived */
	unsigned wait_part;
};
static int failing_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct failing *f = ctx;
	if (f->g.pos >= f->fail_at) {
		if (f->fp && !proxy_wait(f->fp, 0, f->wait_part, 0))
			return ehr_error_set(EHR_ERR_TIMEOUT, "UploadPart %u never arrived", f->wait_part);
		return ehr_error_set(EHR_ERR_IO, "client went away");
	}
	if (cap > f->fail_at - f->g.pos)
		cap = (size_t)(f->fail_at - f->g.pos);
	return gen_read(&f->g, buf, cap, got);
}

/* Parts are uploaded while the next one is filled, so the reader fails in
 * part 3 while part 2 may still be waiting to go: it waits until part 2 has
 * reached S3, which then finishes before the abort (a part that had not
 * started when the error came would not be sent at all). */
static void test_reader_failure_aborts(void)
{
	struct fault_proxy fp;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	struct failing f = { .g = { .left = 10 * OBJ_S3_MIN_PART },
		             .fail_at = 2 * OBJ_S3_MIN_PART + 12345,
		             .fp = &fp,
		             .wait_part = 2 };
	char ep[64];

	CU_ASSERT_FATAL(fault_proxy_start(&fp, fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3"))) == 0);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%u", fp.port);
	base_cfg(&c);
	c.s3_endpoint = ep;
	EHR_ASSERT_OK(open_store(&st, &c));
	EHR_ASSERT_ERR(obj_store_put(st, "readerfail/x", failing_read, &f, NULL), EHR_ERR_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), "client went away"));
	CU_ASSERT_EQUAL(fp.parts_ok, 2);
	CU_ASSERT_EQUAL(fp.part_max_seen, 2);
	ASSERT_ABORT_SENT(fp);
	CU_ASSERT_EQUAL(fp.completes_ok, 0);
	obj_store_free(st);
	fault_proxy_stop(&fp);
}

/* ------------------------------------------------- multipart pipeline */

/* An HTTP body arrives in pieces: odd-sized reads, so a part is filled from
 * many calls. */
static int chunky_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	return gen_read(ctx, buf, cap > 65521 ? 65521 : cap, got);
}

static int count_cb(void *ctx, const char *key, uint64_t size)
{
	(void)key;
	(void)size;
	(*(int *)ctx)++;
	return 0;
}

static void random_prefix(char *out, size_t n, const char *what)
{
	uint8_t rnd[4];
	RAND_bytes(rnd, sizeof(rnd));
	snprintf(out, n, "%s-%02x%02x%02x%02x/", what, rnd[0], rnd[1], rnd[2], rnd[3]);
}

/* Put `size` generated bytes, then head and get them back byte-exact, and
 * delete. Returns false (and says why on stderr) on any difference. */
static bool object_round_trip(struct obj_store *st, const char *key, uint64_t size)
{
	struct gen g = { .left = size };
	struct check ck = { .ok = true };
	struct obj_info in, out;
	uint64_t hsize = 0;
	int rc;

	if ((rc = obj_store_put(st, key, chunky_read, &g, &in)) < 0 ||
	    (rc = obj_store_head(st, key, &hsize)) < 0 ||
	    (rc = obj_store_get(st, key, check_write, &ck, &out)) < 0 ||
	    (rc = obj_store_delete(st, key)) < 0) {
		fprintf(stderr, "\n  %s (%llu bytes): %d %s\n", key, (unsigned long long)size, rc,
		        ehr_error_msg());
		return false;
	}
	if (in.size != size || hsize != size || out.size != size || ck.pos != size || !ck.ok ||
	    memcmp(in.sha256, out.sha256, 32) != 0) { /* not secret */
		fprintf(stderr, "\n  %s: put %llu, head %llu, got %llu bytes, bytes %s\n", key,
		        (unsigned long long)in.size, (unsigned long long)hsize, (unsigned long long)ck.pos,
		        ck.ok ? "equal" : "differ");
		return false;
	}
	return true;
}

/* Objects of 0 to 3 parts, through the proxy that counts the parts: each
 * round-trips byte-exact, in the expected number of parts, completed once. */
static void test_multipart_part_counts(void)
{
	const uint64_t P = OBJ_S3_MIN_PART;
	const struct {
		uint64_t size;
		unsigned parts; /* 0: a single PutObject */
	} cases[] = {
		{ P - 1, 0 },
		{ P, 1 }, /* a full first part: the end is only seen by the next, empty, read */
		{ P + 1, 2 },
		{ 2 * P, 2 }, /* on a part boundary: the third fill is empty, nothing sent for it */
		{ 2 * P + 7, 3 },
		{ 3 * P - 1, 3 },
	};
	struct fault_proxy fp;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	char ep[64], prefix[64], key[128];

	CU_ASSERT_FATAL(fault_proxy_start(&fp, fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3"))) == 0);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%u", fp.port);
	base_cfg(&c);
	c.s3_endpoint = ep;
	EHR_ASSERT_OK(open_store(&st, &c));
	random_prefix(prefix, sizeof(prefix), "parts");
	for (size_t i = 0; i < EHR_ARRAY_LEN(cases); i++) {
		unsigned ok0 = fault_proxy_parts_ok(&fp), done0 = fp.completes_ok;
		snprintf(key, sizeof(key), "%sobj%zu", prefix, i);
		CU_ASSERT(object_round_trip(st, key, cases[i].size));
		if (fault_proxy_parts_ok(&fp) - ok0 != cases[i].parts)
			fprintf(stderr, "\n  %llu bytes: %u parts, want %u\n",
			        (unsigned long long)cases[i].size, fault_proxy_parts_ok(&fp) - ok0,
			        cases[i].parts);
		CU_ASSERT_EQUAL(fault_proxy_parts_ok(&fp) - ok0, cases[i].parts);
		CU_ASSERT_EQUAL(fp.completes_ok - done0, cases[i].parts ? 1 : 0);
	}
	CU_ASSERT_EQUAL(fp.parts_failed, 0);
	CU_ASSERT_EQUAL(fp.aborts_seen, 0);
	CU_ASSERT_EQUAL(fp.part_max_seen, 3);
	obj_store_free(st);
	fault_proxy_stop(&fp);
}

/*
 * A reader that stops once at byte `at` (a part boundary: the start of a
 * fill), waits there for the proxy to hold part `in_flight` (0: don't), then
 * for `failed` failed UploadParts (0: don't), and then fails (`fail`) or
 * goes on. It notes what it saw, and any call after its error.
 */
struct staged {
	struct gen g;
	struct fault_proxy *fp;
	uint64_t at;
	unsigned in_flight;
	unsigned failed;
	bool fail;
	/* observations */
	bool stopped;
	bool saw_in_flight;
	bool saw_failed;
	unsigned parts_ok_then;
	bool errored;
	unsigned calls_after_error;
};

static int staged_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct staged *r = ctx;

	if (r->errored) {
		r->calls_after_error++;
		return ehr_error_set(EHR_ERR_IO, "read after the reader's error");
	}
	if (!r->stopped && r->g.pos == r->at) {
		r->stopped = true;
		r->saw_in_flight = r->in_flight == 0 || proxy_wait(r->fp, r->in_flight, 0, 0);
		r->parts_ok_then = fault_proxy_parts_ok(r->fp);
		r->saw_failed = r->failed == 0 || proxy_wait(r->fp, 0, 0, r->failed);
		if (r->fail) {
			r->errored = true;
			return ehr_error_set(EHR_ERR_IO, "client went away");
		}
	}
	if (!r->stopped && cap > r->at - r->g.pos)
		cap = (size_t)(r->at - r->g.pos);
	return chunky_read(&r->g, buf, cap, got);
}

/* Nothing under prefix, and key not found: the bucket as a client sees it. */
static void assert_nothing_stored(const char *prefix, const char *key)
{
	struct obj_store_config c;
	struct obj_store *st = NULL;
	uint64_t size = 0;
	int n = 0;

	base_cfg(&c);
	EHR_ASSERT_OK(open_store(&st, &c));
	EHR_ASSERT_ERR(obj_store_head(st, key, &size), EHR_ERR_NOT_FOUND);
	EHR_ASSERT_OK(obj_store_list(st, prefix, count_cb, &n));
	CU_ASSERT_EQUAL(n, 0);
	obj_store_free(st);
}

static void pipeline_proxy(struct fault_proxy *fp, struct obj_store_config *c, char *ep, size_t epn)
{
	CU_ASSERT_FATAL(fault_proxy_start(fp, fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3"))) == 0);
	snprintf(ep, epn, "http://127.0.0.1:%u", fp->port);
	base_cfg(c);
	c->s3_endpoint = ep;
}

/*
 * Part 2 fails (500 on every try) while part 3 is being filled: the reader
 * finds part 2 in flight when it starts on part 3 (the overlap), and waits
 * there until part 2 has failed for good. Part 3 is then filled but never
 * sent, the reader is not read past it, the upload is aborted with part 2's
 * error, and nothing is left in the bucket.
 */
static void test_part_fails_while_next_fills(void)
{
	const uint64_t P = OBJ_S3_MIN_PART;
	struct fault_proxy fp;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	struct staged r = { .g = { .left = 5 * P }, .fp = &fp, .at = 2 * P, .in_flight = 2, .failed = 3 };
	char ep[64], prefix[64], key[128];

	pipeline_proxy(&fp, &c, ep, sizeof(ep));
	c.s3_max_attempts = 3;
	fp.fail_part_from = 2;
	fp.hold_part = 2;
	fp.hold_ms = 150;
	EHR_ASSERT_OK(open_store(&st, &c));
	random_prefix(prefix, sizeof(prefix), "p2fail");
	snprintf(key, sizeof(key), "%sobj", prefix);
	EHR_ASSERT_ERR(obj_store_put(st, key, staged_read, &r, NULL), EHR_ERR_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), "HTTP 500"));
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), "aborted"));
	CU_ASSERT(r.saw_in_flight); /* part 2 went up while part 3 was being filled */
	CU_ASSERT(r.saw_failed);
	CU_ASSERT_EQUAL(r.parts_ok_then, 1);
	CU_ASSERT_EQUAL(r.g.pos, 3 * P); /* part 3 filled, nothing read after it */
	CU_ASSERT_EQUAL(fp.parts_ok, 1);
	CU_ASSERT_EQUAL(fp.parts_failed, 3);  /* part 2, every try */
	CU_ASSERT_EQUAL(fp.part_max_seen, 2); /* part 3 never sent */
	ASSERT_ABORT_SENT(fp);
	CU_ASSERT_EQUAL(fp.completes_ok, 0);
	obj_store_free(st);
	fault_proxy_stop(&fp);
	assert_nothing_stored(prefix, key);
}

/*
 * The reader fails (the client went away) while part 1 is on the wire: part
 * 1 is held by the proxy when the reader gets to part 2 (the overlap). The
 * put returns the reader's error; part 1 finishes before the abort, part 2
 * is never sent, the reader is not called again, and nothing is stored.
 */
static void test_reader_fails_while_part_uploads(void)
{
	const uint64_t P = OBJ_S3_MIN_PART;
	struct fault_proxy fp;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	struct staged r = { .g = { .left = 4 * P }, .fp = &fp, .at = P, .in_flight = 1, .fail = true };
	char ep[64], prefix[64], key[128];

	pipeline_proxy(&fp, &c, ep, sizeof(ep));
	fp.hold_part = 1;
	fp.hold_ms = 300;
	EHR_ASSERT_OK(open_store(&st, &c));
	random_prefix(prefix, sizeof(prefix), "rfail");
	snprintf(key, sizeof(key), "%sobj", prefix);
	EHR_ASSERT_ERR(obj_store_put(st, key, staged_read, &r, NULL), EHR_ERR_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), "client went away"));
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), "aborted"));
	CU_ASSERT(r.saw_in_flight);
	CU_ASSERT_EQUAL(r.parts_ok_then, 0); /* part 1 was not done when the reader failed */
	CU_ASSERT_EQUAL(r.calls_after_error, 0);
	CU_ASSERT_EQUAL(fp.parts_ok, 1); /* the part in flight finished, before the abort */
	CU_ASSERT_EQUAL(fp.parts_failed, 0);
	CU_ASSERT_EQUAL(fp.part_max_seen, 1);
	ASSERT_ABORT_SENT(fp);
	CU_ASSERT_EQUAL(fp.completes_ok, 0);
	obj_store_free(st);
	fault_proxy_stop(&fp);
	assert_nothing_stored(prefix, key);
}

/*
 * The first error is kept and ends the retries: the reader fails while part
 * 1's first try is in flight, and that try then gets a 500. The put returns
 * the reader's error (the first), and part 1 is not tried again although 4
 * attempts are allowed.
 */
static void test_reader_error_stops_part_retries(void)
{
	const uint64_t P = OBJ_S3_MIN_PART;
	struct fault_proxy fp;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	struct staged r = { .g = { .left = 3 * P }, .fp = &fp, .at = P, .in_flight = 1, .fail = true };
	char ep[64], prefix[64], key[128];

	pipeline_proxy(&fp, &c, ep, sizeof(ep));
	c.s3_max_attempts = 4;
	fp.fail_part_from = 1;
	fp.hold_part = 1;
	fp.hold_ms = 200;
	EHR_ASSERT_OK(open_store(&st, &c));
	random_prefix(prefix, sizeof(prefix), "rfirst");
	snprintf(key, sizeof(key), "%sobj", prefix);
	EHR_ASSERT_ERR(obj_store_put(st, key, staged_read, &r, NULL), EHR_ERR_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), "client went away"));
	CU_ASSERT_PTR_NULL(strstr(ehr_error_msg(), "HTTP 500"));
	CU_ASSERT(r.saw_in_flight);
	CU_ASSERT_EQUAL(fp.parts_failed, 1);
	CU_ASSERT_EQUAL(fp.parts_ok, 0);
	CU_ASSERT_EQUAL(fp.part_max_seen, 1);
	ASSERT_ABORT_SENT(fp);
	CU_ASSERT_EQUAL(fp.completes_ok, 0);
	obj_store_free(st);
	fault_proxy_stop(&fp);
	assert_nothing_stored(prefix, key);
}

/* Several threads upload through one store at once (shared handle pool and
 * spare part buffers, an uploader thread each): every object round-trips. */
#define CONC_THREADS 4
#define CONC_OBJECTS 3
struct conc {
	struct obj_store *st;
	const char *prefix;
	int id;
	int ok; /* objects that round-tripped */
};

static void *conc_main(void *arg)
{
	struct conc *w = arg;
	const uint64_t P = OBJ_S3_MIN_PART;
	const uint64_t sizes[CONC_OBJECTS] = { 2 * P + 1000 * (uint64_t)w->id + 1, 3 * P - (uint64_t)w->id,
		                               P + 12345 };
	char key[128];

	for (int i = 0; i < CONC_OBJECTS; i++) {
		snprintf(key, sizeof(key), "%st%d-%d", w->prefix, w->id, i);
		if (object_round_trip(w->st, key, sizes[i]))
			w->ok++;
	}
	return NULL;
}

static void test_concurrent_multipart(void)
{
	struct obj_store_config c;
	struct obj_store *st = NULL;
	struct conc w[CONC_THREADS];
	pthread_t th[CONC_THREADS];
	char prefix[64];
	int n = 0;

	base_cfg(&c);
	EHR_ASSERT_OK(open_store(&st, &c));
	random_prefix(prefix, sizeof(prefix), "conc");
	/* Keys without a '/': s3rver 3.7's DeleteObject removes emptied parent
	 * directories with a readdirSync that throws when another delete has
	 * just removed the same directory, and the unhandled error kills
	 * s3rver (seen in CI: every later request 503). No shared directory,
	 * no race; S3 itself has no directories. */
	prefix[strlen(prefix) - 1] = '-';
	for (int i = 0; i < CONC_THREADS; i++) {
		w[i] = (struct conc){ .st = st, .prefix = prefix, .id = i };
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, conc_main, &w[i]) == 0);
	}
	for (int i = 0; i < CONC_THREADS; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(w[i].ok, CONC_OBJECTS);
	}
	EHR_ASSERT_OK(obj_store_list(st, prefix, count_cb, &n));
	CU_ASSERT_EQUAL(n, 0);
	obj_store_free(st);
}

/* Transient 500s are retried: every request fails until the proxy heals. */
static void test_retry_then_success(void)
{
	struct fault_proxy fp;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	char ep[64];

	CU_ASSERT_FATAL(fault_proxy_start(&fp, fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3"))) == 0);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%u", fp.port);
	base_cfg(&c);
	c.s3_endpoint = ep;
	c.s3_max_attempts = 6;
	EHR_ASSERT_OK(open_store(&st, &c));
	/* part 1 fails until attempt 3: fail parts >= 1, then heal from a helper
	 * thread is overkill; instead fail everything and heal between calls */
	fp.fail_all = true;
	EHR_ASSERT_ERR(obj_store_ping(st), EHR_ERR_UNAVAILABLE);
	CU_ASSERT_EQUAL(fp.requests, 6);
	fp.fail_all = false;
	EHR_ASSERT_OK(obj_store_ping(st));
	obj_store_free(st);
	fault_proxy_stop(&fp);
}

/* ------------------------------------------------------------ https */

/* ------------------------------------------------- sized puts: one PUT */

/* A reader yielding `give` generated bytes for a put that promises another
 * number, or failing after `fail_at` bytes (0: never). */
struct sized_src {
	struct gen g;
	uint64_t fail_at;
};
static int sized_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct sized_src *r = ctx;
	if (r->fail_at && r->g.pos >= r->fail_at)
		return ehr_error_set(EHR_ERR_IO, "client went away");
	if (r->fail_at && cap > r->fail_at - r->g.pos)
		cap = (size_t)(r->fail_at - r->g.pos);
	return chunky_read(&r->g, buf, cap, got);
}

static void sized_proxy(struct fault_proxy *fp, struct obj_store_config *c, char *ep, size_t epn)
{
	pipeline_proxy(fp, c, ep, epn);
	c->s3_single_put_max = OBJ_S3_SINGLE_PUT_MAX;
}

/* Sized put of `size` bytes through the proxy: ONE PutObject (no
 * CreateMultipartUpload), then head/get byte-exact, delete. */
static void sized_round_trip(struct fault_proxy *fp, struct obj_store *st, const char *key, uint64_t size)
{
	struct sized_src r = { .g = { .left = size } };
	struct check ck = { .ok = true };
	struct obj_info in, out;
	uint64_t hsize = 0;
	unsigned puts = fp->puts, creates = fp->creates, reqs = fp->requests;

	EHR_ASSERT_OK(obj_store_put_sized(st, key, sized_read, &r, (int64_t)size, &in));
	CU_ASSERT_EQUAL(fp->puts - puts, 1);
	CU_ASSERT_EQUAL(fp->creates - creates, 0);
	CU_ASSERT_EQUAL(fp->requests - reqs, 1);
	CU_ASSERT_EQUAL(in.size, size);
	EHR_ASSERT_OK(obj_store_head(st, key, &hsize));
	CU_ASSERT_EQUAL(hsize, size);
	EHR_ASSERT_OK(obj_store_get(st, key, check_write, &ck, &out));
	CU_ASSERT_EQUAL(ck.pos, size);
	CU_ASSERT(ck.ok);
	CU_ASSERT(memcmp(in.sha256, out.sha256, 32) == 0); /* not secret */
	EHR_ASSERT_OK(obj_store_delete(st, key));
}

/* Known sizes of 0, 1 byte, exactly one part, one part + 1 and 64 MiB: each
 * is one PutObject through the verifying front (which checks the
 * UNSIGNED-PAYLOAD signature) and round-trips byte-exact. */
static void test_sized_put_one_request(void)
{
	const uint64_t sizes[] = { 0, 1, OBJ_S3_MIN_PART, OBJ_S3_MIN_PART + 1, 64ull << 20 };
	struct fault_proxy fp;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	char ep[64], prefix[64], key[128];

	sized_proxy(&fp, &c, ep, sizeof(ep));
	EHR_ASSERT_OK(open_store(&st, &c));
	random_prefix(prefix, sizeof(prefix), "sized");
	for (size_t i = 0; i < EHR_ARRAY_LEN(sizes); i++) {
		snprintf(key, sizeof(key), "%s%zu", prefix, i);
		sized_round_trip(&fp, st, key, sizes[i]);
	}
	CU_ASSERT_EQUAL(fp.puts_ok, EHR_ARRAY_LEN(sizes));
	obj_store_free(st);
	fault_proxy_stop(&fp);
}

/* A record of known plaintext size: the exact ciphertext size is promised,
 * one PutObject, and it reads back. */
static void test_sized_record(void)
{
	const uint64_t sizes[] = { 1, CLOUD_SEG_DEFAULT, 3 * OBJ_S3_MIN_PART + 7 };
	struct fault_proxy fp;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	char ep[64], key[128];

	sized_proxy(&fp, &c, ep, sizeof(ep));
	EHR_ASSERT_OK(open_store(&st, &c));
	for (size_t i = 0; i < EHR_ARRAY_LEN(sizes); i++) {
		struct cloud_record_meta m;
		struct gen g = { .left = sizes[i] };
		struct check ck = { .ok = true };
		uint64_t ct = 0;
		unsigned puts = fp.puts;

		memset(&m, 0, sizeof(m));
		EHR_ASSERT_OK(cloud_rid_new(m.rid));
		EHR_ASSERT_OK(cloud_record_put_sized(st, KEK, &m, gen_read, &g, 0, (int64_t)sizes[i]));
		EHR_ASSERT_OK(cloud_ciphertext_size(&ct, sizes[i], CLOUD_SEG_DEFAULT));
		CU_ASSERT_EQUAL(m.ct_size, ct);
		CU_ASSERT_EQUAL(fp.puts - puts, 1);
		EHR_ASSERT_OK(cloud_record_get(st, KEK, &m, check_write, &ck));
		CU_ASSERT_EQUAL(ck.pos, sizes[i]);
		CU_ASSERT(ck.ok);
		EHR_ASSERT_OK(cloud_record_key(key, sizeof(key), m.rid));
		EHR_ASSERT_OK(obj_store_delete(st, key));
	}
	/* a plaintext that runs one byte past its declared size: refused */
	{
		struct cloud_record_meta m;
		struct gen g = { .left = 100001 };
		char rk[128];
		memset(&m, 0, sizeof(m));
		EHR_ASSERT_OK(cloud_rid_new(m.rid));
		EHR_ASSERT_ERR(cloud_record_put_sized(st, KEK, &m, gen_read, &g, 0, 100000), EHR_ERR_INVAL);
		EHR_ASSERT_OK(cloud_record_key(rk, sizeof(rk), m.rid));
		assert_nothing_stored("ehr/zz-none/", rk);
	}
	CU_ASSERT_EQUAL(fp.creates, 0);
	obj_store_free(st);
	fault_proxy_stop(&fp);
}

/* The front checks the UNSIGNED-PAYLOAD signature: a wrong secret fails,
 * and nothing is stored. */
static void test_sized_put_wrong_secret(void)
{
	struct obj_store_config c;
	struct obj_store *st = NULL;
	struct sized_src r = { .g = { .left = 1u << 20 } };
	char prefix[64], key[128];
	int rc;

	base_cfg(&c);
	c.s3_single_put_max = OBJ_S3_SINGLE_PUT_MAX;
	c.s3_secret_key = "not-the-secret";
	EHR_ASSERT_OK(open_store(&st, &c));
	random_prefix(prefix, sizeof(prefix), "sizedauth");
	snprintf(key, sizeof(key), "%sx", prefix);
	rc = obj_store_put_sized(st, key, sized_read, &r, 1 << 20, NULL);
	CU_ASSERT(rc == EHR_ERR_AUTH || rc == EHR_ERR_UNAVAILABLE);
	fprintf(stderr, "\n  wrong secret: %d %s\n", rc, ehr_error_msg());
	obj_store_free(st);
	assert_nothing_stored(prefix, key);
}

/* A reader that ends early or runs long is refused with EHR_ERR_INVAL
 * before the PUT completes; a reader error mid-body aborts the PUT with the
 * reader's error. Never retried (at most one PutObject per key, counted by
 * key once the proxy is quiet: an abandoned request can reach the proxy
 * after the next case began); nothing remains. */
static void test_sized_put_bad_reader(void)
{
	const uint64_t N = 6u << 20;
	const struct {
		uint64_t give;
		uint64_t fail_at;
		int want;
	} cases[] = {
		{ N - 1, 0, EHR_ERR_INVAL }, { N + 1, 0, EHR_ERR_INVAL }, { 2 * N, 0, EHR_ERR_INVAL },
		{ 0, 0, EHR_ERR_INVAL },     { N, 3u << 20, EHR_ERR_IO },
	};
	struct fault_proxy fp;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	char ep[64], prefix[64], key[128];

	sized_proxy(&fp, &c, ep, sizeof(ep));
	EHR_ASSERT_OK(open_store(&st, &c));
	random_prefix(prefix, sizeof(prefix), "sizedbad");
	for (size_t i = 0; i < EHR_ARRAY_LEN(cases); i++) {
		struct sized_src r = { .g = { .left = cases[i].give }, .fail_at = cases[i].fail_at };
		int puts;
		snprintf(key, sizeof(key), "%s%zu", prefix, i);
		EHR_ASSERT_ERR(obj_store_put_sized(st, key, sized_read, &r, (int64_t)N, NULL), cases[i].want);
		if (cases[i].want == EHR_ERR_IO)
			CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), "client went away"));
		puts = fault_proxy_puts_to(&fp, key, 200);
		CU_ASSERT(puts >= 0 && puts <= 1);
		if (puts != 1)
			fprintf(stderr, "case %zu: %d PutObjects for %s\n", i, puts, key);
		assert_nothing_stored(prefix, key);
	}
	CU_ASSERT_EQUAL(fp.puts_ok, 0);
	CU_ASSERT_EQUAL(fp.creates, 0);
	obj_store_free(st);
	fault_proxy_stop(&fp);
}

/* The connection is cut after 1 MiB of the body: not retried (the bytes
 * are gone), the key is deleted, nothing remains. */
static void test_sized_put_cut_not_retried(void)
{
	struct fault_proxy fp;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	struct sized_src r = { .g = { .left = 6u << 20 } };
	char ep[64], prefix[64], key[128];

	sized_proxy(&fp, &c, ep, sizeof(ep));
	fp.cut_put_after = 1u << 20;
	EHR_ASSERT_OK(open_store(&st, &c));
	random_prefix(prefix, sizeof(prefix), "sizedcut");
	snprintf(key, sizeof(key), "%sx", prefix);
	EHR_ASSERT_ERR(obj_store_put_sized(st, key, sized_read, &r, 6 << 20, NULL), EHR_ERR_UNAVAILABLE);
	CU_ASSERT_EQUAL(fp.puts, 1);
	CU_ASSERT_EQUAL(fp.puts_cut, 1);
	CU_ASSERT_EQUAL(fp.deletes, 1);
	CU_ASSERT_EQUAL(fp.deletes_ok, 1);
	CU_ASSERT(r.g.pos > 0 && r.g.pos < (6u << 20));
	obj_store_free(st);
	fault_proxy_stop(&fp);
	assert_nothing_stored(prefix, key);
}

/* s3_single_put_max = 0, or a size over it, or an unknown size: multipart
 * as before. */
static void test_sized_put_multipart_kept(void)
{
	const uint64_t P = OBJ_S3_MIN_PART;
	struct fault_proxy fp;
	struct obj_store_config c;
	struct obj_store *st = NULL, *st0 = NULL, *stsmall = NULL;
	char ep[64], prefix[64], key[128];

	sized_proxy(&fp, &c, ep, sizeof(ep));
	EHR_ASSERT_OK(open_store(&st, &c));
	c.s3_single_put_max = 0;
	EHR_ASSERT_OK(open_store(&st0, &c));
	c.s3_single_put_max = 2 * P;
	EHR_ASSERT_OK(open_store(&stsmall, &c));
	random_prefix(prefix, sizeof(prefix), "sizedmp");
	{ /* max 0 */
		struct sized_src r = { .g = { .left = 2 * P + 1 } };
		snprintf(key, sizeof(key), "%sa", prefix);
		EHR_ASSERT_OK(obj_store_put_sized(st0, key, sized_read, &r, (int64_t)(2 * P + 1), NULL));
		CU_ASSERT_EQUAL(fp.creates, 1);
		CU_ASSERT_EQUAL(fp.puts, 0);
		CU_ASSERT_EQUAL(fp.parts_ok, 3);
		EHR_ASSERT_OK(obj_store_delete(st, key));
	}
	{ /* over the max */
		struct sized_src r = { .g = { .left = 2 * P + 1 } };
		snprintf(key, sizeof(key), "%sb", prefix);
		EHR_ASSERT_OK(obj_store_put_sized(stsmall, key, sized_read, &r, (int64_t)(2 * P + 1), NULL));
		CU_ASSERT_EQUAL(fp.creates, 2);
		CU_ASSERT_EQUAL(fp.puts, 0);
		EHR_ASSERT_OK(obj_store_delete(st, key));
	}
	{ /* unknown size */
		struct sized_src r = { .g = { .left = 2 * P + 1 } };
		snprintf(key, sizeof(key), "%sc", prefix);
		EHR_ASSERT_OK(obj_store_put(st, key, sized_read, &r, NULL));
		CU_ASSERT_EQUAL(fp.creates, 3);
		CU_ASSERT_EQUAL(fp.puts, 0);
		EHR_ASSERT_OK(obj_store_delete(st, key));
	}
	{ /* a size promise is checked on the multipart path too */
		struct sized_src r = { .g = { .left = 2 * P + 2 } };
		snprintf(key, sizeof(key), "%sd", prefix);
		EHR_ASSERT_ERR(obj_store_put_sized(st0, key, sized_read, &r, (int64_t)(2 * P + 1), NULL),
		               EHR_ERR_INVAL);
		CU_ASSERT_EQUAL(fp.completes_ok, 3);
	}
	obj_store_free(st);
	obj_store_free(st0);
	obj_store_free(stsmall);
	fault_proxy_stop(&fp);
	assert_nothing_stored(prefix, key);
}

static char OTHER_CA[96];    /* a CA that never issued anything the front uses */
static char IMPOSTOR_CA[96]; /* the test CA's exact name, another key */

/*
 * A self-signed CA certificate under a fresh P-256 key, written as PEM to
 * path. subject NULL: a name of its own; else that name (an impostor of the
 * CA that carries it: same issuer name, wrong key).
 */
static int write_fresh_ca(const char *path, const X509_NAME *subject)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *own = NULL;
	X509_EXTENSION *bc = NULL, *ku = NULL;
	FILE *f = NULL;
	int ok = 0;

	if (k == NULL || x == NULL)
		goto out;
	if (subject == NULL) {
		own = X509_NAME_new();
		if (own == NULL || !X509_NAME_add_entry_by_txt(
		                           own, "CN", MBSTRING_ASC,
		                           (const unsigned char *)"ehrgate test: some other CA", -1, -1, 0))
			goto out;
		subject = own;
	}
	bc = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
	ku = X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, "critical,keyCertSign,cRLSign");
	ok = bc && ku && X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), 4242) &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -60) && X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
	     X509_set_subject_name(x, subject) && X509_set_issuer_name(x, subject) && X509_set_pubkey(x, k) &&
	     X509_add_ext(x, bc, -1) && X509_add_ext(x, ku, -1) && X509_sign(x, k, EVP_sha256()) > 0 &&
	     (f = fopen(path, "w")) != NULL && PEM_write_X509(f, x);
out:
	if (f && fclose(f) != 0)
		ok = 0;
	X509_EXTENSION_free(bc);
	X509_EXTENSION_free(ku);
	X509_NAME_free(own);
	X509_free(x);
	EVP_PKEY_free(k);
	return ok ? 0 : -1;
}

static int setup_https(void)
{
	const char *ca = ehr_test_env("EHRGATE_TEST_S3_CA");
	X509 *real = NULL;
	FILE *f;
	int rc = -1;

	if (!ehr_test_env("EHRGATE_TEST_S3_HTTPS") || ca == NULL) {
		fprintf(stderr,
		        "EHRGATE_TEST_S3_HTTPS / EHRGATE_TEST_S3_CA not set: start deploy/devservices.sh "
		        "(a version with the https front) and source services.env\n");
		return -1;
	}
	if (setup() < 0)
		return -1;
	if ((f = fopen(ca, "r")) != NULL) {
		real = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	snprintf(OTHER_CA, sizeof(OTHER_CA), "%s/other-ca.pem", KDIR);
	snprintf(IMPOSTOR_CA, sizeof(IMPOSTOR_CA), "%s/impostor-ca.pem", KDIR);
	if (real && write_fresh_ca(OTHER_CA, NULL) == 0 &&
	    write_fresh_ca(IMPOSTOR_CA, X509_get_subject_name(real)) == 0)
		rc = 0;
	X509_free(real);
	if (rc < 0) /* CUnit runs no cleanup after a failed init */
		teardown();
	return rc;
}

/* Looks for one key in a listing (others may share its prefix). */
struct find {
	const char *key;
	bool found;
	uint64_t size;
};
static int find_cb(void *ctx, const char *key, uint64_t size)
{
	struct find *f = ctx;
	if (strcmp(key, f->key) == 0) {
		f->found = true;
		f->size = size;
	}
	return 0;
}

static void https_cfg(struct obj_store_config *c)
{
	base_cfg(c);
	c->s3_endpoint = ehr_test_env("EHRGATE_TEST_S3_HTTPS");
	c->s3_ca_file = ehr_test_env("EHRGATE_TEST_S3_CA");
}

/* The whole surface over https with the test CA: small objects, records
 * below and above the part size (5 MiB parts, the smallest S3 allows: a
 * 3-part multipart upload), and what went up over https is what the
 * plain-http front serves. */
static void test_https_round_trip(void)
{
	struct obj_store_config c, plain;
	struct obj_store *st = NULL, *pst = NULL;
	struct cloud_record_meta m;
	struct gen g = { .left = 2 * OBJ_S3_MIN_PART + 7 };
	struct check ck = { .ok = true }, ck2 = { .ok = true };
	struct find f = { 0 };
	char key[128], prefix[64];
	uint64_t size = 0;

	https_cfg(&c);
	CU_ASSERT_EQUAL(c.s3_part_size, OBJ_S3_MIN_PART);
	objects_round_trip(&c);
	EHR_ASSERT_OK(open_store(&st, &c));
	EHR_ASSERT_OK(obj_store_ping(st));
	record_round_trip(st, 1000);
	record_round_trip(st, OBJ_S3_MIN_PART + 1); /* 2 parts */

	/* 3 parts up over https; head, list, get over https and over plain
	 * http; deleted over https */
	base_cfg(&plain);
	EHR_ASSERT_OK(open_store(&pst, &plain));
	memset(&m, 0, sizeof(m));
	EHR_ASSERT_OK(cloud_rid_new(m.rid));
	EHR_ASSERT_OK(cloud_record_put(st, KEK, &m, gen_read, &g, 0));
	CU_ASSERT(m.ct_size > 2 * OBJ_S3_MIN_PART);
	EHR_ASSERT_OK(cloud_record_key(key, sizeof(key), m.rid));
	EHR_ASSERT_OK(obj_store_head(st, key, &size));
	CU_ASSERT_EQUAL(size, m.ct_size);
	size = 0;
	EHR_ASSERT_OK(obj_store_head(pst, key, &size));
	CU_ASSERT_EQUAL(size, m.ct_size);
	snprintf(prefix, sizeof(prefix), "%.*s", (int)(strrchr(key, '/') - key + 1), key);
	f.key = key;
	EHR_ASSERT_OK(obj_store_list(st, prefix, find_cb, &f));
	CU_ASSERT(f.found);
	CU_ASSERT_EQUAL(f.size, m.ct_size);
	EHR_ASSERT_OK(cloud_record_get(st, KEK, &m, check_write, &ck));
	CU_ASSERT_EQUAL(ck.pos, 2 * OBJ_S3_MIN_PART + 7);
	CU_ASSERT(ck.ok);
	EHR_ASSERT_OK(cloud_record_get(pst, KEK, &m, check_write, &ck2));
	CU_ASSERT_EQUAL(ck2.pos, 2 * OBJ_S3_MIN_PART + 7);
	CU_ASSERT(ck2.ok);
	EHR_ASSERT_OK(obj_store_delete(st, key));
	EHR_ASSERT_ERR(obj_store_head(st, key, &size), EHR_ERR_NOT_FOUND);
	EHR_ASSERT_ERR(obj_store_head(pst, key, &size), EHR_ERR_NOT_FOUND);
	obj_store_free(pst);
	obj_store_free(st);
}

/* The certificate's DNS name: https://localhost:PORT (pinned to 127.0.0.1,
 * so the test does not depend on how localhost resolves here). */
static void test_https_dns_name(void)
{
	struct obj_store_config c;
	struct obj_store *st = NULL;
	char ep[64], resolve[96];
	uint16_t port = fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3_HTTPS"));

	https_cfg(&c);
	snprintf(ep, sizeof(ep), "https://localhost:%u", port);
	snprintf(resolve, sizeof(resolve), "localhost:%u:127.0.0.1", port);
	c.s3_endpoint = ep;
	c.s3_resolve = resolve;
	EHR_ASSERT_OK(open_store(&st, &c));
	EHR_ASSERT_OK(obj_store_ping(st));
	record_round_trip(st, 4096);
	obj_store_free(st);
}

/*
 * A loopback TCP relay to the https front that counts the connections made
 * through it: a refused certificate ends its connection, so the count is the
 * number of attempts. Poll-driven, one thread, up to RELAY_MAX pairs.
 */
#define RELAY_MAX 16
struct tcp_relay {
	int lfd;
	uint16_t port, upstream;
	pthread_t th;
	pthread_mutex_t lock;
	bool stop;
	unsigned drop_first; /* close the first N connections at once (a reset handshake) */
	unsigned accepted;
};

static int relay_connect(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void *relay_main(void *arg)
{
	struct tcp_relay *r = arg;
	struct pollfd p[1 + 2 * RELAY_MAX];
	int fds[2 * RELAY_MAX]; /* pairs: [2i] client, [2i+1] upstream; -1 = free */
	uint8_t buf[16384];

	for (int i = 0; i < 2 * RELAY_MAX; i++)
		fds[i] = -1;
	for (;;) {
		bool stop;
		pthread_mutex_lock(&r->lock);
		stop = r->stop;
		pthread_mutex_unlock(&r->lock);
		if (stop)
			break;
		p[0] = (struct pollfd){ .fd = r->lfd, .events = POLLIN };
		for (int i = 0; i < 2 * RELAY_MAX; i++)
			p[1 + i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
		if (poll(p, 1 + 2 * RELAY_MAX, 50) <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			int cfd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC), ufd = -1, slot = -1;
			for (int i = 0; i < RELAY_MAX && slot < 0; i++)
				if (fds[2 * i] < 0)
					slot = i;
			if (cfd >= 0) {
				bool drop;
				pthread_mutex_lock(&r->lock);
				drop = r->accepted++ < r->drop_first;
				pthread_mutex_unlock(&r->lock);
				ufd = slot >= 0 && !drop ? relay_connect(r->upstream) : -1;
			}
			if (cfd >= 0 && ufd >= 0) {
				fds[2 * slot] = cfd;
				fds[2 * slot + 1] = ufd;
			} else if (cfd >= 0) {
				close(cfd);
			}
		}
		for (int i = 0; i < 2 * RELAY_MAX; i++) {
			ssize_t n;
			if (fds[i] < 0 || !(p[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(fds[i], buf, sizeof(buf));
			if (n > 0 && send(fds[i ^ 1], buf, (size_t)n, MSG_NOSIGNAL) == n)
				continue;
			/* either side done: drop the pair */
			close(fds[i]);
			close(fds[i ^ 1]);
			fds[i] = fds[i ^ 1] = -1;
		}
	}
	for (int i = 0; i < 2 * RELAY_MAX; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return NULL;
}

static int relay_start(struct tcp_relay *r, uint16_t upstream, unsigned drop_first)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);

	memset(r, 0, sizeof(*r));
	r->upstream = upstream;
	r->drop_first = drop_first;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(r->lfd, 16) < 0 ||
	    getsockname(r->lfd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	r->port = ntohs(a.sin_port);
	pthread_mutex_init(&r->lock, NULL);
	return pthread_create(&r->th, NULL, relay_main, r) == 0 ? 0 : -1;
}

static unsigned relay_accepted(struct tcp_relay *r)
{
	unsigned n;
	pthread_mutex_lock(&r->lock);
	n = r->accepted;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static void relay_stop(struct tcp_relay *r)
{
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->th, NULL);
	close(r->lfd);
	pthread_mutex_destroy(&r->lock);
}

/* 6 tries with backoff would take at least 2.5 s; one try takes a handshake. */
#define TLS_REFUSAL_MAX_MS 2000

/*
 * Every kind of call through a store whose TLS check must fail: each is
 * EHR_ERR_UNAVAILABLE with a message containing `want` (and `want2` if
 * given), tried once (one connection through the relay), quickly; and
 * nothing reached the bucket (checked over plain http).
 */
static void assert_tls_refused(struct obj_store_config *c, const char *host, const char *want,
                               const char *want2)
{
	struct tcp_relay r;
	struct obj_store_config plain;
	struct obj_store *st = NULL, *pst = NULL;
	struct cloud_mem_reader mr = { (const uint8_t *)"must not be stored", 18, 0 };
	struct ehr_buf out = EHR_BUF_INIT(1024);
	struct gen g = { .left = 2 * OBJ_S3_MIN_PART + 7 };
	struct keys k = { 0 };
	char ep[128], resolve[224], prefix[64], key[128], big[128];
	uint8_t rnd[4];
	uint64_t size = 0;
	unsigned before;
	int64_t slowest = 0;
	bool ca_file_case = strstr(want, "CA file") != NULL;

	CU_ASSERT_FATAL(relay_start(&r, fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3_HTTPS")), 0) == 0);
	snprintf(ep, sizeof(ep), "https://%s:%u", host, r.port);
	c->s3_endpoint = ep;
	if (c->s3_virtual_host) /* the name curl connects to, pinned to the relay */
		snprintf(resolve, sizeof(resolve), "%s.%s:%u:127.0.0.1", c->s3_bucket, host, r.port);
	else
		snprintf(resolve, sizeof(resolve), "%s:%u:127.0.0.1", host, r.port);
	if (strcmp(host, "127.0.0.1") != 0)
		c->s3_resolve = resolve;
	c->s3_max_attempts = 6; /* retries, if any, would show in the count */
	EHR_ASSERT_OK(open_store(&st, c));
	base_cfg(&plain);
	EHR_ASSERT_OK(open_store(&pst, &plain));
	RAND_bytes(rnd, sizeof(rnd));
	snprintf(prefix, sizeof(prefix), "tls-%02x%02x%02x%02x/", rnd[0], rnd[1], rnd[2], rnd[3]);
	snprintf(key, sizeof(key), "%ssmall", prefix);
	snprintf(big, sizeof(big), "%sbig", prefix);
	EHR_ASSERT_OK(obj_store_put(pst, key, cloud_mem_read, &mr, NULL)); /* to get, head, list */
	mr.off = 0;

	for (int op = 0; op < 7; op++) {
		int64_t t0 = ehr_monotonic_ms(), ms;
		const char *msg;
		int rc;

		before = relay_accepted(&r);
		switch (op) {
		case 0: rc = obj_store_ping(st); break;
		case 1: rc = obj_store_put(st, key, cloud_mem_read, &mr, NULL); break;
		case 2: rc = obj_store_put(st, big, gen_read, &g, NULL); break; /* would be multipart */
		case 3: rc = obj_store_get(st, key, cloud_buf_write, &out, NULL); break;
		case 4: rc = obj_store_head(st, key, &size); break;
		case 5: rc = obj_store_list(st, prefix, list_cb, &k); break;
		default: rc = obj_store_delete(st, key); break;
		}
		ms = ehr_monotonic_ms() - t0;
		slowest = ms > slowest ? ms : slowest;
		msg = ehr_error_msg();
		if (rc != EHR_ERR_UNAVAILABLE || strstr(msg, want) == NULL ||
		    (want2 && strstr(msg, want2) == NULL) || ms > TLS_REFUSAL_MAX_MS)
			fprintf(stderr, "\n  op %d via https://%s: rc %d in %lld ms: %s\n", op, host, rc,
			        (long long)ms, msg);
		CU_ASSERT_EQUAL(rc, EHR_ERR_UNAVAILABLE);
		CU_ASSERT_PTR_NOT_NULL(strstr(msg, want));
		if (want2)
			CU_ASSERT_PTR_NOT_NULL(strstr(msg, want2));
		CU_ASSERT_PTR_NOT_NULL(strstr(msg, "not retried"));
		CU_ASSERT(ms <= TLS_REFUSAL_MAX_MS);
		/* A refused certificate came through the relay, which counted the
		 * connection before forwarding a byte: exactly one, no retry. (An
		 * unusable CA file fails right after the TCP connect, possibly
		 * before the relay thread accepted it: counted below.) */
		if (!ca_file_case)
			CU_ASSERT_EQUAL(relay_accepted(&r) - before, 1);
	}
	/* one connection per call in all, once the relay has caught up */
	for (int i = 0; i < 100 && relay_accepted(&r) < 7; i++)
		usleep(20 * 1000);
	usleep(100 * 1000);
	CU_ASSERT_EQUAL(relay_accepted(&r), 7);
	CU_ASSERT_EQUAL(out.len, 0);
	CU_ASSERT_EQUAL(k.n, 0);
	fprintf(stderr, "\n  https://%s: 7 calls refused, %u connections, slowest %lld ms: %s\n", host,
	        relay_accepted(&r), (long long)slowest, ehr_error_msg());

	/* nothing written, nothing deleted: the bucket as plain http sees it */
	EHR_ASSERT_OK(obj_store_head(pst, key, &size));
	CU_ASSERT_EQUAL(size, 18);
	EHR_ASSERT_ERR(obj_store_head(pst, big, &size), EHR_ERR_NOT_FOUND);
	k.n = 0;
	EHR_ASSERT_OK(obj_store_list(pst, prefix, list_cb, &k));
	CU_ASSERT_EQUAL(k.n, 1);
	CU_ASSERT_STRING_EQUAL(k.last, key);
	EHR_ASSERT_OK(obj_store_delete(pst, key));

	obj_store_free(st);
	obj_store_free(pst);
	ehr_buf_free(&out);
	relay_stop(&r);
}

/* Control for the relay: with the right CA the same path works, reusing
 * one connection. */
static void test_https_relay_control(void)
{
	struct tcp_relay r;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	char ep[64];

	CU_ASSERT_FATAL(relay_start(&r, fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3_HTTPS")), 0) == 0);
	https_cfg(&c);
	snprintf(ep, sizeof(ep), "https://127.0.0.1:%u", r.port);
	c.s3_endpoint = ep;
	EHR_ASSERT_OK(open_store(&st, &c));
	EHR_ASSERT_OK(obj_store_ping(st));
	record_round_trip(st, 100);
	CU_ASSERT(relay_accepted(&r) >= 1);
	obj_store_free(st);
	relay_stop(&r);
}

/* A handshake cut by the network (the relay closes the first two
 * connections) is not a verification failure: it is still retried, and the
 * third try succeeds. */
static void test_https_reset_retried(void)
{
	struct tcp_relay r;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	char ep[64];

	CU_ASSERT_FATAL(relay_start(&r, fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3_HTTPS")), 2) == 0);
	https_cfg(&c);
	snprintf(ep, sizeof(ep), "https://127.0.0.1:%u", r.port);
	c.s3_endpoint = ep;
	c.s3_max_attempts = 4;
	EHR_ASSERT_OK(open_store(&st, &c));
	EHR_ASSERT_OK(obj_store_ping(st));
	CU_ASSERT_EQUAL(relay_accepted(&r), 3);
	obj_store_free(st);
	relay_stop(&r);
}

/* A connection cut before any byte of a streamed PUT's body was read (the
 * relay drops the first connection during the TLS handshake) is retried,
 * and the retry stores the object whole. */
static void test_https_sized_put_retried(void)
{
	struct tcp_relay r;
	struct obj_store_config c;
	struct obj_store *st = NULL;
	struct sized_src src = { .g = { .left = 6u << 20 } };
	struct check ck = { .ok = true };
	char ep[64], prefix[64], key[128];

	CU_ASSERT_FATAL(relay_start(&r, fault_proxy_url_port(ehr_test_env("EHRGATE_TEST_S3_HTTPS")), 1) == 0);
	https_cfg(&c);
	snprintf(ep, sizeof(ep), "https://127.0.0.1:%u", r.port);
	c.s3_endpoint = ep;
	c.s3_single_put_max = OBJ_S3_SINGLE_PUT_MAX;
	EHR_ASSERT_OK(open_store(&st, &c));
	random_prefix(prefix, sizeof(prefix), "sizedretry");
	snprintf(key, sizeof(key), "%sx", prefix);
	EHR_ASSERT_OK(obj_store_put_sized(st, key, sized_read, &src, 6 << 20, NULL));
	CU_ASSERT_EQUAL(relay_accepted(&r), 2);
	CU_ASSERT_EQUAL(src.g.pos, 6u << 20);
	EHR_ASSERT_OK(obj_store_get(st, key, check_write, &ck, NULL));
	CU_ASSERT_EQUAL(ck.pos, 6u << 20);
	CU_ASSERT(ck.ok);
	EHR_ASSERT_OK(obj_store_delete(st, key));
	obj_store_free(st);
	relay_stop(&r);
}

/* No s3_ca_file: the system store does not trust the private test CA. */
static void test_https_system_store(void)
{
	struct obj_store_config c;

	https_cfg(&c);
	c.s3_ca_file = NULL;
	assert_tls_refused(&c, "127.0.0.1", "TLS certificate verification", "local issuer");
}

/* s3_ca_file = a CA that did not issue the front's certificate. */
static void test_https_other_ca(void)
{
	struct obj_store_config c;

	https_cfg(&c);
	c.s3_ca_file = OTHER_CA;
	assert_tls_refused(&c, "127.0.0.1", "TLS certificate verification", "local issuer");
}

/* s3_ca_file = a CA with the test CA's very name but another key: the chain
 * builds by name, and the signature check refuses it. */
static void test_https_impostor_ca(void)
{
	struct obj_store_config c;

	https_cfg(&c);
	c.s3_ca_file = IMPOSTOR_CA;
	assert_tls_refused(&c, "127.0.0.1", "TLS certificate verification", "signature failure");
}

/* The right CA, a host name the certificate does not carry (pinned to the
 * loopback front, so the only thing wrong is the name). */
static void test_https_wrong_host(void)
{
	struct obj_store_config c;
	char vhost[128];

	https_cfg(&c);
	assert_tls_refused(&c, "s3.wrong-name.test", "TLS certificate verification",
	                   "target host name 's3.wrong-name.test'");
	/* virtual-hosted style: <bucket>.localhost is not localhost (a real
	 * deployment needs a wildcard name for it) */
	https_cfg(&c);
	c.s3_virtual_host = true;
	snprintf(vhost, sizeof(vhost), "target host name '%s.localhost'", c.s3_bucket);
	assert_tls_refused(&c, "localhost", "TLS certificate verification", vhost);
}

/* s3_ca_file names no file: refused before the TLS handshake, not retried. */
static void test_https_missing_ca_file(void)
{
	struct obj_store_config c;
	char missing[96];

	snprintf(missing, sizeof(missing), "%s/no-such-ca.pem", KDIR);
	https_cfg(&c);
	c.s3_ca_file = missing;
	assert_tls_refused(&c, "127.0.0.1", "CA file", NULL);
}

static void reg(void)
{
	EHR_ADD_SUITE("s3_store", setup, teardown, { "objects", test_objects },
	              { "record sizes", test_record_sizes }, { "record 64 MiB", test_record_64mib },
	              { "virtual host", test_virtual_host }, { "bad credentials", test_bad_credentials },
	              { "unreachable", test_unreachable },
	              { "multipart failure aborts", test_multipart_failure_aborts },
	              { "reader failure aborts", test_reader_failure_aborts },
	              { "multipart part counts", test_multipart_part_counts },
	              { "part fails while the next fills", test_part_fails_while_next_fills },
	              { "reader fails while a part uploads", test_reader_fails_while_part_uploads },
	              { "reader error stops part retries", test_reader_error_stops_part_retries },
	              { "concurrent multipart uploads", test_concurrent_multipart },
	              { "retries", test_retry_then_success },
	              { "sized put is one PUT", test_sized_put_one_request },
	              { "sized record", test_sized_record },
	              { "sized put, wrong secret", test_sized_put_wrong_secret },
	              { "sized put, bad reader", test_sized_put_bad_reader },
	              { "sized put cut, not retried", test_sized_put_cut_not_retried },
	              { "sized put, multipart kept", test_sized_put_multipart_kept });
	EHR_ADD_SUITE("s3_https", setup_https, teardown,
	              { "round trip with the test CA", test_https_round_trip },
	              { "certificate's DNS name", test_https_dns_name },
	              { "relay control", test_https_relay_control },
	              { "reset handshake retried", test_https_reset_retried },
	              { "sized put retried before its body", test_https_sized_put_retried },
	              { "system store refuses", test_https_system_store },
	              { "another CA refuses", test_https_other_ca },
	              { "impostor CA refuses", test_https_impostor_ca },
	              { "wrong host name refused", test_https_wrong_host },
	              { "missing CA file refused", test_https_missing_ca_file });
}

EHR_TEST_MAIN(reg)
