/*
 * witness.c - C2SP tlog-witness add-checkpoint: the checks in the order the
 * spec gives them, then one atomic check-and-persist per origin, then the
 * cosignature (C2SP tlog-cosignature, cosignature/v1 from ledger/cosig.c).
 */
#include "witness/witness_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "common/metrics.h"

enum outcome {
	OUT_COSIGNED = 0,
	OUT_MALFORMED,
	OUT_UNKNOWN_ORIGIN,
	OUT_BAD_SIGNATURE,
	OUT_CONFLICT,
	OUT_INCONSISTENT,
	OUT_TOO_LARGE,
	OUT_INTERNAL,
};

static struct ehr_metric m_requests = EHR_METRIC_LABELLED(
        EHR_METRIC_COUNTER, "ehrwitness_add_checkpoint_total",
        "add-checkpoint requests by outcome (cosigned or the refusal).", "outcome", "cosigned", "malformed",
        "unknown_origin", "bad_signature", "conflict", "inconsistent", "too_large", "internal");

int witness__metrics_register(void)
{
	int err = ehr_metric_register(&m_requests);

	return err == EHR_ERR_EXISTS ? 0 : err;
}

void witness__metrics_unregister(void)
{
	ehr_metric_unregister(&m_requests);
}

static const int outcome_status[] = { 200, 400, 404, 403, 409, 422, 413, 500 };

/* What a request was about, for its log line (origin and sizes: no PHI). */
struct req_facts {
	const char *origin; /* NULL until parsed */
	uint64_t old, size;
	bool have_sizes;
};

/* Refuse with a plain-text reason (the current error's public message when
 * fmt is NULL), log it and count it. */
static void refuse(struct witness_result *res, enum outcome oc, const struct req_facts *f, const char *reason)
{
	json_t *fields = json_pack("{s:i, s:s}", "status", outcome_status[oc], "reason", reason);

	res->status = outcome_status[oc];
	res->content_type = "text/plain; charset=utf-8";
	ehr_buf_reset(&res->body);
	if (ehr_buf_append_str(&res->body, reason) < 0 || ehr_buf_append_u8(&res->body, '\n') < 0)
		ehr_buf_reset(&res->body);
	if (fields != NULL && f->origin != NULL)
		json_object_set_new(fields, "origin", json_string(f->origin));
	if (fields != NULL && f->have_sizes) {
		json_object_set_new(fields, "old", json_integer((json_int_t)f->old));
		json_object_set_new(fields, "size", json_integer((json_int_t)f->size));
	}
	ehr_log_json(oc == OUT_INTERNAL ? EHR_LOG_ERROR : EHR_LOG_WARN, "witness.refused", fields);
	ehr_metric_inc(&m_requests, oc);
}

/* 409: the body is the stored size and a newline (text/x.tlog.size). */
static void conflict(struct witness_result *res, const struct req_facts *f, uint64_t stored)
{
	char reason[96];

	if (ehr_fmt(reason, sizeof(reason), "old size %llu is not the latest cosigned size %llu",
	            (unsigned long long)f->old, (unsigned long long)stored) < 0)
		reason[0] = '\0';
	refuse(res, OUT_CONFLICT, f, reason);
	res->content_type = "text/x.tlog.size";
	ehr_buf_reset(&res->body);
	if (ehr_buf_printf(&res->body, "%llu\n", (unsigned long long)stored) < 0)
		ehr_buf_reset(&res->body);
}

/* The consistency checks against the stored checkpoint (lock held):
 * 0, or the refusal's outcome with its reason set. */
static int check_consistency(const struct witness_origin *o, const struct ledger_add_checkpoint *req,
                             uint64_t size, const uint8_t root[LEDGER_HASH_LEN])
{
	if (req->old_size == size) {
		if (req->proof_len != 0)
			return ehr_error_set(EHR_ERR_TAMPER, "a proof between equal sizes must be empty");
		if (size > 0 && CRYPTO_memcmp(root, o->root, LEDGER_HASH_LEN) != 0)
			return ehr_error_set(EHR_ERR_TAMPER,
			                     "same size as the cosigned checkpoint, another root hash");
		return 0;
	}
	if (req->old_size == 0)
		return 0; /* the empty tree is consistent with every tree */
	if (merkle_verify_consistency(req->old_size, size, o->root, root,
	                              (const uint8_t(*)[LEDGER_HASH_LEN])req->proof, req->proof_len) < 0)
		return ehr_error_set(EHR_ERR_TAMPER,
		                     "the consistency proof from size %llu to %llu does not verify",
		                     (unsigned long long)req->old_size, (unsigned long long)size);
	return 0;
}

