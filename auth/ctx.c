/*
 * ctx.c - the gateway's auth context: keys loaded once from the state
 * directory, rate limiters, and events (to the application's sink) with
 * bounded failure logging.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/auth.h"
#include "auth/auth_internal.h"

void auth_config_defaults(struct auth_config *cfg)
{
	if (cfg->cert_days == 0)
		cfg->cert_days = 90;
	if (cfg->token_ttl == 0 || cfg->token_ttl > AUTH_TOKEN_MAX_TTL)
		cfg->token_ttl = AUTH_TOKEN_MAX_TTL;
	if (cfg->nonce_ttl == 0 || cfg->nonce_ttl > AUTH_NONCE_MAX_TTL)
		cfg->nonce_ttl = AUTH_NONCE_MAX_TTL;
	if (cfg->enroll_ttl == 0)
		cfg->enroll_ttl = 86400;
	if (cfg->dpop_window == 0)
		cfg->dpop_window = 60;
	if (cfg->clock_skew == 0)
		cfg->clock_skew = 5;
	if (cfg->rate_register == 0)
		cfg->rate_register = 10;
	if (cfg->rate_enroll == 0)
		cfg->rate_enroll = 10;
	if (cfg->rate_challenge == 0)
		cfg->rate_challenge = 60;
	if (cfg->rate_token == 0)
		cfg->rate_token = 60;
	if (cfg->rate_burst == 0)
		cfg->rate_burst = 10;
	if (cfg->failure_events_per_min == 0)
		cfg->failure_events_per_min = 10;
}

/* ------------------------------------------------------------ rate limits */

int auth__rate_init(struct auth_rate *r, unsigned per_min, unsigned burst)
{
	memset(r, 0, sizeof(*r));
	r->slots = calloc(AUTH_RATE_SLOTS, sizeof(*r->slots));
	ENSURE(r->slots != NULL, EHR_ERR_NOMEM);
	pthread_mutex_init(&r->lock, NULL);
	r->per_ms = (double)per_min / 60000.0;
	r->burst = burst > 0 ? (double)burst : 1.0;
	return 0;
}

void auth__rate_free(struct auth_rate *r)
{
	if (r->slots == NULL)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->slots);
	r->slots = NULL;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

bool auth__rate_take(struct auth_rate *r, const char *peer, int64_t now_ms, bool count_suppressed,
                     uint64_t *suppressed)
{
	struct auth_rate_slot *s = NULL, *victim, *empty = NULL, *oldest = NULL;
	uint64_t h;
	bool ok;

	if (peer == NULL || *peer == '\0')
		peer = "-";
	h = fnv1a(peer);
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < AUTH_RATE_PROBE; i++) {
		struct auth_rate_slot *c = &r->slots[(h + i) % AUTH_RATE_SLOTS];
		if (c->peer[0] != '\0' && strncmp(c->peer, peer, sizeof(c->peer) - 1) == 0) {
			s = c;
			break;
		}
		if (c->peer[0] == '\0') {
			if (empty == NULL)
				empty = c;
		} else if (oldest == NULL || c->last_ms < oldest->last_ms) {
			oldest = c;
		}
	}
	victim = empty != NULL ? empty : oldest;
	if (s == NULL) {
		s = victim;
		memset(s, 0, sizeof(*s));
		if (ehr_str_copy(s->peer, sizeof(s->peer), peer) < 0)
			memcpy(s->peer, "-", 2); /* longer than any IP: the shared bucket */
		s->tokens = r->burst;
		s->last_ms = now_ms;
	}
	if (now_ms > s->last_ms) {
		s->tokens += (double)(now_ms - s->last_ms) * r->per_ms;
		if (s->tokens > r->burst)
			s->tokens = r->burst;
		s->last_ms = now_ms;
	}
	ok = s->tokens >= 1.0;
	if (ok) {
		s->tokens -= 1.0;
		if (suppressed != NULL) {
			*suppressed = s->suppressed;
			s->suppressed = 0;
		}
	} else if (count_suppressed) {
		s->suppressed++;
	}
	pthread_mutex_unlock(&r->lock);
	return ok;
}

int auth_rate_check(struct auth_ctx *ctx, enum auth_rate_kind kind, const char *peer)
{
	ENSURE(kind >= 0 && kind < AUTH_RATE__N, EHR_ERR_INVAL);
	if (!auth__rate_take(&ctx->rate[kind], peer, ehr_monotonic_ms(), false, NULL))
		return ehr_error_set(EHR_ERR_RATE, "too many requests from this address");
	return 0;
}

/* ---------------------------------------------------------------- context */

