/*
 * http.c - one request's life: TLS connection setup, routing, limits,
 * dispatch (inline or on the blocking pool), replies, access log, metrics.
 *
 * Threading: everything that touches libevent objects runs on the
 * connection's worker loop. A blocking handler only fills struct gw_req's
 * reply fields; gw_req_complete hands the request back to its loop through
 * a mutex-protected queue and event_active(), and the loop sends it. If the
 * client went away meanwhile, evhttp has detached the request from its
 * connection and evhttp_send_reply just frees it.
 */
#include "gateway/gw_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http_struct.h>
#include <openssl/x509.h>

#include "contracts/contracts.h"

static __thread struct gw_worker *current_worker;

struct gw_worker *gw_current_worker(void)
{
	return current_worker;
}

void gw_set_current_worker(struct gw_worker *w)
{
	current_worker = w;
}

int64_t gw_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------ connections */

static struct gw_conn *conn_of(struct evhttp_request *ev)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
	struct bufferevent *bev;
	SSL *ssl;

	if (evcon == NULL || (bev = evhttp_connection_get_bufferevent(evcon)) == NULL)
		return NULL;
	if ((ssl = bufferevent_openssl_get_ssl(bev)) == NULL)
		return NULL;
	return SSL_get_ex_data(ssl, gw_tls_conn_index());
}

/* A connection that has not delivered a complete request by its deadline
 * is shut down; evhttp then sees EOF and frees it. This bounds slowloris
 * clients that trickle bytes to defeat the per-read idle timeout. */
static void conn_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;
	int sfd = SSL_get_fd(c->ssl);

	(void)fd;
	(void)what;
	if (sfd >= 0)
		shutdown(sfd, SHUT_RDWR);
}

static void conn_arm(struct gw_conn *c, unsigned seconds)
{
	struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };

	if (c && c->deadline)
		evtimer_add(c->deadline, &tv);
}

struct bufferevent *gw_http_bevcb(struct event_base *base, void *arg)
{
	struct gw_worker *w = arg;
	struct gw_server *srv = w->srv;
	struct gw_conn *c = calloc(1, sizeof(*c));
	struct bufferevent *bev;
	SSL *ssl;
	long open;

	/* evhttp falls back to a plaintext bufferevent when this returns NULL,
	 * so failure here must abort rather than serve HTTP without TLS. */
	if (c == NULL)
		abort();
	c->srv = srv;
	pthread_mutex_lock(&srv->ctx_lock);
	ssl = SSL_new(srv->ctx);
	pthread_mutex_unlock(&srv->ctx_lock);
	if (ssl == NULL)
		abort();
	open = atomic_fetch_add(&srv->open_conns, 1) + 1;
	if (SSL_set_ex_data(ssl, gw_tls_conn_index(), c) != 1)
		abort();
	c->ssl = ssl;
	if (open > srv->max_connections || atomic_load(&srv->draining)) {
		c->refuse = true;
		atomic_fetch_add(&srv->conns_refused, 1);
	} else {
		c->deadline = evtimer_new(base, conn_deadline, c);
		conn_arm(c, srv->read_timeout_s);
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		abort();
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* ------------------------------------------------------------- requests */

static const char *method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

static void req_free(struct gw_req *r)
{
	struct gw_hdr *h, *next;

	if (r == NULL)
		return;
	gw_match_clear(&r->match);
	free(r->raw_path);
	free(r->path);
	free(r->url);
	if (r->query_parsed)
		evhttp_clear_headers(&r->query);
	X509_free(r->peer_cert);
	for (h = r->headers; h; h = next) {
		next = h->next;
		free(h->name);
		free(h->value);
		free(h);
	}
	if (r->out)
		evbuffer_free(r->out);
	free(r);
}

/*
 * One JSON line per request, in ehr_log_json's shape. Lines are batched per
 * worker and written every 100 ms or every 16 KiB (one write under the
 * logger's lock), so logging costs no syscall per request. Every field is
 * ours (method and route names, an IP, a TLS version): no escaping needed,
 * and no path, query, header or body is ever logged.
 */
static void access_log(struct gw_server *srv, struct gw_worker *w, const char *method, const char *route,
                       int status, size_t bytes, int64_t dur_us, const char *peer, const char *tls)
{
	char ts[32];

	if (!srv || !srv->access_log || ehr_log_get_level() > EHR_LOG_INFO)
		return;
	if (w == NULL) {
		ehr_log_json(EHR_LOG_INFO, "http.access",
		             json_pack("{s:s, s:s, s:i, s:I, s:f, s:s, s:s}", "method", method, "route",
		                       route, "status", status, "bytes", (json_int_t)bytes, "duration_ms",
		                       (double)dur_us / 1000.0, "peer", peer ? peer : "", "tls",
		                       tls ? tls : ""));
		return;
	}
	for (const char *p = peer; p && *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') ||
		      *p == '.' || *p == ':')) {
			peer = "?";
			break;
		}
	ehr_time_rfc3339(ts, ehr_now_ms());
	ehr_buf_printf(
	        &w->alog,
	        "{\"ts\":\"%s\",\"level\":\"info\",\"event\":\"http.access\",\"method\":\"%s\",\"route\":\"%"
	        "s\","
	        "\"status\":%d,\"bytes\":%zu,\"duration_ms\":%lld.%03lld,\"peer\":\"%s\",\"tls\":\"%s\"}\n",
	        ts, method, route, status, bytes, (long long)(dur_us / 1000), (long long)(dur_us % 1000),
	        peer ? peer : "", tls ? tls : "");
	if (w->alog.len >= 16384)
		gw_access_log_flush(w);
}

void gw_access_log_flush(struct gw_worker *w)
{
	if (w->alog.len == 0)
		return;
	ehr_log_write_lines((const char *)w->alog.data, w->alog.len);
	ehr_buf_reset(&w->alog);
}

void gw_access_log_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gw_access_log_flush(arg);
}