/* Cosign, persist, reply (lock held; every check has passed). */
static void cosign(struct witness *w, struct witness_origin *o, const struct ledger_add_checkpoint *req,
                   size_t text_len, uint64_t size, const uint8_t root[LEDGER_HASH_LEN],
                   struct witness_result *res, const struct req_facts *f)
{
	struct ehr_buf stored = EHR_BUF_INIT(LEDGER_NOTE_MAX + 1024);
	uint64_t now = (uint64_t)time(NULL);

	ehr_buf_reset(&res->body);
	if (ledger_cosig_sign(&res->body, w->key, w->cfg.name, now > 0 ? now : 1, req->note, text_len) < 0 ||
	    ehr_buf_append(&stored, req->note, req->note_len) < 0 ||
	    ehr_buf_append(&stored, res->body.data, res->body.len) < 0) {
		refuse(res, OUT_INTERNAL, f, "cannot cosign");
		goto out;
	}
	if (witness__state_persist(o, size, root, &stored) < 0) {
		ehr_logf(EHR_LOG_ERROR, "witness.persist", "%s", ehr_error_detail());
		refuse(res, OUT_INTERNAL, f, "cannot store the checkpoint");
		goto out;
	}
	res->status = 200;
	res->content_type = "text/plain; charset=utf-8";
	ehr_metric_inc(&m_requests, OUT_COSIGNED);
	ehr_log_json(EHR_LOG_INFO, "witness.cosigned",
	             json_pack("{s:s, s:I, s:I}", "origin", o->log->origin, "old", (json_int_t)req->old_size,
	                       "size", (json_int_t)size));
out:
	ehr_buf_free(&stored);
}

/* The stateless checks (tlog-witness add-checkpoint, in the spec's order).
 * 0 with *op set, or after refusing. */
static int precheck(struct witness *w, const struct ledger_add_checkpoint *req, struct witness_origin **op,
                    char *origin, size_t origin_cap, uint64_t *size, uint8_t root[LEDGER_HASH_LEN],
                    size_t *text_len, struct witness_result *res, struct req_facts *f)
{
	static const uint8_t empty_root[LEDGER_HASH_LEN] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
		0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
		0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
	};
	int rc;

	if (req->note_len > LEDGER_NOTE_MAX - 256 ||
	    ledger_checkpoint_parse(req->note, req->note_len, origin, origin_cap, size, root, text_len) < 0) {
		refuse(res, OUT_MALFORMED, f,
		       req->note_len > LEDGER_NOTE_MAX - 256 ? "checkpoint too large" : ehr_error_msg());
		return -1;
	}
	f->origin = origin;
	f->size = *size;
	f->have_sizes = true;
	if ((*op = witness__origin_find(w, origin)) == NULL) {
		refuse(res, OUT_UNKNOWN_ORIGIN, f, "unknown log origin");
		return -1;
	}
	rc = ledger_note_verify_any(req->note, req->note_len, (*op)->log->keys, (*op)->log->nkeys, text_len);
	if (rc < 0) {
		refuse(res, rc == EHR_ERR_PARSE ? OUT_MALFORMED : OUT_BAD_SIGNATURE, f,
		       rc == EHR_ERR_PARSE ? ehr_error_msg()
		                           : "no valid signature by a trusted key of the log");
		return -1;
	}
	if (req->old_size > *size) {
		refuse(res, OUT_MALFORMED, f, "old size is larger than the checkpoint size");
		return -1;
	}
	if (*size == 0 && CRYPTO_memcmp(root, empty_root, LEDGER_HASH_LEN) != 0) {
		refuse(res, OUT_INCONSISTENT, f,
		       "a checkpoint of size 0 must have the empty tree's root hash");
		return -1;
	}
	if (req->old_size == 0 && req->proof_len != 0) {
		refuse(res, OUT_INCONSISTENT, f, "a proof from size 0 must be empty");
		return -1;
	}
	return 0;
}

