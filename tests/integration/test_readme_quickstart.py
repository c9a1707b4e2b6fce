"""The README's quick start, read from the README and run as a new user would: its first
command makes the lab, then every command of the block after it runs in ONE bash shell,
`eval "$(swarmdeck lab.env manager1)"` included, so that the README cannot drift from the
product (after that eval, swarmdeck's own tasks must keep working in the same shell).

The lab gets a test name through INVOKE_LAB_NAME (a spec layer every task reads, which
`lab.env -u` does not unset), so the test never touches a user's default lab.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from provision.paths import REPO
from tests.labs import OUTPUTS, lab_resources, new_lab_name

pytestmark = pytest.mark.integration
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def quick_start() -> tuple[list[str], str]:
    """(the two setup commands, the block of commands that follows them)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    setup, then = FENCE.findall(section)[:2]
    commands = [line.split("#", 1)[0].strip() for line in setup.splitlines()]
    return [c for c in commands if c], then


def test_the_quick_start_has_exactly_the_two_setup_commands():
    setup, _ = quick_start()
    assert [c.split()[:2] for c in setup] == [["./bootstrap.sh", "up"], ["./bootstrap.sh", "test"]]
    ci = (REPO / ".ci" / "run").read_text()
    assert "./bootstrap.sh test" in ci  # CI runs the README's test command


def test_the_quick_start_runs_top_to_bottom_in_one_shell(engine, tmp_path):
    setup, block = quick_start()
    lab = new_lab_name("readme")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "SWARMDECK_LAB", "SWARMDECK_NODE"))}
    env["INVOKE_LAB_NAME"] = lab
    script = tmp_path / "quickstart.sh"
    # the first command as bootstrap.sh runs it (everything is installed by now), then the block
    script.write_text(f"set -eo pipefail\nset -x\n{setup[0]}\n{block}")
    try:
        result = subprocess.run(["bash", str(script)], cwd=REPO, env=env, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=1800)
        OUTPUTS.append((["README quick start"], result.stdout + result.stderr))
        assert result.returncode == 0, f"the quick start failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        assert "Traceback (most recent call last)" not in result.stderr, result.stderr[-6000:]
        for hostname in ("manager1", "manager2", "manager3", "worker1", "worker2"):
            assert hostname in result.stdout  # docker node ls through the lab.env shell
    finally:
        subprocess.run([str(REPO / ".venv" / "bin" / "swarmdeck"), "lab.down", "--lab", lab], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=600)
    assert lab_resources(engine, lab) == []
