/*
 * app.c - the process-wide application state (struct gw_app): the database
 * pool, the ledger, the auth context and the object store, opened once by
 * `serve` (or by any command that needs them) and shared by all handlers.
 *
 * Other areas plug their init/teardown into the marked places below; each
 * is a few lines and leaves its pointer NULL until its module lands.
 */
#include "common/db.h"
#include "gateway/gateway.h"
#include "gateway/gateway_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "atna/atna.h"
#include "auth/auth.h"
#include "cloud/cloud.h"
#include "ledger/ledger.h"
#include "publish/publish.h"
#include "records/records.h"

struct gw_app {
	const struct gw_config *cfg;
	struct ehr_db_pool *db;
	struct ledger *ledger;
	struct auth_ctx *auth;
	struct obj_store *store;
	struct gw_audit_queue *audit_queries;
	struct atna_feed *atna;
	struct publisher *publisher;
};

struct gw_app *gw_req_app(const struct gw_req *r)
{
	return gw_req_userdata(r);
}

struct ehr_db_pool *gw_app_db(struct gw_app *app)
{
	return app->db;
}

struct ledger *gw_app_ledger(struct gw_app *app)
{
	return app->ledger;
}

/* auth's event sink, wired to the ledger: the payload is borrowed, and
 * ledger_append returns once the entry is durable (or failed). */
int gw_ledger_event(void *ledger, const char *type, const char *actor, const char *subject,
                    const json_t *payload)
{
	struct ledger_entry_in in = { .type = type, .actor = actor, .subject = subject, .payload = payload };
	struct ledger_receipt rcpt;

	if (ledger == NULL)
		return 0;
	return ledger_append(ledger, &in, &rcpt);
}

struct auth_ctx *gw_app_auth(struct gw_app *app)
{
	return app->auth;
}

struct obj_store *gw_app_store(struct gw_app *app)
{
	return app->store;
}

struct gw_audit_queue *gw_app_audit_queue(struct gw_app *app)
{
	return app->audit_queries;
}

const struct gw_config *gw_app_config(struct gw_app *app)
{
	return app->cfg;
}

struct publisher *gw_app_publisher(struct gw_app *app)
{
	return app->publisher;
}

/* The publisher of [witness] (off, *out NULL, without witnesses). The
 * config was checked by gw_config_finish. */
static int publisher_open(struct publisher **out, const struct gw_config *cfg, struct ledger *l)
{
	struct publish_witness w[PUBLISH_MAX_WITNESSES];
	struct publish_config pc = {
		.ledger = l,
		.conninfo = gw_config_get(cfg, "database", "url"),
		.witnesses = w,
		.quorum = (unsigned)gw_config_get_uint(cfg, "witness", "quorum"),
		.ca_file = gw_config_get(cfg, "witness", "ca_file"),
		.cert_file = gw_config_get(cfg, "witness", "cert"),
		.key_file = gw_config_get(cfg, "witness", "key"),
		.interval_ms = (unsigned)gw_config_get_uint(cfg, "witness", "interval_ms"),
		.timeout_ms = (unsigned)gw_config_get_uint(cfg, "witness", "timeout_ms"),
	};

	GUARD(publish_witnesses_parse(w, PUBLISH_MAX_WITNESSES, &pc.n,
	                              gw_config_get(cfg, "witness", "witnesses")));
	if (pc.n == 0)
		return 0;
	return publish_start(out, &pc);
}

static int load_ledger_key(EVP_PKEY **out, const struct gw_config *cfg)
{
	struct ehr_buf path = EHR_BUF_INIT(4096);
	FILE *f = NULL;
	int err = 0;

	GUARD_GOTO(gw_config_state_path(cfg, "ledger.key", &path));
	f = fopen(ehr_buf_cstr(&path), "re");
	if (f == NULL) {
		err = ehr_error_set(EHR_ERR_CONFIG, "cannot open ledger key %s (run ehrgate init)",
		                    ehr_buf_cstr(&path));
		goto out;
	}
	*out = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	if (*out == NULL || EVP_PKEY_get_id(*out) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(*out);
		*out = NULL;
		err = ehr_error_ossl(EHR_ERR_CONFIG, "ledger.key is not an Ed25519 private key");
	}
out:
	if (f)
		fclose(f);
	ehr_buf_free(&path);
	return err;
}