void witness_add_checkpoint(struct witness *w, const char *body, size_t len, struct witness_result *res)
{
	struct ledger_add_checkpoint *req = malloc(sizeof(*req));
	struct req_facts f = { 0 };
	struct witness_origin *o;
	uint8_t root[LEDGER_HASH_LEN];
	char origin[256];
	uint64_t size;
	size_t text_len;
	int rc;

	memset(res, 0, sizeof(*res));
	ehr_buf_init(&res->body, 64 * 1024);
	if (req == NULL) {
		refuse(res, OUT_INTERNAL, &f, "out of memory");
		return;
	}
	if ((rc = ledger_add_checkpoint_parse(req, body, len)) < 0) {
		refuse(res, rc == EHR_ERR_TOO_LARGE ? OUT_TOO_LARGE : OUT_MALFORMED, &f, ehr_error_msg());
		goto out;
	}
	f.old = req->old_size;
	if (precheck(w, req, &o, origin, sizeof(origin), &size, root, &text_len, res, &f) < 0)
		goto out;
	pthread_mutex_lock(&o->lock);
	ehr_failpoint_wait("witness.locked"); /* tests: hold one request here, race another */
	if (req->old_size != o->size)
		conflict(res, &f, o->size);
	else if (check_consistency(o, req, size, root) < 0)
		refuse(res, OUT_INCONSISTENT, &f, ehr_error_msg());
	else
		cosign(w, o, req, text_len, size, root, res, &f);
	pthread_mutex_unlock(&o->lock);
out:
	free(req);
}

int witness_checkpoint(struct witness *w, const char *origin_hash_hex, struct ehr_buf *note)
{
	for (size_t i = 0; i < w->norigins; i++) {
		struct witness_origin *o = &w->origins[i];
		int err = 0;

		if (strcmp(o->hash_hex, origin_hash_hex) != 0)
			continue;
		pthread_mutex_lock(&o->lock);
		if (o->note.len == 0)
			err = ehr_error_set(EHR_ERR_NOT_FOUND, "no checkpoint cosigned for this log yet");
		else
			err = ehr_buf_append(note, o->note.data, o->note.len);
		pthread_mutex_unlock(&o->lock);
		return err;
	}
	return ehr_error_set(EHR_ERR_NOT_FOUND, "unknown log");
}

int witness_vkey(struct witness *w, struct ehr_buf *out)
{
	return ledger_cosig_vkey_format(out, w->cfg.name, w->pub);
}

static int load_key(EVP_PKEY **out, const char *path)
{
	struct ehr_buf f = EHR_BUF_INIT(64 * 1024);
	BIO *bio = NULL;
	int err = 0;

	GUARD(ehr_file_read(&f, path, f.max));
	bio = BIO_new_mem_buf(f.data, (int)f.len);
	ENSURE_GOTO(bio != NULL, EHR_ERR_NOMEM);
	*out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (*out == NULL || EVP_PKEY_get_id(*out) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(*out);
		*out = NULL;
		err = ehr_error_set_detail(EHR_ERR_CONFIG, "[witness] key: not an Ed25519 private key (PEM)",
		                           "%s", path);
	}
out:
	BIO_free(bio);
	ehr_buf_free_secure(&f);
	return err;
}

int witness_config_vkey(const struct witness_config *cfg, struct ehr_buf *out)
{
	EVP_PKEY *k = NULL;
	uint8_t pub[32];
	int err;

	if ((err = load_key(&k, cfg->key)) == 0 && (err = ledger_key_raw_public(pub, k)) == 0)
		err = ledger_cosig_vkey_format(out, cfg->name, pub);
	EVP_PKEY_free(k);
	return err;
}

int witness_open(struct witness **out, const struct witness_config *cfg)
{
	struct witness *w = calloc(1, sizeof(*w));
	int err;

	ENSURE(w != NULL, EHR_ERR_NOMEM);
	w->cfg = *cfg;
	w->lock_fd = -1;
	/* the log keys' names point into the config: re-point them at our copy */
	for (size_t i = 0; i < w->cfg.nlogs; i++)
		for (size_t k = 0; k < w->cfg.logs[i].nkeys; k++)
			w->cfg.logs[i].keys[k].name = w->cfg.logs[i].key_names[k];
	if ((err = load_key(&w->key, cfg->key)) < 0 || (err = ledger_key_raw_public(w->pub, w->key)) < 0 ||
	    (err = witness__state_open(w)) < 0 || (err = witness__metrics_register()) < 0) {
		witness_close(w);
		return err;
	}
	*out = w;
	return 0;
}

void witness_close(struct witness *w)
{
	if (w == NULL)
		return;
	witness__state_close(w);
	EVP_PKEY_free(w->key);
	free(w);
}
