/*
 * http.c - one request's life: routing, dispatch (inline or on the
 * blocking pool), the handler-facing request and reply API, access log and
 * metrics. The connection and its HTTP/1.1 framing are conn.c's.
 *
 * Threading: a blocking handler only fills struct gw_req's reply fields (or
 * streams through conn.c); req_complete hands the request back to its loop
 * through a mutex-protected queue and event_active(), and the loop sends
 * it. If the client went away meanwhile, conn.c drops the reply.
 */
#include "gateway/http/http_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <openssl/x509.h>

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

/* ------------------------------------------------------------- requests */

/* 16 hex digits: the worker's next id (server.c starts each worker at a
 * random point). Ids must be unique in the logs, not secret; only the
 * worker's loop thread creates requests, so no lock is needed. */
static void req_id_new(struct gw_worker *w, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t v = w->next_req_id++;

	for (int i = 15; i >= 0; i--, v >>= 4)
		out[i] = hex[v & 15];
	out[16] = '\0';
}

struct gw_req *gw_req_new(struct gw_worker *w, struct gw_conn *c)
{
	struct gw_req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	/* The streaming buffers (in, sout) are made only when a route streams. */
	if ((r->out = evbuffer_new()) == NULL) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	atomic_fetch_add(&w->srv->inflight, 1);
	r->srv = w->srv;
	r->w = w;
	r->conn = c;
	r->route_index = -1;
	r->start_us = gw_now_us();
	r->method = "OTHER";
	r->peer_verify = -1;
	if (ehr_str_copy(r->peer, sizeof(r->peer), gw_conn_peer(c)) < 0)
		memcpy(r->peer, "?", 2);
	req_id_new(w, r->req_id);
	return r;
}

void gw_req_free(struct gw_req *r)
{
	struct gw_hdr *h, *next;

	if (r == NULL)
		return;
	gw_match_clear(&r->match);
	free(r->raw_path);
	free(r->path);
	free(r->url);
	free(r->head);
	gw__query_free(r);
	X509_free(r->peer_cert);
	for (h = r->headers; h; h = next) {
		next = h->next;
		free(h->name);
		free(h->value);
		free(h);
	}
	if (r->body_buf)
		evbuffer_free(r->body_buf);
	evbuffer_free(r->out);
	if (r->sout)
		evbuffer_free(r->sout);
	if (r->in)
		evbuffer_free(r->in);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}

/*
 * One JSON line per request, in ehr_log_json's shape. Lines are batched per
 * worker and written every 100 ms or every 16 KiB (one write under the
 * logger's lock), so logging costs no syscall per request. Every field is
 * ours (method and route names, an IP, a TLS version): no escaping needed,
 * and no path, query, header or body is ever logged.
 */
