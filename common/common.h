/*
 * common.h - the one module every other module may use.
 *
 * Errors (negative ehr_err codes plus a per-thread detail slot), guard macros,
 * overflow-checked sizes, a bounded growable buffer, a bounds-checked read
 * cursor, base64/base64url/hex codecs, structured JSON logging, bounded JSON
 * parsing and small file helpers. The PostgreSQL pool is common/db.h, a
 * separate library (commondb), so code that never talks to the database
 * never links libpq.
 */
#ifndef EHR_COMMON_H
#define EHR_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

/* ------------------------------------------------------------------ errors */

/* 0 is success; every failure is one of these negative codes. */
typedef enum {
	EHR_OK = 0,
	EHR_ERR_NOMEM = -1,     /* allocation failed */
	EHR_ERR_INVAL = -2,     /* bad argument or malformed input */
	EHR_ERR_TOO_LARGE = -3, /* a limit was exceeded */
	EHR_ERR_OVERFLOW = -4,  /* size arithmetic would overflow */
	EHR_ERR_IO = -5,        /* file or socket I/O */
	EHR_ERR_CRYPTO = -6,    /* OpenSSL failure */
	EHR_ERR_DB = -7,        /* PostgreSQL failure */
	EHR_ERR_NOT_FOUND = -8,
	EHR_ERR_EXISTS = -9,
	EHR_ERR_AUTH = -10,        /* not authenticated */
	EHR_ERR_FORBIDDEN = -11,   /* authenticated but not allowed */
	EHR_ERR_UNAVAILABLE = -12, /* a dependency is down */
	EHR_ERR_TAMPER = -13,      /* integrity check failed */
	EHR_ERR_PARSE = -14,       /* syntax error in input */
	EHR_ERR_TIMEOUT = -15,
	EHR_ERR_CONFLICT = -16,
	EHR_ERR_REPLAY = -17, /* single-use value seen twice */
	EHR_ERR_EXPIRED = -18,
	EHR_ERR_RATE = -19, /* rate limit */
	EHR_ERR_INTERNAL = -20,
	EHR_ERR_CONFIG = -21, /* configuration error */
	EHR_ERR_GONE = -22,   /* existed, and was erased on purpose */
} ehr_err;

/* Stable lower-case name of a code, e.g. "too_large". Never NULL. */
const char *ehr_err_name(int err);
/* A plain, stable one-line text for a code ("invalid request"), fit for a
 * client. Never NULL. */
const char *ehr_err_public(int err);

/*
 * The per-thread error slot (libgit2's error_threadstate) holds two texts:
 *  - the public message: one plain line a client may read ("patient id
 *    malformed"). Never a source file, an expression, a path, or libpq,
 *    OpenSSL, curl or strerror text;
 *  - the log detail: where and why (file:line: expression, the library's
 *    own text), for the log and for operators' commands only.
 * Neither may ever hold PHI or secrets.
 */

/* Set the public message (printf-style) and clear the log detail; returns
 * `code` so that `return ehr_error_set(EHR_ERR_INVAL, "bad %s", x);` reads
 * well. */
int ehr_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set a fixed public message and a printf-style log detail: the place for
 * libpq, OpenSSL, curl and strerror text, and for file paths. */
