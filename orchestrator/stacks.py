"""Stacks: compose files deployed with `docker stack deploy` on a manager, over SSH.

The SDK has no stack API; the node's own docker CLI reads every `deploy:` key the
tutorials use. Shipped stacks live in ``templates/stacks/NAME.yml.j2`` and are
rendered with the lab's registry and what its kernel offers.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from orchestrator import swarm
from orchestrator.session import LabSession
from provision import ipvs
from provision.errors import LabError
from provision.host import SSHHost, check
from provision.paths import TEMPLATES
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
        mesh = ipvs.available()
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


def deploy(lab: LabSession, stack: str, source: str) -> str:
    """Deploy (or update) stack ``stack`` from ``source``; returns the CLI's output."""
    if not NAME_RE.fullmatch(stack):
        raise LabError(f"stack name {stack!r} is invalid: lower-case letters, digits, '-' and '_'")
    text = compose_text(lab, source)
    host = _manager_host(lab)
    try:
        remote = f"/tmp/swarmdeck-stack-{stack}.yml"
        host.put(text.encode(), remote)
        return check(host, f"docker stack deploy --prune -c {remote} {shlex.quote(stack)}",
                     hint="the compose file is checked by the node's docker CLI; its message is above")
    finally:
        host.close()


def remove(lab: LabSession, stack: str) -> str:
    host = _manager_host(lab)
    try:
        listed = check(host, "docker stack ls --format '{{.Name}}'").split()
        if stack not in listed:
            raise LabError(f"there is no stack {stack!r} (stacks: {', '.join(listed) or 'none'})")
        return check(host, f"docker stack rm {shlex.quote(stack)}")
    finally:
        host.close()
