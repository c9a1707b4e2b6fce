"""Stale node entries on fake engines: lab.status, nodes.find and nodes.leave see the live entry."""

from __future__ import annotations

import pytest

from orchestrator import bootstrap, nodes
from orchestrator.inspect import SwarmNode, entries_by_hostname, lab_status, live_entries, swarm_nodes
from orchestrator.output import status_table
from orchestrator.session import LabSession
from provision import config
from provision.machine import Machine, plan
from provision.report import RecordingReporter
from tests.unit.fake_swarm import World


def lab_plan(managers=3, workers=1, **overrides):
    spec = config.load_spec(None, {}, {"name": "fix", "managers": managers, "workers": workers, **overrides})
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
