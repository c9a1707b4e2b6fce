"""Fakes of what the vagrant and ssh backends drive when their real machines would be VMs:
the Vagrant command line (as python-vagrant calls it) and servers reached over SSH.

Each fake keeps the state a real one would show, so the contract can see what a provider
did: which machines exist and whether they run, which lab key a server authorizes, what
its Docker engine is doing. Nothing here opens a network connection or runs a program.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from provision.errors import HostUnreachable
from provision.plan import PAUSED, RUNNING, STOPPED
from provision.providers.base import SSHTarget
from provision.providers.libvirt.connection import libvirt_api
from provision.remote import keys
from provision.remote.host import Result
from provision.render import render


@dataclass
class FakeServer:
    """A machine reached over SSH: its sshd (up or not), the lab keys root accepts, and its
    Docker engine as the ssh backend's systemctl commands leave it."""

    address: str
    port: int
    host_key: str  # "ssh-ed25519 AAAA..." as it offers it
    is_up: Callable[[], bool] = lambda: True
    authorized: dict[str, str] = field(default_factory=dict)  # lab key line -> lab
    engine: str = RUNNING
    commands: list[str] = field(default_factory=list)

    def run(self, command: str) -> Result:
        if not self.is_up():
            raise HostUnreachable(f"{self.address}: SSH to {self.address} failed: connection refused")
        self.commands.append(command)
        if "--signal=SIGKILL" in command or command.startswith("systemctl stop docker"):
            self.engine = STOPPED
        elif "--signal=SIGSTOP" in command:
            self.engine = PAUSED
        elif "--signal=SIGCONT" in command and "systemctl start docker" in command:
            self.engine = RUNNING
        for line in [line for line in self.authorized if f"grep -vxF {shlex.quote(line)}" in command]:
            del self.authorized[line]  # provision.remote.adopt.release: the lab key goes
        return Result("", 0)

    def put(self, content: bytes, path: str, mode: int = 0o644) -> None:
        self.commands.append(f"put {path}")

    def close(self) -> None:
        pass

    def labs(self) -> set[str]:
        return set(self.authorized.values())


def fake_adopt(servers: Callable[[], dict[str, FakeServer]]):
    """provision.remote.adopt.adopt on fake servers: the host key learnt on first use, the lab
    key authorized for root; says what it did as the real one does ("running": nothing)."""

    def adopt(lab: str, node: str, target: SSHTarget, key_file: Path, *, timeout: float = 120) -> str:
        server = servers().get(target.host)
        if server is None or server.port != target.port or not server.is_up():
            raise HostUnreachable(f"no SSH server answers at {target.host}:{target.port}",
                                  hint="is the machine up, and the address and port right?")
        if not Path(key_file).is_file():
            raise AssertionError(f"adopt got no key file that exists: {key_file}")
        learnt = keys.read_known_hosts(lab).get(node) != (target.host, server.host_key)
        if learnt:
            keys.record_host_key(lab, node, target.host, server.host_key)
        line = keys.lab_key(lab).public_line
        if line in server.authorized and not learnt:
            return "running"
        server.authorized[line] = lab
        return "adopted, host key learnt on first use" if learnt else "adopted"

    return adopt


