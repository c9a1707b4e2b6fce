"""Validation of a lab spec: every problem at once (like kind's config validation), and the
warnings a user should see (an even number of managers, explained with Raft's arithmetic)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Mapping

from provision.errors import SpecError
from provision.spec.model import (
    AUTO,
    AUTO_PREFIX,
    DOCKER_HUB,
    ELECTION_TICK,
    FIRST_NODE_OFFSET,
    HOSTNAME_RE,
    NAME_RE,
    PROFILES,
    PROVIDERS,
    ROLES,
    VAGRANT_PROVIDERS,
    LabSpec,
    LimitsSpec,
    NetworkSpec,
    NodeSpec,
    RegistrySpec,
    memory_bytes,
    next_slot,
    slots,
)


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
    found += _cache_problems(spec.registry)
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
    found += limit_problems(spec.limits)
    if spec.vagrant.provider not in VAGRANT_PROVIDERS:
        found.append(Problem(f"unknown vagrant provider {spec.vagrant.provider!r}: "
                             f"choose one of {', '.join(VAGRANT_PROVIDERS)}", ("vagrant.provider",)))
    elif spec.provider == "vagrant" and spec.vagrant.provider == "virtualbox" and not spec.vagrant.box:
        found.append(Problem(
            "VirtualBox cannot boot swarmdeck's own box (made for libvirt): name a box in vagrant.box, "
            "such as debian/bookworm64 (host setup then installs the Docker engine)",
            ("vagrant.box", "vagrant.provider", "provider")))
    return found


MIN_NODE_MEMORY = 96 * 1024 ** 2  # a node's sshd, runit and dockerd, idle, take about 60 MB
MIN_NODE_PIDS = 128  # dockerd and containerd start about 60 threads between them


def limit_problems(limits: LimitsSpec) -> list[Problem]:
    """Each node's limits: a memory size with a unit, CPUs as a positive number, a pids count;
    below what a node's own engine needs to start, a limit is refused (it would never be Ready)."""
    found = []
    size = memory_bytes(limits.memory)
    if size is None:
        found.append(Problem(f"limits.memory {limits.memory!r} is not a size such as 512m or 1g", ("limits.memory",)))
    elif size and size < MIN_NODE_MEMORY:
        found.append(Problem(f"limits.memory {limits.memory} is below {MIN_NODE_MEMORY // 1024 ** 2}m, what a node's "
                             "own engine needs to start", ("limits.memory",)))
    if limits.cpus < 0 or limits.cpus > 256:
        found.append(Problem(f"limits.cpus {limits.cpus} is outside 0-256 (0: no limit; 0.5 is half a core)",
                             ("limits.cpus",)))
    elif 0 < limits.cpus < 0.01:
        found.append(Problem(f"limits.cpus {limits.cpus} is below 0.01, the smallest CPU quota", ("limits.cpus",)))
    if limits.pids < 0 or 0 < limits.pids < MIN_NODE_PIDS:
        found.append(Problem(f"limits.pids {limits.pids} must be 0 (no limit) or at least {MIN_NODE_PIDS}: a node's "
                             "engine and containerd alone start about 60", ("limits.pids",)))
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


def _cache_problems(registry: RegistrySpec) -> list[Problem]:
    """The Docker Hub cache runs beside the lab registry, on its own port, proxying an HTTP(S) URL."""
    if not registry.cache:
        return []
    found = []
    if not registry.enabled:
        found.append(Problem("registry.cache needs the lab registry (registry.enabled): the cache runs beside it",
                             ("registry.cache", "registry.enabled")))
    if not 1 <= registry.cache_port <= 65535 or registry.cache_port == registry.port:
        found.append(Problem(f"registry cache port {registry.cache_port} must be a TCP port (1-65535) other than "
                             f"the registry's ({registry.port})", ("registry.cache_port",)))
    if not re.fullmatch(r"https?://[^\s/]+/?", registry.cache_remote):
        found.append(Problem(f"registry cache remote {registry.cache_remote!r} must be a registry's URL such as "
                             f"{DOCKER_HUB}", ("registry.cache_remote",)))
    return found
