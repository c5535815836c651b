/*
 * store.c - the object-store front: key checks, and the size and SHA-256 of
 * every byte that goes in or comes out, whichever backend moves them.
 */
#include "cloud/cloud_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

struct obj_store {
	enum obj_backend backend;
	void *impl;
	const struct obj_backend_ops *ops;
	char *prefix;
	/* KEKs (obj_store_attach_keks) */
	pthread_mutex_t kek_lock;
	char *kek_dir;
	struct cloud_kek *kek;
	struct cloud_kek **retired;
	size_t nretired;
	struct stat cur_st;
	int64_t checked_ms;
};

int cloud_mem_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct cloud_mem_reader *m = ctx;
	size_t n = m->len - m->off;

	if (n > cap)
		n = cap;
	if (n)
		memcpy(buf, m->p + m->off, n);
	m->off += n;
	*got = n;
	return 0;
}

int cloud_buf_write(void *ctx, const uint8_t *p, size_t n)
{
	return ehr_buf_append(ctx, p, n);
}

int cloud__key_check(const char *key)
{
	size_t n = strlen(key), seg = 0;

	if (n == 0 || n > 512 || key[0] == '/' || key[n - 1] == '/')
		return ehr_error_set(EHR_ERR_INVAL, "bad object key");
	for (size_t i = 0; i < n; i++) {
		char c = key[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		          c == '-' || c == '_' || c == '.' || c == '/';
		if (!ok)
			return ehr_error_set(EHR_ERR_INVAL, "bad object key");
		if (c == '/') {
			if (seg == 0)
				return ehr_error_set(EHR_ERR_INVAL, "bad object key");
			seg = 0;
			continue;
		}
		/* No segment may start with '.', which also excludes "." and "..". */
		if (seg == 0 && c == '.')
			return ehr_error_set(EHR_ERR_INVAL, "bad object key");
		seg++;
	}
	return 0;
}

int obj_store_open(struct obj_store **out, const struct obj_store_config *cfg)
{
	struct obj_store *s;
	int err;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	ENSURE(s != NULL, EHR_ERR_NOMEM);
	s->backend = cfg->backend;
	pthread_mutex_init(&s->kek_lock, NULL);
	s->prefix = strdup(cfg->key_prefix ? cfg->key_prefix : "");
	if (s->prefix == NULL) {
		free(s);
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	}
	if (s->prefix[0] != '\0') {
		size_t pl = strlen(s->prefix);
		char probe[600];
		if (pl > 64 || s->prefix[pl - 1] != '/' ||
		    ehr_fmt(probe, sizeof(probe), "%sx", s->prefix) < 0 || cloud__key_check(probe) < 0) {
			free(s->prefix);
			free(s);
			return ehr_error_set(
			        EHR_ERR_CONFIG,
			        "[store] key_prefix must be up to 64 key characters ending in '/'");
		}
	}
	switch (cfg->backend) {
	case OBJ_BACKEND_FS: err = cloud__fs_open(&s->impl, &s->ops, cfg); break;
	case OBJ_BACKEND_S3: err = cloud__s3_open(&s->impl, &s->ops, cfg); break;
	default: err = ehr_error_set(EHR_ERR_CONFIG, "unknown store backend"); break;
	}
	if (err < 0) {
		free(s->prefix);
		free(s);
		return err;
	}
	*out = s;
	return 0;
}

void obj_store_free(struct obj_store *s)
{
	if (s == NULL)
		return;
	s->ops->free(s->impl);
	cloud_kek_free(s->kek);
	for (size_t i = 0; i < s->nretired; i++)
		cloud_kek_free(s->retired[i]);
	free(s->retired);
	free(s->kek_dir);
	free(s->prefix);
	pthread_mutex_destroy(&s->kek_lock);
	free(s);
}

static int current_stat(const char *dir, struct stat *st)
{
	struct ehr_buf p = EHR_BUF_INIT(4096);
	int rc = ehr_buf_printf(&p, "%s/current", dir);

	if (rc == 0 && stat(ehr_buf_cstr(&p), st) != 0)
		rc = ehr_error_set(EHR_ERR_CONFIG, "no KEK (run ehrgate init)");
	ehr_buf_free(&p);
	return rc;
}

int obj_store_attach_keks(struct obj_store *s, const char *dir)
{
	ENSURE(s->kek == NULL, EHR_ERR_INVAL);
	s->kek_dir = strdup(dir);
	ENSURE(s->kek_dir != NULL, EHR_ERR_NOMEM);
	GUARD(current_stat(dir, &s->cur_st));
	GUARD(cloud_kek_load(&s->kek, dir));
	s->checked_ms = ehr_monotonic_ms();
	return 0;
}

int obj_store_keks(struct obj_store *s, bool force, const struct cloud_kek **out)
{
	int err = 0;

	pthread_mutex_lock(&s->kek_lock);
	if (s->kek == NULL) {
		err = ehr_error_set(EHR_ERR_CONFIG, "no KEK attached to the store");
		goto out;
	}
	if (force || ehr_monotonic_ms() - s->checked_ms >= 1000) {
		struct stat st;
		s->checked_ms = ehr_monotonic_ms();
		if (current_stat(s->kek_dir, &st) == 0 && (force || st.st_ino != s->cur_st.st_ino ||
		                                           st.st_mtim.tv_sec != s->cur_st.st_mtim.tv_sec ||
		                                           st.st_mtim.tv_nsec != s->cur_st.st_mtim.tv_nsec)) {
			struct cloud_kek *nk = NULL, **nr;
			if (cloud_kek_load(&nk, s->kek_dir) == 0) {
				nr = realloc(s->retired, (s->nretired + 1) * sizeof(*nr));
				if (nr == NULL) {
					cloud_kek_free(nk);
				} else {
					s->retired = nr;
					s->retired[s->nretired++] = s->kek;
					s->kek = nk;
					s->cur_st = st;
					ehr_logf(EHR_LOG_INFO, "store.kek_reloaded", "current KEK is %s",
					         cloud_kek_current(nk));
				}
			}
		}
	}
	*out = s->kek;
out:
	pthread_mutex_unlock(&s->kek_lock);
	return err;
}

enum obj_backend obj_store_backend(const struct obj_store *s)
{
	return s->backend;
}

struct hashing {
	EVP_MD_CTX *md;
	uint64_t size;
	int64_t expect; /* put: the promised size, < 0 unknown */
	bool probed;    /* put: the reader's end was seen right at expect */
	cloud_read_fn rd;
	void *rctx;
	cloud_write_fn wr;
	void *wctx;
};

/*
 * The size promise of a put: the reader is never asked for more than is
 * left, and the moment the last promised byte has been read (before it goes
 * to the backend) one more read must find the end. So a reader that runs
 * long or ends early fails the put from inside the transfer - the backend
 * sees a reader error, aborts, and no object is completed. EHR_ERR_INVAL: a
 * broken promise is the caller's error, not tampering.
 */
static int size_probe(struct hashing *h)
{
	uint8_t extra;
	size_t got = 0;

	h->probed = true;
	GUARD(h->rd(h->rctx, &extra, 1, &got));
	if (got != 0)
		return ehr_error_set(EHR_ERR_INVAL, "object stream longer than its declared %lld bytes",
		                     (long long)h->expect);
	return 0;
}

static int hashing_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct hashing *h = ctx;

	*got = 0;
	if (h->expect >= 0) {
		uint64_t left = (uint64_t)h->expect - h->size;
		if (left == 0) {
			if (!h->probed)
				GUARD(size_probe(h)); /* a promise of 0 bytes */
			return 0;
		}
		if (cap > left)
			cap = (size_t)left;
	}
	GUARD(h->rd(h->rctx, buf, cap, got));
	ENSURE(*got <= cap, EHR_ERR_INTERNAL);
	if (*got) {
		GUARD_OSSL(EVP_DigestUpdate(h->md, buf, *got));
		h->size += *got;
	}
	if (h->expect >= 0) {
		if (*got == 0)
			return ehr_error_set(EHR_ERR_INVAL,
			                     "object stream ended after %llu of its declared %lld bytes",
			                     (unsigned long long)h->size, (long long)h->expect);
		if (h->size == (uint64_t)h->expect)
			GUARD(size_probe(h));
	}
	return 0;
}

