/*
 * ids.c - the one id validator (gw_param_fn): every path parameter and
 * every id-valued query parameter of every route is checked here, by
 * name, before the handler runs (gateway/http/query.c calls it). The
 * formats are the documented ones (docs/PROTOCOL.md §3, §9, docs/STORAGE.md,
 * docs/CONTRACTS.md); anything else, `.`, `..` and hex of the wrong length
 * included, is 400 invalid_request on every route alike.
 */
#include "gateway/gateway_internal.h"
#include "ledger/ledger.h"

#include <string.h>

enum gw_id_kind {
	GW_ID_PATIENT,   /* "pt-" + 43 base64url: a patient pseudonym (§9) */
	GW_ID_RECORD,    /* 32 lower-case hex digits */
	GW_ID_CONTRACT,  /* 43 base64url */
	GW_ID_PRINCIPAL, /* "srv-" / "aud-" + 32 lower-case hex */
	GW_ID_LEDGER,    /* a ledger actor or subject: any id above, a serial, operator, anonymous */
	GW_ID_TEST,      /* the test routes' echo segments: any decoded segment */
	GW_ID_SEQ,       /* a ledger seq in decimal: the FHIR id of an AuditEvent or a Consent */
	GW_ID_TILE,      /* C2SP tlog-tiles "<L>/<N>[.p/<W>]" (routes_tiles.c) */
	GW_ID_BUNDLE,    /* C2SP tlog-tiles entry bundle "<N>[.p/<W>]" */
};

/* Path and query parameter names, and what each must be. A route with a
 * {parameter} not in this table does not start (gw_router_check_params). */
static const struct {
	const char *name;
	bool path;
	enum gw_id_kind kind;
	const char *msg;
} gw_id_names[] = {
	{ "pid", true, GW_ID_PATIENT, "patient id must be pt- and 43 base64url characters" },
	{ "rid", true, GW_ID_RECORD, "record id must be 32 lower-case hex digits" },
	{ "cid", true, GW_ID_CONTRACT, "contract id must be 43 base64url characters" },
	{ "item", true, GW_ID_TEST, "" },
	{ "part", true, GW_ID_TEST, "" },
	{ "seq", true, GW_ID_SEQ, "id must be a ledger seq (decimal digits)" },
	{ "index", true, GW_ID_SEQ, "index must be a ledger index (decimal digits)" },
	{ "tile", true, GW_ID_TILE, "tile path must be <L>/<N>[.p/<W>] (c2sp.org/tlog-tiles)" },
	{ "bundle", true, GW_ID_BUNDLE, "entry bundle path must be <N>[.p/<W>] (c2sp.org/tlog-tiles)" },
	{ "patient", false, GW_ID_PATIENT, "patient must be pt- and 43 base64url characters" },
	{ "actor", false, GW_ID_LEDGER, "actor must be an id, a pseudonym, operator or anonymous" },
	{ "subject", false, GW_ID_LEDGER, "subject must be an id, a pseudonym or a serial" },
	{ "agent", false, GW_ID_LEDGER, "agent must be an id, a pseudonym, operator or anonymous" },
};

static bool all_of(const char *s, size_t n, bool (*ok)(char))
{
	for (size_t i = 0; i < n; i++)
		if (!ok(s[i]))
			return false;
	return true;
}

static bool b64url_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

static bool lower_hex_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* prefix (may be "") followed by exactly n characters all ok. */
static bool shaped(const char *v, const char *prefix, size_t n, bool (*ok)(char))
{
	size_t p = strlen(prefix);

	return strncmp(v, prefix, p) == 0 && strlen(v) == p + n && all_of(v + p, n, ok);
}

static bool gw_id_valid(enum gw_id_kind kind, const char *v)
{
	size_t n = strlen(v);

	switch (kind) {
	case GW_ID_PATIENT: return shaped(v, "pt-", 43, b64url_char);
	case GW_ID_RECORD: return shaped(v, "", 32, lower_hex_char);
	case GW_ID_CONTRACT: return shaped(v, "", 43, b64url_char);
	case GW_ID_PRINCIPAL:
		return shaped(v, "srv-", 32, lower_hex_char) || shaped(v, "aud-", 32, lower_hex_char);
	case GW_ID_LEDGER:
		/* Every actor and subject docs/PROTOCOL.md §11 names: ids and
		 * pseudonyms, a certificate serial (lower-case hex), a record
		 * or contract id, and the two fixed words. */
		return gw_id_valid(GW_ID_PATIENT, v) || gw_id_valid(GW_ID_PRINCIPAL, v) ||
		       gw_id_valid(GW_ID_CONTRACT, v) || (n > 0 && n <= 64 && all_of(v, n, lower_hex_char)) ||
		       strcmp(v, "operator") == 0 || strcmp(v, "anonymous") == 0;
	case GW_ID_TEST: return true;
	case GW_ID_SEQ: return n > 0 && n <= 18 && strspn(v, "0123456789") == n && (n == 1 || v[0] != '0');
	case GW_ID_TILE:
	case GW_ID_BUNDLE: {
		struct ledger_tile t;
		bool ok = gw__tile_parse(&t, v, kind == GW_ID_BUNDLE) == 0;
		ehr_error_clear();
		return ok;
	}
	default: return false;
	}
}

int gw_id_check(const char *name, const char *value, bool path)
{
	for (size_t i = 0; i < EHR_ARRAY_LEN(gw_id_names); i++) {
		if (gw_id_names[i].path != path || strcmp(gw_id_names[i].name, name) != 0)
			continue;
		if (value == NULL || gw_id_valid(gw_id_names[i].kind, value))
			return 0;
		return ehr_error_set(EHR_ERR_INVAL, "%s", gw_id_names[i].msg);
	}
	/* An unknown path name is refused (the server does not start); an
	 * unknown query name is a value, not an id: the handler parses it. */
	return path ? ehr_error_set(EHR_ERR_INVAL, "unknown path parameter") : 0;
}
