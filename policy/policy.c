/*
 * policy.c - the access-policy contract model and its evaluation.
 *
 * A contract document is validated here with the same rules as
 * schemas/json/contract.schema.json (strict: unknown members refused), so
 * the gateway never needs a general JSON Schema engine. policy_decide is a
 * pure function of (contracts, request, now): no I/O, no clock, no globals.
 */
#include <string.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "policy/policy.h"

#define POLICY_TIME_MAX 9007199254740991LL /* 2^53 - 1, JCS-safe */
#define POLICY_JUSTIFICATION_MIN 10
#define POLICY_JUSTIFICATION_MAX 500
#define POLICY_NONCE_MIN 16
#define POLICY_NONCE_MAX 64

static const char *const policy_purposes[] = {
	"treatment", "emergency", "research", "payment", "operations", "public_health",
};

const char *policy_action_name(enum policy_action a)
{
	switch (a) {
	case POLICY_ACT_READ: return "read";
	case POLICY_ACT_APPEND: return "append";
	default: return NULL;
	}
}

int policy_action_parse(enum policy_action *out, const char *s)
{
	if (s && strcmp(s, "read") == 0)
		*out = POLICY_ACT_READ;
	else if (s && strcmp(s, "append") == 0)
		*out = POLICY_ACT_APPEND;
	else
		return ehr_error_set(EHR_ERR_INVAL, "unknown action");
	return 0;
}

bool policy_purpose_valid(const char *s)
{
	if (s == NULL)
		return false;
	for (size_t i = 0; i < EHR_ARRAY_LEN(policy_purposes); i++)
		if (strcmp(s, policy_purposes[i]) == 0)
			return true;
	return false;
}

/* Identifiers: 1..127 bytes of [A-Za-z0-9._:@-]. Pseudonyms, server ids
 * and record ids all fit; nothing that needs escaping or normalising. */
bool policy_id_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= POLICY_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '@' || c == '-'))
			return false;
	}
	return true;
}

/* Categories: 1..64 bytes of [a-z0-9._-]. */
static bool policy_category_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool policy_nonce_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < POLICY_NONCE_MIN || n > POLICY_NONCE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* Refuse members outside `allowed` (the schema's additionalProperties: false). */
static int policy_only_members(const json_t *obj, const char *what, const char *const *allowed, size_t n)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v)
	{
		bool ok = false;
		for (size_t i = 0; i < n && !ok; i++)
			ok = strcmp(k, allowed[i]) == 0;
		if (!ok)
			return ehr_error_set(EHR_ERR_INVAL, "%s: unknown member", what);
	}
	return 0;
}

static int policy_copy_id(char *dst, size_t cap, const json_t *obj, const char *key)
{
	const char *s;

	GUARD(ehr_json_get_str(obj, key, &s, cap - 1));
	if (!policy_id_valid(s))
		return ehr_error_set(EHR_ERR_INVAL, "field '%s' is not a valid identifier", key);
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

void policy_contract_clear(struct policy_contract *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_scope; i++)
		free(c->scope[i]);
	free(c->scope);
	memset(c, 0, sizeof(*c));
}

int policy_contract_id(char out[POLICY_CID_MAX], const json_t *doc)
{
	struct ehr_buf canon = EHR_BUF_INIT(POLICY_DOC_MAX), id = EHR_BUF_INIT(POLICY_CID_MAX);
	uint8_t md[SHA256_DIGEST_LENGTH];
	int err;

	GUARD_GOTO(jcs_canonicalize(&canon, doc));
	SHA256(canon.data, canon.len, md);
	GUARD_GOTO(ehr_b64url_encode(&id, md, sizeof(md)));
	ENSURE_GOTO(id.len < POLICY_CID_MAX, EHR_ERR_INTERNAL);
	memcpy(out, id.data, id.len + 1);
out:
	ehr_buf_free(&canon);
	ehr_buf_free(&id);
	return err;
}

