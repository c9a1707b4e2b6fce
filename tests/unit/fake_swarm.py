"""A fake Docker engine per node, with just the Swarm of the docker SDK that swarmdeck uses.

Engines share a ``World`` of swarms. It keeps what matters to lab.up's repair and to the
node operations: node IDs that change on every join, entries that stay listed after a node
left (Down, and still a Raft member for a manager until demoted), Raft's majority (without
it a manager reports no cluster ID and refuses writes), labels, and Swarm's refusal to
remove a manager entry that Raft still counts; join tokens that rotate (an old one is
refused); node specs written whole with the version they were read at (a stale version is
refused, as swarmkit does); the swarm's spec, which an update replaces whole (a setting
the update leaves out is reset, as Docker does: ``client.swarm.update`` is the SDK's own
code); the ingress network; tasks that the scheduler moves off a
drained node, one per look; engines that are powered off (every call fails to connect, and
the swarm sees the node down). Demotion and the heartbeat are immediate here.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field

import docker.api.swarm
import docker.errors
import docker.models.swarm
import requests

_ids = itertools.count(1)


def _created(n: int) -> str:
    """A CreatedAt as Docker writes it: RFC 3339 with the nanoseconds' trailing zeros trimmed."""
    return f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}.{'5' if n % 2 else '25'}Z"


def _error(text: str, cls=docker.errors.APIError):
    return cls(text, explanation=text)


@dataclass
class Entry:
    """A node entry in a swarm's node list."""

    id: str
    hostname: str
    address: str  # the address it advertises
    role: str
    created: str
    labels: dict = field(default_factory=dict)
    availability: str = "active"
    version: int = 1  # the spec's version: every write needs the one it read


@dataclass
class Network:
    """A swarm-scoped network, as ``docker.models.networks.Network`` shows it."""

    cluster: "Cluster"
    name: str
    attrs: dict

    def remove(self) -> None:
        self.cluster.networks.remove(self)


# A new swarm's spec, as Docker 20.10 shows it (docker swarm inspect); an update that leaves a
# setting out sets it to zero: the zero spec is what such an update leaves of each section.
NEW_SPEC = {"Orchestration": {"TaskHistoryRetentionLimit": 5},
            "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0, "LogEntriesForSlowFollowers": 500,
                     "ElectionTick": 10, "HeartbeatTick": 1},
            "Dispatcher": {"HeartbeatPeriod": 5_000_000_000}, "CAConfig": {"NodeCertExpiry": 7776000000000000},
            "TaskDefaults": {}}
ZERO_SPEC = {"Orchestration": {"TaskHistoryRetentionLimit": 0},
             "Raft": {"KeepOldSnapshots": 0, "ElectionTick": 0, "HeartbeatTick": 0},
             "Dispatcher": {}, "CAConfig": {}, "TaskDefaults": {}}


@dataclass
class Cluster:
    id: str
    entries: dict[str, Entry] = field(default_factory=dict)
    raft: set[str] = field(default_factory=set)  # node IDs of Raft's members
    spec: dict = field(default_factory=lambda: copy.deepcopy(NEW_SPEC))
    version: int = 1  # the swarm object's version: an update needs the one it read
    tokens: dict[str, str] = field(default_factory=dict)  # role -> its join token now
    networks: list[Network] = field(default_factory=list)
    tasks: list[dict] = field(default_factory=list)  # {"ID", "NodeID", "DesiredState", "Pinned"}

    def __post_init__(self) -> None:
        self.tokens = {"worker": f"{self.id}-worker", "manager": f"{self.id}-manager"}
        self.networks = [Network(self, "ingress", {"Name": "ingress", "Ingress": True, "Options": None})]

    @property
    def heartbeat(self) -> int | None:
        return self.spec["Dispatcher"].get("HeartbeatPeriod")

    def rotate(self, role: str) -> None:
        self.tokens[role] = f"{self.id}-{role}-{next(_ids)}"


