/*
 * gateway.h - the application: configuration, the shared state the routes
 * use, authentication, the one error -> HTTP table, and the route tables.
 * The HTTP engine it runs on is gateway/http/http.h.
 */
#ifndef EHR_GATEWAY_H
#define EHR_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct ehr_db_pool; /* common/db.h */
#include "gateway/http/http.h"

struct gw_app; /* the process-wide application state, opaque */

/* The application of a request (the engine's userdata). */
struct gw_app *gw_req_app(const struct gw_req *r);

/* Map a negative ehr_err (and the thread's detail) to a status and JSON error. */
void gw_reply_err(struct gw_req *r, int err);

/* ---- application state shared by all handlers */
struct ehr_db_pool *gw_app_db(struct gw_app *app);
struct ledger *gw_app_ledger(struct gw_app *app);
/* An event sink (struct auth_event_sink's append) that appends to the ledger
 * given as ud; payload borrowed; ud NULL drops the event. */
int gw_ledger_event(void *ledger, const char *type, const char *actor, const char *subject,
                    const json_t *payload);
struct auth_ctx *gw_app_auth(struct gw_app *app);
struct obj_store *gw_app_store(struct gw_app *app);
const struct gw_config *gw_app_config(struct gw_app *app);
/* The witness publisher (publish/publish.h), NULL without [witness] witnesses. */
struct publisher *gw_app_publisher(struct gw_app *app);

/* ---- erasure (docs/ERASURE.md §6): [retention] as the record service's
 * minimum retention periods (gateway/retention.c). EHR_ERR_CONFIG names
 * what is malformed. gw_app_open checks it, so a bad value stops startup. */
struct records_retention;
int gw_retention_parse(struct records_retention *r, const char *default_period, const char *categories);
int gw_retention_from_config(const struct gw_config *cfg, struct records_retention *r);

/* ---- configuration (gateway/config.c; docs/OPERATIONS.md lists every key)
 *
 * Values come from, in increasing precedence: the built-in defaults, the INI
 * file, EHRGATE_<SECTION>_<KEY> environment variables, then --set
 * section.key=value flags. Unknown keys and invalid values are errors whose
 * detail names the key and where it came from (never the value: it may be
 * a secret). Adding a key is one row in config.c's table.
 */
struct gw_config;

int gw_config_new(struct gw_config **out); /* every key at its default */
void gw_config_free(struct gw_config *cfg);
int gw_config_load_file(struct gw_config *cfg, const char *path);
/* Parse INI text; `origin` names it in errors. */
int gw_config_load_string(struct gw_config *cfg, const char *text, const char *origin);
/* Apply EHRGATE_<SECTION>_<KEY>=value entries of a NULL-terminated environment.
 * Variables whose prefix names no known section (EHRGATE_TEST_PG, ...) are ignored. */
int gw_config_load_env(struct gw_config *cfg, char *const *envp);
int gw_config_set(struct gw_config *cfg, const char *section, const char *key, const char *value,
                  const char *origin);
/* "section.key=value", as given to --set. */
int gw_config_set_arg(struct gw_config *cfg, const char *assignment);
/* Resolve derived defaults (paths under [server] state_dir, workers=auto,
 * [database] admin_url) and cross-key checks. Call once, after loading. */
int gw_config_finish(struct gw_config *cfg);
/* All of the above in order: defaults, file (may be NULL), environ, sets, finish. */
int gw_config_build(struct gw_config **out, const char *path, char *const *sets, size_t nsets);
/* The value ("" when unset and without default), or NULL for an unknown key. */
const char *gw_config_get(const struct gw_config *cfg, const char *section, const char *key);
/* Typed views of validated values (0/false for unknown keys). */
uint64_t gw_config_get_uint(const struct gw_config *cfg, const char *section, const char *key);
bool gw_config_get_bool(const struct gw_config *cfg, const char *section, const char *key);
/* "<state_dir>/<name>" into out. */
int gw_config_state_path(const struct gw_config *cfg, const char *name, struct ehr_buf *out);
/* The i-th key of the table (docs checks, tools); false past the end. */
bool gw_config_key_at(size_t i, const char **section, const char **key, const char **def);
/* One line per key, "section.key = value", secrets shown as "(set)". */
int gw_config_dump(const struct gw_config *cfg, struct ehr_buf *out);

/*
 * Shared option handling for commands: consumes -c/--config FILE and
 * --set section.key=value from argv (in place, keeping the others in order,
 * argv[0] first) and builds the configuration. Returns 0, or 2 after
 * printing a usage error, or 1 after printing a config error.
 */
int gw_config_from_args(struct gw_config **out, int *argc, char **argv);

/* Run the HTTP engine with the routes and limits of cfg, on app. */
int gw_serve(const struct gw_config *cfg, struct gw_app *app);

/* ---- application lifecycle (gateway/app.c), for serve and the other commands */
enum gw_app_part {
	GW_APP_DB = 1u << 0,     /* [database] pool as ehrgate_app */
	GW_APP_LEDGER = 1u << 1, /* ledger_open with <state_dir>/ledger.key (implies DB) */
	GW_APP_AUTH = 1u << 2,   /* auth context (implies DB) */
	GW_APP_STORE = 1u << 3,  /* object store */
	/* the audit.query queue and its flusher thread (implies LEDGER) */
	GW_APP_AUDIT_QUERIES = 1u << 4,
	GW_APP_ATNA = 1u << 5, /* the ATNA feed of [atna], when it names repositories (implies LEDGER) */
	/* the witness publisher of [witness], when it names witnesses (implies LEDGER) */
	GW_APP_PUBLISH = 1u << 6,
	GW_APP_ALL = 0x7fu,
};
/* Open the parts named in `what`. cfg must outlive the app. */
int gw_app_open(struct gw_app **out, const struct gw_config *cfg, unsigned what);
void gw_app_close(struct gw_app *app);

