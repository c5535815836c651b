// console.test.mjs - every flow of the web console (docs/CONSOLE.md) in
// Debian's chromium (/usr/bin/chromium), driven by Playwright, against the
// real gateway that tests/integration/console/test_console.c started.
//
// Prints one "console-flow: ok NAME" or "console-flow: FAIL NAME: why" line
// per flow (the C test asserts each), "console-measure: ..." lines with the
// figures, and exits 1 if any flow failed. A screenshot of every step goes
// to $CONSOLE_SHOTS (kept when a flow fails); with $CONSOLE_DOCS_SHOTS set
// the docs' screenshots are copied there (docs/console/).
//
// Environment: CONSOLE_URL, CONSOLE_SERVER_DIR / _ID (the hospital's ehrctl
// profile), CONSOLE_AUDITOR_DIR (cert.pem, key.pem), CONSOLE_PATIENT_ID,
// CONSOLE_ENROL_CODE, CONSOLE_VKEY, CONSOLE_SHOTS, CONSOLE_OUT (the bundle),
// EHRGATE_CTL (ehrctl).
import { chromium } from "playwright-core";
import axe from "@axe-core/playwright";
import { execFile } from "node:child_process";
import { createHash, generateKeyPairSync, sign as nodeSign, randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const AxeBuilder = axe.default || axe.AxeBuilder || axe;
const here = dirname(fileURLToPath(import.meta.url));
const env = (k) => {
  if (!process.env[k]) throw new Error(`${k} is not set`);
  return process.env[k];
};
const URL0 = env("CONSOLE_URL");
const ORIGIN = new URL(URL0).origin;
const SRV = env("CONSOLE_SERVER_DIR"), SRV_ID = env("CONSOLE_SERVER_ID");
const AUD = env("CONSOLE_AUDITOR_DIR");
const PID = env("CONSOLE_PATIENT_ID"), CODE = env("CONSOLE_ENROL_CODE"), VKEY = env("CONSOLE_VKEY");
const SHOTS = env("CONSOLE_SHOTS");
const CTL = process.env.EHRGATE_CTL || join(here, "../../build/client/ehrctl");
const DOCS = process.env.CONSOLE_DOCS_SHOTS;
mkdirSync(SHOTS, { recursive: true });

let failed = false;
let shotN = 0;
const pages = [];
async function shot(page, label) {
  const f = join(SHOTS, `${String(++shotN).padStart(2, "0")}-${label}.png`);
  await page.screenshot({ path: f, fullPage: true }).catch(() => {});
  return f;
}
function docShot(file, name) {
  if (DOCS && existsSync(file)) {
    mkdirSync(DOCS, { recursive: true });
    copyFileSync(file, join(DOCS, name));
  }
}
async function flow(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`console-flow: ok ${name}`);
  } catch (e) {
    failed = true;
    console.log(`console-flow: FAIL ${name}: ${e.message.split("\n")[0]}`);
    for (const p of pages) await shot(p.page, `FAIL-${name}-${p.name}`);
  }
  console.log(`  (${name}: ${Date.now() - t0} ms)`);
}
const must = (cond, what) => {
  if (!cond) throw new Error(what);
};

