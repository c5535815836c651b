/*
 * routes_fhir.c - the FHIR R4 face of the audit trail (docs/AUDIT.md §2):
 * GET /fhir/metadata (CapabilityStatement), GET /fhir/AuditEvent (search,
 * IHE ITI-81 style: a Bundle searchset with paging links) and
 * GET /fhir/AuditEvent/{seq}; the Consent routes are in
 * routes_fhir_consent.c. Every refusal on /fhir is an OperationOutcome
 * (gw_fhir_error_render, the engine's error hook).
 *
 * The AuditEvents are audit/'s rendering of ledger entries (audit.h), the
 * same as /v1/audit/entries with Accept: application/fhir+json.
 */
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "gateway/gateway_internal.h"
#include "gateway/routes_audit_internal.h"
#include "gateway/routes_fhir_internal.h"

#define FHIR_PAGE_DEFAULT 100
#define FHIR_PAGE_MAX 1000
#define FHIR_BATCH 500
#define FHIR_SCAN_MAX 20000 /* entries looked at per page before a short page */

/* ------------------------------------------------------ OperationOutcome */

static bool fhir_path(const char *p)
{
	return p && (strcmp(p, "/fhir") == 0 || strncmp(p, "/fhir/", 6) == 0);
}

/* FHIR issue-type (http://hl7.org/fhir/R4/valueset-issue-type.html) of a status. */
static const char *issue_type(int status)
{
	switch (status) {
	case 400: return "invalid";
	case 401: return "login";
	case 403: return "forbidden";
	case 404: return "not-found";
	case 405:
	case 406:
	case 415: return "not-supported";
	case 410: return "deleted";
	case 413: return "too-long";
	case 422: return "processing";
	case 429: return "throttled";
	case 503: return "transient";
	case 504: return "timeout";
	default: return "exception";
	}
}

/* gw_error_fn: refusals on /fhir are OperationOutcomes; the gateway's error
 * code is a coding of details (urn:ehrgate:error), the message its text. */
char *gw_fhir_error_render(const struct gw_req *r, int status, const char *code, const char *message,
                           const char **content_type)
{
	json_t *details, *o;
	char *text;

	if (!fhir_path(gw_req_path(r)))
		return NULL;
	details = json_pack("{s:[{s:s, s:s}]}", "coding", "system", "urn:ehrgate:error", "code",
	                    code && *code ? code : "error");
	if (details && message && *message)
		json_object_set_new(details, "text", json_string(message));
	o = json_pack("{s:s, s:[{s:s, s:s, s:o}]}", "resourceType", "OperationOutcome", "issue", "severity",
	              status >= 500 ? "fatal" : "error", "code", issue_type(status), "details", details);
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	*content_type = GW_FHIR_CT;
	return text;
}

void gw__fhir_reply(struct gw_req *r, int status, json_t *resource)
{
	char *text = resource ? json_dumps(resource, JSON_COMPACT) : NULL;

	json_decref(resource);
	if (text == NULL) {
		gw_reply_error(r, 500, "internal_error", "cannot encode the reply");
		return;
	}
	gw_reply_bytes(r, status, GW_FHIR_CT, text, strlen(text));
	free(text);
}

/* ------------------------------------------------------------ metadata */

static json_t *search_param(const char *name, const char *type, const char *doc)
{
	return json_pack("{s:s, s:s, s:s}", "name", name, "type", type, "documentation", doc);
}

