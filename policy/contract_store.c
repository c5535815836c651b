/*
 * contract_store.c - contract state materialised from the ledger.
 *
 * The ledger is the source of truth. A contract.create entry carries the
 * signed document, its signature and the public JWK that made it, so the
 * ledger alone proves consent; the tables of 0040_contracts.sql are a
 * cache of those entries that evaluation can index. Both the live path
 * (policy_contract_create/revoke, right after the append commits) and
 * `ehrgate contracts rebuild` go through policy_store_apply, which
 * re-verifies every signature, so a rebuilt state equals the live one by
 * construction and a forged entry is never materialised.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/sha.h>

#include "common/db.h"
#include "policy/policy.h"

#define POLICY_JKT_MAX 64

/* RFC 7638 thumbprint of an EC JWK: SHA-256 over the JCS of its required
 * members {crv, kty, x, y}, base64url. */
int policy_jwk_thumbprint(char out[POLICY_JKT_MAX], const json_t *jwk)
{
	json_t *req = json_object();
	struct ehr_buf canon = EHR_BUF_INIT(1024), b = EHR_BUF_INIT(POLICY_JKT_MAX);
	uint8_t md[SHA256_DIGEST_LENGTH];
	const char *names[] = { "crv", "kty", "x", "y" };
	int err = 0;

	ENSURE_GOTO(req != NULL && json_is_object(jwk), EHR_ERR_INVAL);
	for (size_t i = 0; i < EHR_ARRAY_LEN(names); i++) {
		json_t *v = json_object_get(jwk, names[i]);
		ENSURE_GOTO(json_is_string(v), EHR_ERR_INVAL);
		ENSURE_GOTO(json_object_set(req, names[i], v) == 0, EHR_ERR_NOMEM);
	}
	GUARD_GOTO(jcs_canonicalize(&canon, req));
	SHA256(canon.data, canon.len, md);
	GUARD_GOTO(ehr_b64url_encode(&b, md, sizeof(md)));
	memcpy(out, b.data, b.len + 1);
out:
	json_decref(req);
	ehr_buf_free(&canon);
	ehr_buf_free(&b);
	return err;
}

/* Verify an envelope member `doc` with `sig` by `jwk`; fills jkt. */
static int verify_signed(const json_t *doc, const char *sig, const json_t *jwk, char jkt[POLICY_JKT_MAX])
{
	EVP_PKEY *pub = NULL;
	int err;

	GUARD_GOTO(ehr_jwk_parse(&pub, jwk));
	GUARD_GOTO(policy_jwk_thumbprint(jkt, jwk));
	GUARD_GOTO(policy_verify_es256(doc, sig, pub));
out:
	EVP_PKEY_free(pub);
	return err;
}

static const char *scope_kind_name(enum policy_scope_kind k)
{
	switch (k) {
	case POLICY_SCOPE_ALL: return "all";
	case POLICY_SCOPE_RECORDS: return "records";
	case POLICY_SCOPE_CATEGORIES: return "categories";
	default: return "?";
	}
}

/* A Postgres text[] literal of identifiers we validated (no quotes or
 * backslashes can occur, but quote each item anyway). */
static int pg_text_array(struct ehr_buf *out, char **items, size_t n)
{
	GUARD(ehr_buf_append_u8(out, '{'));
	for (size_t i = 0; i < n; i++) {
		if (strchr(items[i], '"') || strchr(items[i], '\\'))
			return ehr_error_set(EHR_ERR_INVAL, "scope item not storable");
		GUARD(ehr_buf_printf(out, "%s\"%s\"", i ? "," : "", items[i]));
	}
	return ehr_buf_append_u8(out, '}');
}

