"""The node's hostname is its lab name (Swarm names nodes after it)."""

from __future__ import annotations

import shlex

from provision.remote.host import Host, check


def ensure_hostname(host: Host, name: str) -> bool:
    if check(host, "hostname").strip() == name:
        return False
    quoted = shlex.quote(name)
    check(host, f"hostname {quoted} && echo {quoted} > /etc/hostname")
    return True
