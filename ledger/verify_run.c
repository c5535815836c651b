/*
 * verify_run.c - ledger_verify_db (docs/LEDGER.md §8). The ledger is cut at
 * block boundaries into ranges of about equal entry counts; each range is
 * recomputed by verify.c on its own thread and connection, all inside one
 * exported REPEATABLE READ snapshot. A range after the first starts from
 * the stored right edge of the tree at its first block, which must hash to
 * that block's root: the range before it recomputes that root from its own
 * entries, so the ranges together prove what one pass would. Then, once:
 * the last block's two signatures (the hash chain binds every header to
 * it), no entry beyond the last block, and the trusted checkpoint.
 */
#include "ledger/verify_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_JOBS 16
#define AUTO_MAX_JOBS 4
/* Automatic parallelism only for ranges at least this long: below, a
 * connection and a thread cost more than they save. */
#define AUTO_MIN_ENTRIES_PER_JOB 100000
#define NO_END ((uint64_t)INT64_MAX)

struct job {
	struct vstate v;
	struct ledger_verify_report rep;
	char start[256]; /* the WHERE of its first block, "" = genesis */
	pthread_t th;
	bool started, own_conn;
	int err;
	struct ehr_error_saved saved;
};

struct plan {
	char snapshot[128];
	uint64_t bounds[MAX_JOBS]; /* first block height of jobs 1.. */
	unsigned jobs;
};

/* One row of int8 values (NULL -> def) from a text query. */
static int query_u64s(PGconn *c, const char *sql, uint64_t *out, int n, uint64_t def, bool *found)
{
	PGresult *r = PQexec(c, sql);
	int err = 0;

	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != n) {
		err = ledger__verify_pg_err(c, r, "planning");
		PQclear(r);
		return err;
	}
	*found = PQntuples(r) == 1;
	for (int i = 0; i < n; i++) {
		out[i] = def;
		if (*found && !PQgetisnull(r, 0, i) &&
		    ehr_parse_u64(&out[i], PQgetvalue(r, 0, i), INT64_MAX) < 0)
			err = ehr_error_set(EHR_ERR_DB, "verify: unexpected value while planning");
	}
	PQclear(r);
	return err;
}

/*
 * Cut [start, head] into `want` ranges of about equal entry counts, at
 * blocks. With `want` 0: one per CPU (at most AUTO_MAX_JOBS), fewer for a
 * short ledger. Also exports the snapshot the other connections join.
 */
static int plan_ranges(PGconn *c, uint64_t from, unsigned want, struct plan *p)
{
	uint64_t head[2], s0 = 0, span, prev_bound = 0;
	char sql[256];
	bool found;

	p->jobs = 1;
	GUARD(query_u64s(c, "SELECT max(height), max(tree_size) FROM ledger_blocks", head, 2, 0, &found));
	if (from > 0) {
		GUARD(ehr_fmt(sql, sizeof(sql),
		              "SELECT tree_size FROM ledger_blocks WHERE tree_size <= %llu ORDER BY height "
		              "DESC LIMIT 1",
		              (unsigned long long)from));
		GUARD(query_u64s(c, sql, &s0, 1, 0, &found));
	}
	span = head[1] > s0 ? head[1] - s0 : 0;
	if (want == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		want = cpus > AUTO_MAX_JOBS ? AUTO_MAX_JOBS : cpus < 1 ? 1 : (unsigned)cpus;
		if (span / AUTO_MIN_ENTRIES_PER_JOB < want)
			want = (unsigned)(span / AUTO_MIN_ENTRIES_PER_JOB) +
			       (span < AUTO_MIN_ENTRIES_PER_JOB);
	}
	want = want > MAX_JOBS ? MAX_JOBS : want;
	for (unsigned i = 1; i < want && span > 0; i++) {
		uint64_t h;

		GUARD(ehr_fmt(
		        sql, sizeof(sql),
		        "SELECT height FROM ledger_blocks WHERE tree_size >= %llu ORDER BY tree_size LIMIT 1",
		        (unsigned long long)(s0 + span / want * i)));
		GUARD(query_u64s(c, sql, &h, 1, 0, &found));
		/* a range must hold at least one block after its first */
		if (found && h > prev_bound && h < head[0])
			p->bounds[p->jobs++] = prev_bound = h;
	}
	if (p->jobs > 1) {
		bool ok;
		PGresult *r = PQexec(c, "SELECT pg_export_snapshot()");

		ok = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		     ehr_str_copy(p->snapshot, sizeof(p->snapshot), PQgetvalue(r, 0, 0)) == 0;
		if (!ok) {
			int err = ledger__verify_pg_err(c, r, "export snapshot");

			PQclear(r);
			return err;
		}
		PQclear(r);
	}
	return 0;
}

