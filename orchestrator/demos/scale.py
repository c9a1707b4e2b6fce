"""demo.scale: 6 -> 9 -> 3 replicas, as in the tutorial, timing each step."""

from __future__ import annotations

from orchestrator import services
from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import (
    Watcher,
    demo_service,
    running,
    settle,
    wait_running,
)
from orchestrator.session import LabSession
from provision.wait import wait_until

SERVICE = "demo-scale"
STEPS = (6, 9, 3)
HOLD = 2.0  # seconds each step is held, so that the plot shows it


def _containers_running(lab: LabSession) -> int:
    """Tasks still running, including those Swarm has already asked to stop."""
    return sum(t.state == "running" for t in services.tasks(lab.manager, SERVICE))


def run(lab: LabSession, report: DemoReport) -> DemoReport:
    demo_service(lab, report, SERVICE, STEPS[0], published=False)
    with Watcher(lab, report, SERVICE, interval=0.25).running() as watcher:
        wait_running(lab, SERVICE, STEPS[0])
        watcher.sample()
        report.event(f"{STEPS[0]} tasks run")
        settle(HOLD)
        for replicas in STEPS[1:]:
            asked = report.event(f"scale to {replicas} (docker service scale {SERVICE}={replicas})")
            services.scale(lab.manager, SERVICE, replicas)
            wait_running(lab, SERVICE, replicas)
            wait_until(lambda: _containers_running(lab) == replicas, timeout=60, interval=0.25,
                       describe=f"the extra tasks to stop ({replicas} left)")
            watcher.sample()
            done = report.event(f"{replicas} tasks run (and no more)")
            spread = sorted({t.node for t in running(lab, SERVICE)})
            report.figure(f"scale to {replicas} took", done - asked, " s")
            report.check(f"{replicas} tasks run", len(running(lab, SERVICE)) == replicas,
                         f"on {len(spread)} nodes: {', '.join(spread)}")
            settle(HOLD)
    return report
