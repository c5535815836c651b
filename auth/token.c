/*
 * token.c - access tokens (RFC 9068 shape, ES256), DPoP proofs (RFC 9449),
 * the signed enrolment/login strings and pseudonyms. All pure functions.
 */
#include <ctype.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/auth.h"
#include "auth/auth_internal.h"

/* Copy a required string claim of 1..cap-1 bytes. */
static int claim_str(char *dst, size_t cap, const json_t *obj, const char *name)
{
	const json_t *v = json_object_get(obj, name);
	size_t n;

	if (!json_is_string(v))
		return ehr_error_set(EHR_ERR_AUTH, "claim '%s' missing or not a string", name);
	n = json_string_length(v);
	if (n == 0 || n >= cap || strlen(json_string_value(v)) != n)
		return ehr_error_set(EHR_ERR_AUTH, "claim '%s' has a bad length", name);
	memcpy(dst, json_string_value(v), n + 1);
	return 0;
}

static int claim_time(int64_t *out, const json_t *obj, const char *name)
{
	const json_t *v = json_object_get(obj, name);

	/* NumericDate as an integer; fractions and strings are refused. */
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 253402300799LL)
		return ehr_error_set(EHR_ERR_AUTH, "claim '%s' missing or not an integer time", name);
	*out = json_integer_value(v);
	return 0;
}

static bool str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

