/*
 * http.h - the HTTP/TLS engine's face: routes, requests, replies, streams,
 * and the server that runs them. The engine knows nothing of EHRs, the
 * ledger or the application's configuration: the application hands it a
 * struct gw_http_options (route tables, limits, TLS files, a gate that
 * authenticates, and an opaque pointer its handlers get back).
 *
 * Route handlers in gateway/routes_*.c are written against this header. A handler runs either inline on the worker's event loop (cheap,
 * non-blocking routes such as /healthz) or, when the route is `blocking`,
 * on the gateway's blocking-job thread pool, where it may call Postgres,
 * the ledger (whose appends wait for group commit) or the object store.
 * Either way it must produce exactly one reply with gw_reply_*; the reply
 * is handed back to the connection's event loop by the core.
 */
#ifndef EHR_GATEWAY_HTTP_H
#define EHR_GATEWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>

#include "common/common.h"

struct gw_req; /* one HTTP request, opaque */

/* Roles a route may demand. A route with roles == 0 is public. */
enum gw_role {
	GW_ROLE_PATIENT = 1u << 0, /* DPoP-bound access token */
	GW_ROLE_SERVER = 1u << 1,  /* mTLS, registration-CA cert, role "server" */
	GW_ROLE_AUDITOR = 1u << 2, /* mTLS, registration-CA cert, role "auditor" */
};

/* Who made the request, after the core has authenticated it. */
struct gw_identity {
	unsigned role;        /* exactly one gw_role bit, or 0 when public */
	char subject[128];    /* server/auditor: certificate subject id; patient: pseudonym */
	char actor[128];      /* pseudonymous actor recorded in the ledger */
	char cert_serial[64]; /* hex serial for mTLS identities, else "" */
	char jkt[64];         /* patient: JWK thumbprint of the device key, else "" */
	char token_jti[64];   /* patient: the access token's jti (not secret: an id), else "" */
};

typedef void (*gw_handler_fn)(struct gw_req *r);

/* Route flags. */
enum gw_route_flag {
	GW_BLOCKING = 1u << 0, /* run on the blocking-job pool */
	/* The core does not buffer the request body: the handler reads it with
	 * gw_req_body_read, while it arrives. Implies GW_BLOCKING. [server]
	 * max_body_bytes does not apply; the route enforces its own bound. */
	GW_STREAM_BODY = 1u << 1,
	/* The handler runs the query and path checks itself (gw_req_check), so
	 * it can account for their refusals too (audit queries are ledger
	 * entries whether refused or not). Requires GW_BLOCKING. */
	GW_CHECK_IN_HANDLER = 1u << 2,
};

struct gw_route {
	const char *method;  /* "GET", "POST", ... */
	const char *pattern; /* "/v1/patients/{pid}/records": {name} matches one segment */
	const char *name;    /* stable metric label, e.g. "patients.records.create" */
	unsigned roles;      /* any of these roles may call it; 0 = public */
	unsigned flags;      /* gw_route_flag bits (true = GW_BLOCKING) */
	gw_handler_fn fn;
	/*
	 * The query parameters the route accepts, space-separated
	 * ("limit after"); NULL or "" = none. Before the handler runs (after
	 * the gate), a parameter not named here, a repeated one or a malformed
	 * query string is refused with 400 invalid_request naming it, so a
	 * misspelt filter can never widen a query. A name ending in '*'
	 * ("date*") may be repeated (FHIR ranges: date=ge..&date=lt..).
	 */
	const char *query;
};

/*
 * The application's one id validator (gw_http_options.param_check). The
 * engine calls it, before the handler and after the gate, for every path
 * parameter (path = true) and every query parameter (path = false) by
 * name; 0 accepts, a negative ehr_err with a public message refuses (400
 * invalid_request with that message). With value == NULL it asks whether
 * the validator knows `name`: a path parameter it does not know stops the
 * server at start (every id segment is validated); an unknown query name
 * returns 0 with a value (not an id: the handler parses it).
 */
typedef int (*gw_param_fn)(const char *name, const char *value, bool path);

/*
 * The application's error body (gw_http_options.error_render), asked by
 * gw_reply_error for every refusal, the engine's own included (404, 405,
 * 400 for a query, 401/403 from the gate): a malloc'd body with
 * *content_type set to a static string, or NULL for the engine's JSON
 * error {"error":{"code","message"}}. Lets one area answer in its own
 * format (FHIR OperationOutcome on /fhir).
 */
typedef char *(*gw_error_fn)(const struct gw_req *r, int status, const char *code, const char *message,
                             const char **content_type);

