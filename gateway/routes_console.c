/*
 * routes_console.c - the web console at /console/ (docs/CONSOLE.md): the
 * files console/build.mjs bundled at build time, served from memory.
 *
 * Every reply carries a strict Content-Security-Policy: scripts, styles,
 * fetches and the SSE stream only from this origin, no inline script, no
 * plugin, no framing. index.html is revalidated on every load; the other
 * files have content-hashed names, so they are cached for a year and a new
 * build is picked up by the new index.html. The console is public (it is
 * code, not data): what it shows comes from the API routes, each with its
 * own credential (mutual TLS for auditors, DPoP for patients).
 */
#include "gateway/gateway_internal.h"

#include <string.h>

#define GW_CONSOLE_CSP                                                                                  \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " \
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

/* The asset named `name`, or NULL. */
static const struct gw_console_asset *console_find(const char *name)
{
	for (size_t i = 0; i < gw_console_assets_len; i++)
		if (strcmp(gw_console_assets[i].name, name) == 0)
			return &gw_console_assets[i];
	return NULL;
}

static void console_security_headers(struct gw_req *r)
{
	gw_reply_header(r, "Content-Security-Policy", GW_CONSOLE_CSP);
	gw_reply_header(r, "X-Content-Type-Options", "nosniff");
	gw_reply_header(r, "Referrer-Policy", "no-referrer");
	gw_reply_header(r, "X-Frame-Options", "DENY");
	gw_reply_header(r, "Cross-Origin-Opener-Policy", "same-origin");
	gw_reply_header(r, "Cross-Origin-Resource-Policy", "same-origin");
}

static void console_reply(struct gw_req *r, const char *name)
{
	const struct gw_console_asset *a = console_find(name);

	if (a == NULL) {
		gw_reply_error(r, 404, "not_found", "no such console file");
		return;
	}
	console_security_headers(r);
	gw_reply_header(r, "Cache-Control",
	                a->immutable ? "public, max-age=31536000, immutable" : "no-cache");
	gw_reply_bytes(r, 200, a->content_type, a->data, a->len);
}

/* GET /console: the console lives at /console/ (its relative links need
 * the slash). */
static void h_console_redirect(struct gw_req *r)
{
	static const char body[] = "see /console/\n";

	gw_reply_header(r, "Location", "/console/");
	gw_reply_bytes(r, 301, "text/plain; charset=utf-8", body, sizeof(body) - 1);
}

static void h_console_index(struct gw_req *r)
{
	console_reply(r, "index.html");
}

static void h_console_asset(struct gw_req *r)
{
	console_reply(r, gw_req_param(r, "asset"));
}

const struct gw_route gw_routes_console[] = {
	{ "GET", "/console", "console.redirect", 0, 0, h_console_redirect, NULL },
	{ "GET", "/console/", "console.index", 0, 0, h_console_index, NULL },
	{ "GET", "/console/{asset}", "console.asset", 0, 0, h_console_asset, NULL },
};
const size_t gw_routes_console_len = EHR_ARRAY_LEN(gw_routes_console);
