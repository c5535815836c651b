/*
 * s3.c - the S3 backend over libcurl.
 *
 * Every request is signed here (sigv4.c) with x-amz-content-sha256 set to
 * the SHA-256 of the exact payload (bodies are at most one part, held in
 * memory, so the hash is known before sending; no UNSIGNED-PAYLOAD).
 * Connections are reused through a small pool of easy handles. Requests are
 * retried with exponential backoff and full jitter on connection errors,
 * timeouts, 5xx and 429 - a GET only while no byte has reached the caller.
 * A TLS certificate the client refuses (untrusted issuer, bad signature,
 * wrong host name) or an unusable CA file is never retried: it will not fix
 * itself, and the caller gets the verification error at once.
 * Objects at least one part long go up as a multipart upload that is
 * aborted (AbortMultipartUpload) on any failure.
 */
#include "cloud/cloud_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define S3_POOL_MAX 16
#define S3_ERRBODY_MAX (64 * 1024)
#define S3_LISTBODY_MAX (8 * 1024 * 1024)
#define S3_MAX_PARTS 10000

static const char EMPTY_SHA256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct s3_store {
	char *scheme; /* "http" / "https" */
	char *host;   /* host[:port] as it goes in the Host header (path style) */
	char *vhost;  /* bucket.host[:port] (virtual-hosted style) */
	char *bucket;
	char *region;
	char *access_key;
	char *secret_key;
	char *ca_file;
	struct curl_slist *resolve;
	bool virtual_host;
	size_t part_size;
	unsigned max_attempts;
	unsigned connect_timeout_ms;
	unsigned timeout_ms;
	pthread_mutex_t lock;
	CURL *pool[S3_POOL_MAX];
	size_t npool;
};

struct s3_req {
	const char *method; /* GET HEAD PUT POST DELETE */
	const char *key;    /* NULL for the bucket itself */
	const struct s3_kv *query;
	size_t nquery;
	const uint8_t *body;
	size_t body_len;
	cloud_write_fn sink; /* GET: where a 2xx body goes */
	void *sink_ctx;
	size_t resp_max; /* bound of a collected body */
};

struct s3_resp {
	long status;
	struct ehr_buf body;
	char etag[128];
	uint64_t content_length;
	bool have_length;
};

struct xfer {
	const struct s3_req *rq;
	struct s3_resp *rs;
	CURL *h;
	size_t up_off;
	uint64_t delivered; /* bytes handed to the sink */
	int sink_err;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ----------------------------------------------------------- handle pool */

static CURL *pool_get(struct s3_store *s)
{
	CURL *h = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->npool > 0)
		h = s->pool[--s->npool];
	pthread_mutex_unlock(&s->lock);
	if (h == NULL)
		h = curl_easy_init();
	return h;
}

static void pool_put(struct s3_store *s, CURL *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->npool < S3_POOL_MAX) {
		s->pool[s->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	if (h)
		curl_easy_cleanup(h);
}

/* ------------------------------------------------------------- callbacks */

static size_t cb_write(char *p, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	size_t n = sz * nm;
	long code = 0;

	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	if (x->rq->sink && code >= 200 && code < 300) {
		int rc = x->rq->sink(x->rq->sink_ctx, (const uint8_t *)p, n);
		if (rc < 0) {
			x->sink_err = rc;
			return 0;
		}
		x->delivered += n;
		return n;
	}
	if (x->rs->body.len + n > x->rs->body.max)
		return 0; /* too large: CURLE_WRITE_ERROR */
	if (ehr_buf_append(&x->rs->body, p, n) < 0)
		return 0;
	return n;
}

static size_t cb_read(char *buf, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	size_t cap = sz * nm, left = x->rq->body_len - x->up_off;

	if (left > cap)
		left = cap;
	if (left)
		memcpy(buf, x->rq->body + x->up_off, left);
	x->up_off += left;
	return left;
}

static size_t cb_header(char *p, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	size_t n = sz * nm;

	if (n > 5 && strncasecmp(p, "etag:", 5) == 0) {
		size_t i = 5, j = n;
		while (i < j && (p[i] == ' ' || p[i] == '\t'))
			i++;
		while (j > i && (p[j - 1] == '\r' || p[j - 1] == '\n' || p[j - 1] == ' '))
			j--;
		if (j - i < sizeof(x->rs->etag)) {
			memcpy(x->rs->etag, p + i, j - i);
			x->rs->etag[j - i] = '\0';
		}
	}
	return n;
}

/* ---------------------------------------------------------------- sending */

static bool transient_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_HTTP2: return true;
	default: return false;
	}
}

