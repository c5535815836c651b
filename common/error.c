/* error.c - error codes and the per-thread detail slot. */
#include "common/common.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static _Thread_local char err_detail[512];

const char *ehr_err_name(int err)
{
	switch (err) {
	case EHR_OK: return "ok";
	case EHR_ERR_NOMEM: return "out_of_memory";
	case EHR_ERR_INVAL: return "invalid";
	case EHR_ERR_TOO_LARGE: return "too_large";
	case EHR_ERR_OVERFLOW: return "overflow";
	case EHR_ERR_IO: return "io_error";
	case EHR_ERR_CRYPTO: return "crypto_error";
	case EHR_ERR_DB: return "database_error";
	case EHR_ERR_NOT_FOUND: return "not_found";
	case EHR_ERR_EXISTS: return "exists";
	case EHR_ERR_AUTH: return "unauthenticated";
	case EHR_ERR_FORBIDDEN: return "forbidden";
	case EHR_ERR_UNAVAILABLE: return "unavailable";
	case EHR_ERR_TAMPER: return "integrity_error";
	case EHR_ERR_PARSE: return "parse_error";
	case EHR_ERR_TIMEOUT: return "timeout";
	case EHR_ERR_CONFLICT: return "conflict";
	case EHR_ERR_REPLAY: return "replay";
	case EHR_ERR_EXPIRED: return "expired";
	case EHR_ERR_RATE: return "rate_limited";
	case EHR_ERR_INTERNAL: return "internal_error";
	case EHR_ERR_CONFIG: return "config_error";
	default: return "unknown_error";
	}
}

int ehr_error_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_detail, sizeof(err_detail), fmt, ap);
	va_end(ap);
	return code;
}

int ehr_error_ossl(int code, const char *what)
{
	char ossl[256] = "no OpenSSL error queued";
	unsigned long e = ERR_peek_last_error();

	if (e != 0)
		ERR_error_string_n(e, ossl, sizeof(ossl));
	ERR_clear_error();
	return ehr_error_set(code, "%s: %s", what, ossl);
}

const char *ehr_error_msg(void)
{
	return err_detail;
}

void ehr_error_clear(void)
{
	err_detail[0] = '\0';
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
