/*
 * bench_ehr.c - the EHR service under load (issue 13), each figure next to
 * a floor measured in the same run (CONVENTIONS.md: ratios, never
 * assertions). Run it with tests/bench/ehr/run.sh: that script starts the
 * dev services and one gateway (fs store), hands them over in the
 * environment and stops them by PID afterwards.
 *
 * N workers, one thread each. Worker i owns one mTLS keep-alive connection
 * as the registered medical server "hosp" and one DPoP session as patient i
 * (enrolled and logged in through libehrclient, docs/PROTOCOL.md §5-7; a
 * contract grants "hosp" read and append). For each N and record size:
 *
 *   floors   durable file writes: N threads, each `size` bytes to a temp
 *            file, fsync, rename, fsync of the directory (the fs store's
 *            own sequence), on the file system of the gateway's store;
 *            pgbench: N clients, one single-row INSERT per transaction
 *            (synchronous_commit on) on the bench's Postgres;
 *            GET /healthz on the server connections;
 *   upload   POST /v1/patients/{pid}/records (worker i: patient i), 201;
 *   read     GET /v1/records/{rid} as the server, 200 and the bytes checked;
 *   patient  GET /v1/records/{rid} as the patient (DPoP), bytes checked.
 *
 * Each phase runs for the same time (-d). Printed per phase: requests/s,
 * p50 and p99 latency, the ratio to its floor, failures, new connections
 * (0 = keep-alive held), the gateway's CPU per request and its peak RSS in
 * the phase (VmHWM, reset before each phase through /proc/PID/clear_refs
 * when allowed, else the peak since start).
 *
 * Each phase that talks to the gateway (GET /healthz, upload, both reads)
 * gets a second, indented line, read over the same interval as the
 * gateway's CPU (workers held at the start barrier, then joined):
 *   pg N us CPU/req   user + system CPU of the Postgres cluster (the
 *                     postmaster and its children, /proc/PID/stat) per
 *                     request; a backend that exits during the phase is
 *                     lost from the sum (the gateway's pooled connections
 *                     stay; a drop in the sum leaves the figure out);
 *   idle N%           the machine's idle + iowait share (/proc/stat);
 *   ledger N entries/batch, commit N ms/batch, append wait N ms, db acquire
 *   N us              deltas of the gateway's counters on its metrics
 *                     listener: ehrgate_ledger_batch_entries_total and
 *                     ehrgate_ledger_commit_microseconds_total per
 *                     ehrgate_ledger_batches_total{outcome="committed"},
 *                     ehrgate_ledger_append_wait_microseconds_total per
 *                     ehrgate_ledger_appends_total,
 *                     ehrgate_db_acquire_wait_microseconds_total per
 *                     ehrgate_db_acquires_total.
 * A figure whose source is missing (no postmaster PID, a failed scrape, a
 * counter the gateway does not have) is left out, never an error.
 *
 *   bench_ehr [-d SECONDS (5)] [-n N,N.. (32,256)] [-s BYTES,BYTES.. (4096,65536)]
 *
 * Environment (run.sh sets it): the dev services' services.env, plus
 *   EHRGATE_BENCH_GW_DIR   the gateway's work dir (ehrgate.ini, state/)
 *   EHRGATE_BENCH_GW_URL   https://127.0.0.1:PORT
 *   EHRGATE_BENCH_GW_PID   the `ehrgate serve` process
 *   EHRGATE_BENCH_FS_DIR   where the file floor writes (the store's file system)
 *   EHRGATE_BENCH_PGBENCH  libpq conninfo for pgbench (a table bench_floor(payload text))
 *   EHRGATE_BENCH_PG_PID   the postmaster of that cluster (optional: else no pg figure)
 * and the metrics listener's URL from the "ehrgate metrics on URL" line in
 * $EHRGATE_BENCH_GW_DIR/serve.out (serve's stdout; else no counters).
 */
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "tests/harness/harness.h"
#include "tests/integration/ehr/ehrtest.h"

#define MAX_N 1024
#define MAX_LIST 8
#define SETUP_THREADS 8
#define METRICS_MAX (1u << 20) /* bytes of one /metrics answer */

enum kind { K_WARM, K_HEALTHZ, K_FILE, K_UPLOAD, K_SREAD, K_PREAD };
static const char *const kind_name[] = { "warm-up", "GET /healthz", "durable file writes",
	                                 "upload",  "server read",  "patient read" };

/* The gateway's counters read around each phase; a name without labels
 * sums all its series, one with labels is that series only. */
