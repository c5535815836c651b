/*
 * audit_query.c - reading the audit trail is itself audited (docs/AUDIT.md
 * §7): every request on an audit read route becomes one `audit.query` ledger
 * entry, without a durable commit on the request path.
 *
 * A bounded queue between the routes and the ledger. A request reserves a
 * slot before its handler runs (admission: when the queue is full and stays
 * full for GW_AUDIT_QUEUE_WAIT_MS the request is refused with 503, so no
 * query is ever answered without its entry being queued), fills it after
 * the handler replied (the outcome and count are known then), and returns.
 * One flusher thread takes everything queued and commits it with
 * ledger_append_n: one block, one durable wait, for all queries that
 * arrived while the previous commit ran. Entries leave the queue only once
 * durable; a failed commit is retried. gw_audit_queue_free (a clean
 * shutdown, after the server drained) commits what is queued before the
 * ledger closes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/gateway_internal.h"
#include "ledger/ledger.h"

#define AUDIT_QUERY_FLUSH_MAX 512u /* entries per ledger_append_n */

struct aq_item {
	char actor[LEDGER_MAX_ID + 1];
	char subject[LEDGER_MAX_ID + 1];
	json_t *payload;
};

struct gw_audit_queue {
	struct ledger *ledger;
	pthread_mutex_t mu;
	pthread_cond_t have; /* items queued, or stop */
	pthread_cond_t room; /* a slot was freed */
	pthread_t flusher;
	struct aq_item *ring;
	size_t cap, head, count, reserved;
	bool stop;
};

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Commit items [head, head + k) of the ring; the caller holds no lock.
 * Producers only write slots past head + count, so these stay put. */
static int flush_batch(struct gw_audit_queue *q, size_t head, size_t k)
{
	struct ledger_entry_in in[AUDIT_QUERY_FLUSH_MAX];

	for (size_t i = 0; i < k; i++) {
		struct aq_item *it = &q->ring[(head + i) % q->cap];
		in[i] = (struct ledger_entry_in){ .type = GW_AUDIT_QUERY_TYPE,
			                          .actor = it->actor,
			                          .subject = it->subject,
			                          .payload = it->payload };
	}
	return ledger_append_n(q->ledger, in, k, NULL);
}

static void *flusher_main(void *arg)
{
	struct gw_audit_queue *q = arg;
	unsigned backoff_ms = 0, failures_at_stop = 0;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		size_t head, k;
		int err;

		while (q->count == 0 && !q->stop)
			pthread_cond_wait(&q->have, &q->mu);
		if (q->count == 0)
			break; /* stopping, and everything is durable */
		head = q->head;
		k = q->count < AUDIT_QUERY_FLUSH_MAX ? q->count : AUDIT_QUERY_FLUSH_MAX;
		pthread_mutex_unlock(&q->mu);
		err = flush_batch(q, head, k);
		pthread_mutex_lock(&q->mu);
		if (err < 0) {
			struct timespec ts;
			ehr_logf(EHR_LOG_ERROR, "audit.query_flush",
			         "cannot append %zu audit.query entries (retrying): %s", k, ehr_error_msg());
			if (q->stop && ++failures_at_stop >= 10) {
				ehr_logf(EHR_LOG_ERROR, "audit.query_lost",
				         "shutting down with %zu audit.query entries not appended", q->count);
				break;
			}
			backoff_ms = backoff_ms ? (backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2) : 50;
			deadline_in(&ts, backoff_ms);
			while (pthread_cond_timedwait(&q->have, &q->mu, &ts) != ETIMEDOUT)
				; /* wait out the backoff (new items do not shorten it) */
			continue;
		}
		backoff_ms = 0;
		for (size_t i = 0; i < k; i++) {
			struct aq_item *it = &q->ring[(q->head + i) % q->cap];
			json_decref(it->payload);
			it->payload = NULL;
		}
		q->head = (q->head + k) % q->cap;
		q->count -= k;
		pthread_cond_broadcast(&q->room);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int gw_audit_queue_new(struct gw_audit_queue **out, struct ledger *ledger, size_t cap)
{
	struct gw_audit_queue *q = calloc(1, sizeof(*q));
	pthread_condattr_t ca;
	int err = 0;

	*out = NULL;
	if (q == NULL || (q->ring = calloc(cap, sizeof(*q->ring))) == NULL) {
		free(q);
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	}
	q->ledger = ledger;
	q->cap = cap;
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->have, &ca);
	pthread_cond_init(&q->room, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&q->flusher, NULL, flusher_main, q) != 0) {
		err = ehr_error_set(EHR_ERR_INTERNAL, "cannot start the audit.query flusher");
		pthread_cond_destroy(&q->have);
		pthread_cond_destroy(&q->room);
		pthread_mutex_destroy(&q->mu);
		free(q->ring);
		free(q);
		return err;
	}
	*out = q;
	return 0;
}

