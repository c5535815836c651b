/*
 * http_internal.h - the HTTP engine's internals, shared between the
 * gateway/http/ source files (and the engine's unit tests and fuzzers).
 * Not part of the engine's face (http.h).
 */
#ifndef EHR_GATEWAY_HTTP_INTERNAL_H
#define EHR_GATEWAY_HTTP_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "gateway/http/http.h"

/* router.c: a compiled route table. */
#define GW_MAX_PARAMS 8
struct gw_param {
	const char *name; /* points into the route pattern */
	size_t name_len;
	char *value; /* decoded, owned by the match */
};
struct gw_match {
	const struct gw_route *route;
	int route_index;
	size_t nparams;
	struct gw_param params[GW_MAX_PARAMS];
};
enum gw_route_result {
	GW_ROUTE_FOUND = 0,
	GW_ROUTE_NOT_FOUND = 1,
	GW_ROUTE_BAD_METHOD = 2,
	GW_ROUTE_BAD_PATH = 3
};
struct gw_router;
/* Validates every pattern (leading '/', {name} whole segments, no duplicate
 * method+pattern). */
int gw_router_new(struct gw_router **out, const struct gw_route *const *tables, const size_t *lens,
                  size_t ntables);
void gw_router_free(struct gw_router *rt);
size_t gw_router_count(const struct gw_router *rt);
const struct gw_route *gw_router_route(const struct gw_router *rt, size_t i);
/* Match a raw (still percent-encoded) path without query. On GW_ROUTE_BAD_METHOD
 * `allow` receives "GET, POST" for the Allow header. Free with gw_match_clear. */
enum gw_route_result gw_router_match(const struct gw_router *rt, const char *method, const char *raw_path,
                                     struct gw_match *m, char *allow, size_t allow_cap);
void gw_match_clear(struct gw_match *m);
/* Fails (EHR_ERR_CONFIG, naming the route) when a {parameter} is one
 * `check` does not know, or when there is no check. */
int gw_router_check_params(const struct gw_router *rt, gw_param_fn check);
char *gw__pct_decode(const char *s, size_t len, bool slash_ok, bool plus_space);

/* query.c: the query string of a request, checked against its route. */
#define GW_MAX_QUERY 32
struct gw_qparam {
	char *name, *value; /* decoded, owned by the request */
};
/* Before the handler: unknown, repeated or malformed query parameters and
 * path/query values the application's validator refuses are 400
 * invalid_request. Returns 0 to run the handler, or 1 after replying. */
int gw__req_check(struct gw_req *r);
/* Parse r's query once (idempotent); negative on a malformed query. */
int gw__query_parse(struct gw_req *r);
void gw__query_free(struct gw_req *r);

/* ---------------------------------------------------------------- h1.c */

#define GW_H1_MAX_FIELDS 1024
struct gw_h1_field {
	char *name, *value; /* point into the parsed head */
};
struct gw_h1_req {
	char *method, *target;
	int minor; /* HTTP/1.<minor> */
	size_t nfields;
	struct gw_h1_field *fields; /* the caller's array */
	int64_t content_length;     /* -1: none */
	bool chunked;
	bool close; /* Connection: close, or HTTP/1.0 without keep-alive */
	bool expect_continue;
};
/* Parse a whole request head (up to and including its empty line) in place.
 * `fields` has room for min(max_fields, GW_H1_MAX_FIELDS) entries; more
 * fields than that is 431. Returns 0, or the status to refuse it with (400,
 * 417, 431, 501, 505), *why saying why in words fit for a client. */
int gw_h1_parse(struct gw_h1_req *q, char *head, size_t len, struct gw_h1_field *fields, size_t max_fields,
                const char **why);
const char *gw_h1_field(const struct gw_h1_req *q, const char *name); /* case-insensitive; first */
bool gw_h1_has_body(const struct gw_h1_req *q);                       /* chunked, or Content-Length > 0 */
size_t gw_h1_head_end(const uint8_t *buf, size_t len, size_t *scanned);

