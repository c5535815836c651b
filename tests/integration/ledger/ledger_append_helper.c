/*
 * ledger_append_helper.c - a separate process appending to a ledger, for the
 * multi-process and kill -9 tests and the benchmark.
 *
 *   ledger_append_helper CONNINFO KEYFILE COUNT THREADS
 *
 * Appends COUNT entries (0 = until killed) from THREADS threads and writes
 * each acknowledged seq as a decimal line to stdout with one write(2), only
 * after ledger_append returned success (i.e. after the commit was durable).
 * Exit status 0 if every append succeeded.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ltest.h"

static struct ledger *g_ledger;
static uint64_t g_count;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_issued;
static int g_fail;

static void *run(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t i;
		json_t *payload;
		struct ledger_entry_in in;
		struct ledger_receipt r;
		char line[32];
		int n;

		pthread_mutex_lock(&g_mu);
		i = g_issued++;
		pthread_mutex_unlock(&g_mu);
		if (g_count && i >= g_count)
			break;
		payload = json_pack("{s:i,s:I}", "pid", (int)getpid(), "i", (json_int_t)i);
		in = (struct ledger_entry_in){ "ehr.store", "helper", "subj", payload };
		if (ledger_append(g_ledger, &in, &r) < 0) {
			fprintf(stderr, "helper: append failed: %s\n", ehr_error_msg());
			__atomic_store_n(&g_fail, 1, __ATOMIC_SEQ_CST);
			json_decref(payload);
			break;
		}
		json_decref(payload);
		n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)r.seq);
		if (write(1, line, (size_t)n) != n)
			break;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	EVP_PKEY *k;
	uint64_t threads;
	pthread_t t[256];

	if (argc != 5 || ehr_parse_u64(&g_count, argv[3], UINT64_MAX) < 0 ||
	    ehr_parse_u64(&threads, argv[4], 256) < 0 || threads == 0) {
		fprintf(stderr, "usage: ledger_append_helper CONNINFO KEYFILE COUNT THREADS\n");
		return 2;
	}
	k = ltest_key_read(argv[2]);
	if (k == NULL ||
	    ltest_ledger_open(&g_ledger, argv[1], k, 512, getenv("LEDGER_BATCH_MS") ? 2 : 0) < 0) {
		fprintf(stderr, "helper: open failed: %s\n", ehr_error_msg());
		return 1;
	}
	for (uint64_t i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, run, NULL);
	for (uint64_t i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	ledger_close(g_ledger);
	EVP_PKEY_free(k);
	return g_fail ? 1 : 0;
}
