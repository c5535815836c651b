/* codec.c - base64 (RFC 4648), hex, decimal parsing, randomness, time. */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_encode(struct ehr_buf *out, const uint8_t *in, size_t n, const char *alpha, bool pad)
{
	size_t groups, need;

	groups = n / 3 + (n % 3 != 0);
	GUARD(ehr_size_mul(&need, groups, 4));
	GUARD(ehr_buf_reserve(out, need));
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t rem = n - i;
		if (rem > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (rem > 2)
			v |= in[i + 2];
		char q[4] = { alpha[(v >> 18) & 63], alpha[(v >> 12) & 63], alpha[(v >> 6) & 63],
			      alpha[v & 63] };
		size_t emit = rem >= 3 ? 4 : rem + 1;
		GUARD(ehr_buf_append(out, q, emit));
		for (size_t k = emit; pad && k < 4; k++)
			GUARD(ehr_buf_append_u8(out, '='));
	}
	return 0;
}

static int b64_value(const char *alpha, char ch)
{
	const char *p;

	if (ch == '\0')
		return -1;
	p = memchr(alpha, ch, 64);
	return p ? (int)(p - alpha) : -1;
}

/* Strict decoder: padding is required iff `pad`, trailing bits must be zero. */
static int b64_decode(struct ehr_buf *out, const char *in, size_t n, const char *alpha, bool pad)
{
	size_t body = n;

	if (pad) {
		if (n % 4 != 0)
			return ehr_error_set(EHR_ERR_PARSE, "base64 length is not a multiple of 4");
		if (n >= 1 && in[n - 1] == '=')
			body--;
		if (n >= 2 && in[n - 2] == '=')
			body--;
	} else if (n % 4 == 1) {
		return ehr_error_set(EHR_ERR_PARSE, "base64url length is impossible");
	}
	GUARD(ehr_buf_reserve(out, body / 4 * 3 + 2));
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < body; i++) {
		int v = b64_value(alpha, in[i]);
		if (v < 0)
			return ehr_error_set(EHR_ERR_PARSE, "invalid base64 character at offset %zu", i);
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			GUARD(ehr_buf_append_u8(out, (uint8_t)(acc >> bits)));
			acc &= (1u << bits) - 1;
		}
	}
	if (body % 4 == 1)
		return ehr_error_set(EHR_ERR_PARSE, "base64 has a dangling character");
	if (acc != 0)
		return ehr_error_set(EHR_ERR_PARSE, "base64 has non-zero trailing bits");
	return 0;
}

int ehr_b64_encode(struct ehr_buf *out, const void *in, size_t n)
{
	return b64_encode(out, in, n, b64_std, true);
}

int ehr_b64_decode(struct ehr_buf *out, const char *in, size_t n)
{
	return b64_decode(out, in, n, b64_std, true);
}

int ehr_b64url_encode(struct ehr_buf *out, const void *in, size_t n)
{
	return b64_encode(out, in, n, b64_url, false);
}

int ehr_b64url_decode(struct ehr_buf *out, const char *in, size_t n)
{
	return b64_decode(out, in, n, b64_url, false);
}

/* The one hex encoder: every other lower-case hex rendering calls it. */
int ehr_hex_encode_fixed(char *out, size_t cap, const void *in, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	const uint8_t *p = in;

	if (out == NULL || cap == 0 || n > (cap - 1) / 2) {
		if (out != NULL && cap > 0)
			out[0] = '\0';
		return ehr_error_set(EHR_ERR_TOO_LARGE, "hex of %zu bytes needs %zu characters", n,
		                     n > (SIZE_MAX - 1) / 2 ? SIZE_MAX : 2 * n + 1);
	}
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[p[i] >> 4];
		out[2 * i + 1] = hx[p[i] & 15];
	}
	out[2 * n] = '\0';
	return 0;
}

