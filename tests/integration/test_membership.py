"""Growing and shrinking a running lab (lab.add, lab.remove) and freezing a node (lab.pause),
checked through the SDK, the nodes' /etc/hosts and the load balancer's configuration."""

from __future__ import annotations

import pytest

from provision.providers.docker import load_balancer
from provision.providers.docker import names as labels
from provision.wait import wait_until
from tests.labs import (
    a_lab,
    addresses,
    cli,
    leader_client,
    status_json,
    swarm_nodes,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def grow_lab(engine):
    with a_lab("grow", "--managers", "1", "--workers", "2") as name:
        yield name


def hosts_file(name: str, node: str) -> str:
    return cli("lab.ssh", node, "--lab", name, "--command", "cat /etc/hosts").stdout


def lb_config(engine, name: str) -> str:
    return engine.containers.get(f"{name}-lb").exec_run(["cat", load_balancer.CONFIG]).output.decode()


def test_add_a_worker_and_a_labelled_manager(grow_lab, engine):
    before = addresses(grow_lab)
    lb_id = engine.containers.get(f"{grow_lab}-lb").id
    cli("lab.add", "worker3", "--lab", grow_lab)
    cli("lab.add", "manager2", "--role", "manager", "--label", "zone=b", "--lab", grow_lab)
    after = addresses(grow_lab)
    assert {k: after[k] for k in before} == before  # nobody moved
    nodes = swarm_nodes(grow_lab)
    assert nodes["worker3"]["Status"]["State"] == "ready" and nodes["worker3"]["Spec"]["Role"] == "worker"
    assert nodes["manager2"]["ManagerStatus"]["Reachability"] == "reachable"
    assert nodes["manager2"]["Spec"]["Labels"] == {"zone": "b"}
    for node in after:
        assert f"{after['worker3']}\tworker3" in hosts_file(grow_lab, node)
    config = lb_config(engine, grow_lab)
    assert f"{after['worker3']}:8080" in config and f"{after['manager2']}:8080" in config
    lb = engine.containers.get(f"{grow_lab}-lb")
    assert lb.id == lb_id and lb.status == "running"  # reloaded in place, not replaced
    # the new node pulls from the lab registry like the others
    cli("service.create", "--name", "pinned", "swarmdeck/web:1", "--replicas", "1", "--constraint", "node.hostname==worker3",
        "--lab", grow_lab)
    client = leader_client(grow_lab)
    try:
        wait_until(lambda: any(t["Status"]["State"] == "running" for t in client.services.get("pinned").tasks()),
                   timeout=60, describe="the pinned task on worker3")
    finally:
        client.close()
    cli("service.rm", "pinned", "--lab", grow_lab)


def test_rerunning_up_keeps_added_nodes_and_refuses_a_different_shape(grow_lab):
    result = cli("lab.up", "--lab", grow_lab, "--managers", "1", "--workers", "2")
    assert "worker3" in result.stdout and "manager2" in result.stdout
    refused = cli("lab.up", "--lab", grow_lab, "--managers", "1", "--workers", "4", check=False)
    assert refused.returncode == 2 and "lab.add" in refused.stderr


def test_add_refusals_change_nothing(grow_lab):
    before = status_json(grow_lab)
    wrong_role = cli("lab.add", "worker3", "--role", "manager", "--lab", grow_lab, check=False)
    assert wrong_role.returncode != 0 and "already, as a worker" in wrong_role.stderr
    bad_name = cli("lab.add", "Bad_Name", "--lab", grow_lab, check=False)
    assert bad_name.returncode == 2 and "not a valid hostname" in bad_name.stderr
    registry = cli("lab.remove", "manager1", "--lab", grow_lab, check=False)
    assert registry.returncode != 0 and "registry" in registry.stderr
    unknown = cli("lab.remove", "nosuch", "--lab", grow_lab, check=False)
    assert unknown.returncode != 0 and "nosuch" in unknown.stderr
    assert status_json(grow_lab) == before


def test_remove_a_worker_that_runs_tasks(grow_lab, engine):
    cli("service.create", "--name", "spread", "swarmdeck/web:1", "--replicas", "4", "--lab", grow_lab)
    before = addresses(grow_lab)
    cli("lab.remove", "worker1", "--lab", grow_lab)
    nodes = swarm_nodes(grow_lab)
    assert "worker1" not in nodes
    assert "worker1" not in addresses(grow_lab)
    assert {k: v for k, v in addresses(grow_lab).items()} == {k: v for k, v in before.items() if k != "worker1"}
    assert not engine.containers.list(all=True, filters={"label": [f"{labels.NODE}=worker1",
                                                                  f"{labels.LAB}={grow_lab}"]})
    assert not [v for v in engine.volumes.list(filters=labels.lab_filter(grow_lab)) if v.name.endswith("worker1")]
    client = leader_client(grow_lab)
    try:
        running = [t for t in client.services.get("spread").tasks() if t["Status"]["State"] == "running"
                   and t["DesiredState"] == "running"]
        assert len(running) == 4
    finally:
        client.close()
    assert "\tworker1" not in hosts_file(grow_lab, "manager1")
    assert f"{before['worker1']}:8080" not in lb_config(engine, grow_lab)
    cli("service.rm", "spread", "--lab", grow_lab)


def test_remove_a_killed_manager_but_not_without_a_majority(grow_lab):
    cli("lab.add", "manager3", "--role", "manager", "--lab", grow_lab)
    cli("lab.kill", "manager3", "--lab", grow_lab)
    cli("lab.remove", "manager3", "--lab", grow_lab)  # 2 of 3 managers agree
    nodes = swarm_nodes(grow_lab)
    assert "manager3" not in nodes and "manager3" not in addresses(grow_lab)
    assert sorted(h for h, n in nodes.items() if n["Spec"]["Role"] == "manager") == ["manager1", "manager2"]
    cli("lab.kill", "manager2", "--lab", grow_lab)  # 1 of 2: no majority, though Swarm has not noticed yet
    refused = cli("lab.remove", "manager2", "--lab", grow_lab, check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr
    assert "only 1 of 2 managers are reachable" in refused.stderr and "cannot be removed now" in refused.stderr
    demote = cli("swarm.demote", "manager2", "--lab", grow_lab, check=False)
    assert demote.returncode != 0 and "cannot be demoted now" in demote.stderr, demote.stderr
    assert "manager2" in addresses(grow_lab)
    cli("lab.start", "manager2", "--lab", grow_lab)
    wait_until(lambda: swarm_nodes(grow_lab)["manager2"]["ManagerStatus"]["Reachability"] == "reachable",
               timeout=90, interval=1, describe="manager2 back as a reachable manager")


def test_pause_freezes_a_node_and_start_resumes_it(grow_lab, engine):
    cli("lab.pause", "worker3", "--lab", grow_lab)
    assert engine.containers.get(f"{grow_lab}-worker3").status == "paused"
    wait_until(lambda: swarm_nodes(grow_lab)["worker3"]["Status"]["State"] == "down", timeout=60, interval=1,
               describe="the swarm to see the frozen worker3 down")
    cli("lab.start", "worker3", "--lab", grow_lab)
    wait_until(lambda: swarm_nodes(grow_lab)["worker3"]["Status"]["State"] == "ready", timeout=60, interval=1,
               describe="worker3 ready again")
