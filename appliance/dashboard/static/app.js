// savd dashboard: reads the JSON API, draws each view, stays live through the event stream (or polls).
// Every value from the API goes into the page as text (textContent), never as HTML.

import { api, ApiError, stream, token } from "./api.js";
import { drawGraph } from "./graph.js";

const POLL_MS = 3000; // without an event stream
const BACKSTOP_MS = 15000; // with one: counters and RPKI change without events
const STREAM_PATH = "/api/v1/events/stream";

const $ = (id) => document.getElementById(id);
const state = { router: "", open: new Set(), shown: new Map(), mode: "off", lastEventId: "", timer: 0 };

// h("td", {class: "x"}, "text", child, ...): an element with attributes and text or element children
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function table(headers, rows, attrs = {}) {
  return h("table", attrs, h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

const when = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "—");

// Redraw a view only when its data changed, so open details and focus survive a refresh.
function show(view, data, draw) {
  const key = JSON.stringify(data);
  if (state.shown.get(view) === key) return;
  state.shown.set(view, key);
  draw(data);
}

// --- views ------------------------------------------------------------------------------------------

function drawHealth(health) {
  const status = $("status");
  status.textContent = `${health.status} · state v${health.state_version} · rules ` +
    `${health.rules_version === null ? "not computed yet" : `v${health.rules_version}`} · ${health.alarms} alarm(s)`;
  status.className = `status ${health.status}`;
  if (health.degraded) status.title = health.degraded.join("; ");
}

function drawTopology(topology) {
  drawGraph($("graph"), topology, selectRouter);
  $("topology-summary").textContent = `${topology.routers.length} routers, ${topology.links.length} directed ` +
    `links, ${topology.interfaces.length} interfaces, ${topology.igp_prefixes.length} IGP prefixes, ` +
    `${topology.paths} BGP paths (state v${topology.version})`;
}

function selectRouter(router) {
  const select = $("rules-router");
  if (![...select.options].some((o) => o.value === router)) select.append(h("option", { value: router }, router));
  select.value = router;
  state.router = router;
  $("explain-router").value = router;
  state.shown.delete("rules");
  refresh();
  $("rules").scrollIntoView({ behavior: "smooth" });
}

function drawRules(doc) {
  const select = $("rules-router");
  const routers = [...new Set(doc.all.map((r) => r.router))].sort();
  const current = select.value;
  select.replaceChildren(h("option", { value: "" }, "all"), routers.map((r) => h("option", { value: r }, r)));
  select.value = routers.includes(current) ? current : "";
  $("rules-version").textContent = doc.version === null ? "no rules computed yet" : `state v${doc.version}`;
  const rules = doc.all.filter((r) => !state.router || r.router === state.router);
  const list = $("rules-list");
  if (!rules.length) {
    list.replaceChildren(h("p", { class: "muted" }, "no rules"));
    return;
  }
  list.replaceChildren(...rules.map((rule) => {
    const key = `${rule.router}:${rule.interface}`;
    const prefixes = rule.prefixes.map((prefix) => h("tr", { "data-prefix": prefix }, h("td", {}, prefix),
      h("td", {}, (rule.provenance[prefix] || []).join(", ") || "—")));
    const details = h("details", { class: "rule", "data-rule": key, open: state.open.has(key) },
      h("summary", {}, h("b", {}, key), ` ${rule.kind}list · ${rule.action.mode} · ${rule.algorithm} · ` +
        `${rule.delivery} · ${rule.prefixes.length} prefix(es)`,
      h("button", { type: "button", class: "small", onclick: (e) => { e.preventDefault(); explainFor(rule); } },
        "explain…")),
      prefixes.length ? table(["source prefix", "provenance"], prefixes) : h("p", { class: "muted" }, "empty list"));
    details.addEventListener("toggle", () => (details.open ? state.open.add(key) : state.open.delete(key)));
    return details;
  }));
}

function explainFor(rule) {
  $("explain-router").value = rule.router;
  $("explain-interface").value = rule.interface;
  $("explain-source").focus();
}

async function explainSubmit(event) {
  event.preventDefault();
  const out = $("explain-result");
  try {
    const doc = await api("/api/v1/explain", { params: { router: $("explain-router").value.trim(),
      interface: $("explain-interface").value.trim(), source: $("explain-source").value.trim() } });
    out.replaceChildren(h("p", { class: `verdict verdict-${doc.verdict}` }, `${doc.source}: ${doc.verdict}`),
      h("dl", {}, h("dt", {}, "why"), h("dd", {}, doc.reason),
        h("dt", {}, "listed prefix"), h("dd", {}, doc.matched_prefix || "—"),
        h("dt", {}, "provenance"), h("dd", {}, doc.provenance.join(", ") || "—"),
        h("dt", {}, "FlowSpec rule"), h("dd", {}, doc.flowspec_rule || "—"),
        h("dt", {}, "list, algorithm"), h("dd", {}, `${doc.list || "none"}, ${doc.algorithm || "—"}`)));
  } catch (err) {
    out.replaceChildren(h("p", { class: "error" }, err.message));
  }
}

function where(fields) {
  return ["router", "interface", "peer", "prefix"].filter((k) => fields[k]).map((k) => fields[k]).join(" ");
}

function drawAlarms(alarms) {
  $("alarms-count").textContent = `${alarms.length} raised`;
  if (!alarms.length) {
    $("alarms-list").replaceChildren(h("p", { class: "muted" }, "no alarm raised"));
    return;
  }
  const rows = alarms.map((a) => h("tr", { "data-alarm": a.id, "data-type": a.type, class: a.acked_at ? "acked" : "" },
    h("td", { class: `sev sev-${a.severity}` }, a.severity),
    h("td", {}, a.type), h("td", {}, where(a.fields)), h("td", {}, a.message),
    h("td", {}, `${when(a.raised_at)}${a.count > 1 ? ` ×${a.count}` : ""}`),
    h("td", {}, a.acked_at ? `acked ${when(a.acked_at)}` : h("button", { type: "button", class: "small ack",
      onclick: () => alarmAction("ack", a.id) }, "ack")),
    h("td", {}, h("button", { type: "button", class: "small clear", onclick: () => alarmAction("clear", a.id) },
      "clear"))));
  $("alarms-list").replaceChildren(table(["severity", "type", "where", "message", "raised", "ack", ""], rows));
}

async function alarmAction(action, id) {
  try {
    await api(`/api/v1/alarms/${action}`, { method: "POST", body: { id } });
    banner("");
    state.shown.delete("alarms");
    refresh();
  } catch (err) {
    banner(`${action} ${id}: ${err.message}`);
  }
}

// A spoofing trace (GET /api/v1/traces): where it enters, from whom, the top claimed sources over time.
const BARS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588";

function sparkline(series) {
  const top = Math.max(1, ...series.map((b) => b.packets));
  return series.map((b) => BARS[Math.min(7, Math.floor((b.packets / top) * 7.999))]).join("");
}

function upstreamText(u) {
  if (u.kind === "external") return `AS${u.asn ?? "?"} ${u.address} (${u.relationship || "eBGP"})`.trim();
  if (u.kind === "internal") return `${u.router} ${u.address}`.trim();
  return u.kind === "access" ? "attached hosts" : "unknown";
}

function traceRecord(t) {
  return h("div", { class: "trace", "data-trace": `${t.router}:${t.interface}` },
    h("p", {}, h("b", {}, `${t.router} ${t.interface}`), ` from ${(t.upstream || []).map(upstreamText).join(", ")}` +
      ` · ${t.packets} packets dropped · last ${when(t.last_seen)} · ${t.source_count} source prefix(es)`),
    table(["spoofed source", "packets", "bytes", "last seen", "over time"], (t.sources || []).map((s) =>
      h("tr", { "data-source": s.prefix }, h("td", {}, s.prefix), h("td", { class: "num" }, s.packets),
        h("td", { class: "num" }, s.bytes), h("td", {}, when(s.last_seen)),
        h("td", { class: "spark", title: "dropped packets per bucket" }, sparkline(s.series || []))))));
}

function drawSpoofing(doc) {
  const list = $("spoofing-list");
  if (doc.traces) {
    $("spoofing-source").textContent = "traces (GET /api/v1/traces)";
    list.replaceChildren(doc.traces.length ? h("div", {}, doc.traces.map(traceRecord))
      : h("p", { class: "muted" }, "no spoofed traffic traced"));
    return;
  }
  $("spoofing-source").textContent = "enforcer drop counters (GET /api/v1/counters)";
  const spoofed = doc.counters.filter((c) => c.spoofed && c.total_packets > 0);
  if (!spoofed.length) {
    list.replaceChildren(h("p", { class: "muted" }, "no spoofed packet counted"));
    return;
  }
  spoofed.sort((a, b) => b.total_packets - a.total_packets);
  list.replaceChildren(table(["router", "interface", "source prefix", "action", "packets", "bytes"],
    spoofed.map((c) => h("tr", { "data-counter": `${c.router}:${c.interface}:${c.source_prefix}` },
      h("td", {}, c.router), h("td", {}, c.interface), h("td", {}, c.source_prefix), h("td", {}, c.action),
      h("td", { class: "num" }, c.total_packets), h("td", { class: "num" }, c.total_bytes)))));
}

function drawRpki(doc) {
  const counts = Object.entries(doc.counts || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "no RPKI source";
  const caches = doc.caches.map((c) => h("tr", { "data-cache": c.name, class: c.active ? "active" : "" },
    h("td", {}, c.name), h("td", {}, c.state), h("td", {}, c.version ?? "—"), h("td", { class: "num" }, c.serial ?? "—"),
    h("td", { class: "num" }, c.vrps), h("td", { class: "num" }, c.aspas), h("td", {}, when(c.last_update)),
    h("td", {}, c.last_error || "")));
  const files = doc.files.map((f) => h("tr", {}, h("td", {}, f.path), h("td", { class: "num" }, f.vrps),
    h("td", { class: "num" }, f.aspas), h("td", {}, when(f.last_update)), h("td", {}, f.error || "")));
  $("rpki-body").replaceChildren(
    h("p", {}, `in use: ${doc.state.vrps} VRPs, ${doc.state.aspas} ASPAs (${counts})`),
    caches.length ? table(["RTR cache", "state", "version", "serial", "VRPs", "ASPAs", "updated", "error"], caches) : "",
    files.length ? table(["file", "VRPs", "ASPAs", "loaded", "error"], files) : "");
}

function drawPush(peers) {
  const names = Object.keys(peers).sort();
  if (!names.length) {
    $("push-list").replaceChildren(h("p", { class: "muted" }, "nothing pushed yet"));
    return;
  }
  $("push-list").replaceChildren(table(["peer", "FlowSpec rules held", ""], names.map((p) =>
    h("tr", { "data-peer": p }, h("td", {}, p), h("td", { class: "num" }, peers[p]),
      h("td", {}, h("button", { type: "button", class: "small", onclick: () => showPeer(p) }, "rules"))))));
}

async function showPeer(peer) {
  try {
    const doc = await api(`/api/v1/flowspec/${encodeURIComponent(peer)}`);
    $("push-detail").replaceChildren(h("h3", {}, `held by ${peer}`), table(["NLRI", "action", "groups"],
      doc.rules.map((r) => h("tr", {}, h("td", {}, r.key),
        h("td", {}, typeof r.rule === "string" ? r.rule : r.rule.action.kind),
        h("td", {}, typeof r.rule === "string" ? "" : r.rule.groups.join(" "))))));
  } catch (err) {
    banner(err.message);
  }
}

// --- refresh and live updates -----------------------------------------------------------------------

async function spoofing() {
  try {
    return await api("/api/v1/traces");
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return api("/api/v1/counters");
    throw err;
  }
}

const VIEWS = [
  ["health", () => api("/health"), drawHealth],
  ["topology", () => api("/api/v1/topology"), drawTopology],
  ["rules", async () => { const d = await api("/api/v1/rules"); return { version: d.version, all: d.rules }; },
    drawRules],
  ["alarms", async () => (await api("/api/v1/alarms")).alarms, drawAlarms],
  ["spoofing", spoofing, drawSpoofing],
  ["rpki", () => api("/api/v1/rpki"), drawRpki],
  ["push", async () => (await api("/api/v1/flowspec")).peers, drawPush],
];

let running = null;

async function refresh() {
  if (running) return running; // one refresh at a time; callers share it
  running = (async () => {
    const results = await Promise.allSettled(VIEWS.map(([, load]) => load()));
    const failed = [];
    results.forEach((result, i) => {
      const [view, , draw] = VIEWS[i];
      if (result.status === "fulfilled") show(view, result.value, draw);
      else failed.push([view, result.reason]);
    });
    if (failed.some(([, err]) => err instanceof ApiError && err.status === 401)) {
      askToken("savd refused the token (401): enter the API token");
      return;
    }
    banner(failed.map(([view, err]) => `${view}: ${err.message}`).join("; "));
    document.body.dataset.refreshed = String(Date.now());
  })();
  try {
    await running;
  } finally {
    running = null;
  }
}

function soon() {
  clearTimeout(state.soon);
  state.soon = setTimeout(refresh, 250); // a burst of events makes one refresh
}

function setMode(mode) {
  state.mode = mode;
  document.body.dataset.live = mode;
  $("live").textContent = mode === "stream" ? "live: event stream" : mode === "poll" ? `live: polling every ${POLL_MS / 1000} s` : "live: off";
}

function schedule(ms) {
  clearInterval(state.timer);
  state.timer = setInterval(refresh, ms);
}

async function live() {
  const abort = new AbortController();
  state.abort = abort;
  for (;;) {
    let available;
    try {
      setMode("stream");
      schedule(BACKSTOP_MS);
      available = await stream(STREAM_PATH, (message) => {
        if (message.id) state.lastEventId = message.id;
        if (message.event !== "heartbeat") soon();
      }, abort.signal, state.lastEventId);
    } catch (err) {
      if (abort.signal.aborted) return;
      available = err instanceof ApiError && err.status === 401 ? false : null;
    }
    if (abort.signal.aborted) return;
    if (available === false) { // no stream here: poll
      setMode("poll");
      schedule(POLL_MS);
      return;
    }
    setMode("poll"); // stream dropped: poll while reconnecting
    schedule(POLL_MS);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    refresh();
  }
}

function banner(text) {
  const el = $("error");
  el.textContent = text;
  el.hidden = !text;
}

function askToken(message) {
  state.abort?.abort();
  clearInterval(state.timer);
  setMode("off");
  $("login-error").textContent = message || "";
  $("token").value = "";
  if (!$("login").open) $("login").showModal();
  $("token").focus();
}

function start() {
  $("login").close();
  $("signout").hidden = false;
  state.shown.clear();
  refresh();
  live();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token.set($("token").value.trim());
    start();
  });
  $("signout").addEventListener("click", () => {
    token.forget();
    askToken("token forgotten");
  });
  $("rules-router").addEventListener("change", (event) => {
    state.router = event.target.value;
    state.shown.delete("rules");
    refresh();
  });
  $("explain-form").addEventListener("submit", explainSubmit);
  if (token.get() === null) askToken();
  else start();
});
