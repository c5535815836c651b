/*
 * cmd_audit.c - `ehrctl audit query|tail|verify` (auditor profile).
 *
 *   ehrctl audit query [--type T] [--actor A] [--subject S] [--since MS] [--until MS]
 *                      [--from-seq N] [--to-seq N] [--limit N] [--cursor C] [--fhir]
 *   ehrctl audit tail  [--since-seq N] [--count N] [--retries N]
 *   ehrctl audit verify --ledger-key FILE [--origin NAME] [--state FILE] [--full]
 *                       [--witness NAME=VKEY ... [--quorum K]]
 *
 * verify is an independent client-side check (docs/AUDIT.md §4):
 *  1. the current (published) checkpoint's signature against the pinned
 *     ledger key and, with --witness, k valid witness cosignatures
 *     (NO_QUORUM names the first witness missing or bad);
 *  2. consistency between the last checkpoint this client verified (kept in
 *     the state file) and the new one: a smaller tree is a ROLLBACK, a
 *     different root at the same size or a failing proof is a FORK;
 *  3. every entry fetched (those added since the last verified checkpoint,
 *     or all with --full): its seq is the next one (else DROPPED), its
 *     bytes decode to the fields served (else REWRITTEN), and it is
 *     included in the signed tree (else REWRITTEN).
 * Only when everything holds is the new checkpoint saved. Exit status: 0
 * verified, 1 a check failed (the first line on stderr names it), 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "client/ctl/ctl_commands.h"
#include "ledger/ledger.h"

static void usage_to(FILE *f)
{
	fprintf(f,
	        "usage: ehrctl audit query [--type T] [--actor A] [--subject S] [--since MS] [--until MS]\n"
	        "                          [--from-seq N] [--to-seq N] [--limit N] [--cursor C] [--fhir]\n"
	        "       ehrctl audit tail [--since-seq N] [--count N] [--retries N]\n"
	        "       ehrctl audit verify --ledger-key FILE [--origin NAME] [--state FILE] [--full]\n"
	        "                           [--witness NAME=VKEY ... [--quorum K]]\n");
}

static int usage(void)
{
	usage_to(stderr);
	return 2;
}

static int add_param(struct ehr_buf *q, const char *name, const char *value)
{
	/* Values are ids, types and integers: refuse anything that would need
	 * URL escaping rather than escape it. */
	for (const char *p = value; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("._:@-", *p)))
			return ehr_error_set(EHR_ERR_INVAL, "--%s: unsupported character", name);
	return ehr_buf_printf(q, "%c%s=%s", q->len ? '&' : '?', name, value);
}

static int cmd_query(struct ehr_client *c, int argc, char **argv)
{
	static const char *const opts[][2] = { { "--type", "type" },       { "--actor", "actor" },
		                               { "--subject", "subject" }, { "--since", "since" },
		                               { "--until", "until" },     { "--from-seq", "from_seq" },
		                               { "--to-seq", "to_seq" },   { "--limit", "limit" },
		                               { "--cursor", "cursor" } };
	struct ehr_buf q = EHR_BUF_INIT(2048), path = EHR_BUF_INIT(2200),
	               resp = EHR_BUF_INIT(EHR_CLIENT_MAX_RESPONSE);
	const char *accept[] = { "Accept: application/fhir+json", NULL };
	bool fhir = false;
	long status = 0;
	int rc = 2;

	for (int i = 1; i < argc; i++) {
		bool known = false;
		if (strcmp(argv[i], "--fhir") == 0) {
			fhir = true;
			continue;
		}
		for (size_t k = 0; k < EHR_ARRAY_LEN(opts) && !known; k++) {
			if (strcmp(argv[i], opts[k][0]) == 0 && i + 1 < argc) {
				if (add_param(&q, opts[k][1], argv[++i]) < 0) {
					fprintf(stderr, "ehrctl audit: %s\n", ehr_error_msg());
					goto out;
				}
				known = true;
			}
		}
		if (!known) {
			rc = usage();
			goto out;
		}
	}
	rc = 1;
	if (ehr_buf_printf(&path, "/v1/audit/entries%s", ehr_buf_cstr(&q)) < 0 ||
	    ehr_client_request(c, &status, &resp, "GET", ehr_buf_cstr(&path), fhir ? accept : NULL, NULL, 0,
	                       NULL, NULL) < 0) {
		fprintf(stderr, "ehrctl audit: %s\n", ehr_error_msg());
		goto out;
	}
	if (status < 200 || status >= 300) {
		rc = ctl_finish(c, status, NULL); /* "ehrctl: <status> <code>: <message>" */
		goto out;
	}
	fwrite(resp.data ? (const char *)resp.data : "", 1, resp.len, stdout);
	fputc('\n', stdout);
	rc = 0;
out:
	ehr_buf_free(&q);
	ehr_buf_free(&path);
	ehr_buf_free(&resp);
	return rc;
}

