"""The lab spec: what a lab is made of, its defaults, and its validation.

A spec comes from a ``lab.yaml``-style mapping (see ``lab.example.yaml``),
merged with Invoke config and CLI flags by :func:`provision.config.load_spec`.
``validate`` reports every problem at once, like kind's config validation.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from provision.errors import SpecError

PROVIDERS = ("docker", "libvirt", "vagrant", "ssh")
ROLES = ("manager", "worker")
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
HOSTNAME_RE = re.compile(r"[a-z][a-z0-9-]{0,62}")
AUTO = "auto"
AUTO_PREFIX = 24  # the size of the lab network a provider picks for "auto"
FIRST_NODE_OFFSET = 10  # node i gets the subnet's address number 10 + i; .1 is the gateway

DEFAULTS: dict[str, Any] = {
    "name": "swarmdeck",
    "provider": "docker",
    "managers": 3,
    "workers": 2,
    "nodes": None,  # explicit list of {name, role, labels}; overrides managers/workers
    "labels": {},  # node name -> {key: value}
    "network": {"subnet": AUTO, "mtu": 0},
    "registry": {"enabled": True, "port": 5000, "image": ""},
    "profile": "default",
    "swarm": {"dispatcher_heartbeat": 5.0, "election_tick": 10},
    "demos": {"restart_delay": 1.0, "health_interval": 2.0},
    "hosts": {},  # provider ssh: node name -> {address, user, port, key} of an existing machine
    "vagrant": {"provider": "libvirt", "box": ""},
}
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


@dataclass(frozen=True)
class RegistrySpec:
    enabled: bool = True
    port: int = 5000
    image: str = ""  # "": build the registry image offline on the node; else pull this image


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
class LabSpec:
    name: str
    provider: str
    nodes: tuple[NodeSpec, ...]
    network: NetworkSpec = NetworkSpec()
    registry: RegistrySpec = RegistrySpec()
    swarm: SwarmSpec = SwarmSpec()
    profile: str = "default"
    demos: DemoSpec = DemoSpec()
    hosts: Mapping[str, HostSpec] = field(default_factory=dict)
    vagrant: VagrantSpec = VagrantSpec()

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
        known = ", ".join(n.name for n in self.nodes)
        raise SpecError([f"lab {self.name!r} has no node {name!r} (its nodes: {known})"])


def node_address(subnet: str, index: int) -> str:
    """The static address of the node in address slot ``index``."""
    return str(ipaddress.ip_network(subnet)[FIRST_NODE_OFFSET + index])


def slots(nodes: tuple[NodeSpec, ...]) -> list[int]:
    """Each node's address slot: its own, else its position (so removing a node moves no other)."""
    return [i if n.slot is None else n.slot for i, n in enumerate(nodes)]


def next_slot(nodes: tuple[NodeSpec, ...]) -> int:
    return max(slots(nodes), default=-1) + 1


@dataclass(frozen=True)
class Problem:
    """One problem of a spec, and the spec keys whose values it judges (the first is the one it
    is mainly about, which orders a list of problems): the keys let
    ``provision.config`` leave out a problem that a value of the wrong type would only have
    caused through its stand-in, and say which environment variable set a value."""

    text: str
    keys: tuple[str, ...] = ()


COUNT_KEYS = ("managers", "workers", "nodes")  # the keys that decide how many nodes a lab has


def problems(spec: LabSpec) -> list[str]:
    """Every problem of ``spec`` that can be seen without a backend."""
    return [p.text for p in checks(spec)]


