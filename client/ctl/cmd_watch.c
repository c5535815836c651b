/*
 * cmd_watch.c - `ehrctl patient watch`: follow the patient's own stream,
 * GET /v1/me/access/stream (docs/AUDIT.md §10), one line per ledger entry
 * about the patient: who read or stored which record, denials, break-glass
 * reads, contract changes, device-key enrolments and revocations, erasures.
 *
 *   ehrctl [--dir DIR] patient watch [--from N] [--count N] [--retries N] [--json]
 *
 * Every event is checked against its entry bytes before it is printed (a
 * gateway that lies stops the command: REWRITTEN, exit 1).
 * Each request carries a fresh DPoP proof (libehrclient). When the stream
 * ends it reconnects with Last-Event-ID, so nothing is missed or printed
 * twice; when it ended because the access token expired it logs in again
 * with the device key first. An end for any other reason (the key was
 * replaced or revoked, the patient erased) is printed, and the reconnect
 * is then refused by the gateway: exit 1, as for any refusal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/ctl/ctl_commands.h"
#include "ledger/ledger.h"

#define WATCH_CONNECTION_MS (10L * 60 * 1000)

struct watch {
	struct ctl_sse sse;
	struct ehr_client *c;
	bool json;
	bool have_last;
	uint64_t last;  /* index of the last event printed */
	uint64_t count; /* stop after this many events (0 = never) */
	uint64_t printed;
	char end[32];        /* the gateway's `end` reason of this connection, or "" */
	bool failed;         /* an event failed a check: stop, exit 1 */
	struct ehr_buf head; /* the first bytes of a reply: a refusal's JSON body */
	/* receipts (--log-key): fetched on their own client, verified offline */
	struct ehr_client *rc;
	bool verify;
	char origin[256];
	uint8_t log_pub[32];
	struct ctl_witnesses ws;
	char wait[16];
};

/* Body bytes: the first few kept (a refusal is a JSON error, not a
 * stream), all to the SSE reader. */
static bool watch_data(const void *p, size_t n, void *ud)
{
	struct watch *w = ud;
	size_t room = w->head.max - w->head.len;

	if (room > 0 && ehr_buf_append(&w->head, p, n < room ? n : room) < 0)
		return false;
	return ctl_sse_feed(p, n, &w->sse);
}

/* "ehrctl patient watch: <status> <code>: <message>" for a refusal. */
static void watch_refused(const struct watch *w, long status)
{
	json_t *j = NULL;
	const json_t *e;

	ehr_json_parse(&j, w->head.data, w->head.len, w->head.max, 8);
	e = json_object_get(j, "error");
	fprintf(stderr, "ehrctl patient watch: %ld %s: %s\n", status,
	        json_string_value(json_object_get(e, "code")) ?: "(no error code)",
	        json_string_value(json_object_get(e, "message")) ?: "(no error message)");
	json_decref(j);
}

static void watch_usage(FILE *f)
{
	fprintf(f, "usage: ehrctl [--dir DIR] patient watch [--from N] [--count N] [--retries N] [--json]\n"
	           "                  [--log-key VKEY [--witness NAME=VKEY ...] [--quorum K] [--wait S]]\n"
	           "  (patient) Follow every ledger entry about you as it is written: reads, stores,\n"
	           "  denials, break-glass reads, contract changes, device-key enrolments and\n"
	           "  revocations, erasures. One line per entry (--json: the event's JSON object).\n"
	           "  --from N     start at ledger index N (default: only what happens from now)\n"
	           "  --count N    exit 0 after N entries (default: follow until interrupted)\n"
	           "  --retries N  failed reconnects in a row before giving up (50)\n"
	           "  --log-key    verify each entry's receipt offline: the log's vkey (`ehrgate ledger\n"
	           "               vkey`, obtained out of band), K of the witnesses' cosignature vkeys\n"
	           "               (default K = all given); --wait S: how long the gateway may take to\n"
	           "               publish a checkpoint covering the entry (default 10)\n");
}

/* " key=value" when the event has a string or integer `key`. */
static void print_member(const json_t *ev, const char *key)
{
	const json_t *v = json_object_get(ev, key);

	if (json_is_string(v))
		printf(" %s=%s", key, json_string_value(v));
	else if (json_is_integer(v))
		printf(" %s=%lld", key, (long long)json_integer_value(v));
}

