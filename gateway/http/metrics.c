/*
 * metrics.c - the engine's own metrics in Prometheus text (format 0.0.4):
 * requests and latency by route, open connections, in-flight requests, the
 * blocking queue, refusals and TLS reloads. They belong to one server
 * instance, so they live here and not in the process-wide registry
 * (common/metrics.h), which /metrics renders after them. They are served
 * on their own plain-HTTP listener (metrics_listen.c), never on the TLS
 * port.
 *
 * Each worker owns a shard and is its only writer, so an observation is a
 * relaxed load and store with no lock and no shared cache line. A scrape
 * sums the shards with relaxed loads; a count may lag by a request, never
 * tear.
 */
#include "gateway/http/http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int status_codes[] = { 200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403,
	                            404, 405, 406, 408, 409, 410, 411, 412, 413, 414, 415,
	                            416, 417, 422, 429, 431, 500, 501, 502, 503, 504, 505 };
#define NSTATUS (EHR_ARRAY_LEN(status_codes) + 1) /* last: any other */
static const char *methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "OTHER" };
#define NMETHOD EHR_ARRAY_LEN(methods)
/* Upper bounds in microseconds; the last bucket is +Inf. */
static const int64_t bucket_us[] = { 1000,   2500,   5000,    10000,   25000,   50000,   100000,
	                             250000, 500000, 1000000, 2500000, 5000000, 10000000 };
static const char *bucket_le[] = { "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
	                           "0.25",  "0.5",    "1",     "2.5",  "5",     "10" };
#define NBUCKET (EHR_ARRAY_LEN(bucket_us) + 1)

struct route_metrics {
	uint64_t count[NMETHOD][NSTATUS];
	uint64_t bucket[NBUCKET];
	uint64_t sum_us;
	uint64_t n;
};

struct gw_metrics {
	size_t nroutes; /* + 1 for "unmatched" */
	struct route_metrics *r;
};

int gw_metrics_new(struct gw_metrics **out, size_t nroutes)
{
	struct gw_metrics *m = calloc(1, sizeof(*m));

	ENSURE(m != NULL, EHR_ERR_NOMEM);
	m->nroutes = nroutes + 1;
	m->r = calloc(m->nroutes, sizeof(*m->r));
	if (m->r == NULL) {
		free(m);
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	}
	*out = m;
	return 0;
}

void gw_metrics_free(struct gw_metrics *m)
{
	if (m == NULL)
		return;
	free(m->r);
	free(m);
}

