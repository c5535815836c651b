/*
 * routes_audit_stream.c - GET /v1/audit/stream, the auditor's live feed of
 * ledger entries as Server-Sent Events (docs/AUDIT.md §3). Entries are
 * rendered as the query API renders them (routes_audit.c); the route is in
 * its table, gw_routes_audit.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "common/db.h"
#include "gateway/gateway.h"
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
/* Each stream holds one Postgres connection: bound them per process. */
#define SSE_MAX_STREAMS 64

static atomic_int sse_open;

struct sse {
	struct gw_stream *s;
	PGconn *pg;
	struct event *pg_ev, *hb_ev, *retry_ev;
	uint64_t next; /* first seq not yet sent */
	bool have_sent;
	bool busy, dirty, more;
	unsigned rows; /* rows of the batch in progress */
	size_t limit;  /* backlog bound, bytes */
	unsigned heartbeat_s;
	bool ended;
};

static void sse_free(struct sse *x)
{
	if (x == NULL)
		return;
	atomic_fetch_sub(&sse_open, 1);
	if (x->pg_ev)
		event_free(x->pg_ev);
	if (x->hb_ev)
		event_free(x->hb_ev);
	if (x->retry_ev)
		event_free(x->retry_ev);
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

static bool sse_fetch(struct sse *x)
{
	char from[24];
	const char *p[] = { from };

	if (ehr_fmt(from, sizeof(from), "%llu", (unsigned long long)x->next) < 0)
		return false; /* 24 bytes hold any u64: cannot happen */
	if (!PQsendQueryParams(x->pg,
	                       "SELECT seq, block_height, entry FROM ledger_entries WHERE seq >= $1::bigint "
	                       "ORDER BY seq LIMIT " EHR_STR(SSE_BATCH),
	                       1, NULL, p, NULL, NULL, 0))
		return false;
	while (PQflush(x->pg) == 1)
		; /* a few dozen bytes on a local socket */
	x->busy = true;
	x->rows = 0;
	return true;
}

/* One row -> one event. False ends the stream (client gone or overflow). */
static bool sse_row(struct sse *x, PGresult *res, int i)
{
	size_t len = 0;
	unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &len);
	struct ledger_entry e;
	struct gw__audit_collect c;
	struct ehr_buf ev = EHR_BUF_INIT(4 * LEDGER_MAX_PAYLOAD);
	char *data = NULL;
	bool ok = false;

	memset(&c, 0, sizeof(c));
	c.items = json_array();
	if (raw == NULL || c.items == NULL || ledger_entry_decode(&e, raw, len, false) < 0)
		goto out;
	ehr_parse_u64(&e.block_height, PQgetvalue(res, i, 1), UINT64_MAX);
	if (gw__audit_collect_entry(&c, &e, raw, len) < 0 ||
	    (data = json_dumps(json_array_get(c.items, 0), JSON_COMPACT)) == NULL)
		goto out;
	if (ehr_buf_printf(&ev, "id: %llu\nevent: entry\ndata: %s\n\n", (unsigned long long)e.seq, data) <
	            0 ||
	    sse_send(x, (const char *)ev.data, ev.len) < 0)
		goto out;
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

static void sse_start(struct gw_stream *s, void *ud)
{
	struct sse *x = ud;
	struct event_base *base;
	struct timeval hb;
	static const char hello[] = ": ehrgate audit stream\nretry: 1000\n\n";

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
	    event_add(x->hb_ev, &hb) != 0 || sse_send(x, hello, sizeof(hello) - 1) < 0) {
		sse_end(x);
		return;
	}
	x->dirty = true; /* catch up from `next` at once */
	sse_pump(x);
}

void gw__audit_stream(struct gw_req *r, struct gw_audit_query_info *info)
{
	const struct gw_config *cfg = gw_app_config(gw_req_app(r));
	const char *last = gw_req_header(r, "Last-Event-ID"), *since = gw_req_query(r, "since");
	uint64_t v, hb, buf;
	struct sse *x;

	(void)info; /* recorded at open: no count, no patient filter */
	if (!gw__audit_query_u64(r, "heartbeat", &hb, 15, 60) ||
	    !gw__audit_query_u64(r, "buffer", &buf, SSE_BUFFER_DEFAULT, 64u << 20))
		return;
	if (hb == 0 || buf < 1024) {
		gw_reply_error(r, 400, "invalid_request",
		               "heartbeat must be 1..60 s and buffer at least 1024 bytes");
		return;
	}
	if (atomic_fetch_add(&sse_open, 1) >= SSE_MAX_STREAMS) {
		atomic_fetch_sub(&sse_open, 1);
		gw_reply_header(r, "Retry-After", "5");
		gw_reply_error(r, 503, "unavailable", "too many open audit streams, retry later");
		return;
	}
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		atomic_fetch_sub(&sse_open, 1);
		gw_reply_err(r, ehr_error_set(EHR_ERR_NOMEM, "out of memory"));
		return;
	}
	x->heartbeat_s = (unsigned)hb;
	x->limit = (size_t)buf;
	if (last != NULL) { /* resume after the last event seen */
		if (ehr_parse_u64(&v, last, INT64_MAX - 1) < 0) {
			sse_free(x);
			gw_reply_error(r, 400, "invalid_request", "Last-Event-ID must be a seq");
			return;
		}
		x->next = v + 1;
	} else if (since != NULL) { /* start at this seq */
		if (ehr_parse_u64(&v, since, INT64_MAX) < 0) {
			sse_free(x);
			gw_reply_error(r, 400, "invalid_request", "since must be a seq");
			return;
		}
		x->next = v;
	}
	x->pg = PQconnectdb(gw_config_get(cfg, "database", "url"));
	if (PQstatus(x->pg) != CONNECTION_OK) {
		ehr_logf(EHR_LOG_WARN, "audit.stream_db", "connect: %s", PQerrorMessage(x->pg));
		sse_free(x);
		gw_reply_error(r, 503, "unavailable", "the database is unavailable, retry later");
		return;
	}
	/* LISTEN before reading the head, so nothing committed in between is missed. */
	if (ehr_db_run_script(x->pg, "LISTEN " AUDIT_LEDGER_CHANNEL) < 0) {
		sse_free(x);
		gw_reply_error(r, 503, "unavailable", "the database is unavailable, retry later");
		return;
	}
	if (last == NULL && since == NULL) { /* only new entries */
		void *res = NULL;

		if (ehr_db_exec(x->pg, &res, "SELECT coalesce(max(seq) + 1, 0) FROM ledger_entries", 0,
		                NULL) < 0 ||
		    ehr_db_get_u64(&x->next, res, 0, 0, INT64_MAX) < 0) {
			ehr_db_clear(res);
			sse_free(x);
			gw_reply_error(r, 503, "unavailable", "the database is unavailable, retry later");
			return;
		}
		ehr_db_clear(res);
	}
	if (PQsetnonblocking(x->pg, 1) != 0) {
		sse_free(x);
		gw_reply_err(
		        r, ehr_error_set(EHR_ERR_INTERNAL, "cannot make the stream connection non-blocking"));
		return;
	}
	gw_reply_header(r, "X-Accel-Buffering", "no");
	gw_reply_stream(r, "text/event-stream", sse_start, x);
}