/*
 * The first certificate verification error of the TLS handshake running on
 * this thread (X509_V_OK: none so far). curl_easy_perform does the handshake
 * on the calling thread, so a thread-local is exact. It is needed because
 * curl 7.88 reports some refused chains - one whose signature does not verify,
 * e.g. a CA with the right name and the wrong key - as a generic
 * CURLE_SSL_CONNECT_ERROR, which would otherwise be retried like a reset.
 */
static _Thread_local int tls_verify_error;

static int cb_verify(int ok, X509_STORE_CTX *sctx)
{
	if (!ok && tls_verify_error == X509_V_OK) {
		tls_verify_error = X509_STORE_CTX_get_error(sctx);
		if (tls_verify_error == X509_V_OK)
			tls_verify_error = X509_V_ERR_UNSPECIFIED;
	}
	return ok; /* observe only: curl's verification decides */
}

/* curl (OpenSSL backend) hands over each new connection's SSL_CTX here,
 * after setting it up; keep its verify mode (peer verification is always on)
 * and only add the observer. */
static CURLcode cb_ssl_ctx(CURL *h, void *ssl_ctx, void *ud)
{
	SSL_CTX *ctx = ssl_ctx;

	(void)h;
	(void)ud;
	SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), cb_verify);
	return CURLE_OK;
}

/*
 * The endpoint's certificate was refused, or the trust settings are unusable:
 * verifying again gives the same answer, so these fail at once, and say that
 * it was TLS verification (with the detail: the issuer problem or the name
 * that did not match) rather than a generic "unavailable".
 */
static bool tls_refused(CURLcode rc, int verify_error)
{
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION: /* untrusted chain, name mismatch */
	case CURLE_SSL_CACERT_BADFILE:       /* s3_ca_file missing or not PEM */
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH: return true;
	case CURLE_SSL_CONNECT_ERROR: return verify_error != X509_V_OK;
	default: return false;
	}
}

static void backoff_sleep(unsigned attempt)
{
	uint32_t r = 0, base = 100u << (attempt > 5 ? 5 : attempt), ms;

	if (base > 2000)
		base = 2000;
	(void)ehr_random(&r, sizeof(r));
	/* "Equal jitter": half fixed, half random, so retries spread out but
	 * still back off. */
	ms = base / 2 + r % (base / 2 + 1);
	usleep((useconds_t)ms * 1000);
}

static void amz_now(char out[17])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static int build_path(struct ehr_buf *path, const struct s3_store *s, const char *key)
{
	if (s->virtual_host)
		return ehr_buf_printf(path, "/%s", key ? key : "");
	if (key)
		return ehr_buf_printf(path, "/%s/%s", s->bucket, key);
	return ehr_buf_printf(path, "/%s", s->bucket);
}

static const char *s3_code(const struct s3_resp *rs, struct ehr_buf *tmp)
{
	if (rs->body.len && s3_xml_find((const char *)rs->body.data, rs->body.len, "Code", tmp) == 1)
		return ehr_buf_cstr(tmp);
	return "";
}

/* One S3 request with retries. Returns 0 with rs->status set for any HTTP
 * answer below 500 (the caller interprets it), EHR_ERR_UNAVAILABLE when the
 * service stays unreachable or keeps failing. */
