"""lab.up's swarm repair on fake engines: which swarm is kept, who leaves and joins, which
stale entries go, and that lab.status, nodes.find and nodes.leave see the live entry."""

from __future__ import annotations

import pytest

from orchestrator import bootstrap, nodes, repair, swarm
from orchestrator.session import LabSession
from orchestrator.tables import status_table
from orchestrator.views import (
    SwarmNode,
    entries_by_hostname,
    lab_status,
    live_entries,
    swarm_nodes,
)
from provision.errors import SwarmError
from provision.plan import Machine, plan
from provision.progress import RecordingReporter
from provision.spec import load as spec_load
from provision.wait import NotYet
from tests.unit.fake_swarm import World


def lab_plan(managers=3, workers=1, **overrides):
    spec = spec_load.load_spec(None, {}, {"name": "fix", "managers": managers, "workers": workers, **overrides})
    return plan(spec, "10.199.3.0/24", 1500)


def formed(managers=3, workers=1, newest_first=False, **overrides):
    lab = lab_plan(managers, workers, **overrides)
    world = World({n.name: n.address for n in lab.nodes}, newest_first=newest_first)
    up(lab, world)
    return lab, world


def up(lab, world) -> RecordingReporter:
    reporter = RecordingReporter()
    bootstrap.bootstrap(lab, world, reporter)
    return reporter


def ids(world) -> dict[str, str]:
    return {name: engine.node_id for name, engine in world.engines.items()}


def one_swarm(world):
    """The lab's engines are all in one swarm, whose node list has exactly one entry per node."""
    cluster = next(iter(world.engines.values())).cluster
    assert cluster is not None and all(e.cluster is cluster for e in world.engines.values())
    assert sorted(e.hostname for e in cluster.entries.values()) == sorted(world.engines)
    assert {e.id for e in cluster.entries.values()} == set(ids(world).values())
    return cluster


def test_a_new_lab_inits_on_the_first_manager_and_a_rerun_changes_nothing():
    lab, world = formed()
    cluster = one_swarm(world)
    assert cluster.raft == {ids(world)[m] for m in ("manager1", "manager2", "manager3")}
    before = ids(world)
    again = up(lab, world)
    assert ids(world) == before and not again.kinds("changed") and not again.kinds("warn")
    assert "the swarm of manager1, manager2, manager3 (3 of 3 managers) kept" in again.kinds("ok")


def test_the_tutorial_teardown_rejoins_manager1_to_the_swarm_its_peers_kept():
    lab, world = formed(nodes=None)
    cluster = world.cluster_of("manager2")
    swarm.ensure_labels(world["manager2"], ids(world)["worker1"], {"zone": "b"})
    before = ids(world)
    world["manager1"].swarm.leave(force=True)  # the tutorial's `docker swarm leave --force`
    reporter = up(lab, world)
    assert one_swarm(world) is cluster  # no second swarm
    after = ids(world)
    assert {k: after[k] for k in ("manager2", "manager3", "worker1")} == {k: before[k] for k in ("manager2", "manager3", "worker1")}
    assert after["manager1"] != before["manager1"] and after["manager1"] in cluster.raft
    assert len(cluster.raft) == 3  # the stale manager1 was demoted out of Raft, then removed
    assert cluster.entries[after["worker1"]].labels == {"zone": "b"}
    assert "manager1 joined as manager" in reporter.kinds("changed")
    assert any("stale entry of manager1 removed" in line for line in reporter.kinds("changed"))
    assert not any("swarm init" in line for line in reporter.kinds("changed"))


def test_a_worker_that_left_rejoins_with_its_old_labels_and_the_specs():
    lab, world = formed(nodes=[{"name": "manager1", "role": "manager"},
                               {"name": "worker1", "labels": {"disk": "ssd"}}])
    cluster = world.cluster_of("manager1")
    old = ids(world)["worker1"]
    swarm.ensure_labels(world["manager1"], old, {"zone": "b", "disk": "hdd"})  # swarm.label; the spec says ssd
    world["worker1"].swarm.leave()
    up(lab, world)
    one_swarm(world)
    new = ids(world)["worker1"]
    assert new != old and old not in cluster.entries
    assert cluster.entries[new].labels == {"zone": "b", "disk": "ssd"}


