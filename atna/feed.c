/*
 * feed.c - the ATNA senders: one thread per Audit Record Repository.
 *
 * A sender's loop: hold the database session and the repository's lock,
 * hold a live TLS connection, settle what was written, then read the next
 * entries after the last one written, render and write them as one batch.
 *
 * "Sent" is not "delivered": RFC 5425 has no acknowledgement, and a write
 * that reached our socket buffer is lost if the repository dies before
 * reading it. So the durable cursor moves to a written seq only once the
 * connection was still alive (no FIN, no RST) settle_ms after the write;
 * any failure rewinds to the cursor and sends again. Repositories drop the
 * duplicates by the index in the structured data.
 */
#include "atna/feed_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/metrics.h"
#include "ledger/ledger.h"

#define ATNA_BACKOFF_MIN_MS 250
#define ATNA_STABLE_MS 1000 /* a connection this old resets the backoff */
#define ATNA_BATCH_MAX_BYTES (64u << 20)
#define ATNA_BATCH_SOFT_BYTES (4u << 20) /* a round stops adding entries past this */

static struct ehr_metric m_sent = EHR_METRIC(EHR_METRIC_COUNTER, "ehrgate_atna_sent_total",
                                             "Ledger entries written to Audit Record Repositories.");
static struct ehr_metric m_errors = EHR_METRIC(EHR_METRIC_COUNTER, "ehrgate_atna_errors_total",
                                               "ATNA feed failures (connect, TLS, write, database).");
static struct ehr_metric m_lag = EHR_METRIC(EHR_METRIC_GAUGE, "ehrgate_atna_lag_entries",
                                            "Ledger entries past the slowest repository's cursor.");
static struct ehr_metric m_connected =
        EHR_METRIC(EHR_METRIC_GAUGE, "ehrgate_atna_connected", "Repositories with a live TLS connection.");
static struct ehr_metric *const metrics[] = { &m_sent, &m_errors, &m_lag, &m_connected };

static bool stopping(const struct atna_sender *s)
{
	return atomic_load(&s->feed->stopping);
}

static void update_lag(struct atna_sender *s, int64_t head)
{
	int64_t max = 0;

	atomic_store(&s->lag, head > s->committed ? head - s->committed : 0);
	for (size_t i = 0; i < s->feed->n; i++) {
		int64_t v = atomic_load(&s->feed->senders[i].lag);
		if (v > max)
			max = v;
	}
	ehr_metric_set(&m_lag, 0, max);
}

/* Wait up to ms for the stop signal or (when watch_db) a NOTIFY. */
static int wait_ms(struct atna_sender *s, int64_t ms, bool watch_db)
{
	struct pollfd p[2] = { { .fd = s->feed->stop_fd, .events = POLLIN },
		               { .fd = watch_db ? atna__db_socket(s) : -1, .events = POLLIN } };
	int rc;

	if (ms < 1)
		ms = 1;
	rc = poll(p, 2, (int)(ms > 60000 ? 60000 : ms));
	if (rc < 0 && errno != EINTR)
		return ehr_error_set(EHR_ERR_IO, "poll: errno %d", errno);
	if (rc > 0 && (p[1].revents & (POLLIN | POLLERR | POLLHUP)))
		return atna__db_drain_notifies(s);
	return 0;
}

static void tls_drop(struct atna_sender *s)
{
	if (s->conn.ssl) {
		atna__tls_close(&s->conn);
		ehr_metric_add(&m_connected, 0, -1);
	}
	s->sent = s->committed; /* unsettled writes are sent again */
	s->cand = false;
}

static int tls_ready(struct atna_sender *s)
{
	if (s->conn.ssl) {
		if (atna__tls_alive(&s->conn)) {
			/* back off afresh only from a connection that lasted: a
			 * repository that takes the handshake and then drops us must
			 * not be redialled four times a second */
			if (ehr_monotonic_ms() - s->conn_at_ms >=
			    ATNA_STABLE_MS + (int64_t)s->feed->settle_ms)
				s->backoff_ms = 0;
			return 0;
		}
		tls_drop(s);
		return ehr_error_set(EHR_ERR_IO, "the repository closed the connection");
	}
	s->conn.fd = -1;
	GUARD(atna__tls_connect(&s->conn, s->feed->ssl_ctx, s->repo.host, s->repo.port, s->feed->timeout_ms));
	s->conn_at_ms = ehr_monotonic_ms();
	ehr_metric_add(&m_connected, 0, 1);
	ehr_logf(EHR_LOG_INFO, "atna.connected", "repository %s: connected, resending from index %lld",
	         s->repo.name, (long long)(s->committed + 1));
	return 0;
}

