/*
 * publisher.c - the publisher thread: its own database session (a session
 * advisory lock so that one instance runs rounds at a time, LISTEN on the
 * ledger's commit channel so a round starts as soon as the tree grows),
 * the compare-and-swap that publishes a quorum-cosigned note, and the
 * metrics and status that say how publication is doing.
 */
#include "publish/publish_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/db.h"
#include "common/metrics.h"

/* pg_try_advisory_lock(PUB_LOCK): one publisher across all instances. */
#define PUB_LOCK "7306916008454256748" /* "eHRpubLl" */
#define LEDGER_CHANNEL "ehrgate_ledger"

static struct ehr_metric m_cosigned_size = EHR_METRIC(EHR_METRIC_GAUGE, "ehrgate_witness_cosigned_size",
                                                      "Tree size each witness last cosigned for us.");
static struct ehr_metric m_cosigned_time =
        EHR_METRIC(EHR_METRIC_GAUGE, "ehrgate_witness_cosigned_timestamp_seconds",
                   "Unix time of each witness's last valid cosignature.");
static struct ehr_metric m_errors =
        EHR_METRIC(EHR_METRIC_COUNTER, "ehrgate_witness_errors_total",
                   "Witness requests without an answer (unreachable, timeout) or with a bad one.");
static struct ehr_metric m_refusals = EHR_METRIC(EHR_METRIC_COUNTER, "ehrgate_witness_refusals_total",
                                                 "Witness answers other than 200, per witness.");
static struct ehr_metric m_refusal_status =
        EHR_METRIC_LABELLED(EHR_METRIC_COUNTER, "ehrgate_witness_refusals_by_status_total",
                            "Witness answers other than 200, all witnesses, by HTTP status.", "status", "400",
                            "403", "404", "409", "422", "other");
static struct ehr_metric m_published = EHR_METRIC(EHR_METRIC_GAUGE, "ehrgate_publication_published_size",
                                                  "Tree size of the published (quorum-cosigned) checkpoint.");
static struct ehr_metric m_lag_entries = EHR_METRIC(EHR_METRIC_GAUGE, "ehrgate_publication_lag_entries",
                                                    "Entries committed but not yet published.");
static struct ehr_metric m_lag_ms =
        EHR_METRIC(EHR_METRIC_GAUGE, "ehrgate_publication_lag_milliseconds",
                   "How long the oldest unpublished commit has waited for publication.");
static struct ehr_metric m_quorum =
        EHR_METRIC(EHR_METRIC_GAUGE, "ehrgate_publication_quorum",
                   "1 while the witnesses give a quorum (or nothing waits), 0 while publication pauses.");
static struct ehr_metric m_rounds = EHR_METRIC_LABELLED(
        EHR_METRIC_COUNTER, "ehrgate_publication_rounds_total", "Publication rounds by outcome.", "outcome",
        "published", "below_quorum", "error");
static struct ehr_metric *const per_witness[] = { &m_cosigned_size, &m_cosigned_time, &m_errors,
	                                          &m_refusals };
static struct ehr_metric *const global[] = { &m_refusal_status, &m_published, &m_lag_entries,
	                                     &m_lag_ms,         &m_quorum,    &m_rounds };

enum { ROUND_PUBLISHED, ROUND_BELOW, ROUND_ERROR };

void pub__count_refusal(struct pub_witness *w, long status)
{
	static const long known[] = { 400, 403, 404, 409, 422 };
	size_t s = EHR_ARRAY_LEN(known);

	for (size_t i = 0; i < EHR_ARRAY_LEN(known); i++)
		if (known[i] == status)
			s = i;
	ehr_metric_inc(&m_refusal_status, s);
	ehr_metric_inc(&m_refusals, w->index);
	w->ok = false;
}

void pub__count_error(struct pub_witness *w)
{
	ehr_metric_inc(&m_errors, w->index);
	w->ok = false;
}

