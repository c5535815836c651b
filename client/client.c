/*
 * client.c - libehrclient transport: one libcurl easy handle per client
 * (so connections are kept alive), TLS pinned to the gateway CA, optional
 * mTLS, and a fresh DPoP proof on every request of a patient client.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>

#include "auth/auth.h"
#include "client/client.h"
#include "client/client_internal.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	*dst = strdup(src);
	ENSURE(*dst != NULL, EHR_ERR_NOMEM);
	return 0;
}

int ehr_client_new(struct ehr_client **out, const struct ehr_client_opts *o)
{
	struct ehr_client *c;
	size_t n;
	int err;

	*out = NULL;
	ENSURE(o != NULL && o->url != NULL, EHR_ERR_INVAL);
	pthread_once(&curl_once, curl_init_once);
	c = calloc(1, sizeof(*c));
	ENSURE(c != NULL, EHR_ERR_NOMEM);
	ehr_buf_init(&c->last_error, 1024);
	ehr_buf_init(&c->resp_headers, 64 * 1024);
	GUARD_GOTO(dup_opt(&c->url, o->url));
	n = strlen(c->url);
	while (n > 0 && c->url[n - 1] == '/')
		c->url[--n] = '\0';
	GUARD_GOTO(dup_opt(&c->ca_file, o->ca_file));
	GUARD_GOTO(dup_opt(&c->cert_file, o->cert_file));
	GUARD_GOTO(dup_opt(&c->key_file, o->key_file));
	GUARD_GOTO(dup_opt(&c->token, o->access_token));
	if (o->dpop_key != NULL) {
		ENSURE_GOTO(EVP_PKEY_up_ref(o->dpop_key) == 1, EHR_ERR_CRYPTO);
		c->dpop_key = o->dpop_key;
	}
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	c->curl = curl_easy_init();
	ENSURE_GOTO(c->curl != NULL, EHR_ERR_NOMEM);
	c->role[0] = c->id[0] = '\0';
	*out = c;
	return 0;
out:
	ehr_client_free(c);
	return err;
}

void ehr_client_free(struct ehr_client *c)
{
	if (c == NULL)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	EVP_PKEY_free(c->dpop_key);
	free(c->url);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	if (c->token) {
		OPENSSL_cleanse(c->token, strlen(c->token));
		free(c->token);
	}
	free(c->dir);
	ehr_buf_free(&c->last_error);
	ehr_buf_free(&c->resp_headers);
	free(c);
}

void ehr_client_set_timeout(struct ehr_client *c, long timeout_ms)
{
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
}

int ehr_client_set_token(struct ehr_client *c, const char *access_token)
{
	char *t = access_token ? strdup(access_token) : NULL;

	ENSURE(access_token == NULL || t != NULL, EHR_ERR_NOMEM);
	if (c->token) {
		OPENSSL_cleanse(c->token, strlen(c->token));
		free(c->token);
	}
	c->token = t;
	return 0;
}

const char *ehr_client_role(const struct ehr_client *c)
{
	return c->role;
}

const char *ehr_client_id(const struct ehr_client *c)
{
	return c->id;
}

const char *ehr_client_url(const struct ehr_client *c)
{
	return c->url;
}

EVP_PKEY *ehr_client_device_key(const struct ehr_client *c)
{
	return c->dpop_key;
}

const char *ehr_client_last_error(const struct ehr_client *c)
{
	return ehr_buf_cstr(&c->last_error);
}

struct sink {
	struct ehr_buf *buf;
	ehr_client_data_fn fn;
	void *ud;
	bool overflow;
};

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t n = size * nmemb;

	if (s->fn != NULL)
		return s->fn(p, n, s->ud) ? n : 0;
	if (s->buf == NULL)
		return n;
	if (ehr_buf_append(s->buf, p, n) < 0) {
		s->overflow = true;
		return 0;
	}
	return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct ehr_client *c = ud;
	size_t n = size * nmemb;

	/* Keep only the last response's headers (a new status line restarts). */
	if (n >= 5 && strncmp(p, "HTTP/", 5) == 0)
		ehr_buf_reset(&c->resp_headers);
	if (ehr_buf_append(&c->resp_headers, p, n) < 0)
		return 0;
	return n;
}

int ehr_client_response_header(const struct ehr_client *c, const char *name, char *out, size_t cap)
{
	const char *p = ehr_buf_cstr(&c->resp_headers);
	size_t nl = strlen(name);

	while (*p) {
		const char *eol = strstr(p, "\r\n");
		size_t linelen = eol ? (size_t)(eol - p) : strlen(p);
		if (linelen > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			size_t vl;
			while (*v == ' ')
				v++;
			vl = linelen - (size_t)(v - p);
			if (vl + 1 > cap)
				return ehr_error_set(EHR_ERR_TOO_LARGE, "header value too long");
			memcpy(out, v, vl);
			out[vl] = '\0';
			return 0;
		}
		p += linelen;
		if (eol)
			p += 2;
	}
	return EHR_ERR_NOT_FOUND;
}

long ehr_client_last_connects(const struct ehr_client *c)
{
	return c->last_connects;
}

