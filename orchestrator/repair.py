"""Which swarm a lab's engines hold, and how lab.up makes them one swarm again.

The Swarm tutorials end with ``docker swarm leave --force`` on some nodes; someone runs
``docker swarm init`` on a worker; managers lose their quorum. Then the lab's engines
hold one swarm, several, or none. ``lab.up`` keeps the swarm that a majority of the
lab's managers belong to and rejoins the other nodes to it: a ``swarm init`` beside a
living swarm would split the lab in two. Only when no manager holds a swarm is a new
one started (on the first manager).

What ``docker info`` tells: a manager reports its swarm's cluster ID (Swarm.Cluster.ID)
while the swarm has a leader, and its Raft members (RemoteManagers); a worker reports
only its node ID, which the node list of the swarm it belongs to holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from orchestrator import swarm
from orchestrator.views import SwarmNode, created_order
from provision import hints
from provision.errors import SwarmError
from provision.plan import LabPlan
from provision.wait import NotYet


@dataclass(frozen=True)
class NodeView:
    """One lab engine's swarm, as its ``docker info`` shows it."""

    name: str
    address: str
    state: str  # LocalNodeState: inactive | pending | active | error | locked
    node_id: str = ""
    cluster_id: str = ""  # only a manager of a swarm that has a leader reports one
    manager: bool = False  # the engine runs a swarm manager (ControlAvailable)
    raft: frozenset[str] = frozenset()  # a manager's Raft members (node IDs), itself included

    @classmethod
    def from_info(cls, name: str, address: str, info: dict) -> "NodeView":
        found = info.get("Swarm") or {}
        node_id, manager = found.get("NodeID") or "", bool(found.get("ControlAvailable"))
        raft = {m["NodeID"] for m in found.get("RemoteManagers") or [] if m.get("NodeID")} if manager else set()
        return cls(name, address, found.get("LocalNodeState") or "inactive", node_id,
                   (found.get("Cluster") or {}).get("ID") or "", manager,
                   frozenset(raft | ({node_id} if manager and node_id else set())))

    @property
    def in_a_swarm(self) -> bool:
        return self.state != "inactive"


@dataclass(frozen=True)
class Survey:
    """What every engine of a lab holds, and the node IDs each swarm (that has a leader) lists."""

    lab: str
    views: tuple[NodeView, ...]  # in the plan's order
    managers: tuple[str, ...]  # the lab's managers (the spec's), in the plan's order
    members: Mapping[str, frozenset[str]]  # cluster ID -> node IDs in its node list

    def view(self, name: str) -> NodeView:
        return next(v for v in self.views if v.name == name)


@dataclass(frozen=True)
class Repair:
    """What lab.up does to have one swarm: keep ``cluster_id`` (or init a new swarm on
    ``keeper`` when it is empty), make ``leave`` leave the swarm they are in, join ``join``."""

    cluster_id: str
    keeper: str  # a manager of the kept swarm, or the first manager, which inits the new one
    holders: tuple[str, ...]  # the lab's managers in the kept swarm
    managing: tuple[str, ...]  # the lab's nodes that manage it (where joins go)
    leave: tuple[str, ...]
    join: tuple[str, ...]
    majority: bool  # the kept swarm holds a majority of the lab's managers
    found: str  # what was found, in a sentence

    def __bool__(self) -> bool:  # a decision, for wait_until
        return True


def survey(plan: LabPlan, clients) -> Survey:
    """Ask every engine of ``plan`` which swarm it is in; list the node IDs of each swarm that has a leader."""
    views = tuple(NodeView.from_info(n.name, n.address, clients[n].info()) for n in plan.nodes)
    members: dict[str, frozenset[str]] = {}
    for view in views:
        if view.cluster_id and view.cluster_id not in members:
            members[view.cluster_id] = frozenset(swarm.member_ids(clients[view.name]))
    return Survey(plan.name, views, tuple(n.name for n in plan.nodes if n.is_manager), members)


def decide(found: Survey) -> Repair:
    """Which swarm lab.up keeps, and who leaves and joins.

    The swarm that a majority of the lab's managers belong to (as managers, or as workers
    after a ``swarm.demote``); failing a majority, the swarm with a leader that holds the
    most of them. A swarm whose managers are electing a leader is waited for; one that
    cannot elect one (fewer than a majority of its Raft members answer) is never replaced
    by a new swarm beside it.

    Raises:
        NotYet: managers holding a swarm are electing a leader (ask again in a moment).
        SwarmError: the lab's swarm has lost its quorum and no other manager holds a swarm.
    """
    held = _held_by_managers(found)
    total = len(found.managers)
    chosen = next((c for c, names in held.items() if 2 * len(names) > total), "")
    if not chosen:
        electing = _electing(found)
        if electing:
            raise NotYet(f"{', '.join(electing)} hold a swarm whose managers are electing a leader")
        chosen = max(held, key=lambda c: len(held[c]), default="")  # ties: the first manager's in plan order
    if not chosen:
        _refuse_a_leaderless_swarm(found)
        first = found.managers[0]
        leave = tuple(v.name for v in found.views if v.in_a_swarm)
        return Repair("", first, (), (), leave, tuple(v.name for v in found.views if v.name != first), False,
                      f"no manager holds a swarm: a new swarm starts on {first}")
    members = found.members[chosen]
    holders = tuple(held[chosen])
    managing = tuple(v.name for v in found.views if v.cluster_id == chosen)
    outside = [v for v in found.views if not (v.in_a_swarm and v.node_id in members)]
    majority = 2 * len(holders) > total
    return Repair(chosen, managing[0], holders, managing, tuple(v.name for v in outside if v.in_a_swarm),
                  tuple(v.name for v in outside), majority, _describe(found, held, chosen, majority))