void pub__witness_cosigned(struct pub_witness *w)
{
	ehr_metric_set(&m_cosigned_size, w->index, (int64_t)w->cosigned);
	ehr_metric_set(&m_cosigned_time, w->index, w->cosigned_ms / 1000);
}

/* ------------------------------------------------------------ database */

static void db_close(struct publisher *p)
{
	if (p->pg)
		PQfinish(p->pg);
	p->pg = NULL;
	p->locked = false;
}

static int db_scalar_u64(struct publisher *p, const char *sql, int n, const char *const *params,
                         uint64_t *out, bool *null)
{
	void *r = NULL;
	int err;

	GUARD(ehr_db_exec(p->pg, &r, sql, n, params));
	*null = ehr_db_rows(r) == 0 || ehr_db_is_null(r, 0, 0);
	err = *null ? 0 : ehr_db_get_u64(out, r, 0, 0, INT64_MAX);
	ehr_db_clear(r);
	return err;
}

/* Connect, LISTEN, and try for the round lock. *active: we hold it. */
static int db_ready(struct publisher *p, bool *active)
{
	char sql[64];
	void *r = NULL;

	if (p->pg && PQstatus(p->pg) != CONNECTION_OK)
		db_close(p);
	if (p->pg == NULL) {
		p->pg = PQconnectdb(p->conninfo);
		if (PQstatus(p->pg) != CONNECTION_OK) {
			db_close(p);
			return ehr_error_set(EHR_ERR_UNAVAILABLE, "publisher: database connection failed");
		}
		GUARD(ehr_fmt(sql, sizeof(sql), "SET statement_timeout = %u", p->cfg.timeout_ms * 4));
		GUARD(ehr_db_run_script(p->pg, sql));
		/* LISTEN before reading the head, so no commit goes unnoticed. */
		GUARD(ehr_db_run_script(p->pg, "LISTEN " LEDGER_CHANNEL));
	}
	if (!p->locked) {
		GUARD(ehr_db_exec(p->pg, &r, "SELECT pg_try_advisory_lock(" PUB_LOCK ")", 0, NULL));
		p->locked = ehr_db_rows(r) == 1 && strcmp(ehr_db_value(r, 0, 0), "t") == 0;
		ehr_db_clear(r);
		if (p->locked)
			ehr_logf(EHR_LOG_INFO, "publication.active",
			         "this instance runs the witness rounds (quorum %u of %zu)", p->cfg.quorum,
			         p->n);
	}
	*active = p->locked;
	return 0;
}

/*
 * Publish: move the head row from the size we read to rd->size and insert
 * the cosigned note, in one transaction. 0 rows updated means another
 * instance published meanwhile: EHR_ERR_CONFLICT, nothing written.
 */
static int db_publish(struct publisher *p, const struct pub_round *rd, const struct ehr_buf *note)
{
	char size[24], old[24], now[24], k[12];
	const char *params[3] = { size, old, now };
	const char *ins[4] = { size, ehr_buf_cstr(note), k, now };
	void *r = NULL;
	int err;

	GUARD(ehr_fmt(size, sizeof(size), "%llu", (unsigned long long)rd->size));
	GUARD(ehr_fmt(old, sizeof(old), "%llu", (unsigned long long)p->published));
	GUARD(ehr_fmt(now, sizeof(now), "%lld", (long long)ehr_now_ms()));
	GUARD(ehr_fmt(k, sizeof(k), "%u", rd->valid));
	GUARD(ehr_db_begin(p->pg));
	GUARD_GOTO(ehr_db_exec(p->pg, &r,
	                       "UPDATE ledger_published_head SET tree_size = $1, updated_ms = $3 "
	                       "WHERE tree_size = $2 AND $1::bigint > $2::bigint RETURNING tree_size",
	                       3, params));
	if (ehr_db_rows(r) != 1) {
		err = ehr_error_set(EHR_ERR_CONFLICT, "the published head moved (another instance)");
		goto out;
	}
	GUARD_GOTO(ehr_db_run(p->pg,
	                      "INSERT INTO ledger_published (tree_size, note, cosigners, published_ms) "
	                      "VALUES ($1, $2, $3, $4)",
	                      4, ins));
	GUARD_GOTO(ehr_db_commit(p->pg));
	p->published = rd->size;
out:
	ehr_db_clear(r);
	if (err < 0)
		ehr_db_rollback(p->pg);
	return err;
}

