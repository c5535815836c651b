/*
 * test_sigv4.c - the signer against AWS's published SigV4 test suite.
 *
 * Vectors: the "aws-sig-v4-test-suite" (AWS General Reference, "Signature
 * Version 4 test suite"), as kept in awslabs/aws-c-auth under
 * tests/aws-signing-test-suite/v4/<case>/ (header-canonical-request.txt,
 * header-string-to-sign.txt, header-signature.txt; context.json gives
 * AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, region us-east-1,
 * service "service", 2015-08-30T12:36:00Z). Only cases whose path needs no
 * normalisation are used: S3 (our target) signs the path as sent.
 * post-vanilla-query-space's signature is from the same suite (its .authz).
 */
#include <string.h>

#include <openssl/sha.h>

#include "cloud/cloud_internal.h"
#include "tests/harness/harness.h"

#define E3 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HOST                                    \
	{                                       \
		"Host", "example.amazonaws.com" \
	}
#define DATE                                     \
	{                                        \
		"X-Amz-Date", "20150830T123600Z" \
	}

struct vec {
	const char *name;
	const char *method;
	const char *path;
	struct s3_kv query[4];
	size_t nquery;
	struct s3_kv headers[6];
	size_t nheaders;
	const char *payload_sha;
	const char *creq; /* NULL: only the signature is published */
	const char *sts;
	const char *sig;
};

