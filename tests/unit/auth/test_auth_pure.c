/* test_auth_pure.c - ES256, JWS, JWK, CSR/cert issuance, access tokens, DPoP
 * proofs, pseudonyms and rate limits, without a database. */
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "auth/auth.h"
#include "auth/auth_internal.h"
#include "tests/harness/harness.h"
#include "tests/unit/auth/authtest.h"

static EVP_PKEY *tkey, *dkey, *okey; /* token key, device key, other key */
static char kid[EHR_JKT_LEN + 1];

static int setup(void)
{
	if (auth_key_generate_p256(&tkey) < 0 || auth_key_generate_p256(&dkey) < 0 ||
	    auth_key_generate_p256(&okey) < 0)
		return 1;
	return ehr_jwk_thumbprint(kid, tkey) < 0;
}

static int teardown(void)
{
	EVP_PKEY_free(tkey);
	EVP_PKEY_free(dkey);
	EVP_PKEY_free(okey);
	return 0;
}

static struct auth_token_params params_at(int64_t now)
{
	struct auth_token_params p = { tkey, kid, "urn:ehrgate", "urn:ehrgate:api", now, 5 };
	return p;
}

/* ------------------------------------------------------------------ ES256 */

static void test_es256(void)
{
	uint8_t sig[64];
	static const char msg[] = "hello";

	EHR_ASSERT_OK(ehr_es256_sign(sig, dkey, msg, 5));
	EHR_ASSERT_OK(ehr_es256_verify(dkey, msg, 5, sig, 64));
	EHR_ASSERT_ERR(ehr_es256_verify(okey, msg, 5, sig, 64), EHR_ERR_AUTH);     /* other key */
	EHR_ASSERT_ERR(ehr_es256_verify(dkey, "hellp", 5, sig, 64), EHR_ERR_AUTH); /* other data */
	EHR_ASSERT_ERR(ehr_es256_verify(dkey, msg, 5, sig, 63), EHR_ERR_AUTH);
	sig[10] ^= 1;
	EHR_ASSERT_ERR(ehr_es256_verify(dkey, msg, 5, sig, 64), EHR_ERR_AUTH);
	memset(sig, 0, sizeof(sig)); /* r = s = 0 */
	EHR_ASSERT_ERR(ehr_es256_verify(dkey, msg, 5, sig, 64), EHR_ERR_AUTH);
}

/* ------------------------------------------------------------------- JWK */

/* RFC 9449 §4.1/§6.1 example key and its RFC 7638 thumbprint. */
static const char *rfc9449_jwk = "{\"kty\":\"EC\",\"x\":\"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs\","
                                 "\"y\":\"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA\",\"crv\":\"P-256\"}";

static void test_jwk_thumbprint_vector(void)
{
	EVP_PKEY *k = NULL;
	char jkt[EHR_JKT_LEN + 1];

	EHR_ASSERT_OK(ehr_jwk_parse_text(&k, rfc9449_jwk, strlen(rfc9449_jwk)));
	EHR_ASSERT_OK(ehr_jwk_thumbprint(jkt, k));
	CU_ASSERT_STRING_EQUAL(jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
	EVP_PKEY_free(k);
}

static void test_jwk_roundtrip_and_refusals(void)
{
	json_t *j = NULL;
	EVP_PKEY *k = NULL;
	char a[EHR_JKT_LEN + 1], b[EHR_JKT_LEN + 1];
	static const char *bad[] = {
		/* private key member */
		"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs\","
		"\"y\":\"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA\",\"d\":\"AAAA\"}",
		/* other curve */
		"{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs\","
		"\"y\":\"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA\"}",
		/* point not on the curve (y changed) */
		"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs\","
		"\"y\":\"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDB\"}",
		/* short coordinate */
		"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"l8tFrhx\",\"y\":\"9VE4jf_Ok_"
		"o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA\"}",
		/* RSA */
		"{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
		/* symmetric */
		"{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}",
		"[]",
		"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":1,\"y\":2}",
	};

	EHR_ASSERT_OK(ehr_jwk_from_key(&j, dkey));
	CU_ASSERT_PTR_NULL(json_object_get(j, "d"));
	EHR_ASSERT_OK(ehr_jwk_parse(&k, j));
	EHR_ASSERT_OK(ehr_jwk_thumbprint(a, dkey));
	EHR_ASSERT_OK(ehr_jwk_thumbprint(b, k));
	CU_ASSERT_STRING_EQUAL(a, b);
	EHR_ASSERT_OK(ehr_jwk_thumbprint(b, okey));
	CU_ASSERT_STRING_NOT_EQUAL(a, b);
	EVP_PKEY_free(k);
	json_decref(j);
	for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++) {
		k = NULL;
		EHR_ASSERT_ERR(ehr_jwk_parse_text(&k, bad[i], strlen(bad[i])), EHR_ERR_AUTH);
		CU_ASSERT_PTR_NULL(k);
	}
}

