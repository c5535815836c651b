'use strict';
// balp.js - the IHE BALP constraints of each AuditEvent profile ehrgate
// declares, written from the BALP FSH sources (IHE/ITI.BasicAudit,
// input/fsh/*.fsh, version 1.1.5-current): Read/PatientRead,
// Create/PatientCreate, Update/PatientUpdate, Delete/PatientDelete, Query,
// AuthZconsent, OAUTHaccessTokenUse.Minimal; and the DICOM PS3.15 login
// pattern (110114 User Authentication / 110122 Login) for events that
// declare no profile.
//
// One deliberate relaxation, stated in docs/AUDIT.md §1: BALP makes
// agent.network 1..1 for the client and server slices. ehrgate's ledger
// records pseudonyms, never network addresses (a patient's device address
// is personal data that an append-only ledger could never erase), so
// network is checked as 0..1 (present => address non-empty).
//
// check(resource) returns a list of error strings (empty: conforms).

const BALP = 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/';
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const EVT = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const REST = 'http://hl7.org/fhir/restful-interaction';
const ETYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const PART = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
const ROLECLASS = 'http://terminology.hl7.org/CodeSystem/v3-RoleClass';
const SECROLE = 'http://terminology.hl7.org/CodeSystem/extra-security-role-type';
const PROV = 'http://terminology.hl7.org/CodeSystem/provenance-participant-type';
const RTYPES = 'http://hl7.org/fhir/resource-types';
const AUTHZ = 'https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType';
const UAT = 'https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes';
const OUTCOME0 = '0';

const is = (c, system, code) => !!c && c.system === system && c.code === code;
const ccHas = (cc, system, code) => !!cc && Array.isArray(cc.coding) && cc.coding.some((c) => is(c, system, code));
const inSet = (c, list) => list.some(([s, k]) => is(c, s, k));
const ccInSet = (cc, list) => !!cc && Array.isArray(cc.coding) && cc.coding.some((c) => inSet(c, list));

const READS = [[REST, 'read'], [REST, 'vread']];
const CREATES = [[REST, 'create']];
const UPDATES = [[REST, 'update'], [REST, 'patch']];
const DELETES = [[REST, 'delete']];
const SEARCHES = [[REST, 'search'], [REST, 'search-type'], [REST, 'search-system']];
const REST_OBJECT_ROLES = [[OROLE, '4'], [OROLE, '3'], [OROLE, '20']];
const DATA_SOURCES = [[PART, 'AUT'], [PART, 'INF'], [PART, 'CST']];

function deepEqual(a, b) {
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = canon(v[k]);
    return o;
  }
  return v;
}

// A BALP agent slice: the agents whose type matches, with the cardinality
// and the element rules of the slice.
function agentSlice(ev, errs, name, system, code, rule) {
  const got = (ev.agent || []).filter((a) => ccHas(a.type, system, code));
  const [min, max] = rule.card;
  if (got.length < min || got.length > max)
    errs.push(`agent[${name}] (${code}): ${got.length} present, wanted ${min}..${max === Infinity ? '*' : max}`);
  for (const a of got) {
    if (!a.who) errs.push(`agent[${name}].who is required`);
    if (rule.requestor !== undefined && a.requestor !== rule.requestor)
      errs.push(`agent[${name}].requestor must be ${rule.requestor}`);
    for (const k of rule.absent || []) if (a[k] !== undefined) errs.push(`agent[${name}].${k} must be absent`);
    if (a.network !== undefined && !(a.network && a.network.address))
      errs.push(`agent[${name}].network without an address`);
    if (rule.policyPrefix && !(Array.isArray(a.policy) && a.policy.length === 1 && a.policy[0].startsWith(rule.policyPrefix)))
      errs.push(`agent[${name}].policy must be one "${rule.policyPrefix}..." value`);
    if (rule.auditSource && !deepEqual(a.who, (ev.source || {}).observer))
      errs.push(`agent[${name}].who must equal source.observer (val-audit-source)`);
  }
  return got;
}

function subtypeSlice(ev, errs, name, set) {
  const n = (ev.subtype || []).filter((c) => inSet(c, set)).length;
  if (n !== 1) errs.push(`subtype[${name}]: ${n} present, wanted 1`);
}

function isPatientRef(r) {
  return !!r && (r.type === 'Patient' || (typeof r.reference === 'string' && /(^|\/)Patient\/[^/]+$/.test(r.reference)));
}

