"""A lab's SSH door: how a student reaches their lab through the instructor machine.

One small container per lab (``LAB-door``, from the node image, running sshd only), on that lab's
network alone, its port 22 published on the instructor machine (2201, 2202...). A student logs in
as ``student`` with their secret: sshd checks it against a SHA-512 crypt hash in the door's
shadow file (the secret itself never enters the door). Inside, ``ssh manager1`` reaches a node
with the lab's key, host keys checked against the lab's known_hosts, and ``docker`` talks to
manager1's engine over its TLS API. No forwarding, no root login, three tries per connection.
The door's host key is made by swarmdeck; its fingerprint goes on the student's card, so the
student can check it on first connection. The door carries the lab's label: lab.down removes it."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import socket
import subprocess

import docker
import docker.errors

from provision.errors import LabError
from provision.plan import LabPlan
from provision.providers.docker import names
from provision.providers.docker.node_container import tar_of
from provision.remote import keys, tls
from provision.remote.node_files import File

USER = "student"
FIRST_PORT = 2201
DOOR_SLOT = 8  # the lab network's address .8: below the nodes (.10+) and the load balancer (.9)
SSHD_CONFIG = """\
Port 22
HostKey /etc/ssh/door_host_ed25519_key
AllowUsers student
PermitRootLogin no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
MaxAuthTries 3
LoginGraceTime 30
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
X11Forwarding no
PermitTunnel no
PrintMotd yes
"""
INIT = """\
#!/bin/sh
# the door's init: the student's account (password hash from /etc/door/shadow), then sshd
set -eu
id student >/dev/null 2>&1 || useradd -m -s /bin/bash student
usermod -p "$(cat /etc/door/shadow)" student
chown -R student:student /home/student
chmod 700 /home/student/.ssh /home/student/.docker
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e -f /etc/ssh/door_config
"""


def container_name(lab: str) -> str:
    return f"{lab}-door"


def address(plan: LabPlan) -> str:
    return str(ipaddress.ip_network(plan.subnet)[DOOR_SLOT])


def password_hash(secret: str) -> str:
    """A SHA-512 crypt hash of ``secret`` (openssl reads it on stdin: never in a command line)."""
    done = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=secret, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0 or not done.stdout.startswith("$6$"):
        raise LabError("openssl passwd -6 could not hash a student's secret", hint="install openssl")
    return done.stdout.strip()


def host_key(lab: str) -> keys.KeyPair:
    return keys.ensure_keypair(keys.ssh_dir(lab) / "hosts" / "door_ed25519", f"door@{lab}")


def fingerprint(public_line: str) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` and ssh's first-connection prompt show it."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def files(plan: LabPlan, secret: str) -> list[File]:
    lab_key, door_key = keys.lab_key(plan.name), host_key(plan.name)
    certs = tls.client_certs(plan.name)
    known = "".join(f"{a},{n} {k}\n" for n, (a, k) in sorted(keys.read_known_hosts(plan.name).items()))
    hosts = "".join(f"Host {n.name}\n  HostName {n.address}\n  User root\n" for n in plan.nodes)
    manager = plan.first_manager
    profile = (f"export DOCKER_HOST=tcp://{manager.address}:2376 DOCKER_TLS_VERIFY=1 "
               "DOCKER_CERT_PATH=/home/student/.docker\n")
    motd = (f"Lab {plan.name}: nodes {', '.join(n.name for n in plan.nodes)}.\n"
            f"  ssh {manager.name}      a root shell on a node\n  docker node ls     the swarm, from {manager.name}'s engine\n")
    return [
        File("/etc/ssh/door_config", SSHD_CONFIG.encode(), 0o644),
        File("/etc/ssh/door_host_ed25519_key", door_key.private_text.encode(), 0o600),
        File("/etc/door/shadow", (password_hash(secret) + "\n").encode(), 0o600),
        File("/usr/local/sbin/door-init", INIT.encode(), 0o755),
        File("/etc/motd", motd.encode(), 0o644),
        File("/home/student/.ssh/id_ed25519", lab_key.private_text.encode(), 0o600),
        File("/home/student/.ssh/known_hosts", known.encode(), 0o644),
        File("/home/student/.ssh/config", (hosts + "Host *\n  StrictHostKeyChecking yes\n").encode(), 0o644),
        File("/home/student/.docker/ca.pem", certs.ca.read_bytes(), 0o644),
        File("/home/student/.docker/cert.pem", certs.cert.read_bytes(), 0o644),
        File("/home/student/.docker/key.pem", certs.key.read_bytes(), 0o600),
        File("/home/student/.profile", profile.encode(), 0o644),
    ]


def free_port(client: docker.DockerClient, taken: set[int], bind: str = "0.0.0.0", *, probe_here: bool = True) -> int:
    """The first port from FIRST_PORT that no container of ``client``'s engine publishes, no other
    door of this class holds (``taken``) and (``probe_here``: the engine is this machine's)
    nothing on this machine listens on."""
    published = set(taken)
    for container in client.containers.list(all=True):
        for bindings in (container.attrs.get("HostConfig", {}).get("PortBindings") or {}).values():
            published.update(int(b["HostPort"]) for b in bindings or [] if b.get("HostPort"))
    for port in range(FIRST_PORT, FIRST_PORT + 1000):
        if port not in published and (not probe_here or _bindable(bind, port)):
            return port
    raise LabError(f"no free TCP port for a lab's SSH door in {FIRST_PORT}-{FIRST_PORT + 999}")


def _bindable(bind: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((bind, port))
            return True
        except OSError:
            return False


def ensure(client: docker.DockerClient, image: str, plan: LabPlan, secret: str, port: int,
           bind: str = "0.0.0.0") -> bool:
    """The lab's door, running on ``port``; True when it was made now (an existing door stays)."""
    name = container_name(plan.name)
    try:
        container = client.containers.get(name)
        if container.status != "running":
            container.start()
        return False
    except docker.errors.NotFound:
        pass
    api = client.api
    network = names.network_name(plan.name)
    host_config = api.create_host_config(port_bindings={22: (bind, port)}, network_mode=network,
                                         restart_policy={"Name": "unless-stopped"}, mem_limit=64 * 1024 ** 2,
                                         pids_limit=256, cap_drop=["NET_RAW"])
    endpoint = api.create_endpoint_config(ipv4_address=address(plan))
    created = api.create_container(
        image, entrypoint=["/usr/bin/tini", "--", "/usr/local/sbin/door-init"], name=name, hostname="door",
        labels={names.LAB: plan.name, names.KIND: "door"}, ports=[22], host_config=host_config,
        networking_config=api.create_networking_config({network: endpoint}), detach=True)
    container = client.containers.get(created["Id"])
    container.put_archive("/", tar_of(files(plan, secret)))
    container.start()
    return True

