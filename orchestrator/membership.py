"""Grow or shrink a running lab: ``lab.add NODE --role`` and ``lab.remove NODE``.

Adding creates only the new machine, sets up every running host again (the new one
fully; the others get the new name in their /etc/hosts block), joins it to the
swarm and puts it behind the lab's entry point. Removing drains the node, makes it
leave (a manager is demoted first, so Raft shrinks cleanly), removes its machine and
takes it out of every other host's /etc/hosts and of the entry point. The lab's spec
in its state folder is updated when re-running the same command can still finish
an interrupted run: before creating the new node, after removing the old one.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import docker.errors

from orchestrator import nodes, swarm
from orchestrator.clients import ClientPool
from orchestrator.create import ensure_entry_point
from orchestrator.session import LabSession, require_manager
from orchestrator.views import LabStatus, SwarmNode, lab_status, swarm_nodes
from provision import hints, inventory, machines, state
from provision.errors import LabError, SwarmError
from provision.ledger import Ledger, roll_back
from provision.plan import RUNNING, LabPlan
from provision.progress import Reporter
from provision.remote import keys, node_files, tls
from provision.setup import run_setup
from provision.spec import model as specs
from provision.spec import validation
from provision.wait import stop_helper_threads


def add_node(name: str, node: str, role: str, labels: dict[str, str], reporter: Reporter, *,
             image_method: str = "auto", mirror: str | None = None, wait: bool = True) -> LabStatus:
    """Create ``node`` with ``role``, set it up, join it; safe to re-run.

    Holds the lab's lock for the whole run. A failure removes what this run created (the
    machine and its storage, its keys and certificate, its swarm entry, its line in the
    lab's spec) and nothing else; other hosts' /etc/hosts keep its name until the next
    lab.up, lab.add or lab.remove sets them up again.
    """
    again = (node, "--role", role) if role != "worker" else (node,)
    with state.lab_change(name, "lab.add", reporter, wait=wait, args=again):
        provider, plan = inventory.existing_lab(name)
        if not provider.capabilities.adds_machines:
            raise LabError(f"lab {name!r} is made of existing machines: lab.add cannot create {node}",
                           hint=f"add the machine to nodes and hosts in lab.yaml, then {hints.command('lab.down')} and "
                                f"{hints.command('lab.up')} (or build a libvirt, vagrant or docker lab)")
        ledger = Ledger()
        try:
            return _add_node(provider, plan, node, role, labels, reporter, ledger, image_method, mirror)
        except BaseException as failure:
            if isinstance(failure, KeyboardInterrupt):
                stop_helper_threads()  # the node threads still waiting must not outlive the rollback
            roll_back(ledger, reporter, announce=f"lab.add failed: removing what it created for {node} in lab {name}",
                      resume=hints.command("lab.add", *again, lab=name), remove=hints.command("lab.remove", node, lab=name))
            raise


def _add_node(provider, plan: LabPlan, node: str, role: str, labels: dict[str, str], reporter: Reporter,
              ledger: Ledger, image_method: str, mirror: str | None) -> LabStatus:
    name = plan.name
    spec = with_node(plan.spec, node, role, labels)
    if spec != plan.spec:  # a new node (a re-run of an interrupted add finds it in the spec already)
        previous = plan.spec
        ledger.record(f"{node}'s entry in the lab's spec", lambda: inventory.record_spec(previous))
        ledger.record(f"the SSH host key and engine certificate of {node}", lambda: _forget_files(name, node))
    inventory.record_spec(spec)
    with reporter.step(f"machine {node} for lab {name}"):
        provider.prepare(reporter, image_method=image_method, mirror=mirror)
        plan = machines.lab_network(spec, provider, reporter, ledger)
        machines.warn_about_memory(plan, provider, reporter, [node])
        machines.known_hosts(plan, provider)
        new = plan.node(node)
        made = provider.create(dataclasses.replace(plan, nodes=(new,)), lambda n: node_files.files(plan, n),
                                   reporter, ledger)
    _set_up_running_hosts(plan, provider, made, reporter)
    with ClientPool(plan) as clients:
        machines.wait_for_engines(plan, clients, [node], timeout=provider.capabilities.boot_timeout)
        with reporter.step(f"{node} joins the swarm as {role}"):
            lab = LabSession(provider, plan, clients, require_manager(plan, clients, provider))
            if all(n.hostname != node for n in swarm_nodes(lab.manager)):
                ledger.record(f"{node}'s entry in the swarm", lambda: _leave_swarm(provider, plan, node))
            reporter.result(f"{node} joined as {role}", nodes.join(lab, node, role))
            if new.labels:
                node_id = nodes.find(lab.manager, node).id
                reporter.result(f"labels on {node}: {dict(new.labels)}",
                                swarm.ensure_labels(lab.manager, node_id, dict(new.labels)))
        ensure_entry_point(plan, provider, reporter, ledger)
        return lab_status(plan, provider.list(name), clients)


def _forget_files(lab: str, node: str) -> None:
    keys.remove_host_key(lab, node)
    tls.remove_node_certs(lab, node)


def _leave_swarm(provider, plan: LabPlan, node: str) -> None:
    """Take a node that joined in a failed lab.add out of the swarm again (before its machine goes)."""
    with ClientPool(plan) as clients:
        lab = LabSession(provider, plan, clients, require_manager(plan, clients, provider))
        if any(n.hostname == node for n in swarm_nodes(lab.manager)):
            nodes.leave(lab, node)


def remove_node(name: str, node: str, reporter: Reporter, *, wait: bool = True) -> LabStatus:
    """Drain ``node``, take it out of the swarm, remove its machine; safe to re-run. Holds
    the lab's lock for the whole run."""
    with state.lab_change(name, "lab.remove", reporter, wait=wait, args=(node,)):
        return _remove_node(name, node, reporter)


