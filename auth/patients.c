/*
 * patients.c - patients, their pseudonyms and the link that erasure
 * destroys (docs/ERASURE.md §9, §10).
 *
 * A new patient's pseudonym is random. The hospital's external id leads to
 * it only through one row of auth_patient_links, keyed by
 * HMAC(link.key, external id). Erasure deletes that row in the transaction
 * that marks the patient erased: afterwards the keyed hash finds nothing
 * and the pseudonym, having no derivation, cannot be recomputed by anyone.
 * Patients created before migration 0055 have derived pseudonyms
 * (auth_pseudonym under pseudonym.key); they are linked lazily here.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "common/db.h"
#include "auth/auth.h"
#include "auth/auth_internal.h"

#define LINK_HEX_LEN EHR_DB_BYTEA_HEX_LEN(32)

static int link_param(char hex[LINK_HEX_LEN], const uint8_t key[AUTH_PSEUDONYM_KEY_LEN], const char *ext)
{
	uint8_t h[32];
	int err = auth_patient_link_hash(h, key, ext);

	if (err == 0)
		err = ehr_db_bytea_param(hex, LINK_HEX_LEN, h, sizeof(h));
	OPENSSL_cleanse(h, sizeof(h));
	return err;
}

/* Insert the link (link -> pid); *won = false when another transaction
 * linked that external id (or that patient) first. */
/* Run sql; *one: it returned exactly one row. */
static int one_row(void *conn, const char *sql, int n, const char *const *p, bool *one)
{
	void *res = NULL;
	int err = ehr_db_exec(conn, &res, sql, n, p);

	if (err == 0)
		*one = ehr_db_rows(res) == 1;
	ehr_db_clear(res);
	return err;
}

static int insert_link(void *conn, const char *link_hex, const char *pid, bool *won)
{
	const char *p[2] = { link_hex, pid };

	return one_row(conn,
	               "INSERT INTO auth_patient_links (link_hash, patient_id) VALUES ($1::bytea, $2) "
	               "ON CONFLICT DO NOTHING RETURNING 1",
	               2, p, won);
}

/* The legacy patient whose derived pseudonym `ext` gives, if it exists and
 * is not erased: *found and pid set. */
static int find_legacy(void *conn, const uint8_t key[AUTH_PSEUDONYM_KEY_LEN], const char *ext,
                       char pid[AUTH_MAX_ID + 1], bool *found)
{
	const char *p[1] = { pid };

	*found = false;
	GUARD(auth_pseudonym(pid, key, "patient", ext));
	return one_row(conn,
	               "SELECT 1 FROM auth_patients WHERE patient_id = $1 AND scheme = 'derived' AND "
	               "erase_state IS NULL",
	               1, p, found);
}

/*
 * The patient of a link inside the caller's transaction: the linked one,
 * else a legacy one (linked now), else a new random one (linked now).
 * EHR_ERR_CONFLICT when a concurrent creator linked it first: roll back
 * and try again, the link is then found.
 */
static int resolve_patient(struct auth_ctx *ctx, void *conn, const char *link_hex, const char *ext,
                           const char *server, char pid[AUTH_MAX_ID + 1])
{
	const char *p[3] = { link_hex };
	void *res = NULL;
	bool found = false, won = false;
	int err;

	GUARD(ehr_db_exec(conn, &res, "SELECT patient_id FROM auth_patient_links WHERE link_hash = $1::bytea",
	                  1, p));
	found = ehr_db_rows(res) == 1;
	err = found ? ehr_db_get_text(pid, AUTH_MAX_ID + 1, res, 0, 0) : 0;
	ehr_db_clear(res);
	if (err < 0 || found)
		return err;
	if (ctx->has_pseudonym_key)
		GUARD(find_legacy(conn, ctx->pseudonym_key, ext, pid, &found));
	if (!found) {
		GUARD(auth_pseudonym_random(pid));
		p[0] = pid;
		p[1] = server;
		GUARD(ehr_db_run(conn,
		                 "INSERT INTO auth_patients (patient_id, created_by, scheme) "
		                 "VALUES ($1, $2, 'random')",
		                 2, p));
	}
	GUARD(insert_link(conn, link_hex, pid, &won));
	return won ? 0 : ehr_error_set(EHR_ERR_CONFLICT, "patient created concurrently");
}

