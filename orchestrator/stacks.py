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
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator import converge, meshless, services, swarm
from orchestrator.session import LabSession
from provision import state
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


def node_facts(lab: LabSession) -> list[meshless.NodeFacts]:
    """The nodes a task may be placed on now (ready and active), as placement constraints see them."""
    found = []
    for node in lab.manager.nodes.list():
        attrs = node.attrs
        if attrs["Status"]["State"] != "ready" or attrs["Spec"].get("Availability") != "active":
            continue
        found.append(meshless.NodeFacts(attrs["Description"]["Hostname"], attrs["Spec"]["Role"],
                                        dict(attrs["Spec"].get("Labels") or {})))
    return found


@dataclass(frozen=True)
class Prepared:
    """A stack's compose file as it will be deployed on this lab, kept in the lab's state folder."""

    text: str
    path: Path
    changes: list[meshless.Change]


def prepare(lab: LabSession, stack: str, source: str, reporter: Reporter) -> Prepared:
    """The compose file of ``source`` for this lab: unchanged where the routing mesh exists, else
    rewritten (orchestrator/meshless.py) with its published ports routed by the lab's load
    balancer. Each change is reported on one line; the file is kept at ``stacks/STACK.yml``."""
    if not NAME_RE.fullmatch(stack):
        raise LabError(f"stack name {stack!r} is invalid: lower-case letters, digits, '-' and '_'")
    text = compose_text(lab, source)
    changes: list[meshless.Change] = []
    if not entrypoint.has_routing_mesh(lab.plan):
        result = meshless.rewrite(text, node_facts(lab))
        text, changes = result.text, result.changes
        reporter.info(f"lab {lab.plan.name} has no routing mesh (no IPVS): the stack is deployed rewritten, "
                      f"{len(changes)} change(s):" if changes else
                      f"lab {lab.plan.name} has no routing mesh; the stack needs no change for it")
        for change in changes:
            reporter.info(f"  {change.line()}")
        # a shipped stack publishes swarmdeck/web on 8080/8081, which the load balancer already
        # forwards with its health check; any other file's ports get their own TCP routes
        ports = [] if source in shipped() else sorted({route.port for route in result.routes})
        set_routes(lab, stack, ports, reporter)
    path = state.write_stack_file(lab.plan.name, stack, text)
    if changes:
        reporter.info(f"the file as deployed: {path}")
    return Prepared(text, path, changes)


def set_routes(lab: LabSession, stack: str, ports: list[int], reporter: Reporter) -> None:
    """Record ``stack``'s routed ports and have the lab's load balancer apply them."""
    if state.write_routes(lab.plan.name, stack, ports) and lab.provider.ensure_load_balancer(lab.plan):
        reporter.info(f"load balancer {entrypoint.lb_address(lab.plan)}: "
                      + (f"routes ports {', '.join(map(str, ports))} for stack {stack}" if ports
                         else f"no longer routes ports for stack {stack}"))


def stack_services(lab: LabSession, stack: str) -> list:
    return lab.manager.services.list(filters={"label": f"{STACK_LABEL}={stack}"})


def deploy(lab: LabSession, stack: str, source: str, reporter: Reporter,
           options: services.WaitOptions = services.WaitOptions()) -> str:
    """Deploy (or update) stack ``stack`` from ``source`` and wait until its services converged.

    The docker CLI's output goes to ``reporter``; returns the outcome per service.
    """
    text = prepare(lab, stack, source, reporter).text
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


def remove(lab: LabSession, stack: str, reporter: Reporter, timeout: float = 120) -> str:
    """Remove the stack and wait until its tasks' containers and its networks are gone (the docker
    CLI returns before), then drop its load-balancer routes."""
    host = _manager_host(lab)
    try:
        listed = check(host, "docker stack ls --format '{{.Name}}'").split()
        if stack not in listed:
            if stack in state.read_routes(lab.plan.name):  # removed by the real `docker stack rm`
                wait_until_gone(lab, stack, timeout)
                set_routes(lab, stack, [], reporter)
                return f"stack {stack} was already removed; its load-balancer routes are now gone too"
            raise LabError(f"there is no stack {stack!r} (stacks: {', '.join(listed) or 'none'})")
        output = check(host, f"docker stack rm {shlex.quote(stack)}")
    finally:
        host.close()
    for line in output.strip().splitlines():
        reporter.info(line)
    wait_until_gone(lab, stack, timeout)
    set_routes(lab, stack, [], reporter)
    return f"stack {stack} removed: no service, task or network of it is left"


def leftovers(lab: LabSession, stack: str) -> list[str]:
    """What of ``stack`` still exists: services, task containers (running or not) on any node, networks."""
    label = {"label": f"{STACK_LABEL}={stack}"}
    found = [f"service {s.name}" for s in lab.manager.services.list(filters=label)]
    found += [f"network {n['Name']}" for n in lab.manager.api.networks(filters=label)]  # one call: no race
    for node in lab.plan.nodes:
        try:
            containers = lab.clients[node.name].containers.list(all=True, filters=label)  # stopped ones hold volumes
        except Exception:  # noqa: BLE001 - a node that does not answer holds nothing we can wait for
            continue
        found += [f"container {c.name} on {node.name}" for c in containers]
    return found


def wait_until_gone(lab: LabSession, stack: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout * lab.plan.pace
    while True:
        left = leftovers(lab, stack)
        if not left:
            return
        if time.monotonic() > deadline:
            raise LabError(f"stack {stack} was removed but after {timeout:.0f}s these are left: {', '.join(left)}",
                           hint="a node that is down keeps its containers until it is back; `docker stack ps` "
                                "shows the tasks")
        time.sleep(0.5)
