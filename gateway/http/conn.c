/*
 * conn.c - one TLS connection: HTTP/1.1 framing (h1.c), request bodies
 * buffered or streamed, replies buffered or streamed, keep-alive, limits,
 * timeouts and a lingering close.
 *
 * A connection serves one request at a time: while a request runs, bytes of
 * a pipelined next one wait in the input buffer, which bufferevent bounds
 * with a read high-water mark. Everything here runs on the worker's loop
 * thread except the handler-facing streaming calls at the end
 * (gw_req_body_read, gw_reply_start/write/end), which run on a blocking-pool
 * thread and meet the loop under the request's lock:
 *
 *   body:  loop moves input -> r->in (at most GW_BODY_WINDOW), broadcast;
 *          handler takes from r->in, wakes the loop to move more.
 *   reply: handler appends framed bytes to r->out, waits while r->queued
 *          (r->out plus the socket's output buffer) > GW_REPLY_WINDOW;
 *          the loop moves r->out to the socket and, as the output drains,
 *          updates r->queued and broadcasts.
 *
 * A connection outlives its request: when the client goes away mid-request
 * the socket is closed at once (r->gone tells the handler), and the
 * connection object is freed when the request finishes.
 */
#include "gateway/http/http_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>

enum conn_state {
	CS_HEAD,    /* waiting for (the rest of) a request head */
	CS_BODY,    /* reading a buffered route's body */
	CS_RUN,     /* the request runs; a streamed body may still arrive */
	CS_STREAM,  /* an event stream owns the connection (stream.c) */
	CS_CLOSING, /* flushing the last reply, then lingering */
};

/* Bytes bufferevent reads ahead before it stops reading. */
#define CONN_READ_AHEAD (256u * 1024)
/* How long a closing connection waits for the client's FIN. */
#define CONN_LINGER_S 2

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
	bool refuse; /* over max_connections: the handshake fails */
	bool abort;  /* close without close_notify (an aborted reply) */
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

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void try_head(struct gw_conn *c);

/* ------------------------------------------------------------- lifetime */

static void conn_free(struct gw_conn *c)
{
	struct gw_worker *w = c->w;

	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->bev)
		bufferevent_free(c->bev); /* frees the SSL and closes the socket */
	if (c->deadline)
		event_free(c->deadline);
	if (c->wake)
		event_free(c->wake);
	if (c->linger)
		event_free(c->linger);
	atomic_fetch_sub(&c->srv->open_conns, 1);
	free(c);
}

/* Close the socket now; the object stays while a request or stream holds it. */
static void conn_drop(struct gw_conn *c)
{
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->ssl = NULL; /* freed with it */
	}
	if (c->req == NULL && c->stream == NULL)
		conn_free(c);
}

static void linger_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_drop(arg);
}

/*
 * The reply is all in the output buffer: send close_notify and a FIN, then
 * read and discard until the client closes (or CONN_LINGER_S), so bytes it
 * still sends cannot make the kernel reset the connection and destroy the
 * reply's tail in flight (RFC 9112 §9.6).
 */
static void linger_begin(struct gw_conn *c)
{
	struct timeval tv = { CONN_LINGER_S, 0 };
	int fd = bufferevent_getfd(c->bev);

	if (!c->abort) {
		(void)SSL_shutdown(c->ssl);
		ERR_clear_error();
	}
	if (fd >= 0)
		shutdown(fd, SHUT_WR);
	bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_enable(c->bev, EV_READ);
	if (c->linger == NULL)
		c->linger = evtimer_new(c->w->base, linger_done, c);
	if (c->linger == NULL) {
		conn_drop(c);
		return;
	}
	evtimer_add(c->linger, &tv);
}

/* Flush what is queued, then linger and close. */
static void conn_close_after_flush(struct gw_conn *c)
{
	c->state = CS_CLOSING;
	if (c->deadline)
		evtimer_del(c->deadline);
	if (c->bev == NULL) {
		conn_drop(c);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		linger_begin(c);
	else
		bufferevent_enable(c->bev, EV_WRITE); /* conn_write_cb goes on */
}

static void conn_arm(struct gw_conn *c, unsigned seconds)
{
	struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };

	if (c->deadline)
		evtimer_add(c->deadline, &tv);
}