/* One line: index, time, type, who, how it ended, what, and the receipt. */
static void print_event(const struct watch *w, const json_t *ev)
{
	static const char *const members[] = {
		"actor", "outcome", "reason", "record", "action", "cid", "jkt"
	};

	if (w->json) {
		json_dumpf(ev, stdout, JSON_COMPACT | JSON_SORT_KEYS);
	} else {
		printf("%lld %s %s", (long long)json_integer_value(json_object_get(ev, "index")),
		       json_string_value(json_object_get(ev, "time")) ?: "-",
		       json_string_value(json_object_get(ev, "type")) ?: "-");
		for (size_t i = 0; i < EHR_ARRAY_LEN(members); i++)
			print_member(ev, members[i]);
		if (json_is_true(json_object_get(ev, "break_glass")))
			printf(" BREAK-GLASS");
		if (json_is_string(json_object_get(ev, "receipt_status")))
			printf(" receipt=%s", json_string_value(json_object_get(ev, "receipt_status")));
		else
			print_member(ev, "receipt");
	}
	fputc('\n', stdout);
	fflush(stdout);
}

/*
 * The event's fields are what its entry bytes say: the index is the
 * entry's seq, and type, actor, time and record are the decoded entry's
 * (as `audit verify` checks served entries, docs/AUDIT.md §4). The bytes
 * are what the receipt proves to be in the log (leaf hash, RFC 9162).
 */
static bool event_matches_entry(const json_t *ev, struct ledger_entry *e)
{
	const char *b64 = json_string_value(json_object_get(ev, "entry"));
	const char *rec = json_string_value(json_object_get(ev, "record"));
	struct ehr_buf raw = EHR_BUF_INIT(2 * LEDGER_MAX_PAYLOAD + 4096);
	json_t *payload = NULL;
	const json_t *want;
	char when[32];
	bool ok = false;

	if (b64 == NULL || ehr_b64_decode(&raw, b64, strlen(b64)) < 0 ||
	    ledger_entry_decode(e, raw.data, raw.len, true) < 0 ||
	    ehr_json_parse(&payload, e->payload, e->payload_len, LEDGER_MAX_PAYLOAD, EHR_JSON_MAX_DEPTH) < 0)
		goto out;
	ehr_time_rfc3339(when, e->ts_ms);
	want = json_object_get(payload, "record_id");
	if (!json_is_string(want))
		want = json_object_get(payload, "record");
	ok = json_integer_value(json_object_get(ev, "index")) == (json_int_t)e->seq &&
	     strcmp(json_string_value(json_object_get(ev, "type")) ?: "", e->type) == 0 &&
	     strcmp(json_string_value(json_object_get(ev, "actor")) ?: "", e->actor) == 0 &&
	     strcmp(json_string_value(json_object_get(ev, "time")) ?: "", when) == 0 &&
	     (json_is_string(want) ? rec != NULL && strcmp(rec, json_string_value(want)) == 0 : rec == NULL);
out:
	json_decref(payload);
	ehr_buf_free(&raw);
	return ok;
}

/*
 * The event's receipt (GET its `receipt` URL, `Prefer: wait`), verified
 * offline (ledger_tlog_proof_verify: the log's signature, the witness
 * quorum, the inclusion proof) and bound to this event: the entry the
 * receipt proves is the event's entry, byte for byte. "verified",
 * "pending" (no published checkpoint covers it yet: fetch it later with
 * `ehrctl receipt get`), or NULL when it does not verify (the reason on
 * stderr).
 */
static const char *check_receipt(struct watch *w, const json_t *ev, const struct ledger_entry *e)
{
	struct ehr_buf text = EHR_BUF_INIT(LEDGER_TLOG_PROOF_MAX),
	               extra = EHR_BUF_INIT(LEDGER_MAX_BUNDLE_ENTRY), pref = EHR_BUF_INIT(64);
	const char *url = json_string_value(json_object_get(ev, "receipt")), *res = NULL;
	const char *hdrs[] = { NULL, NULL };
	struct ledger_tlog_proof_report rep;
	long status = 0;

	memset(&rep, 0, sizeof(rep));
	if (url == NULL || ehr_buf_printf(&pref, "Prefer: wait=%s", w->wait) < 0) {
		fprintf(stderr, "ehrctl patient watch: BAD_RECEIPT: event %llu names no receipt\n",
		        (unsigned long long)e->seq);
		goto out;
	}
	hdrs[0] = ehr_buf_cstr(&pref);
	if (ehr_client_request(w->rc, &status, &text, "GET", url, hdrs, NULL, 0, NULL, NULL) < 0 ||
	    (status != 200 && status != 202)) {
		fprintf(stderr, "ehrctl patient watch: BAD_RECEIPT: event %llu: %s\n",
		        (unsigned long long)e->seq, ehr_client_last_error(w->rc));
		goto out;
	}
	if (status == 202) {
		res = "pending";
		goto out;
	}
	if (ledger_tlog_proof_verify((const char *)text.data, text.len, w->origin, w->log_pub, w->ws.keys,
	                             w->ws.n, w->ws.k, &extra, &rep) < 0) {
		fprintf(stderr, "ehrctl patient watch: BAD_RECEIPT: event %llu: %s\n",
		        (unsigned long long)e->seq, ehr_error_msg());
		goto out;
	}
	/* public hashes */
	if (rep.index != e->seq ||
	    memcmp(rep.entry.leaf_hash, e->leaf_hash, LEDGER_HASH_LEN) != 0) { /* not secret */
		fprintf(stderr,
		        "ehrctl patient watch: BAD_RECEIPT: event %llu: the receipt proves another entry\n",
		        (unsigned long long)e->seq);
		goto out;
	}
	res = "verified";
out:
	ehr_buf_free(&text);
	ehr_buf_free(&extra);
	ehr_buf_free(&pref);
	return res;
}