/* The chunked transfer coding of a request body, one step at a time: from
 * in[0..n) consume *framing bytes of framing; then *payload bytes of body
 * follow (the caller takes them and calls again past them). Returns 1 when
 * the body has ended (*framing then includes its last CRLF), 0 for more,
 * or EHR_ERR_PARSE. Start zeroed. */
struct gw_h1_chunked {
	unsigned state;
	unsigned digits;
	uint64_t left;
	size_t line;
	size_t trailers;
};
int gw_h1_chunked_step(struct gw_h1_chunked *c, const uint8_t *in, size_t n, size_t *framing,
                       size_t *payload);

/* ---------------------------------------------------------------- server */

#include <pthread.h>
#include <stdatomic.h>

#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

struct gw_metrics;
struct gw_pool;
struct gw_server;
struct gw_conn;

/* One event loop thread. */
struct gw_worker {
	struct gw_server *srv;
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct evconnlistener *listener;
	struct gw_conn *conns; /* every open connection, for shutdown */
	struct event *done_ev; /* replies handed back by the blocking pool */
	pthread_mutex_t done_lock;
	struct gw_req *done_head, *done_tail;
	struct gw_metrics *metrics; /* this worker's shard */
	struct ehr_buf alog;        /* access-log lines not yet written */
	struct event *alog_ev;      /* flushes alog every 100 ms */
	struct event *trim_ev;      /* worker 0 only: gives freed memory back after floods */
	unsigned long trim_closed;  /* srv->conns_closed at the last trim */
	uint64_t next_req_id;       /* X-Request-Id: a random start, then +1 per request */
};

struct gw_server {
	const struct gw_http_options *opt;
	struct gw_router *router;
	unsigned nworkers;
	struct gw_worker *workers;
	struct gw_pool *pool;
	pthread_mutex_t ctx_lock;
	SSL_CTX *ctx; /* current context for new connections; swapped on SIGHUP */
	char host[256];
	uint16_t port;
	char base_url[300];
	/* limits */
	unsigned max_headers;
	size_t max_header_bytes;
	uint64_t max_body_bytes;
	long max_connections;
	unsigned idle_timeout_s, read_timeout_s;
	bool access_log;
	/* counters */
	atomic_long open_conns;
	atomic_ulong conns_closed; /* ever: the memory trim's measure of churn */
	atomic_long inflight;
	atomic_ulong conns_refused;
	atomic_ulong tls_reloads;
	atomic_ulong tls_reload_failures;
	atomic_bool draining;
	atomic_uint quiesced;                         /* workers that stopped taking new requests */
	struct gw_metrics_listener *metrics_listener; /* NULL: [metrics] listen is off */
};

/* metrics_listen.c: GET /metrics on its own plain-HTTP listener. */
struct gw_metrics_listener;
/* Bind `listen` ("host:port"), print "ehrgate metrics on http://host:port/metrics"
 * and serve on a thread of its own. */
int gw__metrics_listen_start(struct gw_server *srv, const char *listen, struct gw_metrics_listener **out);
void gw__metrics_listen_stop(struct gw_metrics_listener *m);

/* Request state: one per HTTP request, owned by the core. */
struct gw_hdr {
	char *name, *value;
	struct gw_hdr *next;
};

struct evbuffer;

