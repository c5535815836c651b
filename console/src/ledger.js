// ledger.js - the browser's own check of the ledger (docs/LEDGER.md): entry
// decoding (§1), RFC 9162 leaf and node hashes and inclusion proofs (§3),
// and the C2SP signed-note checkpoint with its Ed25519 signature (§6), all
// with WebCrypto. Each check returns what it checked, so the page can show
// the list, and fails with a message that names the first bad thing.
import { b64decode, concat, equalBytes, sha256, te, td, hex } from "./util.js";

export class CheckError extends Error {}
const fail = (m) => {
  throw new CheckError(m);
};

// vkey "<name>+<8 hex key id>+<base64(0x01 || 32-byte Ed25519 key)>" (§6).
export async function parseVkey(vkey) {
  // the name has no '+', the base64 may: split at the first two only
  const v = (vkey || "").trim();
  const i = v.indexOf("+"),
    j = v.indexOf("+", i + 1);
  const parts = i > 0 && j > i ? [v.slice(0, i), v.slice(i + 1, j), v.slice(j + 1)] : [];
  if (parts.length !== 3 || !parts[0] || !/^[0-9a-f]{8}$/.test(parts[1]))
    fail("the ledger key is not a vkey (name+keyid+base64)");
  let raw;
  try {
    raw = b64decode(parts[2]);
  } catch (e) {
    fail("the ledger key's base64 is malformed");
  }
  if (raw.length !== 33 || raw[0] !== 0x01) fail("the ledger key is not an Ed25519 vkey");
  const pub = raw.subarray(1);
  const id = (await sha256(concat(te.encode(parts[0]), Uint8Array.of(0x0a, 0x01), pub))).subarray(0, 4);
  if (hex(id) !== parts[1]) fail("the ledger key's id does not match its key");
  const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
  return { name: parts[0], keyId: id, key };
}

// Verify a checkpoint note with the pinned key: returns {origin, size, root,
// checks}. Signature lines of other keys (witnesses) are listed, not trusted.
export async function verifyCheckpoint(note, vk) {
  const checks = [];
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) fail("checkpoint: not a signed note (no blank line)");
  const body = note.slice(0, split + 1);
  const lines = body.split("\n");
  if (lines.length !== 4) fail("checkpoint: the body is not origin, size, root");
  const [origin, sizeText, rootText] = lines;
  if (origin !== vk.name) fail(`checkpoint: origin "${origin}" is not the pinned key's "${vk.name}"`);
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText)) fail("checkpoint: the tree size is malformed");
  let root;
  try {
    root = b64decode(rootText);
  } catch (e) {
    fail("checkpoint: the root hash is not base64");
  }
  if (root.length !== 32) fail("checkpoint: the root hash is not 32 bytes");
  const sigLines = note.slice(split + 2, -1).split("\n");
  const witnesses = [];
  let ours = null;
  for (const l of sigLines) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(l);
    if (!m) fail("checkpoint: a signature line is malformed");
    let sig;
    try {
      sig = b64decode(m[2]);
    } catch (e) {
      fail("checkpoint: a signature is not base64");
    }
    if (m[1] === vk.name && sig.length >= 4 && equalBytes(sig.subarray(0, 4), vk.keyId)) {
      if (!ours) ours = sig.subarray(4);
    } else witnesses.push({ name: m[1], keyId: hex(sig.subarray(0, 4)) });
  }
  if (!ours) fail("checkpoint: no signature by the pinned ledger key");
  checks.push(`checkpoint origin is "${origin}", the pinned key's name`);
  if (ours.length !== 64 || !(await crypto.subtle.verify({ name: "Ed25519" }, vk.key, ours, te.encode(body))))
    fail("checkpoint: the Ed25519 signature does not verify with the pinned ledger key");
  checks.push(`checkpoint signature (Ed25519, key id ${hex(vk.keyId)}) verifies with the pinned ledger key`);
  return { origin, size: Number(sizeText), root, witnesses, checks };
}

// Entry bytes (§1) -> fields; throws CheckError on any malformed byte.
export function decodeEntry(b) {
  try {
    return decodeEntryBytes(b);
  } catch (e) {
    if (e instanceof CheckError) throw e;
    fail(`entry: the signed bytes do not decode (${e.message})`);
  }
}

