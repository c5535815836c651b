// util.js - bytes, base64 and a tiny DOM builder shared by both views.

export const te = new TextEncoder();
export const td = new TextDecoder("utf-8", { fatal: true });

export function b64decode(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64encode(bytes) {
  let s = "";
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
  return btoa(s);
}

export const b64url = (bytes) => b64encode(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
export const b64urlText = (text) => b64url(te.encode(text));

export function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// h("tag#id.class", {attr: v, onclick: fn}, children...): an element. Text
// children become text nodes (never HTML), so nothing served is ever parsed
// as markup.
export function h(spec, attrs, ...kids) {
  const [tagId, ...cls] = spec.split(".");
  const [tag, id] = tagId.split("#");
  const el = document.createElement(tag);
  if (id) el.id = id;
  if (cls.length) el.className = cls.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat(Infinity)) if (k !== null && k !== undefined && k !== false)
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function clear(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
  return el;
}

// A status line for screen readers and eyes (role=status, aria-live).
export function say(el, text, bad = false) {
  el.textContent = text;
  el.classList.toggle("bad", !!bad);
}

export function isoTime(ms) {
  return new Date(ms).toISOString();
}

// Download bytes as a file (an object URL on this origin; no other origin).
export function download(name, type, data) {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// The error of a refused reply: {"error":{"code","message"}} or FHIR's.
export async function replyError(res) {
  let msg = `${res.status}`;
  try {
    const j = await res.json();
    if (j.error) msg += ` ${j.error.code}: ${j.error.message}`;
    else if (j.issue) msg += ` ${j.issue[0]?.details?.text || ""}`;
  } catch (e) {
    /* not JSON */
  }
  return new Error(msg);
}

// Name each cell of a row after its column (data-label): on a phone-sized
// screen the stylesheet shows each row as a card of "label: value" lines.
export function labelled(cols, tr) {
  Array.from(tr.children).forEach((td, i) => td.setAttribute("data-label", cols[i] || ""));
  return tr;
}
