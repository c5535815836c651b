/* buf.c - bounded growable buffer and bounds-checked read cursor. */
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void ehr_buf_init(struct ehr_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

/* Make room for `extra` more bytes plus the trailing NUL, within max. */
int ehr_buf_reserve(struct ehr_buf *b, size_t extra)
{
	size_t need, ncap;
	uint8_t *n;

	GUARD(ehr_size_add(&need, b->len, extra));
	if (need > b->max)
		return ehr_error_set(EHR_ERR_TOO_LARGE, "buffer limit of %zu bytes exceeded", b->max);
	GUARD(ehr_size_add(&need, need, 1));
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	n = realloc(b->data, ncap);
	if (n == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory growing buffer to %zu", ncap);
	b->data = n;
	b->cap = ncap;
	b->data[b->len] = '\0';
	return 0;
}

int ehr_buf_append(struct ehr_buf *b, const void *p, size_t n)
{
	GUARD(ehr_buf_reserve(b, n));
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int ehr_buf_append_str(struct ehr_buf *b, const char *s)
{
	return ehr_buf_append(b, s, strlen(s));
}

int ehr_buf_append_u8(struct ehr_buf *b, uint8_t v)
{
	return ehr_buf_append(b, &v, 1);
}

int ehr_buf_append_be16(struct ehr_buf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	return ehr_buf_append(b, x, sizeof(x));
}

int ehr_buf_append_be32(struct ehr_buf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (24 - 8 * i));
	return ehr_buf_append(b, x, sizeof(x));
}

int ehr_buf_append_be64(struct ehr_buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (56 - 8 * i));
	return ehr_buf_append(b, x, sizeof(x));
}

int ehr_buf_vprintf(struct ehr_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp); /* bounded: checked */
	va_end(cp);
	if (n < 0)
		return ehr_error_set(EHR_ERR_INVAL, "bad format");
	GUARD(ehr_buf_reserve(b, (size_t)n));
	if (vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap) != n) { /* bounded: checked */
		b->data[b->len] = '\0';
		return ehr_error_set(EHR_ERR_INVAL, "format changed between passes");
	}
	b->len += (size_t)n;
	return 0;
}

int ehr_buf_printf(struct ehr_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = ehr_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

const char *ehr_buf_cstr(const struct ehr_buf *b)
{
	return b->data ? (const char *)b->data : "";
}

uint8_t *ehr_buf_detach(struct ehr_buf *b, size_t *len)
{
	uint8_t *d = b->data;

	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

void ehr_buf_reset(struct ehr_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void ehr_buf_free(struct ehr_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void ehr_buf_free_secure(struct ehr_buf *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->cap);
	ehr_buf_free(b);
}

void ehr_cursor_init(struct ehr_cursor *c, const void *p, size_t len)
{
	c->p = p;
	c->len = p ? len : 0;
	c->off = 0;
}

size_t ehr_cursor_remaining(const struct ehr_cursor *c)
{
	return c->len - c->off;
}

int ehr_cursor_take(struct ehr_cursor *c, const uint8_t **out, size_t n)
{
	if (n > ehr_cursor_remaining(c))
		return ehr_error_set(EHR_ERR_PARSE, "truncated input at offset %zu (need %zu bytes)", c->off,
		                     n);
	*out = c->p + c->off;
	c->off += n;
	return 0;
}

int ehr_cursor_read(struct ehr_cursor *c, void *out, size_t n)
{
	const uint8_t *p = NULL;

	GUARD(ehr_cursor_take(c, &p, n));
	if (n > 0)
		memcpy(out, p, n);
	return 0;
}

int ehr_cursor_skip(struct ehr_cursor *c, size_t n)
{
	const uint8_t *p = NULL;
	return ehr_cursor_take(c, &p, n);
}

static int cursor_read_be(struct ehr_cursor *c, uint64_t *v, size_t n)
{
	const uint8_t *p = NULL;
	uint64_t x = 0;

	GUARD(ehr_cursor_take(c, &p, n));
	for (size_t i = 0; i < n; i++)
		x = (x << 8) | p[i];
	*v = x;
	return 0;
}

int ehr_cursor_read_u8(struct ehr_cursor *c, uint8_t *v)
{
	return ehr_cursor_read(c, v, 1);
}

int ehr_cursor_read_be16(struct ehr_cursor *c, uint16_t *v)
{
	uint64_t x;
	GUARD(cursor_read_be(c, &x, 2));
	*v = (uint16_t)x;
	return 0;
}

int ehr_cursor_read_be32(struct ehr_cursor *c, uint32_t *v)
{
	uint64_t x;
	GUARD(cursor_read_be(c, &x, 4));
	*v = (uint32_t)x;
	return 0;
}

int ehr_cursor_read_be64(struct ehr_cursor *c, uint64_t *v)
{
	return cursor_read_be(c, v, 8);
}