int ehr_hex_encode(struct ehr_buf *out, const void *in, size_t n)
{
	size_t need, at = out->len;
	int err;

	GUARD(ehr_size_mul(&need, n, 2));
	GUARD(ehr_buf_reserve(out, need)); /* also reserves the NUL slot */
	err = ehr_hex_encode_fixed((char *)out->data + at, need + 1, in, n);
	if (err == 0)
		out->len = at + need;
	return err;
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ehr_hex_decode(uint8_t *out, size_t outlen, const char *in, size_t n)
{
	if (n != outlen * 2)
		return ehr_error_set(EHR_ERR_PARSE, "hex string must be %zu characters", outlen * 2);
	for (size_t i = 0; i < outlen; i++) {
		int hi = hex_nibble(in[2 * i]), lo = hex_nibble(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return ehr_error_set(EHR_ERR_PARSE, "invalid hex digit at offset %zu", 2 * i);
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int ehr_parse_u64(uint64_t *out, const char *s, uint64_t max)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return ehr_error_set(EHR_ERR_PARSE, "empty number");
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return ehr_error_set(EHR_ERR_PARSE, "not a decimal number");
		if (v > (max - (uint64_t)(*p - '0')) / 10)
			return ehr_error_set(EHR_ERR_TOO_LARGE, "number exceeds %llu",
			                     (unsigned long long)max);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = v;
	return 0;
}

const char *ehr_list_next(const char **cursor, const char *seps, size_t *len)
{
	const char *p = *cursor ? *cursor : "", *item;
	size_t n;

	while (*p == ' ' || *p == '\t' || (*p && strchr(seps, *p)))
		p++;
	if (*p == '\0') {
		*cursor = p;
		return NULL;
	}
	item = p;
	n = strcspn(p, seps);
	*cursor = p + n;
	while (n > 0 && (item[n - 1] == ' ' || item[n - 1] == '\t'))
		n--;
	*len = n;
	return item;
}

int ehr_parse_i64(int64_t *out, const char *s, int64_t min, int64_t max)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return ehr_error_set(EHR_ERR_PARSE, "empty number");
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0')
		return ehr_error_set(EHR_ERR_PARSE, "not a decimal number");
	if (errno == ERANGE || v < min || v > max)
		return ehr_error_set(EHR_ERR_TOO_LARGE, "number out of range [%lld, %lld]", (long long)min,
		                     (long long)max);
	*out = v;
	return 0;
}

int ehr_random(void *out, size_t n)
{
	if (n > INT32_MAX || RAND_bytes(out, (int)n) != 1)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "RAND_bytes");
	return 0;
}

int ehr_random_token(struct ehr_buf *out, size_t nbytes)
{
	uint8_t raw[128];
	int rc;

	ENSURE(nbytes <= sizeof(raw), EHR_ERR_INVAL);
	GUARD(ehr_random(raw, nbytes));
	rc = ehr_b64url_encode(out, raw, nbytes);
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

void ehr_failpoint(const char *name)
{
	const char *fp = getenv("EHRGATE_TEST_FAILPOINT");

	if (fp != NULL && strcmp(fp, name) == 0)
		kill(getpid(), SIGKILL);
}

void ehr_failpoint_wait(const char *name)
{
	const char *fp = getenv("EHRGATE_TEST_FAILPOINT"), *rel = getenv("EHRGATE_TEST_FAILPOINT_RELEASE");
	char reached[4096];
	int fd;

	if (fp == NULL || rel == NULL || strcmp(fp, name) != 0 ||
	    ehr_fmt(reached, sizeof(reached), "%s.reached", rel) < 0)
		return;
	if ((fd = open(reached, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		close(fd);
	for (int i = 0; i < 6000 && access(rel, F_OK) != 0; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

int64_t ehr_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ehr_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ehr_monotonic_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void ehr_time_rfc3339(char out[32], int64_t unix_ms)
{
	time_t secs = (time_t)(unix_ms / 1000);
	int ms = (int)(unix_ms % 1000);
	struct tm tm;

	if (ms < 0) {
		ms += 1000;
		secs -= 1;
	}
	gmtime_r(&secs, &tm);
	/* strftime bounds the output; years past 9999 are not representable. */
	if (strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm) != 19) {
		out[0] = '\0';
		return;
	}
	out[19] = '.';
	out[20] = (char)('0' + ms / 100);
	out[21] = (char)('0' + ms / 10 % 10);
	out[22] = (char)('0' + ms % 10);
	out[23] = 'Z';
	out[24] = '\0';
}
