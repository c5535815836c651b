/*
 * s3.c - the S3 backend over libcurl.
 *
 * Every request is signed here (sigv4.c). x-amz-content-sha256 is the
 * SHA-256 of the exact payload for bodies held in memory (parts, small
 * requests), and UNSIGNED-PAYLOAD for the one body that is streamed: a put
 * of known size (up to s3_single_put_max) goes up as a single PUT pulled
 * from the caller's reader while it is sent, which cannot be hashed before
 * sending. Its integrity rests on the ledger: store.c hashes the bytes as
 * they pass and every read checks that hash (docs/STORAGE.md).
 * Connections are reused through a small pool of easy handles. Requests are
 * retried with exponential backoff and full jitter on connection errors,
 * timeouts, 5xx and 429 - a GET only while no byte has reached the caller.
 * A TLS certificate the client refuses (untrusted issuer, bad signature,
 * wrong host name) or an unusable CA file is never retried: it will not fix
 * itself, and the caller gets the verification error at once.
 * A streamed PUT is retried only while no byte of its body has been read;
 * after that a failure is final and the key is deleted (best effort).
 * Other objects at least one part long (size unknown, or over the maximum)
 * go up as a multipart upload that is
 * aborted (AbortMultipartUpload) on any failure. Its parts are double
 * buffered: one is PUT by an uploader thread while the caller's thread fills
 * the next from the reader (see "multipart pipeline" below).
 *
 * Threads: s3_do may run on any number of threads at once. Each call takes
 * an easy handle from the pool for itself (pool_get/pool_put under s->lock)
 * and gives it back at the end; the store's other fields are read-only after
 * cloud__s3_open (curl only reads the shared CURLOPT_RESOLVE list); the TLS
 * observer's state and the error detail are per thread.
 */
#include "cloud/cloud_internal.h"

#include <pthread.h>
#include <stdatomic.h>
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
/* Part buffers kept for reuse between uploads (two per upload in flight).
 * They hold ciphertext only, so they are not wiped. */
#define S3_SPARE_PARTS 4

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
	uint64_t single_put_max; /* 0: never a streaming single PUT */
	unsigned max_attempts;
	unsigned connect_timeout_ms;
	unsigned timeout_ms;
	pthread_mutex_t lock; /* guards pool/npool and spare/nspare */
	CURL *pool[S3_POOL_MAX];
	size_t npool;
	uint8_t *spare[S3_SPARE_PARTS]; /* free part buffers, part_size bytes each */
	size_t nspare;
};

/* A PUT body pulled from the caller's reader while it is sent (the streaming
 * single PUT). Not hashed first: it goes as UNSIGNED-PAYLOAD. */
struct s3_stream {
	cloud_read_fn rd;
	void *rctx;
	uint64_t len;      /* exactly this many bytes (Content-Length) */
	uint64_t consumed; /* bytes pulled from rd, over all attempts */
	int err;           /* the reader's error (its detail is this thread's), 0 if none */
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
	size_t resp_max;            /* bound of a collected body */
	const atomic_bool *give_up; /* set: no further attempt (NULL: none) */
	struct s3_stream *stream;   /* PUT: the body comes from a reader (body unused) */
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

/* A part buffer of s->part_size bytes: a spare one if there is one. */
static uint8_t *part_buf_get(struct s3_store *s)
{
	uint8_t *b = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->nspare > 0)
		b = s->spare[--s->nspare];
	pthread_mutex_unlock(&s->lock);
	if (b == NULL)
		b = malloc(s->part_size);
	return b;
}

