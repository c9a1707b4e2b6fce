"""Fault injection, in one place: kill, stop, pause a node; start it again."""

from __future__ import annotations

from orchestrator.session import LabSession
from provision import api
from provision.setup.engine import wait_for_engine
from provision.setup.hosts_file import ensure_hosts_block


def kill(lab: LabSession, node: str) -> None:
    """Hard power-off (SIGKILL to the node's init): no clean shutdown, like pulling the cord."""
    lab.provider.kill(lab.provider.machine(lab.plan.name, node))


def stop(lab: LabSession, node: str) -> None:
    """Clean shutdown: the node's engine stops first."""
    lab.provider.stop(lab.provider.machine(lab.plan.name, node))


def start(lab: LabSession, node: str) -> None:
    """Power on again; wait for SSH and the engine, and restore the /etc/hosts block."""
    lab.provider.start(lab.provider.machine(lab.plan.name, node))
    machine = lab.provider.machine(lab.plan.name, node)
    hosts = api.open_hosts(lab.plan, lab.provider, [machine])
    try:
        ensure_hosts_block(hosts[node], lab.plan.name, {n.name: n.address for n in lab.plan.nodes})
        wait_for_engine(hosts[node])
    finally:
        api.close_hosts(hosts)