enum counter {
	C_BATCHES,
	C_ENTRIES,
	C_COMMIT_US,
	C_APPEND_WAIT_US,
	C_APPENDS,
	C_ACQUIRE_US,
	C_ACQUIRES,
	C_N
};
static const char *const counter_series[C_N] = {
	"ehrgate_ledger_batches_total{outcome=\"committed\"}",
	"ehrgate_ledger_batch_entries_total",
	"ehrgate_ledger_commit_microseconds_total",
	"ehrgate_ledger_append_wait_microseconds_total",
	"ehrgate_ledger_appends_total",
	"ehrgate_db_acquire_wait_microseconds_total",
	"ehrgate_db_acquires_total",
};

struct counters {
	double v[C_N];
	bool have[C_N];
};

/* What is read just before and just after a gateway phase. */
struct probe {
	double pg_cpu_s;                /* -1 unknown */
	unsigned long long idle, total; /* clock ticks; total 0: unknown */
	struct counters c;
};

struct rec {
	char rid[CLOUD_RID_HEX];
	uint64_t k; /* the counter stamped in the body's first 8 bytes */
};

struct worker {
	int id;
	struct ehr_client *srv, *pat;
	char pid[160];
	uint8_t *base; /* random bytes of the largest size: every body is these, stamped */
	struct rec *recs[MAX_LIST];
	size_t nrec[MAX_LIST], caprec[MAX_LIST], next_read[MAX_LIST];
	uint64_t k;
	/* the phase */
	enum kind kind;
	int si;
	size_t size;
	uint32_t *lat; /* microseconds */
	size_t nlat, caplat;
	long ok, fail, connects;
	char err[200];
	pthread_t th;
};

struct result {
	bool valid;
	double rate, p50_ms, p99_ms;
	long fail, connects;
	double cpu_us; /* gateway CPU per request, -1 unknown */
	long hwm_kib;
	double pg_cpu_us;  /* Postgres CPU per request, -1 unknown */
	double idle_pct;   /* the machine's idle share, -1 unknown */
	struct counters c; /* deltas over the phase */
};

static struct {
	int secs;
	unsigned ns[MAX_LIST], nn;
	size_t sizes[MAX_LIST], nsizes;
	struct gw_proc gw;
	const char *fs_dir, *pg;
	int pg_pid; /* the postmaster, 0 unknown */
	struct worker w[MAX_N];
	unsigned maxn;
	atomic_bool stop;
	pthread_barrier_t go;
	bool hwm_reset;
} B = { .secs = 5 };

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ one request */

static void stamp(uint8_t *body, const uint8_t *base, size_t n, uint64_t k)
{
	memcpy(body, base, n);
	for (int i = 0; i < 8 && (size_t)i < n; i++)
		body[i] = (uint8_t)(k >> (8 * i));
}

static bool body_ok(const struct worker *w, const struct ehr_buf *got, uint64_t k)
{
	uint8_t head[8];

	if (got->len != w->size || w->size < 8)
		return got->len == w->size && memcmp(got->data, w->base, w->size) == 0; /* not secret */
	stamp(head, w->base, 8, k);
	return memcmp(got->data, head, 8) == 0 &&                    /* not secret */
	       memcmp(got->data + 8, w->base + 8, w->size - 8) == 0; /* not secret */
}

static int fail(struct worker *w, const char *what, long status)
{
	if (w->err[0] == '\0')
		snprintf(w->err, sizeof(w->err), "%s: status %ld %s", what, status,
		         status ? "" : ehr_error_msg());
	return -1;
}

static int add_rec(struct worker *w, const char *rid, uint64_t k)
{
	int si = w->si;

	if (w->nrec[si] == w->caprec[si]) {
		size_t cap = w->caprec[si] ? 2 * w->caprec[si] : 256;
		struct rec *r = realloc(w->recs[si], cap * sizeof(*r));

		if (r == NULL)
			return -1;
		w->recs[si] = r;
		w->caprec[si] = cap;
	}
	snprintf(w->recs[si][w->nrec[si]].rid, CLOUD_RID_HEX, "%s", rid);
	w->recs[si][w->nrec[si]++].k = k;
	return 0;
}

