/*
 * routes_audit_stream.c - the live feeds of ledger entries as Server-Sent
 * Events: GET /v1/audit/stream, the auditor's feed of every entry
 * (docs/AUDIT.md §3), and GET /v1/me/access/stream, a patient's feed of the
 * entries about its own pseudonym (docs/AUDIT.md §10). One implementation;
 * a patient stream is the same stream with a subject filter, its own
 * event rendering (routes_audit.c) and an end: the token's expiry, or a
 * revocation or new device key seen on the stream. The routes are in
 * gw_routes_audit.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "common/db.h"
#include "gateway/gateway.h"
#include "gateway/gateway_internal.h"
#include "gateway/routes_audit_internal.h"

#define EHR_XSTR(x) #x
#define EHR_STR(x) EHR_XSTR(x)

/* --------------------------------------------------------- live stream */

/*
 * GET /v1/audit/stream: Server-Sent Events, one event per ledger entry,
 * `id` = seq (docs/AUDIT.md §3). Each stream has its own Postgres
 * connection, driven asynchronously from the connection's event loop:
 * it LISTENs on the channel the ledger NOTIFYs after every commit (by any
 * gateway instance), and on a notification fetches the entries past the
 * last one sent. The loop never blocks on it. A client that does not read
 * fast enough is cut off once more than `buffer` bytes are queued for it,
 * with a final `overflow` event naming the id to resume after.
 */
#define AUDIT_LEDGER_CHANNEL "ehrgate_ledger" /* contracts/ledger_store.c NOTIFYs it, payload = last seq */
#define SSE_BATCH 100
#define SSE_BUFFER_DEFAULT (1u << 20)
/* Each stream holds one Postgres connection: bound them per process, per
 * kind, so that patients' streams never crowd out the auditors'. */
#define SSE_MAX_STREAMS 64

/* What a kind of stream shows and how it starts. */
struct sse_kind {
	const char *hello;       /* the first comment */
	const char *start_param; /* query parameter: start at this seq */
	atomic_int *open;        /* streams of this kind open in this process */
	bool patient;            /* one pseudonym's entries, patient events, an end */
};

static atomic_int audit_open, me_open;
static const struct sse_kind audit_kind = { ": ehrgate audit stream\nretry: 1000\n\n", "since", &audit_open,
	                                    false };
static const struct sse_kind me_kind = { ": ehrgate access stream\nretry: 1000\n\n", "from", &me_open, true };

struct sse {
	struct gw_stream *s;
	const struct sse_kind *kind;
	PGconn *pg;
	struct event *pg_ev, *hb_ev, *retry_ev, *exp_ev;
	uint64_t next;      /* first seq not yet sent */
	uint64_t live_from; /* the head when the stream opened */
	bool have_sent;
	bool busy, dirty, more;
	unsigned rows; /* rows of the batch in progress */
	size_t limit;  /* backlog bound, bytes */
	unsigned heartbeat_s;
	bool ended;
	/* patient streams */
	char subject[LEDGER_MAX_ID + 1]; /* the caller's pseudonym: the only subject shown */
	char jkt[64];                    /* the device key the token is bound to */
	int64_t exp_ms;                  /* the token's expiry: the stream ends there */
	const char *origin;              /* ledger origin, for the outcome rule */
	const char *end_reason;          /* set: end once caught up (the token is dead) */
};

static void sse_free(struct sse *x)
{
	if (x == NULL)
		return;
	atomic_fetch_sub(x->kind->open, 1);
	if (x->pg_ev)
		event_free(x->pg_ev);
	if (x->hb_ev)
		event_free(x->hb_ev);
	if (x->retry_ev)
		event_free(x->retry_ev);
	if (x->exp_ev)
		event_free(x->exp_ev);
	if (x->pg)
		PQfinish(x->pg);
	free(x);
}

static void sse_end(struct sse *x)
{
	if (x->ended)
		return;
	x->ended = true;
	gw_stream_end(x->s);
	sse_free(x);
}