/*
 * Authenticate a request for a route with roles != 0 (gateway/authn.c,
 * owned by auth). Runs on the blocking pool. Fills *id on success. Returns
 * EHR_ERR_AUTH (401) when credentials are missing or invalid, or
 * EHR_ERR_FORBIDDEN (403) when valid but of a role the route does not allow.
 * It may set reply headers (e.g. WWW-Authenticate) but never replies.
 */
int gw_authenticate(struct gw_req *r, const struct gw_route *route, struct gw_identity *id);

/* The engine's gate for routes with roles: gw_authenticate, then the
 * route's roles; replies with the refusal and returns 1, or sets the
 * request's identity and returns 0. */
int gw_gate(struct gw_req *r);

/* ---- patient erasure, the right to be forgotten (gateway/patient_erase.c,
 * docs/ERASURE.md §10) */
struct gw_patient_erase_out {
	uint64_t erase_seq;      /* the auth.patient.erase entry */
	uint64_t records_erased; /* by this run */
	bool already;            /* it was erased before: nothing done */
};
struct records_refusal;
/*
 * Erase patient `pid` on a legal basis. Refused with EHR_ERR_CONFLICT and
 * *why filled (why->refused_seq: the auth.patient.erase failure entry that
 * records it) while a record of the patient is inside its [retention]
 * period or under a legal hold (records_erase_check, the record erasure's
 * own check); otherwise the erasure is in the ledger, the link from the
 * external id is gone, the device key and the contracts are revoked, and
 * every record is erased. requested_by is "patient" or "operator", actor
 * the ledger actor. Running it again on a patient left 'erasing' by a
 * crash finishes the erasure.
 */
int gw_patient_erase(struct gw_app *app, const char *pid, const char *basis, const char *requested_by,
                     const char *actor, struct gw_patient_erase_out *out, struct records_refusal *why);
struct gw_patient_erase_report {
	size_t applied;   /* erasures in the ledger whose state was missing (crash before commit) */
	size_t completed; /* 'erasing' patients finished */
	size_t failed;
	uint64_t records_erased;
};
/* fsck: complete every erasure that a crash interrupted. */
int gw_patient_erase_complete(struct gw_app *app, struct gw_patient_erase_report *rep);
/* 410 patient_erased {"error":{"code","message","erase_seq"}}. */
void gw_reply_patient_erased(struct gw_req *r, const char *pid);
/* If pid is an erased patient, reply 410 (or 503) and return 1; else 0. */
int gw_patient_refused(struct gw_req *r, const char *pid);
/* 409 erasure_refused {"error":{"code","message","refused_seq", and
 * records_refusal_json's fields}}: the one reply for a refused record or
 * patient erasure (of_patient: the message names the patient's records). */
void gw_reply_erase_refused(struct gw_req *r, const struct records_refusal *why, bool of_patient);

/* The one id validator (gateway/ids.c), the engine's gw_param_fn: path
 * parameters {pid} {rid} {cid} and the id-valued query parameters
 * (patient, actor, subject) by name, in their documented formats. */
int gw_id_check(const char *name, const char *value, bool path);

/* Route tables contributed by each area (gateway/routes_*.c). */
/* All route tables in match order (serve.c), the one list both serve and
 * `ehrgate routes` (schemas/openapi.yaml's coverage test) read. Returns how
 * many of them are mounted in production: the test table is last and is
 * mounted only with [server] test_routes = true. */
#define GW_ROUTE_TABLES 8
size_t gw_route_tables(const struct gw_route *tables[GW_ROUTE_TABLES], size_t lens[GW_ROUTE_TABLES]);
extern const struct gw_route gw_routes_core[];
extern const size_t gw_routes_core_len;
extern const struct gw_route gw_routes_auth[];
extern const size_t gw_routes_auth_len;
extern const struct gw_route gw_routes_ehr[];
extern const size_t gw_routes_ehr_len;
extern const struct gw_route gw_routes_audit[];
extern const size_t gw_routes_audit_len;
extern const struct gw_route gw_routes_fhir[];
extern const size_t gw_routes_fhir_len;
extern const struct gw_route gw_routes_console[];
extern const size_t gw_routes_console_len;

/* The web console's files (docs/CONSOLE.md), bundled from console/ by
 * console/build.mjs at build time into a generated C file: served by
 * routes_console.c from memory, so the binary carries its own console. */
struct gw_console_asset {
	const char *name;         /* "index.html", "app-<hash>.js": one path segment */
	const char *content_type; /* the Content-Type it is served with */
	const unsigned char *data;
	size_t len;
	bool immutable; /* a content-hashed name: cached for a year */
};
extern const struct gw_console_asset gw_console_assets[];
extern const size_t gw_console_assets_len;
extern const struct gw_route gw_routes_tiles[]; /* routes_tiles.c, routes_receipts.c */
extern const size_t gw_routes_tiles_len;

/* routes_fhir.c: the engine's error hook (gw_http_options.error_render):
 * every refusal on /fhir is a FHIR OperationOutcome. */
char *gw_fhir_error_render(const struct gw_req *r, int status, const char *code, const char *message,
                           const char **content_type);

#endif