function patientEntity(ev, errs) {
  const p = (ev.entity || []).filter((e) => is(e.type, ETYPE, '1'));
  if (p.length !== 1) {
    errs.push(`entity[patient]: ${p.length} present, wanted 1`);
    return;
  }
  if (!is(p[0].role, OROLE, '1')) errs.push('entity[patient].role must be object-role#1');
  if (!isPatientRef(p[0].what)) errs.push('entity[patient].what must be a Reference(Patient)');
}

// The REST profiles: Read, Create, Update, Delete, Query (and Patient*).
function restProfile(ev, errs, kind, withPatient) {
  const spec = {
    read: { sub: READS, action: 'R', client: [DCM, '110152'], server: [DCM, '110153'], user: 'IRCP' },
    create: { sub: CREATES, action: 'C', client: [DCM, '110153'], server: [DCM, '110152'], user: 'DS' },
    update: { sub: UPDATES, action: 'U', client: [DCM, '110153'], server: [DCM, '110152'], user: 'DS' },
    delete: { sub: DELETES, action: 'D', client: [DCM, '110150'], server: [PROV, 'custodian'], user: 'DS' },
    query: { sub: SEARCHES, action: 'E', client: [DCM, '110153'], server: [DCM, '110152'], user: 'IRCP' },
  }[kind];
  if (!is(ev.type, EVT, 'rest')) errs.push('type must be audit-event-type#rest');
  subtypeSlice(ev, errs, 'any' + kind, spec.sub);
  if (ev.action !== spec.action) errs.push(`action must be ${spec.action}`);
  if (!ev.recorded) errs.push('recorded is required');
  if (ev.outcome !== OUTCOME0) errs.push('outcome must be 0 (BALP records successes)');
  if ((ev.agent || []).length < 2) errs.push('agent: at least 2');
  agentSlice(ev, errs, 'client', spec.client[0], spec.client[1], { card: [1, 1], absent: ['media'] });
  agentSlice(ev, errs, 'server', spec.server[0], spec.server[1], { card: [1, 1], absent: ['media'] });
  const users = (ev.agent || []).filter((a) =>
    spec.user === 'IRCP' ? ccHas(a.type, PART, 'IRCP') : ccInSet(a.type, DATA_SOURCES));
  if (users.length > 1) errs.push(`agent[user]: ${users.length} present, wanted 0..1`);
  for (const u of users) {
    if (!u.who) errs.push('agent[user].who is required');
    if (u.requestor !== true) errs.push('agent[user].requestor must be true');
    if (u.media !== undefined || u.network !== undefined) errs.push('agent[user]: media and network must be absent');
  }
  const ents = ev.entity || [];
  if (ents.length < (withPatient ? 2 : 1)) errs.push(`entity: at least ${withPatient ? 2 : 1}`);
  const sysObjs = ents.filter((e) => is(e.type, ETYPE, '2'));
  if (kind === 'query') {
    const q = sysObjs.filter((e) => is(e.role, OROLE, '24'));
    if (q.length !== 1) errs.push(`entity[query]: ${q.length} present, wanted 1`);
    for (const e of q) {
      if (typeof e.query !== 'string' || e.query.length === 0) errs.push('entity[query].query is required (base64)');
      for (const k of ['what', 'lifecycle', 'detail']) if (e[k] !== undefined) errs.push(`entity[query].${k} must be absent`);
    }
  } else {
    if (sysObjs.length !== 1) errs.push(`entity[data]: ${sysObjs.length} present, wanted 1`);
    for (const e of sysObjs) {
      if (!e.what) errs.push('entity[data].what is required');
      if (!inSet(e.role, REST_OBJECT_ROLES)) errs.push('entity[data].role must be in RestObjectRoles');
    }
  }
  if (withPatient) patientEntity(ev, errs);
}