/* A second connection with the caller's parameters, in the exported snapshot. */
static int join_snapshot(struct job *j, PGconn *like, const char *snapshot)
{
	PQconninfoOption *opts = PQconninfo(like);
	const char *keys[96], *vals[96];
	char sql[256];
	int n = 0;

	ENSURE(opts != NULL, EHR_ERR_NOMEM);
	for (PQconninfoOption *o = opts; o->keyword != NULL && n < 95; o++)
		if (o->val != NULL && o->val[0] != '\0') {
			keys[n] = o->keyword;
			vals[n++] = o->val;
		}
	keys[n] = vals[n] = NULL;
	j->v.c = PQconnectdbParams(keys, vals, 0);
	PQconninfoFree(opts);
	j->own_conn = true;
	if (PQstatus(j->v.c) != CONNECTION_OK)
		return ledger__verify_pg_err(j->v.c, NULL, "second connection");
	GUARD(ehr_fmt(sql, sizeof(sql),
	              "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '%s'; SET "
	              "LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off",
	              snapshot));
	if (ehr_db_run_script(j->v.c, sql) < 0)
		return ehr_error_wrap(EHR_ERR_DB, "verify");
	return 0;
}

static void *job_main(void *arg)
{
	struct job *j = arg;

	j->err = 0;
	merkle__frontier_init(&j->v.fr);
	if (j->start[0] != '\0')
		j->err = ledger__verify_start_at(&j->v, j->start);
	if (j->err == 0)
		j->err = ledger__verify_range(&j->v);
	if (j->err < 0)
		ehr_error_save(&j->saved);
	return NULL;
}

static int conn_fetch(void *ctx, struct merkle_node_ref *refs, size_t n)
{
	return ledger__fetch_nodes(ctx, refs, n);
}

/* Entries past the last block were never covered by a signature. */
static int check_uncovered(struct vstate *v)
{
	char sql[256];
	uint64_t s;
	bool found;

	GUARD(ehr_fmt(sql, sizeof(sql), "SELECT min(seq) FROM ledger_entries WHERE seq >= %llu",
	              (unsigned long long)v->cur));
	GUARD(query_u64s(v->c, sql, &s, 1, UINT64_MAX, &found));
	if (s != UINT64_MAX)
		return ledger__verify_bad(v, LEDGER_BAD_ENTRY, s,
		                          "entry %llu is not covered by any signed block",
		                          (unsigned long long)s);
	return 0;
}

/* The database's tree must extend the trusted checkpoint: no rollback, no fork. */
static int check_trusted(struct vstate *v)
{
	if (v->trusted_size > v->fr.size)
		return ledger__verify_bad(v, LEDGER_BAD_CHECKPOINT, v->have_prev ? v->prev.height : 0,
		                          "rollback: database tree size %llu is older than the trusted "
		                          "checkpoint's %llu",
		                          (unsigned long long)v->fr.size,
		                          (unsigned long long)v->trusted_size);
	if (!v->trusted_seen) {
		/* The trusted size lies before `from`: use stored subtrees. */
		struct merkle_range rg = { 0, v->trusted_size };

		GUARD(merkle__ranges_hash(&v->root_at_trusted, &rg, 1, conn_fetch, v->c));
	}
	if (memcmp(v->root_at_trusted, v->trusted_root, LEDGER_HASH_LEN) != 0) /* not secret */
		return ledger__verify_bad(v, LEDGER_BAD_CHECKPOINT, v->have_prev ? v->prev.height : 0,
		                          "fork: the database's tree of size %llu differs from the trusted "
		                          "checkpoint",
		                          (unsigned long long)v->trusted_size);
	return 0;
}

/*
 * The ranges' results in order of position: counts add up, and the first
 * range that failed decides (its first finding is the ledger's first).
 * Then the checks made once, on the last range's state.
 */
static int merge(struct job *jobs, unsigned n, struct ledger_verify_report *rep)
{
	struct vstate *last = &jobs[n - 1].v;

	for (unsigned i = 0; i < n; i++) {
		rep->entries += jobs[i].rep.entries;
		rep->blocks += jobs[i].rep.blocks;
		if (jobs[i].v.trusted_seen && !last->trusted_seen) {
			last->trusted_seen = true;
			memcpy(last->root_at_trusted, jobs[i].v.root_at_trusted, LEDGER_HASH_LEN);
		}
		if (jobs[i].err < 0) {
			rep->bad = jobs[i].rep.bad;
			rep->bad_seq = jobs[i].rep.bad_seq;
			rep->bad_height = jobs[i].rep.bad_height;
			memcpy(rep->reason, jobs[i].rep.reason, sizeof(rep->reason));
			ehr_error_restore(&jobs[i].saved);
			return jobs[i].err;
		}
	}
	last->rep = rep;
	/* the last block's signatures vouch, through the hash chain, for every header */
	if (!last->all_signatures && last->have_prev)
		GUARD(ledger__verify_block_sigs(last, &last->prev));
	GUARD(check_uncovered(last));
	rep->tree_size = last->fr.size;
	merkle__frontier_root(&last->fr, rep->root);
	if (last->trusted_size)
		GUARD(check_trusted(last));
	return 0;
}

