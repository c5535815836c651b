/*
 * config.c - the daemon's configuration: one table of keys, four sources.
 *
 * Precedence, lowest first: built-in defaults, the INI file (libinih),
 * EHRGATE_<SECTION>_<KEY> environment variables, --set section.key=value.
 * Every value is validated when it is set, so an error names the key and
 * its source. Values are never echoed in errors: some are secrets.
 *
 * To add a key, add one row to gw_config_keys[] and document it in
 * docs/OPERATIONS.md.
 */
#include "gateway/gateway.h"
#include "gateway/gateway_internal.h"

#include "atna/atna.h"
#include "publish/publish.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>

enum gw_cfg_type {
	CFG_STR,        /* any text up to CFG_MAX_VALUE bytes, may be empty */
	CFG_PATH,       /* non-empty text without control characters */
	CFG_UINT,       /* decimal in [min, max] */
	CFG_AUTO,       /* "auto" or decimal in [min, max] */
	CFG_BOOL,       /* true/false, yes/no, on/off, 1/0 */
	CFG_ENUM,       /* one of choices, "a|b|c" */
	CFG_LISTEN,     /* host:port, [v6]:port */
	CFG_LISTEN_OPT, /* host:port, [v6]:port, or "" (off) */
};

/* Values may be secrets: wipe them before they are freed or replaced. */
static void cleanse_str(char *s)
{
	OPENSSL_cleanse(s, strlen(s));
}

struct gw_config_key {
	const char *section;
	const char *key;
	enum gw_cfg_type type;
	const char *def; /* "" = no default; "@name" = <state_dir>/name */
	uint64_t min, max;
	const char *choices;
	bool secret;
};

#define CFG_MAX_VALUE 4096

#define U(s, k, d, lo, hi)                             \
	{                                              \
		s, k, CFG_UINT, d, lo, hi, NULL, false \
	}
#define P(s, k, d)                                   \
	{                                            \
		s, k, CFG_PATH, d, 0, 0, NULL, false \
	}
#define S(s, k, d)                                  \
	{                                           \
		s, k, CFG_STR, d, 0, 0, NULL, false \
	}
#define SECRET(s, k, d)                            \
	{                                          \
		s, k, CFG_STR, d, 0, 0, NULL, true \
	}
#define E(s, k, d, c)                             \
	{                                         \
		s, k, CFG_ENUM, d, 0, 0, c, false \
	}
#define B(s, k, d)                                   \
	{                                            \
		s, k, CFG_BOOL, d, 0, 0, NULL, false \
	}

