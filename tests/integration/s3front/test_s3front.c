/*
 * test_s3front.c - proves that the dev S3 front (deploy/s3/front.js) really
 * verifies SigV4, since s3rver alone accepts any signature. Requests are signed
 * by libcurl (CURLOPT_AWS_SIGV4), independently of ehrgate's own signer.
 *
 * Needs EHRGATE_TEST_S3 (front), EHRGATE_TEST_S3_DIRECT (s3rver), EHRGATE_TEST_S3_BUCKET
 * and EHRGATE_TEST_S3_REGION from deploy/devservices.sh; fails when they are unset.
 */
#include "tests/harness/harness.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

#define BIG_SIZE (64u * 1024u * 1024u)

struct reply {
	long status;
	struct ehr_buf body;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct reply *r = ud;
	if (ehr_buf_append(&r->body, p, sz * n) < 0)
		return 0;
	return sz * n;
}

struct upload {
	const uint8_t *p;
	size_t len, off;
};

static size_t on_read(char *dst, size_t sz, size_t n, void *ud)
{
	struct upload *u = ud;
	size_t k = sz * n;

	if (k > u->len - u->off)
		k = u->len - u->off;
	memcpy(dst, u->p + u->off, k);
	u->off += k;
	return k;
}

static void sha256_hex(char out[65], const void *p, size_t n)
{
	unsigned char md[32];
	unsigned mdlen = 0;
	static const char hx[] = "0123456789abcdef";

	EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hx[md[i] >> 4];
		out[2 * i + 1] = hx[md[i] & 15];
	}
	out[64] = '\0';
}

/*
 * One S3 request. secret NULL = unsigned. payload_hash NULL = the real hash of body.
 * Returns 0 and fills r (caller frees r->body), or -1 if the transfer failed.
 */
static int s3_request(struct reply *r, const char *base, const char *method, const char *key,
                      const char *secret, const char *region, const void *body, size_t len,
                      const char *payload_hash)
{
	const char *bucket = ehr_test_env("EHRGATE_TEST_S3_BUCKET");
	struct ehr_buf url, hdr, sigv4;
	struct upload up = { body, len, 0 };
	struct curl_slist *hl = NULL;
	char hash[65];
	CURL *c = NULL;
	CURLcode cc;
	int rc = -1;

	ehr_buf_init(&url, 4096);
	ehr_buf_init(&hdr, 256);
	ehr_buf_init(&sigv4, 256);
	ehr_buf_init(&r->body, (size_t)BIG_SIZE + 1024);
	r->status = 0;
	if (base == NULL || bucket == NULL)
		goto out;
	if (payload_hash == NULL) {
		sha256_hex(hash, body ? body : "", len);
		payload_hash = hash;
	}
	if (ehr_buf_printf(&url, "%s/%s/%s", base, bucket, key) < 0 ||
	    ehr_buf_printf(&hdr, "x-amz-content-sha256: %s", payload_hash) < 0 ||
	    ehr_buf_printf(&sigv4, "aws:amz:%s:s3", region) < 0)
		goto out;
	c = curl_easy_init();
	if (c == NULL)
		goto out;
	hl = curl_slist_append(hl, ehr_buf_cstr(&hdr));
	curl_easy_setopt(c, CURLOPT_URL, ehr_buf_cstr(&url));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	if (secret) {
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, ehr_buf_cstr(&sigv4));
		curl_easy_setopt(c, CURLOPT_USERNAME, "S3RVER");
		curl_easy_setopt(c, CURLOPT_PASSWORD, secret);
	}
	if (strcmp(method, "PUT") == 0) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &up);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		fprintf(stderr, "\n  %s %s: %s\n", method, ehr_buf_cstr(&url), curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	rc = 0;
out:
	curl_slist_free_all(hl);
	if (c)
		curl_easy_cleanup(c);
	ehr_buf_free(&url);
	ehr_buf_free(&hdr);
	ehr_buf_free(&sigv4);
	return rc;
}

static const char *front(void)
{
	return ehr_test_env("EHRGATE_TEST_S3");
}

static const char *region(void)
{
	const char *r = ehr_test_env("EHRGATE_TEST_S3_REGION");
	return r ? r : "us-east-1";
}

static bool body_has(const struct reply *r, const char *needle)
{
	return r->body.len > 0 && memmem(r->body.data, r->body.len, needle, strlen(needle)) != NULL;
}

static void test_env_present(void)
{
	CU_ASSERT_PTR_NOT_NULL(ehr_test_env("EHRGATE_TEST_S3"));
	CU_ASSERT_PTR_NOT_NULL(ehr_test_env("EHRGATE_TEST_S3_DIRECT"));
	CU_ASSERT_PTR_NOT_NULL(ehr_test_env("EHRGATE_TEST_S3_BUCKET"));
}