static void h_metadata(struct gw_req *r)
{
	static const char *const profiles[] = {
		"IHE.BasicAudit.PatientRead",
		"IHE.BasicAudit.PatientCreate",
		"IHE.BasicAudit.PatientUpdate",
		"IHE.BasicAudit.PatientDelete",
		"IHE.BasicAudit.Query",
		"IHE.BasicAudit.AuthZconsent",
		"IHE.BasicAudit.OAUTHaccessTokenUse.Minimal",
	};
	json_t *prof = json_array(), *cs;

	for (size_t i = 0; prof && i < EHR_ARRAY_LEN(profiles); i++) {
		char url[160];
		if (ehr_fmt(url, sizeof(url), "%s%s", AUDIT_BALP_BASE, profiles[i]) == 0)
			json_array_append_new(prof, json_string(url));
	}
	cs = json_pack(
	        "{s:s, s:s, s:s, s:s, s:{s:s}, s:{s:s}, s:s, s:[s], s:[{s:s, s:{s:s}, s:[{s:s, s:o, "
	        "s:[{s:s},{s:s}], s:[o,o,o,o,o,o,o]}, {s:s, s:[{s:s},{s:s}], s:[o]}]}]}",
	        "resourceType", "CapabilityStatement", "status", "active", "date", "2026-12-06", "kind",
	        "instance", "software", "name", "ehrgate", "implementation", "description",
	        "ehrgate audit trail (IHE BALP AuditEvents) and patient contracts (Consent)", "fhirVersion",
	        "4.0.1", "format", GW_FHIR_CT, "rest", "mode", "server", "security", "description",
	        "Mutual TLS with an auditor certificate; a patient (DPoP-bound access token) reads its "
	        "own Consents",
	        "resource", "type", "AuditEvent", "supportedProfile", prof, "interaction", "code", "read",
	        "code", "search-type", "searchParam",
	        search_param("date", "date", "AuditEvent.recorded; eq ge gt le lt; may repeat"),
	        search_param("patient", "reference", "the patient pseudonym (a bare id)"),
	        search_param("agent", "reference", "the actor pseudonym or id (a bare id)"),
	        search_param("entity", "reference",
	                     "any entity identifier: patient, record, contract, principal"),
	        search_param("type", "token", "AuditEvent.type, [system|]code"),
	        search_param("subtype", "token",
	                     "any AuditEvent.subtype; urn:ehrgate:ledger-entry-type|T is indexed"),
	        search_param("outcome", "token", "0, 4, 8 or 12"), "type", "Consent", "interaction", "code",
	        "read", "code", "search-type", "searchParam",
	        search_param("patient", "reference", "the patient pseudonym (a bare id)"));
	gw__fhir_reply(r, 200, cs);
}

/* ------------------------------------------------------------ search */

struct fhir_page {
	struct gw_app *app;
	const char *origin;
	const struct audit_filter *filter;
	json_t *entries;
	unsigned want, n, batch_rows, extra;
	uint64_t last_added, batch_last;
	int err;
};

static int page_entry(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct fhir_page *p = ctx;
	struct audit_event ev;
	json_t *res;
	int err;

	(void)raw;
	(void)raw_len;
	p->batch_rows++;
	p->batch_last = e->seq;
	if (p->n >= p->want) {
		p->extra++;
		return 0;
	}
	GUARD(audit_event_from_entry(&ev, e, p->origin));
	if (!audit_event_matches(&ev, p->filter)) {
		audit_event_clear(&ev);
		return 0;
	}
	res = audit_fhir_json(&ev);
	audit_event_clear(&ev);
	err = res ? json_array_append_new(p->entries, json_pack("{s:o, s:{s:s}}", "resource", res, "search",
	                                                        "mode", "match"))
	          : -1;
	if (err < 0)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	p->n++;
	p->last_added = e->seq;
	return 0;
}

/* The query parameters of this search again (for Bundle.link), percent-
 * encoded, with _cursor last when given. */
static int search_url(struct ehr_buf *out, struct gw_req *r, const char *cursor)
{
	static const char *const keys[] = { "date", "patient", "agent",   "entity",
		                            "type", "subtype", "outcome", "_count" };
	char sep = '?';

	GUARD(ehr_buf_append_str(out, "/fhir/AuditEvent"));
	for (size_t i = 0; i < EHR_ARRAY_LEN(keys); i++) {
		const char *v;
		for (size_t k = 0; (v = gw_req_query_nth(r, keys[i], k)) != NULL; k++) {
			GUARD(ehr_buf_printf(out, "%c%s=", sep, keys[i]));
			sep = '&';
			GUARD(gw__url_encode(out, v));
		}
	}
	if (cursor)
		GUARD(ehr_buf_printf(out, "%c_cursor=%s", sep, cursor));
	return 0;
}

/* The search's parameters into q and f; 400 (OperationOutcome) and false if
 * one is bad. */
