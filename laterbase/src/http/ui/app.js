// The dashboard: reads GET /status every second and shows it. No library,
// no build step; every value goes into the page as text, never as markup.
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "laterbase-token";
const SVG = "http://www.w3.org/2000/svg";

const byId = (id) => document.getElementById(id);
let timer = null;

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// One read of /status; the next is due a second after this one ends, so
// that reads never pile up behind a slow node.
async function poll() {
  timer = null;
  const headers = { Accept: "application/json" };
  const held = token();
  if (held !== null) {
    headers.Authorization = "Bearer " + held;
  }
  let answer;
  try {
    answer = await fetch("/status", { headers, cache: "no-store" });
  } catch (error) {
    connection("unreachable", "down");
    schedule();
    return;
  }
  if (answer.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    askForToken(held !== null);
    return;
  }
  if (!answer.ok) {
    connection("error " + answer.status, "down");
    schedule();
    return;
  }
  try {
    render(await answer.json());
    connection("live", "live");
  } catch (error) {
    connection("unreadable answer", "down");
  }
  schedule();
}

function schedule() {
  if (timer === null) {
    timer = setTimeout(poll, POLL_MS);
  }
}

function connection(text, kind) {
  const badge = byId("connection");
  badge.textContent = text;
  badge.className = "badge " + kind;
}

function askForToken(refused) {
  connection(refused ? "token refused" : "token needed", "down");
  byId("dashboard").hidden = true;
  byId("token-form").hidden = false;
  byId("token").focus();
}

function tokenGiven(event) {
  event.preventDefault();
  const input = byId("token");
  sessionStorage.setItem(TOKEN_KEY, input.value);
  input.value = "";
  byId("token-form").hidden = true;
  byId("dashboard").hidden = false;
  connection("connecting", "");
  poll();
}

function render(status) {
  renderNode(status.node, status.live_streams, status.live_streams_max);
  renderChart(status.chart);
  const lcs = new Map(status.databases.map((db) => [db.name, db.lc]));
  fill("databases", status.databases, databaseRow);
  fill("peers", status.peers, peerRow);
  fill("views", status.views, (view) => viewRow(view, lcs.get(view.db)));
}

function renderNode(node, open, max) {
  byId("node-id").textContent = node.id;
  byId("node-version").textContent = node.version;
  byId("node-uptime").textContent = duration(node.uptime_s);
  byId("node-listen").textContent = node.listen ?? "–";
  byId("node-streams").textContent = open + " of " + max;
}

// Replaces a table's rows; the note under it shows when there are none.
function fill(id, items, row) {
  const rows = items.map(row);
  byId(id).tBodies[0].replaceChildren(...rows);
  byId(id).hidden = rows.length === 0;
  byId(id + "-empty").hidden = rows.length !== 0;
}

function cell(label, content, className) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (className) {
    td.className = className;
  }
  if (content instanceof Node) {
    td.append(content);
  } else {
    td.textContent = content;
  }
  return td;
}

function span(text, className) {
  const element = document.createElement("span");
  element.textContent = text;
  element.className = className;
  return element;
}

function databaseRow(db) {
  const tr = document.createElement("tr");
  tr.dataset.name = db.name;
  tr.append(
    cell("database", db.name),
    cell("events", count(db.events), "num"),
    cell("lc", count(db.lc), "num"),
    cell("writes/s", rate(db.writes_per_s), "num writes"),
  );
  return tr;
}

function peerRow(peer) {
  const tr = document.createElement("tr");
  tr.dataset.url = peer.url ?? peer.address ?? "";
  const who = document.createElement("div");
  who.append(document.createTextNode(peer.url ?? peer.address ?? "–"));
  const detail = [peer.direction === "in" ? "dials in" : "dialled"];
  if (peer.node) {
    detail.push("node " + peer.node);
  }
  who.append(span(detail.join(" · "), "small"));
  const state = document.createElement("div");
  state.append(span(peer.state, "state " + peer.state));
  if (peer.failures > 0) {
    state.append(span(peer.failures + " failed in a row", "small"));
  }
  tr.append(
    cell("peer", who, "url"),
    cell("state", state),
    cell("last sync", since(peer.last_sync), "last-sync"),
    cell("lag in / out", lag(peer.lag), "num lag"),
    cell("last error", peer.last_error ?? "", "error"),
  );
  return tr;
}

