// auditor.js - the auditor's view (docs/CONSOLE.md §Auditor): search and
// export ledger entries, open one and verify it in the browser, a live tail
// of the SSE stream, and the log's health. Every request is same-origin;
// the browser presents the auditor's client certificate in the TLS
// handshake (mutual TLS), so no credential is held by this page.
import { h, $, clear, say, isoTime, download, replyError, labelled } from "./util.js";

const ENTRY_COLS = ["seq", "time (UTC)", "type", "actor", "subject"];
import { parseVkey, verifyEntry, verifyCheckpoint, CheckError } from "./ledger.js";

const VKEY = "ehrgate.console.vkey"; // the pinned ledger key: public, not a secret

async function get(path, accept = "application/json") {
  const res = await fetch(path, { headers: { Accept: accept }, cache: "no-store" });
  if (!res.ok) throw await replyError(res);
  return res;
}

// What marks an entry out: a break-glass read, a denial, a refusal.
export function alertOf(e) {
  const p = e.payload || {};
  if (p.break_glass === true) return "BREAK-GLASS";
  if (p.decision === "deny") return "DENIED";
  if (p.outcome === "failure") return "REFUSED";
  return null;
}

function entryRow(e, onOpen) {
  const alert = alertOf(e);
  return labelled(ENTRY_COLS, h(
    `tr${alert ? ".alert" : ""}`,
    { "data-seq": e.seq },
    h("td", {}, h("button.link", { type: "button", onclick: () => onOpen(e), "aria-label": `open entry ${e.seq}` }, String(e.seq))),
    h("td", {}, h("time", { datetime: isoTime(e.ts_ms) }, isoTime(e.ts_ms).replace("T", " ").replace("Z", ""))),
    h("td", {}, e.type, alert ? h("span.badge", {}, alert) : null),
    h("td.id", {}, e.actor),
    h("td.id", {}, e.subject || "—"),
  ));
}

function entryTable(caption, rows) {
  return h(
    "div.scroll",
    { tabindex: "0", role: "region", "aria-label": caption },
    h(
      "table.cards",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, ENTRY_COLS.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows),
    ),
  );
}