static int s3_do(struct s3_store *s, const struct s3_req *rq, struct s3_resp *rs)
{
	struct ehr_buf path = EHR_BUF_INIT(4096), url = EHR_BUF_INIT(64 * 1024), hl = EHR_BUF_INIT(8192),
	               code = EHR_BUF_INIT(256);
	struct s3_sigv4_output sig;
	uint8_t h[32];
	char payload_hash[65], amz_date[17];
	const char *host = s->virtual_host ? s->vhost : s->host;
	CURL *c = NULL;
	int err = 0;
	unsigned attempt;

	memset(&sig, 0, sizeof(sig));
	ehr_buf_init(&rs->body, rq->resp_max ? rq->resp_max : S3_ERRBODY_MAX);
	if (rq->body_len) {
		static const char hx[] = "0123456789abcdef";
		SHA256(rq->body, rq->body_len, h);
		for (int i = 0; i < 32; i++) {
			payload_hash[2 * i] = hx[h[i] >> 4];
			payload_hash[2 * i + 1] = hx[h[i] & 15];
		}
		payload_hash[64] = '\0';
	} else {
		memcpy(payload_hash, EMPTY_SHA256, 65);
	}
	GUARD_GOTO(build_path(&path, s, rq->key));
	c = pool_get(s);
	ENSURE_GOTO(c != NULL, EHR_ERR_NOMEM);

	for (attempt = 1;; attempt++) {
		struct curl_slist *hdrs = NULL, *tmp;
		struct xfer x = { .rq = rq, .rs = rs, .h = c };
		const struct s3_kv sh[] = {
			{ "host", host },
			{ "x-amz-content-sha256", payload_hash },
			{ "x-amz-date", amz_date },
		};
		char curl_err[CURL_ERROR_SIZE];
		struct s3_sigv4_input in = {
			.method = rq->method,
			.path = ehr_buf_cstr(&path),
			.query = rq->query,
			.nquery = rq->nquery,
			.headers = sh,
			.nheaders = EHR_ARRAY_LEN(sh),
			.payload_sha256 = payload_hash,
			.amz_date = amz_date,
			.region = s->region,
			.service = "s3",
			.access_key = s->access_key,
			.secret_key = s->secret_key,
		};
		CURLcode rc;
		bool retry = false;

		amz_now(amz_date);
		s3_sigv4_output_free(&sig);
		GUARD_GOTO(s3_sigv4_sign(&sig, &in));
		ehr_buf_reset(&url);
		GUARD_GOTO(ehr_buf_printf(
		        &url, "%s://%s%s%s%s", s->scheme, host, ehr_buf_cstr(&sig.canonical_uri),
		        sig.canonical_query.len ? "?" : "", ehr_buf_cstr(&sig.canonical_query)));
		ehr_buf_reset(&rs->body);
		rs->etag[0] = '\0';
		rs->status = 0;
		rs->have_length = false;

#define ADDH(...)                                                                \
	do {                                                                     \
		ehr_buf_reset(&hl);                                              \
		GUARD_GOTO(ehr_buf_printf(&hl, __VA_ARGS__));                    \
		tmp = curl_slist_append(hdrs, ehr_buf_cstr(&hl));                \
		if (tmp == NULL) {                                               \
			curl_slist_free_all(hdrs);                               \
			err = ehr_error_set(EHR_ERR_NOMEM, "curl_slist_append"); \
			goto out;                                                \
		}                                                                \
		hdrs = tmp;                                                      \
	} while (0)
		ADDH("Host: %s", host);
		ADDH("x-amz-date: %s", amz_date);
		ADDH("x-amz-content-sha256: %s", payload_hash);
		ADDH("Authorization: %s", ehr_buf_cstr(&sig.authorization));
		ADDH("Expect:");
		if (strcmp(rq->method, "PUT") == 0)
			ADDH("Content-Type: application/octet-stream");
		if (strcmp(rq->method, "POST") == 0)
			ADDH("Content-Type: application/xml");
#undef ADDH

		curl_easy_reset(c);
		curl_err[0] = '\0';
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
		curl_easy_setopt(c, CURLOPT_URL, ehr_buf_cstr(&url));
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cb_write);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, cb_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_timeout_ms);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
		if (s->ca_file) {
			/* The given CAs only: a pinned private CA must not also let
			 * the system's CA directory vouch for the endpoint. */
			curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
			curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
		}
		if (s->resolve)
			curl_easy_setopt(c, CURLOPT_RESOLVE, s->resolve);
		if (strcmp(rq->method, "HEAD") == 0) {
			curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		} else if (strcmp(rq->method, "PUT") == 0) {
			curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(c, CURLOPT_READFUNCTION, cb_read);
			curl_easy_setopt(c, CURLOPT_READDATA, &x);
			curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
		} else if (strcmp(rq->method, "POST") == 0) {
			curl_easy_setopt(c, CURLOPT_POST, 1L);
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body_len ? (const char *)rq->body : "");
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
		} else if (strcmp(rq->method, "DELETE") == 0) {
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
		}

		/* fails harmlessly (no observer) with a TLS backend other than OpenSSL */
		curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, cb_ssl_ctx);

		tls_verify_error = X509_V_OK;
		rc = curl_easy_perform(c);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL); /* the handle outlives curl_err */
		curl_slist_free_all(hdrs);
		if (x.sink_err < 0) {
			err = x.sink_err;
			goto out;
		}
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rs->status);
		if (rc == CURLE_OK) {
			curl_off_t cl = -1;
			curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
			if (cl >= 0) {
				rs->content_length = (uint64_t)cl;
				rs->have_length = true;
			}
			if (rs->status >= 500 || rs->status == 429) {
				retry = true;
				err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 %s: HTTP %ld %s", rq->method,
				                    rs->status, s3_code(rs, &code));
			}
		} else if (tls_refused(rc, tls_verify_error)) {
			/* curl's text for a CURLE_SSL_CONNECT_ERROR is OpenSSL's first
			 * queued error, not the verification result: name that. */
			if (rc == CURLE_SSL_CONNECT_ERROR || curl_err[0] == '\0')
				snprintf(curl_err, sizeof(curl_err), "SSL certificate problem: %s",
				         tls_verify_error != X509_V_OK
				                 ? X509_verify_cert_error_string(tls_verify_error)
				                 : curl_easy_strerror(rc));
			err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 %s: %s (not retried): %s", rq->method,
			                    rc == CURLE_SSL_CACERT_BADFILE
			                            ? "the CA file for TLS verification cannot be used"
			                            : "TLS certificate verification of the endpoint failed",
			                    curl_err);
			goto out;
		} else if (transient_curl(rc)) {
			retry = true;
			err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 %s: %s", rq->method,
			                    curl_easy_strerror(rc));
		} else {
			err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 %s: %s", rq->method,
			                    curl_easy_strerror(rc));
			goto out;
		}
		if (!retry) {
			err = 0;
			break;
		}
		/* A GET that has already streamed bytes cannot be replayed. */
		if (x.delivered > 0 || attempt >= s->max_attempts)
			goto out;
		backoff_sleep(attempt);
	}