/* `tail`'s state: events are read by the one SSE reader (ctl_sse.c). */
struct tail_state {
	struct ctl_sse sse;
	bool have_last;
	uint64_t last;  /* last entry id printed */
	uint64_t count; /* stop after this many entries (0 = never) */
	uint64_t printed;
	bool overflow;
};

static bool tail_event(struct ctl_sse *s, void *ud)
{
	struct tail_state *t = ud;
	uint64_t id;

	if (strcmp(s->event, "overflow") == 0) {
		t->overflow = true;
		fprintf(stderr, "ehrctl audit tail: the gateway cut the stream (slow consumer): %s\n",
		        ehr_buf_cstr(&s->data));
	} else if (strcmp(s->event, "entry") == 0 && ehr_parse_u64(&id, s->id, INT64_MAX) == 0) {
		json_t *e = NULL;
		if (ehr_json_parse(&e, s->data.data, s->data.len, s->data.max, EHR_JSON_MAX_DEPTH) == 0) {
			json_object_del(e, "entry");
			json_dumpf(e, stdout, JSON_COMPACT | JSON_SORT_KEYS);
			fputc('\n', stdout);
			fflush(stdout);
			json_decref(e);
		}
		t->last = id;
		t->have_last = true;
		t->printed++;
	}
	return !(t->count && t->printed >= t->count);
}

/*
 * Follow /v1/audit/stream, printing one JSON line per entry (without the
 * encoded bytes). When the stream ends (gateway restart, overflow), it
 * reconnects with Last-Event-ID, so nothing is missed or repeated.
 */