int auth_token_issue(struct ehr_buf *out, const struct auth_token_params *p, const char *sub, const char *jkt,
                     int64_t ttl)
{
	struct ehr_buf jti = EHR_BUF_INIT(64);
	json_t *hdr = NULL, *pl = NULL;
	int err = 0;

	ENSURE(ttl > 0 && ttl <= AUTH_TOKEN_MAX_TTL, EHR_ERR_INVAL);
	ENSURE(sub != NULL && strlen(sub) <= AUTH_MAX_ID && jkt != NULL && strlen(jkt) == EHR_JKT_LEN,
	       EHR_ERR_INVAL);
	GUARD_GOTO(ehr_random_token(&jti, 16));
	hdr = json_pack("{s:s,s:s,s:s}", "alg", "ES256", "typ", "at+jwt", "kid", p->kid);
	pl = json_pack("{s:s,s:s,s:s,s:s,s:{s:s},s:s,s:I,s:I,s:I}", "iss", p->iss, "aud", p->aud, "sub", sub,
	               "role", "patient", "cnf", "jkt", jkt, "jti", ehr_buf_cstr(&jti), "iat",
	               (json_int_t)p->now, "nbf", (json_int_t)p->now, "exp", (json_int_t)(p->now + ttl));
	ENSURE_GOTO(hdr != NULL && pl != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(auth_jws_sign(out, p->key, hdr, pl));
out:
	json_decref(hdr);
	json_decref(pl);
	ehr_buf_free(&jti);
	return err;
}

int auth_token_verify(struct auth_token_claims *out, const struct auth_token_params *p, const char *token,
                      size_t len)
{
	struct auth_jws j;
	const json_t *cnf;
	int err;

	memset(out, 0, sizeof(*out));
	GUARD(auth_jws_parse(&j, token, len));
	if (!str_eq(json_string_value(json_object_get(j.header, "typ")), "at+jwt")) {
		err = ehr_error_set(EHR_ERR_AUTH, "token typ must be at+jwt");
		goto out;
	}
	if (!str_eq(json_string_value(json_object_get(j.header, "kid")), p->kid)) {
		err = ehr_error_set(EHR_ERR_AUTH, "token kid is not ours");
		goto out;
	}
	if (json_object_get(j.header, "jwk") != NULL || json_object_get(j.header, "jku") != NULL ||
	    json_object_get(j.header, "x5c") != NULL || json_object_get(j.header, "x5u") != NULL) {
		err = ehr_error_set(EHR_ERR_AUTH, "token header must not carry keys");
		goto out;
	}
	GUARD_GOTO(ehr_es256_verify(p->key, j.signing_input.data, j.signing_input.len, j.sig, sizeof(j.sig)));
	if (!str_eq(json_string_value(json_object_get(j.payload, "iss")), p->iss)) {
		err = ehr_error_set(EHR_ERR_AUTH, "token iss is not ours");
		goto out;
	}
	if (!str_eq(json_string_value(json_object_get(j.payload, "aud")), p->aud)) {
		err = ehr_error_set(EHR_ERR_AUTH, "token aud is not ours");
		goto out;
	}
	GUARD_GOTO(claim_str(out->sub, sizeof(out->sub), j.payload, "sub"));
	GUARD_GOTO(claim_str(out->role, sizeof(out->role), j.payload, "role"));
	GUARD_GOTO(claim_str(out->jti, sizeof(out->jti), j.payload, "jti"));
	cnf = json_object_get(j.payload, "cnf");
	if (!json_is_object(cnf)) {
		err = ehr_error_set(EHR_ERR_AUTH, "token has no cnf");
		goto out;
	}
	GUARD_GOTO(claim_str(out->jkt, sizeof(out->jkt), cnf, "jkt"));
	if (strlen(out->jkt) != EHR_JKT_LEN || strcmp(out->role, "patient") != 0) {
		err = ehr_error_set(EHR_ERR_AUTH, "token cnf.jkt or role invalid");
		goto out;
	}
	GUARD_GOTO(claim_time(&out->iat, j.payload, "iat"));
	GUARD_GOTO(claim_time(&out->nbf, j.payload, "nbf"));
	GUARD_GOTO(claim_time(&out->exp, j.payload, "exp"));
	if (out->iat > p->now + p->skew || out->nbf > p->now + p->skew) {
		err = ehr_error_set(EHR_ERR_AUTH, "token not yet valid");
		goto out;
	}
	if (out->exp <= out->iat || out->exp - out->iat > AUTH_TOKEN_MAX_TTL) {
		err = ehr_error_set(EHR_ERR_AUTH, "token lifetime invalid");
		goto out;
	}
	if (out->exp <= p->now - p->skew) {
		err = ehr_error_set(EHR_ERR_EXPIRED, "token expired");
		goto out;
	}
out:
	auth_jws_free(&j);
	if (err < 0)
		memset(out, 0, sizeof(*out));
	return err;
}

/* ------------------------------------------------------------------- DPoP */

int auth_htu_normalize(struct ehr_buf *out, const char *url)
{
	const char *p = url, *host, *end, *path;
	size_t hostlen, i;
	bool https;

	ENSURE(url != NULL, EHR_ERR_INVAL);
	if (strncasecmp(p, "https://", 8) == 0) {
		https = true;
		host = p + 8;
	} else if (strncasecmp(p, "http://", 7) == 0) {
		https = false;
		host = p + 7;
	} else {
		return ehr_error_set(EHR_ERR_AUTH, "htu must be an http(s) URL");
	}
	end = host + strcspn(host, "?#");
	path = memchr(host, '/', (size_t)(end - host));
	if (path == NULL)
		path = end;
	hostlen = (size_t)(path - host);
	ENSURE(hostlen > 0 && memchr(host, '@', hostlen) == NULL, EHR_ERR_AUTH);
	/* Drop the default port. */
	if (https && hostlen > 4 && memcmp(path - 4, ":443", 4) == 0) /* not secret */
		hostlen -= 4;
	if (!https && hostlen > 3 && memcmp(path - 3, ":80", 3) == 0) /* not secret */
		hostlen -= 3;
	GUARD(ehr_buf_append_str(out, https ? "https://" : "http://"));
	for (i = 0; i < hostlen; i++)
		GUARD(ehr_buf_append_u8(out, (uint8_t)tolower((unsigned char)host[i])));
	if (path == end)
		return ehr_buf_append_u8(out, '/');
	return ehr_buf_append(out, path, (size_t)(end - path));
}

static int ath_of(struct ehr_buf *out, const char *access_token)
{
	uint8_t md[32];

	ENSURE(EVP_Digest(access_token, strlen(access_token), md, NULL, EVP_sha256(), NULL) == 1,
	       EHR_ERR_CRYPTO);
	return ehr_b64url_encode(out, md, sizeof(md));
}

int auth_dpop_verify(struct auth_dpop_claims *out, const char *proof, size_t len, const char *method,
                     const char *url, const char *access_token, int64_t now, int64_t window, int64_t skew)
{
	struct auth_jws j;
	struct ehr_buf want = EHR_BUF_INIT(2048), got = EHR_BUF_INIT(2048), ath = EHR_BUF_INIT(64);
	EVP_PKEY *key = NULL;
	const char *s;
	int err;

	memset(out, 0, sizeof(*out));
	GUARD(auth_jws_parse(&j, proof, len));
	if (!str_eq(json_string_value(json_object_get(j.header, "typ")), "dpop+jwt")) {
		err = ehr_error_set(EHR_ERR_AUTH, "proof typ must be dpop+jwt");
		goto out;
	}
	GUARD_GOTO(ehr_jwk_parse(&key, json_object_get(j.header, "jwk")));
	GUARD_GOTO(ehr_es256_verify(key, j.signing_input.data, j.signing_input.len, j.sig, sizeof(j.sig)));
	if (!str_eq(json_string_value(json_object_get(j.payload, "htm")), method)) {
		err = ehr_error_set(EHR_ERR_AUTH, "proof htm does not match the request method");
		goto out;
	}
	s = json_string_value(json_object_get(j.payload, "htu"));
	if (s == NULL || strlen(s) > 2000 || auth_htu_normalize(&got, s) < 0 ||
	    auth_htu_normalize(&want, url) < 0 || strcmp(ehr_buf_cstr(&got), ehr_buf_cstr(&want)) != 0) {
		err = ehr_error_set(EHR_ERR_AUTH, "proof htu does not match the request URL");
		goto out;
	}
	GUARD_GOTO(claim_time(&out->iat, j.payload, "iat"));
	if (out->iat < now - window || out->iat > now + skew) {
		err = ehr_error_set(EHR_ERR_AUTH, "proof iat outside the acceptance window");
		goto out;
	}
	GUARD_GOTO(claim_str(out->jti, sizeof(out->jti), j.payload, "jti"));
	if (strlen(out->jti) < 16) {
		err = ehr_error_set(EHR_ERR_AUTH, "proof jti too short");
		goto out;
	}
	if (access_token != NULL) {
		GUARD_GOTO(ath_of(&ath, access_token));
		s = json_string_value(json_object_get(j.payload, "ath"));
		if (s == NULL || strlen(s) != ath.len || CRYPTO_memcmp(s, ath.data, ath.len) != 0) {
			err = ehr_error_set(EHR_ERR_AUTH, "proof ath does not match the access token");
			goto out;
		}
	}
	GUARD_GOTO(ehr_jwk_thumbprint(out->jkt, key));
out:
	if (err < 0 && err != EHR_ERR_NOMEM)
		err = EHR_ERR_AUTH;
	EVP_PKEY_free(key);
	auth_jws_free(&j);
	ehr_buf_free(&want);
	ehr_buf_free(&got);
	ehr_buf_free(&ath);
	if (err < 0)
		memset(out, 0, sizeof(*out));
	return err;
}

int auth_dpop_create(struct ehr_buf *out, EVP_PKEY *key, const char *method, const char *url,
                     const char *access_token, int64_t now)
{
	struct ehr_buf jti = EHR_BUF_INIT(64), htu = EHR_BUF_INIT(2048), ath = EHR_BUF_INIT(64);
	json_t *hdr = NULL, *pl = NULL, *jwk = NULL;
	int err;

	GUARD_GOTO(ehr_random_token(&jti, 16));
	GUARD_GOTO(auth_htu_normalize(&htu, url));
	GUARD_GOTO(ehr_jwk_from_key(&jwk, key));
	hdr = json_pack("{s:s,s:s,s:O}", "typ", "dpop+jwt", "alg", "ES256", "jwk", jwk);
	pl = json_pack("{s:s,s:s,s:s,s:I}", "jti", ehr_buf_cstr(&jti), "htm", method, "htu",
	               ehr_buf_cstr(&htu), "iat", (json_int_t)now);
	ENSURE_GOTO(hdr != NULL && pl != NULL, EHR_ERR_NOMEM);
	if (access_token != NULL) {
		GUARD_GOTO(ath_of(&ath, access_token));
		ENSURE_GOTO(json_object_set_new(pl, "ath", json_string(ehr_buf_cstr(&ath))) == 0,
		            EHR_ERR_NOMEM);
	}
	GUARD_GOTO(auth_jws_sign(out, key, hdr, pl));
out:
	json_decref(jwk);
	json_decref(hdr);
	json_decref(pl);
	ehr_buf_free(&jti);
	ehr_buf_free(&htu);
	ehr_buf_free(&ath);
	return err;
}

/* ------------------------------------------------------- signed strings */

int auth_enroll_message(struct ehr_buf *out, const char *code, const char *jkt)
{
	ENSURE(code != NULL && jkt != NULL, EHR_ERR_INVAL);
	return ehr_buf_printf(out, "%s\n%s\n%s", AUTH_ENROLL_PREFIX, code, jkt);
}

int auth_login_message(struct ehr_buf *out, const char *nonce, const char *ts, const char *patient_id)
{
	ENSURE(nonce != NULL && ts != NULL && patient_id != NULL, EHR_ERR_INVAL);
	return ehr_buf_printf(out, "%s\n%s\n%s\n%s", AUTH_LOGIN_PREFIX, nonce, ts, patient_id);
}

/* ------------------------------------------------------------- pseudonyms */

int auth_pseudonym(char out[AUTH_MAX_ID + 1], const uint8_t key[AUTH_PSEUDONYM_KEY_LEN], const char *kind,
                   const char *identifier)
{
	struct ehr_buf msg = EHR_BUF_INIT(4096), enc = EHR_BUF_INIT(64);
	uint8_t mac[32];
	unsigned maclen = 0;
	const char *prefix;
	int err;

	out[0] = '\0';
	if (strcmp(kind, "patient") == 0)
		prefix = "pt";
	else if (strcmp(kind, "server") == 0)
		prefix = "sv";
	else
		prefix = "ps";
	GUARD_GOTO(ehr_buf_printf(&msg, "ehrgate-pseudonym-v1\n%s\n%s", kind, identifier));
	ENSURE_GOTO(HMAC(EVP_sha256(), key, AUTH_PSEUDONYM_KEY_LEN, msg.data, msg.len, mac, &maclen) != NULL,
	            EHR_ERR_CRYPTO);
	GUARD_GOTO(ehr_buf_printf(&enc, "%s-", prefix));
	GUARD_GOTO(ehr_b64url_encode(&enc, mac, sizeof(mac)));
	memcpy(out, enc.data, enc.len + 1);
out:
	ehr_buf_free_secure(&msg);
	ehr_buf_free(&enc);
	OPENSSL_cleanse(mac, sizeof(mac));
	return err;
}

int auth_pseudonym_random(char out[AUTH_MAX_ID + 1])
{
	struct ehr_buf enc = EHR_BUF_INIT(64);
	uint8_t rnd[32];
	int err;

	out[0] = '\0';
	GUARD_GOTO(ehr_random(rnd, sizeof(rnd)));
	GUARD_GOTO(ehr_buf_printf(&enc, "pt-"));
	GUARD_GOTO(ehr_b64url_encode(&enc, rnd, sizeof(rnd)));
	memcpy(out, enc.data, enc.len + 1);
out:
	ehr_buf_free(&enc);
	return err;
}

int auth_patient_link_hash(uint8_t out[32], const uint8_t link_key[AUTH_PSEUDONYM_KEY_LEN],
                           const char *external_id)
{
	struct ehr_buf msg = EHR_BUF_INIT(4096);
	unsigned maclen = 0;
	int err;

	GUARD_GOTO(ehr_buf_printf(&msg, "ehrgate-link-v1\npatient\n%s", external_id));
	ENSURE_GOTO(HMAC(EVP_sha256(), link_key, AUTH_PSEUDONYM_KEY_LEN, msg.data, msg.len, out, &maclen) !=
	                            NULL &&
	                    maclen == 32,
	            EHR_ERR_CRYPTO);
out:
	ehr_buf_free_secure(&msg);
	return err;
}

int auth_parse_duration(int64_t *out, const char *s)
{
	char num[24];
	size_t n;
	int64_t mult = 1, v;

	ENSURE(s != NULL && (n = strlen(s)) > 0 && n < sizeof(num), EHR_ERR_INVAL);
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 's':
		mult = 1;
		num[--n] = '\0';
		break;
	case 'm':
		mult = 60;
		num[--n] = '\0';
		break;
	case 'h':
		mult = 3600;
		num[--n] = '\0';
		break;
	case 'd':
		mult = 86400;
		num[--n] = '\0';
		break;
	default: break;
	}
	ENSURE(n > 0, EHR_ERR_INVAL);
	if (ehr_parse_i64(&v, num, 1, 10LL * 365 * 86400) < 0 || v > 10LL * 365 * 86400 / mult)
		return ehr_error_set(EHR_ERR_INVAL, "duration must be N, Ns, Nm, Nh or Nd, at most 10 years");
	*out = v * mult;
	return 0;
}