static const struct gw_config_key gw_config_keys[] = {
	/* [server] */
	{ "server", "listen", CFG_LISTEN, "127.0.0.1:8443", 0, 0, NULL, false },
	{ "server", "workers", CFG_AUTO, "auto", 1, 256, NULL, false },
	U("server", "max_connections", "10000", 1, 1000000),
	U("server", "max_header_bytes", "16384", 1024, 1048576),
	U("server", "max_headers", "64", 4, 1024),
	U("server", "max_body_bytes", "1048576", 1024, 1073741824ULL),
	U("server", "idle_timeout_s", "60", 1, 86400),
	U("server", "read_timeout_s", "15", 1, 3600),
	U("server", "blocking_threads", "32", 1, 1024),
	U("server", "blocking_queue", "4096", 1, 1000000),
	U("server", "drain_timeout_s", "30", 0, 3600),
	P("server", "state_dir", "/var/lib/ehrgate"),
	S("server", "public_url", ""),
	B("server", "test_routes", "false"),
	/* [tls] */
	P("tls", "cert", "@server.pem"),
	P("tls", "key", "@server.key"),
	P("tls", "client_ca", "@regca.pem"),
	/* [database] */
	SECRET("database", "url", "dbname=ehrgate user=ehrgate_app"),
	SECRET("database", "admin_url", ""),
	U("database", "pool_size", "32", 1, 1024),
	U("database", "acquire_timeout_ms", "2000", 1, 600000),
	U("database", "statement_timeout_ms", "10000", 1, 3600000),
	/* [ledger] */
	S("ledger", "origin", "ehrgate.local/ledger"),
	U("ledger", "batch_max", "512", 1, 65536),
	U("ledger", "batch_ms", "2", 0, 1000),
	B("ledger", "public_entries", "false"),          /* tlog-tiles entry bundles without a cert */
	U("ledger", "receipt_wait_max_s", "30", 0, 300), /* cap of Prefer: wait=N */
	/* [store] */
	E("store", "backend", "fs", "fs|s3"),
	P("store", "fs_path", "@objects"),
	S("store", "s3_endpoint", ""),
	S("store", "s3_bucket", ""),
	S("store", "s3_region", "us-east-1"),
	S("store", "s3_access_key", ""),
	SECRET("store", "s3_secret_key", ""),
	E("store", "s3_addressing", "path", "path|virtual"),
	S("store", "s3_ca_file", ""),
	P("store", "kek_dir", "@kek"),
	S("store", "key_prefix", ""),
	U("store", "s3_part_size", "8388608", 5242880, 536870912),
	U("store", "s3_single_put_max", "5368709120", 0, 5368709120ULL),
	U("store", "max_record_bytes", "1073741824", 1, 1099511627776ULL),
	U("store", "s3_max_attempts", "4", 1, 20),
	U("store", "s3_timeout_ms", "300000", 1000, 86400000),
	/* [retention] - minimum retention before erasure (docs/ERASURE.md §6) */
	S("retention", "default_period", "0"),
	S("retention", "categories", ""),
	/* [auth] - rows added by the auth area go here */
	S("auth", "issuer", "urn:ehrgate"),
	S("auth", "audience", "urn:ehrgate:api"),
	U("auth", "cert_days", "90", 1, 825),
	U("auth", "token_ttl_s", "900", 1, 900),
	U("auth", "nonce_ttl_s", "60", 1, 60),
	U("auth", "enroll_ttl_s", "86400", 1, 2592000),
	U("auth", "dpop_window_s", "60", 1, 300),
	U("auth", "clock_skew_s", "5", 1, 300),
	U("auth", "rate_register_per_min", "10", 1, 1000000),
	U("auth", "rate_enroll_per_min", "10", 1, 1000000),
	U("auth", "rate_challenge_per_min", "60", 1, 1000000),
	U("auth", "rate_token_per_min", "60", 1, 1000000),
	U("auth", "rate_burst", "10", 1, 1000000),
	U("auth", "failure_events_per_min", "10", 1, 1000000),
	/* [atna] the ATNA feed (docs/AUDIT.md); no repositories = off */
	S("atna", "repositories", ""),
	S("atna", "ca_file", ""),
	S("atna", "cert", ""),
	S("atna", "key", ""),
	S("atna", "hostname", ""),
	S("atna", "source_id", ""),
	U("atna", "pen", "32473", 1, 4294967295ULL),
	U("atna", "batch", "256", 1, 10000),
	U("atna", "poll_ms", "1000", 10, 60000),
	U("atna", "backoff_max_ms", "30000", 250, 3600000),
	U("atna", "timeout_ms", "10000", 100, 600000),
	U("atna", "settle_ms", "500", 0, 60000),
	/* [witness] quorum publication (docs/LEDGER.md §13); no witnesses = off */
	S("witness", "witnesses", ""),
	U("witness", "quorum", "0", 0, 16),
	S("witness", "ca_file", ""),
	S("witness", "cert", ""),
	S("witness", "key", ""),
	U("witness", "interval_ms", "250", 10, 60000),
	U("witness", "timeout_ms", "2000", 50, 60000),
	/* [log] */
	E("log", "level", "info", "debug|info|warn|error"),
	B("log", "access", "true"),
	/* [metrics]: Prometheus text on its own plain-HTTP listener, loopback
	 * by default; "" = no metrics listener (docs/OPERATIONS.md §7) */
	{ "metrics", "listen", CFG_LISTEN_OPT, "127.0.0.1:9464", 0, 0, NULL, false },
};