static int apply_create(void *conn, uint64_t seq, const json_t *payload)
{
	const json_t *doc = json_object_get(payload, "contract"), *jwk = json_object_get(payload, "jwk");
	const char *sig, *cid, *jkt_claimed;
	char jkt[POLICY_JKT_MAX], seqs[24], acts[4], nb[24], na[24], ia[24];
	struct policy_contract c;
	struct ehr_buf canon = EHR_BUF_INIT(POLICY_DOC_MAX), arr = EHR_BUF_INIT(POLICY_DOC_MAX);
	int err;

	memset(&c, 0, sizeof(c));
	GUARD_GOTO(ehr_json_get_str(payload, "signature", &sig, 128));
	GUARD_GOTO(ehr_json_get_str(payload, "cid", &cid, POLICY_CID_MAX - 1));
	GUARD_GOTO(ehr_json_get_str(payload, "jkt", &jkt_claimed, POLICY_JKT_MAX - 1));
	GUARD_GOTO(policy_contract_from_json(&c, doc));
	if (strcmp(c.cid, cid) != 0) {
		err = ehr_error_set(EHR_ERR_TAMPER,
		                    "contract.create at seq %llu: cid does not match the document",
		                    (unsigned long long)seq);
		goto out;
	}
	if ((err = verify_signed(doc, sig, jwk, jkt)) < 0 || strcmp(jkt, jkt_claimed) != 0) {
		err = ehr_error_set(EHR_ERR_TAMPER,
		                    "contract.create at seq %llu: signature or key does not verify",
		                    (unsigned long long)seq);
		goto out;
	}
	GUARD_GOTO(jcs_canonicalize(&canon, doc));
	GUARD_GOTO(pg_text_array(&arr, c.scope, c.n_scope));
	GUARD_GOTO(ehr_fmt(seqs, sizeof(seqs), "%llu", (unsigned long long)seq));
	GUARD_GOTO(ehr_fmt(acts, sizeof(acts), "%u", c.actions));
	GUARD_GOTO(ehr_fmt(nb, sizeof(nb), "%lld", (long long)c.not_before));
	GUARD_GOTO(ehr_fmt(na, sizeof(na), "%lld", (long long)c.not_after));
	GUARD_GOTO(ehr_fmt(ia, sizeof(ia), "%lld", (long long)c.issued_at));
	{
		const char *p[] = { c.cid,
			            c.patient,
			            c.grantee_kind == POLICY_GRANTEE_SERVER ? "server" : "group",
			            c.grantee,
			            acts,
			            scope_kind_name(c.scope_kind),
			            ehr_buf_cstr(&arr),
			            c.purpose,
			            nb,
			            na,
			            ia,
			            seqs,
			            ehr_buf_cstr(&canon),
			            sig,
			            jkt };
		/* Idempotent: applying an entry twice, or a second create of the
		 * same document, keeps the first (lowest seq) row. */
		GUARD_GOTO(ehr_db_run(
		        conn,
		        "INSERT INTO policy_contracts (cid, patient, grantee_kind, grantee, actions, "
		        "scope_kind, scope, purpose, not_before, not_after, issued_at, created_seq, "
		        "document, signature, jkt) VALUES "
		        "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) "
		        "ON CONFLICT (cid) DO UPDATE SET created_seq = excluded.created_seq, "
		        "signature = excluded.signature, jkt = excluded.jkt "
		        "WHERE policy_contracts.created_seq > excluded.created_seq",
		        (int)EHR_ARRAY_LEN(p), p));
	}
out:
	policy_contract_clear(&c);
	ehr_buf_free(&canon);
	ehr_buf_free(&arr);
	return err;
}

