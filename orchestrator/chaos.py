"""Fault injection, in one place: kill, stop, pause, start a node; cut it off the network and heal."""

from __future__ import annotations

from orchestrator.session import LabSession
from provision import machines
from provision.setup.engine_config import ENGINE_WAIT, wait_for_engine
from provision.setup.hosts_file import ensure_hosts_block


def kill(lab: LabSession, node: str) -> None:
    """Hard power-off (SIGKILL to the node's init): no clean shutdown, like pulling the cord."""
    lab.provider.kill(lab.provider.machine(lab.plan.name, node))


def stop(lab: LabSession, node: str) -> None:
    """Clean shutdown: the node's engine stops first."""
    lab.provider.stop(lab.provider.machine(lab.plan.name, node))


def pause(lab: LabSession, node: str) -> None:
    """Freeze the node: it stays up but answers nothing (a hung machine). ``start`` resumes it."""
    lab.provider.pause(lab.provider.machine(lab.plan.name, node))


def start(lab: LabSession, node: str) -> None:
    """Power on (or resume) again; wait for SSH and the engine (as long as the lab's pace
    says: emulated VMs boot slowly), and restore the /etc/hosts block."""
    lab.provider.start(lab.provider.machine(lab.plan.name, node))
    machine = lab.provider.machine(lab.plan.name, node)
    hosts = machines.open_hosts(lab.plan, lab.provider, [machine])
    try:
        ensure_hosts_block(hosts[node], lab.plan.name, {n.name: n.address for n in lab.plan.nodes})
        wait_for_engine(hosts[node], lab.plan.scaled(ENGINE_WAIT))
    finally:
        machines.close_hosts(hosts)


def partition(lab: LabSession, node: str) -> None:
    """Cut ``node`` off the lab network; it keeps running, unseen by the others."""
    lab.provider.disconnect(lab.provider.machine(lab.plan.name, node))


def heal(lab: LabSession, node: str) -> None:
    lab.provider.reconnect(lab.provider.machine(lab.plan.name, node))


def containers_of(lab: LabSession, node: str, service: str) -> int:
    """Running containers of ``service`` on ``node``, counted over the provider's console
    (which works during a partition, when the node's engine API is out of reach)."""
    command = f"docker ps -q --filter label=com.docker.swarm.service.name={service} | wc -l"
    code, output = lab.provider.console(lab.provider.machine(lab.plan.name, node), command)
    return int(output.strip() or 0) if code == 0 else 0
