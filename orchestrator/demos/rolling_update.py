"""demo.rolling-update: v1 -> v2 one task at a time, start-first, health-checked, while the
probe runs; roll back; then a broken v3 whose healthcheck fails: Swarm pauses the update
and the service keeps serving."""

from __future__ import annotations

from orchestrator import services
from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import (
    Watcher,
    demo_service,
    prepull,
    probing,
    running,
    settle,
    wait_running,
)
from orchestrator.session import LabSession
from provision.wait import NotYet, wait_until

SERVICE = "demo-rolling"
OBSERVE = 3  # seconds of answers collected after each phase


def run(lab: LabSession, report: DemoReport, *, replicas: int = 6) -> DemoReport:
    request = demo_service(lab, report, SERVICE, replicas, update_parallelism=1, update_delay=1.0,
                           update_order="start-first", update_failure_action="pause")
    wait_running(lab, SERVICE, request.replicas)
    for version in ("2", "3"):
        prepull(lab, f"swarmdeck/web:{version}")
    with probing(lab, report) as probe, Watcher(lab, report, SERVICE).running():
        start = report.event("update to swarmdeck/web:2 (parallelism 1, delay 1 s, start-first)")
        services.update(lab.manager, lab.plan, SERVICE, image="swarmdeck/web:2")
        _wait_state(lab, ("completed",))
        wait_running(lab, SERVICE, request.replicas, version="2")
        updated = report.event("every task runs version 2")
        update_ok, update_failed = probe.counts(since=start)
        settle(OBSERVE)
        back = report.event("roll back (docker service rollback)")
        services.rollback(lab.manager, SERVICE)
        _wait_state(lab, ("rollback_completed",))
        wait_running(lab, SERVICE, request.replicas, version="1")
        rolled = report.event("every task runs version 1 again")
        rollback_ok, rollback_failed = probe.counts(since=back)
        settle(OBSERVE)
        broken = report.event("update to swarmdeck/web:3, whose healthcheck always fails")
        services.update(lab.manager, lab.plan, SERVICE, image="swarmdeck/web:3")
        state = _wait_state(lab, ("paused", "rollback_completed"), timeout=180)
        paused = report.event(f"Swarm stopped the update: {state}")
        serving = [t.image.rsplit(":", 1)[1] for t in running(lab, SERVICE)]
        broken_ok, broken_failed = probe.counts(since=broken)
    during, after, rolled_back = (_versions(report, start, updated), _versions(report, updated, back),
                                  _versions(report, rolled, broken))
    report.figure("update to v2 took", updated - start, " s")
    report.figure("rollback took", rolled - back, " s")
    report.figure("requests failed during the update", update_failed)
    report.figure("requests failed during the rollback", rollback_failed)
    report.figure("requests failed while v3 was tried", broken_failed)
    report.check("the update to v2 lost no request", update_failed == 0 and update_ok > 0,
                 f"{update_ok} ok, {update_failed} failed")
    report.check("during the update only v1 and v2 answered; after it only v2",
                 during <= {"1", "2"} and after == {"2"}, f"during {sorted(during)}, after {sorted(after)}")
    report.check("after the rollback only v1 answered", rolled_back == {"1"}, f"{sorted(rolled_back)}")
    report.check("the rollback lost no request", rollback_failed == 0, f"{rollback_ok} ok, {rollback_failed} failed")
    report.check("Swarm stopped the broken update", state in ("paused", "rollback_completed"),
                 f"{state} after {paused - broken:.1f} s")
    report.check("the service kept serving healthy versions", "3" not in serving and broken_ok > 0,
                 f"running versions {sorted(set(serving))}, {broken_ok} ok, {broken_failed} failed")
    return report


def _wait_state(lab: LabSession, states: tuple[str, ...], timeout: float = 240) -> str:
    def reached() -> str:
        status = services.find(lab.manager, SERVICE).attrs.get("UpdateStatus") or {}
        if status.get("State") in states:
            return status["State"]
        raise NotYet(f"update state {status.get('State')!r}: {status.get('Message', '')}")

    return wait_until(reached, timeout=timeout, interval=0.5, describe=f"the update to reach {' or '.join(states)}")


def _versions(report: DemoReport, since: float, until: float) -> set[str]:
    """Versions that answered the probe between ``since`` and ``until``."""
    return {s.version for s in report.samples if since <= s.t <= until and s.ok and s.version}
