/*
 * cosig.c - witness cosignatures and the witness protocol's request body,
 * pure (no I/O): C2SP tlog-cosignature (Ed25519 cosignature/v1, signature
 * type 0x04), quorum checks of cosigned checkpoints, and C2SP tlog-witness
 * add-checkpoint bodies. The one copy of these formats: the gateway (as a
 * witness client), ehrwitness and ehrctl all use it. docs/WITNESS.md.
 */
#include "ledger/ledger_internal.h"

#include <string.h>

static const char em_dash_sp[] = "\xe2\x80\x94 "; /* U+2014 then U+0020 */
#define COSIG_MAX_TIME ((uint64_t)INT64_MAX)      /* tlog-cosignature: <= 2^63 - 1 */

void ledger_cosig_key_id(uint8_t out[4], const char *name, const uint8_t pub[32])
{
	ledger__key_id(out, name, LEDGER_SIGTYPE_COSIG_V1, pub);
}

int ledger_cosig_vkey_format(struct ehr_buf *out, const char *name, const uint8_t pub[32])
{
	return ledger__vkey_format(out, name, LEDGER_SIGTYPE_COSIG_V1, pub);
}

int ledger_cosig_vkey_parse(const char *vkey, size_t len, char *name, size_t name_cap, uint8_t pub[32])
{
	return ledger__vkey_parse(vkey, len, LEDGER_SIGTYPE_COSIG_V1, name, name_cap, pub);
}

/* "cosignature/v1\ntime <T>\n" || text (tlog-cosignature, Ed25519 signed message). */
static int cosig_message(struct ehr_buf *msg, uint64_t timestamp, const char *text, size_t text_len)
{
	GUARD(ehr_buf_printf(msg, "cosignature/v1\ntime %llu\n", (unsigned long long)timestamp));
	return ehr_buf_append(msg, text, text_len);
}

int ledger_cosig_sign(struct ehr_buf *out, EVP_PKEY *key, const char *name, uint64_t timestamp,
                      const char *text, size_t text_len)
{
	struct ehr_buf msg = EHR_BUF_INIT(LEDGER_NOTE_MAX + 64);
	uint8_t blob[LEDGER_COSIG_BLOB_LEN], pub[32];
	int err = 0;

	ENSURE(ledger__key_name_ok(name, strlen(name)), EHR_ERR_INVAL);
	ENSURE(timestamp > 0 && timestamp <= COSIG_MAX_TIME, EHR_ERR_INVAL);
	ENSURE(text_len > 0 && text[text_len - 1] == '\n', EHR_ERR_INVAL);
	GUARD(ledger_key_raw_public(pub, key));
	GUARD_GOTO(cosig_message(&msg, timestamp, text, text_len));
	ledger_cosig_key_id(blob, name, pub);
	for (int i = 0; i < 8; i++)
		blob[4 + i] = (uint8_t)(timestamp >> (56 - 8 * i));
	GUARD_GOTO(ledger_ed25519_sign(blob + 12, key, msg.data, msg.len));
	GUARD_GOTO(ehr_buf_printf(out, "%s%s ", em_dash_sp, name));
	GUARD_GOTO(ehr_b64_encode(out, blob, sizeof(blob)));
	GUARD_GOTO(ehr_buf_append_u8(out, '\n'));
out:
	ehr_buf_free(&msg);
	return err;
}