#undef U
#undef P
#undef S
#undef SECRET
#undef E
#undef B

#define NKEYS EHR_ARRAY_LEN(gw_config_keys)

struct gw_config {
	char *values[NKEYS];
	char *origins[NKEYS]; /* where each value came from, for errors */
	bool from_file[NKEYS];
	bool finished;
};

static int key_index(const char *section, const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(gw_config_keys[i].section, section) == 0 &&
		    strcmp(gw_config_keys[i].key, key) == 0)
			return (int)i;
	return -1;
}

static bool section_known(const char *section, size_t len)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strlen(gw_config_keys[i].section) == len &&
		    strncmp(gw_config_keys[i].section, section, len) == 0)
			return true;
	return false;
}

static int store(struct gw_config *cfg, size_t i, const char *value, const char *origin)
{
	char *v = strdup(value), *o = strdup(origin);

	if (v == NULL || o == NULL) {
		free(v);
		free(o);
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	}
	if (cfg->values[i]) {
		if (gw_config_keys[i].secret)
			cleanse_str(cfg->values[i]);
		free(cfg->values[i]);
	}
	free(cfg->origins[i]);
	cfg->values[i] = v;
	cfg->origins[i] = o;
	return 0;
}

static bool parse_bool(const char *v, bool *out)
{
	static const char *yes[] = { "true", "yes", "on", "1" };
	static const char *no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < EHR_ARRAY_LEN(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

static bool choice_ok(const char *choices, const char *v)
{
	size_t n = strlen(v);
	const char *p = choices;

	while (*p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, v, n) == 0)
			return true;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return false;
}

static int validate(size_t i, const char *v)
{
	const struct gw_config_key *k = &gw_config_keys[i];
	uint64_t n;
	bool b;
	char host[256];
	uint16_t port;

	if (strlen(v) > CFG_MAX_VALUE)
		return ehr_error_set(EHR_ERR_CONFIG, "longer than %d bytes", CFG_MAX_VALUE);
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return ehr_error_set(EHR_ERR_CONFIG, "contains a control character");
	switch (k->type) {
	case CFG_STR: return 0;
	case CFG_PATH:
		if (*v == '\0')
			return ehr_error_set(EHR_ERR_CONFIG, "must not be empty");
		return 0;
	case CFG_AUTO:
		if (strcmp(v, "auto") == 0)
			return 0;
		/* fall through */
	case CFG_UINT:
		if (ehr_parse_u64(&n, v, UINT64_MAX) < 0 || n < k->min || n > k->max)
			return ehr_error_set(EHR_ERR_CONFIG, "must be %san integer in %llu..%llu",
			                     k->type == CFG_AUTO ? "\"auto\" or " : "",
			                     (unsigned long long)k->min, (unsigned long long)k->max);
		return 0;
	case CFG_BOOL:
		if (!parse_bool(v, &b))
			return ehr_error_set(EHR_ERR_CONFIG, "must be true or false");
		return 0;
	case CFG_ENUM:
		if (!choice_ok(k->choices, v))
			return ehr_error_set(EHR_ERR_CONFIG, "must be one of %s", k->choices);
		return 0;
	case CFG_LISTEN_OPT:
		if (*v == '\0')
			return 0;
		/* fall through */
	case CFG_LISTEN: return gw_parse_listen(v, host, sizeof(host), &port);
	default: return ehr_error_set(EHR_ERR_INTERNAL, "unknown key type");
	}
}

int gw_config_set(struct gw_config *cfg, const char *section, const char *key, const char *value,
                  const char *origin)
{
	int i = key_index(section, key);
	int err;

	if (i < 0)
		return ehr_error_set(EHR_ERR_CONFIG, "unknown config key [%.64s] %.64s (%s)", section, key,
		                     origin);
	if ((err = validate((size_t)i, value)) < 0)
		return ehr_error_wrap(EHR_ERR_CONFIG, "config key [%s] %s (%s)", section, key, origin);
	return store(cfg, (size_t)i, value, origin);
}

int gw_config_new(struct gw_config **out)
{
	struct gw_config *cfg = calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < NKEYS; i++) {
		if (store(cfg, i, gw_config_keys[i].def, "default") < 0) {
			gw_config_free(cfg);
			return EHR_ERR_NOMEM;
		}
	}
	*out = cfg;
	return 0;
}

