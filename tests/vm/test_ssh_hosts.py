"""Provider ssh on machines it did not make: two VMs, made here outside any swarmdeck lab,
stand in for a user's servers. One has no Docker engine (swarmdeck installs it from the
VM's Debian mirror); the other is reached as a non-root user with sudo, behind a firewall
that lets in SSH only. Both are adopted (host keys learnt on first use), set up, and form a
swarm; lab.down releases them and leaves the machines running."""

from __future__ import annotations

import shlex
from pathlib import Path

import paramiko
import pytest
import yaml

from provision import inventory
from provision.progress import Reporter
from provision.providers.libvirt import provider as lv
from provision.remote import adopt, keys
from provision.remote.node_files import File
from provision.spec import model as specs
from provision.wait import wait_until
from tests.labs import cli, new_lab_name, status_json, swarm_nodes

pytestmark = pytest.mark.vm


class Machines:
    """The stand-in servers, reached with the test's own key."""

    def __init__(self, key_file: Path, addresses: dict[str, str]):
        self.key_file, self.addresses = key_file, addresses

    def run(self, name: str, command: str, user: str = "root") -> str:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # the test's own throwaway VMs
        client.connect(self.addresses[name], username=user, key_filename=str(self.key_file), timeout=20,
                       look_for_keys=False, allow_agent=False)
        try:
            _stdin, stdout, stderr = client.exec_command(command, timeout=600)
            code = stdout.channel.recv_exit_status()
            out = stdout.read().decode() + stderr.read().decode()
            assert code == 0, f"{name}: {command} exited {code}: {out}"
            return out
        finally:
            client.close()


@pytest.fixture(scope="module")
def servers(libvirt_conn, tmp_path_factory):
    """Two running VMs that no lab knows: srv1 without Docker (root logs in with the test's
    key), srv2 with a user ``admin`` who has sudo (root does not take the test's key) and an
    iptables firewall that drops all but SSH."""
    folder = tmp_path_factory.mktemp("servers")
    user_key = keys.ensure_keypair(folder / "id_ed25519", "test")
    host_keys = {n: keys.ensure_keypair(folder / f"{n}_host", f"root@{n}") for n in ("srv1", "srv2")}
    name = new_lab_name("srv")
    spec = specs.LabSpec(name, "libvirt", (specs.NodeSpec("srv1", "manager"), specs.NodeSpec("srv2", "manager")))
    provider = lv.LibvirtProvider()

    def first_boot(node) -> list[File]:
        host_key = host_keys[node.name]
        return [File("/root/.ssh/authorized_keys", (user_key.public_line + "\n").encode(), 0o600),
                File("/etc/ssh/ssh_host_ed25519_key", host_key.private_path.read_bytes(), 0o600),
                File("/etc/ssh/ssh_host_ed25519_key.pub", (host_key.public_line + "\n").encode())]

    try:
        provider.prepare(Reporter())
        machines = provider.create(provider.resolve(spec), first_boot, Reporter())
        found = Machines(user_key.private_path, {m.name: m.address for m in machines})
        for address in found.addresses.values():
            wait_until(lambda: adopt.scan_host_key(address, timeout=5), timeout=300, interval=2,
                       describe=f"SSH on {address}")
        found.run("srv1", "systemctl stop docker.service docker.socket; DEBIAN_FRONTEND=noninteractive "
                          "apt-get purge -y -qq docker.io docker-registry >/dev/null && "
                          "rm -rf /etc/systemd/system/docker.service.d /etc/systemd/system/docker.socket.d /etc/docker "
                          "&& ! command -v dockerd")
        found.run("srv2", "useradd -m -s /bin/sh admin && install -d -m 700 -o admin -g admin /home/admin/.ssh && "
                          f"echo {shlex.quote(user_key.public_line)} > /home/admin/.ssh/authorized_keys && "
                          "chown admin:admin /home/admin/.ssh/authorized_keys && "
                          "echo 'admin ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/admin && "
                          ": > /root/.ssh/authorized_keys && "
                          # a firewall that lets in SSH only: host setup must open the lab's ports
                          "iptables -A INPUT -i lo -j ACCEPT && "
                          "iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT && "
                          "iptables -A INPUT -p tcp --dport 22 -j ACCEPT && iptables -P INPUT DROP")
        yield found
    finally:
        inventory.destroy(name, "libvirt")


