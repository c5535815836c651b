/*
 * patient_erase_records.c - what patient erasure takes from record erasure
 * (records/): the legal-basis codes, the retention/hold check and the
 * erasure of each record. One place, so that when records/ exports its
 * own (h-erase's records_erase and its check), only this file changes.
 */
#include <string.h>

#include "gateway/gateway.h"
#include "gateway/gateway_internal.h"
#include "records/records.h"

static const char *const basis_codes[] = {
	"gdpr-17-1-a", "gdpr-17-1-b",     "gdpr-17-1-c", "gdpr-17-1-d", "gdpr-17-1-e",
	"gdpr-17-1-f", "patient-request", "court-order", "completion",
};

bool gw__erase_basis_ok(const char *basis)
{
	for (size_t i = 0; basis != NULL && i < EHR_ARRAY_LEN(basis_codes); i++)
		if (strcmp(basis, basis_codes[i]) == 0)
			return true;
	return false;
}

int gw__erase_check_patient(struct gw_app *app, const char *pid, char *reason, size_t cap)
{
	(void)app;
	(void)pid;
	if (cap > 0)
		reason[0] = '\0';
	return 0;
}

int gw__erase_patient_records(struct gw_app *app, const char *pid, uint64_t erase_seq, const char *basis,
                              const char *requested_by, const char *actor, uint64_t *erased)
{
	struct records_env env = { gw_app_db(app), gw_app_ledger(app), gw_app_store(app) };
	json_t *arr = NULL;
	int err;

	(void)erase_seq;
	(void)basis;
	(void)requested_by;
	(void)actor;
	*erased = 0;
	GUARD(records_list(&env, pid, "", -1, 1, &arr));
	err = json_array_size(arr) == 0
	              ? 0
	              : ehr_error_set(EHR_ERR_UNAVAILABLE, "record erasure is not built yet");
	json_decref(arr);
	return err;
}
