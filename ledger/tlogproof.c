/*
 * tlogproof.c - receipts: C2SP tlog-proof (c2sp.org/tlog-proof) texts for
 * ledger entries (pure). docs/LEDGER.md §11 is the contract:
 *
 *   c2sp.org/tlog-proof@v1
 *   extra <base64 of the entry's canonical bytes, LEDGER.md §1>
 *   index <seq>
 *   <base64 hash>            one per line: RFC 6962 PATH(seq, D[size])
 *   <empty line>
 *   <the published checkpoint note, verbatim, with its cosignatures>
 *
 * The extra line carries the entry so a receipt verifies alone: its leaf
 * hash is SHA-256(0x00 || extra). The extra data is not trusted as such:
 * it counts only once its hash is proven included under a checkpoint that
 * the log key and a quorum of witnesses signed (ledger_tlog_proof_verify).
 */
#include "ledger/ledger.h"
#include "ledger/ledger_internal.h"

#include <string.h>

#define PROOF_HEADER "c2sp.org/tlog-proof@v1\n"

int ledger_tlog_proof_format(struct ehr_buf *out, const void *extra, size_t extra_len, uint64_t index,
                             const uint8_t (*path)[LEDGER_HASH_LEN], size_t n, const char *note,
                             size_t note_len)
{
	ENSURE(n <= LEDGER_MAX_PROOF && note_len > 0, EHR_ERR_INVAL);
	GUARD(ehr_buf_append_str(out, PROOF_HEADER));
	if (extra_len > 0) {
		GUARD(ehr_buf_append_str(out, "extra "));
		GUARD(ehr_b64_encode(out, extra, extra_len));
		GUARD(ehr_buf_append_u8(out, '\n'));
	}
	GUARD(ehr_buf_printf(out, "index %llu\n", (unsigned long long)index));
	return ledger__hashes_then_note(out, path, n, note, note_len);
}

int ledger__hashes_then_note(struct ehr_buf *out, const uint8_t (*hashes)[LEDGER_HASH_LEN], size_t n,
                             const char *note, size_t note_len)
{
	for (size_t i = 0; i < n; i++) {
		GUARD(ehr_b64_encode(out, hashes[i], LEDGER_HASH_LEN));
		GUARD(ehr_buf_append_u8(out, '\n'));
	}
	GUARD(ehr_buf_append_u8(out, '\n'));
	return ehr_buf_append(out, note, note_len);
}

/* The next '\n'-terminated line of text[*off..len) (without the newline). */
static int next_line(const char *text, size_t len, size_t *off, const char **line, size_t *line_len)
{
	const char *nl;

	if (*off >= len || (nl = memchr(text + *off, '\n', len - *off)) == NULL)
		return ehr_error_set(EHR_ERR_PARSE, "tlog-proof: a line does not end in a newline");
	*line = text + *off;
	*line_len = (size_t)(nl - *line);
	*off += *line_len + 1;
	return 0;
}

static bool starts(const char *line, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(line, prefix, n) == 0; /* not secret */
}

/* "index <decimal without leading zeros>". */
static int parse_index(uint64_t *out, const char *line, size_t len)
{
	char num[24];

	ENSURE(starts(line, len, "index ") && len - 6 >= 1 && len - 6 < sizeof(num), EHR_ERR_PARSE);
	memcpy(num, line + 6, len - 6);
	num[len - 6] = '\0';
	if ((num[0] == '0' && num[1] != '\0') || strspn(num, "0123456789") != len - 6 ||
	    ehr_parse_u64(out, num, INT64_MAX) < 0)
		return ehr_error_set(EHR_ERR_PARSE, "tlog-proof: bad index line");
	return 0;
}

/* One base64 line of exactly 32 bytes. */
static int parse_hash(uint8_t out[LEDGER_HASH_LEN], const char *line, size_t len)
{
	struct ehr_buf b = EHR_BUF_INIT(64);
	int err = ehr_b64_decode(&b, line, len);

	if (err == 0 && b.len != LEDGER_HASH_LEN)
		err = EHR_ERR_PARSE;
	if (err == 0)
		memcpy(out, b.data, LEDGER_HASH_LEN);
	ehr_buf_free(&b);
	return err < 0 ? ehr_error_set(EHR_ERR_PARSE, "tlog-proof: bad proof hash line") : 0;
}

