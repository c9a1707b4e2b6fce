"""The checks that end a session that made labs (tests/conftest.py) can fail it."""

from types import SimpleNamespace

import pytest

from tests import conftest, labs

TOKEN = "SWM" + "TKN-1-" + "3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"


@pytest.fixture
def outputs(monkeypatch):
    monkeypatch.setattr(labs, "OUTPUTS", [])
    monkeypatch.setattr(conftest, "OUTPUTS", labs.OUTPUTS)
    monkeypatch.setattr(conftest, "FINDINGS", [])
    return labs.OUTPUTS


def test_a_token_in_any_output_but_swarm_tokens_is_a_leak(outputs, tmp_path):
    outputs.append((["invoke", "swarm.tokens"], f"worker {TOKEN}"))
    assert labs.secret_leaks(None, tmp_path) == [] and not labs.scan_is_blind()
    outputs.append((["invoke", "lab.up"], f"joining with {TOKEN}"))
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "state.json").write_text(TOKEN)
    assert labs.secret_leaks(None, tmp_path) == ["invoke lab.up", str(tmp_path / "labs" / "state.json")]


class _Engine:
    def close(self):
        pass


@pytest.fixture
def strays(monkeypatch):
    monkeypatch.setattr(conftest, "_MADE_LABS", [])
    monkeypatch.setattr(conftest.docker, "from_env", lambda timeout: _Engine())
    monkeypatch.setattr(conftest, "stray_containers", lambda client: ["probe swarmdeck-probe-1"])


def test_a_finding_fails_the_session_even_when_every_test_passed(outputs, strays, monkeypatch, tmp_path):
    monkeypatch.setenv("SWARMDECK_HOME", str(tmp_path))
    outputs.append((["invoke", "lab.status"], f"oops {TOKEN}"))
    monkeypatch.setattr(conftest, "secret_leaks", lambda client, home: labs.secret_leaks(None, home))
    conftest._end_of_session_checks(client=None)
    session = SimpleNamespace(exitstatus=0, config=SimpleNamespace())
    conftest.pytest_sessionfinish(session, 0)
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert conftest.FINDINGS == ["a Swarm secret leaked into invoke lab.status",
                                 "a stray container is left on the host engine: probe swarmdeck-probe-1"]


def test_an_xdist_worker_hands_its_findings_to_the_controller_which_fails_the_run(outputs, strays):
    outputs.append((["invoke", "lab.up"], "made a lab"))
    conftest.FINDINGS.append("a Swarm secret leaked into invoke lab.up")
    worker = SimpleNamespace(exitstatus=0, config=SimpleNamespace(workeroutput={}))
    conftest.pytest_sessionfinish(worker, 0)
    assert worker.exitstatus == 0  # the worker does not judge: a probe of another worker is no stray
    assert worker.config.workeroutput == {"findings": ["a Swarm secret leaked into invoke lab.up"], "made_labs": True}

    conftest.FINDINGS.clear()
    outputs.clear()  # the controller made no lab itself
    conftest.pytest_testnodedown(SimpleNamespace(workeroutput=worker.config.workeroutput), None)
    controller = SimpleNamespace(exitstatus=0, config=SimpleNamespace())
    conftest.pytest_sessionfinish(controller, 0)
    assert controller.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert conftest.FINDINGS == ["a Swarm secret leaked into invoke lab.up",
                                 "a stray container is left on the host engine: probe swarmdeck-probe-1"]


def test_a_run_that_made_no_lab_does_not_ask_the_engine_for_strays(outputs, strays, monkeypatch):
    monkeypatch.setattr(conftest, "CREATED", set())
    session = SimpleNamespace(exitstatus=0, config=SimpleNamespace())
    conftest.pytest_sessionfinish(session, 0)
    assert session.exitstatus == 0 and conftest.FINDINGS == []