function ctl(args, { allowFail = false } = {}) {
  return new Promise((resolve, reject) => {
    execFile(CTL, ["--dir", SRV, ...args], { timeout: 30000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      if (code !== 0 && !allowFail) reject(new Error(`ehrctl ${args.join(" ")}: exit ${code}: ${stderr}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

// ---- the browser: Debian's chromium, headless; every request is logged
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true });
const requests = [];
const cspViolations = [];
const docHeaders = [];
function watch(context, name) {
  context.on("request", (r) => requests.push(r.url()));
  context.on("response", (r) => {
    if (r.request().resourceType() === "document") docHeaders.push({ url: r.url(), csp: r.headers()["content-security-policy"] });
  });
  context.on("page", (p) => p.on("console", (m) => /Content Security Policy/i.test(m.text()) && cspViolations.push(m.text())));
  return context;
}
// The patient's browser has no client certificate and a phone-sized screen;
// the auditor's presents the auditor's certificate (mutual TLS). The test
// gateway's CA is private, so certificate errors are ignored in both.
const patientCtx = watch(await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 844 }, acceptDownloads: true }), "patient");
const auditorCtx = watch(
  await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
    clientCertificates: [{ origin: ORIGIN, certPath: join(AUD, "cert.pem"), keyPath: join(AUD, "key.pem") }],
  }),
  "auditor",
);
const pp = await patientCtx.newPage();
pp.on("console", (m) => /Content Security Policy/i.test(m.text()) && cspViolations.push(m.text()));
pages.push({ name: "patient", page: pp });
const axeResults = [];
async function axeCheck(page, label) {
  const r = await new AxeBuilder({ page }).analyze();
  const bad = r.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  axeResults.push({ label, bad: bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`) });
}

let upload1, upload2, cid;
const tmpFile = join(SHOTS, "record.txt");
writeFileSync(tmpFile, "Lab report: haemoglobin 14.1 g/dL (console test)\n");

await flow("patient-enrol-login-grant", async () => {
  await pp.goto(`${URL0}/console/`);
  await axeCheck(pp, "landing");
  docShot(await shot(pp, "landing"), "landing.png");
  await pp.getByRole("link", { name: "Patient", exact: true }).first().click();
  await pp.locator("#e-pid").fill(PID);
  await pp.locator("#e-code").fill(CODE);
  docShot(await shot(pp, "patient-enrol"), "patient-enrol.png");
  await pp.getByRole("button", { name: "Enrol this browser" }).click();
  await pp.locator("#login").waitFor({ timeout: 10000 });
  docShot(await shot(pp, "patient-enrolled"), "patient-login.png");
  // the device key: a non-extractable CryptoKey in IndexedDB, nothing in
  // localStorage or cookies
  const key = await pp.evaluate(
    () =>
      new Promise((res, rej) => {
        const rq = indexedDB.open("ehrgate-console", 1);
        rq.onsuccess = () => {
          const g = rq.result.transaction("device").objectStore("device").get("device");
          g.onsuccess = () => {
            const k = g.result.privateKey;
            res({ type: k.type, extractable: k.extractable, alg: k.algorithm.namedCurve, ls: localStorage.length, cookie: document.cookie });
          };
          g.onerror = () => rej(g.error);
        };
        rq.onerror = () => rej(rq.error);
      }),
  );
  must(key.type === "private" && key.extractable === false && key.alg === "P-256", `device key ${JSON.stringify(key)}`);
  must(key.ls === 0 && key.cookie === "", "something was stored in localStorage or a cookie");
  await pp.locator("#login").click();
  await pp.locator("#home-h").waitFor({ timeout: 10000 });
  await pp.locator("#g-server").fill(SRV_ID);
  await pp.getByRole("button", { name: "Sign and grant" }).click();
  await pp.locator("#contracts tr[data-cid] >> text=active").waitFor({ timeout: 10000 });
  cid = await pp.locator("#contracts tr[data-cid]").first().getAttribute("data-cid");
  docShot(await shot(pp, "patient-granted"), "patient-contract.png");
});

await flow("patient-sees-upload", async () => {
  upload1 = JSON.parse((await ctl(["record", "put", PID, tmpFile, "--type", "text/plain", "--category", "lab"])).stdout);
  must(upload1.record_id, "no record id from ehrctl");
  await pp.locator(`#records tr[data-record="${upload1.record_id}"]`).waitFor({ timeout: 8000 });
  await pp.locator("#access tr", { hasText: "append" }).first().waitFor({ timeout: 8000 });
  const [dl] = await Promise.all([
    pp.waitForEvent("download"),
    pp.getByRole("button", { name: `download record ${upload1.record_id}` }).click(),
  ]);
  const got = readFileSync(await dl.path(), "utf8");
  must(got === readFileSync(tmpFile, "utf8"), "the downloaded record differs from the upload");
  docShot(await shot(pp, "patient-records"), "patient-records.png");
  await axeCheck(pp, "patient home");
});

const ap = await auditorCtx.newPage();
ap.on("console", (m) => /Content Security Policy/i.test(m.text()) && cspViolations.push(m.text()));
pages.push({ name: "auditor", page: ap });

async function openStoreEntry() {
  await ap.getByRole("button", { name: `open entry ${upload1.seq}` }).first().click();
  await ap.locator("#verdict", { hasText: /VERIFIED|FAILED/ }).waitFor({ timeout: 10000 });
  return ap.locator("#verdict").textContent();
}

await flow("auditor-finds-upload-and-verifies", async () => {
  await ap.goto(`${URL0}/console/#auditor`);
  await ap.locator("#vkey").fill(VKEY);
  await ap.getByRole("button", { name: "Pin key" }).click();
  await ap.locator(".status", { hasText: "ledger key pinned" }).waitFor();
  await ap.locator("#f-type").fill("ehr.store");
  await ap.locator("#f-actor").fill(SRV_ID);
  await ap.getByRole("button", { name: "Search" }).click();
  await ap.locator(`#results tr[data-seq="${upload1.seq}"]`).waitFor({ timeout: 10000 });
  docShot(await shot(ap, "auditor-search"), "auditor-search.png");
  const v = await openStoreEntry();
  must(/^VERIFIED/.test(v), `verdict: ${v}`);
  must((await ap.locator("#checks li.ok").count()) >= 5, "fewer checks listed than made");
  const payload = await ap.locator("pre.payload").textContent();
  must(payload.includes(upload1.record_id), "the decoded payload does not show the record id");
  docShot(await shot(ap, "auditor-verified"), "auditor-verified.png");
  await axeCheck(ap, "auditor entry");
});

await flow("auditor-corrupted-proof-fails", async () => {
  // one bit of one proof hash flipped on the wire
  await ap.route("**/v1/ledger/proof/inclusion*", async (route) => {
    const res = await route.fetch();
    const j = await res.json();
    const h = Buffer.from(j.hashes[0], "base64");
    h[5] ^= 0x01;
    j.hashes[0] = h.toString("base64");
    await route.fulfill({ response: res, body: JSON.stringify(j) });
  });
  await ap.getByRole("button", { name: "Close" }).click();
  const v = await openStoreEntry();
  must(/^VERIFICATION FAILED: proof: the computed root is not the checkpoint's root/.test(v), `verdict: ${v}`);
  docShot(await shot(ap, "auditor-proof-failed"), "auditor-failed.png");
  await ap.unroute("**/v1/ledger/proof/inclusion*");
  // one byte of the entry itself changed on the wire
  await ap.route("**/v1/audit/entries*", async (route) => {
    const res = await route.fetch();
    const j = await res.json();
    for (const e of j.entries) {
      const b = Buffer.from(e.entry, "base64");
      b[b.length - 3] ^= 0x04;
      e.entry = b.toString("base64");
    }
    await route.fulfill({ response: res, body: JSON.stringify(j) });
  });
  await ap.getByRole("button", { name: "Search" }).click();
  await ap.waitForTimeout(300);
  await ap.getByRole("button", { name: "Close" }).click().catch(() => {});
  const v2 = await openStoreEntry();
  must(/^VERIFICATION FAILED: entry/.test(v2), `verdict for a changed entry byte: ${v2}`);
  await ap.unroute("**/v1/audit/entries*");
  await ap.getByRole("button", { name: "Close" }).click();
});

await flow("auditor-live-tail-2s", async () => {
  await ap.getByRole("button", { name: "Start live tail" }).click();
  await ap.locator("#tail-status", { hasText: "connected" }).waitFor({ timeout: 5000 });
  upload2 = JSON.parse((await ctl(["record", "put", PID, tmpFile, "--type", "text/plain", "--category", "lab"])).stdout);
  const t0 = Date.now();
  await ap.locator(`#tail-status ~ div tr[data-seq="${upload2.seq}"]`).waitFor({ timeout: 2000 });
  console.log(`console-measure: live tail shows the upload ${Date.now() - t0} ms after ehrctl returned`);
  // resume: the stream is cut (the gateway closes it on overflow or a lost
  // database; here the browser drops it), EventSource reconnects with
  // Last-Event-ID and nothing is lost or repeated
  await ap.getByRole("button", { name: "Refresh" }).click();
  await ap.locator("#h-witnesses").waitFor();
  // no [witness] in this gateway: /readyz has no publication object, and the panel says so
  must(/not configured/.test(await ap.locator("#h-witnesses").textContent()), "witnesses line without [witness]");
  must(/no witnesses configured/.test(await ap.locator("#h-publication").textContent()), "publication line without [witness]");
  docShot(await shot(ap, "auditor-tail-health"), "auditor-tail-health.png");
});

await flow("patient-revoke-stops-read", async () => {
  const out = join(SHOTS, "read.bin");
  await ctl(["record", "get", upload1.record_id, "-o", out]);
  await pp.getByRole("button", { name: `revoke contract ${cid}` }).click();
  await pp.locator(`#contracts tr[data-cid="${cid}"] >> text=revoked`).waitFor({ timeout: 8000 });
  const r = await ctl(["record", "get", upload1.record_id, "-o", out], { allowFail: true });
  must(r.code === 1 && /403/.test(r.stderr), `the hospital's read after revocation: exit ${r.code} ${r.stderr}`);
  await pp.locator("#access tr.alert", { hasText: "DENIED" }).first().waitFor({ timeout: 5000 });
});

await flow("patient-sees-break-glass-live", async () => {
  const out = join(SHOTS, "read.bin");
  await ctl(["record", "get", upload1.record_id, "-o", out, "--break-glass", "Unconscious in the emergency room"]);
  const t0 = Date.now();
  await pp.locator("#access tr.alert", { hasText: "BREAK-GLASS" }).first().waitFor({ timeout: 5000 });
  console.log(`console-measure: patient sees the break-glass read ${Date.now() - t0} ms after ehrctl returned`);
  await pp.locator("#access-h").scrollIntoViewIfNeeded();
  docShot(await shot(pp, "patient-break-glass"), "patient-access.png");
});

await flow("axe-no-serious-violation", async () => {
  const bad = axeResults.filter((r) => r.bad.length);
  must(axeResults.length >= 3, "axe did not run on every view");
  must(bad.length === 0, bad.map((r) => `${r.label}: ${r.bad.join("; ")}`).join(" | "));
});

await flow("csp-and-same-origin-only", async () => {
  const foreign = requests.filter((u) => !u.startsWith(ORIGIN + "/") && !u.startsWith("blob:" + ORIGIN) && !u.startsWith("data:"));
  must(requests.length > 10, "the network log is empty");
  must(foreign.length === 0, `requests to another origin: ${foreign.slice(0, 3).join(", ")}`);
  const docs = docHeaders.filter((d) => d.url.includes("/console/"));
  must(docs.length >= 2 && docs.every((d) => d.csp && d.csp.startsWith("default-src 'self'")), "a console page without the CSP header");
  must(cspViolations.length === 0, `CSP violations: ${cspViolations.join("; ")}`);
});

// ---- figures (printed for the report; never asserted)
try {
  // each view as a new user opens it: a fresh browser context (no cache,
  // a new TLS connection), three times; the median is the figure
  for (const view of ["", "#auditor", "#patient"]) {
    const fcps = [];
    for (let i = 0; i < 3; i++) {
      const ctx = await browser.newContext({
        ignoreHTTPSErrors: true,
        clientCertificates: view === "#auditor" ? [{ origin: ORIGIN, certPath: join(AUD, "cert.pem"), keyPath: join(AUD, "key.pem") }] : [],
      });
      const p = await ctx.newPage();
      await p.goto(`${URL0}/console/${view}`);
      await p.locator("main h2").first().waitFor();
      fcps.push(await p.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? -1));
      if (i === 2) {
        // the same view again in a browser that is already running (a new
        // page, the cached script, the open TLS session)
        const q = await ctx.newPage();
        await q.goto(`${URL0}/console/${view}`);
        await q.locator("main h2").first().waitFor();
        const warm = await q.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? -1);
        const h2 = await q.evaluate(() => performance.now());
        console.log(`console-measure: first contentful paint ${view || "#home"} in a running browser: ${warm.toFixed(0)} ms (view rendered by ${h2.toFixed(0)} ms)`);
      }
      await ctx.close();
    }
    fcps.sort((a, b) => a - b);
    console.log(`console-measure: first contentful paint ${view || "#home"}, new browser context: median ${fcps[1].toFixed(0)} ms (${fcps.map((x) => x.toFixed(0)).join(", ")})`);
  }
  const out = process.env.CONSOLE_OUT;
  if (out && existsSync(join(out, "sizes.txt"))) {
    for (const l of readFileSync(join(out, "sizes.txt"), "utf8").trim().split("\n")) console.log(`console-measure: shipped ${l}`);
  }
  console.log(`console-measure: proof verification at a 1 M-entry tree: ${await proofBench(ap)}`);
} catch (e) {
  console.log(`console-measure: failed: ${e.message}`);
}

// The console's own ledger.js (bundled here with esbuild) in the page, on a
// checkpoint of a 1,000,000-entry tree signed by a fresh Ed25519 key and a
// 20-hash inclusion proof whose root Node computed with its own SHA-256.
async function proofBench(page) {
  const esbuild = await import(join(here, "../../console/node_modules/esbuild/lib/main.js"));
  const r = await esbuild.build({ entryPoints: [join(here, "../../console/src/ledger.js")], bundle: true, write: false, format: "iife", globalName: "ledgerlib" });
  await page.evaluate(r.outputFiles[0].text + ";window.ledgerlib = ledgerlib;");
  const size = 1000000, index = 765432;
  const H = (...b) => createHash("sha256").update(Buffer.concat(b)).digest();
  const entry = randomBytes(120);
  let r0 = H(Buffer.of(0), entry), fn = index, sn = size - 1;
  const path = [];
  while (sn > 0) {
    const p = randomBytes(32);
    if (fn % 2 === 1 || fn === sn) {
      r0 = H(Buffer.of(1), p, r0);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) ((fn = Math.floor(fn / 2)), (sn = Math.floor(sn / 2)));
    } else r0 = H(Buffer.of(1), r0, p);
    path.push(p);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pub = publicKey.export({ format: "der", type: "spki" }).subarray(12);
  const name = "bench.example/ledger";
  const kid = H(Buffer.from(name), Buffer.of(0x0a, 0x01), pub).subarray(0, 4);
  const vkey = `${name}+${kid.toString("hex")}+${Buffer.concat([Buffer.of(1), pub]).toString("base64")}`;
  const body = `${name}\n${size}\n${r0.toString("base64")}\n`;
  const note = `${body}\n\u2014 ${name} ${Buffer.concat([kid, nodeSign(null, Buffer.from(body), privateKey)]).toString("base64")}\n`;
  const res = await page.evaluate(
    async ({ vkey, note, entry, path, index, size }) => {
      const L = window.ledgerlib;
      const b = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
      const times = [];
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        const vk = await L.parseVkey(vkey);
        const cp = await L.verifyCheckpoint(note, vk);
        await L.verifyInclusion(index, size, await L.leafHash(b(entry)), path.map(b), cp.root);
        times.push(performance.now() - t0);
      }
      times.sort((a, c) => a - c);
      return { p50: times[10], max: times[19], hashes: path.length };
    },
    { vkey, note, entry: entry.toString("base64"), path: path.map((p) => p.toString("base64")), index, size },
  );
  return `${res.hashes} hashes + checkpoint signature: p50 ${res.p50.toFixed(2)} ms, max ${res.max.toFixed(2)} ms over 20 runs`;
}

// For docs/CONSOLE.md only: Chromium's own certificate manager, where an
// auditor imports the PKCS#12 file ("Your certificates" > Import).
if (DOCS) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 560 } });
  const p = await ctx.newPage();
  try {
    await p.goto("chrome://certificate-manager/", { timeout: 10000 });
    await p.getByText("Your certificates").first().click();
    await p.waitForTimeout(800);
    await p.screenshot({ path: join(DOCS, "chromium-certificate-manager.png") });
  } catch (e) {
    console.log(`console-measure: no certificate manager screenshot: ${e.message.split("\n")[0]}`);
  }
  await ctx.close();
}

await browser.close();
process.exit(failed ? 1 : 0);
