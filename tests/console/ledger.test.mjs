// ledger.test.mjs - the console's in-browser verifier (console/src/ledger.js)
// run in Node's WebCrypto on known answers and on every way a byte can be
// off. Known answers: the RFC 6962 leaves, roots and inclusion proofs that
// tests/unit/ledger/test_ledger_pure.c checks the C code with
// (transparency-dev), docs/LEDGER.md §1's worked entry, the PeterNeumann
// vkey of golang.org/x/mod/sumdb/note, and checkpoints signed by Node's own
// Ed25519. Prints "ehrgate-totals: test_console_ledger N passed, M failed".
import { createHash, generateKeyPairSync, sign as nodeSign } from "node:crypto";
import * as L from "../../console/src/ledger.js";

let pass = 0;
const fails = [];
async function t(name, fn) {
  try {
    await fn();
    pass++;
  } catch (e) {
    fails.push(`${name}: ${e.message}`);
  }
}
const eq = (a, b, what) => {
  if (a !== b) throw new Error(`${what}: ${a} != ${b}`);
};
async function rejects(p, re, what) {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof L.CheckError)) throw new Error(`${what}: not a CheckError: ${e.message}`);
    if (re && !re.test(e.message)) throw new Error(`${what}: message "${e.message}"`);
    return;
  }
  throw new Error(`${what}: accepted`);
}
const hx = (s) => Uint8Array.from(Buffer.from(s, "hex"));
const H = (...b) => createHash("sha256").update(Buffer.concat(b)).digest();
const toHex = (u) => Buffer.from(u).toString("hex");

const leaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
const leafHashes = [
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
  "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
  "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
  "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
  "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
  "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
];
const roots = {
  3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};
const incl = [
  [0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]],
  [5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]],
  [2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]],
  [1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]],
];

await t("rfc6962_leaf_hashes", async () => {
  for (let i = 0; i < 8; i++) eq(toHex(await L.leafHash(hx(leaves[i]))), leafHashes[i], `leaf ${i}`);
});

await t("rfc6962_inclusion_and_negatives", async () => {
  for (const [i, n, path] of incl) {
    const leaf = await L.leafHash(hx(leaves[i]));
    const p = path.map(hx);
    const root = hx(roots[n]);
    await L.verifyInclusion(i, n, leaf, p, root);
    await rejects(L.verifyInclusion(i + 1 < n ? i + 1 : i - 1, n, leaf, p, root), /proof:/, `wrong index ${i}`);
    await rejects(L.verifyInclusion(i, n * 2, leaf, p, root), /proof:/, `wrong size ${i}`);
    await rejects(L.verifyInclusion(i, n, await L.leafHash(hx(leaves[(i + 1) % 8])), p, root), /root/, `wrong leaf ${i}`);
    await rejects(L.verifyInclusion(i, n, leaf, p.slice(0, -1), root), /proof:/, `truncated ${i}`);
    await rejects(L.verifyInclusion(i, n, leaf, [...p, p[0]], root), /proof:/, `extended ${i}`);
    await rejects(L.verifyInclusion(n, n, leaf, p, root), /below the tree size/, `index = size ${i}`);
    for (let k = 0; k < p.length; k++) {
      const bad = p.map((x) => Uint8Array.from(x));
      bad[k][31] ^= 1;
      await rejects(L.verifyInclusion(i, n, leaf, bad, root), /root/, `flipped bit in hash ${k} of ${i}`);
    }
    if (p.length > 1) await rejects(L.verifyInclusion(i, n, leaf, [p[1], p[0], ...p.slice(2)], root), /root/, `reordered ${i}`);
  }
});

// docs/LEDGER.md §1, the worked example
const worked = hx("010000000000000102" + "0000018c00000005" + "08" + "6568722e72656164" + "0005" + "6163743072" + "0004" + "7375626a" + "00000010" + "7b2261223a372c227a223a22c3a9227d");
await t("entry_worked_example", async () => {
  const d = L.decodeEntry(worked);
  eq(d.seq, 258, "seq");
  eq(d.ts_ms, 1700807049221, "ts");
  eq(d.type, "ehr.read", "type");
  eq(d.actor, "act0r", "actor");
  eq(d.subject, "subj", "subject");
  eq(L.jcs(d.payload), '{"a":7,"z":"é"}', "payload");
  eq(toHex(await L.leafHash(worked)), "3070c8d85b488076827b0fcb67d05564e2750ab5e4c65b2101f1212b43562050", "leaf hash");
});

await t("entry_malformed_bytes", async () => {
  const cases = {
    truncated: worked.subarray(0, worked.length - 1),
    trailing: Uint8Array.from([...worked, 0]),
    version: Uint8Array.from(worked).map((b, i) => (i === 0 ? 2 : b)),
    bad_utf8: Uint8Array.from(worked).map((b, i) => (i === worked.length - 3 ? 0xff : b)),
    bad_json: Uint8Array.from(worked).map((b, i) => (i === worked.length - 1 ? 0x20 : b)),
    empty: new Uint8Array(0),
  };
  for (const [k, b] of Object.entries(cases)) await rejects((async () => L.decodeEntry(b))(), /^entry/, k);
});

await t("jcs_rfc8785_order", async () => {
  eq(L.jcs({ "\u20ac": 1, "\r": 2, "\ud83d\ude00": 3, 1: 4, "\u0080": 5, "\u00f6": 6, "\ufb33": 7 }),
    '{"\\r":2,"1":4,"\u0080":5,"\u00f6":6,"\u20ac":1,"\ud83d\ude00":3,"\ufb33":7}', "order");
  eq(L.jcs({ b: [1, "x\n\u0001"], a: { d: null, c: true } }), '{"a":{"c":true,"d":null},"b":[1,"x\\n\\u0001"]}', "nesting");
  await rejects((async () => L.jcs({ a: 1.5 }))(), /integers/, "fraction");
});

