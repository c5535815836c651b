// validate_replies.js FILE... | --selftest
//
// Validates live replies against schemas/openapi.yaml. Each FILE holds one
// JSON object a line, as tests/harness/gwproc.c writes them when
// EHRGATE_TEST_REPLIES is set: {"method","path" (with query),"status",
// "content_type","body" (text) | "body_b64"}. For each reply:
//   - a path the document does not name: the test-only routes (/v1/test/)
//     are skipped; anything else must be the JSON error body (a 404/405);
//   - the status must be documented for the operation, or be one the HTTP
//     engine can give on any route (x-ehrgate-engine-statuses), whose body
//     is then the JSON error body;
//   - the content type must be one the response documents, and a JSON body
//     must validate against its schema (JSON Schema 2020-12, ajv).
// --selftest runs the checks on made-up replies, some deliberately wrong,
// and fails unless exactly the wrong ones are refused.
// Prints "ehrgate-totals: NAME N passed, M failed" for tests/run.sh.
"use strict";
const fs = require("fs");
const { load, deref, operations, validator } = require("./openapi");

function checker(doc) {
  const ops = operations(doc);
  const compile = validator(doc);
  const engine = new Set((doc["x-ehrgate-engine-statuses"] || []).map(String));
  const errorSchema = { $ref: "#/components/schemas/Error" };

  function checkBody(key, schema, mediaType, r) {
    // text, event streams, binary records: the type is the check; a body
    // too large to record is judged by its status and type alone
    if (!/json/.test(mediaType) || r.truncated) return [];
    let body;
    try {
      body = JSON.parse(r.body);
    } catch (e) {
      return [`body is not JSON (${e.message})`];
    }
    const v = compile(key, schema || {});
    return v(body) ? [] : v.errors.map((e) => `${e.instancePath || "/"} ${e.message}`);
  }

  function mediaFor(content, ct) {
    if (!content) return null;
    const base = (ct || "").split(";")[0].trim().toLowerCase();
    for (const [k, v] of Object.entries(content))
      if (k.toLowerCase() === (ct || "").toLowerCase() || k.split(";")[0].trim().toLowerCase() === base)
        return [k, v];
    return content["*/*"] ? ["*/*", content["*/*"]] : null;
  }

  // [] when the reply conforms, else the problems; null when skipped.
  return function check(r) {
    const p = r.path.split("?")[0];
    const status = String(r.status);
    const here = ops.filter((o) => o.re.test(p));
    if (here.length === 0) {
      if (p.startsWith("/v1/test/")) return null;
      if (r.status >= 400) return checkBody("error", errorSchema, "application/json", r);
      return [`${r.method} ${p} answered ${r.status} but the document has no such path`];
    }
    const o = here.find((x) => x.method === r.method || (r.method === "HEAD" && x.method === "GET"));
    if (!o) {
      if (r.status === 405) return checkBody("error", errorSchema, "application/json", r);
      return [`${r.method} ${p}: no such operation, yet the reply was ${r.status}`];
    }
    const responses = o.op.responses || {};
    let resp = deref(doc, responses[status] || responses[status[0] + "XX"]);
    if (!resp) {
      if (engine.has(status)) return checkBody("error", errorSchema, "application/json", r);
      return [`${o.op.operationId}: status ${status} is not documented`];
    }
    if (r.method === "HEAD" || !resp.content) return [];
    const m = mediaFor(resp.content, r.content_type);
    if (!m) return [`${o.op.operationId} ${status}: content type ${r.content_type} is not documented`];
    return checkBody(`${o.method} ${o.path} ${status} ${m[0]}`, m[1].schema, m[0], r).map(
      (e) => `${o.op.operationId} ${status}: ${e}`
    );
  };
}

function readReplies(files) {
  const out = [];
  for (const f of files) {
    if (!fs.existsSync(f)) continue;
    for (const line of fs.readFileSync(f, "utf8").split("\n")) {
      if (!line.trim()) continue;
      const r = JSON.parse(line);
      if (r.body === undefined && r.body_b64 !== undefined) r.body = Buffer.from(r.body_b64, "base64").toString("latin1");
      out.push(r);
    }
  }
  return out;
}

