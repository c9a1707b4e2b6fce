"""The VMs of the libvirt provider: names, first-boot identity, and the domain type (KVM where
this machine's KVM really runs a guest, else QEMU's software emulation) with its pace."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path

from provision.images import vm as vm_images
from provision.paths import home
from provision.plan import NodePlan
from provision.remote.node_files import File
from provision.spec.model import LimitsSpec, memory_bytes

DOMAIN_TYPE_ENV = "SWARMDECK_DOMAIN_TYPE"  # kvm | qemu: skip the detection
NAMESPACE = "https://github.com/swarmdeck/swarmdeck/libvirt"
MEMORY_MIB, VCPUS, DISK_GIB = 768, 1, 8


def memory_mib(limits: LimitsSpec) -> int:
    """A VM's memory: the spec's limits.memory where it sets one, else MEMORY_MIB."""
    return (memory_bytes(limits.memory) or MEMORY_MIB << 20) >> 20


def vcpus(limits: LimitsSpec) -> int:
    """A VM's vCPUs: limits.cpus rounded up (0.5 is one vCPU), else VCPUS."""
    return max(1, math.ceil(limits.cpus)) if limits.cpus else VCPUS
KERNEL_CMDLINE = "root=/dev/vda rw console=ttyS0 quiet apparmor=0 mitigations=off"  # the image has no bootloader
SHUTDOWN_TIMEOUT = 60
KVM_PROBE_SECONDS = 10
# How many times slower than container nodes a VM's engine answers (LabPlan.pace). Measured
# here under QEMU's software emulation: the lab registry set up in 28 s (0.7 s in
# containers), a 2 MB image loaded and pushed in 12 s, single API calls 5-10 times slower.
PACE = {"kvm": 1.5, "qemu": 6.0}


def domain_name(lab: str, node: str) -> str:
    return f"{lab}-{node}"


def identity_files(node: NodePlan) -> list[File]:
    return [File("/etc/hostname", f"{node.name}\n".encode())]


def domain_type(image: vm_images.VMImage) -> str:
    """kvm when this machine's KVM really runs a guest (a kernel prints its banner within
    seconds), else qemu (software emulation). Decided once per machine, then cached."""
    known = known_domain_type()
    if known is not None:
        return known
    chosen = "kvm" if _kvm_runs(image.kernel) else "qemu"
    _domain_type_cache().parent.mkdir(parents=True, exist_ok=True)
    _domain_type_cache().write_text(json.dumps({"domain_type": chosen}))
    return chosen


def known_domain_type() -> str | None:
    """The domain type forced by SWARMDECK_DOMAIN_TYPE, or decided earlier on this machine."""
    forced = os.environ.get(DOMAIN_TYPE_ENV)
    if forced in PACE:
        return forced
    try:
        cached = json.loads(_domain_type_cache().read_text())["domain_type"]
    except (OSError, ValueError, KeyError):
        return None
    return cached if cached in PACE else None


def _domain_type_cache() -> Path:
    return home() / "libvirt-domain-type.json"


def _kvm_runs(kernel: Path) -> bool:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    command = ["qemu-system-x86_64", "-accel", "kvm", "-machine", "q35", "-m", "256", "-nodefaults", "-nographic",
               "-serial", "stdio", "-no-reboot", "-kernel", str(kernel),
               "-append", "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 root=/dev/nonexistent"]
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return False
    seen = b""
    deadline = time.monotonic() + KVM_PROBE_SECONDS
    try:
        os.set_blocking(proc.stdout.fileno(), False)  # type: ignore[union-attr]
        while time.monotonic() < deadline and proc.poll() is None and b"Linux version" not in seen:
            seen += proc.stdout.read() or b""  # type: ignore[union-attr]
            time.sleep(0.2)
        seen += proc.stdout.read() or b""  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait()
    return b"Linux version" in seen
