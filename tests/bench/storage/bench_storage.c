/*
 * bench_storage.c - storage throughput, each figure next to a baseline
 * measured in the same run (CONVENTIONS.md: ratios, never assertions).
 * Run it with tests/bench/storage/run.sh: that script starts the dev
 * services and one gateway, hands them over in the environment and stops
 * them by PID afterwards.
 *
 * Every figure is measured EHRGATE_BENCH_ROUNDS times (default 5). In each
 * round the measured side and its baseline run one after the other, and
 * which of them goes first swaps from round to round. The output is the
 * median over rounds with the [min..max] spread; a ratio is taken inside
 * each round (so both sides of it saw the same machine load), then its
 * median is printed.
 *
 *   1. crypto: STREAM envelope encryption/decryption vs raw AES-256-GCM (one
 *      EVP context, 64 KiB calls, the same bytes): the cost of segmenting.
 *   2. fs backend: an encrypted 64 MiB record (temp file, fsync, rename) vs a
 *      raw write + fsync of the same size.
 *   3. gateway (TLS, mTLS client, encryption, S3, ledger) vs a direct S3
 *      PUT/GET of the same bytes, for 1 KiB, 1 MiB and 64 MiB, plus a 64 MiB
 *      upload sent with chunked transfer encoding (no Content-Length). The
 *      direct side takes the S3 endpoint, bucket, region and credentials
 *      from the running gateway's own ehrgate.ini, so both sides use the same
 *      S3 path (both through the SigV4-verifying front or both straight to
 *      s3rver, as run.sh configured the gateway); the output says which.
 *   4. gateway memory: a thread samples VmRSS of the gateway process from
 *      /proc/<pid>/status every 5 ms during each 64 MiB gateway transfer. The
 *      baseline is taken after a warm-up request (TLS, pools and the ledger
 *      are set up by then); VmHWM is printed too.
 *
 * Environment (run.sh sets it): the dev services' services.env, plus
 *   EHRGATE_BENCH_GW_DIR  the gateway's work dir (ehrgate.ini, state/ca.pem)
 *   EHRGATE_BENCH_GW_URL  https://127.0.0.1:PORT
 *   EHRGATE_BENCH_GW_PID  the `ehrgate serve` process
 *   EHRGATE_BENCH_ROUNDS  rounds per figure (1..31, default 5)
 *   EHRGATE_BENCH_TMP     where the crypto/fs scratch dir goes (default /tmp)
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cloud/cloud_internal.h"
#include "tests/harness/harness.h"
#include "tests/integration/ehr/ehrtest.h"

#define MAX_ROUNDS 31
#define MIB (1024.0 * 1024.0)
#define BIG ((size_t)64 << 20)

static int rounds = 5;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mbps(double bytes, double s)
{
	return s > 0 ? bytes / s / 1e6 : 0;
}

static int null_write(void *ctx, const uint8_t *p, size_t n)
{
	(void)p;
	*(uint64_t *)ctx += n;
	return 0;
}

/* ------------------------------------------------------------ rounds */

