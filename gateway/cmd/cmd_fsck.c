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
 *   - 'erasing' rows (an erasure that crashed or failed after the data key
 *     was destroyed): finished - ehr.erase found or appended, object
 *     deleted, row 'erased' (docs/ERASURE.md §3). An erased record has no
 *     object and is consistent; an object found for one is deleted again.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"
#include "records/records.h"

/* One finding of records_fsck, as a line of output. */
static void print_finding(void *ud, enum records_fsck_event ev, const struct records_fsck_item *it)
{
	bool dry = *(const bool *)ud;

	switch (ev) {
	case RECORDS_FSCK_MALFORMED_ENTRY:
		fprintf(stderr, "fsck: ledger entry %llu (ehr.store) has a malformed payload\n",
		        (unsigned long long)it->seq);
		break;
	case RECORDS_FSCK_SIZE_MISMATCH:
		printf("size-mismatch %s ledger=%llu object=%llu (reads will be refused)\n", it->key,
		       (unsigned long long)it->ledger_size, (unsigned long long)it->size);
		break;
	case RECORDS_FSCK_ROW_FAILED: fprintf(stderr, "ehrgate fsck: %s\n", it->detail); break;
	case RECORDS_FSCK_IN_FLIGHT:
		printf("in-flight %s (pending %lld ms, younger than --grace)\n", it->key,
		       (long long)it->age_ms);
		break;
	case RECORDS_FSCK_ORPHAN:
		printf("orphan-object %s size=%llu%s\n", it->key, (unsigned long long)it->size,
		       dry ? " (dry run: kept)" : "");
		break;
	case RECORDS_FSCK_DELETE_FAILED:
		fprintf(stderr, "ehrgate fsck: deleting %s: %s\n", it->key, it->detail);
		break;
	case RECORDS_FSCK_MISSING:
		printf("missing-object %s ledger-seq=%llu\n", it->rid, (unsigned long long)it->seq);
		break;
	case RECORDS_FSCK_PENDING_BAD_SIZE:
		printf("pending-row %s: ledger size %llu is not a ciphertext size\n", it->rid,
		       (unsigned long long)it->ledger_size);
		break;
	case RECORDS_FSCK_PENDING_COMPLETED:
		printf("pending-row %s has ledger entry %llu%s\n", it->rid, (unsigned long long)it->seq,
		       dry ? " (dry run: left)" : ": completed");
		break;
	case RECORDS_FSCK_STALE_PENDING:
		printf("stale-pending-row %s%s\n", it->rid, dry ? " (dry run: kept)" : ": removed");
		break;
	case RECORDS_FSCK_ERASE_COMPLETED:
		if (dry)
			printf("erasing-row %s (dry run: left)\n", it->rid);
		else
			printf("erasing-row %s: erasure completed, ehr.erase entry %llu\n", it->rid,
			       (unsigned long long)it->seq);
		break;
	case RECORDS_FSCK_ERASE_FAILED:
		fprintf(stderr, "ehrgate fsck: finishing the erasure of %s: %s\n", it->rid, it->detail);
		break;
	case RECORDS_FSCK_ERASED_OBJECT:
		printf("erased-record-object %s%s\n", it->key, dry ? " (dry run: kept)" : ": deleted");
		break;
	default: break;
	}
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
	        "  pending rows with neither object nor entry: removed;\n"
	        "  erasures left half-done by a crash: completed (docs/ERASURE.md).\n"
	        "--dry-run reports and changes nothing. Objects and rows younger than --grace\n"
	        "seconds (default 600) may be uploads in flight and are left alone.\n");
}

/* 0 to go on, else the exit status (usage printed). */
static int parse_args(int argc, char **argv, bool *dry, uint64_t *grace_s)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "grace", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': *dry = true; break;
		case 'g':
			if (ehr_parse_u64(grace_s, optarg, 86400 * 365) < 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'h': usage(stdout); return -1;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

/* Patient erasures a crash interrupted (docs/ERASURE.md §10):
 * finished before the records pass, which then sees them erased. */
static int patient_erasures(struct gw_app *app)
{
	struct gw_patient_erase_report pr;

	if (gw_patient_erase_complete(app, &pr) < 0) {
		fprintf(stderr, "ehrgate fsck: patient erasures: %s\n", ehr_error_detail());
		return -1;
	}
	if (pr.applied + pr.completed + pr.failed > 0)
		printf("fsck: patient erasures: %zu applied from the ledger, %zu completed (%llu records "
		       "erased), %zu failed\n",
		       pr.applied, pr.completed, (unsigned long long)pr.records_erased, pr.failed);
	return pr.failed > 0 ? -1 : 0;
}

int gw_cmd_fsck(int argc, char **argv)
{
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	struct records_fsck_opts o = { .grace_s = 600, .report = print_finding };
	struct records_fsck_report rep;
	int rc;

	rc = gw_config_from_args(&cfg, &argc, argv);
	if (rc != 0)
		return rc;
	o.ud = &o.dry_run;
	if ((rc = parse_args(argc, argv, &o.dry_run, &o.grace_s)) != 0) {
		gw_config_free(cfg);
		return rc < 0 ? 0 : rc;
	}
	if (gw_app_open(&app, cfg, GW_APP_DB | GW_APP_LEDGER | GW_APP_STORE) < 0) {
		fprintf(stderr, "ehrgate fsck: %s\n", ehr_error_detail());
		gw_config_free(cfg);
		return 1;
	}
	if (gw_app_ledger(app) == NULL) {
		fprintf(stderr, "ehrgate fsck: the ledger is not available in this build\n");
		rc = 1;
		goto out;
	}
	{
		struct records_env env = { gw_app_db(app), gw_app_ledger(app), gw_app_store(app) };

		if (records_fsck(&env, &o, &rep) < 0) {
			fprintf(stderr, "ehrgate fsck: %s%s%s\n", rep.failed_at ? rep.failed_at : "",
			        rep.failed_at && *rep.failed_at ? ": " : "", ehr_error_detail());
			rc = 1;
			goto patients; /* a failed record pass does not stop the patient pass */
		}
	}
	printf("fsck: %zu ledger records, %zu objects, %zu orphan objects (%zu removed), %zu missing "
	       "objects, "
	       "%zu pending rows completed, %zu stale pending rows removed, %zu in flight, %zu foreign keys, "
	       "%zu erased records (%zu erasures completed), %zu failures%s\n",
	       rep.ledger_records, rep.objects, rep.orphans, rep.removed, rep.missing, rep.completed,
	       rep.dropped, rep.young, rep.foreign, rep.erased, rep.erasures_completed, rep.failures,
	       o.dry_run ? " (dry run)" : "");
	rc = (rep.missing > 0 || rep.failures > 0) ? 1 : 0;
patients:
	/* After the record pass: a row it completed for an erased patient is
	 * erased here, in the same run. */
	if (!o.dry_run && patient_erasures(app) < 0)
		rc = 1;
out:
	gw_app_close(app);
	gw_config_free(cfg);
	return rc;
}
