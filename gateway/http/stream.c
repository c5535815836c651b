/*
 * stream.c - event streams (gateway.h, "streaming replies"), e.g. the audit
 * Server-Sent Events stream.
 *
 * A stream is set up in two steps: the handler (any thread) records the
 * intent with gw_reply_stream, and req_finish, on the loop thread, hands
 * the request to gw__stream_begin, which sends the head and gives the
 * connection to the stream (conn.c, CS_STREAM). From then on the owner
 * writes chunks on the loop thread.
 */
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "gateway/http/http_internal.h"

struct gw_stream {
	struct gw_conn *conn;
	struct bufferevent *bev; /* NULL once the client has gone */
	struct event_base *base;
	gw_stream_fn on_close;
	void *close_ud;
};

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

void gw__stream_begin(struct gw_req *r)
{
	struct gw_stream *s = calloc(1, sizeof(*s));
	gw_stream_fn start = r->stream_start;
	void *ud = r->stream_ud;

	if (s != NULL) {
		s->conn = r->conn;
		s->base = r->w->base;
		s->bev = gw_conn_take_for_stream(r, s);
	}
	if (s == NULL || s->bev == NULL) {
		/* No memory, or the client is gone: end the request as a failure. */
		free(s);
		r->stream_start = NULL;
		if (s == NULL) {
			r->replied = false;
			gw_reply_error(r, 503, "unavailable", "cannot start the stream");
		}
		gw_conn_finish(r);
		start(NULL, ud); /* lets the owner free its state */
		return;
	}
	gw_req_done(r, 0);
	start(s, ud);
}

struct event_base *gw_stream_base(struct gw_stream *s)
{
	return s->base;
}

int gw_stream_write(struct gw_stream *s, const void *data, size_t len)
{
	struct evbuffer *out;

	if (s->bev == NULL)
		return ehr_error_set(EHR_ERR_IO, "the client has gone");
	if (len == 0)
		return 0;
	out = bufferevent_get_output(s->bev);
	if (evbuffer_add_printf(out, "%zx\r\n", len) < 0 || evbuffer_add(out, data, len) != 0 ||
	    evbuffer_add(out, "\r\n", 2) != 0)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	return 0;
}

size_t gw_stream_backlog(const struct gw_stream *s)
{
	return s->bev ? evbuffer_get_length(bufferevent_get_output(s->bev)) : 0;
}

void gw_stream_set_close_cb(struct gw_stream *s, gw_stream_fn on_close, void *ud)
{
	s->on_close = on_close;
	s->close_ud = ud;
}

void gw__stream_closed(struct gw_stream *s)
{
	s->bev = NULL;
	if (s->on_close)
		s->on_close(s, s->close_ud);
}

void gw_stream_end(struct gw_stream *s)
{
	if (s == NULL)
		return;
	if (s->bev != NULL)
		evbuffer_add(bufferevent_get_output(s->bev), "0\r\n\r\n", 5);
	gw_conn_stream_done(s->conn, s->bev != NULL);
	free(s);
}
