/*
 * config.c - ehrwitness's INI file (docs/WITNESS.md):
 *
 *   [witness]  name, key, state_dir, listen, metrics_listen, workers, threads
 *   [tls]      cert, key
 *   [log "<origin>"]  vkey = <log vkey>   (repeatable: the log's trusted keys)
 */
#include "witness/witness_internal.h"

#include <ini.h>
#include <string.h>

struct cfg_ctx {
	struct witness_config *cfg;
	int err;
};

static int set_str(char *dst, size_t cap, const char *section, const char *key, const char *value)
{
	if (ehr_str_copy(dst, cap, value) < 0)
		return ehr_error_set(EHR_ERR_CONFIG, "[%s] %s: longer than %zu bytes", section, key, cap - 1);
	return 0;
}

static int set_uint(unsigned *dst, const char *section, const char *key, const char *value)
{
	uint64_t v;

	if (ehr_parse_u64(&v, value, 256) < 0 || v == 0)
		return ehr_error_set(EHR_ERR_CONFIG, "[%s] %s: expected 1..256", section, key);
	*dst = (unsigned)v;
	return 0;
}

/* [log "<origin>"]: find or add the origin's entry. */
static int log_section(struct witness_config *cfg, const char *section, struct witness_log **out)
{
	size_t n = strlen(section);
	char origin[256];

	if (n < 7 || section[3] != ' ' || section[4] != '"' || section[n - 1] != '"' ||
	    n - 6 >= sizeof(origin))
		return ehr_error_set(EHR_ERR_CONFIG, "bad section [%.64s]: expected [log \"<origin>\"]",
		                     section);
	memcpy(origin, section + 5, n - 6);
	origin[n - 6] = '\0';
	for (size_t i = 0; i < cfg->nlogs; i++)
		if (strcmp(cfg->logs[i].origin, origin) == 0) {
			*out = &cfg->logs[i];
			return 0;
		}
	if (cfg->nlogs == WITNESS_MAX_LOGS)
		return ehr_error_set(EHR_ERR_CONFIG, "more than %d [log] sections", WITNESS_MAX_LOGS);
	*out = &cfg->logs[cfg->nlogs++];
	memset(*out, 0, sizeof(**out));
	return ehr_str_copy((*out)->origin, sizeof((*out)->origin), origin);
}

static int log_key(struct witness_log *lg, const char *key, const char *value)
{
	size_t i = lg->nkeys;

	if (strcmp(key, "vkey") != 0)
		return ehr_error_set(EHR_ERR_CONFIG, "[log \"%s\"]: unknown key %.64s", lg->origin, key);
	if (i == WITNESS_MAX_LOG_KEYS)
		return ehr_error_set(EHR_ERR_CONFIG, "[log \"%s\"]: more than %d vkeys", lg->origin,
		                     WITNESS_MAX_LOG_KEYS);
	if (ledger_vkey_parse(value, strlen(value), lg->key_names[i], sizeof(lg->key_names[i]),
	                      lg->keys[i].pub) < 0)
		return ehr_error_wrap(EHR_ERR_CONFIG, "[log \"%s\"] vkey", lg->origin);
	lg->keys[i].name = lg->key_names[i];
	lg->nkeys++;
	return 0;
}

