/*
 * error.c - error codes, the per-thread error slot (a public message and a
 * log-only detail) and the bounded formatting helpers.
 */
#include "common/common.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static _Thread_local char err_msg[512];
static _Thread_local char err_detail[512];
static _Thread_local char err_text[1100];

/* One X-macro table: code, stable name, plain public text. */
#define EHR_ERR_ENTRIES(X)                                                   \
	X(EHR_OK, "ok", "ok")                                                \
	X(EHR_ERR_NOMEM, "out_of_memory", "out of memory")                   \
	X(EHR_ERR_INVAL, "invalid", "invalid request")                       \
	X(EHR_ERR_TOO_LARGE, "too_large", "too large")                       \
	X(EHR_ERR_OVERFLOW, "overflow", "size out of range")                 \
	X(EHR_ERR_IO, "io_error", "input/output error")                      \
	X(EHR_ERR_CRYPTO, "crypto_error", "cryptographic operation failed")  \
	X(EHR_ERR_DB, "database_error", "database error")                    \
	X(EHR_ERR_NOT_FOUND, "not_found", "not found")                       \
	X(EHR_ERR_EXISTS, "exists", "already exists")                        \
	X(EHR_ERR_AUTH, "unauthenticated", "authentication failed")          \
	X(EHR_ERR_FORBIDDEN, "forbidden", "forbidden")                       \
	X(EHR_ERR_UNAVAILABLE, "unavailable", "a dependency is unavailable") \
	X(EHR_ERR_TAMPER, "integrity_error", "integrity check failed")       \
	X(EHR_ERR_PARSE, "parse_error", "malformed input")                   \
	X(EHR_ERR_TIMEOUT, "timeout", "timed out")                           \
	X(EHR_ERR_CONFLICT, "conflict", "conflict")                          \
	X(EHR_ERR_REPLAY, "replay", "single-use value already used")         \
	X(EHR_ERR_EXPIRED, "expired", "expired")                             \
	X(EHR_ERR_RATE, "rate_limited", "too many requests")                 \
	X(EHR_ERR_INTERNAL, "internal_error", "internal error")              \
	X(EHR_ERR_CONFIG, "config_error", "configuration error")             \
	X(EHR_ERR_GONE, "gone", "erased")

const char *ehr_err_name(int err)
{
#define X(code, name, text) \
	case code: return name;
	switch (err) {
		EHR_ERR_ENTRIES(X)
	default: return "unknown_error";
	}
#undef X
}

const char *ehr_err_public(int err)
{
#define X(code, name, text) \
	case code: return text;
	switch (err) {
		EHR_ERR_ENTRIES(X)
	default: return "error";
	}
#undef X
}

/* Format into a slot; a text that does not fit ends in "..." rather than
 * failing, since an error must always be recordable. */