out:
	/* A handle whose transfer failed may hold a broken connection; curl
	 * discards dead connections itself, so it is safe to pool. */
	pool_put(s, c);
	s3_sigv4_output_free(&sig);
	ehr_buf_free(&path);
	ehr_buf_free(&url);
	ehr_buf_free(&hl);
	ehr_buf_free(&code);
	return err;
}

/* Map a non-2xx answer to an error. */
static int s3_status_err(const struct s3_resp *rs, const char *what)
{
	struct ehr_buf code = EHR_BUF_INIT(256);
	int err;

	const char *c = s3_code(rs, &code);
	if (rs->status == 404)
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "S3 %s: not found %s", what, c);
	else if (rs->status == 401 || rs->status == 403 ||
	         (rs->status == 400 && strcmp(c, "AuthorizationHeaderMalformed") == 0))
		err = ehr_error_set(EHR_ERR_AUTH, "S3 %s: HTTP %ld %s", what, rs->status, c);
	else
		err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 %s: HTTP %ld %s", what, rs->status, c);
	ehr_buf_free(&code);
	return err;
}

/* ---------------------------------------------------------------- verbs */

static int fill_part(cloud_read_fn rd, void *rctx, uint8_t *buf, size_t cap, size_t *n, bool *eof)
{
	*n = 0;
	*eof = false;
	while (*n < cap) {
		size_t got = 0;
		GUARD(rd(rctx, buf + *n, cap - *n, &got));
		if (got == 0) {
			*eof = true;
			break;
		}
		*n += got;
	}
	return 0;
}

