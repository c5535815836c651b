/*
 * conn_reply.c - writing replies: the reply head, and the handler-facing
 * streamed reply (gw_reply_start/write/end on a blocking-pool thread) that
 * meets the loop under the request's lock:
 *
 *   reply: handler appends framed bytes to r->out, waits while r->queued
 *          (r->out plus the socket's output buffer) > GW_REPLY_WINDOW;
 *          the loop moves r->out to the socket and, as the output drains,
 *          updates r->queued and broadcasts.
 */
#include "gateway/http/http_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

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
bool gw__req_must_close(const struct gw_req *r, bool body_unread)
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
	k = vsnprintf(hb->buf + hb->n, sizeof(hb->buf) - hb->n, fmt, ap); /* bounded: checked */
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
	bool cache_control = false;

	head_add(&hb, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nX-Request-Id: %s\r\n", r->status,
	         reason_phrase(r->status), http_date(),
	         r->content_type[0] ? r->content_type : "application/json", r->req_id);
	/* gw_reply_header keeps one value per name and none of the lines
	 * above; Cache-Control is ours unless the handler chose one. */
	for (struct gw_hdr *h = r->headers; h; h = h->next) {
		head_add(&hb, "%s: %s\r\n", h->name, h->value);
		cache_control = cache_control || strcasecmp(h->name, "Cache-Control") == 0;
	}
	if (!cache_control)
		head_add(&hb, "Cache-Control: no-store\r\n");
	if (body_allowed && length >= 0)
		head_add(&hb, "Content-Length: %lld\r\n", (long long)length);
	else if (body_allowed)
		head_add(&hb, "Transfer-Encoding: chunked\r\n");
	head_add(&hb, "%s\r\n", r->close ? "Connection: close\r\n" : "");
	evbuffer_add(out, hb.buf, hb.n);
}

/* Move the handler's reply bytes to the socket (loop thread). */
void gw__conn_move_reply(struct gw_conn *c, struct gw_req *r)
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
	r->close = gw__req_must_close(r, r->route && (r->route->flags & GW_STREAM_BODY) && !r->in_done);
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
