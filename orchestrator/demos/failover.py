"""demo.failover: a worker dies; Swarm notices, runs its tasks elsewhere, and does not move
them back when it returns (a forced update rebalances)."""

from __future__ import annotations

from orchestrator import chaos, services
from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import (
    Watcher,
    probing,
    running,
    service_and_victim,
    settle,
    wait_for_state,
    wait_running,
)
from orchestrator.session import LabSession
from provision.wait import wait_until

SERVICE = "demo-failover"


def run(lab: LabSession, report: DemoReport, *, replicas: int = 10, node: str | None = None) -> DemoReport:
    request, victim = service_and_victim(lab, report, SERVICE, replicas, node)
    with probing(lab, report) as probe, Watcher(lab, report, SERVICE).running():
        settle(2)
        killed = report.event(f"kill {victim} (hard power-off)")
        chaos.kill(lab, victim)
        down = wait_for_state(lab, report, victim, "down", f"the swarm marks {victim} Down")
        wait_running(lab, SERVICE, request.replicas, avoid=victim, timeout=120)
        back = report.event(f"all {request.replicas} tasks run on the other nodes")
        outage_ok, outage_failed = probe.counts(since=killed)
        chaos.start(lab, victim)
        wait_for_state(lab, report, victim, "ready", f"{victim} is back and Ready")
        settle(5)
        stayed_away = not any(t.node == victim for t in running(lab, SERVICE))
        report.event(f"after 5 s, {victim} runs {'no' if stayed_away else 'some'} tasks: Swarm does not move them back")
        before = _running_ids(lab)
        services.update(lab.manager, lab.plan, SERVICE, force=True)
        report.event("forced update (docker service update --force) to rebalance")
        wait_until(lambda: _converged(lab, request.replicas, before), timeout=180, interval=0.5,
                   describe="the forced update to replace every task")
        spread = sorted({t.node for t in running(lab, SERVICE)})
        report.event(f"rebalanced over {len(spread)} nodes: {', '.join(spread)}")
    report.figure("node marked down after", down - killed, " s")
    report.figure("all replicas running elsewhere after", back - killed, " s")
    report.figure("requests ok during the outage", outage_ok)
    report.figure("requests failed during the outage", outage_failed)
    ok_total, failed_total = probe.counts()
    report.check(f"Swarm marked {victim} down", down > killed, f"{down - killed:.1f} s after the kill")
    report.check(f"all {request.replicas} replicas ran on survivors", back > killed, f"{back - killed:.1f} s after the kill")
    report.check("the service kept answering during the outage", outage_ok > 0, f"{outage_ok} ok, {outage_failed} failed")
    report.check(f"tasks did not move back to {victim} on their own", stayed_away, "none ran there 5 s after its return")
    report.check("the forced update rebalanced the tasks", victim in spread or len(spread) >= request.replicas,
                 f"tasks on {', '.join(spread)}")
    return report


def _running_ids(lab: LabSession) -> set[str]:
    return {t.id for t in running(lab, SERVICE)}


def _converged(lab: LabSession, replicas: int, replaced: set[str]) -> bool:
    """The forced update is done when ``replicas`` tasks run and none of them is one of the
    ``replaced`` tasks (right after the update call, Swarm may still report the previous
    update as completed, with the old tasks running)."""
    service = services.find(lab.manager, SERVICE)
    state = (service.attrs.get("UpdateStatus") or {}).get("State", "completed")
    tasks = running(lab, SERVICE)
    return state == "completed" and len(tasks) == replicas and not {t.id for t in tasks} & replaced