void gw_config_free(struct gw_config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		if (cfg->values[i] && gw_config_keys[i].secret)
			cleanse_str(cfg->values[i]);
		free(cfg->values[i]);
		free(cfg->origins[i]);
	}
	free(cfg);
}

struct ini_ctx {
	struct gw_config *cfg;
	const char *origin;
	const char *text; /* the whole input */
	size_t pos;
	int line; /* line being parsed, 1-based */
	int err;
	int err_line;
	struct ehr_error_saved saved; /* the first error */
};

static void ini_fail(struct ini_ctx *ctx)
{
	ctx->err_line = ctx->line;
	ehr_error_save(&ctx->saved);
}

/* libinih reader: one line per call, counted, so every error names its line;
 * a line too long for libinih is an error rather than silently split. */
static char *cfg_ini_reader(char *str, int num, void *stream)
{
	struct ini_ctx *ctx = stream;
	const char *p = ctx->text + ctx->pos, *nl;
	size_t len;

	if (*p == '\0')
		return NULL;
	nl = strchr(p, '\n');
	len = nl ? (size_t)(nl - p) + 1 : strlen(p);
	ctx->pos += len;
	ctx->line++;
	if (len > (size_t)num - 1) {
		if (ctx->err == 0) {
			ctx->err =
			        ehr_error_set(EHR_ERR_CONFIG, "config file %s line %d: longer than %d bytes",
			                      ctx->origin, ctx->line, num - 2);
			ini_fail(ctx);
		}
		memcpy(str, "\n", 2);
		return str;
	}
	memcpy(str, p, len);
	str[len] = '\0';
	return str;
}

static int cfg_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *ctx = user;
	char origin[320];
	int i;

	if (ctx->err < 0)
		return 1; /* keep the first error */
	if (ehr_fmt(origin, sizeof(origin), "file %s line %d", ctx->origin, ctx->line) < 0) {
		ctx->err = EHR_ERR_CONFIG;
		goto fail;
	}
	if (*section == '\0') {
		ctx->err = ehr_error_set(EHR_ERR_CONFIG, "config key %.64s outside any [section] (%s)", name,
		                         origin);
		goto fail;
	}
	i = key_index(section, name);
	if (i >= 0 && ctx->cfg->from_file[i]) {
		ctx->err = ehr_error_set(EHR_ERR_CONFIG, "config key [%s] %s is set twice (%s)", section,
		                         name, origin);
		goto fail;
	}
	if ((ctx->err = gw_config_set(ctx->cfg, section, name, value, origin)) < 0)
		goto fail;
	ctx->cfg->from_file[i] = true;
	return 1;
fail:
	ini_fail(ctx);
	return 0;
}

static int ini_run(struct ini_ctx *ctx)
{
	int rc = ini_parse_stream(cfg_ini_reader, ctx, cfg_ini_handler, ctx);

	/* rc: the first line libinih found wrong (syntax or a handler refusal). */
	if (rc > 0 && (ctx->err == 0 || rc < ctx->err_line))
		return ehr_error_set(EHR_ERR_CONFIG, "config file %s line %d: syntax error", ctx->origin, rc);
	if (ctx->err < 0) {
		ehr_error_restore(&ctx->saved);
		return ctx->err;
	}
	if (rc == -2)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory reading %s", ctx->origin);
	return 0;
}

