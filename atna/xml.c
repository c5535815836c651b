/*
 * xml.c - provisional AuditMessage of one entry, until audit/dicom.c
 * renders it from struct audit_event.
 */
#include "atna/atna_internal.h"

#include <string.h>

#include "ledger/ledger.h"

static int xml_attr(struct ehr_buf *out, const char *name, const char *v)
{
	GUARD(ehr_buf_printf(out, " %s=\"", name));
	for (const char *p = v; *p; p++) {
		switch (*p) {
		case '&': GUARD(ehr_buf_append_str(out, "&amp;")); break;
		case '<': GUARD(ehr_buf_append_str(out, "&lt;")); break;
		case '>': GUARD(ehr_buf_append_str(out, "&gt;")); break;
		case '"': GUARD(ehr_buf_append_str(out, "&quot;")); break;
		default: GUARD(ehr_buf_append_u8(out, (uint8_t)*p)); break;
		}
	}
	return ehr_buf_append_u8(out, '"');
}

int atna__xml(struct ehr_buf *out, int *outcome, const struct ledger_entry *e, const char *source_id)
{
	char ts[32];

	*outcome = 0;
	ehr_time_rfc3339(ts, e->ts_ms);
	GUARD(ehr_buf_append_str(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><AuditMessage>"
	                              "<EventIdentification EventActionCode=\"E\""));
	GUARD(xml_attr(out, "EventDateTime", ts));
	GUARD(ehr_buf_append_str(out, " EventOutcomeIndicator=\"0\"><EventID csd-code=\"110100\" "
	                              "codeSystemName=\"DCM\" originalText=\"Application Activity\"/>"
	                              "</EventIdentification><ActiveParticipant"));
	GUARD(xml_attr(out, "UserID", e->actor));
	GUARD(ehr_buf_append_str(out, " UserIsRequestor=\"true\"/><AuditSourceIdentification"));
	GUARD(xml_attr(out, "AuditSourceID", source_id));
	GUARD(ehr_buf_append_str(out, "/></AuditMessage>"));
	return 0;
}
