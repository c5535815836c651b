/*
 * routes_auth.c - registration, enrolment and patient login routes
 * (docs/PROTOCOL.md §3-§5). Handlers parse and bound the JSON body, apply
 * the per-address rate limit, and call auth/; every refusal is a JSON
 * error with the status PROTOCOL.md names.
 */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "gateway/gateway.h"
#include "records/records.h"

#define AUTH_MAX_BODY (16 * 1024)

static struct auth_ctx *ctx_of(struct gw_req *r)
{
	return gw_app_auth(gw_req_app(r));
}

/* Parse the body as a JSON object; replies and returns NULL on failure. */
static json_t *body_json(struct gw_req *r)
{
	size_t len = 0;
	const uint8_t *b = gw_req_body(r, &len);
	json_t *j = NULL;
	int err = b ? ehr_json_parse(&j, b, len, AUTH_MAX_BODY, 6) : EHR_ERR_INVAL;

	if (err < 0) {
		gw_reply_err(r, ehr_error_wrap(err, "body must be a JSON object"));
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		gw_reply_err(r, ehr_error_set(EHR_ERR_INVAL, "body must be a JSON object"));
		return NULL;
	}
	return j;
}

static bool rate_ok(struct gw_req *r, enum auth_rate_kind kind)
{
	int err = auth_rate_check(ctx_of(r), kind, gw_req_peer(r));

	if (err < 0) {
		gw_reply_err(r, err);
		return false;
	}
	return true;
}

/* The identity as auth/ sees it; an identity field that does not fit is
 * refused (EHR_ERR_TOO_LARGE), never cut. */
static int principal_of(struct auth_principal *p, const struct gw_identity *id)
{
	memset(p, 0, sizeof(*p));
	GUARD(ehr_str_copy(p->role, sizeof(p->role),
	                   id->role == GW_ROLE_SERVER    ? "server"
	                   : id->role == GW_ROLE_AUDITOR ? "auditor"
	                                                 : "patient"));
	GUARD(ehr_str_copy(p->id, sizeof(p->id), id->subject));
	GUARD(ehr_str_copy(p->serial, sizeof(p->serial), id->cert_serial));
	return ehr_str_copy(p->jkt, sizeof(p->jkt), id->jkt);
}

static void h_register(struct gw_req *r)
{
	json_t *j, *resp = NULL;
	const char *csr, *token;
	int err;

	if (!rate_ok(r, AUTH_RATE_REGISTER))
		return;
	if ((j = body_json(r)) == NULL)
		return;
	if ((err = ehr_json_get_str(j, "csr", &csr, AUTH_MAX_CSR_PEM)) < 0 ||
	    (err = ehr_json_get_str(j, "token", &token, 256)) < 0 ||
	    (err = auth_register(ctx_of(r), &resp, csr, strlen(csr), token, gw_req_peer(r))) < 0)
		gw_reply_err(r, err);
	else
		gw_reply_json(r, 201, resp);
	json_decref(j);
}

static void h_renew(struct gw_req *r)
{
	struct auth_principal p;
	json_t *j, *resp = NULL;
	const char *csr;
	int err;

	if ((j = body_json(r)) == NULL)
		return;
	if ((err = principal_of(&p, gw_req_identity(r))) < 0 ||
	    (err = ehr_json_get_str(j, "csr", &csr, AUTH_MAX_CSR_PEM)) < 0 ||
	    (err = auth_renew(ctx_of(r), &resp, &p, csr, strlen(csr))) < 0)
		gw_reply_err(r, err);
	else
		gw_reply_json(r, 201, resp);
	json_decref(j);
}

static void h_patient_create(struct gw_req *r)
{
	struct auth_principal p;
	json_t *j, *resp = NULL;
	const char *ext;
	int err;

	if ((j = body_json(r)) == NULL)
		return;
	if ((err = principal_of(&p, gw_req_identity(r))) < 0 ||
	    (err = ehr_json_get_str(j, "external_id", &ext, 256)) < 0 ||
	    (err = auth_patient_create(ctx_of(r), &resp, &p, ext)) < 0)
		gw_reply_err(r, err);
	else
		gw_reply_json(r, 201, resp);
	json_decref(j);
}

static void h_enroll(struct gw_req *r)
{
	json_t *j, *resp = NULL;
	const char *pid, *code, *sig;
	int err;

	if (!rate_ok(r, AUTH_RATE_ENROLL))
		return;
	if ((j = body_json(r)) == NULL)
		return;
	if ((err = ehr_json_get_str(j, "patient_id", &pid, AUTH_MAX_ID)) < 0 ||
	    (err = ehr_json_get_str(j, "code", &code, 256)) < 0 ||
	    (err = ehr_json_get_str(j, "signature", &sig, 256)) < 0)
		gw_reply_err(r, err);
	else if (!json_is_object(json_object_get(j, "jwk")))
		gw_reply_err(r, ehr_error_set(EHR_ERR_INVAL, "field 'jwk' must be a JSON object"));
	else if ((err = auth_enroll(ctx_of(r), &resp, pid, code, json_object_get(j, "jwk"), sig,
	                            gw_req_peer(r))) < 0)
		gw_reply_err(r, err);
	else
		gw_reply_json(r, 200, resp);
	json_decref(j);
}