/* One figure over the rounds: v[r] < 0 marks a round that failed. */
struct series {
	double v[MAX_ROUNDS];
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median and [min..max] of the valid rounds; false when none is valid. */
static bool summarize(const struct series *s, double *med, double *lo, double *hi)
{
	double v[MAX_ROUNDS];
	int n = 0;

	for (int r = 0; r < rounds; r++)
		if (s->v[r] >= 0)
			v[n++] = s->v[r];
	if (n == 0)
		return false;
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	*med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	*lo = v[0];
	*hi = v[n - 1];
	return true;
}

/* "median [min..max]" with the given precision, or "n/a". */
static const char *fmt_series(char *out, size_t cap, const struct series *s, int prec)
{
	double med, lo, hi;

	if (!summarize(s, &med, &lo, &hi))
		snprintf(out, cap, "n/a");
	else
		snprintf(out, cap, "%.*f [%.*f..%.*f]", prec, med, prec, lo, prec, hi);
	return out;
}

static double median_of(const struct series *s)
{
	double med, lo, hi;
	return summarize(s, &med, &lo, &hi) ? med : -1;
}

/* Per-round ratio a/b (both must be valid in that round). */
static void ratio_series(struct series *out, const struct series *a, const struct series *b)
{
	for (int r = 0; r < rounds; r++)
		out->v[r] = a->v[r] > 0 && b->v[r] > 0 ? a->v[r] / b->v[r] : -1;
}

/* ------------------------------------------------------------ crypto */

static void bench_crypto(void)
{
	size_t total = 256u << 20, chunk = 64u << 10;
	uint8_t *buf = malloc(chunk), *out = malloc(chunk + 16), key[32], iv[12], rid[16];
	struct cloud_seal *s = NULL;
	struct cloud_unseal *u = NULL;
	struct ehr_buf ct = EHR_BUF_INIT((size_t)300 << 20);
	struct series raw, env, dec, r_env, r_dec;
	char a[64], b[64];
	int len;

	RAND_bytes(buf, (int)chunk);
	RAND_bytes(key, 32);
	RAND_bytes(iv, 12);
	RAND_bytes(rid, 16);
	/* the ciphertext to open, made once into memory (untimed: that measures page faults) */
	cloud_seal_new(&s, key, rid, CLOUD_SEG_DEFAULT);
	for (size_t done = 0; done < total; done += chunk)
		cloud_seal_update(s, buf, chunk, cloud_buf_write, &ct);
	cloud_seal_final(s, cloud_buf_write, &ct);
	cloud_seal_free(s);

	for (int r = 0; r < rounds; r++) {
		for (int side = 0; side < 2; side++) {
			uint64_t sink = 0;
			double t0;

			if ((side == 0) == (r % 2 == 0)) {
				/* raw AES-256-GCM: one context, one nonce per 64 KiB call, like `openssl speed -evp` */
				EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
				EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv);
				t0 = now_s();
				for (size_t done = 0; done < total; done += chunk) {
					EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv);
					EVP_EncryptUpdate(ctx, out, &len, buf, (int)chunk);
					EVP_EncryptFinal_ex(ctx, out + len, &len);
					EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + chunk);
				}
				raw.v[r] = mbps((double)total, now_s() - t0);
				EVP_CIPHER_CTX_free(ctx);
				continue;
			}
			/* the envelope: seal to a sink, then open (verify + decrypt) to a sink */
			cloud_seal_new(&s, key, rid, CLOUD_SEG_DEFAULT);
			t0 = now_s();
			for (size_t done = 0; done < total; done += chunk)
				cloud_seal_update(s, buf, chunk, null_write, &sink);
			cloud_seal_final(s, null_write, &sink);
			env.v[r] = mbps((double)total, now_s() - t0);
			cloud_seal_free(s);
			sink = 0;
			cloud_unseal_new(&u, key, rid);
			t0 = now_s();
			if (cloud_unseal_update(u, ct.data, ct.len, null_write, &sink) < 0 ||
			    cloud_unseal_final(u, null_write, &sink) < 0) {
				fprintf(stderr, "unseal failed: %s\n", ehr_error_msg());
				dec.v[r] = -1;
			} else {
				dec.v[r] = mbps((double)total, now_s() - t0);
			}
			cloud_unseal_free(u);
		}
	}
	ratio_series(&r_env, &env, &raw);
	ratio_series(&r_dec, &dec, &raw);
	printf("crypto  (256 MiB per round; MB/s, median [min..max] of %d rounds)\n", rounds);
	printf("crypto  raw AES-256-GCM          %s\n", fmt_series(a, sizeof(a), &raw, 0));
	printf("crypto  envelope seal            %s  ratio %s\n", fmt_series(a, sizeof(a), &env, 0),
	       fmt_series(b, sizeof(b), &r_env, 2));
	printf("crypto  envelope open (verify)   %s  ratio %s\n", fmt_series(a, sizeof(a), &dec, 0),
	       fmt_series(b, sizeof(b), &r_dec, 2));
	ehr_buf_free(&ct);
	free(buf);
	free(out);
}

/* --------------------------------------------------------------- fs */

struct gen {
	uint64_t left;
	uint8_t *block;
};

static int gen_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct gen *g = ctx;
	size_t n = g->left < cap ? (size_t)g->left : cap;
	if (n > 65536)
		n = 65536;
	memcpy(buf, g->block, n);
	g->left -= n;
	*got = n;
	return 0;
}