static int cmd_tail(struct ehr_client *c, int argc, char **argv)
{
	struct tail_state t;
	uint64_t since = 0, retries = 50;
	bool have_since = false;
	int rc = 1;

	memset(&t, 0, sizeof(t));
	ctl_sse_init(&t.sse, 4 * LEDGER_MAX_PAYLOAD, tail_event, &t);
	for (int i = 1; i < argc; i += 2) { /* every option takes a value */
		if (i + 1 < argc && strcmp(argv[i], "--since-seq") == 0 &&
		    ehr_parse_u64(&since, argv[i + 1], INT64_MAX) == 0)
			have_since = true;
		else if (i + 1 < argc && strcmp(argv[i], "--count") == 0 &&
		         ehr_parse_u64(&t.count, argv[i + 1], INT64_MAX) == 0)
			;
		else if (i + 1 < argc && strcmp(argv[i], "--retries") == 0 &&
		         ehr_parse_u64(&retries, argv[i + 1], 100000) == 0)
			;
		else {
			rc = usage();
			goto out;
		}
	}
	for (uint64_t attempt = 0;; attempt++) {
		char path[128], hdr[64];
		const char *headers[] = { hdr, NULL };
		long status = 0;
		uint64_t before = t.printed;

		int err;

		if (t.have_last)
			err = ehr_fmt(hdr, sizeof(hdr), "Last-Event-ID: %llu", (unsigned long long)t.last);
		else
			err = ehr_str_copy(hdr, sizeof(hdr), "Accept: text/event-stream");
		if (err == 0 && !t.have_last && have_since)
			err = ehr_fmt(path, sizeof(path), "/v1/audit/stream?since=%llu",
			              (unsigned long long)since);
		else if (err == 0)
			err = ehr_str_copy(path, sizeof(path), "/v1/audit/stream");
		if (err < 0) {
			fprintf(stderr, "ehrctl audit tail: %s\n", ehr_error_detail());
			goto out;
		}
		ctl_sse_reset(&t.sse);
		t.overflow = false;
		ehr_client_request(c, &status, NULL, "GET", path, headers, NULL, 0, ctl_sse_feed, &t.sse);
		if (t.count && t.printed >= t.count) {
			rc = 0;
			break;
		}
		if (status != 0 && status != 200) {
			fprintf(stderr, "ehrctl audit tail: %s\n", ehr_client_last_error(c));
			break;
		}
		if (t.printed > before)
			attempt = 0;
		if (attempt >= retries) {
			fprintf(stderr, "ehrctl audit tail: the stream ended and did not come back\n");
			break;
		}
		usleep(200 * 1000); /* then resume after the last id printed */
	}
out:
	ctl_sse_free(&t.sse);
	return rc;
}

/* ---------------------------------------------------------------- verify */

/*
 * The Merkle frontier ("compact range") of a verified tree of size n: the
 * MTH of each perfect subtree in n's binary decomposition, largest first
 * (at most 64). Appending leaves to it and folding gives the root of the
 * larger tree (RFC 9162 §2.1.1), so new entries are checked against a new
 * signed root without one proof per entry, and a tree that does not extend
 * the verified one cannot produce that root.
 */
struct frontier {
	uint64_t size;
	size_t n;
	uint8_t h[64][LEDGER_HASH_LEN];
	uint8_t level[64]; /* subtree of 2^level leaves */
};

static void frontier_push(struct frontier *f, const uint8_t leaf[LEDGER_HASH_LEN])
{
	memcpy(f->h[f->n], leaf, LEDGER_HASH_LEN);
	f->level[f->n++] = 0;
	while (f->n >= 2 && f->level[f->n - 1] == f->level[f->n - 2]) {
		merkle_node_hash(f->h[f->n - 2], f->h[f->n - 2], f->h[f->n - 1]);
		f->level[f->n - 2]++;
		f->n--;
	}
	f->size++;
}

static void frontier_root(const struct frontier *f, uint8_t out[LEDGER_HASH_LEN])
{
	if (f->n == 0) {
		merkle_root(out, NULL, 0);
		return;
	}
	memcpy(out, f->h[f->n - 1], LEDGER_HASH_LEN);
	for (size_t i = f->n - 1; i-- > 0;)
		merkle_node_hash(out, f->h[i], out);
}

struct vstate {
	uint64_t size;
	uint8_t root[LEDGER_HASH_LEN];
	bool have;
	bool have_frontier;
	struct frontier fr;
};

static int b64_hash(uint8_t out[LEDGER_HASH_LEN], const char *s)
{
	struct ehr_buf b = EHR_BUF_INIT(64);
	int err = s ? ehr_b64_decode(&b, s, strlen(s)) : ehr_error_set(EHR_ERR_PARSE, "missing hash");

	if (err == 0 && b.len != LEDGER_HASH_LEN)
		err = ehr_error_set(EHR_ERR_PARSE, "hash is not 32 bytes");
	if (err == 0)
		memcpy(out, b.data, LEDGER_HASH_LEN);
	ehr_buf_free(&b);
	return err;
}