static void test_correct_signature_passes(void)
{
	struct reply r;
	const char msg[] = "signed with the right secret";

	CU_ASSERT_EQUAL_FATAL(s3_request(&r, front(), "PUT", "s3front/ok.txt", "S3RVER", region(), msg,
	                                 sizeof(msg) - 1, NULL),
	                      0);
	CU_ASSERT_EQUAL(r.status, 200);
	ehr_buf_free(&r.body);

	CU_ASSERT_EQUAL_FATAL(
	        s3_request(&r, front(), "GET", "s3front/ok.txt", "S3RVER", region(), NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_EQUAL(r.body.len, sizeof(msg) - 1);
	CU_ASSERT(r.body.len == sizeof(msg) - 1 &&
	          memcmp(r.body.data, msg, r.body.len) == 0); /* not secret */
	ehr_buf_free(&r.body);
}

static void test_wrong_secret_rejected(void)
{
	struct reply r;
	const char msg[] = "signed with the wrong secret";

	CU_ASSERT_EQUAL_FATAL(s3_request(&r, front(), "PUT", "s3front/bad.txt", "not-the-secret", region(),
	                                 msg, sizeof(msg) - 1, NULL),
	                      0);
	CU_ASSERT_EQUAL(r.status, 403);
	CU_ASSERT(body_has(&r, "<Code>SignatureDoesNotMatch</Code>"));
	ehr_buf_free(&r.body);

	CU_ASSERT_EQUAL_FATAL(
	        s3_request(&r, front(), "GET", "s3front/ok.txt", "not-the-secret", region(), NULL, 0, NULL),
	        0);
	CU_ASSERT_EQUAL(r.status, 403);
	ehr_buf_free(&r.body);

	/* and nothing was stored by the rejected PUT */
	CU_ASSERT_EQUAL_FATAL(
	        s3_request(&r, front(), "GET", "s3front/bad.txt", "S3RVER", region(), NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(r.status, 404);
	ehr_buf_free(&r.body);
}

static void test_unsigned_rejected(void)
{
	struct reply r;

	CU_ASSERT_EQUAL_FATAL(s3_request(&r, front(), "GET", "s3front/ok.txt", NULL, region(), NULL, 0, NULL),
	                      0);
	CU_ASSERT_EQUAL(r.status, 403);
	CU_ASSERT(body_has(&r, "<Code>AccessDenied</Code>"));
	ehr_buf_free(&r.body);
}

static void test_wrong_region_rejected(void)
{
	struct reply r;
	const char *other = strcmp(region(), "eu-west-1") == 0 ? "us-east-1" : "eu-west-1";

	CU_ASSERT_EQUAL_FATAL(
	        s3_request(&r, front(), "GET", "s3front/ok.txt", "S3RVER", other, NULL, 0, NULL), 0);
	CU_ASSERT(r.status >= 400 && r.status < 500);
	ehr_buf_free(&r.body);
}

/* A correctly signed request whose declared payload hash is not the body's. */
static void test_wrong_payload_hash_rejected(void)
{
	struct reply r;
	const char msg[] = "overwritten?";
	char other[65];

	sha256_hex(other, "something else", 14);
	CU_ASSERT_EQUAL_FATAL(s3_request(&r, front(), "PUT", "s3front/ok.txt", "S3RVER", region(), msg,
	                                 sizeof(msg) - 1, other),
	                      0);
	CU_ASSERT_EQUAL(r.status, 400);
	CU_ASSERT(body_has(&r, "XAmzContentSHA256Mismatch"));
	ehr_buf_free(&r.body);

	/* the previous object is intact */
	CU_ASSERT_EQUAL_FATAL(
	        s3_request(&r, front(), "GET", "s3front/ok.txt", "S3RVER", region(), NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT(body_has(&r, "signed with the right secret"));
	ehr_buf_free(&r.body);
}

/* Why the front exists: s3rver itself takes a wrong secret. */
static void test_direct_s3rver_does_not_verify(void)
{
	struct reply r;

	CU_ASSERT_EQUAL_FATAL(s3_request(&r, ehr_test_env("EHRGATE_TEST_S3_DIRECT"), "GET", "s3front/ok.txt",
	                                 "not-the-secret", region(), NULL, 0, NULL),
	                      0);
	CU_ASSERT_EQUAL(r.status, 200);
	ehr_buf_free(&r.body);
}

static void test_big_object_streams(void)
{
	struct reply r;
	uint8_t *big = malloc(BIG_SIZE);
	char want[65], got[65];

	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	CU_ASSERT_EQUAL_FATAL(ehr_random(big, BIG_SIZE), 0);
	sha256_hex(want, big, BIG_SIZE);
	CU_ASSERT_EQUAL_FATAL(
	        s3_request(&r, front(), "PUT", "s3front/big.bin", "S3RVER", region(), big, BIG_SIZE, want),
	        0);
	CU_ASSERT_EQUAL(r.status, 200);
	ehr_buf_free(&r.body);
	free(big);

	CU_ASSERT_EQUAL_FATAL(
	        s3_request(&r, front(), "GET", "s3front/big.bin", "S3RVER", region(), NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_EQUAL(r.body.len, BIG_SIZE);
	sha256_hex(got, r.body.data ? (const void *)r.body.data : "", r.body.len);
	CU_ASSERT_STRING_EQUAL(got, want);
	ehr_buf_free(&r.body);

	CU_ASSERT_EQUAL_FATAL(
	        s3_request(&r, front(), "DELETE", "s3front/big.bin", "S3RVER", region(), NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(r.status, 204);
	ehr_buf_free(&r.body);
}

static void register_suites(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	EHR_ADD_SUITE("s3front", NULL, NULL, { "services env present", test_env_present },
	              { "correct signature passes", test_correct_signature_passes },
	              { "wrong secret rejected (403)", test_wrong_secret_rejected },
	              { "unsigned request rejected (403)", test_unsigned_rejected },
	              { "wrong region rejected", test_wrong_region_rejected },
	              { "wrong payload hash rejected, old object intact", test_wrong_payload_hash_rejected },
	              { "s3rver alone does not verify", test_direct_s3rver_does_not_verify },
	              { "64 MiB object streams through", test_big_object_streams });
}

EHR_TEST_MAIN(register_suites)
