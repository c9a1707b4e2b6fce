"""The VM base image: one Debian root filesystem with a kernel, systemd, sshd and the Docker
engine, built offline with debootstrap from the machine's own Debian mirror.

``ensure_vm_image`` makes, once per recipe, a folder with ``base.qcow2`` (an ext4 root
filesystem without a partition table, booted directly by libvirt with the folder's
``vmlinuz`` and ``initrd.img``). Each node boots a qcow2 overlay on it, and gets its own
hostname, keys and engine files from a small seed disk (see ``seed_disk``), so no
cloud-init runs. Raw ext4 and direct kernel boot keep the build to debootstrap plus a few
seconds, and the boot short under software emulation.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from provision import hints
from provision.errors import ImageError
from provision.images import apt_mirror as mirrors
from provision.images import node as images
from provision.paths import TEMPLATES, home
from provision.progress import Reporter
from provision.remote.node_files import File
from provision.setup.engine_service import SYSTEMD_DROPINS

SUITE = images.SUITE
PACKAGES = (
    "linux-image-cloud-amd64", "systemd", "systemd-sysv", "systemd-resolved", "udev", "dbus", "kmod",
    "openssh-server", "sudo",
    "docker.io", "containerd", "runc", "iptables", "iproute2", "docker-registry", "haproxy", "ca-certificates",
    "apparmor", "e2fsprogs", "procps", "iputils-ping", "ipvsadm", "curl",
)
VM_FILES = TEMPLATES / "vm"
ENGINE_DROPINS = SYSTEMD_DROPINS
ROOT_SIZE = "4G"  # the base filesystem; overlays are bigger and systemd grows it at boot
SEED_LABEL = "SWDSEED"
TOOLS = ("debootstrap", "mkfs.ext4", "qemu-img")


@dataclass(frozen=True)
class VMImage:
    folder: Path

    @property
    def disk(self) -> Path:
        return self.folder / "base.qcow2"

    @property
    def kernel(self) -> Path:
        return self.folder / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.folder / "initrd.img"

    @property
    def name(self) -> str:
        return self.folder.name

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.disk, self.kernel, self.initrd))


def recipe_hash() -> str:
    digest = hashlib.sha256(f"{SUITE}\n{' '.join(PACKAGES)}\n{ROOT_SIZE}\n".encode())
    for path in sorted([*(p for p in VM_FILES.rglob("*") if p.is_file()), *ENGINE_DROPINS.values()]):
        digest.update(str(path.relative_to(TEMPLATES)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def vm_image() -> VMImage:
    return VMImage(home() / "images" / f"vm-{recipe_hash()}")


def ensure_vm_image(reporter: Reporter, *, mirror: str | None = None, rebuild: bool = False) -> VMImage:
    """The VM base image of the current recipe, built first when missing (about 1.5 min, once)."""
    image = vm_image()
    if image.complete() and not rebuild:
        reporter.result(f"VM image {image.name}", changed=False)
        return image
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        raise ImageError(
            "building the VM image needs root and " + ", ".join(TOOLS) + (f" (missing: {', '.join(missing)})"
                                                                          if missing else ""),
            hint=f"as root: `apt-get install debootstrap e2fsprogs qemu-utils`, then {hints.command('image.build', '--format', 'qcow2')}",
        )
    with reporter.step(f"building VM image {image.name} with debootstrap (about 1.5 minutes, once)"):
        _build(image, mirror or mirrors.debian_mirror(SUITE), reporter)
    return image


def _build(image: VMImage, mirror: str, reporter: Reporter) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="swarmdeck-vm-", dir="/var/tmp"))
    root, partial = workdir / "root", image.folder.with_name(image.folder.name + ".partial")
    try:
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror]
        images.run_with_progress(command, reporter, "debootstrap")
        shutil.copytree(VM_FILES / "overlay", root, dirs_exist_ok=True, symlinks=True)
        for target, source in ENGINE_DROPINS.items():
            (root / target.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / target.lstrip("/"))
        images.run_with_progress(["sh", str(VM_FILES / "customize.sh"), str(root)], reporter, "customize")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        shutil.copy(_only(root / "boot", "vmlinuz-*"), partial / "vmlinuz")
        shutil.copy(_only(root / "boot", "initrd.img-*"), partial / "initrd.img")
        raw = workdir / "base.raw"
        reporter.info(f"making the {ROOT_SIZE} root filesystem and its qcow2 image")
        run_tool(["truncate", "-s", ROOT_SIZE, str(raw)])
        run_tool(["mkfs.ext4", "-q", "-F", "-L", "swarmdeck-root", "-d", str(root), str(raw)])
        run_tool(["qemu-img", "convert", "-O", "qcow2", str(raw), str(partial / "base.qcow2")])
        for path in partial.iterdir():
            path.chmod(0o644)
        shutil.rmtree(image.folder, ignore_errors=True)
        partial.rename(image.folder)
    finally:
        images.unmount_below(root)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)


def seed_disk(files: list[File], target: Path) -> Path:
    """An ext4 image labelled SWDSEED holding ``files`` under ``files/`` (read at first boot
    by the image's swd-seed unit, which copies them into place owned by root)."""
    with tempfile.TemporaryDirectory(prefix="swarmdeck-seed-") as tmp:
        tree = Path(tmp) / "files"
        for file in files:
            path = tree / file.path.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(file.content)
            path.chmod(file.mode)
        target.unlink(missing_ok=True)
        run_tool(["mkfs.ext4", "-q", "-F", "-L", SEED_LABEL, "-d", tmp, str(target), "4M"])
    return target


def _only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise ImageError(f"expected one {pattern} in the image's /boot, found {[p.name for p in found]}")
    return found[0]


def run_tool(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise ImageError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[-400:]}")
