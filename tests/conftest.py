"""Fixtures shared by the tiers that build real labs: the Docker engine (its leftovers swept
before, this session's labs after), one SWARMDECK_HOME for the session, the default lab;
the checks that end every session that made labs: no Swarm secret in any output, log or
state file, and no stray container on the host engine (tests/labs.py); and the order and
grouping that let ``./bootstrap.sh test`` run the suite on two pytest-xdist workers.

Why parallel workers on two cores: the suite spends most of its time waiting (VMs booting
under emulation, Swarm electing, engines starting), not computing (a serial run used 7 CPU
minutes in 56), so the VM tier runs on one worker while the other runs the docker tiers (a third worker
would finish the docker tiers sooner but slows the emulated VMs, the critical path). Each
module stays on one worker (its module-scoped lab is made once), the VM tier's modules all
on one (``pytest_xdist_make_scheduler``), scheduled first because it is longest (about 40
minutes on a loaded machine: the critical path).
"""

from __future__ import annotations

import os
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.labs import (
    CREATED,
    OUTPUTS,
    cli,
    new_lab_name,
    scan_is_blind,
    secret_leaks,
    stray_containers,
    sweep,
)

FINDINGS: list[str] = []  # what the end-of-session checks found; it fails the session


@pytest.fixture(scope="session")
def engine():
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as err:
        pytest.fail(f"integration tests need a Docker engine ({err}); ./bootstrap.sh test starts one")
    sweep(client, stale_only=True)
    yield client
    _end_of_session_checks(client)
    sweep(client, stale_only=False)
    client.close()


@pytest.fixture(scope="session")
def session_home(tmp_path_factory):
    """One SWARMDECK_HOME for the whole run, shared by its xdist workers: swarmdeck's
    machine-wide locks (choosing a lab subnet) live there, and labs made at once by two
    workers must see each other's."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        home = tmp_path_factory.getbasetemp().parent / "swarmdeck-home"
        home.mkdir(exist_ok=True)
    else:
        home = tmp_path_factory.mktemp("swarmdeck-home")
    old = os.environ.get("SWARMDECK_HOME")
    os.environ["SWARMDECK_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("SWARMDECK_HOME", None)
    else:
        os.environ["SWARMDECK_HOME"] = old


@pytest.fixture(scope="session")
def default_lab(engine):
    """The default lab (3 managers, 2 workers, registry) under a test name."""
    name = new_lab_name("main")
    result = cli("lab.up", "--lab", name)
    yield name, result
    cli("lab.down", "--lab", name, check=False)


def _end_of_session_checks(client: docker.DockerClient) -> None:
    """Run at the engine's teardown, while this session's labs still exist (before the sweep).
    The stray-container check waits for the end of the whole run (``pytest_sessionfinish``):
    a probe another worker is running is no stray."""
    if not OUTPUTS and not CREATED:
        return  # this session made no lab
    home = Path(os.environ.get("SWARMDECK_HOME") or "/nonexistent")
    FINDINGS.extend(f"a Swarm secret leaked into {leak}" for leak in secret_leaks(client, home))
    if scan_is_blind():
        FINDINGS.append("swarm.tokens printed tokens that the secret scan's pattern does not match")


_MADE_LABS: list[bool] = []  # the run's workers that made labs (the controller's view)


def _stray_container_findings() -> list[str]:
    try:
        client = docker.from_env(timeout=30)
        strays = stray_containers(client)
        client.close()
    except docker.errors.DockerException as err:
        return [f"the stray-container check could not ask the engine: {err}"]
    return [f"a stray container is left on the host engine: {stray}" for stray in strays]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller of an xdist run gathers what each worker's session checks found."""
    output = getattr(node, "workeroutput", {}) or {}
    FINDINGS.extend(output.get("findings", []))
    _MADE_LABS.append(bool(output.get("made_labs")))


def pytest_sessionfinish(session, exitstatus):
    """Findings fail the session, whichever tests ran (no test has to run last). An xdist
    worker hands its findings to the controller, which looks for stray containers once
    every worker is done, and fails the run."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["findings"] = list(FINDINGS)
        workeroutput["made_labs"] = bool(OUTPUTS or CREATED)
        return
    if OUTPUTS or CREATED or any(_MADE_LABS):
        FINDINGS.extend(_stray_container_findings())
    if FINDINGS and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_TIER_ORDER = ("tests/vm/", "tests/integration/", "tests/contract/", "tests/unit/")


def pytest_collection_modifyitems(session, config, items):
    """Longest tier first: the VM tier, then the labs on Docker, then the fast tiers."""
    def tier(item) -> int:
        path = item.nodeid.replace("\\", "/")
        return next((i for i, prefix in enumerate(_TIER_ORDER) if path.startswith(prefix)), len(_TIER_ORDER))
    items.sort(key=tier)  # stable: a module's tests keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` with the VM tier as one scope: each module stays whole on one
    worker (its module-scoped lab is made once) and the VM tier's modules stay together on
    one (they share libvirt's pool, network range and images, and emulated VMs are what
    loads this machine). A scheduler rather than ``xdist_group`` marks, which pytest 9 ignores
    (xdist 3.8 renames tests through an attribute pytest 9 no longer reads)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class TierScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/vm" if module.startswith("tests/vm/") else module

    return TierScheduling(config, log)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for finding in FINDINGS:
        terminalreporter.write_line(f"SESSION CHECK FAILED: {finding}", red=True)
