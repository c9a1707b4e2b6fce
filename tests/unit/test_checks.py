"""Validation and hints on the command line: INVOKE_LAB_* variables and their layering, an
empty --lab refused by every task, the memory warning, and a registry that is down."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import docker.errors
import pytest
import requests

import tasks
from provision import doctor, machines
from provision.errors import ProviderError
from provision.lab_services import registry
from provision.plan import RUNNING, STOPPED, Machine, plan
from provision.progress import RecordingReporter
from provision.providers.base import Capabilities
from provision.spec import load as spec_load

SWARMDECK = Path(sys.executable).with_name("swarmdeck")


def swarmdeck(cwd: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    """The swarmdeck command in ``cwd`` with these INVOKE_LAB_* variables and no others (nor a
    SWARMDECK_LAB that a `lab.env` in the test's shell may have set)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_") and k != "SWARMDECK_LAB"}
    return subprocess.run([str(SWARMDECK), *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**environ, **variables})


def dry_run(cwd: Path, *flags: str, **variables: str) -> dict:
    result = swarmdeck(cwd, "lab.up", "--dry-run", *flags, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


ENV = {"INVOKE_LAB_MANAGERS": "1", "INVOKE_LAB_WORKERS": "0", "INVOKE_LAB_REGISTRY_ENABLED": "false",
       "INVOKE_LAB_NETWORK_SUBNET": "10.199.77.0/24", "INVOKE_LAB_PROFILE": "tuned"}


def test_invoke_lab_variables_are_converted_and_win_over_lab_yaml(tmp_path):
    (tmp_path / "lab.yaml").write_text("name: fromfile\nmanagers: 3\nworkers: 2\nregistry: {enabled: true}\n"
                                       "network: {subnet: 10.199.66.0/24}\nprofile: default\n")
    assert dry_run(tmp_path)["network"]["subnet"] == "10.199.66.0/24"  # the file alone
    spec = dry_run(tmp_path, **ENV)
    assert spec["name"] == "fromfile"  # set by no variable: the file's
    assert [(n["name"], n["role"]) for n in spec["nodes"]] == [("manager1", "manager")]
    assert spec["registry"]["enabled"] is False and spec["network"]["subnet"] == "10.199.77.0/24"
    assert spec["profile"] == "tuned" and spec["swarm"]["dispatcher_heartbeat"] == 0.5
    assert spec["demos"] == {"restart_delay": 0.0, "health_interval": 0.5}


def test_flags_win_over_invoke_lab_variables(tmp_path):
    spec = dry_run(tmp_path, "--workers", "2", "--subnet", "10.199.88.0/24", "--profile", "default", **ENV)
    assert [n["name"] for n in spec["nodes"]] == ["manager1", "worker1", "worker2"]
    assert spec["network"]["subnet"] == "10.199.88.0/24" and spec["swarm"]["dispatcher_heartbeat"] == 5.0
    assert spec["registry"]["enabled"] is False  # no flag said otherwise


def test_invoke_lab_spec_names_the_spec_file(tmp_path):
    (tmp_path / "lab.yaml").write_text("name: here\n")
    elsewhere = tmp_path / "other" / "spec.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text("name: elsewhere\nworkers: 1\n")
    spec = dry_run(tmp_path, INVOKE_LAB_SPEC=str(elsewhere))
    assert spec["name"] == "elsewhere" and len(spec["nodes"]) == 4
    assert dry_run(tmp_path, "--spec", str(tmp_path / "lab.yaml"), INVOKE_LAB_SPEC=str(elsewhere))["name"] == "here"
    missing = swarmdeck(tmp_path, "lab.up", INVOKE_LAB_SPEC=str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert f"spec file {tmp_path / 'nope.yaml'} does not exist (from INVOKE_LAB_SPEC)" in missing.stderr


def test_wrong_values_in_invoke_lab_variables_are_problems_naming_them(tmp_path):
    result = swarmdeck(tmp_path, "lab.up", INVOKE_LAB_MANAGERS="0", INVOKE_LAB_WORKERS="many",
                       INVOKE_LAB_REGISTRY_ENABLED="perhaps", INVOKE_LAB_NETWORK_SUBNET="10.1.0.0/33",
                       INVOKE_LAB_PROFILE="fast")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: the lab spec has 5 problem(s):",
        "  - a lab needs at least one manager (managers: 1 or more) (from INVOKE_LAB_MANAGERS)",
        "  - workers must be a whole number, not 'many' (from INVOKE_LAB_WORKERS)",
        "  - subnet '10.1.0.0/33' is not an IPv4 CIDR such as 10.199.0.0/24 (or 'auto') (from "
        "INVOKE_LAB_NETWORK_SUBNET)",
        "  - registry.enabled must be true or false, not 'perhaps' (from INVOKE_LAB_REGISTRY_ENABLED)",
        "  - unknown profile 'fast': choose one of default, tuned (from INVOKE_LAB_PROFILE)",
        "  hint: fix lab.yaml, INVOKE_LAB_MANAGERS, INVOKE_LAB_NETWORK_SUBNET, INVOKE_LAB_PROFILE, "
        "INVOKE_LAB_REGISTRY_ENABLED, INVOKE_LAB_WORKERS or the command-line flags and run again",
    ]


def test_an_invoke_config_file_with_a_plain_value_for_a_section_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / "invoke.yaml").write_text("lab:\n  workers: 1\n  network: {subnet: 10.199.55.0/24}\n")
    spec = json.loads(swarmdeck(tmp_path, "-f", "invoke.yaml", "lab.up", "--dry-run").stdout)
    assert len(spec["nodes"]) == 4 and spec["network"]["subnet"] == "10.199.55.0/24"
    (tmp_path / "invoke.yaml").write_text("lab:\n  network: abc\n")
    result = swarmdeck(tmp_path, "-f", "invoke.yaml", "lab.up")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: an Invoke config file (invoke.yaml, -f FILE) gives a plain value where the lab spec has a section: "
        "`lab:` and its network, registry, swarm, demos and vagrant must be mappings, not 'abc'",
        "  hint: fix that file and run again"]