static int apply_revoke(void *conn, uint64_t seq, const json_t *payload)
{
	const json_t *doc = json_object_get(payload, "revocation"), *jwk = json_object_get(payload, "jwk");
	const char *sig;
	char jkt[POLICY_JKT_MAX], seqs[24];
	struct policy_revocation rv;
	struct ehr_buf canon = EHR_BUF_INIT(POLICY_DOC_MAX);
	void *r = NULL;
	int err;

	GUARD_GOTO(ehr_json_get_str(payload, "signature", &sig, 128));
	GUARD_GOTO(policy_revocation_from_json(&rv, doc));
	if (verify_signed(doc, sig, jwk, jkt) < 0) {
		err = ehr_error_set(EHR_ERR_TAMPER, "contract.revoke at seq %llu: signature does not verify",
		                    (unsigned long long)seq);
		goto out;
	}
	{
		const char *p[] = { rv.cid };
		GUARD_GOTO(ehr_db_exec(
		        conn, &r, "SELECT patient, created_seq FROM policy_contracts WHERE cid = $1", 1, p));
	}
	if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), rv.patient) != 0) {
		err = ehr_error_set(EHR_ERR_TAMPER,
		                    "contract.revoke at seq %llu: no such contract of that patient",
		                    (unsigned long long)seq);
		goto out;
	}
	{
		uint64_t created;
		if (ehr_parse_u64(&created, PQgetvalue(r, 0, 1), UINT64_MAX) < 0 || created >= seq) {
			err = ehr_error_set(EHR_ERR_TAMPER,
			                    "contract.revoke at seq %llu precedes its contract",
			                    (unsigned long long)seq);
			goto out;
		}
	}
	GUARD_GOTO(jcs_canonicalize(&canon, doc));
	GUARD_GOTO(ehr_fmt(seqs, sizeof(seqs), "%llu", (unsigned long long)seq));
	{
		/* The first revocation (lowest seq) is the one that counts. */
		const char *p[] = { rv.cid, seqs, ehr_buf_cstr(&canon), sig };
		GUARD_GOTO(ehr_db_run(conn,
		                      "UPDATE policy_contracts SET revoked_seq = $2, revocation = $3, "
		                      "revocation_signature = $4 WHERE cid = $1 AND "
		                      "(revoked_seq IS NULL OR revoked_seq > $2::bigint)",
		                      4, p));
	}
out:
	PQclear(r);
	ehr_buf_free(&canon);
	return err;
}

static int apply_group(void *conn, uint64_t seq, const json_t *payload, bool add)
{
	const char *group, *server;
	char seqs[24];

	GUARD(ehr_json_get_str(payload, "group", &group, POLICY_ID_MAX - 1));
	GUARD(ehr_json_get_str(payload, "server", &server, POLICY_ID_MAX - 1));
	GUARD(ehr_fmt(seqs, sizeof(seqs), "%llu", (unsigned long long)seq));
	if (add) {
		const char *p[] = { group, server, seqs };
		return ehr_db_run(
		        conn,
		        "INSERT INTO policy_groups (group_name, server_id, added_seq) VALUES ($1,$2,$3) "
		        "ON CONFLICT DO NOTHING",
		        3, p);
	} else {
		const char *p[] = { group, server };
		return ehr_db_run(conn, "DELETE FROM policy_groups WHERE group_name = $1 AND server_id = $2",
		                  2, p);
	}
}

/* A patient's erasure revokes all their contracts at `seq`: no signature,
 * the erasure entry (operator or patient) is the authority. */
static int apply_erase(void *conn, uint64_t seq, const json_t *payload)
{
	const char *patient;
	char seqs[24];

	GUARD(ehr_json_get_str(payload, "patient", &patient, POLICY_ID_MAX - 1));
	GUARD(ehr_fmt(seqs, sizeof(seqs), "%llu", (unsigned long long)seq));
	{
		const char *p[] = { patient, seqs };
		return ehr_db_run(
		        conn,
		        "UPDATE policy_contracts SET revoked_seq = $2 WHERE patient = $1 AND "
		        "created_seq < $2::bigint AND (revoked_seq IS NULL OR revoked_seq > $2::bigint)",
		        2, p);
	}
}

int policy_store_apply(void *conn, uint64_t seq, const char *type, const json_t *payload)
{
	if (!json_is_object(payload))
		return ehr_error_set(EHR_ERR_TAMPER, "entry %llu: payload is not an object",
		                     (unsigned long long)seq);
	if (strcmp(type, POLICY_ENTRY_CREATE) == 0)
		return apply_create(conn, seq, payload);
	if (strcmp(type, POLICY_ENTRY_REVOKE) == 0)
		return apply_revoke(conn, seq, payload);
	if (strcmp(type, POLICY_ENTRY_GROUP_ADD) == 0)
		return apply_group(conn, seq, payload, true);
	if (strcmp(type, POLICY_ENTRY_GROUP_REMOVE) == 0)
		return apply_group(conn, seq, payload, false);
	if (strcmp(type, POLICY_ENTRY_ERASE) == 0)
		return apply_erase(conn, seq, payload);
	return 0; /* not ours */
}

