"""The libvirt provider against libvirt's built-in test driver (test:///default: an
in-memory hypervisor), and its XML templates against golden files.

Set UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate template change.
"""

from __future__ import annotations

import dataclasses
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

libvirt = pytest.importorskip("libvirt", reason="the libvirt extra: pip install -e '.[libvirt]'")

from provision.errors import SubnetTaken  # noqa: E402
from provision.images.vm import VMImage  # noqa: E402
from provision.ledger import Ledger  # noqa: E402
from provision.plan import PAUSED, RUNNING, STOPPED, plan  # noqa: E402
from provision.progress import Reporter  # noqa: E402
from provision.providers.libvirt import domains as libvirt_domains
from provision.providers.libvirt import networks as libvirt_networks
from provision.providers.libvirt import provider as lv  # noqa: E402
from provision.remote.node_files import File  # noqa: E402
from provision.render import render  # noqa: E402
from provision.spec import load as spec_load  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed: UPDATE_GOLDEN=1 if that is intended"


def lab_plan(**overrides):
    spec = spec_load.load_spec(None, {}, {"name": "vmlab", "provider": "libvirt", "managers": 1, "workers": 2,
                                       **overrides})
    return plan(spec, "10.201.7.0/24", 1500)


class Quiet(Reporter):
    def emit(self, kind, text):
        pass


def test_network_xml_reserves_each_node_address_by_mac():
    xml = libvirt_networks.network_xml(lab_plan())
    golden("libvirt-network.xml", xml)
    hosts = {h.get("name"): (h.get("mac"), h.get("ip")) for h in ET.fromstring(xml).iter("host")}
    assert hosts["worker2"] == (libvirt_networks.mac_address("vmlab", "worker2"), "10.201.7.12")
    assert len({mac for mac, _ in hosts.values()}) == 3
    assert len(libvirt_networks.bridge_name("a-very-long-lab-name-of-31-chars")) <= 15


def test_domain_volume_and_pool_xml():
    lab = lab_plan()
    for domain_type in ("qemu", "kvm"):
        xml = render("libvirt/domain.xml.j2", domain_type=domain_type, name="vmlab-worker1", namespace=libvirt_domains.NAMESPACE,
                     lab="vmlab", node=lab.node("worker1"), memory_mib=768, vcpus=1, kernel="/pool/k",
                     initrd="/pool/i", cmdline=libvirt_domains.KERNEL_CMDLINE, disk="/pool/vmlab-worker1.qcow2",
                     seed="/pool/vmlab-worker1-seed.img",
                     network="swarmdeck-vmlab", mac=libvirt_networks.mac_address("vmlab", "worker1"), console_log="/state/w1.log")
        golden(f"libvirt-domain-{domain_type}.xml", xml)
        assert ET.fromstring(xml).get("type") == domain_type
    golden("libvirt-volume-overlay.xml", render("libvirt/volume.xml.j2", name="vmlab-worker1.qcow2",
                                                capacity=8 << 30, format="qcow2", backing="/pool/base.qcow2"))
    golden("libvirt-volume-raw.xml", render("libvirt/volume.xml.j2", name="seed.img", capacity=4 << 20,
                                            format="raw", backing=None))
    golden("libvirt-pool.xml", render("libvirt/pool.xml.j2", name="swarmdeck", path="/var/lib/libvirt/images/swarmdeck"))


@pytest.fixture()
def provider(monkeypatch, tmp_path):
    provider = lv.LibvirtProvider("test:///default")
    provider._conn = libvirt.open("test:///default")  # a fresh in-memory hypervisor per test
    for name in ("base.qcow2", "vmlinuz", "initrd.img"):
        (tmp_path / name).write_bytes(b"x")
    provider.image, provider.domain_type = VMImage(tmp_path), "qemu"

    def fake_upload(self, pool, name, path, fmt):  # the test driver cannot upload
        try:
            return pool.storageVolLookupByName(name), False
        except libvirt.libvirtError:
            xml = render("libvirt/volume.xml.j2", name=name, capacity=path.stat().st_size, format=fmt, backing=None)
            return pool.createXML(xml, 0), True

    monkeypatch.setattr(lv.LibvirtProvider, "_upload", fake_upload)
    monkeypatch.setattr(libvirt_networks, "host_subnets", lambda: {})
    pool = provider._pool()
    provider.volumes = {role: provider._upload(pool, f"img-{role}", tmp_path / "vmlinuz", "raw")[0].path()
                        for role in ("disk", "kernel", "initrd")}
    return provider


