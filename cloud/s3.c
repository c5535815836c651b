/*
 * s3.c - the S3 backend over libcurl: opening the store, and the verbs that
 * are one request each (GET, HEAD, DELETE, ListObjectsV2, HeadBucket).
 *
 * The request engine (signing, the handle pool, retries, TLS verification)
 * is s3_request.c; putting an object (streamed single PUT, multipart
 * upload) is s3_upload.c.
 */
#include "cloud/cloud_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define S3_LISTBODY_MAX (8 * 1024 * 1024)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int s3_get(void *impl, const char *key, cloud_write_fn wr, void *wctx, struct obj_info *info)
{
	struct s3_store *s = impl;
	struct s3_req rq = { .method = "GET", .key = key, .sink = wr, .sink_ctx = wctx };
	struct s3_resp rs;
	int err;

	(void)info;
	err = s3__call(s, &rq, &rs, "GetObject", false);
	ehr_buf_free(&rs.body);
	return err;
}

static int s3_head(void *impl, const char *key, uint64_t *size)
{
	struct s3_store *s = impl;
	struct s3_req rq = { .method = "HEAD", .key = key };
	struct s3_resp rs;
	int err = s3__call(s, &rq, &rs, "HeadObject", false);

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
	int err = s3__call(s, &rq, &rs, "DeleteObject", true);

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
		err = s3__call(s, &rq, &rs, "ListObjectsV2", false);
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
	int err = s3__call(s, &rq, &rs, "HeadBucket", false);

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
	.put = s3__put,
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
