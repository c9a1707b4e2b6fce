"""lab.up repairs the lab's swarm instead of splitting it: after the tutorials' teardown
(`docker swarm leave --force` on a node's engine), a worker leaving, a hand-made rejoin, a lost
quorum and every manager gone. Checked through each node's engine with the docker SDK."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import docker
import pytest

from provision.remote.engine_clients import node_client
from provision.wait import NotYet, wait_until
from tests.labs import a_lab, addresses, cli, status_json

pytestmark = pytest.mark.integration

SHAPE = ("--managers", "3", "--workers", "1", "--no-registry")
PAIR = ("--managers", "2", "--workers", "0", "--no-registry")


@pytest.fixture(scope="module")
def repair_lab(engine):
    with a_lab("repair", *SHAPE) as name:
        cli("swarm.label", "worker1", "--add", "zone=b", "--lab", name)
        yield name


@pytest.fixture(scope="module")
def pair_lab(engine):
    with a_lab("pair", *PAIR) as name:
        yield name


@contextmanager
def engine_of(lab: str, node: str) -> Iterator[docker.DockerClient]:
    client = node_client(lab, addresses(lab)[node])
    try:
        yield client
    finally:
        client.close()


def info(lab: str, node: str) -> dict:
    with engine_of(lab, node) as client:
        return client.info()["Swarm"]


def entries(lab: str, manager: str) -> list[dict]:
    """The node list as ``manager``'s engine reports it: every entry, stale ones too."""
    with engine_of(lab, manager) as client:
        return [n.attrs for n in client.nodes.list()]