static int policy_parse_grantee(struct policy_contract *c, const json_t *g)
{
	static const char *const members[] = { "server", "group" };
	const json_t *sv, *gv;

	if (!json_is_object(g) || json_object_size(g) != 1)
		return ehr_error_set(EHR_ERR_INVAL, "grantee must be {\"server\":id} or {\"group\":name}");
	GUARD(policy_only_members(g, "grantee", members, EHR_ARRAY_LEN(members)));
	sv = json_object_get(g, "server");
	gv = json_object_get(g, "group");
	c->grantee_kind = sv ? POLICY_GRANTEE_SERVER : POLICY_GRANTEE_GROUP;
	return policy_copy_id(c->grantee, sizeof(c->grantee), g, sv ? "server" : (gv ? "group" : "?"));
}

static int policy_parse_actions(struct policy_contract *c, const json_t *a)
{
	size_t i;
	json_t *e;

	if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > 2)
		return ehr_error_set(EHR_ERR_INVAL, "actions must be a non-empty array of read/append");
	json_array_foreach(a, i, e)
	{
		enum policy_action act;
		if (!json_is_string(e))
			return ehr_error_set(EHR_ERR_INVAL, "actions must be strings");
		GUARD(policy_action_parse(&act, json_string_value(e)));
		if (c->actions & act)
			return ehr_error_set(EHR_ERR_INVAL, "actions must be unique");
		c->actions |= act;
	}
	return 0;
}

static int policy_parse_scope(struct policy_contract *c, const json_t *s)
{
	static const char *const members[] = { "all", "records", "categories" };
	const char *key;
	const json_t *list;
	size_t i;
	json_t *e;

	if (!json_is_object(s) || json_object_size(s) != 1)
		return ehr_error_set(EHR_ERR_INVAL,
		                     "scope must have exactly one of all, records, categories");
	GUARD(policy_only_members(s, "scope", members, EHR_ARRAY_LEN(members)));
	if (json_object_get(s, "all")) {
		if (!json_is_true(json_object_get(s, "all")))
			return ehr_error_set(EHR_ERR_INVAL, "scope.all must be true");
		c->scope_kind = POLICY_SCOPE_ALL;
		return 0;
	}
	key = json_object_get(s, "records") ? "records" : "categories";
	c->scope_kind = json_object_get(s, "records") ? POLICY_SCOPE_RECORDS : POLICY_SCOPE_CATEGORIES;
	list = json_object_get(s, key);
	if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > POLICY_MAX_SCOPE)
		return ehr_error_set(EHR_ERR_INVAL, "scope.%s must hold 1 to %d items", key,
		                     POLICY_MAX_SCOPE);
	c->scope = calloc(json_array_size(list), sizeof(*c->scope));
	if (c->scope == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	json_array_foreach(list, i, e)
	{
		const char *v = json_string_value(e);
		bool ok =
		        c->scope_kind == POLICY_SCOPE_RECORDS ? policy_id_valid(v) : policy_category_valid(v);
		if (!json_is_string(e) || !ok || strlen(v) != json_string_length(e))
			return ehr_error_set(EHR_ERR_INVAL, "scope.%s item %zu is not valid", key, i);
		for (size_t j = 0; j < c->n_scope; j++)
			if (strcmp(c->scope[j], v) == 0)
				return ehr_error_set(EHR_ERR_INVAL, "scope.%s items must be unique", key);
		if ((c->scope[c->n_scope] = strdup(v)) == NULL)
			return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
		c->n_scope++;
	}
	return 0;
}

static int policy_check_type(const json_t *doc, const char *want)
{
	const char *t;

	GUARD(ehr_json_get_str(doc, "type", &t, 64));
	if (strcmp(t, want) != 0)
		return ehr_error_set(EHR_ERR_INVAL, "type must be %s", want);
	return 0;
}