static int s3_abort(struct s3_store *s, const char *key, const char *upload_id)
{
	const struct s3_kv q[] = { { "uploadId", upload_id } };
	struct s3_req rq = { .method = "DELETE", .key = key, .query = q, .nquery = 1 };
	struct s3_resp rs;
	int err = s3_do(s, &rq, &rs);

	if (err == 0 && rs.status != 204 && rs.status != 200 && rs.status != 404)
		err = s3_status_err(&rs, "AbortMultipartUpload");
	ehr_buf_free(&rs.body);
	if (err < 0)
		ehr_logf(EHR_LOG_WARN, "s3.abort_failed",
		         "AbortMultipartUpload failed (%s); the bucket's lifecycle rule must clean the "
		         "upload up",
		         ehr_error_msg());
	else
		ehr_logf(EHR_LOG_INFO, "s3.abort", "multipart upload aborted");
	return err;
}

static int s3_put_single(struct s3_store *s, const char *key, const uint8_t *body, size_t n)
{
	struct s3_req rq = { .method = "PUT", .key = key, .body = body, .body_len = n };
	struct s3_resp rs;
	int err = s3_do(s, &rq, &rs);

	if (err == 0 && (rs.status < 200 || rs.status >= 300))
		err = s3_status_err(&rs, "PutObject");
	ehr_buf_free(&rs.body);
	return err;
}

static int s3_put(void *impl, const char *key, cloud_read_fn rd, void *rctx, struct obj_info *info)
{
	struct s3_store *s = impl;
	struct ehr_buf upload_id = EHR_BUF_INIT(1024), complete = EHR_BUF_INIT(1024 * 1024);
	char(*etags)[128] = NULL;
	uint8_t *buf = NULL;
	size_t n = 0, nparts = 0;
	bool eof = false;
	int err = 0;

	(void)info;
	buf = malloc(s->part_size);
	ENSURE_GOTO(buf != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(fill_part(rd, rctx, buf, s->part_size, &n, &eof));
	if (eof) {
		err = s3_put_single(s, key, buf, n);
		goto out;
	}

	/* CreateMultipartUpload */
	{
		const struct s3_kv q[] = { { "uploads", "" } };
		struct s3_req rq = { .method = "POST", .key = key, .query = q, .nquery = 1 };
		struct s3_resp rs;
		err = s3_do(s, &rq, &rs);
		if (err == 0 && (rs.status < 200 || rs.status >= 300))
			err = s3_status_err(&rs, "CreateMultipartUpload");
		if (err == 0 &&
		    s3_xml_find((const char *)rs.body.data, rs.body.len, "UploadId", &upload_id) != 1)
			err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 CreateMultipartUpload: no UploadId");
		ehr_buf_free(&rs.body);
		if (err < 0)
			goto out;
	}
	etags = calloc(S3_MAX_PARTS, sizeof(*etags));
	ENSURE_GOTO(etags != NULL, EHR_ERR_NOMEM);

	for (;;) {
		char pn[16];
		const struct s3_kv q[] = { { "partNumber", pn }, { "uploadId", ehr_buf_cstr(&upload_id) } };
		struct s3_req rq = {
			.method = "PUT", .key = key, .query = q, .nquery = 2, .body = buf, .body_len = n
		};
		struct s3_resp rs;

		if (nparts >= S3_MAX_PARTS) {
			err = ehr_error_set(EHR_ERR_TOO_LARGE, "S3: more than %d parts", S3_MAX_PARTS);
			goto abort;
		}
		snprintf(pn, sizeof(pn), "%zu", nparts + 1);
		err = s3_do(s, &rq, &rs);
		if (err == 0 && (rs.status < 200 || rs.status >= 300))
			err = s3_status_err(&rs, "UploadPart");
		if (err == 0 && rs.etag[0] == '\0')
			err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 UploadPart: no ETag");
		if (err == 0)
			memcpy(etags[nparts], rs.etag, sizeof(rs.etag));
		ehr_buf_free(&rs.body);
		if (err < 0)
			goto abort;
		nparts++;
		if (eof)
			break;
		if ((err = fill_part(rd, rctx, buf, s->part_size, &n, &eof)) < 0)
			goto abort;
		if (n == 0)
			break;
	}

	/* CompleteMultipartUpload; S3 may answer 200 with an <Error> body. */
	if ((err = ehr_buf_append_str(&complete, "<CompleteMultipartUpload>")) < 0)
		goto abort;
	for (size_t i = 0; i < nparts; i++) {
		struct ehr_buf esc = EHR_BUF_INIT(512);
		for (const char *p = etags[i]; *p; p++) {
			if (*p == '"')
				err = ehr_buf_append_str(&esc, "&quot;");
			else if (*p == '&')
				err = ehr_buf_append_str(&esc, "&amp;");
			else if (*p == '<')
				err = ehr_buf_append_str(&esc, "&lt;");
			else
				err = ehr_buf_append_u8(&esc, (uint8_t)*p);
			if (err < 0)
				break;
		}
		if (err == 0)
			err = ehr_buf_printf(&complete,
			                     "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>",
			                     i + 1, ehr_buf_cstr(&esc));
		ehr_buf_free(&esc);
		if (err < 0)
			goto abort;
	}
	if ((err = ehr_buf_append_str(&complete, "</CompleteMultipartUpload>")) < 0)
		goto abort;
	{
		const struct s3_kv q[] = { { "uploadId", ehr_buf_cstr(&upload_id) } };
		struct s3_req rq = { .method = "POST",
			             .key = key,
			             .query = q,
			             .nquery = 1,
			             .body = complete.data,
			             .body_len = complete.len };
		struct s3_resp rs;
		struct ehr_buf tmp = EHR_BUF_INIT(256);
		err = s3_do(s, &rq, &rs);
		if (err == 0 && (rs.status < 200 || rs.status >= 300))
			err = s3_status_err(&rs, "CompleteMultipartUpload");
		if (err == 0 && s3_xml_find((const char *)rs.body.data, rs.body.len, "Code", &tmp) == 1)
			err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 CompleteMultipartUpload: %s",
			                    ehr_buf_cstr(&tmp));
		ehr_buf_free(&tmp);
		ehr_buf_free(&rs.body);
		if (err < 0)
			goto abort;
	}
	goto out;
abort : {
	/* Keep the first error; the abort's own outcome is only logged. */
	char saved[256];
	snprintf(saved, sizeof(saved), "%s", ehr_error_msg());
	s3_abort(s, key, ehr_buf_cstr(&upload_id));
	ehr_error_set(err, "%s (multipart upload aborted)", saved);
}
out:
	if (buf) {
		OPENSSL_cleanse(buf, n);
		free(buf);
	}
	free(etags);
	ehr_buf_free(&upload_id);
	ehr_buf_free(&complete);
	return err;
}

