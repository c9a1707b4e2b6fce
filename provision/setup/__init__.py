"""Host setup: the same idempotent steps on every provider's hosts, over SSH.

Each step is ``ensure_*(host, ...) -> changed`` and is reported as ok or changed,
like Ansible's. Hosts are set up in parallel; a failure names each failed host.
"""

from __future__ import annotations

from typing import Callable

from provision.parallel import fan_out
from provision.plan import LabPlan, NodePlan
from provision.progress import Reporter
from provision.remote import keys
from provision.remote.host import Host
from provision.remote.node_files import engine_files
from provision.setup.engine_config import ENGINE_WAIT, ensure_engine_config
from provision.setup.engine_package import ensure_engine_package
from provision.setup.engine_service import ensure_engine_service
from provision.setup.firewall import ensure_lab_ports
from provision.setup.hostname import ensure_hostname
from provision.setup.hosts_file import ensure_hosts_block
from provision.setup.ssh_keys import ensure_authorized_key

Step = tuple[str, Callable[[Host, NodePlan], bool]]


def steps(plan: LabPlan) -> list[Step]:
    """The ordered setup steps for the hosts of ``plan``."""
    names = {n.name: n.address for n in plan.nodes}
    public_key = keys.lab_key(plan.name).public_line
    return [
        ("ssh key", lambda h, n: ensure_authorized_key(h, public_key)),
        ("hostname", lambda h, n: ensure_hostname(h, n.name)),
        ("/etc/hosts", lambda h, n: ensure_hosts_block(h, plan.name, names)),
        ("engine package", lambda h, n: ensure_engine_package(h, registry=_runs_registry(plan, n))),
        ("engine service", lambda h, n: ensure_engine_service(h)),
        ("engine config", lambda h, n: ensure_engine_config(h, engine_files(plan, n), plan.scaled(ENGINE_WAIT))),
        ("firewall", lambda h, n: ensure_lab_ports(h)),
    ]


def _runs_registry(plan: LabPlan, node: NodePlan) -> bool:
    """The node that builds the lab registry offline needs Debian's docker-registry binary."""
    return bool(plan.registry) and node == plan.first_manager and not plan.spec.registry.image


def run_setup(plan: LabPlan, hosts: dict[str, Host], reporter: Reporter) -> dict[str, list[str]]:
    """Run every step on every host; return ``{host: [changed step, ...]}``."""
    ordered = steps(plan)

    def set_up(host: Host) -> list[str]:
        node = plan.node(host.name)
        return [title for title, step in ordered if step(host, node)]

    changed = fan_out(hosts.values(), set_up, name=lambda host: host.name, what="host setup")
    for name in sorted(changed):
        done = changed[name]
        summary = f"changed: {', '.join(done)}" if done else "all ok"
        reporter.result(f"setup {name}: {len(ordered)} steps, {summary}", bool(done))
    return changed
