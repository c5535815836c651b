/*
 * publish.h - quorum publication of the ledger's checkpoints (docs/LEDGER.md §13).
 *
 * A checkpoint signed by the ledger key alone proves only what the key
 * holder says. The publisher sends each new checkpoint to every configured
 * witness at once (C2SP tlog-witness add-checkpoint, with a consistency
 * proof from the size that witness last cosigned), collects their C2SP
 * tlog-cosignature lines, and once k of them verify it PUBLISHES the note
 * (log signature + cosignature lines) in table ledger_published, moving the
 * published head forward by a compare-and-swap. ledger_published() hands
 * that note to every client.
 *
 * It runs on its own thread and its own database connection. It never
 * touches the append path: witnesses that are down, slow or refusing only
 * pause publication, which resumes by itself. One instance at a time runs
 * rounds (a session advisory lock); the CAS keeps the head monotonic even
 * if two did.
 */
#ifndef EHR_PUBLISH_H
#define EHR_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct ledger; /* ledger/ledger.h */

#define PUBLISH_MAX_WITNESSES 16
#define PUBLISH_NAME_MAX 128
#define PUBLISH_URL_MAX 512

/* One witness of [witness] witnesses. */
struct publish_witness {
	char name[PUBLISH_NAME_MAX + 1]; /* the cosigner's key name (from its vkey) */
	char url[PUBLISH_URL_MAX + 1];   /* submission prefix: POST <url>/add-checkpoint */
	uint8_t pub[32];                 /* cosignature/v1 Ed25519 public key */
};

/*
 * Parse [witness] witnesses: items separated by commas, each
 * "<url> <vkey>" (blanks between), url http:// or https:// without a
 * trailing '/', vkey a C2SP cosignature/v1 verifier key (type 0x04) whose
 * key name names the witness. At most PUBLISH_MAX_WITNESSES, names and
 * keys distinct. EHR_ERR_CONFIG with a detail naming the item.
 */
int publish_witnesses_parse(struct publish_witness *out, size_t cap, size_t *n, const char *text);

struct publish_config {
	struct ledger *ledger; /* proofs and checkpoints come from it */
	const char *conninfo;  /* the publisher's own session (lock, LISTEN, CAS) */
	const struct publish_witness *witnesses;
	size_t n;
	unsigned quorum;       /* k: 1..n */
	const char *ca_file;   /* PEM CAs for the witnesses' TLS ("" = system store) */
	const char *cert_file; /* client certificate for mutual TLS ("" = none) */
	const char *key_file;  /* its key */
	unsigned interval_ms;  /* a round at least this often (and at every commit) */
	unsigned timeout_ms;   /* per witness request, connect included */
};

struct publisher;

/* Start the publisher thread (it registers the ehrgate_witness_* and
 * ehrgate_publication_* metrics). */
int publish_start(struct publisher **out, const struct publish_config *cfg);
/* Stop it: the round in flight is abandoned (never half-published). */
void publish_stop(struct publisher *p);

/* What /readyz shows. */
struct publish_witness_status {
	const char *name;
	uint64_t cosigned_size; /* latest size it cosigned for us (0: none yet) */
	int64_t cosigned_ms;    /* when (0: never) */
	int last_status;        /* HTTP status of its last answer, 0 = no answer */
	bool ok;                /* its last answer was a valid cosignature */
};
struct publish_status {
	bool active;             /* this instance holds the round lock */
	bool quorum_ok;          /* the last round reached quorum (or had nothing to do) */
	unsigned quorum, n;      /* k of n */
	unsigned cosigners;      /* valid cosignatures in the last round */
	uint64_t published_size; /* the published head */
	uint64_t head_size;      /* the ledger head at the last round */
	int64_t lag_ms;          /* time the oldest unpublished commit has waited (0: none) */
	struct publish_witness_status w[PUBLISH_MAX_WITNESSES];
};
void publish_status(struct publisher *p, struct publish_status *st);

#endif