def by_hostname(lab: str, manager: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for entry in entries(lab, manager):
        found.setdefault(entry["Description"]["Hostname"], []).append(entry)
    return found


def assert_one_swarm(lab: str, nodes: list[str], manager: str) -> dict[str, dict]:
    """Every node's engine is in ``manager``'s swarm, which lists each node exactly once, ready,
    and its managers reachable; returns ``{hostname: entry}``."""
    listed = by_hostname(lab, manager)
    assert sorted(listed) == sorted(nodes) and all(len(e) == 1 for e in listed.values()), \
        {h: [(e["ID"][:12], e["Status"]["State"]) for e in es] for h, es in listed.items()}
    cluster = info(lab, manager)["Cluster"]["ID"]
    for node in nodes:
        seen = info(lab, node)
        entry = listed[node][0]
        assert seen["LocalNodeState"] == "active" and seen["NodeID"] == entry["ID"], (node, seen)
        assert entry["Status"]["State"] == "ready"
        if entry["Spec"]["Role"] == "manager":
            assert seen["Cluster"]["ID"] == cluster, f"{node} is a manager of another swarm"
            assert entry["ManagerStatus"]["Reachability"] == "reachable"
    return {h: e[0] for h, e in listed.items()}


def rejoin_by_hand(lab: str, node: str, manager: str, role: str) -> str:
    """What a tutorial does: leave, then join with a token asked from a manager; the new node ID."""
    with engine_of(lab, manager) as boss, engine_of(lab, node) as client:
        token = boss.api.inspect_swarm()["JoinTokens"]["Manager" if role == "manager" else "Worker"]
        client.api.leave_swarm(force=True)
        address = addresses(lab)[node]
        client.api.join_swarm(remote_addrs=[f"{addresses(lab)[manager]}:2377"], join_token=token,
                              advertise_addr=address, listen_addr=f"{address}:2377")
        return client.info()["Swarm"]["NodeID"]


def wait_ready(lab: str, manager: str, node_id: str) -> None:
    def ready():
        state = next((e["Status"]["State"] for e in entries(lab, manager) if e["ID"] == node_id), "absent")
        if state != "ready":
            raise NotYet(state)
        return True

    wait_until(ready, timeout=60, interval=0.5, describe=f"node {node_id[:12]} to be ready")


def test_up_after_the_tutorials_teardown_rejoins_manager1_to_the_swarm_it_left(repair_lab):
    lab = repair_lab
    before = {h: e[0]["ID"] for h, e in by_hostname(lab, "manager2").items()}
    cluster = info(lab, "manager2")["Cluster"]["ID"]
    with engine_of(lab, "manager1") as client:
        client.api.leave_swarm(force=True)  # the tutorial's teardown, on manager1 only
    result = cli("lab.up", "--lab", lab, *SHAPE)
    assert "swarm init" not in result.stderr and "manager1 joined as manager" in result.stderr, result.stderr
    after = assert_one_swarm(lab, ["manager1", "manager2", "manager3", "worker1"], "manager2")
    assert info(lab, "manager2")["Cluster"]["ID"] == cluster  # the same swarm, not a new one
    for node in ("manager2", "manager3", "worker1"):
        assert after[node]["ID"] == before[node], f"{node} got a new node ID"
    assert after["manager1"]["ID"] != before["manager1"] and after["manager1"]["Spec"]["Role"] == "manager"
    assert after["worker1"]["Spec"]["Labels"] == {"zone": "b"}
    assert info(lab, "manager1")["Managers"] == 3  # Raft counts no stale manager1


def test_status_right_after_a_rejoin_shows_the_live_entry_and_up_cleans_the_stale_one(repair_lab):
    lab = repair_lab
    new_id = rejoin_by_hand(lab, "worker1", "manager1", "worker")
    wait_ready(lab, "manager1", new_id)
    assert len(by_hostname(lab, "manager1")["worker1"]) == 2  # the swarm lists it twice now
    status = {n["name"]: n for n in status_json(lab)["nodes"]}
    assert status["worker1"]["state"] == "ready" and status["worker1"]["stale"] == 1, status["worker1"]
    assert all(status[n]["stale"] == 0 for n in ("manager1", "manager2", "manager3"))
    assert "worker1: the swarm also lists 1 stale entry" in cli("lab.status", "--lab", lab).stdout
    result = cli("lab.up", "--lab", lab, *SHAPE)
    assert "stale entry of worker1 removed" in result.stderr, result.stderr
    after = assert_one_swarm(lab, ["manager1", "manager2", "manager3", "worker1"], "manager1")
    assert after["worker1"]["ID"] == new_id  # still in the swarm: left alone
    assert after["worker1"]["Spec"]["Labels"] == {"zone": "b"}  # taken over from the stale entry
    assert {n["stale"] for n in status_json(lab)["nodes"]} == {0}


def test_a_worker_that_left_rejoins_on_up(repair_lab):
    lab = repair_lab
    old = by_hostname(lab, "manager1")["worker1"][0]["ID"]
    with engine_of(lab, "worker1") as client:
        client.api.leave_swarm()
    assert info(lab, "worker1")["LocalNodeState"] == "inactive"
    result = cli("lab.up", "--lab", lab, *SHAPE)
    assert "worker1 joined as worker" in result.stderr, result.stderr
    after = assert_one_swarm(lab, ["manager1", "manager2", "manager3", "worker1"], "manager1")
    assert after["worker1"]["ID"] != old and after["worker1"]["Spec"]["Labels"] == {"zone": "b"}


def test_remove_a_node_that_has_a_stale_entry_leaves_no_entry_of_it(repair_lab):
    lab = repair_lab
    new_id = rejoin_by_hand(lab, "manager3", "manager1", "manager")  # a stale manager entry: still in Raft
    wait_ready(lab, "manager1", new_id)
    assert len(by_hostname(lab, "manager1")["manager3"]) == 2
    cli("lab.remove", "manager3", "--lab", lab)
    listed = by_hostname(lab, "manager1")
    assert "manager3" not in listed, listed.get("manager3")
    assert "manager3" not in addresses(lab)
    assert_one_swarm(lab, ["manager1", "manager2", "worker1"], "manager1")
    assert info(lab, "manager1")["Managers"] == 2


def test_a_lost_quorum_is_reported_with_the_way_out_never_split(pair_lab):
    lab = pair_lab
    survivor_id = info(lab, "manager2")["NodeID"]
    with engine_of(lab, "manager1") as client:
        client.api.leave_swarm(force=True)  # manager2 alone: 1 of 2 managers, no leader
    refused = cli("lab.up", "--lab", lab, *PAIR, check=False)
    assert refused.returncode != 0
    assert "lost its quorum" in refused.stderr and "manager2 still holds it" in refused.stderr, refused.stderr
    assert "--force-new-cluster" in refused.stderr and "lab.down" in refused.stderr
    assert info(lab, "manager1")["LocalNodeState"] == "inactive"  # no second swarm was started
    # the way out the hint names: a new one-manager cluster on the survivor, then lab.up joins the other
    hint = refused.stderr.split("--command '", 1)[1].split("'", 1)[0]
    cli("lab.ssh", "manager2", "--lab", lab, "--command", hint)
    cli("lab.up", "--lab", lab, *PAIR)
    after = assert_one_swarm(lab, ["manager1", "manager2"], "manager2")
    assert after["manager2"]["ID"] == survivor_id and info(lab, "manager2")["Managers"] == 2


def test_when_every_manager_left_up_starts_a_new_swarm_on_manager1(pair_lab):
    lab = pair_lab
    old = info(lab, "manager1")["Cluster"]["ID"]
    for node in ("manager2", "manager1"):
        with engine_of(lab, node) as client:
            client.api.leave_swarm(force=True)
    result = cli("lab.up", "--lab", lab, *PAIR)
    assert "swarm init on manager1" in result.stderr, result.stderr
    assert_one_swarm(lab, ["manager1", "manager2"], "manager1")
    assert info(lab, "manager1")["Cluster"]["ID"] != old