/* Move the cursor to the candidate once the connection outlived it by
 * settle_ms; the next write becomes the candidate. */
static int settle(struct atna_sender *s)
{
	int64_t now = ehr_monotonic_ms();

	if (!s->cand || now - s->cand_at_ms < (int64_t)s->feed->settle_ms)
		return 0;
	if (!atna__tls_alive(&s->conn)) {
		tls_drop(s);
		return ehr_error_set(EHR_ERR_IO, "the repository closed the connection");
	}
	GUARD(atna__cursor_commit(s, s->cand_seq));
	s->cand = s->sent > s->cand_seq;
	s->cand_seq = s->sent;
	s->cand_at_ms = now;
	return 0;
}

struct batch {
	struct atna_sender *s;
	struct ehr_buf out;
	int64_t last;
	size_t n;
	bool full; /* stopped early: the rest goes in the next round */
};

static int render_one(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct batch *b = ctx;

	(void)raw;
	(void)raw_len;
	if (b->out.len >= ATNA_BATCH_SOFT_BYTES) {
		b->full = true;
		return EHR_ERR_TOO_LARGE; /* stops the walk; not a failure */
	}
	if ((int64_t)e->seq != b->last + 1)
		return ehr_error_set(EHR_ERR_TAMPER, "ledger index %llu follows %lld",
		                     (unsigned long long)e->seq, (long long)b->last);
	GUARD(atna_render(&b->out, e, &b->s->feed->msg));
	b->last = (int64_t)e->seq;
	b->n++;
	return 0;
}

/* Read, render and write the entries after the last one written; *n gets
 * how many. */
static int send_batch(struct atna_sender *s, size_t *n)
{
	struct batch b = { .s = s, .out = EHR_BUF_INIT(ATNA_BATCH_MAX_BYTES), .last = s->sent };
	int err;

	*n = 0;
	err = ledger_read_entries_on(s->pg, (uint64_t)(s->sent + 1), s->feed->batch, render_one, &b);
	if (err == EHR_ERR_TOO_LARGE && b.full) {
		ehr_error_clear();
		err = 0;
	}
	if (err < 0)
		goto out;
	if (b.n == 0)
		goto out;
	if ((err = atna__tls_write(&s->conn, b.out.data, b.out.len, s->feed->timeout_ms)) < 0) {
		tls_drop(s);
		goto out;
	}
	s->sent = b.last;
	if (!s->cand) {
		s->cand = true;
		s->cand_seq = b.last;
		s->cand_at_ms = ehr_monotonic_ms();
	}
	ehr_metric_add(&m_sent, 0, (int64_t)b.n);
	*n = b.n;
out:
	ehr_buf_free(&b.out);
	return err;
}

/* One turn of the loop; a negative return is a failure to back off from. */
static int sender_step(struct atna_sender *s)
{
	int64_t head, wait;
	size_t n;

	GUARD(atna__db_ready(s));
	if (!s->locked)
		return wait_ms(s, s->feed->poll_ms, false); /* another instance sends */
	GUARD(tls_ready(s));
	GUARD(settle(s));
	GUARD(send_batch(s, &n));
	GUARD(atna__ledger_head(s, &head));
	update_lag(s, head);
	if (n > 0 && s->sent < head)
		return 0;
	wait = s->feed->poll_ms;
	if (s->cand) {
		int64_t left = s->cand_at_ms + s->feed->settle_ms - ehr_monotonic_ms();
		if (left < wait)
			wait = left;
	}
	return wait_ms(s, wait, true);
}

static void *sender_main(void *arg)
{
	struct atna_sender *s = arg;

	while (!stopping(s)) {
		int err = sender_step(s);
		if (err >= 0)
			continue;
		ehr_metric_inc(&m_errors, 0);
		ehr_logf(EHR_LOG_WARN, "atna.error", "repository %s: %s (retry in %u ms)", s->repo.name,
		         ehr_error_detail(), s->backoff_ms ? s->backoff_ms : ATNA_BACKOFF_MIN_MS);
		tls_drop(s);
		if (err == EHR_ERR_UNAVAILABLE)
			atna__db_close(s); /* the lock went with the session: re-read the cursor */
		s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : ATNA_BACKOFF_MIN_MS;
		if (s->backoff_ms > s->feed->backoff_max_ms)
			s->backoff_ms = s->feed->backoff_max_ms;
		(void)wait_ms(s, s->backoff_ms, false);
	}
	tls_drop(s);
	atna__db_close(s);
	return NULL;
}