static bool search_params(struct gw_req *r, struct ledger_query *q, struct audit_filter *f,
                          struct audit_token *type, struct audit_token *subtype, uint64_t *count,
                          uint64_t *cursor)
{
	const char *v;
	int64_t since = 0, until = 0;

	if (!gw__audit_query_u64(r, "_count", count, FHIR_PAGE_DEFAULT, FHIR_PAGE_MAX) ||
	    !gw__audit_query_u64(r, "_cursor", cursor, 0, INT64_MAX))
		return false;
	if (*count == 0) {
		gw_reply_error(r, 400, "invalid_request", "_count must be 1..%d", FHIR_PAGE_MAX);
		return false;
	}
	for (size_t i = 0; (v = gw_req_query_nth(r, "date", i)) != NULL; i++)
		if (audit_fhir_date_narrow(v, &since, &until) < 0) {
			gw_reply_error(r, 400, "invalid_request", "%s", ehr_error_msg());
			return false;
		}
	q->since_ms = since;
	q->until_ms = until;
	q->subject = gw_req_query(r, "patient");
	q->actor = gw_req_query(r, "agent");
	f->entity = gw_req_query(r, "entity");
	f->outcome = -1;
	if ((v = gw_req_query(r, "type")) != NULL) {
		if (audit_fhir_token_parse(type, v) < 0) {
			gw_reply_error(r, 400, "invalid_request", "type: %s", ehr_error_msg());
			return false;
		}
		f->type = type;
	}
	if ((v = gw_req_query(r, "subtype")) != NULL) {
		if (audit_fhir_token_parse(subtype, v) < 0) {
			gw_reply_error(r, 400, "invalid_request", "subtype: %s", ehr_error_msg());
			return false;
		}
		f->subtype = subtype;
		if (subtype->system && strcmp(subtype->system, AUDIT_SYS_ENTRY_TYPE) == 0)
			q->type = subtype->code; /* the (type, seq) index */
	}
	if ((v = gw_req_query(r, "outcome")) != NULL) {
		struct audit_token o;
		if (audit_fhir_token_parse(&o, v) < 0 ||
		    (o.system &&
		     strcmp(o.system, "http://terminology.hl7.org/CodeSystem/audit-event-outcome") != 0) ||
		    (strcmp(o.code, "0") != 0 && strcmp(o.code, "4") != 0 && strcmp(o.code, "8") != 0 &&
		     strcmp(o.code, "12") != 0)) {
			gw_reply_error(r, 400, "invalid_request", "outcome must be 0, 4, 8 or 12");
			return false;
		}
		f->outcome = (int)strtol(o.code, NULL, 10);
	}
	return true;
}

/* Walk the ledger from from_seq in batches until the page is full, the
 * ledger ends, or FHIR_SCAN_MAX entries were looked at (a short page: its
 * next link resumes where the scan stopped). */
static int search_walk(struct fhir_page *p, struct ledger_query q, uint64_t *next, bool *more)
{
	unsigned scanned = 0;

	*more = false;
	for (;;) {
		q.limit = FHIR_BATCH;
		p->batch_rows = 0;
		GUARD(ledger_query(gw_app_ledger(p->app), &q, page_entry, p));
		scanned += p->batch_rows;
		if (p->batch_rows < FHIR_BATCH) { /* the ledger ends here */
			*more = p->extra > 0;
			*next = p->last_added + 1;
			return 0;
		}
		if (p->n >= p->want) {
			*more = true;
			*next = p->last_added + 1;
			return 0;
		}
		q.from_seq = p->batch_last + 1;
		if (scanned >= FHIR_SCAN_MAX) {
			*more = true;
			*next = q.from_seq;
			return 0;
		}
	}
}

static void audit_search(struct gw_req *r, struct gw_audit_query_info *info)
{
	struct gw_app *app = gw_req_app(r);
	struct audit_token type, subtype;
	struct audit_filter f = { 0 };
	struct ledger_query q = { 0 };
	struct fhir_page p = { 0 };
	struct ehr_buf self = EHR_BUF_INIT(4096), nexturl = EHR_BUF_INIT(4096);
	uint64_t count, cursor, next = 0, s;
	char nx[24];
	bool more = false;
	json_t *bundle = NULL;
	int err = 0;

	if (!search_params(r, &q, &f, &type, &subtype, &count, &cursor))
		return;
	info->subject = q.subject;
	q.from_seq = cursor;
	if (q.since_ms > 0) {
		GUARD_GOTO(gw__audit_seq_from_time(app, q.since_ms, &s));
		if (s > q.from_seq)
			q.from_seq = s;
	}
	p.app = app;
	p.origin = ledger_origin(gw_app_ledger(app));
	p.filter = &f;
	p.want = (unsigned)count;
	p.entries = json_array();
	ENSURE_GOTO(p.entries != NULL, EHR_ERR_NOMEM);
	if (q.from_seq != UINT64_MAX && !(q.until_ms && q.since_ms >= q.until_ms))
		GUARD_GOTO(search_walk(&p, q, &next, &more));
	GUARD_GOTO(search_url(&self, r, gw_req_query(r, "_cursor")));
	bundle = json_pack("{s:s, s:s, s:[{s:s, s:s}], s:O}", "resourceType", "Bundle", "type", "searchset",
	                   "link", "relation", "self", "url", ehr_buf_cstr(&self), "entry", p.entries);
	ENSURE_GOTO(bundle != NULL, EHR_ERR_NOMEM);
	if (more) {
		GUARD_GOTO(ehr_fmt(nx, sizeof(nx), "%llu", (unsigned long long)next));
		GUARD_GOTO(search_url(&nexturl, r, nx));
		json_array_append_new(
		        json_object_get(bundle, "link"),
		        json_pack("{s:s, s:s}", "relation", "next", "url", ehr_buf_cstr(&nexturl)));
	}
	if (json_array_size(p.entries) == 0)
		json_object_del(bundle, "entry"); /* R4: no empty arrays */
	info->count = (long long)json_array_size(p.entries);
	gw__fhir_reply(r, 200, bundle);
	bundle = NULL;
out:
	if (err < 0)
		gw_reply_err(r, err);
	json_decref(bundle);
	json_decref(p.entries);
	ehr_buf_free(&self);
	ehr_buf_free(&nexturl);
}

