/*
 * ctl_witness.c - the witness options that every verifying ehrctl command
 * shares: --witness NAME=VKEY (repeatable) and --quorum K, and the quorum
 * check of a cosigned checkpoint with them (ledger_note_quorum of
 * ledger/cosig.c: the one implementation of C2SP tlog-cosignature).
 */
#include <stdio.h>
#include <string.h>

#include "client/ctl/ctl_commands.h"

int ctl_witness_opt(struct ctl_witnesses *ws, const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct ledger_note_key *w;
	char *name;
	size_t nlen;

	if (ws->n >= CTL_MAX_WITNESSES)
		return ehr_error_set(EHR_ERR_INVAL, "--witness: at most %d witnesses", CTL_MAX_WITNESSES);
	if (eq == NULL || eq == arg)
		return ehr_error_set(EHR_ERR_INVAL, "--witness wants NAME=VKEY");
	w = &ws->keys[ws->n];
	name = ws->names[ws->n];
	nlen = (size_t)(eq - arg);
	if (ledger_cosig_vkey_parse(eq + 1, strlen(eq + 1), name, sizeof(ws->names[0]), w->pub) < 0)
		return ehr_error_set(EHR_ERR_INVAL, "--witness %.*s: not a cosignature/v1 vkey: %s",
		                     (int)nlen, arg, ehr_error_msg());
	/* The vkey names the key; NAME must say the same (no silent mix-ups). */
	if (strlen(name) != nlen || memcmp(name, arg, nlen) != 0) /* not secret */
		return ehr_error_set(EHR_ERR_INVAL, "--witness %.*s: the vkey is for %s", (int)nlen, arg,
		                     name);
	for (size_t i = 0; i < ws->n; i++)
		if (strcmp(ws->names[i], name) == 0)
			return ehr_error_set(EHR_ERR_INVAL, "--witness %s given twice", name);
	w->name = name;
	ws->n++;
	return 0;
}

int ctl_quorum_opt(struct ctl_witnesses *ws, const char *arg)
{
	uint64_t k;

	if (ehr_parse_u64(&k, arg, CTL_MAX_WITNESSES) < 0 || k == 0)
		return ehr_error_set(EHR_ERR_INVAL, "--quorum wants 1..%d", CTL_MAX_WITNESSES);
	ws->k = (size_t)k;
	return 0;
}

int ctl_witness_finish(struct ctl_witnesses *ws)
{
	if (ws->n == 0 && ws->k == 0)
		return 0;
	if (ws->n == 0)
		return ehr_error_set(EHR_ERR_INVAL, "--quorum needs --witness NAME=VKEY");
	if (ws->k == 0)
		ws->k = ws->n; /* all of them, unless told otherwise */
	if (ws->k > ws->n)
		return ehr_error_set(EHR_ERR_INVAL, "--quorum %zu is more than the %zu witnesses given",
		                     ws->k, ws->n);
	return 0;
}

int ctl_quorum_check(const struct ctl_witnesses *ws, const char *note, size_t len, const char *origin,
                     const uint8_t log_pub[32])
{
	struct ledger_quorum_report rep;

	if (ws->n == 0)
		return 0;
	if (ledger_note_quorum(note, len, origin, log_pub, ws->keys, ws->n, ws->k, &rep) == 0)
		return 0;
	fprintf(stderr,
	        "NO_QUORUM: the checkpoint of size %llu has %zu valid cosignatures of the %zu needed; %s\n",
	        (unsigned long long)rep.size, rep.valid, ws->k, rep.reason[0] ? rep.reason : ehr_error_msg());
	return CTL_RC_CHECK_FAILED;
}
