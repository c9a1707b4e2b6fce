"""Read-only views of a lab: its swarm nodes and a status report."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import docker
import docker.errors
import requests

from orchestrator.clients import ClientPool
from orchestrator.viz import control as viz_control
from provision.lab_services.entry_point import entry_point
from provision.plan import CREATED, MISSING, PAUSED, RUNNING, STOPPED, LabPlan, Machine


@dataclass(frozen=True)
class SwarmNode:
    id: str
    hostname: str
    role: str
    state: str  # ready | down | unknown | disconnected
    availability: str  # active | pause | drain
    leader: bool
    reachability: str  # reachable | unreachable | "" (workers)
    address: str
    labels: dict
    created: str = ""  # CreatedAt: of two entries with one hostname, the newer is the node's live one


def swarm_nodes(manager: docker.DockerClient) -> list[SwarmNode]:
    found = []
    for node in manager.nodes.list():
        attrs = node.attrs
        status, spec = attrs.get("Status") or {}, attrs.get("Spec") or {}
        manager_status = attrs.get("ManagerStatus") or {}
        found.append(SwarmNode(
            id=node.id, hostname=(attrs.get("Description") or {}).get("Hostname", ""), role=spec.get("Role", ""),
            state=status.get("State", "unknown"), availability=spec.get("Availability", ""),
            leader=bool(manager_status.get("Leader")), reachability=manager_status.get("Reachability", ""),
            address=status.get("Addr", ""), labels=dict(spec.get("Labels") or {}), created=attrs.get("CreatedAt", ""),
        ))
    return sorted(found, key=lambda n: n.hostname)


def created_order(node: SwarmNode) -> tuple[str, str]:
    """Sortable CreatedAt: Go trims trailing zeros of the nanoseconds, so plain text does not sort."""
    seconds, _, fraction = node.created.rstrip("Z").partition(".")
    return seconds, fraction.ljust(9, "0")


def entries_by_hostname(nodes: list[SwarmNode]) -> dict[str, list[SwarmNode]]:
    """Every hostname's entries, the newest first.

    A node that left and joined again (``docker swarm leave --force``, then a join) gets
    a new node ID; the swarm keeps listing its old entry, Down, until someone removes it.
    Node IDs are never reused, so the newest entry is the live one (if any is) and the
    older ones are stale.
    """
    grouped: dict[str, list[SwarmNode]] = {}
    for node in sorted(nodes, key=created_order, reverse=True):
        grouped.setdefault(node.hostname, []).append(node)
    return grouped


def live_entries(nodes: list[SwarmNode]) -> dict[str, SwarmNode]:
    """``{hostname: its live entry}`` (see ``entries_by_hostname``)."""
    return {hostname: entries[0] for hostname, entries in entries_by_hostname(nodes).items()}


def reachable_manager(plan: LabPlan, clients: ClientPool, machines: list[Machine]) -> docker.DockerClient | None:
    """A client of the first running manager whose engine answers as a swarm manager."""
    running = {m.name for m in machines if m.state == "running"}
    for node in [n for n in plan.nodes if n.is_manager and n.name in running]:
        try:
            client = clients[node]
            if client.info().get("Swarm", {}).get("ControlAvailable"):
                client.nodes.list()
                return client
        except (docker.errors.DockerException, requests.RequestException):
            continue
    return None


@dataclass(frozen=True)
class NodeStatus:
    name: str
    role: str
    address: str
    state: str  # the swarm's view (ready, down...) or the machine's when the swarm does not know it
    availability: str
    leader: bool
    machine: str  # running | stopped | paused | created | missing
    stale: int = 0  # older swarm entries with this hostname, left when the node rejoined (lab.up removes them)

    @property
    def ready(self) -> bool:
        """Ready in the swarm and its machine running (a node killed seconds ago is still
        "ready" to Swarm, which notices only after missed heartbeats)."""
        return self.state == "ready" and self.machine == RUNNING


# A lab's state as lab.ls and lab.status --json show it.
LAB_RUNNING, LAB_PARTLY_STOPPED, LAB_STOPPED, LAB_BROKEN = "running", "partly stopped", "stopped", "broken"
STARTABLE = (STOPPED, PAUSED, CREATED)  # machine states that `lab.start NODE` brings back


@dataclass(frozen=True)
class LabStatus:
    name: str
    provider: str
    registry: str | None
    entry_point: dict  # {"kind": "routing-mesh" | "load-balancer", "address": "10.199.0.9", "ports": [8080, 8081]}
    swarm: bool  # a manager answered
    nodes: list[NodeStatus]
    visualizer: str | None = None  # the URL of `invoke viz.up`'s page while it runs

    @property
    def state(self) -> str:
        return lab_state(self.swarm, self.nodes)

    @property
    def healthy(self) -> bool:
        """A manager answers and every node is ready: what `lab.status`'s exit code 0 means."""
        return self.swarm and all(n.ready for n in self.nodes)

    def to_json(self) -> dict:
        return {**asdict(self), "state": self.state}


def lab_state(swarm: bool, nodes: list[NodeStatus]) -> str:
    """running: every node ready; stopped: no machine runs; partly stopped: some machine is
    stopped or paused, or a node is not ready; broken: machines are missing, or no manager
    answers although every manager's machine runs (nothing to start: the swarm itself is lost).
    A lab whose only answering manager is stopped is partly stopped: `lab.start` repairs it."""
    machines = [n.machine for n in nodes]
    if not nodes or MISSING in machines:
        return LAB_BROKEN
    if all(m in STARTABLE for m in machines):
        return LAB_STOPPED
    managers_down = any(n.machine in STARTABLE for n in nodes if n.role == "manager")
    if not swarm and not managers_down:
        return LAB_BROKEN
    if all(n.ready for n in nodes) and swarm:
        return LAB_RUNNING
    return LAB_PARTLY_STOPPED


def startable(nodes: list[NodeStatus]) -> list[str]:
    """The nodes whose machine is stopped, paused or never started: `lab.start NODE` helps."""
    return [n.name for n in nodes if n.machine in STARTABLE]


def not_ready(nodes: list[NodeStatus]) -> list[str]:
    """"worker1 (machine stopped)", "worker2 (down)": each node that is not ready, and why
    ("unknown": its machine runs but no manager answered to say how the swarm sees it)."""
    def why(node: NodeStatus) -> str:
        if node.machine != RUNNING:
            return f"machine {node.machine}"
        return "unknown" if node.state == node.machine else node.state

    return [f"{n.name} ({why(n)})" for n in nodes if not n.ready]


def lab_status(plan: LabPlan, machines: list[Machine], clients: ClientPool) -> LabStatus:
    by_name = {m.name: m for m in machines}
    manager = reachable_manager(plan, clients, machines)
    entries = entries_by_hostname(swarm_nodes(manager)) if manager else {}
    nodes = []
    for node in plan.nodes:
        machine = by_name[node.name].state if node.name in by_name else "missing"
        seen, *stale = entries.get(node.name) or [None]
        nodes.append(NodeStatus(
            name=node.name, role=seen.role if seen else node.role, address=node.address,
            state=seen.state if seen else machine, availability=seen.availability if seen else "",
            leader=bool(seen and seen.leader), machine=machine, stale=len(stale),
        ))
    return LabStatus(plan.name, plan.spec.provider, plan.registry, entry_point(plan).to_json(), manager is not None,
                     nodes, viz_control.url(plan.name))
