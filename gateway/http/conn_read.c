/*
 * conn_read.c - reading a connection's requests: the head (framed by h1.c,
 * then routed by http.c) and the body, buffered for the handler or
 * streamed to it through r->in (the handler reads with gw_req_body_read on
 * its blocking-pool thread).
 *
 *   body:  loop moves input -> r->in (at most GW_BODY_WINDOW), broadcast;
 *          handler takes from r->in, wakes the loop to move more.
 */
#include "gateway/http/http_internal.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/x509.h>

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
void gw__conn_pump_body(struct gw_conn *c)
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
		gw__conn_drop(c);
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
			gw__conn_pump_body(c);
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
	gw__conn_pump_body(c);
}

void gw__conn_try_head(struct gw_conn *c)
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
		gw__conn_drop(c);
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
		gw__conn_drop(c);
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