class World:
    """Every engine and swarm of a lab."""

    def __init__(self, addresses: dict[str, str], *, newest_first: bool = False):
        self.newest_first = newest_first  # the order of the node list (Docker's follows node IDs: either may come first)
        self.engines = {name: Engine(self, name, address) for name, address in addresses.items()}
        self.clusters: dict[str, Cluster] = {}

    def __getitem__(self, node) -> "Engine":  # a ClientPool: by name or NodePlan
        return self.engines[node if isinstance(node, str) else node.name]

    def live(self, node_id: str) -> "Engine | None":
        return next((e for e in self.engines.values()
                     if e.powered and e.cluster is not None and e.node_id == node_id), None)

    def has_leader(self, cluster: Cluster) -> bool:
        alive = [i for i in cluster.raft if (e := self.live(i)) is not None and e.cluster is cluster]
        return 2 * len(alive) > len(cluster.raft)

    def cluster_of(self, name: str) -> Cluster | None:
        return self.engines[name].cluster

    def entries(self, hostname: str) -> list[Entry]:
        return [e for c in self.clusters.values() for e in c.entries.values() if e.hostname == hostname]

    def answers(self, _plan, node: str) -> bool:
        """orchestrator.nodes.engine_answers: whether the node's engine answers a ping now."""
        return self.engines[node].powered

    def run_tasks(self, node: str, count: int, *, pinned: bool = False) -> None:
        """Give the node ``count`` running tasks (pinned ones cannot run elsewhere)."""
        engine = self.engines[node]
        assert engine.cluster is not None
        engine.cluster.tasks += [{"ID": f"task-{next(_ids)}", "NodeID": engine.node_id, "DesiredState": "running",
                                  "Pinned": pinned} for _ in range(count)]

    def tasks_on(self, node: str) -> int:
        engine = self.engines[node]
        assert engine.cluster is not None
        return len([t for t in engine.cluster.tasks if t["NodeID"] == engine.node_id])


class Engine:
    """What swarmdeck calls on a docker.DockerClient of a node, for Swarm."""

    def __init__(self, world: World, name: str, address: str):
        self.world, self.name, self.address = world, name, address
        self.cluster: Cluster | None = None
        self.node_id = ""
        self.powered = True  # False: powered off (lab.kill), it answers nothing
        self.swarm = _SwarmAPI(self)
        self.api = _LowLevelAPI(self)
        self.nodes = _Nodes(self)
        self.networks = _Networks(self)

    @property
    def manager(self) -> bool:
        return self.cluster is not None and self.node_id in self.cluster.raft

    def answer(self) -> None:
        """Every call of a powered-off engine fails as the SDK's does: no connection."""
        if not self.powered:
            raise requests.exceptions.ConnectionError(f"{self.address}:2376: connection refused")

    def info(self) -> dict:
        self.answer()
        if self.cluster is None:
            return {"Swarm": {"LocalNodeState": "inactive", "NodeID": "", "ControlAvailable": False,
                              "RemoteManagers": None, "Cluster": None}}
        cluster = self.cluster
        led = self.world.has_leader(cluster)
        return {"Swarm": {
            "LocalNodeState": "active", "NodeID": self.node_id, "ControlAvailable": self.manager,
            "RemoteManagers": [{"NodeID": i, "Addr": f"{cluster.entries[i].address}:2377"} for i in sorted(cluster.raft)],
            "Cluster": {"ID": cluster.id} if self.manager and led else {"ID": ""},
            "Error": "" if led else "The swarm does not have a leader.",
        }}

    def require_leader(self) -> Cluster:
        self.answer()
        if not self.manager:
            raise _error("This node is not a swarm manager.", docker.errors.APIError)
        assert self.cluster is not None
        if not self.world.has_leader(self.cluster):
            raise _error("rpc error: code = Unknown desc = The swarm does not have a leader.")
        return self.cluster

    def enter(self, cluster: Cluster, role: str, address: str) -> Entry:
        self.cluster, self.node_id = cluster, f"{self.name}-{next(_ids)}"
        entry = Entry(self.node_id, self.name, address, role, _created(next(_ids)))
        cluster.entries[entry.id] = entry
        if role == "manager":
            cluster.raft.add(entry.id)
        return entry

    def close(self) -> None:
        pass


