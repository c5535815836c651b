/*
 * query.c - a request's query string, and the checks every route gets
 * before its handler: the query names only parameters the route declares
 * (struct gw_route.query), each at most once, and every path and query
 * value passes the application's one id validator (gw_param_fn).
 *
 * Why strict: a filter the gateway ignores (a misspelt `?tpye=`, a second
 * `limit=`) silently widens or changes an audit query; a refused request
 * names the parameter, so the client learns its mistake at once.
 */
#include "gateway/http/http_internal.h"

#include <stdlib.h>
#include <string.h>

void gw__query_free(struct gw_req *r)
{
	for (size_t i = 0; i < r->nquery; i++) {
		free(r->query[i].name);
		free(r->query[i].value);
	}
	free(r->query);
	r->query = NULL;
	r->nquery = 0;
}

/* A name we may repeat in a message: short, and of URL-safe characters
 * only (never a control character, a quote or anything that could be PHI
 * pasted into the wrong place). */
static bool name_printable(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 40)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

static int query_refuse(struct gw_req *r, const char *what, const char *name)
{
	int rc = name && name_printable(name)
	                 ? ehr_fmt(r->query_msg, sizeof(r->query_msg), "query parameter '%s' %s", name, what)
	                 : ehr_fmt(r->query_msg, sizeof(r->query_msg), "a query parameter %s", what);

	if (rc < 0) /* never a cut message */
		memcpy(r->query_msg, "malformed query", sizeof("malformed query"));
	r->query_err = EHR_ERR_INVAL;
	return r->query_err;
}

/* One "name=value" (or "name") piece of the query string. */
static int query_add(struct gw_req *r, const char *s, size_t len)
{
	const char *eq = memchr(s, '=', len);
	size_t nlen = eq ? (size_t)(eq - s) : len;
	struct gw_qparam *q;

	if (nlen == 0)
		return query_refuse(r, "has no name", NULL);
	if (r->nquery >= GW_MAX_QUERY)
		return query_refuse(r, "is one too many", NULL);
	q = &r->query[r->nquery];
	q->name = gw__pct_decode(s, nlen, true, true);
	if (q->name == NULL)
		return query_refuse(r, "name is malformed", NULL);
	q->value = eq ? gw__pct_decode(eq + 1, len - nlen - 1, true, true) : strdup("");
	r->nquery++;
	if (q->value == NULL)
		return query_refuse(r, "is malformed", q->name);
	return 0;
}

/* Split the raw query at '&' and percent-decode each name and value
 * (once per request; the result, or the reason it failed, is kept). */
int gw__query_parse(struct gw_req *r)
{
	const char *p = r->raw_query;

	if (r->query_parsed)
		return r->query_err;
	r->query_parsed = true;
	if (p == NULL || *p == '\0')
		return 0;
	r->query = calloc(GW_MAX_QUERY, sizeof(*r->query));
	if (r->query == NULL) {
		memcpy(r->query_msg, "out of memory", sizeof("out of memory"));
		return r->query_err = EHR_ERR_NOMEM;
	}
	for (;;) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len == 0)
			return query_refuse(r, "is empty (a stray '&')", NULL);
		if (query_add(r, p, len) < 0)
			return r->query_err;
		if (amp == NULL)
			return 0;
		p = amp + 1;
	}
}

/* Is `name` one of the route's space-separated query names? */
static bool route_accepts(const struct gw_route *route, const char *name)
{
	const char *p = route->query;
	size_t n = strlen(name);

	while (p && *p) {
		const char *e = strchr(p, ' ');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == n && memcmp(p, name, n) == 0) /* not secret */
			return true;
		p = e ? e + 1 : p + len;
	}
	return false;
}

static int refuse(struct gw_req *r, const char *msg)
{
	gw_reply_error(r, 400, "invalid_request", "%s", msg);
	return 1;
}

/* The route's declared query names, each at most once. */
static int check_query_names(struct gw_req *r)
{
	if (gw__query_parse(r) < 0)
		return refuse(r, r->query_msg);
	for (size_t i = 0; i < r->nquery; i++) {
		const char *name = r->query[i].name;
		if (!route_accepts(r->route, name)) {
			query_refuse(r, "is not one this route accepts", name);
			return refuse(r, r->query_msg);
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(r->query[j].name, name) == 0) {
				query_refuse(r, "is repeated", name);
				return refuse(r, r->query_msg);
			}
	}
	return 0;
}

int gw__req_check(struct gw_req *r)
{
	gw_param_fn check = r->srv->opt->param_check;

	if (check_query_names(r) != 0)
		return 1;
	if (check == NULL)
		return 0;
	ehr_error_clear();
	for (size_t i = 0; i < r->match.nparams; i++) {
		const struct gw_param *p = &r->match.params[i];
		char name[64];
		if (p->name_len >= sizeof(name))
			return refuse(r, "malformed path");
		memcpy(name, p->name, p->name_len);
		name[p->name_len] = '\0';
		if (check(name, p->value, true) < 0)
			return refuse(r, *ehr_error_msg() ? ehr_error_msg() : "malformed id in the path");
	}
	for (size_t i = 0; i < r->nquery; i++)
		if (check(r->query[i].name, r->query[i].value, false) < 0)
			return refuse(r, *ehr_error_msg() ? ehr_error_msg() : "malformed query parameter");
	ehr_error_clear();
	return 0;
}

int gw_req_check(struct gw_req *r)
{
	return gw__req_check(r);
}

const char *gw_req_query(const struct gw_req *r, const char *name)
{
	struct gw_req *m = (struct gw_req *)r; /* lazily parsed cache */

	if (gw__query_parse(m) < 0)
		return NULL;
	for (size_t i = 0; i < m->nquery; i++)
		if (strcmp(m->query[i].name, name) == 0)
			return m->query[i].value;
	return NULL;
}