/* The durable write the fs store makes: temp file, fsync, rename, fsync dir. */
static int file_write(struct worker *w, const uint8_t *body)
{
	char tmp[512], fin[512];
	int fd, dfd, err = 0;

	snprintf(tmp, sizeof(tmp), "%s/w%d-%llu.tmp", B.fs_dir, w->id, (unsigned long long)w->k);
	snprintf(fin, sizeof(fin), "%s/w%d-%llu", B.fs_dir, w->id, (unsigned long long)w->k);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(w, "open", 0);
	if (write(fd, body, w->size) != (ssize_t)w->size || fsync(fd) != 0)
		err = -1;
	close(fd);
	if (err == 0 && rename(tmp, fin) != 0)
		err = -1;
	dfd = open(B.fs_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (err == 0 && (dfd < 0 || fsync(dfd) != 0))
		err = -1;
	if (dfd >= 0)
		close(dfd);
	w->k++;
	return err < 0 ? fail(w, "file write", 0) : 0;
}

static int one_request(struct worker *w, uint8_t *body, struct ehr_buf *resp)
{
	long st = 0;

	ehr_buf_reset(resp);
	switch (w->kind) {
	case K_WARM:
		if (ehr_client_request(w->srv, &st, resp, "GET", "/healthz", NULL, NULL, 0, NULL, NULL) < 0 ||
		    st != 200)
			return fail(w, "warm-up (server)", st);
		if (ehr_client_request(w->pat, &st, resp, "GET", "/healthz", NULL, NULL, 0, NULL, NULL) < 0 ||
		    st != 200)
			return fail(w, "warm-up (patient)", st);
		return 0;
	case K_HEALTHZ:
		if (ehr_client_request(w->srv, &st, resp, "GET", "/healthz", NULL, NULL, 0, NULL, NULL) < 0 ||
		    st != 200)
			return fail(w, "GET /healthz", st);
		w->connects += ehr_client_last_connects(w->srv) > 0;
		return 0;
	case K_FILE: stamp(body, w->base, w->size, w->k); return file_write(w, body);
	case K_UPLOAD: {
		char rid[CLOUD_RID_HEX];

		stamp(body, w->base, w->size, w->k);
		st = ehrt_put(w->srv, w->pid, NULL, body, w->size, rid);
		w->connects += ehr_client_last_connects(w->srv) > 0;
		if (st != 201 || rid[0] == '\0')
			return fail(w, "upload", st);
		return add_rec(w, rid, w->k++);
	}
	case K_SREAD:
	case K_PREAD: {
		struct ehr_client *c = w->kind == K_SREAD ? w->srv : w->pat;
		const struct rec *r;

		if (w->nrec[w->si] == 0)
			return fail(w, "read: nothing was uploaded at this size", 0);
		r = &w->recs[w->si][w->next_read[w->si]++ % w->nrec[w->si]];
		st = ehrt_get(c, r->rid, resp);
		w->connects += ehr_client_last_connects(c) > 0;
		if (st != 200)
			return fail(w, kind_name[w->kind], st);
		if (!body_ok(w, resp, r->k))
			return fail(w, "read: the bytes differ from the upload", st);
		return 0;
	}
	default: return -1;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t *body = malloc(w->size ? w->size : 1);
	struct ehr_buf resp = EHR_BUF_INIT(w->size + (1u << 16));

	pthread_barrier_wait(&B.go);
	while (body != NULL && !atomic_load(&B.stop)) {
		double t0 = now_s(), us;

		if (one_request(w, body, &resp) < 0) {
			w->fail++;
			if (w->kind == K_WARM || w->fail > 1000)
				break;
			continue;
		}
		us = (now_s() - t0) * 1e6;
		if (w->nlat == w->caplat) {
			size_t cap = w->caplat ? 2 * w->caplat : 4096;
			uint32_t *l = realloc(w->lat, cap * sizeof(*l));

			if (l == NULL)
				break;
			w->lat = l;
			w->caplat = cap;
		}
		w->lat[w->nlat++] = us > 4e9 ? UINT32_MAX : (uint32_t)us;
		w->ok++;
		if (w->kind == K_WARM)
			break;
	}
	ehr_buf_free(&resp);
	free(body);
	return NULL;
}

/* ------------------------------------------------------------ phases */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Rate and latency percentiles of n samples (microseconds) over elapsed s. */
static void summarize(struct result *r, uint32_t *lat, size_t n, double elapsed)
{
	r->valid = n > 0;
	r->rate = elapsed > 0 ? (double)n / elapsed : 0;
	if (n == 0)
		return;
	qsort(lat, n, sizeof(*lat), cmp_u32);
	r->p50_ms = lat[n / 2] / 1000.0;
	r->p99_ms = lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0;
}

static void hwm_reset(void)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)B.gw.pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	B.hwm_reset = fd >= 0 && write(fd, "5", 1) == 1;
	if (fd >= 0)
		close(fd);
}

/* One line "name{labels} value" or "name value" of the Prometheus text
 * format, added to c when it is one of counter_series. */