static void sse_on_close(struct gw_stream *s, void *ud)
{
	(void)s;
	sse_end(ud);
}

static int sse_send(struct sse *x, const char *text, size_t len)
{
	return gw_stream_write(x->s, text, len);
}

/* A patient stream's last event, then the end: `reason` says why the
 * token no longer works (docs/AUDIT.md §10). */
static void sse_finish(struct sse *x, const char *reason)
{
	char ev[96];

	if (ehr_fmt(ev, sizeof(ev), "event: end\ndata: {\"reason\":\"%s\"}\n\n", reason) == 0)
		sse_send(x, ev, strlen(ev));
	sse_end(x);
}

static bool sse_fetch(struct sse *x)
{
	char from[24];
	const char *p[] = { from, x->subject };
	int ok;

	if (ehr_fmt(from, sizeof(from), "%llu", (unsigned long long)x->next) < 0)
		return false; /* 24 bytes hold any u64: cannot happen */
	if (x->kind->patient) /* the (subject, seq) index of migration 0010 */
		ok = PQsendQueryParams(
		        x->pg,
		        "SELECT seq, block_height, entry FROM ledger_entries WHERE subject = $2 "
		        "AND seq >= $1::bigint ORDER BY seq LIMIT " EHR_STR(SSE_BATCH),
		        2, NULL, p, NULL, NULL, 0);
	else
		ok = PQsendQueryParams(
		        x->pg,
		        "SELECT seq, block_height, entry FROM ledger_entries WHERE seq >= $1::bigint "
		        "ORDER BY seq LIMIT " EHR_STR(SSE_BATCH),
		        1, NULL, p, NULL, NULL, 0);
	if (!ok)
		return false;
	while (PQflush(x->pg) == 1)
		; /* a few dozen bytes on a local socket */
	x->busy = true;
	x->rows = 0;
	return true;
}

/* An entry type as an SSE event name: our types are [a-z0-9._]; anything
 * else (a line break would forge events) is "entry". */
static const char *event_name(const char *type)
{
	for (const char *p = type; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'))
			return "entry";
	return *type ? type : "entry";
}

/* A patient stream: does this entry, committed after the stream opened,
 * end the token's validity (docs/AUDIT.md §10)? The reason, or NULL. */
static const char *ends_token(const struct sse *x, const struct ledger_entry *e, const json_t *item)
{
	const char *outcome = json_string_value(json_object_get(item, "outcome"));
	const char *jkt = json_string_value(json_object_get(item, "jkt"));

	if (e->seq < x->live_from || outcome == NULL || strcmp(outcome, "success") != 0)
		return NULL;
	if (strcmp(e->type, "auth.patient.erase") == 0)
		return "erased";
	if (strcmp(e->type, "auth.revoke") == 0)
		return "revoked";
	if (strcmp(e->type, "auth.enroll") == 0 && jkt != NULL && strcmp(jkt, x->jkt) != 0)
		return "key_replaced"; /* not secret: thumbprints of public keys */
	return NULL;
}

/* One row -> one event. False ends the stream (client gone or overflow). */
static bool sse_row(struct sse *x, PGresult *res, int i)
{
	size_t len = 0;
	unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &len);
	struct ledger_entry e;
	struct gw__audit_collect c;
	struct ehr_buf ev = EHR_BUF_INIT(4 * LEDGER_MAX_PAYLOAD);
	const char *reason;
	char *data = NULL;
	bool ok = false;

	memset(&c, 0, sizeof(c));
	c.items = json_array();
	c.me_stream = x->kind->patient;
	c.origin = x->origin;
	if (raw == NULL || c.items == NULL || ledger_entry_decode(&e, raw, len, false) < 0)
		goto out;
	if (x->kind->patient && strcmp(e.subject, x->subject) != 0) {
		/* The query filters by subject: a stored column that disagrees
		 * with the entry's own bytes is never shown to this patient. */
		ehr_logf(EHR_LOG_ERROR, "audit.stream_subject", "entry %llu: subject column and bytes differ",
		         (unsigned long long)e.seq);
		x->next = e.seq + 1;
		ok = true;
		goto out;
	}
	ehr_parse_u64(&e.block_height, PQgetvalue(res, i, 1), UINT64_MAX);
	if (gw__audit_collect_entry(&c, &e, raw, len) < 0 ||
	    (data = json_dumps(json_array_get(c.items, 0), JSON_COMPACT)) == NULL)
		goto out;
	if (ehr_buf_printf(&ev, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)e.seq,
	                   x->kind->patient ? event_name(e.type) : "entry", data) < 0 ||
	    sse_send(x, (const char *)ev.data, ev.len) < 0)
		goto out;
	if (x->kind->patient && x->end_reason == NULL &&
	    (reason = ends_token(x, &e, json_array_get(c.items, 0))) != NULL)
		x->end_reason = reason;
	x->next = e.seq + 1;
	x->have_sent = true;
	if (gw_stream_backlog(x->s) > x->limit) {
		struct ehr_buf o = EHR_BUF_INIT(256);
		ehr_buf_printf(&o,
		               "event: overflow\ndata: {\"reason\":\"slow "
		               "consumer\",\"last_event_id\":\"%llu\"}\n\n",
		               (unsigned long long)e.seq);
		sse_send(x, ehr_buf_cstr(&o), o.len);
		ehr_buf_free(&o);
		ehr_logf(EHR_LOG_WARN, "audit.stream_overflow", "slow consumer cut off after seq %llu",
		         (unsigned long long)e.seq);
		goto out;
	}
	ok = true;