static inline void bump(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static inline uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void gw_metrics_observe(struct gw_metrics *m, int route_index, const char *method, int status, int64_t dur_us)
{
	struct route_metrics *rm;
	size_t mi = NMETHOD - 1, si = NSTATUS - 1, bi = NBUCKET - 1;

	if (m == NULL)
		return;
	rm = &m->r[(route_index < 0 || (size_t)route_index >= m->nroutes - 1) ? m->nroutes - 1
	                                                                      : (size_t)route_index];
	for (size_t i = 0; i < NMETHOD - 1; i++)
		if (strcmp(methods[i], method) == 0) {
			mi = i;
			break;
		}
	for (size_t i = 0; i < NSTATUS - 1; i++)
		if (status_codes[i] == status) {
			si = i;
			break;
		}
	if (dur_us < 0)
		dur_us = 0;
	for (size_t i = 0; i < NBUCKET - 1; i++)
		if (dur_us <= bucket_us[i]) {
			bi = i;
			break;
		}
	bump(&rm->count[mi][si], 1);
	bump(&rm->bucket[bi], 1);
	bump(&rm->sum_us, (uint64_t)dur_us);
	bump(&rm->n, 1);
}

int gw__metrics_render(struct gw_server *srv, struct ehr_buf *out)
{
	size_t nr = gw_router_count(srv->router) + 1;

	GUARD(ehr_buf_append_str(
	        out, "# HELP ehrgate_http_requests_total HTTP requests answered, by route, method "
	             "and status.\n# TYPE ehrgate_http_requests_total counter\n"));
	for (size_t ri = 0; ri < nr; ri++) {
		const char *name = ri < nr - 1 ? gw_router_route(srv->router, ri)->name : "unmatched";
		for (size_t mi = 0; mi < NMETHOD; mi++)
			for (size_t si = 0; si < NSTATUS; si++) {
				uint64_t v = 0;
				for (unsigned w = 0; w < srv->nworkers; w++)
					v += load(&srv->workers[w].metrics->r[ri].count[mi][si]);
				if (v == 0)
					continue;
				if (si < NSTATUS - 1)
					GUARD(ehr_buf_printf(out,
					                     "ehrgate_http_requests_total{route=\"%s\","
					                     "method=\"%s\",status=\"%d\"} %llu\n",
					                     name, methods[mi], status_codes[si],
					                     (unsigned long long)v));
				else
					GUARD(ehr_buf_printf(out,
					                     "ehrgate_http_requests_total{route=\"%s\","
					                     "method=\"%s\",status=\"other\"} %llu\n",
					                     name, methods[mi], (unsigned long long)v));
			}
	}
	GUARD(ehr_buf_append_str(
	        out, "# HELP ehrgate_http_request_duration_seconds Time from a request's arrival to "
	             "its reply, by route.\n# TYPE ehrgate_http_request_duration_seconds histogram\n"));
	for (size_t ri = 0; ri < nr; ri++) {
		const char *name = ri < nr - 1 ? gw_router_route(srv->router, ri)->name : "unmatched";
		uint64_t b[NBUCKET] = { 0 }, sum = 0, n = 0, cum = 0;
		for (unsigned w = 0; w < srv->nworkers; w++) {
			const struct route_metrics *rm = &srv->workers[w].metrics->r[ri];
			for (size_t i = 0; i < NBUCKET; i++)
				b[i] += load(&rm->bucket[i]);
			sum += load(&rm->sum_us);
			n += load(&rm->n);
		}
		if (n == 0)
			continue;
		for (size_t i = 0; i < NBUCKET - 1; i++) {
			cum += b[i];
			GUARD(ehr_buf_printf(
			        out,
			        "ehrgate_http_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} %llu\n",
			        name, bucket_le[i], (unsigned long long)cum));
		}
		cum += b[NBUCKET - 1];
		GUARD(ehr_buf_printf(
		        out, "ehrgate_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
		        name, (unsigned long long)cum));
		GUARD(ehr_buf_printf(out, "ehrgate_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
		                     name, (double)sum / 1e6));
		GUARD(ehr_buf_printf(out, "ehrgate_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
		                     name, (unsigned long long)n));
	}
	GUARD(ehr_buf_printf(out,
	                     "# HELP ehrgate_http_open_connections TLS connections open now.\n"
	                     "# TYPE ehrgate_http_open_connections gauge\n"
	                     "ehrgate_http_open_connections %ld\n"
	                     "# HELP ehrgate_http_inflight_requests Requests received and not yet answered.\n"
	                     "# TYPE ehrgate_http_inflight_requests gauge\n"
	                     "ehrgate_http_inflight_requests %ld\n"
	                     "# HELP ehrgate_blocking_queue_depth Jobs waiting for a blocking-pool thread.\n"
	                     "# TYPE ehrgate_blocking_queue_depth gauge\n"
	                     "ehrgate_blocking_queue_depth %zu\n"
	                     "# HELP ehrgate_connections_refused_total Connections refused over [server] "
	                     "max_connections or while draining.\n"
	                     "# TYPE ehrgate_connections_refused_total counter\n"
	                     "ehrgate_connections_refused_total %lu\n"
	                     "# HELP ehrgate_tls_reloads_total Successful certificate reloads (SIGHUP).\n"
	                     "# TYPE ehrgate_tls_reloads_total counter\n"
	                     "ehrgate_tls_reloads_total %lu\n"
	                     "# HELP ehrgate_tls_reload_failures_total Failed certificate reloads (SIGHUP).\n"
	                     "# TYPE ehrgate_tls_reload_failures_total counter\n"
	                     "ehrgate_tls_reload_failures_total %lu\n",
	                     atomic_load(&srv->open_conns), atomic_load(&srv->inflight),
	                     gw_pool_depth(srv->pool), atomic_load(&srv->conns_refused),
	                     atomic_load(&srv->tls_reloads), atomic_load(&srv->tls_reload_failures)));
	return 0;
}