def first_boot(node):
    return [File("/root/.ssh/authorized_keys", b"ssh-ed25519 AAAA test\n", 0o600)]


def test_a_lab_is_created_listed_powered_and_destroyed(provider):
    lab = provider.resolve(lab_plan().spec)
    assert lab.subnet == "10.201.0.0/24"  # the first free /24 of the provider's range
    machines = provider.create(lab, first_boot, Quiet())
    assert [(m.name, m.role, m.state, m.address) for m in machines] == [
        ("manager1", "manager", RUNNING, "10.201.0.10"), ("worker1", "worker", RUNNING, "10.201.0.11"),
        ("worker2", "worker", RUNNING, "10.201.0.12")]
    domain = provider.conn.lookupByName("vmlab-worker1")
    xml = ET.fromstring(domain.XMLDesc(0))
    assert xml.get("type") == "qemu" and xml.find("os/kernel").text == provider.volumes["kernel"]
    assert xml.find("devices/interface/mac").get("address") == libvirt_networks.mac_address("vmlab", "worker1")
    assert provider.create(lab, first_boot, Quiet()) == machines  # a re-run changes nothing
    worker1 = provider.machine("vmlab", "worker1")
    provider.kill(worker1)
    assert provider.machine("vmlab", "worker1").state == STOPPED
    provider.start(worker1)
    provider.pause(worker1)
    assert provider.machine("vmlab", "worker1").state == PAUSED
    provider.start(worker1)
    provider.stop(worker1)
    assert provider.machine("vmlab", "worker1").state == STOPPED
    assert provider.labs() == ["vmlab"]
    counts = provider.destroy("vmlab")
    assert counts == {"VMs": 3, "volumes": 6, "networks": 1}
    assert provider.labs() == [] and provider.list("vmlab") == []
    assert not [v for v in provider._pool().listAllVolumes(0) if v.name().startswith("vmlab-")]


def test_adding_and_removing_a_node_updates_the_dhcp_reservations(provider):
    lab = provider.resolve(lab_plan().spec)
    provider.create(lab, first_boot, Quiet())
    from orchestrator.membership import with_node

    grown = provider.resolve(with_node(lab.spec, "worker3", "worker", {}))
    provider.create(grown, first_boot, Quiet())
    network_xml = provider._network("vmlab").XMLDesc(0)
    assert libvirt_networks.mac_address("vmlab", "worker3") in network_xml and "10.201.0.13" in network_xml
    provider.remove(provider.machine("vmlab", "worker3"))
    assert libvirt_networks.mac_address("vmlab", "worker3") not in provider._network("vmlab").XMLDesc(0)
    assert [m.name for m in provider.list("vmlab")] == ["manager1", "worker1", "worker2"]


def _lab_volumes(provider) -> list[str]:
    return sorted(v.name() for v in provider._pool().listAllVolumes(0) if v.name().startswith("vmlab-"))


def test_a_failed_run_removes_the_vms_disks_and_network_it_made_last_first(provider):
    ledger = Ledger()
    lab = provider.resolve(lab_plan().spec)
    provider.ensure_network(lab, ledger)
    provider.create(lab, first_boot, Quiet(), ledger)
    made = [e.what for e in ledger.entries]
    assert made[0] == "network swarmdeck-vmlab"
    for node in ("manager1", "worker1", "worker2"):  # each VM after its disks, so it goes before them
        assert made.index(f"disk vmlab-{node}.qcow2") < made.index(f"disk vmlab-{node}-seed.img") \
            < made.index(f"VM vmlab-{node}")
    assert ledger.roll_back(Quiet()) == []
    assert provider.list("vmlab") == [] and provider._network("vmlab") is None and _lab_volumes(provider) == []


