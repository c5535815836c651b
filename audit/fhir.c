/*
 * fhir.c - struct audit_event -> FHIR R4 AuditEvent
 * (http://hl7.org/fhir/R4/auditevent.html), meta.profile per IHE BALP.
 *
 * Every string member is set only from a non-empty value, so the
 * resource never carries "" (R4's string and code patterns refuse it).
 */
#include <string.h>

#include "audit/audit.h"

#define SOURCE_TYPE_SYS "http://terminology.hl7.org/CodeSystem/security-source-type"
#define OUTCOME_SYS "http://terminology.hl7.org/CodeSystem/audit-event-outcome"
#define ROLE_SYS "urn:ehrgate:role"

/* Set key to a string when s is non-empty; 0, or -1 out of memory. */
static int set_str(json_t *o, const char *key, const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	return json_object_set_new(o, key, json_string(s));
}

static json_t *coding(const struct audit_code *c)
{
	json_t *o;

	if (c->system == NULL || c->code == NULL)
		return NULL;
	o = json_object();
	if (o && (set_str(o, "system", c->system) < 0 || set_str(o, "code", c->code) < 0 ||
	          set_str(o, "display", c->display) < 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *concept(const struct audit_code *c)
{
	json_t *k = coding(c);
	return k ? json_pack("{s:[o]}", "coding", k) : NULL;
}

/* A logical Reference: {type?, identifier{system?, value}}. */
static json_t *reference(const char *ref_type, const char *system, const char *value)
{
	json_t *id = json_object(), *r = json_object();

	if (id == NULL || r == NULL || set_str(id, "system", system) < 0 || set_str(id, "value", value) < 0 ||
	    set_str(r, "type", ref_type) < 0 || json_object_set_new(r, "identifier", id) < 0) {
		json_decref(r);
		return NULL;
	}
	return r;
}

static json_t *agent_json(const struct audit_agent *a)
{
	json_t *o = json_object();
	int bad = o == NULL;

	if (!bad && a->type.system)
		bad |= json_object_set_new(o, "type", concept(&a->type)) < 0;
	if (!bad && a->role) {
		struct audit_code r = { ROLE_SYS, a->role, NULL };
		bad |= json_object_set_new(o, "role", json_pack("[o]", concept(&r))) < 0;
	}
	if (!bad)
		bad |= json_object_set_new(o, "who", reference(NULL, a->id_system, a->id)) < 0;
	if (!bad)
		bad |= json_object_set_new(o, "requestor", json_boolean(a->requestor)) < 0;
	if (!bad && a->policy)
		bad |= json_object_set_new(o, "policy", json_pack("[s]", a->policy)) < 0;
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *entity_json(const struct audit_entity *n)
{
	json_t *o = json_object();
	int bad = o == NULL;

	if (!bad && n->id)
		bad |= json_object_set_new(o, "what", reference(n->ref_type, n->id_system, n->id)) < 0;
	if (!bad && n->type.system)
		bad |= json_object_set_new(o, "type", coding(&n->type)) < 0;
	if (!bad && n->role.system)
		bad |= json_object_set_new(o, "role", coding(&n->role)) < 0;
	if (!bad)
		bad |= set_str(o, "description", n->name) < 0;
	if (!bad && n->kind == AUDIT_ENTITY_QUERY) {
		struct ehr_buf b = EHR_BUF_INIT(4 * LEDGER_MAX_PAYLOAD);
		/* base64Binary may not be empty either: an empty query has none */
		if (n->query_len > 0) {
			bad |= ehr_b64_encode(&b, n->query, n->query_len) < 0;
			bad |= !bad && json_object_set_new(o, "query", json_string(ehr_buf_cstr(&b))) < 0;
		}
		ehr_buf_free(&b);
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The lists: profiles, subtypes, agents, entities. */
static int add_lists(json_t *ev_json, const struct audit_event *ev)
{
	json_t *sub = json_array(), *agents = json_array(), *ents = json_array();
	int bad = sub == NULL || agents == NULL || ents == NULL;

	for (size_t i = 0; !bad && i < ev->n_subtype; i++)
		bad |= json_array_append_new(sub, coding(&ev->subtype[i])) < 0;
	for (size_t i = 0; !bad && i < ev->n_agent; i++)
		bad |= json_array_append_new(agents, agent_json(&ev->agent[i])) < 0;
	for (size_t i = 0; !bad && i < ev->n_entity; i++)
		bad |= json_array_append_new(ents, entity_json(&ev->entity[i])) < 0;
	if (!bad && ev->n_profile > 0) {
		json_t *prof = json_array();
		struct ehr_buf u = EHR_BUF_INIT(256);
		bad |= prof == NULL ||
		       json_object_set_new(ev_json, "meta", json_pack("{s:o}", "profile", prof)) < 0;
		for (size_t i = 0; !bad && i < ev->n_profile; i++) {
			u.len = 0;
			bad |= ehr_buf_append_str(&u, AUDIT_BALP_BASE) < 0 ||
			       ehr_buf_append_str(&u, ev->profile[i]) < 0 ||
			       json_array_append_new(prof, json_string(ehr_buf_cstr(&u))) < 0;
		}
		ehr_buf_free(&u);
	}
	if (!bad && json_array_size(sub) > 0)
		bad |= json_object_set(ev_json, "subtype", sub) < 0;
	if (!bad)
		bad |= json_object_set(ev_json, "agent", agents) < 0;
	if (!bad && json_array_size(ents) > 0)
		bad |= json_object_set(ev_json, "entity", ents) < 0;
	json_decref(sub);
	json_decref(agents);
	json_decref(ents);
	return bad ? -1 : 0;
}

json_t *audit_fhir_json(const struct audit_event *ev)
{
	char when[32], id[24], action[2] = { ev->action, '\0' }, outcome[4];
	struct audit_code src = { SOURCE_TYPE_SYS, "4", "Application Server" };
	json_t *o;
	int bad;

	ehr_time_rfc3339(when, ev->ts_ms);
	if (ehr_fmt(id, sizeof(id), "%llu", (unsigned long long)ev->seq) < 0 ||
	    ehr_fmt(outcome, sizeof(outcome), "%d", (int)ev->outcome) < 0)
		return NULL;
	o = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:{s:o, s:[o]}}", "resourceType", "AuditEvent", "id",
	              id, "type", coding(&ev->type), "action", action, "recorded", when, "outcome", outcome,
	              "source", "observer", reference(NULL, AUDIT_SYS_GATEWAY, ev->observer), "type",
	              coding(&src));
	bad = o == NULL;
	if (!bad)
		bad |= json_object_set_new(json_object_get(o, "source"), "site", json_string(ev->observer)) <
		       0;
	if (!bad)
		bad |= set_str(o, "outcomeDesc", ev->outcome_desc) < 0;
	if (!bad && ev->purpose.system)
		bad |= json_object_set_new(o, "purposeOfEvent", json_pack("[o]", concept(&ev->purpose))) < 0;
	if (!bad)
		bad |= add_lists(o, ev) < 0;
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}