static int load_state(struct vstate *st, const char *path)
{
	struct ehr_buf f = EHR_BUF_INIT(1 << 16);
	json_t *j = NULL;
	int64_t size;
	const char *root;
	int err;

	memset(st, 0, sizeof(*st));
	if (access(path, F_OK) != 0)
		return 0;
	GUARD_GOTO(ehr_file_read(&f, path, 1 << 16));
	GUARD_GOTO(ehr_json_parse(&j, f.data, f.len, 1 << 16, 4));
	GUARD_GOTO(ehr_json_get_int(j, "tree_size", &size, 0, INT64_MAX));
	GUARD_GOTO(ehr_json_get_str(j, "root", &root, 64));
	GUARD_GOTO(b64_hash(st->root, root));
	st->size = (uint64_t)size;
	st->have = true;
	{
		/* The frontier must be exactly n's decomposition and fold to the root. */
		json_t *fa = json_object_get(j, "frontier"), *h;
		size_t i;
		uint64_t rest = st->size;
		uint8_t r[LEDGER_HASH_LEN];
		if (json_is_array(fa) && json_array_size(fa) <= 64) {
			st->fr.size = st->size;
			json_array_foreach(fa, i, h)
			{
				GUARD_GOTO(b64_hash(st->fr.h[i], json_string_value(h)));
			}
			st->fr.n = json_array_size(fa);
			for (i = 0; i < st->fr.n; i++) {
				int lv = 63;
				while (lv >= 0 && !(rest & (1ULL << lv)))
					lv--;
				if (lv < 0)
					break;
				st->fr.level[i] = (uint8_t)lv;
				rest &= ~(1ULL << lv);
			}
			frontier_root(&st->fr, r);
			st->have_frontier = i == st->fr.n && rest == 0 &&
			                    CRYPTO_memcmp(r, st->root, LEDGER_HASH_LEN) == 0;
		}
	}
out:
	json_decref(j);
	ehr_buf_free(&f);
	return err;
}

static int save_state(const char *path, uint64_t size, const uint8_t root[LEDGER_HASH_LEN], const char *note,
                      const struct frontier *fr)
{
	struct ehr_buf r = EHR_BUF_INIT(64), out = EHR_BUF_INIT(1 << 16);
	json_t *j, *fa = json_array();
	int err;

	GUARD_GOTO(ehr_b64_encode(&r, root, LEDGER_HASH_LEN));
	for (size_t i = 0; fa && fr && fr->size == size && i < fr->n; i++) {
		struct ehr_buf h = EHR_BUF_INIT(64);
		if (ehr_b64_encode(&h, fr->h[i], LEDGER_HASH_LEN) == 0)
			json_array_append_new(fa, json_string(ehr_buf_cstr(&h)));
		ehr_buf_free(&h);
	}
	j = json_pack("{s:I, s:s, s:s, s:I, s:o}", "tree_size", (json_int_t)size, "root", ehr_buf_cstr(&r),
	              "checkpoint", note, "verified_at_ms", (json_int_t)ehr_now_ms(), "frontier",
	              fa ? fa : json_array());
	ENSURE_GOTO(j != NULL, EHR_ERR_NOMEM);
	err = ehr_json_dump(&out, j);
	json_decref(j);
	GUARD_GOTO(err);
	GUARD_GOTO(ehr_file_write_atomic(path, out.data, out.len, 0600, false));
out:
	ehr_buf_free(&r);
	ehr_buf_free(&out);
	return err;
}

static int fetch_proof(struct ehr_client *c, const char *path, uint8_t (*hashes)[LEDGER_HASH_LEN], size_t *n)
{
	json_t *resp = NULL, *arr, *h;
	long status = 0;
	size_t i;
	int err = 0;

	*n = 0;
	GUARD(ehr_client_json(c, &status, &resp, "GET", path, NULL));
	if (status != 200 || !json_is_array(arr = json_object_get(resp, "hashes")) ||
	    json_array_size(arr) > LEDGER_MAX_PROOF) {
		err = ehr_error_set(EHR_ERR_TAMPER, "the gateway gave no proof (%ld)", status);
		goto out;
	}
	json_array_foreach(arr, i, h)
	{
		GUARD_GOTO(b64_hash(hashes[i], json_string_value(h)));
	}
	*n = json_array_size(arr);
out:
	json_decref(resp);
	return err;
}

