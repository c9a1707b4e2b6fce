"""Human-readable renderings of lab views."""

from __future__ import annotations

import io
from dataclasses import dataclass

import docker
from rich.console import Console
from rich.table import Table

from orchestrator import services
from orchestrator.listing import LabSummary
from orchestrator.views import LabStatus
from provision import hints
from provision.lab_services import entry_point as entrypoint


def _text(table: Table) -> str:
    console = Console(width=120, record=True, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.export_text().rstrip()


def status_table(status: LabStatus, running: dict[str, int] | None = None) -> str:
    table = Table(title=f"lab {status.name} ({status.provider})", title_justify="left")
    columns = ["node", "role", "address", "state", "availability", "leader", "machine"]
    for column in columns + (["tasks"] if running is not None else []):
        table.add_column(column)
    for node in status.nodes:
        row = [node.name, node.role, node.address, node.state, node.availability or "-",
               "yes" if node.leader else "", node.machine]
        table.add_row(*row, *([str(running.get(node.name, 0))] if running is not None else []))
    footer = f"registry: {status.registry or 'none'}\nentry point: {entrypoint.describe(status.entry_point)}"
    if status.visualizer:
        footer += f"\nvisualizer: {status.visualizer}"
    for node in [n for n in status.nodes if n.stale]:
        footer += (f"\n{node.name}: the swarm also lists {node.stale} stale entr{'y' if node.stale == 1 else 'ies'} "
                   f"of it (left when it rejoined); {hints.command('lab.up', lab=status.name)} removes "
                   f"{'it' if node.stale == 1 else 'them'}")
    if not status.swarm:
        footer += "\nno manager answers: the swarm is not formed or has lost its managers"
    return _text(table) + "\n" + footer


def service_table(manager: docker.DockerClient) -> str:
    table = Table(title="services", title_justify="left")
    for column in ("name", "mode", "running", "image", "ports"):
        table.add_column(column)
    running: dict[str, int] = {}
    for task in services.tasks(manager):
        running[task.service] = running.get(task.service, 0) + (task.state == "running")
    for service in sorted(manager.services.list(), key=lambda s: s.name):
        spec = service.attrs["Spec"]
        mode = spec["Mode"]
        wanted = str(mode["Replicated"].get("Replicas", 0)) if "Replicated" in mode else "global"
        ports = ", ".join(f"{p.get('PublishedPort')}->{p.get('TargetPort')}/{p.get('PublishMode', 'ingress')}"
                          for p in (spec.get("EndpointSpec") or {}).get("Ports") or [])
        image = spec["TaskTemplate"]["ContainerSpec"]["Image"].split("@")[0]
        table.add_row(service.name, "global" if wanted == "global" else "replicated",
                      f"{running.get(service.name, 0)}/{wanted}", image, ports or "-")
    return _text(table)


def task_table(tasks: list[services.TaskView]) -> str:
    table = Table(title="tasks", title_justify="left")
    for column in ("service", "slot", "node", "desired", "state", "image", "error"):
        table.add_column(column)
    for task in tasks:
        table.add_row(task.service, str(task.slot or "-"), task.node, task.desired, task.state, task.image,
                      task.error or "")
    return _text(table)


def demo_summary(lab: str, reports) -> str:
    """The summary table of demo.all."""
    table = Table(title=f"demo.all on lab {lab}", title_justify="left")
    for column in ("demo", "verdict", "key figures"):
        table.add_column(column)
    for report in reports:
        figures = "; ".join(f"{k}: {v}" for k, v in list(report.figures.items())[:2])
        if report.skipped:
            figures = f"skipped: {report.skipped[:80]}"
        table.add_row(report.demo, report.verdict.upper(), figures or "-")
    return _text(table)


def lab_list_table(rows: list[LabSummary], foreign: list[str]) -> str:
    """lab.ls as `docker-machine ls` prints it: plain aligned columns, ``*`` on the lab whose
    node this shell's docker CLI talks to."""
    header = ["NAME", "ACTIVE", "PROVIDER", "STATE", "NODES", "LEADER", "REGISTRY", "ERRORS"]
    lines = [header] + [[
        row.name, f"* {row.active}" if row.active else "-", row.provider, row.state,
        f"{row.ready}/{row.total}" if row.total else "-", row.leader or "-", row.registry or "-", row.error or "",
    ] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = "\n".join("   ".join([*(cell.ljust(w) for cell, w in zip(line, widths)), line[-1]]).rstrip()
                     for line in lines)
    if foreign:
        text += ("\n\nalso on the host engine, with no state folder here (made under another SWARMDECK_HOME?): "
                 + ", ".join(foreign))
    return text


@dataclass(frozen=True)
class RegistryEntry:
    """A repository of a lab registry: its tags, and for each tag that holds a stand-in of a
    Docker Hub image, what that image really is (its io.swarmdeck.stand-in label)."""

    repository: str
    tags: list[str]
    stand_ins: dict[str, str]


def registry_lines(entries: list[RegistryEntry]) -> list[str]:
    """``REPOSITORY: TAG, TAG`` for each repository, each stand-in marked with what it is:
    ``library/nginx: latest  (stand-in: Debian's nginx-light ...)``; when only some of a
    repository's tags are stand-ins, the mark names them."""
    lines = []
    for entry in entries:
        line = f"{entry.repository}: {', '.join(entry.tags) or '-'}"
        for what in sorted(set(entry.stand_ins.values())):
            tags = [tag for tag in entry.tags if entry.stand_ins.get(tag) == what]
            which = "" if len(tags) == len(entry.tags) else f" {', '.join(tags)}"
            line += f"  (stand-in{which}: {what})"
        lines.append(line)
    return lines


def class_table(status: dict) -> str:
    """class.status as a table: a line per lab, its use against its limits summed over its nodes."""
    limits = status.get("limits") or {}
    title = (f"class {status['class']} (each node: memory {limits.get('memory') or '-'}, cpus {limits.get('cpus') or '-'}, "
             f"pids {limits.get('pids') or '-'}; doors at {status['address']})")
    table = Table(title=title, title_justify="left")
    for column in ("lab", "student", "host", "door", "ready", "leader", "services", "memory MB", "cpu %", "pids",
                   "last change"):
        table.add_column(column)
    for row in status["labs"]:
        nodes = row.get("nodes") or []
        memory = sum(n["memory_mb"] for n in nodes)
        limit = sum(n["memory_limit_mb"] or 0 for n in nodes)
        table.add_row(row["lab"], row["student"], row["host"], row["door"].rpartition(":")[2],
                      f"{row['nodes_ready']}/{row['nodes_total']}" if "error" not in row else row["error"][:40],
                      row["leader"] or "-", "-" if row["services"] is None else str(row["services"]),
                      f"{memory:.0f}/{limit}" if limit else f"{memory:.0f}",
                      f"{sum(n['cpu_percent'] for n in nodes):.1f}", str(sum(n["pids"] for n in nodes)),
                      row["last_change"] or "-")
    return _text(table)
