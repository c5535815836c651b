/*
 * witness_internal.h - shared by ehrwitness's files.
 */
#ifndef EHR_WITNESS_INTERNAL_H
#define EHR_WITNESS_INTERNAL_H

#include <pthread.h>

#include "witness/witness.h"

/* One witnessed log: its trusted keys and the latest checkpoint cosigned. */
struct witness_origin {
	const struct witness_log *log;
	char hash_hex[65]; /* hex SHA-256 of the origin: the state file's and the URL's name */
	char path[WITNESS_PATH + 96];
	pthread_mutex_t lock; /* held from the check against the stored size to the persist */
	uint64_t size;        /* 0 when never cosigned */
	uint8_t root[LEDGER_HASH_LEN];
	struct ehr_buf note; /* the cosigned note as stored; empty when never cosigned */
};

struct witness {
	struct witness_config cfg;
	EVP_PKEY *key;
	uint8_t pub[32];
	int lock_fd;
	size_t norigins;
	struct witness_origin *origins;
};

/* state.c: load every origin's state; persist one (durable before return). */
int witness__state_open(struct witness *w);
void witness__state_close(struct witness *w);
struct witness_origin *witness__origin_find(struct witness *w, const char *origin);
int witness__state_persist(struct witness_origin *o, uint64_t size, const uint8_t root[LEDGER_HASH_LEN],
                           const struct ehr_buf *note);

/* metrics.c-like counters in witness.c */
int witness__metrics_register(void);
void witness__metrics_unregister(void);

#endif
