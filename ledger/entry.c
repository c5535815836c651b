/*
 * ledger_entry.c - the canonical byte encoding of a ledger entry and the
 * canonical JSON of its payload (docs/LEDGER.md §1 and §2).
 */
#include "ledger/ledger_internal.h"

#include <stdlib.h>
#include <string.h>

#define CANON_MAX_DEPTH EHR_JSON_MAX_DEPTH
#define CANON_MAX_INT INT64_C(9007199254740991) /* 2^53 - 1 */

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, <= U+10FFFF.
 * Returns the sequence length at p, or 0 if invalid. *cp gets the value. */
static size_t utf8_next(const uint8_t *p, size_t n, uint32_t *cp)
{
	uint32_t c;
	size_t len;

	if (n == 0)
		return 0;
	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Text fields: valid UTF-8 without control characters (C0, DEL). */
static int check_text(const char *what, const char *s, size_t min, size_t max)
{
	size_t n = strlen(s), off = 0;

	if (n < min || n > max)
		return ehr_error_set(EHR_ERR_INVAL, "ledger entry %s must be %zu..%zu bytes", what, min, max);
	while (off < n) {
		uint32_t cp;
		size_t l = utf8_next((const uint8_t *)s + off, n - off, &cp);

		if (l == 0 || cp < 0x20 || cp == 0x7f)
			return ehr_error_set(EHR_ERR_INVAL, "ledger entry %s: invalid character at byte %zu",
			                     what, off);
		off += l;
	}
	return 0;
}

static int check_type(const char *t)
{
	size_t n = strlen(t);

	if (n < 1 || n > LEDGER_MAX_TYPE)
		return ehr_error_set(EHR_ERR_INVAL, "ledger entry type must be 1..%d bytes", LEDGER_MAX_TYPE);
	for (size_t i = 0; i < n; i++) {
		char c = t[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return ehr_error_set(EHR_ERR_INVAL,
			                     "ledger entry type: character %zu not in [a-z0-9._-]", i);
	}
	return 0;
}

/* ----------------------------------------------------- canonical JSON */

/* Compare two UTF-8 strings by their UTF-16 code units (RFC 8785 §3.2.3). */
static int cmp_utf16(const char *a, const char *b)
{
	const uint8_t *pa = (const uint8_t *)a, *pb = (const uint8_t *)b;
	size_t na = strlen(a), nb = strlen(b);
	uint16_t ua[2], ub[2];
	unsigned ka = 0, kb = 0, ia = 0, ib = 0;

	for (;;) {
		if (ia == ka) {
			uint32_t cp;
			size_t l;

			if (na == 0)
				ka = ia = 0;
			else {
				l = utf8_next(pa, na, &cp);
				if (l == 0)
					l = 1, cp = 0xfffd; /* jansson never gives us this */
				pa += l;
				na -= l;
				if (cp >= 0x10000) {
					ua[0] = (uint16_t)(0xd800 + ((cp - 0x10000) >> 10));
					ua[1] = (uint16_t)(0xdc00 + ((cp - 0x10000) & 0x3ff));
					ka = 2;
				} else {
					ua[0] = (uint16_t)cp;
					ka = 1;
				}
				ia = 0;
			}
		}
		if (ib == kb) {
			uint32_t cp;
			size_t l;

			if (nb == 0)
				kb = ib = 0;
			else {
				l = utf8_next(pb, nb, &cp);
				if (l == 0)
					l = 1, cp = 0xfffd;
				pb += l;
				nb -= l;
				if (cp >= 0x10000) {
					ub[0] = (uint16_t)(0xd800 + ((cp - 0x10000) >> 10));
					ub[1] = (uint16_t)(0xdc00 + ((cp - 0x10000) & 0x3ff));
					kb = 2;
				} else {
					ub[0] = (uint16_t)cp;
					kb = 1;
				}
				ib = 0;
			}
		}
		if (ka == 0 || kb == 0)
			return (ka != 0) - (kb != 0);
		if (ua[ia] != ub[ib])
			return ua[ia] < ub[ib] ? -1 : 1;
		ia++;
		ib++;
	}
}

static int cmp_keys(const void *x, const void *y)
{
	return cmp_utf16(*(const char *const *)x, *(const char *const *)y);
}

static int canon_string(struct ehr_buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	GUARD(ehr_buf_append_u8(out, '"'));
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];

		switch (c) {
		case '"': GUARD(ehr_buf_append(out, "\\\"", 2)); break;
		case '\\': GUARD(ehr_buf_append(out, "\\\\", 2)); break;
		case '\b': GUARD(ehr_buf_append(out, "\\b", 2)); break;
		case '\f': GUARD(ehr_buf_append(out, "\\f", 2)); break;
		case '\n': GUARD(ehr_buf_append(out, "\\n", 2)); break;
		case '\r': GUARD(ehr_buf_append(out, "\\r", 2)); break;
		case '\t': GUARD(ehr_buf_append(out, "\\t", 2)); break;
		default:
			if (c < 0x20) {
				char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

				GUARD(ehr_buf_append(out, e, 6));
			} else {
				GUARD(ehr_buf_append_u8(out, c));
			}
			break;
		}
	}
	return ehr_buf_append_u8(out, '"');
}

