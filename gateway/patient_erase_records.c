/*
 * patient_erase_records.c - what patient erasure takes from record erasure
 * (records/): the legal-basis codes, the retention/hold check and the
 * erasure of each record, all through records/' own functions and the
 * gateway's one [retention] reader, so a patient erasure refuses and
 * erases exactly as record erasures do.
 */
#include <string.h>

#include "gateway/gateway.h"
#include "gateway/gateway_internal.h"
#include "records/records.h"

static struct records_env env_of(struct gw_app *app)
{
	return (struct records_env){ gw_app_db(app), gw_app_ledger(app), gw_app_store(app) };
}

bool gw__erase_basis_ok(const char *basis)
{
	return records_erase_basis_ok(basis);
}

int gw__erase_check_patient(struct gw_app *app, const char *pid, struct records_refusal *why)
{
	struct records_env env = env_of(app);
	struct records_retention ret;

	memset(why, 0, sizeof(*why));
	GUARD(gw_retention_from_config(gw_app_config(app), &ret));
	return records_erase_check(&env, pid, NULL, &ret, why);
}

/* One page of the patient's records, each erased (or found erased). */
static int erase_page(struct gw_app *app, const struct records_retention *ret, const char *pid,
                      const char *basis, const char *actor, int64_t *after_ms, uint64_t *erased, size_t *seen)
{
	struct records_env env = env_of(app);
	json_t *arr = NULL, *v;
	size_t i;
	int err = 0;

	GUARD(records_list(&env, pid, "", *after_ms, RECORDS_LIST_MAX, &arr));
	*seen = json_array_size(arr);
	json_array_foreach(arr, i, v)
	{
		struct records_erase_in in = {
			.record_id = json_string_value(json_object_get(v, "record_id")),
			.patient = NULL, /* the patient's own erasure names every record of theirs */
			.actor = actor,
			.requested_by = RECORDS_BY_PATIENT_ERASURE,
			.basis = basis,
			.retention = ret,
		};
		struct records_erase_out out;
		json_int_t created = json_integer_value(json_object_get(v, "created_ms"));

		if (created > *after_ms)
			*after_ms = created;
		if ((err = records_erase(&env, &in, &out)) < 0)
			break;
		if (!out.was_erased)
			(*erased)++;
	}
	json_decref(arr);
	return err;
}

int gw__erase_patient_records(struct gw_app *app, const char *pid, const char *basis,
                              const char *requested_by, const char *actor, uint64_t *erased)
{
	struct records_retention ret;
	int64_t after_ms = -1;
	size_t seen;

	(void)requested_by;
	*erased = 0;
	GUARD(gw_retention_from_config(gw_app_config(app), &ret));
	do {
		GUARD(erase_page(app, &ret, pid, basis, actor, &after_ms, erased, &seen));
	} while (seen == RECORDS_LIST_MAX);
	return 0;
}