/* ------------------------------------------------------------ a round */

static void set_status(struct publisher *p, bool quorum_ok, unsigned cosigners, uint64_t head, int64_t lag_ms)
{
	pthread_mutex_lock(&p->mu);
	p->status.active = p->locked;
	p->status.quorum_ok = quorum_ok;
	p->status.cosigners = cosigners;
	p->status.published_size = p->published;
	p->status.head_size = head;
	p->status.lag_ms = lag_ms;
	for (size_t i = 0; i < p->n; i++) {
		p->status.w[i].cosigned_size = p->w[i].cosigned;
		p->status.w[i].cosigned_ms = p->w[i].cosigned_ms;
		p->status.w[i].last_status = p->w[i].last_status;
		p->status.w[i].ok = p->w[i].ok;
	}
	pthread_mutex_unlock(&p->mu);
	ehr_metric_set(&m_published, 0, (int64_t)p->published);
	ehr_metric_set(&m_lag_entries, 0, head > p->published ? (int64_t)(head - p->published) : 0);
	ehr_metric_set(&m_lag_ms, 0, lag_ms);
	ehr_metric_set(&m_quorum, 0, quorum_ok ? 1 : 0);
}

/* The published head and how long the oldest unpublished block waited. */
static int read_published(struct publisher *p, int64_t *oldest_ms)
{
	char num[24];
	const char *params[1] = { num };
	uint64_t v = 0, ts = 0;
	bool null;

	GUARD(db_scalar_u64(p, "SELECT tree_size FROM ledger_published_head", 0, NULL, &v, &null));
	p->published = null ? 0 : v;
	GUARD(ehr_fmt(num, sizeof(num), "%llu", (unsigned long long)p->published));
	GUARD(db_scalar_u64(p,
	                    "SELECT ts_ms FROM ledger_blocks WHERE tree_size > $1 ORDER BY tree_size LIMIT 1",
	                    1, params, &ts, &null));
	*oldest_ms = null ? 0 : (int64_t)ts;
	return 0;
}

/* One round. Returns ROUND_* or -1 when there was nothing to do. */
static int round_once(struct publisher *p, bool *quorum_ok)
{
	struct pub_round rd = { .note = EHR_BUF_INIT(LEDGER_NOTE_MAX) };
	struct ehr_buf out = EHR_BUF_INIT(LEDGER_NOTE_MAX);
	struct ledger_block b;
	uint8_t pub[32];
	int64_t oldest = 0;
	int rc = ROUND_ERROR, err;

	GUARD_GOTO(read_published(p, &oldest));
	if ((err = ledger_head(p->ledger, &b)) == EHR_ERR_NOT_FOUND ||
	    (err == 0 && b.tree_size <= p->published)) {
		set_status(p, *quorum_ok, p->status.cosigners, p->published, 0);
		rc = -1;
		goto out;
	}
	GUARD_GOTO(err);
	ledger_public_key(p->ledger, pub);
	GUARD_GOTO(ledger_checkpoint_note(&rd.note, b.origin, b.tree_size, b.root, pub, b.cp_sig));
	rd.size = b.tree_size;
	GUARD_GOTO(pub__round(p, &rd));
	if (atomic_load(&p->stopping)) { /* the round was abandoned: nothing to say */
		rc = -1;
		goto out;
	}
	if (rd.valid < p->cfg.quorum) {
		if (*quorum_ok)
			ehr_logf(EHR_LOG_WARN, "publication.paused",
			         "size %llu has %u valid cosignatures of the %u needed; publication pauses",
			         (unsigned long long)rd.size, rd.valid, p->cfg.quorum);
		*quorum_ok = false;
		rc = ROUND_BELOW;
	} else {
		GUARD_GOTO(ehr_buf_append(&out, rd.note.data, rd.note.len));
		for (size_t i = 0; i < p->n; i++)
			GUARD_GOTO(ehr_buf_append(&out, p->w[i].line.data, p->w[i].line.len));
		if ((err = db_publish(p, &rd, &out)) == EHR_ERR_CONFLICT) {
			rc = ROUND_ERROR;
			goto out;
		}
		GUARD_GOTO(err);
		if (!*quorum_ok)
			ehr_logf(EHR_LOG_INFO, "publication.resumed", "quorum again at size %llu",
			         (unsigned long long)rd.size);
		*quorum_ok = true;
		ehr_logf(EHR_LOG_DEBUG, "publication.published", "size %llu with %u cosignatures",
		         (unsigned long long)rd.size, rd.valid);
		rc = ROUND_PUBLISHED;
	}
	set_status(p, *quorum_ok, rd.valid, b.tree_size,
	           oldest && rc != ROUND_PUBLISHED ? ehr_now_ms() - oldest : 0);
out:
	if (rc == ROUND_ERROR && err < 0)
		ehr_logf(EHR_LOG_WARN, "publication.error", "round failed: %s", ehr_error_detail());
	ehr_buf_free(&rd.note);
	ehr_buf_free(&out);
	return rc;
}