/* The gateway's refusal of this thread's last request (see
 * ehr_client_last_refusal); cleared when a request starts. */
static __thread struct ehr_client_refusal last_refusal;

bool ehr_client_last_refusal(struct ehr_client_refusal *out)
{
	if (last_refusal.status < 400)
		return false;
	if (out)
		*out = last_refusal;
	return true;
}

/* An HTTP error reply: "<status> <error.code>: <error.message>" into
 * c->last_error and this thread's refusal record. */
static void note_error(struct ehr_client *c, long status, const struct ehr_buf *resp)
{
	json_t *j = NULL;
	const char *msg = NULL, *code = NULL;

	ehr_buf_reset(&c->last_error);
	if (status < 400)
		return;
	if (resp != NULL && resp->len > 0 && ehr_json_parse(&j, resp->data, resp->len, 1 << 20, 8) == 0) {
		json_t *e = json_object_get(j, "error");
		code = json_string_value(json_object_get(e, "code"));
		msg = json_string_value(json_object_get(e, "message"));
	}
	last_refusal.status = status;
	if (ehr_str_copy(last_refusal.code, sizeof(last_refusal.code), code ? code : "") < 0)
		last_refusal.code[0] = '\0';
	if (ehr_str_copy(last_refusal.message, sizeof(last_refusal.message), msg ? msg : "") < 0)
		last_refusal.message[0] = '\0';
	ehr_buf_printf(&c->last_error, "%ld %s: %s", status, code ? code : "(no error code)",
	               msg ? msg : "(no error message)");
	json_decref(j);
	ehr_error_clear();
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct ehr_client *c = ud;

	if (c->progress)
		c->progress((uint64_t)dltotal, (uint64_t)dlnow, (uint64_t)ultotal, (uint64_t)ulnow,
		            c->progress_ud);
	return 0;
}

void ehr_client_set_progress(struct ehr_client *c, ehr_client_progress_fn fn, void *ud)
{
	c->progress = fn;
	c->progress_ud = ud;
}

/* A request body read from a file descriptor while it is sent. */
struct fd_body {
	int fd;
	int err; /* errno of a failed read */
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
	struct fd_body *fb = ud;
	ssize_t n;

	do
		n = read(fb->fd, buf, size * nitems);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		fb->err = errno;
		return CURL_READFUNC_ABORT;
	}
	return (size_t)n;
}

/* The request's headers: no Expect, the DPoP-bound token with a fresh
 * proof for this method and URL, the caller's headers, and a JSON
 * Content-Type for a body unless the caller gave one. The list goes into
 * *hl even on failure (the caller frees it). */
static int request_headers(struct ehr_client *c, struct curl_slist **hl, const char *method, const char *url,
                           const char *const *headers, bool has_body)
{
	struct ehr_buf proof = EHR_BUF_INIT(AUTH_MAX_JWS), h = EHR_BUF_INIT(8192);
	bool has_ct = false;
	int err = 0;

	*hl = curl_slist_append(*hl, "Expect:");
	if (c->dpop_key != NULL && c->token != NULL) {
		/* A proof per request, bound to method, URL and this token. */
		GUARD_GOTO(auth_dpop_create(&proof, c->dpop_key, method, url, c->token, time(NULL)));
		GUARD_GOTO(ehr_buf_printf(&h, "Authorization: DPoP %s", c->token));
		*hl = curl_slist_append(*hl, ehr_buf_cstr(&h));
		ehr_buf_reset(&h);
		GUARD_GOTO(ehr_buf_printf(&h, "DPoP: %s", ehr_buf_cstr(&proof)));
		*hl = curl_slist_append(*hl, ehr_buf_cstr(&h));
	}
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		has_ct = has_ct || strncasecmp(headers[i], "Content-Type:", 13) == 0;
		*hl = curl_slist_append(*hl, headers[i]);
	}
	if (has_body && !has_ct)
		*hl = curl_slist_append(*hl, "Content-Type: application/json");
	ENSURE_GOTO(*hl != NULL, EHR_ERR_NOMEM);
out:
	ehr_buf_free(&proof);
	ehr_buf_free_secure(&h);
	return err;
}

/* TLS settings, limits and callbacks of one transfer on the client's
 * handle, and the method with its body (in memory, or streamed from fb). */
