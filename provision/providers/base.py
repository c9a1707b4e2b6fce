"""The Provider interface: the same method set for every backend (as in kind).

A provider creates and finds machines; it knows nothing of Swarm. Everything it
creates carries the lab's labels, so ``destroy`` and ``list`` work from the
backend's own records, not from memory.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Protocol

from provision import hints
from provision.errors import ProviderError
from provision.ledger import Ledger
from provision.plan import LabPlan, Machine, NodePlan
from provision.progress import Reporter
from provision.remote.node_files import File
from provision.spec.model import LabSpec


@dataclass(frozen=True)
class Capabilities:
    systemd: bool  # the engine is a systemd service (else runit's `sv`)
    firewall: bool  # hosts may run a firewall to open
    engine_preinstalled: bool  # the image ships the Docker engine
    ipvs: bool | None  # the kernel has IPVS (routing mesh); None: unknown until probed
    own_host_keys: bool = True  # machines boot with swarmdeck's host keys (else learnt on first use)
    node_memory_mb: int = 0  # this machine's memory each node takes (0: the machines run elsewhere)


@dataclass(frozen=True)
class SSHTarget:
    host: str
    port: int = 22
    user: str = "root"


FirstBoot = Callable[[NodePlan], list[File]]


def find_machine(machines: list[Machine], lab: str, node: str, what: str) -> Machine:
    """The machine called ``node`` among ``machines``; else an error naming ``what`` is missing."""
    for found in machines:
        if found.name == node:
            return found
    raise ProviderError(f"lab {lab!r} has no {what}", hint=f"{hints.command('lab.status', lab=lab)} lists its nodes")


def no_console(provider: str) -> ProviderError:
    """The error of providers whose machines are reached by SSH only (no ``docker exec``)."""
    return ProviderError(f"the {provider} provider has no command channel besides SSH",
                         hint="this demo needs the docker provider (`--provider docker`)")


def ensure_nodes(plan: LabPlan, ensure: Callable[[NodePlan], str], reporter: Reporter, kind: str) -> None:
    """Run ``ensure`` on every node of ``plan`` in parallel; it says what it did ("running"
    when nothing: anything else is a change), and each node is reported."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(ensure, plan.nodes))
    for node, outcome in zip(plan.nodes, outcomes):
        reporter.result(f"{kind} {node.name} {node.address} {outcome}", outcome != "running")


class Provider(Protocol):
    name: str
    capabilities: Capabilities

    def check(self) -> None:
        """Raise ProviderUnavailable with a fix-it hint when the backend cannot be used."""

    def resolve(self, spec: LabSpec) -> LabPlan:
        """Resolve the spec's subnet and MTU against the backend and validate it."""

    def ensure_network(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        """Create the lab network (and its per-node reservations) if missing; True if it changed.
        Raises SubnetTaken when the backend finds the subnet in use (see provision.api.lab_network)."""

    def create(self, plan: LabPlan, first_boot: FirstBoot, reporter: Reporter,
               ledger: Ledger | None = None) -> list[Machine]:
        """Create and start what is missing (idempotent); return every machine. Whatever it
        creates is recorded in ``ledger`` first, with how to remove it (provision.ledger)."""

    def list(self, lab: str) -> list[Machine]:
        """The lab's machines, rediscovered from the backend."""

    def start(self, machine: Machine) -> None: ...

    def stop(self, machine: Machine) -> None: ...

    def kill(self, machine: Machine) -> None: ...

    def pause(self, machine: Machine) -> None:
        """Freeze the machine (it stays up but answers nothing); ``start`` resumes it."""

    def remove(self, machine: Machine) -> None:
        """Remove one machine and its storage (the lab's other resources stay)."""

    def destroy(self, lab: str) -> dict[str, int]:
        """Remove every resource of ``lab``; no error when nothing is left. Returns counts."""

    def labs(self) -> list[str]:
        """Names of the labs this backend holds."""

    def ssh_target(self, machine: Machine) -> SSHTarget: ...

    def ensure_load_balancer(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        """Run the lab's load balancer where the lab has no routing mesh; True if it changed."""