function decodeEntryBytes(b) {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 0;
  const need = (n) => {
    if (o + n > b.length) fail("entry: the bytes end early");
  };
  const uint = (n) => {
    need(n);
    const v = n === 1 ? b[o] : n === 2 ? dv.getUint16(o) : dv.getUint32(o);
    o += n;
    return v;
  };
  const text = (n) => {
    need(n);
    const v = td.decode(b.subarray(o, o + n));
    o += n;
    return v;
  };
  need(17);
  if (b[0] !== 1) fail("entry: unknown version");
  const seq = Number(dv.getBigUint64(1));
  const ts = Number(dv.getBigInt64(9));
  o = 17;
  const type = text(uint(1));
  const actor = text(uint(2));
  const subject = text(uint(2));
  const payloadText = text(uint(4));
  if (o !== b.length) fail("entry: bytes after the payload");
  return { seq, ts_ms: ts, type, actor, subject, payloadText, payload: JSON.parse(payloadText) };
}

export const leafHash = (entry) => sha256(concat(Uint8Array.of(0), entry));
export const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

// RFC 9162 §2.1.3.2: does `path` prove leaf `leaf` at `index` in the tree
// of `size` with root `root`? Sizes below 2^53, so plain numbers.
export async function verifyInclusion(index, size, leaf, path, root) {
  if (!(index < size)) fail("proof: the leaf index is not below the tree size");
  let fn = index,
    sn = size - 1,
    r = leaf;
  for (const p of path) {
    if (p.length !== 32) fail("proof: a hash is not 32 bytes");
    if (sn === 0) fail("proof: longer than the tree is deep");
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) fail("proof: shorter than the tree is deep");
  if (!equalBytes(r, root)) fail("proof: the computed root is not the checkpoint's root");
  return true;
}

// RFC 8785 canonical JSON for the values the ledger and contracts hold
// (strings, integers, booleans, null, arrays, objects): keys sorted by
// UTF-16 code units, which is JavaScript's default string order.
export function jcs(v) {
  if (v === null || typeof v === "boolean") return JSON.stringify(v);
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) fail("canonical JSON: only integers are allowed");
    return JSON.stringify(v);
  }
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map(jcs).join(",") + "]";
  const keys = Object.keys(v).sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + jcs(v[k])).join(",") + "}";
}

// Everything the auditor's "open an entry" shows: the served entry's bytes
// decoded and compared with the served fields, its leaf hash, the checkpoint
// and the inclusion proof. fetchers: {checkpoint() -> text, proof(index,
// size) -> JSON}. Returns {decoded, checks, ms}; throws CheckError.
export async function verifyEntry(served, vk, fetchers, onCheck = () => {}) {
  const t0 = performance.now();
  const checks = [];
  const ok = (m) => {
    checks.push(m);
    onCheck(m);
  };
  let bytes;
  try {
    bytes = b64decode(served.entry);
  } catch (e) {
    fail("entry: the served bytes are not base64");
  }
  const d = decodeEntry(bytes);
  for (const f of ["seq", "ts_ms", "type", "actor", "subject"])
    if (d[f] !== served[f]) fail(`entry: the served ${f} is not what the signed bytes say`);
  if (jcs(served.payload) !== d.payloadText) fail("entry: the served payload is not what the signed bytes say");
  ok(`entry bytes decode (${bytes.length} bytes) and say exactly the seq, time, type, actor, subject and payload shown`);
  const leaf = await leafHash(bytes);
  ok(`leaf hash SHA-256(0x00 || entry) = ${hex(leaf).slice(0, 16)}…`);
  const cp = await verifyCheckpoint(await fetchers.checkpoint(), vk);
  cp.checks.forEach(ok);
  ok(`checkpoint: tree size ${cp.size}, root ${hex(cp.root).slice(0, 16)}…`);
  const proof = await fetchers.proof(d.seq, cp.size);
  if (proof.leaf_index !== d.seq || proof.tree_size !== cp.size)
    fail("proof: it is not for this entry and this checkpoint's tree size");
  let path;
  try {
    path = proof.hashes.map(b64decode);
  } catch (e) {
    fail("proof: a hash is not base64");
  }
  await verifyInclusion(d.seq, cp.size, leaf, path, cp.root);
  ok(`inclusion proof (RFC 9162, ${path.length} hashes) leads from the leaf to the signed root`);
  return { decoded: d, checks, checkpoint: cp, ms: performance.now() - t0 };
}
