"""docker-machine's per-node verbs: `ip`, `inspect`, `scp`, and a docker context per node.

Each works from the lab's records on this machine (its plan, its provider's machines, its
SSH and TLS material), so it answers without asking the swarm.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from dataclasses import dataclass

from provision import hints, inventory
from provision.errors import LabError
from provision.plan import LabPlan, NodePlan
from provision.providers.base import SSHTarget
from provision.remote import docker_contexts, keys, reach, tls


def find_node(plan: LabPlan, node: str) -> NodePlan:
    """The node called ``node``; else an error naming the lab's nodes."""
    return plan.node(node)


def engine_url(address: str) -> str:
    """The node engine's address on the lab network, as DOCKER_HOST and docker contexts name it."""
    host = f"[{address}]" if ":" in address else address
    return f"tcp://{host}:{tls.ENGINE_PORT}"


def ssh_options(lab: str, port: int = 22) -> list[str]:
    """The options of every ssh and scp call: the lab's key only, the lab's known_hosts,
    host keys checked (StrictHostKeyChecking=yes: an unknown or changed key is refused)."""
    return [
        "-i", str(keys.lab_key(lab).private_path), "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={keys.known_hosts_path(lab)}", "-o", "StrictHostKeyChecking=yes",
        "-o", "LogLevel=ERROR", *(["-o", f"Port={port}"] if port != 22 else []),
    ]


