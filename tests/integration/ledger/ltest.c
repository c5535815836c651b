/* ltest.c - see ltest.h. */
#include "ltest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>

static int ci_build(char *out, size_t cap, const char *base, const char *dbname, const char *user)
{
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(base, &errmsg);
	struct ehr_buf b = EHR_BUF_INIT(2048);
	int err = 0;

	if (opts == NULL) {
		fprintf(stderr, "bad EHRGATE_TEST_PG: %s\n", errmsg ? errmsg : "?");
		PQfreemem(errmsg);
		return -1;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		const char *v = o->val;

		if (strcmp(o->keyword, "dbname") == 0 && dbname)
			v = dbname;
		if (strcmp(o->keyword, "user") == 0 && user)
			v = user;
		if (v == NULL)
			continue;
		err |= ehr_buf_printf(&b, "%s='", o->keyword);
		for (const char *p = v; *p; p++) {
			if (*p == '\'' || *p == '\\')
				err |= ehr_buf_append_u8(&b, '\\');
			err |= ehr_buf_append_u8(&b, (uint8_t)*p);
		}
		err |= ehr_buf_append(&b, "' ", 2);
	}
	PQconninfoFree(opts);
	if (err == 0 && b.len < cap)
		snprintf(out, cap, "%s", ehr_buf_cstr(&b));
	else
		err = -1;
	ehr_buf_free(&b);
	return err ? -1 : 0;
}

PGconn *ltest_connect(const char *ci, bool bypass)
{
	PGconn *c = PQconnectdb(ci);

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "connect: %s\n", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	if (bypass && ltest_exec(c, "SET session_replication_role = replica") < 0) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

int ltest_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int st = PQresultStatus(r);
	int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? 0 : -1;

	if (rc < 0)
		fprintf(stderr, "SQL failed: %.200s: %s\n", sql, PQresultErrorMessage(r));
	PQclear(r);
	return rc;
}

long long ltest_scalar(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	long long v = -1;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
		int64_t x;

		if (ehr_parse_i64(&x, PQgetvalue(r, 0, 0), INT64_MIN, INT64_MAX) == 0)
			v = x;
	} else if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "SQL failed: %s: %s\n", sql, PQresultErrorMessage(r));
	}
	PQclear(r);
	return v;
}

int ltest_db_create(struct ltest_db *db, const char *tag)
{
	const char *base = getenv("EHRGATE_TEST_PG");
	struct ehr_buf sql = EHR_BUF_INIT(1 << 20);
	char admin_ci[1024], q[256], path[1024];
	const char *src = getenv("EHRGATE_SOURCE_DIR");
	PGconn *c;
	static unsigned counter;
	int rc = -1;

	if (base == NULL) {
		fprintf(stderr, "EHRGATE_TEST_PG is not set\n");
		return -1;
	}
	snprintf(db->name, sizeof(db->name), "ledger_%s_%d_%u", tag, (int)getpid(), counter++);
	if (ci_build(admin_ci, sizeof(admin_ci), base, NULL, NULL) < 0 ||
	    ci_build(db->super_ci, sizeof(db->super_ci), base, db->name, NULL) < 0 ||
	    ci_build(db->app_ci, sizeof(db->app_ci), base, db->name, "ehrgate_app") < 0)
		return -1;
	c = ltest_connect(admin_ci, false);
	if (c == NULL)
		return -1;
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s", db->name);
	ltest_exec(c, q);
	snprintf(q, sizeof(q), "CREATE DATABASE %s", db->name);
	if (ltest_exec(c, q) < 0)
		goto out;
	/* migration 0001 (gateway core) creates this role; make sure it exists */
	PQclear(PQexec(c, "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ehrgate_app') "
	                  "THEN CREATE ROLE ehrgate_app LOGIN; END IF; END$$"));
	PQfinish(c);
	c = ltest_connect(db->super_ci, false);
	if (c == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/schemas/sql/0010_ledger.sql", src ? src : EHR_SOURCE_DIR);
	if (ehr_file_read(&sql, path, 1 << 20) < 0) {
		fprintf(stderr, "cannot read %s\n", path);
		goto out;
	}
	rc = ltest_exec(c, ehr_buf_cstr(&sql));
out:
	PQfinish(c);
	ehr_buf_free(&sql);
	return rc;
}

void ltest_db_drop(struct ltest_db *db)
{
	char admin_ci[1024], q[256];
	PGconn *c;

	if (ci_build(admin_ci, sizeof(admin_ci), getenv("EHRGATE_TEST_PG"), NULL, NULL) < 0)
		return;
	c = ltest_connect(admin_ci, false);
	if (c == NULL)
		return;
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
	ltest_exec(c, q);
	PQfinish(c);
}

EVP_PKEY *ltest_key_new(void)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *k = NULL;

	if (c == NULL || EVP_PKEY_keygen_init(c) != 1 || EVP_PKEY_keygen(c, &k) != 1)
		k = NULL;
	EVP_PKEY_CTX_free(c);
	return k;
}

int ltest_key_write(EVP_PKEY *k, const char *path)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int rc = -1;

	if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1) {
		n = BIO_get_mem_data(b, &p);
		rc = ehr_file_write_atomic(path, p, (size_t)n, 0600, false) < 0 ? -1 : 0;
	}
	BIO_free(b);
	return rc;
}

EVP_PKEY *ltest_key_read(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL)
		return NULL;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

int ltest_ledger_open(struct ledger **l, const char *ci, EVP_PKEY *k, unsigned batch_max, unsigned batch_ms)
{
	struct ledger_config cfg = {
		.db = NULL,
		.conninfo = ci,
		.origin = LTEST_ORIGIN,
		.signing_key = k,
		.batch_max = batch_max,
		.batch_ms = batch_ms,
	};

	return ledger_open(l, &cfg);
}

struct fill_arg {
	struct ledger *l;
	unsigned n;
	unsigned id;
	const char *subject;
	int failures;
};

static void *fill_main(void *p)
{
	struct fill_arg *a = p;

	for (unsigned i = 0; i < a->n; i++) {
		json_t *payload = json_pack("{s:i,s:i,s:s}", "thread", a->id, "i", i, "note", "x");
		struct ledger_entry_in in = { "ehr.read", "actor-test", a->subject, payload };
		struct ledger_receipt r;

		if (ledger_append(a->l, &in, &r) < 0) {
			if (a->failures++ == 0)
				fprintf(stderr, "append failed: %s\n", ehr_error_msg());
		}
		json_decref(payload);
	}
	return NULL;
}

int ltest_fill(struct ledger *l, unsigned n, unsigned threads, const char *subject)
{
	pthread_t t[256];
	struct fill_arg a[256];
	int fails = 0;

	if (threads == 0 || threads > 256)
		return -1;
	for (unsigned i = 0; i < threads; i++) {
		a[i] = (struct fill_arg){ l, n / threads + (i < n % threads), i, subject ? subject : "subj",
			                  0 };
		pthread_create(&t[i], NULL, fill_main, &a[i]);
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		fails += a[i].failures;
	}
	return fails ? -1 : 0;
}
