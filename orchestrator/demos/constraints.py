"""demo.constraints: place tasks with node labels and hostnames, as the tutorial does with
`--constraint node.labels.mem==max` and `node.hostname==...`."""

from __future__ import annotations

from orchestrator import nodes
from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import demo_service, wait_running
from orchestrator.session import LabSession

BY_LABEL, BY_HOSTNAME = "demo-by-label", "demo-by-hostname"


def run(lab: LabSession, report: DemoReport, *, node: str | None = None) -> DemoReport:
    workers = [n.name for n in lab.plan.nodes if not n.is_manager] or [lab.plan.first_manager.name]
    labelled, pinned = node or workers[-1], workers[0]
    nodes.set_labels(lab, labelled, {"mem": "max"}, [])
    report.event(f"label {labelled} mem=max (docker node update --label-add mem=max {labelled})")
    try:
        demo_service(lab, report, BY_LABEL, 3, published=False, constraints=("node.labels.mem==max",))
        by_label = {t.node for t in wait_running(lab, BY_LABEL, 3)}
        report.event(f"{BY_LABEL} (constraint node.labels.mem==max): 3 tasks on {', '.join(sorted(by_label))}")
        demo_service(lab, report, BY_HOSTNAME, 2, published=False, constraints=(f"node.hostname=={pinned}",))
        by_hostname = {t.node for t in wait_running(lab, BY_HOSTNAME, 2)}
        report.event(f"{BY_HOSTNAME} (constraint node.hostname=={pinned}): 2 tasks on {', '.join(sorted(by_hostname))}")
        report.check("label-constrained tasks run only on the labelled node", by_label == {labelled},
                     f"on {sorted(by_label)}")
        report.check("hostname-constrained tasks run only on that node", by_hostname == {pinned},
                     f"on {sorted(by_hostname)}")
    finally:
        nodes.set_labels(lab, labelled, {}, ["mem"])
        report.event(f"label mem removed from {labelled}")
    return report
