/*
 * bench_storage.c - storage throughput, each figure next to a baseline
 * measured in the same run (CONVENTIONS.md: ratios, never assertions).
 *
 *   1. STREAM envelope encryption/decryption vs raw AES-256-GCM (one EVP
 *      context, 64 KiB calls, the same bytes): the cost of segmenting.
 *   2. fs backend: an encrypted 64 MiB record (temp file, fsync, rename) vs a
 *      raw write + fsync of the same size.
 *   3. The gateway (TLS, mTLS client, encryption, S3, ledger) vs a direct S3
 *      PUT/GET of the same bytes to the same s3rver, for 1 KiB, 1 MiB and
 *      64 MiB; the gateway talks to s3rver directly (EHRGATE_TEST_S3_DIRECT)
 *      so both sides use the same S3 server path.
 *   4. The gateway's peak RSS (VmHWM) across the 64 MiB uploads.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cloud/cloud_internal.h"
#include "tests/harness/harness.h"
#include "tests/integration/ehr/ehrtest.h"

static double now_s(void)
{
	return (double)ehr_monotonic_ms() / 1000.0;
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

/* ------------------------------------------------------------ crypto */

static void bench_crypto(void)
{
	size_t total = 256u << 20, chunk = 64u << 10;
	uint8_t *buf = malloc(chunk), *out = malloc(chunk + 16), key[32], iv[12], rid[16];
	struct cloud_seal *s = NULL;
	struct cloud_unseal *u = NULL;
	struct ehr_buf ct = EHR_BUF_INIT((size_t)300 << 20);
	uint64_t sink = 0;
	double t0, raw, env, dec;
	int len;

	RAND_bytes(buf, (int)chunk);
	RAND_bytes(key, 32);
	RAND_bytes(iv, 12);
	RAND_bytes(rid, 16);
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
	raw = now_s() - t0;
	EVP_CIPHER_CTX_free(ctx);
	/* the envelope: seal into memory, then unseal to nowhere */
	/* once into memory (untimed: that measures page faults), then timed to a sink */
	cloud_seal_new(&s, key, rid, CLOUD_SEG_DEFAULT);
	for (size_t done = 0; done < total; done += chunk)
		cloud_seal_update(s, buf, chunk, cloud_buf_write, &ct);
	cloud_seal_final(s, cloud_buf_write, &ct);
	cloud_seal_free(s);
	cloud_seal_new(&s, key, rid, CLOUD_SEG_DEFAULT);
	t0 = now_s();
	for (size_t done = 0; done < total; done += chunk)
		cloud_seal_update(s, buf, chunk, null_write, &sink);
	cloud_seal_final(s, null_write, &sink);
	env = now_s() - t0;
	sink = 0;
	cloud_unseal_new(&u, key, rid);
	t0 = now_s();
	if (cloud_unseal_update(u, ct.data, ct.len, null_write, &sink) < 0 ||
	    cloud_unseal_final(u, null_write, &sink) < 0)
		fprintf(stderr, "unseal failed: %s\n", ehr_error_msg());
	dec = now_s() - t0;
	printf("crypto  raw AES-256-GCM          %8.0f MB/s\n", mbps((double)total, raw));
	printf("crypto  envelope seal            %8.0f MB/s  ratio %.2f\n", mbps((double)total, env),
	       raw / env);
	printf("crypto  envelope open (verify)   %8.0f MB/s  ratio %.2f\n", mbps((double)total, dec),
	       raw / dec);
	cloud_seal_free(s);
	cloud_unseal_free(u);
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

static void bench_fs(const char *dir, const struct cloud_kek *kek)
{
	uint64_t n = 64ull << 20;
	uint8_t *block = malloc(65536);
	char root[400], raw[400];
	struct obj_store *st = NULL;
	struct obj_store_config c = { .backend = OBJ_BACKEND_FS, .fs_path = root };
	double t0, traw, tenc, tget;
	uint64_t sink = 0;
	int fd;

	RAND_bytes(block, 65536);
	snprintf(root, sizeof(root), "%s/fsbench", dir);
	snprintf(raw, sizeof(raw), "%s/raw.bin", dir);
	obj_store_open(&st, &c);
	t0 = now_s();
	fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	for (uint64_t done = 0; done < n; done += 65536)
		if (write(fd, block, 65536) != 65536)
			break;
	fsync(fd);
	close(fd);
	traw = now_s() - t0;
	{
		struct cloud_record_meta m;
		struct gen g = { n, block };
		memset(&m, 0, sizeof(m));
		cloud_rid_new(m.rid);
		t0 = now_s();
		if (cloud_record_put(st, kek, &m, gen_read, &g, 0) < 0)
			fprintf(stderr, "fs put: %s\n", ehr_error_msg());
		tenc = now_s() - t0;
		t0 = now_s();
		if (cloud_record_get(st, kek, &m, null_write, &sink) < 0)
			fprintf(stderr, "fs get: %s\n", ehr_error_msg());
		tget = now_s() - t0;
	}
	printf("fs      raw write+fsync 64 MiB   %8.0f MB/s\n", mbps((double)n, traw));
	printf("fs      record put 64 MiB        %8.0f MB/s  ratio %.2f\n", mbps((double)n, tenc),
	       traw / tenc);
	printf("fs      record get 64 MiB        %8.0f MB/s  (hash, spool, verify, decrypt)\n",
	       mbps((double)n, tget));
	unlink(raw);
	obj_store_free(st);
	free(block);
}

/* ----------------------------------------------------------- gateway */

static long vm_hwm_kib(pid_t pid)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmHWM:", 6) == 0) {
			int64_t x;
			char *p = line + 6;
			while (*p == ' ' || *p == '\t')
				p++;
			p[strcspn(p, " \t\n")] = '\0';
			if (ehr_parse_i64(&x, p, 0, INT64_MAX) == 0)
				v = (long)x;
		}
	fclose(f);
	return v;
}

