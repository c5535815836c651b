/*
 * authn.c - gw_authenticate: the one place where a request for a protected
 * route becomes an identity (docs/PROTOCOL.md §5, §6).
 *
 *  - Medical servers and auditors: the TLS layer verified the client
 *    certificate against the registration CA; here we check that result,
 *    then revocation and registration with one indexed query on every
 *    request (so `ehrgate admin revoke` bites at once, on open connections
 *    and on every instance), then the role.
 *  - Patients: Authorization: DPoP <access token> plus a DPoP proof, both
 *    ES256-only, bound together by cnf.jkt, with the proof's jti spent in
 *    the shared database.
 *
 * Every refusal is 401 (403 for a valid identity of the wrong role), with a
 * WWW-Authenticate challenge, and a rate-limited ledger failure event.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "auth/auth.h"
#include "gateway/gateway.h"
#include "gateway/gateway_internal.h"

static unsigned role_bit(const char *role)
{
	if (strcmp(role, "server") == 0)
		return GW_ROLE_SERVER;
	if (strcmp(role, "auditor") == 0)
		return GW_ROLE_AUDITOR;
	if (strcmp(role, "patient") == 0)
		return GW_ROLE_PATIENT;
	return 0;
}

/* The public message as an RFC 6750 §3 error_description: printable
 * ASCII without '"' or '\\' (those are dropped, not the whole text). */
static void description_of(char *out, size_t cap, const char *msg)
{
	size_t n = 0;

	for (; *msg && n + 1 < cap; msg++)
		if (*msg >= 0x20 && *msg < 0x7f && *msg != '"' && *msg != '\\')
			out[n++] = *msg;
	out[n] = '\0';
}

static void challenge(struct gw_req *r, bool dpop, const char *error)
{
	char v[768], desc[512];

	if (!dpop) {
		gw_reply_header(r, "WWW-Authenticate", "Mutual-TLS realm=\"ehrgate\"");
		return;
	}
	/* The public message names the failed check; never a file or a secret. */
	description_of(desc, sizeof(desc), *ehr_error_msg() ? ehr_error_msg() : ehr_err_public(EHR_ERR_AUTH));
	if (ehr_fmt(v, sizeof(v), "DPoP algs=\"ES256\", error=\"%s\", error_description=\"%s\"", error,
	            desc) < 0)
		memcpy(v, "DPoP algs=\"ES256\"", sizeof("DPoP algs=\"ES256\""));
	gw_reply_header(r, "WWW-Authenticate", v);
}

static int fail(struct gw_req *r, struct auth_ctx *ctx, int err, const char *type, const char *actor,
                const char *reason)
{
	struct ehr_error_saved saved;

	ehr_error_save(&saved);
	auth_event(ctx, type, actor, "", false, reason, gw_req_peer(r));
	ehr_error_restore(&saved);
	/* Replays, expiries and the rest are all "not authenticated". */
	if (err != EHR_ERR_FORBIDDEN && err != EHR_ERR_UNAVAILABLE && err != EHR_ERR_NOMEM &&
	    err != EHR_ERR_TIMEOUT)
		err = EHR_ERR_AUTH;
	return err;
}

static int authenticate_mtls(struct gw_req *r, struct auth_ctx *ctx, const struct gw_route *route,
                             struct gw_identity *id)
{
	struct auth_principal p;
	long vr = gw_req_peer_verify(r);
	unsigned bit;
	int err;

	err = auth_check_client_cert(ctx, &p, gw_req_peer_cert(r), vr);
	if (err < 0) {
		challenge(r, false, NULL);
		/* Only a chain we verified gives a trustworthy (pseudonymous) id. */
		return fail(r, ctx, err, "auth.mtls", vr == X509_V_OK ? p.id : "anonymous",
		            vr == -1          ? "no_certificate"
		            : vr != X509_V_OK ? "bad_chain"
		                              : "rejected");
	}
	bit = role_bit(p.role);
	if ((bit & (GW_ROLE_SERVER | GW_ROLE_AUDITOR)) == 0 || (route->roles & bit) == 0) {
		ehr_error_set(EHR_ERR_FORBIDDEN, "role '%s' may not call %s", p.role, route->name);
		return fail(r, ctx, EHR_ERR_FORBIDDEN, "auth.mtls", p.id, "wrong_role");
	}
	if (auth_event_session(ctx, "auth.mtls", &p) < 0)
		return ehr_error_wrap(EHR_ERR_UNAVAILABLE, "ledger unavailable");
	id->role = bit;
	GUARD(ehr_str_copy(id->subject, sizeof(id->subject), p.id));
	GUARD(ehr_str_copy(id->actor, sizeof(id->actor), p.id));
	return ehr_str_copy(id->cert_serial, sizeof(id->cert_serial), p.serial);
}

