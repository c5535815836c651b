/*
 * consent.c - a patient's contract (docs/CONTRACTS.md §1) as a FHIR R4
 * Consent (http://hl7.org/fhir/R4/consent.html); the mapping, field by
 * field, is docs/CONTRACTS.md §9.
 */
#include <string.h>

#include "audit/audit.h"

#define SYS_SCOPE "http://terminology.hl7.org/CodeSystem/consentscope"
#define SYS_ACTION "http://terminology.hl7.org/CodeSystem/consentaction"
#define SYS_ACTCODE "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define SYS_LOINC "http://loinc.org"
#define SYS_CATEGORY "urn:ehrgate:category"
#define SYS_ACTION_LOCAL "urn:ehrgate:action"

/* The contract purposes and their v3-ActReason codes. */
static const struct {
	const char *purpose, *code, *display;
} purposes[] = {
	{ "treatment", "TREAT", "treatment" },
	{ "emergency", "ETREAT", "Emergency Treatment" },
	{ "research", "HRESCH", "healthcare research" },
	{ "payment", "HPAYMT", "healthcare payment" },
	{ "operations", "HOPERAT", "healthcare operations" },
	{ "public_health", "PUBHLTH", "public health" },
};

static json_t *ident(const char *system, const char *value)
{
	return json_pack("{s:s, s:s}", "system", system, "value", value);
}

static json_t *when(int64_t ms)
{
	char t[32];

	ehr_time_rfc3339(t, ms);
	return json_string(t);
}

/* provision.action: read -> access; append -> correct (the nearest R4
 * consentaction: adding to the patient's record), each with our own code. */
static json_t *actions_json(const json_t *actions)
{
	json_t *out = json_array(), *a;
	size_t i;

	json_array_foreach(actions, i, a)
	{
		const char *s = json_string_value(a);
		const char *code = s && strcmp(s, "read") == 0 ? "access" : "correct";
		if (s == NULL || *s == '\0')
			continue;
		json_array_append_new(out, json_pack("{s:[{s:s, s:s}, {s:s, s:s}]}", "coding", "system",
		                                     SYS_ACTION, "code", code, "system", SYS_ACTION_LOCAL,
		                                     "code", s));
	}
	return out;
}

/* provision: permit; the grantee as recipient; actions; purpose; period;
 * and the scope as data (records) or class (categories). */
static json_t *provision_json(const json_t *doc)
{
	const json_t *grantee = json_object_get(doc, "grantee"), *scope = json_object_get(doc, "scope"), *v;
	const char *server = json_string_value(json_object_get(grantee, "server"));
	const char *group = json_string_value(json_object_get(grantee, "group"));
	const char *purpose = json_string_value(json_object_get(doc, "purpose"));
	json_int_t nb = json_integer_value(json_object_get(doc, "not_before"));
	json_int_t na = json_integer_value(json_object_get(doc, "not_after"));
	json_t *p;
	size_t i;

	p = json_pack("{s:s, s:{s:o, s:o}, s:[{s:{s:[{s:s, s:s, s:s}]}, s:{s:s, s:o}}], s:o}", "type",
	              "permit", "period", "start", when((int64_t)nb * 1000), "end", when((int64_t)na * 1000),
	              "actor", "role", "coding", "system", AUDIT_SYS_PARTICIPATION, "code", "IRCP", "display",
	              "information recipient", "reference", "type", server ? "Device" : "Group", "identifier",
	              ident(server ? AUDIT_SYS_PRINCIPAL : AUDIT_SYS_GROUP, server ? server : group),
	              "action", actions_json(json_object_get(doc, "actions")));
	if (p == NULL)
		return NULL;
	for (i = 0; purpose && i < EHR_ARRAY_LEN(purposes); i++)
		if (strcmp(purpose, purposes[i].purpose) == 0)
			json_object_set_new(p, "purpose",
			                    json_pack("[{s:s, s:s, s:s}]", "system", AUDIT_SYS_ACT_REASON,
			                              "code", purposes[i].code, "display",
			                              purposes[i].display));
	if ((v = json_object_get(scope, "records")) != NULL && json_array_size(v) > 0) {
		json_t *data = json_array(), *rec;
		json_array_foreach(v, i, rec)
		{
			if (json_string_length(rec) > 0)
				json_array_append_new(
				        data,
				        json_pack("{s:s, s:{s:s, s:o}}", "meaning", "instance", "reference",
				                  "type", "DocumentReference", "identifier",
				                  ident(AUDIT_SYS_RECORD, json_string_value(rec))));
		}
		json_object_set_new(p, "data", data);
	}
	if ((v = json_object_get(scope, "categories")) != NULL && json_array_size(v) > 0) {
		json_t *cls = json_array(), *cat;
		json_array_foreach(v, i, cat)
		{
			if (json_string_length(cat) > 0)
				json_array_append_new(cls, json_pack("{s:s, s:s}", "system", SYS_CATEGORY,
				                                     "code", json_string_value(cat)));
		}
		json_object_set_new(p, "class", cls);
	}
	return p;
}