@pytest.fixture(scope="module")
def ssh_lab(servers, tmp_path_factory):
    name = new_lab_name("ssh")
    spec_file = Path(tmp_path_factory.mktemp("ssh-lab")) / "lab.yaml"
    spec_file.write_text(yaml.safe_dump({
        "name": name, "provider": "ssh",
        "nodes": [{"name": "manager1", "role": "manager"}, {"name": "worker1", "role": "worker"}],
        "hosts": {"manager1": {"address": servers.addresses["srv1"], "key": str(servers.key_file)},
                  "worker1": {"address": servers.addresses["srv2"], "user": "admin", "key": str(servers.key_file)}},
    }))
    try:
        result = cli("lab.up", "--spec", str(spec_file), timeout=1800)
        yield name, spec_file, result.stdout + result.stderr
    finally:
        cli("lab.down", "--lab", name, check=False)


def test_existing_machines_are_set_up_and_form_a_swarm(ssh_lab, servers):
    name, _spec_file, output = ssh_lab
    assert "host manager1" in output and "learnt on first use" in output
    assert "engine package" in output  # srv1 got its engine from Debian's packages
    assert "setup worker1: 7 steps, changed: hostname, /etc/hosts, engine config, firewall" in output
    assert "dockerd" in servers.run("srv1", "command -v dockerd")
    status = status_json(name)
    assert status["provider"] == "ssh" and status["entry_point"]["kind"] == "routing-mesh"
    assert {n["name"]: n["address"] for n in status["nodes"]} == {"manager1": servers.addresses["srv1"],
                                                                  "worker1": servers.addresses["srv2"]}
    swarm = swarm_nodes(name)
    assert {h: n["Status"]["State"] for h, n in swarm.items()} == {"manager1": "ready", "worker1": "ready"}
    assert swarm["manager1"]["Spec"]["Role"] == "manager" and swarm["worker1"]["Spec"]["Role"] == "worker"
    opened = servers.run("srv2", "sudo -n iptables -S INPUT", user="admin")
    for port in ("2377", "7946", "4789", "2376"):
        assert f"--dport {port} -j ACCEPT" in opened, opened
    # the host keys were learnt on first use and are the machines' own
    recorded = keys.read_known_hosts(name)
    assert recorded["manager1"][1] == adopt.scan_host_key(servers.addresses["srv1"])
    assert recorded["worker1"][1] == adopt.scan_host_key(servers.addresses["srv2"])


def test_kill_and_start_act_on_the_engine_not_the_machine(ssh_lab):
    name = ssh_lab[0]
    cli("lab.kill", "worker1", "--lab", name)
    wait_until(lambda: swarm_nodes(name)["worker1"]["Status"]["State"] == "down", timeout=120, interval=2,
               describe="the swarm to see worker1 down")
    assert {n["name"]: n["machine"] for n in status_json(name)["nodes"]}["worker1"] == "running"  # still up
    cli("lab.start", "worker1", "--lab", name, timeout=600)
    wait_until(lambda: swarm_nodes(name)["worker1"]["Status"]["State"] == "ready", timeout=180, interval=2,
               describe="worker1 ready again")


def test_a_rerun_changes_nothing_and_down_releases_the_machines(ssh_lab, servers):
    name, spec_file, _output = ssh_lab
    rerun = cli("lab.up", "--spec", str(spec_file), timeout=900)
    again = rerun.stdout + rerun.stderr
    assert "adopted" not in again and again.count("all ok") == 2, again
    cli("lab.down", "--lab", name)
    # both still run, out of any swarm, without the lab's key, hosts block or engine config
    assert servers.run("srv1", "docker info --format '{{.Swarm.LocalNodeState}}'").strip() == "inactive"
    assert servers.run("srv2", "sudo -n docker info --format '{{.Swarm.LocalNodeState}}'", user="admin").strip() \
        == "inactive"
    assert "swarmdeck" not in servers.run("srv1", "cat /root/.ssh/authorized_keys /etc/hosts")
    assert "swarmdeck" not in servers.run("srv2", "sudo -n cat /root/.ssh/authorized_keys /etc/hosts", user="admin")
    assert servers.run("srv2", "test -e /etc/docker/daemon.json || echo gone", user="admin").strip() == "gone"
