"""Node operations on a formed swarm: promote, demote, availability, labels, leave, join.

Every change reads the node's spec and writes it back whole (the SDK replaces the
spec), refuses what would break the lab (demoting the last manager, or a manager
while no majority of managers answers; draining the last active node), and reports
whether anything changed.
"""

from __future__ import annotations

from typing import Callable

import docker
import docker.errors
import requests

from orchestrator import swarm
from orchestrator.session import LabSession
from orchestrator.views import SwarmNode, entries_by_hostname, swarm_nodes
from provision import hints
from provision.errors import LabError, SwarmError
from provision.plan import LabPlan
from provision.remote.engine_clients import node_client
from provision.wait import NotYet, wait_until

AVAILABILITIES = ("active", "pause", "drain")


def find(manager: docker.DockerClient, name: str) -> SwarmNode:
    """The live entry of the swarm node whose hostname is ``name`` (the newest: older
    entries with that hostname are stale ones, left when the node rejoined).

    Raises:
        LabError: naming the nodes the swarm has.
    """
    return entries(manager, name)[0]


def entries(manager: docker.DockerClient, name: str) -> list[SwarmNode]:
    """Every entry with hostname ``name``, the live one first.

    Raises:
        LabError: there is none; naming the nodes the swarm has.
    """
    grouped = entries_by_hostname(swarm_nodes(manager))
    if name not in grouped:
        raise LabError(f"the swarm has no node {name!r} (its nodes: {', '.join(sorted(grouped))})")
    return grouped[name]


def promote(lab: LabSession, name: str) -> bool:
    node = find(lab.manager, name)
    changed = swarm.update_node(lab.manager, node.id, lambda spec: spec.update(Role="manager"))
    if changed:
        _wait_for_reachability(lab, name)
    return changed


def demote(lab: LabSession, name: str) -> bool:
    """Demote a manager; the leader may be demoted (Raft elects another first).

    Raises:
        SwarmError: for the last manager, which would leave the swarm without one.
    """
    node = find(lab.manager, name)
    if node.role != "manager":
        return False
    managers = [n for n in swarm_nodes(lab.manager) if n.role == "manager"]
    if len(managers) == 1:
        raise SwarmError(f"{name} is the last manager: demoting it would leave nobody to run the swarm",
                         hint=f"promote another node first: {hints.command('swarm.promote', 'worker1')}")
    check_majority(name, managers, lambda other: engine_answers(lab.plan, other), "demoted")
    speaking_to_it = lab.manager.info()["Swarm"]["NodeID"] == node.id
    swarm.update_node(lab.manager, node.id, lambda spec: spec.update(Role="worker"))
    if speaking_to_it or node.leader:
        lab.manager = wait_until(lambda: _other_leader(lab, node.id), timeout=lab.plan.scaled(60),
                                 describe=f"a new leader after demoting {name}")
    wait_until(lambda: find(lab.manager, name).role == "worker", timeout=lab.plan.scaled(30),
               describe=f"{name} to be a worker")
    return True


def check_majority(node: str, managers: list[SwarmNode], answers: Callable[[str], bool], change: str) -> None:
    """Refuse to change manager ``node``'s membership while Raft has no majority to agree.

    A manager counts as reachable only if Swarm says so *and* its engine ``answers``
    now: Swarm notices a dead manager only seconds later, and a demotion proposed in
    that window is not refused but kept in the leader's log, to take effect when the
    dead manager comes back (which then finds itself demoted).

    Raises:
        SwarmError: with how many managers answer, when fewer than a majority do.
    """
    if node not in {n.hostname for n in managers}:
        return
    reachable = [n for n in managers if n.reachability == "reachable" and answers(n.hostname)]
    if len(reachable) <= len(managers) // 2:
        raise SwarmError(
            f"only {len(reachable)} of {len(managers)} managers are reachable: Raft needs a majority "
            f"({len(managers) // 2 + 1}) to agree on a smaller membership, so {node} cannot be {change} now",
            hint=f"start the managers that are down ({hints.command('lab.start', 'NODE')}), or rebuild the control plane "
                 f"from a survivor (see {hints.command('demo.quorum')})")


def engine_answers(plan: LabPlan, node: str, timeout: int = 3) -> bool:
    """Whether the engine of lab node ``node`` answers a ping within ``timeout`` seconds."""
    target = next((n for n in plan.nodes if n.name == node), None)
    if target is None:
        return False
    client = node_client(plan.name, target.address, timeout=timeout)
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, requests.RequestException):
        return False
    finally:
        client.close()


