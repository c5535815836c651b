/*
 * s3_request.c - one signed S3 request over libcurl, with retries.
 *
 * Every request is signed here (sigv4.c). x-amz-content-sha256 is the
 * SHA-256 of the exact payload for bodies held in memory (parts, small
 * requests), and UNSIGNED-PAYLOAD for the one body that is streamed (the
 * single PUT of s3_upload.c), which cannot be hashed before sending.
 * Connections are reused through a small pool of easy handles. Requests are
 * retried with exponential backoff and full jitter on connection errors,
 * timeouts, 5xx and 429 - a GET only while no byte has reached the caller.
 * A TLS certificate the client refuses (untrusted issuer, bad signature,
 * wrong host name) or an unusable CA file is never retried: it will not fix
 * itself, and the caller gets the verification error at once.
 * A streamed PUT is retried only while no byte of its body has been read.
 *
 * Threads: s3__call may run on any number of threads at once. Each call takes
 * an easy handle from the pool for itself (pool_get/pool_put under s->lock)
 * and gives it back at the end; the store's other fields are read-only after
 * cloud__s3_open (curl only reads the shared CURLOPT_RESOLVE list); the TLS
 * observer's state and the error detail are per thread.
 */
#include "cloud/cloud_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define S3_ERRBODY_MAX (64 * 1024)

static const char EMPTY_SHA256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct xfer {
	const struct s3_req *rq;
	struct s3_resp *rs;
	CURL *h;
	size_t up_off;
	uint64_t delivered; /* bytes handed to the sink */
	int sink_err;
};

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

/* The streaming body: pulled from the caller's reader on this (the calling)
 * thread. A reader error aborts the transfer and is what the put returns. */
static size_t cb_read_stream(char *buf, size_t cap, struct s3_stream *st)
{
	uint64_t left = st->len - st->consumed;
	size_t got = 0;
	int rc;

	if (st->err < 0)
		return CURL_READFUNC_ABORT;
	if (left == 0)
		return 0;
	if (cap > left)
		cap = (size_t)left;
	if ((rc = st->rd(st->rctx, (uint8_t *)buf, cap, &got)) < 0) {
		st->err = rc;
		return CURL_READFUNC_ABORT;
	}
	if (got == 0 || got > cap) {
		st->err = ehr_error_set(EHR_ERR_INVAL, "S3 PutObject: body ended after %llu of %llu bytes",
		                        (unsigned long long)st->consumed, (unsigned long long)st->len);
		return CURL_READFUNC_ABORT;
	}
	st->consumed += got;
	return got;
}

/* curl rewinds a body to resend it on a new connection: only possible while
 * nothing has been read from the reader. */
static int cb_seek_stream(void *ud, curl_off_t off, int origin)
{
	struct xfer *x = ud;

	return off == 0 && origin == SEEK_SET && x->rq->stream->consumed == 0 ? CURL_SEEKFUNC_OK
	                                                                      : CURL_SEEKFUNC_CANTSEEK;
}

