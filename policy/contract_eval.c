/*
 * contract_eval.c - reading the materialised contract state and deciding
 * with it: a patient's contracts and a server's groups (one query for an
 * access decision), the listing, evaluation and recording of a decision.
 * contract_store.c writes that state from the ledger.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/db.h"
#include "policy/policy.h"

void policy_contracts_free(struct policy_contract *set, size_t n)
{
	for (size_t i = 0; set && i < n; i++)
		policy_contract_clear(&set[i]);
	free(set);
}

static int row_to_contract(struct policy_contract *c, const void *r, int i)
{
	json_t *scope = NULL;
	const char *s;
	int err = 0;

	memset(c, 0, sizeof(*c));
	GUARD(ehr_str_copy(c->cid, sizeof(c->cid), PQgetvalue(r, i, 0)));
	GUARD(ehr_str_copy(c->patient, sizeof(c->patient), PQgetvalue(r, i, 1)));
	c->grantee_kind =
	        strcmp(PQgetvalue(r, i, 2), "server") == 0 ? POLICY_GRANTEE_SERVER : POLICY_GRANTEE_GROUP;
	GUARD(ehr_str_copy(c->grantee, sizeof(c->grantee), PQgetvalue(r, i, 3)));
	{
		uint64_t a;
		GUARD(ehr_parse_u64(&a, PQgetvalue(r, i, 4), 3));
		c->actions = (unsigned)a;
	}
	s = PQgetvalue(r, i, 5);
	c->scope_kind = strcmp(s, "all") == 0       ? POLICY_SCOPE_ALL
	                : strcmp(s, "records") == 0 ? POLICY_SCOPE_RECORDS
	                                            : POLICY_SCOPE_CATEGORIES;
	s = PQgetvalue(r, i, 6);
	GUARD(ehr_json_parse(&scope, s, strlen(s), POLICY_DOC_MAX, 2));
	ENSURE_GOTO(json_is_array(scope), EHR_ERR_DB);
	c->scope = calloc(json_array_size(scope) + 1, sizeof(char *));
	ENSURE_GOTO(c->scope != NULL, EHR_ERR_NOMEM);
	for (size_t j = 0; j < json_array_size(scope); j++) {
		const char *v = json_string_value(json_array_get(scope, j));
		ENSURE_GOTO(v != NULL, EHR_ERR_DB);
		ENSURE_GOTO((c->scope[c->n_scope] = strdup(v)) != NULL, EHR_ERR_NOMEM);
		c->n_scope++;
	}
	GUARD_GOTO(ehr_str_copy(c->purpose, sizeof(c->purpose), PQgetvalue(r, i, 7)));
	GUARD_GOTO(ehr_parse_i64(&c->not_before, PQgetvalue(r, i, 8), INT64_MIN, INT64_MAX));
	GUARD_GOTO(ehr_parse_i64(&c->not_after, PQgetvalue(r, i, 9), INT64_MIN, INT64_MAX));
	GUARD_GOTO(ehr_parse_i64(&c->issued_at, PQgetvalue(r, i, 10), INT64_MIN, INT64_MAX));
	GUARD_GOTO(ehr_parse_u64(&c->seq, PQgetvalue(r, i, 11), UINT64_MAX));
	if (!PQgetisnull(r, i, 12)) {
		c->revoked = true;
		GUARD_GOTO(ehr_parse_u64(&c->revoked_seq, PQgetvalue(r, i, 12), UINT64_MAX));
	}
out:
	json_decref(scope);
	return err;
}

#define CONTRACT_COLS                                                                                     \
	"cid, patient, grantee_kind, grantee, actions, scope_kind, array_to_json(scope)::text, purpose, " \
	"not_before, not_after, issued_at, created_seq, revoked_seq"

int policy_store_load(void *conn, const char *patient, struct policy_contract **out, size_t *n)
{
	const char *p[] = { patient };
	struct policy_contract *set = NULL;
	void *r = NULL;
	size_t rows, i = 0;
	int err;

	*out = NULL;
	*n = 0;
	GUARD_GOTO(ehr_db_exec(conn, &r,
	                       "SELECT " CONTRACT_COLS
	                       " FROM policy_contracts WHERE patient = $1 ORDER BY created_seq",
	                       1, p));
	rows = (size_t)PQntuples(r);
	set = calloc(rows ? rows : 1, sizeof(*set));
	ENSURE_GOTO(set != NULL, EHR_ERR_NOMEM);
	for (i = 0; i < rows; i++)
		GUARD_GOTO(row_to_contract(&set[i], r, (int)i));
	*out = set;
	*n = rows;
	set = NULL;
out:
	if (set)
		policy_contracts_free(set, i + 1 <= rows ? i + 1 : rows);
	PQclear(r);
	return err;
}

int policy_store_groups(void *conn, const char *server, char ***out, size_t *n)
{
	const char *p[] = { server };
	void *r = NULL;
	char **g = NULL;
	size_t rows = 0;
	int err;

	*out = NULL;
	*n = 0;
	GUARD_GOTO(ehr_db_exec(
	        conn, &r, "SELECT group_name FROM policy_groups WHERE server_id = $1 ORDER BY group_name", 1,
	        p));
	rows = (size_t)PQntuples(r);
	g = calloc(rows + 1, sizeof(*g));
	ENSURE_GOTO(g != NULL, EHR_ERR_NOMEM);
	for (size_t i = 0; i < rows; i++)
		ENSURE_GOTO((g[i] = strdup(PQgetvalue(r, (int)i, 0))) != NULL, EHR_ERR_NOMEM);
	*out = g;
	*n = rows;
	g = NULL;
out:
	if (g) {
		for (size_t i = 0; i < rows; i++)
			free(g[i]);
		free(g);
	}
	PQclear(r);
	return err;
}

void policy_groups_free(char **g, size_t n)
{
	for (size_t i = 0; g && i < n; i++)
		free(g[i]);
	free(g);
}

const char *policy_contract_state(const struct policy_contract *c, int64_t now)
{
	if (c->revoked)
		return "revoked";
	if (now < c->not_before)
		return "pending";
	if (now >= c->not_after)
		return "expired";
	return "active";
}

int policy_store_list_json(void *conn, const char *patient, int64_t now, json_t **out)
{
	const char *p[] = { patient };
	void *r = NULL;
	json_t *arr = json_array();
	int err = 0;

	*out = NULL;
	ENSURE_GOTO(arr != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(ehr_db_exec(conn, &r,
	                       "SELECT " CONTRACT_COLS
	                       ", document, signature FROM policy_contracts WHERE patient = $1 "
	                       "ORDER BY created_seq",
	                       1, p));
	for (int i = 0; i < PQntuples(r); i++) {
		struct policy_contract c;
		json_t *doc = NULL, *item;
		const char *d = PQgetvalue(r, i, 13);

		GUARD_GOTO(row_to_contract(&c, r, i));
		err = ehr_json_parse(&doc, d, strlen(d), POLICY_DOC_MAX, EHR_JSON_MAX_DEPTH);
		if (err == 0) {
			item = json_pack("{s:s, s:s, s:I, s:o, s:o, s:s}", "cid", c.cid, "state",
			                 policy_contract_state(&c, now), "seq", (json_int_t)c.seq,
			                 "revoked_seq",
			                 c.revoked ? json_integer((json_int_t)c.revoked_seq) : json_null(),
			                 "contract", doc, "signature", PQgetvalue(r, i, 14));
			if (item == NULL || json_array_append_new(arr, item) != 0)
				err = ehr_error_set(EHR_ERR_NOMEM, "out of memory");
		}
		policy_contract_clear(&c);
		if (err < 0)
			goto out;
	}
	*out = arr;
	arr = NULL;
out:
	json_decref(arr);
	PQclear(r);
	return err;
}

/* --------------------------------------------------------- enforcement */

