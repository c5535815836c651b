/*
 * event.c - ledger entry -> struct audit_event: the one table of entry
 * types (docs/AUDIT.md §1) and the builders of each pattern.
 *
 * Patterns follow IHE BALP 1.1 (https://profiles.ihe.net/ITI/BALP) where
 * BALP has a profile (PatientRead, PatientCreate, PatientUpdate,
 * PatientDelete, Query, AuthZconsent, OAUTHaccessTokenUse.Minimal), and
 * DICOM PS3.15 A.5.3 for the rest (User Authentication 110114 / Login
 * 110122; Security Alert 110113 with User Security Attributes Changed
 * 110137 or Security Roles Changed 110136).
 *
 * BALP profiles describe successful operations (their outcome is fixed to
 * 0); an event whose outcome is not 0 keeps its codes but declares no
 * profile.
 */
#include <string.h>

#include "audit/audit.h"

#define DCM(c, d)                   \
	{                           \
		AUDIT_SYS_DCM, c, d \
	}
#define REST(c)                         \
	{                               \
		AUDIT_SYS_RESTFUL, c, c \
	}
#define NOCODE                   \
	{                        \
		NULL, NULL, NULL \
	}

static const struct audit_code type_rest = { AUDIT_SYS_EVENT_TYPE, "rest", "Restful Operation" };

/* How agents and entities are built (one builder per pattern). */
enum pattern {
	P_READ,     /* BALP Read/PatientRead (+ OAUTHaccessTokenUse) */
	P_CREATE,   /* BALP Create/PatientCreate */
	P_UPDATE,   /* BALP Update/PatientUpdate */
	P_DELETE,   /* BALP Delete/PatientDelete */
	P_QUERY,    /* BALP Query */
	P_AUTHZ,    /* BALP AuthZconsent */
	P_LOGIN,    /* DICOM 110114 User Authentication / 110122 Login */
	P_SECURITY, /* DICOM 110113 Security Alert */
	P_OTHER,    /* DICOM 110100 Application Activity (an unknown type) */
};

/* What the data entity of a REST pattern is. */
enum data_kind { D_NONE, D_RECORD, D_CONTRACT, D_PATIENT };

struct audit_map {
	const char *type; /* the ledger entry type */
	enum pattern pattern;
	enum data_kind data;
	struct audit_code dicom;
	struct audit_code dicom_subtype;
	struct audit_code rest; /* restful-interaction subtype (REST patterns) */
	char action;
	const char *profile; /* BALP profile of the success, NULL when none */
};

