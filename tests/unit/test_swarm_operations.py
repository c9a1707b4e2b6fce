"""orchestrator/swarm.py, orchestrator/nodes.py and the parts of orchestrator/bootstrap.py that
tests/unit/test_repair.py does not cover, against fake engines (tests/unit/fake_swarm.py):
what each call does to the swarm, what it leaves alone, and what it refuses, with which words."""

from __future__ import annotations

import copy
import dataclasses

import docker.errors
import pytest

from orchestrator import bootstrap, nodes, swarm
from orchestrator.session import LabSession
from orchestrator.views import swarm_nodes
from provision.errors import LabError, SwarmError, WaitTimeout
from provision.plan import LabPlan, plan
from provision.progress import RecordingReporter
from provision.spec import load as spec_load
from provision.spec.model import SwarmSpec
from tests.unit.fake_swarm import World

SPEC = SwarmSpec()  # Swarm's own heartbeat: 5 s
TUNED = SwarmSpec(dispatcher_heartbeat=0.5)


def lab_plan(managers: int = 3, workers: int = 2, mtu: int = 1500, **overrides) -> LabPlan:
    """A lab whose waits are short (a twentieth of a container lab's): the fake swarm answers at
    once, so a wait that runs out is a broken promise, and should say so quickly."""
    spec = spec_load.load_spec(None, {}, {"name": "ops", "managers": managers, "workers": workers, **overrides})
    return dataclasses.replace(plan(spec, "10.199.5.0/24", mtu), pace=0.05)


def world_of(lab: LabPlan) -> World:
    return World({n.name: n.address for n in lab.nodes})


@pytest.fixture()
def formed(monkeypatch):
    """A formed lab (bootstrap.bootstrap) and a session on manager1; the nodes' engines
    answer a ping exactly while they are powered (nodes.engine_answers)."""

    def form(managers: int = 3, workers: int = 2, **overrides) -> tuple[LabSession, World]:
        lab = lab_plan(managers, workers, **overrides)
        world = world_of(lab)
        bootstrap.bootstrap(lab, world, RecordingReporter())
        monkeypatch.setattr(nodes, "engine_answers", world.answers)
        return LabSession(None, lab, world, world["manager1"]), world

    return form


def entry(world: World, name: str):
    """The node's live entry in its swarm."""
    engine = world[name]
    assert engine.cluster is not None, f"{name} is in no swarm"
    return engine.cluster.entries[engine.node_id]


def leader(world: World, client) -> str:
    return next(n.hostname for n in swarm_nodes(client) if n.leader)


# -- swarm.init -------------------------------------------------------------------------------


def test_init_makes_a_swarm_advertising_the_address_with_the_specs_heartbeat():
    world = World({"manager1": "10.199.5.10"})
    assert swarm.init(world["manager1"], "10.199.5.10", TUNED) is True
    assert world["manager1"].swarm.calls == [("init", {"advertise_addr": "10.199.5.10", "listen_addr": "10.199.5.10:2377",
                                                       "dispatcher_heartbeat_period": 500_000_000})]
    assert swarm.local_state(world["manager1"]) == "active"
    assert entry(world, "manager1").address == "10.199.5.10" and world.cluster_of("manager1").heartbeat == 500_000_000


def test_init_of_a_node_that_holds_its_swarm_already_changes_nothing():
    world = World({"manager1": "10.199.5.10"})
    swarm.init(world["manager1"], "10.199.5.10", TUNED)
    cluster, calls = world.cluster_of("manager1"), list(world["manager1"].swarm.calls)
    assert swarm.init(world["manager1"], "10.199.5.10", TUNED) is False
    assert world["manager1"].swarm.calls == calls  # neither a second init nor an update
    assert world.cluster_of("manager1") is cluster and len(world.clusters) == 1


