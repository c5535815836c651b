/*
 * witness.h - ehrwitness: a C2SP tlog-witness that cosigns checkpoints of
 * the transparency logs it is configured for (docs/WITNESS.md).
 *
 * For each log origin it keeps the latest checkpoint it cosigned (size and
 * root hash) and cosigns a new checkpoint only if it carries a valid
 * signature by a trusted key of that log and a consistency proof from the
 * stored size. Check and persist are one atomic step per origin (a lock,
 * then write-temp/fsync/rename/fsync-dir), so two requests racing can never
 * roll the stored tree back, and kill -9 loses nothing that was answered.
 *
 * The cosignature formats are ledger/cosig.c (pure); this module is the
 * stateful service and its HTTP front (gateway/http, lib gwhttp).
 */
#ifndef EHR_WITNESS_H
#define EHR_WITNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "ledger/ledger.h"

#define WITNESS_MAX_LOGS 64
#define WITNESS_MAX_LOG_KEYS 8
#define WITNESS_PATH 1024

struct witness_log {
	char origin[256];
	size_t nkeys;
	char key_names[WITNESS_MAX_LOG_KEYS][256];
	struct ledger_note_key keys[WITNESS_MAX_LOG_KEYS]; /* .name points into key_names */
};

struct witness_config {
	char name[256];         /* [witness] name: the cosigner's key name */
	char key[WITNESS_PATH]; /* [witness] key: Ed25519 private key, PEM */
	char state_dir[WITNESS_PATH];
	char listen[128];            /* [witness] listen, host:port */
	char metrics_listen[128];    /* [witness] metrics_listen, "" = none */
	char tls_cert[WITNESS_PATH]; /* [tls] cert, key */
	char tls_key[WITNESS_PATH];
	unsigned workers, threads; /* [witness] workers (event loops), threads (blocking pool) */
	size_t nlogs;
	struct witness_log logs[WITNESS_MAX_LOGS]; /* [log "<origin>"] vkey = ... (repeatable) */
};

/* Parse an INI config (docs/WITNESS.md). sets are "section.key=value"
 * overrides (NULL-terminated, may be NULL), applied after the file. */
int witness_config_load(struct witness_config *cfg, const char *path, const char *const *sets);

struct witness;

/* Load the key and the state of every configured origin; takes the state
 * directory's lock (one ehrwitness per state directory). */
int witness_open(struct witness **out, const struct witness_config *cfg);
void witness_close(struct witness *w);

/* The outcome of one add-checkpoint request. */
struct witness_result {
	int status;               /* 200, 400, 403, 404, 409, 422, 500 */
	const char *content_type; /* static */
	struct ehr_buf body;      /* cosignature line(s), the stored size, or a plain error line */
};

/*
 * C2SP tlog-witness add-checkpoint: parse and check the request body and,
 * when every check passes, persist the new checkpoint and cosign it. Fills
 * res (free res->body with ehr_buf_free). Refusals are logged (origin and
 * sizes only) and counted. Thread-safe.
 */
void witness_add_checkpoint(struct witness *w, const char *body, size_t len, struct witness_result *res);

/* The latest cosigned checkpoint note of the origin whose SHA-256 is
 * origin_hash_hex (lower-case hex), with its log and witness signatures.
 * EHR_ERR_NOT_FOUND when never cosigned. */
int witness_checkpoint(struct witness *w, const char *origin_hash_hex, struct ehr_buf *note);

/* The cosigner vkey (name+id+base64(0x04||pub)). Appends to out. */
int witness_vkey(struct witness *w, struct ehr_buf *out);

/* The same from the configuration alone ([witness] name and key), without
 * opening the state (a running witness holds its lock). */
int witness_config_vkey(const struct witness_config *cfg, struct ehr_buf *out);

/* Run the HTTPS server until SIGTERM/SIGINT. Prints "ehrwitness vkey <vkey>"
 * then the engine's "... listening on https://HOST:PORT" line. */
int witness_serve(const struct witness_config *cfg);

/* `ehrwitness init`: a new Ed25519 key at path (0600, never overwrites),
 * and its vkey for `name` appended to vkey. */
int witness_init_key(const char *path, const char *name, struct ehr_buf *vkey);

#endif
