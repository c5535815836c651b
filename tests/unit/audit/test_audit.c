/*
 * test_audit.c - ledger entry -> struct audit_event -> FHIR AuditEvent:
 * the mapping table, the outcome rule (docs/AUDIT.md §1), BALP profiles
 * and "no empty strings" (issue 14: empty subjects rendered as "").
 */
#include <string.h>

#include "audit/audit.h"
#include "tests/harness/harness.h"

#define ORIGIN "ehrgate.test/ledger"

static struct ledger_entry mk(const char *type, const char *actor, const char *subject, const char *payload)
{
	struct ledger_entry e;

	memset(&e, 0, sizeof(e));
	e.seq = 7;
	e.ts_ms = 1795499129854LL;
	CU_ASSERT_FATAL(ehr_fmt(e.type, sizeof(e.type), "%s", type) == 0);
	CU_ASSERT_FATAL(ehr_fmt(e.actor, sizeof(e.actor), "%s", actor) == 0);
	CU_ASSERT_FATAL(ehr_fmt(e.subject, sizeof(e.subject), "%s", subject) == 0);
	e.payload = (const uint8_t *)payload;
	e.payload_len = strlen(payload);
	return e;
}

/* No "" anywhere in a JSON value (R4 string/code/uri patterns). */
static bool no_empty_strings(const json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_string(v))
		return json_string_length(v) > 0;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x)
		{
			if (*k == '\0' || !no_empty_strings(x))
				return false;
		}
	}
	if (json_is_array(v))
		json_array_foreach(v, i, x) if (!no_empty_strings(x)) return false;
	return true;
}

static const struct audit_entity *entity_of(const struct audit_event *ev, enum audit_entity_kind kind)
{
	for (size_t i = 0; i < ev->n_entity; i++)
		if (ev->entity[i].kind == kind)
			return &ev->entity[i];
	return NULL;
}

struct want {
	const char *type, *actor, *subject, *payload;
	const char *dicom, *dicom_sub, *fhir_type;
	char action;
	int outcome;
	const char *profile; /* NULL: none */
};