/* -------------------------------------------------------------------- JWS */

static void test_jws_structure(void)
{
	struct auth_jws j;
	struct ehr_buf t = EHR_BUF_INIT(4096);
	static const char *bad[] = {
		"",
		"a",
		"a.b",
		"a.b.c.d",
		"..",
		"eyJhbGciOiJFUzI1NiJ9..",
		"eyJhbGciOiJFUzI1NiJ9.e30.",
		"eyJhbGciOiJub25lIn0.e30.",      /* alg none */
		"eyJhbGciOiJIUzI1NiJ9.e30.AAAA", /* HS256 */
		"eyJhbGciOiJlczI1NiJ9.e30.AAAA", /* "es256": case matters */
	};

	EHR_ASSERT_OK(authtest_es256_jws(&t, dkey, "{\"alg\":\"ES256\"}", "{\"a\":1}"));
	EHR_ASSERT_OK(auth_jws_parse(&j, (const char *)t.data, t.len));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j.payload, "a")), 1);
	EHR_ASSERT_OK(ehr_es256_verify(dkey, j.signing_input.data, j.signing_input.len, j.sig, 64));
	auth_jws_free(&j);
	ehr_buf_reset(&t);
	/* crit is refused: we understand no extension */
	EHR_ASSERT_OK(authtest_es256_jws(&t, dkey, "{\"alg\":\"ES256\",\"crit\":[\"x\"],\"x\":1}", "{}"));
	EHR_ASSERT_ERR(auth_jws_parse(&j, (const char *)t.data, t.len), EHR_ERR_AUTH);
	ehr_buf_reset(&t);
	/* duplicate keys are refused (a parser differential otherwise) */
	EHR_ASSERT_OK(ehr_b64url_encode(&t, "{\"alg\":\"ES256\",\"alg\":\"none\"}", 29));
	EHR_ASSERT_OK(ehr_buf_append_str(
	        &t, ".e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	            "AAAAAAAAAAAAAAAAAA"));
	EHR_ASSERT_ERR(auth_jws_parse(&j, (const char *)t.data, t.len), EHR_ERR_AUTH);
	for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++)
		EHR_ASSERT_ERR(auth_jws_parse(&j, bad[i], strlen(bad[i])), EHR_ERR_AUTH);
	ehr_buf_free(&t);
}

/* --------------------------------------------------------- access tokens */

static char jkt_d[EHR_JKT_LEN + 1];