static int policy_check_nonce(const json_t *doc)
{
	const char *nonce;

	GUARD(ehr_json_get_str(doc, "nonce", &nonce, POLICY_NONCE_MAX));
	if (!policy_nonce_valid(nonce))
		return ehr_error_set(EHR_ERR_INVAL, "nonce must be 16 to 64 base64url characters");
	return 0;
}

int policy_contract_from_json(struct policy_contract *out, const json_t *doc)
{
	static const char *const members[] = { "type",    "patient",    "grantee",   "actions",   "scope",
		                               "purpose", "not_before", "not_after", "issued_at", "nonce" };
	struct policy_contract c;
	const char *purpose;
	int err;

	memset(&c, 0, sizeof(c));
	memset(out, 0, sizeof(*out));
	ENSURE_GOTO(json_is_object(doc), EHR_ERR_INVAL);
	GUARD_GOTO(policy_only_members(doc, "contract", members, EHR_ARRAY_LEN(members)));
	GUARD_GOTO(policy_check_type(doc, "ehrgate.contract.v1"));
	GUARD_GOTO(policy_copy_id(c.patient, sizeof(c.patient), doc, "patient"));
	GUARD_GOTO(policy_parse_grantee(&c, json_object_get(doc, "grantee")));
	GUARD_GOTO(policy_parse_actions(&c, json_object_get(doc, "actions")));
	GUARD_GOTO(policy_parse_scope(&c, json_object_get(doc, "scope")));
	GUARD_GOTO(ehr_json_get_str(doc, "purpose", &purpose, POLICY_PURPOSE_MAX - 1));
	if (!policy_purpose_valid(purpose)) {
		err = ehr_error_set(EHR_ERR_INVAL, "purpose is not one of the documented values");
		goto out;
	}
	memcpy(c.purpose, purpose, strlen(purpose) + 1);
	GUARD_GOTO(ehr_json_get_int(doc, "not_before", &c.not_before, 0, POLICY_TIME_MAX));
	GUARD_GOTO(ehr_json_get_int(doc, "not_after", &c.not_after, 0, POLICY_TIME_MAX));
	GUARD_GOTO(ehr_json_get_int(doc, "issued_at", &c.issued_at, 0, POLICY_TIME_MAX));
	if (c.not_after <= c.not_before) {
		err = ehr_error_set(EHR_ERR_INVAL, "not_after must be later than not_before");
		goto out;
	}
	GUARD_GOTO(policy_check_nonce(doc));
	GUARD_GOTO(policy_contract_id(c.cid, doc));
	*out = c;
	memset(&c, 0, sizeof(c));
out:
	policy_contract_clear(&c);
	return err;
}

int policy_revocation_from_json(struct policy_revocation *out, const json_t *doc)
{
	static const char *const members[] = { "type", "patient", "cid", "issued_at", "nonce" };
	const char *cid;

	memset(out, 0, sizeof(*out));
	ENSURE(json_is_object(doc), EHR_ERR_INVAL);
	GUARD(policy_only_members(doc, "revocation", members, EHR_ARRAY_LEN(members)));
	GUARD(policy_check_type(doc, "ehrgate.revocation.v1"));
	GUARD(policy_copy_id(out->patient, sizeof(out->patient), doc, "patient"));
	GUARD(ehr_json_get_str(doc, "cid", &cid, POLICY_CID_MAX - 1));
	if (strlen(cid) != 43 || !policy_nonce_valid(cid))
		return ehr_error_set(EHR_ERR_INVAL, "cid must be 43 base64url characters");
	memcpy(out->cid, cid, strlen(cid) + 1);
	GUARD(ehr_json_get_int(doc, "issued_at", &out->issued_at, 0, POLICY_TIME_MAX));
	GUARD(policy_check_nonce(doc));
	return 0;
}

/* ---------------------------------------------------------------- decide */

/* How far a contract got before it failed; the deepest failure explains a
 * denial best. The order is documented in docs/CONTRACTS.md. */
