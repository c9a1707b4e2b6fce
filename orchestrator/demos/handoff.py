"""demo.handoff: a planned leader change against a killed leader, measured side by side.

`docker node demote` of the leader hands leadership over at once: swarmkit asks Raft to
transfer it to an up-to-date follower, which stands for election without waiting. A killed
leader hands nothing over: its followers stand only when its heartbeats have been missing
for an election timeout, a random 10-20 ticks of 1 s (stock Docker lets nobody change it).
Both cases measure the time to a new leader and to an accepted write; the lab ends with its
managers as they were (the demoted leader is promoted back, the killed one started again).
"""

from __future__ import annotations

import docker.errors
import requests

from orchestrator import chaos, nodes, swarm
from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import (
    accepted_write,
    demo_service,
    leader_other_than,
    wait_running,
)
from orchestrator.session import LabSession
from orchestrator.views import swarm_nodes
from provision.errors import LabError
from provision.plan import RUNNING
from provision.wait import wait_until

SERVICE = "demo-handoff"
PLANNED, KILLED = "planned: docker node demote", "killed leader"
NEW_LEADER, WRITE = "new leader", "write accepted"
RAFT = (
    "Raft keeps one leader, which sends every follower a heartbeat each tick (1 s in Swarm). A follower "
    "that hears nothing for its election timeout stands for election: a random 10 to 20 ticks (ElectionTick "
    "10, randomised so that followers seldom stand at once). Stock Docker lets nobody change it: dockerd "
    "refuses swarm-raft-election-tick in daemon.json and Swarm ignores Raft.ElectionTick in the cluster spec.",
    "A planned change needs no timeout: when the leader is demoted, swarmkit's role manager asks Raft to "
    "transfer leadership to the most up-to-date follower (etcd-raft's TimeoutNow message), which stands at "
    "once; the old leader steps down as soon as the new one has won.",
    "A killed leader sends nothing more: the followers notice only its silence, so a new leader, and "
    "with it the next accepted write, waits for the election timeout. Running tasks keep serving "
    "meanwhile (demo.leader shows it); only changes wait.",
)


def run(lab: LabSession, report: DemoReport) -> DemoReport:
    managers = [n.name for n in lab.plan.nodes if n.is_manager]
    if len(managers) < 3:
        raise LabError(f"demo.handoff needs 3 managers or more (lab {lab.plan.name} has {len(managers)}): "
                       "with fewer, losing the leader loses the Raft majority")
    report.notes.extend(RAFT)
    demo_service(lab, report, SERVICE, 1, published=False, healthcheck=False)
    wait_running(lab, SERVICE, 1)
    tick = float(report.timings.get("election_tick") or 10)
    try:
        planned = _planned(lab, report, managers, writes_to=2)
        killed = _killed(lab, report, managers, writes_to=1)
    except BaseException:
        _restore(lab, managers)
        raise
    report.comparison = {PLANNED: planned, KILLED: killed}
    for case, measured in report.comparison.items():
        for measure, seconds in measured.items():
            report.figure(f"{case}: {measure} after", seconds, " s")
    report.check("a planned handoff gives a new leader within one election timeout", planned[NEW_LEADER] < tick,
                 f"{planned[NEW_LEADER]:.1f} s (the timeout is {tick:.0f}-{2 * tick:.0f} s)")
    report.check("a killed leader is replaced only after an election timeout", killed[NEW_LEADER] >= tick - 1.5,
                 f"{killed[NEW_LEADER]:.1f} s (heartbeats come every 1 s, the timeout is {tick:.0f}-{2 * tick:.0f} s)")
    report.check("writes are accepted sooner after the planned handoff", planned[WRITE] < killed[WRITE],
                 f"{planned[WRITE]:.1f} s against {killed[WRITE]:.1f} s")
    final = {n.hostname: n for n in swarm_nodes(lab.manager) if n.role == "manager"}
    report.check("the managers are as they were, every one reachable",
                 sorted(final) == sorted(managers) and all(n.reachability == "reachable" for n in final.values()),
                 ", ".join(f"{name} {node.reachability}" for name, node in sorted(final.items())))
    return report


