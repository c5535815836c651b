/*
 * routes_receipts.c - receipts (docs/LEDGER.md §11, docs/PROTOCOL.md §16):
 * every acknowledged upload, read (break-glass included) and contract
 * change names its ledger entry (X-EHR-Ledger-Index) and the entry's
 * receipt URL (X-EHR-Receipt, and a "receipt" member in JSON replies);
 * GET /v1/receipts/{index} answers the C2SP tlog-proof of the entry
 * against the published checkpoint.
 *
 * Publication may lag an append (with witnesses it waits for a quorum), so
 * `Prefer: wait=N` (RFC 7240 §4.3; N seconds, capped by [ledger]
 * receipt_wait_max_s) on the request or on the receipt GET waits for a
 * published checkpoint covering the entry. A receipt GET still not covered
 * is 202 with Retry-After; an acknowledged JSON reply then says
 * "status":"pending" instead of carrying the proof.
 */
#include "gateway/gateway_internal.h"
#include "ledger/ledger.h"

#include <string.h>
#include <strings.h>

#define RECEIPT_PATH "/v1/receipts/"

/* Seconds of a `wait=N` preference in the Prefer header(s), capped by
 * [ledger] receipt_wait_max_s; 0 without one. Malformed values are
 * ignored, as RFC 7240 §2 asks of preferences a server does not get. */
static unsigned prefer_wait_ms(struct gw_req *r)
{
	const char *h = gw_req_header(r, "Prefer");
	uint64_t cap = gw_config_get_uint(gw_app_config(gw_req_app(r)), "ledger", "receipt_wait_max_s");

	for (const char *p = h; p && *p;) {
		char num[16];
		size_t n;
		uint64_t v;

		p += strspn(p, " \t,;");
		n = strcspn(p, " \t,;");
		if (n > 5 && n - 5 < sizeof(num) && strncasecmp(p, "wait=", 5) == 0) {
			memcpy(num, p + 5, n - 5);
			num[n - 5] = '\0';
			if (ehr_parse_u64(&v, num, UINT32_MAX) == 0) {
				ehr_error_clear();
				return (unsigned)(v < cap ? v : cap) * 1000u;
			}
			ehr_error_clear();
		}
		p += n;
	}
	return 0;
}

/* One entry read back for its receipt. */
struct receipt_entry {
	bool found;
	struct ehr_buf raw;
	char actor[LEDGER_MAX_ID + 1], subject[LEDGER_MAX_ID + 1];
};

static int keep_entry(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t len)
{
	struct receipt_entry *re = ctx;

	re->found = true;
	memcpy(re->actor, e->actor, sizeof(re->actor));
	memcpy(re->subject, e->subject, sizeof(re->subject));
	return ehr_buf_append(&re->raw, raw, len);
}

static int load_entry(struct ledger *l, uint64_t index, struct receipt_entry *re)
{
	int err;

	memset(re, 0, sizeof(*re));
	ehr_buf_init(&re->raw, LEDGER_MAX_BUNDLE_ENTRY + 1);
	err = ledger_get_entries(l, index, 1, keep_entry, re);
	if (err == 0 && !re->found)
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no such ledger entry");
	return err;
}

json_t *gw_receipt_attach(struct gw_req *r, uint64_t index)
{
	char v[24], url[48];
	unsigned wait = prefer_wait_ms(r);
	json_t *j;

	if (ehr_fmt(v, sizeof(v), "%llu", (unsigned long long)index) < 0 ||
	    ehr_fmt(url, sizeof(url), RECEIPT_PATH "%s", v) < 0)
		return NULL;
	gw_reply_header(r, "X-EHR-Ledger-Index", v);
	gw_reply_header(r, "X-EHR-Receipt", url);
	j = json_pack("{s:I, s:s}", "index", (json_int_t)index, "url", url);
	if (j != NULL && wait > 0) {
		struct ledger *l = gw_app_ledger(gw_req_app(r));
		struct receipt_entry re;
		struct ehr_buf proof = EHR_BUF_INIT(LEDGER_TLOG_PROOF_MAX);
		bool pending = true;

		if (load_entry(l, index, &re) == 0 &&
		    ledger_receipt_build(l, index, re.raw.data, re.raw.len, wait, &proof, &pending) == 0 &&
		    !pending)
			json_object_set_new(j, "proof", json_stringn((const char *)proof.data, proof.len));
		else
			json_object_set_new(j, "status", json_string("pending"));
		ehr_error_clear(); /* the acknowledged reply stands; the receipt can be fetched later */
		ehr_buf_free(&proof);
		ehr_buf_free(&re.raw);
	}
	return j;
}

/* Who may fetch entry e's receipt: auditors, its actor, the patient it
 * concerns. Anyone else gets the 404 of an entry that does not exist, as
 * on the proof routes. */
static bool may_fetch(const struct gw_identity *id, const struct receipt_entry *e)
{
	if (id->role == GW_ROLE_AUDITOR)
		return true;
	if (id->actor[0] && strcmp(id->actor, e->actor) == 0)
		return true;
	return id->role == GW_ROLE_PATIENT && e->subject[0] && strcmp(id->subject, e->subject) == 0;
}

static void reply_pending(struct gw_req *r, uint64_t index)
{
	char url[48];

	gw_reply_header(r, "Retry-After", "1");
	if (ehr_fmt(url, sizeof(url), RECEIPT_PATH "%llu", (unsigned long long)index) < 0)
		url[0] = '\0';
	gw_reply_json(
	        r, 202,
	        json_pack("{s:I, s:s, s:s}", "index", (json_int_t)index, "status", "pending", "url", url));
}

static void receipt(struct gw_req *r, struct gw_audit_query_info *info)
{
	/* The audit.query entry names the patient after the handler returns. */
	static __thread char subject[LEDGER_MAX_ID + 1];
	struct ledger *l = gw_app_ledger(gw_req_app(r));
	struct ehr_buf proof = EHR_BUF_INIT(LEDGER_TLOG_PROOF_MAX);
	struct receipt_entry re = { 0 };
	uint64_t index = 0;
	bool pending = true;
	int err;

	/* {index} passed the one id validator: decimal digits, no leading zero */
	if ((err = ehr_parse_u64(&index, gw_req_param(r, "index"), INT64_MAX)) < 0 ||
	    (err = load_entry(l, index, &re)) < 0)
		goto out;
	if (!may_fetch(gw_req_identity(r), &re)) {
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no such ledger entry");
		goto out;
	}
	memcpy(subject, re.subject, sizeof(subject));
	info->subject = subject;
	if ((err = ledger_receipt_build(l, index, re.raw.data, re.raw.len, prefer_wait_ms(r), &proof,
	                                &pending)) < 0)
		goto out;
	if (pending) {
		reply_pending(r, index);
	} else {
		gw_reply_header(r, "Cache-Control", "private, no-cache");
		gw_reply_bytes(r, 200, "text/plain; charset=utf-8", proof.data, proof.len);
	}
out:
	if (err < 0)
		gw_reply_err(r, err);
	ehr_buf_free(&proof);
	ehr_buf_free(&re.raw);
}

void gw__receipt_get(struct gw_req *r)
{
	gw_audit_query_run(r, receipt);
}
