"""Bringing a lab's machines up and reaching them, the same for every provider: the lab
network under this machine's subnet lock, the machines created (recorded in a ledger, so a
failed run removes exactly what it made), their host keys, SSH and the engines awaited, and
host setup over SSH."""

from __future__ import annotations

import dataclasses

import requests

from provision import doctor, hints, state
from provision.errors import (
    HostUnreachable,
    LabError,
    ProviderError,
    SubnetTaken,
)
from provision.ledger import Ledger
from provision.parallel import fan_out
from provision.plan import RUNNING, LabPlan, Machine
from provision.progress import Reporter
from provision.providers.base import Provider
from provision.remote import node_files
from provision.remote.host import Host, SSHHost
from provision.spec import model as specs
from provision.wait import NotYet, wait_until


def lab_network(spec: specs.LabSpec, provider: Provider, reporter: Reporter, ledger: Ledger) -> LabPlan:
    """The lab's plan, its network made: the subnet is chosen and the network created while
    this machine's ``subnets`` lock is held, so two labs created at once by swarmdeck never
    pick the same first free /24.

    A network made by something that takes no such lock (another SWARMDECK_HOME, an older
    swarmdeck, `docker network create`) can still take the subnet between the choice and
    the creation: then the next free subnet is tried, once.

    Raises:
        SubnetTaken: the subnet was given in the spec and is taken (naming the lab network
            and the one holding the subnet).
        ProviderError: the next free subnet was taken too (naming every network in the way).
    """
    with state.machine_lock("subnets", on_wait=reporter.info):
        plan = provider.resolve(spec)
        try:
            changed = provider.ensure_network(plan, ledger)
        except SubnetTaken as taken:
            if spec.network.subnet != specs.AUTO:
                raise
            retry = provider.resolve(spec)  # the network that took it is listed now
            if retry.subnet == plan.subnet:
                raise
            reporter.warn(f"{taken}: trying the next free subnet, {retry.subnet}")
            try:
                changed = provider.ensure_network(retry, ledger)
            except SubnetTaken as again:
                raise ProviderError(f"the lab network {again.network} found no free subnet: {taken.overlap()}; "
                                    f"then {again.overlap()}", hint=SubnetTaken.HINT) from again
            plan = retry
    if plan.subnet:  # machines on their own networks (provider ssh) have no lab network
        reporter.result(f"lab network {plan.subnet}", changed)
    state.write_created_spec(dataclasses.replace(
        spec, network=specs.NetworkSpec(plan.subnet or specs.AUTO, spec.network.mtu)))  # found again from now on
    return plan


def warn_about_memory(plan: LabPlan, provider: Provider, reporter: Reporter, nodes: list[str] | None = None) -> None:
    """Warn (never refuse: the estimate is rough) when the nodes about to start (of ``nodes``,
    else of the plan's, those not running yet) need more memory than this machine has available."""
    per_node = provider.capabilities.node_memory_mb
    candidates = nodes or [n.name for n in plan.nodes]
    if not doctor.memory_warning(len(candidates), per_node):
        return  # they all fit: no need to ask the backend which run already
    running = {m.name for m in provider.list(plan.name) if m.state == RUNNING}
    warning = doctor.memory_warning(len([name for name in candidates if name not in running]), per_node)
    if warning:
        reporter.warn(warning)


def known_hosts(plan: LabPlan, provider: Provider) -> None:
    """The lab's known_hosts from the host keys swarmdeck gives its machines; providers that
    adopt machines record each key on first use instead (``provision.adopt``)."""
    if provider.capabilities.own_host_keys:
        node_files.known_hosts(plan)


def open_hosts(plan: LabPlan, provider: Provider, machines: list[Machine]) -> dict[str, Host]:
    """SSH hosts for the running machines, once each answers."""
    hosts: dict[str, Host] = {
        m.name: SSHHost(plan.name, m.name, provider.ssh_target(m)) for m in machines if m.state == RUNNING
    }
    timeout = provider.capabilities.boot_timeout
    fan_out(hosts.values(), lambda host: wait_for_ssh(host, timeout), name=lambda host: host.name,
            what="waiting for SSH")
    return hosts


def wait_for_ssh(host: Host, timeout: float) -> None:
    def answers() -> bool:
        try:
            return host.run("true").ok
        except HostUnreachable as err:
            raise NotYet(str(err)) from err

    wait_until(answers, timeout=timeout, interval=0.3, describe=f"SSH on {host.name}",
               hint=f"the node may have failed to boot: {hints.command('lab.status')}, `docker logs` of its container")


def wait_for_engines(plan: LabPlan, clients, names: list[str], timeout: float) -> None:
    """Wait until the TLS engine API of each named node answers."""

    def answers(name: str) -> bool:
        try:
            return clients[name].ping()
        except requests.exceptions.SSLError as err:  # will not heal by waiting
            raise LabError(f"TLS to the engine of {name} failed: {err}",
                           hint=f"the lab's certificates do not match: {hints.command('lab.down', lab=plan.name)} "
                           "and up again") from err

    for name in names:
        wait_until(lambda: answers(name), timeout=timeout, interval=0.3,
                   describe=f"the Docker engine of {name} on {plan.node(name).address}:2376",
                   hint=f"see /var/log/dockerd.log on the node ({hints.command('lab.ssh', 'NODE')})")


def close_hosts(hosts: dict[str, Host]) -> None:
    for host in hosts.values():
        host.close()

