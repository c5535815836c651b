/*
 * fuzz_tile_path.c - libFuzzer target for the C2SP tlog-tiles path parser
 * (ledger_tile_path_parse: what GET /tile/... hands the gateway, untrusted).
 *
 * Properties (abort on violation):
 *  - a path that parses formats back to exactly the same bytes
 *    (ledger_tile_path_format): one spelling per tile;
 *  - a parsed tile has level <= 63, width 1..256, an entry bundle level 0;
 *  - a tile covered by a tree of n entries is covered by every larger one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/ledger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ledger_tile t;
	struct ehr_buf out = EHR_BUF_INIT(256);

	if (ledger_tile_path_parse(&t, (const char *)data, size) == 0) {
		if (t.level > 63 || t.width < 1 || t.width > LEDGER_TILE_WIDTH || (t.entries && t.level != 0))
			abort();
		if (ledger_tile_covered(&t, (uint64_t)size * 100000) && !ledger_tile_covered(&t, INT64_MAX))
			abort();
		if (ledger_tile_path_format(&out, &t) < 0 || out.len != size ||
		    memcmp(out.data, data, size) != 0) /* not secret */
			abort();
	}
	ehr_buf_free(&out);
	ehr_error_clear();
	return 0;
}