/* The server's groups as a JSON array of strings (the last column of
 * every row of load_for_server). */
static int groups_from_json(const char *text, char ***out, size_t *n)
{
	json_t *a = NULL;
	char **g = NULL;
	size_t k = 0;
	int err = 0;

	GUARD(ehr_json_parse(&a, text, strlen(text), POLICY_DOC_MAX, 2));
	ENSURE_GOTO(json_is_array(a), EHR_ERR_DB);
	g = calloc(json_array_size(a) + 1, sizeof(*g));
	ENSURE_GOTO(g != NULL, EHR_ERR_NOMEM);
	for (; k < json_array_size(a); k++) {
		const char *v = json_string_value(json_array_get(a, k));

		ENSURE_GOTO(v != NULL, EHR_ERR_DB);
		ENSURE_GOTO((g[k] = strdup(v)) != NULL, EHR_ERR_NOMEM);
	}
	*out = g;
	*n = k;
	g = NULL;
out:
	policy_groups_free(g, k);
	json_decref(a);
	return err;
}

/*
 * A server's access decision needs the patient's contracts and the
 * server's groups: one statement for both (one round trip on the request
 * path). A row per contract (or one row of NULLs when there is none), each
 * carrying the groups as a JSON array in its last column.
 */
static int load_for_server(void *conn, const char *patient, const char *server, struct policy_contract **set,
                           size_t *n, char ***groups, size_t *ngroups)
{
	const char *p[] = { patient, server };
	void *r = NULL;
	size_t rows = 0, i = 0;
	int err = 0;

	GUARD_GOTO(ehr_db_exec(conn, &r,
	                       "SELECT " CONTRACT_COLS ", g.names FROM (SELECT coalesce(json_agg(group_name "
	                       "ORDER BY group_name), '[]')::text AS names FROM policy_groups "
	                       "WHERE server_id = $2) g LEFT JOIN policy_contracts ON patient = $1 "
	                       "ORDER BY created_seq",
	                       2, p));
	ENSURE_GOTO(PQntuples(r) >= 1, EHR_ERR_DB);
	rows = PQgetisnull(r, 0, 0) ? 0 : (size_t)PQntuples(r);
	*set = calloc(rows ? rows : 1, sizeof(**set));
	ENSURE_GOTO(*set != NULL, EHR_ERR_NOMEM);
	for (i = 0; i < rows; i++)
		GUARD_GOTO(row_to_contract(&(*set)[i], r, (int)i));
	*n = rows;
	err = groups_from_json(PQgetvalue(r, 0, 13), groups, ngroups);
out:
	if (err < 0 && *set) {
		policy_contracts_free(*set, i < rows ? i + 1 : rows);
		*set = NULL;
		*n = 0;
	}
	PQclear(r);
	return err;
}

