"""High-availability demos: each narrates, measures, and ends with a verdict and a report."""

from __future__ import annotations

from typing import Callable

import docker.errors
import requests

from orchestrator.report import DemoReport
from orchestrator.session import LabSession, open_lab
from provision.errors import LabError
from provision.report import Reporter

DEMO_LABEL = "io.swarmdeck.demo"


def run_demo(name: str, lab_name: str, reporter: Reporter, run: Callable[..., DemoReport], **options) -> DemoReport:
    """Open the lab, run one demo, print its verdict and save its report."""
    with open_lab(lab_name) as lab:
        report = DemoReport(name, lab_name, reporter)
        try:
            with reporter.step(f"demo.{name} on lab {lab_name}"):
                run(lab, report, **options)
        finally:
            remove_demo_services(lab)
        for note in report.notes:
            reporter.info(f"note: {note}")
        reporter.emit("done" if report.passed else "fail", f"verdict: {'PASS' if report.passed else 'FAIL'}")
        report.save()
        return report


def remove_demo_services(lab: LabSession) -> None:
    """Remove every service a demo made (labelled io.swarmdeck.demo), even after a failure,
    so that no demo leaves a published port taken for the next one."""
    try:
        manager = lab.refresh_manager()
        for service in manager.services.list(filters={"label": DEMO_LABEL}):
            service.remove()
    except (LabError, docker.errors.DockerException, requests.RequestException):
        pass  # no manager answers (quorum lost): nothing can be removed now


def run_all(lab_name: str, reporter: Reporter, demos: list[tuple[str, Callable[..., DemoReport]]]) -> list[DemoReport]:
    """Run ``demos`` in order (the workshop sequence); one report each."""
    return [run_demo(name, lab_name, reporter, run) for name, run in demos]
