"""libvirt provider: every node is a VM (KVM where it works, else QEMU software emulation).

A lab is a NAT network (``swarmdeck-<lab>``) whose DHCP server holds a reservation per
node MAC, so each node keeps its address across reboots; VMs named ``<lab>-<node>``
boot the swarmdeck VM image directly (kernel + initrd + a qcow2 overlay of the base
disk) with a seed disk carrying their first-boot files. Disks live in one storage pool
(``swarmdeck``), uploaded through libvirt, so no file of the user's home must be
readable by QEMU. Each VM's serial console is logged to the lab's state folder.
libvirt-python is imported only when this provider is used.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from provision import hints, state
from provision.errors import ProviderError, ProviderUnavailable, SpecError, SubnetTaken
from provision.images import vm as vm_images
from provision.ledger import Ledger
from provision.paths import lab_dir
from provision.plan import PAUSED, RUNNING, STOPPED, LabPlan, Machine, NodePlan, plan
from provision.progress import Reporter
from provision.providers.base import (
    Capabilities,
    FirstBoot,
    SSHTarget,
    ensure_nodes,
    find_machine,
    no_console,
)
from provision.providers.libvirt import connection, domains, networks, pools
from provision.render import render
from provision.spec import model as specs
from provision.spec import validation

POOL = pools.POOL  # the pool's name, as callers outside the package know it


class LibvirtProvider:
    name = "libvirt"
    # VMs under software emulation answer SSH 25-80 s after they start, here
    capabilities = Capabilities(boot_timeout=300, node_memory_mb=domains.MEMORY_MIB)

    def __init__(self, uri: str | None = None, lab: str | None = None):
        recorded = (state.read_engine(lab) or {}).get(state.LIBVIRT_URI) if lab else None
        # the URI given, else the shell's, else the one the lab was made with (qemu+ssh://...)
        self.uri = uri or os.environ.get(connection.URI_ENV) or recorded or "qemu:///system"
        self._conn = None
        self._pool_handle = None
        self.image: vm_images.VMImage | None = None
        self.domain_type: str | None = None
        self.volumes: dict[str, str] = {}  # base disk, kernel, initrd -> paths in the pool

    # -- connection and preparation ------------------------------------------------------------

    @property
    def conn(self):
        if self._conn is None:
            libvirt = connection.libvirt_api()
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as err:
                raise ProviderUnavailable(
                    f"libvirt at {self.uri} does not answer: {err}",
                    hint="install and start it: `apt-get install libvirt-daemon-system qemu-system-x86 qemu-utils "
                         f"dnsmasq-base`, then `libvirtd -d` (or `systemctl start libvirtd`); {hints.command('lab.doctor')}") from err
        return self._conn

    def check(self) -> None:
        self.conn.getVersion()

    def prepare(self, reporter: Reporter, *, image_method: str = "auto", mirror: str | None = None) -> None:
        """The VM image built and uploaded to the pool; the domain type decided."""
        self.image = vm_images.ensure_vm_image(reporter, mirror=mirror)
        self.domain_type = domains.domain_type(self.image)
        reporter.result(f"VMs run under {'KVM' if self.domain_type == 'kvm' else 'QEMU software emulation'}",
                        changed=False)
        pool = self._pool()
        for role, path in (("disk", self.image.disk), ("kernel", self.image.kernel), ("initrd", self.image.initrd)):
            name = f"{self.image.name}-{path.name}"
            volume, uploaded = self._upload(pool, name, path, "qcow2" if role == "disk" else "raw")
            self.volumes[role] = volume.path()
            if uploaded:
                reporter.result(f"{path.name} of {self.image.name} uploaded to pool {POOL}", changed=True)

    def _pool(self):
        """The swarmdeck pool (pools.py), defined and started on first use, then the same handle."""
        if self._pool_handle is None:
            self._pool_handle = pools.ensure_pool(self.conn)
        return self._pool_handle

    def _upload(self, pool, name: str, path: Path, fmt: str):
        return pools.upload(self.conn, pool, name, path, fmt)

    # -- the lab's spec and network -----------------------------------------------------------

    def stored_spec(self, lab: str) -> specs.LabSpec | None:
        if self._network(lab) is None:
            return None
        return state.read_created_spec(lab)

    def resolve(self, spec: specs.LabSpec) -> LabPlan:
        network = self._network(spec.name)
        taken = self._taken_subnets(spec.name)
        validation.validate(spec, taken_subnets=taken)
        if network is not None:
            subnet = networks.network_subnet(network.XMLDesc(0))
            if spec.network.subnet not in (specs.AUTO, subnet):
                raise SpecError([f"lab {spec.name!r} exists with subnet {subnet}, not {spec.network.subnet}"],
                                hint=f"run {hints.command('lab.down', lab=spec.name)} first, or pick another --lab")
        elif spec.network.subnet != specs.AUTO:
            subnet = spec.network.subnet
        else:
            subnet = next((str(c) for c in networks.AUTO_SUBNETS.subnets(new_prefix=specs.AUTO_PREFIX)
                           if not validation.overlap_problems(str(c), taken)), None)
            if subnet is None:
                raise ProviderError(f"no free /24 left in {networks.AUTO_SUBNETS}", hint="set network.subnet in lab.yaml")
        return plan(spec, subnet, spec.network.mtu or 1500, pace=domains.PACE[self.expected_domain_type()])

    def expected_domain_type(self) -> str:
        """The domain type VMs run under: decided in ``prepare``; else as last decided on this
        machine; else kvm only when /dev/kvm is usable (the probe runs at the first VM lab)."""
        return self.domain_type or domains.known_domain_type() or ("kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu")

    def _network(self, lab: str):
        libvirt = connection.libvirt_api()
        try:
            return self.conn.networkLookupByName(networks.network_name(lab))
        except libvirt.libvirtError:
            return None

    def _taken_subnets(self, lab: str) -> dict[str, str]:
        """Subnets of other libvirt networks and of this machine's interfaces, but the lab's own."""
        taken = {}
        for network in self.conn.listAllNetworks(0):
            if network.name() != networks.network_name(lab):
                subnet = networks.network_subnet(network.XMLDesc(0))
                if subnet:
                    taken[f"libvirt network {network.name()}"] = subnet
        own_bridge = f"interface {networks.bridge_name(lab)}"
        taken.update({name: subnet for name, subnet in networks.host_subnets().items() if name != own_bridge})
        return taken

    def ensure_network(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        """The lab network with a DHCP reservation per node; True when anything changed.

        Raises:
            SubnetTaken: libvirt says the subnet is in use (by an interface or a network
                made since ``resolve`` chose it).
        """
        libvirt = connection.libvirt_api()
        ledger = ledger or Ledger()
        network = self._network(plan.name)
        if network is None:
            ledger.record(f"network {networks.network_name(plan.name)}", lambda: self._remove_network(plan.name))
            network = self.conn.networkDefineXML(networks.network_xml(plan))
            try:
                network.create()
            except libvirt.libvirtError as err:
                network.undefine()  # defined but not started: the next attempt defines it anew
                if "in use" in str(err):  # "Network is already in use by interface virbr1"
                    raise SubnetTaken(networks.network_name(plan.name), plan.subnet, self._overlapping(plan)) from err
                raise ProviderError(f"starting the lab network {networks.network_name(plan.name)} failed: {err}") from err
            return True
        changed = False
        have = network.XMLDesc(0)
        for node in plan.nodes:
            if networks.mac_address(plan.name, node.name) not in have:
                entry = f"<host mac='{networks.mac_address(plan.name, node.name)}' name='{node.name}' ip='{node.address}'/>"
                ledger.record(f"DHCP reservation of {node.name}",
                              lambda node=node.name: self.forget_reservation(plan.name, node))
                network.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                               -1, entry, libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG)
                changed = True
        if not network.isActive():
            network.create()
            changed = True
        return changed

    def _overlapping(self, plan: LabPlan) -> dict[str, str]:
        mine = ipaddress.ip_network(plan.subnet)
        return {name: subnet for name, subnet in self._taken_subnets(plan.name).items()
                if ipaddress.ip_network(subnet, strict=False).overlaps(mine)}

    def _remove_network(self, lab: str) -> None:
        network = self._network(lab)
        if network is not None:
            if network.isActive():
                network.destroy()
            network.undefine()

    # -- machines ------------------------------------------------------------------------------

    def create(self, plan: LabPlan, first_boot: FirstBoot, reporter: Reporter,
               ledger: Ledger | None = None) -> list[Machine]:
        if self.image is None or self.domain_type is None:
            raise ProviderError("LibvirtProvider.create called before prepare()")
        ledger = ledger or Ledger()
        self.ensure_network(plan, ledger)  # made already by provision.machines.lab_network, under the subnet lock
        ensure_nodes(plan, lambda node: self._ensure_node(plan, node, first_boot, ledger), reporter, "VM")
        return self.list(plan.name)

    def _ensure_node(self, plan: LabPlan, node: NodePlan, first_boot: FirstBoot, ledger: Ledger) -> str:
        libvirt = connection.libvirt_api()
        name = domains.domain_name(plan.name, node.name)
        try:
            domain = self.conn.lookupByName(name)
        except libvirt.libvirtError:
            xml = self._domain_xml(plan, node, first_boot, ledger)
            ledger.record(f"VM {name}", lambda: self._undefine(name))
            domain = self.conn.defineXML(xml)
        state = domain.state()[0]
        if state == libvirt.VIR_DOMAIN_RUNNING:
            return "running"
        if state == libvirt.VIR_DOMAIN_PAUSED:
            domain.resume()
            return "resumed"
        domain.create()
        return "started"

    def _domain_xml(self, plan: LabPlan, node: NodePlan, first_boot: FirstBoot, ledger: Ledger) -> str:
        libvirt = connection.libvirt_api()
        pool = self._pool()
        disk_name, seed_name = f"{domains.domain_name(plan.name, node.name)}.qcow2", f"{domains.domain_name(plan.name, node.name)}-seed.img"
        try:
            disk = pool.storageVolLookupByName(disk_name)
        except libvirt.libvirtError:
            ledger.record(f"disk {disk_name}", lambda: connection.delete_volume(self._pool(), disk_name))
            disk = pool.createXML(render("libvirt/volume.xml.j2", name=disk_name, capacity=domains.DISK_GIB << 30,
                                         format="qcow2", backing=self.volumes["disk"]), 0)
        ledger.record(f"disk {seed_name}", lambda: connection.delete_volume(self._pool(), seed_name))  # made anew each time
        connection.delete_volume(pool, seed_name)
        with tempfile.TemporaryDirectory(prefix="swarmdeck-seed-") as tmp:
            local = vm_images.seed_disk([*first_boot(node), *domains.identity_files(node)], Path(tmp) / "seed.img")
            seed, _ = self._upload(pool, seed_name, local, "raw")
        console = lab_dir(plan.name) / "console" / f"{node.name}.log"
        console.parent.mkdir(parents=True, exist_ok=True)
        return render("libvirt/domain.xml.j2", domain_type=self.domain_type, name=domains.domain_name(plan.name, node.name),
                      namespace=domains.NAMESPACE, lab=plan.name, node=node, memory_mib=domains.memory_mib(plan.spec.limits), vcpus=domains.vcpus(plan.spec.limits),
                      kernel=self.volumes["kernel"], initrd=self.volumes["initrd"], cmdline=domains.KERNEL_CMDLINE,
                      disk=disk.path(),
                      seed=seed.path(), network=networks.network_name(plan.name), mac=networks.mac_address(plan.name, node.name),
                      console_log=str(console))

    def list(self, lab: str) -> list[Machine]:
        leases = self._leases(lab)
        machines = [m for m in (self._machine(d, leases) for d in self.conn.listAllDomains(0)) if m and m.lab == lab]
        return sorted(machines, key=lambda m: m.index)

    def _machine(self, domain, leases: dict[str, str]) -> Machine | None:
        libvirt = connection.libvirt_api()
        try:
            meta = ET.fromstring(domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, domains.NAMESPACE, 0))
        except libvirt.libvirtError:
            return None  # not a swarmdeck VM
        state = {libvirt.VIR_DOMAIN_RUNNING: RUNNING, libvirt.VIR_DOMAIN_PAUSED: PAUSED}.get(domain.state()[0], STOPPED)
        mac = networks.mac_address(meta.get("lab"), meta.get("node"))
        return Machine(lab=meta.get("lab"), name=meta.get("node"), role=meta.get("role"), index=int(meta.get("index")),
                       address=leases.get(mac, meta.get("address")), state=state, provider=self.name,
                       id=domain.UUIDString())

    def _leases(self, lab: str) -> dict[str, str]:
        """MAC -> address from the lab network's DHCP leases (libvirt's dnsmasq)."""
        network = self._network(lab)
        if network is None:
            return {}
        try:
            leases = network.DHCPLeases()
        except connection.libvirt_api().libvirtError:
            return {}  # a driver without leases (libvirt's test driver): the reserved addresses stand
        return {lease["mac"].lower(): lease["ipaddr"] for lease in leases if lease.get("type") == 0}

    def machine(self, lab: str, node: str) -> Machine:
        return find_machine(self.list(lab), lab, node, f"VM {domains.domain_name(lab, node)}")

    def _domain(self, machine: Machine):
        return self.conn.lookupByUUIDString(machine.id)

    def start(self, machine: Machine) -> None:
        domain = self._domain(machine)
        if domain.state()[0] == connection.libvirt_api().VIR_DOMAIN_PAUSED:
            domain.resume()
        elif not domain.isActive():
            domain.create()

    def stop(self, machine: Machine) -> None:
        """Clean shutdown (ACPI: systemd stops dockerd first); powered off after a minute."""
        domain = self._domain(machine)
        if not domain.isActive():
            return
        domain.shutdown()
        deadline = time.monotonic() + domains.SHUTDOWN_TIMEOUT
        while domain.isActive() and time.monotonic() < deadline:
            time.sleep(0.5)
        if domain.isActive():
            domain.destroy()

    def kill(self, machine: Machine) -> None:
        """Hard power-off, like pulling the cord."""
        domain = self._domain(machine)
        if domain.isActive():
            domain.destroy()

    def pause(self, machine: Machine) -> None:
        domain = self._domain(machine)
        if domain.state()[0] != connection.libvirt_api().VIR_DOMAIN_PAUSED:
            domain.suspend()

    def remove(self, machine: Machine) -> None:
        self._remove_domain(self._domain(machine), machine.lab, machine.name)
        self.forget_reservation(machine.lab, machine.name)

    def forget_reservation(self, lab: str, node: str) -> None:
        """Drop the node's DHCP reservation from the lab network (if both are there)."""
        network = self._network(lab)
        if network is not None:
            libvirt = connection.libvirt_api()
            entry = f"<host mac='{networks.mac_address(lab, node)}'/>"
            try:
                network.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                               -1, entry, libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG)
            except libvirt.libvirtError:
                pass  # no reservation left for it

    def _undefine(self, name: str) -> None:
        """Power off and undefine the VM ``name`` if it is there (its disks are separate entries)."""
        try:
            domain = self.conn.lookupByName(name)
        except connection.libvirt_api().libvirtError:
            return
        if domain.isActive():
            domain.destroy()
        domain.undefine()

    def _remove_domain(self, domain, lab: str, node: str) -> int:
        """Power off and undefine the VM, delete its disks; returns how many disks."""
        if domain.isActive():
            domain.destroy()
        domain.undefine()
        pool = self._pool()
        return sum(connection.delete_volume(pool, name)
                   for name in (f"{domains.domain_name(lab, node)}.qcow2", f"{domains.domain_name(lab, node)}-seed.img"))

    def destroy(self, lab: str) -> dict[str, int]:
        counts = {"VMs": 0, "volumes": 0, "networks": 0}
        leases: dict[str, str] = {}
        for domain in self.conn.listAllDomains(0):
            machine = self._machine(domain, leases)
            if machine is not None and machine.lab == lab:
                counts["volumes"] += self._remove_domain(domain, lab, machine.name)
                counts["VMs"] += 1
        try:
            pool = self.conn.storagePoolLookupByName(POOL)
            pool.refresh(0)
            for volume in pool.listAllVolumes(0):
                if volume.name().startswith(f"{lab}-"):
                    volume.delete(0)
                    counts["volumes"] += 1
        except connection.libvirt_api().libvirtError:
            pass  # no pool: no volume
        if self._network(lab) is not None:
            self._remove_network(lab)
            counts["networks"] += 1
        return counts

    def labs(self) -> list[str]:
        prefix = networks.network_name("")
        return sorted(n.name()[len(prefix):] for n in self.conn.listAllNetworks(0) if n.name().startswith(prefix))

    def ssh_target(self, machine: Machine) -> SSHTarget:
        return SSHTarget(machine.address)

    def disconnect(self, machine: Machine) -> None:
        """Cut the VM's link (it keeps running: a network partition)."""
        self._set_link(machine, "down")

    def reconnect(self, machine: Machine) -> None:
        self._set_link(machine, "up")

    def _set_link(self, machine: Machine, state: str) -> None:
        libvirt = connection.libvirt_api()
        xml = (f"<interface type='network'><mac address='{networks.mac_address(machine.lab, machine.name)}'/>"
               f"<source network='{networks.network_name(machine.lab)}'/><model type='virtio'/><link state='{state}'/></interface>")
        self._domain(machine).updateDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def console(self, machine: Machine, command: str) -> tuple[int, str]:
        raise no_console(self.name)

    def ensure_load_balancer(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        return False  # VM kernels have IPVS: the routing mesh is the entry point

