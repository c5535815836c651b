/*
 * client.h - libehrclient: talk to an ehrgate gateway as a medical server,
 * an auditor (mutual TLS) or a patient (DPoP-bound access token).
 *
 * TLS is always verified against a pinned gateway CA (the gateway_ca the
 * gateway returned at registration, or the file given). A patient client
 * signs a fresh DPoP proof (RFC 9449: htm, htu, iat, jti, ath) with its
 * device key for every request it sends; nothing is ever sent twice.
 *
 * Profiles: a directory written by `ehrctl register` or `ehrctl patient
 * enroll` (docs/PROTOCOL.md §8):
 *   profile.json   {"url","role","id"}           (0644)
 *   gateway-ca.pem the gateway CA to pin          (0644)
 *   key.pem        server/auditor private key     (0600)
 *   cert.pem       client certificate, regca.pem its CA
 *   device.key     patient device key (PKCS#8)    (0600)
 *   token.json     patient access token           (0600)
 */
#ifndef EHR_CLIENT_H
#define EHR_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/common.h"

#define EHR_CLIENT_MAX_RESPONSE (64u << 20)

struct ehr_client;

struct ehr_client_opts {
	const char *url;          /* base URL, "https://host:port" */
	const char *ca_file;      /* gateway CA to pin; NULL = system trust store */
	const char *cert_file;    /* client certificate for mTLS, or NULL */
	const char *key_file;     /* its private key */
	EVP_PKEY *dpop_key;       /* device key: sign a DPoP proof per request (a reference is taken) */
	const char *access_token; /* DPoP-bound access token, or NULL */
	long timeout_ms;          /* 0 = 30 s */
};

int ehr_client_new(struct ehr_client **out, const struct ehr_client_opts *o);
void ehr_client_free(struct ehr_client *c);
int ehr_client_set_token(struct ehr_client *c, const char *access_token);
/* The bound on each later request, connection to last byte (0 = 30 s):
 * a long-lived stream (SSE) sets it to how long one connection may last. */
void ehr_client_set_timeout(struct ehr_client *c, long timeout_ms);

/* Called with response body chunks; return false to abort the transfer. */
typedef bool (*ehr_client_data_fn)(const void *data, size_t len, void *ud);

/*
 * One HTTP request to base URL + path (path may carry a query). extra
 * headers: NULL-terminated "Name: value" strings, or NULL. The body goes to
 * on_data (streaming) or, when on_data is NULL, into resp (bounded by
 * EHR_CLIENT_MAX_RESPONSE). *status is the HTTP status; a transport or TLS
 * failure returns EHR_ERR_IO / EHR_ERR_AUTH with the curl detail.
 */
int ehr_client_request(struct ehr_client *c, long *status, struct ehr_buf *resp, const char *method,
                       const char *path, const char *const *headers, const void *body, size_t len,
                       ehr_client_data_fn on_data, void *ud);
/*
 * The same with the body read from `fd` while it is sent, so a file of any
 * size costs no memory: with Content-Length `size`, or chunked when size < 0
 * (a pipe). The response goes into resp, as above.
 */
int ehr_client_upload(struct ehr_client *c, long *status, struct ehr_buf *resp, const char *method,
                      const char *path, const char *const *headers, int fd, int64_t size);
/* JSON in, JSON out (body may be NULL; *resp NULL when the reply is not JSON). */
int ehr_client_json(struct ehr_client *c, long *status, json_t **resp, const char *method, const char *path,
                    const json_t *body);

/* ---- profiles */

/* $EHRCTL_DIR, else $HOME/.ehrctl. */
const char *ehr_client_default_dir(void);
/*
 * Open the client a profile describes. For a patient whose stored token is
 * missing or within 30 s of expiry, log in first (challenge + token) and
 * store the new token.
 */
int ehr_client_open_profile(struct ehr_client **out, const char *dir);
const char *ehr_client_role(const struct ehr_client *c); /* "server", "auditor", "patient" or "" */
const char *ehr_client_id(const struct ehr_client *c);   /* id or patient pseudonym */
const char *ehr_client_url(const struct ehr_client *c);
/* The patient device key (not owned), or NULL: contracts are signed with it. */
EVP_PKEY *ehr_client_device_key(const struct ehr_client *c);

/* ---- protocol flows (docs/PROTOCOL.md) */

/* Generate a P-256 key and CSR, POST /v1/register, write a profile to dir. */
int ehr_client_register(const char *url, const char *ca_file, const char *token, const char *dir,
                        json_t **info);
/* POST /v1/register/renew with the current certificate; replaces cert.pem and key.pem. */
int ehr_client_renew(const char *dir, json_t **info);
/* Generate (or load, if key_file exists) the device key, POST /v1/enroll,
 * write a patient profile to dir. key_file NULL = dir/device.key. */
int ehr_client_enroll(const char *url, const char *ca_file, const char *patient_id, const char *code,
                      const char *key_file, const char *dir);
/* challenge + token; stores dir/token.json (0600). */
int ehr_client_login(const char *dir);
/* The same exchange on an open patient client (no file written). */
int ehr_client_login_with(struct ehr_client *c, const char *patient_id, EVP_PKEY *key, json_t **token);

/* A header of the last response (first match, case-insensitive name) into
 * out; EHR_ERR_NOT_FOUND when absent. */
int ehr_client_response_header(const struct ehr_client *c, const char *name, char *out, size_t cap);
/* New connections the last request opened (0: it reused a kept-alive one). */
long ehr_client_last_connects(const struct ehr_client *c);

/* Transfer progress of the requests that follow (NULL to stop): totals are
 * 0 while unknown. Called from inside ehr_client_request. */
typedef void (*ehr_client_progress_fn)(uint64_t dl_total, uint64_t dl_now, uint64_t ul_total, uint64_t ul_now,
                                       void *ud);
void ehr_client_set_progress(struct ehr_client *c, ehr_client_progress_fn fn, void *ud);

/* The last request's error for CLI messages: "<status> <error.code>:
 * <error.message>" after an HTTP error reply, else the curl detail. */
const char *ehr_client_last_error(const struct ehr_client *c);

/*
 * The gateway's refusal of the last request this thread made (through any
 * client, including the ones ehr_client_register/enroll/login/renew make
 * for themselves): true, with the HTTP status (>= 400) and the JSON error's
 * code and message ("" when the body had none), when that request got an
 * HTTP error reply; false when it succeeded, could not reach the gateway
 * (connection, TLS) or no request was made. A CLI tells a refusal by the
 * gateway from a transport failure with it (ehrctl's exit status).
 */
struct ehr_client_refusal {
	long status;
	char code[64];
	char message[512];
};
bool ehr_client_last_refusal(struct ehr_client_refusal *out);

#endif
