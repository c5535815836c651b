/*
 * cmd_kek.c - `ehrgate admin rotate-kek [--dry-run] [--retire]`.
 *
 * Generates a new key-encryption key (kek/<newkid>.key), makes it current
 * (kek/current; running gateways pick it up within a second), then re-wraps
 * every data key in ehr_records under it. Objects are never read or
 * rewritten: only the 61-byte wrapped keys and their kek_id change, each
 * row with a compare-and-set UPDATE so a concurrent writer is never
 * overwritten. A second pass catches records stored by a gateway that had
 * not yet seen the new KEK. Old key files are kept (a row may still need
 * one); --retire alone deletes the key files no row refers to any more.
 */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "common/db.h"
#include "cloud/cloud.h"
#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"

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

static void hexb(char *out, const uint8_t *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	out[0] = '\\';
	out[1] = 'x';
	for (size_t i = 0; i < n; i++) {
		out[2 + 2 * i] = hx[p[i] >> 4];
		out[3 + 2 * i] = hx[p[i] & 15];
	}
	out[2 + 2 * n] = '\0';
}

/* One pass over every row not under `kid`: unwrap with its own KEK, wrap
 * under `kid`, compare-and-set. */
static int rewrap_pass(struct gw_app *app, const struct cloud_kek *kek, const char *kid, size_t *done,
                       size_t *failed)
{
	char last[CLOUD_RID_HEX] = "";

	for (;;) {
		const char *p[2] = { kid, last };
		PGresult *res = NULL;
		int n;

		GUARD(db_run(app, &res,
		             "SELECT record_id, kek_id, wrapped_key FROM ehr_records WHERE kek_id <> $1 AND "
		             "record_id > $2 "
		             "ORDER BY record_id LIMIT 500",
		             2, p));
		n = PQntuples(res);
		for (int i = 0; i < n; i++) {
			const char *rid = PQgetvalue(res, i, 0), *oldkid = PQgetvalue(res, i, 1),
			           *w = PQgetvalue(res, i, 2);
			uint8_t ridb[CLOUD_RID_LEN], oldw[CLOUD_WRAPPED_LEN], neww[CLOUD_WRAPPED_LEN],
			        dek[CLOUD_KEY_LEN];
			char oldw_s[2 * CLOUD_WRAPPED_LEN + 3], neww_s[2 * CLOUD_WRAPPED_LEN + 3];
			PGresult *r2 = NULL;
			int err;

			snprintf(last, sizeof(last), "%s", rid);
			if (cloud_rid_parse(ridb, rid) < 0 || strlen(w) != 2 + 2 * CLOUD_WRAPPED_LEN ||
			    ehr_hex_decode(oldw, sizeof(oldw), w + 2, 2 * CLOUD_WRAPPED_LEN) < 0) {
				fprintf(stderr, "rotate-kek: record %s: malformed row\n", rid);
				(*failed)++;
				continue;
			}
			err = cloud_dek_unwrap(kek, oldkid, ridb, oldw, dek);
			if (err == 0)
				err = cloud_dek_wrap(kek, kid, ridb, dek, neww, NULL);
			OPENSSL_cleanse(dek, sizeof(dek));
			if (err < 0) {
				fprintf(stderr, "rotate-kek: record %s (KEK %s): %s\n", rid, oldkid,
				        ehr_error_msg());
				(*failed)++;
				continue;
			}
			hexb(oldw_s, oldw, CLOUD_WRAPPED_LEN);
			hexb(neww_s, neww, CLOUD_WRAPPED_LEN);
			{
				const char *q[5] = { rid, kid, neww_s, oldkid, oldw_s };
				err = db_run(app, &r2,
				             "UPDATE ehr_records SET kek_id = $2, wrapped_key = $3::bytea "
				             "WHERE record_id = $1 "
				             "AND kek_id = $4 AND wrapped_key = $5::bytea",
				             5, q);
			}
			if (err < 0) {
				PQclear(r2);
				PQclear(res);
				return err;
			}
			if (strcmp(PQcmdTuples(r2), "1") == 0)
				(*done)++;
			PQclear(r2);
		}
		PQclear(res);
		if (n < 500)
			return 0;
	}
}

