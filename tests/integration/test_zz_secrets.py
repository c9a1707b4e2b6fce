"""Runs last (file order): no output, log or state file holds a Swarm secret,
except the output of `swarm.tokens`, which prints them on request."""

from __future__ import annotations

import re

import pytest

from provision.providers.docker import names as labels
from tests.integration.conftest import CREATED, OUTPUTS

pytestmark = pytest.mark.integration
SECRET = re.compile(r"SWM(TKN|KEY)-1-[a-z0-9]{20,}")


def test_no_swarm_secret_in_any_output_log_or_state_file(engine, session_home, default_lab):
    assert OUTPUTS, "the integration tests ran no CLI command"
    leaks = [" ".join(argv) for argv, text in OUTPUTS if SECRET.search(text) and "swarm.tokens" not in argv]
    ours = [c for c in engine.containers.list(filters={"label": [f"{labels.KIND}=node"]})
            if c.labels.get(labels.LAB) in CREATED]  # other sessions' labs are theirs (one may be paused)
    for container in ours:
        if SECRET.search(container.logs().decode(errors="replace")):
            leaks.append(f"docker logs {container.name}")
        code, out = container.exec_run(["sh", "-c", "cat /var/log/*.log"])
        if SECRET.search(out.decode(errors="replace")):
            leaks.append(f"/var/log of {container.name}")
    for path in session_home.rglob("*"):
        if path.is_file() and SECRET.search(path.read_text(errors="replace")):
            leaks.append(str(path))
    assert leaks == []
    assert any("swarm.tokens" in argv for argv, _ in OUTPUTS), "swarm.tokens was not exercised"


def test_no_stray_container_is_left_on_the_host_engine(engine):
    """Probes, image builds and the demo images leave no container behind."""
    for kind in ("probe", "demo-image", "node-image", "registry-image"):
        leftovers = engine.containers.list(all=True, filters={"label": f"{labels.KIND}={kind}"})
        assert [c.name for c in leftovers] == [], kind
