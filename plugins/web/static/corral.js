// corral web: the list and the app page, fed by the server's event stream (/api/stream).
// No framework, no build step: the DOM, fetch and EventSource.
"use strict";

// The session's key, kept by the login page: every API call sends it (the cookie alone,
// which a browser also sends to other ports of this host, opens nothing).
const KEY = localStorage.getItem("corral-key");
const LOGGED_OUT = "logged out: log in with `corral web url`";
const READONLY = document.querySelector('meta[name="readonly"]').content === "true";
const PAGE = document.body.dataset.page;
const MAX_LOG_LINES = 5000; // lines the log pane keeps

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function bytes(n) {
  if (!n) return "0b";
  const units = ["b", "kb", "mb", "gb", "tb"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)}${units[i]}`;
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString();
}

function loggedOut() {
  const state = document.getElementById("connection");
  state.textContent = LOGGED_OUT;
  state.className = "dim";
  if (window.corralSource) window.corralSource.close();
}

// fetch with the session's key; a 401 shows the page logged out
async function call(url, init = {}) {
  const answer = await fetch(url, {...init, headers: {...(init.headers || {}), "X-Corral-Key": KEY || ""},
    credentials: "same-origin"});
  if (answer.status === 401) loggedOut();
  return answer;
}

async function getJSON(url, otherwise) {
  const answer = await call(url);
  return answer.ok ? answer.json() : otherwise;
}

async function logout() {
  await call("/api/logout", {method: "POST"});
  localStorage.removeItem("corral-key");
  loggedOut();
}

async function act(action, pmId, name, body) {
  if (READONLY) return;
  const words = action === "scale" ? `scale ${name} to ${body.instances}` : `${action} ${name} (pm_id ${pmId})`;
  if (!window.confirm(`${words}?`)) return;
  const answer = await call(`/api/processes/${pmId}/${action}`, {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body || {}),
  });
  if (!answer.ok && answer.status !== 401) {
    const reply = await answer.json().catch(() => ({error: answer.statusText}));
    window.alert(`${words}: ${reply.error}`);
  }
}

function stream(onMessage, logsOf) {
  const state = document.getElementById("connection");
  const query = new URLSearchParams({key: KEY});  // an EventSource sends no header
  if (logsOf !== undefined) query.set("logs", logsOf);
  const source = new EventSource(`/api/stream?${query}`);
  window.corralSource = source;
  source.onopen = () => { state.textContent = "live"; state.className = "live"; };
  source.onerror = () => {
    // a closed stream is not retried by the browser: the session ended (401)
    const closed = source.readyState === EventSource.CLOSED;
    state.textContent = closed ? LOGGED_OUT : "reconnecting";
    state.className = "dim";
  };
  source.onmessage = (event) => onMessage(JSON.parse(event.data));
  return source;
}

// -- the list -------------------------------------------------------------------

const list = {rows: [], sortKey: "pm_id", ascending: true};

function showList() {
  const filter = document.getElementById("filter").value.trim().toLowerCase();
  const rows = list.rows.filter((r) =>
    !filter || [r.name, r.status, r.namespace, String(r.pm_id)].some((v) => String(v).toLowerCase().includes(filter)));
  const key = list.sortKey;
  rows.sort((a, b) => {
    const x = a[key] ?? "", y = b[key] ?? "";
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return list.ascending ? order : -order;
  });
  const body = document.querySelector("#procs tbody");
  const now = Date.now();
  body.replaceChildren(...rows.map((r) => {
    const actions = el("td", {class: "actions"});
    if (!READONLY) {
      for (const action of ["restart", "reload", "stop", "start"]) {
        const button = el("button", {"data-action": action}, action);
        button.onclick = () => act(action, r.pm_id, r.name);
        actions.append(button);
      }
    }
    return el("tr", {"data-pm-id": r.pm_id, "data-name": r.name, "data-status": r.status},
      el("td", {class: "id"}, String(r.pm_id)),
      el("td", {class: "name"}, el("a", {href: `/app/${r.pm_id}`}, r.name)),
      el("td", {class: "namespace"}, r.namespace || ""),
      el("td", {class: "mode"}, (r.mode || "").replace("_mode", "")),
      el("td", {class: `status ${r.status}`}, r.status),
      el("td", {class: `health ${(r.health || "").split(" ")[0]}`}, r.health || ""),
      el("td", {class: "pid"}, r.pid ? String(r.pid) : "-"),
      el("td", {class: "uptime"}, r.uptime ? duration(now - r.uptime) : "-"),
      el("td", {class: "restarts"}, String(r.restarts)),
      el("td", {class: "cpu"}, `${r.cpu}%`),
      el("td", {class: "mem"}, bytes(r.memory)),
      actions);
  }));
  document.getElementById("empty").hidden = list.rows.length > 0;
  const online = list.rows.filter((r) => r.status === "online").length;
  document.getElementById("summary").textContent = `${online}/${list.rows.length} online`;
}

function startList() {
  document.querySelectorAll("#procs th[data-sort]").forEach((th) => {
    th.onclick = () => {
      list.ascending = list.sortKey === th.dataset.sort ? !list.ascending : true;
      list.sortKey = th.dataset.sort;
      showList();
    };
  });
  document.getElementById("filter").oninput = showList;
  if (READONLY) {
    document.getElementById("readonly-note").hidden = false;
    document.querySelector(".actions-head").hidden = true;
  }
  stream((message) => {
    if (message.type === "list") { list.rows = message.rows; showList(); }
  });
}

// -- an app's page ------------------------------------------------------------------

const app = {pmId: Number(location.pathname.split("/").pop()), row: null, samples: [], cursor: null};

function logLine(entry) {
  const text = entry.text ?? entry.data ?? "";
  const at = entry.time ? entry.time * 1000 : entry.at;
  return el("div", {class: `line ${entry.stream}`, title: at ? new Date(at).toISOString() : ""},
    el("span", {class: "stream"}, entry.stream), text.replace(/\n$/, ""));
}

function appendLog(entries) {
  const pane = document.getElementById("log");
  const atBottom = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4;
  pane.append(...entries.map(logLine));
  while (pane.childElementCount > MAX_LOG_LINES) pane.firstElementChild.remove();
  if (document.getElementById("follow").checked && (atBottom || entries.length)) pane.scrollTop = pane.scrollHeight;
}

async function loadLog(query) {
  return getJSON(`/api/processes/${app.pmId}/logs?${query}`, {lines: [], cursor: {}});
}

async function olderLines() {
  if (!app.cursor) return;
  const params = new URLSearchParams({lines: "200"});
  for (const [stream, offset] of Object.entries(app.cursor)) params.set(stream, offset);
  const page = await loadLog(params.toString());
  const pane = document.getElementById("log");
  const before = pane.scrollHeight;
  pane.prepend(...page.lines.map(logLine));
  pane.scrollTop += pane.scrollHeight - before;
  app.cursor = page.cursor;
  document.getElementById("older").disabled = Object.values(page.cursor).every((o) => o === 0);
}

async function searchLog(needle) {
  const pane = document.getElementById("log");
  if (!needle) { pane.replaceChildren(); return firstLines(); }
  document.getElementById("follow").checked = false;
  const found = await loadLog(new URLSearchParams({q: needle}).toString());
  pane.replaceChildren(...found.lines.map(logLine));
}

async function firstLines() {
  const page = await loadLog("lines=200");
  app.cursor = page.cursor;
  appendLog(page.lines);
  document.getElementById("older").disabled = Object.values(page.cursor || {}).every((o) => o === 0);
}

function showApp(row) {
  app.row = row;
  if (!row) { document.getElementById("title").textContent = `pm_id ${app.pmId}: gone`; return; }
  document.title = `${row.name} · corral`;
  document.getElementById("title").textContent = `${row.name} (pm_id ${row.pm_id})`;
  const status = document.getElementById("status");
  status.textContent = row.status;
  status.className = `status ${row.status}`;
  document.getElementById("pid").textContent = row.pid || "-";
  document.getElementById("restarts").textContent = row.restarts;
  document.getElementById("cpu").textContent = `${row.cpu}%`;
  document.getElementById("mem").textContent = bytes(row.memory);
  document.getElementById("health").textContent = row.health ? `health ${row.health}` : "";
}

function chart(canvas, points, format) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#d0d7de";
  ctx.strokeRect(0.5, 0.5, w - 1, h - 1);
  if (points.length < 2) return;
  // the last hour, or since the first sample when there is less (at least a minute):
  // a fresh app's few samples get the width, not one pixel at the right edge
  const end = points[points.length - 1][0];
  const span = Math.min(3600, Math.max(60, end - points[0][0]));
  const start = end - span;
  const top = Math.max(...points.map((p) => p[1]), 1e-9) * 1.1;
  ctx.beginPath();
  points.forEach(([t, v], i) => {
    const x = ((t - start) / span) * w, y = h - (v / top) * (h - 4) - 2;
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.strokeStyle = "#0969da";
  ctx.stroke();
  ctx.fillStyle = "#57606a";
  ctx.textAlign = "left";
  ctx.fillText(format(top / 1.1), 4, 12);
  ctx.textAlign = "right";
  ctx.fillText(span < 3600 ? `last ${duration(span * 1000)}` : "last hour", w - 4, h - 4);
}

function drawCharts() {
  chart(document.getElementById("cpu-chart"), app.samples.map((s) => [s[0], s[1]]), (v) => `${v.toFixed(1)}%`);
  chart(document.getElementById("mem-chart"), app.samples.map((s) => [s[0], s[2]]), bytes);
}

function addEvent(event) {
  const item = el("li", {class: `event ${event.event}`},
    el("time", {}, clock(event.at)), " ", el("b", {}, event.event), event.reason ? ` ${event.reason}` : "");
  const list = document.getElementById("events");
  list.prepend(item);
  while (list.childElementCount > 200) list.lastElementChild.remove();
}

async function loadSettings() {
  const proc = await getJSON(`/api/processes/${app.pmId}`, null);
  if (!proc) return;
  const env = proc.pm2_env || {};
  const shown = ["name", "namespace", "status", "exec_mode", "instances", "pm_exec_path", "exec_interpreter",
    "args", "pm_cwd", "autorestart", "max_restarts", "min_uptime", "kill_timeout", "restart_delay",
    "max_memory_restart", "watch", "cron_restart", "listen", "wait_ready", "pm_out_log_path", "pm_err_log_path",
    "created_at", "unstable_restarts", "exit_code"];
  const table = document.getElementById("settings");
  const rows = shown.filter((k) => env[k] !== undefined && env[k] !== null && env[k] !== "")
    .map((k) => [k, env[k]]);
  // the app's own variables, masked by the server as `corral describe` masks them
  const vars = env.env && typeof env.env === "object" ? env.env : {};
  for (const name of Object.keys(vars).sort()) rows.push([`env ${name}`, vars[name]]);
  table.replaceChildren(...rows.map(([k, v]) =>
    el("tr", {"data-key": k}, el("th", {}, k), el("td", {}, typeof v === "object" ? JSON.stringify(v) : String(v)))));
}

async function startApp() {
  const actions = document.getElementById("actions");
  if (READONLY) actions.hidden = true;
  actions.querySelectorAll("button[data-action]").forEach((button) => {
    button.onclick = () => {
      const action = button.dataset.action;
      const body = action === "scale" ? {instances: Number(document.getElementById("scale-to").value)} : {};
      act(action, app.pmId, app.row ? app.row.name : app.pmId, body);
    };
  });
  document.getElementById("older").onclick = olderLines;
  let typing;
  document.getElementById("search").oninput = (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => searchLog(e.target.value.trim()), 250);
  };
  const history = await getJSON(`/api/processes/${app.pmId}/history`, {samples: []});
  app.samples = history.samples || [];
  const events = await getJSON(`/api/processes/${app.pmId}/events`, {events: []});
  (events.events || []).forEach(addEvent);
  loadSettings();
  await firstLines();
  stream((message) => {
    if (message.type === "list") {
      const row = message.rows.find((r) => r.pm_id === app.pmId) || null;
      if (row && (!app.row || row.status !== app.row.status || row.pid !== app.row.pid)) loadSettings();
      showApp(row);
      if (row) {
        app.samples.push([message.at, row.cpu, row.memory]);
        while (app.samples.length && app.samples[0][0] < message.at - 3600) app.samples.shift();
        drawCharts();
      }
    } else if (message.type === "event" && message.pm_id === app.pmId) {
      addEvent(message);
    } else if (message.type === "log" && message.pm_id === app.pmId && !document.getElementById("search").value) {
      appendLog([message]);
    }
  }, app.pmId);
}

document.getElementById("logout").onclick = logout;
if (!KEY) loggedOut();
else if (PAGE === "list") startList();
else startApp();