/* Open the object store of [store], KEKs attached. */
static int store_open(struct obj_store **out, const struct gw_config *cfg)
{
	struct obj_store_config sc = { 0 };
	const char *backend = gw_config_get(cfg, "store", "backend");
	int err;

	sc.key_prefix = gw_config_get(cfg, "store", "key_prefix");
	if (strcmp(backend, "s3") == 0) {
		sc.backend = OBJ_BACKEND_S3;
		sc.s3_endpoint = gw_config_get(cfg, "store", "s3_endpoint");
		sc.s3_bucket = gw_config_get(cfg, "store", "s3_bucket");
		sc.s3_region = gw_config_get(cfg, "store", "s3_region");
		sc.s3_access_key = gw_config_get(cfg, "store", "s3_access_key");
		sc.s3_secret_key = gw_config_get(cfg, "store", "s3_secret_key");
		sc.s3_virtual_host = strcmp(gw_config_get(cfg, "store", "s3_addressing"), "virtual") == 0;
		sc.s3_ca_file = gw_config_get(cfg, "store", "s3_ca_file");
		sc.s3_part_size = (size_t)gw_config_get_uint(cfg, "store", "s3_part_size");
		sc.s3_single_put_max = gw_config_get_uint(cfg, "store", "s3_single_put_max");
		sc.s3_max_attempts = (unsigned)gw_config_get_uint(cfg, "store", "s3_max_attempts");
		sc.s3_timeout_ms = (unsigned)gw_config_get_uint(cfg, "store", "s3_timeout_ms");
	} else {
		sc.backend = OBJ_BACKEND_FS;
		sc.fs_path = gw_config_get(cfg, "store", "fs_path");
	}
	GUARD(obj_store_open(out, &sc));
	if ((err = obj_store_attach_keks(*out, gw_config_get(cfg, "store", "kek_dir"))) < 0) {
		obj_store_free(*out);
		*out = NULL;
	}
	return err;
}

/* The ATNA feed of [atna] (off, *out NULL, without repositories). */
static int atna_open(struct atna_feed **out, const struct gw_config *cfg)
{
	struct atna_config ac = {
		.conninfo = gw_config_get(cfg, "database", "url"),
		.repositories = gw_config_get(cfg, "atna", "repositories"),
		.ca_file = gw_config_get(cfg, "atna", "ca_file"),
		.cert_file = gw_config_get(cfg, "atna", "cert"),
		.key_file = gw_config_get(cfg, "atna", "key"),
		.hostname = gw_config_get(cfg, "atna", "hostname"),
		.source_id = gw_config_get(cfg, "atna", "source_id"),
		.origin = gw_config_get(cfg, "ledger", "origin"),
		.pen = (uint32_t)gw_config_get_uint(cfg, "atna", "pen"),
		.batch = (unsigned)gw_config_get_uint(cfg, "atna", "batch"),
		.poll_ms = (unsigned)gw_config_get_uint(cfg, "atna", "poll_ms"),
		.backoff_max_ms = (unsigned)gw_config_get_uint(cfg, "atna", "backoff_max_ms"),
		.timeout_ms = (unsigned)gw_config_get_uint(cfg, "atna", "timeout_ms"),
		.settle_ms = (unsigned)gw_config_get_uint(cfg, "atna", "settle_ms"),
	};

	return atna_feed_start(out, &ac);
}