static void h_challenge(struct gw_req *r)
{
	json_t *j, *resp = NULL;
	const char *pid;
	int err;

	if (!rate_ok(r, AUTH_RATE_CHALLENGE))
		return;
	if ((j = body_json(r)) == NULL)
		return;
	if ((err = ehr_json_get_str(j, "patient_id", &pid, AUTH_MAX_ID)) < 0 ||
	    (err = auth_challenge(ctx_of(r), &resp, pid)) < 0)
		gw_reply_err(r, err);
	else
		gw_reply_json(r, 200, resp);
	json_decref(j);
}

static void h_token(struct gw_req *r)
{
	json_t *j, *resp = NULL;
	const char *pid, *nonce, *ts, *sig;
	int err;

	if (!rate_ok(r, AUTH_RATE_TOKEN))
		return;
	if ((j = body_json(r)) == NULL)
		return;
	if ((err = ehr_json_get_str(j, "patient_id", &pid, AUTH_MAX_ID)) < 0 ||
	    (err = ehr_json_get_str(j, "nonce", &nonce, 256)) < 0 ||
	    (err = ehr_json_get_str(j, "ts", &ts, 20)) < 0 ||
	    (err = ehr_json_get_str(j, "signature", &sig, 256)) < 0 ||
	    (err = auth_token(ctx_of(r), &resp, pid, nonce, ts, sig, gw_req_peer(r))) < 0) {
		if (err == EHR_ERR_GONE)
			gw_reply_patient_erased(r, pid);
		else
			gw_reply_err(r, err);
	} else {
		gw_reply_header(r, "Cache-Control", "no-store");
		gw_reply_json(r, 200, resp);
	}
	json_decref(j);
}

/* POST /v1/me/erase {"basis": CODE}: the patient erases themself
 * (docs/ERASURE.md §10). The token's subject is the only
 * patient a caller can name. */
static void h_me_erase(struct gw_req *r)
{
	const struct gw_identity *id = gw_req_identity(r);
	struct gw_patient_erase_out out = { 0 };
	struct records_refusal why = { 0 };
	json_t *j;
	const char *basis;
	int err = 0;

	if ((j = body_json(r)) == NULL)
		return;
	/* Only "basis": a patient can name no one but themself. */
	if (json_object_size(j) != 1)
		err = ehr_error_set(EHR_ERR_INVAL, "the body is {\"basis\": CODE} and nothing else");
	if (err < 0 || (err = ehr_json_get_str(j, "basis", &basis, 32)) < 0 ||
	    (err = gw_patient_erase(gw_req_app(r), id->subject, basis, "patient", id->actor, &out, &why)) <
	            0) {
		if (err == EHR_ERR_CONFLICT && why.kind != RECORDS_REFUSED_NONE)
			gw_reply_erase_refused(r, &why, true);
		else
			gw_reply_err(r, err);
	} else {
		gw_reply_json(r, 200,
		              json_pack("{s:s,s:s,s:I,s:I}", "patient_id", id->subject, "state", "erased",
		                        "erase_seq", (json_int_t)out.erase_seq, "records_erased",
		                        (json_int_t)out.records_erased));
	}
	json_decref(j);
}

static void h_whoami(struct gw_req *r)
{
	const struct gw_identity *id = gw_req_identity(r);
	json_t *resp;

	resp = json_pack("{s:s,s:s}", "role",
	                 id->role == GW_ROLE_SERVER    ? "server"
	                 : id->role == GW_ROLE_AUDITOR ? "auditor"
	                                               : "patient",
	                 "id", id->subject);
	if (resp != NULL && id->cert_serial[0])
		json_object_set_new(resp, "cert_serial", json_string(id->cert_serial));
	if (resp != NULL && id->jkt[0])
		json_object_set_new(resp, "jkt", json_string(id->jkt));
	if (resp == NULL)
		gw_reply_error(r, 500, "internal_error", "internal error");
	else
		gw_reply_json(r, 200, resp);
}

const struct gw_route gw_routes_auth[] = {
	{ "POST", "/v1/register", "auth.register", 0, GW_BLOCKING, h_register, NULL },
	{ "POST", "/v1/register/renew", "auth.renew", GW_ROLE_SERVER | GW_ROLE_AUDITOR, GW_BLOCKING, h_renew,
	  NULL },
	{ "POST", "/v1/patients", "auth.patients.create", GW_ROLE_SERVER, GW_BLOCKING, h_patient_create,
	  NULL },
	{ "POST", "/v1/enroll", "auth.enroll", 0, GW_BLOCKING, h_enroll, NULL },
	{ "POST", "/v1/auth/challenge", "auth.challenge", 0, GW_BLOCKING, h_challenge, NULL },
	{ "POST", "/v1/auth/token", "auth.token", 0, GW_BLOCKING, h_token, NULL },
	{ "POST", "/v1/me/erase", "me.erase", GW_ROLE_PATIENT, GW_BLOCKING, h_me_erase, NULL },
	{ "GET", "/v1/whoami", "auth.whoami", GW_ROLE_PATIENT | GW_ROLE_SERVER | GW_ROLE_AUDITOR, GW_BLOCKING,
	  h_whoami, NULL },
};
const size_t gw_routes_auth_len = EHR_ARRAY_LEN(gw_routes_auth);