def checks(spec: LabSpec) -> list[Problem]:
    """``problems``, each with the spec keys it is about."""
    found: list[Problem] = []
    if not NAME_RE.fullmatch(spec.name):
        found.append(Problem(
            f"lab name {spec.name!r} is invalid: use 1-31 characters, lower-case letters, "
            "digits and '-', starting with a letter", ("name",)))
    if spec.provider not in PROVIDERS:
        found.append(Problem(f"unknown provider {spec.provider!r}: choose one of {', '.join(PROVIDERS)}",
                             ("provider",)))
    found += _node_problems(spec.nodes)
    found += _network_problems(spec.network, next_slot(spec.nodes), spec.provider)
    if not 1 <= spec.registry.port <= 65535:
        found.append(Problem(f"registry port {spec.registry.port} is not a TCP port (1-65535)", ("registry.port",)))
    if not 0.1 <= spec.swarm.dispatcher_heartbeat <= 300:
        found.append(Problem(f"dispatcher heartbeat {spec.swarm.dispatcher_heartbeat}s is outside 0.1-300 s",
                             ("swarm.dispatcher_heartbeat",)))
    if spec.swarm.election_tick != ELECTION_TICK:
        found.append(Problem(
            f"raft election tick {spec.swarm.election_tick} cannot be applied: Docker Engine rejects "
            "swarm-raft-election-tick in daemon.json and ignores the swarm spec's ElectionTick, so "
            f"elections take {ELECTION_TICK}-{2 * ELECTION_TICK} s; leave swarm.election_tick at 10",
            ("swarm.election_tick",)))
    if spec.profile not in PROFILES:
        found.append(Problem(f"unknown profile {spec.profile!r}: choose one of {', '.join(PROFILES)}", ("profile",)))
    if not 0 <= spec.demos.restart_delay <= 60:
        found.append(Problem(f"demo restart delay {spec.demos.restart_delay}s is outside 0-60 s",
                             ("demos.restart_delay",)))
    if not 0.1 <= spec.demos.health_interval <= 60:
        found.append(Problem(f"demo health interval {spec.demos.health_interval}s is outside 0.1-60 s",
                             ("demos.health_interval",)))
    found += _host_problems(spec)
    if spec.vagrant.provider not in VAGRANT_PROVIDERS:
        found.append(Problem(f"unknown vagrant provider {spec.vagrant.provider!r}: "
                             f"choose one of {', '.join(VAGRANT_PROVIDERS)}", ("vagrant.provider",)))
    elif spec.provider == "vagrant" and spec.vagrant.provider == "virtualbox" and not spec.vagrant.box:
        found.append(Problem(
            "VirtualBox cannot boot swarmdeck's own box (made for libvirt): name a box in vagrant.box, "
            "such as debian/bookworm64 (host setup then installs the Docker engine)",
            ("vagrant.box", "vagrant.provider", "provider")))
    return found


def _host_problems(spec: LabSpec) -> list[Problem]:
    """Provider ssh needs an existing machine for every node; others take none."""
    if spec.provider != "ssh":
        if spec.hosts:
            return [Problem(f"hosts are given, but only provider ssh uses them (provider is {spec.provider!r})",
                            ("hosts", "provider"))]
        return []
    texts = [f"node {n.name!r} has no entry in hosts (provider ssh sets up existing machines: "
             f"give its address, user and key)" for n in spec.nodes if n.name not in spec.hosts]
    texts += [f"hosts has {name!r}, which is not a node of this lab" for name in sorted(spec.hosts)
              if name not in {n.name for n in spec.nodes}]
    addresses = [h.address for h in spec.hosts.values()]
    texts += [f"address {a} is given to more than one host" for a in sorted(set(addresses)) if addresses.count(a) > 1]
    for name, host in sorted(spec.hosts.items()):
        if not host.address:
            texts.append(f"host {name!r} has no address")
        if not 1 <= host.port <= 65535:
            texts.append(f"host {name!r} has SSH port {host.port}, not a TCP port (1-65535)")
        if not re.fullmatch(r"[a-z_][a-z0-9_.-]*", host.user):
            texts.append(f"host {name!r} has an invalid user name {host.user!r}")
    return [Problem(text, ("hosts", "provider")) for text in texts]


def warnings(spec: LabSpec) -> list[str]:
    """Things that are allowed but that a user should know about."""
    count = len(spec.managers)
    if count and count % 2 == 0:
        tolerated = (count - 1) // 2
        return [
            f"{count} managers: Raft needs a majority ({count // 2 + 1} of {count}) to accept "
            f"changes, so this lab tolerates {tolerated} manager loss(es), no more than "
            f"{count - 1} managers would; an odd number ({count - 1} or {count + 1}) is better"
        ]
    return []