static size_t cb_read(char *buf, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	size_t cap = sz * nm, left = x->rq->body_len - x->up_off;

	if (x->rq->stream)
		return cb_read_stream(buf, cap, x->rq->stream);

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

static bool gave_up(const struct s3_req *rq)
{
	return rq->give_up != NULL && atomic_load(rq->give_up);
}

/* One request's working state, kept over its attempts. */
struct s3_call {
	struct s3_store *s;
	const struct s3_req *rq;
	struct s3_resp *rs;
	const char *host;
	CURL *c;
	struct ehr_buf path, url, hl, code;
	struct s3_sigv4_output sig;
	char payload_hash[65];
	char amz_date[17];
	char curl_err[CURL_ERROR_SIZE];
};

/* x-amz-content-sha256: the SHA-256 of a body held in memory, in hex, or
 * UNSIGNED-PAYLOAD for a streamed one. */
static void payload_hash_of(const struct s3_req *rq, char out[65])
{
	uint8_t h[32];

	if (rq->stream) {
		memcpy(out, "UNSIGNED-PAYLOAD", sizeof("UNSIGNED-PAYLOAD"));
	} else if (rq->body_len) {
		SHA256(rq->body, rq->body_len, h);
		if (ehr_hex_encode_fixed(out, 65, h, sizeof(h)) < 0) /* 65 bytes hold 32 in hex */
			memcpy(out, "UNSIGNED-PAYLOAD", sizeof("UNSIGNED-PAYLOAD"));
	} else {
		memcpy(out, EMPTY_SHA256, 65);
	}
}

/* Sign one attempt (with a fresh x-amz-date) and build its URL from the
 * canonical URI and query, so what is signed is what is sent. */
static int call_sign(struct s3_call *k)
{
	const struct s3_kv sh[] = {
		{ "host", k->host },
		{ "x-amz-content-sha256", k->payload_hash },
		{ "x-amz-date", k->amz_date },
	};
	struct s3_sigv4_input in = {
		.method = k->rq->method,
		.path = ehr_buf_cstr(&k->path),
		.query = k->rq->query,
		.nquery = k->rq->nquery,
		.headers = sh,
		.nheaders = EHR_ARRAY_LEN(sh),
		.payload_sha256 = k->payload_hash,
		.amz_date = k->amz_date,
		.region = k->s->region,
		.service = "s3",
		.access_key = k->s->access_key,
		.secret_key = k->s->secret_key,
	};

	amz_now(k->amz_date);
	s3_sigv4_output_free(&k->sig);
	GUARD(s3_sigv4_sign(&k->sig, &in));
	ehr_buf_reset(&k->url);
	GUARD(ehr_buf_printf(&k->url, "%s://%s%s%s%s", k->s->scheme, k->host,
	                     ehr_buf_cstr(&k->sig.canonical_uri), k->sig.canonical_query.len ? "?" : "",
	                     ehr_buf_cstr(&k->sig.canonical_query)));
	return 0;
}

/* Append one header line, formatted into the scratch buffer k->hl. */
__attribute__((format(printf, 3, 4))) static int add_header(struct s3_call *k, struct curl_slist **hdrs,
                                                            const char *fmt, ...)
{
	struct curl_slist *tmp;
	va_list ap;
	int rc;

	ehr_buf_reset(&k->hl);
	va_start(ap, fmt);
	rc = ehr_buf_vprintf(&k->hl, fmt, ap);
	va_end(ap);
	GUARD(rc);
	tmp = curl_slist_append(*hdrs, ehr_buf_cstr(&k->hl));
	if (tmp == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "curl_slist_append");
	*hdrs = tmp;
	return 0;
}

/* The signed headers of this attempt, and curl's Expect: turned off. On
 * failure *hdrs is freed and NULL. */
static int call_headers(struct s3_call *k, struct curl_slist **hdrs)
{
	const char *method = k->rq->method;
	int err;

	*hdrs = NULL;
	if ((err = add_header(k, hdrs, "Host: %s", k->host)) < 0 ||
	    (err = add_header(k, hdrs, "x-amz-date: %s", k->amz_date)) < 0 ||
	    (err = add_header(k, hdrs, "x-amz-content-sha256: %s", k->payload_hash)) < 0 ||
	    (err = add_header(k, hdrs, "Authorization: %s", ehr_buf_cstr(&k->sig.authorization))) < 0 ||
	    (err = add_header(k, hdrs, "Expect:")) < 0)
		goto out;
	if (strcmp(method, "PUT") == 0 &&
	    (err = add_header(k, hdrs, "Content-Type: application/octet-stream")) < 0)
		goto out;
	if (strcmp(method, "POST") == 0 && (err = add_header(k, hdrs, "Content-Type: application/xml")) < 0)
		goto out;
	return 0;
out:
	curl_slist_free_all(*hdrs);
	*hdrs = NULL;
	return err;
}

/* Set the easy handle up for one attempt: URL, headers, callbacks, limits,
 * TLS verification, and the method with its body. */
static void call_setopts(struct s3_call *k, struct xfer *x, struct curl_slist *hdrs)
{
	const struct s3_store *s = k->s;
	const struct s3_req *rq = k->rq;
	CURL *c = k->c;

	curl_easy_reset(c);
	k->curl_err[0] = '\0';
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, k->curl_err);
	curl_easy_setopt(c, CURLOPT_URL, ehr_buf_cstr(&k->url));
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cb_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, cb_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
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
		curl_easy_setopt(c, CURLOPT_READDATA, x);
		if (rq->stream) {
			curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->stream->len);
			curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, cb_seek_stream);
			curl_easy_setopt(c, CURLOPT_SEEKDATA, x);
			curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 256L * 1024);
		} else {
			curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
		}
	} else if (strcmp(rq->method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body_len ? (const char *)rq->body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
	} else if (strcmp(rq->method, "DELETE") == 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
	}

	/* fails harmlessly (no observer) with a TLS backend other than OpenSSL */
	curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, cb_ssl_ctx);
}

/* What one attempt came to: 0 (an HTTP answer below 500 other than 429,
 * in rs), or an error with *retry saying whether another attempt may help. */
