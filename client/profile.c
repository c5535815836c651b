/*
 * profile.c - libehrclient protocol flows (register, renew, enrol, login)
 * and the profile directory they leave behind (see client.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "client/client.h"
#include "client/client_internal.h"

const char *ehr_client_default_dir(void)
{
	static __thread char buf[4096];
	const char *d = getenv("EHRCTL_DIR"), *home = getenv("HOME");

	if (d != NULL && *d != '\0')
		return d;
	if (ehr_fmt(buf, sizeof(buf), "%s/.ehrctl", home ? home : ".") < 0)
		return ""; /* HOME longer than any path: no default */
	return buf;
}

static int path_in(struct ehr_buf *b, const char *dir, const char *name)
{
	ehr_buf_reset(b);
	return ehr_buf_printf(b, "%s/%s", dir, name);
}

static bool file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static int write_text(const char *dir, const char *name, const char *text, unsigned mode)
{
	struct ehr_buf p = EHR_BUF_INIT(4096);
	int err;

	GUARD(path_in(&p, dir, name));
	err = ehr_file_write_atomic(ehr_buf_cstr(&p), text, strlen(text), mode, false);
	ehr_buf_free(&p);
	return err;
}

static int write_json(const char *dir, const char *name, const json_t *j, unsigned mode)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	int err;

	ENSURE(s != NULL, EHR_ERR_NOMEM);
	err = write_text(dir, name, s, mode);
	OPENSSL_cleanse(s, strlen(s));
	free(s);
	return err;
}

static int save_key(const char *path, EVP_PKEY *key)
{
	struct ehr_buf b = EHR_BUF_INIT(16384);
	int err = auth_key_private_pem(&b, key);

	if (err == 0)
		err = ehr_file_write_atomic(path, b.data, b.len, 0600, false);
	ehr_buf_free_secure(&b);
	return err;
}

static int copy_file(const char *from, const char *dir, const char *name)
{
	struct ehr_buf b = EHR_BUF_INIT(1 << 20);
	int err = ehr_file_read(&b, from, 1 << 20);

	if (err == 0)
		err = write_text(dir, name, ehr_buf_cstr(&b), 0644);
	ehr_buf_free(&b);
	return err;
}

static int http_fail(struct ehr_client *c, long status, const char *what)
{
	return ehr_error_set(status == 401 || status == 403 ? EHR_ERR_AUTH
	                     : status == 429                ? EHR_ERR_RATE
	                     : status >= 500                ? EHR_ERR_UNAVAILABLE
	                                                    : EHR_ERR_INVAL,
	                     "%s: %s", what, ehr_client_last_error(c));
}

/* Write the certificate response of register/renew into dir. */
static int store_cert_response(const char *dir, const json_t *r, EVP_PKEY *key, const char *url,
                               const char *ca_file)
{
	struct ehr_buf p = EHR_BUF_INIT(4096);
	const char *cert = json_string_value(json_object_get(r, "certificate"));
	const char *chain = json_string_value(json_array_get(json_object_get(r, "ca_chain"), 0));
	const char *gwca = json_string_value(json_object_get(r, "gateway_ca"));
	const char *id = json_string_value(json_object_get(r, "id"));
	const char *role = json_string_value(json_object_get(r, "role"));
	json_t *prof = NULL;
	int err;

	ENSURE(cert && chain && gwca && id && role, EHR_ERR_PARSE);
	GUARD_GOTO(path_in(&p, dir, "key.pem"));
	GUARD_GOTO(save_key(ehr_buf_cstr(&p), key));
	GUARD_GOTO(write_text(dir, "cert.pem", cert, 0644));
	GUARD_GOTO(write_text(dir, "regca.pem", chain, 0644));
	if (ca_file != NULL)
		GUARD_GOTO(copy_file(ca_file, dir, "gateway-ca.pem"));
	else
		GUARD_GOTO(write_text(dir, "gateway-ca.pem", gwca, 0644));
	if (url != NULL) {
		prof = json_pack("{s:s,s:s,s:s,s:O}", "url", url, "role", role, "id", id, "not_after",
		                 json_object_get(r, "not_after"));
		ENSURE_GOTO(prof != NULL, EHR_ERR_NOMEM);
		GUARD_GOTO(write_json(dir, "profile.json", prof, 0644));
	}
out:
	json_decref(prof);
	ehr_buf_free(&p);
	return err;
}

