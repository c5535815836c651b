/*
 * kek.c - key-encryption keys and data-key wrapping.
 *
 * KEKs live in <state_dir>/kek/<kid>.key (32 raw random bytes, mode 0600)
 * and <state_dir>/kek/current names the one new records use. Older KEKs stay
 * loaded so that data keys wrapped before a rotation still unwrap until
 * `ehrgate admin rotate-kek` has re-wrapped them.
 *
 * Wrapped data key (61 bytes) = 0x01 || nonce(12) || AES-256-GCM(kek, nonce,
 *   aad = "ehrgate-dek-v1" 0x00 || kid || 0x00 || record_id(16), dek)(32) || tag(16)
 */
#include "cloud/cloud_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

struct kek_entry {
	char kid[CLOUD_KID_MAX];
	uint8_t key[CLOUD_KEY_LEN];
};

struct cloud_kek {
	struct kek_entry *v;
	size_t n;
	char current[CLOUD_KID_MAX];
};

static bool kid_valid(const char *kid, size_t n)
{
	if (n == 0 || n >= CLOUD_KID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = kid[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

static const struct kek_entry *kek_find(const struct cloud_kek *k, const char *kid)
{
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->v[i].kid, kid) == 0)
			return &k->v[i];
	return NULL;
}

void cloud_kek_free(struct cloud_kek *k)
{
	if (k == NULL)
		return;
	if (k->v) {
		OPENSSL_cleanse(k->v, k->n * sizeof(*k->v));
		free(k->v);
	}
	free(k);
}

bool cloud_kek_has(const struct cloud_kek *k, const char *kid)
{
	return kek_find(k, kid) != NULL;
}

const char *cloud_kek_current(const struct cloud_kek *k)
{
	return k->current;
}

int cloud_kek_load(struct cloud_kek **out, const char *dir)
{
	struct cloud_kek *k = NULL;
	struct ehr_buf path = EHR_BUF_INIT(4096), data = EHR_BUF_INIT(256);
	DIR *d = NULL;
	struct dirent *de;
	int err = 0;

	*out = NULL;
	k = calloc(1, sizeof(*k));
	ENSURE_GOTO(k != NULL, EHR_ERR_NOMEM);
	d = opendir(dir);
	if (d == NULL) {
		err = ehr_error_set_detail(errno == ENOENT ? EHR_ERR_NOT_FOUND : EHR_ERR_IO,
		                           "cannot open the KEK directory", "open KEK directory %s: %s", dir,
		                           strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name);
		struct kek_entry *nv;
		struct stat st;
		if (nl <= 4 || strcmp(de->d_name + nl - 4, ".key") != 0)
			continue;
		if (!kid_valid(de->d_name, nl - 4))
			continue;
		ehr_buf_reset(&path);
		GUARD_GOTO(ehr_buf_printf(&path, "%s/%s", dir, de->d_name));
		if (stat(ehr_buf_cstr(&path), &st) == 0 && (st.st_mode & 0077) != 0) {
			err = ehr_error_set(EHR_ERR_CONFIG, "KEK file %s is readable by group or others",
			                    de->d_name);
			goto out;
		}
		ehr_buf_free_secure(&data);
		ehr_buf_init(&data, 256);
		GUARD_GOTO(ehr_file_read(&data, ehr_buf_cstr(&path), 256));
		if (data.len != CLOUD_KEY_LEN) {
			err = ehr_error_set(EHR_ERR_CONFIG, "KEK file %s is not %d bytes", de->d_name,
			                    CLOUD_KEY_LEN);
			goto out;
		}
		nv = realloc(k->v, (k->n + 1) * sizeof(*k->v));
		ENSURE_GOTO(nv != NULL, EHR_ERR_NOMEM);
		k->v = nv;
		memset(&k->v[k->n], 0, sizeof(k->v[k->n]));
		memcpy(k->v[k->n].kid, de->d_name, nl - 4);
		memcpy(k->v[k->n].key, data.data, CLOUD_KEY_LEN);
		k->n++;
	}
	ehr_buf_reset(&path);
	GUARD_GOTO(ehr_buf_printf(&path, "%s/current", dir));
	ehr_buf_free_secure(&data);
	ehr_buf_init(&data, 256);
	GUARD_GOTO(ehr_file_read(&data, ehr_buf_cstr(&path), 256));
	while (data.len > 0 && (data.data[data.len - 1] == '\n' || data.data[data.len - 1] == '\r' ||
	                        data.data[data.len - 1] == ' '))
		data.data[--data.len] = '\0';
	if (!kid_valid((const char *)data.data, data.len)) {
		err = ehr_error_set_detail(EHR_ERR_CONFIG, "the current KEK file does not name a key id",
		                           "%s/current does not name a key id", dir);
		goto out;
	}
	memcpy(k->current, data.data, data.len);
	k->current[data.len] = '\0';
	if (kek_find(k, k->current) == NULL) {
		err = ehr_error_set(EHR_ERR_CONFIG, "current KEK %s has no key file", k->current);
		goto out;
	}
	*out = k;
	k = NULL;
out:
	if (d)
		closedir(d);
	ehr_buf_free(&path);
	ehr_buf_free_secure(&data);
	cloud_kek_free(k);
	return err;
}

int cloud_kek_generate(const char *dir, char kid_out[CLOUD_KID_MAX])
{
	uint8_t key[CLOUD_KEY_LEN], rnd[2];
	struct ehr_buf path = EHR_BUF_INIT(4096);
	char stamp[32], rhex[5];
	time_t now = time(NULL);
	struct tm tm;
	int err = 0;

	GUARD(ehr_mkdir_p(dir, 0700));
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	GUARD(ehr_random(rnd, sizeof(rnd)));
	GUARD(ehr_hex_encode_fixed(rhex, sizeof(rhex), rnd, sizeof(rnd)));
	GUARD_GOTO(ehr_fmt(kid_out, CLOUD_KID_MAX, "k%s-%s", stamp, rhex));
	GUARD_GOTO(ehr_random(key, sizeof(key)));
	GUARD_GOTO(ehr_buf_printf(&path, "%s/%s.key", dir, kid_out));
	GUARD_GOTO(ehr_file_write_atomic(ehr_buf_cstr(&path), key, sizeof(key), 0600, true));
out:
	OPENSSL_cleanse(key, sizeof(key));
	ehr_buf_free(&path);
	return err;
}

int cloud_kek_set_current(const char *dir, const char *kid)
{
	struct ehr_buf path = EHR_BUF_INIT(4096), body = EHR_BUF_INIT(128);
	int err = 0;

	ENSURE(kid_valid(kid, strlen(kid)), EHR_ERR_INVAL);
	GUARD_GOTO(ehr_buf_printf(&path, "%s/current", dir));
	GUARD_GOTO(ehr_buf_printf(&body, "%s\n", kid));
	GUARD_GOTO(ehr_file_write_atomic(ehr_buf_cstr(&path), body.data, body.len, 0600, false));
out:
	ehr_buf_free(&path);
	ehr_buf_free(&body);
	return err;
}

int cloud_dek_new(uint8_t dek[CLOUD_KEY_LEN])
{
	return ehr_random(dek, CLOUD_KEY_LEN);
}

static int wrap_aad(struct ehr_buf *aad, const char *kid, const uint8_t rid[CLOUD_RID_LEN])
{
	GUARD(ehr_buf_append(aad, "ehrgate-dek-v1", 15)); /* includes the NUL */
	GUARD(ehr_buf_append(aad, kid, strlen(kid) + 1));
	return ehr_buf_append(aad, rid, CLOUD_RID_LEN);
}

int cloud_dek_wrap(const struct cloud_kek *k, const char *kid, const uint8_t rid[CLOUD_RID_LEN],
                   const uint8_t dek[CLOUD_KEY_LEN], uint8_t out[CLOUD_WRAPPED_LEN], const char **kid_used)
{
	const struct kek_entry *e;
	struct ehr_buf aad = EHR_BUF_INIT(256);
	EVP_CIPHER_CTX *ctx = NULL;
	int len = 0, flen = 0, err = 0;

	e = kek_find(k, kid ? kid : k->current);
	if (e == NULL)
		return ehr_error_set(EHR_ERR_NOT_FOUND, "unknown KEK id");
	out[0] = 1;
	GUARD_GOTO(ehr_random(out + 1, 12));
	GUARD_GOTO(wrap_aad(&aad, e->kid, rid));
	ctx = EVP_CIPHER_CTX_new();
	ENSURE_GOTO(ctx != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, e->key, out + 1));
	GUARD_OSSL_GOTO(EVP_EncryptUpdate(ctx, NULL, &len, aad.data, (int)aad.len));
	GUARD_OSSL_GOTO(EVP_EncryptUpdate(ctx, out + 13, &len, dek, CLOUD_KEY_LEN));
	GUARD_OSSL_GOTO(EVP_EncryptFinal_ex(ctx, out + 13 + len, &flen));
	GUARD_OSSL_GOTO(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + 45));
	if (kid_used)
		*kid_used = e->kid;
