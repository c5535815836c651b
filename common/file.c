/* file.c - whole-file reads and durable atomic writes. */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A failed system call on path: a plain public message; the path and
 * strerror(errno) go to the log detail only (operators' commands print it). */
static int io_fail(int code, const char *public_msg, const char *what, const char *path)
{
	int e = errno;

	return ehr_error_set_detail(code, public_msg, "%s %s: %s", what, path, strerror(e));
}

int ehr_file_read(struct ehr_buf *out, const char *path, size_t max)
{
	uint8_t chunk[16384];
	int fd, err = 0;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? io_fail(EHR_ERR_NOT_FOUND, "file not found", "open", path)
		                       : io_fail(EHR_ERR_IO, "cannot open file", "open", path);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = io_fail(EHR_ERR_IO, "cannot read file", "read", path);
			goto out;
		}
		if (out->len + (size_t)n > max) {
			err = ehr_error_set_detail(EHR_ERR_TOO_LARGE, "file too large",
			                           "%s is larger than %zu bytes", path, max);
			goto out;
		}
		GUARD_GOTO(ehr_buf_append(out, chunk, (size_t)n));
	}
out:
	close(fd);
	return err;
}

static int fsync_dir_of(const char *path)
{
	char copy[4096];
	int dfd, err;

	if (strlen(path) >= sizeof(copy))
		return ehr_error_set(EHR_ERR_INVAL, "path too long");
	memcpy(copy, path, strlen(path) + 1);
	dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return io_fail(EHR_ERR_IO, "cannot open directory", "open directory of", path);
	if (fsync(dfd) != 0) {
		err = io_fail(EHR_ERR_IO, "cannot sync directory", "fsync directory of", path);
		close(dfd);
		return err;
	}
	close(dfd);
	return 0;
}

int ehr_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode, bool exclusive)
{
	struct ehr_buf tmp = EHR_BUF_INIT(4096);
	const uint8_t *p = data;
	int fd = -1, err = 0;

	if (exclusive && access(path, F_OK) == 0)
		return ehr_error_set_detail(EHR_ERR_EXISTS, "file already exists; refusing to overwrite",
		                            "%s already exists; refusing to overwrite", path);
	GUARD_GOTO(ehr_buf_printf(&tmp, "%s.tmp.XXXXXX", path));
	fd = mkostemp((char *)tmp.data, O_CLOEXEC);
	if (fd < 0) {
		err = io_fail(EHR_ERR_IO, "cannot create file", "create temp file for", path);
		goto out;
	}
	if (fchmod(fd, (mode_t)mode) != 0) {
		err = io_fail(EHR_ERR_IO, "cannot set file mode", "chmod", path);
		goto out;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = io_fail(EHR_ERR_IO, "cannot write file", "write", path);
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0) {
		err = io_fail(EHR_ERR_IO, "cannot sync file", "fsync", path);
		goto out;
	}
	close(fd);
	fd = -1;
	if (exclusive) {
		/* link() fails if the target appeared meanwhile: no silent overwrite. */
		if (link((char *)tmp.data, path) != 0) {
			err = errno == EEXIST ? io_fail(EHR_ERR_EXISTS, "file already exists", "create", path)
			                      : io_fail(EHR_ERR_IO, "cannot create file", "create", path);
			goto out;
		}
		unlink((char *)tmp.data);
	} else if (rename((char *)tmp.data, path) != 0) {
		err = io_fail(EHR_ERR_IO, "cannot replace file", "rename to", path);
		goto out;
	}
	err = fsync_dir_of(path);
out:
	if (fd >= 0)
		close(fd);
	if (err < 0 && tmp.data)
		unlink((char *)tmp.data);
	ehr_buf_free(&tmp);
	return err;
}

int ehr_mkdir_p(const char *path, unsigned mode)
{
	char copy[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(copy))
		return ehr_error_set(EHR_ERR_INVAL, "bad directory path");
	memcpy(copy, path, n + 1);
	for (size_t i = 1; i < n; i++) {
		if (copy[i] != '/')
			continue;
		copy[i] = '\0';
		if (mkdir(copy, 0755) != 0 && errno != EEXIST)
			return io_fail(EHR_ERR_IO, "cannot create directory", "mkdir", copy);
		copy[i] = '/';
	}
	if (mkdir(copy, (mode_t)mode) != 0 && errno != EEXIST)
		return io_fail(EHR_ERR_IO, "cannot create directory", "mkdir", copy);
	return 0;
}
