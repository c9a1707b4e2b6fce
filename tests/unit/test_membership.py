"""lab.add / lab.remove spec changes: address slots, refusals, and what lab.up keeps."""

import dataclasses

import pytest

from orchestrator.membership import check_removable, with_node, without_node
from orchestrator.views import SwarmNode
from provision import inventory
from provision.errors import LabError, NodeNotFound, SpecError, SwarmError
from provision.plan import plan
from provision.spec import load as spec_load
from provision.spec import validation


def load(**overrides):
    return spec_load.load_spec(None, {}, overrides)


def addresses(spec):
    return {n.name: n.address for n in plan(spec, "10.199.3.0/24", 1500).nodes}


def test_an_added_node_takes_the_next_slot_and_nobody_moves():
    spec = load(managers=1, workers=2)
    grown = with_node(spec, "worker3", "worker", {"zone": "b"})
    assert addresses(grown) == {**addresses(spec), "worker3": "10.199.3.13"}
    assert grown.nodes[-1].labels == {"zone": "b"}
    assert with_node(grown, "worker3", "worker", {}) is grown  # a re-run changes nothing


def test_removing_a_node_keeps_the_others_addresses_and_its_slot_is_not_reused():
    spec = load(managers=1, workers=2)
    shrunk = without_node(plan(spec, "10.199.3.0/24", 1500), "worker1")
    assert addresses(shrunk) == {"manager1": "10.199.3.10", "worker2": "10.199.3.12"}
    regrown = with_node(shrunk, "worker1", "worker", {})
    assert addresses(regrown)["worker1"] == "10.199.3.13"
    assert spec_load.from_mapping(spec_load.to_mapping(regrown)) == regrown  # slots survive the state file


def test_add_refuses_another_role_a_bad_name_and_a_full_subnet():
    spec = load(managers=1, workers=1, network={"subnet": "10.199.4.0/28"})
    with pytest.raises(LabError, match="already, as a worker"):
        with_node(spec, "worker1", "manager", {})
    with pytest.raises(SpecError, match="not a valid hostname"):
        with_node(spec, "Bad_Name", "worker", {})
    full = with_node(with_node(with_node(spec, "w2", "worker", {}), "w3", "worker", {}), "w4", "worker", {})
    with pytest.raises(SpecError, match="too small"):
        with_node(full, "w5", "worker", {})


def test_remove_refuses_the_registry_node_and_unknown_names():
    lab = plan(load(managers=2, workers=1), "10.199.3.0/24", 1500)
    with pytest.raises(LabError, match="registry"):
        without_node(lab, "manager1")
    with pytest.raises(NodeNotFound, match=r"no node 'nosuch' in lab 'swarmdeck' \(its nodes: manager1, manager2, worker1\)"):
        without_node(lab, "nosuch")
    no_registry = plan(load(managers=1, workers=1, registry={"enabled": False}), "10.199.3.0/24", 1500)
    with pytest.raises(SpecError, match="at least one manager"):
        without_node(no_registry, "manager1")


def test_duplicate_slots_are_a_spec_problem():
    spec = spec_load.from_mapping({"nodes": [{"name": "m", "role": "manager", "slot": 2}, {"name": "w", "slot": 2}]})
    with pytest.raises(SpecError, match="slot 2 is used by more than one node"):
        validation.validate(spec)


class _Provider:
    """Just what spec_for_up asks a provider: the spec the lab was created with."""

    def __init__(self, created):
        self.created = created

    def stored_spec(self, name):
        return self.created


def test_up_keeps_the_nodes_add_and_remove_gave_an_existing_lab():
    created = load(name="grow", managers=1, workers=2)
    grown = with_node(created, "worker3", "worker", {})
    inventory.record_spec(grown)
    provider = _Provider(created)
    assert inventory.spec_for_up(created, provider).nodes == grown.nodes  # up as it was created: keeps worker3
    assert inventory.spec_for_up(grown, provider).nodes == grown.nodes
    with pytest.raises(SpecError) as refused:
        inventory.spec_for_up(load(name="grow", managers=1, workers=4), provider)
    assert "worker3(worker)" in str(refused.value) and "lab.add" in refused.value.user_message()
    assert inventory.spec_for_up(load(name="fresh"), _Provider(None)) == load(name="fresh")
    changed = dataclasses.replace(created, swarm=dataclasses.replace(created.swarm, dispatcher_heartbeat=1.0))
    assert inventory.spec_for_up(changed, provider).swarm.dispatcher_heartbeat == 1.0


def manager(name, reachability="reachable"):
    return SwarmNode(id=name, hostname=name, role="manager", state="ready", availability="active", leader=False,
                     reachability=reachability, address="", labels={})


def test_a_manager_is_removed_only_while_a_majority_answers():
    pair = [manager("manager1"), manager("manager2")]
    # Swarm still calls manager2 reachable seconds after it died: its silent engine decides
    with pytest.raises(SwarmError, match=r"only 1 of 2 managers are reachable.*manager2 cannot be removed now"):
        check_removable("manager2", pair, lambda name: name != "manager2")
    check_removable("manager2", pair, lambda name: True)
    trio = pair + [manager("manager3", "unreachable")]
    check_removable("manager3", trio, lambda name: name != "manager3")  # 2 of 3 agree
    with pytest.raises(SwarmError, match="only 1 of 3"):
        check_removable("manager3", trio, lambda name: name == "manager1")
    with pytest.raises(SwarmError, match="last manager"):
        check_removable("manager1", [manager("manager1")], lambda name: True)
    check_removable("worker1", [manager("manager1", "unreachable"), manager("manager2")], lambda name: False)
