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

function roleText(node) {
  if (node.role === "leader") return "leader";
  if (node.role === "manager") return node.reachability === "reachable" ? "reachable manager" : `manager (${node.reachability || "unknown"})`;
  return "worker";
}

function taskCard(task) {
  const slot = task.slot ? `.${task.slot}` : "";
  return el("li", {
    class: "task", "data-service": task.service, "data-state": task.state, "data-version": task.version,
    style: `--service: ${task.colour}`,
    title: `${task.service}${slot} ${task.image} (${task.state})`,
  },
    el("span", { class: "task-name", text: `${task.service}${slot}` }),
    el("span", { class: "task-version", text: `v${task.version}` }),
    el("span", { class: "task-state", text: task.state }));
}

function nodeColumn(node, tasks) {
  const labels = Object.entries(node.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  const down = node.state !== "ready";
  return el("article", {
    class: "node", "data-node": node.hostname, "data-role": node.role, "data-state": node.state,
    "data-availability": node.availability, "aria-label": `node ${node.hostname}`,
  },
    el("header", {},
      el("h3", { text: node.hostname }),
      el("p", { class: `role role-${node.role}`, text: roleText(node) }),
      el("p", { class: "node-state", text: down ? `${node.state.toUpperCase()}` : "ready" }),
      el("p", { class: `availability availability-${node.availability}`, text: node.availability }),
      labels ? el("p", { class: "labels", text: labels }) : null,
      el("p", { class: "engine muted", text: node.engine })),
    el("ul", { class: "tasks", "aria-label": `tasks on ${node.hostname}` }, ...tasks.map(taskCard)));
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

function renderDemo(demo) {
  $("demo").hidden = !demo;
  if (!demo) return;
  const verdict = demo.verdict ? ` · verdict: ${demo.verdict.toUpperCase()}` : " · running";
  $("demo-head").textContent = `demo.${demo.demo} on lab ${demo.lab}${verdict}`;
  $("demo-head").dataset.verdict = demo.verdict || "running";
  $("demo-probe").textContent = demo.probe
    ? `probe through the entry point: ${demo.probe.ok} ok, ${demo.probe.failed} failed`
    : "no probe in this demo";
  $("demo-timeline").replaceChildren(...demo.events.map((e) =>
    el("li", {}, el("span", { class: "t", text: `t+${e.t.toFixed(1)} s` }), ` ${e.text}`)));
}

function renderReports(reports) {
  if (!reports.length) return;
  $("reports").replaceChildren(...reports.slice(0, 20).map((r) => el("li", { "data-verdict": r.verdict },
    el("span", { class: "verdict", text: (r.verdict || "?").toUpperCase() }),
    ` demo.${r.demo} ${r.started_at || ""} `,
    r.plot ? el("a", { href: r.plot, target: "_blank", text: "plot (PNG)" }) : null, " ",
    el("a", { href: `/reports/${r.name}.json`, target: "_blank", text: "report (JSON)" }))));
}

// {"kind": "load-balancer", "address": "10.199.0.9", "ports": [8080, 8081]} -> "load balancer at 10.199.0.9 (ports 8080, 8081)"
function entryPointText(entry) {
  if (!entry) return "–";
  return `${entry.kind.replace("-", " ")} at ${entry.address} (ports ${entry.ports.join(", ")})`;
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
  renderNodes(state);
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

connect();