/* --------------------------------------------------------------- live */

static int append_and_apply(void *conn, struct ledger *l, const char *type, const char *actor,
                            const char *subject, json_t *payload, struct ledger_receipt *rcpt)
{
	struct ledger_entry_in in = { type, actor, subject, payload };
	int err;

	GUARD(ledger_append(l, &in, rcpt));
	/* The entry is durable: consent now exists whatever happens next. If
	 * materialising fails, `ehrgate contracts rebuild` repairs the cache. */
	err = policy_store_apply(conn, rcpt->seq, type, payload);
	if (err < 0)
		ehr_logf(EHR_LOG_ERROR, "policy.materialise_failed", "seq %llu: %s",
		         (unsigned long long)rcpt->seq, ehr_error_msg());
	return err;
}

int policy_contract_create(void *conn, struct ledger *l, const char *patient, const json_t *jwk,
                           const json_t *envelope, char cid[POLICY_CID_MAX], struct ledger_receipt *rcpt)
{
	static const char *const members[] = { "contract", "signature" };
	const json_t *doc;
	const char *sig, *k;
	char jkt[POLICY_JKT_MAX];
	struct policy_contract c;
	json_t *payload = NULL, *v;
	void *r = NULL;
	int err;

	memset(&c, 0, sizeof(c));
	ENSURE_GOTO(json_is_object(envelope), EHR_ERR_INVAL);
	json_object_foreach((json_t *)envelope, k, v)
	{
		if (strcmp(k, members[0]) != 0 && strcmp(k, members[1]) != 0) {
			err = ehr_error_set(EHR_ERR_INVAL, "envelope: unknown member");
			goto out;
		}
	}
	doc = json_object_get(envelope, "contract");
	GUARD_GOTO(ehr_json_get_str(envelope, "signature", &sig, 128));
	GUARD_GOTO(policy_contract_from_json(&c, doc));
	if (strcmp(c.patient, patient) != 0) {
		err = ehr_error_set(EHR_ERR_FORBIDDEN, "contract.patient is not the caller");
		goto out;
	}
	if ((err = verify_signed(doc, sig, jwk, jkt)) < 0) {
		if (err != EHR_ERR_TAMPER && err != EHR_ERR_INVAL)
			goto out;
		err = ehr_error_set(EHR_ERR_TAMPER, "contract signature does not verify with the device key");
		goto out;
	}
	{
		const char *p[] = { c.cid };
		GUARD_GOTO(ehr_db_exec(conn, &r, "SELECT 1 FROM policy_contracts WHERE cid = $1", 1, p));
		if (PQntuples(r) > 0) {
			err = ehr_error_set(EHR_ERR_CONFLICT, "contract already exists");
			goto out;
		}
	}
	payload = json_pack("{s:s, s:O, s:s, s:O, s:s}", "cid", c.cid, "contract", doc, "signature", sig,
	                    "jwk", jwk, "jkt", jkt);
	ENSURE_GOTO(payload != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(append_and_apply(conn, l, POLICY_ENTRY_CREATE, patient, patient, payload, rcpt));
	memcpy(cid, c.cid, strlen(c.cid) + 1);
out:
	PQclear(r);
	json_decref(payload);
	policy_contract_clear(&c);
	return err;
}

int policy_contract_revoke(void *conn, struct ledger *l, const char *patient, const json_t *jwk,
                           const char *cid, const json_t *envelope, struct ledger_receipt *rcpt)
{
	const json_t *doc;
	const char *sig, *k;
	char jkt[POLICY_JKT_MAX];
	struct policy_revocation rv;
	json_t *payload = NULL, *v;
	void *r = NULL;
	int err;

	ENSURE_GOTO(json_is_object(envelope) && cid != NULL, EHR_ERR_INVAL);
	json_object_foreach((json_t *)envelope, k, v)
	{
		if (strcmp(k, "revocation") != 0 && strcmp(k, "signature") != 0) {
			err = ehr_error_set(EHR_ERR_INVAL, "envelope: unknown member");
			goto out;
		}
	}
	doc = json_object_get(envelope, "revocation");
	GUARD_GOTO(ehr_json_get_str(envelope, "signature", &sig, 128));
	GUARD_GOTO(policy_revocation_from_json(&rv, doc));
	if (strcmp(rv.cid, cid) != 0) {
		err = ehr_error_set(EHR_ERR_INVAL, "revocation.cid does not match the path");
		goto out;
	}
	if (strcmp(rv.patient, patient) != 0) {
		err = ehr_error_set(EHR_ERR_FORBIDDEN, "revocation.patient is not the caller");
		goto out;
	}
	{
		const char *p[] = { cid };
		GUARD_GOTO(ehr_db_exec(
		        conn, &r,
		        "SELECT patient, revoked_seq IS NOT NULL FROM policy_contracts WHERE cid = $1", 1,
		        p));
	}
	/* Another patient's contract looks exactly like a missing one. */
	if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), patient) != 0) {
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no such contract");
		goto out;
	}
	if (strcmp(PQgetvalue(r, 0, 1), "t") == 0) {
		err = ehr_error_set(EHR_ERR_CONFLICT, "contract already revoked");
		goto out;
	}
	if ((err = verify_signed(doc, sig, jwk, jkt)) < 0) {
		err = ehr_error_set(EHR_ERR_TAMPER,
		                    "revocation signature does not verify with the device key");
		goto out;
	}
	payload = json_pack("{s:s, s:O, s:s, s:O, s:s}", "cid", cid, "revocation", doc, "signature", sig,
	                    "jwk", jwk, "jkt", jkt);
	ENSURE_GOTO(payload != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(append_and_apply(conn, l, POLICY_ENTRY_REVOKE, patient, patient, payload, rcpt));
out:
	PQclear(r);
	json_decref(payload);
	return err;
}

