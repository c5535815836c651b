/*
 * jcs.c - RFC 8785 JSON Canonicalization Scheme over jansson values.
 *
 * RFC 8785 §3.2: no whitespace; object members sorted by the UTF-16 code
 * units of their names (§3.2.3), recursively; array order kept; strings
 * with the minimal escaping of ECMAScript JSON.stringify (§3.2.2.2);
 * numbers as ECMAScript Number::toString (§3.2.2.3).
 *
 * jansson keeps integer literals as json_int_t. An I-JSON number is an
 * IEEE-754 double, so integers are accepted only within ±(2^53 - 1), where
 * the integer and double forms agree; outside it we refuse rather than
 * silently round. Contract documents use integers and strings only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

#define JCS_SAFE_INT 9007199254740991LL /* 2^53 - 1 */

/*
 * ECMAScript Number::toString(v) for a finite double (ECMA-262 §7.1.12.1),
 * as RFC 8785 §3.2.2.3 requires. The digits are the shortest decimal that
 * reads back as v: we try 1..17 significant digits with correctly rounded
 * printf and keep the first that round-trips through strtod.
 */
int jcs_number(char out[JCS_NUMBER_MAX], double v)
{
	char sci[40], digits[24];
	size_t k = 0;
	int e10 = 0, n, pos = 0;
	bool neg;

	if (!isfinite(v))
		return ehr_error_set(EHR_ERR_INVAL, "JCS: NaN and Infinity are not JSON numbers");
	if (v == 0) { /* also -0 */
		out[0] = '0';
		out[1] = '\0';
		return 0;
	}
	neg = v < 0;
	if (neg)
		v = -v;
	for (int p = 1; p <= 17; p++) {
		GUARD(ehr_fmt(sci, sizeof(sci), "%.*e", p - 1, v));
		if (strtod(sci, NULL) == v)
			break;
	}
	/* sci is "d[.ddd]e[+-]XX" */
	{
		const char *s = sci;
		int esign = 1;
		for (; *s && *s != 'e'; s++)
			if (*s >= '0' && *s <= '9')
				digits[k++] = *s;
		if (*s != 'e')
			return ehr_error_set(EHR_ERR_INTERNAL, "JCS: unexpected printf output");
		s++;
		if (*s == '-' || *s == '+')
			esign = (*s++ == '-') ? -1 : 1;
		for (; *s >= '0' && *s <= '9'; s++)
			e10 = e10 * 10 + (*s - '0');
		e10 *= esign;
	}
	while (k > 1 && digits[k - 1] == '0')
		k--;
	digits[k] = '\0';
	n = e10 + 1; /* ECMA-262: value = 0.digits × 10^n */

	if (neg)
		out[pos++] = '-';
	if ((int)k <= n && n <= 21) {
		memcpy(out + pos, digits, k);
		pos += (int)k;
		for (int i = 0; i < n - (int)k; i++)
			out[pos++] = '0';
	} else if (0 < n && n <= 21) {
		memcpy(out + pos, digits, (size_t)n);
		pos += n;
		out[pos++] = '.';
		memcpy(out + pos, digits + n, k - (size_t)n);
		pos += (int)k - n;
	} else if (-6 < n && n <= 0) {
		out[pos++] = '0';
		out[pos++] = '.';
		for (int i = 0; i < -n; i++)
			out[pos++] = '0';
		memcpy(out + pos, digits, k);
		pos += (int)k;
	} else {
		int x = n - 1;
		out[pos++] = digits[0];
		if (k > 1) {
			out[pos++] = '.';
			memcpy(out + pos, digits + 1, k - 1);
			pos += (int)k - 1;
		}
		GUARD(ehr_fmt(out + pos, (size_t)(JCS_NUMBER_MAX - pos), "e%c%d", x < 0 ? '-' : '+',
		              x < 0 ? -x : x));
		pos += (int)strlen(out + pos);
	}
	out[pos] = '\0';
	return 0;
}

/* RFC 8785 §3.2.2.2: escape only '"', '\\' and U+0000..U+001F; \b \t \n
 * \f \r in short form, the rest as lower-case \u00xx; everything else,
 * including U+007F and non-ASCII, is written as UTF-8 as is. */
static int jcs_string(struct ehr_buf *out, const char *s, size_t n)
{
	GUARD(ehr_buf_append_u8(out, '"'));
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = (uint8_t)s[i];
		switch (ch) {
		case '"': GUARD(ehr_buf_append(out, "\\\"", 2)); break;
		case '\\': GUARD(ehr_buf_append(out, "\\\\", 2)); break;
		case '\b': GUARD(ehr_buf_append(out, "\\b", 2)); break;
		case '\t': GUARD(ehr_buf_append(out, "\\t", 2)); break;
		case '\n': GUARD(ehr_buf_append(out, "\\n", 2)); break;
		case '\f': GUARD(ehr_buf_append(out, "\\f", 2)); break;
		case '\r': GUARD(ehr_buf_append(out, "\\r", 2)); break;
		default:
			if (ch < 0x20)
				GUARD(ehr_buf_printf(out, "\\u%04x", ch));
			else
				GUARD(ehr_buf_append_u8(out, ch));
			break;
		}
	}
	return ehr_buf_append_u8(out, '"');
}

/* Decode the next code point of valid UTF-8 (jansson has validated it). */
static uint32_t utf8_next(const uint8_t *s, size_t n, size_t *i)
{
	uint8_t c = s[*i];
	uint32_t cp;
	int extra;

	if (c < 0x80) {
		(*i)++;
		return c;
	}
	if ((c & 0xe0) == 0xc0) {
		cp = c & 0x1f;
		extra = 1;
	} else if ((c & 0xf0) == 0xe0) {
		cp = c & 0x0f;
		extra = 2;
	} else {
		cp = c & 0x07;
		extra = 3;
	}
	(*i)++;
	for (int j = 0; j < extra && *i < n; j++, (*i)++)
		cp = (cp << 6) | (s[*i] & 0x3f);
	return cp;
}