/* A request still reading its buffered body was never dispatched: no
 * handler holds it, so it ends here, with no reply. */
static void drop_undispatched(struct gw_conn *c)
{
	if (c->req == NULL || c->state != CS_BODY)
		return;
	gw_req_free(c->req);
	atomic_fetch_sub(&c->srv->inflight, 1);
	c->req = NULL;
}

/* An event stream's client is gone (or the loop stopped): close the socket
 * and tell the owner, who ends the stream and so frees c. */
static void stream_gone(struct gw_conn *c)
{
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->ssl = NULL; /* freed with it */
	}
	gw__stream_closed(c->stream);
}

/* A connection that has not delivered a complete request (head, and a
 * buffered body) by its deadline is closed: this bounds slowloris clients
 * that trickle bytes to defeat the per-read idle timeout. */
static void conn_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == CS_HEAD || c->state == CS_BODY) {
		drop_undispatched(c);
		conn_drop(c);
	}
}

static void wake_cb(evutil_socket_t fd, short what, void *arg);

void gw_conn_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct gw_worker *w = arg;
	struct gw_server *srv = w->srv;
	struct gw_conn *c = calloc(1, sizeof(*c));
	struct timeval idle = { .tv_sec = srv->idle_timeout_s, .tv_usec = 0 };
	long open;

	(void)l;
	(void)salen;
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	open = atomic_fetch_add(&srv->open_conns, 1) + 1;
	c->srv = srv;
	c->w = w;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->peer, sizeof(c->peer));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, c->peer, sizeof(c->peer));
	pthread_mutex_lock(&srv->ctx_lock);
	c->ssl = SSL_new(srv->ctx);
	pthread_mutex_unlock(&srv->ctx_lock);
	if (c->ssl == NULL || SSL_set_ex_data(c->ssl, gw_tls_conn_index(), c) != 1) {
		evutil_closesocket(fd);
		if (c->ssl)
			SSL_free(c->ssl);
		c->ssl = NULL;
		conn_free(c);
		return;
	}
	if (open > srv->max_connections || atomic_load(&srv->draining)) {
		c->refuse = true; /* the ClientHello callback fails the handshake */
		atomic_fetch_add(&srv->conns_refused, 1);
	}
	c->deadline = evtimer_new(w->base, conn_deadline, c);
	c->wake = event_new(w->base, -1, 0, wake_cb, c);
	c->bev = bufferevent_openssl_socket_new(w->base, fd, c->ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                        BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		SSL_free(c->ssl);
		c->ssl = NULL;
		conn_free(c);
		return;
	}
	if (c->deadline == NULL || c->wake == NULL) {
		conn_drop(c);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_READ_AHEAD);
	bufferevent_setwatermark(c->bev, EV_WRITE, GW_REPLY_WINDOW / 2, 0);
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_arm(c, srv->read_timeout_s);
}

const char *gw_conn_peer(const struct gw_conn *c)
{
	return c->peer;
}

bool gw_conn_refused(const struct gw_conn *c)
{
	return c->refuse;
}

/* Loop stopped: close what is left. A connection whose request still runs
 * (the drain timed out) is left alone: its handler may still touch it. */
void gw_conn_close_all(struct gw_worker *w)
{
	struct gw_conn *c = w->conns, *next;

	for (; c; c = next) {
		next = c->next;
		if (c->req)
			continue;
		if (c->stream) {
			stream_gone(c);
			continue;
		}
		conn_drop(c);
	}
}

/* ---------------------------------------------------------------- replies */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
	}
}

/* The Date field value, cached per thread for the current second. */
static const char *http_date(void)
{
	static __thread char buf[40];
	static __thread time_t at;
	time_t now = time(NULL);

	if (now != at || buf[0] == '\0') {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		at = now;
	}
	return buf;
}

/* Must the connection close after r's reply? body_unread: the request's
 * body has not all been read, so the next request cannot be found. */
static bool must_close(const struct gw_req *r, bool body_unread)
{
	return r->close || r->h1.close || atomic_load(&r->srv->draining) || body_unread;
}

/* A reply head is built in one stack buffer and added once: the common
 * small head costs one copy, not one evbuffer chain per line. */
