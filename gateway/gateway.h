/*
 * gateway.h - the daemon's face: routes, requests, replies.
 *
 * Route handlers in gateway/routes_*.c are written against this header
 * only. A handler runs either inline on the worker's event loop (cheap,
 * non-blocking routes such as /healthz) or, when the route is `blocking`,
 * on the gateway's blocking-job thread pool, where it may call Postgres,
 * the ledger (whose appends wait for group commit) or the object store.
 * Either way it must produce exactly one reply with gw_reply_*; the reply
 * is handed back to the connection's event loop by the core.
 */
#ifndef EHR_GATEWAY_H
#define EHR_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct gw_req;   /* one HTTP request, opaque */
struct gw_app;   /* the process-wide application state, opaque */

/* Roles a route may demand. A route with roles == 0 is public. */
enum gw_role {
	GW_ROLE_PATIENT = 1u << 0,  /* DPoP-bound access token */
	GW_ROLE_SERVER = 1u << 1,   /* mTLS, registration-CA cert, role "server" */
	GW_ROLE_AUDITOR = 1u << 2,  /* mTLS, registration-CA cert, role "auditor" */
};

/* Who made the request, after the core has authenticated it. */
struct gw_identity {
	unsigned role;          /* exactly one gw_role bit, or 0 when public */
	char subject[128];      /* server/auditor: certificate subject id; patient: pseudonym */
	char actor[128];        /* pseudonymous actor recorded in the ledger */
	char cert_serial[64];   /* hex serial for mTLS identities, else "" */
	char jkt[64];           /* patient: JWK thumbprint of the device key, else "" */
};

typedef void (*gw_handler_fn)(struct gw_req *r);

struct gw_route {
	const char *method;   /* "GET", "POST", ... */
	const char *pattern;  /* "/v1/patients/{pid}/records": {name} matches one segment */
	const char *name;     /* stable metric label, e.g. "patients.records.create" */
	unsigned roles;       /* any of these roles may call it; 0 = public */
	bool blocking;        /* run on the blocking-job pool */
	gw_handler_fn fn;
};

/* ---- request accessors (valid until the reply is sent) */
const char *gw_req_method(const struct gw_req *r);
const char *gw_req_path(const struct gw_req *r);            /* decoded path, no query */
const char *gw_req_param(const struct gw_req *r, const char *name);   /* path parameter */
const char *gw_req_query(const struct gw_req *r, const char *name);   /* NULL if absent */
const char *gw_req_header(const struct gw_req *r, const char *name);  /* NULL if absent */
const uint8_t *gw_req_body(const struct gw_req *r, size_t *len);
const char *gw_req_peer(const struct gw_req *r);             /* client IP, for rate limits */
const struct gw_identity *gw_req_identity(const struct gw_req *r);
/* The absolute URL the client used (https://host:port/path), for DPoP htu. */
const char *gw_req_url(const struct gw_req *r);
/* The verified peer certificate (X509 *), or NULL. Not owned by the caller. */
void *gw_req_peer_cert(const struct gw_req *r);
/* X509_V_OK when the TLS layer verified the peer certificate against the
 * registration CA, an X509_V_ERR_* code when it did not, -1 when no
 * certificate was presented. The listener never fails a handshake over a
 * client certificate; routes decide (see gw_authenticate). */
long gw_req_peer_verify(const struct gw_req *r);
struct gw_app *gw_req_app(const struct gw_req *r);

/* ---- replies: exactly one per request */
void gw_reply_header(struct gw_req *r, const char *name, const char *value);
void gw_reply_json(struct gw_req *r, int status, json_t *body /* stolen */);
void gw_reply_bytes(struct gw_req *r, int status, const char *content_type, const void *data, size_t len);
/* {"error":{"code":code,"message":message}} with `status`. The message must
 * hold no PHI or secret. */
void gw_reply_error(struct gw_req *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Map a negative ehr_err (and the thread's detail) to a status and JSON error. */
void gw_reply_err(struct gw_req *r, int err);

/* ---- application state shared by all handlers */
struct ehr_db_pool *gw_app_db(struct gw_app *app);
struct ledger *gw_app_ledger(struct gw_app *app);
struct auth_ctx *gw_app_auth(struct gw_app *app);
struct obj_store *gw_app_store(struct gw_app *app);
const struct gw_config *gw_app_config(struct gw_app *app);

/*
 * Authenticate a request for a route with roles != 0 (gateway/authn.c,
 * owned by auth). Runs on the blocking pool. Fills *id on success. Returns
 * EHR_ERR_AUTH (401) when credentials are missing or invalid, or
 * EHR_ERR_FORBIDDEN (403) when valid but of a role the route does not allow.
 * It may set reply headers (e.g. WWW-Authenticate) but never replies.
 */
int gw_authenticate(struct gw_req *r, const struct gw_route *route, struct gw_identity *id);

/* Route tables contributed by each area (gateway/routes_*.c). */
extern const struct gw_route gw_routes_core[];
extern const size_t gw_routes_core_len;
extern const struct gw_route gw_routes_auth[];
extern const size_t gw_routes_auth_len;
extern const struct gw_route gw_routes_ehr[];
extern const size_t gw_routes_ehr_len;
extern const struct gw_route gw_routes_audit[];
extern const size_t gw_routes_audit_len;

#endif