/* Keep up to S3_SPARE_PARTS buffers for the next uploads; free the rest. */
static void part_buf_put(struct s3_store *s, uint8_t *b)
{
	if (b == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->nspare < S3_SPARE_PARTS) {
		s->spare[s->nspare++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	free(b);
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
	if (rq->stream) {
		memcpy(payload_hash, "UNSIGNED-PAYLOAD", sizeof("UNSIGNED-PAYLOAD"));
	} else if (rq->body_len) {
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
			if (rq->stream) {
				curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->stream->len);
				curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, cb_seek_stream);
				curl_easy_setopt(c, CURLOPT_SEEKDATA, &x);
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

		tls_verify_error = X509_V_OK;
		rc = curl_easy_perform(c);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL); /* the handle outlives curl_err */
		curl_slist_free_all(hdrs);
		if (x.sink_err < 0) {
			err = x.sink_err;
			goto out;
		}
		if (rq->stream && rq->stream->err < 0) {
			err = rq->stream->err; /* the reader's, detail included */
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

/*
 * The streaming single PUT of a body of known size: pulled from the reader
 * while it is sent, on this thread, in constant memory, signed with
 * UNSIGNED-PAYLOAD (store.c hashes what passes for the ledger). Retried only
 * while no byte has been read. After a failure once the body has started,
 * the key is deleted (best effort): it is a fresh key nobody else writes, so
 * this only removes what this PUT may have left.
 */
static int s3_put_stream(struct s3_store *s, const char *key, cloud_read_fn rd, void *rctx, uint64_t size)
{
	struct s3_stream st = { .rd = rd, .rctx = rctx, .len = size };
	struct s3_req rq = { .method = "PUT", .key = key, .stream = &st };
	struct s3_resp rs;
	int err = s3_do(s, &rq, &rs);

	if (err == 0 && (rs.status < 200 || rs.status >= 300))
		err = s3_status_err(&rs, "PutObject");
	ehr_buf_free(&rs.body);
	if (err < 0 && st.consumed > 0) {
		char saved[256];
		struct s3_req dq = { .method = "DELETE", .key = key };
		struct s3_resp ds;
		int derr;

		snprintf(saved, sizeof(saved), "%s", ehr_error_msg());
		derr = s3_do(s, &dq, &ds);
		if (derr == 0 && ds.status != 204 && ds.status != 200 && ds.status != 404)
			derr = s3_status_err(&ds, "DeleteObject");
		ehr_buf_free(&ds.body);
		if (derr < 0)
			ehr_logf(EHR_LOG_WARN, "s3.put_cleanup_failed",
			         "deleting the key of a failed PUT failed (%s); fsck lists it as an orphan",
			         ehr_error_msg());
		ehr_error_set(err, "%s", saved);
	}
	return err;
}

/* UploadPart: the part's ETag into etag on success. */
static int s3_upload_part(struct s3_store *s, const char *key, const char *upload_id, size_t number,
                          const uint8_t *body, size_t n, const atomic_bool *give_up, char etag[128])
{
	char pn[24];
	const struct s3_kv q[] = { { "partNumber", pn }, { "uploadId", upload_id } };
	struct s3_req rq = { .method = "PUT",
		             .key = key,
		             .query = q,
		             .nquery = 2,
		             .body = body,
		             .body_len = n,
		             .give_up = give_up };
	struct s3_resp rs;
	int err;

	snprintf(pn, sizeof(pn), "%zu", number);
	err = s3_do(s, &rq, &rs);
	if (err == 0 && (rs.status < 200 || rs.status >= 300))
		err = s3_status_err(&rs, "UploadPart");
	if (err == 0 && rs.etag[0] == '\0')
		err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 UploadPart: no ETag");
	if (err == 0)
		memcpy(etag, rs.etag, sizeof(rs.etag));
	ehr_buf_free(&rs.body);
	return err;
}

/*
 * The multipart pipeline: while part k goes up, part k+1 is filled.
 *
 * The caller's thread fills the parts, since the reader (the HTTP body) may
 * only be read from it, and hands each one over to an uploader thread, which
 * PUTs it and records its ETag. There is one hand-over slot and two part
 * buffers: a hand-over waits until the previous part is done, so the buffer
 * filled next is always the one that is no longer on the wire. Memory per
 * upload is two parts, whatever the object's size.
 *
 * One uploader thread per multipart upload, started after
 * CreateMultipartUpload and joined before s3_put returns. A pool of threads
 * owned by the store was the alternative: it would have to be as large as
 * the number of concurrent uploads (the gateway's blocking threads) or
 * uploads would queue behind each other's parts and be serial again, and its
 * shutdown would be ordered against obj_store_free. Starting a thread costs
 * tens of microseconds, nothing next to one part of 5 MiB or more.
 *
 * The first error wins, whichever side has it (a reader error, a failed
 * part, too many parts): it is kept with its message (error details are per
 * thread), and once it is known no part is handed over and the part in
 * flight, if any, is not retried (give_up). The caller then waits for the
 * uploader to be idle before it aborts the upload, so that no part can land
 * after the abort.
 */
struct part_pipe {
	struct s3_store *s;
	const char *key;
	const char *upload_id;
	char (*etags)[128]; /* etags[i]: part i + 1 */
	atomic_bool give_up;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	const uint8_t *job; /* the part handed over; NULL: the uploader is idle */
	size_t job_len;
	size_t job_number;
	bool quit;
	int err;       /* the first error, 0 if none */
	char msg[512]; /* its detail */
};

/* Record err (its detail is this thread's) unless an error is known already. */
static void pipe_fail_locked(struct part_pipe *pp, int err)
{
	if (pp->err != 0)
		return;
	pp->err = err;
	snprintf(pp->msg, sizeof(pp->msg), "%s", ehr_error_msg());
	atomic_store(&pp->give_up, true);
}

static void pipe_fail(struct part_pipe *pp, int err)
{
	pthread_mutex_lock(&pp->mu);
	pipe_fail_locked(pp, err);
	pthread_mutex_unlock(&pp->mu);
}

static void *pipe_uploader(void *arg)
{
	struct part_pipe *pp = arg;

	pthread_mutex_lock(&pp->mu);
	for (;;) {
		const uint8_t *body;
		size_t n, number;
		char etag[128];
		int err = 0;
		bool skip;

		while (pp->job == NULL && !pp->quit)
			pthread_cond_wait(&pp->cv, &pp->mu);
		if (pp->job == NULL)
			break; /* quit */
		body = pp->job;
		n = pp->job_len;
		number = pp->job_number;
		skip = pp->err != 0; /* never handed over after a failure; be sure */
		pthread_mutex_unlock(&pp->mu);
		if (!skip)
			err = s3_upload_part(pp->s, pp->key, pp->upload_id, number, body, n, &pp->give_up,
			                     etag);
		pthread_mutex_lock(&pp->mu);
		if (err < 0)
			pipe_fail_locked(pp, err);
		else if (!skip)
			memcpy(pp->etags[number - 1], etag, sizeof(etag));
		pp->job = NULL;
		pthread_cond_broadcast(&pp->cv);
	}
	pthread_mutex_unlock(&pp->mu);
	return NULL;
}

/* Hand part `number` over once the previous one is done; the upload's error
 * instead if it has failed (and then nothing is handed over). */
static int pipe_hand_over(struct part_pipe *pp, const uint8_t *body, size_t n, size_t number)
{
	int err;

	pthread_mutex_lock(&pp->mu);
	while (pp->job != NULL)
		pthread_cond_wait(&pp->cv, &pp->mu);
	err = pp->err;
	if (err == 0) {
		pp->job = body;
		pp->job_len = n;
		pp->job_number = number;
		pthread_cond_broadcast(&pp->cv);
	}
	pthread_mutex_unlock(&pp->mu);
	return err;
}

/* Wait for the part in flight, stop and join the uploader. The upload's
 * first error, with its detail in this thread's slot, or 0. */
static int pipe_finish(struct part_pipe *pp, pthread_t th)
{
	int err;

	pthread_mutex_lock(&pp->mu);
	while (pp->job != NULL)
		pthread_cond_wait(&pp->cv, &pp->mu);
	pp->quit = true;
	pthread_cond_broadcast(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
	pthread_join(th, NULL);
	err = pp->err;
	if (err < 0)
		ehr_error_set(err, "%s", pp->msg);
	return err;
}

/* Fill parts from the reader and hand them to the uploader until the end of
 * the stream or the first error. part[0] holds the first part (n bytes, not
 * at the end of the stream). *nparts: parts handed over. */
static int pipe_run(struct part_pipe *pp, cloud_read_fn rd, void *rctx, uint8_t *part[2], size_t n,
                    size_t *nparts)
{
	size_t number = 1;
	unsigned cur = 0;
	bool eof = false;
	pthread_t th;
	int err;

	*nparts = 0;
	if (pthread_create(&th, NULL, pipe_uploader, pp) != 0)
		return ehr_error_set(EHR_ERR_INTERNAL, "S3: cannot start the part uploader thread");
	for (;;) {
		if (number > S3_MAX_PARTS) {
			pipe_fail(pp,
			          ehr_error_set(EHR_ERR_TOO_LARGE, "S3: more than %d parts", S3_MAX_PARTS));
			break;
		}
		if (pipe_hand_over(pp, part[cur], n, number) < 0)
			break;
		*nparts = number++;
		if (eof)
			break;
		cur ^= 1;
		if ((err = fill_part(rd, rctx, part[cur], pp->s->part_size, &n, &eof)) < 0) {
			pipe_fail(pp, err);
			break;
		}
		if (n == 0)
			break;
	}
	return pipe_finish(pp, th);
}

static int s3_put(void *impl, const char *key, cloud_read_fn rd, void *rctx, int64_t size,
                  struct obj_info *info)
{
	struct s3_store *s = impl;
	struct ehr_buf upload_id = EHR_BUF_INIT(1024), complete = EHR_BUF_INIT(1024 * 1024);
	struct part_pipe pp = { .s = s, .key = key };
	uint8_t *part[2] = { NULL, NULL };
	size_t n = 0, nparts = 0;
	bool eof = false, pipe_ready = false;
	int err = 0;

	(void)info;
	if (size > 0 && (uint64_t)size <= s->single_put_max)
		return s3_put_stream(s, key, rd, rctx, (uint64_t)size);
	part[0] = part_buf_get(s);
	ENSURE_GOTO(part[0] != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(fill_part(rd, rctx, part[0], s->part_size, &n, &eof));
	if (eof) {
		err = s3_put_single(s, key, part[0], n);
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
	pp.upload_id = ehr_buf_cstr(&upload_id);
	pp.etags = calloc(S3_MAX_PARTS, sizeof(*pp.etags));
	part[1] = part_buf_get(s);
	if (pp.etags == NULL || part[1] == NULL) {
		err = ehr_error_set(EHR_ERR_NOMEM, "out of memory");
		goto abort;
	}
	atomic_init(&pp.give_up, false);
	pthread_mutex_init(&pp.mu, NULL);
	pthread_cond_init(&pp.cv, NULL);
	pipe_ready = true;
	if ((err = pipe_run(&pp, rd, rctx, part, n, &nparts)) < 0)
		goto abort;

	/* CompleteMultipartUpload; S3 may answer 200 with an <Error> body. */
	if ((err = ehr_buf_append_str(&complete, "<CompleteMultipartUpload>")) < 0)
		goto abort;
	for (size_t i = 0; i < nparts; i++) {
		struct ehr_buf esc = EHR_BUF_INIT(512);
		for (const char *p = pp.etags[i]; *p; p++) {
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
	/* Keep the first error; the abort's own outcome is only logged. The
	 * uploader has stopped: no part can land after this. */
	char saved[256];
	snprintf(saved, sizeof(saved), "%s", ehr_error_msg());
	s3_abort(s, key, ehr_buf_cstr(&upload_id));
	ehr_error_set(err, "%s (multipart upload aborted)", saved);
}
out:
	if (pipe_ready) {
		pthread_cond_destroy(&pp.cv);
		pthread_mutex_destroy(&pp.mu);
	}
	part_buf_put(s, part[0]);
	part_buf_put(s, part[1]);
	free(pp.etags);
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
	for (size_t i = 0; i < s->nspare; i++)
		free(s->spare[i]);
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
	s->single_put_max = cfg->s3_single_put_max;
	if (s->single_put_max > OBJ_S3_SINGLE_PUT_MAX) {
		err = ehr_error_set(EHR_ERR_CONFIG, "S3 single PUT maximum must be at most 5 GiB");
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
