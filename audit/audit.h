/*
 * audit.h - what a ledger entry means as an audit record (library
 * auditcore: pure, no database, no network).
 *
 * One ledger entry (struct ledger_entry and its canonical JSON payload)
 * becomes one struct audit_event: the DICOM PS3.15 A.5 event id and type
 * code, the FHIR AuditEvent type and subtypes, the IHE BALP profile it
 * follows (if any), the action code C/R/U/D/E, the outcome 0/4/8/12 by the
 * rule of docs/AUDIT.md §1, the recorded time, agents with their roles and
 * entities (patient pseudonym, record, contract, principal, query bytes).
 * ONE table (audit/event.c) maps every entry type the gateway emits.
 *
 * Renderers read the struct and nothing else: audit_fhir_json (FHIR R4
 * AuditEvent, audit/fhir.c) and the DICOM AuditMessage XML of the ATNA
 * feed. Absent fields are NULL, never "": a renderer omits them.
 */
#ifndef EHR_AUDIT_H
#define EHR_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/common.h"
#include "ledger/ledger.h"

/* Code systems (FHIR URIs; a DICOM renderer maps them to its names). */
#define AUDIT_SYS_DCM "http://dicom.nema.org/resources/ontology/DCM"
#define AUDIT_SYS_EVENT_TYPE "http://terminology.hl7.org/CodeSystem/audit-event-type"
#define AUDIT_SYS_RESTFUL "http://hl7.org/fhir/restful-interaction"
#define AUDIT_SYS_ENTITY_TYPE "http://terminology.hl7.org/CodeSystem/audit-entity-type"
#define AUDIT_SYS_OBJECT_ROLE "http://terminology.hl7.org/CodeSystem/object-role"
#define AUDIT_SYS_PARTICIPATION "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#define AUDIT_SYS_ROLE_CLASS "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
#define AUDIT_SYS_SECURITY_ROLE "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
#define AUDIT_SYS_PROVENANCE "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
#define AUDIT_SYS_RESOURCE_TYPES "http://hl7.org/fhir/resource-types"
#define AUDIT_SYS_ACT_REASON "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#define AUDIT_SYS_BALP_AUTHZ "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"
#define AUDIT_SYS_BALP_AGENT "https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes"
#define AUDIT_SYS_RFC3881_ID "urn:ietf:rfc:3881" /* ParticipantObjectIDTypeCode */
#define AUDIT_SYS_ENTRY_TYPE "urn:ehrgate:ledger-entry-type"
#define AUDIT_SYS_ACTOR "urn:ehrgate:actor"
#define AUDIT_SYS_PATIENT "urn:ehrgate:patient"
#define AUDIT_SYS_RECORD "urn:ehrgate:record"
#define AUDIT_SYS_CONTRACT "urn:ehrgate:contract"
#define AUDIT_SYS_PRINCIPAL "urn:ehrgate:principal"
#define AUDIT_SYS_GROUP "urn:ehrgate:group"
#define AUDIT_SYS_GATEWAY "urn:ehrgate:gateway"

/* The BALP canonical base; profile ids below are appended to it. */
#define AUDIT_BALP_BASE "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"

/* A coding. system and code are set on every code the module produces;
 * display may be NULL. All strings are static. */
struct audit_code {
	const char *system;
	const char *code;
	const char *display;
};

/* Outcome (DICOM EventOutcomeIndicator, FHIR audit-event-outcome). */
enum audit_outcome {
	AUDIT_OUTCOME_SUCCESS = 0, /* the action was done */
	AUDIT_OUTCOME_MINOR = 4,   /* refused because of the request: bad credential, denied */
	AUDIT_OUTCOME_SERIOUS = 8, /* a valid request the gateway failed to complete */
	AUDIT_OUTCOME_MAJOR = 12,  /* the gateway found its own data damaged (integrity) */
};

/* What an agent is in the event (which BALP slice it fills). */
enum audit_agent_kind {
	AUDIT_AGENT_USER,       /* the requesting principal (requestor) */
	AUDIT_AGENT_CLIENT,     /* the client application (its credential) */
	AUDIT_AGENT_SERVER,     /* the gateway answering */
	AUDIT_AGENT_AUTHORIZER, /* the gateway deciding (authentication, authorisation) */
	AUDIT_AGENT_ORG,        /* the requester's organisation (a medical server) */
	AUDIT_AGENT_OAUTH_USER, /* BALP OAUTHaccessTokenUse: the token's user, policy = jti */
};

struct audit_agent {
	enum audit_agent_kind kind;
	struct audit_code type; /* BALP / DICOM role of the slice */
	const char *id_system;  /* identifier system of id */
	const char *id;         /* actor pseudonym, principal id or the gateway's origin */
	const char *role;       /* ehrgate role (patient, server, auditor, operator) or NULL */
	const char *policy;     /* the access token id (urn:ietf:params:oauth:jti:...) or NULL */
	bool requestor;
};