/* ---- request accessors (valid until the reply is sent) */
const char *gw_req_method(const struct gw_req *r);
const char *gw_req_path(const struct gw_req *r);                    /* decoded path, no query */
const char *gw_req_param(const struct gw_req *r, const char *name); /* path parameter */
const char *gw_req_query(const struct gw_req *r, const char *name); /* NULL if absent */
/* The n-th (0-based) value of a repeatable query parameter; NULL past the last. */
const char *gw_req_query_nth(const struct gw_req *r, const char *name, size_t n);
/* The query string as received (after '?', still percent-encoded; printable
 * ASCII only), NULL when the target had no '?'. */
const char *gw_req_raw_query(const struct gw_req *r);
const char *gw_req_header(const struct gw_req *r, const char *name); /* NULL if absent */
/* The whole body of a buffered route ("" for a GW_STREAM_BODY route). */
const uint8_t *gw_req_body(const struct gw_req *r, size_t *len);
/* The declared body length (Content-Length), 0 when there is no body, or
 * -1 when it is chunked and so unknown until its end. */
int64_t gw_req_body_length(const struct gw_req *r);
/*
 * GW_STREAM_BODY routes: read up to cap bytes of the body, waiting for them
 * to arrive. *got = 0 means the body has ended. The core reads ahead at most
 * a bounded window (GW_BODY_WINDOW), so memory stays constant whatever the
 * body's size. Errors: EHR_ERR_IO (the client went away), EHR_ERR_TIMEOUT
 * (the client stalled longer than [server] idle_timeout_s), EHR_ERR_PARSE
 * (malformed chunked framing). After an error the handler replies as usual;
 * the reply may not reach the client. A handler that replies before reading
 * the whole body (a refusal) makes the core close the connection after the
 * reply.
 */
int gw_req_body_read(struct gw_req *r, uint8_t *buf, size_t cap, size_t *got);
#define GW_BODY_WINDOW (1u << 20)
const char *gw_req_peer(const struct gw_req *r); /* client IP, for rate limits */
/* This request's id: 16 random hex digits, sent in every reply as
 * X-Request-Id and written in its access and error log lines. */
const char *gw_req_id(const struct gw_req *r);
const struct gw_route *gw_req_route(const struct gw_req *r); /* the matched route */
const struct gw_identity *gw_req_identity(const struct gw_req *r);
/* The absolute URL the client used (https://host:port/path), for DPoP htu. */
const char *gw_req_url(const struct gw_req *r);
/* The verified peer certificate (X509 *), or NULL. Not owned by the caller. */
void *gw_req_peer_cert(const struct gw_req *r);
/* X509_V_OK when the TLS layer verified the peer certificate against the
 * registration CA, an X509_V_ERR_* code when it did not, -1 when no
 * certificate was presented. The listener never fails a handshake over a
 * client certificate; routes decide (see gw_authenticate). */
long gw_req_peer_verify(const struct gw_req *r);
/* The application pointer given in gw_http_options.app. */
void *gw_req_userdata(const struct gw_req *r);
/* Set the reply's Content-Type (copied; a value with a control character
 * becomes application/octet-stream). */
void gw_req_set_content_type(struct gw_req *r, const char *content_type);

/* The route's query names and its path and query ids (the checks the core
 * runs before any handler of a route without GW_CHECK_IN_HANDLER): 0, or 1
 * after replying 400 naming the parameter. */
int gw_req_check(struct gw_req *r);
/* The status of the reply given so far (200 for a stream), 0 before one. */
int gw_req_reply_status(const struct gw_req *r);

/* ---- replies: exactly one per request */
void gw_reply_header(struct gw_req *r, const char *name, const char *value);
void gw_reply_json(struct gw_req *r, int status, json_t *body /* stolen */);
void gw_reply_bytes(struct gw_req *r, int status, const char *content_type, const void *data, size_t len);
/* {"error":{"code":code,"message":message}} with `status`. The message must
 * hold no PHI or secret. */