struct gw_req {
	struct gw_server *srv;
	struct gw_worker *w;
	struct gw_conn *conn; /* the connection it came on; outlives the request */
	struct gw_h1_req h1;  /* the parsed head; points into `head` */
	char *head;
	const struct gw_route *route;
	int route_index; /* -1: no route matched */
	struct gw_match match;
	const char *method;
	bool is_head;   /* HEAD: no body in the reply */
	char *raw_path; /* without query, still percent-encoded */
	char *path;     /* decoded */
	const char *raw_query;
	struct gw_qparam *query; /* nquery decoded parameters, in order */
	size_t nquery;
	bool query_parsed;
	int query_err;      /* 0, or the query string is malformed or refused */
	char query_msg[96]; /* the public message of query_err */
	char *url;
	char peer[64];
	char req_id[17]; /* X-Request-Id: 16 hex digits */
	const char *tls_version;
	X509 *peer_cert;
	long peer_verify;
	struct gw_identity id;
	struct evbuffer *body_buf; /* buffered routes: the whole body */
	const uint8_t *body;
	size_t body_len;
	int64_t start_us;
	/*
	 * Streaming, between the handler's thread and the loop, under `lock`:
	 * `in` holds body bytes read ahead (at most GW_BODY_WINDOW), `sout`
	 * reply bytes (framed) not yet handed to the connection; `queued` is
	 * what waits for the client in both `sout` and the socket buffer.
	 */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct evbuffer *in;
	struct evbuffer *sout; /* streamed reply bytes, framed */
	bool in_full;          /* the loop stopped at a full window */
	bool continued;        /* 100 Continue was queued */
	bool in_done;          /* the whole body has been read */
	int in_err;            /* the body could not be read: 0 or an ehr_err */
	bool gone;             /* the client went away (or stalled): discard output */
	bool streamed;         /* gw_reply_start was called */
	bool chunked_reply;
	bool aborted;        /* gw_reply_end(r, false) */
	uint64_t reply_left; /* Content-Length bytes still owed */
	uint64_t sent;       /* body bytes of a streamed reply */
	size_t queued;
	/* the reply */
	bool replied;
	bool close;
	int status;
	char content_type[128]; /* copied: the handler's string may not outlive it; "" = JSON */
	struct gw_hdr *headers;
	struct evbuffer *out;      /* buffered reply body (the handler's until it returns) */
	gw_stream_fn stream_start; /* gw_reply_stream: stream.c takes over in req_finish */
	void *stream_ud;
	struct gw_req *next; /* completion queue */
};

int64_t gw_now_us(void);

/* tls.c */
int gw_tls_ctx_new(SSL_CTX **out, const struct gw_http_options *o);
int gw_tls_init(void);
/* Make this connection's handshake fail at its ClientHello (over
 * max_connections, or draining): the client gets a TLS alert, not a
 * silent close. */
int gw_tls_refuse(SSL *ssl);

/* conn.c (lifecycle), conn_read.c (request heads and bodies), conn_reply.c
 * (reply heads, streamed replies): connections. */
void gw_conn_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg);
/* Close every connection of a worker (loop stopped). */
void gw_conn_close_all(struct gw_worker *w);
/* Draining, on the loop thread: close the connections that wait for a
 * request (idle keep-alive, a handshake, a partial head), so no request
 * can start after this; busy ones close after their reply. */
void gw_conn_close_idle(struct gw_worker *w);
const char *gw_conn_peer(const struct gw_conn *c); /* the client's IP */
/* Loop thread: the request's reply is complete in r (buffered), or was
 * streamed; write what is left, then serve the next request or close. */
void gw_conn_finish(struct gw_req *r);
/* Any thread: wake the connection's loop to move streamed bytes. */
void gw_conn_wake(struct gw_req *r);
/* Loop thread: the reply head for r into `out` (status line, headers).
 * length < 0 = chunked. */
void gw_conn_head(struct gw_req *r, struct evbuffer *out, int64_t length);
/* stream.c: hand the connection over to an event-stream (loop thread). */
struct gw_stream;
struct bufferevent *gw_conn_take_for_stream(struct gw_req *r, struct gw_stream *s);
void gw_conn_stream_done(struct gw_conn *c, bool flush);
struct gw_conn *gw_stream_conn(struct gw_stream *s);
void gw__stream_closed(struct gw_stream *s); /* conn.c -> stream.c: the client went away */
/* stream.c: called by req_finish on the loop thread for a gw_reply_stream
 * reply; sends the head, hands the connection to the stream, ends r. */
void gw__stream_begin(struct gw_req *r);

