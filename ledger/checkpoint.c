/*
 * checkpoint.c - C2SP tlog-checkpoint bodies inside C2SP signed notes,
 * Ed25519 key ids and verifier keys (docs/LEDGER.md §6).
 */
#include "ledger/ledger_internal.h"

#include <stdio.h>
#include <string.h>

#define NOTE_MAX 16384
#define NOTE_MAX_SIGS 100
static const char em_dash_sp[] = "\xe2\x80\x94 "; /* U+2014 then U+0020 */

int ledger_checkpoint_body(struct ehr_buf *out, const char *origin, uint64_t size,
                           const uint8_t root[LEDGER_HASH_LEN])
{
	ENSURE(ledger__key_name_ok(origin, strlen(origin)), EHR_ERR_INVAL);
	GUARD(ehr_buf_printf(out, "%s\n%llu\n", origin, (unsigned long long)size));
	GUARD(ehr_b64_encode(out, root, LEDGER_HASH_LEN));
	return ehr_buf_append_u8(out, '\n');
}

int ledger_checkpoint_note(struct ehr_buf *out, const char *origin, uint64_t size,
                           const uint8_t root[LEDGER_HASH_LEN], const uint8_t pub[32],
                           const uint8_t sig[LEDGER_SIG_LEN])
{
	uint8_t blob[4 + LEDGER_SIG_LEN];

	GUARD(ledger_checkpoint_body(out, origin, size, root));
	ledger_note_key_id(blob, origin, pub);
	memcpy(blob + 4, sig, LEDGER_SIG_LEN);
	GUARD(ehr_buf_printf(out, "\n%s%s ", em_dash_sp, origin));
	GUARD(ehr_b64_encode(out, blob, sizeof(blob)));
	return ehr_buf_append_u8(out, '\n');
}

/* Find the next '\n' in [p, end); the line excludes it. */
static const char *line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl;
}

int ledger_note_verify(const char *note, size_t len, const char *name, const uint8_t pub[32],
                       size_t *text_len)
{
	struct ehr_buf dec = EHR_BUF_INIT(512);
	const char *end = note + len, *sep = NULL, *p, *e;
	size_t olen = strlen(name);
	uint8_t want_id[4];
	int nsigs = 0, err = 0;
	bool found = false;

	if (len == 0 || len > NOTE_MAX)
		return ehr_error_set(EHR_ERR_PARSE, "note: empty or larger than %d bytes", NOTE_MAX);
	for (size_t i = 0; i < len; i++) {
		uint8_t c = (uint8_t)note[i];

		if ((c < 0x20 && c != '\n') || c == 0x7f)
			return ehr_error_set(EHR_ERR_PARSE, "note: control character at byte %zu", i);
	}
	/* The text ends at the last "\n\n" (C2SP signed-note; Go note.Open). */
	for (size_t i = len - 1; i-- > 0;)
		if (note[i] == '\n' && note[i + 1] == '\n') {
			sep = note + i;
			break;
		}
	if (sep == NULL || note[len - 1] != '\n')
		return ehr_error_set(EHR_ERR_PARSE, "note: no signature block");
	*text_len = (size_t)(sep - note) + 1;

	ledger_note_key_id(want_id, name, pub);
	p = sep + 2;
	while (p < end) {
		const char *sp, *kn;
		size_t nlen;

		e = line_end(p, end);
		if (e == NULL || ++nsigs > NOTE_MAX_SIGS) {
			err = ehr_error_set(EHR_ERR_PARSE, "note: bad signature block");
			goto out;
		}
		if ((size_t)(e - p) < 4 || memcmp(p, em_dash_sp, 4) != 0) { /* not secret */
			err = ehr_error_set(EHR_ERR_PARSE, "note: signature line must start with an em dash");
			goto out;
		}
		kn = p + 4;
		sp = memchr(kn, ' ', (size_t)(e - kn));
		if (sp == NULL || !ledger__key_name_ok(kn, (size_t)(sp - kn))) {
			err = ehr_error_set(EHR_ERR_PARSE, "note: bad signature line");
			goto out;
		}
		nlen = (size_t)(sp - kn);
		ehr_buf_reset(&dec);
		if (ehr_b64_decode(&dec, sp + 1, (size_t)(e - sp - 1)) < 0 || dec.len < 5) {
			err = ehr_error_set(EHR_ERR_PARSE, "note: bad signature encoding");
			goto out;
		}
		/* key names and key ids are public */
		bool ours = nlen == olen && memcmp(kn, name, olen) == 0; /* not secret */

		ours = ours && memcmp(dec.data, want_id, 4) == 0; /* not secret */
		if (!found && ours) {
			/* The first line by our key decides (C2SP: a failing
			 * known-key signature rejects the note). */
			found = true;
			if (dec.len != 4 + LEDGER_SIG_LEN ||
			    ledger_ed25519_verify(pub, dec.data + 4, note, *text_len) < 0) {
				err = ehr_error_set(EHR_ERR_TAMPER, "note: signature does not verify");
				goto out;
			}
		}
		p = e + 1;
	}
	if (!found)
		err = ehr_error_set(EHR_ERR_TAMPER, "note: no signature by key %s", name);
out:
	ehr_buf_free(&dec);
	return err;
}

int ledger_checkpoint_verify(const char *note, size_t len, const uint8_t pub[32], const char *origin,
                             uint64_t *size, uint8_t root[LEDGER_HASH_LEN])
{
	struct ehr_buf dec = EHR_BUF_INIT(64);
	const char *p, *e, *tend;
	size_t text_len, olen = strlen(origin);
	char num[24];
	int sig_err;

	/* Parse first (a malformed note is EHR_ERR_PARSE even if unsigned),
	 * then require the signature. */

	sig_err = ledger_note_verify(note, len, origin, pub, &text_len);
	if (sig_err == EHR_ERR_PARSE)
		return sig_err;
	tend = note + text_len;
	p = note;
	e = line_end(p, tend);
	if (e == NULL || e == p)
		return ehr_error_set(EHR_ERR_PARSE, "checkpoint: no origin line");
	if ((size_t)(e - p) != olen || memcmp(p, origin, olen) != 0) /* not secret */
		return ehr_error_set(EHR_ERR_TAMPER, "checkpoint: origin line is not ours");
	p = e + 1;
	e = line_end(p, tend);
	if (e == NULL || e == p || e - p >= (ptrdiff_t)sizeof(num) || (e - p > 1 && *p == '0'))
		return ehr_error_set(EHR_ERR_PARSE, "checkpoint: bad size line");
	memcpy(num, p, (size_t)(e - p));
	num[e - p] = '\0';
	if (ehr_parse_u64(size, num, INT64_MAX) < 0)
		return ehr_error_set(EHR_ERR_PARSE, "checkpoint: bad size line");
	p = e + 1;
	e = line_end(p, tend);
	if (e == NULL)
		return ehr_error_set(EHR_ERR_PARSE, "checkpoint: no root line");
	if (ehr_b64_decode(&dec, p, (size_t)(e - p)) < 0 || dec.len != LEDGER_HASH_LEN) {
		ehr_buf_free(&dec);
		return ehr_error_set(EHR_ERR_PARSE, "checkpoint: bad root line");
	}
	memcpy(root, dec.data, LEDGER_HASH_LEN);
	ehr_buf_free(&dec);
	if (sig_err < 0)
		return ehr_error_wrap(sig_err, "checkpoint");
	return 0;
}
