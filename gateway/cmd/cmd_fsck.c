/*
 * cmd_fsck.c - `ehrgate fsck [--dry-run] [--grace SECONDS]`: reconcile the
 * object store, the ledger and the record metadata (docs/STORAGE.md §6).
 *
 * Finds and reports:
 *   - orphan objects: an object under ehr/ with no ehr.store ledger entry
 *     (a crash between the object write and the ledger commit). Removed,
 *     with its pending row, unless --dry-run. An object whose pending row
 *     is younger than --grace (an upload in flight) is left alone.
 *   - missing objects: an ehr.store entry whose object is absent. Reported
 *     (exit status 1); nothing can repair it.
 *   - pending rows whose ledger entry exists (a crash after the commit):
 *     completed from the ledger.
 *   - pending rows with neither object nor entry, older than --grace: removed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/db.h"
#include "cloud/cloud.h"
#include "ledger/ledger.h"
#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"

struct led {
	uint8_t rid[CLOUD_RID_LEN];
	uint64_t seq;
	uint64_t size;
	uint8_t sha[32];
	bool seen; /* object found */
};

struct obj {
	uint8_t rid[CLOUD_RID_LEN];
	char key[96];
	uint64_t size;
};

struct fsck {
	struct led *led;
	size_t nled, capled;
	struct obj *obj;
	size_t nobj, capobj;
	size_t foreign; /* keys under ehr/ that are not record keys */
	uint64_t next_seq;
	uint64_t last_seen;
};

static int rid_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CLOUD_RID_LEN); /* not secret */
}

static int on_entry(void *ctx, const struct ledger_entry *e, const uint8_t *raw, size_t raw_len)
{
	struct fsck *f = ctx;
	json_t *j = NULL;
	const char *rid = NULL, *sha = NULL;
	int64_t size = 0;
	struct led l;

	(void)raw;
	(void)raw_len;
	f->next_seq = e->seq + 1;
	f->last_seen++;
	if (strcmp(e->type, "ehr.store") != 0)
		return 0;
	memset(&l, 0, sizeof(l));
	if (ehr_json_parse(&j, e->payload, e->payload_len, LEDGER_MAX_PAYLOAD, 8) < 0 ||
	    ehr_json_get_str(j, "record_id", &rid, 64) < 0 || cloud_rid_parse(l.rid, rid) < 0 ||
	    ehr_json_get_str(j, "sha256", &sha, 64) < 0 || ehr_hex_decode(l.sha, 32, sha, strlen(sha)) < 0 ||
	    ehr_json_get_int(j, "size", &size, 0, INT64_MAX) < 0) {
		fprintf(stderr, "fsck: ledger entry %llu (ehr.store) has a malformed payload\n",
		        (unsigned long long)e->seq);
		json_decref(j);
		return 0;
	}
	json_decref(j);
	l.seq = e->seq;
	l.size = (uint64_t)size;
	if (f->nled == f->capled) {
		size_t nc = f->capled ? 2 * f->capled : 1024;
		struct led *nl = realloc(f->led, nc * sizeof(*nl));
		ENSURE(nl != NULL, EHR_ERR_NOMEM);
		f->led = nl;
		f->capled = nc;
	}
	f->led[f->nled++] = l;
	return 0;
}

static int on_object(void *ctx, const char *key, uint64_t size)
{
	struct fsck *f = ctx;
	struct obj o;

	memset(&o, 0, sizeof(o));
	if (cloud_record_key_parse(o.rid, key) < 0 || strlen(key) >= sizeof(o.key)) {
		f->foreign++;
		return 0;
	}
	snprintf(o.key, sizeof(o.key), "%s", key);
	o.size = size;
	if (f->nobj == f->capobj) {
		size_t nc = f->capobj ? 2 * f->capobj : 1024;
		struct obj *no = realloc(f->obj, nc * sizeof(*no));
		ENSURE(no != NULL, EHR_ERR_NOMEM);
		f->obj = no;
		f->capobj = nc;
	}
	f->obj[f->nobj++] = o;
	return 0;
}

static struct led *find_led(struct fsck *f, const uint8_t rid[CLOUD_RID_LEN])
{
	return bsearch(rid, f->led, f->nled, sizeof(*f->led), rid_cmp);
}

static int db_run(struct gw_app *app, PGresult **res, const char *sql, int n, const char *const *p)
{
	void *conn = NULL, *r = NULL;
	int err;

	GUARD(ehr_db_acquire(gw_app_db(app), &conn));
	err = ehr_db_exec(conn, &r, sql, n, p);
	ehr_db_release(gw_app_db(app), conn, err == EHR_ERR_UNAVAILABLE);
	*res = r;
	return err;
}

