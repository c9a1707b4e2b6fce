"""Swarm operations on a real lab: nodes, services and stacks, checked through the SDK."""

from __future__ import annotations

import json
import urllib.request

import pytest

from provision.wait import NotYet, wait_until
from tests.labs import a_lab, addresses, cli
from tests.labs import leader_client as manager
from tests.labs import swarm_nodes as nodes

pytestmark = pytest.mark.integration
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def ops_lab(engine):
    with a_lab("ops") as name:
        yield name


@pytest.fixture(scope="module")
def small_lab(engine):
    with a_lab("small", "--managers", "1", "--workers", "1") as name:
        yield name


def running_tasks(name: str, service: str) -> list[tuple[str, str]]:
    """(node hostname, image) of the service's running tasks."""
    client = manager(name)
    try:
        hostnames = {n.id: n.attrs["Description"]["Hostname"] for n in client.nodes.list()}
        return sorted((hostnames[t["NodeID"]], t["Spec"]["ContainerSpec"]["Image"].split("@")[0])
                      for t in client.services.get(service).tasks() if t["Status"]["State"] == "running")
    finally:
        client.close()


def get(url: str) -> str:
    with _direct.open(url, timeout=5) as response:
        return response.read().decode().strip()


def test_promote_then_demote_a_worker(ops_lab):
    cli("swarm.promote", "worker2", "--lab", ops_lab)
    worker2 = nodes(ops_lab)["worker2"]
    assert worker2["Spec"]["Role"] == "manager" and worker2["ManagerStatus"]["Reachability"] == "reachable"
    cli("swarm.demote", "worker2", "--lab", ops_lab)
    assert nodes(ops_lab)["worker2"]["Spec"]["Role"] == "worker"


def test_demoting_the_leader_hands_leadership_over(ops_lab):
    leader = next(h for h, n in nodes(ops_lab).items() if (n.get("ManagerStatus") or {}).get("Leader"))
    cli("swarm.demote", leader, "--lab", ops_lab)
    after = nodes(ops_lab)
    assert after[leader]["Spec"]["Role"] == "worker"
    leaders = [h for h, n in after.items() if (n.get("ManagerStatus") or {}).get("Leader")]
    assert len(leaders) == 1 and leaders[0] != leader
    cli("swarm.promote", leader, "--lab", ops_lab)
    assert nodes(ops_lab)[leader]["ManagerStatus"]["Reachability"] == "reachable"


def test_drain_moves_tasks_away_and_activate_takes_them_again(ops_lab):
    cli("service.create", "--name", "drainme", "swarmdeck/web:1", "--replicas", "8", "--lab", ops_lab)
    try:
        wait_until(lambda: len(running_tasks(ops_lab, "drainme")) == 8, timeout=90, describe="8 running tasks")
        cli("swarm.drain", "worker1", "--lab", ops_lab)
        assert nodes(ops_lab)["worker1"]["Spec"]["Availability"] == "drain"

        def moved():
            tasks = running_tasks(ops_lab, "drainme")
            if len(tasks) != 8 or any(node == "worker1" for node, _ in tasks):
                raise NotYet(str(tasks))
            return True

        wait_until(moved, timeout=90, describe="8 tasks running off worker1")
        status = cli("swarm.status", "--lab", ops_lab, "--json").stdout
        assert json.loads(status)["running_tasks"].get("worker1", 0) == 0
        cli("swarm.activate", "worker1", "--lab", ops_lab)
        assert nodes(ops_lab)["worker1"]["Spec"]["Availability"] == "active"
    finally:
        cli("service.rm", "drainme", "--lab", ops_lab)


def test_labels_and_constraints_place_tasks(ops_lab):
    cli("swarm.label", "worker2", "--add", "mem=max", "--add", "zone=b", "--lab", ops_lab)
    assert nodes(ops_lab)["worker2"]["Spec"]["Labels"] == {"mem": "max", "zone": "b"}
    cli("service.create", "--name", "pinned", "swarmdeck/web:1", "--replicas", "3", "--constraint", "node.labels.mem==max",
        "--lab", ops_lab)
    try:
        wait_until(lambda: len(running_tasks(ops_lab, "pinned")) == 3, timeout=90, describe="3 pinned tasks")
        assert {node for node, _ in running_tasks(ops_lab, "pinned")} == {"worker2"}
    finally:
        cli("service.rm", "pinned", "--lab", ops_lab)
    cli("swarm.label", "worker2", "--remove", "mem", "--lab", ops_lab)
    assert nodes(ops_lab)["worker2"]["Spec"]["Labels"] == {"zone": "b"}