static int authenticate_dpop(struct gw_req *r, struct auth_ctx *ctx, struct gw_identity *id)
{
	struct auth_principal p;
	int err;

	err = auth_check_dpop_request(ctx, &p, gw_req_header(r, "Authorization"), gw_req_header(r, "DPoP"),
	                              gw_req_method(r), gw_req_url(r));
	if (err == EHR_ERR_GONE) {
		/* The token and proof are the patient's own: say that they were
		 * erased (gw_gate replies 410 patient_erased). */
		GUARD(ehr_str_copy(id->subject, sizeof(id->subject), p.id));
		return err;
	}
	if (err < 0) {
		challenge(r, true, err == EHR_ERR_REPLAY ? "invalid_dpop_proof" : "invalid_token");
		return fail(r, ctx, err, "auth.dpop", "anonymous",
		            err == EHR_ERR_REPLAY ? "replay" : "rejected");
	}
	if (auth_event_session(ctx, "auth.dpop", &p) < 0)
		return ehr_error_wrap(EHR_ERR_UNAVAILABLE, "ledger unavailable");
	id->role = GW_ROLE_PATIENT;
	GUARD(ehr_str_copy(id->subject, sizeof(id->subject), p.id));
	GUARD(ehr_str_copy(id->actor, sizeof(id->actor), p.id));
	GUARD(ehr_str_copy(id->token_jti, sizeof(id->token_jti), p.token_jti));
	id->token_exp = p.token_exp;
	return ehr_str_copy(id->jkt, sizeof(id->jkt), p.jkt);
}

/*
 * A patient's DPoP token and proof on a route only certificates may call:
 * when both verify, the caller is authenticated but of the wrong role,
 * 403 with a wrong_role event (the proof's jti is spent, as on any use).
 * 0 when they do not verify: the route's own 401 follows.
 */
static int patient_on_cert_route(struct gw_req *r, struct auth_ctx *ctx, const struct gw_route *route)
{
	struct auth_principal p;
	int err = auth_check_dpop_request(ctx, &p, gw_req_header(r, "Authorization"),
	                                  gw_req_header(r, "DPoP"), gw_req_method(r), gw_req_url(r));

	if (err == EHR_ERR_UNAVAILABLE || err == EHR_ERR_TIMEOUT || err == EHR_ERR_NOMEM)
		return err;
	if (err < 0) {
		ehr_error_clear();
		return 0;
	}
	ehr_error_set(EHR_ERR_FORBIDDEN, "role 'patient' may not call %s: it needs a client certificate",
	              route->name);
	return fail(r, ctx, EHR_ERR_FORBIDDEN, "auth.dpop", p.id, "wrong_role");
}

int gw_authenticate(struct gw_req *r, const struct gw_route *route, struct gw_identity *id)
{
	struct auth_ctx *ctx = gw_app_auth(gw_req_app(r));
	const char *authz = gw_req_header(r, "Authorization");
	bool wants_cert = (route->roles & (GW_ROLE_SERVER | GW_ROLE_AUDITOR)) != 0;
	bool wants_patient = (route->roles & GW_ROLE_PATIENT) != 0;
	bool has_dpop = authz != NULL && strncasecmp(authz, "DPoP ", 5) == 0;

	memset(id, 0, sizeof(*id));
	if (ctx == NULL)
		return ehr_error_set(EHR_ERR_UNAVAILABLE, "authentication is not available");
	/* The other kind of credential, valid, is 403 (docs/PROTOCOL.md §1.4):
	 * a verified certificate on a patient-only route, a patient's token on
	 * a certificate-only route. An absent or invalid one stays 401. */
	if (wants_patient && !wants_cert && !has_dpop && gw_req_peer_verify(r) == X509_V_OK)
		return authenticate_mtls(r, ctx, route, id);
	if (!wants_patient && has_dpop && gw_req_peer_verify(r) == -1) {
		int err = patient_on_cert_route(r, ctx, route);
		if (err < 0)
			return err;
	}
	/* A patient route is tried with DPoP when the request carries it, or
	 * when it is the only choice; otherwise the client certificate decides. */
	if (wants_patient && (has_dpop || !wants_cert))
		return authenticate_dpop(r, ctx, id);
	if (wants_patient && gw_req_peer_verify(r) == -1 && authz == NULL) {
		ehr_error_set(EHR_ERR_AUTH, "credentials required: a client certificate or a DPoP token");
		challenge(r, true, "invalid_token");
		return fail(r, ctx, EHR_ERR_AUTH, "auth.dpop", "anonymous", "no_credentials");
	}
	return authenticate_mtls(r, ctx, route, id);
}

/*
 * The engine's gate (gw_http_options.gate): authenticate, check the role,
 * and set the identity, or reply with the refusal. 401/403 as
 * gw_authenticate says; a dependency failure is not the client's fault
 * (503/504/500); anything else is 401.
 */
int gw_gate(struct gw_req *r)
{
	const struct gw_route *route = gw_req_route(r);
	struct gw_identity id = { 0 };
	int rc;

	if (gw_tiles_route_open(r)) /* configured public: no credentials asked */
		return 0;
	rc = gw_authenticate(r, route, &id);

	if (rc == EHR_ERR_GONE) {
		gw_reply_patient_erased(r, id.subject);
		return 1;
	}
	if (rc < 0) {
		if (rc != EHR_ERR_AUTH && rc != EHR_ERR_FORBIDDEN && rc != EHR_ERR_UNAVAILABLE &&
		    rc != EHR_ERR_TIMEOUT && rc != EHR_ERR_NOMEM && rc != EHR_ERR_RATE)
			rc = EHR_ERR_AUTH;
		gw_reply_err(r, rc);
		return 1;
	}
	if (id.role == 0 || (id.role & route->roles) == 0) {
		gw_reply_error(r, 403, "forbidden", "this route is not open to the caller's role");
		return 1;
	}
	gw_req_set_identity(r, &id);
	return 0;
}
