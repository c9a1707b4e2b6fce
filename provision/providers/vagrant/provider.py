"""vagrant provider: the lab's machines made by Vagrant from the top-level ``Vagrantfile``.

The lab spec is rendered to JSON (``.vagrant/swarmdeck-lab.json`` in the checkout, or
under ``$SWARMDECK_VAGRANT_DIR``), which the Vagrantfile reads, so plain ``vagrant``
commands in the checkout see the same machines. With vagrant-libvirt (the default) the
machines boot swarmdeck's own box on the lab's libvirt network, where each has a DHCP
reservation (the libvirt provider's network code); with VirtualBox, a public box named in
``vagrant.box`` on a 192.168.56.0/21 private network. Either way the machines are then
adopted (``provision.adopt``: Vagrant's login, sudo, the lab key for root) and set up
like every other node.

python-vagrant runs the commands; it throws their error output away and parses
``--machine-readable`` output without looking at ``error-exit`` lines, so each call here
keeps Vagrant's output in the lab's ``vagrant.log`` and reports its real error.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

from provision import hints, state
from provision.errors import ProviderError, ProviderUnavailable
from provision.images import box as box_images
from provision.ledger import Ledger
from provision.paths import REPO, lab_dir
from provision.plan import PAUSED, RUNNING, STOPPED, LabPlan, Machine, plan
from provision.progress import Reporter
from provision.providers.base import (
    Capabilities,
    FirstBoot,
    SSHTarget,
    ensure_nodes,
    find_machine,
    no_console,
)
from provision.providers.libvirt import domains as libvirt_domains
from provision.providers.libvirt import networks as libvirt_networks
from provision.providers.libvirt import provider as lv
from provision.providers.vagrant import commands, lab_file
from provision.remote import adopt
from provision.spec import model as specs
from provision.spec import validation

VIRTUALBOX_SUBNET = "192.168.56.0/24"  # inside VirtualBox's default host-only range 192.168.56.0/21
STATES = {"running": RUNNING, "paused": PAUSED, "saved": PAUSED}


class VagrantProvider:
    name = "vagrant"
    capabilities = Capabilities(boot_timeout=300, own_host_keys=False, node_memory_mb=libvirt_domains.MEMORY_MIB)

    def __init__(self, lab: str | None = None):
        self.libvirt = lv.LibvirtProvider(lab=lab)
        self.box: box_images.Box | None = None
        self.mirror: str | None = None

    # -- Vagrant itself ------------------------------------------------------------------------

    def check(self) -> None:
        if shutil.which("vagrant") is None:
            raise ProviderUnavailable(
                "vagrant is not installed",
                hint=f"`apt-get install vagrant vagrant-libvirt` (Debian), then {hints.command('lab.doctor')}")
        commands.vagrant_lib()

    def _client(self, lab: str):
        """A python-vagrant client whose output goes to the lab's vagrant.log."""
        vagrant = commands.vagrant_lib()
        log = lab_dir(lab) / "vagrant.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**commands.vagrant_env(), "SWARMDECK_LAB_JSON": str(commands.vagrant_dir() / lab_file.SPEC_JSON), "VAGRANT_NO_COLOR": "1"}
        if os.environ.get(commands.DIR_ENV):
            env["VAGRANT_DOTFILE_PATH"] = str(commands.vagrant_dir())
        return vagrant.Vagrant(root=str(REPO), env=env, out_cm=vagrant.make_file_cm(str(log)),
                               err_cm=vagrant.make_file_cm(str(log))), log

    def _run(self, lab: str, what: str, call, *args, **kwargs):
        """``call(client, ...)`` with Vagrant's own error in the exception when it fails."""
        client, log = self._client(lab)
        start = log.stat().st_size if log.is_file() else 0
        try:
            return call(client, *args, **kwargs)
        except subprocess.CalledProcessError as err:
            with log.open(errors="replace") as handle:
                handle.seek(start)
                tail = "\n".join(f"    | {line}" for line in handle.read().strip().splitlines()[-15:])
            raise ProviderError(f"`vagrant {what}` failed (exit {err.returncode}):\n{tail}",
                                hint=f"the whole output is in {log}") from err

    def _status(self, lab: str) -> dict[str, str]:
        """``{machine: state}`` from ``vagrant status`` (empty when the lab has no JSON)."""
        if not (commands.vagrant_dir() / lab_file.SPEC_JSON).is_file() or lab_file.described_lab() != lab:
            return {}
        client, _log = self._client(lab)
        output = self._run(lab, "status", lambda c: c._run_vagrant_command(["status", "--machine-readable"]))
        rows = client._parse_machine_readable_output(output)
        errors = [row[-1] for row in rows if len(row) > 3 and row[2] == "error-exit"]  # [.., class, message]
        if errors:
            raise ProviderError(f"`vagrant status` failed: {errors[0].replace('%!(VAGRANT_COMMA)', ',')}")
        return {row[1]: row[3] for row in rows if len(row) > 3 and row[2] == "state"}

    # -- the lab -------------------------------------------------------------------------------

    def prepare(self, reporter: Reporter, *, image_method: str = "auto", mirror: str | None = None) -> None:
        self.check()
        self.mirror = mirror  # the image and box are made in create, once the spec says which are needed

    def _prepare_machines(self, spec: specs.LabSpec, reporter: Reporter) -> None:
        """vagrant-libvirt: the pool, kernel and domain type; swarmdeck's own box, added."""
        if spec.vagrant.provider != "libvirt":
            return
        self.libvirt.prepare(reporter, mirror=self.mirror)
        if not spec.vagrant.box:
            self.box = box_images.ensure_box(reporter, image=self.libvirt.image)
            self._ensure_box_added(reporter)

    def _ensure_box_added(self, reporter: Reporter) -> None:
        assert self.box is not None
        listed = commands.box_command("list", "--machine-readable")
        if f",box-name,{self.box.name}" in listed.stdout:
            reporter.result(f"Vagrant box {self.box.name}", changed=False)
            return
        added = commands.box_command("add", "--force", "--name", self.box.name, str(self.box.path))
        if added.returncode:
            raise ProviderError(f"`vagrant box add {self.box.name}` failed: {(added.stderr or added.stdout)[-600:]}")
        reporter.result(f"Vagrant box {self.box.name} added", changed=True)

    def stored_spec(self, lab: str) -> specs.LabSpec | None:
        """The spec the lab was created with, with its subnet (provision.state)."""
        return state.read_created_spec(lab) if state.read_provider(lab) == self.name else None

    def resolve(self, spec: specs.LabSpec) -> LabPlan:
        if spec.vagrant.provider == "libvirt":
            return self.libvirt.resolve(spec)
        validation.validate(spec)
        subnet = VIRTUALBOX_SUBNET if spec.network.subnet == specs.AUTO else spec.network.subnet
        if not ipaddress.ip_network(subnet).subnet_of(ipaddress.ip_network("192.168.56.0/21")):
            raise ProviderError(f"VirtualBox accepts host-only networks inside 192.168.56.0/21 only, not {subnet}",
                                hint="leave network.subnet at auto")
        return plan(spec, subnet, spec.network.mtu or 1500, pace=libvirt_domains.PACE["kvm"])

    def ensure_network(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        """vagrant-libvirt: the lab's libvirt network (VirtualBox makes its own host-only one)."""
        return plan.spec.vagrant.provider == "libvirt" and self.libvirt.ensure_network(plan, ledger)

    def create(self, plan: LabPlan, first_boot: FirstBoot, reporter: Reporter,
               ledger: Ledger | None = None) -> list[Machine]:
        ledger = ledger or Ledger()
        owner = lab_file.described_lab()
        if owner not in (None, plan.name) and self._status(owner):
            raise ProviderError(f"the Vagrantfile in {commands.vagrant_dir()} describes lab {owner!r}, which still has machines",
                                hint=f"one Vagrant lab per folder: {hints.command('lab.down', lab=owner)}, or set "
                                     f"{commands.DIR_ENV} to another folder")
        self._prepare_machines(plan.spec, reporter)
        self.ensure_network(plan, ledger)  # made already by provision.machines.lab_network, under the subnet lock
        if owner != plan.name:  # the Vagrantfile described no lab, or one without machines: now this one
            ledger.record(f"Vagrant's description of lab {plan.name} ({commands.vagrant_dir() / lab_file.SPEC_JSON})",
                          lambda: lab_file.forget(plan.name))
        self._write_json(lab_file.plan_all(plan))
        states = self._status(plan.name)
        missing = [n.name for n in plan.nodes if states.get(n.name) != "running"]
        for node in missing:
            if states.get(node, "not_created") == "not_created":  # Vagrant makes it now; `vagrant destroy` undoes it
                ledger.record(f"Vagrant machine {node}", lambda node=node: self._destroy_machine(plan.name, node))
        if missing:
            with reporter.step(f"vagrant up {' '.join(missing)} ({plan.spec.vagrant.provider}; output in "
                               f"{lab_dir(plan.name) / 'vagrant.log'})"):
                self._run(plan.name, "up", lambda c: c._call_vagrant_command(
                    ["up", f"--provider={plan.spec.vagrant.provider}", "--no-provision", *missing]))

        def adopted(node) -> str:
            outcome = self._adopt(plan, node.name)
            return f"up, {outcome}" if node.name in missing else outcome

        ensure_nodes(plan, adopted, reporter, "VM")
        return self.list(plan.name)

    def _adopt(self, plan: LabPlan, node: str) -> str:
        """Log in as Vagrant does (its user and key), then make the lab key work for root."""
        config = self._ssh_config(plan.name, node)
        address = plan.node(node).address
        return adopt.adopt(plan.name, node, SSHTarget(address, 22, config["User"]), Path(config["IdentityFile"]))

    def _ssh_config(self, lab: str, node: str) -> dict[str, str]:
        client, _log = self._client(lab)
        text = self._run(lab, f"ssh-config {node}", lambda c: c.ssh_config(node))
        config = client._parse_config(text)
        if "User" not in config or "IdentityFile" not in config:
            raise ProviderError(f"`vagrant ssh-config {node}` gave no user or key: {text[-300:]!r}")
        return config

    def _write_json(self, plan: LabPlan) -> None:
        libvirt = plan.spec.vagrant.provider == "libvirt"
        own_box = not plan.spec.vagrant.box
        box = self.box if own_box else None
        data = {
            "lab": plan.name,
            "provider": plan.spec.vagrant.provider,
            "box": box.name if box else plan.spec.vagrant.box,
            "box_key": str(box.key) if box else None,
            "driver": self.libvirt.domain_type or "qemu",
            "memory": libvirt_domains.MEMORY_MIB,
            "cpus": libvirt_domains.VCPUS,
            "pool": lv.POOL,
            "kernel": self.libvirt.volumes.get("kernel") if libvirt and own_box else None,
            "initrd": self.libvirt.volumes.get("initrd") if libvirt and own_box else None,
            "cmdline": libvirt_domains.KERNEL_CMDLINE,
            "network": libvirt_networks.network_name(plan.name),
            "subnet": plan.subnet,
            "console_dir": str(lab_dir(plan.name) / "console"),
            "nodes": [{"name": n.name, "role": n.role, "address": n.address, "mac": libvirt_networks.mac_address(plan.name, n.name)}
                      for n in plan.nodes],
        }
        (lab_dir(plan.name) / "console").mkdir(parents=True, exist_ok=True)
        commands.vagrant_dir().mkdir(parents=True, exist_ok=True)
        (commands.vagrant_dir() / lab_file.SPEC_JSON).write_text(json.dumps(data, indent=2) + "\n")

    def list(self, lab: str) -> list[Machine]:
        """The machines Vagrant has of the lab's nodes now (lab.add and lab.remove change them)."""
        spec = state.current_spec(lab, self.stored_spec(lab))
        if spec is None:
            return []
        states = self._status(lab)
        resolved = plan(spec, spec.network.subnet, 1500)
        return [Machine(lab=lab, name=n.name, role=n.role, index=n.index, address=n.address,
                        state=STATES.get(states.get(n.name, ""), STOPPED), provider=self.name, id=n.name)
                for n in resolved.nodes if states.get(n.name, "not_created") != "not_created"]

    def machine(self, lab: str, node: str) -> Machine:
        return find_machine(self.list(lab), lab, node, f"Vagrant machine {node!r}")

    def start(self, machine: Machine) -> None:
        command = ["resume", machine.name] if machine.state == PAUSED else ["up", "--no-provision", machine.name]
        self._run(machine.lab, " ".join(command), lambda c: c._call_vagrant_command(command))

    def stop(self, machine: Machine) -> None:
        self._run(machine.lab, f"halt {machine.name}", lambda c: c.halt(vm_name=machine.name))

    def kill(self, machine: Machine) -> None:
        self._run(machine.lab, f"halt --force {machine.name}", lambda c: c.halt(vm_name=machine.name, force=True))

    def pause(self, machine: Machine) -> None:
        self._run(machine.lab, f"suspend {machine.name}", lambda c: c.suspend(vm_name=machine.name))

    def remove(self, machine: Machine) -> None:
        self._run(machine.lab, f"destroy {machine.name}", lambda c: c.destroy(vm_name=machine.name))
        data = lab_file.read()
        if data and data.get("lab") == machine.lab:  # the Vagrantfile forgets it too, and the network
            if data.get("provider") == "libvirt":
                self.libvirt.forget_reservation(machine.lab, machine.name)
            data["nodes"] = [n for n in data["nodes"] if n["name"] != machine.name]
            (commands.vagrant_dir() / lab_file.SPEC_JSON).write_text(json.dumps(data, indent=2) + "\n")

    def _destroy_machine(self, lab: str, node: str) -> None:
        """``vagrant destroy NODE`` and its DHCP reservation, if Vagrant still describes the lab."""
        if lab_file.described_lab() == lab:
            self.remove(Machine(lab=lab, name=node, role="", index=0, address="", state=STOPPED,
                                provider=self.name, id=node))

    def destroy(self, lab: str) -> dict[str, int]:
        """`vagrant destroy`; then, for vagrant-libvirt, what Vagrant left: the lab network,
        disks, and the domains themselves when Vagrant fails (a broken Vagrantfile must not
        keep a lab's VMs running)."""
        counts = {"VMs": 0}
        spec = self.stored_spec(lab)
        on_libvirt = spec is None or spec.vagrant.provider == "libvirt"
        if lab_file.described_lab() == lab:
            try:
                counts["VMs"] = len([s for s in self._status(lab).values() if s != "not_created"])
                self._run(lab, "destroy", lambda c: c._call_vagrant_command(["destroy", "--force"]))
            except ProviderError:
                if not on_libvirt:
                    raise  # VirtualBox: nothing else here can remove its machines
            (commands.vagrant_dir() / lab_file.SPEC_JSON).unlink(missing_ok=True)
        if on_libvirt:
            counts["VMs"] += self._remove_domains(lab)
            counts.update({k: v for k, v in self.libvirt.destroy(lab).items() if k != "VMs"})
        return counts

    def _remove_domains(self, lab: str) -> int:
        """Power off and undefine the lab's vagrant-libvirt domains that are still there."""
        left = [d for d in self.libvirt.conn.listAllDomains(0) if d.name().startswith(f"{lab}-vagrant-")]
        for domain in left:
            if domain.isActive():
                domain.destroy()
            domain.undefine()
        return len(left)

    def labs(self) -> list[str]:
        return [lab for lab in state.known_labs() if state.read_provider(lab) == self.name]

    def ssh_target(self, machine: Machine) -> SSHTarget:
        return SSHTarget(machine.address)

    def disconnect(self, machine: Machine) -> None:
        self.libvirt.disconnect(self._as_libvirt(machine))

    def reconnect(self, machine: Machine) -> None:
        self.libvirt.reconnect(self._as_libvirt(machine))

    def _as_libvirt(self, machine: Machine) -> Machine:
        domain = self.libvirt.conn.lookupByName(f"{machine.lab}-vagrant-{machine.name}")
        return Machine(machine.lab, machine.name, machine.role, machine.index, machine.address, machine.state,
                       "libvirt", domain.UUIDString())

    def console(self, machine: Machine, command: str) -> tuple[int, str]:
        raise no_console(self.name)

    def ensure_load_balancer(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        return False  # VM kernels have IPVS: the routing mesh is the entry point


