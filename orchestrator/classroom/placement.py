"""Where each lab of a class lives: on one host, chosen by free capacity (memory).

A host is a Docker engine with a capacity: the local engine (``local_host``) unless the class
has a hosts inventory of remote engines (hosts.py). ``place`` spreads the labs over them: each lab wholly on one host, the one with the most
memory left after the labs already placed there."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from provision.doctor import NODE_MEMORY_MB
from provision.errors import LabError
from provision.spec.model import LabSpec, memory_bytes

MiB = 1024 ** 2
HOST_RESERVE_MB = 2048  # left to the host itself: its engine, the instructor's tools, page cache
DOOR_MB = 16  # a lab's SSH door (sshd only)


@dataclass(frozen=True)
class ClassHost:
    name: str  # "local", or the inventory's name of a remote engine
    engine: dict[str, str] | None  # DOCKER_* settings; None: the engine this environment names
    capacity_mb: int  # memory the class may use there
    address: str = ""  # where students reach the doors of its labs ("": the class's address)


@dataclass
class Placement:
    host: ClassHost
    labs: list[str] = field(default_factory=list)
    used_mb: int = 0

    @property
    def free_mb(self) -> int:
        return self.host.capacity_mb - self.used_mb


def machine_memory_mb() -> int:
    """This machine's memory (MiB), from the kernel."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MiB


def local_host(capacity_mb: int | None = None) -> ClassHost:
    mb = capacity_mb if capacity_mb is not None else machine_memory_mb() - HOST_RESERVE_MB
    return ClassHost("local", None, max(0, mb))


def lab_memory_mb(spec: LabSpec) -> int:
    """What one lab of ``spec`` may take: its nodes' memory limits (or, without one, what an idle
    container node uses), its door and its load balancer."""
    per_node = (memory_bytes(spec.limits.memory) or 0) // MiB or NODE_MEMORY_MB
    return per_node * len(spec.nodes) + DOOR_MB + NODE_MEMORY_MB // 4


def place(labs: list[str], need_mb: int, hosts: list[ClassHost], already: dict[str, str] | None = None
          ) -> dict[str, ClassHost]:
    """A host for each lab of ``labs``; a lab in ``already`` (lab -> host name) stays where it is.

    Raises:
        LabError: when a lab fits on no host, saying how much is free where.
    """
    already = already or {}
    by_name = {h.name: Placement(h) for h in hosts}
    chosen: dict[str, ClassHost] = {}
    for lab, host_name in already.items():
        if host_name in by_name:
            by_name[host_name].used_mb += need_mb
    for lab in labs:
        if lab in already and already[lab] in by_name:
            chosen[lab] = by_name[already[lab]].host
            continue
        best = max(by_name.values(), key=lambda p: p.free_mb, default=None)
        if best is None or best.free_mb < need_mb:
            free = ", ".join(f"{p.host.name}: {p.free_mb} MiB free" for p in by_name.values()) or "no hosts"
            raise LabError(f"lab {lab} needs {need_mb} MiB and no host has that much left ({free})",
                           hint="lower limits.memory in the class's lab spec, or add a host")
        best.labs.append(lab)
        best.used_mb += need_mb
        chosen[lab] = best.host
    return chosen