def test_when_every_manager_left_a_new_swarm_starts_on_manager1_and_everyone_joins_it():
    lab, world = formed()
    old = world.cluster_of("worker1")
    for name in ("manager1", "manager2", "manager3"):
        world[name].swarm.leave(force=True)
    reporter = up(lab, world)
    cluster = one_swarm(world)
    assert cluster is not old and cluster.entries[ids(world)["manager1"]].role == "manager"
    assert "swarm init on manager1 (10.199.3.10)" in reporter.kinds("changed")
    assert "worker1 left a swarm that is not the lab's" in reporter.kinds("changed")


def test_a_worker_that_made_a_swarm_of_its_own_leaves_it_and_rejoins():
    lab, world = formed()
    cluster = world.cluster_of("manager1")
    world["worker1"].swarm.leave()
    world["worker1"].swarm.init("10.199.3.13", "10.199.3.13:2377")  # someone ran `docker swarm init` on it
    reporter = up(lab, world)
    assert one_swarm(world) is cluster
    assert "worker1 left a swarm that is not the lab's" in reporter.kinds("changed")
    assert "worker1 joined as worker" in reporter.kinds("changed")


def test_a_manager_in_a_split_off_swarm_leaves_it_for_the_majoritys():
    lab, world = formed()
    cluster = world.cluster_of("manager2")
    world["manager1"].swarm.leave(force=True)
    world["manager1"].swarm.init("10.199.3.10", "10.199.3.10:2377")  # what lab.up used to do
    up(lab, world)
    assert one_swarm(world) is cluster and len(cluster.raft) == 3


def test_a_lost_quorum_is_reported_with_the_way_out_and_nothing_is_changed():
    lab, world = formed(managers=2, workers=1)
    world["manager1"].swarm.leave(force=True)  # manager2 alone: 1 of 2, no leader
    before = ids(world)
    with pytest.raises(SwarmError) as refused:
        up(lab, world)
    text = refused.value.user_message()
    assert "lost its quorum" in text and "manager2 still holds it" in text and "1 of its 2 managers" in text
    assert "docker swarm init --force-new-cluster --advertise-addr 10.199.3.11" in text and "lab.down" in text
    assert ids(world) == before and len(world.clusters) == 1  # no second swarm, nobody left
    # the way out the hint gives: force a new cluster on the survivor, then lab.up again
    world["manager2"].swarm.init("10.199.3.11", "10.199.3.11:2377", force_new_cluster=True)
    reporter = up(lab, world)
    cluster = one_swarm(world)
    assert cluster.raft == {ids(world)["manager1"], ids(world)["manager2"]}
    assert ids(world)["worker1"] == before["worker1"]
    assert any("no swarm holds a majority of the lab's 2 managers" in line for line in reporter.kinds("warn"))


def view(name, state="active", node_id=None, cluster="", manager=False, raft=()):
    return repair.NodeView(name, "10.0.0.1", state, node_id or (name if state != "inactive" else ""), cluster,
                           manager, frozenset(raft))


def test_no_majority_keeps_the_swarm_with_the_most_managers_and_says_what_it_found():
    found = repair.Survey("fix", (
        view("manager1", cluster="A", manager=True, raft={"manager1"}),
        view("manager2", cluster="B", manager=True, raft={"manager2", "manager3"}),
        view("manager3", cluster="B", manager=True, raft={"manager2", "manager3"}),
        view("manager4", cluster="C", manager=True, raft={"manager4"}),
        view("manager5", state="inactive"),
        view("worker1"),
    ), ("manager1", "manager2", "manager3", "manager4", "manager5"),
        {"A": frozenset({"manager1"}), "B": frozenset({"manager2", "manager3", "worker1"}), "C": frozenset({"manager4"})})
    decided = repair.decide(found)
    assert decided.cluster_id == "B" and decided.keeper == "manager2" and not decided.majority
    assert decided.leave == ("manager1", "manager4") and decided.join == ("manager1", "manager4", "manager5")
    assert "no swarm holds a majority of the lab's 5 managers: keeping the swarm of manager2, manager3 (2 of 5" in decided.found
    assert "manager1 hold swarm A" in decided.found and "manager5 is in no swarm" in decided.found