/* ------------------------------------------------------------ read */

struct one {
	const char *origin;
	json_t *res;
	int err;
};

static int one_entry(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct one *o = ctx;
	struct audit_event ev;

	(void)raw;
	(void)raw_len;
	GUARD(audit_event_from_entry(&ev, e, o->origin));
	o->res = audit_fhir_json(&ev);
	audit_event_clear(&ev);
	return o->res ? 0 : ehr_error_set(EHR_ERR_NOMEM, "out of memory");
}

static void audit_read(struct gw_req *r, struct gw_audit_query_info *info)
{
	struct ledger *l = gw_app_ledger(gw_req_app(r));
	struct one o = { ledger_origin(l), NULL, 0 };
	uint64_t seq;
	struct ledger_query q = { 0 };
	int err;

	(void)info; /* a read by id: no count, no patient filter */
	if (ehr_parse_u64(&seq, gw_req_param(r, "seq"), INT64_MAX - 1) < 0) {
		gw_reply_error(r, 404, "not_found", "no such AuditEvent");
		return;
	}
	q.from_seq = seq;
	q.to_seq = seq + 1;
	q.limit = 1;
	if ((err = ledger_query(l, &q, one_entry, &o)) < 0) {
		json_decref(o.res);
		gw_reply_err(r, err);
		return;
	}
	if (o.res == NULL) {
		gw_reply_error(r, 404, "not_found", "no such AuditEvent");
		return;
	}
	gw__fhir_reply(r, 200, o.res);
}

/* ------------------------------------------------------------- table */

/* The AuditEvent and Consent reads are audit reads: each request, refused
 * or not, is one audit.query entry (docs/AUDIT.md §7), its query and id
 * checks run inside the recorder (GW_CHECK_IN_HANDLER) so a 400 is one too. */
static void h_audit_search(struct gw_req *r)
{
	gw_audit_query_run(r, audit_search);
}

static void h_audit_read(struct gw_req *r)
{
	gw_audit_query_run(r, audit_read);
}

static void h_consent_search(struct gw_req *r)
{
	gw_audit_query_run(r, gw__fhir_consent_search);
}

static void h_consent_read(struct gw_req *r)
{
	gw_audit_query_run(r, gw__fhir_consent_read);
}

#define AUD GW_ROLE_AUDITOR
#define PAT GW_ROLE_PATIENT
#define AQ (GW_BLOCKING | GW_CHECK_IN_HANDLER)

const struct gw_route gw_routes_fhir[] = {
	{ "GET", "/fhir/metadata", "fhir.metadata", 0, GW_BLOCKING, h_metadata, NULL },
	{ "GET", "/fhir/AuditEvent", "fhir.auditevent.search", AUD, AQ, h_audit_search,
	  "date* patient agent entity type subtype outcome _count _cursor" },
	{ "GET", "/fhir/AuditEvent/{seq}", "fhir.auditevent.read", AUD, AQ, h_audit_read, NULL },
	{ "GET", "/fhir/Consent", "fhir.consent.search", AUD | PAT, AQ, h_consent_search,
	  "patient _count _cursor" },
	{ "GET", "/fhir/Consent/{seq}", "fhir.consent.read", AUD | PAT, AQ, h_consent_read, NULL },
};
const size_t gw_routes_fhir_len = EHR_ARRAY_LEN(gw_routes_fhir);
