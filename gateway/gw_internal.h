/*
 * gw_internal.h - gateway internals shared between the gateway/ source files.
 * Not part of the module's face (gateway.h, commands.h).
 */
#ifndef EHR_GW_INTERNAL_H
#define EHR_GW_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "gateway/gateway.h"

static inline void gw_cleanse_str(char *s)
{
	OPENSSL_cleanse(s, strlen(s));
}

/* routes_ehr.c (storage): open the object store of [store], KEKs attached. */
struct obj_store;
int gw_ehr_store_open(struct obj_store **out, const struct gw_config *cfg);

/* config.c: "host:port" / "[v6]:port" */
int gw_parse_listen(const char *v, char *host, size_t host_cap, uint16_t *port);

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

/* ---------------------------------------------------------------- server */

#include <pthread.h>
#include <stdatomic.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

struct gw_metrics;
struct gw_pool;
struct gw_server;

/* One event loop thread. */
struct gw_worker {
	struct gw_server *srv;
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct event *done_ev; /* replies handed back by the blocking pool */
	pthread_mutex_t done_lock;
	struct gw_req *done_head, *done_tail;
	struct gw_metrics *metrics; /* this worker's shard */
	struct ehr_buf alog;        /* access-log lines not yet written */
	struct event *alog_ev;      /* flushes alog every 100 ms */
};

struct gw_server {
	const struct gw_config *cfg;
	struct gw_app *app;
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
	long max_connections;
	unsigned idle_timeout_s, read_timeout_s;
	bool access_log;
	/* counters */
	atomic_long open_conns;
	atomic_long inflight;
	atomic_ulong conns_refused;
	atomic_ulong tls_reloads;
	atomic_ulong tls_reload_failures;
	atomic_bool draining;
};

/* Per-connection state, attached to the SSL object; freed with it. */
struct gw_conn {
	struct gw_server *srv;
	SSL *ssl;
	struct event *deadline; /* closes connections that are too slow to send a request */
	bool refuse;            /* over max_connections: fail the handshake */
};

/* Request state: one per HTTP request, owned by the core. */
struct gw_hdr {
	char *name, *value;
	struct gw_hdr *next;
};

struct gw_req {
	struct gw_server *srv;
	struct gw_worker *w;
	struct evhttp_request *ev;
	const struct gw_route *route;
	int route_index; /* -1: no route matched */
	struct gw_match match;
	const char *method;
	char *raw_path; /* without query, still percent-encoded */
	char *path;     /* decoded */
	const char *raw_query;
	struct evkeyvalq query;
	bool query_parsed;
	char *url;
	char peer[64];
	const char *tls_version;
	X509 *peer_cert;
	long peer_verify;
	struct gw_identity id;
	const uint8_t *body;
	size_t body_len;
	int64_t start_us;
	/* the reply */
	bool replied;
	bool close;
	int status;
	char content_type[128]; /* copied: the handler's string may not outlive it; "" = JSON */
	struct gw_hdr *headers;
	struct evbuffer *out;
	gw_stream_fn stream_start; /* gw_reply_stream: stream.c takes over in req_finish */
	void *stream_ud;
	struct gw_req *next; /* completion queue */
};

/* stream.c: called by req_finish on the loop thread for a streaming reply,
 * after the headers are set; takes r->ev (sets it to NULL). */
void gw__stream_begin(struct gw_req *r);

int64_t gw_now_us(void);

/* tls.c */
int gw_tls_ctx_new(SSL_CTX **out, const struct gw_config *cfg);
int gw_tls_init(void);
int gw_tls_conn_index(void);

/* http.c */
void gw_http_gencb(struct evhttp_request *ev, void *arg);
struct bufferevent *gw_http_bevcb(struct event_base *base, void *arg);
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
/* route_index -1 = unmatched. */
void gw_metrics_observe(struct gw_metrics *m, int route_index, const char *method, int status,
                        int64_t dur_us);
int gw_metrics_render(struct gw_server *srv, struct ehr_buf *out);

/* server.c */
int gw_server_run(const struct gw_config *cfg, struct gw_app *app);

/* routes_core.c: routes only mounted with [server] test_routes = true */
extern const struct gw_route gw_routes_test[];
extern const size_t gw_routes_test_len;

/* policy_gate.c (contracts & audit): decide one EHR read or append against
 * the access-policy contracts, record it in the ledger (access.decision),
 * count it. 0 = allowed; EHR_ERR_FORBIDDEN = denied (detail = reason);
 * EHR_ERR_INVAL = bad X-EHR-Break-Glass / X-EHR-Purpose header; any other
 * error = the decision could not be recorded (refuse with 503). */
#include "contracts/contracts.h"
int gw_policy_check(struct gw_req *r, enum policy_action action, const char *patient, const char *record_id,
                    const char *category, struct policy_decision *dec);
/* The halves of gw_policy_check, for a route that must record the decision
 * later (an append records it just before its ehr.store entry): decide
 * without writing (same returns), then record; a decision must be recorded
 * before it is acted on, and a failed record means refuse (503). */
int gw_policy_decide(struct gw_req *r, enum policy_action action, const char *patient, const char *record_id,
                     const char *category, struct policy_decision *dec);
int gw_policy_record(struct gw_req *r, enum policy_action action, const char *patient, const char *record_id,
                     const char *category, const struct policy_decision *dec);
/* Appends the policy counters to /metrics. */
int gw_policy_metrics_render(struct ehr_buf *out);

void gw_req_set_content_type(struct gw_req *r, const char *content_type);

#endif