/* Every entry type the gateway emits, success and refusal. */
static const struct want table[] = {
	{ "ehr.read", "srv-1", "pt-1",
	  "{\"actor\":\"srv-1\",\"basis\":\"allow.contract\",\"patient\":\"pt-1\",\"record_id\":\"r1\","
	  "\"sha256\":\"00\",\"size\":3}",
	  "110110", NULL, "rest", 'R', 0, "IHE.BasicAudit.PatientRead" },
	{ "ehr.store", "srv-1", "pt-1", "{\"record_id\":\"r1\",\"sha256\":\"00\",\"size\":3}", "110110", NULL,
	  "rest", 'C', 0, "IHE.BasicAudit.PatientCreate" },
	{ "ehr.erase", "srv-1", "pt-1", "{\"record_id\":\"r1\"}", "110110", NULL, "rest", 'D', 0,
	  "IHE.BasicAudit.PatientDelete" },
	{ "ehr.erase.refused", "pt-1", "pt-1",
	  "{\"basis\":\"gdpr-17-1-b\",\"reason\":\"legal_hold\",\"record_id\":\"r1\",\"requested_by\":"
	  "\"patient\"}",
	  "110110", NULL, "rest", 'D', 4, NULL },
	{ "ehr.hold.place", "operator", "pt-1",
	  "{\"hold_id\":1,\"on\":\"patient\",\"reason\":\"litigation\"}", "110110", NULL, "rest", 'U', 0,
	  "IHE.BasicAudit.PatientUpdate" },
	{ "ehr.hold.lift", "operator", "pt-1",
	  "{\"hold_id\":2,\"on\":\"record\",\"reason\":\"court-order\",\"record_id\":\"r1\"}", "110110", NULL,
	  "rest", 'U', 0, "IHE.BasicAudit.PatientUpdate" },
	{ "auth.patient.erase", "pt-1", "pt-1", "{\"basis\":\"gdpr-17-1-b\",\"outcome\":\"success\"}",
	  "110110", NULL, "rest", 'D', 0, "IHE.BasicAudit.PatientDelete" },
	{ "auth.patient.erase", "pt-1", "pt-1", "{\"outcome\":\"failure\",\"reason\":\"legal_hold\"}",
	  "110110", NULL, "rest", 'D', 4, NULL },
	{ "contract.erase", "operator", "pt-1", "{\"patient\":\"pt-1\"}", "110110", NULL, "rest", 'D', 0,
	  "IHE.BasicAudit.PatientDelete" },
	{ "audit.query", "pt-1", "pt-1",
	  "{\"outcome\":\"failure\",\"query\":\"limit=x\",\"route\":\"me.access_log\"}", "110112", NULL,
	  "rest", 'E', 4, NULL },
	{ "audit.query", "aud-1", "",
	  "{\"outcome\":\"success\",\"query\":\"\",\"route\":\"ledger.checkpoint\"}", "110112", NULL, "rest",
	  'E', 0, NULL },
	{ "auth.patient.create", "srv-1", "pt-1", "{\"outcome\":\"success\",\"code_expires_at\":1}", "110110",
	  NULL, "rest", 'C', 0, "IHE.BasicAudit.PatientCreate" },
	{ "auth.patient.erase", "operator", "pt-1",
	  "{\"outcome\":\"success\",\"basis\":\"court-order\",\"requested_by\":\"operator\"}", "110110", NULL,
	  "rest", 'D', 0, "IHE.BasicAudit.PatientDelete" },
	{ "contract.create", "pt-1", "pt-1", "{\"cid\":\"c1\",\"signature\":\"x\"}", "110110", NULL, "rest",
	  'C', 0, "IHE.BasicAudit.PatientCreate" },
	{ "contract.revoke", "pt-1", "pt-1", "{\"cid\":\"c1\",\"signature\":\"x\"}", "110110", NULL, "rest",
	  'U', 0, "IHE.BasicAudit.PatientUpdate" },
	{ "audit.query", "aud-1", "", "{\"query\":\"type=ehr.read\",\"route\":\"/v1/audit/entries\"}",
	  "110112", NULL, "rest", 'E', 0, "IHE.BasicAudit.Query" },
	{ "access.decision", "srv-1", "pt-1",
	  "{\"decision\":\"allow\",\"reason\":\"allow.contract\",\"cid\":\"c1\",\"action\":\"read\","
	  "\"record\":\"r1\","
	  "\"purpose\":\"treatment\",\"break_glass\":false,\"requester\":\"srv-1\",\"patient\":\"pt-1\"}",
	  "110113", "AuthZ-Consent", "110113", 'E', 0, "IHE.BasicAudit.AuthZconsent" },
	{ "access.decision", "srv-1", "pt-1",
	  "{\"decision\":\"deny\",\"reason\":\"deny.scope\",\"cid\":\"c1\",\"action\":\"read\",\"requester\":"
	  "\"srv-1\"}",
	  "110113", "AuthZ-Consent", "110113", 'E', 4, "IHE.BasicAudit.AuthZconsent" },
	{ "access.decision", "srv-1", "pt-1",
	  "{\"decision\":\"deny\",\"reason\":\"deny.no_contract\",\"cid\":null,\"action\":\"read\"}",
	  "110113", "AuthZ-Consent", "110113", 'E', 4, NULL },
	{ "auth.token", "pt-1", "pt-1", "{\"outcome\":\"success\",\"reason\":\"login\"}", "110114", "110122",
	  "110114", 'E', 0, NULL },
	{ "auth.token", "anonymous", "pt-1", "{\"outcome\":\"failure\",\"reason\":\"bad_signature\"}",
	  "110114", "110122", "110114", 'E', 4, NULL },
	{ "auth.mtls", "srv-1", "srv-1", "{\"outcome\":\"success\",\"role\":\"server\",\"serial\":\"ab\"}",
	  "110114", "110122", "110114", 'E', 0, NULL },
	{ "auth.mtls", "anonymous", "", "{\"outcome\":\"failure\",\"reason\":\"bad_certificate\"}", "110114",
	  "110122", "110114", 'E', 4, NULL },
	{ "auth.dpop", "anonymous", "", "{\"outcome\":\"failure\",\"reason\":\"replay\"}", "110114", "110122",
	  "110114", 'E', 4, NULL },
	{ "auth.register", "srv-1", "srv-1",
	  "{\"outcome\":\"success\",\"role\":\"server\",\"serial\":\"ab\"}", "110113", "110137", "110113",
	  'C', 0, NULL },
	{ "auth.register", "anonymous", "", "{\"outcome\":\"failure\",\"reason\":\"bad_token\"}", "110113",
	  "110137", "110113", 'C', 4, NULL },
	{ "auth.renew", "srv-1", "srv-1", "{\"outcome\":\"success\",\"serial\":\"cd\",\"previous\":\"ab\"}",
	  "110113", "110137", "110113", 'U', 0, NULL },
	{ "auth.enroll", "pt-1", "pt-1", "{\"outcome\":\"success\",\"jkt\":\"j\"}", "110113", "110137",
	  "110113", 'C', 0, NULL },
	{ "auth.enroll", "anonymous", "pt-1", "{\"outcome\":\"failure\",\"reason\":\"bad_code\"}", "110113",
	  "110137", "110113", 'C', 4, NULL },
	{ "auth.revoke", "operator", "srv-1", "{\"outcome\":\"success\",\"kind\":\"server\"}", "110113",
	  "110137", "110113", 'D', 0, NULL },
	{ "contract.group.add", "operator", "grp-1", "{\"group\":\"grp-1\",\"server\":\"srv-1\"}", "110113",
	  "110136", "110113", 'U', 0, NULL },
	{ "contract.group.remove", "operator", "grp-1", "{\"group\":\"grp-1\",\"server\":\"srv-1\"}",
	  "110113", "110136", "110113", 'U', 0, NULL },
	{ "something.new", "x", "", "{}", "110100", NULL, "110100", 'E', 0, NULL },
};