static void test_token_roundtrip(void)
{
	struct auth_token_params p = params_at(time(NULL));
	struct auth_token_claims c;
	struct ehr_buf t = EHR_BUF_INIT(4096);

	EHR_ASSERT_OK(ehr_jwk_thumbprint(jkt_d, dkey));
	EHR_ASSERT_OK(auth_token_issue(&t, &p, "pt-abc", jkt_d, 900));
	EHR_ASSERT_OK(auth_token_verify(&c, &p, (const char *)t.data, t.len));
	CU_ASSERT_STRING_EQUAL(c.sub, "pt-abc");
	CU_ASSERT_STRING_EQUAL(c.role, "patient");
	CU_ASSERT_STRING_EQUAL(c.jkt, jkt_d);
	CU_ASSERT_EQUAL(c.exp - c.iat, 900);
	CU_ASSERT(strlen(c.jti) >= 16);
	/* longer than 15 minutes cannot even be issued */
	ehr_buf_reset(&t);
	EHR_ASSERT_ERR(auth_token_issue(&t, &p, "pt-abc", jkt_d, 901), EHR_ERR_INVAL);
	ehr_buf_free(&t);
}

/*
 * A standard JOSE library (libjwt) verifies our JWS signatures (JOSE r||s
 * form): the same signer, with typ "JWT" because libjwt 1.10 refuses any
 * other typ (so it also refuses our "at+jwt" access tokens as they are).
 */
static void test_token_libjwt_interop(void)
{
	struct auth_token_params p = params_at(time(NULL));
	struct ehr_buf t = EHR_BUF_INIT(4096), pem = EHR_BUF_INIT(4096);
	jwt_t *jwt = NULL;

	EHR_ASSERT_OK(authtest_es256_jws(&t, tkey, "{\"alg\":\"ES256\",\"typ\":\"JWT\"}",
	                                 "{\"sub\":\"pt-abc\",\"exp\":4102444800}"));
	EHR_ASSERT_OK(auth_key_public_pem(&pem, tkey));
	CU_ASSERT_EQUAL_FATAL(jwt_decode(&jwt, (const char *)t.data, pem.data, (int)pem.len), 0);
	CU_ASSERT_EQUAL(jwt_get_alg(jwt), JWT_ALG_ES256);
	CU_ASSERT_STRING_EQUAL(jwt_get_grant(jwt, "sub"), "pt-abc");
	jwt_free(jwt);
	jwt = NULL;
	/* and a one-bit change is caught by libjwt too */
	authtest_tamper_last(&t);
	CU_ASSERT_NOT_EQUAL(jwt_decode(&jwt, (const char *)t.data, pem.data, (int)pem.len), 0);
	jwt_free(jwt);
	ehr_buf_reset(&t);
	EHR_ASSERT_OK(auth_token_issue(&t, &p, "pt-abc", jkt_d, 600));
	ehr_buf_free(&t);
	ehr_buf_free(&pem);
}

static void payload_at(struct ehr_buf *pl, int64_t iat, int64_t exp, const char *iss, const char *aud)
{
	ehr_buf_reset(pl);
	ehr_buf_printf(pl,
	               "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"pt-abc\",\"role\":\"patient\","
	               "\"cnf\":{\"jkt\":\"%s\"},\"jti\":\"0123456789abcdef\",\"iat\":%lld,\"nbf\":%lld,"
	               "\"exp\":%lld}",
	               iss, aud, jkt_d, (long long)iat, (long long)iat, (long long)exp);
}

static void expect_token(int want, EVP_PKEY *key, const char *hdr, const struct ehr_buf *pl)
{
	struct auth_token_params p = params_at(time(NULL));
	struct auth_token_claims c;
	struct ehr_buf t = EHR_BUF_INIT(4096);

	EHR_ASSERT_OK(authtest_es256_jws(&t, key, hdr, (const char *)pl->data));
	EHR_ASSERT_ERR(auth_token_verify(&c, &p, (const char *)t.data, t.len), want);
	ehr_buf_free(&t);
}

