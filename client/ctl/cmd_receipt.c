/*
 * cmd_receipt.c - receipts (docs/PROTOCOL.md §16, docs/LEDGER.md §11):
 *
 *   ehrctl receipt get INDEX [-o FILE] [--wait SECONDS]
 *   ehrctl receipt verify FILE --log-key VKEY [--witness NAME=VKEY ...] [--quorum K]
 *
 * `get` fetches the C2SP tlog-proof of a ledger entry (the index every
 * acknowledged upload, read and contract change names); `record put|get
 * --receipt FILE` save theirs the same way (ctl_receipt_save). `verify`
 * needs no gateway and no profile: the log's vkey (what `ehrgate ledger
 * vkey` prints, obtained out of band) and the witnesses' cosignature vkeys
 * decide, with ledgercore's checks (ledger_tlog_proof_verify).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl/ctl_commands.h"
#include "ledger/ledger.h"

#define RECEIPT_DEFAULT_WAIT "30"

static int usage(void)
{
	fprintf(stderr,
	        "usage: ehrctl receipt get INDEX [-o FILE] [--wait SECONDS]\n"
	        "       ehrctl receipt verify FILE --log-key VKEY [--witness NAME=VKEY ...] [--quorum K]\n"
	        "  get: the C2SP tlog-proof of ledger entry INDEX (yours: its actor, the patient it\n"
	        "       concerns, or any for an auditor), waiting up to SECONDS (default 30) for a\n"
	        "       published checkpoint that covers it; to stdout or FILE.\n"
	        "  verify: offline. The checkpoint must be signed by the log key (what `ehrgate\n"
	        "       ledger vkey` prints) and cosigned by K of the witnesses (default K = all\n"
	        "       given); the entry in the receipt must be proven included at its index.\n"
	        "       Exit 0 when it verifies, 1 when it does not, 2 usage, 3 unreadable file.\n");
	return 2;
}

int ctl_receipt_save(struct ehr_client *c, const char *url, const char *wait_s, const char *file)
{
	struct ehr_buf body = EHR_BUF_INIT(LEDGER_TLOG_PROOF_MAX), pref = EHR_BUF_INIT(64);
	const char *hdrs[2] = { NULL, NULL };
	long status = 0;
	int rc = 1;

	if (ehr_buf_printf(&pref, "Prefer: wait=%s", wait_s) < 0)
		goto out;
	hdrs[0] = ehr_buf_cstr(&pref);
	if (ehr_client_request(c, &status, &body, "GET", url, hdrs, NULL, 0, NULL, NULL) < 0) {
		rc = ctl_fail("receipt");
		goto out;
	}
	if (status == 202) {
		fprintf(stderr,
		        "ehrctl receipt: %s is not covered by a published checkpoint yet; "
		        "fetch it later with `ehrctl receipt get`\n",
		        url);
		goto out;
	}
	if (status != 200) {
		json_t *j = NULL;
		ehr_json_parse(&j, body.data, body.len, 1 << 20, 16);
		rc = ctl_finish(c, status, j);
		json_decref(j);
		goto out;
	}
	if (file == NULL || strcmp(file, "-") == 0) {
		rc = fwrite(body.data, 1, body.len, stdout) == body.len ? 0 : 1;
	} else if (ehr_file_write_atomic(file, body.data, body.len, 0644, false) < 0) {
		fprintf(stderr, "ehrctl receipt: writing %s: %s\n", file, ehr_error_detail());
	} else {
		fprintf(stderr, "ehrctl: receipt saved to %s\n", file);
		rc = 0;
	}
out:
	ehr_buf_free(&body);
	ehr_buf_free(&pref);
	return rc;
}

static int cmd_get(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "wait", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL, *wait = RECEIPT_DEFAULT_WAIT;
	char url[64];
	uint64_t index, w;
	struct ehr_client *c = NULL;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'o': out = optarg; break;
		case 'w': wait = optarg; break;
		case 'h': usage(); return 0;
		default: return usage();
		}
	}
	if (argc - optind != 1 || ehr_parse_u64(&index, argv[optind], INT64_MAX) < 0 ||
	    ehr_parse_u64(&w, wait, 3600) < 0 ||
	    ehr_fmt(url, sizeof(url), "/v1/receipts/%llu", (unsigned long long)index) < 0)
		return usage();
	if (ctl_open(&c) != 0)
		return 1;
	rc = ctl_receipt_save(c, url, wait, out);
	ehr_client_free(c);
	return rc;
}

/* Print what the receipt says, or why it does not verify. */
static int report(int err, const struct ledger_tlog_proof_report *rep, size_t n, size_t k)
{
	const struct ledger_entry *e = &rep->entry;

	if (err < 0) {
		printf("receipt verify: FAILED: %s\n", ehr_error_msg());
		if (rep->quorum.first_bad >= 0 && rep->quorum.reason[0])
			printf("  first witness that disagrees: %s\n", rep->quorum.reason);
		return CTL_RC_CHECK_FAILED;
	}
	printf("receipt OK: entry %llu is in the log's tree of size %llu\n", (unsigned long long)rep->index,
	       (unsigned long long)rep->quorum.size);
	printf("  checkpoint: signed by the log key; %zu of %zu witnesses cosigned (quorum %zu)\n",
	       rep->quorum.valid, n, k);
	printf("  entry: type %s, actor %s, subject %s, ts_ms %lld\n", e->type, e->actor,
	       e->subject[0] ? e->subject : "-", (long long)e->ts_ms);
	printf("  payload: %.*s\n", (int)e->payload_len, (const char *)e->payload);
	return 0;
}

