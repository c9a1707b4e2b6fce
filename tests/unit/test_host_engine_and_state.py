"""The engine that hosts a lab is found whatever the shell's DOCKER_* say; lab state and locks."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provision import hints, state
from provision.paths import REPO, lab_dir
from provision.remote import engine_clients


def lab_env(home: Path, lab: str = "web") -> dict[str, str]:
    """What `eval "$(swarmdeck lab.env manager1)"` leaves in a shell."""
    return {"DOCKER_HOST": "tcp://10.199.0.10:2376", "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(home / "labs" / lab / "tls" / "client"), "SWARMDECK_LAB": lab}


def test_a_lab_nodes_docker_settings_are_never_taken_for_the_host_engine(swarmdeck_home):
    assert engine_clients.points_at_a_lab(lab_env(swarmdeck_home))
    assert engine_clients.environment_settings(lab_env(swarmdeck_home)) == {}  # the local socket
    remote = {"DOCKER_HOST": "tcp://build-host:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/etc/certs"}
    assert engine_clients.environment_settings(remote) == remote  # an engine of the user's own is kept


def test_swarmdeck_docker_host_wins_over_everything(swarmdeck_home):
    settings = engine_clients.environment_settings({**lab_env(swarmdeck_home), engine_clients.OVERRIDE: "ssh://root@host2",
                                            engine_clients.OVERRIDE_CERTS: "/certs"})
    assert settings == {"DOCKER_HOST": "ssh://root@host2", "DOCKER_CERT_PATH": "/certs", "DOCKER_TLS_VERIFY": "1"}


def test_a_lab_remembers_the_engine_it_was_made_on(swarmdeck_home, monkeypatch):
    state.write_engine("web", {"DOCKER_HOST": "tcp://build-host:2376"})
    for key, value in lab_env(swarmdeck_home, "other").items():
        monkeypatch.setenv(key, value)
    assert engine_clients.host_settings("web") == {"DOCKER_HOST": "tcp://build-host:2376"}
    assert engine_clients.host_settings("never-made") == {}  # no record: the environment, minus the lab's
    monkeypatch.setenv(engine_clients.OVERRIDE, "unix:///run/other.sock")
    assert engine_clients.host_settings("web") == {"DOCKER_HOST": "unix:///run/other.sock"}


def test_an_engine_that_does_not_answer_is_named_in_the_error(swarmdeck_home, monkeypatch, tmp_path):
    monkeypatch.setenv(engine_clients.OVERRIDE, f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(engine_clients.ProviderUnavailable) as caught:
        engine_clients.host_client("web", timeout=2)
    assert f"no Docker engine answers at unix://{tmp_path}/no-engine.sock" in str(caught.value)
    assert engine_clients.OVERRIDE in caught.value.hint


def test_state_records_are_written_whole_and_private(swarmdeck_home):
    state.write_provider("web", "libvirt")
    assert state.exists("web") and state.read_provider("web") == "libvirt"
    assert state.known_labs() == ["web"]
    target = lab_dir("web") / "secret"
    state.write_atomically(target, b"x" * 10)
    assert target.read_bytes() == b"x" * 10 and oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".secret")] == []  # no temporary left
    assert state.remove("web") and not state.exists("web")


def _hold(home: str, seconds: float, ready) -> None:
    os.environ["SWARMDECK_HOME"] = home
    with state.lab_lock("web"):
        ready.set()
        time.sleep(seconds)


def test_a_second_run_waits_for_the_lab_lock_naming_its_holder(swarmdeck_home):
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(str(swarmdeck_home), 1.5, ready))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(state.LabBusy) as caught:
            with state.lab_lock("web", wait=False):
                pass
        assert f"pid {holder.pid}" in str(caught.value)
        told, started = [], time.monotonic()
        with state.lab_lock("web", on_wait=told.append):
            waited = time.monotonic() - started
        assert waited > 0.5 and told and "waiting for it to finish" in told[0]
    finally:
        holder.join(10)


def test_an_emptied_lab_folder_is_tidied_away(swarmdeck_home):
    with state.lab_lock("gone"):
        pass
    assert (lab_dir("gone") / state.LOCK_FILE).exists()
    state.tidy("gone")
    assert not lab_dir("gone").exists()


def test_hints_name_the_command_the_user_ran(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/swarmdeck", "lab.up"])
    assert hints.command("lab.down", lab="web") == "`swarmdeck lab.down --lab web`"
    monkeypatch.setattr(sys, "argv", ["/work/.venv/bin/invoke", "lab.up"])
    assert hints.command("lab.ssh", "NODE") == "`invoke lab.ssh NODE`"


def swarmdeck(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    command = Path(sys.executable).with_name("swarmdeck")
    return subprocess.run([str(command), *args], capture_output=True, text=True, cwd=cwd or REPO,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_help_works_for_tasks_with_positional_arguments():
    invoke = Path(sys.executable).with_name("invoke")
    for task in ("lab.ssh", "lab.env", "lab.scp", "service.create", "swarm.label", "stack.deploy"):
        for program, flag in (("swarmdeck", "--help"), ("invoke", "-h")):
            result = subprocess.run([str(Path(sys.executable).with_name(program)), task, flag], cwd=REPO,
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            assert f"Usage: {program} [--core-opts] {task}" in result.stdout and "--lab" in result.stdout
    piped = subprocess.run(f"{invoke} lab.scp --help | head -1", shell=True, cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    assert piped.stdout.startswith("Usage:") and "Traceback" not in piped.stderr


def test_list_into_a_closed_pipe_ends_without_a_traceback():
    command = Path(sys.executable).with_name("swarmdeck")
    result = subprocess.run(f"{command} --list | head -1", shell=True, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() and "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_an_empty_lab_name_is_refused_and_invoke_lab_variables_are_read(tmp_path):
    empty = swarmdeck("lab.down", "--lab", "", cwd=tmp_path)
    assert empty.returncode == 2 and "--lab needs a lab's name" in empty.stderr
    from_env = swarmdeck("lab.up", "--managers", "0", cwd=tmp_path, env={"INVOKE_LAB_NAME": "Bad Name"})
    assert from_env.returncode == 2 and "lab name 'Bad Name' is invalid" in from_env.stderr


def test_the_old_name_flag_still_works_with_a_warning(tmp_path):
    result = swarmdeck("lab.up", "--managers", "0", "--name", "x", cwd=tmp_path)
    assert result.returncode == 2 and "--name is deprecated for the lab: use --lab" in result.stderr
    refused = swarmdeck("service.ps", "web", "--name", "x", cwd=tmp_path)
    assert refused.returncode == 2 and "the lab is --lab" in refused.stderr


def test_the_created_spec_is_kept_in_one_place_and_written_once(swarmdeck_home):
    from provision.spec import load as spec_load

    first = spec_load.load_spec(None, {}, {"name": "web", "workers": 1})
    state.write_created_spec(first)
    state.write_created_spec(spec_load.load_spec(None, {}, {"name": "web", "workers": 3}))  # a re-run keeps it
    assert state.read_created_spec("web") == first
    assert state.read_current_spec("web") is None
    state.write_current_spec(spec_load.load_spec(None, {}, {"name": "web", "workers": 2}))
    assert len(state.read_current_spec("web").workers) == 2


def test_a_lab_of_swarmdeck_0_1_is_found_by_its_old_records(swarmdeck_home):
    import json

    from provision.spec import load as spec_load

    spec = spec_load.load_spec(None, {}, {"name": "old", "provider": "libvirt"})
    lab_dir("old").mkdir(parents=True)
    (lab_dir("old") / "libvirt.json").write_text(json.dumps(spec_load.to_mapping(spec)))
    assert state.known_labs() == ["old"] and state.read_provider("old") == "libvirt"
    assert state.read_created_spec("old") == spec
