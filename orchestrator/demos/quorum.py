"""demo.quorum: with 3 managers, lose 2. Raft needs a majority (2 of 3) to accept any change:
writes are refused while running tasks keep serving. Recover both ways: bring the managers
back, then (after losing them again) `swarm init --force-new-cluster` on the survivor and
join the others anew."""

from __future__ import annotations

import docker
import docker.errors
import requests

from orchestrator import chaos, services, swarm
from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import (
    Watcher,
    demo_service,
    probing,
    settle,
    wait_running,
)
from orchestrator.session import LabSession
from orchestrator.views import swarm_nodes
from provision.errors import LabError
from provision.wait import NotYet, wait_until

SERVICE = "demo-quorum"


def run(lab: LabSession, report: DemoReport, *, replicas: int = 4) -> DemoReport:
    managers = [n for n in lab.plan.nodes if n.is_manager]
    if len(managers) != 3:
        raise LabError(f"demo.quorum is written for 3 managers (lab {lab.plan.name} has {len(managers)})")
    survivor, lost = managers[0], [m.name for m in managers[1:]]
    keeper = survivor.name
    request = demo_service(lab, report, SERVICE, replicas)
    wait_running(lab, SERVICE, request.replicas)
    lab.manager = lab.clients[survivor]
    report.notes.append("Raft accepts a change only with a majority of managers: 2 of 3. Three managers "
                        "tolerate one loss; five tolerate two.")
    with probing(lab, report) as probe, Watcher(lab, report, SERVICE).running():
        settle(2)
        lost_at = _lose(lab, report, lost)
        refused = _write_refused(lab, request.replicas + 1)
        report.event(f"a write (scale) on {keeper} is refused: {refused}")
        settle(3)
        outage_ok, outage_failed = probe.counts(since=lost_at)
        back_at = report.event(f"recovery 1: start {', '.join(lost)} again")
        for name in lost:
            chaos.start(lab, name)
        wait_until(lambda: _write(lab, request.replicas), timeout=120, interval=0.5,
                   describe="writes to be accepted after the managers returned")
        returned = report.event("a leader is elected and writes are accepted again")
        _lose(lab, report, lost)
        forced_at = report.event(f"recovery 2: docker swarm init --force-new-cluster on {keeper}")
        _force_new_cluster(lab, survivor.address)
        wait_until(lambda: _write(lab, request.replicas), timeout=120, interval=0.5,
                   describe="writes after --force-new-cluster")
        forced = report.event(f"{keeper} alone is a working swarm again; writes are accepted")
        for name in lost:
            chaos.start(lab, name)
            _rejoin(lab, name)
        rejoined = report.event(f"{', '.join(lost)} left their old cluster and joined the new one as managers")
        reachable = sorted(n.hostname for n in swarm_nodes(lab.manager)
                           if n.role == "manager" and n.reachability == "reachable" and n.state == "ready")
    report.figure("requests ok while quorum was lost", outage_ok)
    report.figure("requests failed while quorum was lost", outage_failed)
    report.figure("writes accepted after the managers returned", returned - back_at, " s")
    report.figure("writes accepted after --force-new-cluster", forced - forced_at, " s")
    report.figure("managers rejoined after", rejoined - forced, " s")
    report.check("writes were refused without a majority", bool(refused), refused[:80])
    report.check("running tasks kept serving without a majority", outage_ok > 0,
                 f"{outage_ok} ok, {outage_failed} failed")
    report.check("bringing the managers back restored writes", returned > back_at, f"{returned - back_at:.1f} s")
    report.check("--force-new-cluster restored writes on the survivor", forced > forced_at, f"{forced - forced_at:.1f} s")
    report.check("three managers are reachable again", len(reachable) == 3, ", ".join(reachable))
    return report


def _lose(lab: LabSession, report: DemoReport, names: list[str]) -> float:
    at = report.event(f"kill {' and '.join(names)}: 1 of 3 managers is left, no majority")
    for name in names:
        chaos.kill(lab, name)
    return at


def _write(lab: LabSession, replicas: int) -> bool:
    try:
        services.scale(lab.manager, SERVICE, replicas)
        services.scale(lab.manager, SERVICE, replicas - 1)
        services.scale(lab.manager, SERVICE, replicas)
        return True
    except (docker.errors.APIError, requests.RequestException, LabError) as err:
        raise NotYet(f"refused: {err}") from err


def _write_refused(lab: LabSession, replicas: int) -> str:
    """Try a write until the swarm refuses it (it may take a moment to notice); the error."""

    def refused() -> str:
        try:
            services.scale(lab.manager, SERVICE, replicas)
        except (docker.errors.APIError, LabError) as err:
            return getattr(err, "explanation", None) or str(err)
        except requests.RequestException as err:
            return str(err)
        raise NotYet("the write was still accepted")

    return wait_until(refused, timeout=60, interval=1, describe="the swarm to refuse writes")


def _force_new_cluster(lab: LabSession, address: str) -> None:
    lab.manager.swarm.init(advertise_addr=address, listen_addr=f"{address}:{swarm.SWARM_PORT}",
                           force_new_cluster=True)


def _rejoin(lab: LabSession, name: str) -> None:
    """A manager of the old cluster must leave it and join the new one."""
    client: docker.DockerClient = lab.clients[name]
    swarm.leave(client)
    old = [n for n in swarm_nodes(lab.manager) if n.hostname == name]
    for node in old:  # the new cluster still lists the lost managers (outside its Raft): drop them
        wait_until(lambda: next((n.state for n in swarm_nodes(lab.manager) if n.id == node.id), "down") == "down",
                   timeout=60, describe=f"the old {name} to be down")
        lab.manager.nodes.get(node.id).remove(force=True)
    node = lab.plan.node(name)
    swarm.join(client, name, node.address, [lab.plan.first_manager.address], swarm.tokens(lab.manager).manager,
               swarm.member_ids(lab.manager))
    wait_until(lambda: any(n.hostname == name and n.reachability == "reachable" for n in swarm_nodes(lab.manager)),
               timeout=90, describe=f"{name} to be a reachable manager")
