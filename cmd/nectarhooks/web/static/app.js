// The page of "nectarhooks listen": the server renders the deliveries kept
// when the page loads (web/listen.html); this script adopts those rows, keeps
// the list up to date from the server-sent event stream, and shows the detail
// of the one opened.
// Everything shown from a delivery is untrusted text from the network, so
// it only ever goes into the page as textContent, never as markup.
"use strict";

const rows = new Map(); // seq -> {summary, tr}
let selected = 0;        // the seq whose detail is open, 0 for none

const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

function timeOf(iso) {
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toLocaleTimeString([], { hour12: false });
}

function verdictText(v) {
  return v.ok ? "verified" : v.title;
}

function answerText(s) {
  const f = s.lastReplay || s.forward;
  if (!f) return s.answer.text;
  const tag = s.lastReplay ? "replay " : "";
  if (f.answer) return tag + "→ " + f.answer.text + " in " + f.millis.toFixed(1) + " ms";
  return tag + "→ no answer: " + f.error;
}

// adopt takes over the rows the server rendered: the stream's backlog then
// replaces each in place, by its seq.
function adopt() {
  for (const tr of $("deliveries").rows) {
    const seq = Number(tr.dataset.seq);
    tr.addEventListener("click", () => open(seq));
    rows.set(seq, { summary: null, tr });
  }
}

function upsert(s) {
  let row = rows.get(s.seq);
  const tr = row ? row.tr : el("tr");
  tr.replaceChildren(
    el("td", String(s.seq)),
    el("td", timeOf(s.received)),
    el("td", s.id || "(no id)"),
    el("td", s.type || "(no type)"),
    el("td", verdictText(s.verdict), s.verdict.ok ? "ok" : "bad"),
    el("td", answerText(s)),
  );
  tr.dataset.seq = s.seq;
  tr.dataset.type = s.type;
  tr.dataset.ok = s.verdict.ok ? "ok" : "failed";
  tr.title = s.verdict.ok ? "verified" : s.verdict.title;
  if (!row) {
    tr.addEventListener("click", () => open(s.seq));
    $("deliveries").prepend(tr);
    rows.set(s.seq, { summary: s, tr });
  } else {
    row.summary = s;
  }
  addTypeOption(s.type);
  applyFilter(tr);
  $("empty").hidden = true;
  $("count").textContent = rows.size + (rows.size === 1 ? " delivery" : " deliveries");
  if (s.seq === selected) open(s.seq);
}

function addTypeOption(type) {
  const sel = $("filter-type");
  if (!type || [...sel.options].some((o) => o.value === type)) return;
  const o = el("option", type);
  o.value = type;
  sel.append(o);
}

function applyFilter(tr) {
  const type = $("filter-type").value, verdict = $("filter-verdict").value;
  tr.hidden = (type !== "" && tr.dataset.type !== type) || (verdict !== "" && tr.dataset.ok !== verdict);
}

function applyFilters() {
  for (const { tr } of rows.values()) applyFilter(tr);
}

async function open(seq) {
  selected = seq;
  for (const { tr } of rows.values()) tr.classList.toggle("selected", Number(tr.dataset.seq) === seq);
  const resp = await fetch("/_nectarhooks/deliveries/" + seq, { cache: "no-store" });
  const d = await resp.json();
  if (seq !== selected) return;
  if (!resp.ok) {
    $("d-title").textContent = d.error;
    return;
  }
  show(d);
}

function fact(dl, name, value) {
  dl.append(el("dt", name), el("dd", value));
}

function forwardText(f) {
  if (f.answer) return f.answer.text + " in " + f.millis.toFixed(1) + " ms" + (f.answer.body ? ": " + f.answer.body : "");
  return "no answer after " + f.millis.toFixed(1) + " ms: " + f.error;
}

function show(d) {
  $("detail").hidden = false;
  $("d-title").textContent = "#" + d.seq + "  " + (d.type || "(no event type)") + "  " + (d.id || "(no svix-id)");
  const v = $("d-verdict");
  v.textContent = d.verdict.ok ? "✓ verified" : "✗ not verified: " + d.verdict.title;
  v.className = "verdict " + (d.verdict.ok ? "ok" : "bad");
  v.dataset.check = d.verdict.check;
  $("d-reason").textContent = (d.verdict.reason || []).join("\n");

  const facts = $("d-facts");
  facts.replaceChildren();
  fact(facts, "received", new Date(d.received).toISOString() + " from " + d.remote);
  fact(facts, "request", d.method + " " + d.path);
  fact(facts, "answered", d.answer.text + (d.answer.body ? ": " + d.answer.body.trim() : ""));
  fact(facts, "timings", "verify " + d.verifyMicros + " µs, whole delivery " + d.totalMillis.toFixed(2) + " ms");

  const fw = $("d-forward");
  fw.replaceChildren();
  if (!d.forward) {
    fw.append(el("p", d.verdict.ok ? "Not forwarded (no -forward-to)." : "Not forwarded: it did not verify.", "empty"));
  } else {
    const dl = el("dl", undefined, "facts");
    fact(dl, "first delivery", forwardText(d.forward));
    (d.replays || []).forEach((r, i) => fact(dl, "replay " + (i + 1), new Date(r.at).toLocaleTimeString([], { hour12: false }) + ", timestamp " + r.timestamp + ": " + forwardText(r)));
    fw.append(dl);
  }
  $("replay").disabled = !d.canReplay;
  $("replay").title = d.canReplay ? "Send it to the forward target again: same svix-id, new timestamp and signature"
    : d.verdict.ok ? "Start listen with -forward-to URL to replay" : "Only verified deliveries are replayed";

  $("d-headers").replaceChildren(...d.headers.map(([k, val]) => {
    const tr = el("tr");
    tr.append(el("td", k), el("td", val));
    return tr;
  }));
  $("d-size").textContent = d.size + " bytes";
  $("d-raw").textContent = d.bodyText;
  $("d-pretty").textContent = d.pretty || "(not JSON: see raw)";
  $("d-decoded").textContent = d.decodedAs
    ? d.decodedAs + "\n" + JSON.stringify(d.decoded, null, 2)
    : "nectarhooks.Parse refused it: " + (d.decodeError || "no body");
}

async function replay() {
  const out = $("replay-result");
  out.textContent = "replaying…";
  const resp = await fetch("/_nectarhooks/deliveries/" + selected + "/replay", {
    method: "POST",
    headers: { "X-Nectarhooks-Replay": "1" },
  });
  const r = await resp.json();
  out.textContent = resp.ok ? "replayed: " + forwardText(r) : "not replayed: " + r.error;
}

function selectTab(name) {
  for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const t of ["pretty", "raw", "decoded"]) $("d-" + t).hidden = t !== name;
}

function connect() {
  const status = $("status");
  const es = new EventSource("/_nectarhooks/events");
  es.addEventListener("open", () => {
    status.textContent = "live";
    status.className = "status live";
  });
  es.addEventListener("delivery", (e) => upsert(JSON.parse(e.data)));
  es.addEventListener("ready", () => document.body.dataset.ready = "1");
  es.addEventListener("error", () => {
    status.textContent = "reconnecting…";
    status.className = "status";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  adopt();
  $("filter-type").addEventListener("change", applyFilters);
  $("filter-verdict").addEventListener("change", applyFilters);
  $("replay").addEventListener("click", replay);
  for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => selectTab(b.dataset.tab));
  connect();
});
