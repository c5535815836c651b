/* ltest.c - see ltest.h. */
#include "ltest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>

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

int ltest_grow_to(const char *ci, const char *keyfile, const char *origin, uint64_t size, const char *note)
{
	EVP_PKEY *k = ltest_key_read(keyfile);
	struct ledger_config cfg = {
		.conninfo = ci, .origin = origin, .signing_key = k, .batch_max = 1000, .batch_ms = 0
	};
	struct ledger *l = NULL;
	struct ledger_entry_in in[1000];
	struct ledger_block head;
	json_t *pl = json_pack("{s:s}", "note", note);
	uint64_t have = 0;
	int err = -1;

	if (k == NULL || pl == NULL || ledger_open(&l, &cfg) < 0)
		goto out;
	if ((err = ledger_head(l, &head)) == 0)
		have = head.tree_size;
	else if (err != EHR_ERR_NOT_FOUND)
		goto out;
	err = 0;
	for (size_t i = 0; i < 1000; i++)
		in[i] = (struct ledger_entry_in){ "ehr.read", "srv-00000000000000000000000000000000", "subj",
			                          pl };
	while (have < size && err == 0) {
		size_t n = size - have > 1000 ? 1000 : (size_t)(size - have);
		err = ledger_append_n(l, in, n, NULL);
		have += n;
	}
out:
	if (err < 0)
		fprintf(stderr, "ltest_grow_to: %s\n", ehr_error_detail());
	ledger_close(l);
	EVP_PKEY_free(k);
	json_decref(pl);
	return err < 0 ? -1 : 0;
}
