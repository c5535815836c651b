/*
 * cursor.c - a sender's database session: its own connection (never the
 * request pool), the repository's session advisory lock (one sender per
 * repository across every gateway instance on the database), LISTEN for new
 * ledger commits, and the durable cursor in atna_cursor.
 */
#include "atna/feed_internal.h"

#include <string.h>

#include <libpq-fe.h>

#include "common/db.h"

/* pg_try_advisory_lock(ATNA_LOCK_CLASS, hashtext(repository)): the two-key
 * space, apart from the migrator's and the ledger's one-key locks. */
#define ATNA_LOCK_CLASS "1096043073" /* "ATNA" */
#define LEDGER_CHANNEL "ehrgate_ledger"

void atna__db_close(struct atna_sender *s)
{
	if (s->pg)
		PQfinish(s->pg);
	s->pg = NULL;
	s->locked = false;
}

static int db_connect(struct atna_sender *s)
{
	char sql[64];

	s->pg = PQconnectdb(s->feed->conninfo);
	if (PQstatus(s->pg) != CONNECTION_OK) {
		atna__db_close(s);
		return ehr_error_set(EHR_ERR_UNAVAILABLE, "ATNA feed: database connection failed");
	}
	GUARD(ehr_fmt(sql, sizeof(sql), "SET statement_timeout = %u", s->feed->timeout_ms));
	GUARD(ehr_db_run_script(s->pg, sql));
	/* LISTEN before reading, so no commit after the read goes unnoticed. */
	return ehr_db_run_script(s->pg, "LISTEN " LEDGER_CHANNEL);
}

static int read_cursor(struct atna_sender *s)
{
	const char *params[1] = { s->repo.name };
	void *r = NULL;
	int64_t v = -1;
	int err;

	GUARD(ehr_db_exec(s->pg, &r, "SELECT last_seq FROM atna_cursor WHERE repository = $1", 1, params));
	if (ehr_db_rows(r) == 1)
		err = ehr_parse_i64(&v, ehr_db_value(r, 0, 0), -1, INT64_MAX - 1);
	else
		err = 0;
	ehr_db_clear(r);
	GUARD(err);
	s->committed = v;
	s->sent = v;
	s->cand = false;
	return 0;
}

int atna__db_ready(struct atna_sender *s)
{
	const char *params[1] = { s->repo.name };
	void *r = NULL;
	bool got;

	if (s->pg && PQstatus(s->pg) != CONNECTION_OK)
		atna__db_close(s);
	if (s->pg == NULL)
		GUARD(db_connect(s));
	if (s->locked)
		return 0;
	GUARD(ehr_db_exec(s->pg, &r, "SELECT pg_try_advisory_lock(" ATNA_LOCK_CLASS ", hashtext($1))", 1,
	                  params));
	got = ehr_db_rows(r) == 1 && strcmp(ehr_db_value(r, 0, 0), "t") == 0;
	ehr_db_clear(r);
	if (!got)
		return 0; /* another instance sends to this repository */
	s->locked = true;
	GUARD(read_cursor(s));
	ehr_logf(EHR_LOG_INFO, "atna.sender", "repository %s: sending from ledger index %lld", s->repo.name,
	         (long long)(s->committed + 1));
	return 0;
}

int atna__cursor_commit(struct atna_sender *s, int64_t seq)
{
	char num[24], now[24];
	const char *params[3] = { s->repo.name, num, now };

	GUARD(ehr_fmt(num, sizeof(num), "%lld", (long long)seq));
	GUARD(ehr_fmt(now, sizeof(now), "%lld", (long long)ehr_now_ms()));
	GUARD(ehr_db_run(s->pg,
	                 "INSERT INTO atna_cursor (repository, last_seq, updated_ms) VALUES ($1, $2, $3) "
	                 "ON CONFLICT (repository) DO UPDATE SET last_seq = GREATEST(atna_cursor.last_seq, "
	                 "EXCLUDED.last_seq), updated_ms = EXCLUDED.updated_ms",
	                 3, params));
	s->committed = seq;
	return 0;
}

int atna__ledger_head(struct atna_sender *s, int64_t *head)
{
	void *r = NULL;
	int err;

	GUARD(ehr_db_exec(s->pg, &r, "SELECT coalesce(max(seq), -1) FROM ledger_entries", 0, NULL));
	err = ehr_parse_i64(head, ehr_db_value(r, 0, 0), -1, INT64_MAX);
	ehr_db_clear(r);
	return err;
}

int atna__db_socket(struct atna_sender *s)
{
	return s->pg ? PQsocket(s->pg) : -1;
}

int atna__db_drain_notifies(struct atna_sender *s)
{
	PGnotify *n;

	if (PQconsumeInput(s->pg) != 1)
		return ehr_error_set(EHR_ERR_UNAVAILABLE, "ATNA feed: database connection lost");
	while ((n = PQnotifies(s->pg)) != NULL)
		PQfreemem(n);
	return 0;
}