static void count_line(struct counters *c, const char *line, size_t len)
{
	for (int i = 0; i < C_N; i++) {
		const char *want = counter_series[i];
		size_t k = strlen(want);
		char *end;
		double v;

		if (len <= k || strncmp(line, want, k) != 0)
			continue;
		if (line[k] == '{' && strchr(want, '{') == NULL) { /* any labels */
			while (k < len && line[k] != '}')
				k++;
			k++;
		}
		if (k >= len || line[k] != ' ')
			continue;
		v = strtod(line + k, &end);
		if (end == line + k || end > line + len || (end < line + len && *end != ' ') || !isfinite(v))
			continue;
		c->v[i] += v;
		c->have[i] = true;
	}
}

/* A /metrics text (NUL-terminated), line by line; # lines are comments. */
static void count_text(struct counters *c, const char *text)
{
	for (const char *line = text; *line != '\0';) {
		const char *nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);

		if (line[0] != '#')
			count_line(c, line, len);
		if (nl == NULL)
			break;
		line = nl + 1;
	}
}

/* The gateway's counters from its metrics listener. A failed scrape leaves
 * them absent: it never fails the benchmark. */
static void scrape(struct counters *c)
{
	struct gwp_req rq = { .path = B.gw.metrics_url, .timeout_ms = 3000 };
	struct gwp_resp res;

	memset(c, 0, sizeof(*c));
	if (B.gw.metrics_url[0] == '\0' || gwp_request(&B.gw, &rq, &res) < 0)
		return;
	if (res.status == 200 && res.body_len <= METRICS_MAX)
		count_text(c, res.body);
	gwp_resp_free(&res);
}

static void probe_read(struct probe *p)
{
	p->pg_cpu_s = B.pg_pid > 0 ? ehr_test_proc_family_cpu_s(B.pg_pid) : -1;
	if (ehr_test_cpu_ticks(&p->idle, &p->total) < 0)
		p->total = 0;
	scrape(&p->c);
}

/* The figures of the second line from the probes around a phase of n requests. */
static void probe_delta(struct result *r, const struct probe *a, const struct probe *b, size_t n)
{
	r->pg_cpu_us = -1;
	if (a->pg_cpu_s >= 0 && b->pg_cpu_s >= a->pg_cpu_s && n > 0)
		r->pg_cpu_us = (b->pg_cpu_s - a->pg_cpu_s) * 1e6 / (double)n;
	r->idle_pct = -1;
	if (a->total > 0 && b->total > a->total && b->idle >= a->idle)
		r->idle_pct = 100.0 * (double)(b->idle - a->idle) / (double)(b->total - a->total);
	for (int i = 0; i < C_N; i++) {
		r->c.have[i] = a->c.have[i] && b->c.have[i] && b->c.v[i] >= a->c.v[i];
		r->c.v[i] = r->c.have[i] ? b->c.v[i] - a->c.v[i] : 0;
	}
}

static struct result run_phase(enum kind kind, unsigned n, int si);

/* One untimed request per connection first: a connection the gateway
 * closed while idle (between phases) is not re-opened inside a figure. */
static struct result run_timed(enum kind kind, unsigned n, int si)
{
	if (kind != K_FILE)
		run_phase(K_WARM, n, -1);
	return run_phase(kind, n, si);
}

static struct result run_phase(enum kind kind, unsigned n, int si)
{
	struct result r = { .pg_cpu_us = -1, .idle_pct = -1 };
	bool gw_phase = kind != K_WARM && kind != K_FILE;
	struct probe p0, p1;
	double t0, t1, c0, c1;
	uint32_t *all;
	size_t total = 0;

	atomic_store(&B.stop, false);
	pthread_barrier_init(&B.go, NULL, n + 1);
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &B.w[i];