/* Compare two UTF-8 names as sequences of UTF-16 code units (RFC 8785 §3.2.3). */
static int utf16_cmp(const char *a, const char *b)
{
	const uint8_t *pa = (const uint8_t *)a, *pb = (const uint8_t *)b;
	size_t na = strlen(a), nb = strlen(b), ia = 0, ib = 0;
	uint16_t ua[2], ub[2];
	int la = 0, lb = 0, xa = 0, xb = 0;

	for (;;) {
		if (xa == la) {
			if (ia >= na) {
				la = 0;
			} else {
				uint32_t cp = utf8_next(pa, na, &ia);
				if (cp >= 0x10000) {
					cp -= 0x10000;
					ua[0] = (uint16_t)(0xd800 + (cp >> 10));
					ua[1] = (uint16_t)(0xdc00 + (cp & 0x3ff));
					la = 2;
				} else {
					ua[0] = (uint16_t)cp;
					la = 1;
				}
			}
			xa = 0;
		}
		if (xb == lb) {
			if (ib >= nb) {
				lb = 0;
			} else {
				uint32_t cp = utf8_next(pb, nb, &ib);
				if (cp >= 0x10000) {
					cp -= 0x10000;
					ub[0] = (uint16_t)(0xd800 + (cp >> 10));
					ub[1] = (uint16_t)(0xdc00 + (cp & 0x3ff));
					lb = 2;
				} else {
					ub[0] = (uint16_t)cp;
					lb = 1;
				}
			}
			xb = 0;
		}
		if (la == 0 || lb == 0)
			return (la != 0) - (lb != 0);
		if (ua[xa] != ub[xb])
			return ua[xa] < ub[xb] ? -1 : 1;
		xa++;
		xb++;
	}
}

static int key_cmp(const void *x, const void *y)
{
	return utf16_cmp(*(const char *const *)x, *(const char *const *)y);
}

static int jcs_value(struct ehr_buf *out, const json_t *v, unsigned depth)
{
	char num[JCS_NUMBER_MAX];

	if (depth > EHR_JSON_MAX_DEPTH)
		return ehr_error_set(EHR_ERR_TOO_LARGE, "JCS: nesting deeper than %d", EHR_JSON_MAX_DEPTH);
	switch (json_typeof(v)) {
	case JSON_NULL: return ehr_buf_append_str(out, "null");
	case JSON_TRUE: return ehr_buf_append_str(out, "true");
	case JSON_FALSE: return ehr_buf_append_str(out, "false");
	case JSON_INTEGER: {
		json_int_t x = json_integer_value(v);
		if (x > JCS_SAFE_INT || x < -JCS_SAFE_INT)
			return ehr_error_set(EHR_ERR_INVAL, "JCS: integer outside ±(2^53-1)");
		return ehr_buf_printf(out, "%lld", (long long)x);
	}
	case JSON_REAL: GUARD(jcs_number(num, json_real_value(v))); return ehr_buf_append_str(out, num);
	case JSON_STRING: return jcs_string(out, json_string_value(v), json_string_length(v));
	case JSON_ARRAY: {
		size_t i;
		json_t *e;
		GUARD(ehr_buf_append_u8(out, '['));
		json_array_foreach(v, i, e)
		{
			if (i > 0)
				GUARD(ehr_buf_append_u8(out, ','));
			GUARD(jcs_value(out, e, depth + 1));
		}
		return ehr_buf_append_u8(out, ']');
	}
	case JSON_OBJECT: {
		size_t n = json_object_size(v), i = 0;
		const char **keys;
		const char *k;
		json_t *e;
		int err = 0;

		keys = calloc(n ? n : 1, sizeof(*keys));
		if (keys == NULL)
			return ehr_error_set(EHR_ERR_NOMEM, "JCS: out of memory");
		size_t klen;
		json_object_keylen_foreach((json_t *)v, k, klen, e)
		{
			if (klen != strlen(k)) {
				free(keys);
				return ehr_error_set(EHR_ERR_INVAL, "JCS: member name contains NUL");
			}
			keys[i++] = k;
		}
		qsort(keys, n, sizeof(*keys), key_cmp);
		GUARD_GOTO(ehr_buf_append_u8(out, '{'));
		for (i = 0; i < n; i++) {
			if (i > 0)
				GUARD_GOTO(ehr_buf_append_u8(out, ','));
			GUARD_GOTO(jcs_string(out, keys[i], strlen(keys[i])));
			GUARD_GOTO(ehr_buf_append_u8(out, ':'));
			GUARD_GOTO(jcs_value(out, json_object_get(v, keys[i]), depth + 1));
		}
		GUARD_GOTO(ehr_buf_append_u8(out, '}'));
out:
		free(keys);
		return err;
	}
	default: return ehr_error_set(EHR_ERR_INVAL, "JCS: unknown JSON type");
	}
}

int jcs_canonicalize(struct ehr_buf *out, const json_t *v)
{
	size_t start = out->len;
	int err;

	if (v == NULL)
		return ehr_error_set(EHR_ERR_INVAL, "JCS: no value");
	err = jcs_value(out, v, 0);
	if (err < 0)
		out->len = start; /* leave nothing half-written */
	if (out->data)
		out->data[out->len] = '\0';
	return err;
}
