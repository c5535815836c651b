/*
 * dicom.c - struct audit_event as the DICOM PS3.15 A.5.1 AuditMessage XML
 * (the RFC 3881 successor the IHE ATNA feed carries, ITI-20).
 *
 * Element order follows the A.5.1 schema: EventIdentification (EventID,
 * EventTypeCode*, EventOutcomeDescription?, PurposeOfUse*),
 * ActiveParticipant+ (RoleIDCode*), AuditSourceIdentification
 * (AuditSourceTypeCode), ParticipantObjectIdentification*
 * (ParticipantObjectIDTypeCode, ParticipantObjectName | ParticipantObjectQuery).
 * Coded values are csd-code / codeSystemName / originalText (+ displayName).
 *
 * Every text goes through one escaper that also guarantees well-formed
 * UTF-8 XML 1.0: invalid UTF-8 and characters XML 1.0 forbids (C0 controls
 * other than TAB, LF, CR; U+FFFE, U+FFFF) become U+FFFD; TAB, LF and CR are
 * character references so attribute normalisation keeps them.
 */
#include <string.h>

#include "audit/audit.h"

#define REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD */

/* Length of the valid UTF-8 sequence at p (n bytes left) and its code point;
 * 0 when invalid (overlong, surrogate, past U+10FFFF, truncated). */
static size_t utf8_next(const uint8_t *p, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t min;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if ((p[0] & 0xE0) == 0xC0) {
		len = 2, min = 0x80, *cp = p[0] & 0x1F;
	} else if ((p[0] & 0xF0) == 0xE0) {
		len = 3, min = 0x800, *cp = p[0] & 0x0F;
	} else if ((p[0] & 0xF8) == 0xF0) {
		len = 4, min = 0x10000, *cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (p[i] & 0x3F);
	}
	if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
		return 0;
	return len;
}

static bool xml_char_ok(uint32_t cp)
{
	return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp != 0xFFFE && cp != 0xFFFF);
}

/* Escaped text of s[0..n) for an attribute value or element content. */
int audit_xml_escape(struct ehr_buf *out, const void *s, size_t n)
{
	const uint8_t *p = s;

	while (n > 0) {
		uint32_t cp;
		size_t len = utf8_next(p, n, &cp);

		if (len == 0 || !xml_char_ok(cp)) {
			GUARD(ehr_buf_append_str(out, REPLACEMENT));
			len = len ? len : 1;
		} else {
			switch (cp) {
			case '&': GUARD(ehr_buf_append_str(out, "&amp;")); break;
			case '<': GUARD(ehr_buf_append_str(out, "&lt;")); break;
			case '>': GUARD(ehr_buf_append_str(out, "&gt;")); break;
			case '"': GUARD(ehr_buf_append_str(out, "&quot;")); break;
			case '\'': GUARD(ehr_buf_append_str(out, "&apos;")); break;
			case 0x9: GUARD(ehr_buf_append_str(out, "&#9;")); break;
			case 0xA: GUARD(ehr_buf_append_str(out, "&#10;")); break;
			case 0xD: GUARD(ehr_buf_append_str(out, "&#13;")); break;
			default: GUARD(ehr_buf_append(out, p, len)); break;
			}
		}
		p += len;
		n -= len;
	}
	return 0;
}

static int attr(struct ehr_buf *out, const char *name, const char *v)
{
	if (v == NULL || *v == '\0')
		return 0; /* absent, never "" */
	GUARD(ehr_buf_printf(out, " %s=\"", name));
	GUARD(audit_xml_escape(out, v, strlen(v)));
	return ehr_buf_append_u8(out, '"');
}

/* DICOM names the code systems it defines; others keep their URI. */
static const char *system_name(const char *system)
{
	if (strcmp(system, AUDIT_SYS_DCM) == 0)
		return "DCM";
	if (strcmp(system, AUDIT_SYS_RFC3881_ID) == 0)
		return "RFC-3881";
	return system;
}

/* <tag csd-code codeSystemName originalText [displayName]/>; nothing when
 * the code is absent. originalText is required: the display, else the code. */
static int coded(struct ehr_buf *out, const char *tag, const struct audit_code *c)
{
	if (c->system == NULL || c->code == NULL)
		return 0;
	GUARD(ehr_buf_printf(out, "<%s", tag));
	GUARD(attr(out, "csd-code", c->code));
	GUARD(attr(out, "codeSystemName", system_name(c->system)));
	GUARD(attr(out, "originalText", c->display ? c->display : c->code));
	return ehr_buf_append_str(out, "/>");
}

static bool same_code(const struct audit_code *a, const struct audit_code *b)
{
	return a->system && b->system && a->code && b->code && strcmp(a->system, b->system) == 0 &&
	       strcmp(a->code, b->code) == 0;
}

