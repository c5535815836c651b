// check_routes.js EHRGATE_BIN - schemas/openapi.yaml names exactly the
// routes `ehrgate routes` prints (the router's tables, production only):
// each (method, path) in both, operationId = the route's name, the
// security of each operation matches the route's roles, and its query
// parameters are exactly those the route declares (the core refuses others). Prints
// "ehrgate-totals: test_openapi_routes N passed, M failed" for tests/run.sh.
"use strict";
const { execFileSync } = require("child_process");
const { load, deref, operations } = require("./openapi");

const bin = process.argv[2] || process.env.EHRGATE_BIN;
const doc = load(process.argv[3]);
const routes = execFileSync(bin, ["routes"], { encoding: "utf8" })
  .split("\n")
  .filter(Boolean)
  .map((l) => {
    const [method, path, name, roles, query] = l.split(" ");
    return { method, path, name, roles: roles.split(","), query: !query || query === "-" ? [] : query.split(",") };
  });
const ops = operations(doc);
const key = (m, p) => m + " " + p;
const byKey = new Map(ops.map((o) => [key(o.method, o.path), o]));
const routeKeys = new Set(routes.map((r) => key(r.method, r.path)));
let pass = 0;
const fail = [];

for (const r of routes) {
  const o = byKey.get(key(r.method, r.path));
  if (!o) {
    fail.push(`route ${r.method} ${r.path} (${r.name}) is not in schemas/openapi.yaml`);
    continue;
  }
  const problems = [];
  if (o.op.operationId !== r.name) problems.push(`operationId ${o.op.operationId}, the router says ${r.name}`);
  const sec = o.op.security !== undefined ? o.op.security : doc.security || [];
  const schemes = new Set(sec.flatMap((req) => Object.keys(req)));
  const pub = r.roles.includes("public");
  const wantMtls = r.roles.includes("server") || r.roles.includes("auditor");
  const wantDpop = r.roles.includes("patient");
  if (pub && sec.length) problems.push("public route with a security requirement");
  if (!pub && !sec.length) problems.push("route needs a credential but has no security requirement");
  if (wantMtls !== schemes.has("mutualTLS")) problems.push(`mutualTLS ${schemes.has("mutualTLS")}, roles ${r.roles}`);
  if (wantDpop !== (schemes.has("DPoP") && schemes.has("DPoPProof")))
    problems.push(`DPoP ${schemes.has("DPoP")}, roles ${r.roles}`);
  const params = [...(doc.paths[o.path].parameters || []), ...(o.op.parameters || [])].map((p) => deref(doc, p));
  const docQuery = params.filter((p) => p && p.in === "query").map((p) => p.name).sort();
  if (JSON.stringify(docQuery) !== JSON.stringify([...r.query].sort()))
    problems.push(`query parameters ${docQuery.join(",") || "none"}, the router accepts ${r.query.join(",") || "none"}`);
  const roles = o.op["x-ehrgate-roles"];
  if (!pub && JSON.stringify([...(roles || [])].sort()) !== JSON.stringify([...r.roles].sort()))
    problems.push(`x-ehrgate-roles ${roles}, the router says ${r.roles}`);
  if (problems.length) fail.push(`${r.method} ${r.path}: ${problems.join("; ")}`);
  else pass++;
}
for (const o of ops) {
  if (!routeKeys.has(key(o.method, o.path)))
    fail.push(`schemas/openapi.yaml names ${o.method} ${o.path}, which the router does not have`);
}
for (const f of fail) console.log("FAILED: " + f);
console.log(`${routes.length} routes in the router, ${ops.length} operations in the document`);
console.log(`ehrgate-totals: test_openapi_routes ${pass} passed, ${fail.length} failed`);
process.exit(fail.length ? 1 : 0);
