/*
 * bench_tiles.c - C2SP tlog-tiles reads per second from `ehrgate serve`
 * against nginx serving the same bytes from files, in the same run, on
 * loopback over TLS with the same certificate (tests/bench/tiles/run.sh).
 *
 *   bench_tiles [entries] [seconds]      (EHRGATE_TEST_PG must be set)
 *
 * Fills a ledger with `entries` (default 70,000), fetches every full and
 * partial hash tile of the published tree once from the gateway, writes
 * each to <www>/tile/<path> for nginx, then runs wrk (keep-alive, a Lua
 * script cycling through the same tile paths) against both servers in
 * alternating rounds and prints the medians and the ratio. A benchmark,
 * not a test: it prints figures and asserts nothing about speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ledger/ledger.h"
#include "tests/harness/gwproc.h"
#include "tests/harness/harness.h"
#include "tests/integration/ledger/ltest.h"

#define ROUNDS 3

static struct gw_proc gw;
static char www[GWP_PATH + 8], paths_lua[GWP_PATH + 16];

static void say(const char *f, const char *a)
{
	fprintf(stderr, "bench_tiles: %s%s\n", f, a ? a : "");
}

static int fill(uint64_t size)
{
	char keyf[GWP_PATH + 32];

	snprintf(keyf, sizeof(keyf), "%s/ledger.key", gw.state_dir);
	return ltest_grow_to(gw.db.app_ci, keyf, "ehrgate.local/ledger", size, "tiles bench");
}

/* mkdir -p of the directories in path (not its last element). */
static int mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && access(path, F_OK) != 0)
			return -1;
		*p = '/';
	}
	return 0;
}

/* Every hash tile of a tree of `size` from the gateway into www/, its path
 * into the Lua list. Returns the number of tiles, or -1. */
static int mirror(uint64_t size)
{
	FILE *lua = fopen(paths_lua, "w");
	int count = 0;

	if (lua == NULL)
		return -1;
	fprintf(lua, "paths = {\n");
	for (unsigned level = 0; level < 8 && (size >> (8 * level)) > 0; level++) {
		uint64_t hashes = size >> (8 * level);
		for (uint64_t n = 0; n * LEDGER_TILE_WIDTH < hashes; n++) {
			struct ledger_tile t = { false, level, n, LEDGER_TILE_WIDTH };
			struct ehr_buf path = EHR_BUF_INIT(256);
			char url[300], file[1024];
			struct gwp_resp res;

			if ((n + 1) * LEDGER_TILE_WIDTH > hashes)
				t.width = (unsigned)(hashes % LEDGER_TILE_WIDTH);
			if (ledger_tile_path_format(&path, &t) < 0)
				return -1;
			snprintf(url, sizeof(url), "/tile/%s", ehr_buf_cstr(&path));
			snprintf(file, sizeof(file), "%s%s", www, url);
			ehr_buf_free(&path);
			if (gwp_get(&gw, url, &res) < 0 || res.status != 200 || mkdirs(file) < 0 ||
			    ehr_file_write_atomic(file, res.body, res.body_len, 0644, false) < 0) {
				say("cannot mirror ", url);
				return -1;
			}
			gwp_resp_free(&res);
			fprintf(lua, "  \"%s\",\n", url);
			count++;
		}
	}
	fprintf(lua, "}\ni = 0\nrequest = function()\n  i = i %% #paths + 1\n"
	             "  return wrk.format(\"GET\", paths[i])\nend\n");
	fclose(lua);
	return count;
}

static int start_nginx(const char *dir, uint16_t port, pid_t *pid)
{
	char conf[GWP_PATH + 32], cmd[GWP_PATH * 4];
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
	if ((f = fopen(conf, "w")) == NULL)
		return -1;
	fprintf(f,
	        "worker_processes %ld;\npid %s/nginx.pid;\nerror_log %s/error.log warn;\ndaemon off;\n"
	        "events { worker_connections 4096; }\n"
	        "http {\n  access_log off;\n  client_body_temp_path %s/body;\n  proxy_temp_path %s/proxy;\n"
	        "  fastcgi_temp_path %s/fastcgi;\n  uwsgi_temp_path %s/uwsgi;\n  scgi_temp_path %s/scgi;\n"
	        "  keepalive_requests 1000000;\n"
	        "  server {\n    listen 127.0.0.1:%u ssl reuseport;\n"
	        "    ssl_certificate %s/server.pem;\n    ssl_certificate_key %s/server.key;\n"
	        "    ssl_protocols TLSv1.2 TLSv1.3;\n    root %s;\n"
	        "    location /tile/ { default_type application/octet-stream;\n"
	        "      add_header Cache-Control \"public, max-age=31536000, immutable\"; }\n  }\n}\n",
	        sysconf(_SC_NPROCESSORS_ONLN), dir, dir, dir, dir, dir, dir, dir, port, gw.state_dir,
	        gw.state_dir, www);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "nginx -c %s -e %s/error.log & echo $!", conf, dir);
	f = popen(cmd, "r");
	if (f == NULL || fscanf(f, "%d", pid) != 1) {
		if (f)
			pclose(f);
		return -1;
	}
	pclose(f);
	sleep(1);
	return 0;
}

