/*
 * conn.c - one TLS connection's life: accept, the libevent callbacks,
 * keep-alive from one request to the next, limits, timeouts, hand-over to
 * an event stream, and a lingering close. Reading a request (its head,
 * framed by h1.c, and its body) is conn_read.c; writing a reply is
 * conn_reply.c.
 *
 * A connection serves one request at a time: while a request runs, bytes of
 * a pipelined next one wait in the input buffer, which bufferevent bounds
 * with a read high-water mark. Everything here runs on the worker's loop
 * thread; the handler-facing streaming calls (gw_req_body_read in
 * conn_read.c, gw_reply_start/write/end in conn_reply.c) run on a
 * blocking-pool thread and meet the loop under the request's lock.
 *
 * A connection outlives its request: when the client goes away mid-request
 * the socket is closed at once (r->gone tells the handler), and the
 * connection object is freed when the request finishes.
 */
#include "gateway/http/http_internal.h"

#include <stdlib.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

/* Bytes bufferevent reads ahead before it stops reading. */
#define CONN_READ_AHEAD (256u * 1024)
/* How long a closing connection waits for the client's FIN. */
#define CONN_LINGER_S 2

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void wake_cb(evutil_socket_t fd, short what, void *arg);

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
	atomic_fetch_add(&c->srv->conns_closed, 1);
	free(c);
}

/* Close the socket now; the object stays while a request or stream holds it. */
void gw__conn_drop(struct gw_conn *c)
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
	gw__conn_drop(arg);
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
		gw__conn_drop(c);
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
		gw__conn_drop(c);
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
		gw__conn_drop(c);
	}
}

void gw_conn_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct gw_worker *w = arg;
	struct gw_server *srv = w->srv;
	struct gw_conn *c = calloc(1, sizeof(*c));
	struct timeval idle = { .tv_sec = srv->idle_timeout_s, .tv_usec = 0 };
	long open;
	bool refuse;

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
	refuse = open > srv->max_connections || atomic_load(&srv->draining);
	if (c->ssl == NULL || (refuse && gw_tls_refuse(c->ssl) < 0)) {
		evutil_closesocket(fd);
		if (c->ssl)
			SSL_free(c->ssl);
		c->ssl = NULL;
		conn_free(c);
		return;
	}
	if (refuse)
		atomic_fetch_add(&srv->conns_refused, 1);
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
		gw__conn_drop(c);
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
		gw__conn_drop(c);
	}
}

void gw_conn_close_idle(struct gw_worker *w)
{
	struct gw_conn *c = w->conns, *next;

	for (; c; c = next) {
		next = c->next;
		if (c->req == NULL && c->stream == NULL && c->state == CS_HEAD)
			gw__conn_drop(c);
	}
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
		gw__conn_drop(c);
		return;
	}
	if (r->streamed) {
		gw__conn_move_reply(c, r);
		bytes = (size_t)r->sent;
		if (r->aborted)
			c->abort = true;
		closing = r->close || r->aborted || c->reading_body;
	} else {
		struct evbuffer *out = bufferevent_get_output(c->bev);
		gw__conn_move_reply(c, r); /* a 100 Continue may still wait there */
		bytes = evbuffer_get_length(r->out);
		r->close = gw__req_must_close(r, c->reading_body);
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

/* ------------------------------------------------------------ callbacks */

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct gw_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	switch (c->state) {
	case CS_HEAD: gw__conn_try_head(c); break;
	case CS_BODY:
	case CS_RUN:
		if (c->reading_body)
			gw__conn_pump_body(c);
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
		gw__conn_move_reply(c, c->req);
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
	gw__conn_drop(c);
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
		gw__conn_move_reply(c, r);
		if (c->reading_body)
			gw__conn_pump_body(c); /* the handler made room */
		return;
	}
	if (c->next_due && c->state == CS_HEAD) {
		c->next_due = false;
		gw__conn_try_head(c);
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
		gw__conn_drop(c);
}