int ledger_cosig_verify(const char *note, size_t len, const char *name, const uint8_t pub[32],
                        uint64_t *timestamp)
{
	struct ehr_buf msg = EHR_BUF_INIT(LEDGER_NOTE_MAX + 64);
	uint8_t id[4], blob[LEDGER_COSIG_BLOB_LEN];
	uint64_t t = 0;
	size_t text_len, blen;
	int err;

	ledger_cosig_key_id(id, name, pub);
	err = ledger__note_find(note, len, name, id, &text_len, blob, sizeof(blob), &blen);
	if (err == EHR_ERR_NOT_FOUND)
		return ehr_error_set(EHR_ERR_NOT_FOUND, "no cosignature by witness %s", name);
	if (err < 0)
		return err == EHR_ERR_TAMPER
		               ? ehr_error_set(err, "cosignature by witness %s is malformed", name)
		               : err;
	if (blen != sizeof(blob))
		return ehr_error_set(EHR_ERR_TAMPER, "cosignature by witness %s is malformed", name);
	for (int i = 0; i < 8; i++)
		t = (t << 8) | blob[4 + i];
	if (t > COSIG_MAX_TIME)
		return ehr_error_set(EHR_ERR_TAMPER, "cosignature by witness %s has a bad time", name);
	GUARD_GOTO(cosig_message(&msg, t, note, text_len));
	if (ledger_ed25519_verify(pub, blob + 12, msg.data, msg.len) < 0) {
		err = ehr_error_set(EHR_ERR_TAMPER, "cosignature by witness %s does not verify", name);
		goto out;
	}
	if (timestamp != NULL)
		*timestamp = t;
out:
	ehr_buf_free(&msg);
	return err;
}

/* Has an earlier witness in w[0..i) the same public key? (counted once) */
static bool pub_seen(const struct ledger_note_key *w, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (memcmp(w[j].pub, w[i].pub, 32) == 0) /* not secret */
			return true;
	return false;
}

/* The current error's public text as the report's reason (cut, never lost). */
static void keep_reason(struct ledger_quorum_report *rep)
{
	if (ehr_fmt(rep->reason, sizeof(rep->reason), "%.200s", ehr_error_msg()) < 0)
		rep->reason[0] = '\0';
}

int ledger_note_quorum(const char *note, size_t len, const char *origin, const uint8_t log_pub[32],
                       const struct ledger_note_key *w, size_t n, size_t k, struct ledger_quorum_report *rep)
{
	struct ledger_quorum_report local;
	int err;

	if (rep == NULL)
		rep = &local;
	memset(rep, 0, sizeof(*rep));
	rep->first_bad = -1;
	if (k > n)
		return ehr_error_set(EHR_ERR_INVAL, "quorum %zu is larger than the %zu witnesses", k, n);
	err = ledger_checkpoint_verify(note, len, log_pub, origin, &rep->size, rep->root);
	if (err < 0) {
		keep_reason(rep);
		return err;
	}
	for (size_t i = 0; i < n; i++) {
		int rc = ledger_cosig_verify(note, len, w[i].name, w[i].pub, NULL);

		if (rc == 0) {
			if (!pub_seen(w, i))
				rep->valid++;
			continue;
		}
		if (rc == EHR_ERR_PARSE)
			return rc; /* the whole note is malformed */
		if (rep->first_bad < 0) {
			rep->first_bad = (int)i;
			rep->first_bad_rc = rc;
			keep_reason(rep);
		}
	}
	if (rep->valid < k)
		return ehr_error_set(EHR_ERR_TAMPER, "%zu of %zu witness cosignatures verify, %zu needed%s%s",
		                     rep->valid, n, k, rep->first_bad >= 0 ? ": " : "", rep->reason);
	return 0;
}

int ledger_note_verify_any(const char *note, size_t len, const struct ledger_note_key *keys, size_t n,
                           size_t *text_len)
{
	size_t ok = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t id[4], blob[4 + LEDGER_SIG_LEN];
		size_t blen;
		int err;

		ledger_note_key_id(id, keys[i].name, keys[i].pub);
		err = ledger__note_find(note, len, keys[i].name, id, text_len, blob, sizeof(blob), &blen);
		if (err == EHR_ERR_NOT_FOUND)
			continue;
		if (err == EHR_ERR_PARSE)
			return err;
		/* A line by a trusted key that fails makes the note malformed (signed-note). */
		if (err < 0 || blen != sizeof(blob) ||
		    ledger_ed25519_verify(keys[i].pub, blob + 4, note, *text_len) < 0)
			return ehr_error_set(EHR_ERR_TAMPER, "note: signature by key %s does not verify",
			                     keys[i].name);
		ok++;
	}
	if (ok == 0) {
		GUARD(ledger__note_scan(note, len, text_len, NULL, NULL));
		return ehr_error_set(EHR_ERR_TAMPER, "note: no signature by a trusted key");
	}
	return 0;
}

