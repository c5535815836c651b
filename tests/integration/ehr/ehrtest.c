/* ehrtest.c - see ehrtest.h. */
#include "ehrtest.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/common.h"
#include "tests/harness/harness.h"

int ehrt_gw_setup(struct gw_proc *g, const char *store_ini)
{
	static const char *const sets[] = { "server.workers=2", "server.max_body_bytes=104857600",
		                            "database.pool_size=8", "log.level=warn", NULL };
	struct gwp_options o = {
		.sets = sets,
		.store_ini = store_ini ? store_ini : "",
		.no_test_routes = true,
		.keep_port = true,
	};

	return gwp_setup(g, &o);
}

int ehrt_principal(struct gw_proc *g, const char *role, const char *name, struct ehr_client **out)
{
	char token[512], dir[GWP_PATH + 64];
	const char *args[] = { "admin", "issue-token", "--role", role, "--name", name, NULL };
	json_t *info = NULL;
	size_t n;

	if (gwp_cmd(g, token, sizeof(token), args) != 0)
		return ehr_error_set(EHR_ERR_INTERNAL, "issue-token failed");
	n = strlen(token);
	while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r'))
		token[--n] = '\0';
	snprintf(dir, sizeof(dir), "%s/%s", g->dir, name);
	GUARD(ehr_client_register(g->base_url, g->ca_pem, token, dir, &info));
	json_decref(info);
	return ehr_client_open_profile(out, dir);
}

int ehrt_server(struct gw_proc *g, const char *name, struct ehr_client **out)
{
	return ehrt_principal(g, "server", name, out);
}

int ehrt_patient_device(struct gw_proc *g, struct ehr_client *srv, const char *external_id, const char *name,
                        char pid[160], struct ehr_client **out)
{
	json_t *body = json_pack("{s:s}", "external_id", external_id), *resp = NULL;
	const char *p = NULL, *code = NULL;
	char dir[GWP_PATH + 64];
	long status = 0;
	int err;

	err = ehr_client_json(srv, &status, &resp, "POST", "/v1/patients", body);
	json_decref(body);
	if (err < 0 || status != 201 || resp == NULL || ehr_json_get_str(resp, "patient_id", &p, 150) < 0 ||
	    ehr_json_get_str(resp, "enrolment_code", &code, 200) < 0) {
		json_decref(resp);
		return ehr_error_set(EHR_ERR_INTERNAL, "patient create: status %ld", status);
	}
	snprintf(pid, 160, "%s", p);
	snprintf(dir, sizeof(dir), "%s/%s", g->dir, name);
	err = ehr_client_enroll(g->base_url, g->ca_pem, pid, code, NULL, dir);
	json_decref(resp);
	GUARD(err);
	return ehr_client_open_profile(out, dir);
}

int ehrt_patient(struct gw_proc *g, struct ehr_client *srv, const char *name, char pid[160],
                 struct ehr_client **out)
{
	return ehrt_patient_device(g, srv, name, name, pid, out);
}

int ehrt_grant(struct gw_proc *g, const char *patient_name, const char *server_id, const char *actions)
{
	char dir[GWP_PATH + 64], out[8192];
	const char *argv[] = { EHRCTL_BIN,  "--dir",     dir,         "contract", "create",
		               "--server",  server_id,   "--actions", actions,    "--all",
		               "--purpose", "treatment", "--days",    "1",        NULL };
	int rc;

	snprintf(dir, sizeof(dir), "%s/%s", g->dir, patient_name);
	rc = ehr_test_run(out, sizeof(out), argv);
	if (rc != 0)
		return ehr_error_set(EHR_ERR_INTERNAL, "ehrctl contract create exited %d", rc);
	return 0;
}

void ehrt_fmt(char *out, size_t cap, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(out, cap, f, ap);
	va_end(ap);
}

