/*
 * metrics_listen.c - GET /metrics on a listener of its own ([metrics]
 * listen, loopback by default), in plain HTTP as Prometheus scrapes.
 *
 * Why apart from the TLS port: per-route counts, access decisions and the
 * break-glass counter are operational data for the operator's monitoring,
 * not for any client of the API. A separate listener, bound to loopback
 * unless the operator says otherwise, keeps them off the port the
 * clients reach, with no credential to manage (Prometheus convention).
 *
 * It is libevent's evhttp on one thread and one event base: the scrape is
 * a GET of a few KiB at most every few seconds, no body is accepted, and
 * nothing else is served (404 JSON for any other path, 405 for any other
 * method).
 */
#include "gateway/http/http_internal.h"

#include "common/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

struct gw_metrics_listener {
	struct gw_server *srv;
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	bool started;
};

static void reply_json(struct evhttp_request *req, int status, const char *reason, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	if (b)
		evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, status, reason, b);
	if (b)
		evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct gw_metrics_listener *m = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct ehr_buf text = EHR_BUF_INIT(16u << 20);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *b;

	evhttp_add_header(h, "Cache-Control", "no-store");
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(h, "Allow", "GET, HEAD");
		reply_json(req, 405, "Method Not Allowed",
		           "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"only GET /metrics is "
		           "served here\"}}");
		return;
	}
	if (path == NULL || strcmp(path, "/metrics") != 0) {
		reply_json(req, 404, "Not Found",
		           "{\"error\":{\"code\":\"not_found\",\"message\":\"no such resource\"}}");
		return;
	}
	if (gw__metrics_render(m->srv, &text) < 0 || ehr_metrics_render(&text) < 0 ||
	    (b = evbuffer_new()) == NULL) {
		ehr_buf_free(&text);
		reply_json(req, 500, "Internal Server Error",
		           "{\"error\":{\"code\":\"internal_error\",\"message\":\"internal error\"}}");
		return;
	}
	evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evbuffer_add(b, text.data, text.len);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
	ehr_buf_free(&text);
}

static void *listener_main(void *arg)
{
	struct gw_metrics_listener *m = arg;

	event_base_dispatch(m->base);
	return NULL;
}

/* "http://host:port/metrics" of the bound socket, for the start line. */
static int bound_url(struct evhttp_bound_socket *bs, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	uint16_t port;

	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len) != 0)
		return ehr_error_set(EHR_ERR_IO, "getsockname failed");
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		ENSURE(inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)) != NULL, EHR_ERR_IO);
		port = ntohs(a->sin6_port);
		return ehr_fmt(out, cap, "http://[%s]:%u/metrics", host, port);
	}
	ENSURE(inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host)) != NULL,
	       EHR_ERR_IO);
	port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ehr_fmt(out, cap, "http://%s:%u/metrics", host, port);
}

int gw__metrics_listen_start(struct gw_server *srv, const char *listen, struct gw_metrics_listener **out)
{
	struct gw_metrics_listener *m = calloc(1, sizeof(*m));
	struct evhttp_bound_socket *bs;
	char host[256], url[320];
	uint16_t port;
	int err = 0;

	ENSURE(m != NULL, EHR_ERR_NOMEM);
	m->srv = srv;
	GUARD_GOTO(gw_parse_listen(listen, host, sizeof(host), &port));
	m->base = event_base_new();
	m->http = m->base ? evhttp_new(m->base) : NULL;
	ENSURE_GOTO(m->http != NULL, EHR_ERR_NOMEM);
	/* other methods reach on_request, which answers 405 */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
	                                            EVHTTP_REQ_OPTIONS);
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 4096);
	evhttp_set_timeout(m->http, 10);
	evhttp_set_gencb(m->http, on_request, m);
	if ((bs = evhttp_bind_socket_with_handle(m->http, host, port)) == NULL) {
		err = ehr_error_set(EHR_ERR_IO, "cannot listen on [metrics] listen %s", listen);
		goto out;
	}
	GUARD_GOTO(bound_url(bs, url, sizeof(url)));
	if (pthread_create(&m->thread, NULL, listener_main, m) != 0) {
		err = ehr_error_set(EHR_ERR_INTERNAL, "cannot start the metrics thread");
		goto out;
	}
	m->started = true;
	ehr_log_json(EHR_LOG_INFO, "metrics.start", json_pack("{s:s}", "url", url));
	printf("ehrgate metrics on %s\n", url);
	*out = m;
	return 0;
out:
	gw__metrics_listen_stop(m);
	return err;
}

void gw__metrics_listen_stop(struct gw_metrics_listener *m)
{
	if (m == NULL)
		return;
	if (m->started) {
		event_base_loopexit(m->base, NULL);
		pthread_join(m->thread, NULL);
	}
	if (m->http)
		evhttp_free(m->http);
	if (m->base)
		event_base_free(m->base);
	free(m);
}