int auth_patient_create(struct auth_ctx *ctx, json_t **resp, const struct auth_principal *server,
                        const char *external_id)
{
	char pid[AUTH_MAX_ID + 1], hex[67], ttl[24], link_hex[LINK_HEX_LEN];
	uint8_t ch[32];
	struct ehr_buf code = EHR_BUF_INIT(64);
	void *conn = NULL;
	const char *params[3];
	int64_t expires;
	int err, attempt;

	*resp = NULL;
	ENSURE(strcmp(server->role, "server") == 0, EHR_ERR_FORBIDDEN);
	if (external_id == NULL || *external_id == '\0' || strlen(external_id) > 256)
		return ehr_error_set(EHR_ERR_INVAL, "external_id must be 1 to 256 bytes");
	GUARD_GOTO(link_param(link_hex, ctx->link_key, external_id));
	GUARD_GOTO(ehr_random_token(&code, 32));
	GUARD_GOTO(auth__hash_secret(ch, ehr_buf_cstr(&code)));
	GUARD_GOTO(ehr_db_bytea_param(hex, sizeof(hex), ch, sizeof(ch)));
	expires = auth__now_s() + ctx->cfg.enroll_ttl;
	GUARD_GOTO(ehr_fmt(ttl, sizeof(ttl), "%lld", (long long)expires));

	GUARD_GOTO(ehr_db_acquire(ctx->cfg.db, &conn));
	for (attempt = 0;; attempt++) {
		GUARD_GOTO(ehr_db_begin(conn));
		err = resolve_patient(ctx, conn, link_hex, external_id, server->id, pid);
		if (err != EHR_ERR_CONFLICT || attempt == 2)
			break;
		ehr_db_rollback(conn);
		ehr_error_clear();
	}
	if (err < 0)
		goto out;
	params[0] = hex;
	params[1] = pid;
	params[2] = ttl;
	GUARD_GOTO(ehr_db_run(conn,
	                      "INSERT INTO auth_enrol_codes (code_hash, patient_id, expires_at) "
	                      "VALUES ($1::bytea, $2, to_timestamp($3::bigint))",
	                      3, params));
	/* The entry names the pseudonym only: never the external id or its link. */
	GUARD_GOTO(auth__emit(
	        ctx, "auth.patient.create", server->id, pid,
	        json_pack("{s:s,s:I}", "outcome", "success", "code_expires_at", (json_int_t)expires)));
	GUARD_GOTO(ehr_db_commit(conn));
	*resp = json_pack("{s:s,s:s,s:o}", "patient_id", pid, "enrolment_code", ehr_buf_cstr(&code),
	                  "expires_at", auth__rfc3339(expires));
	ENSURE_GOTO(*resp != NULL, EHR_ERR_NOMEM);
out:
	ehr_db_release_after(ctx->cfg.db, conn, err);
	ehr_buf_free_secure(&code);
	OPENSSL_cleanse(link_hex, sizeof(link_hex));
	return err;
}

/* ------------------------------------------------------------- erasure */

#define INFO_COLS                                                                     \
	"erase_state, erase_seq, coalesce(erase_basis, ''), coalesce(erase_by, ''), " \
	"coalesce(erase_actor, '')"

static int info_of(struct auth_patient_info *out, void *res)
{
	const char *st;

	memset(out, 0, sizeof(*out));
	if (ehr_db_rows(res) != 1)
		return 0;
	out->state = AUTH_PATIENT_ACTIVE;
	if (ehr_db_is_null(res, 0, 0))
		return 0;
	st = ehr_db_value(res, 0, 0);
	out->state = strcmp(st, "erased") == 0 ? AUTH_PATIENT_ERASED : AUTH_PATIENT_ERASING;
	GUARD(ehr_db_get_text(out->basis, sizeof(out->basis), res, 0, 2));
	GUARD(ehr_db_get_text(out->by, sizeof(out->by), res, 0, 3));
	GUARD(ehr_db_get_text(out->actor, sizeof(out->actor), res, 0, 4));
	return ehr_db_get_u64(&out->erase_seq, res, 0, 1, UINT64_MAX);
}

static int lookup_on(void *conn, const char *pid, struct auth_patient_info *out, bool lock)
{
	const char *p[1] = { pid };
	void *res = NULL;
	int err;

	err = ehr_db_exec(conn, &res,
	                  lock ? "SELECT " INFO_COLS " FROM auth_patients WHERE patient_id = $1 FOR UPDATE"
	                       : "SELECT " INFO_COLS " FROM auth_patients WHERE patient_id = $1",
	                  1, p);
	if (err == 0)
		err = info_of(out, res);
	ehr_db_clear(res);
	return err;
}

int auth_patient_lookup(struct ehr_db_pool *db, const char *pid, struct auth_patient_info *out)
{
	void *conn = NULL;
	int err;

	memset(out, 0, sizeof(*out));
	GUARD(ehr_db_acquire(db, &conn));
	err = lookup_on(conn, pid, out, false);
	ehr_db_release_after(db, conn, err);
	return err;
}

int auth_patient_lock(void *conn, const char *pid, struct auth_patient_info *out)
{
	return lookup_on(conn, pid, out, true);
}

