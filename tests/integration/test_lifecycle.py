"""Lab lifecycle: side by side, teardown, rollback, interruption, bad input."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from provision import kernel_features as ipvs
from provision.paths import REPO
from provision.providers.docker import names as labels
from provision.wait import wait_until
from tests.labs import INVOKE, OUTPUTS, cli, lab_resources, new_lab_name

pytestmark = pytest.mark.integration


def test_a_second_lab_runs_beside_the_first_and_goes_away_alone(default_lab, engine):
    first = default_lab[0]
    second = new_lab_name("side")
    cli("lab.up", "--lab", second, "--managers", "1", "--workers", "1", "--no-registry")
    try:
        one = json.loads(cli("lab.status", "--lab", first, "--json").stdout)
        two = json.loads(cli("lab.status", "--lab", second, "--json").stdout)
        assert two["registry"] is None and len(two["nodes"]) == 2
        assert {n["state"] for n in two["nodes"]} == {"ready"}
        assert one["nodes"][0]["address"].rsplit(".", 1)[0] != two["nodes"][0]["address"].rsplit(".", 1)[0]
    finally:
        cli("lab.down", "--lab", second)
    assert lab_resources(engine, second) == []
    assert {n["state"] for n in json.loads(cli("lab.status", "--lab", first, "--json").stdout)["nodes"]} == {"ready"}


def test_down_removes_every_resource_and_is_safe_to_repeat(engine):
    name = new_lab_name("down")
    cli("lab.up", "--lab", name, "--managers", "1", "--workers", "0", "--no-registry")
    load_balancer = [] if ipvs.available() else [f"container {name}-lb"]  # the entry point without a mesh
    assert sorted(lab_resources(engine, name)) == sorted(
        [f"container {name}-manager1", f"network {name}-net", f"volume {name}-manager1-docker", *load_balancer])
    cli("lab.down", "--lab", name)
    assert lab_resources(engine, name) == []
    assert f"no lab named {name} on this machine: nothing to remove" in cli("lab.down", "--lab", name).stdout


def test_a_failed_up_rolls_back_unless_keep(engine):
    name = new_lab_name("fail")
    # Port 2376 is the engine's own TLS port on manager1: the registry cannot publish it.
    failed = cli("lab.up", "--lab", name, "--managers", "1", "--workers", "0", "--spec", str(REPO / "tests" / "data" / "registry-on-2376.yaml"), check=False)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "removing what it created" in failed.stderr
    assert lab_resources(engine, name) == []
    kept = cli("lab.up", "--lab", name, "--managers", "1", "--workers", "0", "--keep",
               "--spec", str(REPO / "tests" / "data" / "registry-on-2376.yaml"), check=False)
    assert kept.returncode != 0
    assert lab_resources(engine, name) != []
    cli("lab.down", "--lab", name)
    assert lab_resources(engine, name) == []


def kill_up_midway(engine, name: str, nodes_seen: int) -> None:
    """Start `lab.up`, SIGKILL it once ``nodes_seen`` node containers exist (no cleanup runs)."""
    proc = subprocess.Popen([INVOKE, "lab.up", "--lab", name], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_until(lambda: len(engine.containers.list(all=True, filters=labels.lab_filter(name, "node"))) >= nodes_seen,
                   timeout=120, interval=0.05, describe=f"{nodes_seen} node containers of {name}")
    finally:
        proc.send_signal(signal.SIGKILL)  # like a closed laptop lid
        OUTPUTS.append(([INVOKE, "lab.up", "(killed)"], proc.communicate()[0]))
    assert lab_resources(engine, name) != []


def test_an_interrupted_up_is_resumed_by_the_next_up(engine):
    name = new_lab_name("int")
    kill_up_midway(engine, name, nodes_seen=2)
    cli("lab.up", "--lab", name)
    status = json.loads(cli("lab.status", "--lab", name, "--json").stdout)
    assert {n["state"] for n in status["nodes"]} == {"ready"} and len(status["nodes"]) == 5
    cli("lab.down", "--lab", name)
    assert lab_resources(engine, name) == []


def test_an_interrupted_up_is_cleaned_by_down(engine):
    name = new_lab_name("int2")
    kill_up_midway(engine, name, nodes_seen=1)
    cli("lab.down", "--lab", name)
    assert lab_resources(engine, name) == []


def test_bad_input_is_a_clean_error_with_every_problem(engine):
    result = cli("lab.up", "--lab", "Bad_Name", "--managers", "0", "--subnet", "10.1.0.0/33", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for fragment in ("3 problem(s)", "lab name 'Bad_Name' is invalid", "at least one manager", "not an IPv4 CIDR"):
        assert fragment in result.stderr
    assert lab_resources(engine, "Bad_Name") == []
    unknown = cli("lab.status", "--lab", "it-nothing-here", check=False)
    assert unknown.returncode == 1 and "there is no lab named 'it-nothing-here'" in unknown.stderr
    node = cli("lab.kill", "worker9", "--lab", "it-nothing-here", check=False)
    assert node.returncode == 1 and "Traceback" not in node.stderr


def test_a_small_lab_mtu_shrinks_the_engines_and_the_ingress_overlay(engine):
    name = new_lab_name("mtu")
    cli("lab.up", "--lab", name, "--spec", str(REPO / "tests" / "data" / "mtu-1400.yaml"))
    try:
        network = engine.networks.list(filters=labels.lab_filter(name, "network"))[0]
        assert network.attrs["Options"]["com.docker.network.driver.mtu"] == "1400"
        fits = cli("lab.ssh", "manager1", "--lab", name, "--command", "ping -c1 -W2 -M do -s 1372 worker1", check=False)
        too_big = cli("lab.ssh", "manager1", "--lab", name, "--command", "ping -c1 -W2 -M do -s 1373 worker1", check=False)
        assert fits.returncode == 0 and too_big.returncode != 0
        daemon = json.loads(cli("lab.ssh", "worker1", "--lab", name, "--command", "cat /etc/docker/daemon.json").stdout)
        assert daemon["mtu"] == 1400
        inspect = cli("lab.ssh", "manager1", "--lab", name, "--command",
                      "docker network inspect ingress --format '{{index .Options \"com.docker.network.driver.mtu\"}}'")
        assert inspect.stdout.strip() == "1350"
        assert " changed " not in cli("lab.up", "--lab", name, "--spec", str(REPO / "tests" / "data" / "mtu-1400.yaml")).stderr
    finally:
        cli("lab.down", "--lab", name)
