/*
 * cmd_pseudonyms.c - `ehrgate admin migrate-pseudonyms`: the link key, and
 * links for patients whose pseudonyms were derived before migration 0055
 * (docs/ERASURE.md §11).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"

static int open_app(struct gw_app **app, struct gw_config **cfg, int *argc, char **argv, unsigned what,
                    const char *cmd)
{
	int rc = gw_config_from_args(cfg, argc, argv);

	if (rc != 0)
		return rc;
	if (gw_app_open(app, *cfg, what) < 0) {
		fprintf(stderr, "ehrgate admin %s: %s\n", cmd, ehr_error_detail());
		gw_config_free(*cfg);
		*cfg = NULL;
		return 1;
	}
	return 0;
}

/* Read a 32-byte key file of the state directory; 1 when absent. */
static int read_key(const struct gw_config *cfg, const char *name, uint8_t out[32])
{
	struct ehr_buf path = EHR_BUF_INIT(4096), raw = EHR_BUF_INIT(64);
	int err;

	GUARD_GOTO(gw_config_state_path(cfg, name, &path));
	if (access(ehr_buf_cstr(&path), F_OK) != 0 && errno == ENOENT) {
		err = 1;
		goto out;
	}
	GUARD_GOTO(ehr_file_read(&raw, ehr_buf_cstr(&path), 64));
	ENSURE_GOTO(raw.len == 32, EHR_ERR_CONFIG);
	memcpy(out, raw.data, 32);
out:
	ehr_buf_free(&path);
	ehr_buf_free_secure(&raw);
	return err;
}

int gw_cmd_link_key_create(struct ehr_db_pool *db, const char *path)
{
	uint8_t key[32];
	uint64_t links = 0;
	int err;

	if (access(path, F_OK) == 0 || errno != ENOENT)
		return 1;
	GUARD(auth_links_count(db, &links));
	if (links > 0)
		return ehr_error_set(EHR_ERR_CONFIG,
		                     "%s is missing but the database holds %llu external-id links made "
		                     "under another instance's link.key: copy that file here (a new key "
		                     "would never find them)",
		                     path, (unsigned long long)links);
	GUARD(ehr_random(key, sizeof(key)));
	err = ehr_file_write_atomic(path, key, sizeof(key), 0600, true);
	OPENSSL_cleanse(key, sizeof(key));
	GUARD(err);
	fprintf(stderr, "created %s: copy it to every instance's state directory and back it up\n", path);
	return 0;
}

/* link.key, created (exclusive, 0600) when absent and safe. */
static int ensure_link_key(struct gw_app *app, const struct gw_config *cfg, uint8_t key[32])
{
	struct ehr_buf path = EHR_BUF_INIT(4096);
	int err;

	GUARD_GOTO(gw_config_state_path(cfg, AUTH_LINK_KEY_FILE, &path));
	GUARD_GOTO(gw_cmd_link_key_create(gw_app_db(app), ehr_buf_cstr(&path)));
	err = read_key(cfg, AUTH_LINK_KEY_FILE, key);
	if (err == 1)
		err = ehr_error_set(EHR_ERR_CONFIG, "%s vanished", AUTH_LINK_KEY_FILE);
out:
	ehr_buf_free(&path);
	return err;
}

/* One external id per line: link the legacy patient it derives, if any. */
static int link_file(struct gw_app *app, const uint8_t pk[32], const uint8_t lk[32], const char *file,
                     uint64_t *linked)
{
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	char line[300];
	int err = 0, one;

	if (f == NULL)
		return ehr_error_set(EHR_ERR_IO, "cannot open the external-id file");
	while (err == 0 && fgets(line, sizeof(line), f) != NULL) {
		size_t n = strcspn(line, "\r\n");
		line[n] = '\0';
		if (n == 0)
			continue;
		err = auth_legacy_link(gw_app_db(app), pk, lk, line, &one);
		*linked += (uint64_t)one;
	}
	OPENSSL_cleanse(line, sizeof(line));
	if (f != stdin)
		fclose(f);
	return err;
}

/* ehrgate admin migrate-pseudonyms [--external-ids FILE] */
int gw_cmd_admin_migrate_pseudonyms(int argc, char **argv)
{
	struct gw_config *cfg = NULL;
	struct gw_app *app = NULL;
	struct auth_legacy_counts n;
	uint8_t pk[32], lk[32];
	uint64_t linked = 0;
	const char *file = NULL;
	int rc, havepk;

	if ((rc = open_app(&app, &cfg, &argc, argv, GW_APP_DB, "migrate-pseudonyms")) != 0)
		return rc;
	if (argc == 3 && strcmp(argv[1], "--external-ids") == 0)
		file = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: ehrgate admin migrate-pseudonyms [--external-ids FILE|-]\n");
		rc = 2;
		goto out;
	}
	rc = 1;
	if (ensure_link_key(app, cfg, lk) < 0 || (havepk = read_key(cfg, "pseudonym.key", pk)) < 0)
		goto fail;
	if (file != NULL && havepk == 1) {
		fprintf(stderr, "ehrgate admin migrate-pseudonyms: no pseudonym.key: nothing to link\n");
		goto out;
	}
	if (file != NULL && link_file(app, pk, lk, file, &linked) < 0)
		goto fail;
	if (auth_legacy_counts(gw_app_db(app), &n) < 0)
		goto fail;
	printf("{\"legacy_patients\":%llu,\"linked\":%llu,\"erased\":%llu,\"unlinked\":%llu,"
	       "\"linked_now\":%llu,\"pseudonym_key\":%s}\n",
	       (unsigned long long)n.total, (unsigned long long)n.linked, (unsigned long long)n.erased,
	       (unsigned long long)(n.total - n.linked - n.erased), (unsigned long long)linked,
	       havepk == 1 ? "false" : "true");
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "ehrgate admin migrate-pseudonyms: %s\n", ehr_error_detail());
out:
	OPENSSL_cleanse(pk, sizeof(pk));
	OPENSSL_cleanse(lk, sizeof(lk));
	gw_app_close(app);
	gw_config_free(cfg);
	return rc;
}