/* Check one served entry against its signed bytes and the tree. */
/* One served entry: it is the next seq, and its fields are what its bytes say.
 * Fills its leaf hash. */
static int check_entry(const json_t *e, uint64_t want_seq, uint8_t leaf[LEDGER_HASH_LEN])
{
	struct ehr_buf raw = EHR_BUF_INIT(2 * LEDGER_MAX_PAYLOAD),
	               canon = EHR_BUF_INIT(2 * LEDGER_MAX_PAYLOAD);
	struct ledger_entry d;
	const char *b64 = json_string_value(json_object_get(e, "entry"));
	json_int_t seq = json_integer_value(json_object_get(e, "seq"));
	int err = 0;

	if ((uint64_t)seq != want_seq) {
		err = ehr_error_set(EHR_ERR_TAMPER,
		                    "DROPPED: entry %llu is missing (the gateway served %lld next)",
		                    (unsigned long long)want_seq, (long long)seq);
		goto out;
	}
	if (b64 == NULL || ehr_b64_decode(&raw, b64, strlen(b64)) < 0 ||
	    ledger_entry_decode(&d, raw.data, raw.len, true) < 0 || d.seq != want_seq) {
		err = ehr_error_set(EHR_ERR_TAMPER, "REWRITTEN: entry %llu does not decode as entry %llu",
		                    (unsigned long long)want_seq, (unsigned long long)want_seq);
		goto out;
	}
	/* The fields served must be those the signed bytes say. */
	GUARD_GOTO(ledger_canonical_json(&canon, json_object_get(e, "payload")));
	if (strcmp(d.type, json_string_value(json_object_get(e, "type")) ?: "") != 0 ||
	    strcmp(d.actor, json_string_value(json_object_get(e, "actor")) ?: "") != 0 ||
	    strcmp(d.subject, json_string_value(json_object_get(e, "subject")) ?: "") != 0 ||
	    d.ts_ms != json_integer_value(json_object_get(e, "ts_ms")) || canon.len != d.payload_len ||
	    memcmp(canon.data, d.payload, d.payload_len) != 0 /* not secret */) {
		err = ehr_error_set(EHR_ERR_TAMPER,
		                    "REWRITTEN: entry %llu: served fields differ from its bytes",
		                    (unsigned long long)want_seq);
		goto out;
	}
	memcpy(leaf, d.leaf_hash, LEDGER_HASH_LEN);
out:
	ehr_buf_free(&raw);
	ehr_buf_free(&canon);
	return err;
}

/* The leaf is in the signed tree (RFC 9162 inclusion proof from the gateway). */
static int prove_entry(struct ehr_client *c, uint64_t seq, uint64_t size, const uint8_t leaf[LEDGER_HASH_LEN],
                       const uint8_t root[LEDGER_HASH_LEN])
{
	uint8_t proof[LEDGER_MAX_PROOF][LEDGER_HASH_LEN];
	char path[160];
	size_t n;

	GUARD(ehr_fmt(path, sizeof(path), "/v1/ledger/proof/inclusion?index=%llu&size=%llu",
	              (unsigned long long)seq, (unsigned long long)size));
	if (fetch_proof(c, path, proof, &n) < 0 ||
	    merkle_verify_inclusion(leaf, seq, size, (const uint8_t(*)[LEDGER_HASH_LEN])proof, n, root) < 0)
		return ehr_error_set(EHR_ERR_TAMPER,
		                     "REWRITTEN: entry %llu is not in the signed tree of size %llu",
		                     (unsigned long long)seq, (unsigned long long)size);
	return 0;
}

/* 1. The checkpoint: fetched, its origin taken from its first line unless
 * one is pinned, and its signature checked with the pinned ledger key.
 * Prints what failed; returns the exit status (0 or 1). */