static void on_complete(struct evhttp_request *ev, void *arg)
{
	struct gw_server *srv = arg;
	struct gw_conn *c = conn_of(ev);

	/* The next request must arrive within idle + read timeouts. */
	if (c)
		conn_arm(c, srv->idle_timeout_s + srv->read_timeout_s);
}

/* Send r's reply on its loop thread and release it. */
static void req_finish(struct gw_req *r)
{
	struct gw_server *srv = r->srv;
	struct evkeyvalq *oh = evhttp_request_get_output_headers(r->ev);
	size_t bytes;
	int64_t dur;

	if (!r->replied) {
		ehr_logf(EHR_LOG_ERROR, "http.no_reply", "handler %s produced no reply",
		         r->route ? r->route->name : "-");
		gw_reply_error(r, 500, "internal_error", "the handler produced no reply");
	}
	evhttp_add_header(oh, "Content-Type", r->content_type[0] ? r->content_type : "application/json");
	evhttp_add_header(oh, "Cache-Control", "no-store");
	for (struct gw_hdr *h = r->headers; h; h = h->next)
		evhttp_add_header(oh, h->name, h->value);
	if (r->close || atomic_load(&srv->draining))
		evhttp_add_header(oh, "Connection", "close"); /* draining: move clients off */
	bytes = evbuffer_get_length(r->out);
	if (r->stream_start) {
		gw__stream_begin(r); /* stream.c; the reply goes on as chunks */
		goto accounted;
	}
	{
		struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
		struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
		if (evcon)
			evhttp_request_set_on_complete_cb(r->ev, on_complete, srv);
		evhttp_send_reply(r->ev, r->status, NULL, r->out);
		r->ev = NULL; /* freed by evhttp from here on */
		/* evhttp queued the head and the body as separate buffer chains,
		 * and bufferevent_openssl writes one TLS record (and one write(2))
		 * per chain once the socket is writable. Joining a small reply
		 * into one chain sends it as one record. */
		if (bev && bytes <= 16384)
			evbuffer_pullup(bufferevent_get_output(bev), -1);
	}
accounted:
	dur = gw_now_us() - r->start_us;
	gw_metrics_observe(r->w->metrics, r->route_index, r->method, r->status, dur);
	access_log(srv, r->w, r->method, r->route ? r->route->name : "unmatched", r->status, bytes, dur,
	           r->peer, r->tls_version);
	atomic_fetch_sub(&srv->inflight, 1);
	req_free(r);
}

/* ---- the blocking-job pool */

struct gw_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct gw_req *head, *tail;
	size_t depth, max;
	bool stop;
	unsigned n;
	pthread_t *threads;
};