/* The state of a record's row: 0 none, 1 pending (age in ms), 2 stored. */
static int row_state(struct gw_app *app, const char *rid, int *state, int64_t *age_ms)
{
	const char *p[1] = { rid };
	PGresult *res = NULL;
	int err;

	GUARD(db_run(app, &res,
	             "SELECT state, (extract(epoch from clock_timestamp()) * 1000)::bigint - created_ms "
	             "FROM ehr_records WHERE record_id = $1",
	             1, p));
	*state = 0;
	*age_ms = 0;
	err = 0;
	if (PQntuples(res) == 1) {
		*state = strcmp(PQgetvalue(res, 0, 0), "stored") == 0 ? 2 : 1;
		err = ehr_parse_i64(age_ms, PQgetvalue(res, 0, 1), INT64_MIN, INT64_MAX);
	}
	PQclear(res);
	return err;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: ehrgate fsck [-c CONFIG] [--set section.key=value]... [--dry-run] [--grace SECONDS]\n"
	        "\n"
	        "Reconcile the object store, the ledger and the record metadata:\n"
	        "  orphan objects (no ehr.store ledger entry): removed, with their pending row;\n"
	        "  missing objects (a ledger entry without its object): reported, exit status 1;\n"
	        "  pending rows whose ledger entry exists: completed from the ledger;\n"
	        "  pending rows with neither object nor entry: removed.\n"
	        "--dry-run reports and changes nothing. Objects and rows younger than --grace\n"
	        "seconds (default 600) may be uploads in flight and are left alone.\n");
}

