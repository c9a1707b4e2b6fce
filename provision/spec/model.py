"""The lab spec: what a lab is made of, and its defaults (one source: the dataclasses).

A spec comes from a ``lab.yaml``-style mapping (see ``lab.example.yaml``), merged with
Invoke config and CLI flags by ``provision.spec.load``; ``provision.spec.validation``
reports every problem at once, like kind's config validation.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from provision.errors import NodeNotFound

PROVIDERS = ("docker", "libvirt", "vagrant", "ssh")
ROLES = ("manager", "worker")
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
HOSTNAME_RE = re.compile(r"[a-z][a-z0-9-]{0,62}")
AUTO = "auto"
AUTO_PREFIX = 24  # the size of the lab network a provider picks for "auto"
FIRST_NODE_OFFSET = 10  # node i gets the subnet's address number 10 + i; .1 is the gateway

DEFAULT_LAB, DEFAULT_PROVIDER, DEFAULT_PROFILE = "swarmdeck", "docker", "default"
DEFAULT_MANAGERS, DEFAULT_WORKERS = 3, 2
VAGRANT_PROVIDERS = ("libvirt", "virtualbox")

# Named timing presets, applied under everything a user sets. "tuned" shortens what can be
# shortened in stock Docker: the workers' heartbeat (a dead node is noticed in about 3
# periods), and the demo services' restart delay and healthcheck interval (a task counts
# as running only once healthy). Raft's election timeout cannot be tuned: see ELECTION_TICK.
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "tuned": {"swarm": {"dispatcher_heartbeat": 0.5}, "demos": {"restart_delay": 0.0, "health_interval": 0.5}},
}

# dockerd has a config field for Raft's election tick (json "swarm-raft-election-tick") but
# rejects that key in daemon.json, since no command-line flag matches it (checked with
# Docker 20.10 and 26.1), and swarmkit ignores Raft.ElectionTick in the cluster spec
# (it logs that the value differs from its own). So it stays Swarm's 10.
ELECTION_TICK = 10


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str = "worker"
    labels: Mapping[str, str] = field(default_factory=dict)
    slot: int | None = None  # address slot; None: the node's position in the list (lab.add sets it)

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"


@dataclass(frozen=True)
class NetworkSpec:
    subnet: str = AUTO  # a CIDR, or "auto": the provider picks a free /24
    mtu: int = 0  # 0: take the MTU of the provider's default network


DOCKER_HUB = "https://registry-1.docker.io"


@dataclass(frozen=True)
class RegistrySpec:
    enabled: bool = True
    port: int = 5000
    image: str = ""  # "": build the registry image offline on the node; else pull this image
    # A pull-through cache of Docker Hub beside the lab registry (a second registry: a proxy
    # registry refuses pushes), for a machine that is online: the nodes' second registry mirror.
    cache: bool = False
    cache_port: int = 5001
    cache_remote: str = DOCKER_HUB


@dataclass(frozen=True)
class SwarmSpec:
    dispatcher_heartbeat: float = 5.0  # seconds; Swarm's default is 5
    election_tick: int = ELECTION_TICK  # Raft ticks (1 s each); only 10 can be applied (see ELECTION_TICK)


@dataclass(frozen=True)
class DemoSpec:
    """Timings of the demo services (a profile sets them; `lab.yaml` may too)."""

    restart_delay: float = 1.0  # seconds before Swarm replaces a failed task (Swarm's default 5)
    health_interval: float = 2.0  # seconds between healthchecks (the image's own interval is 2)


@dataclass(frozen=True)
class HostSpec:
    """An existing machine that a lab of provider ssh sets up (docker-machine's generic driver)."""

    address: str
    user: str = "root"  # a user with sudo when not root
    port: int = 22
    key: str = ""  # private key file; "": the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa


@dataclass(frozen=True)
class VagrantSpec:
    provider: str = "libvirt"  # vagrant-libvirt, or virtualbox
    box: str = ""  # "": swarmdeck's own box, built offline (libvirt); else a box name such as debian/bookworm64


@dataclass(frozen=True)
class LimitsSpec:
    """What each node of the lab may use at most ("" / 0: no limit). The docker provider
    applies all three (memory limit, CPU quota, pids limit); libvirt gives a VM this memory
    and ceil(cpus) vCPUs (a VM's processes are its own kernel's: pids has no meaning there)."""

    memory: str = ""  # bytes with a unit: 512m, 1g (docker's spelling; m and g are MiB and GiB)
    cpus: float = 0.0  # CPUs' worth of time, 0.5 = half a core
    pids: int = 0  # processes and threads in the node, its engine and containers included


MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
MEMORY_RE = re.compile(r"(\d+)\s*([bkmg]?)(?:i?b)?", re.IGNORECASE)


def memory_bytes(text: str) -> int | None:
    """``512m`` -> 536870912; "" -> 0 (no limit); None when it cannot be read."""
    if not str(text).strip():
        return 0
    found = MEMORY_RE.fullmatch(str(text).strip())
    if not found:
        return None
    return int(found.group(1)) * MEMORY_UNITS[found.group(2).lower()]


@dataclass(frozen=True)
class LabSpec:
    name: str
    provider: str
    nodes: tuple[NodeSpec, ...]
    network: NetworkSpec = NetworkSpec()
    registry: RegistrySpec = RegistrySpec()
    swarm: SwarmSpec = SwarmSpec()
    profile: str = DEFAULT_PROFILE
    demos: DemoSpec = DemoSpec()
    hosts: Mapping[str, HostSpec] = field(default_factory=dict)
    vagrant: VagrantSpec = VagrantSpec()
    limits: LimitsSpec = LimitsSpec()

    @property
    def managers(self) -> tuple[NodeSpec, ...]:
        return tuple(n for n in self.nodes if n.is_manager)

    @property
    def workers(self) -> tuple[NodeSpec, ...]:
        return tuple(n for n in self.nodes if not n.is_manager)

    @property
    def first_manager(self) -> NodeSpec:
        return self.managers[0]

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise NodeNotFound(self.name, name, [n.name for n in self.nodes])


def node_address(subnet: str, index: int) -> str:
    """The static address of the node in address slot ``index``."""
    return str(ipaddress.ip_network(subnet)[FIRST_NODE_OFFSET + index])


def slots(nodes: tuple[NodeSpec, ...]) -> list[int]:
    """Each node's address slot: its own, else its position (so removing a node moves no other)."""
    return [i if n.slot is None else n.slot for i, n in enumerate(nodes)]


def next_slot(nodes: tuple[NodeSpec, ...]) -> int:
    return max(slots(nodes), default=-1) + 1


# The defaults as plain data, the base layer of every spec (provision.spec.load): taken from
# the dataclasses above, so that each default is written once.
DEFAULTS: dict[str, Any] = {
    "name": DEFAULT_LAB,
    "provider": DEFAULT_PROVIDER,
    "managers": DEFAULT_MANAGERS,
    "workers": DEFAULT_WORKERS,
    "nodes": None,  # explicit list of {name, role, labels}; overrides managers/workers
    "labels": {},  # node name -> {key: value}
    "network": asdict(NetworkSpec()),
    "registry": asdict(RegistrySpec()),
    "profile": DEFAULT_PROFILE,
    "swarm": asdict(SwarmSpec()),
    "demos": asdict(DemoSpec()),
    "hosts": {},  # provider ssh: node name -> {address, user, port, key} of an existing machine
    "vagrant": asdict(VagrantSpec()),
    "limits": asdict(LimitsSpec()),
}
