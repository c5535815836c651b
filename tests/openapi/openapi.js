// openapi.js - schemas/openapi.yaml for the two checks of tests/openapi:
// the document, its operations by (method, path template), and a JSON
// Schema 2020-12 validator (ajv) for each operation's response bodies, with
// the document's own $refs and schemas/json/*.schema.json resolved.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const Ajv2020 = require("ajv/dist/2020").default;

const SCHEMAS = path.resolve(__dirname, "../../schemas");
const DOC_ID = "https://ehrgate.local/schemas/openapi.yaml";
const BASE = "https://ehrgate.local/schemas/";
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function load(file = path.join(SCHEMAS, "openapi.yaml")) {
  return YAML.parse(fs.readFileSync(file, "utf8"));
}

// An OpenAPI-level reference ("#/components/responses/X") to its object.
function deref(doc, o) {
  let seen = 0;
  while (o && typeof o.$ref === "string" && o.$ref.startsWith("#/") && seen++ < 16) {
    o = o.$ref
      .slice(2)
      .split("/")
      .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
      .reduce((a, k) => (a === undefined ? undefined : a[k]), doc);
  }
  return o;
}

// Every JSON Schema $ref made absolute, so any sub-schema compiles alone.
function absolutize(v) {
  if (Array.isArray(v)) return v.map(absolutize);
  if (v === null || typeof v !== "object") return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === "$ref" && typeof x === "string" && !/^[a-z]+:/.test(x))
      out[k] = x.startsWith("#") ? DOC_ID + x : new URL(x, DOC_ID).href;
    else out[k] = absolutize(x);
  }
  return out;
}

// [{method, path, re, op}] for every operation; re matches a concrete path
// ({name} = one segment, {+name} = the rest of the path, as the router matches).
function operations(doc) {
  const ops = [];
  for (const [p, item] of Object.entries(doc.paths || {})) {
    for (const m of METHODS) {
      if (!item[m]) continue;
      const esc = (s) => s.replace(/[.*+?^$()|[\]\\]/g, "\\$&");
      const re = new RegExp(
        "^" + p.split(/(\{\+?[^}]+\})/).map((s, i) => (i % 2 ? (s[1] === "+" ? "[^/].*" : "[^/]+") : esc(s))).join("") + "$"
      );
      ops.push({ method: m.toUpperCase(), path: p, re, op: item[m] });
    }
  }
  return ops;
}

function validator(doc) {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema(absolutize(doc), DOC_ID);
  for (const f of fs.readdirSync(path.join(SCHEMAS, "json"))) {
    if (!f.endsWith(".schema.json")) continue;
    const s = JSON.parse(fs.readFileSync(path.join(SCHEMAS, "json", f), "utf8"));
    delete s.$id; // known by its place next to openapi.yaml, as the document refers to it
    delete s.$schema;
    ajv.addSchema(s, BASE + "json/" + f);
  }
  const cache = new Map();
  return (key, schema) => {
    if (!cache.has(key)) cache.set(key, ajv.compile(absolutize(schema)));
    return cache.get(key);
  };
}

module.exports = { load, deref, operations, validator, METHODS };