def validate(spec: LabSpec, *, taken_subnets: Mapping[str, str] | None = None) -> list[str]:
    """Raise SpecError listing every problem; return the warnings.

    ``taken_subnets`` maps the name of each network the backend already has
    (other than this lab's) to its subnet, to catch overlaps.
    """
    found = problems(spec)
    if spec.network.subnet != AUTO and _valid_cidr(spec.network.subnet):
        found += overlap_problems(spec.network.subnet, taken_subnets or {})
    if found:
        raise SpecError(found, hint="fix lab.yaml or the command-line flags and run again")
    return warnings(spec)


def overlap_problems(subnet: str, taken: Mapping[str, str]) -> list[str]:
    mine = ipaddress.ip_network(subnet)
    found = []
    for name, other in sorted(taken.items()):
        try:
            if mine.overlaps(ipaddress.ip_network(other, strict=False)):
                found.append(f"subnet {subnet} overlaps network {name!r} ({other}); choose another subnet")
        except ValueError:
            continue
    return found


def _node_problems(nodes: tuple[NodeSpec, ...]) -> list[Problem]:
    found = []
    if not any(n.is_manager for n in nodes):
        found.append(Problem("a lab needs at least one manager (managers: 1 or more)", ("managers", "nodes")))
    seen: set[str] = set()
    for node in nodes:
        if node.name in seen:
            found.append(Problem(f"node name {node.name!r} is used twice; every hostname must be unique", ("nodes",)))
        seen.add(node.name)
        if not HOSTNAME_RE.fullmatch(node.name):
            found.append(Problem(f"node name {node.name!r} is not a valid hostname (lower-case letters, digits, '-')",
                                 ("nodes",)))
        if node.role not in ROLES:
            found.append(Problem(f"node {node.name!r} has role {node.role!r}: use manager or worker", ("nodes",)))
        for key in node.labels:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(key)):
                found.append(Problem(f"node {node.name!r} has an invalid label key {key!r}", ("nodes", "labels")))
        if node.slot is not None and node.slot < 0:
            found.append(Problem(f"node {node.name!r} has a negative address slot {node.slot}", ("nodes",)))
    taken = slots(nodes)
    found += [Problem(f"address slot {slot} is used by more than one node", ("nodes",))
              for slot in sorted(set(taken)) if taken.count(slot) > 1]
    return found


def node_room(subnet: str) -> int:
    """How many nodes ``subnet`` has addresses for: from its address number FIRST_NODE_OFFSET up
    to the one below its broadcast address (the gateway and the load balancer sit below)."""
    return max(0, ipaddress.ip_network(subnet).num_addresses - FIRST_NODE_OFFSET - 1)


def prefix_for(count: int) -> int:
    """The longest prefix of a subnet with room for ``count`` nodes."""
    prefix = 32
    while prefix > 0 and 2 ** (32 - prefix) - FIRST_NODE_OFFSET - 1 < count:
        prefix -= 1
    return prefix


def _network_problems(network: NetworkSpec, node_count: int, provider: str) -> list[Problem]:
    """``node_count``: how many node addresses the subnet must hold (the highest slot + 1).
    An automatic subnet is a /24 (AUTO_PREFIX) for every provider that makes a lab network."""
    found = []
    counted = ("network.subnet", *COUNT_KEYS)
    if network.subnet == AUTO:
        room = node_room(f"10.0.0.0/{AUTO_PREFIX}")
        if provider != "ssh" and node_count > room:
            found.append(Problem(
                f"the automatic lab network (a /{AUTO_PREFIX}) is too small for {node_count} nodes (room for "
                f"{room}): set network.subnet (--subnet) to a /{prefix_for(node_count)} or bigger",
                (*counted, "provider")))
    elif not _valid_cidr(network.subnet):
        found.append(Problem(f"subnet {network.subnet!r} is not an IPv4 CIDR such as 10.199.0.0/24 (or 'auto')",
                             ("network.subnet",)))
    elif node_count > node_room(network.subnet):
        found.append(Problem(
            f"subnet {network.subnet} is too small for {node_count} nodes (room for {node_room(network.subnet)}): "
            f"choose a /{prefix_for(node_count)} or bigger", counted))
    if network.mtu and not 1280 <= network.mtu <= 9000:
        found.append(Problem(f"network MTU {network.mtu} is outside 1280-9000 (or 0 for automatic)", ("network.mtu",)))
    return found


def _valid_cidr(text: str) -> bool:
    try:
        return ipaddress.ip_network(text).version == 4
    except ValueError:
        return False
