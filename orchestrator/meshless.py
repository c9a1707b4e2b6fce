"""A compose file made to run on a lab without the routing mesh (a kernel without IPVS).

Without IPVS, Swarm's ingress-published ports and service VIPs answer nothing. The same
stack runs when (1) every ingress port is published in host mode (the node running a task
answers on it), (2) every service uses DNS round robin (``endpoint_mode: dnsrr``) instead of a
VIP, (3) a replicated service with host-mode ports asks for no more replicas than there are
nodes it may run on (two tasks cannot bind one port on one node), and (4) the lab's load
balancer forwards each published port to every node (``Route``; the docker provider's HAProxy
reads them from the lab's state folder, ``provision.state.write_routes``).

``rewrite`` does those changes and lists each with its reason; everything else of the file is
kept as written. Where the mesh exists (VM labs), nothing is rewritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from provision.errors import LabError

HEADER = ("# Rewritten by swarmdeck for a lab without the routing mesh (this kernel has no IPVS).\n"
          "# What changed and why:\n")


@dataclass(frozen=True)
class Change:
    service: str
    what: str
    why: str

    def line(self) -> str:
        return f"{self.service}: {self.what} ({self.why})"


@dataclass(frozen=True)
class Route:
    """A port the lab's load balancer forwards to the same port on every node."""

    port: int
    service: str


@dataclass(frozen=True)
class NodeFacts:
    """What a placement constraint may ask of a node."""

    hostname: str
    role: str  # manager | worker
    labels: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Rewrite:
    text: str
    changes: list[Change]
    routes: list[Route]


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads an unquoted ``53:53`` as the base-60 number 3233: such values stay text."""


def _int_or_text(loader, node):
    value = loader.construct_scalar(node)
    return value if ":" in value else yaml.SafeLoader.construct_yaml_int(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _int_or_text)


def load(text: str) -> dict:
    try:
        compose = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        raise LabError(f"the compose file does not parse: {err}") from err
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict):
        raise LabError("the compose file has no `services:` mapping", hint="a stack file lists its services")
    return compose


PORT_RE = re.compile(r"^(?:(?P<ip>[^:]+):(?=\d+:))?(?:(?P<published>\d+):)?(?P<target>\d+)(?:/(?P<protocol>tcp|udp|sctp))?$")


def long_port(port) -> dict | None:
    """The long syntax of a short-syntax port (``"8080:80"``, ``80``, ``"127.0.0.1:53:53/udp"``);
    None for what this does not rewrite (ranges)."""
    match = PORT_RE.match(str(port))
    if not match:
        return None
    long = {"target": int(match["target"]), "protocol": match["protocol"] or "tcp"}
    if match["published"]:
        long["published"] = int(match["published"])
    return long


def constraint_holds(constraint: str, node: NodeFacts) -> bool | None:
    """Whether ``node`` meets one placement constraint; None for one this does not know."""
    match = re.fullmatch(r"\s*([\w.\-]+)\s*(==|!=)\s*(.+?)\s*", constraint)
    if not match:
        return None
    key, op, wanted = match.groups()
    if key == "node.role":
        value = node.role
    elif key == "node.hostname":
        value = node.hostname
    elif key.startswith("node.labels."):
        value = node.labels.get(key[len("node.labels."):])
    else:
        return None
    return (value == wanted) == (op == "==")


def eligible(constraints: list[str], nodes: list[NodeFacts]) -> int | None:
    """How many of ``nodes`` meet every constraint; None when one of them is not understood."""
    count = 0
    for node in nodes:
        verdicts = [constraint_holds(c, node) for c in constraints]
        if None in verdicts:
            return None
        count += all(verdicts)
    return count


def rewrite(text: str, nodes: list[NodeFacts]) -> Rewrite:
    """``text`` made to run without the routing mesh on a lab of ``nodes`` (the active ones)."""
    compose = load(text)
    changes: list[Change] = []
    routes: list[Route] = []
    for name, service in compose["services"].items():
        if not isinstance(service, dict):
            continue
        deploy = service.setdefault("deploy", {})
        host_ports = _rewrite_ports(name, service, changes, routes)
        if deploy.get("endpoint_mode", "vip") == "vip":
            deploy["endpoint_mode"] = "dnsrr"
            changes.append(Change(name, "endpoint_mode vip -> dnsrr",
                                  "no IPVS, so a service VIP answers nothing; the service's name resolves to its "
                                  "tasks' addresses instead"))
        if host_ports and deploy.get("mode", "replicated") == "replicated":
            _cap_replicas(name, deploy, nodes, changes)
        if not deploy:
            del service["deploy"]
    if changes and _older_than(compose.get("version"), (3, 2)):
        changes.insert(0, Change("file", f"version {compose['version']} -> 3.2",
                                 "the long port syntax and endpoint_mode need compose file format 3.2"))
        compose["version"] = "3.2"
    summary = "".join(f"#   {change.line()}\n" for change in changes)
    body = yaml.safe_dump(compose, sort_keys=False, default_flow_style=False)
    return Rewrite(HEADER + summary + body if changes else text, changes, routes)


def _older_than(version, wanted: tuple[int, int]) -> bool:
    match = re.fullmatch(r"(\d+)(?:\.(\d+))?", str(version)) if version is not None else None
    return bool(match) and (int(match[1]), int(match[2] or 0)) < wanted


def _rewrite_ports(name: str, service: dict, changes: list[Change], routes: list[Route]) -> bool:
    """Ingress ports -> host mode, in place; True when the service publishes any port."""
    ports = service.get("ports")
    if not isinstance(ports, list):
        return False
    rewritten = []
    for port in ports:
        long = dict(port) if isinstance(port, dict) else long_port(port)
        if long is None:
            rewritten.append(port)
            changes.append(Change(name, f"port {port} kept as written", "a port range is not rewritten: it answers "
                                  "nothing without the routing mesh"))
            continue
        published = long.get("published")
        routed = bool(published) and long.get("protocol", "tcp") == "tcp"
        if routed:
            routes.append(Route(int(published), name))
        if long.get("mode", "ingress") == "ingress":
            long["mode"] = "host"
            shown = f"{published or '(random)'}:{long['target']}"
            changes.append(Change(
                name, f"port {shown} ingress -> mode host" + (", routed by the lab's load balancer" if routed else ""),
                "no routing mesh: the node running a task answers on the port" + (
                    "; the load balancer forwards it to every node" if routed else
                    "; a random or UDP port is not routed by the load balancer")))
        rewritten.append(long)
    service["ports"] = rewritten
    return bool(rewritten)


def _cap_replicas(name: str, deploy: dict, nodes: list[NodeFacts], changes: list[Change]) -> None:
    placement = deploy.get("placement") or {}
    constraints = placement.get("constraints") or []
    room = eligible(list(constraints), nodes)
    if room is None:
        room = len(nodes)
    wanted = int(deploy.get("replicas", 1))
    if wanted > room:
        deploy["replicas"] = room
        changes.append(Change(name, f"replicas {wanted} -> {room}",
                              f"a host-mode port fits one task per node, and {room} node(s) may run it"))
