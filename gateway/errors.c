/*
 * errors.c - the one place where an ehr_err becomes an HTTP reply (s2n's
 * ERR_ENTRIES): one table of code -> status, public error code, and
 * whether the thread's public message is shown. The client gets the code
 * and a plain message, never the log detail (file:line, libpq, OpenSSL or
 * curl text); the detail goes to the log with the request id the reply
 * carries in X-Request-Id (docs/OPERATIONS.md §3, §6).
 */
#include "gateway/gateway.h"

#include <stdbool.h>

/*
 * X(ehr_err, HTTP status, error.code, show the message?, text when hidden)
 * 4xx show the public message (it names the failed check); 5xx never do.
 * Malformed input is `invalid_request` on every route (docs/PROTOCOL.md
 * §1.4, docs/AUDIT.md); a limit is 413 `too_large` everywhere.
 */
#define GW_ERR_ENTRIES(X)                                                                             \
	X(EHR_ERR_INVAL, 400, "invalid_request", true, NULL)                                          \
	X(EHR_ERR_PARSE, 400, "invalid_request", true, NULL)                                          \
	X(EHR_ERR_OVERFLOW, 400, "invalid_request", true, NULL)                                       \
	X(EHR_ERR_AUTH, 401, "unauthenticated", true, NULL)                                           \
	X(EHR_ERR_EXPIRED, 401, "unauthenticated", true, NULL)                                        \
	X(EHR_ERR_REPLAY, 401, "unauthenticated", true, NULL)                                         \
	X(EHR_ERR_FORBIDDEN, 403, "forbidden", true, NULL)                                            \
	X(EHR_ERR_NOT_FOUND, 404, "not_found", true, NULL)                                            \
	X(EHR_ERR_EXISTS, 409, "conflict", true, NULL)                                                \
	X(EHR_ERR_CONFLICT, 409, "conflict", true, NULL)                                              \
	X(EHR_ERR_GONE, 410, "gone", true, NULL)                                                      \
	X(EHR_ERR_TOO_LARGE, 413, "too_large", true, NULL)                                            \
	X(EHR_ERR_RATE, 429, "rate_limited", true, NULL)                                              \
	X(EHR_ERR_TAMPER, 502, "integrity_error", false,                                              \
	  "stored data failed verification; nothing was "                                             \
	  "released")                                                                                 \
	X(EHR_ERR_UNAVAILABLE, 503, "unavailable", false, "a dependency is unavailable; retry later") \
	X(EHR_ERR_DB, 503, "unavailable", false, "a dependency is unavailable; retry later")          \
	X(EHR_ERR_TIMEOUT, 504, "timeout", false, "a dependency timed out; retry later")

struct gw_err_entry {
	int err;
	int status;
	const char *code;
	bool show;
	const char *hidden_text;
};

static const struct gw_err_entry gw_err_table[] = {
#define X(e, st, c, sh, t) { (e), (st), (c), (sh), (t) },
	GW_ERR_ENTRIES(X)
#undef X
};

/* Anything not in the table (NOMEM, IO, CRYPTO, INTERNAL, CONFIG, ...). */
static const struct gw_err_entry gw_err_internal = { EHR_ERR_INTERNAL, 500, "internal_error", false,
	                                             "internal error" };

static const struct gw_err_entry *entry_of(int err)
{
	for (size_t i = 0; i < EHR_ARRAY_LEN(gw_err_table); i++)
		if (gw_err_table[i].err == err)
			return &gw_err_table[i];
	return &gw_err_internal;
}

/* The log line: 5xx at error (warn for a dependency), 4xx at debug, so a
 * flood of refusals does not flood the log. No PHI: route names, codes and
 * the detail only. */
static void log_err(struct gw_req *r, int err, int status)
{
	const struct gw_route *route = gw_req_route(r);
	enum ehr_log_level lvl = status >= 500 ? EHR_LOG_ERROR : EHR_LOG_DEBUG;

	if (status == 503 || status == 504)
		lvl = EHR_LOG_WARN;
	if (lvl < ehr_log_get_level())
		return;
	ehr_log_json(lvl, status >= 500 ? "http.error" : "http.refused",
	             json_pack("{s:s, s:s, s:i, s:s, s:s}", "request_id", gw_req_id(r), "route",
	                       route ? route->name : "-", "status", status, "kind", ehr_err_name(err),
	                       "detail", ehr_error_detail()));
}

void gw_reply_err(struct gw_req *r, int err)
{
	const struct gw_err_entry *e = entry_of(err);
	const char *msg = ehr_error_msg();

	log_err(r, err, e->status);
	if (e->status == 429)
		gw_reply_header(r, "Retry-After", "60");
	if (!e->show || *msg == '\0')
		msg = e->show ? ehr_err_public(err) : e->hidden_text;
	gw_reply_error(r, e->status, e->code, "%s", msg);
	ehr_error_clear();
}
