/* json.c - bounded parsing of untrusted JSON and small accessors. */
#include "common/common.h"

#include <stdlib.h>
#include <string.h>

/* Reject nesting deeper than max_depth before jansson sees the input, since
 * jansson's own limit (2048) is far beyond anything our APIs accept. */
static int json_check_depth(const uint8_t *p, size_t len, size_t max_depth)
{
	size_t depth = 0;
	bool in_str = false, esc = false;

	for (size_t i = 0; i < len; i++) {
		uint8_t ch = p[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (ch == '\\')
				esc = true;
			else if (ch == '"')
				in_str = false;
			continue;
		}
		switch (ch) {
		case '"': in_str = true; break;
		case '[':
		case '{':
			if (++depth > max_depth)
				return ehr_error_set(EHR_ERR_TOO_LARGE,
				                     "JSON nesting deeper than %zu at offset %zu", max_depth,
				                     i);
			break;
		case ']':
		case '}':
			if (depth > 0)
				depth--;
			break;
		default: break;
		}
	}
	return 0;
}

int ehr_json_parse(json_t **out, const void *data, size_t len, size_t max_bytes, size_t max_depth)
{
	json_error_t jerr;
	json_t *v;

	*out = NULL;
	if (len > max_bytes)
		return ehr_error_set(EHR_ERR_TOO_LARGE, "JSON body larger than %zu bytes", max_bytes);
	if (len == 0)
		return ehr_error_set(EHR_ERR_PARSE, "empty JSON body");
	GUARD(json_check_depth(data, len, max_depth));
	v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (v == NULL)
		return ehr_error_set(EHR_ERR_PARSE, "invalid JSON at line %d column %d", jerr.line,
		                     jerr.column);
	*out = v;
	return 0;
}

int ehr_json_opt_str(const json_t *obj, const char *key, const char **out, size_t maxlen)
{
	json_t *v = json_object_get(obj, key);
	size_t n;

	*out = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return ehr_error_set(EHR_ERR_INVAL, "field '%s' must be a string", key);
	n = json_string_length(v);
	if (n == 0 || n > maxlen)
		return ehr_error_set(EHR_ERR_INVAL, "field '%s' must be 1 to %zu bytes", key, maxlen);
	if (strlen(json_string_value(v)) != n)
		return ehr_error_set(EHR_ERR_INVAL, "field '%s' contains NUL", key);
	*out = json_string_value(v);
	return 0;
}

int ehr_json_get_str(const json_t *obj, const char *key, const char **out, size_t maxlen)
{
	GUARD(ehr_json_opt_str(obj, key, out, maxlen));
	if (*out == NULL)
		return ehr_error_set(EHR_ERR_INVAL, "field '%s' is required", key);
	return 0;
}

int ehr_json_get_int(const json_t *obj, const char *key, int64_t *out, int64_t min, int64_t max)
{
	json_t *v = json_object_get(obj, key);
	json_int_t x;

	if (v == NULL)
		return ehr_error_set(EHR_ERR_INVAL, "field '%s' is required", key);
	if (!json_is_integer(v))
		return ehr_error_set(EHR_ERR_INVAL, "field '%s' must be an integer", key);
	x = json_integer_value(v);
	if (x < min || x > max)
		return ehr_error_set(EHR_ERR_INVAL, "field '%s' out of range", key);
	*out = x;
	return 0;
}

int ehr_json_dump(struct ehr_buf *out, const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	int rc;

	if (s == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "json_dumps failed");
	rc = ehr_buf_append_str(out, s);
	free(s);
	return rc;
}
