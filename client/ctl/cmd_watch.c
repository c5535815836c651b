/*
 * cmd_watch.c - `ehrctl patient watch`: follow the patient's own stream,
 * GET /v1/me/access/stream (docs/AUDIT.md §10), one line per ledger entry
 * about the patient: who read or stored which record, denials, break-glass
 * reads, contract changes, device-key enrolments and revocations, erasures.
 *
 *   ehrctl [--dir DIR] patient watch [--from N] [--count N] [--retries N] [--json]
 *
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
	char end[32]; /* the gateway's `end` reason of this connection, or "" */
};

static void watch_usage(FILE *f)
{
	fprintf(f, "usage: ehrctl [--dir DIR] patient watch [--from N] [--count N] [--retries N] [--json]\n"
	           "  (patient) Follow every ledger entry about you as it is written: reads, stores,\n"
	           "  denials, break-glass reads, contract changes, device-key enrolments and\n"
	           "  revocations, erasures. One line per entry (--json: the event's JSON object).\n"
	           "  --from N     start at ledger index N (default: only what happens from now)\n"
	           "  --count N    exit 0 after N entries (default: follow until interrupted)\n"
	           "  --retries N  failed reconnects in a row before giving up (50)\n");
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
		print_member(ev, "receipt");
	}
	fputc('\n', stdout);
	fflush(stdout);
}

static bool watch_event(struct ctl_sse *s, void *ud)
{
	struct watch *w = ud;
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
	if (ehr_json_parse(&ev, s->data.data, s->data.len, s->data.max, EHR_JSON_MAX_DEPTH) == 0 &&
	    json_is_object(ev))
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
		else
			return -1;
	}
	return 0;
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
	w->end[0] = '\0';
	ehr_client_request(w->c, &status, NULL, "GET", path, headers, NULL, 0, ctl_sse_feed, &w->sse);
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
	if (watch_args(&w, argc, argv, &from, &have_from, &retries) < 0) {
		watch_usage(stderr);
		return 2;
	}
	if (ctl_open(&w.c) != 0)
		return 1;
	ctl_sse_init(&w.sse, 4 * LEDGER_MAX_PAYLOAD, watch_event, &w);
	/* One connection lasts up to 10 min (heartbeats keep it busy), then
	 * resumes: each open is one audit.query entry, so not every 30 s. */
	ehr_client_set_timeout(w.c, WATCH_CONNECTION_MS);
	for (uint64_t attempt = 0;; attempt++) {
		uint64_t before = w.printed;
		int64_t t0 = ehr_now_ms();
		long status = watch_once(&w, have_from, from);
		bool lasted = status == 200 && ehr_now_ms() - t0 > 5000;

		if (w.count && w.printed >= w.count) {
			rc = 0;
			break;
		}
		if (status != 0 && status != 200) {
			fprintf(stderr, "ehrctl patient watch: %s\n", ehr_client_last_error(w.c));
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
	ehr_client_free(w.c);
	return rc;
}
