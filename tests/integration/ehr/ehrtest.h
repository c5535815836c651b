/*
 * ehrtest.h - the EHR storage tests' world on the one gateway launcher
 * (tests/harness/gwproc.h): the gateway settings these tests run with, a
 * registered medical server and enrolled patients talking through
 * libehrclient (mTLS / DPoP) as real clients do.
 */
#ifndef EHR_EHRTEST_H
#define EHR_EHRTEST_H

#include <stdbool.h>
#include <stddef.h>

#include "client/client.h"
#include "cloud/cloud.h"
#include "tests/harness/gwproc.h"

/* gwp_setup with the EHR tests' settings (2 workers, 100 MiB bodies, a pool
 * of 8, warn logs, no test routes, the port kept across restarts) and the
 * given [store] section ("" or NULL: the gateway's default store). */
int ehrt_gw_setup(struct gw_proc *g, const char *store_ini);

/* Register a principal of `role` ("server", "auditor": issue-token + POST
 * /v1/register) into dir/<name>, and open its client. */
int ehrt_principal(struct gw_proc *g, const char *role, const char *name, struct ehr_client **out);
/* ehrt_principal of a medical server. */
int ehrt_server(struct gw_proc *g, const char *name, struct ehr_client **out);
/* As server `srv`, create a patient (external id `name`) and enrol it into
 * dir/<name>; open its client. pid gets the patient pseudonym. */
int ehrt_patient(struct gw_proc *g, struct ehr_client *srv, const char *name, char pid[160],
                 struct ehr_client **out);
/* The same with the external id apart from the profile's name: a second
 * device of the same patient (POST /v1/patients again gives a new code
 * for the same pseudonym, docs/PROTOCOL.md §5.1). */
int ehrt_patient_device(struct gw_proc *g, struct ehr_client *srv, const char *external_id, const char *name,
                        char pid[160], struct ehr_client **out);
/* As the patient whose profile is dir/<patient_name>, grant server_id a
 * contract (`ehrctl contract create --server ID --actions A --all`). */
int ehrt_grant(struct gw_proc *g, const char *patient_name, const char *server_id, const char *actions);

/* printf into out[cap] (a plain wrapper: -Wformat-truncation would flag
 * every direct snprintf of a path into a fixed buffer). */
void ehrt_fmt(char *out, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));
/* Run a shell command: its stdout into out[cap] (NUL-terminated); returns
 * its exit status (128 if it did not exit, -1 if it could not run). */
int ehrt_sh(char *out, size_t cap, const char *cmd);
/* The gateway's object store opened directly, to look at the bucket or the
 * directory behind the gateway's back: S3 through the dev services' front
 * with the launcher's key prefix (t<pid>/), or the fs store at fs_root. */
int ehrt_raw_store(struct obj_store **out, bool s3, const char *fs_root);

/* ---- what the erasure tests look at (test_ehr_erase.c, test_patient_erase_ehr.c) */

/* A server stores a record for pid (category cat or none): the status;
 * rid gets its id on 201. */
long ehrt_put(struct ehr_client *c, const char *pid, const char *cat, const uint8_t *body, size_t n,
              char rid[CLOUD_RID_HEX]);
/* One number from SQL (printf-formatted) on g's database as the superuser. */
long long ehrt_q1(const struct gw_proc *g, const char *f, ...) __attribute__((format(printf, 2, 3)));
/* The hex of rid's wrapped data key as stored, "" if none. */
void ehrt_wrapped_hex(const struct gw_proc *g, const char *rid, char *out, size_t cap);
/* How many rows of every table of the database hold hex in their text form
 * (bytea renders as \x<hex>): the wrapped key anywhere at all. */
long long ehrt_rows_holding(const struct gw_proc *g, const char *hex);
/* GET /v1/records/{rid}; the status (0 when no reply came); the body into
 * out, or discarded when out is NULL. */
long ehrt_get(struct ehr_client *c, const char *rid, struct ehr_buf *out);
/* POST path {"basis": basis} (JSON); the status; *resp (may be NULL) the
 * JSON reply. */
long ehrt_post_basis(struct ehr_client *c, const char *path, const char *basis, json_t **resp);
/* A refusal body's error.<key>, or NULL. */
const char *ehrt_err_str(const json_t *resp, const char *key);
/* rid's object is in the store (opened with ehrt_raw_store). */
bool ehrt_object_exists(struct obj_store *raw, const char *rid);

#endif