static int cfg_set(struct witness_config *cfg, const char *section, const char *key, const char *value)
{
	if (strncmp(section, "log ", 4) == 0) {
		struct witness_log *lg;

		GUARD(log_section(cfg, section, &lg));
		return log_key(lg, key, value);
	}
	if (strcmp(section, "witness") == 0) {
		if (strcmp(key, "name") == 0)
			return set_str(cfg->name, sizeof(cfg->name), section, key, value);
		if (strcmp(key, "key") == 0)
			return set_str(cfg->key, sizeof(cfg->key), section, key, value);
		if (strcmp(key, "state_dir") == 0)
			return set_str(cfg->state_dir, sizeof(cfg->state_dir), section, key, value);
		if (strcmp(key, "listen") == 0)
			return set_str(cfg->listen, sizeof(cfg->listen), section, key, value);
		if (strcmp(key, "metrics_listen") == 0)
			return set_str(cfg->metrics_listen, sizeof(cfg->metrics_listen), section, key, value);
		if (strcmp(key, "workers") == 0)
			return set_uint(&cfg->workers, section, key, value);
		if (strcmp(key, "threads") == 0)
			return set_uint(&cfg->threads, section, key, value);
	} else if (strcmp(section, "tls") == 0) {
		if (strcmp(key, "cert") == 0)
			return set_str(cfg->tls_cert, sizeof(cfg->tls_cert), section, key, value);
		if (strcmp(key, "key") == 0)
			return set_str(cfg->tls_key, sizeof(cfg->tls_key), section, key, value);
	}
	return ehr_error_set(EHR_ERR_CONFIG, "unknown config key [%.64s] %.64s", section, key);
}

static int cfg_ini_handler(void *user, const char *section, const char *key, const char *value)
{
	struct cfg_ctx *ctx = user;

	if (ctx->err < 0)
		return 1; /* keep the first error */
	ctx->err = cfg_set(ctx->cfg, section, key, value);
	return ctx->err < 0 ? 0 : 1;
}

/* "section.key=value"; the section is what precedes the first '.'. */
static int apply_set(struct witness_config *cfg, const char *s)
{
	const char *dot = strchr(s, '.'), *eq = strchr(s, '=');
	char section[64], key[64];

	if (dot == NULL || eq == NULL || eq < dot || (size_t)(dot - s) >= sizeof(section) ||
	    (size_t)(eq - dot - 1) >= sizeof(key))
		return ehr_error_set(EHR_ERR_CONFIG, "--set %.64s: expected section.key=value", s);
	memcpy(section, s, (size_t)(dot - s));
	section[dot - s] = '\0';
	memcpy(key, dot + 1, (size_t)(eq - dot - 1));
	key[eq - dot - 1] = '\0';
	return cfg_set(cfg, section, key, eq + 1);
}

static int cfg_check(const struct witness_config *cfg)
{
	if (cfg->name[0] == '\0' || cfg->key[0] == '\0' || cfg->state_dir[0] == '\0' ||
	    cfg->listen[0] == '\0')
		return ehr_error_set(EHR_ERR_CONFIG,
		                     "[witness] name, key, state_dir and listen are required");
	if (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0')
		return ehr_error_set(EHR_ERR_CONFIG, "[tls] cert and key are required");
	if (cfg->nlogs == 0)
		return ehr_error_set(EHR_ERR_CONFIG, "no [log \"<origin>\"] section: nothing to witness");
	for (size_t i = 0; i < cfg->nlogs; i++)
		if (cfg->logs[i].nkeys == 0)
			return ehr_error_set(EHR_ERR_CONFIG, "[log \"%s\"] has no vkey", cfg->logs[i].origin);
	return 0;
}

int witness_config_load(struct witness_config *cfg, const char *path, const char *const *sets)
{
	struct ehr_buf text = EHR_BUF_INIT(1u << 20);
	struct cfg_ctx ctx = { .cfg = cfg };
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	cfg->workers = 2;
	cfg->threads = 4;
	if (ehr_file_read(&text, path, text.max) < 0) {
		ehr_buf_free(&text);
		return ehr_error_set_detail(EHR_ERR_CONFIG, "cannot read the config file", "%s: %s", path,
		                            ehr_error_detail());
	}
	rc = ini_parse_string(ehr_buf_cstr(&text), cfg_ini_handler, &ctx);
	ehr_buf_free(&text);
	if (ctx.err < 0)
		return ctx.err;
	if (rc != 0)
		return ehr_error_set(EHR_ERR_CONFIG, "config file line %d: syntax error", rc);
	for (size_t i = 0; sets != NULL && sets[i] != NULL; i++)
		GUARD(apply_set(cfg, sets[i]));
	return cfg_check(cfg);
}