static void slot_vprintf(char *dst, size_t cap, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
static void slot_vprintf(char *dst, size_t cap, const char *fmt, va_list ap)
{
	int n = vsnprintf(dst, cap, fmt, ap); /* bounded: checked */

	if (n < 0)
		dst[0] = '\0';
	else if ((size_t)n >= cap)
		memcpy(dst + cap - 4, "...", 4);
}

static void slot_printf(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void slot_printf(char *dst, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	slot_vprintf(dst, cap, fmt, ap);
	va_end(ap);
}

/* __FILE__ relative to the source root: this file's own path names the
 * root, so ".../ehrgate/auth/jose.c" becomes "auth/jose.c". A path from
 * elsewhere keeps its last two components; never an absolute path. */
static const char *rel_path(const char *file)
{
	static const char self[] = __FILE__, tail[] = "common/error.c";
	size_t n = sizeof(self) - sizeof(tail);
	const char *p;
	int slashes = 0;

	if (file == NULL)
		return "?";
	if (sizeof(self) >= sizeof(tail) && strcmp(self + n, tail) == 0 &&
	    strncmp(file, self, n) == 0) /* not secret */
		return file + n;
	for (p = file + strlen(file); p > file; p--)
		if (p[-1] == '/' && ++slashes == 2)
			return p;
	return file;
}

int ehr_error_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	slot_vprintf(err_msg, sizeof(err_msg), fmt, ap);
	va_end(ap);
	err_detail[0] = '\0';
	return code;
}

int ehr_error_set_detail(int code, const char *public_msg, const char *fmt, ...)
{
	va_list ap;

	slot_printf(err_msg, sizeof(err_msg), "%s", public_msg ? public_msg : ehr_err_public(code));
	va_start(ap, fmt);
	slot_vprintf(err_detail, sizeof(err_detail), fmt, ap);
	va_end(ap);
	return code;
}

int ehr_error_at(int code, const char *file, int line, const char *expr)
{
	return ehr_error_set_detail(code, ehr_err_public(code), "%s:%d: %s", rel_path(file), line, expr);
}

static void ossl_text(char *out, size_t cap)
{
	unsigned long e = ERR_peek_last_error();

	slot_printf(out, cap, "%s", "no OpenSSL error queued");
	if (e != 0)
		ERR_error_string_n(e, out, cap);
	ERR_clear_error();
}

int ehr_error_ossl(int code, const char *what)
{
	char ossl[256];

	ossl_text(ossl, sizeof(ossl));
	return ehr_error_set_detail(code, what, "%s: %s", what, ossl);
}

int ehr_error_ossl_at(int code, const char *file, int line, const char *expr)
{
	char ossl[256];

	ossl_text(ossl, sizeof(ossl));
	return ehr_error_set_detail(code, ehr_err_public(code), "%s:%d: %s: %s", rel_path(file), line, expr,
	                            ossl);
}

int ehr_error_wrap(int code, const char *fmt, ...)
{
	char old[sizeof(err_msg)], prefix[sizeof(err_msg)];
	va_list ap;

	memcpy(old, err_msg, sizeof(old));
	va_start(ap, fmt);
	slot_vprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	slot_printf(err_msg, sizeof(err_msg), "%s: %s", prefix, old[0] ? old : ehr_err_public(code));
	return code;
}

const char *ehr_error_msg(void)
{
	return err_msg;
}

const char *ehr_error_detail(void)
{
	if (err_detail[0] == '\0')
		return err_msg;
	slot_printf(err_text, sizeof(err_text), "%s [%s]", err_msg, err_detail);
	return err_text;
}

void ehr_error_clear(void)
{
	err_msg[0] = '\0';
	err_detail[0] = '\0';
}

void ehr_error_save(struct ehr_error_saved *s)
{
	memcpy(s->msg, err_msg, sizeof(s->msg));
	memcpy(s->detail, err_detail, sizeof(s->detail));
}

void ehr_error_restore(const struct ehr_error_saved *s)
{
	memcpy(err_msg, s->msg, sizeof(err_msg));
	memcpy(err_detail, s->detail, sizeof(err_detail));
}

/* ------------------------------------------------------ bounded formatting */

int ehr_vfmt(char *dst, size_t cap, const char *fmt, va_list ap)
{
	int n;

	if (dst == NULL || cap == 0)
		return ehr_error_set(EHR_ERR_INVAL, "no room to format into");
	n = vsnprintf(dst, cap, fmt, ap); /* bounded: checked */
	if (n < 0) {
		dst[0] = '\0';
		return ehr_error_set(EHR_ERR_INVAL, "text could not be formatted");
	}
	if ((size_t)n >= cap) {
		dst[0] = '\0';
		return ehr_error_set(EHR_ERR_TOO_LARGE, "text too long (%d bytes, room for %zu)", n, cap - 1);
	}
	return 0;
}

int ehr_fmt(char *dst, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = ehr_vfmt(dst, cap, fmt, ap);
	va_end(ap);
	return err;
}

int ehr_str_copy(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (dst == NULL || cap == 0)
		return ehr_error_set(EHR_ERR_INVAL, "no room to copy into");
	if (n >= cap) {
		dst[0] = '\0';
		return ehr_error_set(EHR_ERR_TOO_LARGE, "text too long (%zu bytes, room for %zu)", n,
		                     cap - 1);
	}
	memcpy(dst, src ? src : "", n + 1);
	return 0;
}

int ehr_size_add(size_t *out, size_t a, size_t b)
{
	if (__builtin_add_overflow(a, b, out))
		return ehr_error_set(EHR_ERR_OVERFLOW, "size overflow in addition");
	return 0;
}

int ehr_size_mul(size_t *out, size_t a, size_t b)
{
	if (__builtin_mul_overflow(a, b, out))
		return ehr_error_set(EHR_ERR_OVERFLOW, "size overflow in multiplication");
	return 0;
}