static void run_handler(struct gw_req *r)
{
	ehr_error_clear();
	if (r->route->roles != 0) {
		int rc = gw_authenticate(r, r->route, &r->id);
		if (rc < 0) {
			/* 401/403 as gw_authenticate says; a dependency failure is
			 * not the client's fault (503/504/500); anything else is 401. */
			if (rc != EHR_ERR_AUTH && rc != EHR_ERR_FORBIDDEN && rc != EHR_ERR_UNAVAILABLE &&
			    rc != EHR_ERR_TIMEOUT && rc != EHR_ERR_NOMEM && rc != EHR_ERR_RATE)
				rc = EHR_ERR_AUTH;
			gw_reply_err(r, rc);
			return;
		}
		if (r->id.role == 0 || (r->id.role & r->route->roles) == 0) {
			gw_reply_error(r, 403, "forbidden", "this route is not open to the caller's role");
			return;
		}
	}
	r->route->fn(r);
}

/* Hand a finished request back to its loop. */
static void req_complete(struct gw_req *r)
{
	struct gw_worker *w = r->w;

	pthread_mutex_lock(&w->done_lock);
	r->next = NULL;
	if (w->done_tail)
		w->done_tail->next = r;
	else
		w->done_head = r;
	w->done_tail = r;
	pthread_mutex_unlock(&w->done_lock);
	event_active(w->done_ev, EV_READ, 1);
}

void gw_http_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;
	struct gw_req *r, *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->done_lock);
	r = w->done_head;
	w->done_head = w->done_tail = NULL;
	pthread_mutex_unlock(&w->done_lock);
	for (; r; r = next) {
		next = r->next;
		req_finish(r);
	}
}

static void *pool_main(void *arg)
{
	struct gw_pool *p = arg;

	for (;;) {
		struct gw_req *r;
		pthread_mutex_lock(&p->lock);
		while (p->head == NULL && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->head == NULL) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		r = p->head;
		p->head = r->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->depth--;
		pthread_mutex_unlock(&p->lock);
		r->next = NULL;
		run_handler(r);
		req_complete(r);
	}
}

static int pool_submit(struct gw_pool *p, struct gw_req *r)
{
	pthread_mutex_lock(&p->lock);
	if (p->depth >= p->max || p->stop) {
		pthread_mutex_unlock(&p->lock);
		return ehr_error_set(EHR_ERR_UNAVAILABLE, "the server is busy");
	}
	r->next = NULL;
	if (p->tail)
		p->tail->next = r;
	else
		p->head = r;
	p->tail = r;
	p->depth++;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int gw_pool_new(struct gw_pool **out, unsigned threads, size_t max_queue)
{
	struct gw_pool *p = calloc(1, sizeof(*p));
	pthread_attr_t attr;

	ENSURE(p != NULL, EHR_ERR_NOMEM);
	p->threads = calloc(threads, sizeof(*p->threads));
	if (p->threads == NULL) {
		free(p);
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->max = max_queue;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1u << 20);
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], &attr, pool_main, p) != 0) {
			pthread_attr_destroy(&attr);
			p->n = i;
			gw_pool_stop(p);
			return ehr_error_set(EHR_ERR_NOMEM, "cannot start blocking thread %u", i);
		}
	}
	pthread_attr_destroy(&attr);
	p->n = threads;
	*out = p;
	return 0;
}

/* Finish the queue, join every thread, free. */
void gw_pool_stop(struct gw_pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->threads);
	free(p);
}

size_t gw_pool_depth(struct gw_pool *p)
{
	size_t d;

	pthread_mutex_lock(&p->lock);
	d = p->depth;
	pthread_mutex_unlock(&p->lock);
	return d;
}

/* ---- the request callback */

static size_t header_count(struct evkeyvalq *h)
{
	struct evkeyval *kv;
	size_t n = 0;

	for (kv = h->tqh_first; kv; kv = kv->next.tqe_next)
		n++;
	return n;
}