int policy_evaluate(void *conn, const struct policy_request *req, int64_t now, struct policy_decision *dec)
{
	struct policy_contract *set = NULL;
	size_t n = 0, ngroups = 0;
	char **groups = NULL;
	struct policy_request q;
	int err = 0;

	ENSURE(req != NULL && dec != NULL, EHR_ERR_INVAL);
	/* Fail closed: until a decision is made, the answer is no. */
	dec->effect = POLICY_DENY;
	dec->reason = "deny.invalid_request";
	dec->cid[0] = '\0';
	dec->break_glass = false;
	q = *req;
	if (req->patient && req->role == POLICY_ROLE_SERVER && req->requester && req->groups == NULL) {
		GUARD_GOTO(load_for_server(conn, req->patient, req->requester, &set, &n, &groups, &ngroups));
		q.groups = (const char *const *)groups;
		q.n_groups = ngroups;
	} else if (req->patient && req->role == POLICY_ROLE_SERVER) {
		GUARD_GOTO(policy_store_load(conn, req->patient, &set, &n));
	}
	if (req->role == POLICY_ROLE_SERVER && req->requester && req->groups == NULL && groups == NULL) {
		GUARD_GOTO(policy_store_groups(conn, req->requester, &groups, &ngroups));
		q.groups = (const char *const *)groups;
		q.n_groups = ngroups;
	}
	policy_decide(set, n, &q, now, dec);
out:
	policy_contracts_free(set, n);
	policy_groups_free(groups, ngroups);
	return err;
}

int policy_record(struct ledger *l, const struct policy_request *req, const struct policy_decision *dec,
                  struct ledger_receipt *rcpt)
{
	json_t *payload = NULL;
	struct ledger_receipt tmp;
	struct ledger_entry_in in;
	int err;

	GUARD(policy_decision_entry(&in, &payload, req, dec));
	err = ledger_append(l, &in, rcpt ? rcpt : &tmp);
	json_decref(payload);
	return err;
}

int policy_enforce(void *conn, struct ledger *l, const struct policy_request *req, int64_t now,
                   struct policy_decision *dec, struct ledger_receipt *rcpt)
{
	int err = policy_evaluate(conn, req, now, dec);

	if (err == 0)
		err = policy_record(l, req, dec, rcpt);
	if (err < 0)
		dec->effect = POLICY_DENY;
	return err;
}