static void test_token_claim_checks(void)
{
	struct ehr_buf pl = EHR_BUF_INIT(4096), hdr = EHR_BUF_INIT(512);
	int64_t now = time(NULL);

	ehr_buf_printf(&hdr, "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", kid);
	payload_at(&pl, now, now + 600, "urn:ehrgate", "urn:ehrgate:api");
	expect_token(0, tkey, (const char *)hdr.data, &pl);            /* control: the crafted form passes */
	expect_token(EHR_ERR_AUTH, okey, (const char *)hdr.data, &pl); /* signed by someone else */
	payload_at(&pl, now - 1000, now - 100, "urn:ehrgate", "urn:ehrgate:api");
	expect_token(EHR_ERR_EXPIRED, tkey, (const char *)hdr.data, &pl); /* expired */
	payload_at(&pl, now + 120, now + 700, "urn:ehrgate", "urn:ehrgate:api");
	expect_token(EHR_ERR_AUTH, tkey, (const char *)hdr.data, &pl); /* iat/nbf in the future */
	payload_at(&pl, now, now + 3600, "urn:ehrgate", "urn:ehrgate:api");
	expect_token(EHR_ERR_AUTH, tkey, (const char *)hdr.data, &pl); /* lifetime > 15 min */
	payload_at(&pl, now, now + 600, "urn:evil", "urn:ehrgate:api");
	expect_token(EHR_ERR_AUTH, tkey, (const char *)hdr.data, &pl); /* iss */
	payload_at(&pl, now, now + 600, "urn:ehrgate", "urn:other");
	expect_token(EHR_ERR_AUTH, tkey, (const char *)hdr.data, &pl); /* aud */
	payload_at(&pl, now, now + 600, "urn:ehrgate", "urn:ehrgate:api");
	expect_token(EHR_ERR_AUTH, tkey, "{\"alg\":\"ES256\",\"typ\":\"dpop+jwt\"}", &pl); /* typ */
	expect_token(EHR_ERR_AUTH, tkey, "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"x\"}",
	             &pl); /* kid */
	ehr_buf_free(&pl);
	ehr_buf_free(&hdr);
}

static void test_token_tampered(void)
{
	struct auth_token_params p = params_at(time(NULL));
	struct auth_token_claims c;
	struct ehr_buf t = EHR_BUF_INIT(4096);

	EHR_ASSERT_OK(auth_token_issue(&t, &p, "pt-abc", jkt_d, 600));
	authtest_tamper_last(&t);
	EHR_ASSERT_ERR(auth_token_verify(&c, &p, (const char *)t.data, t.len), EHR_ERR_AUTH);
	ehr_buf_free(&t);
}

/* libjwt 1.10 accepts an HS256 token keyed with our public key PEM; we must not. */
static void test_token_alg_confusion(void)
{
	struct auth_token_params p = params_at(time(NULL));
	struct auth_token_claims c;
	struct ehr_buf pl = EHR_BUF_INIT(4096), pem = EHR_BUF_INIT(4096), t = EHR_BUF_INIT(4096);
	int64_t now = time(NULL);
	jwt_t *jwt = NULL;

	payload_at(&pl, now, now + 600, "urn:ehrgate", "urn:ehrgate:api");
	EHR_ASSERT_OK(auth_key_public_pem(&pem, tkey));
	EHR_ASSERT_OK(authtest_libjwt_token(&t, "HS256", (const char *)pl.data, kid, pem.data, pem.len));
	/* the pitfall is real: libjwt alone verifies it with the public key */
	CU_ASSERT_EQUAL(jwt_decode(&jwt, (const char *)t.data, pem.data, (int)pem.len), 0);
	CU_ASSERT_EQUAL(jwt_get_alg(jwt), JWT_ALG_HS256);
	jwt_free(jwt);
	EHR_ASSERT_ERR(auth_token_verify(&c, &p, (const char *)t.data, t.len), EHR_ERR_AUTH);
	ehr_buf_reset(&t);
	EHR_ASSERT_OK(authtest_libjwt_token(&t, "none", (const char *)pl.data, kid, NULL, 0));
	EHR_ASSERT_ERR(auth_token_verify(&c, &p, (const char *)t.data, t.len), EHR_ERR_AUTH);
	ehr_buf_free(&pl);
	ehr_buf_free(&pem);
	ehr_buf_free(&t);
}