static double raw_write(const char *path, const uint8_t *block, uint64_t n)
{
	double t0 = now_s();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		return -1;
	for (uint64_t done = 0; done < n; done += 65536)
		if (write(fd, block, 65536) != 65536) {
			close(fd);
			return -1;
		}
	if (fsync(fd) != 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return now_s() - t0;
}

static void bench_fs(const char *dir, const struct cloud_kek *kek)
{
	uint64_t n = BIG;
	uint8_t *block = malloc(65536);
	char root[400], raw[400], a[64], b[64];
	struct obj_store *st = NULL;
	struct obj_store_config c = { .backend = OBJ_BACKEND_FS, .fs_path = root };
	struct series traw, tput, tget, ratio;

	RAND_bytes(block, 65536);
	snprintf(root, sizeof(root), "%s/fsbench", dir);
	snprintf(raw, sizeof(raw), "%s/raw.bin", dir);
	if (obj_store_open(&st, &c) < 0) {
		fprintf(stderr, "fs open: %s\n", ehr_error_msg());
		free(block);
		return;
	}
	for (int r = 0; r < rounds; r++) {
		struct cloud_record_meta m;
		struct gen g = { n, block };
		uint64_t sink = 0;
		double t0, s;

		memset(&m, 0, sizeof(m));
		cloud_rid_new(m.rid);
		if (r % 2 == 0) {
			s = raw_write(raw, block, n);
			traw.v[r] = s > 0 ? mbps((double)n, s) : -1;
		}
		t0 = now_s();
		if (cloud_record_put(st, kek, &m, gen_read, &g, 0) < 0) {
			fprintf(stderr, "fs put: %s\n", ehr_error_msg());
			tput.v[r] = tget.v[r] = -1;
		} else {
			tput.v[r] = mbps((double)n, now_s() - t0);
			t0 = now_s();
			if (cloud_record_get(st, kek, &m, null_write, &sink) < 0 || sink != n) {
				fprintf(stderr, "fs get: %s\n", ehr_error_msg());
				tget.v[r] = -1;
			} else {
				tget.v[r] = mbps((double)n, now_s() - t0);
			}
		}
		if (r % 2 == 1) {
			s = raw_write(raw, block, n);
			traw.v[r] = s > 0 ? mbps((double)n, s) : -1;
		}
		unlink(raw);
	}
	ratio_series(&ratio, &tput, &traw);
	printf("fs      (64 MiB per round; MB/s, median [min..max] of %d rounds)\n", rounds);
	printf("fs      raw write+fsync 64 MiB   %s\n", fmt_series(a, sizeof(a), &traw, 0));
	printf("fs      record put 64 MiB        %s  ratio %s\n", fmt_series(a, sizeof(a), &tput, 0),
	       fmt_series(b, sizeof(b), &ratio, 2));
	printf("fs      record get 64 MiB        %s  (hash, spool, verify, decrypt)\n",
	       fmt_series(a, sizeof(a), &tget, 0));
	obj_store_free(st);
	free(block);
}

/* ------------------------------------------------------ gateway memory */

/* A "Key:   1234 kB" field of /proc/<pid>/status, in KiB; -1 if unreadable. */
static long proc_status_kib(pid_t pid, const char *field)
{
	char path[64], buf[8192];
	size_t flen = strlen(field), got = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	for (char *line = buf; line != NULL && *line != '\0';) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (strncmp(line, field, flen) == 0) {
			char *p = line + flen, *end = NULL;
			long v;
			while (*p == ' ' || *p == '\t')
				p++;
			v = strtol(p, &end, 10);
			return end != p ? v : -1;
		}
		line = nl != NULL ? nl + 1 : NULL;
	}
	return -1;
}

/* Samples the gateway's VmRSS every 5 ms between rss_start and rss_stop. */
struct rss_sampler {
	pthread_t thread;
	pid_t pid;
	atomic_bool stop;
	bool running;
	long peak_kib;
	long first_kib; /* the RSS as the transfer began */
	long samples;
};

static void *rss_main(void *arg)
{
	struct rss_sampler *s = arg;
	const struct timespec every = { 0, 5 * 1000 * 1000 };

	for (;;) {
		long v = proc_status_kib(s->pid, "VmRSS:");
		if (v > s->peak_kib)
			s->peak_kib = v;
		s->samples++;
		if (atomic_load(&s->stop))
			return NULL; /* the sample above is the one after the transfer ended */
		nanosleep(&every, NULL);
	}
}

static void rss_start(struct rss_sampler *s, pid_t pid)
{
	s->pid = pid;
	/* taken here, before the request starts, not by the thread that may start late */
	s->peak_kib = s->first_kib = proc_status_kib(pid, "VmRSS:");
	s->samples = 1;
	atomic_store(&s->stop, false);
	s->running = pthread_create(&s->thread, NULL, rss_main, s) == 0;
}

/* The gateway's memory over one kind of 64 MiB transfer, in MiB per round. */
struct mem_track {
	struct series peak; /* the highest sample during the transfer */
	struct series rise; /* that peak minus the RSS as the transfer began */
};

/* Stops the sampler and records round r of what it saw. */
static void rss_stop(struct rss_sampler *s, long *samples, struct mem_track *m, int r)
{
	if (!s->running)
		return;
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	s->running = false;
	*samples += s->samples;
	if (s->peak_kib >= 0 && s->first_kib >= 0) {
		m->peak.v[r] = s->peak_kib / 1024.0;
		m->rise.v[r] = (s->peak_kib - s->first_kib) / 1024.0;
	}
}

/* ------------------------------------------------------------ gateway */

/* Send stderr to a file for a while; returns the saved descriptor (or -1). */
static int stderr_to(const char *path)
{
	int saved, fd;

	fflush(stderr);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
		return -1;
	if ((saved = dup(2)) >= 0 && dup2(fd, 2) < 0) {
		close(saved);
		saved = -1;
	}
	close(fd);
	return saved;
}

static void stderr_restore(int saved)
{
	if (saved < 0)
		return;
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
}

struct count_sink {
	uint64_t n;
};

static bool count_data(const void *data, size_t len, void *ud)
{
	(void)data;
	((struct count_sink *)ud)->n += len;
	return true;
}

struct gw {
	struct gw_proc t;
	struct ehr_client *srv, *pat;
	struct obj_store *direct;
	char records_path[256]; /* /v1/patients/{pid}/records */
	char profile[400];      /* the medical server's profile dir */
	CURL *chunked;          /* a plain curl handle for the chunked upload */
	long rss_samples;
	long rss_first_big; /* VmRSS just before the first 64 MiB transfer */
	struct mem_track mem_up, mem_down, mem_chunked;
	double ratio_put_big, ratio_get_big;
};

