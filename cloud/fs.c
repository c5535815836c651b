/*
 * fs.c - the filesystem backend, the embedded default. An object is the
 * file <root>/<key>. A put writes <root>/.tmp/<random>, fsyncs it, renames
 * it over the key, and fsyncs the directory, so an object is either whole
 * or absent after a crash. Leftover temp files are not objects (no key
 * segment may start with '.') and are swept when the store opens.
 */
#include "cloud/cloud_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

struct fs_store {
	char *root;
	char *tmpdir;
};

#define FS_CHUNK (64 * 1024)

static int fs_path(struct ehr_buf *out, const struct fs_store *fs, const char *key)
{
	return ehr_buf_printf(out, "%s/%s", fs->root, key);
}

static int fsync_path(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ehr_error_set_detail(EHR_ERR_IO, "fs store: cannot open directory",
		                            "open directory: %s", strerror(errno));
	if (fsync(fd) != 0) {
		close(fd);
		return ehr_error_set_detail(EHR_ERR_IO, "fs store: cannot sync directory",
		                            "fsync directory: %s", strerror(errno));
	}
	close(fd);
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return ehr_error_set_detail(errno == ENOSPC ? EHR_ERR_UNAVAILABLE : EHR_ERR_IO,
			                            "fs store: cannot write", "write: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* size: checked by store.c's reader, so unused here. */
static int fs_put(void *impl, const char *key, cloud_read_fn rd, void *rctx, int64_t size,
                  struct obj_info *info)
{
	struct fs_store *fs = impl;
	struct ehr_buf tmp = EHR_BUF_INIT(4096), dst = EHR_BUF_INIT(4096);
	uint8_t *chunk = NULL;
	int fd = -1, err = 0, rc;
	char *slash;

	(void)size;
	(void)info;
	chunk = malloc(FS_CHUNK);
	ENSURE_GOTO(chunk != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(ehr_buf_printf(&tmp, "%s/put.XXXXXX", fs->tmpdir));
	fd = mkostemp((char *)tmp.data, O_CLOEXEC);
	if (fd < 0) {
		err = ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "fs store: cannot create temp file",
		                           "fs store: create temp file: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		size_t got = 0;
		GUARD_GOTO(rd(rctx, chunk, FS_CHUNK, &got));
		if (got == 0)
			break;
		GUARD_GOTO(write_all(fd, chunk, got));
	}
	if (fsync(fd) != 0) {
		err = ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "fs store: cannot sync",
		                           "fs store: fsync: %s", strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	GUARD_GOTO(fs_path(&dst, fs, key));
	slash = strrchr((char *)dst.data, '/');
	/* The key's directory usually exists: make it only when the rename
	 * says it does not (six failing mkdirs per put, otherwise). */
	rc = rename(ehr_buf_cstr(&tmp), ehr_buf_cstr(&dst));
	if (rc != 0 && errno == ENOENT) {
		*slash = '\0';
		GUARD_GOTO(ehr_mkdir_p((char *)dst.data, 0700));
		*slash = '/';
		rc = rename(ehr_buf_cstr(&tmp), ehr_buf_cstr(&dst));
	}
	if (rc != 0) {
		err = ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "fs store: cannot rename",
		                           "fs store: rename: %s", strerror(errno));
		goto out;
	}
	*slash = '\0';
	GUARD_GOTO(fsync_path((char *)dst.data));
	ehr_buf_reset(&tmp);
out:
	if (fd >= 0)
		close(fd);
	if (tmp.len > 0)
		unlink(ehr_buf_cstr(&tmp));
	free(chunk);
	ehr_buf_free(&tmp);
	ehr_buf_free(&dst);
	return err;
}

static int fs_get(void *impl, const char *key, cloud_write_fn wr, void *wctx, struct obj_info *info)
{
	struct fs_store *fs = impl;
	struct ehr_buf path = EHR_BUF_INIT(4096);
	uint8_t *chunk = NULL;
	int fd = -1, err = 0;

	(void)info;
	GUARD_GOTO(fs_path(&path, fs, key));
	fd = open(ehr_buf_cstr(&path), O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = ehr_error_set_detail(errno == ENOENT ? EHR_ERR_NOT_FOUND : EHR_ERR_UNAVAILABLE,
		                           errno == ENOENT ? "fs store: no such object"
		                                           : "fs store: cannot open",
		                           "fs store: open: %s", strerror(errno));
		goto out;
	}
	chunk = malloc(FS_CHUNK);
	ENSURE_GOTO(chunk != NULL, EHR_ERR_NOMEM);
	for (;;) {
		ssize_t n = read(fd, chunk, FS_CHUNK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "fs store: cannot read",
			                           "fs store: read: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		GUARD_GOTO(wr(wctx, chunk, (size_t)n));
	}
out:
	if (fd >= 0)
		close(fd);
	free(chunk);
	ehr_buf_free(&path);
	return err;
}

static int fs_head(void *impl, const char *key, uint64_t *size)
{
	struct fs_store *fs = impl;
	struct ehr_buf path = EHR_BUF_INIT(4096);
	struct stat st;
	int err = 0;

	GUARD_GOTO(fs_path(&path, fs, key));
	if (stat(ehr_buf_cstr(&path), &st) != 0 || !S_ISREG(st.st_mode)) {
		err = ehr_error_set(errno == ENOENT || errno == 0 ? EHR_ERR_NOT_FOUND : EHR_ERR_UNAVAILABLE,
		                    "fs store: no such object");
		goto out;
	}
	*size = (uint64_t)st.st_size;
out:
	ehr_buf_free(&path);
	return err;
}

static int fs_del(void *impl, const char *key)
{
	struct fs_store *fs = impl;
	struct ehr_buf path = EHR_BUF_INIT(4096);
	int err = 0;

	GUARD_GOTO(fs_path(&path, fs, key));
	if (unlink(ehr_buf_cstr(&path)) != 0) {
		if (errno != ENOENT)
			err = ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "fs store: cannot delete",
			                           "fs store: unlink: %s", strerror(errno));
		goto out;
	}
	*strrchr((char *)path.data, '/') = '\0';
	GUARD_GOTO(fsync_path((char *)path.data));
out:
	ehr_buf_free(&path);
	return err;
}

/* Walk rel (relative to root, "" for the root), calling fn for files whose
 * key starts with prefix. Entries starting with '.' are skipped. */
static int fs_walk(struct fs_store *fs, const char *rel, const char *prefix, obj_list_fn fn, void *ctx,
                   int depth)
{
	struct ehr_buf dir = EHR_BUF_INIT(4096), child = EHR_BUF_INIT(4096);
	DIR *d = NULL;
	struct dirent *de;
	int err = 0;

	ENSURE(depth < 16, EHR_ERR_TOO_LARGE);
	GUARD_GOTO(ehr_buf_printf(&dir, "%s%s%s", fs->root, rel[0] ? "/" : "", rel));
	d = opendir(ehr_buf_cstr(&dir));
	if (d == NULL) {
		if (errno != ENOENT)
			err = ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "fs store: cannot list",
			                           "fs store: opendir: %s", strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		size_t plen = strlen(prefix), clen;
		if (de->d_name[0] == '.')
			continue;
		ehr_buf_reset(&child);
		GUARD_GOTO(ehr_buf_printf(&child, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name));
		clen = child.len;
		/* Prune subtrees that cannot match the prefix. */
		if (strncmp((const char *)child.data, prefix, clen < plen ? clen : plen) != 0)
			continue;
		ehr_buf_reset(&dir);
		GUARD_GOTO(ehr_buf_printf(&dir, "%s/%s", fs->root, ehr_buf_cstr(&child)));
		if (lstat(ehr_buf_cstr(&dir), &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			GUARD_GOTO(fs_walk(fs, ehr_buf_cstr(&child), prefix, fn, ctx, depth + 1));
		} else if (S_ISREG(st.st_mode) && clen >= plen) {
			GUARD_GOTO(fn(ctx, ehr_buf_cstr(&child), (uint64_t)st.st_size));
		}
	}
out:
	if (d)
		closedir(d);
	ehr_buf_free(&dir);
	ehr_buf_free(&child);
	return err;
}

static int fs_list(void *impl, const char *prefix, obj_list_fn fn, void *ctx)
{
	return fs_walk(impl, "", prefix, fn, ctx, 0);
}

static int fs_ping(void *impl)
{
	struct fs_store *fs = impl;
	if (access(fs->tmpdir, W_OK | X_OK) != 0)
		return ehr_error_set_detail(EHR_ERR_UNAVAILABLE, "fs store: not writable",
		                            "fs store: not writable: %s", strerror(errno));
	return 0;
}

static void fs_free(void *impl)
{
	struct fs_store *fs = impl;
	if (fs == NULL)
		return;
	free(fs->root);
	free(fs->tmpdir);
	free(fs);
}

static const struct obj_backend_ops FS_OPS = {
	.put = fs_put,
	.get = fs_get,
	.head = fs_head,
	.del = fs_del,
	.list = fs_list,
	.ping = fs_ping,
	.free = fs_free,
};

/* Remove temp files left by a crash in the middle of a put. */
static void sweep_tmp(const char *tmpdir)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "put.", 4) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

int cloud__fs_open(void **impl, const struct obj_backend_ops **ops, const struct obj_store_config *cfg)
{
	struct fs_store *fs;
	struct ehr_buf t = EHR_BUF_INIT(4096);
	int err = 0;

	ENSURE(cfg->fs_path != NULL && cfg->fs_path[0] != '\0', EHR_ERR_CONFIG);
	fs = calloc(1, sizeof(*fs));
	ENSURE(fs != NULL, EHR_ERR_NOMEM);
	fs->root = strdup(cfg->fs_path);
	ENSURE_GOTO(fs->root != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(ehr_buf_printf(&t, "%s/.tmp", fs->root));
	GUARD_GOTO(ehr_mkdir_p(ehr_buf_cstr(&t), 0700));
	fs->tmpdir = (char *)ehr_buf_detach(&t, NULL);
	sweep_tmp(fs->tmpdir);
	*impl = fs;
	*ops = &FS_OPS;
	return 0;
out:
	ehr_buf_free(&t);
	fs_free(fs);
	return err;
}
