"""Records of what a lab is: the resolved plan, and machines as a backend reports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from provision.spec.model import LabSpec, node_address, slots


@dataclass(frozen=True)
class NodePlan:
    """One node of a lab, with everything a provider and host setup need to know."""

    lab: str
    name: str
    role: str
    index: int
    address: str
    labels: Mapping[str, str]

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"


@dataclass(frozen=True)
class LabPlan:
    """A spec resolved against a backend: concrete subnet, MTU and addresses; the pace of its
    machines: how many times slower than container nodes their engines answer (VMs under
    QEMU's software emulation: several times; engine timeouts and waits of the lab are
    multiplied by it, see ``scaled``); and whether its nodes share this machine's kernel
    (container nodes: then this kernel's features, IPVS first, are theirs)."""

    spec: LabSpec
    subnet: str
    mtu: int
    nodes: tuple[NodePlan, ...]
    pace: float = 1.0
    shares_kernel: bool = False

    def scaled(self, seconds: float) -> float:
        """``seconds`` (right for container nodes) scaled to this lab's machines."""
        return seconds * self.pace

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def first_manager(self) -> NodePlan:
        return next(n for n in self.nodes if n.is_manager)

    @property
    def registry(self) -> str | None:
        """``ADDR:PORT`` of the lab registry, or None when the lab has none."""
        if not self.spec.registry.enabled:
            return None
        return f"{self.first_manager.address}:{self.spec.registry.port}"

    @property
    def registry_cache(self) -> str | None:
        """``ADDR:PORT`` of the lab's Docker Hub cache, or None when it runs none."""
        if self.registry is None or not self.spec.registry.cache:
            return None
        return f"{self.first_manager.address}:{self.spec.registry.cache_port}"

    @property
    def registry_mirrors(self) -> list[str]:
        """The nodes' registry mirrors, in the order an engine asks them for a Docker Hub image
        (``nginx`` is ``docker.io/library/nginx``): the lab registry first, so that what it holds
        under a Hub name (a stand-in, an image the class pushed) wins; then the Docker Hub cache,
        where the lab runs one. Docker Hub itself is asked last, by the engine."""
        return [f"http://{address}" for address in (self.registry, self.registry_cache) if address]

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        self.spec.node(name)  # raises NodeNotFound, naming the lab's nodes
        raise AssertionError("unreachable")


def plan(spec: LabSpec, subnet: str, mtu: int, addresses: Mapping[str, str] | None = None, *,
         pace: float = 1.0, shares_kernel: bool = False) -> LabPlan:
    """Nodes get the address of their slot in ``subnet``, or the one ``addresses`` gives
    (machines whose address is not the lab's to choose: existing hosts)."""
    nodes = tuple(
        NodePlan(spec.name, n.name, n.role, slot,
                 addresses[n.name] if addresses is not None else node_address(subnet, slot), dict(n.labels))
        for n, slot in zip(spec.nodes, slots(spec.nodes))
    )
    return LabPlan(spec, subnet, mtu, nodes, pace, shares_kernel)


# Normalised machine states, the same for every provider.
RUNNING, STOPPED, PAUSED, CREATED, MISSING = "running", "stopped", "paused", "created", "missing"


@dataclass(frozen=True)
class Machine:
    """A lab machine as its backend reports it now."""

    lab: str
    name: str
    role: str
    index: int
    address: str
    state: str
    provider: str
    id: str = ""