static int verify_checkpoint(struct ehr_client *c, struct ehr_buf *note, const char *origin,
                             const uint8_t pub[32], const struct ctl_witnesses *ws, uint64_t *size,
                             uint8_t root[LEDGER_HASH_LEN])
{
	char origin_buf[256];
	long status = 0;

	if (ehr_client_request(c, &status, note, "GET", "/v1/ledger/checkpoint", NULL, NULL, 0, NULL, NULL) <
	            0 ||
	    status != 200) {
		fprintf(stderr, "ehrctl audit verify: cannot fetch the checkpoint: %s\n",
		        status ? ehr_client_last_error(c) : ehr_error_msg());
		return 1;
	}
	if (origin == NULL) {
		const char *nl = memchr(note->data, '\n', note->len);
		size_t l = nl ? (size_t)(nl - (const char *)note->data) : 0;
		if (l == 0 || l >= sizeof(origin_buf)) {
			fprintf(stderr, "BAD_CHECKPOINT: malformed checkpoint\n");
			return CTL_RC_CHECK_FAILED;
		}
		memcpy(origin_buf, note->data, l);
		origin_buf[l] = '\0';
		origin = origin_buf;
	}
	if (ledger_checkpoint_verify(ehr_buf_cstr(note), note->len, pub, origin, size, root) < 0) {
		fprintf(stderr, "BAD_CHECKPOINT: the checkpoint is not signed by the pinned ledger key: %s\n",
		        ehr_error_msg());
		return CTL_RC_CHECK_FAILED;
	}
	return ctl_quorum_check(ws, ehr_buf_cstr(note), note->len, origin, pub);
}

/* 2. Consistency with what was verified before: the signed tree did not
 * shrink (ROLLBACK) and extends the one verified then (FORK). Prints what
 * failed; returns the exit status (0 or 1). */
static int verify_consistency(struct ehr_client *c, const struct vstate *st, uint64_t size,
                              const uint8_t root[LEDGER_HASH_LEN])
{
	uint8_t proof[LEDGER_MAX_PROOF][LEDGER_HASH_LEN];
	struct ehr_buf path = EHR_BUF_INIT(512);
	size_t n = 0;
	int err = CTL_RC_CHECK_FAILED;

	if (!st->have)
		return 0;
	if (size < st->size) {
		fprintf(stderr,
		        "ROLLBACK: the signed tree has %llu entries, fewer than the %llu verified "
		        "before\n",
		        (unsigned long long)size, (unsigned long long)st->size);
		goto out;
	}
	if (size > st->size && st->size > 0) {
		if (ehr_buf_printf(&path, "/v1/ledger/proof/consistency?from=%llu&to=%llu",
		                   (unsigned long long)st->size, (unsigned long long)size) < 0 ||
		    fetch_proof(c, ehr_buf_cstr(&path), proof, &n) < 0) {
			fprintf(stderr, "FORK: no consistency proof from %llu to %llu: %s\n",
			        (unsigned long long)st->size, (unsigned long long)size, ehr_error_msg());
			goto out;
		}
	}
	if (st->size > 0 && merkle_check_advance(st->size, st->root, size, root,
	                                         (const uint8_t(*)[LEDGER_HASH_LEN])proof, n) < 0) {
		fprintf(stderr, "FORK: the tree of size %llu does not extend the one verified at %llu: %s\n",
		        (unsigned long long)size, (unsigned long long)st->size, ehr_error_msg());
		goto out;
	}
	err = 0;
out:
	ehr_buf_free(&path);
	return err;
}

/* 3. Entries from..size-1 fetched, all of them first (so a missing one is
 * named DROPPED, not mistaken for a bad proof), each checked against its
 * bytes; their leaf hashes into leaves[0..size-from-1]. Prints what
 * failed; returns the exit status (0 or 1). */
