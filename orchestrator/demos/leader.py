"""demo.leader: the leader manager dies; Raft elects another, writes work again, and the
services keep serving throughout."""

from __future__ import annotations

from orchestrator import chaos, services
from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import (
    Watcher,
    accepted_write,
    demo_service,
    leader_other_than,
    probing,
    settle,
    wait_running,
)
from orchestrator.session import LabSession
from orchestrator.views import swarm_nodes
from provision.errors import LabError
from provision.wait import wait_until

SERVICE = "demo-leader"


def run(lab: LabSession, report: DemoReport, *, replicas: int = 10) -> DemoReport:
    managers = [n for n in lab.plan.nodes if n.is_manager]
    if len(managers) < 3:
        raise LabError(f"demo.leader needs 3 managers or more (lab {lab.plan.name} has {len(managers)}): "
                       "with fewer, losing the leader loses the Raft majority")
    request = demo_service(lab, report, SERVICE, replicas)
    wait_running(lab, SERVICE, request.replicas)
    leader = next(n.hostname for n in swarm_nodes(lab.manager) if n.leader)
    followers = [m.name for m in managers if m.name != leader]
    lab.manager = lab.clients[followers[0]]  # watch through a manager that survives
    report.event(f"{leader} leads; {', '.join(followers)} follow")
    with probing(lab, report) as probe, Watcher(lab, report, SERVICE).running():
        settle(2)
        killed = report.event(f"kill the leader {leader} (hard power-off)")
        chaos.kill(lab, leader)
        new_leader = wait_until(lambda: leader_other_than(lab, followers, leader), timeout=120, interval=0.2,
                                describe="a new leader")
        elected = report.event(f"{new_leader} is the new leader")
        wait_until(lambda: accepted_write(lab, SERVICE, request.replicas + 1), timeout=120, interval=0.2,
                   describe="a write (scale) to be accepted")
        written = report.event(f"a write (scale to {request.replicas + 1}) is accepted")
        outage_ok, outage_failed = probe.counts(since=killed)
        chaos.start(lab, leader)
        wait_until(lambda: _reachable(lab, leader), timeout=120, interval=0.5,
                   describe=f"{leader} to be a reachable manager again")
        report.event(f"{leader} is back as a reachable manager (not the leader: leadership does not move back)")
        services.scale(lab.manager, SERVICE, request.replicas)
        settle(1)
    report.figure("new leader elected after", elected - killed, " s")
    report.figure("writes accepted again after", written - killed, " s")
    report.figure("requests ok while leaderless and after", outage_ok)
    report.figure("requests failed", outage_failed)
    report.check("a new leader was elected", new_leader != leader, f"{new_leader}, {elected - killed:.1f} s after the kill")
    report.check("writes were accepted again", written >= elected, f"{written - killed:.1f} s after the kill")
    report.check("the service kept answering", outage_ok > 0, f"{outage_ok} ok, {outage_failed} failed")
    report.check(f"{leader} rejoined as a manager", _reachable(lab, leader), "reachable")
    return report


def _reachable(lab: LabSession, name: str) -> bool:
    return any(n.hostname == name and n.reachability == "reachable" for n in swarm_nodes(lab.manager))