class FakeVagrant:
    """Vagrant with vagrant-libvirt, as python-vagrant runs it (``_call_vagrant_command`` and
    ``_run_vagrant_command`` are replaced by ``call`` and ``run``): it reads the lab JSON the
    Vagrantfile reads, and its machines are domains of the libvirt test driver named as
    vagrant-libvirt names them (``<lab>-vagrant-<node>``, the Vagrantfile's prefix) on the
    lab's network, each with a disk in the swarmdeck pool."""

    def __init__(self, conn: Callable[[], object], box_key: Path):
        self.conn, self.box_key = conn, box_key
        self.commands: list[list[str]] = []
        self.boxes: set[str] = set()
        self.servers: dict[str, FakeServer] = {}  # address -> the machine's sshd

    # -- what python-vagrant calls -------------------------------------------------------------

    def call(self, client, args: list) -> None:
        args = [str(a) for a in args if a is not None]
        self.commands.append(args)
        lab = self._lab(client, args)
        verb, names = args[0], [a for a in args[1:] if not a.startswith("-")]
        for name in names or [n["name"] for n in lab["nodes"]]:
            node = self._node(client, args, lab, name)
            getattr(self, f"_{verb}")(lab, node, "--force" in args)

    def run(self, client, args: list) -> str:
        args = [str(a) for a in args if a is not None]
        self.commands.append(args)
        lab = self._lab(client, args)
        if args[:2] == ["status", "--machine-readable"]:
            return "".join(f"1767225600,{n['name']},provider-name,libvirt\n"
                           f"1767225600,{n['name']},state,{self.state(lab['lab'], n['name'])}\n" for n in lab["nodes"])
        if args[0] == "ssh-config":
            node = self._node(client, args, lab, args[1])
            if self.state(lab["lab"], node["name"]) != "running":
                self._fail(client, args, f"The provider for this Vagrant-managed machine is reporting that it "
                                         f"is not yet ready for SSH ({node['name']}).")
            return (f"Host {node['name']}\n  HostName {node['address']}\n  User vagrant\n  Port 22\n"
                    f"  IdentityFile {self.box_key}\n  StrictHostKeyChecking no\n")
        raise AssertionError(f"the fake Vagrant does not know `vagrant {' '.join(args)}`")

    def box_command(self, *args: str) -> subprocess.CompletedProcess:
        """provision.providers.vagrant.commands.box_command: ``vagrant box list|add``."""
        self.commands.append(["box", *args])
        if args[0] == "list":
            listed = "".join(f"1767225600,,box-name,{box}\n" for box in sorted(self.boxes))
            return subprocess.CompletedProcess(["vagrant", "box", *args], 0, listed, "")
        if args[0] == "add":
            self.boxes.add(args[args.index("--name") + 1])
            return subprocess.CompletedProcess(["vagrant", "box", *args], 0, "", "")
        raise AssertionError(f"the fake Vagrant does not know `vagrant box {' '.join(args)}`")

    # -- its machines ----------------------------------------------------------------------------

    def state(self, lab: str, node: str) -> str:
        """vagrant-libvirt's state of the machine: not_created, running, paused or shutoff."""
        domain = self._domain(lab, node)
        if domain is None:
            return "not_created"
        libvirt = libvirt_api()
        return {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_PAUSED: "paused"}.get(domain.state()[0], "shutoff")

    def domains(self, lab: str) -> list[str]:
        return [d.name() for d in self.conn().listAllDomains(0) if d.name().startswith(f"{lab}-vagrant-")]

    def _up(self, lab: dict, node: dict, _force: bool) -> None:
        domain = self._domain(lab["lab"], node["name"])
        if domain is None:
            pool = self.conn().storagePoolLookupByName(lab["pool"])
            pool.createXML(render("libvirt/volume.xml.j2", name=f"{self._name(lab['lab'], node['name'])}.img",
                                  capacity=1 << 20, format="qcow2", backing=None), 0)
            domain = self.conn().defineXML(
                f"<domain type='test'><name>{self._name(lab['lab'], node['name'])}</name>"
                f"<memory unit='MiB'>{lab['memory']}</memory><os><type>hvm</type></os><devices>"
                f"<interface type='network'><mac address='{node['mac']}'/><source network='{lab['network']}'/>"
                f"</interface></devices></domain>")
            host_key = keys.ensure_keypair(self.box_key.parent / f"host-{node['name']}", f"root@{node['name']}")
            server = FakeServer(node["address"], 22, " ".join(host_key.public_line.split()[:2]),
                                is_up=lambda lab=lab["lab"], node=node["name"]: self.state(lab, node) == "running")
            self.servers[node["address"]] = server
        if domain.state()[0] == libvirt_api().VIR_DOMAIN_PAUSED:
            domain.resume()
        elif not domain.isActive():
            domain.create()

    def _halt(self, lab: dict, node: dict, force: bool) -> None:
        domain = self._domain(lab["lab"], node["name"])
        if domain is not None and domain.isActive():
            domain.destroy() if force else domain.shutdown()

    def _suspend(self, lab: dict, node: dict, _force: bool) -> None:
        domain = self._domain(lab["lab"], node["name"])
        if domain is not None and domain.state()[0] == libvirt_api().VIR_DOMAIN_RUNNING:
            domain.suspend()

    def _resume(self, lab: dict, node: dict, _force: bool) -> None:
        domain = self._domain(lab["lab"], node["name"])
        if domain is not None and domain.state()[0] == libvirt_api().VIR_DOMAIN_PAUSED:
            domain.resume()

    def _destroy(self, lab: dict, node: dict, _force: bool) -> None:
        domain = self._domain(lab["lab"], node["name"])
        if domain is None:
            return
        if domain.isActive():
            domain.destroy()
        domain.undefine()
        pool = self.conn().storagePoolLookupByName(lab["pool"])
        pool.storageVolLookupByName(f"{self._name(lab['lab'], node['name'])}.img").delete(0)
        self.servers.pop(node["address"], None)

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _name(lab: str, node: str) -> str:
        return f"{lab}-vagrant-{node}"

    def _domain(self, lab: str, node: str):
        name = self._name(lab, node)
        return next((d for d in self.conn().listAllDomains(0) if d.name() == name), None)

    def _lab(self, client, args: list[str]) -> dict:
        """The lab JSON, as the Vagrantfile reads it (it refuses to load without one)."""
        path = Path(client.env["SWARMDECK_LAB_JSON"])
        if not path.is_file():
            self._fail(client, args, f"swarmdeck: no lab spec at {path}.")
        return json.loads(path.read_text())

    def _node(self, client, args: list[str], lab: dict, name: str) -> dict:
        node = next((n for n in lab["nodes"] if n["name"] == name), None)
        if node is None:
            self._fail(client, args, f"The machine with the name '{name}' was not found configured for this "
                                     "Vagrant environment.")
        return node

    @staticmethod
    def _fail(client, args: list[str], message: str):
        with client.err_cm() as err:
            err.write(message + "\n")
        raise subprocess.CalledProcessError(1, ["vagrant", *args])