function authzConsent(ev, errs) {
  if (ev.modifierExtension !== undefined) errs.push('modifierExtension must be absent');
  if (!is(ev.type, DCM, '110113')) errs.push('type must be DCM#110113');
  if (!(ev.subtype || []).some((c) => is(c, AUTHZ, 'AuthZ-Consent') || is(c, AUTHZ, 'AuthZ-Role')))
    errs.push('subtype from AuthZsubTypeVS is required');
  if (ev.action !== 'E') errs.push('action must be E');
  if (!ev.recorded || ev.outcome === undefined) errs.push('recorded and outcome are required');
  if ((ev.agent || []).length < 2) errs.push('agent: at least 2');
  agentSlice(ev, errs, 'client', DCM, '110150', {
    card: [1, 1], absent: ['role', 'altId', 'name', 'location', 'media', 'purposeOfUse'] });
  agentSlice(ev, errs, 'user', PART, 'IRCP', {
    card: [1, 1], requestor: true, absent: ['altId', 'location', 'media', 'network'] });
  agentSlice(ev, errs, 'userorg', ROLECLASS, 'PROV', {
    card: [1, 1], requestor: false,
    absent: ['role', 'altId', 'name', 'location', 'policy', 'media', 'network'] });
  agentSlice(ev, errs, 'authorizer', SECROLE, 'authserver', {
    card: [1, 1], requestor: false, auditSource: true,
    absent: ['role', 'altId', 'name', 'location', 'policy', 'media', 'network', 'purposeOfUse'] });
  const ents = ev.entity || [];
  if (ents.length < 2) errs.push('entity: at least 2');
  patientEntity(ev, errs);
  const consents = ents.filter((e) => is(e.type, RTYPES, 'Consent'));
  if (consents.length < 1) errs.push('entity[consent]: at least 1');
  for (const c of consents) if (!c.what) errs.push('entity[consent].what is required');
  const tokens = ents.filter((e) => is(e.type, UAT, 'UserOauthAgent'));
  if (tokens.length > 1) errs.push('entity[token]: at most 1');
  // closed slicing: every entity is the patient, a consent or the token
  for (const e of ents)
    if (!is(e.type, ETYPE, '1') && !is(e.type, RTYPES, 'Consent') && !is(e.type, UAT, 'UserOauthAgent'))
      errs.push(`entity of type ${JSON.stringify(e.type)} not allowed (closed slicing)`);
}

function oauthMinimal(ev, errs) {
  agentSlice(ev, errs, 'oUser', UAT, 'UserOauthAgent', {
    card: [1, Infinity], requestor: true, absent: ['media', 'network'],
    policyPrefix: 'urn:ietf:params:oauth:jti:' });
}

// DICOM PS3.15 A.5.3 User Authentication, as ehrgate renders it: no BALP
// profile, the DICOM codes, an authenticated principal as requestor.
function dicomLogin(ev, errs) {
  if (!is(ev.type, DCM, '110114')) return;
  if (!(ev.subtype || []).some((c) => is(c, DCM, '110122')))
    errs.push('User Authentication needs subtype DCM#110122 Login');
  if (ev.action !== 'E') errs.push('User Authentication action must be E');
  if (!(ev.agent || []).some((a) => a.requestor === true)) errs.push('User Authentication: no requestor agent');
}

const PROFILES = {
  'IHE.BasicAudit.Read': (ev, e) => restProfile(ev, e, 'read', false),
  'IHE.BasicAudit.PatientRead': (ev, e) => restProfile(ev, e, 'read', true),
  'IHE.BasicAudit.Create': (ev, e) => restProfile(ev, e, 'create', false),
  'IHE.BasicAudit.PatientCreate': (ev, e) => restProfile(ev, e, 'create', true),
  'IHE.BasicAudit.Update': (ev, e) => restProfile(ev, e, 'update', false),
  'IHE.BasicAudit.PatientUpdate': (ev, e) => restProfile(ev, e, 'update', true),
  'IHE.BasicAudit.Delete': (ev, e) => restProfile(ev, e, 'delete', false),
  'IHE.BasicAudit.PatientDelete': (ev, e) => restProfile(ev, e, 'delete', true),
  'IHE.BasicAudit.Query': (ev, e) => restProfile(ev, e, 'query', false),
  'IHE.BasicAudit.AuthZconsent': authzConsent,
  'IHE.BasicAudit.OAUTHaccessTokenUse.Minimal': oauthMinimal,
};

function check(ev) {
  const errs = [];
  const profiles = (ev.meta && ev.meta.profile) || [];
  for (const p of profiles) {
    if (!p.startsWith(BALP) || !PROFILES[p.slice(BALP.length)]) {
      errs.push(`unknown profile ${p}`);
      continue;
    }
    PROFILES[p.slice(BALP.length)](ev, errs);
  }
  if (profiles.length === 0) dicomLogin(ev, errs);
  return errs;
}

module.exports = { check, BALP };