/* conn.c, conn_read.c, conn_reply.c: one connection's state, shared by the
 * three files of the connection (lifecycle; reading requests; writing
 * replies). Nothing else reads its fields. */
enum conn_state {
	CS_HEAD,    /* waiting for (the rest of) a request head */
	CS_BODY,    /* reading a buffered route's body */
	CS_RUN,     /* the request runs; a streamed body may still arrive */
	CS_STREAM,  /* an event stream owns the connection (stream.c) */
	CS_CLOSING, /* flushing the last reply, then lingering */
};

struct gw_conn {
	struct gw_server *srv;
	struct gw_worker *w;
	struct gw_conn *prev, *next; /* the worker's list */
	SSL *ssl;
	struct bufferevent *bev; /* NULL once closed */
	struct event *deadline;  /* a whole head (and buffered body) must arrive by then */
	struct event *wake;      /* other threads poke the loop through it */
	struct event *linger;
	enum conn_state state;
	bool abort; /* close without close_notify (an aborted reply) */
	bool next_due;
	size_t scanned; /* head bytes already searched for its end */
	struct gw_req *req;
	uint64_t body_left; /* Content-Length body bytes still to read */
	bool body_chunked;
	bool reading_body; /* body bytes are still to come */
	struct gw_h1_chunked ck;
	struct gw_stream *stream;
	char peer[64];
};

/* conn.c: close the socket now; the object stays while a request or
 * stream holds it. */
void gw__conn_drop(struct gw_conn *c);
/* conn_read.c: look for a complete request head in the input and start
 * the request (loop thread). */
void gw__conn_try_head(struct gw_conn *c);
/* conn_read.c: move body bytes out of the input buffer, as far as there is
 * room (loop thread). */
void gw__conn_pump_body(struct gw_conn *c);
/* conn_reply.c: move the handler's streamed reply bytes to the socket (loop
 * thread). */
void gw__conn_move_reply(struct gw_conn *c, struct gw_req *r);
/* conn_reply.c: must the connection close after r's reply? body_unread:
 * the request's body has not all been read, so the next request cannot be
 * found. */
bool gw__req_must_close(const struct gw_req *r, bool body_unread);

/* http.c */
/* Fill r from its parsed head and route it (loop thread). Returns 0, or 1
 * after answering a request it refuses (404, 405, bad path). */
int gw_http_route(struct gw_req *r);
/* A parsed, routed request is ready to run (loop thread). */
void gw_http_dispatch(struct gw_req *r);
/* A request the core refuses before any handler (loop thread). */
void gw_http_refuse(struct gw_req *r, int status, const char *code, const char *msg);
struct gw_req *gw_req_new(struct gw_worker *w, struct gw_conn *c);
void gw_req_free(struct gw_req *r);
/* Metrics, access log, in-flight count, free: the request is over. */
void gw_req_done(struct gw_req *r, size_t bytes);
void gw_http_done_cb(evutil_socket_t fd, short what, void *arg);
int gw_pool_new(struct gw_pool **out, unsigned threads, size_t max_queue);
void gw_pool_stop(struct gw_pool *p);
size_t gw_pool_depth(struct gw_pool *p);
/* The worker whose event loop runs on this thread, or NULL. */
struct gw_worker *gw_current_worker(void);
void gw_set_current_worker(struct gw_worker *w);
/* Write out this worker's buffered access-log lines (loop thread). */
void gw_access_log_flush(struct gw_worker *w);
void gw_access_log_timer(evutil_socket_t fd, short what, void *arg);

/* metrics.c */
int gw_metrics_new(struct gw_metrics **out, size_t nroutes);
void gw_metrics_free(struct gw_metrics *m);
/* The engine's metrics of srv in Prometheus text. */
int gw__metrics_render(struct gw_server *srv, struct ehr_buf *out);
/* route_index -1 = unmatched. */
void gw_metrics_observe(struct gw_metrics *m, int route_index, const char *method, int status,
                        int64_t dur_us);

#endif