/* ------------------------------------------------------------ the thread */

/* Sleep until ms pass or stop, and, with on_commit, until the ledger
 * commits (NOTIFY on the publisher's session). */
static void wait_for(struct publisher *p, unsigned ms, bool on_commit)
{
	struct pollfd fds[2] = { { .fd = p->stop_fd, .events = POLLIN }, { .fd = -1, .events = POLLIN } };
	PGnotify *nt;

	if (p->pg && on_commit) {
		/* libpq may have queued a NOTIFY while it read a result */
		bool queued = false;
		while ((nt = PQnotifies(p->pg)) != NULL) {
			PQfreemem(nt);
			queued = true;
		}
		if (queued)
			return;
		fds[1].fd = PQsocket(p->pg);
	}
	(void)poll(fds, 2, (int)ms);
	if (p->pg) { /* drain what arrived: the next round reads the head anyway */
		if (PQconsumeInput(p->pg) != 1)
			db_close(p);
		else
			while ((nt = PQnotifies(p->pg)) != NULL)
				PQfreemem(nt);
	}
}

static void *publisher_main(void *arg)
{
	struct publisher *p = arg;
	bool quorum_ok = true;

	while (!atomic_load(&p->stopping)) {
		bool active = false;
		int rc;

		if (db_ready(p, &active) < 0) {
			ehr_logf(EHR_LOG_WARN, "publication.db", "%s", ehr_error_detail());
			db_close(p);
			set_status(p, false, 0, 0, 0);
			wait_for(p, p->cfg.interval_ms * 4, false);
			continue;
		}
		if (!active) {
			set_status(p, true, 0, 0, 0);
			wait_for(p, p->cfg.interval_ms, false);
			continue;
		}
		rc = round_once(p, &quorum_ok);
		if (rc >= 0)
			ehr_metric_inc(&m_rounds, (size_t)rc);
		if (rc == ROUND_ERROR && p->pg && PQstatus(p->pg) != CONNECTION_OK)
			db_close(p);
		/* After a published round (or none needed), the next starts at
		 * the next commit; after a round below quorum or a failure, only
		 * once the interval passed, so witnesses that are down are not
		 * hammered at the commit rate. */
		wait_for(p, p->cfg.interval_ms, rc == ROUND_PUBLISHED || rc < 0);
	}
	return NULL;
}