static int hashing_write(void *ctx, const uint8_t *p, size_t n)
{
	struct hashing *h = ctx;

	if (n) {
		GUARD_OSSL(EVP_DigestUpdate(h->md, p, n));
		h->size += n;
	}
	return h->wr(h->wctx, p, n);
}

static int hashing_begin(struct hashing *h)
{
	h->md = EVP_MD_CTX_new();
	if (h->md == NULL || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(h->md);
		return ehr_error_ossl(EHR_ERR_CRYPTO, "SHA-256 init");
	}
	return 0;
}

static int hashing_end(struct hashing *h, struct obj_info *info)
{
	unsigned int len = 32;
	int rc = 0;

	if (info) {
		info->size = h->size;
		if (EVP_DigestFinal_ex(h->md, info->sha256, &len) != 1)
			rc = ehr_error_ossl(EHR_ERR_CRYPTO, "SHA-256 final");
	}
	EVP_MD_CTX_free(h->md);
	return rc;
}

/* prefix + key, checked. */
static int full_key(char out[600], const struct obj_store *s, const char *key)
{
	GUARD(cloud__key_check(key));
	GUARD(ehr_fmt(out, 600, "%s%s", s->prefix, key));
	return cloud__key_check(out);
}

/*
 * The retry and restart logic lives in the backends; the hash here is
 * therefore computed over what the backend pulled, which must be the
 * stream exactly once (backends never re-read the caller's reader).
 */