class _SwarmAPI:
    """``client.swarm``: its ``update`` is the SDK's own (docker.models.swarm.Swarm.update),
    which sends a spec made of its arguments alone."""

    update = docker.models.swarm.Swarm.update

    def __init__(self, engine: Engine):
        self.engine = self.client = engine
        self.attrs: dict = {}
        self.calls: list[tuple[str, dict]] = []  # (method, its arguments) of every init, join and update

    def init(self, advertise_addr: str, listen_addr: str, dispatcher_heartbeat_period: int | None = None,
             force_new_cluster: bool = False) -> str:
        engine = self.engine
        engine.answer()
        self.calls.append(("init", {"advertise_addr": advertise_addr, "listen_addr": listen_addr,
                                    "dispatcher_heartbeat_period": dispatcher_heartbeat_period}))
        if engine.cluster is not None and not force_new_cluster:
            raise _error("This node is already part of a swarm.", docker.errors.APIError)
        if force_new_cluster:
            assert engine.cluster is not None and engine.manager
            engine.cluster.raft = {engine.node_id}
            return engine.node_id
        if advertise_addr.split(":")[0] != engine.address:
            raise _error(f"must specify a listening address because the address to advertise is not recognized "
                         f"as a system address, and a system's IP address to use could not be uniquely identified "
                         f"({advertise_addr})")
        cluster = Cluster(f"cluster-{next(_ids)}")
        if dispatcher_heartbeat_period:
            cluster.spec["Dispatcher"]["HeartbeatPeriod"] = dispatcher_heartbeat_period
        engine.world.clusters[cluster.id] = cluster
        engine.enter(cluster, "manager", advertise_addr)
        return engine.node_id

    def join(self, remote_addrs: list[str], join_token: str, advertise_addr: str, listen_addr: str) -> bool:
        engine = self.engine
        engine.answer()
        self.calls.append(("join", {"remote_addrs": list(remote_addrs), "join_token": join_token,
                                    "advertise_addr": advertise_addr, "listen_addr": listen_addr}))
        if engine.cluster is not None:
            raise _error("This node is already part of a swarm.")
        hosts = {a.split(":")[0] for a in remote_addrs}
        target = next((e for e in engine.world.engines.values() if e.address in hosts and e.powered and e.manager
                       and engine.world.has_leader(e.cluster)), None)
        if target is None:
            raise _error(f"could not join {remote_addrs}: no manager with a leader there")
        cluster = target.cluster
        assert cluster is not None
        role = next((r for r, token in cluster.tokens.items() if token == join_token), None)
        if role is None:
            raise _error("rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster")
        engine.enter(cluster, role, advertise_addr)
        return True

    def leave(self, force: bool = False) -> bool:
        engine = self.engine
        engine.answer()
        if engine.cluster is None:
            raise _error("This node is not part of a swarm.", docker.errors.APIError)
        if engine.manager and not force:
            raise _error("You are attempting to leave the swarm on a node that is participating as a manager.")
        engine.cluster, engine.node_id = None, ""  # its entry stays listed (down); a manager stays in Raft
        return True

    def reload(self) -> None:
        cluster = self.engine.require_leader()
        self.attrs = {"ID": cluster.id, "Version": {"Index": cluster.version},
                      "JoinTokens": {"Worker": cluster.tokens["worker"], "Manager": cluster.tokens["manager"]},
                      "Spec": copy.deepcopy(cluster.spec)}

    @property
    def version(self) -> int | None:
        return (self.attrs.get("Version") or {}).get("Index")


class _LowLevelAPI:
    _version = "1.41"  # for the SDK's create_swarm_spec
    create_swarm_spec = docker.api.swarm.SwarmApiMixin.create_swarm_spec

    def __init__(self, engine: Engine):
        self.engine = engine

    def update_swarm(self, version: int, swarm_spec: dict | None = None, rotate_worker_token: bool = False,
                     rotate_manager_token: bool = False, rotate_manager_unlock_key: bool = False) -> bool:
        """POST /swarm/update: the spec replaced whole (what it leaves out is reset), written
        with the version it was read at."""
        cluster = self.engine.require_leader()
        self.engine.swarm.calls.append(("update", {"version": version, "swarm_spec": copy.deepcopy(swarm_spec),
                                                   "rotate_worker_token": rotate_worker_token,
                                                   "rotate_manager_token": rotate_manager_token}))
        if version != cluster.version:
            raise _error(f"rpc error: code = Unknown desc = update out of sequence (the swarm is at version "
                         f"{cluster.version}, the update was for {version})")
        given = swarm_spec or {}
        cluster.spec = {section: {**ZERO_SPEC.get(section, {}), **(given.get(section) or {})}
                        for section in {*ZERO_SPEC, *given}}
        for role, rotate in (("worker", rotate_worker_token), ("manager", rotate_manager_token)):
            if rotate:
                cluster.rotate(role)
        cluster.version += 1
        return True

    def leave_swarm(self, force: bool = False) -> bool:
        return self.engine.swarm.leave(force=force)

    def tasks(self, filters: dict | None = None) -> list[dict]:
        """The swarm's tasks; each look lets the scheduler move one task off a drained node."""
        cluster = self.engine.require_leader()
        _schedule(self.engine.world, cluster)
        filters = filters or {}
        return [dict(t) for t in cluster.tasks
                if t["NodeID"] == filters.get("node", t["NodeID"])
                and t["DesiredState"] == filters.get("desired-state", t["DesiredState"])]