int ledger_tlog_proof_parse(struct ledger_tlog_proof *p, struct ehr_buf *extra, const char *text, size_t len)
{
	const char *line = NULL;
	size_t off = 0, n = 0;

	memset(p, 0, sizeof(*p));
	ENSURE(len <= LEDGER_TLOG_PROOF_MAX, EHR_ERR_TOO_LARGE);
	GUARD(next_line(text, len, &off, &line, &n));
	if (n != strlen(PROOF_HEADER) - 1 || memcmp(line, PROOF_HEADER, n) != 0) /* not secret */
		return ehr_error_set(EHR_ERR_PARSE,
		                     "tlog-proof: the first line must be c2sp.org/tlog-proof@v1");
	GUARD(next_line(text, len, &off, &line, &n));
	if (starts(line, n, "extra ")) {
		if (ehr_b64_decode(extra, line + 6, n - 6) < 0 || extra->len == 0)
			return ehr_error_set(EHR_ERR_PARSE, "tlog-proof: bad extra line");
		p->has_extra = true;
		GUARD(next_line(text, len, &off, &line, &n));
	}
	GUARD(parse_index(&p->index, line, n));
	for (;;) {
		GUARD(next_line(text, len, &off, &line, &n));
		if (n == 0)
			break;
		if (p->path_len == LEDGER_MAX_PROOF)
			return ehr_error_set(EHR_ERR_PARSE, "tlog-proof: more than %d proof hashes",
			                     LEDGER_MAX_PROOF);
		GUARD(parse_hash(p->path[p->path_len++], line, n));
	}
	if (off >= len)
		return ehr_error_set(EHR_ERR_PARSE, "tlog-proof: no checkpoint after the proof");
	p->note = text + off;
	p->note_len = len - off;
	return 0;
}

/* Entry, leaf hash and inclusion: the parts a checkpoint does not cover. */
static int check_inclusion(const struct ledger_tlog_proof *p, const struct ehr_buf *extra,
                           struct ledger_tlog_proof_report *rep)
{
	uint8_t leaf[LEDGER_HASH_LEN];

	if (!p->has_extra)
		return ehr_error_set(EHR_ERR_PARSE, "receipt: no extra line (the entry) to verify");
	if (ledger_entry_decode(&rep->entry, extra->data, extra->len, true) < 0)
		return ehr_error_set(EHR_ERR_TAMPER, "receipt: the extra line is not a ledger entry");
	if (rep->entry.seq != p->index)
		return ehr_error_set(EHR_ERR_TAMPER, "receipt: the entry is seq %llu, the index %llu",
		                     (unsigned long long)rep->entry.seq, (unsigned long long)p->index);
	merkle_leaf_hash(leaf, extra->data, extra->len);
	if (p->index >= rep->quorum.size ||
	    merkle_verify_inclusion(leaf, p->index, rep->quorum.size,
	                            (const uint8_t(*)[LEDGER_HASH_LEN])p->path, p->path_len,
	                            rep->quorum.root) < 0)
		return ehr_error_set(EHR_ERR_TAMPER,
		                     "receipt: entry %llu is not proven included in the tree of %llu",
		                     (unsigned long long)p->index, (unsigned long long)rep->quorum.size);
	return 0;
}

int ledger_tlog_proof_verify(const char *text, size_t len, const char *origin, const uint8_t log_pub[32],
                             const struct ledger_note_key *w, size_t n, size_t k, struct ehr_buf *extra,
                             struct ledger_tlog_proof_report *rep)
{
	struct ledger_tlog_proof p;

	memset(rep, 0, sizeof(*rep));
	rep->quorum.first_bad = -1;
	GUARD(ledger_tlog_proof_parse(&p, extra, text, len));
	rep->index = p.index;
	GUARD(ledger_note_quorum(p.note, p.note_len, origin, log_pub, w, n, k, &rep->quorum));
	return check_inclusion(&p, extra, rep);
}
