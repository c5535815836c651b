/*
 * fuzz_json.c - libFuzzer target for the untrusted-input decoders in common/:
 * ehr_json_parse (bounded JSON) and ehr_b64url_decode (JOSE base64url).
 *
 * Beyond "does not crash", it checks properties and aborts when one breaks:
 *   - JSON: whatever parses dumps canonically (sorted, compact), the dump parses
 *     again, and dumping that gives the same bytes;
 *   - base64url: decoding is canonical, so encode(decode(x)) == x.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

#define FUZZ_JSON_MAX_BYTES (64 * 1024)
#define FUZZ_JSON_MAX_DEPTH 32

static void check_json(const uint8_t *data, size_t size)
{
	json_t *v = NULL, *again = NULL;
	struct ehr_buf d1, d2;

	if (ehr_json_parse(&v, data, size, FUZZ_JSON_MAX_BYTES, FUZZ_JSON_MAX_DEPTH) != 0)
		return;
	ehr_buf_init(&d1, 16 * FUZZ_JSON_MAX_BYTES);
	ehr_buf_init(&d2, 16 * FUZZ_JSON_MAX_BYTES);
	if (ehr_json_dump(&d1, v) != 0)
		abort();
	if (ehr_json_parse(&again, d1.data, d1.len, d1.max, FUZZ_JSON_MAX_DEPTH) != 0)
		abort();
	if (ehr_json_dump(&d2, again) != 0)
		abort();
	if (d1.len != d2.len || memcmp(d1.data, d2.data, d1.len) != 0) /* not secret */
		abort();
	json_decref(v);
	json_decref(again);
	ehr_buf_free(&d1);
	ehr_buf_free(&d2);
}

static void check_b64url(const uint8_t *data, size_t size)
{
	struct ehr_buf raw, enc;

	ehr_buf_init(&raw, size + 16);
	ehr_buf_init(&enc, 2 * size + 16);
	if (ehr_b64url_decode(&raw, (const char *)data, size) == 0) {
		if (raw.len > size)
			abort();
		if (ehr_b64url_encode(&enc, raw.data, raw.len) != 0)
			abort();
		if (enc.len != size || (size && memcmp(enc.data, data, size) != 0)) /* not secret */
			abort();
	}
	ehr_buf_free(&raw);
	ehr_buf_free(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_json(data, size);
	check_b64url(data, size);
	ehr_error_clear();
	return 0;
}