static bool watch_event(struct ctl_sse *s, void *ud)
{
	struct watch *w = ud;
	struct ledger_entry e;
	json_t *ev = NULL;
	uint64_t id;

	if (strcmp(s->event, "end") == 0 || strcmp(s->event, "overflow") == 0) {
		if (ehr_json_parse(&ev, s->data.data, s->data.len, s->data.max, 4) == 0 &&
		    json_is_string(json_object_get(ev, "reason")) &&
		    ehr_str_copy(w->end, sizeof(w->end), json_string_value(json_object_get(ev, "reason"))) <
		            0)
			w->end[0] = '\0';
		json_decref(ev);
		return true;
	}
	if (ehr_parse_u64(&id, s->id, INT64_MAX) < 0)
		return true; /* not an entry: ignored */
	if (w->have_last && id <= w->last)
		return true; /* cannot happen (the gateway resumes after Last-Event-ID) */
	if (ehr_json_parse(&ev, s->data.data, s->data.len, s->data.max, EHR_JSON_MAX_DEPTH) < 0 ||
	    !event_matches_entry(ev, &e)) {
		fprintf(stderr,
		        "ehrctl patient watch: REWRITTEN: event %llu does not match its entry bytes\n",
		        (unsigned long long)id);
		w->failed = true;
		json_decref(ev);
		return false;
	}
	if (w->verify) {
		const char *st = check_receipt(w, ev, &e);
		if (st == NULL) {
			w->failed = true;
			json_decref(ev);
			return false;
		}
		json_object_set_new(ev, "receipt_status", json_string(st));
	}
	print_event(w, ev);
	json_decref(ev);
	w->last = id;
	w->have_last = true;
	w->printed++;
	return !(w->count && w->printed >= w->count);
}

/* The access token expired: a new one, by the device key's signature. */
static int relogin(struct ehr_client *c)
{
	json_t *tok = NULL;
	int err;

	err = ehr_client_login_with(c, ehr_client_id(c), ehr_client_device_key(c), &tok);
	if (err == 0)
		err = ehr_client_set_token(c, json_string_value(json_object_get(tok, "access_token")));
	json_decref(tok);
	return err;
}

/* --log-key VKEY, --witness NAME=VKEY, --quorum K, --wait S: 0, or -1 when
 * it is none of them or malformed (a message for the malformed ones). */
static int watch_receipt_arg(struct watch *w, const char *opt, const char *val)
{
	uint64_t v;

	if (strcmp(opt, "--log-key") == 0) {
		w->verify =
		        ledger_vkey_parse(val, strlen(val), w->origin, sizeof(w->origin), w->log_pub) == 0;
		if (!w->verify)
			fprintf(stderr, "ehrctl patient watch: --log-key: not a vkey\n");
		return w->verify ? 0 : -1;
	}
	if (strcmp(opt, "--witness") == 0 || strcmp(opt, "--quorum") == 0) {
		if ((opt[2] == 'w' ? ctl_witness_opt(&w->ws, val) : ctl_quorum_opt(&w->ws, val)) == 0)
			return 0;
		fprintf(stderr, "ehrctl patient watch: %s\n", ehr_error_msg());
		return -1;
	}
	if (strcmp(opt, "--wait") == 0 && ehr_parse_u64(&v, val, 3600) == 0)
		return ehr_fmt(w->wait, sizeof(w->wait), "%llu", (unsigned long long)v);
	return -1;
}

