"""Integration fixtures: real labs on the real Docker engine, driven through the CLI.

Every lab made here is named ``it-...`` and is removed by label after the
session; an ``it-`` lab left by an earlier, killed session is swept first once it
is two hours old (younger ones may belong to a test session running alongside).
Every CLI output is kept so that the last test can check that no Swarm secret
leaked into any of them.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import docker
import pytest

from provision.paths import REPO
from provision.providers.docker import names as labels
from provision.remote.engine_clients import node_client

INVOKE = str(Path(sys.executable).with_name("invoke"))
OUTPUTS: list[tuple[list[str], str]] = []  # (argv, stdout+stderr) of every CLI call


def cli(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``invoke ARGS`` in the checkout, keeping its output for the secret scan."""
    argv = [INVOKE, *args]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    OUTPUTS.append((argv, result.stdout + result.stderr))
    # expected failures are LabErrors, shown as a message and a hint: a traceback is a bug
    assert "Traceback (most recent call last)" not in result.stderr, f"{' '.join(args)} crashed:\n{result.stderr}"
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def lab_resources(client: docker.DockerClient, lab: str) -> list[str]:
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=labels.lab_filter(lab))]
    found += [f"network {n.name}" for n in client.networks.list(filters=labels.lab_filter(lab))]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=labels.lab_filter(lab))]
    return found


CREATED: set[str] = set()  # labs this session made: removed at its end
STALE_AFTER = datetime.timedelta(hours=2)  # an older it- lab was left by a killed session


def sweep(client: docker.DockerClient, *, stale_only: bool) -> None:
    """Remove this session's labs, or it- labs old enough to be leftovers; never a lab
    that another test session running at the same time is using."""
    from provision.providers.docker.provider import DockerProvider
    provider = DockerProvider(client)
    now = datetime.datetime.now(datetime.timezone.utc)
    for network in client.networks.list(filters={"label": [f"{labels.KIND}=network"]}):
        lab = network.attrs["Labels"].get(labels.LAB, "")
        created = datetime.datetime.fromisoformat(network.attrs["Created"][:26].rstrip("Z") + "+00:00")
        if lab in CREATED or (stale_only and lab.startswith("it-") and now - created > STALE_AFTER):
            provider.destroy(lab)


@pytest.fixture(scope="session")
def engine():
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as err:
        pytest.fail(f"integration tests need a Docker engine ({err}); ./bootstrap.sh test starts one")
    sweep(client, stale_only=True)
    yield client
    sweep(client, stale_only=False)
    client.close()


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("swarmdeck-home")
    old = os.environ.get("SWARMDECK_HOME")
    os.environ["SWARMDECK_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("SWARMDECK_HOME", None)
    else:
        os.environ["SWARMDECK_HOME"] = old


def new_lab_name(purpose: str) -> str:
    name = f"it-{purpose}-{uuid.uuid4().hex[:4]}"
    CREATED.add(name)
    return name


@contextmanager
def a_lab(purpose: str, *flags: str) -> Iterator[str]:
    """A lab made with ``lab.up FLAGS`` for a test module, removed afterwards."""
    name = new_lab_name(purpose)
    cli("lab.up", "--lab", name, *flags)
    try:
        yield name
    finally:
        cli("lab.down", "--lab", name, check=False)


UNHEALTHY = 5  # lab.status's exit code when no manager answers or a node is not ready


def status_json(name: str) -> dict:
    """``lab.status --json``, which may be asked while a node is down: its exit code must then
    be UNHEALTHY, and 0 exactly when a manager answers and every node is ready and running."""
    result = cli("lab.status", "--lab", name, "--json", check=False)
    assert result.returncode in (0, UNHEALTHY), f"lab.status exited {result.returncode}:\n{result.stderr}"
    status = json.loads(result.stdout)
    healthy = status["swarm"] and all(n["state"] == "ready" and n["machine"] == "running" for n in status["nodes"])
    assert (result.returncode == 0) == healthy, f"lab.status exited {result.returncode} for {status}"
    return status


def addresses(name: str) -> dict[str, str]:
    """``{node: address}`` as lab.status reports them."""
    return {n["name"]: n["address"] for n in status_json(name)["nodes"]}


def leader_client(name: str):
    """A docker SDK client of the lab's current leader."""
    leader = next(n for n in status_json(name)["nodes"] if n["leader"])
    return node_client(name, leader["address"])


def swarm_nodes(name: str) -> dict[str, dict]:
    """``{hostname: node attrs}`` as the leader reports them."""
    client = leader_client(name)
    try:
        return {n.attrs["Description"]["Hostname"]: n.attrs for n in client.nodes.list()}
    finally:
        client.close()


@pytest.fixture(scope="session")
def default_lab(engine):
    """The default lab (3 managers, 2 workers, registry) under a test name."""
    name = new_lab_name("main")
    result = cli("lab.up", "--lab", name)
    yield name, result
    cli("lab.down", "--lab", name, check=False)