static int canon_value(struct ehr_buf *out, const json_t *v, unsigned depth)
{
	if (depth > CANON_MAX_DEPTH)
		return ehr_error_set(EHR_ERR_TOO_LARGE, "payload nests deeper than %d", CANON_MAX_DEPTH);
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		size_t n = json_object_size(v), i = 0;
		const char **keys;
		const char *k;
		json_t *child;
		int err = 0;

		if (n == 0)
			return ehr_buf_append(out, "{}", 2);
		keys = calloc(n, sizeof(*keys));
		if (keys == NULL)
			return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
		json_object_foreach((json_t *)v, k, child) keys[i++] = k;
		qsort(keys, n, sizeof(*keys), cmp_keys);
		GUARD_GOTO(ehr_buf_append_u8(out, '{'));
		for (i = 0; i < n; i++) {
			if (i > 0)
				GUARD_GOTO(ehr_buf_append_u8(out, ','));
			GUARD_GOTO(canon_string(out, keys[i], strlen(keys[i])));
			GUARD_GOTO(ehr_buf_append_u8(out, ':'));
			GUARD_GOTO(canon_value(out, json_object_get(v, keys[i]), depth + 1));
		}
		err = ehr_buf_append_u8(out, '}');
out:
		free(keys);
		return err;
	}
	case JSON_ARRAY:
		GUARD(ehr_buf_append_u8(out, '['));
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (i > 0)
				GUARD(ehr_buf_append_u8(out, ','));
			GUARD(canon_value(out, json_array_get(v, i), depth + 1));
		}
		return ehr_buf_append_u8(out, ']');
	case JSON_STRING: return canon_string(out, json_string_value(v), json_string_length(v));
	case JSON_INTEGER: {
		json_int_t x = json_integer_value(v);

		if (x > CANON_MAX_INT || x < -CANON_MAX_INT)
			return ehr_error_set(EHR_ERR_INVAL, "payload integer outside +-(2^53-1)");
		return ehr_buf_printf(out, "%lld", (long long)x);
	}
	case JSON_REAL: return ehr_error_set(EHR_ERR_INVAL, "payload numbers must be integers");
	case JSON_TRUE: return ehr_buf_append(out, "true", 4);
	case JSON_FALSE: return ehr_buf_append(out, "false", 5);
	case JSON_NULL: return ehr_buf_append(out, "null", 4);
	default: return ehr_error_set(EHR_ERR_INVAL, "unknown JSON type");
	}
}

int ledger_canonical_json(struct ehr_buf *out, const json_t *v)
{
	size_t start = out->len;
	int err;

	ENSURE(v != NULL, EHR_ERR_INVAL);
	err = canon_value(out, v, 1);
	if (err < 0)
		out->len = start;
	return err;
}

/* ---------------------------------------------------------- entry codec */

int ledger_entry_encode(struct ehr_buf *out, uint64_t seq, int64_t ts_ms, const struct ledger_entry_in *in)
{
	struct ehr_buf payload = EHR_BUF_INIT(LEDGER_MAX_PAYLOAD);
	const char *subject = in->subject ? in->subject : "";
	size_t start = out->len;
	int err;

	ENSURE(in->type != NULL && in->actor != NULL && ts_ms >= 0, EHR_ERR_INVAL);
	GUARD(check_type(in->type));
	GUARD(check_text("actor", in->actor, 1, LEDGER_MAX_ID));
	GUARD(check_text("subject", subject, 0, LEDGER_MAX_ID));
	if (in->payload != NULL) {
		ENSURE(json_is_object(in->payload), EHR_ERR_INVAL);
		err = ledger_canonical_json(&payload, in->payload);
		if (err == EHR_ERR_TOO_LARGE && payload.len == 0)
			err = ehr_error_set(EHR_ERR_TOO_LARGE, "payload exceeds %d bytes or nesting",
			                    LEDGER_MAX_PAYLOAD);
		GUARD_GOTO(err);
	} else {
		GUARD_GOTO(ehr_buf_append(&payload, "{}", 2));
	}
	GUARD_GOTO(ehr_buf_append_u8(out, LEDGER_ENTRY_VERSION));
	GUARD_GOTO(ehr_buf_append_be64(out, seq));
	GUARD_GOTO(ehr_buf_append_be64(out, (uint64_t)ts_ms));
	GUARD_GOTO(ehr_buf_append_u8(out, (uint8_t)strlen(in->type)));
	GUARD_GOTO(ehr_buf_append_str(out, in->type));
	GUARD_GOTO(ehr_buf_append_be16(out, (uint16_t)strlen(in->actor)));
	GUARD_GOTO(ehr_buf_append_str(out, in->actor));
	GUARD_GOTO(ehr_buf_append_be16(out, (uint16_t)strlen(subject)));
	GUARD_GOTO(ehr_buf_append_str(out, subject));
	GUARD_GOTO(ehr_buf_append_be32(out, (uint32_t)payload.len));
	GUARD_GOTO(ehr_buf_append(out, payload.data, payload.len));
	/* A tlog-tiles entry bundle prefixes each entry with a uint16 length. */
	if (out->len - start > LEDGER_MAX_BUNDLE_ENTRY)
		err = ehr_error_set(EHR_ERR_TOO_LARGE, "entry exceeds %d bytes", LEDGER_MAX_BUNDLE_ENTRY);
out:
	if (err < 0)
		out->len = start;
	ehr_buf_free(&payload);
	return err;
}

