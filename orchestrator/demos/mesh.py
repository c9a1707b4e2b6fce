"""demo.mesh: request the published port on every node and show which task answered.

With IPVS, Swarm's routing mesh answers on every node, even those that run no task.
Without it (container nodes on a kernel without IPVS), the mesh cannot work: the demo
says so and publishes in host mode instead, where only nodes that run a task answer,
and the lab's load balancer spreads requests over them."""

from __future__ import annotations

from orchestrator.demos.probe import Probe
from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import PORT, demo_service, wait_running
from orchestrator.session import LabSession
from provision.lab_services import entry_point as entrypoint

SERVICE = "demo-mesh"


def ask(url: str) -> tuple[str, str] | None:
    """(node, container) that answered ``url``, or None when nothing answered."""
    sample = Probe(url, started=0.0).request()
    return (sample.node, sample.container) if sample.ok else None


def run(lab: LabSession, report: DemoReport, *, replicas: int = 2) -> DemoReport:
    entry = entrypoint.entry_point(lab.plan)
    if entry.kind == "load balancer":
        report.event("this kernel has no IPVS: Swarm's routing mesh and service VIPs cannot work in container "
                     "nodes here, so the service publishes in host mode (VMs have IPVS: see the README)")
    demo_service(lab, report, SERVICE, replicas)
    hosting = {t.node for t in wait_running(lab, SERVICE, replicas)}
    report.event(f"{replicas} tasks run on {', '.join(sorted(hosting))}")
    answers = {}
    for node in lab.plan.nodes:
        answers[node.name] = ask(f"http://{node.address}:{PORT}/")
        answered = f"task on {answers[node.name][0]} ({answers[node.name][1]})" if answers[node.name] else "refused"
        report.event(f"{node.name}:{PORT} -> {answered}")
    through_entry = {ask(entry.url(PORT)) for _ in range(4 * replicas)} - {None}
    report.event(f"the entry point ({entry.kind}) reached tasks on {', '.join(sorted(n for n, _ in through_entry))}")
    if entry.kind == "routing mesh":
        report.check("every node answered, with or without a task", all(answers.values()),
                     f"{sum(bool(a) for a in answers.values())} of {len(answers)} nodes")
    else:
        report.check("nodes with a task answered from that task", all(
            answers[n] and answers[n][0] == n for n in hosting), ", ".join(sorted(hosting)))
        report.check("nodes without a task refused (no mesh)", all(
            answers[n] is None for n in answers if n not in hosting), "connection refused")
    report.check("the entry point reached every task", {n for n, _ in through_entry} == hosting,
                 f"{len(through_entry)} distinct tasks")
    return report