void gw_audit_queue_free(struct gw_audit_queue *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_broadcast(&q->have);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->flusher, NULL);
	for (size_t i = 0; i < q->cap; i++)
		json_decref(q->ring[i].payload);
	pthread_cond_destroy(&q->have);
	pthread_cond_destroy(&q->room);
	pthread_mutex_destroy(&q->mu);
	free(q->ring);
	free(q);
}

int gw_audit_queue_reserve(struct gw_audit_queue *q, unsigned wait_ms)
{
	struct timespec ts;

	deadline_in(&ts, wait_ms);
	pthread_mutex_lock(&q->mu);
	while (q->count + q->reserved >= q->cap) {
		if (pthread_cond_timedwait(&q->room, &q->mu, &ts) == ETIMEDOUT) {
			pthread_mutex_unlock(&q->mu);
			return ehr_error_set(EHR_ERR_UNAVAILABLE,
			                     "the ledger is not keeping up with audit queries, retry later");
		}
	}
	q->reserved++;
	pthread_mutex_unlock(&q->mu);
	return 0;
}

void gw_audit_queue_put(struct gw_audit_queue *q, const char *actor, const char *subject, json_t *payload)
{
	pthread_mutex_lock(&q->mu);
	q->reserved--;
	if (payload != NULL) {
		struct aq_item *it = &q->ring[(q->head + q->count) % q->cap];
		/* both fit: gw_audit_query_run passes ids of at most 128 bytes */
		if (ehr_str_copy(it->actor, sizeof(it->actor), actor) < 0 ||
		    ehr_str_copy(it->subject, sizeof(it->subject), subject) < 0)
			it->subject[0] = '\0';
		it->payload = payload;
		q->count++;
		pthread_cond_signal(&q->have);
	} else {
		pthread_cond_signal(&q->room);
	}
	pthread_mutex_unlock(&q->mu);
}

/* ------------------------------------------------- recording a request */

/* A patient pseudonym (docs/PROTOCOL.md §9), by the one id validator;
 * anything else an auditor filtered on is not named. */
static bool is_patient_pseudonym(const char *s)
{
	bool ok = s != NULL && gw_id_check("patient", s, false) == 0;

	ehr_error_clear();
	return ok;
}

/* {"count"?, "outcome", "query", "route"}: route name, the raw query string
 * as received (printable ASCII: the HTTP parser refuses anything else in a
 * request target), no PHI (ids and pseudonyms only). */
static json_t *query_payload(struct gw_req *r, const struct gw_audit_query_info *info)
{
	const char *raw = gw_req_raw_query(r);
	int status = gw_req_reply_status(r);
	json_t *p = json_pack("{s:s, s:s, s:s}", "route", gw_req_route(r)->name, "query", raw ? raw : "",
	                      "outcome", status > 0 && status < 400 ? "success" : "failure");

	if (p && info->count >= 0 && json_object_set_new(p, "count", json_integer(info->count)) != 0) {
		json_decref(p);
		p = NULL;
	}
	return p;
}

/* The route's query and id checks (GW_CHECK_IN_HANDLER: here, so that a
 * refusal is recorded like any other failure), then the handler. */
static void run_checked(struct gw_req *r, gw_audit_read_fn fn, struct gw_audit_query_info *info)
{
	if (!(gw_req_route(r)->flags & GW_CHECK_IN_HANDLER) || gw_req_check(r) == 0)
		fn(r, info);
}

void gw_audit_query_run(struct gw_req *r, gw_audit_read_fn fn)
{
	struct gw_audit_queue *q = gw_app_audit_queue(gw_req_app(r));
	const struct gw_identity *id = gw_req_identity(r);
	struct gw_audit_query_info info = { .count = -1, .subject = NULL };
	json_t *payload;
	int err;

	if (q == NULL) { /* not serving with a ledger (unit tests of routes) */
		run_checked(r, fn, &info);
		return;
	}
	if ((err = gw_audit_queue_reserve(q, GW_AUDIT_QUEUE_WAIT_MS)) < 0) {
		gw_reply_header(r, "Retry-After", "1");
		gw_reply_err(r, err);
		return;
	}
	run_checked(r, fn, &info);
	payload = query_payload(r, &info);
	if (payload == NULL)
		ehr_logf(EHR_LOG_ERROR, "audit.query_lost", "cannot build the audit.query entry of route %s",
		         gw_req_route(r)->name);
	gw_audit_queue_put(q, id->actor[0] ? id->actor : "anonymous",
	                   is_patient_pseudonym(info.subject) ? info.subject : "", payload);
}
