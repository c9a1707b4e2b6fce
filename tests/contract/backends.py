"""The four backends as the contract suite runs them, each behind the same small harness.

docker runs on the real Docker engine (tests/conftest.py's ``engine``; its labs are
``it-contract-XXXX``, removed by label when its tests are done, even when one failed, and
swept with the session's labs); libvirt on libvirt's in-memory test driver, a fresh
hypervisor per backend (its VM image, the pool upload and this machine's subnets faked as
tests/unit/test_libvirt.py does); vagrant on that test driver too, with the Vagrant command
line faked (tests/contract/fake_machines.py); ssh with fake servers in place of adopting
over SSH and of the reachability check.

Labs are made and changed the way swarmdeck's own commands do it (``make_lab`` is lab.up's
"machines" action, ``add_node`` and ``remove_node`` lab.add's and lab.remove's machine
steps, ``forget`` lab.down's last step), so what the contract sees is what users get.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from orchestrator import membership
from provision import inventory, machines, state
from provision.errors import ProviderError, SubnetTaken
from provision.ledger import Ledger
from provision.plan import LabPlan, Machine
from provision.progress import RecordingReporter
from provision.providers.base import Provider
from provision.remote import keys, node_files
from provision.render import render
from provision.spec import load as spec_load
from provision.spec.model import LabSpec
from tests import labs
from tests.contract.fake_machines import FakeServer, FakeVagrant, fake_adopt


@dataclasses.dataclass
class MadeLab:
    """A lab as the harness made it: its spec, plan, the machines ``create`` returned, and
    what ``create`` reported."""

    name: str
    spec: LabSpec
    plan: LabPlan
    created: list[Machine]
    reporter: RecordingReporter


class Backend(abc.ABC):
    """What every harness offers; the subclasses say how their backend is set up and seen."""

    id: str
    provider: Provider
    nodes = (1, 1)  # managers, workers of the labs the suite makes
    real_engine = False  # runs on this machine's Docker engine (an integration test)

    def __init__(self, folder: Path, patch: pytest.MonkeyPatch):
        self.folder, self.patch = folder, patch
        self.made: list[str] = []

    # -- labs, made the way swarmdeck's commands make them -----------------------------------

    def new_lab_name(self) -> str:
        name = f"it-contract-{uuid.uuid4().hex[:4]}"
        self.made.append(name)
        return name

    def spec(self, lab: str, managers: int | None = None, workers: int | None = None) -> LabSpec:
        managers, workers = (managers, workers) if managers is not None else self.nodes
        return spec_load.load_spec(None, {}, {"name": lab, "provider": self.id, "managers": managers,
                                              "workers": workers, "registry": {"enabled": False},
                                              **self.spec_extra(lab, managers, workers)})

    def spec_extra(self, lab: str, managers: int, workers: int) -> dict:
        return {}

    def make_lab(self) -> MadeLab:
        """lab.up's machines action: prepare, the provider recorded, the lab network under the
        subnet lock, host keys, then ``create`` with the real first-boot files."""
        name = self.new_lab_name()
        spec = self.spec(name)
        reporter = RecordingReporter()
        provider = self.provider
        provider.prepare(reporter)
        inventory.record_provider(spec)
        plan = machines.lab_network(spec, provider, reporter, Ledger())
        machines.known_hosts(plan, provider)
        created = provider.create(plan, lambda node: node_files.files(plan, node), reporter, Ledger())
        return MadeLab(name, spec, plan, created, reporter)

    def add_node(self, lab: str, node: str) -> tuple[LabPlan, list[Machine]]:
        """lab.add's machine step: the lab's spec with the node recorded, then ``create`` of
        that node alone."""
        provider = self.provider
        current = inventory.current_spec(provider, lab)
        assert current is not None, f"no lab {lab} to add {node} to"
        spec = membership.with_node(current, node, "worker", {})
        inventory.record_spec(spec)
        reporter = RecordingReporter()
        provider.prepare(reporter)
        plan = machines.lab_network(spec, provider, reporter, Ledger())
        machines.known_hosts(plan, provider)
        made = provider.create(dataclasses.replace(plan, nodes=(plan.node(node),)),
                               lambda n: node_files.files(plan, n), reporter, Ledger())
        return plan, made

    def remove_node(self, lab: str, node: str) -> None:
        """lab.remove's machine step: the machine removed, then the lab's spec without it."""
        provider = self.provider
        current = inventory.current_spec(provider, lab)
        assert current is not None, f"no lab {lab} to remove {node} from"
        spec = membership.without_node(provider.resolve(current), node)
        provider.remove(provider.machine(lab, node))
        keys.remove_host_key(lab, node)
        inventory.record_spec(spec)

    def forget(self, lab: str) -> None:
        """What lab.down does after the backend's destroy: the lab's state folder goes."""
        state.remove(lab)

    # -- what the backend shows --------------------------------------------------------------

    @abc.abstractmethod
    def leftovers(self, lab: str) -> list[str]:
        """What the backend still holds of ``lab`` (each thing named)."""

    def engine_state(self, lab: str, node: str) -> str | None:
        """The state of the node's Docker engine, where lab.stop/start/kill act on the engine
        only (capabilities.power == "engine"); None where the backend cannot show it."""
        return None

    def link(self, machine: Machine) -> str | None:
        """"up" or "down": whether the machine is on the lab network now; None when this
        harness cannot see it."""
        return None

    @contextmanager
    def unusable(self) -> Iterator[Provider | None]:
        """A provider of this backend that cannot be used here (None: there is no such case)."""
        yield None

    def close(self) -> None:
        pass


# -- docker: the real engine ----------------------------------------------------------------


class DockerBackend(Backend):
    id = "docker"
    nodes = (1, 0)  # one container: the real engine is shared with others
    real_engine = True

    def __init__(self, folder: Path, patch: pytest.MonkeyPatch, client):
        super().__init__(folder, patch)
        from provision.providers.docker.provider import DockerProvider

        self.client = client
        self.provider = DockerProvider(client)

    def new_lab_name(self) -> str:
        name = labs.new_lab_name("contract")  # the session's: its end checks and sweep see it
        self.made.append(name)
        return name

    def make_lab(self) -> MadeLab:
        for attempt in range(3):  # a lab of another SWARMDECK_HOME may take the subnet meanwhile (Pool overlaps)
            try:
                return super().make_lab()
            except (SubnetTaken, ProviderError) as err:
                if attempt == 2 or "subnet" not in str(err):
                    raise
        raise AssertionError("unreachable")

    def leftovers(self, lab: str) -> list[str]:
        return labs.lab_resources(self.client, lab)

    def link(self, machine: Machine) -> str | None:
        from provision.providers.docker import names

        networks = self.client.containers.get(machine.id).attrs["NetworkSettings"]["Networks"]
        endpoint = networks.get(names.network_name(machine.lab))
        if endpoint is None:
            return "down"
        assert endpoint["IPAMConfig"]["IPv4Address"] == machine.address, endpoint
        return "up"

    @contextmanager
    def unusable(self) -> Iterator[Provider | None]:
        from provision.providers.docker.provider import DockerProvider
        from provision.remote.engine_clients import OVERRIDE

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(OVERRIDE, f"unix://{self.folder}/no-engine.sock")
            yield DockerProvider()

    def close(self) -> None:
        """Remove by label what the labs made here left (the provider's destroy is under test)."""
        from provision.providers.docker import names
        from provision.providers.docker.node_container import ignore_missing

        for lab in self.made:
            for container in self.client.containers.list(all=True, filters=names.lab_filter(lab)):
                ignore_missing(lambda: container.remove(force=True, v=True))
            for network in self.client.networks.list(filters=names.lab_filter(lab)):
                ignore_missing(network.remove)
            for volume in self.client.volumes.list(filters=names.lab_filter(lab)):
                ignore_missing(lambda: volume.remove(force=True))


# -- libvirt: its in-memory test driver -----------------------------------------------------


class LibvirtBackend(Backend):
    id = "libvirt"

    def __init__(self, folder: Path, patch: pytest.MonkeyPatch):
        super().__init__(folder, patch)
        self.libvirt = pytest.importorskip("libvirt", reason="the libvirt extra: pip install -e '.[libvirt]'")
        self.provider = self._provider()

    def _provider(self):
        """A LibvirtProvider on a hypervisor of its own: the test driver with an empty machine
        (test:///default would be shared with every other test of the process)."""
        from provision.images import vm as vm_images
        from provision.providers.libvirt import domains, networks
        from provision.providers.libvirt import provider as lv

        config = self.folder / "test-driver.xml"
        config.write_text("<node/>\n")
        image = vm_images.VMImage(self.folder / "vm-contract")
        image.folder.mkdir(exist_ok=True)
        for name in ("base.qcow2", "vmlinuz", "initrd.img", "swarmdeck.box"):
            (image.folder / name).write_bytes(b"x")
        keys.ensure_keypair(image.folder / "vagrant_ed25519", "vagrant@swarmdeck-box")
        self.image = image
        self.patch.setattr(vm_images, "ensure_vm_image", lambda reporter, *, mirror=None, rebuild=False: image)
        self.patch.setenv(domains.DOMAIN_TYPE_ENV, "qemu")
        self.patch.setattr(networks, "host_subnets", lambda: {})
        libvirt = self.libvirt

        def upload(_self, pool, name, path, fmt):  # the test driver cannot upload
            try:
                return pool.storageVolLookupByName(name), False
            except libvirt.libvirtError:
                xml = render("libvirt/volume.xml.j2", name=name, capacity=path.stat().st_size, format=fmt, backing=None)
                return pool.createXML(xml, 0), True

        self.patch.setattr(lv.LibvirtProvider, "_upload", upload)
        return lv.LibvirtProvider(uri=f"test://{config}")

    @property
    def conn(self):
        return self.provider.conn

    def leftovers(self, lab: str) -> list[str]:
        return labs.libvirt_leftovers(self.conn, lab)  # prepare made the pool

    @contextmanager
    def unusable(self) -> Iterator[Provider | None]:
        from provision.providers.libvirt import provider as lv

        yield lv.LibvirtProvider(uri=f"test://{self.folder}/no-such-hypervisor.xml")


# -- vagrant: vagrant-libvirt on the test driver, the Vagrant command line faked --------------


class VagrantBackend(LibvirtBackend):
    id = "vagrant"

    def __init__(self, folder: Path, patch: pytest.MonkeyPatch):
        Backend.__init__(self, folder, patch)
        self.libvirt = pytest.importorskip("libvirt", reason="the libvirt extra: pip install -e '.[libvirt]'")
        vagrant = pytest.importorskip("vagrant", reason="the vagrant extra: pip install -e '.[vagrant]'")
        from provision.providers.vagrant import commands
        from provision.providers.vagrant import provider as vg
        from provision.remote import adopt

        libvirt_provider = self._provider()
        self.fake = FakeVagrant(lambda: libvirt_provider.conn, self.image.folder / "vagrant_ed25519")
        stub = folder / "bin"
        stub.mkdir()
        (stub / "vagrant").write_text("#!/bin/sh\necho 'the contract suite never runs the real vagrant' >&2\nexit 97\n")
        (stub / "vagrant").chmod(0o755)
        patch.setenv("PATH", f"{stub}{os.pathsep}{os.environ['PATH']}")  # check() finds "vagrant"; nothing runs it
        patch.setattr(vagrant.Vagrant, "_call_vagrant_command", lambda client, args: self.fake.call(client, args))
        patch.setattr(vagrant.Vagrant, "_run_vagrant_command", lambda client, args: self.fake.run(client, args))
        patch.setattr(commands, "box_command", self.fake.box_command)
        patch.setattr(adopt, "adopt", fake_adopt(lambda: self.fake.servers))
        self.provider = vg.VagrantProvider()
        self.provider.libvirt = libvirt_provider

    def make_lab(self) -> MadeLab:
        """One Vagrant lab per folder (the Vagrantfile describes one): each lab gets its own
        SWARMDECK_VAGRANT_DIR, in force from then on; the suite is done with a lab before it
        makes the next."""
        from provision.providers.vagrant import commands

        self.patch.setenv(commands.DIR_ENV, str(self.folder / f"vagrant-{len(self.made) + 1}"))
        return super().make_lab()

    @property
    def conn(self):
        return self.provider.libvirt.conn

    def leftovers(self, lab: str) -> list[str]:
        from provision.providers.vagrant import lab_file

        found = super().leftovers(lab)
        if lab_file.described_lab() == lab:
            found.append("the Vagrantfile's lab JSON")
        return found

    @contextmanager
    def unusable(self) -> Iterator[Provider | None]:
        from provision.providers.vagrant import provider as vg

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PATH", str(self.folder / "empty-path"))
            yield vg.VagrantProvider()


# -- ssh: existing machines, faked ----------------------------------------------------------


class SSHBackend(Backend):
    id = "ssh"

    def __init__(self, folder: Path, patch: pytest.MonkeyPatch):
        super().__init__(folder, patch)
        from provision.providers.ssh import provider as ssh_provider
        from provision.remote import adopt

        self.servers: dict[str, FakeServer] = {}
        self.user_key = keys.ensure_keypair(folder / "id_ed25519", "admin@contract").private_path
        self._blocks = iter(range(10, 250, 10))  # each lab's hosts get addresses of their own
        patch.setattr(adopt, "adopt", fake_adopt(lambda: self.servers))
        patch.setattr(ssh_provider, "_reachable",
                      lambda address, port: address in self.servers and self.servers[address].port == port
                      and self.servers[address].is_up())
        patch.setattr(ssh_provider, "SSHHost", lambda lab, name, target, **_: self._server(target))
        self.provider = ssh_provider.SSHProvider()

    def spec_extra(self, lab: str, managers: int, workers: int) -> dict:
        """An inventory of fake servers in TEST-NET-1; the second host listens on port 2222."""
        first = next(self._blocks)
        names = [f"manager{i}" for i in range(1, managers + 1)] + [f"worker{i}" for i in range(1, workers + 1)]
        hosts = {}
        for offset, node in enumerate(names):
            address, port = f"192.0.2.{first + offset}", 2222 if offset == 1 else 22
            host_key = keys.ensure_keypair(self.folder / f"host-{address}", f"root@{node}").public_line
            self.servers[address] = FakeServer(address, port, " ".join(host_key.split()[:2]))
            hosts[node] = {"address": address, "port": port, "user": "admin", "key": str(self.user_key)}
        return {"hosts": hosts}

    def _server(self, target) -> FakeServer:
        server = self.servers[target.host]
        assert (target.port, target.user) == (server.port, "root"), f"{target} is not how root logs in to {server}"
        return server

    def leftovers(self, lab: str) -> list[str]:
        return [f"host {s.address} still authorizes lab {lab}'s key" for s in self.servers.values() if lab in s.labs()]

    def engine_state(self, lab: str, node: str) -> str | None:
        spec = inventory.current_spec(self.provider, lab)
        assert spec is not None
        return self.servers[spec.hosts[node].address].engine


BACKENDS = {"docker": DockerBackend, "libvirt": LibvirtBackend, "vagrant": VagrantBackend, "ssh": SSHBackend}