static int s3_get(void *impl, const char *key, cloud_write_fn wr, void *wctx, struct obj_info *info)
{
	struct s3_store *s = impl;
	struct s3_req rq = { .method = "GET", .key = key, .sink = wr, .sink_ctx = wctx };
	struct s3_resp rs;
	int err;

	(void)info;
	err = s3_do(s, &rq, &rs);
	if (err == 0 && (rs.status < 200 || rs.status >= 300))
		err = s3_status_err(&rs, "GetObject");
	ehr_buf_free(&rs.body);
	return err;
}

static int s3_head(void *impl, const char *key, uint64_t *size)
{
	struct s3_store *s = impl;
	struct s3_req rq = { .method = "HEAD", .key = key };
	struct s3_resp rs;
	int err = s3_do(s, &rq, &rs);

	if (err == 0 && (rs.status < 200 || rs.status >= 300))
		err = s3_status_err(&rs, "HeadObject");
	if (err == 0 && !rs.have_length)
		err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 HeadObject: no Content-Length");
	if (err == 0)
		*size = rs.content_length;
	ehr_buf_free(&rs.body);
	return err;
}

static int s3_del(void *impl, const char *key)
{
	struct s3_store *s = impl;
	struct s3_req rq = { .method = "DELETE", .key = key };
	struct s3_resp rs;
	int err = s3_do(s, &rq, &rs);

	if (err == 0 && rs.status != 204 && rs.status != 200 && rs.status != 404)
		err = s3_status_err(&rs, "DeleteObject");
	ehr_buf_free(&rs.body);
	return err;
}