out:
	free(data);
	json_decref(c.items);
	ehr_buf_free(&ev);
	if (raw)
		PQfreemem(raw);
	return ok;
}

static void sse_pump(struct sse *x);

static void sse_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sse_pump(arg);
}

/* Start the next fetch if one is due and the client keeps up. */
static void sse_pump(struct sse *x)
{
	if (x->busy || !(x->dirty || x->more))
		return;
	if (gw_stream_backlog(x->s) > x->limit / 2) {
		struct timeval tv = { 0, 50 * 1000 };
		evtimer_add(x->retry_ev, &tv);
		return;
	}
	x->dirty = x->more = false;
	if (!sse_fetch(x)) {
		ehr_logf(EHR_LOG_WARN, "audit.stream_db", "fetch failed: %s", PQerrorMessage(x->pg));
		sse_end(x);
	}
}

static void sse_on_pg(evutil_socket_t fd, short what, void *arg)
{
	struct sse *x = arg;
	PGnotify *n;

	(void)fd;
	(void)what;
	if (!PQconsumeInput(x->pg)) {
		ehr_logf(EHR_LOG_WARN, "audit.stream_db", "lost the database: %s", PQerrorMessage(x->pg));
		sse_end(x); /* the client reconnects with Last-Event-ID */
		return;
	}
	while ((n = PQnotifies(x->pg)) != NULL) {
		x->dirty = true;
		PQfreemem(n);
	}
	while (x->busy && !PQisBusy(x->pg)) {
		PGresult *res = PQgetResult(x->pg);
		if (res == NULL) {
			x->busy = false;
			x->more = x->rows == SSE_BATCH;
			if (!x->more && x->end_reason != NULL) {
				sse_finish(x, x->end_reason); /* caught up: every entry of it sent */
				return;
			}
			break;
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			ehr_logf(EHR_LOG_WARN, "audit.stream_db", "query failed: %s",
			         PQresultErrorMessage(res));
			PQclear(res);
			sse_end(x);
			return;
		}
		for (int i = 0; i < PQntuples(res); i++) {
			x->rows++;
			if (!sse_row(x, res, i)) {
				PQclear(res);
				sse_end(x);
				return;
			}
		}
		PQclear(res);
	}
	sse_pump(x);
}

