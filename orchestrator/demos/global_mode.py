"""demo.global: a global service runs one task on every node; a node that joins later gets
one too, and a node that leaves takes its task with it."""

from __future__ import annotations

from orchestrator import nodes, services
from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import prepull, running, wait_running
from orchestrator.session import LabSession
from provision.errors import LabError
from provision.wait import wait_until

SERVICE = "demo-global"


def run(lab: LabSession, report: DemoReport, *, node: str | None = None) -> DemoReport:
    workers = [n.name for n in lab.plan.nodes if not n.is_manager]
    late = node or (workers[-1] if workers else None)
    prepull(lab, "swarmdeck/web:1")
    try:
        services.remove(lab.manager, SERVICE)
    except LabError:
        pass
    services.create(lab.manager, lab.plan, services.ServiceRequest(
        SERVICE, "swarmdeck/web:1", None, env=("NODE_NAME={{.Node.Hostname}}",),
        labels={"io.swarmdeck.demo": report.demo}))
    count = len(nodes.swarm_nodes(lab.manager))
    everywhere = {t.node for t in wait_running(lab, SERVICE, count)}
    report.event(f"global service: {count} tasks, one on each of {', '.join(sorted(everywhere))}")
    report.check("one task on every node", len(everywhere) == count, f"{count} nodes")
    if late:
        nodes.leave(lab, late)
        wait_running(lab, SERVICE, count - 1)
        report.event(f"{late} left the swarm: {count - 1} tasks")
        joined = report.event(f"{late} joins again, as a node added later would")
        nodes.join(lab, late, "worker")
        wait_until(lambda: any(t.node == late for t in running(lab, SERVICE)), timeout=90, interval=0.25,
                   describe=f"a task on {late}")
        got = report.event(f"{late} runs a task of the global service")
        report.figure(f"{late} got its task after", got - joined, " s")
        report.check("the node that joined later got a task", len(running(lab, SERVICE)) == count,
                     f"{len(running(lab, SERVICE))} tasks on {count} nodes")
    return report