int ledger_add_checkpoint_format(struct ehr_buf *out, uint64_t old_size,
                                 const uint8_t (*proof)[LEDGER_HASH_LEN], size_t n, const char *note,
                                 size_t note_len)
{
	ENSURE(n <= LEDGER_WITNESS_MAX_PROOF, EHR_ERR_INVAL);
	ENSURE(old_size <= (uint64_t)INT64_MAX, EHR_ERR_INVAL);
	ENSURE(note_len > 0 && note_len <= LEDGER_NOTE_MAX, EHR_ERR_INVAL);
	GUARD(ehr_buf_printf(out, "old %llu\n", (unsigned long long)old_size));
	return ledger__hashes_then_note(out, proof, n, note, note_len);
}

/* One '\n'-terminated line of the cursor's text: [*line, *line + *n). */
static int next_line(struct ehr_cursor *c, const char **line, size_t *n)
{
	const uint8_t *p = c->p + c->off, *nl;
	size_t rem = ehr_cursor_remaining(c);

	nl = memchr(p, '\n', rem);
	if (nl == NULL)
		return ehr_error_set(EHR_ERR_PARSE, "add-checkpoint: line without a newline");
	*line = (const char *)p;
	*n = (size_t)(nl - p);
	return ehr_cursor_skip(c, *n + 1);
}

static int parse_old_line(uint64_t *old, const char *line, size_t n)
{
	char num[24];

	if (n < 5 || memcmp(line, "old ", 4) != 0) /* not secret */
		return ehr_error_set(EHR_ERR_PARSE, "add-checkpoint: first line must be \"old <size>\"");
	line += 4;
	n -= 4;
	if (n >= sizeof(num) || (n > 1 && line[0] == '0'))
		return ehr_error_set(EHR_ERR_PARSE, "add-checkpoint: bad old size");
	for (size_t i = 0; i < n; i++)
		if (line[i] < '0' || line[i] > '9')
			return ehr_error_set(EHR_ERR_PARSE, "add-checkpoint: bad old size");
	memcpy(num, line, n);
	num[n] = '\0';
	if (ehr_parse_u64(old, num, INT64_MAX) < 0)
		return ehr_error_set(EHR_ERR_PARSE, "add-checkpoint: bad old size");
	return 0;
}

int ledger_add_checkpoint_parse(struct ledger_add_checkpoint *req, const char *body, size_t len)
{
	struct ehr_buf dec = EHR_BUF_INIT(64);
	struct ehr_cursor c;
	const char *line;
	size_t n;
	int err = 0;

	memset(req, 0, sizeof(*req));
	if (len > LEDGER_ADD_CHECKPOINT_MAX)
		return ehr_error_set(EHR_ERR_TOO_LARGE, "add-checkpoint: body larger than %d bytes",
		                     LEDGER_ADD_CHECKPOINT_MAX);
	ehr_cursor_init(&c, body, len);
	GUARD(next_line(&c, &line, &n));
	GUARD(parse_old_line(&req->old_size, line, n));
	for (;;) {
		GUARD_GOTO(next_line(&c, &line, &n));
		if (n == 0)
			break;
		if (req->proof_len == LEDGER_WITNESS_MAX_PROOF) {
			err = ehr_error_set(EHR_ERR_PARSE, "add-checkpoint: more than %d proof lines",
			                    LEDGER_WITNESS_MAX_PROOF);
			goto out;
		}
		ehr_buf_reset(&dec);
		if (n != 44 || ehr_b64_decode(&dec, line, n) < 0 || dec.len != LEDGER_HASH_LEN) {
			err = ehr_error_set(EHR_ERR_PARSE,
			                    "add-checkpoint: proof line %zu is not a base64 hash",
			                    req->proof_len + 1);
			goto out;
		}
		memcpy(req->proof[req->proof_len++], dec.data, LEDGER_HASH_LEN);
	}
	req->note = body + c.off;
	req->note_len = ehr_cursor_remaining(&c);
	if (req->note_len == 0)
		err = ehr_error_set(EHR_ERR_PARSE, "add-checkpoint: no checkpoint after the empty line");
out:
	ehr_buf_free(&dec);
	return err;
}
