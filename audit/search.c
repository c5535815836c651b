/*
 * search.c - FHIR R4 search values (https://hl7.org/fhir/R4/search.html)
 * for the AuditEvent search: token and date parameters, and the filter a
 * rendered event must match. Parsers of untrusted query values: bounded,
 * cursor-style, fuzzed (tests/fuzz/fhir_search).
 */
#include <string.h>

#include "audit/audit.h"

int audit_fhir_token_parse(struct audit_token *t, const char *value)
{
	size_t n = value ? strlen(value) : 0;
	char *bar;

	memset(t, 0, sizeof(*t));
	if (!(n > 0))
		return ehr_error_set(EHR_ERR_INVAL, "a token must be [system|]code");
	if (!(n < sizeof(t->buf)))
		return ehr_error_set(EHR_ERR_INVAL, "a token value is too long");
	memcpy(t->buf, value, n + 1);
	bar = strchr(t->buf, '|');
	if (bar == NULL) {
		t->code = t->buf;
		return 0;
	}
	*bar = '\0';
	if (!(bar[1] != '\0' && strchr(bar + 1, '|') == NULL))
		return ehr_error_set(EHR_ERR_INVAL, "a token must be [system|]code with a code");
	/* "|code" is a code with no system: we have none, so it matches nothing
	 * we render; keep it as the empty system. */
	t->system = t->buf;
	t->code = bar + 1;
	return 0;
}

bool audit_token_matches(const struct audit_token *t, const struct audit_code *c)
{
	if (c->code == NULL || strcmp(t->code, c->code) != 0)
		return false;
	return t->system == NULL || (c->system != NULL && strcmp(t->system, c->system) == 0);
}

/* ------------------------------------------------------------- dates */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

struct dcur {
	const char *p;
	const char *end;
};

/* Exactly n digits, as a number. */
static bool digits(struct dcur *c, size_t n, unsigned *out)
{
	unsigned v = 0;

	if ((size_t)(c->end - c->p) < n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (c->p[i] < '0' || c->p[i] > '9')
			return false;
		v = v * 10 + (unsigned)(c->p[i] - '0');
	}
	c->p += n;
	*out = v;
	return true;
}

static bool lit(struct dcur *c, char ch)
{
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

static bool leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* The time zone: Z or +-hh:mm, as an offset in minutes east. */
static bool zone(struct dcur *c, int *minutes)
{
	unsigned h, m;
	char sign;

	if (lit(c, 'Z')) {
		*minutes = 0;
		return true;
	}
	if (c->p >= c->end || (*c->p != '+' && *c->p != '-'))
		return false;
	sign = *c->p++;
	if (!digits(c, 2, &h) || !lit(c, ':') || !digits(c, 2, &m) || h > 14 || m > 59)
		return false;
	*minutes = (int)(h * 60 + m) * (sign == '-' ? -1 : 1);
	return true;
}

/* The instant range [lo, hi) a FHIR date or dateTime of its precision
 * covers. A date without a time is read in UTC (we have no local zone). */
static bool date_range(const char *s, int64_t *lo, int64_t *hi)
{
	struct dcur c = { s, s + strlen(s) };
	unsigned y, mo = 1, d = 1, h = 0, mi = 0, sec = 0, ms = 0;
	int64_t span, tz = 0;
	int zmin = 0;
	static const unsigned mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (!digits(&c, 4, &y) || y < 1970)
		return false;
	span = -1; /* year */
	if (lit(&c, '-')) {
		if (!digits(&c, 2, &mo) || mo < 1 || mo > 12)
			return false;
		span = -2; /* month */
		if (lit(&c, '-')) {
			if (!digits(&c, 2, &d) || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap(y)))
				return false;
			span = 86400000;
			if (lit(&c, 'T')) {
				if (!digits(&c, 2, &h) || !lit(&c, ':') || !digits(&c, 2, &mi) || h > 23 ||
				    mi > 59)
					return false;
				span = 60000;
				if (lit(&c, ':')) {
					if (!digits(&c, 2, &sec) || sec > 59)
						return false;
					span = 1000;
					if (lit(&c, '.')) {
						if (!digits(&c, 3, &ms))
							return false;
						span = 1;
					}
				}
				if (!zone(&c, &zmin))
					return false;
				tz = (int64_t)zmin * 60000;
			}
		}
	}
	if (c.p != c.end)
		return false;
	*lo = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000 + ms - tz;
	if (span == -1)
		*hi = days_from_civil((int64_t)y + 1, 1, 1) * 86400000;
	else if (span == -2)
		*hi = (mo == 12 ? days_from_civil((int64_t)y + 1, 1, 1) : days_from_civil(y, mo + 1, 1)) *
		      86400000;
	else
		*hi = *lo + span;
	return *lo >= 0;
}

int audit_fhir_date_narrow(const char *value, int64_t *since_ms, int64_t *until_ms)
{
	static const char *const prefixes[] = { "eq", "ge", "gt", "le", "lt" };
	const char *pre = "eq", *v = value;
	int64_t lo, hi;

	if (!(value != NULL && *value))
		return ehr_error_set(EHR_ERR_INVAL, "date must have a value");
	if (v[0] >= 'a' && v[0] <= 'z') {
		pre = NULL;
		for (size_t i = 0; i < EHR_ARRAY_LEN(prefixes); i++)
			if (strncmp(v, prefixes[i], 2) == 0)
				pre = prefixes[i];
		if (!(pre != NULL))
			return ehr_error_set(EHR_ERR_INVAL, "date prefix must be eq, ge, gt, le or lt");
		v += 2;
	}
	if (!(date_range(v, &lo, &hi)))
		return ehr_error_set(EHR_ERR_INVAL,
		                     "date must be YYYY[-MM[-DD[Thh:mm[:ss[.fff]](Z|+hh:mm)]]]");
	/* the entry's instant t matches: eq lo<=t<hi; ge t>=lo; gt t>=hi; le t<hi; lt t<lo */
	if (strcmp(pre, "eq") == 0 || strcmp(pre, "ge") == 0 || strcmp(pre, "gt") == 0) {
		int64_t s = strcmp(pre, "gt") == 0 ? hi : lo;
		if (s > *since_ms)
			*since_ms = s;
	}
	if (strcmp(pre, "eq") == 0 || strcmp(pre, "le") == 0 || strcmp(pre, "lt") == 0) {
		int64_t u = strcmp(pre, "lt") == 0 ? lo : hi;
		if (*until_ms == 0 || u < *until_ms)
			*until_ms = u;
	}
	return 0;
}

/* ------------------------------------------------------------ filter */

bool audit_event_matches(const struct audit_event *ev, const struct audit_filter *f)
{
	bool ok;

	if (f->outcome >= 0 && (int)ev->outcome != f->outcome)
		return false;
	if (f->type && !audit_token_matches(f->type, &ev->type))
		return false;
	if (f->subtype) {
		ok = false;
		for (size_t i = 0; !ok && i < ev->n_subtype; i++)
			ok = audit_token_matches(f->subtype, &ev->subtype[i]);
		if (!ok)
			return false;
	}
	if (f->entity) {
		ok = false;
		for (size_t i = 0; !ok && i < ev->n_entity; i++)
			ok = ev->entity[i].id && strcmp(ev->entity[i].id, f->entity) == 0;
		if (!ok)
			return false;
	}
	return true;
}
