"""The Provider interface: the same method set for every backend (as in kind).

A provider creates and finds machines; it knows nothing of Swarm. Everything it
creates carries the lab's labels, so ``destroy`` and ``list`` work from the
backend's own records, not from memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from provision import hints
from provision.errors import ProviderError
from provision.ledger import Ledger
from provision.parallel import fan_out
from provision.plan import LabPlan, Machine, NodePlan
from provision.progress import Reporter
from provision.remote.node_files import File
from provision.spec.model import LabSpec


@dataclass(frozen=True)
class Capabilities:
    """What a backend's machines can do. Callers decide by these, never by a provider's name."""

    boot_timeout: float  # seconds until a new or restarted machine answers SSH
    own_host_keys: bool = True  # machines boot with swarmdeck's host keys (else learnt on first use)
    adds_machines: bool = True  # lab.add can create a machine (existing hosts cannot be made)
    console: bool = False  # a command channel besides SSH (``console``), which works during a partition
    partition: bool = True  # a machine can be cut off the lab network and healed (``disconnect``)
    power: str = "machine"  # what lab.stop/start/kill act on: the "machine", or only its "engine" (existing hosts)
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
    when nothing: anything else is a change), and each node is reported. Every node is
    attempted; a failure names each node that failed (provision.parallel)."""
    outcomes = fan_out(plan.nodes, ensure, name=lambda node: node.name, what=f"making the {kind}s")
    for node in plan.nodes:
        reporter.result(f"{kind} {node.name} {node.address} {outcomes[node.name]}", outcomes[node.name] != "running")


class Provider(Protocol):
    """Every backend has this method set (as kind's providers do); each lives in its own package
    (``providers/docker/``, ``libvirt/``, ``vagrant/``, ``ssh/``), made by ``get_provider``.
    A method a backend cannot honour raises ProviderError saying so; ``capabilities`` says
    beforehand which ones those are."""

    name: str
    capabilities: Capabilities

    def check(self) -> None:
        """Raise ProviderUnavailable with a fix-it hint when the backend cannot be used."""

    def prepare(self, reporter: Reporter, *, image_method: str = "auto", mirror: str | None = None) -> None:
        """Make what machines boot from ready (node image, VM image and box), before ``create``."""

    def stored_spec(self, lab: str) -> LabSpec | None:
        """The spec the lab was created with, as the backend recorded it (None: no such lab)."""

    def labs(self) -> list[str]:
        """Names of the labs this backend holds."""

    def resolve(self, spec: LabSpec) -> LabPlan:
        """Resolve the spec's subnet and MTU against the backend and validate it."""

    def ensure_network(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        """Create the lab network (and its per-node reservations) if missing; True if it changed.
        Raises SubnetTaken when the backend finds the subnet in use (see provision.machines.lab_network)."""

    def create(self, plan: LabPlan, first_boot: FirstBoot, reporter: Reporter,
               ledger: Ledger | None = None) -> list[Machine]:
        """Create and start what is missing (idempotent); return every machine. Whatever it
        creates is recorded in ``ledger`` first, with how to remove it (provision.ledger)."""

    def list(self, lab: str) -> list[Machine]:
        """The lab's machines, rediscovered from the backend."""

    def machine(self, lab: str, node: str) -> Machine:
        """One machine of the lab; ProviderError naming the lab's nodes when it has none."""

    def start(self, machine: Machine) -> None:
        """Power on, or resume a paused machine."""

    def stop(self, machine: Machine) -> None:
        """Clean shutdown: the machine's engine stops first."""

    def kill(self, machine: Machine) -> None:
        """Hard power-off, like pulling the cord."""

    def pause(self, machine: Machine) -> None:
        """Freeze the machine (it stays up but answers nothing); ``start`` resumes it."""

    def remove(self, machine: Machine) -> None:
        """Remove one machine and its storage (the lab's other resources stay)."""

    def destroy(self, lab: str) -> dict[str, int]:
        """Remove every resource of ``lab``; no error when nothing is left. Returns counts."""

    def ssh_target(self, machine: Machine) -> SSHTarget:
        """Where swarmdeck logs in to the machine as root with the lab key."""

    def disconnect(self, machine: Machine) -> None:
        """Cut the machine off the lab network; it keeps running (``capabilities.partition``)."""

    def reconnect(self, machine: Machine) -> None:
        """Heal a partition: the machine is back on the lab network at its own address."""

    def console(self, machine: Machine, command: str) -> tuple[int, str]:
        """Run ``command`` on the machine without its network (``capabilities.console``)."""

    def ensure_load_balancer(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        """Run the lab's load balancer where the lab has no routing mesh; True if it changed."""
