/*
 * test_tiles.c - the C2SP tlog-tiles read API (docs/LEDGER.md §10) through
 * a real `ehrgate serve`: nothing before the first checkpoint, then 70,000
 * entries (the spec's own example size: full and partial tiles at levels
 * 0, 1 and 2) judged by tiles_client.py, a client written from the C2SP
 * texts alone, which rebuilds the published root from the tiles, checks
 * inclusion proofs (also in partial tiles), the entry bundles (auditor
 * only), 404 past the published size and 400 for malformed paths. The
 * [ledger] public_entries switch opens the bundles.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "ledger/ledger.h"
#include "tests/harness/gwproc.h"
#include "tests/harness/harness.h"
#include "tests/integration/ehr/ehrtest.h"
#include "tests/integration/ledger/ltest.h"

#define TILES_SIZE 70000

static struct gw_proc gw;
static char vkey[512], aud_dir[GWP_PATH + 16];

static int suite_init(void)
{
	const char *args[] = { "ledger", "vkey", NULL };
	size_t n;

	if (ehrt_gw_setup(&gw, NULL) < 0 || gwp_start(&gw) < 0)
		return 1;
	if (gwp_cmd(&gw, vkey, sizeof(vkey), args) != 0)
		return 1;
	n = strlen(vkey);
	while (n > 0 && (vkey[n - 1] == '\n' || vkey[n - 1] == '\r'))
		vkey[--n] = '\0';
	ehrt_fmt(aud_dir, sizeof(aud_dir), "%s/aud", gw.dir);
	return 0;
}

static int suite_clean(void)
{
	gwp_teardown(&gw);
	return 0;
}

/* Append entries with the gateway's own key and origin, as a second writer
 * on its database (the writers serialise through the advisory lock), in
 * groups of 1000 (one block each) until the tree has `size` entries. */
static int fill_to(uint64_t size)
{
	char keyf[GWP_PATH + 32];

	ehrt_fmt(keyf, sizeof(keyf), "%s/ledger.key", gw.state_dir);
	return ltest_grow_to(gw.db.app_ci, keyf, "ehrgate.local/ledger", size, "tiles test");
}

/* tiles_client.py against the gateway; with_cert: the auditor's
 * certificate for the entry bundles; expect: the least checkpoint size
 * (then inclusion is checked at the tile edges of a 70,000 tree too). */
static int run_client(bool with_cert, const char *expect)
{
	static const char *const idx[] = { "255", "256", "65535", "65536", "69999" };
	char out[65536], cert[GWP_PATH + 32], key[GWP_PATH + 32];
	const char *argv[32] = { "/usr/bin/python3",
		                 EHRGATE_SOURCE_DIR "/tests/integration/tiles/tiles_client.py",
		                 "--url",
		                 gw.base_url,
		                 "--ca",
		                 gw.ca_pem,
		                 "--vkey",
		                 vkey };
	size_t n = 8;
	int rc;

	ehrt_fmt(cert, sizeof(cert), "%s/cert.pem", aud_dir);
	ehrt_fmt(key, sizeof(key), "%s/key.pem", aud_dir);
	if (with_cert) {
		argv[n++] = "--cert";
		argv[n++] = cert;
		argv[n++] = "--key";
		argv[n++] = key;
	}
	if (expect) {
		argv[n++] = "--expect-size";
		argv[n++] = expect;
		for (size_t i = 0; i < EHR_ARRAY_LEN(idx); i++) {
			argv[n++] = "--index";
			argv[n++] = idx[i];
		}
	}
	argv[n] = NULL;
	rc = ehr_test_run(out, sizeof(out), argv);
	fprintf(stderr, "\n%s", out);
	return rc;
}

/* Before the first entry: no checkpoint, no tile. */
static void test_empty_log(void)
{
	struct gwp_resp res;

	EHR_ASSERT_OK(gwp_get(&gw, "/checkpoint", &res));
	CU_ASSERT_EQUAL(res.status, 404);
	CU_ASSERT(gwp_resp_is_error(&res, "not_found"));
	gwp_resp_free(&res);
	EHR_ASSERT_OK(gwp_get(&gw, "/tile/0/000.p/1", &res));
	CU_ASSERT_EQUAL(res.status, 404);
	gwp_resp_free(&res);
}

/* 70,000 entries: 273 full level-0 tiles and one of width 112, one full
 * level-1 tile and one of width 17, one level-2 tile of width 1. */
static void test_mirror_from_tiles(void)
{
	struct ehr_client *aud = NULL;

	EHR_ASSERT_OK(ehrt_principal(&gw, "auditor", "aud", &aud));
	ehr_client_free(aud);
	EHR_ASSERT_OK(fill_to(TILES_SIZE));
	CU_ASSERT_EQUAL(run_client(true, "70000"), 0);
}

/* A small tree after more appends: partial tiles of another size. */
static void test_partial_sizes(void)
{
	EHR_ASSERT_OK(fill_to(TILES_SIZE + 300));
	CU_ASSERT_EQUAL(run_client(true, NULL), 0);
}

/* [ledger] public_entries = true: bundles without a certificate. */
static void test_public_entries_switch(void)
{
	const char *sets[] = { "ledger.public_entries=true", NULL };
	struct gwp_resp res;
	char cc[128];

	EHR_ASSERT_OK(gwp_stop(&gw, NULL, 0));
	EHR_ASSERT_OK(gwp_start_with(&gw, sets));
	EHR_ASSERT_OK(gwp_get(&gw, "/tile/entries/000", &res));
	CU_ASSERT_EQUAL(res.status, 200);
	CU_ASSERT(res.body_len > 256 * 2);
	CU_ASSERT(gwp_resp_header(&res, "Cache-Control", cc, sizeof(cc)) == 0 &&
	          strstr(cc, "public") != NULL);
	gwp_resp_free(&res);
	EHR_ASSERT_OK(gwp_stop(&gw, NULL, 0));
	EHR_ASSERT_OK(gwp_start(&gw));
	EHR_ASSERT_OK(gwp_get(&gw, "/tile/entries/000", &res));
	CU_ASSERT(res.status == 401 || res.status == 403);
	gwp_resp_free(&res);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("tiles", suite_init, suite_clean, { "empty_log", test_empty_log },
	              { "mirror_from_tiles", test_mirror_from_tiles },
	              { "partial_sizes", test_partial_sizes },
	              { "public_entries_switch", test_public_entries_switch });
}

EHR_TEST_MAIN(register_suites)
