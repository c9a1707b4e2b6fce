"""docker-machine's env contract: after `eval "$(invoke lab.env manager1)"` the docker CLI
talks to manager1, and in that same shell every swarmdeck task keeps working (the engine
that hosts the lab is never taken from DOCKER_HOST); `lab.env -u` gives the shell back to
this machine's engine. The tasks here name no lab: lab.env's SWARMDECK_LAB chose it."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.integration.test_viz import free_port
from tests.labs import INVOKE, OUTPUTS

pytestmark = pytest.mark.integration


def run_in_one_shell(script: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "SWARMDECK_LAB", "SWARMDECK_NODE"))}
    env["PATH"] = f"{os.path.dirname(INVOKE)}:{env['PATH']}"
    result = subprocess.run(["bash", "-c", "set -eo pipefail\nset -x\n" + script], capture_output=True, text=True,
                            env=env, stdin=subprocess.DEVNULL, timeout=timeout)
    OUTPUTS.append((["env contract shell"], result.stdout + result.stderr))
    assert "Traceback (most recent call last)" not in result.stderr, result.stderr[-6000:]
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def test_every_task_works_in_a_shell_that_lab_env_pointed_at_a_node(default_lab, engine):
    name, _ = default_lab
    host_engine = engine.info()["Name"]
    result = run_in_one_shell(f"""
eval "$(invoke lab.env manager1 --lab {name})"
test "$SWARMDECK_LAB" = {name} && test "$SWARMDECK_NODE" = manager1
echo "docker-info=$(docker info --format '{{{{.Name}}}}')"
docker node ls --format '{{{{.Hostname}}}}' | sort | tr '\\n' ' '; echo
invoke lab.status
invoke lab.status --json > /dev/null
invoke lab.ssh worker1 --command hostname
invoke lab.env manager2 > /dev/null
invoke lab.kill worker2
invoke lab.start worker2
invoke swarm.status
invoke swarm.label worker1 --add zone=env
invoke swarm.drain worker1
invoke swarm.activate worker1
invoke service.create --name envweb swarmdeck/web:1 --replicas 2
invoke service.ls
invoke service.ps envweb
invoke service.scale envweb=3
invoke service.update envweb --image swarmdeck/web:2
invoke service.rollback envweb
invoke service.rm envweb
invoke stack.deploy web envstack
invoke stack.rm envstack
invoke registry.ls
invoke registry.push swarmdeck/web:1
invoke image.demo
invoke viz.up --port {free_port()}
invoke viz.down
invoke demo.scale
invoke swarm.label worker1 --remove zone
eval "$(invoke lab.env -u)"
test -z "${{DOCKER_HOST:-}}" && test -z "${{SWARMDECK_LAB:-}}"
echo "docker-info-after=$(docker info --format '{{{{.Name}}}}')"
""")
    assert "docker-info=manager1" in result.stdout
    assert "manager1 manager2 manager3 worker1 worker2" in result.stdout
    assert "worker1\n" in result.stdout  # lab.ssh ran on worker1
    assert f"docker-info-after={host_engine}" in result.stdout  # the local engine again