def _held_by_managers(found: Survey) -> dict[str, list[str]]:
    """``{cluster ID: the lab's managers in it}`` for every swarm with a leader that holds one,
    in the order of the first manager in each."""
    held: dict[str, list[str]] = {}
    for name in found.managers:
        view = found.view(name)
        for cluster, members in found.members.items():
            if view.in_a_swarm and view.node_id in members:
                held.setdefault(cluster, []).append(name)
    return held


def _electing(found: Survey) -> list[str]:
    """Managers without a leader whose Raft still has a majority answering: a leader is coming."""
    answering = {v.node_id for v in found.views if v.state == "active" and v.node_id}
    return [v.name for v in found.views if v.manager and not v.cluster_id and v.state == "active"
            and 2 * len(v.raft & answering) > len(v.raft)]


def _refuse_a_leaderless_swarm(found: Survey) -> None:
    """No swarm with a leader holds a lab manager: if a manager holds a leaderless one, stop."""
    stuck = [v for v in found.views if v.manager and not v.cluster_id and v.in_a_swarm]
    if not stuck:
        return
    answering = {v.node_id: v.name for v in found.views if v.state == "active" and v.node_id}
    survivor = stuck[0]
    alive = sorted(answering[i] for i in survivor.raft if i in answering)
    raft = len(survivor.raft)
    init = f"docker swarm init --force-new-cluster --advertise-addr {survivor.address} >/dev/null"  # it prints a token
    raise SwarmError(
        f"the lab's swarm has lost its quorum: {', '.join(v.name for v in stuck)} still hold{'s' if len(stuck) == 1 else ''} "
        f"it, but only {len(alive)} of its {raft} managers answer ({', '.join(alive)}) and Raft needs {raft // 2 + 1} "
        f"to elect a leader; lab.up does not start a second swarm beside it",
        hint=f"rebuild the swarm from {survivor.name}, keeping its services: "
             f"{hints.command('lab.ssh', survivor.name, '--command', repr(init), lab=found.lab)}, then "
             f"{hints.command('lab.up', lab=found.lab)} joins the other nodes to it (demo.quorum shows this recovery); "
             f"or start afresh: {hints.command('lab.down', lab=found.lab)} then {hints.command('lab.up', lab=found.lab)}")


def _describe(found: Survey, held: dict[str, list[str]], chosen: str, majority: bool) -> str:
    total = len(found.managers)
    kept = f"the swarm of {', '.join(held[chosen])} ({len(held[chosen])} of {total} managers)"
    if majority:
        return f"{kept} kept"
    others = [f"{', '.join(names)} hold swarm {cluster[:12]} ({len(names)} of {total})"
              for cluster, names in held.items() if cluster != chosen]
    inside = {name for names in held.values() for name in names}
    stuck = [m for m in found.managers if m not in inside and found.view(m).in_a_swarm]
    idle = [m for m in found.managers if m not in inside and not found.view(m).in_a_swarm]
    seen = others + [f"{m} is in a swarm without a leader" for m in stuck]
    seen += [f"{', '.join(idle)} {'is' if len(idle) == 1 else 'are'} in no swarm"] if idle else []
    return (f"no swarm holds a majority of the lab's {total} managers: keeping {kept}, the one with the most"
            + (f" ({'; '.join(seen)})" if seen else ""))


def stale_entries(entries: list[SwarmNode], live_ids: Mapping[str, str]) -> list[SwarmNode]:
    """Entries that carry the hostname of a lab node but not the node ID its engine has now:
    left behind when the node left and joined again. Newest first."""
    stale = [e for e in entries if e.hostname in live_ids and e.id != live_ids[e.hostname]]
    return sorted(stale, key=created_order, reverse=True)


def live_node_ids(plan: LabPlan, clients) -> dict[str, str]:
    """``{node: the node ID its engine has}`` for the lab's nodes that are in a swarm."""
    ids = {n.name: swarm.swarm_info(clients[n]).get("NodeID") or "" for n in plan.nodes}
    return {name: node_id for name, node_id in ids.items() if node_id}