/* ------------------------------------------------------------------- DPoP */

#define URL "https://gw.example:8443/v1/whoami"

static void test_dpop_ok_and_rfc_vector(void)
{
	struct ehr_buf pr = EHR_BUF_INIT(4096);
	struct auth_dpop_claims c;
	int64_t now = time(NULL);
	/* RFC 9449 §4.1 example proof (iat 1562262616). */
	static const char *rfc = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw"
	                         "4dEZyaHgtMzR0VjNoUklD"
	                         "UkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmF"
	                         "qSG10NnY5VERWclUwQ2R2"
	                         "R1JEQSIsImNydiI6IlAtMjU2In19."
	                         "eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBz"
	                         "Oi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-"
	                         "GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiM"
	                         "LvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";

	EHR_ASSERT_OK(auth_dpop_create(&pr, dkey, "GET", URL "?q=1", "tok", now));
	EHR_ASSERT_OK(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET", URL, "tok", now, 60, 5));
	CU_ASSERT_STRING_EQUAL(c.jkt, jkt_d);
	/* htu comparison ignores query, default port and host case */
	EHR_ASSERT_OK(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET",
	                               "https://GW.example:8443/v1/whoami#x", "tok", now, 60, 5));
	EHR_ASSERT_OK(auth_dpop_verify(&c, rfc, strlen(rfc), "POST", "https://server.example.com:443/token",
	                               NULL, 1562262616, 60, 5));
	CU_ASSERT_STRING_EQUAL(c.jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
	CU_ASSERT_STRING_EQUAL(c.jti, "-BwC3ESc6acc2lTc");
	ehr_buf_free(&pr);
}

static void test_dpop_refusals(void)
{
	struct ehr_buf pr = EHR_BUF_INIT(4096), j = EHR_BUF_INIT(4096), hdr = EHR_BUF_INIT(1024);
	struct auth_dpop_claims c;
	json_t *jwk = NULL;
	int64_t now = time(NULL);
	char *jwks;

	EHR_ASSERT_OK(auth_dpop_create(&pr, dkey, "GET", URL, "tok", now));
	EHR_ASSERT_ERR(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "POST", URL, "tok", now, 60, 5),
	               EHR_ERR_AUTH); /* htm */
	EHR_ASSERT_ERR(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET",
	                                "https://gw.example:8443/v1/other", "tok", now, 60, 5),
	               EHR_ERR_AUTH); /* htu path */
	EHR_ASSERT_ERR(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET",
	                                "https://evil.example:8443/v1/whoami", "tok", now, 60, 5),
	               EHR_ERR_AUTH); /* htu host */
	EHR_ASSERT_ERR(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET", URL, "other", now, 60, 5),
	               EHR_ERR_AUTH); /* ath */
	EHR_ASSERT_ERR(
	        auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET", URL, "tok", now + 61, 60, 5),
	        EHR_ERR_AUTH); /* stale iat */
	EHR_ASSERT_ERR(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET", URL, "tok", now - 6, 60, 5),
	               EHR_ERR_AUTH); /* iat in the future */
	authtest_tamper_last(&pr);
	EHR_ASSERT_ERR(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET", URL, "tok", now, 60, 5),
	               EHR_ERR_AUTH); /* tampered */
	/* a proof with no ath where one is required */
	ehr_buf_reset(&pr);
	EHR_ASSERT_OK(auth_dpop_create(&pr, dkey, "GET", URL, NULL, now));
	EHR_ASSERT_ERR(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET", URL, "tok", now, 60, 5),
	               EHR_ERR_AUTH);
	/* header jwk is dkey but signed by okey */
	EHR_ASSERT_OK(ehr_jwk_from_key(&jwk, dkey));
	jwks = json_dumps(jwk, JSON_COMPACT);
	ehr_buf_printf(&hdr, "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":%s}", jwks);
	ehr_buf_printf(&j, "{\"jti\":\"0123456789abcdefg\",\"htm\":\"GET\",\"htu\":\"%s\",\"iat\":%lld}", URL,
	               (long long)now);
	ehr_buf_reset(&pr);
	EHR_ASSERT_OK(authtest_es256_jws(&pr, okey, (const char *)hdr.data, (const char *)j.data));
	EHR_ASSERT_ERR(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET", URL, NULL, now, 60, 5),
	               EHR_ERR_AUTH);
	/* the same, properly signed, passes (the crafted form is valid) */
	ehr_buf_reset(&pr);
	EHR_ASSERT_OK(authtest_es256_jws(&pr, dkey, (const char *)hdr.data, (const char *)j.data));
	EHR_ASSERT_OK(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET", URL, NULL, now, 60, 5));
	/* wrong typ */
	ehr_buf_reset(&hdr);
	ehr_buf_printf(&hdr, "{\"typ\":\"JWT\",\"alg\":\"ES256\",\"jwk\":%s}", jwks);
	ehr_buf_reset(&pr);
	EHR_ASSERT_OK(authtest_es256_jws(&pr, dkey, (const char *)hdr.data, (const char *)j.data));
	EHR_ASSERT_ERR(auth_dpop_verify(&c, (const char *)pr.data, pr.len, "GET", URL, NULL, now, 60, 5),
	               EHR_ERR_AUTH);
	free(jwks);
	json_decref(jwk);
	ehr_buf_free(&pr);
	ehr_buf_free(&j);
	ehr_buf_free(&hdr);
}