void gw_http_gencb(struct evhttp_request *ev, void *arg)
{
	struct gw_worker *w = arg;
	struct gw_server *srv = w->srv;
	struct gw_conn *c = conn_of(ev);
	struct gw_req *r = calloc(1, sizeof(*r));
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
	char allow[128];
	const char *p;

	if (r == NULL || (r->out = evbuffer_new()) == NULL) {
		/* No memory for a reply: drop the connection. */
		free(r);
		if (evcon)
			evhttp_connection_free(evcon);
		return;
	}
	atomic_fetch_add(&srv->inflight, 1);
	r->srv = srv;
	r->w = w;
	r->ev = ev;
	r->route_index = -1;
	r->start_us = gw_now_us();
	r->method = method_name(evhttp_request_get_command(ev));
	r->peer_verify = -1;
	if (c) {
		X509 *cert;
		if (c->deadline)
			evtimer_del(c->deadline);
		r->tls_version = SSL_get_version(c->ssl);
		cert = SSL_get1_peer_certificate(c->ssl);
		if (cert) {
			r->peer_verify = SSL_get_verify_result(c->ssl);
			if (r->peer_verify == X509_V_OK)
				r->peer_cert = cert;
			else
				X509_free(cert);
		}
	}
	if (evcon) {
		char *addr = NULL;
		ev_uint16_t port = 0;
		evhttp_connection_get_peer(evcon, &addr, &port);
		snprintf(r->peer, sizeof(r->peer), "%s", addr ? addr : "");
	}
	if (header_count(evhttp_request_get_input_headers(ev)) > srv->max_headers) {
		r->close = true;
		gw_reply_error(r, 431, "headers_too_large", "more than %u header fields", srv->max_headers);
		goto finish;
	}
	p = uri ? evhttp_uri_get_path(uri) : NULL;
	if (p == NULL || *p != '/') {
		r->close = true;
		gw_reply_error(r, 400, "bad_request", "the request target must be an absolute path");
		goto finish;
	}
	r->raw_path = strdup(p);
	r->path = evhttp_uridecode(p, 0, NULL);
	r->raw_query = evhttp_uri_get_query(uri);
	if (r->raw_path == NULL || r->path == NULL) {
		gw_reply_error(r, 500, "internal_error", "out of memory");
		goto finish;
	}
	switch (gw_router_match(srv->router, r->method, r->raw_path, &r->match, allow, sizeof(allow))) {
	case GW_ROUTE_FOUND: break;
	case GW_ROUTE_BAD_METHOD:
		gw_reply_header(r, "Allow", allow);
		gw_reply_error(r, 405, "method_not_allowed", "method %s is not allowed here", r->method);
		goto finish;
	case GW_ROUTE_BAD_PATH:
		r->close = true;
		gw_reply_error(r, 400, "bad_request", "malformed path");
		goto finish;
	case GW_ROUTE_NOT_FOUND:
	default: gw_reply_error(r, 404, "not_found", "no such resource"); goto finish;
	}
	r->route = r->match.route;
	r->route_index = r->match.route_index;
	{
		struct evbuffer *in = evhttp_request_get_input_buffer(ev);
		size_t n = evbuffer_get_length(in);
		r->body_len = n;
		r->body = n ? evbuffer_pullup(in, -1) : (const uint8_t *)"";
		if (r->body == NULL) {
			gw_reply_error(r, 500, "internal_error", "out of memory");
			goto finish;
		}
	}
	if (r->route->blocking || r->route->roles != 0) {
		if (pool_submit(srv->pool, r) < 0) {
			gw_reply_header(r, "Retry-After", "1");
			gw_reply_error(r, 503, "unavailable", "the server is busy");
			goto finish;
		}
		return;
	}
	r->route->fn(r);
finish:
	req_finish(r);
}

/*
 * evhttp answers malformed requests, oversized headers/bodies and unknown
 * methods with an HTML page from evhttp_send_error(). libevent 2.1 has no
 * hook for those, and its internal calls go through the PLT, so this
 * definition takes their place: every error the HTTP layer produces is the
 * same JSON shape as ours, and the connection closes after it.
 */
