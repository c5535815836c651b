/*
 * cmd_serve.c - `ehrgate serve`: load the config, harden the process,
 * open the application state and run the TLS HTTP server until SIGTERM.
 */
#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static void serve_usage(FILE *f)
{
	fprintf(f, "usage: ehrgate serve [-c FILE] [--set section.key=value]... [--print-config]\n\n"
	           "Run the gateway in the foreground. It prints\n"
	           "  ehrgate listening on https://HOST:PORT\n"
	           "on stdout once it accepts connections, and logs JSON lines on stderr.\n"
	           "SIGHUP reloads [tls] cert, key and client_ca; SIGTERM or SIGINT drains\n"
	           "in-flight requests (at most [server] drain_timeout_s) and exits 0.\n"
	           "--print-config prints the effective configuration (secrets hidden) and exits.\n");
}

int gw_cmd_serve(int argc, char **argv)
{
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	struct rlimit nocore = { 0, 0 };
	enum ehr_log_level lvl;
	bool print = false;
	sigset_t sigs;
	int rc;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			serve_usage(stdout);
			return 0;
		}
	if ((rc = gw_config_from_args(&cfg, &argc, argv)) != 0)
		return rc;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--print-config") == 0) {
			print = true;
		} else {
			fprintf(stderr, "ehrgate serve: unexpected argument '%s'\n", argv[i]);
			serve_usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (print) {
		struct ehr_buf b = EHR_BUF_INIT(1u << 20);
		rc = gw_config_dump(cfg, &b) < 0 ? 1 : 0;
		fputs(ehr_buf_cstr(&b), stdout);
		ehr_buf_free(&b);
		goto out;
	}
	if (ehr_log_parse_level(&lvl, gw_config_get(cfg, "log", "level")) == 0)
		ehr_log_set_level(lvl);

	/* glibc raises its mmap threshold to the largest block freed, so after
	 * one multi-MiB buffer (an S3 part) every later one came from a
	 * per-thread arena and stayed resident: with 32 blocking threads RSS
	 * climbed ~7 MiB per upload. A fixed threshold keeps the big buffers
	 * mmap'ed (returned on free) and the rest on the heap: at 256 KiB the
	 * streaming windows' chains were mmap'ed and unmapped all the time, and
	 * a 64 MiB body through the HTTP layer took twice as long. */
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	/* And glibc gives a heap's free top back (madvise) once it passes
	 * 128 KiB: every upload that freed its 256 KiB store chunk did, and
	 * each such madvise is a TLB-shootdown IPI to the other cores. 512 KiB
	 * of slack per arena (with the store's chunk now 64 KiB) stops nearly
	 * all of them and keeps what the arenas hold small: with 2 MiB the
	 * peak RSS of a 64 MiB transfer rose from 24 to 30-35 MiB, over its
	 * 32 MiB budget (tests/bench/storage). The trim after a wave of closed
	 * connections (server.c) still hands everything back. */
	mallopt(M_TRIM_THRESHOLD, 512 * 1024);
	/* Keys live in this process: no core dumps, no ptrace by peers. */
	setrlimit(RLIMIT_CORE, &nocore);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* Block the signals before any thread (ledger writer, pools) starts,
	 * so only the server's sigwait sees them. */
	gw_server_block_signals(&sigs);

	if (gw_app_open(&app, cfg, GW_APP_ALL) < 0) {
		fprintf(stderr, "ehrgate serve: %s\n", ehr_error_detail());
		ehr_logf(EHR_LOG_ERROR, "server.init_failed", "%s", ehr_error_detail());
		rc = 1;
		goto out;
	}
	if ((rc = gw_serve(cfg, app)) < 0) {
		fprintf(stderr, "ehrgate serve: %s\n", ehr_error_detail());
		if (rc == EHR_ERR_TIMEOUT) {
			/* Handlers are still running on the pool: do not free what they use. */
			fflush(NULL);
			_exit(1);
		}
		ehr_logf(EHR_LOG_ERROR, "server.failed", "%s", ehr_error_detail());
		rc = 1;
		goto out;
	}
	ehr_logf(EHR_LOG_INFO, "server.exit", "drained; exiting");
	rc = 0;
out:
	gw_app_close(app);
	gw_config_free(cfg);
	return rc;
}
