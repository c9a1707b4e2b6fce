"""demo.partition: cut a worker off the lab network. Swarm recreates its tasks elsewhere
while the old ones keep running on the cut-off node (at-least-once: duplicates are
expected); after the partition heals, Swarm stops the extra ones and converges back."""

from __future__ import annotations

from orchestrator import chaos
from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import (
    Watcher,
    probing,
    service_and_victim,
    settle,
    wait_for_state,
    wait_running,
)
from orchestrator.session import LabSession
from provision.errors import LabError
from provision.wait import wait_until

SERVICE = "demo-partition"


def run(lab: LabSession, report: DemoReport, *, node: str | None = None, replicas: int = 10) -> DemoReport:
    capabilities = lab.provider.capabilities
    if not (capabilities.partition and capabilities.console):
        raise LabError(f"demo.partition cuts a node off the network and counts its containers over the provider's "
                       f"own channel: the {lab.provider.name} provider cannot do both",
                       hint="run it on a lab of the docker provider (`--provider docker`)")
    request, victim = service_and_victim(lab, report, SERVICE, replicas, node)
    with probing(lab, report) as probe, Watcher(lab, report, SERVICE).running():
        settle(2)
        cut = report.event(f"cut {victim} off the lab network (it keeps running)")
        chaos.partition(lab, victim)
        wait_for_state(lab, report, victim, "down", f"the swarm marks {victim} Down")
        wait_running(lab, SERVICE, request.replicas, avoid=victim, timeout=120)
        recreated = report.event(f"{request.replicas} tasks run on the other nodes")
        stranded = chaos.containers_of(lab, victim, SERVICE)
        report.event(f"meanwhile {stranded} old task(s) still run on the cut-off {victim}: "
                     f"{request.replicas + stranded} copies in all (at-least-once)")
        healed = report.event(f"heal the partition: {victim} is back on the network")
        chaos.heal(lab, victim)
        wait_for_state(lab, report, victim, "ready", f"{victim} is back and Ready")
        wait_until(lambda: chaos.containers_of(lab, victim, SERVICE) == 0, timeout=120, interval=0.5,
                   describe=f"Swarm to stop the stranded task(s) on {victim}")
        converged = report.event(f"the stranded task(s) on {victim} are stopped: {request.replicas} copies again")
        wait_running(lab, SERVICE, request.replicas)
        outage_ok, outage_failed = probe.counts(since=cut)
    report.figure("tasks recreated elsewhere after", recreated - cut, " s")
    report.figure("duplicates while partitioned", stranded)
    report.figure("converged after healing in", converged - healed, " s")
    report.check("Swarm recreated the cut-off node's tasks elsewhere", recreated > cut, f"{recreated - cut:.1f} s")
    report.check("the old tasks kept running on the cut-off node (duplicates)", stranded > 0, f"{stranded} stranded")
    report.check("after healing, Swarm converged back to the desired count", converged > healed,
                 f"{converged - healed:.1f} s")
    report.check("the service kept answering", outage_ok > 0, f"{outage_ok} ok, {outage_failed} failed")
    return report