/* ListObjectsV2, following continuation tokens. */
static int s3_list(void *impl, const char *prefix, obj_list_fn fn, void *ctx)
{
	struct s3_store *s = impl;
	struct ehr_buf token = EHR_BUF_INIT(4096), key = EHR_BUF_INIT(2048), num = EHR_BUF_INIT(64),
	               trunc = EHR_BUF_INIT(64);
	bool more = true;
	int err = 0;

	while (more) {
		struct s3_kv q[3] = { { "list-type", "2" },
			              { "prefix", prefix },
			              { "continuation-token", "" } };
		struct s3_req rq = {
			.method = "GET", .query = q, .nquery = token.len ? 3 : 2, .resp_max = S3_LISTBODY_MAX
		};
		struct s3_resp rs;
		struct s3_xml_iter it;
		const char *cp;
		size_t cn;
		int r;

		q[2].value = ehr_buf_cstr(&token);
		err = s3_do(s, &rq, &rs);
		if (err == 0 && (rs.status < 200 || rs.status >= 300))
			err = s3_status_err(&rs, "ListObjectsV2");
		if (err < 0) {
			ehr_buf_free(&rs.body);
			goto out;
		}
		s3_xml_iter_init(&it, (const char *)rs.body.data, rs.body.len);
		while ((r = s3_xml_next_raw(&it, "Contents", &cp, &cn)) == 1) {
			uint64_t size = 0;
			if (s3_xml_find(cp, cn, "Key", &key) != 1 || s3_xml_find(cp, cn, "Size", &num) != 1 ||
			    ehr_parse_u64(&size, ehr_buf_cstr(&num), UINT64_MAX) < 0) {
				err = ehr_error_set(EHR_ERR_PARSE, "S3 ListObjectsV2: malformed <Contents>");
				break;
			}
			if ((err = fn(ctx, ehr_buf_cstr(&key), size)) < 0)
				break;
		}
		if (err == 0 && r < 0)
			err = r;
		more = false;
		if (err == 0 &&
		    s3_xml_find((const char *)rs.body.data, rs.body.len, "IsTruncated", &trunc) == 1 &&
		    strcmp(ehr_buf_cstr(&trunc), "true") == 0) {
			ehr_buf_reset(&token);
			if (s3_xml_find((const char *)rs.body.data, rs.body.len, "NextContinuationToken",
			                &token) != 1 ||
			    token.len == 0)
				err = ehr_error_set(EHR_ERR_PARSE,
				                    "S3 ListObjectsV2: truncated without a token");
			else
				more = true;
		}
		ehr_buf_free(&rs.body);
		if (err < 0)
			goto out;
	}
out:
	ehr_buf_free(&token);
	ehr_buf_free(&key);
	ehr_buf_free(&num);
	ehr_buf_free(&trunc);
	return err;
}

static int s3_ping(void *impl)
{
	struct s3_store *s = impl;
	struct s3_req rq = { .method = "HEAD" };
	struct s3_resp rs;
	int err = s3_do(s, &rq, &rs);

	if (err == 0 && (rs.status < 200 || rs.status >= 300))
		err = s3_status_err(&rs, "HeadBucket");
	ehr_buf_free(&rs.body);
	return err;
}

static void s3_free(void *impl)
{
	struct s3_store *s = impl;
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->npool; i++)
		curl_easy_cleanup(s->pool[i]);
	pthread_mutex_destroy(&s->lock);
	free(s->scheme);
	free(s->host);
	free(s->vhost);
	free(s->bucket);
	free(s->region);
	free(s->access_key);
	if (s->secret_key) {
		OPENSSL_cleanse(s->secret_key, strlen(s->secret_key));
		free(s->secret_key);
	}
	free(s->ca_file);
	curl_slist_free_all(s->resolve);
	free(s);
}

static const struct obj_backend_ops S3_OPS = {
	.put = s3_put,
	.get = s3_get,
	.head = s3_head,
	.del = s3_del,
	.list = s3_list,
	.ping = s3_ping,
	.free = s3_free,
};