		w->kind = kind;
		w->si = si;
		w->size = si >= 0 ? B.sizes[si] : 0;
		w->nlat = 0;
		w->ok = w->fail = w->connects = 0;
		w->err[0] = '\0';
		pthread_create(&w->th, NULL, worker_main, w);
	}
	hwm_reset();
	if (gw_phase)
		probe_read(&p0);
	c0 = ehr_test_proc_cpu_s((int)B.gw.pid);
	pthread_barrier_wait(&B.go);
	t0 = now_s();
	if (kind != K_WARM) {
		struct timespec d = { B.secs, 0 };

		nanosleep(&d, NULL);
		atomic_store(&B.stop, true);
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(B.w[i].th, NULL);
	t1 = now_s();
	c1 = ehr_test_proc_cpu_s((int)B.gw.pid);
	if (gw_phase)
		probe_read(&p1);
	pthread_barrier_destroy(&B.go);
	for (unsigned i = 0; i < n; i++)
		total += B.w[i].nlat;
	all = malloc((total ? total : 1) * sizeof(*all));
	total = 0;
	for (unsigned i = 0; i < n; i++) {
		if (all != NULL)
			memcpy(all + total, B.w[i].lat, B.w[i].nlat * sizeof(*all));
		total += B.w[i].nlat;
		r.fail += B.w[i].fail;
		r.connects += B.w[i].connects;
		if (B.w[i].err[0] && r.fail == B.w[i].fail)
			fprintf(stderr, "  %s, worker %u: %s\n", kind_name[kind], i, B.w[i].err);
	}
	if (all != NULL)
		summarize(&r, all, total, t1 - t0);
	free(all);
	r.cpu_us = kind != K_FILE && c0 >= 0 && c1 >= 0 && total > 0 ? (c1 - c0) * 1e6 / (double)total : -1;
	r.hwm_kib = kind != K_FILE ? ehr_test_proc_kib((int)B.gw.pid, "VmHWM") : -1;
	if (gw_phase)
		probe_delta(&r, &p0, &p1, total);
	return r;
}

/* ------------------------------------------------------------ pgbench */

/* The 3rd field of each pgbench -l line is the transaction's latency in us. */
static size_t pgbench_latencies(const char *prefix, uint32_t **out)
{
	char pat[600];
	glob_t g;
	size_t n = 0, cap = 0;

	*out = NULL;
	snprintf(pat, sizeof(pat), "%s.*", prefix);
	if (glob(pat, 0, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		FILE *f = fopen(g.gl_pathv[i], "r");
		char line[256];

		while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
			char *p = line, *end;
			unsigned long long v;

			for (int field = 0; field < 2 && p != NULL; field++)
				p = (p = strchr(p, ' ')) != NULL ? p + 1 : NULL;
			if (p == NULL)
				continue;
			v = strtoull(p, &end, 10);
			if (end == p)
				continue;
			if (n == cap) {
				uint32_t *l = realloc(*out, (cap = cap ? 2 * cap : 65536) * sizeof(*l));
				if (l == NULL)
					break;
				*out = l;
			}
			(*out)[n++] = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
		}
		if (f != NULL)
			fclose(f);
		unlink(g.gl_pathv[i]);
	}
	globfree(&g);
	return n;
}

static struct result run_pgbench(unsigned n)
{
	struct result r = { 0 };
	char script[512], prefix[512], cs[16], ts[16], out[8192];
	const char *argv[] = { "/usr/bin/pgbench", "-n",   "-c", cs,  "-j", "2", "-T", ts, "-f", script, "-l",
		               "--log-prefix",     prefix, B.pg, NULL };
	const char *tps;
	uint32_t *lat;
	size_t nl;
	FILE *f;
	int rc;

	snprintf(script, sizeof(script), "%s/pgbench-floor.sql", B.fs_dir);
	snprintf(prefix, sizeof(prefix), "%s/pgb", B.fs_dir);
	snprintf(cs, sizeof(cs), "%u", n);
	/* -T counts from the start, connections included (256 of them take
	 * seconds on a busy machine); its tps line leaves them out */
	snprintf(ts, sizeof(ts), "%u", (unsigned)B.secs + 2 + n / 16);
	if ((f = fopen(script, "w")) == NULL)
		return r;
	fputs("INSERT INTO bench_floor (payload) VALUES (repeat('x', 200));\n", f);
	fclose(f);
	rc = ehr_test_run(out, sizeof(out), argv);
	nl = pgbench_latencies(prefix, &lat);
	tps = strstr(out, "tps = ");
	if (rc != 0 || tps == NULL) {
		fprintf(stderr, "  pgbench exited %d:\n%s\n", rc, out);
		free(lat);
		return r;
	}
	summarize(&r, lat, nl, B.secs);
	r.rate = strtod(tps + 6, NULL); /* its own rate, without the connection time */
	r.cpu_us = -1;
	r.hwm_kib = -1;
	r.pg_cpu_us = -1;
	r.idle_pct = -1;
	free(lat);
	return r;
}

/* ------------------------------------------------------------ setup */

struct setup_arg {
	unsigned t;
	char srv_id[128];
	int err;
	char what[256];
};