/* wrk against base (https://127.0.0.1:PORT) with the tile list: req/s. */
static double wrk_rate(const char *base, const char *secs)
{
	char cmd[GWP_PATH * 3], line[512];
	double rate = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "wrk -t2 -c32 -d%ss -s %s %s/ 2>&1", secs, paths_lua, base);
	if ((f = popen(cmd, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		fputs(line, stderr);
		if (strncmp(line, "Requests/sec:", 13) == 0 && rate == 0)
			rate = strtod(line + 13, NULL);
		if (strstr(line, "Non-2xx") != NULL) {
			say("refused requests: this round does not count", NULL);
			rate = -1;
		}
	}
	pclose(f);
	return rate;
}

/* A port nothing listens on now (bound to 0, read back, released). */
static uint16_t free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *sets[] = { "log.level=warn", NULL };
	struct gwp_options o = { .sets = sets, .no_test_routes = true };
	uint64_t entries = argc > 1 ? strtoull(argv[1], NULL, 10) : 70000;
	const char *secs = argc > 2 ? argv[2] : "10";
	double gwr[ROUNDS], ngr[ROUNDS];
	char ngdir[GWP_PATH + 8], ngurl[64];
	pid_t ng = 0;
	uint16_t port;
	int tiles, rc = 1;

	if (gwp_setup(&gw, &o) < 0 || gwp_start(&gw) < 0 || fill(entries) < 0) {
		say("setup failed: ", ehr_error_detail());
		goto out;
	}
	/* nginx's workers (not root) read the files: a world-readable tree of
	 * its own, outside the launcher's private dir */
	snprintf(www, sizeof(www), "/tmp/ehr-tiles-www-XXXXXX");
	if (mkdtemp(www) == NULL || chmod(www, 0755) != 0)
		goto out;
	snprintf(ngdir, sizeof(ngdir), "%s/nginx", gw.dir);
	snprintf(paths_lua, sizeof(paths_lua), "%s/paths.lua", gw.dir);
	if (mkdir(ngdir, 0700) != 0 || (tiles = mirror(entries)) < 0)
		goto out;
	port = free_port();
	if (port == 0 || start_nginx(ngdir, port, &ng) < 0) {
		say("nginx did not start", NULL);
		goto out;
	}
	snprintf(ngurl, sizeof(ngurl), "https://127.0.0.1:%u", port);
	for (int r = 0; r < ROUNDS; r++) {
		gwr[r] = wrk_rate(gw.base_url, secs);
		ngr[r] = wrk_rate(ngurl, secs);
		printf("round %d: ehrgate %.0f tiles/s, nginx %.0f tiles/s, ratio %.3f\n", r + 1, gwr[r],
		       ngr[r], ngr[r] > 0 ? gwr[r] / ngr[r] : 0);
	}
	qsort(gwr, ROUNDS, sizeof(double), cmp);
	qsort(ngr, ROUNDS, sizeof(double), cmp);
	printf("%d hash tiles of a %llu-entry tree, wrk -t2 -c32 -d%ss, medians of %d rounds:\n", tiles,
	       (unsigned long long)entries, secs, ROUNDS);
	printf("ehrgate: %.0f tiles/s\nnginx:   %.0f tiles/s (the same bytes from files)\nratio "
	       "ehrgate/nginx: %.3f\n",
	       gwr[ROUNDS / 2], ngr[ROUNDS / 2], ngr[ROUNDS / 2] > 0 ? gwr[ROUNDS / 2] / ngr[ROUNDS / 2] : 0);
	rc = 0;
out:
	if (ng > 0) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "kill %d", (int)ng);
		if (system(cmd) != 0)
			say("could not stop nginx", NULL);
	}
	if (www[0])
		ehr_test_rmrf(www);
	gwp_teardown(&gw);
	return rc;
}
