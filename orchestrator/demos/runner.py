"""High-availability demos: each narrates, measures, and ends with a verdict and a report."""

from __future__ import annotations

import threading
from typing import Callable

import docker.errors
import requests

from orchestrator.demos.report import DemoReport
from orchestrator.demos.toolkit import remove_network
from orchestrator.session import LabSession, open_lab
from orchestrator.viz import control as viz_control
from provision.errors import LabError
from provision.progress import Reporter

DEMO_LABEL = "io.swarmdeck.demo"


def run_demo(name: str, lab_name: str, reporter: Reporter, run: Callable[..., DemoReport], **options) -> DemoReport:
    """Open the lab, run one demo, print its verdict and save its report."""
    with open_lab(lab_name) as lab:
        report = DemoReport(name, lab_name, reporter)
        report.timings = timings(lab)
        live = LiveWriter(report).start()
        try:
            with reporter.step(f"demo.{name} on lab {lab_name}"):
                t = report.timings
                viz_url = viz_control.url(lab_name)
                if viz_url:
                    reporter.info(f"watch it live: {viz_url}")
                reporter.info(f"timings ({t['profile']} profile): worker heartbeat {t['dispatcher_heartbeat_s']} s, "
                              f"task restart delay {t['task_restart_delay_s']} s, healthcheck every "
                              f"{t['healthcheck_interval_s']} s, Raft election after {t['election_tick']}-"
                              f"{2 * t['election_tick']} s without a leader")
                run(lab, report, **options)
        finally:
            remove_demo_services(lab)
            report.finished = True
            live.stop()
        for note in report.notes:
            reporter.info(f"note: {note}")
        if report.skipped:
            reporter.warn(f"verdict: SKIP: {report.skipped}")
        else:
            reporter.emit("done" if report.passed else "fail", f"verdict: {'PASS' if report.passed else 'FAIL'}")
        report.save()
        return report


class LiveWriter:
    """Writes the running demo's narration for the visualizer twice a second."""

    def __init__(self, report: DemoReport, interval: float = 0.5):
        self.report, self.interval = report, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-demo", daemon=True)

    def start(self) -> "LiveWriter":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._write()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._write()
            self._stop.wait(self.interval)

    def _write(self) -> None:
        try:
            self.report.write_live()
        except OSError:
            pass  # the view is a bonus: a full disk must not stop the demo


def timings(lab: LabSession) -> dict:
    """The Swarm and demo-service timings the demo runs with (they decide its figures)."""
    spec = lab.plan.spec
    return {"profile": spec.profile, "dispatcher_heartbeat_s": spec.swarm.dispatcher_heartbeat,
            "election_tick": spec.swarm.election_tick, "task_restart_delay_s": spec.demos.restart_delay,
            "healthcheck_interval_s": spec.demos.health_interval}


def remove_demo_services(lab: LabSession) -> None:
    """Remove every service a demo made (labelled io.swarmdeck.demo), even after a failure,
    so that no demo leaves a published port taken for the next one; then the secrets,
    configs and overlay networks it made (labelled too), which those services used."""
    try:
        manager = lab.refresh_manager()
        for service in manager.services.list(filters={"label": DEMO_LABEL}):
            service.remove()
        for collection in (manager.secrets, manager.configs):
            for item in collection.list(filters={"label": DEMO_LABEL}):
                item.remove()
        for network in manager.networks.list(filters={"label": DEMO_LABEL, "driver": "overlay"}):
            remove_network(manager, network.id, timeout=lab.plan.scaled(60))
    except (LabError, docker.errors.DockerException, requests.RequestException):
        pass  # no manager answers (quorum lost): nothing can be removed now


def run_all(lab_name: str, reporter: Reporter, demos: list[tuple[str, Callable[..., DemoReport]]]) -> list[DemoReport]:
    """Run ``demos`` in order (the workshop sequence); one report each."""
    return [run_demo(name, lab_name, reporter, run) for name, run in demos]
