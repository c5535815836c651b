/*
 * routes_tiles.c - the C2SP tlog-tiles read API (docs/LEDGER.md §10):
 * GET /checkpoint, GET /tile/<L>/<N>[.p/<W>], GET /tile/entries/<N>[.p/<W>].
 *
 * Everything served is at or below the published checkpoint
 * (ledger_published): a tile past it is 404, so a mirror never sees a tree
 * the witnesses have not cosigned. The checkpoint and hash tiles carry only
 * hashes and are public; entry bundles carry pseudonymous metadata and are
 * for auditors unless [ledger] public_entries = true (then the gate lets
 * them through, gw_tiles_route_open). Hash tiles are not audit reads (they
 * reveal nothing an entry says); entry bundles are, like every audit read.
 */
#include "gateway/gateway_internal.h"
#include "ledger/ledger.h"

#include <string.h>

#define TILE_CACHE_FULL "public, max-age=31536000, immutable"
#define TILE_CACHE_PARTIAL "public, max-age=60"
#define BUNDLE_CACHE_FULL "private, max-age=31536000, immutable"
#define BUNDLE_CACHE_PARTIAL "private, max-age=60"
#define TILE_MAX_BYTES (LEDGER_TILE_WIDTH * (LEDGER_MAX_BUNDLE_ENTRY + 2))

int gw__tile_parse(struct ledger_tile *t, const char *value, bool bundle)
{
	struct ehr_buf path = EHR_BUF_INIT(128);
	int err;

	if (bundle && (err = ehr_buf_append_str(&path, "entries/")) < 0)
		goto out;
	if ((err = ehr_buf_append_str(&path, value)) < 0)
		goto out;
	err = ledger_tile_path_parse(t, (const char *)path.data, path.len);
	if (err == 0 && t->entries != bundle)
		err = ehr_error_set(EHR_ERR_PARSE, "tile level must be a decimal 0..63");
out:
	ehr_buf_free(&path);
	return err;
}

bool gw_tiles_route_open(const struct gw_req *r)
{
	const struct gw_route *route = gw_req_route(r);

	return route != NULL && strcmp(route->name, "tiles.entries") == 0 &&
	       gw_config_get_bool(gw_app_config(gw_req_app(r)), "ledger", "public_entries");
}

static void h_checkpoint(struct gw_req *r)
{
	struct ehr_buf note = EHR_BUF_INIT(16 * 1024);
	uint64_t size = 0;
	int err = ledger_published(gw_app_ledger(gw_req_app(r)), &note, &size);

	if (err == EHR_ERR_NOT_FOUND)
		err = ehr_error_set(EHR_ERR_NOT_FOUND, "no checkpoint is published yet");
	if (err < 0) {
		gw_reply_err(r, err);
	} else {
		gw_reply_header(r, "Cache-Control", "no-cache");
		gw_reply_bytes(r, 200, "text/plain; charset=utf-8", note.data, note.len);
	}
	ehr_buf_free(&note);
}

/* The tile's bytes if the published tree covers it: 0, EHR_ERR_NOT_FOUND
 * past the published size, or the store's error. */
static int tile_bytes(struct gw_req *r, const struct ledger_tile *t, struct ehr_buf *out)
{
	struct ledger *l = gw_app_ledger(gw_req_app(r));
	struct ehr_buf note = EHR_BUF_INIT(16 * 1024);
	uint64_t size = 0;
	int err = ledger_published(l, &note, &size);

	ehr_buf_free(&note);
	if (err == EHR_ERR_NOT_FOUND || (err == 0 && !ledger_tile_covered(t, size)))
		return ehr_error_set(EHR_ERR_NOT_FOUND, "no such tile at the published tree size");
	GUARD(err);
	return ledger_tile_read(l, t, out);
}

static void serve_tile(struct gw_req *r, const struct ledger_tile *t, bool bundle)
{
	struct ehr_buf out = EHR_BUF_INIT(TILE_MAX_BYTES);
	bool full = t->width == LEDGER_TILE_WIDTH;
	int err = tile_bytes(r, t, &out);

	if (err < 0) {
		gw_reply_err(r, err);
	} else {
		if (bundle && !gw_tiles_route_open(r))
			gw_reply_header(r, "Cache-Control", full ? BUNDLE_CACHE_FULL : BUNDLE_CACHE_PARTIAL);
		else
			gw_reply_header(r, "Cache-Control", full ? TILE_CACHE_FULL : TILE_CACHE_PARTIAL);
		gw_reply_bytes(r, 200, "application/octet-stream", out.data, out.len);
	}
	ehr_buf_free(&out);
}

static void h_tile(struct gw_req *r)
{
	struct ledger_tile t;

	if (gw__tile_parse(&t, gw_req_param(r, "tile"), false) < 0) {
		gw_reply_err(r, EHR_ERR_PARSE);
		return;
	}
	serve_tile(r, &t, false);
}

static void bundle(struct gw_req *r, struct gw_audit_query_info *info)
{
	struct ledger_tile t;

	(void)info;
	if (gw__tile_parse(&t, gw_req_param(r, "bundle"), true) < 0) {
		gw_reply_err(r, EHR_ERR_PARSE);
		return;
	}
	serve_tile(r, &t, true);
}

static void h_bundle(struct gw_req *r)
{
	gw_audit_query_run(r, bundle);
}

const struct gw_route gw_routes_tiles[] = {
	{ "GET", "/checkpoint", "tiles.checkpoint", 0, GW_BLOCKING, h_checkpoint, NULL },
	/* before /tile/{+tile}, which would match "entries/..." too (and refuse it) */
	{ "GET", "/tile/entries/{+bundle}", "tiles.entries", GW_ROLE_AUDITOR,
	  GW_BLOCKING | GW_CHECK_IN_HANDLER, h_bundle, NULL },
	{ "GET", "/tile/{+tile}", "tiles.tile", 0, GW_BLOCKING, h_tile, NULL },
	/* routes_receipts.c: an audit read, so checked in the handler and recorded */
	{ "GET", "/v1/receipts/{index}", "receipts.get", GW_ROLE_PATIENT | GW_ROLE_SERVER | GW_ROLE_AUDITOR,
	  GW_BLOCKING | GW_CHECK_IN_HANDLER, gw__receipt_get, NULL },
};
const size_t gw_routes_tiles_len = EHR_ARRAY_LEN(gw_routes_tiles);