static int retire(struct gw_app *app, const char *dir, const char *current, bool dry)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int rc = 0;

	if (d == NULL)
		return ehr_error_set(EHR_ERR_IO, "open %s", dir);
	while ((de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name);
		char kid[CLOUD_KID_MAX];
		PGresult *res = NULL;
		const char *p[1] = { kid };
		if (nl <= 4 || nl - 4 >= sizeof(kid) || strcmp(de->d_name + nl - 4, ".key") != 0)
			continue;
		memcpy(kid, de->d_name, nl - 4);
		kid[nl - 4] = '\0';
		if (strcmp(kid, current) == 0)
			continue;
		if ((rc = db_run(app, &res, "SELECT count(*) FROM ehr_records WHERE kek_id = $1", 1, p)) < 0)
			break;
		if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
			printf("rotate-kek: KEK %s is used by no record%s\n", kid,
			       dry ? " (dry run: kept)" : ": deleted");
			if (!dry && unlinkat(dirfd(d), de->d_name, 0) != 0)
				rc = ehr_error_set(EHR_ERR_IO, "unlink %s", de->d_name);
		} else {
			printf("rotate-kek: KEK %s is still used by %s records: kept\n", kid,
			       PQgetvalue(res, 0, 0));
		}
		PQclear(res);
	}
	closedir(d);
	return rc;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: ehrgate admin rotate-kek [-c CONFIG] [--set section.key=value]... [--dry-run] "
	             "[--retire]\n"
	             "\n"
	             "Create a new key-encryption key, make it current and re-wrap every record's data\n"
	             "key under it. No object is read or rewritten. Old key files are kept.\n"
	             "  --retire   instead: delete the key files that no record uses any more\n"
	             "  --dry-run  with --retire: only report; without: report what would be re-wrapped\n");
}

int gw_cmd_admin_rotate_kek(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "retire", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	struct cloud_kek *kek = NULL;
	const char *dir;
	char newkid[CLOUD_KID_MAX];
	bool dry = false, do_retire = false;
	size_t done = 0, failed = 0;
	int c, rc;

	rc = gw_config_from_args(&cfg, &argc, argv);
	if (rc != 0)
		return rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': dry = true; break;
		case 'r': do_retire = true; break;
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
	dir = gw_config_get(cfg, "store", "kek_dir");
	if (gw_app_open(&app, cfg, GW_APP_DB) < 0 || cloud_kek_load(&kek, dir) < 0) {
		fprintf(stderr, "ehrgate admin rotate-kek: %s\n", ehr_error_msg());
		rc = 1;
		goto out;
	}
	if (do_retire) {
		rc = retire(app, dir, cloud_kek_current(kek), dry) < 0 ? 1 : 0;
		if (rc)
			fprintf(stderr, "ehrgate admin rotate-kek: %s\n", ehr_error_msg());
		goto out;
	}
	if (dry) {
		PGresult *res = NULL;
		const char *p[1] = { cloud_kek_current(kek) };
		if (db_run(app, &res, "SELECT count(*) FROM ehr_records", 0, NULL) < 0) {
			fprintf(stderr, "ehrgate admin rotate-kek: %s\n", ehr_error_msg());
			rc = 1;
			goto out;
		}
		printf("rotate-kek (dry run): would create a new KEK and re-wrap %s data keys (current KEK "
		       "%s)\n",
		       PQgetvalue(res, 0, 0), p[0]);
		PQclear(res);
		rc = 0;
		goto out;
	}
	if (cloud_kek_generate(dir, newkid) < 0 || cloud_kek_set_current(dir, newkid) < 0) {
		fprintf(stderr, "ehrgate admin rotate-kek: %s\n", ehr_error_msg());
		rc = 1;
		goto out;
	}
	cloud_kek_free(kek);
	kek = NULL;
	if (cloud_kek_load(&kek, dir) < 0) {
		fprintf(stderr, "ehrgate admin rotate-kek: %s\n", ehr_error_msg());
		rc = 1;
		goto out;
	}
	printf("rotate-kek: new KEK %s is current\n", newkid);
	if (rewrap_pass(app, kek, newkid, &done, &failed) < 0) {
		fprintf(stderr, "ehrgate admin rotate-kek: %s\n", ehr_error_msg());
		rc = 1;
		goto out;
	}
	/* Gateways re-read kek/current within a second; catch what they stored meanwhile. */
	sleep(2);
	if (rewrap_pass(app, kek, newkid, &done, &failed) < 0) {
		fprintf(stderr, "ehrgate admin rotate-kek: %s\n", ehr_error_msg());
		rc = 1;
		goto out;
	}
	printf("rotate-kek: re-wrapped %zu data keys under %s, %zu failed; no object was rewritten\n", done,
	       newkid, failed);
	rc = failed ? 1 : 0;
out:
	cloud_kek_free(kek);
	gw_app_close(app);
	gw_config_free(cfg);
	return rc;
}