int ehrt_sh(char *out, size_t cap, const char *cmd)
{
	FILE *f = popen(cmd, "r");
	size_t got;
	int st;

	if (f == NULL)
		return -1;
	got = fread(out, 1, cap - 1, f);
	out[got] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int ehrt_raw_store(struct obj_store **out, bool s3, const char *fs_root)
{
	struct obj_store_config c = { 0 };
	char prefix[32];

	if (s3) {
		snprintf(prefix, sizeof(prefix), "t%d/", (int)getpid());
		c.key_prefix = prefix;
		c.backend = OBJ_BACKEND_S3;
		c.s3_endpoint = ehr_test_env("EHRGATE_TEST_S3");
		c.s3_bucket = ehr_test_env("EHRGATE_TEST_S3_BUCKET");
		c.s3_region = ehr_test_env("EHRGATE_TEST_S3_REGION");
		c.s3_access_key = ehr_test_env("EHRGATE_TEST_S3_ACCESS_KEY");
		c.s3_secret_key = ehr_test_env("EHRGATE_TEST_S3_SECRET_KEY");
	} else {
		c.backend = OBJ_BACKEND_FS;
		c.fs_path = fs_root;
	}
	return obj_store_open(out, &c);
}

long long ehrt_q1(const struct gw_proc *g, const char *f, ...)
{
	char sql[4096];
	va_list ap;

	va_start(ap, f);
	vsnprintf(sql, sizeof(sql), f, ap);
	va_end(ap);
	return gwp_db_scalar(g, sql);
}

long ehrt_put(struct ehr_client *c, const char *pid, const char *cat, const uint8_t *body, size_t n,
              char rid[CLOUD_RID_HEX])
{
	char path[256], cath[128];
	const char *hdrs[3] = { "Content-Type: text/plain", NULL, NULL };
	struct ehr_buf resp = EHR_BUF_INIT(1 << 16);
	const char *r = NULL;
	json_t *j = NULL;
	long status = 0;

	ehrt_fmt(path, sizeof(path), "/v1/patients/%s/records", pid);
	if (cat) {
		ehrt_fmt(cath, sizeof(cath), "X-EHR-Category: %s", cat);
		hdrs[1] = cath;
	}
	if (ehr_client_request(c, &status, &resp, "POST", path, hdrs, body, n, NULL, NULL) < 0)
		status = 0;
	rid[0] = '\0';
	if (status == 201 && ehr_json_parse(&j, resp.data, resp.len, 1 << 20, 8) == 0 &&
	    ehr_json_get_str(j, "record_id", &r, 40) == 0)
		ehrt_fmt(rid, CLOUD_RID_HEX, "%s", r);
	json_decref(j);
	ehr_buf_free(&resp);
	return status;
}

void ehrt_wrapped_hex(const struct gw_proc *g, const char *rid, char *out, size_t cap)
{
	char sql[256];
	PGresult *r;
	PGconn *c = PQconnectdb(g->db.super_ci);

	ehrt_fmt(sql, sizeof(sql),
	         "SELECT coalesce(encode(wrapped_key, 'hex'), '') FROM ehr_records WHERE record_id = '%s'",
	         rid);
	r = PQexec(c, sql);
	ehrt_fmt(out, cap, "%s",
	         PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	PQfinish(c);
}

long long ehrt_rows_holding(const struct gw_proc *g, const char *hex)
{
	char sql[2048];

	ehrt_fmt(sql, sizeof(sql),
	         "SELECT sum(n) FROM (SELECT (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) "
	         "AS n FROM %%I.%%I t WHERE t::text LIKE %%L', table_schema, table_name, '%%%s%%'), false, "
	         "true, '')))[1]::text::bigint AS n FROM information_schema.tables WHERE table_schema NOT IN "
	         "('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE') s",
	         hex);
	return gwp_db_scalar(g, sql);
}

bool ehrt_object_exists(struct obj_store *raw, const char *rid)
{
	uint8_t r[CLOUD_RID_LEN];
	char key[128];
	uint64_t size = 0;

	if (cloud_rid_parse(r, rid) < 0 || cloud_record_key(key, sizeof(key), r) < 0)
		return true;
	return obj_store_head(raw, key, &size) == 0;
}

long ehrt_post_basis(struct ehr_client *c, const char *path, const char *basis, json_t **resp)
{
	json_t *body = json_pack("{s:s}", "basis", basis), *r = NULL;
	long status = 0;

	if (ehr_client_json(c, &status, &r, "POST", path, body) < 0)
		status = 0;
	json_decref(body);
	if (resp)
		*resp = r;
	else
		json_decref(r);
	return status;
}

const char *ehrt_err_str(const json_t *resp, const char *key)
{
	return json_string_value(json_object_get(json_object_get(resp, "error"), key));
}

long ehrt_get(struct ehr_client *c, const char *rid, struct ehr_buf *out)
{
	struct ehr_buf tmp = EHR_BUF_INIT(1 << 20);
	char path[128];
	long status = 0;

	ehrt_fmt(path, sizeof(path), "/v1/records/%s", rid);
	if (ehr_client_request(c, &status, out ? out : &tmp, "GET", path, NULL, NULL, 0, NULL, NULL) < 0)
		status = 0;
	ehr_buf_free(&tmp);
	return status;
}
