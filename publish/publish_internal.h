/*
 * publish_internal.h - shared by the publisher's files: publisher.c (the
 * thread, its database session, metrics, status) and round.c (one round of
 * add-checkpoint requests to every witness at once, over libcurl multi).
 */
#ifndef EHR_PUBLISH_INTERNAL_H
#define EHR_PUBLISH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <curl/curl.h>

#include "ledger/ledger.h"
#include "publish/publish.h"

/* One witness: its configuration, what it last cosigned for us, and its
 * request of the current round. */
struct pub_witness {
	struct publish_witness cfg;
	size_t index; /* its metric series */
	/* what we know it cosigned (tlog-witness: the next request's old size) */
	uint64_t cosigned;
	int64_t cosigned_ms;
	int last_status;
	bool ok;
	/* the current round */
	CURL *easy;
	struct ehr_buf req;  /* the add-checkpoint body */
	struct ehr_buf resp; /* its answer */
	char ctype[64];      /* its Content-Type */
	uint64_t old_sent;
	bool retried, in_round, retry, counted;
	struct ehr_buf line; /* its verified cosignature line(s), "" if none */
};

/* The checkpoint a round submits. */
struct pub_round {
	uint64_t size;
	struct ehr_buf note; /* the ledger's signed note */
	unsigned valid;      /* witnesses with a verified cosignature line */
};

struct publisher {
	struct publish_config cfg; /* strings below are copies */
	char *conninfo, *ca_file, *cert_file, *key_file;
	struct ledger *ledger;
	struct pub_witness w[PUBLISH_MAX_WITNESSES];
	size_t n;
	const char *names[PUBLISH_MAX_WITNESSES + 1]; /* the metrics' label values */
	CURLM *multi;
	struct curl_slist *headers;

	pthread_t thread;
	bool started;
	_Atomic bool stopping;
	int stop_fd; /* eventfd: wakes the thread to stop */

	void *pg; /* PGconn*: the publisher's session */
	bool locked;
	uint64_t published; /* the published head as last read */
	int64_t unpublished_since_ms;

	pthread_mutex_t mu; /* guards status */
	struct publish_status status;
};

/* One round: submit the round's checkpoint to every witness concurrently
 * (a 409 is retried once from the size it names), keep the verified
 * cosignature lines in each witness's `line`, count rd->valid. Never
 * fails for a witness's sake: their errors are counted and logged. */
int pub__round(struct publisher *p, struct pub_round *rd);
/* curl handles of the witnesses (round.c). */
int pub__curl_init(struct publisher *p);
void pub__curl_free(struct publisher *p);

/* Metrics (publisher.c), per witness series w->index. */
void pub__count_refusal(struct pub_witness *w, long status);
void pub__count_error(struct pub_witness *w);
void pub__witness_cosigned(struct pub_witness *w);

#endif