/* Bucket names as S3 allows them in a host name (lower-case DNS label rules). */
static bool bucket_valid(const char *b)
{
	size_t n = strlen(b);
	if (n < 3 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return false;
	}
	return true;
}

int cloud__s3_open(void **impl, const struct obj_backend_ops **ops, const struct obj_store_config *cfg)
{
	struct s3_store *s;
	const char *ep = cfg->s3_endpoint, *rest;
	size_t hl;
	int err = 0;

	pthread_once(&curl_once, curl_init_once);
	if (ep == NULL || cfg->s3_bucket == NULL || cfg->s3_access_key == NULL || cfg->s3_secret_key == NULL)
		return ehr_error_set(EHR_ERR_CONFIG,
		                     "S3 store needs endpoint, bucket, access key and secret key");
	if (!bucket_valid(cfg->s3_bucket))
		return ehr_error_set(EHR_ERR_CONFIG, "S3 bucket name is not valid");
	s = calloc(1, sizeof(*s));
	ENSURE(s != NULL, EHR_ERR_NOMEM);
	pthread_mutex_init(&s->lock, NULL);
	if (strncmp(ep, "https://", 8) == 0) {
		s->scheme = strdup("https");
		rest = ep + 8;
	} else if (strncmp(ep, "http://", 7) == 0) {
		s->scheme = strdup("http");
		rest = ep + 7;
	} else {
		err = ehr_error_set(EHR_ERR_CONFIG, "S3 endpoint must start with http:// or https://");
		goto out;
	}
	hl = strcspn(rest, "/?#");
	if (hl == 0 || (rest[hl] != '\0' && strcmp(rest + hl, "/") != 0)) {
		err = ehr_error_set(EHR_ERR_CONFIG, "S3 endpoint must be scheme://host[:port] with no path");
		goto out;
	}
	for (size_t i = 0; i < hl; i++) {
		char c = rest[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == ':' || c == '[' || c == ']')) {
			err = ehr_error_set(EHR_ERR_CONFIG, "S3 endpoint host is not valid");
			goto out;
		}
	}
	s->host = strndup(rest, hl);
	s->bucket = strdup(cfg->s3_bucket);
	s->region = strdup(cfg->s3_region && cfg->s3_region[0] ? cfg->s3_region : "us-east-1");
	s->access_key = strdup(cfg->s3_access_key);
	s->secret_key = strdup(cfg->s3_secret_key);
	s->ca_file = cfg->s3_ca_file && cfg->s3_ca_file[0] ? strdup(cfg->s3_ca_file) : NULL;
	ENSURE_GOTO(s->scheme && s->host && s->bucket && s->region && s->access_key && s->secret_key,
	            EHR_ERR_NOMEM);
	{
		struct ehr_buf vh = EHR_BUF_INIT(1024);
		GUARD_GOTO(ehr_buf_printf(&vh, "%s.%s", s->bucket, s->host));
		s->vhost = (char *)ehr_buf_detach(&vh, NULL);
	}
	if (cfg->s3_resolve && cfg->s3_resolve[0]) {
		s->resolve = curl_slist_append(NULL, cfg->s3_resolve);
		ENSURE_GOTO(s->resolve != NULL, EHR_ERR_NOMEM);
	}
	s->virtual_host = cfg->s3_virtual_host;
	s->part_size = cfg->s3_part_size ? cfg->s3_part_size : OBJ_S3_DEFAULT_PART;
	if (s->part_size < OBJ_S3_MIN_PART || s->part_size > 512u * 1024 * 1024) {
		err = ehr_error_set(EHR_ERR_CONFIG, "S3 part size must be between 5 MiB and 512 MiB");
		goto out;
	}
	s->max_attempts = cfg->s3_max_attempts ? cfg->s3_max_attempts : 4;
	s->connect_timeout_ms = cfg->s3_connect_timeout_ms ? cfg->s3_connect_timeout_ms : 3000;
	s->timeout_ms = cfg->s3_timeout_ms ? cfg->s3_timeout_ms : 300000;
	*impl = s;
	*ops = &S3_OPS;
	return 0;
out:
	s3_free(s);
	return err;
}