function viewRow(view, databaseLc) {
  const tr = document.createElement("tr");
  tr.dataset.view = view.db + "/" + view.view;
  const progress = document.createElement("div");
  const bar = document.createElement("progress");
  const of = Math.max(databaseLc ?? view.lc, view.lc);
  bar.max = Math.max(of, 1);
  bar.value = of === 0 ? 1 : view.lc;
  progress.append(bar);
  const share = of === 0 ? 100 : Math.floor((view.lc / of) * 100);
  progress.append(span(view.rebuilding ? "rebuilding, " + share + "%" : share + "%", "small"));
  tr.append(
    cell("view", view.db + "/" + view.view),
    cell("progress", progress),
    cell("lc", count(view.lc) + " of " + count(of), "num"),
    cell("skipped", count(view.events_skipped), "num"),
  );
  return tr;
}

// Two lines, events written and synced each second, scaled to the largest
// second of the window; the totals and the scale go beside it as text.
function renderChart(chart) {
  const svg = byId("chart");
  const width = 600;
  const height = 180;
  const written = chart.written;
  const synced = chart.synced;
  const top = Math.max(1, ...written, ...synced);
  const grid = [0.25, 0.5, 0.75].map((share) => {
    const line = document.createElementNS(SVG, "line");
    const y = String(height - share * height);
    line.setAttribute("x1", "0");
    line.setAttribute("x2", String(width));
    line.setAttribute("y1", y);
    line.setAttribute("y2", y);
    line.setAttribute("class", "grid");
    return line;
  });
  const line = (counts, kind) => {
    const step = counts.length > 1 ? width / (counts.length - 1) : width;
    const points = counts
      .map((n, index) => (index * step).toFixed(1) + "," + (height - (n / top) * (height - 4)).toFixed(1))
      .join(" ");
    const polyline = document.createElementNS(SVG, "polyline");
    polyline.setAttribute("points", points);
    polyline.setAttribute("class", "line " + kind);
    return polyline;
  };
  svg.replaceChildren(...grid, line(synced, "synced"), line(written, "written"));
  const sum = (counts) => counts.reduce((total, n) => total + n, 0);
  svg.dataset.until = String(chart.until);
  svg.dataset.written = String(sum(written));
  svg.dataset.synced = String(sum(synced));
  byId("chart-written").textContent = count(sum(written));
  byId("chart-synced").textContent = count(sum(synced));
  byId("chart-max").textContent = "peak " + count(top) + "/s";
}

function lag(value) {
  if (value === undefined || value === null) {
    return "–";
  }
  return count(value.in) + " / " + count(value.out);
}

function count(n) {
  return Number(n).toLocaleString("en");
}

function rate(perSecond) {
  if (perSecond === 0) {
    return "0";
  }
  return perSecond < 10 ? perSecond.toFixed(2) : perSecond.toFixed(0);
}

function duration(seconds) {
  if (seconds < 60) {
    return seconds + " s";
  }
  if (seconds < 3600) {
    return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  }
  if (seconds < 86400) {
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  }
  return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
}

// A time as how long ago it was, by this browser's clock, with the time
// itself in the tooltip.
function since(time) {
  if (!time) {
    return "never";
  }
  const ago = Math.max(0, Math.round((Date.now() - Date.parse(time)) / 1000));
  const text = document.createElement("time");
  text.dateTime = time;
  text.title = time;
  text.textContent = ago < 2 ? "just now" : duration(ago) + " ago";
  return text;
}

document.addEventListener("DOMContentLoaded", () => {
  byId("token-form").addEventListener("submit", tokenGiven);
  poll();
});