/* The value of the first `key = value` line of an INI file, trimmed. */
static int ini_value(const char *path, const char *key, char *out, size_t cap)
{
	char line[2048];
	size_t klen = strlen(key);
	FILE *f = fopen(path, "r");
	int err = EHR_ERR_NOT_FOUND;

	if (f == NULL)
		return ehr_error_set(EHR_ERR_IO, "cannot open the gateway's ini");
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *end;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, key, klen) != 0)
			continue;
		p += klen;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			continue;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		end = p + strcspn(p, "\r\n");
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		snprintf(out, cap, "%s", p);
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

/* POST the body through the gateway (Content-Length); the record path into rid. */
static int gw_post(struct gw *g, const uint8_t *body, size_t n, char *rid, size_t ridcap, long *status)
{
	static const char *const hdr[] = { "Content-Type: application/octet-stream", NULL };
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20);
	json_t *j = NULL;
	const char *r = NULL;
	int err;

	*status = 0;
	err = ehr_client_request(g->srv, status, &resp, "POST", g->records_path, hdr, body, n, NULL, NULL);
	if (err == 0 && (*status != 201 || ehr_json_parse(&j, resp.data, resp.len, 1 << 20, 8) < 0 ||
	                 ehr_json_get_str(j, "record_id", &r, 40) < 0))
		err = EHR_ERR_INTERNAL;
	if (err == 0)
		snprintf(rid, ridcap, "/v1/records/%s", r);
	json_decref(j);
	ehr_buf_free(&resp);
	return err;
}

/* GET a record through the gateway, counting the bytes as they arrive. */
static int gw_get(struct gw *g, const char *rid, size_t n, long *status)
{
	struct count_sink sink = { 0 };
	int err;

	*status = 0;
	err = ehr_client_request(g->srv, status, NULL, "GET", rid, NULL, NULL, 0, count_data, &sink);
	if (err == 0 && (*status != 200 || sink.n != n))
		err = EHR_ERR_INTERNAL;
	return err;
}

struct chunk_src {
	const uint8_t *p;
	size_t len, off;
};

static size_t chunk_read(char *buf, size_t size, size_t nitems, void *ud)
{
	struct chunk_src *s = ud;
	size_t n = s->len - s->off;

	if (n > size * nitems)
		n = size * nitems;
	memcpy(buf, s->p + s->off, n);
	s->off += n;
	return n;
}

static size_t reply_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct ehr_buf *b = ud;
	return ehr_buf_append(b, p, size * nmemb) == 0 ? size * nmemb : 0;
}

/*
 * POST the body with Transfer-Encoding: chunked (RFC 9112 §7.1) and no
 * Content-Length, as the medical server's mTLS client. 0 only when the
 * gateway answered 201 with the full plaintext size recorded.
 */