static json_t *parse_payload(const struct ledger_entry *e)
{
	json_t *j = NULL;

	if (e == NULL ||
	    ehr_json_parse(&j, e->payload, e->payload_len, LEDGER_MAX_PAYLOAD, EHR_JSON_MAX_DEPTH) < 0)
		return NULL;
	return j;
}

/* The signed original, byte for byte as the ledger holds it. */
static json_t *attachment_json(const struct ledger_entry *e, const char *title)
{
	struct ehr_buf b = EHR_BUF_INIT(4 * LEDGER_MAX_PAYLOAD);
	json_t *a = NULL;

	if (ehr_b64_encode(&b, e->payload, e->payload_len) == 0)
		a = json_pack("{s:s, s:s, s:s, s:o}", "contentType", "application/json", "data",
		              ehr_buf_cstr(&b), "title", title, "creation", when(e->ts_ms));
	ehr_buf_free(&b);
	return a;
}

json_t *audit_consent_json(const struct ledger_entry *create, const struct ledger_entry *revoke,
                           bool as_revocation)
{
	json_t *cp = parse_payload(create), *out = NULL;
	const json_t *doc = json_object_get(cp, "contract");
	const char *cid = json_string_value(json_object_get(cp, "cid"));
	const char *patient = json_string_value(json_object_get(doc, "patient"));
	const struct ledger_entry *self = as_revocation ? revoke : create;
	char id[24];

	if (cid == NULL || *cid == '\0' || patient == NULL || *patient == '\0' || !json_is_object(doc) ||
	    self == NULL || ehr_fmt(id, sizeof(id), "%llu", (unsigned long long)self->seq) < 0) {
		ehr_error_set(EHR_ERR_PARSE, "not a contract entry");
		goto out;
	}
	out = json_pack(
	        "{s:s, s:s, s:[o], s:s, s:{s:[{s:s, s:s, s:s}]}, s:[{s:[{s:s, s:s, s:s}]}], "
	        "s:{s:s, s:o}, s:o, s:[{s:s, s:o}], s:{s:[{s:s, s:s, s:s}]}, s:o, s:o}",
	        "resourceType", "Consent", "id", id, "identifier", ident(AUDIT_SYS_CONTRACT, cid), "status",
	        as_revocation || revoke ? "inactive" : "active", "scope", "coding", "system", SYS_SCOPE,
	        "code", "patient-privacy", "display", "Privacy Consent", "category", "coding", "system",
	        SYS_LOINC, "code", "59284-0", "display", "Patient Consent", "patient", "type", "Patient",
	        "identifier", ident(AUDIT_SYS_PATIENT, patient), "dateTime", when(self->ts_ms), "performer",
	        "type", "Patient", "identifier", ident(AUDIT_SYS_PATIENT, patient), "policyRule", "coding",
	        "system", SYS_ACTCODE, "code", "OPTIN", "display", "opt-in", "sourceAttachment",
	        attachment_json(self, as_revocation ? "ehrgate revocation, signed by the patient (ES256 "
	                                              "over RFC 8785 JSON), as in the ledger"
	                                            : "ehrgate contract, signed by the patient (ES256 "
	                                              "over RFC 8785 JSON), as in the ledger"),
	        "provision", provision_json(doc));
	if (out == NULL)
		ehr_error_set(EHR_ERR_NOMEM, "out of memory");
out:
	json_decref(cp);
	return out;
}