def test_init_of_an_active_swarm_applies_a_changed_heartbeat_once():
    world = World({"manager1": "10.199.5.10"})
    swarm.init(world["manager1"], "10.199.5.10", SPEC)
    assert swarm.init(world["manager1"], "10.199.5.10", TUNED) is True
    assert world.cluster_of("manager1").heartbeat == 500_000_000
    assert swarm.ensure_tuning(world["manager1"], TUNED) is False
    assert [call for call, _ in world["manager1"].swarm.calls] == ["init", "update"]


def test_a_changed_heartbeat_leaves_the_swarms_other_settings_as_they_were():
    world = World({"manager1": "10.199.5.10"})
    swarm.init(world["manager1"], "10.199.5.10", SPEC)
    cluster = world.cluster_of("manager1")
    others = {section: value for section, value in copy.deepcopy(cluster.spec).items() if section != "Dispatcher"}
    assert swarm.ensure_tuning(world["manager1"], TUNED) is True
    assert cluster.spec == {**others, "Dispatcher": {"HeartbeatPeriod": 500_000_000}}


def test_a_failed_init_is_a_swarm_error_naming_the_address_and_swarms_reason():
    world = World({"manager1": "10.199.5.10"})
    with pytest.raises(SwarmError, match=r"swarm init on 10\.199\.5\.99 failed: .*not recognized as a system address"):
        swarm.init(world["manager1"], "10.199.5.99", SPEC)
    assert swarm.local_state(world["manager1"]) == "inactive"


# -- swarm.join, tokens ---------------------------------------------------------------------


def one_manager() -> World:
    world = World({"manager1": "10.199.5.10", "manager2": "10.199.5.11", "worker1": "10.199.5.12"})
    swarm.init(world["manager1"], "10.199.5.10", SPEC)
    return world


def test_join_adds_the_node_in_the_role_of_its_token():
    world = one_manager()
    tokens, members = swarm.tokens(world["manager1"]), swarm.member_ids(world["manager1"])
    assert swarm.join(world["worker1"], "worker1", "10.199.5.12", ["10.199.5.10"], tokens.worker, members) is True
    assert swarm.join(world["manager2"], "manager2", "10.199.5.11", ["10.199.5.10"], tokens.manager, members) is True
    assert world["worker1"].swarm.calls == [("join", {"remote_addrs": ["10.199.5.10:2377"], "join_token": tokens.worker,
                                                      "advertise_addr": "10.199.5.12", "listen_addr": "10.199.5.12:2377"})]
    assert (entry(world, "worker1").role, entry(world, "manager2").role) == ("worker", "manager")
    assert world["manager2"].manager and not world["worker1"].manager


def test_join_of_a_member_is_false_and_asks_the_swarm_nothing():
    world = one_manager()
    tokens = swarm.tokens(world["manager1"])
    swarm.join(world["worker1"], "worker1", "10.199.5.12", ["10.199.5.10"], tokens.worker, set())
    node_id = world["worker1"].node_id
    members = swarm.member_ids(world["manager1"])
    assert swarm.join(world["worker1"], "worker1", "10.199.5.12", ["10.199.5.10"], tokens.worker, members) is False
    assert len(world["worker1"].swarm.calls) == 1 and world["worker1"].node_id == node_id


def test_join_of_a_node_of_another_swarm_is_refused_with_the_way_out():
    world = one_manager()
    world["worker1"].swarm.init("10.199.5.12", "10.199.5.12:2377")  # `docker swarm init` on the worker
    tokens, members = swarm.tokens(world["manager1"]), swarm.member_ids(world["manager1"])
    with pytest.raises(SwarmError, match="worker1 is already part of another swarm") as refused:
        swarm.join(world["worker1"], "worker1", "10.199.5.12", ["10.199.5.10"], tokens.worker, members)
    assert "lab.up" in refused.value.hint and "docker swarm leave --force` on worker1" in refused.value.hint
    assert world.cluster_of("worker1") is not world.cluster_of("manager1")