static int watch_args(struct watch *w, int argc, char **argv, uint64_t *from, bool *have_from,
                      uint64_t *retries)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			w->json = true;
		else if (i + 1 < argc && strcmp(argv[i], "--from") == 0 &&
		         ehr_parse_u64(from, argv[i + 1], INT64_MAX) == 0) {
			*have_from = true;
			i++;
		} else if (i + 1 < argc && strcmp(argv[i], "--count") == 0 &&
		           ehr_parse_u64(&w->count, argv[i + 1], INT64_MAX) == 0)
			i++;
		else if (i + 1 < argc && strcmp(argv[i], "--retries") == 0 &&
		         ehr_parse_u64(retries, argv[i + 1], 100000) == 0)
			i++;
		else if (i + 1 < argc && watch_receipt_arg(w, argv[i], argv[i + 1]) == 0)
			i++;
		else
			return -1;
	}
	/* witnesses or a quorum without the log key, or more than given: usage */
	if (!w->verify && (w->ws.n || w->ws.k))
		return -1;
	return ctl_witness_finish(&w->ws) < 0 ? -1 : 0;
}

/* One connection: where to start, then the events until it ends. */
static long watch_once(struct watch *w, bool have_from, uint64_t from)
{
	char path[96], hdr[64];
	const char *headers[] = { hdr, NULL };
	long status = 0;
	int err;

	if (w->have_last)
		err = ehr_fmt(hdr, sizeof(hdr), "Last-Event-ID: %llu", (unsigned long long)w->last);
	else
		err = ehr_str_copy(hdr, sizeof(hdr), "Accept: text/event-stream");
	if (err == 0 && !w->have_last && have_from)
		err = ehr_fmt(path, sizeof(path), "/v1/me/access/stream?from=%llu", (unsigned long long)from);
	else if (err == 0)
		err = ehr_str_copy(path, sizeof(path), "/v1/me/access/stream");
	if (err < 0)
		return -1;
	ctl_sse_reset(&w->sse);
	ehr_buf_reset(&w->head);
	w->end[0] = '\0';
	ehr_client_request(w->c, &status, NULL, "GET", path, headers, NULL, 0, watch_data, w);
	return status;
}

int ctl_cmd_patient_watch(int argc, char **argv)
{
	struct watch w;
	uint64_t from = 0, retries = 50;
	bool have_from = false;
	int rc = 1;

	if (ctl_wants_help(argc, argv)) {
		watch_usage(stdout);
		return 0;
	}
	memset(&w, 0, sizeof(w));
	memcpy(w.wait, "10", 3);
	if (watch_args(&w, argc, argv, &from, &have_from, &retries) < 0) {
		watch_usage(stderr);
		return 2;
	}
	if (ctl_open(&w.c) != 0 || (w.verify && ctl_open(&w.rc) != 0)) {
		ehr_client_free(w.c);
		return 1;
	}
	ctl_sse_init(&w.sse, 4 * LEDGER_MAX_PAYLOAD, watch_event, &w);
	ehr_buf_init(&w.head, 4096);
	/* One connection lasts up to 10 min (heartbeats keep it busy), then
	 * resumes: each open is one audit.query entry, so not every 30 s. */
	ehr_client_set_timeout(w.c, WATCH_CONNECTION_MS);
	for (uint64_t attempt = 0;; attempt++) {
		uint64_t before = w.printed;
		int64_t t0 = ehr_now_ms();
		long status = watch_once(&w, have_from, from);
		bool lasted = status == 200 && ehr_now_ms() - t0 > 5000;

		if (w.failed) {
			rc = CTL_RC_CHECK_FAILED;
			break;
		}
		if (w.count && w.printed >= w.count) {
			rc = 0;
			break;
		}
		if (status != 0 && status != 200) {
			watch_refused(&w, status);
			break;
		}
		if (w.end[0])
			fprintf(stderr, "ehrctl patient watch: the stream ended: %s\n", w.end);
		if (strcmp(w.end, "token_expired") == 0 && relogin(w.c) < 0) {
			ctl_fail("patient watch");
			break;
		}
		if (w.printed > before || w.end[0] || lasted)
			attempt = 0; /* only failed or empty short connections in a row count */
		if (attempt >= retries) {
			fprintf(stderr, "ehrctl patient watch: the stream ended and did not come back\n");
			break;
		}
		usleep(200 * 1000); /* then resume after the last index printed */
	}
	ctl_sse_free(&w.sse);
	ehr_buf_free(&w.head);
	ehr_client_free(w.c);
	ehr_client_free(w.rc);
	return rc;
}
