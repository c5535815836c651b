/*
 * stream.c - chunked streaming replies (gateway.h, "streaming replies").
 *
 * libevent's evhttp_send_reply_start/chunk/end must run on the
 * connection's loop thread, so a streaming reply is set up in two steps:
 * the handler (any thread) records the intent with gw_reply_stream, and
 * req_finish, on the loop thread, hands the request to gw__stream_begin,
 * which sends the headers and calls the owner's start function there.
 */
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "gateway/gw_internal.h"

struct gw_stream {
	struct evhttp_request *ev;       /* NULL once the client has gone */
	struct evhttp_connection *evcon; /* NULL once the client has gone */
	struct event_base *base;
	gw_stream_fn on_close;
	void *close_ud;
};

/* A day: the stream's owner, not evhttp's idle timeout, decides when a
 * quiet stream ends (it sends heartbeats). */
#define GW_STREAM_TIMEOUT_S (24 * 3600)

void gw_reply_stream(struct gw_req *r, const char *content_type, gw_stream_fn start, void *ud)
{
	if (r->replied) {
		ehr_logf(EHR_LOG_ERROR, "http.double_reply", "a second reply was refused");
		return;
	}
	r->replied = true;
	r->status = 200;
	gw_req_set_content_type(r, content_type);
	r->close = true;
	r->stream_start = start;
	r->stream_ud = ud;
}

static void stream_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct gw_stream *s = arg;

	(void)evcon;
	/* libevent 2.1: when the client goes away in mid-reply, the request is
	 * detached from its connection (evhttp_connection_incoming_fail) and
	 * left to us; when the whole evhttp is freed, it is still attached
	 * and libevent frees it after this callback. */
	if (s->ev != NULL && evhttp_request_get_connection(s->ev) == NULL)
		evhttp_request_free(s->ev);
	s->ev = NULL;
	s->evcon = NULL;
	if (s->on_close)
		s->on_close(s, s->close_ud);
}

void gw__stream_begin(struct gw_req *r)
{
	struct gw_stream *s = calloc(1, sizeof(*s));
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);

	if (s == NULL || evcon == NULL) {
		free(s);
		/* Nothing sent yet: fall back to an ordinary error reply. */
		evhttp_send_error(r->ev, 503, "Service Unavailable");
		r->ev = NULL;
		if (r->stream_start)
			r->stream_start(NULL, r->stream_ud); /* lets the owner free its state */
		return;
	}
	s->ev = r->ev;
	s->evcon = evcon;
	s->base = r->w->base;
	r->ev = NULL;
	evhttp_connection_set_timeout(evcon, GW_STREAM_TIMEOUT_S);
	evhttp_connection_set_closecb(evcon, stream_conn_closed, s);
	evhttp_send_reply_start(s->ev, 200, "OK");
	r->stream_start(s, r->stream_ud);
}

struct event_base *gw_stream_base(struct gw_stream *s)
{
	return s->base;
}

int gw_stream_write(struct gw_stream *s, const void *data, size_t len)
{
	struct evbuffer *b;

	if (s->ev == NULL)
		return ehr_error_set(EHR_ERR_IO, "the client has gone");
	b = evbuffer_new();
	if (b == NULL || evbuffer_add(b, data, len) != 0) {
		evbuffer_free(b);
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	}
	evhttp_send_reply_chunk(s->ev, b);
	evbuffer_free(b);
	return 0;
}

size_t gw_stream_backlog(const struct gw_stream *s)
{
	struct bufferevent *bev;

	if (s->evcon == NULL || (bev = evhttp_connection_get_bufferevent(s->evcon)) == NULL)
		return 0;
	return evbuffer_get_length(bufferevent_get_output(bev));
}

void gw_stream_set_close_cb(struct gw_stream *s, gw_stream_fn on_close, void *ud)
{
	s->on_close = on_close;
	s->close_ud = ud;
}

void gw_stream_end(struct gw_stream *s)
{
	if (s == NULL)
		return;
	if (s->ev != NULL) {
		evhttp_connection_set_closecb(s->evcon, NULL, NULL);
		evhttp_send_reply_end(
		        s->ev); /* "Connection: close" was sent: evhttp closes after the last chunk */
	}
	free(s);
}