static int event_identification(struct ehr_buf *out, const struct audit_event *ev)
{
	char ts[32], action[2] = { ev->action, '\0' };

	ehr_time_rfc3339(ts, ev->ts_ms);
	ENSURE(ts[0] != '\0' && ev->dicom.code != NULL, EHR_ERR_INVAL);
	GUARD(ehr_buf_append_str(out, "<EventIdentification"));
	GUARD(attr(out, "EventActionCode", action));
	GUARD(attr(out, "EventDateTime", ts));
	GUARD(ehr_buf_printf(out, " EventOutcomeIndicator=\"%d\">", (int)ev->outcome));
	GUARD(coded(out, "EventID", &ev->dicom));
	GUARD(coded(out, "EventTypeCode", &ev->dicom_subtype));
	for (size_t i = 0; i < ev->n_subtype; i++)
		if (!same_code(&ev->subtype[i], &ev->dicom_subtype))
			GUARD(coded(out, "EventTypeCode", &ev->subtype[i]));
	if (ev->outcome_desc && *ev->outcome_desc) {
		GUARD(ehr_buf_append_str(out, "<EventOutcomeDescription>"));
		GUARD(audit_xml_escape(out, ev->outcome_desc, strlen(ev->outcome_desc)));
		GUARD(ehr_buf_append_str(out, "</EventOutcomeDescription>"));
	}
	GUARD(coded(out, "PurposeOfUse", &ev->purpose));
	return ehr_buf_append_str(out, "</EventIdentification>");
}

static int active_participant(struct ehr_buf *out, const struct audit_agent *a)
{
	if (a->id == NULL || *a->id == '\0')
		return 0; /* UserID is required */
	GUARD(ehr_buf_append_str(out, "<ActiveParticipant"));
	GUARD(attr(out, "UserID", a->id));
	GUARD(attr(out, "AlternativeUserID", a->policy));
	GUARD(attr(out, "UserName", a->role));
	GUARD(attr(out, "UserIsRequestor", a->requestor ? "true" : "false"));
	GUARD(ehr_buf_append_u8(out, '>'));
	GUARD(coded(out, "RoleIDCode", &a->type));
	return ehr_buf_append_str(out, "</ActiveParticipant>");
}

/* RFC 3881 ParticipantObjectTypeCode: 1 person, 2 system object. */
static const char *object_type_code(const struct audit_entity *en)
{
	if (en->type.system && strcmp(en->type.system, AUDIT_SYS_ENTITY_TYPE) == 0)
		return en->type.code;
	return en->kind == AUDIT_ENTITY_PATIENT ? "1" : "2";
}

static int participant_object(struct ehr_buf *out, const struct audit_event *ev,
                              const struct audit_entity *en)
{
	const char *id = en->id && *en->id ? en->id : ev->entry_type; /* a query has no id of its own */

	GUARD(ehr_buf_append_str(out, "<ParticipantObjectIdentification"));
	GUARD(attr(out, "ParticipantObjectID", id));
	GUARD(attr(out, "ParticipantObjectTypeCode", object_type_code(en)));
	if (en->role.system && strcmp(en->role.system, AUDIT_SYS_OBJECT_ROLE) == 0)
		GUARD(attr(out, "ParticipantObjectTypeCodeRole", en->role.code));
	GUARD(ehr_buf_append_u8(out, '>'));
	GUARD(coded(out, "ParticipantObjectIDTypeCode", &en->id_type));
	if (en->kind == AUDIT_ENTITY_QUERY && en->query != NULL) {
		GUARD(ehr_buf_append_str(out, "<ParticipantObjectQuery>"));
		GUARD(ehr_b64_encode(out, en->query, en->query_len));
		GUARD(ehr_buf_append_str(out, "</ParticipantObjectQuery>"));
	} else if (en->name && *en->name) {
		GUARD(ehr_buf_append_str(out, "<ParticipantObjectName>"));
		GUARD(audit_xml_escape(out, en->name, strlen(en->name)));
		GUARD(ehr_buf_append_str(out, "</ParticipantObjectName>"));
	}
	return ehr_buf_append_str(out, "</ParticipantObjectIdentification>");
}

int audit_dicom_xml(struct ehr_buf *out, const struct audit_event *ev)
{
	static const struct audit_code source_type = { AUDIT_SYS_DCM, "4", "Application Server" };

	ENSURE(ev->observer != NULL && *ev->observer != '\0', EHR_ERR_INVAL);
	GUARD(ehr_buf_append_str(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><AuditMessage>"));
	GUARD(event_identification(out, ev));
	for (size_t i = 0; i < ev->n_agent; i++)
		GUARD(active_participant(out, &ev->agent[i]));
	GUARD(ehr_buf_append_str(out, "<AuditSourceIdentification"));
	GUARD(attr(out, "AuditSourceID", ev->observer));
	GUARD(ehr_buf_append_u8(out, '>'));
	GUARD(coded(out, "AuditSourceTypeCode", &source_type));
	GUARD(ehr_buf_append_str(out, "</AuditSourceIdentification>"));
	for (size_t i = 0; i < ev->n_entity; i++)
		GUARD(participant_object(out, ev, &ev->entity[i]));
	return ehr_buf_append_str(out, "</AuditMessage>");
}
