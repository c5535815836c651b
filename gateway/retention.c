/*
 * retention.c - [retention] of the config as the record service's
 * minimum retention periods (docs/ERASURE.md §6, docs/OPERATIONS.md):
 *
 *   [retention]
 *   default_period = 0                   ; 0 = none; N, Nd (days) or Ny (365-day years)
 *   categories = lab=10y, imaging=30y    ; per category, overriding the default
 */
#include "gateway/gateway.h"

#include <string.h>

#include "records/records.h"

#define RETENTION_MAX_DAYS (200LL * 365)

/* "0", "N" or "Nd" days, "Ny" years of 365 days; at most 200 years. */
static int period_parse(int64_t *out, const char *s, size_t n)
{
	char num[24];
	int64_t days = 0, mult = 1;

	if (n == 0 || n >= sizeof(num))
		return ehr_error_set(EHR_ERR_CONFIG, "[retention]: a period is N, Nd or Ny");
	memcpy(num, s, n);
	num[n] = '\0';
	if (num[n - 1] == 'd' || num[n - 1] == 'y') {
		mult = num[n - 1] == 'y' ? 365 : 1;
		num[--n] = '\0';
	}
	if (n == 0 || ehr_parse_i64(&days, num, 0, RETENTION_MAX_DAYS) < 0 ||
	    days > RETENTION_MAX_DAYS / mult)
		return ehr_error_set(EHR_ERR_CONFIG,
		                     "[retention]: a period is N, Nd or Ny, at most 200 years");
	*out = days * mult * 86400;
	return 0;
}

/* One "category=period" item of [retention] categories. */
static int item_parse(struct records_retention *r, const char *s, size_t n)
{
	const char *eq;
	size_t cl;

	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0)
		return 0;
	eq = memchr(s, '=', n);
	if (eq == NULL || (cl = (size_t)(eq - s)) == 0 || cl > RECORDS_MAX_CATEGORY)
		return ehr_error_set(EHR_ERR_CONFIG, "[retention] categories: want category=period, ...");
	if (r->n >= RECORDS_RETENTION_MAX)
		return ehr_error_set(EHR_ERR_CONFIG, "[retention] categories: at most %d",
		                     RECORDS_RETENTION_MAX);
	memcpy(r->cat[r->n].category, s, cl);
	r->cat[r->n].category[cl] = '\0';
	if (!records_id_ok(r->cat[r->n].category, RECORDS_MAX_CATEGORY))
		return ehr_error_set(EHR_ERR_CONFIG, "[retention] categories: a category is [A-Za-z0-9._-]");
	GUARD(period_parse(&r->cat[r->n].period_s, eq + 1, n - cl - 1));
	r->n++;
	return 0;
}

int gw_retention_parse(struct records_retention *r, const char *def, const char *cats)
{
	const char *p = cats ? cats : "";

	memset(r, 0, sizeof(*r));
	GUARD(period_parse(&r->default_s, def ? def : "0", def ? strlen(def) : 1));
	while (*p) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);

		GUARD(item_parse(r, p, n));
		p += n + (c ? 1 : 0);
	}
	return 0;
}

int gw_retention_from_config(const struct gw_config *cfg, struct records_retention *r)
{
	return gw_retention_parse(r, gw_config_get(cfg, "retention", "default_period"),
	                          gw_config_get(cfg, "retention", "categories"));
}