enum policy_stage {
	STAGE_GRANTEE = 1,
	STAGE_REVOKED,
	STAGE_NOT_YET,
	STAGE_EXPIRED,
	STAGE_ACTION,
	STAGE_SCOPE,
	STAGE_PURPOSE,
	STAGE_ALLOW,
};

static const char *policy_stage_reason(enum policy_stage s)
{
	switch (s) {
	case STAGE_GRANTEE: return "deny.grantee";
	case STAGE_REVOKED: return "deny.revoked";
	case STAGE_NOT_YET: return "deny.not_yet_valid";
	case STAGE_EXPIRED: return "deny.expired";
	case STAGE_ACTION: return "deny.action";
	case STAGE_SCOPE: return "deny.scope";
	case STAGE_PURPOSE: return "deny.purpose";
	case STAGE_ALLOW: return "allow.contract";
	default: return "deny.no_contract";
	}
}

static bool policy_in_list(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] && strcmp(list[i], s) == 0)
			return true;
	return false;
}

static enum policy_stage policy_eval_one(const struct policy_contract *c, const struct policy_request *req,
                                         const char *purpose, int64_t now)
{
	if (c->grantee_kind == POLICY_GRANTEE_SERVER) {
		if (strcmp(c->grantee, req->requester) != 0)
			return STAGE_GRANTEE;
	} else if (c->grantee_kind == POLICY_GRANTEE_GROUP) {
		if (!policy_in_list(req->groups, req->groups ? req->n_groups : 0, c->grantee))
			return STAGE_GRANTEE;
	} else {
		return STAGE_GRANTEE;
	}
	if (c->revoked)
		return STAGE_REVOKED;
	if (now < c->not_before)
		return STAGE_NOT_YET;
	if (now >= c->not_after)
		return STAGE_EXPIRED;
	if (!(c->actions & req->action))
		return STAGE_ACTION;
	switch (c->scope_kind) {
	case POLICY_SCOPE_ALL: break;
	case POLICY_SCOPE_RECORDS:
		if (req->record_id == NULL ||
		    !policy_in_list((const char *const *)c->scope, c->n_scope, req->record_id))
			return STAGE_SCOPE;
		break;
	case POLICY_SCOPE_CATEGORIES:
		if (req->category == NULL ||
		    !policy_in_list((const char *const *)c->scope, c->n_scope, req->category))
			return STAGE_SCOPE;
		break;
	default: return STAGE_SCOPE;
	}
	if (strcmp(c->purpose, purpose) != 0)
		return STAGE_PURPOSE;
	return STAGE_ALLOW;
}

static void policy_set(struct policy_decision *out, enum policy_effect eff, const char *reason,
                       const char *cid, bool bg)
{
	out->effect = eff;
	out->reason = reason;
	out->cid[0] = '\0';
	if (cid) {
		size_t n = strlen(cid);
		if (n < sizeof(out->cid)) {
			memcpy(out->cid, cid, n + 1);
		}
	}
	out->break_glass = bg;
}

void policy_decide(const struct policy_contract *set, size_t n, const struct policy_request *req, int64_t now,
                   struct policy_decision *out)
{
	const struct policy_contract *best = NULL, *allow = NULL;
	enum policy_stage best_stage = 0;
	const char *purpose;

	policy_set(out, POLICY_DENY, "deny.invalid_request", NULL, false);
	if (req == NULL || req->requester == NULL || req->patient == NULL ||
	    (req->action != POLICY_ACT_READ && req->action != POLICY_ACT_APPEND) || (set == NULL && n != 0))
		return;
	purpose = req->purpose ? req->purpose : "treatment";
	if (!policy_purpose_valid(purpose))
		return;