def test_leave_removes_a_node_and_join_brings_it_back(ops_lab):
    cli("swarm.leave", "worker2", "--lab", ops_lab)
    assert "worker2" not in nodes(ops_lab)
    cli("swarm.join", "worker2", "--role", "worker", "--lab", ops_lab)
    assert nodes(ops_lab)["worker2"]["Status"]["State"] == "ready"


def test_service_lifecycle_with_host_ports_update_and_rollback(ops_lab):
    lab = ops_lab
    cli("service.create", "--name", "webg", "swarmdeck/web:1", "--global", "--publish", "8090:80:host",
        "--env", "NODE_NAME={{.Node.Hostname}}", "--update-order", "stop-first", "--lab", lab)
    try:
        wait_until(lambda: len(running_tasks(lab, "webg")) == 5, timeout=90, describe="one task per node")
        for node, address in addresses(lab).items():
            answer = wait_until(lambda: get(f"http://{address}:8090/"), timeout=30, describe=f"{node}:8090")
            assert "version=1" in answer and f"node={node}" in answer
        assert "webg" in cli("service.ls", "--lab", lab).stdout
        cli("service.update", "webg", "--image", "swarmdeck/web:2", "--lab", lab)
        wait_until(lambda: {img.rsplit(":", 1)[1] for _, img in running_tasks(lab, "webg")} == {"2"}
                   and len(running_tasks(lab, "webg")) == 5, timeout=120, describe="every task on version 2")
        assert "version=2" in get(f"http://{addresses(lab)['worker1']}:8090/")
        cli("service.rollback", "webg", "--lab", lab)
        wait_until(lambda: {img.rsplit(":", 1)[1] for _, img in running_tasks(lab, "webg")} == {"1"}
                   and len(running_tasks(lab, "webg")) == 5, timeout=120, describe="every task back on version 1")
        ps = cli("service.ps", "webg", "--lab", lab).stdout
        assert "swarmdeck/web:1" in ps and "running" in ps
        scaled = cli("service.scale", "webg=3", "--lab", lab, check=False)
        assert scaled.returncode == 1 and "global service" in scaled.stderr
    finally:
        cli("service.rm", "webg", "--lab", lab)
    assert "webg" not in cli("service.ls", "--lab", lab).stdout


def test_scale_a_replicated_service(ops_lab):
    cli("service.create", "--name", "scaled", "swarmdeck/web:1", "--replicas", "6", "--lab", ops_lab)
    try:
        for replicas in (9, 3):
            cli("service.scale", f"scaled={replicas}", "--lab", ops_lab)
            wait_until(lambda: len(running_tasks(ops_lab, "scaled")) == replicas, timeout=90,
                       describe=f"{replicas} running tasks")
    finally:
        cli("service.rm", "scaled", "--lab", ops_lab)


def test_stacks_web_and_two_tier(ops_lab):
    lab = ops_lab
    cli("stack.deploy", "web", "demo", "--lab", lab)
    cli("stack.deploy", "counter", "shop", "--lab", lab)
    try:
        worker1 = addresses(lab)["worker1"]
        assert "swarmdeck-web version=1" in wait_until(lambda: get(f"http://{worker1}:8080/"), timeout=90,
                                                        describe="the web stack on worker1:8080")
        first = wait_until(lambda: "count=" in get(f"http://{worker1}:8081/") and get(f"http://{worker1}:8081/"),
                           timeout=90, describe="the two-tier stack on worker1:8081")
        count = int(first.split("count=")[1].split()[0])
        second = get(f"http://{worker1}:8081/")
        assert int(second.split("count=")[1].split()[0]) == count + 1  # the store keeps state
    finally:
        cli("stack.rm", "demo", "--lab", lab)
        cli("stack.rm", "shop", "--lab", lab)
    missing = cli("stack.rm", "nothere", "--lab", lab, check=False)
    assert missing.returncode == 1 and "there is no stack 'nothere'" in missing.stderr


def test_refusals_change_nothing(small_lab):
    lab = small_lab
    demote = cli("swarm.demote", "manager1", "--lab", lab, check=False)
    assert demote.returncode == 1 and "last manager" in demote.stderr
    cli("swarm.drain", "worker1", "--lab", lab)
    drain = cli("swarm.drain", "manager1", "--lab", lab, check=False)
    assert drain.returncode == 1 and "last active node" in drain.stderr
    after = nodes(lab)
    assert after["manager1"]["Spec"]["Role"] == "manager" and after["manager1"]["Spec"]["Availability"] == "active"
    cli("swarm.activate", "worker1", "--lab", lab)
    unknown = cli("swarm.drain", "worker9", "--lab", lab, check=False)
    assert unknown.returncode == 1 and "no node 'worker9'" in unknown.stderr
    service = cli("service.scale", "ghost=3", "--lab", lab, check=False)
    assert service.returncode == 1 and "there is no service 'ghost'" in service.stderr