static void test_table(void)
{
	for (size_t i = 0; i < EHR_ARRAY_LEN(table); i++) {
		const struct want *w = &table[i];
		struct ledger_entry e = mk(w->type, w->actor, w->subject, w->payload);
		struct audit_event ev;
		json_t *j;

		CU_ASSERT_FATAL(audit_event_from_entry(&ev, &e, ORIGIN) == 0);
		CU_ASSERT_STRING_EQUAL(ev.dicom.code, w->dicom);
		if (w->dicom_sub) {
			CU_ASSERT(ev.dicom_subtype.code && strcmp(ev.dicom_subtype.code, w->dicom_sub) == 0);
		} else {
			CU_ASSERT(ev.dicom_subtype.code == NULL);
		}
		CU_ASSERT_STRING_EQUAL(ev.type.code, w->fhir_type);
		CU_ASSERT_EQUAL(ev.action, w->action);
		if ((int)ev.outcome != w->outcome)
			fprintf(stderr, "\n  %s #%zu: outcome %d, wanted %d\n", w->type, i, (int)ev.outcome,
			        w->outcome);
		CU_ASSERT_EQUAL((int)ev.outcome, w->outcome);
		if (w->profile) {
			CU_ASSERT(audit_event_has_profile(&ev, w->profile));
		} else {
			CU_ASSERT_EQUAL(ev.n_profile, 0);
		}
		/* the entry type is always the last subtype, so searches find it */
		CU_ASSERT_STRING_EQUAL(ev.subtype[ev.n_subtype - 1].code, w->type);
		CU_ASSERT(ev.n_agent >= 2 || strcmp(w->type, "something.new") == 0);
		/* an empty subject is no entity, never an empty identifier */
		for (size_t k = 0; k < ev.n_entity; k++)
			CU_ASSERT(ev.entity[k].kind == AUDIT_ENTITY_QUERY ||
			          (ev.entity[k].id && *ev.entity[k].id));
		j = audit_fhir_json(&ev);
		CU_ASSERT_FATAL(j != NULL);
		if (!no_empty_strings(j)) {
			char *s = json_dumps(j, JSON_COMPACT);
			fprintf(stderr, "\n  empty string in %s\n", s);
			free(s);
			CU_FAIL("empty string in a FHIR AuditEvent");
		}
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "id")), "7");
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "recorded")),
		                       "2026-11-24T05:45:29.854Z");
		CU_ASSERT(w->profile == NULL || json_object_get(j, "meta") != NULL);
		json_decref(j);
		audit_event_clear(&ev);
	}
}