int gw_config_load_file(struct gw_config *cfg, const char *path)
{
	struct ehr_buf text = EHR_BUF_INIT(1u << 20);
	struct ini_ctx ctx = { .cfg = cfg, .origin = path };
	int err;

	if (ehr_file_read(&text, path, text.max) < 0) {
		ehr_buf_free(&text);
		return ehr_error_wrap(EHR_ERR_CONFIG, "cannot read config file %s", path);
	}
	ctx.text = ehr_buf_cstr(&text);
	err = ini_run(&ctx);
	ehr_buf_free_secure(&text); /* it may hold secrets */
	return err;
}

int gw_config_load_string(struct gw_config *cfg, const char *text, const char *origin)
{
	struct ini_ctx ctx = { .cfg = cfg, .origin = origin, .text = text };

	return ini_run(&ctx);
}

int gw_config_load_env(struct gw_config *cfg, char *const *envp)
{
	static const char prefix[] = "EHRGATE_";

	for (; envp && *envp; envp++) {
		const char *e = *envp, *rest, *eq, *us;
		char section[64], key[64], origin[200];
		size_t slen, klen;

		if (strncmp(e, prefix, sizeof(prefix) - 1) != 0)
			continue;
		rest = e + sizeof(prefix) - 1;
		eq = strchr(rest, '=');
		if (eq == NULL)
			continue;
		/* The section is the longest known section name that prefixes rest. */
		slen = 0;
		for (us = rest; us < eq; us++) {
			if (*us != '_')
				continue;
			size_t n = (size_t)(us - rest);
			if (n == 0 || n >= sizeof(section))
				continue;
			for (size_t j = 0; j < n; j++)
				section[j] = (char)tolower((unsigned char)rest[j]);
			section[n] = '\0';
			if (section_known(section, n))
				slen = n;
		}
		if (slen == 0)
			continue; /* EHRGATE_TEST_PG and friends are not config */
		for (size_t j = 0; j < slen; j++)
			section[j] = (char)tolower((unsigned char)rest[j]);
		section[slen] = '\0';
		klen = (size_t)(eq - rest) - slen - 1;
		GUARD(ehr_fmt(origin, sizeof(origin), "environment %.*s", (int)(eq - e), e));
		if (klen == 0 || klen >= sizeof(key))
			return ehr_error_set(EHR_ERR_CONFIG, "unknown config key in %s", origin);
		for (size_t j = 0; j < klen; j++)
			key[j] = (char)tolower((unsigned char)rest[slen + 1 + j]);
		key[klen] = '\0';
		GUARD(gw_config_set(cfg, section, key, eq + 1, origin));
	}
	return 0;
}

int gw_config_set_arg(struct gw_config *cfg, const char *a)
{
	const char *dot = strchr(a, '.'), *eq = strchr(a, '=');
	char section[64], key[64], origin[200];
	size_t slen, klen;

	if (dot == NULL || eq == NULL || dot > eq)
		return ehr_error_set(EHR_ERR_CONFIG, "--set wants section.key=value");
	slen = (size_t)(dot - a);
	klen = (size_t)(eq - dot - 1);
	if (slen == 0 || klen == 0 || slen >= sizeof(section) || klen >= sizeof(key))
		return ehr_error_set(EHR_ERR_CONFIG, "--set wants section.key=value");
	memcpy(section, a, slen);
	section[slen] = '\0';
	memcpy(key, dot + 1, klen);
	key[klen] = '\0';
	GUARD(ehr_fmt(origin, sizeof(origin), "--set %s.%s", section, key));
	return gw_config_set(cfg, section, key, eq + 1, origin);
}

static const char *value_of(const struct gw_config *cfg, const char *section, const char *key, int *idx)
{
	int i = key_index(section, key);

	if (idx)
		*idx = i;
	return i < 0 ? NULL : cfg->values[i];
}

