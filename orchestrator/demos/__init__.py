"""High-availability demos: each narrates, measures, and ends with a verdict and a report."""

from __future__ import annotations

from typing import Callable

from orchestrator.report import DemoReport
from orchestrator.session import open_lab
from provision.report import Reporter


def run_demo(name: str, lab_name: str, reporter: Reporter, run: Callable[..., DemoReport], **options) -> DemoReport:
    """Open the lab, run one demo, print its verdict and save its report."""
    with open_lab(lab_name) as lab:
        report = DemoReport(name, lab_name, reporter)
        with reporter.step(f"demo.{name} on lab {lab_name}"):
            run(lab, report, **options)
        for note in report.notes:
            reporter.info(f"note: {note}")
        reporter.emit("done" if report.passed else "fail", f"verdict: {'PASS' if report.passed else 'FAIL'}")
        report.save()
        return report


def run_all(lab_name: str, reporter: Reporter, demos: list[tuple[str, Callable[..., DemoReport]]]) -> list[DemoReport]:
    """Run ``demos`` in order (the workshop sequence); one report each."""
    return [run_demo(name, lab_name, reporter, run) for name, run in demos]