static const struct vec VECS[] = {
	{ "get-vanilla",
	  "GET",
	  "/",
	  { { 0 } },
	  0,
	  { HOST, DATE },
	  2,
	  E3,
	  "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
	  "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
	{ "get-vanilla-query-order-key-case",
	  "GET",
	  "/",
	  { { "Param2", "value2" }, { "Param1", "value1" } },
	  2,
	  { HOST, DATE },
	  2,
	  E3,
	  "GET\n/"
	  "\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-"
	  "amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
	  "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" },
	{ "get-vanilla-query-order-encoded",
	  "GET",
	  "/",
	  { { "Param-3", "Value3" }, { "Param", "Value2" }, { "\xE1\x88\xB4", "Value1" } },
	  3,
	  { HOST, DATE },
	  2,
	  E3,
	  "GET\n/"
	  "\n%E1%88%B4=Value1&Param=Value2&Param-3=Value3\nhost:example.amazonaws.com\nx-amz-date:"
	  "20150830T123600Z\n\nhost;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "868294f5c38bd141c4972a373a76654f1418a8e4fc18b2e7903ae45e8ae0ec71",
	  "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac" },
	{ "get-vanilla-query-unreserved",
	  "GET",
	  "/",
	  { { "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
	      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" } },
	  1,
	  { HOST, DATE },
	  2,
	  E3,
	  "GET\n/"
	  "\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~"
	  "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\nhost:example.amazonaws.com\nx-amz-"
	  "date:20150830T123600Z\n\nhost;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
	  "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197" },
	{ "get-vanilla-utf8-query",
	  "GET",
	  "/",
	  { { "\xE1\x88\xB4", "bar" } },
	  1,
	  { HOST, DATE },
	  2,
	  E3,
	  "GET\n/"
	  "\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
	  "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04" },
	{ "get-utf8",
	  "GET",
	  "/\xE1\x88\xB4",
	  { { 0 } },
	  0,
	  { HOST, DATE },
	  2,
	  E3,
	  "GET\n/"
	  "%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
	  "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85" },
	{ "get-space",
	  "GET",
	  "/example space/",
	  { { 0 } },
	  0,
	  { HOST, DATE },
	  2,
	  E3,
	  "GET\n/example%20space/"
	  "\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
	  "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741" },
	{ "get-unreserved",
	  "GET",
	  "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
	  { { 0 } },
	  0,
	  { HOST, DATE },
	  2,
	  E3,
	  "GET\n/"
	  "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\nhost:example.amazonaws."
	  "com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
	  "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f" },
	{ "get-header-key-duplicate",
	  "GET",
	  "/",
	  { { 0 } },
	  0,
	  { HOST, { "My-Header1", "value2" }, { "My-Header1", "value2" }, { "My-Header1", "value1" }, DATE },
	  5,
	  E3,
	  "GET\n/"
	  "\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:"
	  "20150830T123600Z\n\nhost;my-header1;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
	  "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea" },
	{ "get-header-value-multiline",
	  "GET",
	  "/",
	  { { 0 } },
	  0,
	  { HOST, { "My-Header1", "value1\n  value2\n     value3" }, DATE },
	  3,
	  E3,
	  "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1 value2 "
	  "value3\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "e99419459a677bc11de234014be3c4e72c1ea5b454ceb58b613061f5d7a162e8",
	  "cfd34249e4b1c8d6b91ef74165d41a32e5fab3306300901bb65a51a73575eefd" },
	{ "get-header-value-trim",
	  "GET",
	  "/",
	  { { 0 } },
	  0,
	  { HOST, { "My-Header1", " value1" }, { "My-Header2", " \"a   b   c\"" }, DATE },
	  4,
	  E3,
	  "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b "
	  "c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
	  "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736" },
	{ "post-header-key-sort",
	  "POST",
	  "/",
	  { { 0 } },
	  0,
	  { HOST, { "My-Header1", "value1" }, DATE },
	  3,
	  E3,
	  "POST\n/"
	  "\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;"
	  "x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
	  "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c" },
	{ "post-header-value-case",
	  "POST",
	  "/",
	  { { 0 } },
	  0,
	  { HOST, { "My-Header1", "VALUE1" }, DATE },
	  3,
	  E3,
	  "POST\n/"
	  "\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;"
	  "x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
	  "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d" },
	{ "post-vanilla",
	  "POST",
	  "/",
	  { { 0 } },
	  0,
	  { HOST, DATE },
	  2,
	  E3,
	  "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
	  "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },
	{ "post-vanilla-query",
	  "POST",
	  "/",
	  { { "Param1", "value1" } },
	  1,
	  { HOST, DATE },
	  2,
	  E3,
	  "POST\n/"
	  "\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" E3,
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
	  "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11" },
	/* An empty value is signed as "p=" (curl 7.88 would send "p"). */
	{ "post-vanilla-query-space",
	  "POST",
	  "/",
	  { { "p", "" } },
	  1,
	  { HOST, DATE },
	  2,
	  E3,
	  NULL,
	  NULL,
	  "e71688addb58a26418614085fb730ba3faa623b461c17f48f2fbdb9361b94a9b" },
	{ "post-x-www-form-urlencoded",
	  "POST",
	  "/",
	  { { 0 } },
	  0,
	  { { "Content-Type", "application/x-www-form-urlencoded" }, HOST, DATE },
	  3,
	  "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
	  "POST\n/\n\ncontent-type:application/"
	  "x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;"
	  "host;x-amz-date\n"
	  "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
	  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
	  "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
	  "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a" },
};

static void run_vec(const struct vec *v)
{
	struct s3_sigv4_input in = {
		.method = v->method,
		.path = v->path,
		.query = v->query,
		.nquery = v->nquery,
		.headers = v->headers,
		.nheaders = v->nheaders,
		.payload_sha256 = v->payload_sha,
		.amz_date = "20150830T123600Z",
		.region = "us-east-1",
		.service = "service",
		.access_key = "AKIDEXAMPLE",
		.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	};
	struct s3_sigv4_output out;

	EHR_ASSERT_OK(s3_sigv4_sign(&out, &in));
	if (v->creq) {
		if (strcmp(ehr_buf_cstr(&out.canonical_request), v->creq) != 0)
			fprintf(stderr, "\n%s: canonical request\n--- got\n%s\n--- want\n%s\n", v->name,
			        ehr_buf_cstr(&out.canonical_request), v->creq);
		CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&out.canonical_request), v->creq);
		CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&out.string_to_sign), v->sts);
	}
	if (strcmp(out.signature, v->sig) != 0)
		fprintf(stderr, "\n%s: signature %s, want %s\n", v->name, out.signature, v->sig);
	CU_ASSERT_STRING_EQUAL(out.signature, v->sig);
	s3_sigv4_output_free(&out);
}

