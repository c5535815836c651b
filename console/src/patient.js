// patient.js - the patient's view (docs/CONSOLE.md §Patient): enrol this
// browser as a device, log in, see and download records, grant and revoke
// contracts (RFC 8785 canonical JSON signed with the device key), and watch
// every access to the records as it happens, break-glass reads marked.
import { h, $, clear, say, isoTime, download, b64url, labelled } from "./util.js";

const RECORD_COLS = ["record", "category", "type", "bytes", "stored by", "stored", ""];
const CONTRACT_COLS = ["contract", "grantee", "may", "purpose", "state", ""];
const ACCESS_COLS = ["entry", "time", "by", "action", "decision", "reason", "record", "receipt"];
import { jcs } from "./ledger.js";
import { loadDevice, forgetDevice, enrol, Session } from "./device.js";

const PURPOSES = ["treatment", "emergency", "research", "payment", "operations", "public_health"];
const nonce = () => b64url(crypto.getRandomValues(new Uint8Array(18)));

export function mountPatient(root) {
  const status = h("p#p-status.status", { role: "status", "aria-live": "polite" });
  let session = null;
  let pollTimer = null;
  let stopped = false;
  const seen = new Set();

  async function start() {
    const dev = await loadDevice();
    if (dev) showLogin(dev);
    else showEnrol();
  }

  function field(id, label, attrs = {}) {
    return h("div.field", {}, h("label", { for: id }, label), h(`input#${id}`, { name: id, autocomplete: "off", ...attrs }));
  }

  function showEnrol() {
    const form = h(
      "form#enrol",
      { "aria-labelledby": "enrol-h" },
      field("e-pid", "Patient id (from your hospital)", { required: true, spellcheck: "false" }),
      field("e-code", "Enrolment code", { required: true, spellcheck: "false" }),
      h("button", { type: "submit" }, "Enrol this browser"),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      say(status, "creating a device key and enrolling…");
      try {
        const dev = await enrol($("#e-pid", form).value.trim(), $("#e-code", form).value.trim());
        say(status, `enrolled; device key ${dev.jkt}`);
        showLogin(dev);
      } catch (e) {
        say(status, `enrolment failed: ${e.message}`, true);
      }
    });
    clear(
      root,
      h(
        "section",
        { "aria-labelledby": "enrol-h" },
        h("h2#enrol-h", {}, "Enrol this browser"),
        h(
          "p",
          {},
          "Your hospital gave you a patient id and a one-time code. Enrolling makes a signing key inside this browser " +
            "that cannot be copied out of it (a non-extractable WebCrypto key kept in IndexedDB) and proves to the gateway that you hold it.",
        ),
        form,
        status,
      ),
    );
    $("#e-pid", form).focus();
  }

  function showLogin(dev) {
    clear(
      root,
      h(
        "section",
        { "aria-labelledby": "login-h" },
        h("h2#login-h", {}, "Log in"),
        h("p", {}, "Patient ", h("code.id", {}, dev.patientId), ", device key ", h("code.id", {}, dev.jkt), "."),
        h("button#login", { type: "button", onclick: () => login(dev) }, "Log in with this device"),
        h("button#forget", { type: "button", onclick: async () => (await forgetDevice(), showEnrol()) }, "Forget this device"),
        status,
      ),
    );
    $("#login", root).focus();
  }

  async function login(dev) {
    say(status, "logging in…");
    try {
      session = new Session(dev);
      await session.login();
      const me = await session.json("GET", "/v1/whoami");
      say(status, `logged in as ${me.id}`);
      showHome(dev);
    } catch (e) {
      say(status, `login failed: ${e.message}`, true);
    }
  }

  function showHome(dev) {
    const records = h("div#records");
    const contracts = h("div#contracts");
    const access = h("tbody#access");
    const grant = h(
      "form#grant",
      { "aria-labelledby": "grant-h" },
      field("g-server", "Hospital server id", { required: true, spellcheck: "false", placeholder: "srv-…" }),
      h(
        "fieldset",
        {},
        h("legend", {}, "It may"),
        h("label", {}, h("input#g-read", { type: "checkbox", checked: true }), " read"),
        h("label", {}, h("input#g-append", { type: "checkbox", checked: true }), " add records"),
      ),
      h(
        "div.field",
        {},
        h("label", { for: "g-purpose" }, "Purpose"),
        h("select#g-purpose", {}, PURPOSES.map((p) => h("option", { value: p }, p))),
      ),
      field("g-days", "Valid for (days)", { inputmode: "numeric", value: "30" }),
      h("button", { type: "submit" }, "Sign and grant"),
    );
    grant.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const now = Math.floor(Date.now() / 1000);
        const actions = [];
        if ($("#g-read", grant).checked) actions.push("read");
        if ($("#g-append", grant).checked) actions.push("append");
        const contract = {
          type: "ehrgate.contract.v1",
          patient: dev.patientId,
          grantee: { server: $("#g-server", grant).value.trim() },
          actions,
          scope: { all: true },
          purpose: $("#g-purpose", grant).value,
          not_before: now - 60,
          not_after: now + Number($("#g-days", grant).value || 30) * 86400,
          issued_at: now,
          nonce: nonce(),
        };
        const signature = await signDoc(contract);
        const r = await session.json("POST", "/v1/me/contracts", { contract, signature });
        say(status, `contract ${r.cid} granted (ledger entry ${r.seq})`);
        loadContracts();
      } catch (e) {
        say(status, `grant failed: ${e.message}`, true);
      }
    });

    async function signDoc(doc) {
      const bytes = new TextEncoder().encode(jcs(doc));
      return b64url(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, dev.privateKey, bytes));
    }

    async function loadRecords() {
      try {
        const j = await session.json("GET", `/v1/patients/${dev.patientId}/records`);
        const rows = j.records.map((r) =>
          labelled(RECORD_COLS, h(
            "tr",
            { "data-record": r.record_id },
            h("td.id", {}, r.record_id),
            h("td", {}, r.category || "—"),
            h("td", {}, r.content_type),
            h("td", {}, String(r.size)),
            h("td", {}, r.stored_by),
            h("td", {}, isoTime(r.created_ms)),
            h(
              "td",
              {},
              r.state === "stored"
                ? h("button", { type: "button", onclick: () => fetchRecord(r), "aria-label": `download record ${r.record_id}` }, "Download")
                : r.state,
            ),
          )),
        );
        clear(records, table(`${j.records.length} records`, RECORD_COLS, rows));
      } catch (e) {
        say(status, `records: ${e.message}`, true);
      }
    }

    async function fetchRecord(r) {
      try {
        const res = await session.fetch("GET", `/v1/records/${r.record_id}`, undefined, "*/*");
        const data = await res.arrayBuffer();
        if (String(data.byteLength) !== res.headers.get("X-EHR-Size")) throw new Error("the record arrived incomplete");
        download(`${r.record_id}.bin`, r.content_type, data);
        say(status, `record ${r.record_id} downloaded (${data.byteLength} bytes; this read is ledger entry ${res.headers.get("X-EHR-Ledger-Seq")})`);
      } catch (e) {
        say(status, `download failed: ${e.message}`, true);
      }
    }

    async function loadContracts() {
      try {
        const j = await session.json("GET", "/v1/me/contracts");
        const rows = j.contracts.map((c) =>
          labelled(CONTRACT_COLS, h(
            "tr",
            { "data-cid": c.cid },
            h("td.id", {}, c.cid),
            h("td.id", {}, c.contract.grantee.server || `group ${c.contract.grantee.group}`),
            h("td", {}, c.contract.actions.join(", ")),
            h("td", {}, c.contract.purpose),
            h("td", {}, c.state),
            h("td", {}, c.state === "revoked" ? "" : h("button", { type: "button", onclick: () => revoke(c), "aria-label": `revoke contract ${c.cid}` }, "Revoke")),
          )),
        );
        clear(contracts, table(`${j.contracts.length} contracts`, CONTRACT_COLS, rows));
      } catch (e) {
        say(status, `contracts: ${e.message}`, true);
      }
    }

    async function revoke(c) {
      try {
        const revocation = {
          type: "ehrgate.revocation.v1",
          patient: dev.patientId,
          cid: c.cid,
          issued_at: Math.floor(Date.now() / 1000),
          nonce: nonce(),
        };
        const signature = await signDoc(revocation);
        const r = await session.json("POST", `/v1/me/contracts/${c.cid}/revoke`, { revocation, signature });
        say(status, `contract ${c.cid} revoked (ledger entry ${r.seq})`);
        loadContracts();
      } catch (e) {
        say(status, `revoke failed: ${e.message}`, true);
      }
    }

    // Every access decision about this patient's records, newest first:
    // from the patient's live stream (GET /v1/me/access/stream, docs/AUDIT.md
    // §10) where the gateway has it, else polled (GET /v1/me/access-log)
    // every 1.5 s from the last seq seen. Rows are keyed by seq, so the two
    // sources never show an entry twice.
    let nextFrom = 0;
    let streaming = false;
    function showAccess(e) {
      nextFrom = Math.max(nextFrom, e.seq + 1);
      if (seen.has(e.seq)) return;
      seen.add(e.seq);
      const bg = e.break_glass === true;
      const deny = e.decision !== "allow";
      access.prepend(
        labelled(ACCESS_COLS, h(
          `tr${bg || deny ? ".alert" : ""}`,
          { "data-seq": e.seq },
          h("td", {}, String(e.seq)),
          h("td", {}, e.time),
          h("td.id", {}, e.requester),
          h("td", {}, e.action || "—"),
          h("td", {}, e.decision, bg ? h("span.badge", {}, "BREAK-GLASS") : null, deny ? h("span.badge", {}, "DENIED") : null),
          h("td", {}, e.reason || "—"),
          h("td.id", {}, e.record || "—"),
          h("td", {}, e.receipt ? h("a", { href: e.receipt }, "receipt") : "not yet available"),
        )),
      );
      if (bg) say(status, `break-glass read of record ${e.record} by ${e.requester}`);
    }

    // One poll loop (every 1.5 s, or every 5 s as a safety net beside a
    // working stream).
    let polling = false;
    function startPolling() {
      if (!polling) {
        polling = true;
        pollAccess();
      }
    }
    async function pollAccess() {
      if (stopped) return;
      try {
        for (;;) {
          const j = await session.json("GET", `/v1/me/access-log?from_seq=${nextFrom}&limit=200`);
          j.entries.forEach(showAccess);
          if (!j.next_cursor) break;
        }
      } catch (e) {
        say(status, `access log: ${e.message}`, true);
      }
      loadRecordsMaybe();
      pollTimer = setTimeout(pollAccess, streaming ? 5000 : 1500);
    }

    // The stream with fetch (EventSource cannot send the DPoP headers): a
    // new proof per connection, Last-Event-ID to resume. Any failure (the
    // route is absent: 404) falls back to polling.
    async function streamAccess(lastId) {
      if (stopped) return;
      const path = "/v1/me/access/stream";
      let res;
      try {
        res = await session.fetch("GET", `${path}?heartbeat=15${lastId ? "" : `&from=${nextFrom}`}`, undefined, "text/event-stream", lastId ? { "Last-Event-ID": lastId } : {});
      } catch (e) {
        streaming = false;
        return;
      }
      streaming = true;
      let last = lastId, buf = "", ended = false;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (stopped) return reader.cancel();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const ev = { data: "" };
            for (const line of buf.slice(0, i).split("\n")) {
              const c = line.indexOf(":");
              if (c === 0) continue;
              const k = c < 0 ? line : line.slice(0, c), v = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
              if (k === "data") ev.data += v;
              else ev[k] = v;
            }
            buf = buf.slice(i + 2);
            if (ev.id) last = ev.id;
            if (ev.event === "end") ended = true;
            if (ev.event === "access.decision" && ev.data) {
              const d = JSON.parse(ev.data);
              showAccess({ seq: d.index, time: d.time, requester: d.actor, action: d.action, decision: d.decision, reason: d.reason, record: d.record, break_glass: d.break_glass, receipt: d.receipt });
            }
            if (ev.event === "ehr.store" || ev.event === "ehr.read") loadRecordsMaybe();
          }
        }
      } catch (e) {
        /* the connection broke: resume below */
      }
      if (ended) session.token = null; // the token ended the stream: log in again
      if (stopped) return;
      streaming = false;
      setTimeout(() => streamAccess(last), 1000);
    }
    // Reload the records list at most every 3 s; a request inside that
    // window is kept for its end, so the newest upload is never missed.
    let lastRecordsLoad = 0, recordsPending = null;
    function loadRecordsMaybe() {
      const wait = lastRecordsLoad + 3000 - Date.now();
      if (wait <= 0) {
        lastRecordsLoad = Date.now();
        loadRecords();
      } else if (!recordsPending) {
        recordsPending = setTimeout(() => ((recordsPending = null), loadRecordsMaybe()), wait);
      }
    }

    clear(
      root,
      h(
        "section",
        { "aria-labelledby": "home-h" },
        h("h2#home-h", { tabindex: "-1" }, "Your records"),
        h("p", {}, "Patient ", h("code.id", {}, dev.patientId)),
        status,
        records,
        h("button", { type: "button", onclick: loadRecords }, "Refresh records"),
      ),
      h(
        "section",
        { "aria-labelledby": "access-h" },
        h("h2#access-h", {}, "Who accessed your records"),
        h("p", {}, "Every decision the gateway made about your records, as it happens. Break-glass (emergency) reads and denials are marked."),
        table("Newest first", ACCESS_COLS, access),
      ),
      h("section", { "aria-labelledby": "contracts-h" }, h("h2#contracts-h", {}, "Your contracts"), contracts),
      h("section", { "aria-labelledby": "grant-h" }, h("h2#grant-h", {}, "Grant access to a hospital"), grant),
    );
    $("#home-h", root).focus();
    loadContracts();
    loadRecords();
    startPolling();
    streamAccess("");
  }

  function table(caption, cols, body) {
    const tbody = body instanceof Node ? body : h("tbody", {}, body);
    return h(
      "div.scroll",
      { tabindex: "0", role: "region", "aria-label": caption },
      h("table.cards", {}, h("caption", {}, caption), h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c)))), tbody),
    );
  }

  start();
  return () => {
    stopped = true;
    clearTimeout(pollTimer);
  };
}
