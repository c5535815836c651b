/* fuzz_dicomxml.c - audit/dicom.c on arbitrary strings: the XML escaper's
 * output must be valid UTF-8 holding only XML 1.0 characters, with no raw
 * markup character and only the entities it writes; a whole AuditMessage
 * built from an entry with arbitrary actor, subject and payload must be
 * valid UTF-8 XML characters too (or a clean error), never a crash.
 * Input: byte 0 picks the entry type; the rest is actor NUL subject NUL payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "ledger/ledger.h"

static const char *const types[] = { "ehr.read",        "ehr.store",       "ehr.erase",   "auth.register",
	                             "auth.enroll",     "auth.token",      "auth.revoke", "access.decision",
	                             "contract.create", "contract.revoke", "audit.query", "unknown.type" };

/* Valid UTF-8 of XML 1.0 characters only (TAB, LF, CR allowed). */
static int xml_utf8_ok(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len;
		if (p[i] < 0x80)
			cp = p[i], len = 1;
		else if ((p[i] & 0xE0) == 0xC0)
			cp = p[i] & 0x1F, len = 2;
		else if ((p[i] & 0xF0) == 0xE0)
			cp = p[i] & 0x0F, len = 3;
		else if ((p[i] & 0xF8) == 0xF0)
			cp = p[i] & 0x07, len = 4;
		else
			return 0;
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3F);
		}
		if ((cp < 0x20 && cp != 9 && cp != 10 && cp != 13) || (cp >= 0xD800 && cp <= 0xDFFF) ||
		    cp == 0xFFFE || cp == 0xFFFF || cp > 0x10FFFF)
			return 0;
		i += len;
	}
	return 1;
}

static void check_escape(const uint8_t *data, size_t size)
{
	struct ehr_buf out = EHR_BUF_INIT(1u << 22);
	static const char *const ents[] = { "&amp;",  "&lt;", "&gt;",  "&quot;",
		                            "&apos;", "&#9;", "&#10;", "&#13;" };

	if (audit_xml_escape(&out, data, size) < 0)
		abort();
	if (!xml_utf8_ok(out.data ? out.data : (const uint8_t *)"", out.len))
		abort();
	for (size_t i = 0; i < out.len; i++) {
		uint8_t c = out.data[i];
		int ok = 0;
		if (c == '<' || c == '>' || c == '"' || c == '\'' || c < 0x20)
			abort();
		if (c != '&')
			continue;
		for (size_t k = 0; k < sizeof(ents) / sizeof(ents[0]); k++)
			if (out.len - i >= strlen(ents[k]) &&
			    memcmp(out.data + i, ents[k], strlen(ents[k])) == 0) /* not secret */
				ok = 1;
		if (!ok)
			abort();
	}
	ehr_buf_free(&out);
}

static void take(char *dst, size_t cap, const uint8_t **p, size_t *n)
{
	size_t k = 0;

	while (*n > 0 && **p != 0 && k + 1 < cap) {
		dst[k++] = (char)**p;
		(*p)++;
		(*n)--;
	}
	dst[k] = '\0';
	if (*n > 0 && **p == 0) {
		(*p)++;
		(*n)--;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ledger_entry e;
	struct audit_event ev;
	struct ehr_buf out = EHR_BUF_INIT(1u << 22);
	const uint8_t *p = data;
	size_t n = size;

	check_escape(data, size);
	if (size < 1)
		return 0;
	memset(&e, 0, sizeof(e));
	e.seq = 7;
	e.ts_ms = 1765000000000;
	{
		const char *t = types[data[0] % (sizeof(types) / sizeof(types[0]))];
		memcpy(e.type, t, strlen(t) + 1);
	}
	p++, n--;
	take(e.actor, sizeof(e.actor), &p, &n);
	take(e.subject, sizeof(e.subject), &p, &n);
	e.payload = p;
	e.payload_len = n;
	if (audit_event_from_entry(&ev, &e, "ehrgate.local/ledger") == 0) {
		int rc = audit_dicom_xml(&out, &ev);
		if (rc == 0 && !xml_utf8_ok(out.data, out.len))
			abort();
		if (rc != 0 && rc != EHR_ERR_INVAL && rc != EHR_ERR_TOO_LARGE)
			abort();
	}
	audit_event_clear(&ev);
	ehr_buf_free(&out);
	return 0;
}