static void test_vectors(void)
{
	for (size_t i = 0; i < EHR_ARRAY_LEN(VECS); i++)
		run_vec(&VECS[i]);
}

/* The whole Authorization header of get-vanilla-query-order-key-case (.authz). */
static void test_authorization_header(void)
{
	struct s3_sigv4_output out;
	const struct vec *v = &VECS[1];
	struct s3_sigv4_input in = {
		.method = v->method,
		.path = v->path,
		.query = v->query,
		.nquery = v->nquery,
		.headers = v->headers,
		.nheaders = v->nheaders,
		.payload_sha256 = v->payload_sha,
		.amz_date = "20150830T123600Z",
		.region = "us-east-1",
		.service = "service",
		.access_key = "AKIDEXAMPLE",
		.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	};

	EHR_ASSERT_OK(s3_sigv4_sign(&out, &in));
	CU_ASSERT_STRING_EQUAL(
	        ehr_buf_cstr(&out.authorization),
	        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
	        "SignedHeaders=host;x-amz-date, "
	        "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&out.canonical_query), "Param1=value1&Param2=value2");
	s3_sigv4_output_free(&out);
}

/* Negative: every input that is signed must change the signature. */
static void test_signature_sensitivity(void)
{
	const struct vec *v = &VECS[1];
	struct s3_kv q[2] = { { "Param2", "value2" }, { "Param1", "value1" } };
	struct s3_kv h[2] = { HOST, DATE };
	struct s3_sigv4_input base = {
		.method = "GET",
		.path = "/",
		.query = q,
		.nquery = 2,
		.headers = h,
		.nheaders = 2,
		.payload_sha256 = E3,
		.amz_date = "20150830T123600Z",
		.region = "us-east-1",
		.service = "service",
		.access_key = "AKIDEXAMPLE",
		.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	};
	struct s3_sigv4_input m;
	struct s3_sigv4_output out;

	m = base;
	m.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ";
	EHR_ASSERT_OK(s3_sigv4_sign(&out, &m));
	CU_ASSERT_STRING_NOT_EQUAL(out.signature, v->sig);
	s3_sigv4_output_free(&out);
	m = base;
	m.region = "us-east-2";
	EHR_ASSERT_OK(s3_sigv4_sign(&out, &m));
	CU_ASSERT_STRING_NOT_EQUAL(out.signature, v->sig);
	s3_sigv4_output_free(&out);
	m = base;
	m.payload_sha256 = "f3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	EHR_ASSERT_OK(s3_sigv4_sign(&out, &m));
	CU_ASSERT_STRING_NOT_EQUAL(out.signature, v->sig);
	s3_sigv4_output_free(&out);
	q[0].value = "value3";
	EHR_ASSERT_OK(s3_sigv4_sign(&out, &base));
	CU_ASSERT_STRING_NOT_EQUAL(out.signature, v->sig);
	s3_sigv4_output_free(&out);
	/* Malformed inputs are refused. */
	m = base;
	m.amz_date = "2015-08-30";
	EHR_ASSERT_ERR(s3_sigv4_sign(&out, &m), EHR_ERR_INVAL);
	m = base;
	m.payload_sha256 = "abc";
	EHR_ASSERT_ERR(s3_sigv4_sign(&out, &m), EHR_ERR_INVAL);
}

/* S3-specific encoding: '/' kept in the path, encoded in query values;
 * '+', '=', ' ' and '%' always encoded; hex upper case. */
static void test_s3_encoding(void)
{
	struct s3_kv q[3] = { { "uploadId", "a/b+c=d e%" }, { "uploads", "" }, { "partNumber", "1" } };
	struct s3_kv h[3] = { { "host", "127.0.0.1:9000" }, { "x-amz-content-sha256", E3 }, DATE };
	struct s3_sigv4_input in = {
		.method = "PUT",
		.path = "/bucket/ehr/ab/a b+c",
		.query = q,
		.nquery = 3,
		.headers = h,
		.nheaders = 3,
		.payload_sha256 = E3,
		.amz_date = "20150830T123600Z",
		.region = "us-east-1",
		.service = "s3",
		.access_key = "AKIDEXAMPLE",
		.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	};
	struct s3_sigv4_output out;

	EHR_ASSERT_OK(s3_sigv4_sign(&out, &in));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&out.canonical_uri), "/bucket/ehr/ab/a%20b%2Bc");
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&out.canonical_query),
	                       "partNumber=1&uploadId=a%2Fb%2Bc%3Dd%20e%25&uploads=");
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_buf_cstr(&out.authorization),
	                              "SignedHeaders=host;x-amz-content-sha256;x-amz-date"));
	s3_sigv4_output_free(&out);
}