static void bench_gateway(void)
{
	static const size_t sizes[] = { 1024, 1u << 20, 64u << 20 };
	static const int iters[] = { 200, 20, 3 };
	struct ehrt t;
	struct ehr_client *srv = NULL, *pat = NULL;
	struct obj_store *direct = NULL;
	struct obj_store_config dc = { 0 };
	char sect[2048], pid[160];
	long rss0, rss1;

	ehrt_s3_section(sect, sizeof(sect), ehr_test_env("EHRGATE_TEST_S3_DIRECT"), "");
	if (ehrt_setup(&t, "bench", sect) < 0 || ehrt_start(&t) < 0 || ehrt_server(&t, "hosp", &srv) < 0 ||
	    ehrt_patient(&t, srv, "MRN-B", pid, &pat) < 0 ||
	    ehrt_grant(&t, "MRN-B", ehr_client_id(srv), "read,append") < 0) {
		fprintf(stderr, "gateway setup failed: %s\n", ehr_error_msg());
		ehrt_teardown(&t);
		return;
	}
	dc.backend = OBJ_BACKEND_S3;
	dc.s3_endpoint = ehr_test_env("EHRGATE_TEST_S3_DIRECT");
	dc.s3_bucket = ehr_test_env("EHRGATE_TEST_S3_BUCKET");
	dc.s3_region = ehr_test_env("EHRGATE_TEST_S3_REGION");
	dc.s3_access_key = ehr_test_env("EHRGATE_TEST_S3_ACCESS_KEY");
	dc.s3_secret_key = ehr_test_env("EHRGATE_TEST_S3_SECRET_KEY");
	dc.key_prefix = "benchdirect/";
	obj_store_open(&direct, &dc);
	rss0 = vm_hwm_kib(t.pid);

	for (size_t si = 0; si < EHR_ARRAY_LEN(sizes); si++) {
		size_t n = sizes[si];
		uint8_t *body = malloc(n);
		char path[256], rid[64] = "";
		double t0, gw_put = 0, gw_get = 0, d_put = 0, d_get = 0;
		struct ehr_buf resp = EHR_BUF_INIT(1 << 20), out = EHR_BUF_INIT((size_t)100 << 20);
		int ok = 0;

		RAND_bytes(body, (int)n);
		snprintf(path, sizeof(path), "/v1/patients/%s/records", pid);
		for (int i = 0; i < iters[si]; i++) {
			long status = 0;
			json_t *j = NULL;
			const char *r = NULL;
			struct cloud_mem_reader mr = { body, n, 0 };
			char key[64];
			uint64_t sink = 0;

			/* direct S3 PUT and GET */
			snprintf(key, sizeof(key), "obj-%zu-%d", n, i);
			t0 = now_s();
			obj_store_put(direct, key, cloud_mem_read, &mr, NULL);
			d_put += now_s() - t0;
			t0 = now_s();
			obj_store_get(direct, key, null_write, &sink, NULL);
			d_get += now_s() - t0;
			obj_store_delete(direct, key);

			/* through the gateway */
			ehr_buf_reset(&resp);
			t0 = now_s();
			ehr_client_request(srv, &status, &resp, "POST", path, NULL, body, n, NULL, NULL);
			gw_put += now_s() - t0;
			if (status != 201 || ehr_json_parse(&j, resp.data, resp.len, 1 << 20, 8) < 0 ||
			    ehr_json_get_str(j, "record_id", &r, 40) < 0) {
				fprintf(stderr, "gateway POST %zu -> %ld %s\n", n, status,
				        ehr_client_last_error(srv));
				json_decref(j);
				continue;
			}
			snprintf(rid, sizeof(rid), "/v1/records/%s", r);
			json_decref(j);
			ehr_buf_reset(&out);
			t0 = now_s();
			ehr_client_request(srv, &status, &out, "GET", rid, NULL, NULL, 0, NULL, NULL);
			gw_get += now_s() - t0;
			if (status == 200 && out.len == n)
				ok++;
		}
		printf("gateway %-9s x%-3d  PUT %7.1f MB/s vs direct %7.1f MB/s  ratio %.2f | GET %7.1f MB/s "
		       "vs "
		       "direct %7.1f MB/s  ratio %.2f  (%d/%d ok)\n",
		       n == 1024         ? "1 KiB"
		       : n == (1u << 20) ? "1 MiB"
		                         : "64 MiB",
		       iters[si], mbps((double)n * iters[si], gw_put), mbps((double)n * iters[si], d_put),
		       d_put / gw_put, mbps((double)n * iters[si], gw_get),
		       mbps((double)n * iters[si], d_get), d_get / gw_get, ok, iters[si]);
		if (n == 1024)
			printf("gateway 1 KiB latency: PUT %.2f ms, GET %.2f ms (direct %.2f / %.2f ms)\n",
			       gw_put * 1000 / iters[si], gw_get * 1000 / iters[si], d_put * 1000 / iters[si],
			       d_get * 1000 / iters[si]);
		free(body);
		ehr_buf_free(&resp);
		ehr_buf_free(&out);
	}
	rss1 = vm_hwm_kib(t.pid);
	printf("gateway peak RSS (VmHWM): %.1f MiB before the runs, %.1f MiB after (64 MiB bodies are "
	       "buffered by "
	       "evhttp; see docs/STORAGE.md)\n",
	       rss0 / 1024.0, rss1 / 1024.0);
	obj_store_free(direct);
	ehr_client_free(srv);
	ehr_client_free(pat);
	ehrt_teardown(&t);
}

int main(void)
{
	char dir[64] = "/tmp/ehr-bench-XXXXXX", kid[CLOUD_KID_MAX], kdir[128];
	struct cloud_kek *kek = NULL;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(kdir, sizeof(kdir), "%s/kek", dir);
	if (cloud_kek_generate(kdir, kid) < 0 || cloud_kek_set_current(kdir, kid) < 0 ||
	    cloud_kek_load(&kek, kdir) < 0)
		return 1;
	bench_crypto();
	bench_fs(dir, kek);
	if (ehr_test_env("EHRGATE_TEST_S3_DIRECT") && ehr_test_env("EHRGATE_TEST_PG"))
		bench_gateway();
	else
		printf("gateway: skipped (source the dev services' services.env)\n");
	cloud_kek_free(kek);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return 0;
}