static void sse_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct sse *x = arg;
	char hb[64];

	(void)fd;
	(void)what;
	if (ehr_fmt(hb, sizeof(hb), ": heartbeat %lld\n\n", (long long)ehr_now_ms()) < 0 ||
	    sse_send(x, hb, strlen(hb)) < 0)
		sse_end(x);
}

static void sse_expired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sse_finish(arg, "token_expired");
}

/* A patient stream ends when its access token does. */
static int sse_arm_expiry(struct sse *x, struct event_base *base)
{
	int64_t left = x->exp_ms - ehr_now_ms();
	struct timeval tv;

	if (!x->kind->patient)
		return 0;
	if (left < 0)
		left = 0;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	x->exp_ev = evtimer_new(base, sse_expired, x);
	return x->exp_ev != NULL && evtimer_add(x->exp_ev, &tv) == 0 ? 0 : -1;
}

static void sse_start(struct gw_stream *s, void *ud)
{
	struct sse *x = ud;
	struct event_base *base;
	struct timeval hb;

	if (s == NULL) {
		sse_free(x);
		return;
	}
	x->s = s;
	base = gw_stream_base(s);
	gw_stream_set_close_cb(s, sse_on_close, x);
	x->pg_ev = event_new(base, PQsocket(x->pg), EV_READ | EV_PERSIST, sse_on_pg, x);
	x->hb_ev = event_new(base, -1, EV_PERSIST, sse_heartbeat, x);
	x->retry_ev = evtimer_new(base, sse_retry, x);
	hb.tv_sec = x->heartbeat_s;
	hb.tv_usec = 0;
	if (x->pg_ev == NULL || x->hb_ev == NULL || x->retry_ev == NULL || event_add(x->pg_ev, NULL) != 0 ||
	    event_add(x->hb_ev, &hb) != 0 || sse_arm_expiry(x, base) < 0 ||
	    sse_send(x, x->kind->hello, strlen(x->kind->hello)) < 0) {
		sse_end(x);
		return;
	}
	x->dirty = true; /* catch up from `next` at once */
	sse_pump(x);
}

/* The stream's database connection: LISTEN first, then read the head, so
 * nothing committed in between is missed. 503 replied on failure. */
static bool sse_connect(struct gw_req *r, struct sse *x, bool from_head)
{
	const struct gw_config *cfg = gw_app_config(gw_req_app(r));
	void *res = NULL;

	x->pg = PQconnectdb(gw_config_get(cfg, "database", "url"));
	if (PQstatus(x->pg) != CONNECTION_OK) {
		ehr_logf(EHR_LOG_WARN, "audit.stream_db", "connect: %s", PQerrorMessage(x->pg));
		goto unavailable;
	}
	if (ehr_db_run_script(x->pg, "LISTEN " AUDIT_LEDGER_CHANNEL) < 0 ||
	    ehr_db_exec(x->pg, &res, "SELECT coalesce(max(seq) + 1, 0) FROM ledger_entries", 0, NULL) < 0 ||
	    ehr_db_get_u64(&x->live_from, res, 0, 0, INT64_MAX) < 0)
		goto unavailable;
	ehr_db_clear(res);
	if (from_head) /* only new entries */
		x->next = x->live_from;
	if (PQsetnonblocking(x->pg, 1) != 0) {
		gw_reply_err(
		        r, ehr_error_set(EHR_ERR_INTERNAL, "cannot make the stream connection non-blocking"));
		return false;
	}
	return true;
unavailable:
	ehr_db_clear(res);
	gw_reply_error(r, 503, "unavailable", "the database is unavailable, retry later");
	return false;
}

/* Where the stream starts: after Last-Event-ID, else at the kind's start
 * parameter, else at the head (*from_head). Replies 400 when malformed. */