int gw_app_open(struct gw_app **out, const struct gw_config *cfg, unsigned what)
{
	struct gw_app *app = calloc(1, sizeof(*app));
	int err = 0;

	if (app == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	app->cfg = cfg;
	if (what & (GW_APP_AUDIT_QUERIES | GW_APP_ATNA | GW_APP_PUBLISH))
		what |= GW_APP_LEDGER;
	if (what & (GW_APP_LEDGER | GW_APP_AUTH))
		what |= GW_APP_DB;

	if (what & GW_APP_STORE) { /* the record service's settings, checked once */
		struct records_retention ret;

		GUARD_GOTO(gw_retention_from_config(cfg, &ret));
	}
	if (what & GW_APP_DB) {
		GUARD_GOTO(ehr_db_pool_new(
		        &app->db, gw_config_get(cfg, "database", "url"),
		        (unsigned)gw_config_get_uint(cfg, "database", "pool_size"),
		        (unsigned)gw_config_get_uint(cfg, "database", "acquire_timeout_ms"),
		        (unsigned)gw_config_get_uint(cfg, "database", "statement_timeout_ms")));
	}

	if (what & GW_APP_LEDGER) {
		EVP_PKEY *key = NULL;
		struct ledger_config lc = {
			.db = app->db,
			.conninfo = gw_config_get(cfg, "database", "url"),
			.origin = gw_config_get(cfg, "ledger", "origin"),
			.batch_max = (unsigned)gw_config_get_uint(cfg, "ledger", "batch_max"),
			.batch_ms = (unsigned)gw_config_get_uint(cfg, "ledger", "batch_ms"),
			/* with witnesses, clients get the quorum-published checkpoint */
			.witnessed = *gw_config_get(cfg, "witness", "witnesses") != '\0',
		};
		GUARD_GOTO(load_ledger_key(&key, cfg));
		lc.signing_key = key;
		err = ledger_open(&app->ledger, &lc);
		EVP_PKEY_free(key); /* the ledger holds its own reference */
		if (err < 0)
			goto out;
	}

	if (what & GW_APP_AUTH) {
		/* ---- auth: app->auth = ... (auth_ctx_new from auth/auth.h) goes here */
		struct auth_config ac = {
			.state_dir = gw_config_get(cfg, "server", "state_dir"),
			.db = app->db,
			.events = { .append = app->ledger ? gw_ledger_event : NULL, .ud = app->ledger },
			.issuer = gw_config_get(cfg, "auth", "issuer"),
			.audience = gw_config_get(cfg, "auth", "audience"),
			.cert_days = (unsigned)gw_config_get_uint(cfg, "auth", "cert_days"),
			.token_ttl = (unsigned)gw_config_get_uint(cfg, "auth", "token_ttl_s"),
			.nonce_ttl = (unsigned)gw_config_get_uint(cfg, "auth", "nonce_ttl_s"),
			.enroll_ttl = (unsigned)gw_config_get_uint(cfg, "auth", "enroll_ttl_s"),
			.dpop_window = (unsigned)gw_config_get_uint(cfg, "auth", "dpop_window_s"),
			.clock_skew = (unsigned)gw_config_get_uint(cfg, "auth", "clock_skew_s"),
			.rate_register = (unsigned)gw_config_get_uint(cfg, "auth", "rate_register_per_min"),
			.rate_enroll = (unsigned)gw_config_get_uint(cfg, "auth", "rate_enroll_per_min"),
			.rate_challenge = (unsigned)gw_config_get_uint(cfg, "auth", "rate_challenge_per_min"),
			.rate_token = (unsigned)gw_config_get_uint(cfg, "auth", "rate_token_per_min"),
			.rate_burst = (unsigned)gw_config_get_uint(cfg, "auth", "rate_burst"),
			.failure_events_per_min =
			        (unsigned)gw_config_get_uint(cfg, "auth", "failure_events_per_min"),
		};
		GUARD_GOTO(auth_ctx_new(&app->auth, &ac));
	}

	if (what & GW_APP_STORE) {
		/* ---- storage: app->store = ... (obj_store from cloud/cloud.h) goes here */
		GUARD_GOTO(store_open(&app->store, cfg));
	}

	if (what & GW_APP_AUDIT_QUERIES)
		GUARD_GOTO(gw_audit_queue_new(&app->audit_queries, app->ledger, GW_AUDIT_QUEUE_MAX));
	if (what & GW_APP_ATNA)
		GUARD_GOTO(atna_open(&app->atna, cfg));
	if (what & GW_APP_PUBLISH)
		GUARD_GOTO(publisher_open(&app->publisher, cfg, app->ledger));

	*out = app;
	return 0;
out:
	gw_app_close(app);
	return err;
}

void gw_app_close(struct gw_app *app)
{
	if (app == NULL)
		return;
	publish_stop(app->publisher); /* before the ledger: it reads proofs */
	atna_feed_stop(app->atna);    /* before the ledger: it may be reading */
	/* the queued audit.query entries are committed before the ledger closes */
	gw_audit_queue_free(app->audit_queries);
	/* ---- storage: free app->store here */
	obj_store_free(app->store);
	/* ---- auth: free app->auth here */
	auth_ctx_free(app->auth);
	if (app->ledger)
		ledger_close(app->ledger);
	ehr_db_pool_free(app->db);
	free(app);
}