static int call_outcome(struct s3_call *k, const struct xfer *x, CURLcode rc, bool *retry)
{
	const struct s3_req *rq = k->rq;
	struct s3_resp *rs = k->rs;

	*retry = false;
	if (x->sink_err < 0)
		return x->sink_err;
	if (rq->stream && rq->stream->err < 0)
		return rq->stream->err; /* the reader's, detail included */
	curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &rs->status);
	if (rc == CURLE_OK) {
		curl_off_t cl = -1;
		curl_easy_getinfo(k->c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		if (cl >= 0) {
			rs->content_length = (uint64_t)cl;
			rs->have_length = true;
		}
		if (rs->status >= 500 || rs->status == 429) {
			*retry = true;
			return ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 %s: HTTP %ld %s", rq->method,
			                     rs->status, s3_code(rs, &k->code));
		}
		return 0;
	}
	if (tls_refused(rc, tls_verify_error)) {
		/* curl's text for a CURLE_SSL_CONNECT_ERROR is OpenSSL's first
		 * queued error, not the verification result: name that. */
		if ((rc == CURLE_SSL_CONNECT_ERROR || k->curl_err[0] == '\0') &&
		    ehr_fmt(k->curl_err, sizeof(k->curl_err), "SSL certificate problem: %s",
		            tls_verify_error != X509_V_OK ? X509_verify_cert_error_string(tls_verify_error)
		                                          : curl_easy_strerror(rc)) < 0)
			k->curl_err[0] = '\0'; /* OpenSSL's and curl's texts are short: cannot happen */
		/* The verification result stays in the public message: it is what
		 * an operator fixes (CA, name), and the tests assert on it. */
		return ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 %s: %s (not retried): %s", rq->method,
		                     rc == CURLE_SSL_CACERT_BADFILE
		                             ? "the CA file for TLS verification cannot be used"
		                             : "TLS certificate verification of the endpoint failed",
		                     k->curl_err);
	}
	*retry = transient_curl(rc);
	return ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "S3 request failed", "S3 %s: %s", rq->method,
	                            curl_easy_strerror(rc));
}

/* One S3 request with retries: 0 with rs->status set for any HTTP answer
 * below 500, EHR_ERR_UNAVAILABLE when the service stays unreachable or
 * keeps failing. rs->body is always initialised. */
static int do_request(struct s3_store *s, const struct s3_req *rq, struct s3_resp *rs)
{
	struct s3_call k = {
		.s = s,
		.rq = rq,
		.rs = rs,
		.host = s->virtual_host ? s->vhost : s->host,
		.path = EHR_BUF_INIT(4096),
		.url = EHR_BUF_INIT(64 * 1024),
		.hl = EHR_BUF_INIT(8192),
		.code = EHR_BUF_INIT(256),
	};
	int err = 0;
	unsigned attempt;

	ehr_buf_init(&rs->body, rq->resp_max ? rq->resp_max : S3_ERRBODY_MAX);
	payload_hash_of(rq, k.payload_hash);
	GUARD_GOTO(build_path(&k.path, s, rq->key));
	k.c = pool_get(s);
	ENSURE_GOTO(k.c != NULL, EHR_ERR_NOMEM);

	for (attempt = 1;; attempt++) {
		struct curl_slist *hdrs = NULL;
		struct xfer x = { .rq = rq, .rs = rs, .h = k.c };
		CURLcode rc;
		bool retry = false;

		GUARD_GOTO(call_sign(&k));
		ehr_buf_reset(&rs->body);
		rs->etag[0] = '\0';
		rs->status = 0;
		rs->have_length = false;
		GUARD_GOTO(call_headers(&k, &hdrs));
		call_setopts(&k, &x, hdrs);

		tls_verify_error = X509_V_OK;
		rc = curl_easy_perform(k.c);
		curl_easy_setopt(k.c, CURLOPT_ERRORBUFFER, NULL); /* the handle outlives curl_err */
		curl_slist_free_all(hdrs);
		err = call_outcome(&k, &x, rc, &retry);
		if (!retry)
			goto out; /* an answer, or a failure no attempt can fix */
		/* A GET that has already streamed bytes cannot be replayed, nor
		 * a streamed PUT whose body has started (those bytes are gone); a
		 * caller that gave up (a multipart upload that failed elsewhere)
		 * wants no further attempt. */
		if (x.delivered > 0 || (rq->stream && rq->stream->consumed > 0) ||
		    attempt >= s->max_attempts || gave_up(rq))
			goto out;
		backoff_sleep(attempt);
		if (gave_up(rq))
			goto out;
	}
out:
	/* A handle whose transfer failed may hold a broken connection; curl
	 * discards dead connections itself, so it is safe to pool. */
	pool_put(s, k.c);
	s3_sigv4_output_free(&k.sig);
	ehr_buf_free(&k.path);
	ehr_buf_free(&k.url);
	ehr_buf_free(&k.hl);
	ehr_buf_free(&k.code);
	return err;
}

/* Map a non-2xx answer to an error. */
static int status_err(const struct s3_resp *rs, const char *what)
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

/* One request, and its status judged (cloud_internal.h). */
int s3__call(struct s3_store *s, const struct s3_req *rq, struct s3_resp *rs, const char *what, bool gone_ok)
{
	int err = do_request(s, rq, rs);

	if (err < 0)
		return err;
	if (gone_ok ? rs->status == 200 || rs->status == 204 || rs->status == 404
	            : rs->status >= 200 && rs->status < 300)
		return 0;
	return status_err(rs, what);
}