static void access_log(struct gw_server *srv, struct gw_worker *w, const struct gw_req *r, const char *route,
                       size_t bytes, int64_t dur_us)
{
	const char *method = r->method, *peer = r->peer, *tls = r->tls_version;
	int status = r->status;
	char ts[32];

	if (!srv || !srv->access_log || ehr_log_get_level() > EHR_LOG_INFO)
		return;
	if (w == NULL) {
		ehr_log_json(EHR_LOG_INFO, "http.access",
		             json_pack("{s:s, s:s, s:i, s:I, s:f, s:s, s:s, s:s}", "method", method, "route",
		                       route, "status", status, "bytes", (json_int_t)bytes, "duration_ms",
		                       (double)dur_us / 1000.0, "peer", peer ? peer : "", "tls",
		                       tls ? tls : "", "request_id", r->req_id));
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
	        "\"status\":%d,\"bytes\":%zu,\"duration_ms\":%lld.%03lld,\"peer\":\"%s\",\"tls\":\"%s\","
	        "\"request_id\":\"%s\"}\n",
	        ts, method, route, status, bytes, (long long)(dur_us / 1000), (long long)(dur_us % 1000),
	        peer ? peer : "", tls ? tls : "", r->req_id);
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

void gw_req_done(struct gw_req *r, size_t bytes)
{
	struct gw_server *srv = r->srv;
	int64_t dur = gw_now_us() - r->start_us;

	gw_metrics_observe(r->w->metrics, r->route_index, r->method, r->status, dur);
	access_log(srv, r->w, r, r->route ? r->route->name : "unmatched", bytes, dur);
	atomic_fetch_sub(&srv->inflight, 1);
	gw_req_free(r);
}

/* Send r's reply on its loop thread and release it. */
static void req_finish(struct gw_req *r)
{
	if (!r->replied) {
		ehr_logf(EHR_LOG_ERROR, "http.no_reply", "handler %s produced no reply",
		         r->route ? r->route->name : "-");
		gw_reply_error(r, 500, "internal_error", "the handler produced no reply");
	}
	if (r->stream_start) {
		gw__stream_begin(r); /* stream.c; the reply goes on as chunks */
		return;
	}
	gw_conn_finish(r);
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
	/* The application's gate authenticates (gw_http_options.gate); on a
	 * refusal it has replied. */
	if (r->route->roles != 0 && r->srv->opt->gate(r) != 0)
		return;
	if (!(r->route->flags & GW_CHECK_IN_HANDLER) && gw__req_check(r) != 0)
		return;
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

/* ---- routing and dispatch */

void gw_http_refuse(struct gw_req *r, int status, const char *code, const char *msg)
{
	gw_reply_error(r, status, code, "%s", msg);
	req_finish(r);
}

/* Refuse before the body was read: the connection must close after it. */
static int route_refuse(struct gw_req *r, int status, const char *code, const char *msg)
{
	if (gw_h1_has_body(&r->h1))
		r->close = true;
	gw_http_refuse(r, status, code, msg);
	return 1;
}

int gw_http_route(struct gw_req *r)
{
	struct gw_server *srv = r->srv;
	char allow[128];
	char *q;

	r->method = r->h1.method;
	r->is_head = strcmp(r->method, "HEAD") == 0;
	q = strchr(r->h1.target, '?');
	r->raw_path = q ? strndup(r->h1.target, (size_t)(q - r->h1.target)) : strdup(r->h1.target);
	r->raw_query = q ? q + 1 : NULL;
	r->path = r->raw_path ? evhttp_uridecode(r->raw_path, 0, NULL) : NULL;
	if (r->raw_path == NULL || r->path == NULL)
		return route_refuse(r, 500, "internal_error", "out of memory");
	switch (gw_router_match(srv->router, r->method, r->raw_path, &r->match, allow, sizeof(allow))) {
	case GW_ROUTE_FOUND: break;
	case GW_ROUTE_BAD_METHOD: {
		char msg[64];
		gw_reply_header(r, "Allow", allow);
		if (ehr_fmt(msg, sizeof(msg), "method %s is not allowed here", r->method) < 0)
			memcpy(msg, "method not allowed", sizeof("method not allowed"));
		return route_refuse(r, 405, "method_not_allowed", msg);
	}
	case GW_ROUTE_BAD_PATH: r->close = true; return route_refuse(r, 400, "bad_request", "malformed path");
	case GW_ROUTE_NOT_FOUND:
	default: return route_refuse(r, 404, "not_found", "no such resource");
	}
	r->route = r->match.route;
	r->route_index = r->match.route_index;
	return 0;
}

void gw_http_dispatch(struct gw_req *r)
{
	if ((r->route->flags & (GW_BLOCKING | GW_STREAM_BODY)) || r->route->roles != 0) {
		if (pool_submit(r->srv->pool, r) < 0) {
			gw_reply_header(r, "Retry-After", "1");
			gw_reply_error(r, 503, "unavailable", "the server is busy");
			req_finish(r);
		}
		return;
	}
	if ((r->route->flags & GW_CHECK_IN_HANDLER) || gw__req_check(r) == 0)
		r->route->fn(r);
	req_finish(r);
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

const char *gw_req_raw_query(const struct gw_req *r)
{
	return r->raw_query;
}

int gw_req_reply_status(const struct gw_req *r)
{
	return r->replied ? r->status : 0;
}

const char *gw_req_header(const struct gw_req *r, const char *name)
{
	return gw_h1_field(&r->h1, name);
}

const uint8_t *gw_req_body(const struct gw_req *r, size_t *len)
{
	*len = r->body_len;
	return r->body ? r->body : (const uint8_t *)"";
}

int64_t gw_req_body_length(const struct gw_req *r)
{
	if (r->h1.chunked)
		return -1;
	return r->h1.content_length > 0 ? r->h1.content_length : 0;
}

const char *gw_req_peer(const struct gw_req *r)
{
	return r->peer;
}

const char *gw_req_id(const struct gw_req *r)
{
	return r->req_id;
}

const struct gw_route *gw_req_route(const struct gw_req *r)
{
	return r->route;
}

const struct gw_identity *gw_req_identity(const struct gw_req *r)
{
	return &r->id;
}

/* [server] public_url when set, else https://<Host header>, else the listener. */
const char *gw_req_url(const struct gw_req *r)
{
	struct gw_req *m = (struct gw_req *)r;
	const char *pub = r->srv->opt->public_url;
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

void *gw_req_userdata(const struct gw_req *r)
{
	return r->srv->opt->app;
}

void gw_req_set_identity(struct gw_req *r, const struct gw_identity *id)
{
	r->id = *id;
}

/* Headers the engine writes itself (gw_conn_head): a handler never adds
 * them, so no reply carries one twice or disagrees about framing. */
static bool engine_header(const char *name)
{
	static const char *const own[] = { "Date",           "Content-Type",
		                           "Content-Length", "Transfer-Encoding",
		                           "Connection",     "X-Request-Id" };

	for (size_t i = 0; i < EHR_ARRAY_LEN(own); i++)
		if (strcasecmp(name, own[i]) == 0)
			return true;
	return false;
}

/* One value per header name: a second call for a name replaces the
 * first (names compare case-insensitively, RFC 9110 §5.1). */
void gw_reply_header(struct gw_req *r, const char *name, const char *value)
{
	struct gw_hdr *h;
	char *v;

	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return;
	if (engine_header(name)) {
		ehr_logf(EHR_LOG_ERROR, "http.reply_header", "route %s set the engine's header %s",
		         r->route ? r->route->name : "-", name);
		return;
	}
	for (h = r->headers; h; h = h->next)
		if (strcasecmp(h->name, name) == 0) {
			if ((v = strdup(value)) != NULL) {
				free(h->value);
				h->value = v;
			}
			return;
		}
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
	char msg[1024];
	va_list ap;
	json_t *j;
	char *text;
	int rc;

	va_start(ap, fmt);
	rc = ehr_vfmt(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rc < 0) /* never a cut message: a generic one */
		memcpy(msg, "request refused", sizeof("request refused"));
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