/* [atna]: the repositories parse, and a feed that is on has its TLS files. */
static int atna_check(const struct gw_config *cfg)
{
	struct atna_repo repos[ATNA_MAX_REPOS];
	size_t n;

	if (atna_repos_parse(repos, ATNA_MAX_REPOS, &n, gw_config_get(cfg, "atna", "repositories")) < 0)
		return ehr_error_wrap(EHR_ERR_CONFIG, "config key [atna] repositories");
	if (n > 0 &&
	    (*gw_config_get(cfg, "atna", "ca_file") == '\0' || *gw_config_get(cfg, "atna", "cert") == '\0' ||
	     *gw_config_get(cfg, "atna", "key") == '\0'))
		return ehr_error_set(EHR_ERR_CONFIG, "config keys [atna] ca_file, cert and key are required "
		                                     "when [atna] repositories is set");
	return 0;
}

/* [witness]: the witnesses parse, the quorum is 1..n with witnesses (and
 * 0 without), and a client certificate comes with its key. */
static int witness_check(const struct gw_config *cfg)
{
	struct publish_witness w[PUBLISH_MAX_WITNESSES];
	uint64_t k = gw_config_get_uint(cfg, "witness", "quorum");
	size_t n;

	if (publish_witnesses_parse(w, PUBLISH_MAX_WITNESSES, &n,
	                            gw_config_get(cfg, "witness", "witnesses")) < 0)
		return ehr_error_wrap(EHR_ERR_CONFIG, "config key [witness] witnesses");
	if (n == 0 && k != 0)
		return ehr_error_set(EHR_ERR_CONFIG,
		                     "config key [witness] quorum is set but [witness] witnesses "
		                     "is empty");
	if (n > 0 && (k < 1 || k > n))
		return ehr_error_set(EHR_ERR_CONFIG,
		                     "config key [witness] quorum must be 1..%zu (the number of witnesses) "
		                     "when [witness] witnesses is set",
		                     n);
	if ((*gw_config_get(cfg, "witness", "cert") == '\0') !=
	    (*gw_config_get(cfg, "witness", "key") == '\0'))
		return ehr_error_set(EHR_ERR_CONFIG, "config keys [witness] cert and key go together");
	return 0;
}

int gw_config_finish(struct gw_config *cfg)
{
	const char *state = value_of(cfg, "server", "state_dir", NULL);
	struct ehr_buf b = EHR_BUF_INIT(CFG_MAX_VALUE * 2);
	int err = 0;

	if (cfg->finished)
		return 0;
	for (size_t i = 0; i < NKEYS; i++) {
		const char *v = cfg->values[i];
		if (v[0] == '@' && strcmp(cfg->origins[i], "default") == 0) {
			ehr_buf_reset(&b);
			GUARD_GOTO(ehr_buf_printf(&b, "%s/%s", state, v + 1));
			GUARD_GOTO(store(cfg, i, ehr_buf_cstr(&b), "default"));
		}
		if (gw_config_keys[i].type == CFG_AUTO && strcmp(v, "auto") == 0) {
			long n = sysconf(_SC_NPROCESSORS_ONLN);
			char num[32];
			if (n < 1)
				n = 1;
			if ((uint64_t)n > gw_config_keys[i].max)
				n = (long)gw_config_keys[i].max;
			GUARD_GOTO(ehr_fmt(num, sizeof(num), "%ld", n));
			GUARD_GOTO(store(cfg, i, num, cfg->origins[i]));
		}
	}
	{
		int ai;
		const char *admin = value_of(cfg, "database", "admin_url", &ai);
		if (admin && *admin == '\0')
			GUARD_GOTO(store(cfg, (size_t)ai, value_of(cfg, "database", "url", NULL), "default"));
	}
	if (strcmp(gw_config_get(cfg, "store", "backend"), "s3") == 0) {
		if (*gw_config_get(cfg, "store", "s3_endpoint") == '\0' ||
		    *gw_config_get(cfg, "store", "s3_bucket") == '\0') {
			err = ehr_error_set(EHR_ERR_CONFIG, "config key [store] s3_endpoint and s3_bucket "
			                                    "are required with backend = s3");
			goto out;
		}
	}
	GUARD_GOTO(atna_check(cfg));
	GUARD_GOTO(witness_check(cfg));
	cfg->finished = true;
out:
	ehr_buf_free(&b);
	return err;
}

