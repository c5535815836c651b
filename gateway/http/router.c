/*
 * router.c - match "METHOD /raw/path" against the route tables.
 *
 * A pattern is a '/'-separated list of segments; "{name}" matches exactly
 * one non-empty segment, whose percent-decoded value becomes a parameter.
 * Literal segments compare byte for byte against the raw segment. Decoded
 * parameters may not contain NUL or '/', so an id can never smuggle a path.
 * A last segment "{+name}" (RFC 6570 reserved expansion) matches the rest
 * of the path, one or more non-empty segments: its value is the segments
 * decoded one by one (an encoded '/' is still refused) and joined by '/'
 * (C2SP tlog-tiles paths, whose index spans segments).
 */
#include "gateway/http/http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_MAX_SEGMENTS 16

struct seg {
	const char *text; /* literal text or parameter name, into the pattern */
	size_t len;
	bool param;
	bool rest; /* "{+name}": the rest of the path */
};

struct croute {
	const struct gw_route *route;
	size_t nseg;
	struct seg seg[GW_MAX_SEGMENTS];
};

struct gw_router {
	size_t n;
	struct croute *routes;
};

static int split_pattern(struct croute *cr, const char *pattern)
{
	const char *p = pattern;

	ENSURE(p && p[0] == '/', EHR_ERR_INVAL);
	cr->nseg = 0;
	if (strcmp(p, "/") == 0)
		return 0;
	while (*p == '/') {
		const char *s = p + 1, *e = strchr(s, '/');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		struct seg *g;

		if (cr->nseg >= GW_MAX_SEGMENTS || len == 0)
			return ehr_error_set(EHR_ERR_INVAL, "bad route pattern %s", pattern);
		g = &cr->seg[cr->nseg++];
		if (s[0] == '{') {
			if (len < 3 || s[len - 1] != '}' || memchr(s + 1, '{', len - 2) ||
			    memchr(s + 1, '}', len - 2))
				return ehr_error_set(EHR_ERR_INVAL, "bad parameter in route pattern %s",
				                     pattern);
			g->param = true;
			g->rest = s[1] == '+';
			g->text = s + 1 + g->rest;
			g->len = len - 2 - g->rest;
			if (g->len == 0 || (g->rest && s[len] != '\0'))
				return ehr_error_set(EHR_ERR_INVAL, "bad parameter in route pattern %s",
				                     pattern);
		} else {
			if (memchr(s, '{', len) || memchr(s, '}', len))
				return ehr_error_set(EHR_ERR_INVAL, "bad route pattern %s", pattern);
			g->param = false;
			g->rest = false;
			g->text = s;
			g->len = len;
		}
		p = s + len;
	}
	return 0;
}

int gw_router_new(struct gw_router **out, const struct gw_route *const *tables, const size_t *lens,
                  size_t ntables)
{
	struct gw_router *rt = calloc(1, sizeof(*rt));
	size_t total = 0;
	int err = 0;

	ENSURE(rt != NULL, EHR_ERR_NOMEM);
	for (size_t t = 0; t < ntables; t++)
		total += lens[t];
	rt->routes = calloc(total ? total : 1, sizeof(*rt->routes));
	ENSURE_GOTO(rt->routes != NULL, EHR_ERR_NOMEM);
	for (size_t t = 0; t < ntables; t++) {
		for (size_t i = 0; i < lens[t]; i++) {
			const struct gw_route *r = &tables[t][i];
			struct croute *cr = &rt->routes[rt->n];
			if (r->method == NULL || r->pattern == NULL || r->name == NULL || r->fn == NULL) {
				err = ehr_error_set(EHR_ERR_INVAL, "route table %zu entry %zu is incomplete",
				                    t, i);
				goto out;
			}
			cr->route = r;
			GUARD_GOTO(split_pattern(cr, r->pattern));
			for (size_t j = 0; j < rt->n; j++)
				if (strcmp(rt->routes[j].route->method, r->method) == 0 &&
				    strcmp(rt->routes[j].route->pattern, r->pattern) == 0) {
					err = ehr_error_set(EHR_ERR_CONFLICT, "route %s %s is defined twice",
					                    r->method, r->pattern);
					goto out;
				}
			rt->n++;
		}
	}
	*out = rt;
	return 0;
out:
	gw_router_free(rt);
	return err;
}

void gw_router_free(struct gw_router *rt)
{
	if (rt == NULL)
		return;
	free(rt->routes);
	free(rt);
}

/* Every {parameter} of every route must be one the application's id
 * validator knows: an id segment no validator checks cannot be added by
 * accident. */
int gw_router_check_params(const struct gw_router *rt, gw_param_fn check)
{
	for (size_t i = 0; i < rt->n; i++) {
		const struct croute *cr = &rt->routes[i];
		for (size_t j = 0; j < cr->nseg; j++) {
			char name[64];
			if (!cr->seg[j].param)
				continue;
			if (check == NULL || cr->seg[j].len >= sizeof(name))
				return ehr_error_set(EHR_ERR_CONFIG, "route %s %s: no id validator",
				                     cr->route->method, cr->route->pattern);
			memcpy(name, cr->seg[j].text, cr->seg[j].len);
			name[cr->seg[j].len] = '\0';
			if (check(name, NULL, true) < 0)
				return ehr_error_set(EHR_ERR_CONFIG,
				                     "route %s %s: parameter {%s} has no id validator",
				                     cr->route->method, cr->route->pattern, name);
		}
	}
	return 0;
}

