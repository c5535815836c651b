/*
 * errors.c - the one place where an ehr_err becomes an HTTP status and a
 * JSON error body. 5xx details may describe internals: they go to the
 * log, and the client gets a generic message.
 */
#include "gateway/gateway.h"

#include <stdbool.h>

void gw_reply_err(struct gw_req *r, int err)
{
	int status;
	bool show = true;

	switch (err) {
	case EHR_ERR_INVAL:
	case EHR_ERR_PARSE:
	case EHR_ERR_OVERFLOW: status = 400; break;
	case EHR_ERR_AUTH:
	case EHR_ERR_EXPIRED:
	case EHR_ERR_REPLAY: status = 401; break;
	case EHR_ERR_FORBIDDEN: status = 403; break;
	case EHR_ERR_NOT_FOUND: status = 404; break;
	case EHR_ERR_EXISTS:
	case EHR_ERR_CONFLICT: status = 409; break;
	case EHR_ERR_TOO_LARGE: status = 413; break;
	case EHR_ERR_RATE: status = 429; break;
	case EHR_ERR_UNAVAILABLE:
		status = 503;
		show = false;
		break;
	case EHR_ERR_TIMEOUT:
		status = 504;
		show = false;
		break;
	case EHR_ERR_TAMPER: status = 500; break;
	default:
		status = 500;
		show = false;
		break;
	}
	if (!show) {
		/* 5xx details may describe internals: log them, answer generically. */
		ehr_logf(EHR_LOG_ERROR, "http.error", "route %s: %s: %s",
		         gw_req_route(r) ? gw_req_route(r)->name : "-", ehr_err_name(err), ehr_error_msg());
		gw_reply_error(r, status, ehr_err_name(err), "%s",
		               status == 503 ? "a dependency is unavailable; retry later" : "internal error");
		return;
	}
	gw_reply_error(r, status, ehr_err_name(err), "%s",
	               *ehr_error_msg() ? ehr_error_msg() : ehr_err_name(err));
}