function selftest(check) {
  const ok = (method, path, status, ct, body) => ({ r: { method, path, status, content_type: ct, body }, good: true });
  const bad = (method, path, status, ct, body) => ({ r: { method, path, status, content_type: ct, body }, good: false });
  const err = '{"error":{"code":"invalid_request","message":"limit must be 1..1000"}}';
  const cases = [
    ok("GET", "/healthz", 200, "application/json", '{"status":"ok"}'),
    bad("GET", "/healthz", 200, "application/json", '{"status":"fine"}'),
    bad("GET", "/healthz", 200, "text/html", "<p>ok</p>"),
    ok("GET", "/v1/whoami", 200, "application/json", '{"role":"auditor","id":"aud-0123","cert_serial":"ab"}'),
    bad("GET", "/v1/whoami", 200, "application/json", '{"role":"auditor"}'),
    bad("GET", "/v1/whoami", 200, "application/json", '{"role":"admin","id":"x"}'),
    ok("GET", "/v1/records/0123456789abcdef0123456789abcdef", 404, "application/json", '{"error":{"code":"not_found","message":"no such record"}}'),
    bad("GET", "/v1/records/0123456789abcdef0123456789abcdef", 404, "application/json", '{"error":"not_found"}'),
    bad("GET", "/v1/records/0123456789abcdef0123456789abcdef", 418, "application/json", err),
    ok("GET", "/v1/audit/entries?limit=abc", 400, "application/json", err),
    ok("GET", "/v1/audit/entries", 200, "application/json", '{"entries":[],"next_cursor":null}'),
    bad("GET", "/v1/audit/entries", 200, "application/json", '{"entries":[{"seq":1}],"next_cursor":null}'),
    bad("GET", "/v1/audit/entries", 200, "application/json", "not json"),
    ok("GET", "/v1/ledger/checkpoint", 200, "text/plain; charset=utf-8", "o\n1\nAAAA\n\n— o sig\n"),
    ok("GET", "/nope", 404, "application/json", '{"error":{"code":"not_found","message":"no such resource"}}'),
    bad("GET", "/nope", 200, "application/json", "{}"),
    ok("DELETE", "/healthz", 405, "application/json", '{"error":{"code":"method_not_allowed","message":"m"}}'),
    ok("POST", "/v1/me/contracts", 201, "application/json", '{"cid":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","seq":4}'),
    bad("POST", "/v1/me/contracts", 201, "application/json", '{"cid":"short","seq":4}'),
  ];
  let pass = 0,
    fail = 0;
  for (const c of cases) {
    const problems = check(c.r) || [];
    const refused = problems.length > 0;
    if (refused === !c.good) pass++;
    else {
      fail++;
      console.log(`FAILED: ${c.r.method} ${c.r.path} ${c.r.status} ${c.r.body}: ` +
        (c.good ? `refused: ${problems.join("; ")}` : "accepted, but it is wrong"));
    }
  }
  console.log(`ehrgate-totals: test_openapi_validator ${pass} passed, ${fail} failed`);
  return fail === 0;
}

function main() {
  const args = process.argv.slice(2);
  const check = checker(load());
  if (args[0] === "--selftest") process.exit(selftest(check) ? 0 : 1);
  const replies = readReplies(args);
  let pass = 0,
    skipped = 0;
  const fails = new Map();
  for (const r of replies) {
    const problems = check(r);
    if (problems === null) skipped++;
    else if (problems.length === 0) pass++;
    else {
      const k = `${r.method} ${r.path.split("?")[0]} ${r.status}: ${problems.slice(0, 3).join("; ")}`;
      fails.set(k, (fails.get(k) || 0) + 1);
    }
  }
  let nfail = 0;
  for (const [k, n] of fails) {
    console.log(`FAILED (${n}x): ${k}`);
    nfail += n;
  }
  const ops = new Set(
    replies.filter((r) => check(r) !== null).map((r) => `${r.method} ${r.path.split("?")[0].replace(/\/[0-9a-f]{32}$/, "/{rid}")}`)
  );
  console.log(`${replies.length} replies recorded, ${skipped} on test-only routes skipped, ${ops.size} distinct request paths`);
  console.log(`ehrgate-totals: test_openapi_replies ${pass} passed, ${nfail} failed`);
  process.exit(nfail ? 1 : 0);
}

main();