static void test_read_balp_shape(void)
{
	struct ledger_entry e = mk("ehr.read", "srv-1", "pt-1", "{\"record_id\":\"r1\",\"jti\":\"tok-1\"}");
	struct audit_event ev;
	const struct audit_entity *p, *d;

	CU_ASSERT_FATAL(audit_event_from_entry(&ev, &e, ORIGIN) == 0);
	p = entity_of(&ev, AUDIT_ENTITY_PATIENT);
	d = entity_of(&ev, AUDIT_ENTITY_DATA);
	CU_ASSERT_FATAL(p != NULL && d != NULL);
	CU_ASSERT_STRING_EQUAL(p->id, "pt-1");
	CU_ASSERT_STRING_EQUAL(p->type.code, "1");
	CU_ASSERT_STRING_EQUAL(p->role.code, "1");
	CU_ASSERT_STRING_EQUAL(p->ref_type, "Patient");
	CU_ASSERT_STRING_EQUAL(d->id, "r1");
	CU_ASSERT_STRING_EQUAL(d->type.code, "2");
	CU_ASSERT_STRING_EQUAL(d->role.code, "4");
	/* a token id makes it OAUTHaccessTokenUse.Minimal too, jti as a URN */
	CU_ASSERT(audit_event_has_profile(&ev, "IHE.BasicAudit.OAUTHaccessTokenUse.Minimal"));
	CU_ASSERT_STRING_EQUAL(ev.agent[ev.n_agent - 1].policy, "urn:ietf:params:oauth:jti:tok-1");
	audit_event_clear(&ev);
}

static void test_query_bytes(void)
{
	struct ledger_entry e = mk("audit.query", "aud-1", "", "{\"query\":\"limit=1&limit=2\"}");
	struct audit_event ev;
	const struct audit_entity *q;
	json_t *j, *ent;

	CU_ASSERT_FATAL(audit_event_from_entry(&ev, &e, ORIGIN) == 0);
	q = entity_of(&ev, AUDIT_ENTITY_QUERY);
	CU_ASSERT_FATAL(q != NULL);
	CU_ASSERT_FATAL(q->query_len == 15);
	CU_ASSERT(memcmp(q->query, "limit=1&limit=2", 15) == 0); /* not secret */
	j = audit_fhir_json(&ev);
	CU_ASSERT_FATAL(j != NULL);
	ent = json_array_get(json_object_get(j, "entity"), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ent, "query")), "bGltaXQ9MSZsaW1pdD0y");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(ent, "role"), "code")),
	                       "24");
	json_decref(j);
	audit_event_clear(&ev);
}

/* The caller of an audit query is who its id says (a patient reads its own
 * access log), and a hold names the record it is on, else the patient. */
static void test_roles_and_holds(void)
{
	struct ledger_entry e = mk("audit.query", "pt-1", "pt-1", "{\"query\":\"limit=1\"}");
	struct ledger_entry h =
	        mk("ehr.hold.place", "operator", "pt-1", "{\"on\":\"record\",\"record_id\":\"r9\"}");
	struct audit_event ev;
	const struct audit_entity *d;

	CU_ASSERT_FATAL(audit_event_from_entry(&ev, &e, ORIGIN) == 0);
	CU_ASSERT_STRING_EQUAL(ev.agent[0].role, "patient");
	audit_event_clear(&ev);
	CU_ASSERT_FATAL(ehr_fmt(e.actor, sizeof(e.actor), "%s", "aud-1") == 0);
	CU_ASSERT_FATAL(audit_event_from_entry(&ev, &e, ORIGIN) == 0);
	CU_ASSERT_STRING_EQUAL(ev.agent[0].role, "auditor");
	audit_event_clear(&ev);
	CU_ASSERT_FATAL(audit_event_from_entry(&ev, &h, ORIGIN) == 0);
	CU_ASSERT_STRING_EQUAL(ev.agent[0].role, "operator");
	d = entity_of(&ev, AUDIT_ENTITY_DATA);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT_STRING_EQUAL(d->id, "r9");
	CU_ASSERT_STRING_EQUAL(d->id_system, AUDIT_SYS_RECORD);
	audit_event_clear(&ev);
}