def test_a_refused_join_names_the_managers_and_swarms_reason():
    world = one_manager()
    with pytest.raises(SwarmError, match=r"worker1 could not join the swarm at 10\.199\.5\.10: .*valid join token") as refused:
        swarm.join(world["worker1"], "worker1", "10.199.5.12", ["10.199.5.10"], "not-a-token", set())
    assert "2377/tcp" in refused.value.hint
    assert swarm.local_state(world["worker1"]) == "inactive"


def test_tokens_are_the_swarms_and_their_repr_shows_neither():
    world = one_manager()
    tokens = swarm.tokens(world["manager1"])
    cluster = world.cluster_of("manager1")
    assert (tokens.worker, tokens.manager) == (cluster.tokens["worker"], cluster.tokens["manager"])
    assert (tokens.for_role("worker"), tokens.for_role("manager")) == (tokens.worker, tokens.manager)
    assert repr(tokens) == "JoinTokens(<redacted>)" and tokens.worker not in f"{tokens!r} {tokens}"


def test_rotate_tokens_replaces_both_and_the_old_ones_join_no_more():
    world = one_manager()
    old = swarm.tokens(world["manager1"])
    swarm.rotate_tokens(world["manager1"])
    new = swarm.tokens(world["manager1"])
    assert new.worker != old.worker and new.manager != old.manager
    with pytest.raises(SwarmError, match="valid join token"):
        swarm.join(world["worker1"], "worker1", "10.199.5.12", ["10.199.5.10"], old.worker, set())
    assert swarm.join(world["worker1"], "worker1", "10.199.5.12", ["10.199.5.10"], new.worker, set()) is True


def test_rotate_tokens_leaves_the_swarms_settings_as_they_were():
    world = World({"manager1": "10.199.5.10"})
    swarm.init(world["manager1"], "10.199.5.10", TUNED)
    cluster = world.cluster_of("manager1")
    before = copy.deepcopy(cluster.spec)
    swarm.rotate_tokens(world["manager1"])
    assert cluster.spec == before  # the heartbeat, Raft's ticks, the task history limit
    assert swarm.ensure_tuning(world["manager1"], TUNED) is False  # so lab.up finds nothing to change


def test_leave_is_false_for_a_node_in_no_swarm_and_works_on_a_manager_without_a_leader(formed):
    lab, world = formed(managers=2, workers=1)
    assert swarm.leave(world["worker1"]) is True and world["worker1"].cluster is None
    assert swarm.leave(world["worker1"]) is False
    world["manager1"].swarm.leave(force=True)  # manager2 is left alone: 1 of 2, no leader
    assert swarm.leave(world["manager2"]) is True and world["manager2"].cluster is None


# -- read-modify-write of a node's spec -----------------------------------------------------


def test_update_node_writes_the_whole_spec_back_once(formed):
    lab, world = formed()
    node = entry(world, "worker1")
    node.availability, node.labels = "drain", {"disk": "ssd"}
    version = node.version
    assert swarm.update_node(lab.manager, node.id, lambda spec: spec["Labels"].update(zone="a")) is True
    assert (node.role, node.availability, node.labels) == ("worker", "drain", {"disk": "ssd", "zone": "a"})
    assert node.version == version + 1  # one write


def test_update_node_writes_nothing_when_nothing_changes(formed):
    lab, world = formed()
    node = entry(world, "worker1")
    version = node.version
    assert swarm.update_node(lab.manager, node.id, lambda spec: spec.update(Role="worker")) is False
    assert swarm.update_node(lab.manager, node.id, lambda spec: spec["Labels"].pop("absent", None)) is False
    assert node.version == version


def test_update_node_writes_with_the_version_it_read_so_a_change_meanwhile_is_not_overwritten(formed):
    lab, world = formed()
    node = entry(world, "worker1")

    def change_with_a_writer_in_between(spec: dict) -> None:
        swarm.ensure_labels(lab.manager, node.id, {"set": "meanwhile"})  # another client writes first
        spec.update(Availability="drain")

    with pytest.raises(docker.errors.APIError, match="update out of sequence"):
        swarm.update_node(lab.manager, node.id, change_with_a_writer_in_between)
    assert (node.labels, node.availability) == ({"set": "meanwhile"}, "active")