/* ------------------------------------------------------- CSR and certs */

static void test_csr(void)
{
	struct ehr_buf pem = EHR_BUF_INIT(8192);
	X509_REQ *req = NULL;
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	char *p;

	EHR_ASSERT_OK(auth_csr_create(&pem, dkey, "anything"));
	EHR_ASSERT_OK(auth_csr_parse(&req, (const char *)pem.data, pem.len));
	X509_REQ_free(req);
	/* tamper with the body: the self-signature no longer verifies */
	p = strstr((char *)pem.data, "\n") + 30;
	*p = *p == 'A' ? 'B' : 'A';
	EHR_ASSERT_ERR(auth_csr_parse(&req, (const char *)pem.data, pem.len), EHR_ERR_INVAL);
	ehr_buf_reset(&pem);
	/* RSA key: refused */
	{
		X509_REQ *r = X509_REQ_new();
		BIO *bio = BIO_new(BIO_s_mem());
		char *d;
		long n;
		X509_REQ_set_pubkey(r, rsa);
		X509_REQ_sign(r, rsa, EVP_sha256());
		PEM_write_bio_X509_REQ(bio, r);
		n = BIO_get_mem_data(bio, &d);
		EHR_ASSERT_ERR(auth_csr_parse(&req, d, (size_t)n), EHR_ERR_INVAL);
		BIO_free(bio);
		X509_REQ_free(r);
	}
	EHR_ASSERT_ERR(auth_csr_parse(&req, "garbage", 7), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(auth_csr_parse(&req, "", 0), EHR_ERR_INVAL);
	EVP_PKEY_free(rsa);
	ehr_buf_free(&pem);
}

static void test_cert_issue(void)
{
	X509 *ca = NULL, *cert = NULL, *foreign = NULL;
	EVP_PKEY *cak = NULL, *fk = NULL;
	struct auth_cert_params p = { "srv-0123", "server", time(NULL) - 60, time(NULL) + 90 * 86400 };
	char serial[65], id[128], role[16];
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *sc = X509_STORE_CTX_new();
	EXTENDED_KEY_USAGE *eku;

	EHR_ASSERT_OK(authtest_make_ca(&ca, &cak, "test regca"));
	EHR_ASSERT_OK(authtest_make_ca(&foreign, &fk, "foreign"));
	EHR_ASSERT_OK(auth_cert_issue(&cert, dkey, ca, cak, &p));
	EHR_ASSERT_OK(auth_cert_serial_hex(serial, cert));
	CU_ASSERT_EQUAL(strlen(serial), 32);
	EHR_ASSERT_OK(auth_cert_subject(id, sizeof(id), role, sizeof(role), cert));
	CU_ASSERT_STRING_EQUAL(id, "srv-0123");
	CU_ASSERT_STRING_EQUAL(role, "server");
	eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(eku);
	CU_ASSERT_EQUAL(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_client_auth);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	/* chains to its CA, with the TLS client purpose */
	X509_STORE_add_cert(st, ca);
	X509_STORE_CTX_init(sc, st, cert, NULL);
	X509_STORE_CTX_set_purpose(sc, X509_PURPOSE_SSL_CLIENT);
	CU_ASSERT_EQUAL(X509_verify_cert(sc), 1);
	X509_STORE_CTX_free(sc);
	X509_STORE_free(st);
	/* not with a foreign CA */
	st = X509_STORE_new();
	sc = X509_STORE_CTX_new();
	X509_STORE_add_cert(st, foreign);
	X509_STORE_CTX_init(sc, st, cert, NULL);
	CU_ASSERT_NOT_EQUAL(X509_verify_cert(sc), 1);
	X509_STORE_CTX_free(sc);
	X509_STORE_free(st);
	/* two issuances never share a serial */
	{
		X509 *c2 = NULL;
		char s2[65];
		EHR_ASSERT_OK(auth_cert_issue(&c2, dkey, ca, cak, &p));
		EHR_ASSERT_OK(auth_cert_serial_hex(s2, c2));
		CU_ASSERT_STRING_NOT_EQUAL(serial, s2);
		X509_free(c2);
	}
	X509_free(cert);
	X509_free(ca);
	X509_free(foreign);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(fk);
}

/* --------------------------------------------------- pseudonyms, limits */

static void test_pseudonym(void)
{
	uint8_t k1[32] = { 1 }, k2[32] = { 2 };
	char a[128], b[128], c[128];

	EHR_ASSERT_OK(auth_pseudonym(a, k1, "patient", "MRN-1234"));
	EHR_ASSERT_OK(auth_pseudonym(b, k1, "patient", "MRN-1234"));
	EHR_ASSERT_OK(auth_pseudonym(c, k2, "patient", "MRN-1234"));
	CU_ASSERT_STRING_EQUAL(a, b);
	CU_ASSERT_STRING_NOT_EQUAL(a, c);
	CU_ASSERT_EQUAL(strncmp(a, "pt-", 3), 0);
	CU_ASSERT_EQUAL(strlen(a), 46);
	CU_ASSERT_PTR_NULL(strstr(a, "1234"));
	EHR_ASSERT_OK(auth_pseudonym(b, k1, "patient", "MRN-1235"));
	CU_ASSERT_STRING_NOT_EQUAL(a, b);
}

static void test_rate_limit(void)
{
	struct auth_rate r;
	uint64_t sup = 0;

	EHR_ASSERT_OK(auth__rate_init(&r, 60, 3)); /* 1 per second, burst 3 */
	CU_ASSERT_TRUE(auth__rate_take(&r, "10.0.0.1", 1000, true, NULL));
	CU_ASSERT_TRUE(auth__rate_take(&r, "10.0.0.1", 1000, true, NULL));
	CU_ASSERT_TRUE(auth__rate_take(&r, "10.0.0.1", 1000, true, NULL));
	CU_ASSERT_FALSE(auth__rate_take(&r, "10.0.0.1", 1000, true, NULL));
	CU_ASSERT_FALSE(auth__rate_take(&r, "10.0.0.1", 1500, true, NULL));
	CU_ASSERT_TRUE(auth__rate_take(&r, "10.0.0.2", 1500, true, NULL)); /* other address unaffected */
	CU_ASSERT_TRUE(auth__rate_take(&r, "10.0.0.1", 2001, true, &sup)); /* refilled one */
	CU_ASSERT_EQUAL(sup, 2);                                           /* the two refusals were counted */
	/* many addresses: memory stays bounded and lookups still work */
	for (int i = 0; i < 10000; i++) {
		char peer[32];
		snprintf(peer, sizeof(peer), "192.0.%d.%d", i / 256, i % 256);
		auth__rate_take(&r, peer, 3000, false, NULL);
	}
	auth__rate_free(&r);
}

static void test_duration(void)
{
	int64_t v;

	EHR_ASSERT_OK(auth_parse_duration(&v, "24h"));
	CU_ASSERT_EQUAL(v, 86400);
	EHR_ASSERT_OK(auth_parse_duration(&v, "1s"));
	CU_ASSERT_EQUAL(v, 1);
	EHR_ASSERT_OK(auth_parse_duration(&v, "90"));
	CU_ASSERT_EQUAL(v, 90);
	EHR_ASSERT_OK(auth_parse_duration(&v, "15m"));
	CU_ASSERT_EQUAL(v, 900);
	EHR_ASSERT_ERR(auth_parse_duration(&v, "h"), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(auth_parse_duration(&v, "-5s"), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(auth_parse_duration(&v, "99999999999d"), EHR_ERR_INVAL);
}

static void test_htu_normalize(void)
{
	static const char *cases[][2] = {
		{ "https://GW.Example:443/v1/x?a=1#f", "https://gw.example/v1/x" },
		{ "HTTPS://gw.example:8443/v1/X",
		  "https://gw.example:8443/v1/X" }, /* the path keeps its case */
		{ "http://h:80", "http://h/" },
		{ "https://[::1]:8443/p", "https://[::1]:8443/p" },
		{ "https://h:4430/p", "https://h:4430/p" },
	};
	static const char *bad[] = { "ftp://h/p", "https://user@h/p", "https:///p", "//h/p", "" };

	for (size_t i = 0; i < EHR_ARRAY_LEN(cases); i++) {
		struct ehr_buf b = EHR_BUF_INIT(256);
		EHR_ASSERT_OK(auth_htu_normalize(&b, cases[i][0]));
		CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&b), cases[i][1]);
		ehr_buf_free(&b);
	}
	for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++) {
		struct ehr_buf b = EHR_BUF_INIT(256);
		CU_ASSERT(auth_htu_normalize(&b, bad[i]) < 0);
		ehr_buf_free(&b);
	}
}

static void register_suites(void)
{
	EHR_ADD_SUITE("auth.pure", setup, teardown, { "es256", test_es256 },
	              { "jwk_thumbprint_rfc9449", test_jwk_thumbprint_vector },
	              { "jwk_roundtrip_and_refusals", test_jwk_roundtrip_and_refusals },
	              { "jws_structure", test_jws_structure }, { "token_roundtrip", test_token_roundtrip },
	              { "token_libjwt_interop", test_token_libjwt_interop },
	              { "token_claim_checks", test_token_claim_checks },
	              { "token_tampered", test_token_tampered },
	              { "token_alg_confusion", test_token_alg_confusion },
	              { "dpop_ok_and_rfc_vector", test_dpop_ok_and_rfc_vector },
	              { "dpop_refusals", test_dpop_refusals }, { "csr", test_csr },
	              { "cert_issue", test_cert_issue }, { "pseudonym", test_pseudonym },
	              { "rate_limit", test_rate_limit }, { "duration", test_duration },
	              { "htu_normalize", test_htu_normalize });
}

EHR_TEST_MAIN(register_suites)