static void test_outcome_rule(void)
{
	static const struct {
		const char *payload;
		int outcome;
	} cases[] = {
		{ "{\"outcome\":\"success\"}", 0 }, { "{\"outcome\":\"failure\"}", 4 },
		{ "{\"decision\":\"deny\"}", 4 },   { "{\"decision\":\"allow\"}", 0 },
		{ "{\"outcome\":\"error\"}", 8 },   { "{\"outcome\":\"integrity\"}", 12 },
		{ "{\"success\":false}", 0 }, /* the old, wrong key means nothing */
	};

	for (size_t i = 0; i < EHR_ARRAY_LEN(cases); i++) {
		struct ledger_entry e = mk("auth.token", "pt-1", "pt-1", cases[i].payload);
		struct audit_event ev;

		CU_ASSERT_FATAL(audit_event_from_entry(&ev, &e, ORIGIN) == 0);
		CU_ASSERT_EQUAL((int)ev.outcome, cases[i].outcome);
		audit_event_clear(&ev);
	}
}

static void test_refused(void)
{
	struct audit_event ev;
	struct ledger_entry bad = mk("ehr.read", "srv-1", "pt-1", "[1]");
	struct ledger_entry junk = mk("ehr.read", "srv-1", "pt-1", "{not json");
	struct ledger_entry ok = mk("ehr.read", "srv-1", "pt-1", "{}");

	EHR_ASSERT_ERR(audit_event_from_entry(&ev, &bad, ORIGIN), EHR_ERR_PARSE);
	CU_ASSERT(audit_event_from_entry(&ev, &junk, ORIGIN) < 0);
	EHR_ASSERT_ERR(audit_event_from_entry(&ev, &ok, ""), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(audit_event_from_entry(&ev, &ok, NULL), EHR_ERR_INVAL);
	/* a read without a record id claims no PatientRead: BALP needs entity[data] */
	CU_ASSERT_FATAL(audit_event_from_entry(&ev, &ok, ORIGIN) == 0);
	CU_ASSERT_EQUAL(ev.n_profile, 0);
	audit_event_clear(&ev);
	audit_event_clear(NULL);
}

#define CONTRACT_PAYLOAD                                                                                     \
	"{\"cid\":\"c1\",\"contract\":{\"actions\":[\"read\",\"append\"],\"grantee\":{\"server\":\"srv-1\"}" \
	","                                                                                                  \
	"\"issued_at\":1764000000,\"nonce\":\"q8Fh2mZ0cT1sLk9wXy3bNA\",\"not_after\":1795536000,\"not_"      \
	"before\":1764000000,"                                                                               \
	"\"patient\":\"pt-1\",\"purpose\":\"treatment\",\"scope\":{\"categories\":[\"lab\"]},\"type\":"      \
	"\"ehrgate.contract.v1\"},"                                                                          \
	"\"jkt\":\"j\",\"jwk\":{\"kty\":\"EC\"},\"signature\":\"sig\"}"

static void test_consent(void)
{
	struct ledger_entry c = mk("contract.create", "pt-1", "pt-1", CONTRACT_PAYLOAD);
	struct ledger_entry r =
	        mk("contract.revoke", "pt-1", "pt-1",
	           "{\"cid\":\"c1\",\"revocation\":{\"cid\":\"c1\"},\"signature\":\"s\",\"jwk\":{}}");
	json_t *j;

	r.seq = 9;
	j = audit_consent_json(&c, NULL, false);
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT(no_empty_strings(j));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")), "active");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "id")), "7");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(j, "provision"), "type")),
	                       "permit");
	CU_ASSERT_EQUAL(json_array_size(json_object_get(json_object_get(j, "provision"), "class")), 1);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(json_object_get(j, "provision"), "action")), 2);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(
	                               json_object_get(json_object_get(j, "provision"), "period"), "start")),
	                       "2025-11-24T16:00:00.000Z");
	json_decref(j);
	j = audit_consent_json(&c, &r, false);
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")), "inactive");
	json_decref(j);
	j = audit_consent_json(&c, &r, true);
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "id")), "9");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")), "inactive");
	json_decref(j);
	/* not a contract */
	c = mk("contract.create", "pt-1", "pt-1", "{\"cid\":\"c1\"}");
	CU_ASSERT_PTR_NULL(audit_consent_json(&c, NULL, false));
	CU_ASSERT_PTR_NULL(audit_consent_json(&c, NULL, true));
}