static int take_str(struct ehr_cursor *c, char *dst, size_t len, size_t max)
{
	const uint8_t *p;

	if (len > max)
		return ehr_error_set(EHR_ERR_PARSE, "entry field longer than %zu", max);
	GUARD(ehr_cursor_take(c, &p, len));
	if (memchr(p, 0, len) != NULL)
		return ehr_error_set(EHR_ERR_PARSE, "entry field holds a NUL byte");
	memcpy(dst, p, len);
	dst[len] = '\0';
	return 0;
}

int ledger_entry_decode(struct ledger_entry *e, const uint8_t *p, size_t len, bool check_payload)
{
	struct ehr_cursor c;
	uint8_t ver, tlen;
	uint16_t alen, slen;
	uint32_t plen;
	uint64_t ts;
	int err;

	memset(e, 0, sizeof(*e));
	ehr_cursor_init(&c, p, len);
	if (ehr_cursor_read_u8(&c, &ver) < 0 || ver != LEDGER_ENTRY_VERSION)
		return ehr_error_set(EHR_ERR_PARSE, "entry: unknown version");
	if ((err = ehr_cursor_read_be64(&c, &e->seq)) < 0 || (err = ehr_cursor_read_be64(&c, &ts)) < 0 ||
	    (err = ehr_cursor_read_u8(&c, &tlen)) < 0 ||
	    (err = take_str(&c, e->type, tlen, LEDGER_MAX_TYPE)) < 0 ||
	    (err = ehr_cursor_read_be16(&c, &alen)) < 0 ||
	    (err = take_str(&c, e->actor, alen, LEDGER_MAX_ID)) < 0 ||
	    (err = ehr_cursor_read_be16(&c, &slen)) < 0 ||
	    (err = take_str(&c, e->subject, slen, LEDGER_MAX_ID)) < 0 ||
	    (err = ehr_cursor_read_be32(&c, &plen)) < 0)
		return ehr_error_set(EHR_ERR_PARSE, "entry: truncated or oversized field");
	if (plen > LEDGER_MAX_PAYLOAD || ehr_cursor_take(&c, &e->payload, plen) < 0)
		return ehr_error_set(EHR_ERR_PARSE, "entry: bad payload length");
	if (ehr_cursor_remaining(&c) != 0)
		return ehr_error_set(EHR_ERR_PARSE, "entry: trailing bytes");
	e->ts_ms = (int64_t)ts;
	e->payload_len = plen;
	if (e->ts_ms < 0 || check_type(e->type) < 0 || check_text("actor", e->actor, 1, LEDGER_MAX_ID) < 0 ||
	    check_text("subject", e->subject, 0, LEDGER_MAX_ID) < 0)
		return ehr_error_set(EHR_ERR_PARSE, "entry: field out of its domain");
	if (check_payload) {
		struct ehr_buf again = EHR_BUF_INIT(LEDGER_MAX_PAYLOAD);
		json_t *j = NULL;

		err = ehr_json_parse(&j, e->payload, plen, LEDGER_MAX_PAYLOAD, CANON_MAX_DEPTH);
		if (err == 0 && !json_is_object(j))
			err = EHR_ERR_PARSE;
		if (err == 0)
			err = ledger_canonical_json(&again, j);
		if (err == 0 &&
		    (again.len != plen || memcmp(again.data, e->payload, plen) != 0)) /* not secret */
			err = EHR_ERR_PARSE;
		json_decref(j);
		ehr_buf_free(&again);
		if (err < 0)
			return ehr_error_set(EHR_ERR_PARSE, "entry: payload is not canonical JSON");
	}
	merkle_leaf_hash(e->leaf_hash, p, len);
	return 0;
}
