/*
 * cloud_internal.h - pieces of cloud/ that tests and fuzzers reach directly:
 * the SigV4 signer, the S3 XML scanner, the backends' vtable; and what the
 * S3 backend's files share.
 */
#ifndef EHR_CLOUD_INTERNAL_H
#define EHR_CLOUD_INTERNAL_H

#include "cloud/cloud.h"

#include <pthread.h>
#include <stdatomic.h>

#include <curl/curl.h>

/* ------------------------------------------------------------ SigV4 */

struct s3_kv {
	const char *name;  /* header name (any case) or raw query key */
	const char *value; /* raw, unencoded; "" for an empty value */
};

struct s3_sigv4_input {
	const char *method;        /* "GET" */
	const char *path;          /* raw path, '/'-separated, not yet encoded ("/bucket/key") */
	const struct s3_kv *query; /* raw query parameters, any order */
	size_t nquery;
	const struct s3_kv *headers; /* every header to sign (host and x-amz-date included) */
	size_t nheaders;
	const char *payload_sha256; /* 64 lower-case hex digits, or "UNSIGNED-PAYLOAD" */
	const char *amz_date;       /* "20150830T123600Z" */
	const char *region;
	const char *service; /* "s3" */
	const char *access_key;
	const char *secret_key;
};

struct s3_sigv4_output {
	struct ehr_buf canonical_query; /* "a=1&b=" : what goes after '?' */
	struct ehr_buf canonical_uri;   /* encoded path, also what goes on the wire */
	struct ehr_buf canonical_request;
	struct ehr_buf string_to_sign;
	struct ehr_buf authorization; /* value of the Authorization header */
	char signature[65];
};

/*
 * AWS Signature Version 4 (S3 flavour: the path is URI-encoded once, not
 * normalised). Query parameters are RFC 3986-encoded and sorted by encoded
 * key then value, with "k=" for empty values; header names lower-cased,
 * values trimmed with inner runs of spaces collapsed, duplicates joined
 * with ','. Output buffers must be freed with s3_sigv4_output_free.
 */
int s3_sigv4_sign(struct s3_sigv4_output *out, const struct s3_sigv4_input *in);
void s3_sigv4_output_free(struct s3_sigv4_output *out);
/* RFC 3986 percent-encoding of everything but A-Z a-z 0-9 - . _ ~ (and '/'
 * when keep_slash). Upper-case hex. */
int s3_uri_encode(struct ehr_buf *out, const char *s, size_t n, bool keep_slash);

/* ------------------------------------------------------------ XML */

/*
 * A deliberately small scanner for S3's response documents: finds the text
 * of <name>...</name> elements (no attributes on them, no nesting of the
 * same name), decoding the five predefined entities and numeric character
 * references. It never allocates more than the document's length.
 */
struct s3_xml_iter {
	const char *doc;
	size_t len;
	size_t off;
};
void s3_xml_iter_init(struct s3_xml_iter *it, const char *doc, size_t len);
/* Next element `name` after the iterator's position: its decoded text into
 * out (replacing its content). 1 if found, 0 if none left, <0 on malformed. */
int s3_xml_next(struct s3_xml_iter *it, const char *name, struct ehr_buf *out);
/* The raw (undecoded) content span of the next element `name`, for
 * elements that contain markup (<Contents>). 1/0/<0 as above. */
int s3_xml_next_raw(struct s3_xml_iter *it, const char *name, const char **p, size_t *n);
/* Convenience: first element `name` in the document. 1/0/<0 as above. */
int s3_xml_find(const char *doc, size_t len, const char *name, struct ehr_buf *out);

/* ------------------------------------------------------------ S3 */

/*
 * The S3 backend is three files: s3.c opens the store and holds the small
 * verbs (GET, HEAD, DELETE, list, ping), s3_request.c sends one signed
 * request with retries (s3__call), s3_upload.c puts an object (a streamed
 * single PUT or a multipart upload). These declarations are theirs alone.
 */
#define S3_POOL_MAX 16
/* Part buffers kept for reuse between uploads (two per upload in flight).
 * They hold ciphertext only, so they are not wiped. */
#define S3_SPARE_PARTS 4

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

/* One S3 request with retries (s3_request.c), its status judged: a status
 * other than 2xx (with gone_ok: other than 200, 204 or 404, for deletes and
 * aborts, where "already gone" is success) becomes an error named after
 * `what` (404 NOT_FOUND, 401/403 AUTH, else UNAVAILABLE);
 * EHR_ERR_UNAVAILABLE when the service stays unreachable or keeps failing.
 * rs->body is always initialised; the caller frees it either way. */
int s3__call(struct s3_store *s, const struct s3_req *rq, struct s3_resp *rs, const char *what, bool gone_ok);
/* The put of the backend vtable (s3_upload.c). */
int s3__put(void *impl, const char *key, cloud_read_fn rd, void *rctx, int64_t size, struct obj_info *info);

/* ------------------------------------------------------- backends */

struct obj_backend_ops {
	/* size >= 0: the reader yields exactly size bytes (store.c enforces it);
	 * < 0: unknown */
	int (*put)(void *impl, const char *key, cloud_read_fn rd, void *rctx, int64_t size,
	           struct obj_info *info);
	int (*get)(void *impl, const char *key, cloud_write_fn wr, void *wctx, struct obj_info *info);
	int (*head)(void *impl, const char *key, uint64_t *size);
	int (*del)(void *impl, const char *key);
	int (*list)(void *impl, const char *prefix, obj_list_fn fn, void *ctx);
	int (*ping)(void *impl);
	void (*free)(void *impl);
};

int cloud__fs_open(void **impl, const struct obj_backend_ops **ops, const struct obj_store_config *cfg);
int cloud__s3_open(void **impl, const struct obj_backend_ops **ops, const struct obj_store_config *cfg);
/* 0 if key is acceptable as an object key (see cloud.h). */
int cloud__key_check(const char *key);

/* Envelope header (docs/STORAGE.md): parse the fixed 24-byte header. */
struct cloud_env_header {
	uint8_t version;
	uint32_t seg_size;
	uint8_t nonce_prefix[4];
};
int cloud__env_header_parse(struct cloud_env_header *h, const uint8_t *p, size_t n);

#endif