static void test_search_values(void)
{
	struct audit_token t;
	struct audit_code dcm = { AUDIT_SYS_DCM, "110114", NULL };
	int64_t s = 0, u = 0;

	CU_ASSERT_FATAL(audit_fhir_token_parse(&t, "110114") == 0);
	CU_ASSERT(t.system == NULL && audit_token_matches(&t, &dcm));
	CU_ASSERT_FATAL(audit_fhir_token_parse(&t, AUDIT_SYS_DCM "|110114") == 0);
	CU_ASSERT(audit_token_matches(&t, &dcm));
	CU_ASSERT_FATAL(audit_fhir_token_parse(&t, "urn:x|110114") == 0);
	CU_ASSERT(!audit_token_matches(&t, &dcm));
	CU_ASSERT(audit_fhir_token_parse(&t, "") < 0);
	CU_ASSERT(audit_fhir_token_parse(&t, "a|") < 0);
	CU_ASSERT(audit_fhir_token_parse(&t, "a|b|c") < 0);
	/* eq of a day is that day; ge/lt narrow; a zone moves the instant */
	CU_ASSERT_FATAL(audit_fhir_date_narrow("2026-11-24", &s, &u) == 0);
	CU_ASSERT_EQUAL(s, 1795478400000LL);
	CU_ASSERT_EQUAL(u, 1795478400000LL + 86400000);
	s = u = 0;
	CU_ASSERT_FATAL(audit_fhir_date_narrow("ge2026-11-24T05:45:29.854Z", &s, &u) == 0);
	CU_ASSERT(s == 1795499129854LL && u == 0);
	CU_ASSERT_FATAL(audit_fhir_date_narrow("lt2026-11-24T06:45:29+01:00", &s, &u) == 0);
	CU_ASSERT_EQUAL(u, 1795499129000LL);
	s = u = 0;
	CU_ASSERT_FATAL(audit_fhir_date_narrow("gt2026", &s, &u) == 0);
	CU_ASSERT_EQUAL(s, 1798761600000LL); /* 2027-01-01 */
	CU_ASSERT_FATAL(audit_fhir_date_narrow("le2024-02", &s, &u) == 0);
	CU_ASSERT_EQUAL(u, 1709251200000LL); /* 2024-03-01 */
	CU_ASSERT(audit_fhir_date_narrow("2026-02-30", &s, &u) < 0);
	CU_ASSERT(audit_fhir_date_narrow("ne2026", &s, &u) < 0);
	CU_ASSERT(audit_fhir_date_narrow("2026-11-24T05:45", &s, &u) < 0); /* a time needs a zone */
	CU_ASSERT(audit_fhir_date_narrow("2026-11-24T25:00Z", &s, &u) < 0);
	CU_ASSERT(audit_fhir_date_narrow("1969", &s, &u) < 0);
	CU_ASSERT(audit_fhir_date_narrow("2026-11-24Z", &s, &u) < 0);
	CU_ASSERT(audit_fhir_date_narrow("", &s, &u) < 0);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("audit", NULL, NULL, { "table", test_table },
	              { "read_balp_shape", test_read_balp_shape }, { "query_bytes", test_query_bytes },
	              { "roles_and_holds", test_roles_and_holds }, { "outcome_rule", test_outcome_rule },
	              { "refused", test_refused }, { "consent", test_consent },
	              { "search_values", test_search_values });
}

EHR_TEST_MAIN(register_suites)
