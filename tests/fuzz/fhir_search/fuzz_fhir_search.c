/*
 * fuzz_fhir_search.c - the FHIR search values of GET /fhir/AuditEvent
 * (audit/search.c): token and date parameters straight from the query
 * string. Invariants: no crash, a parsed token has a non-empty code, a
 * date narrows to a range that is never inverted by one value alone.
 */
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct audit_token t;
	int64_t since = 0, until = 0;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (audit_fhir_token_parse(&t, s) == 0 && (t.code == NULL || *t.code == '\0'))
		abort();
	if (audit_fhir_date_narrow(s, &since, &until) == 0 && since < 0)
		abort();
	if (since > 0 && until > 0 && since > until && strncmp(s, "eq", 2) == 0)
		abort();
	free(s);
	return 0;
}