/*
 * UNSIGNED-PAYLOAD, against AWS's published worked example ("Authenticating
 * Requests: Using Query Parameters", GET examplebucket/test.txt, presigned
 * 20130524T000000Z for 86400 s): the canonical request ends in the literal
 * UNSIGNED-PAYLOAD, and its SHA-256, the string to sign and the signature are
 * the ones AWS prints. The same literal in x-amz-content-sha256 is what the
 * streaming PUT signs (header auth: only the query differs). Anything else
 * that is not 64 lower-case hex digits is refused.
 */
static void test_unsigned_payload(void)
{
	const struct s3_kv q[] = {
		{ "X-Amz-Algorithm", "AWS4-HMAC-SHA256" },
		{ "X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request" },
		{ "X-Amz-Date", "20130524T000000Z" },
		{ "X-Amz-Expires", "86400" },
		{ "X-Amz-SignedHeaders", "host" },
	};
	const struct s3_kv h[] = { { "host", "examplebucket.s3.amazonaws.com" } };
	struct s3_sigv4_input in = {
		.method = "GET",
		.path = "/test.txt",
		.query = q,
		.nquery = EHR_ARRAY_LEN(q),
		.headers = h,
		.nheaders = 1,
		.payload_sha256 = "UNSIGNED-PAYLOAD",
		.amz_date = "20130524T000000Z",
		.region = "us-east-1",
		.service = "s3",
		.access_key = "AKIAIOSFODNN7EXAMPLE",
		.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	};
	struct s3_sigv4_output out;
	uint8_t d[32];
	char hex[65];

	EHR_ASSERT_OK(s3_sigv4_sign(&out, &in));
	CU_ASSERT_STRING_EQUAL(
	        ehr_buf_cstr(&out.canonical_request),
	        "GET\n/test.txt\n"
	        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%"
	        "2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
	        "X-Amz-SignedHeaders=host\n"
	        "host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD");
	SHA256(out.canonical_request.data, out.canonical_request.len, d);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	CU_ASSERT_STRING_EQUAL(hex, "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04");
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&out.string_to_sign),
	                       "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
	                       "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04");
	CU_ASSERT_STRING_EQUAL(out.signature,
	                       "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
	s3_sigv4_output_free(&out);

	/* near misses of the literal, and hex that is not lower case */
	in.payload_sha256 = "unsigned-payload";
	EHR_ASSERT_ERR(s3_sigv4_sign(&out, &in), EHR_ERR_INVAL);
	in.payload_sha256 = "UNSIGNED-PAYLOAD ";
	EHR_ASSERT_ERR(s3_sigv4_sign(&out, &in), EHR_ERR_INVAL);
	in.payload_sha256 = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
	EHR_ASSERT_ERR(s3_sigv4_sign(&out, &in), EHR_ERR_INVAL);
	in.payload_sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
	EHR_ASSERT_ERR(s3_sigv4_sign(&out, &in), EHR_ERR_INVAL);
	in.payload_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g";
	EHR_ASSERT_ERR(s3_sigv4_sign(&out, &in), EHR_ERR_INVAL);
}

static void reg(void)
{
	EHR_ADD_SUITE("sigv4", NULL, NULL, { "aws test suite vectors", test_vectors },
	              { "authorization header", test_authorization_header },
	              { "signature sensitivity", test_signature_sensitivity },
	              { "s3 encoding", test_s3_encoding }, { "unsigned payload", test_unsigned_payload });
}

EHR_TEST_MAIN(reg)
