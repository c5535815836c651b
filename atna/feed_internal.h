/*
 * feed_internal.h - the feed and its senders (feed.c) and their database
 * sessions (cursor.c).
 */
#ifndef EHR_ATNA_FEED_INTERNAL_H
#define EHR_ATNA_FEED_INTERNAL_H

#include "atna/atna_internal.h"

#include <pthread.h>
#include <stdatomic.h>

struct pg_conn; /* libpq's PGconn */

struct atna_sender {
	struct atna_feed *feed;
	struct atna_repo repo;
	pthread_t thread;
	bool started;
	struct pg_conn *pg; /* own session: lock, LISTEN, cursor, reads */
	bool locked;        /* holds the repository's advisory lock */
	struct atna_conn conn;
	int64_t conn_at_ms; /* when conn was established */
	int64_t committed;  /* durable cursor: last seq settled (-1: none) */
	int64_t sent;       /* last seq written on this connection (>= committed) */
	bool cand;          /* a write waiting to settle */
	int64_t cand_seq, cand_at_ms;
	unsigned backoff_ms;
	_Atomic int64_t lag;
};

struct atna_feed {
	char *conninfo;
	SSL_CTX *ssl_ctx;
	struct atna_msg_ctx msg;
	char hostname[256];
	char *source_id, *origin;
	unsigned batch, poll_ms, backoff_max_ms, timeout_ms, settle_ms;
	int stop_fd; /* eventfd: written once by atna_feed_stop */
	atomic_bool stopping;
	size_t n;
	struct atna_sender senders[ATNA_MAX_REPOS];
};

/* cursor.c */
int atna__db_ready(struct atna_sender *s); /* connect, LISTEN, lock, cursor */
void atna__db_close(struct atna_sender *s);
int atna__cursor_commit(struct atna_sender *s, int64_t seq);
int atna__ledger_head(struct atna_sender *s, int64_t *head);
int atna__db_socket(struct atna_sender *s);
int atna__db_drain_notifies(struct atna_sender *s);

#endif
