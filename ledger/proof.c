/*
 * ledger_proof.c - the JSON form of inclusion and consistency proofs
 * (docs/LEDGER.md §7), built by the server and parsed by clients.
 */
#include "ledger/ledger_internal.h"

#include <string.h>

#define PROOF_JSON_MAX 16384

json_t *ledger_proof_json(uint64_t tree_size, uint64_t index_or_size1, bool consistency,
                          const uint8_t (*hashes)[LEDGER_HASH_LEN], size_t n)
{
	json_t *o = json_object(), *a = json_array();
	struct ehr_buf b = EHR_BUF_INIT(64);

	if (o == NULL || a == NULL || tree_size > INT64_MAX || index_or_size1 > INT64_MAX)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		ehr_buf_reset(&b);
		if (ehr_b64_encode(&b, hashes[i], LEDGER_HASH_LEN) < 0 ||
		    json_array_append_new(a, json_string(ehr_buf_cstr(&b))) < 0)
			goto fail;
	}
	if (json_object_set_new(o, "tree_size", json_integer((json_int_t)tree_size)) < 0 ||
	    json_object_set_new(o, consistency ? "first_size" : "leaf_index",
	                        json_integer((json_int_t)index_or_size1)) < 0)
		goto fail;
	ehr_buf_free(&b);
	if (json_object_set_new(o, "hashes", a) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
fail:
	ehr_buf_free(&b);
	json_decref(a);
	json_decref(o);
	return NULL;
}

int ledger_proof_from_json(const void *text, size_t len, bool consistency, uint64_t *tree_size,
                           uint64_t *index_or_size1, uint8_t (*hashes)[LEDGER_HASH_LEN], size_t *n)
{
	struct ehr_buf b = EHR_BUF_INIT(64);
	json_t *j = NULL, *arr;
	int64_t v;
	int err = 0;

	*n = 0;
	if (ehr_json_parse(&j, text, len, PROOF_JSON_MAX, 4) < 0 || !json_is_object(j)) {
		err = ehr_error_set(EHR_ERR_PARSE, "proof: not a JSON object");
		goto out;
	}
	if (ehr_json_get_int(j, "tree_size", &v, 0, INT64_MAX) < 0) {
		err = ehr_error_set(EHR_ERR_PARSE, "proof: bad tree_size");
		goto out;
	}
	*tree_size = (uint64_t)v;
	if (ehr_json_get_int(j, consistency ? "first_size" : "leaf_index", &v, 0, INT64_MAX) < 0) {
		err = ehr_error_set(EHR_ERR_PARSE, "proof: bad %s",
		                    consistency ? "first_size" : "leaf_index");
		goto out;
	}
	*index_or_size1 = (uint64_t)v;
	arr = json_object_get(j, "hashes");
	if (!json_is_array(arr) || json_array_size(arr) > LEDGER_MAX_PROOF) {
		err = ehr_error_set(EHR_ERR_PARSE, "proof: bad hashes");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *h = json_array_get(arr, i);

		ehr_buf_reset(&b);
		if (!json_is_string(h) ||
		    ehr_b64_decode(&b, json_string_value(h), json_string_length(h)) < 0 ||
		    b.len != LEDGER_HASH_LEN) {
			err = ehr_error_set(EHR_ERR_PARSE, "proof: hash %zu is not base64 of 32 bytes", i);
			goto out;
		}
		memcpy(hashes[i], b.data, LEDGER_HASH_LEN);
	}
	*n = json_array_size(arr);
out:
	json_decref(j);
	ehr_buf_free(&b);
	return err;
}

static int set_b64(json_t *o, const char *key, const void *p, size_t n)
{
	struct ehr_buf b = EHR_BUF_INIT(256);
	int err = ehr_b64_encode(&b, p, n);

	if (err == 0 && json_object_set_new(o, key, json_string(ehr_buf_cstr(&b))) < 0)
		err = ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	ehr_buf_free(&b);
	return err;
}

json_t *ledger_block_json(const struct ledger_block *b)
{
	json_t *o = json_object();

	if (o == NULL || json_object_set_new(o, "height", json_integer((json_int_t)b->height)) < 0 ||
	    json_object_set_new(o, "tree_size", json_integer((json_int_t)b->tree_size)) < 0 ||
	    json_object_set_new(o, "ts_ms", json_integer((json_int_t)b->ts_ms)) < 0 ||
	    json_object_set_new(o, "origin", json_string(b->origin)) < 0 ||
	    set_b64(o, "prev_hash", b->prev_hash, LEDGER_HASH_LEN) < 0 ||
	    set_b64(o, "root", b->root, LEDGER_HASH_LEN) < 0 ||
	    set_b64(o, "hash", b->hash, LEDGER_HASH_LEN) < 0 ||
	    set_b64(o, "sig", b->sig, LEDGER_SIG_LEN) < 0 ||
	    set_b64(o, "cp_sig", b->cp_sig, LEDGER_SIG_LEN) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *ledger_entry_json(const struct ledger_entry *e, const uint8_t *raw, size_t len)
{
	json_t *o = json_object(), *payload = NULL;

	if (o == NULL ||
	    ehr_json_parse(&payload, e->payload, e->payload_len, LEDGER_MAX_PAYLOAD, EHR_JSON_MAX_DEPTH) < 0)
		goto fail;
	if (json_object_set_new(o, "seq", json_integer((json_int_t)e->seq)) < 0 ||
	    json_object_set_new(o, "ts_ms", json_integer((json_int_t)e->ts_ms)) < 0 ||
	    json_object_set_new(o, "block_height", json_integer((json_int_t)e->block_height)) < 0 ||
	    json_object_set_new(o, "type", json_string(e->type)) < 0 ||
	    json_object_set_new(o, "actor", json_string(e->actor)) < 0 ||
	    json_object_set_new(o, "subject", json_string(e->subject)) < 0 ||
	    json_object_set_new(o, "payload", payload) < 0 || set_b64(o, "entry", raw, len) < 0 ||
	    set_b64(o, "leaf_hash", e->leaf_hash, LEDGER_HASH_LEN) < 0) {
		payload = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(payload);
	json_decref(o);
	return NULL;
}
