/*
 * checkpoint.c - C2SP tlog-checkpoint bodies inside C2SP signed notes,
 * Ed25519 key ids and verifier keys (docs/LEDGER.md §6).
 */
#include "ledger/ledger_internal.h"

#include <stdio.h>
#include <string.h>

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

int ledger__note_scan(const char *note, size_t len, size_t *text_len, ledger__note_sig_fn cb, void *ctx)
{
	struct ehr_buf dec = EHR_BUF_INIT(512);
	const char *end = note + len, *sep = NULL, *p, *e;
	int nsigs = 0, err = 0;

	if (len == 0 || len > LEDGER_NOTE_MAX)
		return ehr_error_set(EHR_ERR_PARSE, "note: empty or larger than %d bytes", LEDGER_NOTE_MAX);
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

	p = sep + 2;
	while (p < end) {
		const char *sp, *kn;

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
		ehr_buf_reset(&dec);
		if (ehr_b64_decode(&dec, sp + 1, (size_t)(e - sp - 1)) < 0 || dec.len < 5) {
			err = ehr_error_set(EHR_ERR_PARSE, "note: bad signature encoding");
			goto out;
		}
		if (cb != NULL && (err = cb(ctx, kn, (size_t)(sp - kn), dec.data, dec.len)) < 0)
			goto out;
		p = e + 1;
	}
out:
	ehr_buf_free(&dec);
	return err;
}

/* The first signature line whose key name and key id match decides. */
struct note_match {
	const char *name;
	size_t nlen;
	const uint8_t *id;
	const uint8_t *blob; /* copy of the first matching blob */
	size_t blen;
	uint8_t buf[512];
};

static int note_match_cb(void *ctx, const char *name, size_t nlen, const uint8_t *blob, size_t blen)
{
	struct note_match *m = ctx;

	/* key names and key ids are public */
	if (m->blob != NULL || nlen != m->nlen || memcmp(name, m->name, nlen) != 0 || /* not secret */
	    memcmp(blob, m->id, 4) != 0)                                              /* not secret */
		return 0;
	if (blen > sizeof(m->buf))
		blen = sizeof(m->buf); /* longer than any signature we know: fails below */
	memcpy(m->buf, blob, blen);
	m->blob = m->buf;
	m->blen = blen;
	return 0;
}

int ledger__note_find(const char *note, size_t len, const char *name, const uint8_t id[4], size_t *text_len,
                      uint8_t *blob, size_t blob_cap, size_t *blob_len)
{
	struct note_match m = { .name = name, .nlen = strlen(name), .id = id };

	GUARD(ledger__note_scan(note, len, text_len, note_match_cb, &m));
	if (m.blob == NULL)
		return ehr_error_set(EHR_ERR_NOT_FOUND, "note: no signature by key %s", name);
	if (m.blen > blob_cap)
		return ehr_error_set(EHR_ERR_TAMPER, "note: signature by key %s has the wrong length", name);
	memcpy(blob, m.blob, m.blen);
	*blob_len = m.blen;
	return 0;
}

int ledger_note_verify(const char *note, size_t len, const char *name, const uint8_t pub[32],
                       size_t *text_len)
{
	uint8_t want_id[4], blob[4 + LEDGER_SIG_LEN];
	size_t blen;
	int err;

	ledger_note_key_id(want_id, name, pub);
	err = ledger__note_find(note, len, name, want_id, text_len, blob, sizeof(blob), &blen);
	if (err == EHR_ERR_NOT_FOUND)
		return ehr_error_set(EHR_ERR_TAMPER, "note: no signature by key %s", name);
	GUARD(err);
	/* The first line by our key decides (C2SP: a failing known-key
	 * signature rejects the note). */
	if (blen != sizeof(blob) || ledger_ed25519_verify(pub, blob + 4, note, *text_len) < 0)
		return ehr_error_set(EHR_ERR_TAMPER, "note: signature does not verify");
	return 0;
}

/* The checkpoint's lines; *origin points into the note (not terminated). */
static int checkpoint_fields(const char *note, size_t len, const char **origin, size_t *olen, uint64_t *size,
                             uint8_t root[LEDGER_HASH_LEN], size_t *text_len)
{
	struct ehr_buf dec = EHR_BUF_INIT(64);
	const char *p, *e, *tend;
	char num[24];

	GUARD(ledger__note_scan(note, len, text_len, NULL, NULL));
	tend = note + *text_len;
	p = note;
	e = line_end(p, tend);
	if (e == NULL || e == p)
		return ehr_error_set(EHR_ERR_PARSE, "checkpoint: no origin line");
	*origin = p;
	*olen = (size_t)(e - p);
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
	return 0;
}

int ledger_checkpoint_parse(const char *note, size_t len, char *origin, size_t origin_cap, uint64_t *size,
                            uint8_t root[LEDGER_HASH_LEN], size_t *text_len)
{
	const char *o;
	size_t olen;

	GUARD(checkpoint_fields(note, len, &o, &olen, size, root, text_len));
	if (olen + 1 > origin_cap)
		return ehr_error_set(EHR_ERR_PARSE, "checkpoint: origin longer than %zu bytes",
		                     origin_cap - 1);
	memcpy(origin, o, olen);
	origin[olen] = '\0';
	return 0;
}

int ledger_checkpoint_verify(const char *note, size_t len, const uint8_t pub[32], const char *origin,
                             uint64_t *size, uint8_t root[LEDGER_HASH_LEN])
{
	const char *got;
	size_t text_len, glen;
	int err;

	/* Parse first (a malformed note is EHR_ERR_PARSE even if unsigned),
	 * then require our origin and our signature. */
	GUARD(checkpoint_fields(note, len, &got, &glen, size, root, &text_len));
	if (glen != strlen(origin) || memcmp(got, origin, glen) != 0) /* not secret */
		return ehr_error_set(EHR_ERR_TAMPER, "checkpoint: origin line is not ours");
	if ((err = ledger_note_verify(note, len, origin, pub, &text_len)) < 0)
		return ehr_error_wrap(err, "checkpoint");
	return 0;
}
