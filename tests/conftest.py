"""Fixtures shared by the tiers that build real labs: the Docker engine (its leftovers swept
before, this session's labs after), one SWARMDECK_HOME for the session, the default lab;
and the checks that end every session that made labs: no Swarm secret in any output, log
or state file, and no stray container on the host engine (tests/labs.py)."""

from __future__ import annotations

import os
from pathlib import Path

import docker
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
    """Run at the engine's teardown, while this session's labs still exist (before the sweep)."""
    if not OUTPUTS and not CREATED:
        return  # this session made no lab
    home = Path(os.environ.get("SWARMDECK_HOME") or "/nonexistent")
    FINDINGS.extend(f"a Swarm secret leaked into {leak}" for leak in secret_leaks(client, home))
    if scan_is_blind():
        FINDINGS.append("swarm.tokens printed tokens that the secret scan's pattern does not match")
    FINDINGS.extend(f"a stray container is left on the host engine: {stray}" for stray in stray_containers(client))


def pytest_sessionfinish(session, exitstatus):
    """Findings fail the session, whichever tests ran (no test has to run last)."""
    if FINDINGS and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for finding in FINDINGS:
        terminalreporter.write_line(f"SESSION CHECK FAILED: {finding}", red=True)
