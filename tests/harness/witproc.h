/*
 * witproc.h - run a real `ehrwitness serve` (docs/WITNESS.md) from a test.
 *
 *   struct wit_proc w;
 *   struct witp_options o = { .name = "w1.test/w", .origin = origin, .log_vkey = vkey };
 *   EHR_ASSERT_OK(witp_setup(&w, &o));   fresh dir, TLS files, witness key, config
 *   EHR_ASSERT_OK(witp_start(&w));       serve; w.base_url, w.port, w.pid
 *   ... witp_post(&w, "/add-checkpoint", body, len, &res) ...
 *   witp_teardown(&w);                   stop (by pid), scan the log, remove the dir
 *
 * witp_setup makes a private temp dir (w->dir), runs `ehrgate init` in
 * w->dir/tls for a TLS server certificate for 127.0.0.1 (trust anchor
 * w->ca_pem), runs `ehrwitness init` for the witness key (w->vkey is its
 * cosignature vkey), and writes w->config: listen and
 * metrics_listen on 127.0.0.1:0, state in w->dir/state, one [log] section
 * for options->origin trusting options->log_vkey, then options->extra_ini.
 * Every start after the first listens on the first start's port again, so
 * a client keeps the witness's URL across restarts (crash tests).
 * The child inherits the test's environment: set EHRGATE_TEST_FAILPOINT
 * (and _RELEASE) before witp_start to arm a failpoint in it.
 * Functions return 0 or a negative ehr_err with the detail set.
 */
#ifndef EHR_TEST_WITPROC_H
#define EHR_TEST_WITPROC_H

#include <stdint.h>
#include <sys/types.h>

#include "tests/harness/gwproc.h"

struct witp_options {
	const char *name;      /* cosigner key name; default "witness.test/w" */
	const char *origin;    /* the witnessed log's origin (required) */
	const char *log_vkey;  /* that log's note vkey (required) */
	const char *extra_ini; /* appended to the config (e.g. more [log] sections), may be NULL */
};

struct wit_proc {
	char dir[GWP_PATH];
	char config[GWP_PATH]; /* dir/witness.ini */
	char key[GWP_PATH];    /* dir/witness.key */
	char state_dir[GWP_PATH];
	char log_path[GWP_PATH]; /* serve's stderr, appended across restarts */
	char ca_pem[GWP_PATH];   /* dir/tls/ca.pem: trust anchor of the witness's TLS cert */
	char name[256];
	char vkey[512];        /* the witness's cosignature vkey */
	char base_url[128];    /* https://127.0.0.1:PORT while running */
	char metrics_url[128]; /* http://127.0.0.1:PORT/metrics */
	uint16_t port;
	pid_t pid;
};

int witp_setup(struct wit_proc *w, const struct witp_options *o);
int witp_start(struct wit_proc *w);
/* SIGTERM and wait (then SIGKILL); *status as gwp_stop. */
int witp_stop(struct wit_proc *w, int *status);
/* kill -9 and reap. */
int witp_kill(struct wit_proc *w);
/* Wait for the witness to exit on its own (a failpoint killed it). */
int witp_wait(struct wit_proc *w, int *status, long wait_ms);
void witp_teardown(struct wit_proc *w);
/* HTTPS POST (body != NULL) or GET to the witness; path "/add-checkpoint". */
int witp_request(const struct wit_proc *w, const char *path, const void *body, size_t len,
                 struct gwp_resp *out);
/* GET metrics_url. */
int witp_metrics(const struct wit_proc *w, struct gwp_resp *out);

#endif