int obj_store_put_sized(struct obj_store *s, const char *key, cloud_read_fn rd, void *rctx, int64_t size,
                        struct obj_info *info)
{
	struct hashing h = { .rd = rd, .rctx = rctx, .expect = size < 0 ? -1 : size };
	int err;

	char fk[600];

	GUARD(full_key(fk, s, key));
	GUARD(hashing_begin(&h));
	err = s->ops->put(s->impl, fk, hashing_read, &h, h.expect, NULL);
	if (err == 0 && h.expect >= 0 && (h.size != (uint64_t)h.expect || !h.probed)) {
		/* A backend that stopped pulling early: never stored as complete. */
		err = ehr_error_set(EHR_ERR_INTERNAL, "store backend read %llu of %lld bytes",
		                    (unsigned long long)h.size, (long long)h.expect);
		struct ehr_error_saved saved;
		ehr_error_save(&saved);
		(void)s->ops->del(s->impl, fk);
		ehr_error_restore(&saved);
	}
	if (err < 0) {
		hashing_end(&h, NULL);
		return err;
	}
	return hashing_end(&h, info);
}

int obj_store_put(struct obj_store *s, const char *key, cloud_read_fn rd, void *rctx, struct obj_info *info)
{
	return obj_store_put_sized(s, key, rd, rctx, -1, info);
}

int obj_store_get(struct obj_store *s, const char *key, cloud_write_fn wr, void *wctx, struct obj_info *info)
{
	struct hashing h = { .wr = wr, .wctx = wctx };
	int err;

	char fk[600];

	GUARD(full_key(fk, s, key));
	GUARD(hashing_begin(&h));
	err = s->ops->get(s->impl, fk, hashing_write, &h, NULL);
	if (err < 0) {
		hashing_end(&h, NULL);
		return err;
	}
	return hashing_end(&h, info);
}

int obj_store_head(struct obj_store *s, const char *key, uint64_t *size)
{
	char fk[600];

	GUARD(full_key(fk, s, key));
	return s->ops->head(s->impl, fk, size);
}

int obj_store_delete(struct obj_store *s, const char *key)
{
	char fk[600];

	GUARD(full_key(fk, s, key));
	return s->ops->del(s->impl, fk);
}

struct strip {
	size_t n;
	obj_list_fn fn;
	void *ctx;
};

static int strip_cb(void *ctx, const char *key, uint64_t size)
{
	struct strip *st = ctx;
	if (strlen(key) < st->n)
		return 0;
	return st->fn(st->ctx, key + st->n, size);
}

int obj_store_list(struct obj_store *s, const char *prefix, obj_list_fn fn, void *ctx)
{
	struct strip st = { strlen(s->prefix), fn, ctx };
	char fp[600];

	ENSURE(prefix != NULL && strlen(prefix) <= 512, EHR_ERR_INVAL);
	GUARD(ehr_fmt(fp, sizeof(fp), "%s%s", s->prefix, prefix));
	return s->ops->list(s->impl, fp, strip_cb, &st);
}

int obj_store_ping(struct obj_store *s)
{
	return s->ops->ping(s->impl);
}