/* Patients t, t + SETUP_THREADS, ...: create, enrol, log in, grant "hosp". */
static void *setup_main(void *arg)
{
	struct setup_arg *a = arg;
	struct ehr_client *srv = NULL;
	char dir[GWP_PATH + 16], name[32];

	snprintf(dir, sizeof(dir), "%s/hosp", B.gw.dir);
	if ((a->err = ehr_client_open_profile(&srv, dir)) < 0) {
		snprintf(a->what, sizeof(a->what), "open hosp: %s", ehr_error_msg());
		return NULL;
	}
	for (unsigned i = a->t; i < B.maxn && a->err == 0; i += SETUP_THREADS) {
		snprintf(name, sizeof(name), "p%04u", i);
		a->err = ehrt_patient(&B.gw, srv, name, B.w[i].pid, &B.w[i].pat);
		if (a->err == 0)
			a->err = ehrt_grant(&B.gw, name, a->srv_id, "read,append");
		if (a->err == 0)
			a->err = ehr_client_open_profile(&B.w[i].srv, dir);
		if (a->err < 0)
			snprintf(a->what, sizeof(a->what), "patient %u: %s", i, ehr_error_msg());
	}
	ehr_client_free(srv);
	return NULL;
}

static int setup(void)
{
	struct setup_arg a[SETUP_THREADS];
	struct ehr_client *hosp = NULL;
	char log[GWP_PATH + 16];
	int saved, fd, err = 0;
	double t0 = now_s();

	snprintf(log, sizeof(log), "%s/setup.log", B.gw.dir);
	/* registration, enrolment and contracts print progress on stderr: into setup.log */
	fflush(stderr);
	saved = dup(2);
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
	err = ehrt_server(&B.gw, "hosp", &hosp);
	if (err == 0) {
		pthread_t th[SETUP_THREADS];

		for (unsigned t = 0; t < SETUP_THREADS; t++) {
			a[t] = (struct setup_arg){ .t = t };
			snprintf(a[t].srv_id, sizeof(a[t].srv_id), "%s", ehr_client_id(hosp));
			pthread_create(&th[t], NULL, setup_main, &a[t]);
		}
		for (unsigned t = 0; t < SETUP_THREADS; t++) {
			pthread_join(th[t], NULL);
			if (a[t].err < 0 && err == 0) {
				err = a[t].err;
				fflush(stderr);
				dup2(saved, 2);
				fprintf(stderr, "setup: %s (see %s)\n", a[t].what, log);
			}
		}
	} else {
		fflush(stderr);
		dup2(saved, 2);
		fprintf(stderr, "setup: register hosp: %s (see %s)\n", ehr_error_msg(), log);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ehr_client_free(hosp);
	if (err == 0)
		printf("setup: server \"hosp\" registered; %u patients enrolled, logged in and granting it "
		       "read,append, in %.1f s\n",
		       B.maxn, now_s() - t0);
	return err;
}

/* ------------------------------------------------------------ output */

static void line(unsigned n, size_t size, const char *what, const struct result *r,
                 const struct result *floor, const char *floor_name)
{
	char sz[32] = "", ratio[96] = "", extra[128] = "";

	if (size)
		snprintf(sz, sizeof(sz), "%zu KiB", size / 1024);
	if (!r->valid) {
		printf("N=%-4u %-7s %-22s n/a (failures: %ld)\n", n, sz, what, r->fail);
		return;
	}
	if (floor != NULL && floor->valid && floor->rate > 0)
		snprintf(ratio, sizeof(ratio), "ratio %.3f to %s", r->rate / floor->rate, floor_name);
	if (r->cpu_us >= 0)
		snprintf(extra, sizeof(extra), "  gw %.0f us CPU/req, peak RSS %.1f MiB", r->cpu_us,
		         r->hwm_kib / 1024.0);
	printf("N=%-4u %-7s %-22s %9.0f/s  p50 %7.2f ms  p99 %7.2f ms  %-38s fail %ld, new conns %ld%s\n", n,
	       sz, what, r->rate, r->p50_ms, r->p99_ms, ratio, r->fail, r->connects, extra);
}

/* Append one figure to the second line: ", " joins it to the figures of
 * its group (those from b->len == group on), "; " to an earlier group. */
static int figure(struct ehr_buf *b, size_t group, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int figure(struct ehr_buf *b, size_t group, const char *fmt, ...)
{
	va_list ap;
	int err;

	GUARD(ehr_buf_append_str(b, b->len == 0 ? "" : b->len > group ? ", " : "; "));
	va_start(ap, fmt);
	err = ehr_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return err;
}

/* The second line of a gateway phase, with the figures that are known. */
static void line_more(const struct result *r)
{
	struct ehr_buf b = EHR_BUF_INIT(512);
	const double *d = r->c.v;
	const bool *h = r->c.have;
	size_t g = 0;
	bool batches = h[C_BATCHES] && d[C_BATCHES] > 0;

	if (!r->valid)
		return;
	if (r->pg_cpu_us >= 0 && figure(&b, g, "pg %.0f us CPU/req", r->pg_cpu_us) < 0)
		goto out;
	if (r->idle_pct >= 0 && figure(&b, g, "idle %.0f%%", r->idle_pct) < 0)
		goto out;
	g = b.len;
	if (batches && h[C_ENTRIES] &&
	    figure(&b, g, "ledger %.1f entries/batch", d[C_ENTRIES] / d[C_BATCHES]) < 0)
		goto out;
	if (batches && h[C_COMMIT_US] &&
	    figure(&b, g, "commit %.2f ms/batch", d[C_COMMIT_US] / 1000.0 / d[C_BATCHES]) < 0)
		goto out;
	if (h[C_APPENDS] && h[C_APPEND_WAIT_US] && d[C_APPENDS] > 0 &&
	    figure(&b, g, "append wait %.2f ms", d[C_APPEND_WAIT_US] / 1000.0 / d[C_APPENDS]) < 0)
		goto out;
	g = b.len;
	if (h[C_ACQUIRES] && h[C_ACQUIRE_US] && d[C_ACQUIRES] > 0 &&
	    figure(&b, g, "db acquire %.0f us", d[C_ACQUIRE_US] / d[C_ACQUIRES]) < 0)
		goto out;
	if (b.len > 0)
		printf("%52s%s\n", "", ehr_buf_cstr(&b));
out:
	ehr_buf_free(&b);
}

static void clear_dir_files(void)
{
	char pat[600];
	glob_t g;

	snprintf(pat, sizeof(pat), "%s/w*", B.fs_dir);
	if (glob(pat, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			unlink(g.gl_pathv[i]);
		globfree(&g);
	}
}

static void run_n(unsigned n)
{
	struct result h, pg, r;

	r = run_phase(K_WARM, n, -1);
	if (r.fail > 0) {
		printf("N=%u: warm-up failed on %ld connections; skipped\n", n, r.fail);
		return;
	}
	h = run_timed(K_HEALTHZ, n, -1);
	line(n, 0, "floor GET /healthz", &h, NULL, NULL);
	line_more(&h);
	pg = run_pgbench(n);
	line(n, 0, "floor pgbench 1-row", &pg, NULL, NULL);
	for (size_t si = 0; si < B.nsizes; si++) {
		size_t size = B.sizes[si];
		struct result f, up, sr, pr;

		f = run_timed(K_FILE, n, (int)si);
		clear_dir_files();
		line(n, size, "floor durable files", &f, NULL, NULL);
		up = run_timed(K_UPLOAD, n, (int)si);
		line(n, size, "upload", &up, &f, "durable files");
		if (up.valid && pg.valid && pg.rate > 0)
			printf("%52s(ratio %.3f to pgbench single-row commits)\n", "", up.rate / pg.rate);
		line_more(&up);
		sr = run_timed(K_SREAD, n, (int)si);
		line(n, size, "server read", &sr, &h, "GET /healthz");
		line_more(&sr);
		pr = run_timed(K_PREAD, n, (int)si);
		line(n, size, "patient read (DPoP)", &pr, &h, "GET /healthz");
		line_more(&pr);
	}
	printf("N=%u: gateway VmHWM %.1f MiB%s\n\n", n, ehr_test_proc_kib((int)B.gw.pid, "VmHWM") / 1024.0,
	       B.hwm_reset ? " (the last phase's peak; reset before each phase)" : " (since start)");
}

/* ------------------------------------------------------------ main */

/* The metrics listener's URL from serve's "ehrgate metrics on URL" line
 * (run.sh keeps serve's stdout as serve.out); left "" when there is none. */
static void find_metrics_url(void)
{
	static const char tag[] = "ehrgate metrics on ";
	struct ehr_buf out = EHR_BUF_INIT(1u << 16);
	char path[GWP_PATH + 16];
	const char *url;

	snprintf(path, sizeof(path), "%s/serve.out", B.gw.dir);
	if (ehr_file_read(&out, path, out.max) == 0 && (url = strstr(ehr_buf_cstr(&out), tag)) != NULL) {
		size_t len;

		url += sizeof(tag) - 1;
		len = strcspn(url, "\r\n");
		if (strncmp(url, "http://", 7) == 0 && len < sizeof(B.gw.metrics_url))
			snprintf(B.gw.metrics_url, sizeof(B.gw.metrics_url), "%.*s", (int)len, url);
	}
	ehr_buf_free(&out);
}

/* $EHRGATE_BENCH_PG_PID, or 0 when unset or not a pid. */
static int postmaster_pid(void)
{
	const char *s = getenv("EHRGATE_BENCH_PG_PID");
	int64_t v;

	if (s == NULL || ehr_parse_i64(&v, s, 1, INT32_MAX) < 0)
		return 0;
	return (int)v;
}

static int parse_list(const char *s, uint64_t max, uint64_t *out, size_t *n)
{
	char tok[32];
	size_t k = 0;

	*n = 0;
	for (const char *p = s;; p++) {
		if (*p == ',' || *p == '\0') {
			uint64_t v;

			tok[k] = '\0';
			if (k == 0 || *n == MAX_LIST || ehr_parse_u64(&v, tok, max) < 0 || v == 0)
				return -1;
			out[(*n)++] = v;
			k = 0;
			if (*p == '\0')
				return 0;
		} else if (k + 1 < sizeof(tok)) {
			tok[k++] = *p;
		} else {
			return -1;
		}
	}
}

static int parse_args(int argc, char **argv)
{
	uint64_t v[MAX_LIST];
	size_t n;

	B.ns[0] = 32;
	B.ns[1] = 256;
	B.nn = 2;
	B.sizes[0] = 4096;
	B.sizes[1] = 65536;
	B.nsizes = 2;
	for (int i = 1; i < argc; i += 2) {
		if (i + 1 >= argc)
			return -1;
		if (strcmp(argv[i], "-d") == 0) {
			if (ehr_parse_u64(v, argv[i + 1], 3600) < 0 || v[0] == 0)
				return -1;
			B.secs = (int)v[0];
		} else if (strcmp(argv[i], "-n") == 0) {
			if (parse_list(argv[i + 1], MAX_N, v, &n) < 0)
				return -1;
			for (size_t k = 0; k < n; k++)
				B.ns[k] = (unsigned)v[k];
			B.nn = (unsigned)n;
		} else if (strcmp(argv[i], "-s") == 0) {
			if (parse_list(argv[i + 1], 64u << 20, v, &n) < 0)
				return -1;
			for (size_t k = 0; k < n; k++)
				B.sizes[k] = (size_t)v[k];
			B.nsizes = n;
		} else {
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = getenv("EHRGATE_BENCH_GW_DIR"), *url = getenv("EHRGATE_BENCH_GW_URL");
	const char *pid = getenv("EHRGATE_BENCH_GW_PID");
	size_t maxsize = 0;
	int64_t p = 0;

	if (parse_args(argc, argv) < 0) {
		fprintf(stderr, "usage: bench_ehr [-d SECONDS] [-n N,N..] [-s BYTES,BYTES..]\n");
		return 2;
	}
	B.fs_dir = getenv("EHRGATE_BENCH_FS_DIR");
	B.pg = getenv("EHRGATE_BENCH_PGBENCH");
	if (pid == NULL || ehr_parse_i64(&p, pid, 1, INT32_MAX) < 0 || B.fs_dir == NULL || B.pg == NULL ||
	    gwp_attach(&B.gw, dir, url, (pid_t)p) < 0) {
		fprintf(stderr, "bench_ehr: EHRGATE_BENCH_* not set (use tests/bench/ehr/run.sh)\n");
		return 2;
	}
	B.pg_pid = postmaster_pid();
	find_metrics_url();
	setvbuf(stdout, NULL, _IOLBF, 0);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (unsigned i = 0; i < B.nn; i++)
		B.maxn = B.ns[i] > B.maxn ? B.ns[i] : B.maxn;
	for (size_t i = 0; i < B.nsizes; i++)
		maxsize = B.sizes[i] > maxsize ? B.sizes[i] : maxsize;
	for (unsigned i = 0; i < B.maxn; i++) {
		B.w[i].id = (int)i;
		B.w[i].base = malloc(maxsize);
		if (B.w[i].base == NULL || RAND_bytes(B.w[i].base, (int)maxsize) != 1)
			return 1;
	}
	printf("bench_ehr: gateway %s (pid %d), fs store; %d s per phase; %ld cores\n", B.gw.base_url,
	       (int)B.gw.pid, B.secs, sysconf(_SC_NPROCESSORS_ONLN));
	if (setup() < 0)
		return 1;
	for (unsigned i = 0; i < B.nn; i++)
		run_n(B.ns[i]);
	for (unsigned i = 0; i < B.maxn; i++) {
		ehr_client_free(B.w[i].srv);
		ehr_client_free(B.w[i].pat);
		free(B.w[i].base);
		free(B.w[i].lat);
		for (int s = 0; s < MAX_LIST; s++)
			free(B.w[i].recs[s]);
	}
	curl_global_cleanup();
	return 0;
}