def _schedule(world: World, cluster: Cluster) -> None:
    """Move one unpinned task of a drained node to the active live node that runs fewest."""
    active = [e for e in cluster.entries.values() if e.availability == "active" and world.live(e.id) is not None]
    drained = {e.id for e in cluster.entries.values() if e.availability == "drain"}
    movable = next((t for t in cluster.tasks if t["NodeID"] in drained and not t["Pinned"]), None)
    if movable is not None and active:
        movable["NodeID"] = min(active, key=lambda e: sum(t["NodeID"] == e.id for t in cluster.tasks)).id


class _Node:
    """A node as the SDK's ``nodes.get`` returns it: its spec's version as read then."""

    def __init__(self, engine: Engine, entry: Entry):
        self.engine, self.entry, self.id = engine, entry, entry.id
        self.version = entry.version

    @property
    def attrs(self) -> dict:
        entry, world = self.entry, self.engine.world
        cluster = self.engine.require_leader()
        live = world.live(entry.id)
        attrs = {"ID": entry.id, "CreatedAt": entry.created, "Version": {"Index": entry.version},
                 "Description": {"Hostname": entry.hostname},
                 "Spec": {"Role": entry.role, "Availability": entry.availability, "Labels": dict(entry.labels)},
                 "Status": {"State": "ready" if live is not None else "down", "Addr": entry.address}}
        if entry.id in cluster.raft:
            leader = min((i for i in cluster.raft if world.live(i) is not None), default="")
            attrs["ManagerStatus"] = {"Reachability": "reachable" if live is not None else "unreachable",
                                      "Addr": f"{entry.address}:2377", **({"Leader": True} if leader == entry.id else {})}
        return attrs

    def update(self, spec: dict) -> bool:
        """Write the whole spec, with the version this node was read at (the SDK's Node.update)."""
        cluster = self.engine.require_leader()
        entry = self.entry
        if self.version != entry.version:
            raise _error(f"rpc error: code = Unknown desc = update out of sequence (node {entry.id} is at version "
                         f"{entry.version}, the update was for {self.version})")
        entry.labels, entry.availability = dict(spec.get("Labels") or {}), spec.get("Availability", "active")
        if spec.get("Role") == "worker" and entry.role == "manager":
            cluster.raft.discard(entry.id)
            if not self.engine.world.has_leader(cluster):
                cluster.raft.add(entry.id)
                raise _error("rpc error: can't remove member: would lose quorum")
        elif spec.get("Role") == "manager" and entry.role == "worker":
            cluster.raft.add(entry.id)
        entry.role = spec.get("Role", entry.role)
        entry.version += 1
        return True

    def remove(self, force: bool = False) -> bool:
        cluster = self.engine.require_leader()
        if self.entry.id in cluster.raft:
            raise _error(f"rpc error: code = FailedPrecondition desc = node {self.id} is a cluster manager and is a "
                         "member of the raft cluster. It must be demoted to worker before removal")
        live = self.engine.world.live(self.id)
        if live is not None and not force:
            raise _error(f"node {self.id} is not down and can't be removed")
        if live is not None:
            live.cluster, live.node_id = None, ""
        del cluster.entries[self.id]
        return True


class _Nodes:
    def __init__(self, engine: Engine):
        self.engine = engine

    def list(self) -> list[_Node]:
        cluster = self.engine.require_leader()
        listed = [_Node(self.engine, e) for e in cluster.entries.values()]
        return listed[::-1] if self.engine.world.newest_first else listed

    def get(self, node_id: str) -> _Node:
        cluster = self.engine.require_leader()
        if node_id not in cluster.entries:
            raise _error(f"node {node_id} not found", docker.errors.NotFound)
        return _Node(self.engine, cluster.entries[node_id])


class _Networks:
    """The swarm's networks as a manager lists them: a new swarm has its ingress network,
    with Swarm's default MTU (no MTU option), which fits a 1500-byte lab network."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def list(self, filters=None) -> list[Network]:
        cluster = self.engine.require_leader()
        wanted = (filters or {}).get("name")
        return [n for n in cluster.networks if wanted is None or wanted in n.name]

    def create(self, name: str, driver: str = "bridge", ingress: bool = False, options: dict | None = None) -> Network:
        cluster = self.engine.require_leader()
        if ingress and any(n.attrs.get("Ingress") for n in cluster.networks):
            raise _error("rpc error: code = AlreadyExists desc = ingress network already present")
        network = Network(cluster, name, {"Name": name, "Driver": driver, "Ingress": ingress, "Options": options})
        cluster.networks.append(network)
        return network