ENV_VARIABLES = ("DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "SWARMDECK_LAB", "SWARMDECK_NODE")


def engine_env(plan: LabPlan, node: str) -> dict[str, str]:
    """What `lab.env NODE` exports: the docker CLI pointed at ``node``'s engine with the lab's
    client certificate (docker-machine's `env`)."""
    address = plan.node(node).address
    certs = tls.client_certs(plan.name)
    return dict(zip(ENV_VARIABLES, ("1", docker_host(plan.name, address), str(certs.folder), plan.name, node)))


def ssh_argv(lab: str, address: str, command: str | None = None) -> list[str]:
    """The ssh command line that logs into the node at ``address`` as root: straight, or to
    the lab tunnel's local port with the host key checked as the node's (HostKeyAlias)."""
    host, port = reach.endpoint(lab, address, 22)
    if (host, port) == (address, 22):
        return ["ssh", *ssh_options(lab), f"root@{address}", *([command] if command else [])]
    return ["ssh", *ssh_options(lab, port), "-o", f"HostKeyAlias={address}", f"root@{host}",
            *([command] if command else [])]


def docker_host(lab: str, address: str) -> str:
    """The DOCKER_HOST that reaches the engine of the node at ``address`` from this machine."""
    host, port = reach.endpoint(lab, address, tls.ENGINE_PORT)
    return engine_url(host) if port == tls.ENGINE_PORT else f"tcp://{host}:{port}"


def require_program(name: str) -> None:
    if shutil.which(name) is None:
        raise LabError(f"the {name} command is not installed", hint="apt-get install openssh-client")


# -- lab.ip and lab.inspect -------------------------------------------------------------------


def node_ip(lab: str, node: str) -> str:
    """The node's address on the lab network (docker-machine's `ip`)."""
    _, plan = inventory.existing_lab(lab)
    return find_node(plan, node).address


def inspect_node(lab: str, node: str) -> dict:
    """Everything swarmdeck knows of ``node`` and how it reaches it, as JSON-ready data
    (docker-machine's `inspect`): the machine as its provider reports it (None: missing),
    its addresses, engine URL and TLS files (those lab.env exports), its SSH access and
    the command line `lab.ssh` runs, its docker context."""
    provider, plan = inventory.existing_lab(lab)
    found = find_node(plan, node)
    machine = next((m for m in provider.list(lab) if m.name == node), None)
    target = provider.ssh_target(machine) if machine else SSHTarget(found.address)
    certs = tls.client_certs(lab)
    return {
        "lab": lab, "node": node, "provider": plan.spec.provider, "role": found.role,
        "address": found.address,
        "addresses": {"lab": found.address, "machine": machine.address if machine else None, "ssh": target.host},
        "machine": dataclasses.asdict(machine) if machine else None,
        "engine": {"url": docker_host(lab, found.address),
                   "tls": {"ca": str(certs.ca), "cert": str(certs.cert), "key": str(certs.key)},
                   "cert_path": str(certs.folder), "context": _context_if_made(lab, node)},
        "ssh": {"user": "root", "host": target.host, "port": target.port, "key": str(keys.lab_key(lab).private_path),
                "known_hosts": str(keys.known_hosts_path(lab)), "command": ssh_argv(lab, found.address)},
        "labels": dict(found.labels),
    }


def _context_if_made(lab: str, node: str) -> str | None:
    """The node's docker context when `lab.context` made it (None: not made, or no docker CLI)."""
    name = docker_contexts.context_name(lab, node)
    return name if shutil.which("docker") and name in docker_contexts.of_lab(lab) else None


# -- lab.scp ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """One side of a copy: a path on ``node``, or on this machine when ``node`` is None."""

    node: str | None
    path: str


def parse_location(text: str) -> Location:
    """``NODE:PATH`` is a path on a node; anything else is local (as in `docker-machine scp`).

    A colon after a slash belongs to a local path (``./a:b``, ``/tmp/x:y``); ``NODE:`` is the
    node's home folder (/root)."""
    node, colon, path = text.partition(":")
    if not colon or not node or "/" in node:
        return Location(None, text)
    return Location(node, path)


def scp_argv(lab: str, plan: LabPlan, sources: list[Location], destination: Location, *, recursive: bool,
             targets: dict[str, SSHTarget]) -> list[str]:
    """The scp command line for a copy between this machine and lab nodes.

    Node paths become ``root@ADDRESS:PATH`` on the address in ``targets``; a copy from one
    node to another goes through this machine (``-3``), so nodes need no keys of each other.
    """
    locations = [*sources, destination]
    if all(loc.node is None for loc in locations):
        raise LabError("neither side of the copy is on a node: write the node's side as NODE:PATH",
                       hint=f"{hints.command('lab.scp', 'worker1:/etc/hostname', './hostname', lab=lab)}")
    remote = [loc for loc in locations if loc.node is not None]
    names = [n.name for n in plan.nodes]
    for loc in remote:
        if loc.node not in names:
            raise LabError(f"no node {loc.node!r} in lab {lab!r} (its nodes: {', '.join(names)})",
                           hint=f"a local path with a colon in its first part: write it as ./{loc.node}:{loc.path}")
        if loc.node not in targets:
            raise LabError(f"node {loc.node} of lab {lab} has no machine", hint=f"{hints.command('lab.status', lab=lab)}")
    ports = {targets[loc.node].port for loc in remote}  # type: ignore[index]
    if len(ports) > 1:
        raise LabError(f"the nodes of this copy listen for SSH on different ports ({', '.join(map(str, sorted(ports)))})",
                       hint="copy through this machine in two steps")

    def spell(loc: Location) -> str:
        if loc.node is None:
            return loc.path
        host = targets[loc.node].host
        return f"root@{f'[{host}]' if ':' in host else host}:{loc.path}"

    flags = (["-r"] if recursive else []) + (["-3"] if len(remote) > 1 else [])
    return ["scp", *ssh_options(lab, ports.pop()), *flags, *map(spell, locations)]


def scp(lab: str, source: str, destination: str, *, recursive: bool = False) -> int:
    """Copy files between this machine and lab nodes (`lab.scp`); scp's exit code."""
    provider, plan = inventory.existing_lab(lab)
    sources, target = [parse_location(source)], parse_location(destination)
    machines = {m.name: m for m in provider.list(lab)}
    targets = {name: provider.ssh_target(m) for name, m in machines.items()}
    argv = scp_argv(lab, plan, sources, target, recursive=recursive, targets=targets)
    require_program("scp")
    return subprocess.run(argv, check=False).returncode


# -- lab.context ------------------------------------------------------------------------------


def context(lab: str, node: str) -> tuple[str, str]:
    """Create or update the docker context ``swarmdeck-LAB-NODE`` for the node's engine with
    the lab's client certificate. Returns (its name, "created" or "updated")."""
    _, plan = inventory.existing_lab(lab)
    found = find_node(plan, node)
    certs = tls.client_certs(lab)
    return docker_contexts.ensure(lab, node, docker_host(lab, found.address), certs)