static void set_transfer(struct ehr_client *c, const char *url, char *errbuf, struct sink *sink,
                         const char *method, const void *body, size_t len, struct fd_body *fb,
                         int64_t fd_size)
{
	CURL *cu = c->curl;

	curl_easy_reset(cu);
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(cu, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(cu, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(cu, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (c->ca_file)
		curl_easy_setopt(cu, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_file && c->key_file) {
		curl_easy_setopt(cu, CURLOPT_SSLCERT, c->cert_file);
		curl_easy_setopt(cu, CURLOPT_SSLKEY, c->key_file);
	}
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	if (getenv("EHRCTL_VERBOSE") != NULL)
		curl_easy_setopt(cu, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, sink);
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(cu, CURLOPT_NOPROGRESS, c->progress ? 0L : 1L);
	curl_easy_setopt(cu, CURLOPT_XFERINFOFUNCTION, c->progress ? on_progress : NULL);
	curl_easy_setopt(cu, CURLOPT_XFERINFODATA, c);
	curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(cu, CURLOPT_NOBODY, 1L);
	if (body != NULL) {
		curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	} else if (fb != NULL) {
		/* Streamed: Content-Length when the size is known, else chunked. */
		curl_easy_setopt(cu, CURLOPT_POST, 1L);
		curl_easy_setopt(cu, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(cu, CURLOPT_READDATA, fb);
		curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)fd_size);
	}
}

/* A transfer curl could not complete: its text into c->last_error, and the
 * error: the response was too large, the body could not be read, TLS
 * refused the peer or our credentials (EHR_ERR_AUTH), or I/O. */
static int transfer_error(struct ehr_client *c, CURLcode rc, const char *errbuf, const struct sink *sink,
                          const struct fd_body *fb)
{
	ehr_buf_reset(&c->last_error);
	ehr_buf_printf(&c->last_error, "%s: %s", curl_easy_strerror(rc), errbuf);
	if (sink->overflow)
		return ehr_error_set(EHR_ERR_TOO_LARGE, "response larger than the limit");
	if (fb != NULL && fb->err != 0)
		return ehr_error_set(EHR_ERR_IO, "reading the body: %s", strerror(fb->err));
	return ehr_error_set(rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CERTPROBLEM ||
	                                     rc == CURLE_SSL_CACERT_BADFILE
	                             ? EHR_ERR_AUTH
	                             : EHR_ERR_IO,
	                     "request failed: %s", ehr_buf_cstr(&c->last_error));
}

static int perform(struct ehr_client *c, long *status, struct ehr_buf *resp, const char *method,
                   const char *path, const char *const *headers, const void *body, size_t len,
                   struct fd_body *fb, int64_t fd_size, ehr_client_data_fn on_data, void *ud)
{
	struct ehr_buf url = EHR_BUF_INIT(8192);
	struct curl_slist *hl = NULL;
	struct sink sink = { resp, on_data, ud, false };
	struct ehr_buf local = EHR_BUF_INIT(EHR_CLIENT_MAX_RESPONSE);
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *cu = c->curl;
	CURLcode rc;
	int err = 0;

	*status = 0;
	memset(&last_refusal, 0, sizeof(last_refusal));
	if (resp == NULL && on_data == NULL)
		sink.buf = &local;
	GUARD_GOTO(ehr_buf_printf(&url, "%s%s", c->url, path));
	set_transfer(c, ehr_buf_cstr(&url), errbuf, &sink, method, body, len, fb, fd_size);
	ehr_buf_reset(&c->resp_headers);
	c->last_connects = -1;
	GUARD_GOTO(request_headers(c, &hl, method, ehr_buf_cstr(&url), headers, body != NULL || fb != NULL));
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hl);
	/* A stale entry in this thread's OpenSSL error queue makes SSL_get_error
	 * report a non-blocking handshake's WANT_READ as a failure inside curl. */
	ERR_clear_error();
	rc = curl_easy_perform(cu);
	if (rc != CURLE_OK) {
		err = transfer_error(c, rc, errbuf, &sink, fb);
		goto out;
	}
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, status);
	curl_easy_getinfo(cu, CURLINFO_NUM_CONNECTS, &c->last_connects);
	note_error(c, *status, sink.buf);
out:
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(hl);
	ehr_buf_free(&url);
	ehr_buf_free(&local);
	return err;
}

int ehr_client_request(struct ehr_client *c, long *status, struct ehr_buf *resp, const char *method,
                       const char *path, const char *const *headers, const void *body, size_t len,
                       ehr_client_data_fn on_data, void *ud)
{
	return perform(c, status, resp, method, path, headers, body, len, NULL, 0, on_data, ud);
}

int ehr_client_upload(struct ehr_client *c, long *status, struct ehr_buf *resp, const char *method,
                      const char *path, const char *const *headers, int fd, int64_t size)
{
	struct fd_body fb = { fd, 0 };

	return perform(c, status, resp, method, path, headers, NULL, 0, &fb, size < 0 ? -1 : size, NULL,
	               NULL);
}

int ehr_client_json(struct ehr_client *c, long *status, json_t **resp, const char *method, const char *path,
                    const json_t *body)
{
	struct ehr_buf in = EHR_BUF_INIT(EHR_CLIENT_MAX_RESPONSE),
	               out = EHR_BUF_INIT(EHR_CLIENT_MAX_RESPONSE);
	int err;

	*resp = NULL;
	if (body != NULL)
		GUARD_GOTO(ehr_json_dump(&in, body));
	GUARD_GOTO(ehr_client_request(c, status, &out, method, path, NULL, body ? in.data : NULL, in.len,
	                              NULL, NULL));
	if (out.len > 0 && ehr_json_parse(resp, out.data, out.len, EHR_CLIENT_MAX_RESPONSE, 64) < 0) {
		*resp = NULL;
		ehr_error_clear();
	}
out:
	ehr_buf_free_secure(&in);
	ehr_buf_free_secure(&out);
	return err;
}