/* THE table: every entry type the gateway emits (docs/AUDIT.md §1). */
static const struct audit_map audit_map[] = {
	{ "ehr.read", P_READ, D_RECORD, DCM("110110", "Patient Record"), NOCODE, REST("read"), 'R',
	  "IHE.BasicAudit.PatientRead" },
	{ "ehr.store", P_CREATE, D_RECORD, DCM("110110", "Patient Record"), NOCODE, REST("create"), 'C',
	  "IHE.BasicAudit.PatientCreate" },
	{ "ehr.erase", P_DELETE, D_RECORD, DCM("110110", "Patient Record"), NOCODE, REST("delete"), 'D',
	  "IHE.BasicAudit.PatientDelete" },
	{ "auth.patient.create", P_CREATE, D_PATIENT, DCM("110110", "Patient Record"), NOCODE, REST("create"),
	  'C', "IHE.BasicAudit.PatientCreate" },
	/* The right to be forgotten (docs/ERASURE.md §10): the patient erased,
	 * and every contract of theirs ended with them. */
	{ "auth.patient.erase", P_DELETE, D_PATIENT, DCM("110110", "Patient Record"), NOCODE, REST("delete"),
	  'D', "IHE.BasicAudit.PatientDelete" },
	{ "contract.erase", P_UPDATE, D_PATIENT, DCM("110110", "Patient Record"), NOCODE, REST("update"), 'U',
	  "IHE.BasicAudit.PatientUpdate" },
	{ "contract.create", P_CREATE, D_CONTRACT, DCM("110110", "Patient Record"), NOCODE, REST("create"),
	  'C', "IHE.BasicAudit.PatientCreate" },
	{ "contract.revoke", P_UPDATE, D_CONTRACT, DCM("110110", "Patient Record"), NOCODE, REST("update"),
	  'U', "IHE.BasicAudit.PatientUpdate" },
	{ "audit.query", P_QUERY, D_NONE, DCM("110112", "Query"), NOCODE, REST("search-type"), 'E',
	  "IHE.BasicAudit.Query" },
	{ "access.decision",
	  P_AUTHZ,
	  D_NONE,
	  DCM("110113", "Security Alert"),
	  { AUDIT_SYS_BALP_AUTHZ, "AuthZ-Consent", "Authorization Decision using Roles and Consent" },
	  NOCODE,
	  'E',
	  "IHE.BasicAudit.AuthZconsent" },
	{ "auth.token", P_LOGIN, D_NONE, DCM("110114", "User Authentication"), DCM("110122", "Login"), NOCODE,
	  'E', NULL },
	{ "auth.mtls", P_LOGIN, D_NONE, DCM("110114", "User Authentication"), DCM("110122", "Login"), NOCODE,
	  'E', NULL },
	{ "auth.dpop", P_LOGIN, D_NONE, DCM("110114", "User Authentication"), DCM("110122", "Login"), NOCODE,
	  'E', NULL },
	{ "auth.register", P_SECURITY, D_NONE, DCM("110113", "Security Alert"),
	  DCM("110137", "User Security Attributes Changed"), NOCODE, 'C', NULL },
	{ "auth.renew", P_SECURITY, D_NONE, DCM("110113", "Security Alert"),
	  DCM("110137", "User Security Attributes Changed"), NOCODE, 'U', NULL },
	{ "auth.enroll", P_SECURITY, D_NONE, DCM("110113", "Security Alert"),
	  DCM("110137", "User Security Attributes Changed"), NOCODE, 'C', NULL },
	{ "auth.revoke", P_SECURITY, D_NONE, DCM("110113", "Security Alert"),
	  DCM("110137", "User Security Attributes Changed"), NOCODE, 'D', NULL },
	{ "contract.group.add", P_SECURITY, D_NONE, DCM("110113", "Security Alert"),
	  DCM("110136", "Security Roles Changed"), NOCODE, 'U', NULL },
	{ "contract.group.remove", P_SECURITY, D_NONE, DCM("110113", "Security Alert"),
	  DCM("110136", "Security Roles Changed"), NOCODE, 'U', NULL },
};

/* An entry type not in the table (a newer gateway's): Application Activity. */
static const struct audit_map audit_map_other = {
	NULL, P_OTHER, D_NONE, DCM("110100", "Application Activity"), NOCODE, NOCODE, 'E', NULL
};

static const struct audit_map *map_find(const char *type)
{
	for (size_t i = 0; i < EHR_ARRAY_LEN(audit_map); i++)
		if (strcmp(audit_map[i].type, type) == 0)
			return &audit_map[i];
	return &audit_map_other;
}

/* ------------------------------------------------------------ helpers */

/* A payload string member, NULL when absent, not a string, or empty. */
static const char *pstr(const struct audit_event *ev, const char *key)
{
	const char *s = json_string_value(json_object_get(ev->payload_, key));
	return s && *s ? s : NULL;
}

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

/*
 * The outcome rule (docs/AUDIT.md §1), from the payload alone:
 *  - 12 when payload.outcome is "integrity" (the gateway's own data failed a check);
 *  - 8 when payload.outcome is "error" (a valid request the gateway could not complete);
 *  - 4 when payload.outcome is "failure" (a refused credential or request) or
 *    payload.decision is "deny";
 *  - else 0.
 */
static enum audit_outcome outcome_of(const struct audit_event *ev)
{
	const char *o = pstr(ev, "outcome"), *d = pstr(ev, "decision");

