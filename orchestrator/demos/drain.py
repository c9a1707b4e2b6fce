"""demo.drain: drain manager1 (as the tutorial does): its tasks move away and it takes no
new ones; then make it active again."""

from __future__ import annotations

from orchestrator import nodes, services
from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import Watcher, demo_service, wait_running
from orchestrator.session import LabSession

SERVICE = "demo-drain"


def run(lab: LabSession, report: DemoReport, *, node: str | None = None, replicas: int = 6) -> DemoReport:
    target = node or lab.plan.first_manager.name
    demo_service(lab, report, SERVICE, replicas, published=False)
    with Watcher(lab, report, SERVICE, interval=0.25).running():
        before = sum(t.node == target for t in wait_running(lab, SERVICE, replicas))
        drained = report.event(f"drain {target}, which runs {before} task(s)")
        nodes.set_availability(lab, target, "drain")
        wait_running(lab, SERVICE, replicas, avoid=target)
        moved = report.event(f"all {replicas} tasks run on other nodes")
        services.scale(lab.manager, SERVICE, replicas + 3)
        after_scale = wait_running(lab, SERVICE, replicas + 3, avoid=target)
        report.event(f"scaled to {replicas + 3}: none lands on {target}")
        nodes.set_availability(lab, target, "active")
        report.event(f"{target} is active again (new tasks may go there; running ones stay put)")
    report.figure(f"tasks moved off {target} after", moved - drained, " s")
    report.check(f"{target} ran tasks before the drain", before > 0 or replicas < len(lab.plan.nodes),
                 f"{before} task(s)")
    report.check(f"no task runs on the drained {target}", all(t.node != target for t in after_scale),
                 f"{replicas + 3} tasks elsewhere")
    report.check(f"{target} is active again", any(n.hostname == target and n.availability == "active"
                                                   for n in nodes.swarm_nodes(lab.manager)), "availability active")
    return report