def test_ensure_labels_sets_those_given_and_keeps_the_others(formed):
    lab, world = formed()
    node = entry(world, "worker1")
    node.labels = {"disk": "ssd"}
    assert swarm.ensure_labels(lab.manager, node.id, {"zone": "a"}) is True
    assert swarm.ensure_labels(lab.manager, node.id, {"zone": "a"}) is False
    assert swarm.ensure_labels(lab.manager, node.id, {"disk": "hdd"}) is True
    assert node.labels == {"disk": "hdd", "zone": "a"}


def test_add_missing_labels_never_replaces_a_value(formed):
    lab, world = formed()
    node = entry(world, "worker1")
    node.labels = {"disk": "ssd"}
    assert swarm.add_missing_labels(lab.manager, node.id, {"disk": "hdd", "zone": "a"}) is True
    assert node.labels == {"disk": "ssd", "zone": "a"}
    assert swarm.add_missing_labels(lab.manager, node.id, {"disk": "hdd"}) is False


# -- the ingress network ----------------------------------------------------------------------


def ingress(world: World, name: str = "manager1"):
    found = [n for n in world.cluster_of(name).networks if n.attrs.get("Ingress")]
    assert len(found) == 1, found
    return found[0]


def test_the_default_ingress_is_kept_where_it_fits_the_lab_network(formed):
    lab, world = formed()
    before = ingress(world)
    assert swarm.ensure_ingress_mtu(lab.manager, 1500) is False
    assert ingress(world) is before and not before.attrs["Options"]


def test_the_ingress_is_made_again_with_an_mtu_that_fits_a_smaller_lab_network(formed):
    lab, world = formed()
    before = ingress(world)
    assert swarm.ensure_ingress_mtu(lab.manager, 1400) is True
    after = ingress(world)
    assert after is not before and after.attrs["Driver"] == "overlay"
    assert after.attrs["Options"] == {swarm.MTU_OPTION: "1350"}
    assert swarm.ensure_ingress_mtu(lab.manager, 1400) is False and ingress(world) is after


def test_bootstrap_fits_the_ingress_to_the_lab_mtu_and_a_rerun_keeps_it():
    lab = lab_plan(1, 1, mtu=1400)
    world = world_of(lab)
    reporter = RecordingReporter()
    bootstrap.bootstrap(lab, world, reporter)
    assert "ingress overlay MTU fits the lab network (1350 or less)" in reporter.kinds("changed")
    assert ingress(world).attrs["Options"] == {swarm.MTU_OPTION: "1350"}
    again = RecordingReporter()
    bootstrap.bootstrap(lab, world, again)
    assert "ingress overlay MTU fits the lab network (1350 or less)" in again.kinds("ok")


# -- the rest of bootstrap --------------------------------------------------------------------


def test_bootstrap_labels_the_nodes_as_the_spec_says_once():
    nodes_spec = [{"name": "manager1", "role": "manager"}, {"name": "worker1", "labels": {"disk": "ssd"}}]
    lab = lab_plan(nodes=nodes_spec)
    world = world_of(lab)
    reporter = RecordingReporter()
    bootstrap.bootstrap(lab, world, reporter)
    assert entry(world, "worker1").labels == {"disk": "ssd"} and entry(world, "manager1").labels == {}
    assert "labels on worker1: {'disk': 'ssd'}" in reporter.kinds("changed")
    again = RecordingReporter()
    bootstrap.bootstrap(lab, world, again)
    assert "labels on worker1: {'disk': 'ssd'}" in again.kinds("ok") and not again.kinds("changed")


def test_wait_ready_names_the_node_that_is_not_ready(formed, monkeypatch):
    lab, world = formed()
    monkeypatch.setattr(bootstrap, "READY_TIMEOUT", 0.3)
    world["worker2"].powered = False  # the swarm sees it down
    ctx = bootstrap.BootstrapContext(lab.plan, world, RecordingReporter(), keeper="manager1")
    with pytest.raises(WaitTimeout, match=r"every node to be Ready .*last seen: worker2=down"):
        bootstrap.wait_ready(ctx)