def test_too_many_nodes_for_the_lab_network_is_a_problem_not_a_traceback(tmp_path):
    result = swarmdeck(tmp_path, "lab.up", "--workers", "1000")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the automatic lab network (a /24) is too small for 1003 nodes (room for 245)" in result.stderr


def test_every_task_refuses_an_empty_lab(monkeypatch, capsys, tmp_path):
    # nothing may reach an engine if a task let the empty name through
    monkeypatch.setenv("SWARMDECK_DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    checked = []
    for name in tasks.ns.task_names:
        parameters = inspect.signature(tasks.ns[name].body).parameters
        if "lab" not in parameters:
            continue
        positional = [p for p in list(parameters.values())[1:] if p.default is inspect.Parameter.empty]
        with pytest.raises(SystemExit) as caught:
            tasks.program.run(["swarmdeck", name, *["x=1"] * len(positional), "--lab", ""])
        assert caught.value.code == 2, name
        assert "error: --lab needs a lab's name" in capsys.readouterr().err, name
        checked.append(name)
    assert {"lab.up", "lab.down", "lab.status", "lab.env", "registry.ls", "service.create"} <= set(checked)
    # the tasks that act on no single lab: the class tasks act on a class's labs (--class)
    classes = {"class.up", "class.status", "class.cards", "class.reset", "class.down"}
    assert set(tasks.ns.task_names) - set(checked) == {"lab.ls", "lab.doctor", "image.build", "image.prune", "lesson.ls",
                                                          *classes}


# -- memory -----------------------------------------------------------------------------------


class _Provider:
    """What warn_about_memory asks a provider: its node size and which machines run."""

    def __init__(self, node_mb: int, running: list[str]):
        self.capabilities = Capabilities(boot_timeout=90,
                                         node_memory_mb=node_mb)
        self.running = running

    def list(self, lab):
        return [Machine(lab, n, "worker", i, "", RUNNING if n in self.running else STOPPED, "docker")
                for i, n in enumerate(["manager1", "worker1", "worker2"])]


def test_nodes_needing_more_memory_than_available_are_a_warning(monkeypatch):
    monkeypatch.setattr(doctor, "_meminfo", lambda: {"MemAvailable": 1000 * 1024})
    assert doctor.memory_warning(12, 80) is None  # 960 MB fit
    assert doctor.memory_warning(13, 80) == (
        "13 new node(s) need about 1040 MB of memory (80 MB each), but this machine has 1000 MB available: they may "
        "run slowly or be killed by the kernel's out-of-memory killer; use fewer nodes (--workers) or free memory")
    lab = plan(spec_load.load_spec(None, {}, {"name": "mem", "managers": 1, "workers": 2}), "10.199.5.0/24", 1500)
    reporter = RecordingReporter()
    machines.warn_about_memory(lab, _Provider(768, running=["manager1"]), reporter)  # two VMs to start
    assert reporter.kinds("warn") == [doctor.memory_warning(2, 768)]
    quiet = RecordingReporter()
    machines.warn_about_memory(lab, _Provider(400, running=["manager1", "worker1"]), quiet)  # one to start: fits
    machines.warn_about_memory(lab, _Provider(0, running=[]), quiet)  # machines elsewhere (ssh)
    assert quiet.lines == []


def test_the_dry_run_warns_about_memory(tmp_path):
    # 3000 container nodes want about 240 GB: more than any test machine has available
    result = swarmdeck(tmp_path, "lab.up", "--dry-run", "--workers", "3000", "--subnet", "10.100.0.0/18")
    assert result.returncode == 0, result.stderr
    assert "3003 new node(s) need about 240240 MB of memory (80 MB each)" in result.stderr


# -- the registry ---------------------------------------------------------------------------------


class _Container:
    def __init__(self, status: str, exit_code: int = 0):
        self.status = status
        self.attrs = {"State": {"ExitCode": exit_code, "FinishedAt": "2024-05-01T10:11:12.123456789Z"}}
        self.calls: list[str] = []

    def start(self):
        self.calls.append("start")

    def unpause(self):
        self.calls.append("unpause")


class _Engine:
    """manager1's engine as the registry checks see it."""

    def __init__(self, container=None, volume=True, error: Exception | None = None):
        self.container, self.volume, self.error = container, volume, error
        self.containers, self.volumes = self, _Volumes(volume)

    def get(self, name):
        assert name == registry.CONTAINER
        if self.error:
            raise self.error
        if self.container is None:
            raise docker.errors.NotFound("no such container")
        return self.container


class _Volumes:
    def __init__(self, present: bool):
        self.present = present

    def get(self, name):
        assert name == registry.VOLUME
        if not self.present:
            raise docker.errors.NotFound("no such volume")


def registry_error(engine: _Engine) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        registry.check_running(engine, "manager1", "web")  # type: ignore[arg-type]
    return caught.value


def test_a_registry_that_is_down_is_named_with_the_repair(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["swarmdeck"])
    registry.check_running(_Engine(_Container("running")), "manager1", "web")  # type: ignore[arg-type]
    killed = registry_error(_Engine(_Container("exited", 137)))
    assert str(killed) == ("the registry container on manager1 is not running "
                           "(exited with code 137 at 2024-05-01 10:11:12 UTC)")
    assert killed.hint == ("`swarmdeck lab.up --lab web` starts it again with its data kept (the images are on its "
                           "registry-data volume)")
    assert str(registry_error(_Engine(_Container("paused")))).endswith("is not running (paused)")
    removed = registry_error(_Engine(None))
    assert str(removed) == "the lab registry is not running: there is no registry container on manager1"
    assert removed.hint == ("`swarmdeck lab.up --lab web` creates it again; the images pushed before are kept on its "
                            "registry-data volume")
    assert "volume is gone too: push the images again" in registry_error(_Engine(None, volume=False)).hint
    silent = registry_error(_Engine(error=requests.exceptions.ConnectionError("connection refused")))
    assert str(silent) == "the lab registry's node manager1 does not answer: connection refused"
    assert "`swarmdeck lab.start manager1 --lab web` starts it" in silent.hint


def test_lab_up_starts_a_stopped_registry_container_again():
    for status, calls, said in (("exited", ["start"], "container exited before, started again: its images are kept"),
                                ("created", ["start"], "container created before, started again: its images are kept"),
                                ("paused", ["unpause"], "container unpaused")):
        container = _Container(status)
        assert registry._ensure_container(_Engine(container), registry.LAB_REGISTRY, 5000) == said
        assert container.calls == calls
    for status in ("running", "restarting"):  # restarting: the engine brings it back itself
        container = _Container(status)
        assert registry._ensure_container(_Engine(container), registry.LAB_REGISTRY, 5000) == ""
        assert container.calls == []
