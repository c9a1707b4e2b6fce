"""Engine labels and resource names: how a lab's resources are found again.

Every container, network and volume a lab creates carries ``LAB``; ``lab.down``
removes exactly what carries its lab name, and nothing else.
"""

from __future__ import annotations

PREFIX = "io.swarmdeck"
LAB = f"{PREFIX}.lab"
KIND = f"{PREFIX}.kind"  # node | network | volume
NODE = f"{PREFIX}.node"
ROLE = f"{PREFIX}.role"
INDEX = f"{PREFIX}.index"
SPEC = f"{PREFIX}.spec"  # the lab's spec as JSON, on the lab networks swarmdeck 0.1 made (read once)
SESSION = f"{PREFIX}.session"  # set by the test suite to sweep leftovers


def lab_filter(lab: str, kind: str | None = None) -> dict[str, list[str]]:
    wanted = [f"{LAB}={lab}"] + ([f"{KIND}={kind}"] if kind else [])
    return {"label": wanted}


def container_name(lab: str, node: str) -> str:
    return f"{lab}-{node}"


def network_name(lab: str) -> str:
    return f"{lab}-net"


def volume_name(lab: str, node: str) -> str:
    return f"{lab}-{node}-docker"