static bool sse_start_at(struct gw_req *r, struct sse *x, bool *from_head)
{
	const char *last = gw_req_header(r, "Last-Event-ID"), *at = gw_req_query(r, x->kind->start_param);
	uint64_t v;

	*from_head = false;
	if (last != NULL) { /* resume after the last event seen */
		if (ehr_parse_u64(&v, last, INT64_MAX - 1) < 0) {
			gw_reply_error(r, 400, "invalid_request", "Last-Event-ID must be a seq");
			return false;
		}
		x->next = v + 1;
	} else if (at != NULL) { /* start at this seq */
		if (ehr_parse_u64(&v, at, INT64_MAX) < 0) {
			gw_reply_error(r, 400, "invalid_request", "%s must be a seq", x->kind->start_param);
			return false;
		}
		x->next = v;
	} else {
		*from_head = true;
	}
	return true;
}

/* Open a stream of `kind` for the request (filled in by the caller: the
 * patient's pseudonym, key and token expiry) and hand the connection to
 * the event loop. x is consumed. */
static void sse_open(struct gw_req *r, struct sse *x)
{
	uint64_t hb, buf;
	bool from_head;

	if (!gw__audit_query_u64(r, "heartbeat", &hb, 15, 60) ||
	    !gw__audit_query_u64(r, "buffer", &buf, SSE_BUFFER_DEFAULT, 64u << 20))
		goto out;
	if (hb == 0 || buf < 1024) {
		gw_reply_error(r, 400, "invalid_request",
		               "heartbeat must be 1..60 s and buffer at least 1024 bytes");
		goto out;
	}
	x->heartbeat_s = (unsigned)hb;
	x->limit = (size_t)buf;
	if (!sse_start_at(r, x, &from_head) || !sse_connect(r, x, from_head))
		goto out;
	gw_reply_header(r, "X-Accel-Buffering", "no");
	gw_reply_stream(r, "text/event-stream", sse_start, x);
	return;
out:
	sse_free(x);
}

/* A stream slot of `kind`, or 503 (Retry-After) when all are taken. */
static struct sse *sse_new(struct gw_req *r, const struct sse_kind *kind)
{
	struct sse *x;

	if (atomic_fetch_add(kind->open, 1) >= SSE_MAX_STREAMS) {
		atomic_fetch_sub(kind->open, 1);
		gw_reply_header(r, "Retry-After", "5");
		gw_reply_error(r, 503, "unavailable", "too many open streams, retry later");
		return NULL;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		atomic_fetch_sub(kind->open, 1);
		gw_reply_err(r, ehr_error_set(EHR_ERR_NOMEM, "out of memory"));
		return NULL;
	}
	x->kind = kind;
	return x;
}

void gw__audit_stream(struct gw_req *r, struct gw_audit_query_info *info)
{
	struct sse *x;

	(void)info; /* recorded at open: no count, no patient filter */
	if ((x = sse_new(r, &audit_kind)) != NULL)
		sse_open(r, x);
}

/*
 * GET /v1/me/access/stream: the caller's own entries (subject = its
 * pseudonym), rendered for the patient, ending with the token
 * (docs/AUDIT.md §10). Recorded as an audit.query about the patient.
 */
void gw__me_access_stream(struct gw_req *r, struct gw_audit_query_info *info)
{
	const struct gw_identity *id = gw_req_identity(r);
	struct sse *x;

	info->subject = id->subject;
	if ((x = sse_new(r, &me_kind)) == NULL)
		return;
	x->exp_ms = id->token_exp * 1000;
	x->origin = ledger_origin(gw_app_ledger(gw_req_app(r)));
	if (ehr_str_copy(x->subject, sizeof(x->subject), id->subject) < 0 ||
	    ehr_str_copy(x->jkt, sizeof(x->jkt), id->jkt) < 0) {
		sse_free(x);
		gw_reply_err(r, ehr_error_set(EHR_ERR_INTERNAL, "identity too long"));
		return;
	}
	sse_open(r, x);
}
