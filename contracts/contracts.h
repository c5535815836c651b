/*
 * contracts.h - the tamper-evident ledger and access-policy contracts.
 *
 * The ledger is an RFC 9162 Merkle tree of entries kept in PostgreSQL,
 * grouped into Ed25519-signed, hash-chained blocks, with C2SP
 * tlog-checkpoint signed notes. docs/LEDGER.md is the byte-level contract.
 *
 * Pure functions (entry encoding, hashing, proof verification, checkpoint
 * parsing) have no database dependency, so client/ reuses them.
 */
#ifndef EHR_CONTRACTS_H
#define EHR_CONTRACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/common.h"

#define LEDGER_HASH_LEN 32
#define LEDGER_MAX_PROOF 64

/* ------------------------------------------------------------------ entries */

struct ledger_entry_in {
	const char *type;       /* "register", "auth", "ehr.store", ... */
	const char *actor;      /* pseudonym of who acted */
	const char *subject;    /* pseudonym or id of what it concerns ("" if none) */
	const json_t *payload;  /* JSON object; serialised canonically */
};

/* What an appender learns once its batch is durable. */
struct ledger_receipt {
	uint64_t seq;          /* 0-based leaf index */
	uint64_t block_height;
	uint64_t tree_size;    /* tree size at the end of the block */
	int64_t ts_ms;
	uint8_t root[LEDGER_HASH_LEN];
};

/* ------------------------------------------------------------ Merkle (pure) */

void merkle_leaf_hash(uint8_t out[LEDGER_HASH_LEN], const uint8_t *entry, size_t len);
void merkle_node_hash(uint8_t out[LEDGER_HASH_LEN], const uint8_t l[LEDGER_HASH_LEN],
                      const uint8_t r[LEDGER_HASH_LEN]);
/* RFC 9162 §2.1.3.2: 0 if `path` proves leaf `index` in a tree of `size` with `root`,
 * else EHR_ERR_TAMPER. */
int merkle_verify_inclusion(const uint8_t leaf[LEDGER_HASH_LEN], uint64_t index, uint64_t size,
                            const uint8_t (*path)[LEDGER_HASH_LEN], size_t path_len,
                            const uint8_t root[LEDGER_HASH_LEN]);
/* RFC 9162 §2.1.4.2. */
int merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[LEDGER_HASH_LEN],
                              const uint8_t root2[LEDGER_HASH_LEN],
                              const uint8_t (*proof)[LEDGER_HASH_LEN], size_t proof_len);

/* ------------------------------------------------------------- the ledger */

struct ledger;

struct ledger_config {
	struct ehr_db_pool *db;     /* the gateway's pool (role ehrgate_app) */
	const char *conninfo;       /* for the writer's own connection */
	const char *origin;         /* checkpoint origin line, e.g. "ehrgate.local/ledger" */
	EVP_PKEY *signing_key;      /* Ed25519; the ledger takes a reference */
	unsigned batch_max;         /* entries per block, default 512 */
	unsigned batch_ms;          /* max wait before a batch commits, default 2 */
};

int ledger_open(struct ledger **out, const struct ledger_config *cfg);
/* Commits what is pending, stops the writer, frees. */
void ledger_close(struct ledger *l);
/*
 * Append one entry. Thread-safe. Returns only after the batch holding the
 * entry is durable (synchronous_commit=on), filling *rcpt; if the batch
 * failed, nothing of it was written and every waiter gets the error.
 */
int ledger_append(struct ledger *l, const struct ledger_entry_in *in, struct ledger_receipt *rcpt);

#endif
