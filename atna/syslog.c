/*
 * syslog.c - the ATNA feed's wire format (pure): the [atna] repositories
 * list, and one ledger entry as an RFC 5424 message framed by RFC 6587
 * octet counting, as RFC 5425 §4.3 requires over TLS.
 */
#include "atna/atna_internal.h"

#include <string.h>

#include "audit/audit.h"
#include "ledger/ledger.h"

#define SYSLOG_FACILITY_AUTHPRIV 10 /* "security/authorization messages" (RFC 5424 §6.2.1) */
#define SYSLOG_MAX_MSG (1u << 20)

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-' || ch == '.';
}

static bool host_char(char ch)
{
	return name_char(ch) || ch == ':';
}

/* "host:port" or "[v6]:port" in item[0..len). */
static int parse_endpoint(struct atna_repo *r, const char *item, size_t len, size_t pos)
{
	const char *colon = NULL, *host = item;
	size_t hlen;
	uint64_t port;
	char num[8];

	for (size_t i = len; i > 0; i--)
		if (item[i - 1] == ':') {
			colon = item + i - 1;
			break;
		}
	if (colon == NULL || (size_t)(item + len - colon - 1) >= sizeof(num) || colon == item)
		return ehr_error_set(EHR_ERR_CONFIG, "repository %zu: want name=host:port", pos);
	hlen = (size_t)(colon - item);
	if (host[0] == '[') {
		if (hlen < 3 || host[hlen - 1] != ']')
			return ehr_error_set(EHR_ERR_CONFIG, "repository %zu: bad [IPv6] host", pos);
		host++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen > ATNA_HOST_MAX)
		return ehr_error_set(EHR_ERR_CONFIG, "repository %zu: bad host", pos);
	for (size_t i = 0; i < hlen; i++)
		if (!host_char(host[i]) || (host[i] == ':' && item[0] != '['))
			return ehr_error_set(EHR_ERR_CONFIG, "repository %zu: bad host", pos);
	memcpy(r->host, host, hlen);
	r->host[hlen] = '\0';
	memcpy(num, colon + 1, (size_t)(item + len - colon - 1));
	num[item + len - colon - 1] = '\0';
	if (ehr_parse_u64(&port, num, 65535) < 0 || port == 0)
		return ehr_error_set(EHR_ERR_CONFIG, "repository %zu: bad port", pos);
	r->port = (uint16_t)port;
	return 0;
}

static int parse_item(struct atna_repo *r, const char *item, size_t len, size_t pos)
{
	const char *eq = memchr(item, '=', len);
	size_t nlen;

	if (eq == NULL)
		return ehr_error_set(EHR_ERR_CONFIG, "repository %zu: want name=host:port", pos);
	nlen = (size_t)(eq - item);
	if (nlen == 0 || nlen > ATNA_NAME_MAX)
		return ehr_error_set(EHR_ERR_CONFIG, "repository %zu: name must be 1..%d characters", pos,
		                     ATNA_NAME_MAX);
	for (size_t i = 0; i < nlen; i++)
		if (!name_char(item[i]))
			return ehr_error_set(EHR_ERR_CONFIG, "repository %zu: name allows [A-Za-z0-9_.-]",
			                     pos);
	memcpy(r->name, item, nlen);
	r->name[nlen] = '\0';
	return parse_endpoint(r, eq + 1, len - nlen - 1, pos);
}

int atna_repos_parse(struct atna_repo *out, size_t cap, size_t *n, const char *text)
{
	const char *cur = text, *p;
	size_t len;

	*n = 0;
	while ((p = ehr_list_next(&cur, ", \t", &len)) != NULL) {
		if (*n >= cap)
			return ehr_error_set(EHR_ERR_CONFIG, "more than %zu repositories", cap);
		GUARD(parse_item(&out[*n], p, len, *n + 1));
		for (size_t i = 0; i < *n; i++)
			if (strcmp(out[i].name, out[*n].name) == 0)
				return ehr_error_set(EHR_ERR_CONFIG, "repository %zu: name used twice",
				                     *n + 1);
		(*n)++;
	}
	return 0;
}

int atna_severity(int outcome)
{
	return outcome == 0 ? 5 : 4;
}

/* An RFC 5424 §6.3.3 PARAM-VALUE: '"', '\' and ']' escaped with '\'. */
static int sd_value(struct ehr_buf *out, const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\' || *p == ']')
			GUARD(ehr_buf_append_u8(out, '\\'));
		GUARD(ehr_buf_append_u8(out, (uint8_t)*p));
	}
	return 0;
}

/* HOSTNAME, APP-NAME etc. are PRINTUSASCII (%d33-126); "-" is NILVALUE. */
static int header_field(struct ehr_buf *out, const char *v, size_t max)
{
	size_t n = v ? strlen(v) : 0;

	if (n == 0 || n > max)
		return ehr_buf_append_str(out, "-");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 33 || (unsigned char)v[i] > 126)
			return ehr_buf_append_str(out, "-");
	return ehr_buf_append(out, v, n);
}

static int render_msg(struct ehr_buf *msg, const struct ledger_entry *e, const struct atna_msg_ctx *ctx)
{
	struct audit_event ev;
	char ts[32];
	int err;

	GUARD_GOTO(audit_event_from_entry(&ev, e, ctx->source_id));
	ehr_time_rfc3339(ts, e->ts_ms);
	ENSURE_GOTO(ts[0] != '\0', EHR_ERR_INVAL);
	GUARD_GOTO(ehr_buf_printf(msg, "<%d>1 %s ",
	                          SYSLOG_FACILITY_AUTHPRIV * 8 + atna_severity((int)ev.outcome), ts));
	GUARD_GOTO(header_field(msg, ctx->hostname, 255));
	GUARD_GOTO(ehr_buf_printf(msg, " ehrgate %ld IHE+RFC-3881 [ehrgate@%u index=\"%llu\" origin=\"",
	                          ctx->procid, (unsigned)ctx->pen, (unsigned long long)e->seq));
	GUARD_GOTO(sd_value(msg, ctx->origin ? ctx->origin : ""));
	/* MSG-UTF8 = BOM UTF-8-STRING (RFC 5424 §6.4) */
	GUARD_GOTO(ehr_buf_append_str(msg, "\"] \xEF\xBB\xBF"));
	GUARD_GOTO(audit_dicom_xml(msg, &ev));
out:
	audit_event_clear(&ev);
	return err;
}

int atna_render(struct ehr_buf *out, const struct ledger_entry *e, const struct atna_msg_ctx *ctx)
{
	struct ehr_buf msg = EHR_BUF_INIT(SYSLOG_MAX_MSG);
	int err;

	GUARD_GOTO(render_msg(&msg, e, ctx));
	/* octet-counting: MSG-LEN SP SYSLOG-MSG (RFC 6587 §3.4.1, RFC 5425 §4.3) */
	GUARD_GOTO(ehr_buf_printf(out, "%zu ", msg.len));
	GUARD_GOTO(ehr_buf_append(out, msg.data, msg.len));
out:
	ehr_buf_free(&msg);
	return err;
}