def test_a_failed_add_removes_only_the_new_vm_its_disks_and_its_reservation(provider):
    from orchestrator.membership import with_node

    lab = provider.resolve(lab_plan().spec)
    provider.create(lab, first_boot, Quiet())
    before = _lab_volumes(provider)
    ledger = Ledger()
    grown = provider.resolve(with_node(lab.spec, "worker3", "worker", {}))
    provider.ensure_network(grown, ledger)
    provider.create(dataclasses.replace(grown, nodes=(grown.node("worker3"),)), first_boot, Quiet(), ledger)
    assert [e.what for e in ledger.entries] == ["DHCP reservation of worker3", "disk vmlab-worker3.qcow2",
                                                "disk vmlab-worker3-seed.img", "VM vmlab-worker3"]
    ledger.roll_back(Quiet())
    assert [m.name for m in provider.list("vmlab")] == ["manager1", "worker1", "worker2"]
    assert _lab_volumes(provider) == before
    assert libvirt_networks.mac_address("vmlab", "worker3") not in provider._network("vmlab").XMLDesc(0)


def test_a_subnet_in_use_is_refused_by_name_and_leaves_no_network(provider, monkeypatch):
    lab = provider.resolve(lab_plan().spec)
    monkeypatch.setattr(libvirt_networks, "host_subnets", lambda: {"interface virbr9": lab.subnet})  # appeared meanwhile

    def in_use(self, flags=0):
        raise libvirt.libvirtError("internal error: Network is already in use by interface virbr9")

    monkeypatch.setattr(libvirt.virNetwork, "create", in_use)
    with pytest.raises(SubnetTaken, match=r"swarmdeck-vmlab cannot use subnet 10.201.0.0/24: .*'interface virbr9'"):
        provider.ensure_network(lab, Ledger())
    assert provider._network("vmlab") is None  # a retry can define it anew


def test_an_existing_lab_keeps_its_subnet_and_refuses_another(provider):
    lab = provider.resolve(lab_plan().spec)
    provider.create(lab, first_boot, Quiet())
    assert provider.resolve(lab.spec).subnet == lab.subnet
    from provision.errors import SpecError

    with pytest.raises(SpecError, match="exists with subnet"):
        provider.resolve(lab_plan(network={"subnet": "10.201.99.0/24"}).spec)


def test_the_domain_type_can_be_forced_and_is_cached(monkeypatch, tmp_path):
    monkeypatch.setenv(libvirt_domains.DOMAIN_TYPE_ENV, "qemu")
    assert libvirt_domains.domain_type(VMImage(tmp_path)) == "qemu"
    monkeypatch.delenv(libvirt_domains.DOMAIN_TYPE_ENV)
    monkeypatch.setattr(libvirt_domains, "_kvm_runs", lambda kernel: False)
    assert libvirt_domains.domain_type(VMImage(tmp_path)) == "qemu"
    monkeypatch.setattr(libvirt_domains, "_kvm_runs", lambda kernel: True)
    assert libvirt_domains.domain_type(VMImage(tmp_path)) == "qemu"  # decided once per machine


def test_vagrant_lab_down_removes_its_domains_even_when_vagrant_fails(provider, monkeypatch, tmp_path):
    from provision.errors import ProviderError
    from provision.providers.vagrant import commands as vagrant_commands
    from provision.providers.vagrant import lab_file as vagrant_lab_file
    from provision.providers.vagrant import provider as vg

    lab = provider.resolve(lab_plan().spec)
    provider.create(lab, first_boot, Quiet())  # a network and disks as a vagrant-libvirt lab has them
    for node in ("manager1", "worker1"):  # the same VMs, named as vagrant-libvirt names them
        domain = provider.conn.lookupByName(f"vmlab-{node}")
        xml = re.sub(r"<uuid>.*</uuid>", "", domain.XMLDesc(0)).replace(f">vmlab-{node}<", f">vmlab-vagrant-{node}<")
        domain.destroy()
        domain.undefine()
        provider.conn.defineXML(xml).create()
    monkeypatch.setenv(vagrant_commands.DIR_ENV, str(tmp_path))
    (tmp_path / vagrant_lab_file.SPEC_JSON).write_text('{"lab": "vmlab", "provider": "libvirt", "nodes": []}')
    vagrant = vg.VagrantProvider()
    vagrant.libvirt = provider

    def broken(lab, what, call):
        raise ProviderError("`vagrant status` failed (exit 1): network not found")

    monkeypatch.setattr(vagrant, "_run", broken)
    counts = vagrant.destroy("vmlab")
    assert counts["VMs"] == 2 and counts["networks"] == 1
    assert not [d.name() for d in provider.conn.listAllDomains(0) if "vagrant" in d.name()]
    assert not (tmp_path / vagrant_lab_file.SPEC_JSON).exists()