def _remove_node(name: str, node: str, reporter: Reporter) -> LabStatus:
    provider, plan = inventory.existing_lab(name)
    spec = without_node(plan, node)
    machine = next((m for m in provider.list(name) if m.name == node), None)
    with ClientPool(plan) as clients:
        lab = LabSession(provider, plan, clients, require_manager(plan, clients, provider))
        in_swarm = any(n.hostname == node for n in swarm_nodes(lab.manager))
        if in_swarm:
            _check_removable(lab, node)
            with reporter.step(f"{node} leaves the swarm"):
                try:
                    if machine is not None and machine.state == RUNNING:
                        moved = nodes.drain_and_wait(lab, node)
                        reporter.result(f"drained {node}: its {moved} task(s) run elsewhere", moved > 0)
                    nodes.leave(lab, node)
                except docker.errors.APIError as err:
                    raise _raft_error(node, err) from err
                reporter.result(f"{node} left and is off the node list", True)
    with reporter.step(f"removing machine {node}"):
        if machine is not None:
            provider.remove(machine)
        keys.remove_host_key(name, node)
        tls.remove_node_certs(name, node)
        reporter.result(f"machine {node} removed", machine is not None)
    inventory.record_spec(spec)
    plan = provider.resolve(spec)
    machines.known_hosts(plan, provider)
    _set_up_running_hosts(plan, provider, provider.list(name), reporter)
    ensure_entry_point(plan, provider, reporter)
    with ClientPool(plan) as clients:
        return lab_status(plan, provider.list(name), clients)


def with_node(spec: specs.LabSpec, node: str, role: str, labels: dict[str, str]) -> specs.LabSpec:
    """``spec`` with ``node`` appended in the next free address slot (unchanged when the lab
    has that node with that role already: a re-run finishes an interrupted add).

    Raises:
        LabError: the lab has the node with another role.
        SpecError: the name, role or labels are invalid, or the subnet is full.
    """
    existing = next((n for n in spec.nodes if n.name == node), None)
    if existing is not None:
        if existing.role != role:
            raise LabError(f"lab {spec.name!r} has a node {node!r} already, as a {existing.role}",
                           hint=f"pick another name, or change its role with {hints.command('swarm.promote', node)} or swarm.demote")
        return spec
    added = specs.NodeSpec(node, role, dict(labels), specs.next_slot(spec.nodes))
    grown = dataclasses.replace(spec, nodes=spec.nodes + (added,))
    validation.validate(grown)
    return grown


def without_node(plan: LabPlan, node: str) -> specs.LabSpec:
    """The lab's spec without ``node`` (and without its inventory entry: existing hosts);
    the other nodes keep their addresses.

    Raises:
        SpecError: the lab has no such node.
        LabError: the node holds the lab registry, or is the lab's only manager.
    """
    target = plan.node(node)
    if plan.registry and target.name == plan.first_manager.name:
        raise LabError(f"{node} runs the lab registry ({plan.registry}) that every node pulls from",
                       hint=f"remove other nodes, or recreate the lab: {hints.command('lab.down')} then {hints.command('lab.up')}")
    kept = tuple(dataclasses.replace(n, slot=p.index) for n, p in zip(plan.spec.nodes, plan.nodes) if n.name != node)
    hosts = {name: host for name, host in plan.spec.hosts.items() if name != node}
    spec = dataclasses.replace(plan.spec, nodes=kept, hosts=hosts)
    validation.validate(spec)
    return spec


def _check_removable(lab: LabSession, node: str) -> None:
    check_removable(node, [n for n in swarm_nodes(lab.manager) if n.role == "manager"],
                    lambda name: nodes.engine_answers(lab.plan, name))


def check_removable(node: str, managers: list[SwarmNode], answers: Callable[[str], bool]) -> None:
    """Refuse to remove the last manager, or a manager while Raft has no majority to
    agree on the smaller membership (see ``nodes.check_majority``).

    Raises:
        SwarmError: saying which and what to do.
    """
    if [n.hostname for n in managers] == [node]:
        raise SwarmError(f"{node} is the swarm's last manager: without it nobody runs the swarm",
                         hint=f"promote another node first: {hints.command('swarm.promote', 'NODE')}")
    nodes.check_majority(node, managers, answers, "removed")


def _raft_error(node: str, err: docker.errors.APIError) -> LabError:
    text = str(err.explanation or err)
    if "leader" in text or "quorum" in text:
        return SwarmError(f"the swarm could not change its membership to remove {node}: {text}",
                          hint="Raft needs a majority of the managers up to agree on any change; start the "
                               f"managers that are down ({hints.command('lab.start', 'NODE')}) and try again (a demotion the "
                               "leader already logged takes effect once they are back)")
    return SwarmError(f"removing {node} from the swarm failed: {text}")


def _set_up_running_hosts(plan: LabPlan, provider, running, reporter: Reporter) -> None:
    """Host setup on every running node, so each resolves exactly the lab's nodes."""
    with reporter.step("host setup over SSH"):
        hosts = machines.open_hosts(plan, provider, running)
        try:
            run_setup(plan, hosts, reporter)
        finally:
            machines.close_hosts(hosts)