int gw_cmd_fsck(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "grace", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	struct fsck f;
	bool dry = false;
	uint64_t grace_s = 600;
	size_t orphans = 0, removed = 0, missing = 0, completed = 0, dropped = 0, young = 0, failures = 0;
	int c, rc;

	memset(&f, 0, sizeof(f));
	rc = gw_config_from_args(&cfg, &argc, argv);
	if (rc != 0)
		return rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': dry = true; break;
		case 'g':
			if (ehr_parse_u64(&grace_s, optarg, 86400 * 365) < 0) {
				usage(stderr);
				gw_config_free(cfg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			gw_config_free(cfg);
			return 0;
		default:
			usage(stderr);
			gw_config_free(cfg);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		gw_config_free(cfg);
		return 2;
	}
	if (gw_app_open(&app, cfg, GW_APP_DB | GW_APP_LEDGER | GW_APP_STORE) < 0) {
		fprintf(stderr, "ehrgate fsck: %s\n", ehr_error_msg());
		gw_config_free(cfg);
		return 1;
	}
	if (gw_app_ledger(app) == NULL) {
		fprintf(stderr, "ehrgate fsck: the ledger is not available in this build\n");
		rc = 1;
		goto out;
	}

	/* 1. every ehr.store entry */
	for (;;) {
		struct ledger_query q = { .from_seq = f.next_seq, .type = "ehr.store", .limit = 10000 };
		uint64_t before = f.last_seen;
		if (ledger_query(gw_app_ledger(app), &q, on_entry, &f) < 0) {
			fprintf(stderr, "ehrgate fsck: reading the ledger: %s\n", ehr_error_msg());
			rc = 1;
			goto out;
		}
		if (f.last_seen - before < 10000)
			break;
	}
	qsort(f.led, f.nled, sizeof(*f.led), rid_cmp);

	/* 2. every object */
	if (obj_store_list(gw_app_store(app), CLOUD_RECORD_PREFIX, on_object, &f) < 0) {
		fprintf(stderr, "ehrgate fsck: listing the object store: %s\n", ehr_error_msg());
		rc = 1;
		goto out;
	}

	/* 3. objects without a ledger entry */
	for (size_t i = 0; i < f.nobj; i++) {
		struct led *l = find_led(&f, f.obj[i].rid);
		char rid[CLOUD_RID_HEX];
		int state = 0;
		int64_t age = 0;

		if (l) {
			l->seen = true;
			if (l->size != f.obj[i].size)
				printf("size-mismatch %s ledger=%llu object=%llu (reads will be refused)\n",
				       f.obj[i].key, (unsigned long long)l->size,
				       (unsigned long long)f.obj[i].size);
			continue;
		}
		cloud_rid_hex(rid, f.obj[i].rid);
		if (row_state(app, rid, &state, &age) < 0) {
			fprintf(stderr, "ehrgate fsck: %s\n", ehr_error_msg());
			failures++;
			continue;
		}
		if (state == 1 && age < (int64_t)grace_s * 1000) {
			printf("in-flight %s (pending %lld ms, younger than --grace)\n", f.obj[i].key,
			       (long long)age);
			young++;
			continue;
		}
		orphans++;
		printf("orphan-object %s size=%llu%s\n", f.obj[i].key, (unsigned long long)f.obj[i].size,
		       dry ? " (dry run: kept)" : "");
		if (dry)
			continue;
		if (obj_store_delete(gw_app_store(app), f.obj[i].key) < 0) {
			fprintf(stderr, "ehrgate fsck: deleting %s: %s\n", f.obj[i].key, ehr_error_msg());
			failures++;
			continue;
		}
		removed++;
		if (state == 1) {
			const char *p[1] = { rid };
			PGresult *res = NULL;
			if (db_run(app, &res,
			           "DELETE FROM ehr_records WHERE record_id = $1 AND state = 'pending'", 1,
			           p) < 0)
				failures++;
			PQclear(res);
		}
	}

	/* 4. ledger entries without an object */
	for (size_t i = 0; i < f.nled; i++) {
		char rid[CLOUD_RID_HEX];
		if (f.led[i].seen)
			continue;
		cloud_rid_hex(rid, f.led[i].rid);
		missing++;
		printf("missing-object %s ledger-seq=%llu\n", rid, (unsigned long long)f.led[i].seq);
	}

	/* 5. pending rows */
	{
		PGresult *res = NULL;
		if (db_run(app, &res,
		           "SELECT record_id, (extract(epoch from clock_timestamp()) * 1000)::bigint - "
		           "created_ms "
		           "FROM ehr_records WHERE state = 'pending' ORDER BY record_id",
		           0, NULL) < 0) {
			fprintf(stderr, "ehrgate fsck: %s\n", ehr_error_msg());
			rc = 1;
			goto out;
		}
		for (int i = 0; i < PQntuples(res); i++) {
			const char *rid = PQgetvalue(res, i, 0);
			uint8_t ridb[CLOUD_RID_LEN];
			int64_t age = 0;
			struct led *l;
			PGresult *r2 = NULL;
			if (cloud_rid_parse(ridb, rid) < 0 ||
			    ehr_parse_i64(&age, PQgetvalue(res, i, 1), INT64_MIN, INT64_MAX) < 0)
				continue;
			l = find_led(&f, ridb);
			if (l) {
				char seq[24], ct[24], plain[24], sha[70];
				uint64_t pn = 0;
				static const char hx[] = "0123456789abcdef";
				if (cloud_plaintext_size(&pn, l->size, CLOUD_SEG_DEFAULT) < 0) {
					printf("pending-row %s: ledger size %llu is not a ciphertext size\n",
					       rid, (unsigned long long)l->size);
					failures++;
					continue;
				}
				snprintf(seq, sizeof(seq), "%llu", (unsigned long long)l->seq);
				snprintf(ct, sizeof(ct), "%llu", (unsigned long long)l->size);
				snprintf(plain, sizeof(plain), "%llu", (unsigned long long)pn);
				sha[0] = '\\';
				sha[1] = 'x';
				for (int k = 0; k < 32; k++) {
					sha[2 + 2 * k] = hx[l->sha[k] >> 4];
					sha[3 + 2 * k] = hx[l->sha[k] & 15];
				}
				sha[66] = '\0';
				printf("pending-row %s has ledger entry %s%s\n", rid, seq,
				       dry ? " (dry run: left)" : ": completed");
				if (dry)
					continue;
				const char *p[5] = { rid, seq, plain, ct, sha };
				if (db_run(app, &r2,
				           "UPDATE ehr_records SET state = 'stored', ledger_seq = $2, "
				           "plain_size = $3, "
				           "ct_size = $4, ct_sha256 = $5::bytea WHERE record_id = $1 AND "
				           "state = 'pending'",
				           5, p) < 0)
					failures++;
				else
					completed++;
				PQclear(r2);
			} else if (age >= (int64_t)grace_s * 1000) {
				char key[128];
				uint64_t size;
				/* An object, if any, was handled as an orphan above. */
				if (cloud_record_key(key, sizeof(key), ridb) == 0 &&
				    obj_store_head(gw_app_store(app), key, &size) == 0)
					continue;
				printf("stale-pending-row %s%s\n", rid,
				       dry ? " (dry run: kept)" : ": removed");
				if (dry)
					continue;
				const char *p[1] = { rid };
				if (db_run(app, &r2,
				           "DELETE FROM ehr_records WHERE record_id = $1 AND state = "
				           "'pending'",
				           1, p) < 0)
					failures++;
				else
					dropped++;
				PQclear(r2);
			}
		}
		PQclear(res);
	}

	printf("fsck: %zu ledger records, %zu objects, %zu orphan objects (%zu removed), %zu missing "
	       "objects, "
	       "%zu pending rows completed, %zu stale pending rows removed, %zu in flight, %zu foreign keys, "
	       "%zu failures%s\n",
	       f.nled, f.nobj, orphans, removed, missing, completed, dropped, young, f.foreign, failures,
	       dry ? " (dry run)" : "");
	rc = (missing > 0 || failures > 0) ? 1 : 0;
out:
	free(f.led);
	free(f.obj);
	gw_app_close(app);
	gw_config_free(cfg);
	return rc;
}
