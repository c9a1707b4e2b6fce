"""What a node must hold before its first boot, whatever the provider.

Container nodes get these files copied in before they start; VM providers put
the same content into cloud-init. Host setup later converges the same files over
SSH, so the two paths cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from provision.plan import LabPlan, NodePlan
from provision.remote import keys, tls
from provision.render import render

DAEMON_JSON = "/etc/docker/daemon.json"
TLS_DIR = "/etc/docker/tls"


@dataclass(frozen=True)
class File:
    path: str
    content: bytes
    mode: int = 0o644


def daemon_config(plan: LabPlan, node: NodePlan) -> str:
    """The node engine's daemon.json: TLS on the lab address, MTU, the lab registry (plain
    HTTP on the lab network) as the registry of Docker Hub's names (plan.registry_mirrors)."""
    return render(
        "docker/daemon.json.j2",
        address=node.address,
        engine_port=tls.ENGINE_PORT,
        tls_dir=TLS_DIR,
        mtu=plan.mtu,
        insecure=[a for a in (plan.registry, plan.registry_cache) if a],
        mirrors=plan.registry_mirrors,
    )


def engine_files(plan: LabPlan, node: NodePlan) -> list[File]:
    """daemon.json and the engine's TLS material."""
    certs = tls.node_certs(plan.name, node.name, node.address)
    return [
        File(f"{TLS_DIR}/ca.pem", certs.ca.read_bytes()),
        File(f"{TLS_DIR}/cert.pem", certs.cert.read_bytes()),
        File(f"{TLS_DIR}/key.pem", certs.key.read_bytes(), 0o600),
        File(DAEMON_JSON, daemon_config(plan, node).encode()),
    ]


def files(plan: LabPlan, node: NodePlan) -> list[File]:
    """Every file ``node`` needs at first boot."""
    host = keys.host_key(plan.name, node.name)
    return [
        File("/root/.ssh/authorized_keys", (keys.lab_key(plan.name).public_line + "\n").encode(), 0o600),
        File("/etc/ssh/ssh_host_ed25519_key", host.private_path.read_bytes(), 0o600),
        File("/etc/ssh/ssh_host_ed25519_key.pub", (host.public_line + "\n").encode()),
        *engine_files(plan, node),
    ]


def known_hosts(plan: LabPlan) -> None:
    """Write the lab's known_hosts for every node of ``plan``."""
    keys.write_known_hosts(
        plan.name, {n.name: (n.address, keys.host_key(plan.name, n.name).public_line) for n in plan.nodes}
    )
