// swarmdeck visualizer: renders the snapshots the server streams (server-sent events).
// No framework and nothing fetched from elsewhere: the page works offline.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// -- times, in the viewer's own time zone -------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");

// A Date -> "14:02:07" (local time of the browser showing the page).
function clock(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

// A Date -> "2026-12-02 14:02:07" (local).
function localTime(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${clock(date)}`;
}

// The reports' "2026-12-02T01:35:35+0100" (Python's %z has no colon) -> a Date, or null.
function parseTime(text) {
  if (!text) return null;
  const date = new Date(text.replace(/([+-]\d\d)(\d\d)$/, "$1:$2"));
  return Number.isNaN(date.getTime()) ? null : date;
}

// -- projection mode: ?big=1 or the toggle, remembered in this browser --------------------------

const BIG_KEY = "swarmdeck.viz.big";

function storedBig() {
  try { return localStorage.getItem(BIG_KEY) === "1"; } catch { return false; }
}

function setBig(on) {
  document.documentElement.classList.toggle("big", on);
  $("big-toggle").setAttribute("aria-pressed", String(on));
  try { localStorage.setItem(BIG_KEY, on ? "1" : "0"); } catch { /* private mode: not remembered */ }
}

function initBig() {
  const asked = new URLSearchParams(location.search).get("big");
  setBig(asked === null ? storedBig() : asked === "1" || asked === "true");
  $("big-toggle").addEventListener("click", () => setBig(!document.documentElement.classList.contains("big")));
}

// -- nodes and tasks ----------------------------------------------------------------------------

function roleText(node) {
  if (node.role === "leader") return "leader";
  if (node.role === "manager") return node.reachability === "reachable" ? "reachable manager" : `manager (${node.reachability || "unknown"})`;
  return "worker";
}

// A task's card; a ghost is a task of a node that is not ready: it ran there when last seen
// (or Swarm still lists it there), greyed, since nothing there answers.
function taskCard(task, ghost = false) {
  const slot = task.slot ? `.${task.slot}` : "";
  const state = ghost ? `was ${task.state}` : task.state;
  return el("li", {
    class: ghost ? "task ghost" : "task", "data-service": task.service, "data-state": task.state,
    "data-version": task.version, "data-ghost": ghost ? "true" : null,
    style: `--service: ${task.colour}`,
    title: `${task.service}${slot} ${task.image} (${state}${ghost ? ", last seen on this node before it went down" : ""})`,
  },
    el("span", { class: "task-name", text: `${task.service}${slot}` }),
    el("span", { class: "task-version", text: `v${task.version}` }),
    el("span", { class: "task-state", text: state }));
}

function nodeColumn(node, tasks) {
  const labels = Object.entries(node.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  const down = node.state !== "ready";
  const since = down && node.down_since ? ` since ${clock(new Date(node.down_since * 1000))}` : "";
  const cards = down ? [...tasks, ...(node.last_tasks || [])].map((t) => taskCard(t, true)) : tasks.map((t) => taskCard(t));
  return el("article", {
    class: "node", "data-node": node.hostname, "data-role": node.role, "data-state": node.state,
    "data-availability": node.availability, "data-down": down ? "true" : null, "aria-label": `node ${node.hostname}`,
  },
    el("header", {},
      el("h3", { text: node.hostname }),
      el("p", { class: `role role-${node.role}`, text: roleText(node) }),
      el("p", { class: "node-state", text: down ? `${node.state.toUpperCase()}${since}` : "ready" }),
      el("p", { class: `availability availability-${node.availability}`, text: node.availability }),
      labels ? el("p", { class: "labels", text: labels }) : null,
      el("p", { class: "engine muted", text: node.engine })),
    el("ul", { class: "tasks", "aria-label": `tasks on ${node.hostname}` }, ...cards));
}

function renderNodes(state) {
  const byNode = new Map(state.nodes.map((n) => [n.hostname, []]));
  for (const task of state.tasks) if (byNode.has(task.node)) byNode.get(task.node).push(task);
  $("nodes").replaceChildren(...state.nodes.map((n) => nodeColumn(n, byNode.get(n.hostname))));
  $("nodes").classList.toggle("stale", !!state.stale);
  const running = state.tasks.filter((t) => t.state === "running").length;
  $("counts").textContent = `(${state.nodes.length} nodes, ${running} of ${state.tasks.length} tasks running)`;
  $("legend").replaceChildren(...state.services.map((s) => el("li", { style: `--service: ${s.colour}` },
    el("span", { class: "swatch", "aria-hidden": "true" }),
    `${s.name} (${s.mode === "global" ? "global" : `${s.replicas} replicas`})`)));
}

// The narration is open while a demo runs and collapsed once it has a verdict, unless the
// viewer opened or closed it for this demo (then their choice stays until the next demo).
let narration = { key: null, chosen: false, rendering: false };

function renderDemo(demo) {
  $("demo").hidden = !demo;
  if (!demo) return;
  const verdict = demo.verdict ? ` · verdict: ${demo.verdict.toUpperCase()}` : " · running";
  const started = parseTime(demo.started_at);
  $("demo-head").textContent = `demo.${demo.demo}${started ? ` at ${clock(started)}` : ""}${verdict}`;
  $("demo-head").dataset.verdict = demo.verdict || "running";
  $("demo-probe").textContent = demo.probe
    ? `probe through the entry point: ${demo.probe.ok} ok, ${demo.probe.failed} failed`
    : "no probe in this demo";
  const key = `${demo.demo} ${demo.started_at}`;
  if (key !== narration.key) narration = { key, chosen: false, rendering: false };
  $("demo-timeline").replaceChildren(...demo.events.map((e) => {
    const at = started ? `${clock(new Date(started.getTime() + e.t * 1000))} ` : "";
    return el("li", {}, el("span", { class: "t", text: `${at}t+${e.t.toFixed(1)} s` }), ` ${e.text}`);
  }));
  const count = `${demo.events.length} event${demo.events.length === 1 ? "" : "s"}`;
  $("demo-summary").replaceChildren(`narration (${count})`, el("span", { class: "hint", text: " · show" }));
  if (!narration.chosen && $("demo-narration").open !== !demo.verdict) {
    narration.rendering = true;  // the toggle event this causes is not the viewer's choice
    $("demo-narration").open = !demo.verdict;
  }
}

function renderReports(reports) {
  if (!reports.length) return;
  $("reports").replaceChildren(...reports.slice(0, 20).map((r) => {
    const started = parseTime(r.started_at);
    return el("li", { "data-verdict": r.verdict },
      el("span", { class: "verdict", text: (r.verdict || "?").toUpperCase() }),
      ` demo.${r.demo} `, el("time", { datetime: r.started_at, text: started ? localTime(started) : (r.started_at || "") }), " ",
      r.plot ? el("a", { href: r.plot, target: "_blank", text: "plot (PNG)" }) : null, " ",
      el("a", { href: `/reports/${r.name}.json`, target: "_blank", text: "report (JSON)" }));
  }));
}

// {"kind": "load-balancer", "address": "10.199.0.9", "ports": [8080, 8081]} -> "load balancer at 10.199.0.9 (ports 8080, 8081)"
function entryPointText(entry) {
  if (!entry) return "–";
  return `${entry.kind.replace("-", " ")} at ${entry.address} (ports ${entry.ports.join(", ")})`;
}

// The lesson step running now (lesson.run writes it to the lab's state folder): its number,
// command and explanation; a failed step says why.
function renderLesson(lesson) {
  $("lesson").hidden = !lesson;
  if (!lesson) return;
  const status = { running: "running", done: "done", failed: "FAILED" }[lesson.status] || lesson.status;
  $("lesson-head").textContent = `lesson ${lesson.lesson} · step ${lesson.step}/${lesson.total} · ${status}`;
  $("lesson-head").dataset.status = lesson.status;
  $("lesson-run").textContent = `$ ${lesson.run}`;
  $("lesson-explain").textContent = lesson.status === "failed" ? `does not hold: ${lesson.reason}` : lesson.explain;
}

function render(state) {
  document.title = `swarmdeck ${state.lab}`;
  $("lab-name").textContent = state.lab;
  $("swarm-status").textContent = { ok: "ok", electing: "ELECTING A LEADER", "no-quorum": "NO QUORUM", unreachable: "NO MANAGER REACHABLE" }[state.status] || state.status;
  $("swarm-status").dataset.status = state.status;
  $("manager").textContent = state.manager || "none answers";
  $("registry").textContent = state.registry || "none";
  $("entry-point").textContent = entryPointText(state.entry_point);
  $("message").hidden = !state.message;
  $("message").textContent = state.message;
  $("updated").textContent = clock(new Date());
  renderNodes(state);
  renderLesson(state.lesson);
  renderDemo(state.demo);
  renderReports(state.reports);
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("state", (event) => {
    $("connection").textContent = "live";
    $("connection").dataset.connection = "live";
    render(JSON.parse(event.data));
  });
  source.onerror = () => {
    $("connection").textContent = "reconnecting…";
    $("connection").dataset.connection = "reconnecting";
  };
}

$("demo-narration").addEventListener("toggle", () => {
  if (narration.rendering) narration.rendering = false;
  else narration.chosen = true;
});
initBig();
connect();