export function mountAuditor(root) {
  const state = { cursors: [], page: null, vk: null };
  const status = h("p.status", { role: "status", "aria-live": "polite" });
  const vkeyInput = h("input#vkey", { type: "text", spellcheck: "false", autocomplete: "off", value: localStorage.getItem(VKEY) || "" });
  const field = (id, label, attrs = {}) =>
    h("div.field", {}, h("label", { for: id }, label), h(`input#${id}`, { name: id, autocomplete: "off", ...attrs }));
  const form = h(
    "form#search",
    { "aria-labelledby": "search-h" },
    field("f-type", "Type", { placeholder: "ehr.store" }),
    field("f-actor", "Actor", { placeholder: "srv-… / aud-… / pt-…" }),
    field("f-subject", "Subject", { placeholder: "pt-…" }),
    field("f-since", "From time (UTC)", { type: "datetime-local", step: "1" }),
    field("f-until", "Until time (UTC)", { type: "datetime-local", step: "1" }),
    field("f-from", "From index", { inputmode: "numeric", pattern: "[0-9]*" }),
    field("f-to", "To index", { inputmode: "numeric", pattern: "[0-9]*" }),
    field("f-limit", "Page size", { inputmode: "numeric", value: "50" }),
    h(
      "div.buttons",
      {},
      h("button", { type: "submit" }, "Search"),
      h("button#export-json", { type: "button", onclick: () => exportAs("json") }, "Export JSON"),
      h("button#export-fhir", { type: "button", onclick: () => exportAs("fhir") }, "Export FHIR"),
    ),
  );
  const results = h("div#results");
  const pager = h(
    "div.buttons",
    {},
    h("button#prev", { type: "button", disabled: true, onclick: () => page(-1) }, "Previous page"),
    h("button#next", { type: "button", disabled: true, onclick: () => page(1) }, "Next page"),
  );
  const detail = h("section#detail", { "aria-labelledby": "detail-h", hidden: true });
  const tailList = h("tbody");
  const tailStatus = h("p#tail-status.status", { role: "status", "aria-live": "polite" }, "stopped");
  const health = h("dl#health");

  clear(
    root,
    h(
      "section",
      { "aria-labelledby": "key-h" },
      h("h2#key-h", {}, "Pinned ledger key"),
      h(
        "p",
        {},
        "The verifier key you obtained out of band (",
        h("code", {}, "ehrgate ledger vkey"),
        "). Proofs are checked against it, never against a key this server sends.",
      ),
      h("div.field.wide", {}, h("label", { for: "vkey" }, "Ledger vkey"), vkeyInput),
      h("button#pin", { type: "button", onclick: pin }, "Pin key"),
    ),
    h("section", { "aria-labelledby": "search-h" }, h("h2#search-h", {}, "Search the ledger"), form, status, results, pager),
    detail,
    h(
      "section",
      { "aria-labelledby": "tail-h" },
      h("h2#tail-h", {}, "Live tail"),
      h("button#tail-toggle", { type: "button", "aria-pressed": "false", onclick: toggleTail }, "Start live tail"),
      tailStatus,
      entryTable("Newest entries first", tailList),
    ),
    h(
      "section",
      { "aria-labelledby": "health-h" },
      h("h2#health-h", {}, "Log health"),
      health,
      h("button#health-refresh", { type: "button", onclick: refreshHealth }, "Refresh"),
    ),
  );

  async function pin() {
    try {
      state.vk = await parseVkey(vkeyInput.value);
      localStorage.setItem(VKEY, vkeyInput.value.trim());
      say(status, `ledger key pinned: ${state.vk.name}`);
    } catch (e) {
      state.vk = null;
      say(status, e.message, true);
    }
  }

  function query(extra = {}) {
    const q = new URLSearchParams();
    const v = (id) => $(`#${id}`, form).value.trim();
    const ms = (id) => (v(id) ? String(Date.parse(v(id) + "Z")) : "");
    const set = (k, val) => val && q.set(k, val);
    set("type", v("f-type"));
    set("actor", v("f-actor"));
    set("subject", v("f-subject"));
    set("since", ms("f-since"));
    set("until", ms("f-until"));
    set("from_seq", v("f-from"));
    set("to_seq", v("f-to"));
    set("limit", v("f-limit"));
    for (const [k, val] of Object.entries(extra)) set(k, val);
    return q;
  }

  async function search(cursor) {
    say(status, "searching…");
    try {
      const q = query(cursor ? { cursor } : {});
      const j = await (await get(`/v1/audit/entries?${q}`)).json();
      state.page = j;
      clear(results, entryTable(`${j.entries.length} entries`, j.entries.map((e) => entryRow(e, open))));
      $("#next", pager).disabled = !j.next_cursor;
      $("#prev", pager).disabled = state.cursors.length === 0;
      say(status, j.entries.length ? `${j.entries.length} entries shown` : "no entry matches");
    } catch (e) {
      say(status, `search failed: ${e.message}`, true);
    }
  }

  function page(dir) {
    if (dir > 0 && state.page?.next_cursor) {
      state.cursors.push(state.current || "");
      state.current = state.page.next_cursor;
    } else if (dir < 0 && state.cursors.length) {
      state.current = state.cursors.pop();
    }
    search(state.current);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.cursors = [];
    state.current = "";
    search("");
  });

  async function exportAs(kind) {
    try {
      const q = query(state.current ? { cursor: state.current } : {});
      const res = await get(`/v1/audit/entries?${q}`, kind === "fhir" ? "application/fhir+json" : "application/json");
      const text = await res.text();
      download(kind === "fhir" ? "audit-events.fhir.json" : "ledger-entries.json", res.headers.get("Content-Type"), text);
      say(status, `exported ${kind === "fhir" ? "a FHIR Bundle of AuditEvents" : "the entries as JSON"}`);
    } catch (e) {
      say(status, `export failed: ${e.message}`, true);
    }
  }

  async function open(e) {
    const list = h("ol#checks");
    const verdict = h("p#verdict.status", { role: "status", "aria-live": "assertive" }, "verifying…");
    const heading = h("h2#detail-h", { tabindex: "-1" }, `Entry ${e.seq}`);
    const alert = alertOf(e);
    clear(
      detail,
      heading,
      alert ? h("p.alert-text", {}, `This entry is marked ${alert}.`) : null,
      h(
        "dl",
        {},
        ["type", "actor", "subject"].map((k) => [h("dt", {}, k), h("dd.id", {}, e[k] || "—")]),
        h("dt", {}, "time"),
        h("dd", {}, isoTime(e.ts_ms)),
        h("dt", {}, "block"),
        h("dd", {}, String(e.block_height)),
      ),
      h("h3", {}, "Decoded payload"),
      h("pre.payload", { tabindex: "0", "aria-label": "decoded payload" }, JSON.stringify(e.payload, null, 2)),
      h("h3", {}, "What the browser checked"),
      list,
      verdict,
      h("button", { type: "button", onclick: () => ((detail.hidden = true), results.querySelector(`[data-seq="${e.seq}"] button`)?.focus()) }, "Close"),
    );
    detail.hidden = false;
    heading.focus();
    if (!state.vk) await pin();
    if (!state.vk) {
      say(verdict, "NOT VERIFIED: pin the ledger key first", true);
      return;
    }
    try {
      const r = await verifyEntry(
        e,
        state.vk,
        {
          checkpoint: async () => (await get("/v1/ledger/checkpoint", "text/plain")).text(),
          proof: async (i, n) => (await get(`/v1/ledger/proof/inclusion?index=${i}&size=${n}`)).json(),
        },
        (m) => list.append(h("li.ok", {}, "✓ ", m)),
      );
      detail.dataset.verified = "yes";
      say(verdict, `VERIFIED: entry ${e.seq} is in the ledger signed at tree size ${r.checkpoint.size} (${r.ms.toFixed(1)} ms)`);
    } catch (err) {
      detail.dataset.verified = "no";
      list.append(h("li.fail", {}, "✗ ", err.message));
      say(verdict, `VERIFICATION FAILED: ${err instanceof CheckError ? err.message : "could not fetch: " + err.message}`, true);
    }
  }

  // ---- live tail: EventSource resumes after a reconnect by itself, sending
  // Last-Event-ID (the last seq it saw), so no entry is skipped or repeated.
  let es = null;
  const delays = [];
  function toggleTail() {
    const btn = $("#tail-toggle", root);
    if (es) {
      es.close();
      es = null;
      btn.textContent = "Start live tail";
      btn.setAttribute("aria-pressed", "false");
      say(tailStatus, "stopped");
      return;
    }
    btn.textContent = "Stop live tail";
    btn.setAttribute("aria-pressed", "true");
    connect("");
  }

  // EventSource gives up for good when a reconnect is answered with an error
  // status (503 while the database is down, or the gateway's stream limit):
  // then a new one starts at the next seq (?since=, inclusive), after 2 s.
  let lastSeen = "";
  function connect(since) {
    es = new EventSource(`/v1/audit/stream?heartbeat=5${since ? `&since=${since}` : ""}`);
    es.onopen = () => say(tailStatus, `connected${lastSeen ? `, resumed after entry ${lastSeen}` : ""}`);
    es.onerror = () => {
      say(tailStatus, `reconnecting${lastSeen ? ` (will resume after entry ${lastSeen})` : ""}…`, true);
      if (es && es.readyState === EventSource.CLOSED) {
        const old = es;
        setTimeout(() => es === old && connect(lastSeen ? String(Number(lastSeen) + 1) : ""), 2000);
      }
    };
    es.addEventListener("entry", (ev) => {
      const e = JSON.parse(ev.data);
      lastSeen = ev.lastEventId;
      delays.push(Date.now() - e.ts_ms);
      if (delays.length > 200) delays.shift();
      tailList.prepend(entryRow(e, open));
      while (tailList.children.length > 100) tailList.lastChild.remove();
    });
  }

  // ---- health: the checkpoint (size, growth), the newest entry's time,
  // and what /readyz says about publication and witnesses when it says it.
  const samples = [];
  async function refreshHealth() {
    const rows = [];
    const row = (k, v, id) => rows.push(h("dt", {}, k), h("dd", { id }, v));
    try {
      const note = await (await get("/v1/ledger/checkpoint", "text/plain")).text();
      let size, cpText = "not verified (pin the ledger key)", witnesses = [];
      if (state.vk) {
        const cp = await verifyCheckpoint(note, state.vk);
        size = cp.size;
        witnesses = cp.witnesses;
        cpText = `verified, tree size ${cp.size}`;
      } else size = Number(note.split("\n")[1]);
      samples.push({ t: Date.now(), size });
      while (samples.length > 2 && samples[samples.length - 1].t - samples[0].t > 10 * 60000) samples.shift();
      const first = samples[0], last = samples[samples.length - 1];
      const perMin = last.t > first.t ? ((last.size - first.size) * 60000) / (last.t - first.t) : null;
      row("tree size", String(size), "h-size");
      row("growth", perMin === null ? "measuring (refresh again)" : `${perMin.toFixed(1)} entries/min`, "h-growth");
      row("last checkpoint", cpText, "h-checkpoint");
      if (size > 0) {
        const j = await (await get(`/v1/audit/entries?from_seq=${size - 1}&limit=1`)).json();
        if (j.entries[0]) row("last block time", isoTime(j.entries[0].ts_ms), "h-time");
      }
      const sorted = [...delays].sort((a, b) => a - b);
      row(
        "commit → browser (live tail)",
        sorted.length ? `p50 ${sorted[sorted.length >> 1]} ms over ${sorted.length} entries` : "start the live tail to measure",
        "h-delay",
      );
      let ready = null;
      try {
        ready = await (await fetch("/readyz", { cache: "no-store" })).json();
      } catch (e) {
        /* not JSON: nothing more to show */
      }
      const lat = ready?.ledger || ready?.checks?.ledger;
      row("append latency", lat?.append_ms !== undefined ? `${lat.append_ms} ms` : "not reported by this gateway (see /metrics)", "h-append");
      // /readyz "publication" (docs/LEDGER.md §13): present with [witness].
      const pub = ready?.publication;
      row(
        "publication",
        pub
          ? `${pub.state}: ${pub.cosigners} of ${pub.witnesses} witnesses cosigned (quorum ${pub.quorum}); published ${pub.published_size} of ${pub.head_size}, lag ${pub.lag_ms} ms`
          : "no witnesses configured: the ledger's own signature only",
        "h-publication",
      );
      const ws = Array.isArray(pub?.witness) ? pub.witness : [];
      const wtext = ws.length
        ? ws
            .map((w) =>
              w.cosigned_ms > 0
                ? `${w.name}: last cosigned size ${w.cosigned_size} at ${isoTime(w.cosigned_ms)}${w.ok ? "" : ` (now failing, HTTP ${w.last_status || "unreachable"})`}`
                : `${w.name}: never cosigned${w.last_status ? ` (HTTP ${w.last_status})` : ""}`,
            )
            .join("; ")
        : witnesses.length
          ? witnesses.map((w) => `${w.name} (cosigned this checkpoint)`).join("; ")
          : "not configured";
      row("witnesses", wtext, "h-witnesses");
    } catch (e) {
      row("error", e.message, "h-error");
    }
    clear(health, rows);
  }

  if (vkeyInput.value) pin();
  refreshHealth();
}
