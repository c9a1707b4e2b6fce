"""Read-only views of a lab: its swarm nodes and a status report."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import docker
import docker.errors
import requests

from orchestrator.clients import ClientPool
from orchestrator.viz import control as viz_control
from provision.entrypoint import PORTS, entry_point
from provision.machine import LabPlan, Machine


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
            address=status.get("Addr", ""), labels=dict(spec.get("Labels") or {}),
        ))
    return sorted(found, key=lambda n: n.hostname)


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


@dataclass(frozen=True)
class LabStatus:
    name: str
    provider: str
    registry: str | None
    entry_point: str  # e.g. "load balancer at 10.199.0.9 (ports 8080, 8081)"
    swarm: bool  # a manager answered
    nodes: list[NodeStatus]
    visualizer: str | None = None  # the URL of `invoke viz.up`'s page while it runs

    def to_json(self) -> dict:
        return asdict(self)


def lab_status(plan: LabPlan, machines: list[Machine], clients: ClientPool) -> LabStatus:
    by_name = {m.name: m for m in machines}
    manager = reachable_manager(plan, clients, machines)
    known = {n.hostname: n for n in swarm_nodes(manager)} if manager else {}
    nodes = []
    for node in plan.nodes:
        machine = by_name[node.name].state if node.name in by_name else "missing"
        seen = known.get(node.name)
        nodes.append(NodeStatus(
            name=node.name, role=seen.role if seen else node.role, address=node.address,
            state=seen.state if seen else machine, availability=seen.availability if seen else "",
            leader=bool(seen and seen.leader), machine=machine,
        ))
    entry = entry_point(plan)
    where = f"{entry.kind} at {entry.address} (ports {', '.join(map(str, PORTS))})"
    return LabStatus(plan.name, plan.spec.provider, plan.registry, where, manager is not None, nodes,
                     viz_control.url(plan.name))