void gw_reply_error(struct gw_req *r, int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/*
 * ---- streamed replies from a blocking handler
 *
 * gw_reply_start sends the status line and the headers (those added with
 * gw_reply_header), with Content-Length: length, or chunked transfer
 * encoding when length < 0. gw_reply_write queues body bytes and blocks
 * while more than GW_REPLY_WINDOW bytes wait for the client, so a slow
 * client holds a bounded amount of memory. It returns EHR_ERR_IO once the
 * client has gone (or stalled past [server] idle_timeout_s): stop producing
 * and call gw_reply_end. gw_reply_end(r, true) completes the message;
 * gw_reply_end(r, false) aborts it: the connection is closed without the
 * last chunk (or short of Content-Length), so the client sees an
 * incomplete reply, never a complete-looking one. Exactly one of
 * gw_reply_{json,bytes,error,err,stream} or gw_reply_start..gw_reply_end
 * per request. With HEAD the body bytes are discarded.
 */
int gw_reply_start(struct gw_req *r, int status, const char *content_type, int64_t length);
int gw_reply_write(struct gw_req *r, const void *data, size_t len);
void gw_reply_end(struct gw_req *r, bool ok);
#define GW_REPLY_WINDOW (1u << 20)

/* ---- streaming replies (gateway/stream.c), e.g. Server-Sent Events
 *
 * A handler may answer with gw_reply_stream instead of gw_reply_*: the core
 * then sends status 200, `content_type` and the reply headers with chunked
 * transfer encoding (and "Connection: close", so the connection ends with
 * the stream), and calls start(s, ud) on the connection's event-loop
 * thread. From then on the stream belongs to that thread: gw_stream_write,
 * gw_stream_backlog and gw_stream_end may only be called there (from
 * events on gw_stream_base). The owner must eventually call gw_stream_end
 * exactly once, also after its close callback ran (the client went away;
 * writes are then discarded). Streams do not count as in-flight requests,
 * so draining on SIGTERM does not wait for them. If the stream cannot be
 * started, start(NULL, ud) is called so the owner can free ud.
 */
struct gw_stream;
struct event_base;
typedef void (*gw_stream_fn)(struct gw_stream *s, void *ud);
void gw_reply_stream(struct gw_req *r, const char *content_type, gw_stream_fn start, void *ud);
struct event_base *gw_stream_base(struct gw_stream *s);
/* Queue bytes as one chunk. EHR_ERR_IO once the client has gone. */
int gw_stream_write(struct gw_stream *s, const void *data, size_t len);
/* Bytes queued for this connection and not yet written to the socket:
 * a producer bounds it to keep a slow client from growing memory. */
size_t gw_stream_backlog(const struct gw_stream *s);
/* on_close(s, ud) runs on the loop thread when the client disconnects. */
void gw_stream_set_close_cb(struct gw_stream *s, gw_stream_fn on_close, void *ud);
/* Send the last chunk (if the client is still there) and free the stream. */
void gw_stream_end(struct gw_stream *s);

/* ---- the server */

/*
 * Runs on the blocking pool before the handler of a route with roles != 0.
 * Returns 0 to run the handler (after setting the identity with
 * gw_req_set_identity), or non-zero after replying itself (a refusal).
 */
typedef int (*gw_gate_fn)(struct gw_req *r);
void gw_req_set_identity(struct gw_req *r, const struct gw_identity *id);

struct gw_http_options {
	const char *listen;             /* "host:port" / "[v6]:port", numeric host */
	const char *public_url;         /* for gw_req_url; NULL or "" = from Host */
	const char *tls_cert, *tls_key; /* PEM files, re-read on SIGHUP */
	const char *tls_client_ca;      /* CA client certificates are checked against; NULL/"": none asked */
	unsigned workers, blocking_threads; /* event-loop threads, blocking-pool threads */
	size_t blocking_queue;              /* jobs waiting beyond this get 503 */
	unsigned max_headers;
	size_t max_header_bytes;
	uint64_t max_body_bytes; /* buffered routes */
	long max_connections;
	unsigned idle_timeout_s, read_timeout_s, drain_timeout_s;
	bool access_log;
	/* "host:port": GET /metrics (Prometheus text: the engine's metrics,
	 * then common/metrics.h's registry) on a plain-HTTP listener of its
	 * own, never on the TLS port; NULL or "" = none. */
	const char *metrics_listen;
	const struct gw_route *const *tables; /* route tables, matched in order */
	const size_t *table_lens;
	size_t ntables;
	gw_gate_fn gate;          /* required when a route has roles */
	gw_param_fn param_check;  /* required when a route has {parameters} */
	gw_error_fn error_render; /* optional */
	void *app;                /* gw_req_userdata */
};

/* "host:port" / "[v6]:port" into host and port. */
int gw_parse_listen(const char *v, char *host, size_t host_cap, uint16_t *port);
/* Ignore SIGPIPE and block SIGTERM, SIGINT and SIGHUP in this thread (and
 * the threads it starts later), leaving them to gw_server_run's sigwait.
 * Call it before starting any thread; gw_server_run calls it too. */
void gw_server_block_signals(sigset_t *set);
/*
 * Run the server until SIGTERM/SIGINT (drain, then return 0) with SIGHUP
 * reloading the TLS files. Prints "ehrgate listening on URL" when ready.
 */
int gw_server_run(const struct gw_http_options *o);

#endif
