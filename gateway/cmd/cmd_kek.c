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
#include <errno.h>
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cloud/cloud.h"
#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"
#include "records/records.h"

static void print_rewrap_failure(void *ud, const char *rid, const char *kid, const char *detail)
{
	(void)ud;
	if (kid == NULL)
		fprintf(stderr, "rotate-kek: record %s: %s\n", rid, detail);
	else
		fprintf(stderr, "rotate-kek: record %s (KEK %s): %s\n", rid, kid, detail);
}

/* --retire: delete the key files in dir that no row uses, but the current one. */
static int retire(const struct records_env *env, const char *dir, const char *current, bool dry)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int rc = 0;

	if (d == NULL)
		return ehr_error_set_detail(EHR_ERR_IO, "cannot open the KEK directory", "open %s: %s", dir,
		                            strerror(errno));
	while ((de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name);
		char kid[CLOUD_KID_MAX];
		uint64_t n = 0;

		if (nl <= 4 || nl - 4 >= sizeof(kid) || strcmp(de->d_name + nl - 4, ".key") != 0)
			continue;
		memcpy(kid, de->d_name, nl - 4);
		kid[nl - 4] = '\0';
		if (strcmp(kid, current) == 0)
			continue;
		if ((rc = records_count(env, kid, &n)) < 0)
			break;
		if (n == 0) {
			printf("rotate-kek: KEK %s is used by no record%s\n", kid,
			       dry ? " (dry run: kept)" : ": deleted");
			if (!dry && unlinkat(dirfd(d), de->d_name, 0) != 0)
				rc = ehr_error_set(EHR_ERR_IO, "unlink %s", de->d_name);
		} else {
			printf("rotate-kek: KEK %s is still used by %llu records: kept\n", kid,
			       (unsigned long long)n);
		}
	}
	closedir(d);
	return rc;
}

/* A new current KEK, then two re-wrap passes: gateways re-read kek/current
 * within a second, so the second catches what they stored meanwhile. */
static int rotate(const struct records_env *env, struct cloud_kek **kek, const char *dir)
{
	char newkid[CLOUD_KID_MAX];
	size_t done = 0, failed = 0;

	GUARD(cloud_kek_generate(dir, newkid));
	GUARD(cloud_kek_set_current(dir, newkid));
	cloud_kek_free(*kek);
	*kek = NULL;
	GUARD(cloud_kek_load(kek, dir));
	printf("rotate-kek: new KEK %s is current\n", newkid);
	GUARD(records_rewrap(env, *kek, newkid, &done, &failed, print_rewrap_failure, NULL));
	sleep(2);
	GUARD(records_rewrap(env, *kek, newkid, &done, &failed, print_rewrap_failure, NULL));
	printf("rotate-kek: re-wrapped %zu data keys under %s, %zu failed; no object was rewritten\n", done,
	       newkid, failed);
	return failed ? 1 : 0;
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

/* 0 to go on, else the exit status (usage printed). */
static int parse_args(int argc, char **argv, bool *dry, bool *do_retire)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "retire", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': *dry = true; break;
		case 'r': *do_retire = true; break;
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

int gw_cmd_admin_rotate_kek(int argc, char **argv)
{
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	struct cloud_kek *kek = NULL;
	struct records_env env = { 0 };
	const char *dir;
	bool dry = false, do_retire = false;
	uint64_t n = 0;
	int rc;

	rc = gw_config_from_args(&cfg, &argc, argv);
	if (rc != 0)
		return rc;
	if ((rc = parse_args(argc, argv, &dry, &do_retire)) != 0) {
		gw_config_free(cfg);
		return rc < 0 ? 0 : rc;
	}
	dir = gw_config_get(cfg, "store", "kek_dir");
	if (gw_app_open(&app, cfg, GW_APP_DB) < 0 || cloud_kek_load(&kek, dir) < 0)
		goto fail;
	env.db = gw_app_db(app);
	if (do_retire)
		rc = retire(&env, dir, cloud_kek_current(kek), dry);
	else if (dry && (rc = records_count(&env, NULL, &n)) == 0)
		printf("rotate-kek (dry run): would create a new KEK and re-wrap %llu data keys (current KEK "
		       "%s)\n",
		       (unsigned long long)n, cloud_kek_current(kek));
	else if (!dry)
		rc = rotate(&env, &kek, dir);
	if (rc < 0)
		goto fail;
	goto out;
fail:
	fprintf(stderr, "ehrgate admin rotate-kek: %s\n", ehr_error_detail());
	rc = 1;
out:
	cloud_kek_free(kek);
	gw_app_close(app);
	gw_config_free(cfg);
	return rc;
}