int auth_patient_erase_apply(void *conn, const char *pid, uint64_t seq, const struct auth_erase_request *rq)
{
	char seqs[24];
	const char *p[5] = { pid, seqs, rq->basis, rq->by, rq->actor };

	GUARD(ehr_fmt(seqs, sizeof(seqs), "%llu", (unsigned long long)seq));
	/* The device key stays on the row (its thumbprint is in the ledger
	 * anyway) but is revoked: no request authenticates with it again. */
	GUARD(ehr_db_run(
	        conn,
	        "UPDATE auth_patients SET erase_state = 'erasing', erase_seq = $2::bigint, "
	        "erase_basis = $3, erase_by = $4, erase_actor = $5, "
	        "revoked_at = coalesce(revoked_at, now()) WHERE patient_id = $1 AND erase_state IS NULL",
	        5, p));
	GUARD(ehr_db_run(conn, "DELETE FROM auth_patient_links WHERE patient_id = $1", 1, p));
	GUARD(ehr_db_run(conn, "DELETE FROM auth_enrol_codes WHERE patient_id = $1", 1, p));
	return ehr_db_run(conn, "DELETE FROM auth_challenges WHERE patient_id = $1", 1, p);
}

int auth_patient_erase_finish(struct ehr_db_pool *db, const char *pid)
{
	const char *p[1] = { pid };
	void *conn = NULL;
	int err;

	GUARD(ehr_db_acquire(db, &conn));
	err = ehr_db_run(conn,
	                 "UPDATE auth_patients SET erase_state = 'erased', erased_at = now() "
	                 "WHERE patient_id = $1 AND erase_state = 'erasing'",
	                 1, p);
	ehr_db_release_after(db, conn, err);
	return err;
}

/* One query whose single text cell is a JSON value, parsed into *out. */
static int query_json(struct ehr_db_pool *db, const char *sql, json_t **out)
{
	void *conn = NULL, *res = NULL;
	int err;

	*out = NULL;
	GUARD(ehr_db_acquire(db, &conn));
	GUARD_GOTO(ehr_db_exec(conn, &res, sql, 0, NULL));
	GUARD_GOTO(ehr_json_parse(out, ehr_db_value(res, 0, 0), ehr_db_len(res, 0, 0), 64u << 20, 8));
out:
	ehr_db_clear(res);
	ehr_db_release_after(db, conn, err);
	return err;
}

int auth_patients_erasing(struct ehr_db_pool *db, json_t **out)
{
	return query_json(db,
	                  "SELECT coalesce(json_agg(patient_id ORDER BY erase_seq), '[]')::text "
	                  "FROM auth_patients p WHERE erase_state = 'erasing' OR (erase_state = "
	                  "'erased' AND EXISTS (SELECT 1 FROM ehr_records r WHERE r.patient = "
	                  "p.patient_id AND r.state IN ('stored', 'erasing')))",
	                  out);
}

int auth_legacy_counts(struct ehr_db_pool *db, struct auth_legacy_counts *out)
{
	json_t *j = NULL;

	memset(out, 0, sizeof(*out));
	GUARD(query_json(db,
	                 "SELECT json_build_array(count(*), count(l.patient_id), "
	                 "count(*) FILTER (WHERE p.erase_state IS NOT NULL))::text FROM auth_patients p "
	                 "LEFT JOIN auth_patient_links l ON l.patient_id = p.patient_id "
	                 "WHERE p.scheme = 'derived'",
	                 &j));
	out->total = (uint64_t)json_integer_value(json_array_get(j, 0));
	out->linked = (uint64_t)json_integer_value(json_array_get(j, 1));
	out->erased = (uint64_t)json_integer_value(json_array_get(j, 2));
	json_decref(j);
	return 0;
}

int auth_legacy_link(struct ehr_db_pool *db, const uint8_t pseudonym_key[AUTH_PSEUDONYM_KEY_LEN],
                     const uint8_t link_key[AUTH_PSEUDONYM_KEY_LEN], const char *external_id, int *linked)
{
	char pid[AUTH_MAX_ID + 1], link_hex[LINK_HEX_LEN];
	void *conn = NULL;
	bool found = false, won = false;
	int err;

	*linked = 0;
	ENSURE(external_id != NULL && *external_id != '\0' && strlen(external_id) <= 256, EHR_ERR_INVAL);
	GUARD(link_param(link_hex, link_key, external_id));
	GUARD_GOTO(ehr_db_acquire(db, &conn));
	GUARD_GOTO(find_legacy(conn, pseudonym_key, external_id, pid, &found));
	if (found) {
		GUARD_GOTO(insert_link(conn, link_hex, pid, &won));
		*linked = won ? 1 : 0;
	}
out:
	ehr_db_release_after(db, conn, err);
	OPENSSL_cleanse(link_hex, sizeof(link_hex));
	return err;
}

int auth_links_count(struct ehr_db_pool *db, uint64_t *n)
{
	json_t *j = NULL;

	*n = 0;
	GUARD(query_json(db, "SELECT json_build_array(to_regclass('auth_patient_links') IS NOT NULL)::text",
	                 &j));
	if (json_is_true(json_array_get(j, 0))) {
		json_decref(j);
		GUARD(query_json(db, "SELECT json_build_array(count(*))::text FROM auth_patient_links", &j));
		*n = (uint64_t)json_integer_value(json_array_get(j, 0));
	}
	json_decref(j);
	return 0;
}