static int verify_entries(struct ehr_client *c, uint64_t from, uint64_t size,
                          uint8_t (*leaves)[LEDGER_HASH_LEN], uint64_t *checked)
{
	struct ehr_buf path = EHR_BUF_INIT(512);
	uint64_t want = from;
	long status = 0;
	int err = 1;

	while (want < size) {
		json_t *resp = NULL, *entries, *e;
		size_t i;

		ehr_buf_reset(&path);
		if (ehr_buf_printf(&path, "/v1/audit/entries?from_seq=%llu&to_seq=%llu&limit=1000",
		                   (unsigned long long)want, (unsigned long long)size) < 0 ||
		    ehr_client_json(c, &status, &resp, "GET", ehr_buf_cstr(&path), NULL) < 0 ||
		    status != 200) {
			fprintf(stderr, "ehrctl audit verify: cannot fetch entries: %s\n",
			        status ? ehr_client_last_error(c) : ehr_error_msg());
			json_decref(resp);
			goto out;
		}
		entries = json_object_get(resp, "entries");
		if (json_array_size(entries) == 0) {
			fprintf(stderr, "DROPPED: entries %llu..%llu of the signed tree are missing\n",
			        (unsigned long long)want, (unsigned long long)size - 1);
			json_decref(resp);
			err = CTL_RC_CHECK_FAILED;
			goto out;
		}
		json_array_foreach(entries, i, e)
		{
			if (want >= size || check_entry(e, want, leaves[want - from]) < 0) {
				fprintf(stderr, "%s\n",
				        want >= size ? "REWRITTEN: entries past the tree size"
				                     : ehr_error_msg());
				json_decref(resp);
				err = CTL_RC_CHECK_FAILED;
				goto out;
			}
			want++;
			(*checked)++;
		}
		json_decref(resp);
	}
	err = 0;
out:
	ehr_buf_free(&path);
	return err;
}

/* 4. The tree: the verified frontier fr (empty from entry 0) extended with
 * the leaves of entries from..size-1 must give the signed root; if not,
 * the first entry not in the signed tree is named. Prints what failed;
 * returns the exit status (0 or 1). */
static int verify_root(struct ehr_client *c, struct frontier *fr, uint8_t (*leaves)[LEDGER_HASH_LEN],
                       uint64_t from, uint64_t size, const uint8_t root[LEDGER_HASH_LEN])
{
	uint8_t mth[LEDGER_HASH_LEN];

	for (uint64_t q = from; q < size; q++)
		frontier_push(fr, leaves[q - from]);
	frontier_root(fr, mth);
	if (CRYPTO_memcmp(mth, root, LEDGER_HASH_LEN) == 0)
		return 0;
	for (uint64_t q = from; q < size; q++) {
		if (prove_entry(c, q, size, leaves[q - from], root) < 0) {
			fprintf(stderr, "%s\n", ehr_error_msg());
			return CTL_RC_CHECK_FAILED;
		}
	}
	fprintf(stderr,
	        "REWRITTEN: the entries do not hash to the signed root of size "
	        "%llu\n",
	        (unsigned long long)size);
	return CTL_RC_CHECK_FAILED;
}

