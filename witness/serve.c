/*
 * serve.c - ehrwitness's HTTPS front on the gateway's engine (gateway/http):
 *
 *   POST /add-checkpoint          C2SP tlog-witness add-checkpoint
 *   GET  /{origin_hash}/checkpoint  the latest cosigned checkpoint (monitors)
 *   GET  /healthz                 200 "ok"
 *
 * Errors are plain text (one line), as the witness protocol's clients
 * expect, also for the engine's own refusals (413, 404, 405).
 */
#include "witness/witness_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/buffer.h>
#include <openssl/pem.h>

#include "gateway/http/http.h"

static void route_add_checkpoint(struct gw_req *r)
{
	struct witness *w = gw_req_userdata(r);
	struct witness_result res;
	const uint8_t *body;
	size_t len;

	body = gw_req_body(r, &len);
	witness_add_checkpoint(w, (const char *)body, len, &res);
	gw_reply_bytes(r, res.status, res.content_type, res.body.data, res.body.len);
	ehr_buf_free(&res.body);
}

static void route_checkpoint(struct gw_req *r)
{
	struct witness *w = gw_req_userdata(r);
	struct ehr_buf note = EHR_BUF_INIT(LEDGER_NOTE_MAX + 1024);

	if (witness_checkpoint(w, gw_req_param(r, "origin_hash"), &note) < 0)
		gw_reply_error(r, 404, "not_found", "%s", ehr_error_msg());
	else
		gw_reply_bytes(r, 200, "text/plain; charset=utf-8", note.data, note.len);
	ehr_buf_free(&note);
}

static void route_healthz(struct gw_req *r)
{
	gw_reply_bytes(r, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

static const struct gw_route routes[] = {
	{ "POST", "/add-checkpoint", "witness.add_checkpoint", 0, GW_BLOCKING, route_add_checkpoint, NULL },
	{ "GET", "/{origin_hash}/checkpoint", "witness.checkpoint", 0, GW_BLOCKING, route_checkpoint, NULL },
	{ "GET", "/healthz", "healthz", 0, 0, route_healthz, NULL },
};

/* origin_hash: 64 lower-case hex digits. */
static int param_check(const char *name, const char *value, bool path)
{
	if (!path || strcmp(name, "origin_hash") != 0)
		return path ? ehr_error_set(EHR_ERR_INVAL, "unknown parameter") : 0;
	if (value == NULL)
		return 0;
	if (strlen(value) != 64)
		return ehr_error_set(EHR_ERR_INVAL, "origin hash must be 64 lower-case hex digits");
	for (size_t i = 0; i < 64; i++)
		if (!((value[i] >= '0' && value[i] <= '9') || (value[i] >= 'a' && value[i] <= 'f')))
			return ehr_error_set(EHR_ERR_INVAL, "origin hash must be 64 lower-case hex digits");
	return 0;
}

static char *error_text(const struct gw_req *r, int status, const char *code, const char *message,
                        const char **content_type)
{
	struct ehr_buf b = EHR_BUF_INIT(1024);

	(void)r;
	(void)status;
	(void)code;
	*content_type = "text/plain; charset=utf-8";
	if (ehr_buf_printf(&b, "%.500s\n", message) < 0) {
		ehr_buf_free(&b);
		return NULL;
	}
	return (char *)ehr_buf_detach(&b, NULL);
}

int witness_serve(const struct witness_config *cfg)
{
	static const struct gw_route *const tables[] = { routes };
	static const size_t lens[] = { EHR_ARRAY_LEN(routes) };
	struct ehr_buf vkey = EHR_BUF_INIT(512);
	struct witness *w = NULL;
	struct gw_http_options o = {
		.listen = cfg->listen,
		.tls_cert = cfg->tls_cert,
		.tls_key = cfg->tls_key,
		.workers = cfg->workers,
		.blocking_threads = cfg->threads,
		.blocking_queue = 1024,
		.max_headers = 64,
		.max_header_bytes = 16 * 1024,
		.max_body_bytes = LEDGER_ADD_CHECKPOINT_MAX,
		.max_connections = 1024,
		.idle_timeout_s = 60,
		.read_timeout_s = 30,
		.drain_timeout_s = 10,
		.metrics_listen = cfg->metrics_listen,
		.tables = tables,
		.table_lens = lens,
		.ntables = 1,
		.param_check = param_check,
		.error_render = error_text,
	};
	int err;

	GUARD(witness_open(&w, cfg));
	o.app = w;
	if ((err = witness_vkey(w, &vkey)) == 0) {
		printf("ehrwitness vkey %s\n", ehr_buf_cstr(&vkey));
		fflush(stdout);
		err = gw_server_run(&o);
	}
	ehr_buf_free(&vkey);
	witness_close(w);
	return err;
}

int witness_init_key(const char *path, const char *name, struct ehr_buf *vkey)
{
	EVP_PKEY *k = NULL;
	BIO *bio = NULL;
	BUF_MEM *mem;
	uint8_t pub[32];
	int err = 0;

	ENSURE(name != NULL && *name != '\0', EHR_ERR_INVAL);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	bio = BIO_new(BIO_s_secmem());
	if (k == NULL || bio == NULL) {
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "cannot make an Ed25519 key");
		goto out;
	}
	GUARD_OSSL_GOTO(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL));
	BIO_get_mem_ptr(bio, &mem);
	GUARD_GOTO(ledger_key_raw_public(pub, k));
	GUARD_GOTO(ledger_cosig_vkey_format(vkey, name, pub)); /* checks the name first */
	GUARD_GOTO(ehr_file_write_atomic(path, mem->data, mem->length, 0600, true));
out:
	BIO_free(bio);
	EVP_PKEY_free(k);
	return err;
}
