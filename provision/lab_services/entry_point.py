"""The lab's entry point: how clients reach its published services.

Where the nodes' kernel has IPVS, Swarm's routing mesh answers on every node's
published port. Where it has none (nested container nodes on such a kernel), the
lab runs HAProxy in front of the nodes, as a cloud load balancer would, and
services publish in host mode; ``lab.up`` sets that up.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

from provision import kernel_features as ipvs
from provision.plan import LabPlan

PORTS = (8080, 8081)  # the demo service's and the shipped stacks' published ports
LB_OFFSET = 9  # the load balancer sits just below the first node's address
KIND_IDS = {"routing mesh": "routing-mesh", "load balancer": "load-balancer"}  # as scripts see them (--json)


@dataclass(frozen=True)
class EntryPoint:
    kind: str  # "routing mesh" | "load balancer"
    address: str

    def url(self, port: int = PORTS[0]) -> str:
        return f"http://{self.address}:{port}/"

    @property
    def publish_mode(self) -> str:
        return "ingress" if self.kind == "routing mesh" else "host"

    def to_json(self) -> dict:
        """The entry point as data for scripts and the visualizer: kind, address, ports."""
        return {"kind": KIND_IDS[self.kind], "address": self.address, "ports": list(PORTS)}


def describe(data: Mapping) -> str:
    """One readable line from ``EntryPoint.to_json()``: "load balancer at 10.199.0.9 (ports 8080, 8081)"."""
    kind = str(data["kind"]).replace("-", " ")
    return f"{kind} at {data['address']} (ports {', '.join(map(str, data['ports']))})"


def entry_point(plan: LabPlan) -> EntryPoint:
    """Container nodes share this machine's kernel, so its IPVS decides; VMs and hosts run
    their own kernels (Debian's have IPVS), so they get the routing mesh."""
    if not plan.shares_kernel or ipvs.available():
        return EntryPoint("routing mesh", plan.first_manager.address)
    return EntryPoint("load balancer", lb_address(plan))


def has_routing_mesh(plan: LabPlan) -> bool:
    """Whether ingress-published ports and service VIPs answer in this lab (see ``entry_point``)."""
    return entry_point(plan).kind == "routing mesh"


def no_mesh_line(plan: LabPlan) -> str:
    """What `lab.up` says once about a lab without the routing mesh."""
    return (f"no routing mesh in this lab (this kernel has no IPVS): ingress ports and service VIPs answer "
            f"nothing; publish in host mode (`--publish 8080:80:host`) behind the load balancer at "
            f"{lb_address(plan)}, or use `--endpoint-mode dnsrr`")


def without_mesh(plan: LabPlan, what: str, host_mode: str, dnsrr: str) -> str:
    """The warning for ``what`` (ingress ports) in a lab without the routing mesh, with what works instead.

    ``host_mode`` and ``dnsrr`` spell the alternatives in the user's syntax (a flag or a compose key).
    """
    ports = " and ".join(map(str, PORTS))
    return (f"lab {plan.name} has no routing mesh (this kernel has no IPVS): {what} will be created but answer "
            f"nothing, and neither will service VIPs. What works instead: host-mode ports ({host_mode}: each node "
            f"running a task answers on it); the lab's load balancer at {lb_address(plan)}, which forwards ports "
            f"{ports} to every node (publish one of them in host mode); {dnsrr} instead of a VIP for traffic "
            "between services")


def lb_address(plan: LabPlan) -> str:
    return str(ipaddress.ip_network(plan.subnet)[LB_OFFSET])