static int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "log-key", required_argument, NULL, 'l' },
		{ "witness", required_argument, NULL, 'w' },
		{ "quorum", required_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct ctl_witnesses ws;
	char origin[256];
	uint8_t log_pub[32];
	const char *log_vkey = NULL;
	struct ehr_buf text = EHR_BUF_INIT(LEDGER_TLOG_PROOF_MAX),
	               extra = EHR_BUF_INIT(LEDGER_MAX_BUNDLE_ENTRY);
	struct ledger_tlog_proof_report rep;
	int ch, rc = 2;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': log_vkey = optarg; break;
		case 'w':
		case 'q':
			if ((ch == 'w' ? ctl_witness_opt(&ws, optarg) : ctl_quorum_opt(&ws, optarg)) < 0) {
				fprintf(stderr, "ehrctl receipt verify: %s\n", ehr_error_msg());
				goto out;
			}
			break;
		case 'h':
			usage();
			rc = 0;
			goto out;
		default: goto usage;
		}
	}
	if (argc - optind != 1 || log_vkey == NULL ||
	    ledger_vkey_parse(log_vkey, strlen(log_vkey), origin, sizeof(origin), log_pub) < 0)
		goto usage;
	if (ctl_witness_finish(&ws) < 0) {
		fprintf(stderr, "ehrctl receipt verify: %s\n", ehr_error_msg());
		goto out;
	}
	if (ehr_file_read(&text, argv[optind], LEDGER_TLOG_PROOF_MAX) < 0) {
		fprintf(stderr, "ehrctl receipt verify: %s: %s\n", argv[optind], ehr_error_detail());
		rc = 3;
		goto out;
	}
	rc = report(ledger_tlog_proof_verify((const char *)text.data, text.len, origin, log_pub, ws.keys,
	                                     ws.n, ws.k, &extra, &rep),
	            &rep, ws.n, ws.k);
	goto out;
usage:
	rc = usage();
out:
	ehr_buf_free(&text);
	ehr_buf_free(&extra);
	return rc;
}

int ctl_cmd_receipt(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage();
		return 0;
	}
	if (strcmp(argv[1], "get") == 0)
		return cmd_get(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	return usage();
}