# -- nodes: roles ---------------------------------------------------------------------------


def test_promote_makes_a_worker_a_reachable_manager_once(formed):
    lab, world = formed()
    assert nodes.promote(lab, "worker1") is True
    assert entry(world, "worker1").role == "manager" and world["worker1"].manager
    assert nodes.find(lab.manager, "worker1").reachability == "reachable"
    assert nodes.promote(lab, "worker1") is False


def test_demote_makes_a_manager_a_worker_and_leaves_a_worker_alone(formed):
    lab, world = formed()
    assert nodes.demote(lab, "manager3") is True
    assert entry(world, "manager3").role == "worker" and not world["manager3"].manager
    assert len(world.cluster_of("manager1").raft) == 2
    assert nodes.demote(lab, "worker1") is False


def test_demote_refuses_the_last_manager(formed):
    lab, world = formed(managers=1, workers=1)
    with pytest.raises(SwarmError, match="manager1 is the last manager: demoting it would leave nobody") as refused:
        nodes.demote(lab, "manager1")
    assert "swarm.promote" in refused.value.hint
    assert entry(world, "manager1").role == "manager"


def test_demote_refuses_while_fewer_than_a_majority_of_managers_answer(formed, monkeypatch):
    lab, world = formed()
    # Swarm still calls manager2 and manager3 reachable, but their engines no longer answer:
    # a demotion now would wait in the leader's log instead of being refused
    monkeypatch.setattr(nodes, "engine_answers", lambda plan, node: node == "manager1")
    with pytest.raises(SwarmError) as refused:
        nodes.demote(lab, "manager1")
    assert str(refused.value) == ("only 1 of 3 managers are reachable: Raft needs a majority (2) to agree on a smaller "
                                  "membership, so manager1 cannot be demoted now")
    assert "lab.start" in refused.value.hint and "demo.quorum" in refused.value.hint
    assert entry(world, "manager1").role == "manager" and len(world.cluster_of("manager1").raft) == 3


def test_demoting_the_leader_hands_the_session_to_a_manager_that_sees_the_new_leader(formed):
    lab, world = formed()
    assert leader(world, lab.manager) == "manager1"
    assert nodes.demote(lab, "manager1") is True
    assert lab.manager is not world["manager1"] and lab.manager.manager
    assert leader(world, lab.manager) in ("manager2", "manager3")
    assert entry(world, "manager1").role == "worker"


def test_demoting_the_manager_the_session_talks_to_hands_it_over_too(formed):
    lab, world = formed()
    lab.manager = world["manager2"]  # not the leader
    assert nodes.demote(lab, "manager2") is True
    assert lab.manager is not world["manager2"] and lab.manager.manager


# -- nodes: availability and labels ---------------------------------------------------------


def test_set_availability_drains_pauses_and_activates_once(formed):
    lab, world = formed()
    assert nodes.set_availability(lab, "worker1", "drain") is True
    assert nodes.set_availability(lab, "worker1", "drain") is False
    assert nodes.set_availability(lab, "worker2", "pause") is True
    assert nodes.set_availability(lab, "worker1", "active") is True
    assert (entry(world, "worker1").availability, entry(world, "worker2").availability) == ("active", "pause")


def test_an_unknown_availability_is_refused():
    lab = lab_plan(1, 0)
    with pytest.raises(LabError, match="unknown availability 'off': use active, pause, drain"):
        nodes.set_availability(LabSession(None, lab, world_of(lab), None), "manager1", "off")