/* Run the planned ranges: job 0 on the caller's connection, the others on threads. */
static int run_jobs(struct job *jobs, const struct vstate *proto, const struct plan *p, uint64_t from,
                    struct ledger_verify_report *rep)
{
	int err = 0;

	for (unsigned i = 0; i < p->jobs; i++) {
		struct job *j = &jobs[i];

		j->v = *proto;
		j->v.rep = &j->rep;
		j->v.end_height = i + 1 < p->jobs ? p->bounds[i + 1] : NO_END;
		if (i == 0 && from > 0)
			err = ehr_fmt(j->start, sizeof(j->start),
			              "WHERE tree_size <= %llu ORDER BY height DESC LIMIT 1",
			              (unsigned long long)from);
		else if (i > 0)
			err = ehr_fmt(j->start, sizeof(j->start), "WHERE height = %llu",
			              (unsigned long long)p->bounds[i]);
		if (err < 0)
			goto out;
		/* connected here, one after the other: job 0 uses `proto->c` on this thread */
		if (i > 0 && (err = join_snapshot(j, proto->c, p->snapshot)) < 0)
			goto out;
		if (i > 0) {
			if (pthread_create(&j->th, NULL, job_main, j) != 0) {
				err = ehr_error_set(EHR_ERR_INTERNAL, "cannot start a verification thread");
				goto out;
			}
			j->started = true;
		}
	}
	job_main(&jobs[0]);
out:
	for (unsigned i = 1; i < p->jobs; i++)
		if (jobs[i].started)
			pthread_join(jobs[i].th, NULL);
	if (err == 0)
		err = merge(jobs, p->jobs, rep);
	for (unsigned i = 1; i < p->jobs; i++)
		if (jobs[i].own_conn)
			PQfinish(jobs[i].v.c);
	return err;
}

static int load_trusted(struct vstate *v, const uint8_t pub[32], const char *note, size_t len)
{
	char origin[256];
	const char *nl = memchr(note, '\n', len);
	size_t olen = nl ? (size_t)(nl - note) : 0;

	if (olen == 0 || olen >= sizeof(origin))
		return ehr_error_set(EHR_ERR_PARSE, "trusted checkpoint: no origin line");
	memcpy(origin, note, olen);
	origin[olen] = '\0';
	return ledger_checkpoint_verify(note, len, pub, origin, &v->trusted_size, v->trusted_root);
}

int ledger_verify_db_opts(void *conn, const uint8_t pub[32], const struct ledger_verify_opts *o,
                          struct ledger_verify_report *rep)
{
	struct vstate proto = { 0 };
	struct job *jobs = NULL;
	struct plan plan = { 0 };
	int err = 0;

	memset(rep, 0, sizeof(*rep));
	ENSURE(conn != NULL && o != NULL && o->from <= INT64_MAX, EHR_ERR_INVAL);
	proto.c = conn;
	proto.all_signatures = o->all_signatures;
	proto.pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	if (proto.pk == NULL)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "ledger public key");
	if (o->trusted_note != NULL)
		GUARD_GOTO(load_trusted(&proto, pub, o->trusted_note, o->trusted_len));
	/* One snapshot for the whole run; stream entries by primary-key range
	 * scans (already in seq order: no sort, no bitmap heap scan). */
	if (ehr_db_run_script(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL "
	                            "enable_sort = off; SET LOCAL enable_bitmapscan = off") < 0) {
		err = ehr_error_wrap(EHR_ERR_DB, "verify");
		goto out;
	}
	err = plan_ranges(conn, o->from, o->jobs, &plan);
	if (err == 0 && (jobs = calloc(plan.jobs, sizeof(*jobs))) == NULL)
		err = ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	if (err == 0)
		err = run_jobs(jobs, &proto, &plan, o->from, rep);
	ehr_db_rollback(conn); /* read only; never touches the error slot */
out:
	free(jobs);
	EVP_PKEY_free(proto.pk);
	return err;
}

int ledger_verify_db(void *conn, const uint8_t pub[32], uint64_t from, const char *trusted_note,
                     size_t trusted_len, struct ledger_verify_report *rep)
{
	struct ledger_verify_opts o = { .from = from,
		                        .trusted_note = trusted_note,
		                        .trusted_len = trusted_len };

	return ledger_verify_db_opts(conn, pub, &o, rep);
}
