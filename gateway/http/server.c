/*
 * server.c - worker threads, listeners, signals, reload and drain.
 *
 * N workers each run their own event_base and connections, with their own
 * SO_REUSEPORT listener on the same address, so the kernel spreads new
 * connections over the cores and no lock sits on the accept path. The main
 * thread only waits for signals:
 *   SIGHUP          load [tls] cert/key/client_ca into a new SSL_CTX and swap it
 *                   in for new connections (live ones keep their reference);
 *   SIGTERM/SIGINT  stop accepting, wait for in-flight requests (bounded by
 *                   [server] drain_timeout_s), stop the loops, exit 0.
 */
#include "gateway/http/http_internal.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/thread.h>

static void *worker_main(void *arg)
{
	struct gw_worker *w = arg;

	gw_set_current_worker(w);
	/* Keep looping when no event is pending (for example after the listener
	 * closes while a blocking job still owes a reply): only loopexit ends it. */
	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	gw_access_log_flush(w);
	gw_set_current_worker(NULL);
	return NULL;
}

static void stop_accepting(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;

	(void)fd;
	(void)what;
	if (w->listener) {
		evconnlistener_free(w->listener);
		w->listener = NULL;
	}
	gw_conn_close_idle(w);
	atomic_fetch_add(&w->srv->quiesced, 1);
}

/* Connections closed since the last trim that make one worth its cost. */
#define GW_TRIM_AFTER_CLOSES 128
#define GW_TRIM_EVERY_S 2

/*
 * Every GW_TRIM_EVERY_S on worker 0: once a wave of connections has closed
 * (at least GW_TRIM_AFTER_CLOSES since the last trim, and most of them
 * gone: fewer open now than half that many), hand the memory they freed
 * back to the kernel. glibc keeps freed chunks in each thread's arena,
 * fragmented by the connections still open, so without this the RSS of a
 * flood of idle TLS connections stays after it (issue 13: 20 -> 105 MiB).
 * malloc_trim(0) releases the free pages of every arena (madvise), a few
 * milliseconds on this loop, at most once per period.
 */
static void trim_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;
	unsigned long closed = atomic_load(&w->srv->conns_closed);
	unsigned long wave = closed - w->trim_closed;

	(void)fd;
	(void)what;
	if (wave < GW_TRIM_AFTER_CLOSES || atomic_load(&w->srv->open_conns) > (long)(wave / 2))
		return;
	w->trim_closed = closed;
	malloc_trim(0);
}

static int worker_timers(struct gw_worker *w)
{
	struct timeval every = { 0, 100000 }, trim_every = { GW_TRIM_EVERY_S, 0 };

	w->alog_ev = event_new(w->base, -1, EV_PERSIST, gw_access_log_timer, w);
	if (w->alog_ev == NULL || event_add(w->alog_ev, &every) < 0)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	if (w->id != 0)
		return 0;
	w->trim_ev = event_new(w->base, -1, EV_PERSIST, trim_timer, w);
	if (w->trim_ev == NULL || event_add(w->trim_ev, &trim_every) < 0)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	return 0;
}