/* What an entity is in the event. */
enum audit_entity_kind {
	AUDIT_ENTITY_PATIENT,   /* the patient pseudonym */
	AUDIT_ENTITY_DATA,      /* the object acted on: record, contract, patient record */
	AUDIT_ENTITY_CONSENT,   /* the contract an access decision used (BALP AuthZconsent) */
	AUDIT_ENTITY_PRINCIPAL, /* a credential holder (registration, renewal, revocation) */
	AUDIT_ENTITY_QUERY,     /* the raw query of an audit query */
};

struct audit_entity {
	enum audit_entity_kind kind;
	struct audit_code type;    /* audit-entity-type (1 person, 2 system object) or resource-types */
	struct audit_code role;    /* object-role (1 patient, 4 domain resource, 13 security, 24 query) */
	struct audit_code id_type; /* RFC 3881 ParticipantObjectIDTypeCode (DICOM) */
	const char *ref_type;      /* FHIR resource type of what, e.g. "Patient", or NULL */
	const char *id_system;     /* identifier system, NULL for a query */
	const char *id;            /* identifier value, NULL for a query */
	const char *name;          /* short description (e.g. record kind), or NULL */
	const uint8_t *query;      /* QUERY only: the raw query bytes (renderers base64 them) */
	size_t query_len;
};

#define AUDIT_MAX_SUBTYPES 3
#define AUDIT_MAX_AGENTS 6
#define AUDIT_MAX_ENTITIES 5
#define AUDIT_MAX_PROFILES 2
#define AUDIT_POLICY_MAX 128

struct audit_event {
	uint64_t seq;                    /* the ledger seq: AuditEvent.id, ATNA structured data */
	int64_t ts_ms;                   /* recorded */
	const char *entry_type;          /* the ledger entry type */
	struct audit_code dicom;         /* DICOM EventID */
	struct audit_code dicom_subtype; /* DICOM EventTypeCode; system NULL when none */
	struct audit_code type; /* FHIR AuditEvent.type (BALP REST profiles: audit-event-type#rest) */
	struct audit_code subtype[AUDIT_MAX_SUBTYPES]; /* FHIR subtypes; the last is the entry type */
	size_t n_subtype;
	char action; /* 'C' 'R' 'U' 'D' 'E' */
	enum audit_outcome outcome;
	const char *outcome_desc;                /* why (payload reason), or NULL */
	struct audit_code purpose;               /* purposeOfEvent; system NULL when none */
	const char *profile[AUDIT_MAX_PROFILES]; /* BALP profile ids (after AUDIT_BALP_BASE) */
	size_t n_profile;
	const char *observer; /* the gateway (ledger origin): source.observer */
	struct audit_agent agent[AUDIT_MAX_AGENTS];
	size_t n_agent;
	struct audit_entity entity[AUDIT_MAX_ENTITIES];
	size_t n_entity;
	/* private */
	json_t *payload_; /* parsed payload; the strings above point into it */
	char policy_[AUDIT_POLICY_MAX];
};

/*
 * The audit event of ledger entry e, seen by the gateway `observer` (its
 * ledger origin, non-empty). The event points into e (type, actor,
 * subject) and into its own parsed payload: e must outlive it. Returns 0,
 * or EHR_ERR_INVAL/EHR_ERR_PARSE for an entry whose payload is not a JSON
 * object. Always pair with audit_event_clear.
 */
int audit_event_from_entry(struct audit_event *ev, const struct ledger_entry *e, const char *observer);
void audit_event_clear(struct audit_event *ev);

/* True if the event declares BALP profile id (e.g. "IHE.BasicAudit.PatientRead"). */
bool audit_event_has_profile(const struct audit_event *ev, const char *profile);

/*
 * The FHIR R4 AuditEvent (http://hl7.org/fhir/R4/auditevent.html) of ev,
 * with meta.profile per BALP. No empty string anywhere: absent fields are
 * omitted. NULL only when out of memory.
 */
json_t *audit_fhir_json(const struct audit_event *ev);

/*
 * The DICOM PS3.15 A.5.1 AuditMessage XML of ev (audit/dicom.c), appended
 * to out: the MSG of the ATNA feed (IHE ITI-20). Well-formed UTF-8 XML 1.0
 * whatever the strings hold (see audit_xml_escape). EHR_ERR_INVAL for an
 * event without observer or DICOM EventID; EHR_ERR_TOO_LARGE past out's max.
 */
int audit_dicom_xml(struct ehr_buf *out, const struct audit_event *ev);
/* XML text of s[0..n) for element content or a "-quoted attribute: & < > " '
 * escaped, TAB/LF/CR as character references, and invalid UTF-8 or a
 * character XML 1.0 forbids replaced by U+FFFD. */
int audit_xml_escape(struct ehr_buf *out, const void *s, size_t n);

#endif