static int dup_str(char **dst, const char *src, const char *dflt)
{
	*dst = strdup(src != NULL ? src : dflt);
	ENSURE(*dst != NULL, EHR_ERR_NOMEM);
	return 0;
}

static int state_path(struct ehr_buf *b, const char *dir, const char *file)
{
	ehr_buf_reset(b);
	return ehr_buf_printf(b, "%s/%s", dir, file);
}

/* A 32-byte raw key file into out (the buffer is wiped by the caller). */
static int load_key32(uint8_t out[32], struct ehr_buf *tmp, const char *path, const char *name)
{
	ehr_buf_reset(tmp);
	GUARD(ehr_file_read(tmp, path, 256));
	if (tmp->len != 32)
		return ehr_error_set(EHR_ERR_CONFIG, "%s must hold exactly 32 bytes", name);
	memcpy(out, tmp->data, 32);
	return 0;
}

int auth_ctx_new(struct auth_ctx **out, const struct auth_config *cfg)
{
	struct auth_ctx *c;
	struct ehr_buf path = EHR_BUF_INIT(4096), pk = EHR_BUF_INIT(256);
	EVP_PKEY *pub = NULL;
	unsigned per_min[AUTH_RATE__N];
	int err = 0;

	*out = NULL;
	ENSURE(cfg != NULL && cfg->state_dir != NULL, EHR_ERR_CONFIG);
	c = calloc(1, sizeof(*c));
	ENSURE(c != NULL, EHR_ERR_NOMEM);
	c->cfg = *cfg;
	auth_config_defaults(&c->cfg);
	ehr_buf_init(&c->regca_pem, 256 * 1024);
	ehr_buf_init(&c->gateway_ca_pem, 256 * 1024);
	GUARD_GOTO(dup_str(&c->state_dir, cfg->state_dir, ""));
	GUARD_GOTO(dup_str(&c->issuer, cfg->issuer, "urn:ehrgate"));
	GUARD_GOTO(dup_str(&c->audience, cfg->audience, "urn:ehrgate:api"));
	c->cfg.state_dir = c->state_dir;
	c->cfg.issuer = c->issuer;
	c->cfg.audience = c->audience;

	GUARD_GOTO(state_path(&path, c->state_dir, "regca.pem"));
	GUARD_GOTO(ehr_file_read(&c->regca_pem, ehr_buf_cstr(&path), 256 * 1024));
	GUARD_GOTO(auth_cert_load_pem(&c->regca, c->regca_pem.data, c->regca_pem.len));
	GUARD_GOTO(state_path(&path, c->state_dir, "regca.key"));
	GUARD_GOTO(auth_key_load_private(&c->regca_key, ehr_buf_cstr(&path)));
	ENSURE_GOTO(X509_check_private_key(c->regca, c->regca_key) == 1, EHR_ERR_CONFIG);
	GUARD_GOTO(state_path(&path, c->state_dir, "ca.pem"));
	GUARD_GOTO(ehr_file_read(&c->gateway_ca_pem, ehr_buf_cstr(&path), 256 * 1024));
	GUARD_GOTO(state_path(&path, c->state_dir, "token.key"));
	GUARD_GOTO(auth_key_load_private(&c->token_key, ehr_buf_cstr(&path)));
	if (!ehr_key_is_p256(c->token_key)) {
		err = ehr_error_set(EHR_ERR_CONFIG, "token.key must be an EC P-256 key");
		goto out;
	}
	GUARD_GOTO(ehr_jwk_thumbprint(c->kid, c->token_key));
	/* link.key is required; pseudonym.key only while derived (legacy)
	 * pseudonyms may still be looked up (docs/ERASURE.md §11). */
	GUARD_GOTO(state_path(&path, c->state_dir, AUTH_LINK_KEY_FILE));
	if (access(ehr_buf_cstr(&path), F_OK) != 0 && errno == ENOENT) {
		err = ehr_error_set(EHR_ERR_CONFIG,
		                    "%s missing in the state directory (an install older than schema "
		                    "0055): run `ehrgate init -c CONFIG`, which adds it alone, then "
		                    "`ehrgate migrate` and `ehrgate admin migrate-pseudonyms` "
		                    "(docs/ERASURE.md §11)",
		                    AUTH_LINK_KEY_FILE);
		goto out;
	}
	GUARD_GOTO(load_key32(c->link_key, &pk, ehr_buf_cstr(&path), AUTH_LINK_KEY_FILE));
	GUARD_GOTO(state_path(&path, c->state_dir, "pseudonym.key"));
	if (access(ehr_buf_cstr(&path), F_OK) == 0 || errno != ENOENT) {
		GUARD_GOTO(load_key32(c->pseudonym_key, &pk, ehr_buf_cstr(&path), "pseudonym.key"));
		c->has_pseudonym_key = true;
	}

	per_min[AUTH_RATE_REGISTER] = c->cfg.rate_register;
	per_min[AUTH_RATE_ENROLL] = c->cfg.rate_enroll;
	per_min[AUTH_RATE_CHALLENGE] = c->cfg.rate_challenge;
	per_min[AUTH_RATE_TOKEN] = c->cfg.rate_token;
	for (int i = 0; i < AUTH_RATE__N; i++)
		GUARD_GOTO(auth__rate_init(&c->rate[i], per_min[i], c->cfg.rate_burst));
	GUARD_GOTO(auth__rate_init(&c->fail_events, c->cfg.failure_events_per_min,
	                           c->cfg.failure_events_per_min));
	GUARD_GOTO(auth__rate_init(&c->success_events, 1, 1));
	c->success_events.per_ms = 1.0 / AUTH_SUCCESS_EVENT_MS;
	*out = c;
	c = NULL;
out:
	if (err < 0 && ehr_error_msg()[0] == '\0')
		ehr_error_set(err, "loading auth keys from the state directory");
	EVP_PKEY_free(pub);
	ehr_buf_free(&path);
	ehr_buf_free_secure(&pk);
	auth_ctx_free(c);
	return err;
}

