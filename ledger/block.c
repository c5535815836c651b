/*
 * block.c - block headers (docs/LEDGER.md §5): encoding, hash and the
 * header signature check (keys.c signs and verifies).
 */
#include "ledger/ledger_internal.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

static const char block_magic[16] = { 'E', 'H', 'R', 'G', 'A', 'T', 'E', '-',
	                              'B', 'L', 'O', 'C', 'K', '-', 'V', '1' };

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

void ledger_block_header(uint8_t out[LEDGER_BLOCK_HEADER_LEN], const struct ledger_block *b)
{
	uint8_t *p = out;

	memcpy(p, block_magic, 16);
	p += 16;
	put_be64(p, b->height);
	p += 8;
	memcpy(p, b->prev_hash, LEDGER_HASH_LEN);
	p += LEDGER_HASH_LEN;
	put_be64(p, b->tree_size);
	p += 8;
	memcpy(p, b->root, LEDGER_HASH_LEN);
	p += LEDGER_HASH_LEN;
	put_be64(p, (uint64_t)b->ts_ms);
}

void ledger_block_hash(uint8_t out[LEDGER_HASH_LEN], const struct ledger_block *b)
{
	uint8_t h[LEDGER_BLOCK_HEADER_LEN];

	ledger_block_header(h, b);
	ledger__sha256(out, h, sizeof(h), NULL, 0);
}

int ledger__block_verify(const struct ledger_block *b, const uint8_t pub[32])
{
	uint8_t h[LEDGER_BLOCK_HEADER_LEN];

	ledger_block_header(h, b);
	return ledger_ed25519_verify(pub, b->sig, h, sizeof(h));
}