struct headbuf {
	struct evbuffer *out;
	size_t n;
	char buf[2048];
};

static void head_add(struct headbuf *hb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void head_add(struct headbuf *hb, const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(hb->buf + hb->n, sizeof(hb->buf) - hb->n, fmt, ap);
	va_end(ap);
	if (k >= 0 && (size_t)k < sizeof(hb->buf) - hb->n) {
		hb->n += (size_t)k;
		return;
	}
	/* does not fit: flush, then add this line on its own */
	evbuffer_add(hb->out, hb->buf, hb->n);
	hb->n = 0;
	va_start(ap, fmt);
	evbuffer_add_vprintf(hb->out, fmt, ap);
	va_end(ap);
}

void gw_conn_head(struct gw_req *r, struct evbuffer *out, int64_t length)
{
	bool body_allowed = !(r->status == 204 || r->status == 304 || r->status < 200);
	struct headbuf hb;

	hb.out = out;
	hb.n = 0;
	head_add(&hb, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nCache-Control: no-store\r\n",
	         r->status, reason_phrase(r->status), http_date(),
	         r->content_type[0] ? r->content_type : "application/json");
	for (struct gw_hdr *h = r->headers; h; h = h->next)
		head_add(&hb, "%s: %s\r\n", h->name, h->value);
	if (body_allowed && length >= 0)
		head_add(&hb, "Content-Length: %lld\r\n", (long long)length);
	else if (body_allowed)
		head_add(&hb, "Transfer-Encoding: chunked\r\n");
	head_add(&hb, "%s\r\n", r->close ? "Connection: close\r\n" : "");
	evbuffer_add(out, hb.buf, hb.n);
}

/* Move the handler's reply bytes to the socket (loop thread). */
static void move_reply(struct gw_conn *c, struct gw_req *r)
{
	pthread_mutex_lock(&r->lock);
	if (r->sout && c->bev && evbuffer_get_length(r->sout) > 0)
		evbuffer_add_buffer(bufferevent_get_output(c->bev), r->sout);
	else if (r->sout && c->bev == NULL)
		evbuffer_drain(r->sout, evbuffer_get_length(r->sout));
	r->queued = c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void next_request(struct gw_conn *c)
{
	c->state = CS_HEAD;
	c->scanned = 0;
	conn_arm(c, c->srv->idle_timeout_s + c->srv->read_timeout_s);
	bufferevent_enable(c->bev, EV_READ);
	/* A pipelined request may already be buffered: serve it from the loop,
	 * not from here, so a burst of them cannot recurse. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		c->next_due = true;
		event_active(c->wake, EV_READ, 1);
	}
}

void gw_conn_finish(struct gw_req *r)
{
	struct gw_conn *c = r->conn;
	size_t bytes;
	bool closing;

	if (c->bev == NULL) { /* the client went away */
		bytes = (size_t)r->sent;
		c->req = NULL;
		gw_req_done(r, bytes);
		conn_drop(c);
		return;
	}
	if (r->streamed) {
		move_reply(c, r);
		bytes = (size_t)r->sent;
		if (r->aborted)
			c->abort = true;
		closing = r->close || r->aborted || c->reading_body;
	} else {
		struct evbuffer *out = bufferevent_get_output(c->bev);
		move_reply(c, r); /* a 100 Continue may still wait there */
		bytes = evbuffer_get_length(r->out);
		r->close = must_close(r, c->reading_body);
		gw_conn_head(r, out, (int64_t)bytes);
		if (!r->is_head)
			evbuffer_add_buffer(out, r->out);
		/* bufferevent_openssl writes one TLS record (and one write(2)) per
		 * buffer chain: a small reply joined into one goes out as one. */
		if (evbuffer_get_length(out) <= 16384)
			evbuffer_pullup(out, -1);
		closing = r->close;
	}
	c->req = NULL;
	c->reading_body = false;
	gw_req_done(r, bytes);
	if (closing)
		conn_close_after_flush(c);
	else
		next_request(c);
}

/* The core refuses a request before routing finished: answer and close. */
static void refuse(struct gw_conn *c, struct gw_req *r, int status, const char *code, const char *msg)
{
	r->close = true;
	c->reading_body = false;
	gw_http_refuse(r, status, code, msg);
}

/* ------------------------------------------------------------- request body */

/* A buffered body is complete: run the request. */
static void body_complete(struct gw_conn *c, struct gw_req *r)
{
	c->reading_body = false;
	c->state = CS_RUN;
	if (c->deadline)
		evtimer_del(c->deadline);
	r->body_len = evbuffer_get_length(r->body_buf);
	r->body = r->body_len ? evbuffer_pullup(r->body_buf, -1) : (const uint8_t *)"";
	if (r->body == NULL) {
		refuse(c, r, 500, "internal_error", "out of memory");
		return;
	}
	gw_http_dispatch(r);
}

/* Room left in the destination of body bytes. */
static size_t body_room(struct gw_conn *c, struct gw_req *r)
{
	size_t have;

	if (c->state == CS_BODY) {
		have = evbuffer_get_length(r->body_buf);
		return have > c->srv->max_body_bytes ? 0 : (size_t)(c->srv->max_body_bytes - have) + 1;
	}
	pthread_mutex_lock(&r->lock);
	have = evbuffer_get_length(r->in);
	if (have >= GW_BODY_WINDOW)
		r->in_full = true; /* the handler wakes the loop when it made room */
	pthread_mutex_unlock(&r->lock);
	return have >= GW_BODY_WINDOW ? 0 : GW_BODY_WINDOW - have;
}

static void body_move(struct gw_conn *c, struct gw_req *r, struct evbuffer *in, size_t n)
{
	if (c->state == CS_BODY) {
		evbuffer_remove_buffer(in, r->body_buf, n);
		return;
	}
	pthread_mutex_lock(&r->lock);
	evbuffer_remove_buffer(in, r->in, n);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void body_fail(struct gw_conn *c, struct gw_req *r, int err)
{
	c->reading_body = false;
	if (c->state == CS_BODY) {
		if (err == EHR_ERR_TOO_LARGE)
			refuse(c, r, 413, "too_large", "request body too large");
		else
			refuse(c, r, 400, "bad_request", "malformed chunked body");
		return;
	}
	pthread_mutex_lock(&r->lock);
	r->in_err = err;
	r->close = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void body_end(struct gw_conn *c, struct gw_req *r)
{
	if (c->state == CS_BODY) {
		body_complete(c, r);
		return;
	}
	c->reading_body = false;
	pthread_mutex_lock(&r->lock);
	r->in_done = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* Move body bytes out of the input buffer, as far as there is room. */
static void pump_body(struct gw_conn *c)
{
	struct gw_req *r = c->req;
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (c->reading_body) {
		size_t len = evbuffer_get_length(in), room = body_room(c, r);

		if (c->state == CS_BODY && room == 0) {
			body_fail(c, r, EHR_ERR_TOO_LARGE);
			return;
		}
		if (!c->body_chunked) {
			size_t n = len < c->body_left ? len : (size_t)c->body_left;
			if (n > room)
				n = room;
			if (n == 0 && c->body_left > 0)
				return; /* wait for bytes, or for room */
			body_move(c, r, in, n);
			c->body_left -= n;
			if (c->body_left == 0)
				body_end(c, r);
			continue;
		}
		{
			struct evbuffer_iovec v;
			size_t framing = 0, payload = 0;
			int rc;

			if (len == 0 || room == 0 || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				return;
			rc = gw_h1_chunked_step(&c->ck, v.iov_base, v.iov_len < room ? v.iov_len : room,
			                        &framing, &payload);
			if (rc < 0) {
				body_fail(c, r, EHR_ERR_PARSE);
				return;
			}
			evbuffer_drain(in, framing);
			if (payload)
				body_move(c, r, in, payload);
			if (rc == 1)
				body_end(c, r);
			else if (framing == 0 && payload == 0)
				return;
		}
	}
}

/* ------------------------------------------------------------- request head */

/* The error code of a status the head parser (or its size limit) gives. */
static const char *head_error_code(int status)
{
	switch (status) {
	case 414: return "uri_too_long";
	case 417: return "expectation_failed";
	case 431: return "headers_too_large";
	case 501: return "not_implemented";
	case 505: return "version_not_supported";
	default: return "bad_request";
	}
}

/* A head too large to parse: refuse it without a parsed request. */
static void head_refuse(struct gw_conn *c, int status, const char *why)
{
	struct gw_req *r = gw_req_new(c->w, c);

	if (r == NULL) {
		conn_drop(c);
		return;
	}
	c->req = r;
	c->state = CS_RUN;
	refuse(c, r, status, head_error_code(status), why);
}

static void begin_body(struct gw_conn *c, struct gw_req *r)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	bool streaming = r->route && (r->route->flags & GW_STREAM_BODY);

	c->body_chunked = r->h1.chunked;
	c->body_left = r->h1.content_length > 0 ? (uint64_t)r->h1.content_length : 0;
	c->reading_body = gw_h1_has_body(&r->h1);
	memset(&c->ck, 0, sizeof(c->ck));
	if (streaming && ((r->in = evbuffer_new()) == NULL || (r->sout = evbuffer_new()) == NULL)) {
		c->reading_body = false;
		refuse(c, r, 500, "internal_error", "out of memory");
		return;
	}
	if (!c->reading_body) {
		c->state = CS_RUN;
		if (c->deadline)
			evtimer_del(c->deadline);
		if (streaming)
			r->in_done = true;
		else
			r->body = (const uint8_t *)"";
		gw_http_dispatch(r);
		return;
	}
	if (streaming) {
		/* Run at once; the handler reads while the body arrives. Its first
		 * read sends 100 Continue (after authentication). */
		c->state = CS_RUN;
		if (c->deadline)
			evtimer_del(c->deadline);
		gw_http_dispatch(r);
		if (c->req == r && c->reading_body && c->bev)
			pump_body(c);
		return;
	}
	if (r->h1.content_length > 0 && (uint64_t)r->h1.content_length > c->srv->max_body_bytes) {
		refuse(c, r, 413, "too_large", "request body too large");
		return;
	}
	if ((r->body_buf = evbuffer_new()) == NULL) {
		refuse(c, r, 500, "internal_error", "out of memory");
		return;
	}
	c->state = CS_BODY;
	if (r->h1.expect_continue)
		bufferevent_write(c->bev, cont, sizeof(cont) - 1);
	pump_body(c);
}

static void try_head(struct gw_conn *c)
{
	struct gw_server *srv = c->srv;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t len = evbuffer_get_length(in), look, end, nf, off;
	const uint8_t *buf;
	struct gw_h1_field *fields;
	struct gw_req *r;
	const char *why;
	int st;

	if (len == 0)
		return;
	look = len < srv->max_header_bytes + 3 ? len : srv->max_header_bytes + 3;
	if ((buf = evbuffer_pullup(in, (ev_ssize_t)look)) == NULL) {
		conn_drop(c);
		return;
	}
	end = gw_h1_head_end(buf, look, &c->scanned);
	if (end == 0 || end > srv->max_header_bytes) {
		if (end == 0 && look < srv->max_header_bytes + 3)
			return; /* more to come */
		/* Over the limit while still on the request line: 414, else 431. */
		head_refuse(c, memchr(buf, '\n', look) == NULL ? 414 : 431,
		            "the request head is larger than the server accepts");
		return;
	}
	/* One allocation: the head's bytes, then its field table. */
	nf = srv->max_headers < GW_H1_MAX_FIELDS ? srv->max_headers : GW_H1_MAX_FIELDS;
	off = (end + 1 + 15) & ~(size_t)15;
	if ((r = gw_req_new(c->w, c)) == NULL || (r->head = malloc(off + nf * sizeof(*fields))) == NULL) {
		gw_req_free(r);
		conn_drop(c);
		return;
	}
	fields = (struct gw_h1_field *)(void *)(r->head + off);
	c->req = r;
	c->state = CS_RUN;
	evbuffer_remove(in, r->head, end);
	r->head[end] = '\0';
	c->scanned = 0;
	if ((st = gw_h1_parse(&r->h1, r->head, end, fields, nf, &why)) != 0) {
		if (r->h1.method && st != 400)
			r->method = r->h1.method; /* for the log: a known token */
		refuse(c, r, st, head_error_code(st), why);
		return;
	}
	{
		X509 *cert = SSL_get1_peer_certificate(c->ssl);
		r->tls_version = SSL_get_version(c->ssl);
		if (cert) {
			r->peer_verify = SSL_get_verify_result(c->ssl);
			if (r->peer_verify == X509_V_OK)
				r->peer_cert = cert;
			else
				X509_free(cert);
		}
	}
	/* gw_http_route (http.c) fills the request from the head and routes it;
	 * it answers itself when it refuses. */
	if (gw_http_route(r) != 0)
		return;
	begin_body(c, r);
}

/* ------------------------------------------------------------ callbacks */

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct gw_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	switch (c->state) {
	case CS_HEAD: try_head(c); break;
	case CS_BODY:
	case CS_RUN:
		if (c->reading_body)
			pump_body(c);
		/* else: a pipelined request waits, bounded by the read-ahead mark */
		break;
	case CS_STREAM:
	case CS_CLOSING: evbuffer_drain(in, evbuffer_get_length(in)); break;
	}
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct gw_conn *c = arg;

	if (c->req && c->req->streamed)
		move_reply(c, c->req);
	if (c->state == CS_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
	    (c->linger == NULL || !evtimer_pending(c->linger, NULL)))
		linger_begin(c);
}

/* The client went away, or stalled: nothing more can reach it. */
static void client_gone(struct gw_conn *c, int err)
{
	struct gw_req *r = c->req;

	if (r) {
		pthread_mutex_lock(&r->lock);
		r->gone = true;
		if (c->reading_body && r->in_err == 0)
			r->in_err = err;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
		c->reading_body = false;
		drop_undispatched(c);
	}
	if (c->stream) {
		stream_gone(c);
		return;
	}
	conn_drop(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct gw_conn *c = arg;

	if (what & BEV_EVENT_CONNECTED)
		return; /* handshake done */
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    ((c->state == CS_RUN && !c->reading_body) || c->state == CS_STREAM)) {
		/* A long-running handler or a quiet event stream: the client is
		 * not expected to send. libevent disabled reading: resume. */
		bufferevent_enable(bev, EV_READ);
		return;
	}
	client_gone(c, (what & BEV_EVENT_TIMEOUT) ? EHR_ERR_TIMEOUT : EHR_ERR_IO);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;
	struct gw_req *r = c->req;

	(void)fd;
	(void)what;
	if (c->bev == NULL)
		return;
	if (r) {
		move_reply(c, r);
		if (c->reading_body)
			pump_body(c); /* the handler made room */
		return;
	}
	if (c->next_due && c->state == CS_HEAD) {
		c->next_due = false;
		try_head(c);
	}
}

void gw_conn_wake(struct gw_req *r)
{
	event_active(r->conn->wake, EV_READ, 1);
}

/* ----------------------------------------------------- event streams */

struct bufferevent *gw_conn_take_for_stream(struct gw_req *r, struct gw_stream *s)
{
	struct gw_conn *c = r->conn;
	struct timeval idle = { .tv_sec = c->srv->idle_timeout_s, .tv_usec = 0 };

	if (c->bev == NULL)
		return NULL;
	r->close = true;
	r->status = 200;
	gw_conn_head(r, bufferevent_get_output(c->bev), -1);
	c->state = CS_STREAM;
	c->stream = s;
	c->req = NULL;
	c->reading_body = false;
	/* Only a stalled writer ends a stream by timeout; the owner's
	 * heartbeats keep a quiet one alive. */
	bufferevent_set_timeouts(c->bev, NULL, &idle);
	bufferevent_enable(c->bev, EV_READ);
	return c->bev;
}

void gw_conn_stream_done(struct gw_conn *c, bool flush)
{
	c->stream = NULL;
	if (flush && c->bev)
		conn_close_after_flush(c);
	else
		conn_drop(c);
}

/* ------------------------------------------- handler-facing streaming */

int gw_req_body_read(struct gw_req *r, uint8_t *buf, size_t cap, size_t *got)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	bool wake = false;
	int err = 0;

	*got = 0;
	if (r->route == NULL || !(r->route->flags & GW_STREAM_BODY))
		return ehr_error_set(EHR_ERR_INTERNAL, "the route does not stream its body");
	pthread_mutex_lock(&r->lock);
	if (r->h1.expect_continue && !r->continued && !r->in_done) {
		r->continued = true;
		evbuffer_add(r->sout, cont, sizeof(cont) - 1);
		wake = true;
	}
	if (wake) {
		pthread_mutex_unlock(&r->lock);
		gw_conn_wake(r);
		pthread_mutex_lock(&r->lock);
		wake = false;
	}
	while (evbuffer_get_length(r->in) == 0 && !r->in_done && r->in_err == 0 && !r->gone)
		pthread_cond_wait(&r->cond, &r->lock);
	if (evbuffer_get_length(r->in) > 0) {
		int n = evbuffer_remove(r->in, buf, cap);
		if (n > 0)
			*got = (size_t)n;
		/* The loop stopped moving bytes at a full window: say there is room. */
		if (r->in_full && evbuffer_get_length(r->in) < GW_BODY_WINDOW / 2) {
			r->in_full = false;
			wake = true;
		}
	} else if (r->in_err) {
		err = ehr_error_set(r->in_err, r->in_err == EHR_ERR_TIMEOUT ? "the client stalled"
		                               : r->in_err == EHR_ERR_PARSE ? "malformed chunked body"
		                                                            : "the client went away");
	} else if (!r->in_done) {
		err = ehr_error_set(EHR_ERR_IO, "the client went away");
	}
	pthread_mutex_unlock(&r->lock);
	if (wake)
		gw_conn_wake(r);
	return err;
}

int gw_reply_start(struct gw_req *r, int status, const char *content_type, int64_t length)
{
	if (r->replied) {
		ehr_logf(EHR_LOG_ERROR, "http.double_reply", "route %s replied twice",
		         r->route ? r->route->name : "-");
		return ehr_error_set(EHR_ERR_INTERNAL, "a second reply");
	}
	r->replied = true;
	r->streamed = true;
	r->status = (status >= 200 && status <= 599) ? status : 500;
	gw_req_set_content_type(r, content_type);
	pthread_mutex_lock(&r->lock);
	/* the handler's thread: whether the body is done is in_done, under the lock */
	r->close = must_close(r, r->route && (r->route->flags & GW_STREAM_BODY) && !r->in_done);
	r->chunked_reply = length < 0;
	r->reply_left = length < 0 ? 0 : (uint64_t)length;
	if (r->sout == NULL && (r->sout = evbuffer_new()) == NULL) {
		r->aborted = true; /* nothing was sent: the connection just closes */
		pthread_mutex_unlock(&r->lock);
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	}
	gw_conn_head(r, r->sout, length);
	r->queued += evbuffer_get_length(r->sout);
	pthread_mutex_unlock(&r->lock);
	gw_conn_wake(r);
	return 0;
}

int gw_reply_write(struct gw_req *r, const void *data, size_t len)
{
	int err = 0;

	if (!r->streamed)
		return ehr_error_set(EHR_ERR_INTERNAL, "gw_reply_write before gw_reply_start");
	if (len == 0)
		return 0;
	pthread_mutex_lock(&r->lock);
	while (!r->gone && r->queued > GW_REPLY_WINDOW)
		pthread_cond_wait(&r->cond, &r->lock);
	if (r->gone || r->sout == NULL) {
		err = ehr_error_set(EHR_ERR_IO, "the client went away");
	} else if (!r->chunked_reply && len > r->reply_left) {
		err = ehr_error_set(EHR_ERR_INTERNAL, "reply longer than its Content-Length");
	} else {
		if (!r->chunked_reply)
			r->reply_left -= len;
		r->sent += len;
		if (!r->is_head) {
			if (r->chunked_reply)
				evbuffer_add_printf(r->sout, "%zx\r\n", len);
			evbuffer_add(r->sout, data, len);
			if (r->chunked_reply)
				evbuffer_add(r->sout, "\r\n", 2);
			r->queued += len;
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (err == 0)
		gw_conn_wake(r);
	return err;
}

void gw_reply_end(struct gw_req *r, bool ok)
{
	if (!r->streamed)
		return;
	pthread_mutex_lock(&r->lock);
	if (!ok || (!r->chunked_reply && r->reply_left > 0))
		r->aborted = true;
	else if (r->chunked_reply && !r->is_head && r->sout)
		evbuffer_add(r->sout, "0\r\n\r\n", 5);
	pthread_mutex_unlock(&r->lock);
}
