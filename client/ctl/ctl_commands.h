/*
 * ctl_commands.h - the `ehrctl` subcommands implemented outside ehrctl.c,
 * and small helpers they share (ctl_util.c). Each command gets the
 * arguments after `ehrctl` with argv[0] = its own name ("record", ...),
 * handles --help itself, before it opens the profile (help needs none),
 * and returns 0 ok, 1 failure or 2 usage; main() turns a failure into
 * CTL_EXIT_REFUSED or CTL_EXIT_FAILED (ctl_exit). The profile directory is
 * ehr_client_default_dir(): ehrctl's global --dir DIR sets EHRCTL_DIR
 * before dispatching.
 */
#ifndef EHR_CTL_COMMANDS_H
#define EHR_CTL_COMMANDS_H

#include "client/client.h"
#include "ledger/ledger.h"

int ctl_cmd_record(int argc, char **argv);   /* storage: client/ctl/cmd_record.c */
int ctl_cmd_audit(int argc, char **argv);    /* contracts: client/ctl/cmd_audit.c */
int ctl_cmd_contract(int argc, char **argv); /* contracts: client/ctl/cmd_contract.c */
int ctl_cmd_receipt(int argc, char **argv);  /* receipts: client/ctl/cmd_receipt.c */
/* `ehrctl patient watch` (argv[0] = "watch"): client/ctl/cmd_watch.c */
int ctl_cmd_patient_watch(int argc, char **argv);

/* GET a receipt URL ("/v1/receipts/N", as a reply named it) with
 * `Prefer: wait=<wait_s>` and write the tlog-proof to file ("-" or NULL:
 * stdout). Prints why on failure; 0 or 1 (also when still pending). */
int ctl_receipt_save(struct ehr_client *c, const char *url, const char *wait_s, const char *file);

/* ehrctl's exit statuses (README.md, "ehrctl"). */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_REFUSED = 1, /* the gateway answered with an HTTP error (4xx/5xx) */
	CTL_EXIT_USAGE = 2,   /* bad command line */
	CTL_EXIT_FAILED = 3,  /* no refusal, but the command failed: the gateway could not
	                       * be reached (connection, TLS), or the profile or a local
	                       * file could not be used */
};
/* `audit verify` found the ledger failing a check (BAD_CHECKPOINT, FORK,
 * DROPPED, ...): exit 1, as docs/AUDIT.md has always said, whatever the
 * last request got. */
#define CTL_RC_CHECK_FAILED 101
/* A command's 1 becomes CTL_EXIT_REFUSED when this thread's last request
 * got an HTTP error reply (ehr_client_last_refusal), else CTL_EXIT_FAILED;
 * CTL_RC_CHECK_FAILED becomes 1. */
int ctl_exit(int rc);
/* Is --help or -h among argv[1..argc-1]? */
bool ctl_wants_help(int argc, char **argv);
/* After a failed call of the client library: "ehrctl WHAT: <status>
 * <code>: <message>" for a refusal, else "ehrctl WHAT: <detail>"; 1. */
int ctl_fail(const char *what);

/* Open the client of the current profile (patients log in when needed).
 * Prints the reason and returns 1 on failure, else 0. */
int ctl_open(struct ehr_client **out);
/* Pretty-print JSON on stdout. */
void ctl_print_json(const json_t *j);
/* For a finished request: print the body (2xx), or "ehrctl: <status>
 * <code>: <message>" on stderr (otherwise); return 0 for 2xx, 1 else. */
int ctl_finish(struct ehr_client *c, long status, const json_t *resp);

/*
 * The Server-Sent Events reader (ctl_sse.c): feed it the body of a
 * text/event-stream reply (ctl_sse_feed is an ehr_client_data_fn whose ud
 * is the struct ctl_sse); it calls on_event for each event with data, with
 * `id`, `event` ("" when absent or too long) and `data` (data lines joined
 * by LF). on_event returning false stops the transfer.
 */
struct ctl_sse;
typedef bool (*ctl_sse_event_fn)(struct ctl_sse *s, void *ud);
struct ctl_sse {
	struct ehr_buf line;
	struct ehr_buf data;
	char id[32];
	char event[48];
	bool has_data, after_cr;
	ctl_sse_event_fn on_event;
	void *ud;
};
void ctl_sse_init(struct ctl_sse *s, size_t max, ctl_sse_event_fn fn, void *ud);
void ctl_sse_reset(struct ctl_sse *s); /* before a new connection */
void ctl_sse_free(struct ctl_sse *s);
bool ctl_sse_feed(const void *p, size_t n, void *ud);
/* ---- witnesses (ctl_witness.c): --witness NAME=VKEY ... --quorum K */
#define CTL_MAX_WITNESSES 16
struct ctl_witnesses {
	struct ledger_note_key keys[CTL_MAX_WITNESSES]; /* keys[i].name points at names[i] */
	char names[CTL_MAX_WITNESSES][256];
	size_t n;
	size_t k; /* 0 until --quorum (ctl_witness_finish: all of them) */
};
/* One --witness NAME=VKEY (a cosignature/v1 vkey whose key name is NAME). */
int ctl_witness_opt(struct ctl_witnesses *ws, const char *arg);
int ctl_quorum_opt(struct ctl_witnesses *ws, const char *arg);
/* After the options: --quorum without witnesses or above their number is
 * an error; no --quorum means all of them. */
int ctl_witness_finish(struct ctl_witnesses *ws);
/* With witnesses: the note must carry the log's signature and k valid
 * cosignatures; if not, print "NO_QUORUM: ..." naming the first witness
 * missing or bad and return CTL_RC_CHECK_FAILED. 0 without witnesses. */
int ctl_quorum_check(const struct ctl_witnesses *ws, const char *note, size_t len, const char *origin,
                     const uint8_t log_pub[32]);

#endif