def test_a_demoted_manager_still_counts_for_its_swarm():
    found = repair.Survey("fix", (
        view("manager1", cluster="A", manager=True, raft={"manager1"}),
        view("manager2"),  # a worker of A since swarm.demote
        view("manager3", cluster="B", manager=True, raft={"manager3"}),
    ), ("manager1", "manager2", "manager3"), {"A": frozenset({"manager1", "manager2"}), "B": frozenset({"manager3"})})
    decided = repair.decide(found)
    assert decided.cluster_id == "A" and decided.majority and decided.leave == ("manager3",)


def test_managers_electing_a_leader_are_waited_for():
    electing = repair.Survey("fix", (
        view("manager1", manager=True, raft={"manager1", "manager2", "manager3"}),
        view("manager2", manager=True, raft={"manager1", "manager2", "manager3"}),
        view("manager3", state="inactive"),
    ), ("manager1", "manager2", "manager3"), {})
    with pytest.raises(NotYet, match="electing a leader"):
        repair.decide(electing)


def test_stale_entries_are_those_with_a_lab_hostname_and_an_old_id():
    lab, world = formed()
    world["manager1"].swarm.leave(force=True)
    world["manager1"].swarm.join(["10.199.3.11:2377"], world.cluster_of("manager2").id + "-manager",
                                 "10.199.3.10", "10.199.3.10:2377")
    entries = swarm_nodes(world["manager2"])
    live = repair.live_node_ids(lab, world)
    stale = repair.stale_entries(entries, live)
    assert [(e.hostname, e.role) for e in stale] == [("manager1", "manager")] and stale[0].id != live["manager1"]


def session(lab, world, manager="manager1") -> LabSession:
    return LabSession(None, lab, world, world[manager])


def rejoined(name="worker1", newest_first=False):
    """A lab where ``name`` left and joined again by hand, so the swarm lists it twice."""
    lab, world = formed(newest_first=newest_first)
    cluster = world.cluster_of("manager1")
    world[name].swarm.leave(force=True)
    token = f"{cluster.id}-{'manager' if name.startswith('manager') else 'worker'}"
    world[name].swarm.join(["10.199.3.10:2377"], token, world[name].address, f"{world[name].address}:2377")
    return lab, world


@pytest.mark.parametrize("newest_first", [False, True])
def test_status_and_find_see_the_live_entry_and_count_the_stale_one(newest_first):
    lab, world = rejoined("manager2", newest_first)
    machines = [Machine("fix", n.name, n.role, n.index, n.address, "running", "docker") for n in lab.nodes]
    result = lab_status(lab, machines, world)
    status = {n.name: n for n in result.nodes}
    assert status["manager2"].state == "ready" and status["manager2"].stale == 1
    assert "manager2: the swarm also lists 1 stale entry of it" in status_table(result)
    assert all(status[n].stale == 0 for n in ("manager1", "manager3", "worker1"))
    assert nodes.find(world["manager1"], "manager2").id == ids(world)["manager2"]


@pytest.mark.parametrize("newest_first", [False, True])
def test_leave_removes_the_live_entry_and_every_stale_one(newest_first):
    lab, world = rejoined("worker1", newest_first)
    assert len(world.entries("worker1")) == 2
    assert nodes.leave(session(lab, world), "worker1")
    assert world.entries("worker1") == [] and world["worker1"].cluster is None


@pytest.mark.parametrize("newest_first", [False, True])
def test_availability_and_labels_change_the_live_entry(newest_first):
    lab, world = rejoined("worker1", newest_first)
    nodes.set_labels(session(lab, world), "worker1", {"zone": "a"}, [])
    nodes.set_availability(session(lab, world), "worker1", "drain")
    live = world.cluster_of("manager1").entries[ids(world)["worker1"]]
    assert live.labels == {"zone": "a"} and live.availability == "drain"


def test_the_newest_entry_is_the_live_one_though_go_trims_trailing_zeros():
    def entry(node_id, created):
        return SwarmNode(node_id, "worker1", "worker", "down", "active", False, "", "", {}, created)

    older, newer = entry("old", "2026-12-01T23:21:52.69Z"), entry("new", "2026-12-01T23:21:52.6938953Z")
    assert entries_by_hostname([older, newer])["worker1"] == [newer, older]
    assert live_entries([newer, older])["worker1"] is newer
