/* auth_internal.h - auth/ internals shared between its source files. */
#ifndef EHR_AUTH_INTERNAL_H
#define EHR_AUTH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "auth/auth.h"

/* Per-address token buckets: a fixed table, so memory is bounded whatever
 * the number of addresses; a full neighbourhood evicts its oldest entry. */
#define AUTH_RATE_SLOTS 2048
#define AUTH_RATE_PROBE 8
#define AUTH_SUCCESS_EVENT_MS (5 * 60 * 1000)

struct auth_rate_slot {
	char peer[64];
	double tokens;
	int64_t last_ms;
	uint64_t suppressed; /* failure events counted but not appended */
};

struct auth_rate {
	pthread_mutex_t lock;
	double per_ms; /* refill rate, tokens per millisecond */
	double burst;  /* bucket size */
	struct auth_rate_slot *slots;
};

int auth__rate_init(struct auth_rate *r, unsigned per_min, unsigned burst);
void auth__rate_free(struct auth_rate *r);
/* Take one token for peer at now_ms: true if allowed. When not allowed and
 * count_suppressed, the slot's suppressed counter is incremented; when
 * allowed, *suppressed (if non-NULL) receives and clears that counter. */
bool auth__rate_take(struct auth_rate *r, const char *peer, int64_t now_ms, bool count_suppressed,
                     uint64_t *suppressed);

struct auth_ctx {
	struct auth_config cfg;
	char *state_dir, *issuer, *audience;
	X509 *regca;
	EVP_PKEY *regca_key;
	EVP_PKEY *token_key;
	char kid[EHR_JKT_LEN + 1];
	uint8_t pseudonym_key[AUTH_PSEUDONYM_KEY_LEN]; /* legacy derivation, if has_pseudonym_key */
	bool has_pseudonym_key;
	uint8_t link_key[AUTH_PSEUDONYM_KEY_LEN]; /* external id -> link row (auth_patient_links) */
	struct ehr_buf regca_pem;
	struct ehr_buf gateway_ca_pem;
	struct auth_rate rate[AUTH_RATE__N];
	struct auth_rate fail_events;
	struct auth_rate success_events; /* one per credential per AUTH_SUCCESS_EVENT_MS */
	atomic_uint_fast64_t cleanup_tick;
};

/* Shared by store.c and patients.c. */
json_t *auth__rfc3339(int64_t unix_s);
int64_t auth__now_s(void);
/* A secret presented by a client: base64url, 16..128 characters. */
bool auth__plausible_secret(const char *s);
/* "pt-" and 43 base64url characters. */
bool auth__valid_patient_id(const char *pid);

/* SHA-256 of a secret string, for storage and lookup. */
int auth__hash_secret(uint8_t out[32], const char *secret);
/* Give an event to the context's sink (success path): error when the sink
 * fails. payload is stolen (NULL: EHR_ERR_NOMEM); subject NULL means "". */
int auth__emit(struct auth_ctx *ctx, const char *type, const char *actor, const char *subject,
               json_t *payload /* stolen */);
int auth__sink_emit(const struct auth_event_sink *sink, const char *type, const char *actor,
                    const char *subject, json_t *payload /* stolen */);

#endif