static int worker_init(struct gw_server *srv, struct gw_worker *w, unsigned id)
{
	struct event_config *ec = event_config_new();
	size_t nroutes = gw_router_count(srv->router);

	w->srv = srv;
	w->id = id;
	/* Request ids: each worker counts up from its own random start, so ids
	 * are unique in the logs of every worker and instance without a
	 * random draw per request. */
	GUARD(ehr_random(&w->next_req_id, sizeof(w->next_req_id)));
	pthread_mutex_init(&w->done_lock, NULL);
	if (ec == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	/* Coalesce the read/write interest flips of one loop iteration into one
	 * epoll_ctl (libevent's changelist; safe here: no fd is dup'ed). */
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (w->base == NULL)
		return ehr_error_set(EHR_ERR_INTERNAL, "event_base_new failed");
	w->done_ev = event_new(w->base, -1, 0, gw_http_done_cb, w);
	if (w->done_ev == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	GUARD(gw_metrics_new(&w->metrics, nroutes));
	ehr_buf_init(&w->alog, 1u << 20);
	return worker_timers(w);
}

static void worker_free(struct gw_worker *w)
{
	gw_conn_close_all(w);
	if (w->listener)
		evconnlistener_free(w->listener);
	if (w->done_ev)
		event_free(w->done_ev);
	if (w->alog_ev)
		event_free(w->alog_ev);
	if (w->trim_ev)
		event_free(w->trim_ev);
	ehr_buf_free(&w->alog);
	if (w->base)
		event_base_free(w->base);
	gw_metrics_free(w->metrics);
	pthread_mutex_destroy(&w->done_lock);
}

static int listen_addr(struct gw_server *srv, uint16_t port, struct sockaddr_storage *ss, int *sslen)
{
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, srv->host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons(port);
		*sslen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, srv->host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
		*sslen = sizeof(struct sockaddr_in6);
	} else {
		return ehr_error_set(EHR_ERR_CONFIG,
		                     "[server] listen: host must be a numeric IPv4 or IPv6 address");
	}
	return 0;
}

/* SO_REUSEPORT would let a second ehrgate (same user) silently share the
 * port with a running one; a plain bind first makes that an error. */
static int probe_port_free(struct gw_server *srv, uint16_t port)
{
	struct sockaddr_storage ss;
	int sslen, fd, one = 1, rc;

	GUARD(listen_addr(srv, port, &ss, &sslen));
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ehr_error_set_detail(EHR_ERR_IO, "cannot open a socket", "socket: %s",
		                            strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	rc = bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen);
	if (rc != 0) {
		int e = errno;
		close(fd);
		return ehr_error_set_detail(EHR_ERR_IO, "cannot listen", "cannot listen on %s:%u: %s",
		                            srv->host, port, strerror(e));
	}
	close(fd);
	return 0;
}

static int worker_listen(struct gw_server *srv, struct gw_worker *w, uint16_t port)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char addr[300];
	struct evconnlistener *l;

	GUARD(ehr_fmt(addr, sizeof(addr), strchr(srv->host, ':') ? "[%s]:%u" : "%s:%u", srv->host, port));
	GUARD(listen_addr(srv, port, &ss, &sslen));
	l = evconnlistener_new_bind(w->base, gw_conn_accept, w,
	                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE |
	                                    LEV_OPT_REUSEABLE_PORT,
	                            1024, (struct sockaddr *)&ss, sslen);
	if (l == NULL)
		return ehr_error_set_detail(EHR_ERR_IO, "cannot listen", "cannot listen on %s: %s", addr,
		                            strerror(errno));
	{
		/* Accepted sockets inherit TCP_NODELAY on Linux: without it a reply
		 * written as two TLS records waits for the peer's delayed ACK. */
		int one = 1;
		setsockopt(evconnlistener_get_fd(l), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	w->listener = l;
	if (port == 0) {
		struct sockaddr_storage got;
		socklen_t glen = sizeof(got);
		if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&got, &glen) != 0)
			return ehr_error_set_detail(EHR_ERR_IO, "cannot read the listening address",
			                            "getsockname: %s", strerror(errno));
		srv->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
		                                            : ((struct sockaddr_in *)&got)->sin_port);
	} else {
		srv->port = port;
	}
	return 0;
}