def set_availability(lab: LabSession, name: str, availability: str) -> bool:
    """active | pause | drain.

    Raises:
        LabError: for an unknown availability, or draining/pausing the last active node.
    """
    if availability not in AVAILABILITIES:
        raise LabError(f"unknown availability {availability!r}: use {', '.join(AVAILABILITIES)}")
    node = find(lab.manager, name)
    if availability != "active" and node.availability == "active":
        others = [n for n in swarm_nodes(lab.manager) if n.availability == "active" and n.id != node.id]
        if not others:
            raise LabError(f"{name} is the last active node: with it {availability}ed no task could run",
                           hint=f"activate another node first: {hints.command('swarm.activate', 'NODE')}")
    return swarm.update_node(lab.manager, node.id, lambda spec: spec.update(Availability=availability))


def set_labels(lab: LabSession, name: str, add: dict[str, str], remove: list[str]) -> bool:
    node = find(lab.manager, name)

    def change(spec: dict) -> None:
        spec["Labels"].update(add)
        for key in remove:
            spec["Labels"].pop(key, None)

    return swarm.update_node(lab.manager, node.id, change)


def leave(lab: LabSession, name: str) -> bool:
    """Make ``name`` leave the swarm and remove it from the node list: its live entry and
    any stale ones that earlier memberships left.

    A manager is demoted first, so Raft shrinks cleanly instead of counting a
    missing member against its majority. A node whose engine does not answer (it is
    down) cannot leave by itself: the managers forget it.
    """
    try:
        node, *stale = entries(lab.manager, name)
    except LabError:
        node, stale = None, []
    if node is not None and node.role == "manager":
        demote(lab, name)
    left = _leave_from_node(lab, name, must_answer=node is None)
    if node is not None:
        if left:
            wait_until(lambda: _state(lab.manager, node.id) == "down", timeout=lab.plan.scaled(60),
                       describe=f"the swarm to see {name} down after it left")
        lab.manager.nodes.get(node.id).remove(force=True)
    for entry in stale:
        swarm.remove_entry(lab.manager, entry.id, timeout=lab.plan.scaled(60))
    return left or node is not None


def _state(manager: docker.DockerClient, node_id: str) -> str:
    return next((n.state for n in swarm_nodes(manager) if n.id == node_id), "absent")


def _leave_from_node(lab: LabSession, name: str, *, must_answer: bool) -> bool:
    """``docker swarm leave --force`` on the node; False when it is in no swarm or down."""
    try:
        return swarm.leave(lab.clients[name])
    except (docker.errors.DockerException, requests.RequestException):
        if must_answer:
            raise
        return False


def drain_and_wait(lab: LabSession, name: str, timeout: float = 90) -> int:
    """Drain ``name`` and wait until it runs no task; returns how many it ran."""
    def tasks_on_node() -> list[dict]:
        node_id = find(lab.manager, name).id
        return [t for t in lab.manager.api.tasks(filters={"node": node_id, "desired-state": "running"})]

    before = len(tasks_on_node())
    set_availability(lab, name, "drain")
    wait_until(lambda: not tasks_on_node(), timeout=lab.plan.scaled(timeout), interval=0.5,
               describe=f"the tasks of {name} to move to other nodes")
    return before


def join(lab: LabSession, name: str, role: str) -> bool:
    """Join ``name`` (a node of the lab) to the swarm as ``role``."""
    if role not in ("manager", "worker"):
        raise LabError(f"unknown role {role!r}: use manager or worker")
    leader = next(n for n in swarm_nodes(lab.manager) if n.leader)
    node = lab.plan.node(name)
    tokens = swarm.tokens(lab.manager)
    changed = swarm.join(lab.clients[name], name, node.address, [leader.address.split(":")[0]],
                         tokens.for_role(role), swarm.member_ids(lab.manager))
    wait_until(lambda: find(lab.manager, name).state == "ready", timeout=lab.plan.scaled(60),
               describe=f"{name} to be ready")
    if role == "manager":
        _wait_for_reachability(lab, name)
    return changed


def _wait_for_reachability(lab: LabSession, name: str) -> None:
    wait_until(lambda: find(lab.manager, name).reachability == "reachable", timeout=lab.plan.scaled(60),
               describe=f"{name} to be a reachable manager")


def _other_leader(lab: LabSession, old_id: str) -> docker.DockerClient:
    """A client of a manager (other than ``old_id``) that sees a leader."""
    for plan_node in lab.plan.nodes:
        client = lab.clients[plan_node]
        try:
            info = client.info()["Swarm"]
            if info.get("NodeID") == old_id or not info.get("ControlAvailable"):
                continue
            if any(n.leader for n in swarm_nodes(client)):
                return client
        except (docker.errors.DockerException, OSError):
            continue
    raise NotYet("no other manager sees a leader yet")