@pytest.mark.parametrize("availability", ["drain", "pause"])
def test_the_last_active_node_is_neither_drained_nor_paused(formed, availability):
    lab, world = formed(managers=1, workers=1)
    nodes.set_availability(lab, "worker1", "drain")
    with pytest.raises(LabError, match=f"manager1 is the last active node: with it {availability}ed no task") as refused:
        nodes.set_availability(lab, "manager1", availability)
    assert "swarm.activate" in refused.value.hint
    assert entry(world, "manager1").availability == "active"
    nodes.set_availability(lab, "worker1", "active")
    assert nodes.set_availability(lab, "manager1", availability) is True


def test_set_labels_adds_and_removes_once(formed):
    lab, world = formed()
    entry(world, "worker1").labels = {"disk": "ssd", "old": "x"}
    assert nodes.set_labels(lab, "worker1", {"zone": "a"}, ["old", "absent"]) is True
    assert entry(world, "worker1").labels == {"disk": "ssd", "zone": "a"}
    assert nodes.set_labels(lab, "worker1", {"zone": "a"}, ["old"]) is False


def test_an_unknown_node_is_named_with_the_swarms_nodes(formed):
    lab, _world = formed(managers=1, workers=1)
    with pytest.raises(LabError, match=r"the swarm has no node 'worker7' \(its nodes: manager1, worker1\)"):
        nodes.set_labels(lab, "worker7", {"zone": "a"}, [])


# -- nodes: leave and join ------------------------------------------------------------------


def test_a_worker_leaves_and_is_off_the_node_list(formed):
    lab, world = formed()
    assert nodes.leave(lab, "worker1") is True
    assert world["worker1"].cluster is None and world.entries("worker1") == []
    assert "worker1" not in {n.hostname for n in swarm_nodes(lab.manager)}


def test_a_manager_is_demoted_before_it_leaves(formed):
    lab, world = formed()
    cluster = world.cluster_of("manager1")
    assert nodes.leave(lab, "manager3") is True
    assert world.entries("manager3") == [] and len(cluster.raft) == 2 and world.has_leader(cluster)


def test_a_powered_off_node_is_forgotten_by_the_managers(formed):
    lab, world = formed()
    world["worker2"].powered = False  # it cannot leave by itself
    assert nodes.leave(lab, "worker2") is True
    assert world.entries("worker2") == []


def test_leave_of_a_node_in_no_swarm_changes_nothing(formed):
    lab, world = formed()
    nodes.leave(lab, "worker1")
    assert nodes.leave(lab, "worker1") is False


def test_a_node_that_left_joins_again_in_the_role_asked(formed):
    lab, world = formed()
    nodes.leave(lab, "worker1")
    assert nodes.join(lab, "worker1", "manager") is True
    assert entry(world, "worker1").role == "manager" and world["worker1"].manager
    assert nodes.find(lab.manager, "worker1").reachability == "reachable"
    assert world["worker1"].swarm.calls[-1][1]["remote_addrs"] == [f"{lab.plan.node(leader(world, lab.manager)).address}:2377"]
    assert nodes.join(lab, "worker1", "manager") is False


def test_join_refuses_an_unknown_role(formed):
    lab, world = formed()
    with pytest.raises(LabError, match="unknown role 'boss': use manager or worker"):
        nodes.join(lab, "worker1", "boss")


# -- nodes: drain and wait ------------------------------------------------------------------


def test_drain_and_wait_returns_once_every_task_runs_elsewhere(formed):
    lab, world = formed()
    world.run_tasks("worker1", 3)
    assert nodes.drain_and_wait(lab, "worker1") == 3
    assert world.tasks_on("worker1") == 0
    assert sum(world.tasks_on(n) for n in ("manager1", "manager2", "manager3", "worker2")) == 3
    assert entry(world, "worker1").availability == "drain"


def test_drain_and_wait_names_the_node_whose_tasks_do_not_move(formed):
    lab, world = formed()
    world.run_tasks("worker1", 2, pinned=True)  # a constraint keeps them there
    with pytest.raises(WaitTimeout, match="waiting for the tasks of worker1 to move to other nodes"):
        nodes.drain_and_wait(lab, "worker1", timeout=10)
    assert world.tasks_on("worker1") == 2