static void reload_tls(struct gw_server *srv)
{
	SSL_CTX *fresh = NULL, *old;

	if (gw_tls_ctx_new(&fresh, srv->opt) < 0) {
		atomic_fetch_add(&srv->tls_reload_failures, 1);
		ehr_logf(EHR_LOG_ERROR, "tls.reload_failed", "keeping the current certificates: %s",
		         ehr_error_detail());
		return;
	}
	pthread_mutex_lock(&srv->ctx_lock);
	old = srv->ctx;
	srv->ctx = fresh;
	pthread_mutex_unlock(&srv->ctx_lock);
	SSL_CTX_free(old); /* live connections hold their own references */
	atomic_fetch_add(&srv->tls_reloads, 1);
	ehr_logf(EHR_LOG_INFO, "tls.reloaded", "new connections use the reloaded certificates");
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Returns true when every in-flight request finished within the timeout. */
static bool drain(struct gw_server *srv)
{
	const struct timeval zero = { 0, 0 };
	int64_t deadline = ehr_monotonic_ms() + (int64_t)srv->opt->drain_timeout_s * 1000;
	bool clean = true;

	atomic_store(&srv->draining, true);
	for (unsigned i = 0; i < srv->nworkers; i++)
		event_base_once(srv->workers[i].base, -1, EV_TIMEOUT, stop_accepting, &srv->workers[i],
		                &zero);
	/* Once every loop has quiesced no request can start, so an inflight
	 * count of zero then means none will run: a request that began after
	 * it read zero would be freed under its handler. */
	while (atomic_load(&srv->quiesced) < srv->nworkers || atomic_load(&srv->inflight) > 0) {
		if (ehr_monotonic_ms() >= deadline) {
			clean = false;
			ehr_logf(EHR_LOG_WARN, "server.drain_timeout", "%ld requests still in flight",
			         atomic_load(&srv->inflight));
			break;
		}
		sleep_ms(10);
	}
	/* Let the loops write out the last replies. */
	sleep_ms(100);
	return clean;
}

/* Signals go to the main thread's sigwait only; SIGPIPE nowhere. */
void gw_server_block_signals(sigset_t *set)
{
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

int gw_server_run(const struct gw_http_options *o)
{
	struct gw_server *srv = calloc(1, sizeof(*srv));
	sigset_t sigs;
	uint16_t port;
	unsigned started = 0;
	int err = 0, sig;
	bool clean = true;

	ENSURE(srv != NULL, EHR_ERR_NOMEM);
	srv->opt = o;
	pthread_mutex_init(&srv->ctx_lock, NULL);
	srv->max_headers = o->max_headers;
	srv->max_header_bytes = o->max_header_bytes;
	srv->max_body_bytes = o->max_body_bytes;
	srv->max_connections = o->max_connections;
	srv->idle_timeout_s = o->idle_timeout_s;
	srv->read_timeout_s = o->read_timeout_s;
	srv->access_log = o->access_log;
	srv->nworkers = o->workers;
	GUARD_GOTO(gw_parse_listen(o->listen, srv->host, sizeof(srv->host), &port));
	GUARD_GOTO(gw_router_new(&srv->router, o->tables, o->table_lens, o->ntables));
	for (size_t i = 0; i < gw_router_count(srv->router); i++)
		ENSURE_GOTO(gw_router_route(srv->router, i)->roles == 0 || o->gate != NULL, EHR_ERR_CONFIG);
	GUARD_GOTO(gw_router_check_params(srv->router, o->param_check));
	GUARD_GOTO(gw_tls_init());
	GUARD_GOTO(gw_tls_ctx_new(&srv->ctx, o));
	if (evthread_use_pthreads() != 0) {
		err = ehr_error_set(EHR_ERR_INTERNAL, "evthread_use_pthreads failed");
		goto out;
	}

	gw_server_block_signals(&sigs);

	srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
	ENSURE_GOTO(srv->workers != NULL, EHR_ERR_NOMEM);
	for (unsigned i = 0; i < srv->nworkers; i++)
		GUARD_GOTO(worker_init(srv, &srv->workers[i], i));
	if (port != 0)
		GUARD_GOTO(probe_port_free(srv, port));
	for (unsigned i = 0; i < srv->nworkers; i++)
		GUARD_GOTO(worker_listen(srv, &srv->workers[i], i == 0 ? port : srv->port));
	GUARD_GOTO(gw_pool_new(&srv->pool, o->blocking_threads, o->blocking_queue));
	GUARD_GOTO(ehr_fmt(srv->base_url, sizeof(srv->base_url),
	                   strchr(srv->host, ':') ? "https://[%s]:%u" : "https://%s:%u", srv->host,
	                   srv->port));

	if (o->metrics_listen && *o->metrics_listen)
		GUARD_GOTO(gw__metrics_listen_start(srv, o->metrics_listen, &srv->metrics_listener));
	for (; started < srv->nworkers; started++) {
		if (pthread_create(&srv->workers[started].thread, NULL, worker_main,
		                   &srv->workers[started]) != 0) {
			err = ehr_error_set(EHR_ERR_INTERNAL, "cannot start worker thread");
			goto stop;
		}
	}
	ehr_log_json(EHR_LOG_INFO, "server.start",
	             json_pack("{s:s, s:i, s:I}", "url", srv->base_url, "workers", (int)srv->nworkers,
	                       "blocking_threads", (json_int_t)o->blocking_threads));
	printf("ehrgate listening on %s\n", srv->base_url);
	fflush(stdout);

	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload_tls(srv);
			continue;
		}
		ehr_logf(EHR_LOG_INFO, "server.stop", "signal %d: draining", sig);
		break;
	}
	clean = drain(srv);
stop:
	for (unsigned i = 0; i < started; i++)
		event_base_loopexit(srv->workers[i].base, NULL);
	for (unsigned i = 0; i < started; i++)
		pthread_join(srv->workers[i].thread, NULL);
	if (!clean) {
		/* Handlers may still be running: leave their state alone, the
		 * process is about to exit. */
		return ehr_error_set(EHR_ERR_TIMEOUT, "drain timed out");
	}
out:
	gw__metrics_listen_stop(srv->metrics_listener);
	gw_pool_stop(srv->pool);
	if (srv->workers) {
		for (unsigned i = 0; i < srv->nworkers; i++)
			worker_free(&srv->workers[i]);
		free(srv->workers);
	}
	gw_router_free(srv->router);
	SSL_CTX_free(srv->ctx);
	pthread_mutex_destroy(&srv->ctx_lock);
	free(srv);
	return err;
}

/* host:port with a numeric port 0..65535 and a non-empty host; [v6]:port. */
int gw_parse_listen(const char *v, char *host, size_t host_cap, uint16_t *port)
{
	const char *colon;
	const char *hstart = v, *hend;
	uint64_t p;

	if (*v == '[') {
		hend = strchr(v, ']');
		if (hend == NULL || hend[1] != ':')
			return ehr_error_set(EHR_ERR_CONFIG, "must be host:port or [v6addr]:port");
		hstart = v + 1;
		colon = hend + 1;
	} else {
		colon = strrchr(v, ':');
		if (colon == NULL)
			return ehr_error_set(EHR_ERR_CONFIG, "must be host:port");
		hend = colon;
	}
	if (hend == hstart || (size_t)(hend - hstart) >= host_cap)
		return ehr_error_set(EHR_ERR_CONFIG, "host part must be 1..%zu bytes", host_cap - 1);
	if (ehr_parse_u64(&p, colon + 1, 65535) < 0)
		return ehr_error_set(EHR_ERR_CONFIG, "port must be a number in 0..65535");
	memcpy(host, hstart, (size_t)(hend - hstart));
	host[hend - hstart] = '\0';
	*port = (uint16_t)p;
	return 0;
}
