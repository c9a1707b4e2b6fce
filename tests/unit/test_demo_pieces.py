import functools
import json
from types import SimpleNamespace

import pytest

from orchestrator.demos.probe import Probe, Sample, parse_answer
from orchestrator.demos.report import DemoReport
from provision import wait
from provision.errors import WaitTimeout
from provision.progress import RecordingReporter


def test_probe_reads_the_demo_answer():
    assert parse_answer("swarmdeck-web version=2 container=ab12 node=worker1 | x") == ("2", "ab12", "worker1")
    assert parse_answer("hello") is None


def test_probe_counts_failures_to_unreachable_addresses():
    probe = Probe("http://127.0.0.1:9/", started=0.0, timeout=0.5)  # port 9: nothing listens
    sample = probe.request()
    assert not sample.ok and sample.error and 0 <= sample.duration < 1
    probe.samples = [Sample(1.0, True, "1"), Sample(2.0, False), Sample(3.5, True, "1")]
    assert probe.counts() == (2, 1) and probe.counts(since=2.5) == (1, 0)


def test_report_verdict_needs_every_check_and_saves_json_and_png(tmp_path):
    report = DemoReport("failover", "t1", RecordingReporter())
    assert not report.passed  # no check, no pass
    report.event("kill worker1")
    report.replicas += [(0.0, 4), (1.0, 3), (2.0, 4)]
    report.versions += [(0.0, {"1": 4}, {}), (1.0, {"1": 3}, {"1": 1})]
    report.samples = [Sample(0.5, True, "1", "worker2", "c1", duration=0.01),
                      Sample(1.5, False, error="timeout", duration=2.0)]
    report.check("replicas came back", True, "2 s")
    assert report.passed
    report.check("no request failed", False, "1 failed")
    assert not report.passed
    json_path, png_path = report.save()
    saved = json.loads(json_path.read_text())
    assert saved["verdict"] == "fail" and saved["requests"] == {"ok": 1, "failed": 1}
    assert [c["passed"] for c in saved["checks"]] == [True, False]
    assert saved["samples"][1]["duration"] == 2.0
    assert saved["versions"][1] == {"t": 1.0, "running": {"1": 3}, "starting": {"1": 1}}
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_wait_for_tasks_says_which_ones_do_not_run_and_why(monkeypatch):
    from orchestrator.demos import toolkit
    from orchestrator.services import TaskView

    tasks = [TaskView("s", 1, "manager1", "running", "running", "web:1", ""),
             TaskView("s", 2, "worker1", "shutdown", "running", "web:1", ""),  # the dead node's old task
             TaskView("s", 2, "manager3", "running", "pending",
                      "web:1", "no suitable node (host-mode port already in use on 1 node)")]
    monkeypatch.setattr(toolkit.services, "tasks", lambda manager, service: tasks)
    lab = SimpleNamespace(manager=None, plan=SimpleNamespace(scaled=lambda timeout: timeout))
    clock = iter(range(0, 100, 10))
    monkeypatch.setattr(toolkit, "wait_until", functools.partial(
        wait.wait_until, clock=lambda: next(clock), sleep=lambda seconds: None))
    with pytest.raises(WaitTimeout) as err:
        toolkit.wait_running(lab, "s", 2, timeout=30)
    assert "1 of 2 wanted tasks run: manager1:1; not running yet: manager3 pending (no suitable node" in str(err.value)