out:
	EVP_CIPHER_CTX_free(ctx);
	ehr_buf_free(&aad);
	return err;
}

int cloud_dek_unwrap(const struct cloud_kek *k, const char *kid, const uint8_t rid[CLOUD_RID_LEN],
                     const uint8_t wrapped[CLOUD_WRAPPED_LEN], uint8_t dek[CLOUD_KEY_LEN])
{
	const struct kek_entry *e;
	struct ehr_buf aad = EHR_BUF_INIT(256);
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t tmp[CLOUD_KEY_LEN];
	int len = 0, flen = 0, err = 0;

	e = kek_find(k, kid);
	if (e == NULL)
		return ehr_error_set(EHR_ERR_NOT_FOUND, "unknown KEK id");
	if (wrapped[0] != 1)
		return ehr_error_set(EHR_ERR_TAMPER, "wrapped key: unknown version");
	GUARD_GOTO(wrap_aad(&aad, e->kid, rid));
	ctx = EVP_CIPHER_CTX_new();
	ENSURE_GOTO(ctx != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, e->key, wrapped + 1));
	GUARD_OSSL_GOTO(EVP_DecryptUpdate(ctx, NULL, &len, aad.data, (int)aad.len));
	GUARD_OSSL_GOTO(EVP_DecryptUpdate(ctx, tmp, &len, wrapped + 13, CLOUD_KEY_LEN));
	GUARD_OSSL_GOTO(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)(wrapped + 45)));
	if (EVP_DecryptFinal_ex(ctx, tmp + len, &flen) != 1) {
		err = ehr_error_set(EHR_ERR_TAMPER, "wrapped key failed authentication");
		goto out;
	}
	memcpy(dek, tmp, CLOUD_KEY_LEN);
out:
	OPENSSL_cleanse(tmp, sizeof(tmp));
	EVP_CIPHER_CTX_free(ctx);
	ehr_buf_free(&aad);
	return err;
}