static int gw_post_chunked(struct gw *g, const uint8_t *body, size_t n, long *status)
{
	struct chunk_src src = { body, n, 0 };
	struct ehr_buf url = EHR_BUF_INIT(512), path = EHR_BUF_INIT(512), resp = EHR_BUF_INIT(1 << 20);
	struct curl_slist *hl = NULL;
	json_t *j = NULL;
	int64_t size = -1;
	CURLcode rc;
	int err = 0;

	*status = 0;
	GUARD_GOTO(ehr_buf_printf(&url, "%s%s", g->t.base_url, g->records_path));
	curl_easy_reset(g->chunked); /* keeps the live connection */
	curl_easy_setopt(g->chunked, CURLOPT_URL, ehr_buf_cstr(&url));
	curl_easy_setopt(g->chunked, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	GUARD_GOTO(ehr_buf_printf(&path, "%s/gateway-ca.pem", g->profile));
	curl_easy_setopt(g->chunked, CURLOPT_CAINFO, ehr_buf_cstr(&path));
	ehr_buf_reset(&path);
	GUARD_GOTO(ehr_buf_printf(&path, "%s/cert.pem", g->profile));
	curl_easy_setopt(g->chunked, CURLOPT_SSLCERT, ehr_buf_cstr(&path));
	ehr_buf_reset(&path);
	GUARD_GOTO(ehr_buf_printf(&path, "%s/key.pem", g->profile));
	curl_easy_setopt(g->chunked, CURLOPT_SSLKEY, ehr_buf_cstr(&path));
	curl_easy_setopt(g->chunked, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(g->chunked, CURLOPT_TIMEOUT, 300L);
	curl_easy_setopt(g->chunked, CURLOPT_POST, 1L);
	curl_easy_setopt(g->chunked, CURLOPT_READFUNCTION, chunk_read);
	curl_easy_setopt(g->chunked, CURLOPT_READDATA, &src);
	curl_easy_setopt(g->chunked, CURLOPT_WRITEFUNCTION, reply_write);
	curl_easy_setopt(g->chunked, CURLOPT_WRITEDATA, &resp);
	/* no CURLOPT_POSTFIELDSIZE: the size is unknown to curl, so it sends chunks */
	hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
	hl = curl_slist_append(hl, "Content-Type: application/octet-stream");
	hl = curl_slist_append(hl, "Expect:");
	ENSURE_GOTO(hl != NULL, EHR_ERR_NOMEM);
	curl_easy_setopt(g->chunked, CURLOPT_HTTPHEADER, hl);
	rc = curl_easy_perform(g->chunked);
	curl_easy_getinfo(g->chunked, CURLINFO_RESPONSE_CODE, status);
	if (rc != CURLE_OK) {
		err = ehr_error_set(EHR_ERR_IO, "%s", curl_easy_strerror(rc));
		goto out;
	}
	if (*status != 201 || ehr_json_parse(&j, resp.data, resp.len, 1 << 20, 8) < 0 ||
	    ehr_json_get_int(j, "size", &size, 0, INT64_MAX) < 0 || (uint64_t)size != n)
		err = ehr_error_set(EHR_ERR_INTERNAL, "chunked upload: status %ld, size %lld", *status,
		                    (long long)size);
out:
	curl_easy_setopt(g->chunked, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	json_decref(j);
	ehr_buf_free(&url);
	ehr_buf_free(&path);
	ehr_buf_free(&resp);
	return err;
}

static const char *size_name(size_t n)
{
	return n == 1024 ? "1 KiB" : n == (1u << 20) ? "1 MiB" : "64 MiB";
}

static void direct_key(char *out, size_t cap, const char *what, size_t n, int r, int i)
{
	snprintf(out, cap, "%s-%zu-%d-%d", what, n, r, i);
}

/* One size: PUT rounds, then GET rounds of the records the PUTs stored. */
static void bench_size(struct gw *g, const uint8_t *body, size_t n, int ops)
{
	struct series gput, dput, gget, dget, rput, rget;
	char(*rids)[80] = calloc((size_t)rounds * (size_t)ops, 80);
	char a[64], b[64], c[64], key[96];
	int ok_put = 0, ok_get = 0;
	long bad_status = 0;
	bool big = n == BIG;
	int prec = n < (1u << 20) ? 3 : 1;

	if (rids == NULL) {
		fprintf(stderr, "out of memory\n");
		return;
	}

	for (int r = 0; r < rounds; r++) {
		for (int side = 0; side < 2; side++) {
			double t0 = now_s();
			bool fail = false;

			if ((side == 0) == (r % 2 == 0)) { /* the gateway */
				struct rss_sampler s;
				if (big && g->rss_first_big < 0)
					g->rss_first_big = proc_status_kib(g->t.pid, "VmRSS:");
				if (big)
					rss_start(&s, g->t.pid);
				for (int i = 0; i < ops; i++) {
					long st = 0;
					if (gw_post(g, body, n, rids[r * ops + i], 80, &st) < 0) {
						rids[r * ops + i][0] = '\0';
						bad_status = st;
						fail = true;
					} else {
						ok_put++;
					}
				}
				gput.v[r] = fail ? -1 : mbps((double)n * ops, now_s() - t0);
				if (big)
					rss_stop(&s, &g->rss_samples, &g->mem_up, r);
				continue;
			}
			for (int i = 0; i < ops; i++) { /* direct */
				struct cloud_mem_reader mr = { body, n, 0 };
				direct_key(key, sizeof(key), "obj", n, r, i);
				if (obj_store_put(g->direct, key, cloud_mem_read, &mr, NULL) < 0) {
					fprintf(stderr, "direct PUT %s: %s\n", size_name(n), ehr_error_msg());
					fail = true;
				}
			}
			dput.v[r] = fail ? -1 : mbps((double)n * ops, now_s() - t0);
		}
	}
	for (int r = 0; r < rounds; r++) {
		for (int side = 0; side < 2; side++) {
			double t0 = now_s();
			bool fail = false;

			if ((side == 0) == (r % 2 == 0)) {
				struct rss_sampler s;
				if (big)
					rss_start(&s, g->t.pid);
				for (int i = 0; i < ops; i++) {
					long st = 0;
					if (rids[r * ops + i][0] == '\0' ||
					    gw_get(g, rids[r * ops + i], n, &st) < 0) {
						bad_status = st ? st : bad_status;
						fail = true;
					} else {
						ok_get++;
					}
				}
				gget.v[r] = fail ? -1 : mbps((double)n * ops, now_s() - t0);
				if (big)
					rss_stop(&s, &g->rss_samples, &g->mem_down, r);
				continue;
			}
			for (int i = 0; i < ops; i++) {
				uint64_t sink = 0;
				direct_key(key, sizeof(key), "obj", n, r, i);
				if (obj_store_get(g->direct, key, null_write, &sink, NULL) < 0 || sink != n) {
					fprintf(stderr, "direct GET %s: %s\n", size_name(n), ehr_error_msg());
					fail = true;
				}
			}
			dget.v[r] = fail ? -1 : mbps((double)n * ops, now_s() - t0);
		}
	}
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < ops; i++) {
			direct_key(key, sizeof(key), "obj", n, r, i);
			obj_store_delete(g->direct, key);
		}
	ratio_series(&rput, &gput, &dput);
	ratio_series(&rget, &gget, &dget);
	printf("gateway %-6s PUT          x%-2d gateway %-21s direct %-21s ratio %-16s (%d/%d ok)\n",
	       size_name(n), ops, fmt_series(a, sizeof(a), &gput, prec),
	       fmt_series(b, sizeof(b), &dput, prec), fmt_series(c, sizeof(c), &rput, 2), ok_put,
	       ops * rounds);
	printf("gateway %-6s GET          x%-2d gateway %-21s direct %-21s ratio %-16s (%d/%d ok)\n",
	       size_name(n), ops, fmt_series(a, sizeof(a), &gget, prec),
	       fmt_series(b, sizeof(b), &dget, prec), fmt_series(c, sizeof(c), &rget, 2), ok_get,
	       ops * rounds);
	if (ok_put < ops * rounds || ok_get < ops * rounds)
		printf("gateway %-6s some requests failed (last status %ld: %s)\n", size_name(n), bad_status,
		       ehr_client_last_error(g->srv) ? ehr_client_last_error(g->srv) : "");
	if (n == 1024) {
		struct series lat[4];
		const struct series *src[4] = { &gput, &dput, &gget, &dget };
		for (int k = 0; k < 4; k++)
			for (int r = 0; r < rounds; r++)
				lat[k].v[r] = src[k]->v[r] > 0 ? (double)n / 1e6 / src[k]->v[r] * 1000 : -1;
		printf("gateway 1 KiB  PUT ms/request gateway %-21s direct %s\n",
		       fmt_series(a, sizeof(a), &lat[0], 2), fmt_series(b, sizeof(b), &lat[1], 2));
		printf("gateway 1 KiB  GET ms/request gateway %-21s direct %s\n",
		       fmt_series(a, sizeof(a), &lat[2], 2), fmt_series(b, sizeof(b), &lat[3], 2));
	}
	if (big) {
		g->ratio_put_big = median_of(&rput);
		g->ratio_get_big = median_of(&rget);
	}
	free(rids);
}

/* The 64 MiB upload with chunked transfer encoding, against a direct PUT. */
static void bench_chunked(struct gw *g, const uint8_t *body)
{
	struct series gput, dput, ratio;
	char a[64], b[64], c[64], key[96];
	int ok = 0;

	for (int r = 0; r < rounds; r++)
		gput.v[r] = dput.v[r] = -1;
	for (int r = 0; r < rounds; r++) {
		for (int side = 0; side < 2; side++) {
			double t0 = now_s();

			if ((side == 0) == (r % 2 == 0)) {
				struct rss_sampler s;
				long st = 0;
				int err;

				rss_start(&s, g->t.pid);
				err = gw_post_chunked(g, body, BIG, &st);
				gput.v[r] = err < 0 ? -1 : mbps((double)BIG, now_s() - t0);
				rss_stop(&s, &g->rss_samples, &g->mem_chunked, r);
				if (err < 0) {
					printf("gateway 64 MiB PUT chunked x1  (no Content-Length): ");
					if (st == 0)
						printf("n/a (no reply: %s)\n", ehr_error_msg());
					else if (st == 201)
						printf("n/a (201, but %s)\n", ehr_error_msg());
					else
						printf("n/a (%ld)\n", st);
					return;
				}
				ok++;
				continue;
			}
			struct cloud_mem_reader mr = { body, BIG, 0 };
			direct_key(key, sizeof(key), "chunked", BIG, r, 0);
			if (obj_store_put(g->direct, key, cloud_mem_read, &mr, NULL) == 0)
				dput.v[r] = mbps((double)BIG, now_s() - t0);
			else
				fprintf(stderr, "direct PUT 64 MiB: %s\n", ehr_error_msg());
			obj_store_delete(g->direct, key);
		}
	}
	ratio_series(&ratio, &gput, &dput);
	printf("gateway 64 MiB PUT chunked x1  gateway %-21s direct %-21s ratio %-16s (%d/%d ok; no "
	       "Content-Length)\n",
	       fmt_series(a, sizeof(a), &gput, 1), fmt_series(b, sizeof(b), &dput, 1),
	       fmt_series(c, sizeof(c), &ratio, 2), ok, rounds);
}

static void mem_line(const char *label, long kib)
{
	if (kib < 0)
		printf("memory  %-44s n/a\n", label);
	else
		printf("memory  %-44s %6.1f MiB\n", label, kib / 1024.0);
}

/* The highest peak over the rounds against the baseline, then per round:
 * the peak, and how far RSS rose above where it stood as the transfer began
 * (a body held whole would show as a rise of about 64 MiB). */
static void mem_track_line(const char *what, const struct mem_track *m, long baseline_kib)
{
	double med, lo, hi;
	char a[64], b[64];

	if (!summarize(&m->peak, &med, &lo, &hi)) {
		printf("memory  peak RSS during a %-26s n/a\n", what);
		return;
	}
	printf("memory  peak RSS during a %-26s %6.1f MiB (%+.1f over the baseline); per transfer: peak %s, "
	       "rise %s MiB\n",
	       what, hi, hi - baseline_kib / 1024.0, fmt_series(a, sizeof(a), &m->peak, 1),
	       fmt_series(b, sizeof(b), &m->rise, 1));
	/* in order, so that memory kept from one transfer to the next shows as a climb */
	printf("memory    %s peaks in round order (MiB):", what);
	for (int r = 0; r < rounds; r++)
		printf(m->peak.v[r] < 0 ? " n/a" : " %.1f", m->peak.v[r]);
	printf("\n");
}

/* The gateway run.sh started: its dir, URL and PID from the environment. */
static int gw_attach(struct gw *g)
{
	const char *dir = getenv("EHRGATE_BENCH_GW_DIR"), *url = getenv("EHRGATE_BENCH_GW_URL");
	const char *pid = getenv("EHRGATE_BENCH_GW_PID");
	int64_t p;

	memset(g, 0, sizeof(*g));
	g->rss_first_big = -1;
	g->ratio_put_big = g->ratio_get_big = -1;
	for (int r = 0; r < MAX_ROUNDS; r++)
		g->mem_up.peak.v[r] = g->mem_up.rise.v[r] = g->mem_down.peak.v[r] = g->mem_down.rise.v[r] =
		        g->mem_chunked.peak.v[r] = g->mem_chunked.rise.v[r] = -1;
	if (dir == NULL || url == NULL || pid == NULL || ehr_parse_i64(&p, pid, 1, INT32_MAX) < 0)
		return ehr_error_set(EHR_ERR_INVAL, "EHRGATE_BENCH_GW_DIR/_URL/_PID not set (use run.sh)");
	snprintf(g->t.dir, sizeof(g->t.dir), "%s", dir);
	snprintf(g->t.state_dir, sizeof(g->t.state_dir), "%.200s/state", dir);
	snprintf(g->t.config, sizeof(g->t.config), "%.200s/ehrgate.ini", dir);
	snprintf(g->t.ca_pem, sizeof(g->t.ca_pem), "%.200s/ca.pem", g->t.state_dir);
	snprintf(g->t.base_url, sizeof(g->t.base_url), "%s", url);
	/* `ehrgate admin` runs on the gateway run.sh started: its stderr to cmd.log */
	snprintf(g->t.log_path, sizeof(g->t.log_path), "%.200s/cmd.log", dir);
	snprintf(g->t.bin, sizeof(g->t.bin), "%s",
	         getenv("EHRGATE_BIN") ? getenv("EHRGATE_BIN") : EHRGATE_BIN);
	g->t.pid = (pid_t)p;
	return 0;
}

static void bench_gateway(void)
{
	static const size_t sizes[] = { 1024, 1u << 20, BIG };
	static const int ops[] = { 50, 8, 1 };
	struct gw g;
	struct obj_store_config dc = { 0 };
	char endpoint[512], bucket[128], region[64], ak[256], sk[256], comm[64] = "?", path[64], pid[160];
	char setup_log[400];
	const char *via;
	int saved_err, err;
	long rss_before, hwm, rss_end, st = 0;
	uint8_t *body = malloc(BIG);
	int fd;

	if (gw_attach(&g) < 0) {
		printf("gateway: skipped (%s)\n", ehr_error_msg());
		free(body);
		return;
	}
	/* The baseline's S3 path is whatever the gateway itself is configured with. */
	if (ini_value(g.t.config, "s3_endpoint", endpoint, sizeof(endpoint)) < 0 ||
	    ini_value(g.t.config, "s3_bucket", bucket, sizeof(bucket)) < 0 ||
	    ini_value(g.t.config, "s3_region", region, sizeof(region)) < 0 ||
	    ini_value(g.t.config, "s3_access_key", ak, sizeof(ak)) < 0 ||
	    ini_value(g.t.config, "s3_secret_key", sk, sizeof(sk)) < 0) {
		printf("gateway: skipped (the gateway's ini has no S3 [store] section)\n");
		free(body);
		return;
	}
	if (ehr_test_env("EHRGATE_TEST_S3") && strcmp(endpoint, ehr_test_env("EHRGATE_TEST_S3")) == 0)
		via = "through the SigV4-verifying front (EHRGATE_TEST_S3)";
	else if (ehr_test_env("EHRGATE_TEST_S3_DIRECT") &&
	         strcmp(endpoint, ehr_test_env("EHRGATE_TEST_S3_DIRECT")) == 0)
		via = "straight to s3rver, no signature check (EHRGATE_TEST_S3_DIRECT)";
	else
		via = "an S3 endpoint that is not the dev services'";
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)g.t.pid);
	if ((fd = open(path, O_RDONLY)) >= 0) {
		ssize_t n = read(fd, comm, sizeof(comm) - 1);
		comm[n > 0 ? n : 0] = '\0';
		comm[strcspn(comm, "\n")] = '\0';
		close(fd);
	}
	printf("gateway %s, pid %d (%s)\n", g.t.base_url, (int)g.t.pid, comm);
	printf("gateway S3 path, the gateway's and the direct baseline's alike: %s %s, bucket %s\n", via,
	       endpoint, bucket);
	printf("gateway MB/s, median [min..max] of %d rounds; gateway and direct alternate (the first swaps "
	       "each "
	       "round); ratio = gateway/direct within a round\n",
	       rounds);

	dc.backend = OBJ_BACKEND_S3;
	dc.s3_endpoint = endpoint;
	dc.s3_bucket = bucket;
	dc.s3_region = region;
	dc.s3_access_key = ak;
	dc.s3_secret_key = sk;
	dc.key_prefix = "benchdirect/";
	/* The baseline is what a plain client does: one PUT of the whole body
	 * (up to 512 MiB), not our multipart path, whose extra requests
	 * (Create/Complete) would slow the baseline and flatter the ratio. */
	dc.s3_part_size = 512u << 20;
	g.chunked = curl_easy_init();
	/* registration, enrolment and the contract print progress on stderr: into setup.log */
	snprintf(setup_log, sizeof(setup_log), "%s/setup.log", g.t.dir);
	saved_err = stderr_to(setup_log);
	err = ehrt_server(&g.t, "hosp", &g.srv);
	if (err == 0)
		err = ehrt_patient(&g.t, g.srv, "MRN-B", pid, &g.pat);
	if (err == 0)
		err = ehrt_grant(&g.t, "MRN-B", ehr_client_id(g.srv), "read,append");
	stderr_restore(saved_err);
	if (err < 0 || obj_store_open(&g.direct, &dc) < 0 || g.chunked == NULL) {
		fprintf(stderr, "gateway setup failed: %s (see %s)\n", ehr_error_msg(), setup_log);
		goto out;
	}
	snprintf(g.records_path, sizeof(g.records_path), "/v1/patients/%s/records", pid);
	snprintf(g.profile, sizeof(g.profile), "%s/hosp", g.t.dir);
	RAND_bytes(body, (int)BIG);

	/* Warm-up: one small round trip each way, so that the baseline RSS has
	 * the TLS session, the database pool, the S3 handles and the ledger set
	 * up, as they are during any real transfer. */
	{
		char rid[80];
		uint64_t sink = 0;
		struct cloud_mem_reader mr = { body, 1024, 0 };
		if (gw_post(&g, body, 1024, rid, sizeof(rid), &st) < 0 || gw_get(&g, rid, 1024, &st) < 0) {
			fprintf(stderr, "gateway warm-up failed: status %ld %s\n", st,
			        ehr_client_last_error(g.srv));
			goto out;
		}
		obj_store_put(g.direct, "warmup", cloud_mem_read, &mr, NULL);
		obj_store_get(g.direct, "warmup", null_write, &sink, NULL);
		obj_store_delete(g.direct, "warmup");
		usleep(200 * 1000);
	}
	rss_before = proc_status_kib(g.t.pid, "VmRSS:");

	for (size_t si = 0; si < EHR_ARRAY_LEN(sizes); si++)
		bench_size(&g, body, sizes[si], ops[si]);
	bench_chunked(&g, body);

	hwm = proc_status_kib(g.t.pid, "VmHWM:");
	rss_end = proc_status_kib(g.t.pid, "VmRSS:");
	if (g.ratio_put_big >= 0 && g.ratio_get_big >= 0)
		printf("gateway target ratio >= 0.80 at 64 MiB: PUT %.2f (%s), GET %.2f (%s)\n",
		       g.ratio_put_big, g.ratio_put_big >= 0.8 ? "met" : "not met", g.ratio_get_big,
		       g.ratio_get_big >= 0.8 ? "met" : "not met");
	printf("memory  gateway pid %d: VmRSS from /proc/%d/status, sampled every 5 ms during each 64 MiB "
	       "gateway transfer (%ld samples)\n",
	       (int)g.t.pid, (int)g.t.pid, g.rss_samples);
	mem_line("RSS after a warm-up request (the baseline)", rss_before);
	mem_line("RSS just before the first 64 MiB transfer", g.rss_first_big);
	mem_track_line("64 MiB upload", &g.mem_up, rss_before);
	mem_track_line("64 MiB download", &g.mem_down, rss_before);
	mem_track_line("64 MiB chunked upload", &g.mem_chunked, rss_before);
	mem_line("VmHWM (the peak since the gateway started)", hwm);
	mem_line("RSS at the end", rss_end);
out:
	if (g.chunked != NULL)
		curl_easy_cleanup(g.chunked);
	obj_store_free(g.direct);
	ehr_client_free(g.srv);
	ehr_client_free(g.pat);
	free(body);
}

int main(void)
{
	char dir[256], kid[CLOUD_KID_MAX], kdir[300];
	const char *r = getenv("EHRGATE_BENCH_ROUNDS"), *tmp = getenv("EHRGATE_BENCH_TMP");
	struct cloud_kek *kek = NULL;
	int64_t v;

	if (r != NULL) {
		if (ehr_parse_i64(&v, r, 1, MAX_ROUNDS) < 0) {
			fprintf(stderr, "EHRGATE_BENCH_ROUNDS must be 1..%d\n", MAX_ROUNDS);
			return 2;
		}
		rounds = (int)v;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(dir, sizeof(dir), "%s/ehr-bench-XXXXXX", tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(kdir, sizeof(kdir), "%s/kek", dir);
	if (cloud_kek_generate(kdir, kid) < 0 || cloud_kek_set_current(kdir, kid) < 0 ||
	    cloud_kek_load(&kek, kdir) < 0)
		return 1;
	bench_crypto();
	bench_fs(dir, kek);
	bench_gateway();
	cloud_kek_free(kek);
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return 0;
}