void auth_ctx_free(struct auth_ctx *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < AUTH_RATE__N; i++)
		auth__rate_free(&c->rate[i]);
	auth__rate_free(&c->fail_events);
	auth__rate_free(&c->success_events);
	X509_free(c->regca);
	EVP_PKEY_free(c->regca_key);
	EVP_PKEY_free(c->token_key);
	OPENSSL_cleanse(c->pseudonym_key, sizeof(c->pseudonym_key));
	OPENSSL_cleanse(c->link_key, sizeof(c->link_key));
	ehr_buf_free(&c->regca_pem);
	ehr_buf_free(&c->gateway_ca_pem);
	free(c->state_dir);
	free(c->issuer);
	free(c->audience);
	free(c);
}

const struct auth_config *auth_ctx_config(const struct auth_ctx *ctx)
{
	return &ctx->cfg;
}

/* ------------------------------------------------------------ DB helpers */

int auth__hash_secret(uint8_t out[32], const char *secret)
{
	ENSURE(EVP_Digest(secret, strlen(secret), out, NULL, EVP_sha256(), NULL) == 1, EHR_ERR_CRYPTO);
	return 0;
}

/* ------------------------------------------------------------------ events */

int auth__sink_emit(const struct auth_event_sink *sink, const char *type, const char *actor,
                    const char *subject, json_t *payload)
{
	int err;

	if (sink == NULL || sink->append == NULL) {
		json_decref(payload);
		return 0;
	}
	if (payload == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "ledger payload");
	err = sink->append(sink->ud, type, actor, subject != NULL ? subject : "", payload);
	json_decref(payload);
	return err;
}

int auth__emit(struct auth_ctx *ctx, const char *type, const char *actor, const char *subject,
               json_t *payload)
{
	return auth__sink_emit(&ctx->cfg.events, type, actor, subject, payload);
}

int auth_event(struct auth_ctx *ctx, const char *type, const char *actor, const char *subject, bool success,
               const char *reason, const char *peer)
{
	uint64_t suppressed = 0;
	json_t *pl;
	int err;

	if (!success && !auth__rate_take(&ctx->fail_events, peer, ehr_monotonic_ms(), true, &suppressed))
		return 0; /* counted; the next appended failure carries the count */
	pl = json_pack("{s:s,s:s}", "outcome", success ? "success" : "failure", "reason",
	               reason ? reason : "");
	if (pl != NULL && suppressed > 0)
		json_object_set_new(pl, "suppressed_before", json_integer((json_int_t)suppressed));
	err = auth__emit(ctx, type, actor != NULL && *actor ? actor : "anonymous", subject, pl);
	if (err < 0)
		ehr_logf(EHR_LOG_WARN, "auth.ledger_event_failed", "%s: %s", type, ehr_err_name(err));
	return err;
}

int auth_event_session(struct auth_ctx *ctx, const char *type, const struct auth_principal *p)
{
	const char *key = p->serial[0] ? p->serial : p->jkt;
	json_t *pl;

	if (!auth__rate_take(&ctx->success_events, key, ehr_monotonic_ms(), false, NULL))
		return 0;
	pl = json_pack("{s:s,s:s,s:s}", "outcome", "success", "role", p->role,
	               p->serial[0] ? "serial" : "jkt", key);
	return auth__emit(ctx, type, p->id, p->id, pl);
}
