/*
 * tile.c - C2SP tlog-tiles resource names (pure): parsing and formatting
 * "<L>/<N>[.p/<W>]" and "entries/<N>[.p/<W>]", and which tiles a tree
 * size makes available (docs/LEDGER.md §10, c2sp.org/tlog-tiles).
 *
 * Parsing is strict so that every tile has exactly one URL: <L> and <W>
 * are decimal without leading zeros, <N> is 3-digit groups with every
 * group but the last prefixed by 'x' and no leading all-zero group.
 */
#include "ledger/ledger.h"

#include <string.h>

/* Decimal 0..max from s[0..n) with no leading zero (except "0" itself). */
static int plain_decimal(uint64_t *out, const char *s, size_t n, uint64_t max)
{
	uint64_t v = 0;

	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return EHR_ERR_PARSE;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return EHR_ERR_PARSE;
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return EHR_ERR_PARSE;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* The index path elements "x001/x234/067" from s[0..n): groups of three
 * digits, all but the last starting with 'x', no leading "x000". */
static int tile_index(uint64_t *out, const char *s, size_t n)
{
	uint64_t v = 0;
	size_t off = 0;
	bool first = true;

	while (off < n) {
		const char *g = s + off;
		bool last = n - off == 3;

		if (!last) {
			if (n - off < 8 || g[0] != 'x' || g[4] != '/') /* a last group follows */
				return EHR_ERR_PARSE;
			g++;
		}
		for (int i = 0; i < 3; i++)
			if (g[i] < '0' || g[i] > '9')
				return EHR_ERR_PARSE;
		if (!last && first && g[0] == '0' && g[1] == '0' && g[2] == '0')
			return EHR_ERR_PARSE; /* "x000/..." names the same tile as without it */
		if (v > (UINT64_MAX - 999) / 1000)
			return EHR_ERR_PARSE;
		v = v * 1000 + (uint64_t)((g[0] - '0') * 100 + (g[1] - '0') * 10 + (g[2] - '0'));
		off += last ? 3 : 5;
		first = false;
	}
	if (first)
		return EHR_ERR_PARSE;
	*out = v;
	return 0;
}

int ledger_tile_path_parse(struct ledger_tile *t, const char *path, size_t len)
{
	const char *p = path, *end = path + len, *slash, *dotp;
	uint64_t v;

	memset(t, 0, sizeof(*t));
	t->width = LEDGER_TILE_WIDTH;
	if (len > 64 || memchr(path, '\0', len))
		return ehr_error_set(EHR_ERR_PARSE, "tile path too long");
	slash = memchr(p, '/', len);
	if (slash == NULL)
		goto bad;
	if ((size_t)(slash - p) == 7 && memcmp(p, "entries", 7) == 0) { /* not secret */
		t->entries = true;
	} else {
		if (plain_decimal(&v, p, (size_t)(slash - p), 63) < 0)
			goto bad;
		t->level = (unsigned)v;
	}
	p = slash + 1;
	/* ".p/<W>": the partial suffix follows the last index group */
	dotp = NULL;
	for (const char *q = p; q + 3 <= end; q++)
		if (q[0] == '.' && q[1] == 'p' && q[2] == '/') {
			dotp = q;
			break;
		}
	if (dotp) {
		if (plain_decimal(&v, dotp + 3, (size_t)(end - dotp - 3), LEDGER_TILE_WIDTH - 1) < 0 ||
		    v == 0)
			goto bad;
		t->width = (unsigned)v;
		end = dotp;
	}
	if (tile_index(&t->index, p, (size_t)(end - p)) < 0)
		goto bad;
	return 0;
bad:
	return ehr_error_set(
	        EHR_ERR_PARSE,
	        "tile path must be <L>/<N>[.p/<W>] or entries/<N>[.p/<W>] (c2sp.org/tlog-tiles)");
}

int ledger_tile_path_format(struct ehr_buf *out, const struct ledger_tile *t)
{
	char groups[8][4];
	uint64_t n = t->index;
	int k = 0;

	ENSURE(t->width >= 1 && t->width <= LEDGER_TILE_WIDTH && t->level < 64, EHR_ERR_INVAL);
	do {
		unsigned g = (unsigned)(n % 1000);
		groups[k][0] = (char)('0' + g / 100);
		groups[k][1] = (char)('0' + g / 10 % 10);
		groups[k][2] = (char)('0' + g % 10);
		groups[k][3] = '\0';
		k++;
		n /= 1000;
	} while (n > 0 && k < 8);
	if (t->entries)
		GUARD(ehr_buf_append_str(out, "entries/"));
	else
		GUARD(ehr_buf_printf(out, "%u/", t->level));
	while (k-- > 0)
		GUARD(ehr_buf_printf(out, "%s%s%s", k ? "x" : "", groups[k], k ? "/" : ""));
	if (t->width < LEDGER_TILE_WIDTH)
		GUARD(ehr_buf_printf(out, ".p/%u", t->width));
	return 0;
}

/*
 * Whether tile t is determined by a tree of `size` entries: every hash
 * (or entry) in it covers only leaves below `size`. Full tiles at or
 * below the size, and any partial tile whose width fits (the partial
 * tiles of this size and of every smaller size).
 */
bool ledger_tile_covered(const struct ledger_tile *t, uint64_t size)
{
	unsigned lvl = t->entries ? 0 : t->level;
	uint64_t below;

	if (t->width == 0 || t->width > LEDGER_TILE_WIDTH)
		return false;
	if (lvl > 7)
		return false;      /* its hashes span 2^64 leaves or more */
	below = size >> (8 * lvl); /* full subtrees of this level */
	return t->index <= (UINT64_MAX - t->width) / LEDGER_TILE_WIDTH &&
	       t->index * LEDGER_TILE_WIDTH + t->width <= below;
}
