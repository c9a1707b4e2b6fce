"""Whether the nodes' kernel has IPVS, which Swarm's routing mesh and service VIPs need.

Container nodes share this machine's kernel. Without IPVS, overlay networks,
``--endpoint-mode dnsrr`` and host-mode ports still work.
"""

from __future__ import annotations

import platform
from pathlib import Path


def module_present(module: str, release: str | None = None) -> bool:
    """Loaded, built in, or loadable from /lib/modules."""
    if Path(f"/sys/module/{module}").exists():
        return True
    base = Path("/lib/modules") / (release or platform.release())
    builtin = base / "modules.builtin"
    if builtin.exists() and f"/{module}.ko" in builtin.read_text():
        return True
    return any(base.rglob(f"{module}.ko*")) if base.exists() else False


def available() -> bool:
    return module_present("ip_vs")