int ehr_client_register(const char *url, const char *ca_file, const char *token, const char *dir,
                        json_t **info)
{
	struct ehr_client *c = NULL;
	struct ehr_client_opts o = { .url = url, .ca_file = ca_file };
	struct ehr_buf csr = EHR_BUF_INIT(8192);
	EVP_PKEY *key = NULL;
	json_t *req = NULL, *resp = NULL;
	long status = 0;
	int err;

	if (info)
		*info = NULL;
	GUARD_GOTO(ehr_mkdir_p(dir, 0700));
	GUARD_GOTO(auth_key_generate_p256(&key));
	GUARD_GOTO(auth_csr_create(&csr, key, "ehrctl"));
	GUARD_GOTO(ehr_client_new(&c, &o));
	req = json_pack("{s:s,s:s}", "csr", ehr_buf_cstr(&csr), "token", token);
	ENSURE_GOTO(req != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(ehr_client_json(c, &status, &resp, "POST", "/v1/register", req));
	if (status != 201) {
		err = http_fail(c, status, "registration refused");
		goto out;
	}
	GUARD_GOTO(store_cert_response(dir, resp, key, c->url, ca_file));
	if (info) {
		*info = resp;
		resp = NULL;
	}
out:
	json_decref(req);
	json_decref(resp);
	ehr_client_free(c);
	EVP_PKEY_free(key);
	ehr_buf_free(&csr);
	return err;
}

int ehr_client_renew(const char *dir, json_t **info)
{
	struct ehr_client *c = NULL;
	struct ehr_buf csr = EHR_BUF_INIT(8192);
	EVP_PKEY *key = NULL;
	json_t *req = NULL, *resp = NULL;
	long status = 0;
	int err;

	if (info)
		*info = NULL;
	GUARD_GOTO(ehr_client_open_profile(&c, dir));
	ENSURE_GOTO(strcmp(c->role, "patient") != 0, EHR_ERR_INVAL);
	GUARD_GOTO(auth_key_generate_p256(&key));
	GUARD_GOTO(auth_csr_create(&csr, key, "ehrctl"));
	req = json_pack("{s:s}", "csr", ehr_buf_cstr(&csr));
	ENSURE_GOTO(req != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(ehr_client_json(c, &status, &resp, "POST", "/v1/register/renew", req));
	if (status != 201) {
		err = http_fail(c, status, "renewal refused");
		goto out;
	}
	GUARD_GOTO(store_cert_response(dir, resp, key, NULL, NULL));
	if (info) {
		*info = resp;
		resp = NULL;
	}
out:
	json_decref(req);
	json_decref(resp);
	ehr_client_free(c);
	EVP_PKEY_free(key);
	ehr_buf_free(&csr);
	return err;
}

int ehr_client_enroll(const char *url, const char *ca_file, const char *patient_id, const char *code,
                      const char *key_file, const char *dir)
{
	struct ehr_client *c = NULL;
	struct ehr_client_opts o = { .url = url, .ca_file = ca_file };
	struct ehr_buf kp = EHR_BUF_INIT(4096), msg = EHR_BUF_INIT(1024), sig = EHR_BUF_INIT(256);
	char jkt[EHR_JKT_LEN + 1];
	EVP_PKEY *key = NULL;
	json_t *jwk = NULL, *req = NULL, *resp = NULL, *prof = NULL;
	long status = 0;
	int err;

	GUARD_GOTO(ehr_mkdir_p(dir, 0700));
	if (key_file != NULL)
		GUARD_GOTO(ehr_buf_append_str(&kp, key_file));
	else
		GUARD_GOTO(path_in(&kp, dir, "device.key"));
	if (file_exists(ehr_buf_cstr(&kp))) {
		GUARD_GOTO(auth_key_load_private(&key, ehr_buf_cstr(&kp)));
		ENSURE_GOTO(ehr_key_is_p256(key), EHR_ERR_INVAL);
	} else {
		GUARD_GOTO(auth_key_generate_p256(&key));
		GUARD_GOTO(save_key(ehr_buf_cstr(&kp), key));
	}
	GUARD_GOTO(ehr_jwk_from_key(&jwk, key));
	GUARD_GOTO(ehr_jwk_thumbprint(jkt, key));
	GUARD_GOTO(auth_enroll_message(&msg, code, jkt));
	GUARD_GOTO(ehr_es256_sign_b64url(&sig, key, msg.data, msg.len));
	req = json_pack("{s:s,s:s,s:O,s:s}", "patient_id", patient_id, "code", code, "jwk", jwk, "signature",
	                ehr_buf_cstr(&sig));
	ENSURE_GOTO(req != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(ehr_client_new(&c, &o));
	GUARD_GOTO(ehr_client_json(c, &status, &resp, "POST", "/v1/enroll", req));
	if (status != 200) {
		err = http_fail(c, status, "enrolment refused");
		goto out;
	}
	if (ca_file != NULL)
		GUARD_GOTO(copy_file(ca_file, dir, "gateway-ca.pem"));
	prof = json_pack("{s:s,s:s,s:s,s:s,s:s}", "url", c->url, "role", "patient", "id", patient_id, "key",
	                 ehr_buf_cstr(&kp), "jkt", jkt);
	ENSURE_GOTO(prof != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(write_json(dir, "profile.json", prof, 0644));
out:
	json_decref(jwk);
	json_decref(req);
	json_decref(resp);
	json_decref(prof);
	ehr_client_free(c);
	EVP_PKEY_free(key);
	ehr_buf_free(&kp);
	ehr_buf_free(&msg);
	ehr_buf_free(&sig);
	return err;
}

int ehr_client_login_with(struct ehr_client *c, const char *patient_id, EVP_PKEY *key, json_t **token)
{
	struct ehr_buf msg = EHR_BUF_INIT(1024), sig = EHR_BUF_INIT(256);
	json_t *req = NULL, *resp = NULL;
	const char *nonce, *at;
	char ts[24];
	long status = 0;
	int64_t expires_in;
	char *saved = c->token;
	int err;

	*token = NULL;
	c->token = NULL; /* the login calls are public: no stale DPoP headers */
	req = json_pack("{s:s}", "patient_id", patient_id);
	ENSURE_GOTO(req != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(ehr_client_json(c, &status, &resp, "POST", "/v1/auth/challenge", req));
	if (status != 200 || (nonce = json_string_value(json_object_get(resp, "nonce"))) == NULL) {
		err = http_fail(c, status, "challenge refused");
		goto out;
	}
	GUARD_GOTO(ehr_fmt(ts, sizeof(ts), "%lld", (long long)time(NULL)));
	GUARD_GOTO(auth_login_message(&msg, nonce, ts, patient_id));
	GUARD_GOTO(ehr_es256_sign_b64url(&sig, key, msg.data, msg.len));
	json_decref(req);
	req = json_pack("{s:s,s:s,s:s,s:s}", "patient_id", patient_id, "nonce", nonce, "ts", ts, "signature",
	                ehr_buf_cstr(&sig));
	ENSURE_GOTO(req != NULL, EHR_ERR_NOMEM);
	json_decref(resp);
	resp = NULL;
	GUARD_GOTO(ehr_client_json(c, &status, &resp, "POST", "/v1/auth/token", req));
	at = json_string_value(json_object_get(resp, "access_token"));
	if (status != 200 || at == NULL) {
		err = http_fail(c, status, "login refused");
		goto out;
	}
	expires_in = json_integer_value(json_object_get(resp, "expires_in"));
	*token = json_pack("{s:s,s:s,s:I}", "access_token", at, "patient_id", patient_id, "expires_at",
	                   (json_int_t)(time(NULL) + expires_in));
	ENSURE_GOTO(*token != NULL, EHR_ERR_NOMEM);
	free(saved);
	saved = NULL;
	c->token = strdup(at);
	ENSURE_GOTO(c->token != NULL, EHR_ERR_NOMEM);
out:
	if (saved != NULL)
		c->token = saved;
	json_decref(req);
	json_decref(resp);
	ehr_buf_free(&msg);
	ehr_buf_free(&sig);
	return err;
}

static int open_profile(struct ehr_client **out, const char *dir, bool auto_login)
{
	struct ehr_buf p = EHR_BUF_INIT(4096), ca = EHR_BUF_INIT(4096), cert = EHR_BUF_INIT(4096),
	               key = EHR_BUF_INIT(4096), prof = EHR_BUF_INIT(65536), tb = EHR_BUF_INIT(65536);
	struct ehr_client_opts o = { 0 };
	struct ehr_client *c = NULL;
	json_t *pj = NULL, *tj = NULL, *fresh = NULL;
	EVP_PKEY *dkey = NULL;
	const char *role, *id;
	int err;

	*out = NULL;
	GUARD_GOTO(path_in(&p, dir, "profile.json"));
	if (ehr_file_read(&prof, ehr_buf_cstr(&p), 65536) < 0) {
		err = ehr_error_set(EHR_ERR_NOT_FOUND,
		                    "no profile in %s (run ehrctl register or ehrctl patient enroll)", dir);
		goto out;
	}
	GUARD_GOTO(ehr_json_parse(&pj, prof.data, prof.len, 65536, 4));
	GUARD_GOTO(ehr_json_get_str(pj, "url", &o.url, 2048));
	GUARD_GOTO(ehr_json_get_str(pj, "role", &role, 15));
	GUARD_GOTO(ehr_json_get_str(pj, "id", &id, 127));
	GUARD_GOTO(path_in(&ca, dir, "gateway-ca.pem"));
	if (file_exists(ehr_buf_cstr(&ca)))
		o.ca_file = ehr_buf_cstr(&ca);
	if (strcmp(role, "patient") == 0) {
		const char *kf = json_string_value(json_object_get(pj, "key"));
		if (kf == NULL) {
			GUARD_GOTO(path_in(&key, dir, "device.key"));
			kf = ehr_buf_cstr(&key);
		}
		GUARD_GOTO(auth_key_load_private(&dkey, kf));
		o.dpop_key = dkey;
	} else {
		GUARD_GOTO(path_in(&cert, dir, "cert.pem"));
		GUARD_GOTO(path_in(&key, dir, "key.pem"));
		o.cert_file = ehr_buf_cstr(&cert);
		o.key_file = ehr_buf_cstr(&key);
	}
	GUARD_GOTO(ehr_client_new(&c, &o));
	GUARD_GOTO(ehr_str_copy(c->role, sizeof(c->role), role));
	GUARD_GOTO(ehr_str_copy(c->id, sizeof(c->id), id));
	c->dir = strdup(dir);
	ENSURE_GOTO(c->dir != NULL, EHR_ERR_NOMEM);
	if (dkey != NULL && auto_login) {
		GUARD_GOTO(path_in(&p, dir, "token.json"));
		if (ehr_file_read(&tb, ehr_buf_cstr(&p), 65536) == 0 &&
		    ehr_json_parse(&tj, tb.data, tb.len, 65536, 4) == 0 &&
		    json_integer_value(json_object_get(tj, "expires_at")) > (json_int_t)time(NULL) + 30 &&
		    json_string_value(json_object_get(tj, "access_token")) != NULL) {
			GUARD_GOTO(ehr_client_set_token(
			        c, json_string_value(json_object_get(tj, "access_token"))));
		} else {
			ehr_error_clear();
			GUARD_GOTO(ehr_client_login_with(c, id, dkey, &fresh));
			GUARD_GOTO(write_json(dir, "token.json", fresh, 0600));
		}
	}
	*out = c;
	c = NULL;
out:
	ehr_client_free(c);
	EVP_PKEY_free(dkey);
	json_decref(pj);
	json_decref(tj);
	json_decref(fresh);
	ehr_buf_free(&p);
	ehr_buf_free(&ca);
	ehr_buf_free(&cert);
	ehr_buf_free(&key);
	ehr_buf_free(&prof);
	ehr_buf_free_secure(&tb);
	return err;
}

int ehr_client_open_profile(struct ehr_client **out, const char *dir)
{
	return open_profile(out, dir, true);
}

int ehr_client_login(const char *dir)
{
	struct ehr_client *c = NULL;
	json_t *tok = NULL;
	int err;

	GUARD_GOTO(open_profile(&c, dir, false));
	if (c->dpop_key == NULL) {
		err = ehr_error_set(EHR_ERR_INVAL, "the profile in %s is not a patient's", dir);
		goto out;
	}
	GUARD_GOTO(ehr_client_login_with(c, c->id, c->dpop_key, &tok));
	GUARD_GOTO(write_json(dir, "token.json", tok, 0600));
out:
	json_decref(tok);
	ehr_client_free(c);
	return err;
}
