"""ssh provider: existing machines (docker-machine's ``generic`` driver).

The lab's hosts come from the spec's inventory (``hosts: {node: {address, user, port,
key}}``). swarmdeck does not own these machines: ``create`` adopts them (host key learnt
on first use, the lab key authorized for root, see ``provision.adopt``) and host setup
installs and configures the Docker engine; ``stop``/``kill``/``pause`` act on the engine,
not on the power; ``destroy`` releases them (swarm left, lab config removed), it never
deletes anything else.
"""

from __future__ import annotations

import socket

from provision import state
from provision.errors import HostUnreachable, ProviderError, SpecError
from provision.ledger import Ledger
from provision.plan import RUNNING, STOPPED, LabPlan, Machine, NodePlan, plan
from provision.progress import Reporter
from provision.providers.base import (
    Capabilities,
    FirstBoot,
    SSHTarget,
    ensure_nodes,
    find_machine,
    no_console,
)
from provision.remote import adopt, keys
from provision.remote.host import SSHHost, check
from provision.spec import model as specs
from provision.spec import validation

REACH_TIMEOUT = 3


class SSHProvider:
    name = "ssh"
    # the engine may be installed first; swarmdeck neither owns these machines nor their network
    capabilities = Capabilities(boot_timeout=120, own_host_keys=False, adds_machines=False, partition=False,
                                power="engine")

    def __init__(self, lab: str | None = None):
        self.lab = lab

    def check(self) -> None:
        pass  # nothing to reach before the hosts themselves

    def prepare(self, reporter: Reporter, *, image_method: str = "auto", mirror: str | None = None) -> None:
        pass  # no image: the machines exist

    def stored_spec(self, lab: str) -> specs.LabSpec | None:
        return state.read_created_spec(lab) if state.read_provider(lab) == self.name else None

    def resolve(self, spec: specs.LabSpec) -> LabPlan:
        validation.validate(spec)
        if spec.network.subnet != specs.AUTO:
            raise SpecError([f"network.subnet {spec.network.subnet} cannot be applied to existing machines"],
                            hint="leave network.subnet at auto: their addresses come from hosts")
        return _plan(spec)

    def ensure_network(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        return False  # the machines are on their own networks already

    def create(self, plan: LabPlan, first_boot: FirstBoot, reporter: Reporter,
               ledger: Ledger | None = None) -> list[Machine]:
        ledger = ledger or Ledger()
        ensure_nodes(plan, lambda node: self._adopt(plan, node, ledger), reporter, "host")
        return self.list(plan.name)

    def _adopt(self, plan: LabPlan, node: NodePlan, ledger: Ledger) -> str:
        host = plan.spec.hosts[node.name]
        target = SSHTarget(host.address, host.port, host.user)
        if node.name not in keys.read_known_hosts(plan.name):
            # not the lab's yet: a rollback releases it as lab.down would (these machines are
            # not swarmdeck's to delete, only to give back as they were)
            machine = Machine(lab=plan.name, name=node.name, role=node.role, index=node.index, address=node.address,
                              state=RUNNING, provider=self.name, id=node.address)
            ledger.record(f"the lab's setup on host {node.name} ({host.address})",
                          lambda: self._release_if_adopted(machine))
        return adopt.adopt(plan.name, node.name, target, adopt.user_key(host.key))

    def list(self, lab: str) -> list[Machine]:
        """The hosts of the lab's inventory now (lab.remove takes one out), reachable or not."""
        spec = state.current_spec(lab, self.stored_spec(lab))
        if spec is None:
            return []
        return [Machine(lab=lab, name=n.name, role=n.role, index=n.index, address=n.address,
                        state=RUNNING if _reachable(n.address, spec.hosts[n.name].port) else STOPPED,
                        provider=self.name, id=n.address) for n in _plan(spec).nodes]

    def machine(self, lab: str, node: str) -> Machine:
        return find_machine(self.list(lab), lab, node, f"host {node!r}")

    # The power of these machines is not swarmdeck's: the failure drills act on the engine.
    def start(self, machine: Machine) -> None:
        self._engine(machine, "systemctl kill --signal=SIGCONT docker.service 2>/dev/null; systemctl start docker")

    def stop(self, machine: Machine) -> None:
        self._engine(machine, "systemctl stop docker.service docker.socket")

    def kill(self, machine: Machine) -> None:
        # SIGKILL, then stop: Debian's unit restarts a dead dockerd after 2 s (Restart=always)
        self._engine(machine, "systemctl kill --signal=SIGKILL docker.service; systemctl stop docker.service")

    def pause(self, machine: Machine) -> None:
        self._engine(machine, "systemctl kill --signal=SIGSTOP docker.service")

    def _engine(self, machine: Machine, command: str) -> None:
        host = self._host(machine)
        try:
            check(host, command, hint="these commands need a systemd host")
        finally:
            host.close()

    def remove(self, machine: Machine) -> None:
        self._release(machine)
        keys.remove_host_key(machine.lab, machine.name)

    def destroy(self, lab: str) -> dict[str, int]:
        counts = {"hosts released": 0, "hosts not reached (left as they are)": 0}
        for machine in self.list(lab):
            try:
                self._release(machine)
                counts["hosts released"] += 1
            except HostUnreachable:
                counts["hosts not reached (left as they are)"] += 1
        return counts

    def _release_if_adopted(self, machine: Machine) -> None:
        if machine.name in keys.read_known_hosts(machine.lab):  # else nothing of the lab reached it
            self._release(machine)

    def _release(self, machine: Machine) -> None:
        if not keys.known_hosts_path(machine.lab).is_file():
            raise HostUnreachable(f"{machine.name}: never adopted (no host key recorded)")
        host = self._host(machine)
        try:
            adopt.release(host, machine.lab, keys.lab_key(machine.lab).public_line)
        finally:
            host.close()

    def labs(self) -> list[str]:
        return [lab for lab in state.known_labs() if state.read_provider(lab) == self.name]

    def ssh_target(self, machine: Machine) -> SSHTarget:
        spec = self.stored_spec(machine.lab)
        port = spec.hosts[machine.name].port if spec and machine.name in spec.hosts else 22
        return SSHTarget(machine.address, port, "root")

    def _host(self, machine: Machine) -> SSHHost:
        return SSHHost(machine.lab, machine.name, self.ssh_target(machine))

    def disconnect(self, machine: Machine) -> None:
        raise ProviderError("provider ssh cannot cut an existing machine's network",
                            hint="use a libvirt or docker lab for partition drills")

    def reconnect(self, machine: Machine) -> None:
        self.disconnect(machine)

    def console(self, machine: Machine, command: str) -> tuple[int, str]:
        raise no_console(self.name)

    def ensure_load_balancer(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        return False  # their own kernels: the routing mesh is the entry point


def _plan(spec: specs.LabSpec) -> LabPlan:
    """Existing machines keep their own addresses: no lab subnet."""
    return plan(spec, "", spec.network.mtu or 1500, {name: h.address for name, h in spec.hosts.items()})


def _reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=REACH_TIMEOUT):
            return True
    except OSError:
        return False
