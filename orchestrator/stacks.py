"""Stacks: compose files deployed with `docker stack deploy` on a manager, over SSH.

The SDK has no stack API; the node's own docker CLI reads every `deploy:` key the
tutorials use. Shipped stacks live in ``templates/stacks/NAME.yml.j2`` and are
rendered with the lab's registry and what its kernel offers. Like the docker CLI's
services (not its `stack deploy`), ``deploy`` then waits until every service of
the stack converged (orchestrator.converge).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from orchestrator import converge, services, swarm
from orchestrator.session import LabSession
from provision.errors import LabError
from provision.lab_services import entry_point as entrypoint
from provision.paths import TEMPLATES
from provision.progress import Reporter
from provision.remote.host import SSHHost, check
from provision.render import environment

STACKS = TEMPLATES / "stacks"
NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")


def shipped() -> list[str]:
    return sorted(p.name.removesuffix(".yml.j2") for p in STACKS.glob("*.yml.j2"))


def compose_text(lab: LabSession, source: str) -> str:
    """The compose file for ``source``: a shipped stack's name, a file, or a ``.j2`` template."""
    path = Path(source)
    if source in shipped():
        path = STACKS / f"{source}.yml.j2"
    elif not path.is_file():
        raise LabError(f"no stack file {source!r}", hint=f"shipped stacks: {', '.join(shipped())}, or a path")
    text = path.read_text()
    if path.name.endswith(".j2"):
        if not lab.plan.registry:
            raise LabError("the shipped stacks use the lab registry, and this lab runs none")
        mesh = entrypoint.has_routing_mesh(lab.plan)
        context = {
            "registry": lab.plan.registry,
            "publish_mode": "ingress" if mesh else "host",
            "publish_note": "ports use the routing mesh" if mesh else
            "no IPVS in this kernel: ports are published in host mode on every node (global services)",
            "overlay_mtu": swarm.overlay_mtu(lab.plan.mtu),
        }
        text = environment().from_string(text).render(**context)
    return text


def _manager_host(lab: LabSession) -> SSHHost:
    name = lab.manager.info()["Name"]
    return SSHHost(lab.plan.name, name, lab.provider.ssh_target(lab.provider.machine(lab.plan.name, name)))


STACK_LABEL = "com.docker.stack.namespace"  # what `docker stack deploy` labels a stack's services with


class _NumbersAsText(yaml.SafeLoader):
    """YAML 1.1 reads an unquoted ``53:53`` as the base-60 number 3233; ports are kept as written."""


for _tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
    _NumbersAsText.add_constructor(_tag, lambda loader, node: loader.construct_scalar(node))


def ingress_ports(text: str) -> list[tuple[str, str]]:
    """(service, published port) of every port the compose ``text`` publishes through ingress.

    Short syntax (``"8080:80"``, ``80``) always means ingress in a swarm; the long syntax's
    ``mode`` defaults to ingress. A file that does not parse yields nothing: the node's docker
    CLI reports it.
    """
    try:
        compose = yaml.load(text, Loader=_NumbersAsText)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError:
        return []
    found = []
    declared = compose.get("services") if isinstance(compose, dict) else None
    for name, service in (declared if isinstance(declared, dict) else {}).items():
        ports = service.get("ports") if isinstance(service, dict) else None
        for port in ports if isinstance(ports, list) else []:
            if isinstance(port, dict):
                if port.get("mode", "ingress") == "ingress":
                    found.append((name, str(port.get("published") or f"a random port for {port.get('target')}")))
            elif isinstance(port, (str, int)):
                found.append((name, _short_published(str(port))))
    return found


def _short_published(text: str) -> str:
    """The published part of a short-syntax port: ``8080:80/udp`` -> 8080; ``80`` publishes a random port."""
    spec = text.split("/", 1)[0]
    parts = spec.split(":")
    return parts[-2] if len(parts) >= 2 else f"a random port for {spec}"


def ingress_warning(lab: LabSession, stack: str, text: str) -> str | None:
    """The no-routing-mesh warning when the stack publishes ingress ports in a lab without IPVS."""
    ports = ingress_ports(text)
    if not ports or entrypoint.has_routing_mesh(lab.plan):
        return None
    listed = ", ".join(f"{service} {port}" for service, port in ports)
    return entrypoint.without_mesh(lab.plan, f"the ingress ports of stack {stack} ({listed})",
                                   "`mode: host` in the long port syntax", "`endpoint_mode: dnsrr` under `deploy:`")


def stack_services(lab: LabSession, stack: str) -> list:
    return lab.manager.services.list(filters={"label": f"{STACK_LABEL}={stack}"})


def deploy(lab: LabSession, stack: str, source: str, reporter: Reporter,
           options: services.WaitOptions = services.WaitOptions()) -> str:
    """Deploy (or update) stack ``stack`` from ``source`` and wait until its services converged.

    The docker CLI's output goes to ``reporter``; returns the outcome per service.
    """
    if not NAME_RE.fullmatch(stack):
        raise LabError(f"stack name {stack!r} is invalid: lower-case letters, digits, '-' and '_'")
    text = compose_text(lab, source)
    warning = ingress_warning(lab, stack, text)
    if warning:
        reporter.warn(warning)
    seen = converge.task_ids(lab.manager, [s.id for s in stack_services(lab, stack)])
    host = _manager_host(lab)
    try:
        remote = f"/tmp/swarmdeck-stack-{stack}.yml"
        host.put(text.encode(), remote)
        output = check(host, f"docker stack deploy --prune -c {remote} {shlex.quote(stack)}",
                       hint="the compose file is checked by the node's docker CLI; its message is above")
    finally:
        host.close()
    for line in output.strip().splitlines():
        reporter.info(line)
    if options.detach:
        return f"stack {stack} deployed; not waiting (--detach)"
    watches = [converge.watch_for(lab.plan, s.name, seen=seen) for s in stack_services(lab, stack)]
    if not watches:
        return f"stack {stack} deployed: it has no services"
    done = converge.wait(lab.manager, watches, reporter, timeout=options.timeout, pace=lab.plan.pace)
    return f"stack {stack} deployed: " + "; ".join(f"{p.service} {services.outcome(p)}" for p in done)


def remove(lab: LabSession, stack: str) -> str:
    host = _manager_host(lab)
    try:
        listed = check(host, "docker stack ls --format '{{.Name}}'").split()
        if stack not in listed:
            raise LabError(f"there is no stack {stack!r} (stacks: {', '.join(listed) or 'none'})")
        return check(host, f"docker stack rm {shlex.quote(stack)}")
    finally:
        host.close()