int policy_group_change(void *conn, struct ledger *l, const char *actor, const char *group,
                        const char *server, bool add, struct ledger_receipt *rcpt)
{
	json_t *payload;
	int err;

	/* Same identifier rules as a contract's grantee. */
	if (!policy_id_valid(group) || !policy_id_valid(server))
		return ehr_error_set(EHR_ERR_INVAL, "group and server must be identifiers");
	payload = json_pack("{s:s, s:s}", "group", group, "server", server);
	ENSURE(payload != NULL, EHR_ERR_NOMEM);
	err = append_and_apply(conn, l, add ? POLICY_ENTRY_GROUP_ADD : POLICY_ENTRY_GROUP_REMOVE, actor,
	                       group, payload, rcpt);
	json_decref(payload);
	return err;
}

/* ------------------------------------------------------------- reading */

/* -------------------------------------------------------------- rebuild */

int policy_store_rebuild(void *conn, struct policy_rebuild_report *rep)
{
	void *r = NULL;
	int err;
	bool in_tx = false;

	memset(rep, 0, sizeof(*rep));
	GUARD_GOTO(ehr_db_run(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL));
	in_tx = true;
	GUARD_GOTO(ehr_db_run(conn, "DELETE FROM policy_contracts", 0, NULL));
	GUARD_GOTO(ehr_db_run(conn, "DELETE FROM policy_groups", 0, NULL));
	/* The type column is only an index: every entry is decoded and its
	 * signed bytes, not the column, decide what it is. */
	GUARD_GOTO(ehr_db_run(
	        conn,
	        "DECLARE policy_rebuild NO SCROLL CURSOR FOR SELECT seq, entry FROM ledger_entries "
	        "WHERE type LIKE 'contract.%' ORDER BY seq",
	        0, NULL));
	for (;;) {
		int rows;
		ehr_db_clear(r);
		r = NULL;
		GUARD_GOTO(ehr_db_exec(conn, &r, "FETCH 1000 FROM policy_rebuild", 0, NULL));
		rows = PQntuples(r);
		if (rows == 0)
			break;
		for (int i = 0; i < rows; i++) {
			size_t len = 0;
			unsigned char *raw =
			        PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 1), &len);
			struct ledger_entry e;
			json_t *payload = NULL;
			uint64_t seq = 0;
			int rc;

			ENSURE_GOTO(raw != NULL, EHR_ERR_NOMEM);
			rc = ehr_parse_u64(&seq, PQgetvalue(r, i, 0), UINT64_MAX);
			if (rc == 0)
				rc = ledger_entry_decode(&e, raw, len, true);
			if (rc == 0 && e.seq != seq)
				rc = ehr_error_set(EHR_ERR_TAMPER, "entry bytes name another seq");
			if (rc == 0)
				rc = ehr_json_parse(&payload, e.payload, e.payload_len, LEDGER_MAX_PAYLOAD,
				                    EHR_JSON_MAX_DEPTH);
			if (rc == 0)
				rc = policy_store_apply(conn, seq, e.type, payload);
			json_decref(payload);
			PQfreemem(raw);
			rep->entries++;
			if (rc == EHR_ERR_DB || rc == EHR_ERR_UNAVAILABLE || rc == EHR_ERR_NOMEM) {
				err = rc;
				goto out;
			}
			if (rc < 0) {
				/* A ledger entry that does not prove consent is never
				 * materialised; report the first one. */
				if (rep->rejected++ == 0) {
					rep->first_rejected_seq = seq;
					if (ehr_str_copy(rep->first_reason, sizeof(rep->first_reason),
					                 ehr_error_msg()) < 0 &&
					    ehr_fmt(rep->first_reason, sizeof(rep->first_reason), "%.*s...",
					            (int)sizeof(rep->first_reason) - 4, ehr_error_msg()) < 0)
						rep->first_reason[0] = '\0'; /* cannot happen: it fits */
				}
				continue;
			}
			rep->applied++;
		}
	}
	PQclear(r);
	r = NULL;
	GUARD_GOTO(ehr_db_run(conn, "CLOSE policy_rebuild", 0, NULL));
	GUARD_GOTO(ehr_db_run(conn, "COMMIT", 0, NULL));
	in_tx = false;