await t("vkey_peter_neumann", async () => {
  const vk = await L.parseVkey("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
  eq(vk.name, "PeterNeumann", "name");
  eq(toHex(vk.keyId), "c74f20a3", "key id");
  await rejects(L.parseVkey("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"), /id does not match/, "wrong id");
  await rejects(L.parseVkey("PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"), /./, "not Ed25519");
  await rejects(L.parseVkey("PeterNeumann"), /not a vkey/, "no parts");
});

// A checkpoint signed by Node's Ed25519 (another implementation than the
// console's WebCrypto), with a '+' in the base64 of the vkey when it happens.
function signer(name) {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pub = publicKey.export({ format: "der", type: "spki" }).subarray(12);
  const kid = H(Buffer.from(name), Buffer.of(0x0a, 0x01), pub).subarray(0, 4);
  return {
    vkey: `${name}+${kid.toString("hex")}+${Buffer.concat([Buffer.of(1), pub]).toString("base64")}`,
    line: (body) => `\u2014 ${name} ${Buffer.concat([kid, nodeSign(null, Buffer.from(body), privateKey)]).toString("base64")}\n`,
  };
}
await t("checkpoint_signed_and_negatives", async () => {
  const s = signer("ehrgate.local/ledger"), w = signer("witness.example/w1"), other = signer("ehrgate.local/ledger");
  const body = `ehrgate.local/ledger\n8\n${Buffer.from(hx(roots[8])).toString("base64")}\n`;
  const vk = await L.parseVkey(s.vkey);
  const cp = await L.verifyCheckpoint(`${body}\n${w.line(body)}${s.line(body)}`, vk);
  eq(cp.size, 8, "size");
  eq(toHex(cp.root), roots[8], "root");
  eq(cp.witnesses.length, 1, "witness listed");
  const note = `${body}\n${s.line(body)}`;
  const flip = (str, i) => str.slice(0, i) + String.fromCharCode(str.charCodeAt(i) ^ 1) + str.slice(i + 1);
  await rejects(L.verifyCheckpoint(flip(note, body.indexOf("\n") + 1), vk), /signature does not verify|size/, "size changed");
  await rejects(L.verifyCheckpoint(note.replace(body.split("\n")[2], Buffer.alloc(32, 7).toString("base64")), vk), /does not verify/, "root changed");
  const sigAt = note.lastIndexOf(" ") + 10;
  await rejects(L.verifyCheckpoint(flip(note, sigAt), vk), /./, "signature byte changed");
  await rejects(L.verifyCheckpoint(`${body}\n${other.line(body)}`, vk), /no signature by the pinned/, "another key of the same name");
  await rejects(L.verifyCheckpoint(`${body}\n${w.line(body)}`, vk), /no signature by the pinned/, "only a witness");
  await rejects(L.verifyCheckpoint(note.replace("ehrgate.local/ledger\n8", "evil.example/ledger\n8"), vk), /origin/, "other origin");
  await rejects(L.verifyCheckpoint(body, vk), /not a signed note/, "unsigned");
  await rejects(L.verifyCheckpoint(note.replace("\n8\n", "\n08\n"), vk), /size is malformed/, "leading zero");
});

await t("verify_entry_end_to_end", async () => {
  // a 3-entry tree of real entry bytes; entry 1 is the worked example
  const e0 = Uint8Array.from(worked).map((b, i) => (i === 8 ? 0 : b));
  const e2 = Uint8Array.from(worked).map((b, i) => (i === 8 ? 2 : b));
  const served = { seq: 258, ts_ms: 1700807049221, type: "ehr.read", actor: "act0r", subject: "subj", payload: { z: "é", a: 7 }, entry: Buffer.from(worked).toString("base64") };
  const l = [e0, worked, e2].map((e) => H(Buffer.of(0), e));
  // size 259 would be big; use the entry as leaf 258 of a synthetic path
  let r = l[1], fn = 258, sn = 299;
  const path = [];
  while (sn > 0) {
    const p = H(Buffer.from(String(sn)));
    if (fn % 2 === 1 || fn === sn) {
      r = H(Buffer.of(1), p, r);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) ((fn = Math.floor(fn / 2)), (sn = Math.floor(sn / 2)));
    } else r = H(Buffer.of(1), r, p);
    path.push(p.toString("base64"));
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  const s = signer("ehrgate.local/ledger");
  const body = `ehrgate.local/ledger\n300\n${r.toString("base64")}\n`;
  const vk = await L.parseVkey(s.vkey);
  const f = (proof) => ({ checkpoint: async () => `${body}\n${s.line(body)}`, proof: async () => proof });
  const good = { hashes: path, leaf_index: 258, tree_size: 300 };
  const res = await L.verifyEntry(served, vk, f(good));
  if (res.checks.length < 5) throw new Error("too few checks listed");
  await rejects(L.verifyEntry({ ...served, actor: "someone" }, vk, f(good)), /served actor/, "actor changed");
  await rejects(L.verifyEntry({ ...served, payload: { a: 8, z: "é" } }, vk, f(good)), /served payload/, "payload changed");
  await rejects(L.verifyEntry(served, vk, f({ ...good, tree_size: 299 })), /not for this entry/, "proof for another size");
  await rejects(L.verifyEntry(served, vk, f({ ...good, hashes: path.slice(1) })), /proof:/, "short proof");
  await rejects(L.verifyEntry(served, vk, f({ ...good, hashes: ["!!"] })), /./, "bad base64");
});

const failed = fails.length;
for (const f of fails) console.log(`FAILED ${f}`);
console.log(`ehrgate-totals: test_console_ledger ${pass} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