	if (o && strcmp(o, "integrity") == 0)
		return AUDIT_OUTCOME_MAJOR;
	if (o && strcmp(o, "error") == 0)
		return AUDIT_OUTCOME_SERIOUS;
	if ((o && strcmp(o, "failure") == 0) || (d && strcmp(d, "deny") == 0))
		return AUDIT_OUTCOME_MINOR;
	return AUDIT_OUTCOME_SUCCESS;
}

/* The ehrgate role of an actor, where the entry says it. */
static const char *actor_role(const struct audit_event *ev, const struct ledger_entry *e)
{
	const char *r = pstr(ev, "role");

	if (r)
		return r;
	if (strcmp(e->actor, "operator") == 0)
		return "operator";
	if (strcmp(e->actor, "anonymous") == 0)
		return NULL;
	if (strncmp(e->type, "contract.", 9) == 0 && strcmp(e->actor, e->subject) == 0)
		return "patient"; /* contracts are signed by the patient */
	if (strcmp(e->type, "ehr.store") == 0 || strcmp(e->type, "auth.patient.create") == 0 ||
	    strcmp(e->type, "access.decision") == 0)
		return strcmp(e->actor, e->subject) == 0 ? "patient" : "server";
	if (strcmp(e->type, "ehr.read") == 0)
		return strcmp(e->actor, e->subject) == 0 ? "patient" : "server";
	if (strcmp(e->type, "audit.query") == 0)
		return "auditor";
	return NULL;
}

