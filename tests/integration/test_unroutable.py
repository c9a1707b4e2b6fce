"""A lab whose network is not routable from where swarmdeck runs, as on Docker Desktop (macOS,
Windows) and rootless Docker: swarmdeck runs in a container on the engine's default bridge with
the engine's socket (the host's file system under chroot, so the checkout's venv and the host's
ssh and docker CLIs are there, offline; only the network namespace is the container's). From
there the lab network answers nothing, and the route is detected as such: lab.up, lab.status,
lab.ssh and lab.env + `docker node ls` all go through the lab's tunnel (provision/remote/reach.py,
tunnel.py), and lab.down stops it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from provision import state
from provision.images.node import node_image_tag
from provision.remote import reach
from tests.labs import CREATED, OUTPUTS, lab_resources

pytestmark = pytest.mark.integration
SWARMDECK = str(Path(sys.executable).with_name("swarmdeck"))


@pytest.fixture(scope="module")
def runner(engine):
    """A container on the default bridge sharing the host's file system and process table
    (so its tunnel's pid means the same on both sides), not its network."""
    name = f"it-unroutable-runner-{uuid.uuid4().hex[:4]}"
    engine.images.get(node_image_tag())  # made by any lab.up of this session, or image.build
    container = engine.containers.run(
        node_image_tag(), ["sleep", "infinity"], entrypoint=[], name=name, detach=True, network="bridge",
        pid_mode="host", volumes={"/": {"bind": "/host", "mode": "rw"}},
        labels={"io.swarmdeck.kind": "test-runner"},
    )
    try:
        yield container
    finally:
        container.remove(force=True)


def inside(runner, command: str, *, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``command`` (sh) in the runner, in the host's file system, with this session's home."""
    environment = {"SWARMDECK_HOME": os.environ["SWARMDECK_HOME"], "PATH": "/usr/local/bin:/usr/bin:/bin",
                   "HOME": "/root", "SHELL": "/bin/bash"}
    argv = ["docker", "exec", runner.name, "chroot", "/host", "env", "-i",
            *(f"{k}={v}" for k, v in environment.items()), "sh", "-c", f"cd / && {command}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    OUTPUTS.append((argv, result.stdout + result.stderr))
    assert "Traceback (most recent call last)" not in result.stderr, result.stderr
    if check and result.returncode != 0:
        raise AssertionError(f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def test_a_lab_on_an_unroutable_network_is_reached_through_its_tunnel(engine, runner):
    lab = f"it-unroutable-{uuid.uuid4().hex[:4]}"
    CREATED.add(lab)
    sd = SWARMDECK
    try:
        inside(runner, f"{sd} lab.up --lab {lab} --managers 1 --workers 1 --no-registry")
        assert state.read_route(lab) == reach.TUNNEL  # detected in there: nothing configured it

        status = json.loads(inside(runner, f"{sd} lab.status --lab {lab} --json").stdout)
        addresses = {n["name"]: n["address"] for n in status["nodes"]}
        assert sorted(addresses) == ["manager1", "worker1"]
        assert status["state"] == "running" and all(n["state"] == "ready" for n in status["nodes"]), status
        # the lab network really is unroutable from the runner: straight to a node's sshd times out
        direct = runner.exec_run(["busybox", "nc", "-w", "2", addresses["manager1"], "22"])
        assert direct.exit_code != 0 and b"SSH-" not in direct.output

        assert inside(runner, f"{sd} lab.ssh manager1 --lab {lab} --command hostname").stdout.strip() == "manager1"
        env_lines = inside(runner, f"{sd} lab.env worker1 --lab {lab} --shell bash").stdout
        assert 'DOCKER_HOST="tcp://127.0.0.1:' in env_lines
        listed = inside(runner, f'eval "$({sd} lab.env manager1 --lab {lab} --shell bash)" && '
                                "docker node ls --format '{{.Hostname}} {{.Status}}'").stdout.split("\n")
        assert sorted(line for line in listed if line) == ["manager1 Ready", "worker1 Ready"]
        tunnel = state.read_tunnel(lab)
        assert reach.alive(lab, tunnel)

        inside(runner, f"{sd} lab.down --lab {lab}")
        assert not reach.alive(lab, tunnel)
        assert lab_resources(engine, lab) == []
        assert not state.exists(lab)
    finally:
        inside(runner, f"{sd} lab.down --lab {lab}", check=False)