size_t gw_router_count(const struct gw_router *rt)
{
	return rt->n;
}

const struct gw_route *gw_router_route(const struct gw_router *rt, size_t i)
{
	return i < rt->n ? rt->routes[i].route : NULL;
}

/* Percent-decode len bytes of s (a path segment or a query name or
 * value); NUL and bad escapes are refused, and '/' too when !slash_ok;
 * plus_space turns '+' into ' ' (application/x-www-form-urlencoded). */
char *gw__pct_decode(const char *s, size_t len, bool slash_ok, bool plus_space)
{
	char *out = malloc(len + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			uint8_t b;
			if (i + 2 >= len || ehr_hex_decode(&b, 1, s + i + 1, 2) < 0)
				goto bad;
			c = (char)b;
			if (c == '\0' || (c == '/' && !slash_ok))
				goto bad;
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* The segments of a "{+name}" parameter, each decoded (no encoded '/'),
 * joined by '/'. */
static char *rest_decode(const char *const *segs, const size_t *lens, size_t n)
{
	size_t total = 0, o = 0;
	char *out;

	for (size_t i = 0; i < n; i++)
		total += lens[i] + 1;
	if ((out = malloc(total + 1)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char *d = gw__pct_decode(segs[i], lens[i], false, false);
		size_t dl;

		if (d == NULL) {
			free(out);
			return NULL;
		}
		dl = strlen(d);
		if (i)
			out[o++] = '/';
		memcpy(out + o, d, dl);
		o += dl;
		free(d);
	}
	out[o] = '\0';
	return out;
}

void gw_match_clear(struct gw_match *m)
{
	for (size_t i = 0; i < m->nparams; i++)
		free(m->params[i].value);
	memset(m, 0, sizeof(*m));
}

enum gw_route_result gw_router_match(const struct gw_router *rt, const char *method, const char *raw_path,
                                     struct gw_match *m, char *allow, size_t allow_cap)
{
	const char *segs[GW_MAX_SEGMENTS];
	size_t lens[GW_MAX_SEGMENTS], nseg = 0, allow_len = 0;
	const char *p = raw_path;
	bool path_matched = false;

	memset(m, 0, sizeof(*m));
	if (allow && allow_cap)
		allow[0] = '\0';
	if (p == NULL || p[0] != '/')
		return GW_ROUTE_BAD_PATH;
	if (strcmp(p, "/") != 0) {
		while (*p == '/') {
			const char *s = p + 1, *e = strchr(s, '/');
			size_t len = e ? (size_t)(e - s) : strlen(s);
			if (nseg >= GW_MAX_SEGMENTS)
				return GW_ROUTE_NOT_FOUND;
			segs[nseg] = s;
			lens[nseg++] = len;
			p = s + len;
		}
	}
	for (size_t i = 0; i < rt->n; i++) {
		const struct croute *cr = &rt->routes[i];
		bool rest = cr->nseg > 0 && cr->seg[cr->nseg - 1].rest;
		bool ok = rest ? nseg >= cr->nseg : cr->nseg == nseg;

		for (size_t j = 0; ok && j < nseg; j++) {
			if (j >= cr->nseg - 1 && rest) {
				ok = lens[j] > 0;
				continue;
			}
			if (cr->seg[j].param)
				ok = lens[j] > 0;
			else
				ok = lens[j] == cr->seg[j].len &&
				     memcmp(segs[j], cr->seg[j].text, lens[j]) == 0; /* not secret */
		}
		if (!ok)
			continue;
		if (strcmp(cr->route->method, method) != 0) {
			path_matched = true;
			if (allow && !strstr(allow, cr->route->method)) {
				/* A method that does not fit is left out whole, never cut. */
				if (ehr_fmt(allow + allow_len, allow_cap - allow_len, "%s%s",
				            allow_len ? ", " : "", cr->route->method) == 0)
					allow_len += strlen(allow + allow_len);
			}
			continue;
		}
		m->route = cr->route;
		m->route_index = (int)i;
		for (size_t j = 0; j < cr->nseg; j++) {
			if (!cr->seg[j].param)
				continue;
			if (m->nparams >= GW_MAX_PARAMS) {
				gw_match_clear(m);
				return GW_ROUTE_BAD_PATH;
			}
			m->params[m->nparams].name = cr->seg[j].text;
			m->params[m->nparams].name_len = cr->seg[j].len;
			m->params[m->nparams].value =
			        cr->seg[j].rest ? rest_decode(segs + j, lens + j, nseg - j)
			                        : gw__pct_decode(segs[j], lens[j], false, false);
			m->nparams++;
			if (m->params[m->nparams - 1].value == NULL) {
				gw_match_clear(m);
				return GW_ROUTE_BAD_PATH;
			}
		}
		return GW_ROUTE_FOUND;
	}
	return path_matched ? GW_ROUTE_BAD_METHOD : GW_ROUTE_NOT_FOUND;
}