	switch (req->role) {
	case POLICY_ROLE_PATIENT:
		/* A patient acts on its own records only; contracts are for others. */
		if (strcmp(req->requester, req->patient) == 0)
			policy_set(out, POLICY_ALLOW, "allow.owner", NULL, false);
		else
			policy_set(out, POLICY_DENY, "deny.not_owner", NULL, false);
		return;
	case POLICY_ROLE_SERVER: break;
	case POLICY_ROLE_AUDITOR: policy_set(out, POLICY_DENY, "deny.role", NULL, false); return;
	default: return;
	}

	for (size_t i = 0; i < n; i++) {
		const struct policy_contract *c = &set[i];
		enum policy_stage st;

		if (strcmp(c->patient, req->patient) != 0)
			continue;
		st = policy_eval_one(c, req, purpose, now);
		if (st == STAGE_ALLOW) {
			/* Overlapping grants: the oldest contract (lowest seq) decides,
			 * so the same request always names the same contract. */
			if (allow == NULL || c->seq < allow->seq ||
			    (c->seq == allow->seq && strcmp(c->cid, allow->cid) < 0))
				allow = c;
		} else if (st > best_stage || (st == best_stage && best && c->seq < best->seq)) {
			best_stage = st;
			best = c;
		}
	}
	if (allow) {
		policy_set(out, POLICY_ALLOW, "allow.contract", allow->cid, false);
		return;
	}
	if (req->break_glass) {
		size_t jl = req->justification ? strlen(req->justification) : 0;
		if (req->action != POLICY_ACT_READ)
			policy_set(out, POLICY_DENY, "deny.break_glass_action", NULL, false);
		else if (jl < POLICY_JUSTIFICATION_MIN || jl > POLICY_JUSTIFICATION_MAX)
			policy_set(out, POLICY_DENY, "deny.break_glass_justification", NULL, false);
		else
			policy_set(out, POLICY_ALLOW, "allow.break_glass", NULL, true);
		return;
	}
	if (best == NULL)
		policy_set(out, POLICY_DENY, "deny.no_contract", NULL, false);
	else
		policy_set(out, POLICY_DENY, policy_stage_reason(best_stage),
		           best_stage > STAGE_GRANTEE ? best->cid : NULL, false);
}

int policy_decision_payload(json_t **out, const struct policy_request *req, const struct policy_decision *dec)
{
	json_t *p = json_object();
	int err = 0;

	*out = NULL;
	ENSURE_GOTO(p != NULL, EHR_ERR_NOMEM);
	ENSURE_GOTO(req != NULL && dec != NULL && dec->reason != NULL, EHR_ERR_INVAL);
#define SET(k, v) ENSURE_GOTO(json_object_set_new(p, (k), (v)) == 0, EHR_ERR_NOMEM)
	SET("decision", json_string(dec->effect == POLICY_ALLOW ? "allow" : "deny"));
	SET("reason", json_string(dec->reason));
	SET("cid", dec->cid[0] ? json_string(dec->cid) : json_null());
	SET("action", json_string(policy_action_name(req->action) ? policy_action_name(req->action) : "?"));
	SET("patient", json_string(req->patient ? req->patient : ""));
	SET("requester", json_string(req->requester ? req->requester : ""));
	SET("record", req->record_id ? json_string(req->record_id) : json_null());
	SET("category", req->category ? json_string(req->category) : json_null());
	SET("purpose", json_string(req->purpose ? req->purpose : "treatment"));
	SET("break_glass", json_boolean(dec->break_glass));
	if (req->break_glass && req->justification)
		SET("justification", json_string(req->justification));
#undef SET
	*out = p;
	p = NULL;
out:
	json_decref(p);
	return err;
}

int policy_decision_entry(struct ledger_entry_in *out, json_t **payload, const struct policy_request *req,
                          const struct policy_decision *dec)
{
	GUARD(policy_decision_payload(payload, req, dec));
	out->type = POLICY_ENTRY_DECISION;
	out->actor = req->requester ? req->requester : "";
	out->subject = req->patient ? req->patient : "";
	out->payload = *payload;
	return 0;
}