static struct audit_agent *agent_add(struct audit_event *ev, enum audit_agent_kind kind,
                                     struct audit_code type, const char *id_system, const char *id,
                                     bool requestor)
{
	struct audit_agent *a;

	if (ev->n_agent >= AUDIT_MAX_AGENTS || nonempty(id) == NULL)
		return NULL;
	a = &ev->agent[ev->n_agent++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->type = type;
	a->id_system = id_system;
	a->id = id;
	a->requestor = requestor;
	return a;
}

static struct audit_entity *entity_add(struct audit_event *ev, enum audit_entity_kind kind,
                                       struct audit_code type, struct audit_code role,
                                       struct audit_code id_type, const char *id_system, const char *id)
{
	struct audit_entity *n;

	if (ev->n_entity >= AUDIT_MAX_ENTITIES || (kind != AUDIT_ENTITY_QUERY && nonempty(id) == NULL))
		return NULL;
	n = &ev->entity[ev->n_entity++];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->type = type;
	n->role = role;
	n->id_type = id_type;
	n->id_system = id_system;
	n->id = id;
	return n;
}

static const struct audit_code et_person = { AUDIT_SYS_ENTITY_TYPE, "1", "Person" };
static const struct audit_code et_object = { AUDIT_SYS_ENTITY_TYPE, "2", "System Object" };
static const struct audit_code or_patient = { AUDIT_SYS_OBJECT_ROLE, "1", "Patient" };
static const struct audit_code or_resource = { AUDIT_SYS_OBJECT_ROLE, "4", "Domain Resource" };
static const struct audit_code or_security = { AUDIT_SYS_OBJECT_ROLE, "13", "Security Resource" };
static const struct audit_code or_query = { AUDIT_SYS_OBJECT_ROLE, "24", "Query" };
static const struct audit_code id_patient = { AUDIT_SYS_RFC3881_ID, "2", "Patient Number" };
static const struct audit_code id_report = { AUDIT_SYS_RFC3881_ID, "9", "Report Number" };
static const struct audit_code id_search = { AUDIT_SYS_RFC3881_ID, "10", "Search Criteria" };
static const struct audit_code id_user = { AUDIT_SYS_RFC3881_ID, "11", "User Identifier" };
static const struct audit_code id_uri = { AUDIT_SYS_RFC3881_ID, "12", "URI" };

static const struct audit_code ag_source = DCM("110153", "Source Role ID");
static const struct audit_code ag_dest = DCM("110152", "Destination Role ID");
static const struct audit_code ag_app = DCM("110150", "Application");
static const struct audit_code ag_ircp = { AUDIT_SYS_PARTICIPATION, "IRCP", "information recipient" };
static const struct audit_code ag_author = { AUDIT_SYS_PARTICIPATION, "AUT", "author (originator)" };
static const struct audit_code ag_custodian = { AUDIT_SYS_PROVENANCE, "custodian", "Custodian" };
static const struct audit_code ag_prov = { AUDIT_SYS_ROLE_CLASS, "PROV", "healthcare provider" };
static const struct audit_code ag_authserver = { AUDIT_SYS_SECURITY_ROLE, "authserver",
	                                         "authorization server" };
static const struct audit_code ag_oauth = { AUDIT_SYS_BALP_AGENT, "UserOauthAgent",
	                                    "User OAuth Agent participant" };

/* The patient entity (BALP entity[patient]), when the entry names one. */
static void add_patient(struct audit_event *ev, const char *patient)
{
	struct audit_entity *n = entity_add(ev, AUDIT_ENTITY_PATIENT, et_person, or_patient, id_patient,
	                                    AUDIT_SYS_PATIENT, patient);
	if (n)
		n->ref_type = "Patient";
}

/* The object acted on (BALP entity[data]). */
static void add_data(struct audit_event *ev, const struct audit_map *m, const struct ledger_entry *e)
{
	struct audit_entity *n = NULL;

	switch (m->data) {
	case D_RECORD:
		n = entity_add(ev, AUDIT_ENTITY_DATA, et_object, or_resource, id_report, AUDIT_SYS_RECORD,
		               pstr(ev, "record_id") ? pstr(ev, "record_id") : pstr(ev, "record"));
		if (n)
			n->ref_type = "DocumentReference";
		break;
	case D_CONTRACT:
		n = entity_add(ev, AUDIT_ENTITY_DATA, et_object, or_resource, id_uri, AUDIT_SYS_CONTRACT,
		               pstr(ev, "cid"));
		if (n)
			n->ref_type = "Consent";
		break;
	case D_PATIENT:
		n = entity_add(ev, AUDIT_ENTITY_DATA, et_object, or_resource, id_patient, AUDIT_SYS_PATIENT,
		               e->subject);
		if (n)
			n->ref_type = "Patient";
		break;
	case D_NONE:
	default: break;
	}
}

/* ------------------------------------------------------------ patterns */

/* BALP REST patterns: client, server, user; data and patient entities.
 * Directions as BALP has them: a read's client is the Destination Role ID,
 * a create's/update's/query's client is the Source Role ID; a delete's
 * client is the Application and its server the Custodian. */
static void build_rest(struct audit_event *ev, const struct audit_map *m, const struct ledger_entry *e)
{
	struct audit_code client = ag_source, server = ag_dest, user = ag_author;
	struct audit_agent *a;
	const char *role = actor_role(ev, e);

	if (m->pattern == P_READ || m->pattern == P_QUERY)
		user = ag_ircp;
	if (m->pattern == P_READ) {
		client = ag_dest;
		server = ag_source;
	} else if (m->pattern == P_DELETE) {
		client = ag_app;
		server = ag_custodian;
		user = (struct audit_code){ AUDIT_SYS_PARTICIPATION, "CST", "custodian" };
	}
	if ((a = agent_add(ev, AUDIT_AGENT_USER, user, AUDIT_SYS_ACTOR, e->actor, true)) != NULL)
		a->role = role;
	if ((a = agent_add(ev, AUDIT_AGENT_CLIENT, client, AUDIT_SYS_ACTOR, e->actor, false)) != NULL)
		a->role = role;
	agent_add(ev, AUDIT_AGENT_SERVER, server, AUDIT_SYS_GATEWAY, ev->observer, false);
	if (m->pattern == P_QUERY) {
		const char *q = pstr(ev, "query");
		struct audit_entity *n =
		        entity_add(ev, AUDIT_ENTITY_QUERY, et_object, or_query, id_search, NULL, NULL);
		if (n) {
			/* an empty query string is still the query: zero bytes */
			n->query = (const uint8_t *)(q ? q : "");
			n->query_len = q ? strlen(q) : 0;
			n->name = pstr(ev, "route");
		}
	}
	add_data(ev, m, e);
	add_patient(ev, e->subject);
	/* BALP OAUTHaccessTokenUse.Minimal: the patient's DPoP-bound token, by jti. */
	if (pstr(ev, "jti") &&
	    ehr_fmt(ev->policy_, sizeof(ev->policy_), "urn:ietf:params:oauth:jti:%s", pstr(ev, "jti")) == 0 &&
	    (a = agent_add(ev, AUDIT_AGENT_OAUTH_USER, ag_oauth, AUDIT_SYS_ACTOR, e->actor, true)) != NULL)
		a->policy = ev->policy_;
}

/* BALP AuthZconsent: client, user, user organisation, authoriser; the
 * patient and the consent (contract) that decided. Its entity slicing is
 * closed (patient, consent, token), so the record is not an entity here:
 * the ehr.read/ehr.store entry next to the decision names it. A decision
 * no contract made (no match, break-glass) has no consent entity and
 * declares no profile. */
static void build_authz(struct audit_event *ev, const struct ledger_entry *e)
{
	const char *who = pstr(ev, "requester") ? pstr(ev, "requester") : e->actor;
	const char *purpose = pstr(ev, "purpose");
	struct audit_agent *a;

	agent_add(ev, AUDIT_AGENT_CLIENT, ag_app, AUDIT_SYS_ACTOR, who, false);
	if ((a = agent_add(ev, AUDIT_AGENT_USER, ag_ircp, AUDIT_SYS_ACTOR, who, true)) != NULL)
		a->role = strcmp(who, e->subject) == 0 ? "patient" : "server";
	agent_add(ev, AUDIT_AGENT_ORG, ag_prov, AUDIT_SYS_ACTOR, who, false);
	agent_add(ev, AUDIT_AGENT_AUTHORIZER, ag_authserver, AUDIT_SYS_GATEWAY, ev->observer, false);
	add_patient(ev, e->subject);
	if (pstr(ev, "cid")) {
		struct audit_entity *n =
		        entity_add(ev, AUDIT_ENTITY_CONSENT,
		                   (struct audit_code){ AUDIT_SYS_RESOURCE_TYPES, "Consent", "Consent" },
		                   or_security, id_uri, AUDIT_SYS_CONTRACT, pstr(ev, "cid"));
		if (n)
			n->ref_type = "Consent";
	}
	if (json_is_true(json_object_get(ev->payload_, "break_glass")))
		ev->purpose = (struct audit_code){ AUDIT_SYS_ACT_REASON, "ETREAT", "Emergency Treatment" };
	else if (purpose && strcmp(purpose, "treatment") == 0)
		ev->purpose = (struct audit_code){ AUDIT_SYS_ACT_REASON, "TREAT", "treatment" };
}

/* DICOM User Authentication (A.5.3.8 pattern): the principal
 * authenticated (requestor) and the gateway that authenticated it. */
static void build_login(struct audit_event *ev, const struct ledger_entry *e)
{
	struct audit_agent *a;

	if ((a = agent_add(ev, AUDIT_AGENT_USER, ag_app, AUDIT_SYS_ACTOR, e->actor, true)) != NULL)
		a->role = actor_role(ev, e);
	agent_add(ev, AUDIT_AGENT_AUTHORIZER, ag_authserver, AUDIT_SYS_GATEWAY, ev->observer, false);
	if (strcmp(e->type, "auth.token") == 0)
		add_patient(ev, e->subject);
	else
		entity_add(ev, AUDIT_ENTITY_PRINCIPAL, et_object, or_security, id_user, AUDIT_SYS_PRINCIPAL,
		           e->subject);
}

/* DICOM Security Alert: who changed whose credentials or roles. */
static void build_security(struct audit_event *ev, const struct ledger_entry *e)
{
	struct audit_agent *a;
	const char *kind = pstr(ev, "kind");

	if ((a = agent_add(ev, AUDIT_AGENT_USER, ag_app, AUDIT_SYS_ACTOR, e->actor, true)) != NULL)
		a->role = actor_role(ev, e);
	agent_add(ev, AUDIT_AGENT_AUTHORIZER, ag_authserver, AUDIT_SYS_GATEWAY, ev->observer, false);
	if (strcmp(e->type, "auth.enroll") == 0 || (kind && strcmp(kind, "patient") == 0)) {
		add_patient(ev, e->subject);
	} else if (strncmp(e->type, "contract.group.", 15) == 0) {
		entity_add(ev, AUDIT_ENTITY_PRINCIPAL, et_object, or_security, id_user, AUDIT_SYS_GROUP,
		           e->subject);
		entity_add(ev, AUDIT_ENTITY_PRINCIPAL, et_object, or_security, id_user, AUDIT_SYS_PRINCIPAL,
		           pstr(ev, "server"));
	} else {
		entity_add(ev, AUDIT_ENTITY_PRINCIPAL, et_object, or_security, id_user, AUDIT_SYS_PRINCIPAL,
		           e->subject);
	}
}

/* ------------------------------------------------------------ public */

int audit_event_from_entry(struct audit_event *ev, const struct ledger_entry *e, const char *observer)
{
	const struct audit_map *m;
	int err;

	memset(ev, 0, sizeof(*ev));
	ENSURE(e != NULL && nonempty(observer) != NULL, EHR_ERR_INVAL);
	GUARD(ehr_json_parse(&ev->payload_, e->payload, e->payload_len, LEDGER_MAX_PAYLOAD,
	                     EHR_JSON_MAX_DEPTH));
	if (!json_is_object(ev->payload_)) {
		err = ehr_error_set(EHR_ERR_PARSE, "ledger entry payload is not a JSON object");
		audit_event_clear(ev);
		return err;
	}
	m = map_find(e->type);
	ev->seq = e->seq;
	ev->ts_ms = e->ts_ms;
	ev->entry_type = e->type;
	ev->observer = observer;
	ev->dicom = m->dicom;
	ev->dicom_subtype = m->dicom_subtype;
	ev->action = m->action;
	ev->outcome = outcome_of(ev);
	ev->outcome_desc = pstr(ev, "reason");
	if (m->rest.system) {
		ev->type = type_rest;
		ev->subtype[ev->n_subtype++] = m->rest;
	} else {
		ev->type = m->dicom;
		if (m->dicom_subtype.system)
			ev->subtype[ev->n_subtype++] = m->dicom_subtype;
	}
	ev->subtype[ev->n_subtype++] = (struct audit_code){ AUDIT_SYS_ENTRY_TYPE, e->type, NULL };
	switch (m->pattern) {
	case P_READ:
	case P_CREATE:
	case P_UPDATE:
	case P_DELETE:
	case P_QUERY: build_rest(ev, m, e); break;
	case P_AUTHZ: build_authz(ev, e); break;
	case P_LOGIN: build_login(ev, e); break;
	case P_SECURITY: build_security(ev, e); break;
	case P_OTHER:
	default:
		agent_add(ev, AUDIT_AGENT_USER, ag_app, AUDIT_SYS_ACTOR, e->actor, true);
		add_patient(ev, e->subject);
		break;
	}
	/* BALP profiles are for successes; AuthZconsent for every decision a
	 * contract made, permit or deny. */
	if (m->profile && (ev->outcome == AUDIT_OUTCOME_SUCCESS || m->pattern == P_AUTHZ) &&
	    (m->pattern != P_AUTHZ || pstr(ev, "cid") != NULL) && (m->data != D_RECORD || ev->n_entity >= 2))
		ev->profile[ev->n_profile++] = m->profile;
	for (size_t i = 0; i < ev->n_agent; i++)
		if (ev->agent[i].kind == AUDIT_AGENT_OAUTH_USER && ev->n_profile > 0)
			ev->profile[ev->n_profile++] = "IHE.BasicAudit.OAUTHaccessTokenUse.Minimal";
	return 0;
}

void audit_event_clear(struct audit_event *ev)
{
	if (ev == NULL)
		return;
	json_decref(ev->payload_);
	memset(ev, 0, sizeof(*ev));
}

bool audit_event_has_profile(const struct audit_event *ev, const char *profile)
{
	for (size_t i = 0; i < ev->n_profile; i++)
		if (strcmp(ev->profile[i], profile) == 0)
			return true;
	return false;
}