out:
	PQclear(r);
	if (in_tx)
		ehr_db_rollback(conn);
	return err;
}

int policy_store_digest(void *conn, uint8_t out[32])
{
	void *r = NULL;
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	unsigned int mdlen = 0;
	int err;

	ENSURE(sha != NULL, EHR_ERR_NOMEM);
	if (EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(sha);
		return ehr_error_ossl(EHR_ERR_CRYPTO, "EVP_DigestInit_ex");
	}
	GUARD_GOTO(ehr_db_exec(
	        conn, &r,
	        "SELECT concat_ws('|', cid, patient, grantee_kind, grantee, actions, scope_kind, "
	        "scope::text, "
	        "purpose, not_before, not_after, issued_at, created_seq, document, signature, jkt, "
	        "coalesce(revoked_seq::text, '-'), coalesce(revocation, '-'), "
	        "coalesce(revocation_signature, '-')) FROM policy_contracts ORDER BY cid",
	        0, NULL));
	for (int i = 0; i < PQntuples(r); i++) {
		EVP_DigestUpdate(sha, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0));
		EVP_DigestUpdate(sha, "\n", 1);
	}
	PQclear(r);
	r = NULL;
	EVP_DigestUpdate(sha, "--groups--\n", 11);
	GUARD_GOTO(ehr_db_exec(conn, &r,
	                       "SELECT concat_ws('|', group_name, server_id, added_seq) FROM policy_groups "
	                       "ORDER BY group_name, server_id",
	                       0, NULL));
	for (int i = 0; i < PQntuples(r); i++) {
		EVP_DigestUpdate(sha, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0));
		EVP_DigestUpdate(sha, "\n", 1);
	}
out:
	if (EVP_DigestFinal_ex(sha, out, &mdlen) != 1 && err == 0)
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "EVP_DigestFinal_ex");
	EVP_MD_CTX_free(sha);
	PQclear(r);
	return err;
}