static void feed_free(struct atna_feed *f)
{
	if (f == NULL)
		return;
	SSL_CTX_free(f->ssl_ctx);
	if (f->stop_fd >= 0)
		close(f->stop_fd);
	free(f->conninfo);
	free(f->source_id);
	free(f->origin);
	free(f);
}

static int feed_new(struct atna_feed **out, const struct atna_config *cfg)
{
	struct atna_feed *f = calloc(1, sizeof(*f));
	int err = 0;

	if (f == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	f->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
	f->origin = strdup(cfg->origin ? cfg->origin : "");
	f->source_id = strdup(cfg->source_id && *cfg->source_id ? cfg->source_id
	                      : f->origin                       ? f->origin
	                                                        : "");
	ENSURE_GOTO(f->stop_fd >= 0 && f->conninfo && f->origin && f->source_id, EHR_ERR_NOMEM);
	if (cfg->hostname && *cfg->hostname)
		GUARD_GOTO(ehr_str_copy(f->hostname, sizeof(f->hostname), cfg->hostname));
	else if (gethostname(f->hostname, sizeof(f->hostname) - 1) < 0)
		f->hostname[0] = '\0'; /* rendered as the NILVALUE "-" */
	f->msg = (struct atna_msg_ctx){ .hostname = f->hostname,
		                        .source_id = f->source_id,
		                        .origin = f->origin,
		                        .pen = cfg->pen ? cfg->pen : ATNA_DEFAULT_PEN,
		                        .procid = (long)getpid() };
	f->batch = cfg->batch >= 1 && cfg->batch <= 10000 ? cfg->batch : 256;
	f->poll_ms = cfg->poll_ms ? cfg->poll_ms : 1000;
	f->backoff_max_ms = cfg->backoff_max_ms >= ATNA_BACKOFF_MIN_MS ? cfg->backoff_max_ms : 30000;
	f->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 10000;
	f->settle_ms = cfg->settle_ms;
	GUARD_GOTO(atna__tls_ctx(&f->ssl_ctx, cfg->ca_file, cfg->cert_file, cfg->key_file));
	*out = f;
	return 0;
out:
	feed_free(f);
	return err;
}

int atna_feed_start(struct atna_feed **out, const struct atna_config *cfg)
{
	struct atna_repo repos[ATNA_MAX_REPOS];
	struct atna_feed *f = NULL;
	size_t n;
	int err;

	*out = NULL;
	GUARD(atna_repos_parse(repos, ATNA_MAX_REPOS, &n, cfg->repositories));
	if (n == 0)
		return 0;
	GUARD(feed_new(&f, cfg));
	ehr_metric_register_all(metrics, EHR_ARRAY_LEN(metrics));
	for (size_t i = 0; i < n; i++) {
		struct atna_sender *s = &f->senders[i];
		s->feed = f;
		s->repo = repos[i];
		s->conn.fd = -1;
		s->committed = s->sent = -1;
		if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
			err = ehr_error_set(EHR_ERR_INTERNAL, "ATNA feed: cannot start a sender thread");
			atna_feed_stop(f);
			return err;
		}
		s->started = true;
		f->n = i + 1;
	}
	ehr_logf(EHR_LOG_INFO, "atna.start", "ATNA feed to %zu repositories", n);
	*out = f;
	return 0;
}

void atna_feed_stop(struct atna_feed *f)
{
	uint64_t one = 1;

	if (f == NULL)
		return;
	atomic_store(&f->stopping, true);
	if (write(f->stop_fd, &one, sizeof(one)) < 0)
		ehr_logf(EHR_LOG_WARN, "atna.stop", "cannot wake the senders: errno %d", errno);
	for (size_t i = 0; i < f->n; i++)
		if (f->senders[i].started)
			pthread_join(f->senders[i].thread, NULL);
	ehr_metric_set(&m_connected, 0, 0);
	feed_free(f);
}