def _restore(lab: LabSession, managers: list[str]) -> None:
    """After a failure midway: every manager's machine running and a manager again, as far as
    the swarm lets it (the demo's error says what went wrong)."""
    for name in managers:
        try:
            if lab.provider.machine(lab.plan.name, name).state != RUNNING:
                chaos.start(lab, name)
            lab.refresh_manager()
            if nodes.find(lab.manager, name).role != "manager":
                nodes.promote(lab, name)
        except (LabError, docker.errors.DockerException, requests.RequestException):
            continue


def _leader(lab: LabSession) -> str:
    return next(n.hostname for n in swarm_nodes(lab.manager) if n.leader)


def _planned(lab: LabSession, report: DemoReport, managers: list[str], *, writes_to: int) -> dict[str, float]:
    leader = _leader(lab)
    followers = [m for m in managers if m != leader]
    lab.manager = lab.clients[followers[0]]  # ask a manager that stays one
    entry = nodes.find(lab.manager, leader)
    started = report.event(f"docker node demote {leader}, the leader: a planned change; Raft transfers leadership "
                           "(TimeoutNow), the chosen follower stands for election at once")
    swarm.update_node(lab.manager, entry.id, lambda spec: spec.update(Role="worker"))
    measured = _measure(lab, report, followers, leader, started, writes_to)
    wait_until(lambda: _demoted(lab, leader), timeout=lab.plan.scaled(60), interval=0.25,
               describe=f"{leader} to be a worker (out of Raft)")
    report.event(f"docker node promote {leader}: the managers are as they were (the leader stays {_leader(lab)})")
    nodes.promote(lab, leader)
    return measured


def _demoted(lab: LabSession, name: str) -> bool:
    """Out of Raft and no manager any more, as its engine says: only then is a promotion a new
    one (promoted while its demotion is still under way, it waits out a retry of its manager)."""
    return (nodes.find(lab.manager, name).reachability == ""
            and not (lab.clients[name].info().get("Swarm") or {}).get("ControlAvailable"))


def _killed(lab: LabSession, report: DemoReport, managers: list[str], *, writes_to: int) -> dict[str, float]:
    leader = _leader(lab)
    followers = [m for m in managers if m != leader]
    lab.manager = lab.clients[followers[0]]
    started = report.event(f"kill the leader {leader} (hard power-off): nothing is handed over; the followers "
                           "stand only after their election timeout (10-20 heartbeats of 1 s) without a word from it")
    chaos.kill(lab, leader)
    measured = _measure(lab, report, followers, leader, started, writes_to)
    chaos.start(lab, leader)
    lab.clients.close()  # the restarted engine is a new connection
    lab.manager = lab.clients[followers[0]]
    wait_until(lambda: nodes.find(lab.manager, leader).reachability == "reachable", timeout=lab.plan.scaled(120),
               interval=0.5, describe=f"{leader} to be a reachable manager again")
    report.event(f"{leader} is started again and is a reachable manager (a follower now)")
    return measured


def _measure(lab: LabSession, report: DemoReport, followers: list[str], old: str, started: float,
             writes_to: int) -> dict[str, float]:
    """Seconds from ``started`` to a new leader and to an accepted write."""
    new = wait_until(lambda: leader_other_than(lab, followers, old), timeout=lab.plan.scaled(120), interval=0.05,
                     describe=f"a leader other than {old}")
    elected = report.event(f"{new} is the leader")
    wait_until(lambda: accepted_write(lab, SERVICE, writes_to), timeout=lab.plan.scaled(120), interval=0.05,
               describe="a write (scale) to be accepted")
    written = report.event(f"a write (scale {SERVICE} to {writes_to}) is accepted")
    return {NEW_LEADER: round(elected - started, 2), WRITE: round(written - started, 2)}