int gw_config_build(struct gw_config **out, const char *path, char *const *sets, size_t nsets)
{
	extern char **environ;
	struct gw_config *cfg = NULL;
	int err;

	GUARD(gw_config_new(&cfg));
	if (path)
		GUARD_GOTO(gw_config_load_file(cfg, path));
	GUARD_GOTO(gw_config_load_env(cfg, environ));
	for (size_t i = 0; i < nsets; i++)
		GUARD_GOTO(gw_config_set_arg(cfg, sets[i]));
	GUARD_GOTO(gw_config_finish(cfg));
	*out = cfg;
	return 0;
out:
	gw_config_free(cfg);
	return err;
}

const char *gw_config_get(const struct gw_config *cfg, const char *section, const char *key)
{
	return value_of(cfg, section, key, NULL);
}

uint64_t gw_config_get_uint(const struct gw_config *cfg, const char *section, const char *key)
{
	const char *v = gw_config_get(cfg, section, key);
	uint64_t n;

	if (v == NULL || ehr_parse_u64(&n, v, UINT64_MAX) < 0)
		return 0;
	return n;
}

bool gw_config_get_bool(const struct gw_config *cfg, const char *section, const char *key)
{
	const char *v = gw_config_get(cfg, section, key);
	bool b;

	return v != NULL && parse_bool(v, &b) && b;
}

int gw_config_state_path(const struct gw_config *cfg, const char *name, struct ehr_buf *out)
{
	return ehr_buf_printf(out, "%s/%s", gw_config_get(cfg, "server", "state_dir"), name);
}

bool gw_config_key_at(size_t i, const char **section, const char **key, const char **def)
{
	if (i >= NKEYS)
		return false;
	*section = gw_config_keys[i].section;
	*key = gw_config_keys[i].key;
	*def = gw_config_keys[i].def;
	return true;
}

int gw_config_dump(const struct gw_config *cfg, struct ehr_buf *out)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct gw_config_key *k = &gw_config_keys[i];
		const char *v = cfg->values[i];
		GUARD(ehr_buf_printf(out, "%s.%s = %s\n", k->section, k->key,
		                     k->secret ? (*v ? "(set)" : "") : v));
	}
	return 0;
}

int gw_config_from_args(struct gw_config **out, int *argc, char **argv)
{
	const char *path = NULL;
	char **sets = NULL;
	size_t nsets = 0;
	int w = 1, rc = 0;

	sets = calloc((size_t)*argc + 1, sizeof(*sets));
	if (sets == NULL) {
		fprintf(stderr, "ehrgate: out of memory\n");
		return 1;
	}
	for (int r = 1; r < *argc; r++) {
		const char *a = argv[r];
		if (strcmp(a, "--") == 0) {
			while (r < *argc)
				argv[w++] = argv[r++];
			break;
		}
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 || strcmp(a, "--set") == 0) {
			if (r + 1 >= *argc) {
				fprintf(stderr, "ehrgate %s: %s needs an argument\n", argv[0], a);
				rc = 2;
				goto out;
			}
			if (strcmp(a, "--set") == 0)
				sets[nsets++] = argv[++r];
			else
				path = argv[++r];
		} else if (strncmp(a, "--config=", 9) == 0) {
			path = a + 9;
		} else if (strncmp(a, "--set=", 6) == 0) {
			sets[nsets++] = (char *)a + 6;
		} else {
			argv[w++] = argv[r];
		}
	}
	argv[w] = NULL;
	*argc = w;
	if (path == NULL) {
		const char *env = getenv("EHRGATE_CONFIG");
		if (env && *env)
			path = env;
	}
	if (gw_config_build(out, path, sets, nsets) < 0) {
		fprintf(stderr, "ehrgate %s: %s\n", argv[0], ehr_error_detail());
		rc = 1;
	}
out:
	free(sets);
	return rc;
}