static int cmd_verify(struct ehr_client *c, int argc, char **argv)
{
	const char *keyfile = NULL, *origin = NULL, *statefile = NULL;
	char defstate[1024];
	struct ehr_buf note = EHR_BUF_INIT(1 << 16);
	uint8_t pub[32], root[LEDGER_HASH_LEN];
	uint64_t size = 0, from, checked = 0;
	struct vstate st;
	uint8_t(*leaves)[LEDGER_HASH_LEN] = NULL;
	struct frontier fr;
	struct ctl_witnesses ws = { .n = 0 };
	bool full = false;
	int err = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--full") == 0)
			full = true;
		else if (strcmp(argv[i], "--ledger-key") == 0 && i + 1 < argc)
			keyfile = argv[++i];
		else if (strcmp(argv[i], "--origin") == 0 && i + 1 < argc)
			origin = argv[++i];
		else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
			statefile = argv[++i];
		else if (strcmp(argv[i], "--witness") == 0 && i + 1 < argc)
			err = ctl_witness_opt(&ws, argv[++i]);
		else if (strcmp(argv[i], "--quorum") == 0 && i + 1 < argc)
			err = ctl_quorum_opt(&ws, argv[++i]);
		else
			return usage();
		if (err < 0) {
			fprintf(stderr, "ehrctl audit verify: %s\n", ehr_error_msg());
			return 2;
		}
	}
	if (keyfile == NULL)
		return usage();
	if (ctl_witness_finish(&ws) < 0) {
		fprintf(stderr, "ehrctl audit verify: %s\n", ehr_error_msg());
		return 2;
	}
	if (statefile == NULL) {
		if (ehr_fmt(defstate, sizeof(defstate), "%s/audit-state.json", ehr_client_default_dir()) <
		    0) {
			fprintf(stderr, "ehrctl audit verify: the default state path is too long: %s\n",
			        ehr_error_detail());
			return 1;
		}
		statefile = defstate;
	}
	if (ledger_key_load_public(pub, keyfile) < 0) {
		fprintf(stderr, "ehrctl audit verify: cannot load the ledger key: %s\n", ehr_error_detail());
		return 2;
	}
	if (load_state(&st, statefile) < 0) {
		fprintf(stderr, "ehrctl audit verify: unreadable state %s: %s\n", statefile,
		        ehr_error_detail());
		return 1;
	}
	if ((err = verify_checkpoint(c, &note, origin, pub, &ws, &size, root)) != 0 ||
	    (err = verify_consistency(c, &st, size, root)) != 0)
		goto out;

	/* 3. and 4.: only the entries past the verified frontier, unless --full. */
	if (st.have && !full && st.have_frontier) {
		from = st.size;
		fr = st.fr;
	} else {
		from = 0;
		memset(&fr, 0, sizeof(fr));
	}
	if (size > from) {
		leaves = calloc((size_t)(size - from), LEDGER_HASH_LEN);
		if (leaves == NULL) {
			fprintf(stderr, "ehrctl audit verify: out of memory\n");
			err = 1;
			goto out;
		}
		if ((err = verify_entries(c, from, size, leaves, &checked)) != 0 ||
		    (err = verify_root(c, &fr, leaves, from, size, root)) != 0)
			goto out;
	}
	if (save_state(statefile, size, root, ehr_buf_cstr(&note), &fr) < 0) {
		fprintf(stderr, "ehrctl audit verify: cannot save %s: %s\n", statefile, ehr_error_detail());
		err = 1;
		goto out;
	}
	printf("{\"ok\":true,\"tree_size\":%llu,\"previous_size\":%llu,\"entries_checked\":%llu}\n",
	       (unsigned long long)size, (unsigned long long)(st.have ? st.size : 0),
	       (unsigned long long)checked);
	err = 0;
out:
	free(leaves);
	ehr_buf_free(&note);
	return err;
}

int ctl_cmd_audit(int argc, char **argv)
{
	struct ehr_client *c = NULL;
	int rc;

	if (argc < 2)
		return usage();
	if (ctl_wants_help(argc, argv)) { /* before the profile: help needs none */
		usage_to(stdout);
		return 0;
	}
	if (strcmp(argv[1], "query") != 0 && strcmp(argv[1], "tail") != 0 && strcmp(argv[1], "verify") != 0)
		return usage();
	if (ctl_open(&c) != 0)
		return 1;
	if (strcmp(argv[1], "query") == 0)
		rc = cmd_query(c, argc - 1, argv + 1);
	else if (strcmp(argv[1], "tail") == 0)
		rc = cmd_tail(c, argc - 1, argv + 1);
	else
		rc = cmd_verify(c, argc - 1, argv + 1);
	ehr_client_free(c);
	return rc;
}