int ehr_error_set_detail(int code, const char *public_msg, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* ENSURE's failure: public message ehr_err_public(code), detail
 * "file:line: expr" with file relative to the source root. */
int ehr_error_at(int code, const char *file, int line, const char *expr);
/* Public message `what`; detail `what` plus the first queued OpenSSL error.
 * Clears OpenSSL's error queue. */
int ehr_error_ossl(int code, const char *what);
/* GUARD_OSSL's failure: public ehr_err_public(code), detail
 * "file:line: expr: <OpenSSL text>". Clears OpenSSL's error queue. */
int ehr_error_ossl_at(int code, const char *file, int line, const char *expr);
/* Wrap the current error: the public message becomes "<prefix>: <message>"
 * (prefix printf-style), the log detail is kept, and `code` is returned. */
int ehr_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The current thread's public message ("" if none). */
const char *ehr_error_msg(void);
/* The text for logs and operators: the public message, then the detail in
 * brackets when there is one ("" if neither). Never send it to a client. */
const char *ehr_error_detail(void);
void ehr_error_clear(void);

/* A copy of the slot, to keep an error across calls that may set another
 * (e.g. writing an audit event before returning the first error). */
struct ehr_error_saved {
	char msg[512];
	char detail[512];
};
void ehr_error_save(struct ehr_error_saved *s);
void ehr_error_restore(const struct ehr_error_saved *s);

/* Propagate a negative result. */
#define GUARD(x)                          \
	do {                              \
		int guard__rc = (x);      \
		if (guard__rc < 0)        \
			return guard__rc; \
	} while (0)

/* Check a condition; on failure record where (log detail) and return `code`
 * with a plain public message. */
#define ENSURE(cond, code)                                                      \
	do {                                                                    \
		if (!(cond))                                                    \
			return ehr_error_at((code), __FILE__, __LINE__, #cond); \
	} while (0)

/* OpenSSL calls return 1 on success. */
#define GUARD_OSSL(x)                                                                     \
	do {                                                                              \
		if ((x) != 1)                                                             \
			return ehr_error_ossl_at(EHR_ERR_CRYPTO, __FILE__, __LINE__, #x); \
	} while (0)

/* libgit2 style: requires `int err;` and an `out:` label. */
#define GUARD_GOTO(x)                \
	do {                         \
		if ((err = (x)) < 0) \
			goto out;    \
	} while (0)
#define ENSURE_GOTO(cond, code)                                                \
	do {                                                                   \
		if (!(cond)) {                                                 \
			err = ehr_error_at((code), __FILE__, __LINE__, #cond); \
			goto out;                                              \
		}                                                              \
	} while (0)
#define GUARD_OSSL_GOTO(x)                                                               \
	do {                                                                             \
		if ((x) != 1) {                                                          \
			err = ehr_error_ossl_at(EHR_ERR_CRYPTO, __FILE__, __LINE__, #x); \
			goto out;                                                        \
		}                                                                        \
	} while (0)

#define EHR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------- checked arithmetic */

int ehr_size_add(size_t *out, size_t a, size_t b);
int ehr_size_mul(size_t *out, size_t a, size_t b);

/* ------------------------------------------------------ bounded formatting */

/*
 * snprintf that refuses to truncate: 0 when the whole text and its NUL fit
 * in dst[cap]; otherwise EHR_ERR_TOO_LARGE (EHR_ERR_INVAL for cap 0 or an
 * encoding error) with dst set to "" (when cap > 0), never a cut string.
 * The result must be used: this replaces every bare snprintf.
 */
int ehr_fmt(char *dst, size_t cap, const char *fmt, ...)
        __attribute__((format(printf, 3, 4), warn_unused_result));
int ehr_vfmt(char *dst, size_t cap, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0), warn_unused_result));
/* Copy a C string (NULL copies as ""), as ehr_fmt(dst, cap, "%s", src). */
int ehr_str_copy(char *dst, size_t cap, const char *src) __attribute__((warn_unused_result));

/* ------------------------------------------------------------ bounded buffer */

/*
 * A growable byte buffer with a hard maximum (curl's dynbuf "toobig").
 * data is always NUL-terminated one past len when non-NULL, so text can be
 * used as a C string; the NUL is not counted in len.
 */
struct ehr_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max;
};

#define EHR_BUF_INIT(maxbytes)         \
	{                              \
		NULL, 0, 0, (maxbytes) \
	}

void ehr_buf_init(struct ehr_buf *b, size_t max);
int ehr_buf_reserve(struct ehr_buf *b, size_t extra);
int ehr_buf_append(struct ehr_buf *b, const void *p, size_t n);
int ehr_buf_append_str(struct ehr_buf *b, const char *s);
int ehr_buf_append_u8(struct ehr_buf *b, uint8_t v);
int ehr_buf_append_be16(struct ehr_buf *b, uint16_t v);
int ehr_buf_append_be32(struct ehr_buf *b, uint32_t v);
int ehr_buf_append_be64(struct ehr_buf *b, uint64_t v);
int ehr_buf_printf(struct ehr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ehr_buf_vprintf(struct ehr_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* "" when empty; never NULL. */
const char *ehr_buf_cstr(const struct ehr_buf *b);
/* Hand the allocation to the caller (free() it); the buffer becomes empty. */
uint8_t *ehr_buf_detach(struct ehr_buf *b, size_t *len);
void ehr_buf_reset(struct ehr_buf *b);       /* len = 0, keeps memory */
void ehr_buf_free(struct ehr_buf *b);        /* releases memory */
void ehr_buf_free_secure(struct ehr_buf *b); /* cleanses, then releases */

/* --------------------------------------------------------------- read cursor */

/* A parser's view of untrusted bytes; it never reads past the end. */
struct ehr_cursor {
	const uint8_t *p;
	size_t len;
	size_t off;
};

void ehr_cursor_init(struct ehr_cursor *c, const void *p, size_t len);
size_t ehr_cursor_remaining(const struct ehr_cursor *c);
int ehr_cursor_read(struct ehr_cursor *c, void *out, size_t n);
int ehr_cursor_take(struct ehr_cursor *c, const uint8_t **out, size_t n);
int ehr_cursor_skip(struct ehr_cursor *c, size_t n);
int ehr_cursor_read_u8(struct ehr_cursor *c, uint8_t *v);
int ehr_cursor_read_be16(struct ehr_cursor *c, uint16_t *v);
int ehr_cursor_read_be32(struct ehr_cursor *c, uint32_t *v);
int ehr_cursor_read_be64(struct ehr_cursor *c, uint64_t *v);

/* -------------------------------------------------------------------- codecs */

/* Standard base64 with padding (RFC 4648 §4). Appends to out. */
int ehr_b64_encode(struct ehr_buf *out, const void *in, size_t n);
/* Strict: rejects bad characters, bad padding and non-canonical trailing bits. */
int ehr_b64_decode(struct ehr_buf *out, const char *in, size_t n);
/* base64url without padding (RFC 4648 §5, RFC 7515 §2). */
int ehr_b64url_encode(struct ehr_buf *out, const void *in, size_t n);
int ehr_b64url_decode(struct ehr_buf *out, const char *in, size_t n);
/* Lower-case hex, appended to out. */
int ehr_hex_encode(struct ehr_buf *out, const void *in, size_t n);
/* Lower-case hex of n bytes into out[cap] with a terminating NUL (cap >= 2n+1,
 * else EHR_ERR_TOO_LARGE and out is ""). The one hex encoder. */
int ehr_hex_encode_fixed(char *out, size_t cap, const void *in, size_t n);
int ehr_hex_decode(uint8_t *out, size_t outlen, const char *in, size_t n);

/* Decimal parsing without atoi: whole string, range-checked. */
int ehr_parse_u64(uint64_t *out, const char *s, uint64_t max);
int ehr_parse_i64(int64_t *out, const char *s, int64_t min, int64_t max);
/* The next item of a config list: skips blanks and separators, stops at
 * the next character of seps (or the end) and drops trailing blanks.
 * Returns the item (*len bytes) and moves *cursor past it; NULL at the end. */
const char *ehr_list_next(const char **cursor, const char *seps, size_t *len);

/* -------------------------------------------------------------- randomness */

int ehr_random(void *out, size_t n); /* RAND_bytes */
/* n random bytes, base64url-encoded, into a fresh buffer. */
int ehr_random_token(struct ehr_buf *out, size_t nbytes);

/* --------------------------------------------------------------------- time */

int64_t ehr_now_ms(void); /* wall clock, Unix ms */
int64_t ehr_monotonic_ms(void);
int64_t ehr_monotonic_us(void);
/* RFC 3339 UTC with milliseconds: "2026-11-24T05:19:49.123Z" (25 bytes + NUL). */
void ehr_time_rfc3339(char out[32], int64_t unix_ms);

/* ------------------------------------------------------------ crash tests */

/* Test-only crash points (docs/ERASURE.md §3): when the environment
 * variable EHRGATE_TEST_FAILPOINT names `name`, the process SIGKILLs
 * itself there, as a power cut would. One mechanism for every module. */
void ehr_failpoint(const char *name);
/* A test-only pause point: when EHRGATE_TEST_FAILPOINT names `name`, create
 * the file $EHRGATE_TEST_FAILPOINT_RELEASE.reached, then wait (at most 60 s)
 * until the file $EHRGATE_TEST_FAILPOINT_RELEASE exists. A test uses it to
 * hold one request at a point while it races another against it. */
void ehr_failpoint_wait(const char *name);

/* ------------------------------------------------------------------ logging */

enum ehr_log_level { EHR_LOG_DEBUG = 0, EHR_LOG_INFO, EHR_LOG_WARN, EHR_LOG_ERROR };

void ehr_log_set_level(enum ehr_log_level lvl);
int ehr_log_parse_level(enum ehr_log_level *out, const char *s);
/*
 * One JSON line on stderr: {"ts":...,"level":...,"event":...,<fields>}.
 * `fields` (may be NULL) is stolen. Never put bodies, PHI or secrets in it.
 */
void ehr_log_json(enum ehr_log_level lvl, const char *event, json_t *fields);
/* Write pre-formatted, complete log lines (each ending in '\n') to stderr
 * under the logger's lock, so batches never interleave with other lines.
 * For hot paths (the gateway's access log) that batch their output. */
void ehr_log_write_lines(const char *text, size_t len);
/* The current level (lines below it are dropped). */
enum ehr_log_level ehr_log_get_level(void);
/* Same with a single "msg" field. */
void ehr_logf(enum ehr_log_level lvl, const char *event, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* --------------------------------------------------------------------- JSON */

#define EHR_JSON_MAX_DEPTH 16

/*
 * Parse untrusted JSON: at most `max_bytes` and `max_depth` nesting levels,
 * duplicate keys rejected, exactly one value. On error the detail names
 * the position, never the content.
 */
int ehr_json_parse(json_t **out, const void *data, size_t len, size_t max_bytes, size_t max_depth);
/* Required string member with a length bound (1..maxlen). */
int ehr_json_get_str(const json_t *obj, const char *key, const char **out, size_t maxlen);
/* Optional string member: *out = NULL when absent. */
int ehr_json_opt_str(const json_t *obj, const char *key, const char **out, size_t maxlen);
int ehr_json_get_int(const json_t *obj, const char *key, int64_t *out, int64_t min, int64_t max);
/* Compact, sorted-keys serialisation into a buffer. */
int ehr_json_dump(struct ehr_buf *out, const json_t *v);

/* -------------------------------------------------------------------- files */

/* Read a whole file, refusing files larger than max. */
int ehr_file_read(struct ehr_buf *out, const char *path, size_t max);
/* Write to path.tmp.XXXXXX with `mode`, fsync, rename, fsync the directory.
 * With exclusive, fail with EHR_ERR_EXISTS if path already exists. */
int ehr_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode, bool exclusive);
/* mkdir -p with mode for the last component. */
int ehr_mkdir_p(const char *path, unsigned mode);

/* ---------------------------------------------------- JOSE primitives */

#define EHR_ES256_SIG_LEN 64
#define EHR_JKT_LEN 43 /* base64url(SHA-256) without padding */

/* true when key is an EC key on P-256 (prime256v1). */
bool ehr_key_is_p256(const EVP_PKEY *key);
/* RFC 7518 §3.4: ECDSA P-256 SHA-256, signature as raw r||s (64 bytes). */
int ehr_es256_sign(uint8_t sig[EHR_ES256_SIG_LEN], EVP_PKEY *key, const void *data, size_t len);
/* 0 when valid; EHR_ERR_AUTH otherwise (also for a non-P-256 key). */
int ehr_es256_verify(EVP_PKEY *key, const void *data, size_t len, const uint8_t *sig, size_t siglen);
/* Convenience: base64url(ES256 signature) into out / verify such a string. */
int ehr_es256_sign_b64url(struct ehr_buf *out, EVP_PKEY *key, const void *data, size_t len);
int ehr_es256_verify_b64url(EVP_PKEY *key, const void *data, size_t len, const char *sig_b64url);
/* RFC 7517/7518 §6.2: a P-256 public JWK ({"kty":"EC","crv":"P-256","x","y"});
 * a JWK holding "d" (private) is refused, as is a point not on the curve. */
int ehr_jwk_parse(EVP_PKEY **out, const json_t *jwk);
int ehr_jwk_parse_text(EVP_PKEY **out, const char *text, size_t len);
/* The public JWK of a P-256 key (kty, crv, x, y only). */
int ehr_jwk_from_key(json_t **out, EVP_PKEY *key);
/* RFC 7638 thumbprint (SHA-256, base64url) of a P-256 key. */
int ehr_jwk_thumbprint(char out[EHR_JKT_LEN + 1], EVP_PKEY *key);

#endif