void evhttp_send_error(struct evhttp_request *ev, int error, const char *reason)
{
	struct gw_worker *w = gw_current_worker();
	struct gw_server *srv = w ? w->srv : NULL;
	struct evbuffer *buf = evbuffer_new();
	const char *code, *msg;
	struct evkeyvalq *oh = evhttp_request_get_output_headers(ev);
	int status = error;

	(void)reason;
	/* evhttp reports a header block over the limit as 400 (its 413 is only
	 * for bodies). Tell them apart by how much head it has seen: past the
	 * limit it is 414 while still on the request line, else 431 (RFC 6585 §5). */
	if (status == 400 && srv && ev->uri == NULL) {
		struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
		struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
		size_t pending = bev ? evbuffer_get_length(bufferevent_get_input(bev)) : 0;
		if (ev->headers_size + pending > srv->max_header_bytes)
			status = ev->type == 0 ? 414 : 431;
	}
	/* A request line that never parsed leaves version 0.0: answer as HTTP/1.1. */
	if (ev->major != 1) {
		ev->major = 1;
		ev->minor = 1;
	}
	switch (status) {
	case 400:
		code = "bad_request";
		msg = "malformed HTTP request";
		break;
	case 404:
		code = "not_found";
		msg = "no such resource";
		break;
	case 405:
		code = "method_not_allowed";
		msg = "method not allowed";
		break;
	case 408:
		code = "timeout";
		msg = "request timeout";
		break;
	case 413:
		code = "too_large";
		msg = "request body too large";
		break;
	case 414:
		code = "uri_too_long";
		msg = "request target too long";
		break;
	case 417:
		code = "expectation_failed";
		msg = "unsupported Expect header";
		break;
	case 431:
		code = "headers_too_large";
		msg = "request header fields too large";
		break;
	case 501:
		code = "not_implemented";
		msg = "method not implemented";
		break;
	case 503:
		code = "unavailable";
		msg = "service unavailable";
		break;
	case 505:
		code = "version_not_supported";
		msg = "HTTP version not supported";
		break;
	default:
		if (status < 400 || status > 599)
			status = 400;
		code = status >= 500 ? "internal_error" : "bad_request";
		msg = "request refused";
		break;
	}
	if (buf == NULL) {
		if (evhttp_request_get_connection(ev))
			evhttp_connection_free(evhttp_request_get_connection(ev));
		return;
	}
	evbuffer_add_printf(buf, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
	evhttp_remove_header(oh, "Content-Type");
	evhttp_add_header(oh, "Content-Type", "application/json");
	evhttp_add_header(oh, "Cache-Control", "no-store");
	evhttp_remove_header(oh, "Connection");
	evhttp_add_header(oh, "Connection", "close");
	if (srv && w) {
		const char *m = ev->type ? method_name(ev->type) : "OTHER";
		gw_metrics_observe(w->metrics, -1, m, status, 0);
		access_log(srv, w, m, "unmatched", status, evbuffer_get_length(buf), 0, ev->remote_host,
		           NULL);
	}
	evhttp_send_reply(ev, status, NULL, buf);
	evbuffer_free(buf);
}

/* ------------------------------------------------------ handler-facing API */

const char *gw_req_method(const struct gw_req *r)
{
	return r->method;
}

const char *gw_req_path(const struct gw_req *r)
{
	return r->path ? r->path : "";
}

const char *gw_req_param(const struct gw_req *r, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < r->match.nparams; i++)
		if (r->match.params[i].name_len == n &&
		    memcmp(r->match.params[i].name, name, n) == 0) /* not secret */
			return r->match.params[i].value;
	return NULL;
}

const char *gw_req_query(const struct gw_req *r, const char *name)
{
	struct gw_req *m = (struct gw_req *)r; /* lazily parsed cache */

	if (!m->query_parsed) {
		m->query.tqh_first = NULL;
		m->query.tqh_last = &m->query.tqh_first;
		m->query_parsed = true;
		if (m->raw_query && evhttp_parse_query_str(m->raw_query, &m->query) != 0) {
			evhttp_clear_headers(&m->query);
			m->query.tqh_first = NULL;
			m->query.tqh_last = &m->query.tqh_first;
		}
	}
	return evhttp_find_header(&m->query, name);
}

const char *gw_req_header(const struct gw_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

const uint8_t *gw_req_body(const struct gw_req *r, size_t *len)
{
	*len = r->body_len;
	return r->body;
}

const char *gw_req_peer(const struct gw_req *r)
{
	return r->peer;
}

const struct gw_identity *gw_req_identity(const struct gw_req *r)
{
	return &r->id;
}

/* [server] public_url when set, else https://<Host header>, else the listener. */
const char *gw_req_url(const struct gw_req *r)
{
	struct gw_req *m = (struct gw_req *)r;
	const char *pub = gw_config_get(r->srv->cfg, "server", "public_url");
	const char *host = gw_req_header(r, "Host");
	struct ehr_buf b = EHR_BUF_INIT(8192);
	bool host_ok = host && *host && strlen(host) < 256;

	if (m->url)
		return m->url;
	for (const char *p = host; host_ok && *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '-' || *p == ':' || *p == '[' || *p == ']'))
			host_ok = false;
	if (pub && *pub)
		ehr_buf_printf(&b, "%s%s", pub, r->raw_path ? r->raw_path : "/");
	else if (host_ok)
		ehr_buf_printf(&b, "https://%s%s", host, r->raw_path ? r->raw_path : "/");
	else
		ehr_buf_printf(&b, "%s%s", r->srv->base_url, r->raw_path ? r->raw_path : "/");
	m->url = (char *)ehr_buf_detach(&b, NULL);
	return m->url ? m->url : "";
}

void *gw_req_peer_cert(const struct gw_req *r)
{
	return r->peer_cert;
}

