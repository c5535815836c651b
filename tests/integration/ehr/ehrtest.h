/*
 * ehrtest.h - one real gateway for the EHR storage tests: a fresh database
 * (migrated by `ehrgate migrate`), `ehrgate init` keys, `ehrgate serve` on a
 * free loopback port over TLS, a registered medical server and enrolled
 * patients talking through libehrclient (mTLS / DPoP) as real clients do.
 */
#ifndef EHR_EHRTEST_H
#define EHR_EHRTEST_H

#include <stdbool.h>
#include <sys/types.h>

#include "client/client.h"

struct ehrt {
	char dir[256];   /* temp dir */
	char state[300]; /* dir/state */
	char ini[300];   /* dir/ehrgate.ini */
	char log[300];   /* dir/serve.log */
	char ca[400];    /* state/ca.pem */
	char dbname[64];
	char super_ci[1024];
	char app_ci[1024];
	char url[64];
	int port;
	pid_t pid;
	char store_extra[2048]; /* the [store] section */
};

/* Temp dir, init, database, config ([store] section as given, may be ""), migrate. */
int ehrt_setup(struct ehrt *t, const char *tag, const char *store_section);
/* Rewrite the config with another [store] section (the gateway must be stopped). */
int ehrt_set_store(struct ehrt *t, const char *store_section);
int ehrt_start(struct ehrt *t);
/* SIGTERM (kill9: SIGKILL) and reap, by PID. */
void ehrt_stop(struct ehrt *t, bool kill9);
void ehrt_teardown(struct ehrt *t);
/* Run `ehrgate <args> -c ini`; stdout into out; returns the exit status or -1. */
int ehrt_cmd(struct ehrt *t, char *out, size_t cap, const char *const *args);
/* A SQL scalar through the superuser connection; -1 on error. */
long long ehrt_scalar(struct ehrt *t, const char *sql);
int ehrt_exec(struct ehrt *t, const char *sql);

/* Register a medical server (issue-token + POST /v1/register) into
 * dir/<name>, and open its client. */
int ehrt_server(struct ehrt *t, const char *name, struct ehr_client **out);
/* As server `srv`, create a patient and enrol it into dir/<name>; open its
 * client. pid gets the patient pseudonym. */
int ehrt_patient(struct ehrt *t, struct ehr_client *srv, const char *name, char pid[160],
                 struct ehr_client **out);
/* As the patient whose profile is dir/<patient_name>, grant server_id a
 * contract (`ehrctl contract create --server ID --actions A --all`). */
int ehrt_grant(struct ehrt *t, const char *patient_name, const char *server_id, const char *actions);
/* An S3 [store] section for the dev services' front (or `endpoint`). */
void ehrt_s3_section(char *out, size_t cap, const char *endpoint, const char *extra);

#endif