static void metrics_register(struct publisher *p)
{
	for (size_t i = 0; i < p->n; i++)
		p->names[i] = p->w[i].cfg.name;
	p->names[p->n] = NULL;
	for (size_t i = 0; i < EHR_ARRAY_LEN(per_witness); i++) {
		ehr_metric_unregister(per_witness[i]);
		per_witness[i]->label = "witness";
		per_witness[i]->values = p->names;
		for (size_t s = 0; s < EHR_METRIC_MAX_SERIES; s++)
			ehr_metric_set(per_witness[i], s, 0);
		if (ehr_metric_register(per_witness[i]) < 0)
			ehr_logf(EHR_LOG_WARN, "publication.metrics", "%s", ehr_error_detail());
	}
	ehr_metric_register_all(global, EHR_ARRAY_LEN(global));
}

static void publisher_free(struct publisher *p)
{
	for (size_t i = 0; i < EHR_ARRAY_LEN(per_witness); i++)
		ehr_metric_unregister(per_witness[i]); /* its label values are ours */
	pub__curl_free(p);
	db_close(p);
	for (size_t i = 0; i < p->n; i++) {
		ehr_buf_free(&p->w[i].req);
		ehr_buf_free(&p->w[i].resp);
		ehr_buf_free(&p->w[i].line);
	}
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	pthread_mutex_destroy(&p->mu);
	free(p->conninfo);
	free(p->ca_file);
	free(p->cert_file);
	free(p->key_file);
	free(p);
}

int publish_start(struct publisher **out, const struct publish_config *cfg)
{
	struct publisher *p;
	int err = 0;

	ENSURE(cfg->n >= 1 && cfg->n <= PUBLISH_MAX_WITNESSES && cfg->quorum >= 1 && cfg->quorum <= cfg->n &&
	               cfg->ledger && cfg->interval_ms > 0 && cfg->timeout_ms > 0,
	       EHR_ERR_INVAL);
	p = calloc(1, sizeof(*p));
	ENSURE(p != NULL, EHR_ERR_NOMEM);
	pthread_mutex_init(&p->mu, NULL);
	p->cfg = *cfg;
	p->ledger = cfg->ledger;
	p->n = cfg->n;
	p->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
	p->ca_file = strdup(cfg->ca_file ? cfg->ca_file : "");
	p->cert_file = strdup(cfg->cert_file ? cfg->cert_file : "");
	p->key_file = strdup(cfg->key_file ? cfg->key_file : "");
	p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ENSURE_GOTO(p->conninfo && p->ca_file && p->cert_file && p->key_file && p->stop_fd >= 0,
	            EHR_ERR_NOMEM);
	p->status.quorum = cfg->quorum;
	p->status.n = (unsigned)cfg->n;
	p->status.quorum_ok = true;
	for (size_t i = 0; i < p->n; i++) {
		p->w[i].cfg = cfg->witnesses[i];
		p->w[i].index = i;
		ehr_buf_init(&p->w[i].req, LEDGER_ADD_CHECKPOINT_MAX);
		ehr_buf_init(&p->w[i].resp, 65536);
		ehr_buf_init(&p->w[i].line, 4096);
		p->status.w[i].name = p->w[i].cfg.name;
	}
	GUARD_GOTO(pub__curl_init(p));
	metrics_register(p);
	if (pthread_create(&p->thread, NULL, publisher_main, p) != 0) {
		err = ehr_error_set(EHR_ERR_INTERNAL, "publisher: cannot start its thread");
		goto out;
	}
	p->started = true;
	ehr_logf(EHR_LOG_INFO, "publication.start", "publishing with a quorum of %u of %zu witnesses",
	         cfg->quorum, cfg->n);
	*out = p;
	return 0;
out:
	publisher_free(p);
	return err;
}

void publish_stop(struct publisher *p)
{
	uint64_t one = 1;

	if (p == NULL)
		return;
	atomic_store(&p->stopping, true);
	if (write(p->stop_fd, &one, sizeof(one)) < 0)
		ehr_logf(EHR_LOG_WARN, "publication.stop", "cannot wake the publisher: errno %d", errno);
	if (p->started)
		pthread_join(p->thread, NULL);
	publisher_free(p);
}

void publish_status(struct publisher *p, struct publish_status *st)
{
	pthread_mutex_lock(&p->mu);
	*st = p->status;
	pthread_mutex_unlock(&p->mu);
}