long gw_req_peer_verify(const struct gw_req *r)
{
	return r->peer_verify;
}

struct gw_app *gw_req_app(const struct gw_req *r)
{
	return r->srv->app;
}

void gw_reply_header(struct gw_req *r, const char *name, const char *value)
{
	struct gw_hdr *h;

	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return;
	h->name = strdup(name);
	h->value = strdup(value);
	if (h->name == NULL || h->value == NULL) {
		free(h->name);
		free(h->value);
		free(h);
		return;
	}
	h->next = r->headers;
	r->headers = h;
}

static bool reply_begin(struct gw_req *r, int status)
{
	if (r->replied) {
		ehr_logf(EHR_LOG_ERROR, "http.double_reply", "route %s replied twice",
		         r->route ? r->route->name : "-");
		return false;
	}
	r->replied = true;
	r->status = (status >= 100 && status <= 599) ? status : 500;
	evbuffer_drain(r->out, evbuffer_get_length(r->out));
	return true;
}

/* Copy the content type into the request: the reply is sent after the
 * handler returns, so a pointer into the handler's stack or rows would
 * dangle. One that does not fit, or holds a control character, becomes
 * application/octet-stream. */
void gw_req_set_content_type(struct gw_req *r, const char *content_type)
{
	size_t n = content_type ? strlen(content_type) : 0;
	bool ok = n < sizeof(r->content_type);

	r->content_type[0] = '\0';
	if (content_type == NULL)
		return;
	for (size_t i = 0; ok && i < n; i++)
		ok = (unsigned char)content_type[i] >= 0x20 && content_type[i] != 0x7f;
	if (!ok) {
		content_type = "application/octet-stream";
		n = strlen(content_type);
	}
	memcpy(r->content_type, content_type, n + 1);
}

void gw_reply_bytes(struct gw_req *r, int status, const char *content_type, const void *data, size_t len)
{
	if (!reply_begin(r, status))
		return;
	gw_req_set_content_type(r, content_type);
	if (len && evbuffer_add(r->out, data, len) != 0) {
		r->status = 500;
		r->content_type[0] = '\0';
		evbuffer_drain(r->out, evbuffer_get_length(r->out));
		evbuffer_add_printf(
		        r->out, "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\"}}");
	}
}

void gw_reply_json(struct gw_req *r, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (text == NULL) {
		gw_reply_error(r, 500, "internal_error", "cannot encode the reply");
		return;
	}
	gw_reply_bytes(r, status, "application/json", text, strlen(text));
	free(text);
}

void gw_reply_error(struct gw_req *r, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *j;
	char *text;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (text == NULL) {
		static const char oom[] =
		        "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\"}}";
		gw_reply_bytes(r, 500, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	gw_reply_bytes(r, status, "application/json", text, strlen(text));
	free(text);
}

void gw_reply_err(struct gw_req *r, int err)
{
	int status;
	bool show = true;

	switch (err) {
	case EHR_ERR_INVAL:
	case EHR_ERR_PARSE:
	case EHR_ERR_OVERFLOW: status = 400; break;
	case EHR_ERR_AUTH:
	case EHR_ERR_EXPIRED:
	case EHR_ERR_REPLAY: status = 401; break;
	case EHR_ERR_FORBIDDEN: status = 403; break;
	case EHR_ERR_NOT_FOUND: status = 404; break;
	case EHR_ERR_EXISTS:
	case EHR_ERR_CONFLICT: status = 409; break;
	case EHR_ERR_TOO_LARGE: status = 413; break;
	case EHR_ERR_RATE: status = 429; break;
	case EHR_ERR_UNAVAILABLE:
		status = 503;
		show = false;
		break;
	case EHR_ERR_TIMEOUT:
		status = 504;
		show = false;
		break;
	case EHR_ERR_TAMPER: status = 500; break;
	default:
		status = 500;
		show = false;
		break;
	}
	if (!show) {
		/* 5xx details may describe internals: log them, answer generically. */
		ehr_logf(EHR_LOG_ERROR, "http.error", "route %s: %s: %s", r->route ? r->route->name : "-",
		         ehr_err_name(err), ehr_error_msg());
		gw_reply_error(r, status, ehr_err_name(err), "%s",
		               status == 503 ? "a dependency is unavailable; retry later" : "internal error");
		return;
	}
	gw_reply_error(r, status, ehr_err_name(err), "%s",
	               *ehr_error_msg() ? ehr_error_msg() : ehr_err_name(err));
}
