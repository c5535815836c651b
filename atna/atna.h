/*
 * atna.h - the IHE ATNA feed (ITI-20 Record Audit Event): every ledger
 * entry, in seq order, as an RFC 5424 syslog message carrying the DICOM
 * PS3.15 A.5 AuditMessage XML, framed by RFC 6587 octet counting over RFC
 * 5425 mutual TLS to each configured Audit Record Repository.
 *
 * One sender thread per repository reads the ledger on its own database
 * session from a durable cursor (table atna_cursor), so it never takes a
 * slot of the request pool and never waits on an appender. At least once,
 * in order: the cursor moves only past entries that were written, flushed
 * and followed by a connection still seen alive (docs/AUDIT.md §8).
 * A session advisory lock per repository makes one gateway instance on a
 * database the sender for that repository at a time.
 */
#ifndef EHR_ATNA_H
#define EHR_ATNA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct ledger_entry; /* ledger/ledger.h */

#define ATNA_MAX_REPOS 8
#define ATNA_NAME_MAX 64
#define ATNA_HOST_MAX 253
#define ATNA_DEFAULT_PEN 32473 /* RFC 5612's documentation enterprise number */

/* One Audit Record Repository of [atna] repositories. */
struct atna_repo {
	char name[ATNA_NAME_MAX + 1]; /* [A-Za-z0-9_.-]{1,64}: the cursor's key */
	char host[ATNA_HOST_MAX + 1]; /* DNS name or IP literal; the certificate must name it */
	uint16_t port;
};

/*
 * Parse "name=host:port[, name=host:port]..." (IPv6 as [addr]:port).
 * Empty or blank text is zero repositories (the feed is off). Names must be
 * unique. EHR_ERR_CONFIG naming the bad item's position, never its text.
 */
int atna_repos_parse(struct atna_repo *out, size_t cap, size_t *n, const char *text);

/* What the feed needs; strings are copied by atna_feed_start. */
struct atna_config {
	const char *conninfo;     /* database (role ehrgate_app) */
	const char *repositories; /* as atna_repos_parse */
	const char *ca_file;      /* PEM CA(s) that must have issued the repositories' certificates */
	const char *cert_file;    /* the gateway's client certificate (PEM) for mutual TLS */
	const char *key_file;     /* its private key (PEM) */
	const char *hostname;     /* RFC 5424 HOSTNAME; "" = gethostname() */
	const char *source_id;    /* AuditSourceIdentification@AuditSourceID; "" = origin */
	const char *origin;       /* the ledger's checkpoint origin, in the structured data */
	uint32_t pen;             /* SD-ID ehrgate@<pen> */
	unsigned batch;           /* entries read per query, 1..10000 */
	unsigned poll_ms;         /* longest idle wait for new entries (NOTIFY wakes it sooner) */
	unsigned backoff_max_ms;  /* reconnect backoff ceiling (starts at 250 ms, doubles) */
	unsigned timeout_ms;      /* connect, handshake and write timeout */
	unsigned settle_ms; /* a write counts as delivered once the connection lived this long after it */
};

struct atna_feed;

/* Start one sender per repository. *out is NULL when there are none (feed
 * off). Fails (EHR_ERR_CONFIG) when the TLS files do not load. */
int atna_feed_start(struct atna_feed **out, const struct atna_config *cfg);
/* Stop and join the senders; what was delivered but not yet settled is sent
 * again by the next start (duplicates are allowed, gaps are not). NULL ok. */
void atna_feed_stop(struct atna_feed *f);

/* ---- rendering (pure), for the feed and its tests */

/* What goes around the XML. */
struct atna_msg_ctx {
	const char *hostname;  /* printable US-ASCII, 1..255 */
	const char *source_id; /* AuditSourceID */
	const char *origin;    /* the ledger origin */
	uint32_t pen;
	long procid; /* RFC 5424 PROCID */
};

/* RFC 5424 severity for a DICOM EventOutcomeIndicator: 5 (notice) for
 * success, 4 (warning) for any failure (ITI-20 §3.20.4.1.2). */
int atna_severity(int outcome);

/*
 * Append one framed message for entry e: "MSG-LEN SP SYSLOG-MSG" (RFC 6587
 * §3.4.1, RFC 5425 §4.3), SYSLOG-MSG = "<PRI>1 TIMESTAMP HOSTNAME ehrgate
 * PROCID IHE+RFC-3881 [ehrgate@PEN index=".." origin=".."] BOM XML" with
 * facility 10 (RFC 5424 §6). The XML is audit/dicom.c's AuditMessage.
 */
int atna_render(struct ehr_buf *out, const struct ledger_entry *e, const struct atna_msg_ctx *ctx);

#endif
